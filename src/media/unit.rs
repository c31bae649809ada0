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
///
/// Equality compares the media (every field but `flv_tag`, which is storage: the same unit may
/// or may not arrive inside a serialised tag).
#[derive(Clone, Debug)]
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
    /// The buffer the FLV tag `body` was received in, when the unit comes from the FLV
    /// demuxer: the demuxer's room before the tag (`FlvDemuxer::with_room`), the 11-byte
    /// header, the body, PreviousTagSize and the room after; `body` is a slice of it, the same
    /// memory. The publisher turns it into the ring entry by rewriting the 11-byte
    /// header in place, so the payload is not copied again. `None` for units from elsewhere
    /// (tests, later RTMP): the publisher then serialises the tag afresh (one copy). A value
    /// that does not hold `body` at that offset is ignored the same way.
    pub flv_tag: Option<Bytes>,
}

impl PartialEq for MediaUnit {
    fn eq(&self, other: &Self) -> bool {
        // Destructured so that a new field cannot be forgotten here.
        let MediaUnit {
            kind,
            codec,
            keyframe,
            config,
            dts_ms,
            cts_ms,
            body,
            payload_offset,
            flv_tag: _,
        } = self;
        *kind == other.kind
            && *codec == other.codec
            && *keyframe == other.keyframe
            && *config == other.config
            && *dts_ms == other.dts_ms
            && *cts_ms == other.cts_ms
            && *body == other.body
            && *payload_offset == other.payload_offset
    }
}

impl Eq for MediaUnit {}

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
