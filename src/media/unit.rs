//! The unit every ingest produces and every output framing consumes.

use bytes::Bytes;

/// What a media unit carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnitKind {
    Audio,
    Video,
    /// Script data (AMF0), e.g. `onMetaData`.
    Script,
}

/// Codec of a unit, as signalled by FLV/RTMP (legacy codec ids or enhanced FourCCs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Hevc,
    Av1,
    Vp9,
    Aac,
    Mp3,
    Opus,
    /// Script data has no codec.
    None,
    /// Another FLV codec id (audio sound format or video codec id) passed through as is.
    Other(u8),
}

/// One demuxed unit: an audio frame, a video frame, a codec configuration record or script data.
///
/// `body` is exactly the FLV tag body (which is also the RTMP message payload), so FLV and RTMP
/// outputs frame it without re-encoding; `body[payload_offset..]` is the codec payload (AVCC NAL
/// units, raw AAC, a decoder configuration record, or AMF0 for script data) for framings that
/// repackage it (MPEG-TS, HLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaUnit {
    pub kind: UnitKind,
    pub codec: Codec,
    /// A video random access point (IDR / key frame). Always false for audio and script.
    pub keyframe: bool,
    /// A sequence header: AVC/HEVC decoder configuration record, AAC AudioSpecificConfig.
    pub config: bool,
    /// Decode timestamp in milliseconds (FLV time base).
    pub dts_ms: u32,
    /// Composition time offset (pts - dts) in milliseconds; 0 for audio and script.
    pub cts_ms: i32,
    /// The FLV tag body.
    pub body: Bytes,
    /// Where the codec payload starts inside `body`.
    pub payload_offset: usize,
}

impl MediaUnit {
    /// The codec payload (`body` after the FLV audio/video tag header fields).
    pub fn payload(&self) -> &[u8] {
        self.body.get(self.payload_offset..).unwrap_or(&[])
    }

    /// Presentation timestamp in milliseconds.
    pub fn pts_ms(&self) -> i64 {
        i64::from(self.dts_ms) + i64::from(self.cts_ms)
    }
}
