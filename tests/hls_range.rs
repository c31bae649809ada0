//! The HLS gaps an HLS origin's operator meets: byte ranges on live segments and pushed media
//! objects (curl as the client), HLS requests counted in `/metrics` and `/api/v1/streams`
//! by exactly the requests made, and segment memory in the live memory budget while it is
//! held, given back when the ended stream's playlist is dropped.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::media::{clip_30s, media_playlist, wait_for_stream};
use common::{Server, metric_sum, pattern, poll_until, run_bounded_output};

fn publish(server: &Server, name: &str, seconds: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(clip_30s())
        .args(["-t", &seconds.to_string(), "-c", "copy"])
        .args(["-f", "flv", "-method", "POST"])
        .arg(server.url(&format!("/live/{name}.flv")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg")
}

/// What curl got: the status, the headers (names lowercased) and the body.
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// GET `url` with curl and the given request headers (10 s at most).
fn curl(url: &str, headers: &[&str], dir: &Path) -> Got {
    let body_file = dir.join("curl-body");
    let _ = std::fs::remove_file(&body_file);
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "-D", "-", "-o"])
        .arg(&body_file);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg(url);
    let (ok, out, err) = run_bounded_output(&mut cmd, Duration::from_secs(15));
    assert_eq!(ok, Some(true), "curl {url} {headers:?}: {err}");
    let mut lines = out.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("curl {url}: no status in {out:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = std::fs::read(&body_file).unwrap_or_default();
    Got {
        status,
        headers,
        body,
    }
}

/// Ranges of a media object of `full` bytes at `url` with `etag`: 206 with the exact slice
/// for `a-b`, `a-` and `-n`; 416 beyond the end; If-Range with another tag → 200 whole, with
/// the object's own tag → 206; several ranges → 200 whole.
fn check_ranges(url: &str, full: &[u8], etag: &str, content_type: &str, dir: &Path) {
    let len = full.len();
    assert!(len > 600, "{url}: {len} bytes");
    for (range, start, end) in [
        ("bytes=100-299", 100, 299),
        ("bytes=0-0", 0, 0),
        (&format!("bytes={}-", len - 188) as &str, len - 188, len - 1),
        ("bytes=-500", len - 500, len - 1),
        (&format!("bytes=300-{}", len * 2), 300, len - 1),
    ] {
        let r = curl(url, &[&format!("Range: {range}")], dir);
        assert_eq!(r.status, 206, "{url} {range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str()),
            "{url} {range}"
        );
        assert_eq!(
            r.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
        assert_eq!(r.header("content-type"), Some(content_type));
        assert_eq!(r.header("etag"), Some(etag));
        assert!(r.body == full[start..=end], "{url} {range}: wrong bytes");
    }
    for range in [format!("bytes={len}-"), "bytes=-0".to_string()] {
        let r = curl(url, &[&format!("Range: {range}")], dir);
        assert_eq!(r.status, 416, "{url} {range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{len}").as_str())
        );
        assert!(r.body.is_empty());
        assert!(
            r.header("cache-control").is_none(),
            "a 416 is not to be cached"
        );
    }
    // If-Range: a different version → the whole object; this one → the range.
    let r = curl(
        url,
        &["Range: bytes=0-99", "If-Range: \"some-other-version\""],
        dir,
    );
    assert_eq!(r.status, 200, "{url}: If-Range mismatch");
    assert!(r.body == full);
    assert!(r.header("content-range").is_none());
    let r = curl(
        url,
        &["Range: bytes=0-99", &format!("If-Range: {etag}")],
        dir,
    );
    assert_eq!(r.status, 206, "{url}: If-Range match");
    assert!(r.body == full[..100]);
    // Several ranges: answered whole (no multipart).
    let r = curl(url, &["Range: bytes=0-9,20-29"], dir);
    assert_eq!(r.status, 200, "{url}: multi-range");
    assert!(r.body == full);
}

#[test]
fn live_segments_answer_ranges_and_every_hls_request_is_counted() {
    let server = Server::start(
        "hls-range",
        "[hls]\nsegment_target_ms = 1000\nwindow_segments = 6\nretain_segments = 2\n",
    );
    let mut publisher = publish(&server, "x", 30);
    wait_for_stream(&server, "x");
    let playlist = server.get("/live/x/index.m3u8", &[]);
    assert_eq!(playlist.status, 200, "{}", server.stderr());
    let p = media_playlist(&playlist.body);
    // The newest segment: it stays fetchable longest (about 8 s) while the test runs.
    let newest = p.segments.last().expect("a segment");
    let uri = format!("/live/x/{}", newest.uri);
    let url = server.url(&uri);

    // The whole segment says ranges are welcome; its bytes are the reference.
    let whole = curl(&url, &[], &server.dir);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("content-type"), Some("video/mp2t"));
    let etag = whole.header("etag").expect("etag").to_string();
    let modified = whole
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    assert_eq!(whole.body.len() % 188, 0);
    check_ranges(&url, &whole.body, &etag, "video/mp2t", &server.dir);
    // If-Range with the Last-Modified date → the range; another date → whole.
    let r = curl(
        &url,
        &["Range: bytes=188-375", &format!("If-Range: {modified}")],
        &server.dir,
    );
    assert_eq!(r.status, 206);
    assert!(r.body == whole.body[188..376]);
    let r = curl(
        &url,
        &[
            "Range: bytes=188-375",
            "If-Range: Thu, 01 Jan 1970 00:00:01 GMT",
        ],
        &server.dir,
    );
    assert_eq!(r.status, 200);
    // HEAD ignores Range (RFC 9110 §14.2).
    let head = server.request("HEAD", &uri, &[("Range", "bytes=0-9")]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(whole.body.len().to_string().as_str())
    );

    // Counting: after a flush barrier everything above is on /metrics; then a known set of
    // requests moves each counter by exactly its share.
    let before = server.flush_barrier();
    let hls = |kind: &str, status: &str, text: &str| {
        metric_sum(
            text,
            "uringcast_hls_requests_total",
            &[&format!("kind=\"{kind}\""), &format!("status=\"{status}\"")],
        )
    };
    let stream_requests = |kind: &str, text: &str| {
        metric_sum(
            text,
            "uringcast_stream_hls_requests_total",
            &["stream=\"live/x\"", &format!("kind=\"{kind}\"")],
        )
    };
    let stream_bytes = |text: &str| {
        metric_sum(
            text,
            "uringcast_stream_hls_segment_bytes_total",
            &["stream=\"live/x\""],
        )
    };
    let len = whole.body.len();
    for _ in 0..2 {
        assert_eq!(server.get("/live/x/index.m3u8", &[]).status, 200);
    }
    assert_eq!(server.get(&uri, &[]).status, 200);
    assert_eq!(server.request("HEAD", &uri, &[]).status, 200);
    assert_eq!(server.get(&uri, &[("Range", "bytes=0-99")]).status, 206);
    assert_eq!(server.get(&uri, &[("Range", "bytes=-50")]).status, 206);
    let beyond = format!("bytes={len}-");
    assert_eq!(server.get(&uri, &[("Range", &beyond)]).status, 416);
    assert_eq!(server.get(&uri, &[("If-None-Match", &etag)]).status, 304);
    assert_eq!(server.get("/live/x/nope.ts", &[]).status, 404);
    for (kind, status, added) in [
        ("playlist", "200", 2.0),
        ("segment", "200", 2.0),
        ("segment", "206", 2.0),
        ("segment", "416", 1.0),
        ("segment", "304", 1.0),
        ("segment", "404", 1.0),
    ] {
        let expected = hls(kind, status, &before) + added;
        server.wait_metric(
            "uringcast_hls_requests_total",
            &[&format!("kind=\"{kind}\""), &format!("status=\"{status}\"")],
            |v| v == expected,
        );
    }
    let expected_segments = stream_requests("segment", &before) + 7.0;
    server.wait_metric(
        "uringcast_stream_hls_requests_total",
        &["stream=\"live/x\"", "kind=\"segment\""],
        |v| v == expected_segments,
    );
    let expected_playlists = stream_requests("playlist", &before) + 2.0;
    server.wait_metric(
        "uringcast_stream_hls_requests_total",
        &["stream=\"live/x\"", "kind=\"playlist\""],
        |v| v == expected_playlists,
    );
    // One whole GET and two ranges of body; HEAD, 416, 304 and 404 carry none.
    let expected_bytes = stream_bytes(&before) + (len + 100 + 50) as f64;
    server.wait_metric(
        "uringcast_stream_hls_segment_bytes_total",
        &["stream=\"live/x\""],
        |v| v == expected_bytes,
    );
    let segment_bytes_worker = metric_sum(
        &server.metrics(),
        "uringcast_hls_bytes_total",
        &["kind=\"segment\""],
    );
    assert_eq!(
        segment_bytes_worker
            - metric_sum(&before, "uringcast_hls_bytes_total", &["kind=\"segment\""]),
        (len + 150) as f64
    );
    // The same figures in the streams JSON, under the same names.
    let json: serde_json::Value =
        serde_json::from_slice(&server.admin_get("/api/v1/streams", &[]).body).unwrap();
    let stream = json["streams"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "x"))
        .expect("stream x");
    assert_eq!(
        stream["hls_requests"]["segment"].as_f64(),
        Some(expected_segments)
    );
    assert_eq!(
        stream["hls_requests"]["playlist"].as_f64(),
        Some(expected_playlists)
    );
    assert_eq!(stream["hls_segment_bytes"].as_f64(), Some(expected_bytes));
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn pushed_media_objects_answer_ranges_and_playlists_do_not() {
    let server = Server::start("hls-range-push", "");
    let object = pattern(5000, 7);
    let file = server.dir.join("seg.m4s");
    std::fs::write(&file, &object).unwrap();
    let url = server.url("/live/p/seg1.m4s");
    let mut put = Command::new("curl");
    put.args([
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ])
    .args(["-X", "PUT", "--data-binary"])
    .arg(format!("@{}", file.display()))
    .arg(&url);
    let (ok, out, err) = run_bounded_output(&mut put, Duration::from_secs(15));
    assert_eq!(ok, Some(true), "{err}");
    assert_eq!(out.trim(), "201");
    let whole = curl(&url, &[], &server.dir);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert!(whole.body == object);
    let etag = whole.header("etag").expect("etag").to_string();
    let content_type = whole.header("content-type").expect("type").to_string();
    check_ranges(&url, &object, &etag, &content_type, &server.dir);

    // A pushed playlist changes: Range is not honoured on it.
    let playlist = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg1.m4s\n";
    std::fs::write(&file, playlist).unwrap();
    let mut put = Command::new("curl");
    put.args([
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ])
    .args(["-X", "PUT", "--data-binary"])
    .arg(format!("@{}", file.display()))
    .arg(server.url("/live/p/index.m3u8"));
    let (ok, out, _) = run_bounded_output(&mut put, Duration::from_secs(15));
    assert_eq!((ok, out.trim()), (Some(true), "201"));
    let r = curl(
        &server.url("/live/p/index.m3u8"),
        &["Range: bytes=0-9"],
        &server.dir,
    );
    assert_eq!(r.status, 200);
    assert!(r.body == playlist);
    // Counted by kind and status, whatever the source: every HLS GET above.
    for (kind, status, count) in [
        ("segment", "200", 3.0),
        ("segment", "206", 6.0),
        ("segment", "416", 2.0),
        ("playlist", "200", 1.0),
    ] {
        server.wait_metric(
            "uringcast_hls_requests_total",
            &[&format!("kind=\"{kind}\""), &format!("status=\"{status}\"")],
            |v| v == count,
        );
    }
}

#[test]
fn segments_count_in_the_live_memory_until_the_ended_playlist_is_dropped() {
    let keep_ms = 4000;
    let server = Server::start(
        "hls-memory",
        &format!(
            "[hls]\nsegment_target_ms = 1000\nwindow_segments = 3\nretain_segments = 1\n\
             ended_keep_ms = {keep_ms}\n[live]\npublisher_grace_ms = 300\n"
        ),
    );
    let memory = |text: &str| metric_sum(text, "uringcast_live_memory_bytes", &[]);
    let mut publisher = publish(&server, "m", 7);
    wait_for_stream(&server, "m");
    assert_eq!(server.get("/live/m/index.m3u8", &[]).status, 200);
    // While players read: the budget holds the ring and, on top, the segments.
    std::thread::sleep(Duration::from_millis(2500));
    let p = media_playlist(&server.get("/live/m/index.m3u8", &[]).body);
    let listed: usize = p
        .segments
        .iter()
        .map(|s| server.get(&format!("/live/m/{}", s.uri), &[]).body.len())
        .sum();
    let text = server.metrics();
    let ring = metric_sum(&text, "uringcast_stream_ring_bytes", &["stream=\"live/m\""]);
    assert!(listed > 0 && ring > 0.0);
    assert!(
        memory(&text) >= ring + listed as f64,
        "live memory {} < ring {ring} + listed segments {listed}",
        memory(&text)
    );

    // The end: the ring is given back with the stream; the final playlist's segments (the
    // listed ones and the one retained) are all that is held, until ended_keep_ms passes.
    let _ = publisher.wait();
    let ended = poll_until(Instant::now() + Duration::from_secs(10), || {
        let r = server.get("/live/m/index.m3u8", &[]);
        r.status == 200 && media_playlist(&r.body).end_list
    });
    assert!(ended, "no EXT-X-ENDLIST");
    let p = media_playlist(&server.get("/live/m/index.m3u8", &[]).body);
    let mut held = 0;
    for s in &p.segments {
        let r = server.get(&format!("/live/m/{}", s.uri), &[]);
        assert_eq!(r.status, 200);
        held += r.body.len();
    }
    // The retained segment is the one before the first listed (names end in the sequence).
    let first = &p.segments[0].uri;
    let stem = first.trim_end_matches(".ts");
    let digits = stem.len() - stem.chars().rev().take_while(char::is_ascii_digit).count();
    let seq: u64 = stem[digits..].parse().expect("sequence in the name");
    if seq > 0 {
        let retained = format!("/live/m/{}{}.ts", &stem[..digits], seq - 1);
        let r = server.get(&retained, &[]);
        assert_eq!(r.status, 200, "{retained} is retained");
        held += r.body.len();
    }
    let exact = server.wait_metric("uringcast_live_memory_bytes", &[], |v| v == held as f64);
    assert!(exact > 0.0);
    // Once the final playlist is dropped, nothing is held.
    server.wait_metric("uringcast_live_memory_bytes", &[], |v| v == 0.0);
    assert_eq!(server.get("/live/m/index.m3u8", &[]).status, 404);
}
