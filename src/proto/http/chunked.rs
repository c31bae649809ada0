//! Incremental decoder for the chunked transfer coding (RFC 9112 §7.1), used for live ingest
//! (`POST`/`PUT` of FLV or TS with a chunked body).
//!
//! It is a byte-at-a-time state machine for the framing and a bulk copy for the data, so it
//! can stop at any byte boundary and resume with the next receive, and never buffers: chunk
//! data goes to the caller's sink as soon as it arrives.

use super::HttpError;

/// Default for [`ChunkedDecoder::with_line_bytes_max`]: the same order as a request line.
pub const CHUNK_LINE_BYTES_MAX_DEFAULT: usize = 4096;

/// Progress of one [`ChunkedDecoder::decode`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkedProgress {
    /// Bytes of the input used. Less than the input only when `done` (what follows belongs to
    /// the next request) or never otherwise.
    pub consumed: usize,
    /// The last chunk and the trailer section have been read; the body is complete.
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Expecting the first hex digit of a chunk size.
    SizeStart,
    /// Inside the hex digits.
    Size {
        size: u64,
    },
    /// Whitespace after the digits (BWS before `;`).
    SizeSpace {
        size: u64,
    },
    /// Inside `;name=value` chunk extensions, which are ignored.
    Extension {
        size: u64,
    },
    /// Saw the CR ending the size line.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line or the empty line that ends the body.
    TrailerLineStart,
    TrailerLine,
    TrailerLineLf,
    /// Saw the CR of the final empty line.
    EndLf,
    Done,
    /// An error was reported; every later call reports it again.
    Failed,
}

/// Decodes a chunked body incrementally.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    chunk_bytes_max: u64,
    line_bytes_max: usize,
    /// Bytes of the current size line, or of the trailer section so far.
    line_bytes: usize,
}

/// Control characters (other than HTAB) may not appear in extensions or trailers; CR and LF
/// are handled by the states themselves, so a bare LF lands here and is refused.
fn is_forbidden_in_line(byte: u8) -> bool {
    (byte < 0x20 && byte != b'\t') || byte == 0x7f
}

fn hex_value(byte: u8) -> Option<u64> {
    match byte {
        b'0'..=b'9' => Some(u64::from(byte - b'0')),
        b'a'..=b'f' => Some(u64::from(byte - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(byte - b'A' + 10)),
        _ => None,
    }
}

impl ChunkedDecoder {
    /// A decoder that refuses any chunk larger than `chunk_bytes_max` (a peer announcing a
    /// multi-gigabyte chunk is refused at once rather than trusted).
    pub fn new(chunk_bytes_max: u64) -> Self {
        ChunkedDecoder {
            state: State::SizeStart,
            chunk_bytes_max,
            line_bytes_max: CHUNK_LINE_BYTES_MAX_DEFAULT,
            line_bytes: 0,
        }
    }

    /// Bounds each size line (extensions included) and the whole trailer section, which are
    /// skipped byte by byte and would otherwise let a peer send framing forever.
    pub fn with_line_bytes_max(mut self, line_bytes_max: usize) -> Self {
        self.line_bytes_max = line_bytes_max;
        self
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes as much of `input` as it can, passing chunk data to `sink` as it arrives
    /// (possibly in several pieces per chunk). Stops right after the body's final CRLF.
    ///
    /// On error, data already passed to `sink` stays passed; the decoder stays failed.
    pub fn decode(
        &mut self,
        input: &[u8],
        sink: &mut impl FnMut(&[u8]),
    ) -> Result<ChunkedProgress, HttpError> {
        let mut pos = 0;
        while pos < input.len() {
            match self.state {
                State::Done => break,
                State::Failed => return Err(HttpError::BadChunk),
                State::Data { remaining } => {
                    let available = input.len() - pos;
                    // `take` fits in usize because it is at most `available`.
                    let take = remaining.min(available as u64) as usize;
                    sink(&input[pos..pos + take]);
                    pos += take;
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining }
                    };
                }
                _ => {
                    let byte = input[pos];
                    pos += 1;
                    match self.step(byte) {
                        Ok(state) => self.state = state,
                        Err(e) => {
                            self.state = State::Failed;
                            return Err(e);
                        }
                    }
                }
            }
        }
        if self.state == State::Failed {
            return Err(HttpError::BadChunk);
        }
        Ok(ChunkedProgress {
            consumed: pos,
            done: self.state == State::Done,
        })
    }

    /// One framing byte (any state but `Data`, `Done`, `Failed`).
    fn step(&mut self, byte: u8) -> Result<State, HttpError> {
        self.line_bytes += 1;
        if self.line_bytes > self.line_bytes_max {
            return Err(HttpError::BadChunk);
        }
        let next = match (self.state, byte) {
            (State::SizeStart, _) => match hex_value(byte) {
                Some(digit) => self.checked_size(digit)?,
                None => return Err(HttpError::BadChunk),
            },
            (State::Size { size }, b' ' | b'\t') => State::SizeSpace { size },
            (State::Size { size }, b';') | (State::SizeSpace { size }, b';') => {
                State::Extension { size }
            }
            (
                State::Size { size } | State::SizeSpace { size } | State::Extension { size },
                b'\r',
            ) => State::SizeLf { size },
            (State::Size { size }, _) => match hex_value(byte) {
                Some(digit) => {
                    let size = size.checked_mul(16).ok_or(HttpError::BadChunk)?;
                    self.checked_size(size.checked_add(digit).ok_or(HttpError::BadChunk)?)?
                }
                None => return Err(HttpError::BadChunk),
            },
            (State::SizeSpace { size }, b' ' | b'\t') => State::SizeSpace { size },
            (State::Extension { size }, _) if !is_forbidden_in_line(byte) => {
                State::Extension { size }
            }
            (State::SizeLf { size }, b'\n') => {
                self.line_bytes = 0;
                if size == 0 {
                    State::TrailerLineStart
                } else {
                    State::Data { remaining: size }
                }
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => {
                self.line_bytes = 0;
                State::SizeStart
            }
            (State::TrailerLineStart, b'\r') => State::EndLf,
            (State::TrailerLine, b'\r') => State::TrailerLineLf,
            (State::TrailerLineStart | State::TrailerLine, _) if !is_forbidden_in_line(byte) => {
                State::TrailerLine
            }
            (State::TrailerLineLf, b'\n') => State::TrailerLineStart,
            (State::EndLf, b'\n') => State::Done,
            _ => return Err(HttpError::BadChunk),
        };
        Ok(next)
    }

    fn checked_size(&self, size: u64) -> Result<State, HttpError> {
        if size > self.chunk_bytes_max {
            Err(HttpError::BadChunk)
        } else {
            Ok(State::Size { size })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `input` in one call, returning (body, progress).
    fn decode_all(
        decoder: &mut ChunkedDecoder,
        input: &[u8],
    ) -> Result<(Vec<u8>, ChunkedProgress), HttpError> {
        let mut body = Vec::new();
        let progress = decoder.decode(input, &mut |data: &[u8]| body.extend_from_slice(data))?;
        Ok((body, progress))
    }

    const BODY: &[u8] = b"5\r\nhello\r\n6;name=value;flag\r\n world\r\n1A \t; ext = \"quoted\"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\nOther: o\r\n\r\nNEXT";

    fn body_text() -> Vec<u8> {
        b"hello worldabcdefghijklmnopqrstuvwxyz".to_vec()
    }

    #[test]
    fn whole_body_with_extensions_and_trailers() {
        let mut decoder = ChunkedDecoder::new(1 << 20);
        let (body, progress) = decode_all(&mut decoder, BODY).unwrap();
        assert_eq!(body, body_text());
        assert_eq!(
            progress,
            ChunkedProgress {
                consumed: BODY.len() - 4,
                done: true
            }
        );
        assert!(decoder.is_done());
        // Once done, nothing more is consumed: the rest is the next request.
        assert_eq!(
            decode_all(&mut decoder, b"NEXT").unwrap(),
            (
                vec![],
                ChunkedProgress {
                    consumed: 0,
                    done: true
                }
            )
        );
    }

    #[test]
    fn every_two_way_split_equals_the_whole() {
        let end = BODY.len() - 4;
        for split in 0..=end {
            let mut decoder = ChunkedDecoder::new(1 << 20);
            let (mut body, first) = decode_all(&mut decoder, &BODY[..split]).unwrap();
            assert_eq!(
                first,
                ChunkedProgress {
                    consumed: split,
                    done: split == end
                },
                "split {split}"
            );
            let (rest, second) = decode_all(&mut decoder, &BODY[split..]).unwrap();
            body.extend_from_slice(&rest);
            assert_eq!(body, body_text(), "split {split}");
            assert_eq!(
                second,
                ChunkedProgress {
                    consumed: end - split,
                    done: true
                }
            );
        }
    }

    #[test]
    fn byte_at_a_time_equals_the_whole() {
        let mut decoder = ChunkedDecoder::new(1 << 20);
        let mut body = Vec::new();
        let mut pieces = 0;
        for (i, byte) in BODY.iter().enumerate() {
            let progress = decoder
                .decode(std::slice::from_ref(byte), &mut |data: &[u8]| {
                    pieces += 1;
                    body.extend_from_slice(data)
                })
                .unwrap();
            if progress.done {
                assert_eq!(i, BODY.len() - 5);
                break;
            }
            assert_eq!(progress.consumed, 1);
        }
        assert_eq!(body, body_text());
        assert_eq!(pieces, body_text().len());
    }

    #[test]
    fn empty_body() {
        let mut decoder = ChunkedDecoder::new(0);
        let (body, progress) = decode_all(&mut decoder, b"0\r\n\r\n").unwrap();
        assert!(body.is_empty());
        assert_eq!(
            progress,
            ChunkedProgress {
                consumed: 5,
                done: true
            }
        );
        assert_eq!(CHUNK_LINE_BYTES_MAX_DEFAULT, decoder.line_bytes_max);
    }

    #[test]
    fn leading_zeros_and_uppercase_hex() {
        let mut decoder = ChunkedDecoder::new(1 << 20);
        let (body, progress) =
            decode_all(&mut decoder, b"000A\r\n0123456789\r\n00\r\n\r\n").unwrap();
        assert_eq!(body, b"0123456789");
        assert!(progress.done);
    }

    #[test]
    fn bad_chunks() {
        let cases: [&[u8]; 16] = [
            b"\r\n",                    // no size
            b"g\r\n",                   // not hex
            b"-1\r\n",                  // sign
            b"0x5\r\nhello\r\n",        // 0x prefix
            b"5\nhello\r\n",            // bare LF after size
            b"5\r\nhelloX\r\n",         // data longer than announced
            b"5\r\nhello\n0\r\n\r\n",   // bare LF after data
            b"5 5\r\n",                 // space inside the size
            b"5;ext\nhello",            // bare LF in an extension
            b"5;e\x01\r\n",             // control byte in an extension
            b"0\r\nTrailer\n\r\n",      // bare LF in a trailer
            b"0\r\nBad\x00: x\r\n\r\n", // NUL in a trailer
            b"0\r\n\rX",                // CR not followed by LF at the end
            b"401\r\n",                 // larger than chunk_bytes_max (1024)
            b"FFFFFFFFFFFFFFFFF\r\n",   // would overflow u64
            b"5\r\nhello\r\r",          // CR CR
        ];
        for case in cases {
            let mut decoder = ChunkedDecoder::new(1024);
            assert_eq!(
                decode_all(&mut decoder, case),
                Err(HttpError::BadChunk),
                "{}",
                String::from_utf8_lossy(case)
            );
            // The decoder stays failed.
            assert_eq!(
                decode_all(&mut decoder, b"0\r\n\r\n"),
                Err(HttpError::BadChunk)
            );
        }
        // Exactly chunk_bytes_max is fine.
        let mut decoder = ChunkedDecoder::new(3);
        assert_eq!(
            decode_all(&mut decoder, b"3\r\nabc\r\n0\r\n\r\n")
                .unwrap()
                .0,
            b"abc"
        );
    }

    #[test]
    fn size_line_and_trailer_bounds() {
        let long_ext = format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(20));
        let mut tight = ChunkedDecoder::new(1024).with_line_bytes_max(16);
        assert_eq!(
            decode_all(&mut tight, long_ext.as_bytes()),
            Err(HttpError::BadChunk)
        );
        let mut roomy = ChunkedDecoder::new(1024).with_line_bytes_max(32);
        assert_eq!(decode_all(&mut roomy, long_ext.as_bytes()).unwrap().0, b"a");

        let long_trailers = format!("0\r\n{}", "T: v\r\n".repeat(10));
        let mut tight = ChunkedDecoder::new(1024).with_line_bytes_max(40);
        assert_eq!(
            decode_all(&mut tight, long_trailers.as_bytes()),
            Err(HttpError::BadChunk)
        );
    }

    /// Encodes `chunks` the way a sender would, with the helpers from `response`.
    fn encode(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            super::super::write_chunk_header(chunk.len(), &mut out);
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(super::super::CHUNK_TRAILER_LAST);
        out
    }

    proptest! {
        #[test]
        fn round_trip_at_any_split(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8),
            split_permille in 0usize..=1000,
        ) {
            let encoded = encode(&chunks);
            let split = encoded.len() * split_permille / 1000;
            let mut decoder = ChunkedDecoder::new(1 << 20);
            let (mut body, first) = decode_all(&mut decoder, &encoded[..split]).unwrap();
            let (rest, second) = decode_all(&mut decoder, &encoded[split..]).unwrap();
            body.extend_from_slice(&rest);
            prop_assert_eq!(body, chunks.concat());
            prop_assert_eq!(first.consumed + second.consumed, encoded.len());
            prop_assert!(second.done);
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_consume_within_bounds(
            input in prop::collection::vec(any::<u8>(), 0..400),
            split in 0usize..400,
        ) {
            let split = split.min(input.len());
            let mut decoder = ChunkedDecoder::new(64).with_line_bytes_max(32);
            let mut delivered = 0usize;
            let mut sink = |data: &[u8]| delivered += data.len();
            if let Ok(first) = decoder.decode(&input[..split], &mut sink) {
                prop_assert!(first.consumed <= split);
                if let Ok(second) = decoder.decode(&input[split..], &mut sink) {
                    prop_assert!(second.consumed <= input.len() - split);
                }
            }
            prop_assert!(delivered <= input.len());
        }
    }
}
