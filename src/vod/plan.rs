//! The response to a GET/HEAD of a file: conditionals (RFC 9110 §13), then Range.

use std::ops::Range;
use std::time::SystemTime;

use super::meta::FileMeta;
use super::range::{RangeOutcome, evaluate_range};
use crate::proto::http::{Method, RequestHead};

/// Status, headers and the byte range of the file to send (None: no body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VodPlan {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Range<u64>>,
}

/// Does an If-Match / If-None-Match list match `etag`? `weak` = weak comparison (W/ ignored).
fn etag_list_matches(list: &str, etag: &str, weak: bool) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    let strip = |t: &str| {
        t.trim()
            .strip_prefix("W/")
            .map(str::to_string)
            .unwrap_or_else(|| t.trim().to_string())
    };
    list.split(',').any(|candidate| {
        let candidate = candidate.trim();
        if weak {
            strip(candidate) == strip(etag)
        } else {
            !candidate.starts_with("W/") && candidate == etag
        }
    })
}

fn parse_date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(value.trim()).ok()
}

/// Decide the response for `meta`. HEAD gets the GET headers and no body.
pub fn plan(
    method: Method,
    req: &RequestHead,
    meta: &FileMeta,
    content_type: &'static str,
) -> VodPlan {
    let etag = meta.etag();
    let last_modified = meta.last_modified();
    let mut headers: Vec<(&'static str, String)> = vec![
        ("ETag", etag.clone()),
        ("Last-Modified", httpdate::fmt_http_date(last_modified)),
        ("Accept-Ranges", "bytes".to_string()),
    ];
    let size = meta.size;
    let precondition_failed = |mut headers: Vec<(&'static str, String)>| {
        headers.push(("Content-Length", "0".into()));
        VodPlan {
            status: 412,
            headers,
            body: None,
        }
    };
    // 1. If-Match (strong), else 2. If-Unmodified-Since.
    if let Some(list) = &req.if_match {
        if !etag_list_matches(list, &etag, false) {
            return precondition_failed(headers);
        }
    } else if let Some(since) = req.if_unmodified_since.as_deref().and_then(parse_date)
        && last_modified > since
    {
        return precondition_failed(headers);
    }
    // 3. If-None-Match (weak), else 4. If-Modified-Since.
    let get_or_head = matches!(method, Method::Get | Method::Head);
    if let Some(list) = &req.if_none_match {
        if etag_list_matches(list, &etag, true) {
            return if get_or_head {
                VodPlan {
                    status: 304,
                    headers,
                    body: None,
                }
            } else {
                precondition_failed(headers)
            };
        }
    } else if let Some(since) = req.if_modified_since.as_deref().and_then(parse_date)
        && get_or_head
        && last_modified <= since
    {
        return VodPlan {
            status: 304,
            headers,
            body: None,
        };
    }
    headers.push(("Content-Type", content_type.to_string()));
    // 5. If-Range: the range only applies when the validator still matches (strongly).
    let range_applies = match req.if_range.as_deref().map(str::trim) {
        None => true,
        Some(v) if v.starts_with('"') => v == etag,
        Some(v) if v.starts_with("W/") => false,
        Some(v) => parse_date(v).is_some_and(|d| d == last_modified),
    };
    let outcome = if range_applies && matches!(method, Method::Get | Method::Head) {
        evaluate_range(req.range.as_deref(), size)
    } else {
        RangeOutcome::Full
    };
    match outcome {
        RangeOutcome::Full => {
            headers.push(("Content-Length", size.to_string()));
            VodPlan {
                status: 200,
                headers,
                body: Some(0..size),
            }
        }
        RangeOutcome::Partial {
            start,
            end_inclusive,
        } => {
            headers.push((
                "Content-Range",
                format!("bytes {start}-{end_inclusive}/{size}"),
            ));
            headers.push(("Content-Length", (end_inclusive - start + 1).to_string()));
            VodPlan {
                status: 206,
                headers,
                body: Some(start..end_inclusive + 1),
            }
        }
        RangeOutcome::Unsatisfiable => {
            headers.retain(|(k, _)| *k != "Content-Type");
            headers.push(("Content-Range", format!("bytes */{size}")));
            headers.push(("Content-Length", "0".into()));
            VodPlan {
                status: 416,
                headers,
                body: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::{HttpLimits, Parse, parse_request};

    fn meta() -> FileMeta {
        FileMeta {
            dev: 1,
            ino: 0x1234,
            size: 1000,
            mtime_s: 1_700_000_000,
            mtime_ns: 5,
            is_file: true,
            is_dir: false,
        }
    }

    fn req(extra: &str) -> RequestHead {
        let text = format!("GET /vod/a.mp4 HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
        match parse_request(text.as_bytes(), &HttpLimits::default()).unwrap() {
            Parse::Complete(h) => h,
            Parse::Partial => panic!("partial"),
        }
    }

    fn header<'a>(p: &'a VodPlan, name: &str) -> Option<&'a str> {
        p.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn full_and_ranges() {
        let m = meta();
        let p = plan(Method::Get, &req(""), &m, "video/mp4");
        assert_eq!(p.status, 200);
        assert_eq!(p.body, Some(0..1000));
        assert_eq!(header(&p, "Content-Length"), Some("1000"));
        assert_eq!(header(&p, "Accept-Ranges"), Some("bytes"));
        assert_eq!(header(&p, "ETag"), Some("\"1234-3e8-17979cfe362a0005\""));
        assert_eq!(
            header(&p, "Last-Modified"),
            Some("Tue, 14 Nov 2023 22:13:20 GMT")
        );
        let p = plan(Method::Get, &req("Range: bytes=10-19\r\n"), &m, "video/mp4");
        assert_eq!((p.status, p.body.clone()), (206, Some(10..20)));
        assert_eq!(header(&p, "Content-Range"), Some("bytes 10-19/1000"));
        let p = plan(Method::Get, &req("Range: bytes=1000-\r\n"), &m, "video/mp4");
        assert_eq!((p.status, p.body.clone()), (416, None));
        assert_eq!(header(&p, "Content-Range"), Some("bytes */1000"));
    }

    #[test]
    fn conditionals() {
        let m = meta();
        let etag = m.etag();
        let p = plan(
            Method::Get,
            &req(&format!("If-None-Match: \"x\", {etag}\r\n")),
            &m,
            "video/mp4",
        );
        assert_eq!((p.status, p.body.clone()), (304, None));
        assert_eq!(header(&p, "Content-Length"), None);
        let p = plan(
            Method::Get,
            &req(&format!("If-None-Match: W/{etag}\r\n")),
            &m,
            "video/mp4",
        );
        assert_eq!(p.status, 304, "weak comparison for If-None-Match");
        let p = plan(
            Method::Get,
            &req("If-Modified-Since: Tue, 14 Nov 2023 22:13:20 GMT\r\n"),
            &m,
            "video/mp4",
        );
        assert_eq!(p.status, 304);
        let p = plan(
            Method::Get,
            &req("If-Modified-Since: Tue, 14 Nov 2023 22:13:19 GMT\r\n"),
            &m,
            "video/mp4",
        );
        assert_eq!(p.status, 200);
        let p = plan(
            Method::Get,
            &req("If-Match: \"other\"\r\n"),
            &m,
            "video/mp4",
        );
        assert_eq!(p.status, 412);
        let p = plan(
            Method::Get,
            &req("If-Unmodified-Since: Mon, 13 Nov 2023 00:00:00 GMT\r\n"),
            &m,
            "video/mp4",
        );
        assert_eq!(p.status, 412);
        let p = plan(
            Method::Get,
            &req(&format!("Range: bytes=0-1\r\nIf-Range: {etag}\r\n")),
            &m,
            "video/mp4",
        );
        assert_eq!(p.status, 206);
        let p = plan(
            Method::Get,
            &req("Range: bytes=0-1\r\nIf-Range: \"stale\"\r\n"),
            &m,
            "video/mp4",
        );
        assert_eq!(p.status, 200);
        let p = plan(
            Method::Get,
            &req(&format!("Range: bytes=0-1\r\nIf-Range: W/{etag}\r\n")),
            &m,
            "video/mp4",
        );
        assert_eq!(p.status, 200, "weak validators never satisfy If-Range");
        let p = plan(
            Method::Get,
            &req("Range: bytes=0-1\r\nIf-Range: Tue, 14 Nov 2023 22:13:20 GMT\r\n"),
            &m,
            "video/mp4",
        );
        assert_eq!(p.status, 206);
    }
}
