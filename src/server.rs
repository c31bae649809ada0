//! Start-up and shutdown: rlimits, listeners, pinned workers, signals.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::media::stream::Registry;
use crate::runtime::worker::{Worker, WorkerSpec};

/// State every worker can see. Read-mostly; nothing here is locked on the data path.
pub struct Shared {
    pub config: Arc<Config>,
    pub shutdown: AtomicBool,
    /// Time origin of every worker's millisecond clock.
    pub epoch: Instant,
    pub registry: Registry,
    /// Each worker's ring fd, the target of IORING_OP_MSG_RING wake-ups (-1 until started).
    pub ring_fds: Vec<AtomicI32>,
}

/// Why the server could not start (exit code 1), as one line.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Run until SIGINT/SIGTERM and a drain. Returns after every worker has stopped.
pub fn run(config: Config) -> Result<(), StartError> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.vod.root).map_err(|e| {
        StartError(format!(
            "cannot create media root {}: {e}",
            config.vod.root.display()
        ))
    })?;
    raise_nofile_limit();
    crate::metrics::install();
    let signals = block_signals();

    let workers = config.worker_count();
    let http_addr = config
        .http_listen_addr()
        .map_err(|e| StartError(e.to_string()))?;
    let (listeners, http_bound) = bind_reuseport(http_addr, workers)
        .map_err(|e| StartError(format!("cannot listen on http {http_addr}: {e}")))?;

    if workers > crate::media::stream::WORKERS_MAX {
        return Err(StartError(format!(
            "at most {} workers are supported",
            crate::media::stream::WORKERS_MAX
        )));
    }
    let shared = Arc::new(Shared {
        config: config.clone(),
        shutdown: AtomicBool::new(false),
        epoch: Instant::now(),
        registry: Registry::new(config.live.clone()),
        ring_fds: (0..workers).map(|_| AtomicI32::new(-1)).collect(),
    });
    let cpus = online_cpus();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut wakes = Vec::new();
    let mut threads = Vec::new();
    for (id, http_listener) in listeners.into_iter().enumerate() {
        let wake = eventfd().map_err(|e| StartError(format!("eventfd: {e}")))?;
        let wake_main = wake
            .try_clone()
            .map_err(|e| StartError(format!("eventfd dup: {e}")))?;
        wakes.push(wake_main);
        let cpu = if config.pin_workers && !cpus.is_empty() {
            Some(cpus[id % cpus.len()])
        } else {
            None
        };
        let spec = WorkerSpec {
            id,
            cpu,
            http_listener,
            wake,
        };
        let shared = shared.clone();
        let ready = ready_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("uringcast-w{id}"))
            .spawn(move || match Worker::new(spec, shared) {
                Ok(worker) => {
                    let _ = ready.send(Ok(()));
                    if let Err(e) = worker.run() {
                        // Its ring and connections are gone; a server with a hole in it is
                        // worse than a restart by the supervisor.
                        tracing::error!(worker = id, error = %e, "worker failed; exiting");
                        eprintln!("uringcast: worker {id} failed: {e}");
                        std::process::exit(1);
                    }
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("worker {id}: {e}")));
                }
            })
            .map_err(|e| StartError(format!("cannot start worker thread: {e}")))?;
        threads.push(thread);
    }
    drop(ready_tx);
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop(&shared, &wakes);
                return Err(StartError(e));
            }
            Err(_) => break,
        }
    }
    println!("uringcast listening http={http_bound} workers={workers}");
    let _ = io::stdout().flush();
    tracing::info!(http = %http_bound, workers, media_root = %config.vod.root.display(), "uringcast started");

    wait_for_signal(&signals, &shared);
    tracing::info!("shutting down: draining connections");
    stop(&shared, &wakes);
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

fn stop(shared: &Shared, wakes: &[OwnedFd]) {
    shared.shutdown.store(true, Ordering::Release);
    for wake in wakes {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own.
        unsafe { libc::write(wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }
}

/// Bind `count` SO_REUSEPORT sockets to one address. Port 0 is resolved by the first bind
/// and reused by the others, so all workers share one ephemeral port.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> io::Result<(Vec<OwnedFd>, SocketAddr)> {
    let mut bound = addr;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let socket = Socket::new(
            Domain::for_address(bound),
            Type::STREAM.cloexec(),
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.bind(&bound.into())?;
        socket.listen(4096)?;
        if bound.port() == 0 {
            bound = socket
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("listener has no inet address"))?;
        }
        out.push(OwnedFd::from(socket));
    }
    Ok((out, bound))
}

fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) has no pointer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn online_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Raise RLIMIT_NOFILE's soft limit to the hard limit: every viewer is a descriptor.
fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit read and write a local rlimit struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Ignore SIGPIPE (a peer that goes away must not kill the server; sends use MSG_NOSIGNAL,
/// but splice and sendfile cannot) and block SIGINT/SIGTERM in every thread, so the main
/// thread alone receives them with sigtimedwait.
fn block_signals() -> libc::sigset_t {
    // SAFETY: signal/sigset functions operate on a local sigset_t; the mask is set before any
    // worker thread exists, so every thread inherits it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t, shared: &Shared) {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: 250_000_000,
    };
    let mut trim = MallocTrim::new(shared.config.runtime.malloc_trim_interval_ms);
    loop {
        // SAFETY: `set` and `timeout` are valid for the call; no siginfo is requested.
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
        if sig == libc::SIGINT || sig == libc::SIGTERM {
            return;
        }
        crate::metrics::upkeep();
        // Streams whose publisher has been gone past the grace period end here; their
        // readers' workers notice on their next tick.
        let now_ms = shared.epoch.elapsed().as_millis() as u64;
        for stream in shared.registry.sweep(now_ms) {
            tracing::info!(stream = %stream.key(), "stream ended (no publisher within the grace period)");
        }
        trim.tick(now_ms);
    }
}

/// Hands free heap memory back to the kernel now and then (`runtime.malloc_trim_interval_ms`).
///
/// glibc frees into its arenas (one per worker thread, as the workers allocate) and returns
/// memory to the kernel only from the top of a heap, so after a peak of streams and readers
/// the process keeps ~100 MB it no longer uses. `malloc_trim(0)` releases every free page of
/// every arena (madvise). It runs here, on the main thread, which is otherwise idle: at most a
/// few milliseconds every few seconds, during which a worker that allocates from the arena
/// being trimmed waits for its lock. kernel-notes/memory.md has the measurements.
struct MallocTrim {
    interval_ms: u64,
    last_ms: u64,
}

impl MallocTrim {
    fn new(interval_ms: u64) -> MallocTrim {
        MallocTrim {
            interval_ms,
            last_ms: 0,
        }
    }

    fn tick(&mut self, now_ms: u64) {
        if self.interval_ms == 0 || now_ms < self.last_ms + self.interval_ms {
            return;
        }
        self.last_ms = now_ms;
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim takes no pointers and only locks and walks glibc's own arenas.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// The plain status page at `/`: the live streams. It does no filesystem work (it runs on
/// a worker thread, for any client) and shows no filesystem path; files are listed nowhere
/// (a console with access control is a separate piece of work).
pub fn status_page(shared: &Shared) -> String {
    let mut page = String::with_capacity(2048);
    page.push_str("<!doctype html><html><head><meta charset=\"utf-8\"><title>uringcast</title></head><body>\n");
    let _ = writeln!(page, "<h1>uringcast {}</h1>", env!("CARGO_PKG_VERSION"));
    page.push_str("<p><a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a> · <a href=\"/api/v1/streams\">/api/v1/streams</a> · files under <code>/vod/</code></p>\n");
    page.push_str("<h2>Live streams</h2><ul>\n");
    let streams = shared.registry.list();
    if streams.is_empty() {
        page.push_str("<li>(none: publish with <code>ffmpeg -re -i IN -c copy -f flv -method POST http://HOST/live/NAME.flv</code>)</li>\n");
    }
    for s in streams {
        use std::sync::atomic::Ordering::Relaxed;
        // app and name are [A-Za-z0-9_-] (see parse_live_path): safe in HTML and URLs.
        let _ = writeln!(
            page,
            "<li><a href=\"/{app}/{name}.flv\">/{app}/{name}.flv</a> ({state}, {readers} readers)</li>",
            app = s.app,
            name = s.name,
            state = if s.publishing.load(Relaxed) {
                "live"
            } else {
                "publisher gone"
            },
            readers = s.stats.readers_flv.load(Relaxed),
        );
    }
    page.push_str("</ul>\n</body></html>\n");
    page
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
    /// From onMetaData when the publisher sent it, else measured from the frames received.
    fps: Option<f64>,
    ingest_bitrate_kbps: u64,
    gop_interval_ms: u64,
    uptime_ms: u64,
    publishes: u64,
    readers: Readers,
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
        },
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

/// `/api/v1/streams`: every live stream with its figures.
pub fn streams_json(shared: &Shared, now_ms: u64) -> String {
    let streams: Vec<StreamFigures> = shared
        .registry
        .list()
        .iter()
        .map(|s| stream_figures(s, now_ms))
        .collect();
    let mut text = serde_json::json!({ "streams": streams }).to_string();
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
        "uringcast_stream_readers",
        "gauge",
        "Readers attached, by protocol.",
        |f| f64::from(f.readers.flv),
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
pub fn stream_metrics(shared: &Shared, now_ms: u64, out: &mut String) {
    let figures: Vec<StreamFigures> = shared
        .registry
        .list()
        .iter()
        .map(|s| stream_figures(s, now_ms))
        .collect();
    let labels = shared.config.metrics.stream_labels;
    for (name, kind, help, value) in STREAM_SERIES {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        if labels {
            for f in &figures {
                let proto = if *name == "uringcast_stream_readers" {
                    ",protocol=\"flv\""
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "{name}{{stream=\"{}/{}\"{proto}}} {}",
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
    let _ = writeln!(
        out,
        "# HELP uringcast_streams Live streams.\n# TYPE uringcast_streams gauge\nuringcast_streams {}",
        figures.len()
    );
    let (used, max) = shared.registry.memory();
    let _ = writeln!(
        out,
        "# HELP uringcast_live_memory_bytes Bytes retained by every live stream's chunk ring.\n\
         # TYPE uringcast_live_memory_bytes gauge\nuringcast_live_memory_bytes {used}\n\
         # HELP uringcast_live_memory_max_bytes The live memory budget (live.memory_max).\n\
         # TYPE uringcast_live_memory_max_bytes gauge\nuringcast_live_memory_max_bytes {max}"
    );
}
