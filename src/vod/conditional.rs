//! Conditional requests (RFC 9110 §13): entity-tag and date preconditions, and If-Range.

use std::time::SystemTime;

use super::FileMeta;
use crate::proto::http::{Method, RequestHead};

/// The result of evaluating the preconditions of a request against the current file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// No precondition stops the request: go on to Range and send the file.
    Proceed,
    /// 304: the client's copy is current (GET/HEAD only).
    NotModified,
    /// 412: a precondition failed.
    Failed,
}

/// Applies the preconditions in the order of RFC 9110 §13.2.2:
/// 1. `If-Match` present: 412 unless one of its tags matches strongly (`*` matches any
///    existing file).
/// 2. Otherwise `If-Unmodified-Since` (if a valid date): 412 if modified after it.
/// 3. `If-None-Match` present: if a tag matches weakly (or `*`), 304 for GET/HEAD and 412
///    for other methods.
/// 4. Otherwise, for GET/HEAD, `If-Modified-Since` (if a valid date): 304 if not modified
///    since.
///
/// `etag` is `meta.etag()`, passed in so the caller formats it once per request.
pub fn evaluate_preconditions(
    method: Method,
    req: &RequestHead,
    meta: &FileMeta,
    etag: &str,
) -> Precondition {
    let last_modified = meta.last_modified_s();
    if let Some(if_match) = &req.if_match {
        if !etag_list_matches(if_match, etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(date) = req.if_unmodified_since.as_deref().and_then(parse_date)
        && last_modified > date
    {
        return Precondition::Failed;
    }

    let safe = matches!(method, Method::Get | Method::Head);
    if let Some(if_none_match) = &req.if_none_match {
        if etag_list_matches(if_none_match, etag, Comparison::Weak) {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe
        && let Some(date) = req.if_modified_since.as_deref().and_then(parse_date)
        && last_modified <= date
    {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// Whether `Range` may be honoured given `If-Range` (RFC 9110 §13.1.5): true without
/// If-Range; with an entity tag only on a strong match (a weak tag never matches); with a
/// date only if it equals Last-Modified exactly. An unparsable If-Range fails, so the
/// client gets the whole, current file rather than a piece of a different version.
pub(crate) fn if_range_allows(req: &RequestHead, meta: &FileMeta, etag: &str) -> bool {
    if_range_matches(req.if_range.as_deref(), etag, meta.last_modified_s())
}

/// [`if_range_allows`] for any representation: its strong `etag` and its Last-Modified
/// (whole seconds, as sent), so live HLS segments and pushed objects honour If-Range the
/// way files do.
pub fn if_range_matches(if_range: Option<&str>, etag: &str, last_modified_s: SystemTime) -> bool {
    let Some(if_range) = if_range else {
        return true;
    };
    let if_range = if_range.trim_matches([' ', '\t']);
    if if_range.starts_with("W/") {
        return false;
    }
    if if_range.starts_with('"') {
        return if_range == etag;
    }
    parse_date(if_range).is_some_and(|date| date == last_modified_s)
}

fn parse_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text.trim_matches([' ', '\t'])).ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// Both tags strong and identical (RFC 9110 §8.8.3.2).
    Strong,
    /// Identical opaque parts, weakness ignored.
    Weak,
}

/// Whether an `If-None-Match` value names `ours` (weak comparison, or `*`): the 304 test of
/// every answer with an ETag (files, HLS, the console's assets).
pub fn if_none_match_matches(list: &str, ours: &str) -> bool {
    etag_list_matches(list, ours, Comparison::Weak)
}

/// Matches `ours` (a strong, quoted tag) against an `If-Match`/`If-None-Match` value:
/// `*` or a comma list of `"tag"` / `W/"tag"`. Malformed members are skipped rather than
/// failing the whole list: a client bug should cost a full response, not a wrong one.
fn etag_list_matches(list: &str, ours: &str, comparison: Comparison) -> bool {
    let list = list.trim_matches([' ', '\t']);
    if list == "*" {
        return true;
    }
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let (weak, candidate) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let tag = candidate
            .strip_prefix('"')
            .and_then(|after_quote| after_quote.find('"'))
            .map(|closing| &candidate[..closing + 2]);
        match tag {
            Some(tag) => {
                if tag == ours && (comparison == Comparison::Weak || !weak) {
                    return true;
                }
                rest = &candidate[tag.len()..];
            }
            None => match rest.find(',') {
                Some(comma) => rest = &rest[comma..],
                None => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "\"abc-1\"";

    #[test]
    fn etag_lists() {
        use Comparison::{Strong, Weak};
        assert!(etag_list_matches("*", OURS, Strong));
        assert!(etag_list_matches(" * ", OURS, Weak));
        assert!(etag_list_matches("\"abc-1\"", OURS, Strong));
        assert!(etag_list_matches("\"x\", \"abc-1\"", OURS, Strong));
        assert!(etag_list_matches("\"x\",\"abc-1\"", OURS, Strong));
        assert!(etag_list_matches("W/\"abc-1\"", OURS, Weak));
        assert!(!etag_list_matches("W/\"abc-1\"", OURS, Strong));
        assert!(!etag_list_matches("\"abc-2\"", OURS, Weak));
        assert!(!etag_list_matches("\"abc-1", OURS, Weak));
        assert!(!etag_list_matches("abc-1", OURS, Weak));
        assert!(!etag_list_matches("", OURS, Weak));
        assert!(!etag_list_matches("\"*\"", OURS, Weak));
        // A malformed member does not hide a later good one.
        assert!(etag_list_matches("bogus, W/\"abc-1\"", OURS, Weak));
        assert!(etag_list_matches(
            ",, \"q\" ,W/\"x\", \"abc-1\"",
            OURS,
            Weak
        ));
        // Tags may contain commas.
        assert!(!etag_list_matches("\"abc-1,\"", OURS, Weak));
        assert!(etag_list_matches("\"a,b\", \"abc-1\"", OURS, Strong));
    }
}
