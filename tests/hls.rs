//! Live HLS against real peers: every way a stream comes in (HTTP-FLV, HTTP-TS, RTMP) plays as
//! HLS; the playlists parse with m3u8-rs, their window slides, every listed segment fetches
//! with the headers a CDN needs and lasts what EXTINF says; ffmpeg decodes the playlist with
//! no error line. HLS pushed by ffmpeg with PUT plays from the same URLs.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::flv::ffmpeg_decode;
use common::media::{av_clip, clip_30s, media_playlist, wait_for_stream};
use common::{Response, Server, poll_until};

/// Segments of about a second (the clip's GOP), a window of four, one more kept.
const HLS_TOML: &str = "[hls]\nsegment_target_ms = 1000\nwindow_segments = 4\nretain_segments = 1\n\
     [live]\npublisher_grace_ms = 3000\n";

/// How a test publishes.
#[derive(Clone, Copy, Debug)]
enum Input {
    HttpFlv,
    HttpTs,
    Rtmp,
}

fn publish(server: &Server, input: Input, name: &str, clip: &PathBuf, seconds: f64) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-re", "-i"]).arg(clip).args([
        "-t",
        &seconds.to_string(),
        "-c",
        "copy",
    ]);
    match input {
        Input::HttpFlv => cmd
            .args(["-f", "flv", "-method", "POST"])
            .arg(server.url(&format!("/live/{name}.flv"))),
        Input::HttpTs => cmd
            .args(["-f", "mpegts", "-method", "POST"])
            .arg(server.url(&format!("/live/{name}.ts"))),
        Input::Rtmp => cmd
            .args(["-f", "flv"])
            .arg(server.rtmp_url(&format!("/live/{name}"))),
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg")
}

/// Video frames in a TS segment, as ffprobe counts them.
fn video_frames(file: &std::path::Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_packets,codec_name,width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default();
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(
        fields.first().copied(),
        Some("h264"),
        "{}: {text}",
        file.display()
    );
    assert_eq!(&fields[1..3], &["320", "240"], "{}", file.display());
    fields[3].parse().unwrap_or(0)
}

/// Check one segment: headers for caches and players, decodable, and as long as EXTINF says
/// (within a frame).
fn check_segment(server: &Server, path: &str, extinf_s: f32, dir: &std::path::Path) {
    let r = server.get(path, &[]);
    assert_eq!(r.status, 200, "{path}");
    assert_eq!(r.header("content-type"), Some("video/mp2t"), "{path}");
    let cache = r.header("cache-control").unwrap_or_default();
    assert!(cache.contains("immutable"), "{path}: {cache}");
    let etag = r.header("etag").expect("etag").to_string();
    assert!(r.header("last-modified").is_some(), "{path}");
    assert!(r.header("access-control-allow-origin").is_some(), "{path}");
    assert_eq!(r.body.len() % 188, 0, "{path}: whole packets");
    assert_eq!(r.body[0], 0x47);
    // A cache revalidating gets 304.
    let again = server.get(path, &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304, "{path}");
    let file = dir.join(path.rsplit('/').next().unwrap());
    std::fs::write(&file, &r.body).unwrap();
    let frames = video_frames(&file);
    let codecs = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .expect("ffprobe");
    let codecs = String::from_utf8_lossy(&codecs.stdout).to_string();
    assert!(
        codecs.lines().any(|l| l == "aac"),
        "{path}: streams {codecs:?}"
    );
    let media_ms = frames * 40;
    let extinf_ms = (f64::from(extinf_s) * 1000.0).round() as u64;
    assert!(
        media_ms.abs_diff(extinf_ms) <= 40,
        "{path}: {frames} frames ({media_ms} ms) against EXTINF {extinf_s}"
    );
}

/// The whole live HLS check for one input: 30 s published, a player that asked before the
/// first segment waits for it, the playlist parses and slides, segments check out, ffmpeg
/// decodes the playlist, and the end of the stream ends the playlist.
fn live_hls_from(input: Input, name: &str) {
    let server = Server::start(&format!("hls-{name}"), HLS_TOML);
    let playlist_path = format!("/live/{name}/index.m3u8");
    let mut publisher = publish(&server, input, name, &clip_30s(), 30.0);
    wait_for_stream(&server, name);
    // The stream is live but nobody asked for HLS yet: the first player waits for the first
    // segment instead of getting a 404.
    let started = Instant::now();
    let first = server.get(&playlist_path, &[]);
    let waited = started.elapsed();
    assert_eq!(
        first.status,
        200,
        "{input:?}: the first player waited {waited:?}: {}\n{}",
        String::from_utf8_lossy(&first.body),
        server.stderr()
    );
    assert!(
        waited >= Duration::from_millis(200),
        "{input:?}: a segment was ready at once ({waited:?})"
    );
    assert_eq!(
        first.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert!(first.header("access-control-allow-origin").is_some());
    assert_eq!(first.header("cache-control"), Some("max-age=1"));
    let p = media_playlist(&first.body);
    assert!(!p.segments.is_empty() && !p.end_list);
    let target = p.target_duration;
    assert!(p.version.is_some_and(|v| v >= 3), "{input:?}: version");
    assert!(
        p.segments[0].program_date_time.is_some(),
        "{input:?}: PROGRAM-DATE-TIME"
    );

    // ffmpeg plays the live playlist while it slides.
    let url = server.url(&playlist_path);
    let decode = std::thread::spawn(move || {
        ffmpeg_decode(&url, "error", Some(8.0), Duration::from_secs(40))
    });
    let dir = server.dir.clone();
    let mut sequences = Vec::new();
    let mut checked = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(16);
    while Instant::now() < deadline {
        let r = server.get(&playlist_path, &[]);
        assert_eq!(r.status, 200);
        let p = media_playlist(&r.body);
        assert_eq!(
            p.target_duration, target,
            "{input:?}: TARGETDURATION changed"
        );
        assert!(
            p.segments.len() <= 4,
            "{input:?}: window of {}",
            p.segments.len()
        );
        for s in &p.segments {
            assert!(
                (s.duration.ceil() as u64) <= target,
                "{input:?}: EXTINF {} over TARGETDURATION {target}",
                s.duration
            );
        }
        sequences.push(p.media_sequence);
        // Every segment but the newest (a player fetches it just as well) is checked once.
        for s in &p.segments {
            let path = format!("/live/{name}/{}", s.uri);
            if checked.insert(path.clone()) {
                check_segment(&server, &path, s.duration, &dir);
            }
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    assert!(
        sequences.last() > sequences.first(),
        "{input:?}: the media sequence never advanced: {sequences:?}"
    );
    // The first playlist's first segment is long out of the window and the retained ones.
    let first_uri = format!("/live/{name}/{}", p.segments[0].uri);
    assert_eq!(
        server.get(&first_uri, &[]).status,
        404,
        "{input:?}: {first_uri} should have left the window"
    );
    let (ok, err) = decode.join().unwrap();
    assert!(
        ok && err.trim().is_empty(),
        "{input:?}: ffmpeg on HLS: {err}"
    );

    // The end: after the grace period the playlist ends with EXT-X-ENDLIST.
    let _ = publisher.kill();
    let _ = publisher.wait();
    let ended = poll_until(Instant::now() + Duration::from_secs(10), || {
        let r = server.get(&playlist_path, &[]);
        r.status == 200 && media_playlist(&r.body).end_list
    });
    assert!(ended, "{input:?}: no EXT-X-ENDLIST after the end");
}

#[test]
fn a_flv_publish_plays_as_live_hls() {
    live_hls_from(Input::HttpFlv, "f");
}

#[test]
fn an_http_ts_publish_plays_as_live_hls() {
    live_hls_from(Input::HttpTs, "t");
}

#[test]
fn an_rtmp_publish_plays_as_live_hls() {
    live_hls_from(Input::Rtmp, "r");
}

#[test]
fn a_republish_is_a_discontinuity_in_the_same_playlist() {
    let server = Server::start("hls-republish", HLS_TOML);
    let clip = av_clip();
    let mut first = publish(&server, Input::HttpFlv, "d", &clip, 5.0);
    wait_for_stream(&server, "d");
    // Ask for HLS so the stream is segmented, and wait for a first segment.
    let r = server.get("/live/d/index.m3u8", &[]);
    assert_eq!(r.status, 200);
    let _ = first.wait();
    let mut second = publish(&server, Input::HttpFlv, "d", &clip, 5.0);
    let found = poll_until(Instant::now() + Duration::from_secs(15), || {
        let r = server.get("/live/d/index.m3u8", &[]);
        r.status == 200
            && media_playlist(&r.body)
                .segments
                .iter()
                .any(|s| s.discontinuity)
    });
    let r = server.get("/live/d/index.m3u8", &[]);
    assert!(
        found,
        "no EXT-X-DISCONTINUITY after the republish:\n{}",
        String::from_utf8_lossy(&r.body)
    );
    let p = media_playlist(&r.body);
    let names: Vec<&str> = p.segments.iter().map(|s| s.uri.as_str()).collect();
    let unique: std::collections::HashSet<&&str> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "segment names repeat: {names:?}");
    let _ = second.kill();
    let _ = second.wait();
}

/// PUT an object with a raw socket; `send` bytes of a declared `len`, then close if short.
fn put_raw(server: &Server, path: &str, body: &[u8], declared: usize) -> Option<Response> {
    let mut s = server.connect();
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {declared}\r\n\r\n"
    )
    .unwrap();
    s.write_all(body).unwrap();
    if body.len() < declared {
        // Interrupted: the client goes away mid-body.
        drop(s);
        return None;
    }
    Some(common::read_response(&mut s, false).expect("response"))
}

#[test]
fn ffmpeg_pushes_hls_with_put_and_it_plays_from_the_same_urls() {
    let server = Server::start(
        "hls-push",
        "[hls]\npush_object_bytes_max = 2000000\npush_stream_bytes_max = 8000000\n",
    );
    let mut pusher = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(av_clip())
        .args(["-t", "12", "-c", "copy", "-f", "hls", "-hls_time", "2"])
        .args(["-hls_list_size", "4", "-hls_flags", "delete_segments"])
        .args(["-method", "PUT"])
        .arg(server.url("/live/p/index.m3u8"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let ok = poll_until(Instant::now() + Duration::from_secs(15), || {
        let r = server.get("/live/p/index.m3u8", &[]);
        r.status == 200 && media_playlist(&r.body).segments.len() >= 2
    });
    assert!(
        ok,
        "the pushed playlist never appeared\n{}",
        server.stderr()
    );
    let r = server.get("/live/p/index.m3u8", &[]);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    let p = media_playlist(&r.body);
    for s in &p.segments {
        let seg = server.get(&format!("/live/p/{}", s.uri), &[]);
        assert_eq!(seg.status, 200, "{}", s.uri);
        assert_eq!(seg.header("content-type"), Some("video/mp2t"));
        assert_eq!(seg.body[0], 0x47);
    }
    let (ok, err) = ffmpeg_decode(
        &server.url("/live/p/index.m3u8"),
        "error",
        Some(4.0),
        Duration::from_secs(30),
    );
    assert!(ok && err.trim().is_empty(), "ffmpeg on pushed HLS: {err}");
    let _ = pusher.wait();

    // An interrupted upload leaves the previous object in place.
    let before = server.get("/live/p/index.m3u8", &[]).body;
    assert!(put_raw(&server, "/live/p/index.m3u8", b"#EXTM3U\n#broken", 1000).is_none());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.get("/live/p/index.m3u8", &[]).body, before);
    // Too large: 413, named by its config key; nothing stored.
    let big = vec![0x47u8; 2_000_001];
    let r = put_raw(&server, "/live/p/big.ts", &big[..1000], 2_000_001);
    assert!(r.is_none());
    let mut s = server.connect();
    write!(
        s,
        "PUT /live/p/big.ts HTTP/1.1\r\nHost: t\r\nContent-Length: 2000001\r\n\r\n"
    )
    .unwrap();
    let r = common::read_response(&mut s, false).expect("response");
    assert_eq!(r.status, 413);
    assert!(String::from_utf8_lossy(&r.body).contains("hls.push_object_bytes_max"));
    assert_eq!(server.get("/live/p/big.ts", &[]).status, 404);
    // Bad names never reach the store.
    let mut s = server.connect();
    write!(
        s,
        "PUT /live/p/..%2f..%2fx.ts HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx"
    )
    .unwrap();
    let r = common::read_response(&mut s, false).expect("response");
    assert!(r.status == 400 || r.status == 404, "{}", r.status);
    // DELETE removes.
    let r = server.request("DELETE", "/live/p/index.m3u8", &[]);
    assert_eq!(r.status, 204);
    assert_eq!(server.get("/live/p/index.m3u8", &[]).status, 404);
    let mut buf = [0u8; 1];
    let _ = s.read(&mut buf);
}

#[test]
fn a_recorded_app_is_written_to_the_media_root_and_plays_as_vod_after_the_end() {
    let server = Server::start(
        "hls-record",
        "[hls]\nsegment_target_ms = 1000\nrecord_apps = [\"rec\"]\n[live]\npublisher_grace_ms = 500\n",
    );
    let mut publisher = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(clip_30s())
        .args(["-t", "6", "-c", "copy", "-f", "flv", "-method", "POST"])
        .arg(server.url("/rec/cam.flv"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg");
    let _ = publisher.wait();
    // Nobody asked for HLS: a recorded app is segmented anyway. After the grace period the
    // recording's playlist is a VOD ending in EXT-X-ENDLIST, served by /vod/.
    let rec_dir = server.dir.join("media/rec");
    let mut playlist_path = None;
    let done = poll_until(Instant::now() + Duration::from_secs(10), || {
        let Ok(entries) = std::fs::read_dir(&rec_dir) else {
            return false;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let text = std::fs::read_to_string(entry.path().join("index.m3u8")).unwrap_or_default();
            if name.starts_with("cam-") && text.ends_with("#EXT-X-ENDLIST\n") {
                playlist_path = Some(format!("/vod/rec/{name}/index.m3u8"));
                return true;
            }
        }
        false
    });
    assert!(done, "no finished recording under {}", rec_dir.display());
    let path = playlist_path.unwrap();
    let r = server.get(&path, &[]);
    assert_eq!(r.status, 200, "{path}");
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    let p = media_playlist(&r.body);
    assert!(p.end_list && p.segments.len() >= 4, "{p:?}");
    let total: f32 = p.segments.iter().map(|s| s.duration).sum();
    assert!((5.0..=7.0).contains(&total), "{total} s recorded of 6");
    // No temporary file is left, and ffmpeg decodes the recording through /vod/.
    let dir = server
        .dir
        .join("media")
        .join(path.trim_start_matches("/vod/"))
        .with_file_name("");
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        assert!(!entry.file_name().to_string_lossy().ends_with(".tmp"));
    }
    let (ok, err) = ffmpeg_decode(&server.url(&path), "error", None, Duration::from_secs(30));
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg on the recording: {err}"
    );
}
