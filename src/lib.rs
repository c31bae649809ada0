//! uringcast: a thread-per-core io_uring relay for live and on-demand video.
//!
//! Layout (see `../shared/house-style.md`):
//! - [`proto`]: sans-IO protocol machines (bytes in, events out). No fds, no clock reads.
//! - [`vod`]: on-demand file semantics (path checks, Range, conditionals, content types).
//! - [`media`]: media units, chunk ring, stream registry.
//! - [`runtime`]: the sole owner of io_uring and of almost all `unsafe`.
//! - [`server`]: start-up, listeners, workers, signals; [`config`]; [`metrics`]; [`logging`]
//!   (log lines through a non-blocking writer).

pub mod app;
pub mod config;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod proto;
pub mod runtime;
pub mod server;
pub mod vod;
