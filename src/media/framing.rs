//! Output framings of a ring entry, written once when the entry is appended, so that no reader
//! formats, copies or allocates anything per send: a reader's batch is one iovec per entry.
//!
//! The one place that knows a framing. Today: `Raw` (the serialised unit itself: an FLV tag,
//! for HTTP/1.0 viewers) and `HttpChunked` (one HTTP/1.1 chunk per entry: size line, tag,
//! CRLF — so a batch can be cut after any entry and the framing stays valid). Both are slices
//! of one allocation: the producer serialises the tag [`HEADROOM`] bytes into a buffer with
//! [`TAILROOM`] bytes after it, and [`frame`] writes the chunk-size line right before the tag
//! and the CRLF right after it. RTMP chunks and TS packets interleave headers inside the
//! payload, so they come as rings of their own with their issues.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

/// How a reader's connection frames entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// The entry's bytes as they are.
    Raw,
    /// One HTTP/1.1 chunk per entry.
    HttpChunked,
}

/// Room a producer leaves before the serialised unit: the longest chunk-size line
/// (`ffffffff\r\n`, for bodies up to 4 GiB; FLV tags are below 16 MiB + 15 bytes).
pub const HEADROOM: usize = 10;
/// Room after the unit: the chunk's CRLF.
pub const TAILROOM: usize = 2;

/// An entry's bytes in every framing: slices of one shared allocation.
#[derive(Clone, Debug)]
pub struct Framed {
    /// The unit as serialised (Raw).
    pub raw: Bytes,
    /// `{len:x}\r\n` + raw + `\r\n` (HttpChunked).
    pub chunked: Bytes,
}

impl Framed {
    pub fn get(&self, framing: Framing) -> &Bytes {
        match framing {
            Framing::Raw => &self.raw,
            Framing::HttpChunked => &self.chunked,
        }
    }
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
    let all = buf.freeze();
    Framed {
        raw: all.slice(unit.clone()),
        chunked: all.slice(start..unit.end + TAILROOM),
    }
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
            assert_eq!(framed.get(Framing::Raw), &framed.raw);
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
