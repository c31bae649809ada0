//! FLV: a sans-IO demuxer (bytes in any slicing → [`FlvEvent`]s), the tag-body classifier that
//! RTMP ingest shares ([`classify_tag`]), `onMetaData` parsing and the muxer used to serve
//! HTTP-FLV.
//!
//! File layout (Adobe FLV spec v10.1, annex E; Enhanced RTMP v2 for FourCC codecs):
//! a 9-byte header (`FLV`, version 1, flags, data offset), then `PreviousTagSize0` (u32, 0),
//! then repeated `tag header (11) | tag body | PreviousTagSize (u32 = 11 + body)`.
//!
//! Framing policy:
//! - `PreviousTagSize0` is not checked (there is no previous tag; some writers put junk there).
//! - Every later `PreviousTagSize` must equal `11 + body length` or the demuxer fails with
//!   [`FlvError::PrevTagSizeMismatch`]: ffmpeg, OBS and librtmp write correct values, and a wrong
//!   one means we are no longer reading tag boundaries, after which every "tag" would be garbage.
//! - Unknown tag types and the encryption ("filter") bit are errors, for the same reason and
//!   because we cannot relay content we cannot classify.
//! - Tags that carry no media (legacy video info/command frames, Enhanced RTMP video metadata
//!   and MPEG-2 TS sequence start) are skipped: [`classify_tag`] returns
//!   [`FlvError::NotMedia`] for them and the demuxer drops them silently.

mod demux;
mod metadata;
pub mod mux;
mod tag;
#[cfg(test)]
mod tests;

use std::fmt;

pub use demux::FlvDemuxer;
pub use metadata::{StreamMetadata, parse_on_metadata, strip_set_data_frame};
pub use mux::{
    FLV_HEADER_LEN, tag_header, tag_len, tag_type, write_file_header, write_tag, write_unit,
};
pub use tag::classify_tag;

use crate::media::unit::MediaUnit;

/// FLV tag type of audio tags.
pub const TAG_TYPE_AUDIO: u8 = 8;
/// FLV tag type of video tags.
pub const TAG_TYPE_VIDEO: u8 = 9;
/// FLV tag type of script data (AMF0) tags.
pub const TAG_TYPE_SCRIPT: u8 = 18;

/// Length of an FLV tag header (type, data size, timestamp, extended timestamp, stream id).
pub const TAG_HEADER_LEN: usize = 11;
/// Length of a PreviousTagSize field.
pub const PREV_TAG_SIZE_LEN: usize = 4;
/// Length of the file header proper (without PreviousTagSize0).
pub const FILE_HEADER_LEN: usize = 9;

/// Bounds on what a peer can make the demuxer buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlvLimits {
    /// Largest tag body accepted. The demuxer holds at most one tag body plus a tag header and
    /// a PreviousTagSize, so this bounds the per-publisher buffer. The format's own maximum is
    /// 2^24 - 1 (a 24-bit size field).
    pub tag_bytes_max: u32,
}

impl Default for FlvLimits {
    fn default() -> Self {
        Self {
            tag_bytes_max: 16 * 1024 * 1024,
        }
    }
}

/// What the demuxer yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlvEvent {
    /// The file header; always the first event. The flags are advisory (encoders set them from
    /// the streams they intend to send).
    Header { has_audio: bool, has_video: bool },
    /// One audio/video/script tag.
    Unit(MediaUnit),
}

/// Why FLV input was rejected. All variants except [`FlvError::NotMedia`] are the publisher's
/// fault and end the stream; the demuxer stays failed and keeps returning the same error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlvError {
    /// The first three bytes are not `FLV`.
    BadSignature,
    /// The header version is not 1.
    BadVersion,
    /// The header's data offset is smaller than the 9-byte header itself.
    BadHeaderSize,
    /// A tag body is larger than [`FlvLimits::tag_bytes_max`]; reported from the tag header,
    /// before any of the body is buffered.
    TagTooLarge { size: u32 },
    /// A tag type other than audio (8), video (9) or script (18), or reserved bits set.
    BadTagType(u8),
    /// A PreviousTagSize does not match the tag before it: framing is lost.
    PrevTagSizeMismatch { expected: u32, got: u32 },
    /// A video tag with an empty body (no frame type / codec byte).
    EmptyVideoTag,
    /// An audio tag with an empty body (no sound format byte).
    EmptyAudioTag,
    /// Input ended inside a tag (from [`FlvDemuxer::finish`]), or a tag body is shorter than
    /// the codec header its first byte announces (from [`classify_tag`]).
    Truncated,
    /// The tag's filter bit is set: the body is encrypted (Adobe Access) and cannot be relayed.
    Encrypted,
    /// Not an error of the input: the tag is well formed but carries no media (legacy video
    /// info/command frame, Enhanced RTMP video `Metadata` or `MPEG2TSSequenceStart`). Returned
    /// only by [`classify_tag`]; callers (RTMP ingest) skip the message. The demuxer never
    /// yields it.
    NotMedia,
}

impl FlvError {
    /// Short stable label for logs and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            FlvError::BadSignature => "flv_bad_signature",
            FlvError::BadVersion => "flv_bad_version",
            FlvError::BadHeaderSize => "flv_bad_header_size",
            FlvError::TagTooLarge { .. } => "flv_tag_too_large",
            FlvError::BadTagType(_) => "flv_bad_tag_type",
            FlvError::PrevTagSizeMismatch { .. } => "flv_prev_tag_size_mismatch",
            FlvError::EmptyVideoTag => "flv_empty_video_tag",
            FlvError::EmptyAudioTag => "flv_empty_audio_tag",
            FlvError::Truncated => "flv_truncated",
            FlvError::Encrypted => "flv_encrypted",
            FlvError::NotMedia => "flv_not_media",
        }
    }

    /// Whether the caller should drop the tag and carry on rather than end the stream.
    pub fn is_skippable(&self) -> bool {
        matches!(self, FlvError::NotMedia)
    }
}

impl fmt::Display for FlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlvError::TagTooLarge { size } => write!(f, "FLV tag of {size} bytes is too large"),
            FlvError::BadTagType(t) => write!(f, "bad FLV tag type byte 0x{t:02x}"),
            FlvError::PrevTagSizeMismatch { expected, got } => {
                write!(f, "FLV PreviousTagSize is {got}, expected {expected}")
            }
            other => f.write_str(other.reason()),
        }
    }
}

impl std::error::Error for FlvError {}
