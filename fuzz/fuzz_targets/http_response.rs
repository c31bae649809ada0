//! The auth service client's answer-head parser over arbitrary bytes, fed in pieces the way
//! receives arrive: never more than the fixed head bound, and piecewise agrees with whole.
//! The body is `uringcast::proto::http::client::fuzz_response`, which the unit tests also
//! run on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::proto::http::client::fuzz_response;

fuzz_target!(|data: &[u8]| fuzz_response(data));
