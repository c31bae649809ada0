//! Log output that never blocks the thread that logs.
//!
//! `tracing` lines are formatted on the thread that emits them (a worker, the main thread) and
//! handed through a bounded queue to one writer thread that writes them to stderr
//! (tracing-appender's `non_blocking`, lossy). A stderr that does not drain (a full pipe, a
//! slow terminal, a stuck journald) then blocks only that writer thread: once the queue holds
//! `runtime.log_queue_lines` lines, further lines are dropped and counted
//! (`uringcast_log_lines_dropped_total`), and no io_uring worker ever waits on a write.
//!
//! Start-up errors (a bad config, a port in use) are not logged through this path: `main`
//! prints them to stderr itself, synchronously, before it exits non-zero.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};

/// Lines the queue refused because it was full, for `/metrics`.
static DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Keeps the writer thread's queue open. Dropping it writes out the lines still queued,
/// waiting for the writer thread about a second at most (tracing-appender's bound), so an
/// exit with a stuck stderr is delayed, not hung.
#[must_use = "dropping the guard stops log output"]
pub struct LogGuard {
    _guard: WorkerGuard,
}

/// Installs the global `tracing` subscriber: filter from `RUST_LOG` (default `info`), plain
/// text (colour only when stderr is a terminal), lines queued for the writer thread, at most
/// `queue_lines` of them. Call once, from `main`, and keep the guard until exit.
pub fn init(queue_lines: usize) -> LogGuard {
    let stderr = std::io::stderr();
    let ansi = stderr.is_terminal();
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(queue_lines)
        .lossy(true)
        .thread_name("uringcast-log")
        .finish(stderr);
    let _ = DROPPED.set(writer.error_counter());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(writer)
        .with_ansi(ansi)
        .init();
    LogGuard { _guard: guard }
}

/// Log lines dropped so far because the queue was full (0 before [`init`]).
pub fn lines_dropped() -> u64 {
    DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}
