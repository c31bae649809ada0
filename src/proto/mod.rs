//! Sans-IO protocol code: every parser takes bytes and returns events, so it can be fuzzed
//! and unit-tested without sockets.
#![forbid(unsafe_code)]

pub mod amf0;
pub mod flv;
pub mod h26x;
pub mod http;
pub mod rtmp;
pub mod ts;
