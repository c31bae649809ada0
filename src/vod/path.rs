//! URL path → relative file path, and opening it without escaping the media root.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a URL path was refused (all answered 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    Empty,
    Nul,
    DotDot,
    EncodedSlash,
    Backslash,
    BadEncoding,
}

/// Whether opening may follow symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SymlinkPolicy {
    /// No symlink anywhere in the path.
    Deny,
    /// Symlinks allowed while they resolve inside the media root (RESOLVE_BENEATH).
    #[default]
    WithinRoot,
    /// Symlinks followed anywhere: the operator trusts the tree.
    Follow,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decode the percent-encoded path after `/vod/` exactly once and check every segment.
/// Encoded slashes and backslashes are refused rather than decoded, so one URL names one file.
pub fn normalise_vod_path(raw: &str) -> Result<PathBuf, PathError> {
    let mut out = PathBuf::new();
    for segment in raw.split('/') {
        let bytes = segment.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEncoding);
                };
                let v = (h << 4) | l;
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    0 => return Err(PathError::Nul),
                    _ => decoded.push(v),
                }
                i += 3;
            } else {
                match b {
                    0 => return Err(PathError::Nul),
                    b'\\' => return Err(PathError::Backslash),
                    _ => decoded.push(b),
                }
                i += 1;
            }
        }
        let text = std::str::from_utf8(&decoded).map_err(|_| PathError::BadEncoding)?;
        match text {
            "" | "." => continue,
            ".." => return Err(PathError::DotDot),
            _ => out.push(text),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(PathError::Empty);
    }
    debug_assert!(out.components().all(|c| matches!(c, Component::Normal(_))));
    Ok(out)
}

/// Open the media root as an O_PATH directory handle for `open_beneath`.
pub fn open_root(dir: &Path) -> io::Result<File> {
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "media root contains NUL"))?;
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open returned a new descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Open `rel` (from `normalise_vod_path`) read-only beneath `root` with openat2(2), so the
/// kernel itself refuses `..` and, per policy, symlinks or escapes (RESOLVE_BENEATH /
/// RESOLVE_NO_SYMLINKS) — no check-then-open race. Blocking mode on purpose: splice and
/// sendfile read from it, and O_NONBLOCK means nothing for regular files.
pub fn open_beneath(root: &File, rel: &Path, policy: SymlinkPolicy) -> io::Result<File> {
    let path = std::ffi::CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let resolve = match policy {
        SymlinkPolicy::Deny => {
            libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS
        }
        SymlinkPolicy::WithinRoot => libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
        SymlinkPolicy::Follow => libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: open_how is plain data; zeroed then filled field by field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
    how.resolve = resolve;
    // SAFETY: openat2 reads `path` (NUL-terminated) and `how` (size passed) during the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor nobody else owns.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_normalises() {
        assert_eq!(
            normalise_vod_path("a/b.mp4").unwrap(),
            PathBuf::from("a/b.mp4")
        );
        assert_eq!(
            normalise_vod_path("a//./b%20c.mp4").unwrap(),
            PathBuf::from("a/b c.mp4")
        );
        assert_eq!(
            normalise_vod_path("%C3%A9t%C3%A9.ts").unwrap(),
            PathBuf::from("été.ts")
        );
    }

    #[test]
    fn refuses_every_escape_form() {
        use PathError::*;
        for (raw, want) in [
            ("..", DotDot),
            ("a/../b", DotDot),
            ("%2e%2e/x", DotDot),
            ("%2E%2e/x", DotDot),
            (".%2e/x", DotDot),
            ("a%2f..%2fb", EncodedSlash),
            ("a%2Fb", EncodedSlash),
            ("a\\b", Backslash),
            ("a%5cb", Backslash),
            ("a%00", Nul),
            ("a\0", Nul),
            ("a%zz", BadEncoding),
            ("a%e9", BadEncoding),
            ("", Empty),
            ("./", Empty),
        ] {
            assert_eq!(normalise_vod_path(raw), Err(want), "{raw}");
        }
    }

    proptest! {
        #[test]
        fn output_is_always_relative_and_clean(raw in "[a-z./%25eE2fF5cC0\\\\]{0,24}") {
            if let Ok(p) = normalise_vod_path(&raw) {
                prop_assert!(p.is_relative());
                prop_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
                prop_assert!(!p.as_os_str().as_bytes().contains(&0));
            }
        }

        #[test]
        fn arbitrary_input_never_panics(raw in any::<String>()) {
            let _ = normalise_vod_path(&raw);
        }
    }

    #[test]
    fn open_beneath_enforces_policy() {
        let base = std::env::temp_dir().join(format!("uringcast-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root_dir = base.join("root");
        std::fs::create_dir_all(root_dir.join("sub")).unwrap();
        std::fs::write(root_dir.join("sub/file.txt"), b"in").unwrap();
        std::fs::write(base.join("outside.txt"), b"out").unwrap();
        std::os::unix::fs::symlink(base.join("outside.txt"), root_dir.join("escape")).unwrap();
        std::os::unix::fs::symlink("sub/file.txt", root_dir.join("inside")).unwrap();
        let root = open_root(&root_dir).unwrap();
        use SymlinkPolicy::*;
        assert!(open_beneath(&root, Path::new("sub/file.txt"), Deny).is_ok());
        assert!(open_beneath(&root, Path::new("inside"), Deny).is_err());
        assert!(open_beneath(&root, Path::new("inside"), WithinRoot).is_ok());
        assert!(open_beneath(&root, Path::new("escape"), WithinRoot).is_err());
        assert!(open_beneath(&root, Path::new("escape"), Follow).is_ok());
        assert!(open_beneath(&root, Path::new("../outside.txt"), WithinRoot).is_err());
        assert!(
            open_beneath(&root, Path::new("missing"), WithinRoot)
                .unwrap_err()
                .kind()
                == io::ErrorKind::NotFound
        );
        let _ = std::fs::remove_dir_all(&base);
    }
}
