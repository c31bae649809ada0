//! A worker's fan-out hub for one stream: the window of ring entries its local readers still
//! need, one reference per entry for all of them.
//!
//! Readers index into the window by sequence number; a reader's batch is one iovec per
//! pre-framed entry (see `media::framing`), so a send takes no refcount, formats nothing and
//! allocates nothing. Lag is computed from the entries' plain fields. The window is pulled from
//! the shared ring when the stream has news and trimmed to the oldest local cursor after each
//! flush, so its cost per reader does not depend on how many readers other workers hold.
//!
//! Write coalescing (`live.send_coalesce_ms`, `live.send_coalesce_bytes`): news does not make
//! readers send at once; the hub *flushes* at most once per window (or as soon as the unsent
//! bytes pass the byte threshold), and a reader sends whatever is between its cursor and the
//! head at that moment — several tags in one send. A joiner's first batch (its GOP cache) and
//! a skip go out at once.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::media::qos::LocalHistogram;
use crate::media::ring::{Entry, Position};
use crate::media::stream::Stream;

pub(crate) struct Hub {
    pub stream: Arc<Stream>,
    /// This worker's readers of the stream, as (slab key, generation).
    pub readers: Vec<(usize, u32)>,
    /// Sequence number of `entries[0]`.
    base: u64,
    entries: VecDeque<Arc<Entry>>,
    /// Ring head when the readers were last flushed.
    pub pumped_head: u64,
    /// Since when (worker ms) the ring head has been ahead of `pumped_head` with no news: a
    /// wake-up that does not come within a tick was lost, and the tick flushes instead.
    pub behind_since_ms: Option<u64>,
    /// When the coalescing window closes and the hub flushes (None: nothing pending).
    pub flush_at_ms: Option<u64>,
    /// When the hub last flushed.
    pub last_flush_ms: u64,
    /// Readers may send entries below this (the head at the last flush); a reader whose send
    /// completes with its cursor below it sends again at once.
    pub released_head: u64,
    /// Framed bytes pulled since the last flush (the byte threshold of coalescing).
    pub unsent_bytes: usize,
    /// Bytes sent to this worker's readers since the stream's figures were last updated
    /// (worker-local, added to the stream's shared counter once per tick).
    pub bytes_out: u64,
    /// Frames (entries) sent and skipped, and the readers' lag and first-byte times, since
    /// the last flush (worker-local, like `bytes_out`).
    pub frames_sent: u64,
    pub frames_skipped: u64,
    pub lag: LocalHistogram,
    pub first_byte: LocalHistogram,
}

impl Hub {
    pub fn new(stream: Arc<Stream>, now_ms: u64) -> Hub {
        let head = stream.flv.head();
        Hub {
            base: head,
            entries: VecDeque::new(),
            pumped_head: head,
            behind_since_ms: None,
            flush_at_ms: None,
            last_flush_ms: now_ms,
            released_head: head,
            unsent_bytes: 0,
            bytes_out: 0,
            frames_sent: 0,
            frames_skipped: 0,
            lag: LocalHistogram::default(),
            first_byte: LocalHistogram::default(),
            readers: Vec::new(),
            stream,
        }
    }

    /// One past the newest entry in the window.
    pub fn head(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    /// Oldest entry in the window.
    #[cfg(test)]
    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn get(&self, seq: u64) -> Option<&Arc<Entry>> {
        let index = seq.checked_sub(self.base)?;
        self.entries.get(usize::try_from(index).ok()?)
    }

    pub fn newest(&self) -> Option<&Arc<Entry>> {
        self.entries.back()
    }

    /// Where `cursor` stands in the window: `Behind` = older than the window (reclaimed
    /// before this worker pulled it; the reader must skip).
    pub fn position(&self, cursor: u64) -> Position {
        if cursor < self.base {
            Position::Behind
        } else if cursor >= self.head() {
            Position::AtHead
        } else {
            Position::InRing
        }
    }

    /// Pull what the ring appended since the last sync. If the ring reclaimed entries this
    /// worker never pulled (it was not scheduled for longer than the ring holds), the window
    /// restarts at the ring's latest keyframe and cursors before it read as [`Position::Behind`].
    /// Returns the framed bytes pulled.
    pub fn sync(&mut self) -> usize {
        let ring = &self.stream.flv;
        let ring_head = ring.head();
        if self.head() < ring.tail() {
            let restart = ring.gop_start().unwrap_or(ring_head);
            self.entries.clear();
            self.base = restart;
        }
        let mut pulled = 0;
        let mut seq = self.head();
        while seq < ring_head {
            let Some(entry) = ring.get(seq) else {
                // Reclaimed under us (the publisher outran this worker): restart the window.
                let restart = ring.gop_start().unwrap_or(ring_head).max(seq + 1);
                self.entries.clear();
                self.base = restart;
                seq = restart;
                continue;
            };
            pulled += entry.framed.chunked.len();
            self.entries.push_back(entry);
            seq += 1;
        }
        pulled
    }

    /// Make the window start at or before `seq` (a joiner or a skip starting at the latest
    /// keyframe, older than the trimmed window). False if the ring no longer has it.
    pub fn extend_back_to(&mut self, seq: u64) -> bool {
        if self.entries.is_empty() {
            self.base = seq;
            self.sync();
            return self.base <= seq;
        }
        let ring = &self.stream.flv;
        while self.base > seq {
            let Some(entry) = ring.get(self.base - 1) else {
                return false;
            };
            self.entries.push_front(entry);
            self.base -= 1;
        }
        true
    }

    /// Drop entries before `oldest_needed` (the oldest local cursor; an in-flight batch
    /// starts at its reader's cursor, so no entry under a send is dropped).
    pub fn trim(&mut self, oldest_needed: u64) {
        while self.base < oldest_needed && !self.entries.is_empty() {
            self.entries.pop_front();
            self.base += 1;
        }
    }

    /// Entries held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LiveConfig;
    use crate::media::stream::Registry;
    use bytes::Bytes;

    fn stream(entries: usize, soft: usize) -> Arc<Stream> {
        let registry = Registry::new(LiveConfig {
            ring_entries: entries,
            ring_bytes: soft,
            ring_bytes_hard_max: soft * 4,
            ..LiveConfig::default()
        });
        let publisher = registry.publish("live", "hub", 0).expect("publish");
        publisher.stream.clone()
    }

    fn append(stream: &Stream, keyframe: bool, n: u8) {
        stream
            .flv
            .append(keyframe, u64::from(n) * 40, Bytes::from(vec![n; 100]))
            .expect("append");
    }

    #[test]
    fn one_reference_per_entry_and_trim_to_the_oldest_cursor() {
        let s = stream(64, 1 << 20);
        let mut hub = Hub::new(s.clone(), 0);
        for n in 0..5 {
            append(&s, n == 0, n);
        }
        assert_eq!(
            hub.sync(),
            5 * s.flv.get(0).expect("entry").framed.chunked.len()
        );
        assert_eq!((hub.base(), hub.head(), hub.len()), (0, 5, 5));
        let entry = hub.get(3).expect("in window");
        assert_eq!(entry.seq, 3);
        // The ring and the hub hold it: two references, whatever the number of readers.
        assert_eq!(Arc::strong_count(entry), 2);
        assert_eq!(hub.position(2), Position::InRing);
        assert_eq!(hub.position(5), Position::AtHead);
        hub.trim(3);
        assert_eq!((hub.base(), hub.len()), (3, 2));
        assert_eq!(hub.position(1), Position::Behind);
        assert!(hub.get(2).is_none());
        // A joiner at the keyframe (seq 0) pulls the window back from the ring.
        assert!(hub.extend_back_to(0));
        assert_eq!((hub.base(), hub.len()), (0, 5));
    }

    #[test]
    fn a_ring_that_outran_the_hub_restarts_the_window_at_the_latest_keyframe() {
        let s = stream(8, 1 << 20);
        let mut hub = Hub::new(s.clone(), 0);
        append(&s, true, 0);
        hub.sync();
        // 20 more entries in an 8-entry ring, keyframes every 4: seq 0..=12 are reclaimed.
        for n in 1..=20u8 {
            append(&s, n % 4 == 0, n);
        }
        hub.sync();
        assert_eq!(hub.base(), 20, "restarted at the newest keyframe");
        assert_eq!(hub.head(), 21);
        assert_eq!(hub.position(1), Position::Behind);
        assert!(!hub.extend_back_to(5), "reclaimed in the ring too");
    }
}
