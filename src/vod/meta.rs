//! What fstat tells us about a file, and the validators derived from it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    pub fn from_metadata(m: &std::fs::Metadata) -> FileMeta {
        use std::os::unix::fs::MetadataExt;
        FileMeta {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_s: m.mtime(),
            mtime_ns: m.mtime_nsec() as u32,
            is_file: m.is_file(),
            is_dir: m.is_dir(),
        }
    }

    /// Strong validator: changes whenever the inode, the size or the mtime (to the
    /// nanosecond) changes, which is whenever the bytes can have changed under normal writes.
    pub fn etag(&self) -> String {
        let mtime = (self.mtime_s as i128 * 1_000_000_000 + i128::from(self.mtime_ns)) as u128;
        format!("\"{:x}-{:x}-{:x}\"", self.ino, self.size, mtime)
    }

    /// Last-Modified, truncated to whole seconds (the HTTP date resolution).
    pub fn last_modified(&self) -> SystemTime {
        if self.mtime_s >= 0 {
            UNIX_EPOCH + Duration::from_secs(self.mtime_s as u64)
        } else {
            UNIX_EPOCH
        }
    }
}
