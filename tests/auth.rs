//! `[auth]` with real peers: keys and signed URLs over HTTP (FLV, TS, HLS) and RTMP; ffmpeg
//! publishes and decodes where allowed and is refused, with 401/403 or the RTMP status codes,
//! where not; refusals are counted by reason and never echo the secret.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::flv::ffmpeg_decode;
use common::media::{clip_30s, wait_for_stream};
use common::{Server, run_bounded};
use uringcast::app::auth::{Action, sign};

const SECRET: &str = "test-secret-0123456789";

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signed(action: Action, stream: &str, expires: u64) -> String {
    let token = sign(SECRET.as_bytes(), action, "live", stream, expires);
    format!("expires={expires}&token={token}")
}

/// `ffmpeg -re -i clip -t SECONDS -c copy -f FORMAT URL`, bounded; (exit success, stderr).
fn publish(url: &str, format: &str, seconds: u32) -> std::process::Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-re", "-i"])
        .arg(clip_30s())
        .args(["-t", &seconds.to_string(), "-c", "copy", "-f", format]);
    if url.starts_with("http") {
        cmd.args(["-method", "POST"]);
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ffmpeg")
}

#[test]
fn http_publish_with_keys_and_play_with_signed_urls() {
    let server = Server::start(
        "auth-http",
        &format!(
            "[auth]\npublish = \"key\"\nkeys = [\"k-right\"]\nplay = \"signed\"\nsecrets = [\"{SECRET}\"]\n[hls]\nsegment_target_ms = 1000\n"
        ),
    );
    let post = |path: &str| {
        server
            .request("POST", path, &[("Content-Length", "13")])
            .status
    };
    // Publish: no key, a wrong key, a signed play token as if it were a key.
    assert_eq!(post("/live/s.flv"), 401);
    assert_eq!(post("/live/s.flv?key=k-wrong"), 403);
    assert_eq!(
        post(&format!(
            "/live/s.flv?{}",
            signed(Action::Publish, "s", now_s() + 60)
        )),
        401
    );
    let refused = server.request(
        "POST",
        "/live/s.flv?key=k-wrong",
        &[("Content-Length", "13")],
    );
    assert!(!String::from_utf8_lossy(&refused.body).contains("k-wrong"));
    // The right key publishes.
    let mut publisher = publish(&server.url("/live/s.flv?key=k-right"), "flv", 20);
    wait_for_stream(&server, "s");

    // Play: nothing, expired, another stream, a publish token, then the right one.
    let get = |path: &str| server.get(path, &[]).status;
    assert_eq!(get("/live/s.flv"), 401);
    assert_eq!(
        get(&format!(
            "/live/s.flv?{}",
            signed(Action::Play, "s", now_s() - 5)
        )),
        403
    );
    assert_eq!(
        get(&format!(
            "/live/s.flv?{}",
            signed(Action::Play, "other", now_s() + 60)
        )),
        403
    );
    assert_eq!(
        get(&format!(
            "/live/s.flv?{}",
            signed(Action::Publish, "s", now_s() + 60)
        )),
        403
    );
    assert_eq!(get("/live/s/index.m3u8"), 401);
    // One token covers the stream's FLV, TS and HLS (playlist and segments).
    let token = signed(Action::Play, "s", now_s() + 120);
    for path in ["/live/s.flv", "/live/s.ts", "/live/s/index.m3u8"] {
        let url = server.url(&format!("{path}?{token}"));
        let (ok, err) = ffmpeg_decode(&url, "error", Some(3.0), Duration::from_secs(30));
        assert!(ok && err.trim().is_empty(), "ffmpeg on {path}: {err}");
    }
    let playlist =
        String::from_utf8(server.get(&format!("/live/s/index.m3u8?{token}"), &[]).body).unwrap();
    let segment = playlist
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .expect("a segment");
    assert!(segment.ends_with(&token), "{segment}");
    let bare = segment.split('?').next().unwrap();
    assert_eq!(
        get(&format!("/live/s/{bare}")),
        401,
        "a segment without the token"
    );

    let text = server.metrics();
    for (action, reason) in [
        ("publish", "no_key"),
        ("publish", "wrong_key"),
        ("play", "no_token"),
        ("play", "expired"),
        ("play", "bad_token"),
    ] {
        let filters = [
            "protocol=\"http\"",
            &format!("action=\"{action}\""),
            &format!("reason=\"{reason}\""),
        ];
        assert!(
            common::metric_sum(&text, "uringcast_auth_refused_total", &filters) >= 1.0,
            "{action}/{reason} not counted:\n{text}"
        );
    }
    assert!(!server.stderr().contains(SECRET) && !server.stderr().contains("k-wrong"));
    let _ = publisher.kill();
    let _ = publisher.wait();
}

#[test]
fn rtmp_publish_and_play_follow_the_same_policy() {
    let server = Server::start(
        "auth-rtmp",
        &format!(
            "[auth]\npublish = \"key\"\nkeys = [\"k-right\"]\nplay = \"signed\"\nsecrets = [\"{SECRET}\"]\n"
        ),
    );
    // A wrong key: ffmpeg's publish is refused (NetStream.Publish.BadName) and it gives up.
    let (ok, err) = run_bounded(
        Command::new("ffmpeg")
            .args(["-v", "error", "-re", "-i"])
            .arg(clip_30s())
            .args(["-t", "3", "-c", "copy", "-f", "flv"])
            .arg(server.rtmp_url("/live/r?key=k-wrong")),
        Duration::from_secs(20),
    );
    assert_ne!(ok, Some(true), "a wrong key published: {err}");
    // The key on the stream name publishes; a signed URL plays over RTMP and HTTP-FLV.
    let mut publisher = publish(&server.rtmp_url("/live/r?key=k-right"), "flv", 20);
    wait_for_stream(&server, "r");
    let token = signed(Action::Play, "r", now_s() + 120);
    let (ok, err) = ffmpeg_decode(
        &server.rtmp_url(&format!("/live/r?{token}")),
        "error",
        Some(3.0),
        Duration::from_secs(30),
    );
    assert!(ok && err.trim().is_empty(), "rtmp play with a token: {err}");
    // Without a token: NetStream.Play.Failed, ffmpeg fails.
    let (ok, _) = ffmpeg_decode(
        &server.rtmp_url("/live/r"),
        "error",
        Some(2.0),
        Duration::from_secs(20),
    );
    assert!(!ok, "an RTMP play without a token played");
    let text = server.metrics();
    assert!(
        common::metric_sum(
            &text,
            "uringcast_auth_refused_total",
            &["protocol=\"rtmp\"", "reason=\"wrong_key\""]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        common::metric_sum(
            &text,
            "uringcast_auth_refused_total",
            &["protocol=\"rtmp\"", "reason=\"no_token\""]
        ) >= 1.0,
        "{text}"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
}
