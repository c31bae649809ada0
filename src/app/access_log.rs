//! The access log: one line per finished request or session, in nginx's `combined` format
//! (what log tools already parse) or as JSON lines. Sans-IO: a record in, a line out; the
//! line goes to a writer thread ([`crate::logging::AccessLog`]), never written by a worker.
//!
//! The path is logged without its query, so keys and tokens never reach the log.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// `access_log.format`.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// nginx's `combined`, with the duration, protocol and close reason appended.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
}

/// One finished request or session.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record<'a> {
    /// Wall clock at the end (Unix ms).
    pub time_unix_ms: u64,
    pub client: Option<SocketAddr>,
    /// "http", "http-flv", "http-ts", "hls", "rtmp"...
    pub protocol: &'a str,
    /// The HTTP method, or for RTMP "publish" / "play" / "connect".
    pub method: &'a str,
    /// Without the query.
    pub path: &'a str,
    /// "HTTP/1.1", "HTTP/1.0" or "RTMP".
    pub version: &'a str,
    /// The HTTP status (0: none was sent); RTMP: 200 for a session that started, else the
    /// refusal's HTTP equivalent.
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_ms: u64,
    /// Why the connection closed, or "keepalive" when it goes on to the next request.
    pub close: &'a str,
    pub referer: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl Record<'_> {
    /// The line, ending in '\n'.
    pub fn line(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let mut line = serde_json::to_string(self).unwrap_or_default();
                line.push('\n');
                line
            }
            Format::Combined => self.combined(),
        }
    }

    /// `$remote_addr - - [$time_local] "$request" $status $bytes_sent "$http_referer"
    /// "$http_user_agent"`, then `$request_time $protocol $close $bytes_in`. The bytes are
    /// all that went to the client, response head included (nginx's `$bytes_sent`; a live
    /// session's head is a few hundred bytes of megabytes).
    fn combined(&self) -> String {
        let mut line = String::with_capacity(160);
        let client = self
            .client
            .map_or_else(|| "-".to_string(), |a| a.ip().to_string());
        let _ = writeln!(
            line,
            "{client} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {}.{:03} {} {} {}",
            clf_time(self.time_unix_ms),
            escape(self.method),
            escape(self.path),
            self.version,
            self.status,
            self.bytes_out,
            escape(self.referer.unwrap_or("-")),
            escape(self.user_agent.unwrap_or("-")),
            self.duration_ms / 1000,
            self.duration_ms % 1000,
            self.protocol,
            self.close,
            self.bytes_in,
        );
        line
    }
}

/// Quotes, backslashes and control bytes as `\xHH`, as nginx escapes its variables: a
/// client cannot forge a field or a line.
fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .bytes()
        .any(|b| b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f)
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `26/Nov/2026:07:20:00 +0000` (UTC).
fn clf_time(unix_ms: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{d:02}/{}/{y}:{:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record<'static> {
        Record {
            // 2026-11-26T07:20:00.250Z
            time_unix_ms: 1_795_677_600_250,
            client: Some("127.0.0.1:50000".parse().unwrap()),
            protocol: "http-flv",
            method: "GET",
            path: "/live/cam1.flv",
            version: "HTTP/1.1",
            status: 200,
            bytes_in: 120,
            bytes_out: 1_234_567,
            duration_ms: 61_005,
            close: "peer",
            referer: None,
            user_agent: Some("Lavf/61.7.100"),
        }
    }

    #[test]
    fn combined_is_nginx_compatible_with_our_fields_after() {
        assert_eq!(
            record().line(Format::Combined),
            "127.0.0.1 - - [26/Nov/2026:07:20:00 +0000] \"GET /live/cam1.flv HTTP/1.1\" 200 1234567 \"-\" \"Lavf/61.7.100\" 61.005 http-flv peer 120\n"
        );
    }

    #[test]
    fn json_has_every_field() {
        let line = record().line(Format::Json);
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["client"], "127.0.0.1:50000");
        assert_eq!(v["path"], "/live/cam1.flv");
        assert_eq!(v["status"], 200);
        assert_eq!(v["bytes_out"], 1_234_567);
        assert_eq!(v["duration_ms"], 61_005);
        assert_eq!(v["close"], "peer");
        assert_eq!(v["referer"], serde_json::Value::Null);
    }

    #[test]
    fn a_client_cannot_forge_fields_or_lines() {
        let mut r = record();
        r.user_agent = Some("evil\" 200 9 \"x\nfake line\\");
        r.path = "/a\"b";
        let line = r.line(Format::Combined);
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        assert!(
            line.contains("\"evil\\x22 200 9 \\x22x\\x0Afake line\\x5C\""),
            "{line}"
        );
        assert!(line.contains("\"GET /a\\x22b HTTP/1.1\""), "{line}");
        // JSON escapes by itself.
        let v: serde_json::Value = serde_json::from_str(&r.line(Format::Json)).unwrap();
        assert_eq!(v["user_agent"], "evil\" 200 9 \"x\nfake line\\");
    }

    #[test]
    fn dates_are_right_across_the_calendar() {
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        // 2000-02-29 23:59:59 (a leap day of a century leap year).
        assert_eq!(clf_time(951_868_799_000), "29/Feb/2000:23:59:59 +0000");
        // 2100-03-01 00:00:00 (2100 is not a leap year).
        assert_eq!(clf_time(4_107_542_400_000), "01/Mar/2100:00:00:00 +0000");
    }
}
