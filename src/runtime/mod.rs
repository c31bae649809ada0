//! The runtime: the only code that talks to io_uring, and home of almost all `unsafe`. It knows
//! nothing of HTTP, FLV or streams: it has rings, slots, operations, timers and mailboxes.
//!
//! # The worker loop contract
//! One worker per core, each on its own thread, pinned, with its own [`driver::Driver`] (ring),
//! its own SO_REUSEPORT listener(s), its own slots, timer wheel and mailbox. Nothing on the
//! data path takes a lock or blocks. The worker reaches its ring through the [`driver::Ring`]
//! trait, so the session tests can run the same worker on `fake::FakeRing` (scripted peers, a
//! clock the test moves) instead. One turn of a worker's loop (`server::worker`) is:
//!
//! 1. **Submit and wait** ([`driver::Ring::submit_and_wait`]): one `io_uring_enter` submits
//!    every SQE queued in the previous turn and waits for at least one completion or the next
//!    deadline (EXT_ARG timeout). The ring is SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN, so
//!    completions are only produced inside this call, on this thread.
//! 2. **Reap** ([`driver::Ring::reap`]): completions are copied out first and handled
//!    afterwards (TigerBeetle's `flush_completions`), so a handler that submits never recurses
//!    into the queue it is reading.
//! 3. **Handle**: each completion's `user_data` names (op, slot generation, slot key) — see
//!    [`op`]. [`driver::SlotIo::complete`] refuses a stale one and updates the slot's receive
//!    or transmit in-flight count; the slot's session is fed the result and `now`.
//! 4. **Mailbox** ([`mailbox::Mailbox`]): commands other workers posted (a doorbell
//!    completion says so; a per-tick drain catches a lost doorbell).
//! 5. **Timers** ([`timer`]): due wheel entries fire the slots' expired timers.
//! 6. **Flush metrics** once per tick: counters are per worker, plain integers, handed to the
//!    `metrics` recorder in one batch.
//!
//! A slot with operations in flight is never freed: closing it shuts the socket down (so
//! pending receives and polls complete at once) and the slot, its buffers, its pipe and its
//! file stay alive until [`driver::SlotIo::is_idle`]. An operation the shutdown does not end (an
//! open or stat of a file) completes on its own; a descriptor a completion carries is owned
//! from the moment it is reaped ([`driver::Completion::fd`]), so one that arrives for a closed
//! slot is closed, never leaked.

pub mod cachestat;
pub mod driver;
#[cfg(test)]
pub mod fake;
pub mod mailbox;
pub mod op;
pub mod ops;
pub mod pipe;
pub mod sys;
pub mod timer;
