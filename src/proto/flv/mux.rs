//! FLV muxer: the file header and tags an HTTP-FLV viewer receives. Each unit is serialised
//! once per stream and shared by every viewer, so these functions only append to a `Vec`.

use super::{
    FILE_HEADER_LEN, PREV_TAG_SIZE_LEN, TAG_HEADER_LEN, TAG_TYPE_AUDIO, TAG_TYPE_SCRIPT,
    TAG_TYPE_VIDEO,
};
use crate::media::unit::{MediaUnit, UnitKind};

/// File header (9 bytes) plus PreviousTagSize0 (4 bytes).
pub const FLV_HEADER_LEN: usize = FILE_HEADER_LEN + PREV_TAG_SIZE_LEN;

/// Largest body a tag can carry: its size field is 24 bits.
pub const TAG_BODY_MAX_BYTES: usize = 0xFF_FFFF;

/// Appends the FLV file header and PreviousTagSize0 ([`FLV_HEADER_LEN`] bytes).
pub fn write_file_header(has_audio: bool, has_video: bool, out: &mut Vec<u8>) {
    let flags = (u8::from(has_audio) << 2) | u8::from(has_video);
    out.extend_from_slice(b"FLV\x01");
    out.push(flags);
    out.extend_from_slice(&(FILE_HEADER_LEN as u32).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// Bytes [`write_tag`] appends for a body of `body_len` bytes: header, body, PreviousTagSize.
pub fn tag_len(body_len: usize) -> usize {
    TAG_HEADER_LEN + body_len + PREV_TAG_SIZE_LEN
}

/// The FLV tag type for a unit kind.
pub fn tag_type(kind: UnitKind) -> u8 {
    match kind {
        UnitKind::Audio => TAG_TYPE_AUDIO,
        UnitKind::Video => TAG_TYPE_VIDEO,
        UnitKind::Script => TAG_TYPE_SCRIPT,
    }
}

/// The 11-byte header of a tag with a body of `body_len` bytes: type, 24-bit size, the
/// timestamp as 24 bits plus the 8-bit extension (so the full 32-bit millisecond range
/// survives, about 49 days before it wraps), stream id 0.
///
/// # Panics
/// If `body_len` is larger than [`TAG_BODY_MAX_BYTES`]. Units come from FLV or RTMP, whose
/// length fields are 24-bit too, so a longer body is a programming error.
pub fn tag_header(tag_type: u8, timestamp_ms: u32, body_len: usize) -> [u8; TAG_HEADER_LEN] {
    assert!(
        body_len <= TAG_BODY_MAX_BYTES,
        "FLV tag body of {body_len} bytes exceeds the 24-bit size field"
    );
    let size = (body_len as u32).to_be_bytes();
    let ts = timestamp_ms.to_be_bytes();
    [
        tag_type, size[1], size[2], size[3], ts[1], ts[2], ts[3], ts[0], 0, 0, 0,
    ]
}

/// Appends one tag: its [`tag_header`], `body`, and PreviousTagSize (`11 + body.len()`).
///
/// # Panics
/// If `body` is longer than [`TAG_BODY_MAX_BYTES`] (see [`tag_header`]).
pub fn write_tag(tag_type: u8, timestamp_ms: u32, body: &[u8], out: &mut Vec<u8>) {
    let header = tag_header(tag_type, timestamp_ms, body.len());
    out.reserve(tag_len(body.len()));
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out.extend_from_slice(&((TAG_HEADER_LEN + body.len()) as u32).to_be_bytes());
}

/// Appends `unit` as a tag: type from its kind, timestamp = `dts_ms`, body unchanged (the
/// composition time and codec headers are inside the body already).
pub fn write_unit(unit: &MediaUnit, out: &mut Vec<u8>) {
    write_tag(tag_type(unit.kind), unit.dts_ms, &unit.body, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header_bytes() {
        let mut out = Vec::new();
        write_file_header(true, true, &mut out);
        assert_eq!(out, b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        assert_eq!(out.len(), FLV_HEADER_LEN);
        out.clear();
        write_file_header(false, true, &mut out);
        assert_eq!(out[4], 0x01);
        out.clear();
        write_file_header(true, false, &mut out);
        assert_eq!(out[4], 0x04);
    }

    #[test]
    fn tag_bytes_with_extended_timestamp() {
        let mut out = Vec::new();
        write_tag(9, 0x1234_5678, &[0xAA, 0xBB], &mut out);
        assert_eq!(
            out,
            [
                9, 0, 0, 2, 0x34, 0x56, 0x78, 0x12, 0, 0, 0, 0xAA, 0xBB, 0, 0, 0, 13
            ]
        );
        assert_eq!(out.len(), tag_len(2));
    }

    #[test]
    fn tag_types_by_kind() {
        assert_eq!(tag_type(UnitKind::Audio), 8);
        assert_eq!(tag_type(UnitKind::Video), 9);
        assert_eq!(tag_type(UnitKind::Script), 18);
    }

    #[test]
    #[should_panic(expected = "24-bit size field")]
    fn oversized_body_is_a_programming_error() {
        let body = vec![0u8; TAG_BODY_MAX_BYTES + 1];
        write_tag(8, 0, &body, &mut Vec::new());
    }
}
