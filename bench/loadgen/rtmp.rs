//! RTMP play for the load generator: the plain handshake, the few commands a player sends,
//! and a streaming chunk decoder.
//!
//! Sans-IO like the FLV walker: [`RtmpPlay::on_bytes`] takes what the socket gave, reports
//! media as [`TagInfo`] (the same record the FLV walker makes, so both protocols feed the
//! same statistics) and queues what must be sent ([`RtmpPlay::pending_out`]); the caller owns
//! the socket and the clock.
//!
//! What a reader does (RTMP 1.0 spec, and what FFmpeg and librtmp do):
//! 1. C0C1 (version 3, time 0, zero, 1528 pseudo-random bytes); on S0S1, C2 = S1 echoed (the
//!    spec lets a client send C2 once S1 is in, so a server that waits for C2 before S2 works
//!    too); S2 is read and skipped.
//! 2. `connect` (transaction 1: app, flashVer, tcUrl, objectEncoding 0, ...) as AMF0.
//! 3. On its `_result`: Window Acknowledgement Size and `createStream` (transaction 2).
//! 4. On that `_result`: `play(name, start = -2)` on the returned stream id (-2 is the spec's
//!    "live, else recorded"; librtmp sends -1000 for --live, servers treat both alike) and Set
//!    Buffer Length (user control event 3).
//! 5. Then, for the rest of the run: audio (8) and video (9) messages become one [`TagInfo`]
//!    each, aggregates (22) one per sub-message, data messages (18, onMetaData) a script tag;
//!    Set Chunk Size and Abort are applied; Ping Requests are answered; an Acknowledgement goes
//!    out whenever half of the server's acknowledgement window has arrived since the last one
//!    (as FFmpeg does, so a server that stops at the window never waits a round trip for it;
//!    nginx-rtmp and others stop sending without acknowledgements); `_error`, or an `onStatus`
//!    with level "error", rejects the play.
//!
//! Memory per reader: media bodies are never buffered (only their first two bytes are kept,
//! enough to classify them, see [`flv::classify`]); an aggregate's body is walked as it
//! arrives; only protocol control, command and data messages are kept whole, up to
//! [`RtmpLimits::max_control_message_bytes`].

use uringcast::proto::amf0::{self, Amf0Error, Amf0Value};

use crate::flv::{self, FlvError, FlvEvent, FlvLimits, FlvWalker, TagInfo, TagKind};

/// Every bound of the RTMP client, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtmpLimits {
    /// Chunk streams a server may use at once (it needs 2 for control, and a few for
    /// commands, audio and video).
    pub max_chunk_streams: usize,
    /// Largest protocol control, command or data message kept whole (an `onMetaData` is a
    /// few hundred bytes).
    pub max_control_message_bytes: u32,
    /// How the tags of aggregate messages are walked.
    pub flv: FlvLimits,
}

impl Default for RtmpLimits {
    fn default() -> Self {
        Self {
            max_chunk_streams: 64,
            max_control_message_bytes: 256 * 1024,
            flv: FlvLimits {
                // Some servers write the back pointer without the 11-byte tag header.
                check_prev_tag_size: false,
                ..FlvLimits::default()
            },
        }
    }
}

/// Every way the server's bytes can fail to be RTMP, or the server can refuse the play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtmpError {
    /// S0 is not version 3.
    BadVersion(u8),
    /// A type 1, 2 or 3 chunk header on a chunk stream that never had a type 0 one.
    UnknownChunkStream(u32),
    /// More than [`RtmpLimits::max_chunk_streams`] chunk streams.
    TooManyChunkStreams,
    /// A type 0, 1 or 2 chunk header while a message on that chunk stream is incomplete.
    HeaderMidMessage(u32),
    /// A control, command or data message above [`RtmpLimits::max_control_message_bytes`].
    MessageTooLarge { type_id: u8, length_bytes: u32 },
    /// A protocol control or user control message too short for its type.
    ShortControl(u8),
    /// Set Chunk Size of 0 or with the top bit set.
    BadChunkSize(u32),
    /// An aggregate message's body is not a sequence of FLV tags.
    Aggregate(FlvError),
    /// An aggregate message ended inside a tag.
    AggregateTruncated,
    /// A command the client acts on (`_result`, `_error`, `onStatus`) is not valid AMF0.
    Amf0(Amf0Error),
    /// A `createStream` `_result` without a usable stream id.
    BadStreamId,
    /// `_error`, or `onStatus` with level "error": the server refused.
    Rejected,
    /// The decoder made no progress on non-empty input (a bug, never the server's fault; it
    /// exists so that the read loop stays bounded whatever happens).
    NoProgress,
}

/// Where to play: parsed from `rtmp://HOST[:PORT]/APP/STREAM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    pub app: String,
    /// Everything after `APP/` (it may hold further `/` and a query string).
    pub stream: String,
    /// `rtmp://HOST[:PORT]/APP`, as `connect` wants it.
    pub tc_url: String,
}

const HANDSHAKE_BYTES: usize = 1536;
const RTMP_VERSION: u8 = 3;
/// Chunk size of everything we send: we never change it (our messages are small).
const OUT_CHUNK_SIZE: usize = 128;
/// Capacity of the send buffer kept once it is empty.
const OUT_KEEP_BYTES: usize = 256;
/// Chunk size of what the server sends until it says otherwise.
const DEFAULT_CHUNK_SIZE: u32 = 128;
/// The acknowledgement window we announce to the server.
const OUR_WINDOW_BYTES: u32 = 5_000_000;
/// Set Buffer Length (as FFmpeg's default client buffer).
const BUFFER_MS: u32 = 3000;
const CONNECT_TXN: f64 = 1.0;
const CREATE_STREAM_TXN: f64 = 2.0;

/// Message type ids (RTMP spec 5.4, 7.1).
mod msg {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// User control event types (RTMP spec 7.1.7).
mod event {
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// Chunk stream ids we send on (the ones FFmpeg and librtmp use).
const CSID_CONTROL: u32 = 2;
const CSID_COMMAND: u32 = 3;
const CSID_PLAY: u32 = 8;

/// One complete message (or aggregate sub-message) out of the chunk stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Audio or video (also each sub-message of an aggregate): kind, absolute timestamp,
    /// length and the classification of its first body bytes.
    Media(TagInfo),
    /// A protocol control, user control, command or data message, whole.
    Control {
        type_id: u8,
        stream_id: u32,
        body: Vec<u8>,
    },
    /// The server's Set Chunk Size, already applied.
    ChunkSize(u32),
    /// The server's Abort for this chunk stream, already applied.
    Aborted(u32),
}

/// What is kept of the message being received on one chunk stream.
#[derive(Debug)]
enum Body {
    /// Audio or video: only the first bytes.
    Media {
        kind: TagKind,
        head: [u8; 2],
        head_len: usize,
    },
    Whole(Vec<u8>),
    Aggregate {
        walker: Box<FlvWalker>,
        /// Aggregate timestamp minus the first sub-message's, added to every sub-message's.
        offset_ms: Option<u32>,
    },
    /// A type we neither need nor keep (shared objects, unknown).
    Skip,
}

#[derive(Debug)]
struct ChunkStream {
    csid: u32,
    /// Timestamp of the current (or last) message, ms.
    timestamp_ms: u32,
    /// The last timestamp field with its extension: absolute after a type 0 header, a delta
    /// after type 1 or 2. A type 3 header that starts a new message adds it again (RTMP spec
    /// 5.3.1.2.4: after type 0 that delta is the first message's timestamp).
    ts_field_ms: u32,
    length_bytes: u32,
    type_id: u8,
    stream_id: u32,
    /// The last type 0, 1 or 2 header had an extended timestamp, so every type 3 chunk that
    /// follows carries one too (spec 5.3.1.3; nginx-rtmp and FFmpeg write it).
    extended: bool,
    /// Bytes of the current message still to come; 0 between messages.
    remaining_bytes: u32,
    body: Body,
}

/// Largest chunk header: 3-byte basic header, 11-byte type 0 header, 4-byte extension.
const MAX_HEADER_BYTES: usize = 18;
const EXTENDED_TS: u32 = 0x00ff_ffff;

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// Streaming RTMP chunk decoder; see the module docs.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: RtmpLimits,
    chunk_size: u32,
    streams: Vec<ChunkStream>,
    header: [u8; MAX_HEADER_BYTES],
    header_len: usize,
    /// Inside a chunk's payload: the stream's index and the payload bytes left in the chunk.
    payload: Option<(usize, u32)>,
}

impl ChunkDecoder {
    pub fn new(limits: RtmpLimits) -> Self {
        Self {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: Vec::new(),
            header: [0; MAX_HEADER_BYTES],
            header_len: 0,
            payload: None,
        }
    }

    #[cfg(test)]
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    fn stream_index(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.csid == csid)
    }

    /// Basic header length and chunk stream id, once enough bytes are in.
    fn basic_header(h: &[u8]) -> Option<(usize, u32)> {
        let first = *h.first()?;
        match first & 0x3f {
            0 => h.get(1).map(|&b| (2, 64 + u32::from(b))),
            1 => match (h.get(1), h.get(2)) {
                (Some(&lo), Some(&hi)) => Some((3, 64 + u32::from(lo) + 256 * u32::from(hi))),
                _ => None,
            },
            csid => Some((1, u32::from(csid))),
        }
    }

    /// How many header bytes the chunk header in `self.header[..header_len]` needs in all,
    /// as far as the bytes so far tell (it only grows as more arrive).
    fn header_needed(&self) -> usize {
        let h = &self.header[..self.header_len];
        let Some(&first) = h.first() else {
            return 1;
        };
        let Some((basic, csid)) = Self::basic_header(h) else {
            return if first & 0x3f == 0 { 2 } else { 3 };
        };
        let fmt = first >> 6;
        let base = basic + [11, 7, 3, 0][usize::from(fmt)];
        if h.len() < base {
            return base;
        }
        let extended = if fmt < 3 {
            be24(&h[basic..basic + 3]) == EXTENDED_TS
        } else {
            self.stream_index(csid)
                .is_some_and(|i| self.streams[i].extended)
        };
        base + if extended { 4 } else { 0 }
    }

    /// Applies a complete chunk header; returns the stream's index and, for a message of
    /// length 0, the message it completes at once.
    fn apply_header(&mut self) -> Result<(usize, Option<Message>), RtmpError> {
        let h = self.header;
        let (basic, csid) =
            Self::basic_header(&h[..self.header_len]).ok_or(RtmpError::NoProgress)?;
        let fmt = h[0] >> 6;
        let idx = match self.stream_index(csid) {
            Some(i) => i,
            None if fmt == 0 => {
                if self.streams.len() >= self.limits.max_chunk_streams {
                    return Err(RtmpError::TooManyChunkStreams);
                }
                self.streams.push(ChunkStream {
                    csid,
                    timestamp_ms: 0,
                    ts_field_ms: 0,
                    length_bytes: 0,
                    type_id: 0,
                    stream_id: 0,
                    extended: false,
                    remaining_bytes: 0,
                    body: Body::Skip,
                });
                self.streams.len() - 1
            }
            None => return Err(RtmpError::UnknownChunkStream(csid)),
        };
        let m = &h[basic..self.header_len];
        let s = &mut self.streams[idx];
        if s.remaining_bytes > 0 {
            // A continuation: only type 3 may continue a message. Its extended timestamp (if
            // any) repeats the message's; the message's fields stay as they are.
            if fmt != 3 {
                return Err(RtmpError::HeaderMidMessage(csid));
            }
        } else {
            let ext = |at: usize| u32::from_be_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]);
            if fmt < 3 {
                let raw = be24(&m[..3]);
                s.extended = raw == EXTENDED_TS;
                let at = [11, 7, 3][usize::from(fmt)];
                s.ts_field_ms = if s.extended { ext(at) } else { raw };
                if fmt <= 1 {
                    s.length_bytes = be24(&m[3..6]);
                    s.type_id = m[6];
                }
                if fmt == 0 {
                    s.stream_id = u32::from_le_bytes([m[7], m[8], m[9], m[10]]);
                    s.timestamp_ms = s.ts_field_ms;
                } else {
                    s.timestamp_ms = s.timestamp_ms.wrapping_add(s.ts_field_ms);
                }
            } else {
                if s.extended {
                    s.ts_field_ms = ext(0);
                }
                s.timestamp_ms = s.timestamp_ms.wrapping_add(s.ts_field_ms);
            }
            s.body = match s.type_id {
                msg::AUDIO | msg::VIDEO => Body::Media {
                    kind: if s.type_id == msg::AUDIO {
                        TagKind::Audio
                    } else {
                        TagKind::Video
                    },
                    head: [0; 2],
                    head_len: 0,
                },
                msg::AGGREGATE => Body::Aggregate {
                    walker: Box::new(FlvWalker::new_tags_only(self.limits.flv)),
                    offset_ms: None,
                },
                msg::SET_CHUNK_SIZE
                | msg::ABORT
                | msg::ACK
                | msg::USER_CONTROL
                | msg::WINDOW_ACK_SIZE
                | msg::SET_PEER_BANDWIDTH
                | msg::DATA_AMF3
                | msg::COMMAND_AMF3
                | msg::DATA_AMF0
                | msg::COMMAND_AMF0 => {
                    if s.length_bytes > self.limits.max_control_message_bytes {
                        return Err(RtmpError::MessageTooLarge {
                            type_id: s.type_id,
                            length_bytes: s.length_bytes,
                        });
                    }
                    Body::Whole(Vec::with_capacity(s.length_bytes as usize))
                }
                _ => Body::Skip,
            };
            s.remaining_bytes = s.length_bytes;
            if s.length_bytes == 0 {
                return Ok((idx, self.finish_message(idx)?));
            }
        }
        Ok((idx, None))
    }

    /// The message on stream `idx` is complete: reset the stream and report it.
    fn finish_message(&mut self, idx: usize) -> Result<Option<Message>, RtmpError> {
        let s = &mut self.streams[idx];
        let body = std::mem::replace(&mut s.body, Body::Skip);
        match body {
            Body::Media {
                kind,
                head,
                head_len,
            } => {
                let (video_keyframe, config) = flv::classify(kind, &head[..head_len]);
                Ok(Some(Message::Media(TagInfo {
                    kind,
                    dts_ms: s.timestamp_ms,
                    data_len_bytes: s.length_bytes,
                    video_keyframe,
                    config,
                })))
            }
            Body::Whole(body) => {
                let short = || RtmpError::ShortControl(s.type_id);
                let be32 = |b: &[u8]| -> Option<u32> {
                    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
                };
                match s.type_id {
                    msg::SET_CHUNK_SIZE => {
                        let size = be32(&body).ok_or_else(short)?;
                        if size == 0 || size & 0x8000_0000 != 0 {
                            return Err(RtmpError::BadChunkSize(size));
                        }
                        self.chunk_size = size;
                        Ok(Some(Message::ChunkSize(size)))
                    }
                    msg::ABORT => {
                        let csid = be32(&body).ok_or_else(short)?;
                        if let Some(i) = self.stream_index(csid) {
                            let t = &mut self.streams[i];
                            t.remaining_bytes = 0;
                            t.body = Body::Skip;
                            // A chunk of that stream cannot be half-read now: Abort arrives
                            // between chunks, on its own chunk stream.
                        }
                        Ok(Some(Message::Aborted(csid)))
                    }
                    type_id => Ok(Some(Message::Control {
                        type_id,
                        stream_id: s.stream_id,
                        body,
                    })),
                }
            }
            Body::Aggregate { walker, .. } => {
                if walker.is_between_tags() {
                    Ok(None)
                } else {
                    Err(RtmpError::AggregateTruncated)
                }
            }
            Body::Skip => Ok(None),
        }
    }

    /// Consumes bytes from `input`, stopping after at most one message. Returns the number of
    /// bytes used and the message, if one completed. Call again with the rest of the input
    /// until it is all used; every call with non-empty input uses at least one byte.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Option<Message>), RtmpError> {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            let Some((idx, chunk_left)) = self.payload else {
                // Collecting a chunk header, as many bytes as it turns out to need.
                let need = self.header_needed();
                let take = (need - self.header_len).min(rest.len());
                self.header[self.header_len..self.header_len + take].copy_from_slice(&rest[..take]);
                self.header_len += take;
                used += take;
                if self.header_len < self.header_needed() {
                    continue;
                }
                let (idx, done) = self.apply_header()?;
                self.header_len = 0;
                if done.is_some() || self.streams[idx].remaining_bytes == 0 {
                    // A message of length 0: no payload.
                    return Ok((used, done));
                }
                let chunk = self.chunk_size.min(self.streams[idx].remaining_bytes);
                self.payload = Some((idx, chunk));
                continue;
            };
            let n = (chunk_left as usize).min(rest.len());
            let data = &rest[..n];
            let s = &mut self.streams[idx];
            let mut took = n;
            let mut event = None;
            match &mut s.body {
                Body::Media { head, head_len, .. } => {
                    let h = (2 - *head_len).min(n);
                    head[*head_len..*head_len + h].copy_from_slice(&data[..h]);
                    *head_len += h;
                }
                Body::Whole(buf) => buf.extend_from_slice(data),
                Body::Aggregate { walker, offset_ms } => {
                    let (w, ev) = walker.next_event(data).map_err(RtmpError::Aggregate)?;
                    took = w;
                    if let Some(FlvEvent::Tag(mut tag)) = ev {
                        let offset =
                            *offset_ms.get_or_insert(s.timestamp_ms.wrapping_sub(tag.dts_ms));
                        tag.dts_ms = tag.dts_ms.wrapping_add(offset);
                        event = Some(Message::Media(tag));
                    }
                }
                Body::Skip => {}
            }
            if took == 0 {
                return Err(RtmpError::NoProgress);
            }
            used += took;
            s.remaining_bytes -= took as u32;
            let chunk_left = chunk_left - took as u32;
            self.payload = (chunk_left > 0).then_some((idx, chunk_left));
            if self.streams[idx].remaining_bytes == 0 {
                self.payload = None;
                let done = self.finish_message(idx)?;
                // An aggregate's last tag and the end of its message can come together.
                return Ok((used, event.or(done)));
            }
            if event.is_some() {
                return Ok((used, event));
            }
        }
        Ok((used, None))
    }
}

/// Appends one message as chunks of [`OUT_CHUNK_SIZE`]: a type 0 header, then type 3
/// headers. Timestamps are 0 (the server ignores them on commands and control).
fn write_message(out: &mut Vec<u8>, csid: u32, type_id: u8, stream_id: u32, body: &[u8]) {
    debug_assert!((2..64).contains(&csid), "one-byte basic headers only");
    let csid = csid as u8;
    out.push(csid);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.push(type_id);
    out.extend_from_slice(&stream_id.to_le_bytes());
    for (i, chunk) in body.chunks(OUT_CHUNK_SIZE).enumerate() {
        if i > 0 {
            out.push(0xc0 | csid);
        }
        out.extend_from_slice(chunk);
    }
}

fn command(name: &str, txn: f64, args: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    amf0::write_string(&mut b, name);
    amf0::write_number(&mut b, txn);
    args(&mut b);
    b
}

/// What a session reports to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayEvent {
    /// A media message, or a data message as a script tag.
    Tag(TagInfo),
    /// `onStatus` NetStream.Play.Start.
    Started,
}

#[derive(Debug)]
enum Step {
    /// Collecting S0 and S1 (1 + 1536 bytes).
    AwaitS0S1 { got: Vec<u8> },
    /// Skipping S2.
    AwaitS2 { left: usize },
    /// `connect` sent.
    Connecting,
    /// `createStream` sent.
    CreatingStream,
    /// `play` sent.
    Playing,
}

/// One RTMP player session; see the module docs.
#[derive(Debug)]
pub struct RtmpPlay {
    step: Step,
    decoder: ChunkDecoder,
    /// Bytes to send; [`Self::sent_out`] drops the ones that went out.
    out: Vec<u8>,
    received_bytes: u64,
    /// `received_bytes` when the last Acknowledgement was queued.
    acked_bytes: u64,
    /// The server's acknowledgement window; 0 until it announces one.
    server_window_bytes: u32,
    stream_id: u32,
}

impl RtmpPlay {
    /// A session with C0C1 queued. `seed` varies the random part of C1.
    pub fn new(limits: RtmpLimits, seed: u64) -> Self {
        let mut out = Vec::with_capacity(1 + HANDSHAKE_BYTES);
        out.push(RTMP_VERSION);
        out.extend_from_slice(&[0; 8]);
        // xorshift64: the random part need not be good, only not constant.
        let mut x = seed | 1;
        while out.len() < 1 + HANDSHAKE_BYTES {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(x as u8);
        }
        Self {
            step: Step::AwaitS0S1 { got: Vec::new() },
            decoder: ChunkDecoder::new(limits),
            out,
            received_bytes: 0,
            acked_bytes: 0,
            server_window_bytes: 0,
            stream_id: 0,
        }
    }

    /// Bytes waiting to be sent.
    pub fn pending_out(&self) -> &[u8] {
        &self.out
    }

    /// `n` bytes of [`Self::pending_out`] were sent.
    pub fn sent_out(&mut self, n: usize) {
        self.out.drain(..n.min(self.out.len()));
        // The handshake's 1.5 KiB need not stay with each of thousands of readers; what is
        // sent later (acknowledgements, pongs) is a few dozen bytes.
        if self.out.is_empty() && self.out.capacity() > OUT_KEEP_BYTES {
            self.out = Vec::new();
        }
    }

    /// Handles bytes from the server: reports media and play start through `on_event`, and
    /// queues replies.
    pub fn on_bytes(
        &mut self,
        mut data: &[u8],
        url: &RtmpUrl,
        on_event: &mut dyn FnMut(PlayEvent),
    ) -> Result<(), RtmpError> {
        self.received_bytes += data.len() as u64;
        if let Step::AwaitS0S1 { got } = &mut self.step {
            let take = (1 + HANDSHAKE_BYTES - got.len()).min(data.len());
            got.extend_from_slice(&data[..take]);
            data = &data[take..];
            if got.len() < 1 + HANDSHAKE_BYTES {
                return Ok(());
            }
            if got[0] != RTMP_VERSION {
                return Err(RtmpError::BadVersion(got[0]));
            }
            // C2 echoes S1.
            self.out.extend_from_slice(&got[1..]);
            self.step = Step::AwaitS2 {
                left: HANDSHAKE_BYTES,
            };
        }
        if let Step::AwaitS2 { left } = &mut self.step {
            let take = (*left).min(data.len());
            *left -= take;
            data = &data[take..];
            if *left > 0 {
                return Ok(());
            }
            self.send_connect(url);
            self.step = Step::Connecting;
        }
        while !data.is_empty() {
            let (used, message) = self.decoder.decode(data)?;
            if used == 0 {
                return Err(RtmpError::NoProgress);
            }
            data = &data[used..];
            match message {
                Some(Message::Media(tag)) => on_event(PlayEvent::Tag(tag)),
                Some(Message::Control {
                    type_id,
                    stream_id: _,
                    body,
                }) => self.on_control(type_id, &body, url, on_event)?,
                Some(Message::ChunkSize(_) | Message::Aborted(_)) | None => {}
            }
        }
        let window = u64::from(self.server_window_bytes);
        if window > 0 && self.received_bytes - self.acked_bytes >= window.div_ceil(2) {
            self.acked_bytes = self.received_bytes;
            // The sequence number wraps at 2^32 (spec 5.4.3).
            let seq = self.received_bytes as u32;
            write_message(&mut self.out, CSID_CONTROL, msg::ACK, 0, &seq.to_be_bytes());
        }
        Ok(())
    }

    fn send_connect(&mut self, url: &RtmpUrl) {
        let body = command("connect", CONNECT_TXN, |b| {
            amf0::write_object(
                b,
                &[
                    ("app", Amf0Value::String(&url.app)),
                    ("flashVer", Amf0Value::String("LNX 9,0,124,2")),
                    ("tcUrl", Amf0Value::String(&url.tc_url)),
                    ("fpad", Amf0Value::Bool(false)),
                    ("capabilities", Amf0Value::Number(15.0)),
                    ("audioCodecs", Amf0Value::Number(4071.0)),
                    ("videoCodecs", Amf0Value::Number(252.0)),
                    ("videoFunction", Amf0Value::Number(1.0)),
                    ("objectEncoding", Amf0Value::Number(0.0)),
                ],
            );
        });
        write_message(&mut self.out, CSID_COMMAND, msg::COMMAND_AMF0, 0, &body);
    }

    fn on_control(
        &mut self,
        type_id: u8,
        body: &[u8],
        url: &RtmpUrl,
        on_event: &mut dyn FnMut(PlayEvent),
    ) -> Result<(), RtmpError> {
        match type_id {
            msg::WINDOW_ACK_SIZE => {
                let b = body.get(..4).ok_or(RtmpError::ShortControl(type_id))?;
                self.server_window_bytes = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            }
            msg::USER_CONTROL => {
                let b = body.get(..2).ok_or(RtmpError::ShortControl(type_id))?;
                if u16::from_be_bytes([b[0], b[1]]) == event::PING_REQUEST {
                    let ts = body.get(2..6).ok_or(RtmpError::ShortControl(type_id))?;
                    let mut reply = event::PING_RESPONSE.to_be_bytes().to_vec();
                    reply.extend_from_slice(ts);
                    write_message(&mut self.out, CSID_CONTROL, msg::USER_CONTROL, 0, &reply);
                }
            }
            msg::DATA_AMF0 | msg::DATA_AMF3 => {
                // onMetaData and the like: counted as the script tags of an FLV stream are.
                on_event(PlayEvent::Tag(TagInfo {
                    kind: TagKind::Script,
                    dts_ms: 0,
                    data_len_bytes: body.len() as u32,
                    video_keyframe: false,
                    config: false,
                }));
            }
            msg::COMMAND_AMF0 => self.on_command(body, url, on_event)?,
            // An AMF3 command message is a format byte (0) and then AMF0 values.
            msg::COMMAND_AMF3 => self.on_command(body.get(1..).unwrap_or(&[]), url, on_event)?,
            _ => {}
        }
        Ok(())
    }

    fn on_command(
        &mut self,
        body: &[u8],
        url: &RtmpUrl,
        on_event: &mut dyn FnMut(PlayEvent),
    ) -> Result<(), RtmpError> {
        let (name, used) = amf0::decode(body).map_err(RtmpError::Amf0)?;
        let name = match name.as_str() {
            Some(n @ ("_result" | "_error" | "onStatus")) => n,
            // onBWDone, _checkbw, |RtmpSampleAccess, ...: nothing to do.
            _ => return Ok(()),
        };
        let rest = body.get(used..).unwrap_or(&[]);
        let args = amf0::decode_all(rest).map_err(RtmpError::Amf0)?;
        let txn = args.first().and_then(Amf0Value::as_number);
        match name {
            "_error" => return Err(RtmpError::Rejected),
            "onStatus" => {
                // onStatus(0, null, {level, code, description}).
                let info = args.get(2);
                let field = |k: &str| info.and_then(|i| i.get(k)).and_then(Amf0Value::as_str);
                if field("level") == Some("error") {
                    return Err(RtmpError::Rejected);
                }
                if field("code") == Some("NetStream.Play.Start") {
                    on_event(PlayEvent::Started);
                }
            }
            _ => match (&self.step, txn) {
                (Step::Connecting, Some(CONNECT_TXN)) => {
                    write_message(
                        &mut self.out,
                        CSID_CONTROL,
                        msg::WINDOW_ACK_SIZE,
                        0,
                        &OUR_WINDOW_BYTES.to_be_bytes(),
                    );
                    let body = command("createStream", CREATE_STREAM_TXN, amf0::write_null);
                    write_message(&mut self.out, CSID_COMMAND, msg::COMMAND_AMF0, 0, &body);
                    self.step = Step::CreatingStream;
                }
                (Step::CreatingStream, Some(CREATE_STREAM_TXN)) => {
                    // _result(2, null, stream id).
                    let id = args
                        .get(2)
                        .and_then(Amf0Value::as_number)
                        .filter(|n| n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(n))
                        .ok_or(RtmpError::BadStreamId)?;
                    self.stream_id = id as u32;
                    self.send_play(url);
                    self.step = Step::Playing;
                }
                _ => {}
            },
        }
        Ok(())
    }

    fn send_play(&mut self, url: &RtmpUrl) {
        let body = command("play", 0.0, |b| {
            amf0::write_null(b);
            amf0::write_string(b, &url.stream);
            amf0::write_number(b, -2.0);
        });
        write_message(
            &mut self.out,
            CSID_PLAY,
            msg::COMMAND_AMF0,
            self.stream_id,
            &body,
        );
        let mut ev = event::SET_BUFFER_LENGTH.to_be_bytes().to_vec();
        ev.extend_from_slice(&self.stream_id.to_be_bytes());
        ev.extend_from_slice(&BUFFER_MS.to_be_bytes());
        write_message(&mut self.out, CSID_CONTROL, msg::USER_CONTROL, 0, &ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn basic_header(fmt: u8, csid: u32) -> Vec<u8> {
        match csid {
            2..=63 => vec![(fmt << 6) | csid as u8],
            64..=319 => vec![fmt << 6, (csid - 64) as u8],
            _ => vec![(fmt << 6) | 1, (csid - 64) as u8, ((csid - 64) >> 8) as u8],
        }
    }

    /// One message as chunks of `chunk_size`: a header of type `fmt`, then type 3 headers.
    /// `ts` is the timestamp field (absolute for type 0, a delta otherwise; for type 3 the
    /// delta the decoder reuses); it goes into an extended timestamp when it does not fit in
    /// 24 bits, repeated in every type 3 chunk, as the spec and nginx-rtmp do.
    #[allow(clippy::too_many_arguments)]
    fn message_chunks(
        fmt: u8,
        csid: u32,
        ts: u32,
        type_id: u8,
        stream_id: u32,
        body: &[u8],
        chunk_size: usize,
    ) -> Vec<Vec<u8>> {
        let ext = ts >= EXTENDED_TS;
        let mut first = basic_header(fmt, csid);
        if fmt < 3 {
            first.extend_from_slice(&ts.min(EXTENDED_TS).to_be_bytes()[1..]);
        }
        if fmt < 2 {
            first.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            first.push(type_id);
        }
        if fmt == 0 {
            first.extend_from_slice(&stream_id.to_le_bytes());
        }
        if ext {
            first.extend_from_slice(&ts.to_be_bytes());
        }
        let mut chunks = Vec::new();
        let mut pieces = body.chunks(chunk_size);
        first.extend_from_slice(pieces.next().unwrap_or(&[]));
        chunks.push(first);
        for piece in pieces {
            let mut c = basic_header(3, csid);
            if ext {
                c.extend_from_slice(&ts.to_be_bytes());
            }
            c.extend_from_slice(piece);
            chunks.push(c);
        }
        chunks
    }

    fn message(fmt: u8, csid: u32, ts: u32, type_id: u8, body: &[u8], cs: usize) -> Vec<u8> {
        message_chunks(fmt, csid, ts, type_id, 1, body, cs).concat()
    }

    fn decode_all(dec: &mut ChunkDecoder, mut input: &[u8]) -> Result<Vec<Message>, RtmpError> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let (n, m) = dec.decode(input)?;
            assert!(n > 0, "no progress on non-empty input");
            out.extend(m);
            input = &input[n..];
        }
        Ok(out)
    }

    fn media(m: &Message) -> TagInfo {
        match m {
            Message::Media(t) => *t,
            other => panic!("not media: {other:?}"),
        }
    }

    fn video_body(keyframe: bool, len: usize) -> Vec<u8> {
        let mut b = vec![if keyframe { 0x17 } else { 0x27 }, 0x01];
        b.resize(len, 0xab);
        b
    }

    /// What a live server sends: a keyframe split over three chunks with an audio message
    /// interleaved between its chunks, then type 1, 2 and 3 headers carrying deltas.
    fn sample_stream() -> Vec<u8> {
        let key = message_chunks(0, 6, 1000, msg::VIDEO, 1, &video_body(true, 300), 128);
        let audio = message(0, 4, 1010, msg::AUDIO, &[0xaf, 0x01, 0x21], 128);
        let mut s = Vec::new();
        s.extend_from_slice(&key[0]);
        s.extend_from_slice(&audio);
        s.extend_from_slice(&key[1]);
        s.extend_from_slice(&key[2]);
        // Inter frames: +33 with a new length (type 1), +33 same length (type 2), then +33
        // again by a bare type 3 header.
        s.extend(message(1, 6, 33, msg::VIDEO, &video_body(false, 200), 128));
        s.extend(message(2, 6, 33, msg::VIDEO, &video_body(false, 200), 128));
        s.extend(message(3, 6, 33, msg::VIDEO, &video_body(false, 200), 128));
        // Audio config on a two-byte basic header csid, then a three-byte one.
        s.extend(message(0, 100, 1000, msg::AUDIO, &[0xaf, 0x00, 0x12], 128));
        s.extend(message(0, 400, 1100, msg::AUDIO, &[0xaf, 0x01], 128));
        s
    }

    #[test]
    fn decodes_interleaved_chunks_and_header_types() {
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        let got = decode_all(&mut dec, &sample_stream()).unwrap();
        let tags: Vec<TagInfo> = got.iter().map(media).collect();
        // The audio completes first: it was sent whole between the keyframe's chunks.
        assert_eq!(
            tags.iter()
                .map(|t| (t.kind, t.dts_ms, t.data_len_bytes))
                .collect::<Vec<_>>(),
            vec![
                (TagKind::Audio, 1010, 3),
                (TagKind::Video, 1000, 300),
                (TagKind::Video, 1033, 200),
                (TagKind::Video, 1066, 200),
                (TagKind::Video, 1099, 200),
                (TagKind::Audio, 1000, 3),
                (TagKind::Audio, 1100, 2),
            ]
        );
        assert!(tags[1].video_keyframe && !tags[1].config);
        assert!(!tags[2].video_keyframe);
        assert!(tags[5].config && !tags[0].config);
    }

    #[test]
    fn any_split_gives_same_messages_byte_at_a_time() {
        let s = sample_stream();
        let whole = decode_all(&mut ChunkDecoder::new(RtmpLimits::default()), &s).unwrap();
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        let mut split = Vec::new();
        for b in &s {
            split.extend(decode_all(&mut dec, std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(whole, split);
        assert_eq!(whole.len(), 7);
    }

    #[test]
    fn extended_timestamps_in_every_header_type() {
        let mut s = Vec::new();
        // Absolute 0x0100_0000 (needs the extension), over three chunks each repeating it.
        s.extend(message(
            0,
            6,
            0x0100_0000,
            msg::VIDEO,
            &video_body(true, 300),
            128,
        ));
        // A delta that needs it too (type 1), then one that does not (type 2).
        s.extend(message(
            1,
            6,
            0x0100_0000,
            msg::VIDEO,
            &video_body(false, 130),
            128,
        ));
        s.extend(message(2, 6, 40, msg::VIDEO, &video_body(false, 130), 128));
        // Exactly 0xFFFFFF must also go into the extension.
        s.extend(message(0, 4, EXTENDED_TS, msg::AUDIO, &[0xaf, 1, 2], 128));
        s.extend(message(3, 4, EXTENDED_TS, msg::AUDIO, &[0xaf, 1, 2], 128));
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        let got: Vec<u32> = decode_all(&mut dec, &s)
            .unwrap()
            .iter()
            .map(|m| media(m).dts_ms)
            .collect();
        assert_eq!(
            got,
            vec![
                0x0100_0000,
                0x0200_0000,
                0x0200_0028,
                EXTENDED_TS,
                // A type 3 header after type 0 adds the first message's timestamp again
                // (spec 5.3.1.2.4); it wraps at 2^32.
                EXTENDED_TS.wrapping_mul(2),
            ]
        );
        // A type 3 header that starts a message takes its delta from its own extension.
        let mut s = message(0, 7, 0x0100_0000, msg::VIDEO, &video_body(true, 10), 128);
        s.extend(message(
            3,
            7,
            0x0100_0010,
            msg::VIDEO,
            &video_body(false, 10),
            128,
        ));
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        let got: Vec<u32> = decode_all(&mut dec, &s)
            .unwrap()
            .iter()
            .map(|m| media(m).dts_ms)
            .collect();
        assert_eq!(got, vec![0x0100_0000, 0x0200_0010]);
        // Without the repeated extension in the continuation chunks the bytes are read as
        // the next chunk header and the decoder fails (or mis-reads): the rule matters.
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        let mut no_repeat = message_chunks(0, 6, 0x0100_0000, msg::VIDEO, 1, &[0x17; 300], 128);
        for c in &mut no_repeat[1..] {
            c.drain(1..5);
        }
        assert_ne!(
            decode_all(&mut dec, &no_repeat.concat()).map(|m| m.len()),
            Ok(1)
        );
    }

    #[test]
    fn set_chunk_size_applies_to_the_next_chunks() {
        for size in [1u32, 129, 4096, 60_000, EXTENDED_TS, 0x7fff_ffff] {
            let mut s = message(0, 2, 0, msg::SET_CHUNK_SIZE, &size.to_be_bytes(), 128);
            let body = video_body(true, 70_000);
            s.extend(message(0, 6, 5, msg::VIDEO, &body, size as usize));
            s.extend(message(
                1,
                6,
                5,
                msg::VIDEO,
                &video_body(false, 3),
                size as usize,
            ));
            let mut dec = ChunkDecoder::new(RtmpLimits::default());
            let got = decode_all(&mut dec, &s).unwrap();
            assert_eq!(got[0], Message::ChunkSize(size));
            assert_eq!(dec.chunk_size(), size);
            assert_eq!(media(&got[1]).data_len_bytes, 70_000, "chunk size {size}");
            assert_eq!(media(&got[2]).dts_ms, 10);
            assert_eq!(got.len(), 3);
        }
        // Decoded with the old size, the same bytes go wrong.
        let mut s = message(0, 6, 5, msg::VIDEO, &video_body(true, 300), 4096);
        s.extend(message(1, 6, 5, msg::VIDEO, &video_body(false, 3), 4096));
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        assert!(decode_all(&mut dec, &s).map(|m| m.len()) != Ok(2));
        for bad in [0u32, 0x8000_0000] {
            let s = message(0, 2, 0, msg::SET_CHUNK_SIZE, &bad.to_be_bytes(), 128);
            let mut dec = ChunkDecoder::new(RtmpLimits::default());
            assert_eq!(decode_all(&mut dec, &s), Err(RtmpError::BadChunkSize(bad)));
        }
        let s = message(0, 2, 0, msg::SET_CHUNK_SIZE, &[0, 1], 128);
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        assert_eq!(
            decode_all(&mut dec, &s),
            Err(RtmpError::ShortControl(msg::SET_CHUNK_SIZE))
        );
    }

    #[test]
    fn abort_drops_the_partial_message() {
        let key = message_chunks(0, 6, 1000, msg::VIDEO, 1, &video_body(true, 300), 128);
        let mut s = key[0].clone();
        s.extend(message(0, 2, 0, msg::ABORT, &6u32.to_be_bytes(), 128));
        // A new message on the same chunk stream; its type 1 header would be an error
        // mid-message, so this also checks that the abort reset the stream.
        s.extend(message(1, 6, 33, msg::VIDEO, &video_body(false, 10), 128));
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        let got = decode_all(&mut dec, &s).unwrap();
        assert_eq!(got[0], Message::Aborted(6));
        assert_eq!(
            (media(&got[1]).dts_ms, media(&got[1]).data_len_bytes),
            (1033, 10)
        );
        assert_eq!(got.len(), 2);
        // Without the abort the same header is a protocol error.
        let mut s = key[0].clone();
        s.extend(message(1, 6, 33, msg::VIDEO, &video_body(false, 10), 128));
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        assert_eq!(
            decode_all(&mut dec, &s),
            Err(RtmpError::HeaderMidMessage(6))
        );
    }

    #[test]
    fn aggregate_splits_into_sub_messages_with_its_timestamp() {
        let mut body = Vec::new();
        body.extend(flv::tests::tag(9, 500, &video_body(true, 40)));
        body.extend(flv::tests::tag(8, 510, &[0xaf, 0x01, 7]));
        body.extend(flv::tests::tag(9, 533, &video_body(false, 20)));
        // The aggregate says 2000: sub-messages move by 2000 - 500.
        // In chunks of 50 bytes, so that tags straddle chunks.
        let mut s = message(0, 2, 0, msg::SET_CHUNK_SIZE, &50u32.to_be_bytes(), 128);
        s.extend(message(0, 6, 2000, msg::AGGREGATE, &body, 50));
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        let got: Vec<(TagKind, u32, bool)> = decode_all(&mut dec, &s)
            .unwrap()
            .iter()
            .skip(1)
            .map(|m| {
                let t = media(m);
                (t.kind, t.dts_ms, t.video_keyframe)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (TagKind::Video, 2000, true),
                (TagKind::Audio, 2010, false),
                (TagKind::Video, 2033, false)
            ]
        );
        // An aggregate that ends inside a tag is malformed.
        let s = message(0, 6, 0, msg::AGGREGATE, &body[..body.len() - 6], 4096);
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        assert_eq!(decode_all(&mut dec, &s), Err(RtmpError::AggregateTruncated));
    }

    #[test]
    fn protocol_errors() {
        let limits = RtmpLimits::default();
        let mut dec = ChunkDecoder::new(limits);
        assert_eq!(
            decode_all(&mut dec, &message(1, 9, 0, msg::VIDEO, &[0x17], 128)),
            Err(RtmpError::UnknownChunkStream(9))
        );
        let mut dec = ChunkDecoder::new(limits);
        let mut s = Vec::new();
        for csid in 0..=limits.max_chunk_streams as u32 {
            s.extend(message(0, 3 + csid, 0, msg::AUDIO, &[0xaf, 1], 128));
        }
        assert_eq!(
            decode_all(&mut dec, &s),
            Err(RtmpError::TooManyChunkStreams)
        );
        let mut dec = ChunkDecoder::new(limits);
        let big = vec![0; limits.max_control_message_bytes as usize + 1];
        assert_eq!(
            decode_all(&mut dec, &message(0, 3, 0, msg::COMMAND_AMF0, &big, 128)),
            Err(RtmpError::MessageTooLarge {
                type_id: msg::COMMAND_AMF0,
                length_bytes: big.len() as u32
            })
        );
        // A media message of the same size is fine: it is not kept.
        let mut dec = ChunkDecoder::new(limits);
        let got = decode_all(&mut dec, &message(0, 3, 0, msg::VIDEO, &big, 128)).unwrap();
        assert_eq!(got.len(), 1);
    }

    // --- the session ---------------------------------------------------------------------

    fn url() -> RtmpUrl {
        RtmpUrl {
            app: "live".into(),
            stream: "s".into(),
            tc_url: "rtmp://127.0.0.1:1935/live".into(),
        }
    }

    /// Decodes what the client sent (after C0C1 and C2) as (type, stream id, AMF0 command
    /// name or raw body).
    fn sent_messages(bytes: &[u8]) -> Vec<(u8, u32, String, Vec<u8>)> {
        let mut dec = ChunkDecoder::new(RtmpLimits::default());
        decode_all(&mut dec, bytes)
            .unwrap()
            .into_iter()
            .map(|m| match m {
                Message::Control {
                    type_id,
                    stream_id,
                    body,
                } => {
                    let name = if type_id == msg::COMMAND_AMF0 {
                        amf0::decode(&body)
                            .ok()
                            .and_then(|(v, _)| v.as_str().map(str::to_string))
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    (type_id, stream_id, name, body)
                }
                other => panic!("client sent {other:?}"),
            })
            .collect()
    }

    fn take_out(p: &mut RtmpPlay) -> Vec<u8> {
        let out = p.pending_out().to_vec();
        p.sent_out(out.len());
        out
    }

    fn server_command(stream_id: u32, values: &[Amf0Value<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for v in values {
            amf0::write_value(&mut body, v);
        }
        message_chunks(0, 3, 0, msg::COMMAND_AMF0, stream_id, &body, 128).concat()
    }

    fn feed(p: &mut RtmpPlay, bytes: &[u8]) -> Result<Vec<PlayEvent>, RtmpError> {
        let mut events = Vec::new();
        // Small pieces: the session must not care how reads split.
        for piece in bytes.chunks(7) {
            p.on_bytes(piece, &url(), &mut |e| events.push(e))?;
        }
        Ok(events)
    }

    /// A session through the handshake and up to `play`.
    fn playing_session() -> RtmpPlay {
        let mut p = RtmpPlay::new(RtmpLimits::default(), 42);
        let c0c1 = take_out(&mut p);
        assert_eq!((c0c1.len(), c0c1[0]), (1 + HANDSHAKE_BYTES, RTMP_VERSION));
        assert!(
            p.out.capacity() <= OUT_KEEP_BYTES,
            "C0C1's buffer is let go"
        );
        let s1: Vec<u8> = (0..HANDSHAKE_BYTES).map(|i| (i * 7) as u8).collect();
        let mut hs = vec![RTMP_VERSION];
        hs.extend_from_slice(&s1);
        feed(&mut p, &hs).unwrap();
        assert_eq!(take_out(&mut p), s1, "C2 echoes S1, before S2 arrives");
        feed(&mut p, &c0c1[1..]).unwrap();
        let sent = sent_messages(&take_out(&mut p));
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].0, sent[0].2.as_str()),
            (msg::COMMAND_AMF0, "connect")
        );
        let values = amf0::decode_all(&sent[0].3).unwrap();
        assert_eq!(values[1].as_number(), Some(CONNECT_TXN));
        let get = |k: &str| values[2].get(k).cloned();
        assert_eq!(get("app"), Some(Amf0Value::String("live")));
        assert_eq!(
            get("tcUrl"),
            Some(Amf0Value::String("rtmp://127.0.0.1:1935/live"))
        );
        assert_eq!(get("objectEncoding"), Some(Amf0Value::Number(0.0)));

        // Acknowledgements every 5,000 bytes: none yet (the handshake was 3,073).
        let mut s = message(0, 2, 0, msg::WINDOW_ACK_SIZE, &10_000u32.to_be_bytes(), 128);
        s.extend(message(
            0,
            2,
            0,
            msg::SET_PEER_BANDWIDTH,
            &[0, 0, 3, 0xe8, 2],
            128,
        ));
        s.extend(message(
            0,
            2,
            0,
            msg::SET_CHUNK_SIZE,
            &4096u32.to_be_bytes(),
            128,
        ));
        s.extend(server_command(
            0,
            &[
                Amf0Value::String("_result"),
                Amf0Value::Number(1.0),
                Amf0Value::Null,
                Amf0Value::Object(vec![(
                    "code",
                    Amf0Value::String("NetConnection.Connect.Success"),
                )]),
            ],
        ));
        feed(&mut p, &s).unwrap();
        let sent = sent_messages(&take_out(&mut p));
        let kinds: Vec<(u8, &str)> = sent.iter().map(|m| (m.0, m.2.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (msg::WINDOW_ACK_SIZE, ""),
                (msg::COMMAND_AMF0, "createStream")
            ]
        );
        feed(
            &mut p,
            &server_command(
                0,
                &[
                    Amf0Value::String("_result"),
                    Amf0Value::Number(2.0),
                    Amf0Value::Null,
                    Amf0Value::Number(7.0),
                ],
            ),
        )
        .unwrap();
        let sent = sent_messages(&take_out(&mut p));
        assert_eq!(sent.len(), 2);
        assert_eq!(
            (sent[0].0, sent[0].1, sent[0].2.as_str()),
            (msg::COMMAND_AMF0, 7, "play")
        );
        let play = amf0::decode_all(&sent[0].3).unwrap();
        assert_eq!(play[3], Amf0Value::String("s"));
        assert_eq!(play[4], Amf0Value::Number(-2.0));
        // Set Buffer Length for stream 7.
        assert_eq!(sent[1].0, msg::USER_CONTROL);
        assert_eq!(sent[1].3, [0, 3, 0, 0, 0, 7, 0, 0, 0x0b, 0xb8]);
        p
    }

    #[test]
    fn session_handshakes_connects_and_plays() {
        let mut p = playing_session();
        let status = server_command(
            7,
            &[
                Amf0Value::String("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::Object(vec![
                    ("level", Amf0Value::String("status")),
                    ("code", Amf0Value::String("NetStream.Play.Start")),
                ]),
            ],
        );
        let mut s = status;
        let mut meta = Vec::new();
        amf0::write_string(&mut meta, "onMetaData");
        s.extend(message(0, 5, 0, msg::DATA_AMF0, &meta, 4096));
        s.extend(message(
            0,
            6,
            40,
            msg::VIDEO,
            &video_body(true, 20_000),
            4096,
        ));
        s.extend(message(
            0,
            2,
            0,
            msg::USER_CONTROL,
            &[0, 6, 1, 2, 3, 4],
            4096,
        ));
        let events = feed(&mut p, &s).unwrap();
        assert_eq!(events[0], PlayEvent::Started);
        assert!(matches!(events[1], PlayEvent::Tag(t) if t.kind == TagKind::Script));
        assert!(
            matches!(events[2], PlayEvent::Tag(t) if t.video_keyframe && t.dts_ms == 40 && t.data_len_bytes == 20_000)
        );
        assert_eq!(events.len(), 3);
        let sent = sent_messages(&take_out(&mut p));
        // The ping answered; an acknowledgement for each half window (5,000 bytes) crossed.
        let pongs: Vec<_> = sent.iter().filter(|m| m.0 == msg::USER_CONTROL).collect();
        assert_eq!(pongs.len(), 1);
        assert_eq!(pongs[0].3, [0, 7, 1, 2, 3, 4]);
        let acks: Vec<u32> = sent
            .iter()
            .filter(|m| m.0 == msg::ACK)
            .map(|m| u32::from_be_bytes(m.3[..4].try_into().unwrap()))
            .collect();
        assert!(acks.len() >= 3, "{acks:?}");
        assert!(acks.windows(2).all(|w| w[1] - w[0] >= 5000), "{acks:?}");
        assert!(acks[0] >= 5000, "{acks:?}");
        assert!(p.received_bytes - u64::from(*acks.last().unwrap()) < 5000);
    }

    #[test]
    fn session_rejections() {
        let error_status = server_command(
            7,
            &[
                Amf0Value::String("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                Amf0Value::Object(vec![
                    ("level", Amf0Value::String("error")),
                    ("code", Amf0Value::String("NetStream.Play.StreamNotFound")),
                ]),
            ],
        );
        assert_eq!(
            feed(&mut playing_session(), &error_status),
            Err(RtmpError::Rejected)
        );
        let error = server_command(
            0,
            &[
                Amf0Value::String("_error"),
                Amf0Value::Number(2.0),
                Amf0Value::Null,
            ],
        );
        assert_eq!(
            feed(&mut playing_session(), &error),
            Err(RtmpError::Rejected)
        );
        let mut p = RtmpPlay::new(RtmpLimits::default(), 1);
        assert_eq!(feed(&mut p, &[6; 1537]), Err(RtmpError::BadVersion(6)));
    }

    proptest! {
        /// Splitting the input anywhere must not change the messages.
        #[test]
        fn any_split_gives_same_messages(cuts in proptest::collection::vec(0usize..2000, 0..16)) {
            let s = sample_stream();
            let whole = decode_all(&mut ChunkDecoder::new(RtmpLimits::default()), &s).unwrap();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (s.len() + 1)).collect();
            cuts.sort_unstable();
            let mut dec = ChunkDecoder::new(RtmpLimits::default());
            let mut got = Vec::new();
            let mut start = 0;
            for c in cuts.into_iter().chain(std::iter::once(s.len())) {
                got.extend(decode_all(&mut dec, &s[start..c]).unwrap());
                start = c;
            }
            prop_assert_eq!(whole, got);
        }

        /// Arbitrary bytes never panic the decoder or the session, and always make progress.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = decode_all(&mut ChunkDecoder::new(RtmpLimits::default()), &data);
            let mut p = playing_session();
            let _ = feed(&mut p, &data);
        }
    }
}
