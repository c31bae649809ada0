//! On-demand file semantics: everything between "the path after `/vod/`" and "send these
//! header bytes, then this byte range of this fd".
//!
//! The runtime's order of calls for `GET /vod/{path}`:
//! 1. [`normalise_vod_path`] on the raw (percent-encoded) path after the prefix.
//! 2. [`FileCache::lookup`]: a [`Lookup::Hit`] is an open fd and its [`FileMeta`], no
//!    system call. On [`Lookup::Miss`] or [`Lookup::Stale`]: open [`open_request`] beneath
//!    the media root from [`open_root`] (the runtime: IORING_OP_OPENAT2, the configured
//!    [`SymlinkPolicy`] enforced by the kernel; a failure's errno through [`open_errno`]),
//!    stat the new fd once for [`STATX_MASK`] (IORING_OP_STATX) into
//!    [`FileMeta::from_statx`], refuse what [`check_file_type`] refuses, clear `O_NONBLOCK`
//!    of a regular file, and hand fd and meta to [`FileCache::complete_open`], which returns
//!    the fd to serve. A failed open or stat: [`FileCache::remove`].
//! 3. [`plan`] with the request head, the meta and [`content_type`]: status, headers and
//!    the body range.
//! 4. Write the head with `proto::http::ResponseHead` (adding Date, Server, Connection) and
//!    splice `body` from the fd.
//!
//! And once per tick, [`FileCache::sweep`] with a small budget, so idle and deleted files
//! do not stay open.
//!
//! Nothing here submits I/O. Only `open` contains `unsafe`: the synchronous [`open_and_stat`]
//! (`openat2`, `statx`, `fcntl`) does step 2 on the calling thread for tests and tools; the
//! rest is plain logic and is tested without a ring.

mod cache;
mod conditional;
mod meta;
mod mime;
mod open;
mod path;
mod plan;
mod range;

pub use cache::{FileCache, Lookup};
pub use conditional::{
    Precondition, evaluate_preconditions, if_none_match_matches, if_range_matches,
};
pub use meta::FileMeta;
pub use mime::content_type;
pub use open::{
    OPEN_FLAGS, OPENAT2_RACE_RETRIES, OpenRequest, STATX_MASK, SymlinkPolicy, check_file_type,
    open_and_stat, open_beneath, open_errno, open_request, open_root,
};
pub use path::{PathError, normalise_vod_path};
pub use plan::{VodPlan, plan};
pub use range::{RangeOutcome, evaluate_range};

#[cfg(test)]
pub(crate) mod test_dir {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A scratch directory under the system temp dir, removed on drop. Unique per process
    /// and call, so parallel tests do not collide.
    pub(crate) struct TestDir {
        path: PathBuf,
    }

    impl TestDir {
        pub(crate) fn new(tag: &str) -> TestDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("uringcast-test-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TestDir { path }
        }

        pub(crate) fn path(&self) -> &Path {
            &self.path
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
