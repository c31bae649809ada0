//! The FLV demuxer state machine.

use std::collections::VecDeque;

use bytes::BytesMut;

use super::{
    FILE_HEADER_LEN, FlvError, FlvEvent, FlvLimits, PREV_TAG_SIZE_LEN, TAG_HEADER_LEN,
    TAG_TYPE_AUDIO, TAG_TYPE_SCRIPT, TAG_TYPE_VIDEO, classify_tag, tag_len,
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
    /// The body of the tag in [`FlvDemuxer::tag`], whose header has been checked.
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
/// `push` does the parsing, because the slice it is given is only borrowed: small fixed fields
/// (file header, tag header, PreviousTagSize) are gathered in an 11-byte array, and when a
/// tag's header has arrived one buffer of exactly the serialised tag's size (header, body,
/// PreviousTagSize) is allocated and the body is copied into it straight from the pushed
/// slices, however many pushes it spans. That is the only copy of the payload the demuxer
/// makes: the [`MediaUnit`] body is a slice of that buffer and [`MediaUnit::flv_tag`] is the
/// whole of it, which the publisher turns into a ring entry by rewriting the header in place.
/// Complete units wait in a queue for `poll`; they are bounded by the bytes pushed.
///
/// Memory: when `poll` has returned `Ok(None)` the demuxer holds one incomplete field (under 11
/// bytes) or one incomplete tag, of which [`buffered_len`](Self::buffered_len) counts the body
/// bytes received (less than `tag_bytes_max`). The tag's buffer is reserved at its announced
/// size when its header arrives, so a peer can make us reserve up to `tag_bytes_max + 15`
/// bytes of address space with 11 bytes; the pages are touched (become resident) only as body
/// bytes arrive. A tag whose header announces more than `tag_bytes_max` fails before anything
/// is reserved.
///
/// After an error the demuxer is failed for good: `poll` hands out the events that came
/// before the error, then returns that error, as does `finish`; `push` drops its input.
///
/// [`MediaUnit`]: crate::media::unit::MediaUnit
/// [`MediaUnit::flv_tag`]: crate::media::unit::MediaUnit::flv_tag
#[derive(Debug)]
pub struct FlvDemuxer {
    limits: FlvLimits,
    state: State,
    /// The fixed-size field being read (file header, PreviousTagSize or tag header); its first
    /// `field_len` bytes have arrived.
    field: [u8; TAG_HEADER_LEN],
    field_len: usize,
    /// The tag being received (state `ExpectTagBody`): its header and the body bytes so far,
    /// in a buffer whose capacity is the whole serialised tag. Empty (unallocated) otherwise.
    tag: BytesMut,
    /// Events found by `push`, handed out by `poll`.
    events: VecDeque<FlvEvent>,
    /// Bytes left free before and after each tag in its buffer (see [`FlvDemuxer::with_room`]).
    room_before: usize,
    room_after: usize,
    failed: Option<FlvError>,
}

impl FlvDemuxer {
    pub fn new(limits: FlvLimits) -> Self {
        Self {
            limits,
            state: State::ExpectHeader,
            field: [0; TAG_HEADER_LEN],
            field_len: 0,
            tag: BytesMut::new(),
            events: VecDeque::new(),
            room_before: 0,
            room_after: 0,
            failed: None,
        }
    }

    /// Leave `before` bytes free in front of each tag in its buffer and `after` bytes behind
    /// it, so a consumer can frame the tag in place (an HTTP chunk-size line and CRLF) without
    /// copying it. [`MediaUnit::flv_tag`] is then the whole buffer, room included.
    ///
    /// [`MediaUnit::flv_tag`]: crate::media::unit::MediaUnit::flv_tag
    pub fn with_room(mut self, before: usize, after: usize) -> Self {
        self.room_before = before;
        self.room_after = after;
        self
    }

    /// Parses received bytes; the events they complete are queued for [`poll`](Self::poll).
    /// Call `poll` until `Ok(None)` after each push so the queue stays short.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        while !data.is_empty() {
            if let Err(error) = self.consume(&mut data) {
                self.failed = Some(error);
                // Nothing after a framing error is usable; release the memory now.
                self.tag = BytesMut::new();
                self.field_len = 0;
                return;
            }
        }
    }

    /// Bytes received and held for the field or tag not yet complete: the bytes of a partial
    /// fixed field, or the body bytes of a partial tag (for tests and buffer accounting).
    pub fn buffered_len(&self) -> usize {
        self.field_len
            + self
                .tag
                .len()
                .saturating_sub(self.room_before + TAG_HEADER_LEN)
    }

    /// The next event, `Ok(None)` if more bytes are needed.
    pub fn poll(&mut self) -> Result<Option<FlvEvent>, FlvError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        match self.failed {
            Some(error) => Err(error),
            None => Ok(None),
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
        if at_boundary && self.field_len == 0 {
            Ok(())
        } else {
            Err(FlvError::Truncated)
        }
    }

    /// Moves `len - field_len` bytes (or what `data` has) into `field`; true once it holds
    /// `len` bytes.
    fn fill_field(&mut self, data: &mut &[u8], len: usize) -> bool {
        let take = (len - self.field_len).min(data.len());
        self.field[self.field_len..self.field_len + take].copy_from_slice(&data[..take]);
        self.field_len += take;
        *data = &data[take..];
        self.field_len == len
    }

    /// Consumes a prefix of `data` (at least one byte when `data` is not empty, unless it
    /// fails), queueing any event it completes.
    fn consume(&mut self, data: &mut &[u8]) -> Result<(), FlvError> {
        match self.state {
            State::ExpectHeader => {
                let complete = self.fill_field(data, FILE_HEADER_LEN);
                // Reject non-FLV input from its first bytes rather than after nine.
                let seen = self.field_len.min(SIGNATURE.len());
                if self.field[..seen] != SIGNATURE[..seen] {
                    return Err(FlvError::BadSignature);
                }
                if !complete {
                    return Ok(());
                }
                let h = &self.field;
                if h[3] != 1 {
                    return Err(FlvError::BadVersion);
                }
                let flags = h[4];
                let data_offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
                let extra_bytes = data_offset
                    .checked_sub(FILE_HEADER_LEN as u32)
                    .ok_or(FlvError::BadHeaderSize)?;
                self.field_len = 0;
                self.state = if extra_bytes > 0 {
                    State::SkipHeaderExtra {
                        remaining_bytes: extra_bytes,
                    }
                } else {
                    State::ExpectPrevTagSize { expected: None }
                };
                self.events.push_back(FlvEvent::Header {
                    has_audio: flags & FLAG_AUDIO != 0,
                    has_video: flags & FLAG_VIDEO != 0,
                });
            }
            State::SkipHeaderExtra { remaining_bytes } => {
                let skip = data.len().min(remaining_bytes as usize);
                *data = &data[skip..];
                let remaining_bytes = remaining_bytes - skip as u32;
                self.state = if remaining_bytes > 0 {
                    State::SkipHeaderExtra { remaining_bytes }
                } else {
                    State::ExpectPrevTagSize { expected: None }
                };
            }
            State::ExpectPrevTagSize { expected } => {
                if !self.fill_field(data, PREV_TAG_SIZE_LEN) {
                    return Ok(());
                }
                let f = &self.field;
                let got = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
                self.field_len = 0;
                if let Some(expected) = expected
                    && got != expected
                {
                    return Err(FlvError::PrevTagSizeMismatch { expected, got });
                }
                self.state = State::ExpectTagHeader;
            }
            State::ExpectTagHeader => {
                if !self.fill_field(data, TAG_HEADER_LEN) {
                    return Ok(());
                }
                let h = &self.field;
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
                // h[8..11] is the stream id, always 0 in practice and meaningless to us; the
                // publisher rewrites the whole header anyway.
                // The one allocation of this tag, at its exact serialised size.
                self.tag = BytesMut::with_capacity(
                    self.room_before + tag_len(size_bytes as usize) + self.room_after,
                );
                self.tag.resize(self.room_before, 0);
                self.tag.extend_from_slice(&self.field);
                self.field_len = 0;
                self.state = State::ExpectTagBody {
                    tag_type,
                    timestamp_ms,
                    size_bytes,
                };
                if size_bytes == 0 {
                    self.end_tag(tag_type, timestamp_ms, size_bytes)?;
                }
            }
            State::ExpectTagBody {
                tag_type,
                timestamp_ms,
                size_bytes,
            } => {
                let missing =
                    self.room_before + TAG_HEADER_LEN + size_bytes as usize - self.tag.len();
                let take = missing.min(data.len());
                // The payload's one copy: from the received slice into the tag's buffer
                // (within its capacity, so it never reallocates).
                self.tag.extend_from_slice(&data[..take]);
                *data = &data[take..];
                if take == missing {
                    self.end_tag(tag_type, timestamp_ms, size_bytes)?;
                }
            }
        }
        Ok(())
    }

    /// The body of the tag in `self.tag` is complete: append its PreviousTagSize (computed;
    /// the one received is checked against it when it arrives), classify it and queue the
    /// unit. The tag's buffer moves into the unit.
    fn end_tag(
        &mut self,
        tag_type: u8,
        timestamp_ms: u32,
        size_bytes: u32,
    ) -> Result<(), FlvError> {
        let tag_size = TAG_HEADER_LEN as u32 + size_bytes;
        self.tag.extend_from_slice(&tag_size.to_be_bytes());
        let tag_end = self.tag.len();
        self.tag.resize(tag_end + self.room_after, 0);
        debug_assert_eq!(
            self.tag.len(),
            self.room_before + tag_len(size_bytes as usize) + self.room_after
        );
        self.state = State::ExpectPrevTagSize {
            expected: Some(tag_size),
        };
        let tag = std::mem::take(&mut self.tag).freeze();
        let body_start = self.room_before + TAG_HEADER_LEN;
        let body = tag.slice(body_start..body_start + size_bytes as usize);
        match classify_tag(tag_type, timestamp_ms, body) {
            Ok(mut unit) => {
                unit.flv_tag = Some(tag);
                self.events.push_back(FlvEvent::Unit(unit));
                Ok(())
            }
            Err(error) if error.is_skippable() => Ok(()),
            Err(error) => Err(error),
        }
    }
}
