//! Output framings of a ring entry, written once when the entry is appended, so that no reader
//! formats, copies or allocates anything per send: a reader's batch is one iovec per entry.
//!
//! The one place that knows a framing. Today: `Raw` (the serialised unit itself: an FLV tag,
//! for HTTP/1.0 viewers), `HttpChunked` (one HTTP/1.1 chunk per entry: size line, tag,
//! CRLF — so a batch can be cut after any entry and the framing stays valid) and `Rtmp` (one
//! RTMP message per entry, sent as a single chunk: its fmt-0 chunk header, then the tag's
//! body). All are slices of one allocation: the producer serialises the tag [`HEADROOM`]
//! bytes into a buffer with [`TAILROOM`] bytes after it, and [`frame`] writes the chunk-size
//! line right before the tag, the CRLF right after it, and the RTMP chunk header at the start
//! of the room. The RTMP header cannot sit next to the body (the FLV tag header is there), so
//! an RTMP entry is two iovecs, header and body, both in the entry's memory: no reader
//! formats or copies anything. A single chunk per message is valid because an RTMP reader is
//! told a chunk size of [`RTMP_CHUNK_SIZE`] first, which the spec makes larger than any
//! message.
//!
//! MPEG-TS (`TsRaw`, `TsChunked`) is not a framing of the FLV tag but a re-packaging of the
//! unit (188-byte packets with their own headers inside the payload), so it is produced only
//! while some reader wants it: the publisher muxes each entry once and attaches the packets to
//! the entry (`ring::Entry::ts`), framed the same way (raw, and as one HTTP chunk).

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::proto::rtmp;

/// How a reader's connection frames entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The entry's bytes as they are.
    Raw,
    /// One HTTP/1.1 chunk per entry.
    HttpChunked,
    /// One RTMP message per entry (chunk header + tag body), on message stream
    /// [`RTMP_STREAM_ID`].
    Rtmp,
    /// The entry's MPEG-TS packets as they are (HTTP/1.0 viewers of `.ts`).
    TsRaw,
    /// The entry's MPEG-TS packets as one HTTP/1.1 chunk.
    TsChunked,
}

impl Framing {
    /// Whether the framing carries MPEG-TS (the entry's [`TsFramed`], produced on demand)
    /// rather than the FLV tag every entry has.
    pub fn is_ts(self) -> bool {
        matches!(self, Framing::TsRaw | Framing::TsChunked)
    }

    /// Whether the body is HTTP/1.1 chunked (ends with the zero-length chunk).
    pub fn is_http_chunked(self) -> bool {
        matches!(self, Framing::HttpChunked | Framing::TsChunked)
    }
}

/// Room for the longest HTTP chunk-size line (`ffffffff\r\n`, for bodies up to 4 GiB; FLV tags
/// are below 16 MiB + 15 bytes).
const CHUNK_LINE_ROOM: usize = 10;
/// Room for the longest RTMP fmt-0 chunk header: 1-byte basic header, 11-byte message header,
/// 4-byte extended timestamp.
pub const RTMP_HEADER_MAX: usize = rtmp::MESSAGE_HEADER_MAX;
/// Room a producer leaves before the serialised unit: the RTMP chunk header, then the
/// chunk-size line.
pub const HEADROOM: usize = RTMP_HEADER_MAX + CHUNK_LINE_ROOM;
/// The chunk size announced to RTMP readers before any media: the spec's largest meaningful
/// value (RTMP 1.0 §5.4.1: sizes above 0xFFFFFF are equivalent, no message is larger), so
/// every message goes out as one chunk.
pub const RTMP_CHUNK_SIZE: u32 = 0xFF_FFFF;
/// The message stream id of every media message sent to RTMP readers (the id our
/// `createStream` answers first).
pub const RTMP_STREAM_ID: u32 = rtmp::MEDIA_STREAM_ID;
/// FLV tag header and PreviousTagSize lengths (see `proto::flv`).
const TAG_HEADER_LEN: usize = 11;
const PREV_TAG_SIZE_LEN: usize = 4;
/// Room after the unit: the chunk's CRLF.
pub const TAILROOM: usize = 2;

/// An entry's bytes in every framing: slices of one shared allocation.
#[derive(Clone, Debug)]
pub struct Framed {
    /// The unit as serialised (Raw).
    pub raw: Bytes,
    /// `{len:x}\r\n` + raw + `\r\n` (HttpChunked).
    pub chunked: Bytes,
    /// The RTMP chunk header of the unit's message (empty if the unit is not one FLV tag).
    pub rtmp_head: Bytes,
    /// The RTMP message payload: the FLV tag's body (empty if the unit is not one FLV tag).
    pub rtmp_body: Bytes,
}

impl Framed {
    /// The entry's bytes in `framing`, as at most two pieces sent back to back (the second
    /// is empty for the one-piece framings).
    pub fn parts(&self, framing: Framing) -> [&Bytes; 2] {
        match framing {
            Framing::Raw | Framing::TsRaw => [&self.raw, &EMPTY],
            Framing::HttpChunked | Framing::TsChunked => [&self.chunked, &EMPTY],
            Framing::Rtmp => [&self.rtmp_head, &self.rtmp_body],
        }
    }

    /// Bytes of the entry in `framing`.
    pub fn len(&self, framing: Framing) -> usize {
        let [a, b] = self.parts(framing);
        a.len() + b.len()
    }
}

static EMPTY: Bytes = Bytes::new();

/// An entry's MPEG-TS packets (raw, and as one HTTP/1.1 chunk): slices of one allocation,
/// like [`Framed`]. Empty (both) when the unit writes no packets (a sequence header only
/// updates the muxer): an empty chunk would end an HTTP body.
pub type TsFramed = Framed;

/// Frame MPEG-TS packets muxed into `buf` after [`HEADROOM`] zero bytes (the caller leaves
/// that room at the start; [`TAILROOM`] is added here): the same one-allocation framing as
/// an FLV tag, without the RTMP pieces.
pub fn frame_ts(mut buf: Vec<u8>) -> TsFramed {
    debug_assert!(buf.len() >= HEADROOM);
    if buf.len() <= HEADROOM {
        return Framed {
            raw: Bytes::new(),
            chunked: Bytes::new(),
            rtmp_head: Bytes::new(),
            rtmp_body: Bytes::new(),
        };
    }
    let end = buf.len();
    buf.extend_from_slice(&[0; TAILROOM]);
    // A Vec becomes a BytesMut without copying. TS packets start with the sync byte 0x47,
    // which is no FLV tag type, so `frame` makes no RTMP pieces of them.
    frame(BytesMut::from(Bytes::from(buf)), HEADROOM..end)
}

/// Frame a buffer laid out as `[HEADROOM][unit][TAILROOM]` (`unit` = the range of the unit in
/// it): writes the size line and the CRLF, and freezes it into [`Framed`] slices.
///
/// # Panics
/// If the buffer does not have the room around `unit` (a producer's programming error).
pub fn frame(mut buf: BytesMut, unit: Range<usize>) -> Framed {
    assert!(
        unit.start >= HEADROOM && unit.end + TAILROOM <= buf.len(),
        "a framed entry needs {HEADROOM} bytes before and {TAILROOM} after the unit"
    );
    let len = unit.end - unit.start;
    let mut line = [0u8; HEADROOM];
    let line_len = size_line(len, &mut line);
    let start = unit.start - line_len;
    buf[start..unit.start].copy_from_slice(&line[..line_len]);
    buf[unit.end..unit.end + TAILROOM].copy_from_slice(b"\r\n");
    let mut head = [0u8; RTMP_HEADER_MAX];
    let rtmp = flv_tag_message(&buf[unit.clone()]).map(|m| (rtmp_header(&m, &mut head), m));
    if let Some((head_len, _)) = rtmp {
        buf[..head_len].copy_from_slice(&head[..head_len]);
    }
    let all = buf.freeze();
    let (rtmp_head, rtmp_body) = match rtmp {
        Some((head_len, m)) => (
            all.slice(..head_len),
            all.slice(unit.start + TAG_HEADER_LEN..unit.start + TAG_HEADER_LEN + m.len as usize),
        ),
        None => (Bytes::new(), Bytes::new()),
    };
    Framed {
        raw: all.slice(unit.clone()),
        chunked: all.slice(start..unit.end + TAILROOM),
        rtmp_head,
        rtmp_body,
    }
}

/// An RTMP message's type, timestamp and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtmpMessage {
    pub msg_type: u8,
    pub timestamp_ms: u32,
    pub len: u32,
}

/// The message an FLV tag (header, body, PreviousTagSize) carries, if `tag` is exactly one
/// audio, video or script tag.
fn flv_tag_message(tag: &[u8]) -> Option<RtmpMessage> {
    let header = tag.get(..TAG_HEADER_LEN)?;
    let msg_type = header[0] & 0x1f;
    let len = u32::from_be_bytes([0, header[1], header[2], header[3]]);
    let timestamp_ms = u32::from_be_bytes([header[7], header[4], header[5], header[6]]);
    let whole = TAG_HEADER_LEN + len as usize + PREV_TAG_SIZE_LEN == tag.len();
    (matches!(msg_type, 8 | 9 | 18) && whole).then_some(RtmpMessage {
        msg_type,
        timestamp_ms,
        len,
    })
}

/// The fmt-0 chunk header of `message` sent as one chunk on [`RTMP_STREAM_ID`], into `out`;
/// returns its length (12, or 16 with the extended timestamp). FLV bodies are at most
/// 16 MiB - 1, which one chunk of [`RTMP_CHUNK_SIZE`] holds.
pub fn rtmp_header(message: &RtmpMessage, out: &mut [u8; RTMP_HEADER_MAX]) -> usize {
    let csid = match message.msg_type {
        8 => rtmp::csid::AUDIO,
        9 => rtmp::csid::VIDEO,
        _ => rtmp::csid::DATA,
    };
    rtmp::write_message_header(
        csid,
        message.msg_type,
        message.timestamp_ms,
        message.len.min(0xFF_FFFF),
        RTMP_STREAM_ID,
        out,
    )
}

/// Append one whole RTMP message (header + payload) to `out`: for what is sent to one reader
/// alone (its preamble).
pub fn write_rtmp_message(message: &RtmpMessage, payload: &[u8], out: &mut Vec<u8>) {
    let mut head = [0u8; RTMP_HEADER_MAX];
    let n = rtmp_header(message, &mut head);
    out.extend_from_slice(&head[..n]);
    out.extend_from_slice(payload);
}

/// Frame a unit that was serialised without room around it (one copy; tests, and producers
/// that cannot know the size up front).
pub fn frame_copy(unit: &[u8]) -> Framed {
    let mut buf = BytesMut::with_capacity(HEADROOM + unit.len() + TAILROOM);
    buf.resize(HEADROOM, 0);
    buf.extend_from_slice(unit);
    buf.extend_from_slice(&[0; TAILROOM]);
    frame(buf, HEADROOM..HEADROOM + unit.len())
}

/// `{len:x}\r\n` into `out`; returns its length.
fn size_line(len: usize, out: &mut [u8; HEADROOM]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = ((usize::BITS - len.max(1).leading_zeros()).div_ceil(4) as usize).min(8);
    for i in 0..digits {
        out[digits - 1 - i] = HEX[(len >> (4 * i)) & 0xf];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    digits + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_framings_are_slices_of_one_buffer() {
        for len in [0usize, 1, 15, 16, 255, 256, 4095, 70_000] {
            let unit: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let framed = frame_copy(&unit);
            assert_eq!(&framed.raw[..], &unit[..]);
            let expected = [format!("{len:x}\r\n").as_bytes(), &unit, b"\r\n"].concat();
            assert_eq!(&framed.chunked[..], &expected[..], "len {len}");
            // One allocation: the raw bytes sit inside the chunked ones.
            let line = format!("{len:x}\r\n").len();
            assert_eq!(
                framed.chunked.as_ptr().wrapping_add(line),
                framed.raw.as_ptr()
            );
            assert_eq!(framed.parts(Framing::Raw)[0], &framed.raw);
            // Not an FLV tag: no RTMP message.
            assert!(framed.rtmp_head.is_empty() && framed.rtmp_body.is_empty());
        }
    }

    fn tag(tag_type: u8, ts: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::proto::flv::mux::write_tag(tag_type, ts, body, &mut out);
        out
    }

    #[test]
    fn rtmp_framing_is_the_chunk_header_and_the_tag_body() {
        let body: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let framed = frame_copy(&tag(9, 0x0012_3456, &body));
        // fmt 0, csid 7; timestamp 0x123456; length 300; type 9; stream id 1 (LE).
        assert_eq!(
            &framed.rtmp_head[..],
            &[7, 0x12, 0x34, 0x56, 0, 1, 44, 9, 1, 0, 0, 0]
        );
        assert_eq!(&framed.rtmp_body[..], &body[..]);
        assert_eq!(framed.len(Framing::Rtmp), 12 + 300);
        // Header and body live in the entry's one allocation.
        let base = framed.rtmp_head.as_ptr() as usize;
        let raw = framed.raw.as_ptr() as usize;
        assert!(raw > base && raw - base <= HEADROOM);
        assert_eq!(framed.rtmp_body.as_ptr() as usize, raw + TAG_HEADER_LEN);
    }

    #[test]
    fn rtmp_framing_uses_the_extended_timestamp_from_0xffffff() {
        for (ts, extended) in [
            (0xFF_FFFEu32, false),
            (0xFF_FFFF, true),
            (0xDEAD_BEEF, true),
        ] {
            let framed = frame_copy(&tag(8, ts, b"\xaf\x01xyz"));
            let head = &framed.rtmp_head;
            assert_eq!(head[0], 6, "audio on csid 6");
            if extended {
                assert_eq!(head.len(), 16);
                assert_eq!(&head[1..4], &[0xff, 0xff, 0xff]);
                assert_eq!(&head[12..16], &ts.to_be_bytes());
            } else {
                assert_eq!(head.len(), 12);
                assert_eq!(&head[1..4], &ts.to_be_bytes()[1..]);
            }
            assert_eq!(&framed.rtmp_body[..], b"\xaf\x01xyz");
        }
    }

    #[test]
    fn chunked_entries_decode_with_our_chunked_decoder() {
        use crate::proto::http::ChunkedDecoder;
        let mut wire = Vec::new();
        let units: Vec<Vec<u8>> = (0..5).map(|n| vec![n as u8; 10 + 300 * n]).collect();
        for unit in &units {
            wire.extend_from_slice(&frame_copy(unit).chunked);
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let mut decoder = ChunkedDecoder::new(1 << 20);
        let mut out = Vec::new();
        let progress = decoder
            .decode(&wire, &mut |b: &[u8]| out.extend_from_slice(b))
            .expect("valid chunked body");
        assert!(progress.done);
        assert_eq!(out, units.concat());
    }
}
