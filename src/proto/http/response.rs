//! Writing response heads, and the `Date` value, into caller-owned buffers.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The standard reason phrase for every status uringcast sends; `""` for others (an empty
/// reason is valid, RFC 9112 §4: clients must ignore it anyway).
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
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
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

/// `fmt::Write` over a `Vec<u8>` that can only fail if a `Display` impl reports an error.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends `args` to `out`. A `Display` impl that returns `Err` is a bug in that impl, not a
/// runtime condition; whatever it wrote before failing stays, and debug builds catch it.
fn append_fmt(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    let result = VecWriter(out).write_fmt(args);
    debug_assert!(
        result.is_ok(),
        "a Display impl failed while writing a response head"
    );
}

/// Writes an HTTP/1.1 response head into a caller-owned buffer: status line, then header
/// lines, then [`finish`](ResponseHead::finish). Nothing is allocated beyond growing `out`.
///
/// CR, LF and NUL inside a header name or value are replaced by a space, so a value that echoes
/// peer input (an `Origin`, a path) cannot split the head.
pub struct ResponseHead<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> ResponseHead<'a> {
    /// Appends `HTTP/1.1 {status} {reason}\r\n` to `out`.
    pub fn new(out: &'a mut Vec<u8>, status: u16) -> Self {
        debug_assert!(
            (100..=999).contains(&status),
            "status {status} is not three digits"
        );
        append_fmt(
            out,
            format_args!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)),
        );
        ResponseHead { out }
    }

    /// Appends `{name}: {value}\r\n`.
    pub fn header(&mut self, name: &str, value: impl fmt::Display) -> &mut Self {
        let start = self.out.len();
        append_fmt(self.out, format_args!("{name}: {value}"));
        for byte in &mut self.out[start..] {
            if matches!(*byte, b'\r' | b'\n' | 0) {
                *byte = b' ';
            }
        }
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Appends the empty line that ends the head.
    pub fn finish(&mut self) {
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Latest instant `httpdate` can format (the last second of year 9999).
const HTTP_DATE_LAST_SECS: u64 = 253_402_300_799;

/// Clamps a time into the range an IMF-fixdate can express (1970..=9999), because `httpdate`
/// panics outside it and file mtimes or a skewed clock can be anywhere.
pub fn clamp_http_date(time: SystemTime) -> SystemTime {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) if since.as_secs() > HTTP_DATE_LAST_SECS => {
            UNIX_EPOCH + Duration::from_secs(HTTP_DATE_LAST_SECS)
        }
        Ok(_) => time,
        Err(_) => UNIX_EPOCH,
    }
}

/// Formats `time` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), clamped as above.
pub fn fmt_http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(clamp_http_date(time))
}

/// The `Date` header value, re-formatted only when the second changes. The caller passes the
/// clock (sans-IO), typically once per event-loop turn.
pub struct DateCache {
    /// Whole seconds since the epoch that `text` shows; `None` before the first call.
    secs: Option<u64>,
    text: String,
}

impl DateCache {
    pub fn new() -> Self {
        DateCache {
            secs: None,
            // An IMF-fixdate is always 29 bytes, so the string never reallocates.
            text: String::with_capacity(29),
        }
    }

    /// The IMF-fixdate for `now`.
    pub fn get(&mut self, now: SystemTime) -> &str {
        let now = clamp_http_date(now);
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.secs != Some(secs) {
            self.text.clear();
            // Writing into a String cannot fail.
            let _ = write!(self.text, "{}", httpdate::HttpDate::from(now));
            self.secs = Some(secs);
        }
        &self.text
    }
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends a chunk-size line (`{len:x}\r\n`) for the chunked transfer coding.
pub fn write_chunk_header(len: usize, out: &mut Vec<u8>) {
    append_fmt(out, format_args!("{len:x}\r\n"));
}

/// The last chunk with an empty trailer section: ends a chunked body.
pub const CHUNK_TRAILER_LAST: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_head_bytes() {
        let mut out = Vec::new();
        ResponseHead::new(&mut out, 206)
            .header("Content-Length", 10)
            .header("Content-Range", format_args!("bytes {}-{}/{}", 0, 9, 100))
            .finish();
        assert_eq!(
            out,
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nContent-Range: bytes 0-9/100\r\n\r\n"
        );
    }

    #[test]
    fn response_head_appends_without_clearing() {
        let mut out = b"prefix".to_vec();
        ResponseHead::new(&mut out, 299).finish();
        assert_eq!(out, b"prefixHTTP/1.1 299 \r\n\r\n");
    }

    #[test]
    fn response_head_neutralises_line_breaks() {
        let mut out = Vec::new();
        ResponseHead::new(&mut out, 200)
            .header(
                "Access-Control-Allow-Origin",
                "http://a\r\nSet-Cookie: x=1\0",
            )
            .finish();
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: http://a  Set-Cookie: x=1 \r\n\r\n"
        );
    }

    #[test]
    fn reason_phrases_for_every_status_used() {
        let table = [
            (200, "OK"),
            (204, "No Content"),
            (206, "Partial Content"),
            (304, "Not Modified"),
            (400, "Bad Request"),
            (403, "Forbidden"),
            (404, "Not Found"),
            (405, "Method Not Allowed"),
            (408, "Request Timeout"),
            (409, "Conflict"),
            (411, "Length Required"),
            (412, "Precondition Failed"),
            (413, "Content Too Large"),
            (414, "URI Too Long"),
            (416, "Range Not Satisfiable"),
            (431, "Request Header Fields Too Large"),
            (500, "Internal Server Error"),
            (501, "Not Implemented"),
            (503, "Service Unavailable"),
            (505, "HTTP Version Not Supported"),
        ];
        for (status, reason) in table {
            assert_eq!(reason_phrase(status), reason, "{status}");
        }
        assert_eq!(reason_phrase(299), "");
    }

    #[test]
    fn date_cache_formats_and_reformats_on_second_change() {
        let mut cache = DateCache::new();
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(cache.get(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            cache.get(t + Duration::from_millis(999)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            cache.get(t + Duration::from_secs(1)),
            "Sun, 06 Nov 1994 08:49:38 GMT"
        );
        // Going back in time (a clock step) must not keep the newer text.
        assert_eq!(cache.get(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn dates_out_of_range_are_clamped_not_panicking() {
        let mut cache = DateCache::new();
        let before_epoch = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(cache.get(before_epoch), "Thu, 01 Jan 1970 00:00:00 GMT");
        let far_future = UNIX_EPOCH + Duration::from_secs(HTTP_DATE_LAST_SECS + 1000);
        assert_eq!(fmt_http_date(far_future), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn chunk_header_is_lowercase_hex() {
        let mut out = Vec::new();
        write_chunk_header(0x1a2b, &mut out);
        write_chunk_header(0, &mut out);
        assert_eq!(out, b"1a2b\r\n0\r\n");
        assert_eq!(CHUNK_TRAILER_LAST, b"0\r\n\r\n");
    }
}
