//! On-demand files over HTTP: open (beneath the media root, through the file cache; a miss is
//! one IORING_OP_OPENAT2 and one IORING_OP_STATX with the connection parked), plan (Range,
//! conditionals, headers: [`crate::vod`]), then the body by linked splices through a pooled
//! pipe or by sendfile, chosen per chunk (`vod.send_path`).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::rc::Rc;

use super::conn::{Body, Deadline, FileBody, Phase, VodOpen};
use super::http::TEXT_PLAIN;
use super::loglimit::PeerLog;
use super::worker::Worker;
use crate::metrics::CloseReason;
use crate::proto::http::{Method, RequestHead};
use crate::runtime::driver::Ring;
use crate::runtime::op::Op;
use crate::runtime::ops;
use crate::runtime::sys;
use crate::vod::{self, Lookup};

/// Bytes a sendfile(2) loop moves before it yields the core to other connections.
pub(super) const SENDFILE_BYTES_PER_TURN: u64 = 4 << 20;

impl<R: Ring> Worker<R> {
    /// `GET`/`HEAD /vod/{raw}`: a cached file is answered at once; otherwise the connection
    /// parks ([`Phase::Opening`]) while the file is opened and statted through the ring, and
    /// [`Worker::on_open`] / [`Worker::on_statx`] carry on. The worker thread never opens or
    /// stats a file itself.
    pub(super) fn serve_vod(&mut self, key: usize, head: RequestHead, raw: String) {
        let rel = match vod::normalise_vod_path(&raw) {
            Ok(rel) => rel,
            Err(_) => {
                self.respond_simple(key, 400, TEXT_PLAIN, b"bad path\n", true, &[]);
                return;
            }
        };
        let now_ms = self.now_ms();
        let stale = match self.files.lookup(&rel, now_ms) {
            Lookup::Hit(file, meta) => {
                self.stats.vod_cache_hits += 1;
                self.respond_file(key, &head, &rel, file, meta);
                return;
            }
            Lookup::Miss => false,
            Lookup::Stale => true,
        };
        if stale {
            self.stats.vod_cache_stale += 1;
        } else {
            self.stats.vod_cache_misses += 1;
        }
        let request = match vod::open_request(&rel, self.config.vod.symlinks) {
            Ok(request) => request,
            Err(e) => {
                self.refuse_open(key, &rel, e.raw_os_error().unwrap_or(libc::EINVAL));
                return;
            }
        };
        let flags = request.how_flags();
        let args = ops::OpenAt2Args::new(request.path, flags, request.resolve);
        let conn = &mut self.conns[key];
        conn.phase = Phase::Opening;
        conn.body = Body::Opening(Box::new(VodOpen {
            head,
            rel,
            args,
            statx: ops::StatxBuf::new(),
            file: None,
            retries: vod::OPENAT2_RACE_RETRIES,
        }));
        // Waiting for the disk is part of answering: the send deadline bounds it.
        self.arm_deadline(key, Deadline::Send, self.config.http.send_timeout_ms);
        self.submit_open(key);
    }

    /// IORING_OP_OPENAT2 of the parked request's path beneath the media root (the worker
    /// keeps the root open for as long as its ring lives).
    fn submit_open(&mut self, key: usize) {
        let root = self.media_root.as_raw_fd();
        let conn = &mut self.conns[key];
        let Body::Opening(open) = &conn.body else {
            return;
        };
        #[cfg(debug_assertions)]
        if let Some(delay) = &self.fault_open_delay {
            let entry = ops::delay_next(delay);
            self.driver.submit(&mut conn.io, key, Op::Timeout, entry);
        }
        let entry = ops::openat2(root, &open.args);
        self.stats.vod_ring_openat2 += 1;
        self.driver.submit(&mut conn.io, key, Op::OpenAt2, entry);
    }

    /// The open's completion: on success stat the new fd (IORING_OP_STATX), otherwise answer
    /// with the error. `fd` is the new descriptor (None on failure).
    pub(super) fn on_open(&mut self, key: usize, result: i32, fd: Option<OwnedFd>) {
        let conn = &mut self.conns[key];
        let Body::Opening(open) = &mut conn.body else {
            return; // `fd`, if any, closes here
        };
        let Some(fd) = fd else {
            let errno = -result;
            if matches!(errno, libc::EAGAIN | libc::EINTR) && open.retries > 0 {
                open.retries -= 1;
                self.submit_open(key);
                return;
            }
            let rel = open.rel.clone();
            self.refuse_open(key, &rel, vod::open_errno(errno));
            return;
        };
        let file = File::from(fd);
        let entry = ops::statx_fd(file.as_raw_fd(), &mut open.statx, vod::STATX_MASK);
        open.file = Some(file);
        self.stats.vod_ring_statx += 1;
        self.driver.submit(&mut conn.io, key, Op::Statx, entry);
    }

    /// The stat's completion: the file's metadata; into the cache, then the answer as for a
    /// cache hit.
    pub(super) fn on_statx(&mut self, key: usize, result: i32) {
        let conn = &mut self.conns[key];
        // The stat was the slot's one operation in flight: nothing points into the box now.
        debug_assert!(!conn.busy());
        let Body::Opening(open) = std::mem::replace(&mut conn.body, Body::None) else {
            return;
        };
        let VodOpen {
            head,
            rel,
            statx,
            file,
            ..
        } = *open;
        let Some(file) = file else {
            self.respond_open_error(key, libc::EBADF);
            return;
        };
        if result < 0 {
            self.refuse_open(key, &rel, -result);
            return;
        }
        let meta = vod::FileMeta::from_statx(statx.get());
        if let Err(e) = vod::check_file_type(&meta) {
            // A special file: refused, its fd closed at once (opening it did not block), and
            // the name must not be served from an old cache entry either.
            drop(file);
            self.refuse_open(key, &rel, e.raw_os_error().unwrap_or(libc::EACCES));
            return;
        }
        let opened_fd = file.as_raw_fd();
        let now_ms = self.now_ms();
        let (file, meta) = self.files.complete_open(&rel, file, meta, now_ms);
        // A regular file just opened still has O_NONBLOCK (vod::OPEN_FLAGS); one the cache
        // kept for the same file had it cleared when it was opened, and the new duplicate is
        // closed. (Their numbers differ: both were open at once.)
        if meta.is_file
            && file.as_raw_fd() == opened_fd
            && let Err(e) = sys::clear_status_flags(&*file)
        {
            self.refuse_open(key, &rel, e.raw_os_error().unwrap_or(libc::EIO));
            return;
        }
        self.respond_file(key, &head, &rel, file, meta);
    }

    /// An open or stat failed: the name leaves the cache (an old entry must not be served for
    /// it either) and the request is answered by errno.
    fn refuse_open(&mut self, key: usize, rel: &Path, errno: i32) {
        self.files.remove(rel);
        self.respond_open_error(key, errno);
    }

    /// The answer to a failed open or stat, by errno.
    fn respond_open_error(&mut self, key: usize, errno: i32) {
        let (status, text): (u16, &[u8]) = match errno {
            libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG => (404, b"not found\n"),
            libc::EACCES | libc::EPERM | libc::ELOOP | libc::EXDEV => (403, b"forbidden\n"),
            _ => (500, b"cannot open file\n"),
        };
        self.respond_simple(key, status, TEXT_PLAIN, text, true, &[]);
    }

    /// Plan the response for an open file (Range, conditionals, headers) and start it.
    fn respond_file(
        &mut self,
        key: usize,
        head: &RequestHead,
        rel: &Path,
        file: Rc<File>,
        meta: vod::FileMeta,
    ) {
        if !meta.is_file {
            self.respond_simple(key, 403, TEXT_PLAIN, b"not a file\n", true, &[]);
            return;
        }
        let plan = vod::plan(head.method, head, &meta, vod::content_type(rel));
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

    /// Queue file → pipe → socket as a linked pair, or drain what the pipe already holds.
    pub(super) fn queue_splices(&mut self, key: usize) {
        let conn = &mut self.conns[key];
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
            let entry = ops::splice(
                pipe_r,
                -1,
                sock,
                body.pipe_fill as u32,
                out_flags | more,
                false,
            );
            self.stats.splices_submitted += 1;
            self.driver.submit(&mut conn.io, key, Op::SpliceOut, entry);
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
        let fill = ops::splice(file_fd, offset, pipe_w, len, libc::SPLICE_F_MOVE, true);
        let drain = ops::splice(pipe_r, -1, sock, len, out_flags | more, false);
        self.stats.splices_submitted += 2;
        self.driver.submit(&mut conn.io, key, Op::SpliceIn, fill);
        self.driver.submit(&mut conn.io, key, Op::SpliceOut, drain);
    }

    /// sendfile(2) from the worker thread on the non-blocking socket until EAGAIN, the end,
    /// or the per-turn budget; then wait for POLLOUT through the ring.
    pub(super) fn sendfile_step(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let sock = &conn.fd;
        let Body::File(body) = &mut conn.body else {
            return;
        };
        let mut budget = SENDFILE_BYTES_PER_TURN;
        let mut sent_total = 0u64;
        let mut outcome = Ok(());
        while body.remaining > 0 && budget > 0 {
            let count = body.remaining.min(budget) as usize;
            self.stats.sendfile_calls += 1;
            let mut offset = body.offset;
            match sys::sendfile(sock, &*body.file, &mut offset, count) {
                Ok(0) => {
                    outcome = Err(CloseReason::IoError); // the file shrank under us
                    break;
                }
                Ok(n) => {
                    let n = n as u64;
                    body.offset = offset;
                    body.remaining -= n.min(body.remaining);
                    budget -= n.min(budget);
                    sent_total += n;
                    continue;
                }
                Err(e) => {
                    let errno = e.raw_os_error().unwrap_or(0);
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
        }
        let done = body.remaining == 0;
        self.stats.bytes_sent += sent_total;
        // sendfile(2) runs outside the ring: the connection's count is kept here.
        if let Some(conn) = self.conns.get_mut(key) {
            conn.bytes_out += sent_total;
        }
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

    pub(super) fn on_splice_in(&mut self, key: usize, result: i32) {
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

    pub(super) fn on_splice_out(&mut self, key: usize, result: i32) {
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
}
