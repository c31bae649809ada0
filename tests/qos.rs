//! Stream QoS with real peers: ffmpeg publishes a clip whose frame rate and keyframe interval
//! are known, curl reads it, and the API and /metrics must report those figures (GOP
//! min/avg/max, fps, jitter, sequence-header changes, frames sent, first-byte and lag
//! histograms). A publisher that pushes as fast as it can shows its burst as arrival jitter.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::media::{clip_30s, wait_for_stream};
use common::{Server, in_ms, metric_sum, poll_until, run_bounded};

fn publish(server: &Server, input: &[&str], path: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error"])
        .args(input)
        .args(["-f", "flv", "-method", "POST"])
        .arg(server.url(path))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg")
}

fn stream(server: &Server, name: &str) -> serde_json::Value {
    let body = server.admin_get("/api/v1/streams", &[]).body;
    let json: serde_json::Value = serde_json::from_slice(&body).expect("streams JSON");
    json["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or(serde_json::Value::Null)
}

fn within(value: &serde_json::Value, lo: f64, hi: f64) -> bool {
    value.as_f64().is_some_and(|v| (lo..=hi).contains(&v))
}

#[test]
fn ingest_and_delivery_figures_match_what_was_sent() {
    let server = Server::start("qos", "[live]\nqos_window_ms = 5000\n");
    let clip = clip_30s();
    let clip = clip.to_str().unwrap();
    // 25 fps, a keyframe every second, paced in real time.
    let mut publisher = publish(
        &server,
        &["-re", "-i", clip, "-t", "14", "-c", "copy"],
        "/live/q.flv",
    );
    wait_for_stream(&server, "q");
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/live/q.flv");
            std::thread::spawn(move || {
                run_bounded(
                    Command::new("curl").args(["-s", "--max-time", "3", "-o", "/dev/null", &url]),
                    Duration::from_secs(10),
                )
            })
        })
        .collect();
    for reader in readers {
        let _ = reader.join();
    }
    // A window of steady input.
    let mut s = serde_json::Value::Null;
    let steady = poll_until(in_ms(10_000), || {
        s = stream(&server, "q");
        within(&s["gop_min_ms"], 950.0, 1050.0)
            && within(&s["gop_max_ms"], 950.0, 1050.0)
            && within(&s["fps"], 24.0, 26.0)
    });
    assert!(steady, "GOP/fps never settled at 1000 ms / 25: {s}");
    assert!(within(&s["gop_avg_ms"], 950.0, 1050.0), "{s}");
    assert_eq!(s["qos_window_ms"], 5000, "{s}");
    // Paced input over loopback: frames arrive close to their timestamps.
    assert!(within(&s["jitter_p50_ms"], 0.0, 150.0), "{s}");
    assert!(within(&s["jitter_p99_ms"], 0.0, 1000.0), "{s}");
    assert!(within(&s["ingest_bitrate_kbps"], 50.0, 5000.0), "{s}");
    assert_eq!(s["sequence_header_changes"], 0, "{s}");
    // Delivery: two readers were sent frames and none skipped; each had a first byte.
    assert!(s["frames_sent"].as_u64().unwrap_or(0) > 50, "{s}");
    assert_eq!(s["frames_skipped"], 0, "{s}");
    assert_eq!(s["frame_drop_ratio"], 0.0, "{s}");
    assert!(within(&s["first_byte_p50_ms"], 0.0, 5000.0), "{s}");
    assert!(within(&s["reader_lag_p99_ms"], 0.0, 1000.0), "{s}");
    let text = server.metrics();
    let first_bytes = metric_sum(
        &text,
        "uringcast_stream_first_byte_seconds_count",
        &["live/q"],
    );
    assert_eq!(first_bytes, 2.0, "{text}");
    let inf = metric_sum(
        &text,
        "uringcast_stream_first_byte_seconds_bucket",
        &["live/q", "le=\"+Inf\""],
    );
    assert_eq!(inf, 2.0, "{text}");
    let gop = metric_sum(&text, "uringcast_stream_gop_avg_seconds", &["live/q"]);
    assert!((0.95..=1.05).contains(&gop), "{text}");
    assert!(
        metric_sum(
            &text,
            "uringcast_stream_reader_lag_seconds_count",
            &["live/q"]
        ) > 10.0,
        "{text}"
    );

    // The encoder comes back within the grace period with another resolution: a new
    // sequence header, counted.
    let _ = publisher.kill();
    let _ = publisher.wait();
    let mut republisher = publish(
        &server,
        &[
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=25",
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ],
        "/live/q.flv",
    );
    let changed = poll_until(in_ms(10_000), || {
        s = stream(&server, "q");
        s["sequence_header_changes"].as_u64().unwrap_or(0) >= 1
    });
    assert!(changed, "a new resolution was not counted: {s}");
    let _ = republisher.kill();
    let _ = republisher.wait();
}

#[test]
fn a_bursting_publisher_shows_as_arrival_jitter() {
    let server = Server::start("qos-burst", "[live]\nqos_window_ms = 60000\n");
    let clip = clip_30s();
    // No -re: 30 s of media arrive in a fraction of a second, so most frames arrive seconds
    // early against the first frame's pace... i.e. the earliest offsets belong to the end.
    let mut publisher = publish(
        &server,
        &["-i", clip.to_str().unwrap(), "-c", "copy"],
        "/live/b.flv",
    );
    let _ = publisher.wait();
    let mut s = serde_json::Value::Null;
    let seen = poll_until(in_ms(10_000), || {
        s = stream(&server, "b");
        s["jitter_p50_ms"].as_u64().is_some()
    });
    assert!(seen, "no jitter figures: {s}");
    // Offsets spread over ~30 s of media delivered at once: the median is seconds.
    assert!(
        s["jitter_p50_ms"].as_u64().unwrap_or(0) >= 5_000,
        "a burst did not show as jitter: {s}"
    );
}
