//! What the HTTP API (and through it the console, [`super::console`]) and `/metrics` say about
//! the live streams. Text and JSON built from the registry; no fds, no I/O.

use std::fmt::Write as _;

use crate::media::stream::Registry;

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
    /// From onMetaData when the publisher sent it, else measured from the frames received.
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
    bytes_in: u64,
    bytes_out: u64,
    video_frames: u64,
    audio_frames: u64,
    keyframes: u64,
    timestamp_corrections: u64,
    skips: u64,
    slow_reader_disconnects: u64,
    ring_bytes: usize,
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
    StreamFigures {
        app: s.app.clone(),
        name: s.name.clone(),
        publishing: s.publishing.load(Relaxed),
        video_codec: codec_name(info.video_codec),
        audio_codec: codec_name(info.audio_codec),
        width: info.width,
        height: info.height,
        fps: info.fps.or(measured_fps),
        ingest_bitrate_kbps: (bytes_in * 8).checked_div(media_ms).unwrap_or(0),
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
        bytes_in,
        bytes_out: s.stats.bytes_out.load(Relaxed),
        video_frames,
        audio_frames: s.stats.audio_frames.load(Relaxed),
        keyframes: s.stats.keyframes.load(Relaxed),
        timestamp_corrections: s.stats.timestamp_corrections.load(Relaxed),
        skips: s.stats.skips.load(Relaxed),
        slow_reader_disconnects: s.stats.slow_disconnects.load(Relaxed),
        ring_bytes: s.flv.retained_bytes(),
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
        "uringcast_stream_ring_bytes",
        "gauge",
        "Bytes retained in the stream's chunk ring.",
        |f| f.ring_bytes as f64,
    ),
    (
        "uringcast_stream_ingest_bitrate_kbps",
        "gauge",
        "Average ingest bitrate since the stream started.",
        |f| f.ingest_bitrate_kbps as f64,
    ),
    (
        "uringcast_stream_gop_interval_ms",
        "gauge",
        "Time between the last two keyframes.",
        |f| f.gop_interval_ms as f64,
    ),
    (
        "uringcast_stream_fps",
        "gauge",
        "Frame rate (onMetaData, else measured).",
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
    let _ = writeln!(
        out,
        "# HELP uringcast_streams Live streams.\n# TYPE uringcast_streams gauge\nuringcast_streams {}",
        figures.len()
    );
    let (used, max) = registry.memory();
    let _ = writeln!(
        out,
        "# HELP uringcast_live_memory_bytes Bytes retained by every live stream's chunk ring.\n\
         # TYPE uringcast_live_memory_bytes gauge\nuringcast_live_memory_bytes {used}\n\
         # HELP uringcast_live_memory_max_bytes The live memory budget (live.memory_max).\n\
         # TYPE uringcast_live_memory_max_bytes gauge\nuringcast_live_memory_max_bytes {max}"
    );
}
