//! Live HTTP-FLV with what real encoders, players and abusers do: long GOPs at low bitrates,
//! HTTP/1.0 players, republishes with B-frames, clocks past 32 bits, lost wake-ups, oversized
//! headers, trickling and empty publishes, and the live memory budget.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::flv::*;
use common::*;
use uringcast::media::unit::UnitKind;
use uringcast::proto::flv::mux;

fn media_dir() -> PathBuf {
    assert!(
        have("ffmpeg") && have("ffprobe"),
        "ffmpeg/ffprobe are required (README set-up installs them)"
    );
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("live-edge-media")
}

/// Poll `cond` until it holds; panics with `what` after `timeout`.
fn wait_until(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(
        poll_until(Instant::now() + timeout, cond),
        "timed out waiting for {what}"
    );
}

fn streams_json(server: &Server) -> String {
    String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap()
}

fn is_live(server: &Server, name: &str) -> bool {
    let body = streams_json(server);
    body.contains(&format!("\"name\":\"{name}\"")) && !body.contains("\"keyframes\":0")
}

/// A minimal valid H.264 FLV stream: sequence header, then `frames` frames 40 ms apart, a
/// keyframe every 25, starting at `start_ms` (the 32-bit tag timestamp wraps as FLV does).
fn synthetic_flv(start_ms: u64, frames: u32, metadata_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    mux::write_file_header(false, true, &mut out);
    if metadata_bytes > 0 {
        // onMetaData with one long string property.
        let mut body = vec![2, 0, 10];
        body.extend_from_slice(b"onMetaData");
        body.extend_from_slice(&[8, 0, 0, 0, 1, 0, 4]);
        body.extend_from_slice(b"pad_");
        body.push(0x0c);
        body.extend_from_slice(&(metadata_bytes as u32).to_be_bytes());
        body.extend(std::iter::repeat_n(b'x', metadata_bytes));
        body.extend_from_slice(&[0, 0, 9]);
        mux::write_tag(18, 0, &body, &mut out);
    }
    // AVCDecoderConfigurationRecord (baseline, one tiny SPS and PPS).
    let config = [
        0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0, 0x1e, 1, 0, 2, 0x68,
        0xce,
    ];
    mux::write_tag(9, start_ms as u32, &config, &mut out);
    for i in 0..frames {
        let key = i % 25 == 0;
        let ts = (start_ms + u64::from(i) * 40) as u32;
        let mut body = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        body.extend_from_slice(&[0, 0, 0, 2, if key { 0x65 } else { 0x41 }, 0x88]);
        mux::write_tag(9, ts, &body, &mut out);
    }
    out
}

/// Publish a 12 s, 25 fps, 1 s GOP, 600 kbit/s clip with AAC to `/live/{name}.flv`, wait until
/// it is live, and start `readers` HTTP-FLV readers of it for `read_for` each.
fn publish_and_read(
    server: &Server,
    name: &str,
    readers: usize,
    read_for: Duration,
) -> (std::process::Child, Vec<std::thread::JoinHandle<FlvRead>>) {
    let dir = media_dir();
    let clip = clip(
        &dir,
        "gop1s-600k",
        &ClipSpec {
            seconds: 12,
            fps: 25,
            gop_frames: 25,
            video_kbps: 600,
            bframes: 0,
            audio: true,
        },
    );
    let path = format!("/live/{name}.flv");
    let publisher = publish_clip(&server.url(&path), &clip, None);
    wait_until(Duration::from_secs(10), "the stream", || {
        is_live(server, name)
    });
    let addr = server.addr;
    let handles = (0..readers)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || read_flv(addr, &ReadFlv::new(&path, read_for)))
        })
        .collect();
    (publisher, handles)
}

/// POST a whole FLV body with Content-Length; returns the status line and body of the answer.
fn post_flv(server: &Server, path: &str, body: &[u8]) -> Response {
    let mut s = server.connect();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    read_response(&mut s, false).expect("answer")
}

#[test]
fn long_gop_and_low_bitrate_joiners_get_the_gop_and_decode_from_a_keyframe() {
    // OBS's "auto" keyframe interval and IP cameras: one keyframe every 10 s. A viewer who
    // joins 8.5 s into the GOP is sent 8.5 s of media at once: more tags than one sendmsg
    // takes (IOV_MAX), at 300 kbit/s as at 1.5 Mbit/s.
    let dir = media_dir();
    let low = clip(
        &dir,
        "gop10s-300k",
        &ClipSpec {
            seconds: 12,
            fps: 30,
            gop_frames: 300,
            video_kbps: 300,
            bframes: 2,
            audio: true,
        },
    );
    let mid = clip(
        &dir,
        "gop10s-1500k",
        &ClipSpec {
            seconds: 12,
            fps: 30,
            gop_frames: 300,
            video_kbps: 1500,
            bframes: 2,
            audio: true,
        },
    );
    let server = Server::start("long-gop", "");
    let started = Instant::now();
    let mut publishers = vec![
        publish_clip(&server.url("/live/low.flv"), &low, None),
        publish_clip(&server.url("/live/mid.flv"), &mid, None),
    ];
    wait_until(Duration::from_secs(10), "both streams", || {
        is_live(&server, "low") && is_live(&server, "mid")
    });
    let join_at = Duration::from_millis(8_500);
    if let Some(wait) = join_at.checked_sub(started.elapsed()) {
        std::thread::sleep(wait);
    }
    let addr = server.addr;
    let readers: Vec<_> = ["/live/low.flv", "/live/mid.flv"]
        .into_iter()
        .map(|path| {
            std::thread::spawn(move || {
                read_flv(addr, &ReadFlv::new(path, Duration::from_millis(1_500)))
            })
        })
        .collect();
    let decoders: Vec<_> = ["/live/low.flv", "/live/mid.flv"]
        .into_iter()
        .map(|path| {
            let url = server.url(path);
            std::thread::spawn(move || {
                ffmpeg_decode(&url, "error", Some(9.0), Duration::from_secs(20))
            })
        })
        .collect();
    for (path, reader) in ["low", "mid"].iter().zip(readers) {
        let read = reader.join().unwrap();
        assert_eq!(read.status, 200, "{path}");
        assert!(
            read.starts_with_keyframe(),
            "{path}: first frame not a keyframe"
        );
        // The GOP cache arrives at once: about 8 s of video within the first 1.5 s.
        let span = read.video_span_ms();
        assert!(span >= 7_000, "{path}: only {span} ms of video in 1.5 s");
        let first_batch = read
            .tags
            .iter()
            .filter(|t| t.at < read.first_byte.unwrap() + Duration::from_millis(500))
            .count();
        assert!(
            first_batch > 400,
            "{path}: the GOP (more than 341 tags: 3 iovecs each) came in {first_batch} tags"
        );
    }
    for (path, decoder) in ["low", "mid"].iter().zip(decoders) {
        let (ok, text) = decoder.join().unwrap();
        assert!(ok && text.trim().is_empty(), "{path}: ffmpeg said: {text}");
    }
    for p in &mut publishers {
        let _ = p.kill();
        let _ = p.wait();
    }
    server.assert_closes_add_up();
}

#[test]
fn http_10_readers_get_an_unframed_body_that_ends_with_the_connection() {
    let server = Server::start("http10", "[live]\npublisher_grace_ms = 0\n");
    let addr = server.addr;
    let flv = synthetic_flv(0, 100, 0);
    let mut publisher = server.connect();
    write!(
        publisher,
        "POST /live/old.flv HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        flv.len()
    )
    .unwrap();
    let half = flv.len() / 2;
    publisher.write_all(&flv[..half]).unwrap();
    wait_until(Duration::from_secs(5), "the stream", || {
        is_live(&server, "old")
    });
    let reader = std::thread::spawn(move || {
        let mut options = ReadFlv::new("/live/old.flv", Duration::from_secs(5));
        options.version = "HTTP/1.0";
        read_flv(addr, &options)
    });
    std::thread::sleep(Duration::from_millis(300));
    publisher.write_all(&flv[half..]).unwrap();
    let answer = read_response(&mut publisher, false).unwrap();
    assert_eq!(answer.status, 200);
    let read = reader.join().unwrap();
    assert_eq!(read.status, 200);
    assert!(
        !read.head.contains("transfer-encoding"),
        "HTTP/1.0 must not get chunked coding: {}",
        read.head
    );
    assert!(read.head.contains("connection: close"), "{}", read.head);
    assert_eq!(&read.raw_body_prefix[..4], b"FLV\x01", "body is bare FLV");
    assert!(read.ended, "the body ends with the connection");
    assert!(read.starts_with_keyframe());
    let last = read.media(UnitKind::Video).last().unwrap().dts_ms;
    assert_eq!(last, 99 * 40, "every frame up to the end arrived");
    server.assert_closes_add_up();
}

#[test]
fn a_republish_with_b_frames_reads_across_the_seam_with_increasing_timestamps() {
    let dir = media_dir();
    // B-frames: presentation order differs from decode order, so the old stream's last
    // frames present after its last dts (video only: a later audio dts cannot hide it).
    let clip = clip(
        &dir,
        "bframes-video-4s",
        &ClipSpec {
            seconds: 4,
            fps: 25,
            gop_frames: 25,
            video_kbps: 800,
            bframes: 3,
            audio: false,
        },
    );
    let server = Server::start("seam", "[live]\npublisher_grace_ms = 2000\n");
    let url = server.url("/live/seam.flv");
    let mut first = publish_clip(&url, &clip, None);
    wait_until(Duration::from_secs(10), "the stream", || {
        is_live(&server, "seam")
    });
    let addr = server.addr;
    let reader = std::thread::spawn(move || {
        read_flv(
            addr,
            &ReadFlv::new("/live/seam.flv", Duration::from_secs(20)),
        )
    });
    let decoder = {
        let url = url.clone();
        std::thread::spawn(move || ffmpeg_decode(&url, "warning", None, Duration::from_secs(20)))
    };
    assert!(first.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    let mut second = publish_clip(&url, &clip, None);
    assert!(second.wait().unwrap().success());
    let read = reader.join().unwrap();
    assert!(read.ended, "the stream ends after the grace period");
    for kind in [UnitKind::Video, UnitKind::Audio] {
        let dts: Vec<u32> = read.media(kind).map(|t| t.dts_ms).collect();
        // (Equal neighbours are the AVC end-of-sequence tag ffmpeg writes at its end.)
        assert!(
            dts.windows(2).all(|w| w[0] <= w[1]),
            "{kind:?} dts must not go back across the seam: {dts:?}"
        );
    }
    // The first frame after the seam presents after every frame before it.
    let video: Vec<&Tag> = read.media(UnitKind::Video).collect();
    // The seam: the pause between the two publishers (at least 300 ms of no frames, plus
    // ffmpeg's start-up). The longest pause, not the first one over a bound: on a loaded
    // machine a reader can also stall for a few hundred ms mid-stream.
    let (gap, seam) = video
        .windows(2)
        .enumerate()
        .map(|(i, w)| (w[1].at.saturating_sub(w[0].at), i + 1))
        .max()
        .expect("frames");
    assert!(
        gap >= Duration::from_millis(250),
        "a pause between the publishers: {gap:?}"
    );
    assert!(video[seam].keyframe, "the republish starts at a keyframe");
    let old_max_pts = video[..seam]
        .iter()
        .map(|t| i64::from(t.dts_ms) + i64::from(t.cts_ms))
        .max()
        .unwrap();
    assert!(
        i64::from(video[seam].dts_ms) > old_max_pts,
        "new dts {} must follow the old stream's largest pts {old_max_pts}",
        video[seam].dts_ms
    );
    let (ok, text) = decoder.join().unwrap();
    assert!(
        ok && text.trim().is_empty(),
        "ffmpeg across the seam said: {text}"
    );
    server.assert_closes_add_up();
}

#[test]
fn a_clock_past_32_bits_wraps_on_the_wire_and_keeps_playing() {
    // 49.7 days of timeline: the publisher's timestamps cross 2^32 ms mid-stream.
    let server = Server::start("wrap", "[live]\npublisher_grace_ms = 0\n");
    let start = (1u64 << 32) - 2_000;
    // 100 frames (4 s; the wrap 2 s in); written in two parts so that no reader lags past
    // live.max_lag_ms and every frame must arrive.
    let flv = synthetic_flv(start, 100, 0);
    let mut publisher = server.connect();
    write!(
        publisher,
        "POST /live/wrap.flv HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        flv.len()
    )
    .unwrap();
    // The first GOP, then the reader, then the rest across the wrap.
    let first_gop = flv.len() / 4;
    publisher.write_all(&flv[..first_gop]).unwrap();
    wait_until(Duration::from_secs(5), "the stream", || {
        is_live(&server, "wrap")
    });
    let addr = server.addr;
    let reader = std::thread::spawn(move || {
        read_flv(
            addr,
            &ReadFlv::new("/live/wrap.flv", Duration::from_secs(5)),
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    publisher.write_all(&flv[first_gop..]).unwrap();
    assert_eq!(read_response(&mut publisher, false).unwrap().status, 200);
    let read = reader.join().unwrap();
    let dts: Vec<u32> = read.media(UnitKind::Video).map(|t| t.dts_ms).collect();
    assert_eq!(dts.len(), 100, "every frame arrives");
    assert!(
        dts.windows(2).all(|w| w[1].wrapping_sub(w[0]) == 40),
        "timestamps advance by one frame, wrapping at 2^32: {dts:?}"
    );
    assert!(dts.iter().any(|d| *d < 10_000), "the wrap reached the wire");
    assert_eq!(*dts.last().unwrap(), (start + 99 * 40) as u32);
}

#[test]
fn lost_wake_ups_do_not_stall_readers_on_other_workers() {
    // Every cross-worker doorbell fails (test-build fault injection); readers on the worker
    // without the publisher must still get the stream, through the per-tick mailbox drain.
    let server = Server::start_env("lost-wake", "", &[("URINGCAST_FAULT_DROP_WAKES", "1")]);
    let (mut publisher, readers) = publish_and_read(&server, "w", 8, Duration::from_secs(4));
    for (i, r) in readers.into_iter().enumerate() {
        let read = r.join().unwrap();
        let live: Vec<&Tag> = read
            .media(UnitKind::Video)
            .filter(|t| t.at > Duration::from_millis(500))
            .collect();
        // 25 fps: at least 2.5 s of frames in the last 3.5 s, with no stall over 600 ms.
        assert!(
            live.len() >= 60,
            "reader {i} got {} live frames",
            live.len()
        );
        let stall = live
            .windows(2)
            .map(|w| w[1].at - w[0].at)
            .max()
            .unwrap_or_default();
        assert!(
            stall < Duration::from_millis(600),
            "reader {i} stalled {stall:?}"
        );
    }
    let _ = publisher.kill();
    let _ = publisher.wait();
    // Every doorbell failed and was counted; the commands waited in the mailbox and the
    // per-tick drain delivered them (the readers above got the stream). A stream whose head
    // moved for a whole tick without news is also pulled by the tick (counted as
    // `uringcast_live_wake_missed_total`), but with the mailbox drained every tick that second
    // net may or may not be needed, so it is not asserted.
    wait_until(
        Duration::from_secs(3),
        "the doorbell failure counter",
        || server.metric_sum("uringcast_live_wake_failures_total", &[]) > 0.0,
    );
}

#[test]
fn oversized_headers_empty_and_trickling_publishes_are_refused() {
    let server = Server::start(
        "bad-publish",
        "[live]\npublish_timeout_ms = 1000\npublisher_grace_ms = 0\n",
    );
    // onMetaData of 16 KiB: past live.header_bytes_max (8 KiB by default).
    let answer = post_flv(&server, "/live/big.flv", &synthetic_flv(0, 10, 16 << 10));
    assert_eq!(answer.status, 400);
    let reason = String::from_utf8_lossy(&answer.body).into_owned();
    assert!(reason.contains("live.header_bytes_max"), "{reason}");
    // The same stream with small metadata is fine.
    assert_eq!(
        post_flv(&server, "/live/ok.flv", &synthetic_flv(0, 10, 500)).status,
        200
    );

    // Content-Length: 0 is answered at once, and the name is not held.
    let t = Instant::now();
    let answer =
        server.raw(b"POST /live/empty.flv HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(answer.status, 400);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(!streams_json(&server).contains("\"name\":\"empty\""));

    // A publisher that sends one frame, then trickles a byte every 100 ms of a frame that
    // never completes, is dropped after publish_timeout_ms although bytes keep arriving.
    let flv = synthetic_flv(0, 2, 0);
    let mut s = server.connect();
    write!(
        s,
        "POST /live/trickle.flv HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        flv.len() + 1000
    )
    .unwrap();
    s.write_all(&flv).unwrap();
    // The header of a 900-byte video tag, then its body byte by byte.
    s.write_all(&[9, 0, 3, 0x84, 0, 1, 0, 0, 0, 0, 0]).unwrap();
    wait_until(Duration::from_secs(3), "the trickling stream", || {
        streams_json(&server).contains("\"name\":\"trickle\"")
    });
    let t = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut closed = false;
    while t.elapsed() < Duration::from_secs(4) {
        if s.write_all(&[0x27]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(
        closed,
        "a trickling publisher was kept for {:?}",
        t.elapsed()
    );
    assert!(
        t.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        t.elapsed()
    );
    wait_until(Duration::from_secs(3), "the name to be free", || {
        !streams_json(&server).contains("\"name\":\"trickle\"")
    });
    server.assert_closes_add_up();
}

#[test]
fn the_live_memory_budget_refuses_new_publishes_until_memory_is_freed() {
    let server = Server::start(
        "budget",
        "[live]\nring_bytes = 65536\nring_bytes_hard_max = 1048576\nmemory_max = 100000\npublisher_grace_ms = 0\n",
    );
    // One stream whose GOP is held: about 90 KB of ring.
    let flv = synthetic_flv(0, 24, 0);
    let mut big = Vec::new();
    mux::write_file_header(false, true, &mut big);
    // Frames padded to 3.5 KB each, all in one GOP.
    let mut demux = uringcast::proto::flv::FlvDemuxer::new(Default::default());
    demux.push(&flv);
    while let Ok(Some(event)) = demux.poll() {
        if let uringcast::proto::flv::FlvEvent::Unit(u) = event {
            let mut body = u.body.to_vec();
            if !u.config {
                body.resize(3_500, 0x88);
            }
            mux::write_tag(9, u.dts_ms, &body, &mut big);
        }
    }
    let mut first = server.connect();
    write!(
        first,
        "POST /live/a.flv HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        big.len() + 100
    )
    .unwrap();
    first.write_all(&big).unwrap();
    wait_until(Duration::from_secs(5), "the ring to fill", || {
        metric_sum(&server.metrics(), "uringcast_live_memory_bytes", &[]) > 80_000.0
    });
    let refused = post_flv(&server, "/live/b.flv", &synthetic_flv(0, 10, 0));
    assert_eq!(refused.status, 503);
    assert!(
        String::from_utf8_lossy(&refused.body).contains("live.memory_max"),
        "{refused:?}"
    );
    drop(first);
    wait_until(
        Duration::from_secs(5),
        "the memory to be given back",
        || metric_sum(&server.metrics(), "uringcast_live_memory_bytes", &[]) == 0.0,
    );
    assert_eq!(
        post_flv(&server, "/live/b.flv", &synthetic_flv(0, 10, 0)).status,
        200
    );
    assert_eq!(
        metric_sum(&server.metrics(), "uringcast_live_memory_max_bytes", &[]),
        100_000.0
    );
    server.assert_closes_add_up();
}

/// Sends per reader per second and the readers' worst media lag, for one server config.
fn coalescing_run(name: &str, coalesce_ms: u64) -> (f64, Vec<FlvRead>) {
    let server = Server::start(
        name,
        &format!("[live]\nsend_coalesce_ms = {coalesce_ms}\nsend_coalesce_bytes = 1048576\n"),
    );
    let (mut publisher, readers) = publish_and_read(&server, "c", 4, Duration::from_secs(5));
    // Steady state: after the joiners' first batches, count the sends of 3 s.
    std::thread::sleep(Duration::from_millis(1_500));
    let sends = |s: &Server| s.metric_sum("uringcast_sends_submitted_total", &[]);
    let before = sends(&server);
    std::thread::sleep(Duration::from_secs(3));
    let after = sends(&server);
    let reads: Vec<FlvRead> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let _ = publisher.kill();
    let _ = publisher.wait();
    // The metrics requests themselves are a send each: negligible beside 4 readers.
    ((after - before) / 4.0 / 3.0, reads)
}

#[test]
fn write_coalescing_batches_tags_into_fewer_sends_without_stalling_readers() {
    // 25 fps video + AAC audio is ~68 tags a second. With no coalescing every tag is a send;
    // with a 300 ms window a reader at the head sends ~3 times a second, each send carrying
    // the tags of the window — and still gets the stream in real time.
    let (eager, eager_reads) = coalescing_run("coalesce-0", 0);
    let (batched, batched_reads) = coalescing_run("coalesce-300", 300);
    assert!(eager >= 30.0, "no coalescing: {eager:.1} sends/reader/s");
    assert!(
        batched <= 5.0,
        "300 ms coalescing: {batched:.1} sends/reader/s"
    );
    for (label, reads, gap_max) in [
        ("0 ms", &eager_reads, 300u64),
        ("300 ms", &batched_reads, 650),
    ] {
        for read in reads.iter() {
            assert!(read.starts_with_keyframe(), "{label}: first frame");
            let video: Vec<&Tag> = read.media(UnitKind::Video).collect();
            // 5 s of reading, ~1 s of GOP cache first: at least 4.5 s of video arrives.
            assert!(
                read.video_span_ms() >= 4_500,
                "{label}: only {} ms of video",
                read.video_span_ms()
            );
            let live: Vec<&&Tag> = video
                .iter()
                .filter(|t| t.at > Duration::from_millis(1_000))
                .collect();
            let gap = live
                .windows(2)
                .map(|w| w[1].at - w[0].at)
                .max()
                .unwrap_or_default();
            assert!(
                gap < Duration::from_millis(gap_max),
                "{label}: a gap of {gap:?} between arrivals"
            );
        }
    }
}
