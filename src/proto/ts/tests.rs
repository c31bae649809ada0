use std::collections::HashMap;
use std::process::Command;

use bytes::Bytes;

use super::*;
use crate::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits, classify_tag};

const FFMPEG_FLV: &[u8] = include_bytes!("../../../tests/data/h264_aac_2s.flv");

fn unit(tag_type: u8, dts_ms: u32, body: &[u8]) -> MediaUnit {
    classify_tag(tag_type, dts_ms, Bytes::copy_from_slice(body)).unwrap()
}

struct Packet<'a> {
    pid: u16,
    start: bool,
    cc: u8,
    adaptation: &'a [u8],
    payload: &'a [u8],
}

fn packets(ts: &[u8]) -> Vec<Packet<'_>> {
    assert_eq!(ts.len() % TS_PACKET_LEN, 0);
    ts.chunks(TS_PACKET_LEN)
        .map(|p| {
            assert_eq!(p[0], SYNC_BYTE);
            let control = p[3] >> 4;
            let (adaptation, payload_start) = if control & 0x2 != 0 {
                let len = usize::from(p[4]);
                (&p[5..5 + len], 5 + len)
            } else {
                (&p[4..4], 4)
            };
            Packet {
                pid: (u16::from(p[1] & 0x1F) << 8) | u16::from(p[2]),
                start: p[1] & 0x40 != 0,
                cc: p[3] & 0x0F,
                adaptation,
                payload: if control & 0x1 != 0 {
                    &p[payload_start..]
                } else {
                    &[]
                },
            }
        })
        .collect()
}

/// PES packets of `pid`, reassembled.
fn pes_of(ts: &[u8], pid: u16) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for p in packets(ts).into_iter().filter(|p| p.pid == pid) {
        if p.start {
            out.push(Vec::new());
        }
        out.last_mut().unwrap().extend_from_slice(p.payload);
    }
    out
}

/// Elementary stream data of a PES packet.
fn pes_data(pes: &[u8]) -> &[u8] {
    assert_eq!(&pes[..3], &[0, 0, 1]);
    &pes[9 + usize::from(pes[8])..]
}

#[test]
fn crc32_mpeg2_check_value() {
    assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
}

#[test]
fn pat_matches_ffmpeg_bytes() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    muxer.write_psi(&mut out);
    assert_eq!(out.len(), 2 * TS_PACKET_LEN);
    // ffmpeg's PAT for transport_stream_id 1, program 1 → PMT PID 0x1000.
    assert_eq!(
        &out[..21],
        &[
            0x47, 0x40, 0x00, 0x10, 0x00, 0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00,
            0x01, 0xF0, 0x00, 0x2A, 0xB1, 0x04, 0xB2
        ]
    );
    assert!(out[21..TS_PACKET_LEN].iter().all(|b| *b == 0xFF));
    // Empty PMT: PCR PID 0x1FFF, no streams; its CRC checks out (CRC over section incl. CRC = 0).
    let pmt = &out[TS_PACKET_LEN + 5..];
    let section_len = usize::from(u16::from_be_bytes([pmt[1], pmt[2]]) & 0x0FFF);
    assert_eq!(crc32_mpeg2(&pmt[..3 + section_len]), 0);
    assert_eq!(&pmt[8..10], &[0xFF, 0xFF]);
}

#[test]
fn adts_header_bytes() {
    let aac = parse_aac_config(&[0x12, 0x08]).unwrap();
    let mut out = Vec::new();
    write_adts_header(aac, 100, &mut out);
    assert_eq!(out, [0xFF, 0xF1, 0x50, 0x40, 0x0C, 0x9F, 0xFC]);
    assert_eq!(parse_aac_config(&[0xF8, 0x00]), None, "escape object type");
    assert_eq!(
        parse_aac_config(&[0x17, 0x80]),
        None,
        "explicit sampling rate"
    );
}

#[test]
fn h264_becomes_annex_b_with_parameter_sets_before_idr() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    // AVCDecoderConfigurationRecord: 4-byte lengths, one SPS, one PPS.
    let config = [
        0x17, 0x00, 0, 0, 0, // FLV video tag header
        0x01, 0x64, 0x00, 0x1F, 0xFF, 0xE1, 0x00, 0x03, 0x67, 0x64, 0x1F, 0x01, 0x00, 0x02, 0x68,
        0xEE,
    ];
    muxer.write_unit(&unit(9, 0, &config), &mut out);
    assert!(out.is_empty(), "config units write nothing");

    // Key frame: SEI + IDR slice, cts 80 ms.
    let idr = [
        0x17, 0x01, 0x00, 0x00, 0x50, 0, 0, 0, 2, 0x06, 0xAA, 0, 0, 0, 3, 0x65, 0x88, 0x84,
    ];
    muxer.write_unit(&unit(9, 40, &idr), &mut out);
    let pkts = packets(&out);
    assert_eq!(
        (pkts[0].pid, pkts[1].pid, pkts[2].pid),
        (0, PMT_PID, VIDEO_PID)
    );
    // Random access indicator and PCR (= dts 40 ms = 3600) in the first video packet.
    let af = pkts[2].adaptation;
    assert_eq!(af[0] & 0x50, 0x50);
    let pcr_base = (u64::from(af[1]) << 25)
        | (u64::from(af[2]) << 17)
        | (u64::from(af[3]) << 9)
        | (u64::from(af[4]) << 1)
        | u64::from(af[5] >> 7);
    assert_eq!(pcr_base, 3600);

    let pes = pes_of(&out, VIDEO_PID);
    assert_eq!(pes.len(), 1);
    // PTS (120 ms) and DTS (40 ms) both present.
    assert_eq!(pes[0][7], 0xC0);
    assert_eq!(
        pes_data(&pes[0]),
        &[
            0, 0, 0, 1, 0x09, 0xF0, // AUD
            0, 0, 0, 1, 0x06, 0xAA, // SEI
            0, 0, 0, 1, 0x67, 0x64, 0x1F, // SPS
            0, 0, 0, 1, 0x68, 0xEE, // PPS
            0, 0, 0, 1, 0x65, 0x88, 0x84, // IDR
        ]
    );

    // Inter frame with pts == dts: no PSI, PTS only, no parameter sets.
    let mut out = Vec::new();
    muxer.write_unit(
        &unit(9, 80, &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9A]),
        &mut out,
    );
    let pkts = packets(&out);
    assert!(pkts.iter().all(|p| p.pid == VIDEO_PID));
    let pes = pes_of(&out, VIDEO_PID);
    assert_eq!(pes[0][7], 0x80);
    assert_eq!(
        pes_data(&pes[0]),
        &[0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x41, 0x9A]
    );
    // Lengths that overrun the frame write nothing.
    let mut out = Vec::new();
    muxer.write_unit(
        &unit(9, 120, &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 9, 0x41]),
        &mut out,
    );
    assert!(out.is_empty());
}

#[test]
fn aac_gets_adts_and_waits_for_its_config() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    muxer.write_unit(&unit(8, 0, &[0xAF, 0x01, 0x21, 0x22]), &mut out);
    assert!(out.is_empty(), "no ADTS header without AudioSpecificConfig");
    muxer.write_unit(&unit(8, 0, &[0xAF, 0x00, 0x12, 0x08]), &mut out);
    assert!(out.is_empty());
    muxer.write_unit(&unit(8, 23, &[0xAF, 0x01, 0x21, 0x22]), &mut out);
    let pes = pes_of(&out, AUDIO_PID);
    assert_eq!(pes.len(), 1);
    // PES_packet_length = 3 + 5 + 7 + 2.
    assert_eq!(&pes[0][4..6], &[0, 17]);
    assert_eq!(
        pes_data(&pes[0]),
        &[0xFF, 0xF1, 0x50, 0x40, 0x01, 0x3F, 0xFC, 0x21, 0x22]
    );
    // Audio-only program: PCR on the audio PID.
    let pkts = packets(&out);
    let audio = pkts.iter().find(|p| p.pid == AUDIO_PID).unwrap();
    assert_eq!(audio.adaptation[0] & 0x10, 0x10);
}

#[test]
fn packets_are_well_formed_for_every_payload_size() {
    // Sizes around the 184-byte boundaries exercise 0, 1 and many bytes of stuffing.
    for len in [
        1usize, 150, 160, 161, 162, 163, 170, 175, 176, 177, 178, 183, 184, 185, 400,
    ] {
        let mut muxer = TsMuxer::new();
        let mut out = Vec::new();
        let mut body = vec![0x27, 0x01, 0, 0, 0];
        body.extend_from_slice(&(len as u32).to_be_bytes());
        body.extend((0..len).map(|i| (i % 251) as u8 | 1));
        muxer.write_unit(&unit(9, 0, &body), &mut out);
        let pes = pes_of(&out, VIDEO_PID);
        let data = pes_data(&pes[0]);
        assert_eq!(&data[10..], &body[9..], "len {len}");
    }
}

#[test]
fn ffmpeg_capture_remuxes_with_continuous_counters() {
    let ts = mux_capture();
    let mut last_cc: HashMap<u16, u8> = HashMap::new();
    for p in packets(&ts) {
        if let Some(prev) = last_cc.insert(p.pid, p.cc) {
            assert_eq!(p.cc, (prev + 1) & 0x0F, "pid {:#x}", p.pid);
        }
    }
    assert_eq!(pes_of(&ts, VIDEO_PID).len(), 50);
    assert_eq!(pes_of(&ts, AUDIO_PID).len(), 88);
    // PAT at start and before each of the 2 key frames (the first key frame is the start).
    assert_eq!(packets(&ts).iter().filter(|p| p.pid == 0).count(), 2);
}

fn mux_capture() -> Vec<u8> {
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    demuxer.push(FFMPEG_FLV);
    let mut muxer = TsMuxer::new();
    let mut ts = Vec::new();
    while let Some(event) = demuxer.poll().unwrap() {
        if let FlvEvent::Unit(unit) = event {
            muxer.write_unit(&unit, &mut ts);
        }
    }
    ts
}

/// Checks the muxed capture with ffprobe/ffmpeg, the reference demuxer. Skipped (with a
/// message) only when the tools are not installed.
#[test]
fn ffprobe_accepts_remuxed_capture() {
    let ts = mux_capture();
    let path = std::env::temp_dir().join(format!("uringcast-ts-test-{}.ts", std::process::id()));
    std::fs::write(&path, &ts).unwrap();
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_packets",
            "-of",
            "compact",
        ])
        .arg(&path)
        .output();
    let probe = match probe {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("ffprobe not installed; skipping");
            let _ = std::fs::remove_file(&path);
            return;
        }
        Err(e) => panic!("ffprobe: {e}"),
    };
    let decode = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);

    assert!(probe.status.success());
    assert!(
        probe.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let text = String::from_utf8(probe.stdout).unwrap();
    let streams: Vec<&str> = text.lines().filter(|l| l.starts_with("stream|")).collect();
    assert_eq!(streams.len(), 2);
    assert!(streams[0].contains("codec_name=h264") && streams[0].contains("|width=320|"));
    assert!(streams[0].contains("|height=240|"));
    assert!(streams[1].contains("codec_name=aac") && streams[1].contains("|sample_rate=44100|"));

    let field = |line: &str, name: &str| -> Option<i64> {
        line.split('|')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    };
    for (codec, count) in [("video", 50), ("audio", 88)] {
        let packets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("packet|") && l.contains(&format!("codec_type={codec}")))
            .collect();
        assert_eq!(packets.len(), count, "{codec} packets");
        let dts: Vec<i64> = packets.iter().map(|l| field(l, "dts").unwrap()).collect();
        assert!(
            dts.windows(2).all(|w| w[0] < w[1]),
            "{codec} dts increasing"
        );
        if codec == "video" {
            assert_eq!(packets.iter().filter(|l| l.contains("flags=K")).count(), 2);
            // First frame: dts 0, pts 80 ms = 7200 in 90 kHz.
            assert_eq!(
                (field(packets[0], "dts"), field(packets[0], "pts")),
                (Some(0), Some(7200))
            );
        }
    }

    assert!(decode.status.success());
    assert!(
        decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
}
