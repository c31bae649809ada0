//! Segmenter tests on synthetic TS entries: 188-byte packets whose PID is 0 for the PAT,
//! 0x1000 for the PMT, 0x100 for video and 0x101 for audio (the segmenter reads nothing
//! else). Every snapshot a test sees is checked by `Harness::check`: it parses as a media
//! playlist with m3u8-rs and says what the snapshot's segments say, the target duration
//! never changes, names never repeat, and segments are within their byte cap.

use std::collections::HashMap;

use m3u8_rs::MediaPlaylist;
use proptest::prelude::*;

use super::*;

const VIDEO: u16 = 0x100;
const AUDIO: u16 = 0x101;
const PMT: u16 = 0x1000;
/// 2026-11-26T10:00:00.000Z
const WALL0_MS: u64 = 1_795_687_200_000;

fn packet(pid: u16) -> [u8; TS_PACKET_LEN] {
    let mut p = [0xFF; TS_PACKET_LEN];
    p[0] = 0x47;
    p[1] = (pid >> 8) as u8 & 0x1F;
    p[2] = pid as u8;
    p[3] = 0x10;
    p
}

fn psi() -> Vec<u8> {
    [packet(PAT_PID), packet(PMT)].concat()
}

/// One entry: PAT+PMT first for a video keyframe, then `packets` packets of `pid`.
fn entry(pid: u16, keyframe: bool, packets: usize) -> Vec<u8> {
    let mut ts = if keyframe && pid == VIDEO {
        psi()
    } else {
        Vec::new()
    };
    for _ in 0..packets {
        ts.extend_from_slice(&packet(pid));
    }
    ts
}

/// The wall clock when the entry of `dts_ms` arrives: dts follow the wall clock from WALL0
/// (modulo a year, for tests that push extreme dts).
fn wall_ms(dts_ms: u64) -> u64 {
    WALL0_MS + dts_ms % (365 * 86_400_000)
}

fn params(segment_target_ms: u64, window_segments: usize, retain_segments: usize) -> HlsParams {
    HlsParams {
        segment_target_ms,
        window_segments,
        retain_segments,
        segment_bytes_max: 1 << 20,
        name_prefix: "lz3k".to_owned(),
    }
}

fn pid_at(bytes: &[u8], packet_index: usize) -> Option<u16> {
    packet_pid(bytes.get(packet_index * TS_PACKET_LEN..)?)
}

fn parse(playlist: &[u8]) -> MediaPlaylist {
    match m3u8_rs::parse_media_playlist_res(playlist) {
        Ok(parsed) => parsed,
        Err(e) => panic!("{e:?}\n{}", String::from_utf8_lossy(playlist)),
    }
}

struct Harness {
    segmenter: Segmenter,
    params: HlsParams,
    target_s: Option<u64>,
    version: u64,
    /// seq → (name, discontinuity, duration) of every segment seen.
    seen: HashMap<u64, (String, bool, u64)>,
    last: Arc<HlsSnapshot>,
    /// `discontinuity` made a snapshot that the next push or end reports.
    unreported: bool,
}

impl Harness {
    fn new(params: HlsParams) -> Harness {
        let segmenter = Segmenter::new(params.clone());
        let last = segmenter.snapshot();
        let mut harness = Harness {
            segmenter,
            params,
            target_s: None,
            version: 0,
            seen: HashMap::new(),
            last,
            unreported: false,
        };
        harness.check(false);
        harness
    }

    fn push_entry(&mut self, pid: u16, dts_ms: u64, keyframe: bool, packets: usize) -> bool {
        let ts = entry(pid, keyframe, packets);
        let changed = self
            .segmenter
            .push(&ts, dts_ms, keyframe, &psi(), wall_ms(dts_ms));
        self.check(changed);
        changed
    }

    fn video(&mut self, dts_ms: u64, keyframe: bool) -> bool {
        self.push_entry(VIDEO, dts_ms, keyframe, 3)
    }

    fn audio(&mut self, dts_ms: u64) -> bool {
        self.push_entry(AUDIO, dts_ms, false, 1)
    }

    /// Video at 25 fps (40 ms) from `from_ms` to before `to_ms`, a keyframe every `gop_ms`
    /// counted from `from_ms`. Returns the dts of the entries that completed a segment.
    fn video_run(&mut self, from_ms: u64, to_ms: u64, gop_ms: u64) -> Vec<u64> {
        let mut cuts = Vec::new();
        let mut dts_ms = from_ms;
        while dts_ms < to_ms {
            if self.video(dts_ms, (dts_ms - from_ms).is_multiple_of(gop_ms)) {
                cuts.push(dts_ms);
            }
            dts_ms += 40;
        }
        cuts
    }

    fn discontinuity(&mut self) {
        self.segmenter.discontinuity();
        let new = self.segmenter.snapshot().version != self.version;
        let unreported = self.unreported;
        self.unreported = false;
        self.check(new);
        self.unreported = unreported || new;
    }

    fn end(&mut self, wall_ms: u64) -> bool {
        let changed = self.segmenter.end(wall_ms);
        self.check(changed);
        changed
    }

    fn snapshot(&self) -> Arc<HlsSnapshot> {
        Arc::clone(&self.last)
    }

    /// The invariants of every snapshot, and that `changed` is said exactly when there is a
    /// new one.
    fn check(&mut self, changed: bool) {
        let snapshot = self.segmenter.snapshot();
        let new = snapshot.version != self.version;
        if std::mem::take(&mut self.unreported) {
            assert!(changed, "a snapshot made by discontinuity() is reported");
        } else {
            assert_eq!(changed, new, "changed = {changed}");
        }
        if !new {
            return;
        }
        assert!(snapshot.version > self.version || snapshot.version == 0);
        self.version = snapshot.version;
        let text = String::from_utf8_lossy(&snapshot.playlist).into_owned();
        let parsed = parse(&snapshot.playlist);
        assert_eq!(parsed.version, Some(3), "{text}");
        assert_eq!(parsed.end_list, snapshot.ended, "{text}");
        assert_eq!(snapshot.has_segments(), !snapshot.segments.is_empty());

        if snapshot.has_segments() {
            let target_s = *self.target_s.get_or_insert(parsed.target_duration);
            assert_eq!(parsed.target_duration, target_s, "target changed:\n{text}");
        }
        let listed: Vec<&HlsSegment> = snapshot.segments.iter().filter(|s| s.listed).collect();
        let unlisted = snapshot.segments.len() - listed.len();
        assert!(snapshot.segments[..unlisted].iter().all(|s| !s.listed));
        assert!(unlisted <= self.params.retain_segments);
        assert!(listed.len() <= self.params.window_segments.max(1));
        assert_eq!(parsed.segments.len(), listed.len(), "{text}");
        for pair in snapshot.segments.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq + 1);
        }
        if let Some(first) = listed.first() {
            assert_eq!(parsed.media_sequence, first.seq, "{text}");
        }

        for segment in &snapshot.segments {
            assert_eq!(
                segment.name,
                format!("{}{}.ts", self.params.name_prefix, segment.seq)
            );
            let known = self.seen.entry(segment.seq).or_insert((
                segment.name.clone(),
                segment.discontinuity,
                segment.duration_ms,
            ));
            assert_eq!(
                *known,
                (
                    segment.name.clone(),
                    segment.discontinuity,
                    segment.duration_ms
                ),
                "a completed segment changed"
            );
            assert!(segment.bytes.len() <= self.params.segment_bytes_max);
            assert_eq!(segment.bytes.len() % TS_PACKET_LEN, 0);
            assert_eq!(
                pid_at(&segment.bytes, 0),
                Some(PAT_PID),
                "segment starts with a PAT"
            );
            assert_eq!(pid_at(&segment.bytes, 1), Some(PMT));
            assert!(segment.duration_ms <= self.target_s.unwrap_or(0) * 1000);
            assert!(snapshot.segment(&segment.name).is_some());
        }
        let mut names: Vec<&String> = self.seen.values().map(|(n, _, _)| n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), self.seen.len(), "names repeat");

        for (i, (ours, theirs)) in listed.iter().zip(&parsed.segments).enumerate() {
            assert_eq!(theirs.uri, ours.name);
            assert_eq!(
                (f64::from(theirs.duration) * 1000.0).round() as u64,
                ours.duration_ms
            );
            assert!(text.contains(&format!(
                "#EXTINF:{}.{:03},\n{}\n",
                ours.duration_ms / 1000,
                ours.duration_ms % 1000,
                ours.name
            )));
            assert_eq!(theirs.discontinuity, ours.discontinuity, "{text}");
            let date = theirs
                .program_date_time
                .map(|d| d.timestamp_millis() as u64);
            if i == 0 || ours.discontinuity {
                assert_eq!(date, Some(ours.program_date_ms), "{text}");
            } else {
                assert_eq!(date, None, "{text}");
            }
        }

        // Discontinuities that left the playlist, counted from every segment ever seen.
        let first_listed = listed.first().map_or(u64::MAX, |s| s.seq);
        let left = self
            .seen
            .iter()
            .filter(|(seq, (_, discontinuity, _))| **seq < first_listed && *discontinuity)
            .count() as u64;
        assert_eq!(parsed.discontinuity_sequence, left, "{text}");
        let any = self.seen.values().any(|(_, d, _)| *d);
        assert_eq!(
            text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:"),
            any,
            "{text}"
        );
        self.last = snapshot;
    }
}

fn durations(snapshot: &HlsSnapshot) -> Vec<u64> {
    snapshot.segments.iter().map(|s| s.duration_ms).collect()
}

#[test]
fn nothing_listed_before_the_first_segment_completes() {
    let mut h = Harness::new(params(2000, 5, 0));
    assert!(!h.snapshot().has_segments());
    assert_eq!(h.snapshot().version, 0);
    // Entries before the first keyframe are dropped; the first segment starts at it.
    assert!(!h.video(0, false));
    assert!(h.video_run(40, 2000, 1000).is_empty());
    assert!(!h.snapshot().has_segments());
    assert!(h.video(2040, true));
    let snapshot = h.snapshot();
    assert_eq!(durations(&snapshot), [2000]);
    assert_eq!(snapshot.version, 1);
    assert_eq!(snapshot.segments[0].program_date_ms, WALL0_MS + 40);
    assert_eq!(snapshot.segments[0].completed_wall_ms, WALL0_MS + 2040);
}

#[test]
fn cuts_at_the_first_keyframe_at_or_after_the_target() {
    // Keyframes every 1.2 s, target 2 s: cuts at 2.4 s, 4.8 s, ...; ceil(2.4) raises the
    // target to 3.
    let mut h = Harness::new(params(2000, 10, 0));
    let cuts = h.video_run(0, 12_000, 1200);
    assert_eq!(cuts, [2400, 4800, 7200, 9600]);
    let snapshot = h.snapshot();
    assert_eq!(durations(&snapshot), [2400; 4]);
    let text = String::from_utf8_lossy(&snapshot.playlist).into_owned();
    assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n"));
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:0\n"));
    assert!(
        text.contains(
            "#EXT-X-PROGRAM-DATE-TIME:2026-11-26T10:00:00.000Z\n#EXTINF:2.400,\nlz3k0.ts\n"
        )
    );
    assert!(!text.contains("DISCONTINUITY"));
    // Each segment starts with its keyframe entry (PAT, PMT, video) and holds two GOPs.
    for segment in &snapshot.segments {
        assert_eq!(pid_at(&segment.bytes, 2), Some(VIDEO));
        assert_eq!(segment.bytes.len(), (2400 / 40 * 3 + 2 * 2) * TS_PACKET_LEN);
    }
    // Program dates follow the media: each is the previous one plus its duration.
    for pair in snapshot.segments.windows(2) {
        assert_eq!(
            pair[1].program_date_ms,
            pair[0].program_date_ms + pair[0].duration_ms
        );
    }
}

#[test]
fn a_long_first_gop_raises_the_target_for_good() {
    let mut h = Harness::new(params(2000, 10, 0));
    assert_eq!(h.video_run(0, 5000, 5000), Vec::<u64>::new());
    assert!(h.video(5000, true));
    assert_eq!(h.target_s, Some(5));
    // Later 2 s GOPs keep the target at 5.
    h.video_run(5040, 11_000, 2000);
    assert_eq!(durations(&h.snapshot()), [5000, 2040, 2000]);
    assert_eq!(h.target_s, Some(5));
}

#[test]
fn interleaved_audio_does_not_force_cuts_when_gops_match_the_target() {
    // 2 s GOPs, target 2 s: each segment is exactly 2.000, cut at the keyframe, although
    // an audio entry 10 ms before it would put a cut with "next dts + max interval" over.
    let mut h = Harness::new(params(2000, 10, 0));
    let mut audio_n = 0u64;
    let mut cuts = Vec::new();
    for frame in 0..250u64 {
        let video_ms = frame * 40;
        loop {
            let audio_ms = audio_n * 1024 * 1000 / 48_000;
            if audio_ms >= video_ms {
                break;
            }
            assert!(!h.audio(audio_ms));
            audio_n += 1;
        }
        if h.video(video_ms, video_ms % 2000 == 0) {
            cuts.push(video_ms);
        }
    }
    assert_eq!(cuts, [2000, 4000, 6000, 8000]);
    let snapshot = h.snapshot();
    assert_eq!(durations(&snapshot), [2000; 4]);
    for segment in &snapshot.segments {
        assert_eq!(
            pid_at(&segment.bytes, 2),
            Some(VIDEO),
            "starts at the keyframe"
        );
    }
}

#[test]
fn a_gop_longer_than_the_target_is_cut_before_the_target_is_exceeded() {
    let mut h = Harness::new(params(2000, 20, 0));
    h.video_run(0, 4000, 2000);
    assert_eq!(h.target_s, Some(2));
    // A 7 s GOP: forced cuts every 2 s, mid-GOP, at an entry boundary.
    h.video_run(4000, 11_000, 7000);
    h.video_run(11_000, 15_000, 2000);
    let snapshot = h.snapshot();
    assert_eq!(
        durations(&snapshot),
        [2000, 2000, 2000, 2000, 2000, 1000, 2000]
    );
    assert_eq!(h.target_s, Some(2));
    // The forced segments start with the PSI put before a non-keyframe.
    let forced = &snapshot.segments[3];
    assert_eq!(pid_at(&forced.bytes, 0), Some(PAT_PID));
    assert_eq!(pid_at(&forced.bytes, 2), Some(VIDEO));
    assert_eq!(forced.bytes.len(), psi().len() + 50 * 3 * TS_PACKET_LEN);
    // A frame later than predicted (120 ms after the last) in a long GOP: the segment it
    // ends ran 40 ms past the target; it is reported at the target, not as a new timeline.
    let mut h = Harness::new(params(1000, 20, 0));
    h.video_run(0, 3960, 1000);
    assert!(h.video(4040, false));
    h.video_run(4080, 4200, 5000);
    h.end(WALL0_MS);
    let snapshot = h.snapshot();
    assert_eq!(durations(&snapshot), [1000, 1000, 1000, 1000, 160]);
    assert!(snapshot.segments.iter().all(|s| !s.discontinuity));
}

#[test]
fn segments_leave_the_playlist_then_stay_fetchable_for_retain_segments() {
    let mut h = Harness::new(params(1000, 3, 2));
    h.video_run(0, 10_040, 1000);
    let snapshot = h.snapshot();
    let seqs: Vec<(u64, bool)> = snapshot
        .segments
        .iter()
        .map(|s| (s.seq, s.listed))
        .collect();
    assert_eq!(
        seqs,
        [(5, false), (6, false), (7, true), (8, true), (9, true)]
    );
    let text = String::from_utf8_lossy(&snapshot.playlist).into_owned();
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:7\n"));
    assert!(!text.contains("lz3k6.ts"));
    // The date is on the first listed segment, whichever it is.
    assert!(text.contains(&format!(
        "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:1.000,\nlz3k7.ts\n",
        iso8601_ms(WALL0_MS + 7000)
    )));
    assert!(snapshot.segment("lz3k5.ts").is_some_and(|s| !s.listed));
    assert!(snapshot.segment("lz3k4.ts").is_none());
    assert!(snapshot.segment("lz3k10.ts").is_none());

    // No retention: a segment is gone as soon as it leaves the playlist. A window of 0
    // lists one.
    let mut h = Harness::new(params(1000, 0, 0));
    h.video_run(0, 5040, 1000);
    let seqs: Vec<u64> = h.snapshot().segments.iter().map(|s| s.seq).collect();
    assert_eq!(seqs, [4]);
}

#[test]
fn held_segments_count_in_the_memory_counter_until_the_last_holder_drops() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let counter = Arc::new(AtomicUsize::new(0));
    let held =
        |snapshot: &HlsSnapshot| -> usize { snapshot.segments.iter().map(|s| s.bytes.len()).sum() };
    // Segment 0: 25 video entries of 3 packets, PAT and PMT before the keyframe.
    let first_len = (25 * 3 + 2) * TS_PACKET_LEN;
    let mut segmenter = Segmenter::new(params(1000, 3, 1)).count_memory_in(counter.clone());
    let mut dts_ms = 0;
    let mut kept: Option<Bytes> = None;
    while dts_ms < 10_040 {
        let ts = entry(VIDEO, dts_ms % 1000 == 0, 3);
        if segmenter.push(&ts, dts_ms, dts_ms % 1000 == 0, &psi(), wall_ms(dts_ms)) {
            // Exactly the segments the window and the retained ones hold (the open segment
            // is not counted; the old snapshots were dropped), and segment 0 while a slice
            // of it is held (a player still downloading it).
            let snapshot = segmenter.snapshot();
            assert!(snapshot.segments.len() <= 4);
            let outside = match (&kept, snapshot.segment("lz3k0.ts")) {
                (Some(_), None) => first_len,
                _ => 0,
            };
            assert_eq!(
                counter.load(Ordering::Relaxed),
                held(&snapshot) + outside,
                "at {dts_ms}"
            );
            if dts_ms == 3000 {
                assert_eq!(snapshot.segments[0].bytes.len(), first_len);
                kept = Some(snapshot.segments[0].bytes.slice(188..376));
            }
        }
        dts_ms += 40;
    }
    let snapshot = segmenter.snapshot();
    assert!(
        snapshot.segments.iter().all(|s| s.seq > 0),
        "segment 0 left"
    );
    let kept = kept.expect("a segment at 3 s");
    assert_eq!(
        counter.load(Ordering::Relaxed),
        held(&snapshot) + first_len,
        "the slice still holds segment 0"
    );
    drop(kept);
    assert_eq!(counter.load(Ordering::Relaxed), held(&snapshot));
    // The end completes the open segment: counted too. The stream's final snapshot holds
    // them after the segmenter is gone; dropping it gives everything back.
    drop(snapshot);
    assert!(segmenter.end(wall_ms(dts_ms)));
    let last = segmenter.snapshot();
    assert_eq!(counter.load(Ordering::Relaxed), held(&last));
    drop(segmenter);
    assert_eq!(counter.load(Ordering::Relaxed), held(&last));
    drop(last);
    assert_eq!(counter.load(Ordering::Relaxed), 0);
}

#[test]
fn discontinuity_is_tagged_and_counted_once_it_leaves_the_playlist() {
    let mut h = Harness::new(params(1000, 2, 1));
    h.video_run(0, 3480, 1000);
    assert_eq!(durations(&h.snapshot()), [1000, 1000, 1000]);
    // Republish mid-GOP: the open segment (3000..=3440, 12 frames) completes now, its
    // duration estimated as span + the video's average interval; the next push says so.
    h.discontinuity();
    assert_eq!(
        h.snapshot().segments.last().map(|s| s.duration_ms),
        Some(480)
    );
    // Until a keyframe, entries are dropped; the new publisher's dts start again at 0.
    assert!(h.video(0, false));
    assert!(!h.video(40, false));
    let version = h.snapshot().version;
    h.discontinuity(); // twice in a row: nothing more to complete
    assert_eq!(h.snapshot().version, version);
    let cuts = h.video_run(80, 2080, 1000);
    assert_eq!(cuts, [1080]);
    let snapshot = h.snapshot();
    let last_two: Vec<(u64, bool, u64)> = snapshot.segments[snapshot.segments.len() - 2..]
        .iter()
        .map(|s| (s.seq, s.discontinuity, s.program_date_ms))
        .collect();
    assert_eq!(
        last_two,
        [(3, false, WALL0_MS + 3000), (4, true, WALL0_MS + 80)]
    );
    let text = String::from_utf8_lossy(&snapshot.playlist).into_owned();
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"), "{text}");
    assert!(text.contains(&format!(
        "#EXTINF:0.480,\nlz3k3.ts\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:1.000,\nlz3k4.ts\n",
        iso8601_ms(WALL0_MS + 80)
    )));
    // Two more segments push seq 4 out of the window of 2: the sequence counts it.
    h.video_run(2080, 4080, 1000);
    let text = String::from_utf8_lossy(&h.snapshot().playlist).into_owned();
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
    assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    assert!(h.snapshot().segment("lz3k4.ts").is_some_and(|s| !s.listed));
}

#[test]
fn a_discontinuity_before_any_media_marks_nothing() {
    let mut h = Harness::new(params(1000, 3, 0));
    h.discontinuity();
    h.video_run(0, 1040, 1000);
    let snapshot = h.snapshot();
    assert!(!snapshot.segments[0].discontinuity);
    assert!(!String::from_utf8_lossy(&snapshot.playlist).contains("DISCONTINUITY"));
}

#[test]
fn dts_jumps_start_a_new_timeline() {
    let mut h = Harness::new(params(1000, 10, 0));
    h.video_run(0, 1500, 1000);
    // 60 s forward: no segment may claim that span.
    assert!(h.video(61_500, false));
    h.video_run(61_540, 62_540, 1000);
    // 30 s back.
    assert!(h.video(32_540, false));
    h.video_run(32_580, 33_000, 1000);
    h.end(WALL0_MS + 99_000);
    let snapshot = h.snapshot();
    let marks: Vec<(u64, bool)> = snapshot
        .segments
        .iter()
        .map(|s| (s.duration_ms, s.discontinuity))
        .collect();
    assert_eq!(
        marks,
        [
            (1000, false),
            (520, false),
            (1000, true),
            (40, false),
            (480, true)
        ]
    );
    // A new timeline's date is taken from the wall clock again.
    assert_eq!(snapshot.segments[2].program_date_ms, WALL0_MS + 61_500);
}

#[test]
fn end_completes_the_open_segment_and_ends_the_playlist() {
    let mut h = Harness::new(params(2000, 5, 0));
    h.video_run(0, 4000, 2000);
    // The last: 4000..=4960, 25 frames at 40 ms: 960 + 40.
    h.video_run(4000, 5000, 2000);
    assert!(h.end(WALL0_MS + 6000));
    let snapshot = h.snapshot();
    assert!(snapshot.ended);
    assert_eq!(durations(&snapshot), [2000, 2000, 1000]);
    let last = &snapshot.segments[2];
    assert_eq!(last.completed_wall_ms, WALL0_MS + 6000);
    assert!(
        String::from_utf8_lossy(&snapshot.playlist)
            .ends_with("#EXTINF:1.000,\nlz3k2.ts\n#EXT-X-ENDLIST\n")
    );
    // Nothing changes after the end.
    assert!(!h.end(WALL0_MS + 7000));
    assert!(!h.video(5000, true));
    h.discontinuity();
    assert_eq!(h.snapshot().version, snapshot.version);

    // A stream that never completed a segment ends with an empty, ended playlist.
    let mut h = Harness::new(params(2000, 5, 0));
    assert!(h.end(WALL0_MS));
    assert!(!h.snapshot().has_segments());
}

#[test]
fn end_estimates_from_the_video_not_the_audio() {
    let mut h = Harness::new(params(4000, 5, 0));
    // Video at 40 ms with audio between: the video's average interval (40) is added, not
    // the all-entries one (20).
    for frame in 0..10u64 {
        h.video(frame * 40, frame == 0);
        h.audio(frame * 40 + 20);
    }
    h.end(WALL0_MS);
    assert_eq!(durations(&h.snapshot()), [380 + 40]);
}

#[test]
fn segments_are_cut_at_entry_boundaries_within_the_byte_cap() {
    let mut p = params(10_000, 50, 0);
    // 20 packets: a keyframe entry is 5, another entry 3, PSI 2.
    p.segment_bytes_max = 20 * TS_PACKET_LEN;
    let mut h = Harness::new(p);
    h.video_run(0, 2000, 1000);
    // An entry that could never fit is dropped.
    assert!(!h.push_entry(VIDEO, 2000, false, 19));
    h.video_run(2040, 3000, 1000);
    h.end(WALL0_MS + 3000);
    let snapshot = h.snapshot();
    let sizes: Vec<usize> = snapshot
        .segments
        .iter()
        .map(|s| s.bytes.len() / TS_PACKET_LEN)
        .collect();
    // 5+3*5 = 20; then PSI+3*6 = 20; ...
    assert_eq!(sizes[..3], [20, 20, 20]);
    assert!(sizes.iter().all(|&n| n <= 20));
    // The target is fixed by the first (short) segment and still bounds every segment.
    assert_eq!(h.target_s, Some(10));
}

#[test]
fn audio_only_segments_start_with_the_psi() {
    let mut h = Harness::new(params(2000, 5, 0));
    let mut cuts = Vec::new();
    for n in 0..300u64 {
        let dts_ms = n * 1024 * 1000 / 48_000;
        if h.push_entry(AUDIO, dts_ms, true, 1) {
            cuts.push(dts_ms);
        }
    }
    // 1024-sample AAC frames at 48 kHz: 21.33 ms, floored.
    assert_eq!(cuts, [2005, 4010, 6016]);
    h.end(WALL0_MS);
    let snapshot = h.snapshot();
    for segment in &snapshot.segments {
        assert_eq!(&segment.bytes[..2 * TS_PACKET_LEN], &psi()[..]);
        assert_eq!(pid_at(&segment.bytes, 2), Some(AUDIO));
    }
    // The last: 6016..=6378 (18 frames), + their average interval.
    assert_eq!(durations(&snapshot), [2005, 2005, 2006, 362 + 362 / 17]);
}

#[test]
fn program_date_time_is_iso8601_utc_with_milliseconds() {
    for (unix_ms, text) in [
        (0, "1970-01-01T00:00:00.000Z"),
        (946_684_799_999, "1999-12-31T23:59:59.999Z"),
        (951_782_400_000, "2000-02-29T00:00:00.000Z"),
        (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
        (1_795_687_200_123, "2026-11-26T10:00:00.123Z"),
        (4_107_542_400_001, "2100-03-01T00:00:00.001Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
    ] {
        assert_eq!(iso8601_ms(unix_ms), text);
    }
    // Every day of four centuries against a day count kept by hand.
    let mut days = 0u64;
    for year in 1970u64..2370 {
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        for (month, length) in [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ]
        .into_iter()
        .enumerate()
        {
            for day in 1..=length {
                assert_eq!(civil_from_days(days), (year, month as u64 + 1, day));
                days += 1;
            }
        }
    }
}

#[test]
fn malformed_entries_are_ignored() {
    let mut h = Harness::new(params(1000, 5, 0));
    assert!(!h.segmenter.push(&[], 0, true, &psi(), WALL0_MS));
    assert!(!h.segmenter.push(&[0x47; 100], 0, true, &psi(), WALL0_MS));
    assert!(!h.segmenter.push(&[0x47; 189], 0, true, &psi(), WALL0_MS));
    h.check(false);
    h.video_run(0, 1040, 1000);
    assert_eq!(durations(&h.snapshot()), [1000]);
}

#[test]
fn extreme_dts_neither_panic_nor_break_the_playlist() {
    let mut h = Harness::new(params(1000, 3, 1));
    for (dts_ms, keyframe) in [
        (u64::MAX - 1, true),
        (u64::MAX, false),
        (0, true),
        (u64::MAX, true),
        (u64::MAX / 2, true),
        (u64::MAX / 2 + 999, false),
        (u64::MAX / 2 + 1000, true),
        (u64::MAX / 2 + 2500, false),
        (3, true),
    ] {
        h.video(dts_ms, keyframe);
    }
    h.discontinuity();
    h.video(u64::MAX, true);
    h.end(u64::MAX);
    assert!(h.snapshot().has_segments());
}

/// A random stream: per step, a dts advance, whether it is a keyframe, and now and then an
/// audio entry, a republish or a dts jump.
#[derive(Clone, Debug)]
enum Step {
    Video {
        advance_ms: u64,
        keyframe: bool,
        packets: usize,
    },
    Audio {
        advance_ms: u64,
    },
    Discontinuity,
    Jump {
        back: bool,
    },
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        30 => (0u64..120, prop::bool::weighted(0.05), 1usize..12)
            .prop_map(|(advance_ms, keyframe, packets)| Step::Video { advance_ms, keyframe, packets }),
        20 => (0u64..40).prop_map(|advance_ms| Step::Audio { advance_ms }),
        1 => Just(Step::Discontinuity),
        1 => any::<bool>().prop_map(|back| Step::Jump { back }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn invariants_hold_for_any_stream(
        steps in prop::collection::vec(step_strategy(), 1..1500),
        target_ms in 500u64..4000,
        window in 1usize..6,
        retain in 0usize..4,
        cap_packets in 40usize..400,
        end in any::<bool>(),
    ) {
        let mut p = params(target_ms, window, retain);
        p.segment_bytes_max = cap_packets * TS_PACKET_LEN;
        let mut h = Harness::new(p);
        let mut dts_ms = 1_000_000u64;
        for step in steps {
            match step {
                Step::Video { advance_ms, keyframe, packets } => {
                    dts_ms += advance_ms;
                    h.push_entry(VIDEO, dts_ms, keyframe, packets);
                }
                Step::Audio { advance_ms } => {
                    h.audio(dts_ms.saturating_sub(advance_ms));
                }
                Step::Discontinuity => h.discontinuity(),
                Step::Jump { back } => {
                    dts_ms = if back { dts_ms.saturating_sub(500_000) } else { dts_ms + 500_000 };
                }
            }
        }
        if end {
            h.end(WALL0_MS);
        }
    }
}
