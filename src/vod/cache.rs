//! A bounded per-worker cache of open files, so a hot segment costs no open or stat per
//! request. Sans I/O on the request path and sans clock: the caller opens and stats (the
//! server through the ring) and passes `now_ms`.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use slab::Slab;

use super::FileMeta;

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

/// What [`FileCache::lookup`] found for a path.
#[derive(Debug)]
pub enum Lookup {
    /// A cached file checked less than `revalidate_ms` ago: serve it, no system call.
    Hit(Rc<File>, FileMeta),
    /// Nothing cached: open the path beneath the root under the policy, stat the new fd, then
    /// [`FileCache::complete_open`] (or [`FileCache::remove`] if that failed).
    Miss,
    /// Cached, but not checked for `revalidate_ms`: exactly what a miss does (see
    /// [`FileCache`], "Staleness", for why a stale entry is reopened, not statted by path).
    Stale,
}

/// Open files keyed by their normalised relative path.
///
/// Files are `Rc<File>` because a splice in flight holds the fd: eviction or replacement
/// drops only the cache's reference, and the fd closes when the last send finishes.
/// Per worker, hence `Rc` and no locks.
///
/// The order of calls for one request: [`FileCache::lookup`]; on a hit, serve. Otherwise
/// open the path (`super::open_request`: `openat2` beneath the root, the symlink policy
/// enforced by the kernel), `statx` the new fd once, and hand both to
/// [`FileCache::complete_open`], which caches the file and returns the fd to serve; if the
/// open or the stat failed, [`FileCache::remove`] the path. One open and one stat per miss.
///
/// Staleness: within `revalidate_ms` of the last check an entry is trusted as is, so a
/// file changed in that window is served with its old size and validators (a short splice
/// at EOF is possible if it shrank; the runtime must treat a short read as the end). After
/// the window the entry is [`Lookup::Stale`] and the caller checks the path again by opening
/// it again, exactly like a miss. Not by a `statx` of the path: `statx` resolves with
/// `AT_*` flags only and cannot express `RESOLVE_BENEATH` or `RESOLVE_NO_SYMLINKS`, so the
/// symlink policy would not hold on revalidation (under `follow` it would, but one way for
/// every policy is simpler). The alternative that keeps the policy, an
/// `O_PATH` `openat2` plus a `statx` of that fd, costs the same two ring operations and one
/// close as a reopen when the file is unchanged, and two more when it was replaced, which a
/// reopen has already opened. What a reopen costs more is the `struct file` an `O_RDONLY`
/// open sets up. Measured on this box (Linux 6.18, 2 shared vCPUs; ext4 and tmpfs, dentries
/// cached; 3 × 100,000 rounds of synchronous `openat2` + `statx` + `close` of one path, from
/// a C loop): 2.4–2.5 µs per round with `O_PATH`, 2.8 µs with `O_RDONLY`, so 0.3–0.4 µs more,
/// once per file per `revalidate_ms` (1 s by default): noise next to a request. A reopen also
/// needs read permission, which serving needs anyway: a file made unreadable stops being
/// served at the next check instead of living on in the cache.
/// [`FileCache::complete_open`] then keeps the cached fd if the path still names the same file
/// (`dev` and `ino`), refreshing only its metadata, so a growing recording keeps its fd and
/// gets its new size and ETag, and the new fd is closed. A different inode (the usual atomic
/// rename-over update of playlists and segments) replaces the entry and drops the old fd.
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

    /// The cached file if it was validated less than `revalidate_ms` ago ([`Lookup::Hit`],
    /// one hash lookup); otherwise what the caller must do ([`Lookup::Miss`],
    /// [`Lookup::Stale`]: open and stat, then [`FileCache::complete_open`]).
    pub fn lookup(&mut self, rel: &Path, now_ms: u64) -> Lookup {
        self.use_counter += 1;
        let Some(entry) = self
            .index
            .get(rel)
            .and_then(|&slot| self.entries.get_mut(slot))
        else {
            return Lookup::Miss;
        };
        if now_ms.saturating_sub(entry.validated_ms) >= self.revalidate_ms {
            return Lookup::Stale;
        }
        entry.last_used = self.use_counter;
        entry.last_used_ms = now_ms;
        Lookup::Hit(Rc::clone(&entry.file), entry.meta)
    }

    /// `rel` was opened (`file`) and its fd statted (`meta`) after a miss or for a stale
    /// entry: returns the fd to serve and its metadata.
    ///
    /// If the entry cached under `rel` is the same file (`dev` and `ino`), it keeps its fd,
    /// gets `meta` and a new validation time, and `file` is closed: no second fd for one file.
    /// Otherwise `file` replaces the entry (the old fd closes when its last in-flight send
    /// ends) or is added, evicting the least recently used entry when full. Anything but a
    /// regular file is not cached, and an entry under its name is dropped: the name no longer
    /// names something to serve (the caller answers from `meta`).
    pub fn complete_open(
        &mut self,
        rel: &Path,
        file: File,
        meta: FileMeta,
        now_ms: u64,
    ) -> (Rc<File>, FileMeta) {
        if !meta.is_file {
            self.remove(rel);
            return (Rc::new(file), meta);
        }
        self.use_counter += 1;
        if let Some(&slot) = self.index.get(rel)
            && let Some(entry) = self.entries.get_mut(slot)
            && entry.meta.dev == meta.dev
            && entry.meta.ino == meta.ino
        {
            entry.meta = meta;
            entry.validated_ms = now_ms;
            entry.last_used = self.use_counter;
            entry.last_used_ms = now_ms;
            return (Rc::clone(&entry.file), meta);
        }
        let file = Rc::new(file);
        self.insert(rel.to_path_buf(), Rc::clone(&file), meta, now_ms);
        (file, meta)
    }

    /// Adds or replaces an entry, evicting the least recently used one when full.
    ///
    /// Eviction scans all entries: it happens only on a miss, which already costs an
    /// open and a stat, and keeps the hit path a single hash lookup.
    fn insert(&mut self, rel: PathBuf, file: Rc<File>, meta: FileMeta, now_ms: u64) {
        if self.capacity == 0 {
            return;
        }
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

    /// Drops an entry: the path's open or stat failed (deleted, now refused by the policy, a
    /// special file...), so its old fd must not be served again.
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
    ///
    /// The one system call the cache still makes itself, synchronously: an fstat of an fd it
    /// holds involves no path lookup, no directory read and no open-time side effects (the
    /// things that make an open wait on the disk), only the inode's attributes, which a local
    /// filesystem has in memory while the file is open; a network filesystem may ask its
    /// server (an NFS GETATTR when its attribute cache has expired). Bounded by `budget` per
    /// tick, it stays on the worker thread rather than costing a ring round trip per entry.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vod::test_dir::TestDir;
    use crate::vod::{SymlinkPolicy, open_and_stat, open_root};
    use std::io;
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

    /// What the server does through the ring, on the calling thread: look up, and on a miss
    /// or a stale entry open and stat once, then complete the open (or drop the entry).
    fn open(
        cache: &mut FileCache,
        root: &File,
        rel: &str,
        policy: SymlinkPolicy,
        now_ms: u64,
    ) -> io::Result<(Rc<File>, FileMeta)> {
        let rel = Path::new(rel);
        match cache.lookup(rel, now_ms) {
            Lookup::Hit(file, meta) => Ok((file, meta)),
            Lookup::Miss | Lookup::Stale => match open_and_stat(root, rel, policy) {
                Ok((file, meta)) => Ok(cache.complete_open(rel, file, meta, now_ms)),
                Err(error) => {
                    cache.remove(rel);
                    Err(error)
                }
            },
        }
    }

    /// The entry if `lookup` gives a hit.
    fn hit(cache: &mut FileCache, rel: &str, now_ms: u64) -> Option<(Rc<File>, FileMeta)> {
        match cache.lookup(Path::new(rel), now_ms) {
            Lookup::Hit(file, meta) => Some((file, meta)),
            Lookup::Miss | Lookup::Stale => None,
        }
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
        assert!(hit(&mut cache, "a.ts", 0).is_none());
        let (first, meta) = open(&mut cache, &f.root, "a.ts", POLICY, 0).unwrap();
        assert_eq!(meta.size, 5);
        assert_eq!(read_all(&first, 16), b"hello");
        let (cached, hit_meta) = hit(&mut cache, "a.ts", 999).unwrap();
        assert!(Rc::ptr_eq(&first, &cached));
        assert_eq!(hit_meta, meta);
        let (again, _) = open(&mut cache, &f.root, "a.ts", POLICY, 500).unwrap();
        assert!(Rc::ptr_eq(&first, &again));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn stale_entry_sees_a_modified_file() {
        let f = fixture(&[("rec.flv", "12345")]);
        let mut cache = FileCache::new(4, 1000, INACTIVE);
        let (first, meta) = open(&mut cache, &f.root, "rec.flv", POLICY, 0).unwrap();
        assert_eq!(meta.size, 5);
        // The recording grows in place.
        std::fs::OpenOptions::new()
            .append(true)
            .open(f.dir.path().join("rec.flv"))
            .and_then(|mut file| std::io::Write::write_all(&mut file, b"678"))
            .unwrap();
        // Inside the window: trusted, old size.
        assert_eq!(hit(&mut cache, "rec.flv", 999).unwrap().1.size, 5);
        // After it: stale, and revalidation sees the new size on the same fd.
        assert!(hit(&mut cache, "rec.flv", 1000).is_none());
        let (same, fresh) = open(&mut cache, &f.root, "rec.flv", POLICY, 1000).unwrap();
        assert!(Rc::ptr_eq(&first, &same));
        assert_eq!(fresh.size, 8);
        assert_ne!(fresh.etag(), meta.etag());
        assert_eq!(hit(&mut cache, "rec.flv", 1500).unwrap().1.size, 8);
    }

    #[test]
    fn replaced_file_gets_a_new_fd() {
        let f = fixture(&[("index.m3u8", "old")]);
        let mut cache = FileCache::new(4, 0, INACTIVE);
        let (old, _) = open(&mut cache, &f.root, "index.m3u8", POLICY, 0).unwrap();
        // Atomic update: write a temp file and rename it over.
        std::fs::write(f.dir.path().join("index.m3u8.tmp"), "newer").unwrap();
        std::fs::rename(
            f.dir.path().join("index.m3u8.tmp"),
            f.dir.path().join("index.m3u8"),
        )
        .unwrap();
        let (new, meta) = open(&mut cache, &f.root, "index.m3u8", POLICY, 0).unwrap();
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
        open(&mut cache, &f.root, "gone.ts", POLICY, 0).unwrap();
        std::fs::remove_file(f.dir.path().join("gone.ts")).unwrap();
        let error = open(&mut cache, &f.root, "gone.ts", POLICY, 10).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOENT));
        assert!(cache.is_empty());
    }

    #[test]
    fn eviction_keeps_the_bound_and_drops_the_least_recently_used() {
        let f = fixture(&[("a", "A"), ("b", "B"), ("c", "C")]);
        let mut cache = FileCache::new(2, 1000, INACTIVE);
        let (a, _) = open(&mut cache, &f.root, "a", POLICY, 0).unwrap();
        open(&mut cache, &f.root, "b", POLICY, 0).unwrap();
        // Touch "a" so "b" is the oldest.
        assert!(hit(&mut cache, "a", 1).is_some());
        open(&mut cache, &f.root, "c", POLICY, 2).unwrap();
        assert_eq!(cache.len(), 2);
        assert!(hit(&mut cache, "a", 3).is_some());
        assert!(hit(&mut cache, "b", 3).is_none());
        assert!(hit(&mut cache, "c", 3).is_some());
        drop(a);
        // Re-inserting an existing key does not evict.
        let (c, meta) = hit(&mut cache, "c", 4).unwrap();
        cache.insert(PathBuf::from("c"), c, meta, 4);
        assert_eq!(cache.len(), 2);
        assert!(hit(&mut cache, "a", 5).is_some());
    }

    #[test]
    fn evicted_fd_stays_valid_while_held() {
        let f = fixture(&[("a", "first"), ("b", "second")]);
        let mut cache = FileCache::new(1, 1000, INACTIVE);
        let (held, _) = open(&mut cache, &f.root, "a", POLICY, 0).unwrap();
        open(&mut cache, &f.root, "b", POLICY, 0).unwrap();
        assert!(hit(&mut cache, "a", 1).is_none());
        assert_eq!(Rc::strong_count(&held), 1);
        assert_eq!(read_all(&held, 16), b"first");
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let f = fixture(&[("a", "A")]);
        let mut cache = FileCache::new(0, 1000, INACTIVE);
        let (file, _) = open(&mut cache, &f.root, "a", POLICY, 0).unwrap();
        assert_eq!(read_all(&file, 4), b"A");
        assert!(cache.is_empty());
        assert!(hit(&mut cache, "a", 0).is_none());
    }

    #[test]
    fn policy_is_applied_on_miss_and_on_revalidation() {
        let f = fixture(&[("a", "A")]);
        std::os::unix::fs::symlink("a", f.dir.path().join("link")).unwrap();
        let mut cache = FileCache::new(4, 0, INACTIVE);
        let error = open(&mut cache, &f.root, "link", SymlinkPolicy::Deny, 0).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP));
        open(&mut cache, &f.root, "link", SymlinkPolicy::WithinRoot, 0).unwrap();
        let error = open(&mut cache, &f.root, "link", SymlinkPolicy::Deny, 1).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ELOOP));
        assert!(cache.is_empty());
    }

    #[test]
    fn sweep_drops_idle_entries_and_keeps_used_ones() {
        let f = fixture(&[("a", "A"), ("b", "B")]);
        let mut cache = FileCache::new(8, 1000, 500);
        let (a, _) = open(&mut cache, &f.root, "a", POLICY, 0).unwrap();
        open(&mut cache, &f.root, "b", POLICY, 0).unwrap();
        assert_eq!(cache.sweep(499, 100), 0);
        // "a" is used again; "b" is not.
        assert!(hit(&mut cache, "a", 400).is_some());
        assert_eq!(cache.sweep(600, 100), 1);
        assert_eq!(cache.len(), 1);
        assert!(hit(&mut cache, "a", 601).is_some());
        assert!(hit(&mut cache, "b", 601).is_none());
        // The dropped entry is opened again on demand.
        open(&mut cache, &f.root, "b", POLICY, 700).unwrap();
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
        let (gone, _) = open(&mut cache, &f.root, "gone.ts", POLICY, 0).unwrap();
        open(&mut cache, &f.root, "kept.ts", POLICY, 0).unwrap();
        assert_eq!(cache.sweep(1, 100), 0);
        std::fs::remove_file(f.dir.path().join("gone.ts")).unwrap();
        assert_eq!(cache.sweep(2, 100), 1);
        assert!(hit(&mut cache, "gone.ts", 3).is_none());
        assert!(hit(&mut cache, "kept.ts", 3).is_some());
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
            open(&mut cache, &f.root, name, POLICY, 0).unwrap();
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
        let (old, _) = open(&mut cache, &f.root, "seg.ts", POLICY, 0).unwrap();
        // Replaced by a FIFO: the path names another file, which cannot be served.
        std::fs::remove_file(f.dir.path().join("seg.ts")).unwrap();
        let fifo =
            std::ffi::CString::new(f.dir.path().join("seg.ts").to_string_lossy().into_owned())
                .unwrap();
        // SAFETY: valid NUL-terminated path alive for the call.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let error = open(&mut cache, &f.root, "seg.ts", POLICY, 1).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EACCES));
        assert!(cache.is_empty());
        assert_eq!(Rc::strong_count(&old), 1);
    }

    #[test]
    fn step_api_miss_hit_stale_and_one_fd_per_file() {
        let f = fixture(&[("a.ts", "hello")]);
        let mut cache = FileCache::new(4, 100, INACTIVE);
        let rel = Path::new("a.ts");
        assert!(matches!(cache.lookup(rel, 0), Lookup::Miss));
        let (file, meta) = open_and_stat(&f.root, rel, POLICY).unwrap();
        let (first, first_meta) = cache.complete_open(rel, file, meta, 0);
        assert_eq!(first_meta, meta);
        match cache.lookup(rel, 99) {
            Lookup::Hit(file, hit_meta) => {
                assert!(Rc::ptr_eq(&file, &first));
                assert_eq!(hit_meta, meta);
            }
            other => panic!("{other:?}"),
        }
        // Past the window: stale, and the caller reopens. The same file under the name keeps
        // the cached fd (the new one is closed); only the validation time moves on.
        assert!(matches!(cache.lookup(rel, 100), Lookup::Stale));
        let (again, again_meta) = open_and_stat(&f.root, rel, POLICY).unwrap();
        let (kept, _) = cache.complete_open(rel, again, again_meta, 100);
        assert!(Rc::ptr_eq(&kept, &first));
        assert_eq!(
            Rc::strong_count(&first),
            3,
            "cache, first, kept: no second entry"
        );
        assert_eq!(cache.len(), 1);
        assert!(matches!(cache.lookup(rel, 199), Lookup::Hit(..)));
        // Two requests that both missed complete in turn: still one entry, one fd.
        let (a, a_meta) = open_and_stat(&f.root, rel, POLICY).unwrap();
        let (b, b_meta) = open_and_stat(&f.root, rel, POLICY).unwrap();
        let (from_a, _) = cache.complete_open(rel, a, a_meta, 200);
        let (from_b, _) = cache.complete_open(rel, b, b_meta, 200);
        assert!(Rc::ptr_eq(&from_a, &first) && Rc::ptr_eq(&from_b, &first));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn complete_open_replaces_another_inode_and_never_caches_a_directory() {
        let f = fixture(&[("seg.ts", "one")]);
        std::fs::create_dir(f.dir.path().join("dir")).unwrap();
        let mut cache = FileCache::new(4, 0, INACTIVE);
        let rel = Path::new("seg.ts");
        let (file, meta) = open_and_stat(&f.root, rel, POLICY).unwrap();
        let (old, _) = cache.complete_open(rel, file, meta, 0);
        std::fs::write(f.dir.path().join("seg.tmp"), "two!").unwrap();
        std::fs::rename(f.dir.path().join("seg.tmp"), f.dir.path().join("seg.ts")).unwrap();
        let (file, meta) = open_and_stat(&f.root, rel, POLICY).unwrap();
        let (new, new_meta) = cache.complete_open(rel, file, meta, 1);
        assert!(!Rc::ptr_eq(&old, &new));
        assert_eq!(new_meta.size, 4);
        assert_eq!(Rc::strong_count(&old), 1, "the cache let go of the old fd");
        assert_eq!(read_all(&new, 8), b"two!");
        // A directory is answered from its metadata and not kept.
        let dir = Path::new("dir");
        let (file, meta) = open_and_stat(&f.root, dir, POLICY).unwrap();
        let (_, dir_meta) = cache.complete_open(dir, file, meta, 2);
        assert!(dir_meta.is_dir && !dir_meta.is_file);
        assert!(matches!(cache.lookup(dir, 2), Lookup::Miss));
        assert_eq!(cache.len(), 1);
        // A file replaced by a directory under its name drops its entry.
        std::fs::remove_file(f.dir.path().join("seg.ts")).unwrap();
        std::fs::create_dir(f.dir.path().join("seg.ts")).unwrap();
        let (file, meta) = open_and_stat(&f.root, rel, POLICY).unwrap();
        cache.complete_open(rel, file, meta, 3);
        assert!(cache.is_empty());
    }
}
