//! Errors a peer can cause while sending us an HTTP request, and the status each one earns.

use std::fmt;

/// Everything here is the peer's fault: each variant maps to exactly one status code, so the
/// runtime needs a single `match`-free call ([`HttpError::status`]) to pick the reply, and
/// [`HttpError::reason`] gives a fixed metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpError {
    /// The request line or a header line breaks the grammar, or a header we rely on
    /// (`Host`) is missing (HTTP/1.1), duplicated, or not a valid `uri-host [":" port]`. 400.
    Malformed,
    /// The request line is longer than [`HttpLimits::request_line_bytes_max`]. 414.
    ///
    /// [`HttpLimits::request_line_bytes_max`]: super::HttpLimits::request_line_bytes_max
    UriTooLong,
    /// The head is longer than `header_bytes_max` or has more than `headers_max` fields. 431.
    HeaderTooLarge,
    /// The body length cannot be decided safely: a non-numeric or overflowing
    /// `Content-Length`, differing duplicates, `Content-Length` together with
    /// `Transfer-Encoding`, or `Transfer-Encoding` on HTTP/1.0 (RFC 9112 §6.1 calls that
    /// faulty framing). All of these are request-smuggling shapes. 400.
    BadContentLength,
    /// `Transfer-Encoding` names a coding other than exactly `chunked`. RFC 9112 §6.1: a
    /// server that receives a transfer coding it does not understand SHOULD answer 501.
    BadTransferEncoding,
    /// The version is not HTTP/1.0 or HTTP/1.1. 505.
    VersionNotSupported,
    /// The chunked body breaks RFC 9112 §7.1 (bad hex, oversized chunk, missing CRLF,
    /// over-long size or trailer line). 400.
    BadChunk,
    /// The body is larger than the configured maximum. 413.
    BodyTooLarge,
}

impl HttpError {
    /// The status code to answer with before closing the connection.
    pub fn status(self) -> u16 {
        match self {
            HttpError::Malformed => 400,
            HttpError::UriTooLong => 414,
            HttpError::HeaderTooLarge => 431,
            HttpError::BadContentLength => 400,
            HttpError::BadTransferEncoding => 501,
            HttpError::VersionNotSupported => 505,
            HttpError::BadChunk => 400,
            HttpError::BodyTooLarge => 413,
        }
    }

    /// A short fixed label for logs and metric labels (no spaces, stable across releases).
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
        let text = match self {
            HttpError::Malformed => "malformed HTTP request",
            HttpError::UriTooLong => "request line too long",
            HttpError::HeaderTooLarge => "request head too large or too many header fields",
            HttpError::BadContentLength => "ambiguous or invalid body length",
            HttpError::BadTransferEncoding => "unsupported transfer coding",
            HttpError::VersionNotSupported => "HTTP version not supported",
            HttpError::BadChunk => "invalid chunked body",
            HttpError::BodyTooLarge => "request body too large",
        };
        f.write_str(text)
    }
}

impl std::error::Error for HttpError {}

/// The reason phrase for every status this server sends (RFC 9110 §15). Unknown codes get
/// an empty phrase, which RFC 9112 §4 allows.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [HttpError; 8] = [
        HttpError::Malformed,
        HttpError::UriTooLong,
        HttpError::HeaderTooLarge,
        HttpError::BadContentLength,
        HttpError::BadTransferEncoding,
        HttpError::VersionNotSupported,
        HttpError::BadChunk,
        HttpError::BodyTooLarge,
    ];

    #[test]
    fn statuses_are_the_documented_ones() {
        let statuses: Vec<u16> = ALL.iter().map(|e| e.status()).collect();
        assert_eq!(statuses, [400, 414, 431, 400, 501, 505, 400, 413]);
    }

    #[test]
    fn every_status_we_send_has_a_phrase() {
        for e in ALL {
            assert!(!reason_phrase(e.status()).is_empty(), "{e:?}");
        }
        for s in [
            200, 204, 206, 304, 400, 403, 404, 405, 408, 409, 411, 412, 413, 414, 416, 431, 500,
            501, 503, 505,
        ] {
            assert!(!reason_phrase(s).is_empty(), "{s}");
        }
        assert_eq!(reason_phrase(206), "Partial Content");
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(999), "");
    }

    #[test]
    fn labels_are_unique_and_metric_safe() {
        let mut labels: Vec<&str> = ALL.iter().map(|e| e.reason()).collect();
        for l in &labels {
            assert!(
                l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
        }
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ALL.len());
        assert_eq!(HttpError::UriTooLong.to_string(), "request line too long");
    }
}
