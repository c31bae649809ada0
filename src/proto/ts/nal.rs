//! H.264 and HEVC NAL unit handling for the muxer: the decoder configuration records that
//! FLV/RTMP carry as sequence headers (ISO/IEC 14496-15), AVCC (length-prefixed) frames, and
//! the NAL unit types the muxer acts on.

/// Start code that precedes every NAL unit in Annex B (the 4-byte form, as encoders write it
/// at the start of an access unit and before parameter sets).
pub(super) const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The video codecs the muxer packetises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum VideoCodec {
    H264,
    Hevc,
}

impl VideoCodec {
    /// stream_type in the PMT (ISO/IEC 13818-1 Table 2-34).
    pub(super) fn stream_type(self) -> u8 {
        match self {
            VideoCodec::H264 => 0x1B,
            VideoCodec::Hevc => 0x24,
        }
    }

    /// The NAL unit type (H.264: 5 bits of byte 0; HEVC: 6 bits after the forbidden bit).
    pub(super) fn nal_type(self, nal: &[u8]) -> u8 {
        let first = nal.first().copied().unwrap_or(0);
        match self {
            VideoCodec::H264 => first & 0x1F,
            VideoCodec::Hevc => (first >> 1) & 0x3F,
        }
    }

    pub(super) fn is_aud(self, nal: &[u8]) -> bool {
        let nal_type = self.nal_type(nal);
        match self {
            VideoCodec::H264 => nal_type == H264_NAL_AUD,
            VideoCodec::Hevc => nal_type == HEVC_NAL_AUD,
        }
    }

    /// Whether the NAL unit is a sequence parameter set: an encoder that repeats parameter
    /// sets in-band always sends the SPS with them, so a frame with one needs none from us
    /// (and ours, from an older sequence header, could override a newer in-band one).
    pub(super) fn is_sps(self, nal: &[u8]) -> bool {
        let nal_type = self.nal_type(nal);
        match self {
            VideoCodec::H264 => nal_type == H264_NAL_SPS,
            VideoCodec::Hevc => nal_type == HEVC_NAL_SPS,
        }
    }

    /// Whether the NAL unit is a slice of a picture a decoder can start at: an H.264 IDR
    /// slice, an HEVC IRAP picture (BLA, IDR, CRA and the reserved IRAP types 16..=23).
    pub(super) fn is_random_access_slice(self, nal: &[u8]) -> bool {
        let nal_type = self.nal_type(nal);
        match self {
            VideoCodec::H264 => nal_type == H264_NAL_IDR,
            VideoCodec::Hevc => HEVC_NAL_IRAP.contains(&nal_type),
        }
    }

    /// Appends an access unit delimiter NAL unit (without start code) for an access unit
    /// whose first VCL NAL unit is `first_slice` (if any).
    pub(super) fn write_aud(self, first_slice: Option<&[u8]>, out: &mut Vec<u8>) {
        match self {
            // primary_pic_type 7: any slice type.
            VideoCodec::H264 => out.extend_from_slice(&[0x09, 0xF0]),
            VideoCodec::Hevc => {
                // The AUD's TemporalId must equal the access unit's (H.265 7.4.2.2), so copy
                // nuh_temporal_id_plus1 from the slice; 1 (TemporalId 0) otherwise.
                let temporal_id_plus1 = first_slice
                    .and_then(|nal| nal.get(1))
                    .map_or(1, |b| b & 0x07)
                    .max(1);
                // Type 35, layer 0; pic_type 2 (I, P and B slices) and the stop bit.
                out.extend_from_slice(&[HEVC_NAL_AUD << 1, temporal_id_plus1, 0x50]);
            }
        }
    }

    /// Whether the NAL unit is a VCL (slice) NAL unit.
    pub(super) fn is_vcl(self, nal: &[u8]) -> bool {
        let nal_type = self.nal_type(nal);
        match self {
            VideoCodec::H264 => (1..=5).contains(&nal_type),
            VideoCodec::Hevc => nal_type < 32,
        }
    }
}

const H264_NAL_IDR: u8 = 5;
const H264_NAL_SPS: u8 = 7;
const H264_NAL_AUD: u8 = 9;
const HEVC_NAL_IRAP: std::ops::RangeInclusive<u8> = 16..=23;
const HEVC_NAL_VPS: u8 = 32;
const HEVC_NAL_SPS: u8 = 33;
const HEVC_NAL_PPS: u8 = 34;
const HEVC_NAL_AUD: u8 = 35;

/// What a decoder configuration record (avcC or hvcC) tells the muxer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct VideoConfig {
    pub(super) codec: VideoCodec,
    /// Size of the NAL length prefix in frames (1, 2 or 4).
    pub(super) nal_length_size: usize,
    /// The parameter sets (H.264: SPS, PPS; HEVC: VPS, SPS, PPS), each preceded by a start
    /// code, to insert before random access pictures that do not carry them.
    pub(super) parameter_sets_annexb: Vec<u8>,
}

/// Parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
pub(super) fn parse_avc_config(record: &[u8]) -> Option<VideoConfig> {
    if record.len() < 7 || record[0] != 1 {
        return None;
    }
    let nal_length_size = nal_length_size(record[4])?;
    let mut parameter_sets_annexb = Vec::new();
    let mut pos = 5;
    // numOfSequenceParameterSets (5 bits), then numOfPictureParameterSets (8 bits).
    for count_mask in [0x1F, 0xFF] {
        let count = record.get(pos)? & count_mask;
        pos += 1;
        for _ in 0..count {
            let nal = length_prefixed(record, &mut pos)?;
            parameter_sets_annexb.extend_from_slice(&START_CODE);
            parameter_sets_annexb.extend_from_slice(nal);
        }
    }
    Some(VideoConfig {
        codec: VideoCodec::H264,
        nal_length_size,
        parameter_sets_annexb,
    })
}

/// Parses an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1): lengthSizeMinusOne
/// and the VPS, SPS and PPS arrays. Other arrays (SEI) are skipped; parameter sets come out
/// in the order VPS, SPS, PPS whatever the order of the arrays.
pub(super) fn parse_hevc_config(record: &[u8]) -> Option<VideoConfig> {
    // 22 bytes of profile, tier, level and format fields, then numOfArrays.
    const ARRAYS_AT: usize = 22;
    if record.len() <= ARRAYS_AT || record[0] != 1 {
        return None;
    }
    let nal_length_size = nal_length_size(record[21])?;
    let num_arrays = record[ARRAYS_AT];
    let mut pos = ARRAYS_AT + 1;
    let mut sets: [Vec<&[u8]>; 3] = Default::default();
    for _ in 0..num_arrays {
        // array_completeness (1), reserved (1), NAL_unit_type (6); numNalus (16).
        let nal_type = record.get(pos)? & 0x3F;
        let count = u16::from_be_bytes([*record.get(pos + 1)?, *record.get(pos + 2)?]);
        pos += 3;
        for _ in 0..count {
            let nal = length_prefixed(record, &mut pos)?;
            if let Some(index) = [HEVC_NAL_VPS, HEVC_NAL_SPS, HEVC_NAL_PPS]
                .iter()
                .position(|t| *t == nal_type)
                && !nal.is_empty()
            {
                sets[index].push(nal);
            }
        }
    }
    let mut parameter_sets_annexb = Vec::new();
    for nal in sets.iter().flatten() {
        parameter_sets_annexb.extend_from_slice(&START_CODE);
        parameter_sets_annexb.extend_from_slice(nal);
    }
    Some(VideoConfig {
        codec: VideoCodec::Hevc,
        nal_length_size,
        parameter_sets_annexb,
    })
}

/// lengthSizeMinusOne (the low 2 bits) as a size; 3-byte lengths are not allowed.
fn nal_length_size(byte: u8) -> Option<usize> {
    match byte & 0x03 {
        2 => None,
        minus_one => Some(usize::from(minus_one) + 1),
    }
}

/// Reads a 16-bit length and that many bytes at `*pos`, advancing it.
fn length_prefixed<'a>(record: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::from(u16::from_be_bytes([
        *record.get(*pos)?,
        *record.get(*pos + 1)?,
    ]));
    let nal = record.get(*pos + 2..*pos + 2 + len)?;
    *pos += 2 + len;
    Some(nal)
}

/// Splits AVCC (length-prefixed) NAL units; `None` if a length runs past the end. Empty NAL
/// units are dropped.
pub(super) fn split_avcc(mut data: &[u8], nal_length_size: usize) -> Option<Vec<&[u8]>> {
    let mut nals = Vec::new();
    while !data.is_empty() {
        let prefix = data.get(..nal_length_size)?;
        let len = prefix
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let end = nal_length_size.checked_add(len)?;
        let nal = data.get(nal_length_size..end)?;
        if !nal.is_empty() {
            nals.push(nal);
        }
        data = data.get(end..)?;
    }
    Some(nals)
}
