//! Typed configuration: embedded defaults ← TOML file ← command-line flags.
//!
//! Every limit the server enforces is a named key here with a default that suits a small
//! production box. `validate` runs before anything starts, so a bad value is one clear line on
//! stderr and exit code 2 (see `main.rs`), never a surprise under load.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::vod::SymlinkPolicy;

/// Command line. Flags override the file; the file overrides the embedded defaults.
#[derive(Parser, Debug, Default)]
#[command(
    name = "uringcast",
    version,
    about = "Thread-per-core io_uring live and on-demand video relay"
)]
pub struct Cli {
    /// TOML configuration file (optional: the embedded defaults serve ./media on :8080).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HTTP listen address, e.g. 0.0.0.0:8080 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR:PORT")]
    pub http_listen: Option<String>,
    /// RTMP listen address, e.g. 0.0.0.0:1935 (port 0 picks a free port; "" disables RTMP).
    #[arg(long, value_name = "ADDR:PORT")]
    pub rtmp_listen: Option<String>,
    /// Admin listen address (/metrics, /api, status page), e.g. 127.0.0.1:8081 (port 0 picks
    /// a free port; "" disables it).
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin_listen: Option<String>,
    /// Directory served under /vod/ (created if missing).
    #[arg(long, value_name = "DIR")]
    pub media_root: Option<PathBuf>,
    /// Worker threads (0 = one per online core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Validate the configuration, print the effective one as TOML and exit.
    #[arg(long)]
    pub check_config: bool,
}

/// The whole configuration. Unknown keys are errors, so a typo never silently does nothing.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Worker threads, one io_uring each; 0 = one per online core.
    pub workers: usize,
    /// Pin each worker to its own core.
    pub pin_workers: bool,
    pub http: HttpConfig,
    pub rtmp: RtmpConfig,
    pub vod: VodConfig,
    pub live: LiveConfig,
    pub hls: HlsConfig,
    pub auth: crate::app::auth::AuthConfig,
    pub admin: AdminConfig,
    pub access_log: AccessLogConfig,
    pub runtime: RuntimeConfig,
    pub metrics: MetricsConfig,
}

/// `[access_log]`: one line per finished request or session, written by a thread of its own.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogConfig {
    /// File to append to; "" = no access log. Reopened on SIGUSR1 (for logrotate).
    pub path: String,
    /// "combined" (nginx's, plus duration, protocol, close reason and bytes in) or "json".
    pub format: crate::app::access_log::Format,
    /// Lines queued for the writer thread at most; past it lines are dropped and counted
    /// (`uringcast_access_log_lines_dropped_total`), never waited for.
    pub queue_lines: usize,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            path: String::new(),
            format: crate::app::access_log::Format::Combined,
            queue_lines: 16_384,
        }
    }
}

/// `[admin]`: the operator's listener. `/metrics` and `/healthz` are open there; the API
/// (`/api/...`) and the status page (`/`) answer clients in `allow`, or any client that sends
/// `Authorization: Bearer TOKEN`. None of it is served on the public HTTP listener (which
/// keeps `/healthz` for load balancers).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Admin listen address ("" disables it); every worker listens there (SO_REUSEPORT).
    pub listen: String,
    /// Networks (CIDR, e.g. "10.0.0.0/8", "::1/128") whose clients may use the API and the
    /// status page without a token.
    pub allow: Vec<String>,
    /// A bearer token accepted from any address (at least 16 bytes); unset = none.
    pub token: Option<String>,
    /// Lifetime of the signed play URLs the console is handed
    /// (`/api/v1/streams/{app}/{stream}/play`) when `auth.play` is `signed`.
    pub console_token_ttl_s: u64,
}

/// Shortest `admin.token` accepted.
pub const ADMIN_TOKEN_BYTES_MIN: usize = 16;

/// `admin.console_token_ttl_s` bounds: a minute (time for a player to start) to a week.
pub const ADMIN_CONSOLE_TOKEN_TTL_S: (u64, u64) = (60, 7 * 86_400);

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// Largest request head (request line + headers); beyond it the answer is 431.
    pub header_bytes_max: usize,
    /// Longest request line; beyond it the answer is 414.
    pub request_line_bytes_max: usize,
    /// Most header fields in one request; beyond it the answer is 431.
    pub headers_max: usize,
    /// Time allowed to receive a complete request head (slowloris defence).
    pub header_timeout_ms: u64,
    /// Idle time allowed between requests on a keep-alive connection.
    pub keepalive_timeout_ms: u64,
    /// Most requests served on one connection before it is closed.
    pub keepalive_requests_max: u64,
    /// A response that makes no progress for this long is abandoned.
    pub send_timeout_ms: u64,
    /// Connections per worker; past it new connections are closed at once and counted.
    pub connections_max_per_worker: usize,
    /// After an error answer that closes the connection, read and discard what the client
    /// still sends for at most this long before closing (nginx's lingering close), so the
    /// close does not reset the connection under an answer the client has not read yet.
    /// 0 = close at once.
    pub lingering_close_ms: u64,
    /// ... and at most this many bytes: past it the client is not listening, and reading
    /// more would only spend bandwidth on it.
    pub lingering_close_bytes: u64,
    /// Value of Access-Control-Allow-Origin on every answer on a media path (`/vod/...`,
    /// live paths), errors included, with Access-Control-Expose-Headers; "" = no CORS
    /// headers at all (OPTIONS then answers 204 with Allow only).
    pub cors_allow_origin: String,
    /// Access-Control-Max-Age of a preflight answer: how long a browser may cache it
    /// (browsers cap it: Chromium at 2 h, Firefox at 24 h).
    pub cors_max_age_s: u64,
    /// Value of the Server header.
    pub server_name: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    /// RTMP listen address ("" disables RTMP); every worker listens there (SO_REUSEPORT).
    pub listen: String,
    /// Largest chunk size a peer may set (Set Chunk Size). Values above 16 MiB - 1 are
    /// equivalent to it (no message is larger); 0 and values with bit 31 set are always
    /// refused.
    pub chunk_size_max: u32,
    /// Largest message a peer may send (any type); media messages are also capped by
    /// `live.tag_bytes_max`.
    pub message_bytes_max: u32,
    /// Bytes a connection may hold in incomplete messages over all its chunk streams.
    pub buffered_bytes_max: u32,
    /// Chunk stream ids one connection may use.
    pub chunk_streams_max: u32,
    /// Message streams one connection may create (`createStream`).
    pub message_streams_max: u32,
    /// The Window Acknowledgement Size and peer bandwidth we announce: a peer acknowledges
    /// every this many bytes, and we acknowledge a publisher's bytes as often.
    pub ack_window: u32,
    /// The handshake and the connect command must be done within this long of the accept.
    pub handshake_timeout_ms: u64,
    /// A connection that neither publishes nor plays is closed after this long without a
    /// byte from the peer (a publisher is held to `live.publish_timeout_ms`, a player to
    /// `http.send_timeout_ms` like every live reader).
    pub idle_timeout_ms: u64,
}

/// Live HLS (every live stream, whatever its input, as `/{app}/{stream}/index.m3u8`) and HLS
/// pushed by encoders with HTTP PUT.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// Live HLS for every stream (segments made while players ask for them).
    pub enabled: bool,
    /// A segment is cut at the first keyframe at or after this much media time.
    pub segment_target_ms: u64,
    /// Segments listed in a live playlist.
    pub window_segments: usize,
    /// Segments kept fetchable after they leave the playlist (players still downloading).
    pub retain_segments: usize,
    /// A segment that would grow past this is cut at the next entry.
    pub segment_bytes_max: usize,
    /// Segmenting stops when no player has asked for a stream's playlist for this long (it
    /// restarts from the latest keyframe at the next request).
    pub idle_ms: u64,
    /// A playlist request for a stream that is live but has no complete segment yet waits
    /// up to this long for the first one (and as long as `live.play_wait_ms` for a stream
    /// that is not published yet).
    pub playlist_wait_ms: u64,
    /// After a stream ends, its final playlist (with EXT-X-ENDLIST) and segments stay
    /// fetchable this long.
    pub ended_keep_ms: u64,
    /// Cache-Control max-age of live playlists (segments are immutable).
    pub playlist_max_age_s: u64,
    /// Apps whose streams are recorded as HLS into `vod.root/{app}/{stream}-{start}/`.
    pub record_apps: Vec<String>,
    /// HLS pushed with PUT: the largest object (playlist or segment).
    pub push_object_bytes_max: usize,
    /// HLS pushed with PUT: bytes held per stream (objects the playlist no longer lists are
    /// dropped first).
    pub push_stream_bytes_max: usize,
    /// HLS pushed with PUT: streams held at once.
    pub push_streams_max: usize,
    /// HLS pushed with PUT: a stream with no PUT for this long is dropped.
    pub push_idle_ms: u64,
}

/// How a file body moves from the page cache to the socket.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SendPath {
    /// Linked IORING_OP_SPLICE pairs file → pipe → socket (the kernel moves page references).
    Splice,
    /// sendfile(2) on the non-blocking socket from the worker thread, POLLOUT through the ring.
    Sendfile,
    /// Per chunk: sendfile when cachestat(2) says the whole chunk is in the page cache (it cannot
    /// block then), splice otherwise (the disk wait goes to io-wq, never to the worker).
    Auto,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VodConfig {
    /// Directory served under /vod/.
    pub root: PathBuf,
    /// Whether symlinks may be followed: deny, within_root (relative links that stay inside
    /// the root; openat2 RESOLVE_BENEATH refuses absolute ones), follow (anywhere).
    pub symlinks: SymlinkPolicy,
    /// Open files kept per worker.
    pub file_cache_entries: usize,
    /// How long a cached fd and its metadata are trusted before the path is checked again
    /// (reopened beneath the root through the ring, like a miss; the same file keeps its fd).
    pub file_cache_revalidate_ms: u64,
    /// A cached fd not requested for this long is closed (nginx's `open_file_cache
    /// inactive=`), so a deleted or replaced file does not keep its disk space.
    pub file_cache_inactive_ms: u64,
    /// Cache entries the periodic sweep looks at per worker tick (idle ones are closed, and
    /// so are those whose file was deleted: one fstat each).
    pub file_cache_sweep_per_tick: usize,
    /// Pipe capacity (F_SETPIPE_SZ); one splice pair moves at most this much.
    pub pipe_bytes: usize,
    /// Idle pipes kept per worker for reuse.
    pub pipe_pool_max: usize,
    /// auto, sendfile or splice; see kernel-notes/vod-send-path.md for the measurement.
    pub send_path: SendPath,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Soft size of a stream's chunk ring; entries older than the GOP cache are dropped past it.
    pub ring_bytes: usize,
    /// Hard cap: a GOP larger than this ends the publish with a clear log.
    pub ring_bytes_hard_max: usize,
    /// Entries (tags) a ring can index; sized for several seconds of audio+video.
    pub ring_entries: usize,
    /// A reader whose cursor trails the head by more media time than this is skipped to the
    /// latest keyframe.
    pub max_lag_ms: u64,
    /// ... or by more bytes than this.
    pub max_lag_bytes: usize,
    /// Skips allowed before a reader is disconnected.
    pub max_skips: u32,
    /// Skips are counted within this window: `max_skips` skips with no gap longer than this
    /// disconnect a reader; a longer healthy stretch starts the count again.
    pub skip_window_ms: u64,
    /// Bytes one reader may have in flight in one send.
    pub reader_inflight_bytes_max: usize,
    /// SO_SNDBUF of a live reader's socket. It bounds the media the kernel buffers per viewer
    /// (memory) and makes a stalled viewer visible as lag instead of hiding seconds of media in
    /// an autotuned send buffer. 0 = leave the kernel's autotuning alone.
    pub reader_socket_send_bytes: usize,
    /// Readers stay attached this long after their publisher drops, waiting for a republish.
    pub publisher_grace_ms: u64,
    /// A play request for a stream that is not live yet waits this long for its publisher
    /// (players that connect before the encoder); 0 = answer 404 at once.
    pub play_wait_ms: u64,
    /// Streams per server.
    pub streams_max: usize,
    /// Largest FLV tag body accepted from a publisher (the FLV and RTMP size fields are 24
    /// bits, so at most 16 MiB - 1).
    pub tag_bytes_max: u32,
    /// A forward dts jump larger than this is treated as a discontinuity and rebased.
    pub timestamp_gap_max_ms: u32,
    /// A publisher that delivers no new media unit (a complete audio/video frame) for this
    /// long is dropped: bytes alone, trickled to keep the socket alive, do not count.
    pub publish_timeout_ms: u64,
    /// Largest sequence header (AVC/HEVC/AV1 configuration, AudioSpecificConfig) or onMetaData
    /// a publisher may send; every new reader is sent them, so a larger one ends the publish.
    pub header_bytes_max: usize,
    /// Write coalescing: a reader at the head waits up to this long after its worker's last
    /// flush of the stream before it sends again, so several tags go in one send (a joiner's
    /// first batch and a skip go at once). 0 = send on every new tag.
    pub send_coalesce_ms: u64,
    /// ... or until this many bytes of the stream are waiting, whichever comes first.
    pub send_coalesce_bytes: usize,
    /// Live memory budget in bytes: a new stream is refused (503) when the bytes retained by
    /// every stream's ring plus `ring_bytes` for the new one would exceed it. 0 = a quarter of
    /// the machine's physical memory.
    pub memory_max: u64,
    /// The window of a stream's ingest QoS figures (bitrate, fps, GOP min/avg/max, arrival
    /// jitter p50/p99) in the API and /metrics.
    pub qos_window_ms: u64,
}

impl LiveConfig {
    /// `memory_max` in bytes, with 0 resolved to a quarter of physical memory (MemTotal of
    /// /proc/meminfo; 1 GiB if that cannot be read).
    pub fn memory_max_bytes(&self) -> u64 {
        if self.memory_max > 0 {
            return self.memory_max;
        }
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(4 << 30);
        (total / 4).max(self.ring_bytes as u64)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Submission queue entries per worker ring.
    pub ring_entries: u32,
    /// Cap on io-wq unbound workers per worker ring (splice runs there); 0 = kernel default.
    pub iowq_unbound_max: u32,
    /// Cap on io-wq bounded workers per worker ring; 0 = kernel default.
    pub iowq_bounded_max: u32,
    /// Timer tick; deadlines are checked at this granularity.
    pub tick_ms: u64,
    /// On SIGINT/SIGTERM, in-flight responses get this long to finish.
    pub drain_timeout_ms: u64,
    /// Bytes read per receive on a connection.
    pub recv_bytes: usize,
    /// Log lines a peer can trigger (bad requests, expired deadlines, refused publishes,
    /// failed accepts...) written per worker, per kind, per second; the rest are counted and
    /// summarised once a second. 0 = only the summaries.
    pub peer_log_lines_per_second: u32,
    /// Log lines queued for the log writer thread, which writes them to stderr. Workers never
    /// write to stderr themselves; when stderr does not drain and this many lines wait, further
    /// lines are dropped and counted (`uringcast_log_lines_dropped_total`).
    pub log_queue_lines: usize,
    /// How often the main thread hands free heap memory back to the kernel with glibc's
    /// `malloc_trim(0)`; 0 = never. Without it glibc keeps what a peak of streams and readers
    /// allocated long after they are gone (kernel-notes/memory.md). No effect with other libcs.
    pub malloc_trim_interval_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Label per-stream series with the stream name (switch off for very many streams).
    pub stream_labels: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            workers: 0,
            pin_workers: true,
            http: HttpConfig::default(),
            rtmp: RtmpConfig::default(),
            vod: VodConfig::default(),
            live: LiveConfig::default(),
            hls: HlsConfig::default(),
            auth: crate::app::auth::AuthConfig::default(),
            admin: AdminConfig::default(),
            access_log: AccessLogConfig::default(),
            runtime: RuntimeConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "0.0.0.0:8080".into(),
            header_bytes_max: 8192,
            request_line_bytes_max: 4096,
            headers_max: 64,
            header_timeout_ms: 10_000,
            keepalive_timeout_ms: 30_000,
            keepalive_requests_max: 100_000,
            send_timeout_ms: 10_000,
            connections_max_per_worker: 16_384,
            lingering_close_ms: 5_000,
            // Covers what a client can have in flight when our answer reaches it on a fast
            // path (1 Gbit/s x 8 ms RTT is 1 MB), while bounding what one refused request
            // can make us read for nothing to about a hundred head buffers.
            lingering_close_bytes: 1 << 20,
            cors_allow_origin: "*".into(),
            cors_max_age_s: 7_200,
            server_name: concat!("uringcast/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            listen: "0.0.0.0:1935".into(),
            chunk_size_max: 0xFF_FFFF,
            message_bytes_max: 8 << 20,
            buffered_bytes_max: 12 << 20,
            chunk_streams_max: 64,
            message_streams_max: 8,
            ack_window: 2_500_000,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
        }
    }
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            enabled: true,
            segment_target_ms: 2000,
            window_segments: 6,
            retain_segments: 3,
            segment_bytes_max: 16 << 20,
            idle_ms: 60_000,
            playlist_wait_ms: 15_000,
            ended_keep_ms: 60_000,
            playlist_max_age_s: 1,
            record_apps: Vec::new(),
            push_object_bytes_max: 16 << 20,
            push_stream_bytes_max: 64 << 20,
            push_streams_max: 64,
            push_idle_ms: 30_000,
        }
    }
}

impl Default for VodConfig {
    fn default() -> Self {
        VodConfig {
            root: PathBuf::from("./media"),
            symlinks: SymlinkPolicy::WithinRoot,
            file_cache_entries: 1024,
            file_cache_revalidate_ms: 1000,
            file_cache_inactive_ms: 20_000,
            file_cache_sweep_per_tick: 64,
            pipe_bytes: 1 << 20,
            pipe_pool_max: 256,
            send_path: SendPath::Auto,
        }
    }
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            ring_bytes: 16 << 20,
            ring_bytes_hard_max: 64 << 20,
            ring_entries: 16_384,
            max_lag_ms: 5_000,
            max_lag_bytes: 8 << 20,
            max_skips: 5,
            skip_window_ms: 60_000,
            reader_inflight_bytes_max: 1 << 20,
            reader_socket_send_bytes: 512 << 10,
            publisher_grace_ms: 5_000,
            play_wait_ms: 0,
            streams_max: 1024,
            tag_bytes_max: (1 << 24) - 1,
            timestamp_gap_max_ms: 10_000,
            publish_timeout_ms: 10_000,
            header_bytes_max: 8 << 10,
            send_coalesce_ms: 100,
            send_coalesce_bytes: 128 << 10,
            memory_max: 0,
            qos_window_ms: 30_000,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            ring_entries: 4096,
            iowq_unbound_max: 8,
            iowq_bounded_max: 4,
            tick_ms: 100,
            drain_timeout_ms: 5_000,
            recv_bytes: 16 << 10,
            peer_log_lines_per_second: 10,
            // A few MB of formatted lines at most: minutes of normal logging, seconds of a
            // debug-level flood.
            log_queue_lines: 16_384,
            malloc_trim_interval_ms: 5_000,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "0.0.0.0:8081".into(),
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            token: None,
            console_token_ttl_s: 3600,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            stream_labels: true,
        }
    }
}

/// A configuration problem: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config error: {}: {}", self.key, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Config {
    /// Parse a TOML document. The error names the key and the problem on one line.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str::<Config>(text).map_err(|e| {
            // toml's message spans several lines with a source excerpt; keep its first line
            // and the key path it names.
            let message = e.message().replace('\n', " ");
            let key = e
                .span()
                .and_then(|span| text.get(..span.start))
                .map(key_at)
                .unwrap_or_else(|| "config".into());
            err(&key, message)
        })
    }

    /// Load the file named on the command line (if any) and apply the flags.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err("--config", format!("cannot read {}: {e}", path.display())))?;
                Config::from_toml(&text)?
            }
            None => Config::default(),
        };
        if let Some(listen) = &cli.http_listen {
            config.http.listen = listen.clone();
        }
        if let Some(listen) = &cli.rtmp_listen {
            config.rtmp.listen = listen.clone();
        }
        if let Some(listen) = &cli.admin_listen {
            config.admin.listen = listen.clone();
        }
        if let Some(root) = &cli.media_root {
            config.vod.root = root.clone();
        }
        if let Some(workers) = cli.workers {
            config.workers = workers;
        }
        config.validate()?;
        Ok(config)
    }

    /// Check every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.http_listen_addr()?;
        self.rtmp_listen_addr()?;
        self.admin_listen_addr()?;
        crate::app::api::AdminAccess::new(&self.admin)?;
        range(
            "admin.console_token_ttl_s",
            self.admin.console_token_ttl_s,
            ADMIN_CONSOLE_TOKEN_TTL_S.0,
            ADMIN_CONSOLE_TOKEN_TTL_S.1,
        )?;
        let r = &self.rtmp;
        range(
            "rtmp.chunk_size_max",
            r.chunk_size_max.into(),
            128,
            0x7FFF_FFFF,
        )?;
        range(
            "rtmp.message_bytes_max",
            r.message_bytes_max.into(),
            4096,
            0xFF_FFFF,
        )?;
        range(
            "rtmp.buffered_bytes_max",
            r.buffered_bytes_max.into(),
            r.message_bytes_max.into(),
            1 << 30,
        )?;
        range(
            "rtmp.chunk_streams_max",
            r.chunk_streams_max.into(),
            4,
            65_600,
        )?;
        range(
            "rtmp.message_streams_max",
            r.message_streams_max.into(),
            1,
            1024,
        )?;
        range("rtmp.ack_window", r.ack_window.into(), 4096, 0x7FFF_FFFF)?;
        range(
            "rtmp.handshake_timeout_ms",
            r.handshake_timeout_ms,
            100,
            3_600_000,
        )?;
        range("rtmp.idle_timeout_ms", r.idle_timeout_ms, 100, 86_400_000)?;
        if let Err(problem) = crate::app::auth::Auth::new(&self.auth) {
            return Err(err("auth", problem));
        }
        let hls = &self.hls;
        range("hls.segment_target_ms", hls.segment_target_ms, 100, 60_000)?;
        range("hls.window_segments", hls.window_segments as u64, 2, 1000)?;
        range("hls.retain_segments", hls.retain_segments as u64, 0, 1000)?;
        range(
            "hls.segment_bytes_max",
            hls.segment_bytes_max as u64,
            64 << 10,
            1 << 30,
        )?;
        range("hls.idle_ms", hls.idle_ms, 1000, 86_400_000)?;
        range("hls.playlist_wait_ms", hls.playlist_wait_ms, 0, 600_000)?;
        range("hls.ended_keep_ms", hls.ended_keep_ms, 0, 86_400_000)?;
        range("hls.playlist_max_age_s", hls.playlist_max_age_s, 0, 3600)?;
        if let Some(app) = hls
            .record_apps
            .iter()
            .find(|a| !crate::app::router::valid_live_name(a) || a.as_str() == "vod")
        {
            return Err(err(
                "hls.record_apps",
                format!("{app:?} is not an app name ([A-Za-z0-9_-], not vod)"),
            ));
        }
        range(
            "hls.push_object_bytes_max",
            hls.push_object_bytes_max as u64,
            1024,
            1 << 30,
        )?;
        range(
            "hls.push_stream_bytes_max",
            hls.push_stream_bytes_max as u64,
            hls.push_object_bytes_max as u64,
            1 << 34,
        )?;
        range(
            "hls.push_streams_max",
            hls.push_streams_max as u64,
            0,
            100_000,
        )?;
        range("hls.push_idle_ms", hls.push_idle_ms, 1000, 86_400_000)?;
        if self.workers > 1024 {
            return Err(err("workers", "must be between 0 (one per core) and 1024"));
        }
        let h = &self.http;
        range(
            "http.header_bytes_max",
            h.header_bytes_max as u64,
            256,
            1 << 20,
        )?;
        range(
            "http.request_line_bytes_max",
            h.request_line_bytes_max as u64,
            64,
            h.header_bytes_max as u64,
        )?;
        range("http.headers_max", h.headers_max as u64, 1, 128)?;
        range(
            "http.header_timeout_ms",
            h.header_timeout_ms,
            100,
            3_600_000,
        )?;
        range(
            "http.keepalive_timeout_ms",
            h.keepalive_timeout_ms,
            100,
            3_600_000,
        )?;
        range(
            "http.keepalive_requests_max",
            h.keepalive_requests_max,
            1,
            u64::MAX,
        )?;
        range("http.send_timeout_ms", h.send_timeout_ms, 100, 3_600_000)?;
        range(
            "http.connections_max_per_worker",
            h.connections_max_per_worker as u64,
            1,
            1 << 22,
        )?;
        range("http.lingering_close_ms", h.lingering_close_ms, 0, 600_000)?;
        range(
            "http.lingering_close_bytes",
            h.lingering_close_bytes,
            0,
            1 << 30,
        )?;
        if h.server_name.is_empty() || h.server_name.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(err("http.server_name", "must be non-empty printable text"));
        }
        range("http.cors_max_age_s", h.cors_max_age_s, 0, 86_400)?;
        if h.cors_allow_origin.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(err("http.cors_allow_origin", "must be printable text"));
        }
        let v = &self.vod;
        if v.root.as_os_str().is_empty() {
            return Err(err("vod.root", "must not be empty"));
        }
        range(
            "vod.file_cache_entries",
            v.file_cache_entries as u64,
            1,
            1 << 20,
        )?;
        range(
            "vod.file_cache_revalidate_ms",
            v.file_cache_revalidate_ms,
            0,
            3_600_000,
        )?;
        range(
            "vod.file_cache_inactive_ms",
            v.file_cache_inactive_ms,
            100,
            86_400_000,
        )?;
        range(
            "vod.file_cache_sweep_per_tick",
            v.file_cache_sweep_per_tick as u64,
            1,
            1 << 16,
        )?;
        range("vod.pipe_bytes", v.pipe_bytes as u64, 4096, 64 << 20)?;
        if !v.pipe_bytes.is_power_of_two() {
            return Err(err(
                "vod.pipe_bytes",
                "must be a power of two (the kernel rounds pipe sizes to pages)",
            ));
        }
        range("vod.pipe_pool_max", v.pipe_pool_max as u64, 0, 1 << 16)?;
        let l = &self.live;
        range("live.ring_bytes", l.ring_bytes as u64, 64 << 10, 4 << 30)?;
        range(
            "live.ring_bytes_hard_max",
            l.ring_bytes_hard_max as u64,
            l.ring_bytes as u64,
            8 << 30,
        )?;
        range("live.ring_entries", l.ring_entries as u64, 64, 1 << 22)?;
        if !l.ring_entries.is_power_of_two() {
            return Err(err("live.ring_entries", "must be a power of two"));
        }
        range("live.max_lag_ms", l.max_lag_ms, 100, 600_000)?;
        range(
            "live.max_lag_bytes",
            l.max_lag_bytes as u64,
            64 << 10,
            4 << 30,
        )?;
        range("live.max_skips", u64::from(l.max_skips), 0, 1_000_000)?;
        range("live.skip_window_ms", l.skip_window_ms, 100, 86_400_000)?;
        range(
            "live.reader_inflight_bytes_max",
            l.reader_inflight_bytes_max as u64,
            4096,
            64 << 20,
        )?;
        range(
            "live.reader_socket_send_bytes",
            l.reader_socket_send_bytes as u64,
            0,
            64 << 20,
        )?;
        range("live.publisher_grace_ms", l.publisher_grace_ms, 0, 600_000)?;
        range("live.play_wait_ms", l.play_wait_ms, 0, 60_000)?;
        range("live.streams_max", l.streams_max as u64, 1, 1 << 20)?;
        range(
            "live.tag_bytes_max",
            u64::from(l.tag_bytes_max),
            1024,
            (1 << 24) - 1,
        )?;
        range(
            "live.timestamp_gap_max_ms",
            u64::from(l.timestamp_gap_max_ms),
            100,
            3_600_000,
        )?;
        range(
            "live.publish_timeout_ms",
            l.publish_timeout_ms,
            100,
            3_600_000,
        )?;
        range(
            "live.header_bytes_max",
            l.header_bytes_max as u64,
            256,
            (1 << 24) - 1,
        )?;
        range("live.send_coalesce_ms", l.send_coalesce_ms, 0, 2_000)?;
        range("live.qos_window_ms", l.qos_window_ms, 1_000, 600_000)?;
        range(
            "access_log.queue_lines",
            self.access_log.queue_lines as u64,
            64,
            1 << 20,
        )?;
        range(
            "live.send_coalesce_bytes",
            l.send_coalesce_bytes as u64,
            1,
            64 << 20,
        )?;
        if l.memory_max != 0 {
            range(
                "live.memory_max",
                l.memory_max,
                l.ring_bytes as u64,
                1 << 50,
            )?;
        }
        let r = &self.runtime;
        range(
            "runtime.ring_entries",
            u64::from(r.ring_entries),
            64,
            32_768,
        )?;
        range(
            "runtime.iowq_unbound_max",
            u64::from(r.iowq_unbound_max),
            0,
            4096,
        )?;
        range(
            "runtime.iowq_bounded_max",
            u64::from(r.iowq_bounded_max),
            0,
            4096,
        )?;
        range("runtime.tick_ms", r.tick_ms, 1, 1000)?;
        range("runtime.drain_timeout_ms", r.drain_timeout_ms, 0, 600_000)?;
        range("runtime.recv_bytes", r.recv_bytes as u64, 1024, 16 << 20)?;
        range(
            "runtime.peer_log_lines_per_second",
            u64::from(r.peer_log_lines_per_second),
            0,
            100_000,
        )?;
        range(
            "runtime.log_queue_lines",
            r.log_queue_lines as u64,
            64,
            1 << 20,
        )?;
        range(
            "runtime.malloc_trim_interval_ms",
            r.malloc_trim_interval_ms,
            0,
            86_400_000,
        )?;
        Ok(())
    }

    /// The RTMP listen address, parsed; None when RTMP is disabled.
    pub fn rtmp_listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.rtmp.listen.is_empty() {
            return Ok(None);
        }
        self.rtmp
            .listen
            .parse::<SocketAddr>()
            .map(Some)
            .map_err(|e| {
                err(
                    "rtmp.listen",
                    format!("`{}` is not ADDR:PORT ({e})", self.rtmp.listen),
                )
            })
    }

    /// The admin listen address, parsed; None when the admin listener is disabled.
    pub fn admin_listen_addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        if self.admin.listen.is_empty() {
            return Ok(None);
        }
        self.admin
            .listen
            .parse::<SocketAddr>()
            .map(Some)
            .map_err(|e| {
                err(
                    "admin.listen",
                    format!("`{}` is not ADDR:PORT ({e})", self.admin.listen),
                )
            })
    }

    /// The HTTP listen address, parsed.
    pub fn http_listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http.listen.parse::<SocketAddr>().map_err(|e| {
            err(
                "http.listen",
                format!("`{}` is not ADDR:PORT ({e})", self.http.listen),
            )
        })
    }

    /// Workers to start: the configured number, or one per online core.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    /// For a reload (SIGHUP): keep the running values of the keys that take effect only at
    /// start (listeners, workers, the `[vod]`, `[hls]`, `[access_log]` and `[runtime]`
    /// sections: sockets,
    /// threads, rings, pools and caches built once), and name those that changed, so the
    /// caller can log that they need a restart. Everything else (auth and per-app policy,
    /// the admin API's `allow` and `token`, HTTP, RTMP and live limits, lag settings,
    /// metrics labels) applies to new sessions and requests.
    pub fn keep_restart_only(&mut self, running: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        macro_rules! keep {
            ($($field:ident).+, $name:literal) => {
                if self.$($field).+ != running.$($field).+ {
                    changed.push($name);
                    self.$($field).+ = running.$($field).+.clone();
                }
            };
        }
        keep!(workers, "workers");
        keep!(pin_workers, "pin_workers");
        keep!(http.listen, "http.listen");
        keep!(rtmp.listen, "rtmp.listen");
        keep!(admin.listen, "admin.listen");
        keep!(access_log, "access_log");
        keep!(vod, "vod");
        keep!(hls, "hls");
        keep!(runtime, "runtime");
        changed
    }

    /// The effective configuration as TOML (for `--check-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

fn range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(err(key, format!("{value} is out of range {min}..={max}")));
    }
    Ok(())
}

/// Best-effort name of the key whose value starts at the end of `before` (for error lines):
/// the last `[table]` header plus the key on the last line.
fn key_at(before: &str) -> String {
    let mut table = String::new();
    for line in before.lines() {
        let t = line.trim();
        if t.starts_with('[') && t.ends_with(']') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    let last = before.rsplit('\n').next().unwrap_or("");
    let key = last.split('=').next().unwrap_or("").trim();
    match (table.is_empty(), key.is_empty()) {
        (true, true) => "config".into(),
        (true, false) => key.into(),
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let config = Config::default();
        config.validate().unwrap();
        let text = config.to_toml();
        assert_eq!(Config::from_toml(&text).unwrap(), config);
    }

    #[test]
    fn unknown_key_is_named() {
        let e =
            Config::from_toml("[http]\nlisten = \"127.0.0.1:1\"\nheader_bytes = 5\n").unwrap_err();
        assert!(e.problem.contains("header_bytes"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn bad_value_type_names_the_key() {
        let e = Config::from_toml("[http]\nheader_bytes_max = \"big\"\n").unwrap_err();
        assert_eq!(e.key, "http.header_bytes_max", "{e}");
    }

    #[test]
    fn out_of_range_value_names_the_key() {
        let config = Config::from_toml("[http]\nheader_bytes_max = 10\n").unwrap();
        let e = config.validate().unwrap_err();
        assert_eq!(e.key, "http.header_bytes_max");
        let config = Config::from_toml("[http]\nlisten = \"nope\"\n").unwrap();
        assert_eq!(config.validate().unwrap_err().key, "http.listen");
    }

    #[test]
    fn issue_7_keys_have_defaults_and_are_validated() {
        let config = Config::default();
        assert_eq!(config.http.lingering_close_ms, 5_000);
        assert_eq!(config.http.lingering_close_bytes, 1 << 20);
        assert_eq!(config.http.cors_max_age_s, 7_200);
        assert_eq!(config.vod.file_cache_inactive_ms, 20_000);
        assert_eq!(config.vod.file_cache_sweep_per_tick, 64);
        assert_eq!(config.runtime.peer_log_lines_per_second, 10);
        let text = config.to_toml();
        for key in [
            "lingering_close_ms",
            "lingering_close_bytes",
            "cors_max_age_s",
            "file_cache_inactive_ms",
            "file_cache_sweep_per_tick",
            "peer_log_lines_per_second",
        ] {
            assert!(text.contains(key), "{key} missing from --check-config");
        }
        for (toml, key) in [
            (
                "[http]\nlingering_close_ms = 600001\n",
                "http.lingering_close_ms",
            ),
            (
                "[http]\nlingering_close_bytes = 2147483648\n",
                "http.lingering_close_bytes",
            ),
            ("[http]\ncors_max_age_s = 86401\n", "http.cors_max_age_s"),
            (
                "[vod]\nfile_cache_inactive_ms = 10\n",
                "vod.file_cache_inactive_ms",
            ),
            (
                "[vod]\nfile_cache_sweep_per_tick = 0\n",
                "vod.file_cache_sweep_per_tick",
            ),
            (
                "[runtime]\npeer_log_lines_per_second = 100001\n",
                "runtime.peer_log_lines_per_second",
            ),
        ] {
            let config = Config::from_toml(toml).unwrap();
            assert_eq!(config.validate().unwrap_err().key, key, "{toml}");
        }
        // 0 turns lingering off; it is valid.
        let config = Config::from_toml("[http]\nlingering_close_ms = 0\n").unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn log_queue_lines_has_a_default_and_is_validated() {
        let config = Config::default();
        assert_eq!(config.runtime.log_queue_lines, 16_384);
        assert!(config.to_toml().contains("log_queue_lines"));
        for bad in [0, 63, (1 << 20) + 1] {
            let config =
                Config::from_toml(&format!("[runtime]\nlog_queue_lines = {bad}\n")).unwrap();
            assert_eq!(
                config.validate().unwrap_err().key,
                "runtime.log_queue_lines",
                "{bad}"
            );
        }
        let config = Config::from_toml("[runtime]\nlog_queue_lines = 64\n").unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn reload_keeps_what_needs_a_restart() {
        let running = Config::default();
        let mut new = Config::from_toml(
            "workers = 7\n[http]\nlisten = \"127.0.0.1:9\"\nsend_timeout_ms = 1234\n\
             [vod]\nroot = \"/elsewhere\"\n[live]\nmax_lag_ms = 999\n\
             [auth]\nplay = \"key\"\nkeys = [\"k\"]\n",
        )
        .unwrap();
        let changed = new.keep_restart_only(&running);
        assert_eq!(changed, ["workers", "http.listen", "vod"]);
        assert_eq!(new.workers, running.workers);
        assert_eq!(new.http.listen, running.http.listen);
        assert_eq!(new.vod, running.vod);
        // What applies at once is the new file's.
        assert_eq!(new.http.send_timeout_ms, 1234);
        assert_eq!(new.live.max_lag_ms, 999);
        assert_eq!(new.auth.keys, ["k"]);
        // Nothing changed: nothing to report.
        let mut same = running.clone();
        assert!(same.keep_restart_only(&running).is_empty());
    }

    #[test]
    fn admin_keys_have_defaults_and_are_validated() {
        let config = Config::default();
        assert_eq!(config.admin.listen, "0.0.0.0:8081");
        assert_eq!(config.admin.allow, ["127.0.0.0/8", "::1/128"]);
        assert_eq!(config.admin.token, None);
        assert_eq!(config.admin.console_token_ttl_s, 3600);
        assert!(config.to_toml().contains("[admin]"));
        for (toml, key) in [
            ("[admin]\nlisten = \"nope\"\n", "admin.listen"),
            ("[admin]\nallow = [\"10.0.0.0/33\"]\n", "admin.allow"),
            ("[admin]\nallow = [\"localhost\"]\n", "admin.allow"),
            ("[admin]\ntoken = \"short\"\n", "admin.token"),
            (
                "[admin]\nconsole_token_ttl_s = 59\n",
                "admin.console_token_ttl_s",
            ),
            (
                "[admin]\nconsole_token_ttl_s = 604801\n",
                "admin.console_token_ttl_s",
            ),
        ] {
            let config = Config::from_toml(toml).unwrap();
            assert_eq!(config.validate().unwrap_err().key, key, "{toml}");
        }
        let config =
            Config::from_toml("[admin]\nlisten = \"\"\nallow = []\ntoken = \"0123456789abcdef\"\n")
                .unwrap();
        config.validate().unwrap();
        assert_eq!(config.admin_listen_addr().unwrap(), None);
        let cli = Cli {
            admin_listen: Some("127.0.0.1:0".into()),
            ..Cli::default()
        };
        assert_eq!(Config::load(&cli).unwrap().admin.listen, "127.0.0.1:0");
    }

    #[test]
    fn flags_override_file() {
        let cli = Cli {
            workers: Some(3),
            http_listen: Some("127.0.0.1:0".into()),
            ..Cli::default()
        };
        let config = Config::load(&cli).unwrap();
        assert_eq!(config.workers, 3);
        assert_eq!(config.http.listen, "127.0.0.1:0");
    }
}
