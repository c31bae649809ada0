//! `[auth]` mode `http` with real peers: a small Python auth service (tests/data/
//! auth_service.py) decides by stream name (`allow…` 204, `deny…` 403, `slow…` answers after
//! the timeout) and logs every request body; ffmpeg, curl and ffprobe publish and play over
//! HTTP-FLV, RTMP and HLS. Each case checks the status codes the clients get and what the
//! service received: the JSON fields, one request per cache period, and the publish_done and
//! play_done notifications with their bytes and durations.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::flv::ffmpeg_decode;
use common::media::{clip_30s, publish_30s as publish, wait_for_stream};
use common::{Server, poll_until, run_bounded, run_bounded_output, scratch};
use serde_json::Value;

/// A token the service is given in the query: it must never reach the server's logs.
const TOKEN: &str = "tok-7f3a9c1e55";

/// The Python auth service, killed on drop.
struct AuthService {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl AuthService {
    fn start(name: &str) -> AuthService {
        let dir = scratch(name);
        let log = dir.join("requests.jsonl");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/auth_service.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&log)
            .arg("3")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the auth service prints its port");
        let port = line.trim().parse().expect("a port");
        AuthService { child, port, log }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/auth", self.port)
    }

    /// Every request body received so far.
    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    fn requests_for(&self, action: &str, stream: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["action"] == action && r["stream"] == stream)
            .collect()
    }

    /// Wait (bounded) until the service has `n` requests of `action` for `stream`.
    fn wait_for(&self, action: &str, stream: &str, n: usize) -> Vec<Value> {
        poll_until(Instant::now() + Duration::from_secs(15), || {
            self.requests_for(action, stream).len() >= n
        });
        let got = self.requests_for(action, stream);
        assert!(
            got.len() >= n,
            "the service did not get {n} {action} for {stream}: {:#?}",
            self.requests()
        );
        got
    }
}

impl Drop for AuthService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have_tools() -> bool {
    let mut missing = Vec::new();
    for tool in ["ffmpeg", "curl"] {
        if !common::have(tool) {
            missing.push(tool.to_string());
        }
    }
    if Command::new("python3")
        .arg("--version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        missing.push("python3".into());
    }
    common::required_or_skip("auth_http", &missing)
}

fn config(url: &str, extra: &str) -> String {
    format!(
        "[auth]\npublish = \"http\"\nplay = \"http\"\nhttp_url = \"{url}\"\nhttp_timeout_ms = 1000\n{extra}"
    )
}

/// The body fields every request carries, and the client's address.
fn assert_fields(request: &Value, action: &str, protocol: &str) {
    for field in [
        "action",
        "app",
        "stream",
        "query",
        "client_ip",
        "protocol",
        "session_id",
    ] {
        assert!(request.get(field).is_some(), "no {field} in {request}");
    }
    assert_eq!(request["action"], action, "{request}");
    assert_eq!(request["app"], "live", "{request}");
    assert_eq!(request["client_ip"], "127.0.0.1", "{request}");
    assert_eq!(request["protocol"], protocol, "{request}");
    assert!(
        request["session_id"].as_u64().is_some_and(|id| id > 0),
        "{request}"
    );
    assert_eq!(request["_path"], "/auth", "{request}");
    assert_eq!(request["_content_type"], "application/json", "{request}");
}

/// curl GET for at most `seconds`: (HTTP status, body bytes).
fn curl(url: &str, seconds: u32) -> (u16, usize) {
    let (_, out, _) = run_bounded_output(
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code} %{size_download}",
            ])
            .args(["--max-time", &seconds.to_string()])
            .arg(url),
        Duration::from_secs(u64::from(seconds) + 10),
    );
    let mut words = out.split_whitespace();
    let status = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    let bytes = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
    (status, bytes)
}

#[test]
fn http_flv_publish_and_play_are_decided_by_the_service_and_their_ends_notified() {
    if !have_tools() {
        return;
    }
    let service = AuthService::start("auth-http-svc");
    // ffmpeg's HTTP output never reads the answer to its POST: it only fails once the server
    // stops discarding its body after the 403 (the lingering close's byte budget).
    let server = Server::start(
        "auth-http-flv",
        &format!(
            "{}[http]\nlingering_close_bytes = 16384\n",
            config(&service.url(), "")
        ),
    );

    // Denied: 403 with the reason, and ffmpeg cannot publish.
    let refused = server.request("POST", "/live/deny1.flv", &[("Content-Length", "13")]);
    assert_eq!(refused.status, 403);
    assert!(
        String::from_utf8_lossy(&refused.body).contains("refused by the auth service"),
        "{:?}",
        String::from_utf8_lossy(&refused.body)
    );
    let (ok, _) = run_bounded(
        Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-i"])
            .arg(clip_30s())
            .args(["-t", "3", "-c", "copy", "-f", "flv", "-method", "POST"])
            .arg(server.url("/live/deny2.flv")),
        Duration::from_secs(20),
    );
    assert_ne!(ok, Some(true), "ffmpeg published a denied stream");
    let asked = service.wait_for("publish", "deny2", 1);
    assert_fields(&asked[0], "publish", "http-flv");

    // Allowed: ffmpeg publishes for 6 s, with a token the service sees and the logs don't.
    let started = Instant::now();
    let mut publisher = publish(
        &server.url(&format!("/live/allow1.flv?token={TOKEN}")),
        "flv",
        6,
    );
    wait_for_stream(&server, "allow1");
    let publish_asks = service.wait_for("publish", "allow1", 1);
    assert_eq!(publish_asks.len(), 1, "{publish_asks:#?}");
    assert_fields(&publish_asks[0], "publish", "http-flv");
    assert_eq!(publish_asks[0]["query"], format!("token={TOKEN}"));

    // Play: curl gets 200 and bytes for 2 s; ffprobe-like decode by ffmpeg works too.
    let (status, bytes) = curl(&server.url("/live/allow1.flv"), 2);
    assert_eq!(status, 200);
    assert!(bytes > 10_000, "{bytes} bytes played");
    let (ok, err) = ffmpeg_decode(
        &server.url("/live/allow1.ts"),
        "error",
        Some(1.0),
        Duration::from_secs(20),
    );
    assert!(ok, "ffmpeg could not play an allowed stream: {err}");
    let plays = service.wait_for("play", "allow1", 2);
    assert_fields(&plays[0], "play", "http-flv");
    assert!(
        plays.iter().any(|p| p["protocol"] == "http-ts"),
        "{plays:#?}"
    );
    assert_eq!(plays[0]["query"], "");

    // Denied and slow plays: 403, the slow one after about the timeout (1 s).
    assert_eq!(server.get("/live/deny3.flv", &[]).status, 403);
    let t = Instant::now();
    let slow = server.get("/live/slow1.flv", &[]);
    let waited = t.elapsed();
    assert_eq!(slow.status, 403);
    assert!(
        String::from_utf8_lossy(&slow.body).contains("in time"),
        "{:?}",
        String::from_utf8_lossy(&slow.body)
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "a slow service answered after {waited:?}"
    );

    // The publish ends: exactly one publish_done, with its bytes and duration.
    let status = publisher.wait().expect("ffmpeg");
    let ran = started.elapsed();
    assert!(status.success(), "the allowed publish failed");
    let done = service.wait_for("publish_done", "allow1", 1);
    let plays_done = service.wait_for("play_done", "allow1", 1);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(service.requests_for("publish_done", "allow1").len(), 1);
    let done = &done[0];
    assert_fields(done, "publish_done", "http-flv");
    assert_eq!(done["query"], format!("token={TOKEN}"));
    assert_eq!(done["session_id"], publish_asks[0]["session_id"]);
    assert!(done["bytes"].as_u64().unwrap() > 100_000, "{done}");
    let ms = done["duration_ms"].as_u64().unwrap();
    assert!(
        ms >= 4500 && ms <= ran.as_millis() as u64 + 500,
        "publish_done says {ms} ms, the publish ran {ran:?}"
    );
    let flv_done = plays_done
        .iter()
        .find(|p| p["protocol"] == "http-flv")
        .expect("play_done of the FLV play");
    assert_fields(flv_done, "play_done", "http-flv");
    assert!(flv_done["bytes"].as_u64().unwrap() > 10_000, "{flv_done}");
    let ms = flv_done["duration_ms"].as_u64().unwrap();
    assert!(
        (1500..=4000).contains(&ms),
        "play_done of a 2 s play: {ms} ms"
    );

    let text = server.metrics();
    for (action, result) in [
        ("publish", "allow"),
        ("publish", "deny"),
        ("play", "allow"),
        ("play", "timeout"),
    ] {
        let filters = [
            &format!("action=\"{action}\"")[..],
            &format!("result=\"{result}\""),
        ];
        assert!(
            common::metric_sum(&text, "uringcast_auth_callouts_total", &filters) >= 1.0,
            "{action}/{result} not counted:\n{text}"
        );
    }
    assert!(
        common::metric_sum(
            &text,
            "uringcast_auth_refused_total",
            &["protocol=\"http\"", "reason=\"http_timeout\""]
        ) >= 1.0
    );
    assert!(
        common::metric_sum(
            &text,
            "uringcast_auth_notifications_total",
            &["event=\"publish_done\"", "result=\"sent\""]
        ) >= 1.0,
        "{text}"
    );
    assert!(!server.stderr().contains(TOKEN), "the token was logged");
}

#[test]
fn a_service_that_is_down_refuses() {
    if !have_tools() {
        return;
    }
    // A port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/auth");
    let server = Server::start("auth-http-down", &config(&url, ""));
    let t = Instant::now();
    let refused = server.get("/live/allow1.flv", &[]);
    assert_eq!(refused.status, 403);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(String::from_utf8_lossy(&refused.body).contains("unreachable"));
    let refused = server.request("POST", "/live/allow1.flv", &[("Content-Length", "13")]);
    assert_eq!(refused.status, 403);
    let text = server.metrics();
    assert!(
        common::metric_sum(
            &text,
            "uringcast_auth_callouts_total",
            &["result=\"unreachable\""]
        ) >= 2.0,
        "{text}"
    );
    // Not cached: the next request asks again.
    assert_eq!(server.get("/live/allow1.flv", &[]).status, 403);
    let text = server.metrics();
    assert!(
        common::metric_sum(
            &text,
            "uringcast_auth_callouts_total",
            &["result=\"unreachable\""]
        ) >= 3.0,
        "{text}"
    );
}

#[test]
fn rtmp_publish_and_play_wait_for_the_service() {
    if !have_tools() {
        return;
    }
    let service = AuthService::start("auth-rtmp-svc");
    let server = Server::start("auth-http-rtmp", &config(&service.url(), ""));
    // Denied publish: NetStream.Publish.BadName, ffmpeg gives up.
    let (ok, err) = run_bounded(
        Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-i"])
            .arg(clip_30s())
            .args(["-t", "3", "-c", "copy", "-f", "flv"])
            .arg(server.rtmp_url("/live/deny1")),
        Duration::from_secs(20),
    );
    assert_ne!(ok, Some(true), "a denied RTMP publish went through: {err}");
    let asked = service.wait_for("publish", "deny1", 1);
    assert_fields(&asked[0], "publish", "rtmp");

    // Allowed publish (with the token on the stream name) and play.
    let mut publisher = publish(
        &server.rtmp_url(&format!("/live/allow2?token={TOKEN}")),
        "flv",
        8,
    );
    wait_for_stream(&server, "allow2");
    let asked = service.wait_for("publish", "allow2", 1);
    assert_fields(&asked[0], "publish", "rtmp");
    assert_eq!(asked[0]["query"], format!("token={TOKEN}"));
    let (ok, err) = ffmpeg_decode(
        &server.rtmp_url("/live/allow2"),
        "error",
        Some(2.0),
        Duration::from_secs(30),
    );
    assert!(ok, "an allowed RTMP play failed: {err}");
    let asked = service.wait_for("play", "allow2", 1);
    assert_fields(&asked[0], "play", "rtmp");
    // Denied play: NetStream.Play.Failed.
    let (ok, _) = ffmpeg_decode(
        &server.rtmp_url("/live/deny2"),
        "error",
        Some(1.0),
        Duration::from_secs(20),
    );
    assert!(!ok, "a denied RTMP play played");
    service.wait_for("play", "deny2", 1);
    // The RTMP player's end and the publisher's end are notified.
    let done = service.wait_for("play_done", "allow2", 1);
    assert_fields(&done[0], "play_done", "rtmp");
    assert!(done[0]["bytes"].as_u64().unwrap() > 10_000, "{}", done[0]);
    let _ = publisher.wait();
    let done = service.wait_for("publish_done", "allow2", 1);
    assert_fields(&done[0], "publish_done", "rtmp");
    assert!(done[0]["bytes"].as_u64().unwrap() > 100_000, "{}", done[0]);
    // A slow service: the publish waits for the timeout, then BadName.
    let t = Instant::now();
    let (ok, _) = run_bounded(
        Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-i"])
            .arg(clip_30s())
            .args(["-t", "3", "-c", "copy", "-f", "flv"])
            .arg(server.rtmp_url("/live/slow3")),
        Duration::from_secs(20),
    );
    assert_ne!(ok, Some(true), "a publish past the timeout went through");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let text = server.metrics();
    for (reason, at_least) in [("http_denied", 2.0), ("http_timeout", 1.0)] {
        assert!(
            common::metric_sum(
                &text,
                "uringcast_auth_refused_total",
                &["protocol=\"rtmp\"", &format!("reason=\"{reason}\"")]
            ) >= at_least,
            "{reason}: {text}"
        );
    }
    assert!(!server.stderr().contains(TOKEN), "the token was logged");
}

#[test]
fn hls_gets_are_checked_once_per_cache_period() {
    if !have_tools() {
        return;
    }
    let service = AuthService::start("auth-hls-svc");
    // One worker: the cache is per worker.
    let mut server = Server::start(
        "auth-http-hls",
        &format!(
            "workers = 1\n{}[hls]\nsegment_target_ms = 1000\n",
            config(&service.url(), "http_cache_ms = 30000\n")
        ),
    );
    let mut publisher = publish(&server.url("/live/allow3.flv"), "flv", 15);
    wait_for_stream(&server, "allow3");
    let playlist = "/live/allow3/index.m3u8";
    let ready = poll_until(Instant::now() + Duration::from_secs(15), || {
        server.get(playlist, &[]).status == 200
    });
    assert!(ready, "no playlist");
    for _ in 0..10 {
        let r = server.get(playlist, &[]);
        assert_eq!(r.status, 200);
        let text = String::from_utf8(r.body).unwrap();
        assert!(text.starts_with("#EXTM3U"), "{text}");
        let segment = text
            .lines()
            .find(|l| !l.starts_with('#') && !l.is_empty())
            .expect("a segment");
        assert_eq!(
            server.get(&format!("/live/allow3/{segment}"), &[]).status,
            200
        );
    }
    let asks = service.requests_for("play", "allow3");
    assert_eq!(asks.len(), 1, "one check for 20+ GETs: {asks:#?}");
    assert_fields(&asks[0], "play", "hls");
    let hits = common::metric_sum(
        &server.metrics(),
        "uringcast_auth_cache_hits_total",
        &["action=\"play\""],
    );
    assert!(hits >= 20.0, "{hits} cache hits");
    // A denied stream is cached as denied too.
    assert_eq!(server.get("/live/deny4/index.m3u8", &[]).status, 403);
    assert_eq!(server.get("/live/deny4/index.m3u8", &[]).status, 403);
    assert_eq!(service.requests_for("play", "deny4").len(), 1);
    // A shutdown ends the publish: its publish_done still goes out (once), before the exit.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let done = service.wait_for("publish_done", "allow3", 1);
    assert_eq!(done.len(), 1, "{done:#?}");
    assert!(done[0]["bytes"].as_u64().unwrap() > 10_000, "{}", done[0]);
    let _ = publisher.kill();
    let _ = publisher.wait();
    // HLS has no session: no play_done.
    assert!(
        service
            .requests()
            .iter()
            .all(|r| r["action"] != "play_done"),
        "{:#?}",
        service.requests()
    );
}

#[test]
fn past_the_pending_limit_requests_are_answered_503() {
    if !have_tools() {
        return;
    }
    let service = AuthService::start("auth-pending-svc");
    let server = Server::start(
        "auth-http-pending",
        &format!(
            "workers = 1\n{}",
            config(&service.url(), "http_pending_max = 1\n")
        ),
    );
    // One slow decision holds the only callout slot for the timeout (1 s)...
    let url = server.url("/live/slow2.flv");
    let slow = std::thread::spawn(move || curl(&url, 10));
    service.wait_for("play", "slow2", 1);
    // ...so the next request is answered 503 naming the limit, without asking.
    let busy = server.get("/live/allow5.flv", &[]);
    assert_eq!(busy.status, 503);
    assert!(
        String::from_utf8_lossy(&busy.body).contains("auth.http_pending_max"),
        "{:?}",
        String::from_utf8_lossy(&busy.body)
    );
    assert!(service.requests_for("play", "allow5").is_empty());
    assert_eq!(slow.join().unwrap().0, 403);
    // The slot is free again: the next request is asked about (and allowed; the stream is
    // not there, so 404 after the wait).
    let t = Instant::now();
    let status = server.get("/live/allow5.flv", &[]).status;
    assert!(
        status == 404 || status == 200,
        "{status} after {:?}",
        t.elapsed()
    );
    assert_eq!(service.requests_for("play", "allow5").len(), 1);
    assert!(
        common::metric_sum(
            &server.metrics(),
            "uringcast_auth_refused_total",
            &["reason=\"http_busy\""]
        ) >= 1.0
    );
}
