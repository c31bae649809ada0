//! Live ingest over HTTP: a POST/PUT body of FLV (chunked or sized) is received into the
//! connection's ingest buffer, decoded straight into the demuxer, published into the stream's
//! ring, and every worker with readers of the stream is told ([`Worker::notify_stream`]).

use std::os::fd::AsRawFd;

use super::conn::{Body, Deadline, Demuxer, Ingest, Phase, RequestBody};
use super::http::TEXT_PLAIN;
use super::loglimit::PeerLog;
use super::sessions::{Protocol, Role};
use super::worker::Worker;
use crate::app::router::LiveFormat;
use crate::media::framing;
use crate::media::stream::{PublishError, RegistryError};
use crate::media::unit::MediaUnit;
use crate::media::unit::UnitKind;
use crate::metrics::CloseReason;
use crate::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits};
use crate::proto::http::{ChunkedDecoder, RequestHead};
use crate::proto::ts::demux::{TsDemuxLimits, TsDemuxer};
use crate::runtime::driver::Ring;
use crate::runtime::op::Op;
use crate::runtime::ops;

impl<R: Ring> Worker<R> {
    pub(super) fn start_ingest(
        &mut self,
        key: usize,
        head: &RequestHead,
        app: &str,
        name: &str,
        format: LiveFormat,
    ) {
        if !head.chunked && head.content_length.is_none() {
            self.respond_simple(
                key,
                411,
                TEXT_PLAIN,
                b"a live publish needs a chunked or sized body\n",
                false,
                &[],
            );
            return;
        }
        if head.content_length == Some(0) {
            // Nothing will ever arrive: answer now instead of holding the name until the
            // publish deadline.
            self.respond_simple(
                key,
                400,
                TEXT_PLAIN,
                b"a live publish needs a non-empty body\n",
                false,
                &[],
            );
            return;
        }
        let now_ms = self.now_ms();
        let publisher = match self.shared.registry.publish(app, name, now_ms) {
            Ok(p) => p,
            Err(RegistryError::AlreadyPublishing) => {
                peer_log!(self, PeerLog::PublishRefused, info, worker = self.id, stream = %format!("{app}/{name}"), "second publisher refused");
                self.respond_simple(
                    key,
                    409,
                    TEXT_PLAIN,
                    b"stream is already being published\n",
                    false,
                    &[],
                );
                return;
            }
            Err(RegistryError::MemoryBudget) => {
                let (used, max) = self.shared.registry.memory();
                peer_log!(self, PeerLog::PublishRefused, warn, worker = self.id, stream = %format!("{app}/{name}"), used, max, "publish refused: live memory budget reached");
                self.respond_simple(
                    key,
                    503,
                    TEXT_PLAIN,
                    b"live memory budget (live.memory_max) reached\n",
                    false,
                    &[],
                );
                return;
            }
            Err(_) => {
                self.respond_simple(key, 503, TEXT_PLAIN, b"too many streams\n", false, &[]);
                return;
            }
        };
        let demuxer = match format {
            // Tags arrive with room around them for the output framings, so the ring entry
            // is the receive's one copy, framed in place.
            LiveFormat::Flv => Demuxer::Flv(
                FlvDemuxer::new(FlvLimits {
                    tag_bytes_max: self.config.live.tag_bytes_max,
                })
                .with_room(framing::HEADROOM, framing::TAILROOM),
            ),
            // Each unit comes in a buffer laid out like an FLV ingest tag, so it becomes the
            // ring entry in place too.
            LiveFormat::Ts => Demuxer::Ts(Box::new(
                TsDemuxer::new(TsDemuxLimits {
                    pes_bytes_max: self.config.live.tag_bytes_max as usize,
                    ..TsDemuxLimits::default()
                })
                .with_room(framing::HEADROOM, framing::TAILROOM),
            )),
        };
        peer_log!(self, PeerLog::Publish, info, worker = self.id, stream = %publisher.stream.key(), format = ?format, "publish started (http)");
        let stream = publisher.stream.clone();
        let ingest = Ingest {
            publisher,
            demuxer,
            body: self.request_body(head),
            buf: self.body_recv_buffer(),
            units: 0,
        };
        let leftover = self.begin_request_body(key, head, Body::Ingest(Box::new(ingest)));
        let protocol = match format {
            LiveFormat::Flv => Protocol::HttpFlv,
            LiveFormat::Ts => Protocol::HttpTs,
        };
        self.session_start(key, protocol, Role::Publish, &stream);
        if leftover > 0 && !self.ingest_bytes(key, leftover) {
            return;
        }
        self.submit_body_recv(key);
    }

    pub(super) fn on_ingest_recv(&mut self, key: usize, result: i32) {
        if result <= 0 {
            // The publisher went away without finishing its body.
            self.end_ingest(key, None);
            return;
        }
        if self.ingest_bytes(key, result as usize)
            && self
                .conns
                .get(key)
                .is_some_and(|c| c.phase == Phase::Ingest)
        {
            self.submit_body_recv(key);
        }
    }

    /// Feed body bytes; returns false when the publish ended (error or end of body).
    /// Feed the first `len` bytes of the ingest buffer; returns false when the publish ended
    /// (error or end of body). The body is decoded straight from the receive buffer into the
    /// demuxer: the payload's only userspace copies are that one and its FLV tag in the ring.
    fn ingest_bytes(&mut self, key: usize, len: usize) -> bool {
        let conn = &mut self.conns[key];
        let Body::Ingest(ingest) = &mut conn.body else {
            return false;
        };
        let Ingest {
            body, buf, demuxer, ..
        } = &mut **ingest;
        let mut body_done = false;
        let mut error: Option<String> = None;
        // 1. Transfer coding, straight into the demuxer.
        match body.feed(&buf[..len], &mut |b: &[u8]| demuxer.push(b)) {
            Ok(done) => body_done = done,
            Err(e) => error = Some(e),
        }
        // 2. Demux and publish.
        let mut published = 0u64;
        let mut media = false;
        let mut finished = false;
        while error.is_none() {
            match ingest.demuxer.poll() {
                Ok(Some(mut unit)) => {
                    published += 1;
                    media |= unit.kind != UnitKind::Script;
                    match ingest.publisher.publish(&mut unit) {
                        Ok(()) => {}
                        Err(PublishError::GopTooLarge) => {
                            error = Some(format!(
                                "a GOP exceeds live.ring_bytes_hard_max ({} bytes) or live.ring_entries",
                                self.config.live.ring_bytes_hard_max
                            ))
                        }
                        Err(PublishError::HeaderTooLarge) => {
                            error = Some(format!(
                                "a sequence header or onMetaData of {} bytes exceeds live.header_bytes_max ({} bytes)",
                                unit.body.len(),
                                self.config.live.header_bytes_max
                            ))
                        }
                    }
                }
                Ok(None) if body_done && !finished => {
                    // The end of the body: what the demuxer still holds (a TS PES ends only
                    // at the next one) comes out, or is an error.
                    finished = true;
                    if let Err(e) = ingest.demuxer.finish() {
                        error = Some(e);
                    }
                }
                Ok(None) => break,
                Err(e) => error = Some(e),
            }
        }
        ingest.units += published;
        let stream = ingest.publisher.stream.clone();
        if media {
            // Only media progress keeps a publish alive: a peer trickling bytes that never
            // complete a frame does not hold the stream name (and a stream slot) for ever.
            self.arm_deadline(key, Deadline::Idle, self.config.live.publish_timeout_ms);
        }
        if published > 0 {
            self.notify_stream(&stream);
        }
        if let Some(reason) = error {
            self.end_ingest(key, Some(reason));
            return false;
        }
        if body_done {
            self.end_ingest(key, None);
            return false;
        }
        true
    }

    /// The publish is over: readers enter the grace period; answer the publisher if it is
    /// still there.
    fn end_ingest(&mut self, key: usize, error: Option<String>) {
        let now_ms = self.now_ms();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Body::Ingest(ingest) = std::mem::replace(&mut conn.body, Body::None) else {
            return;
        };
        let stream = ingest.publisher.stream.clone();
        self.shared.registry.unpublish(&stream, now_ms);
        let busy = conn.busy();
        self.callout_publish_ended(key);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.phase = Phase::ReadHead;
        self.session_end(key);
        self.notify_stream(&stream);
        match &error {
            Some(reason) => {
                peer_log!(self, PeerLog::Publish, warn, worker = self.id, stream = %stream.key(), %reason, units = ingest.units, "publish ended with an error")
            }
            None => {
                peer_log!(self, PeerLog::Publish, info, worker = self.id, stream = %stream.key(), units = ingest.units, "publish ended")
            }
        }
        if busy {
            // A receive (or the 100-continue) is still in flight: just close.
            self.close(
                key,
                if error.is_some() {
                    CloseReason::ProtocolError
                } else {
                    CloseReason::Done
                },
            );
            return;
        }
        match error {
            Some(reason) => {
                let body = format!("{reason}\n");
                self.respond_simple(key, 400, TEXT_PLAIN, body.as_bytes(), false, &[]);
            }
            None => self.respond_simple(key, 200, TEXT_PLAIN, b"ok\n", false, &[]),
        }
    }

    /// Called from `close` for a publisher that vanished mid-body.
    pub(super) fn drop_ingest(&mut self, body: Body) {
        if let Body::Ingest(ingest) = body {
            let now_ms = self.now_ms();
            let stream = ingest.publisher.stream.clone();
            self.shared.registry.unpublish(&stream, now_ms);
            self.notify_stream(&stream);
            peer_log!(self, PeerLog::Publish, info, worker = self.id, stream = %stream.key(), units = ingest.units, "publisher disconnected");
        }
    }
}

impl<R: Ring> Worker<R> {
    /// A buffer to receive a request body into: at least as large as the head buffer, whose
    /// leftover body bytes it takes over.
    pub(super) fn body_recv_buffer(&self) -> Box<[u8]> {
        let len = self
            .config
            .runtime
            .recv_bytes
            .max(self.config.http.header_bytes_max);
        vec![0u8; len].into_boxed_slice()
    }

    /// A request body starts (`body`: an ingest or an upload): the connection reads nothing
    /// else afterwards; body bytes that arrived with the head move into the body's receive
    /// buffer, the head buffer is given back, a 100-continue goes out if asked, and the
    /// body's idle deadline starts. Returns how many bytes moved (for the caller to take).
    pub(super) fn begin_request_body(
        &mut self,
        key: usize,
        head: &RequestHead,
        mut body: Body,
    ) -> usize {
        let conn = &mut self.conns[key];
        let leftover = conn.rlen;
        if let Some(buf) = body.recv_buffer() {
            buf[..leftover].copy_from_slice(&conn.rbuf[..leftover]);
        }
        conn.rlen = 0;
        conn.rbuf = Box::default();
        conn.phase = Phase::Ingest;
        conn.keep_alive = false;
        conn.body = body;
        if head.expect_continue {
            conn.wbuf.clear();
            conn.wbuf
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            conn.woff = 0;
            let entry = ops::send(conn.raw_fd(), &conn.wbuf, false);
            self.driver.submit(&mut conn.io, key, Op::Send, entry);
        }
        self.arm_deadline(key, Deadline::Idle, self.config.live.publish_timeout_ms);
        leftover
    }

    /// Post the next receive of a request body into its buffer.
    pub(super) fn submit_body_recv(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let Some(buf) = conn.body.recv_buffer() else {
            return;
        };
        let entry = ops::recv(conn.fd.as_raw_fd(), buf);
        self.driver.submit(&mut conn.io, key, Op::Recv, entry);
    }

    /// The transfer framing of a request's body (chunked or sized; `start_ingest` and
    /// uploads have refused bodies with neither).
    pub(super) fn request_body(&self, head: &RequestHead) -> RequestBody {
        RequestBody {
            chunked: head
                .chunked
                .then(|| ChunkedDecoder::new(u64::from(self.config.live.tag_bytes_max) * 4)),
            remaining: if head.chunked {
                None
            } else {
                head.content_length
            },
        }
    }
}

impl Demuxer {
    fn push(&mut self, data: &[u8]) {
        match self {
            Demuxer::Flv(d) => d.push(data),
            Demuxer::Ts(d) => d.push(data),
        }
    }

    /// The next media unit; FLV file headers are skipped.
    fn poll(&mut self) -> Result<Option<MediaUnit>, String> {
        match self {
            Demuxer::Flv(d) => loop {
                match d.poll() {
                    Ok(Some(FlvEvent::Unit(unit))) => return Ok(Some(unit)),
                    Ok(Some(FlvEvent::Header { .. })) => continue,
                    Ok(None) => return Ok(None),
                    Err(e) => return Err(format!("malformed FLV: {e}")),
                }
            },
            Demuxer::Ts(d) => d.poll().map_err(|e| format!("MPEG-TS: {e}")),
        }
    }

    /// The body is over: FLV must end on a tag boundary; TS flushes its last PES.
    fn finish(&mut self) -> Result<(), String> {
        match self {
            Demuxer::Flv(d) => d
                .finish()
                .map_err(|e| format!("malformed FLV at end of body: {e}")),
            Demuxer::Ts(d) => d
                .finish()
                .map_err(|e| format!("MPEG-TS at end of body: {e}")),
        }
    }
}
