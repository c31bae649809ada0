//! The RTMP server handshake on arbitrary client bytes at arbitrary splits.
//! The body is `uringcast::proto::rtmp::fuzzing::handshake`, which the unit tests also run on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::proto::rtmp::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::handshake(data));
