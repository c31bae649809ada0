//! A per-worker pool of pipes for splice (file → pipe → socket).
//!
//! Creating a pipe and resizing it (F_SETPIPE_SZ) costs two syscalls and a page allocation;
//! the pool turns that into a pop/push per response. A pipe goes back to the pool only when it
//! is known to be empty; a pipe abandoned with bytes in it (client gone mid-body) is closed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
    /// Capacity granted by the kernel (may be below what was asked for, see pipe-max-size).
    pub capacity: usize,
}

impl Pipe {
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
    pub fn write_fd(&self) -> RawFd {
        self.write.as_raw_fd()
    }
}

pub struct PipePool {
    idle: Vec<Pipe>,
    idle_max: usize,
    pipe_bytes: usize,
}

impl PipePool {
    pub fn new(idle_max: usize, pipe_bytes: usize) -> PipePool {
        PipePool {
            idle: Vec::with_capacity(idle_max),
            idle_max,
            pipe_bytes,
        }
    }

    pub fn get(&mut self) -> io::Result<Pipe> {
        if let Some(pipe) = self.idle.pop() {
            return Ok(pipe);
        }
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid, writable array of two c_ints as pipe2(2) requires.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: F_SETPIPE_SZ on a pipe fd we own; failure (EPERM above pipe-max-size) is
        // handled by reading back the size the kernel kept.
        let set = unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                self.pipe_bytes as libc::c_int,
            )
        };
        let capacity = if set > 0 {
            set as usize
        } else {
            // SAFETY: F_GETPIPE_SZ only reads the size of a pipe fd we own.
            let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
            if got > 0 { got as usize } else { 65536 }
        };
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    /// Return an empty pipe for reuse. The caller guarantees it holds no bytes.
    pub fn put(&mut self, pipe: Pipe) {
        if self.idle.len() < self.idle_max {
            self.idle.push(pipe);
        }
    }

    pub fn idle(&self) -> usize {
        self.idle.len()
    }
}
