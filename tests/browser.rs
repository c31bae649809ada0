//! Real browser players against the real binary: Debian's headless Chromium, driven by
//! `tests/browser/play.mjs` (playwright-core), plays uringcast's live output with the players
//! sites use (mpegts.js, from npm) from a page on another origin, and the test checks that the
//! <video> element shows the picture and that its clock runs with wall time.
//!
//! Needs node, /usr/bin/chromium and `npm ci` in tests/browser (scripts/test.sh does all three);
//! without them the test prints a SKIP line, except under `CI=true`, where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::flv::publish_clip;
use common::media::{clip_30s, wait_for_stream};
use common::{Server, required_or_skip, run_bounded_output};
use serde_json::Value;

/// tests/browser: play.mjs, its page and node_modules.
fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Where screenshots and the harness's JSON are kept after the run: target/browser-artifacts.
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("browser-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether the browser set-up is here (see the module doc for what happens when it is not).
fn browser_ready(test: &str) -> bool {
    let mut missing = Vec::new();
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        missing.push("node".to_string());
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        missing.push(format!("{chromium} (apt-get install chromium)"));
    }
    for module in ["playwright-core", "mpegts.js", "hls.js"] {
        if !harness_dir().join("node_modules").join(module).exists() {
            missing.push(format!("tests/browser/node_modules/{module} (npm ci)"));
        }
    }
    required_or_skip(test, &missing)
}

/// What play.mjs reported (its one JSON line).
struct Played {
    json: Value,
    /// (wall ms since playback started, video.currentTime in s).
    samples: Vec<(f64, f64)>,
}

/// `node play.mjs --player PLAYER --url URL --seconds N --screenshot ARTEFACT.png`; keeps the
/// JSON next to the screenshot. Panics if the harness itself fails or overruns.
fn play(player: &str, url: &str, seconds: u32, artefact: &str) -> Played {
    let shot = artifacts_dir().join(format!("{artefact}.png"));
    let _ = std::fs::remove_file(&shot);
    let mut cmd = Command::new("node");
    cmd.current_dir(harness_dir())
        .arg("play.mjs")
        .args(["--player", player, "--url", url])
        .args(["--seconds", &seconds.to_string()])
        .arg("--screenshot")
        .arg(&shot);
    // play.mjs bounds itself to N + 20 s; a little more for node and Chromium to exit.
    let timeout = Duration::from_secs(u64::from(seconds) + 25);
    let (status, stdout, stderr) = run_bounded_output(&mut cmd, timeout);
    assert_eq!(
        status,
        Some(true),
        "play.mjs failed or overran {timeout:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    std::fs::write(artifacts_dir().join(format!("{artefact}.json")), line).unwrap();
    let json: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("play.mjs printed no JSON ({e}): {stdout}\n{stderr}"));
    let samples = json["samples"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| Some((s[0].as_f64()?, s[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    eprintln!("{player}: {line}\n{stderr}");
    Played { json, samples }
}

/// Publish the 30 s clip over HTTP-FLV, play `path` with `player` for 8 s, and check that the
/// video shows 320x240 and that its clock runs with wall time.
fn plays_in_chromium(test: &str, player: &str, path: &str) {
    if !browser_ready(test) {
        return;
    }
    let begin = Instant::now();
    let server = Server::start(
        &format!("browser-{player}"),
        "[hls]\nsegment_target_ms = 1000\n",
    );
    let mut publisher = publish_clip(&server.url("/live/cam.flv"), &clip_30s(), None);
    wait_for_stream(&server, "cam");

    let played = play(player, &server.url(path), 8, player);
    let _ = publisher.kill();
    let _ = publisher.wait();
    let j = &played.json;

    assert_eq!(
        j["mse_h264_aac"],
        Value::Bool(true),
        "this Chromium cannot play H.264/AAC through MSE: {j}"
    );
    assert_eq!(j["errors"], Value::Array(vec![]), "player errors: {j}");
    assert_eq!(j["ok"], Value::Bool(true), "playback did not start: {j}");
    assert_eq!(
        (j["width"].as_u64(), j["height"].as_u64()),
        (Some(320), Some(240)),
        "{j}"
    );
    let codecs = j["codecs"].as_str().unwrap_or_default();
    assert!(
        codecs.contains("avc1") && codecs.contains("mp4a"),
        "codecs {codecs}"
    );

    // One sample every 500 ms for 8 s: 17 (a loaded machine may lose a few).
    let s = &played.samples;
    assert!(s.len() >= 12, "only {} samples: {j}", s.len());
    for w in s.windows(2) {
        assert!(w[1].1 >= w[0].1, "currentTime went back: {w:?} in {s:?}");
    }
    let (first, last) = (s[0], s[s.len() - 1]);
    let wall = (last.0 - first.0) / 1000.0;
    let media = last.1 - first.1;
    assert!(
        media >= 0.7 * wall,
        "currentTime advanced {media:.2} s in {wall:.2} s of wall time: {s:?}"
    );
    // And no faster than real time (a jump would be a seek, not playback).
    assert!(
        media <= 1.25 * wall,
        "currentTime advanced {media:.2} s in {wall:.2} s of wall time: {s:?}"
    );
    eprintln!(
        "{test}: started after {} ms, {media:.2} s of media in {wall:.2} s, whole test {:?}",
        j["started_after_ms"],
        begin.elapsed()
    );
    assert!(
        begin.elapsed() < Duration::from_secs(60),
        "took {:?}",
        begin.elapsed()
    );
}

#[test]
fn mpegts_js_plays_live_http_flv_in_chromium() {
    plays_in_chromium(
        "mpegts_js_plays_live_http_flv_in_chromium",
        "mpegts-flv",
        "/live/cam.flv",
    );
}

#[test]
fn mpegts_js_plays_live_http_ts_in_chromium() {
    plays_in_chromium(
        "mpegts_js_plays_live_http_ts_in_chromium",
        "mpegts-ts",
        "/live/cam.ts",
    );
}

#[test]
fn hls_js_plays_live_hls_in_chromium() {
    plays_in_chromium(
        "hls_js_plays_live_hls_in_chromium",
        "hls",
        "/live/cam/index.m3u8",
    );
}
