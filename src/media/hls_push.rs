//! HLS pushed over HTTP: `ffmpeg -f hls -method PUT http://host/{app}/{stream}/index.m3u8`
//! PUTs each segment file (`index0.ts`, `index1.ts`, ...) and then the playlist again, and
//! with `-hls_flags delete_segments` DELETEs the segments that left it. This store keeps
//! those objects in memory for players to GET. Sans-IO: names, bytes and the time come in.
//!
//! Thread-safe (one mutex; every call is a few map operations, bodies are `Bytes` shared with
//! the callers, never copied). Bounded: objects, bytes per stream, streams, and idle time
//! each have a limit ([`PushLimits`]). The server maps [`PushError`] to HTTP: 413, 507, 503
//! and 400.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

/// Most objects one pushed stream holds. Bytes alone would not bound the map: empty objects
/// under many names cost memory too. Counted like bytes: unreferenced media is evicted first.
pub const OBJECTS_PER_STREAM_MAX: usize = 1024;
/// Longest file, app or stream name.
pub const NAME_LEN_MAX: usize = 128;

/// Limits on what publishers may push.
#[derive(Clone, Debug)]
pub struct PushLimits {
    /// Largest object (one PUT body).
    pub object_bytes_max: usize,
    /// Bytes stored for one stream.
    pub stream_bytes_max: usize,
    /// Streams stored at once.
    pub streams_max: usize,
    /// A stream with no PUT for this long is dropped by `sweep` (and does not count against
    /// `streams_max`).
    pub idle_ms: u64,
}

impl Default for PushLimits {
    fn default() -> PushLimits {
        PushLimits {
            object_bytes_max: 16 << 20,
            stream_bytes_max: 64 << 20,
            streams_max: 64,
            idle_ms: 30_000,
        }
    }
}

/// A stored object as served.
#[derive(Clone, Debug)]
pub struct PushedObject {
    pub bytes: Bytes,
    pub content_type: &'static str,
    /// Strong ETag, quotes included; different for every PUT.
    pub etag: String,
    pub modified_unix_ms: u64,
}

/// Why a PUT is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// The body is larger than `object_bytes_max` (HTTP 413).
    ObjectTooLarge,
    /// The stream would exceed `stream_bytes_max` (or [`OBJECTS_PER_STREAM_MAX`]) even after
    /// evicting the media its playlists no longer list (HTTP 507).
    StreamFull,
    /// `streams_max` streams are active (HTTP 503).
    TooManyStreams,
    /// The app, stream or file name is not allowed (HTTP 400).
    BadName,
}

impl PushError {
    /// A short reason, for the response and the log.
    pub fn reason(self) -> &'static str {
        match self {
            PushError::ObjectTooLarge => "pushed object too large",
            PushError::StreamFull => "pushed stream storage full",
            PushError::TooManyStreams => "too many pushed streams",
            PushError::BadName => "bad pushed file name",
        }
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for PushError {}

/// The content type of an allowed file name's extension.
fn content_type(file: &str) -> Option<&'static str> {
    let (_, extension) = file.rsplit_once('.')?;
    match extension {
        "m3u8" => Some("application/vnd.apple.mpegurl"),
        "ts" => Some("video/mp2t"),
        "m4s" => Some("video/iso.segment"),
        "mp4" => Some("video/mp4"),
        "aac" => Some("audio/aac"),
        _ => None,
    }
}

/// One path segment of `[A-Za-z0-9._-]`, 1 to 128 long, not starting with a dot and without
/// `..`: safe as a map key, in a log line and in a URL.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A file name that may be pushed, and its content type.
fn valid_file(file: &str) -> Option<&'static str> {
    if valid_name(file) {
        content_type(file)
    } else {
        None
    }
}

/// App and stream names follow the live stream rule (`app::router::valid_live_name`, kept
/// here so `media` does not depend on `app`): `[A-Za-z0-9_-]`, 1 to 128.
fn valid_live_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn is_playlist(file: &str) -> bool {
    file.ends_with(".m3u8")
}

/// The file names a playlist refers to: the last path segment of each URI line (non-empty,
/// not a `#` line), and of each `URI="..."` attribute (`#EXT-X-MAP` init segments, renditions),
/// query and fragment removed. Only names that could be stored are kept.
fn playlist_refs(playlist: &[u8]) -> Vec<String> {
    let mut refs = Vec::new();
    for line in playlist.split(|&b| b == b'\n') {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            let mut rest = line;
            while let Some(at) = rest.find("URI=\"") {
                rest = &rest[at + 5..];
                let Some(end) = rest.find('"') else {
                    break;
                };
                push_ref(&mut refs, &rest[..end]);
                rest = &rest[end + 1..];
            }
        } else {
            push_ref(&mut refs, line);
        }
    }
    refs
}

fn push_ref(refs: &mut Vec<String>, uri: &str) {
    let uri = uri.split(['?', '#']).next().unwrap_or("");
    let name = uri.rsplit('/').next().unwrap_or("");
    if valid_name(name) && !refs.iter().any(|r| r == name) {
        refs.push(name.to_owned());
    }
}

#[derive(Debug)]
struct StoredObject {
    object: PushedObject,
    /// Store-wide PUT counter when stored: eviction takes the lowest first.
    put_order: u64,
    /// For a playlist: the names it refers to.
    refs: Vec<String>,
}

#[derive(Debug)]
struct PushStream {
    app: String,
    stream: String,
    objects: HashMap<String, StoredObject>,
    bytes: usize,
    last_put_ms: u64,
}

impl PushStream {
    /// The media objects to evict, oldest first, so that `file` (of `len` bytes) fits;
    /// `new_refs` are its references if it is a playlist (known once the body is in).
    /// `None` if it cannot fit even with all of them gone.
    fn eviction_plan(
        &self,
        file: &str,
        len: usize,
        new_refs: Option<&[String]>,
        limits: &PushLimits,
    ) -> Option<Vec<String>> {
        let replaced = self.objects.get(file);
        let mut bytes = self.bytes - replaced.map_or(0, |o| o.object.bytes.len()) + len;
        let mut objects = self.objects.len() + usize::from(replaced.is_none());
        if bytes <= limits.stream_bytes_max && objects <= OBJECTS_PER_STREAM_MAX {
            return Some(Vec::new());
        }
        // What the stream's playlists list once this PUT is in: a playlist being replaced
        // counts with its new references when they are known.
        let mut referenced: HashSet<&str> = self
            .objects
            .iter()
            .filter(|(name, _)| new_refs.is_none() || name.as_str() != file)
            .flat_map(|(_, stored)| stored.refs.iter().map(String::as_str))
            .collect();
        referenced.extend(new_refs.into_iter().flatten().map(String::as_str));
        let mut candidates: Vec<(u64, &str, usize)> = self
            .objects
            .iter()
            .filter(|(name, _)| name.as_str() != file && !is_playlist(name))
            .filter(|(name, _)| !referenced.contains(name.as_str()))
            .map(|(name, stored)| (stored.put_order, name.as_str(), stored.object.bytes.len()))
            .collect();
        candidates.sort_unstable();
        let mut plan = Vec::new();
        for (_, name, object_len) in candidates {
            if bytes <= limits.stream_bytes_max && objects <= OBJECTS_PER_STREAM_MAX {
                break;
            }
            bytes -= object_len;
            objects -= 1;
            plan.push(name.to_owned());
        }
        (bytes <= limits.stream_bytes_max && objects <= OBJECTS_PER_STREAM_MAX).then_some(plan)
    }

    fn remove(&mut self, file: &str) -> bool {
        match self.objects.remove(file) {
            Some(stored) => {
                self.bytes -= stored.object.bytes.len();
                true
            }
            None => false,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Keyed `{app}/{stream}` (neither name can hold a `/`).
    streams: HashMap<String, PushStream>,
    puts: u64,
}

/// Objects pushed by HLS publishers, shared by all workers.
#[derive(Debug)]
pub struct PushStore {
    limits: PushLimits,
    inner: Mutex<Inner>,
}

impl PushStore {
    pub fn new(limits: PushLimits) -> PushStore {
        PushStore {
            limits,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn idle(&self, stream: &PushStream, now_unix_ms: u64) -> bool {
        now_unix_ms.saturating_sub(stream.last_put_ms) >= self.limits.idle_ms
    }

    /// Validate a PUT before receiving its body (`declared_len` if known), so the server can
    /// refuse early. `put` checks again with the real length.
    pub fn check_put(
        &self,
        app: &str,
        stream: &str,
        file: &str,
        declared_len: Option<u64>,
        now_unix_ms: u64,
    ) -> Result<(), PushError> {
        validate(app, stream, file)?;
        let declared_len = match declared_len {
            Some(len) => Some(usize::try_from(len).map_err(|_| PushError::ObjectTooLarge)?),
            None => None,
        };
        if declared_len.is_some_and(|len| len > self.limits.object_bytes_max) {
            return Err(PushError::ObjectTooLarge);
        }
        let inner = self.lock();
        match inner.streams.get(&stream_key(app, stream)) {
            None => {
                let active = inner
                    .streams
                    .values()
                    .filter(|s| !self.idle(s, now_unix_ms))
                    .count();
                if active >= self.limits.streams_max {
                    return Err(PushError::TooManyStreams);
                }
                if declared_len.is_some_and(|len| len > self.limits.stream_bytes_max) {
                    return Err(PushError::StreamFull);
                }
            }
            Some(pushed) => {
                if let Some(len) = declared_len {
                    // A playlist's new references are unknown until its body is in: judge by
                    // the current ones.
                    pushed
                        .eviction_plan(file, len, None, &self.limits)
                        .ok_or(PushError::StreamFull)?;
                }
            }
        }
        Ok(())
    }

    /// Store a fully received object, replacing any object of that name at once (an
    /// interrupted upload never calls this, so the previous object stays). If the stream
    /// would exceed its limits, media objects no playlist of the stream refers to are evicted
    /// first, oldest first; if that is not enough, nothing changes and it fails.
    pub fn put(
        &self,
        app: &str,
        stream: &str,
        file: &str,
        bytes: Bytes,
        now_unix_ms: u64,
    ) -> Result<(), PushError> {
        let content_type = validate(app, stream, file)?;
        let len = bytes.len();
        if len > self.limits.object_bytes_max {
            return Err(PushError::ObjectTooLarge);
        }
        let refs = if is_playlist(file) {
            playlist_refs(&bytes)
        } else {
            Vec::new()
        };
        let key = stream_key(app, stream);
        let mut guard = self.lock();
        let inner = &mut *guard;
        if !inner.streams.contains_key(&key) {
            if inner.streams.len() >= self.limits.streams_max {
                let idle_ms = self.limits.idle_ms;
                inner
                    .streams
                    .retain(|_, s| now_unix_ms.saturating_sub(s.last_put_ms) < idle_ms);
            }
            if inner.streams.len() >= self.limits.streams_max {
                return Err(PushError::TooManyStreams);
            }
            if len > self.limits.stream_bytes_max {
                return Err(PushError::StreamFull);
            }
        }
        let pushed = inner.streams.entry(key).or_insert_with(|| PushStream {
            app: app.to_owned(),
            stream: stream.to_owned(),
            objects: HashMap::new(),
            bytes: 0,
            last_put_ms: now_unix_ms,
        });
        let new_refs = is_playlist(file).then_some(refs.as_slice());
        let Some(plan) = pushed.eviction_plan(file, len, new_refs, &self.limits) else {
            return Err(PushError::StreamFull);
        };
        for name in &plan {
            pushed.remove(name);
        }
        pushed.remove(file);
        inner.puts += 1;
        let etag = format!("\"{:x}-{:x}-{len:x}\"", now_unix_ms, inner.puts);
        pushed.objects.insert(
            file.to_owned(),
            StoredObject {
                object: PushedObject {
                    bytes,
                    content_type,
                    etag,
                    modified_unix_ms: now_unix_ms,
                },
                put_order: inner.puts,
                refs,
            },
        );
        pushed.bytes += len;
        pushed.last_put_ms = now_unix_ms;
        Ok(())
    }

    /// Remove an object; true if it was there. A stream left empty is dropped.
    pub fn delete(&self, app: &str, stream: &str, file: &str) -> bool {
        let key = stream_key(app, stream);
        let mut inner = self.lock();
        let Some(pushed) = inner.streams.get_mut(&key) else {
            return false;
        };
        let removed = pushed.remove(file);
        if pushed.objects.is_empty() {
            inner.streams.remove(&key);
        }
        removed
    }

    pub fn get(&self, app: &str, stream: &str, file: &str) -> Option<PushedObject> {
        let inner = self.lock();
        let stored = inner
            .streams
            .get(&stream_key(app, stream))?
            .objects
            .get(file)?;
        Some(stored.object.clone())
    }

    /// Drop streams with no PUT for `idle_ms`.
    pub fn sweep(&self, now_unix_ms: u64) {
        let mut inner = self.lock();
        inner.streams.retain(|_, s| !self.idle(s, now_unix_ms));
    }

    /// (app, stream, bytes stored, last PUT unix ms) of each stream, sorted by app and stream.
    pub fn list(&self) -> Vec<(String, String, usize, u64)> {
        let inner = self.lock();
        let mut list: Vec<_> = inner
            .streams
            .values()
            .map(|s| (s.app.clone(), s.stream.clone(), s.bytes, s.last_put_ms))
            .collect();
        list.sort_unstable();
        list
    }
}

fn stream_key(app: &str, stream: &str) -> String {
    format!("{app}/{stream}")
}

fn validate(app: &str, stream: &str, file: &str) -> Result<&'static str, PushError> {
    if !valid_live_name(app) || !valid_live_name(stream) {
        return Err(PushError::BadName);
    }
    valid_file(file).ok_or(PushError::BadName)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const NOW_MS: u64 = 1_795_687_200_000;

    fn limits(stream_bytes_max: usize) -> PushLimits {
        PushLimits {
            object_bytes_max: 1000,
            stream_bytes_max,
            streams_max: 2,
            idle_ms: 30_000,
        }
    }

    fn body(len: usize) -> Bytes {
        Bytes::from(vec![0x47; len])
    }

    fn playlist(names: &[&str]) -> Bytes {
        let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n");
        for name in names {
            text.push_str("#EXTINF:2.000,\n");
            text.push_str(name);
            text.push('\n');
        }
        Bytes::from(text)
    }

    fn names(store: &PushStore, app: &str, stream: &str, files: &[&str]) -> Vec<bool> {
        files
            .iter()
            .map(|f| store.get(app, stream, f).is_some())
            .collect()
    }

    #[test]
    fn put_get_replace_delete() {
        let store = PushStore::new(PushLimits::default());
        assert_eq!(
            store.check_put("live", "cam", "index0.ts", Some(100), NOW_MS),
            Ok(())
        );
        assert_eq!(
            store.put("live", "cam", "index0.ts", body(100), NOW_MS),
            Ok(())
        );
        let first = store.get("live", "cam", "index0.ts").expect("stored");
        assert_eq!(first.bytes, body(100));
        assert_eq!(first.content_type, "video/mp2t");
        assert_eq!(first.modified_unix_ms, NOW_MS);
        assert!(first.etag.starts_with('"') && first.etag.ends_with('"'));

        // A second PUT of the same name replaces it whole; the ETag changes even for the
        // same length.
        store
            .put(
                "live",
                "cam",
                "index0.ts",
                Bytes::from(vec![1; 100]),
                NOW_MS + 5,
            )
            .expect("replaced");
        let second = store.get("live", "cam", "index0.ts").expect("stored");
        assert_eq!(second.bytes, Bytes::from(vec![1; 100]));
        assert_ne!(second.etag, first.etag);
        assert_eq!(
            store.list(),
            [("live".into(), "cam".into(), 100, NOW_MS + 5)]
        );
        // The object handed out earlier is unchanged (bodies are shared, never rewritten).
        assert_eq!(first.bytes, body(100));

        for (file, content_type) in [
            ("index.m3u8", "application/vnd.apple.mpegurl"),
            ("seg-1.m4s", "video/iso.segment"),
            ("init.mp4", "video/mp4"),
            ("a_1.aac", "audio/aac"),
        ] {
            store
                .put("live", "cam", file, body(10), NOW_MS)
                .expect("put");
            let object = store.get("live", "cam", file).expect("stored");
            assert_eq!(object.content_type, content_type);
        }
        assert!(store.get("live", "other", "index0.ts").is_none());
        assert!(store.get("other", "cam", "index0.ts").is_none());

        assert!(store.delete("live", "cam", "index0.ts"));
        assert!(!store.delete("live", "cam", "index0.ts"));
        assert!(store.get("live", "cam", "index0.ts").is_none());
        assert_eq!(store.list()[0].2, 40);
        // A stream left empty is gone.
        for file in ["index.m3u8", "seg-1.m4s", "init.mp4", "a_1.aac"] {
            assert!(store.delete("live", "cam", file));
        }
        assert!(store.list().is_empty());
        assert!(!store.delete("live", "nothing", "index.m3u8"));
    }

    #[test]
    fn bad_names_are_refused() {
        let store = PushStore::new(PushLimits::default());
        let long = format!("{}.ts", "a".repeat(125));
        let too_long = format!("{}.ts", "a".repeat(126));
        for file in [
            "",
            ".ts",
            ".hidden.ts",
            "../index.m3u8",
            "a/../b.ts",
            "..ts",
            "a..ts",
            "dir/index0.ts",
            "dir\\index0.ts",
            "index0.ts/",
            "index0.ts?x=1",
            "index0%2e.ts",
            "index0",
            "index0.TS",
            "index0.mp3",
            "index0.ts.exe",
            "index 0.ts",
            "índex0.ts",
            "index0.ts\0",
            &too_long,
        ] {
            assert_eq!(
                store.check_put("live", "cam", file, None, NOW_MS),
                Err(PushError::BadName),
                "{file:?}"
            );
            assert_eq!(
                store.put("live", "cam", file, body(1), NOW_MS),
                Err(PushError::BadName),
                "{file:?}"
            );
        }
        assert_eq!(store.put("live", "cam", &long, body(1), NOW_MS), Ok(()));
        for (app, stream) in [
            ("", "cam"),
            ("live", ""),
            ("li.ve", "cam"),
            ("live", "c/am"),
            ("live", ".."),
        ] {
            assert_eq!(
                store.put(app, stream, "index.m3u8", body(1), NOW_MS),
                Err(PushError::BadName)
            );
        }
        assert_eq!(store.list().len(), 1);
        assert_eq!(PushError::BadName.to_string(), "bad pushed file name");
    }

    #[test]
    fn object_and_stream_count_limits() {
        let store = PushStore::new(limits(5000));
        // Too large: refused before the body is read when declared, and again on put.
        assert_eq!(
            store.check_put("live", "a", "index0.ts", Some(1001), NOW_MS),
            Err(PushError::ObjectTooLarge)
        );
        assert_eq!(
            store.check_put("live", "a", "index0.ts", Some(u64::MAX), NOW_MS),
            Err(PushError::ObjectTooLarge)
        );
        assert_eq!(
            store.check_put("live", "a", "index0.ts", None, NOW_MS),
            Ok(())
        );
        assert_eq!(
            store.put("live", "a", "index0.ts", body(1001), NOW_MS),
            Err(PushError::ObjectTooLarge)
        );
        assert!(store.list().is_empty());
        assert_eq!(
            store.put("live", "a", "index0.ts", body(1000), NOW_MS),
            Ok(())
        );

        // Two streams at most; a third is refused until one goes idle.
        assert_eq!(store.put("live", "b", "index0.ts", body(1), NOW_MS), Ok(()));
        assert_eq!(
            store.check_put("live", "c", "index0.ts", None, NOW_MS),
            Err(PushError::TooManyStreams)
        );
        assert_eq!(
            store.put("live", "c", "index0.ts", body(1), NOW_MS),
            Err(PushError::TooManyStreams)
        );
        // Existing streams still take PUTs.
        assert_eq!(
            store.check_put("live", "b", "index1.ts", Some(10), NOW_MS),
            Ok(())
        );
        store
            .put("live", "b", "index1.ts", body(1), NOW_MS + 20_000)
            .expect("b is active");
        // "a" goes idle at NOW + 30 s: a new stream takes its place.
        assert_eq!(
            store.check_put("live", "c", "index0.ts", None, NOW_MS + 30_000),
            Ok(())
        );
        assert_eq!(
            store.put("live", "c", "index0.ts", body(1), NOW_MS + 30_000),
            Ok(())
        );
        let streams: Vec<String> = store.list().into_iter().map(|(_, s, _, _)| s).collect();
        assert_eq!(streams, ["b", "c"]);
    }

    #[test]
    fn a_full_stream_evicts_unlisted_media_oldest_first() {
        let store = PushStore::new(limits(1000));
        let put = |file: &str, len: usize| store.put("live", "cam", file, body(len), NOW_MS);
        for i in 0..4 {
            put(&format!("index{i}.ts"), 200).expect("fits");
        }
        // The playlist lists 2 and 3 (by URL: only the last path segment counts).
        store
            .put(
                "live",
                "cam",
                "index.m3u8",
                playlist(&["index2.ts", "http://h/live/cam/index3.ts?token=1"]),
                NOW_MS,
            )
            .expect("fits");
        let playlist_len = store
            .get("live", "cam", "index.m3u8")
            .expect("stored")
            .bytes
            .len();
        assert_eq!(store.list()[0].2, 800 + playlist_len);
        // index4 needs room: index0, the oldest unlisted, goes; index1 stays (enough room).
        put("index4.ts", 200).expect("evicts index0");
        assert_eq!(
            names(
                &store,
                "live",
                "cam",
                &[
                    "index0.ts",
                    "index1.ts",
                    "index2.ts",
                    "index3.ts",
                    "index4.ts"
                ]
            ),
            [false, true, true, true, true]
        );
        // The declared size is judged the same way before the body comes.
        assert_eq!(
            store.check_put("live", "cam", "index5.ts", Some(300), NOW_MS),
            Ok(())
        );
        assert_eq!(
            store.check_put("live", "cam", "index5.ts", Some(1000), NOW_MS),
            Err(PushError::StreamFull)
        );
        // Evicting the unlisted index1 and index4 would not make room for this one, so
        // nothing is evicted.
        assert_eq!(
            put("index5.ts", 1000 - playlist_len),
            Err(PushError::StreamFull)
        );
        assert_eq!(
            names(&store, "live", "cam", &["index1.ts", "index4.ts"]),
            [true, true]
        );
        // A new playlist that no longer lists index2 frees it for eviction in the same PUT.
        store
            .put(
                "live",
                "cam",
                "index.m3u8",
                playlist(&["index3.ts", "index4.ts"]),
                NOW_MS,
            )
            .expect("fits");
        put("index5.ts", 400).expect("evicts index1 then index2");
        assert_eq!(
            names(
                &store,
                "live",
                "cam",
                &[
                    "index1.ts",
                    "index2.ts",
                    "index3.ts",
                    "index4.ts",
                    "index5.ts"
                ]
            ),
            [false, false, true, true, true]
        );
        // Replacing an object counts only the difference.
        put("index5.ts", 400).expect("same size");
        assert!(store.list()[0].2 <= 1000);
    }

    #[test]
    fn playlist_references_include_uri_attributes() {
        let text = b"#EXTM3U\r\n#EXT-X-MAP:URI=\"init.mp4\"\r\n#EXTINF:2.0,\r\nseg1.m4s\r\n\r\n#EXT-X-MEDIA:TYPE=AUDIO,URI=\"../audio/a.m3u8\"\n  sub/seg2.m4s#frag  \n#EXT-X-ENDLIST\n/..\n\xff\xfe\n";
        assert_eq!(
            playlist_refs(text),
            ["init.mp4", "seg1.m4s", "a.m3u8", "seg2.m4s"]
        );
    }

    #[test]
    fn idle_streams_are_swept() {
        let store = PushStore::new(PushLimits::default());
        store
            .put("live", "old", "index.m3u8", playlist(&[]), NOW_MS)
            .expect("put");
        store
            .put("live", "new", "index.m3u8", playlist(&[]), NOW_MS + 10_000)
            .expect("put");
        store.sweep(NOW_MS + 29_999);
        assert_eq!(store.list().len(), 2);
        store.sweep(NOW_MS + 30_000);
        let left: Vec<String> = store.list().into_iter().map(|(_, s, _, _)| s).collect();
        assert_eq!(left, ["new"]);
        assert!(store.get("live", "old", "index.m3u8").is_none());
        // A clock that went backwards keeps streams.
        store.sweep(0);
        assert_eq!(store.list().len(), 1);
    }

    #[test]
    fn many_threads_put_get_and_delete() {
        let store = Arc::new(PushStore::new(PushLimits {
            object_bytes_max: 4096,
            stream_bytes_max: 64 * 1024,
            streams_max: 8,
            idle_ms: 30_000,
        }));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let stream = format!("cam{}", t % 2);
                    for i in 0..400u64 {
                        let file = format!("t{t}_{i}.ts");
                        let len = 512 + (i as usize * 7) % 2048;
                        store
                            .check_put("live", &stream, &file, Some(len as u64), NOW_MS + i)
                            .ok();
                        store
                            .put(
                                "live",
                                &stream,
                                &file,
                                Bytes::from(vec![t as u8; len]),
                                NOW_MS + i,
                            )
                            .ok();
                        store
                            .put(
                                "live",
                                &stream,
                                "index.m3u8",
                                playlist(&[file.as_str()]),
                                NOW_MS + i,
                            )
                            .ok();
                        if let Some(object) = store.get("live", &stream, &file) {
                            assert!(object.bytes.iter().all(|&b| b == t as u8));
                        }
                        if i >= 4 {
                            store.delete("live", &stream, &format!("t{t}_{}.ts", i - 4));
                        }
                        store.list();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        for (_, _, bytes, _) in store.list() {
            assert!(bytes <= 64 * 1024);
        }
    }
}
