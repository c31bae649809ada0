//! The io_uring driver: ring set-up, submission (with a backlog instead of a panic when the
//! submission queue is full), one `io_uring_enter` per loop turn, and completions copied out
//! before any is handled.
//!
//! Every operation is submitted for a slot ([`SlotIo`]): its `user_data` is
//! (op | generation | slot key) and the slot's receive or transmit in-flight count goes up by
//! one. The owner of the slot frees it only when both counts are back to zero
//! ([`SlotIo::is_idle`]), which is what keeps every buffer an operation points at alive until
//! the kernel is done with it.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

use io_uring::types::{SubmitArgs, Timespec};
use io_uring::{IoUring, squeue};

use super::op::{Direction, Op, UserData};
use super::ops::Sqe;

/// What a ring is built with.
#[derive(Clone, Copy, Debug)]
pub struct DriverConfig {
    /// Submission queue entries; the completion queue gets four times as many.
    pub entries: u32,
    /// Caps on io-wq workers (bounded, unbound); `[0, 0]` leaves the kernel's defaults.
    pub iowq_max: [u32; 2],
}

/// One completion, copied out of the completion queue.
#[derive(Debug)]
pub struct Completion {
    pub user_data: u64,
    pub result: i32,
    pub flags: u32,
    /// The new descriptor of a successful operation that creates one (accept, openat2; see
    /// [`Op::yields_fd`]), owned from the moment it is reaped: a completion dropped unhandled
    /// (a stale generation, a slot that is closing) closes it instead of leaking it.
    pub fd: Option<OwnedFd>,
}

impl Completion {
    /// Whether a multishot operation stays armed after this completion (IORING_CQE_F_MORE).
    pub fn more(&self) -> bool {
        io_uring::cqueue::more(self.flags)
    }
}

/// In-flight accounting of one slot (a connection). A slot is freed by its owner only when
/// nothing is in flight in either direction, so an operation's buffers, which live in the
/// slot, outlive its completion. Receive and transmit are counted apart: a protocol may keep a
/// receive posted while it sends (RTMP), and each direction knows whether its own operation is
/// still out.
#[derive(Debug)]
pub struct SlotIo {
    generation: u32,
    rx: u16,
    tx: u16,
}

impl SlotIo {
    pub fn new(generation: u32) -> SlotIo {
        SlotIo {
            generation,
            rx: 0,
            tx: 0,
        }
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// Receive-side operations in flight.
    pub fn rx(&self) -> u16 {
        self.rx
    }

    /// Transmit-side operations in flight (sends, splices, polls for writability, opens and
    /// stats of a file to send).
    pub fn tx(&self) -> u16 {
        self.tx
    }

    /// Nothing in flight: the slot (and every buffer in it) may be freed.
    pub fn is_idle(&self) -> bool {
        self.rx == 0 && self.tx == 0
    }

    pub(super) fn begin(&mut self, op: Op) {
        match op.direction() {
            Direction::Receive => self.rx += 1,
            Direction::Transmit => self.tx += 1,
        }
    }

    /// A completion for this slot arrived: its operation is no longer in flight. Returns
    /// false for a completion that does not belong to this slot's generation (a stale one,
    /// impossible while slots are freed only when idle, but cheap to refuse).
    pub fn complete(&mut self, ud: &UserData) -> bool {
        if ud.generation != self.generation {
            return false;
        }
        match ud.op.direction() {
            Direction::Receive => self.rx = self.rx.saturating_sub(1),
            Direction::Transmit => self.tx = self.tx.saturating_sub(1),
        }
        true
    }
}

/// What a worker needs from its ring: submit operations for slots or for itself, one
/// submit-and-wait per loop turn, the completions, and the services that act on a socket
/// outside the ring (shutdown) or on time. [`Driver`] is the real one (io_uring); the session
/// tests run the same worker against `super::fake::FakeRing`, which performs the operations
/// against scripted peers and a clock the test moves.
pub trait Ring {
    /// Submit `sqe` for `slot` (key `key`): tags it with (op, generation, key) and counts it
    /// in flight in the op's direction.
    ///
    /// The caller promises what every builder in [`super::ops`] documents: the memory and fds
    /// the operation points at are owned by the slot (or are shared, refcounted bytes the slot
    /// holds) and stay put until the slot is idle again.
    fn submit(&mut self, slot: &mut SlotIo, key: usize, op: Op, sqe: Sqe);

    /// Submit an operation that belongs to the worker, not to a slot (accept, the eventfd
    /// read, doorbells); `key` is a small number the handler interprets (listener index,
    /// target worker).
    fn submit_worker(&mut self, op: Op, key: u32, generation: u32, sqe: Sqe);

    /// Submit what is queued and wait for at least one completion or `timeout_ms`.
    fn submit_and_wait(&mut self, timeout_ms: u64) -> io::Result<()>;

    /// Every available completion, into `out` (cleared first).
    fn reap(&mut self, out: &mut Vec<Completion>);

    /// The target of IORING_OP_MSG_RING from other workers.
    fn ring_fd(&self) -> RawFd;

    /// shutdown(2) of a slot's socket: `write_only` queues a FIN behind what was sent;
    /// otherwise both directions, which completes the socket's pending receives and polls.
    fn shutdown(&mut self, fd: BorrowedFd<'_>, write_only: bool);

    /// The address of a slot's peer (None when it has none, or is gone).
    fn peer_addr(&self, fd: BorrowedFd<'_>) -> Option<std::net::SocketAddr>;

    /// Milliseconds since `epoch` on this ring's clock.
    fn now_ms(&self, epoch: Instant) -> u64;
}

pub struct Driver {
    ring: IoUring,
    /// SQEs that did not fit in the submission queue; pushed first next turn.
    backlog: VecDeque<squeue::Entry>,
}

impl Driver {
    /// A ring set up SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN: completions are produced
    /// only inside this thread's `io_uring_enter`, never by interrupting it.
    pub fn new(config: DriverConfig) -> io::Result<Driver> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .setup_cqsize(config.entries * 4)
            .build(config.entries)
            .map_err(|e| io::Error::new(e.kind(), format!("io_uring_setup failed: {e} (is io_uring disabled by sysctl kernel.io_uring_disabled or a seccomp profile?)")))?;
        let mut limits = config.iowq_max;
        if limits != [0, 0] {
            // Splices run on io-wq threads; capping them keeps one core's splice storm from
            // spawning hundreds of kernel threads (liburing issue 426).
            ring.submitter().register_iowq_max_workers(&mut limits)?;
        }
        Ok(Driver {
            ring,
            backlog: VecDeque::new(),
        })
    }

    /// Queue one SQE. When the SQ is full the queued entries are submitted first; if it is
    /// still full the entry waits in `backlog` for the next turn. Nothing panics.
    fn push(&mut self, entry: squeue::Entry) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(entry);
            return;
        }
        // SAFETY: every buffer or fd an entry points at is owned by a slot that stays alive
        // until the entry's completion is handled (slots are freed only when `SlotIo::is_idle`,
        // see `submit`), or by the worker, which outlives its ring.
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
}

impl Ring for Driver {
    fn submit(&mut self, slot: &mut SlotIo, key: usize, op: Op, sqe: Sqe) {
        slot.begin(op);
        let entry = sqe
            .entry()
            .user_data(UserData::new(op, key, slot.generation).encode());
        self.push(entry);
    }

    fn submit_worker(&mut self, op: Op, key: u32, generation: u32, sqe: Sqe) {
        let entry = sqe
            .entry()
            .user_data(UserData::new(op, key as usize, generation).encode());
        self.push(entry);
    }

    fn ring_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    fn shutdown(&mut self, fd: BorrowedFd<'_>, write_only: bool) {
        super::sys::shutdown(&fd, write_only);
    }

    fn peer_addr(&self, fd: BorrowedFd<'_>) -> Option<std::net::SocketAddr> {
        super::sys::peer_addr(fd)
    }

    fn now_ms(&self, epoch: Instant) -> u64 {
        epoch.elapsed().as_millis() as u64
    }

    /// One `io_uring_enter`: submit what is queued and wait for at least one completion or
    /// `timeout_ms`, whichever comes first.
    fn submit_and_wait(&mut self, timeout_ms: u64) -> io::Result<()> {
        self.flush_backlog();
        let ts = Timespec::new()
            .sec(timeout_ms / 1000)
            .nsec(((timeout_ms % 1000) * 1_000_000) as u32);
        let args = SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Copy every available completion into `out` (cleared first), so handlers that submit
    /// new operations never recurse into the queue being read.
    fn reap(&mut self, out: &mut Vec<Completion>) {
        out.clear();
        for cqe in self.ring.completion() {
            let user_data = cqe.user_data();
            let result = cqe.result();
            let yields_fd = UserData::decode(user_data).is_some_and(|ud| ud.op.yields_fd());
            let fd = (yields_fd && result >= 0).then(|| {
                // SAFETY: a successful accept or openat2 completion carries a descriptor the
                // kernel just installed for us; nothing else knows it, and this is the only
                // place that wraps it (each CQE is reaped once).
                unsafe { OwnedFd::from_raw_fd(result) }
            });
            out.push(Completion {
                user_data,
                result,
                flags: cqe.flags(),
                fd,
            });
        }
    }
}
