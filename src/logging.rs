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

/// The access log's file: appended to, reopened (same path) when the reopen flag is set —
/// SIGUSR1, after logrotate has moved the old file away (nginx's convention). Written only by
/// the access log's writer thread.
struct ReopenableFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    reopen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ReopenableFile {
    fn open(path: &std::path::Path) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    }
}

impl std::io::Write for ReopenableFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.reopen.swap(false, std::sync::atomic::Ordering::AcqRel) {
            match Self::open(&self.path) {
                Ok(file) => self.file = file,
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "cannot reopen the access log; writing to the old file");
                }
            }
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The access log: lines go through a bounded queue to a writer thread (lossy, like the
/// diagnostic log), so no worker waits on the disk.
pub struct AccessLog {
    writer: tracing_appender::non_blocking::NonBlocking,
    _guard: WorkerGuard,
    reopen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    format: crate::app::access_log::Format,
}

/// A worker's handle on the access log (a clone of the queue's sender).
#[derive(Clone)]
pub struct AccessLogSink {
    writer: tracing_appender::non_blocking::NonBlocking,
    pub format: crate::app::access_log::Format,
}

impl AccessLogSink {
    /// Queue one line; a full queue drops it (counted).
    pub fn write(&mut self, line: &str) {
        use std::io::Write as _;
        let _ = self.writer.write_all(line.as_bytes());
    }
}

impl AccessLog {
    /// Open `path` for appending (the error names it) and start the writer thread.
    pub fn open(
        path: &std::path::Path,
        format: crate::app::access_log::Format,
        queue_lines: usize,
    ) -> Result<AccessLog, String> {
        let file = ReopenableFile::open(path)
            .map_err(|e| format!("access_log.path {}: {e}", path.display()))?;
        let reopen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (writer, guard) = NonBlockingBuilder::default()
            .buffered_lines_limit(queue_lines)
            .lossy(true)
            .thread_name("uringcast-access-log")
            .finish(ReopenableFile {
                path: path.to_path_buf(),
                file,
                reopen: reopen.clone(),
            });
        let _ = ACCESS_DROPPED.set(writer.error_counter());
        Ok(AccessLog {
            writer,
            _guard: guard,
            reopen,
            format,
        })
    }

    pub fn sink(&self) -> AccessLogSink {
        AccessLogSink {
            writer: self.writer.clone(),
            format: self.format,
        }
    }

    /// SIGUSR1: the next line goes to a freshly opened file at the same path.
    pub fn reopen(&self) {
        self.reopen
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Access log lines dropped because its queue was full.
static ACCESS_DROPPED: OnceLock<ErrorCounter> = OnceLock::new();

/// Access log lines dropped so far (0 without an access log).
pub fn access_lines_dropped() -> u64 {
    ACCESS_DROPPED
        .get()
        .map_or(0, |counter| counter.dropped_lines() as u64)
}
