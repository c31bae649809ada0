//! The access log with real clients: one line per finished request or session (curl, ffmpeg
//! publishing over HTTP, ffmpeg playing over RTMP), nginx's combined format or JSON, no query
//! (no key or token) in it, and reopened on SIGUSR1 after logrotate moved it.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::media::{clip_30s, wait_for_stream};
use common::{Server, in_ms, poll_until, run_bounded};

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn wait_for_line(path: &std::path::Path, needle: &str) -> String {
    let mut found = None;
    let ok = poll_until(in_ms(10_000), || {
        found = lines(path).into_iter().find(|l| l.contains(needle));
        found.is_some()
    });
    assert!(
        ok,
        "no line with {needle:?} in {}: {:?}",
        path.display(),
        lines(path)
    );
    found.unwrap()
}

fn kill(server: &Server, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[test]
fn combined_lines_for_requests_and_sessions_and_a_reopen_on_sigusr1() {
    let dir = common::scratch("access-log-files");
    let log = dir.join("access.log");
    let server = Server::start_with(
        "access-log",
        &format!(
            "[access_log]\npath = \"{}\"\n[auth]\nplay = \"key\"\nkeys = [\"k-secret\"]\n",
            log.display()
        ),
        |media| std::fs::write(media.join("a.txt"), vec![b'x'; 1000]).unwrap(),
    );
    // A file, with a user agent and a referer, then a 404 with a key in the query.
    let (ok, _) = run_bounded(
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-A",
                "agent \"quoted\"",
                "-e",
                "https://ref.example/",
            ])
            .arg(server.url("/vod/a.txt")),
        Duration::from_secs(10),
    );
    assert_eq!(ok, Some(true));
    let line = wait_for_line(&log, "GET /vod/a.txt");
    assert!(
        line.starts_with("127.0.0.1 - - ["),
        "not nginx's combined format: {line}"
    );
    // The bytes sent are the head and the 1,000-byte body.
    let sent: u64 = line
        .split("\"GET /vod/a.txt HTTP/1.1\" 200 ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    assert!((1100..1600).contains(&sent), "{line}");
    assert!(
        line.contains(" \"https://ref.example/\" \"agent \\x22quoted\\x22\" "),
        "{line}"
    );
    assert!(
        line.contains(" http keepalive ") || line.contains(" http done "),
        "{line}"
    );
    let r = server.get("/vod/missing.mp4?key=k-secret", &[]);
    assert_eq!(r.status, 404);
    let line = wait_for_line(&log, "/vod/missing.mp4");
    assert!(
        line.contains("\"GET /vod/missing.mp4 HTTP/1.1\" 404 "),
        "{line}"
    );

    // An HTTP publish (ffmpeg) and an RTMP play (ffmpeg): one line each when they end.
    let mut publisher = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(clip_30s())
        .args(["-t", "6", "-c", "copy", "-f", "flv", "-method", "POST"])
        .arg(server.url("/live/cam.flv"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    wait_for_stream(&server, "cam");
    let (ok, err) = run_bounded(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(server.rtmp_url("/live/cam?key=k-secret"))
            .args(["-t", "2", "-f", "null", "-"]),
        Duration::from_secs(20),
    );
    assert_eq!(ok, Some(true), "rtmp play: {err}");
    let play = wait_for_line(&log, "\"play /live/cam RTMP\"");
    assert!(play.contains("\"play /live/cam RTMP\" 200 "), "{play}");
    assert!(play.contains(" rtmp "), "{play}");
    let bytes: u64 = play
        .split("RTMP\" 200 ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    assert!(bytes > 50_000, "the RTMP play's bytes: {play}");
    let _ = publisher.wait();
    let publish = wait_for_line(&log, "\"POST /live/cam.flv HTTP/1.1\"");
    assert!(publish.contains("\" 200 "), "{publish}");
    assert!(publish.contains(" http-flv "), "{publish}");
    // Duration: about the 6 s of media.
    let seconds: f64 = publish
        .split("\" ")
        .last()
        .and_then(|tail| tail.split(' ').next())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    assert!((4.0..15.0).contains(&seconds), "{publish}");
    let bytes_in: u64 = publish
        .rsplit(' ')
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    assert!(bytes_in > 100_000, "the publish's bytes in: {publish}");
    // No key anywhere.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("k-secret"), "{text}");

    // logrotate: move the file, SIGUSR1, the next line is in a new file.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    kill(&server, "-USR1");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.get("/vod/a.txt", &[]).status, 200);
    let line = wait_for_line(&log, "GET /vod/a.txt");
    assert!(line.contains("\"GET /vod/a.txt HTTP/1.1\" 200 1"), "{line}");
    assert!(!lines(&rotated).is_empty());
    assert_eq!(
        lines(&rotated)
            .iter()
            .filter(|l| l.contains("/vod/a.txt"))
            .count(),
        1,
        "a line after the reopen went to the rotated file"
    );
}

#[test]
fn json_lines_have_every_field() {
    let dir = common::scratch("access-log-json-files");
    let log = dir.join("access.json");
    let server = Server::start(
        "access-log-json",
        &format!(
            "[access_log]\npath = \"{}\"\nformat = \"json\"\n",
            log.display()
        ),
    );
    assert_eq!(server.get("/nope.txt?token=t0ken", &[]).status, 404);
    let line = wait_for_line(&log, "/nope.txt");
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/nope.txt");
    assert_eq!(v["status"], 404);
    assert_eq!(v["protocol"], "http");
    assert_eq!(v["version"], "HTTP/1.1");
    assert!(
        v["client"].as_str().unwrap_or("").starts_with("127.0.0.1:"),
        "{v}"
    );
    assert!(
        v["duration_ms"].is_u64() && v["bytes_out"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    assert!(
        v["time_unix_ms"].as_u64().unwrap_or(0) > 1_700_000_000_000,
        "{v}"
    );
    assert!(!line.contains("t0ken"), "{line}");
}
