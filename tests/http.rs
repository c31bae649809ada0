//! HTTP routing, headers and connection handling through the real binary (issue 7, "HTTP and
//! files"): `/vod/` always means files, special files are refused, Host is checked, error
//! answers survive a client that is still sending, CORS on every media answer, the open-file
//! cache lets go of deleted files, and the status page does no filesystem work.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

/// Poll `check` until it is true or `timeout` passes; returns whether it became true.
fn eventually(timeout: Duration, check: impl FnMut() -> bool) -> bool {
    poll_until(Instant::now() + timeout, check)
}

#[test]
fn vod_prefix_always_means_files_even_for_flv() {
    let flv = pattern(20_000, 3);
    let copy = flv.clone();
    let server = Server::start_with("http-vodflv", "", move |media| {
        std::fs::write(media.join("top.flv"), &copy).unwrap();
    });
    // An FLV file at the top of the media root downloads like any file.
    let r = server.get("/vod/top.flv", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("video/x-flv"));
    assert!(r.body == flv, "body differs");
    let r = server.get("/vod/top.flv", &[("Range", "bytes=10-19")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &flv[10..20]));

    // Nobody can publish a live stream under /vod/ ...
    let mut body = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    body.extend_from_slice(&[0u8; 16]);
    let mut req = format!(
        "POST /vod/evil.flv HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let r = server.raw(&req);
    assert!(
        (400..500).contains(&r.status),
        "publish at /vod/ must be refused, got {}",
        r.status
    );
    let r = server.raw(
        b"PUT /vod/evil.flv HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert!((400..500).contains(&r.status), "got {}", r.status);
    // ... so nothing is live there and a play of it is a file lookup: 404, not a stream.
    let r = server.get("/vod/evil.flv", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.body, b"not found\n");
    let streams = String::from_utf8(server.admin_get("/api/v1/streams", &[]).body).unwrap();
    assert!(!streams.contains("evil"), "{streams}");
}

#[test]
fn a_unix_socket_in_the_media_root_is_refused_like_a_fifo() {
    let server = Server::start("http-socket", "");
    // A bound, listening socket: opening it gives ENXIO, which used to be a 500.
    let listener = std::os::unix::net::UnixListener::bind(server.media.join("app.sock")).unwrap();
    for method in ["GET", "HEAD"] {
        let r = server.request(method, "/vod/app.sock", &[]);
        assert_eq!(r.status, 403, "{method}");
    }
    // Twice more: the refusal must not depend on a cache state.
    assert_eq!(server.get("/vod/app.sock", &[]).status, 403);
    drop(listener);
}

#[test]
fn host_field_rules_of_rfc_9112() {
    let server = Server::start("http-host", "");
    for bad in [
        "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        "GET /healthz HTTP/1.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: a:80x\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: [::1\r\n\r\n",
        "GET /healthz HTTP/1.0\r\nHost: a@b\r\n\r\n",
    ] {
        let r = server.raw(bad.as_bytes());
        assert_eq!(r.status, 400, "{bad:?}");
        assert_eq!(r.header("connection"), Some("close"), "{bad:?}");
    }
    for good in [
        "GET /healthz HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nHost: \r\n\r\n",
        "GET /healthz HTTP/1.0\r\n\r\n",
    ] {
        let r = server.raw(good.as_bytes());
        assert_eq!(r.status, 200, "{good:?}");
    }
}

/// Reads until EOF or an error; true for a clean EOF (the server shut its side down).
fn read_to_eof(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)?;
    Ok(rest)
}

#[test]
fn an_error_answer_behind_a_big_response_survives_a_client_still_sending() {
    // A pipelined client: a 3 MiB download, then a request whose head is far too large
    // (431), sent in a loop while the download is read. The server queues the whole body
    // and the 431 in its socket, then closes; closing with unread request bytes makes the
    // kernel send RST and drop everything still queued, so without a lingering close the
    // client sees a truncated body and never the 431.
    let data = pattern(3 * 1024 * 1024, 11);
    let copy = data.clone();
    let server = Server::start_with("http-linger", "", move |media| {
        std::fs::write(media.join("big.bin"), &copy).unwrap();
    });
    for round in 0..3 {
        let mut s = server.connect();
        let mut writer = s.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let mut sent = 0usize;
            let head = b"GET /vod/big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /vod/big.bin HTTP/1.1\r\nHost: t\r\nX-Big: ";
            if writer.write_all(head).is_err() {
                return sent;
            }
            // 64 KiB of header value, four times over (below lingering_close_bytes).
            let filler = vec![b'a'; 64 * 1024];
            for _ in 0..4 {
                if writer.write_all(&filler).is_err() {
                    break;
                }
                sent += filler.len();
            }
            sent
        });
        let first = read_response(&mut s, false)
            .unwrap_or_else(|e| panic!("round {round}: first response lost: {e}"));
        assert_eq!(first.status, 200, "round {round}");
        assert!(first.body == data, "round {round}: body differs");
        let second = read_response(&mut s, false)
            .unwrap_or_else(|e| panic!("round {round}: the 431 was lost: {e}"));
        assert_eq!(second.status, 431, "round {round}");
        assert_eq!(second.header("connection"), Some("close"));
        // Then the server's FIN (shutdown), not a reset.
        let rest = read_to_eof(&mut s).unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(rest.is_empty(), "round {round}: bytes after the 431");
        sender.join().unwrap();
    }
}

#[test]
fn a_refused_upload_still_reads_its_status_then_the_linger_is_bounded() {
    let server = Server::start(
        "http-linger-bounds",
        "[http]\nlingering_close_ms = 400\nlingering_close_bytes = 262144\n",
    );
    // A large POST to a path that takes no body, sent in a loop while reading: the 400
    // arrives intact, followed by the server's FIN.
    let mut s = server.connect();
    let mut writer = s.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer
            .write_all(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000\r\n\r\n");
        let chunk = vec![b'x'; 16 * 1024];
        let started = Instant::now();
        let mut sent = 0usize;
        // Until the server gives up on us: the byte budget ends the linger.
        while started.elapsed() < Duration::from_secs(20) {
            match writer.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => return (sent, started.elapsed()),
            }
        }
        (sent, started.elapsed())
    });
    let r = read_response(&mut s, false).expect("the 400 must not be lost");
    assert_eq!(r.status, 400);
    assert_eq!(r.body, b"request body not accepted here\n");
    assert_eq!(r.header("connection"), Some("close"));
    let rest = read_to_eof(&mut s).expect("a FIN after the answer");
    assert!(rest.is_empty());
    let (sent, took) = sender.join().unwrap();
    // Ended by the byte budget, long before the sender's own 20 s: what the kernel buffers
    // on both sides comes on top of the 256 KiB read and discarded.
    assert!(
        took < Duration::from_secs(15),
        "linger not bounded by bytes: {took:?}"
    );
    assert!(sent >= 256 * 1024, "sent only {sent}");

    // A client that goes quiet after the answer without closing: the deadline ends it.
    let mut s = server.connect();
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    head.extend_from_slice(&vec![b'a'; 16 * 1024]);
    let _ = s.write_all(&head);
    let r = read_response(&mut s, false).expect("431");
    assert_eq!(r.status, 431);
    assert!(
        eventually(Duration::from_secs(10), || server.metric_sum(
            "uringcast_deadline_expired_total",
            &["deadline=\"linger\""]
        ) >= 1.0),
        "the lingering deadline never fired"
    );
    drop(s);
}

fn assert_media_cors(r: &Response, what: &str) {
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("*"),
        "{what}: {}",
        r.status
    );
    let expose = r
        .header("access-control-expose-headers")
        .unwrap_or_else(|| panic!("{what}: no Expose-Headers"));
    for name in ["Content-Length", "Content-Range", "ETag", "Accept-Ranges"] {
        assert!(expose.contains(name), "{what}: {expose}");
    }
}

#[test]
fn cors_on_every_media_answer_and_preflight() {
    let server = Server::start_with("http-cors", "", |media| {
        std::fs::write(media.join("a.ts"), b"0123456789").unwrap();
        std::fs::create_dir_all(media.join("dir")).unwrap();
    });
    let cases: [(&str, &[u8], u16); 9] = [
        ("file", b"GET /vod/a.ts HTTP/1.1\r\nHost: t\r\n\r\n", 200),
        (
            "range",
            b"GET /vod/a.ts HTTP/1.1\r\nHost: t\r\nRange: bytes=1-2\r\n\r\n",
            206,
        ),
        (
            "missing file",
            b"GET /vod/nope.ts HTTP/1.1\r\nHost: t\r\n\r\n",
            404,
        ),
        (
            "directory",
            b"GET /vod/dir HTTP/1.1\r\nHost: t\r\n\r\n",
            403,
        ),
        (
            "bad path",
            b"GET /vod/%2e%2e/x HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
        ),
        (
            "vod method",
            b"DELETE /vod/a.ts HTTP/1.1\r\nHost: t\r\n\r\n",
            405,
        ),
        (
            "vod body",
            b"GET /vod/a.ts HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
            400,
        ),
        (
            "no stream",
            b"GET /live/none.flv HTTP/1.1\r\nHost: t\r\n\r\n",
            404,
        ),
        (
            "no publish length",
            b"POST /live/x.flv HTTP/1.1\r\nHost: t\r\n\r\n",
            411,
        ),
    ];
    for (what, req, status) in cases {
        let r = server.raw(req);
        assert_eq!(r.status, status, "{what}");
        assert_media_cors(&r, what);
    }
    // The server's own endpoints carry none.
    let r = server.get("/healthz", &[]);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(
        server
            .get("/nothing", &[])
            .header("access-control-allow-origin"),
        None
    );

    // Preflight on a file and on a live path.
    for (path, methods) in [
        ("/vod/a.ts", &["GET", "HEAD", "OPTIONS"][..]),
        (
            "/live/cam.flv",
            &["GET", "HEAD", "OPTIONS", "POST", "PUT"][..],
        ),
    ] {
        let r = server.request(
            "OPTIONS",
            path,
            &[
                ("Origin", "https://player.example"),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "range"),
            ],
        );
        assert_eq!(r.status, 204, "{path}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
        let allow = r.header("access-control-allow-methods").unwrap();
        for m in methods {
            assert!(allow.contains(m), "{path}: {allow}");
        }
        assert_eq!(allow.contains("POST"), methods.contains(&"POST"), "{allow}");
        let allow_headers = r.header("access-control-allow-headers").unwrap();
        for h in [
            "Range",
            "If-None-Match",
            "If-Modified-Since",
            "Content-Type",
        ] {
            assert!(allow_headers.contains(h), "{allow_headers}");
        }
        let max_age: u64 = r.header("access-control-max-age").unwrap().parse().unwrap();
        assert!(max_age > 0);
        assert!(r.header("allow").unwrap().contains("OPTIONS"));
    }
    // Keep-alive survives a preflight: the real request follows on the same connection.
    let mut s = server.connect();
    s.write_all(
        b"OPTIONS /vod/a.ts HTTP/1.1\r\nHost: t\r\n\r\nGET /vod/a.ts HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().status, 204);
    let r = read_response(&mut s, false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"0123456789"[..]));
}

#[test]
fn empty_cors_origin_disables_every_cors_header() {
    let server = Server::start_with(
        "http-nocors",
        "[http]\ncors_allow_origin = \"\"\n",
        |media| {
            std::fs::write(media.join("a.ts"), b"x").unwrap();
        },
    );
    for r in [
        server.get("/vod/a.ts", &[]),
        server.get("/vod/missing", &[]),
        server.get("/live/none.flv", &[]),
        server.request("OPTIONS", "/vod/a.ts", &[("Origin", "https://o.example")]),
    ] {
        assert!(
            !r.headers
                .iter()
                .any(|(k, _)| k.to_ascii_lowercase().starts_with("access-control-")),
            "{r:?}"
        );
    }
    // OPTIONS still answers (what is allowed), just without CORS.
    let r = server.request("OPTIONS", "/vod/a.ts", &[]);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
}

/// Targets of the server's open descriptors that mention `name` (readlink of /proc/PID/fd).
fn open_files_named(server: &Server, name: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{}/fd", server.pid())) else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p.contains(name))
        .collect()
}

#[test]
fn a_deleted_file_is_let_go_without_being_requested_again() {
    // Default configuration: the cache's periodic sweep sees the file's link count drop to
    // zero, long before the entry would expire for inactivity.
    let server = Server::start_with("http-deleted", "workers = 1", |media| {
        std::fs::write(media.join("gone.bin"), pattern(100_000, 5)).unwrap();
    });
    let r = server.get("/vod/gone.bin", &[]);
    assert_eq!((r.status, r.body.len()), (200, 100_000));
    let held = open_files_named(&server, "gone.bin");
    assert_eq!(held.len(), 1, "the cache holds the open file: {held:?}");
    std::fs::remove_file(server.media.join("gone.bin")).unwrap();
    assert!(
        open_files_named(&server, "gone.bin")
            .iter()
            .all(|p| p.ends_with("(deleted)")),
        "readlink shows the file deleted"
    );
    assert!(
        eventually(Duration::from_secs(8), || open_files_named(
            &server, "gone.bin"
        )
        .is_empty()),
        "the server still holds the deleted file: {:?}",
        open_files_named(&server, "gone.bin")
    );
    // And a request for it now is a plain 404.
    assert_eq!(server.get("/vod/gone.bin", &[]).status, 404);
}

#[test]
fn idle_cache_entries_expire_after_file_cache_inactive_ms() {
    let server = Server::start_with(
        "http-inactive",
        "workers = 1\n[vod]\nfile_cache_inactive_ms = 300\n",
        |media| {
            std::fs::write(media.join("idle.bin"), b"idle").unwrap();
            std::fs::write(media.join("gone.bin"), b"gone").unwrap();
        },
    );
    assert_eq!(server.get("/vod/idle.bin", &[]).body, b"idle");
    assert_eq!(server.get("/vod/gone.bin", &[]).body, b"gone");
    assert_eq!(open_files_named(&server, "idle.bin").len(), 1);
    std::fs::remove_file(server.media.join("gone.bin")).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || {
            open_files_named(&server, "idle.bin").is_empty()
                && open_files_named(&server, "gone.bin").is_empty()
        }),
        "idle entries still open: {:?} {:?}",
        open_files_named(&server, "idle.bin"),
        open_files_named(&server, "gone.bin")
    );
    // An expired entry is simply opened again.
    assert_eq!(server.get("/vod/idle.bin", &[]).body, b"idle");
}

#[test]
fn status_page_lists_no_files_and_no_paths() {
    let server = Server::start_with("http-status", "", |media| {
        std::fs::write(media.join("secret-name.mp4"), b"x").unwrap();
        std::fs::create_dir_all(media.join("private-dir")).unwrap();
    });
    let r = server.admin_get("/", &[]);
    assert_eq!(r.status, 200);
    let page = String::from_utf8(r.body).unwrap();
    assert!(page.contains("Live streams"), "{page}");
    assert!(!page.contains("secret-name"), "file listed: {page}");
    assert!(!page.contains("private-dir"), "directory listed: {page}");
    let root = server.media.to_string_lossy().into_owned();
    assert!(!page.contains(&root), "filesystem path shown: {page}");
    assert!(!page.contains(env!("CARGO_TARGET_TMPDIR")), "{page}");
}

#[test]
fn lines_a_peer_can_trigger_are_logged_at_a_bounded_rate() {
    // Default budget (runtime.peer_log_lines_per_second = 10 per worker and kind). A stream
    // is being published; 100 more publishes of it are refused (409), each one an info line
    // before this was bounded.
    let server = Server::start("http-loglimit", "");
    let mut publisher = server.connect();
    publisher
        .write_all(b"POST /live/flood.flv HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nFLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00\r\n")
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || String::from_utf8_lossy(
            &server.admin_get("/api/v1/streams", &[]).body
        )
        .contains("flood")),
        "the publish did not start"
    );
    let started = Instant::now();
    for _ in 0..100 {
        let r =
            server.raw(b"POST /live/flood.flv HTTP/1.1\r\nHost: t\r\nContent-Length: 13\r\n\r\nFLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        assert_eq!(r.status, 409);
    }
    let seconds = started.elapsed().as_secs() + 1;
    let refused_lines = || {
        server
            .stderr()
            .lines()
            .filter(|l| l.contains("second publisher refused"))
            .count()
    };
    // Two workers, ten lines each per second at most.
    let bound = 2 * 10 * seconds as usize;
    assert!(
        refused_lines() <= bound.min(60),
        "{} lines for 100 refusals in {seconds} s",
        refused_lines()
    );
    // The rest is summarised, not lost.
    assert!(
        eventually(Duration::from_secs(5), || server.stderr().lines().any(
            |l| { l.contains("log lines suppressed") && l.contains("publish_refused") }
        )),
        "no summary line: {}",
        server.stderr()
    );
    drop(publisher);
}
