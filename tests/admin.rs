//! The admin listener and its API with real peers: the operator's pages are served there and
//! not on the public listener; the API answers allowed addresses or a bearer token; ffmpeg and
//! curl publish and play, `/api/v1/sessions` lists them (without their keys), and `DELETE`
//! ends a reader, a publisher, or a whole stream at once.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::media::{clip_30s, wait_for_stream};
use common::{Server, in_ms, poll_until};

const TOKEN: &str = "admin-token-0123456789";
const KEY: &str = "k-secret-1";

fn text(body: Vec<u8>) -> String {
    String::from_utf8(body).unwrap()
}

#[test]
fn operator_pages_are_on_the_admin_listener_and_media_on_the_public_one() {
    let server = Server::start("admin-pages", "");
    assert_ne!(server.admin_addr, server.addr);
    // The admin listener, from loopback (in the default admin.allow).
    let r = server.admin_get("/metrics", &[]);
    assert_eq!(r.status, 200);
    assert!(text(r.body).contains("uringcast_connections_accepted_total"));
    let r = server.admin_get("/api/v1/streams", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        text(r.body),
        format!(
            "{{\"play\":{{\"http_port\":{},\"rtmp_port\":{}}},\"streams\":[]}}\n",
            server.addr.port(),
            server.rtmp_addr.port()
        )
    );
    let r = server.admin_get("/api/v1/sessions", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(text(r.body), "{\"sessions\":[]}\n");
    // The console.
    let r = server.admin_get("/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(text(r.body).contains("/console/vendor/mpegts-1.8.2.min.js"));
    // Media is not served there.
    std::fs::write(server.media.join("a.txt"), b"a").unwrap();
    for path in [
        "/vod/a.txt",
        "/live/cam.flv",
        "/live/cam.ts",
        "/live/cam/index.m3u8",
    ] {
        assert_eq!(server.admin_get(path, &[]).status, 404, "{path}");
    }
    assert_eq!(server.get("/vod/a.txt", &[]).status, 200);
    // The public listener: no operator page, and no word of where they are.
    for path in ["/metrics", "/api/v1/streams", "/api/v1/sessions", "/"] {
        let r = server.get(path, &[]);
        assert_eq!(r.status, 404, "{path}");
        let body = text(r.body);
        assert!(body.starts_with("not found"), "{path}: {body}");
        assert!(
            !body.contains(&server.admin_addr.port().to_string()),
            "{path}: {body}"
        );
    }
    assert_eq!(
        server.request("DELETE", "/api/v1/sessions/1", &[]).status,
        405
    );
    // /healthz on both (load balancers probe the public one).
    assert_eq!(server.get("/healthz", &[]).status, 200);
    assert_eq!(server.admin_get("/healthz", &[]).status, 200);
    // A DELETE that names nothing live.
    let r = server.admin_request("DELETE", "/api/v1/sessions/999999", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(text(r.body), "{\"error\":\"no such session\"}\n");
    let r = server.admin_request("DELETE", "/api/v1/streams/live/nothing", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(
        server
            .admin_request("GET", "/api/v1/sessions/1", &[])
            .status,
        405
    );
}

#[test]
fn the_api_answers_allowed_networks_or_the_bearer_token() {
    // Loopback is not in admin.allow: only the token opens the API.
    let server = Server::start(
        "admin-token",
        &format!("[admin]\nallow = [\"10.0.0.0/8\"]\ntoken = \"{TOKEN}\"\n"),
    );
    let bearer = format!("Bearer {TOKEN}");
    for path in ["/api/v1/streams", "/api/v1/sessions", "/"] {
        let r = server.admin_get(path, &[]);
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{path}");
        let body = text(r.body);
        assert!(
            body.contains("admin.token") && body.contains("admin.allow"),
            "{body}"
        );
        let r = server.admin_get(path, &[("Authorization", "Bearer wrong-token-0123456789")]);
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.header("www-authenticate"), None);
        assert!(text(r.body).contains("admin.allow"));
        let r = server.admin_get(path, &[("Authorization", &bearer)]);
        assert_eq!(r.status, 200, "{path}");
    }
    assert_eq!(
        server
            .admin_request("DELETE", "/api/v1/sessions/12345", &[])
            .status,
        401
    );
    assert_eq!(
        server
            .admin_request(
                "DELETE",
                "/api/v1/sessions/12345",
                &[("Authorization", &bearer)]
            )
            .status,
        404
    );
    // /metrics and /healthz stay open.
    assert_eq!(server.admin_get("/metrics", &[]).status, 200);
    assert_eq!(server.admin_get("/healthz", &[]).status, 200);
    let text = server.metrics();
    assert!(
        common::metric_sum(&text, "uringcast_admin_refused_total", &[]) >= 4.0,
        "{text}"
    );
}

#[test]
fn play_urls_with_credentials_are_for_the_allowed_only() {
    // The play URLs carry the play key: restricted exactly like the rest of the API.
    let server = Server::start(
        "admin-play-urls",
        &format!(
            "[admin]\nallow = [\"10.0.0.0/8\"]\ntoken = \"{TOKEN}\"\n\
             [auth]\nplay = \"key\"\nkeys = [\"{KEY}\"]\n"
        ),
    );
    let path = "/api/v1/streams/live/cam/play";
    let r = server.admin_get(path, &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert!(!text(r.body).contains(KEY));
    let r = server.admin_get(path, &[("Authorization", "Bearer wrong-token-0123456789")]);
    assert_eq!(r.status, 403);
    assert!(!text(r.body).contains(KEY));
    // Not on the public listener at all.
    let r = server.get(path, &[("Authorization", &format!("Bearer {TOKEN}"))]);
    assert_eq!(r.status, 404);

    let bearer = format!("Bearer {TOKEN}");
    let r = server.admin_get(path, &[("Authorization", &bearer)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let j: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    // On the host the client asked by (the test client sends `Host: test`), the public ports.
    let (http, rtmp) = (server.addr.port(), server.rtmp_addr.port());
    assert_eq!(
        j["flv"],
        format!("http://test:{http}/live/cam.flv?key={KEY}")
    );
    assert_eq!(j["ts"], format!("http://test:{http}/live/cam.ts?key={KEY}"));
    assert_eq!(
        j["hls"],
        format!("http://test:{http}/live/cam/index.m3u8?key={KEY}")
    );
    assert_eq!(j["rtmp"], format!("rtmp://test:{rtmp}/live/cam?key={KEY}"));
    assert_eq!(j["credentials"], "key");
    assert_eq!(j["needs_credentials"], false);
    assert!(j["expires"].is_null());
    // Any valid stream name, live or not; HEAD gets the head only; other methods 405.
    let r = server.admin_request("HEAD", path, &[("Authorization", &bearer)]);
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    let r = server.admin_request("POST", path, &[("Authorization", &bearer)]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = server.admin_get(
        "/api/v1/streams/live/a.b/play",
        &[("Authorization", &bearer)],
    );
    assert_eq!(r.status, 404);
    // What it minted gets past the policy (to a 404: nothing is live); without it, 401.
    let key_path = format!("/live/cam.flv?key={KEY}");
    assert_eq!(server.request("HEAD", "/live/cam.flv", &[]).status, 401);
    assert_eq!(server.request("HEAD", &key_path, &[]).status, 404);
    // The key never reaches the log.
    assert!(!server.stderr().contains(KEY));
}

/// ffmpeg publishing the 30 s clip in a loop (`-re`), for at most a minute.
fn publish(url: &str) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
        .arg(clip_30s())
        .args(["-t", "60", "-c", "copy", "-f", "flv"]);
    if url.starts_with("http") {
        cmd.args(["-method", "POST"]);
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg")
}

/// curl reading an HTTP-FLV stream, its chunked framing kept (`--raw`) in `out`.
fn curl_reader(url: &str, out: &std::path::Path) -> Child {
    Command::new("curl")
        .args(["-s", "--raw", "--max-time", "60", "-o"])
        .arg(out)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl")
}

/// ffmpeg reading an RTMP stream until it ends.
fn rtmp_reader(url: &str) -> Child {
    Command::new("ffmpeg")
        .args([
            "-v", "error", "-i", url, "-t", "60", "-c", "copy", "-f", "null", "-",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg")
}

/// Waits up to `ms` for `child` to exit; its status (None: still running).
fn exits_within(child: &mut Child, ms: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sessions(server: &Server) -> Vec<serde_json::Value> {
    let r = server.admin_get("/api/v1/sessions", &[]);
    assert_eq!(r.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["sessions"].as_array().unwrap().clone()
}

fn find<'a>(
    list: &'a [serde_json::Value],
    protocol: &str,
    role: &str,
    stream: &str,
) -> Option<&'a serde_json::Value> {
    list.iter()
        .find(|s| s["protocol"] == protocol && s["role"] == role && s["stream"] == stream)
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sessions_are_listed_without_keys_and_kicked_by_id_or_by_stream() {
    let server = Server::start(
        "admin-sessions",
        &format!(
            "[auth]\npublish = \"key\"\nkeys = [\"{KEY}\"]\n[live]\npublisher_grace_ms = 10000\n"
        ),
    );
    let mut http_pub = publish(&server.url(&format!("/live/h.flv?key={KEY}")));
    let mut rtmp_pub = publish(&server.rtmp_url(&format!("/live/r?key={KEY}")));
    wait_for_stream(&server, "h");
    wait_for_stream(&server, "r");
    let flv_out = server.dir.join("h.flv.raw");
    let mut flv_reader = curl_reader(&server.url("/live/h.flv"), &flv_out);
    let mut rtmp_play = rtmp_reader(&server.rtmp_url("/live/r"));

    // All four listed, with protocol, role, stream and client.
    let mut list = Vec::new();
    let all = poll_until(in_ms(15_000), || {
        list = sessions(&server);
        list.len() == 4
            && find(&list, "http-flv", "play", "live/h").is_some()
            && find(&list, "rtmp", "play", "live/r").is_some()
    });
    assert!(all, "sessions: {list:#?}");
    for (protocol, role, stream) in [
        ("http-flv", "publish", "live/h"),
        ("rtmp", "publish", "live/r"),
        ("http-flv", "play", "live/h"),
        ("rtmp", "play", "live/r"),
    ] {
        let s = find(&list, protocol, role, stream)
            .unwrap_or_else(|| panic!("{protocol} {role} {stream} missing: {list:#?}"));
        assert!(
            s["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{s}"
        );
        assert!(s["id"].as_u64().unwrap() > 0);
        assert!(s["age_s"].is_u64());
    }
    let raw = text(server.admin_get("/api/v1/sessions", &[]).body);
    assert!(!raw.contains("key=") && !raw.contains(KEY), "{raw}");
    // Bytes grow: publishers' in, readers' out.
    let figure = |list: &[serde_json::Value], protocol, role, stream, field: &str| {
        find(list, protocol, role, stream).map_or(0, |s| s[field].as_u64().unwrap())
    };
    let before = sessions(&server);
    let grew = poll_until(in_ms(10_000), || {
        let now = sessions(&server);
        [
            ("http-flv", "publish", "live/h", "bytes_in"),
            ("rtmp", "publish", "live/r", "bytes_in"),
            ("http-flv", "play", "live/h", "bytes_out"),
            ("rtmp", "play", "live/r", "bytes_out"),
        ]
        .iter()
        .all(|&(p, r, s, f)| figure(&now, p, r, s, f) > figure(&before, p, r, s, f))
    });
    assert!(
        grew,
        "bytes did not grow: {before:#?}\n{:#?}",
        sessions(&server)
    );

    // Kick the HTTP-FLV reader: its curl ends; the publisher goes on.
    let id = find(&list, "http-flv", "play", "live/h").unwrap()["id"]
        .as_u64()
        .unwrap();
    let r = server.admin_request("DELETE", &format!("/api/v1/sessions/{id}"), &[]);
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    assert!(
        exits_within(&mut flv_reader, 10_000).is_some(),
        "curl still reading"
    );
    assert!(
        http_pub.try_wait().unwrap().is_none(),
        "the publisher stopped too"
    );
    assert!(
        poll_until(in_ms(5_000), || sessions(&server)
            .iter()
            .all(|s| s["id"].as_u64() != Some(id))),
        "the kicked reader is still listed"
    );
    assert!(text(server.admin_get("/api/v1/streams", &[]).body).contains("\"name\":\"h\""));
    // Kicked twice: it is gone.
    assert_eq!(
        server
            .admin_request("DELETE", &format!("/api/v1/sessions/{id}"), &[])
            .status,
        404
    );

    // Kick the RTMP reader: ffmpeg stops.
    let id = find(&list, "rtmp", "play", "live/r").unwrap()["id"]
        .as_u64()
        .unwrap();
    let r = server.admin_request("DELETE", &format!("/api/v1/sessions/{id}"), &[]);
    assert_eq!(r.status, 204);
    assert!(
        exits_within(&mut rtmp_play, 10_000).is_some(),
        "rtmp reader still playing"
    );
    assert!(
        rtmp_pub.try_wait().unwrap().is_none(),
        "the rtmp publisher stopped too"
    );

    // Kick the HTTP publisher: ffmpeg exits.
    let id = find(&list, "http-flv", "publish", "live/h").unwrap()["id"]
        .as_u64()
        .unwrap();
    let r = server.admin_request("DELETE", &format!("/api/v1/sessions/{id}"), &[]);
    assert_eq!(r.status, 204);
    assert!(
        exits_within(&mut http_pub, 10_000).is_some(),
        "the kicked HTTP publisher goes on"
    );

    // DELETE a stream: its publisher is kicked and its readers get the end at once (FLV's
    // last chunk), with no grace period; the stream is gone from the API.
    let end_out = server.dir.join("r.flv.raw");
    let mut end_reader = curl_reader(&server.url("/live/r.flv"), &end_out);
    assert!(
        poll_until(in_ms(10_000), || find(
            &sessions(&server),
            "http-flv",
            "play",
            "live/r"
        )
        .is_some()
            && std::fs::metadata(&end_out).is_ok_and(|m| m.len() > 1000)),
        "the HTTP-FLV reader of r did not start"
    );
    let r = server.admin_request("DELETE", "/api/v1/streams/live/r", &[]);
    assert_eq!(r.status, 204);
    let streams = text(server.admin_get("/api/v1/streams", &[]).body);
    assert!(!streams.contains("\"name\":\"r\""), "{streams}");
    let status = exits_within(&mut end_reader, 5_000).expect("the reader did not end");
    assert!(status.success(), "curl: {status:?} (no terminating chunk?)");
    let body = std::fs::read(&end_out).unwrap();
    assert!(body.ends_with(b"\r\n0\r\n\r\n"), "no last chunk");
    assert!(
        exits_within(&mut rtmp_pub, 10_000).is_some(),
        "the RTMP publisher of the deleted stream goes on"
    );
    assert_eq!(
        server
            .admin_request("DELETE", "/api/v1/streams/live/r", &[])
            .status,
        404
    );
    assert!(
        poll_until(in_ms(5_000), || sessions(&server).is_empty()),
        "sessions left: {:#?}",
        sessions(&server)
    );

    // Counted: two readers and two publishers kicked, each closed as "kicked".
    server.wait_metric("uringcast_sessions_kicked_total", &["role=\"play\""], |v| {
        v == 2.0
    });
    server.wait_metric(
        "uringcast_sessions_kicked_total",
        &["role=\"publish\""],
        |v| v == 2.0,
    );
    server.wait_metric(
        "uringcast_connections_closed_total",
        &["reason=\"kicked\""],
        |v| v == 4.0,
    );
    server.assert_closes_add_up();
    for child in [http_pub, rtmp_pub, flv_reader, rtmp_play, end_reader] {
        kill(child);
    }
}
