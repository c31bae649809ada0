//! Sizes and rates from real parameter sets: the sequence headers of the test media in
//! `tests/data/` (as the FLV and MPEG-TS ingests produce them), and SPSs made with ffmpeg 5.1
//! for the cropping cases:
//! `ffmpeg -f lavfi -i testsrc2=size=1920x1080:rate=30 -frames:v 1 -c:v libx264 -preset
//! ultrafast -f h264 a.h264` (H.264, 1088 rows coded, 8 cropped),
//! `ffmpeg -f lavfi -i testsrc2=size=426x240:rate=30000/1001 -frames:v 1 -c:v libx265 -f hevc
//! b.hevc` (HEVC, 432 columns coded, 6 cropped) and the same at 1920x1080, rate 50 (no window:
//! 1080 is a multiple of x265's 8-sample minimum coding block).

use proptest::prelude::*;

use super::fuzzing::{avc_record, hevc_record};
use super::*;
use crate::media::unit::{Codec, MediaUnit, UnitKind};
use crate::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits};
use crate::proto::ts::demux::{TsDemuxLimits, TsDemuxer};

const FFMPEG_FLV: &[u8] = include_bytes!("../../../tests/data/h264_aac_2s.flv");
const H264_TS: &[u8] = include_bytes!("../../../tests/data/h264_aac_2s.ts");
const HEVC_TS: &[u8] = include_bytes!("../../../tests/data/hevc_aac_2s.ts");

/// libx264, 1920x1080, constrained baseline, 30 fps in the VUI.
const AVC_SPS_1080: &str = "6742c028da01e0089f970110000003001000000303c0f1832a";
/// libx265, 426x240 (conformance window of 3 chroma columns), 30000/1001.
const HEVC_SPS_426X240: &str =
    "42010101600000030090000003000003003ca00d880f1c9e5959a4932bc05a02000007d20000ea6010";
/// libx265, 1920x1080, 50 fps.
const HEVC_SPS_1080: &str =
    "42010101600000030090000003000003007ba003c08010e596566924caf0168080000003008000001904";

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The decoder configuration record of the first video sequence header in `units`.
fn video_record(units: &[MediaUnit], codec: Codec) -> Vec<u8> {
    let unit = units
        .iter()
        .find(|u| u.kind == UnitKind::Video && u.config)
        .expect("a video sequence header");
    assert_eq!(unit.codec, codec);
    unit.body[unit.payload_offset..].to_vec()
}

fn flv_units(bytes: &[u8]) -> Vec<MediaUnit> {
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    demuxer.push(bytes);
    let mut units = Vec::new();
    while let Some(event) = demuxer.poll().unwrap() {
        if let FlvEvent::Unit(unit) = event {
            units.push(unit);
        }
    }
    units
}

fn ts_units(bytes: &[u8]) -> Vec<MediaUnit> {
    let mut demuxer = TsDemuxer::new(TsDemuxLimits::default());
    demuxer.push(bytes);
    let mut units = Vec::new();
    while let Some(unit) = demuxer.poll().unwrap() {
        units.push(unit);
    }
    units
}

#[test]
fn the_flv_sequence_header_gives_320x240_at_25_fps() {
    let record = video_record(&flv_units(FFMPEG_FLV), Codec::H264);
    let params = avc_config_params(&record).unwrap();
    assert_eq!((params.width, params.height), (320, 240));
    assert_eq!(params.fps, Some(25.0));
}

#[test]
fn the_records_the_ts_ingest_builds_give_the_size() {
    let record = video_record(&ts_units(H264_TS), Codec::H264);
    let params = avc_config_params(&record).unwrap();
    assert_eq!(
        (params.width, params.height, params.fps),
        (320, 240, Some(25.0))
    );

    let record = video_record(&ts_units(HEVC_TS), Codec::Hevc);
    let params = hevc_config_params(&record).unwrap();
    assert_eq!((params.width, params.height), (320, 240));
    assert_eq!(params.fps, None, "the HEVC VUI timing is not read");
    // The other codec's parser finds nothing it knows in each record.
    assert_eq!(avc_config_params(&record), None);
}

#[test]
fn h264_1080p_is_1088_rows_coded_and_cropped_to_1080() {
    let nal = hex(AVC_SPS_1080);
    let rbsp = rbsp::decode_nal(&nal).unwrap();
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).unwrap();
    assert_eq!(sps.pic_height_in_map_units() * 16, 1088);
    let params = avc_sps_params(&nal).unwrap();
    assert_eq!((params.width, params.height), (1920, 1080));
    assert_eq!(params.fps, Some(30.0));
    assert_eq!(avc_config_params(&avc_record(&nal)), Some(params));
}

#[test]
fn hevc_conformance_window_crops_432_columns_to_426() {
    let nal = hex(HEVC_SPS_426X240);
    let params = hevc_sps_params(&nal).unwrap();
    assert_eq!((params.width, params.height), (426, 240));
    assert_eq!(hevc_config_params(&hevc_record(&nal)), Some(params));

    let nal = hex(HEVC_SPS_1080);
    let params = hevc_sps_params(&nal).unwrap();
    assert_eq!((params.width, params.height), (1920, 1080));
}

#[test]
fn the_sps_is_found_among_the_other_hvcc_arrays() {
    // VPS first, then SPS, then PPS, as in every record: the SPS in the second array.
    let vps = hex("40010c01ffff01600000030090000003000003003c959809");
    let sps = hex(HEVC_SPS_426X240);
    let pps = hex("4401c172b46240");
    let mut record = vec![1];
    record.extend_from_slice(&[0; 21]);
    record.push(3);
    for (kind, nal) in [(32u8, &vps), (33, &sps), (34, &pps)] {
        record.extend_from_slice(&[0x80 | kind, 0, 1]);
        record.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        record.extend_from_slice(nal);
    }
    let params = hevc_config_params(&record).unwrap();
    assert_eq!((params.width, params.height), (426, 240));
    // Without the SPS array: nothing.
    let cut = 23 + 5 + vps.len();
    let mut without = record[..cut].to_vec();
    without[22] = 1;
    assert_eq!(hevc_config_params(&without), None);
}

#[test]
fn a_truncated_sps_gives_nothing_or_the_right_size_never_a_wrong_one() {
    let record = video_record(&flv_units(FFMPEG_FLV), Codec::H264);
    for (nal, full, parse) in [
        (
            hex(AVC_SPS_1080),
            avc_sps_params(&hex(AVC_SPS_1080)),
            avc_sps_params as fn(&[u8]) -> Option<VideoParams>,
        ),
        (
            hex(HEVC_SPS_426X240),
            hevc_sps_params(&hex(HEVC_SPS_426X240)),
            hevc_sps_params,
        ),
        (
            hex(HEVC_SPS_1080),
            hevc_sps_params(&hex(HEVC_SPS_1080)),
            hevc_sps_params,
        ),
    ] {
        assert!(full.is_some());
        for len in 0..nal.len() {
            let got = parse(&nal[..len]);
            assert!(got.is_none() || got == full, "{len}: {got:?}");
        }
    }
    // H.264 is parsed to its trailing bits: any cut is refused.
    let nal = hex(AVC_SPS_1080);
    assert!((0..nal.len()).all(|len| avc_sps_params(&nal[..len]).is_none()));
    // A record cut anywhere (its SPS or the length before it) gives nothing.
    let sps_end = 8 + usize::from(u16::from_be_bytes([record[6], record[7]]));
    assert!((0..sps_end).all(|len| avc_config_params(&record[..len]).is_none()));
}

#[test]
fn garbage_gives_nothing() {
    let sps = hex(AVC_SPS_1080);
    let hevc = hex(HEVC_SPS_426X240);
    let mut wrong_version = avc_record(&sps);
    wrong_version[0] = 0;
    let mut no_sets = avc_record(&sps);
    no_sets[5] = 0xE0;
    let mut long_length = avc_record(&sps);
    long_length[6] = 0xFF;
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xFF; 64],
        vec![0; 64],
        wrong_version,
        no_sets,
        long_length,
        // A PPS where the SPS should be.
        avc_record(&hex("68ce3c80")),
        // An H.264 SPS in an hvcC, an HEVC one in an avcC.
        hevc_record(&sps),
        avc_record(&hevc),
    ];
    for case in &cases {
        assert_eq!(avc_config_params(case), None, "{case:02x?}");
        assert_eq!(hevc_config_params(case), None, "{case:02x?}");
        assert_eq!(avc_sps_params(case), None, "{case:02x?}");
        assert_eq!(hevc_sps_params(case), None, "{case:02x?}");
    }
    // An HEVC SPS of another layer, or with the forbidden bit, is not read.
    let mut layer = hevc.clone();
    layer[1] |= 0x08;
    assert_eq!(hevc_sps_params(&layer), None);
    let mut forbidden = hevc.clone();
    forbidden[0] |= 0x80;
    assert_eq!(hevc_sps_params(&forbidden), None);
    // A cropping window wider than the picture.
    let mut bits = Vec::new();
    hevc_sps_with_window(&mut bits, 432, 240, [300, 0, 0, 0]);
    assert_eq!(hevc_sps_params(&bits), None);
    bits.clear();
    hevc_sps_with_window(&mut bits, 432, 240, [0, 3, 0, 0]);
    assert_eq!(
        hevc_sps_params(&bits).map(|p| (p.width, p.height)),
        Some((426, 240))
    );
    // Beyond level 6.2's sides.
    bits.clear();
    hevc_sps_with_window(&mut bits, 16_896, 64, [0, 0, 0, 0]);
    assert_eq!(hevc_sps_params(&bits), None);
}

/// A minimal HEVC SPS (one sub-layer, 4:2:0) of `width` x `height` with a conformance window
/// `[left, right, top, bottom]` (in chroma samples), up to the fields this module reads.
fn hevc_sps_with_window(out: &mut Vec<u8>, width: u32, height: u32, window: [u32; 4]) {
    let mut bits = String::new();
    let ue = |bits: &mut String, value: u32| {
        let code = u64::from(value) + 1;
        let len = 64 - code.leading_zeros() as usize;
        bits.push_str(&"0".repeat(len - 1));
        bits.push_str(&format!("{code:b}"));
    };
    bits.push_str("0000"); // sps_video_parameter_set_id
    bits.push_str("000"); // sps_max_sub_layers_minus1
    bits.push('1'); // sps_temporal_id_nesting_flag
    bits.push_str(&"0".repeat(96)); // general profile_tier_level
    ue(&mut bits, 0); // sps_seq_parameter_set_id
    ue(&mut bits, 1); // chroma_format_idc
    ue(&mut bits, width);
    ue(&mut bits, height);
    bits.push('1'); // conformance_window_flag
    for offset in window {
        ue(&mut bits, offset);
    }
    bits.push('1'); // the rest is not read; end like trailing bits
    while !bits.len().is_multiple_of(8) {
        bits.push('0');
    }
    out.extend_from_slice(&[0x42, 0x01]);
    let mut zeros = 0;
    for chunk in bits.as_bytes().chunks(8) {
        let byte = u8::from_str_radix(std::str::from_utf8(chunk).unwrap(), 2).unwrap();
        // Emulation prevention, as an encoder writes it.
        if zeros >= 2 && byte <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
}

#[test]
fn the_fuzz_body_runs_on_the_real_sets() {
    for nal in [hex(AVC_SPS_1080), hex(HEVC_SPS_426X240), hex(HEVC_SPS_1080)] {
        for control in 0..4u8 {
            let mut data = vec![control];
            data.extend_from_slice(&nal);
            fuzzing::parse(&data);
            // Without the NAL header, for the wrappers that add one.
            let mut data = vec![control];
            data.extend_from_slice(&nal[1..]);
            fuzzing::parse(&data);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        fuzzing::parse(&data);
    }

    /// Flipped bits in a real SPS: a size comes out within the limits, or nothing.
    #[test]
    fn mutated_real_sets_never_panic(
        which in 0usize..3,
        flips in proptest::collection::vec((any::<usize>(), 0u8..8), 1..6),
        control in 0u8..4,
    ) {
        let mut nal = hex([AVC_SPS_1080, HEVC_SPS_426X240, HEVC_SPS_1080][which]);
        for (at, bit) in flips {
            let len = nal.len();
            nal[at % len] ^= 1 << bit;
        }
        let mut data = vec![control];
        data.extend_from_slice(&nal);
        fuzzing::parse(&data);
    }
}
