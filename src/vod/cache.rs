//! A bounded per-worker cache of open files, so a hot segment costs no open/fstat per
//! request. Sans clock: the caller passes `now_ms`.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::open::stat_beneath;
use super::{FileMeta, SymlinkPolicy, open_beneath};

struct Entry {
    file: Rc<File>,
    meta: FileMeta,
    /// When the entry was last checked against the filesystem.
    validated_ms: u64,
    /// Value of the cache's use counter at the last hit; the smallest is evicted first.
    last_used: u64,
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
pub struct FileCache {
    capacity: usize,
    revalidate_ms: u64,
    entries: HashMap<PathBuf, Entry>,
    use_counter: u64,
}

impl FileCache {
    /// `capacity` entries at most (0 disables caching); entries are trusted for
    /// `revalidate_ms` after each check (0 checks on every request).
    pub fn new(capacity: usize, revalidate_ms: u64) -> Self {
        FileCache {
            capacity,
            revalidate_ms,
            entries: HashMap::with_capacity(capacity),
            use_counter: 0,
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
        let entry = self.entries.get_mut(rel)?;
        if now_ms.saturating_sub(entry.validated_ms) >= self.revalidate_ms {
            return None;
        }
        entry.last_used = self.use_counter;
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
        if !self.entries.contains_key(&rel) && self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(path, _)| path.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.use_counter += 1;
        self.entries.insert(
            rel,
            Entry {
                file,
                meta,
                validated_ms: now_ms,
                last_used: self.use_counter,
            },
        );
    }

    /// Drops an entry (say, after the runtime saw the file vanish).
    pub fn remove(&mut self, rel: &Path) {
        self.entries.remove(rel);
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
    /// of playlists and segments) opens the new file.
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
        if let Some(entry) = self.entries.get_mut(rel) {
            match stat_beneath(root, rel, policy) {
                Ok(metadata) => {
                    let current = FileMeta::from_metadata(&metadata);
                    if current.dev == entry.meta.dev && current.ino == entry.meta.ino {
                        entry.meta = current;
                        entry.validated_ms = now_ms;
                        entry.last_used = self.use_counter;
                        return Ok((Rc::clone(&entry.file), current));
                    }
                }
                Err(error) => {
                    self.entries.remove(rel);
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
        let mut cache = FileCache::new(4, 1000);
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
        let mut cache = FileCache::new(4, 1000);
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
        let mut cache = FileCache::new(4, 0);
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
        let mut cache = FileCache::new(4, 10);
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
        let mut cache = FileCache::new(2, 1000);
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
        let mut cache = FileCache::new(1, 1000);
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
        let mut cache = FileCache::new(0, 1000);
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
        let mut cache = FileCache::new(4, 0);
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
}
