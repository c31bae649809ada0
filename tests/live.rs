//! Live HTTP-FLV through the real binary: ffmpeg publishes over HTTP POST, ffmpeg/ffprobe and an
//! FLV-parsing reader (our demuxer) read back.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::media::wait_for_stream;
use common::*;
use uringcast::media::unit::UnitKind;
use uringcast::proto::flv::{FlvDemuxer, FlvEvent, FlvLimits};

/// A 30 s H.264 + AAC clip (320x240, keyframe every second), made once per test binary.
fn clip() -> PathBuf {
    static CLIP: OnceLock<PathBuf> = OnceLock::new();
    CLIP.get_or_init(|| {
        assert!(
            have("ffmpeg") && have("ffprobe"),
            "ffmpeg/ffprobe are required (README set-up installs them)"
        );
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("live-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        test_mp4(&dir, 30)
    })
    .clone()
}

/// `ffmpeg -re -i clip -c copy -f flv -method POST url`, for `seconds` of media.
fn publish(server: &Server, path: &str, seconds: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(clip())
        .args([
            "-t",
            &seconds.to_string(),
            "-c",
            "copy",
            "-f",
            "flv",
            "-method",
            "POST",
        ])
        .arg(server.url(path))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg")
}

/// One received tag.
#[derive(Debug, Clone)]
struct Tag {
    at: Duration,
    kind: UnitKind,
    keyframe: bool,
    config: bool,
    dts_ms: u32,
    sum: u64,
}

fn checksum(data: &[u8]) -> u64 {
    // FNV-1a: enough to tell tag bodies apart.
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// An HTTP-FLV reader that parses what it gets. `read_delay` per 4 KiB read makes it slow.
struct Reader {
    tags: Vec<Tag>,
    first_byte: Option<Duration>,
    status: u16,
    /// The chunked body ended with its last (zero-length) chunk.
    ended_cleanly: bool,
    /// The server closed the connection (EOF), with or without the last chunk.
    closed: bool,
    /// When the body ended or the connection closed, from the start of the request.
    ended_at: Option<Duration>,
    /// What arrived ends on an FLV tag boundary (nothing torn off mid-tag).
    whole_tags: bool,
    error: Option<String>,
}

fn read_flv(
    server_addr: std::net::SocketAddr,
    path: &str,
    duration: Duration,
    rcvbuf_small: bool,
    read_delay: Duration,
) -> Reader {
    read_flv_paced(
        server_addr,
        path,
        duration,
        rcvbuf_small,
        read_delay,
        &AtomicBool::new(false),
    )
}

/// `read_flv` whose `read_delay` stops once `hurry` is set: a slow reader that then takes
/// whatever is left at full speed.
fn read_flv_paced(
    server_addr: std::net::SocketAddr,
    path: &str,
    duration: Duration,
    rcvbuf_small: bool,
    read_delay: Duration,
    hurry: &AtomicBool,
) -> Reader {
    let started = Instant::now();
    let mut reader = Reader {
        tags: Vec::new(),
        first_byte: None,
        status: 0,
        ended_cleanly: false,
        closed: false,
        ended_at: None,
        whole_tags: false,
        error: None,
    };
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if rcvbuf_small {
        socket.set_recv_buffer_size(4096).unwrap();
    }
    socket.connect(&server_addr.into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 4096];
    let mut head_done = false;
    let mut chunked = uringcast::proto::http::ChunkedDecoder::new(64 << 20);
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    while started.elapsed() < duration {
        let n = match s.read(&mut buf) {
            Ok(0) => {
                reader.closed = true;
                reader.ended_at = Some(started.elapsed());
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                reader.error = Some(e.to_string());
                break;
            }
        };
        reader.first_byte.get_or_insert(started.elapsed());
        let mut data = &buf[..n];
        if !head_done {
            raw.extend_from_slice(data);
            let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&raw[..end]).into_owned();
            reader.status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: video/x-flv"),
                "{head}"
            );
            assert!(
                head.to_ascii_lowercase()
                    .contains("access-control-allow-origin: *"),
                "{head}"
            );
            head_done = true;
            let rest = raw[end + 4..].to_vec();
            raw = rest;
            data = &raw;
        }
        let mut plain = Vec::new();
        let progress = chunked
            .decode(data, &mut |b: &[u8]| plain.extend_from_slice(b))
            .expect("valid chunked body");
        demuxer.push(&plain);
        loop {
            match demuxer.poll() {
                Ok(Some(FlvEvent::Unit(u))) => reader.tags.push(Tag {
                    at: started.elapsed(),
                    kind: u.kind,
                    keyframe: u.keyframe,
                    config: u.config,
                    dts_ms: u.dts_ms,
                    sum: checksum(&u.body),
                }),
                Ok(Some(FlvEvent::Header { .. })) => {}
                Ok(None) => break,
                Err(e) => panic!("reader got malformed FLV: {e}"),
            }
        }
        if progress.done {
            reader.ended_cleanly = true;
            reader.ended_at = Some(started.elapsed());
            break;
        }
        if !read_delay.is_zero() && !hurry.load(Ordering::Relaxed) {
            std::thread::sleep(read_delay);
        }
    }
    reader.whole_tags = demuxer.finish().is_ok();
    reader
}

/// Every published tag body, by demuxing what the publisher sends (the clip as FLV).
fn published_sums() -> HashSet<u64> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(clip())
        .args(["-c", "copy", "-f", "flv", "-"])
        .output()
        .unwrap();
    let mut demuxer = FlvDemuxer::new(FlvLimits::default());
    demuxer.push(&out.stdout);
    let mut sums = HashSet::new();
    while let Ok(Some(event)) = demuxer.poll() {
        if let FlvEvent::Unit(u) = event {
            sums.insert(checksum(&u.body));
        }
    }
    sums
}

fn assert_monotonic_and_starts_with_keyframe(tags: &[Tag], who: &str) {
    let first_video = tags
        .iter()
        .find(|t| t.kind == UnitKind::Video && !t.config)
        .unwrap_or_else(|| panic!("{who}: no video"));
    assert!(
        first_video.keyframe,
        "{who}: first video frame is not a keyframe"
    );
    for kind in [UnitKind::Video, UnitKind::Audio] {
        let dts: Vec<u32> = tags
            .iter()
            .filter(|t| t.kind == kind && !t.config)
            .map(|t| t.dts_ms)
            .collect();
        if let Some(i) = dts.windows(2).position(|w| w[0] > w[1]) {
            let all: Vec<(UnitKind, bool, u32)> =
                tags.iter().map(|t| (t.kind, t.config, t.dts_ms)).collect();
            let at = all
                .iter()
                .position(|t| t.0 == kind && !t.1 && t.2 == dts[i + 1])
                .unwrap_or(0);
            panic!(
                "{who}: {kind:?} dts not monotonic: {} then {}; around: {:?}",
                dts[i],
                dts[i + 1],
                &all[at.saturating_sub(12)..(at + 4).min(all.len())]
            );
        }
    }
}

#[test]
fn publish_and_many_readers_decode_from_a_keyframe() {
    let server = Server::start("live-main", "");
    let mut publisher = publish(&server, "/live/cam1.flv", 20);
    wait_for_stream(&server, "cam1");
    let url = server.url("/live/cam1.flv");
    // Five decoding readers.
    let decoders: Vec<Child> = (0..5)
        .map(|_| {
            Command::new("ffmpeg")
                .args(["-v", "error", "-i", &url, "-t", "8", "-f", "null", "-"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // A parsing reader that joins mid-stream.
    std::thread::sleep(Duration::from_millis(2500));
    let joiner = read_flv(
        server.addr,
        "/live/cam1.flv",
        Duration::from_secs(4),
        false,
        Duration::ZERO,
    );
    assert_eq!(joiner.status, 200);
    assert!(
        joiner.first_byte.unwrap() < Duration::from_millis(500),
        "first byte after {:?}",
        joiner.first_byte
    );
    assert_monotonic_and_starts_with_keyframe(&joiner.tags, "joiner");
    let first_frame = joiner
        .tags
        .iter()
        .find(|t| t.kind == UnitKind::Video && !t.config)
        .unwrap();
    assert!(
        first_frame.at < Duration::from_millis(500),
        "first keyframe after {:?}",
        first_frame.at
    );
    assert!(
        joiner
            .tags
            .iter()
            .any(|t| t.config && t.kind == UnitKind::Video),
        "sequence headers sent first"
    );
    // ffprobe: first frame a keyframe, timestamps increasing.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "frame=key_frame,pkt_dts",
            "-of",
            "csv=p=0",
        ])
        .args(["-read_intervals", "%+#50", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<(u32, i64)> = text
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            Some((
                it.next()?.trim().parse().ok()?,
                it.next()?.trim().parse().ok()?,
            ))
        })
        .collect();
    assert!(
        frames.len() >= 40,
        "ffprobe read {} frames: {text}",
        frames.len()
    );
    assert_eq!(frames[0].0, 1, "ffprobe: first frame must be a keyframe");
    assert!(
        frames.windows(2).all(|w| w[0].1 < w[1].1),
        "ffprobe: dts not increasing"
    );
    for child in decoders {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "decoder failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "decoder printed errors: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let api = String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap();
    for field in [
        "\"video_codec\":\"h264\"",
        "\"audio_codec\":\"aac\"",
        "\"width\":320",
        "\"height\":240",
        "\"gop_interval_ms\":1000",
    ] {
        assert!(api.contains(field), "{field} missing: {api}");
    }
    let metrics = server.metrics();
    assert!(
        metric_sum(
            &metrics,
            "uringcast_stream_bytes_out_total",
            &["stream=\"live/cam1\""]
        ) > 100_000.0,
        "{metrics}"
    );
    // The console at `/` lists the streams from the API and plays them from the ports it
    // names (tests/browser.rs drives it).
    let play = format!(
        "\"play\":{{\"http_port\":{},\"rtmp_port\":{}}}",
        server.addr.port(),
        server.rtmp_addr.port()
    );
    assert!(api.contains(&play), "{play} missing: {api}");
    for series in [
        "uringcast_stream_fps{stream=\"live/cam1\"} 25",
        "uringcast_stream_gop_interval_seconds{stream=\"live/cam1\"} 1",
        "uringcast_stream_publishing{stream=\"live/cam1\"} 1",
        "uringcast_stream_readers{stream=\"live/cam1\",protocol=\"flv\"}",
    ] {
        assert!(metrics.contains(series), "{series} missing from /metrics");
    }
    let _ = publisher.kill();
    let _ = publisher.wait();
}

/// Forward jumps in video dts of more than `gap_ms` (consecutive frames are 40 ms apart): what
/// a skip to the latest keyframe looks like on the wire. Returns (from, to, lands on keyframe).
fn dts_jumps(tags: &[Tag], gap_ms: u32) -> Vec<(u32, u32, bool)> {
    let video: Vec<&Tag> = tags
        .iter()
        .filter(|t| t.kind == UnitKind::Video && !t.config)
        .collect();
    video
        .windows(2)
        .filter(|w| w[1].dts_ms > w[0].dts_ms + gap_ms)
        .map(|w| (w[0].dts_ms, w[1].dts_ms, w[1].keyframe))
        .collect()
}

#[test]
fn a_slow_reader_hurts_nobody_and_is_skipped_then_dropped() {
    // Small lag budget so the slow reader crosses it quickly: two skips are allowed, the third
    // drops it.
    let server = Server::start(
        "live-slow",
        "[live]\nmax_lag_ms = 1500\nmax_skips = 2\nreader_socket_send_bytes = 16384\n[http]\nsend_timeout_ms = 3000\n",
    );
    let mut publisher = publish(&server, "/live/slow.flv", 14);
    wait_for_stream(&server, "slow");
    let addr = server.addr;
    // Reads 4 KiB every 400 ms (a few times slower than the stream) until the server has
    // dropped it, then takes what is left at full speed: if the server had not closed the
    // connection, it would keep receiving live media until its window ends.
    let hurry = Arc::new(AtomicBool::new(false));
    let slow = {
        let hurry = hurry.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let r = read_flv_paced(
                addr,
                "/live/slow.flv",
                Duration::from_secs(14),
                true,
                Duration::from_millis(400),
                &hurry,
            );
            (started, r)
        })
    };
    let normal: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                read_flv(
                    addr,
                    "/live/slow.flv",
                    Duration::from_secs(8),
                    false,
                    Duration::ZERO,
                )
            })
        })
        .collect();
    let ingest_start = Instant::now();
    let disconnects = |server: &Server| {
        server.metric_sum(
            "uringcast_stream_slow_reader_disconnects_total",
            &["live/slow"],
        )
    };
    assert!(
        poll_until(in_ms(12_000), || disconnects(&server) >= 1.0),
        "the slow reader was never dropped:\n{}",
        server.metrics()
    );
    let dropped_at = Instant::now();
    hurry.store(true, Ordering::Relaxed);
    for handle in normal {
        let r = handle.join().unwrap();
        assert_monotonic_and_starts_with_keyframe(&r.tags, "normal reader");
        assert_eq!(
            dts_jumps(&r.tags, 200),
            vec![],
            "a normal reader was skipped"
        );
        assert!(!r.closed, "a normal reader was disconnected");
        let video: Vec<&Tag> = r
            .tags
            .iter()
            .filter(|t| t.kind == UnitKind::Video && !t.config)
            .collect();
        let media_ms = video.last().unwrap().dts_ms - video.first().unwrap().dts_ms;
        let wall_ms = (video.last().unwrap().at - video.first().unwrap().at).as_millis() as u32;
        assert!(
            media_ms as f64 >= 0.9 * wall_ms as f64,
            "normal reader fell behind: {media_ms} ms media in {wall_ms} ms"
        );
        assert!(media_ms >= 6000, "normal reader got only {media_ms} ms");
    }
    // What the slow reader received: the GOP cache, then media that jumps forward to a
    // keyframe (a skip), then the end of the connection, without the last chunk (the stream
    // goes on: it was dropped), soon after the server counted the drop.
    let (slow_started, slow) = slow.join().unwrap();
    assert_eq!(slow.status, 200);
    assert_monotonic_and_starts_with_keyframe(&slow.tags, "slow reader");
    let jumps = dts_jumps(&slow.tags, 500);
    assert!(
        !jumps.is_empty(),
        "no skip visible in what the slow reader received"
    );
    assert!(
        jumps.iter().all(|j| j.2),
        "a skip landed on a non-keyframe: {jumps:?}"
    );
    assert!(
        slow.closed && !slow.ended_cleanly && slow.error.is_none(),
        "the slow reader was not disconnected (closed {}, last chunk {}, error {:?})",
        slow.closed,
        slow.ended_cleanly,
        slow.error
    );
    let closed_after_drop =
        (slow_started + slow.ended_at.unwrap()).saturating_duration_since(dropped_at);
    assert!(
        closed_after_drop < Duration::from_millis(1500),
        "the slow reader still got data {closed_after_drop:?} after the server dropped it"
    );
    // The stream's counters: the slow reader's two skips and the third that dropped it, and
    // nobody else's.
    let metrics = server.metrics();
    assert_eq!(
        metric_sum(&metrics, "uringcast_stream_skips_total", &["live/slow"]),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "uringcast_stream_slow_reader_disconnects_total",
            &["live/slow"]
        ),
        1.0,
        "{metrics}"
    );
    // The skips as frames: what the slow reader jumped over, against what was sent; its late
    // sends are in the lag histogram, above the lag limit.
    let skipped = metric_sum(
        &metrics,
        "uringcast_stream_frames_skipped_total",
        &["live/slow"],
    );
    let sent = metric_sum(
        &metrics,
        "uringcast_stream_frames_sent_total",
        &["live/slow"],
    );
    assert!(skipped >= 3.0 && sent > skipped, "{metrics}");
    let ratio = metric_sum(
        &metrics,
        "uringcast_stream_frame_drop_ratio",
        &["live/slow"],
    );
    assert!(
        (ratio - skipped / (sent + skipped)).abs() < 0.01 && ratio > 0.0,
        "{metrics}"
    );
    let lag = |le: &str| {
        metric_sum(
            &metrics,
            "uringcast_stream_reader_lag_seconds_bucket",
            &["live/slow", &format!("le=\"{le}\"")],
        )
    };
    assert!(lag("+Inf") - lag("1") >= 1.0, "no lag above 1 s: {metrics}");
    // The publisher kept real time: its stream advanced ~as much media as wall time passed.
    let api = String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap();
    let video_frames: f64 = api
        .split("\"video_frames\":")
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    let elapsed = ingest_start.elapsed().as_secs_f64();
    assert!(
        video_frames >= 25.0 * elapsed * 0.9,
        "ingest slowed: {video_frames} frames in {elapsed:.1}+ s"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn ring_wraps_under_in_flight_sends_without_torn_tags() {
    // A tiny ring: it wraps every ~second while slow readers have sends in flight.
    let server = Server::start(
        "live-wrap",
        "[live]\nring_bytes = 65536\nring_bytes_hard_max = 4194304\nring_entries = 64\nmax_lag_ms = 100000\nmax_lag_bytes = 67108864\nmax_skips = 1000\n",
    );
    let mut publisher = publish(&server, "/live/wrap.flv", 10);
    wait_for_stream(&server, "wrap");
    let addr = server.addr;
    let readers: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                read_flv(
                    addr,
                    "/live/wrap.flv",
                    Duration::from_secs(7),
                    true,
                    Duration::from_millis(20 + 30 * i),
                )
            })
        })
        .collect();
    let sums = published_sums();
    let mut total = 0;
    for handle in readers {
        let r = handle.join().unwrap();
        assert!(r.tags.len() > 50, "reader got {} tags", r.tags.len());
        for (i, t) in r.tags.iter().enumerate() {
            assert!(
                t.kind == UnitKind::Script || sums.contains(&t.sum),
                "tag {i} ({:?}, dts {}) differs from every published tag",
                t.kind,
                t.dts_ms
            );
        }
        // After every jump in video dts (a skip), the next video frame is a keyframe.
        let video: Vec<&Tag> = r
            .tags
            .iter()
            .filter(|t| t.kind == UnitKind::Video && !t.config)
            .collect();
        for w in video.windows(2) {
            if w[1].dts_ms > w[0].dts_ms + 200 {
                assert!(
                    w[1].keyframe,
                    "skip landed on a non-keyframe at dts {}",
                    w[1].dts_ms
                );
            }
        }
        total += r.tags.len();
    }
    assert!(total > 150);
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn second_publisher_is_refused_and_republish_continues_readers() {
    let server = Server::start("live-republish", "[live]\npublisher_grace_ms = 4000\n");
    let mut first = publish(&server, "/live/re.flv", 4);
    wait_for_stream(&server, "re");
    // A second publisher: 409, and the first is untouched.
    let mut second = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "@-",
        ])
        .arg(server.url("/live/re.flv"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    second
        .stdin
        .take()
        .unwrap()
        .write_all(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")
        .unwrap();
    let code = String::from_utf8(second.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(code, "409");
    let addr = server.addr;
    let reader = std::thread::spawn(move || {
        read_flv(
            addr,
            "/live/re.flv",
            Duration::from_secs(9),
            false,
            Duration::ZERO,
        )
    });
    let status = first.wait().unwrap();
    assert!(status.success());
    // Publisher gone; within the grace period a new one continues the same readers.
    std::thread::sleep(Duration::from_millis(800));
    let mut again = publish(&server, "/live/re.flv", 3);
    let r = reader.join().unwrap();
    let _ = again.wait();
    assert_monotonic_and_starts_with_keyframe(&r.tags, "reader across republish");
    let video: Vec<&Tag> = r
        .tags
        .iter()
        .filter(|t| t.kind == UnitKind::Video && !t.config)
        .collect();
    let span = video.last().unwrap().dts_ms - video.first().unwrap().dts_ms;
    assert!(
        span >= 4000,
        "the reader saw only {span} ms: it did not continue after the republish"
    );
    let configs = r
        .tags
        .iter()
        .filter(|t| t.kind == UnitKind::Video && t.config)
        .count();
    assert!(configs >= 2, "new sequence headers after the republish");
    // After the grace period the stream ends and readers get a clean end.
    let late = read_flv(
        server.addr,
        "/live/re.flv",
        Duration::from_secs(8),
        false,
        Duration::ZERO,
    );
    assert!(
        late.status == 404 || late.ended_cleanly,
        "reader after the end: status {} ended {}",
        late.status,
        late.ended_cleanly
    );
}

#[test]
fn bad_publishes_are_refused_cleanly_and_missing_streams_are_404() {
    let server = Server::start("live-bad", "");
    assert_eq!(server.get("/live/none.flv", &[]).status, 404);
    // Garbage, a lying tag size, and a truncated body.
    let garbage = pattern(5000, 3);
    let mut lying = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    lying.extend_from_slice(&[
        9, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0x17, 0, 0, 0, 0, 0, 0, 0, 99,
    ]);
    let mut truncated = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    truncated.extend_from_slice(&[9, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0, 0x17, 0]);
    for (name, body) in [
        ("garbage", garbage),
        ("lying", lying),
        ("truncated", truncated),
    ] {
        let req = format!(
            "POST /live/{name}.flv HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut s = server.connect();
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        let r = read_response(&mut s, false).unwrap();
        assert_eq!(r.status, 400, "{name}");
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            text.contains("FLV"),
            "{name}: the reason names the problem: {text}"
        );
    }
    assert!(
        poll_until(in_ms(5000), || server
            .stderr()
            .contains("publish ended with an error")),
        "{}",
        server.stderr()
    );
    assert_eq!(server.get("/healthz", &[]).status, 200);
    // A publish without a body length is refused.
    let r = server.raw(b"POST /live/x.flv HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 411);
}

#[test]
fn hevc_in_enhanced_flv_passes_through_byte_exact() {
    let server = Server::start("live-hevc", "[live]\npublisher_grace_ms = 3000\n");
    let (seq_start, frames) = common::flv::enhanced_hevc(15, 300);
    let mut body = Vec::new();
    uringcast::proto::flv::write_file_header(false, true, &mut body);
    uringcast::proto::flv::write_tag(9, 0, &seq_start, &mut body);
    for (n, f) in frames.iter().enumerate() {
        uringcast::proto::flv::write_tag(9, n as u32 * 40, f, &mut body);
    }
    let mut s = server.connect();
    s.write_all(
        format!(
            "PUT /live/hevc.flv HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&body).unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().status, 200);
    let api = String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap();
    assert!(api.contains("\"video_codec\":\"hevc\""), "{api}");
    // Within the grace period a reader gets the sequence start, then the GOP cache (frames 10..15).
    let r = read_flv(
        server.addr,
        "/live/hevc.flv",
        Duration::from_secs(6),
        false,
        Duration::ZERO,
    );
    assert!(
        r.ended_cleanly,
        "the stream ends cleanly after the grace period"
    );
    let video: Vec<&Tag> = r
        .tags
        .iter()
        .filter(|t| t.kind == UnitKind::Video)
        .collect();
    assert!(
        video[0].config && video[0].sum == checksum(&seq_start),
        "sequence start first, byte-exact"
    );
    let got: Vec<u64> = video[1..].iter().map(|t| t.sum).collect();
    let want: Vec<u64> = frames[10..].iter().map(|f| checksum(f)).collect();
    assert_eq!(got, want, "the GOP cache, byte-exact");
    assert!(video[1].keyframe);
}

#[test]
fn sigterm_with_live_readers_and_a_publisher_exits_promptly_and_cleanly() {
    let mut server = Server::start("live-term", "");
    let mut publisher = publish(&server, "/live/term.flv", 20);
    wait_for_stream(&server, "term");
    // Three parsing readers with media flowing when the signal arrives.
    let addr = server.addr;
    let readers: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let started = Instant::now();
                let r = read_flv(
                    addr,
                    "/live/term.flv",
                    Duration::from_secs(8),
                    false,
                    Duration::ZERO,
                );
                (started, r)
            })
        })
        .collect();
    assert!(
        poll_until(in_ms(5000), || server
            .metric_sum("uringcast_stream_readers", &["live/term"])
            == 3.0),
        "the readers never attached"
    );
    // Live media (not just the GOP cache sent on attach) is flowing when the signal comes.
    let bytes_out = || server.metric_sum("uringcast_stream_bytes_out_total", &["live/term"]);
    let attached = bytes_out();
    assert!(
        poll_until(in_ms(5000), || bytes_out() > attached),
        "no media flowed to the readers"
    );
    let signalled = Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        signalled.elapsed()
    );
    for handle in readers {
        let (started, r) = handle.join().unwrap();
        assert_eq!(r.status, 200);
        let before_signal = signalled - started;
        assert_monotonic_and_starts_with_keyframe(&r.tags, "reader at shutdown");
        // The end: the server closes the connection (EOF, no reset, no hang) right after the
        // signal, on a tag boundary, so a player keeps every frame it was sent.
        assert_eq!(r.error, None, "the connection was reset, not closed");
        // The body ends properly: the last (zero-length) chunk, so a player can tell a
        // finished stream from a dropped connection.
        assert!(
            r.ended_cleanly,
            "the body was not ended with its last chunk (closed: {})",
            r.closed
        );
        let ended_after = r.ended_at.unwrap().saturating_sub(before_signal);
        assert!(
            ended_after < Duration::from_secs(2),
            "the reader's connection ended {ended_after:?} after the signal"
        );
        assert!(r.whole_tags, "the last tag was torn off mid-tag");
    }
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn readers_that_come_and_go_never_leave_later_readers_unwoken() {
    // Regression: a wake-up that reached a worker after its last reader of a stream had left
    // used to leave the worker's "wake pending" bit set, so that worker's later readers were
    // only pumped by their own send completions and stalled once they caught up.
    let server = Server::start("live-churn", "");
    let mut publisher = publish(&server, "/live/churn.flv", 20);
    wait_for_stream(&server, "churn");
    for _ in 0..200 {
        let mut s = server.connect();
        s.write_all(b"GET /live/churn.flv HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
        std::thread::sleep(Duration::from_millis(5));
    }
    let addr = server.addr;
    let readers: Vec<_> = (0..6)
        .map(|_| {
            std::thread::spawn(move || {
                read_flv(
                    addr,
                    "/live/churn.flv",
                    Duration::from_secs(5),
                    false,
                    Duration::ZERO,
                )
            })
        })
        .collect();
    for handle in readers {
        let r = handle.join().unwrap();
        let video: Vec<&Tag> = r
            .tags
            .iter()
            .filter(|t| t.kind == UnitKind::Video && !t.config)
            .collect();
        let last = video.last().expect("video");
        // Media keeps arriving until the end of the read window, not just the GOP burst.
        assert!(
            last.at > Duration::from_millis(4000),
            "reader stalled after {:?}",
            last.at
        );
    }
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn stalled_publisher_times_out_and_oversized_gop_is_refused_with_a_clear_reason() {
    let server = Server::start(
        "live-limits",
        "[live]\npublish_timeout_ms = 500\npublisher_grace_ms = 0\nring_bytes = 65536\nring_bytes_hard_max = 65536\n[metrics]\nstream_labels = false\n",
    );
    // A publisher that sends a header and one tag, then nothing: dropped after the timeout.
    let mut s = server.connect();
    let mut body = Vec::new();
    uringcast::proto::flv::write_file_header(false, true, &mut body);
    uringcast::proto::flv::write_tag(9, 0, &[0x17, 0, 0, 0, 0, 1, 2, 3], &mut body);
    s.write_all(
        format!(
            "POST /live/stall.flv HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len() + 1000
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&body).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(3),
        "dropped after {waited:?}"
    );
    server.wait_metric(
        "uringcast_deadline_expired_total",
        &["deadline=\"idle\""],
        |v| v >= 1.0,
    );
    // Without stream labels the per-stream series are single unlabelled sums.
    let metrics = server.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("uringcast_stream_bytes_in_total ")),
        "{metrics}"
    );
    assert!(
        !metrics.contains("stream=\""),
        "no stream label when switched off"
    );
    // A 1 s GOP of the test clip (~100 KiB) does not fit a 64 KiB hard cap.
    let mut publisher = publish(&server, "/live/big.flv", 4);
    let _ = publisher.wait();
    assert!(
        poll_until(in_ms(5000), || server
            .stderr()
            .contains("a GOP exceeds live.ring_bytes_hard_max")),
        "{}",
        server.stderr()
    );
    assert_eq!(server.get("/healthz", &[]).status, 200);
}

#[test]
fn a_player_that_arrives_before_the_encoder_waits_for_the_stream() {
    let server = Server::start("live-wait", "[live]\nplay_wait_ms = 4000\n");
    let addr = server.addr;
    let early = std::thread::spawn(move || {
        read_flv(
            addr,
            "/live/soon.flv",
            Duration::from_secs(5),
            false,
            Duration::ZERO,
        )
    });
    std::thread::sleep(Duration::from_millis(800));
    let mut publisher = publish(&server, "/live/soon.flv", 6);
    let r = early.join().unwrap();
    assert_eq!(
        r.status, 200,
        "the early player is served once the stream is published"
    );
    assert_monotonic_and_starts_with_keyframe(&r.tags, "early player");
    assert!(
        r.tags.iter().filter(|t| t.kind == UnitKind::Video).count() > 25,
        "media keeps coming"
    );
    // A stream that never comes: 404 after the wait, not before.
    let started = Instant::now();
    let r = server.get("/live/never.flv", &[]);
    assert_eq!(r.status, 404);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(3800) && waited < Duration::from_secs(6),
        "404 after {waited:?}"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
}

/// A synthetic H.264-in-FLV publish: `tags` video tags of `tag_bytes` each, 40 ms apart, a
/// keyframe every 25 (the body is not real H.264; the relay does not decode it).
fn synthetic_flv(tags: u32, tag_bytes: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(tags as usize * (tag_bytes + 20) + 64);
    uringcast::proto::flv::write_file_header(false, true, &mut body);
    uringcast::proto::flv::write_tag(9, 0, &[0x17, 0, 0, 0, 0, 1, 2, 3], &mut body);
    let mut frame = pattern(tag_bytes, 9);
    for n in 0..tags {
        frame[0] = if n % 25 == 0 { 0x17 } else { 0x27 };
        frame[1] = 1;
        uringcast::proto::flv::write_tag(9, n * 40, &frame, &mut body);
    }
    body
}

/// glibc keeps freed memory in its arenas; with `runtime.malloc_trim_interval_ms` the server
/// hands it back (kernel-notes/memory.md). Without the trim this server stays at its peak.
#[cfg(target_env = "gnu")]
#[test]
fn memory_goes_back_to_the_kernel_after_a_burst() {
    // One worker, so the burst and a long-lived stream allocate from the same glibc arena
    // (their entries interleave, as on a busy box); no grace, so the burst's stream ends as
    // soon as its publish does; a ring big enough to hold the whole burst.
    let server = Server::start(
        "live-memory",
        "workers = 1\n[live]\npublisher_grace_ms = 0\nring_bytes = 50331648\nring_bytes_hard_max = 67108864\n[runtime]\nmalloc_trim_interval_ms = 200\n",
    );
    let mut keep = publish(&server, "/live/keep.flv", 30);
    wait_for_stream(&server, "keep");
    let idle_kb = server.rss_kb();
    // 48 MB of media in one publish, as fast as loopback takes it.
    let body = synthetic_flv(800, 60_000);
    let mut s = server.connect();
    s.write_all(
        format!(
            "PUT /live/burst.flv HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    // All but the end of the last tag: the publish is still open, so its ring is held.
    let (most, rest) = body.split_at(body.len() - 1000);
    s.write_all(most).unwrap();
    let mut peak_kb = 0;
    assert!(
        poll_until(in_ms(5000), || {
            peak_kb = server.rss_kb();
            peak_kb > idle_kb + 24_000
        }),
        "the burst was not held in memory: {idle_kb} KiB idle, {peak_kb} KiB with it"
    );
    s.write_all(rest).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    // The burst's stream ends and its ring is freed; then most of it leaves the process.
    let bound_kb = idle_kb + (peak_kb - idle_kb) / 4;
    let mut rss_kb = peak_kb;
    assert!(
        poll_until(in_ms(5000), || {
            rss_kb = server.rss_kb();
            rss_kb < bound_kb
        }),
        "RSS stayed at {rss_kb} KiB after the burst (idle {idle_kb}, peak {peak_kb})"
    );
    let _ = keep.kill();
    let _ = keep.wait();
}
