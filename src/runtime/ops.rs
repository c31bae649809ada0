//! Typed io_uring operations. Each builder names the kernel operation (and its man page) and
//! says whose memory the kernel reads or writes until the completion; [`Driver::submit`]
//! (`super::driver`) is where that promise is relied on.
//!
//! A builder returns an [`Sqe`]: the operation as plain data (which fd, which pointers, which
//! flags), not yet an io_uring submission entry. The [`super::driver::Driver`] lowers it to an
//! SQE ([`Sqe::entry`]); the fake ring of the session tests (`super::fake`) performs it against
//! scripted peers instead, so the sessions run unchanged against either.
//!
//! Building an operation is safe; what makes it sound to *submit* one is that the memory it
//! points at stays where it is until the completion: receive and head buffers are boxed inside
//! the connection's slot, a [`SendBatch`] is too, and the bytes its iovecs point at are shared,
//! refcounted buffers the slot (or the worker's fan-out hub, on the slot's behalf) holds until
//! the completion. An [`OpenAt2Args`] and a [`StatxBuf`] keep their bytes on the heap, so they
//! stay put however the slot state that owns them moves, and so does a [`ConnectAddr`].

use std::ffi::{CStr, CString};
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};

use io_uring::types::{Fd, OpenHow};
use io_uring::{opcode, squeue, types};

/// One operation to submit: what it is ([`SqeOp`]) and whether the next submission is linked
/// behind it (IOSQE_IO_LINK).
#[derive(Debug)]
pub struct Sqe {
    pub op: SqeOp,
    pub link: bool,
}

/// The operations the runtime submits, as plain data. Pointers point at memory the submitter
/// keeps alive and in place until the completion (see each builder).
#[derive(Debug)]
pub enum SqeOp {
    AcceptMulti {
        listener: RawFd,
    },
    ReadU64 {
        fd: RawFd,
        buf: *mut u64,
    },
    Recv {
        fd: RawFd,
        buf: *mut u8,
        len: u32,
    },
    Send {
        fd: RawFd,
        buf: *const u8,
        len: u32,
        more: bool,
    },
    SendMsg {
        fd: RawFd,
        msg: *const libc::msghdr,
    },
    Splice {
        fd_in: RawFd,
        off_in: i64,
        fd_out: RawFd,
        len: u32,
        flags: u32,
    },
    PollOut {
        fd: RawFd,
    },
    MsgRing {
        target: RawFd,
        data: i32,
        user_data: u64,
    },
    OpenAt2 {
        dirfd: RawFd,
        path: *const libc::c_char,
        how: *const OpenHow,
    },
    Statx {
        fd: RawFd,
        buf: *mut libc::statx,
        mask: u32,
    },
    Timeout {
        ts: *const types::Timespec,
    },
    Connect {
        fd: RawFd,
        addr: *const libc::sockaddr,
        len: libc::socklen_t,
    },
    /// The descriptor is the kernel's from the submission on.
    Close {
        fd: OwnedFd,
    },
}

impl Sqe {
    fn new(op: SqeOp) -> Sqe {
        Sqe { op, link: false }
    }

    /// The io_uring submission entry for this operation (user_data not set yet).
    pub fn entry(self) -> squeue::Entry {
        let entry = match self.op {
            SqeOp::AcceptMulti { listener } => opcode::AcceptMulti::new(Fd(listener))
                .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
                .build(),
            SqeOp::ReadU64 { fd, buf } => opcode::Read::new(Fd(fd), buf.cast(), 8).build(),
            SqeOp::Recv { fd, buf, len } => opcode::Recv::new(Fd(fd), buf, len).build(),
            SqeOp::Send { fd, buf, len, more } => {
                let more = if more { libc::MSG_MORE } else { 0 };
                opcode::Send::new(Fd(fd), buf, len)
                    .flags(libc::MSG_NOSIGNAL | more)
                    .build()
            }
            SqeOp::SendMsg { fd, msg } => opcode::SendMsg::new(Fd(fd), msg)
                .flags(libc::MSG_NOSIGNAL as u32)
                .build(),
            SqeOp::Splice {
                fd_in,
                off_in,
                fd_out,
                len,
                flags,
            } => opcode::Splice::new(Fd(fd_in), off_in, Fd(fd_out), -1, len)
                .flags(flags)
                .build(),
            SqeOp::PollOut { fd } => opcode::PollAdd::new(Fd(fd), libc::POLLOUT as u32).build(),
            SqeOp::MsgRing {
                target,
                data,
                user_data,
            } => opcode::MsgRingData::new(Fd(target), data, user_data, None).build(),
            SqeOp::OpenAt2 { dirfd, path, how } => {
                opcode::OpenAt2::new(Fd(dirfd), path, how).build()
            }
            SqeOp::Statx { fd, buf, mask } => {
                opcode::Statx::new(Fd(fd), EMPTY_PATH.as_ptr(), buf.cast::<types::statx>())
                    .flags(libc::AT_EMPTY_PATH)
                    .mask(mask)
                    .build()
            }
            SqeOp::Timeout { ts } => opcode::Timeout::new(ts)
                .flags(types::TimeoutFlags::ETIME_SUCCESS)
                .build(),
            SqeOp::Connect { fd, addr, len } => opcode::Connect::new(Fd(fd), addr, len).build(),
            SqeOp::Close { fd } => opcode::Close::new(Fd(fd.into_raw_fd())).build(),
        };
        if self.link {
            entry.flags(squeue::Flags::IO_LINK)
        } else {
            entry
        }
    }
}

/// Multishot IORING_OP_ACCEPT on a listener (io_uring_prep_multishot_accept(3)); accepted
/// sockets are non-blocking and close-on-exec.
pub fn accept_multi(listener: RawFd) -> Sqe {
    Sqe::new(SqeOp::AcceptMulti { listener })
}

/// IORING_OP_READ of 8 bytes (an eventfd counter) into `buf`, owned by the worker.
pub fn read_u64(fd: RawFd, buf: &mut u64) -> Sqe {
    Sqe::new(SqeOp::ReadU64 { fd, buf })
}

/// IORING_OP_RECV into `buf` (io_uring_prep_recv(3)): the slot's own buffer.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> Sqe {
    Sqe::new(SqeOp::Recv {
        fd,
        buf: buf.as_mut_ptr(),
        len: buf.len() as u32,
    })
}

/// IORING_OP_SEND of `buf` (io_uring_prep_send(3)), with MSG_MORE when more of the response
/// follows at once. Never raises SIGPIPE.
pub fn send(fd: RawFd, buf: &[u8], more: bool) -> Sqe {
    Sqe::new(SqeOp::Send {
        fd,
        buf: buf.as_ptr(),
        len: buf.len() as u32,
        more,
    })
}

/// IORING_OP_SENDMSG of a prepared batch (io_uring_prep_sendmsg(3)).
pub fn sendmsg(fd: RawFd, batch: &SendBatch) -> Sqe {
    Sqe::new(SqeOp::SendMsg {
        fd,
        msg: &*batch.msg as *const libc::msghdr,
    })
}

/// IORING_OP_SPLICE (io_uring_prep_splice(3)) of `len` bytes from `fd_in` at `off_in` (-1:
/// a pipe, no offset) to `fd_out`. `link` chains the next SQE behind this one.
pub fn splice(fd_in: RawFd, off_in: i64, fd_out: RawFd, len: u32, flags: u32, link: bool) -> Sqe {
    Sqe {
        op: SqeOp::Splice {
            fd_in,
            off_in,
            fd_out,
            len,
            flags,
        },
        link,
    }
}

/// IORING_OP_POLL_ADD for POLLOUT (io_uring_prep_poll_add(3)).
pub fn poll_out(fd: RawFd) -> Sqe {
    Sqe::new(SqeOp::PollOut { fd })
}

/// IORING_OP_MSG_RING (io_uring_prep_msg_ring(3)): post a completion with `user_data` and
/// result `data` into the ring `target`. Touches no memory of ours.
pub fn msg_ring(target: RawFd, data: i32, user_data: u64) -> Sqe {
    Sqe::new(SqeOp::MsgRing {
        target,
        data,
        user_data,
    })
}

/// What an IORING_OP_OPENAT2 reads: the path (relative to the directory fd) and the
/// `struct open_how` (flags, mode, RESOLVE_* flags; openat2(2)). Both live on the heap (the
/// CString's bytes, the boxed `open_how`), so moving this value does not move them. The
/// kernel copies both when it prepares the SQE, but the SQE may wait in the driver's backlog
/// until the next `io_uring_enter`, so the owner keeps this value until the completion.
pub struct OpenAt2Args {
    path: CString,
    how: Box<OpenHow>,
}

impl OpenAt2Args {
    /// `flags` are open(2) flags (without O_CREAT: the mode is 0), `resolve` RESOLVE_* bits.
    pub fn new(path: CString, flags: u64, resolve: u64) -> OpenAt2Args {
        OpenAt2Args {
            path,
            how: Box::new(OpenHow::new().flags(flags).resolve(resolve)),
        }
    }
}

/// IORING_OP_OPENAT2 (io_uring_prep_openat2(3)) of `args` beneath `dirfd`: the kernel reads
/// the path and the `open_how` (owned by `args`, which the slot keeps until the completion);
/// `dirfd` must stay open until then too. The result is a new descriptor (or -errno), wrapped
/// in an `OwnedFd` by the driver as it reaps (see [`super::op::Op::yields_fd`]).
///
/// io_uring first tries the open inline with `LOOKUP_CACHED | O_NONBLOCK`; a lookup that
/// needs the disk (or anything else that would sleep) goes to an io-wq worker, never the
/// submitting thread.
pub fn openat2(dirfd: RawFd, args: &OpenAt2Args) -> Sqe {
    Sqe::new(SqeOp::OpenAt2 {
        dirfd,
        path: args.path.as_ptr(),
        how: &*args.how,
    })
}

/// The `struct statx` an IORING_OP_STATX writes into, boxed so its address is stable.
pub struct StatxBuf(Box<libc::statx>);

impl Default for StatxBuf {
    fn default() -> Self {
        StatxBuf::new()
    }
}

impl StatxBuf {
    pub fn new() -> StatxBuf {
        // SAFETY: statx is plain data (integers and timestamps); all-zero is a valid value.
        StatxBuf(Box::new(unsafe { std::mem::zeroed() }))
    }

    /// What the kernel wrote (meaningful after a successful completion; zeroes before).
    pub fn get(&self) -> &libc::statx {
        &self.0
    }
}

/// The empty path of a statx "of this fd" (AT_EMPTY_PATH); static, so always valid.
const EMPTY_PATH: &CStr = c"";

/// IORING_OP_STATX (io_uring_prep_statx(3)) of the open file `fd` itself (`AT_EMPTY_PATH`,
/// the fstat of io_uring) for the fields in `mask` (`STATX_*`). The kernel writes the result
/// into `buf` when the operation runs, so `buf` (owned by the slot) and `fd` stay alive and
/// in place until the completion.
pub fn statx_fd(fd: RawFd, buf: &mut StatxBuf, mask: u32) -> Sqe {
    Sqe::new(SqeOp::Statx {
        fd,
        buf: &mut *buf.0,
        mask,
    })
}

/// IORING_OP_TIMEOUT (io_uring_prep_timeout(3)) of `ts`, linked to the SQE submitted after it,
/// which therefore starts only when the timeout expires (ETIME_SUCCESS: expiry does not break
/// the link). The kernel copies `ts` when it prepares the SQE; the caller keeps it alive until
/// the completion anyway (the SQE may wait in the backlog). Used by test builds to make an
/// operation slow on purpose.
#[cfg(debug_assertions)]
pub fn delay_next(ts: &types::Timespec) -> Sqe {
    Sqe {
        op: SqeOp::Timeout { ts },
        link: true,
    }
}

/// The address an IORING_OP_CONNECT reads, boxed so its bytes stay put however the slot
/// state that owns it moves. The kernel copies the address when the operation is prepared
/// (`move_addr_to_kernel`), but the SQE may wait in the driver's backlog until the next
/// `io_uring_enter`, so the owner keeps this value until the completion (the same rule as
/// [`OpenAt2Args`]).
pub struct ConnectAddr(Box<socket2::SockAddr>);

impl ConnectAddr {
    pub fn new(addr: std::net::SocketAddr) -> ConnectAddr {
        ConnectAddr(Box::new(socket2::SockAddr::from(addr)))
    }

    /// The address family's domain (for the socket to connect).
    pub fn domain(&self) -> socket2::Domain {
        self.0.domain()
    }
}

/// IORING_OP_CONNECT (io_uring_prep_connect(3)) of the socket `fd` to `addr`: the kernel
/// reads the sockaddr (owned by the slot, which keeps it until the completion, and `fd` open).
/// On a non-blocking socket io_uring waits for the handshake itself (it polls instead of
/// returning EINPROGRESS): the result is 0 once connected, or -errno (ECONNREFUSED,
/// ETIMEDOUT, ENETUNREACH...).
pub fn connect(fd: RawFd, addr: &ConnectAddr) -> Sqe {
    Sqe::new(SqeOp::Connect {
        fd,
        addr: addr.0.as_ptr().cast::<libc::sockaddr>(),
        len: addr.0.len(),
    })
}

/// IORING_OP_CLOSE (io_uring_prep_close(3)) of `fd`, which the operation takes: the close
/// happens in the next `io_uring_enter`, batched with the turn's other submissions, instead of
/// a close(2) of its own on the worker thread. Touches no memory of ours.
pub fn close(fd: OwnedFd) -> Sqe {
    Sqe::new(SqeOp::Close { fd })
}

/// Link `entry` to the one submitted after it (a failure or short result cancels the rest).
pub fn linked(mut sqe: Sqe) -> Sqe {
    sqe.link = true;
    sqe
}

/// Most iovecs one sendmsg takes (Linux UIO_MAXIOV; more is EMSGSIZE).
pub const IOV_MAX: usize = 1024;

/// A vectored send in preparation or in flight: the iovecs and the msghdr that points at
/// them, both at stable addresses (the msghdr is boxed; the iovec vector is not touched while
/// a send is in flight). The bytes the iovecs point at are not owned here: the caller keeps
/// them alive (refcounted) until the completion.
pub struct SendBatch {
    iov: Vec<libc::iovec>,
    msg: Box<libc::msghdr>,
    /// Bytes of the whole batch, and bytes of it the kernel has taken.
    total: usize,
    sent: usize,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch::new()
    }
}

impl SendBatch {
    pub fn new() -> SendBatch {
        SendBatch {
            iov: Vec::new(),
            // SAFETY: msghdr is plain data; all-zero is a valid empty header.
            msg: Box::new(unsafe { std::mem::zeroed() }),
            total: 0,
            sent: 0,
        }
    }

    /// Start a new batch (never while one is in flight).
    pub fn clear(&mut self) {
        self.iov.clear();
        self.total = 0;
        self.sent = 0;
    }

    /// Iovecs in the batch.
    pub fn len(&self) -> usize {
        self.iov.len()
    }

    pub fn is_empty(&self) -> bool {
        self.iov.is_empty()
    }

    /// Append `bytes` (memory the caller keeps alive and unchanged until the batch's last
    /// completion). Returns false, adding nothing, once the batch holds [`IOV_MAX`] iovecs.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if self.iov.len() >= IOV_MAX {
            return false;
        }
        if bytes.is_empty() {
            return true;
        }
        self.iov.push(libc::iovec {
            iov_base: bytes.as_ptr() as *mut libc::c_void,
            iov_len: bytes.len(),
        });
        self.total += bytes.len();
        true
    }

    pub fn total(&self) -> usize {
        self.total
    }

    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Bytes of the batch not yet taken by the kernel.
    pub fn remaining(&self) -> usize {
        self.total - self.sent
    }

    /// Room for this many more iovecs.
    pub fn room(&self) -> usize {
        IOV_MAX - self.iov.len()
    }

    /// End the batch at byte `total` of it (counted from the batch's start, at or after what
    /// was sent): a lagging reader's batch is cut at an entry boundary, which may lie inside
    /// the iovecs still to send, never before what the kernel took.
    pub fn cut_at(&mut self, total: usize) {
        let total = total.clamp(self.sent, self.total);
        let mut at = self.sent;
        let mut keep = 0;
        while keep < self.iov.len() && at < total {
            let v = &mut self.iov[keep];
            v.iov_len = v.iov_len.min(total - at);
            at += v.iov_len;
            keep += 1;
        }
        self.iov.truncate(keep);
        self.total = total;
    }

    /// The iovecs not yet wholly sent (after [`SendBatch::advance`], the first one is the
    /// iovec the kernel stopped in, or the next to start).
    pub fn iovecs(&self) -> &[libc::iovec] {
        &self.iov
    }

    /// Record that the kernel took `n` more bytes: fully sent iovecs are dropped from the
    /// front and a partly sent one is advanced, so the next sendmsg starts where this one
    /// stopped. Returns how many iovecs were fully sent.
    pub fn advance(&mut self, n: usize) -> usize {
        self.sent = (self.sent + n).min(self.total);
        let mut skip = n;
        let mut first = 0;
        while first < self.iov.len() && skip >= self.iov[first].iov_len {
            skip -= self.iov[first].iov_len;
            first += 1;
        }
        if skip > 0 && first < self.iov.len() {
            let v = &mut self.iov[first];
            // SAFETY: skip < iov_len, so the advanced pointer stays inside the same buffer.
            v.iov_base = unsafe { v.iov_base.cast::<u8>().add(skip).cast() };
            v.iov_len -= skip;
        }
        self.iov.drain(..first);
        first
    }

    /// Point the msghdr at the iovecs; call after the last change and before submitting.
    pub fn prepare(&mut self) {
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        *self.msg = unsafe { std::mem::zeroed() };
        self.msg.msg_iov = self.iov.as_mut_ptr();
        self.msg.msg_iovlen = self.iov.len();
    }

    /// Give back capacity a large batch (a joiner's GOP) needed.
    pub fn shrink_to(&mut self, iovecs: usize) {
        self.iov.shrink_to(iovecs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_advances_across_and_inside_iovecs() {
        let a = [1u8; 10];
        let b = [2u8; 5];
        let c = [3u8; 7];
        let mut batch = SendBatch::new();
        assert!(batch.push(&a) && batch.push(&b) && batch.push(&c) && batch.push(&[]));
        assert_eq!((batch.len(), batch.total()), (3, 22));
        assert_eq!(batch.advance(12), 1);
        assert_eq!(batch.len(), 2);
        assert_eq!(batch.iovecs()[0].iov_len, 3);
        // SAFETY: the iovec points into `b`, which is alive; reading one byte of it.
        assert_eq!(unsafe { *batch.iovecs()[0].iov_base.cast::<u8>() }, 2);
        assert_eq!(batch.remaining(), 10);
        batch.cut_at(15);
        assert_eq!((batch.total(), batch.remaining()), (15, 3));
        assert_eq!(batch.advance(3), 1);
        assert!(batch.is_empty());
        batch.prepare();
    }

    #[test]
    fn batch_cut_keeps_the_rest_of_the_entry_in_progress() {
        let head = [1u8; 4];
        let body = [2u8; 6];
        let next = [3u8; 8];
        let mut batch = SendBatch::new();
        assert!(batch.push(&head) && batch.push(&body) && batch.push(&next));
        batch.advance(2);
        // Cut after the first entry (head + body = 10 bytes): two iovecs stay.
        batch.cut_at(10);
        assert_eq!((batch.len(), batch.remaining()), (2, 8));
        // A cut before what was sent cannot drop sent bytes.
        batch.cut_at(0);
        assert_eq!((batch.total(), batch.remaining(), batch.len()), (2, 0, 0));
        // A cut inside an iovec shortens it.
        let mut batch = SendBatch::new();
        assert!(batch.push(&next));
        batch.cut_at(5);
        assert_eq!((batch.len(), batch.iovecs()[0].iov_len), (1, 5));
        assert_eq!(batch.room(), IOV_MAX - 1);
    }

    #[test]
    fn batch_refuses_more_than_iov_max() {
        let byte = [0u8; 1];
        let mut batch = SendBatch::new();
        for _ in 0..IOV_MAX {
            assert!(batch.push(&byte));
        }
        assert!(!batch.push(&byte));
        assert_eq!(batch.len(), IOV_MAX);
    }
}
