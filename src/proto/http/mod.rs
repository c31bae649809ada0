//! HTTP/1.1 sans-IO pieces: request-head parsing, response-head writing, the `Date` cache and
//! the chunked transfer coding.
//!
//! How the runtime drives it:
//! 1. Append received bytes to the connection's buffer and call [`parse_request`].
//!    [`Parse::Partial`] means read more (the limits in [`HttpLimits`] bound how much);
//!    an [`HttpError`] means answer [`HttpError::status`] and close.
//! 2. On [`Parse::Complete`], the head is `buf[..head.head_len]`. A body follows if
//!    `content_length` is set or `chunked` is true (decode it with [`ChunkedDecoder`]);
//!    otherwise the next pipelined request starts at `head_len`.
//! 3. Write the reply with [`ResponseHead`], taking `Date` from a per-worker [`DateCache`].
//!
//! Nothing here reads a clock, touches an fd, or panics on peer input.

mod chunked;
mod error;
mod request;
mod response;

pub use chunked::{CHUNK_LINE_BYTES_MAX_DEFAULT, ChunkedDecoder, ChunkedProgress};
pub use error::HttpError;
pub use request::{
    HEADERS_STACK_CAPACITY, HttpLimits, Method, Parse, RequestHead, Version, parse_request,
};
pub use response::{
    CHUNK_TRAILER_LAST, DateCache, ResponseHead, clamp_http_date, fmt_http_date, reason_phrase,
    write_chunk_header,
};
