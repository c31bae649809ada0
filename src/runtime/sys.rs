//! Safe wrappers around the few plain syscalls the server makes outside the ring: process
//! set-up (rlimits, signals, CPU pinning, eventfds) and socket options. Each wrapper is the one
//! place its `unsafe` lives.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use socket2::SockRef;

/// A new eventfd (close-on-exec, blocking reads; the worker reads it through the ring).
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd(2) has no pointer arguments; a non-negative result is a new fd we own.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by eventfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Add one to an eventfd's counter (wakes a pending read of it).
pub fn eventfd_signal(fd: BorrowedFd<'_>) {
    let one: u64 = 1;
    // SAFETY: write(2) reads 8 bytes from a local u64 into an fd the caller keeps open.
    unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// The CPUs this process may run on.
pub fn online_cpus() -> Vec<usize> {
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

/// Pin the calling thread to `cpu` (io-wq threads it creates inherit the affinity).
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it; sched_setaffinity reads it for
    // the calling thread (0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Raise RLIMIT_NOFILE's soft limit to the hard limit: every viewer is a descriptor.
pub fn raise_nofile_limit() {
    // SAFETY: getrlimit/setrlimit read and write a local rlimit struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// SIGINT and SIGTERM, blocked in every thread and waited for by the main thread.
pub struct Signals(libc::sigset_t);

/// What a signal the main thread waits for asks of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT or SIGTERM: drain and exit.
    Terminate,
    /// SIGHUP: read the configuration again.
    Reload,
    /// SIGUSR1: reopen the access log (after logrotate moved it).
    ReopenLogs,
}

impl Signals {
    /// Ignore SIGPIPE (a peer that goes away must not kill the server; sends use MSG_NOSIGNAL,
    /// but splice and sendfile cannot) and block SIGINT/SIGTERM in this thread and every
    /// thread started after this call, so the main thread alone receives them (and SIGHUP,
    /// which asks for a configuration reload).
    pub fn block() -> Signals {
        // SAFETY: signal/sigset functions operate on a local sigset_t; the caller blocks before
        // any worker thread exists, so every thread inherits the mask.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::sigaddset(&mut set, libc::SIGUSR1);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Signals(set)
        }
    }

    /// Wait up to `timeout_ms` for SIGINT, SIGTERM, SIGHUP or SIGUSR1.
    pub fn wait(&self, timeout_ms: u64) -> Option<Signal> {
        let timeout = libc::timespec {
            tv_sec: (timeout_ms / 1000) as libc::time_t,
            tv_nsec: ((timeout_ms % 1000) * 1_000_000) as libc::c_long,
        };
        // SAFETY: the set and the timeout are valid for the call; no siginfo is requested.
        let sig = unsafe { libc::sigtimedwait(&self.0, std::ptr::null_mut(), &timeout) };
        match sig {
            libc::SIGINT | libc::SIGTERM => Some(Signal::Terminate),
            libc::SIGHUP => Some(Signal::Reload),
            libc::SIGUSR1 => Some(Signal::ReopenLogs),
            _ => None,
        }
    }
}

/// Hand free heap pages back to the kernel (glibc's `malloc_trim(0)`; nothing elsewhere).
pub fn malloc_trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointers and only locks and walks glibc's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// TCP_NODELAY on a connection (responses and media are sent in complete pieces).
pub fn set_nodelay(fd: &impl AsFd) {
    let _ = SockRef::from(fd).set_tcp_nodelay(true);
}

/// SO_SNDBUF of a socket (the kernel doubles it for bookkeeping).
pub fn set_send_buffer(fd: &impl AsFd, bytes: usize) {
    let _ = SockRef::from(fd).set_send_buffer_size(bytes);
}

/// shutdown(2): `write_only` queues a FIN behind what was sent (lingering close); otherwise
/// both directions, which completes the socket's pending receives and polls at once.
pub fn shutdown(fd: &impl AsFd, write_only: bool) {
    let how = if write_only {
        std::net::Shutdown::Write
    } else {
        std::net::Shutdown::Both
    };
    let _ = SockRef::from(fd).shutdown(how);
}

/// One sendfile(2) call from `file` at `*offset` to the non-blocking socket `sock`; the offset
/// is advanced by what was sent. Returns the byte count (0 at the file's end).
pub fn sendfile(
    sock: &impl AsFd,
    file: &impl AsFd,
    offset: &mut u64,
    count: usize,
) -> io::Result<usize> {
    let mut off = *offset as libc::off_t;
    // SAFETY: both fds are open for the call (borrowed from their owners); `off` is a valid
    // off_t the kernel updates.
    let n = unsafe {
        libc::sendfile(
            sock.as_fd().as_raw_fd(),
            file.as_fd().as_raw_fd(),
            &mut off,
            count,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *offset = off as u64;
    Ok(n as usize)
}

/// Clear the file status flags of a descriptor the server opened read-only with `O_NONBLOCK`
/// (for the open itself), in one `fcntl(F_SETFL, 0)`: of the flags F_SETFL can change
/// (O_APPEND, O_NONBLOCK, O_DIRECT, O_NOATIME, O_ASYNC) such a descriptor has only
/// O_NONBLOCK, so no F_GETFL is needed first. A regular file must not stay O_NONBLOCK: io_uring
/// treats those as "never wait", so a splice from it could fail with EAGAIN on a page-cache
/// miss instead of waiting on io-wq. Never blocks.
pub fn clear_status_flags(fd: &impl AsFd) -> io::Result<()> {
    // SAFETY: F_SETFL with an int argument on a descriptor the caller keeps open for the call;
    // no pointers are involved.
    if unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_SETFL, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The address of a connected socket's peer (None if the kernel cannot say).
pub fn peer_ip(fd: &OwnedFd) -> Option<std::net::IpAddr> {
    peer_addr(fd).map(|a| a.ip())
}

/// The peer's address of a connected socket (None if it is not an inet socket or is gone).
pub fn peer_addr(fd: impl AsFd) -> Option<std::net::SocketAddr> {
    socket2::SockRef::from(&fd).peer_addr().ok()?.as_socket()
}

/// A new outbound TCP socket for `domain`: non-blocking and close-on-exec from the start
/// (socket2 passes SOCK_NONBLOCK | SOCK_CLOEXEC to socket(2)), with TCP_NODELAY (a request
/// goes out in one piece). Connected through the ring ([`super::ops::connect`]).
pub fn tcp_socket(domain: socket2::Domain) -> io::Result<OwnedFd> {
    let socket = socket2::Socket::new(
        domain,
        socket2::Type::STREAM.nonblocking().cloexec(),
        Some(socket2::Protocol::TCP),
    )?;
    let _ = socket.set_tcp_nodelay(true);
    Ok(socket.into())
}
