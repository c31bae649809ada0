//! Live viewers (HTTP-FLV): play requests, the per-worker fan-out hubs ([`super::hub`]), and
//! each reader's vectored sends from its cursor towards the head.
//!
//! News of a stream reaches a worker two ways: the publisher's own worker handles it directly;
//! every other worker with readers of the stream gets one `StreamNews` command in its mailbox
//! (coalesced per worker by `Stream::wake_pending`, and the mailbox's doorbell per worker is
//! coalesced across streams). The hub pulls the new entries once, then flushes its readers when
//! the coalescing window (`live.send_coalesce_ms`) allows.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Command;
use super::conn::{Body, Conn, Deadline, LiveReader, Phase};
use super::http::TEXT_PLAIN;
use super::hub::Hub;
use super::worker::Worker;
use crate::app::router::LiveFormat;
use crate::media::framing::Framing;
use crate::media::qos::{FIRST_BYTE_BUCKETS_MS, LAG_BUCKETS_MS};
use crate::media::ring::Position;
use crate::media::stream::Stream;
use crate::metrics::CloseReason;
use crate::runtime::driver::Ring;
use crate::runtime::op::Op;
use crate::runtime::ops;
use crate::runtime::sys;

const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Per-reader batches keep at most this many iovecs of capacity between batches: a joiner's
/// first batch (a whole GOP) may need hundreds, which are given back once it is out.
const READER_IOVS_KEEP: usize = 64;

/// A play request parked until its stream is published (`live.play_wait_ms`).
pub(crate) struct WaitingReader {
    key: usize,
    generation: u32,
    app: String,
    name: String,
    wait: Wait,
    until_ms: u64,
    /// The request's query (HLS: carried into the segment URIs of the playlist answered).
    pub query: Option<String>,
}

/// Who is waiting for a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// An HTTP-FLV request ([`Phase::WaitStream`], nothing in flight).
    Http {
        format: LiveFormat,
        send_body: bool,
        chunked: bool,
    },
    /// An RTMP play (its receive stays posted).
    Rtmp,
    /// An HLS playlist request ([`Phase::WaitStream`]): waits for the first segment.
    Hls { send_body: bool },
}

impl<R: Ring> Worker<R> {
    /// New data (or an end) on `stream`, from its publisher's worker: this worker's hub hears
    /// it directly, other workers with readers get a `StreamNews` command.
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
                self.on_stream_news(stream.id);
                continue;
            }
            if stream.wake_pending.fetch_or(1 << w, Ordering::AcqRel) & (1 << w) != 0 {
                continue; // already told and not yet handled: coalesced
            }
            self.post(w, Command::StreamNews(stream.id));
        }
    }

    /// `stream_id` has news: pull it into the hub and flush now, or when the coalescing
    /// window closes.
    pub(super) fn on_stream_news(&mut self, stream_id: u32) {
        let now_ms = self.now_ms();
        let coalesce_ms = self.config.live.send_coalesce_ms;
        let coalesce_bytes = self.config.live.send_coalesce_bytes;
        let id = self.id;
        let Some(hub) = self.live.get_mut(&stream_id) else {
            return;
        };
        // Cleared before looking, so an append racing with this sends a new command.
        hub.stream
            .wake_pending
            .fetch_and(!(1u64 << id), Ordering::AcqRel);
        hub.unsent_bytes += hub.sync();
        hub.pumped_head = hub.stream.flv.head();
        hub.behind_since_ms = None;
        let due = coalesce_ms == 0
            || now_ms >= hub.last_flush_ms + coalesce_ms
            || hub.unsent_bytes >= coalesce_bytes
            || hub.stream.ended.load(Ordering::Acquire);
        if due {
            self.flush_stream(stream_id, now_ms);
        } else if hub.flush_at_ms.is_none() {
            hub.flush_at_ms = Some(hub.last_flush_ms + coalesce_ms);
        }
    }

    /// Release everything the hub holds to its readers and pump each of them; then trim the
    /// window to the oldest cursor.
    fn flush_stream(&mut self, stream_id: u32, now_ms: u64) {
        let Some(hub) = self.live.get_mut(&stream_id) else {
            return;
        };
        hub.flush_at_ms = None;
        hub.last_flush_ms = now_ms;
        hub.unsent_bytes = 0;
        hub.released_head = hub.head();
        let mut readers = std::mem::take(&mut self.pump_scratch);
        readers.clear();
        readers.extend_from_slice(&hub.readers);
        for &(key, generation) in &readers {
            if self
                .conns
                .get(key)
                .is_some_and(|c| c.generation() == generation)
            {
                self.pump_reader(key);
            }
        }
        self.pump_scratch = readers;
        self.trim_hub(stream_id);
    }

    /// Drop hub entries no local reader needs any more.
    fn trim_hub(&mut self, stream_id: u32) {
        let Some(hub) = self.live.get_mut(&stream_id) else {
            return;
        };
        let mut oldest = hub.head();
        for &(key, generation) in &hub.readers {
            if let Some(conn) = self.conns.get(key)
                && conn.generation() == generation
                && let Body::Live(reader) = &conn.body
                && let Some(cursor) = reader.cursor
            {
                oldest = oldest.min(cursor);
            }
        }
        hub.trim(oldest);
    }

    /// The earliest coalescing deadline of this worker's hubs (the loop waits no longer).
    pub(super) fn next_live_flush_ms(&self) -> Option<u64> {
        self.live.values().filter_map(|hub| hub.flush_at_ms).min()
    }

    /// Once per tick: the hubs' worker-local byte counts go to the streams' shared figures.
    pub(super) fn live_flush_stats(&mut self) {
        for hub in self.live.values_mut() {
            let stats = &hub.stream.stats;
            for (local, shared) in [
                (&mut hub.bytes_out, &stats.bytes_out),
                (&mut hub.frames_sent, &stats.frames_sent),
                (&mut hub.frames_skipped, &stats.frames_skipped),
            ] {
                if *local > 0 {
                    shared.fetch_add(*local, Ordering::Relaxed);
                    *local = 0;
                }
            }
            if !hub.lag.is_empty() {
                hub.stream.reader_lag.absorb(&mut hub.lag);
            }
            if !hub.first_byte.is_empty() {
                hub.stream.first_byte.absorb(&mut hub.first_byte);
            }
        }
    }

    /// Every loop turn: coalescing windows that closed flush; readers of streams that ended
    /// (grace expired) finish their bodies; a stream whose head moved without news for a tick
    /// is handled anyway (a lost or failed doorbell must not stall readers).
    pub(super) fn live_tick(&mut self, now_ms: u64) {
        if !self.waiting.is_empty() {
            self.wake_waiting_readers();
        }
        if self.live.is_empty() {
            return;
        }
        let tick_ms = self.config.runtime.tick_ms;
        let mut flush = Vec::new();
        let mut news = Vec::new();
        for (id, hub) in self.live.iter_mut() {
            if hub.stream.ended.load(Ordering::Acquire) {
                flush.push(*id);
                continue;
            }
            if hub.flush_at_ms.is_some_and(|at| now_ms >= at) {
                flush.push(*id);
                continue;
            }
            if hub.stream.flv.head() == hub.pumped_head {
                hub.behind_since_ms = None;
                continue;
            }
            match hub.behind_since_ms {
                None => hub.behind_since_ms = Some(now_ms),
                Some(since) if now_ms.saturating_sub(since) >= tick_ms => news.push(*id),
                Some(_) => {}
            }
        }
        for id in news {
            self.stats.live_wake_missed += 1;
            self.on_stream_news(id);
        }
        for id in flush {
            // Entries appended since the last news whose own news is still on its way go
            // out with this flush.
            if let Some(hub) = self.live.get_mut(&id) {
                hub.unsent_bytes += hub.sync();
            }
            self.flush_stream(id, now_ms);
        }
    }

    /// Parked play requests whose stream appeared start now; those out of time are refused
    /// (HTTP 404, or NetStream.Play.StreamNotFound).
    pub(super) fn wake_waiting_readers(&mut self) {
        let now_ms = self.now_ms();
        let mut ready = Vec::new();
        let conns = &self.conns;
        let shared = &self.shared;
        let registry = &shared.registry;
        self.waiting.retain_mut(|w| {
            let parked = conns.get(w.key).is_some_and(|c| {
                c.generation() == w.generation
                    && match w.wait {
                        Wait::Http { .. } | Wait::Hls { .. } => c.phase == Phase::WaitStream,
                        Wait::Rtmp => c.phase == Phase::Rtmp && matches!(c.body, Body::None),
                    }
            });
            if !parked {
                return false;
            }
            let found = match w.wait {
                Wait::Hls { .. } => Self::hls_ready(shared, &w.app, &w.name),
                _ => registry.get(&w.app, &w.name).is_some(),
            };
            if found || now_ms >= w.until_ms {
                ready.push((
                    w.key,
                    w.app.clone(),
                    w.name.clone(),
                    w.wait,
                    found,
                    w.query.take(),
                ));
                return false;
            }
            true
        });
        for (key, app, name, wait, found, query) in ready {
            match wait {
                Wait::Http {
                    format,
                    send_body,
                    chunked,
                } => {
                    self.conns[key].phase = Phase::ReadHead;
                    if found {
                        self.start_reader(key, &app, &name, format, send_body, chunked);
                    } else {
                        self.respond_simple(
                            key,
                            404,
                            TEXT_PLAIN,
                            b"no such live stream\n",
                            true,
                            &[],
                        );
                    }
                }
                Wait::Hls { send_body } => {
                    self.hls_wake(key, &app, &name, query.as_deref(), send_body)
                }
                Wait::Rtmp if found => self.rtmp_start_play(key, &app, &name),
                Wait::Rtmp => self.rtmp_refuse_play(key),
            }
        }
    }

    /// Park a play request until its stream appears or `until_ms`.
    pub(super) fn park_reader(
        &mut self,
        key: usize,
        app: &str,
        name: &str,
        wait: Wait,
        until_ms: u64,
    ) {
        let generation = self.conns[key].generation();
        self.waiting.push(WaitingReader {
            key,
            generation,
            app: app.to_string(),
            name: name.to_string(),
            wait,
            until_ms,
            query: None,
        });
    }

    /// Start an HTTP-FLV or HTTP-TS reader (`chunked`: HTTP/1.1 framing; HTTP/1.0 gets the
    /// bare stream).
    pub(super) fn start_reader(
        &mut self,
        key: usize,
        app: &str,
        name: &str,
        format: LiveFormat,
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
            self.conns[key].phase = Phase::WaitStream;
            self.arm_deadline(key, Deadline::Idle, wait_ms + 1000);
            let wait = Wait::Http {
                format,
                send_body,
                chunked,
            };
            self.park_reader(key, app, name, wait, until_ms);
            return;
        };
        // An endless body ends the connection; a HEAD keeps it.
        let keep_alive = self.conns[key].keep_alive && !send_body;
        self.conns[key].keep_alive = keep_alive;
        self.write_head(key, 200, keep_alive, true, |h| {
            h.header(
                "Content-Type",
                match format {
                    LiveFormat::Flv => "video/x-flv",
                    LiveFormat::Ts => "video/mp2t",
                },
            );
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
        // A viewer never sends another request on this connection: give back its head buffer
        // (no receive is in flight while a response is being started).
        self.conns[key].rbuf = Box::default();
        self.conns[key].rlen = 0;
        let sndbuf = self.config.live.reader_socket_send_bytes;
        if sndbuf > 0 {
            sys::set_send_buffer(&self.conns[key].fd, sndbuf);
        }
        let framing = match (format, chunked) {
            (LiveFormat::Flv, true) => Framing::HttpChunked,
            (LiveFormat::Flv, false) => Framing::Raw,
            (LiveFormat::Ts, true) => Framing::TsChunked,
            (LiveFormat::Ts, false) => Framing::TsRaw,
        };
        self.attach_reader(key, &stream, framing);
        let reader = LiveReader::new(stream, framing);
        self.start_response(key, 200, Body::Live(Box::new(reader)));
    }

    /// Count a new reader and put it in its worker's hub of the stream (made for the first).
    pub(super) fn attach_reader(&mut self, key: usize, stream: &Arc<Stream>, framing: Framing) {
        let generation = self.conns[key].generation();
        stream.readers(framing).fetch_add(1, Ordering::Relaxed);
        let id = self.id;
        let now_ms = self.now_ms();
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
                Hub::new(stream.clone(), now_ms)
            })
            .readers
            .push((key, generation));
        let protocol = super::sessions::Protocol::of_reader(framing);
        self.session_start(key, protocol, super::sessions::Role::Play, stream);
    }

    /// Send the reader what lies between its cursor and the hub's head (a joiner first gets
    /// the preamble and its GOP cache), unless a send is in flight or the head is not out yet.
    pub(super) fn pump_reader(&mut self, key: usize) {
        let max_lag_ms = self.config.live.max_lag_ms;
        let max_lag_bytes = self.config.live.max_lag_bytes as u64;
        let max_skips = self.config.live.max_skips;
        let skip_window_ms = self.config.live.skip_window_ms;
        let bytes_max = self.config.live.reader_inflight_bytes_max;
        let now_ms = self.now_ms();
        let conn = &mut self.conns[key];
        // Only sends gate a pump: an RTMP reader keeps a receive posted all along.
        if conn.io.tx() > 0
            || conn.woff < conn.wbuf.len()
            || !matches!(conn.phase, Phase::Respond | Phase::Rtmp)
        {
            return;
        }
        let Body::Live(reader) = &mut conn.body else {
            return;
        };
        if reader.finishing {
            return;
        }
        let Some(hub) = self.live.get_mut(&reader.stream.id) else {
            return;
        };
        let stream = hub.stream.clone();
        let ring = &stream.flv;
        // A new reader starts at the latest keyframe (GOP cache), after the stream headers.
        let mut cursor = match reader.cursor {
            Some(c) => c,
            None => match ring.gop_start() {
                // An MPEG-TS reader waits until the publisher has muxed its first entry (it
                // catches up on the GOP at its next unit, and says so).
                Some(start)
                    if hub.extend_back_to(start)
                        && hub
                            .get(start)
                            .is_some_and(|e| e.parts(reader.framing).is_some()) =>
                {
                    let dts = hub.get(start).map(|e| e.dts_ms).unwrap_or(0);
                    let preamble = if reader.framing.is_ts() {
                        hub.stream.ts_preamble(reader.framing)
                    } else {
                        hub.stream.preamble(start, dts).get(reader.framing).clone()
                    };
                    reader.preamble = Some(preamble);
                    reader.cursor = Some(start);
                    start
                }
                _ => {
                    if hub.stream.ended.load(Ordering::Acquire) {
                        self.end_body(key);
                    }
                    return;
                }
            },
        };
        // Lag: too far behind in bytes or media time, or no longer in the window → skip to the
        // latest keyframe; too many skips → disconnect.
        let behind = hub.position(cursor) == Position::Behind;
        let lagging = !behind
            && match (hub.get(cursor), hub.newest()) {
                (Some(at), Some(newest)) => at.lags(newest, max_lag_ms, max_lag_bytes),
                _ => false,
            };
        if behind || lagging {
            let start = ring.gop_start().filter(|s| *s > cursor);
            match start {
                Some(start) if hub.extend_back_to(start) => {
                    // Skips count within a window: a viewer that stumbled once an hour ago is
                    // not one skip closer to being dropped today.
                    if now_ms.saturating_sub(reader.last_skip_ms) > skip_window_ms {
                        reader.skips = 0;
                    }
                    reader.skips += 1;
                    reader.last_skip_ms = now_ms;
                    hub.stream.stats.skips.fetch_add(1, Ordering::Relaxed);
                    hub.frames_skipped += start - cursor;
                    self.stats.live_skips += 1;
                    if reader.skips > max_skips {
                        hub.stream
                            .stats
                            .slow_disconnects
                            .fetch_add(1, Ordering::Relaxed);
                        self.close(key, CloseReason::SlowReader);
                        return;
                    }
                    cursor = start;
                    reader.cursor = Some(start);
                }
                _ if behind => {
                    // Nothing to skip to (cannot happen while the GOP is retained).
                    self.close(key, CloseReason::SlowReader);
                    return;
                }
                _ => {}
            }
        }
        // One iovec per entry (two for RTMP), in the reader's framing; at most IOV_MAX iovecs
        // (a GOP of a long-GOP or low-bitrate stream has more tags than that) and about
        // `bytes_max`.
        let batch = &mut reader.batch;
        batch.clear();
        reader.entry_ends.clear();
        if let Some(preamble) = &reader.preamble
            && !preamble.is_empty()
        {
            batch.push(preamble);
        }
        let head = hub.head();
        let mut seq = cursor;
        while seq < head {
            let Some(entry) = hub.get(seq) else { break };
            // An entry without MPEG-TS (muxing stopped while nobody wanted it): wait for the
            // publisher, or skip on lag.
            let Some(parts) = entry.parts(reader.framing) else {
                break;
            };
            let len = parts[0].len() + parts[1].len();
            if seq > cursor && batch.total() + len > bytes_max {
                break;
            }
            if batch.room() < parts.len() {
                break;
            }
            // Empty pieces (a sequence header writes no TS packets) take no iovec.
            for part in parts.into_iter().filter(|p| !p.is_empty()) {
                batch.push(part);
            }
            reader.entry_ends.push(batch.total());
            seq += 1;
        }
        reader.batch_entries = (seq - cursor) as usize;
        reader.capped = seq < head;
        if batch.is_empty() {
            // Waiting at the head: no send in flight, so no send deadline.
            let ended = hub.stream.ended.load(Ordering::Acquire);
            self.disarm_deadlines(key);
            if ended {
                self.end_body(key);
            }
            return;
        }
        self.submit_batch(key);
        self.arm_deadline(key, Deadline::Send, self.config.http.send_timeout_ms);
    }

    fn submit_batch(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let Body::Live(reader) = &mut conn.body else {
            return;
        };
        reader.batch.prepare();
        let entry = ops::sendmsg(conn.fd.as_raw_fd(), &reader.batch);
        self.stats.sends_submitted += 1;
        self.driver.submit(&mut conn.io, key, Op::SendMsg, entry);
    }

    /// End a viewer's body now (shutdown): after the batch in flight is out — cut after the
    /// entry in progress — the last chunk goes, on an entry boundary, then the connection
    /// closes. Nothing the kernel may be reading is touched here.
    pub(super) fn end_reader(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        let Body::Live(reader) = &mut conn.body else {
            return;
        };
        if reader.end_requested || reader.finishing {
            return;
        }
        reader.end_requested = true;
        conn.keep_alive = false;
        if conn.io.tx() == 0 {
            self.reader_next(key);
        }
    }

    /// What a reader does when its send is done: HTTP continues the response (the next
    /// batch, or the body's end); RTMP sends its session's pending messages, then media.
    pub(super) fn reader_next(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(|c| c.rtmp.is_some()) {
            self.rtmp_advance(key);
        } else {
            self.advance(key);
        }
    }

    /// The stream is over for this reader: queue the end of its body and send it.
    pub(super) fn end_body(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if conn.rtmp.is_some() {
            self.rtmp_end_play(key);
        } else {
            Self::finish_reader(conn);
            self.advance(key);
        }
    }

    /// The body's end: the zero-length chunk (chunked framing), then the connection closes.
    pub(super) fn finish_reader(conn: &mut Conn) {
        let Body::Live(reader) = &mut conn.body else {
            return;
        };
        reader.finishing = true;
        conn.wbuf.clear();
        if reader.framing.is_http_chunked() {
            conn.wbuf.extend_from_slice(LAST_CHUNK);
        }
        conn.woff = 0;
        conn.keep_alive = false;
    }

    pub(super) fn on_sendmsg(&mut self, key: usize, result: i32) {
        if result < 0 {
            let reason = CloseReason::from_errno(-result);
            self.close(key, reason);
            return;
        }
        let sent = result as usize;
        self.progress(key, sent as u64);
        let now_ms = self.now_ms();
        let max_lag_ms = self.config.live.max_lag_ms;
        let max_lag_bytes = self.config.live.max_lag_bytes as u64;
        let conn = &mut self.conns[key];
        let Body::Live(reader) = &mut conn.body else {
            return;
        };
        let Some(hub) = self.live.get_mut(&reader.stream.id) else {
            return;
        };
        hub.bytes_out += sent as u64;
        reader.batch.advance(sent);
        if reader.batch.remaining() > 0 {
            // Short send. The entry in progress: the first that does not end within what was
            // sent (the preamble, if unfinished, belongs to the first entry).
            let done = reader.batch.sent();
            let index = reader.entry_ends.partition_point(|&end| end <= done);
            let cut = if reader.end_requested {
                // Shutting down: finish the entry in progress, drop the rest of the batch.
                true
            } else {
                // Cut after the entry in progress if the reader is lagging, so the next batch
                // can skip to the latest keyframe; otherwise send the rest of the same batch,
                // from where the kernel stopped.
                index + 1 < reader.batch_entries
                    && reader.cursor.is_some_and(|cursor| {
                        matches!(
                            (hub.get(cursor + index as u64), hub.newest()),
                            (Some(at), Some(newest)) if at.lags(newest, max_lag_ms, max_lag_bytes)
                        )
                    })
            };
            if cut && let Some(&end) = reader.entry_ends.get(index) {
                reader.batch.cut_at(end);
                reader.batch_entries = reader.batch_entries.min(index + 1);
                reader.entry_ends.truncate(index + 1);
            }
            if reader.batch.remaining() > 0 {
                self.submit_batch(key);
                return;
            }
        }
        let cursor = reader.cursor.map(|c| c + reader.batch_entries as u64);
        reader.cursor = cursor;
        hub.frames_sent += reader.batch_entries as u64;
        reader.batch_entries = 0;
        // The reader's lag: how far the newest entry is ahead of the last one it now has.
        if let Some(c) = cursor
            && let (Some(last), Some(newest)) = (hub.get(c.wrapping_sub(1)), hub.newest())
        {
            let lag_ms = newest.dts_ms.saturating_sub(last.dts_ms);
            hub.lag.observe(&LAG_BUCKETS_MS, lag_ms);
        }
        if reader.end_requested {
            // Shut down mid-batch: the body's end goes now.
            self.reader_next(key);
            return;
        }
        if reader.preamble.take().is_some() {
            let first_byte_ms = now_ms.saturating_sub(conn.opened_ms);
            hub.first_byte
                .observe(&FIRST_BYTE_BUCKETS_MS, first_byte_ms);
            // The first batch (a whole GOP for a joiner) is out: give back what it needed.
            reader.batch.shrink_to(READER_IOVS_KEEP);
            conn.wbuf = Vec::new();
        }
        conn.wbuf.clear();
        conn.woff = 0;
        // Send again now if the batch was cut short or the hub released more since; otherwise
        // wait for the hub's next flush (write coalescing).
        let more = reader.capped || cursor.is_some_and(|c| c < hub.released_head);
        let ended = hub.stream.ended.load(Ordering::Acquire);
        let rtmp = conn.rtmp.is_some();
        if rtmp {
            // Messages the session queued meanwhile go first, then media.
            self.rtmp_advance(key);
        } else if more || ended {
            self.pump_reader(key);
        } else {
            self.disarm_deadlines(key);
        }
    }

    /// Forget a reader that is being released.
    pub(super) fn detach_reader(&mut self, key: usize, reader: &LiveReader) {
        let stream = &reader.stream;
        stream
            .readers(reader.framing)
            .fetch_sub(1, Ordering::Relaxed);
        let Some(hub) = self.live.get_mut(&stream.id) else {
            return;
        };
        hub.readers.retain(|(k, _)| *k != key);
        if hub.readers.is_empty() {
            if let Some(hub) = self.live.remove(&stream.id) {
                stream
                    .stats
                    .bytes_out
                    .fetch_add(hub.bytes_out, Ordering::Relaxed);
            }
            stream
                .reader_workers
                .fetch_and(!(1u64 << self.id), Ordering::AcqRel);
        }
    }
}
