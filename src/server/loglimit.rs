//! A per-worker rate limit for log lines a peer can trigger.
//!
//! Every `tracing` line that a client can cause (a bad request, an expired deadline, a
//! refused publish, an accept failing under a connection flood...) goes through
//! [`LogLimiter::allow`] with its [`PeerLog`] kind: at most `lines_per_second` lines per
//! kind per second are written, the rest are counted, and [`LogLimiter::poll_suppressed`]
//! (called once per tick) hands back one "K lines suppressed" summary per kind and second.
//! So a flood of bad requests costs a counter increment each, not a formatted line, and
//! cannot fill the disk or drown the lines that matter.
//!
//! Sans clock and sans I/O: the caller passes `now_ms` and does the logging.

/// What kind of peer-triggered line: each kind has its own budget, so a flood of one kind
/// does not silence the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerLog {
    /// A request head that could not be parsed.
    BadRequest,
    /// accept(2) failed (EMFILE, ENFILE, ENOBUFS under a connection flood).
    AcceptFailed,
    /// A connection's deadline expired (slowloris, idle, stalled reader).
    DeadlineExpired,
    /// A per-connection resource could not be had (a pipe, when descriptors run out).
    ResourceFailed,
    /// A file send failed (the file shrank under us).
    FileSendFailed,
    /// A publish was refused (the stream is already being published).
    PublishRefused,
    /// A publish started or ended (any client may publish).
    Publish,
}

impl PeerLog {
    pub(crate) const ALL: [PeerLog; 7] = [
        PeerLog::BadRequest,
        PeerLog::AcceptFailed,
        PeerLog::DeadlineExpired,
        PeerLog::ResourceFailed,
        PeerLog::FileSendFailed,
        PeerLog::PublishRefused,
        PeerLog::Publish,
    ];

    /// A fixed label for the summary line.
    pub(crate) fn label(self) -> &'static str {
        match self {
            PeerLog::BadRequest => "bad_request",
            PeerLog::AcceptFailed => "accept_failed",
            PeerLog::DeadlineExpired => "deadline_expired",
            PeerLog::ResourceFailed => "resource_failed",
            PeerLog::FileSendFailed => "file_send_failed",
            PeerLog::PublishRefused => "publish_refused",
            PeerLog::Publish => "publish",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The budget window: lines are counted per kind per this many milliseconds.
const WINDOW_MS: u64 = 1000;

#[derive(Clone, Copy, Default)]
struct Window {
    start_ms: u64,
    lines: u32,
    /// Lines refused in the current window.
    suppressed: u64,
    /// Lines refused in earlier windows and not reported yet.
    pending: u64,
}

impl Window {
    fn roll(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.start_ms) >= WINDOW_MS {
            self.pending += self.suppressed;
            self.suppressed = 0;
            self.lines = 0;
            self.start_ms = now_ms;
        }
    }
}

pub(crate) struct LogLimiter {
    lines_per_second: u32,
    windows: [Window; PeerLog::ALL.len()],
}

impl LogLimiter {
    /// `lines_per_second` lines of each kind per second (0: none, only the summaries).
    pub(crate) fn new(lines_per_second: u32) -> LogLimiter {
        LogLimiter {
            lines_per_second,
            windows: [Window::default(); PeerLog::ALL.len()],
        }
    }

    /// Whether a line of `kind` may be written now; if not, it is counted as suppressed.
    pub(crate) fn allow(&mut self, kind: PeerLog, now_ms: u64) -> bool {
        let window = &mut self.windows[kind.index()];
        window.roll(now_ms);
        if window.lines < self.lines_per_second {
            window.lines += 1;
            true
        } else {
            window.suppressed += 1;
            false
        }
    }

    /// Calls `report(kind, count)` for every kind with lines suppressed in a window that has
    /// ended, and forgets them: at most one summary per kind per second.
    pub(crate) fn poll_suppressed(&mut self, now_ms: u64, mut report: impl FnMut(PeerLog, u64)) {
        for kind in PeerLog::ALL {
            let window = &mut self.windows[kind.index()];
            window.roll(now_ms);
            if window.pending > 0 {
                report(kind, window.pending);
                window.pending = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summaries(limiter: &mut LogLimiter, now_ms: u64) -> Vec<(PeerLog, u64)> {
        let mut out = Vec::new();
        limiter.poll_suppressed(now_ms, |kind, count| out.push((kind, count)));
        out
    }

    #[test]
    fn a_flood_is_cut_to_the_budget_and_summarised_once_per_second() {
        let mut limiter = LogLimiter::new(5);
        let allowed = (0..1000)
            .filter(|i| limiter.allow(PeerLog::BadRequest, 10 + i / 2))
            .count();
        assert_eq!(allowed, 5, "one window: five lines");
        // Nothing to report while the window is open.
        assert!(summaries(&mut limiter, 500).is_empty());
        assert_eq!(
            summaries(&mut limiter, 1_010),
            vec![(PeerLog::BadRequest, 995)]
        );
        // Reported once.
        assert!(summaries(&mut limiter, 1_020).is_empty());
        // A new second, a new budget.
        assert!(limiter.allow(PeerLog::BadRequest, 1_020));
    }

    #[test]
    fn kinds_have_separate_budgets() {
        let mut limiter = LogLimiter::new(2);
        for _ in 0..10 {
            limiter.allow(PeerLog::DeadlineExpired, 0);
        }
        assert!(limiter.allow(PeerLog::Publish, 0));
        assert!(limiter.allow(PeerLog::Publish, 0));
        assert!(!limiter.allow(PeerLog::Publish, 0));
        let mut got = summaries(&mut limiter, 1_000);
        got.sort_by_key(|(kind, _)| kind.label());
        assert_eq!(
            got,
            vec![(PeerLog::DeadlineExpired, 8), (PeerLog::Publish, 1)]
        );
    }

    #[test]
    fn suppressed_lines_are_reported_even_when_the_flood_never_stops() {
        // A line every 10 ms for 5 s: the window rolls on a line, before any poll sees it
        // end; the count must still come out.
        let mut limiter = LogLimiter::new(3);
        let mut reported = 0;
        let mut allowed = 0;
        for t in (0..5_000).step_by(10) {
            if limiter.allow(PeerLog::AcceptFailed, t) {
                allowed += 1;
            }
            if t % 100 == 0 {
                limiter.poll_suppressed(t, |_, count| reported += count);
            }
        }
        limiter.poll_suppressed(10_000, |_, count| reported += count);
        assert_eq!(allowed, 15, "three per second for five seconds");
        assert_eq!(allowed + reported, 500, "every line logged or counted");
    }

    #[test]
    fn zero_budget_logs_nothing_but_counts_everything() {
        let mut limiter = LogLimiter::new(0);
        assert!(!limiter.allow(PeerLog::Publish, 0));
        assert!(!limiter.allow(PeerLog::Publish, 1));
        assert_eq!(summaries(&mut limiter, 1_000), vec![(PeerLog::Publish, 2)]);
    }

    #[test]
    fn labels_are_unique() {
        let mut labels: Vec<&str> = PeerLog::ALL.iter().map(|k| k.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), PeerLog::ALL.len());
        for (i, kind) in PeerLog::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }
}
