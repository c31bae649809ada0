//! Logging never stalls a worker: log lines go through a bounded, lossy queue to a writer
//! thread, so a stderr that does not drain (a full pipe, a stuck terminal or journald) costs
//! dropped lines, not answers.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::Server;

/// Sends one request on a fresh connection and reads the answer to its end (the server
/// closes); returns the status code, or why there was none.
fn status_of(server: &Server, request: &[u8]) -> Result<u16, String> {
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .map_err(|e| format!("no answer within 5 s ({e})"))?;
    let line = answer.split(|&b| b == b'\r').next().unwrap_or_default();
    String::from_utf8_lossy(line)
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {:?}", String::from_utf8_lossy(&answer)))
}

#[test]
fn a_stderr_nobody_reads_does_not_stall_the_workers() {
    // Every bad request is logged (debug level, no rate limit): a few hundred lines fill the
    // pipe's 64 KiB. A worker writing to stderr itself would then block in write(2) for good.
    // A short queue, so the lines past it are dropped and counted.
    let server = Server::start_stderr_unread(
        "logs-unread-stderr",
        "[runtime]\npeer_log_lines_per_second = 100000\nlog_queue_lines = 64\n",
        &[("RUST_LOG", "debug")],
    );
    let started = Instant::now();
    for i in 0..2_000 {
        let status = status_of(&server, b"NOT-HTTP\r\n\r\n")
            .unwrap_or_else(|e| panic!("bad request {i}: {e}: the workers stalled on stderr"));
        assert_eq!(status, 400, "bad request {i}");
    }
    // The pipe is long full; the server still answers promptly.
    let answering = Instant::now();
    for i in 0..500 {
        let status = status_of(
            &server,
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .unwrap_or_else(|e| panic!("request {i} after the pipe filled: {e}"));
        assert_eq!(status, 200, "request {i}");
    }
    let elapsed = answering.elapsed();
    // Generous: loopback requests take well under a millisecond each, even in debug builds.
    assert!(
        elapsed < Duration::from_secs(30),
        "500 requests took {elapsed:?} with stderr full (whole test {:?})",
        started.elapsed()
    );
    let dropped = server.metric_sum("uringcast_log_lines_dropped_total", &[]);
    assert!(
        dropped > 0.0,
        "2,000 lines into a stuck stderr and a 64-line queue, yet none dropped"
    );
}

#[test]
fn queued_lines_are_written_out_at_exit() {
    // The writer thread works behind the loggers; on SIGTERM main waits for it to write what
    // is queued, so the last lines before exit are not lost.
    let mut server = Server::start_env("logs-exit", "", &[("RUST_LOG", "debug")]);
    for _ in 0..50 {
        assert_eq!(status_of(&server, b"NOT-HTTP\r\n\r\n"), Ok(400));
    }
    let status = server.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let stderr = server.stderr();
    assert!(
        stderr.contains("shutting down: draining connections"),
        "the shutdown line is missing:\n{stderr}"
    );
    assert!(
        stderr.lines().filter(|l| l.contains("bad request")).count() >= 10,
        "bad request lines are missing:\n{stderr}"
    );
}
