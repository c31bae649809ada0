//! An RTMP server session fed arbitrary chunk-stream bytes after a valid handshake, answering
//! every request: no panic, bounded memory, media only on accepted publishes.
//! The body is `uringcast::proto::rtmp::fuzzing::session`, which the unit tests also run on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::proto::rtmp::fuzzing;

fuzz_target!(|data: &[u8]| fuzzing::session(data));
