//! One worker: a ring, a listener, a slab of connections, and the loop described in
//! [`crate::runtime`].

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use io_uring::types::{Fd, SubmitArgs, Timespec};
use io_uring::{IoUring, cqueue, opcode, squeue};
use slab::Slab;

use super::conn::{Body, Conn, Deadline, FileBody, Phase};
use super::loglimit::{LogLimiter, PeerLog};
use super::op::{Op, UserData, next_generation};
use super::pipe::PipePool;
use super::timer::{TimerEntry, TimerWheel};
use crate::config::{Config, SendPath};
use crate::metrics::{CloseReason, WorkerMetrics, WorkerStats};
use crate::proto::http::{
    DateCache, HttpLimits, Method, Parse, RequestHead, ResponseHead, Version, parse_request,
};
use crate::server::Shared;
use crate::vod;

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

#[path = "live.rs"]
mod live;

/// What a worker is started with.
pub struct WorkerSpec {
    pub id: usize,
    pub cpu: Option<usize>,
    pub http_listener: OwnedFd,
    /// eventfd written by the main thread (shutdown) — read through the ring.
    pub wake: OwnedFd,
}

/// Content-Type of the server's own short answers (errors, "ok").
pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// After the drain deadline, how long closed connections get to collect their last CQEs.
const DRAIN_CLOSE_WAIT_MS: u64 = 1000;

/// After a failed accept (EMFILE, ENFILE, ENOBUFS...), wait this long before accepting again,
/// so a full fd table does not turn the loop into a busy spin.
const ACCEPT_RETRY_MS: u64 = 100;

/// Methods of the media paths, for `Allow` and CORS preflights.
const VOD_METHODS: &str = "GET, HEAD, OPTIONS";
const LIVE_METHODS: &str = "GET, HEAD, OPTIONS, POST, PUT";

/// Request headers a preflight allows: what players send for ranges and revalidation, and
/// what a publisher sends with its body.
const CORS_ALLOW_HEADERS: &str = "Range, If-Range, If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since, Content-Type, Cache-Control";

/// Response headers a page may read beyond the safelisted ones (a player needs the total
/// size from Content-Range and the validators to resume).
const CORS_EXPOSE_HEADERS: &str =
    "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, Date";

/// Bytes a sendfile(2) loop moves before it yields the core to other connections.
const SENDFILE_BYTES_PER_TURN: u64 = 4 << 20;

pub struct Worker {
    id: usize,
    ring: IoUring,
    shared: Arc<Shared>,
    config: Arc<Config>,
    limits: HttpLimits,
    http_listener: OwnedFd,
    wake: OwnedFd,
    /// The eventfd read lands here; boxed so its address is stable while the read is in flight.
    wake_buf: Box<u64>,
    conns: Slab<Conn>,
    next_generation: u32,
    wheel: TimerWheel,
    due: Vec<TimerEntry>,
    pipes: PipePool,
    files: vod::FileCache,
    media_root: File,
    dates: DateCache,
    stats: WorkerStats,
    metrics: WorkerMetrics,
    peer_log: LogLimiter,
    /// Completions copied out of the CQ before any is handled.
    cqes: Vec<(u64, i32, u32)>,
    /// SQEs that did not fit in the SQ; pushed first next turn.
    backlog: VecDeque<squeue::Entry>,
    epoch: Instant,
    accepting: bool,
    /// Re-arm the multishot accept at this time (after an accept error).
    accept_retry_at_ms: Option<u64>,
    drain_deadline_ms: Option<u64>,
    /// Local readers per stream id: (stream, [(slab key, generation)]).
    live: HashMap<u32, live::LocalStream>,
    /// Reused by `pump_stream` for the list of readers it walks.
    pump_scratch: Vec<(usize, u32)>,
    /// Test builds only: send every wake-up to an invalid ring (URINGCAST_FAULT_DROP_WAKES=1),
    /// so the lost-wake-up path is exercised by the integration tests.
    #[cfg(debug_assertions)]
    fault_drop_wakes: bool,
    /// Play requests waiting for their stream to appear.
    waiting: Vec<live::WaitingReader>,
}

impl Worker {
    pub fn new(spec: WorkerSpec, shared: Arc<Shared>) -> io::Result<Worker> {
        let config = shared.config.clone();
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .setup_cqsize(config.runtime.ring_entries * 4)
            .build(config.runtime.ring_entries)
            .map_err(|e| io::Error::new(e.kind(), format!("io_uring_setup failed: {e} (is io_uring disabled by sysctl kernel.io_uring_disabled or a seccomp profile?)")))?;
        let mut limits = [
            config.runtime.iowq_bounded_max,
            config.runtime.iowq_unbound_max,
        ];
        if limits != [0, 0] {
            // Splices run on io-wq threads; capping them keeps one core's splice storm from
            // spawning hundreds of kernel threads (liburing issue 426).
            ring.submitter().register_iowq_max_workers(&mut limits)?;
        }
        if let Some(cpu) = spec.cpu {
            // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it; sched_setaffinity
            // reads it for the calling thread (0). io-wq threads inherit this affinity.
            unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
        }
        let epoch = shared.epoch;
        let now_ms = epoch.elapsed().as_millis() as u64;
        let horizon_ms = config
            .http
            .keepalive_timeout_ms
            .max(config.http.header_timeout_ms)
            .max(config.http.send_timeout_ms);
        let media_root = vod::open_root(&config.vod.root)?;
        if let Some(slot) = shared.ring_fds.get(spec.id) {
            slot.store(ring.as_raw_fd(), Ordering::Release);
        }
        Ok(Worker {
            id: spec.id,
            ring,
            limits: HttpLimits {
                header_bytes_max: config.http.header_bytes_max,
                request_line_bytes_max: config.http.request_line_bytes_max,
                headers_max: config.http.headers_max,
            },
            http_listener: spec.http_listener,
            wake: spec.wake,
            wake_buf: Box::new(0),
            conns: Slab::with_capacity(config.http.connections_max_per_worker.min(4096)),
            next_generation: 1,
            wheel: TimerWheel::new(config.runtime.tick_ms, horizon_ms, now_ms),
            due: Vec::new(),
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
            cqes: Vec::with_capacity(1024),
            backlog: VecDeque::new(),
            epoch,
            accepting: true,
            accept_retry_at_ms: None,
            drain_deadline_ms: None,
            live: HashMap::new(),
            pump_scratch: Vec::new(),
            #[cfg(debug_assertions)]
            fault_drop_wakes: std::env::var_os("URINGCAST_FAULT_DROP_WAKES")
                .is_some_and(|v| v == "1"),
            waiting: Vec::new(),
            shared,
            config,
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a peer-triggered line of `kind` may be logged now (see `peer_log!`).
    fn peer_log_allowed(&mut self, kind: PeerLog) -> bool {
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

    /// Queue one SQE. When the SQ is full the queued entries are submitted first; if it is
    /// still full the entry waits in `backlog` for the next turn. Nothing panics.
    fn push(&mut self, entry: squeue::Entry) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(entry);
            return;
        }
        // SAFETY: every buffer or fd an entry points at is owned by a connection slot (or by
        // the worker, for accept and the wake read) that stays alive until the entry's CQE is
        // handled: slots are freed only when `inflight` is back to zero (see `release`).
        if unsafe { self.ring.submission().push(&entry) }.is_ok() {
            return;
        }
        let _ = self.ring.submit();
        // SAFETY: as above.
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.backlog.push_back(entry);
        }
    }

    fn flush_backlog(&mut self) {
        while let Some(entry) = self.backlog.pop_front() {
            // SAFETY: as in `push`: the owners of the pointed-to memory outlive the CQE.
            if unsafe { self.ring.submission().push(&entry) }.is_err() {
                self.backlog.push_front(entry);
                return;
            }
        }
    }

    fn arm_accept(&mut self) {
        let flags = libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        let entry = opcode::AcceptMulti::new(Fd(self.http_listener.as_raw_fd()))
            .flags(flags)
            .build()
            .user_data(UserData::worker(Op::AcceptHttp).encode());
        self.push(entry);
    }

    fn arm_wake(&mut self) {
        let ptr = (&mut *self.wake_buf) as *mut u64 as *mut u8;
        let entry = opcode::Read::new(Fd(self.wake.as_raw_fd()), ptr, 8)
            .build()
            .user_data(UserData::worker(Op::WakeRead).encode());
        self.push(entry);
    }

    /// Run until shutdown has drained every connection (or the drain deadline passed).
    pub fn run(mut self) -> io::Result<()> {
        self.arm_accept();
        self.arm_wake();
        let tick_ms = self.config.runtime.tick_ms;
        let mut last_flush_ms = 0u64;
        loop {
            let ts = Timespec::new()
                .sec(tick_ms / 1000)
                .nsec(((tick_ms % 1000) * 1_000_000) as u32);
            let args = SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                    ) => {}
                Err(e) => return Err(e),
            }
            self.cqes.clear();
            for cqe in self.ring.completion() {
                self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
            let cqes = std::mem::take(&mut self.cqes);
            for &(user_data, result, flags) in &cqes {
                self.handle(user_data, result, flags);
            }
            self.cqes = cqes;
            let now_ms = self.now_ms();
            self.expire(now_ms);
            self.live_tick();
            if let Some(at) = self.accept_retry_at_ms
                && now_ms >= at
            {
                self.accept_retry_at_ms = None;
                if self.accepting {
                    self.arm_accept();
                }
            }
            self.flush_backlog();
            if now_ms >= last_flush_ms + tick_ms {
                last_flush_ms = now_ms;
                // Bounded: a few fstat calls per tick, never a walk of the whole cache.
                self.files
                    .sweep(now_ms, self.config.vod.file_cache_sweep_per_tick);
                self.report_suppressed_logs(now_ms);
                self.stats.active = self.conns.len() as u64;
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
                    self.stats.active = self.conns.len() as u64;
                    self.metrics.flush(&mut self.stats);
                    return Ok(());
                }
            }
        }
    }

    fn handle(&mut self, user_data: u64, result: i32, flags: u32) {
        let Some(ud) = UserData::decode(user_data) else {
            return;
        };
        match ud.op {
            Op::AcceptHttp => self.on_accept(result, flags),
            Op::WakeRead => self.on_wake(result),
            Op::MsgRingWake => self.on_msg_ring_wake(result),
            Op::MsgRingSent => self.on_msg_ring_sent(result, ud.key, ud.generation),
            _ => {
                let key = ud.key as usize;
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                if conn.generation != ud.generation {
                    // A completion for a previous owner of this slot: impossible while slots
                    // are only freed at inflight == 0, but cheap to refuse.
                    return;
                }
                conn.inflight = conn.inflight.saturating_sub(1);
                if conn.phase == Phase::Closing {
                    if conn.inflight == 0 {
                        self.release(key);
                    }
                    return;
                }
                match ud.op {
                    Op::Recv if conn.phase == Phase::Ingest => self.on_ingest_recv(key, result),
                    Op::Recv if conn.phase == Phase::Lingering => self.on_linger_recv(key, result),
                    Op::Recv => self.on_recv(key, result),
                    Op::SendMsg => self.on_sendmsg(key, result),
                    Op::Send => self.on_send(key, result),
                    Op::SpliceIn => self.on_splice_in(key, result),
                    Op::SpliceOut => self.on_splice_out(key, result),
                    Op::PollOut => self.on_pollout(key, result),
                    _ => {}
                }
            }
        }
    }

    fn on_wake(&mut self, result: i32) {
        if self.shared.shutdown.load(Ordering::Acquire) {
            self.begin_drain();
        }
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
        // SAFETY: shutdown(2) on our own listening socket: the multishot accept completes
        // with an error and is not re-armed; the fd stays open (owned) until the worker ends.
        unsafe { libc::shutdown(self.http_listener.as_raw_fd(), libc::SHUT_RDWR) };
        // Idle keep-alive connections, live readers and publishers (whose bodies never end)
        // close now; a response in progress gets the drain period to finish.
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                (c.phase == Phase::ReadHead && c.rlen == 0)
                    || c.phase == Phase::Ingest
                    || c.phase == Phase::WaitStream
                    || matches!(c.body, Body::Live(_))
            })
            .map(|(k, _)| k)
            .collect();
        for key in idle {
            self.close(key, CloseReason::Shutdown);
        }
        for (_, conn) in self.conns.iter_mut() {
            conn.keep_alive = false;
        }
    }

    fn on_accept(&mut self, result: i32, flags: u32) {
        if result >= 0 {
            // SAFETY: a successful accept CQE carries a new descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(result) };
            if !self.accepting || self.conns.len() >= self.config.http.connections_max_per_worker {
                self.stats.refused += 1;
                drop(fd);
            } else {
                self.stats.accepted += 1;
                self.open_conn(fd);
            }
        } else if result != -libc::ECANCELED && self.accepting {
            peer_log!(self, PeerLog::AcceptFailed, warn, worker = self.id, error = %io::Error::from_raw_os_error(-result), "accept failed");
            if !cqueue::more(flags) {
                self.accept_retry_at_ms = Some(self.now_ms() + ACCEPT_RETRY_MS);
                return;
            }
        }
        if !cqueue::more(flags) && self.accepting {
            self.arm_accept();
        }
    }

    fn open_conn(&mut self, fd: OwnedFd) {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads `one` (a c_int, correct length) on a socket we own.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let generation = self.next_generation;
        self.next_generation = next_generation(generation);
        let now_ms = self.now_ms();
        let conn = Conn {
            generation,
            fd,
            rbuf: vec![0u8; self.config.http.header_bytes_max].into_boxed_slice(),
            rlen: 0,
            wbuf: Vec::with_capacity(512),
            woff: 0,
            body: Body::None,
            phase: Phase::ReadHead,
            inflight: 0,
            want_pollout: false,
            keep_alive: true,
            media: false,
            linger: false,
            linger_bytes_left: 0,
            requests: 0,
            deadline: Deadline::Idle,
            deadline_ms: now_ms + self.config.http.header_timeout_ms,
            wheel_at_ms: None,
        };
        let key = self.conns.insert(conn);
        self.arm_deadline(key, Deadline::Idle, self.config.http.header_timeout_ms);
        self.submit_recv(key);
    }

    fn arm_deadline(&mut self, key: usize, kind: Deadline, after_ms: u64) {
        let deadline_ms = self.now_ms() + after_ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.deadline = kind;
        conn.deadline_ms = deadline_ms;
        // A later deadline needs no new entry: the pending one fires first and re-inserts.
        // An earlier one does; the old entry becomes stale (its time no longer matches).
        if conn.wheel_at_ms.is_none_or(|at| at > deadline_ms) {
            conn.wheel_at_ms = Some(deadline_ms);
            self.wheel
                .insert((key, conn.generation, deadline_ms), deadline_ms);
        }
    }

    fn expire(&mut self, now_ms: u64) {
        let mut due = std::mem::take(&mut self.due);
        self.wheel.advance(now_ms, &mut due);
        for (key, generation, at_ms) in due.drain(..) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.generation != generation || conn.wheel_at_ms != Some(at_ms) {
                continue; // another connection's, or superseded by an earlier deadline
            }
            conn.wheel_at_ms = None;
            if conn.phase == Phase::Closing {
                continue;
            }
            if conn.deadline_ms > now_ms {
                let deadline_ms = conn.deadline_ms;
                conn.wheel_at_ms = Some(deadline_ms);
                self.wheel
                    .insert((key, generation, deadline_ms), deadline_ms);
                continue;
            }
            let deadline = conn.deadline;
            match deadline {
                Deadline::Idle => self.stats.deadline_expired_idle += 1,
                Deadline::Header => self.stats.deadline_expired_header += 1,
                Deadline::Send => self.stats.deadline_expired_send += 1,
                Deadline::Linger => self.stats.deadline_expired_linger += 1,
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
                continue;
            };
            if let Body::Live(reader) = &conn.body {
                reader
                    .stream
                    .stats
                    .slow_disconnects
                    .fetch_add(1, Ordering::Relaxed);
                self.close(key, CloseReason::SlowReader);
                continue;
            }
            self.close(key, CloseReason::Timeout);
        }
        self.due = due;
    }

    /// Receive into the free part of the connection's head buffer.
    fn submit_recv(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let free = conn.rbuf.len() - conn.rlen;
        // SAFETY: rlen <= rbuf.len(), so the pointer stays inside (or one past) the buffer.
        let ptr = unsafe { conn.rbuf.as_mut_ptr().add(conn.rlen) };
        self.queue_recv(key, ptr, free);
    }

    /// Queue a receive of up to `len` bytes at `ptr`, memory owned by connection `key` (its head
    /// buffer or its ingest buffer), which outlives the CQE (see `push`).
    fn queue_recv(&mut self, key: usize, ptr: *mut u8, len: usize) {
        let conn = &mut self.conns[key];
        let entry = opcode::Recv::new(Fd(conn.raw_fd()), ptr, len as u32)
            .build()
            .user_data(UserData::new(Op::Recv, key, conn.generation).encode());
        conn.inflight += 1;
        self.push(entry);
    }

    fn on_recv(&mut self, key: usize, result: i32) {
        if result <= 0 {
            let reason = if result == 0 || result == -libc::ECONNRESET {
                CloseReason::Peer
            } else {
                CloseReason::IoError
            };
            self.close(key, reason);
            return;
        }
        let conn = &mut self.conns[key];
        let was_empty = conn.rlen == 0;
        conn.rlen += result as usize;
        if was_empty {
            self.arm_deadline(key, Deadline::Header, self.config.http.header_timeout_ms);
        }
        self.process_head(key);
    }

    /// Parse what is buffered: answer a complete request, or read more.
    fn process_head(&mut self, key: usize) {
        let conn = &self.conns[key];
        match parse_request(&conn.rbuf[..conn.rlen], &self.limits) {
            Ok(Parse::Partial) => self.submit_recv(key),
            Ok(Parse::Complete(head)) => {
                let conn = &mut self.conns[key];
                let used = head.head_len.min(conn.rlen);
                conn.rbuf.copy_within(used..conn.rlen, 0);
                conn.rlen -= used;
                conn.requests += 1;
                conn.media = false;
                self.respond(key, head);
            }
            Err(e) => {
                self.conns[key].media = false;
                peer_log!(
                    self,
                    PeerLog::BadRequest,
                    debug,
                    worker = self.id,
                    error = e.reason(),
                    "bad request"
                );
                self.respond_simple(
                    key,
                    e.status(),
                    TEXT_PLAIN,
                    e.reason().as_bytes(),
                    false,
                    &[],
                );
            }
        }
    }

    /// Route one request and start its response.
    fn respond(&mut self, key: usize, head: RequestHead) {
        let conn = &mut self.conns[key];
        conn.keep_alive = head.keep_alive
            && conn.requests < self.config.http.keepalive_requests_max
            && self.drain_deadline_ms.is_none();
        let path = head.path.as_str();
        // `/vod/` is routed first: it always means files (an FLV file at the top of the media
        // root included), whatever a live path would look like.
        let vod = path.strip_prefix("/vod/");
        let live = if vod.is_some() {
            None
        } else {
            live::parse_live_path(path).map(|(app, name)| (app.to_string(), name.to_string()))
        };
        // Every answer on a media path, errors included, carries the CORS headers: a browser
        // player must be able to read a 404 or a 409 to tell its user what went wrong.
        self.conns[key].media = vod.is_some() || live.is_some();
        let ingest = live.is_some() && matches!(head.method, Method::Post | Method::Put);
        if !ingest && (head.content_length.unwrap_or(0) > 0 || head.chunked) {
            // Only a live publish takes a request body; reading and discarding one elsewhere
            // would let a client make us spend bandwidth for nothing, so the answer is a
            // consistent 400 and close.
            self.respond_simple(
                key,
                400,
                TEXT_PLAIN,
                b"request body not accepted here\n",
                false,
                &[],
            );
            return;
        }
        if let Some((app, name)) = live {
            match head.method {
                Method::Post | Method::Put => self.start_ingest(key, &head, &app, &name),
                Method::Get | Method::Head => self.start_reader(
                    key,
                    &app,
                    &name,
                    head.method == Method::Get,
                    head.version == Version::Http11,
                ),
                Method::Options => self.respond_preflight(key, LIVE_METHODS),
                _ => self.respond_simple(
                    key,
                    405,
                    TEXT_PLAIN,
                    b"method not allowed\n",
                    true,
                    &[("Allow", LIVE_METHODS)],
                ),
            }
            return;
        }
        let get_or_head = matches!(head.method, Method::Get | Method::Head);
        if let Some(rest) = vod {
            if head.method == Method::Options {
                self.respond_preflight(key, VOD_METHODS);
                return;
            }
            if !get_or_head {
                self.method_not_allowed(key, &head, VOD_METHODS);
                return;
            }
            self.serve_vod(key, &head, rest.to_string());
            return;
        }
        if !get_or_head {
            self.method_not_allowed(key, &head, "GET, HEAD");
            return;
        }
        let body_for_head = head.method == Method::Get;
        match path {
            "/healthz" => {
                let body = format!(
                    "{{\"status\":\"ok\",\"worker\":{},\"uptime_s\":{}}}\n",
                    self.id,
                    self.shared.epoch.elapsed().as_secs()
                );
                self.respond_body(
                    key,
                    200,
                    "application/json",
                    body.into_bytes(),
                    body_for_head,
                );
            }
            "/api/v1/streams" => {
                let body = crate::server::streams_json(&self.shared, self.now_ms());
                self.respond_body(
                    key,
                    200,
                    "application/json",
                    body.into_bytes(),
                    body_for_head,
                );
            }
            "/metrics" => {
                let mut body = crate::metrics::render();
                crate::server::stream_metrics(&self.shared, self.now_ms(), &mut body);
                self.respond_body(
                    key,
                    200,
                    "text/plain; version=0.0.4; charset=utf-8",
                    body.into_bytes(),
                    body_for_head,
                );
            }
            "/" => {
                let body = crate::server::status_page(&self.shared);
                self.respond_body(
                    key,
                    200,
                    "text/html; charset=utf-8",
                    body.into_bytes(),
                    body_for_head,
                );
            }
            _ => self.respond_simple(key, 404, TEXT_PLAIN, b"not found\n", true, &[]),
        }
    }

    fn method_not_allowed(&mut self, key: usize, head: &RequestHead, allow: &str) {
        if head.method == Method::Other {
            self.respond_simple(
                key,
                501,
                TEXT_PLAIN,
                b"method not implemented\n",
                true,
                &[("Allow", allow)],
            );
        } else {
            self.respond_simple(
                key,
                405,
                TEXT_PLAIN,
                b"method not allowed\n",
                true,
                &[("Allow", allow)],
            );
        }
    }

    /// `OPTIONS` on a media path: 204 with `Allow`, and (unless CORS is off) the CORS
    /// preflight answer. The allowed request headers are a fixed list of what players send
    /// (ranges, validators, a publisher's Content-Type), not an echo of what was asked.
    fn respond_preflight(&mut self, key: usize, methods: &str) {
        let keep_alive = self.conns[key].keep_alive;
        let cors = !self.config.http.cors_allow_origin.is_empty();
        let max_age = self.config.http.cors_max_age_s;
        self.write_head(key, 204, keep_alive, true, |h| {
            h.header("Allow", methods);
            if cors {
                h.header("Access-Control-Allow-Methods", methods);
                h.header("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
                h.header("Access-Control-Max-Age", max_age);
            }
        });
        self.start_response(key, 204, Body::None);
    }

    fn respond_body(
        &mut self,
        key: usize,
        status: u16,
        content_type: &str,
        body: Vec<u8>,
        send_body: bool,
    ) {
        let keep_alive = self.conns[key].keep_alive;
        self.write_head(key, status, keep_alive, false, |h| {
            h.header("Content-Type", content_type);
            h.header("Content-Length", body.len());
            h.header("Cache-Control", "no-store");
        });
        let conn = &mut self.conns[key];
        if send_body {
            conn.wbuf.extend_from_slice(&body);
        }
        self.start_response(key, status, Body::None);
    }

    /// A short answer. `keep` = the connection may stay open (when the request allowed it).
    fn respond_simple(
        &mut self,
        key: usize,
        status: u16,
        content_type: &str,
        body: &[u8],
        keep: bool,
        extra: &[(&str, &str)],
    ) {
        let conn = &mut self.conns[key];
        conn.keep_alive = keep && conn.keep_alive;
        let keep_alive = conn.keep_alive;
        self.write_head(key, status, keep_alive, false, |h| {
            for (name, value) in extra {
                h.header(name, value);
            }
            h.header("Content-Type", content_type);
            h.header("Content-Length", body.len());
        });
        self.conns[key].wbuf.extend_from_slice(body);
        self.start_response(key, status, Body::None);
    }

    /// Write the status line, the headers every response carries, the caller's, and (for
    /// media responses: `cors`, or any answer to a request on a media path) the CORS
    /// headers, unless `http.cors_allow_origin` is empty. No allocation: the date is
    /// borrowed from the per-second cache, the rest is pushed into the connection's buffer.
    fn write_head(
        &mut self,
        key: usize,
        status: u16,
        keep_alive: bool,
        cors: bool,
        headers: impl FnOnce(&mut ResponseHead<'_>),
    ) {
        let date = self.dates.get(SystemTime::now());
        let conn = &mut self.conns[key];
        conn.wbuf.clear();
        conn.woff = 0;
        let mut h = ResponseHead::new(&mut conn.wbuf, status);
        h.header("Server", &self.config.http.server_name);
        h.header("Date", date);
        if !keep_alive {
            h.header("Connection", "close");
        }
        headers(&mut h);
        let origin = &self.config.http.cors_allow_origin;
        if (cors || conn.media) && !origin.is_empty() {
            h.header("Access-Control-Allow-Origin", origin);
            h.header("Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
        }
        h.finish();
    }

    fn serve_vod(&mut self, key: usize, head: &RequestHead, raw: String) {
        let rel = match vod::normalise_vod_path(&raw) {
            Ok(rel) => rel,
            Err(_) => {
                self.respond_simple(key, 400, TEXT_PLAIN, b"bad path\n", true, &[]);
                return;
            }
        };
        let now_ms = self.now_ms();
        let opened =
            self.files
                .revalidate(&self.media_root, &rel, self.config.vod.symlinks, now_ms);
        let (file, meta) = match opened {
            Ok(found) => found,
            Err(e) => {
                let (status, text): (u16, &[u8]) = match e.raw_os_error() {
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG) => {
                        (404, b"not found\n")
                    }
                    Some(libc::EACCES | libc::EPERM | libc::ELOOP | libc::EXDEV) => {
                        (403, b"forbidden\n")
                    }
                    _ => (500, b"cannot open file\n"),
                };
                self.respond_simple(key, status, TEXT_PLAIN, text, true, &[]);
                return;
            }
        };
        if !meta.is_file {
            self.respond_simple(key, 403, TEXT_PLAIN, b"not a file\n", true, &[]);
            return;
        }
        let plan = vod::plan(head.method, head, &meta, vod::content_type(&rel));
        let keep_alive = self.conns[key].keep_alive;
        self.write_head(key, plan.status, keep_alive, true, |h| {
            for (name, value) in &plan.headers {
                h.header(name, value);
            }
        });
        let body = match (&plan.body, head.method) {
            (Some(range), Method::Get) if range.end > range.start => Body::File(FileBody {
                file,
                offset: range.start,
                remaining: range.end - range.start,
                pipe: None,
                pipe_fill: 0,
            }),
            _ => Body::None,
        };
        self.start_response(key, plan.status, body);
    }

    fn start_response(&mut self, key: usize, status: u16, body: Body) {
        self.stats.request(status);
        let conn = &mut self.conns[key];
        conn.phase = Phase::Respond;
        conn.linger = status >= 400;
        conn.body = body;
        conn.woff = 0;
        self.arm_deadline(key, Deadline::Send, self.config.http.send_timeout_ms);
        self.advance(key);
    }

    /// Queue the next step of the response, if nothing is in flight.
    fn advance(&mut self, key: usize) {
        let send_path = self.config.vod.send_path;
        let conn = &mut self.conns[key];
        if conn.inflight > 0 {
            return;
        }
        if conn.want_pollout {
            conn.want_pollout = false;
            let entry = opcode::PollAdd::new(Fd(conn.raw_fd()), libc::POLLOUT as u32)
                .build()
                .user_data(UserData::new(Op::PollOut, key, conn.generation).encode());
            conn.inflight += 1;
            self.push(entry);
            return;
        }
        let body_left = match &conn.body {
            Body::File(f) => f.remaining > 0 || f.pipe_fill > 0,
            Body::None | Body::Ingest(_) => false,
            Body::Live(reader) => {
                if conn.woff >= conn.wbuf.len() {
                    if reader.finishing {
                        self.finish_response(key);
                    } else {
                        self.pump_reader(key);
                    }
                    return;
                }
                false
            }
        };
        if conn.woff < conn.wbuf.len() {
            let pending = &conn.wbuf[conn.woff..];
            let more = if body_left { libc::MSG_MORE } else { 0 };
            let mut entry =
                opcode::Send::new(Fd(conn.raw_fd()), pending.as_ptr(), pending.len() as u32)
                    .flags(libc::MSG_NOSIGNAL | more)
                    .build()
                    .user_data(UserData::new(Op::Send, key, conn.generation).encode());
            conn.inflight += 1;
            self.stats.sends_submitted += 1;
            // Link the first body step behind the head: one io_uring_enter carries both, and
            // a short head send cancels the rest of the chain (handled as no progress).
            let link = send_path == SendPath::Splice && body_left;
            if link {
                entry = entry.flags(squeue::Flags::IO_LINK);
            }
            self.push(entry);
            if link {
                self.queue_splices(key);
            }
            return;
        }
        if !body_left {
            self.finish_response(key);
            return;
        }
        match send_path {
            SendPath::Splice => self.queue_splices(key),
            SendPath::Sendfile => self.sendfile_step(key),
            SendPath::Auto => {
                // sendfile only for a chunk that is entirely in the page cache (and only once
                // the pipe is drained, so bytes stay in order); anything else goes through
                // io_uring splice, where a disk read waits on io-wq instead of on this core.
                let cached = match &self.conns[key].body {
                    Body::File(f) if f.pipe_fill == 0 => {
                        let chunk = f.remaining.min(SENDFILE_BYTES_PER_TURN);
                        super::cachestat::range_cached(f.file.as_raw_fd(), f.offset, chunk)
                            == Some(true)
                    }
                    _ => false,
                };
                if cached {
                    self.sendfile_step(key);
                } else {
                    self.stats.uncached_chunks += 1;
                    self.queue_splices(key);
                }
            }
        }
    }

    /// Queue file → pipe → socket as a linked pair, or drain what the pipe already holds.
    fn queue_splices(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let generation = conn.generation;
        let sock = conn.raw_fd();
        let Body::File(body) = &mut conn.body else {
            return;
        };
        if body.pipe.is_none() {
            match self.pipes.get() {
                Ok(pipe) => body.pipe = Some(pipe),
                Err(e) => {
                    peer_log!(self, PeerLog::ResourceFailed, warn, worker = self.id, error = %e, "cannot create pipe");
                    self.close(key, CloseReason::IoError);
                    return;
                }
            }
        }
        let Some(pipe) = &body.pipe else { return };
        let (pipe_r, pipe_w, capacity) = (pipe.read_fd(), pipe.write_fd(), pipe.capacity);
        let out_flags = libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE;
        if body.pipe_fill > 0 {
            let more = if body.remaining > 0 {
                libc::SPLICE_F_MORE
            } else {
                0
            };
            let entry = opcode::Splice::new(Fd(pipe_r), -1, Fd(sock), -1, body.pipe_fill as u32)
                .flags(out_flags | more)
                .build()
                .user_data(UserData::new(Op::SpliceOut, key, generation).encode());
            conn.inflight += 1;
            self.stats.splices_submitted += 1;
            self.push(entry);
            return;
        }
        let len = body.remaining.min(capacity as u64) as u32;
        let offset = body.offset as i64;
        let file_fd: RawFd = body.file.as_raw_fd();
        let more = if body.remaining > u64::from(len) {
            libc::SPLICE_F_MORE
        } else {
            0
        };
        let fill = opcode::Splice::new(Fd(file_fd), offset, Fd(pipe_w), -1, len)
            .flags(libc::SPLICE_F_MOVE)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(UserData::new(Op::SpliceIn, key, generation).encode());
        let drain = opcode::Splice::new(Fd(pipe_r), -1, Fd(sock), -1, len)
            .flags(out_flags | more)
            .build()
            .user_data(UserData::new(Op::SpliceOut, key, generation).encode());
        conn.inflight += 2;
        self.stats.splices_submitted += 2;
        self.push(fill);
        self.push(drain);
    }

    /// sendfile(2) from the worker thread on the non-blocking socket until EAGAIN, the end,
    /// or the per-turn budget; then wait for POLLOUT through the ring.
    fn sendfile_step(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let sock = conn.raw_fd();
        let Body::File(body) = &mut conn.body else {
            return;
        };
        let mut budget = SENDFILE_BYTES_PER_TURN;
        let mut sent_total = 0u64;
        let mut outcome = Ok(());
        while body.remaining > 0 && budget > 0 {
            let mut offset = body.offset as libc::off_t;
            let count = body.remaining.min(budget) as usize;
            self.stats.sendfile_calls += 1;
            // SAFETY: both fds are open (the socket and the file are owned by this
            // connection); `offset` is a valid off_t the kernel updates.
            let n = unsafe { libc::sendfile(sock, body.file.as_raw_fd(), &mut offset, count) };
            if n > 0 {
                let n = n as u64;
                body.offset += n;
                body.remaining -= n;
                budget -= n.min(budget);
                sent_total += n;
            } else if n == 0 {
                outcome = Err(CloseReason::IoError); // the file shrank under us
                break;
            } else {
                let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
                if errno == libc::EAGAIN {
                    break;
                }
                if errno == libc::EINTR {
                    continue;
                }
                outcome = Err(CloseReason::from_errno(errno));
                break;
            }
        }
        let done = body.remaining == 0;
        self.stats.bytes_sent += sent_total;
        if let Err(reason) = outcome {
            self.close(key, reason);
            return;
        }
        if sent_total > 0 {
            self.arm_deadline(key, Deadline::Send, self.config.http.send_timeout_ms);
        }
        if done {
            self.finish_response(key);
        } else {
            // EAGAIN or budget spent: come back when the socket is writable (at once, when it
            // was only the budget, which lets other connections of this core have a turn).
            self.conns[key].want_pollout = true;
            self.advance(key);
        }
    }

    fn progress(&mut self, key: usize, bytes: u64) {
        self.stats.bytes_sent += bytes;
        self.arm_deadline(key, Deadline::Send, self.config.http.send_timeout_ms);
    }

    fn on_send(&mut self, key: usize, result: i32) {
        if result < 0 {
            if result == -libc::ECANCELED {
                self.advance(key);
                return;
            }
            self.close(key, CloseReason::from_errno(-result));
            return;
        }
        self.conns[key].woff += result as usize;
        self.progress(key, result as u64);
        self.advance(key);
    }

    fn on_splice_in(&mut self, key: usize, result: i32) {
        let conn = &mut self.conns[key];
        let Body::File(body) = &mut conn.body else {
            return;
        };
        if result > 0 {
            body.pipe_fill += result as usize;
            body.offset += result as u64;
            body.remaining -= (result as u64).min(body.remaining);
        } else if result != -libc::ECANCELED {
            // An error, or 0: the file ended before the promised length (truncated while we
            // send). A cancelled splice (its chain broke) is no progress, not a failure.
            peer_log!(
                self,
                PeerLog::FileSendFailed,
                debug,
                worker = self.id,
                result,
                "splice file -> pipe failed"
            );
            self.close(key, CloseReason::IoError);
            return;
        }
        self.advance(key);
    }

    fn on_splice_out(&mut self, key: usize, result: i32) {
        let conn = &mut self.conns[key];
        let Body::File(body) = &mut conn.body else {
            return;
        };
        if result > 0 {
            body.pipe_fill -= (result as usize).min(body.pipe_fill);
            self.progress(key, result as u64);
        } else if result == -libc::EAGAIN {
            conn.want_pollout = true;
        } else if result != -libc::ECANCELED {
            let reason = CloseReason::from_errno(-result);
            self.close(key, reason);
            return;
        }
        self.advance(key);
    }

    fn on_pollout(&mut self, key: usize, result: i32) {
        if result < 0 {
            self.close(key, CloseReason::IoError);
            return;
        }
        if result & (libc::POLLERR | libc::POLLHUP) as i32 != 0
            && result & libc::POLLOUT as i32 == 0
        {
            self.close(key, CloseReason::Peer);
            return;
        }
        self.advance(key);
    }

    /// The response is out: keep the connection for the next request, or close it.
    fn finish_response(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if let Body::File(body) = std::mem::replace(&mut conn.body, Body::None)
            && let Some(pipe) = body.pipe
            && body.pipe_fill == 0
        {
            self.pipes.put(pipe);
        }
        let conn = &mut self.conns[key];
        conn.wbuf.clear();
        conn.woff = 0;
        if !conn.keep_alive {
            if conn.linger && self.config.http.lingering_close_ms > 0 {
                self.begin_linger(key);
            } else {
                self.close(key, CloseReason::Done);
            }
            return;
        }
        conn.phase = Phase::ReadHead;
        if conn.rlen == 0 {
            self.arm_deadline(key, Deadline::Idle, self.config.http.keepalive_timeout_ms);
            self.submit_recv(key);
        } else {
            // Pipelined: the next request is (partly) buffered already.
            self.arm_deadline(key, Deadline::Header, self.config.http.header_timeout_ms);
            self.process_head(key);
        }
    }

    /// Close after an error answer the way nginx's lingering close does: the answer is out
    /// (nothing is in flight), so shut our side down — the FIN follows the answer — and read
    /// and discard what the peer still sends until it closes, or until the byte budget or
    /// the deadline runs out. Only then is the socket closed, so the kernel never resets the
    /// connection under an answer the peer is still about to read. All through the ring: one
    /// receive at a time into the head buffer, the deadline from the timer wheel.
    fn begin_linger(&mut self, key: usize) {
        let bytes = self.config.http.lingering_close_bytes;
        let after_ms = self.config.http.lingering_close_ms;
        let buffer_bytes = self.config.http.header_bytes_max;
        let conn = &mut self.conns[key];
        conn.phase = Phase::Lingering;
        conn.linger_bytes_left = bytes;
        conn.rlen = 0;
        if conn.rbuf.is_empty() {
            // A publisher or viewer gave its head buffer back; a refused publish still needs
            // one to discard into.
            conn.rbuf = vec![0u8; buffer_bytes].into_boxed_slice();
        }
        // SAFETY: shutdown(2) on the connection's own open socket; it only queues a FIN
        // behind the bytes already sent and never blocks.
        unsafe { libc::shutdown(conn.raw_fd(), libc::SHUT_WR) };
        self.arm_deadline(key, Deadline::Linger, after_ms);
        self.submit_recv(key);
    }

    fn on_linger_recv(&mut self, key: usize, result: i32) {
        if result <= 0 {
            // The peer closed (or reset) after reading what it wanted: the normal end.
            self.close(key, CloseReason::Peer);
            return;
        }
        let conn = &mut self.conns[key];
        let got = result as u64;
        if got >= conn.linger_bytes_left {
            // Still sending after the budget: it is not listening to us.
            self.close(key, CloseReason::ProtocolError);
            return;
        }
        conn.linger_bytes_left -= got;
        conn.rlen = 0;
        self.submit_recv(key);
    }

    /// Close from our side. The slot is released once nothing is in flight for it.
    fn close(&mut self, key: usize, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closing {
            return;
        }
        conn.phase = Phase::Closing;
        self.stats.closed(reason);
        if conn.inflight == 0 {
            self.release(key);
        } else {
            // SAFETY: shutdown(2) on the connection's own socket makes its pending receive
            // and poll complete now; the fd itself stays open until `release`.
            unsafe { libc::shutdown(conn.raw_fd(), libc::SHUT_RDWR) };
        }
    }

    /// Free the slot: nothing is in flight for it any more.
    fn release(&mut self, key: usize) {
        // A pipe of a connection closed mid-body may hold bytes we never accounted for (its
        // completions were skipped while closing), so it is closed, not pooled. Dropping the
        // connection closes its socket, its pipe and its reference to the file.
        let mut conn = self.conns.remove(key);
        match std::mem::replace(&mut conn.body, Body::None) {
            Body::Live(reader) => self.detach_reader(key, &reader.stream),
            ingest @ Body::Ingest(_) => self.drop_ingest(ingest),
            _ => {}
        }
        drop(conn);
    }
}
