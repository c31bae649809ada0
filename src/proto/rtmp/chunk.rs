//! The chunk stream (RTMP spec 5.3): messages cut into chunks, interleaved over chunk stream
//! ids, with headers compressed against the previous message of the same chunk stream.
//!
//! Decoding rules, including the places where clients disagree:
//! - Header types 0-3 and 1/2/3-byte basic headers (csid 2..=65599).
//! - Type 1/2 timestamps are deltas added (wrapping) to the chunk stream's last timestamp.
//!   A type-3 chunk that starts a message adds the last delta again; after a type 0 the
//!   "delta" is the type-0 timestamp field itself, which is what ffmpeg's and SRS's readers
//!   assume and what ffmpeg's writer relies on.
//! - Extended timestamps (field `0xFFFFFF` + 4 bytes). On a type-3 chunk of a chunk stream
//!   whose last type 0/1/2 header had one, clients disagree on whether to repeat it, so we
//!   peek: if the next 4 bytes equal the stored extended value they are consumed, otherwise
//!   they are payload (as ffmpeg's and SRS's readers do); a mismatch is seen as soon as the
//!   first differing byte arrives. For continuation chunks (inside a message) the answer of
//!   the connection's first one is kept (a client does not change its convention), so
//!   payload that happens to start with the timestamp's bytes in a later chunk — or a short
//!   final chunk that starts like them — is not mistaken for a repeat.
//! - A chunk stream's first chunk must be type 0 or 1 (librtmp sends its first ping as type
//!   1); type 0/1/2 inside a message is an error, not a silent restart.
//! - A message buffer holds `[room before][payload][room after]`, so the payload is copied
//!   once, from the input into the buffer the caller keeps. See
//!   [`RtmpLimits::buffered_bytes_max`] for how buffers are reserved and bounded.

use std::ops::Range;

use bytes::BytesMut;

use super::RtmpLimits;
use super::error::{ErrorKind, RtmpError};

/// Chunk size in both directions until a Set Chunk Size says otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk stream id a 3-byte basic header can carry.
pub const CSID_MAX: u32 = 65599;
/// Largest effective chunk size: a message is at most this long.
pub const CHUNK_SIZE_MAX: u32 = 0xFF_FFFF;
/// The timestamp field value that announces an extended timestamp.
const TIMESTAMP_EXTENDED: u32 = 0xFF_FFFF;
/// Basic header (3) + type-0 message header (11) + extended timestamp (4).
const HEADER_MAX: usize = 18;

/// One complete message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub csid: u32,
    pub msg_type: u8,
    /// Absolute timestamp (deltas applied, wrapping at 2^32).
    pub timestamp: u32,
    pub stream_id: u32,
    /// `[room before][payload][room after]`, room bytes zero.
    pub buf: BytesMut,
    /// Where the payload sits in `buf`.
    pub payload: Range<usize>,
}

impl Message {
    /// The message payload.
    pub fn payload(&self) -> &[u8] {
        self.buf.get(self.payload.clone()).unwrap_or_default()
    }
}

/// A message being reassembled.
struct Partial {
    buf: BytesMut,
    before: usize,
    after: usize,
    received: u32,
    /// Capacity counted in [`ChunkDecoder::buffered`] for this buffer.
    counted: usize,
}

/// Per chunk stream state: the last header values, and the message in progress.
struct ChunkStream {
    csid: u32,
    timestamp: u32,
    /// The delta a type-3 chunk starting a message adds (see the module docs), which is also
    /// the extended timestamp value a type-3 chunk may repeat.
    ts_field: u32,
    /// Whether the last type 0/1/2 header carried an extended timestamp.
    extended: bool,
    length: u32,
    msg_type: u8,
    stream_id: u32,
    partial: Option<Partial>,
}

/// A parsed chunk header.
#[derive(Clone, Copy, Debug)]
struct Header {
    fmt: u8,
    csid: u32,
    /// Bytes the header took.
    len: usize,
    /// Timestamp or delta (extended value resolved); unused for type 3.
    ts: u32,
    /// A type 0/1/2 header with an extended timestamp, or a type-3 header that repeated it.
    extended: bool,
    length: u32,
    msg_type: u8,
    stream_id: u32,
}

enum Parse {
    Need,
    Done(Header),
}

fn u24(b: &[u8]) -> u32 {
    b.iter()
        .take(3)
        .fold(0, |acc, &x| (acc << 8) | u32::from(x))
}

fn u32_be(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// Reassembles messages from chunks, bounded by [`RtmpLimits`].
pub struct ChunkDecoder {
    limits: RtmpLimits,
    chunk_size: u32,
    room_before: usize,
    room_after: usize,
    streams: Vec<ChunkStream>,
    /// Received bytes not yet used: a header split across inputs, or payload bytes a type-3
    /// peek looked at and gave back. Never more than [`HEADER_MAX`].
    carry: [u8; HEADER_MAX],
    carry_len: usize,
    /// The chunk whose payload is being read: stream index and payload bytes left.
    current: Option<(usize, u32)>,
    /// Capacity of all partial message buffers.
    buffered: usize,
    /// Type-3 chunks on an extended-timestamp chunk stream that repeated it / did not.
    extended_repeated: u64,
    extended_omitted: u64,
    /// Whether this peer repeats the extended timestamp on type-3 chunks, once seen.
    repeats_extended: Option<bool>,
}

impl ChunkDecoder {
    pub fn new(limits: RtmpLimits) -> Self {
        Self {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            room_before: 0,
            room_after: 0,
            streams: Vec::new(),
            carry: [0; HEADER_MAX],
            carry_len: 0,
            current: None,
            buffered: 0,
            extended_repeated: 0,
            extended_omitted: 0,
            repeats_extended: None,
        }
    }

    /// Room around the payload of messages that start from now on.
    pub fn set_room(&mut self, before: usize, after: usize) {
        self.room_before = before;
        self.room_after = after;
    }

    /// The peer's chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Bytes reserved for incomplete messages.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Type-3 chunks seen on chunk streams whose last header had an extended timestamp:
    /// `(repeated it, did not)`. Tells which convention a client follows.
    pub fn extended_type3_counts(&self) -> (u64, u64) {
        (self.extended_repeated, self.extended_omitted)
    }

    /// Applies the peer's Set Chunk Size (for chunks after the message that carried it).
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), RtmpError> {
        if size == 0 || size & 0x8000_0000 != 0 {
            return Err(ErrorKind::ChunkSize(size).into());
        }
        let effective = size.min(CHUNK_SIZE_MAX);
        if effective > self.limits.chunk_size_max {
            return Err(ErrorKind::ChunkSize(size).into());
        }
        self.chunk_size = effective;
        Ok(())
    }

    /// Drops the partial message of `csid` (Abort message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(stream) = self.streams.iter_mut().find(|s| s.csid == csid)
            && let Some(partial) = stream.partial.take()
        {
            self.buffered -= partial.counted;
        }
    }

    /// Consumes bytes from the front of `input` until a message completes (returned) or the
    /// input is used up (`Ok(None)`; everything was consumed). `held_elsewhere` is what the
    /// caller holds for the peer besides this decoder, counted against
    /// [`RtmpLimits::buffered_bytes_max`].
    pub fn decode(
        &mut self,
        input: &mut &[u8],
        held_elsewhere: usize,
    ) -> Result<Option<Message>, RtmpError> {
        loop {
            if let Some((index, left)) = self.current {
                let data: &[u8] = if self.carry_len > 0 {
                    &self.carry[..self.carry_len]
                } else {
                    input
                };
                if data.is_empty() {
                    return Ok(None);
                }
                let take = (left as usize).min(data.len());
                let piece: [u8; HEADER_MAX];
                let from_carry = self.carry_len > 0;
                let bytes: &[u8] = if from_carry {
                    let mut copy = [0u8; HEADER_MAX];
                    copy[..take].copy_from_slice(&self.carry[..take]);
                    piece = copy;
                    self.carry.copy_within(take..self.carry_len, 0);
                    self.carry_len -= take;
                    &piece[..take]
                } else {
                    let (head, rest) = input.split_at(take);
                    *input = rest;
                    head
                };
                self.append(index, bytes, held_elsewhere)?;
                let left = left - take as u32;
                if left > 0 {
                    self.current = Some((index, left));
                    continue;
                }
                self.current = None;
                if let Some(message) = self.finish_if_complete(index) {
                    return Ok(Some(message));
                }
                continue;
            }

            let header = if self.carry_len == 0 {
                if input.is_empty() {
                    return Ok(None);
                }
                match self.parse_header(input)? {
                    Parse::Done(header) => {
                        *input = input.get(header.len..).unwrap_or_default();
                        header
                    }
                    Parse::Need => {
                        // Need means fewer bytes than the header's length, which is at most
                        // HEADER_MAX.
                        let n = input.len().min(HEADER_MAX);
                        self.carry[..n].copy_from_slice(&input[..n]);
                        self.carry_len = n;
                        *input = input.get(n..).unwrap_or_default();
                        return Ok(None);
                    }
                }
            } else {
                loop {
                    if let Parse::Done(header) = self.parse_header(&self.carry[..self.carry_len])? {
                        self.carry.copy_within(header.len..self.carry_len, 0);
                        self.carry_len -= header.len;
                        break header;
                    }
                    let Some((&byte, rest)) = input.split_first() else {
                        return Ok(None);
                    };
                    let Some(slot) = self.carry.get_mut(self.carry_len) else {
                        // Unreachable: a header is complete within HEADER_MAX bytes.
                        return Err(ErrorKind::ChunkSequence { csid: 0, fmt: 0 }.into());
                    };
                    *slot = byte;
                    self.carry_len += 1;
                    *input = rest;
                }
            };
            if let Some(message) = self.start_chunk(header, held_elsewhere)? {
                return Ok(Some(message));
            }
        }
    }

    /// Parses a chunk header at the start of `bytes`, or says more bytes are needed.
    fn parse_header(&self, bytes: &[u8]) -> Result<Parse, RtmpError> {
        let Some(&first) = bytes.first() else {
            return Ok(Parse::Need);
        };
        let fmt = first >> 6;
        let (csid, basic_len) = match first & 0x3F {
            0 => match bytes.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(Parse::Need),
            },
            1 => match (bytes.get(1), bytes.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + 256 * u32::from(b2), 3),
                _ => return Ok(Parse::Need),
            },
            low => (u32::from(low), 1),
        };
        let stream = self.streams.iter().find(|s| s.csid == csid);
        if stream.is_none() && fmt >= 2 {
            return Err(ErrorKind::ChunkSequence { csid, fmt }.into());
        }
        let message_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(fields) = bytes.get(basic_len..basic_len + message_len) else {
            return Ok(Parse::Need);
        };
        let mut header = Header {
            fmt,
            csid,
            len: basic_len + message_len,
            ts: 0,
            extended: false,
            length: 0,
            msg_type: 0,
            stream_id: 0,
        };
        if fmt == 3 {
            // Peek for a repeated extended timestamp (module docs).
            if let Some(stream) = stream
                && stream.extended
            {
                let available = bytes.get(header.len..).unwrap_or_default();
                // Only continuation chunks follow the learned convention: a type-3 chunk
                // that starts a message carries the field in every client we know of.
                let learned = self.repeats_extended.filter(|_| stream.partial.is_some());
                match learned {
                    Some(false) => return Ok(Parse::Done(header)),
                    Some(true) if available.len() < 4 => return Ok(Parse::Need),
                    Some(true) => {}
                    None => {
                        let expected = stream.ts_field.to_be_bytes();
                        let k = available.len().min(4);
                        if available[..k] != expected[..k] {
                            return Ok(Parse::Done(header));
                        }
                        if k < 4 {
                            return Ok(Parse::Need);
                        }
                    }
                }
                header.len += 4;
                header.extended = true;
            }
            return Ok(Parse::Done(header));
        }
        header.ts = u24(fields);
        if fmt <= 1 {
            header.length = u24(fields.get(3..).unwrap_or_default());
            header.msg_type = fields.get(6).copied().unwrap_or_default();
        }
        if fmt == 0 {
            let id = fields.get(7..11).unwrap_or_default();
            header.stream_id = id.try_into().map(u32::from_le_bytes).unwrap_or_default();
        }
        if header.ts == TIMESTAMP_EXTENDED {
            let Some(ext) = bytes.get(header.len..).and_then(u32_be) else {
                return Ok(Parse::Need);
            };
            header.ts = ext;
            header.extended = true;
            header.len += 4;
        }
        Ok(Parse::Done(header))
    }

    /// Applies a chunk header; returns a message that is already complete (zero length).
    fn start_chunk(
        &mut self,
        header: Header,
        held_elsewhere: usize,
    ) -> Result<Option<Message>, RtmpError> {
        let index = match self.streams.iter().position(|s| s.csid == header.csid) {
            Some(index) => index,
            None => {
                if self.streams.len() >= self.limits.chunk_streams_max as usize {
                    return Err(ErrorKind::ChunkStreams {
                        max: self.limits.chunk_streams_max,
                    }
                    .into());
                }
                self.streams.push(ChunkStream {
                    csid: header.csid,
                    timestamp: 0,
                    ts_field: 0,
                    extended: false,
                    length: 0,
                    msg_type: 0,
                    stream_id: 0,
                    partial: None,
                });
                self.streams.len() - 1
            }
        };
        let chunk_size = self.chunk_size;
        let Some(stream) = self.streams.get_mut(index) else {
            return Ok(None);
        };
        if header.fmt == 3 && stream.extended {
            if header.extended {
                self.extended_repeated += 1;
            } else {
                self.extended_omitted += 1;
            }
            if stream.partial.is_some() {
                self.repeats_extended.get_or_insert(header.extended);
            }
        }
        if let Some(partial) = &stream.partial {
            if header.fmt != 3 {
                return Err(ErrorKind::ChunkSequence {
                    csid: header.csid,
                    fmt: header.fmt,
                }
                .into());
            }
            let left = (stream.length - partial.received).min(chunk_size);
            self.current = Some((index, left));
            return Ok(None);
        }
        match header.fmt {
            0 => {
                stream.timestamp = header.ts;
                stream.ts_field = header.ts;
                stream.extended = header.extended;
                stream.length = header.length;
                stream.msg_type = header.msg_type;
                stream.stream_id = header.stream_id;
            }
            1 | 2 => {
                stream.timestamp = stream.timestamp.wrapping_add(header.ts);
                stream.ts_field = header.ts;
                stream.extended = header.extended;
                if header.fmt == 1 {
                    stream.length = header.length;
                    stream.msg_type = header.msg_type;
                }
            }
            _ => stream.timestamp = stream.timestamp.wrapping_add(stream.ts_field),
        }
        if stream.length > self.limits.message_bytes_max {
            return Err(ErrorKind::MessageTooLarge {
                len: stream.length,
                max: self.limits.message_bytes_max,
            }
            .into());
        }
        let (before, after) = (self.room_before, self.room_after);
        let length = stream.length as usize;
        let full = before + length + after;
        let first = length.min(chunk_size as usize);
        let budget = self.limits.buffered_bytes_max as usize;
        let capacity = if self.buffered + held_elsewhere + full <= budget {
            full
        } else {
            before + first + if first == length { after } else { 0 }
        };
        let mut buf = BytesMut::with_capacity(capacity);
        buf.resize(before, 0);
        let counted = buf.capacity();
        stream.partial = Some(Partial {
            buf,
            before,
            after,
            received: 0,
            counted,
        });
        self.buffered += counted;
        self.check_budget(held_elsewhere)?;
        if length == 0 {
            return Ok(self.finish_if_complete(index));
        }
        self.current = Some((index, first as u32));
        Ok(None)
    }

    fn check_budget(&self, held_elsewhere: usize) -> Result<(), RtmpError> {
        let held = self.buffered + held_elsewhere;
        if held > self.limits.buffered_bytes_max as usize {
            return Err(ErrorKind::BufferedTooLarge {
                held,
                max: self.limits.buffered_bytes_max,
            }
            .into());
        }
        Ok(())
    }

    /// Copies payload bytes into the message buffer, growing it within the budget.
    fn append(
        &mut self,
        index: usize,
        data: &[u8],
        held_elsewhere: usize,
    ) -> Result<(), RtmpError> {
        let Some(stream) = self.streams.get_mut(index) else {
            return Ok(());
        };
        let length = stream.length as usize;
        let Some(partial) = stream.partial.as_mut() else {
            return Ok(());
        };
        let received = partial.received as usize + data.len();
        let last = received == length;
        let needed = partial.buf.len() + data.len() + if last { partial.after } else { 0 };
        if needed > partial.buf.capacity() {
            let full = partial.before + length + partial.after;
            let target = full.min(needed.max(partial.buf.capacity() * 2));
            partial.buf.reserve(target - partial.buf.len());
            let grown = partial.buf.capacity() - partial.counted;
            partial.counted += grown;
            partial.buf.extend_from_slice(data);
            partial.received = received as u32;
            self.buffered += grown;
            return self.check_budget(held_elsewhere);
        }
        partial.buf.extend_from_slice(data);
        partial.received = received as u32;
        Ok(())
    }

    fn finish_if_complete(&mut self, index: usize) -> Option<Message> {
        let stream = self.streams.get_mut(index)?;
        if stream.partial.as_ref()?.received != stream.length {
            return None;
        }
        let mut partial = stream.partial.take()?;
        self.buffered -= partial.counted;
        let end = partial.before + stream.length as usize;
        partial.buf.resize(end + partial.after, 0);
        Some(Message {
            csid: stream.csid,
            msg_type: stream.msg_type,
            timestamp: stream.timestamp,
            stream_id: stream.stream_id,
            buf: partial.buf,
            payload: partial.before..end,
        })
    }
}

/// Last header sent on a chunk stream, for compression.
struct EncoderStream {
    csid: u32,
    timestamp: u32,
    ts_field: u32,
    extended: bool,
    length: u32,
    msg_type: u8,
    stream_id: u32,
}

/// Cuts messages into chunks.
///
/// With compression (the default) headers are type 1/2/3 when the previous message on the
/// chunk stream allows it, as ffmpeg's writer does; without it every message starts with a
/// type-0 header, which the session uses so that media the server frames itself (always type
/// 0, see [`super::write_message_header`]) never leaves the peer with header state we do not
/// know.
pub struct ChunkEncoder {
    chunk_size: u32,
    compress: bool,
    repeat_extended: bool,
    streams: Vec<EncoderStream>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// Chunk size 128, compressed headers, extended timestamps repeated on continuation chunks.
    pub fn new() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            compress: true,
            repeat_extended: true,
            streams: Vec::new(),
        }
    }

    /// Every message starts with a type-0 header.
    pub fn uncompressed() -> Self {
        Self {
            compress: false,
            ..Self::new()
        }
    }

    /// Whether type-3 continuation chunks repeat the extended timestamp (the spec and ffmpeg
    /// do; some clients do not). Type-3 chunks that start a message always carry it.
    pub fn set_repeat_extended(&mut self, repeat: bool) {
        self.repeat_extended = repeat;
    }

    /// The chunk size for messages written from now on (after sending Set Chunk Size).
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn set_chunk_size(&mut self, size: u32) {
        assert!(size > 0, "chunk size 0");
        self.chunk_size = size.min(CHUNK_SIZE_MAX);
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Appends the chunks of one message to `out`.
    ///
    /// # Panics
    /// If `csid` is outside `2..=65599` or the payload is longer than `0xFF_FFFF` bytes.
    pub fn write_message(
        &mut self,
        csid: u32,
        msg_type: u8,
        timestamp: u32,
        stream_id: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        self.encode(
            csid,
            msg_type,
            timestamp,
            stream_id,
            payload,
            |header, piece| {
                out.extend_from_slice(header);
                out.extend_from_slice(piece);
            },
        );
    }

    /// The chunks of one message, each as its own buffer (to interleave chunk streams).
    ///
    /// # Panics
    /// As [`ChunkEncoder::write_message`].
    pub fn message_chunks(
        &mut self,
        csid: u32,
        msg_type: u8,
        timestamp: u32,
        stream_id: u32,
        payload: &[u8],
    ) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        self.encode(
            csid,
            msg_type,
            timestamp,
            stream_id,
            payload,
            |header, piece| {
                let mut chunk = Vec::with_capacity(header.len() + piece.len());
                chunk.extend_from_slice(header);
                chunk.extend_from_slice(piece);
                chunks.push(chunk);
            },
        );
        chunks
    }

    fn encode(
        &mut self,
        csid: u32,
        msg_type: u8,
        timestamp: u32,
        stream_id: u32,
        payload: &[u8],
        mut emit: impl FnMut(&[u8], &[u8]),
    ) {
        assert!((2..=CSID_MAX).contains(&csid), "csid {csid} out of range");
        let length = u32::try_from(payload.len())
            .ok()
            .filter(|&len| len <= 0xFF_FFFF)
            .expect("RTMP message longer than 0xFFFFFF bytes");
        let index = self.streams.iter().position(|s| s.csid == csid);
        let previous = index
            .and_then(|i| self.streams.get(i))
            .filter(|_| self.compress);
        let fmt = match previous {
            Some(p) if p.stream_id == stream_id && timestamp >= p.timestamp => {
                let delta = timestamp - p.timestamp;
                if p.length == length && p.msg_type == msg_type {
                    if delta == p.ts_field { 3 } else { 2 }
                } else {
                    1
                }
            }
            _ => 0u8,
        };
        let state = EncoderStream {
            csid,
            timestamp,
            ts_field: match (fmt, previous) {
                (0, _) | (_, None) => timestamp,
                (_, Some(p)) => timestamp - p.timestamp,
            },
            extended: match (fmt, previous) {
                (3, Some(p)) => p.extended,
                (_, Some(p)) if fmt != 0 => timestamp - p.timestamp >= TIMESTAMP_EXTENDED,
                _ => timestamp >= TIMESTAMP_EXTENDED,
            },
            length,
            msg_type,
            stream_id,
        };
        let field = if state.extended {
            TIMESTAMP_EXTENDED
        } else {
            state.ts_field
        };

        let mut header = [0u8; HEADER_MAX];
        let mut len = write_basic_header(fmt, csid, &mut header);
        if fmt <= 2 {
            header[len..len + 3].copy_from_slice(&field.to_be_bytes()[1..]);
            len += 3;
        }
        if fmt <= 1 {
            header[len..len + 3].copy_from_slice(&length.to_be_bytes()[1..]);
            header[len + 3] = msg_type;
            len += 4;
        }
        if fmt == 0 {
            header[len..len + 4].copy_from_slice(&stream_id.to_le_bytes());
            len += 4;
        }
        if state.extended {
            header[len..len + 4].copy_from_slice(&state.ts_field.to_be_bytes());
            len += 4;
        }
        let chunk_size = self.chunk_size as usize;
        let mut pieces = payload.chunks(chunk_size);
        emit(&header[..len], pieces.next().unwrap_or_default());
        let mut continuation = [0u8; 7];
        let mut clen = write_basic_header(3, csid, &mut continuation);
        if state.extended && self.repeat_extended {
            continuation[clen..clen + 4].copy_from_slice(&state.ts_field.to_be_bytes());
            clen += 4;
        }
        for piece in pieces {
            emit(&continuation[..clen], piece);
        }
        match index.and_then(|i| self.streams.get_mut(i)) {
            Some(slot) => *slot = state,
            None => self.streams.push(state),
        }
    }
}

/// Writes a basic header into `out`; returns its length.
fn write_basic_header(fmt: u8, csid: u32, out: &mut [u8]) -> usize {
    let fmt_bits = fmt << 6;
    if csid < 64 {
        out[0] = fmt_bits | csid as u8;
        1
    } else if csid < 320 {
        out[0] = fmt_bits;
        out[1] = (csid - 64) as u8;
        2
    } else {
        let rest = csid - 64;
        out[0] = fmt_bits | 1;
        out[1] = (rest & 0xFF) as u8;
        out[2] = (rest >> 8) as u8;
        3
    }
}
