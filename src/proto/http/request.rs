//! Request-head parsing on top of `httparse`, plus the framing rules httparse leaves to us
//! (body length, keep-alive, limits).

use std::mem::MaybeUninit;

use super::HttpError;

/// Size limits for a request head. Every one is a named, configurable bound (the defaults
/// match common servers: nginx uses 8 KiB header buffers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// The whole head, leading empty lines and the final CRLFCRLF included.
    pub header_bytes_max: usize,
    /// The request line, without its CRLF. Longer lines get 414.
    pub request_line_bytes_max: usize,
    /// Header field lines. More get 431.
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

/// The request method. Methods are case-sensitive (RFC 9110 §9.1), so `get` is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
}

/// A parsed request head. Field values are copied out of the receive buffer so the buffer
/// can be advanced (and reused) right after parsing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The method token as sent, for logs and for `Other`.
    pub method_raw: String,
    /// The path as sent: still percent-encoded, without the query. For an absolute-form
    /// target (`GET http://host/p`) this is the path part (`/p`); for `OPTIONS *` it is `*`.
    pub path: String,
    /// What followed the first `?`, if there was one (possibly empty).
    pub query: Option<String>,
    pub version: Version,
    /// Whether the connection stays open after this exchange: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub keep_alive: bool,
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked` (the only transfer coding we accept).
    pub chunked: bool,
    /// `Expect: 100-continue` on HTTP/1.1 (ignored on HTTP/1.0, RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// The `Host` field, or the authority of an absolute-form target (which wins, RFC 9112
    /// §3.2.2).
    pub host: Option<String>,
    pub range: Option<String>,
    /// Several `If-None-Match` lines are joined with ", " (it is a list field).
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub if_range: Option<String>,
    /// Several `If-Match` lines are joined with ", " (it is a list field).
    pub if_match: Option<String>,
    pub if_unmodified_since: Option<String>,
    pub origin: Option<String>,
    /// `User-Agent` and `Referer`, for the access log only (invalid UTF-8 is replaced, never
    /// an error: a log field must not fail a request).
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    /// The `Authorization` field (the admin API's bearer token).
    pub authorization: Option<String>,
    /// Bytes of the head including leading empty lines and the final CRLFCRLF: advance the
    /// receive buffer by this much.
    pub head_len: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "returned once per request and moved straight out; boxing would allocate per request"
)]
pub enum Parse {
    /// The head is not complete yet and is still within the limits: read more.
    Partial,
    Complete(RequestHead),
}

/// Header slots kept on the stack. `httparse` needs a caller-supplied slot array; a stack
/// array of `MaybeUninit` costs nothing to set up, so any `headers_max` up to this bound
/// parses without allocating. A larger configured `headers_max` is still honoured exactly,
/// with one heap allocation per call, rather than being silently capped.
const HEADER_SLOTS_ON_STACK: usize = 128;

/// Parses one request head from the start of `buf`.
///
/// Only the first `header_bytes_max` bytes are looked at, so repeated calls while a slow
/// peer trickles bytes in cost at most that much each. Body bytes and pipelined requests
/// after the head are left alone: see [`RequestHead::head_len`].
pub fn parse_request(buf: &[u8], limits: &HttpLimits) -> Result<Parse, HttpError> {
    let window = &buf[..buf.len().min(limits.header_bytes_max)];
    check_request_line(window, limits.request_line_bytes_max)?;
    let truncated = buf.len() >= limits.header_bytes_max;
    if limits.headers_max <= HEADER_SLOTS_ON_STACK {
        let mut slots = [const { MaybeUninit::uninit() }; HEADER_SLOTS_ON_STACK];
        parse_with_slots(window, truncated, &mut slots[..limits.headers_max])
    } else {
        let mut slots = Vec::with_capacity(limits.headers_max);
        slots.resize_with(limits.headers_max, MaybeUninit::uninit);
        parse_with_slots(window, truncated, &mut slots)
    }
}

/// Fails with `UriTooLong` as soon as the request line is known to be longer than allowed,
/// even before its CRLF has arrived, so a peer cannot park a huge line in our buffer.
fn check_request_line(window: &[u8], line_bytes_max: usize) -> Result<(), HttpError> {
    // Skip the empty lines RFC 9112 §2.2 lets us tolerate before the request line.
    let mut start = 0;
    while start < window.len() {
        match window[start] {
            b'\n' => start += 1,
            b'\r' if window.get(start + 1) == Some(&b'\n') => start += 2,
            _ => break,
        }
    }
    let rest = &window[start..];
    let search = &rest[..rest.len().min(line_bytes_max.saturating_add(2))];
    let line_len = match search.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && rest[i - 1] == b'\r' => i - 1,
        Some(i) => i,
        // No LF yet. A trailing CR may still become the CRLF, so it does not count.
        None if rest.len() > line_bytes_max.saturating_add(1) => line_bytes_max + 1,
        None => rest.len() - usize::from(rest.ends_with(b"\r")),
    };
    if line_len > line_bytes_max {
        return Err(HttpError::UriTooLong);
    }
    Ok(())
}

fn parse_with_slots<'b>(
    window: &'b [u8],
    truncated: bool,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Parse, HttpError> {
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(head_len)) => build_head(&req, head_len).map(Parse::Complete),
        // The window holds `header_bytes_max` bytes and the head is still open: it can only
        // end up longer than allowed.
        Ok(httparse::Status::Partial) if truncated => Err(HttpError::HeaderTooLarge),
        Ok(httparse::Status::Partial) => Ok(Parse::Partial),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeaderTooLarge),
        Err(httparse::Error::Version) => Err(HttpError::VersionNotSupported),
        Err(_) => Err(HttpError::Malformed),
    }
}

fn build_head(req: &httparse::Request<'_, '_>, head_len: usize) -> Result<RequestHead, HttpError> {
    let (Some(method_raw), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HttpError::Malformed);
    };
    let version = match minor {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(HttpError::VersionNotSupported),
    };
    let (authority, origin_target) = split_absolute_form(target)?;
    let (mut path, query) = match origin_target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_owned())),
        None => (origin_target, None),
    };
    if path.is_empty() && authority.is_some() {
        // "http://h" and "http://h?q" mean path "/" (RFC 9112 §3.2.2).
        path = "/";
    }

    let mut head = RequestHead {
        method: Method::from_token(method_raw),
        method_raw: method_raw.to_owned(),
        path: path.to_owned(),
        query,
        version,
        keep_alive: false,
        content_length: None,
        chunked: false,
        expect_continue: false,
        host: None,
        range: None,
        if_none_match: None,
        if_modified_since: None,
        if_range: None,
        if_match: None,
        if_unmodified_since: None,
        origin: None,
        user_agent: None,
        referer: None,
        authorization: None,
        head_len,
    };

    let mut host_lines = 0usize;
    let mut transfer_encoding_seen = false;
    let mut chunked_count = 0usize;
    let mut other_coding = false;
    let mut connection_close = false;
    let mut connection_keep_alive = false;

    for field in req.headers.iter() {
        let name = field.name;
        let value = trim_ows(field.value);
        if name.eq_ignore_ascii_case("content-length") {
            merge_content_length(&mut head.content_length, value)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding_seen = true;
            for coding in list_items(value) {
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked_count += 1;
                } else {
                    other_coding = true;
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for option in list_items(value) {
                if option.eq_ignore_ascii_case(b"close") {
                    connection_close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    connection_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("host") {
            host_lines += 1;
            if !valid_host(value) {
                return Err(HttpError::Malformed);
            }
            head.host = Some(utf8(value)?.to_owned());
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("range") {
            set_first(&mut head.range, value)?;
        } else if name.eq_ignore_ascii_case("if-none-match") {
            append_list(&mut head.if_none_match, value)?;
        } else if name.eq_ignore_ascii_case("if-match") {
            append_list(&mut head.if_match, value)?;
        } else if name.eq_ignore_ascii_case("if-modified-since") {
            set_first(&mut head.if_modified_since, value)?;
        } else if name.eq_ignore_ascii_case("if-unmodified-since") {
            set_first(&mut head.if_unmodified_since, value)?;
        } else if name.eq_ignore_ascii_case("if-range") {
            set_first(&mut head.if_range, value)?;
        } else if name.eq_ignore_ascii_case("origin") {
            set_first(&mut head.origin, value)?;
        } else if name.eq_ignore_ascii_case("user-agent") {
            head.user_agent
                .get_or_insert_with(|| String::from_utf8_lossy(value).into_owned());
        } else if name.eq_ignore_ascii_case("referer") {
            head.referer
                .get_or_insert_with(|| String::from_utf8_lossy(value).into_owned());
        } else if name.eq_ignore_ascii_case("authorization") {
            set_first(&mut head.authorization, value)?;
        }
    }

    // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, for any request with more
    // than one Host line, and (above) for an invalid Host value.
    if host_lines > 1 || (host_lines == 0 && version == Version::Http11) {
        return Err(HttpError::Malformed);
    }
    if let Some(authority) = authority {
        head.host = Some(authority.to_owned());
    }

    if transfer_encoding_seen {
        // Smuggling defence (RFC 9112 §6.1, §6.3): with both framings, or chunked on a
        // version that predates it, front ends and we might disagree on where the body
        // ends, so refuse rather than pick one.
        if head.content_length.is_some() || version == Version::Http10 {
            return Err(HttpError::BadContentLength);
        }
        if other_coding || chunked_count != 1 {
            return Err(HttpError::BadTransferEncoding);
        }
        head.chunked = true;
    }

    head.keep_alive = match version {
        Version::Http11 => !connection_close,
        Version::Http10 => connection_keep_alive && !connection_close,
    };
    head.expect_continue &= version == Version::Http11;
    Ok(head)
}

/// Splits an absolute-form target (`http://host:port/path?q`) into its authority and the
/// rest (`/path?q`, possibly empty). Other forms pass through unchanged with no authority.
fn split_absolute_form(target: &str) -> Result<(Option<&str>, &str), HttpError> {
    let after_scheme = ["http://", "https://"].iter().find_map(|scheme| {
        let prefix = target.get(..scheme.len())?;
        prefix
            .eq_ignore_ascii_case(scheme)
            .then(|| &target[scheme.len()..])
    });
    let Some(rest) = after_scheme else {
        return Ok((None, target));
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    // Userinfo in an http(s) URI is deprecated (RFC 9110 §4.2.4) and only ever used to
    // confuse; an empty authority is invalid for http.
    if authority.is_empty() || authority.contains('@') || !valid_host(authority.as_bytes()) {
        return Err(HttpError::Malformed);
    }
    Ok((Some(authority), path))
}

/// A valid `Host` field value (RFC 9112 §3.2, RFC 3986 §3.2.2): `uri-host [ ":" port ]`,
/// where `uri-host` is an `IP-literal` in brackets or a `reg-name` (an IPv4 address is one),
/// and `port` is digits. The empty value is valid: a client sends it when the target has no
/// authority. Anything else (spaces, `/`, `@`, a stray bracket) is refused, so a value that
/// reaches logs or a future virtual-host lookup is always a plain authority.
fn valid_host(value: &[u8]) -> bool {
    fn unreserved_or_sub_delim(b: u8) -> bool {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            )
    }
    let (host, port) = if let Some(literal) = value.strip_prefix(b"[") {
        // IP-literal: IPv6address or IPvFuture ("v" HEXDIG "." ...): hex digits, dots,
        // colons, and for IPvFuture unreserved and sub-delims.
        let Some(end) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &literal[..end];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b == b':' || unreserved_or_sub_delim(b))
        {
            return false;
        }
        match &literal[end + 1..] {
            [] => (inside, None),
            [b':', port @ ..] => (inside, Some(port)),
            _ => return false,
        }
    } else {
        match value.iter().rposition(|&b| b == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        }
    };
    if !value.starts_with(b"[") {
        // reg-name: unreserved, sub-delims and percent-encoded octets.
        let mut i = 0;
        while i < host.len() {
            let b = host[i];
            if b == b'%' {
                let hex = host.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            if !unreserved_or_sub_delim(b) {
                return false;
            }
            i += 1;
        }
    }
    port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
}

fn merge_content_length(current: &mut Option<u64>, value: &[u8]) -> Result<(), HttpError> {
    // RFC 9110 §8.6 lets a recipient accept a list of identical values ("5, 5"); anything
    // else in a list, or differing repeats, is an error.
    let mut saw_item = false;
    for item in value.split(|&b| b == b',') {
        let item = trim_ows(item);
        let length = parse_decimal(item).ok_or(HttpError::BadContentLength)?;
        saw_item = true;
        match *current {
            Some(previous) if previous != length => return Err(HttpError::BadContentLength),
            _ => *current = Some(length),
        }
    }
    if !saw_item {
        return Err(HttpError::BadContentLength);
    }
    Ok(())
}

/// Strict unsigned decimal: digits only, no sign, no spaces, no overflow.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// Non-empty items of a comma-separated list (RFC 9110 §5.6.1: empty items are ignored).
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

fn utf8(value: &[u8]) -> Result<&str, HttpError> {
    std::str::from_utf8(value).map_err(|_| HttpError::Malformed)
}

/// Single-valued fields: the first line wins. A repeat is a client bug we need not punish.
fn set_first(slot: &mut Option<String>, value: &[u8]) -> Result<(), HttpError> {
    let text = utf8(value)?;
    if slot.is_none() {
        *slot = Some(text.to_owned());
    }
    Ok(())
}

/// List-valued fields: repeated lines mean the same as one line joined by commas.
fn append_list(slot: &mut Option<String>, value: &[u8]) -> Result<(), HttpError> {
    let text = utf8(value)?;
    match slot {
        Some(existing) => {
            existing.push_str(", ");
            existing.push_str(text);
        }
        None => *slot = Some(text.to_owned()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits() -> HttpLimits {
        HttpLimits::default()
    }

    fn complete(buf: &[u8]) -> RequestHead {
        match parse_request(buf, &limits()) {
            Ok(Parse::Complete(head)) => head,
            other => panic!(
                "expected Complete for {:?}, got {other:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }

    fn error(buf: &[u8]) -> HttpError {
        error_with(buf, &limits())
    }

    fn error_with(buf: &[u8], limits: &HttpLimits) -> HttpError {
        match parse_request(buf, limits) {
            Err(e) => e,
            other => panic!(
                "expected an error for {:?}, got {other:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }

    const TYPICAL: &[u8] = b"GET /vod/a%20b.mp4?token=x&y=1 HTTP/1.1\r\n\
        Host: example.com:8080\r\n\
        Range: bytes=0-99\r\n\
        If-None-Match: \"abc\"\r\n\
        If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
        If-Range: \"abc\"\r\n\
        If-Match: *\r\n\
        If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
        Origin: https://player.example\r\n\
        User-Agent: test\r\n\
        \r\n";

    #[test]
    fn typical_get_fills_every_field() {
        let head = complete(TYPICAL);
        assert_eq!(head.method, Method::Get);
        assert_eq!(head.method_raw, "GET");
        assert_eq!(head.path, "/vod/a%20b.mp4");
        assert_eq!(head.query.as_deref(), Some("token=x&y=1"));
        assert_eq!(head.version, Version::Http11);
        assert!(head.keep_alive);
        assert_eq!(head.content_length, None);
        assert!(!head.chunked);
        assert!(!head.expect_continue);
        assert_eq!(head.host.as_deref(), Some("example.com:8080"));
        assert_eq!(head.range.as_deref(), Some("bytes=0-99"));
        assert_eq!(head.if_none_match.as_deref(), Some("\"abc\""));
        assert_eq!(
            head.if_modified_since.as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(head.if_range.as_deref(), Some("\"abc\""));
        assert_eq!(head.if_match.as_deref(), Some("*"));
        assert_eq!(
            head.if_unmodified_since.as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(head.origin.as_deref(), Some("https://player.example"));
        assert_eq!(head.head_len, TYPICAL.len());
        let head = complete(
            b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8 \xff\r\nReferer: https://r.example/\r\nUser-Agent: second\r\n\r\n",
        );
        assert_eq!(head.user_agent.as_deref(), Some("curl/8 \u{fffd}"));
        assert_eq!(head.referer.as_deref(), Some("https://r.example/"));
    }

    #[test]
    fn methods_are_case_sensitive_tokens() {
        for (token, method) in [
            ("GET", Method::Get),
            ("HEAD", Method::Head),
            ("POST", Method::Post),
            ("PUT", Method::Put),
            ("DELETE", Method::Delete),
            ("OPTIONS", Method::Options),
            ("PATCH", Method::Other),
            ("get", Method::Other),
        ] {
            let req = format!("{token} / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
            let head = complete(req.as_bytes());
            assert_eq!(head.method, method, "{token}");
            assert_eq!(head.method_raw, token);
        }
    }

    #[test]
    fn keep_alive_rules() {
        let cases: [(&[u8], bool); 8] = [
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n",
                false,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
                true,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: foo,, keep-alive \r\n\r\n",
                true,
            ),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                false,
            ),
        ];
        for (req, keep_alive) in cases {
            assert_eq!(
                complete(req).keep_alive,
                keep_alive,
                "{}",
                String::from_utf8_lossy(req)
            );
        }
    }

    #[test]
    fn body_framing_fields() {
        let head = complete(b"POST /live/a.flv HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\nExpect: 100-Continue\r\n\r\n");
        assert!(head.chunked);
        assert!(head.expect_continue);
        assert_eq!(head.content_length, None);

        let head = complete(
            b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 42\r\nContent-Length: 42\r\n\r\n",
        );
        assert_eq!(head.content_length, Some(42));
        assert!(!head.chunked);

        let head = complete(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 7 , 7\r\n\r\n");
        assert_eq!(head.content_length, Some(7));

        let head =
            complete(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551615\r\n\r\n");
        assert_eq!(head.content_length, Some(u64::MAX));

        // Expect is an HTTP/1.1 feature (RFC 9110 §10.1.1).
        let head =
            complete(b"PUT /x HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n");
        assert!(!head.expect_continue);
    }

    #[test]
    fn smuggling_shapes_are_rejected() {
        let cases: [(&[u8], HttpError); 13] = [
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", HttpError::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", HttpError::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", HttpError::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\n", HttpError::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", HttpError::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", HttpError::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\n", HttpError::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n", HttpError::BadContentLength),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HttpError::BadContentLength),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HttpError::BadTransferEncoding),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", HttpError::BadTransferEncoding),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", HttpError::BadTransferEncoding),
            (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", HttpError::BadTransferEncoding),
        ];
        for (req, expected) in cases {
            assert_eq!(error(req), expected, "{}", String::from_utf8_lossy(req));
        }
    }

    #[test]
    fn host_rules() {
        assert_eq!(error(b"GET / HTTP/1.1\r\n\r\n"), HttpError::Malformed);
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            HttpError::Malformed
        );
        assert_eq!(
            error(b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"),
            HttpError::Malformed
        );
        assert_eq!(complete(b"GET / HTTP/1.0\r\n\r\n").host, None);
        // Absolute form: the target's authority replaces the Host field.
        let head =
            complete(b"GET HTTP://media.example:81/vod/x.ts?a=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(head.host.as_deref(), Some("media.example:81"));
        assert_eq!(head.path, "/vod/x.ts");
        assert_eq!(head.query.as_deref(), Some("a=1"));
        let head = complete(b"GET http://media.example HTTP/1.1\r\nHost: media.example\r\n\r\n");
        assert_eq!(head.path, "/");
        assert_eq!(
            error(b"GET http://user@h/ HTTP/1.1\r\nHost: h\r\n\r\n"),
            HttpError::Malformed
        );
        assert_eq!(
            error(b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n"),
            HttpError::Malformed
        );
        let head = complete(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(head.path, "*");
    }

    #[test]
    fn host_values_must_be_an_authority() {
        for good in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a%20b",
            "host:",
            ":80",
            "",
        ] {
            let req = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
            assert_eq!(
                complete(req.as_bytes()).host.as_deref(),
                Some(good),
                "{good:?}"
            );
        }
        for bad in [
            "a b",
            "a\tb",
            "a/b",
            "user@host",
            "host:80x",
            "host:8 0",
            "[::1",
            "[]",
            "[::1]x",
            "::1]",
            "a%2",
            "a%zz",
            "h\"q",
            "h<x>",
        ] {
            let req = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
            assert_eq!(error(req.as_bytes()), HttpError::Malformed, "{bad:?}");
            // On HTTP/1.0 too: Host is optional there, but an invalid one is still invalid.
            let req = format!("GET / HTTP/1.0\r\nHost: {bad}\r\n\r\n");
            assert_eq!(error(req.as_bytes()), HttpError::Malformed, "{bad:?}");
        }
        // Obs-text in Host is not a host either.
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nHost: caf\xe9\r\n\r\n"),
            HttpError::Malformed
        );
        // The absolute-form authority obeys the same grammar.
        assert_eq!(
            error(b"GET http://a%zz/x HTTP/1.1\r\nHost: h\r\n\r\n"),
            HttpError::Malformed
        );
    }

    #[test]
    fn grammar_errors_are_malformed() {
        let cases: [&[u8]; 6] = [
            b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHo(st: h\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\rHost: h\r\n\r\n",
            b"G\x01T / HTTP/1.1\r\nHost: h\r\n\r\n",
        ];
        for req in cases {
            assert_eq!(
                error(req),
                HttpError::Malformed,
                "{}",
                String::from_utf8_lossy(req)
            );
        }
        // A field we store must be UTF-8.
        assert_eq!(
            error(b"GET / HTTP/1.1\r\nHost: h\r\nRange: bytes=\xff\r\n\r\n"),
            HttpError::Malformed
        );
        // Fields we do not look at may carry obs-text.
        assert!(complete(b"GET / HTTP/1.1\r\nHost: h\r\nX-Note: caf\xe9\r\n\r\n").keep_alive);
    }

    #[test]
    fn versions() {
        assert_eq!(
            error(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"),
            HttpError::VersionNotSupported
        );
        assert_eq!(
            error(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"),
            HttpError::VersionNotSupported
        );
        assert_eq!(complete(b"GET / HTTP/1.0\r\n\r\n").version, Version::Http10);
    }

    #[test]
    fn request_line_limit() {
        let small = HttpLimits {
            request_line_bytes_max: 20,
            ..limits()
        };
        // Exactly at the limit: fine.
        let line = b"GET /0123456 HTTP/1.1"; // 21 bytes
        assert_eq!(line.len(), 21);
        let ok_line = b"GET /012345 HTTP/1.1"; // 20 bytes
        let mut req = ok_line.to_vec();
        req.extend_from_slice(b"\r\nHost: h\r\n\r\n");
        assert!(matches!(
            parse_request(&req, &small),
            Ok(Parse::Complete(_))
        ));
        // One byte over, complete or not.
        let mut req = line.to_vec();
        req.extend_from_slice(b"\r\nHost: h\r\n\r\n");
        assert_eq!(error_with(&req, &small), HttpError::UriTooLong);
        assert_eq!(error_with(&line[..], &small), HttpError::UriTooLong);
        // Incomplete but within: Partial, also with a dangling CR.
        assert_eq!(parse_request(ok_line, &small), Ok(Parse::Partial));
        let mut dangling = ok_line.to_vec();
        dangling.push(b'\r');
        assert_eq!(parse_request(&dangling, &small), Ok(Parse::Partial));
        // A long URI without any newline yet.
        assert_eq!(error(&[b'A'; 5000]), HttpError::UriTooLong);
    }

    #[test]
    fn header_size_limits() {
        let small = HttpLimits {
            header_bytes_max: 64,
            ..limits()
        };
        let req = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        assert!(matches!(parse_request(req, &small), Ok(Parse::Complete(_))));
        let mut big = b"GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ".to_vec();
        big.resize(60, b'p');
        big.extend_from_slice(b"\r\n\r\n"); // 64 bytes: exactly at the limit
        assert_eq!(big.len(), 64);
        assert!(matches!(
            parse_request(&big, &small),
            Ok(Parse::Complete(_))
        ));
        big.insert(40, b'p'); // 65 bytes
        assert_eq!(error_with(&big, &small), HttpError::HeaderTooLarge);
        // Incomplete and already at the limit.
        assert_eq!(error_with(&big[..64], &small), HttpError::HeaderTooLarge);
        assert_eq!(parse_request(&big[..63], &small), Ok(Parse::Partial));
        // Endless empty lines cannot keep us waiting forever either.
        assert_eq!(error_with(&[b'\n'; 64], &small), HttpError::HeaderTooLarge);
    }

    #[test]
    fn header_count_limit() {
        let few = HttpLimits {
            headers_max: 3,
            ..limits()
        };
        let three = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(matches!(parse_request(three, &few), Ok(Parse::Complete(_))));
        let four = b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(error_with(four, &few), HttpError::HeaderTooLarge);
        // Even before the head is complete.
        assert_eq!(
            error_with(&four[..four.len() - 2], &few),
            HttpError::HeaderTooLarge
        );
        // A limit above the stack slots is honoured exactly, not capped.
        let many = HttpLimits {
            headers_max: 200,
            header_bytes_max: 1 << 16,
            ..limits()
        };
        let mut req = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..199 {
            req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        assert!(matches!(parse_request(&req, &many), Ok(Parse::Complete(_))));
        let mut over = req[..req.len() - 2].to_vec();
        over.extend_from_slice(b"X-last: v\r\n\r\n");
        assert_eq!(error_with(&over, &many), HttpError::HeaderTooLarge);
    }

    #[test]
    fn leading_empty_lines_are_tolerated_and_counted() {
        let req = b"\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        let head = complete(req);
        assert_eq!(head.head_len, req.len());
    }

    #[test]
    fn pipelined_requests() {
        let buf = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nHEAD /b HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /c";
        let first = complete(buf);
        assert_eq!(first.path, "/a");
        assert_eq!(first.method, Method::Get);
        let rest = &buf[first.head_len..];
        let second = complete(rest);
        assert_eq!(second.path, "/b");
        assert_eq!(second.method, Method::Head);
        assert!(!second.keep_alive);
        let rest = &rest[second.head_len..];
        assert_eq!(rest, b"GET /c");
        assert_eq!(parse_request(rest, &limits()), Ok(Parse::Partial));
    }

    #[test]
    fn body_bytes_stay_with_the_caller() {
        let buf = b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        let head = complete(buf);
        assert_eq!(&buf[head.head_len..], b"hello");
    }

    #[test]
    fn every_prefix_is_partial() {
        for split in 0..TYPICAL.len() {
            assert_eq!(
                parse_request(&TYPICAL[..split], &limits()),
                Ok(Parse::Partial),
                "split at {split}"
            );
        }
        let whole = complete(TYPICAL);
        // And the full buffer followed by anything gives the same head.
        let mut longer = TYPICAL.to_vec();
        longer.extend_from_slice(b"GET / HT");
        assert_eq!(complete(&longer), whole);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let small = HttpLimits { header_bytes_max: 256, request_line_bytes_max: 100, headers_max: 4 };
            for limits in [HttpLimits::default(), small] {
                if let Ok(Parse::Complete(head)) = parse_request(&bytes, &limits) {
                    prop_assert!(head.head_len <= bytes.len());
                    prop_assert!(head.head_len <= limits.header_bytes_max);
                }
            }
        }

        #[test]
        fn request_like_bytes_never_panic(
            method in "(GET|HEAD|POST|PUT|X)",
            target in "[ -~]{0,40}",
            fields in proptest::collection::vec(("[A-Za-z-]{1,20}", "[ -~\t]{0,30}"), 0..8),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut req = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
            for (name, value) in &fields {
                req.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            req.extend_from_slice(b"\r\n");
            req.extend_from_slice(&tail);
            let _ = parse_request(&req, &HttpLimits::default());
        }

        #[test]
        fn generated_valid_requests_parse_to_their_fields(
            method in prop_oneof![Just("GET"), Just("HEAD"), Just("POST"), Just("PUT"), Just("DELETE"), Just("OPTIONS"), Just("PURGE")],
            segments in proptest::collection::vec("[A-Za-z0-9._~%-]{1,12}", 0..5),
            query in proptest::option::of("[A-Za-z0-9=&%.-]{0,20}"),
            http10 in any::<bool>(),
            connection in prop_oneof![Just(None), Just(Some("close")), Just(Some("keep-alive")), Just(Some("Keep-Alive, Upgrade"))],
            content_length in proptest::option::of(any::<u64>()),
            host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
            range in proptest::option::of("bytes=[0-9]{0,6}-[0-9]{0,6}"),
            inm in proptest::option::of("(W/)?\"[a-z0-9-]{0,16}\""),
            extra in proptest::collection::vec(("X-[A-Za-z]{1,10}", "[!-~]([ -~]{0,20}[!-~])?"), 0..6),
            leading_crlf in 0usize..3,
        ) {
            let path = format!("/{}", segments.join("/"));
            let mut req = "\r\n".repeat(leading_crlf);
            req.push_str(&format!("{method} {path}"));
            if let Some(q) = &query {
                req.push('?');
                req.push_str(q);
            }
            req.push_str(if http10 { " HTTP/1.0\r\n" } else { " HTTP/1.1\r\n" });
            req.push_str(&format!("Host: {host}\r\n"));
            for (name, value) in &extra {
                req.push_str(&format!("{name}: {value}\r\n"));
            }
            if let Some(c) = connection {
                req.push_str(&format!("Connection: {c}\r\n"));
            }
            if let Some(n) = content_length {
                req.push_str(&format!("content-length:{n}\r\n"));
            }
            if let Some(r) = &range {
                req.push_str(&format!("Range: {r}\r\n"));
            }
            if let Some(e) = &inm {
                req.push_str(&format!("If-None-Match:  {e} \r\n"));
            }
            req.push_str("\r\n");
            let bytes = req.as_bytes();

            let head = match parse_request(bytes, &HttpLimits::default()) {
                Ok(Parse::Complete(head)) => head,
                other => return Err(TestCaseError::fail(format!("{other:?} for {req:?}"))),
            };
            prop_assert_eq!(head.method_raw.as_str(), method);
            prop_assert_eq!(head.method == Method::Other, method == "PURGE");
            prop_assert_eq!(&head.path, &path);
            prop_assert_eq!(&head.query, &query);
            prop_assert_eq!(head.version, if http10 { Version::Http10 } else { Version::Http11 });
            let keep_alive = match connection {
                Some("close") => false,
                Some(_) => true,
                None => !http10,
            };
            prop_assert_eq!(head.keep_alive, keep_alive);
            prop_assert_eq!(head.content_length, content_length);
            prop_assert!(!head.chunked);
            prop_assert_eq!(head.host.as_deref(), Some(host.as_str()));
            prop_assert_eq!(&head.range, &range);
            prop_assert_eq!(&head.if_none_match, &inm);
            prop_assert_eq!(head.head_len, bytes.len());
            // Any strict prefix is Partial.
            let cut = bytes.len() / 2;
            prop_assert_eq!(parse_request(&bytes[..cut], &HttpLimits::default()), Ok(Parse::Partial));
        }
    }
}
