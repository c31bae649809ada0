//! H.264 and HEVC sequence parameter sets, bare and inside `avcC` / `hvcC` records, on
//! arbitrary bytes: nothing panics, and a size that comes out is within the codecs' limits.
//! The body is `uringcast::proto::h26x::fuzzing::parse`, which the unit tests also run on
//! stable. Seed it with the SPSs of `src/proto/h26x/tests.rs` behind a control byte (0-3).
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::proto::h26x::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::parse(data));
