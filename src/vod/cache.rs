//! A bounded per-worker cache of open files, so a hot segment costs no open/fstat per
//! request. Sans clock: the caller passes `now_ms`.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use slab::Slab;

use super::open::stat_beneath;
use super::{FileMeta, SymlinkPolicy, open_beneath};

struct Entry {
    rel: PathBuf,
    file: Rc<File>,
    meta: FileMeta,
    /// When the entry was last checked against the filesystem.
    validated_ms: u64,
    /// Value of the cache's use counter at the last hit; the smallest is evicted first.
    last_used: u64,
    /// When the entry was last handed out; idle past `inactive_ms`, it is dropped.
    last_used_ms: u64,
}

/// Open files keyed by their normalised relative path.
///
/// Files are `Rc<File>` because a splice in flight holds the fd: eviction or replacement
/// drops only the cache's reference, and the fd closes when the last send finishes.
/// Per worker, hence `Rc` and no locks.
///
/// Staleness: within `revalidate_ms` of the last check an entry is trusted as is, so a
/// file changed in that window is served with its old size and validators (a short splice
/// at EOF is possible if it shrank; the runtime must treat a short read as the end). After
/// the window, [`FileCache::revalidate`] checks again.
///
/// Letting go: an open fd keeps a deleted file's disk space, so entries must not live on
/// just because nobody asks for their name again. [`FileCache::sweep`], called every tick
/// with a budget, drops entries unused for `inactive_ms` (nginx's `open_file_cache
/// inactive=`) and entries whose file has been deleted (fstat: no links left).
pub struct FileCache {
    capacity: usize,
    revalidate_ms: u64,
    inactive_ms: u64,
    index: HashMap<PathBuf, usize>,
    entries: Slab<Entry>,
    use_counter: u64,
    /// Next slab slot the sweep looks at.
    sweep_cursor: usize,
}

impl FileCache {
    /// `capacity` entries at most (0 disables caching); entries are trusted for
    /// `revalidate_ms` after each check (0 checks on every request) and dropped after
    /// `inactive_ms` without a request.
    pub fn new(capacity: usize, revalidate_ms: u64, inactive_ms: u64) -> Self {
        FileCache {
            capacity,
            revalidate_ms,
            inactive_ms,
            index: HashMap::with_capacity(capacity.min(4096)),
            // Grows with use: the sweep walks slots, so none are allocated ahead.
            entries: Slab::new(),
            use_counter: 0,
            sweep_cursor: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cached file if it was validated less than `revalidate_ms` ago. A stale or
    /// missing entry gives None: call [`FileCache::revalidate`].
    pub fn get(&mut self, rel: &Path, now_ms: u64) -> Option<(Rc<File>, FileMeta)> {
        self.use_counter += 1;
        let slot = *self.index.get(rel)?;
        let entry = self.entries.get_mut(slot)?;
        if now_ms.saturating_sub(entry.validated_ms) >= self.revalidate_ms {
            return None;
        }
        entry.last_used = self.use_counter;
        entry.last_used_ms = now_ms;
        Some((Rc::clone(&entry.file), entry.meta))
    }

    /// Adds or replaces an entry, evicting the least recently used one when full.
    ///
    /// Eviction scans all entries: it happens only on a miss, which already costs an
    /// open and an fstat, and keeps the hit path a single hash lookup.
    pub fn insert(&mut self, rel: PathBuf, file: Rc<File>, meta: FileMeta, now_ms: u64) {
        if self.capacity == 0 {
            return;
        }
        self.use_counter += 1;
        if let Some(&slot) = self.index.get(&rel)
            && let Some(entry) = self.entries.get_mut(slot)
        {
            entry.file = file;
            entry.meta = meta;
            entry.validated_ms = now_ms;
            entry.last_used = self.use_counter;
            entry.last_used_ms = now_ms;
            return;
        }
        if self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(slot, _)| slot);
            if let Some(slot) = oldest {
                self.remove_slot(slot);
            }
        }
        let slot = self.entries.insert(Entry {
            rel: rel.clone(),
            file,
            meta,
            validated_ms: now_ms,
            last_used: self.use_counter,
            last_used_ms: now_ms,
        });
        self.index.insert(rel, slot);
    }

    /// Drops an entry (say, after the runtime saw the file vanish).
    pub fn remove(&mut self, rel: &Path) {
        if let Some(slot) = self.index.get(rel).copied() {
            self.remove_slot(slot);
        }
    }

    fn remove_slot(&mut self, slot: usize) {
        if let Some(entry) = self.entries.try_remove(slot) {
            self.index.remove(&entry.rel);
        }
    }

    /// Looks at up to `budget` slots, resuming where the last call stopped, and drops the
    /// entries idle for `inactive_ms` and those whose file has no link left (deleted or
    /// renamed over: only our fd keeps it, and its disk space, alive). Returns how many it
    /// dropped. Cost per call: at most `budget` slot checks and fstat calls, so a full pass
    /// over a cache of N entries takes N / budget calls.
    pub fn sweep(&mut self, now_ms: u64, budget: usize) -> usize {
        let slots = self.entries.capacity();
        if self.entries.is_empty() || slots == 0 {
            self.sweep_cursor = 0;
            return 0;
        }
        let mut dropped = 0;
        for _ in 0..budget.min(slots) {
            let slot = self.sweep_cursor % slots;
            self.sweep_cursor = (slot + 1) % slots;
            let Some(entry) = self.entries.get(slot) else {
                continue;
            };
            let idle = now_ms.saturating_sub(entry.last_used_ms) >= self.inactive_ms;
            // An fstat error on our own fd cannot tell us the file is fine: drop it too; the
            // next request opens it again.
            let unlinked = !idle && entry.file.metadata().map_or(true, |m| m.nlink() == 0);
            if idle || unlinked {
                self.remove_slot(slot);
                dropped += 1;
            }
        }
        dropped
    }

    /// The file at `rel` with current metadata: a fresh entry as is; a stale entry checked
    /// against the filesystem; otherwise opened with [`open_beneath`] and cached.
    ///
    /// A stale entry is checked by statting the path through an `O_PATH` `openat2` under
    /// the same `policy` (`stat_beneath`), not by reopening: it needs no read permission,
    /// has no side effects and still honours the symlink policy, which a plain `fstatat`
    /// would not. If the path still names the same file (`dev` and `ino`), the cached fd is
    /// kept and only the metadata is refreshed, so a growing recording keeps its fd and
    /// gets its new size and ETag. A different inode (the usual atomic rename-over update
    /// of playlists and segments) opens the new file and drops the old fd.
    pub fn revalidate(
        &mut self,
        root: &File,
        rel: &Path,
        policy: SymlinkPolicy,
        now_ms: u64,
    ) -> io::Result<(Rc<File>, FileMeta)> {
        if let Some(hit) = self.get(rel, now_ms) {
            return Ok(hit);
        }
        if let Some(slot) = self.index.get(rel).copied() {
            match stat_beneath(root, rel, policy) {
                Ok(metadata) => {
                    let current = FileMeta::from_metadata(&metadata);
                    if let Some(entry) = self.entries.get_mut(slot)
                        && current.dev == entry.meta.dev
                        && current.ino == entry.meta.ino
                    {
                        entry.meta = current;
                        entry.validated_ms = now_ms;
                        entry.last_used = self.use_counter;
                        entry.last_used_ms = now_ms;
                        return Ok((Rc::clone(&entry.file), current));
                    }
                    // Another file under that name now: the old fd goes at once, even if
                    // opening the new one fails below.
                    self.remove_slot(slot);
                }
                Err(error) => {
                    self.remove_slot(slot);
                    return Err(error);
                }
            }
        }
        let file = open_beneath(root, rel, policy)?;
        let meta = FileMeta::from_metadata(&file.metadata()?);
        let file = Rc::new(file);
        self.insert(rel.to_path_buf(), Rc::clone(&file), meta, now_ms);
        Ok((file, meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vod::open_root;
    use crate::vod::test_dir::TestDir;
    use std::os::unix::fs::FileExt;

    const POLICY: SymlinkPolicy = SymlinkPolicy::WithinRoot;
    /// Longer than any test's clock: only the tests about expiry see entries expire.
    const INACTIVE: u64 = 1_000_000;

    struct Fixture {
        dir: TestDir,
        root: File,
    }

    fn fixture(files: &[(&str, &str)]) -> Fixture {
        let dir = TestDir::new("cache");
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).unwrap();
        }
        let root = open_root(dir.path()).unwrap();
        Fixture { dir, root }
    }

    fn read_all(file: &File, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        let n = file.read_at(&mut buf, 0).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn miss_then_hit_shares_the_fd() {
        let f = fixture(&[("a.ts", "hello")]);
        let mut cache = FileCache::new(4, 1000, INACTIVE);
        assert!(cache.get(Path::new("a.ts"), 0).is_none());
        let (first, meta) = cache
            .revalidate(&f.root, Path::new("a.ts"), POLICY, 0)
            .unwrap();
        assert_eq!(meta.size, 5);
        assert_eq!(read_all(&first, 16), b"hello");
        let (hit, hit_meta) = cache.get(Path::new("a.ts"), 999).unwrap();
        assert!(Rc::ptr_eq(&first, &hit));
        assert_eq!(hit_meta, meta);
        let (again, _) = cache
            .revalidate(&f.root, Path::new("a.ts"), POLICY, 500)
            .unwrap();
        assert!(Rc::ptr_eq(&first, &again));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn stale_entry_sees_a_modified_file() {
        let f = fixture(&[("rec.flv", "12345")]);
        let mut cache = FileCache::new(4, 1000, INACTIVE);
        let (first, meta) = cache
            .revalidate(&f.root, Path::new("rec.flv"), POLICY, 0)
            .unwrap();
        assert_eq!(meta.size, 5);
        // The recording grows in place.
        std::fs::OpenOptions::new()
            .append(true)
            .open(f.dir.path().join("rec.flv"))
            .and_then(|mut file| std::io::Write::write_all(&mut file, b"678"))
            .unwrap();
        // Inside the window: trusted, old size.
        assert_eq!(cache.get(Path::new("rec.flv"), 999).unwrap().1.size, 5);
        // After it: stale, and revalidation sees the new size on the same fd.
        assert!(cache.get(Path::new("rec.flv"), 1000).is_none());
        let (same, fresh) = cache
            .revalidate(&f.root, Path::new("rec.flv"), POLICY, 1000)
            .unwrap();
        assert!(Rc::ptr_eq(&first, &same));
        assert_eq!(fresh.size, 8);
        assert_ne!(fresh.etag(), meta.etag());
        assert_eq!(cache.get(Path::new("rec.flv"), 1500).unwrap().1.size, 8);
    }

    #[test]
    fn replaced_file_gets_a_new_fd() {
        let f = fixture(&[("index.m3u8", "old")]);
        let mut cache = FileCache::new(4, 0, INACTIVE);
        let (old, _) = cache
            .revalidate(&f.root, Path::new("index.m3u8"), POLICY, 0)
            .unwrap();
        // Atomic update: write a temp file and rename it over.
        std::fs::write(f.dir.path().join("index.m3u8.tmp"), "newer").unwrap();
        std::fs::rename(
            f.dir.path().join("index.m3u8.tmp"),
            f.dir.path().join("index.m3u8"),
        )
        .unwrap();
        let (new, meta) = cache
            .revalidate(&f.root, Path::new("index.m3u8"), POLICY, 0)
            .unwrap();
        assert!(!Rc::ptr_eq(&old, &new));
        assert_eq!(meta.size, 5);
        assert_eq!(read_all(&new, 16), b"newer");
        // The old fd still reads the old bytes: an in-flight send is not corrupted.
        assert_eq!(read_all(&old, 16), b"old");
    }

    #[test]
    fn deleted_file_is_an_error_and_leaves_the_cache() {
        let f = fixture(&[("gone.ts", "x")]);
        let mut cache = FileCache::new(4, 10, INACTIVE);
        cache
            .revalidate(&f.root, Path::new("gone.ts"), POLICY, 0)
            .unwrap();
        std::fs::remove_file(f.dir.path().join("gone.ts")).unwrap();
        let error = cache
            .revalidate(&f.root, Path::new("gone.ts"), POLICY, 10)
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOENT));
        assert!(cache.is_empty());
    }

    #[test]
    fn eviction_keeps_the_bound_and_drops_the_least_recently_used() {
        let f = fixture(&[("a", "A"), ("b", "B"), ("c", "C")]);
        let mut cache = FileCache::new(2, 1000, INACTIVE);
        let (a, _) = cache
            .revalidate(&f.root, Path::new("a"), POLICY, 0)
            .unwrap();
        cache
            .revalidate(&f.root, Path::new("b"), POLICY, 0)
            .unwrap();
        // Touch "a" so "b" is the oldest.
        assert!(cache.get(Path::new("a"), 1).is_some());
        cache
            .revalidate(&f.root, Path::new("c"), POLICY, 2)
            .unwrap();
        assert_eq!(cache.len(), 2);
        assert!(cache.get(Path::new("a"), 3).is_some());
        assert!(cache.get(Path::new("b"), 3).is_none());
        assert!(cache.get(Path::new("c"), 3).is_some());
        drop(a);
        // Re-inserting an existing key does not evict.
        let (c, meta) = cache.get(Path::new("c"), 4).unwrap();
        cache.insert(PathBuf::from("c"), c, meta, 4);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(Path::new("a"), 5).is_some());
    }

    #[test]
    fn evicted_fd_stays_valid_while_held() {
        let f = fixture(&[("a", "first"), ("b", "second")]);
        let mut cache = FileCache::new(1, 1000, INACTIVE);
        let (held, _) = cache
            .revalidate(&f.root, Path::new("a"), POLICY, 0)
            .unwrap();
        cache
            .revalidate(&f.root, Path::new("b"), POLICY, 0)
            .unwrap();
        assert!(cache.get(Path::new("a"), 1).is_none());
        assert_eq!(Rc::strong_count(&held), 1);
        assert_eq!(read_all(&held, 16), b"first");
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let f = fixture(&[("a", "A")]);
        let mut cache = FileCache::new(0, 1000, INACTIVE);
        let (file, _) = cache
            .revalidate(&f.root, Path::new("a"), POLICY, 0)
            .unwrap();
        assert_eq!(read_all(&file, 4), b"A");
        assert!(cache.is_empty());
        assert!(cache.get(Path::new("a"), 0).is_none());
    }

    #[test]
    fn policy_is_applied_on_miss_and_on_revalidation() {
        let f = fixture(&[("a", "A")]);
        std::os::unix::fs::symlink("a", f.dir.path().join("link")).unwrap();
        let mut cache = FileCache::new(4, 0, INACTIVE);
        let error = cache
            .revalidate(&f.root, Path::new("link"), SymlinkPolicy::Deny, 0)
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP));
        cache
            .revalidate(&f.root, Path::new("link"), SymlinkPolicy::WithinRoot, 0)
            .unwrap();
        let error = cache
            .revalidate(&f.root, Path::new("link"), SymlinkPolicy::Deny, 1)
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP));
        assert!(cache.is_empty());
    }

    #[test]
    fn sweep_drops_idle_entries_and_keeps_used_ones() {
        let f = fixture(&[("a", "A"), ("b", "B")]);
        let mut cache = FileCache::new(8, 1000, 500);
        let (a, _) = cache
            .revalidate(&f.root, Path::new("a"), POLICY, 0)
            .unwrap();
        cache
            .revalidate(&f.root, Path::new("b"), POLICY, 0)
            .unwrap();
        assert_eq!(cache.sweep(499, 100), 0);
        // "a" is used again; "b" is not.
        assert!(cache.get(Path::new("a"), 400).is_some());
        assert_eq!(cache.sweep(600, 100), 1);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(Path::new("a"), 601).is_some());
        assert!(cache.get(Path::new("b"), 601).is_none());
        // The dropped entry is opened again on demand.
        cache
            .revalidate(&f.root, Path::new("b"), POLICY, 700)
            .unwrap();
        assert_eq!(cache.len(), 2);
        // Dropping only the cache's reference: a held fd stays valid.
        assert_eq!(cache.sweep(2_000, 100), 2);
        assert!(cache.is_empty());
        assert_eq!(read_all(&a, 4), b"A");
    }

    #[test]
    fn sweep_drops_a_deleted_file_before_it_is_idle() {
        let f = fixture(&[("gone.ts", "x"), ("kept.ts", "y")]);
        let mut cache = FileCache::new(8, 1000, INACTIVE);
        let (gone, _) = cache
            .revalidate(&f.root, Path::new("gone.ts"), POLICY, 0)
            .unwrap();
        cache
            .revalidate(&f.root, Path::new("kept.ts"), POLICY, 0)
            .unwrap();
        assert_eq!(cache.sweep(1, 100), 0);
        std::fs::remove_file(f.dir.path().join("gone.ts")).unwrap();
        assert_eq!(cache.sweep(2, 100), 1);
        assert!(cache.get(Path::new("gone.ts"), 3).is_none());
        assert!(cache.get(Path::new("kept.ts"), 3).is_some());
        // Only our reference remains: dropping it frees the file.
        assert_eq!(Rc::strong_count(&gone), 1);
    }

    #[test]
    fn sweep_is_bounded_per_call_and_resumes() {
        let names: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
        let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "z")).collect();
        let f = fixture(&files);
        let mut cache = FileCache::new(16, 1000, 100);
        for name in &names {
            cache
                .revalidate(&f.root, Path::new(name), POLICY, 0)
                .unwrap();
        }
        let mut dropped = 0;
        let mut calls = 0;
        while !cache.is_empty() {
            let n = cache.sweep(1_000, 3);
            assert!(n <= 3);
            dropped += n;
            calls += 1;
            assert!(calls < 100, "sweep never finishes");
        }
        assert_eq!(dropped, 10);
        assert!(calls >= 4, "{calls} calls for 10 entries at 3 per call");
    }

    #[test]
    fn renamed_over_file_drops_the_old_fd_even_if_the_new_one_fails() {
        let f = fixture(&[("seg.ts", "old")]);
        let mut cache = FileCache::new(4, 0, INACTIVE);
        let (old, _) = cache
            .revalidate(&f.root, Path::new("seg.ts"), POLICY, 0)
            .unwrap();
        // Replaced by a FIFO: the path names another file, which cannot be served.
        std::fs::remove_file(f.dir.path().join("seg.ts")).unwrap();
        let fifo =
            std::ffi::CString::new(f.dir.path().join("seg.ts").to_string_lossy().into_owned())
                .unwrap();
        // SAFETY: valid NUL-terminated path alive for the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let error = cache
            .revalidate(&f.root, Path::new("seg.ts"), POLICY, 1)
            .unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EACCES));
        assert!(cache.is_empty());
        assert_eq!(Rc::strong_count(&old), 1);
    }
}
