//! Metric names and the per-worker batch counters.
//!
//! Hot paths bump plain integers in [`WorkerStats`]; once per tick the worker hands the deltas
//! to the `metrics` recorder (metrics-exporter-prometheus, rendered by our own `/metrics`
//! handler). So the cost on the data path is an add, never a map lookup or an atomic.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::media::stream::Stream;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the global recorder once; later calls return the same handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // A second recorder can only come from a test harness that installed one already;
        // the handle still renders ours.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// HELP text of every process-wide series (the per-stream series carry theirs in
/// `app::api`): `promtool check metrics` in the tests holds every series to it.
fn describe() {
    use metrics::{describe_counter, describe_gauge};
    for (name, help) in [
        (
            "uringcast_bytes_sent_total",
            "Bytes sent to clients (responses, files and live media), per worker.",
        ),
        (
            "uringcast_connections_accepted_total",
            "HTTP connections accepted, per worker.",
        ),
        (
            "uringcast_rtmp_connections_accepted_total",
            "RTMP connections accepted, per worker.",
        ),
        (
            "uringcast_connections_refused_total",
            "Connections closed at accept: http.connections_max_per_worker reached.",
        ),
        (
            "uringcast_connections_closed_total",
            "Connections closed, by reason.",
        ),
        (
            "uringcast_http_requests_total",
            "HTTP requests answered, by status class.",
        ),
        (
            "uringcast_deadline_expired_total",
            "Connections closed by a deadline (idle, header, send, linger).",
        ),
        (
            "uringcast_vod_file_cache_lookups_total",
            "Open-file cache lookups for on-demand files, by result.",
        ),
        (
            "uringcast_vod_ring_ops_total",
            "Opens and stats of on-demand files done through the ring.",
        ),
        (
            "uringcast_vod_opens_abandoned_total",
            "File opens that completed after their connection had closed.",
        ),
        (
            "uringcast_vod_uncached_chunks_total",
            "File chunks sent that were not in the page cache (splice instead of sendfile).",
        ),
        (
            "uringcast_sends_submitted_total",
            "Send operations submitted to the ring, per worker.",
        ),
        (
            "uringcast_splices_submitted_total",
            "Splice operations submitted to the ring, per worker.",
        ),
        (
            "uringcast_sendfile_calls_total",
            "sendfile(2) calls for on-demand files, per worker.",
        ),
        (
            "uringcast_live_skips_total",
            "Live readers moved to the latest keyframe for lagging, per worker.",
        ),
        (
            "uringcast_live_wake_failures_total",
            "Cross-worker doorbells (MSG_RING) that failed; the next tick delivers.",
        ),
        (
            "uringcast_live_wake_missed_total",
            "Streams whose news reached a worker by its tick rather than a doorbell.",
        ),
        (
            LOG_LINES_DROPPED,
            "Log lines dropped because the log queue was full (runtime.log_queue_lines).",
        ),
        (
            ACCESS_LOG_LINES_DROPPED,
            "Access log lines dropped because its queue was full (access_log.queue_lines).",
        ),
        (
            "uringcast_auth_refused_total",
            "Publishes and plays refused by [auth], by protocol, action and reason.",
        ),
        (
            "uringcast_auth_callouts_total",
            "Decisions asked of the auth service (auth.http_url), by action and result.",
        ),
        (
            "uringcast_auth_cache_hits_total",
            "Auth service decisions answered from the worker's cache (auth.http_cache_ms).",
        ),
        (
            "uringcast_auth_notifications_total",
            "publish_done and play_done notifications to the auth service, by result.",
        ),
        (
            "uringcast_admin_refused_total",
            "Admin API and status page requests refused (not in admin.allow, no or wrong token).",
        ),
        (
            "uringcast_sessions_kicked_total",
            "Sessions ended through the admin API, by role.",
        ),
        (
            "uringcast_config_reloads_total",
            "Configuration reloads (SIGHUP), applied or refused.",
        ),
        (
            "uringcast_rtmp_errors_total",
            "RTMP connections closed for breaking the protocol or a limit, by reason.",
        ),
        (
            "uringcast_rtmp_refused_total",
            "RTMP connects, publishes and plays refused, by status code.",
        ),
        (
            "uringcast_hls_requests_total",
            "HLS GET and HEAD requests answered (live and pushed), by kind and status.",
        ),
        (
            "uringcast_hls_bytes_total",
            "HLS body bytes answered (a range: its length; HEAD: none), by kind.",
        ),
    ] {
        describe_counter!(name, help);
    }
    describe_gauge!(
        "uringcast_connections_active",
        "Connections open now, per worker."
    );
}

/// Render the Prometheus text exposition.
pub fn render() -> String {
    // Read here rather than counted per line: the writer's own counter is the source.
    counter!(LOG_LINES_DROPPED).absolute(crate::logging::lines_dropped());
    counter!(ACCESS_LOG_LINES_DROPPED).absolute(crate::logging::access_lines_dropped());
    install().render()
}

/// Log lines dropped because the log writer's queue (`runtime.log_queue_lines`) was full: stderr
/// is not draining.
pub const LOG_LINES_DROPPED: &str = "uringcast_log_lines_dropped_total";
/// Access log lines dropped because its queue (`access_log.queue_lines`) was full.
pub const ACCESS_LOG_LINES_DROPPED: &str = "uringcast_access_log_lines_dropped_total";

/// Periodic housekeeping the exporter needs (histogram/summary upkeep).
pub fn upkeep() {
    install().run_upkeep();
}

/// Why a connection was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed or reset.
    Peer,
    /// We finished (Connection: close, keep-alive limit, HTTP/1.0).
    Done,
    /// A protocol error answered with 4xx/5xx and close.
    ProtocolError,
    /// A deadline expired (header, idle, send).
    Timeout,
    /// A socket or file error.
    IoError,
    /// Server shutdown.
    Shutdown,
    /// A live reader fell too far behind too often.
    SlowReader,
    /// Ended through the admin API (`DELETE /api/v1/sessions/{id}` or `/api/v1/streams/...`).
    Kicked,
}

impl CloseReason {
    pub const ALL: [CloseReason; 8] = [
        CloseReason::Peer,
        CloseReason::Done,
        CloseReason::ProtocolError,
        CloseReason::Timeout,
        CloseReason::IoError,
        CloseReason::Shutdown,
        CloseReason::SlowReader,
        CloseReason::Kicked,
    ];

    /// The reason for a failed socket operation: the peer's doing (reset, gone) or ours.
    pub fn from_errno(errno: i32) -> CloseReason {
        if errno == libc::EPIPE || errno == libc::ECONNRESET || errno == libc::ENOTCONN {
            CloseReason::Peer
        } else {
            CloseReason::IoError
        }
    }

    /// The reason for a receive that ended the connection (`result` <= 0): the peer closed or
    /// reset, or a socket error.
    pub fn from_recv(result: i32) -> CloseReason {
        if result == 0 || result == -libc::ECONNRESET {
            CloseReason::Peer
        } else {
            CloseReason::IoError
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Peer => "peer",
            CloseReason::Done => "done",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::Timeout => "timeout",
            CloseReason::IoError => "io_error",
            CloseReason::Shutdown => "shutdown",
            CloseReason::SlowReader => "slow_reader",
            CloseReason::Kicked => "kicked",
        }
    }
}

/// What an HLS request asked for: a playlist (`.m3u8`) or a media object (a live segment, or
/// a pushed `.ts`, `.m4s`, `.mp4`, `.aac`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HlsKind {
    Playlist,
    Segment,
}

impl HlsKind {
    pub const ALL: [HlsKind; 2] = [HlsKind::Playlist, HlsKind::Segment];

    pub fn of_file(file: &str) -> HlsKind {
        if file.ends_with(".m3u8") {
            HlsKind::Playlist
        } else {
            HlsKind::Segment
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            HlsKind::Playlist => "playlist",
            HlsKind::Segment => "segment",
        }
    }
}

/// The statuses HLS GET/HEAD answers are counted by (`status` label); any other is `other`.
pub const HLS_STATUSES: [&str; 6] = ["200", "206", "304", "404", "416", "other"];

fn hls_status_index(status: u16) -> usize {
    match status {
        200 => 0,
        206 => 1,
        304 => 2,
        404 => 3,
        416 => 4,
        _ => 5,
    }
}

/// A worker's HLS figures per live stream since the last flush: requests by kind and segment
/// body bytes, added to the stream's shared figures ([`Stream::stats`]) at the flush, so a
/// request costs no atomic and no shared cache line. Holds the streams until then.
#[derive(Default)]
pub struct HlsStreamTally {
    streams: HashMap<u32, (Arc<Stream>, HlsStreamCounts)>,
}

#[derive(Default, Clone, Copy)]
struct HlsStreamCounts {
    playlists: u64,
    segments: u64,
    segment_bytes: u64,
}

impl std::fmt::Debug for HlsStreamTally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HlsStreamTally")
            .field("streams", &self.streams.len())
            .finish()
    }
}

impl HlsStreamTally {
    fn count(&mut self, stream: &Arc<Stream>, kind: HlsKind, body_bytes: u64) {
        let (_, counts) = self
            .streams
            .entry(stream.id)
            .or_insert_with(|| (stream.clone(), HlsStreamCounts::default()));
        match kind {
            HlsKind::Playlist => counts.playlists += 1,
            HlsKind::Segment => {
                counts.segments += 1;
                counts.segment_bytes += body_bytes;
            }
        }
    }

    /// Hand the counts to the streams' figures and let the streams go.
    fn flush(&mut self) {
        for (_, (stream, counts)) in self.streams.drain() {
            let stats = &stream.stats;
            for (shared, local) in [
                (&stats.hls_playlist_requests, counts.playlists),
                (&stats.hls_segment_requests, counts.segments),
                (&stats.hls_segment_bytes, counts.segment_bytes),
            ] {
                if local > 0 {
                    shared.fetch_add(local, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Counters a worker accumulates between flushes.
#[derive(Default, Debug)]
pub struct WorkerStats {
    pub accepted: u64,
    /// Of `accepted`, on the RTMP listener.
    pub rtmp_accepted: u64,
    pub refused: u64,
    pub closed: [u64; CloseReason::ALL.len()],
    /// Requests by status class 1xx..5xx (index 0..=4).
    pub requests: [u64; 5],
    pub bytes_sent: u64,
    pub sends_submitted: u64,
    pub splices_submitted: u64,
    pub sendfile_calls: u64,
    pub deadline_expired_idle: u64,
    pub deadline_expired_header: u64,
    pub deadline_expired_send: u64,
    /// Lingering closes that ran out of time (the peer neither stopped sending nor closed).
    pub deadline_expired_linger: u64,
    pub live_skips: u64,
    /// MSG_RING wake-ups that failed to reach another worker.
    pub live_wake_failures: u64,
    /// Streams pumped by the per-tick check because their head moved with no wake-up.
    pub live_wake_missed: u64,
    /// `auto` send path: chunks not (entirely) in the page cache, sent with splice.
    pub uncached_chunks: u64,
    /// VOD file cache lookups: answered from the cache, not cached, cached but due for a check.
    pub vod_cache_hits: u64,
    pub vod_cache_misses: u64,
    pub vod_cache_stale: u64,
    /// IORING_OP_OPENAT2 / IORING_OP_STATX submitted for VOD files (misses and checks).
    pub vod_ring_openat2: u64,
    pub vod_ring_statx: u64,
    /// Opens that completed after their connection had closed (the fd is closed at once).
    pub vod_opens_abandoned: u64,
    /// HLS answers by kind ([`HlsKind::ALL`]) and status ([`HLS_STATUSES`]), and body bytes
    /// by kind.
    pub hls_requests: [[u64; HLS_STATUSES.len()]; HlsKind::ALL.len()],
    pub hls_bytes: [u64; HlsKind::ALL.len()],
    /// Per live stream (the `uringcast_stream_hls_*` figures).
    pub hls_streams: HlsStreamTally,
    pub active: u64,
}

/// The registered handles one worker flushes into.
pub struct WorkerMetrics {
    accepted: Counter,
    rtmp_accepted: Counter,
    refused: Counter,
    closed: Vec<Counter>,
    requests: Vec<Counter>,
    bytes_sent: Counter,
    sends_submitted: Counter,
    splices_submitted: Counter,
    sendfile_calls: Counter,
    deadline_idle: Counter,
    deadline_header: Counter,
    deadline_send: Counter,
    deadline_linger: Counter,
    live_skips: Counter,
    live_wake_failures: Counter,
    live_wake_missed: Counter,
    uncached_chunks: Counter,
    vod_cache: [Counter; 3],
    vod_ring_openat2: Counter,
    vod_ring_statx: Counter,
    vod_opens_abandoned: Counter,
    hls_requests: Vec<Vec<Counter>>,
    hls_bytes: Vec<Counter>,
    active: Gauge,
}

impl WorkerMetrics {
    pub fn new(worker: usize) -> WorkerMetrics {
        let w = worker.to_string();
        let closed = CloseReason::ALL
            .iter()
            .map(|r| counter!("uringcast_connections_closed_total", "worker" => w.clone(), "reason" => r.label()))
            .collect();
        let requests = ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .iter()
            .map(
                |c| counter!("uringcast_http_requests_total", "worker" => w.clone(), "class" => *c),
            )
            .collect();
        let deadline = |kind: &'static str| counter!("uringcast_deadline_expired_total", "worker" => w.clone(), "deadline" => kind);
        let vod_cache = |result: &'static str| counter!("uringcast_vod_file_cache_lookups_total", "worker" => w.clone(), "result" => result);
        let vod_ring = |op: &'static str| counter!("uringcast_vod_ring_ops_total", "worker" => w.clone(), "op" => op);
        let hls_requests = HlsKind::ALL
            .iter()
            .map(|kind| {
                HLS_STATUSES
                    .iter()
                    .map(|status| counter!("uringcast_hls_requests_total", "worker" => w.clone(), "kind" => kind.label(), "status" => *status))
                    .collect()
            })
            .collect();
        let hls_bytes = HlsKind::ALL
            .iter()
            .map(|kind| counter!("uringcast_hls_bytes_total", "worker" => w.clone(), "kind" => kind.label()))
            .collect();
        WorkerMetrics {
            accepted: counter!("uringcast_connections_accepted_total", "worker" => w.clone()),
            rtmp_accepted: counter!("uringcast_rtmp_connections_accepted_total", "worker" => w.clone()),
            refused: counter!("uringcast_connections_refused_total", "worker" => w.clone()),
            closed,
            requests,
            bytes_sent: counter!("uringcast_bytes_sent_total", "worker" => w.clone()),
            sends_submitted: counter!("uringcast_sends_submitted_total", "worker" => w.clone()),
            splices_submitted: counter!("uringcast_splices_submitted_total", "worker" => w.clone()),
            sendfile_calls: counter!("uringcast_sendfile_calls_total", "worker" => w.clone()),
            deadline_idle: deadline("idle"),
            deadline_header: deadline("header"),
            deadline_send: deadline("send"),
            deadline_linger: deadline("linger"),
            live_skips: counter!("uringcast_live_skips_total", "worker" => w.clone()),
            live_wake_failures: counter!("uringcast_live_wake_failures_total", "worker" => w.clone()),
            live_wake_missed: counter!("uringcast_live_wake_missed_total", "worker" => w.clone()),
            uncached_chunks: counter!("uringcast_vod_uncached_chunks_total", "worker" => w.clone()),
            vod_cache: [vod_cache("hit"), vod_cache("miss"), vod_cache("stale")],
            vod_ring_openat2: vod_ring("openat2"),
            vod_ring_statx: vod_ring("statx"),
            vod_opens_abandoned: counter!("uringcast_vod_opens_abandoned_total", "worker" => w.clone()),
            hls_requests,
            hls_bytes,
            active: gauge!("uringcast_connections_active", "worker" => w),
        }
    }

    /// Hand the accumulated deltas to the recorder and reset them.
    pub fn flush(&self, stats: &mut WorkerStats) {
        fn take(c: &Counter, v: &mut u64) {
            if *v > 0 {
                c.increment(*v);
                *v = 0;
            }
        }
        take(&self.accepted, &mut stats.accepted);
        take(&self.rtmp_accepted, &mut stats.rtmp_accepted);
        take(&self.refused, &mut stats.refused);
        for (c, v) in self.closed.iter().zip(stats.closed.iter_mut()) {
            take(c, v);
        }
        for (c, v) in self.requests.iter().zip(stats.requests.iter_mut()) {
            take(c, v);
        }
        take(&self.bytes_sent, &mut stats.bytes_sent);
        take(&self.sends_submitted, &mut stats.sends_submitted);
        take(&self.splices_submitted, &mut stats.splices_submitted);
        take(&self.sendfile_calls, &mut stats.sendfile_calls);
        take(&self.deadline_idle, &mut stats.deadline_expired_idle);
        take(&self.deadline_header, &mut stats.deadline_expired_header);
        take(&self.deadline_send, &mut stats.deadline_expired_send);
        take(&self.deadline_linger, &mut stats.deadline_expired_linger);
        take(&self.live_skips, &mut stats.live_skips);
        take(&self.live_wake_failures, &mut stats.live_wake_failures);
        take(&self.live_wake_missed, &mut stats.live_wake_missed);
        take(&self.uncached_chunks, &mut stats.uncached_chunks);
        take(&self.vod_cache[0], &mut stats.vod_cache_hits);
        take(&self.vod_cache[1], &mut stats.vod_cache_misses);
        take(&self.vod_cache[2], &mut stats.vod_cache_stale);
        take(&self.vod_ring_openat2, &mut stats.vod_ring_openat2);
        take(&self.vod_ring_statx, &mut stats.vod_ring_statx);
        take(&self.vod_opens_abandoned, &mut stats.vod_opens_abandoned);
        for (counters, values) in self.hls_requests.iter().zip(stats.hls_requests.iter_mut()) {
            for (c, v) in counters.iter().zip(values.iter_mut()) {
                take(c, v);
            }
        }
        for (c, v) in self.hls_bytes.iter().zip(stats.hls_bytes.iter_mut()) {
            take(c, v);
        }
        stats.hls_streams.flush();
        self.active.set(stats.active as f64);
    }
}

impl WorkerStats {
    pub fn closed(&mut self, reason: CloseReason) {
        let index = CloseReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.closed[index] += 1;
    }

    pub fn request(&mut self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[class] += 1;
    }

    /// An HLS GET/HEAD answered with `status` and `body_bytes` of body; `stream`: the live
    /// stream it was for, if any (pushed HLS and ended streams have none).
    pub fn hls(
        &mut self,
        stream: Option<&Arc<Stream>>,
        kind: HlsKind,
        status: u16,
        body_bytes: u64,
    ) {
        let k = kind as usize;
        self.hls_requests[k][hls_status_index(status)] += 1;
        self.hls_bytes[k] += body_bytes;
        if let Some(stream) = stream {
            self.hls_streams.count(stream, kind, body_bytes);
        }
    }
}
