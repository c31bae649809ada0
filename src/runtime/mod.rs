//! The runtime: the only code that talks to io_uring, and home of almost all `unsafe`.
//!
//! # The worker loop contract
//! One worker per core, each on its own thread, pinned, with its own ring, its own
//! SO_REUSEPORT listener(s), its own slab of connections, timer wheel, pipe pool and file cache.
//! Nothing on the data path takes a lock or blocks. One turn of the loop is:
//!
//! 1. **Submit and wait**: one `io_uring_enter` submits every SQE queued in the previous turn
//!    and waits for at least one completion or the next timer tick (EXT_ARG timeout). The ring
//!    is set up SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN, so completions are only produced
//!    inside this call, on this thread.
//! 2. **Drain completions**: CQEs are copied out of the completion queue first and handled
//!    afterwards (TigerBeetle's `flush_completions`), so a handler that queues new SQEs never
//!    recurses into the queue it is reading.
//! 3. **Handle**: each CQE's `user_data` names (op, slot generation, slab key) — see [`op`]. A
//!    completion whose generation does not match the slot's is stale and dropped. Handlers feed
//!    bytes to sans-IO machines in `proto`/`vod` and queue the SQEs those machines ask for.
//! 4. **Timers**: due wheel entries are checked against each connection's current deadline;
//!    an expired deadline closes the connection and is counted.
//! 5. **Flush metrics** once per tick: counters are kept per worker in plain integers and
//!    handed to the `metrics` recorder in one batch.
//!
//! A connection with operations in flight is never freed: closing it shuts the socket down
//! (so pending receives and polls complete at once) and the slot, its buffers, its pipe and its
//! file stay alive until the last CQE for them has arrived.

pub mod cachestat;
pub mod op;
pub mod pipe;
pub mod timer;
pub mod worker;

mod conn;
mod loglimit;
