//! Live HLS from a stream's TS ring: a segmenter that cuts the ring's entries into MPEG-TS
//! segments and writes the media playlist (RFC 8216) over them. Sans-IO: entries, their dts
//! and the wall clock come in; immutable snapshots (playlist text and segment bytes, shared
//! `Bytes`) come out, for every worker to serve.
//!
//! Driving it, from the one thread that appends to the stream's TS ring:
//! 1. [`Segmenter::push`] every TS entry in ring order, with its dts, whether a segment may
//!    start at it, the stream's PAT+PMT and the wall clock. When it returns true, publish
//!    [`Segmenter::snapshot`] to the workers.
//! 2. [`Segmenter::discontinuity`] when the publisher changes (or TS restarts after a gap);
//!    the segment open so far is completed at once, and the next `push` returns true.
//! 3. [`Segmenter::end`] when the stream is over; publish the snapshot if it returns true.
//!
//! Invariants the tests hold it to: `#EXT-X-TARGETDURATION` is fixed when the first segment
//! completes and never changes (later segments are cut early, even mid-GOP, rather than run
//! past it); segment names never repeat; memory is bounded by `window_segments +
//! retain_segments` completed segments of at most `segment_bytes_max` bytes each, plus the
//! open one. With [`Segmenter::count_memory_in`], every completed segment's bytes count in a
//! shared counter (the live memory budget) for as long as anything holds them ([`charge`]).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;

pub mod charge;

const TS_PACKET_LEN: usize = 188;
const PAT_PID: u16 = 0;
/// An entry this far behind the latest dts starts a new timeline. Muxers interleave tracks
/// within well under a second (ffmpeg's default max_interleave_delta is 0.7 s … 1 s), so
/// audio arriving a little behind video stays in the timeline. Also: a track that has not
/// sent an entry for this long is not used to predict the next entry's dts.
const DTS_BACKWARD_TOLERANCE_MS: u64 = 2_000;
/// A gap between an entry and the latest dts longer than this starts a new timeline (a
/// restarted encoder or a dts jump), not a segment that long.
const DTS_GAP_MAX_MS: u64 = 10_000;
/// Once the target duration is fixed, an entry that arrives this much later than the target
/// allows (the next entry came later than predicted) still cuts the segment, reported as
/// the target duration; a larger overshoot is a gap in the timeline and starts a new one.
const OVERSHOOT_CLAMP_MAX_MS: u64 = 500;
/// Tracks (PIDs) followed to predict the next entry's dts; more are not followed.
const TRACKS_MAX: usize = 8;
/// The playlist's `#EXT-X-VERSION`: 3 for decimal `#EXTINF` durations (RFC 8216 §7); no other
/// tag used here needs more.
const PLAYLIST_VERSION: u32 = 3;

/// How a stream is segmented and listed.
#[derive(Clone, Debug)]
pub struct HlsParams {
    /// Cut at the first keyframe at or after this duration.
    pub segment_target_ms: u64,
    /// Segments listed in the live playlist (at least 1 is used).
    pub window_segments: usize,
    /// Extra segments kept fetchable after leaving the playlist (players still downloading).
    pub retain_segments: usize,
    /// A segment that would exceed this is cut at the next entry boundary. An entry that
    /// cannot fit in a segment on its own (with the PSI put before it) is dropped.
    pub segment_bytes_max: usize,
    /// Unique per stream life; segment names are `{prefix}{seq}.ts`.
    pub name_prefix: String,
}

/// One completed segment.
#[derive(Clone, Debug)]
pub struct HlsSegment {
    /// Media sequence number: 0 for a Segmenter's first segment, +1 for each after it.
    pub seq: u64,
    /// `{prefix}{seq}.ts`.
    pub name: String,
    /// Whole TS packets, starting with PAT and PMT.
    pub bytes: Bytes,
    pub duration_ms: u64,
    /// Wall clock of its first media (`#EXT-X-PROGRAM-DATE-TIME`). Within a timeline this is
    /// the previous segment's date plus its media duration, so dates and `#EXTINF`s agree
    /// whichever segment a player anchors to.
    pub program_date_ms: u64,
    /// Wall clock when it completed (Last-Modified).
    pub completed_wall_ms: u64,
    /// It follows a discontinuity (`#EXT-X-DISCONTINUITY` before it).
    pub discontinuity: bool,
    /// It is in the playlist (else only retained for players still fetching it).
    pub listed: bool,
}

/// Everything a worker serves for one stream's HLS at one moment.
#[derive(Debug)]
pub struct HlsSnapshot {
    /// Media playlist text.
    pub playlist: Bytes,
    /// Listed and retained segments, oldest first.
    pub segments: Vec<HlsSegment>,
    pub ended: bool,
    /// Increments with every new snapshot (an ETag of the playlist, together with the name
    /// prefix, since a new Segmenter starts again at 0).
    pub version: u64,
}

impl HlsSnapshot {
    /// A listed or retained segment by file name.
    pub fn segment(&self, name: &str) -> Option<&HlsSegment> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// Whether a segment completed (players wait for the first one).
    pub fn has_segments(&self) -> bool {
        !self.segments.is_empty()
    }
}

/// The dts and interval of one track (PID), to predict when its next entry comes.
#[derive(Clone, Copy, Debug)]
struct TrackClock {
    pid: u16,
    last_dts_ms: u64,
    /// The larger of the last two intervals; 0 until known.
    interval_ms: u64,
    last_interval_ms: u64,
}

/// One track's entries within the open segment, for its average entry interval.
#[derive(Clone, Copy, Debug)]
struct TrackSpan {
    pid: u16,
    first_dts_ms: u64,
    last_dts_ms: u64,
    entries: u64,
}

/// The segment being filled.
#[derive(Debug)]
struct OpenSegment {
    bytes: Vec<u8>,
    first_dts_ms: u64,
    max_dts_ms: u64,
    entries: u64,
    program_date_ms: u64,
    discontinuity: bool,
    /// Whether it starts with a keyframe (else a forced cut started it mid-GOP).
    starts_at_keyframe: bool,
    spans: Vec<TrackSpan>,
}

impl OpenSegment {
    fn observe(&mut self, pid: u16, dts_ms: u64) {
        self.entries += 1;
        self.max_dts_ms = self.max_dts_ms.max(dts_ms);
        if let Some(span) = self.spans.iter_mut().find(|s| s.pid == pid) {
            span.last_dts_ms = span.last_dts_ms.max(dts_ms);
            span.entries += 1;
        } else if self.spans.len() < TRACKS_MAX {
            self.spans.push(TrackSpan {
                pid,
                first_dts_ms: dts_ms,
                last_dts_ms: dts_ms,
                entries: 1,
            });
        }
    }

    /// Duration when no next segment says where this one ends (at a discontinuity or the
    /// end): its dts span plus the average entry interval of the keyframe track (the video;
    /// the audio of an audio-only stream), or of all entries, or `fallback_interval_ms`.
    fn estimated_duration_ms(&self, key_pid: Option<u16>, fallback_interval_ms: u64) -> u64 {
        let span_ms = self.max_dts_ms.saturating_sub(self.first_dts_ms);
        let key_interval = self
            .spans
            .iter()
            .find(|s| Some(s.pid) == key_pid && s.entries >= 2)
            .map(|s| (s.last_dts_ms.saturating_sub(s.first_dts_ms)) / (s.entries - 1));
        let interval_ms = match key_interval {
            Some(interval) => interval,
            None if self.entries >= 2 => span_ms / (self.entries - 1),
            None => fallback_interval_ms,
        };
        span_ms.saturating_add(interval_ms)
    }

    /// Append `data`, growing the buffer at most to `bytes_max` (a completed segment keeps
    /// its buffer, so the memory bound is on capacity, not only length).
    fn append(&mut self, data: &[u8], bytes_max: usize) {
        let needed = self.bytes.len() + data.len();
        if needed > self.bytes.capacity() {
            let grown = needed
                .max(self.bytes.capacity() * 2)
                .min(bytes_max.max(needed));
            self.bytes.reserve_exact(grown - self.bytes.len());
        }
        self.bytes.extend_from_slice(data);
    }
}

/// Cuts a live stream's TS entries into segments and lists them. See the module docs for the
/// calling order.
pub struct Segmenter {
    params: HlsParams,
    /// Completed segments, listed and retained, oldest first.
    segments: VecDeque<HlsSegment>,
    open: Option<OpenSegment>,
    next_seq: u64,
    /// `#EXT-X-TARGETDURATION`, fixed when the first segment completes.
    target_duration_s: Option<u64>,
    /// The next segment follows a discontinuity.
    discontinuity_pending: bool,
    /// Entries are dropped until a keyframe (at the start and after `discontinuity`).
    keyframe_awaited: bool,
    /// Program date of the next segment if it continues the timeline.
    next_program_date_ms: Option<u64>,
    /// Discontinuities that left the playlist (`#EXT-X-DISCONTINUITY-SEQUENCE`).
    discontinuity_sequence: u64,
    /// Whether any segment ever followed a discontinuity (then the sequence tag is written).
    discontinuity_seen: bool,
    /// The media PID of the latest keyframe entry.
    key_pid: Option<u16>,
    last_keyframe_dts_ms: Option<u64>,
    /// The distance between the last two keyframes.
    gop_ms: Option<u64>,
    clocks: Vec<TrackClock>,
    /// The latest wall clock pushed (Last-Modified of a segment completed by `discontinuity`).
    last_wall_ms: u64,
    ended: bool,
    /// A snapshot was made outside `push` (by `discontinuity`) and not yet reported.
    unreported: bool,
    snapshot: Arc<HlsSnapshot>,
    /// Where completed segments' bytes are counted while held (None: not counted).
    memory: Option<Arc<AtomicUsize>>,
}

impl Segmenter {
    pub fn new(params: HlsParams) -> Segmenter {
        let mut segmenter = Segmenter {
            params,
            segments: VecDeque::new(),
            open: None,
            next_seq: 0,
            target_duration_s: None,
            discontinuity_pending: false,
            keyframe_awaited: true,
            next_program_date_ms: None,
            discontinuity_sequence: 0,
            discontinuity_seen: false,
            key_pid: None,
            last_keyframe_dts_ms: None,
            gop_ms: None,
            clocks: Vec::new(),
            last_wall_ms: 0,
            ended: false,
            unreported: false,
            memory: None,
            snapshot: Arc::new(HlsSnapshot {
                playlist: Bytes::new(),
                segments: Vec::new(),
                ended: false,
                version: 0,
            }),
        };
        segmenter.snapshot = Arc::new(HlsSnapshot {
            playlist: segmenter.playlist(),
            segments: Vec::new(),
            ended: false,
            version: 0,
        });
        segmenter
    }

    /// Count every segment completed from now on in `counter` (the live memory budget) until
    /// its bytes are freed: when it has left the window and no snapshot, response or
    /// recorder holds it any more.
    pub fn count_memory_in(mut self, counter: Arc<AtomicUsize>) -> Segmenter {
        self.memory = Some(counter);
        self
    }

    /// One entry: whole TS packets of one media unit; a video keyframe entry starts with PAT
    /// and PMT. `psi`: PAT+PMT to put first in a segment whose first entry does not start
    /// with PID 0 (audio-only streams, forced cuts); may be empty. `keyframe`: a segment may
    /// start here. `wall_ms`: unix ms now. Returns true when a new snapshot is ready (a
    /// segment completed here, or in `discontinuity` since the last push). Entries that are
    /// not whole packets, and entries after `end`, are ignored.
    pub fn push(
        &mut self,
        ts: &[u8],
        dts_ms: u64,
        keyframe: bool,
        psi: &[u8],
        wall_ms: u64,
    ) -> bool {
        let reported = std::mem::take(&mut self.unreported);
        if self.ended || ts.is_empty() || !ts.len().is_multiple_of(TS_PACKET_LEN) {
            return reported;
        }
        let starts_with_pat = first_packet_pid(ts) == Some(PAT_PID);
        let psi = if starts_with_pat { &[][..] } else { psi };
        if psi.len() + ts.len() > self.params.segment_bytes_max {
            // It could never start a segment, so it could not be served within the bound.
            return reported;
        }
        self.last_wall_ms = wall_ms;
        let media_pid = last_packet_pid(ts);
        let Some(mut open) = self.open.take() else {
            if self.keyframe_awaited && !keyframe {
                return reported;
            }
            self.observe_entry(media_pid, dts_ms, keyframe);
            self.start_segment(ts, dts_ms, keyframe, psi, wall_ms);
            return reported;
        };

        let behind = dts_ms.saturating_add(DTS_BACKWARD_TOLERANCE_MS) < open.max_dts_ms;
        let gap = dts_ms > open.max_dts_ms.saturating_add(DTS_GAP_MAX_MS);
        let overshoot = self.limit_ms().is_some_and(|limit_ms| {
            dts_ms.saturating_sub(open.first_dts_ms)
                > limit_ms.saturating_add(OVERSHOOT_CLAMP_MAX_MS)
        });
        if behind || gap || overshoot {
            // A new timeline: where this segment ends in media time is unknown, so estimate
            // it, and mark the next one as discontinuous (its dts do not follow on).
            let duration_ms = self.estimated_duration_ms(&open);
            self.complete(open, duration_ms, None, wall_ms);
            self.reset_timeline();
            self.discontinuity_pending = true;
            self.observe_entry(media_pid, dts_ms, keyframe);
            self.start_segment(ts, dts_ms, keyframe, psi, wall_ms);
            self.publish();
            return true;
        }

        self.observe_entry(media_pid, dts_ms, keyframe);
        let duration_ms = dts_ms.saturating_sub(open.first_dts_ms);
        let at_target = keyframe && duration_ms >= self.params.segment_target_ms;
        let limit_ms = self.limit_ms();
        let forced = limit_ms.is_some_and(|limit_ms| {
            duration_ms > limit_ms
                || self
                    .predicted_next_dts_ms()
                    .is_some_and(|next_ms| next_ms.saturating_sub(open.first_dts_ms) > limit_ms)
        });
        // A segment that a forced cut started mid-GOP ends at the first keyframe after which
        // the next GOP would not fit either, so segments line up with GOPs again (unless it
        // is still shorter than half the target: no tiny segments).
        let realign = keyframe
            && !open.starts_at_keyframe
            && duration_ms.saturating_mul(2) >= self.params.segment_target_ms
            && limit_ms.is_some_and(|limit_ms| {
                self.gop_ms
                    .is_some_and(|gop_ms| duration_ms.saturating_add(gop_ms) > limit_ms)
            });
        let full = open.bytes.len() + ts.len() > self.params.segment_bytes_max;
        if at_target || forced || realign || full {
            let reported_ms = match limit_ms {
                Some(limit_ms) => duration_ms.min(limit_ms),
                None => duration_ms,
            };
            self.complete(open, reported_ms, Some(duration_ms), wall_ms);
            self.start_segment(ts, dts_ms, keyframe, psi, wall_ms);
            self.publish();
            return true;
        }
        open.append(ts, self.params.segment_bytes_max);
        open.observe(media_pid, dts_ms);
        self.open = Some(open);
        reported
    }

    /// A republish (or a TS restart after a gap): the segment open so far is completed now
    /// (its duration estimated), and the next segment, marked with `#EXT-X-DISCONTINUITY`,
    /// starts at the next keyframe entry (entries before it are dropped).
    pub fn discontinuity(&mut self) {
        if self.ended {
            return;
        }
        if let Some(open) = self.open.take() {
            let duration_ms = self.estimated_duration_ms(&open);
            self.complete(open, duration_ms, None, self.last_wall_ms);
            self.publish();
            self.unreported = true;
        }
        self.discontinuity_pending |= !self.segments.is_empty();
        self.keyframe_awaited = true;
        self.reset_timeline();
    }

    /// Stream over: complete the open segment (if it has media) and mark the playlist ended
    /// (`#EXT-X-ENDLIST`). Returns true if the snapshot changed.
    pub fn end(&mut self, wall_ms: u64) -> bool {
        if self.ended {
            return false;
        }
        if let Some(open) = self.open.take() {
            let duration_ms = self.estimated_duration_ms(&open);
            self.complete(open, duration_ms, None, wall_ms);
        }
        self.ended = true;
        self.unreported = false;
        self.publish();
        true
    }

    /// The latest snapshot (a reference count, no copy).
    pub fn snapshot(&self) -> Arc<HlsSnapshot> {
        Arc::clone(&self.snapshot)
    }

    /// The longest duration a segment may report once the target is fixed.
    fn limit_ms(&self) -> Option<u64> {
        self.target_duration_s
            .map(|target_s| target_s.saturating_mul(1000))
    }

    fn estimated_duration_ms(&self, open: &OpenSegment) -> u64 {
        let fallback_ms = self
            .clocks
            .iter()
            .find(|c| Some(c.pid) == self.key_pid)
            .map_or(0, |c| c.interval_ms);
        let estimate_ms = open.estimated_duration_ms(self.key_pid, fallback_ms);
        match self.limit_ms() {
            Some(limit_ms) => estimate_ms.min(limit_ms),
            None => estimate_ms,
        }
    }

    /// Forget what the dts so far predict (a new timeline begins).
    fn reset_timeline(&mut self) {
        self.clocks.clear();
        self.key_pid = None;
        self.last_keyframe_dts_ms = None;
        self.gop_ms = None;
    }

    fn observe_entry(&mut self, pid: u16, dts_ms: u64, keyframe: bool) {
        if keyframe {
            self.key_pid = Some(pid);
            if let Some(last_ms) = self.last_keyframe_dts_ms
                && dts_ms > last_ms
            {
                self.gop_ms = Some(dts_ms - last_ms);
            }
            self.last_keyframe_dts_ms = Some(dts_ms);
        }
        self.observe_clock(pid, dts_ms);
    }

    fn observe_clock(&mut self, pid: u16, dts_ms: u64) {
        if let Some(clock) = self.clocks.iter_mut().find(|c| c.pid == pid) {
            if dts_ms > clock.last_dts_ms {
                let interval_ms = dts_ms - clock.last_dts_ms;
                clock.interval_ms = interval_ms.max(clock.last_interval_ms);
                clock.last_interval_ms = interval_ms;
                clock.last_dts_ms = dts_ms;
            }
        } else if self.clocks.len() < TRACKS_MAX {
            self.clocks.push(TrackClock {
                pid,
                last_dts_ms: dts_ms,
                interval_ms: 0,
                last_interval_ms: 0,
            });
        }
    }

    /// When the next entry is due: the earliest next dts of the tracks still sending. This
    /// assumes entries come roughly in dts order, which muxers make them; an entry that comes
    /// later than predicted is what `OVERSHOOT_CLAMP_MAX_MS` absorbs.
    fn predicted_next_dts_ms(&self) -> Option<u64> {
        let latest_ms = self.clocks.iter().map(|c| c.last_dts_ms).max()?;
        self.clocks
            .iter()
            .filter(|c| c.interval_ms > 0)
            .filter(|c| c.last_dts_ms.saturating_add(DTS_BACKWARD_TOLERANCE_MS) >= latest_ms)
            .map(|c| c.last_dts_ms.saturating_add(c.interval_ms))
            .min()
    }

    /// Open a segment with this entry (already observed), `psi` first (empty if the entry
    /// starts with a PAT; the caller checked that both fit).
    fn start_segment(&mut self, ts: &[u8], dts_ms: u64, keyframe: bool, psi: &[u8], wall_ms: u64) {
        let discontinuity = std::mem::take(&mut self.discontinuity_pending);
        let program_date_ms = match self.next_program_date_ms {
            Some(date_ms) if !discontinuity => date_ms,
            _ => wall_ms,
        };
        let mut open = OpenSegment {
            bytes: Vec::new(),
            first_dts_ms: dts_ms,
            max_dts_ms: dts_ms,
            entries: 0,
            program_date_ms,
            discontinuity,
            starts_at_keyframe: keyframe,
            spans: Vec::new(),
        };
        open.append(psi, self.params.segment_bytes_max);
        open.append(ts, self.params.segment_bytes_max);
        open.observe(last_packet_pid(ts), dts_ms);
        self.keyframe_awaited = false;
        self.open = Some(open);
    }

    /// Close `open` as the next segment, reporting `duration_ms`; `media_ms` is how far the
    /// next segment's media starts after its start, when it continues the timeline.
    fn complete(
        &mut self,
        open: OpenSegment,
        duration_ms: u64,
        media_ms: Option<u64>,
        wall_ms: u64,
    ) {
        let target_s = *self.target_duration_s.get_or_insert_with(|| {
            self.params
                .segment_target_ms
                .div_ceil(1000)
                .max(duration_ms.div_ceil(1000))
                .max(1)
        });
        debug_assert!(duration_ms <= target_s.saturating_mul(1000));
        self.next_program_date_ms = media_ms.map(|ms| open.program_date_ms.saturating_add(ms));
        self.discontinuity_seen |= open.discontinuity;
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut bytes = open.bytes;
        bytes.shrink_to_fit();
        let bytes = match &self.memory {
            Some(counter) => charge::charged_bytes(bytes, counter.clone()),
            None => Bytes::from(bytes),
        };
        self.segments.push_back(HlsSegment {
            seq,
            name: format!("{}{seq}.ts", self.params.name_prefix),
            bytes,
            duration_ms,
            program_date_ms: open.program_date_ms,
            completed_wall_ms: wall_ms,
            discontinuity: open.discontinuity,
            listed: true,
        });
        // One segment joined, so at most one leaves the playlist.
        let window = self.window();
        if self.segments.len() > window {
            let leaving = self.segments.len() - 1 - window;
            if let Some(segment) = self.segments.get_mut(leaving) {
                segment.listed = false;
                if segment.discontinuity {
                    self.discontinuity_sequence += 1;
                }
            }
        }
        while self.segments.len() > window + self.params.retain_segments {
            self.segments.pop_front();
        }
    }

    fn window(&self) -> usize {
        self.params.window_segments.max(1)
    }

    fn publish(&mut self) {
        self.snapshot = Arc::new(HlsSnapshot {
            playlist: self.playlist(),
            segments: self.segments.iter().cloned().collect(),
            ended: self.ended,
            version: self.snapshot.version + 1,
        });
    }

    /// The media playlist over the listed segments. Before the first segment completes the
    /// target duration is the provisional `ceil(segment_target_ms)`; players are not given
    /// that playlist (they wait for a segment), so the target they see never changes.
    fn playlist(&self) -> Bytes {
        let target_s = self
            .target_duration_s
            .unwrap_or_else(|| self.params.segment_target_ms.div_ceil(1000).max(1));
        let listed: Vec<&HlsSegment> = self.segments.iter().filter(|s| s.listed).collect();
        let media_sequence = listed.first().map_or(self.next_seq, |s| s.seq);
        let mut out =
            String::with_capacity(160 + listed.len() * (80 + self.params.name_prefix.len()));
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{PLAYLIST_VERSION}");
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target_s}");
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{media_sequence}");
        if self.discontinuity_seen {
            let _ = writeln!(
                out,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        for (i, segment) in listed.iter().enumerate() {
            if segment.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if i == 0 || segment.discontinuity {
                let _ = writeln!(
                    out,
                    "#EXT-X-PROGRAM-DATE-TIME:{}",
                    iso8601_ms(segment.program_date_ms)
                );
            }
            let _ = writeln!(
                out,
                "#EXTINF:{}.{:03},\n{}",
                segment.duration_ms / 1000,
                segment.duration_ms % 1000,
                segment.name
            );
        }
        if self.ended {
            out.push_str("#EXT-X-ENDLIST\n");
        }
        Bytes::from(out)
    }
}

fn packet_pid(packet: &[u8]) -> Option<u16> {
    let high = *packet.get(1)?;
    let low = *packet.get(2)?;
    Some(u16::from(high & 0x1F) << 8 | u16::from(low))
}

fn first_packet_pid(ts: &[u8]) -> Option<u16> {
    packet_pid(ts.get(..TS_PACKET_LEN)?)
}

/// The media PID of an entry: PSI comes first, so the last packet is the unit's own.
fn last_packet_pid(ts: &[u8]) -> u16 {
    let start = ts.len().saturating_sub(TS_PACKET_LEN);
    ts.get(start..).and_then(packet_pid).unwrap_or(PAT_PID)
}

/// `unix_ms` as ISO 8601 UTC with milliseconds, e.g. `2026-11-26T10:00:00.123Z` (the form of
/// `#EXT-X-PROGRAM-DATE-TIME`, RFC 8216 §4.3.2.6).
pub fn iso8601_ms(unix_ms: u64) -> String {
    let ms = unix_ms % 1000;
    let secs = unix_ms / 1000;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let second_of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar: Howard
/// Hinnant's `civil_from_days` (chrono-compatible algorithms), for non-negative days. Eras
/// of 400 years (146 097 days) repeat exactly; within one, years start on March 1 so the
/// leap day is the era-year's last.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days from 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
