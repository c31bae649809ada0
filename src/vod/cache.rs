//! A bounded per-worker cache of open files.
//!
//! A hit costs a hash lookup instead of openat2 + fstat. Entries are trusted for
//! `revalidate_ms`; after that the path is opened again and compared (dev, inode, size,
//! mtime), so a replaced or rewritten file is noticed within that window. Files are `Rc` so
//! an fd under an in-flight splice stays open after eviction.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::meta::FileMeta;
use super::path::{SymlinkPolicy, open_beneath};

struct Cached {
    file: Rc<File>,
    meta: FileMeta,
    validated_ms: u64,
    used: u64,
}

pub struct FileCache {
    entries: HashMap<PathBuf, Cached>,
    capacity: usize,
    revalidate_ms: u64,
    clock: u64,
}

impl FileCache {
    pub fn new(capacity: usize, revalidate_ms: u64) -> FileCache {
        FileCache {
            entries: HashMap::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            revalidate_ms,
            clock: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A fresh entry, if any.
    pub fn get(&mut self, rel: &Path, now_ms: u64) -> Option<(Rc<File>, FileMeta)> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.get_mut(rel)?;
        if now_ms.saturating_sub(entry.validated_ms) > self.revalidate_ms {
            return None;
        }
        entry.used = clock;
        Some((entry.file.clone(), entry.meta))
    }

    pub fn insert(&mut self, rel: PathBuf, file: Rc<File>, meta: FileMeta, now_ms: u64) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&rel) {
            // Evict the least recently used entry: O(n) but only on a miss with a full cache.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.clock += 1;
        self.entries.insert(
            rel,
            Cached {
                file,
                meta,
                validated_ms: now_ms,
                used: self.clock,
            },
        );
    }

    /// The cached file when fresh; otherwise open + fstat, keeping the cached fd if the file
    /// is unchanged. Errors (not found, refused by the symlink policy) drop the entry.
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
        let opened = open_beneath(root, rel, policy).and_then(|f| {
            let meta = FileMeta::from_metadata(&f.metadata()?);
            Ok((f, meta))
        });
        let (file, meta) = match opened {
            Ok(found) => found,
            Err(e) => {
                self.entries.remove(rel);
                return Err(e);
            }
        };
        let file = match self.entries.get(rel) {
            Some(c) if c.meta == meta => c.file.clone(),
            _ => Rc::new(file),
        };
        self.insert(rel.to_path_buf(), file.clone(), meta, now_ms);
        Ok((file, meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vod::path::open_root;
    use std::io::Read;

    #[test]
    fn hit_revalidate_evict() {
        let dir = std::env::temp_dir().join(format!("uringcast-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..4 {
            std::fs::write(dir.join(format!("{i}.bin")), vec![b'a'; i + 1]).unwrap();
        }
        let root = open_root(&dir).unwrap();
        let mut cache = FileCache::new(2, 100);
        let p0 = Path::new("0.bin");
        let (f0, m0) = cache
            .revalidate(&root, p0, SymlinkPolicy::WithinRoot, 0)
            .unwrap();
        assert_eq!(m0.size, 1);
        let (f0b, _) = cache
            .revalidate(&root, p0, SymlinkPolicy::WithinRoot, 50)
            .unwrap();
        assert!(Rc::ptr_eq(&f0, &f0b), "a fresh hit reuses the fd");
        // Modified: seen after the revalidation window.
        std::fs::write(dir.join("0.bin"), b"changed!").unwrap();
        let (_, m) = cache
            .revalidate(&root, p0, SymlinkPolicy::WithinRoot, 90)
            .unwrap();
        assert_eq!(m.size, 1, "trusted within the window");
        let (_, m) = cache
            .revalidate(&root, p0, SymlinkPolicy::WithinRoot, 500)
            .unwrap();
        assert_eq!(m.size, 8);
        // Bounded: three more files, capacity two.
        for i in 1..4 {
            cache
                .revalidate(
                    &root,
                    Path::new(&format!("{i}.bin")),
                    SymlinkPolicy::WithinRoot,
                    600,
                )
                .unwrap();
        }
        assert_eq!(cache.len(), 2);
        // An evicted fd still works while held.
        let mut text = String::new();
        (&*f0).read_to_string(&mut text).unwrap();
        assert_eq!(text, "changed!");
        std::fs::remove_file(dir.join("3.bin")).unwrap();
        assert!(
            cache
                .revalidate(&root, Path::new("3.bin"), SymlinkPolicy::WithinRoot, 10_000)
                .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
