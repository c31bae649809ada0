//! HLS over HTTP: live playlists and segments of every stream (made by the stream's segmenter,
//! `media::hls`, and served from their shared memory), and HLS that encoders push with PUT
//! (`media::hls_push`), served at the same URLs.
//!
//! A playlist request for a stream that is live but has no complete segment yet is parked
//! (no I/O in flight) until the first segment is cut or `hls.playlist_wait_ms` passes; a
//! request for a stream that is not published yet waits the same way. Segments are immutable
//! (their names never repeat within a stream's life): a long cache lifetime, a strong ETag
//! and Last-Modified, and byte ranges (`Range`, `If-Range`; one range per request, as for
//! files, answered from a slice of the shared bytes); playlists get `hls.playlist_max_age_s`.
//!
//! Every GET/HEAD answer is counted by kind and status (`uringcast_hls_requests_total`), and,
//! for a live stream, in its figures (`uringcast_stream_hls_*`), worker-locally until the tick.

use std::sync::Arc;

use bytes::Bytes;

use super::Shared;
use super::conn::{Body, Deadline, Phase, Upload};
use super::http::TEXT_PLAIN;
use super::live::Wait;
use super::loglimit::PeerLog;
use super::worker::Worker;
use crate::app::router::HlsMethod;
use crate::media::hls::HlsSnapshot;
use crate::media::hls_push::{PushError, PushedObject};
use crate::media::stream::{Stream, unix_ms};
use crate::metrics::HlsKind;
use crate::proto::http::RequestHead;
use crate::runtime::driver::Ring;
use crate::vod::RangeOutcome;

/// The live playlist's file name.
pub const PLAYLIST: &str = "index.m3u8";
const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const SEGMENT_TYPE: &str = "video/mp2t";
/// Segments never change: a year, as immutable.
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";

impl<R: Ring> Worker<R> {
    /// Route an HLS request: GET/HEAD serve live HLS or pushed objects; PUT and DELETE are an
    /// encoder pushing HLS.
    pub(super) fn serve_hls(
        &mut self,
        key: usize,
        head: &RequestHead,
        app: &str,
        name: &str,
        file: &str,
        method: HlsMethod,
    ) {
        match method {
            HlsMethod::Get | HlsMethod::Head => {
                self.hls_get(key, head, app, name, file, method == HlsMethod::Get)
            }
            HlsMethod::Put => self.start_upload(key, head, app, name, file),
            HlsMethod::Delete => {
                if self.shared.hls_push.delete(app, name, file) {
                    self.respond_simple(key, 204, TEXT_PLAIN, b"", true, &[]);
                } else {
                    self.respond_simple(key, 404, TEXT_PLAIN, b"no such object\n", true, &[]);
                }
            }
        }
    }

    /// GET or HEAD of a playlist or segment.
    pub(super) fn hls_get(
        &mut self,
        key: usize,
        head: &RequestHead,
        app: &str,
        name: &str,
        file: &str,
        send_body: bool,
    ) {
        // One registry lock for the live stream and its HLS (or an ended stream's).
        let (live, snapshot) = self.shared.registry.hls_lookup(app, name);
        let live = live.filter(|s| s.hls_enabled());
        if let Some(stream) = &live {
            stream.want_hls(unix_ms());
        }
        let kind = HlsKind::of_file(file);
        if file == PLAYLIST {
            match snapshot {
                Some(snapshot) if snapshot.has_segments() => {
                    let validator = head.if_none_match.as_deref();
                    let query = head.query.as_deref();
                    let answer = self.respond_playlist(key, validator, query, &snapshot, send_body);
                    self.count_hls(live.as_ref(), kind, answer);
                    return;
                }
                _ if live.is_some() => {
                    // Live, but the first segment is not cut yet: wait for it (counted
                    // when answered).
                    let wait_ms = self.config.hls.playlist_wait_ms;
                    self.park_hls(key, app, name, head.query.clone(), send_body, wait_ms);
                    return;
                }
                _ => {}
            }
        } else if let Some(segment) = snapshot.as_ref().and_then(|s| s.segment(file)) {
            let etag = format!("\"{}\"", segment.name);
            let validators = Validators {
                etag: &etag,
                modified_unix_ms: segment.completed_wall_ms,
            };
            let bytes = segment.bytes.clone();
            let answer =
                self.respond_immutable(key, head, SEGMENT_TYPE, bytes, validators, send_body);
            self.count_hls(live.as_ref(), kind, answer);
            return;
        }
        if let Some(object) = self.shared.hls_push.get(app, name, file) {
            let answer = self.respond_pushed(
                key,
                Some(head),
                head.query.as_deref(),
                file,
                object,
                send_body,
            );
            self.count_hls(live.as_ref(), kind, answer);
            return;
        }
        let wait_ms = self.config.live.play_wait_ms;
        if file == PLAYLIST && live.is_none() && wait_ms > 0 && self.drain_deadline_ms.is_none() {
            // Not published yet: wait for the stream as an HTTP-FLV play does.
            self.park_hls(key, app, name, head.query.clone(), send_body, wait_ms);
            return;
        }
        let text: &[u8] = if file == PLAYLIST {
            b"no such live stream\n"
        } else {
            b"no such segment (it may have left the playlist window)\n"
        };
        self.respond_simple(key, 404, TEXT_PLAIN, text, true, &[]);
        self.count_hls(live.as_ref(), kind, (404, 0));
    }

    /// Count an HLS answer: `(status, body bytes sent)`.
    fn count_hls(&mut self, stream: Option<&Arc<Stream>>, kind: HlsKind, answer: (u16, u64)) {
        let (status, body_bytes) = answer;
        self.stats.hls(stream, kind, status, body_bytes);
    }

    fn park_hls(
        &mut self,
        key: usize,
        app: &str,
        name: &str,
        query: Option<String>,
        send_body: bool,
        wait_ms: u64,
    ) {
        if self.drain_deadline_ms.is_some() || wait_ms == 0 {
            self.respond_simple(key, 404, TEXT_PLAIN, b"no HLS segment yet\n", true, &[]);
            let live = self.shared.registry.get(app, name);
            self.count_hls(live.as_ref(), HlsKind::Playlist, (404, 0));
            return;
        }
        let until_ms = self.now_ms() + wait_ms;
        self.conns[key].phase = Phase::WaitStream;
        self.arm_deadline(key, Deadline::Idle, wait_ms + 1000);
        self.park_reader(key, app, name, Wait::Hls { send_body }, until_ms);
        if let Some(parked) = self.waiting.last_mut() {
            parked.query = query;
        }
    }

    /// Whether a parked playlist request can be answered now (a first segment, or the
    /// stream's final playlist); a stream that appeared meanwhile is asked to segment.
    pub(super) fn hls_ready(shared: &Shared, app: &str, name: &str) -> bool {
        let (live, snapshot) = shared.registry.hls_lookup(app, name);
        if let Some(stream) = live {
            if !stream.hls_enabled() {
                return false;
            }
            stream.want_hls(unix_ms());
        }
        snapshot.is_some_and(|s| s.has_segments())
            || shared.hls_push.get(app, name, PLAYLIST).is_some()
    }

    /// A parked playlist request's wait is over: answer it (the playlist, or 404).
    pub(super) fn hls_wake(
        &mut self,
        key: usize,
        app: &str,
        name: &str,
        query: Option<&str>,
        send_body: bool,
    ) {
        self.conns[key].phase = Phase::ReadHead;
        self.disarm_deadlines(key);
        let (live, snapshot) = self.shared.registry.hls_lookup(app, name);
        let live = live.filter(|s| s.hls_enabled());
        let answer = match snapshot {
            Some(snapshot) if snapshot.has_segments() => {
                self.respond_playlist(key, None, query, &snapshot, send_body)
            }
            _ => match self.shared.hls_push.get(app, name, PLAYLIST) {
                Some(object) => self.respond_pushed(key, None, query, PLAYLIST, object, send_body),
                None => {
                    let text = b"no HLS segment yet\n";
                    self.respond_simple(key, 404, TEXT_PLAIN, text, true, &[]);
                    (404, 0)
                }
            },
        };
        self.count_hls(live.as_ref(), HlsKind::Playlist, answer);
    }

    /// A pushed object: playlists change (short max-age), media objects do not. A playlist
    /// asked for with a query (a key or a signed token) gets the query carried into its
    /// relative URIs, so the player's next requests are authorised the same way; the bytes
    /// stored stay as pushed. A media object honours `Range` and `If-Range` as a live
    /// segment does (`head`: the request; None for a parked playlist request, which has
    /// neither validators nor a range).
    fn respond_pushed(
        &mut self,
        key: usize,
        head: Option<&RequestHead>,
        query: Option<&str>,
        file: &str,
        object: PushedObject,
        send_body: bool,
    ) -> (u16, u64) {
        let if_none_match = head.and_then(|h| h.if_none_match.as_deref());
        if if_none_match.is_some_and(|v| crate::vod::if_none_match_matches(v, &object.etag)) {
            self.respond_not_modified(key, &object.etag);
            return (304, 0);
        }
        let modified = http_date(object.modified_unix_ms);
        let content_type = object.content_type;
        if file.ends_with(".m3u8") {
            let cache = format!("max-age={}", self.config.hls.playlist_max_age_s);
            let headers = [
                ("Cache-Control", cache.as_str()),
                ("ETag", object.etag.as_str()),
                ("Last-Modified", modified.as_str()),
            ];
            let body = match query {
                Some(query) if !query.is_empty() => with_query(&object.bytes, query),
                _ => object.bytes,
            };
            let len = if send_body { body.len() as u64 } else { 0 };
            self.respond_shared(key, 200, content_type, body, send_body, &headers);
            return (200, len);
        }
        let headers = [
            ("Cache-Control", SEGMENT_CACHE),
            ("ETag", object.etag.as_str()),
            ("Last-Modified", modified.as_str()),
        ];
        let validators = Validators {
            etag: &object.etag,
            modified_unix_ms: object.modified_unix_ms,
        };
        let range = head.map(|h| (h.range.as_deref(), h.if_range.as_deref()));
        self.respond_ranged(
            key,
            range,
            content_type,
            object.bytes,
            validators,
            &headers,
            send_body,
        )
    }

    fn respond_playlist(
        &mut self,
        key: usize,
        if_none_match: Option<&str>,
        query: Option<&str>,
        snapshot: &HlsSnapshot,
        send_body: bool,
    ) -> (u16, u64) {
        // Versions restart with a segmenter: the newest segment's name (unique in the
        // stream's life) makes the tag unique.
        let newest = snapshot.segments.last().map_or("", |s| s.name.as_str());
        let etag = format!("\"{newest}-{}\"", snapshot.version);
        if if_none_match.is_some_and(|v| crate::vod::if_none_match_matches(v, &etag)) {
            self.respond_not_modified(key, &etag);
            return (304, 0);
        }
        // A live playlist changes with every segment; an ended one does not, but a new
        // publish of the name will reuse its URL, so it is never cached for long either.
        let cache = format!("max-age={}", self.config.hls.playlist_max_age_s);
        let headers = [("Cache-Control", cache.as_str()), ("ETag", etag.as_str())];
        // A player that came with credentials (a key, a signed URL) needs them on every
        // segment request too: they are carried into the URIs (one small copy per such
        // request; the shared playlist is sent as it is otherwise).
        let body = match query {
            Some(query) if !query.is_empty() => with_query(&snapshot.playlist, query),
            _ => snapshot.playlist.clone(),
        };
        let len = if send_body { body.len() as u64 } else { 0 };
        self.respond_shared(key, 200, PLAYLIST_TYPE, body, send_body, &headers);
        (200, len)
    }

    /// A live segment: 304 on a matching If-None-Match (or, without one, an If-Modified-Since
    /// equal to Last-Modified), else the bytes or the range asked for.
    fn respond_immutable(
        &mut self,
        key: usize,
        head: &RequestHead,
        content_type: &str,
        body: Bytes,
        validators: Validators<'_>,
        send_body: bool,
    ) -> (u16, u64) {
        let etag = validators.etag;
        let modified = http_date(validators.modified_unix_ms);
        let not_modified = match (&head.if_none_match, &head.if_modified_since) {
            (Some(v), _) => crate::vod::if_none_match_matches(v, etag),
            (None, Some(since)) => *since == modified,
            (None, None) => false,
        };
        if not_modified {
            self.respond_not_modified(key, etag);
            return (304, 0);
        }
        let headers = [
            ("Cache-Control", SEGMENT_CACHE),
            ("ETag", etag),
            ("Last-Modified", modified.as_str()),
        ];
        let range = Some((head.range.as_deref(), head.if_range.as_deref()));
        self.respond_ranged(
            key,
            range,
            content_type,
            body,
            validators,
            &headers,
            send_body,
        )
    }

    /// An immutable object with `headers` (its validators, caching): 200 with
    /// `Accept-Ranges: bytes`, or for a GET with one satisfiable `Range` (and an `If-Range`,
    /// if any, that names this object) 206 with `Content-Range` and a slice of `body` (no
    /// copy), or 416 with `Content-Range: bytes */len`. `range`: the request's `Range` and
    /// `If-Range`. Several ranges get the whole object (200), as files do. Returns the
    /// status and the body bytes sent.
    #[allow(clippy::too_many_arguments)]
    fn respond_ranged(
        &mut self,
        key: usize,
        range: Option<(Option<&str>, Option<&str>)>,
        content_type: &str,
        body: Bytes,
        validators: Validators<'_>,
        headers: &[(&str, &str)],
        send_body: bool,
    ) -> (u16, u64) {
        let len = body.len() as u64;
        // Range is a GET's (RFC 9110 §14.2: a HEAD answers as a GET without it would).
        let outcome = match range {
            Some((range, if_range))
                if send_body
                    && crate::vod::if_range_matches(
                        if_range,
                        validators.etag,
                        validators.modified_s(),
                    ) =>
            {
                crate::vod::evaluate_range(range, len)
            }
            _ => RangeOutcome::Full,
        };
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 2);
        all.extend_from_slice(headers);
        all.push(("Accept-Ranges", "bytes"));
        match outcome {
            RangeOutcome::Full => {
                self.respond_shared(key, 200, content_type, body, send_body, &all);
                (200, if send_body { len } else { 0 })
            }
            RangeOutcome::Partial {
                start,
                end_inclusive,
            } => {
                let content_range = format!("bytes {start}-{end_inclusive}/{len}");
                all.push(("Content-Range", content_range.as_str()));
                // `evaluate_range` keeps `start <= end_inclusive < len`.
                let part = body.slice(start as usize..end_inclusive as usize + 1);
                let sent = part.len() as u64;
                self.respond_shared(key, 206, content_type, part, send_body, &all);
                (206, sent)
            }
            RangeOutcome::Unsatisfiable => {
                // Not the object: no caching lifetime (a cache must not keep the 416).
                all.retain(|(name, _)| *name != "Cache-Control");
                let content_range = format!("bytes */{len}");
                all.push(("Content-Range", content_range.as_str()));
                self.respond_simple(key, 416, TEXT_PLAIN, b"", true, &all);
                (416, 0)
            }
        }
    }

    fn respond_not_modified(&mut self, key: usize, etag: &str) {
        let keep_alive = self.conns[key].keep_alive;
        self.write_head(key, 304, keep_alive, false, |h| {
            h.header("ETag", etag);
        });
        self.start_response(key, 304, Body::None);
    }

    /// PUT of an HLS object: checked against the push limits, received whole into memory,
    /// and stored only when complete.
    fn start_upload(&mut self, key: usize, head: &RequestHead, app: &str, name: &str, file: &str) {
        if !head.chunked && head.content_length.is_none() {
            let text = b"an upload needs a chunked or sized body\n";
            self.respond_simple(key, 411, TEXT_PLAIN, text, false, &[]);
            return;
        }
        if self.shared.registry.get(app, name).is_some() {
            let text = b"a live stream of this name is being published\n";
            self.respond_simple(key, 409, TEXT_PLAIN, text, false, &[]);
            return;
        }
        if let Err(e) =
            self.shared
                .hls_push
                .check_put(app, name, file, head.content_length, unix_ms())
        {
            self.refuse_upload(key, app, name, e);
            return;
        }
        let limit = self.config.hls.push_object_bytes_max;
        let upload = Upload {
            app: app.to_string(),
            name: name.to_string(),
            file: file.to_string(),
            body: self.request_body(head),
            data: Vec::with_capacity(
                head.content_length
                    .map_or(64 << 10, |l| l as usize)
                    .min(limit),
            ),
            limit,
            buf: self.body_recv_buffer(),
        };
        let leftover = self.begin_request_body(key, head, Body::Upload(Box::new(upload)));
        if (leftover == 0 || self.upload_bytes(key, leftover))
            && self
                .conns
                .get(key)
                .is_some_and(|c| c.phase == Phase::Ingest)
        {
            self.submit_body_recv(key);
        }
    }

    pub(super) fn on_upload_recv(&mut self, key: usize, result: i32) {
        if result <= 0 {
            // The uploader went away mid-body: nothing is stored.
            self.close(key, crate::metrics::CloseReason::Peer);
            return;
        }
        if self.upload_bytes(key, result as usize)
            && self
                .conns
                .get(key)
                .is_some_and(|c| c.phase == Phase::Ingest)
        {
            self.arm_deadline(key, Deadline::Idle, self.config.live.publish_timeout_ms);
            self.submit_body_recv(key);
        }
    }

    /// Take `len` received bytes; returns false once the upload is answered.
    fn upload_bytes(&mut self, key: usize, len: usize) -> bool {
        let conn = &mut self.conns[key];
        let Body::Upload(upload) = &mut conn.body else {
            return false;
        };
        let Upload {
            body,
            data,
            buf,
            limit,
            ..
        } = &mut **upload;
        let mut too_large = false;
        let fed = body.feed(&buf[..len], &mut |b: &[u8]| {
            if data.len() + b.len() > *limit {
                too_large = true;
            } else {
                data.extend_from_slice(b);
            }
        });
        if too_large {
            let (app, name) = (upload.app.clone(), upload.name.clone());
            conn.body = Body::None;
            conn.phase = Phase::ReadHead;
            if !self.upload_can_answer(key) {
                return false;
            }
            self.refuse_upload(key, &app, &name, PushError::ObjectTooLarge);
            return false;
        }
        match fed {
            Ok(false) => true,
            Ok(true) => {
                let Body::Upload(upload) = std::mem::replace(&mut conn.body, Body::None) else {
                    return false;
                };
                conn.phase = Phase::ReadHead;
                let existed = self
                    .shared
                    .hls_push
                    .get(&upload.app, &upload.name, &upload.file)
                    .is_some();
                let stored = self.shared.hls_push.put(
                    &upload.app,
                    &upload.name,
                    &upload.file,
                    Bytes::from(upload.data),
                    unix_ms(),
                );
                if !self.upload_can_answer(key) {
                    return false;
                }
                match stored {
                    Ok(()) if existed => self.respond_simple(key, 204, TEXT_PLAIN, b"", false, &[]),
                    Ok(()) => self.respond_simple(key, 201, TEXT_PLAIN, b"stored\n", false, &[]),
                    Err(e) => self.refuse_upload(key, &upload.app, &upload.name, e),
                }
                false
            }
            Err(e) => {
                conn.body = Body::None;
                conn.phase = Phase::ReadHead;
                if !self.upload_can_answer(key) {
                    return false;
                }
                let text = format!("{e}\n");
                self.respond_simple(key, 400, TEXT_PLAIN, text.as_bytes(), false, &[]);
                false
            }
        }
    }

    /// An upload ends while its 100-continue may still be in flight: then it is closed
    /// without an answer (nothing else may be written meanwhile).
    fn upload_can_answer(&mut self, key: usize) -> bool {
        if self.conns[key].busy() {
            self.close(key, crate::metrics::CloseReason::ProtocolError);
            return false;
        }
        true
    }

    fn refuse_upload(&mut self, key: usize, app: &str, name: &str, e: PushError) {
        let (status, text): (u16, String) = match e {
            PushError::ObjectTooLarge => (
                413,
                format!(
                    "object larger than hls.push_object_bytes_max ({} bytes)\n",
                    self.config.hls.push_object_bytes_max
                ),
            ),
            PushError::StreamFull => (
                507,
                format!(
                    "stream holds hls.push_stream_bytes_max ({} bytes)\n",
                    self.config.hls.push_stream_bytes_max
                ),
            ),
            PushError::TooManyStreams => (503, "hls.push_streams_max reached\n".to_string()),
            PushError::BadName => (400, "bad HLS object name\n".to_string()),
        };
        peer_log!(self, PeerLog::PublishRefused, info, worker = self.id, stream = %format!("{app}/{name}"), reason = e.reason(), "hls upload refused");
        // A refused body is not read: the connection closes after the answer.
        self.respond_simple(key, status, TEXT_PLAIN, text.as_bytes(), false, &[]);
    }
}

/// `playlist` with `?query` appended to every relative URI: the URI lines (segments,
/// variant playlists) and the `URI="..."` attributes of tags (EXT-X-MAP of fMP4 HLS,
/// EXT-X-MEDIA renditions, EXT-X-KEY). Absolute URIs, which point elsewhere, never get the
/// query: a token is not handed to another host.
fn with_query(playlist: &[u8], query: &str) -> Bytes {
    let text = String::from_utf8_lossy(playlist);
    let mut out = String::with_capacity(text.len() + 16 * (query.len() + 1));
    for line in text.lines() {
        if !line.is_empty() && !line.starts_with('#') {
            push_uri(&mut out, line, query);
        } else if let Some(at) = line.find("URI=\"") {
            let start = at + "URI=\"".len();
            let rest = &line[start..];
            let end = rest.find('"').map_or(line.len(), |e| start + e);
            out.push_str(&line[..start]);
            push_uri(&mut out, &line[start..end], query);
            out.push_str(&line[end..]);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Bytes::from(out)
}

/// `uri`, with `query` appended when it is relative.
fn push_uri(out: &mut String, uri: &str, query: &str) {
    out.push_str(uri);
    let absolute = uri.starts_with("//") || uri.contains("://");
    if !absolute && !uri.is_empty() {
        out.push(if uri.contains('?') { '&' } else { '?' });
        out.push_str(query);
    }
}

/// What a conditional request about an immutable object is checked against.
#[derive(Clone, Copy)]
struct Validators<'a> {
    /// Strong, quoted.
    etag: &'a str,
    /// Last-Modified, in Unix ms (sent in whole seconds).
    modified_unix_ms: u64,
}

impl Validators<'_> {
    /// Last-Modified as sent (whole seconds), for If-Range dates.
    fn modified_s(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.modified_unix_ms / 1000)
    }
}

fn http_date(unix_ms: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_goes_into_relative_uris_only() {
        let pushed = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4\"\n\
                      #EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/k\",IV=0x1\n\
                      #EXTINF:2.000,\nseg1.m4s\n#EXTINF:2.000,\nseg2.m4s?v=2\n\n\
                      #EXTINF:2.000,\nhttp://cdn.example/seg3.m4s\n//cdn.example/seg4.m4s\n";
        let out = with_query(pushed.as_bytes(), "key=K");
        let out = std::str::from_utf8(&out).unwrap();
        let expected = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MAP:URI=\"init.mp4?key=K\"\n\
                        #EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/k\",IV=0x1\n\
                        #EXTINF:2.000,\nseg1.m4s?key=K\n#EXTINF:2.000,\nseg2.m4s?v=2&key=K\n\n\
                        #EXTINF:2.000,\nhttp://cdn.example/seg3.m4s\n//cdn.example/seg4.m4s\n";
        assert_eq!(out, expected);
        // A master playlist: variant lines and rendition URIs.
        let master = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"en/index.m3u8\"\n\
                      #EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"a\"\nlow/index.m3u8\n";
        let out = with_query(master.as_bytes(), "expires=1&token=ab");
        let out = std::str::from_utf8(&out).unwrap();
        assert!(
            out.contains("URI=\"en/index.m3u8?expires=1&token=ab\""),
            "{out}"
        );
        assert!(
            out.contains("\nlow/index.m3u8?expires=1&token=ab\n"),
            "{out}"
        );
    }
}
