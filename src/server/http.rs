//! The HTTP/1.1 server side of a connection: request heads (keep-alive, pipelining),
//! routing through [`crate::app::router`], response heads, in-memory bodies sent with sendmsg
//! from shared memory, and the lingering close after an error answer.

use std::os::fd::{AsFd, AsRawFd};
use std::time::SystemTime;

use bytes::Bytes;

use super::callout::{Check, Protocol, Waiter};
use super::conn::{Body, Deadline, MemoryBody, Phase};
use super::loglimit::PeerLog;
use super::worker::Worker;
use crate::app::api;
use crate::app::auth::Action;
use crate::app::console::Asset;
use crate::app::router::{HlsMethod, Listener, Page, Route, route};
use crate::config::SendPath;
use crate::metrics::CloseReason;
use crate::proto::http::{Parse, RequestHead, ResponseHead, parse_request};
use crate::runtime::driver::Ring;
use crate::runtime::op::Op;
use crate::runtime::ops;

/// Content-Type of the server's own short answers (errors, "ok").
pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Request headers a preflight allows: what players send for ranges and revalidation, and
/// what a publisher sends with its body.
const CORS_ALLOW_HEADERS: &str = "Range, If-Range, If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since, Content-Type, Cache-Control";

/// Response headers a page may read beyond the safelisted ones (a player needs the total
/// size from Content-Range and the validators to resume).
const CORS_EXPOSE_HEADERS: &str =
    "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified, Date";

impl<R: Ring> Worker<R> {
    /// Receive into the free part of the connection's head buffer.
    pub(super) fn submit_recv(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let rlen = conn.rlen;
        let entry = ops::recv(conn.raw_fd(), &mut conn.rbuf[rlen..]);
        self.driver.submit(&mut conn.io, key, Op::Recv, entry);
    }

    pub(super) fn on_recv(&mut self, key: usize, result: i32) {
        if result <= 0 {
            self.close(key, CloseReason::from_recv(result));
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
    pub(super) fn process_head(&mut self, key: usize) {
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

    /// Route one request and start its response (again, for a request the auth service
    /// allowed: [`super::callout`]).
    pub(super) fn respond(&mut self, key: usize, head: RequestHead) {
        let conn = &mut self.conns[key];
        conn.keep_alive = head.keep_alive
            && conn.requests < self.config.http.keepalive_requests_max
            && self.drain_deadline_ms.is_none();
        let listener = if conn.admin {
            Listener::Admin
        } else {
            Listener::Public
        };
        let route = route(&head, listener);
        let protocol = match &route {
            Route::LivePlay { format, .. } | Route::LivePublish { format, .. } => {
                Protocol::live(*format).as_str()
            }
            Route::Hls { .. } => Protocol::Hls.as_str(),
            _ => "http",
        };
        self.log_request_start(key, &head, protocol);
        let conn = &mut self.conns[key];
        // Every answer on a media path, errors included, carries the CORS headers: a browser
        // player must be able to read a 404 or a 409 to tell its user what went wrong.
        conn.media = listener == Listener::Public && crate::app::router::is_media_path(&head.path);
        if route.restricted() && !self.admin_allowed(key, &head) {
            return;
        }
        match route {
            Route::Vod { path } => self.serve_vod(key, head, path),
            Route::LivePlay {
                app,
                name,
                format,
                send_body,
                chunked,
            } => {
                let protocol = Protocol::live(format);
                if self.authorize(key, Action::Play, &app, &name, &head, protocol) {
                    self.start_reader(key, &app, &name, format, send_body, chunked)
                }
            }
            Route::LivePublish { app, name, format } => {
                let protocol = Protocol::live(format);
                if self.authorize(key, Action::Publish, &app, &name, &head, protocol) {
                    self.start_ingest(key, &head, &app, &name, format)
                }
            }
            Route::Hls {
                app,
                name,
                file,
                method,
            } => {
                let action = match method {
                    HlsMethod::Get | HlsMethod::Head => Action::Play,
                    HlsMethod::Put | HlsMethod::Delete => Action::Publish,
                };
                if self.authorize(key, action, &app, &name, &head, Protocol::Hls) {
                    self.serve_hls(key, &head, &app, &name, &file, method)
                }
            }
            Route::Preflight { methods } => self.respond_preflight(key, methods),
            Route::Kick(kick) => self.respond_kick(key, &kick),
            Route::PlayUrls {
                app,
                name,
                send_body,
            } => {
                let body = self.play_urls_body(&app, &name, &head);
                self.respond_body(key, 200, "application/json", body, send_body);
            }
            Route::Page { page, send_body } => {
                let body = self.page_body(page);
                self.respond_body(key, 200, page.content_type(), body, send_body);
            }
            Route::Console { asset, send_body } => self.serve_console(key, &head, asset, send_body),
            Route::Refuse {
                status,
                text,
                keep,
                allow,
            } => {
                let allow: &[(&str, &str)] = match &allow {
                    Some(methods) => &[("Allow", methods)],
                    None => &[],
                };
                self.respond_simple(key, status, TEXT_PLAIN, text.as_bytes(), keep, allow);
            }
        }
    }

    /// Whether the client may do `action` on `app/name` (`[auth]`); if not, it is answered
    /// 401 or 403 with the reason (never the key or token), counted and logged. Mode `http`:
    /// false also when the request is parked for the auth service ([`Phase::WaitAuth`]).
    fn authorize(
        &mut self,
        key: usize,
        action: Action,
        app: &str,
        name: &str,
        head: &RequestHead,
        protocol: Protocol,
    ) -> bool {
        let query = head.query.as_deref();
        let subject = self.callout_subject(key, action, app, name, query, protocol);
        let checked = if self.shared.auth.load().needs_callout(action, app) {
            let waiter = Waiter::Http {
                head: Box::new(head.clone()),
            };
            match self.callout_check(key, subject.clone(), waiter) {
                Check::Allowed => Ok(()),
                Check::Refused(refusal) => Err(refusal),
                Check::Parked => {
                    self.conns[key].phase = Phase::WaitAuth;
                    let backstop_ms =
                        self.shared.auth.load().http().map_or(0, |s| s.timeout_ms) + 1000;
                    self.arm_deadline(key, Deadline::Callout, backstop_ms);
                    return false;
                }
            }
        } else {
            let client = subject.client_ip;
            let now_s = crate::media::stream::unix_ms() / 1000;
            self.shared
                .auth
                .load()
                .check(action, app, name, query, client, now_s)
        };
        let Err(refusal) = checked else {
            self.callout_remember(key, subject);
            return true;
        };
        metrics::counter!("uringcast_auth_refused_total", "protocol" => "http", "action" => action.as_str(), "reason" => refusal.reason).increment(1);
        peer_log!(self, PeerLog::PublishRefused, info, worker = self.id, stream = %format!("{app}/{name}"), action = action.as_str(), reason = refusal.reason, "refused by auth");
        let text = format!("{}\n", refusal.message);
        self.respond_simple(key, refusal.status, TEXT_PLAIN, text.as_bytes(), false, &[]);
        false
    }

    /// The bytes of one of the server's own pages.
    fn page_body(&self, page: Page) -> Bytes {
        let now_ms = self.now_ms();
        let registry = &self.shared.registry;
        let text = match page {
            Page::Health => format!(
                "{{\"status\":\"ok\",\"worker\":{},\"uptime_s\":{}}}\n",
                self.id,
                self.shared.epoch.elapsed().as_secs()
            ),
            Page::Streams => {
                let play = api::PlayPorts {
                    http_port: self.shared.http_bound.port(),
                    rtmp_port: self.shared.rtmp_bound.map(|a| a.port()),
                };
                api::streams_json(registry, play, now_ms)
            }
            Page::Sessions => self.sessions_json(),
            Page::Metrics => {
                let mut body = crate::metrics::render();
                api::stream_metrics(
                    registry,
                    self.config.metrics.stream_labels,
                    now_ms,
                    &mut body,
                );
                body
            }
        };
        Bytes::from(text)
    }

    /// `/api/v1/streams/{app}/{stream}/play`: the URLs on the host the client reached us by,
    /// with play credentials minted now (never logged).
    fn play_urls_body(&self, app: &str, name: &str, head: &RequestHead) -> Bytes {
        let play = api::PlayPorts {
            http_port: self.shared.http_bound.port(),
            rtmp_port: self.shared.rtmp_bound.map(|a| a.port()),
        };
        let host = api::media_host(head.host.as_deref(), self.shared.http_bound.ip());
        let now_s = crate::media::stream::unix_ms() / 1000;
        let ttl_s = self.config.admin.console_token_ttl_s;
        let credentials = self
            .shared
            .auth
            .load()
            .mint(Action::Play, app, name, now_s, ttl_s);
        Bytes::from(api::play_urls_json(app, name, &host, play, &credentials))
    }

    /// A file of the console ([`crate::app::console`]): 304 when the client's copy is
    /// current, else the embedded bytes (shared, not copied).
    fn serve_console(
        &mut self,
        key: usize,
        head: &RequestHead,
        asset: &'static Asset,
        send_body: bool,
    ) {
        let headers = asset.headers();
        if asset.not_modified(head.if_none_match.as_deref()) {
            let keep_alive = self.conns[key].keep_alive;
            self.write_head(key, 304, keep_alive, false, |h| {
                for (name, value) in headers.as_slice() {
                    h.header(name, value);
                }
            });
            self.start_response(key, 304, Body::None);
            return;
        }
        let body = asset.bytes.clone();
        let headers = headers.as_slice();
        self.respond_shared(key, 200, asset.content_type, body, send_body, headers);
    }

    /// `OPTIONS` on a media path: 204 with `Allow`, and (unless CORS is off) the CORS
    /// preflight answer. The allowed request headers are a fixed list of what players send
    /// (ranges, validators, a publisher's Content-Type), not an echo of what was asked.
    pub(super) fn respond_preflight(&mut self, key: usize, methods: &str) {
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

    /// A response whose body is in memory: the head is written into the connection's buffer,
    /// the body is sent from its own (shared, refcounted) bytes by the same sendmsg — never
    /// copied into the connection.
    pub(super) fn respond_body(
        &mut self,
        key: usize,
        status: u16,
        content_type: &str,
        body: Bytes,
        send_body: bool,
    ) {
        let headers = [("Cache-Control", "no-store")];
        self.respond_shared(key, status, content_type, body, send_body, &headers);
    }

    /// [`Self::respond_body`] with the caller's headers (caching, validators).
    pub(super) fn respond_shared(
        &mut self,
        key: usize,
        status: u16,
        content_type: &str,
        body: Bytes,
        send_body: bool,
        headers: &[(&str, &str)],
    ) {
        let keep_alive = self.conns[key].keep_alive;
        self.write_head(key, status, keep_alive, false, |h| {
            h.header("Content-Type", content_type);
            h.header("Content-Length", body.len());
            for (name, value) in headers {
                h.header(name, value);
            }
        });
        let body = if send_body && !body.is_empty() {
            Body::Memory(Box::new(MemoryBody {
                bytes: body,
                batch: Default::default(),
                started: false,
            }))
        } else {
            Body::None
        };
        self.start_response(key, status, body);
    }

    /// A short answer. `keep` = the connection may stay open (when the request allowed it).
    pub(super) fn respond_simple(
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
    pub(super) fn write_head(
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

    pub(super) fn start_response(&mut self, key: usize, status: u16, body: Body) {
        self.stats.request(status);
        self.log_status(key, status);
        let conn = &mut self.conns[key];
        conn.phase = Phase::Respond;
        conn.linger = status >= 400;
        conn.body = body;
        conn.woff = 0;
        self.arm_deadline(key, Deadline::Send, self.config.http.send_timeout_ms);
        self.advance(key);
    }

    /// Queue the next step of the response, if nothing is in flight.
    pub(super) fn advance(&mut self, key: usize) {
        let send_path = self.config.vod.send_path;
        let conn = &mut self.conns[key];
        if conn.busy() {
            return;
        }
        if conn.want_pollout {
            conn.want_pollout = false;
            let entry = ops::poll_out(conn.raw_fd());
            self.driver.submit(&mut conn.io, key, Op::PollOut, entry);
            return;
        }
        let body_left = match &conn.body {
            // The file is still being opened; its completions continue the response.
            Body::Opening(_) => return,
            Body::File(f) => f.remaining > 0 || f.pipe_fill > 0,
            Body::None | Body::Ingest(_) | Body::Upload(_) | Body::Callout(_) => false,
            Body::Memory(_) => {
                self.send_memory(key);
                return;
            }
            Body::Live(reader) => {
                if conn.woff >= conn.wbuf.len() {
                    if reader.finishing {
                        self.finish_response(key);
                    } else if reader.end_requested {
                        // Shutdown asked for the end: the last chunk, then the close.
                        Self::finish_reader(conn);
                        self.advance(key);
                    } else {
                        self.pump_reader(key);
                    }
                    return;
                }
                false
            }
        };
        if conn.woff < conn.wbuf.len() {
            let mut entry = ops::send(conn.raw_fd(), &conn.wbuf[conn.woff..], body_left);
            self.stats.sends_submitted += 1;
            // Link the first body step behind the head: one io_uring_enter carries both, and
            // a short head send cancels the rest of the chain (handled as no progress).
            let link = send_path == SendPath::Splice && body_left;
            if link {
                entry = ops::linked(entry);
            }
            self.driver.submit(&mut conn.io, key, Op::Send, entry);
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
                        let chunk = f.remaining.min(super::vod::SENDFILE_BYTES_PER_TURN);
                        crate::runtime::cachestat::range_cached(f.file.as_raw_fd(), f.offset, chunk)
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

    /// The head (from the connection's buffer) and the in-memory body (from its shared
    /// bytes) in one sendmsg; after a short send, the rest from where the kernel stopped.
    fn send_memory(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let Body::Memory(memory) = &mut conn.body else {
            return;
        };
        if !memory.started {
            memory.started = true;
            memory.batch.clear();
            memory.batch.push(&conn.wbuf[conn.woff..]);
            memory.batch.push(&memory.bytes);
        }
        if memory.batch.remaining() == 0 {
            self.finish_response(key);
            return;
        }
        memory.batch.prepare();
        let entry = ops::sendmsg(conn.fd.as_raw_fd(), &memory.batch);
        self.stats.sends_submitted += 1;
        self.driver.submit(&mut conn.io, key, Op::SendMsg, entry);
    }

    pub(super) fn on_memory_sent(&mut self, key: usize, result: i32) {
        if result < 0 {
            self.close(key, CloseReason::from_errno(-result));
            return;
        }
        if let Body::Memory(memory) = &mut self.conns[key].body {
            memory.batch.advance(result as usize);
        }
        self.progress(key, result as u64);
        self.advance(key);
    }

    pub(super) fn progress(&mut self, key: usize, bytes: u64) {
        self.stats.bytes_sent += bytes;
        self.arm_deadline(key, Deadline::Send, self.config.http.send_timeout_ms);
    }

    pub(super) fn on_send(&mut self, key: usize, result: i32) {
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

    pub(super) fn on_pollout(&mut self, key: usize, result: i32) {
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
    pub(super) fn finish_response(&mut self, key: usize) {
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
        self.log_finish(key, "keepalive");
        let conn = &mut self.conns[key];
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
    pub(super) fn begin_linger(&mut self, key: usize) {
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
        // Queue a FIN behind the bytes already sent (never blocks).
        self.driver.shutdown(conn.fd.as_fd(), true);
        self.arm_deadline(key, Deadline::Linger, after_ms);
        self.submit_recv(key);
    }

    pub(super) fn on_linger_recv(&mut self, key: usize, result: i32) {
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
}
