//! Real browser players against the real binary: Debian's headless Chromium, driven by
//! `tests/browser/play.mjs` (playwright-core), plays uringcast's live output with the players
//! sites use (mpegts.js, from npm) from a page on another origin, and the test checks that the
//! <video> element shows the picture and that its clock runs with wall time. The operator's
//! console at `/` is driven the same way by `tests/browser/console.mjs`: the stream shows in
//! its table, a click plays it (HTTP-FLV, then HLS) with the players the binary embeds. And,
//! with curl alone, the console's assets are checked for their caching headers.
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

/// Where screenshots and the harnesses' JSON are kept after the run: target/test-artefacts.
fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-artefacts");
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

/// `node console.mjs`: the server's console plays `stream` in each of `formats` for `seconds`
/// (with `credentials` typed into its "credentials (query)" field first); its JSON, kept as
/// ARTEFACT.json next to the screenshots ARTEFACT-FORMAT.png. Panics if the harness itself
/// fails or overruns.
fn run_console(
    server: &Server,
    stream: &str,
    formats: &[&str],
    seconds: u64,
    artefact: &str,
    credentials: Option<&str>,
) -> Value {
    for format in formats {
        let _ = std::fs::remove_file(artifacts_dir().join(format!("{artefact}-{format}.png")));
    }
    let mut cmd = Command::new("node");
    cmd.current_dir(harness_dir())
        .arg("console.mjs")
        .args(["--url", &server.admin_url("/"), "--stream", stream])
        .args([
            "--formats",
            &formats.join(","),
            "--seconds",
            &seconds.to_string(),
        ])
        .arg("--screenshot")
        .arg(artifacts_dir().join(artefact));
    if let Some(query) = credentials {
        cmd.args(["--credentials", query]);
    }
    // console.mjs bounds itself to formats × (N + 15) + 20 s; a little more for node to exit.
    let timeout = Duration::from_secs(formats.len() as u64 * (seconds + 15) + 25);
    let (status, stdout, stderr) = run_bounded_output(&mut cmd, timeout);
    assert_eq!(
        status,
        Some(true),
        "console.mjs failed or overran {timeout:?}\nstdout: {stdout}\nstderr: {stderr}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    std::fs::write(artifacts_dir().join(format!("{artefact}.json")), line).unwrap();
    eprintln!("{artefact}: {line}\n{stderr}");
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("console.mjs printed no JSON ({e}): {stdout}\n{stderr}"))
}

/// That console.mjs saw `format` play: started, 320x240, and its (wall ms, currentTime s)
/// samples show the clock running with wall time.
fn assert_plays(format: &str, j: &Value) {
    let f = &j["formats"][format];
    assert!(
        f["started_after_ms"].is_u64(),
        "{format} did not start in the console: {j}"
    );
    assert_eq!(
        (f["width"].as_u64(), f["height"].as_u64()),
        (Some(320), Some(240)),
        "{format}: {j}"
    );
    let s: Vec<(f64, f64)> = f["samples"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| Some((s[0].as_f64()?, s[1].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    assert!(s.len() >= 12, "{format}: only {} samples: {j}", s.len());
    for w in s.windows(2) {
        assert!(w[1].1 >= w[0].1, "{format}: currentTime went back: {s:?}");
    }
    // The clock runs with wall time, minus the stalls of a start: HLS is segmented from the
    // first playlist request on, so hls.js waits for its first segments (as in
    // hls_js_plays_live_hls_in_chromium).
    let (first, last) = (s[0], s[s.len() - 1]);
    let wall = (last.0 - first.0) / 1000.0;
    let media = last.1 - first.1;
    assert!(
        media >= 4.0 && media >= 0.6 * wall && media <= 1.25 * wall,
        "{format}: currentTime advanced {media:.2} s in {wall:.2} s of wall time: {s:?}"
    );
}

#[test]
fn the_console_lists_a_live_stream_and_plays_it_in_chromium() {
    let test = "the_console_lists_a_live_stream_and_plays_it_in_chromium";
    if !browser_ready(test) {
        return;
    }
    let begin = Instant::now();
    let server = Server::start("browser-console", "[hls]\nsegment_target_ms = 1000\n");
    let mut publisher = publish_clip(&server.url("/live/cam.flv"), &clip_30s(), None);
    wait_for_stream(&server, "cam");

    let j = run_console(&server, "live/cam", &["flv", "hls"], 8, "console", None);
    let _ = publisher.kill();
    let _ = publisher.wait();

    // No uncaught error and nothing on the page's console at error level, from the load to
    // the end of both players.
    assert_eq!(j["errors"], Value::Array(vec![]), "page errors: {j}");
    let row = j["row"].as_str().unwrap_or_default();
    for expected in ["live/cam", "live", "h264 + aac", "320×240"] {
        assert!(
            row.contains(expected),
            "row {row:?} lacks {expected:?}: {j}"
        );
    }
    // The media URLs are built from the ports the API names.
    assert_eq!(j["urls"]["flv"], server.url("/live/cam.flv"), "{j}");
    assert_eq!(j["urls"]["ts"], server.url("/live/cam.ts"), "{j}");
    assert_eq!(j["urls"]["hls"], server.url("/live/cam/index.m3u8"), "{j}");
    assert_eq!(
        j["urls"]["rtmp"],
        format!("rtmp://127.0.0.1:{}/live/cam", server.rtmp_addr.port()),
        "{j}"
    );
    assert_plays("flv", &j);
    assert_plays("hls", &j);
    assert!(
        j["chart_pixels"].as_u64() > Some(20),
        "the bitrate chart is empty: {j}"
    );
    assert!(
        j["gop_chart_pixels"].as_u64() > Some(20),
        "the GOP chart was not drawn: {j}"
    );
    for format in ["flv", "hls"] {
        let shot = artifacts_dir().join(format!("console-{format}.png"));
        let bytes = std::fs::read(&shot).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
            "no screenshot at {}",
            shot.display()
        );
    }
    assert_eq!(j["ok"], Value::Bool(true), "{j}");
    eprintln!("{test}: whole test {:?}", begin.elapsed());
}

/// A secret for the signed-URL policy of the credentials test, and a play key.
const SECRET: &str = "console-secret-0123456789";
const PLAY_KEY: &str = "paid key&1";

#[test]
fn the_console_plays_streams_that_need_credentials_in_chromium() {
    let test = "the_console_plays_streams_that_need_credentials_in_chromium";
    if !browser_ready(test) {
        return;
    }
    let missing: Vec<String> = (!common::have("curl"))
        .then(|| "curl".into())
        .into_iter()
        .collect();
    if !required_or_skip(test, &missing) {
        return;
    }
    let begin = Instant::now();
    // Play needs a signed URL by default and a key in the app `paid`; publishing stays
    // loopback-only (the publishers below are on this machine).
    let server = Server::start(
        "browser-console-auth",
        &format!(
            "[hls]\nsegment_target_ms = 1000\n\
             [auth]\nplay = \"signed\"\nsecrets = [\"{SECRET}\"]\n\
             [auth.apps.paid]\nplay = \"key\"\nkeys = [\"{PLAY_KEY}\"]\n"
        ),
    );
    let mut publishers = [
        publish_clip(&server.url("/live/cam.flv"), &clip_30s(), None),
        publish_clip(&server.url("/paid/cam.flv"), &clip_30s(), None),
    ];
    wait_for_stream(&server, "cam");
    let streams_live = || {
        let r = server.admin_get("/api/v1/streams", &[]);
        let j: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        j["streams"]
            .as_array()
            .map_or(0, |a| a.iter().filter(|s| s["publishing"] == true).count())
    };
    assert!(
        common::poll_until(common::in_ms(15_000), || streams_live() == 2),
        "both streams are not live"
    );

    // Without credentials the media is refused (what the console got before it asked the
    // server for its URLs): curl, no token or key → 401.
    for path in ["/live/cam.flv", "/live/cam/index.m3u8", "/paid/cam.flv"] {
        let (status, _) = curl_head(&server.url(path), None);
        assert_eq!(status, 401, "{path} without credentials");
    }

    // The API hands out the play URLs with credentials, on the host the client asked by.
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let r = server.admin_get("/api/v1/streams/live/cam/play", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let j: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(j["credentials"], "signed", "{j}");
    assert_eq!(j["needs_credentials"], false, "{j}");
    let expires = j["expires"].as_u64().expect("expires");
    assert!(
        (now_s + 3590..=now_s + 3610).contains(&expires),
        "expires {expires}, now {now_s}: {j}"
    );
    let flv = j["flv"].as_str().unwrap_or_default();
    let http_port = server.addr.port();
    assert!(
        flv.starts_with(&format!(
            "http://test:{http_port}/live/cam.flv?expires={expires}&token="
        )),
        "{j}"
    );
    let query = j["query"].as_str().unwrap_or_default().to_string();
    assert!(
        j["hls"].as_str().unwrap_or_default().ends_with(&query),
        "{j}"
    );
    assert_eq!(
        j["rtmp"],
        format!("rtmp://test:{}/live/cam?{query}", server.rtmp_addr.port())
    );
    // The token is for this stream only: another one's URL with it is refused.
    let (status, _) = curl_head(&server.url(&format!("/paid/cam.flv?{query}")), None);
    assert_eq!(status, 401, "the key app wants a key, not a token");
    let r = server.admin_get("/api/v1/streams/live/other/play", &[]);
    let other: Value = serde_json::from_slice(&r.body).expect("json");
    let other_query = other["query"].as_str().unwrap_or_default();
    let (status, _) = curl_head(&server.url(&format!("/live/cam.flv?{other_query}")), None);
    assert_eq!(status, 403, "a token for live/other played live/cam");
    let token = query
        .rsplit_once("token=")
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    assert_eq!(token.len(), 64, "{query}");

    // The console plays both: a signed URL (HLS too: the playlist hands its query on to the
    // segments), and the app's key.
    let j = run_console(
        &server,
        "live/cam",
        &["flv", "hls"],
        8,
        "console-signed",
        None,
    );
    assert_eq!(j["errors"], Value::Array(vec![]), "page errors: {j}");
    assert_eq!(j["credentials"], "signed", "{j}");
    let flv = j["urls"]["flv"].as_str().unwrap_or_default();
    assert!(
        flv.starts_with(&server.url("/live/cam.flv?expires=")) && flv.contains("&token="),
        "{j}"
    );
    assert!(
        j["note"]
            .as_str()
            .unwrap_or_default()
            .contains("valid until"),
        "{j}"
    );
    assert_plays("flv", &j);
    assert_plays("hls", &j);
    assert_eq!(j["ok"], Value::Bool(true), "{j}");

    let j = run_console(&server, "paid/cam", &["flv"], 8, "console-key", None);
    assert_eq!(j["errors"], Value::Array(vec![]), "page errors: {j}");
    assert_eq!(j["credentials"], "key", "{j}");
    assert_eq!(
        j["urls"]["flv"],
        server.url("/paid/cam.flv?key=paid%20key%261"),
        "{j}"
    );
    assert_plays("flv", &j);
    assert_eq!(j["ok"], Value::Bool(true), "{j}");
    for publisher in &mut publishers {
        let _ = publisher.kill();
        let _ = publisher.wait();
    }

    let log = server.stderr();
    // Never the token or the key in the server's log.
    assert!(!log.contains(&token), "the token is in the server's log");
    assert!(!log.contains("paid key"), "the key is in the server's log");
    eprintln!("{test}: whole test {:?}", begin.elapsed());
}

/// What the operator pastes for the auth service of the next test.
const TICKET: &str = "opensesame";

#[test]
fn the_console_appends_pasted_credentials_for_an_auth_service_in_chromium() {
    let test = "the_console_appends_pasted_credentials_for_an_auth_service_in_chromium";
    if !browser_ready(test) {
        return;
    }
    let mut missing: Vec<String> = Vec::new();
    for tool in ["curl", "python3"] {
        if !common::have(tool) {
            missing.push(tool.into());
        }
    }
    if !required_or_skip(test, &missing) {
        return;
    }
    // The auth service allows a query with ticket=TICKET: the server cannot mint that.
    let log = common::scratch("ticket-service").join("requests.jsonl");
    let mut service = Command::new("python3")
        .arg(harness_dir().join("ticket_service.py"))
        .args([TICKET.as_ref(), log.as_os_str()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    let port = service.stdout.take().and_then(|out| {
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).ok()?;
        line.trim().parse::<u16>().ok()
    });
    let Some(port) = port else {
        let _ = service.kill();
        let _ = service.wait();
        panic!("the ticket service printed no port: {line:?}");
    };
    let server = Server::start(
        "browser-console-external",
        &format!(
            "[auth]\nplay = \"http\"\nhttp_url = \"http://127.0.0.1:{port}/auth\"\n\
             http_notify = false\n"
        ),
    );
    let mut publisher = publish_clip(&server.url("/live/cam.flv"), &clip_30s(), None);
    wait_for_stream(&server, "cam");

    // Without the ticket the service refuses; the API says credentials are needed.
    let (status, _) = curl_head(&server.url("/live/cam.flv"), None);
    assert_eq!(status, 403, "played without the ticket");
    let r = server.admin_get("/api/v1/streams/live/cam/play", &[]);
    let j: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(j["credentials"], "external", "{j}");
    assert_eq!(j["needs_credentials"], true, "{j}");
    assert!(j["query"].is_null() && j["expires"].is_null(), "{j}");

    let j = run_console(
        &server,
        "live/cam",
        &["flv"],
        8,
        "console-external",
        Some(&format!("?ticket={TICKET}")),
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
    let _ = service.kill();
    let _ = service.wait();
    assert_eq!(j["errors"], Value::Array(vec![]), "page errors: {j}");
    assert_eq!(j["credentials"], "external", "{j}");
    assert_eq!(
        j["urls"]["flv"],
        server.url(&format!("/live/cam.flv?ticket={TICKET}")),
        "{j}"
    );
    assert_eq!(
        j["urls"]["rtmp"],
        format!(
            "rtmp://127.0.0.1:{}/live/cam?ticket={TICKET}",
            server.rtmp_addr.port()
        ),
        "{j}"
    );
    assert!(
        j["note"]
            .as_str()
            .unwrap_or_default()
            .contains("auth service"),
        "{j}"
    );
    assert_plays("flv", &j);
    assert_eq!(j["ok"], Value::Bool(true), "{j}");
    // The service saw the console's play with the pasted ticket.
    let asked = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        asked.lines().any(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
            v["action"] == "play" && v["query"] == format!("ticket={TICKET}")
        }),
        "{asked}"
    );
}

/// `curl -sS -D - -o /dev/null URL [-H header]`: (status, lower-cased headers).
fn curl_head(url: &str, header: Option<&str>) -> (u16, Vec<(String, String)>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "5", "-D", "-", "-o", "/dev/null", url]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    let (status, stdout, stderr) = run_bounded_output(&mut cmd, Duration::from_secs(10));
    assert_eq!(status, Some(true), "curl {url}: {stderr}");
    let mut lines = stdout.lines();
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {stdout}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (code, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn console_assets_are_cached_for_good_and_the_page_is_revalidated() {
    let test = "console_assets_are_cached_for_good_and_the_page_is_revalidated";
    let missing: Vec<String> = (!common::have("curl"))
        .then(|| "curl".into())
        .into_iter()
        .collect();
    if !required_or_skip(test, &missing) {
        return;
    }
    let server = Server::start("console-assets", "");
    // The console is on the admin listener; the public one does not serve it.
    assert_eq!(server.get("/", &[]).status, 404);
    let page = server.admin_get("/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    assert!(page.header("content-security-policy").is_some());
    let page_etag = page.header("etag").expect("the page's ETag").to_string();
    let html = String::from_utf8(page.body).unwrap();
    // Nothing about the filesystem: not the media root, not the build's paths.
    let root = server.media.to_string_lossy().into_owned();
    assert!(!html.contains(&root), "the media root is shown: {html}");
    assert!(!html.contains(env!("CARGO_MANIFEST_DIR")), "{html}");
    assert!(!html.contains(env!("CARGO_TARGET_TMPDIR")), "{html}");

    // Every script and style sheet the page loads, as a browser would find them.
    let urls: Vec<&str> = html
        .split("src=\"")
        .chain(html.split("href=\"").skip(1))
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(url, _)| url))
        .filter(|url| url.ends_with(".js") || url.ends_with(".css"))
        .collect();
    for expected in [
        "/console/vendor/mpegts-1.8.2.min.js",
        "/console/vendor/hls-1.7.4.min.js",
    ] {
        assert!(urls.contains(&expected), "{expected} not loaded: {urls:?}");
    }
    assert!(urls.len() >= 4, "{urls:?}");
    for path in urls {
        let url = server.admin_url(path);
        let (status, h) = curl_head(&url, None);
        assert_eq!(status, 200, "{url}: {h:?}");
        assert_eq!(
            header(&h, "cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{url}"
        );
        let content_type = if path.ends_with(".js") {
            "text/javascript; charset=utf-8"
        } else {
            "text/css; charset=utf-8"
        };
        assert_eq!(header(&h, "content-type"), Some(content_type), "{url}");
        assert_eq!(header(&h, "x-content-type-options"), Some("nosniff"));
        let etag = header(&h, "etag").unwrap_or_else(|| panic!("{url}: no ETag: {h:?}"));
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
            "{etag}"
        );
        let length: usize = header(&h, "content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        assert!(length > 1000, "{url}: {length} bytes");
        // Revalidation: 304, no body, the same tag and caching.
        let (status, h304) = curl_head(&url, Some(&format!("If-None-Match: {etag}")));
        assert_eq!(status, 304, "{url}: {h304:?}");
        assert_eq!(header(&h304, "etag"), Some(etag));
        assert_eq!(
            header(&h304, "cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        let (status, _) = curl_head(&url, Some("If-None-Match: \"something-else\""));
        assert_eq!(status, 200, "{url}");
    }
    // The page revalidates too.
    let again = server.admin_get("/", &[("If-None-Match", &page_etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    // A path under /console/ that is not an asset.
    assert_eq!(server.admin_get("/console/console.js", &[]).status, 404);
}
