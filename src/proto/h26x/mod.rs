//! Picture size (and, for H.264, the frame rate) from the sequence parameter set inside a video
//! decoder configuration record: the AVCDecoderConfigurationRecord (`avcC`, ISO/IEC 14496-15
//! 5.3.3.1) or the HEVCDecoderConfigurationRecord (`hvcC`, 8.3.3.1) that every ingest produces
//! before the first frame (FLV and RTMP carry it as the sequence header; MPEG-TS ingest builds
//! it from the in-band parameter sets). What onMetaData declares can be wrong (an encoder's
//! scaled output, a filter after the muxer set the metadata) or absent (MPEG-TS has none); the
//! SPS is what decoders use.
//!
//! The size is the output picture: the coded size less the cropping window (a 1920x1080 stream
//! codes 1088 rows and crops 8).
//!
//! - H.264: the SPS is parsed by the `h264-reader` crate (the whole SPS, VUI included, with its
//!   own checks of the sizes against the level limits), which also gives the VUI timing.
//! - HEVC: a short hand-written walk of the SPS up to the conformance window, over
//!   `h264-reader`'s RBSP decoder and bit reader (HEVC uses the same emulation prevention and
//!   Exp-Golomb codes). No crate fits: `h264-reader` has no HEVC; `scuffle-h265`, the maintained
//!   HEVC header parser, reads the whole SPS (extensions, palette tables, reference picture
//!   sets) into vectors sized by the peer's fields, and brings the scuffle workspace crates
//!   (`scuffle-bytes-util`, `scuffle-expgolomb`, `scuffle-workspace-hack`, `nutype-enum`) that
//!   `crates.md` already turned down for RTMP and AMF0. The size comes before anything of
//!   variable length but the sub-layer profile fields, so the walk is a few lines. The HEVC
//!   frame rate (VUI timing) sits after the reference picture sets, whose inter-set prediction
//!   needs the decoded delta POCs of earlier sets: not read; the API's measured rate covers it.
//!
//! The records and SPSs come from the publisher: every read is bounded by the input (and the
//! record by `live.header_bytes_max`), nothing panics, and anything that does not parse, or
//! gives a size beyond what the codecs' highest levels allow, is `None`.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{self, BitRead, BitReader};

/// What a sequence parameter set says of the pictures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VideoParams {
    /// Output (cropped) size in luma samples.
    pub width: u32,
    pub height: u32,
    /// Frames per second from the VUI timing, when the SPS carries it (H.264 only).
    pub fps: Option<f64>,
}

/// NAL unit types of the sequence parameter sets.
const AVC_NAL_SPS: u8 = 7;
const HEVC_NAL_SPS: u8 = 33;

/// Largest HEVC picture in luma samples: Level 6.2's MaxLumaPs (H.265 Table A.8). H.264
/// picture sizes are checked by `h264-reader` against the level's MaxFS.
const HEVC_LUMA_PICTURE_SIZE_MAX: u64 = 35_651_584;
/// Longest side of a picture of either codec at its highest level: sqrt(8 * MaxLumaPs) for
/// HEVC (A.4.1), sqrt(8 * MaxFS) macroblocks for H.264 (A.3.1 f, g); both 16888 at level 6.2.
const SIDE_MAX: u32 = 16_888;

/// A VUI frame rate above this is not a camera's or an encoder's but a time base (some
/// encoders write the container's 1/1000 s clock as the tick): ignored.
const FPS_PLAUSIBLE_MAX: f64 = 480.0;

/// The first SPS of an `avcC` record (`record` is the FLV tag body after its 5-byte header).
pub fn avc_config_params(record: &[u8]) -> Option<VideoParams> {
    // configurationVersion 1, profile, compatibility, level, lengthSizeMinusOne, then
    // numOfSequenceParameterSets (low 5 bits) and the sets, each behind a 16-bit length.
    let (&[version, _, _, _, _, sets], rest) = record.split_first_chunk::<6>()?;
    if version != 1 || sets & 0x1F == 0 {
        return None;
    }
    let (sps, _) = length_prefixed(rest)?;
    avc_sps_params(sps)
}

/// The first SPS of an `hvcC` record.
pub fn hevc_config_params(record: &[u8]) -> Option<VideoParams> {
    // 22 bytes of fixed fields, numOfArrays, then arrays of (completeness | type, numNalus,
    // NAL units behind 16-bit lengths). The configurationVersion is not checked: the NAL types
    // and the SPS parse are the test (early HEVC-in-FLV encoders wrote 0).
    let (&arrays, mut rest) = record.get(22..)?.split_first()?;
    for _ in 0..arrays {
        let (&[kind, count_high, count_low], tail) = rest.split_first_chunk::<3>()?;
        rest = tail;
        let count = u16::from_be_bytes([count_high, count_low]);
        for _ in 0..count {
            let (nal, tail) = length_prefixed(rest)?;
            rest = tail;
            if kind & 0x3F == HEVC_NAL_SPS {
                return hevc_sps_params(nal);
            }
        }
    }
    None
}

/// A 16-bit big-endian length and that many bytes; the rest after them.
fn length_prefixed(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&length, rest) = data.split_first_chunk::<2>()?;
    let length = usize::from(u16::from_be_bytes(length));
    (rest.len() >= length).then(|| rest.split_at(length))
}

/// An H.264 SPS NAL unit (header byte included, emulation prevention bytes in place).
pub fn avc_sps_params(nal: &[u8]) -> Option<VideoParams> {
    // Header, profile, constraint flags, level and at least the first Exp-Golomb codes.
    if nal.len() < 4 || nal[0] & 0x1F != AVC_NAL_SPS {
        return None;
    }
    let rbsp = rbsp::decode_nal(nal).ok()?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    let (width, height) = sps.pixel_dimensions().ok()?;
    if !(1..=SIDE_MAX).contains(&width) || !(1..=SIDE_MAX).contains(&height) {
        return None;
    }
    let fps = sps
        .vui_parameters
        .as_ref()
        .and_then(|vui| vui.timing_info.as_ref())
        .and_then(|timing| {
            // One tick is a field: two per frame (H.264 E.2.1, the frame rate for
            // fixed_frame_rate_flag = 1 is time_scale / (2 * num_units_in_tick)).
            let fps = f64::from(timing.time_scale) / (2.0 * f64::from(timing.num_units_in_tick));
            (fps.is_finite() && fps > 0.0 && fps <= FPS_PLAUSIBLE_MAX).then_some(fps)
        });
    Some(VideoParams { width, height, fps })
}

/// An HEVC SPS NAL unit (2-byte header included): the output size (H.265 7.3.2.2.1, the
/// conformance window applied as in 7.4.3.2.1).
pub fn hevc_sps_params(nal: &[u8]) -> Option<VideoParams> {
    let (&[first, second], _) = nal.split_first_chunk::<2>()?;
    // forbidden_zero_bit, nal_unit_type (6), nuh_layer_id (6): only the base layer's SPS has
    // this syntax.
    let layer_id = (first & 0x01) << 5 | second >> 3;
    if first & 0x80 != 0 || (first >> 1) & 0x3F != HEVC_NAL_SPS || layer_id != 0 {
        return None;
    }
    // `decode_nal` skips a 1-byte (H.264) header: handed the NAL from its second byte, it
    // skips that one, so both bytes of the HEVC header are left out.
    let rbsp = rbsp::decode_nal(nal.get(1..)?).ok()?;
    let mut bits = BitReader::new(&rbsp[..]);
    let (width, height) = hevc_sps_size(&mut bits).ok()??;
    Some(VideoParams {
        width,
        height,
        fps: None,
    })
}

/// The walk of [`hevc_sps_params`]: `Ok(None)` for values out of range, `Err` for a short or
/// malformed SPS.
fn hevc_sps_size(bits: &mut impl BitRead) -> Result<Option<(u32, u32)>, rbsp::BitReaderError> {
    bits.skip(4, "sps_video_parameter_set_id")?;
    let max_sub_layers_minus1: u8 = bits.read::<3, u8>("sps_max_sub_layers_minus1")?;
    bits.skip(1, "sps_temporal_id_nesting_flag")?;
    if max_sub_layers_minus1 > 6 {
        return Ok(None);
    }
    // profile_tier_level(1, sps_max_sub_layers_minus1), 7.3.3: the general profile (88 bits)
    // and level (8), the sub-layers' presence flags, padding to 8 of them, their fields.
    bits.skip(96, "general_profile_tier_level")?;
    let sub_layers = usize::from(max_sub_layers_minus1);
    let mut present = [(false, false); 7];
    for flags in present.iter_mut().take(sub_layers) {
        *flags = (
            bits.read_bit("sub_layer_profile_present_flag")?,
            bits.read_bit("sub_layer_level_present_flag")?,
        );
    }
    if sub_layers > 0 {
        bits.skip(2 * (8 - sub_layers as u32), "reserved_zero_2bits")?;
    }
    for &(profile, level) in present.iter().take(sub_layers) {
        if profile {
            bits.skip(88, "sub_layer_profile")?;
        }
        if level {
            bits.skip(8, "sub_layer_level_idc")?;
        }
    }
    if bits.read_ue("sps_seq_parameter_set_id")? > 15 {
        return Ok(None);
    }
    let chroma_format_idc = bits.read_ue("chroma_format_idc")?;
    let separate_colour_plane = match chroma_format_idc {
        0..=2 => false,
        3 => bits.read_bit("separate_colour_plane_flag")?,
        _ => return Ok(None),
    };
    let coded_width = bits.read_ue("pic_width_in_luma_samples")?;
    let coded_height = bits.read_ue("pic_height_in_luma_samples")?;
    // SubWidthC and SubHeightC (Table 6-1); ChromaArrayType 0 (monochrome or separate
    // planes) crops in luma samples.
    let (sub_width, sub_height) = match (chroma_format_idc, separate_colour_plane) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let (mut width, mut height) = (Some(coded_width), Some(coded_height));
    if bits.read_bit("conformance_window_flag")? {
        let left = bits.read_ue("conf_win_left_offset")?;
        let right = bits.read_ue("conf_win_right_offset")?;
        let top = bits.read_ue("conf_win_top_offset")?;
        let bottom = bits.read_ue("conf_win_bottom_offset")?;
        let crop = |size: u32, a: u32, b: u32, sub: u32| {
            let window = a.checked_add(b)?.checked_mul(sub)?;
            size.checked_sub(window)
        };
        width = crop(coded_width, left, right, sub_width);
        height = crop(coded_height, top, bottom, sub_height);
    }
    let (Some(width), Some(height)) = (width, height) else {
        return Ok(None);
    };
    let plausible = (1..=SIDE_MAX).contains(&coded_width)
        && (1..=SIDE_MAX).contains(&coded_height)
        && u64::from(coded_width) * u64::from(coded_height) <= HEVC_LUMA_PICTURE_SIZE_MAX
        && width > 0
        && height > 0;
    Ok(plausible.then_some((width, height)))
}

/// The body of the cargo-fuzz target `h26x_sps` (`fuzz/fuzz_targets/`), here so that the unit
/// tests run it on stable over arbitrary input. A panic is a finding.
pub mod fuzzing {
    use super::*;

    /// The first byte picks how the rest is read: as a record of either codec, as a bare SPS of
    /// either codec, and (so that mutations reach the SPS syntax rather than the record's
    /// framing) wrapped in a record with the right NAL header in front. Whatever parses must
    /// have a size within the codecs' limits and a plausible rate.
    pub fn parse(data: &[u8]) {
        let Some((&control, bytes)) = data.split_first() else {
            return;
        };
        let results = match control % 4 {
            0 => [avc_config_params(bytes), hevc_config_params(bytes)],
            1 => [avc_sps_params(bytes), hevc_sps_params(bytes)],
            2 => {
                let mut nal = vec![0x67];
                nal.extend_from_slice(bytes);
                let record = avc_record(&nal);
                [avc_config_params(&record), avc_sps_params(&nal)]
            }
            _ => {
                let mut nal = vec![0x42, 0x01];
                nal.extend_from_slice(bytes);
                let record = hevc_record(&nal);
                [hevc_config_params(&record), hevc_sps_params(&nal)]
            }
        };
        for params in results.into_iter().flatten() {
            assert!(params.width > 0 && params.height > 0, "{params:?}");
            assert!(
                params.width <= SIDE_MAX && params.height <= SIDE_MAX,
                "{params:?}"
            );
            if let Some(fps) = params.fps {
                assert!(fps.is_finite() && fps > 0.0 && fps <= FPS_PLAUSIBLE_MAX);
            }
        }
    }

    /// An `avcC` with one SPS (`sps`, truncated to 64 KiB) and no PPS.
    pub fn avc_record(sps: &[u8]) -> Vec<u8> {
        let sps = &sps[..sps.len().min(usize::from(u16::MAX))];
        let mut record = vec![1, 0x42, 0, 0x1E, 0xFF, 0xE1];
        record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        record.extend_from_slice(sps);
        record.push(0);
        record
    }

    /// An `hvcC` with one array holding one SPS (`sps`, truncated to 64 KiB).
    pub fn hevc_record(sps: &[u8]) -> Vec<u8> {
        let sps = &sps[..sps.len().min(usize::from(u16::MAX))];
        let mut record = vec![1];
        record.extend_from_slice(&[0; 21]);
        record.extend_from_slice(&[1, 0x80 | HEVC_NAL_SPS, 0, 1]);
        record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        record.extend_from_slice(sps);
        record
    }
}

#[cfg(test)]
mod tests;
