//! What the HTTP API (and through it the console, [`super::console`]) and `/metrics` say about
//! the live streams. Text and JSON built from the registry; no fds, no I/O.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::media::qos::{BOUNDS, FIRST_BYTE_BUCKETS_MS, LAG_BUCKETS_MS, LocalHistogram};
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use crate::app::auth::Credentials;
use crate::config::{ADMIN_TOKEN_BYTES_MIN, AdminConfig, ConfigError};
use crate::media::stream::Registry;

/// Who may use the admin API and the status page (`[admin]`): clients whose address is in
/// `admin.allow`, and any client with `Authorization: Bearer {admin.token}`.
pub struct AdminAccess {
    allow: Vec<IpNet>,
    token: Option<Vec<u8>>,
}

/// Why an admin request is refused: the status (401 asks for the token with
/// `WWW-Authenticate: Bearer`) and a message naming the keys to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRefusal {
    pub status: u16,
    pub message: &'static str,
}

impl AdminAccess {
    /// From `[admin]`; the error names the bad key.
    pub fn new(config: &AdminConfig) -> Result<AdminAccess, ConfigError> {
        let mut allow = Vec::with_capacity(config.allow.len());
        for net in &config.allow {
            let parsed = net.parse::<IpNet>().map_err(|e| ConfigError {
                key: "admin.allow".into(),
                problem: format!(
                    "`{net}` is not a network in CIDR notation such as 10.0.0.0/8 ({e})"
                ),
            })?;
            allow.push(parsed);
        }
        if let Some(token) = &config.token
            && token.len() < ADMIN_TOKEN_BYTES_MIN
        {
            return Err(ConfigError {
                key: "admin.token".into(),
                problem: format!(
                    "the token has {} bytes; at least {ADMIN_TOKEN_BYTES_MIN} are needed",
                    token.len()
                ),
            });
        }
        Ok(AdminAccess {
            allow,
            token: config.token.as_ref().map(|t| t.as_bytes().to_vec()),
        })
    }

    /// Whether a client at `client` that sent `authorization` may use the API.
    pub fn check(
        &self,
        client: Option<IpAddr>,
        authorization: Option<&str>,
    ) -> Result<(), AdminRefusal> {
        let bearer = authorization.and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().as_bytes())
        });
        if let (Some(expected), Some(sent)) = (&self.token, bearer)
            && bool::from(expected.as_slice().ct_eq(sent))
        {
            return Ok(());
        }
        // A v4 client of a dual-stack listener shows as ::ffff:a.b.c.d.
        if let Some(ip) = client.map(|ip| ip.to_canonical())
            && self.allow.iter().any(|net| net.contains(&ip))
        {
            return Ok(());
        }
        if self.token.is_some() && authorization.is_none() {
            return Err(AdminRefusal {
                status: 401,
                message: "the admin API needs a bearer token (admin.token) or a client address in admin.allow",
            });
        }
        Err(AdminRefusal {
            status: 403,
            message: "client address not in admin.allow and no valid bearer token (admin.token)",
        })
    }
}

/// One live session as `/api/v1/sessions` lists it.
#[derive(serde::Serialize, Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub id: u64,
    /// "http-flv", "http-ts" or "rtmp".
    pub protocol: &'static str,
    /// "publish" or "play".
    pub role: &'static str,
    /// The client's address and port.
    pub client: Option<String>,
    /// `app/name` (never the query: keys and tokens stay out).
    pub stream: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub age_s: u64,
}

/// `/api/v1/sessions`.
pub fn sessions_json(sessions: &[SessionView]) -> String {
    let mut text = serde_json::json!({ "sessions": sessions }).to_string();
    text.push('\n');
    text
}

/// The 404 of a `DELETE` that names nothing.
pub fn not_found_json(what: &str) -> String {
    let mut text = serde_json::json!({ "error": format!("no such {what}") }).to_string();
    text.push('\n');
    text
}

fn codec_name(codec: Option<crate::media::unit::Codec>) -> Option<&'static str> {
    use crate::media::unit::Codec;
    codec.map(|c| match c {
        Codec::H264 => "h264",
        Codec::Hevc => "hevc",
        Codec::Av1 => "av1",
        Codec::Vp9 => "vp9",
        Codec::Aac => "aac",
        Codec::Mp3 => "mp3",
        Codec::Opus => "opus",
        Codec::None => "none",
        Codec::Other(_) => "other",
    })
}

/// A stream's figures, read once per request for both `/api/v1/streams` and `/metrics`.
#[derive(serde::Serialize)]
struct StreamFigures {
    app: String,
    name: String,
    publishing: bool,
    video_codec: Option<&'static str>,
    audio_codec: Option<&'static str>,
    width: Option<u32>,
    height: Option<u32>,
    /// Measured over the QoS window; before a window has frames, onMetaData's framerate or the
    /// H.264 SPS timing, else the average since the stream started.
    fps: Option<f64>,
    /// Average since the stream started (the console charts the rate from `bytes_in`).
    ingest_bitrate_kbps: u64,
    gop_interval_ms: u64,
    uptime_ms: u64,
    publishes: u64,
    readers: Readers,
    /// The stream's HLS may be asked for (`hls.enabled`).
    hls_enabled: bool,
    /// HLS segments are being made: a player asked within `hls.idle_ms` (HLS players are not
    /// counted one by one), or the stream is recorded.
    hls_segmenting: bool,
    /// HLS GET/HEAD requests answered for the stream while it is live, by kind (any status;
    /// `uringcast_hls_requests_total` has them by status, for every stream), and the segment
    /// body bytes answered (a range: its length; HEAD: none).
    hls_requests: HlsRequests,
    hls_segment_bytes: u64,
    bytes_in: u64,
    bytes_out: u64,
    video_frames: u64,
    audio_frames: u64,
    keyframes: u64,
    timestamp_corrections: u64,
    skips: u64,
    slow_reader_disconnects: u64,
    ring_bytes: usize,
    /// Ingest QoS over `qos_window_ms` (see `media::qos`).
    qos_window_ms: u64,
    gop_min_ms: Option<u64>,
    gop_avg_ms: Option<u64>,
    gop_max_ms: Option<u64>,
    jitter_p50_ms: Option<u64>,
    jitter_p99_ms: Option<u64>,
    sequence_header_changes: u64,
    /// Delivery: frames sent to readers and skipped by lagging readers, and the ratio
    /// skipped / (sent + skipped).
    frames_sent: u64,
    frames_skipped: u64,
    frame_drop_ratio: f64,
    /// Quantiles of the readers' lag and first-byte histograms (a bucket's upper bound; the
    /// top bucket reports its lower bound).
    reader_lag_p50_ms: Option<u64>,
    reader_lag_p99_ms: Option<u64>,
    first_byte_p50_ms: Option<u64>,
    first_byte_p99_ms: Option<u64>,
    #[serde(skip)]
    reader_lag: LocalHistogram,
    #[serde(skip)]
    first_byte: LocalHistogram,
}

#[derive(serde::Serialize)]
struct HlsRequests {
    playlist: u64,
    segment: u64,
}

#[derive(serde::Serialize)]
struct Readers {
    flv: u32,
    rtmp: u32,
    ts: u32,
}

fn stream_figures(s: &crate::media::stream::Stream, now_ms: u64) -> StreamFigures {
    use std::sync::atomic::Ordering::Relaxed;
    let info = s.info.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let bytes_in = s.stats.bytes_in.load(Relaxed);
    let media_ms = s.stats.last_dts_ms.load(Relaxed);
    let video_frames = s.stats.video_frames.load(Relaxed);
    let measured_fps =
        (media_ms > 0 && video_frames > 1).then(|| video_frames as f64 * 1000.0 / media_ms as f64);
    let qos = s.qos.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let frames_sent = s.stats.frames_sent.load(Relaxed);
    let frames_skipped = s.stats.frames_skipped.load(Relaxed);
    let reader_lag = s.reader_lag.read();
    let first_byte = s.first_byte.read();
    let quantile = |h: &LocalHistogram, bounds: &[u64; BOUNDS], q: f64| {
        h.quantile(bounds, q).map(|v| v.min(bounds[BOUNDS - 1]))
    };
    StreamFigures {
        app: s.app.clone(),
        name: s.name.clone(),
        publishing: s.publishing.load(Relaxed),
        video_codec: codec_name(info.video_codec),
        audio_codec: codec_name(info.audio_codec),
        width: info.width,
        height: info.height,
        // Measured over the window; the declared rate (onMetaData) until there is a window.
        fps: qos.fps.or(info.fps).or(measured_fps),
        ingest_bitrate_kbps: if qos.bitrate_kbps > 0 {
            qos.bitrate_kbps
        } else {
            (bytes_in * 8).checked_div(media_ms).unwrap_or(0)
        },
        gop_interval_ms: s.stats.gop_interval_ms.load(Relaxed),
        uptime_ms: now_ms.saturating_sub(s.started_at_ms),
        publishes: info.publishes,
        readers: Readers {
            flv: s.stats.readers_flv.load(Relaxed),
            rtmp: s.stats.readers_rtmp.load(Relaxed),
            ts: s.stats.readers_ts.load(Relaxed),
        },
        hls_enabled: s.hls_enabled(),
        hls_segmenting: s.hls.load().is_some(),
        hls_requests: HlsRequests {
            playlist: s.stats.hls_playlist_requests.load(Relaxed),
            segment: s.stats.hls_segment_requests.load(Relaxed),
        },
        hls_segment_bytes: s.stats.hls_segment_bytes.load(Relaxed),
        bytes_in,
        bytes_out: s.stats.bytes_out.load(Relaxed),
        video_frames,
        audio_frames: s.stats.audio_frames.load(Relaxed),
        keyframes: s.stats.keyframes.load(Relaxed),
        timestamp_corrections: s.stats.timestamp_corrections.load(Relaxed),
        skips: s.stats.skips.load(Relaxed),
        slow_reader_disconnects: s.stats.slow_disconnects.load(Relaxed),
        ring_bytes: s.flv.retained_bytes(),
        qos_window_ms: qos.window_ms,
        gop_min_ms: qos.gop_min_ms,
        gop_avg_ms: qos.gop_avg_ms,
        gop_max_ms: qos.gop_max_ms,
        jitter_p50_ms: qos.jitter_p50_ms,
        jitter_p99_ms: qos.jitter_p99_ms,
        sequence_header_changes: qos.sequence_header_changes,
        frames_sent,
        frames_skipped,
        frame_drop_ratio: if frames_sent + frames_skipped == 0 {
            0.0
        } else {
            frames_skipped as f64 / (frames_sent + frames_skipped) as f64
        },
        reader_lag_p50_ms: quantile(&reader_lag, &LAG_BUCKETS_MS, 0.5),
        reader_lag_p99_ms: quantile(&reader_lag, &LAG_BUCKETS_MS, 0.99),
        first_byte_p50_ms: quantile(&first_byte, &FIRST_BYTE_BUCKETS_MS, 0.5),
        first_byte_p99_ms: quantile(&first_byte, &FIRST_BYTE_BUCKETS_MS, 0.99),
        reader_lag,
        first_byte,
    }
}

/// Where players find the media: the public listeners' bound ports (the console builds its
/// URLs from these and the host it was loaded from, since it may be served on another port).
#[derive(serde::Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayPorts {
    pub http_port: u16,
    /// None: RTMP is off.
    pub rtmp_port: Option<u16>,
}

/// The host part of the media URLs handed to the console: the host the client reached the
/// admin listener by (its `Host` field, without the port: media is on the public listener's),
/// or, when there is none or it is not a plain host name or address, `bound` (the public
/// listener's address; loopback when it listens on every address).
pub fn media_host(host_field: Option<&str>, bound: IpAddr) -> String {
    let from_field = host_field.and_then(|field| {
        let field = field.trim();
        let host = if field.starts_with('[') {
            // [v6]:port or [v6]
            let end = field.find(']')?;
            let inside = field.get(1..end)?;
            inside.parse::<std::net::Ipv6Addr>().ok()?;
            &field[..=end]
        } else {
            let host = field.split_once(':').map_or(field, |(h, _)| h);
            let name_like = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_');
            if !name_like {
                return None;
            }
            host
        };
        Some(host.to_string())
    });
    from_field.unwrap_or_else(|| {
        let ip = if bound.is_unspecified() {
            match bound {
                IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            }
        } else {
            bound
        };
        match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        }
    })
}

/// `/api/v1/streams/{app}/{stream}/play`: where to play one stream, with the credentials the
/// play policy needs written into every URL when the server can mint them
/// ([`Auth::mint`](crate::app::auth::Auth::mint)): `credentials` says which (`none`, `key`,
/// `signed` with its `expires`, or `external`: the auth service decides, so the operator must
/// supply them, `needs_credentials`), and `note` what the operator should know.
pub fn play_urls_json(
    app: &str,
    name: &str,
    host: &str,
    play: PlayPorts,
    credentials: &Credentials,
) -> String {
    let query = credentials.query();
    let with_query = |url: String| match &query {
        Some(q) => format!("{url}?{q}"),
        None => url,
    };
    let http = format!("http://{host}:{}", play.http_port);
    let rtmp = play
        .rtmp_port
        .map(|port| with_query(format!("rtmp://{host}:{port}/{app}/{name}")));
    let policy = format!("auth.play (or auth.apps.{app}.play)");
    let note = match credentials {
        Credentials::Open | Credentials::Signed { .. } => None,
        Credentials::Loopback => Some(format!(
            "{policy} is loopback: these URLs play only from the server's own machine"
        )),
        Credentials::Key(_) => Some(format!(
            "{policy} is key: these URLs carry a play key; share them as you would the key"
        )),
        Credentials::External => Some(format!(
            "{policy} is http: the auth service decides, so the server cannot add credentials; append what it accepts to the URLs (the console's \"credentials (query)\" field)"
        )),
    };
    let mut text = serde_json::json!({
        "app": app,
        "name": name,
        "flv": with_query(format!("{http}/{app}/{name}.flv")),
        "ts": with_query(format!("{http}/{app}/{name}.ts")),
        "hls": with_query(format!("{http}/{app}/{name}/index.m3u8")),
        "rtmp": rtmp,
        "credentials": credentials.kind(),
        "query": query,
        "expires": credentials.expires(),
        "needs_credentials": *credentials == Credentials::External,
        "note": note,
    })
    .to_string();
    text.push('\n');
    text
}

/// `/api/v1/streams`: where to play, and every live stream with its figures.
pub fn streams_json(registry: &Registry, play: PlayPorts, now_ms: u64) -> String {
    let streams: Vec<StreamFigures> = registry
        .list()
        .iter()
        .map(|s| stream_figures(s, now_ms))
        .collect();
    let mut text = serde_json::json!({ "play": play, "streams": streams }).to_string();
    text.push('\n');
    text
}

/// One per-stream Prometheus series: name, type, help, value.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&StreamFigures) -> f64,
);

/// The per-stream series of `/metrics`: the `/api/v1/streams` figures.
const STREAM_SERIES: &[Series] = &[
    (
        "uringcast_stream_bytes_in_total",
        "counter",
        "Bytes received from the publisher.",
        |f| f.bytes_in as f64,
    ),
    (
        "uringcast_stream_bytes_out_total",
        "counter",
        "Bytes sent to readers.",
        |f| f.bytes_out as f64,
    ),
    (
        "uringcast_stream_hls_segment_bytes_total",
        "counter",
        "HLS segment body bytes answered (a range: its length; HEAD: none).",
        |f| f.hls_segment_bytes as f64,
    ),
    (
        "uringcast_stream_video_frames_total",
        "counter",
        "Video frames published.",
        |f| f.video_frames as f64,
    ),
    (
        "uringcast_stream_audio_frames_total",
        "counter",
        "Audio frames published.",
        |f| f.audio_frames as f64,
    ),
    (
        "uringcast_stream_keyframes_total",
        "counter",
        "Video keyframes published.",
        |f| f.keyframes as f64,
    ),
    (
        "uringcast_stream_skips_total",
        "counter",
        "Readers moved to the latest keyframe for lagging.",
        |f| f.skips as f64,
    ),
    (
        "uringcast_stream_slow_reader_disconnects_total",
        "counter",
        "Readers disconnected as too slow.",
        |f| f.slow_reader_disconnects as f64,
    ),
    (
        "uringcast_stream_timestamp_corrections_total",
        "counter",
        "Timestamps rebased (jumps, republish).",
        |f| f.timestamp_corrections as f64,
    ),
    (
        "uringcast_stream_frames_sent_total",
        "counter",
        "Frames (ring entries) sent to readers.",
        |f| f.frames_sent as f64,
    ),
    (
        "uringcast_stream_frames_skipped_total",
        "counter",
        "Frames lagging readers skipped (moved to the latest keyframe).",
        |f| f.frames_skipped as f64,
    ),
    (
        "uringcast_stream_frame_drop_ratio",
        "gauge",
        "Frames skipped by lagging readers / (sent + skipped), since the stream started.",
        |f| f.frame_drop_ratio,
    ),
    (
        "uringcast_stream_sequence_header_changes_total",
        "counter",
        "Sequence headers that differed from the previous one (encoder restarts, settings).",
        |f| f.sequence_header_changes as f64,
    ),
    (
        "uringcast_stream_gop_min_seconds",
        "gauge",
        "Shortest keyframe interval in the QoS window (0: fewer than two keyframes).",
        |f| f.gop_min_ms.unwrap_or(0) as f64 / 1000.0,
    ),
    (
        "uringcast_stream_gop_avg_seconds",
        "gauge",
        "Average keyframe interval in the QoS window.",
        |f| f.gop_avg_ms.unwrap_or(0) as f64 / 1000.0,
    ),
    (
        "uringcast_stream_gop_max_seconds",
        "gauge",
        "Longest keyframe interval in the QoS window.",
        |f| f.gop_max_ms.unwrap_or(0) as f64 / 1000.0,
    ),
    (
        "uringcast_stream_jitter_p50_seconds",
        "gauge",
        "Median arrival jitter (arrival time against media time) in the QoS window.",
        |f| f.jitter_p50_ms.unwrap_or(0) as f64 / 1000.0,
    ),
    (
        "uringcast_stream_jitter_p99_seconds",
        "gauge",
        "99th percentile arrival jitter in the QoS window.",
        |f| f.jitter_p99_ms.unwrap_or(0) as f64 / 1000.0,
    ),
    (
        "uringcast_stream_ring_bytes",
        "gauge",
        "Bytes retained in the stream's chunk ring.",
        |f| f.ring_bytes as f64,
    ),
    (
        "uringcast_stream_ingest_bitrate_kbps",
        "gauge",
        "Ingest bitrate over the QoS window.",
        |f| f.ingest_bitrate_kbps as f64,
    ),
    (
        "uringcast_stream_gop_interval_seconds",
        "gauge",
        "Time between the last two keyframes.",
        |f| f.gop_interval_ms as f64 / 1000.0,
    ),
    (
        "uringcast_stream_fps",
        "gauge",
        "Frame rate measured over the QoS window (onMetaData's until then).",
        |f| f.fps.unwrap_or(0.0),
    ),
    (
        "uringcast_stream_uptime_seconds",
        "gauge",
        "Time since the stream was first published.",
        |f| f.uptime_ms as f64 / 1000.0,
    ),
    (
        "uringcast_stream_publishing",
        "gauge",
        "1 while a publisher is connected.",
        |f| f64::from(u8::from(f.publishing)),
    ),
];

/// Per-stream series appended to `/metrics` (labels bounded: one set per live stream; with
/// `metrics.stream_labels = false` one unlabelled sum per series — gauges such as fps then
/// make little sense, which is the price of unbounded stream counts).
pub fn stream_metrics(registry: &Registry, labels: bool, now_ms: u64, out: &mut String) {
    let figures: Vec<StreamFigures> = registry
        .list()
        .iter()
        .map(|s| stream_figures(s, now_ms))
        .collect();
    for (name, kind, help, value) in STREAM_SERIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        if labels {
            for f in &figures {
                let _ = writeln!(
                    out,
                    "{name}{{stream=\"{}/{}\"}} {}",
                    f.app,
                    f.name,
                    value(f)
                );
            }
        } else {
            let total: f64 = figures.iter().map(value).sum();
            let _ = writeln!(out, "{name} {total}");
        }
    }
    let name = "uringcast_stream_readers";
    let _ = writeln!(
        out,
        "# HELP {name} Readers attached, by protocol.\n# TYPE {name} gauge"
    );
    for (protocol, count) in [
        (
            "flv",
            (|f: &StreamFigures| f.readers.flv) as fn(&StreamFigures) -> u32,
        ),
        ("rtmp", |f| f.readers.rtmp),
        ("ts", |f| f.readers.ts),
    ] {
        if labels {
            for f in &figures {
                let _ = writeln!(
                    out,
                    "{name}{{stream=\"{}/{}\",protocol=\"{protocol}\"}} {}",
                    f.app,
                    f.name,
                    count(f)
                );
            }
        } else {
            let total: u32 = figures.iter().map(count).sum();
            let _ = writeln!(out, "{name}{{protocol=\"{protocol}\"}} {total}");
        }
    }
    let name = "uringcast_stream_hls_requests_total";
    let _ = writeln!(
        out,
        "# HELP {name} HLS GET and HEAD requests answered, by kind.\n# TYPE {name} counter"
    );
    for (kind, count) in [
        (
            "playlist",
            (|f: &StreamFigures| f.hls_requests.playlist) as fn(&StreamFigures) -> u64,
        ),
        ("segment", |f| f.hls_requests.segment),
    ] {
        if labels {
            for f in &figures {
                let _ = writeln!(
                    out,
                    "{name}{{stream=\"{}/{}\",kind=\"{kind}\"}} {}",
                    f.app,
                    f.name,
                    count(f)
                );
            }
        } else {
            let total: u64 = figures.iter().map(count).sum();
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {total}");
        }
    }
    for (name, help, bounds, histogram) in [
        (
            "uringcast_stream_reader_lag_seconds",
            "Readers' lag behind the newest frame after each completed send.",
            &LAG_BUCKETS_MS,
            (|f: &StreamFigures| &f.reader_lag) as fn(&StreamFigures) -> &LocalHistogram,
        ),
        (
            "uringcast_stream_first_byte_seconds",
            "Time from a reader's connection to its first media bytes out.",
            &FIRST_BYTE_BUCKETS_MS,
            |f| &f.first_byte,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        if labels {
            for f in &figures {
                let label = format!("stream=\"{}/{}\",", f.app, f.name);
                write_histogram(out, name, &label, bounds, histogram(f));
            }
        } else {
            let mut total = LocalHistogram::default();
            for f in &figures {
                let h = histogram(f);
                for (t, c) in total.counts.iter_mut().zip(h.counts) {
                    *t += c;
                }
                total.sum_ms += h.sum_ms;
            }
            write_histogram(out, name, "", bounds, &total);
        }
    }
    let _ = writeln!(
        out,
        "# HELP uringcast_streams Live streams.\n# TYPE uringcast_streams gauge\nuringcast_streams {}",
        figures.len()
    );
    let (used, max) = registry.memory();
    let _ = writeln!(
        out,
        "# HELP uringcast_live_memory_bytes Bytes retained by every live stream's chunk ring (FLV and TS) and by the HLS segments held in memory.\n\
         # TYPE uringcast_live_memory_bytes gauge\nuringcast_live_memory_bytes {used}\n\
         # HELP uringcast_live_memory_max_bytes The live memory budget (live.memory_max).\n\
         # TYPE uringcast_live_memory_max_bytes gauge\nuringcast_live_memory_max_bytes {max}"
    );
}

/// One Prometheus histogram's series (`label` is empty or ends with a comma).
fn write_histogram(
    out: &mut String,
    name: &str,
    label: &str,
    bounds: &[u64; BOUNDS],
    h: &LocalHistogram,
) {
    let mut cumulative = 0;
    for (i, count) in h.counts.iter().enumerate() {
        cumulative += count;
        let le = match bounds.get(i) {
            Some(ms) => format!("{}", *ms as f64 / 1000.0),
            None => "+Inf".to_string(),
        };
        let _ = writeln!(out, "{name}_bucket{{{label}le=\"{le}\"}} {cumulative}");
    }
    let label = label.trim_end_matches(',');
    let braces = if label.is_empty() {
        String::new()
    } else {
        format!("{{{label}}}")
    };
    let _ = writeln!(out, "{name}_sum{braces} {}", h.sum_ms as f64 / 1000.0);
    let _ = writeln!(out, "{name}_count{braces} {cumulative}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(allow: &[&str], token: Option<&str>) -> AdminAccess {
        AdminAccess::new(&AdminConfig {
            listen: String::new(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
            token: token.map(str::to_string),
            ..AdminConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn admin_access_by_network_or_bearer_token() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let outside: IpAddr = "192.0.2.7".parse().unwrap();
        let a = access(&["127.0.0.0/8", "::1/128"], None);
        assert_eq!(a.check(Some(loopback), None), Ok(()));
        assert_eq!(a.check(Some(mapped), None), Ok(()));
        assert_eq!(a.check(Some("::1".parse().unwrap()), None), Ok(()));
        assert_eq!(a.check(Some(outside), None).unwrap_err().status, 403);
        assert_eq!(a.check(None, None).unwrap_err().status, 403);
        // No token configured: a bearer token opens nothing.
        assert_eq!(
            a.check(Some(outside), Some("Bearer anything-at-all-here"))
                .unwrap_err()
                .status,
            403
        );

        let token = "0123456789abcdef-secret";
        let t = access(&["10.0.0.0/8"], Some(token));
        let refusal = t.check(Some(loopback), None).unwrap_err();
        assert_eq!(refusal.status, 401);
        assert!(refusal.message.contains("admin.token") && refusal.message.contains("admin.allow"));
        assert_eq!(
            t.check(Some(loopback), Some(&format!("Bearer {token}"))),
            Ok(())
        );
        assert_eq!(
            t.check(Some(outside), Some(&format!("bearer  {token} "))),
            Ok(())
        );
        for wrong in [
            "Bearer 0123456789abcdef-secreT",
            "Bearer 0123456789abcdef",
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "",
        ] {
            let refusal = t.check(Some(loopback), Some(wrong)).unwrap_err();
            assert_eq!(refusal.status, 403, "{wrong:?}");
            assert!(refusal.message.contains("admin.allow"));
        }
        assert_eq!(t.check(Some("10.1.2.3".parse().unwrap()), None), Ok(()));
    }

    #[test]
    fn admin_config_errors_name_the_key() {
        let bad = |allow: &[&str], token: Option<&str>| {
            AdminAccess::new(&AdminConfig {
                listen: String::new(),
                allow: allow.iter().map(|s| s.to_string()).collect(),
                token: token.map(str::to_string),
                ..AdminConfig::default()
            })
            .err()
            .map(|e| e.key)
        };
        assert_eq!(bad(&["10.0.0.0/8"], None), None);
        assert_eq!(bad(&["10.0.0.0"], None).as_deref(), Some("admin.allow"));
        assert_eq!(bad(&["fe80::/129"], None).as_deref(), Some("admin.allow"));
        assert_eq!(bad(&[], Some("too-short")).as_deref(), Some("admin.token"));
    }

    #[test]
    fn sessions_json_lists_the_fields() {
        let text = sessions_json(&[SessionView {
            id: 7,
            protocol: "rtmp",
            role: "publish",
            client: Some("127.0.0.1:5000".into()),
            stream: "live/cam".into(),
            bytes_in: 10,
            bytes_out: 20,
            age_s: 3,
        }]);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let s = &v["sessions"][0];
        assert_eq!(s["id"], 7);
        assert_eq!(s["protocol"], "rtmp");
        assert_eq!(s["role"], "publish");
        assert_eq!(s["client"], "127.0.0.1:5000");
        assert_eq!(s["stream"], "live/cam");
        assert_eq!(s["bytes_in"], 10);
        assert_eq!(s["bytes_out"], 20);
        assert_eq!(s["age_s"], 3);
        assert_eq!(
            not_found_json("session"),
            "{\"error\":\"no such session\"}\n"
        );
    }

    #[test]
    fn media_host_is_the_host_the_console_was_reached_by() {
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(media_host(Some("box.example:8081"), any), "box.example");
        assert_eq!(media_host(Some("10.1.2.3"), any), "10.1.2.3");
        assert_eq!(media_host(Some("[::1]:8081"), any), "[::1]");
        assert_eq!(media_host(Some("[fe80::1]"), any), "[fe80::1]");
        // Nothing usable: the public listener's address, loopback for a wildcard.
        for bad in [
            None,
            Some(""),
            Some("a b"),
            Some("x\"y"),
            Some("[nope]:1"),
            Some("a/b"),
        ] {
            assert_eq!(media_host(bad, any), "127.0.0.1", "{bad:?}");
            assert_eq!(media_host(bad, one), "192.0.2.1", "{bad:?}");
        }
        assert_eq!(media_host(None, "::".parse().unwrap()), "[::1]");
        assert_eq!(
            media_host(None, "2001:db8::5".parse().unwrap()),
            "[2001:db8::5]"
        );
    }

    #[test]
    fn play_urls_carry_what_each_play_mode_needs() {
        use crate::app::auth::{Action, Auth, AuthConfig, sign};
        const SECRET: &str = "0123456789abcdef-secret";
        let auth = |toml: &str| {
            let config: AuthConfig = toml::from_str(toml).expect("toml");
            Auth::new(&config).expect("valid")
        };
        let ports = PlayPorts {
            http_port: 8080,
            rtmp_port: Some(1935),
        };
        let now = 1_800_000_000;
        let json = |auth: &Auth, app: &str, play: PlayPorts| -> serde_json::Value {
            let credentials = auth.mint(Action::Play, app, "cam", now, 600);
            let text = play_urls_json(app, "cam", "h.example", play, &credentials);
            assert!(text.ends_with('\n'));
            serde_json::from_str(&text).expect("json")
        };

        // open: bare URLs.
        let j = json(&auth(""), "live", ports);
        assert_eq!(j["app"], "live");
        assert_eq!(j["name"], "cam");
        assert_eq!(j["flv"], "http://h.example:8080/live/cam.flv");
        assert_eq!(j["ts"], "http://h.example:8080/live/cam.ts");
        assert_eq!(j["hls"], "http://h.example:8080/live/cam/index.m3u8");
        assert_eq!(j["rtmp"], "rtmp://h.example:1935/live/cam");
        assert_eq!(j["credentials"], "none");
        assert_eq!(j["needs_credentials"], false);
        assert!(j["expires"].is_null() && j["query"].is_null() && j["note"].is_null());
        // RTMP off: no RTMP URL.
        let no_rtmp = PlayPorts {
            http_port: 8080,
            rtmp_port: None,
        };
        assert!(json(&auth(""), "live", no_rtmp)["rtmp"].is_null());

        // signed: a token for play of this stream, in every URL.
        let signed = auth(&format!(
            "play = \"signed\"\nsecrets = [\"{SECRET}\", \"another-secret-0123456\"]\n"
        ));
        let j = json(&signed, "live", ports);
        let expires = now + 600;
        let query = format!(
            "expires={expires}&token={}",
            sign(SECRET.as_bytes(), Action::Play, "live", "cam", expires)
        );
        assert_eq!(j["credentials"], "signed");
        assert_eq!(j["expires"], expires);
        assert_eq!(j["query"], query.as_str());
        assert_eq!(j["needs_credentials"], false);
        assert_eq!(
            j["flv"],
            format!("http://h.example:8080/live/cam.flv?{query}")
        );
        assert_eq!(
            j["ts"],
            format!("http://h.example:8080/live/cam.ts?{query}")
        );
        assert_eq!(
            j["hls"],
            format!("http://h.example:8080/live/cam/index.m3u8?{query}")
        );
        assert_eq!(j["rtmp"], format!("rtmp://h.example:1935/live/cam?{query}"));
        let flv = j["flv"].as_str().unwrap();
        let (_, q) = flv.split_once('?').unwrap();
        assert!(
            signed
                .check(Action::Play, "live", "cam", Some(q), None, now)
                .is_ok()
        );

        // key (per app), loopback and http.
        let mixed = auth(
            "keys = [\"k 1\"]\nhttp_url = \"http://127.0.0.1:1/\"\n\
             [apps.paid]\nplay = \"key\"\n[apps.box]\nplay = \"loopback\"\n\
             [apps.svc]\nplay = \"http\"\n",
        );
        let j = json(&mixed, "paid", ports);
        assert_eq!(j["credentials"], "key");
        assert_eq!(j["query"], "key=k%201");
        assert_eq!(j["flv"], "http://h.example:8080/paid/cam.flv?key=k%201");
        assert_eq!(j["rtmp"], "rtmp://h.example:1935/paid/cam?key=k%201");
        assert!(j["expires"].is_null());
        assert!(j["note"].as_str().unwrap().contains("key"));
        assert_eq!(j["needs_credentials"], false);

        let j = json(&mixed, "box", ports);
        assert_eq!(j["credentials"], "none");
        assert_eq!(j["flv"], "http://h.example:8080/box/cam.flv");
        let note = j["note"].as_str().unwrap();
        assert!(
            note.contains("loopback") && note.contains("own machine"),
            "{note}"
        );
        assert_eq!(j["needs_credentials"], false);

        let j = json(&mixed, "svc", ports);
        assert_eq!(j["credentials"], "external");
        assert_eq!(j["needs_credentials"], true);
        assert_eq!(j["flv"], "http://h.example:8080/svc/cam.flv");
        assert!(j["query"].is_null() && j["expires"].is_null());
        let note = j["note"].as_str().unwrap();
        assert!(
            note.contains("auth.apps.svc.play") && note.contains("credentials"),
            "{note}"
        );

        // The default app of that policy is open.
        assert_eq!(json(&mixed, "live", ports)["credentials"], "none");
    }
}
