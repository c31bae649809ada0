//! The client side of one HTTP/1.1 exchange, sans-IO: a `POST` of a JSON body with
//! `Connection: close`, and the status of the answer's head. This is all the auth service
//! callouts need (`server::callout`): the decision is the status code; the answer's body is
//! never read.
//!
//! Call order: [`post_json`] builds the request bytes; received bytes are appended to a buffer
//! of at most [`RESPONSE_HEAD_MAX`] bytes and [`parse_response`] is called after each receive
//! until it returns [`ResponseParse::Complete`] or an error. A peer that closes before a
//! complete head, or sends more than the bound without finishing it, is an error.

use std::fmt;

/// The largest answer head accepted. Auth services answer a status line and a few headers;
/// anything longer is refused, so the buffer a callout receives into has a fixed size.
pub const RESPONSE_HEAD_MAX: usize = 4096;

/// Headers an answer head may carry at most.
const RESPONSE_HEADERS_MAX: usize = 32;

/// A `POST {target} HTTP/1.1` of `body` as `application/json` to `host`, closing after the
/// answer. `target` is the path (and query) of the service's URL; `host` its authority.
pub fn post_json(target: &str, host: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + target.len() + host.len() + body.len());
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(
        b"\r\nUser-Agent: uringcast\r\nContent-Type: application/json\r\nContent-Length: ",
    );
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// The outcome of parsing what has been received of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseParse {
    /// The head is not complete yet: receive more (into what is left of the bound).
    Partial,
    /// The head is complete: its status code and its length in bytes.
    Complete { status: u16, head_len: usize },
}

/// Why an answer is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// Not an HTTP/1.x answer head (httparse's reason).
    Malformed(&'static str),
    /// More than [`RESPONSE_HEAD_MAX`] bytes without the end of the head, or too many headers.
    TooLarge,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Malformed(why) => write!(f, "malformed answer head: {why}"),
            ResponseError::TooLarge => write!(
                f,
                "answer head larger than {RESPONSE_HEAD_MAX} bytes or {RESPONSE_HEADERS_MAX} headers"
            ),
        }
    }
}

/// Parse the answer head received so far (`data`: everything from the first byte).
pub fn parse_response(data: &[u8]) -> Result<ResponseParse, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; RESPONSE_HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(data) {
        Ok(httparse::Status::Complete(head_len)) => {
            if head_len > RESPONSE_HEAD_MAX {
                return Err(ResponseError::TooLarge);
            }
            let status = response
                .code
                .ok_or(ResponseError::Malformed("no status code"))?;
            Ok(ResponseParse::Complete { status, head_len })
        }
        Ok(httparse::Status::Partial) => {
            if data.len() >= RESPONSE_HEAD_MAX {
                Err(ResponseError::TooLarge)
            } else {
                Ok(ResponseParse::Partial)
            }
        }
        Err(httparse::Error::TooManyHeaders) => Err(ResponseError::TooLarge),
        Err(e) => Err(ResponseError::Malformed(error_reason(e))),
    }
}

fn error_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "not HTTP/1.x",
    }
}

/// The body of the cargo-fuzz target `http_response` (`fuzz/fuzz_targets/`), also run on
/// stable by the unit tests: the answer fed in pieces of growing size the way receives
/// arrive, with the invariants a callout relies on. A panic is a finding.
pub fn fuzz_response(data: &[u8]) {
    let Some((&stride, bytes)) = data.split_first() else {
        return;
    };
    let stride = usize::from(stride % 64) + 1;
    let whole = parse_response(bytes);
    let mut end = 0;
    let mut last = Ok(ResponseParse::Partial);
    while end < bytes.len() {
        end = (end + stride).min(bytes.len());
        last = parse_response(&bytes[..end]);
        match last {
            Ok(ResponseParse::Partial) => assert!(end < RESPONSE_HEAD_MAX),
            Ok(ResponseParse::Complete { status, head_len }) => {
                assert!(head_len <= end && head_len <= RESPONSE_HEAD_MAX);
                assert!(status <= 999);
                // A complete head stays complete, with the same status, however much follows.
                assert_eq!(
                    whole,
                    Ok(ResponseParse::Complete { status, head_len }),
                    "piecewise and whole parses disagree"
                );
                break;
            }
            Err(_) => break,
        }
    }
    if bytes.len() >= RESPONSE_HEAD_MAX {
        assert!(last != Ok(ResponseParse::Partial));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_request_is_a_complete_post_with_a_json_body() {
        let body = br#"{"action":"play"}"#;
        let req = post_json("/auth?x=1", "127.0.0.1:9000", body);
        let text = String::from_utf8(req).unwrap();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap();
        assert_eq!(rest.as_bytes(), body);
        let mut lines = head.split("\r\n");
        assert_eq!(lines.next(), Some("POST /auth?x=1 HTTP/1.1"));
        let headers: Vec<&str> = lines.collect();
        assert!(headers.contains(&"Host: 127.0.0.1:9000"));
        assert!(headers.contains(&"Content-Type: application/json"));
        assert!(headers.contains(&format!("Content-Length: {}", body.len()).as_str()));
        assert!(headers.contains(&"Connection: close"));
        // It parses as a request with the same body length.
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Request::new(&mut h);
        assert!(r.parse(text.as_bytes()).unwrap().is_complete());
        assert_eq!(r.method, Some("POST"));
    }

    #[test]
    fn answers_give_their_status_once_the_head_is_complete() {
        let answer = b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n";
        for cut in 0..answer.len() {
            assert_eq!(parse_response(&answer[..cut]), Ok(ResponseParse::Partial));
        }
        assert_eq!(
            parse_response(answer),
            Ok(ResponseParse::Complete {
                status: 204,
                head_len: answer.len()
            })
        );
        let with_body = b"HTTP/1.0 403 Forbidden\r\nContent-Length: 2\r\n\r\nno";
        assert_eq!(
            parse_response(with_body),
            Ok(ResponseParse::Complete {
                status: 403,
                head_len: with_body.len() - 2
            })
        );
    }

    #[test]
    fn garbage_and_oversized_heads_are_errors() {
        assert!(matches!(
            parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 2x0 OK\r\n\r\n"),
            Err(ResponseError::Malformed(_))
        ));
        let mut long = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        long.resize(RESPONSE_HEAD_MAX, b'a');
        assert_eq!(parse_response(&long), Err(ResponseError::TooLarge));
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..RESPONSE_HEADERS_MAX + 1 {
            many.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_response(&many), Err(ResponseError::TooLarge));
        assert!(ResponseError::TooLarge.to_string().contains("4096"));
    }

    proptest! {
        // Stable run of the fuzz entry point (fuzz/fuzz_targets/http_response.rs).
        #[test]
        fn fuzz_http_response_stable(bytes in proptest::collection::vec(any::<u8>(), 0..5000)) {
            fuzz_response(&bytes);
        }

        #[test]
        fn fuzz_http_response_stable_valid_heads(
            stride in any::<u8>(),
            status in 100u16..=999,
            fields in proptest::collection::vec(("[A-Za-z-]{1,20}", "[ -~]{0,30}"), 0..8),
            tail in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut data = vec![stride];
            data.extend_from_slice(format!("HTTP/1.1 {status} Whatever\r\n").as_bytes());
            for (name, value) in &fields {
                data.extend_from_slice(format!("{name}: {}\r\n", value.trim()).as_bytes());
            }
            data.extend_from_slice(b"\r\n");
            let head_len = data.len() - 1;
            data.extend_from_slice(&tail);
            fuzz_response(&data);
            prop_assert_eq!(
                parse_response(&data[1..]),
                Ok(ResponseParse::Complete { status, head_len })
            );
        }
    }
}
