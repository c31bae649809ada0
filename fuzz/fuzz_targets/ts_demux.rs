//! MPEG-TS demuxer on arbitrary bytes pushed at arbitrary split points, with small limits
//! and (by a control bit) every 188th byte forced to 0x47 so mutations reach packet contents:
//! memory stays bounded and every unit is a well-formed FLV tag body.
//! The body is `uringcast::proto::ts::demux::fuzzing::demux`, which the unit tests also run on
//! stable. Seed it with the start of `tests/data/*.ts` behind two control bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::proto::ts::demux::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::demux(data));
