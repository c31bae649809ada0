use std::collections::HashMap;
use std::process::Command;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits, classify_tag};
use crate::proto::rtmp::{Event, RtmpLimits, ServerSession};

const FFMPEG_FLV: &[u8] = include_bytes!("../../../tests/data/h264_aac_2s.flv");
/// FFmpeg 9 publishing 3 s of 160x120 HEVC (libx265, -g 15) and AAC over Enhanced RTMP
/// (tests/captures/rtmp/README.md).
const FFMPEG_HEVC_PUBLISH: &[u8] =
    include_bytes!("../../../tests/captures/rtmp/ffmpeg9_hevc_publish.bin");

fn unit(tag_type: u8, dts_ms: u32, body: &[u8]) -> MediaUnit {
    classify_tag(tag_type, dts_ms, Bytes::copy_from_slice(body)).unwrap()
}

// ---- reading TS back ----

struct Packet<'a> {
    pid: u16,
    start: bool,
    cc: u8,
    adaptation: &'a [u8],
    payload: &'a [u8],
}

impl Packet<'_> {
    fn random_access(&self) -> bool {
        self.adaptation
            .first()
            .is_some_and(|flags| flags & 0x40 != 0)
    }

    /// PCR base (90 kHz), if the adaptation field has one.
    fn pcr(&self) -> Option<u64> {
        let af = self.adaptation;
        (af.first()? & 0x10 != 0).then(|| {
            (u64::from(af[1]) << 25)
                | (u64::from(af[2]) << 17)
                | (u64::from(af[3]) << 9)
                | (u64::from(af[4]) << 1)
                | u64::from(af[5] >> 7)
        })
    }
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

/// (PTS, DTS) of a PES packet; DTS = PTS when absent.
fn pes_timestamps(pes: &[u8]) -> (u64, u64) {
    let read = |b: &[u8]| {
        (u64::from(b[0] >> 1 & 0x07) << 30)
            | (u64::from(b[1]) << 22)
            | (u64::from(b[2] >> 1) << 15)
            | (u64::from(b[3]) << 7)
            | u64::from(b[4] >> 1)
    };
    let pts = read(&pes[9..14]);
    match pes[7] >> 6 {
        0b11 => (pts, read(&pes[14..19])),
        0b10 => (pts, pts),
        other => panic!("PTS_DTS_flags {other:#b}"),
    }
}

/// The PMT in a PMT packet: (version, PCR PID, [(stream_type, PID)]); checks its CRC.
fn pmt(packet: &Packet<'_>) -> (u8, u16, Vec<(u8, u16)>) {
    assert_eq!(packet.pid, PMT_PID);
    let s = &packet.payload[1..];
    let section_len = usize::from(u16::from_be_bytes([s[1], s[2]]) & 0x0FFF);
    assert_eq!(crc32_mpeg2(&s[..3 + section_len]), 0, "PMT CRC");
    let version = (s[5] >> 1) & 0x1F;
    let pcr_pid = u16::from_be_bytes([s[8], s[9]]) & 0x1FFF;
    let mut pos = 12 + usize::from(u16::from_be_bytes([s[10], s[11]]) & 0x0FFF);
    let mut streams = Vec::new();
    while pos < 3 + section_len - 4 {
        streams.push((
            s[pos],
            u16::from_be_bytes([s[pos + 1], s[pos + 2]]) & 0x1FFF,
        ));
        pos += 5 + usize::from(u16::from_be_bytes([s[pos + 3], s[pos + 4]]) & 0x0FFF);
    }
    (version, pcr_pid, streams)
}

// ---- building input ----

/// AVCC frame data with 4-byte lengths.
fn avcc(nals: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// An HEVCDecoderConfigurationRecord with the given lengthSizeMinusOne and NAL arrays.
fn hvcc(length_size_minus_one: u8, arrays: &[(u8, &[&[u8]])]) -> Vec<u8> {
    let mut record = vec![
        0x01, // configurationVersion
        0x01, // Main profile
        0x60,
        0x00,
        0x00,
        0x00, // compatibility flags
        0x90,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00, // constraint flags
        0x5A, // level 3.0
        0xF0,
        0x00,
        0xFC,
        0xFD,
        0xF8,
        0xF8,
        0x00,
        0x00,
        0x0C | length_size_minus_one, // one temporal layer, nested, lengthSizeMinusOne
        arrays.len() as u8,
    ];
    for (nal_type, nals) in arrays {
        record.push(0x80 | nal_type);
        record.extend_from_slice(&(nals.len() as u16).to_be_bytes());
        for nal in *nals {
            record.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            record.extend_from_slice(nal);
        }
    }
    record
}

/// An Enhanced RTMP `hvc1` video tag body: `frame_type` 1 (key) or 2, packet type
/// 0 (SequenceStart), 1 (CodedFrames, cts follows) or 3 (CodedFramesX).
fn hvc1(frame_type: u8, packet_type: u8, cts_ms: u32, data: &[u8]) -> Vec<u8> {
    let mut body = vec![0x80 | frame_type << 4 | packet_type];
    body.extend_from_slice(b"hvc1");
    if packet_type == 1 {
        body.extend_from_slice(&cts_ms.to_be_bytes()[1..]);
    }
    body.extend_from_slice(data);
    body
}

const AVC_CONFIG: [u8; 21] = [
    0x17, 0x00, 0, 0, 0, // FLV video tag header
    0x01, 0x64, 0x00, 0x1F, 0xFF, 0xE1, 0x00, 0x03, 0x67, 0x64, 0x1F, 0x01, 0x00, 0x02, 0x68, 0xEE,
];
const AAC_CONFIG: [u8; 4] = [0xAF, 0x00, 0x12, 0x08];

const VPS: &[u8] = &[0x40, 0x01, 0x0C];
const SPS: &[u8] = &[0x42, 0x01, 0x01];
const PPS: &[u8] = &[0x44, 0x01, 0xC1];
const PREFIX_SEI: &[u8] = &[0x4E, 0x01, 0x05];
const IDR_W_RADL: &[u8] = &[0x26, 0x01, 0xAF];
const CRA: &[u8] = &[0x2A, 0x01, 0xAD];
/// TRAIL_R with TemporalId 2.
const TRAIL_TID2: &[u8] = &[0x02, 0x03, 0xD0];

fn hevc_config_unit() -> MediaUnit {
    let record = hvcc(
        3,
        &[
            (32, &[VPS]),
            (33, &[SPS]),
            (34, &[PPS]),
            (39, &[PREFIX_SEI]),
        ],
    );
    unit(9, 0, &hvc1(1, 0, 0, &record))
}

/// Every unit of the FLV capture.
fn flv_units() -> Vec<MediaUnit> {
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    demuxer.push(FFMPEG_FLV);
    let mut units = Vec::new();
    while let Some(event) = demuxer.poll().unwrap() {
        if let FlvEvent::Unit(unit) = event {
            units.push(unit);
        }
    }
    units
}

/// Every media unit of a captured RTMP publish, replayed through the server session as the
/// RTMP ingest does (src/proto/rtmp/tests.rs replays the same captures).
fn rtmp_units(capture: &[u8]) -> Vec<MediaUnit> {
    let mut session = ServerSession::with_seed(RtmpLimits::default(), [9; 32]);
    session.receive(capture).unwrap();
    let mut units = Vec::new();
    while let Some(event) = session.poll_event() {
        match event {
            Event::Connect { .. } => session.accept_connect(),
            Event::Publish { stream_id, .. } => session.accept_publish(stream_id),
            Event::Media(m) => {
                let body = Bytes::copy_from_slice(m.payload());
                if let Ok(unit) = classify_tag(m.msg_type, m.timestamp_ms, body) {
                    units.push(unit);
                }
            }
            Event::CloseStream { stream_id } => session.end_publish(stream_id),
            Event::Play { .. } => panic!("a publish capture"),
        }
    }
    units
}

/// Muxes `units` one by one, checking what each writes, and returns the output and the
/// offset at which each video key frame's output starts.
fn mux_checked(units: &[MediaUnit]) -> (Vec<u8>, Vec<usize>) {
    let mut muxer = TsMuxer::new();
    let mut ts = Vec::new();
    let mut keyframes = Vec::new();
    for unit in units {
        let mut out = Vec::new();
        muxer.write_unit(unit, &mut out);
        let media = matches!(unit.codec, Codec::H264 | Codec::Hevc | Codec::Aac);
        if unit.config || !media {
            assert!(out.is_empty(), "{unit:?} wrote {} bytes", out.len());
        }
        let pkts = packets(&out);
        if unit.keyframe && !out.is_empty() {
            assert!(muxer.has_video());
            // The contract the server relies on to start readers at key frames.
            assert_eq!((pkts[0].pid, pkts[1].pid), (PAT_PID, PMT_PID));
            assert_eq!(pkts[2].pid, VIDEO_PID);
            assert!(pkts[2].start && pkts[2].random_access());
            assert!(pkts[2].pcr().is_some());
            keyframes.push(ts.len());
        }
        // The PCR is never later than the DTS of the PES it starts, and at most the lead
        // before it.
        for p in &pkts {
            if let Some(pcr) = p.pcr() {
                let (_, dts) = pes_timestamps(p.payload);
                assert!(
                    pcr <= dts && dts - pcr <= PCR_LEAD_90KHZ,
                    "pcr {pcr} dts {dts}"
                );
            }
        }
        ts.extend_from_slice(&out);
    }
    (ts, keyframes)
}

// ---- unit tests ----

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
    // Empty PMT: PCR PID 0x1FFF, no streams.
    assert_eq!(
        pmt(&packets(&out)[1]),
        (0, NULL_PID, vec![]),
        "empty program"
    );
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
fn h264_becomes_annex_b_with_parameter_sets_after_the_aud() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    // AVCDecoderConfigurationRecord: 4-byte lengths, one SPS, one PPS.
    muxer.write_unit(&unit(9, 0, &AVC_CONFIG), &mut out);
    assert!(out.is_empty(), "config units write nothing");
    assert!(muxer.has_video());

    // Key frame: SEI + IDR slice, cts 80 ms.
    let mut idr = vec![0x17, 0x01, 0x00, 0x00, 0x50];
    idr.extend(avcc(&[&[0x06, 0xAA], &[0x65, 0x88, 0x84]]));
    muxer.write_unit(&unit(9, 1000, &idr), &mut out);
    let pkts = packets(&out);
    assert_eq!(
        (pkts[0].pid, pkts[1].pid, pkts[2].pid),
        (0, PMT_PID, VIDEO_PID)
    );
    assert_eq!(pmt(&pkts[1]), (0, VIDEO_PID, vec![(0x1B, VIDEO_PID)]));
    // Random access indicator and PCR (dts 1000 ms = 90000, less the lead) in the first
    // video packet.
    assert!(pkts[2].random_access());
    assert_eq!(pkts[2].pcr(), Some(90_000 - PCR_LEAD_90KHZ));

    let pes = pes_of(&out, VIDEO_PID);
    assert_eq!(pes.len(), 1);
    // PTS (1080 ms) and DTS (1000 ms) both present.
    assert_eq!(pes_timestamps(&pes[0]), (97_200, 90_000));
    assert_eq!(&pes[0][4..6], &[0, 0], "video PES_packet_length 0");
    // Parameter sets right after the AUD, before SEI that may refer to them.
    assert_eq!(
        pes_data(&pes[0]),
        &[
            0, 0, 0, 1, 0x09, 0xF0, // AUD
            0, 0, 0, 1, 0x67, 0x64, 0x1F, // SPS
            0, 0, 0, 1, 0x68, 0xEE, // PPS
            0, 0, 0, 1, 0x06, 0xAA, // SEI
            0, 0, 0, 1, 0x65, 0x88, 0x84, // IDR
        ]
    );

    // Inter frame with pts == dts: no PSI, PTS only, no parameter sets.
    let mut out = Vec::new();
    muxer.write_unit(
        &unit(9, 1040, &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9A]),
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

    // A key frame with its own AUD and in-band SPS/PPS is left as it is.
    let mut out = Vec::new();
    let mut own = vec![0x17, 0x01, 0, 0, 0];
    own.extend(avcc(&[
        &[0x09, 0x10],
        &[0x67, 0x01],
        &[0x68, 0x02],
        &[0x65, 0x03],
    ]));
    muxer.write_unit(&unit(9, 1080, &own), &mut out);
    assert_eq!(
        pes_data(&pes_of(&out, VIDEO_PID)[0]),
        &[
            0, 0, 0, 1, 0x09, 0x10, 0, 0, 0, 1, 0x67, 0x01, 0, 0, 0, 1, 0x68, 0x02, 0, 0, 0, 1,
            0x65, 0x03
        ]
    );
}

#[test]
fn bad_frames_write_nothing() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    // Before any configuration record the PMT cannot announce video: nothing.
    muxer.write_unit(
        &unit(9, 0, &[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65]),
        &mut out,
    );
    assert!(out.is_empty());
    muxer.write_unit(&unit(9, 0, &AVC_CONFIG), &mut out);
    for body in [
        // A length that overruns the frame.
        &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 9, 0x41][..],
        // A second NAL unit whose length prefix is cut short.
        &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41, 0, 0][..],
        // The largest length a 4-byte prefix can give.
        &[0x27, 0x01, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0x41][..],
        // Only empty NAL units.
        &[0x27, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        // HEVC frames while the video stream is H.264.
        &hvc1(2, 3, 0, &avcc(&[TRAIL_TID2]))[..],
    ] {
        muxer.write_unit(&unit(9, 40, body), &mut out);
        assert!(out.is_empty(), "{body:02x?}");
    }
    // Units the muxer does not carry: script data, MP3, AV1, VP9, AAC before its config.
    for (tag_type, body) in [
        (18, &[0x02, 0x00, 0x01, b'x'][..]),
        (8, &[0x2F, 0xFF, 0xFB][..]),
        (9, &[0x91, b'a', b'v', b'0', b'1', 0x12, 0x00][..]),
        (9, &[0x90, b'v', b'p', b'0', b'9', 0x01][..]),
        (8, &[0xAF, 0x01, 0x21][..]),
    ] {
        muxer.write_unit(&unit(tag_type, 40, body), &mut out);
        assert!(out.is_empty(), "{body:02x?}");
    }
}

#[test]
fn malformed_configuration_records_leave_the_previous_one() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    muxer.write_unit(&unit(9, 0, &AVC_CONFIG), &mut out);
    muxer.write_unit(&unit(8, 0, &AAC_CONFIG), &mut out);
    let good_hvcc = hvcc(3, &[(33, &[SPS])]);
    let mut truncated_hvcc = good_hvcc.clone();
    truncated_hvcc.pop();
    for (tag_type, body) in [
        // avcC: wrong version, truncated PPS, 3-byte lengths.
        (
            9,
            [&AVC_CONFIG[..5], &[0x02, 0x64, 0, 0x1F, 0xFF, 0xE0, 0x00]].concat(),
        ),
        (9, AVC_CONFIG[..AVC_CONFIG.len() - 1].to_vec()),
        (9, [&AVC_CONFIG[..9], &[0xFE], &AVC_CONFIG[10..]].concat()),
        // hvcC: truncated NAL unit, 3-byte lengths, too short, wrong version.
        (9, hvc1(1, 0, 0, &truncated_hvcc)),
        (9, hvc1(1, 0, 0, &hvcc(2, &[(33, &[SPS])]))),
        (9, hvc1(1, 0, 0, &good_hvcc[..20])),
        (9, hvc1(1, 0, 0, &[&[0][..], &good_hvcc[1..]].concat())),
        // ASC: escape object type, explicit frequency, too short.
        (8, vec![0xAF, 0x00, 0xF8, 0x00]),
        (8, vec![0xAF, 0x00, 0x17, 0x80]),
        (8, vec![0xAF, 0x00, 0x12]),
    ] {
        muxer.write_unit(&unit(tag_type, 0, &body), &mut out);
        assert!(out.is_empty());
    }
    // Still H.264 with 4-byte lengths and the SPS/PPS of the first record; still the same AAC.
    let mut idr = vec![0x17, 0x01, 0, 0, 0];
    idr.extend(avcc(&[&[0x65, 0x88]]));
    muxer.write_unit(&unit(9, 0, &idr), &mut out);
    muxer.write_unit(&unit(8, 0, &[0xAF, 0x01, 0x21]), &mut out);
    let pkts = packets(&out);
    assert_eq!(
        pmt(&pkts[1]),
        (0, VIDEO_PID, vec![(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)])
    );
    assert_eq!(
        pes_data(&pes_of(&out, VIDEO_PID)[0]),
        &[
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0x64, 0x1F, 0, 0, 0, 1, 0x68, 0xEE, 0, 0, 0,
            1, 0x65, 0x88
        ]
    );
    assert_eq!(
        &pes_data(&pes_of(&out, AUDIO_PID)[0])[..3],
        &[0xFF, 0xF1, 0x50]
    );
}

#[test]
fn hevc_becomes_annex_b_with_aud_and_parameter_sets_before_irap() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    muxer.write_unit(&hevc_config_unit(), &mut out);
    assert!(out.is_empty());
    assert!(muxer.has_video());

    // Key frame (CodedFrames, cts 40 ms): prefix SEI + IDR_W_RADL.
    let key = hvc1(1, 1, 40, &avcc(&[PREFIX_SEI, IDR_W_RADL]));
    muxer.write_unit(&unit(9, 1000, &key), &mut out);
    let pkts = packets(&out);
    assert_eq!((pkts[0].pid, pkts[1].pid), (PAT_PID, PMT_PID));
    assert_eq!(pmt(&pkts[1]), (0, VIDEO_PID, vec![(0x24, VIDEO_PID)]));
    assert!(pkts[2].random_access() && pkts[2].pcr().is_some());
    let pes = pes_of(&out, VIDEO_PID);
    assert_eq!(pes_timestamps(&pes[0]), (93_600, 90_000));
    // AUD, then VPS, SPS, PPS (the record's SEI array is not repeated), then the frame.
    assert_eq!(
        pes_data(&pes[0]),
        &[
            0, 0, 0, 1, 0x46, 0x01, 0x50, // AUD
            0, 0, 0, 1, 0x40, 0x01, 0x0C, // VPS
            0, 0, 0, 1, 0x42, 0x01, 0x01, // SPS
            0, 0, 0, 1, 0x44, 0x01, 0xC1, // PPS
            0, 0, 0, 1, 0x4E, 0x01, 0x05, // prefix SEI
            0, 0, 0, 1, 0x26, 0x01, 0xAF, // IDR_W_RADL
        ]
    );

    // Inter frame (CodedFramesX: no cts) in temporal layer 2: the AUD says so too.
    let mut out = Vec::new();
    muxer.write_unit(
        &unit(9, 1040, &hvc1(2, 3, 0, &avcc(&[TRAIL_TID2]))),
        &mut out,
    );
    assert!(packets(&out).iter().all(|p| p.pid == VIDEO_PID));
    let pes = pes_of(&out, VIDEO_PID);
    assert_eq!(pes_timestamps(&pes[0]), (93_600, 93_600));
    assert_eq!(
        pes_data(&pes[0]),
        &[0, 0, 0, 1, 0x46, 0x03, 0x50, 0, 0, 0, 1, 0x02, 0x03, 0xD0]
    );

    // A CRA that the FLV frame type does not flag as a key frame still gets the parameter
    // sets (but no PSI: the server only starts readers at flagged key frames).
    let mut out = Vec::new();
    muxer.write_unit(&unit(9, 1080, &hvc1(2, 3, 0, &avcc(&[CRA]))), &mut out);
    assert!(packets(&out).iter().all(|p| p.pid == VIDEO_PID));
    let data = pes_data(&pes_of(&out, VIDEO_PID)[0]).to_vec();
    assert_eq!(data.len(), 4 * 7 + 7);
    assert_eq!(&data[11..14], VPS);

    // A key frame with its own AUD and parameter sets is left as it is.
    let mut out = Vec::new();
    let aud: &[u8] = &[0x46, 0x01, 0x10];
    let frame = [aud, VPS, SPS, PPS, CRA];
    muxer.write_unit(&unit(9, 1120, &hvc1(1, 3, 0, &avcc(&frame))), &mut out);
    let expected: Vec<u8> = frame
        .iter()
        .flat_map(|nal| [&[0, 0, 0, 1][..], nal].concat())
        .collect();
    assert_eq!(pes_data(&pes_of(&out, VIDEO_PID)[0]), &expected[..]);

    // The legacy FLV codec id 12 has the AVC layout; 2-byte lengths are honoured.
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    let mut legacy_config = vec![0x1C, 0x00, 0, 0, 0];
    legacy_config.extend(hvcc(1, &[(33, &[SPS]), (32, &[VPS])]));
    muxer.write_unit(&unit(9, 0, &legacy_config), &mut out);
    muxer.write_unit(
        &unit(9, 0, &[0x1C, 0x01, 0, 0, 0, 0, 3, 0x26, 0x01, 0xAF]),
        &mut out,
    );
    assert_eq!(
        pes_data(&pes_of(&out, VIDEO_PID)[0]),
        &[
            0, 0, 0, 1, 0x46, 0x01, 0x50, // AUD
            0, 0, 0, 1, 0x40, 0x01, 0x0C, // VPS first, whatever the array order
            0, 0, 0, 1, 0x42, 0x01, 0x01, // SPS
            0, 0, 0, 1, 0x26, 0x01, 0xAF,
        ]
    );
}

#[test]
fn the_latest_video_configuration_decides_the_codec() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    muxer.write_unit(&unit(9, 0, &AVC_CONFIG), &mut out);
    muxer.write_psi(&mut out);
    assert_eq!(pmt(&packets(&out)[1]).2, [(0x1B, VIDEO_PID)]);

    muxer.write_unit(&hevc_config_unit(), &mut out);
    let mut out = Vec::new();
    // H.264 frames no longer match the program: nothing.
    muxer.write_unit(
        &unit(9, 40, &[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65]),
        &mut out,
    );
    assert!(out.is_empty());
    muxer.write_unit(&unit(9, 40, &hvc1(1, 3, 0, &avcc(&[IDR_W_RADL]))), &mut out);
    let pkts = packets(&out);
    // A new PMT version announces HEVC on the same PID.
    assert_eq!(pmt(&pkts[1]), (1, VIDEO_PID, vec![(0x24, VIDEO_PID)]));

    // And back to H.264.
    muxer.write_unit(&unit(9, 80, &AVC_CONFIG), &mut out);
    let mut out = Vec::new();
    muxer.write_unit(
        &unit(9, 80, &[0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65]),
        &mut out,
    );
    assert_eq!(
        pmt(&packets(&out)[1]),
        (2, VIDEO_PID, vec![(0x1B, VIDEO_PID)])
    );
}

#[test]
fn aac_gets_adts_and_waits_for_its_config() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    muxer.write_unit(&unit(8, 0, &[0xAF, 0x01, 0x21, 0x22]), &mut out);
    assert!(out.is_empty(), "no ADTS header without AudioSpecificConfig");
    muxer.write_unit(&unit(8, 0, &AAC_CONFIG), &mut out);
    assert!(out.is_empty());
    assert!(!muxer.has_video());
    muxer.write_unit(&unit(8, 23, &[0xAF, 0x01, 0x21, 0x22]), &mut out);
    let pes = pes_of(&out, AUDIO_PID);
    assert_eq!(pes.len(), 1);
    // PES_packet_length = 3 + 5 + 7 + 2.
    assert_eq!(&pes[0][4..6], &[0, 17]);
    assert_eq!(
        pes_data(&pes[0]),
        &[0xFF, 0xF1, 0x50, 0x40, 0x01, 0x3F, 0xFC, 0x21, 0x22]
    );
    // Audio-only program: PCR on the audio PID, 0 while the PTS is below the lead.
    let pkts = packets(&out);
    assert_eq!(pmt(&pkts[1]), (0, AUDIO_PID, vec![(0x0F, AUDIO_PID)]));
    let audio = pkts.iter().find(|p| p.pid == AUDIO_PID).unwrap();
    assert_eq!(audio.pcr(), Some(0));
}

#[test]
fn write_unit_at_takes_the_callers_timeline_modulo_2_pow_33() {
    let config = unit(9, 0, &AVC_CONFIG);
    // cts +80 ms, and -40 ms.
    let later = unit(9, 7, &[0x17, 0x01, 0, 0, 0x50, 0, 0, 0, 1, 0x65]);
    let earlier = unit(9, 7, &[0x27, 0x01, 0xFF, 0xFF, 0xD8, 0, 0, 0, 1, 0x41]);
    let timestamps = |dts_ms: u64, frame: &MediaUnit| {
        let mut muxer = TsMuxer::new();
        let mut out = Vec::new();
        muxer.write_unit_at(&config, dts_ms, &mut out);
        muxer.write_unit_at(frame, dts_ms, &mut out);
        let pcr = packets(&out)
            .iter()
            .find(|p| p.pid == VIDEO_PID)
            .and_then(|p| p.pcr());
        (pes_timestamps(&pes_of(&out, VIDEO_PID)[0]), pcr)
    };
    const WRAP: u64 = 1 << 33;
    // The unit's own 7 ms is ignored.
    assert_eq!(timestamps(1_000, &later), ((97_200, 90_000), Some(81_000)));
    // 95443717 ms × 90 = 2^33 - 62: the PTS (+80 ms) wraps, the DTS does not yet.
    let near = WRAP / 90;
    assert_eq!(
        timestamps(near, &later),
        ((7_200 - 62, WRAP - 62), Some(WRAP - 62 - PCR_LEAD_90KHZ))
    );
    // Past the wrap, and far beyond (the timeline is 64-bit).
    assert_eq!(timestamps(near + 1, &later).0, (7_200 + 28, 28));
    let far = 1_000 * near + 12_345;
    assert_eq!(
        timestamps(far, &later).0,
        ((far + 80) * 90 % WRAP, far * 90 % WRAP)
    );
    // A negative composition time at the very start wraps the PTS backwards; the PCR is 0.
    assert_eq!(timestamps(0, &earlier), ((WRAP - 3_600, 0), Some(0)));

    // write_unit is write_unit_at on the unit's own dts_ms.
    let units = flv_units();
    let (mut a, mut b) = (TsMuxer::new(), TsMuxer::new());
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    for unit in &units {
        a.write_unit(unit, &mut out_a);
        b.write_unit_at(unit, u64::from(unit.dts_ms), &mut out_b);
    }
    assert!(!out_a.is_empty());
    assert_eq!(out_a, out_b);
}

#[test]
fn psi_snapshot_is_the_next_psi_and_changes_nothing() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    muxer.psi_snapshot(&mut out);
    assert!(out.is_empty(), "no stream configuration yet");

    // Audio only: the snapshot is what the first audio frame is preceded by.
    muxer.write_unit(&unit(8, 0, &AAC_CONFIG), &mut out);
    let mut snapshot = Vec::new();
    muxer.psi_snapshot(&mut snapshot);
    muxer.psi_snapshot(&mut snapshot);
    assert_eq!(snapshot.len(), 4 * TS_PACKET_LEN);
    assert_eq!(snapshot[..376], snapshot[376..], "no state advanced");
    muxer.write_unit(&unit(8, 0, &[0xAF, 0x01, 0x21]), &mut out);
    assert_eq!(out[..376], snapshot[..376]);

    // Later snapshots carry the advanced counters, and a new version once video is added,
    // exactly as the next write_psi.
    let mut next = Vec::new();
    for step in 0..20 {
        muxer.write_unit(&unit(8, 23 * step, &[0xAF, 0x01, 0x21]), &mut out);
        if step == 10 {
            muxer.write_unit(&unit(9, 0, &AVC_CONFIG), &mut out);
        }
        let mut snapshot = Vec::new();
        muxer.psi_snapshot(&mut snapshot);
        next.clear();
        muxer.write_psi(&mut next);
        assert_eq!(snapshot, next, "step {step}");
    }
    let pkts = packets(&next);
    assert_eq!(
        pmt(&pkts[1]),
        (1, VIDEO_PID, vec![(0x1B, VIDEO_PID), (0x0F, AUDIO_PID)])
    );
    // The 21st PAT/PMT (one before the first audio frame, then 20 explicit ones).
    assert_eq!((pkts[0].cc, pkts[1].cc), (20 % 16, 20 % 16));
}

#[test]
fn large_video_frames_have_pes_packet_length_0() {
    let mut muxer = TsMuxer::new();
    let mut out = Vec::new();
    muxer.write_unit(&unit(9, 0, &AVC_CONFIG), &mut out);
    let slice: Vec<u8> = std::iter::once(0x41)
        .chain((0..70_000u32).map(|i| (i % 253) as u8 | 1))
        .collect();
    let mut body = vec![0x27, 0x01, 0, 0, 0];
    body.extend(avcc(&[&slice]));
    let mut out = Vec::new();
    muxer.write_unit(&unit(9, 0, &body), &mut out);
    let pes = pes_of(&out, VIDEO_PID);
    assert_eq!(&pes[0][4..6], &[0, 0]);
    assert_eq!(&pes_data(&pes[0])[10..], &slice[..]);
}

#[test]
fn packets_are_well_formed_for_every_payload_size() {
    // Sizes around the 184-byte boundaries exercise 0, 1 and many bytes of stuffing, with
    // and without PCR.
    for keyframe in [false, true] {
        for len in [
            1usize, 150, 160, 161, 162, 163, 170, 175, 176, 177, 178, 183, 184, 185, 400,
        ] {
            let mut muxer = TsMuxer::new();
            let mut out = Vec::new();
            muxer.write_unit(&unit(9, 0, &AVC_CONFIG), &mut out);
            let mut body = vec![if keyframe { 0x17 } else { 0x27 }, 0x01, 0, 0, 0];
            body.extend_from_slice(&(len as u32).to_be_bytes());
            body.extend((0..len).map(|i| (i % 251) as u8 | 1));
            muxer.write_unit(&unit(9, 0, &body), &mut out);
            let pes = pes_of(&out, VIDEO_PID);
            let data = pes_data(&pes[0]);
            assert_eq!(data[data.len() - len..], body[9..], "len {len}");
        }
    }
}

proptest! {
    /// Arbitrary bodies behind real tag headers: no panic, whole packets, configs and
    /// skipped units write nothing, key frames start with PAT/PMT.
    #[test]
    fn arbitrary_units_mux_to_whole_packets(
        tags in prop::collection::vec(
            (0usize..8, any::<bool>(), prop::collection::vec(any::<u8>(), 0..300), any::<u64>()),
            0..30,
        )
    ) {
        const HEADERS: [&[u8]; 8] = [
            &[0x17, 0x00, 0, 0, 0],
            &[0x17, 0x01, 0, 0, 0x28],
            &[0x27, 0x01, 0xFF, 0xFF, 0xF0],
            &[0x1C, 0x00, 0, 0, 0],
            &[0x90, b'h', b'v', b'c', b'1'],
            &[0x91, b'h', b'v', b'c', b'1', 0, 0, 0x28],
            &[0xAF, 0x00],
            &[0xAF, 0x01],
        ];
        let mut muxer = TsMuxer::new();
        for (header, version_1, rest, dts_ms) in tags {
            let mut body = HEADERS[header].to_vec();
            if version_1 {
                body.push(1);
            }
            body.extend_from_slice(&rest);
            let tag_type = if header >= 6 { 8 } else { 9 };
            let unit = unit(tag_type, 0, &body);
            let mut out = Vec::new();
            muxer.write_unit_at(&unit, dts_ms, &mut out);
            prop_assert_eq!(out.len() % TS_PACKET_LEN, 0);
            let pkts = packets(&out);
            if unit.config {
                prop_assert!(out.is_empty());
            }
            if unit.keyframe && !out.is_empty() {
                prop_assert_eq!((pkts[0].pid, pkts[1].pid), (PAT_PID, PMT_PID));
            }
            let mut snapshot = Vec::new();
            muxer.psi_snapshot(&mut snapshot);
            prop_assert_eq!(snapshot.len() % TS_PACKET_LEN, 0);
        }
    }
}

// ---- captures, checked by ffprobe/ffmpeg ----

#[test]
fn ffmpeg_capture_remuxes_with_continuous_counters() {
    let (ts, keyframes) = mux_checked(&flv_units());
    let mut last_cc: HashMap<u16, u8> = HashMap::new();
    for p in packets(&ts) {
        if let Some(prev) = last_cc.insert(p.pid, p.cc) {
            assert_eq!(p.cc, (prev + 1) & 0x0F, "pid {:#x}", p.pid);
        }
    }
    assert_eq!(pes_of(&ts, VIDEO_PID).len(), 50);
    assert_eq!(pes_of(&ts, AUDIO_PID).len(), 88);
    // PAT at start and before each of the 2 key frames (the first key frame is the start).
    assert_eq!(keyframes, [0, keyframes[1]]);
    assert_eq!(packets(&ts).iter().filter(|p| p.pid == 0).count(), 2);
}

/// What ffprobe (streams and packets) and an ffmpeg decode to null say about `ts`. `None`
/// (with a message) only when the tools are not installed.
struct Probe {
    streams: Vec<String>,
    packets: Vec<String>,
}

fn ffprobe(ts: &[u8], name: &str) -> Option<Probe> {
    let path = std::env::temp_dir().join(format!(
        "uringcast-ts-test-{}-{name}.ts",
        std::process::id()
    ));
    std::fs::write(&path, ts).unwrap();
    let run = |program: &str, args: &[&str], after: &[&str]| {
        Command::new(program)
            .args(args)
            .arg(&path)
            .args(after)
            .output()
    };
    let probe = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_streams",
            "-show_packets",
            "-of",
            "compact",
        ],
        &[],
    );
    let decode = run("ffmpeg", &["-v", "error", "-i"], &["-f", "null", "-"]);
    let _ = std::fs::remove_file(&path);
    let (probe, decode) = match (probe, decode) {
        (Ok(probe), Ok(decode)) => (probe, decode),
        (Err(e), _) | (_, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("ffprobe/ffmpeg not installed; skipping");
            return None;
        }
        (Err(e), _) | (_, Err(e)) => panic!("ffprobe/ffmpeg: {e}"),
    };
    assert!(probe.status.success(), "{name}: ffprobe failed");
    // The first lines say what is wrong; a broken stream repeats them per frame.
    let errors = |stderr: &[u8]| {
        let text = String::from_utf8_lossy(stderr);
        text.lines().take(10).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(errors(&probe.stderr), "", "{name}: ffprobe errors");
    assert!(decode.status.success(), "{name}: ffmpeg failed");
    assert_eq!(errors(&decode.stderr), "", "{name}: ffmpeg decode errors");
    let text = String::from_utf8(probe.stdout).unwrap();
    let lines = |prefix: &str| {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    };
    Some(Probe {
        streams: lines("stream|"),
        packets: lines("packet|"),
    })
}

fn field(line: &str, name: &str) -> Option<i64> {
    line.split('|')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

fn packets_of<'a>(probe: &'a Probe, codec_type: &str) -> Vec<&'a str> {
    let needle = format!("codec_type={codec_type}");
    probe
        .packets
        .iter()
        .filter(|l| l.contains(&needle))
        .map(String::as_str)
        .collect()
}

/// Checks the muxed capture with ffprobe/ffmpeg, the reference demuxer and decoders, from the
/// start and from the second key frame (a viewer that joins there).
#[test]
fn ffprobe_accepts_remuxed_capture() {
    let (ts, keyframes) = mux_checked(&flv_units());
    let Some(probe) = ffprobe(&ts, "h264") else {
        return;
    };
    assert_eq!(probe.streams.len(), 2);
    let streams = &probe.streams;
    assert!(streams[0].contains("codec_name=h264") && streams[0].contains("|width=320|"));
    assert!(streams[0].contains("|height=240|"));
    assert!(streams[1].contains("codec_name=aac") && streams[1].contains("|sample_rate=44100|"));

    for (codec, count) in [("video", 50), ("audio", 88)] {
        let packets = packets_of(&probe, codec);
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

    let joined = ffprobe(&ts[keyframes[1]..], "h264-joined").unwrap();
    assert!(joined.streams[0].contains("codec_name=h264"));
    assert!(packets_of(&joined, "video")[0].contains("flags=K"));
}

/// The captured FFmpeg 9 HEVC publish, replayed through the RTMP session, muxed and checked
/// by ffprobe and decoded by ffmpeg without a single error line; again from a later key
/// frame, which only decodes if the parameter sets were inserted there.
#[test]
fn ffprobe_accepts_remuxed_hevc_capture() {
    let units = rtmp_units(FFMPEG_HEVC_PUBLISH);
    let video = units.iter().filter(|u| u.kind == UnitKind::Video);
    assert!(video.clone().all(|u| u.codec == Codec::Hevc));
    let frames = video
        .filter(|u| !u.config && !u.payload().is_empty())
        .count();
    let (ts, keyframes) = mux_checked(&units);
    assert!(keyframes.len() >= 3, "{} key frames", keyframes.len());
    let Some(probe) = ffprobe(&ts, "hevc") else {
        return;
    };
    assert_eq!(probe.streams.len(), 2);
    let streams = &probe.streams;
    assert!(streams[0].contains("codec_name=hevc"), "{}", streams[0]);
    assert!(streams[0].contains("|width=160|") && streams[0].contains("|height=120|"));
    assert!(streams[1].contains("codec_name=aac"));
    let packets = packets_of(&probe, "video");
    assert_eq!(packets.len(), frames);
    assert_eq!(
        packets.iter().filter(|l| l.contains("flags=K")).count(),
        keyframes.len()
    );

    for (i, start) in keyframes.iter().enumerate().skip(1) {
        let joined = ffprobe(&ts[*start..], &format!("hevc-joined-{i}")).unwrap();
        assert!(joined.streams[0].contains("codec_name=hevc"));
    }
}
