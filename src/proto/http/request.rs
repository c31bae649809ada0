//! Request-head parsing: bytes in, a [`RequestHead`] (or "need more bytes") out.
//!
//! `httparse` does the tokenising; this module adds the limits and the framing rules that
//! decide how many body bytes follow the head (RFC 9112 §6), because a wrong answer there is a
//! request-smuggling hole: the runtime relies on `content_length`/`chunked` being unambiguous.

use std::mem::MaybeUninit;

use super::HttpError;

/// Limits on a request head. Every one is a named field so config can set it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Largest head, request line and final CRLFCRLF included. Past it: 431.
    pub header_bytes_max: usize,
    /// Largest request line (method, target, version), CRLF excluded. Past it: 414.
    pub request_line_bytes_max: usize,
    /// Most header lines in one head. Past it: 431.
    pub headers_max: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_bytes_max: 8192,
            request_line_bytes_max: 4096,
            headers_max: 64,
        }
    }
}

/// `headers_max` up to this many parses with a header array on the stack; a larger configured
/// value still works, with one heap allocation per call. 128 slots of `httparse::Header` are
/// 4 KiB of stack and are left uninitialised (`parse_with_uninit_headers`), so the common case
/// pays neither an allocation nor a 4 KiB memset per request.
pub const HEADERS_STACK_CAPACITY: usize = 128;

/// Request method. Method names are case-sensitive (RFC 9110 §9.1), so `get` is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    /// Any other token; the text is in [`RequestHead::method_raw`].
    Other,
}

impl Method {
    fn from_token(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// Protocol version of the request. Anything else is refused while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
}

/// What the runtime needs from a request head, owned so the receive buffer can be reused.
///
/// Fields that may legally repeat are combined with `", "` (RFC 9110 §5.3). For fields that
/// must not repeat (`Range`, `If-Modified-Since`, `If-Range`, ...) the combined value then fails
/// to parse downstream and the field is ignored, which is the safe reading of a confused client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    pub method_raw: String,
    /// The path, still percent-encoded, without the query. `*` for `OPTIONS *`. For an
    /// absolute-form target (`GET http://host/a HTTP/1.1`) only the path part (`/a`).
    pub path: String,
    /// The text after the first `?`, without the `?`.
    pub query: Option<String>,
    pub version: Version,
    /// Whether the connection may carry another request after this one: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive` (and no `close`).
    pub keep_alive: bool,
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked` (the only transfer coding accepted).
    pub chunked: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (ignored on 1.0, RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// `Host`, or the authority of an absolute-form target (RFC 9112 §3.2.2 says it wins).
    pub host: Option<String>,
    pub range: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub if_range: Option<String>,
    pub if_match: Option<String>,
    pub if_unmodified_since: Option<String>,
    pub origin: Option<String>,
    /// Bytes of the head, leading empty lines and the final CRLFCRLF included: the body (or the
    /// next pipelined request) starts at `buf[head_len..]`.
    pub head_len: usize,
}

/// Result of feeding bytes to [`parse_request`].
// `Complete` is a few hundred bytes and `Partial` none; the value is matched at once by the
// caller and never stored in bulk, and boxing it would add an allocation to every request.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parse {
    /// The head is not complete yet but is within limits: read more and call again with the
    /// whole buffer (the parse restarts from the beginning; heads are small).
    Partial,
    Complete(RequestHead),
}

/// Parses the request head at the start of `buf`.
///
/// Leading empty lines are skipped (RFC 9112 §2.2 allows it) and counted in `head_len`.
/// Bytes after the head are not looked at.
pub fn parse_request(buf: &[u8], limits: &HttpLimits) -> Result<Parse, HttpError> {
    // Checked before tokenising so a long line is refused after one scan bounded by the limit,
    // even while the line is still arriving.
    check_request_line(buf, limits.request_line_bytes_max)?;
    if limits.headers_max <= HEADERS_STACK_CAPACITY {
        let mut headers =
            [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADERS_STACK_CAPACITY];
        parse_with_headers(buf, limits, &mut headers[..limits.headers_max])
    } else {
        let mut headers = Vec::with_capacity(limits.headers_max);
        headers.resize_with(limits.headers_max, MaybeUninit::uninit);
        parse_with_headers(buf, limits, &mut headers)
    }
}

fn parse_with_headers<'b>(
    buf: &'b [u8],
    limits: &HttpLimits,
    headers: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Parse, HttpError> {
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(buf, headers) {
        Ok(httparse::Status::Partial) => {
            // Everything in `buf` belongs to the head, so a head that is not done at the limit
            // can only end up longer than it.
            if buf.len() >= limits.header_bytes_max {
                Err(HttpError::HeaderTooLarge)
            } else {
                Ok(Parse::Partial)
            }
        }
        Ok(httparse::Status::Complete(head_len)) => {
            if head_len > limits.header_bytes_max {
                return Err(HttpError::HeaderTooLarge);
            }
            build_head(&req, head_len).map(Parse::Complete)
        }
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeaderTooLarge),
        Err(httparse::Error::Version) => Err(classify_version_error(buf)),
        Err(_) => Err(HttpError::Malformed),
    }
}

/// The request line after any leading empty lines, without its line ending (or, while the line
/// is still arriving, the bytes of it received so far).
fn request_line(buf: &[u8]) -> &[u8] {
    let mut rest = buf;
    while let [b'\r', b'\n', tail @ ..] | [b'\n', tail @ ..] = rest {
        rest = tail;
    }
    match rest.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let line = &rest[..end];
            line.strip_suffix(b"\r").unwrap_or(line)
        }
        // Not terminated yet: a trailing CR may be half of the CRLF, so it does not count.
        None => rest.strip_suffix(b"\r").unwrap_or(rest),
    }
}

fn check_request_line(buf: &[u8], request_line_bytes_max: usize) -> Result<(), HttpError> {
    if request_line(buf).len() > request_line_bytes_max {
        Err(HttpError::UriTooLong)
    } else {
        Ok(())
    }
}

/// httparse reports both `HTTP/2.0` and `FOO/1.1` as a version error; only the first deserves
/// 505 (RFC 9110 §15.6.6), the second is just a bad request.
fn classify_version_error(buf: &[u8]) -> HttpError {
    let line = request_line(buf);
    let version = match line.iter().rposition(|&b| b == b' ') {
        Some(space) => &line[space + 1..],
        None => line,
    };
    match version {
        [b'H', b'T', b'T', b'P', b'/', digit, ..] if digit.is_ascii_digit() => {
            HttpError::VersionNotSupported
        }
        _ => HttpError::Malformed,
    }
}

/// Splits a request-target into (path, query, authority).
fn split_target(
    target: &str,
    method: Method,
) -> Result<(&str, Option<&str>, Option<&str>), HttpError> {
    // A fragment is never part of a request-target (RFC 9112 §3.2); one here means a broken
    // client or an attempt to make two parsers disagree about the path.
    if target.contains('#') {
        return Err(HttpError::Malformed);
    }
    if target == "*" {
        return if method == Method::Options {
            Ok(("*", None, None))
        } else {
            Err(HttpError::Malformed)
        };
    }
    let (authority, path_and_query) = if target.starts_with('/') {
        (None, target)
    } else {
        let after_scheme = strip_prefix_ignore_case(target, "http://")
            .or_else(|| strip_prefix_ignore_case(target, "https://"))
            .ok_or(HttpError::Malformed)?;
        let authority_end = after_scheme.find(['/', '?']).unwrap_or(after_scheme.len());
        let authority = &after_scheme[..authority_end];
        if authority.is_empty() {
            return Err(HttpError::Malformed);
        }
        (Some(authority), &after_scheme[authority_end..])
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    // `http://host?q` has an empty path, which means `/` (RFC 9112 §3.2.2).
    let path = if path.is_empty() { "/" } else { path };
    Ok((path, query, authority))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

fn value_str(value: &[u8]) -> Result<&str, HttpError> {
    std::str::from_utf8(value.trim_ascii()).map_err(|_| HttpError::Malformed)
}

/// Appends one more field line to a combined field value.
fn combine(slot: &mut Option<String>, value: &str) {
    match slot {
        Some(existing) => {
            existing.push_str(", ");
            existing.push_str(value);
        }
        None => *slot = Some(value.to_owned()),
    }
}

/// `Content-Length` is `1*DIGIT`; a list of identical values (from a proxy that merged lines)
/// is accepted as RFC 9110 §8.6 allows, anything else is refused.
fn merge_content_length(slot: &mut Option<u64>, value: &[u8]) -> Result<(), HttpError> {
    for element in value.split(|&b| b == b',') {
        let element = element.trim_ascii();
        if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
            return Err(HttpError::BadContentLength);
        }
        let mut length: u64 = 0;
        for &digit in element {
            length = length
                .checked_mul(10)
                .and_then(|l| l.checked_add(u64::from(digit - b'0')))
                .ok_or(HttpError::BadContentLength)?;
        }
        match *slot {
            Some(existing) if existing != length => return Err(HttpError::BadContentLength),
            _ => *slot = Some(length),
        }
    }
    Ok(())
}

fn build_head(req: &httparse::Request<'_, '_>, head_len: usize) -> Result<RequestHead, HttpError> {
    // httparse fills every field on `Complete`; a `None` would be its bug, answered as 400.
    let method_raw = req.method.ok_or(HttpError::Malformed)?;
    let target = req.path.ok_or(HttpError::Malformed)?;
    let version = match req.version {
        Some(0) => Version::Http10,
        Some(1) => Version::Http11,
        _ => return Err(HttpError::VersionNotSupported),
    };
    let method = Method::from_token(method_raw);
    let (path, query, authority) = split_target(target, method)?;

    let mut content_length = None;
    let mut transfer_encoding_lines = 0usize;
    let mut transfer_encoding_chunked = false;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expect_continue = false;
    let mut host_lines = 0usize;
    let mut host = None;
    let mut range = None;
    let mut if_none_match = None;
    let mut if_modified_since = None;
    let mut if_range = None;
    let mut if_match = None;
    let mut if_unmodified_since = None;
    let mut origin = None;

    for header in req.headers.iter() {
        let name = header.name;
        let is = |candidate: &str| name.eq_ignore_ascii_case(candidate);
        if is("content-length") {
            merge_content_length(&mut content_length, header.value)?;
        } else if is("transfer-encoding") {
            transfer_encoding_lines += 1;
            transfer_encoding_chunked = header.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        } else if is("connection") {
            for token in header.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                connection_close |= token.eq_ignore_ascii_case(b"close");
                connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if is("expect") {
            expect_continue |= header
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue");
        } else if is("host") {
            host_lines += 1;
            host = Some(value_str(header.value)?.to_owned());
        } else if is("range") {
            combine(&mut range, value_str(header.value)?);
        } else if is("if-none-match") {
            combine(&mut if_none_match, value_str(header.value)?);
        } else if is("if-modified-since") {
            combine(&mut if_modified_since, value_str(header.value)?);
        } else if is("if-range") {
            combine(&mut if_range, value_str(header.value)?);
        } else if is("if-match") {
            combine(&mut if_match, value_str(header.value)?);
        } else if is("if-unmodified-since") {
            combine(&mut if_unmodified_since, value_str(header.value)?);
        } else if is("origin") {
            combine(&mut origin, value_str(header.value)?);
        }
    }

    // Framing (RFC 9112 §6.1, §6.3): exactly one `Transfer-Encoding: chunked`, never together
    // with Content-Length, never on HTTP/1.0 (which has no chunked coding).
    let chunked = transfer_encoding_lines > 0;
    if chunked
        && (transfer_encoding_lines > 1
            || !transfer_encoding_chunked
            || content_length.is_some()
            || version == Version::Http10)
    {
        return Err(HttpError::BadTransferEncoding);
    }

    // RFC 9112 §3.2: an HTTP/1.1 request without Host, or with more than one, MUST get 400.
    if host_lines > 1 || (version == Version::Http11 && host_lines == 0) {
        return Err(HttpError::Malformed);
    }
    if let Some(authority) = authority {
        host = Some(authority.to_owned());
    }

    let keep_alive = match version {
        Version::Http11 => !connection_close,
        Version::Http10 => connection_keep_alive && !connection_close,
    };

    Ok(RequestHead {
        method,
        method_raw: method_raw.to_owned(),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        version,
        keep_alive,
        content_length,
        chunked,
        expect_continue: expect_continue && version == Version::Http11,
        host,
        range,
        if_none_match,
        if_modified_since,
        if_range,
        if_match,
        if_unmodified_since,
        origin,
        head_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(buf: &[u8]) -> Result<Parse, HttpError> {
        parse_request(buf, &HttpLimits::default())
    }

    fn complete(buf: &[u8]) -> RequestHead {
        match parse(buf) {
            Ok(Parse::Complete(head)) => head,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    const SIMPLE_GET: &[u8] = b"GET /vod/a%20b.mp4?sig=x&e=1 HTTP/1.1\r\nHost: example.com\r\nRange: bytes=0-99\r\nIf-None-Match: \"abc\"\r\n\r\n";

    #[test]
    fn simple_get_fields() {
        let head = complete(SIMPLE_GET);
        assert_eq!(head.method, Method::Get);
        assert_eq!(head.method_raw, "GET");
        assert_eq!(head.path, "/vod/a%20b.mp4");
        assert_eq!(head.query.as_deref(), Some("sig=x&e=1"));
        assert_eq!(head.version, Version::Http11);
        assert!(head.keep_alive);
        assert_eq!(head.content_length, None);
        assert!(!head.chunked);
        assert!(!head.expect_continue);
        assert_eq!(head.host.as_deref(), Some("example.com"));
        assert_eq!(head.range.as_deref(), Some("bytes=0-99"));
        assert_eq!(head.if_none_match.as_deref(), Some("\"abc\""));
        assert_eq!(head.if_modified_since, None);
        assert_eq!(head.head_len, SIMPLE_GET.len());
    }

    #[test]
    fn every_conditional_and_origin_field_is_captured() {
        let head = complete(
            b"GET / HTTP/1.1\r\nhost: h\r\nIF-MATCH: \"a\"\r\nif-unmodified-since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
              If-Modified-Since: Mon, 07 Nov 1994 08:49:37 GMT\r\nIf-Range: \"r\"\r\nOrigin: https://o.example\r\n\r\n",
        );
        assert_eq!(head.if_match.as_deref(), Some("\"a\""));
        assert_eq!(
            head.if_unmodified_since.as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(
            head.if_modified_since.as_deref(),
            Some("Mon, 07 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(head.if_range.as_deref(), Some("\"r\""));
        assert_eq!(head.origin.as_deref(), Some("https://o.example"));
    }

    #[test]
    fn methods_are_case_sensitive_tokens() {
        for (raw, method) in [
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("DELETE", Method::Delete),
            ("OPTIONS", Method::Options),
            ("PATCH", Method::Other),
            ("get", Method::Other),
        ] {
            let req = format!("{raw} /x HTTP/1.1\r\nHost: h\r\n\r\n");
            let head = complete(req.as_bytes());
            assert_eq!(head.method, method, "{raw}");
            assert_eq!(head.method_raw, raw);
        }
    }

    #[test]
    fn request_target_forms() {
        let head = complete(
            b"GET http://Edge.example:8080/live/a.flv?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
        );
        assert_eq!(head.path, "/live/a.flv");
        assert_eq!(head.query.as_deref(), Some("x=1"));
        assert_eq!(head.host.as_deref(), Some("Edge.example:8080"));

        let head = complete(b"GET HTTPS://h?q HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(
            (head.path.as_str(), head.query.as_deref()),
            ("/", Some("q"))
        );

        let head = complete(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.path, "*");

        let head = complete(b"GET /a? HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(
            (head.path.as_str(), head.query.as_deref()),
            ("/a", Some(""))
        );

        for bad in [
            &b"GET * HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET ftp://h/a HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET http:///a HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",
            b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(HttpError::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn malformed_requests() {
        for bad in [
            &b"\x00\x01\x02 / HTTP/1.1\r\n\r\n"[..],
            b"GET  /a HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost : h\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
            b"GET /a HTTP/1.1\r\nBad\x01Name: v\r\nHost: h\r\n\r\n",
            b"GET /a FOO/1.1\r\nHost: h\r\n\r\n",
            // HTTP/1.1 needs exactly one Host (RFC 9112 §3.2).
            b"GET /a HTTP/1.1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            // A header we read must be text.
            b"GET /a HTTP/1.1\r\nHost: h\r\nRange: \xff\xfe\r\n\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(HttpError::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // HTTP/1.0 may omit Host.
        assert_eq!(complete(b"GET /a HTTP/1.0\r\n\r\n").host, None);
    }

    #[test]
    fn version_not_supported() {
        for bad in [
            &b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"[..],
            b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
            b"GET / HTTP/3\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(HttpError::VersionNotSupported),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn uri_too_long_complete_and_incomplete() {
        let limits = HttpLimits {
            request_line_bytes_max: 32,
            ..HttpLimits::default()
        };
        // "GET /xxxxxxxxxxxxxxxxxxxxxx HTTP/1.1" is exactly 32 bytes and passes.
        let fits = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "x".repeat(18));
        assert!(matches!(
            parse_request(fits.as_bytes(), &limits),
            Ok(Parse::Complete(_))
        ));
        let too_long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "x".repeat(19));
        assert_eq!(
            parse_request(too_long.as_bytes(), &limits),
            Err(HttpError::UriTooLong)
        );
        // Still arriving: 33 bytes of request line and no CRLF yet.
        let arriving = format!("GET /{}", "x".repeat(28));
        assert_eq!(
            parse_request(arriving.as_bytes(), &limits),
            Err(HttpError::UriTooLong)
        );
        // 32 bytes plus the CR of the CRLF: the line may still be exactly 32.
        let with_cr = format!("GET /{} HTTP/1.1\r", "x".repeat(18));
        assert_eq!(
            parse_request(with_cr.as_bytes(), &limits),
            Ok(Parse::Partial)
        );
    }

    #[test]
    fn header_too_large() {
        let limits = HttpLimits {
            header_bytes_max: 64,
            ..HttpLimits::default()
        };
        let head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        assert!(matches!(
            parse_request(head, &limits),
            Ok(Parse::Complete(_))
        ));
        // Incomplete and at the limit.
        let incomplete = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {}", "p".repeat(64));
        assert_eq!(
            parse_request(&incomplete.as_bytes()[..64], &limits),
            Err(HttpError::HeaderTooLarge)
        );
        assert_eq!(
            parse_request(&incomplete.as_bytes()[..63], &limits),
            Ok(Parse::Partial)
        );
        // Complete but longer than the limit.
        let long = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(40)
        );
        assert_eq!(
            parse_request(long.as_bytes(), &limits),
            Err(HttpError::HeaderTooLarge)
        );
        // Exactly at the limit is fine.
        let exact = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(28)
        );
        assert_eq!(exact.len(), 64);
        assert!(matches!(
            parse_request(exact.as_bytes(), &limits),
            Ok(Parse::Complete(_))
        ));
        // Endless empty lines count against the head limit too.
        assert_eq!(
            parse_request(&[b'\n'; 64], &limits),
            Err(HttpError::HeaderTooLarge)
        );
    }

    fn with_headers(count: usize) -> String {
        let mut req = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
        for i in 1..count {
            req.push_str(&format!("X-{i}: v\r\n"));
        }
        req.push_str("\r\n");
        req
    }

    #[test]
    fn too_many_headers() {
        let limits = HttpLimits {
            headers_max: 4,
            ..HttpLimits::default()
        };
        assert!(matches!(
            parse_request(with_headers(4).as_bytes(), &limits),
            Ok(Parse::Complete(_))
        ));
        assert_eq!(
            parse_request(with_headers(5).as_bytes(), &limits),
            Err(HttpError::HeaderTooLarge)
        );
    }

    #[test]
    fn headers_max_above_stack_capacity_uses_the_heap_path() {
        let limits = HttpLimits {
            headers_max: HEADERS_STACK_CAPACITY + 10,
            header_bytes_max: 1 << 20,
            ..HttpLimits::default()
        };
        let ok = with_headers(HEADERS_STACK_CAPACITY + 10);
        assert!(matches!(
            parse_request(ok.as_bytes(), &limits),
            Ok(Parse::Complete(_))
        ));
        let too_many = with_headers(HEADERS_STACK_CAPACITY + 11);
        assert_eq!(
            parse_request(too_many.as_bytes(), &limits),
            Err(HttpError::HeaderTooLarge)
        );
    }

    #[test]
    fn content_length_rules() {
        let cl = |value: &str| {
            parse(
                format!("POST /in HTTP/1.1\r\nHost: h\r\nContent-Length: {value}\r\n\r\n")
                    .as_bytes(),
            )
            .map(|p| match p {
                Parse::Complete(h) => h.content_length,
                Parse::Partial => panic!("partial"),
            })
        };
        assert_eq!(cl("0"), Ok(Some(0)));
        assert_eq!(cl("1234"), Ok(Some(1234)));
        assert_eq!(cl("18446744073709551615"), Ok(Some(u64::MAX)));
        assert_eq!(cl("5, 5"), Ok(Some(5)));
        for bad in [
            "18446744073709551616",
            "+5",
            "-1",
            "5a",
            "0x10",
            "5,6",
            "",
            "5,",
            "1 2",
        ] {
            assert_eq!(cl(bad), Err(HttpError::BadContentLength), "{bad:?}");
        }
        let dup_same = complete(
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\ncontent-length: 7\r\n\r\n",
        );
        assert_eq!(dup_same.content_length, Some(7));
        assert_eq!(
            parse(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n"),
            Err(HttpError::BadContentLength)
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        let head = complete(
            b"POST /live/a.flv HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked \r\n\r\n",
        );
        assert!(head.chunked);
        assert_eq!(head.content_length, None);
        for bad in [
            &b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(parse(bad), Err(HttpError::BadTransferEncoding), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn keep_alive_rules() {
        let table: [(&str, &str, bool); 9] = [
            ("HTTP/1.1", "", true),
            ("HTTP/1.1", "Connection: close\r\n", false),
            ("HTTP/1.1", "Connection: Keep-Alive, CLOSE\r\n", false),
            (
                "HTTP/1.1",
                "Connection: upgrade\r\nConnection: close\r\n",
                false,
            ),
            ("HTTP/1.1", "Connection: closed\r\n", true),
            ("HTTP/1.0", "", false),
            ("HTTP/1.0", "Connection: keep-alive\r\n", true),
            ("HTTP/1.0", "Connection: foo,  KEEP-ALIVE \r\n", true),
            ("HTTP/1.0", "Connection: keep-alive, close\r\n", false),
        ];
        for (version, headers, keep_alive) in table {
            let req = format!("GET / {version}\r\nHost: h\r\n{headers}\r\n");
            assert_eq!(complete(req.as_bytes()).keep_alive, keep_alive, "{req:?}");
        }
    }

    #[test]
    fn expect_continue_only_on_http11() {
        let req =
            b"PUT /a HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
        assert!(complete(req).expect_continue);
        let req = b"PUT /a HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
        assert!(!complete(req).expect_continue);
        let req = b"PUT /a HTTP/1.1\r\nHost: h\r\nExpect: something\r\n\r\n";
        assert!(!complete(req).expect_continue);
    }

    #[test]
    fn repeated_fields_are_combined() {
        let head = complete(b"GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\nIf-None-Match: W/\"b\"\r\nRange: bytes=0-1\r\nRange: bytes=5-6\r\n\r\n");
        assert_eq!(head.if_none_match.as_deref(), Some("\"a\", W/\"b\""));
        assert_eq!(head.range.as_deref(), Some("bytes=0-1, bytes=5-6"));
    }

    #[test]
    fn leading_empty_lines_are_skipped_and_counted() {
        let req = b"\r\n\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let head = complete(req);
        assert_eq!(head.path, "/");
        assert_eq!(head.head_len, req.len());
    }

    #[test]
    fn pipelined_requests() {
        let buf = b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nHEAD /two?x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /thr";
        let first = complete(buf);
        assert_eq!(
            (first.method, first.path.as_str(), first.keep_alive),
            (Method::Get, "/one", true)
        );
        let rest = &buf[first.head_len..];
        let second = complete(rest);
        assert_eq!(
            (second.method, second.path.as_str(), second.keep_alive),
            (Method::Head, "/two", false)
        );
        assert_eq!(second.query.as_deref(), Some("x"));
        let rest = &rest[second.head_len..];
        assert_eq!(rest, b"GET /thr");
        assert_eq!(parse(rest), Ok(Parse::Partial));
    }

    #[test]
    fn body_bytes_are_not_part_of_the_head() {
        let buf = b"POST /in HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let head = complete(buf);
        assert_eq!(&buf[head.head_len..], b"hello");
    }

    #[test]
    fn partial_at_every_split_point() {
        let expected = complete(SIMPLE_GET);
        for split in 0..SIMPLE_GET.len() {
            assert_eq!(
                parse(&SIMPLE_GET[..split]),
                Ok(Parse::Partial),
                "split at {split}"
            );
        }
        assert_eq!(parse(SIMPLE_GET), Ok(Parse::Complete(expected)));
    }

    fn valid_request() -> impl Strategy<Value = (String, RequestHead)> {
        let method = prop::sample::select(vec![
            "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH",
        ]);
        let path = prop::collection::vec("[A-Za-z0-9._~%-]{0,12}", 1..5);
        let query = prop::option::of("[A-Za-z0-9=&%._-]{0,20}");
        let version = prop::bool::ANY;
        let connection = prop::option::of(prop::sample::select(vec![
            "close",
            "keep-alive",
            "Upgrade",
            "keep-alive, close",
        ]));
        let body = prop::option::of(prop_oneof![any::<u64>().prop_map(Some), Just(None)]);
        let range = prop::option::of("bytes=[0-9]{0,5}-[0-9]{0,5}");
        let host = "[a-z0-9.-]{1,20}(:[0-9]{1,5})?";
        let upper = prop::bool::ANY;
        let extra = prop::collection::vec(("X-[A-Za-z0-9-]{1,10}", "[ -~]{0,30}"), 0..6);
        (
            method, path, query, version, connection, body, range, host, upper, extra,
        )
            .prop_map(
                |(method, path, query, http11, connection, body, range, host, upper, extra)| {
                    let name = |n: &str| {
                        if upper {
                            n.to_ascii_uppercase()
                        } else {
                            n.to_ascii_lowercase()
                        }
                    };
                    let path = format!("/{}", path.join("/"));
                    let mut req = format!("{method} {path}");
                    if let Some(q) = &query {
                        req.push('?');
                        req.push_str(q);
                    }
                    req.push_str(if http11 {
                        " HTTP/1.1\r\n"
                    } else {
                        " HTTP/1.0\r\n"
                    });
                    req.push_str(&format!("{}: {host}\r\n", name("Host")));
                    for (n, v) in &extra {
                        req.push_str(&format!("{n}: {v}\r\n"));
                    }
                    if let Some(c) = connection {
                        req.push_str(&format!("{}: {c}\r\n", name("Connection")));
                    }
                    let (content_length, chunked) = match body {
                        Some(Some(len)) => {
                            req.push_str(&format!("{}: {len}\r\n", name("Content-Length")));
                            (Some(len), false)
                        }
                        Some(None) if http11 => {
                            req.push_str(&format!("{}: chunked\r\n", name("Transfer-Encoding")));
                            (None, true)
                        }
                        _ => (None, false),
                    };
                    if let Some(r) = &range {
                        req.push_str(&format!("{}: {r}\r\n", name("Range")));
                    }
                    req.push_str("\r\n");
                    let close = connection.is_some_and(|c| c.contains("close"));
                    let keep_alive = if http11 {
                        !close
                    } else {
                        connection.is_some_and(|c| c.contains("keep-alive")) && !close
                    };
                    let head = RequestHead {
                        method: Method::from_token(method),
                        method_raw: method.to_owned(),
                        path,
                        query,
                        version: if http11 {
                            Version::Http11
                        } else {
                            Version::Http10
                        },
                        keep_alive,
                        content_length,
                        chunked,
                        expect_continue: false,
                        host: Some(host),
                        range,
                        if_none_match: None,
                        if_modified_since: None,
                        if_range: None,
                        if_match: None,
                        if_unmodified_since: None,
                        origin: None,
                        head_len: req.len(),
                    };
                    (req, head)
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&buf);
            let tight = HttpLimits { header_bytes_max: 40, request_line_bytes_max: 16, headers_max: 2 };
            let _ = parse_request(&buf, &tight);
        }

        #[test]
        fn request_like_bytes_never_panic(
            buf in prop::collection::vec(prop::sample::select(b"GET /HTP1.0\r\n:;,-=Hostcnkdlga \t\"*?#%".to_vec()), 0..300)
        ) {
            let _ = parse(&buf);
        }

        #[test]
        fn generated_valid_request_parses_to_its_fields((req, expected) in valid_request()) {
            let limits = HttpLimits { header_bytes_max: 1 << 16, ..HttpLimits::default() };
            prop_assert_eq!(parse_request(req.as_bytes(), &limits), Ok(Parse::Complete(expected.clone())));
            // Followed by a body or the next request, the head is the same.
            let mut with_tail = req.clone().into_bytes();
            with_tail.extend_from_slice(b"GET / HTTP/1.1\r\n");
            prop_assert_eq!(parse_request(&with_tail, &limits), Ok(Parse::Complete(expected)));
            // Every strict prefix is Partial.
            let cut = req.len() / 2;
            prop_assert_eq!(parse_request(&req.as_bytes()[..cut], &limits), Ok(Parse::Partial));
        }
    }
}
