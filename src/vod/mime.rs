//! Content types by file extension. A fixed table: media servers need a couple of dozen
//! types, and a table we own cannot change under us with a dependency update.

use std::path::Path;

/// Types for the extensions we expect under a media root. Text types carry a charset so
/// browsers do not guess.
const TYPES: &[(&str, &str)] = &[
    ("mp4", "video/mp4"),
    ("m4v", "video/mp4"),
    ("m4s", "video/iso.segment"),
    ("m4a", "audio/mp4"),
    ("mov", "video/quicktime"),
    ("ts", "video/mp2t"),
    ("m3u8", "application/vnd.apple.mpegurl"),
    ("mpd", "application/dash+xml"),
    ("flv", "video/x-flv"),
    ("webm", "video/webm"),
    ("mkv", "video/x-matroska"),
    ("mp3", "audio/mpeg"),
    ("aac", "audio/aac"),
    ("ogg", "audio/ogg"),
    ("opus", "audio/ogg"),
    ("wav", "audio/wav"),
    ("flac", "audio/flac"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("png", "image/png"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("svg", "image/svg+xml"),
    ("json", "application/json"),
    ("xml", "application/xml"),
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("vtt", "text/vtt; charset=utf-8"),
    ("srt", "application/x-subrip"),
];

const DEFAULT_TYPE: &str = "application/octet-stream";

/// The `Content-Type` for `path`, by its extension (case-insensitive).
pub fn content_type(path: &Path) -> &'static str {
    let Some(extension) = path.extension().and_then(|e| e.to_str()) else {
        return DEFAULT_TYPE;
    };
    TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(extension))
        .map_or(DEFAULT_TYPE, |(_, mime)| mime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_extensions() {
        let cases = [
            ("a.mp4", "video/mp4"),
            ("a.MP4", "video/mp4"),
            ("seg/init.m4s", "video/iso.segment"),
            ("a.m4a", "audio/mp4"),
            ("a.m4v", "video/mp4"),
            ("a.mov", "video/quicktime"),
            ("live/x/12.ts", "video/mp2t"),
            ("index.M3U8", "application/vnd.apple.mpegurl"),
            ("a.mpd", "application/dash+xml"),
            ("a.flv", "video/x-flv"),
            ("a.webm", "video/webm"),
            ("a.mkv", "video/x-matroska"),
            ("a.mp3", "audio/mpeg"),
            ("a.aac", "audio/aac"),
            ("a.jpg", "image/jpeg"),
            ("a.JPEG", "image/jpeg"),
            ("a.png", "image/png"),
            ("a.json", "application/json"),
            ("a.html", "text/html; charset=utf-8"),
            ("a.htm", "text/html; charset=utf-8"),
            ("a.txt", "text/plain; charset=utf-8"),
            ("a.css", "text/css; charset=utf-8"),
            ("a.js", "text/javascript; charset=utf-8"),
            ("a.vtt", "text/vtt; charset=utf-8"),
            ("a.srt", "application/x-subrip"),
            ("a.svg", "image/svg+xml"),
        ];
        for (path, expected) in cases {
            assert_eq!(content_type(Path::new(path)), expected, "{path}");
        }
    }

    #[test]
    fn unknown_or_missing_extensions() {
        for path in [
            "README",
            "a.exe",
            "a.mp4.part",
            ".mp4",
            "a.",
            "dir.mp4/file",
        ] {
            assert_eq!(content_type(Path::new(path)), DEFAULT_TYPE, "{path}");
        }
    }
}
