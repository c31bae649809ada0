//! `[auth]` with real peers: keys and signed URLs over HTTP (FLV, TS, HLS) and RTMP; ffmpeg
//! publishes and decodes where allowed and is refused, with 401/403 or the RTMP status codes,
//! where not; refusals are counted by reason and never echo the secret.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::flv::ffmpeg_decode;
use common::media::{assert_recording, clip_30s, publish_30s as publish, wait_for_stream};
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
    assert_refusals_counted(
        &text,
        "http",
        &[
            ("publish", "no_key"),
            ("publish", "wrong_key"),
            ("play", "no_token"),
            ("play", "expired"),
            ("play", "bad_token"),
        ],
    );
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

/// GStreamer's rtmp2sink publishes with `?key=` on the stream name; librtmp (rtmpdump) and
/// GStreamer's rtmp2src play with a signed URL: RTMP peers that are not ffmpeg carry the
/// credentials the same way and get the same refusals.
#[test]
fn librtmp_and_gstreamer_carry_keys_and_tokens() {
    let server = Server::start(
        "auth-librtmp",
        &format!(
            "[auth]\npublish = \"key\"\nkeys = [\"k-right\"]\nplay = \"signed\"\nsecrets = [\"{SECRET}\"]\n"
        ),
    );
    let flv = common::media::av_flv();
    let gst_publish = |query: &str| {
        let pipeline = format!(
            "filesrc location={} ! flvdemux name=d d.video ! queue ! h264parse ! flvmux name=m streamable=true ! rtmp2sink location={} d.audio ! queue ! aacparse ! m.",
            flv.display(),
            server.rtmp_url(&format!("/live/g?{query}")),
        );
        let mut cmd = Command::new("gst-launch-1.0");
        cmd.arg("-q").args(pipeline.split_whitespace());
        cmd
    };
    // A wrong key: rtmp2sink is told BadName and gives up at once.
    let (ok, err) = run_bounded(&mut gst_publish("key=k-wrong"), Duration::from_secs(15));
    assert_eq!(ok, Some(false), "rtmp2sink with a wrong key: {err}");
    assert!(err.contains("NetStream.Publish.BadName"), "{err}");
    // The right key publishes.
    let mut publisher = gst_publish("key=k-right")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("gst-launch-1.0");
    wait_for_stream(&server, "g");

    let token = signed(Action::Play, "g", now_s() + 120);
    let expired = signed(Action::Play, "g", now_s() - 5);
    for (query, allowed) in [("", false), (expired.as_str(), false), (&token, true)] {
        let url = server.rtmp_url(&format!("/live/g?{query}"));
        let by_rtmpdump = server.dir.join(format!("rtmpdump-{allowed}.flv"));
        let (ok, err) = run_bounded(
            Command::new("rtmpdump")
                .args(["--live", "-q", "-r", &url, "-o"])
                .arg(&by_rtmpdump),
            Duration::from_secs(5),
        );
        let by_rtmp2src = server.dir.join(format!("rtmp2src-{allowed}.flv"));
        let (ok2, err2) = run_bounded(
            Command::new("gst-launch-1.0").arg("-q").args(
                format!(
                    "rtmp2src location={url} ! filesink location={}",
                    by_rtmp2src.display()
                )
                .split_whitespace(),
            ),
            Duration::from_secs(5),
        );
        if allowed {
            // Both record until they are stopped at the bound.
            assert_recording(&by_rtmpdump, 2.0, "rtmpdump with a token");
            assert_recording(&by_rtmp2src, 2.0, "rtmp2src with a token");
        } else {
            assert_eq!(
                ok,
                Some(false),
                "rtmpdump played without a valid token: {err}"
            );
            assert_eq!(by_rtmpdump.metadata().map_or(0, |m| m.len()), 0);
            assert_eq!(
                ok2,
                Some(false),
                "rtmp2src played without a valid token: {err2}"
            );
            assert!(err2.contains("NetStream.Play.Failed"), "{err2}");
        }
    }
    let text = server.metrics();
    assert_refusals_counted(
        &text,
        "rtmp",
        &[
            ("publish", "wrong_key"),
            ("play", "no_token"),
            ("play", "expired"),
        ],
    );
    assert!(!server.stderr().contains(SECRET) && !server.stderr().contains("k-wrong"));
    let _ = publisher.kill();
    let _ = publisher.wait();
}

/// SIGHUP reads the config file again: a key added to it and a secret added to the secret
/// file work without a restart; a broken file is refused with one log line naming the key
/// and the running policy stays; a key that needs a restart is logged as such.
#[test]
fn sighup_reloads_the_policy_and_refuses_a_broken_file() {
    const NEW_SECRET: &str = "rotated-secret-abcdef0123";
    let dir = common::scratch("auth-reload-secrets");
    let secret_file = dir.join("secrets");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let policy = |keys: &str| {
        format!(
            "[auth]\npublish = \"key\"\nkeys = [{keys}]\nplay = \"signed\"\nsecret_file = \"{}\"\n",
            secret_file.display()
        )
    };
    let server = Server::start("auth-reload", &policy("\"k-old\""));
    let config = server.dir.join("uringcast.toml");
    let hup = |text: &str| {
        std::fs::write(&config, format!("workers = 2\n{text}")).unwrap();
        let status = Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    let flv = common::media::av_flv();
    let mut n = 0;
    let mut publish_status = |key: &str| {
        n += 1;
        let (_, out, _) = common::run_bounded_output(
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
                .arg("--data-binary")
                .arg(format!("@{}", flv.display()))
                .arg(server.url(&format!("/live/p{n}.flv?key={key}"))),
            Duration::from_secs(10),
        );
        out.trim().parse::<u16>().unwrap_or(0)
    };
    let mut publisher = publish(&server.url("/live/s.flv?key=k-old"), "flv", 30);
    wait_for_stream(&server, "s");
    let play_status = |secret: &str| {
        let expires = now_s() + 60;
        let token = sign(secret.as_bytes(), Action::Play, "live", "s", expires);
        server
            .request(
                "HEAD",
                &format!("/live/s.flv?expires={expires}&token={token}"),
                &[],
            )
            .status
    };
    assert_eq!(publish_status("k-new"), 403);
    assert_eq!(play_status(NEW_SECRET), 403);
    assert_eq!(play_status(SECRET), 200);

    // A key in the file and a secret in the secret file, then SIGHUP.
    std::fs::write(&secret_file, format!("{SECRET}\n{NEW_SECRET}\n")).unwrap();
    hup(&policy("\"k-old\", \"k-new\""));
    server.wait_metric(
        "uringcast_config_reloads_total",
        &["result=\"applied\""],
        |v| v == 1.0,
    );
    assert!(
        common::poll_until(common::in_ms(5_000), || publish_status("k-new") == 200),
        "the reloaded key is not accepted"
    );
    assert_eq!(publish_status("k-old"), 200);
    assert_eq!(publish_status("k-wrong"), 403);
    assert_eq!(play_status(NEW_SECRET), 200);
    assert_eq!(play_status(SECRET), 200);

    // A broken file: refused, logged once with the key, nothing changes.
    hup("[auth]\npublish = \"sometimes\"\n");
    server.wait_metric(
        "uringcast_config_reloads_total",
        &["result=\"refused\""],
        |v| v == 1.0,
    );
    let stderr = server.stderr();
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("configuration reload refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{stderr}");
    assert!(refused[0].contains("auth.publish"), "{}", refused[0]);
    assert_eq!(publish_status("k-new"), 200);
    assert_eq!(play_status(NEW_SECRET), 200);

    // A valid file that changes a start-only key: applied, the key named as needing a restart.
    hup(&format!("pin_workers = false\n{}", policy("\"k-new\"")));
    server.wait_metric(
        "uringcast_config_reloads_total",
        &["result=\"applied\""],
        |v| v == 2.0,
    );
    assert!(
        common::poll_until(common::in_ms(5_000), || publish_status("k-old") == 403),
        "a key removed from the file still publishes"
    );
    let stderr = server.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("needs a restart") && l.contains("pin_workers")),
        "{stderr}"
    );
    // The publisher admitted under the old policy goes on.
    assert_eq!(play_status(SECRET), 200);
    let _ = publisher.kill();
    let _ = publisher.wait();
}

/// HLS pushed with PUT under a play policy: the pushed playlist, asked for with a key, carries
/// the key into its segment URIs (what is stored stays as pushed), so a player that was
/// given one URL plays the whole stream; without the key everything is 401.
#[test]
fn a_pushed_playlist_carries_the_play_key_into_its_segments() {
    let server = Server::start(
        "auth-hls-push",
        "[auth]\nplay = \"key\"\nkeys = [\"k-play\"]\n[hls]\npush_object_bytes_max = 2000000\npush_stream_bytes_max = 8000000\n",
    );
    let mut pusher = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(clip_30s())
        .args(["-t", "12", "-c", "copy", "-f", "hls", "-hls_time", "1"])
        .args(["-hls_list_size", "4", "-method", "PUT"])
        .arg(server.url("/live/hp/index.m3u8"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    let mut playlist = String::new();
    let listed = common::poll_until(common::in_ms(15_000), || {
        let r = server.get("/live/hp/index.m3u8?key=k-play", &[]);
        playlist = String::from_utf8_lossy(&r.body).into_owned();
        r.status == 200 && playlist.matches("#EXTINF").count() >= 2
    });
    assert!(listed, "the pushed playlist never appeared: {playlist}");
    let segments: Vec<&str> = playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for uri in &segments {
        assert!(uri.ends_with(".ts?key=k-play"), "{playlist}");
        let r = server.get(&format!("/live/hp/{uri}"), &[]);
        assert_eq!(r.status, 200, "{uri}");
        assert_eq!(r.body.first(), Some(&0x47), "{uri}");
        let bare = uri.split('?').next().unwrap();
        assert_eq!(server.get(&format!("/live/hp/{bare}"), &[]).status, 401);
    }
    assert_eq!(server.get("/live/hp/index.m3u8", &[]).status, 401);
    assert_eq!(
        server.get("/live/hp/index.m3u8?key=k-wrong", &[]).status,
        403
    );
    let (ok, err) = ffmpeg_decode(
        &server.url("/live/hp/index.m3u8?key=k-play"),
        "error",
        Some(2.0),
        Duration::from_secs(30),
    );
    assert!(
        ok && err.trim().is_empty(),
        "ffmpeg on the keyed playlist: {err}"
    );
    let _ = pusher.kill();
    let _ = pusher.wait();
}

/// A stream whose publisher has gone is kept for `live.publisher_grace_ms` so the encoder can
/// come back; only a publisher that passes the same check may take it over meanwhile.
#[test]
fn a_stream_in_its_grace_period_is_taken_over_only_with_credentials() {
    let server = Server::start(
        "auth-grace",
        "[auth]\npublish = \"key\"\nkeys = [\"k-right\"]\n[live]\npublisher_grace_ms = 30000\n",
    );
    let flv = common::media::av_flv();
    let post = |key: &str| {
        let (_, out, _) = common::run_bounded_output(
            Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
                .arg("--data-binary")
                .arg(format!("@{}", flv.display()))
                .arg(server.url(&format!("/live/g.flv?key={key}"))),
            Duration::from_secs(10),
        );
        out.trim().to_string()
    };
    // The body ends at once: the stream is in its grace period.
    assert_eq!(post("k-right"), "200");
    let publishes = || {
        let body = server.admin_get("/api/v1/streams", &[]).body;
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        json["streams"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "g"))
            .map(|s| s["publishes"].as_u64().unwrap_or(0))
    };
    assert_eq!(publishes(), Some(1));
    assert_eq!(post("k-wrong"), "403");
    assert_eq!(post(""), "403");
    assert_eq!(
        publishes(),
        Some(1),
        "a refused publisher touched the stream"
    );
    assert_eq!(post("k-right"), "200");
    assert_eq!(publishes(), Some(2));
}

/// Each (action, reason) refusal of `protocol` is counted in /metrics (`text`).
fn assert_refusals_counted(text: &str, protocol: &str, refusals: &[(&str, &str)]) {
    for (action, reason) in refusals {
        let filters = [
            format!("protocol=\"{protocol}\""),
            format!("action=\"{action}\""),
            format!("reason=\"{reason}\""),
        ];
        let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
        assert!(
            common::metric_sum(text, "uringcast_auth_refused_total", &filters) >= 1.0,
            "{protocol} {action}/{reason} not counted:\n{text}"
        );
    }
}
