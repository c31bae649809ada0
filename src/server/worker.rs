//! One worker: a driver (ring), a listener, a slab of connections, a mailbox, and the loop
//! described in [`crate::runtime`]. Completions are dispatched by slot to the connection's
//! session code: [`super::http`] (request heads, responses, keep-alive, lingering close),
//! [`super::vod`] (file bodies), [`super::live`] (ingest and viewers).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use slab::Slab;

use super::conn::{Body, Conn, Deadline, Phase};
use super::live;
use super::loglimit::{LogLimiter, PeerLog};
use super::{Command, Shared};
use crate::config::Config;
use crate::metrics::{CloseReason, WorkerMetrics, WorkerStats};
use crate::proto::http::{DateCache, HttpLimits};
use crate::runtime::driver::{Completion, Driver, DriverConfig, Ring};
use crate::runtime::op::{Op, UserData, next_generation};
use crate::runtime::ops;
use crate::runtime::pipe::PipePool;
use crate::runtime::sys;
use crate::runtime::timer::{TimerEntry, TimerWheel};
use crate::vod;

/// What a worker is started with.
pub struct WorkerSpec {
    pub id: usize,
    pub cpu: Option<usize>,
    pub http_listener: OwnedFd,
    /// The RTMP listener (None: RTMP disabled).
    pub rtmp_listener: Option<OwnedFd>,
    /// The admin listener (None: disabled).
    pub admin_listener: Option<OwnedFd>,
    /// eventfd written by the main thread (shutdown) — read through the ring.
    pub wake: OwnedFd,
}

/// After the drain deadline, how long closed connections get to collect their last CQEs.
const DRAIN_CLOSE_WAIT_MS: u64 = 1000;

/// After a failed accept (EMFILE, ENFILE, ENOBUFS...), wait this long before accepting again,
/// so a full fd table does not turn the loop into a busy spin.
const ACCEPT_RETRY_MS: u64 = 100;

/// Index of the HTTP listener (the key of its accept completions).
const LISTENER_HTTP: u32 = 0;
/// Index of the RTMP listener.
const LISTENER_RTMP: u32 = 1;
/// Index of the admin listener.
const LISTENER_ADMIN: u32 = 2;

pub struct Worker<R: Ring = Driver> {
    pub(super) id: usize,
    pub(super) driver: R,
    pub(super) shared: Arc<Shared>,
    pub(super) config: Arc<Config>,
    pub(super) limits: HttpLimits,
    http_listener: OwnedFd,
    rtmp_listener: Option<OwnedFd>,
    admin_listener: Option<OwnedFd>,
    wake: OwnedFd,
    /// The eventfd read lands here; boxed so its address is stable while the read is in flight.
    wake_buf: Box<u64>,
    pub(super) conns: Slab<Conn>,
    next_generation: u32,
    wheel: TimerWheel,
    due: Vec<TimerEntry>,
    due_timers: Vec<usize>,
    pub(super) pipes: PipePool,
    pub(super) files: vod::FileCache,
    pub(super) media_root: File,
    pub(super) dates: DateCache,
    pub(super) stats: WorkerStats,
    metrics: WorkerMetrics,
    peer_log: LogLimiter,
    completions: Vec<Completion>,
    epoch: Instant,
    /// When the per-tick work last ran.
    last_flush_ms: u64,
    accepting: bool,
    /// Re-arm a listener's multishot accept at this time (after an accept error).
    accept_retry_at_ms: [Option<u64>; 3],
    pub(super) drain_deadline_ms: Option<u64>,
    /// This worker's handle on the access log (None: off).
    pub(super) access_log: Option<crate::logging::AccessLogSink>,
    /// The `Shared::config_generation` this worker's `config` is from.
    config_generation: u64,
    /// This worker's fan-out state: local readers per stream id.
    pub(super) live: HashMap<u32, super::hub::Hub>,
    /// Reused by `pump_stream` for the list of readers it walks.
    pub(super) pump_scratch: Vec<(usize, u32)>,
    /// Test builds only: send every doorbell to an invalid ring (URINGCAST_FAULT_DROP_WAKES=1),
    /// so the lost-wake-up path is exercised by the integration tests.
    #[cfg(debug_assertions)]
    pub(super) fault_drop_wakes: bool,
    /// Play requests waiting for their stream to appear.
    pub(super) waiting: Vec<live::WaitingReader>,
    /// Test builds only: every VOD open waits this long in the ring first, behind a linked
    /// IORING_OP_TIMEOUT (URINGCAST_FAULT_OPEN_DELAY_MS=n), so the integration tests can close
    /// connections while their open is in flight. Boxed: the timeout SQE points at it.
    #[cfg(debug_assertions)]
    pub(super) fault_open_delay: Option<Box<io_uring::types::Timespec>>,
    /// Auth service callouts: the decision cache and the count in flight.
    pub(super) callouts: super::callout::Callouts,
    /// Session tests: every close, in order (the metrics' counters are flushed away).
    #[cfg(test)]
    pub(super) closed_reasons: Vec<CloseReason>,
}

impl Worker<Driver> {
    /// A worker on its own io_uring (pinned to `spec.cpu` when given).
    pub fn new(spec: WorkerSpec, shared: Arc<Shared>) -> io::Result<Worker> {
        let config = shared.config.load_full();
        let driver = Driver::new(DriverConfig {
            entries: config.runtime.ring_entries,
            iowq_max: [
                config.runtime.iowq_bounded_max,
                config.runtime.iowq_unbound_max,
            ],
        })?;
        if let Some(cpu) = spec.cpu {
            sys::pin_to_cpu(cpu);
        }
        Worker::with_ring(spec, shared, driver)
    }
}

impl<R: Ring> Worker<R> {
    /// A worker on `driver` (the io_uring [`Driver`], or the session tests' fake ring).
    pub fn with_ring(spec: WorkerSpec, shared: Arc<Shared>, driver: R) -> io::Result<Worker<R>> {
        let config = shared.config.load_full();
        let epoch = shared.epoch;
        let now_ms = driver.now_ms(epoch);
        let horizon_ms = config
            .http
            .keepalive_timeout_ms
            .max(config.http.header_timeout_ms)
            .max(config.http.send_timeout_ms);
        let media_root = vod::open_root(&config.vod.root)?;
        if let Some(mailbox) = shared.mailboxes.get(spec.id) {
            mailbox.set_ring_fd(driver.ring_fd());
        }
        Ok(Worker {
            id: spec.id,
            driver,
            limits: HttpLimits {
                header_bytes_max: config.http.header_bytes_max,
                request_line_bytes_max: config.http.request_line_bytes_max,
                headers_max: config.http.headers_max,
            },
            http_listener: spec.http_listener,
            rtmp_listener: spec.rtmp_listener,
            admin_listener: spec.admin_listener,
            wake: spec.wake,
            wake_buf: Box::new(0),
            conns: Slab::with_capacity(config.http.connections_max_per_worker.min(4096)),
            next_generation: 1,
            wheel: TimerWheel::new(config.runtime.tick_ms, horizon_ms, now_ms),
            due: Vec::new(),
            due_timers: Vec::new(),
            pipes: PipePool::new(config.vod.pipe_pool_max, config.vod.pipe_bytes),
            files: vod::FileCache::new(
                config.vod.file_cache_entries,
                config.vod.file_cache_revalidate_ms,
                config.vod.file_cache_inactive_ms,
            ),
            media_root,
            dates: DateCache::new(),
            stats: WorkerStats::default(),
            metrics: WorkerMetrics::new(spec.id),
            peer_log: LogLimiter::new(config.runtime.peer_log_lines_per_second),
            completions: Vec::with_capacity(1024),
            epoch,
            last_flush_ms: 0,
            accepting: true,
            accept_retry_at_ms: [None; 3],
            drain_deadline_ms: None,
            config_generation: shared.config_generation.load(Ordering::Acquire),
            access_log: shared.access_log.as_ref().map(|log| log.sink()),
            live: HashMap::new(),
            pump_scratch: Vec::new(),
            #[cfg(debug_assertions)]
            fault_drop_wakes: std::env::var_os("URINGCAST_FAULT_DROP_WAKES")
                .is_some_and(|v| v == "1"),
            waiting: Vec::new(),
            #[cfg(debug_assertions)]
            fault_open_delay: std::env::var("URINGCAST_FAULT_OPEN_DELAY_MS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&ms| ms > 0)
                .map(|ms| {
                    Box::new(
                        io_uring::types::Timespec::new()
                            .sec(ms / 1000)
                            .nsec(((ms % 1000) * 1_000_000) as u32),
                    )
                }),
            callouts: Default::default(),
            #[cfg(test)]
            closed_reasons: Vec::new(),
            shared,
            config,
        })
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.driver.now_ms(self.epoch)
    }

    /// Whether a peer-triggered line of `kind` may be logged now (see `peer_log!`).
    pub(super) fn peer_log_allowed(&mut self, kind: PeerLog) -> bool {
        let now_ms = self.now_ms();
        self.peer_log.allow(kind, now_ms)
    }

    /// Once per tick: one summary line per kind whose lines were suppressed, at the level
    /// the lines themselves would have had.
    fn report_suppressed_logs(&mut self, now_ms: u64) {
        let worker = self.id;
        self.peer_log.poll_suppressed(now_ms, |kind, suppressed| {
            let kind_label = kind.label();
            match kind {
                PeerLog::BadRequest | PeerLog::DeadlineExpired | PeerLog::FileSendFailed => {
                    tracing::debug!(
                        worker,
                        kind = kind_label,
                        suppressed,
                        "log lines suppressed"
                    )
                }
                PeerLog::PublishRefused | PeerLog::Publish => {
                    tracing::info!(
                        worker,
                        kind = kind_label,
                        suppressed,
                        "log lines suppressed"
                    )
                }
                PeerLog::AcceptFailed | PeerLog::ResourceFailed => {
                    tracing::warn!(
                        worker,
                        kind = kind_label,
                        suppressed,
                        "log lines suppressed"
                    )
                }
            }
        });
    }

    fn arm_accept(&mut self, listener: u32) {
        let fd = match listener {
            LISTENER_RTMP => match &self.rtmp_listener {
                Some(fd) => fd.as_raw_fd(),
                None => return,
            },
            LISTENER_ADMIN => match &self.admin_listener {
                Some(fd) => fd.as_raw_fd(),
                None => return,
            },
            _ => self.http_listener.as_raw_fd(),
        };
        let entry = ops::accept_multi(fd);
        self.driver.submit_worker(Op::Accept, listener, 0, entry);
    }

    fn arm_wake(&mut self) {
        let entry = ops::read_u64(self.wake.as_raw_fd(), &mut self.wake_buf);
        self.driver.submit_worker(Op::EventRead, 0, 0, entry);
    }

    /// How long the next wait may last: a tick, or less when a live flush is due sooner.
    fn wait_ms(&self, now_ms: u64) -> u64 {
        let tick_ms = self.config.runtime.tick_ms;
        match self.next_live_flush_ms() {
            Some(at) => at.saturating_sub(now_ms).clamp(1, tick_ms),
            None => tick_ms,
        }
    }

    /// Run until shutdown has drained every connection (or the drain deadline passed).
    pub fn run(mut self) -> io::Result<()> {
        self.start();
        let mut completions = std::mem::take(&mut self.completions);
        while !self.turn(&mut completions)? {}
        // The last releases queued their sockets' closes: submit them before the ring goes.
        self.driver.submit_and_wait(0)
    }

    /// Arm the listeners' accepts and the shutdown eventfd's read.
    pub(super) fn start(&mut self) {
        self.arm_accept(LISTENER_HTTP);
        self.arm_accept(LISTENER_RTMP);
        self.arm_accept(LISTENER_ADMIN);
        self.arm_wake();
    }

    /// One turn of the loop: submit and wait, handle the completions, then timers, live
    /// flushes, callouts, accept retries and the per-tick work. Returns true once a shutdown
    /// has drained every connection (or its deadline passed): the worker is done.
    pub(super) fn turn(&mut self, completions: &mut Vec<Completion>) -> io::Result<bool> {
        let tick_ms = self.config.runtime.tick_ms;
        let wait_ms = self.wait_ms(self.now_ms());
        self.driver.submit_and_wait(wait_ms)?;
        self.driver.reap(completions);
        for completion in completions.drain(..) {
            self.handle(completion);
        }
        let now_ms = self.now_ms();
        self.expire(now_ms);
        self.live_tick(now_ms);
        self.callout_tick(now_ms);
        for listener in [LISTENER_HTTP, LISTENER_RTMP, LISTENER_ADMIN] {
            let retry = &mut self.accept_retry_at_ms[listener as usize];
            if retry.is_some_and(|at| now_ms >= at) {
                *retry = None;
                if self.accepting {
                    self.arm_accept(listener);
                }
            }
        }
        if now_ms >= self.last_flush_ms + tick_ms {
            self.last_flush_ms = now_ms;
            // A doorbell that failed or was lost delays commands by at most a tick.
            self.drain_mailbox();
            self.pick_up_reload();
            // Bounded: a few fstat calls per tick, never a walk of the whole cache. The
            // one file-system call left on the worker thread (see `FileCache::sweep`).
            self.files
                .sweep(now_ms, self.config.vod.file_cache_sweep_per_tick);
            self.report_suppressed_logs(now_ms);
            self.live_flush_stats();
            self.stats.active = self.conns.len().saturating_sub(self.callouts.pending()) as u64;
            self.metrics.flush(&mut self.stats);
        }
        if let Some(deadline) = self.drain_deadline_ms {
            if now_ms >= deadline && !self.conns.is_empty() {
                // Out of time: close the rest, then wait for their in-flight operations
                // (bounded: a shut-down socket completes its operations at once), so no
                // buffer is freed under the kernel.
                let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                for key in keys {
                    self.close(key, CloseReason::Shutdown);
                }
            }
            let hard_deadline = deadline + DRAIN_CLOSE_WAIT_MS;
            if self.conns.is_empty() || now_ms >= hard_deadline {
                self.live_flush_stats();
                self.stats.active = self.conns.len().saturating_sub(self.callouts.pending()) as u64;
                self.metrics.flush(&mut self.stats);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Feed one completion to its slot's session. A new descriptor it carries
    /// (`completion.fd`: an accepted socket, an opened file) is owned: a completion dropped
    /// here unhandled (stale generation, closing slot) closes it.
    fn handle(&mut self, completion: Completion) {
        let Some(ud) = UserData::decode(completion.user_data) else {
            return;
        };
        let result = completion.result;
        let more = completion.more();
        let fd = completion.fd;
        match ud.op {
            Op::Accept => self.on_accept(ud.key, result, more, fd),
            Op::EventRead => self.on_wake(result),
            Op::Doorbell => self.drain_mailbox(),
            Op::MsgRingSent => self.on_msg_ring_sent(result, ud.key),
            Op::Close if result < 0 => {
                // Cannot fail for a descriptor we owned; counted in the logs if it does.
                tracing::debug!(worker = self.id, error = %io::Error::from_raw_os_error(-result), "close failed");
            }
            Op::Close => {}
            _ => {
                let key = ud.key as usize;
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                if !conn.io.complete(&ud) {
                    return;
                }
                if result > 0 {
                    match ud.op {
                        Op::Recv => conn.bytes_in += result as u64,
                        Op::Send | Op::SendMsg | Op::SpliceOut => conn.bytes_out += result as u64,
                        _ => {}
                    }
                    if let Some(session) = &conn.session {
                        session.set_bytes(conn.bytes_in, conn.bytes_out);
                    }
                }
                if conn.phase == Phase::Closing {
                    if fd.is_some() {
                        // An open that finished after its connection was closed (deadline,
                        // shutdown): its descriptor closes here, not leaked.
                        self.stats.vod_opens_abandoned += 1;
                        drop(fd);
                    }
                    if conn.io.is_idle() {
                        self.release(key);
                    }
                    return;
                }
                if conn.phase == Phase::Callout {
                    self.on_callout(key, ud.op, result);
                    return;
                }
                let rtmp = conn.rtmp.is_some();
                match ud.op {
                    Op::Recv if rtmp => self.on_rtmp_recv(key, result),
                    Op::Send if rtmp => self.on_rtmp_sent(key, result),
                    Op::Recv if matches!(conn.body, Body::Upload(_)) => {
                        self.on_upload_recv(key, result)
                    }
                    Op::Recv if conn.phase == Phase::Ingest => self.on_ingest_recv(key, result),
                    Op::Recv if conn.phase == Phase::Lingering => self.on_linger_recv(key, result),
                    Op::Recv => self.on_recv(key, result),
                    Op::SendMsg if matches!(conn.body, Body::Memory(_)) => {
                        self.on_memory_sent(key, result)
                    }
                    Op::SendMsg => self.on_sendmsg(key, result),
                    Op::Send => self.on_send(key, result),
                    Op::SpliceIn => self.on_splice_in(key, result),
                    Op::SpliceOut => self.on_splice_out(key, result),
                    Op::PollOut => self.on_pollout(key, result),
                    Op::OpenAt2 => self.on_open(key, result, fd),
                    Op::Statx => self.on_statx(key, result),
                    // Op::Timeout only delays the open linked behind it (test builds).
                    _ => {}
                }
            }
        }
    }

    /// A reload (SIGHUP) made a new configuration the running one: use it for what starts
    /// from now on (requests, sessions, limits); what is in progress keeps its state.
    fn pick_up_reload(&mut self) {
        let generation = self.shared.config_generation.load(Ordering::Acquire);
        if generation == self.config_generation {
            return;
        }
        self.config_generation = generation;
        self.config = self.shared.config.load_full();
        self.limits = HttpLimits {
            header_bytes_max: self.config.http.header_bytes_max,
            request_line_bytes_max: self.config.http.request_line_bytes_max,
            headers_max: self.config.http.headers_max,
        };
        tracing::debug!(worker = self.id, "configuration reloaded");
    }

    /// Commands other workers posted to this worker's mailbox.
    fn drain_mailbox(&mut self) {
        let shared = self.shared.clone();
        let Some(mailbox) = shared.mailboxes.get(self.id) else {
            return;
        };
        mailbox.drain(|command| match command {
            Command::StreamNews(stream_id) => self.on_stream_news(stream_id),
            Command::Kick {
                key,
                generation,
                id,
            } => self.on_kick(key, generation, id),
        });
    }

    /// Post `command` to worker `target`, ringing its doorbell when none is pending.
    pub(super) fn post(&mut self, target: usize, command: Command) {
        let Some(mailbox) = self.shared.mailboxes.get(target) else {
            return;
        };
        let Some(ring_fd) = mailbox.post(command) else {
            return;
        };
        #[cfg(debug_assertions)]
        let ring_fd = if self.fault_drop_wakes { -1 } else { ring_fd };
        let doorbell = UserData::worker(Op::Doorbell).encode();
        let entry = ops::msg_ring(ring_fd, 0, doorbell);
        self.driver
            .submit_worker(Op::MsgRingSent, target as u32, 0, entry);
    }

    /// The completion of a doorbell this worker rang (`target` worker). A failure (the target
    /// ring is gone or its CQ overflowed) means the target was not woken: counted; the
    /// target's per-tick drain delivers the commands.
    fn on_msg_ring_sent(&mut self, result: i32, target: u32) {
        if result < 0 {
            self.stats.live_wake_failures += 1;
            tracing::debug!(
                worker = self.id,
                target,
                error = %std::io::Error::from_raw_os_error(-result),
                "doorbell failed"
            );
        }
    }

    fn on_wake(&mut self, result: i32) {
        if self.shared.shutdown.load(Ordering::Acquire) {
            self.begin_drain();
        }
        self.pick_up_reload();
        if result >= 0 && self.drain_deadline_ms.is_none() {
            self.arm_wake();
        }
    }

    /// Stop accepting; idle connections close now, busy ones after their current response.
    fn begin_drain(&mut self) {
        if self.drain_deadline_ms.is_some() {
            return;
        }
        self.drain_deadline_ms = Some(self.now_ms() + self.config.runtime.drain_timeout_ms);
        self.accepting = false;
        // The multishot accept completes with an error and is not re-armed; the fd stays open
        // (owned) until the worker ends.
        self.driver.shutdown(self.http_listener.as_fd(), false);
        if let Some(listener) = &self.rtmp_listener {
            self.driver.shutdown(listener.as_fd(), false);
        }
        if let Some(listener) = &self.admin_listener {
            self.driver.shutdown(listener.as_fd(), false);
        }
        // Idle keep-alive connections and publishers (whose bodies never end) close now; live
        // viewers get the end of their body (the last chunk) after the batch in flight; a
        // response in progress gets the drain period to finish.
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                (c.phase == Phase::ReadHead && c.rlen == 0)
                    || c.phase == Phase::Ingest
                    || c.phase == Phase::WaitStream
                    || (c.phase == Phase::Rtmp && !matches!(c.body, Body::Live(_)))
            })
            .map(|(k, _)| k)
            .collect();
        for key in idle {
            self.close(key, CloseReason::Shutdown);
        }
        let viewers: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(c.phase, Phase::Respond | Phase::Rtmp) && matches!(c.body, Body::Live(_))
            })
            .map(|(k, _)| k)
            .collect();
        for key in viewers {
            self.end_reader(key);
        }
        for (_, conn) in self.conns.iter_mut() {
            conn.keep_alive = false;
        }
    }

    fn on_accept(&mut self, listener: u32, result: i32, more: bool, fd: Option<OwnedFd>) {
        if let Some(fd) = fd {
            if !self.accepting || self.conns.len() >= self.config.http.connections_max_per_worker {
                self.stats.refused += 1;
                self.close_fd(fd);
            } else {
                self.stats.accepted += 1;
                if listener == LISTENER_RTMP {
                    self.open_rtmp_conn(fd);
                } else {
                    self.open_conn(fd, listener == LISTENER_ADMIN);
                }
            }
        } else if result != -libc::ECANCELED && self.accepting {
            peer_log!(self, PeerLog::AcceptFailed, warn, worker = self.id, listener, error = %io::Error::from_raw_os_error(-result), "accept failed");
            if !more {
                let at = self.now_ms() + ACCEPT_RETRY_MS;
                if let Some(retry) = self.accept_retry_at_ms.get_mut(listener as usize) {
                    *retry = Some(at);
                }
                return;
            }
        }
        if !more && self.accepting {
            self.arm_accept(listener);
        }
    }

    /// A new HTTP connection (`admin`: accepted on the admin listener).
    fn open_conn(&mut self, fd: OwnedFd, admin: bool) {
        let rbuf = vec![0u8; self.config.http.header_bytes_max].into_boxed_slice();
        let mut conn = self.new_conn(fd, rbuf, Phase::ReadHead);
        conn.admin = admin;
        conn.wbuf = Vec::with_capacity(512);
        conn.keep_alive = true;
        let key = self.conns.insert(conn);
        self.arm_deadline(key, Deadline::Idle, self.config.http.header_timeout_ms);
        self.submit_recv(key);
    }

    /// A new connection's state (TCP_NODELAY set, the next slot generation), not inserted yet.
    pub(super) fn new_conn(&mut self, fd: OwnedFd, rbuf: Box<[u8]>, phase: Phase) -> Conn {
        sys::set_nodelay(&fd);
        let generation = self.next_generation;
        self.next_generation = next_generation(generation);
        let peer = self.driver.peer_addr(fd.as_fd());
        let mut conn = Conn::new(generation, fd, rbuf, phase);
        conn.id = self.shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        conn.peer = peer;
        conn.opened_ms = self.now_ms();
        conn
    }

    /// Arm the connection's `kind` timer `after_ms` from now. The request timers (idle,
    /// header), the send timer and the linger timer replace each other: a connection waits for
    /// one thing at a time in HTTP/1.1, so arming one disarms the rest.
    pub(super) fn arm_deadline(&mut self, key: usize, kind: Deadline, after_ms: u64) {
        let at_ms = self.now_ms() + after_ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.timers.disarm_all();
        if let Some(entry_at) = conn.timers.arm(kind as usize, at_ms) {
            self.wheel
                .insert((key, conn.generation(), entry_at), entry_at);
        }
    }

    /// Disarm every timer of the connection (a viewer waiting at the head has no deadline).
    pub(super) fn disarm_deadlines(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.timers.disarm_all();
        }
    }

    fn expire(&mut self, now_ms: u64) {
        let mut due = std::mem::take(&mut self.due);
        let mut fired = std::mem::take(&mut self.due_timers);
        self.wheel.advance(now_ms, &mut due);
        for (key, generation, at_ms) in due.drain(..) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.generation() != generation {
                continue; // another connection's entry
            }
            fired.clear();
            if !conn.timers.fire(at_ms, now_ms, &mut fired) {
                continue; // superseded by an earlier entry
            }
            if conn.phase == Phase::Closing {
                continue;
            }
            if let Some(deadline) = fired.first().map(|&i| Deadline::ALL[i]) {
                self.deadline_expired(key, deadline);
                continue;
            }
            if let Some(next) = conn.timers.reschedule() {
                self.wheel.insert((key, generation, next), next);
            }
        }
        self.due = due;
        self.due_timers = fired;
    }

    fn deadline_expired(&mut self, key: usize, deadline: Deadline) {
        if deadline == Deadline::Callout {
            // Counted by the callout's outcome (uringcast_auth_callouts_total).
            self.callout_deadline(key);
            return;
        }
        match deadline {
            Deadline::Idle => self.stats.deadline_expired_idle += 1,
            Deadline::Header => self.stats.deadline_expired_header += 1,
            Deadline::Send => self.stats.deadline_expired_send += 1,
            Deadline::Linger => self.stats.deadline_expired_linger += 1,
            Deadline::Callout => {}
        }
        peer_log!(
            self,
            PeerLog::DeadlineExpired,
            debug,
            worker = self.id,
            deadline = deadline.label(),
            "deadline expired"
        );
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if let Body::Live(reader) = &conn.body {
            reader
                .stream
                .stats
                .slow_disconnects
                .fetch_add(1, Ordering::Relaxed);
            self.close(key, CloseReason::SlowReader);
            return;
        }
        self.close(key, CloseReason::Timeout);
    }

    /// Close from our side. The slot is released once nothing is in flight for it.
    pub(super) fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        conn.phase = Phase::Closing;
        conn.close_reason = Some(reason);
        self.stats.closed(reason);
        #[cfg(test)]
        self.closed_reasons.push(reason);
        if conn.io.is_idle() {
            self.release(key);
        } else {
            // Pending receives and polls complete now; the fd stays open until `release`.
            self.driver.shutdown(conn.fd.as_fd(), false);
        }
    }

    /// Free the slot: nothing is in flight for it any more.
    pub(super) fn release(&mut self, key: usize) {
        let close = self.conns[key]
            .close_reason
            .map_or("done", CloseReason::label);
        self.log_finish(key, close);
        self.session_end(key);
        // A pipe of a connection closed mid-body may hold bytes we never accounted for (its
        // completions were skipped while closing), so it is closed, not pooled. Dropping the
        // connection closes its socket, its pipe and its reference to the file.
        let mut conn = self.conns.remove(key);
        debug_assert!(conn.io.is_idle());
        // The one place every publish and live play ends (peer, deadline, shutdown).
        self.callout_conn_released(&mut conn);
        match std::mem::replace(&mut conn.body, Body::None) {
            Body::Live(reader) => self.detach_reader(key, &reader),
            ingest @ Body::Ingest(_) => self.drop_ingest(ingest),
            Body::Callout(callout) => self.callout_released(*callout),
            _ => {}
        }
        if let Some(rtmp) = conn.rtmp.take() {
            self.drop_rtmp(rtmp);
        }
        // The socket closes in the ring's next submission (batched with the turn's other
        // work, not a close(2) of its own); the rest of the slot is freed here.
        let Conn { fd, .. } = conn;
        self.close_fd(fd);
    }

    /// Close `fd` through the ring (IORING_OP_CLOSE).
    pub(super) fn close_fd(&mut self, fd: OwnedFd) {
        self.driver.submit_worker(Op::Close, 0, 0, ops::close(fd));
    }
}
