//! Live paths of a worker: HTTP-FLV ingest (publisher) and HTTP-FLV readers (fan-out).
//!
//! Fan-out: after a publisher's batch is appended to the stream's chunk ring, every worker
//! that has readers of the stream is told (its bit in `Stream::reader_workers`): this worker
//! pumps its own readers directly; another worker gets one IORING_OP_MSG_RING (coalesced by
//! `Stream::wake_pending`, so a burst of appends costs one message per worker). Pumping a
//! reader submits one vectored sendmsg of every entry from its cursor to the head (capped by
//! `live.reader_inflight_bytes_max`), framed as one HTTP chunk.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use io_uring::opcode;
use io_uring::types::Fd;

use super::{PeerLog, TEXT_PLAIN, Worker};
use crate::media::ring::Position;
use crate::media::stream::{PublishError, RegistryError, Stream};
use crate::media::unit::UnitKind;
use crate::metrics::CloseReason;
use crate::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits};
use crate::proto::http::{ChunkedDecoder, RequestHead};
use crate::runtime::conn::{Body, Conn, Deadline, Ingest, LiveReader, Phase};
use crate::runtime::op::{Op, UserData};

const CRLF: &[u8] = b"\r\n";
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Most iovecs one sendmsg takes (Linux UIO_MAXIOV; more is EMSGSIZE).
const IOV_MAX: usize = 1024;

/// Per-reader vectors keep at most this many slots of capacity between batches: a joiner's
/// first batch (a whole GOP) may need hundreds, which are given back once it is out.
const READER_VEC_KEEP: usize = 64;

/// Iovecs per entry: chunk-size line, bytes, CRLF (chunked) or the bytes alone (unframed).
fn iovs_per_entry(chunked: bool) -> usize {
    if chunked { 3 } else { 1 }
}

/// Bytes an entry of `len` bytes takes on the wire in its framing.
fn framed_len(chunked: bool, len: usize) -> usize {
    if !chunked {
        return len;
    }
    let hex_digits = (usize::BITS - len.max(1).leading_zeros()).div_ceil(4) as usize;
    hex_digits + 2 + len + 2
}

/// A stream this worker has readers of.
pub(crate) struct LocalStream {
    pub stream: Arc<Stream>,
    /// This worker's readers of it, as (slab key, generation).
    pub readers: Vec<(usize, u32)>,
    /// Ring head when the readers were last pumped.
    pumped_head: u64,
    /// Since when (worker ms) the head has been ahead of `pumped_head` with no pump: a wake-up
    /// that does not come within a tick was lost, and the tick pumps instead.
    behind_since_ms: Option<u64>,
}

/// A play request parked until its stream is published (`live.play_wait_ms`).
pub(crate) struct WaitingReader {
    key: usize,
    generation: u32,
    app: String,
    name: String,
    send_body: bool,
    chunked: bool,
    until_ms: u64,
}

/// `/{app}/{stream}.flv` → (app, stream), with conservative names (no dots, slashes or
/// escapes), so stream keys are safe in logs, labels and JSON. `vod` is not an app: `/vod/`
/// always names files, so no publish or play can claim a path under it.
pub(crate) fn parse_live_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (app, file) = rest.split_once('/')?;
    if app == "vod" {
        return None;
    }
    let name = file.strip_suffix(".flv")?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    (ok(app) && ok(name)).then_some((app, name))
}

impl Worker {
    // ----- ingest -------------------------------------------------------------------------

    pub(super) fn start_ingest(&mut self, key: usize, head: &RequestHead, app: &str, name: &str) {
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
        peer_log!(self, PeerLog::Publish, info, worker = self.id, stream = %publisher.stream.key(), "publish started (http-flv)");
        let ingest = Ingest {
            publisher,
            demuxer: FlvDemuxer::new(FlvLimits {
                tag_bytes_max: self.config.live.tag_bytes_max,
            }),
            chunked: head
                .chunked
                .then(|| ChunkedDecoder::new(u64::from(self.config.live.tag_bytes_max) * 4)),
            remaining: if head.chunked {
                None
            } else {
                head.content_length
            },
            buf: vec![
                0u8;
                self.config
                    .runtime
                    .recv_bytes
                    .max(self.config.http.header_bytes_max)
            ]
            .into_boxed_slice(),
            units: 0,
        };
        let conn = &mut self.conns[key];
        conn.phase = Phase::Ingest;
        conn.keep_alive = false;
        conn.body = Body::Ingest(Box::new(ingest));

        // Body bytes that arrived with the head move to the ingest buffer (which is at least
        // as large as the head buffer).
        let leftover = conn.rlen;
        if let Body::Ingest(ingest) = &mut conn.body {
            ingest.buf[..leftover].copy_from_slice(&conn.rbuf[..leftover]);
        }
        conn.rlen = 0;
        // The head buffer is not used again: the body is received into the ingest buffer.
        conn.rbuf = Box::default();
        if head.expect_continue {
            conn.wbuf.clear();
            conn.wbuf
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            conn.woff = 0;
            let entry = opcode::Send::new(
                Fd(conn.raw_fd()),
                conn.wbuf.as_ptr(),
                conn.wbuf.len() as u32,
            )
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(UserData::new(Op::Send, key, conn.generation).encode());
            conn.inflight += 1;
            self.push(entry);
        }
        self.arm_deadline(key, Deadline::Idle, self.config.live.publish_timeout_ms);
        if leftover > 0 && !self.ingest_bytes(key, leftover) {
            return;
        }
        self.submit_ingest_recv(key);
    }

    fn submit_ingest_recv(&mut self, key: usize) {
        let Body::Ingest(ingest) = &mut self.conns[key].body else {
            return;
        };
        let (ptr, len) = (ingest.buf.as_mut_ptr(), ingest.buf.len());
        self.queue_recv(key, ptr, len);
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
            self.submit_ingest_recv(key);
        }
    }

    /// Feed the first `len` bytes of the ingest buffer; returns false when the publish ended
    /// (error or end of body). The body is decoded straight from the receive buffer into the
    /// demuxer, which copies each tag's payload once, into a buffer of the tag's exact size;
    /// the publisher rewrites that buffer's 11-byte header and appends it to the ring as is.
    /// So a tag's payload gets exactly one userspace copy after the receive.
    fn ingest_bytes(&mut self, key: usize, len: usize) -> bool {
        let conn = &mut self.conns[key];
        let Body::Ingest(ingest) = &mut conn.body else {
            return false;
        };
        let Ingest {
            chunked,
            remaining,
            buf,
            demuxer,
            ..
        } = &mut **ingest;
        let data = &buf[..len];
        let mut body_done = false;
        let mut error: Option<String> = None;
        // 1. Transfer coding, straight into the demuxer.
        match chunked {
            Some(decoder) => match decoder.decode(data, &mut |b: &[u8]| demuxer.push(b)) {
                Ok(progress) => body_done = progress.done,
                Err(e) => error = Some(format!("bad chunked body: {e}")),
            },
            None => {
                let take =
                    remaining.map_or(data.len() as u64, |r| r.min(data.len() as u64)) as usize;
                demuxer.push(&data[..take]);
                if let Some(r) = remaining {
                    *r -= take as u64;
                    body_done = *r == 0;
                }
            }
        }
        // 2. Demux and publish.
        let mut published = 0u64;
        let mut media = false;
        while error.is_none() {
            match ingest.demuxer.poll() {
                Ok(Some(FlvEvent::Unit(mut unit))) => {
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
                Ok(Some(FlvEvent::Header { .. })) => {}
                Ok(None) => break,
                Err(e) => error = Some(format!("malformed FLV: {e}")),
            }
        }
        ingest.units += published;
        if body_done
            && error.is_none()
            && let Err(e) = ingest.demuxer.finish()
        {
            error = Some(format!("malformed FLV at end of body: {e}"));
        }
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
        let conn_inflight = conn.inflight;
        conn.phase = Phase::ReadHead;
        self.notify_stream(&stream);
        match &error {
            Some(reason) => {
                peer_log!(self, PeerLog::Publish, warn, worker = self.id, stream = %stream.key(), %reason, units = ingest.units, "publish ended with an error")
            }
            None => {
                peer_log!(self, PeerLog::Publish, info, worker = self.id, stream = %stream.key(), units = ingest.units, "publish ended")
            }
        }
        if conn_inflight > 0 {
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

    // ----- fan-out ------------------------------------------------------------------------

    /// New data (or an end) on `stream`: pump local readers, message other workers.
    pub(super) fn notify_stream(&mut self, stream: &Arc<Stream>) {
        let workers = stream.reader_workers.load(Ordering::Acquire);
        if workers == 0 {
            return;
        }
        for w in 0..64usize {
            if workers & (1 << w) == 0 {
                continue;
            }
            if w == self.id {
                self.pump_stream(stream.id);
                continue;
            }
            if stream.wake_pending.fetch_or(1 << w, Ordering::AcqRel) & (1 << w) != 0 {
                continue; // already woken and not yet handled: coalesced
            }
            let Some(target) = self
                .shared
                .ring_fds
                .get(w)
                .map(|fd| fd.load(Ordering::Acquire))
            else {
                continue;
            };
            if target < 0 {
                continue;
            }
            #[cfg(debug_assertions)]
            let target = if self.fault_drop_wakes { -1 } else { target };
            let entry = opcode::MsgRingData::new(
                Fd(target),
                stream.id as i32,
                UserData::worker(Op::MsgRingWake).encode(),
                None,
            )
            .build()
            .user_data(UserData::new(Op::MsgRingSent, stream.id as usize, w as u32).encode());
            self.push(entry);
        }
    }

    /// The completion of a MSG_RING this worker sent (`key` = stream id, `generation` =
    /// target worker). A failure (the target ring is gone or its CQ overflowed) means that
    /// worker was not woken: it is counted, and the target's per-tick check pumps its readers
    /// and clears its pending bit (see `live_tick`).
    pub(super) fn on_msg_ring_sent(&mut self, result: i32, stream_id: u32, target: u32) {
        if result < 0 {
            self.stats.live_wake_failures += 1;
            tracing::debug!(
                worker = self.id,
                target,
                stream_id,
                error = %std::io::Error::from_raw_os_error(-result),
                "wake-up message failed"
            );
        }
    }

    /// A MSG_RING from another worker: `stream_id` has news.
    pub(super) fn on_msg_ring_wake(&mut self, stream_id: i32) {
        self.pump_stream(stream_id as u32);
    }

    /// Pump every local reader of a stream (and clear this worker's wake-pending bit first, so
    /// an append racing with the pump sends a new wake-up).
    pub(super) fn pump_stream(&mut self, stream_id: u32) {
        let Some(local) = self.live.get_mut(&stream_id) else {
            return;
        };
        local
            .stream
            .wake_pending
            .fetch_and(!(1u64 << self.id), Ordering::AcqRel);
        local.pumped_head = local.stream.flv.head();
        local.behind_since_ms = None;
        let mut readers = std::mem::take(&mut self.pump_scratch);
        readers.clear();
        readers.extend_from_slice(&local.readers);
        for &(key, generation) in &readers {
            if self
                .conns
                .get(key)
                .is_some_and(|c| c.generation == generation)
            {
                self.pump_reader(key);
            }
        }
        self.pump_scratch = readers;
    }

    /// Every loop turn: readers of streams that ended (grace expired) finish their bodies, and
    /// a stream whose head moved without a wake-up for a tick is pumped anyway (a lost or
    /// failed MSG_RING must not stall readers until the stream ends).
    pub(super) fn live_tick(&mut self) {
        if !self.waiting.is_empty() {
            self.wake_waiting_readers();
        }
        let now_ms = self.now_ms();
        let tick_ms = self.config.runtime.tick_ms;
        let mut due = Vec::new();
        for (id, local) in self.live.iter_mut() {
            if local.stream.ended.load(Ordering::Acquire) {
                due.push(*id);
                continue;
            }
            if local.stream.flv.head() == local.pumped_head {
                local.behind_since_ms = None;
                continue;
            }
            match local.behind_since_ms {
                None => local.behind_since_ms = Some(now_ms),
                Some(since) if now_ms.saturating_sub(since) >= tick_ms => {
                    self.stats.live_wake_missed += 1;
                    due.push(*id);
                }
                Some(_) => {}
            }
        }
        for id in due {
            self.pump_stream(id);
        }
    }

    /// Parked play requests whose stream appeared start now; those out of time get 404.
    fn wake_waiting_readers(&mut self) {
        let now_ms = self.now_ms();
        let mut ready = Vec::new();
        let conns = &self.conns;
        let registry = &self.shared.registry;
        self.waiting.retain(|w| {
            let parked = conns
                .get(w.key)
                .is_some_and(|c| c.generation == w.generation && c.phase == Phase::WaitStream);
            if !parked {
                return false;
            }
            let found = registry.get(&w.app, &w.name).is_some();
            if found || now_ms >= w.until_ms {
                ready.push((
                    w.key,
                    w.app.clone(),
                    w.name.clone(),
                    w.send_body,
                    w.chunked,
                    found,
                ));
                return false;
            }
            true
        });
        for (key, app, name, send_body, chunked, found) in ready {
            self.conns[key].phase = Phase::ReadHead;
            if found {
                self.start_reader(key, &app, &name, send_body, chunked);
            } else {
                self.respond_simple(key, 404, TEXT_PLAIN, b"no such live stream\n", true, &[]);
            }
        }
    }

    /// Start an HTTP-FLV reader (`chunked`: HTTP/1.1 framing; HTTP/1.0 gets the bare stream).
    pub(super) fn start_reader(
        &mut self,
        key: usize,
        app: &str,
        name: &str,
        send_body: bool,
        chunked: bool,
    ) {
        let Some(stream) = self.shared.registry.get(app, name) else {
            let wait_ms = self.config.live.play_wait_ms;
            if wait_ms == 0 || self.drain_deadline_ms.is_some() {
                self.respond_simple(key, 404, TEXT_PLAIN, b"no such live stream\n", true, &[]);
                return;
            }
            // Park the request: no I/O is in flight for it; `live_tick` looks again every tick.
            let until_ms = self.now_ms() + wait_ms;
            let conn = &mut self.conns[key];
            conn.phase = Phase::WaitStream;
            let generation = conn.generation;
            self.arm_deadline(key, Deadline::Idle, wait_ms + 1000);
            self.waiting.push(WaitingReader {
                key,
                generation,
                app: app.to_string(),
                name: name.to_string(),
                send_body,
                chunked,
                until_ms,
            });
            return;
        };
        // An endless body ends the connection; a HEAD keeps it.
        let keep_alive = self.conns[key].keep_alive && !send_body;
        self.conns[key].keep_alive = keep_alive;
        self.write_head(key, 200, keep_alive, true, |h| {
            h.header("Content-Type", "video/x-flv");
            h.header("Cache-Control", "no-cache, no-store");
            h.header("Pragma", "no-cache");
            if send_body && chunked {
                h.header("Transfer-Encoding", "chunked");
            }
        });
        if !send_body {
            self.start_response(key, 200, Body::None);
            return;
        }
        let generation = self.conns[key].generation;
        // A viewer never sends another request on this connection: give back its head buffer
        // (no receive is in flight while a response is being started).
        self.conns[key].rbuf = Box::default();
        self.conns[key].rlen = 0;
        let sndbuf = self.config.live.reader_socket_send_bytes as libc::c_int;
        if sndbuf > 0 {
            // SAFETY: setsockopt reads a c_int of the stated size on the connection's socket.
            unsafe {
                libc::setsockopt(
                    self.conns[key].raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_SNDBUF,
                    (&sndbuf as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        let reader = LiveReader {
            stream: stream.clone(),
            cursor: None,
            chunked,
            preamble: None,
            held: Vec::new(),
            iov: Vec::new(),
            // SAFETY: msghdr is plain data; all-zero is a valid empty header.
            msg: Box::new(unsafe { std::mem::zeroed() }),
            lines: Vec::new(),
            batch_bytes: 0,
            batch_sent: 0,
            skips: 0,
            last_skip_ms: 0,
            finishing: false,
        };
        stream.stats.readers_flv.fetch_add(1, Ordering::Relaxed);
        let id = self.id;
        self.live
            .entry(stream.id)
            .or_insert_with(|| {
                // First local reader of this stream: a wake-up bit left set by a message that
                // arrived after the previous last reader left would suppress every future
                // wake-up, so start clean (the new reader is pumped when its head is out).
                stream
                    .wake_pending
                    .fetch_and(!(1u64 << id), Ordering::AcqRel);
                stream.reader_workers.fetch_or(1 << id, Ordering::AcqRel);
                LocalStream {
                    stream: stream.clone(),
                    readers: Vec::new(),
                    pumped_head: stream.flv.head(),
                    behind_since_ms: None,
                }
            })
            .readers
            .push((key, generation));
        self.start_response(key, 200, Body::Live(Box::new(reader)));
    }

    /// Called by `advance` once the head is out and nothing is in flight.
    pub(super) fn pump_reader(&mut self, key: usize) {
        let max_lag_ms = self.config.live.max_lag_ms;
        let max_lag_bytes = self.config.live.max_lag_bytes as u64;
        let max_skips = self.config.live.max_skips;
        let skip_window_ms = self.config.live.skip_window_ms;
        let now_ms = self.now_ms();
        let inflight_max = self.config.live.reader_inflight_bytes_max;
        let conn = &mut self.conns[key];
        if conn.inflight > 0 || conn.woff < conn.wbuf.len() || conn.phase != Phase::Respond {
            return;
        }
        let Body::Live(reader) = &mut conn.body else {
            return;
        };
        if reader.finishing {
            return;
        }
        let stream = reader.stream.clone();
        let ring = &stream.flv;
        // A new reader starts at the latest keyframe (GOP cache), after the stream headers.
        let cursor = match reader.cursor {
            Some(c) => c,
            None => match ring.gop_start() {
                Some(start) => {
                    let dts = ring.get(start).map(|e| e.dts_ms).unwrap_or(0);
                    reader.preamble = Some(stream.flv_preamble(start, dts));
                    reader.cursor = Some(start);
                    start
                }
                None => {
                    if stream.ended.load(Ordering::Acquire) {
                        Self::finish_reader(conn);
                        self.advance(key);
                    }
                    return;
                }
            },
        };
        // Lag: too far behind in bytes or media time, or already reclaimed → skip to the
        // latest keyframe; too many skips → disconnect.
        let mut cursor = cursor;
        let behind = ring.position(cursor) == Position::Behind;
        let lagging = !behind
            && match (ring.get(cursor), ring.newest()) {
                (Some(at), Some(newest)) => {
                    newest.dts_ms.saturating_sub(at.dts_ms) > max_lag_ms
                        || (newest.offset + newest.bytes.len() as u64).saturating_sub(at.offset)
                            > max_lag_bytes
                }
                _ => false,
            };
        if behind || lagging {
            if let Some(start) = ring.gop_start().filter(|s| *s > cursor) {
                // Skips count within a window: a viewer that stumbled once an hour ago is not
                // one skip closer to being dropped today.
                if now_ms.saturating_sub(reader.last_skip_ms) > skip_window_ms {
                    reader.skips = 0;
                }
                reader.skips += 1;
                reader.last_skip_ms = now_ms;
                stream.stats.skips.fetch_add(1, Ordering::Relaxed);
                self.stats.live_skips += 1;
                if reader.skips > max_skips {
                    stream
                        .stats
                        .slow_disconnects
                        .fetch_add(1, Ordering::Relaxed);
                    self.close(key, CloseReason::SlowReader);
                    return;
                }
                cursor = start;
                reader.cursor = Some(start);
            } else if behind {
                // Nothing to skip to (cannot happen while the GOP is retained).
                self.close(key, CloseReason::SlowReader);
                return;
            }
        }
        reader.held.clear();
        // One sendmsg takes at most IOV_MAX iovecs: a GOP of a long-GOP or low-bitrate stream
        // has more tags than that, so a batch is capped by entries as well as by bytes.
        let per_entry = iovs_per_entry(reader.chunked);
        let preamble_iovs = if reader.preamble.is_some() {
            per_entry
        } else {
            0
        };
        let entries_max = (IOV_MAX - preamble_iovs) / per_entry;
        if ring
            .read_from(cursor, inflight_max, entries_max, &mut reader.held)
            .is_err()
        {
            // Reclaimed between the check and the read: next pump skips.
            return;
        }
        if reader.held.is_empty() && reader.preamble.is_none() {
            // Waiting at the head: no send in flight, so no send deadline.
            conn.deadline_ms = u64::MAX / 2;
            if stream.ended.load(Ordering::Acquire) {
                Self::finish_reader(conn);
                self.advance(key);
            }
            return;
        }
        reader.batch_sent = 0;
        Self::build_iov(reader);
        self.submit_sendmsg(key);
        self.arm_deadline(key, Deadline::Send, self.config.http.send_timeout_ms);
    }

    /// The body's end: the zero-length chunk (chunked framing), then the connection closes.
    fn finish_reader(conn: &mut Conn) {
        let Body::Live(reader) = &mut conn.body else {
            return;
        };
        reader.finishing = true;
        conn.wbuf.clear();
        if reader.chunked {
            conn.wbuf.extend_from_slice(LAST_CHUNK);
        }
        conn.woff = 0;
        conn.keep_alive = false;
    }

    /// Queue the sendmsg of the reader's prepared msghdr (see `build_iov`).
    fn submit_sendmsg(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let Body::Live(reader) = &conn.body else {
            return;
        };
        let entry = opcode::SendMsg::new(Fd(conn.raw_fd()), &*reader.msg as *const libc::msghdr)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(UserData::new(Op::SendMsg, key, conn.generation).encode());
        conn.inflight += 1;
        self.stats.sends_submitted += 1;
        self.push(entry);
    }

    /// Lay out the batch as iovecs — the preamble, then each held entry, each framed as
    /// `[size line, bytes, CRLF]` (chunked) or `[bytes]` (unframed) — skip what the kernel
    /// already took, and point the msghdr at it. At most IOV_MAX iovecs (see `pump_reader`).
    fn build_iov(reader: &mut LiveReader) {
        use std::fmt::Write as _;
        struct Lines<'a>(&'a mut Vec<u8>);
        impl std::fmt::Write for Lines<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.extend_from_slice(s.as_bytes());
                Ok(())
            }
        }
        let chunked = reader.chunked;
        let bodies = || {
            reader
                .preamble
                .iter()
                .map(|p| &p[..])
                .chain(reader.held.iter().map(|e| &e.bytes[..]))
        };
        // Size lines first, all of them, so `lines` does not move after pointers are taken.
        reader.lines.clear();
        if chunked {
            for body in bodies() {
                let _ = write!(Lines(&mut reader.lines), "{:x}\r\n", body.len());
            }
        }
        reader.iov.clear();
        let crlf = libc::iovec {
            iov_base: CRLF.as_ptr() as *mut _,
            iov_len: CRLF.len(),
        };
        let mut line_start = 0;
        for body in bodies() {
            if chunked {
                let line_len = framed_len(true, body.len()) - body.len() - CRLF.len();
                reader.iov.push(libc::iovec {
                    // SAFETY: the line lies inside `lines`, which is not touched until the
                    // next build; the kernel only reads through the pointer.
                    iov_base: unsafe { reader.lines.as_ptr().add(line_start) } as *mut _,
                    iov_len: line_len,
                });
                line_start += line_len;
            }
            reader.iov.push(libc::iovec {
                iov_base: body.as_ptr() as *mut _,
                iov_len: body.len(),
            });
            if chunked {
                reader.iov.push(crlf);
            }
        }
        debug_assert!(reader.iov.len() <= IOV_MAX);
        reader.batch_bytes = reader.iov.iter().map(|v| v.iov_len).sum();
        // Skip what was sent already.
        let mut skip = reader.batch_sent;
        let mut first = 0;
        while first < reader.iov.len() && skip >= reader.iov[first].iov_len {
            skip -= reader.iov[first].iov_len;
            first += 1;
        }
        if skip > 0 {
            let v = &mut reader.iov[first];
            // SAFETY: skip < iov_len, so the advanced pointer stays inside the same buffer.
            v.iov_base = unsafe { v.iov_base.cast::<u8>().add(skip).cast() };
            v.iov_len -= skip;
        }
        reader.iov.drain(..first);
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        *reader.msg = unsafe { std::mem::zeroed() };
        reader.msg.msg_iov = reader.iov.as_mut_ptr();
        reader.msg.msg_iovlen = reader.iov.len();
    }

    /// During a short send: is the reader over its lag budget? Then the batch is cut after the
    /// entry in progress, so the next pump can skip it to the latest keyframe.
    fn trim_if_lagging(reader: &mut LiveReader, max_lag_ms: u64, max_lag_bytes: u64) {
        let Some(newest) = reader.stream.flv.newest() else {
            return;
        };
        // Which entry is the kernel in?
        let chunked = reader.chunked;
        let mut offset = reader
            .preamble
            .as_ref()
            .map_or(0, |p| framed_len(chunked, p.len()));
        let mut current = None;
        for (index, entry) in reader.held.iter().enumerate() {
            offset += framed_len(chunked, entry.bytes.len());
            if offset > reader.batch_sent {
                current = Some(index);
                break;
            }
        }
        let Some(index) = current else { return };
        let at = &reader.held[index];
        let lag_ms = newest.dts_ms.saturating_sub(at.dts_ms);
        let lag_bytes = (newest.offset + newest.bytes.len() as u64).saturating_sub(at.offset);
        if (lag_ms > max_lag_ms || lag_bytes > max_lag_bytes) && index + 1 < reader.held.len() {
            reader.held.truncate(index + 1);
        }
    }

    pub(super) fn on_sendmsg(&mut self, key: usize, result: i32) {
        if result < 0 {
            let reason = CloseReason::from_errno(-result);
            self.close(key, reason);
            return;
        }
        let sent = result as usize;
        self.progress(key, sent as u64);
        let conn = &mut self.conns[key];
        let Body::Live(reader) = &mut conn.body else {
            return;
        };
        reader
            .stream
            .stats
            .bytes_out
            .fetch_add(sent as u64, Ordering::Relaxed);
        reader.batch_sent += sent;
        if reader.batch_sent < reader.batch_bytes {
            // Short send: the rest of the same batch, from where the kernel stopped — cut
            // after the current entry if the reader is lagging.
            let (max_lag_ms, max_lag_bytes) = (
                self.config.live.max_lag_ms,
                self.config.live.max_lag_bytes as u64,
            );
            Self::trim_if_lagging(reader, max_lag_ms, max_lag_bytes);
            Self::build_iov(reader);
            self.submit_sendmsg(key);
            return;
        }
        if let Some(c) = reader.cursor.as_mut() {
            *c += reader.held.len() as u64;
        }
        reader.held.clear();
        if reader.preamble.take().is_some() {
            // The first batch (a whole GOP for a joiner) is out: give back what it needed.
            reader.held.shrink_to(READER_VEC_KEEP);
            reader.iov.shrink_to(READER_VEC_KEEP * 3);
            reader.lines.shrink_to(READER_VEC_KEEP * 8);
            conn.wbuf = Vec::new();
        }
        conn.wbuf.clear();
        conn.woff = 0;
        self.pump_reader(key);
    }

    /// Forget a reader that is being released.
    pub(super) fn detach_reader(&mut self, key: usize, stream: &Arc<Stream>) {
        stream.stats.readers_flv.fetch_sub(1, Ordering::Relaxed);
        if let Some(local) = self.live.get_mut(&stream.id) {
            local.readers.retain(|(k, _)| *k != key);
            if local.readers.is_empty() {
                self.live.remove(&stream.id);
                stream
                    .reader_workers
                    .fetch_and(!(1u64 << self.id), Ordering::AcqRel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_live_path;

    #[test]
    fn live_paths_and_the_reserved_vod_prefix() {
        assert_eq!(parse_live_path("/live/cam1.flv"), Some(("live", "cam1")));
        assert_eq!(parse_live_path("/vodka/x.flv"), Some(("vodka", "x")));
        // `vod` is not an app: its paths are files, never a publish or a play.
        assert_eq!(parse_live_path("/vod/x.flv"), None);
        for bad in [
            "/live/x.ts",
            "/live/a.b.flv",
            "/a/b/c.flv",
            "/live/.flv",
            "live/x.flv",
        ] {
            assert_eq!(parse_live_path(bad), None, "{bad}");
        }
    }
}
