//! Classifying an FLV tag body (= an RTMP audio/video/data message payload) into a
//! [`MediaUnit`]: codec, keyframe, sequence header, composition time and where the codec
//! payload starts. The body itself is kept as is.

use bytes::Bytes;

use super::{FlvError, TAG_TYPE_AUDIO, TAG_TYPE_SCRIPT, TAG_TYPE_VIDEO};
use crate::media::unit::{Codec, MediaUnit, UnitKind};

// Legacy video tag header: FrameType (UB4) | CodecID (UB4).
const FRAME_KEY: u8 = 1;
/// "Generated keyframe (reserved for server use)": a key frame a server synthesised for seeking.
const FRAME_GENERATED_KEY: u8 = 4;
/// Video info/command frame: carries a one-byte command, no picture.
const FRAME_COMMAND: u8 = 5;
const VIDEO_CODEC_AVC: u8 = 7;
/// Not in the Adobe spec; the id Chinese CDNs and some OBS/ffmpeg forks use for HEVC with the
/// same layout as AVC.
const VIDEO_CODEC_HEVC_LEGACY: u8 = 12;
const AVC_SEQUENCE_HEADER: u8 = 0;
const AVC_NALU: u8 = 1;

// Enhanced RTMP video: IsExHeader (UB1) | FrameType (UB3) | PacketType (UB4) | FourCC.
const EX_HEADER: u8 = 0x80;
const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_SEQUENCE_END: u8 = 2;
const EX_CODED_FRAMES_X: u8 = 3;
const EX_METADATA: u8 = 4;
const EX_MPEG2TS_SEQUENCE_START: u8 = 5;
const EX_MULTICHANNEL_CONFIG: u8 = 4;

// Audio tag header: SoundFormat (UB4) | rate (UB2) | size (UB1) | type (UB1).
const SOUND_MP3: u8 = 2;
const SOUND_EX_HEADER: u8 = 9;
const SOUND_AAC: u8 = 10;
const SOUND_MP3_8KHZ: u8 = 14;
const AAC_SEQUENCE_HEADER: u8 = 0;

/// `Codec::Other` value for an Enhanced RTMP video FourCC we do not know (0 is not a legacy
/// video codec id, so it cannot be confused with one).
const VIDEO_OTHER_FOURCC: u8 = 0;

/// Classifies one tag body. `tag_type` is the FLV tag type / RTMP message type id (8 audio,
/// 9 video, 18 script data; RTMP's AMF0 data message is also 18).
///
/// Returns [`FlvError::NotMedia`] for tags to skip (video info/command frames, Enhanced RTMP
/// video metadata and MPEG-2 TS sequence start), [`FlvError::Truncated`] when the body is
/// shorter than the codec header its first byte announces, and [`FlvError::BadTagType`] for
/// other tag types. Script bodies are passed through unparsed.
pub fn classify_tag(tag_type: u8, timestamp_ms: u32, body: Bytes) -> Result<MediaUnit, FlvError> {
    let shape = match tag_type {
        TAG_TYPE_AUDIO => classify_audio(&body)?,
        TAG_TYPE_VIDEO => classify_video(&body)?,
        TAG_TYPE_SCRIPT => Shape {
            kind: UnitKind::Script,
            codec: Codec::None,
            keyframe: false,
            config: false,
            cts_ms: 0,
            payload_offset: 0,
        },
        other => return Err(FlvError::BadTagType(other)),
    };
    Ok(MediaUnit {
        kind: shape.kind,
        codec: shape.codec,
        keyframe: shape.keyframe,
        config: shape.config,
        dts_ms: timestamp_ms,
        cts_ms: shape.cts_ms,
        body,
        payload_offset: shape.payload_offset,
        flv_tag: None,
    })
}

/// Everything about a unit that is read from its body.
struct Shape {
    kind: UnitKind,
    codec: Codec,
    keyframe: bool,
    config: bool,
    cts_ms: i32,
    payload_offset: usize,
}

fn need(body: &[u8], len: usize) -> Result<(), FlvError> {
    if body.len() < len {
        Err(FlvError::Truncated)
    } else {
        Ok(())
    }
}

/// Reads a 24-bit big-endian signed integer (FLV composition time).
fn si24(bytes: &[u8]) -> i32 {
    let raw = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
    // Shift the sign bit into bit 31, then back with an arithmetic shift.
    ((raw << 8) as i32) >> 8
}

fn video_fourcc(fourcc: &[u8]) -> Codec {
    match fourcc {
        b"avc1" => Codec::H264,
        b"hvc1" => Codec::Hevc,
        b"av01" => Codec::Av1,
        b"vp09" => Codec::Vp9,
        _ => Codec::Other(VIDEO_OTHER_FOURCC),
    }
}

fn audio_fourcc(fourcc: &[u8]) -> Codec {
    match fourcc {
        b"Opus" => Codec::Opus,
        b"mp4a" => Codec::Aac,
        b".mp3" => Codec::Mp3,
        _ => Codec::Other(SOUND_EX_HEADER),
    }
}

fn classify_video(body: &[u8]) -> Result<Shape, FlvError> {
    let first = *body.first().ok_or(FlvError::EmptyVideoTag)?;
    if first & EX_HEADER != 0 {
        return classify_video_ex(body, first);
    }
    let frame_type = first >> 4;
    if frame_type == FRAME_COMMAND {
        return Err(FlvError::NotMedia);
    }
    let codec_id = first & 0x0F;
    let is_key = frame_type == FRAME_KEY || frame_type == FRAME_GENERATED_KEY;
    match codec_id {
        VIDEO_CODEC_AVC | VIDEO_CODEC_HEVC_LEGACY => {
            // FrameType|CodecID, AVCPacketType, CompositionTime (SI24), then data.
            need(body, 5)?;
            let codec = if codec_id == VIDEO_CODEC_AVC {
                Codec::H264
            } else {
                Codec::Hevc
            };
            let packet_type = body[1];
            let config = packet_type == AVC_SEQUENCE_HEADER;
            let coded = packet_type == AVC_NALU;
            Ok(Shape {
                kind: UnitKind::Video,
                codec,
                keyframe: coded && is_key,
                config,
                // Only NALU packets carry a meaningful composition time.
                cts_ms: if coded { si24(&body[2..5]) } else { 0 },
                payload_offset: 5,
            })
        }
        other => Ok(Shape {
            kind: UnitKind::Video,
            codec: Codec::Other(other),
            keyframe: is_key,
            config: false,
            cts_ms: 0,
            payload_offset: 1,
        }),
    }
}

fn classify_video_ex(body: &[u8], first: u8) -> Result<Shape, FlvError> {
    let frame_type = (first >> 4) & 0x07;
    let packet_type = first & 0x0F;
    if frame_type == FRAME_COMMAND
        || packet_type == EX_METADATA
        || packet_type == EX_MPEG2TS_SEQUENCE_START
    {
        return Err(FlvError::NotMedia);
    }
    let is_key = frame_type == FRAME_KEY || frame_type == FRAME_GENERATED_KEY;
    match packet_type {
        EX_SEQUENCE_START | EX_CODED_FRAMES | EX_SEQUENCE_END | EX_CODED_FRAMES_X => {
            need(body, 5)?;
            let codec = video_fourcc(&body[1..5]);
            let coded = packet_type == EX_CODED_FRAMES || packet_type == EX_CODED_FRAMES_X;
            // Only AVC and HEVC CodedFrames carry a composition time after the FourCC;
            // CodedFramesX is the same without it (cts = 0).
            let (cts_ms, payload_offset) =
                if packet_type == EX_CODED_FRAMES && matches!(codec, Codec::H264 | Codec::Hevc) {
                    need(body, 8)?;
                    (si24(&body[5..8]), 8)
                } else {
                    (0, 5)
                };
            Ok(Shape {
                kind: UnitKind::Video,
                codec,
                keyframe: coded && is_key,
                config: packet_type == EX_SEQUENCE_START,
                cts_ms,
                payload_offset,
            })
        }
        // Multitrack, ModEx and packet types defined after E-RTMP v2: their layout differs, so
        // relay the body opaquely (FLV/RTMP viewers get it unchanged; repackagers see an empty
        // payload) and keep only the key-frame flag for GOP alignment.
        _ => Ok(Shape {
            kind: UnitKind::Video,
            codec: Codec::Other(VIDEO_OTHER_FOURCC),
            keyframe: is_key,
            config: false,
            cts_ms: 0,
            payload_offset: body.len(),
        }),
    }
}

fn classify_audio(body: &[u8]) -> Result<Shape, FlvError> {
    let first = *body.first().ok_or(FlvError::EmptyAudioTag)?;
    let sound_format = first >> 4;
    let audio = |codec, config, payload_offset| Shape {
        kind: UnitKind::Audio,
        codec,
        keyframe: false,
        config,
        cts_ms: 0,
        payload_offset,
    };
    match sound_format {
        SOUND_AAC => {
            need(body, 2)?;
            Ok(audio(Codec::Aac, body[1] == AAC_SEQUENCE_HEADER, 2))
        }
        SOUND_MP3 | SOUND_MP3_8KHZ => Ok(audio(Codec::Mp3, false, 1)),
        SOUND_EX_HEADER => {
            let packet_type = first & 0x0F;
            match packet_type {
                // SequenceStart, CodedFrames, SequenceEnd, MultichannelConfig: FourCC follows.
                // MultichannelConfig is configuration a new viewer needs before frames, so it is
                // flagged like a sequence header.
                0..=2 | EX_MULTICHANNEL_CONFIG => {
                    need(body, 5)?;
                    let config =
                        packet_type == EX_SEQUENCE_START || packet_type == EX_MULTICHANNEL_CONFIG;
                    Ok(audio(audio_fourcc(&body[1..5]), config, 5))
                }
                // Multitrack, ModEx, later types: opaque pass-through.
                _ => Ok(audio(Codec::Other(SOUND_EX_HEADER), false, body.len())),
            }
        }
        other => Ok(audio(Codec::Other(other), false, 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(tag_type: u8, body: &[u8]) -> Result<MediaUnit, FlvError> {
        classify_tag(tag_type, 1234, Bytes::copy_from_slice(body))
    }

    #[test]
    fn avc_sequence_header_is_config() {
        let u = classify(9, &[0x17, 0x00, 0x00, 0x00, 0x00, 0x01, 0x64]).unwrap();
        assert_eq!(
            (u.kind, u.codec, u.keyframe, u.config, u.cts_ms),
            (UnitKind::Video, Codec::H264, false, true, 0)
        );
        assert_eq!(u.payload(), &[0x01, 0x64]);
        assert_eq!(u.dts_ms, 1234);
    }

    #[test]
    fn avc_nalu_reads_signed_composition_time() {
        let u = classify(9, &[0x17, 0x01, 0x00, 0x00, 0x50, 0xAA]).unwrap();
        assert!(u.keyframe && !u.config);
        assert_eq!(u.cts_ms, 80);
        assert_eq!(u.pts_ms(), 1314);
        assert_eq!(u.payload(), &[0xAA]);
        let u = classify(9, &[0x27, 0x01, 0xFF, 0xFF, 0xD8, 0xAA]).unwrap();
        assert!(!u.keyframe);
        assert_eq!(u.cts_ms, -40);
        // End of sequence: neither frame nor config, empty payload.
        let u = classify(9, &[0x17, 0x02, 0x00, 0x00, 0x00]).unwrap();
        assert!(!u.keyframe && !u.config);
        assert!(u.payload().is_empty());
    }

    #[test]
    fn legacy_hevc_id_12_uses_avc_layout() {
        let u = classify(9, &[0x1C, 0x01, 0x00, 0x00, 0x28, 0x00, 0x01]).unwrap();
        assert_eq!((u.codec, u.keyframe, u.cts_ms), (Codec::Hevc, true, 40));
        assert_eq!(u.payload_offset, 5);
        let u = classify(9, &[0x1C, 0x00, 0x00, 0x00, 0x00, 0x01]).unwrap();
        assert!(u.config);
    }

    #[test]
    fn other_legacy_video_codecs_pass_through() {
        // Generated keyframe (4) counts as a key frame; VP6 (4).
        let u = classify(9, &[0x44, 0x00, 0x11]).unwrap();
        assert_eq!(
            (u.codec, u.keyframe, u.payload_offset),
            (Codec::Other(4), true, 1)
        );
        let u = classify(9, &[0x22, 0x11]).unwrap();
        assert_eq!((u.codec, u.keyframe), (Codec::Other(2), false));
    }

    #[test]
    fn command_frames_and_ex_metadata_are_not_media() {
        assert_eq!(classify(9, &[0x57, 0x00]), Err(FlvError::NotMedia));
        assert_eq!(classify(9, &[0x52, 0x01]), Err(FlvError::NotMedia));
        // Enhanced: frame type 5 (command), Metadata (4), MPEG2TSSequenceStart (5).
        assert_eq!(
            classify(9, &[0xD1, b'h', b'v', b'c', b'1']),
            Err(FlvError::NotMedia)
        );
        assert_eq!(
            classify(9, &[0x94, b'h', b'v', b'c', b'1', 2]),
            Err(FlvError::NotMedia)
        );
        assert_eq!(
            classify(9, &[0x95, b'a', b'v', b'0', b'1']),
            Err(FlvError::NotMedia)
        );
        assert!(FlvError::NotMedia.is_skippable());
        assert!(!FlvError::Truncated.is_skippable());
    }

    #[test]
    fn enhanced_hevc_coded_frames_carry_cts() {
        // IsExHeader | key frame (1) | CodedFrames (1), 'hvc1', cts = 0x000028, NAL data.
        let body = [
            0x91, b'h', b'v', b'c', b'1', 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x02, 0x26, 0x01,
        ];
        let u = classify(9, &body).unwrap();
        assert_eq!(
            (
                u.kind,
                u.codec,
                u.keyframe,
                u.config,
                u.cts_ms,
                u.payload_offset
            ),
            (UnitKind::Video, Codec::Hevc, true, false, 40, 8)
        );
        assert_eq!(u.payload(), &body[8..]);
        // CodedFramesX: no cts, payload right after the FourCC; inter frame (2).
        let u = classify(9, &[0xA3, b'h', b'v', b'c', b'1', 0x00, 0x01]).unwrap();
        assert_eq!(
            (u.codec, u.keyframe, u.cts_ms, u.payload_offset),
            (Codec::Hevc, false, 0, 5)
        );
        // SequenceStart: hvcC follows the FourCC.
        let u = classify(9, &[0x90, b'h', b'v', b'c', b'1', 0x01, 0x22]).unwrap();
        assert!(u.config && !u.keyframe);
        assert_eq!(u.payload(), &[0x01, 0x22]);
        // SequenceEnd.
        let u = classify(9, &[0x92, b'a', b'v', b'c', b'1']).unwrap();
        assert_eq!((u.codec, u.config, u.keyframe), (Codec::H264, false, false));
    }

    #[test]
    fn enhanced_av1_and_vp9_have_no_cts() {
        let u = classify(9, &[0x91, b'a', b'v', b'0', b'1', 0x12, 0x00]).unwrap();
        assert_eq!(
            (u.codec, u.keyframe, u.cts_ms, u.payload_offset),
            (Codec::Av1, true, 0, 5)
        );
        let u = classify(9, &[0xA1, b'v', b'p', b'0', b'9', 0x12]).unwrap();
        assert_eq!(
            (u.codec, u.keyframe, u.payload_offset),
            (Codec::Vp9, false, 5)
        );
        let u = classify(9, &[0x91, b'x', b'y', b'z', b'w']).unwrap();
        assert_eq!(u.codec, Codec::Other(VIDEO_OTHER_FOURCC));
    }

    #[test]
    fn enhanced_multitrack_passes_through_opaquely() {
        let body = [0x96, 0x01, b'a', b'v', b'0', b'1', 0x00, 0x12];
        let u = classify(9, &body).unwrap();
        assert!(u.keyframe && !u.config);
        assert!(u.payload().is_empty());
        assert_eq!(&u.body[..], &body);
    }

    #[test]
    fn short_video_bodies_are_truncated_or_empty() {
        assert_eq!(classify(9, &[]), Err(FlvError::EmptyVideoTag));
        assert_eq!(
            classify(9, &[0x17, 0x01, 0x00, 0x00]),
            Err(FlvError::Truncated)
        );
        assert_eq!(
            classify(9, &[0x91, b'h', b'v', b'c']),
            Err(FlvError::Truncated)
        );
        // hvc1 CodedFrames needs the 3-byte cts.
        assert_eq!(
            classify(9, &[0x91, b'h', b'v', b'c', b'1', 0]),
            Err(FlvError::Truncated)
        );
    }

    #[test]
    fn aac_and_mp3_audio() {
        let u = classify(8, &[0xAF, 0x00, 0x12, 0x10]).unwrap();
        assert_eq!(
            (u.kind, u.codec, u.config, u.keyframe, u.payload_offset),
            (UnitKind::Audio, Codec::Aac, true, false, 2)
        );
        assert_eq!(u.payload(), &[0x12, 0x10]);
        let u = classify(8, &[0xAF, 0x01, 0x21]).unwrap();
        assert!(!u.config);
        assert_eq!(u.payload(), &[0x21]);
        let u = classify(8, &[0x2F, 0xFF, 0xFB]).unwrap();
        assert_eq!((u.codec, u.payload_offset), (Codec::Mp3, 1));
        let u = classify(8, &[0xE2, 0xFF]).unwrap();
        assert_eq!(u.codec, Codec::Mp3);
        // Speex (11) passes through with its sound format.
        let u = classify(8, &[0xB2, 0x00]).unwrap();
        assert_eq!((u.codec, u.payload_offset), (Codec::Other(11), 1));
        assert_eq!(classify(8, &[]), Err(FlvError::EmptyAudioTag));
        assert_eq!(classify(8, &[0xAF]), Err(FlvError::Truncated));
    }

    #[test]
    fn enhanced_audio_fourccs() {
        let u = classify(8, &[0x90, b'O', b'p', b'u', b's', 0x4F]).unwrap();
        assert_eq!(
            (u.codec, u.config, u.payload_offset),
            (Codec::Opus, true, 5)
        );
        let u = classify(8, &[0x91, b'm', b'p', b'4', b'a', 0x21]).unwrap();
        assert_eq!((u.codec, u.config), (Codec::Aac, false));
        let u = classify(8, &[0x91, b'.', b'm', b'p', b'3']).unwrap();
        assert_eq!(u.codec, Codec::Mp3);
        let u = classify(8, &[0x94, b'f', b'L', b'a', b'C', 0x01]).unwrap();
        assert_eq!((u.codec, u.config), (Codec::Other(9), true));
        let u = classify(8, &[0x95, 0x00]).unwrap();
        assert_eq!((u.codec, u.payload_offset), (Codec::Other(9), 2));
        assert_eq!(classify(8, &[0x91, b'O', b'p']), Err(FlvError::Truncated));
    }

    #[test]
    fn script_and_bad_types() {
        let u = classify(18, &[0x02, 0x00, 0x00]).unwrap();
        assert_eq!(
            (u.kind, u.codec, u.payload_offset, u.cts_ms),
            (UnitKind::Script, Codec::None, 0, 0)
        );
        assert_eq!(u.payload(), &[0x02, 0x00, 0x00]);
        assert_eq!(classify(7, &[1]), Err(FlvError::BadTagType(7)));
    }

    #[test]
    fn body_is_kept_zero_copy() {
        let body = Bytes::from_static(&[0xAF, 0x01, 0x21, 0x22]);
        let u = classify_tag(8, 0, body.clone()).unwrap();
        assert_eq!(u.body.as_ptr(), body.as_ptr());
    }
}
