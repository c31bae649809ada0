//! The server: start-up and shutdown (rlimits, listeners, pinned workers, signals), and the
//! glue between the runtime and the protocols — the worker loop ([`worker`]), the sessions it
//! feeds (HTTP [`http`], files [`vod`], live ingest [`ingest`] and viewers [`live`], RTMP
//! [`rtmp`]), and the
//! per-worker fan-out hubs ([`hub`]).

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use arc_swap::ArcSwap;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::media::stream::Registry;
use crate::runtime::mailbox::Mailbox;
use crate::runtime::sys;

/// A log line a peer can trigger, written only within the worker's per-kind rate limit
/// (`runtime.peer_log_lines_per_second`, see `loglimit`):
/// `peer_log!(self, PeerLog::Kind, level, fields..., "message")`.
macro_rules! peer_log {
    ($worker:expr, $kind:expr, $level:ident, $($line:tt)+) => {
        if $worker.peer_log_allowed($kind) {
            tracing::$level!($($line)+);
        }
    };
}

mod access;
mod callout;
mod conn;
mod hls;
mod http;
mod hub;
mod ingest;
mod live;
mod loglimit;
mod record;
mod rtmp;
#[cfg(test)]
mod session_tests;
mod sessions;
mod vod;
pub mod worker;

use worker::{Worker, WorkerSpec};

/// A command one worker posts to another's mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// The stream with this id has new entries (or ended): pull them into your hub.
    StreamNews(u32),
    /// The admin API ends a session of yours: close the connection in slot `key` if it is
    /// still that generation and that id.
    Kick {
        key: usize,
        generation: u32,
        id: u64,
    },
}

/// State every worker can see. Read-mostly; nothing here is locked on the data path.
pub struct Shared {
    /// The running configuration: replaced as a whole by a reload (SIGHUP), after which
    /// `config_generation` moves on and each worker picks the new one up on its next tick.
    pub config: ArcSwap<Config>,
    pub config_generation: AtomicU64,
    pub shutdown: AtomicBool,
    /// Time origin of every worker's millisecond clock.
    pub epoch: Instant,
    pub registry: Registry,
    /// Who may publish and play (`[auth]`); replaced by a reload.
    pub auth: ArcSwap<crate::app::auth::Auth>,
    /// HLS pushed by encoders with PUT.
    pub hls_push: crate::media::hls_push::PushStore,
    /// Each worker's mailbox (commands from other workers, rung with IORING_OP_MSG_RING).
    pub mailboxes: Vec<Mailbox<Command>>,
    /// The next connection id ([`conn::Conn::id`]); ids start at 1.
    pub next_conn_id: std::sync::atomic::AtomicU64,
    /// Every live publisher and reader, for the admin API.
    pub sessions: sessions::Sessions,
    /// Who may use the admin API (`[admin]`).
    pub admin: ArcSwap<crate::app::api::AdminAccess>,
    /// The access log (`[access_log]`; None when off).
    pub access_log: Option<crate::logging::AccessLog>,
    /// The public listeners' bound addresses (a port 0 resolved): where players are sent.
    pub http_bound: SocketAddr,
    /// None: RTMP is off.
    pub rtmp_bound: Option<SocketAddr>,
}

impl Shared {
    /// The state `workers` workers share, for `config` (the registry with HLS when it is
    /// on, the recording thread when an app records, the access log when it has a path).
    pub fn new(
        config: Arc<Config>,
        workers: usize,
        http_bound: SocketAddr,
        rtmp_bound: Option<SocketAddr>,
    ) -> Result<Shared, StartError> {
        Ok(Shared {
            config: ArcSwap::new(config.clone()),
            config_generation: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            epoch: Instant::now(),
            registry: {
                let registry = Registry::new(config.live.clone());
                if config.hls.enabled {
                    registry.with_hls(crate::media::stream::HlsSettings {
                        params: crate::media::hls::HlsParams {
                            segment_target_ms: config.hls.segment_target_ms,
                            window_segments: config.hls.window_segments,
                            retain_segments: config.hls.retain_segments,
                            segment_bytes_max: config.hls.segment_bytes_max,
                            name_prefix: String::new(),
                        },
                        idle_ms: config.hls.idle_ms,
                        ended_keep_ms: config.hls.ended_keep_ms,
                        record_apps: config.hls.record_apps.clone(),
                        recorder: if config.hls.record_apps.is_empty() {
                            None
                        } else {
                            Some(record::start(config.vod.root.clone()).map_err(|e| {
                                StartError(format!("cannot start the recording thread: {e}"))
                            })?)
                        },
                    })
                } else {
                    registry
                }
            },
            auth: ArcSwap::from_pointee(
                crate::app::auth::Auth::new(&config.auth).map_err(StartError)?,
            ),
            hls_push: crate::media::hls_push::PushStore::new(crate::media::hls_push::PushLimits {
                object_bytes_max: config.hls.push_object_bytes_max,
                stream_bytes_max: config.hls.push_stream_bytes_max,
                streams_max: config.hls.push_streams_max,
                idle_ms: config.hls.push_idle_ms,
            }),
            mailboxes: (0..workers).map(|_| Mailbox::default()).collect(),
            next_conn_id: std::sync::atomic::AtomicU64::new(1),
            sessions: sessions::Sessions::default(),
            access_log: match config.access_log.path.as_str() {
                "" => None,
                path => Some(
                    crate::logging::AccessLog::open(
                        std::path::Path::new(path),
                        config.access_log.format,
                        config.access_log.queue_lines,
                    )
                    .map_err(StartError)?,
                ),
            },
            admin: ArcSwap::from_pointee(
                crate::app::api::AdminAccess::new(&config.admin)
                    .map_err(|e| StartError(e.to_string()))?,
            ),
            http_bound,
            rtmp_bound,
        })
    }
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
///
/// `reload` reads the configuration again (the file and the flags, validated) when SIGHUP
/// arrives; see [`reload`].
pub fn run(
    config: Config,
    reload: impl Fn() -> Result<Config, crate::config::ConfigError>,
) -> Result<(), StartError> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.vod.root).map_err(|e| {
        StartError(format!(
            "cannot create media root {}: {e}",
            config.vod.root.display()
        ))
    })?;
    sys::raise_nofile_limit();
    crate::metrics::install();
    let signals = sys::Signals::block();

    let workers = config.worker_count();
    let http_addr = config
        .http_listen_addr()
        .map_err(|e| StartError(e.to_string()))?;
    let (listeners, http_bound) =
        bind_reuseport(http_addr, workers).map_err(|e| listen_error("http", http_addr, &e))?;
    let (mut rtmp_listeners, rtmp_bound) = match config
        .rtmp_listen_addr()
        .map_err(|e| StartError(e.to_string()))?
    {
        Some(addr) => {
            let (fds, bound) =
                bind_reuseport(addr, workers).map_err(|e| listen_error("rtmp", addr, &e))?;
            (fds.into_iter().map(Some).collect(), Some(bound))
        }
        None => ((0..workers).map(|_| None).collect::<Vec<_>>(), None),
    };
    let (mut admin_listeners, admin_bound) = match config
        .admin_listen_addr()
        .map_err(|e| StartError(e.to_string()))?
    {
        Some(addr) => {
            let (fds, bound) =
                bind_reuseport(addr, workers).map_err(|e| listen_error("admin", addr, &e))?;
            (fds.into_iter().map(Some).collect(), Some(bound))
        }
        None => ((0..workers).map(|_| None).collect::<Vec<_>>(), None),
    };

    if workers > crate::media::stream::WORKERS_MAX {
        return Err(StartError(format!(
            "at most {} workers are supported",
            crate::media::stream::WORKERS_MAX
        )));
    }
    let shared = Arc::new(Shared::new(
        config.clone(),
        workers,
        http_bound,
        rtmp_bound,
    )?);
    let cpus = sys::online_cpus();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let mut wakes = Vec::new();
    let mut threads = Vec::new();
    for (id, http_listener) in listeners.into_iter().enumerate() {
        let wake = sys::eventfd().map_err(|e| StartError(format!("eventfd: {e}")))?;
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
            rtmp_listener: rtmp_listeners.get_mut(id).and_then(Option::take),
            admin_listener: admin_listeners.get_mut(id).and_then(Option::take),
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
    let rtmp_shown = rtmp_bound.map_or_else(|| "off".to_string(), |a| a.to_string());
    let admin_shown = admin_bound.map_or_else(|| "off".to_string(), |a| a.to_string());
    println!(
        "uringcast listening http={http_bound} rtmp={rtmp_shown} admin={admin_shown} workers={workers}"
    );
    let _ = io::stdout().flush();
    tracing::info!(http = %http_bound, rtmp = %rtmp_shown, admin = %admin_shown, workers, media_root = %config.vod.root.display(), "uringcast started");

    wait_for_signal(&signals, &shared, &wakes, &reload);
    tracing::info!("shutting down: draining connections");
    stop(&shared, &wakes);
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

/// Why a listener could not be bound, with the fix when it is the usual one: a port below
/// 1024 needs CAP_NET_BIND_SERVICE (the systemd unit has the two lines to uncomment).
fn listen_error(what: &str, addr: SocketAddr, e: &io::Error) -> StartError {
    let hint = if e.kind() == io::ErrorKind::PermissionDenied && addr.port() < 1024 {
        " (ports below 1024 need CAP_NET_BIND_SERVICE: under systemd, uncomment \
         AmbientCapabilities= and CapabilityBoundingSet= in the unit, or use a port >= 1024)"
    } else if e.kind() == io::ErrorKind::AddrInUse {
        " (another process listens there; `ss -ltnp` names it)"
    } else {
        ""
    };
    StartError(format!("cannot listen on {what} {addr}: {e}{hint}"))
}

fn stop(shared: &Shared, wakes: &[OwnedFd]) {
    shared.shutdown.store(true, Ordering::Release);
    for wake in wakes {
        sys::eventfd_signal(wake.as_fd());
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

fn wait_for_signal(
    signals: &sys::Signals,
    shared: &Shared,
    wakes: &[OwnedFd],
    reload_config: &dyn Fn() -> Result<Config, crate::config::ConfigError>,
) {
    let mut trim = MallocTrim::new(shared.config.load().runtime.malloc_trim_interval_ms);
    loop {
        match signals.wait(250) {
            Some(sys::Signal::Terminate) => return,
            Some(sys::Signal::Reload) => reload(shared, wakes, reload_config),
            Some(sys::Signal::ReopenLogs) => {
                if let Some(log) = &shared.access_log {
                    log.reopen();
                    tracing::info!("access log reopened (SIGUSR1)");
                }
            }
            None => {}
        }
        crate::metrics::upkeep();
        // Streams whose publisher has been gone past the grace period end here; their
        // readers' workers notice on their next tick.
        let now_ms = shared.epoch.elapsed().as_millis() as u64;
        for stream in shared.registry.sweep(now_ms) {
            tracing::info!(stream = %stream.key(), "stream ended (no publisher within the grace period)");
        }
        shared.hls_push.sweep(crate::media::stream::unix_ms());
        trim.tick(now_ms);
    }
}

/// SIGHUP (nginx's habit): read the configuration again and, if it is valid, make it the
/// running one. Auth and per-app policy, HTTP, RTMP and live limits and lag settings apply to
/// sessions that start from now on; keys that only take effect at start keep their running
/// values and are logged as needing a restart. An invalid file (or secret file) is refused
/// with one log line and changes nothing.
fn reload(
    shared: &Shared,
    wakes: &[OwnedFd],
    reload_config: &dyn Fn() -> Result<Config, crate::config::ConfigError>,
) {
    let running = shared.config.load_full();
    let loaded = reload_config().and_then(|config| {
        let auth = crate::app::auth::Auth::new(&config.auth).map_err(|problem| {
            crate::config::ConfigError {
                key: "auth".into(),
                problem,
            }
        })?;
        let admin = crate::app::api::AdminAccess::new(&config.admin)?;
        Ok((config, auth, admin))
    });
    let (mut config, auth, admin) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            metrics::counter!("uringcast_config_reloads_total", "result" => "refused").increment(1);
            tracing::error!(error = %e, "configuration reload refused; the running configuration stays");
            return;
        }
    };
    for key in config.keep_restart_only(&running) {
        tracing::warn!(
            key,
            "configuration reload: this key changed but needs a restart; its running value stays"
        );
    }
    shared.registry.reconfigure(config.live.clone());
    shared.auth.store(Arc::new(auth));
    shared.admin.store(Arc::new(admin));
    shared.config.store(Arc::new(config));
    shared.config_generation.fetch_add(1, Ordering::AcqRel);
    // Workers look at the generation on every tick; the wake-up only makes it immediate.
    for wake in wakes {
        sys::eventfd_signal(wake.as_fd());
    }
    metrics::counter!("uringcast_config_reloads_total", "result" => "applied").increment(1);
    tracing::info!("configuration reloaded");
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
        sys::malloc_trim();
    }
}
