//! From request + file facts to "status, headers, byte range": the whole GET/HEAD decision
//! for a file, with no I/O.

use std::ops::Range;

use super::conditional::if_range_allows;
use super::{FileMeta, Precondition, RangeOutcome, evaluate_preconditions, evaluate_range};
use crate::proto::http::{Method, RequestHead};

/// What to send for a `/vod/` request. The runtime writes `status` and `headers` (adding
/// Date, Server and Connection itself), then sends `body` from the file, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VodPlan {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    /// Byte range of the file to send. None for HEAD, for statuses without a body, and
    /// for an empty file (nothing to splice).
    pub body: Option<Range<u64>>,
}

const ALLOW: &str = "GET, HEAD, OPTIONS";

/// Decides the response for `method` on the file described by `meta`.
///
/// - Not a regular file (directory, special file): 404.
/// - OPTIONS: 204 with `Allow`; other methods than GET/HEAD: 405 with `Allow`. These come
///   before preconditions, which RFC 9110 §13.2.1 says to ignore when the unconditional
///   answer would not be 2xx.
/// - Preconditions ([`evaluate_preconditions`]): 412 or 304.
/// - GET with `Range` (ignored for HEAD and other methods, RFC 9110 §14.2), subject to
///   `If-Range`: 206 or 416; otherwise 200.
///
/// Header sets: every file response carries `ETag`, `Last-Modified` and
/// `Accept-Ranges: bytes`. 200 and 206 add `Content-Type` and `Content-Length` (206 also
/// `Content-Range: bytes a-b/size`); 412 and 416 add `Content-Length: 0` (416 also
/// `Content-Range: bytes */size`); 304 has neither, since a 304's Content-Length would
/// describe the representation, not the (absent) body, and only confuses clients.
pub fn plan(
    method: Method,
    req: &RequestHead,
    meta: &FileMeta,
    content_type: &'static str,
) -> VodPlan {
    if !meta.is_file {
        return no_body(404, vec![("Content-Length", "0".to_owned())]);
    }
    match method {
        Method::Get | Method::Head => {}
        Method::Options => return no_body(204, vec![("Allow", ALLOW.to_owned())]),
        _ => {
            return no_body(
                405,
                vec![
                    ("Allow", ALLOW.to_owned()),
                    ("Content-Length", "0".to_owned()),
                ],
            );
        }
    }

    let etag = meta.etag();
    let mut headers = Vec::with_capacity(7);
    headers.push(("ETag", etag.clone()));
    headers.push(("Last-Modified", meta.last_modified_http()));
    headers.push(("Accept-Ranges", "bytes".to_owned()));

    match evaluate_preconditions(method, req, meta, &etag) {
        Precondition::Proceed => {}
        Precondition::NotModified => return no_body(304, headers),
        Precondition::Failed => {
            headers.push(("Content-Length", "0".to_owned()));
            return no_body(412, headers);
        }
    }

    let size = meta.size;
    let range = if method == Method::Get && if_range_allows(req, meta, &etag) {
        evaluate_range(req.range.as_deref(), size)
    } else {
        RangeOutcome::Full
    };
    let send_body = method == Method::Get;
    match range {
        RangeOutcome::Full => {
            headers.push(("Content-Type", content_type.to_owned()));
            headers.push(("Content-Length", size.to_string()));
            VodPlan {
                status: 200,
                headers,
                body: (send_body && size > 0).then_some(0..size),
            }
        }
        RangeOutcome::Partial {
            start,
            end_inclusive,
        } => {
            headers.push(("Content-Type", content_type.to_owned()));
            headers.push((
                "Content-Range",
                format!("bytes {start}-{end_inclusive}/{size}"),
            ));
            headers.push(("Content-Length", (end_inclusive - start + 1).to_string()));
            VodPlan {
                status: 206,
                headers,
                body: send_body.then_some(start..end_inclusive + 1),
            }
        }
        RangeOutcome::Unsatisfiable => {
            headers.push(("Content-Range", format!("bytes */{size}")));
            headers.push(("Content-Length", "0".to_owned()));
            no_body(416, headers)
        }
    }
}

fn no_body(status: u16, headers: Vec<(&'static str, String)>) -> VodPlan {
    VodPlan {
        status,
        headers,
        body: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http::{HttpLimits, Parse, parse_request};

    const MP4: &str = "video/mp4";
    const ETAG: &str = "\"abc-3e8-ae1b981bc490a05\"";
    const LAST_MODIFIED: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const EARLIER: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const LATER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";

    fn meta() -> FileMeta {
        crate::vod::meta::tests::sample()
    }

    fn request(method: &str, fields: &[(&str, &str)]) -> RequestHead {
        let mut text = format!("{method} /vod/a.mp4 HTTP/1.1\r\nHost: h\r\n");
        for (name, value) in fields {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        match parse_request(text.as_bytes(), &HttpLimits::default()) {
            Ok(Parse::Complete(head)) => head,
            other => panic!("{other:?}"),
        }
    }

    fn run(method: &str, fields: &[(&str, &str)]) -> VodPlan {
        let req = request(method, fields);
        plan(req.method, &req, &meta(), MP4)
    }

    fn headers(plan: &VodPlan) -> Vec<(&str, &str)> {
        plan.headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    fn validators() -> Vec<(&'static str, &'static str)> {
        vec![
            ("ETag", ETAG),
            ("Last-Modified", LAST_MODIFIED),
            ("Accept-Ranges", "bytes"),
        ]
    }

    fn with<'a>(extra: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
        let mut all = validators();
        all.extend_from_slice(extra);
        all
    }

    fn assert_full(plan: &VodPlan, body: Option<Range<u64>>) {
        assert_eq!(plan.status, 200);
        assert_eq!(
            headers(plan),
            with(&[("Content-Type", MP4), ("Content-Length", "1000")])
        );
        assert_eq!(plan.body, body);
    }

    fn assert_partial(plan: &VodPlan, content_range: &str, len: &str, body: Range<u64>) {
        assert_eq!(plan.status, 206);
        assert_eq!(
            headers(plan),
            with(&[
                ("Content-Type", MP4),
                ("Content-Range", content_range),
                ("Content-Length", len)
            ])
        );
        assert_eq!(plan.body, Some(body));
    }

    fn assert_not_modified(plan: &VodPlan) {
        assert_eq!(plan.status, 304);
        assert_eq!(headers(plan), validators());
        assert_eq!(plan.body, None);
    }

    fn assert_precondition_failed(plan: &VodPlan) {
        assert_eq!(plan.status, 412);
        assert_eq!(headers(plan), with(&[("Content-Length", "0")]));
        assert_eq!(plan.body, None);
    }

    #[test]
    fn plain_get_and_head() {
        assert_full(&run("GET", &[]), Some(0..1000));
        assert_full(&run("HEAD", &[]), None);
    }

    #[test]
    fn empty_file_has_no_body_range() {
        let req = request("GET", &[]);
        let empty = FileMeta { size: 0, ..meta() };
        let p = plan(Method::Get, &req, &empty, MP4);
        assert_eq!(p.status, 200);
        assert_eq!(p.headers[4], ("Content-Length", "0".to_owned()));
        assert_eq!(p.body, None);
    }

    #[test]
    fn ranges() {
        assert_partial(
            &run("GET", &[("Range", "bytes=0-99")]),
            "bytes 0-99/1000",
            "100",
            0..100,
        );
        assert_partial(
            &run("GET", &[("Range", "bytes=-10")]),
            "bytes 990-999/1000",
            "10",
            990..1000,
        );
        assert_partial(
            &run("GET", &[("Range", "bytes=500-")]),
            "bytes 500-999/1000",
            "500",
            500..1000,
        );
        assert_partial(
            &run("GET", &[("Range", "bytes=999-5000")]),
            "bytes 999-999/1000",
            "1",
            999..1000,
        );
        // Multiple ranges and junk are answered with the whole file.
        assert_full(&run("GET", &[("Range", "bytes=0-1,5-6")]), Some(0..1000));
        assert_full(&run("GET", &[("Range", "pages=1-2")]), Some(0..1000));
        // HEAD ignores Range (RFC 9110 §14.2).
        assert_full(&run("HEAD", &[("Range", "bytes=0-99")]), None);
    }

    #[test]
    fn unsatisfiable_range() {
        for range in ["bytes=1000-", "bytes=5-4", "bytes=-0"] {
            let p = run("GET", &[("Range", range)]);
            assert_eq!(p.status, 416, "{range}");
            assert_eq!(
                headers(&p),
                with(&[("Content-Range", "bytes */1000"), ("Content-Length", "0")])
            );
            assert_eq!(p.body, None);
        }
    }

    #[test]
    fn if_range() {
        let range = ("Range", "bytes=0-9");
        assert_partial(
            &run("GET", &[range, ("If-Range", ETAG)]),
            "bytes 0-9/1000",
            "10",
            0..10,
        );
        assert_partial(
            &run("GET", &[range, ("If-Range", LAST_MODIFIED)]),
            "bytes 0-9/1000",
            "10",
            0..10,
        );
        // Stale tag, weak tag, other date, garbage: the whole current file.
        assert_full(
            &run("GET", &[range, ("If-Range", "\"other\"")]),
            Some(0..1000),
        );
        let weak = format!("W/{ETAG}");
        let req = request("GET", &[range, ("If-Range", weak.as_str())]);
        assert_full(&plan(Method::Get, &req, &meta(), MP4), Some(0..1000));
        assert_full(&run("GET", &[range, ("If-Range", EARLIER)]), Some(0..1000));
        assert_full(&run("GET", &[range, ("If-Range", LATER)]), Some(0..1000));
        assert_full(
            &run("GET", &[range, ("If-Range", "yesterday")]),
            Some(0..1000),
        );
        // If-Range without Range changes nothing.
        assert_full(&run("GET", &[("If-Range", "\"other\"")]), Some(0..1000));
    }

    #[test]
    fn if_none_match_and_if_modified_since() {
        assert_not_modified(&run("GET", &[("If-None-Match", ETAG)]));
        assert_not_modified(&run("HEAD", &[("If-None-Match", ETAG)]));
        let weak = format!("\"zzz\", W/{ETAG}");
        let req = request("GET", &[("If-None-Match", weak.as_str())]);
        assert_not_modified(&plan(Method::Get, &req, &meta(), MP4));
        assert_not_modified(&run("GET", &[("If-None-Match", "*")]));
        assert_full(&run("GET", &[("If-None-Match", "\"zzz\"")]), Some(0..1000));

        assert_not_modified(&run("GET", &[("If-Modified-Since", LAST_MODIFIED)]));
        assert_not_modified(&run("GET", &[("If-Modified-Since", LATER)]));
        // Obsolete date formats are valid too.
        assert_not_modified(&run(
            "GET",
            &[("If-Modified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")],
        ));
        assert_full(
            &run("GET", &[("If-Modified-Since", EARLIER)]),
            Some(0..1000),
        );
        assert_full(
            &run("GET", &[("If-Modified-Since", "not a date")]),
            Some(0..1000),
        );
        // If-None-Match wins over If-Modified-Since, both ways.
        assert_full(
            &run(
                "GET",
                &[("If-None-Match", "\"zzz\""), ("If-Modified-Since", LATER)],
            ),
            Some(0..1000),
        );
        assert_not_modified(&run(
            "GET",
            &[("If-None-Match", ETAG), ("If-Modified-Since", EARLIER)],
        ));
        // 304 beats Range.
        assert_not_modified(&run(
            "GET",
            &[("If-None-Match", ETAG), ("Range", "bytes=0-1")],
        ));
    }

    #[test]
    fn if_match_and_if_unmodified_since() {
        assert_full(&run("GET", &[("If-Match", ETAG)]), Some(0..1000));
        assert_full(&run("GET", &[("If-Match", "*")]), Some(0..1000));
        assert_precondition_failed(&run("GET", &[("If-Match", "\"zzz\"")]));
        let weak = format!("W/{ETAG}");
        let req = request("GET", &[("If-Match", weak.as_str())]);
        assert_precondition_failed(&plan(Method::Get, &req, &meta(), MP4));

        assert_full(
            &run("GET", &[("If-Unmodified-Since", LAST_MODIFIED)]),
            Some(0..1000),
        );
        assert_full(
            &run("GET", &[("If-Unmodified-Since", LATER)]),
            Some(0..1000),
        );
        assert_precondition_failed(&run("GET", &[("If-Unmodified-Since", EARLIER)]));
        assert_full(
            &run("GET", &[("If-Unmodified-Since", "garbage")]),
            Some(0..1000),
        );
        // If-Match present: If-Unmodified-Since is not looked at.
        assert_full(
            &run(
                "GET",
                &[("If-Match", ETAG), ("If-Unmodified-Since", EARLIER)],
            ),
            Some(0..1000),
        );
        // 412 beats 304 and Range.
        assert_precondition_failed(&run(
            "GET",
            &[
                ("If-Match", "\"zzz\""),
                ("If-None-Match", ETAG),
                ("Range", "bytes=0-1"),
            ],
        ));
        // Passing If-Match still allows a range.
        assert_partial(
            &run("GET", &[("If-Match", ETAG), ("Range", "bytes=1-2")]),
            "bytes 1-2/1000",
            "2",
            1..3,
        );
    }

    #[test]
    fn other_methods_and_non_files() {
        let p = run("POST", &[("If-None-Match", ETAG)]);
        assert_eq!(p.status, 405);
        assert_eq!(headers(&p), vec![("Allow", ALLOW), ("Content-Length", "0")]);
        assert_eq!(p.body, None);
        let p = run("DELETE", &[]);
        assert_eq!(p.status, 405);
        let p = run("OPTIONS", &[]);
        assert_eq!(p.status, 204);
        assert_eq!(headers(&p), vec![("Allow", ALLOW)]);

        let req = request("GET", &[]);
        let dir = FileMeta {
            is_file: false,
            is_dir: true,
            ..meta()
        };
        let p = plan(Method::Get, &req, &dir, MP4);
        assert_eq!(p.status, 404);
        assert_eq!(headers(&p), vec![("Content-Length", "0")]);
        assert_eq!(p.body, None);
    }

    #[test]
    fn precondition_with_unsafe_method_fails_instead_of_304() {
        let req = request("PUT", &[("If-None-Match", ETAG)]);
        assert_eq!(
            evaluate_preconditions(Method::Put, &req, &meta(), ETAG),
            Precondition::Failed
        );
        assert_eq!(
            evaluate_preconditions(Method::Get, &req, &meta(), ETAG),
            Precondition::NotModified
        );
    }
}
