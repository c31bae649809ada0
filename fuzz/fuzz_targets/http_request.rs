//! parse_request over arbitrary bytes; after a complete head, the remainder is parsed
//! again the way a pipelining runtime would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uringcast::proto::http::{HttpLimits, Parse, parse_request};

fuzz_target!(|data: &[u8]| {
    let small = HttpLimits {
        header_bytes_max: 512,
        request_line_bytes_max: 128,
        headers_max: 8,
    };
    for limits in [HttpLimits::default(), small] {
        let mut rest = data;
        // Bounded: each Complete consumes at least one byte.
        while let Ok(Parse::Complete(head)) = parse_request(rest, &limits) {
            assert!(head.head_len > 0 && head.head_len <= rest.len());
            assert!(head.head_len <= limits.header_bytes_max);
            assert!(!(head.chunked && head.content_length.is_some()));
            rest = &rest[head.head_len..];
        }
    }
});
