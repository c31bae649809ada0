//! `uringcast-loadgen`: a live HTTP-FLV, RTMP, HTTP-TS and HLS load generator.
//!
//! What it measures: it opens `--readers` readers on one stream URL, ramping up at
//! `--ramp-per-s`, keeps them reading for `--duration-s` (total, ramp included), and walks
//! the media each one receives. The URL chooses the mode:
//! - `http://.../NAME.flv` (any `http://` path not ending as below): HTTP/1.1 GET readers of
//!   HTTP-FLV (FLV tags);
//! - `http://.../NAME.ts`: HTTP/1.1 GET readers of HTTP-TS: the TS walker (`ts.rs`) finds the
//!   video PID through PAT and PMT, and each video PES counts as a video tag: its DTS (else
//!   PTS; 90 kHz, unwrapped) as the tag's dts, its random_access_indicator as "keyframe".
//!   Audio PES and other PIDs only count as bytes. Chunked or close-delimited bodies;
//! - `http://.../index.m3u8` (any path ending in `.m3u8`): HLS clients (`hls.rs`): each
//!   loops over one keep-alive connection: GET the media playlist, GET every segment it has
//!   not fetched (starting at the third from the end, or the first), wait half the target
//!   duration, reload; Content-Length or chunked bodies; a connection the server closes is
//!   reopened for the next request. Reported in `hls` (see below) rather than per tag;
//! - `rtmp://HOST[:PORT]/APP/STREAM`: RTMP players (handshake, connect, createStream, play;
//!   then audio, video and aggregate messages, see `rtmp.rs`), whose media messages count
//!   exactly as FLV tags do.
//!
//! It reports, across readers:
//! - delivered bitrate per reader (HTTP-FLV: FLV bytes after de-chunking; RTMP: every TCP
//!   payload byte received, chunk headers and protocol messages included; p50 and min),
//! - media-time lag: for each reader and each media tag,
//!   `lag = (wall time since the reader's first media tag) - (tag dts - first media tag dts)`,
//!   so 0 means the reader receives media exactly as fast as it plays; a stream that bursts a
//!   GOP cache at the start shows a negative lag of up to one GOP, and a reader falling
//!   behind shows a growing positive lag. p50/p99/max over all samples, plus each reader's
//!   final lag. Because the GOP burst makes the absolute number depend on where in the GOP
//!   the reader joined, the report also gives "lag over best": each sample minus the lowest
//!   lag that reader had so far (≥ 0; it grows only when delivery falls behind real time,
//!   so it isolates stalls and jitter from the join point),
//! - first-byte latency (connect start to the first response byte; RTMP: to the first byte of
//!   S0) and first-keyframe
//!   latency (connect start to the first video tag that is a picture with frame type 1),
//! - whether each reader's first picture was a keyframe (it should be, with a GOP cache),
//! - error counts: connect refused, other connect errors, HTTP status != 200, malformed HTTP
//!   or chunked framing, FLV parse errors, TS parse errors (lost sync, bad PAT/PMT, bad PES
//!   header), malformed RTMP, RTMP play refused (`_error`, or an `onStatus` of level
//!   "error"), early end of stream. "status 200" means, for RTMP, that the play started
//!   (`onStatus` NetStream.Play.Start, or media arrived), for HLS that a playlist was read.
//! - HLS (`hls` in the JSON): playlist fetches ok/failed (and parse errors), segment fetches
//!   ok/failed/missed (left the window before the client got to them), 304 and 404 answers,
//!   segment bytes, segment download time (request sent → last byte) p50/p99, segment lag
//!   (last byte − the segment's EXT-X-PROGRAM-DATE-TIME − its duration: how long after it
//!   could exist the client had it; only when the playlist has program dates, and only for
//!   segments new in a reloaded playlist, not the start position's), stalls (a gap
//!   of more than 2 × EXT-X-TARGETDURATION without a segment completed, the end of the run
//!   included) and clients stalled, connections opened. For HLS clients the common fields
//!   mean: bytes = every response body byte (playlists and segments), first keyframe = first
//!   segment completed (segments start with one), "readers open" in the window = clients
//!   with a segment within 2 × target duration; there are no per-frame lag samples.
//!
//! "Media tag" and "picture" exclude codec configuration (AVC/HEVC sequence headers, AAC
//! AudioSpecificConfig) and script tags: those are sent with dts 0 or the dts of the join
//! point, they are not something a viewer sees, and counting them would skew the lag.
//!
//! Bounds: `--readers` ≤ 20,000, `--duration-s` ≤ 600, one thread, epoll over non-blocking
//! sockets (no tokio: this tool is not the server's data path, and level-triggered epoll is
//! the simplest robust way to hold thousands of sockets). Only loopback targets are accepted
//! unless `--allow-non-loopback` is given: the tool opens thousands of connections as fast
//! as it can, tests must stay on loopback, and pointing it at someone else's host is a denial
//! of service, not a benchmark.
//!
//! Run: `cargo run --release --bin uringcast-loadgen -- http://127.0.0.1:8080/live/bench.flv
//! --readers 500 --duration-s 30 [--json]` (or `rtmp://127.0.0.1:1935/live/bench`,
//! `http://127.0.0.1:8080/live/bench.ts`, `http://127.0.0.1:8080/live/bench/index.m3u8`).

mod chunked;
mod flv;
mod hls;
mod http1;
mod rtmp;
mod stats;
mod ts;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use chunked::{ChunkedDecoder, ChunkedError, ChunkedLimits};
use clap::Parser;
use flv::{FlvError, FlvEvent, FlvLimits, FlvWalker, TagInfo, TagKind};
use hls::{Completed, HlsClient, HlsClientStats, HlsLimits, HlsRunStats, Poll};
use http1::ResponseLimits;
use rtmp::{PlayEvent, RtmpError, RtmpLimits, RtmpPlay, RtmpUrl};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use stats::{MsHistogram, Summary, summarize};
use ts::{PesInfo, TsError, TsEvent, TsLimits, TsWalker};

/// Every bound the tool enforces, in one place.
#[derive(Debug, Clone, Copy)]
struct LoadgenLimits {
    max_readers: u32,
    max_duration_s: u64,
    /// Largest response head (status line + headers) accepted.
    max_response_head_bytes: usize,
    max_response_headers: usize,
    /// Scratch buffer for one `read` call, shared by all readers.
    read_buf_bytes: usize,
    /// Events taken from one `epoll_wait`.
    epoll_batch: usize,
    /// Lag histogram range; samples outside are clamped (and counted) but min/max stay exact.
    lag_histogram_min_ms: i64,
    lag_histogram_max_ms: i64,
    /// Extra descriptors beyond one per reader (stdio, epoll, slack).
    spare_fds: u64,
    /// How often to print a progress line on stderr.
    progress_interval_ms: u64,
    flv: FlvLimits,
    chunked: ChunkedLimits,
    rtmp: RtmpLimits,
    ts: TsLimits,
    hls: HlsLimits,
    /// Writes of an RTMP reader's pending bytes per event (they are a few dozen bytes, the
    /// handshake's 1.5 KiB at most, so one write nearly always takes them all).
    rtmp_writes_per_event: usize,
}

impl Default for LoadgenLimits {
    fn default() -> Self {
        Self {
            max_readers: 20_000,
            max_duration_s: 600,
            max_response_head_bytes: 16 * 1024,
            max_response_headers: 64,
            read_buf_bytes: 64 * 1024,
            epoll_batch: 1024,
            lag_histogram_min_ms: -120_000,
            lag_histogram_max_ms: 600_000,
            spare_fds: 64,
            progress_interval_ms: 5_000,
            flv: FlvLimits::default(),
            chunked: ChunkedLimits::default(),
            rtmp: RtmpLimits::default(),
            ts: TsLimits::default(),
            hls: HlsLimits {
                max_playlist_bytes: 1024 * 1024,
                max_segments: 10_000,
                max_uri_bytes: 4096,
                retry_without_target_ms: 1000,
                min_reload_ms: 100,
                max_reload_ms: 30_000,
                start_segments_from_end: 3,
                response: ResponseLimits {
                    max_head_bytes: 16 * 1024,
                    max_headers: 64,
                    chunked: ChunkedLimits::default(),
                },
            },
            rtmp_writes_per_event: 4,
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "uringcast-loadgen",
    about = "Live HTTP-FLV, RTMP, HTTP-TS and HLS load generator (loopback only)",
    long_about = "Live HTTP-FLV, RTMP, HTTP-TS and HLS load generator (loopback only).\n\n\
        The URL chooses the mode: http://.../NAME.flv HTTP-FLV, http://.../NAME.ts HTTP-TS, \
        http://.../index.m3u8 (any .m3u8) HLS clients, rtmp://HOST/APP/STREAM RTMP play.\n\n\
        Bytes delivered (bitrate, aggregate and window Mbit/s): for HTTP-FLV and HTTP-TS the \
        body bytes after de-chunking; for HLS every response body byte (playlists and \
        segments); for rtmp:// every TCP payload byte received (handshake, chunk headers and \
        protocol messages included)."
)]
struct Args {
    /// Stream URL: http://127.0.0.1:8080/live/bench.flv (HTTP-FLV),
    /// http://127.0.0.1:8080/live/bench.ts (HTTP-TS),
    /// http://127.0.0.1:8080/live/bench/index.m3u8 (HLS) or
    /// rtmp://127.0.0.1:1935/live/bench (RTMP play of stream "bench" in app "live")
    url: String,
    /// Number of concurrent readers (max 20000).
    #[arg(long, default_value_t = 100)]
    readers: u32,
    /// Total run time in seconds, ramp-up included (max 600).
    #[arg(long, default_value_t = 30)]
    duration_s: u64,
    /// New connections per second during ramp-up; 0 opens all at once.
    #[arg(long, default_value_t = 500)]
    ramp_per_s: u32,
    /// Print the report as JSON on stdout (the human table then goes to stderr).
    #[arg(long)]
    json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Start of a measurement window, in seconds after the run's start: the report then
    /// gives the bytes (as for the bitrate) all readers received between this and `--window-to-s`, and how
    /// many readers had media and were still connected at both ends (`window` in the JSON),
    /// so a caller can line its own CPU and counter samples up with steady-state delivery
    /// (after the ramp and the GOP-cache bursts of joining readers).
    #[arg(long, requires = "window_to_s")]
    window_from_s: Option<f64>,
    /// End of the measurement window, in seconds after the run's start (≤ --duration-s).
    #[arg(long, requires = "window_from_s")]
    window_to_s: Option<f64>,
    /// Allow a target that is not a loopback address. Off by default: tests must stay on
    /// loopback, and thousands of connections at someone else's host is an attack.
    #[arg(long)]
    allow_non_loopback: bool,
}

/// Why a reader stopped early. Grouped as they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    ConnectRefused,
    /// Timeouts, unreachable, out of descriptors, and other connect-time errors.
    ConnectOther,
    HttpStatus(u16),
    /// Malformed or oversized response head, or unsupported framing.
    HttpParse,
    Chunked(ChunkedError),
    Flv(FlvError),
    /// HTTP-TS readers: TS this tool cannot walk (lost sync, bad PSI or PES header).
    Ts(TsError),
    /// Malformed RTMP, or the server refused the play ([`RtmpError::Rejected`]).
    Rtmp(RtmpError),
    /// The server closed (or ended the chunked body) before the run's end.
    EarlyEof,
    /// A read or write error after the connection was up (reset, etc.).
    Io,
}

/// How the response body is delimited.
#[derive(Debug)]
enum Framing {
    Chunked(ChunkedDecoder),
    Length { remaining_bytes: u64 },
    UntilClose,
}

#[derive(Debug)]
enum Phase {
    NotStarted,
    Connecting,
    SendingRequest {
        sent_bytes: usize,
    },
    ReadingHead {
        head: Vec<u8>,
    },
    ReadingBody {
        framing: Framing,
    },
    /// An RTMP player, from C0C1 on.
    Rtmp(Box<RtmpPlay>),
    /// An HLS client: its connection and state are in [`Reader::hls`].
    Hls,
    Closed,
}

/// What a reader reads, chosen by the URL: `rtmp://` plays RTMP; an `http://` path ending
/// in `.m3u8` makes an HLS client, in `.ts` an HTTP-TS reader, anything else HTTP-FLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Flv,
    Ts,
    Hls,
    Rtmp,
}

impl Mode {
    fn of(scheme: &Scheme) -> Self {
        match scheme {
            Scheme::Rtmp(_) => Mode::Rtmp,
            Scheme::Http { path, .. } => {
                let path = path.split('?').next().unwrap_or("");
                if path.ends_with(".m3u8") {
                    Mode::Hls
                } else if path.ends_with(".ts") {
                    Mode::Ts
                } else {
                    Mode::Flv
                }
            }
        }
    }
}

/// The walker of a live HTTP body: FLV tags or TS packets.
#[derive(Debug)]
enum BodyWalker {
    Flv(FlvWalker),
    Ts(Box<TsWalker>),
}

/// An HLS client's connection, which it reopens when the server closes it.
#[derive(Debug)]
enum HlsConn {
    /// None open (none yet, or the server closed the last one).
    Closed,
    Connecting {
        request: Vec<u8>,
    },
    Sending {
        request: Vec<u8>,
        sent_bytes: usize,
    },
    /// Request sent, response being read.
    Receiving,
    /// Open, between responses.
    Idle,
}

/// An HLS reader: the sans-IO client and its socket's state.
#[derive(Debug)]
struct HlsReader {
    client: HlsClient,
    conn: HlsConn,
    /// The instant the client asked to be polled at (a timer is queued for it).
    wake_at: Option<Instant>,
    /// TCP connections opened, and closed by the server between responses.
    connects: u64,
    server_closes: u64,
    first_byte_at: Option<Instant>,
}

/// One reader's connection state and measurements.
#[derive(Debug)]
struct Reader {
    phase: Phase,
    stream: Option<TcpStream>,
    body: BodyWalker,
    /// HLS clients only.
    hls: Option<Box<HlsReader>>,
    started_at: Option<Instant>,
    ended_at: Option<Instant>,
    first_byte_at: Option<Instant>,
    status_ok: bool,
    body_bytes: u64,
    tags: u64,
    first_media: Option<(Instant, u32)>,
    last_lag_ms: Option<f64>,
    best_lag_ms: f64,
    /// First video picture (non-config video tag): when, and whether it was a keyframe.
    first_picture: Option<(Instant, bool)>,
    first_keyframe_at: Option<Instant>,
    failure: Option<Failure>,
    /// RTMP: the socket is registered for EPOLLOUT too (bytes are waiting to be sent).
    wants_out: bool,
}

impl Reader {
    fn new(limits: &LoadgenLimits, mode: Mode) -> Self {
        Self {
            phase: Phase::NotStarted,
            stream: None,
            body: match mode {
                Mode::Ts => BodyWalker::Ts(Box::new(TsWalker::new(limits.ts))),
                Mode::Flv | Mode::Hls | Mode::Rtmp => BodyWalker::Flv(FlvWalker::new(limits.flv)),
            },
            hls: None,
            started_at: None,
            ended_at: None,
            first_byte_at: None,
            status_ok: false,
            body_bytes: 0,
            tags: 0,
            first_media: None,
            last_lag_ms: None,
            best_lag_ms: f64::INFINITY,
            first_picture: None,
            first_keyframe_at: None,
            failure: None,
            wants_out: false,
        }
    }

    fn fail(&mut self, failure: Failure, now: Instant) {
        self.failure = Some(failure);
        self.close(now);
    }

    fn close(&mut self, now: Instant) {
        // Dropping the stream closes the fd, which also removes it from the epoll set.
        self.stream = None;
        self.phase = Phase::Closed;
        self.ended_at.get_or_insert(now);
    }

    fn on_tag(&mut self, tag: TagInfo, now: Instant, lag: &mut LagHistograms) {
        self.tags += 1;
        let media = matches!(tag.kind, TagKind::Audio | TagKind::Video) && !tag.config;
        if !media {
            return;
        }
        let (first_at, first_dts_ms) = *self.first_media.get_or_insert((now, tag.dts_ms));
        let wall_ms = now.duration_since(first_at).as_secs_f64() * 1000.0;
        // Wrapping difference as i32: a small backwards step stays a small negative number.
        let media_ms = f64::from(tag.dts_ms.wrapping_sub(first_dts_ms) as i32);
        let lag_ms = wall_ms - media_ms;
        lag.absolute.record(lag_ms.round() as i64);
        self.best_lag_ms = self.best_lag_ms.min(lag_ms);
        lag.over_best
            .record((lag_ms - self.best_lag_ms).round() as i64);
        self.last_lag_ms = Some(lag_ms);
        if tag.kind == TagKind::Video {
            self.first_picture.get_or_insert((now, tag.video_keyframe));
            if tag.video_keyframe && self.first_keyframe_at.is_none() {
                self.first_keyframe_at = Some(now);
            }
        }
    }

    /// Whether the reader is receiving media at `now`: connected with media (HLS: it has
    /// had a segment within 2 × the target duration).
    fn is_receiving(&self, now: Instant) -> bool {
        match &self.hls {
            Some(h) => self.failure.is_none() && h.client.is_healthy(now),
            None => self.stream.is_some() && self.status_ok && self.first_media.is_some(),
        }
    }

    /// Feeds de-framed FLV or TS bytes to the walker. A TS video PES counts as a video tag
    /// (its DTS, else PTS, as the tag's dts; its random_access_indicator as the keyframe
    /// flag); PES without a timestamp are not counted.
    fn on_media_bytes(
        &mut self,
        mut data: &[u8],
        now: Instant,
        lag_hist: &mut LagHistograms,
    ) -> Result<(), Failure> {
        self.body_bytes += data.len() as u64;
        while !data.is_empty() {
            let (used, tag) = match &mut self.body {
                BodyWalker::Flv(walker) => {
                    let (used, event) = walker.next_event(data).map_err(Failure::Flv)?;
                    let tag = match event {
                        Some(FlvEvent::Tag(tag)) => Some(tag),
                        _ => None,
                    };
                    (used, tag)
                }
                BodyWalker::Ts(walker) => {
                    let (used, event) = walker.next_event(data).map_err(Failure::Ts)?;
                    let tag = match event {
                        Some(TsEvent::Pes(PesInfo {
                            dts_ms: Some(dts_ms),
                            random_access,
                        })) => Some(TagInfo {
                            kind: TagKind::Video,
                            dts_ms,
                            data_len_bytes: 0,
                            video_keyframe: random_access,
                            config: false,
                        }),
                        _ => None,
                    };
                    (used, tag)
                }
            };
            data = &data[used..];
            if let Some(tag) = tag {
                self.on_tag(tag, now, lag_hist);
            }
        }
        Ok(())
    }

    /// Handles body bytes according to the framing. Returns `Err(EarlyEof)` when the body
    /// ends (a live stream should not end during the run).
    fn on_body_bytes(
        &mut self,
        mut data: &[u8],
        now: Instant,
        lag_hist: &mut LagHistograms,
    ) -> Result<(), Failure> {
        let Phase::ReadingBody { framing } = &mut self.phase else {
            return Ok(());
        };
        match framing {
            Framing::UntilClose => self.on_media_bytes(data, now, lag_hist),
            Framing::Length { remaining_bytes } => {
                let n = (*remaining_bytes).min(data.len() as u64) as usize;
                *remaining_bytes -= n as u64;
                let ended = *remaining_bytes == 0;
                self.on_media_bytes(&data[..n], now, lag_hist)?;
                if ended {
                    Err(Failure::EarlyEof)
                } else {
                    Ok(())
                }
            }
            Framing::Chunked(_) => {
                while !data.is_empty() {
                    let Phase::ReadingBody {
                        framing: Framing::Chunked(decoder),
                    } = &mut self.phase
                    else {
                        return Ok(());
                    };
                    let (used, payload) = decoder.decode(data).map_err(Failure::Chunked)?;
                    let done = decoder.is_done();
                    data = &data[used..];
                    self.on_media_bytes(payload, now, lag_hist)?;
                    if done {
                        return Err(Failure::EarlyEof);
                    }
                }
                Ok(())
            }
        }
    }

    /// Feeds bytes from an RTMP server to the session: media goes to the same statistics as
    /// FLV tags. Every byte counts as delivered.
    fn on_rtmp_bytes(
        &mut self,
        data: &[u8],
        now: Instant,
        url: &RtmpUrl,
        lag_hist: &mut LagHistograms,
    ) -> Result<(), Failure> {
        self.body_bytes += data.len() as u64;
        // The session is taken out for the call so that its events can update the reader.
        let Phase::Rtmp(mut session) = std::mem::replace(&mut self.phase, Phase::Closed) else {
            return Ok(());
        };
        let result = session.on_bytes(data, url, &mut |event| match event {
            PlayEvent::Tag(tag) => {
                if matches!(tag.kind, TagKind::Audio | TagKind::Video) {
                    self.status_ok = true;
                }
                self.on_tag(tag, now, lag_hist);
            }
            PlayEvent::Started => self.status_ok = true,
        });
        self.phase = Phase::Rtmp(session);
        result.map_err(Failure::Rtmp)
    }

    /// Parses the response head once it is complete; passes any body bytes on.
    fn on_head_bytes(
        &mut self,
        data: &[u8],
        now: Instant,
        limits: &LoadgenLimits,
        ctx: &mut RunContext,
    ) -> Result<(), Failure> {
        let Phase::ReadingHead { head } = &mut self.phase else {
            return Ok(());
        };
        head.extend_from_slice(data);
        let mut headers = vec![httparse::EMPTY_HEADER; limits.max_response_headers];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(head) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if head.len() > limits.max_response_head_bytes {
                    return Err(Failure::HttpParse);
                }
                return Ok(());
            }
            Err(_) => return Err(Failure::HttpParse),
        };
        let status = response.code.unwrap_or(0);
        if status != 200 {
            *ctx.status_codes.entry(status).or_insert(0) += 1;
            return Err(Failure::HttpStatus(status));
        }
        let mut framing = Framing::UntilClose;
        for h in response.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let value = std::str::from_utf8(h.value).map_err(|_| Failure::HttpParse)?;
                // Only "chunked" (last) is meaningful for a live FLV response.
                if value.trim().to_ascii_lowercase().ends_with("chunked") {
                    framing = Framing::Chunked(ChunkedDecoder::new(limits.chunked));
                } else {
                    return Err(Failure::HttpParse);
                }
            } else if h.name.eq_ignore_ascii_case("content-length")
                && !matches!(framing, Framing::Chunked(_))
            {
                let value = std::str::from_utf8(h.value).map_err(|_| Failure::HttpParse)?;
                let remaining_bytes = value.trim().parse().map_err(|_| Failure::HttpParse)?;
                framing = Framing::Length { remaining_bytes };
            }
        }
        let rest = head[head_len..].to_vec();
        self.status_ok = true;
        self.phase = Phase::ReadingBody { framing };
        self.on_body_bytes(&rest, now, &mut ctx.lag_hist)
    }
}

/// Lag samples of all readers.
struct LagHistograms {
    /// `lag` as defined in the module docs.
    absolute: MsHistogram,
    /// Each sample minus that reader's lowest lag so far.
    over_best: MsHistogram,
}

impl LagHistograms {
    fn new(limits: &LoadgenLimits) -> Self {
        Self {
            absolute: MsHistogram::new(limits.lag_histogram_min_ms, limits.lag_histogram_max_ms),
            over_best: MsHistogram::new(0, limits.lag_histogram_max_ms),
        }
    }
}

/// State shared by all readers during a run.
struct RunContext {
    lag_hist: LagHistograms,
    status_codes: BTreeMap<u16, u64>,
    hls_run: HlsRunStats,
}

impl RunContext {
    fn new(limits: &LoadgenLimits) -> Self {
        Self {
            lag_hist: LagHistograms::new(limits),
            status_codes: BTreeMap::new(),
            hls_run: HlsRunStats::default(),
        }
    }
}

/// HLS clients' wake-ups: (instant, reader index), earliest first. An entry whose instant is
/// no longer its reader's `wake_at` is stale and skipped.
type Timers = BinaryHeap<Reverse<(Instant, usize)>>;

/// The wall clock in Unix milliseconds (HLS program dates are wall-clock times).
fn wall_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A minimal owned epoll instance. The only `unsafe` in the tool lives here and in
/// [`raise_nofile_limit`].
struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    fn new() -> io::Result<Self> {
        // SAFETY: epoll_create1 takes no pointers; the result is checked below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor returned just now that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid, initialised epoll_event that outlives the call; the
        // kernel copies it and keeps no pointer.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for events; an interrupted wait returns 0 events.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        // SAFETY: the pointer and `max` describe `events`, a writable buffer we hold
        // exclusively for the duration of the call.
        let rc =
            unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(rc as usize)
    }
}

/// Raises RLIMIT_NOFILE so that `needed` descriptors fit. Returns the resulting soft limit.
fn raise_nofile_limit(needed: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit the kernel writes into.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur >= needed {
        return Ok(lim.rlim_cur);
    }
    // Raising the hard limit works as root; otherwise settle for the hard limit.
    let want = libc::rlimit {
        rlim_cur: needed,
        rlim_max: lim.rlim_max.max(needed),
    };
    // SAFETY: `want` is a valid rlimit the kernel only reads.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
        return Ok(needed);
    }
    let fallback = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &fallback) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_max)
}

/// Target of the run, parsed from an `http://host[:port]/path` or
/// `rtmp://host[:port]/app/stream` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    addr: SocketAddr,
    scheme: Scheme,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    Http { host_header: String, path: String },
    Rtmp(RtmpUrl),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlError {
    /// Neither http:// nor rtmp://.
    UnsupportedScheme,
    NoHost,
    /// An rtmp:// URL without both an app and a stream name.
    NoAppOrStream,
    Unresolvable,
    NotLoopback,
}

fn parse_target(url: &str, allow_non_loopback: bool) -> Result<Target, UrlError> {
    let (rest, default_port, rtmp) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, 80, false)
    } else if let Some(rest) = url.strip_prefix("rtmp://") {
        (rest, 1935, true)
    } else {
        return Err(UrlError::UnsupportedScheme);
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(UrlError::NoHost);
    }
    // `host:port`, `[v6]:port`, or a host without a port (80, RTMP 1935).
    let has_port = match authority.rfind(':') {
        Some(i) => !authority[i..].contains(']'),
        None => false,
    };
    let with_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|_| UrlError::Unresolvable)?
        .collect();
    // Every resolved address must be loopback, so a name cannot sneak a remote host in.
    if addrs.is_empty() {
        return Err(UrlError::Unresolvable);
    }
    if !allow_non_loopback && !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(UrlError::NotLoopback);
    }
    let scheme = if rtmp {
        // The first path segment is the app, the rest the stream name (as FFmpeg splits it
        // when the app has one segment).
        let (app, stream) = path[1..].split_once('/').ok_or(UrlError::NoAppOrStream)?;
        if app.is_empty() || stream.is_empty() {
            return Err(UrlError::NoAppOrStream);
        }
        Scheme::Rtmp(RtmpUrl {
            app: app.to_string(),
            stream: stream.to_string(),
            tc_url: format!("rtmp://{authority}/{app}"),
        })
    } else {
        Scheme::Http {
            host_header: authority.to_string(),
            path: path.to_string(),
        }
    };
    Ok(Target {
        addr: addrs[0],
        scheme,
    })
}

const EV_IN: u32 = libc::EPOLLIN as u32;
const EV_OUT: u32 = libc::EPOLLOUT as u32;
const EV_ERR: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// A non-blocking connect to the target, registered for reader `idx` (in and out: the
/// connect's completion is the first EPOLLOUT).
fn connect(target: &Target, epoll: &Epoll, idx: usize) -> io::Result<TcpStream> {
    let socket = Socket::new(
        Domain::for_address(target.addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&target.addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream: TcpStream = socket.into();
    epoll.ctl(
        libc::EPOLL_CTL_ADD,
        stream.as_raw_fd(),
        EV_IN | EV_OUT,
        idx as u64,
    )?;
    Ok(stream)
}

/// Starts reader `idx`: a non-blocking connect, or for HLS the client's first playlist
/// request (which connects).
fn start_reader(reader: &mut Reader, idx: usize, now: Instant, io: &mut EventIo<'_>) {
    reader.started_at = Some(now);
    if let Scheme::Http { host_header, path } = &io.target.scheme
        && io.mode == Mode::Hls
    {
        let mut client = HlsClient::new(io.limits.hls, host_header, path);
        client.start_now(now);
        reader.phase = Phase::Hls;
        reader.hls = Some(Box::new(HlsReader {
            client,
            conn: HlsConn::Closed,
            wake_at: None,
            connects: 0,
            server_closes: 0,
            first_byte_at: None,
        }));
        return drive_hls(reader, idx, now, io);
    }
    match connect(io.target, io.epoll, idx) {
        Ok(stream) => {
            reader.stream = Some(stream);
            reader.phase = Phase::Connecting;
        }
        Err(e) => reader.fail(classify_connect_error(&e), now),
    }
}

/// Lets an HLS client act when its connection is free: send its next request (on the idle
/// connection, or a new one), or queue its wake-up.
fn drive_hls(reader: &mut Reader, idx: usize, now: Instant, io: &mut EventIo<'_>) {
    if reader.failure.is_some() {
        return;
    }
    let Some(h) = reader.hls.as_deref_mut() else {
        return;
    };
    if !matches!(h.conn, HlsConn::Closed | HlsConn::Idle) {
        return;
    }
    let request = match h.client.poll(now) {
        Poll::Busy => return,
        Poll::Finished => {
            h.wake_at = None;
            h.conn = HlsConn::Closed;
            reader.stream = None;
            return;
        }
        Poll::WaitUntil(at) => {
            if h.wake_at != Some(at) {
                h.wake_at = Some(at);
                io.timers.push(Reverse((at, idx)));
            }
            return;
        }
        Poll::Send(request) => request,
    };
    h.wake_at = None;
    if let (HlsConn::Idle, Some(stream)) = (&h.conn, &reader.stream) {
        let fd = stream.as_raw_fd();
        if io
            .epoll
            .ctl(libc::EPOLL_CTL_MOD, fd, EV_IN | EV_OUT, idx as u64)
            .is_ok()
        {
            h.conn = HlsConn::Sending {
                request,
                sent_bytes: 0,
            };
            return;
        }
        // Cannot use this connection: try a new one.
        reader.stream = None;
    }
    match connect(io.target, io.epoll, idx) {
        Ok(stream) => {
            reader.stream = Some(stream);
            h.conn = HlsConn::Connecting { request };
            h.connects += 1;
        }
        Err(e) => {
            h.conn = HlsConn::Closed;
            reader.fail(classify_connect_error(&e), now);
        }
    }
}

/// What [`hls_io`] left to do.
enum HlsStep {
    /// Wait for the next event.
    Wait,
    /// The connect failed: the reader fails (the server is gone).
    ConnectFailed(Failure),
    /// Drop the connection; the client may go on (on a new one).
    Drop,
    /// A response completed on a connection that stays open.
    Ready,
}

/// One epoll event of an HLS client's connection.
fn hls_io(
    h: &mut HlsReader,
    stream: &mut TcpStream,
    idx: usize,
    flags: u32,
    now: Instant,
    io: &mut EventIo<'_>,
    run: &mut HlsRunStats,
) -> HlsStep {
    if let HlsConn::Connecting { request } = &mut h.conn {
        match stream.take_error() {
            Ok(None) if flags & EV_ERR == 0 => {
                if flags & EV_OUT == 0 {
                    return HlsStep::Wait;
                }
                let request = std::mem::take(request);
                h.conn = HlsConn::Sending {
                    request,
                    sent_bytes: 0,
                };
            }
            Ok(None) => return HlsStep::ConnectFailed(Failure::ConnectOther),
            Ok(Some(e)) | Err(e) => return HlsStep::ConnectFailed(classify_connect_error(&e)),
        }
    }
    if let HlsConn::Sending {
        request,
        sent_bytes,
    } = &mut h.conn
    {
        match stream.write(&request[*sent_bytes..]) {
            Ok(n) => *sent_bytes += n,
            Err(e) if retry_later(&e) => {
                return HlsStep::Wait;
            }
            Err(_) => {
                h.client.handle_eof(false, now, wall_ms_now(), run);
                return HlsStep::Drop;
            }
        }
        if *sent_bytes < request.len() {
            return HlsStep::Wait;
        }
        if io
            .epoll
            .ctl(libc::EPOLL_CTL_MOD, stream.as_raw_fd(), EV_IN, idx as u64)
            .is_err()
        {
            h.client.handle_eof(false, now, wall_ms_now(), run);
            return HlsStep::Drop;
        }
        h.conn = HlsConn::Receiving;
        return HlsStep::Wait;
    }
    if flags & (EV_IN | EV_ERR) == 0 {
        return HlsStep::Wait;
    }
    let idle = matches!(h.conn, HlsConn::Idle);
    let n = match stream.read(io.buf) {
        Ok(0) if idle => {
            h.server_closes += 1;
            return HlsStep::Drop;
        }
        Ok(0) => {
            h.client.handle_eof(true, now, wall_ms_now(), run);
            return HlsStep::Drop;
        }
        Ok(n) => n,
        Err(e) if retry_later(&e) => {
            return HlsStep::Wait;
        }
        Err(_) => {
            if !idle {
                h.client.handle_eof(false, now, wall_ms_now(), run);
            }
            return HlsStep::Drop;
        }
    };
    h.first_byte_at.get_or_insert(now);
    if idle {
        // Bytes nobody asked for: count them and drop the connection.
        h.client.stats.http_errors += 1;
        return HlsStep::Drop;
    }
    match h.client.handle_bytes(&io.buf[..n], now, wall_ms_now(), run) {
        Ok(None) => HlsStep::Wait,
        Ok(Some(Completed::Reuse)) => {
            h.conn = HlsConn::Idle;
            HlsStep::Ready
        }
        Ok(Some(Completed::Close)) | Err(_) => HlsStep::Drop,
    }
}

/// Drives an HLS reader after an epoll event on its connection.
fn on_hls_event(
    reader: &mut Reader,
    idx: usize,
    flags: u32,
    now: Instant,
    io: &mut EventIo<'_>,
    ctx: &mut RunContext,
) {
    let (Some(h), Some(stream)) = (reader.hls.as_deref_mut(), reader.stream.as_mut()) else {
        return;
    };
    let step = hls_io(h, stream, idx, flags, now, io, &mut ctx.hls_run);
    match step {
        HlsStep::Wait => return sync_hls(reader),
        HlsStep::ConnectFailed(failure) => return reader.fail(failure, now),
        HlsStep::Drop => {
            h.conn = HlsConn::Closed;
            reader.stream = None;
        }
        HlsStep::Ready => {}
    }
    sync_hls(reader);
    drive_hls(reader, idx, now, io);
}

/// Copies an HLS client's progress into the reader's common fields: status 200 = a
/// playlist was read; first media and first keyframe = the first segment completed (a
/// segment starts with a keyframe); bytes = every response body byte.
fn sync_hls(reader: &mut Reader) {
    let Some(h) = &reader.hls else {
        return;
    };
    reader.body_bytes = h.client.stats.body_bytes;
    reader.status_ok = h.client.stats.playlists_ok > 0;
    reader.first_byte_at = reader.first_byte_at.or(h.first_byte_at);
    if let Some(at) = h.client.first_segment_at {
        reader.first_media.get_or_insert((at, 0));
        reader.first_keyframe_at.get_or_insert(at);
    }
}

fn classify_connect_error(e: &io::Error) -> Failure {
    if e.kind() == io::ErrorKind::ConnectionRefused {
        Failure::ConnectRefused
    } else {
        Failure::ConnectOther
    }
}

/// What [`on_event`] needs besides the reader: fixed for the whole run.
struct EventIo<'a> {
    target: &'a Target,
    mode: Mode,
    /// HTTP-FLV and HTTP-TS: the request every reader sends.
    request: &'a [u8],
    /// RTMP: what to play.
    rtmp: Option<&'a RtmpUrl>,
    epoll: &'a Epoll,
    /// Scratch space for one read, shared by all readers.
    buf: &'a mut [u8],
    limits: &'a LoadgenLimits,
    /// HLS clients' wake-ups.
    timers: &'a mut Timers,
}

/// Drives one reader after an epoll event.
fn on_event(
    reader: &mut Reader,
    idx: usize,
    flags: u32,
    now: Instant,
    io: &mut EventIo<'_>,
    ctx: &mut RunContext,
) {
    if reader.hls.is_some() {
        return on_hls_event(reader, idx, flags, now, io, ctx);
    }
    if matches!(reader.phase, Phase::Connecting) {
        let Some(stream) = &reader.stream else { return };
        match stream.take_error() {
            Ok(None) if flags & EV_ERR == 0 => {
                reader.phase = match io.rtmp {
                    Some(_) => {
                        // Registered for EPOLLOUT since the connect: C0C1 goes out below.
                        reader.wants_out = true;
                        Phase::Rtmp(Box::new(RtmpPlay::new(io.limits.rtmp, idx as u64 + 1)))
                    }
                    None => Phase::SendingRequest { sent_bytes: 0 },
                };
            }
            Ok(None) => return reader.fail(Failure::ConnectOther, now),
            Ok(Some(e)) | Err(e) => return reader.fail(classify_connect_error(&e), now),
        }
    }
    if let Phase::SendingRequest { sent_bytes } = &mut reader.phase {
        let Some(stream) = &mut reader.stream else {
            return;
        };
        match stream.write(&io.request[*sent_bytes..]) {
            Ok(n) => *sent_bytes += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => return reader.fail(Failure::Io, now),
        }
        if *sent_bytes < io.request.len() {
            return;
        }
        if io
            .epoll
            .ctl(libc::EPOLL_CTL_MOD, stream.as_raw_fd(), EV_IN, idx as u64)
            .is_err()
        {
            return reader.fail(Failure::Io, now);
        }
        reader.phase = Phase::ReadingHead { head: Vec::new() };
        return;
    }
    if let (Phase::Rtmp(_), Some(url)) = (&reader.phase, io.rtmp) {
        return on_rtmp_event(reader, idx, flags, now, url, io, ctx);
    }
    if flags & (EV_IN | EV_ERR) == 0 {
        return;
    }
    let Some(stream) = &mut reader.stream else {
        return;
    };
    let n = match stream.read(io.buf) {
        Ok(0) => return reader.fail(Failure::EarlyEof, now),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
        Err(_) => return reader.fail(Failure::Io, now),
    };
    reader.first_byte_at.get_or_insert(now);
    let data = &io.buf[..n];
    let result = match reader.phase {
        Phase::ReadingHead { .. } => reader.on_head_bytes(data, now, io.limits, ctx),
        Phase::ReadingBody { .. } => reader.on_body_bytes(data, now, &mut ctx.lag_hist),
        _ => Ok(()),
    };
    if let Err(failure) = result {
        reader.fail(failure, now);
    }
}

/// One read (if the socket is readable) and the writes it calls for, for an RTMP reader.
fn on_rtmp_event(
    reader: &mut Reader,
    idx: usize,
    flags: u32,
    now: Instant,
    url: &RtmpUrl,
    io: &mut EventIo<'_>,
    ctx: &mut RunContext,
) {
    if flags & (EV_IN | EV_ERR) != 0 {
        let Some(stream) = &mut reader.stream else {
            return;
        };
        let n = match stream.read(io.buf) {
            Ok(0) => return reader.fail(Failure::EarlyEof, now),
            Ok(n) => n,
            Err(e) if retry_later(&e) => 0,
            Err(_) => return reader.fail(Failure::Io, now),
        };
        if n > 0 {
            reader.first_byte_at.get_or_insert(now);
            if let Err(failure) = reader.on_rtmp_bytes(&io.buf[..n], now, url, &mut ctx.lag_hist) {
                return reader.fail(failure, now);
            }
        }
    }
    let (Phase::Rtmp(session), Some(stream)) = (&mut reader.phase, &mut reader.stream) else {
        return;
    };
    for _ in 0..io.limits.rtmp_writes_per_event {
        if session.pending_out().is_empty() {
            break;
        }
        match stream.write(session.pending_out()) {
            Ok(n) => session.sent_out(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return reader.fail(Failure::Io, now),
        }
    }
    let wants_out = !session.pending_out().is_empty();
    if wants_out != reader.wants_out {
        let events = if wants_out { EV_IN | EV_OUT } else { EV_IN };
        if io
            .epoll
            .ctl(libc::EPOLL_CTL_MOD, stream.as_raw_fd(), events, idx as u64)
            .is_err()
        {
            return reader.fail(Failure::Io, now);
        }
        reader.wants_out = wants_out;
    }
}

#[derive(Debug, Default, Serialize)]
struct ErrorCounts {
    connect_refused: u64,
    connect_other: u64,
    http_status: u64,
    http_parse: u64,
    chunked_parse: u64,
    flv_parse: u64,
    /// HTTP-TS: lost sync, bad PAT/PMT, bad video PES header.
    ts_parse: u64,
    /// Malformed RTMP (chunk stream, control message or command reply).
    rtmp_parse: u64,
    /// The RTMP server answered `_error` or an `onStatus` of level "error".
    rtmp_rejected: u64,
    early_eof: u64,
    io: u64,
    /// Connected and asked, but not one response byte by the end of the run.
    no_response: u64,
    /// Got 200 but no media tag by the end of the run.
    no_media: u64,
}

/// What all readers had received at one instant of the run.
#[derive(Debug, Clone, Copy)]
struct WindowMark {
    at: Instant,
    bytes: u64,
    open: u64,
}

impl WindowMark {
    fn take(readers: &[Reader], at: Instant) -> Self {
        Self {
            at,
            bytes: readers.iter().map(|r| r.body_bytes).sum(),
            open: readers.iter().filter(|r| r.is_receiving(at)).count() as u64,
        }
    }
}

/// Delivery between `--window-from-s` and `--window-to-s` (as actually sampled).
#[derive(Debug, Serialize)]
struct WindowReport {
    /// When the marks were taken, seconds after the run's start.
    from_s: f64,
    to_s: f64,
    /// FLV bytes (after de-chunking; RTMP: TCP payload bytes) received by all readers in the
    /// window.
    bytes: u64,
    /// `bytes` × 8 / (to_s − from_s) / 1e6.
    mbps: f64,
    /// Readers that have had media and are still connected, at each end.
    readers_open_from: u64,
    readers_open_to: u64,
}

#[derive(Debug, Serialize)]
struct Report {
    url: String,
    readers_requested: u32,
    readers_started: u64,
    duration_s: f64,
    ramp_per_s: u32,
    readers_status_200: u64,
    readers_with_media: u64,
    readers_with_keyframe: u64,
    first_picture_keyframe: u64,
    first_picture_not_keyframe: u64,
    /// Per-reader bytes delivered ×8 / (end − first byte), kbit/s (FLV bytes after
    /// de-chunking; RTMP: TCP payload bytes).
    bitrate_kbps: Option<Summary>,
    /// Sum over readers, Mbit/s.
    aggregate_mbps: f64,
    lag_ms: Option<Summary>,
    lag_samples_clamped: u64,
    lag_over_best_ms: Option<Summary>,
    final_lag_ms: Option<Summary>,
    first_byte_ms: Option<Summary>,
    first_keyframe_ms: Option<Summary>,
    tags_total: u64,
    errors: ErrorCounts,
    http_status_codes: BTreeMap<u16, u64>,
    /// Present when `--window-from-s`/`--window-to-s` were given and both marks were taken.
    window: Option<WindowReport>,
    /// HLS clients only (see `hls.rs` for the definitions).
    hls: Option<HlsReport>,
}

/// What HLS clients did, summed over clients (counters) or over fetches (summaries).
#[derive(Debug, Default, Serialize)]
struct HlsReport {
    /// Clients that completed at least one segment.
    clients_with_segments: u64,
    /// Clients that had a segment within 2 × target duration of the run's end.
    clients_healthy_at_end: u64,
    /// Clients with at least one stall, and stalls in all (a gap of more than 2 × target
    /// duration without a segment completed; a client stalled at the run's end counts).
    clients_stalled: u64,
    stalls: u64,
    playlists_ok: u64,
    playlists_failed: u64,
    playlist_parse_errors: u64,
    status_304: u64,
    status_404: u64,
    segments_ok: u64,
    segments_failed: u64,
    /// Segments that left the playlist before the client fetched them.
    segments_missed: u64,
    segments_bad_uri: u64,
    /// Segments without a program date (no lag sample): every nginx-rtmp segment.
    segments_without_date: u64,
    /// Framing errors, and connections broken or closed in the middle of a response.
    http_errors: u64,
    segment_bytes: u64,
    /// TCP connections opened, and idle ones the server closed.
    connects: u64,
    server_closes: u64,
    sequence_restarts: u64,
    /// Largest EXT-X-TARGETDURATION seen, seconds.
    target_duration_s_max: f64,
    /// Request sent → last body byte of each segment fetched.
    segment_download_ms: Option<Summary>,
    /// Last body byte − (program date + duration), per segment with a program date that was
    /// new in a reloaded playlist.
    segment_lag_ms: Option<Summary>,
    /// Status of every completed response.
    status_codes: BTreeMap<u16, u64>,
    /// Client start → its first playlist, and → its first segment.
    first_playlist_ms: Option<Summary>,
    first_segment_ms: Option<Summary>,
}

fn build_hls_report(readers: &[Reader], run: &HlsRunStats, run_end: Instant) -> Option<HlsReport> {
    let mut r = HlsReport::default();
    let mut any = false;
    let mut first_playlists = Vec::new();
    let mut first_segments = Vec::new();
    for reader in readers {
        let (Some(h), Some(started)) = (reader.hls.as_deref(), reader.started_at) else {
            continue;
        };
        any = true;
        let c = &h.client;
        let s: HlsClientStats = c.stats;
        r.clients_with_segments += u64::from(s.segments_ok > 0);
        r.clients_healthy_at_end += u64::from(reader.failure.is_none() && c.is_healthy(run_end));
        r.clients_stalled += u64::from(s.stalls > 0);
        r.stalls += s.stalls;
        r.playlists_ok += s.playlists_ok;
        r.playlists_failed += s.playlists_failed;
        r.playlist_parse_errors += s.playlist_parse_errors;
        r.status_304 += s.status_304;
        r.status_404 += s.status_404;
        r.segments_ok += s.segments_ok;
        r.segments_failed += s.segments_failed;
        r.segments_missed += s.segments_missed;
        r.segments_bad_uri += s.segments_bad_uri;
        r.segments_without_date += s.segments_without_date;
        r.http_errors += s.http_errors;
        r.segment_bytes += s.segment_bytes;
        r.sequence_restarts += s.sequence_restarts;
        r.connects += h.connects;
        r.server_closes += h.server_closes;
        if let Some(at) = c.first_playlist_at {
            first_playlists.push(ms_between(started, at));
        }
        if let Some(at) = c.first_segment_at {
            first_segments.push(ms_between(started, at));
        }
    }
    if !any {
        return None;
    }
    r.target_duration_s_max = run.target_duration_ms_max as f64 / 1000.0;
    r.status_codes = run.status_codes.clone();
    r.segment_download_ms = summarize(&mut run.segment_download_ms.clone());
    r.segment_lag_ms = summarize(&mut run.segment_lag_ms.clone());
    r.first_playlist_ms = summarize(&mut first_playlists);
    r.first_segment_ms = summarize(&mut first_segments);
    Some(r)
}

fn ms_between(a: Instant, b: Instant) -> f64 {
    b.duration_since(a).as_secs_f64() * 1000.0
}

fn build_report(
    args: &Args,
    readers: &[Reader],
    ctx: &RunContext,
    run_start: Instant,
    run_end: Instant,
    marks: (Option<WindowMark>, Option<WindowMark>),
) -> Report {
    let window = match marks {
        (Some(a), Some(b)) => {
            let secs = b.at.duration_since(a.at).as_secs_f64();
            let bytes = b.bytes.saturating_sub(a.bytes);
            Some(WindowReport {
                from_s: a.at.duration_since(run_start).as_secs_f64(),
                to_s: b.at.duration_since(run_start).as_secs_f64(),
                bytes,
                mbps: if secs > 0.0 {
                    bytes as f64 * 8.0 / secs / 1e6
                } else {
                    0.0
                },
                readers_open_from: a.open,
                readers_open_to: b.open,
            })
        }
        _ => None,
    };
    let mut errors = ErrorCounts::default();
    let mut bitrates = Vec::new();
    let mut final_lags = Vec::new();
    let mut first_bytes = Vec::new();
    let mut first_keyframes = Vec::new();
    let (mut status_ok, mut with_media, mut with_keyframe) = (0, 0, 0);
    let (mut pic_key, mut pic_nonkey) = (0, 0);
    let mut total_bits = 0.0;
    let mut tags_total = 0;
    for r in readers {
        let Some(started) = r.started_at else {
            continue;
        };
        tags_total += r.tags;
        match r.failure {
            Some(Failure::ConnectRefused) => errors.connect_refused += 1,
            Some(Failure::ConnectOther) => errors.connect_other += 1,
            Some(Failure::HttpStatus(_)) => errors.http_status += 1,
            Some(Failure::HttpParse) => errors.http_parse += 1,
            Some(Failure::Chunked(_)) => errors.chunked_parse += 1,
            Some(Failure::Flv(_)) => errors.flv_parse += 1,
            Some(Failure::Ts(_)) => errors.ts_parse += 1,
            Some(Failure::Rtmp(RtmpError::Rejected)) => errors.rtmp_rejected += 1,
            Some(Failure::Rtmp(_)) => errors.rtmp_parse += 1,
            Some(Failure::EarlyEof) => errors.early_eof += 1,
            Some(Failure::Io) => errors.io += 1,
            None => {}
        }
        let connected = !matches!(
            r.failure,
            Some(Failure::ConnectRefused | Failure::ConnectOther)
        );
        if connected && r.first_byte_at.is_none() && r.failure.is_none() {
            errors.no_response += 1;
        }
        if r.status_ok {
            status_ok += 1;
            if r.first_media.is_none() {
                errors.no_media += 1;
            }
        }
        if let Some(at) = r.first_byte_at {
            first_bytes.push(ms_between(started, at));
            let end = r.ended_at.unwrap_or(run_end);
            let secs = end.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                let bits = r.body_bytes as f64 * 8.0;
                bitrates.push(bits / secs / 1000.0);
                total_bits += bits;
            }
        }
        if r.first_media.is_some() {
            with_media += 1;
        }
        if let Some(lag) = r.last_lag_ms {
            final_lags.push(lag);
        }
        if let Some(at) = r.first_keyframe_at {
            with_keyframe += 1;
            first_keyframes.push(ms_between(started, at));
        }
        match r.first_picture {
            Some((_, true)) => pic_key += 1,
            Some((_, false)) => pic_nonkey += 1,
            None => {}
        }
    }
    let duration_s = run_end.duration_since(run_start).as_secs_f64();
    Report {
        url: args.url.clone(),
        readers_requested: args.readers,
        readers_started: readers.iter().filter(|r| r.started_at.is_some()).count() as u64,
        duration_s,
        ramp_per_s: args.ramp_per_s,
        readers_status_200: status_ok,
        readers_with_media: with_media,
        readers_with_keyframe: with_keyframe,
        first_picture_keyframe: pic_key,
        first_picture_not_keyframe: pic_nonkey,
        bitrate_kbps: summarize(&mut bitrates),
        aggregate_mbps: if duration_s > 0.0 {
            total_bits / duration_s / 1e6
        } else {
            0.0
        },
        lag_ms: ctx.lag_hist.absolute.summary(),
        lag_samples_clamped: ctx.lag_hist.absolute.clamped(),
        lag_over_best_ms: ctx.lag_hist.over_best.summary(),
        final_lag_ms: summarize(&mut final_lags),
        first_byte_ms: summarize(&mut first_bytes),
        first_keyframe_ms: summarize(&mut first_keyframes),
        tags_total,
        errors,
        http_status_codes: ctx.status_codes.clone(),
        window,
        hls: build_hls_report(readers, &ctx.hls_run, run_end),
    }
}

fn fmt_summary(s: &Option<Summary>) -> String {
    match s {
        Some(s) => format!(
            "p50 {:>9.1}  p99 {:>9.1}  min {:>9.1}  max {:>9.1}  (n={})",
            s.p50, s.p99, s.min, s.max, s.count
        ),
        None => "no data".to_string(),
    }
}

fn print_table(r: &Report, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "uringcast-loadgen  {}", r.url)?;
    writeln!(
        out,
        "readers: requested {}  started {}  status-200/play {}  with-media {}  with-keyframe {}  ({:.1} s, ramp {}/s)",
        r.readers_requested,
        r.readers_started,
        r.readers_status_200,
        r.readers_with_media,
        r.readers_with_keyframe,
        r.duration_s,
        r.ramp_per_s
    )?;
    writeln!(
        out,
        "first picture was keyframe: {} yes / {} no",
        r.first_picture_keyframe, r.first_picture_not_keyframe
    )?;
    writeln!(out, "bitrate kbit/s      {}", fmt_summary(&r.bitrate_kbps))?;
    writeln!(out, "aggregate Mbit/s    {:.1}", r.aggregate_mbps)?;
    writeln!(out, "lag ms (all tags)   {}", fmt_summary(&r.lag_ms))?;
    writeln!(out, "final lag ms        {}", fmt_summary(&r.final_lag_ms))?;
    writeln!(
        out,
        "lag over best ms    {}",
        fmt_summary(&r.lag_over_best_ms)
    )?;
    writeln!(out, "first byte ms       {}", fmt_summary(&r.first_byte_ms))?;
    writeln!(
        out,
        "first keyframe ms   {}",
        fmt_summary(&r.first_keyframe_ms)
    )?;
    let e = &r.errors;
    writeln!(
        out,
        "errors: refused {} connect {} status {} http {} chunked {} flv {} ts {} rtmp {} rtmp-rejected {} early-eof {} io {} no-response {} no-media {}",
        e.connect_refused,
        e.connect_other,
        e.http_status,
        e.http_parse,
        e.chunked_parse,
        e.flv_parse,
        e.ts_parse,
        e.rtmp_parse,
        e.rtmp_rejected,
        e.early_eof,
        e.io,
        e.no_response,
        e.no_media
    )?;
    if !r.http_status_codes.is_empty() {
        writeln!(out, "status codes: {:?}", r.http_status_codes)?;
    }
    if let Some(h) = &r.hls {
        writeln!(
            out,
            "hls clients: with-segments {}  healthy-at-end {}  stalled {} (stalls {})  target {:.0} s",
            h.clients_with_segments,
            h.clients_healthy_at_end,
            h.clients_stalled,
            h.stalls,
            h.target_duration_s_max
        )?;
        writeln!(
            out,
            "hls playlists: ok {} failed {} (parse {})  segments: ok {} failed {} missed {} bad-uri {}  304 {} 404 {}  http-errors {}  connects {} server-closes {}",
            h.playlists_ok,
            h.playlists_failed,
            h.playlist_parse_errors,
            h.segments_ok,
            h.segments_failed,
            h.segments_missed,
            h.segments_bad_uri,
            h.status_304,
            h.status_404,
            h.http_errors,
            h.connects,
            h.server_closes
        )?;
        writeln!(
            out,
            "segment download ms {}",
            fmt_summary(&h.segment_download_ms)
        )?;
        writeln!(
            out,
            "segment lag ms      {}",
            fmt_summary(&h.segment_lag_ms)
        )?;
        writeln!(
            out,
            "first playlist ms   {}",
            fmt_summary(&h.first_playlist_ms)
        )?;
        writeln!(
            out,
            "first segment ms    {}",
            fmt_summary(&h.first_segment_ms)
        )?;
        writeln!(out, "hls status codes: {:?}", h.status_codes)?;
    }
    if let Some(w) = &r.window {
        writeln!(
            out,
            "window {:.2}-{:.2} s   {:.1} Mbit/s, readers open {} / {}",
            w.from_s, w.to_s, w.mbps, w.readers_open_from, w.readers_open_to
        )?;
    }
    Ok(())
}

fn run(args: &Args, limits: &LoadgenLimits) -> Result<Report, String> {
    if args.readers == 0 || args.readers > limits.max_readers {
        return Err(format!("--readers must be 1..={}", limits.max_readers));
    }
    if args.duration_s == 0 || args.duration_s > limits.max_duration_s {
        return Err(format!(
            "--duration-s must be 1..={}",
            limits.max_duration_s
        ));
    }
    let window_at = match (args.window_from_s, args.window_to_s) {
        (Some(from), Some(to)) => {
            if !(0.0 <= from && from < to && to <= args.duration_s as f64) {
                return Err(format!(
                    "need 0 <= --window-from-s < --window-to-s <= --duration-s ({from}, {to}, {})",
                    args.duration_s
                ));
            }
            Some((from, to))
        }
        _ => None,
    };
    let target = parse_target(&args.url, args.allow_non_loopback).map_err(|e| match e {
        UrlError::NotLoopback => format!(
            "{}: not a loopback address; tests stay on loopback (see --allow-non-loopback)",
            args.url
        ),
        other => format!(
            "{}: bad URL ({other:?}); expected http://HOST:PORT/PATH or rtmp://HOST:PORT/APP/STREAM",
            args.url
        ),
    })?;
    let needed_fds = u64::from(args.readers) + limits.spare_fds;
    match raise_nofile_limit(needed_fds) {
        Ok(got) if got < needed_fds => eprintln!(
            "warning: RLIMIT_NOFILE is {got}, fewer than the {needed_fds} needed; some connects will fail"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not raise RLIMIT_NOFILE: {e}"),
    }
    let (request, rtmp_url) = match &target.scheme {
        Scheme::Http { host_header, path } => (
            format!(
                "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: uringcast-loadgen\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
            None,
        ),
        Scheme::Rtmp(url) => (Vec::new(), Some(url)),
    };

    let mode = Mode::of(&target.scheme);
    let epoll = Epoll::new().map_err(|e| format!("epoll_create1: {e}"))?;
    let mut readers: Vec<Reader> = (0..args.readers)
        .map(|_| Reader::new(limits, mode))
        .collect();
    let mut ctx = RunContext::new(limits);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; limits.epoll_batch];
    let mut buf = vec![0u8; limits.read_buf_bytes];
    let mut timers = Timers::new();
    let mut io = EventIo {
        target: &target,
        mode,
        request: &request,
        rtmp: rtmp_url,
        epoll: &epoll,
        buf: &mut buf,
        limits,
        timers: &mut timers,
    };
    let run_start = Instant::now();
    let run_end_at = run_start + Duration::from_secs(args.duration_s);
    let ramp_interval =
        (args.ramp_per_s > 0).then(|| Duration::from_secs_f64(1.0 / f64::from(args.ramp_per_s)));
    let start_time_of = |i: usize| match ramp_interval {
        Some(step) => run_start + step.mul_f64(i as f64),
        None => run_start,
    };
    let progress_every = Duration::from_millis(limits.progress_interval_ms);
    let mut next_progress = run_start + progress_every;
    let mut next_to_start = 0usize;
    let window_at = window_at.map(|(a, b)| {
        (
            run_start + Duration::from_secs_f64(a),
            run_start + Duration::from_secs_f64(b),
        )
    });
    let mut marks: (Option<WindowMark>, Option<WindowMark>) = (None, None);
    loop {
        let now = Instant::now();
        // Marks before the end check, so a window that ends at --duration-s is closed.
        if let Some((from, to)) = window_at {
            if marks.0.is_none() && now >= from {
                marks.0 = Some(WindowMark::take(&readers, now));
            }
            if marks.1.is_none() && now >= to {
                marks.1 = Some(WindowMark::take(&readers, now));
            }
        }
        if now >= run_end_at {
            break;
        }
        while next_to_start < readers.len() && start_time_of(next_to_start) <= now {
            start_reader(&mut readers[next_to_start], next_to_start, now, &mut io);
            next_to_start += 1;
        }
        // HLS clients whose wait is over.
        while let Some(&Reverse((at, idx))) = io.timers.peek() {
            if at > now {
                break;
            }
            io.timers.pop();
            let Some(reader) = readers.get_mut(idx) else {
                continue;
            };
            if let Some(h) = reader.hls.as_deref_mut()
                && h.wake_at == Some(at)
            {
                h.wake_at = None;
                drive_hls(reader, idx, now, &mut io);
            }
        }
        if now >= next_progress {
            // Advance the deadline whether or not the line is printed: with `--quiet` it used
            // to stay in the past, so every epoll_wait below got a 0 ms timeout and the loop
            // spun on a core. Missed intervals are skipped, not printed as a burst.
            while next_progress <= now {
                next_progress += progress_every;
            }
            if !args.quiet {
                let open = readers.iter().filter(|r| r.stream.is_some()).count();
                let media = readers.iter().filter(|r| r.first_media.is_some()).count();
                let failed = readers.iter().filter(|r| r.failure.is_some()).count();
                eprintln!(
                    "t={:>4.0}s started {next_to_start} open {open} with-media {media} failed {failed}",
                    now.duration_since(run_start).as_secs_f64()
                );
            }
        }
        let mut wake_at = run_end_at.min(next_progress);
        if let Some((from, to)) = window_at {
            if marks.0.is_none() {
                wake_at = wake_at.min(from);
            } else if marks.1.is_none() {
                wake_at = wake_at.min(to);
            }
        }
        if next_to_start < readers.len() {
            wake_at = wake_at.min(start_time_of(next_to_start));
        }
        if let Some(&Reverse((at, _))) = io.timers.peek() {
            wake_at = wake_at.min(at);
        }
        // Rounded up: a deadline 0.4 ms away must not become a 0 ms (busy) wait.
        let timeout_ms = wake_at
            .saturating_duration_since(now)
            .as_micros()
            .div_ceil(1000)
            .clamp(0, 1000) as i32;
        let n = epoll
            .wait(&mut events, timeout_ms)
            .map_err(|e| format!("epoll_wait: {e}"))?;
        let now = Instant::now();
        for ev in &events[..n] {
            let (flags, token) = (ev.events, ev.u64);
            let idx = token as usize;
            let Some(reader) = readers.get_mut(idx) else {
                continue;
            };
            on_event(reader, idx, flags, now, &mut io, &mut ctx);
        }
    }
    let run_end = Instant::now();
    for reader in &mut readers {
        if let Some(h) = reader.hls.as_deref_mut() {
            h.client.finish(run_end);
        }
        sync_hls(reader);
    }
    Ok(build_report(
        args, &readers, &ctx, run_start, run_end, marks,
    ))
}

/// A non-blocking socket call that did nothing now and may be retried on the next event.
fn retry_later(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let limits = LoadgenLimits::default();
    let report = match run(&args, &limits) {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("uringcast-loadgen: {msg}");
            return ExitCode::from(2);
        }
    };
    let result = if args.json {
        let _ = print_table(&report, &mut io::stderr());
        serde_json::to_writer_pretty(io::stdout(), &report)
            .map_err(io::Error::other)
            .and_then(|()| writeln!(io::stdout()))
    } else {
        print_table(&report, &mut io::stdout())
    };
    if let Err(e) = result {
        eprintln!("uringcast-loadgen: writing report: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader of `mode` that has sent its request, fed `wire` (head and body) in pieces of
    /// `piece` bytes.
    fn read_wire(
        mode: Mode,
        wire: &[u8],
        piece: usize,
        limits: &LoadgenLimits,
        ctx: &mut RunContext,
    ) -> Reader {
        let mut r = Reader::new(limits, mode);
        r.phase = Phase::ReadingHead { head: Vec::new() };
        let now = Instant::now();
        for piece in wire.chunks(piece) {
            let res = match r.phase {
                Phase::ReadingHead { .. } => r.on_head_bytes(piece, now, limits, ctx),
                _ => r.on_body_bytes(piece, now, &mut ctx.lag_hist),
            };
            res.unwrap();
        }
        r
    }

    #[test]
    fn target_must_be_loopback_unless_allowed() {
        let http = |t: &Target| match &t.scheme {
            Scheme::Http { host_header, path } => (host_header.clone(), path.clone()),
            Scheme::Rtmp(_) => panic!("not http"),
        };
        let t = parse_target("http://127.0.0.1:8080/live/a.flv", false).unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(
            http(&t),
            ("127.0.0.1:8080".to_string(), "/live/a.flv".to_string())
        );
        let t = parse_target("http://[::1]:9/x", false).unwrap();
        assert_eq!(t.addr, "[::1]:9".parse().unwrap());
        let t = parse_target("http://127.0.0.2", false).unwrap();
        assert_eq!((t.addr.port(), http(&t).1.as_str()), (80, "/"));
        assert_eq!(
            parse_target("http://192.0.2.1:80/x", false),
            Err(UrlError::NotLoopback)
        );
        assert!(parse_target("http://192.0.2.1:80/x", true).is_ok());
        assert_eq!(
            parse_target("https://127.0.0.1/", false),
            Err(UrlError::UnsupportedScheme)
        );
        assert_eq!(parse_target("http:///x", false), Err(UrlError::NoHost));
    }

    #[test]
    fn rtmp_target_splits_app_and_stream() {
        let t = parse_target("rtmp://127.0.0.1:1940/live/s", false).unwrap();
        assert_eq!(t.addr, "127.0.0.1:1940".parse().unwrap());
        assert_eq!(
            t.scheme,
            Scheme::Rtmp(RtmpUrl {
                app: "live".into(),
                stream: "s".into(),
                tc_url: "rtmp://127.0.0.1:1940/live".into(),
            })
        );
        let t = parse_target("rtmp://localhost/app/a/b?k=1", false).unwrap();
        assert_eq!(t.addr.port(), 1935);
        let Scheme::Rtmp(u) = t.scheme else {
            panic!("not rtmp")
        };
        assert_eq!((u.app.as_str(), u.stream.as_str()), ("app", "a/b?k=1"));
        for bad in [
            "rtmp://127.0.0.1/live",
            "rtmp://127.0.0.1/live/",
            "rtmp://127.0.0.1//s",
        ] {
            assert_eq!(
                parse_target(bad, false),
                Err(UrlError::NoAppOrStream),
                "{bad}"
            );
        }
        assert_eq!(
            parse_target("rtmp://192.0.2.1/live/s", false),
            Err(UrlError::NotLoopback)
        );
    }

    /// A whole response (head + chunked FLV) split into small reads: the reader must
    /// classify every tag and compute lag against the first media tag.
    #[test]
    fn reader_parses_chunked_flv_response() {
        let limits = LoadgenLimits::default();
        let mut ctx = RunContext::new(&limits);
        let flv_bytes = flv::tests::sample_stream();
        let mut wire =
            b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for c in flv_bytes.chunks(7) {
            wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        let mut r = read_wire(Mode::Flv, &wire, 5, &limits, &mut ctx);
        assert!(r.status_ok);
        assert_eq!(r.body_bytes, flv_bytes.len() as u64);
        assert_eq!(r.tags, 6);
        // First media tag is the keyframe at dts 40; the audio at 43 was "3 ms late" in
        // media time but arrived at the same instant, so its lag is -3 ms.
        assert_eq!(r.first_media.map(|(_, d)| d), Some(40));
        assert_eq!(r.first_picture.map(|(_, k)| k), Some(true));
        assert!(r.first_keyframe_at.is_some());
        let s = ctx.lag_hist.absolute.summary().unwrap();
        assert_eq!((s.count, s.max, s.p50), (3, 0.0, -3.0));
        // Lag only went down, so it never exceeded the reader's best.
        let s = ctx.lag_hist.over_best.summary().unwrap();
        assert_eq!((s.count, s.max), (3, 0.0));
        // The last tag's dts is 0x0100_0050 - 40 ms ahead of the first.
        assert_eq!(r.last_lag_ms, Some(-f64::from(0x0100_0050u32 - 40)));
        // The zero-size chunk ends the body: a live reader calls that an early end.
        assert_eq!(
            r.on_body_bytes(b"0\r\n\r\n", Instant::now(), &mut ctx.lag_hist),
            Err(Failure::EarlyEof)
        );
    }

    #[test]
    fn mode_follows_the_url() {
        let mode = |url: &str| Mode::of(&parse_target(url, false).unwrap().scheme);
        assert_eq!(mode("http://127.0.0.1/live/x.flv"), Mode::Flv);
        assert_eq!(mode("http://127.0.0.1/live/x.ts"), Mode::Ts);
        assert_eq!(mode("http://127.0.0.1/live/x.ts?k=1"), Mode::Ts);
        assert_eq!(mode("http://127.0.0.1/live/x/index.m3u8"), Mode::Hls);
        assert_eq!(mode("http://127.0.0.1/hls/x.m3u8?a=b"), Mode::Hls);
        assert_eq!(mode("rtmp://127.0.0.1/live/x.ts"), Mode::Rtmp);
    }

    /// HTTP-TS, chunked and close-delimited: video PES become video tags (lag, keyframes),
    /// every body byte counts.
    #[test]
    fn reader_parses_ts_responses_chunked_and_until_close() {
        let limits = LoadgenLimits::default();
        let ts_bytes = ts::tests::sample_stream();
        let mut chunked =
            b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        for c in ts_bytes.chunks(100) {
            chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            chunked.extend_from_slice(c);
            chunked.extend_from_slice(b"\r\n");
        }
        let mut plain = b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\n\r\n".to_vec();
        plain.extend_from_slice(&ts_bytes);
        for wire in [chunked, plain] {
            let mut ctx = RunContext::new(&limits);
            let r = read_wire(Mode::Ts, &wire, 61, &limits, &mut ctx);
            assert!(r.status_ok);
            assert_eq!(r.body_bytes, ts_bytes.len() as u64);
            // Two video PES (keyframe at 40 ms, then 73 ms); audio is not counted.
            assert_eq!(r.tags, 2);
            assert_eq!(r.first_media.map(|(_, d)| d), Some(40));
            assert_eq!(r.first_picture.map(|(_, k)| k), Some(true));
            assert!(r.first_keyframe_at.is_some());
            assert_eq!(r.last_lag_ms, Some(-33.0));
        }
        // Lost sync is the reader's failure.
        let mut r = Reader::new(&limits, Mode::Ts);
        let mut ctx = RunContext::new(&limits);
        r.phase = Phase::ReadingHead { head: Vec::new() };
        let now = Instant::now();
        assert_eq!(
            r.on_head_bytes(b"HTTP/1.0 200 OK\r\n\r\nnot ts", now, &limits, &mut ctx),
            Err(Failure::Ts(TsError::SyncLost))
        );
    }

    #[test]
    fn reader_reports_status_and_bad_head() {
        let limits = LoadgenLimits::default();
        let mut ctx = RunContext::new(&limits);
        let now = Instant::now();
        let mut r = Reader::new(&limits, Mode::Flv);
        r.phase = Phase::ReadingHead { head: Vec::new() };
        assert_eq!(
            r.on_head_bytes(b"HTTP/1.1 404 Not Found\r\n\r\n", now, &limits, &mut ctx),
            Err(Failure::HttpStatus(404))
        );
        assert_eq!(ctx.status_codes.get(&404), Some(&1));
        let mut r = Reader::new(&limits, Mode::Flv);
        r.phase = Phase::ReadingHead { head: Vec::new() };
        assert_eq!(
            r.on_head_bytes(b"HTTX/1.1 200\r\n\r\n", now, &limits, &mut ctx),
            Err(Failure::HttpParse)
        );
        let mut r = Reader::new(&limits, Mode::Flv);
        r.phase = Phase::ReadingHead { head: Vec::new() };
        let mut big = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        big.resize(limits.max_response_head_bytes + 1, b'a');
        assert_eq!(
            r.on_head_bytes(&big, now, &limits, &mut ctx),
            Err(Failure::HttpParse)
        );
    }
}
