//! Demuxer and muxer tests against real ffmpeg output and crafted bytes.
//!
//! `tests/data/h264_aac_2s.flv` was made with ffmpeg 5.1:
//! `ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=44100
//!  -t 2 -c:v libx264 -preset ultrafast -bf 2 -crf 35 -g 25 -pix_fmt yuv420p -c:a aac -b:a 64k
//!  -f flv tests/data/h264_aac_2s.flv`
//! (B-frames on, so composition times are non-zero). ffprobe reports 50 video packets (2 key
//! frames, the first with dts 0 / pts 80) and 88 audio packets.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::media::unit::{Codec, MediaUnit, UnitKind};

const FFMPEG_FLV: &[u8] = include_bytes!("../../../tests/data/h264_aac_2s.flv");

/// Feeds `chunks` in order, polling to exhaustion after each, then calls `finish`.
fn demux_chunks<'a>(
    limits: FlvLimits,
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<FlvEvent>, FlvError> {
    let mut demuxer = FlvDemuxer::new(limits);
    let mut events = Vec::new();
    for chunk in chunks {
        demuxer.push(chunk);
        while let Some(event) = demuxer.poll()? {
            events.push(event);
        }
    }
    demuxer.finish()?;
    Ok(events)
}

fn demux(bytes: &[u8]) -> Result<Vec<FlvEvent>, FlvError> {
    demux_chunks(FlvLimits::default(), [bytes])
}

fn units(events: &[FlvEvent]) -> Vec<&MediaUnit> {
    events
        .iter()
        .filter_map(|e| match e {
            FlvEvent::Unit(u) => Some(u),
            FlvEvent::Header { .. } => None,
        })
        .collect()
}

#[test]
fn ffmpeg_file_demuxes_to_expected_units() {
    let events = demux(FFMPEG_FLV).unwrap();
    assert_eq!(
        events[0],
        FlvEvent::Header {
            has_audio: true,
            has_video: true
        }
    );
    let units = units(&events);
    assert_eq!(events.len(), units.len() + 1, "exactly one header event");

    // ffmpeg writes onMetaData first.
    assert_eq!(units[0].kind, UnitKind::Script);
    assert_eq!(units[0].codec, Codec::None);
    let meta = parse_on_metadata(&units[0].body).unwrap();
    assert_eq!((meta.width, meta.height), (Some(320), Some(240)));
    assert_eq!(meta.framerate, Some(25.0));
    assert_eq!(meta.video_codec_id, Some(7.0));
    assert_eq!(meta.audio_codec_id, Some(10.0));
    assert_eq!(meta.audio_sample_rate, Some(44100));
    assert_eq!(
        meta.audio_channels,
        Some(1),
        "sine source is mono (stereo=false)"
    );
    assert!(meta.encoder.unwrap().starts_with("Lavf"));

    let video: Vec<_> = units.iter().filter(|u| u.kind == UnitKind::Video).collect();
    let audio: Vec<_> = units.iter().filter(|u| u.kind == UnitKind::Audio).collect();
    assert!(video.iter().all(|u| u.codec == Codec::H264));
    assert!(audio.iter().all(|u| u.codec == Codec::Aac));

    // First video unit is the AVCDecoderConfigurationRecord (configurationVersion 1).
    assert!(video[0].config && !video[0].keyframe);
    assert_eq!(video[0].payload()[0], 1);
    // First audio unit is the AudioSpecificConfig: AAC-LC (2), 44.1 kHz (index 4), mono, then
    // ffmpeg's explicit "no SBR" sync extension (0x2b7).
    assert!(audio[0].config);
    assert_eq!(audio[0].payload(), &[0x12, 0x08, 0x56, 0xE5, 0x00]);
    assert_eq!(video.iter().filter(|u| u.config).count(), 1);
    assert_eq!(audio.iter().filter(|u| u.config).count(), 1);

    // Frames as ffprobe counts them; ffmpeg also ends the stream with an AVC end-of-sequence.
    let frames: Vec<_> = video
        .iter()
        .filter(|u| !u.config && !u.payload().is_empty())
        .collect();
    assert_eq!(frames.len(), 50);
    let end_of_sequence = video.last().unwrap();
    assert_eq!(&end_of_sequence.body[..2], &[0x17, 0x02]);
    assert_eq!(video.len(), 1 + 50 + 1);
    assert_eq!(audio.len(), 1 + 88);

    // One key frame per 25 frames (-g 25), at frames 0 and 25.
    let keyframe_positions: Vec<_> = frames
        .iter()
        .enumerate()
        .filter(|(_, u)| u.keyframe)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(keyframe_positions, [0, 25]);
    // B-frames: the first frame is dts 0 / pts 80 (as ffprobe shows), second dts 40 / pts 200.
    assert_eq!((frames[0].dts_ms, frames[0].cts_ms), (0, 80));
    assert_eq!((frames[1].dts_ms, frames[1].pts_ms()), (40, 200));
    assert!(frames.iter().any(|u| u.cts_ms != 0));

    for track in [&video, &audio] {
        assert!(
            track.windows(2).all(|w| w[0].dts_ms <= w[1].dts_ms),
            "dts must not decrease within a track"
        );
    }
    assert_eq!(frames.last().unwrap().dts_ms, 49 * 40);
    assert!(audio.iter().all(|u| u.cts_ms == 0 && !u.keyframe));
}

#[test]
fn every_chunk_size_gives_the_same_events() {
    let whole = demux(FFMPEG_FLV).unwrap();
    for chunk_size in 1..=64 {
        let chunked = demux_chunks(FlvLimits::default(), FFMPEG_FLV.chunks(chunk_size)).unwrap();
        assert_eq!(chunked, whole, "chunk size {chunk_size}");
    }
}

#[test]
fn bodies_are_slices_of_their_tag_buffer_which_holds_the_received_tag() {
    // Each unit's body lies inside its tag buffer (header, body, PreviousTagSize), the only
    // place the demuxer copied it to; the buffers, one after the other, are the file again.
    for chunk_size in [1, 7, 4096, FFMPEG_FLV.len()] {
        let events = demux_chunks(FlvLimits::default(), FFMPEG_FLV.chunks(chunk_size)).unwrap();
        let mut tags = FFMPEG_FLV[..FLV_HEADER_LEN].to_vec();
        for unit in units(&events) {
            let tag = unit
                .flv_tag
                .as_ref()
                .expect("a demuxed unit carries its tag");
            assert_eq!(tag.len(), tag_len(unit.body.len()));
            assert_eq!(
                tag.as_ptr() as usize + TAG_HEADER_LEN,
                unit.body.as_ptr() as usize,
                "the body is a slice of the tag buffer, not a copy"
            );
            tags.extend_from_slice(tag);
        }
        assert!(tags == FFMPEG_FLV, "chunk size {chunk_size}");
    }
}

#[test]
fn remux_is_byte_identical_to_ffmpeg_output() {
    let events = demux(FFMPEG_FLV).unwrap();
    let mut out = Vec::new();
    for event in &events {
        match event {
            FlvEvent::Header {
                has_audio,
                has_video,
            } => write_file_header(*has_audio, *has_video, &mut out),
            FlvEvent::Unit(unit) => write_unit(unit, &mut out),
        }
    }
    // ffmpeg writes the same header (flags 5, offset 9, PreviousTagSize0 0), stream id 0 and
    // correct PreviousTagSizes, so the whole file comes back unchanged.
    assert_eq!(out.len(), FFMPEG_FLV.len());
    assert!(out == FFMPEG_FLV, "remuxed bytes differ from ffmpeg's file");
    assert_eq!(demux(&out).unwrap(), events);
}

// ---- crafted inputs: one test per error variant ----

/// A tag with the given raw first byte, size field and body, plus its PreviousTagSize.
fn raw_tag(first_byte: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_tag(first_byte, 0, body, &mut out);
    out
}

fn file_with(tags: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    write_file_header(true, true, &mut out);
    for tag in tags {
        out.extend_from_slice(tag);
    }
    out
}

#[test]
fn bad_signature_is_reported_from_the_first_byte() {
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    demuxer.push(b"G");
    assert_eq!(demuxer.poll(), Err(FlvError::BadSignature));
    assert_eq!(
        demux(b"FLX\x01\x05\0\0\0\x09\0\0\0\0"),
        Err(FlvError::BadSignature)
    );
    // An HTTP request by mistake.
    assert_eq!(demux(b"GET / HTTP/1.1\r\n"), Err(FlvError::BadSignature));
}

#[test]
fn bad_version() {
    assert_eq!(
        demux(b"FLV\x02\x05\0\0\0\x09\0\0\0\0"),
        Err(FlvError::BadVersion)
    );
}

#[test]
fn bad_header_size() {
    assert_eq!(
        demux(b"FLV\x01\x05\0\0\0\x08\0\0\0\0"),
        Err(FlvError::BadHeaderSize)
    );
}

#[test]
fn larger_header_is_skipped_and_prev_tag_size_0_is_not_checked() {
    // Data offset 12: three extra header bytes; PreviousTagSize0 = 7 (junk) is tolerated.
    let mut bytes = b"FLV\x01\x04\0\0\0\x0cXYZ\0\0\0\x07".to_vec();
    bytes.extend_from_slice(&raw_tag(8, &[0xAF, 0x01, 0x55]));
    for chunk in [1, 2, 5, bytes.len()] {
        let events = demux_chunks(FlvLimits::default(), bytes.chunks(chunk)).unwrap();
        assert_eq!(
            events[0],
            FlvEvent::Header {
                has_audio: true,
                has_video: false
            }
        );
        assert_eq!(units(&events).len(), 1);
        assert_eq!(units(&events)[0].payload(), &[0x55]);
    }
}

#[test]
fn tag_too_large_is_reported_before_the_body_arrives() {
    let limits = FlvLimits { tag_bytes_max: 100 };
    let ok = file_with(&[&raw_tag(8, &[0xAF; 100])]);
    assert!(demux_chunks(limits, [&ok[..]]).is_ok());

    let mut demuxer = FlvDemuxer::new(limits);
    let big = file_with(&[&raw_tag(8, &[0xAF; 101])]);
    // Only the file header and tag header: the error comes before any body byte.
    demuxer.push(&big[..FLV_HEADER_LEN + TAG_HEADER_LEN]);
    assert!(matches!(demuxer.poll(), Ok(Some(FlvEvent::Header { .. }))));
    assert_eq!(demuxer.poll(), Err(FlvError::TagTooLarge { size: 101 }));
    assert_eq!(demuxer.buffered_len(), 0, "buffer released on failure");
}

#[test]
fn bad_tag_types() {
    assert_eq!(
        demux(&file_with(&[&raw_tag(7, &[0])])),
        Err(FlvError::BadTagType(7))
    );
    // Reserved bits set.
    assert_eq!(
        demux(&file_with(&[&raw_tag(0x48, &[0xAF, 1])])),
        Err(FlvError::BadTagType(0x48))
    );
}

#[test]
fn encrypted_tags_are_rejected() {
    // Filter bit (0x20) on an audio tag.
    assert_eq!(
        demux(&file_with(&[&raw_tag(0x28, &[0xAF, 1, 2])])),
        Err(FlvError::Encrypted)
    );
}

#[test]
fn prev_tag_size_mismatch() {
    let mut bytes = file_with(&[&raw_tag(8, &[0xAF, 0x01, 0x55])]);
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&99u32.to_be_bytes());
    // The tag is delivered; the lie is detected when its PreviousTagSize arrives.
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    demuxer.push(&bytes);
    assert!(matches!(demuxer.poll(), Ok(Some(FlvEvent::Header { .. }))));
    assert!(matches!(demuxer.poll(), Ok(Some(FlvEvent::Unit(_)))));
    assert_eq!(
        demuxer.poll(),
        Err(FlvError::PrevTagSizeMismatch {
            expected: 14,
            got: 99
        })
    );
    // Failure is sticky.
    demuxer.push(&raw_tag(8, &[0xAF, 0x01]));
    assert_eq!(
        demuxer.poll(),
        Err(FlvError::PrevTagSizeMismatch {
            expected: 14,
            got: 99
        })
    );
    assert_eq!(demuxer.buffered_len(), 0);
    assert!(demuxer.finish().is_err());
}

#[test]
fn empty_video_and_audio_tags() {
    assert_eq!(
        demux(&file_with(&[&raw_tag(9, &[])])),
        Err(FlvError::EmptyVideoTag)
    );
    assert_eq!(
        demux(&file_with(&[&raw_tag(8, &[])])),
        Err(FlvError::EmptyAudioTag)
    );
    // Empty script data is fine.
    let events = demux(&file_with(&[&raw_tag(18, &[])])).unwrap();
    assert_eq!(units(&events)[0].body.len(), 0);
}

#[test]
fn truncated_inputs() {
    let full = file_with(&[&raw_tag(8, &[0xAF, 0x01, 0x55, 0x66])]);
    // Cut inside the header, PreviousTagSize0, tag header or body: truncated.
    for cut in [3, 8, 12, 20, full.len() - 5, full.len() - 2] {
        assert_eq!(
            demux(&full[..cut]),
            Err(FlvError::Truncated),
            "cut at {cut}"
        );
    }
    // Clean ends: nothing, after the header (a missing PreviousTagSize is tolerated),
    // after PreviousTagSize0, after a body, after its PreviousTagSize.
    for cut in [0, 9, FLV_HEADER_LEN, full.len() - 4, full.len()] {
        assert!(demux(&full[..cut]).is_ok(), "cut at {cut}");
    }
    // A video tag too short for its AVC header.
    assert_eq!(
        demux(&file_with(&[&raw_tag(9, &[0x17, 0x01])])),
        Err(FlvError::Truncated)
    );
}

#[test]
fn not_media_tags_are_skipped() {
    let bytes = file_with(&[
        &raw_tag(9, &[0x57, 0x00]),
        &raw_tag(9, &[0x94, b'h', b'v', b'c', b'1', 0x02]),
        &raw_tag(8, &[0xAF, 0x01, 0x55]),
    ]);
    let events = demux(&bytes).unwrap();
    let units = units(&events);
    assert_eq!(units.len(), 1);
    assert_eq!(units[0].kind, UnitKind::Audio);
}

#[test]
fn enhanced_hevc_tags_demux() {
    // Hand-built Enhanced FLV (ffmpeg 5.1 cannot write it): hvcC sequence start, then a
    // CodedFrames key frame with cts 40.
    let mut hvcc = vec![0x90];
    hvcc.extend_from_slice(b"hvc1");
    hvcc.extend_from_slice(&[0x01, 0x01, 0x60, 0x00]);
    let mut frame = vec![0x91];
    frame.extend_from_slice(b"hvc1");
    frame.extend_from_slice(&[0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x02, 0x26, 0x01]);
    let mut bytes = Vec::new();
    write_file_header(false, true, &mut bytes);
    write_tag(9, 0, &hvcc, &mut bytes);
    write_tag(9, 0x0100_0000, &frame, &mut bytes);
    let events = demux(&bytes).unwrap();
    let units = units(&events);
    assert_eq!(units.len(), 2);
    assert_eq!((units[0].codec, units[0].config), (Codec::Hevc, true));
    assert_eq!(units[0].payload(), &[0x01, 0x01, 0x60, 0x00]);
    assert_eq!(
        (units[1].codec, units[1].keyframe, units[1].cts_ms),
        (Codec::Hevc, true, 40)
    );
    assert_eq!(units[1].dts_ms, 0x0100_0000, "extended timestamp byte");
    assert_eq!(units[1].payload(), &[0x00, 0x00, 0x00, 0x02, 0x26, 0x01]);
}

#[test]
fn error_reasons_are_distinct() {
    let all = [
        FlvError::BadSignature,
        FlvError::BadVersion,
        FlvError::BadHeaderSize,
        FlvError::TagTooLarge { size: 1 },
        FlvError::BadTagType(1),
        FlvError::PrevTagSizeMismatch {
            expected: 1,
            got: 2,
        },
        FlvError::EmptyVideoTag,
        FlvError::EmptyAudioTag,
        FlvError::Truncated,
        FlvError::Encrypted,
        FlvError::NotMedia,
    ];
    let reasons: std::collections::HashSet<_> = all.iter().map(|e| e.reason()).collect();
    assert_eq!(reasons.len(), all.len());
    assert_eq!(
        FlvError::PrevTagSizeMismatch {
            expected: 14,
            got: 99
        }
        .to_string(),
        "FLV PreviousTagSize is 99, expected 14"
    );
}

// ---- properties ----

/// Splits `bytes` at the given points (taken modulo the length, sorted).
fn split_at_points(bytes: &[u8], points: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = points
        .iter()
        .map(|p| p % (bytes.len() + 1))
        .chain([0, bytes.len()])
        .collect();
    cuts.sort_unstable();
    cuts.windows(2)
        .map(|w| bytes[w[0]..w[1]].to_vec())
        .collect()
}

/// Runs the demuxer over `chunks`, asserting the buffer bound after every drain.
fn drive_checking_bound(limits: FlvLimits, chunks: &[Vec<u8>]) -> Result<(), TestCaseError> {
    let bound = (limits.tag_bytes_max as usize).max(TAG_HEADER_LEN);
    let mut demuxer = FlvDemuxer::new(limits);
    for chunk in chunks {
        demuxer.push(chunk);
        loop {
            match demuxer.poll() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    prop_assert_eq!(demuxer.buffered_len(), 0);
                    return Ok(());
                }
            }
        }
        prop_assert!(
            demuxer.buffered_len() < bound,
            "buffered {} with bound {}",
            demuxer.buffered_len(),
            bound
        );
    }
    let _ = demuxer.finish();
    Ok(())
}

fn unit_strategy() -> impl Strategy<Value = (u8, u32, Vec<u8>)> {
    (
        prop_oneof![Just(8u8), Just(9u8), Just(18u8)],
        any::<u32>(),
        prop::collection::vec(any::<u8>(), 0..40),
    )
}

proptest! {
    #[test]
    fn arbitrary_bytes_at_arbitrary_splits_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        points in prop::collection::vec(any::<usize>(), 0..8),
        tag_bytes_max in 0u32..64,
    ) {
        let limits = FlvLimits { tag_bytes_max };
        drive_checking_bound(limits, &split_at_points(&bytes, &points))?;
        // The same bytes behind a valid header, so tag parsing is reached.
        let mut with_header = Vec::new();
        write_file_header(true, true, &mut with_header);
        with_header.extend_from_slice(&bytes);
        drive_checking_bound(limits, &split_at_points(&with_header, &points))?;
    }

    #[test]
    fn corrupted_ffmpeg_file_never_panics(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        points in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut bytes = FFMPEG_FLV[..4096].to_vec();
        for (index, value) in &flips {
            let i = index.index(bytes.len());
            bytes[i] = *value;
        }
        drive_checking_bound(FlvLimits { tag_bytes_max: 2048 }, &split_at_points(&bytes, &points))?;
    }

    #[test]
    fn ffmpeg_file_at_random_splits_matches_one_shot(
        points in prop::collection::vec(any::<usize>(), 0..64),
    ) {
        let whole = demux(FFMPEG_FLV).unwrap();
        let chunks = split_at_points(FFMPEG_FLV, &points);
        let split = demux_chunks(FlvLimits::default(), chunks.iter().map(Vec::as_slice)).unwrap();
        prop_assert_eq!(split, whole);
    }

    #[test]
    fn mux_then_demux_round_trips_units(
        tags in prop::collection::vec(unit_strategy(), 0..20),
        has_audio in any::<bool>(),
        has_video in any::<bool>(),
        points in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        // Units as RTMP ingest would produce them: whatever classify_tag accepts.
        let expected: Vec<MediaUnit> = tags
            .into_iter()
            .filter_map(|(tag_type, ts, body)| classify_tag(tag_type, ts, Bytes::from(body)).ok())
            .collect();
        let mut bytes = Vec::new();
        write_file_header(has_audio, has_video, &mut bytes);
        for unit in &expected {
            write_unit(unit, &mut bytes);
        }
        prop_assert_eq!(
            bytes.len(),
            FLV_HEADER_LEN + expected.iter().map(|u| tag_len(u.body.len())).sum::<usize>()
        );
        let chunks = split_at_points(&bytes, &points);
        let events = demux_chunks(FlvLimits::default(), chunks.iter().map(Vec::as_slice)).unwrap();
        prop_assert_eq!(&events[0], &FlvEvent::Header { has_audio, has_video });
        let got: Vec<MediaUnit> = units(&events).into_iter().cloned().collect();
        prop_assert_eq!(got, expected);
    }
}
