//! On-demand files over HTTP/1.1 through the real binary: bytes, ranges, validators, limits,
//! hostile clients, and real players (ffprobe/ffmpeg).

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const SEND_PATHS: [&str; 3] = ["splice", "sendfile", "auto"];

fn vod_server(send_path: &str) -> (Server, Vec<u8>) {
    let data = pattern(3 * 1024 * 1024 + 12345, 7);
    let copy = data.clone();
    let server = Server::start_with(
        "vod",
        &format!("[vod]\nsend_path = \"{send_path}\"\npipe_bytes = 262144\n"),
        move |media| {
            std::fs::write(media.join("big.bin"), &copy).unwrap();
            std::fs::write(media.join("small.txt"), b"hello world\n").unwrap();
            std::fs::write(media.join("empty.bin"), b"").unwrap();
            std::fs::create_dir_all(media.join("sub dir")).unwrap();
            std::fs::write(media.join("sub dir").join("a.m3u8"), b"#EXTM3U\n").unwrap();
        },
    );
    (server, data)
}

#[test]
fn full_and_ranged_bodies_are_byte_exact_on_every_send_path() {
    for send_path in SEND_PATHS {
        let (server, data) = vod_server(send_path);
        let size = data.len();
        let r = server.get("/vod/big.bin", &[]);
        assert_eq!(r.status, 200, "{send_path}");
        assert_eq!(r.body.len(), size);
        assert!(r.body == data, "full body differs ({send_path})");
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert!(r.header("etag").unwrap().starts_with('"'));
        assert!(r.header("last-modified").is_some());
        assert!(r.header("date").is_some());
        assert!(r.header("server").unwrap().starts_with("uringcast/"));
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "CORS default on media"
        );

        let cases: [(&str, usize, usize); 5] = [
            ("bytes=0-0", 0, 0),
            ("bytes=100-299999", 100, 299_999),
            ("bytes=1000000-", 1_000_000, size - 1),
            ("bytes=-5000", size - 5000, size - 1),
            ("bytes=5-99999999", 5, size - 1),
        ];
        for (range, a, b) in cases {
            let r = server.get("/vod/big.bin", &[("Range", range)]);
            assert_eq!(r.status, 206, "{range} ({send_path})");
            assert_eq!(
                r.header("content-range").unwrap(),
                format!("bytes {a}-{b}/{size}"),
                "{range}"
            );
            assert_eq!(r.header("content-length").unwrap(), (b - a + 1).to_string());
            assert!(r.body == data[a..=b], "{range} body differs ({send_path})");
        }
        for range in ["bytes=999999999-", "bytes=-0"] {
            let r = server.get("/vod/big.bin", &[("Range", range)]);
            assert_eq!(r.status, 416, "{range}");
            assert_eq!(
                r.header("content-range").unwrap(),
                format!("bytes */{size}")
            );
        }
        // Several ranges: answered with the whole file.
        let r = server.get("/vod/big.bin", &[("Range", "bytes=0-1,5-6")]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), size);
        // Ranges through curl too (a real client).
        let out = Command::new("curl")
            .args(["-s", "-r", "10-19", &server.url("/vod/big.bin")])
            .output()
            .unwrap();
        assert_eq!(out.stdout, &data[10..20]);
        let r = server.get("/vod/empty.bin", &[]);
        assert_eq!((r.status, r.body.len()), (200, 0));
        let r = server.get("/vod/sub%20dir/a.m3u8", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/vnd.apple.mpegurl")
        );
        assert_eq!(r.body, b"#EXTM3U\n");
    }
}

#[test]
fn conditionals_and_head() {
    let (server, data) = vod_server("splice");
    let r = server.get("/vod/small.txt", &[]);
    let etag = r.header("etag").unwrap().to_string();
    let last_modified = r.header("last-modified").unwrap().to_string();
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));

    let r = server.get("/vod/small.txt", &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = server.get("/vod/small.txt", &[("If-None-Match", "\"other\"")]);
    assert_eq!(r.status, 200);
    let r = server.get("/vod/small.txt", &[("If-Modified-Since", &last_modified)]);
    assert_eq!(r.status, 304);
    let r = server.get(
        "/vod/small.txt",
        &[("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    );
    assert_eq!(r.status, 200);
    // If-Range: matching validator honours the range, stale one gives the full body.
    let r = server.get(
        "/vod/big.bin",
        &[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")],
    );
    assert_eq!((r.status, r.body.len()), (200, data.len()));
    let big_etag = server
        .get("/vod/big.bin", &[("Range", "bytes=0-0")])
        .header("etag")
        .unwrap()
        .to_string();
    let r = server.get(
        "/vod/big.bin",
        &[("Range", "bytes=0-9"), ("If-Range", &big_etag)],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &data[..10]));

    // HEAD: the same headers, no body (the next response on the connection proves it).
    let mut s = server.connect();
    s.write_all(b"HEAD /vod/big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /vod/small.txt HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let head = read_response(&mut s, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length").unwrap(),
        data.len().to_string()
    );
    let next = read_response(&mut s, false).unwrap();
    assert_eq!(next.body, b"hello world\n");
}

#[test]
fn keep_alive_thousand_requests_and_pipelining_in_order() {
    let (server, data) = vod_server("splice");
    let mut s = server.connect();
    for i in 0..1000usize {
        let a = (i * 997) % (data.len() - 100);
        let req = format!(
            "GET /vod/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes={a}-{}\r\n\r\n",
            a + 99
        );
        s.write_all(req.as_bytes()).unwrap();
        let r = read_response(&mut s, false).unwrap();
        assert_eq!(r.status, 206);
        assert!(r.body == data[a..a + 100], "request {i}");
    }
    // Pipelined: three requests in one write, answers in order.
    let mut s = server.connect();
    s.write_all(
        b"GET /vod/small.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /vod/big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().body, b"hello world\n");
    assert_eq!(read_response(&mut s, false).unwrap().body, &data[..4]);
    let last = read_response(&mut s, false).unwrap();
    assert!(String::from_utf8_lossy(&last.body).contains("\"status\":\"ok\""));
    assert_eq!(last.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "closed after Connection: close"
    );
    // HTTP/1.0 closes by default.
    let mut s = server.connect();
    s.write_all(b"GET /vod/small.txt HTTP/1.0\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(all.ends_with(b"hello world\n"));
}

#[test]
fn protocol_errors_get_clear_statuses_and_others_keep_working() {
    let (server, _) = vod_server("splice");
    let big_header = format!(
        "GET /vod/small.txt HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(server.raw(big_header.as_bytes()).status, 431);
    let long_uri = format!("GET /vod/{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(5000));
    assert_eq!(server.raw(long_uri.as_bytes()).status, 414);
    assert_eq!(server.raw(b"GARBAGE\r\n\r\n").status, 400);
    assert_eq!(
        server
            .raw(b"GET /vod/small.txt HTTP/9.9\r\nHost: t\r\n\r\n")
            .status
            / 100,
        5
    );
    let r = server.raw(b"BREW /vod/small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 501);
    let r = server.raw(b"DELETE /vod/small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    let r = server.raw(b"GET /vod/small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.status, 400);
    let r = server.raw(b"GET /vod/small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(r.status, 400);
    assert_eq!(server.get("/nope", &[]).status, 404);
    assert_eq!(server.get("/vod/missing.mp4", &[]).status, 404);
    assert_eq!(server.get("/vod/sub%20dir", &[]).status, 403);
    // And the server is fine.
    assert_eq!(server.get("/vod/small.txt", &[]).body, b"hello world\n");
    // Workers hand their counters to the recorder once per tick (100 ms).
    server.wait_metric("uringcast_http_requests_total", &["class=\"4xx\""], |v| {
        v >= 9.0
    });
}

#[test]
fn traversal_and_symlink_escapes_are_refused() {
    let outside = scratch("outside");
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    let outside_file = outside.join("secret.txt");
    let server = Server::start_with("traversal", "", |media| {
        std::fs::write(media.join("ok.txt"), b"ok").unwrap();
        std::os::unix::fs::symlink(&outside_file, media.join("escape.txt")).unwrap();
        // Relative: RESOLVE_BENEATH refuses absolute symlinks even when they point inside.
        std::os::unix::fs::symlink("ok.txt", media.join("inside.txt")).unwrap();
    });
    for path in [
        "/vod/../secret.txt",
        "/vod/%2e%2e/secret.txt",
        "/vod/.%2e/secret.txt",
        "/vod/%2E%2E%2Fsecret.txt",
        "/vod/..%2fsecret.txt",
        "/vod/ok.txt%00",
        "/vod/..\\secret.txt",
        "/vod/%5c..%5csecret.txt",
        "/vod/sub/../../secret.txt",
        "/vod/escape.txt",
    ] {
        let r = server.raw(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert!(
            matches!(r.status, 400 | 403 | 404),
            "{path} -> {}",
            r.status
        );
        assert_ne!(r.body, b"secret", "{path} leaked");
    }
    assert_eq!(
        server.get("/vod/inside.txt", &[]).body,
        b"ok",
        "a symlink inside the root is fine"
    );
    assert_eq!(server.get("/vod/./ok.txt", &[]).body, b"ok");
    drop(server);
    // With `symlinks = "follow"` the operator allows it explicitly.
    let server = Server::start_with("follow", "[vod]\nsymlinks = \"follow\"\n", |media| {
        std::os::unix::fs::symlink(&outside_file, media.join("escape.txt")).unwrap();
    });
    assert_eq!(server.get("/vod/escape.txt", &[]).body, b"secret");
}

#[test]
fn slowloris_is_closed_by_the_header_deadline() {
    let server = Server::start("slowloris", "[http]\nheader_timeout_ms = 500\n");
    let mut s = server.connect();
    s.write_all(b"GET /vod/x HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        std::thread::sleep(Duration::from_millis(100));
        // Trickle a byte now and then: the deadline counts from the first byte, not the last.
        if s.write_all(b"X").is_err() {
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "slowloris was not cut off"
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(400));
    server.wait_metric(
        "uringcast_deadline_expired_total",
        &["deadline=\"header\""],
        |v| v >= 1.0,
    );
    assert_eq!(server.get("/healthz", &[]).status, 200);
}

#[test]
fn abrupt_disconnects_mid_body_leak_nothing() {
    for send_path in SEND_PATHS {
        let (server, data) = vod_server(send_path);
        // Warm up pools and caches, then take the baseline.
        for _ in 0..4 {
            assert_eq!(server.get("/vod/big.bin", &[]).body.len(), data.len());
        }
        // The baseline once the server has closed the warm-up connections: the count has
        // stopped changing (a baseline taken early only makes the check below laxer).
        let mut counts = vec![server.fd_count()];
        poll_until(in_ms(3000), || {
            counts.push(server.fd_count());
            counts.len() >= 6 && counts[counts.len() - 6..].windows(2).all(|w| w[0] == w[1])
        });
        let baseline = *counts.last().unwrap();
        // A well-behaved client downloads the whole file over and over during the storm.
        let addr = server.addr;
        let expected = data.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_bystander = stop.clone();
        let bystander = std::thread::spawn(move || {
            let mut downloads = 0;
            while !stop_bystander.load(std::sync::atomic::Ordering::Relaxed) || downloads == 0 {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                s.write_all(b"GET /vod/big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let r = read_response(&mut s, false).unwrap();
                assert!(
                    r.status == 200 && r.body == expected,
                    "a bystander download was damaged"
                );
                downloads += 1;
            }
            downloads
        });
        for i in 0..500 {
            let mut s = server.connect();
            s.write_all(b"GET /vod/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            let mut buf = vec![0u8; 1000 + (i * 37) % 20000];
            let _ = s.read(&mut buf);
            // Reset instead of FIN: SO_LINGER 0 via socket2 is not in std; dropping with unread
            // data makes the kernel send RST anyway.
            drop(s);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(bystander.join().unwrap() >= 1);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let now = server.fd_count();
            if now <= baseline + 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "fds {now} did not return to baseline {baseline} ({send_path})"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let r = server.get("/vod/big.bin", &[]);
        assert!(
            r.body == data,
            "server still serves correctly after the disconnects ({send_path})"
        );
    }
}

#[test]
fn ffprobe_and_ffmpeg_read_and_seek_an_mp4() {
    assert!(
        have("ffprobe") && have("ffmpeg"),
        "ffmpeg/ffprobe are required (README set-up installs them)"
    );
    let work = scratch("mp4");
    let clip = test_mp4(&work, 6);
    let server = Server::start_with("ffprobe", "", |media| {
        std::fs::copy(&clip, media.join("clip.mp4")).unwrap();
    });
    let url = server.url("/vod/clip.mp4");
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height:format=duration",
            "-of",
            "csv=p=0",
            &url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("h264,320,240"), "{text}");
    assert!(text.contains("aac"), "{text}");
    // Decode from 4 s in: ffmpeg needs ranged reads to seek. Through a recording proxy, so
    // the requests and answers are known exactly (the server's counters would also count
    // the /metrics reads that look at them).
    let proxy = RecordingProxy::start(server.addr);
    let proxied_url = format!("http://{}/vod/clip.mp4", proxy.addr);
    let out = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-ss",
            "4",
            "-i",
            &proxied_url,
            "-f",
            "framemd5",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "decode errors: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("0,"))
        .count();
    assert!(
        (40..=60).contains(&frames),
        "expected ~2 s of video after the seek, got {frames} frames"
    );
    // Everything ffmpeg sent and got went through the proxy before ffmpeg exited.
    let log = proxy.log.lock().unwrap();
    assert!(
        log.requests.len() >= 2,
        "a seek needs more than one request: {:?}",
        log.requests
    );
    assert!(
        log.requests
            .iter()
            .skip(1)
            .any(|r| r.to_ascii_lowercase().contains("\r\nrange: bytes=")),
        "the seek asks for a range: {:?}",
        log.requests
    );
    assert!(
        log.statuses.iter().all(|s| *s == 200 || *s == 206) && log.statuses.contains(&206),
        "answers: {:?}",
        log.statuses
    );
}

/// What went through a `RecordingProxy`.
#[derive(Default)]
struct ProxyLog {
    /// Every request head the clients sent (they send no bodies), in arrival order.
    requests: Vec<String>,
    /// The status of every response head the server sent.
    statuses: Vec<u16>,
}

/// A loopback TCP proxy in front of the server that records request heads and response
/// statuses, each before forwarding it. Its threads live until the test binary exits.
struct RecordingProxy {
    addr: std::net::SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<ProxyLog>>,
}

impl RecordingProxy {
    fn start(server: std::net::SocketAddr) -> RecordingProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(ProxyLog::default()));
        let shared = log.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(upstream) = std::net::TcpStream::connect(server) else {
                    return;
                };
                let (c2, u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let log = shared.clone();
                std::thread::spawn(move || {
                    Self::pump(client, upstream, |head| {
                        log.lock()
                            .unwrap()
                            .requests
                            .push(String::from_utf8_lossy(head).into_owned());
                        0
                    })
                });
                let log = shared.clone();
                std::thread::spawn(move || {
                    Self::pump(u2, c2, |head| {
                        let text = String::from_utf8_lossy(head);
                        let status = text.split(' ').nth(1).and_then(|s| s.parse().ok());
                        log.lock().unwrap().statuses.push(status.unwrap_or(0));
                        // The body that follows (the server always sends Content-Length for
                        // these; a client that seeks may close before it is all through).
                        text.lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0)
                    })
                });
            }
        });
        RecordingProxy { addr, log }
    }

    /// Copies `from` to `to`, handing each message head to `on_head` (which returns the length
    /// of the body after it) before forwarding it; ends when either side closes.
    fn pump(
        mut from: std::net::TcpStream,
        mut to: std::net::TcpStream,
        mut on_head: impl FnMut(&[u8]) -> u64,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut head = Vec::new();
        let mut body_left = 0u64;
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut data = &buf[..n];
            while !data.is_empty() {
                if body_left > 0 {
                    let take = data.len().min(body_left as usize);
                    body_left -= take as u64;
                    data = &data[take..];
                    continue;
                }
                head.push(data[0]);
                data = &data[1..];
                if head.ends_with(b"\r\n\r\n") {
                    body_left = on_head(&head);
                    head.clear();
                }
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
        let _ = from.shutdown(std::net::Shutdown::Both);
    }
}

#[test]
fn health_metrics_status_page_and_graceful_shutdown() {
    let (mut server, _) = vod_server("splice");
    let r = server.get("/healthz", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        None,
        "no CORS on the server's own endpoints"
    );
    let page = String::from_utf8(server.admin_get("/", &[]).body).unwrap();
    // The status page lists live streams only: no files (tests/http.rs has the details).
    assert!(
        page.contains("Live streams") && !page.contains("big.bin"),
        "{page}"
    );
    server.get("/vod/small.txt", &[]);
    server.wait_metric("uringcast_connections_accepted_total", &[], |v| v >= 2.0);
    let metrics = server.metrics();
    for name in [
        "uringcast_connections_accepted_total",
        "uringcast_connections_closed_total",
        "uringcast_http_requests_total",
        "uringcast_bytes_sent_total",
        "uringcast_connections_active",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metric_sum(&metrics, "uringcast_connections_accepted_total", &[]) >= 2.0);
    assert!(
        metrics.contains("worker=\"0\"") && metrics.contains("worker=\"1\""),
        "per-worker series"
    );
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

#[test]
fn bad_configuration_exits_2_with_one_line_and_port_in_use_exits_1() {
    let dir = scratch("config");
    let bin = env!("CARGO_BIN_EXE_uringcast");
    let cases = [
        ("[http]\nheader_bytes = 10\n", "header_bytes"),
        ("[http]\nheader_bytes_max = 10\n", "http.header_bytes_max"),
        ("[vod]\nsymlinks = \"sometimes\"\n", "symlinks"),
    ];
    for (text, needle) in cases {
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(bin)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(needle), "{stderr} should name {needle}");
    }
    let out = Command::new(bin)
        .args(["--workers", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(bin)
        .args(["--http-listen", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http.listen"));
    let out = Command::new(bin)
        .args(["--check-config", "--workers", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("workers = 3"));
    // Port in use (by a plain listener without SO_REUSEPORT).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(bin)
        .args([
            "--http-listen",
            &format!("127.0.0.1:{port}"),
            "--rtmp-listen",
            "127.0.0.1:0",
            "--media-root",
        ])
        .arg(dir.join("media"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on http 127.0.0.1:{port}"))
            && stderr.contains("ss -ltnp"),
        "{stderr}"
    );
}

#[test]
fn connection_flood_past_the_fd_limit_does_not_spin_or_kill_the_server() {
    // The server runs with 64 descriptors; 150 clients connect at once. Accepts fail with
    // EMFILE (or connections are refused past the per-worker cap); the server backs off instead
    // of spinning, and serves again once the flood is gone.
    let dir = scratch("flood");
    let media = dir.join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("a.txt"), b"a").unwrap();
    // Killed on drop, also when an assertion below fails.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new("prlimit")
        .args(["--nofile=64:64", "--"])
        .arg(env!("CARGO_BIN_EXE_uringcast"))
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--rtmp-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--media-root",
        ])
        .arg(&media)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr: std::net::SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http="))
        .unwrap()
        .parse()
        .unwrap();
    let child = KillOnDrop(child);
    let cpu = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / 100.0
    };
    let flood: Vec<std::net::TcpStream> = (0..150)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu(child.0.id());
    std::thread::sleep(Duration::from_secs(1));
    let spent = cpu(child.0.id()) - before;
    assert!(
        spent < 0.5,
        "server burnt {spent:.2} CPU-s in 1 s under an fd flood"
    );
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ok = std::net::TcpStream::connect(addr).ok().and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            s.write_all(b"GET /vod/a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .ok()?;
            read_response(&mut s, false).ok()
        });
        if ok.is_some_and(|r| r.status == 200 && r.body == b"a") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not recover after the flood"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(child);
}

#[test]
fn sigterm_lets_an_in_flight_download_finish_then_exits_0() {
    let data = pattern(8 << 20, 11);
    let copy = data.clone();
    let mut server = Server::start_with(
        "drain",
        "[runtime]\ndrain_timeout_ms = 10000\n",
        move |media| {
            std::fs::write(media.join("big.bin"), &copy).unwrap();
        },
    );
    // A reader with a small receive buffer that reads slowly, so the response is still in
    // flight when the signal arrives.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(16 << 10).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut s: std::net::TcpStream = socket.into();
    s.write_all(b"GET /vod/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    s.read_exact(&mut first).unwrap();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.pid().to_string())
        .status();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server waits for the in-flight response"
    );
    // New connections are no longer accepted...
    let refused = std::net::TcpStream::connect(server.addr).map(|mut c| {
        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
        read_response(&mut c, false).is_err()
    });
    assert!(
        refused.unwrap_or(true),
        "a new connection was served during the drain"
    );
    // ...but the download in flight completes byte-exact.
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let head_end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(
        all[head_end..] == data[..],
        "the drained download is complete and exact"
    );
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn connections_past_the_per_worker_cap_are_refused_and_counted() {
    let server = Server::start(
        "cap",
        "workers = 1\n[http]\nconnections_max_per_worker = 4\n",
    );
    let fds = server.fd_count();
    let held: Vec<std::net::TcpStream> = (0..4).map(|_| server.connect()).collect();
    // The worker has accepted all four (their descriptors are open in the server).
    assert!(
        poll_until(in_ms(5000), || server.fd_count() >= fds + 4),
        "the server did not accept the held connections"
    );
    // The fifth is accepted by the kernel and closed by the worker at once.
    let mut extra = server.connect();
    extra
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut buf = [0u8; 16];
    assert!(
        matches!(extra.read(&mut buf), Ok(0) | Err(_)),
        "the connection over the cap is closed"
    );
    drop(held);
    // Served again below the cap once the worker has seen the held connections go (until
    // then a new one is refused: closed without an answer).
    let healthz = || {
        let mut s = server.connect();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .ok()?;
        read_response(&mut s, false).ok()
    };
    assert!(
        poll_until(in_ms(5000), || healthz().is_some_and(|r| r.status == 200)),
        "not served again below the cap"
    );
    server.wait_metric("uringcast_connections_refused_total", &[], |v| v >= 1.0);
}

/// The send-path counters, once every worker has flushed (see `Server::flush_barrier`).
#[derive(Debug, Clone, Copy)]
struct SendCounters {
    uncached: f64,
    splices: f64,
    sendfiles: f64,
}

fn send_counters(server: &Server) -> SendCounters {
    let metrics = server.flush_barrier();
    SendCounters {
        uncached: metric_sum(&metrics, "uringcast_vod_uncached_chunks_total", &[]),
        splices: metric_sum(&metrics, "uringcast_splices_submitted_total", &[]),
        sendfiles: metric_sum(&metrics, "uringcast_sendfile_calls_total", &[]),
    }
}

#[test]
fn auto_send_path_splices_cold_files_and_sendfiles_hot_ones() {
    let data = pattern(4 << 20, 5);
    let copy = data.clone();
    let server = Server::start_with("auto", "[vod]\nsend_path = \"auto\"\n", move |media| {
        std::fs::write(media.join("cold.bin"), &copy).unwrap();
    });
    let path = server.media.join("cold.bin");
    // Drop the file's pages from the page cache (clean pages: fsync first).
    let file = std::fs::File::open(&path).unwrap();
    file.sync_all().unwrap();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
    // SAFETY: posix_fadvise only reads its integer arguments; the fd is our own open file.
    let rc = unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert_eq!(rc, 0);
    // What the kernel reports now is what the server's `auto` path will see.
    let residency = uringcast::runtime::cachestat::range_cached(fd, 0, data.len() as u64);
    let before = send_counters(&server);
    let r = server.get("/vod/cold.bin", &[]);
    assert!(r.status == 200 && r.body == data, "cold file byte-exact");
    let cold = send_counters(&server);
    // Make sure every page is in the cache now (the cold download's splices read them, but a
    // loaded machine may already have reclaimed some), so the next download is hot.
    assert_eq!(std::fs::read(&path).unwrap().len(), data.len());
    let hot_resident = uringcast::runtime::cachestat::range_cached(fd, 0, data.len() as u64);
    let r = server.get("/vod/cold.bin", &[]);
    assert!(r.status == 200 && r.body == data, "hot file byte-exact");
    let hot = send_counters(&server);
    let delta = |a: SendCounters, b: SendCounters| SendCounters {
        uncached: b.uncached - a.uncached,
        splices: b.splices - a.splices,
        sendfiles: b.sendfiles - a.sendfiles,
    };
    let (cold, hot) = (delta(before, cold), delta(cold, hot));
    match residency {
        None => {
            // No cachestat(2) (kernel < 6.5, or filtered): `auto` cannot tell, counts every
            // chunk as not cached and splices it, cold or hot; it never calls sendfile.
            for (what, d) in [("cold", cold), ("hot", hot)] {
                assert!(
                    d.uncached > 0.0 && d.splices > 0.0 && d.sendfiles == 0.0,
                    "{what} download without cachestat: {d:?}"
                );
            }
        }
        Some(true) => {
            // The pages could not be dropped (tmpfs/shmem ignores DONTNEED): the file was
            // never cold, so both downloads go through sendfile only.
            for (what, d) in [("cold", cold), ("hot", hot)] {
                assert!(
                    d.uncached == 0.0 && d.splices == 0.0 && d.sendfiles > 0.0,
                    "{what} download of a file that stayed cached: {d:?}"
                );
            }
        }
        Some(false) => {
            assert!(
                cold.uncached > 0.0 && cold.splices > 0.0,
                "a cold chunk goes through io_uring splice: {cold:?}"
            );
            // Now the file is hot: the next download uses sendfile only (unless memory
            // pressure evicted pages between the check and the download, which cachestat
            // would have shown: then that download legitimately splices).
            if hot_resident == Some(true) {
                assert!(
                    hot.uncached == 0.0 && hot.splices == 0.0 && hot.sendfiles > 0.0,
                    "no splice for a hot file: {hot:?}"
                );
            } else {
                eprintln!("the file did not stay in the page cache ({hot_resident:?}): {hot:?}");
            }
        }
    }
}

/// The VOD counters of one server, once every worker has flushed (see `Server::flush_barrier`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OpenCounters {
    hits: f64,
    misses: f64,
    stale: f64,
    openat2: f64,
    statx: f64,
}

fn open_counters(server: &Server) -> OpenCounters {
    let metrics = server.flush_barrier();
    let lookups = |result: &str| {
        metric_sum(
            &metrics,
            "uringcast_vod_file_cache_lookups_total",
            &[&format!("result=\"{result}\"")],
        )
    };
    let ring = |op: &str| {
        metric_sum(
            &metrics,
            "uringcast_vod_ring_ops_total",
            &[&format!("op=\"{op}\"")],
        )
    };
    OpenCounters {
        hits: lookups("hit"),
        misses: lookups("miss"),
        stale: lookups("stale"),
        openat2: ring("openat2"),
        statx: ring("statx"),
    }
}

/// `count` GETs of `path` on one keep-alive connection; every answer must be `status`.
fn get_keep_alive(server: &Server, path: &str, count: usize, status: u16) {
    let mut s = server.connect();
    for _ in 0..count {
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        let r = read_response(&mut s, false).unwrap();
        assert_eq!(r.status, status, "{path}");
    }
}

/// The server's descriptors open on `file`, with their `flags:` from /proc/PID/fdinfo (octal).
fn fds_on(server: &Server, file: &std::path::Path) -> Vec<u32> {
    let pid = server.pid();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        if std::fs::read_link(entry.path()).ok()? != file {
            return None;
        }
        let fd = entry.file_name().into_string().ok()?;
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
        let flags = info.lines().find_map(|l| l.strip_prefix("flags:"))?.trim();
        u32::from_str_radix(flags, 8).ok()
    })
    .collect()
}

/// O_NONBLOCK in /proc/PID/fdinfo flags (x86_64 and aarch64 value).
const O_NONBLOCK_OCTAL: u32 = 0o4000;

#[test]
fn a_miss_is_one_ring_openat2_and_one_ring_statx_and_a_hit_is_neither() {
    let server = Server::start_with(
        "ring-opens",
        "workers = 1\n[vod]\nfile_cache_revalidate_ms = 600000\n",
        |media| {
            std::fs::write(media.join("a.txt"), b"cached\n").unwrap();
            std::fs::create_dir(media.join("dir")).unwrap();
            let fifo = Command::new("mkfifo")
                .arg(media.join("pipe"))
                .status()
                .unwrap();
            assert!(fifo.success());
        },
    );
    let before = open_counters(&server);
    assert_eq!(before.openat2, 0.0, "{before:?}");
    // 50 requests for one file: the first misses (one open, one stat, both in the ring), the
    // other 49 are answered from the cache with neither.
    get_keep_alive(&server, "/vod/a.txt", 50, 200);
    let after = open_counters(&server);
    assert_eq!(
        after,
        OpenCounters {
            hits: 49.0,
            misses: 1.0,
            stale: 0.0,
            openat2: 1.0,
            statx: 1.0,
        }
    );
    // One fd for the file, opened non-blocking in the ring and made blocking again before
    // any splice could see it.
    let flags = fds_on(&server, &server.media.join("a.txt"));
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(flags[0] & O_NONBLOCK_OCTAL, 0, "{:o}", flags[0]);
    // A missing file is one open that fails (no stat); a FIFO and a directory are one open
    // (non-blocking: the FIFO has no writer) and one stat each, then refused, never cached.
    for _ in 0..2 {
        assert_eq!(server.get("/vod/missing.txt", &[]).status, 404);
        let fifo = server.get("/vod/pipe", &[]);
        assert_eq!(
            (fifo.status, fifo.body.as_slice()),
            (403, &b"forbidden\n"[..])
        );
        let dir = server.get("/vod/dir", &[]);
        assert_eq!(
            (dir.status, dir.body.as_slice()),
            (403, &b"not a file\n"[..])
        );
    }
    let refused = open_counters(&server);
    assert_eq!(refused.misses - after.misses, 6.0, "{refused:?}");
    assert_eq!(refused.openat2 - after.openat2, 6.0, "{refused:?}");
    assert_eq!(refused.statx - after.statx, 4.0, "{refused:?}");
    assert_eq!(refused.hits, after.hits);
    // The worker was never stuck on the FIFO: the cached file is still served at once.
    get_keep_alive(&server, "/vod/a.txt", 5, 200);
    assert_eq!(open_counters(&server).hits - refused.hits, 5.0);
}

#[test]
fn revalidation_reopens_through_the_ring_and_keeps_one_fd_per_file() {
    // revalidate_ms = 0: every request checks the path again, by a reopen beneath the root.
    let server = Server::start_with(
        "ring-revalidate",
        "workers = 1\n[vod]\nfile_cache_revalidate_ms = 0\n",
        |media| std::fs::write(media.join("seg.ts"), b"first").unwrap(),
    );
    get_keep_alive(&server, "/vod/seg.ts", 1, 200);
    let before = open_counters(&server);
    let fds = server.fd_count();
    get_keep_alive(&server, "/vod/seg.ts", 40, 200);
    let after = open_counters(&server);
    assert_eq!(after.stale - before.stale, 40.0, "{after:?}");
    assert_eq!(after.openat2 - before.openat2, 40.0, "{after:?}");
    assert_eq!(after.statx - before.statx, 40.0, "{after:?}");
    assert_eq!(after.hits, before.hits);
    // The same file under the name: the cache kept its fd and closed each new one (the
    // keep-alive connection of the loop above is closed by now or about to be).
    assert!(
        poll_until(in_ms(3000), || server.fd_count() <= fds),
        "fds grew from {fds} to {}",
        server.fd_count()
    );
    let flags = fds_on(&server, &server.media.join("seg.ts"));
    assert_eq!(flags.len(), 1, "one fd for the file: {flags:?}");
    assert_eq!(flags[0] & O_NONBLOCK_OCTAL, 0, "{:o}", flags[0]);
    // A rename-over is seen at once, and the symlink policy holds on revalidation too.
    std::fs::write(server.media.join("seg.tmp"), b"second").unwrap();
    std::fs::rename(server.media.join("seg.tmp"), server.media.join("seg.ts")).unwrap();
    assert_eq!(server.get("/vod/seg.ts", &[]).body, b"second");
    let outside = scratch("ring-revalidate-outside");
    std::fs::write(outside.join("secret"), b"secret").unwrap();
    std::fs::remove_file(server.media.join("seg.ts")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), server.media.join("seg.ts")).unwrap();
    let r = server.get("/vod/seg.ts", &[]);
    assert_eq!(
        r.status, 403,
        "a cached name turned into an escaping symlink"
    );
    assert_ne!(r.body, b"secret");
}

#[test]
fn an_open_that_completes_after_its_connection_closed_leaks_no_fd() {
    // Test builds delay every open by a linked ring timeout (1 s), far beyond the send
    // deadline (100 ms): each connection is closed by its deadline while its open is in
    // flight, and the fd the open returns later must be closed, not leaked.
    const FILES: usize = 40;
    let server = Server::launch_env(
        "open-leak",
        "workers = 1\n[http]\nsend_timeout_ms = 100\n",
        |media| {
            for i in 0..FILES {
                std::fs::write(media.join(format!("f{i}.bin")), b"x").unwrap();
            }
        },
        &[("URINGCAST_FAULT_OPEN_DELAY_MS", "1000")],
    );
    let mut counts = vec![server.fd_count()];
    poll_until(in_ms(3000), || {
        counts.push(server.fd_count());
        counts.len() >= 6 && counts[counts.len() - 6..].windows(2).all(|w| w[0] == w[1])
    });
    let baseline = *counts.last().unwrap();
    let mut clients: Vec<std::net::TcpStream> = (0..FILES)
        .map(|i| {
            let mut s = server.connect();
            s.write_all(format!("GET /vod/f{i}.bin HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                .unwrap();
            s
        })
        .collect();
    // Every connection is closed without an answer (the deadline, not the open, ends it).
    for s in &mut clients {
        let mut buf = [0u8; 64];
        assert!(
            matches!(s.read(&mut buf), Ok(0) | Err(_)),
            "no answer expected"
        );
    }
    server.wait_metric(
        "uringcast_deadline_expired_total",
        &["deadline=\"send\""],
        |v| v >= FILES as f64,
    );
    server.wait_metric("uringcast_vod_opens_abandoned_total", &[], |v| {
        v >= FILES as f64
    });
    drop(clients);
    let mut now = 0;
    assert!(
        poll_until(in_ms(5000), || {
            now = server.fd_count();
            now <= baseline
        }),
        "fds {now} did not return to {baseline}: an open's fd leaked"
    );
}

#[test]
fn misses_from_clients_that_vanish_at_once_leak_no_fd() {
    const FILES: usize = 200;
    // One cache entry, so every other opened fd must be closed after its request.
    let server = Server::start_with("vanish", "[vod]\nfile_cache_entries = 1\n", |media| {
        for i in 0..FILES {
            std::fs::write(media.join(format!("f{i}.bin")), vec![b'y'; 100_000]).unwrap();
        }
    });
    let mut counts = vec![server.fd_count()];
    poll_until(in_ms(3000), || {
        counts.push(server.fd_count());
        counts.len() >= 6 && counts[counts.len() - 6..].windows(2).all(|w| w[0] == w[1])
    });
    let baseline = *counts.last().unwrap();
    for i in 0..FILES {
        let mut s = server.connect();
        s.write_all(format!("GET /vod/f{i}.bin HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        drop(s);
    }
    let mut now = 0;
    // One cached fd per worker may stay.
    assert!(
        poll_until(in_ms(10_000), || {
            now = server.fd_count();
            now <= baseline + 2
        }),
        "fds {now} did not return to {baseline} (+2 cached)"
    );
    assert_eq!(server.get("/vod/f0.bin", &[]).body.len(), 100_000);
}
