//! The file facts HTTP needs (size, validators), captured from one stat of the open file: a
//! `statx` result (the server's IORING_OP_STATX) or a `std::fs::Metadata`.

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What `plan` and the file cache need to know about an open file. `dev`/`ino` identify
/// the file; `size` and the mtime tell whether it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_s: i64,
    pub mtime_ns: u32,
    pub is_file: bool,
    pub is_dir: bool,
}

impl FileMeta {
    pub fn from_metadata(m: &std::fs::Metadata) -> Self {
        FileMeta {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_s: m.mtime(),
            // The kernel keeps it in 0..1e9; clamp rather than trust a foreign filesystem.
            mtime_ns: u32::try_from(m.mtime_nsec()).map_or(0, |ns| ns.min(999_999_999)),
            is_file: m.file_type().is_file(),
            is_dir: m.file_type().is_dir(),
        }
    }

    /// The same facts from a `statx` result (for the [`super::STATX_MASK`] fields). Agrees
    /// with [`FileMeta::from_metadata`] for the same file: `dev` is encoded from the major and
    /// minor numbers with `makedev`, as the kernel's `stat` (and std, which asks `statx` too)
    /// encodes `st_dev`. A field the kernel did not fill reads as zero: no type bits is neither
    /// file nor directory, which is refused, not served.
    pub fn from_statx(s: &libc::statx) -> Self {
        let file_type = u32::from(s.stx_mode) & libc::S_IFMT;
        FileMeta {
            dev: libc::makedev(s.stx_dev_major, s.stx_dev_minor),
            ino: s.stx_ino,
            size: s.stx_size,
            mtime_s: s.stx_mtime.tv_sec,
            mtime_ns: s.stx_mtime.tv_nsec.min(999_999_999),
            is_file: file_type == libc::S_IFREG,
            is_dir: file_type == libc::S_IFDIR,
        }
    }

    /// A strong entity tag: `"{ino:x}-{size:x}-{mtime in ns:x}"`.
    ///
    /// Strong because any change to the bytes through a normal write changes size or mtime
    /// at nanosecond resolution, and Range requests (If-Range) need a strong validator.
    /// `dev` is left out so tags survive device renumbering across reboots (NFS, LVM);
    /// an inode collision on another device under the same path is not a real risk.
    pub fn etag(&self) -> String {
        let mtime_ns_total = i128::from(self.mtime_s) * 1_000_000_000 + i128::from(self.mtime_ns);
        // Pre-epoch mtimes give a large two's-complement hex value: odd but stable.
        format!(
            "\"{:x}-{:x}-{:x}\"",
            self.ino, self.size, mtime_ns_total as u128
        )
    }

    /// The modification time. Times before 1970 are clamped to the epoch and times after
    /// 9999 to the end of 9999, the range an HTTP-date can express.
    pub fn last_modified(&self) -> SystemTime {
        const LAST_HTTP_SECOND: u64 = 253_402_300_799;
        match u64::try_from(self.mtime_s) {
            Err(_) => UNIX_EPOCH,
            Ok(s) if s > LAST_HTTP_SECOND => UNIX_EPOCH + Duration::from_secs(LAST_HTTP_SECOND),
            Ok(s) => UNIX_EPOCH + Duration::new(s, self.mtime_ns),
        }
    }

    /// `last_modified` truncated to whole seconds, the resolution of HTTP dates: all
    /// date comparisons use this.
    pub(crate) fn last_modified_s(&self) -> SystemTime {
        let exact = self.last_modified();
        let seconds = exact.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// The `Last-Modified` field value.
    pub fn last_modified_http(&self) -> String {
        httpdate::fmt_http_date(self.last_modified_s())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::vod::test_dir::TestDir;
    use std::path::Path;

    /// The shared test file: 1000 bytes, inode 0xabc, mtime 1994-11-06 08:49:37 + 5 ns.
    pub(crate) fn sample() -> FileMeta {
        FileMeta {
            dev: 1,
            ino: 0xabc,
            size: 1000,
            mtime_s: 784_111_777,
            mtime_ns: 5,
            is_file: true,
            is_dir: false,
        }
    }

    #[test]
    fn etag_and_dates() {
        let meta = sample();
        assert_eq!(meta.etag(), "\"abc-3e8-ae1b981bc490a05\"");
        assert_eq!(
            format!("{:x}", 784_111_777_000_000_005u128),
            "ae1b981bc490a05"
        );
        assert_eq!(meta.last_modified_http(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            meta.last_modified(),
            UNIX_EPOCH + Duration::new(784_111_777, 5)
        );
        let changed = FileMeta {
            mtime_ns: 6,
            ..meta
        };
        assert_ne!(changed.etag(), meta.etag());
        let resized = FileMeta { size: 1001, ..meta };
        assert_ne!(resized.etag(), meta.etag());
    }

    #[test]
    fn odd_mtimes_do_not_panic() {
        let before = FileMeta {
            mtime_s: -10,
            ..sample()
        };
        assert_eq!(before.last_modified(), UNIX_EPOCH);
        assert_eq!(before.last_modified_http(), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert!(before.etag().starts_with("\"abc-3e8-"));
        let after = FileMeta {
            mtime_s: i64::MAX,
            ..sample()
        };
        assert_eq!(after.last_modified_http(), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn from_real_metadata() {
        let dir = TestDir::new("meta");
        let path = dir.path().join("f.bin");
        std::fs::write(&path, b"12345").unwrap();
        let m = std::fs::metadata(&path).unwrap();
        let meta = FileMeta::from_metadata(&m);
        assert_eq!(meta.size, 5);
        assert_eq!(meta.ino, m.ino());
        assert_eq!(meta.dev, m.dev());
        assert_eq!(meta.mtime_s, m.mtime());
        assert!(meta.is_file && !meta.is_dir);
        let dir_meta = FileMeta::from_metadata(&std::fs::metadata(dir.path()).unwrap());
        assert!(dir_meta.is_dir && !dir_meta.is_file);
    }

    #[test]
    fn statx_and_metadata_agree_for_real_files() {
        let dir = TestDir::new("meta-statx");
        let path = dir.path().join("f.bin");
        std::fs::write(&path, vec![7u8; 12345]).unwrap();
        // A nanosecond part that is not zero, and a time before 2038 and one after it.
        for mtime in [
            UNIX_EPOCH + Duration::new(784_111_777, 123_456_789),
            UNIX_EPOCH + Duration::new(4_102_444_800, 1),
        ] {
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(mtime).unwrap();
            drop(file);
            let file = std::fs::File::open(&path).unwrap();
            let from_statx = FileMeta::from_statx(&crate::vod::open::statx_fd(&file).unwrap());
            let from_metadata = FileMeta::from_metadata(&file.metadata().unwrap());
            assert_eq!(from_statx, from_metadata);
            assert_eq!(from_statx.last_modified(), mtime);
            assert_eq!(from_statx.size, 12345);
            assert!(from_statx.is_file && !from_statx.is_dir);
        }
        // A directory, and the dev of a file on another filesystem (/proc) when there is one.
        for other in [dir.path(), Path::new("/proc/self/stat")] {
            let Ok(file) = std::fs::File::open(other) else {
                continue;
            };
            let from_statx = FileMeta::from_statx(&crate::vod::open::statx_fd(&file).unwrap());
            assert_eq!(
                from_statx,
                FileMeta::from_metadata(&file.metadata().unwrap())
            );
        }
        let dir_meta = FileMeta::from_statx(
            &crate::vod::open::statx_fd(&std::fs::File::open(dir.path()).unwrap()).unwrap(),
        );
        assert!(dir_meta.is_dir && !dir_meta.is_file);
    }
}
