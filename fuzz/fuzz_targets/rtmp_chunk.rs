//! The RTMP chunk stream decoder on arbitrary bytes with small limits: memory stays bounded,
//! every message has the layout the session relies on.
//! The body is `uringcast::proto::rtmp::fuzzing::chunk`, which the unit tests also run on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::proto::rtmp::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::chunk(data));
