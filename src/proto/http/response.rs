//! Writing response heads, and the once-per-second `Date` value.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::reason_phrase;

/// Appends a response head to a caller-owned buffer (usually the connection's send
/// buffer), so a reply costs no allocation beyond the buffer's own growth.
///
/// ```
/// use uringcast::proto::http::ResponseHead;
/// let mut out = Vec::new();
/// ResponseHead::new(&mut out, 206)
///     .header("Content-Length", 10)
///     .header("Content-Range", "bytes 0-9/100")
///     .finish();
/// assert_eq!(
///     out,
///     b"HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nContent-Range: bytes 0-9/100\r\n\r\n"
/// );
/// ```
pub struct ResponseHead<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> ResponseHead<'a> {
    /// Writes the status line.
    pub fn new(out: &'a mut Vec<u8>, status: u16) -> Self {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(status));
        out.push(b' ');
        out.extend_from_slice(reason_phrase(status).as_bytes());
        out.extend_from_slice(b"\r\n");
        ResponseHead { out }
    }

    /// Writes one field line. `name` is ours (a literal); `value` may carry text that came
    /// from a peer (an echoed Origin, a path in a Location), so CR, LF and NUL in it are
    /// replaced by spaces: one bad value must not be able to split the response.
    pub fn header(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        debug_assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':'),
            "header name {name:?} is not a token"
        );
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b": ");
        let value_start = self.out.len();
        // Writing into a Vec cannot fail; a Display impl that reports an error just leaves
        // a shorter value, which is still a well-formed line.
        let _ = write!(self.out, "{value}");
        for byte in &mut self.out[value_start..] {
            if matches!(*byte, b'\r' | b'\n' | 0) {
                *byte = b' ';
            }
        }
        self.out.extend_from_slice(b"\r\n");
        self
    }

    /// Ends the head with the empty line.
    pub fn finish(&mut self) {
        self.out.extend_from_slice(b"\r\n");
    }
}

fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The IMF-fixdate for the `Date` field, formatted at most once per second. The caller
/// passes the time (a worker reads the clock once per loop turn), keeping this sans-IO.
pub struct DateCache {
    second: Option<u64>,
    text: String,
}

/// The last second httpdate can format (9999-12-31T23:59:59Z).
const LAST_FORMATTABLE_SECOND: u64 = 253_402_300_799;

impl DateCache {
    pub fn new() -> Self {
        DateCache {
            second: None,
            text: String::with_capacity(29),
        }
    }

    /// The date for `now`. A clock before 1970 or after 9999 is clamped rather than
    /// panicking inside httpdate.
    pub fn get(&mut self, now: SystemTime) -> &str {
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
            .min(LAST_FORMATTABLE_SECOND);
        if self.second != Some(second) {
            self.second = Some(second);
            self.text.clear();
            let clamped = UNIX_EPOCH + Duration::from_secs(second);
            let _ = write!(self.text, "{}", httpdate::HttpDate::from(clamped));
        }
        &self.text
    }
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_and_fields() {
        let mut out = b"leftover".to_vec();
        ResponseHead::new(&mut out, 404)
            .header("Content-Length", 0)
            .header("Connection", "close")
            .finish();
        assert_eq!(
            out,
            b"leftoverHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let mut out = Vec::new();
        ResponseHead::new(&mut out, 599).finish();
        assert_eq!(out, b"HTTP/1.1 599 \r\n\r\n");
    }

    #[test]
    fn values_cannot_split_the_response() {
        let mut out = Vec::new();
        ResponseHead::new(&mut out, 200)
            .header(
                "Access-Control-Allow-Origin",
                "https://a\r\nSet-Cookie: x=1\0",
            )
            .finish();
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: https://a  Set-Cookie: x=1 \r\n\r\n"
        );
    }

    #[test]
    fn decimal_digits() {
        for value in [0u64, 7, 10, 99, 100, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, value);
            assert_eq!(out, value.to_string().as_bytes());
        }
    }

    #[test]
    fn date_cache_formats_and_reformats_per_second() {
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
        // Going back in time reformats too.
        assert_eq!(cache.get(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            cache.get(UNIX_EPOCH - Duration::from_secs(5)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        let far = UNIX_EPOCH + Duration::from_secs(LAST_FORMATTABLE_SECOND + 1000);
        assert_eq!(cache.get(far), "Fri, 31 Dec 9999 23:59:59 GMT");
    }
}
