//! `onMetaData`: what an encoder says about its stream (size, frame rate, bitrates), used for
//! stream info and QoS. It is advisory: the codec configuration records are authoritative.

use bytes::Bytes;

use crate::proto::amf0::{self, Amf0Value};

const ON_METADATA: &str = "onMetaData";
const SET_DATA_FRAME: &str = "@setDataFrame";
/// AMF0 encoding of the string `@setDataFrame`: marker, u16 length 13, the text.
const SET_DATA_FRAME_AMF0: &[u8] = b"\x02\x00\x0d@setDataFrame";

/// The fields of `onMetaData` we use. Every field is optional: encoders differ in what they send.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamMetadata {
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub framerate: Option<f64>,
    pub video_data_rate_kbps: Option<f64>,
    pub audio_data_rate_kbps: Option<f64>,
    pub audio_sample_rate: Option<u32>,
    pub audio_channels: Option<u8>,
    /// FLV video codec id (7 = AVC), or an Enhanced RTMP FourCC as a number.
    pub video_codec_id: Option<f64>,
    /// FLV sound format (10 = AAC), or an Enhanced RTMP FourCC as a number.
    pub audio_codec_id: Option<f64>,
    pub encoder: Option<String>,
}

/// Parses a script tag body of the form `"onMetaData", {..}` (FLV files, ffmpeg) or
/// `"@setDataFrame", "onMetaData", {..}` (RTMP publishers); the properties may be an ECMA
/// array or an object. Returns `None` for other script data or malformed AMF0.
pub fn parse_on_metadata(script_body: &[u8]) -> Option<StreamMetadata> {
    let (first, mut used) = amf0::decode(script_body).ok()?;
    let mut name = first.as_str()?;
    if name == SET_DATA_FRAME {
        let (second, len) = amf0::decode(script_body.get(used..)?).ok()?;
        used += len;
        name = second.as_str()?;
    }
    if name != ON_METADATA {
        return None;
    }
    let (props, _) = amf0::decode(script_body.get(used..)?).ok()?;
    let props = props.properties()?;
    let number = |key: &str| {
        props
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.as_number())
            .filter(|n| n.is_finite())
    };
    let get = |key: &str| props.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
    // `as` saturates and maps NaN to 0; the values were checked finite and non-negative.
    let unsigned = |n: f64| (n >= 0.0).then_some(n as u32);
    let audio_channels = number("audiochannels")
        .and_then(|n| (n >= 0.0 && n <= f64::from(u8::MAX)).then_some(n as u8))
        .or_else(|| match get("stereo") {
            Some(Amf0Value::Bool(stereo)) => Some(if *stereo { 2 } else { 1 }),
            _ => None,
        });
    Some(StreamMetadata {
        width: number("width").and_then(unsigned),
        height: number("height").and_then(unsigned),
        framerate: number("framerate").or_else(|| number("fps")),
        video_data_rate_kbps: number("videodatarate"),
        audio_data_rate_kbps: number("audiodatarate"),
        audio_sample_rate: number("audiosamplerate").and_then(unsigned),
        audio_channels,
        video_codec_id: number("videocodecid"),
        audio_codec_id: number("audiocodecid"),
        encoder: get("encoder").and_then(|v| v.as_str()).map(str::to_owned),
    })
}

/// Turns `"@setDataFrame", "onMetaData", {..}` (what RTMP publishers send) into
/// `"onMetaData", {..}` (what players expect in an FLV stream) by slicing off the first value;
/// no copy. Any other body is returned unchanged.
pub fn strip_set_data_frame(script_body: Bytes) -> Bytes {
    if script_body.starts_with(SET_DATA_FRAME_AMF0) {
        script_body.slice(SET_DATA_FRAME_AMF0.len()..)
    } else {
        script_body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::amf0::{write_ecma_array, write_object, write_string};

    fn metadata_props() -> Vec<(&'static str, Amf0Value<'static>)> {
        vec![
            ("width", Amf0Value::Number(1280.0)),
            ("height", Amf0Value::Number(720.0)),
            ("fps", Amf0Value::Number(29.97)),
            ("videodatarate", Amf0Value::Number(2500.0)),
            ("audiodatarate", Amf0Value::Number(128.0)),
            ("audiosamplerate", Amf0Value::Number(48000.0)),
            ("audiochannels", Amf0Value::Number(2.0)),
            ("videocodecid", Amf0Value::Number(7.0)),
            ("audiocodecid", Amf0Value::Number(10.0)),
            ("encoder", Amf0Value::String("obs-output module")),
        ]
    }

    fn expected() -> StreamMetadata {
        StreamMetadata {
            width: Some(1280),
            height: Some(720),
            framerate: Some(29.97),
            video_data_rate_kbps: Some(2500.0),
            audio_data_rate_kbps: Some(128.0),
            audio_sample_rate: Some(48000),
            audio_channels: Some(2),
            video_codec_id: Some(7.0),
            audio_codec_id: Some(10.0),
            encoder: Some("obs-output module".into()),
        }
    }

    #[test]
    fn set_data_frame_form_with_object_parses_and_strips() {
        let mut body = Vec::new();
        write_string(&mut body, "@setDataFrame");
        write_string(&mut body, "onMetaData");
        write_object(&mut body, &metadata_props());
        assert_eq!(parse_on_metadata(&body), Some(expected()));

        let body = Bytes::from(body);
        let stripped = strip_set_data_frame(body.clone());
        assert_eq!(&stripped[..], &body[16..]);
        assert_eq!(stripped.as_ptr(), body[16..].as_ptr(), "sliced, not copied");
        assert_eq!(&stripped[..13], b"\x02\x00\x0aonMetaData");
        assert_eq!(parse_on_metadata(&stripped), Some(expected()));
        // Already in file form: unchanged.
        assert_eq!(strip_set_data_frame(stripped.clone()), stripped);
    }

    #[test]
    fn on_metadata_form_with_ecma_array_and_stereo_flag() {
        let mut body = Vec::new();
        write_string(&mut body, "onMetaData");
        write_ecma_array(
            &mut body,
            &[
                ("width", Amf0Value::Number(320.0)),
                ("stereo", Amf0Value::Bool(false)),
                ("height", Amf0Value::String("oops")),
            ],
        );
        let meta = parse_on_metadata(&body).unwrap();
        assert_eq!(meta.width, Some(320));
        assert_eq!(meta.audio_channels, Some(1));
        assert_eq!(meta.height, None, "a string height is ignored");
        assert_eq!(meta.framerate, None);
    }

    #[test]
    fn other_script_data_is_not_metadata() {
        let mut body = Vec::new();
        write_string(&mut body, "onCuePoint");
        write_object(&mut body, &[]);
        assert_eq!(parse_on_metadata(&body), None);
        let mut body = Vec::new();
        write_string(&mut body, "@setDataFrame");
        write_string(&mut body, "onTextData");
        write_object(&mut body, &[]);
        assert_eq!(parse_on_metadata(&body), None);
        assert_eq!(parse_on_metadata(&[]), None);
        assert_eq!(parse_on_metadata(b"\x02\x00\x0aonMetaData"), None);
        // Negative or non-finite sizes are dropped, not wrapped.
        let mut body = Vec::new();
        write_string(&mut body, "onMetaData");
        write_object(
            &mut body,
            &[
                ("width", Amf0Value::Number(-5.0)),
                ("height", Amf0Value::Number(f64::NAN)),
            ],
        );
        let meta = parse_on_metadata(&body).unwrap();
        assert_eq!((meta.width, meta.height), (None, None));
    }
}
