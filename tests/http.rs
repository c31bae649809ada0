//! HTTP routing, headers and connection handling through the real binary (issue 7, "HTTP and
//! files"): `/vod/` always means files, special files are refused, Host is checked, error
//! answers survive a client that is still sending, CORS on every media answer, the open-file
//! cache lets go of deleted files, and the status page does no filesystem work.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

/// Poll `check` until it is true or `timeout` passes; returns whether it became true.
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let streams = String::from_utf8(server.get("/api/v1/streams", &[]).body).unwrap();
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
