//! What operators load into their monitoring: the Prometheus alert rules (checked and
//! unit-tested by promtool), the /metrics exposition (linted by promtool: HELP text, base
//! units, counter names), and the Grafana dashboard, whose every query must name series the
//! server really exports.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::media::{clip_30s, wait_for_stream};
use common::{Server, have, required_or_skip, run_bounded_output};

fn ops_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/ops")
}

/// promtool: `$PROMTOOL` (scripts/test.sh sets it), else on the PATH, else where
/// scripts/test.sh unpacks it.
fn promtool(test: &str) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("PROMTOOL").map(PathBuf::from),
        have("promtool").then(|| PathBuf::from("promtool")),
        Some(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/tools/prometheus/usr/bin/promtool"),
        ),
    ];
    let found = candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() && !required_or_skip(test, &["promtool".to_string()]) {
        return None;
    }
    found
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let Some(promtool) = promtool("alert_rules_pass_promtool_and_their_unit_tests") else {
        return;
    };
    for args in [
        ["check", "rules", "uringcast-alerts.yml"],
        ["test", "rules", "uringcast-alerts.test.yml"],
    ] {
        let (ok, out, err) = run_bounded_output(
            Command::new(&promtool).args(args).current_dir(ops_dir()),
            Duration::from_secs(60),
        );
        assert_eq!(ok, Some(true), "promtool {args:?}:\n{out}\n{err}");
        assert!(out.contains("SUCCESS"), "promtool {args:?}:\n{out}\n{err}");
    }
}

/// Every `uringcast_*` series name in `text`.
fn series_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .match_indices("uringcast_")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn the_exposition_passes_promtool_and_dashboards_and_alerts_use_real_series() {
    let promtool =
        promtool("the_exposition_passes_promtool_and_dashboards_and_alerts_use_real_series");
    let server = Server::start("ops-metrics", "[auth]\npublish = \"key\"\nkeys = [\"k\"]\n");
    // Something of everything: a publish, a reader, a refusal, a reload.
    let mut publisher = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(clip_30s())
        .args(["-t", "8", "-c", "copy", "-f", "flv", "-method", "POST"])
        .arg(server.url("/live/ops.flv?key=k"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg");
    wait_for_stream(&server, "ops");
    let _ = run_bounded_output(
        Command::new("curl")
            .args(["-s", "--max-time", "2", "-o", "/dev/null"])
            .arg(server.url("/live/ops.flv")),
        Duration::from_secs(10),
    );
    assert_eq!(
        server
            .request("POST", "/live/other.flv", &[("Content-Length", "1")])
            .status,
        401
    );
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    server.wait_metric("uringcast_config_reloads_total", &[], |v| v >= 1.0);
    let text = server.flush_barrier();
    assert!(
        text.contains("uringcast_stream_reader_lag_seconds_bucket"),
        "{text}"
    );

    if let Some(promtool) = promtool {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && report.trim().is_empty(),
            "promtool check metrics:\n{report}"
        );
    }

    // The dashboard is valid JSON and every query names a series /metrics has.
    let dashboard = std::fs::read_to_string(ops_dir().join("grafana-dashboard.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let panels = json["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut queries = String::new();
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            queries.push_str(target["expr"].as_str().expect("expr"));
            queries.push('\n');
        }
    }
    let rules = std::fs::read_to_string(ops_dir().join("uringcast-alerts.yml")).unwrap();
    for (what, source) in [("dashboard", &queries), ("alert rules", &rules)] {
        let names = series_names(source);
        assert!(names.len() >= 5, "{what}: {names:?}");
        for name in names {
            assert!(
                text.contains(&format!("\n{name}{{")) || text.contains(&format!("\n{name} ")),
                "{what} uses {name}, which /metrics does not export"
            );
        }
    }
    let _ = publisher.kill();
    let _ = publisher.wait();
}
