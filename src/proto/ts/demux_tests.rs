//! TS demuxer tests: ffmpeg output replayed in any slicing, round trips through the FLV
//! writer and the TS muxer checked against ffmpeg/ffprobe, and crafted hostile input.
//!
//! `tests/data/h264_aac_2s.ts` and `tests/data/hevc_aac_2s.ts` were made with ffmpeg 5.1:
//! `ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=44100
//!  -t 2 -c:v libx264 -bf 2 -g 25 -c:a aac -f mpegts tests/data/h264_aac_2s.ts`, and the same
//! with `sample_rate=48000` and `-c:v libx265 -x265-params log-level=error:bframes=2:keyint=25`.
//! ffprobe counts 50 video packets (2 key frames) in each, and 88 / 95 AAC frames.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use proptest::prelude::*;

use super::*;
use crate::media::unit::{Codec, UnitKind};
use crate::proto::flv;
use crate::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits, write_file_header, write_unit};
use crate::proto::ts::TsMuxer;

const H264_AAC: &[u8] = include_bytes!("../../../tests/data/h264_aac_2s.ts");
const HEVC_AAC: &[u8] = include_bytes!("../../../tests/data/hevc_aac_2s.ts");
const FFMPEG_FLV: &[u8] = include_bytes!("../../../tests/data/h264_aac_2s.flv");

/// What a run produced: the units, how it ended, the counters.
#[derive(Debug)]
struct Run {
    units: Vec<MediaUnit>,
    result: Result<(), TsDemuxError>,
    stats: TsDemuxStats,
}

impl Run {
    fn of(&self, kind: UnitKind) -> Vec<&MediaUnit> {
        self.units.iter().filter(|u| u.kind == kind).collect()
    }

    fn frames(&self, kind: UnitKind) -> Vec<&MediaUnit> {
        self.units
            .iter()
            .filter(|u| u.kind == kind && !u.config)
            .collect()
    }
}

/// Feeds `chunks` in order, polling to exhaustion after each, then finishes.
fn demux_chunks<'a>(limits: TsDemuxLimits, chunks: impl IntoIterator<Item = &'a [u8]>) -> Run {
    let mut demuxer = TsDemuxer::new(limits);
    let mut units = Vec::new();
    let mut drain = |demuxer: &mut TsDemuxer| -> Result<(), TsDemuxError> {
        while let Some(unit) = demuxer.poll()? {
            units.push(unit);
        }
        Ok(())
    };
    let mut result = Ok(());
    for chunk in chunks {
        demuxer.push(chunk);
        result = drain(&mut demuxer);
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        result = demuxer.finish().and_then(|()| drain(&mut demuxer));
    }
    Run {
        units,
        result,
        stats: demuxer.stats(),
    }
}

fn demux_with(limits: TsDemuxLimits, data: &[u8]) -> Run {
    demux_chunks(limits, [data])
}

fn demux(data: &[u8]) -> Run {
    demux_with(TsDemuxLimits::default(), data)
}

fn assert_sample_file(run: &Run, codec: Codec, audio_frames: usize) {
    assert_eq!(run.result, Ok(()));
    let video = run.of(UnitKind::Video);
    let audio = run.of(UnitKind::Audio);
    assert_eq!(video.len() + audio.len(), run.units.len());

    // Configuration first, once (the parameter sets repeat unchanged at the second IDR).
    assert!(video[0].config && !video[0].keyframe);
    assert_eq!(video.iter().filter(|u| u.config).count(), 1);
    assert!(audio[0].config);
    assert_eq!(audio.iter().filter(|u| u.config).count(), 1);
    assert_eq!(audio[0].payload().len(), 2, "AudioSpecificConfig");

    let frames = run.frames(UnitKind::Video);
    assert_eq!(frames.len(), 50);
    assert!(frames.iter().all(|u| u.codec == codec));
    assert!(frames[0].keyframe);
    assert_eq!(frames.iter().filter(|u| u.keyframe).count(), 2);
    // 25 fps: dts every 40 ms from 0; B-frames make the composition times vary.
    let dts: Vec<u32> = frames.iter().map(|u| u.dts_ms).collect();
    assert_eq!(dts, (0..50).map(|i| i * 40).collect::<Vec<u32>>());
    assert_eq!(frames[0].cts_ms, 80);
    assert!(frames.iter().any(|u| u.cts_ms == 160));
    assert!(frames.iter().all(|u| u.cts_ms >= 0 && u.cts_ms % 40 == 0));
    // Presentation times are every 40 ms too, once each.
    let mut pts: Vec<i64> = frames.iter().map(|u| u.pts_ms()).collect();
    pts.sort_unstable();
    assert_eq!(pts, (0..50).map(|i| 80 + i * 40).collect::<Vec<i64>>());

    let frames = run.frames(UnitKind::Audio);
    assert_eq!(frames.len(), audio_frames);
    assert!(
        frames
            .iter()
            .all(|u| u.codec == Codec::Aac && u.cts_ms == 0)
    );
    assert!(frames.windows(2).all(|w| {
        let step = w[1].dts_ms - w[0].dts_ms;
        (21..=24).contains(&step) // 1024 samples at 44.1 or 48 kHz
    }));

    // Every unit is what the FLV classifier makes of its body, with its tag buffer.
    for unit in &run.units {
        let again = classify_tag(flv::tag_type(unit.kind), unit.dts_ms, unit.body.clone()).unwrap();
        assert_eq!(&again, unit);
        let tag = unit.flv_tag.as_ref().unwrap();
        assert_eq!(tag.len(), flv::tag_len(unit.body.len()));
        assert_eq!(
            &tag[TAG_HEADER_LEN..TAG_HEADER_LEN + unit.body.len()],
            &unit.body[..]
        );
    }
    assert_eq!(
        run.stats,
        TsDemuxStats {
            bytes_in: run.stats.bytes_in,
            packets: run.stats.packets,
            ..TsDemuxStats::default()
        },
        "nothing skipped"
    );
}

#[test]
fn ffmpeg_h264_aac_file() {
    let run = demux(H264_AAC);
    assert_sample_file(&run, Codec::H264, 88);
    assert!(run.frames(UnitKind::Video)[25].keyframe, "-g 25");
    assert_eq!(run.stats.packets, (H264_AAC.len() / TS_PACKET_LEN) as u64);
    assert_eq!(run.stats.bytes_in, H264_AAC.len() as u64);
    let config = run.units[0].body.clone();
    assert_eq!(&config[..5], &[0x17, 0, 0, 0, 0]);
    let frame = &run.frames(UnitKind::Video)[0].body;
    assert_eq!(&frame[..5], &[0x17, 1, 0, 0, 80]);
    let audio = run.of(UnitKind::Audio);
    // AAC LC (2), 44.1 kHz (4), mono.
    assert_eq!(&audio[0].body[..], &[0xAF, 0, 0x12, 0x08]);
    assert_eq!(&audio[1].body[..2], &[0xAF, 1]);
}

#[test]
fn ffmpeg_hevc_aac_file() {
    let run = demux(HEVC_AAC);
    assert_sample_file(&run, Codec::Hevc, 95);
    // x265 put its second IRAP at a scene cut (dts 920 ms), as ffprobe shows.
    assert!(run.frames(UnitKind::Video)[23].keyframe);
    let config = &run.units[0].body;
    assert_eq!(&config[..5], b"\x90hvc1");
    let frames = run.frames(UnitKind::Video);
    // B-frame with a composition time: CodedFrames with the cts after the FourCC.
    assert_eq!(&frames[0].body[..8], b"\x91hvc1\x00\x00\x50");
    // cts 0: CodedFramesX, no cts field.
    let plain = frames.iter().find(|u| u.cts_ms == 0).unwrap();
    assert_eq!(&plain.body[..5], b"\xA3hvc1");
    assert_eq!(plain.payload_offset, 5);
    let audio = run.of(UnitKind::Audio);
    // AAC LC, 48 kHz (3), mono.
    assert_eq!(&audio[0].body[..], &[0xAF, 0, 0x11, 0x88]);
}

/// Every frame payload is AVCC with 4-byte lengths covering it exactly, and holds no
/// delimiter or parameter set.
#[test]
fn frames_are_length_prefixed_without_parameter_sets() {
    for (data, codec) in [(H264_AAC, Codec::H264), (HEVC_AAC, Codec::Hevc)] {
        let run = demux(data);
        for unit in run.frames(UnitKind::Video) {
            let mut rest = unit.payload();
            assert!(!rest.is_empty());
            while !rest.is_empty() {
                let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                let nal = &rest[4..4 + len];
                let removed = match codec {
                    Codec::H264 => [7, 8, 9, 12].contains(&(nal[0] & 0x1F)),
                    _ => (32..=35).contains(&((nal[0] >> 1) & 0x3F)),
                };
                assert!(!removed, "{codec:?} NAL {:02x}", nal[0]);
                rest = &rest[4 + len..];
            }
        }
    }
}

#[test]
fn every_slicing_gives_the_same_units() {
    for data in [H264_AAC, HEVC_AAC] {
        let whole = demux(data);
        let bytewise = demux_chunks(TsDemuxLimits::default(), data.chunks(1));
        assert_eq!(bytewise.units, whole.units);
        assert_eq!(bytewise.stats, whole.stats);
        for size in [187, 188, 189, 376, 1000, 4096] {
            let run = demux_chunks(TsDemuxLimits::default(), data.chunks(size));
            assert_eq!(run.units, whole.units, "chunks of {size}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_slicing_gives_the_same_units(cuts in proptest::collection::vec(0usize..H264_AAC.len(), 0..40)) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([H264_AAC.len()]) {
            chunks.push(&H264_AAC[start..cut]);
            start = cut;
        }
        let run = demux_chunks(TsDemuxLimits::default(), chunks);
        prop_assert_eq!(run.units, demux(H264_AAC).units);
    }

    #[test]
    fn fuzz_body_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        fuzzing::demux(&bytes);
    }

    #[test]
    fn fuzz_body_on_mutated_stream(
        control in any::<[u8; 2]>(),
        flips in proptest::collection::vec((0usize..12_000, any::<u8>()), 1..20),
    ) {
        let mut bytes = control.to_vec();
        bytes.extend_from_slice(&H264_AAC[..12_000]);
        for (at, value) in flips {
            bytes[2 + at] = value;
        }
        fuzzing::demux(&bytes);
    }
}

#[test]
fn fuzz_body_on_the_sample_files() {
    for data in [H264_AAC, HEVC_AAC] {
        for control in [[0u8, 0], [255, 255], [7, 0x80], [200, 0x3F]] {
            let mut bytes = control.to_vec();
            bytes.extend_from_slice(data);
            fuzzing::demux(&bytes);
        }
    }
}

// ---- against ffmpeg ----

/// A temporary file removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, data: &[u8]) -> Self {
        let path =
            std::env::temp_dir().join(format!("uringcast-ts-demux-{}-{name}", std::process::id()));
        std::fs::write(&path, data).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs a tool; `None` (with a message) only when it is not installed.
fn run_tool(tool: &str, args: &[&str]) -> Option<std::process::Output> {
    match Command::new(tool).args(args).output() {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("{tool} not installed; skipping");
            None
        }
        Err(e) => panic!("{tool}: {e}"),
    }
}

fn path_str(file: &TempFile) -> &str {
    file.0.to_str().unwrap()
}

/// The units written as an FLV file decode cleanly in ffmpeg, as H.264 320x240 and AAC, with
/// every frame and the same timestamps ffprobe reads from the TS.
#[test]
fn flv_of_the_units_decodes_in_ffmpeg() {
    let run = demux(H264_AAC);
    let mut flv = Vec::new();
    write_file_header(true, true, &mut flv);
    for unit in &run.units {
        write_unit(unit, &mut flv);
    }
    let file = TempFile::new("roundtrip.flv", &flv);
    let Some(decode) = run_tool(
        "ffmpeg",
        &["-v", "error", "-i", path_str(&file), "-f", "null", "-"],
    ) else {
        return;
    };
    assert!(decode.status.success());
    assert!(
        decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let probe = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_streams",
            "-show_packets",
            "-of",
            "compact",
            path_str(&file),
        ],
    )
    .unwrap();
    assert!(probe.stderr.is_empty());
    let text = String::from_utf8(probe.stdout).unwrap();
    let streams: Vec<&str> = text.lines().filter(|l| l.starts_with("stream|")).collect();
    let video = streams
        .iter()
        .find(|l| l.contains("codec_type=video"))
        .unwrap();
    assert!(video.contains("codec_name=h264") && video.contains("|width=320|"));
    assert!(video.contains("|height=240|") && video.contains("profile=High"));
    let audio = streams
        .iter()
        .find(|l| l.contains("codec_type=audio"))
        .unwrap();
    assert!(audio.contains("codec_name=aac") && audio.contains("|sample_rate=44100|"));
    for (kind, count) in [("video", 50), ("audio", 88)] {
        let packets = text
            .lines()
            .filter(|l| l.starts_with("packet|") && l.contains(&format!("codec_type={kind}")))
            .count();
        assert_eq!(packets, count, "{kind} packets");
    }
}

/// When the SPS cannot be read, the High-profile fields at the end of the avcC are left out;
/// ffmpeg decodes such a record the same.
#[test]
fn avc_record_without_high_profile_fields_decodes_in_ffmpeg() {
    let run = demux(H264_AAC);
    let mut flv = Vec::new();
    write_file_header(true, true, &mut flv);
    for unit in &run.units {
        if unit.kind == UnitKind::Video && unit.config {
            let body = &unit.body[..unit.body.len() - 4];
            assert_eq!(&unit.body[body.len()..], &[0xFD, 0xF8, 0xF8, 0]);
            flv::write_tag(TAG_TYPE_VIDEO, unit.dts_ms, body, &mut flv);
        } else {
            write_unit(unit, &mut flv);
        }
    }
    let file = TempFile::new("short-avcc.flv", &flv);
    let Some(decode) = run_tool(
        "ffmpeg",
        &["-v", "error", "-i", path_str(&file), "-f", "null", "-"],
    ) else {
        return;
    };
    assert!(decode.status.success());
    assert!(
        decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
}

/// The decoder configuration records equal the ones ffmpeg writes into MP4 (`-c copy`), but
/// for HEVC's array_completeness bits: ours say the frames carry no parameter sets.
#[test]
fn configuration_records_match_ffmpeg() {
    for (data, box_type) in [(H264_AAC, b"avcC"), (HEVC_AAC, b"hvcC")] {
        let input = TempFile::new("records.ts", data);
        let output = TempFile::new("records.mp4", b"");
        let Some(remux) = run_tool(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-y",
                "-i",
                path_str(&input),
                "-c",
                "copy",
                "-an",
                "-f",
                "mp4",
                path_str(&output),
            ],
        ) else {
            return;
        };
        assert!(remux.status.success());
        let mp4 = std::fs::read(&output.0).unwrap();
        let at = mp4.windows(4).position(|w| w == box_type).unwrap();
        let size = u32::from_be_bytes(mp4[at - 4..at].try_into().unwrap()) as usize;
        let mut expected = mp4[at + 4..at - 4 + size].to_vec();

        let run = demux(data);
        let mut ours = run.units[0].payload().to_vec();
        if box_type == b"hvcC" {
            // Arrays start after the 23-byte header; clear array_completeness in each.
            let mut at = 23;
            for _ in 0..ours[22] {
                ours[at] &= 0x7F;
                expected[at] &= 0x7F;
                let count = u16::from_be_bytes([ours[at + 1], ours[at + 2]]);
                at += 3;
                for _ in 0..count {
                    at += 2 + usize::from(u16::from_be_bytes([ours[at], ours[at + 1]]));
                }
            }
        }
        assert_eq!(ours, expected, "{}", String::from_utf8_lossy(box_type));
    }
}

/// HEVC has no FLV reader in this ffmpeg, so the units are turned back into Annex B (the
/// parameter sets from the record, then every frame) and decoded raw.
#[test]
fn hevc_units_decode_in_ffmpeg() {
    let run = demux(HEVC_AAC);
    let mut annexb = Vec::new();
    let record = run.units[0].payload();
    let mut at = 23;
    for _ in 0..record[22] {
        let count = u16::from_be_bytes([record[at + 1], record[at + 2]]);
        at += 3;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([record[at], record[at + 1]]));
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(&record[at + 2..at + 2 + len]);
            at += 2 + len;
        }
    }
    assert_eq!(at, record.len());
    for unit in run.frames(UnitKind::Video) {
        let mut rest = unit.payload();
        while !rest.is_empty() {
            let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            annexb.extend_from_slice(&[0, 0, 0, 1]);
            annexb.extend_from_slice(&rest[4..4 + len]);
            rest = &rest[4 + len..];
        }
    }
    let file = TempFile::new("frames.hevc", &annexb);
    let Some(probe) = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-f",
            "hevc",
            "-count_frames",
            "-show_streams",
            "-of",
            "compact",
            path_str(&file),
        ],
    ) else {
        return;
    };
    assert!(
        probe.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let text = String::from_utf8(probe.stdout).unwrap();
    assert!(text.contains("codec_name=hevc") && text.contains("|width=320|"));
    assert!(text.contains("|nb_read_frames=50|"), "{text}");
}

/// FLV units (ffmpeg's own FLV of the same content) → our TS muxer → this demuxer gives the
/// units back: the same frames with the same timestamps, the same AVC record. The AAC
/// record is what ADTS can carry (its first 2 bytes: ffmpeg's has an SBR extension after),
/// and the records are stamped with their first frame's time (ffmpeg's FLV stamps them 0).
#[test]
fn ts_muxer_round_trip_gives_the_units_back() {
    let mut flv = FlvDemuxer::new(FlvLimits::default());
    flv.push(FFMPEG_FLV);
    let mut original = Vec::new();
    while let Some(event) = flv.poll().unwrap() {
        if let FlvEvent::Unit(unit) = event
            && unit.kind != UnitKind::Script
        {
            original.push(unit);
        }
    }
    let mut muxer = TsMuxer::new();
    let mut ts = Vec::new();
    for unit in &original {
        muxer.write_unit(unit, &mut ts);
    }
    let run = demux(&ts);
    assert_eq!(run.result, Ok(()));
    for kind in [UnitKind::Video, UnitKind::Audio] {
        let back: Vec<&MediaUnit> = run.of(kind);
        let sent: Vec<&MediaUnit> = original
            .iter()
            .filter(|u| u.kind == kind)
            // ffmpeg ends the FLV with an AVC end-of-sequence, which TS has no unit for.
            .filter(|u| u.config || !u.payload().is_empty())
            .collect();
        assert_eq!(back.len(), sent.len(), "{kind:?}");
        for (back, sent) in back.iter().zip(&sent) {
            if sent.config {
                assert!(back.config);
                let len = if kind == UnitKind::Audio {
                    2
                } else {
                    sent.payload().len()
                };
                assert_eq!(back.payload(), &sent.payload()[..len]);
            } else {
                assert_eq!(back, sent, "{kind:?} at {} ms", sent.dts_ms);
            }
        }
    }
}

// ---- crafted streams ----

const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;
const PMT_PID: u16 = 0x1000;

/// A minimal TS writer for crafted streams.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
    cc: HashMap<u16, u8>,
}

impl Writer {
    fn next_cc(&mut self, pid: u16) -> u8 {
        let cc = self.cc.entry(pid).or_insert(15);
        *cc = (*cc + 1) & 0x0F;
        *cc
    }

    /// One packet: `payload` (at most 184 bytes) after an adaptation field that stuffs the rest.
    fn packet(&mut self, pid: u16, start: bool, payload: &[u8]) {
        assert!(payload.len() <= 184);
        let cc = self.next_cc(pid);
        let stuffing = 184 - payload.len();
        let control = if stuffing > 0 { 0x30 } else { 0x10 };
        self.out.push(SYNC_BYTE);
        self.out
            .push(u8::from(start) << 6 | (pid >> 8) as u8 & 0x1F);
        self.out.push(pid as u8);
        self.out.push(control | cc);
        if stuffing > 0 {
            self.out.push((stuffing - 1) as u8);
            if stuffing > 1 {
                self.out.push(0); // flags
                self.out.extend(std::iter::repeat_n(0xFF, stuffing - 2));
            }
        }
        self.out.extend_from_slice(payload);
    }

    fn section(&mut self, pid: u16, table_id: u8, extension: u16, version: u8, table: &[u8]) {
        let section_length = 5 + table.len() + 4;
        let mut section = vec![
            table_id,
            0xB0 | (section_length >> 8) as u8,
            section_length as u8,
        ];
        section.extend_from_slice(&extension.to_be_bytes());
        section.extend_from_slice(&[0xC1 | version << 1, 0, 0]);
        section.extend_from_slice(table);
        let crc = crc32_mpeg2(&section);
        section.extend_from_slice(&crc.to_be_bytes());
        let mut payload = vec![0]; // pointer_field
        payload.extend_from_slice(&section);
        payload.resize(184, 0xFF);
        self.packet(pid, true, &payload);
    }

    fn pat(&mut self) {
        let mut table = 1u16.to_be_bytes().to_vec();
        table.extend_from_slice(&(0xE000 | PMT_PID).to_be_bytes());
        self.section(PAT_PID, TABLE_ID_PAT, 1, 0, &table);
    }

    fn pmt(&mut self, version: u8, streams: &[(u8, u16)]) {
        let mut table = (0xE000 | VIDEO_PID).to_be_bytes().to_vec();
        table.extend_from_slice(&0xF000u16.to_be_bytes());
        for &(stream_type, pid) in streams {
            table.push(stream_type);
            table.extend_from_slice(&(0xE000 | pid).to_be_bytes());
            table.extend_from_slice(&0xF000u16.to_be_bytes());
        }
        self.section(PMT_PID, TABLE_ID_PMT, 1, version, &table);
    }

    /// A PES split into packets. `declare_len`: PES_packet_length set (else 0).
    fn pes(&mut self, pid: u16, pts: u64, dts: Option<u64>, data: &[u8], declare_len: bool) {
        let pes = pes_bytes(
            if pid == AUDIO_PID { 0xC0 } else { 0xE0 },
            pts,
            dts,
            data,
            declare_len,
        );
        for (i, chunk) in pes.chunks(184).enumerate() {
            self.packet(pid, i == 0, chunk);
        }
    }
}

fn pes_bytes(stream_id: u8, pts: u64, dts: Option<u64>, data: &[u8], declare_len: bool) -> Vec<u8> {
    let header_len = if dts.is_some() { 10 } else { 5 };
    let mut pes = vec![
        0,
        0,
        1,
        stream_id,
        0,
        0,
        0x80,
        if dts.is_some() { 0xC0 } else { 0x80 },
    ];
    pes.push(header_len);
    let mut ts = |prefix: u8, t: u64| {
        pes.extend_from_slice(&[
            prefix << 4 | ((t >> 29) as u8 & 0x0E) | 1,
            (t >> 22) as u8,
            (t >> 14) as u8 | 1,
            (t >> 7) as u8,
            (t << 1) as u8 | 1,
        ]);
    };
    ts(if dts.is_some() { 3 } else { 2 }, pts);
    if let Some(dts) = dts {
        ts(1, dts);
    }
    pes.extend_from_slice(data);
    if declare_len {
        let len = (pes.len() - 6) as u16;
        pes[4..6].copy_from_slice(&len.to_be_bytes());
    }
    pes
}

/// An ADTS frame: AAC LC, sampling frequency index `sf`, mono, `raw` payload; with a CRC
/// field (9-byte header) when `crc`.
fn adts(sf: u8, raw: &[u8], crc: bool) -> Vec<u8> {
    let header_len = if crc { 9 } else { 7 };
    let len = header_len + raw.len();
    let mut frame = vec![
        0xFF,
        if crc { 0xF0 } else { 0xF1 },
        1 << 6 | sf << 2,
        1 << 6 | (len >> 11) as u8,
        (len >> 3) as u8,
        (len << 5) as u8 | 0x1F,
        0xFC,
    ];
    if crc {
        frame.extend_from_slice(&[0xAB, 0xCD]);
    }
    frame.extend_from_slice(raw);
    frame
}

// A real x264 SPS/PPS (High, 320x240) and made-up slices.
const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10,
    0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x42, 0x99, 0x60,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x10];
const SLICE: &[u8] = &[0x41, 0x9a, 0x21, 0x6c];

fn annexb(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, nal) in nals.iter().enumerate() {
        // Mix 4- and 3-byte start codes, and a trailing zero byte.
        out.extend_from_slice(if i % 2 == 0 {
            &[0, 0, 0, 1][..]
        } else {
            &[0, 0, 1][..]
        });
        out.extend_from_slice(nal);
    }
    out.push(0);
    out
}

fn avcc(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

fn h264_stream() -> Writer {
    let mut w = Writer::default();
    w.pat();
    w.pmt(
        0,
        &[
            (STREAM_TYPE_H264, VIDEO_PID),
            (STREAM_TYPE_AAC_ADTS, AUDIO_PID),
        ],
    );
    w
}

#[test]
fn h264_parameter_sets_become_records_and_leave_the_frames() {
    let aud: &[u8] = &[0x09, 0xF0];
    let filler: &[u8] = &[0x0C, 0xFF, 0xFF];
    let sei: &[u8] = &[0x06, 0x05, 0x01, 0x80];
    let pps2: &[u8] = &[0x68, 0xee, 0x3c, 0x80];
    let mut w = h264_stream();
    // A frame before any SPS/PPS is dropped.
    w.pes(VIDEO_PID, 9000, None, &annexb(&[aud, SLICE]), false);
    w.pes(
        VIDEO_PID,
        12600,
        Some(9000 + 3600),
        &annexb(&[aud, SPS, PPS, sei, IDR, filler]),
        false,
    );
    w.pes(VIDEO_PID, 16200, None, &annexb(&[aud, SLICE]), false);
    // The same sets again: no new record. A new PPS: a new record before the frame.
    w.pes(
        VIDEO_PID,
        19800,
        None,
        &annexb(&[aud, SPS, PPS, IDR]),
        false,
    );
    w.pes(VIDEO_PID, 23400, None, &annexb(&[pps2, SLICE]), false);
    let run = demux(&w.out);
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.stats.frames_dropped, 1);
    let units: Vec<(bool, bool, u32, i32)> = run
        .units
        .iter()
        .map(|u| (u.config, u.keyframe, u.dts_ms, u.cts_ms))
        .collect();
    // Times start at the first PES decoded: the dropped frame's.
    assert_eq!(
        units,
        [
            (true, false, 40, 0),
            (false, true, 40, 0),
            (false, false, 80, 0),
            (false, true, 120, 0),
            (true, false, 160, 0),
            (false, false, 160, 0),
        ]
    );
    let mut record = vec![1, 0x64, 0x00, 0x0d, 0xFF, 0xE1, 0, SPS.len() as u8];
    record.extend_from_slice(SPS);
    record.extend_from_slice(&[1, 0, PPS.len() as u8]);
    record.extend_from_slice(PPS);
    record.extend_from_slice(&[0xFD, 0xF8, 0xF8, 0]); // 4:2:0, 8-bit
    assert_eq!(run.units[0].payload(), &record[..]);
    assert_eq!(run.units[1].payload(), &avcc(&[sei, IDR])[..]);
    assert_eq!(run.units[2].payload(), &avcc(&[SLICE])[..]);
    // The new record keeps the SPS and carries the new PPS.
    let record = run.units[4].payload();
    assert!(record.windows(SPS.len()).any(|w| w == SPS));
    assert!(record.windows(pps2.len()).any(|w| w == pps2));
    assert!(!record.windows(PPS.len()).any(|w| w == PPS));
}

#[test]
fn video_pes_without_length_ends_at_finish() {
    let mut w = h264_stream();
    w.pes(VIDEO_PID, 9000, None, &annexb(&[SPS, PPS, IDR]), false);
    let mut demuxer = TsDemuxer::new(TsDemuxLimits::default());
    demuxer.push(&w.out);
    assert_eq!(
        demuxer.poll(),
        Ok(None),
        "could continue in the next packet"
    );
    assert!(demuxer.buffered_len() > 0);
    demuxer.finish().unwrap();
    assert!(demuxer.poll().unwrap().unwrap().config);
    assert!(demuxer.poll().unwrap().unwrap().keyframe);
    assert_eq!(demuxer.poll(), Ok(None));
    // Input after the end is dropped.
    demuxer.push(&w.out);
    assert_eq!(demuxer.poll(), Ok(None));
}

#[test]
fn timestamps_unwrap_across_the_33_bit_wrap() {
    let wrap = 1u64 << 33;
    let mut w = h264_stream();
    let start = wrap - 2 * 3600;
    for i in 0..5u64 {
        let dts = (start + i * 3600) % wrap;
        let pts = (dts + 7200) % wrap;
        let nals: Vec<&[u8]> = if i == 0 {
            vec![SPS, PPS, IDR]
        } else {
            vec![SLICE]
        };
        w.pes(VIDEO_PID, pts, Some(dts), &annexb(&nals), false);
        // Audio stamped a little after, across the wrap too.
        let frame = adts(4, &[0x21, 0x10], false);
        w.pes(AUDIO_PID, (dts + 900) % wrap, None, &frame, true);
    }
    let run = demux(&w.out);
    assert_eq!(run.result, Ok(()));
    let video: Vec<(u32, i32)> = run
        .frames(UnitKind::Video)
        .iter()
        .map(|u| (u.dts_ms, u.cts_ms))
        .collect();
    // The first audio PES completes before the first video PES (which ends at the next
    // one), so it starts the timeline 10 ms after the first video dts: that dts is clamped
    // to 0, its presentation time kept (70 ms).
    assert_eq!(video, [(0, 70), (30, 80), (70, 80), (110, 80), (150, 80)]);
    let audio: Vec<u32> = run
        .frames(UnitKind::Audio)
        .iter()
        .map(|u| u.dts_ms)
        .collect();
    assert_eq!(audio, [0, 40, 80, 120, 160]);
}

#[test]
fn adts_frames_split_across_pes_and_with_crc() {
    let a = adts(4, &[1; 20], false);
    let b = adts(4, &[2; 30], true);
    let c = adts(4, &[3; 10], false);
    let d = adts(3, &[4; 10], false); // 48 kHz: a new AudioSpecificConfig
    let mut first = a.clone();
    first.extend_from_slice(&b[..5]); // inside b's header
    let mut second = b[5..].to_vec();
    second.extend_from_slice(&c);
    second.extend_from_slice(&c[..1]); // a lone 0xFF
    let mut third = c[1..].to_vec();
    third.extend_from_slice(&d);

    let mut w = Writer::default();
    w.pat();
    w.pmt(0, &[(STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    w.pes(AUDIO_PID, 90_000, None, &first, true);
    w.pes(AUDIO_PID, 90_000 + 2 * 2090, None, &second, true);
    w.pes(AUDIO_PID, 90_000 + 4 * 2090, None, &third, true);
    let run = demux(&w.out);
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.stats.frames_dropped, 0);
    let units: Vec<(bool, u32, Vec<u8>)> = run
        .units
        .iter()
        .map(|u| (u.config, u.dts_ms, u.payload().to_vec()))
        .collect();
    // a at the first PTS; b (begun in the first PES) 1024 samples later; c at the second
    // PTS; the second c (begun as one byte) after it; d at the third PTS.
    assert_eq!(
        units,
        [
            (true, 0, vec![0x12, 0x08]),
            (false, 0, vec![1; 20]),
            (false, 23, vec![2; 30]),
            (false, 46, vec![3; 10]),
            (false, 69, vec![3; 10]),
            (true, 92, vec![0x11, 0x88]),
            (false, 92, vec![4; 10]),
        ]
    );
}

#[test]
fn adts_garbage_is_skipped_to_the_next_frame() {
    let mut data = vec![0x00, 0xFF, 0x12, 0x34];
    data.extend_from_slice(&adts(4, &[7; 12], false));
    let mut w = Writer::default();
    w.pat();
    w.pmt(0, &[(STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    w.pes(AUDIO_PID, 0, None, &data, true);
    let run = demux(&w.out);
    assert_eq!(run.frames(UnitKind::Audio).len(), 1);
    assert_eq!(run.frames(UnitKind::Audio)[0].payload(), &[7; 12]);
    assert_eq!(run.stats.frames_dropped, 1);
}

#[test]
fn pmt_version_change_adds_and_switches_streams() {
    // Audio only, then (PMT version 1) video appears; then (version 2) the video moves PID.
    let mut w = Writer::default();
    w.pat();
    w.pmt(0, &[(STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    w.pes(AUDIO_PID, 0, None, &adts(4, &[1; 8], false), true);
    w.pes(VIDEO_PID, 0, None, &annexb(&[SPS, PPS, IDR]), false); // not listed yet
    w.pmt(
        1,
        &[
            (STREAM_TYPE_AAC_ADTS, AUDIO_PID),
            (STREAM_TYPE_H264, VIDEO_PID),
        ],
    );
    w.pes(VIDEO_PID, 3600, None, &annexb(&[SPS, PPS, IDR]), false);
    w.pes(VIDEO_PID, 7200, None, &annexb(&[SLICE]), false);
    w.pmt(
        2,
        &[(STREAM_TYPE_AAC_ADTS, AUDIO_PID), (STREAM_TYPE_H264, 0x200)],
    );
    w.pes(VIDEO_PID, 10800, None, &annexb(&[SLICE]), false); // old PID: ignored
    w.pes(0x200, 14400, None, &annexb(&[SPS, PPS, IDR]), false);
    let run = demux(&w.out);
    assert_eq!(run.result, Ok(()));
    let units: Vec<(UnitKind, bool, u32)> = run
        .units
        .iter()
        .map(|u| (u.kind, u.config, u.dts_ms))
        .collect();
    assert_eq!(
        units,
        [
            (UnitKind::Audio, true, 0),
            (UnitKind::Audio, false, 0),
            (UnitKind::Video, true, 40),
            (UnitKind::Video, false, 40),
            // The PMT change ends the old PID's PES.
            (UnitKind::Video, false, 80),
            // The new stream starts over: record first.
            (UnitKind::Video, true, 160),
            (UnitKind::Video, false, 160),
        ]
    );
}

#[test]
fn concatenated_h264_and_hevc_files_switch_codec() {
    let mut both = H264_AAC.to_vec();
    both.extend_from_slice(HEVC_AAC);
    let run = demux(&both);
    assert_eq!(run.result, Ok(()));
    let video = run.of(UnitKind::Video);
    assert_eq!(video.len(), 102);
    assert!(video[..51].iter().all(|u| u.codec == Codec::H264));
    assert!(video[51].config && video[51].codec == Codec::Hevc);
    assert!(video[52].keyframe && video[52].codec == Codec::Hevc);
}

// ---- hostile input ----

#[test]
fn garbage_without_a_program_fails_within_the_bound() {
    let limits = TsDemuxLimits {
        program_wait_bytes_max: 100_000,
        ..TsDemuxLimits::default()
    };
    let mut seed = 0x1234_5678u32;
    let garbage: Vec<u8> = (0..300_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect();
    let run = demux_chunks(limits, garbage.chunks(1000));
    assert!(run.units.is_empty());
    let Err(error @ TsDemuxError::NoProgram { bytes }) = run.result else {
        panic!("{:?}", run.result);
    };
    // Checked after each packet or each run of skipped bytes (here at most a push).
    assert!((100_001..=101_200).contains(&bytes), "{bytes}");
    assert_eq!(error.reason(), "no_program");
    assert!(error.to_string().contains("no PAT/PMT"));
    assert!(run.stats.resyncs >= 1);
    assert!(run.stats.bytes_in <= 102_000);
}

#[test]
fn stream_without_pat_fails_within_the_bound() {
    // Every PID but the PAT's.
    let without_pat: Vec<u8> = H264_AAC
        .chunks(TS_PACKET_LEN)
        .filter(|p| (u16::from(p[1] & 0x1F) << 8 | u16::from(p[2])) != 0)
        .flatten()
        .copied()
        .collect();
    let limits = TsDemuxLimits {
        program_wait_bytes_max: 50_000,
        ..TsDemuxLimits::default()
    };
    let run = demux_with(limits, &without_pat);
    assert!(run.units.is_empty());
    assert_eq!(run.result, Err(TsDemuxError::NoProgram { bytes: 50_008 }));
    // The default bound is far above the file: no error, no units.
    let run = demux(&without_pat);
    assert_eq!(run.result, Ok(()));
    assert!(run.units.is_empty());
}

#[test]
fn video_without_a_key_frame_fails_within_the_bound() {
    // The video PID's packets are all dropped: audio flows, video never starts.
    let without_video: Vec<u8> = H264_AAC
        .chunks(TS_PACKET_LEN)
        .filter(|p| (u16::from(p[1] & 0x1F) << 8 | u16::from(p[2])) != VIDEO_PID)
        .flatten()
        .copied()
        .collect();
    let limits = TsDemuxLimits {
        keyframe_wait_bytes_max: 10_000,
        ..TsDemuxLimits::default()
    };
    let run = demux_with(limits, &without_video);
    let Err(error @ TsDemuxError::NoKeyframe { bytes }) = run.result else {
        panic!("{:?}", run.result);
    };
    assert_eq!(error.reason(), "no_keyframe");
    assert!((10_001..10_001 + 188).contains(&bytes));
    // The audio before the error is handed out; the count does not depend on the slicing.
    assert!(!run.of(UnitKind::Audio).is_empty());
    let bytewise = demux_chunks(limits, without_video.chunks(1));
    assert_eq!(bytewise.units, run.units);
    assert_eq!(bytewise.result, run.result);

    // A real key frame inside the bound ends the wait.
    assert_eq!(demux_with(limits, H264_AAC).result, Ok(()));
}

#[test]
fn sync_loss_resyncs_and_continues() {
    let clean = demux(H264_AAC);
    // Garbage (with no 0x47 in it) between two packets: nothing is lost.
    let mut data = H264_AAC[..100 * TS_PACKET_LEN].to_vec();
    data.extend((0..1000).map(|i| (i % 0x40) as u8));
    data.extend_from_slice(&H264_AAC[100 * TS_PACKET_LEN..]);
    let run = demux(&data);
    assert_eq!(run.units, clean.units);
    assert_eq!(run.stats.resyncs, 1);
    let bytewise = demux_chunks(TsDemuxLimits::default(), data.chunks(1));
    assert_eq!(bytewise.units, clean.units);

    // A damaged sync byte: that packet is lost (found by the resync), the frame it belonged
    // to is dropped at the CC gap, the rest comes through.
    let packets: Vec<&[u8]> = H264_AAC.chunks(TS_PACKET_LEN).collect();
    let pid = |p: &[u8]| u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
    let lost = (100..)
        .find(|&i| pid(packets[i]) == VIDEO_PID && packets[i][1] & 0x40 == 0)
        .unwrap();
    let mut data = H264_AAC.to_vec();
    data[lost * TS_PACKET_LEN] = 0x00;
    let run = demux(&data);
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.stats.resyncs, 1);
    assert_eq!((run.stats.cc_errors, run.stats.pes_dropped), (1, 1));
    assert_eq!(run.frames(UnitKind::Video).len(), 49);
    assert_eq!(run.of(UnitKind::Audio), clean.of(UnitKind::Audio));
}

#[test]
fn cc_gap_drops_the_pes_and_duplicates_are_ignored() {
    let clean = demux(H264_AAC);
    let packets: Vec<&[u8]> = H264_AAC.chunks(TS_PACKET_LEN).collect();
    let pid = |p: &[u8]| u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
    // A video packet in the middle of a frame (no unit start).
    let lost = (100..)
        .find(|&i| pid(packets[i]) == VIDEO_PID && packets[i][1] & 0x40 == 0)
        .unwrap();
    let data: Vec<u8> = packets
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != lost)
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    let run = demux(&data);
    assert_eq!(run.result, Ok(()));
    assert_eq!((run.stats.cc_errors, run.stats.pes_dropped), (1, 1));
    assert_eq!(run.frames(UnitKind::Video).len(), 49);
    assert_eq!(run.of(UnitKind::Audio), clean.of(UnitKind::Audio));

    // The same packet twice: the copy is dropped.
    let data: Vec<u8> = packets
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let times = if i == lost { 2 } else { 1 };
            std::iter::repeat_n(p.iter().copied(), times).flatten()
        })
        .collect();
    let run = demux(&data);
    assert_eq!(run.units, clean.units);
    assert_eq!(run.stats.cc_errors, 0);
}

#[test]
fn truncated_pes_is_dropped() {
    // The stream cut inside an audio PES (which declares its length): dropped at finish.
    let packets: Vec<&[u8]> = H264_AAC.chunks(TS_PACKET_LEN).collect();
    let pid = |p: &[u8]| u16::from(p[1] & 0x1F) << 8 | u16::from(p[2]);
    let cut = (50..)
        .find(|&i| pid(packets[i]) == AUDIO_PID && packets[i][1] & 0x40 != 0)
        .unwrap();
    let data = &H264_AAC[..(cut + 1) * TS_PACKET_LEN + 100];
    let run = demux(data);
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.stats.pes_dropped, 1);

    // A declared length longer than what comes before the next unit start: dropped too.
    let mut w = Writer::default();
    w.pat();
    w.pmt(0, &[(STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    let mut pes = pes_bytes(0xC0, 0, None, &adts(4, &[1; 8], false), true);
    pes[4..6].copy_from_slice(&500u16.to_be_bytes());
    w.packet(AUDIO_PID, true, &pes);
    w.pes(AUDIO_PID, 2090, None, &adts(4, &[2; 8], false), true);
    let run = demux(&w.out);
    assert_eq!(run.stats.pes_dropped, 1);
    assert_eq!(run.frames(UnitKind::Audio).len(), 1);
    assert_eq!(run.frames(UnitKind::Audio)[0].payload(), &[2; 8]);
}

#[test]
fn pes_over_the_limit_fails() {
    let limits = TsDemuxLimits {
        pes_bytes_max: 3000,
        ..TsDemuxLimits::default()
    };
    let run = demux_with(limits, H264_AAC);
    let Err(error @ TsDemuxError::PesTooLarge { bytes }) = run.result else {
        panic!("{:?}", run.result);
    };
    assert_eq!(error.reason(), "pes_too_large");
    assert!((3001..=3000 + 184).contains(&bytes));
    // Nothing of the large frame came out, and the demuxer stays failed.
    assert!(run.frames(UnitKind::Video).is_empty());
    let mut demuxer = TsDemuxer::new(limits);
    demuxer.push(H264_AAC);
    while demuxer.poll().is_ok_and(|u| u.is_some()) {}
    assert_eq!(demuxer.poll(), Err(error));
    assert_eq!(demuxer.finish(), Err(error));
    assert!(demuxer.buffered_len() <= 3000 + TS_PACKET_LEN);
}

#[test]
fn bad_sections_are_counted_and_ignored() {
    let mut w = Writer::default();
    w.pat();
    let good_pmt_start = w.out.len();
    w.pmt(0, &[(STREAM_TYPE_AAC_ADTS, AUDIO_PID)]);
    // Corrupt the PMT's CRC: ignored, so no program yet.
    let mut bad = w.out.clone();
    bad[good_pmt_start + 5 + 20] ^= 0x01;
    let run = demux(&bad);
    assert_eq!(run.stats.psi_errors, 1);
    // A section_length over the maximum.
    let mut bad = w.out.clone();
    bad[good_pmt_start + 6] = 0xBF;
    let run = demux(&bad);
    assert_eq!(run.stats.psi_errors, 1);
    // A pointer_field past the payload.
    let mut bad = w.out.clone();
    bad[good_pmt_start + 4] = 200;
    let run = demux(&bad);
    assert_eq!(run.stats.psi_errors, 1);
    // Intact, it opens the program.
    w.pes(AUDIO_PID, 0, None, &adts(4, &[1; 8], false), true);
    let run = demux(&w.out);
    assert_eq!(run.stats.psi_errors, 0);
    assert_eq!(run.frames(UnitKind::Audio).len(), 1);
}

#[test]
fn invalid_packets_are_skipped() {
    let mut w = h264_stream();
    w.pes(VIDEO_PID, 0, None, &annexb(&[SPS, PPS, IDR]), false);
    let mut data = w.out.clone();
    // Transport error indicator on the PMT: not read, so the video PID is unknown.
    data[TS_PACKET_LEN + 1] |= 0x80;
    let run = demux(&data);
    assert_eq!(run.stats.packets_invalid, 1);
    assert!(run.units.is_empty());
    // An adaptation field longer than the packet.
    let mut data = w.out.clone();
    data[2 * TS_PACKET_LEN + 3] |= 0x30;
    data[2 * TS_PACKET_LEN + 4] = 184;
    let run = demux(&data);
    assert_eq!(run.stats.packets_invalid, 1);
}

#[test]
fn room_around_the_tag() {
    let mut demuxer = TsDemuxer::new(TsDemuxLimits::default()).with_room(7, 3);
    demuxer.push(H264_AAC);
    let unit = demuxer.poll().unwrap().unwrap();
    let tag = unit.flv_tag.as_ref().unwrap();
    assert_eq!(tag.len(), 7 + flv::tag_len(unit.body.len()) + 3);
    assert_eq!(
        tag.as_ptr().wrapping_add(7 + TAG_HEADER_LEN),
        unit.body.as_ptr()
    );
    assert_eq!(
        &tag[7..7 + TAG_HEADER_LEN],
        &tag_header(TAG_TYPE_VIDEO, unit.dts_ms, unit.body.len())
    );
    let prev = &tag[7 + TAG_HEADER_LEN + unit.body.len()..][..4];
    assert_eq!(
        prev,
        &((TAG_HEADER_LEN + unit.body.len()) as u32).to_be_bytes()
    );
}

#[test]
fn errors_display_and_reasons() {
    let errors = [
        TsDemuxError::NoProgram { bytes: 1 },
        TsDemuxError::NoKeyframe { bytes: 2 },
        TsDemuxError::PesTooLarge { bytes: 3 },
    ];
    let reasons: Vec<&str> = errors.iter().map(|e| e.reason()).collect();
    assert_eq!(reasons, ["no_program", "no_keyframe", "pes_too_large"]);
    for error in errors {
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn crc_of_a_known_section() {
    // ffmpeg's PAT section (in the second packet, after the SDT): with its CRC, 0.
    let packet = H264_AAC
        .chunks(TS_PACKET_LEN)
        .find(|p| p[1] & 0x1F == 0 && p[2] == 0)
        .unwrap();
    let pat = &packet[5..5 + 3 + 13];
    assert_eq!(crc32_mpeg2(pat), 0);
    assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
}

#[test]
fn unit_body_is_shared_with_its_tag_buffer() {
    let run = demux(H264_AAC);
    for unit in &run.units {
        let tag = unit.flv_tag.as_ref().unwrap();
        assert_eq!(
            tag.as_ptr().wrapping_add(TAG_HEADER_LEN),
            unit.body.as_ptr()
        );
    }
}

/// The VPS, SPS and PPS of the x265 sample, from the record the demuxer builds for it.
fn hevc_parameter_sets() -> [Vec<u8>; 3] {
    let run = demux(HEVC_AAC);
    let record = run.units[0].payload();
    let mut sets: [Vec<u8>; 3] = Default::default();
    let mut at = 23;
    for set in &mut sets {
        at += 3; // type, count (1)
        let len = usize::from(u16::from_be_bytes([record[at], record[at + 1]]));
        *set = record[at + 2..at + 2 + len].to_vec();
        at += 2 + len;
    }
    sets
}

#[test]
fn hevc_sets_accumulate_and_a_malformed_change_keeps_the_record() {
    let [vps, sps, pps] = hevc_parameter_sets();
    let idr: &[u8] = &[0x26, 0x01, 0xAF, 0x10]; // IDR_W_RADL (19)
    let trail: &[u8] = &[0x02, 0x01, 0xD0, 0x20]; // TRAIL_R (1)
    let aud: &[u8] = &[0x46, 0x01, 0x50]; // AUD (35)
    let short_sps: &[u8] = &[0x42, 0x01, 0x01, 0x01]; // too short for profile_tier_level
    let mut w = Writer::default();
    w.pat();
    w.pmt(0, &[(STREAM_TYPE_HEVC, VIDEO_PID)]);
    // No VPS yet: no record, the frame is dropped.
    w.pes(VIDEO_PID, 0, None, &annexb(&[aud, &sps, &pps, idr]), false);
    // The VPS completes the sets kept from before.
    w.pes(VIDEO_PID, 3600, None, &annexb(&[aud, &vps, idr]), false);
    // An unreadable SPS: the record in force stays, frames keep coming.
    w.pes(VIDEO_PID, 7200, None, &annexb(&[short_sps, trail]), false);
    w.pes(VIDEO_PID, 10800, None, &annexb(&[trail]), false);
    let run = demux(&w.out);
    assert_eq!(run.result, Ok(()));
    assert_eq!(run.stats.frames_dropped, 1);
    let units: Vec<(bool, bool, u32)> = run
        .units
        .iter()
        .map(|u| (u.config, u.keyframe, u.dts_ms))
        .collect();
    assert_eq!(
        units,
        [
            (true, false, 40),
            (false, true, 40),
            (false, false, 80),
            (false, false, 120)
        ]
    );
    assert_eq!(run.units[0].payload(), demux(HEVC_AAC).units[0].payload());
    assert_eq!(run.units[1].payload(), &avcc(&[idr])[..]);
    assert_eq!(
        &run.units[2].body[..],
        &[&b"\xA3hvc1"[..], &avcc(&[trail])].concat()[..]
    );
}
