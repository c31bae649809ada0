//! The FLV demuxer state machine.

use bytes::{Buf, BytesMut};

use super::{
    FILE_HEADER_LEN, FlvError, FlvEvent, FlvLimits, PREV_TAG_SIZE_LEN, TAG_HEADER_LEN,
    TAG_TYPE_AUDIO, TAG_TYPE_SCRIPT, TAG_TYPE_VIDEO, classify_tag,
};

const SIGNATURE: &[u8; 3] = b"FLV";
const FLAG_AUDIO: u8 = 0x04;
const FLAG_VIDEO: u8 = 0x01;
/// Tag header byte 0: bits 7-6 reserved (0), bit 5 filter (encrypted), bits 4-0 tag type.
const TAG_RESERVED_MASK: u8 = 0xC0;
const TAG_FILTER: u8 = 0x20;
const TAG_TYPE_MASK: u8 = 0x1F;

/// What the demuxer waits for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The 9-byte file header.
    ExpectHeader,
    /// Header bytes beyond the 9 we understand (data offset > 9): dropped as they arrive.
    SkipHeaderExtra {
        remaining_bytes: u32,
    },
    /// A PreviousTagSize; `None` for PreviousTagSize0, which is not checked.
    ExpectPrevTagSize {
        expected: Option<u32>,
    },
    ExpectTagHeader,
    ExpectTagBody {
        tag_type: u8,
        timestamp_ms: u32,
        size_bytes: u32,
    },
}

/// Sans-IO FLV demuxer: feed bytes with [`push`](Self::push) in whatever slices they arrive,
/// then call [`poll`](Self::poll) until it returns `Ok(None)`; at end of input call
/// [`finish`](Self::finish).
///
/// Tag bodies are split off the internal buffer and frozen, so a [`MediaUnit`] body shares the
/// received bytes without copying them. After `poll` returns `Ok(None)` the demuxer holds less
/// than `max(tag_bytes_max, 11)` bytes (one incomplete header or tag body); a tag whose header
/// announces more than `tag_bytes_max` fails before its body is buffered.
///
/// After an error the demuxer is failed for good: `poll` and `finish` return that error and
/// `push` drops its input.
///
/// [`MediaUnit`]: crate::media::unit::MediaUnit
#[derive(Debug)]
pub struct FlvDemuxer {
    limits: FlvLimits,
    state: State,
    buf: BytesMut,
    failed: Option<FlvError>,
}

impl FlvDemuxer {
    pub fn new(limits: FlvLimits) -> Self {
        Self {
            limits,
            state: State::ExpectHeader,
            buf: BytesMut::new(),
            failed: None,
        }
    }

    /// Appends received bytes. Call [`poll`](Self::poll) until `Ok(None)` after each push so
    /// the buffer stays bounded.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes received but not yet consumed (for tests and buffer accounting).
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// The next event, `Ok(None)` if more bytes are needed.
    pub fn poll(&mut self) -> Result<Option<FlvEvent>, FlvError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        match self.step() {
            Ok(event) => Ok(event),
            Err(error) => {
                self.failed = Some(error);
                // Nothing after a framing error is usable; release the memory now.
                self.buf = BytesMut::new();
                Err(error)
            }
        }
    }

    /// Checks that input ended on a tag boundary. Call after `poll` returned `Ok(None)`.
    ///
    /// A stream that ends after a complete tag but without that tag's trailing PreviousTagSize
    /// is accepted (nothing is lost); so is an empty stream.
    pub fn finish(&self) -> Result<(), FlvError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let at_boundary = match self.state {
            State::ExpectHeader | State::ExpectPrevTagSize { .. } | State::ExpectTagHeader => true,
            State::SkipHeaderExtra { .. } | State::ExpectTagBody { .. } => false,
        };
        if at_boundary && self.buf.is_empty() {
            Ok(())
        } else {
            Err(FlvError::Truncated)
        }
    }

    fn step(&mut self) -> Result<Option<FlvEvent>, FlvError> {
        loop {
            match self.state {
                State::ExpectHeader => {
                    // Reject non-FLV input from its first bytes rather than after nine.
                    let seen = self.buf.len().min(SIGNATURE.len());
                    if self.buf[..seen] != SIGNATURE[..seen] {
                        return Err(FlvError::BadSignature);
                    }
                    if self.buf.len() < FILE_HEADER_LEN {
                        return Ok(None);
                    }
                    if self.buf[3] != 1 {
                        return Err(FlvError::BadVersion);
                    }
                    let flags = self.buf[4];
                    let data_offset =
                        u32::from_be_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]);
                    let extra_bytes = data_offset
                        .checked_sub(FILE_HEADER_LEN as u32)
                        .ok_or(FlvError::BadHeaderSize)?;
                    self.buf.advance(FILE_HEADER_LEN);
                    self.state = if extra_bytes > 0 {
                        State::SkipHeaderExtra {
                            remaining_bytes: extra_bytes,
                        }
                    } else {
                        State::ExpectPrevTagSize { expected: None }
                    };
                    return Ok(Some(FlvEvent::Header {
                        has_audio: flags & FLAG_AUDIO != 0,
                        has_video: flags & FLAG_VIDEO != 0,
                    }));
                }
                State::SkipHeaderExtra { remaining_bytes } => {
                    let skip = self.buf.len().min(remaining_bytes as usize);
                    self.buf.advance(skip);
                    let remaining_bytes = remaining_bytes - skip as u32;
                    if remaining_bytes > 0 {
                        self.state = State::SkipHeaderExtra { remaining_bytes };
                        return Ok(None);
                    }
                    self.state = State::ExpectPrevTagSize { expected: None };
                }
                State::ExpectPrevTagSize { expected } => {
                    if self.buf.len() < PREV_TAG_SIZE_LEN {
                        return Ok(None);
                    }
                    let got = self.buf.get_u32();
                    if let Some(expected) = expected
                        && got != expected
                    {
                        return Err(FlvError::PrevTagSizeMismatch { expected, got });
                    }
                    self.state = State::ExpectTagHeader;
                }
                State::ExpectTagHeader => {
                    if self.buf.len() < TAG_HEADER_LEN {
                        return Ok(None);
                    }
                    let h = &self.buf[..TAG_HEADER_LEN];
                    if h[0] & TAG_RESERVED_MASK != 0 {
                        return Err(FlvError::BadTagType(h[0]));
                    }
                    if h[0] & TAG_FILTER != 0 {
                        return Err(FlvError::Encrypted);
                    }
                    let tag_type = h[0] & TAG_TYPE_MASK;
                    if !matches!(tag_type, TAG_TYPE_AUDIO | TAG_TYPE_VIDEO | TAG_TYPE_SCRIPT) {
                        return Err(FlvError::BadTagType(tag_type));
                    }
                    let size_bytes = u32::from_be_bytes([0, h[1], h[2], h[3]]);
                    if size_bytes > self.limits.tag_bytes_max {
                        return Err(FlvError::TagTooLarge { size: size_bytes });
                    }
                    // 24-bit timestamp, then the extension byte holding bits 31-24.
                    let timestamp_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
                    // h[8..11] is the stream id, always 0 in practice and meaningless to us.
                    self.buf.advance(TAG_HEADER_LEN);
                    self.state = State::ExpectTagBody {
                        tag_type,
                        timestamp_ms,
                        size_bytes,
                    };
                }
                State::ExpectTagBody {
                    tag_type,
                    timestamp_ms,
                    size_bytes,
                } => {
                    let size = size_bytes as usize;
                    if self.buf.len() < size {
                        // No reserve(size) here: memory follows the bytes actually received,
                        // so a peer cannot make us allocate tag_bytes_max with an 11-byte header.
                        return Ok(None);
                    }
                    let body = self.buf.split_to(size).freeze();
                    self.state = State::ExpectPrevTagSize {
                        expected: Some(TAG_HEADER_LEN as u32 + size_bytes),
                    };
                    match classify_tag(tag_type, timestamp_ms, body) {
                        Ok(unit) => return Ok(Some(FlvEvent::Unit(unit))),
                        Err(error) if error.is_skippable() => continue,
                        Err(error) => return Err(error),
                    }
                }
            }
        }
    }
}
