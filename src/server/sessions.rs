//! The process-wide session table behind `/api/v1/sessions`, and the admin API's kicks.
//!
//! A session is a live publisher (HTTP push of FLV or TS, RTMP publish) or a live reader
//! (HTTP-FLV, HTTP-TS, RTMP play); HLS pushed with PUT and files are not sessions. Its entry is
//! registered where it starts (`start_ingest`, `rtmp_publish`, `attach_reader`) and removed at
//! its end (`end_ingest`, `rtmp_end_publish`, and `release` for every other end), through
//! [`Worker::session_start`] and [`Worker::session_end`]. The table's lock is taken then and by
//! the API, never per send.
//!
//! Bytes: the owning worker already counts every receive and send completion of a connection
//! in [`super::conn::Conn`]; it stores those running totals into the entry's atomics right
//! there (a relaxed store by the only writer: no read-modify-write, no contention, the cache
//! line is the worker's until the API reads it). So the API reads exact figures at any time,
//! where copying per tick would have needed a walk of the worker's sessions and lagged a tick.
//!
//! Kicks: `DELETE /api/v1/sessions/{id}` finds the entry and has its owning worker close the
//! connection ([`super::Command::Kick`] through the mailbox, or directly when the API's worker
//! owns it); the owner checks slot generation and id, so a slot reused meanwhile is never hit.
//! `DELETE /api/v1/streams/{app}/{stream}` kicks the stream's publisher and ends the stream at
//! once, as if its grace period had run out: readers get the end of the stream.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::Command;
use super::http::TEXT_PLAIN;
use super::worker::Worker;
use crate::app::api::{self, SessionView};
use crate::app::router::Kick;
use crate::media::stream::Stream;
use crate::metrics::CloseReason;
use crate::proto::http::RequestHead;
use crate::runtime::driver::Ring;

pub(crate) use super::callout::Protocol;

/// Which side of a stream a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Publish,
    Play,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Publish => "publish",
            Role::Play => "play",
        }
    }
}

/// One live session. Written by its owning worker (bytes), read by the API on any worker.
pub(crate) struct Session {
    /// The connection's id (`Conn::id`): what the API lists and kicks.
    pub id: u64,
    /// The owning worker, and the connection's slot there.
    pub worker: usize,
    pub key: usize,
    pub generation: u32,
    pub protocol: Protocol,
    pub role: Role,
    pub client: Option<SocketAddr>,
    /// `app/name`, never the request's query (keys and tokens stay out of the API).
    pub stream: String,
    /// When the session started (server ms, `Shared::epoch`).
    pub started_ms: u64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Session {
    /// The connection's running byte totals (the owning worker only).
    pub(crate) fn set_bytes(&self, bytes_in: u64, bytes_out: u64) {
        self.bytes_in.store(bytes_in, Ordering::Relaxed);
        self.bytes_out.store(bytes_out, Ordering::Relaxed);
    }

    fn view(&self, now_ms: u64) -> SessionView {
        SessionView {
            id: self.id,
            protocol: self.protocol.as_str(),
            role: self.role.as_str(),
            client: self.client.map(|a| a.to_string()),
            stream: self.stream.clone(),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            age_s: now_ms.saturating_sub(self.started_ms) / 1000,
        }
    }
}

/// Every live session of the process, by id.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<u64, Arc<Session>>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Session>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, session: Arc<Session>) {
        self.lock().insert(session.id, session);
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn get(&self, id: u64) -> Option<Arc<Session>> {
        self.lock().get(&id).cloned()
    }

    /// The publishers of `app/name` (one at most, but a kick must not depend on it).
    fn publishers(&self, stream: &str) -> Vec<Arc<Session>> {
        self.lock()
            .values()
            .filter(|s| s.role == Role::Publish && s.stream == stream)
            .cloned()
            .collect()
    }

    /// Every session, oldest id first.
    fn views(&self, now_ms: u64) -> Vec<SessionView> {
        let mut views: Vec<SessionView> = self.lock().values().map(|s| s.view(now_ms)).collect();
        views.sort_by_key(|v| v.id);
        views
    }
}

impl<R: Ring> Worker<R> {
    /// The connection starts a session: `role` of `stream` over `protocol`.
    pub(super) fn session_start(
        &mut self,
        key: usize,
        protocol: Protocol,
        role: Role,
        stream: &Stream,
    ) {
        self.session_end(key);
        let now_ms = self.now_ms();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let session = Arc::new(Session {
            id: conn.id,
            worker: self.id,
            key,
            generation: conn.generation(),
            protocol,
            role,
            client: conn.peer,
            stream: stream.key(),
            started_ms: now_ms,
            bytes_in: AtomicU64::new(conn.bytes_in),
            bytes_out: AtomicU64::new(conn.bytes_out),
        });
        self.shared.sessions.insert(session.clone());
        conn.session = Some(session);
    }

    /// The connection's session (if any) is over.
    pub(super) fn session_end(&mut self, key: usize) {
        if let Some(session) = self.conns.get_mut(key).and_then(|c| c.session.take()) {
            self.shared.sessions.remove(session.id);
        }
    }

    /// `Command::Kick` (or a kick of a session of this worker): close the connection if it
    /// is still that session.
    pub(super) fn on_kick(&mut self, key: usize, generation: u32, id: u64) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        if conn.generation() != generation || conn.id != id {
            return;
        }
        let Some(session) = &conn.session else {
            return;
        };
        let role = session.role;
        metrics::counter!("uringcast_sessions_kicked_total", "role" => role.as_str()).increment(1);
        tracing::info!(
            worker = self.id,
            session = id,
            stream = %session.stream,
            role = role.as_str(),
            "session kicked by the admin API"
        );
        // A publisher's stream ends like a dropped publisher's (the grace period applies).
        self.close(key, CloseReason::Kicked);
    }

    /// Have the owner of `session` close it.
    fn kick_session(&mut self, session: &Session) {
        if session.worker == self.id {
            self.on_kick(session.key, session.generation, session.id);
        } else {
            self.post(
                session.worker,
                Command::Kick {
                    key: session.key,
                    generation: session.generation,
                    id: session.id,
                },
            );
        }
    }

    /// Carry out a `DELETE` of the admin API; false when it names nothing live.
    fn kick(&mut self, kick: &Kick) -> bool {
        match kick {
            Kick::Session(id) => {
                let Some(session) = self.shared.sessions.get(*id) else {
                    return false;
                };
                self.kick_session(&session);
                true
            }
            Kick::Stream { app, name } => {
                let Some(stream) = self.shared.registry.get(app, name) else {
                    return false;
                };
                for session in self.shared.sessions.publishers(&stream.key()) {
                    self.kick_session(&session);
                }
                // No grace: the stream is over now, as when the grace period runs out; its
                // readers are woken to finish their bodies.
                let now_ms = self.now_ms();
                self.shared.registry.end_now(&stream, now_ms);
                self.notify_stream(&stream);
                tracing::info!(worker = self.id, stream = %stream.key(), "stream ended by the admin API");
                true
            }
        }
    }

    /// Answer a `DELETE` of the admin API: 204, or 404 with a JSON error.
    pub(super) fn respond_kick(&mut self, key: usize, kick: &Kick) {
        if self.kick(kick) {
            let keep_alive = self.conns[key].keep_alive;
            self.write_head(key, 204, keep_alive, false, |h| {
                h.header("Cache-Control", "no-store");
            });
            self.start_response(key, 204, super::conn::Body::None);
            return;
        }
        let what = match kick {
            Kick::Session(_) => "session",
            Kick::Stream { .. } => "live stream",
        };
        let body = Bytes::from(api::not_found_json(what));
        self.respond_body(key, 404, "application/json", body, true);
    }

    /// `/api/v1/sessions`.
    pub(super) fn sessions_json(&self) -> String {
        api::sessions_json(&self.shared.sessions.views(self.now_ms()))
    }

    /// Whether the client may use the admin API and the status page (`[admin]`); if not,
    /// it is answered 401 (asking for the bearer token) or 403.
    pub(super) fn admin_allowed(&mut self, key: usize, head: &RequestHead) -> bool {
        let client = self.conns[key].peer.map(|a| a.ip());
        let Err(refusal) = self
            .shared
            .admin
            .load()
            .check(client, head.authorization.as_deref())
        else {
            return true;
        };
        metrics::counter!("uringcast_admin_refused_total", "status" => if refusal.status == 401 { "401" } else { "403" }).increment(1);
        let text = format!("{}\n", refusal.message);
        let challenge: &[(&str, &str)] = if refusal.status == 401 {
            &[("WWW-Authenticate", "Bearer")]
        } else {
            &[]
        };
        self.respond_simple(
            key,
            refusal.status,
            TEXT_PLAIN,
            text.as_bytes(),
            true,
            challenge,
        );
        false
    }
}
