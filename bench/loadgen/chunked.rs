//! HTTP/1.1 chunked transfer-coding decoder (RFC 9112 §7.1) for the load generator.
//!
//! Sans-IO: [`ChunkedDecoder::decode`] takes received bytes and returns how many it used and
//! the payload slice they carried (borrowed from the input, never copied). Chunk extensions
//! and trailer fields are skipped. Strict about CRLF, because a relay that sends a bare LF is a
//! bug worth seeing in a benchmark.

/// Every way a peer's chunked framing can be wrong; all are the peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk-size line does not start with a hex digit.
    BadSize,
    /// The chunk-size value does not fit [`ChunkedLimits::max_chunk_bytes`].
    ChunkTooLarge,
    /// A chunk-size, extension or trailer line is longer than [`ChunkedLimits::max_line_bytes`].
    LineTooLong,
    /// A CR was not followed by LF, or chunk data was not followed by CRLF.
    BadLineEnd,
}

/// Limits for the decoder; every one is a named field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedLimits {
    /// Longest chunk-size line including extensions, and longest trailer line.
    pub max_line_bytes: usize,
    /// Largest accepted single chunk.
    pub max_chunk_bytes: u64,
}

impl Default for ChunkedLimits {
    fn default() -> Self {
        Self {
            max_line_bytes: 4096,
            max_chunk_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size {
        value: u64,
        digits: usize,
    },
    /// After the digits: optional whitespace and `;ext` up to CR.
    SizeRest {
        value: u64,
    },
    /// Saw CR at the end of the size line; `value` is the chunk size.
    SizeLf {
        value: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// Start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    TrailerLf {
        last: bool,
    },
    /// The zero-size chunk and the final CRLF have been read.
    Done,
}

/// Chunked decoder state; see the module docs.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    limits: ChunkedLimits,
    state: State,
    line_len: usize,
}

impl ChunkedDecoder {
    pub fn new(limits: ChunkedLimits) -> Self {
        Self {
            limits,
            state: State::Size {
                value: 0,
                digits: 0,
            },
            line_len: 0,
        }
    }

    /// True once the last chunk and the trailer section have been read; any bytes after that
    /// belong to the next message (or are garbage for a reader that asked for one).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn count_line_byte(&mut self) -> Result<(), ChunkedError> {
        self.line_len += 1;
        if self.line_len > self.limits.max_line_bytes {
            return Err(ChunkedError::LineTooLong);
        }
        Ok(())
    }

    /// Decodes from `input`. Returns the bytes used and the payload found, which is a
    /// sub-slice of `input`. It stops after one payload slice, so call it again with the rest
    /// until everything is used. When [`Self::is_done`] it uses nothing more.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, &'a [u8]), ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { value, digits } => {
                    if let Some(d) = (b as char).to_digit(16) {
                        self.count_line_byte()?;
                        let value = value
                            .checked_mul(16)
                            .and_then(|v| v.checked_add(u64::from(d)))
                            .filter(|v| *v <= self.limits.max_chunk_bytes)
                            .ok_or(ChunkedError::ChunkTooLarge)?;
                        self.state = State::Size {
                            value,
                            digits: digits + 1,
                        };
                        i += 1;
                    } else if digits == 0 {
                        return Err(ChunkedError::BadSize);
                    } else {
                        self.state = State::SizeRest { value };
                    }
                }
                State::SizeRest { value } => {
                    i += 1;
                    if b == b'\r' {
                        self.state = State::SizeLf { value };
                    } else if b == b'\n' {
                        return Err(ChunkedError::BadLineEnd);
                    } else {
                        // Whitespace and chunk extensions: skipped, but bounded.
                        self.count_line_byte()?;
                    }
                }
                State::SizeLf { value } => {
                    if b != b'\n' {
                        return Err(ChunkedError::BadLineEnd);
                    }
                    i += 1;
                    self.line_len = 0;
                    self.state = if value == 0 {
                        State::TrailerStart
                    } else {
                        State::Data { remaining: value }
                    };
                }
                State::Data { remaining } => {
                    let avail = (input.len() - i) as u64;
                    let n = remaining.min(avail) as usize;
                    let data = &input[i..i + n];
                    let remaining = remaining - n as u64;
                    self.state = if remaining == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining }
                    };
                    return Ok((i + n, data));
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkedError::BadLineEnd);
                    }
                    i += 1;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::BadLineEnd);
                    }
                    i += 1;
                    self.state = State::Size {
                        value: 0,
                        digits: 0,
                    };
                }
                State::TrailerStart => {
                    i += 1;
                    if b == b'\r' {
                        self.state = State::TrailerLf { last: true };
                    } else {
                        self.count_line_byte()?;
                        self.state = State::TrailerLine;
                    }
                }
                State::TrailerLine => {
                    i += 1;
                    if b == b'\r' {
                        self.state = State::TrailerLf { last: false };
                    } else {
                        self.count_line_byte()?;
                    }
                }
                State::TrailerLf { last } => {
                    if b != b'\n' {
                        return Err(ChunkedError::BadLineEnd);
                    }
                    i += 1;
                    self.line_len = 0;
                    if last {
                        self.state = State::Done;
                        return Ok((i, &[]));
                    }
                    self.state = State::TrailerStart;
                }
                State::Done => return Ok((i, &[])),
            }
        }
        Ok((i, &[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes everything, returning the payload and whether the message ended.
    fn decode_all(d: &mut ChunkedDecoder, mut input: &[u8]) -> Result<Vec<u8>, ChunkedError> {
        let mut out = Vec::new();
        while !input.is_empty() && !d.is_done() {
            let (n, data) = d.decode(input)?;
            assert!(n > 0 || d.is_done(), "no progress");
            out.extend_from_slice(data);
            input = &input[n..];
        }
        Ok(out)
    }

    pub(crate) fn encode(payload: &[u8], chunk_bytes: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for c in payload.chunks(chunk_bytes.max(1)) {
            v.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            v.extend_from_slice(c);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"0\r\n\r\n");
        v
    }

    #[test]
    fn decodes_rfc_example_with_extension_and_trailer() {
        let wire = b"4\r\nWiki\r\n5;name=val\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n";
        let mut d = ChunkedDecoder::new(ChunkedLimits::default());
        assert_eq!(
            decode_all(&mut d, wire).unwrap(),
            b"Wikipedia in\r\n\r\nchunks."
        );
        assert!(d.is_done());
    }

    #[test]
    fn leaves_bytes_after_the_end_unused() {
        let mut d = ChunkedDecoder::new(ChunkedLimits::default());
        let wire = b"1\r\nA\r\n0\r\n\r\nHTTP/1.1";
        let (n1, a) = d.decode(wire).unwrap();
        assert_eq!(a, b"A");
        let (n2, rest) = d.decode(&wire[n1..]).unwrap();
        assert!(rest.is_empty());
        assert!(d.is_done());
        assert_eq!(&wire[n1 + n2..], b"HTTP/1.1");
    }

    #[test]
    fn rejects_bad_framing() {
        let cases: [(&[u8], ChunkedError); 5] = [
            (b"zz\r\n", ChunkedError::BadSize),
            (b"3\nabc", ChunkedError::BadLineEnd),
            (b"3\r\nabcX", ChunkedError::BadLineEnd),
            (b"3\r\nabc\rX", ChunkedError::BadLineEnd),
            (b"ffffffffffffffffff\r\n", ChunkedError::ChunkTooLarge),
        ];
        for (wire, want) in cases {
            let mut d = ChunkedDecoder::new(ChunkedLimits::default());
            assert_eq!(decode_all(&mut d, wire), Err(want), "{wire:?}");
        }
        let mut d = ChunkedDecoder::new(ChunkedLimits {
            max_line_bytes: 8,
            ..ChunkedLimits::default()
        });
        assert_eq!(
            decode_all(&mut d, b"1;aaaaaaaaaaaa\r\nA\r\n"),
            Err(ChunkedError::LineTooLong)
        );
        let mut d = ChunkedDecoder::new(ChunkedLimits {
            max_chunk_bytes: 15,
            ..ChunkedLimits::default()
        });
        assert_eq!(
            decode_all(&mut d, b"10\r\n"),
            Err(ChunkedError::ChunkTooLarge)
        );
    }

    proptest! {
        /// Any payload, any chunk size, any split of the wire bytes: same payload out.
        #[test]
        fn round_trip_any_split(
            payload in proptest::collection::vec(any::<u8>(), 0..3000),
            chunk in 1usize..700,
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let wire = encode(&payload, chunk);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.sort_unstable();
            let mut d = ChunkedDecoder::new(ChunkedLimits::default());
            let mut got = Vec::new();
            let mut start = 0;
            for c in cuts.into_iter().chain(std::iter::once(wire.len())) {
                got.extend(decode_all(&mut d, &wire[start..c]).unwrap());
                start = c;
            }
            prop_assert!(d.is_done());
            prop_assert_eq!(got, payload);
        }

        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut d = ChunkedDecoder::new(ChunkedLimits::default());
            let _ = decode_all(&mut d, &data);
        }
    }
}
