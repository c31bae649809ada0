//! Turning the URL path after `/vod/` into a relative filesystem path that cannot leave the
//! media root by itself (symlinks are `open_beneath`'s job).

use std::fmt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;

/// Why a path was refused. All are the client's fault; the runtime answers 400 or 404 (a
/// 404 reveals less to a scanner) as it prefers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathError {
    /// Nothing left after dropping empty and `.` segments.
    Empty,
    /// A NUL byte, raw or `%00`.
    Nul,
    /// A `..` segment, in any spelling (`..`, `%2e%2e`, `.%2E`).
    DotDot,
    /// `%2f`: a slash that would only become a separator after decoding.
    EncodedSlash,
    /// A backslash, raw or `%5c`: a separator on other systems and in some proxies.
    Backslash,
    /// A broken `%` escape or bytes that are not UTF-8 after decoding.
    BadEncoding,
}

impl PathError {
    /// A fixed label for logs and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::Empty => "empty",
            PathError::Nul => "nul",
            PathError::DotDot => "dot_dot",
            PathError::EncodedSlash => "encoded_slash",
            PathError::Backslash => "backslash",
            PathError::BadEncoding => "bad_encoding",
        }
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::Empty => "empty path",
            PathError::Nul => "NUL in path",
            PathError::DotDot => "`..` segment in path",
            PathError::EncodedSlash => "encoded slash in path",
            PathError::Backslash => "backslash in path",
            PathError::BadEncoding => "bad percent-encoding or UTF-8 in path",
        })
    }
}

impl std::error::Error for PathError {}

/// Decodes `raw` (the percent-encoded path after `/vod/`, without the query) exactly once
/// and returns a relative path made only of normal segments.
///
/// The checks on the raw string come first so that decoding cannot create what the raw
/// checks would have refused (a `%2f` turning into a separator, `%00` into a NUL). After
/// decoding, `%` is just a character: `%252e` becomes the file name `%2e`, never `.`.
pub fn normalise_vod_path(raw: &str) -> Result<PathBuf, PathError> {
    check_raw(raw.as_bytes())?;
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| PathError::BadEncoding)?;
    if decoded.contains('\0') {
        return Err(PathError::Nul);
    }
    if decoded.contains('\\') {
        return Err(PathError::Backslash);
    }
    let mut path = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err(PathError::DotDot),
            normal => path.push(normal),
        }
    }
    if path.as_os_str().is_empty() {
        return Err(PathError::Empty);
    }
    debug_assert!(path.is_relative());
    Ok(path)
}

/// Refuses NUL, backslash, encoded slash, encoded backslash and malformed escapes before
/// anything is decoded.
fn check_raw(raw: &[u8]) -> Result<(), PathError> {
    let mut at = 0;
    while at < raw.len() {
        match raw[at] {
            0 => return Err(PathError::Nul),
            b'\\' => return Err(PathError::Backslash),
            b'%' => {
                let (Some(&high), Some(&low)) = (raw.get(at + 1), raw.get(at + 2)) else {
                    return Err(PathError::BadEncoding);
                };
                if !high.is_ascii_hexdigit() || !low.is_ascii_hexdigit() {
                    return Err(PathError::BadEncoding);
                }
                match [high.to_ascii_lowercase(), low.to_ascii_lowercase()] {
                    [b'2', b'f'] => return Err(PathError::EncodedSlash),
                    [b'5', b'c'] => return Err(PathError::Backslash),
                    [b'0', b'0'] => return Err(PathError::Nul),
                    _ => {}
                }
                at += 3;
            }
            _ => at += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    fn ok(raw: &str) -> PathBuf {
        normalise_vod_path(raw).unwrap_or_else(|e| panic!("{raw:?}: {e:?}"))
    }

    #[test]
    fn normal_paths() {
        assert_eq!(ok("movie.mp4"), Path::new("movie.mp4"));
        assert_eq!(ok("a/b/c.ts"), Path::new("a/b/c.ts"));
        assert_eq!(ok("/a//./b/"), Path::new("a/b"));
        assert_eq!(ok("My%20Movie%21.mkv"), Path::new("My Movie!.mkv"));
        assert_eq!(ok("caf%C3%A9/%E2%9C%93.mp4"), Path::new("café/✓.mp4"));
        assert_eq!(ok("café.mp4"), Path::new("café.mp4"));
        // Decoded once only: %25 2e stays the literal name "%2e".
        assert_eq!(ok("%252e%252e/x"), Path::new("%2e%2e/x"));
        assert_eq!(ok("..."), Path::new("..."));
        assert_eq!(ok("..a/.b/a.."), Path::new("..a/.b/a.."));
        assert_eq!(ok("%2E/x"), Path::new("x"));
    }

    #[test]
    fn refusals() {
        let cases = [
            ("", PathError::Empty),
            ("/", PathError::Empty),
            ("././/", PathError::Empty),
            ("%2e", PathError::Empty),
            ("..", PathError::DotDot),
            ("a/../../etc/passwd", PathError::DotDot),
            ("%2e%2e/x", PathError::DotDot),
            ("%2E%2E/x", PathError::DotDot),
            (".%2e/x", PathError::DotDot),
            ("%2e./x", PathError::DotDot),
            ("a/%2e%2E", PathError::DotDot),
            ("a%2fb", PathError::EncodedSlash),
            ("..%2Fetc", PathError::EncodedSlash),
            ("a\\b", PathError::Backslash),
            ("..%5c..%5cwin.ini", PathError::Backslash),
            ("a%5Cb", PathError::Backslash),
            ("a\0b", PathError::Nul),
            ("a%00.mp4", PathError::Nul),
            ("a%", PathError::BadEncoding),
            ("a%2", PathError::BadEncoding),
            ("a%zz", PathError::BadEncoding),
            ("a%+1", PathError::BadEncoding),
            ("%ff%fe", PathError::BadEncoding),
            ("%C0%AE%C0%AE/x", PathError::BadEncoding), // overlong UTF-8 for ".."
        ];
        for (raw, expected) in cases {
            assert_eq!(normalise_vod_path(raw), Err(expected), "{raw:?}");
        }
        assert_eq!(PathError::DotDot.reason(), "dot_dot");
    }

    fn assert_safe(path: &Path) {
        assert!(path.is_relative());
        assert!(!path.as_os_str().is_empty());
        assert!(!path.to_string_lossy().contains('\0'));
        assert!(!path.to_string_lossy().contains('\\'));
        for component in path.components() {
            assert!(matches!(component, Component::Normal(_)), "{path:?}");
        }
    }

    proptest! {
        #[test]
        fn results_are_always_plain_relative_paths(raw in "([a-zA-Z0-9./\\\\%-]|%2[eEfF]|%5[cC]|%00|\\.\\.){0,24}") {
            if let Ok(path) = normalise_vod_path(&raw) {
                assert_safe(&path);
            }
        }

        #[test]
        fn arbitrary_strings_never_escape(raw in any::<String>()) {
            if let Ok(path) = normalise_vod_path(&raw) {
                assert_safe(&path);
            }
        }

        #[test]
        fn encoding_plain_names_round_trips(segments in proptest::collection::vec("[^/\\\\\0]{1,8}", 1..4)) {
            let segments: Vec<&String> = segments.iter().filter(|s| *s != "." && *s != "..").collect();
            prop_assume!(!segments.is_empty());
            let raw: Vec<String> = segments
                .iter()
                .map(|s| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string())
                .collect();
            let path = normalise_vod_path(&raw.join("/")).unwrap();
            let expected: PathBuf = segments.iter().map(|s| s.as_str()).collect();
            prop_assert_eq!(path, expected);
        }
    }
}
