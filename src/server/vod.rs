//! On-demand files over HTTP: open (beneath the media root, through the file cache), plan
//! (Range, conditionals, headers: [`crate::vod`]), then the body by linked splices through a
//! pooled pipe or by sendfile, chosen per chunk (`vod.send_path`).

use std::os::fd::{AsRawFd, RawFd};

use super::conn::{Body, Deadline, FileBody};
use super::http::TEXT_PLAIN;
use super::loglimit::PeerLog;
use super::worker::Worker;
use crate::metrics::CloseReason;
use crate::proto::http::{Method, RequestHead};
use crate::runtime::op::Op;
use crate::runtime::ops;
use crate::runtime::sys;
use crate::vod;

/// Bytes a sendfile(2) loop moves before it yields the core to other connections.
pub(super) const SENDFILE_BYTES_PER_TURN: u64 = 4 << 20;

impl Worker {
    pub(super) fn serve_vod(&mut self, key: usize, head: &RequestHead, raw: String) {
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
