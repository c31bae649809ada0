//! Callouts to the operator's auth service (`[auth]` mode `http`, `auth.http_url`), the way
//! SRS's http_hooks and nginx-rtmp's on_publish/on_play work, but on the worker's own ring:
//! a callout is a slot in the worker's slab ([`Phase::Callout`]) that connects
//! (IORING_OP_CONNECT), sends one `POST` of a JSON description of the request, receives the
//! answer's head and closes. Nothing blocks: the client waits parked (HTTP: [`Phase::WaitAuth`]
//! with nothing in flight; RTMP: its receive stays posted and the session's events wait
//! unpolled, bounded by `rtmp.buffered_bytes_max`) until the decision.
//!
//! - 2xx allows; any other status denies (403 `http_denied`); no answer within
//!   `auth.http_timeout_ms` (`Deadline::Callout`) denies (403 `http_timeout`); a refused
//!   connect, a reset or a malformed answer denies (403 `http_unreachable`). Past
//!   `auth.http_pending_max` callouts in flight, a decision is answered 503.
//! - Allows and denies are cached per worker for `auth.http_cache_ms`, keyed by everything
//!   the service was told but the session id: an HLS player asking for its playlist every two
//!   seconds costs one callout per cache period. Timeouts and failures are not cached.
//! - When a publish or a live play ends (`auth.http_notify`), `publish_done` or `play_done`
//!   goes to the same URL with the bytes and the duration; its answer is read and ignored.
//!
//! A parked client is resumed only if its slot still holds the same generation (and is still
//! waiting): a client that went away meanwhile is never confused with a newer one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::AsFd;

use super::conn::{Body, Conn, Deadline, Phase};
use super::http::TEXT_PLAIN;
use super::loglimit::PeerLog;
use super::worker::Worker;
use crate::app::auth::{Action, Refusal, http_refusal};
use crate::app::router::LiveFormat;
use crate::metrics::CloseReason;
use crate::proto::http::RequestHead;
use crate::proto::http::client::{RESPONSE_HEAD_MAX, ResponseParse, parse_response, post_json};
use crate::runtime::driver::Ring;
use crate::runtime::op::Op;
use crate::runtime::ops::{self, ConnectAddr};
use crate::runtime::sys;

/// How often expired cache entries are swept (worker ms).
const CACHE_SWEEP_MS: u64 = 1000;

/// The protocol a client uses: what the auth service is told, the sessions API lists and
/// the access log names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Protocol {
    HttpFlv,
    HttpTs,
    Hls,
    Rtmp,
}

impl Protocol {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Protocol::HttpFlv => "http-flv",
            Protocol::HttpTs => "http-ts",
            Protocol::Hls => "hls",
            Protocol::Rtmp => "rtmp",
        }
    }

    pub(crate) fn live(format: LiveFormat) -> Protocol {
        match format {
            LiveFormat::Flv => Protocol::HttpFlv,
            LiveFormat::Ts => Protocol::HttpTs,
        }
    }

    /// A reader's protocol, from its framing.
    pub(crate) fn of_reader(framing: crate::media::framing::Framing) -> Protocol {
        match framing {
            crate::media::framing::Framing::Rtmp => Protocol::Rtmp,
            f if f.is_ts() => Protocol::HttpTs,
            _ => Protocol::HttpFlv,
        }
    }
}

/// What the auth service is asked about (and the cache key).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Subject {
    pub action: Action,
    pub app: String,
    pub stream: String,
    /// The query without its `?` (None: there was none).
    pub query: Option<String>,
    pub client_ip: Option<IpAddr>,
    pub protocol: Protocol,
}

impl Subject {
    /// The JSON the service receives; a notification adds `bytes` and `duration_ms`.
    fn json(&self, action: &str, session_id: u64, done: Option<(u64, u64)>) -> Vec<u8> {
        let mut body = serde_json::json!({
            "action": action,
            "app": self.app,
            "stream": self.stream,
            "query": self.query.as_deref().unwrap_or(""),
            "client_ip": self.client_ip.map(|ip| ip.to_canonical().to_string()),
            "protocol": self.protocol.as_str(),
            "session_id": session_id,
        });
        if let (Some((bytes, duration_ms)), Some(map)) = (done, body.as_object_mut()) {
            map.insert("bytes".into(), bytes.into());
            map.insert("duration_ms".into(), duration_ms.into());
        }
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// Who waits for a decision: the slot key and generation of the client, and what resumes it.
pub(crate) enum Waiter {
    /// An HTTP request in [`Phase::WaitAuth`]: routed again once allowed.
    Http { head: Box<RequestHead> },
    /// An RTMP publish or play command (`RtmpConn::auth_wait`).
    Rtmp { stream_id: u32, name: String },
}

enum Purpose {
    Decide {
        subject: Subject,
        key: usize,
        generation: u32,
        waiter: Waiter,
    },
    Notify {
        event: &'static str,
    },
}

/// How a callout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The service answered this status.
    Answered(u16),
    /// No answer within `auth.http_timeout_ms`.
    Timeout,
    /// The connect failed (refused, unreachable) or the socket could not be made.
    Unreachable,
    /// A reset, a close before the answer, or an answer that is not HTTP.
    Error,
}

impl Outcome {
    fn decision(self) -> Result<(), &'static str> {
        match self {
            Outcome::Answered(status) if (200..300).contains(&status) => Ok(()),
            Outcome::Answered(_) => Err("http_denied"),
            Outcome::Timeout => Err("http_timeout"),
            Outcome::Unreachable | Outcome::Error => Err("http_unreachable"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Outcome::Answered(status) if (200..300).contains(&status) => "allow",
            Outcome::Answered(_) => "deny",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable => "unreachable",
            Outcome::Error => "error",
        }
    }
}

/// One callout's state, in its slot's [`Body::Callout`]. The request bytes are in the slot's
/// `wbuf`, the answer is received into its `rbuf` ([`RESPONSE_HEAD_MAX`] bytes).
pub(crate) struct Callout {
    /// Read by the kernel until the connect completes; kept until the slot is released.
    addr: ConnectAddr,
    /// Taken when the outcome is delivered (exactly once).
    purpose: Option<Purpose>,
}

#[derive(Clone, Copy)]
struct Cached {
    allow: bool,
    expires_ms: u64,
}

/// A worker's decisions (sans-IO: the caller brings the time): an entry answers until it
/// expires; a full cache takes nothing new until a sweep or a lookup frees room.
#[derive(Default)]
struct DecisionCache {
    entries: HashMap<Subject, Cached>,
}

impl DecisionCache {
    /// The cached decision for `subject` (true: allowed), if it has not expired.
    fn get(&mut self, subject: &Subject, now_ms: u64) -> Option<bool> {
        let cached = *self.entries.get(subject)?;
        if cached.expires_ms > now_ms {
            return Some(cached.allow);
        }
        self.entries.remove(subject);
        None
    }

    /// Remember `allow` for `ttl_ms` (0: not at all), unless `max` entries are held.
    fn insert(&mut self, subject: &Subject, allow: bool, now_ms: u64, ttl_ms: u64, max: usize) {
        if ttl_ms == 0 || (self.entries.len() >= max && !self.entries.contains_key(subject)) {
            return;
        }
        let expires_ms = now_ms + ttl_ms;
        self.entries
            .insert(subject.clone(), Cached { allow, expires_ms });
    }

    fn sweep(&mut self, now_ms: u64) {
        self.entries.retain(|_, c| c.expires_ms > now_ms);
    }
}

/// A worker's callout state: the decision cache and the count of callouts in flight.
#[derive(Default)]
pub(crate) struct Callouts {
    cache: DecisionCache,
    next_sweep_ms: u64,
    /// Callout slots alive (inserted, not yet released).
    pending: usize,
    /// A parked request being routed again after an allow: its `authorize` passes once.
    grant: Option<(usize, u32)>,
}

impl Callouts {
    /// Callout slots alive (not clients: left out of the active connections count).
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }
}

/// What `callout_check` decided at once.
pub(crate) enum Check {
    Allowed,
    Refused(Refusal),
    /// A callout is under way; the waiter is resumed by its outcome.
    Parked,
}

impl<R: Ring> Worker<R> {
    /// Mode `http`: the cached decision, a grant for a request being routed again, or a new
    /// callout the client waits for (the caller parks it on [`Check::Parked`]).
    pub(super) fn callout_check(&mut self, key: usize, subject: Subject, waiter: Waiter) -> Check {
        let generation = self.conns[key].generation();
        if self.callouts.grant == Some((key, generation)) {
            self.callouts.grant = None;
            return Check::Allowed;
        }
        let auth = self.shared.auth.load_full();
        let Some(service) = auth.http() else {
            return Check::Refused(http_refusal("http_unreachable"));
        };
        let cache_ms = service.cache_ms;
        let now_ms = self.now_ms();
        if cache_ms > 0
            && let Some(allow) = self.callouts.cache.get(&subject, now_ms)
        {
            metrics::counter!("uringcast_auth_cache_hits_total", "action" => subject.action.as_str()).increment(1);
            return if allow {
                Check::Allowed
            } else {
                Check::Refused(http_refusal("http_denied"))
            };
        }
        if self.callouts.pending >= service.pending_max {
            // Counted as a refusal (reason http_busy) by the caller.
            return Check::Refused(http_refusal("http_busy"));
        }
        let body = subject.json(subject.action.as_str(), self.conns[key].id, None);
        let purpose = Purpose::Decide {
            subject,
            key,
            generation,
            waiter,
        };
        match self.start_callout(body, purpose) {
            Ok(()) => Check::Parked,
            Err(refusal) => Check::Refused(refusal),
        }
    }

    /// Record what a connection's publish or play is, for its publish_done/play_done.
    pub(super) fn callout_remember(&mut self, key: usize, subject: Subject) {
        if self.shared.auth.load().notifies()
            && let Some(conn) = self.conns.get_mut(key)
        {
            conn.auth_subject = Some(Box::new(subject));
        }
    }

    /// The subject of a request on `key` (client address from the accept).
    pub(super) fn callout_subject(
        &self,
        key: usize,
        action: Action,
        app: &str,
        stream: &str,
        query: Option<&str>,
        protocol: Protocol,
    ) -> Subject {
        Subject {
            action,
            app: app.to_string(),
            stream: stream.to_string(),
            query: query.map(str::to_string),
            client_ip: self.conns[key].peer.map(|a| a.ip()),
            protocol,
        }
    }

    /// A new callout slot: socket, request in `wbuf`, connect through the ring, deadline.
    fn start_callout(&mut self, body: Vec<u8>, purpose: Purpose) -> Result<(), Refusal> {
        let auth = self.shared.auth.load_full();
        let Some(service) = auth.http() else {
            return Err(http_refusal("http_unreachable"));
        };
        let addr = ConnectAddr::new(service.addr);
        let timeout_ms = service.timeout_ms;
        let request = post_json(&service.path, &service.host, &body);
        let fd = match sys::tcp_socket(addr.domain()) {
            Ok(fd) => fd,
            Err(e) => {
                peer_log!(self, PeerLog::ResourceFailed, warn, worker = self.id, error = %e, "cannot make a socket for the auth service");
                self.callout_outcome_metric(&purpose, Outcome::Unreachable);
                return Err(http_refusal("http_unreachable"));
            }
        };
        let rbuf = vec![0u8; RESPONSE_HEAD_MAX].into_boxed_slice();
        let mut conn = self.new_conn(fd, rbuf, Phase::Callout);
        conn.wbuf = request;
        conn.body = Body::Callout(Box::new(Callout {
            addr,
            purpose: Some(purpose),
        }));
        let key = self.conns.insert(conn);
        self.callouts.pending += 1;
        self.arm_deadline(key, Deadline::Callout, timeout_ms);
        let conn = &mut self.conns[key];
        let Body::Callout(callout) = &conn.body else {
            return Ok(());
        };
        let entry = ops::connect(conn.raw_fd(), &callout.addr);
        self.driver.submit(&mut conn.io, key, Op::Connect, entry);
        Ok(())
    }

    /// A completion of a callout slot.
    pub(super) fn on_callout(&mut self, key: usize, op: Op, result: i32) {
        match op {
            Op::Connect => {
                if result < 0 {
                    self.finish_callout(key, Outcome::Unreachable);
                    return;
                }
                self.callout_send(key);
            }
            Op::Send => {
                if result < 0 {
                    self.finish_callout(key, Outcome::Error);
                    return;
                }
                self.conns[key].woff += result as usize;
                self.callout_send(key);
            }
            Op::Recv => {
                if result <= 0 {
                    // Closed or reset before a complete answer head.
                    self.finish_callout(key, Outcome::Error);
                    return;
                }
                let conn = &mut self.conns[key];
                conn.rlen += result as usize;
                match parse_response(&conn.rbuf[..conn.rlen]) {
                    Ok(ResponseParse::Complete { status, .. }) => {
                        self.finish_callout(key, Outcome::Answered(status))
                    }
                    Ok(ResponseParse::Partial) => self.callout_recv(key),
                    Err(e) => {
                        peer_log!(self, PeerLog::BadRequest, info, worker = self.id, error = %e, "bad answer from the auth service");
                        self.finish_callout(key, Outcome::Error)
                    }
                }
            }
            _ => {}
        }
    }

    /// Send (the rest of) the request, or, once it is out, receive the answer.
    fn callout_send(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.woff >= conn.wbuf.len() {
            self.callout_recv(key);
            return;
        }
        let entry = ops::send(conn.raw_fd(), &conn.wbuf[conn.woff..], false);
        self.driver.submit(&mut conn.io, key, Op::Send, entry);
    }

    fn callout_recv(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let (rlen, fd) = (conn.rlen, conn.raw_fd());
        let Some(free) = conn.rbuf.get_mut(rlen..).filter(|b| !b.is_empty()) else {
            self.finish_callout(key, Outcome::Error);
            return;
        };
        let entry = ops::recv(fd, free);
        self.driver.submit(&mut conn.io, key, Op::Recv, entry);
    }

    /// `Deadline::Callout` fired: a callout out of time, or (the backstop, which fires after
    /// the callout's own deadline) a client still waiting for one.
    pub(super) fn callout_deadline(&mut self, key: usize) {
        match self.conns.get(key).map(|c| c.phase) {
            Some(Phase::Callout) => self.finish_callout(key, Outcome::Timeout),
            Some(_) => self.close(key, CloseReason::Timeout),
            None => {}
        }
    }

    /// The callout is over: deliver its outcome and close its slot (released when idle).
    fn finish_callout(&mut self, key: usize, outcome: Outcome) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let purpose = match &mut conn.body {
            Body::Callout(callout) => callout.purpose.take(),
            _ => None,
        };
        conn.phase = Phase::Closing;
        conn.timers.disarm_all();
        if conn.io.is_idle() {
            self.release(key);
        } else {
            self.driver.shutdown(conn.fd.as_fd(), false);
        }
        if let Some(purpose) = purpose {
            self.deliver(purpose, outcome);
        }
    }

    /// A callout slot is being released (its body taken out of it): it no longer counts, and
    /// one closed before its outcome (shutdown) delivers a failure now.
    pub(super) fn callout_released(&mut self, callout: Callout) {
        self.callouts.pending = self.callouts.pending.saturating_sub(1);
        if let Some(purpose) = callout.purpose {
            self.deliver(purpose, Outcome::Error);
        }
    }

    fn callout_outcome_metric(&self, purpose: &Purpose, outcome: Outcome) {
        match purpose {
            Purpose::Decide { subject, .. } => {
                metrics::counter!("uringcast_auth_callouts_total", "action" => subject.action.as_str(), "result" => outcome.label()).increment(1);
            }
            Purpose::Notify { event } => {
                let result = match outcome {
                    Outcome::Answered(_) => "sent",
                    _ => "failed",
                };
                metrics::counter!("uringcast_auth_notifications_total", "event" => *event, "result" => result).increment(1);
            }
        }
    }

    fn deliver(&mut self, purpose: Purpose, outcome: Outcome) {
        self.callout_outcome_metric(&purpose, outcome);
        let Purpose::Decide {
            subject,
            key,
            generation,
            waiter,
        } = purpose
        else {
            return;
        };
        let decision = outcome.decision();
        // Timeouts and failures are not cached: the next request asks again.
        if let Some(service) = self.shared.auth.load().http()
            && matches!(outcome, Outcome::Answered(_))
        {
            let (ttl_ms, max) = (service.cache_ms, service.cache_entries);
            let now_ms = self.now_ms();
            self.callouts
                .cache
                .insert(&subject, decision.is_ok(), now_ms, ttl_ms, max);
        }
        let waiting = self.conns.get(key).is_some_and(|c| {
            c.generation() == generation
                && match waiter {
                    Waiter::Http { .. } => c.phase == Phase::WaitAuth,
                    Waiter::Rtmp { .. } => {
                        c.phase == Phase::Rtmp && c.rtmp.as_ref().is_some_and(|r| r.auth_wait)
                    }
                }
        });
        if !waiting {
            return; // gone (or closed) meanwhile
        }
        match waiter {
            Waiter::Http { head } => {
                self.conns[key].phase = Phase::ReadHead;
                match decision {
                    Ok(()) => {
                        self.callouts.grant = Some((key, generation));
                        self.respond(key, *head);
                        self.callouts.grant = None;
                    }
                    Err(reason) => {
                        let refusal = http_refusal(reason);
                        self.callout_refused(&subject, &refusal, "http");
                        let text = format!("{}\n", refusal.message);
                        self.respond_simple(
                            key,
                            refusal.status,
                            TEXT_PLAIN,
                            text.as_bytes(),
                            false,
                            &[],
                        );
                    }
                }
            }
            Waiter::Rtmp { stream_id, name } => {
                let refusal = decision.err().map(http_refusal);
                if let Some(refusal) = &refusal {
                    self.callout_refused(&subject, refusal, "rtmp");
                }
                self.rtmp_auth_decided(key, subject, stream_id, &name, refusal);
            }
        }
    }

    /// Count and log a refusal (never the query: it may hold a key or a token).
    pub(super) fn callout_refused(
        &mut self,
        subject: &Subject,
        refusal: &Refusal,
        protocol: &'static str,
    ) {
        metrics::counter!("uringcast_auth_refused_total", "protocol" => protocol, "action" => subject.action.as_str(), "reason" => refusal.reason).increment(1);
        peer_log!(self, PeerLog::PublishRefused, info, worker = self.id, stream = %format!("{}/{}", subject.app, subject.stream), action = subject.action.as_str(), reason = refusal.reason, "refused by the auth service");
    }

    /// A connection is being released (`conn` already out of the slab): a live play or a
    /// publish it still had ends now.
    pub(super) fn callout_conn_released(&mut self, conn: &mut Conn) {
        let publishing = matches!(conn.body, Body::Ingest(_))
            || conn.rtmp.as_ref().is_some_and(|r| r.publish.is_some());
        let playing = matches!(conn.body, Body::Live(_));
        if publishing || playing {
            let mut from = NotifyFrom::of(conn);
            self.notify_done_from(&mut from, publishing);
        }
    }

    /// A publish ended on a connection that stays (HTTP body complete, RTMP unpublish).
    pub(super) fn callout_publish_ended(&mut self, key: usize) {
        let Some(mut from) = self.conns.get_mut(key).map(NotifyFrom::of) else {
            return;
        };
        self.notify_done_from(&mut from, true);
    }

    fn notify_done_from(&mut self, from: &mut NotifyFrom, publish: bool) {
        let Some(subject) = from.subject.take() else {
            return;
        };
        let auth = self.shared.auth.load_full();
        let Some(service) = auth.http() else {
            return;
        };
        if !service.notify {
            return;
        }
        let event = if publish { "publish_done" } else { "play_done" };
        if self.callouts.pending >= service.pending_max {
            metrics::counter!("uringcast_auth_notifications_total", "event" => event, "result" => "dropped").increment(1);
            return;
        }
        let bytes = if publish {
            from.bytes_in
        } else {
            from.bytes_out
        };
        let duration_ms = self.now_ms().saturating_sub(from.opened_ms);
        let body = subject.json(event, from.id, Some((bytes, duration_ms)));
        let _ = self.start_callout(body, Purpose::Notify { event });
    }

    /// Once per tick: expired decisions go (at most once a second, a walk of the cache).
    pub(super) fn callout_tick(&mut self, now_ms: u64) {
        if now_ms < self.callouts.next_sweep_ms {
            return;
        }
        self.callouts.next_sweep_ms = now_ms + CACHE_SWEEP_MS;
        self.callouts.cache.sweep(now_ms);
    }
}

/// What a done notification needs of its connection (the subject is taken out of it).
struct NotifyFrom {
    subject: Option<Box<Subject>>,
    id: u64,
    bytes_in: u64,
    bytes_out: u64,
    opened_ms: u64,
}

impl NotifyFrom {
    fn of(conn: &mut Conn) -> NotifyFrom {
        NotifyFrom {
            subject: conn.auth_subject.take(),
            id: conn.id,
            bytes_in: conn.bytes_in,
            bytes_out: conn.bytes_out,
            opened_ms: conn.opened_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(stream: &str, query: Option<&str>) -> Subject {
        Subject {
            action: Action::Play,
            app: "live".into(),
            stream: stream.into(),
            query: query.map(str::to_string),
            client_ip: "127.0.0.1".parse().ok(),
            protocol: Protocol::Hls,
        }
    }

    #[test]
    fn decisions_are_cached_until_they_expire_and_a_full_cache_takes_nothing_new() {
        let mut cache = DecisionCache::default();
        let (a, b, c) = (subject("a", None), subject("b", None), subject("c", None));
        cache.insert(&a, true, 1000, 5000, 2);
        cache.insert(&b, false, 1000, 5000, 2);
        assert_eq!(cache.get(&a, 5999), Some(true));
        assert_eq!(cache.get(&b, 5999), Some(false));
        // Every field is part of the key.
        assert_eq!(cache.get(&subject("a", Some("token=x")), 2000), None);
        let mut other_ip = a.clone();
        other_ip.client_ip = "127.0.0.2".parse().ok();
        assert_eq!(cache.get(&other_ip, 2000), None);
        let mut other_protocol = a.clone();
        other_protocol.protocol = Protocol::HttpFlv;
        assert_eq!(cache.get(&other_protocol, 2000), None);
        // Full: c is not remembered, but a known subject is refreshed.
        cache.insert(&c, true, 2000, 5000, 2);
        assert_eq!(cache.get(&c, 2001), None);
        cache.insert(&a, false, 3000, 5000, 2);
        assert_eq!(cache.get(&a, 7999), Some(false));
        // Expired: gone on lookup, and by a sweep.
        assert_eq!(cache.get(&b, 6000), None);
        cache.sweep(8000);
        assert!(cache.entries.is_empty());
        // A ttl of 0 caches nothing.
        cache.insert(&a, true, 0, 0, 10);
        assert_eq!(cache.get(&a, 0), None);
    }

    #[test]
    fn outcomes_decide_with_their_reasons_and_labels() {
        assert_eq!(Outcome::Answered(204).decision(), Ok(()));
        assert_eq!(Outcome::Answered(299).label(), "allow");
        assert_eq!(Outcome::Answered(302).decision(), Err("http_denied"));
        assert_eq!(Outcome::Answered(500).label(), "deny");
        assert_eq!(Outcome::Timeout.decision(), Err("http_timeout"));
        assert_eq!(Outcome::Unreachable.decision(), Err("http_unreachable"));
        assert_eq!(Outcome::Error.label(), "error");
    }

    #[test]
    fn the_json_has_every_field_and_the_notification_its_totals() {
        let s = subject("cam", Some("token=x"));
        let v: serde_json::Value = serde_json::from_slice(&s.json("play", 42, None)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"action": "play", "app": "live", "stream": "cam",
                "query": "token=x", "client_ip": "127.0.0.1", "protocol": "hls",
                "session_id": 42})
        );
        let mut mapped = subject("cam", None);
        mapped.client_ip = "::ffff:10.0.0.1".parse().ok();
        let v: serde_json::Value =
            serde_json::from_slice(&mapped.json("play_done", 7, Some((1234, 5678)))).unwrap();
        assert_eq!(v["client_ip"], "10.0.0.1");
        assert_eq!(v["query"], "");
        assert_eq!(
            (v["bytes"].as_u64(), v["duration_ms"].as_u64()),
            (Some(1234), Some(5678))
        );
    }
}
