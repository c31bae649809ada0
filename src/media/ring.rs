//! The chunk ring: a stream's shared, append-only, read-only sequence of serialised media.
//!
//! One publisher appends; readers on every worker read without locks. Each entry is an
//! immutable `Arc<Entry>` whose bytes never change after publication. A slot is *replaced*
//! (pointer swap), never written in place, so a reader that holds an entry — in particular one
//! whose bytes are under a send the kernel has not completed — keeps valid, unchanged bytes for
//! as long as it holds the `Arc`. Memory is reclaimed when the last holder drops it
//! (refcount reclamation; see kernel-notes/live-ring.md for why not epochs). The publisher
//! never waits for a reader: a reader that falls behind the tail finds its cursor gone and is
//! moved to the latest keyframe.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use bytes::Bytes;

use super::framing::{self, Framed, Framing, TsFramed};

/// One serialised unit (for FLV: a complete tag with its PreviousTagSize).
#[derive(Debug)]
pub struct Entry {
    pub seq: u64,
    /// A video keyframe: a reader may start here.
    pub keyframe: bool,
    /// Decode time on the stream's 64-bit output timeline (never wraps; the 32-bit wire
    /// timestamp of FLV/RTMP is its low 32 bits).
    pub dts_ms: u64,
    /// Bytes appended to the ring before this entry (for byte lag).
    pub offset: u64,
    /// The serialised unit (an FLV tag with its PreviousTagSize) in every output framing,
    /// framed once at append (see `framing`).
    pub framed: Framed,
    /// The unit as MPEG-TS packets, set once by the publisher while TS or HLS is wanted
    /// ([`ChunkRing::set_ts`]); unset for entries appended while nobody wanted it.
    pub ts: OnceLock<TsFramed>,
}

impl Entry {
    /// The serialised unit itself (the raw framing).
    pub fn bytes(&self) -> &Bytes {
        &self.framed.raw
    }

    /// The entry's bytes in `framing`, as at most two pieces sent back to back; `None` when
    /// the entry has no MPEG-TS yet (a TS framing of an entry the publisher has not muxed).
    pub fn parts(&self, framing: Framing) -> Option<[&Bytes; 2]> {
        if framing.is_ts() {
            Some(self.ts.get()?.parts(framing))
        } else {
            Some(self.framed.parts(framing))
        }
    }

    /// Bytes the entry holds in every framing produced so far (memory accounting).
    fn held_bytes(&self) -> usize {
        self.framed.raw.len() + self.ts.get().map_or(0, |ts| ts.raw.len())
    }

    /// Whether a reader at this entry is more than `max_lag_ms` of media time or
    /// `max_lag_bytes` of stream bytes behind `newest`.
    pub fn lags(&self, newest: &Entry, max_lag_ms: u64, max_lag_bytes: u64) -> bool {
        let lag_ms = newest.dts_ms.saturating_sub(self.dts_ms);
        let lag_bytes = (newest.offset + newest.bytes().len() as u64).saturating_sub(self.offset);
        lag_ms > max_lag_ms || lag_bytes > max_lag_bytes
    }
}

/// Why an append was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendError {
    /// The current GOP alone exceeds the hard byte cap or the entry capacity: the stream cannot
    /// be cached as configured.
    GopTooLarge,
}

pub struct ChunkRing {
    slots: Box<[ArcSwapOption<Entry>]>,
    mask: u64,
    /// Next sequence number to be written; entries `[tail, head)` are retained.
    head: AtomicU64,
    tail: AtomicU64,
    /// Sequence of the latest keyframe, or `u64::MAX` before the first.
    gop_start: AtomicU64,
    /// Bytes in `[tail, head)`.
    retained_bytes: AtomicUsize,
    /// Bytes ever appended.
    total_bytes: AtomicU64,
    soft_bytes: usize,
    hard_bytes: usize,
    /// Bytes retained by every ring that shares this counter (the live memory budget).
    budget: Arc<AtomicUsize>,
}

/// Where a reader stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// `cursor` is retained.
    InRing,
    /// `cursor` was reclaimed: the reader must move (to [`ChunkRing::gop_start`]).
    Behind,
    /// `cursor == head`: nothing new yet.
    AtHead,
}

impl ChunkRing {
    /// `entries` must be a power of two (validated in config). `budget` is the counter of
    /// retained bytes shared by all rings of a registry; this ring adds and removes its own.
    pub fn new(
        entries: usize,
        soft_bytes: usize,
        hard_bytes: usize,
        budget: Arc<AtomicUsize>,
    ) -> ChunkRing {
        let entries = entries.next_power_of_two().max(2);
        ChunkRing {
            slots: (0..entries).map(|_| ArcSwapOption::empty()).collect(),
            mask: entries as u64 - 1,
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            gop_start: AtomicU64::new(u64::MAX),
            retained_bytes: AtomicUsize::new(0),
            total_bytes: AtomicU64::new(0),
            soft_bytes,
            hard_bytes,
            budget,
        }
    }

    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    pub fn tail(&self) -> u64 {
        self.tail.load(Ordering::Acquire)
    }

    /// The latest keyframe, where a new or skipped reader starts.
    pub fn gop_start(&self) -> Option<u64> {
        match self.gop_start.load(Ordering::Acquire) {
            u64::MAX => None,
            seq => Some(seq),
        }
    }

    pub fn retained_bytes(&self) -> usize {
        self.retained_bytes.load(Ordering::Relaxed)
    }

    pub fn total_bytes(&self) -> u64 {
        self.total_bytes.load(Ordering::Relaxed)
    }

    /// Append one unit serialised without framing room (framed by one copy; tests).
    pub fn append(&self, keyframe: bool, dts_ms: u64, bytes: Bytes) -> Result<u64, AppendError> {
        self.append_framed(keyframe, dts_ms, framing::frame_copy(&bytes))
    }

    /// Append one framed entry (single publisher). Returns its sequence number.
    pub fn append_framed(
        &self,
        keyframe: bool,
        dts_ms: u64,
        framed: Framed,
    ) -> Result<u64, AppendError> {
        let seq = self.head.load(Ordering::Relaxed);
        // Retained bytes count the serialised units; the framing room (12 bytes an entry)
        // and the entry's own fields are overhead, like the Arc's.
        let len = framed.raw.len();
        let offset = self.total_bytes.load(Ordering::Relaxed);
        if keyframe {
            // Everything before this keyframe becomes reclaimable first.
            self.gop_start.store(seq, Ordering::Release);
        }
        // Make room: past the soft size drop entries older than the GOP cache; the entry
        // capacity and the hard size are absolute.
        let capacity = self.mask + 1;
        let mut tail = self.tail.load(Ordering::Relaxed);
        let gop = self.gop_start.load(Ordering::Relaxed);
        let mut retained = self.retained_bytes.load(Ordering::Relaxed);
        while tail < seq {
            let over_soft = retained + len > self.soft_bytes && (gop == u64::MAX || tail < gop);
            let over_hard = retained + len > self.hard_bytes;
            let full = seq - tail >= capacity;
            if !(over_soft || over_hard || full) {
                break;
            }
            if (over_hard || full) && gop != u64::MAX && tail >= gop {
                // The GOP cache itself does not fit.
                return Err(AppendError::GopTooLarge);
            }
            let slot = &self.slots[(tail & self.mask) as usize];
            if let Some(old) = slot.swap(None) {
                retained -= old.bytes().len();
                // MPEG-TS bytes count in the live memory budget, not in this ring's size
                // limits: a TS viewer arriving must not make a working stream's GOP too large.
                let ts = old.held_bytes() - old.bytes().len();
                if ts > 0 {
                    self.budget.fetch_sub(ts, Ordering::Relaxed);
                }
            }
            tail += 1;
            // Publish the new tail before the slot can be reused, so a reader that loads a
            // slot and then sees `seq` mismatch knows it fell behind.
            self.tail.store(tail, Ordering::Release);
        }
        let entry = Arc::new(Entry {
            seq,
            keyframe,
            dts_ms,
            offset,
            framed,
            ts: OnceLock::new(),
        });
        self.slots[(seq & self.mask) as usize].store(Some(entry));
        let before = self.retained_bytes.swap(retained + len, Ordering::Relaxed);
        // Only the publisher changes `retained_bytes`, so the shared counter moves by the
        // difference (added before subtracted, so it never underflows).
        self.budget.fetch_add(retained + len, Ordering::Relaxed);
        self.budget.fetch_sub(before, Ordering::Relaxed);
        self.total_bytes
            .store(offset + len as u64, Ordering::Relaxed);
        self.head.store(seq + 1, Ordering::Release);
        Ok(seq)
    }

    /// Attach the MPEG-TS packets of `entry` (publisher only, once per entry; a second call
    /// is ignored). Its bytes count in the live memory budget until the entry is reclaimed.
    pub fn set_ts(&self, entry: &Entry, ts: TsFramed) {
        let len = ts.raw.len();
        if entry.ts.set(ts).is_ok() && len > 0 {
            self.budget.fetch_add(len, Ordering::Relaxed);
        }
    }

    /// Where `cursor` stands.
    pub fn position(&self, cursor: u64) -> Position {
        if cursor < self.tail() {
            Position::Behind
        } else if cursor >= self.head() {
            Position::AtHead
        } else {
            Position::InRing
        }
    }

    /// The entry at `seq`, if it is still retained.
    pub fn get(&self, seq: u64) -> Option<Arc<Entry>> {
        if seq >= self.head() {
            return None;
        }
        let entry = self.slots[(seq & self.mask) as usize].load_full()?;
        // A mismatch means the slot was reclaimed and reused after we read `head`.
        (entry.seq == seq).then_some(entry)
    }

    /// Entries from `cursor` towards the head, up to `bytes_max` bytes and `entries_max`
    /// entries (at least one entry when any is available). Appends to `out`; returns `Err(())`
    /// when `cursor` has been reclaimed (the reader is behind).
    #[allow(clippy::result_unit_err)]
    pub fn read_from(
        &self,
        cursor: u64,
        bytes_max: usize,
        entries_max: usize,
        out: &mut Vec<Arc<Entry>>,
    ) -> Result<(), ()> {
        let head = self
            .head()
            .min(cursor.saturating_add(entries_max.max(1) as u64));
        let mut seq = cursor;
        let mut bytes = 0usize;
        while seq < head {
            let Some(entry) = self.get(seq) else {
                return if out.is_empty() { Err(()) } else { Ok(()) };
            };
            if !out.is_empty() && bytes + entry.bytes().len() > bytes_max {
                break;
            }
            bytes += entry.bytes().len();
            out.push(entry);
            seq += 1;
        }
        Ok(())
    }

    /// The newest entry (for lag measurements).
    pub fn newest(&self) -> Option<Arc<Entry>> {
        let head = self.head();
        if head == 0 { None } else { self.get(head - 1) }
    }
}

impl Drop for ChunkRing {
    fn drop(&mut self) {
        // The ring's memory goes with it (held entries die with their last holder, soon).
        let ts: usize = self
            .slots
            .iter()
            .filter_map(|slot| slot.load_full())
            .map(|entry| entry.held_bytes() - entry.bytes().len())
            .sum();
        self.budget
            .fetch_sub(*self.retained_bytes.get_mut() + ts, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_ring(entries: usize, soft: usize, hard: usize) -> ChunkRing {
        ChunkRing::new(entries, soft, hard, Arc::new(AtomicUsize::new(0)))
    }

    fn tag(n: u8, len: usize) -> Bytes {
        Bytes::from(vec![n; len])
    }

    #[test]
    fn append_and_read_in_order() {
        let ring = new_ring(16, 1 << 20, 1 << 20);
        for i in 0..5u8 {
            ring.append(i == 0, u64::from(i) * 40, tag(i, 10)).unwrap();
        }
        let mut out = Vec::new();
        ring.read_from(0, usize::MAX, usize::MAX, &mut out).unwrap();
        assert_eq!(
            out.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(*out[3].bytes(), tag(3, 10));
        assert_eq!(out[3].offset, 30);
        assert_eq!(ring.gop_start(), Some(0));
        out.clear();
        ring.read_from(2, 15, usize::MAX, &mut out).unwrap();
        assert_eq!(
            out.len(),
            1,
            "byte cap stops after the first entry that fits"
        );
        out.clear();
        ring.read_from(1, usize::MAX, 3, &mut out).unwrap();
        assert_eq!(
            out.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3],
            "entry cap (IOV_MAX) stops a batch too"
        );
    }

    #[test]
    fn shared_budget_counts_every_rings_retained_bytes() {
        let budget = Arc::new(AtomicUsize::new(0));
        let a = ChunkRing::new(64, 100, 1000, budget.clone());
        let b = ChunkRing::new(64, 100, 1000, budget.clone());
        for i in 0..10u8 {
            a.append(i % 3 == 0, 0, tag(i, 20)).unwrap();
        }
        b.append(true, 0, tag(1, 30)).unwrap();
        assert_eq!(
            budget.load(Ordering::Relaxed),
            a.retained_bytes() + b.retained_bytes()
        );
        assert!(a.retained_bytes() <= 100 + 20);
        drop(a);
        assert_eq!(budget.load(Ordering::Relaxed), 30);
        drop(b);
        assert_eq!(budget.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn soft_limit_keeps_the_gop_and_reclaims_older_entries() {
        let ring = new_ring(64, 100, 1000);
        for i in 0..10u8 {
            ring.append(i == 0 || i == 6, 0, tag(i, 20)).unwrap();
        }
        // While the first GOP (0..6) was the GOP cache it grew past the soft size (120 bytes);
        // once the keyframe at 6 arrived, older entries went until 100 bytes remain.
        assert_eq!(ring.tail(), 5);
        assert_eq!(ring.position(2), Position::Behind);
        assert_eq!(ring.position(6), Position::InRing);
        assert_eq!(ring.position(10), Position::AtHead);
        assert_eq!(ring.retained_bytes(), 100);
        let mut out = Vec::new();
        assert_eq!(ring.read_from(3, usize::MAX, usize::MAX, &mut out), Err(()));
    }

    #[test]
    fn held_entries_survive_reclamation_unchanged() {
        let ring = new_ring(4, 40, 1000);
        ring.append(true, 0, tag(7, 10)).unwrap();
        let held = ring.get(0).unwrap();
        for i in 1..50u8 {
            ring.append(true, 0, tag(i, 10)).unwrap();
        }
        assert!(ring.get(0).is_none());
        assert_eq!(
            *held.bytes(),
            tag(7, 10),
            "a held entry is never overwritten"
        );
    }

    #[test]
    fn a_gop_over_the_hard_cap_is_refused() {
        let ring = new_ring(64, 50, 100);
        ring.append(true, 0, tag(0, 40)).unwrap();
        ring.append(false, 0, tag(1, 40)).unwrap();
        assert_eq!(
            ring.append(false, 0, tag(2, 40)),
            Err(AppendError::GopTooLarge)
        );
    }

    #[test]
    fn concurrent_readers_never_see_torn_entries() {
        // One publisher wraps a small ring many times while readers copy entries out and
        // check each against the checksum pattern it was written with. Every reader is
        // running before the first append, and after the last one it reads on until it has
        // reached the head, so each one checks entries whatever the scheduler does (it used
        // to stop on a flag and could have checked nothing on a loaded box).
        const APPENDS: u64 = 20_000;
        let ring = Arc::new(new_ring(8, 256, 4096));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let start = Arc::new(std::sync::Barrier::new(4));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let ring = ring.clone();
                let done = done.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    let mut cursor = 0;
                    let mut out = Vec::new();
                    start.wait();
                    loop {
                        // Read `done` before the read: if it was set, the read below sees
                        // the final head.
                        let finished = done.load(Ordering::Acquire);
                        out.clear();
                        if ring.read_from(cursor, 1024, usize::MAX, &mut out).is_err() {
                            cursor = ring.gop_start().unwrap_or(0);
                            continue;
                        }
                        for e in &out {
                            let fill = (e.seq % 251) as u8;
                            assert!(e.bytes().iter().all(|b| *b == fill), "torn entry {}", e.seq);
                            assert_eq!(e.seq, cursor);
                            cursor += 1;
                            seen += 1;
                        }
                        if finished && cursor == APPENDS {
                            return seen;
                        }
                    }
                })
            })
            .collect();
        start.wait();
        for seq in 0..APPENDS {
            let fill = (seq % 251) as u8;
            ring.append(seq % 5 == 0, 0, Bytes::from(vec![fill; 32]))
                .unwrap();
        }
        done.store(true, Ordering::Release);
        for r in readers {
            // At least the last GOP (a reader that fell behind moves to its keyframe).
            assert!(r.join().unwrap() >= 5);
        }
    }
}
