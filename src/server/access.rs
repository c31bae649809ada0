//! The access log's side of the sessions: what a request or an RTMP publish/play was, kept on
//! its connection from its start, and one line when it finishes (the next request on a
//! kept-alive connection, or the connection's release, whatever closed it). Formatting is
//! [`crate::app::access_log`]'s; the line goes to the writer thread's queue.

use super::worker::Worker;
use crate::app::access_log::Record;
use crate::proto::http::{RequestHead, Version};
use crate::runtime::driver::Ring;

/// What the line of the request or session in progress will say.
pub(crate) struct RequestLog {
    pub method: String,
    pub path: String,
    pub version: &'static str,
    pub protocol: &'static str,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    pub status: u16,
    pub started_ms: u64,
    pub bytes_in_at: u64,
    pub bytes_out_at: u64,
}

impl<R: Ring> Worker<R> {
    /// An HTTP request starts (`protocol`: "http", "http-flv", "http-ts", "hls"). A request
    /// that comes back through routing after its auth callout keeps its first record.
    pub(super) fn log_request_start(
        &mut self,
        key: usize,
        head: &RequestHead,
        protocol: &'static str,
    ) {
        if self.access_log.is_none() {
            return;
        }
        let now_ms = self.now_ms();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.log.is_some() {
            return;
        }
        conn.log = Some(Box::new(RequestLog {
            method: head.method_raw.clone(),
            path: head.path.clone(),
            version: match head.version {
                Version::Http10 => "HTTP/1.0",
                Version::Http11 => "HTTP/1.1",
            },
            protocol,
            user_agent: head.user_agent.clone(),
            referer: head.referer.clone(),
            status: 0,
            started_ms: now_ms,
            bytes_in_at: conn
                .bytes_in
                .saturating_sub((conn.rlen + head.head_len) as u64),
            bytes_out_at: conn.bytes_out,
        }));
    }

    /// An RTMP publish or play was decided: `status` 200 when it started, else the refusal's
    /// HTTP equivalent. A connection's earlier session line goes out first.
    pub(super) fn log_rtmp_session(
        &mut self,
        key: usize,
        method: &'static str,
        path: String,
        status: u16,
    ) {
        if self.access_log.is_none() {
            return;
        }
        self.log_finish(key, "next");
        let now_ms = self.now_ms();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.log = Some(Box::new(RequestLog {
            method: method.to_string(),
            path,
            version: "RTMP",
            protocol: "rtmp",
            user_agent: None,
            referer: None,
            status,
            started_ms: conn.opened_ms.min(now_ms),
            bytes_in_at: 0,
            bytes_out_at: 0,
        }));
    }

    /// The response's status is known.
    pub(super) fn log_status(&mut self, key: usize, status: u16) {
        if let Some(log) = self.conns.get_mut(key).and_then(|c| c.log.as_mut()) {
            log.status = status;
        }
    }

    /// The request or session is over: its line goes to the access log's queue.
    pub(super) fn log_finish(&mut self, key: usize, close: &str) {
        let now_ms = self.now_ms();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(log) = conn.log.take() else {
            return;
        };
        let Some(sink) = self.access_log.as_mut() else {
            return;
        };
        // A client that went away before any answer: nginx's 499.
        let status = if log.status == 0 && close == "peer" {
            499
        } else {
            log.status
        };
        let record = Record {
            time_unix_ms: crate::media::stream::unix_ms(),
            client: conn.peer,
            protocol: log.protocol,
            method: &log.method,
            path: &log.path,
            version: log.version,
            status,
            bytes_in: conn.bytes_in.saturating_sub(log.bytes_in_at),
            bytes_out: conn.bytes_out.saturating_sub(log.bytes_out_at),
            duration_ms: now_ms.saturating_sub(log.started_ms),
            close,
            referer: log.referer.as_deref(),
            user_agent: log.user_agent.as_deref(),
        };
        let line = record.line(sink.format);
        sink.write(&line);
    }
}
