//! RTMP connections: the sans-IO [`ServerSession`] (handshake, chunk stream, commands) fed by
//! the ring, and its decisions applied to the live registry.
//!
//! - A receive stays posted for the whole connection, also while it sends: a player's
//!   acknowledgements and pings, and a publisher's media, arrive at any time.
//! - What the session writes (handshake, control messages, command answers) goes out with
//!   `send` from the session's own bytes, always between whole media messages.
//! - A publisher's media messages become the same [`MediaUnit`]s the HTTP-FLV ingest
//!   produces: the session reassembles each message once, from the receive buffer into a
//!   buffer with the framing room around it, and that buffer becomes the ring entry (see
//!   `media::stream::flv_entry`): one userspace copy of the payload.
//! - A player is a [`LiveReader`] in the RTMP framing: its batches are two iovecs per entry
//!   (the chunk header and the body, both in the entry's memory), under the same hub, lag,
//!   skip and deadline rules as an HTTP-FLV viewer.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::callout::{Check, Protocol, Subject, Waiter};
use super::conn::{Body, Deadline, LiveReader, Phase};
use super::live::Wait;
use super::loglimit::PeerLog;
use super::worker::Worker;
use crate::app::auth::{Action, Refusal};
use crate::app::router::valid_live_name;
use crate::media::framing::{self, Framing, RTMP_STREAM_ID};
use crate::media::stream::{PublishError, Publisher, RegistryError};
use crate::media::unit::{MediaUnit, UnitKind};
use crate::metrics::CloseReason;
use crate::proto::flv::{self, classify_tag};
use crate::proto::rtmp::{Event, MediaMessage, RtmpLimits, ServerSession};
use crate::runtime::driver::Ring;
use crate::runtime::op::Op;
use crate::runtime::ops;
use crate::runtime::sys;

/// A player's receive buffer, once it plays: it only sends acknowledgements, pings and a
/// final deleteStream (the session takes input in pieces of any size), so its connection does
/// not keep the publisher-sized buffer (`runtime.recv_bytes`) for hours of viewing.
const PLAYER_RECV_BYTES: usize = 2048;

/// onStatus codes of refusals.
const PUBLISH_BAD_NAME: &str = "NetStream.Publish.BadName";
const PLAY_NOT_FOUND: &str = "NetStream.Play.StreamNotFound";
const PLAY_FAILED: &str = "NetStream.Play.Failed";

/// An RTMP connection's state beside its [`Conn`].
pub(crate) struct RtmpConn {
    pub session: ServerSession,
    /// The application named by `connect` (without its query).
    pub app: Option<String>,
    /// The query of the `connect` app (`rtmp://host/app?key=...`), for `[auth]`.
    pub app_query: Option<String>,
    /// Accepted publish: the stream it feeds and its message stream id.
    pub publish: Option<RtmpPublish>,
    /// The message stream id of an accepted play (its reader is the connection's body).
    pub play_stream_id: Option<u32>,
    /// Session bytes under a send, and how much of them is out.
    pub sending: Option<(Bytes, usize)>,
    /// Close once the session's output is out (a played stream ended).
    pub close_when_sent: bool,
    /// A publish or play waits for the auth service: later events stay in the session
    /// (bounded by `rtmp.buffered_bytes_max`) until the decision.
    pub auth_wait: bool,
}

pub(crate) struct RtmpPublish {
    pub publisher: Publisher,
    pub stream_id: u32,
    pub units: u64,
}

/// Why an RTMP publish ended.
enum PublishEnd {
    /// The peer asked (FCUnpublish, closeStream, deleteStream).
    Requested,
    /// Bad media or a limit: the connection closes.
    Error(String),
}

impl<R: Ring> Worker<R> {
    /// The RTMP session limits from the configuration.
    fn rtmp_limits(&self) -> RtmpLimits {
        let r = &self.config.rtmp;
        RtmpLimits {
            chunk_size_max: r.chunk_size_max,
            message_bytes_max: r.message_bytes_max,
            buffered_bytes_max: r.buffered_bytes_max,
            chunk_streams_max: r.chunk_streams_max,
            message_streams_max: r.message_streams_max,
            ack_window: r.ack_window,
            out_chunk_size: framing::RTMP_CHUNK_SIZE,
        }
    }

    /// A new connection on the RTMP listener: the handshake starts with the first receive.
    pub(super) fn open_rtmp_conn(&mut self, fd: OwnedFd) {
        let mut session = ServerSession::new(self.rtmp_limits());
        // Media messages arrive with room for the ring entry's framings and FLV tag header
        // before them, and the PreviousTagSize and framing tail after them.
        session.set_media_room(
            framing::HEADROOM + flv::TAG_HEADER_LEN,
            flv::PREV_TAG_SIZE_LEN + framing::TAILROOM,
        );
        let rbuf = vec![0u8; self.config.runtime.recv_bytes].into_boxed_slice();
        let mut conn = self.new_conn(fd, rbuf, Phase::Rtmp);
        conn.rtmp = Some(Box::new(RtmpConn {
            session,
            app: None,
            app_query: None,
            publish: None,
            play_stream_id: None,
            sending: None,
            close_when_sent: false,
            auth_wait: false,
        }));
        let key = self.conns.insert(conn);
        self.stats.rtmp_accepted += 1;
        self.arm_deadline(key, Deadline::Header, self.config.rtmp.handshake_timeout_ms);
        self.submit_rtmp_recv(key);
    }

    fn submit_rtmp_recv(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let entry = ops::recv(conn.raw_fd(), &mut conn.rbuf);
        self.driver.submit(&mut conn.io, key, Op::Recv, entry);
    }

    pub(super) fn on_rtmp_recv(&mut self, key: usize, result: i32) {
        if result <= 0 {
            self.close(key, CloseReason::from_recv(result));
            return;
        }
        let conn = &mut self.conns[key];
        let Some(rtmp) = conn.rtmp.as_mut() else {
            return;
        };
        if let Err(e) = rtmp.session.receive(&conn.rbuf[..result as usize]) {
            self.rtmp_protocol_error(key, e.reason(), &e.to_string());
            return;
        }
        self.rtmp_events(key);
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if conn.phase != Phase::Rtmp {
            return; // closed while handling the events
        }
        let Some(rtmp) = conn.rtmp.as_ref() else {
            return;
        };
        // Deadlines: the handshake and connect must be done within the handshake deadline
        // (armed at the accept); then a connection that neither publishes nor plays must keep
        // talking. A publisher's deadline moves with its media (in `rtmp_media`), a player's
        // with its sends, a parked play's is the play wait.
        if rtmp.app.is_some() && rtmp.publish.is_none() && rtmp.play_stream_id.is_none() {
            self.arm_deadline(key, Deadline::Idle, self.config.rtmp.idle_timeout_ms);
        }
        self.rtmp_advance(key);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase != Phase::Rtmp {
            return;
        }
        if matches!(conn.body, Body::Live(_)) && conn.rbuf.len() > PLAYER_RECV_BYTES {
            // No receive is in flight here: its completion is being handled.
            conn.rbuf = vec![0u8; PLAYER_RECV_BYTES].into_boxed_slice();
        }
        self.submit_rtmp_recv(key);
    }

    /// Count, log and close for a peer that broke the protocol or a limit.
    fn rtmp_protocol_error(&mut self, key: usize, reason: &'static str, detail: &str) {
        metrics::counter!("uringcast_rtmp_errors_total", "reason" => reason).increment(1);
        peer_log!(
            self,
            PeerLog::BadRequest,
            info,
            worker = self.id,
            reason,
            detail,
            "rtmp connection closed: protocol error"
        );
        self.close(key, CloseReason::ProtocolError);
    }

    /// Act on what the session decoded.
    fn rtmp_events(&mut self, key: usize) {
        let mut published: Option<Arc<crate::media::stream::Stream>> = None;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.phase != Phase::Rtmp {
                return;
            }
            let Some(rtmp) = conn.rtmp.as_mut() else {
                return;
            };
            if rtmp.auth_wait {
                break; // nothing acts before the decision
            }
            let Some(event) = rtmp.session.poll_event() else {
                break;
            };
            match event {
                Event::Connect { app, app_query, .. } => {
                    if valid_live_name(&app) && app != "vod" {
                        rtmp.session.accept_connect();
                        rtmp.app = Some(app);
                        rtmp.app_query = app_query;
                    } else {
                        rtmp.session.reject_connect("invalid application name");
                        rtmp.close_when_sent = true;
                        metrics::counter!("uringcast_rtmp_refused_total", "what" => "connect", "code" => "NetConnection.Connect.Rejected").increment(1);
                    }
                }
                Event::Publish {
                    stream_id,
                    name,
                    query,
                    ..
                } => {
                    if self.rtmp_authorize(key, Action::Publish, stream_id, &name, query) {
                        self.rtmp_publish(key, stream_id, &name)
                    }
                }
                Event::Play {
                    stream_id,
                    name,
                    query,
                    ..
                } => {
                    if self.rtmp_authorize(key, Action::Play, stream_id, &name, query) {
                        self.rtmp_play(key, stream_id, &name)
                    }
                }
                Event::Media(message) => match self.rtmp_media(key, message) {
                    Ok(Some(stream)) => published = Some(stream),
                    Ok(None) => {}
                    Err(reason) => {
                        if let Some(stream) = published.take() {
                            self.notify_stream(&stream);
                        }
                        self.rtmp_end_publish(key, PublishEnd::Error(reason));
                        return;
                    }
                },
                Event::CloseStream { stream_id } => {
                    let rtmp = self.conns[key].rtmp.as_mut();
                    let publishing = rtmp
                        .as_ref()
                        .and_then(|r| r.publish.as_ref())
                        .is_some_and(|p| p.stream_id == stream_id);
                    let playing = rtmp
                        .as_ref()
                        .is_some_and(|r| r.play_stream_id == Some(stream_id));
                    if publishing {
                        if let Some(stream) = published.take() {
                            self.notify_stream(&stream);
                        }
                        self.rtmp_end_publish(key, PublishEnd::Requested);
                    } else if playing {
                        // The player is done with its stream; it closes next. Its reader stays
                        // attached until the connection is released (a batch may be in flight).
                        self.close(key, CloseReason::Done);
                        return;
                    }
                }
            }
        }
        if let Some(stream) = published {
            self.notify_stream(&stream);
        }
    }

    /// `[auth]` for an RTMP publish or play: the key or signed URL rides on the stream name
    /// (`stream?key=...`), or on the app (`rtmp://host/app?key=.../stream`). Refused:
    /// NetStream.Publish.BadName or NetStream.Play.Failed, then the connection closes.
    fn rtmp_authorize(
        &mut self,
        key: usize,
        action: Action,
        stream_id: u32,
        name: &str,
        query: Option<String>,
    ) -> bool {
        let Some(rtmp) = self.conns[key].rtmp.as_mut() else {
            return false;
        };
        let Some(app) = rtmp.app.clone() else {
            return true; // the session refuses commands before connect
        };
        let query = query.or_else(|| rtmp.app_query.clone());
        let subject =
            self.callout_subject(key, action, &app, name, query.as_deref(), Protocol::Rtmp);
        let checked = if self.shared.auth.load().needs_callout(action, &app) {
            let waiter = Waiter::Rtmp {
                stream_id,
                name: name.to_string(),
            };
            match self.callout_check(key, subject.clone(), waiter) {
                Check::Allowed => Ok(()),
                Check::Refused(refusal) => Err(refusal),
                Check::Parked => {
                    if let Some(rtmp) = self.conns[key].rtmp.as_mut() {
                        rtmp.auth_wait = true;
                    }
                    return false;
                }
            }
        } else {
            let now_s = crate::media::stream::unix_ms() / 1000;
            self.shared.auth.load().check(
                action,
                &app,
                name,
                query.as_deref(),
                subject.client_ip,
                now_s,
            )
        };
        let Err(refusal) = checked else {
            self.rtmp_remember(key, subject);
            return true;
        };
        self.log_rtmp_session(
            key,
            action.as_str(),
            format!("/{app}/{name}"),
            refusal.status,
        );
        self.rtmp_reject_auth(key, action, stream_id, &refusal);
        metrics::counter!("uringcast_auth_refused_total", "protocol" => "rtmp", "action" => action.as_str(), "reason" => refusal.reason).increment(1);
        peer_log!(self, PeerLog::PublishRefused, info, worker = self.id, stream = %format!("{app}/{name}"), action = action.as_str(), reason = refusal.reason, "rtmp refused by auth");
        false
    }

    /// NetStream.Publish.BadName or NetStream.Play.Failed for a refused publish or play, then
    /// the connection closes.
    fn rtmp_reject_auth(&mut self, key: usize, action: Action, stream_id: u32, refusal: &Refusal) {
        let Some(rtmp) = self.conns[key].rtmp.as_mut() else {
            return;
        };
        match action {
            Action::Publish => {
                rtmp.session
                    .reject_publish(stream_id, PUBLISH_BAD_NAME, &refusal.message)
            }
            Action::Play => rtmp
                .session
                .reject_play(stream_id, PLAY_FAILED, &refusal.message),
        }
        rtmp.close_when_sent = true;
    }

    /// What a publish or play allowed now is (for its done notification), unless the
    /// connection already publishes or plays (the command will be refused).
    fn rtmp_remember(&mut self, key: usize, subject: Subject) {
        let idle = self.conns[key]
            .rtmp
            .as_ref()
            .is_some_and(|r| r.publish.is_none() && r.play_stream_id.is_none());
        if idle {
            self.callout_remember(key, subject);
        }
    }

    /// The auth service decided a publish or play this connection waits for (the caller
    /// checked the slot's generation): act on it, then on the events held meanwhile.
    pub(super) fn rtmp_auth_decided(
        &mut self,
        key: usize,
        subject: Subject,
        stream_id: u32,
        name: &str,
        refusal: Option<Refusal>,
    ) {
        if let Some(rtmp) = self.conns[key].rtmp.as_mut() {
            rtmp.auth_wait = false;
        }
        let action = subject.action;
        match refusal {
            Some(refusal) => self.rtmp_reject_auth(key, action, stream_id, &refusal),
            None => {
                self.rtmp_remember(key, subject);
                match action {
                    Action::Publish => self.rtmp_publish(key, stream_id, name),
                    Action::Play => self.rtmp_play(key, stream_id, name),
                }
            }
        }
        self.rtmp_events(key);
        self.rtmp_advance(key);
    }

    fn rtmp_publish(&mut self, key: usize, stream_id: u32, name: &str) {
        let now_ms = self.now_ms();
        let rtmp = self.conns[key].rtmp.as_mut();
        let Some(rtmp) = rtmp else { return };
        let Some(app) = rtmp.app.clone() else {
            return; // the session refuses commands before connect
        };
        if rtmp.publish.is_some() || rtmp.play_stream_id.is_some() {
            rtmp.session.reject_publish(
                stream_id,
                PUBLISH_BAD_NAME,
                "this connection already publishes or plays",
            );
            return;
        }
        if !valid_live_name(name) {
            rtmp.session
                .reject_publish(stream_id, PUBLISH_BAD_NAME, "invalid stream name");
            metrics::counter!("uringcast_rtmp_refused_total", "what" => "publish", "code" => PUBLISH_BAD_NAME).increment(1);
            return;
        }
        let refusal = match self.shared.registry.publish(&app, name, now_ms) {
            Ok(publisher) => {
                peer_log!(self, PeerLog::Publish, info, worker = self.id, stream = %publisher.stream.key(), "publish started (rtmp)");
                let stream = publisher.stream.clone();
                let rtmp = self.conns[key].rtmp.as_mut();
                if let Some(rtmp) = rtmp {
                    rtmp.session.accept_publish(stream_id);
                    rtmp.publish = Some(RtmpPublish {
                        publisher,
                        stream_id,
                        units: 0,
                    });
                }
                self.arm_deadline(key, Deadline::Idle, self.config.live.publish_timeout_ms);
                let (protocol, role) = (
                    super::sessions::Protocol::Rtmp,
                    super::sessions::Role::Publish,
                );
                self.session_start(key, protocol, role, &stream);
                self.log_rtmp_session(key, "publish", format!("/{app}/{name}"), 200);
                return;
            }
            Err(RegistryError::AlreadyPublishing) => "stream is already being published",
            Err(RegistryError::MemoryBudget) => "live memory budget (live.memory_max) reached",
            Err(_) => "too many streams",
        };
        peer_log!(self, PeerLog::PublishRefused, info, worker = self.id, stream = %format!("{app}/{name}"), reason = refusal, "rtmp publish refused");
        metrics::counter!("uringcast_rtmp_refused_total", "what" => "publish", "code" => PUBLISH_BAD_NAME).increment(1);
        if let Some(rtmp) = self.conns[key].rtmp.as_mut() {
            rtmp.session
                .reject_publish(stream_id, PUBLISH_BAD_NAME, refusal);
        }
    }

    /// One media message of the publisher: into the ring. Returns the stream when a unit
    /// was published (its readers are told once per receive), or why the publish must end.
    fn rtmp_media(
        &mut self,
        key: usize,
        message: MediaMessage,
    ) -> Result<Option<Arc<crate::media::stream::Stream>>, String> {
        let tag_bytes_max = self.config.live.tag_bytes_max as usize;
        let header_bytes_max = self.config.live.header_bytes_max;
        let ring_bytes_hard_max = self.config.live.ring_bytes_hard_max;
        let Some(rtmp) = self.conns[key].rtmp.as_mut() else {
            return Ok(None);
        };
        let Some(publish) = rtmp.publish.as_mut() else {
            return Ok(None); // the session refuses media before an accepted publish
        };
        if message.stream_id != publish.stream_id {
            return Ok(None);
        }
        let len = message.payload.len();
        if len > tag_bytes_max {
            return Err(format!(
                "a media message of {len} bytes exceeds live.tag_bytes_max ({tag_bytes_max})"
            ));
        }
        let mut unit = match media_unit(message) {
            Ok(unit) => unit,
            Err(e) if e.is_skippable() => return Ok(None),
            Err(e) => return Err(format!("malformed media message: {e}")),
        };
        let media = unit.kind != UnitKind::Script;
        match publish.publisher.publish(&mut unit) {
            Ok(()) => {}
            Err(PublishError::GopTooLarge) => {
                return Err(format!(
                    "a GOP exceeds live.ring_bytes_hard_max ({ring_bytes_hard_max} bytes) or live.ring_entries"
                ));
            }
            Err(PublishError::HeaderTooLarge) => {
                return Err(format!(
                    "a sequence header or onMetaData of {} bytes exceeds live.header_bytes_max ({header_bytes_max} bytes)",
                    unit.body.len()
                ));
            }
        }
        publish.units += 1;
        let stream = publish.publisher.stream.clone();
        if media {
            // Only media progress keeps a publish alive.
            self.arm_deadline(key, Deadline::Idle, self.config.live.publish_timeout_ms);
        }
        Ok(Some(stream))
    }

    /// The publish ends: readers enter the grace period. A requested end is answered and
    /// the connection stays; an error closes it.
    fn rtmp_end_publish(&mut self, key: usize, end: PublishEnd) {
        let now_ms = self.now_ms();
        let Some(rtmp) = self.conns.get_mut(key).and_then(|c| c.rtmp.as_mut()) else {
            return;
        };
        let Some(publish) = rtmp.publish.take() else {
            return;
        };
        let stream = publish.publisher.stream.clone();
        self.shared.registry.unpublish(&stream, now_ms);
        if let PublishEnd::Requested = end {
            rtmp.session.end_publish(publish.stream_id);
        }
        self.callout_publish_ended(key);
        match end {
            PublishEnd::Requested => {
                self.session_end(key);
                self.notify_stream(&stream);
                peer_log!(self, PeerLog::Publish, info, worker = self.id, stream = %stream.key(), units = publish.units, "publish ended (rtmp)");
                self.arm_deadline(key, Deadline::Idle, self.config.rtmp.idle_timeout_ms);
            }
            PublishEnd::Error(reason) => {
                self.session_end(key);
                self.notify_stream(&stream);
                metrics::counter!("uringcast_rtmp_errors_total", "reason" => "media").increment(1);
                peer_log!(self, PeerLog::Publish, warn, worker = self.id, stream = %stream.key(), %reason, units = publish.units, "rtmp publish ended with an error");
                self.close(key, CloseReason::ProtocolError);
            }
        }
    }

    fn rtmp_play(&mut self, key: usize, stream_id: u32, name: &str) {
        let Some(rtmp) = self.conns[key].rtmp.as_mut() else {
            return;
        };
        let Some(app) = rtmp.app.clone() else {
            return;
        };
        let refusal = if rtmp.publish.is_some() || rtmp.play_stream_id.is_some() {
            Some((PLAY_FAILED, "this connection already publishes or plays"))
        } else if stream_id != RTMP_STREAM_ID {
            // Every RTMP reader shares the entries' chunk headers, which name stream 1.
            Some((PLAY_FAILED, "play on the first stream of the connection"))
        } else if !valid_live_name(name) {
            Some((PLAY_NOT_FOUND, "invalid stream name"))
        } else {
            None
        };
        if let Some((code, description)) = refusal {
            rtmp.session.reject_play(stream_id, code, description);
            metrics::counter!("uringcast_rtmp_refused_total", "what" => "play", "code" => code)
                .increment(1);
            return;
        }
        if self.shared.registry.get(&app, name).is_some() {
            self.rtmp_start_play(key, &app, name);
            return;
        }
        let wait_ms = self.config.live.play_wait_ms;
        if wait_ms == 0 || self.drain_deadline_ms.is_some() {
            self.rtmp_refuse_play(key);
            return;
        }
        // Wait for the publisher like an HTTP play; the receive stays posted meanwhile.
        rtmp.play_stream_id = Some(stream_id);
        let until_ms = self.now_ms() + wait_ms;
        self.park_reader(key, &app, name, Wait::Rtmp, until_ms);
        self.arm_deadline(key, Deadline::Idle, wait_ms + 1000);
    }

    /// A parked or immediate RTMP play of a stream that is not there.
    pub(super) fn rtmp_refuse_play(&mut self, key: usize) {
        if let Some(rtmp) = self.conns.get_mut(key).and_then(|c| c.rtmp.as_mut()) {
            rtmp.play_stream_id = None;
            rtmp.session
                .reject_play(RTMP_STREAM_ID, PLAY_NOT_FOUND, "no such live stream");
            metrics::counter!("uringcast_rtmp_refused_total", "what" => "play", "code" => PLAY_NOT_FOUND).increment(1);
        }
        self.arm_deadline(key, Deadline::Idle, self.config.rtmp.idle_timeout_ms);
        self.rtmp_advance(key);
    }

    /// Start playing `app/name` on the connection: the session's answers, then the
    /// preamble and GOP cache, then live messages.
    pub(super) fn rtmp_start_play(&mut self, key: usize, app: &str, name: &str) {
        let Some(stream) = self.shared.registry.get(app, name) else {
            self.rtmp_refuse_play(key);
            return;
        };
        let sndbuf = self.config.live.reader_socket_send_bytes;
        let conn = &mut self.conns[key];
        let Some(rtmp) = conn.rtmp.as_mut() else {
            return;
        };
        rtmp.play_stream_id = Some(RTMP_STREAM_ID);
        rtmp.session.accept_play(RTMP_STREAM_ID);
        if sndbuf > 0 {
            sys::set_send_buffer(&conn.fd, sndbuf);
        }
        self.disarm_deadlines(key);
        self.log_rtmp_session(key, "play", format!("/{app}/{name}"), 200);
        self.attach_reader(key, &stream, Framing::Rtmp);
        self.conns[key].body = Body::Live(Box::new(LiveReader::new(stream, Framing::Rtmp)));
        self.rtmp_advance(key);
    }

    /// The played stream is over (or the server shuts down): Stream EOF and
    /// NetStream.Play.UnpublishNotify after the batch in flight, then close.
    pub(super) fn rtmp_end_play(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if let Body::Live(reader) = &mut conn.body {
            reader.finishing = true;
        }
        let Some(rtmp) = conn.rtmp.as_mut() else {
            return;
        };
        if !rtmp.close_when_sent {
            rtmp.close_when_sent = true;
            rtmp.session.end_play(RTMP_STREAM_ID);
        }
        self.rtmp_advance(key);
    }

    /// Next send of an RTMP connection, if none is in flight: the session's pending output
    /// first, then (a player) media; a connection whose end was queued closes once it is out.
    pub(super) fn rtmp_advance(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase != Phase::Rtmp || conn.io.tx() > 0 {
            return;
        }
        let fd = conn.fd.as_raw_fd();
        let Some(rtmp) = conn.rtmp.as_mut() else {
            return;
        };
        if rtmp.sending.is_none()
            && let Some(bytes) = rtmp.session.take_output()
        {
            rtmp.sending = Some((bytes, 0));
        }
        if let Some((bytes, off)) = &rtmp.sending {
            let entry = ops::send(fd, &bytes[*off..], false);
            self.stats.sends_submitted += 1;
            self.driver.submit(&mut conn.io, key, Op::Send, entry);
            return;
        }
        if rtmp.close_when_sent {
            self.close(key, CloseReason::Done);
            return;
        }
        if let Body::Live(reader) = &conn.body {
            if reader.end_requested && !reader.finishing {
                self.rtmp_end_play(key);
                return;
            }
            // Media only if the hub has released some (write coalescing: an acknowledgement
            // from the player must not cut its window short), or to start, or to end.
            let released = self
                .live
                .get(&reader.stream.id)
                .is_some_and(|hub| reader.cursor.is_none_or(|c| c < hub.released_head));
            if released || reader.capped || reader.stream.ended.load(Ordering::Acquire) {
                self.pump_reader(key);
            }
        }
    }

    pub(super) fn on_rtmp_sent(&mut self, key: usize, result: i32) {
        if result < 0 {
            self.close(key, CloseReason::from_errno(-result));
            return;
        }
        self.stats.bytes_sent += result as u64;
        let Some(rtmp) = self.conns[key].rtmp.as_mut() else {
            return;
        };
        if let Some((bytes, off)) = &mut rtmp.sending {
            *off += result as usize;
            if *off >= bytes.len() {
                rtmp.sending = None;
            }
        }
        self.rtmp_advance(key);
    }

    /// Called when an RTMP connection is released: a publisher that vanished ends its publish.
    pub(super) fn drop_rtmp(&mut self, rtmp: Box<RtmpConn>) {
        if let Some(publish) = rtmp.publish {
            let now_ms = self.now_ms();
            let stream = publish.publisher.stream.clone();
            self.shared.registry.unpublish(&stream, now_ms);
            self.notify_stream(&stream);
            peer_log!(self, PeerLog::Publish, info, worker = self.id, stream = %stream.key(), units = publish.units, "rtmp publisher disconnected");
        }
    }
}

/// A publisher's media message as a media unit whose tag buffer the ring entry is made from
/// in place: the PreviousTagSize is written into the room after the payload, and the FLV
/// tag header (rewritten by the publisher) goes into the room before it.
fn media_unit(message: MediaMessage) -> Result<MediaUnit, flv::FlvError> {
    let MediaMessage {
        msg_type,
        timestamp_ms,
        mut buf,
        payload,
        ..
    } = message;
    let len = payload.len();
    let end = payload.end;
    if let Some(room) = buf.get_mut(end..end + flv::PREV_TAG_SIZE_LEN) {
        room.copy_from_slice(&((flv::TAG_HEADER_LEN + len) as u32).to_be_bytes());
    }
    let buf = buf.freeze();
    let body = buf.slice(payload);
    let mut unit = classify_tag(msg_type, timestamp_ms, body)?;
    unit.flv_tag = Some(buf);
    Ok(unit)
}
