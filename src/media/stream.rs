//! A live stream: its chunk ring, the headers a new reader needs, its publisher state and its
//! figures; and the registry that names streams.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::{Bytes, BytesMut};
use crossbeam_utils::CachePadded;

use super::framing;
use super::qos::{Histogram, IngestQos, QosSnapshot};
use super::ring::{AppendError, ChunkRing};
use super::unit::{Codec, MediaUnit, UnitKind};
use crate::config::LiveConfig;
use crate::media::hls::{HlsParams, HlsSnapshot, Segmenter};
use crate::proto::ts::TsMuxer;
use crate::proto::{flv, h26x};

/// Most workers a stream tracks readers for (the notification bitmap is one `AtomicU64`).
pub const WORKERS_MAX: usize = 64;

/// What a new reader is sent before the GOP cache: FLV file header, onMetaData and the
/// sequence headers (as FLV tags, timestamped when sent).
#[derive(Clone, Debug, Default)]
pub struct StreamHeaders {
    pub has_audio: bool,
    pub has_video: bool,
    /// Script body (onMetaData ...), already in file form.
    pub metadata: Option<Bytes>,
    /// AVC/HEVC decoder configuration tag body.
    pub video_config: Option<Bytes>,
    /// AAC AudioSpecificConfig tag body.
    pub audio_config: Option<Bytes>,
}

impl StreamHeaders {
    /// Serialise the headers for a new reader, timestamped `dts_ms` (the GOP start; FLV
    /// carries its low 32 bits).
    pub fn write_flv(&self, dts_ms: u64, out: &mut Vec<u8>) {
        let dts_ms = dts_ms as u32;
        flv::mux::write_file_header(
            self.has_audio || self.audio_config.is_some(),
            self.has_video || self.video_config.is_some(),
            out,
        );
        if let Some(meta) = &self.metadata {
            flv::mux::write_tag(18, 0, meta, out);
        }
        if let Some(video) = &self.video_config {
            flv::mux::write_tag(9, dts_ms, video, out);
        }
        if let Some(audio) = &self.audio_config {
            flv::mux::write_tag(8, dts_ms, audio, out);
        }
    }

    /// The same headers as RTMP messages for a new RTMP reader: onMetaData (a data message at
    /// time 0), then the sequence headers timestamped `dts_ms` (low 32 bits).
    pub fn write_rtmp(&self, dts_ms: u64, out: &mut Vec<u8>) {
        let dts_ms = dts_ms as u32;
        let mut message = |msg_type: u8, timestamp_ms: u32, body: &[u8]| {
            let message = framing::RtmpMessage {
                msg_type,
                timestamp_ms,
                len: body.len() as u32,
            };
            framing::write_rtmp_message(&message, body, out);
        };
        if let Some(meta) = &self.metadata {
            message(18, 0, meta);
        }
        if let Some(video) = &self.video_config {
            message(9, dts_ms, video);
        }
        if let Some(audio) = &self.audio_config {
            message(8, dts_ms, audio);
        }
    }
}

/// Figures shown by /api/v1/streams and /metrics.
#[derive(Default)]
///
/// The figures readers' workers write (once per tick, from worker-local counters, or on a
/// rare event) sit on cache lines of their own, away from those the publisher writes per unit.
pub struct StreamStats {
    pub bytes_in: AtomicU64,
    pub bytes_out: CachePadded<AtomicU64>,
    pub video_frames: AtomicU64,
    pub audio_frames: AtomicU64,
    pub keyframes: AtomicU64,
    pub timestamp_corrections: AtomicU64,
    pub skips: CachePadded<AtomicU64>,
    pub slow_disconnects: CachePadded<AtomicU64>,
    pub readers_flv: CachePadded<AtomicU32>,
    pub readers_rtmp: CachePadded<AtomicU32>,
    /// HTTP-TS readers: while above zero the publisher muxes every entry into MPEG-TS.
    pub readers_ts: CachePadded<AtomicU32>,
    /// Recorded segments dropped because the recorder's queue was full (a slow disk).
    pub record_dropped: AtomicU64,
    /// dts of the last two keyframes, for the GOP interval.
    pub last_keyframe_dts_ms: AtomicU64,
    pub gop_interval_ms: AtomicU64,
    pub last_dts_ms: AtomicU64,
    /// Largest presentation time published (dts + composition offset): B-frames present
    /// after later-decoded frames, so a republish must continue after this, not after dts.
    pub last_pts_ms: AtomicU64,
    /// The latest video frame interval (for placing a republish one frame after the old end).
    pub frame_interval_ms: AtomicU64,
    /// Entries (frames) sent to readers, and skipped by lagging readers: the frame-drop rate
    /// is skipped / (sent + skipped). Added to from the workers' hubs once per tick.
    pub frames_sent: CachePadded<AtomicU64>,
    pub frames_skipped: CachePadded<AtomicU64>,
    /// HLS requests answered for the stream (playlists; segments) and the segment body bytes
    /// answered (a range: its length; HEAD: none). Added to from the workers once per tick.
    pub hls_playlist_requests: AtomicU64,
    pub hls_segment_requests: AtomicU64,
    pub hls_segment_bytes: AtomicU64,
}

/// Descriptive facts that change rarely (codec, size), behind a mutex read only by the API.
#[derive(Clone, Debug, Default)]
pub struct StreamInfo {
    pub video_codec: Option<Codec>,
    pub audio_codec: Option<Codec>,
    /// Picture size: the SPS's (cropped) when the video sequence header has one this server
    /// reads, else what onMetaData declared.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Declared rate: onMetaData's, else the SPS's VUI timing (the API prefers the measured
    /// rate over either).
    pub fps: Option<f64>,
    pub publishes: u64,
    /// What the latest video sequence header's SPS says (None for a codec or a set that is
    /// not read).
    sps: Option<h26x::VideoParams>,
    /// What onMetaData declared: width, height, framerate (each kept until a later
    /// onMetaData gives it again).
    declared: (Option<u32>, Option<u32>, Option<f64>),
}

impl StreamInfo {
    /// A video sequence header of `codec` arrived: its SPS (if any is read) sets the size from
    /// now on, replacing an earlier one (a resolution change, a republish).
    fn on_video_config(&mut self, codec: Codec, record: &[u8]) {
        self.sps = match codec {
            Codec::H264 => h26x::avc_config_params(record),
            Codec::Hevc => h26x::hevc_config_params(record),
            _ => None,
        };
        self.resolve();
    }

    /// onMetaData arrived: kept for what the SPS does not say.
    fn on_metadata(&mut self, meta: &flv::StreamMetadata) {
        let (width, height, fps) = &mut self.declared;
        *width = meta.width.or(*width);
        *height = meta.height.or(*height);
        *fps = meta.framerate.or(*fps);
        self.resolve();
    }

    /// The SPS wins for the size (metadata lies: an encoder's scaled output, a filter after
    /// the muxer); metadata for the rate, the SPS's VUI timing when it has none.
    fn resolve(&mut self) {
        let (width, height, fps) = self.declared;
        match self.sps {
            Some(sps) => {
                self.width = Some(sps.width);
                self.height = Some(sps.height);
                self.fps = fps.or(sps.fps);
            }
            None => {
                self.width = width;
                self.height = height;
                self.fps = fps;
            }
        }
    }
}

/// One live stream.
///
/// Each output framing has its own chunk ring of the same media units: `flv` today (FLV tags,
/// which are also the RTMP message bodies). FLV is always produced because its ring is the GOP
/// cache every new reader starts from. Framings added later (188-byte TS packets, HLS
/// segments) get a ring of their own beside it, appended by the same `Publisher::publish` only
/// while their reader count (`StreamStats::readers_*`) is above zero, and rebuilt from the next
/// keyframe when a first reader of that format arrives.
pub struct Stream {
    /// The ingest QoS figures of the current publish (see [`crate::media::qos`]).
    pub qos: Mutex<QosSnapshot>,
    /// Readers' lag behind the newest entry after each completed send.
    pub reader_lag: Histogram,
    /// Time from a reader's connection to its first media bytes out.
    pub first_byte: Histogram,
    pub id: u32,
    pub app: String,
    pub name: String,
    pub flv: ChunkRing,
    pub headers: ArcSwap<StreamHeaders>,
    /// The FLV preamble of the latest GOP start, built once and shared by every reader that
    /// starts there (rebuilt when the headers or the GOP change).
    preamble: ArcSwapOption<Preamble>,
    pub publishing: AtomicBool,
    /// ms (server clock) when the publisher dropped; readers wait `publisher_grace_ms`.
    pub unpublished_at_ms: AtomicU64,
    /// Set once the stream is over for good: readers finish their body and close.
    pub ended: AtomicBool,
    pub started_at_ms: u64,
    /// Wall clock of the start (Unix ms; part of HLS segment names).
    pub started_unix_ms: u64,
    /// Bit w set: worker w has readers of this stream.
    pub reader_workers: CachePadded<AtomicU64>,
    /// Bit w set: worker w has been told of news on this stream and has not looked yet
    /// (coalescing: one mailbox command per worker per burst of appends).
    pub wake_pending: CachePadded<AtomicU64>,
    pub stats: StreamStats,
    pub info: Mutex<StreamInfo>,
    /// MPEG-TS production (muxer state), locked by the publisher only, once per unit.
    ts: Mutex<TsState>,
    /// PAT+PMT as the muxer would write them next, framed: what a joining TS reader of an
    /// audio-only stream gets first (video keyframe entries start with their own PAT/PMT).
    ts_psi: ArcSwap<framing::Framed>,
    /// Live HLS settings (None: HLS off).
    hls_settings: Option<Arc<HlsSettings>>,
    /// Unix ms of the latest playlist request: segments are made while players ask.
    hls_wanted_ms: AtomicU64,
    /// The stream's app is in `hls.record_apps`: segmented from the start and recorded.
    record: bool,
    /// The latest playlist and segments, for every worker (None while not segmenting).
    pub hls: ArcSwapOption<HlsSnapshot>,
    /// The registry's live memory counter: segments count in it while they are held.
    hls_memory: Arc<AtomicUsize>,
}

/// What the publisher hands to the recorder (a writer thread of the server; `media` does no
/// I/O): each completed HLS segment of a recorded stream, then its end.
#[derive(Debug)]
pub enum RecordEvent {
    Segment {
        /// `{app}/{stream}`, and the stream's start (Unix ms): one recording per stream life.
        key: String,
        started_unix_ms: u64,
        name: String,
        bytes: Bytes,
        duration_ms: u64,
        discontinuity: bool,
    },
    End {
        key: String,
        started_unix_ms: u64,
    },
}

/// What live HLS is made with, from `[hls]`.
#[derive(Clone, Debug)]
pub struct HlsSettings {
    /// Segmenter parameters (the name prefix is set per stream life).
    pub params: HlsParams,
    /// Segmenting stops this long after the latest playlist request.
    pub idle_ms: u64,
    /// A stream's final playlist and segments stay this long after it ends.
    pub ended_keep_ms: u64,
    /// Apps whose streams are recorded (segmented from the start, whether or not anyone
    /// asks for HLS).
    pub record_apps: Vec<String>,
    /// Where recorded segments go: a bounded queue to the writer thread (a full queue drops
    /// the segment and counts it; the publisher never waits for a disk).
    pub recorder: Option<std::sync::mpsc::SyncSender<RecordEvent>>,
}

/// The publisher's MPEG-TS state, kept with the stream so a republish within the grace
/// period continues it (continuity counters; later the HLS segmenter).
#[derive(Default)]
struct TsState {
    /// Present while some reader wants MPEG-TS (an HTTP-TS reader or HLS).
    muxer: Option<TsMuxer>,
    /// Present while players ask for HLS.
    segmenter: Option<Segmenter>,
    /// Segmenters made in this stream's life (part of segment names, so a restarted segmenter
    /// never repeats a name).
    segmenters: u32,
    /// Recording: the newest segment handed to the recorder (by name; None before the first).
    recorded: Option<String>,
}

/// The serialised preambles (FLV and RTMP) and what they were built from.
struct Preamble {
    headers: Arc<StreamHeaders>,
    gop_seq: u64,
    flv: framing::Framed,
    rtmp: Bytes,
}

static EMPTY: Bytes = Bytes::new();

/// What a new reader is sent before its first entry, in its framing.
#[derive(Clone, Debug)]
pub struct ReaderPreamble {
    pub flv: framing::Framed,
    pub rtmp: Bytes,
}

impl ReaderPreamble {
    pub fn get(&self, framing: framing::Framing) -> &Bytes {
        match framing {
            framing::Framing::Raw => &self.flv.raw,
            framing::Framing::HttpChunked => &self.flv.chunked,
            framing::Framing::Rtmp => &self.rtmp,
            // MPEG-TS readers start with `Stream::ts_preamble`.
            framing::Framing::TsRaw | framing::Framing::TsChunked => &EMPTY,
        }
    }
}

impl Stream {
    pub fn key(&self) -> String {
        format!("{}/{}", self.app, self.name)
    }

    /// The reader count of `framing` (HTTP-FLV in either HTTP framing, RTMP, HTTP-TS).
    pub fn readers(&self, framing: framing::Framing) -> &AtomicU32 {
        match framing {
            framing::Framing::Raw | framing::Framing::HttpChunked => &self.stats.readers_flv,
            framing::Framing::Rtmp => &self.stats.readers_rtmp,
            framing::Framing::TsRaw | framing::Framing::TsChunked => &self.stats.readers_ts,
        }
    }

    /// What a joining MPEG-TS reader is sent before its first entry: nothing for a stream with
    /// video (its keyframe entries start with PAT and PMT), the program tables otherwise.
    pub fn ts_preamble(&self, framing: framing::Framing) -> Bytes {
        if self.headers.load().has_video {
            return Bytes::new();
        }
        self.ts_psi.load().parts(framing)[0].clone()
    }

    /// A player asked for the stream's HLS at `unix_ms`: keep (or start) segmenting.
    pub fn want_hls(&self, unix_ms: u64) {
        self.hls_wanted_ms.fetch_max(unix_ms, Ordering::Relaxed);
    }

    /// Whether live HLS is on for this stream.
    pub fn hls_enabled(&self) -> bool {
        self.hls_settings.is_some()
    }

    /// Close the open segment and mark the playlist ended (the stream is over); returns the
    /// final snapshot, if the stream was being segmented.
    fn end_hls(&self) -> Option<Arc<HlsSnapshot>> {
        let mut guard = self.ts.lock().unwrap_or_else(|p| p.into_inner());
        let ts = &mut *guard;
        let segmenter = ts.segmenter.as_mut()?;
        segmenter.end(unix_ms());
        let snapshot = segmenter.snapshot();
        self.hls.store(Some(snapshot.clone()));
        if self.record
            && let Some(settings) = &self.hls_settings
        {
            record_new_segments(self, settings, &snapshot, &mut ts.recorded);
            if let Some(recorder) = &settings.recorder {
                let end = RecordEvent::End {
                    key: self.key(),
                    started_unix_ms: self.started_unix_ms,
                };
                if recorder.try_send(end).is_err() {
                    self.stats.record_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Some(snapshot)
    }

    fn new_ts_psi() -> ArcSwap<framing::Framed> {
        ArcSwap::from_pointee(framing::frame_ts(vec![0; framing::HEADROOM]))
    }

    /// Latest ingest-side dts, for media-time lag.
    pub fn head_dts_ms(&self) -> u64 {
        self.flv.newest().map(|e| e.dts_ms).unwrap_or(0)
    }

    /// What a reader starting at the keyframe `gop_seq` (dts `dts_ms`) is sent first: FLV
    /// header, onMetaData and sequence headers (as FLV tags, or as RTMP messages). Built once
    /// per (headers, GOP) and shared, so a joining reader neither formats nor copies it; its
    /// size is capped by `live.header_bytes_max` per header.
    pub fn preamble(&self, gop_seq: u64, dts_ms: u64) -> ReaderPreamble {
        let headers = self.headers.load_full();
        if let Some(cached) = &*self.preamble.load()
            && cached.gop_seq == gop_seq
            && Arc::ptr_eq(&cached.headers, &headers)
        {
            return ReaderPreamble {
                flv: cached.flv.clone(),
                rtmp: cached.rtmp.clone(),
            };
        }
        let mut out = Vec::with_capacity(256);
        headers.write_flv(dts_ms, &mut out);
        let flv = framing::frame_copy(&out);
        out.clear();
        headers.write_rtmp(dts_ms, &mut out);
        let rtmp = Bytes::from(out);
        // Two workers may build the same preamble at once; both results are identical.
        self.preamble.store(Some(Arc::new(Preamble {
            headers,
            gop_seq,
            flv: flv.clone(),
            rtmp: rtmp.clone(),
        })));
        ReaderPreamble { flv, rtmp }
    }
}

/// The publisher side of a stream: timestamp rebasing and serialisation into the ring.
pub struct Publisher {
    pub stream: Arc<Stream>,
    /// Added to every unwrapped input dts (rebasing after jumps and republishes).
    offset_ms: i64,
    /// The last input dts as received (32-bit) and unwrapped onto 64 bits: an encoder's clock
    /// that wraps at 2^32 ms (49.7 days) continues instead of jumping back.
    last_in: Option<(u32, i64)>,
    /// Last output dts per track (video, audio, script) and overall.
    last_out: [Option<i64>; 3],
    last_out_any: Option<i64>,
    gap_max_ms: i64,
    /// The next unit continues a previous publisher's timeline (republish) at this time.
    continue_at: Option<i64>,
    /// Largest sequence header or metadata body accepted (`live.header_bytes_max`).
    header_bytes_max: usize,
    last_video_dts_ms: Option<u64>,
    /// Ingest QoS over `live.qos_window_ms`, published to `Stream::qos` once a second.
    qos: IngestQos,
    /// The arrival clock of the QoS figures (monotonic) and when they were last published.
    clock: std::time::Instant,
    /// None until the first frame's figures are published.
    qos_published_ms: Option<u64>,
}

impl Drop for Publisher {
    /// The last figures of a publish stay readable after it (a burst that arrived within a
    /// second would otherwise never show).
    fn drop(&mut self) {
        self.publish_qos(self.clock.elapsed().as_millis() as u64);
    }
}

/// Why a publish ended with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishError {
    GopTooLarge,
    /// A sequence header or onMetaData larger than `live.header_bytes_max`.
    HeaderTooLarge,
}

impl Publisher {
    fn track(kind: UnitKind) -> usize {
        match kind {
            UnitKind::Video => 0,
            UnitKind::Audio => 1,
            UnitKind::Script => 2,
        }
    }

    /// How far behind the newest dts of any track a unit may be before it counts as a jump
    /// back: audio and video are interleaved by muxers with up to a few hundred ms between
    /// tracks, and a real restart of the encoder's clock goes back by far more.
    const INTERLEAVE_SLACK_MS: i64 = 1000;

    /// The input dts on 64 bits: the value nearest the previous input, so a 32-bit wrap (and
    /// small interleave jitter across it) continues the timeline.
    fn unwrap_input(&mut self, dts_ms: u32) -> i64 {
        let unwrapped = match self.last_in {
            Some((raw, previous)) => previous + i64::from(dts_ms.wrapping_sub(raw) as i32),
            None => i64::from(dts_ms),
        };
        self.last_in = Some((dts_ms, unwrapped));
        unwrapped
    }

    /// Rebase `dts_ms` so that output timestamps never go backwards and never jump by more
    /// than `timestamp_gap_max_ms`; returns the output dts on the stream's 64-bit timeline.
    fn rebase(&mut self, kind: UnitKind, dts_ms: u32) -> u64 {
        let track = Self::track(kind);
        let mut out = self.unwrap_input(dts_ms) + self.offset_ms;
        match self.last_out_any {
            None => {
                if out < 0 {
                    self.offset_ms -= out;
                    out = 0;
                }
            }
            Some(last_any) => {
                // A discontinuity on any track (a backwards jump past the interleave slack, or
                // a forward gap past the limit) moves the whole timeline so A/V stay in sync.
                let continue_at = self.continue_at.take();
                if continue_at.is_some()
                    || out < last_any - Self::INTERLEAVE_SLACK_MS
                    || out > last_any + self.gap_max_ms
                {
                    let target = continue_at.unwrap_or(last_any + 1);
                    self.offset_ms += target - out;
                    out = target;
                    self.stream
                        .stats
                        .timestamp_corrections
                        .fetch_add(1, Ordering::Relaxed);
                }
                // Within a track dts must not go backwards (small interleave jitter is clamped).
                if let Some(last) = self.last_out[track]
                    && out < last
                {
                    out = last;
                    self.stream
                        .stats
                        .timestamp_corrections
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let out = out.max(0);
        self.last_out[track] = Some(out);
        self.last_out_any = Some(self.last_out_any.map_or(out, |l| l.max(out)));
        out as u64
    }

    /// A republish continues the timeline of the previous publisher, whose newest dts was
    /// `last_dts_ms`: the first unit of the new publish is placed at `continue_at_ms`, after
    /// everything the old stream presented (see [`Registry::publish`]).
    pub fn continue_after(&mut self, last_dts_ms: u64, continue_at_ms: u64) {
        let last = last_dts_ms as i64;
        self.last_out_any = Some(last);
        self.last_out = [Some(last); 3];
        self.offset_ms = 0;
        self.continue_at = Some((continue_at_ms as i64).max(last + 1));
    }

    /// Publish one unit: update headers/stats and append its FLV tag to the ring.
    ///
    /// A unit from the FLV demuxer carries the tag it arrived in ([`MediaUnit::flv_tag`]): that
    /// buffer becomes the ring entry with only its 11-byte header rewritten, so the payload is
    /// not copied here (see [`flv_entry`]). `unit.body` is left holding the same bytes (for a
    /// demuxed unit, the body slice of the entry), so the caller can still read it.
    pub fn publish(&mut self, unit: &mut MediaUnit) -> Result<(), PublishError> {
        // Script data (onMetaData) is not on the media timeline (encoders stamp it 0 at any
        // time), so it never moves the rebasing.
        if (unit.kind == UnitKind::Script || unit.config) && unit.body.len() > self.header_bytes_max
        {
            // Every new reader is sent these: a publisher may not make them arbitrarily large.
            return Err(PublishError::HeaderTooLarge);
        }
        let dts_ms = if unit.kind == UnitKind::Script {
            0
        } else {
            self.rebase(unit.kind, unit.dts_ms)
        };
        if unit.kind != UnitKind::Script && !unit.config {
            self.observe_qos(unit, dts_ms);
        }
        let stream = &self.stream;
        let mut entry = None;
        stream
            .stats
            .bytes_in
            .fetch_add(unit.body.len() as u64, Ordering::Relaxed);
        match unit.kind {
            UnitKind::Script => {
                let body = flv::strip_set_data_frame(unit.body.clone());
                if let Some(meta) = flv::parse_on_metadata(&body) {
                    let mut info = stream.info.lock().unwrap_or_else(|p| p.into_inner());
                    info.on_metadata(&meta);
                    drop(info);
                    let mut headers = (**stream.headers.load()).clone();
                    headers.metadata = Some(body);
                    stream.headers.store(Arc::new(headers));
                }
                // Script data is delivered to new readers through the headers only.
                return Ok(());
            }
            UnitKind::Video | UnitKind::Audio if unit.config => {
                // A new sequence header: new readers get it in their preamble, current readers
                // get it in-stream (it is appended below like any tag). The entry is made
                // first: it needs the unit's tag buffer to itself, and the headers then share
                // its body.
                entry = Some(flv_entry(unit, dts_ms));
                self.qos.on_config(unit.kind == UnitKind::Video, &unit.body);
                let mut headers = (**stream.headers.load()).clone();
                let mut info = stream.info.lock().unwrap_or_else(|p| p.into_inner());
                if unit.kind == UnitKind::Video {
                    headers.has_video = true;
                    headers.video_config = Some(unit.body.clone());
                    info.video_codec = Some(unit.codec);
                    info.on_video_config(
                        unit.codec,
                        unit.body.get(unit.payload_offset..).unwrap_or_default(),
                    );
                } else {
                    headers.has_audio = true;
                    headers.audio_config = Some(unit.body.clone());
                    info.audio_codec = Some(unit.codec);
                }
                drop(info);
                stream.headers.store(Arc::new(headers));
            }
            UnitKind::Video => {
                stream.stats.video_frames.fetch_add(1, Ordering::Relaxed);
                if let Some(last_video) = self.last_video_dts_ms
                    && dts_ms > last_video
                    && dts_ms - last_video <= 1000
                {
                    stream
                        .stats
                        .frame_interval_ms
                        .store(dts_ms - last_video, Ordering::Relaxed);
                }
                self.last_video_dts_ms = Some(dts_ms);
                if unit.keyframe {
                    stream.stats.keyframes.fetch_add(1, Ordering::Relaxed);
                    let previous = stream
                        .stats
                        .last_keyframe_dts_ms
                        .swap(dts_ms, Ordering::Relaxed);
                    if previous > 0 && dts_ms > previous {
                        stream
                            .stats
                            .gop_interval_ms
                            .store(dts_ms - previous, Ordering::Relaxed);
                    }
                }
            }
            UnitKind::Audio => {
                stream.stats.audio_frames.fetch_add(1, Ordering::Relaxed);
            }
        }
        // The newest dts over all tracks: a republish continues after it.
        stream
            .stats
            .last_dts_ms
            .fetch_max(dts_ms, Ordering::Relaxed);
        if !unit.config {
            let pts_ms = (dts_ms as i64 + i64::from(unit.cts_ms)).max(0) as u64;
            stream
                .stats
                .last_pts_ms
                .fetch_max(pts_ms, Ordering::Relaxed);
        }
        let framed = match entry {
            Some(framed) => framed,
            None => flv_entry(unit, dts_ms),
        };
        // Only video keyframes start a GOP; audio-only streams start anywhere (every entry).
        let keyframe = (unit.kind == UnitKind::Video && unit.keyframe && !unit.config)
            || (unit.kind == UnitKind::Audio && !unit.config && !stream.headers.load().has_video);
        let seq = stream
            .flv
            .append_framed(keyframe, dts_ms, framed)
            .map_err(|e| match e {
                AppendError::GopTooLarge => PublishError::GopTooLarge,
            })?;
        self.produce_ts(seq, unit, dts_ms);
        Ok(())
    }

    /// Count a media frame in the ingest QoS, and publish the figures once a second.
    fn observe_qos(&mut self, unit: &MediaUnit, dts_ms: u64) {
        let now_ms = self.clock.elapsed().as_millis() as u64;
        let video = unit.kind == UnitKind::Video;
        self.qos.on_frame(
            now_ms,
            dts_ms,
            unit.body.len(),
            video,
            video && unit.keyframe,
        );
        if self.qos_published_ms.is_none_or(|at| now_ms >= at + 1000) {
            self.publish_qos(now_ms);
        }
    }

    fn publish_qos(&mut self, now_ms: u64) {
        self.qos_published_ms = Some(now_ms);
        let snapshot = self.qos.snapshot(now_ms);
        *self.stream.qos.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }

    /// Mux the entry just appended (`seq`, from `unit` at `dts_ms`) into MPEG-TS while some
    /// reader wants it (an HTTP-TS reader, or HLS players), and cut HLS segments from it.
    /// When the first one arrives, a new muxer is primed with the stream's sequence headers
    /// and catches up on the current GOP (from the entries' FLV tags), so the reader starts at
    /// the latest keyframe at once, as an FLV reader does, and a new segmenter starts there
    /// too; when the last one leaves, the muxer is dropped and entries carry FLV only.
    fn produce_ts(&mut self, seq: u64, unit: &MediaUnit, dts_ms: u64) {
        let stream = &self.stream;
        let now = unix_ms();
        let hls = stream.hls_settings.as_deref().filter(|settings| {
            stream.record
                || now.saturating_sub(stream.hls_wanted_ms.load(Ordering::Relaxed))
                    < settings.idle_ms
        });
        let wanted = hls.is_some() || stream.stats.readers_ts.load(Ordering::Relaxed) > 0;
        let mut guard = stream.ts.lock().unwrap_or_else(|p| p.into_inner());
        let ts = &mut *guard;
        if hls.is_none() && ts.segmenter.take().is_some() {
            stream.hls.store(None);
        }
        if !wanted {
            ts.muxer = None;
            return;
        }
        let ring = &stream.flv;
        let gop = ring.gop_start().map(|start| start.max(ring.tail())..seq);
        let new_muxer = ts.muxer.is_none();
        let muxer = ts.muxer.get_or_insert_with(|| {
            let mut muxer = TsMuxer::new();
            let headers = stream.headers.load();
            let mut scratch = Vec::new();
            for (tag_type, body) in [(9, &headers.video_config), (8, &headers.audio_config)] {
                if let Some(body) = body
                    && let Ok(config) = flv::classify_tag(tag_type, 0, body.clone())
                {
                    muxer.write_unit_at(&config, 0, &mut scratch);
                }
            }
            for s in gop.clone().unwrap_or_default() {
                let Some(entry) = ring.get(s) else { continue };
                if entry.ts.get().is_some() {
                    continue;
                }
                if let Some(past) = flv_tag_unit(entry.bytes()) {
                    let mut out = vec![0; framing::HEADROOM];
                    muxer.write_unit_at(&past, entry.dts_ms, &mut out);
                    ring.set_ts(&entry, framing::frame_ts(out));
                }
            }
            muxer
        });
        let mut out = vec![0; framing::HEADROOM];
        muxer.write_unit_at(unit, dts_ms, &mut out);
        if unit.config || new_muxer {
            // What a joining reader of an audio-only stream gets first, and what an HLS
            // segment that does not start with its own PAT/PMT is given.
            let mut psi = vec![0; framing::HEADROOM];
            muxer.psi_snapshot(&mut psi);
            stream.ts_psi.store(Arc::new(framing::frame_ts(psi)));
        }
        let Some(entry) = ring.get(seq) else { return };
        ring.set_ts(&entry, framing::frame_ts(out));
        let Some(settings) = hls else { return };
        let psi = stream.ts_psi.load();
        let mut changed = false;
        let segmenter = match &mut ts.segmenter {
            Some(segmenter) => segmenter,
            None => {
                // A new segmenter starts at the current GOP (the entries before this one
                // carry TS now), its names unique in the stream's life.
                ts.segmenters += 1;
                let mut params = settings.params.clone();
                params.name_prefix = format!(
                    "{}{}{}-",
                    base36(stream.started_unix_ms),
                    base36(u64::from(stream.id)),
                    base36(u64::from(ts.segmenters))
                );
                let segmenter = ts
                    .segmenter
                    .insert(Segmenter::new(params).count_memory_in(stream.hls_memory.clone()));
                for s in gop.unwrap_or_default() {
                    if let Some(past) = ring.get(s)
                        && let Some(bytes) = past.ts.get()
                    {
                        // Its wall clock: now, less the media time since.
                        let wall = now.saturating_sub(dts_ms.saturating_sub(past.dts_ms));
                        changed |=
                            segmenter.push(&bytes.raw, past.dts_ms, past.keyframe, &psi.raw, wall);
                    }
                }
                segmenter
            }
        };
        if let Some(bytes) = entry.ts.get() {
            changed |= segmenter.push(&bytes.raw, dts_ms, entry.keyframe, &psi.raw, now);
        }
        if changed {
            let snapshot = segmenter.snapshot();
            if stream.record {
                record_new_segments(stream, settings, &snapshot, &mut ts.recorded);
            }
            stream.hls.store(Some(snapshot));
        }
    }
}

/// Hand the segments of `snapshot` newer than `recorded` to the recorder.
fn record_new_segments(
    stream: &Stream,
    settings: &HlsSettings,
    snapshot: &HlsSnapshot,
    recorded: &mut Option<String>,
) {
    let Some(recorder) = &settings.recorder else {
        return;
    };
    let start = match recorded {
        Some(name) => snapshot
            .segments
            .iter()
            .position(|s| &s.name == name)
            .map_or(0, |i| i + 1),
        None => 0,
    };
    for segment in &snapshot.segments[start..] {
        let event = RecordEvent::Segment {
            key: stream.key(),
            started_unix_ms: stream.started_unix_ms,
            name: segment.name.clone(),
            bytes: segment.bytes.clone(),
            duration_ms: segment.duration_ms,
            discontinuity: segment.discontinuity,
        };
        if recorder.try_send(event).is_err() {
            stream.stats.record_dropped.fetch_add(1, Ordering::Relaxed);
        }
        *recorded = Some(segment.name.clone());
    }
}

/// Milliseconds since the Unix epoch (wall clock, for HLS program dates and names).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `n` in base 36 (short, URL-safe segment name parts).
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The unit an FLV tag of the ring (header, body, PreviousTagSize) carries, for re-muxing.
fn flv_tag_unit(tag: &Bytes) -> Option<MediaUnit> {
    let header = tag.get(..flv::TAG_HEADER_LEN)?;
    let body_len =
        usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
    let timestamp = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
    let end = flv::TAG_HEADER_LEN.checked_add(body_len)?;
    if end > tag.len() {
        return None;
    }
    flv::classify_tag(
        header[0] & 0x1f,
        timestamp,
        tag.slice(flv::TAG_HEADER_LEN..end),
    )
    .ok()
}

/// The FLV tag of `unit` timestamped `dts_ms` (its low 32 bits), framed for every output
/// (`framing`), as a ring entry.
///
/// When the unit carries the buffer its tag was received in (`flv_tag`, from an FLV demuxer
/// set up with the framing room, `FlvDemuxer::with_room`) and nothing else holds that buffer,
/// its 11-byte header is rewritten in place (type, size, timestamp and extension byte, stream
/// id 0; the body and the PreviousTagSize are already right), the framings are written into
/// the room around it, and the buffer becomes the entry: no byte of the payload is copied.
/// Otherwise the tag is serialised into a new buffer with that room: one copy. Both give the
/// bytes of [`flv::write_tag`]. Afterwards `unit.body` is the body slice of the entry (fast
/// path) or unchanged (copy).
fn flv_entry(unit: &mut MediaUnit, dts_ms: u64) -> framing::Framed {
    use flv::TAG_HEADER_LEN;
    let body_len = unit.body.len();
    let tag_len = flv::tag_len(body_len);
    let header = flv::tag_header(flv::tag_type(unit.kind), dts_ms as u32, body_len);
    let tag_range = framing::HEADROOM..framing::HEADROOM + tag_len;
    // Trust the buffer only if `body` really is its tag's body: same memory, at the offset the
    // room and the header put it.
    let in_place = unit.flv_tag.as_ref().is_some_and(|buf| {
        buf.len() == framing::HEADROOM + tag_len + framing::TAILROOM
            && buf
                .as_ptr()
                .wrapping_add(framing::HEADROOM + TAG_HEADER_LEN)
                == unit.body.as_ptr()
    });
    if in_place && let Some(buf) = unit.flv_tag.take() {
        // Give up the unit's reference to the body so the buffer has a single owner.
        unit.body = Bytes::new();
        match buf.try_into_mut() {
            Ok(mut buf) => {
                buf[tag_range.start..tag_range.start + TAG_HEADER_LEN].copy_from_slice(&header);
                let framed = framing::frame(buf, tag_range);
                unit.body = framed.raw.slice(TAG_HEADER_LEN..TAG_HEADER_LEN + body_len);
                return framed;
            }
            Err(shared) => {
                // Someone else holds the buffer too (a clone of the unit): it must not
                // change under them. Put the unit back as it was and copy.
                let body_start = framing::HEADROOM + TAG_HEADER_LEN;
                unit.body = shared.slice(body_start..body_start + body_len);
                unit.flv_tag = Some(shared);
            }
        }
    }
    let mut buf = BytesMut::with_capacity(framing::HEADROOM + tag_len + framing::TAILROOM);
    buf.resize(framing::HEADROOM, 0);
    buf.extend_from_slice(&header);
    buf.extend_from_slice(&unit.body);
    buf.extend_from_slice(&((TAG_HEADER_LEN + body_len) as u32).to_be_bytes());
    buf.resize(framing::HEADROOM + tag_len + framing::TAILROOM, 0);
    framing::frame(buf, tag_range)
}

/// Why a publish or play request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryError {
    /// Someone is publishing this stream already (HTTP 409).
    AlreadyPublishing,
    /// `live.streams_max` reached (HTTP 503).
    TooManyStreams,
    /// The live memory budget (`live.memory_max`) has no room for another stream (HTTP 503).
    MemoryBudget,
    /// No such stream (HTTP 404).
    NotFound,
}

/// All live streams. The lock is taken on publish, attach and API calls, never per tag.
pub struct Registry {
    /// `[live]`; replaced on a reload (SIGHUP), read by each publish and sweep.
    config: ArcSwap<LiveConfig>,
    inner: Mutex<RegistryInner>,
    /// Bytes retained by every stream's rings (shared with the rings, which keep it exact)
    /// and by the HLS segments held in memory (counted by their bytes' owner while held).
    live_bytes: Arc<AtomicUsize>,
    /// `live.memory_max`, resolved (0 in the config = a quarter of physical memory).
    memory_max: AtomicU64,
    /// Live HLS settings (None: HLS off).
    hls: Option<Arc<HlsSettings>>,
}

struct RegistryInner {
    streams: HashMap<String, Arc<Stream>>,
    /// Final HLS snapshots (EXT-X-ENDLIST) of streams that ended, and when (server ms).
    hls_ended: HashMap<String, (Arc<HlsSnapshot>, u64)>,
    next_id: u32,
}

impl Registry {
    pub fn new(config: LiveConfig) -> Registry {
        Registry {
            memory_max: AtomicU64::new(config.memory_max_bytes()),
            config: ArcSwap::from_pointee(config),
            inner: Mutex::new(RegistryInner {
                streams: HashMap::new(),
                hls_ended: HashMap::new(),
                next_id: 1,
            }),
            live_bytes: Arc::new(AtomicUsize::new(0)),
            hls: None,
        }
    }

    /// Apply a reloaded `[live]` (SIGHUP): limits, ring sizes, grace and the memory budget
    /// hold for streams published and admitted from now on; live streams keep their rings.
    pub fn reconfigure(&self, config: LiveConfig) {
        self.memory_max
            .store(config.memory_max_bytes(), Ordering::Relaxed);
        self.config.store(Arc::new(config));
    }

    /// Make live HLS for every stream published from now on.
    pub fn with_hls(mut self, settings: HlsSettings) -> Registry {
        self.hls = Some(Arc::new(settings));
        self
    }

    /// The HLS of `app/name`: the live stream's latest snapshot (None while it is not
    /// segmenting yet), or the final one of a stream that ended within `hls.ended_keep_ms`.
    pub fn hls(&self, app: &str, name: &str) -> Option<Arc<HlsSnapshot>> {
        self.hls_lookup(app, name).1
    }

    /// The live stream `app/name` (if any) and its HLS as [`Registry::hls`] finds it, under
    /// one lock.
    pub fn hls_lookup(
        &self,
        app: &str,
        name: &str,
    ) -> (Option<Arc<Stream>>, Option<Arc<HlsSnapshot>>) {
        let key = format!("{app}/{name}");
        let inner = self.lock();
        if let Some(stream) = inner.streams.get(&key) {
            return (Some(stream.clone()), stream.hls.load_full());
        }
        let ended = inner
            .hls_ended
            .get(&key)
            .map(|(snapshot, _)| snapshot.clone());
        (None, ended)
    }

    /// Bytes the live rings retain now (their FLV and TS entries) plus the HLS segments held
    /// in memory, and the budget they are admitted against.
    pub fn memory(&self) -> (u64, u64) {
        (
            self.live_bytes.load(Ordering::Relaxed) as u64,
            self.memory_max.load(Ordering::Relaxed),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start publishing `app/name`. A stream still in its grace period is taken over, so its
    /// readers continue with the new publisher.
    pub fn publish(&self, app: &str, name: &str, now_ms: u64) -> Result<Publisher, RegistryError> {
        let key = format!("{app}/{name}");
        let mut inner = self.lock();
        let existing = inner.streams.get(&key).cloned();
        let (stream, previous_last) = match existing {
            Some(stream) if !stream.ended.load(Ordering::Acquire) => {
                if stream.publishing.swap(true, Ordering::AcqRel) {
                    return Err(RegistryError::AlreadyPublishing);
                }
                let has_media = stream_has_media(&stream);
                // HLS players see the seam as a discontinuity.
                if let Some(segmenter) = stream
                    .ts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .segmenter
                    .as_mut()
                {
                    segmenter.discontinuity();
                }
                (stream, has_media)
            }
            _ => {
                if inner.streams.len() >= self.config.load().streams_max {
                    return Err(RegistryError::TooManyStreams);
                }
                // Admission: a new stream must fit in the budget at its soft ring size. Rings
                // of live streams are bounded each by `ring_bytes_hard_max`.
                let used = self.live_bytes.load(Ordering::Relaxed) as u64;
                if used + self.config.load().ring_bytes as u64
                    > self.memory_max.load(Ordering::Relaxed)
                {
                    return Err(RegistryError::MemoryBudget);
                }
                let id = inner.next_id;
                inner.next_id = inner.next_id.wrapping_add(1).max(1);
                let stream = Arc::new(Stream {
                    id,
                    app: app.to_string(),
                    name: name.to_string(),
                    flv: ChunkRing::new(
                        self.config.load().ring_entries,
                        self.config.load().ring_bytes,
                        self.config.load().ring_bytes_hard_max,
                        self.live_bytes.clone(),
                    ),
                    headers: ArcSwap::from_pointee(StreamHeaders::default()),
                    preamble: ArcSwapOption::empty(),
                    publishing: AtomicBool::new(true),
                    unpublished_at_ms: AtomicU64::new(0),
                    ended: AtomicBool::new(false),
                    started_at_ms: now_ms,
                    started_unix_ms: unix_ms(),
                    reader_workers: CachePadded::new(AtomicU64::new(0)),
                    wake_pending: CachePadded::new(AtomicU64::new(0)),
                    stats: StreamStats::default(),
                    qos: Mutex::new(QosSnapshot::default()),
                    reader_lag: Histogram::default(),
                    first_byte: Histogram::default(),
                    info: Mutex::new(StreamInfo::default()),
                    ts: Mutex::new(TsState::default()),
                    ts_psi: Stream::new_ts_psi(),
                    hls_settings: self.hls.clone(),
                    hls_wanted_ms: AtomicU64::new(0),
                    record: self.hls.as_ref().is_some_and(|h| {
                        h.recorder.is_some() && h.record_apps.iter().any(|a| a == app)
                    }),
                    hls: ArcSwapOption::empty(),
                    hls_memory: self.live_bytes.clone(),
                });
                // A new life of the name: the previous one's final playlist is gone.
                inner.hls_ended.remove(&key);
                inner.streams.insert(key, stream.clone());
                (stream, false)
            }
        };
        stream
            .info
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .publishes += 1;
        let mut publisher = Publisher {
            stream,
            offset_ms: 0,
            last_in: None,
            last_out: [None; 3],
            last_out_any: None,
            gap_max_ms: i64::from(self.config.load().timestamp_gap_max_ms),
            continue_at: None,
            header_bytes_max: self.config.load().header_bytes_max,
            last_video_dts_ms: None,
            qos: IngestQos::new(self.config.load().qos_window_ms),
            clock: std::time::Instant::now(),
            qos_published_ms: None,
        };
        {
            let headers = publisher.stream.headers.load();
            let changes = publisher
                .stream
                .qos
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sequence_header_changes;
            publisher.qos.continue_from(
                headers.video_config.clone(),
                headers.audio_config.clone(),
                changes,
            );
        }
        if previous_last {
            // Continue after everything the old publisher presented (its B-frames present
            // after its last dts) plus one frame, so players reading across the seam see
            // dts and pts keep increasing.
            let stats = &publisher.stream.stats;
            let last_dts = stats.last_dts_ms.load(Ordering::Relaxed);
            let last_pts = stats.last_pts_ms.load(Ordering::Relaxed);
            let frame = stats.frame_interval_ms.load(Ordering::Relaxed).max(1);
            publisher.continue_after(last_dts, last_dts.max(last_pts) + frame);
        }
        Ok(publisher)
    }

    /// The publisher is gone; readers wait `publisher_grace_ms` for a republish.
    pub fn unpublish(&self, stream: &Stream, now_ms: u64) {
        stream.unpublished_at_ms.store(now_ms, Ordering::Release);
        stream.publishing.store(false, Ordering::Release);
        if self.config.load().publisher_grace_ms == 0 {
            self.end(stream, now_ms);
        }
    }

    /// End the stream now, without waiting for the grace period (the admin API): its
    /// readers finish as when the grace period runs out, and the name is free at once.
    pub fn end_now(&self, stream: &Stream, now_ms: u64) {
        self.end(stream, now_ms);
    }

    fn end(&self, stream: &Stream, now_ms: u64) {
        // Outside the registry lock: the publisher's unit lock is taken in there.
        let last_hls = stream.end_hls();
        let mut inner = self.lock();
        stream.ended.store(true, Ordering::Release);
        let key = stream.key();
        if inner.streams.get(&key).is_some_and(|s| s.id == stream.id) {
            inner.streams.remove(&key);
            if let Some(snapshot) = last_hls {
                inner.hls_ended.insert(key, (snapshot, now_ms));
            }
        }
    }

    /// End every stream whose publisher has been gone longer than the grace period.
    /// Returns the streams ended (their readers' workers must be woken).
    pub fn sweep(&self, now_ms: u64) -> Vec<Arc<Stream>> {
        let grace = self.config.load().publisher_grace_ms;
        let expired: Vec<Arc<Stream>> = self
            .lock()
            .streams
            .values()
            .filter(|s| {
                !s.publishing.load(Ordering::Acquire)
                    && now_ms.saturating_sub(s.unpublished_at_ms.load(Ordering::Acquire)) >= grace
            })
            .cloned()
            .collect();
        for stream in &expired {
            self.end(stream, now_ms);
        }
        if let Some(settings) = &self.hls {
            let keep = settings.ended_keep_ms;
            self.lock()
                .hls_ended
                .retain(|_, (_, ended)| now_ms.saturating_sub(*ended) < keep);
        }
        expired
    }

    pub fn get(&self, app: &str, name: &str) -> Option<Arc<Stream>> {
        self.lock().streams.get(&format!("{app}/{name}")).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Stream>> {
        let mut all: Vec<_> = self.lock().streams.values().cloned().collect();
        all.sort_by_key(|s| s.key());
        all
    }
}

fn stream_has_media(stream: &Stream) -> bool {
    stream.flv.head() > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::unit::{Codec, MediaUnit};

    fn registry() -> Registry {
        Registry::new(LiveConfig {
            timestamp_gap_max_ms: 5_000,
            ..LiveConfig::default()
        })
    }

    fn unit(kind: UnitKind, dts_ms: u32, keyframe: bool) -> MediaUnit {
        let (codec, body) = match kind {
            UnitKind::Video => (Codec::H264, Bytes::from_static(&[0x17, 1, 0, 0, 0, 0xaa])),
            UnitKind::Audio => (Codec::Aac, Bytes::from_static(&[0xaf, 1, 0xbb])),
            UnitKind::Script => (Codec::None, Bytes::from_static(&[2, 0, 1, b'x'])),
        };
        MediaUnit {
            kind,
            codec,
            keyframe,
            config: false,
            dts_ms,
            cts_ms: 0,
            body,
            payload_offset: 0,
            flv_tag: None,
        }
    }

    /// The units of the 2 s H.264 + AAC fixture, as the FLV demuxer gives them.
    fn fixture_units() -> Vec<MediaUnit> {
        use crate::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits};
        let mut demuxer = FlvDemuxer::new(FlvLimits::default());
        demuxer.push(include_bytes!("../../tests/data/h264_aac_2s.flv"));
        let mut units = Vec::new();
        while let Ok(Some(event)) = demuxer.poll() {
            if let FlvEvent::Unit(unit) = event {
                units.push(unit);
            }
        }
        units
    }

    #[test]
    fn mpeg_ts_is_muxed_only_while_wanted_and_a_first_reader_gets_the_current_gop() {
        let registry = registry();
        let mut p = registry.publish("live", "ts", 0).expect("publish");
        let units = fixture_units();
        let keyframes: Vec<usize> = units
            .iter()
            .enumerate()
            .filter(|(_, u)| u.keyframe && !u.config)
            .map(|(i, _)| i)
            .collect();
        assert!(keyframes.len() >= 2, "the fixture has {keyframes:?}");
        // Nobody wants TS: entries carry FLV only.
        let half = keyframes[1] + 5;
        for unit in &units[..half] {
            p.publish(&mut unit.clone()).expect("publish");
        }
        let stream = p.stream.clone();
        let ring = &stream.flv;
        assert!(
            (ring.tail()..ring.head()).all(|s| ring.get(s).is_some_and(|e| e.ts.get().is_none()))
        );
        let flv_only = registry.memory().0;
        // A TS reader arrives: the next unit makes the muxer catch up on the current GOP.
        stream.stats.readers_ts.store(1, Ordering::Relaxed);
        p.publish(&mut units[half].clone()).expect("publish");
        let gop = ring.gop_start().expect("a keyframe");
        for seq in ring.tail()..ring.head() {
            let entry = ring.get(seq).expect("retained");
            assert_eq!(entry.ts.get().is_some(), seq >= gop, "entry {seq}");
        }
        let first = ring.get(gop).expect("gop start");
        let ts = &first.ts.get().expect("muxed").raw;
        assert_eq!(ts.len() % 188, 0);
        // PAT, then PMT, then the keyframe.
        assert_eq!((ts[0], ts[1] & 0x1f, ts[2]), (0x47, 0, 0));
        assert_eq!(&ts[188..191], &[0x47, 0x50, 0x00]);
        let chunked = &first.ts.get().expect("muxed").chunked;
        assert!(
            first.ts.get().expect("muxed").rtmp_head.is_empty(),
            "TS has no RTMP pieces"
        );
        assert!(chunked.starts_with(format!("{:x}\r\n", ts.len()).as_bytes()));
        assert!(
            registry.memory().0 > flv_only,
            "TS bytes count in the budget"
        );
        // The last reader leaves: muxing stops with the next unit.
        stream.stats.readers_ts.store(0, Ordering::Relaxed);
        p.publish(&mut units[half + 1].clone()).expect("publish");
        let newest = ring.get(ring.head() - 1).expect("newest");
        assert!(newest.ts.get().is_none());
    }

    #[test]
    fn hls_segments_count_in_the_live_memory_until_the_final_snapshot_is_swept() {
        let keep_ms = 1_000;
        let registry = registry().with_hls(HlsSettings {
            params: HlsParams {
                segment_target_ms: 500,
                window_segments: 2,
                retain_segments: 0,
                segment_bytes_max: 1 << 20,
                name_prefix: String::new(),
            },
            idle_ms: 60_000,
            ended_keep_ms: keep_ms,
            record_apps: Vec::new(),
            recorder: None,
        });
        let mut p = registry.publish("live", "h", 0).expect("publish");
        p.stream.want_hls(unix_ms());
        for unit in fixture_units() {
            p.publish(&mut unit.clone()).expect("publish");
        }
        let stream = p.stream.clone();
        let ring = &stream.flv;
        let ts_bytes = |ring: &ChunkRing| -> usize {
            (ring.tail()..ring.head())
                .filter_map(|s| ring.get(s))
                .map(|e| e.ts.get().map_or(0, |ts| ts.raw.len()))
                .sum()
        };
        let held = |snapshot: &HlsSnapshot| -> usize {
            snapshot.segments.iter().map(|s| s.bytes.len()).sum()
        };
        let (live, snapshot) = registry.hls_lookup("live", "h");
        assert!(
            live.is_some_and(|s| s.id == stream.id),
            "one lookup finds both"
        );
        let snapshot = snapshot.expect("segmenting");
        assert!(snapshot.has_segments());
        assert!(held(&snapshot) > 0);
        assert_eq!(
            registry.memory().0 as usize,
            ring.retained_bytes() + ts_bytes(ring) + held(&snapshot),
            "ring, TS and the segments held"
        );
        drop(snapshot);
        // The end: the ring goes with the stream; the final snapshot (its open segment
        // completed) stays for `hls.ended_keep_ms`, and counts until it is dropped.
        registry.end_now(&stream, 10);
        drop(p);
        drop(stream);
        let last = registry.hls("live", "h").expect("the final playlist");
        assert!(last.ended);
        assert_eq!(registry.memory().0 as usize, held(&last));
        drop(last);
        registry.sweep(10 + keep_ms - 1);
        assert!(registry.memory().0 > 0, "kept until ended_keep_ms passes");
        registry.sweep(10 + keep_ms);
        assert!(registry.hls("live", "h").is_none());
        assert_eq!(registry.memory().0, 0, "everything given back");
    }

    fn published(p: &Publisher) -> Vec<u64> {
        (p.stream.flv.tail()..p.stream.flv.head())
            .filter_map(|s| p.stream.flv.get(s))
            .map(|e| e.dts_ms)
            .collect()
    }

    #[test]
    fn jumps_back_and_gaps_are_rebased_and_counted() {
        let reg = registry();
        let mut p = reg.publish("a", "b", 0).unwrap();
        for (kind, dts) in [
            (UnitKind::Video, 1000),
            (UnitKind::Audio, 990), // interleave jitter: clamped per track only if needed
            (UnitKind::Video, 1040),
            (UnitKind::Video, 10), // encoder clock restarted: jump back
            (UnitKind::Video, 50),
            (UnitKind::Video, 60_050), // a one-minute gap
            (UnitKind::Video, 60_090),
            (UnitKind::Script, 0), // script data does not move the timeline
            (UnitKind::Video, 60_130),
        ] {
            p.publish(&mut unit(kind, dts, kind == UnitKind::Video))
                .unwrap();
        }
        let dts = published(&p);
        // 990 is audio: another track, inside the interleave slack, left alone.
        assert_eq!(dts, vec![1000, 990, 1040, 1041, 1081, 1082, 1122, 1162]);
        assert_eq!(
            p.stream.stats.timestamp_corrections.load(Ordering::Relaxed),
            2
        );
    }

    #[test]
    fn republish_continues_after_the_newest_dts_and_second_publisher_is_refused() {
        let reg = registry();
        let mut p = reg.publish("a", "b", 0).unwrap();
        assert!(matches!(
            reg.publish("a", "b", 0),
            Err(RegistryError::AlreadyPublishing)
        ));
        p.publish(&mut unit(UnitKind::Video, 0, true)).unwrap();
        p.publish(&mut unit(UnitKind::Audio, 500, false)).unwrap();
        p.publish(&mut unit(UnitKind::Video, 400, false)).unwrap();
        reg.unpublish(&p.stream, 10);
        let mut again = reg.publish("a", "b", 20).unwrap();
        assert!(
            Arc::ptr_eq(&p.stream, &again.stream),
            "same stream, same readers"
        );
        again.publish(&mut unit(UnitKind::Video, 0, true)).unwrap();
        again
            .publish(&mut unit(UnitKind::Audio, 20, false))
            .unwrap();
        let dts = published(&again);
        assert!(dts.windows(2).skip(2).all(|w| w[0] <= w[1]), "{dts:?}");
        // After the newest dts/pts (500) plus one video frame interval (400 here).
        assert_eq!(&dts[3..], &[900, 920]);
    }

    #[test]
    fn republish_continues_after_the_largest_pts_of_b_frames_plus_a_frame() {
        let reg = registry();
        let mut p = reg.publish("a", "b", 0).unwrap();
        // I P B B in decode order at 25 fps: the P frame presents last (pts 160).
        for (dts, cts, key) in [
            (0, 40, true),
            (40, 160, false),
            (80, 0, false),
            (120, 0, false),
        ] {
            let mut u = unit(UnitKind::Video, dts, key);
            u.cts_ms = cts;
            p.publish(&mut u).unwrap();
        }
        reg.unpublish(&p.stream, 10);
        let mut again = reg.publish("a", "b", 20).unwrap();
        let mut u = unit(UnitKind::Video, 5_000, true);
        u.cts_ms = 80;
        again.publish(&mut u).unwrap();
        let dts = published(&again);
        // max pts 200 (dts 40 + cts 160) plus one frame (40 ms): the new stream's first dts.
        assert_eq!(dts[4], 240, "{dts:?}");
    }

    #[test]
    fn a_wrapping_32_bit_input_clock_continues_on_64_bits_and_flv_carries_the_low_bits() {
        let reg = registry();
        let mut p = reg.publish("a", "b", 0).unwrap();
        let start = u32::MAX - 80;
        for (i, dts) in [start, start + 40, 15, 55, 95].into_iter().enumerate() {
            p.publish(&mut unit(UnitKind::Video, dts, i == 0)).unwrap();
        }
        let dts = published(&p);
        let base = u64::from(start);
        assert_eq!(
            dts,
            vec![base, base + 40, base + 96, base + 136, base + 176]
        );
        assert_eq!(
            p.stream.stats.timestamp_corrections.load(Ordering::Relaxed),
            0,
            "a wrap is not a discontinuity"
        );
        // The FLV tag of the third entry carries the wrapped 32-bit time (15 ms).
        let e = p.stream.flv.get(2).unwrap();
        let ts = u32::from_be_bytes([e.bytes()[7], e.bytes()[4], e.bytes()[5], e.bytes()[6]]);
        assert_eq!(ts, 15);
    }

    #[test]
    fn oversized_headers_are_refused() {
        let reg = Registry::new(LiveConfig {
            header_bytes_max: 64,
            ..LiveConfig::default()
        });
        let mut p = reg.publish("a", "b", 0).unwrap();
        let mut config = unit(UnitKind::Video, 0, true);
        config.config = true;
        config.body = Bytes::from(vec![0x17; 65]);
        assert_eq!(p.publish(&mut config), Err(PublishError::HeaderTooLarge));
        let mut script = unit(UnitKind::Script, 0, false);
        script.body = Bytes::from(vec![2; 65]);
        assert_eq!(p.publish(&mut script), Err(PublishError::HeaderTooLarge));
        config.body = Bytes::from(vec![0x17; 64]);
        assert_eq!(p.publish(&mut config), Ok(()));
    }

    #[test]
    fn the_memory_budget_refuses_new_streams_until_memory_is_freed() {
        let reg = Registry::new(LiveConfig {
            ring_bytes: 1000,
            ring_bytes_hard_max: 10_000,
            memory_max: 2500,
            publisher_grace_ms: 0,
            ..LiveConfig::default()
        });
        let mut p = reg.publish("a", "one", 0).unwrap();
        let mut u = unit(UnitKind::Video, 0, true);
        u.body = Bytes::from(vec![0x17; 1600]);
        p.publish(&mut u).unwrap();
        assert_eq!(reg.memory().0, 1600 + 15);
        assert!(matches!(
            reg.publish("a", "two", 0),
            Err(RegistryError::MemoryBudget)
        ));
        reg.unpublish(&p.stream, 1);
        drop(p);
        assert_eq!(reg.memory().0, 0, "an ended stream's ring is given back");
        assert!(reg.publish("a", "two", 2).is_ok());
    }

    #[test]
    fn grace_expiry_ends_the_stream() {
        let reg = Registry::new(LiveConfig {
            publisher_grace_ms: 100,
            ..LiveConfig::default()
        });
        let p = reg.publish("a", "b", 0).unwrap();
        reg.unpublish(&p.stream, 1_000);
        assert!(reg.sweep(1_050).is_empty());
        assert_eq!(reg.sweep(1_100).len(), 1);
        assert!(p.stream.ended.load(Ordering::Acquire));
        assert!(reg.get("a", "b").is_none());
        // A new publish makes a fresh stream.
        let q = reg.publish("a", "b", 2_000).unwrap();
        assert!(!Arc::ptr_eq(&p.stream, &q.stream));
    }

    // ---- FLV ingest to ring entries: bytes and copies ----

    /// Input time base: above 2^24 so the extended timestamp byte is exercised.
    const BASE_MS: u32 = 0x0123_4500;

    /// One input tag and what it must become: `(tag type, input timestamp, body, output dts
    /// or None if it is not a ring entry)`.
    type CaseTag = (u8, u32, Vec<u8>, Option<u64>);

    /// A multi-tag FLV as an encoder would send it, and its tags.
    fn ingest_case() -> (Vec<u8>, Vec<CaseTag>) {
        let base = u64::from(BASE_MS);
        let mut metadata = Vec::new();
        crate::proto::amf0::write_string(&mut metadata, "@setDataFrame");
        crate::proto::amf0::write_string(&mut metadata, "onMetaData");
        crate::proto::amf0::write_object(
            &mut metadata,
            &[("width", crate::proto::amf0::Amf0Value::Number(640.0))],
        );
        let mut big_frame = vec![0x27, 0x01, 0x00, 0x00, 0x00];
        big_frame.extend((0..300u32).map(|i| i as u8));
        let tags: Vec<CaseTag> = vec![
            (18, 0, metadata, None),
            // AVC sequence header and AAC AudioSpecificConfig.
            (
                9,
                BASE_MS,
                vec![0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64, 0x00, 0x1f],
                Some(base),
            ),
            (8, BASE_MS, vec![0xAF, 0x00, 0x12, 0x10], Some(base)),
            // Key frame with cts 80, audio, inter frame.
            (
                9,
                BASE_MS,
                vec![0x17, 0x01, 0x00, 0x00, 0x50, 0xAA, 0xBB],
                Some(base),
            ),
            (
                8,
                BASE_MS + 10,
                vec![0xAF, 0x01, 0x21, 0x22, 0x23],
                Some(base + 10),
            ),
            (
                9,
                BASE_MS + 40,
                vec![0x27, 0x01, 0x00, 0x00, 0x00, 0xCC],
                Some(base + 40),
            ),
            // A video command frame: skipped by the demuxer.
            (9, BASE_MS + 60, vec![0x57, 0x00], None),
            // The encoder's clock restarts: rebased one ms after the newest dts.
            (
                9,
                10,
                vec![0x27, 0x01, 0x00, 0x00, 0x00, 0xDD],
                Some(base + 41),
            ),
            (8, 20, vec![0xAF, 0x01, 0x31], Some(base + 51)),
            (9, 50, big_frame, Some(base + 81)),
        ];
        let mut input = Vec::new();
        flv::write_file_header(true, true, &mut input);
        for (i, (tag_type, ts, body, _)) in tags.iter().enumerate() {
            let at = input.len();
            flv::write_tag(*tag_type, *ts, body, &mut input);
            // A non-zero stream id, which the entries must not carry.
            input[at + 8..at + 11].copy_from_slice(&[0, 0, i as u8 + 1]);
        }
        (input, tags)
    }

    /// Demuxes `chunks` into a fresh stream; returns the publisher and, per published unit,
    /// where the demuxer put its body (address) and its length.
    fn ingest<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Publisher, Vec<(usize, usize)>) {
        let reg = Registry::new(LiveConfig {
            timestamp_gap_max_ms: 5_000,
            ring_entries: 16,
            ..LiveConfig::default()
        });
        let mut publisher = reg.publish("live", "cam", 0).unwrap();
        let mut demuxer = flv::FlvDemuxer::new(flv::FlvLimits::default())
            .with_room(framing::HEADROOM, framing::TAILROOM);
        let mut bodies = Vec::new();
        for chunk in chunks {
            demuxer.push(chunk);
            while let Some(event) = demuxer.poll().unwrap() {
                if let flv::FlvEvent::Unit(mut unit) = event {
                    let (at, len) = (unit.body.as_ptr() as usize, unit.body.len());
                    let content = unit.body.to_vec();
                    publisher.publish(&mut unit).unwrap();
                    assert_eq!(
                        unit.body, content,
                        "the unit's body is intact after publish"
                    );
                    if unit.kind != UnitKind::Script {
                        bodies.push((at, len));
                    }
                }
            }
        }
        demuxer.finish().unwrap();
        (publisher, bodies)
    }

    fn entries(p: &Publisher) -> Vec<Arc<super::super::ring::Entry>> {
        (p.stream.flv.tail()..p.stream.flv.head())
            .map(|s| p.stream.flv.get(s).unwrap())
            .collect()
    }

    /// The stream after ingesting `chunks` is exactly what the tags say, and each entry is the
    /// buffer the demuxer copied the body into (the payload's only copy).
    fn check_ingest(chunks: &[&[u8]], tags: &[CaseTag], what: &str) {
        let (publisher, bodies) = ingest(chunks.iter().copied());
        let entries = entries(&publisher);
        let expected: Vec<_> = tags
            .iter()
            .filter_map(|(t, _, body, dts)| dts.map(|dts| (*t, dts, body)))
            .collect();
        assert_eq!(entries.len(), expected.len(), "{what}");
        assert_eq!(bodies.len(), expected.len(), "{what}");
        for ((entry, (tag_type, dts, body)), (body_at, body_len)) in
            entries.iter().zip(&expected).zip(&bodies)
        {
            let mut tag = Vec::new();
            flv::write_tag(*tag_type, *dts as u32, body, &mut tag);
            assert!(*entry.bytes() == tag, "{what}: entry {} differs", entry.seq);
            assert_eq!(entry.dts_ms, *dts, "{what}");
            assert_eq!(
                entry.bytes().as_ptr() as usize + flv::TAG_HEADER_LEN,
                *body_at,
                "{what}: entry {} is not the demuxer's buffer (the payload was copied again)",
                entry.seq
            );
            assert_eq!(*body_len, body.len());
        }
        let keyframes: Vec<bool> = entries.iter().map(|e| e.keyframe).collect();
        assert_eq!(
            keyframes,
            [false, false, true, false, false, false, false, false],
            "{what}"
        );
        // What a new reader is sent first is unchanged too.
        let headers = publisher.stream.headers.load();
        assert_eq!(
            headers.video_config.as_deref(),
            Some(&tags[1].2[..]),
            "{what}"
        );
        assert_eq!(
            headers.audio_config.as_deref(),
            Some(&tags[2].2[..]),
            "{what}"
        );
        assert_eq!(
            headers.metadata.as_deref(),
            Some(&tags[0].2[16..]),
            "{what}"
        );
        let mut preamble = Vec::new();
        flv::write_file_header(true, true, &mut preamble);
        flv::write_tag(18, 0, &tags[0].2[16..], &mut preamble);
        flv::write_tag(9, BASE_MS + 40, &tags[1].2, &mut preamble);
        flv::write_tag(8, BASE_MS + 40, &tags[2].2, &mut preamble);
        let both = publisher.stream.preamble(2, u64::from(BASE_MS) + 40);
        assert_eq!(both.flv.raw, preamble, "{what}");
        // The RTMP preamble: the same three headers as messages (chunk header + tag body).
        let mut rtmp = Vec::new();
        for (msg_type, ts, body) in [
            (18u8, 0u32, &tags[0].2[16..]),
            (9, BASE_MS + 40, &tags[1].2[..]),
            (8, BASE_MS + 40, &tags[2].2[..]),
        ] {
            let message = framing::RtmpMessage {
                msg_type,
                timestamp_ms: ts,
                len: body.len() as u32,
            };
            framing::write_rtmp_message(&message, body, &mut rtmp);
        }
        assert_eq!(both.rtmp, rtmp, "{what}");
    }

    #[test]
    fn ingest_split_at_every_byte_boundary_gives_byte_identical_entries_copied_once() {
        let (input, tags) = ingest_case();
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            check_ingest(&[a, b], &tags, &format!("cut at {cut}"));
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        check_ingest(&bytes, &tags, "one byte at a time");
    }

    #[test]
    fn a_unit_whose_tag_buffer_is_shared_is_copied_and_left_unchanged() {
        let (input, _) = ingest_case();
        let mut demuxer = flv::FlvDemuxer::new(flv::FlvLimits::default())
            .with_room(framing::HEADROOM, framing::TAILROOM);
        demuxer.push(&input);
        let reg = registry();
        let mut p = reg.publish("live", "cam", 0).unwrap();
        while let Some(event) = demuxer.poll().unwrap() {
            if let flv::FlvEvent::Unit(mut unit) = event {
                let kept = unit.clone();
                let received = kept.flv_tag.clone().unwrap();
                let received_bytes = received.to_vec();
                p.publish(&mut unit).unwrap();
                assert_eq!(unit, kept);
                assert_eq!(received, received_bytes, "a shared buffer is never written");
                if unit.kind != UnitKind::Script {
                    let entry = p.stream.flv.newest().unwrap();
                    assert_ne!(
                        entry.bytes().as_ptr() as usize + flv::TAG_HEADER_LEN,
                        kept.body.as_ptr() as usize
                    );
                    assert_eq!(
                        &entry.bytes()[flv::TAG_HEADER_LEN..][..unit.body.len()],
                        &unit.body[..]
                    );
                }
            }
        }
    }

    #[test]
    fn units_without_a_tag_buffer_are_serialised_like_write_tag() {
        let reg = registry();
        let mut p = reg.publish("a", "b", 0).unwrap();
        let mut u = unit(UnitKind::Audio, 0x0102_0304, false);
        p.publish(&mut u).unwrap();
        let mut tag = Vec::new();
        flv::write_tag(8, 0x0102_0304, &u.body, &mut tag);
        assert_eq!(*p.stream.flv.newest().unwrap().bytes(), tag);
    }

    // ---- picture size: the SPS over onMetaData ----

    /// libx264 SPSs: 320x240 at 25 fps in the VUI (`tests/data/h264_aac_2s.flv`) and
    /// 1920x1080 (1088 coded) at 30 (see `proto::h26x::tests`).
    const AVC_SPS_320X240: &str = "674d400deca0a0fd80880000030008000003019078a14cb0";
    const AVC_SPS_1080: &str = "6742c028da01e0089f970110000003001000000303c0f1832a";

    fn video_config(codec: Codec, record: &[u8]) -> MediaUnit {
        let mut body = vec![0x17, 0, 0, 0, 0];
        body.extend_from_slice(record);
        MediaUnit {
            config: true,
            codec,
            body: Bytes::from(body),
            payload_offset: 5,
            ..unit(UnitKind::Video, 0, true)
        }
    }

    fn avc_config(sps_hex: &str) -> MediaUnit {
        let sps: Vec<u8> = (0..sps_hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&sps_hex[i..i + 2], 16).unwrap())
            .collect();
        video_config(Codec::H264, &crate::proto::h26x::fuzzing::avc_record(&sps))
    }

    fn metadata(width: f64, height: f64, framerate: Option<f64>) -> MediaUnit {
        use crate::proto::amf0::{Amf0Value, write_object, write_string};
        let mut body = Vec::new();
        write_string(&mut body, "onMetaData");
        let mut fields = vec![
            ("width", Amf0Value::Number(width)),
            ("height", Amf0Value::Number(height)),
        ];
        if let Some(rate) = framerate {
            fields.push(("framerate", Amf0Value::Number(rate)));
        }
        write_object(&mut body, &fields);
        MediaUnit {
            body: Bytes::from(body),
            ..unit(UnitKind::Script, 0, false)
        }
    }

    fn size(stream: &Stream) -> (Option<u32>, Option<u32>, Option<f64>) {
        let info = stream.info.lock().unwrap();
        (info.width, info.height, info.fps)
    }

    #[test]
    fn the_sps_size_wins_over_metadata_and_follows_new_sequence_headers() {
        let reg = Registry::new(LiveConfig::default());
        let mut p = reg.publish("a", "b", 0).unwrap();
        // Metadata alone: what it declares.
        p.publish(&mut metadata(640.0, 360.0, Some(30.0))).unwrap();
        assert_eq!(size(&p.stream), (Some(640), Some(360), Some(30.0)));
        // The sequence header's SPS says 1920x1080 (cropped from 1088): it wins for the
        // size; the declared rate stays.
        p.publish(&mut avc_config(AVC_SPS_1080)).unwrap();
        assert_eq!(size(&p.stream), (Some(1920), Some(1080), Some(30.0)));
        // Later metadata that lies does not move the size, its rate is taken.
        p.publish(&mut metadata(1280.0, 720.0, Some(60.0))).unwrap();
        assert_eq!(size(&p.stream), (Some(1920), Some(1080), Some(60.0)));
        // A resolution change: the new sequence header's size.
        p.publish(&mut avc_config(AVC_SPS_320X240)).unwrap();
        assert_eq!(size(&p.stream), (Some(320), Some(240), Some(60.0)));
        // A sequence header whose SPS is not read (another codec, or garbage): the declared
        // size again, not a stale SPS's.
        p.publish(&mut video_config(Codec::Av1, &[0x81, 0, 0, 0]))
            .unwrap();
        assert_eq!(size(&p.stream), (Some(1280), Some(720), Some(60.0)));
        p.publish(&mut video_config(
            Codec::H264,
            &[1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 2, 0x67],
        ))
        .unwrap();
        assert_eq!(size(&p.stream), (Some(1280), Some(720), Some(60.0)));
    }

    #[test]
    fn without_metadata_the_sps_gives_size_and_rate() {
        let reg = Registry::new(LiveConfig::default());
        let mut p = reg.publish("a", "b", 0).unwrap();
        assert_eq!(size(&p.stream), (None, None, None));
        p.publish(&mut avc_config(AVC_SPS_320X240)).unwrap();
        assert_eq!(size(&p.stream), (Some(320), Some(240), Some(25.0)));
        // The fixture (metadata and sequence header agree) through the FLV demuxer.
        let mut q = reg.publish("a", "fixture", 0).unwrap();
        for mut unit in fixture_units().into_iter().take(4) {
            q.publish(&mut unit).unwrap();
        }
        assert_eq!(size(&q.stream), (Some(320), Some(240), Some(25.0)));
    }
}
