//! A fake ring for the session tests: the worker and its sessions run unchanged, but their
//! operations are performed here, against scripted peers and a clock the test moves, instead
//! of by the kernel. No sockets, no threads, no sleeping: a test connects a peer, gives it
//! bytes to send, turns the worker's loop, and reads what the server sent (quinn-proto and
//! str0m test their connections the same way, with the I/O held outside the state machine).
//!
//! What it models of a TCP socket, because the sessions depend on it:
//! - a receive completes with what the peer has sent (at most `recv_max` bytes at a time, so a
//!   test can split a request anywhere), with 0 once the peer closed its side, and waits
//!   otherwise;
//! - a send (send, sendmsg) takes at most the peer's receive `window` and waits while the
//!   window is shut, as io_uring's send does on a full socket; a poll for writability waits
//!   for the window too;
//! - a reset peer fails both with ECONNRESET; after the server's `shutdown` a receive
//!   completes with 0 and a send fails with EPIPE;
//! - an IORING_OP_CLOSE closes the descriptor at once and marks the peer closed;
//! - an IORING_OP_MSG_RING to this ring's own fd posts its completion here (a worker waking
//!   itself), and the eventfd read completes when the test calls [`FakeRing::wake`].
//!
//! Files (openat2, statx, splice) and outbound connects are not modelled: they complete with
//! EOPNOTSUPP. Their sessions are covered by the integration tests against the real kernel.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Instant;

use super::driver::{Completion, Ring, SlotIo};
use super::op::{Op, UserData};
use super::ops::{Sqe, SqeOp};

/// This ring's MSG_RING target: not a descriptor (it is never passed to the kernel).
pub const FAKE_RING_FD: RawFd = i32::MAX - 7;

/// IORING_CQE_F_MORE: a multishot operation stays armed.
const CQE_F_MORE: u32 = 1 << 1;

/// The other end of one accepted connection.
#[derive(Debug)]
pub struct Peer {
    /// Bytes the peer sent that the server has not received yet.
    pub inbox: VecDeque<u8>,
    /// Everything the server sent, in order.
    pub outbox: Vec<u8>,
    /// The peer closed its sending side: receives return 0 once `inbox` is empty.
    pub eof: bool,
    /// The peer reset the connection: receives and sends fail with ECONNRESET.
    pub reset: bool,
    /// Bytes the peer's receive window still takes; sends wait at 0.
    pub window: usize,
    /// At most this many bytes per receive completion.
    pub recv_max: usize,
    /// The server shut both directions down (`Ring::shutdown`).
    pub shut: bool,
    /// The server queued a FIN behind what it sent (`Ring::shutdown(write_only)`).
    pub fin: bool,
    /// Send completions (send and sendmsg) that carried bytes.
    pub sends: usize,
    /// The server closed the socket (IORING_OP_CLOSE, or a close(2) of its own, which the fake
    /// sees as the descriptor no longer being open).
    pub closed: bool,
    pub addr: SocketAddr,
}

impl Peer {
    fn new(addr: SocketAddr) -> Peer {
        Peer {
            inbox: VecDeque::new(),
            outbox: Vec::new(),
            eof: false,
            reset: false,
            window: usize::MAX,
            recv_max: usize::MAX,
            shut: false,
            fin: false,
            sends: 0,
            closed: false,
            addr,
        }
    }
}

struct Pending {
    user_data: u64,
    op: SqeOp,
}

pub struct FakeRing {
    now_ms: u64,
    pending: Vec<Pending>,
    /// Completions posted outside any operation (accepts, doorbells).
    posted: VecDeque<Completion>,
    peers: HashMap<RawFd, Peer>,
    /// The armed multishot accept of each listener (by listener key).
    accepts: HashMap<u32, u64>,
    /// Wake-ups asked for by the test, for the next eventfd read.
    wakes: u32,
    next_port: u16,
    /// Completions handed out so far.
    reaped: u64,
}

impl Default for FakeRing {
    fn default() -> Self {
        FakeRing::new()
    }
}

impl FakeRing {
    pub fn new() -> FakeRing {
        FakeRing {
            now_ms: 0,
            pending: Vec::new(),
            posted: VecDeque::new(),
            peers: HashMap::new(),
            accepts: HashMap::new(),
            wakes: 0,
            next_port: 40000,
            reaped: 0,
        }
    }

    /// A new connection on listener `listener` (its accept's key) from 127.0.0.1. Returns the
    /// peer's handle (the accepted descriptor's number). The descriptor is a real one (on
    /// /dev/null) so the server owns and closes it like a socket; socket options on it fail
    /// and are ignored, as the server ignores them.
    pub fn connect(&mut self, listener: u32) -> io::Result<RawFd> {
        let Some(&user_data) = self.accepts.get(&listener) else {
            return Err(io::Error::other("no accept is armed on that listener"));
        };
        let fd: OwnedFd = std::fs::File::open("/dev/null")?.into();
        let raw = fd.as_raw_fd();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.next_port));
        self.next_port = self.next_port.wrapping_add(1).max(1024);
        self.peers.insert(raw, Peer::new(addr));
        self.posted.push_back(Completion {
            user_data,
            result: raw,
            flags: CQE_F_MORE,
            fd: Some(fd),
        });
        Ok(raw)
    }

    pub fn peer(&mut self, fd: RawFd) -> &mut Peer {
        self.peers
            .entry(fd)
            .or_insert_with(|| Peer::new(SocketAddr::from(([127, 0, 0, 1], 1))))
    }

    /// The peer sends `bytes`.
    pub fn write(&mut self, fd: RawFd, bytes: &[u8]) {
        self.peer(fd).inbox.extend(bytes);
    }

    /// What the server sent since the last call.
    pub fn read(&mut self, fd: RawFd) -> Vec<u8> {
        std::mem::take(&mut self.peer(fd).outbox)
    }

    /// The next eventfd read completes (the main thread's shutdown or reload signal).
    pub fn wake(&mut self) {
        self.wakes += 1;
    }

    /// Move the clock on.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// Completions handed out so far (a loop turn that reaps none made no progress).
    pub fn reaped(&self) -> u64 {
        self.reaped
    }

    /// Operations waiting for their peer (or for the test).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Perform `op` if it can complete now: Some(result), or None to keep waiting.
    fn perform(&mut self, op: &SqeOp) -> Option<i32> {
        match *op {
            SqeOp::AcceptMulti { .. } => None,
            SqeOp::ReadU64 { buf, .. } => {
                if self.wakes == 0 {
                    return None;
                }
                self.wakes -= 1;
                // SAFETY: the worker owns the boxed u64 this read targets and keeps it until
                // the read's completion (Ring::submit's contract), which this produces.
                unsafe { *buf = 1 };
                Some(8)
            }
            SqeOp::Recv { fd, buf, len } => {
                let peer = self.peer(fd);
                if peer.reset {
                    return Some(-libc::ECONNRESET);
                }
                if peer.shut {
                    return Some(0);
                }
                if peer.inbox.is_empty() {
                    return peer.eof.then_some(0);
                }
                let n = (len as usize).min(peer.inbox.len()).min(peer.recv_max);
                for i in 0..n {
                    let byte = peer.inbox.pop_front().unwrap_or(0);
                    // SAFETY: `buf` points at `len` bytes of the slot's receive buffer, owned
                    // and untouched by the worker until this completion (Ring::submit), and
                    // i < n <= len.
                    unsafe { *buf.add(i) = byte };
                }
                Some(n as i32)
            }
            SqeOp::Send { fd, buf, len, .. } => {
                let peer = self.peer(fd);
                let n = Self::send_room(peer, len as usize)?;
                let n = match n {
                    Ok(n) => n,
                    Err(e) => return Some(e),
                };
                // SAFETY: `buf` points at `len` bytes the slot keeps alive and unchanged until
                // this completion (Ring::submit), and n <= len.
                let bytes = unsafe { std::slice::from_raw_parts(buf, n) };
                peer.outbox.extend_from_slice(bytes);
                peer.window -= n;
                peer.sends += 1;
                Some(n as i32)
            }
            SqeOp::SendMsg { fd, msg } => {
                // SAFETY: the msghdr and its iovecs live in the slot's SendBatch, and the bytes
                // they point at are held by the slot, until this completion (Ring::submit).
                let iov = unsafe {
                    let msg = &*msg;
                    std::slice::from_raw_parts(msg.msg_iov, msg.msg_iovlen)
                };
                let total: usize = iov.iter().map(|v| v.iov_len).sum();
                let peer = self.peer(fd);
                let n = match Self::send_room(peer, total)? {
                    Ok(n) => n,
                    Err(e) => return Some(e),
                };
                let mut left = n;
                for v in iov {
                    if left == 0 {
                        break;
                    }
                    let take = v.iov_len.min(left);
                    // SAFETY: as above; `take` <= the iovec's length.
                    let bytes =
                        unsafe { std::slice::from_raw_parts(v.iov_base.cast::<u8>(), take) };
                    peer.outbox.extend_from_slice(bytes);
                    left -= take;
                }
                peer.window -= n;
                peer.sends += 1;
                Some(n as i32)
            }
            SqeOp::PollOut { fd } => {
                let peer = self.peer(fd);
                if peer.reset || peer.shut {
                    Some(libc::POLLERR as i32 | libc::POLLHUP as i32)
                } else {
                    (peer.window > 0).then_some(libc::POLLOUT as i32)
                }
            }
            SqeOp::MsgRing {
                target,
                data,
                user_data,
            } => {
                if target != FAKE_RING_FD {
                    return Some(-libc::EBADF);
                }
                self.posted.push_back(Completion {
                    user_data,
                    result: data,
                    flags: 0,
                    fd: None,
                });
                Some(0)
            }
            SqeOp::Timeout { .. } => Some(-libc::ETIME),
            SqeOp::OpenAt2 { .. }
            | SqeOp::Statx { .. }
            | SqeOp::Splice { .. }
            | SqeOp::Connect { .. } => Some(-libc::EOPNOTSUPP),
            // Closes complete at submission (`submit_worker`).
            SqeOp::Close { .. } => Some(0),
        }
    }

    /// How many of `len` bytes a send may take now: None to wait (window shut), Err(-errno)
    /// for a failed send.
    fn send_room(peer: &Peer, len: usize) -> Option<Result<usize, i32>> {
        if peer.reset {
            return Some(Err(-libc::ECONNRESET));
        }
        if peer.shut || peer.fin {
            return Some(Err(-libc::EPIPE));
        }
        if len == 0 {
            return Some(Ok(0));
        }
        (peer.window > 0).then(|| Ok(len.min(peer.window)))
    }
}

impl Ring for FakeRing {
    fn submit(&mut self, slot: &mut SlotIo, key: usize, op: Op, sqe: Sqe) {
        slot.begin(op);
        let user_data = UserData::new(op, key, slot.generation()).encode();
        self.pending.push(Pending {
            user_data,
            op: sqe.op,
        });
    }

    fn submit_worker(&mut self, op: Op, key: u32, generation: u32, sqe: Sqe) {
        let user_data = UserData::new(op, key as usize, generation).encode();
        if let SqeOp::Close { fd } = sqe.op {
            if let Some(peer) = self.peers.get_mut(&fd.as_raw_fd()) {
                peer.closed = true;
            }
            drop(fd);
            self.posted.push_back(Completion {
                user_data,
                result: 0,
                flags: 0,
                fd: None,
            });
            return;
        }
        if op == Op::Accept {
            self.accepts.insert(key, user_data);
        }
        self.pending.push(Pending {
            user_data,
            op: sqe.op,
        });
    }

    fn submit_and_wait(&mut self, _timeout_ms: u64) -> io::Result<()> {
        Ok(())
    }

    /// Perform every operation that can complete now, in submission order (so one socket's
    /// operations complete in the order they were submitted, as they do on a real one).
    fn reap(&mut self, out: &mut Vec<Completion>) {
        out.clear();
        out.extend(self.posted.drain(..));
        let pending = std::mem::take(&mut self.pending);
        for p in pending {
            match self.perform(&p.op) {
                Some(result) => out.push(Completion {
                    user_data: p.user_data,
                    result,
                    flags: 0,
                    fd: None,
                }),
                None => self.pending.push(p),
            }
        }
        // Completions posted while performing (a worker ringing its own doorbell).
        out.extend(self.posted.drain(..));
        self.reaped += out.len() as u64;
    }

    fn ring_fd(&self) -> RawFd {
        FAKE_RING_FD
    }

    fn shutdown(&mut self, fd: BorrowedFd<'_>, write_only: bool) {
        let raw = fd.as_raw_fd();
        if let Some(peer) = self.peers.get_mut(&raw) {
            if write_only {
                peer.fin = true;
            } else {
                peer.shut = true;
            }
        } else if !write_only {
            // A listener: its multishot accept ends.
            let keys: Vec<u64> = self.accepts.values().copied().collect();
            self.pending.retain(|p| !keys.contains(&p.user_data));
            for user_data in keys {
                self.posted.push_back(Completion {
                    user_data,
                    result: -libc::EINVAL,
                    flags: 0,
                    fd: None,
                });
            }
            self.accepts.clear();
        }
    }

    fn peer_addr(&self, fd: BorrowedFd<'_>) -> Option<SocketAddr> {
        self.peers.get(&fd.as_raw_fd()).map(|p| p.addr)
    }

    fn now_ms(&self, _epoch: Instant) -> u64 {
        self.now_ms
    }
}
