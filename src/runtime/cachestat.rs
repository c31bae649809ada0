//! Page-cache residency of a file range, with cachestat(2) (Linux 6.5).
//!
//! The `auto` VOD send path uses it to choose per chunk: sendfile(2) on the worker thread when
//! every page of the chunk is in the page cache (it cannot block then), linked io_uring splices
//! otherwise (the disk wait happens on an io-wq thread, never on the worker).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// cachestat(2)'s number: new syscalls share one number on every architecture since 5.x, and
/// libc 0.2.191 does not export it for x86_64 yet.
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Is every page of `[offset, offset + len)` of `fd` in the page cache? `None` when the kernel
/// cannot tell (no cachestat: older than 6.5, or filtered by seccomp).
pub fn range_cached(fd: RawFd, offset: u64, len: u64) -> Option<bool> {
    if len == 0 {
        return Some(true);
    }
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return None;
    }
    let range = CachestatRange { off: offset, len };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live #[repr(C)] structs laid out
    // as in include/uapi/linux/mman.h; `fd` is an open file the caller owns.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd,
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0u32,
        )
    };
    if rc != 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        if errno == libc::ENOSYS || errno == libc::EPERM {
            UNAVAILABLE.store(true, Ordering::Relaxed);
        }
        return None;
    }
    let page = page_size();
    let first = offset / page;
    let last = (offset + len - 1) / page;
    let pages = last - first + 1;
    Some(stat.nr_cache >= pages)
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no pointer arguments.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if size > 0 { size as u64 } else { 4096 }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn written_pages_are_cached_and_dropped_pages_are_not() {
        let path = std::env::temp_dir().join(format!("uringcast-cachestat-{}", std::process::id()));
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(&vec![7u8; 1 << 20]).unwrap();
        file.sync_all().unwrap();
        let fd = file.as_raw_fd();
        let Some(cached) = range_cached(fd, 0, 1 << 20) else {
            eprintln!("cachestat unavailable on this kernel; nothing to check");
            return;
        };
        assert!(cached, "just-written pages are in the page cache");
        // SAFETY: fadvise on our own open file; DONTNEED drops its clean pages.
        unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(
            range_cached(fd, 4096, 8192),
            Some(false),
            "dropped pages are reported missing"
        );
        assert_eq!(range_cached(fd, 0, 0), Some(true));
        let _ = std::fs::remove_file(&path);
    }
}
