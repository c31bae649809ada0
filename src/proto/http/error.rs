//! Errors the HTTP/1.1 parsers report, and the status each one answers with.
//!
//! Every variant here is the peer's fault (a malformed or oversized request, or a framing we
//! refuse); the caller's own failures (file not found, overload) are statuses it picks itself.
//! One function, [`HttpError::status`], decides the reply, and [`HttpError::reason`] gives the
//! bounded metric label, so a new variant cannot be added without choosing both.

use std::fmt;

/// Why a request (head or chunked body) was refused. Small and `Copy`: no strings on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpError {
    /// Bytes that are not an HTTP/1.x request: bad token, bad header line, missing or repeated
    /// `Host` on HTTP/1.1, a request-target form we do not serve.
    Malformed,
    /// The request line is longer than `HttpLimits::request_line_bytes_max`.
    UriTooLong,
    /// The head is longer than `HttpLimits::header_bytes_max`, or has more than
    /// `HttpLimits::headers_max` header lines.
    HeaderTooLarge,
    /// `Content-Length` is not a decimal number, or is repeated with different values.
    BadContentLength,
    /// `Transfer-Encoding` is anything other than exactly `chunked`, is sent on HTTP/1.0, or is
    /// sent together with `Content-Length` (the classic request-smuggling ambiguity).
    BadTransferEncoding,
    /// A well-formed `HTTP/x.y` version other than 1.0 and 1.1.
    VersionNotSupported,
    /// A chunked body with a bad size line, an oversized chunk, or a missing CRLF.
    BadChunk,
    /// The body is larger than the caller allows. The parsers here never produce it (they do not
    /// know the route's limit); it exists so the runtime maps it through the same table.
    BodyTooLarge,
}

impl HttpError {
    /// The status code to answer with before closing the connection.
    ///
    /// `BadTransferEncoding` is 400, not 501: RFC 9112 §6.3 says a request whose final coding is
    /// not `chunked` MUST get 400, and CL+TE together "ought to be handled as an error"; the 501
    /// of §6.1 is only a SHOULD for codings that are understood-but-unsupported framing such as
    /// `gzip, chunked`. One status for every framing refusal keeps the rule simple, and every
    /// one of them closes the connection anyway.
    pub fn status(self) -> u16 {
        match self {
            HttpError::Malformed => 400,
            HttpError::UriTooLong => 414,
            HttpError::HeaderTooLarge => 431,
            HttpError::BadContentLength => 400,
            HttpError::BadTransferEncoding => 400,
            HttpError::VersionNotSupported => 505,
            HttpError::BadChunk => 400,
            HttpError::BodyTooLarge => 413,
        }
    }

    /// A short, fixed label for logs and metric labels (bounded cardinality).
    pub fn reason(self) -> &'static str {
        match self {
            HttpError::Malformed => "malformed",
            HttpError::UriTooLong => "uri_too_long",
            HttpError::HeaderTooLarge => "header_too_large",
            HttpError::BadContentLength => "bad_content_length",
            HttpError::BadTransferEncoding => "bad_transfer_encoding",
            HttpError::VersionNotSupported => "version_not_supported",
            HttpError::BadChunk => "bad_chunk",
            HttpError::BodyTooLarge => "body_too_large",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.status())
    }
}

impl std::error::Error for HttpError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_reason_table() {
        let table = [
            (HttpError::Malformed, 400, "malformed"),
            (HttpError::UriTooLong, 414, "uri_too_long"),
            (HttpError::HeaderTooLarge, 431, "header_too_large"),
            (HttpError::BadContentLength, 400, "bad_content_length"),
            (HttpError::BadTransferEncoding, 400, "bad_transfer_encoding"),
            (HttpError::VersionNotSupported, 505, "version_not_supported"),
            (HttpError::BadChunk, 400, "bad_chunk"),
            (HttpError::BodyTooLarge, 413, "body_too_large"),
        ];
        for (e, status, reason) in table {
            assert_eq!(e.status(), status, "{e:?}");
            assert_eq!(e.reason(), reason, "{e:?}");
        }
        assert_eq!(HttpError::UriTooLong.to_string(), "uri_too_long (414)");
    }
}
