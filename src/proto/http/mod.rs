//! HTTP/1.1 sans-IO pieces: request-head parsing, response-head writing, the Date cache,
//! the chunked transfer coding, and the client side of one exchange ([`client`]: the auth
//! service callouts).
//!
//! Nothing here touches a socket or reads the clock. The runtime hands in bytes (and, for
//! [`DateCache`], the current time) and gets back values or bytes to send.
//!
//! Call order for one connection, as the runtime drives it:
//! 1. Append received bytes to the connection buffer and call [`parse_request`].
//!    [`Parse::Partial`] means "read more"; an [`HttpError`] picks the reply with
//!    [`HttpError::status`] and the connection is then closed.
//! 2. On [`Parse::Complete`], advance the buffer by [`RequestHead::head_len`]. Any bytes after
//!    the head are body or the next pipelined request.
//! 3. For a chunked body, feed the bytes after the head to a [`ChunkedDecoder`] until it
//!    reports `done`; whatever it did not consume belongs to the next request.
//! 4. Write the reply with [`ResponseHead`].

mod chunked;
pub mod client;
mod error;
mod request;
mod response;

pub use chunked::{
    CHUNK_TRAILER_LAST, ChunkedDecoder, ChunkedLimits, ChunkedProgress, write_chunk_header,
};
pub use error::{HttpError, reason_phrase};
pub use request::{HttpLimits, Method, Parse, RequestHead, Version, parse_request};
pub use response::{DateCache, ResponseHead};
