//! Quality of service of a live stream: what operators of live services watch.
//!
//! - Ingest ([`IngestQos`], fed by the stream's one publisher, read as a [`QosSnapshot`]):
//!   bitrate and frame rate over a window, the GOP interval (min/avg/max of the keyframe
//!   intervals in the window), arrival jitter and sequence-header changes. Arrival jitter is
//!   how late a frame arrives against the media clock: for each frame, the offset
//!   `arrival − dts`; a frame's jitter is its offset minus the smallest offset in the window
//!   (the frame that arrived earliest relative to its timestamp), so a steady encoder on a
//!   steady network shows ~0 whatever its clock, and bursts, stalls and congested uplinks
//!   show as p50/p99 in milliseconds. Video frames are used when the stream has video
//!   (audio is interleaved in bursts by muxers), audio frames otherwise.
//! - Delivery ([`Histogram`] per stream, filled from worker-local [`LocalHistogram`]s once per
//!   tick): readers' lag behind the newest entry after each completed send, and the time from
//!   a new reader's request to its first media bytes out.
//!
//! Sans-IO: times come in as milliseconds on the caller's monotonic clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

/// Upper bounds (ms) of the reader-lag histogram's buckets (plus +Inf).
pub const LAG_BUCKETS_MS: [u64; BOUNDS] = [25, 50, 100, 250, 500, 1000, 2000, 5000, 10_000];
/// Upper bounds (ms) of the first-byte histogram's buckets (plus +Inf).
pub const FIRST_BYTE_BUCKETS_MS: [u64; BOUNDS] = [5, 10, 25, 50, 100, 250, 500, 1000, 5000];
/// Finite bucket bounds of every histogram here.
pub const BOUNDS: usize = 9;

/// Samples kept at most, whatever the window (a 60 fps stream has 1,800 video frames in 30 s).
const SAMPLES_MAX: usize = 16_384;

/// Observations counted by one worker between two flushes (no atomics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalHistogram {
    /// Per bucket (not cumulative); the last is +Inf.
    pub counts: [u64; BOUNDS + 1],
    pub sum_ms: u64,
}

impl LocalHistogram {
    pub fn observe(&mut self, bounds: &[u64; BOUNDS], value_ms: u64) {
        let bucket = bounds.partition_point(|&b| b < value_ms);
        self.counts[bucket] += 1;
        self.sum_ms += value_ms;
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }
}

/// A histogram every worker adds to (once per tick) and the API and /metrics read.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BOUNDS + 1],
    sum_ms: AtomicU64,
}

impl Histogram {
    /// Add a worker's observations and clear them.
    pub fn absorb(&self, local: &mut LocalHistogram) {
        for (shared, count) in self.counts.iter().zip(local.counts) {
            if count > 0 {
                shared.fetch_add(count, Ordering::Relaxed);
            }
        }
        self.sum_ms.fetch_add(local.sum_ms, Ordering::Relaxed);
        *local = LocalHistogram::default();
    }

    /// Counts per bucket (not cumulative) and the sum.
    pub fn read(&self) -> LocalHistogram {
        let mut out = LocalHistogram::default();
        for (o, c) in out.counts.iter_mut().zip(&self.counts) {
            *o = c.load(Ordering::Relaxed);
        }
        out.sum_ms = self.sum_ms.load(Ordering::Relaxed);
        out
    }
}

impl LocalHistogram {
    /// The upper bound of the bucket that holds quantile `q` (0..=1): an estimate that
    /// errs high, as Prometheus' histogram_quantile does at a bucket's top. None without
    /// observations; `u64::MAX` when it falls in the +Inf bucket.
    pub fn quantile(&self, bounds: &[u64; BOUNDS], q: f64) -> Option<u64> {
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(bounds.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The ingest figures over the window, as the API and /metrics show them.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct QosSnapshot {
    pub window_ms: u64,
    pub bitrate_kbps: u64,
    pub fps: Option<f64>,
    pub gop_min_ms: Option<u64>,
    pub gop_avg_ms: Option<u64>,
    pub gop_max_ms: Option<u64>,
    pub jitter_p50_ms: Option<u64>,
    pub jitter_p99_ms: Option<u64>,
    /// Sequence headers (decoder configurations) that differed from the one before, over
    /// the stream's life (republishes included): an encoder restarted with, or changed to,
    /// other settings.
    pub sequence_header_changes: u64,
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    arrival_ms: u64,
    dts_ms: u64,
    bytes: u32,
    video: bool,
    keyframe: bool,
}

/// The ingest side, kept by the publisher.
#[derive(Debug)]
pub struct IngestQos {
    window_ms: u64,
    samples: VecDeque<Sample>,
    video_config: Option<Bytes>,
    audio_config: Option<Bytes>,
    header_changes: u64,
    /// Scratch for percentiles.
    scratch: Vec<i64>,
}

impl IngestQos {
    pub fn new(window_ms: u64) -> IngestQos {
        IngestQos {
            window_ms: window_ms.max(1),
            samples: VecDeque::new(),
            video_config: None,
            audio_config: None,
            header_changes: 0,
            scratch: Vec::new(),
        }
    }

    /// A republish: the stream's last sequence headers and change count carry over, so an
    /// encoder that comes back with other settings counts as a change.
    pub fn continue_from(
        &mut self,
        video_config: Option<Bytes>,
        audio_config: Option<Bytes>,
        header_changes: u64,
    ) {
        self.video_config = video_config;
        self.audio_config = audio_config;
        self.header_changes = header_changes;
    }

    /// A sequence header arrived (`video` or audio): counted when it differs from the last.
    pub fn on_config(&mut self, video: bool, body: &Bytes) {
        let last = if video {
            &mut self.video_config
        } else {
            &mut self.audio_config
        };
        if last.as_ref().is_some_and(|l| l != body) {
            self.header_changes += 1;
        }
        *last = Some(body.clone());
    }

    /// A media frame arrived at `arrival_ms` with (rebased) `dts_ms` and `bytes` of payload.
    pub fn on_frame(&mut self, arrival_ms: u64, dts_ms: u64, bytes: usize, video: bool, key: bool) {
        if self.samples.len() >= SAMPLES_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            arrival_ms,
            dts_ms,
            bytes: bytes.min(u32::MAX as usize) as u32,
            video,
            keyframe: key,
        });
        self.expire(arrival_ms);
    }

    fn expire(&mut self, now_ms: u64) {
        while self
            .samples
            .front()
            .is_some_and(|s| s.arrival_ms + self.window_ms < now_ms)
        {
            self.samples.pop_front();
        }
    }

    /// The figures over the window that ends at `now_ms`.
    pub fn snapshot(&mut self, now_ms: u64) -> QosSnapshot {
        self.expire(now_ms);
        let mut out = QosSnapshot {
            window_ms: self.window_ms,
            sequence_header_changes: self.header_changes,
            ..QosSnapshot::default()
        };
        let Some(first) = self.samples.front().copied() else {
            return out;
        };
        let span_ms = now_ms.saturating_sub(first.arrival_ms).max(1);
        let bytes: u64 = self.samples.iter().map(|s| u64::from(s.bytes)).sum();
        out.bitrate_kbps = bytes * 8 / span_ms;
        let has_video = self.samples.iter().any(|s| s.video);
        // Frame rate from the media clock of the video frames in the window.
        let video: Vec<&Sample> = self.samples.iter().filter(|s| s.video).collect();
        if let (Some(a), Some(b)) = (video.first(), video.last())
            && b.dts_ms > a.dts_ms
        {
            out.fps = Some((video.len() - 1) as f64 * 1000.0 / (b.dts_ms - a.dts_ms) as f64);
        }
        let mut intervals = Vec::new();
        let mut last_key = None;
        for s in video.iter().filter(|s| s.keyframe) {
            if let Some(last) = last_key
                && s.dts_ms > last
            {
                intervals.push(s.dts_ms - last);
            }
            last_key = Some(s.dts_ms);
        }
        if !intervals.is_empty() {
            out.gop_min_ms = intervals.iter().min().copied();
            out.gop_max_ms = intervals.iter().max().copied();
            out.gop_avg_ms = Some(intervals.iter().sum::<u64>() / intervals.len() as u64);
        }
        self.scratch.clear();
        self.scratch.extend(
            self.samples
                .iter()
                .filter(|s| s.video == has_video)
                .map(|s| s.arrival_ms as i64 - s.dts_ms as i64),
        );
        if let Some(&min) = self.scratch.iter().min() {
            for offset in &mut self.scratch {
                *offset -= min;
            }
            self.scratch.sort_unstable();
            let at = |q: f64| {
                let n = self.scratch.len();
                let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
                self.scratch[i].max(0) as u64
            };
            out.jitter_p50_ms = Some(at(0.5));
            out.jitter_p99_ms = Some(at(0.99));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_has_no_jitter_and_its_real_rates() {
        let mut q = IngestQos::new(10_000);
        // 25 fps video, a keyframe every 2 s, 5,000 bytes a frame; the encoder's clock starts
        // at 90 s, ours at 1 s: the offset does not matter, only its variation.
        for i in 0..500u64 {
            q.on_frame(1_000 + i * 40, 90_000 + i * 40, 5_000, true, i % 50 == 0);
        }
        let s = q.snapshot(1_000 + 499 * 40);
        assert_eq!(s.jitter_p50_ms, Some(0));
        assert_eq!(s.jitter_p99_ms, Some(0));
        let fps = s.fps.unwrap();
        assert!((fps - 25.0).abs() < 0.01, "{fps}");
        assert_eq!(
            (s.gop_min_ms, s.gop_avg_ms, s.gop_max_ms),
            (Some(2000), Some(2000), Some(2000))
        );
        // 5,000 bytes × 25/s = 1,000 kbit/s.
        assert!((990..=1010).contains(&s.bitrate_kbps), "{}", s.bitrate_kbps);
    }

    #[test]
    fn late_frames_show_in_the_percentiles() {
        let mut q = IngestQos::new(60_000);
        for i in 0..1000u64 {
            // Every 50th frame is held up 400 ms (a stall upstream), the next ones catch up.
            let late = if i % 50 == 0 { 400 } else { 0 };
            q.on_frame(i * 40 + late, i * 40, 1000, true, false);
        }
        let s = q.snapshot(1000 * 40);
        assert_eq!(s.jitter_p50_ms, Some(0));
        // 2 % of frames are 400 ms late: p99 sees them.
        assert_eq!(s.jitter_p99_ms, Some(400));
        assert_eq!(s.gop_min_ms, None, "no keyframes, no GOP");
    }

    #[test]
    fn the_window_forgets_and_audio_only_streams_use_audio() {
        let mut q = IngestQos::new(5_000);
        for i in 0..100u64 {
            q.on_frame(
                i * 100,
                i * 100 + if i < 40 { 0 } else { 7 },
                100,
                false,
                false,
            );
        }
        // Only the last 5 s are in the window: all shifted by the same 7 ms, no jitter.
        let s = q.snapshot(9_900);
        assert_eq!(s.jitter_p99_ms, Some(0));
        assert_eq!(s.fps, None);
        // Long after: empty.
        let s = q.snapshot(100_000);
        assert_eq!(s.bitrate_kbps, 0);
        assert_eq!(s.jitter_p50_ms, None);
    }

    #[test]
    fn sequence_header_changes_count_differences_only() {
        let mut q = IngestQos::new(1000);
        let a = Bytes::from_static(b"avcC-a");
        let b = Bytes::from_static(b"avcC-b");
        q.on_config(true, &a);
        q.on_config(true, &a);
        q.on_config(false, &b);
        assert_eq!(q.snapshot(0).sequence_header_changes, 0);
        q.on_config(true, &b);
        assert_eq!(q.snapshot(0).sequence_header_changes, 1);
        // A republish carries the last headers over: the same one again is no change.
        let mut next = IngestQos::new(1000);
        next.continue_from(Some(b.clone()), Some(b.clone()), 1);
        next.on_config(true, &b);
        assert_eq!(next.snapshot(0).sequence_header_changes, 1);
        next.on_config(false, &a);
        assert_eq!(next.snapshot(0).sequence_header_changes, 2);
    }

    #[test]
    fn samples_are_bounded() {
        let mut q = IngestQos::new(u64::MAX / 4);
        for i in 0..(SAMPLES_MAX as u64 + 100) {
            q.on_frame(i, i, 1, true, false);
        }
        assert_eq!(q.samples.len(), SAMPLES_MAX);
    }

    #[test]
    fn histograms_bucket_and_estimate_quantiles() {
        let mut local = LocalHistogram::default();
        for v in [1, 25, 26, 99, 100, 101, 20_000] {
            local.observe(&LAG_BUCKETS_MS, v);
        }
        // ≤25: 1, 25; ≤50: 26; ≤100: 99, 100; ≤250: 101; +Inf: 20000.
        assert_eq!(local.counts, [2, 1, 2, 1, 0, 0, 0, 0, 0, 1]);
        let shared = Histogram::default();
        shared.absorb(&mut local);
        assert!(local.is_empty());
        let read = shared.read();
        assert_eq!(read.count(), 7);
        assert_eq!(read.sum_ms, 1 + 25 + 26 + 99 + 100 + 101 + 20_000);
        assert_eq!(read.quantile(&LAG_BUCKETS_MS, 0.5), Some(100));
        assert_eq!(read.quantile(&LAG_BUCKETS_MS, 0.99), Some(u64::MAX));
        assert_eq!(
            LocalHistogram::default().quantile(&LAG_BUCKETS_MS, 0.5),
            None
        );
    }
}
