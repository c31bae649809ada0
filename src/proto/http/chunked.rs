//! The chunked transfer coding (RFC 9112 §7.1): a byte-at-a-time decoder for request bodies
//! (live ingest by POST/PUT) and the two pieces the sender side needs.
//!
//! The decoder is strict on purpose. Lenient chunk parsing (bare LF, odd whitespace,
//! oversized sizes) is where proxies and origins disagree about where a body ends, which
//! is how request smuggling works.

use super::HttpError;

/// The last-chunk with no trailers: ends a chunked body we send.
pub const CHUNK_TRAILER_LAST: &[u8] = b"0\r\n\r\n";

/// Appends a chunk-size line (`{len:x}\r\n`). The caller then sends `len` bytes of data and
/// a CRLF. `len` must not be 0: a zero size is the last-chunk, see [`CHUNK_TRAILER_LAST`].
pub fn write_chunk_header(len: usize, out: &mut Vec<u8>) {
    debug_assert!(len > 0, "a zero-length chunk would end the body");
    let mut digits = [0u8; 2 * std::mem::size_of::<usize>()];
    let mut at = digits.len();
    let mut rest = len;
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

/// Bounds for one chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkedLimits {
    /// Largest size a single chunk may announce.
    pub chunk_bytes_max: u64,
    /// Longest chunk-size line (hex digits plus extensions, without the CRLF). Bounds the
    /// time a peer can spend sending extensions we ignore or leading zeros.
    pub line_bytes_max: usize,
    /// Total bytes of the trailer section, CRLFs included (the final empty line too).
    pub trailer_bytes_max: usize,
    /// Total decoded body bytes. Defaults to unbounded: a live ingest body is an endless
    /// stream, and its duration is bounded elsewhere.
    pub body_bytes_max: u64,
}

impl Default for ChunkedLimits {
    fn default() -> Self {
        ChunkedLimits {
            chunk_bytes_max: 16 << 20,
            line_bytes_max: 1024,
            trailer_bytes_max: 8192,
            body_bytes_max: u64::MAX,
        }
    }
}

/// What one [`ChunkedDecoder::decode`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkedProgress {
    /// Input bytes used. Less than the input only when `done`: the rest belongs to the
    /// next request on the connection.
    pub consumed: usize,
    /// The last-chunk and the trailer section have been read.
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex chunk size; `digits` counts them so an empty size is caught.
    Size {
        digits: usize,
    },
    /// After the size: extensions (or BWS before one) up to the CR. Ignored.
    Extension,
    /// Saw the CR ending a size line.
    SizeLf,
    Data {
        remaining_bytes: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer field line or of the final empty line.
    TrailerLineStart,
    TrailerLine,
    /// Saw the CR ending a trailer line; `empty` if that line was the final empty one.
    TrailerLf {
        empty: bool,
    },
    Done,
}

/// Decodes a chunked body incrementally: feed whatever arrived, get data through the sink
/// as soon as it arrives (partial chunks included), and nothing is buffered inside.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    limits: ChunkedLimits,
    state: State,
    /// Chunk size accumulated while in `Size`.
    size: u64,
    line_bytes: usize,
    trailer_bytes: usize,
    body_bytes: u64,
    /// Errors are sticky: after one, the connection must be closed.
    failed: Option<HttpError>,
}

impl ChunkedDecoder {
    /// A decoder with the default limits except `chunk_bytes_max`.
    pub fn new(chunk_bytes_max: u64) -> Self {
        ChunkedDecoder::with_limits(ChunkedLimits {
            chunk_bytes_max,
            ..ChunkedLimits::default()
        })
    }

    pub fn with_limits(limits: ChunkedLimits) -> Self {
        ChunkedDecoder {
            limits,
            state: State::Size { digits: 0 },
            size: 0,
            line_bytes: 0,
            trailer_bytes: 0,
            body_bytes: 0,
            failed: None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded body bytes so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Consumes as much of `input` as belongs to the body, passing chunk data to `sink`.
    pub fn decode(
        &mut self,
        input: &[u8],
        sink: &mut impl FnMut(&[u8]),
    ) -> Result<ChunkedProgress, HttpError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        match self.run(input, sink) {
            Ok(consumed) => Ok(ChunkedProgress {
                consumed,
                done: self.state == State::Done,
            }),
            Err(error) => {
                self.failed = Some(error);
                Err(error)
            }
        }
    }

    fn run(&mut self, input: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<usize, HttpError> {
        let mut at = 0;
        while at < input.len() {
            if let State::Data { remaining_bytes } = self.state {
                let available = input.len() - at;
                let take = usize::try_from(remaining_bytes).map_or(available, |r| r.min(available));
                sink(&input[at..at + take]);
                at += take;
                let remaining_bytes = remaining_bytes - take as u64;
                self.state = if remaining_bytes == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining_bytes }
                };
                continue;
            }
            if self.state == State::Done {
                break;
            }
            self.step(input[at])?;
            at += 1;
        }
        Ok(at)
    }

    /// Advances the line-level states by one byte.
    fn step(&mut self, byte: u8) -> Result<(), HttpError> {
        self.state = match self.state {
            State::Size { digits } => {
                self.count_line_byte(byte)?;
                if let Some(value) = hex_value(byte) {
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(value)))
                        .filter(|&s| s <= self.limits.chunk_bytes_max)
                        .ok_or(HttpError::BadChunk)?;
                    State::Size { digits: digits + 1 }
                } else if digits == 0 {
                    return Err(HttpError::BadChunk);
                } else {
                    match byte {
                        b'\r' => State::SizeLf,
                        // BWS may precede the ';' of an extension (RFC 9112 §7.1.1).
                        b';' | b' ' | b'\t' => State::Extension,
                        _ => return Err(HttpError::BadChunk),
                    }
                }
            }
            State::Extension => {
                self.count_line_byte(byte)?;
                match byte {
                    b'\r' => State::SizeLf,
                    b'\t' => State::Extension,
                    // A bare LF or other control byte inside an extension is exactly the
                    // ambiguity smuggling relies on.
                    0..=0x1f | 0x7f => return Err(HttpError::BadChunk),
                    _ => State::Extension,
                }
            }
            State::SizeLf => {
                if byte != b'\n' {
                    return Err(HttpError::BadChunk);
                }
                let size = std::mem::take(&mut self.size);
                self.line_bytes = 0;
                if size == 0 {
                    State::TrailerLineStart
                } else {
                    self.body_bytes = self
                        .body_bytes
                        .checked_add(size)
                        .filter(|&total| total <= self.limits.body_bytes_max)
                        .ok_or(HttpError::BodyTooLarge)?;
                    State::Data {
                        remaining_bytes: size,
                    }
                }
            }
            State::DataCr if byte == b'\r' => State::DataLf,
            State::DataLf if byte == b'\n' => State::Size { digits: 0 },
            State::DataCr | State::DataLf => return Err(HttpError::BadChunk),
            State::TrailerLineStart | State::TrailerLine => {
                self.count_trailer_byte()?;
                match byte {
                    b'\r' => State::TrailerLf {
                        empty: self.state == State::TrailerLineStart,
                    },
                    b'\n' | 0 => return Err(HttpError::BadChunk),
                    _ => State::TrailerLine,
                }
            }
            State::TrailerLf { empty } => {
                self.count_trailer_byte()?;
                if byte != b'\n' {
                    return Err(HttpError::BadChunk);
                }
                if empty {
                    State::Done
                } else {
                    State::TrailerLineStart
                }
            }
            // `run` handles these without calling `step`.
            State::Data { .. } | State::Done => self.state,
        };
        Ok(())
    }

    /// Counts a byte of the trailer section, line ends included.
    fn count_trailer_byte(&mut self) -> Result<(), HttpError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.limits.trailer_bytes_max {
            return Err(HttpError::BadChunk);
        }
        Ok(())
    }

    /// Counts a size-line byte; the terminating CR does not count.
    fn count_line_byte(&mut self, byte: u8) -> Result<(), HttpError> {
        if byte == b'\r' {
            return Ok(());
        }
        self.line_bytes += 1;
        if self.line_bytes > self.limits.line_bytes_max {
            return Err(HttpError::BadChunk);
        }
        Ok(())
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `input` in one call: (body, progress).
    fn decode_all(
        decoder: &mut ChunkedDecoder,
        input: &[u8],
    ) -> Result<(Vec<u8>, ChunkedProgress), HttpError> {
        let mut body = Vec::new();
        let progress = decoder.decode(input, &mut |data: &[u8]| body.extend_from_slice(data))?;
        Ok((body, progress))
    }

    /// Feeds `input` in the given pieces, re-feeding unconsumed bytes like a runtime would.
    fn decode_pieces(
        chunk_bytes_max: u64,
        input: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut decoder = ChunkedDecoder::new(chunk_bytes_max);
        let mut body = Vec::new();
        let mut consumed = 0;
        let mut pending_end = 0;
        let mut boundaries = cuts.to_vec();
        boundaries.push(input.len());
        for end in boundaries {
            pending_end = pending_end.max(end);
            let progress = decoder.decode(&input[consumed..pending_end], &mut |d: &[u8]| {
                body.extend_from_slice(d)
            })?;
            consumed += progress.consumed;
            if progress.done {
                return Ok((body, consumed, true));
            }
        }
        Ok((body, consumed, false))
    }

    const BODY: &[u8] = b"5\r\nhello\r\n1;name=value;flag\r\n \r\n000a \t;x=\"q\"\r\n0123456789\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nGET /next";
    const DECODED: &[u8] = b"hello 0123456789";
    const BODY_LEN: usize = BODY.len() - b"GET /next".len();

    #[test]
    fn decodes_extensions_and_trailers_and_stops_at_the_end() {
        let mut decoder = ChunkedDecoder::new(1 << 20);
        let (body, progress) = decode_all(&mut decoder, BODY).unwrap();
        assert_eq!(body, DECODED);
        assert_eq!(
            progress,
            ChunkedProgress {
                consumed: BODY_LEN,
                done: true
            }
        );
        assert_eq!(decoder.body_bytes(), DECODED.len() as u64);
        assert!(decoder.is_done());
        // Once done, nothing more is taken.
        let (body, progress) = decode_all(&mut decoder, b"GET /next").unwrap();
        assert!(body.is_empty());
        assert_eq!(
            progress,
            ChunkedProgress {
                consumed: 0,
                done: true
            }
        );
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        for cut in 0..=BODY.len() {
            let (body, consumed, done) = decode_pieces(1 << 20, BODY, &[cut]).unwrap();
            assert_eq!(body, DECODED, "cut at {cut}");
            assert_eq!(consumed, BODY_LEN, "cut at {cut}");
            assert!(done);
        }
        // And byte by byte.
        let cuts: Vec<usize> = (1..BODY.len()).collect();
        let (body, consumed, done) = decode_pieces(1 << 20, BODY, &cuts).unwrap();
        assert_eq!((body.as_slice(), consumed, done), (DECODED, BODY_LEN, true));
    }

    #[test]
    fn partial_data_is_delivered_as_it_arrives() {
        let mut decoder = ChunkedDecoder::new(100);
        let (body, progress) = decode_all(&mut decoder, b"a\r\n0123").unwrap();
        assert_eq!(body, b"0123");
        assert_eq!(
            progress,
            ChunkedProgress {
                consumed: 7,
                done: false
            }
        );
        let (body, progress) = decode_all(&mut decoder, b"456789\r\n0\r\n\r\n").unwrap();
        assert_eq!(body, b"456789");
        assert_eq!(
            progress,
            ChunkedProgress {
                consumed: 13,
                done: true
            }
        );
    }

    #[test]
    fn malformed_bodies_are_bad_chunks() {
        let cases: [&[u8]; 16] = [
            b"\r\n",                        // empty size
            b";ext\r\n",                    // extension without size
            b"g\r\n",                       // not hex
            b"+5\r\nhello\r\n",             // sign
            b"0x5\r\nhello\r\n",            // prefix
            b"5\nhello\r\n",                // bare LF after size
            b"5\r\nhelloX\r\n",             // data longer than announced
            b"5\r\nhello\n0\r\n\r\n",       // bare LF after data
            b"5\r\nhello\r\r",              // CR CR
            b"5;a\nb\r\nhello\r\n",         // LF inside extension
            b"5;a\x00\r\nhello\r\n",        // NUL inside extension
            b"0\r\nX: 1\n\r\n",             // bare LF in trailer
            b"0\r\n\n",                     // bare LF as the final line
            b"0\r\n\r\r",                   // CR not followed by LF
            b"0\r\nX: a\0\r\n\r\n",         // NUL in trailer
            b"11\r\n0123456789abcdef0\r\n", // 17 > chunk_bytes_max 16
        ];
        for input in cases {
            let mut decoder = ChunkedDecoder::new(16);
            assert_eq!(
                decode_all(&mut decoder, input),
                Err(HttpError::BadChunk),
                "{}",
                String::from_utf8_lossy(input)
            );
            // Sticky.
            assert_eq!(
                decode_all(&mut decoder, b"0\r\n\r\n"),
                Err(HttpError::BadChunk)
            );
        }
    }

    #[test]
    fn size_overflow_and_limits() {
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        assert_eq!(
            decode_all(&mut decoder, b"10000000000000000\r\n"),
            Err(HttpError::BadChunk)
        );
        let mut decoder = ChunkedDecoder::new(u64::MAX);
        let (_, progress) = decode_all(&mut decoder, b"ffffffffffffffff\r\nab").unwrap();
        assert_eq!(progress.consumed, 20);

        let limits = ChunkedLimits {
            line_bytes_max: 8,
            ..ChunkedLimits::default()
        };
        let mut decoder = ChunkedDecoder::with_limits(limits);
        assert!(decode_all(&mut decoder, b"00000005\r\nhello\r\n").is_ok());
        let mut decoder = ChunkedDecoder::with_limits(limits);
        assert_eq!(
            decode_all(&mut decoder, b"000000005\r\n"),
            Err(HttpError::BadChunk)
        );
        let mut decoder = ChunkedDecoder::with_limits(limits);
        assert_eq!(
            decode_all(&mut decoder, b"5;abcdefgh\r\n"),
            Err(HttpError::BadChunk)
        );

        let limits = ChunkedLimits {
            trailer_bytes_max: 8,
            ..ChunkedLimits::default()
        };
        let mut decoder = ChunkedDecoder::with_limits(limits);
        assert!(
            decode_all(&mut decoder, b"0\r\nA: 1\r\n\r\n")
                .unwrap()
                .1
                .done
        );
        let mut decoder = ChunkedDecoder::with_limits(limits);
        assert_eq!(
            decode_all(&mut decoder, b"0\r\nA: 12\r\n\r\n"),
            Err(HttpError::BadChunk)
        );

        let limits = ChunkedLimits {
            body_bytes_max: 6,
            ..ChunkedLimits::default()
        };
        let mut decoder = ChunkedDecoder::with_limits(limits);
        assert!(decode_all(&mut decoder, b"5\r\nhello\r\n1\r\n!\r\n").is_ok());
        assert_eq!(
            decode_all(&mut decoder, b"1\r\n"),
            Err(HttpError::BodyTooLarge)
        );
    }

    #[test]
    fn chunk_headers_round_trip() {
        let mut out = Vec::new();
        for len in [1usize, 9, 10, 15, 16, 255, 4096, 0xdead_beef] {
            out.clear();
            write_chunk_header(len, &mut out);
            assert_eq!(out, format!("{len:x}\r\n").as_bytes());
        }
        // Encode then decode.
        let mut wire = Vec::new();
        for piece in [&b"abc"[..], b"0123456789abcdefXYZ", b"!"] {
            write_chunk_header(piece.len(), &mut wire);
            wire.extend_from_slice(piece);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(CHUNK_TRAILER_LAST);
        let mut decoder = ChunkedDecoder::new(1024);
        let (body, progress) = decode_all(&mut decoder, &wire).unwrap();
        assert_eq!(body, b"abc0123456789abcdefXYZ!");
        assert_eq!(
            progress,
            ChunkedProgress {
                consumed: wire.len(),
                done: true
            }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            cut in any::<prop::sample::Index>(),
        ) {
            let cut = cut.index(bytes.len() + 1);
            if let Ok((body, consumed, done)) = decode_pieces(64, &bytes, &[cut]) {
                prop_assert!(consumed <= bytes.len());
                prop_assert!(body.len() <= consumed);
                prop_assert!(done || consumed == bytes.len());
            }
        }

        #[test]
        fn encoded_bodies_decode_identically_at_any_split(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..6),
            cuts in proptest::collection::vec(0usize..400, 0..4),
            tail in proptest::collection::vec(any::<u8>(), 0..8),
        ) {
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for piece in &pieces {
                write_chunk_header(piece.len(), &mut wire);
                wire.extend_from_slice(piece);
                wire.extend_from_slice(b"\r\n");
                expected.extend_from_slice(piece);
            }
            wire.extend_from_slice(CHUNK_TRAILER_LAST);
            let body_len = wire.len();
            wire.extend_from_slice(&tail);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(wire.len())).collect();
            cuts.sort_unstable();
            let (body, consumed, done) = decode_pieces(64, &wire, &cuts).unwrap();
            prop_assert_eq!(body, expected);
            prop_assert_eq!(consumed, body_len);
            prop_assert!(done);
        }
    }
}
