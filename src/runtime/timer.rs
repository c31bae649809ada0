//! Connection deadlines: several named timers per slot ([`Timers`]) and one hashed wheel
//! ([`TimerWheel`]) per worker that holds each slot's earliest deadline.
//!
//! A slot's timers are an array indexed by the owner's timer enum (quinn-proto's way): the
//! next deadline is the minimum of the armed ones, and only that one is in the wheel.
//!
//! Each connection keeps its current deadline in its own state and one live entry in the wheel
//! (the entry's time is recorded in the connection). Pushing a deadline later (on progress)
//! costs nothing: when the old entry comes due, the worker sees the deadline moved and re-inserts
//! it. Pulling it earlier inserts a new entry and leaves the old one stale, to be dropped when it
//! surfaces. So the cost is O(1) per connection per deadline change and O(due entries) per tick,
//! never a scan of every connection.

/// (slab key, generation, scheduled time in ms) of a connection's entry in the wheel.
pub type TimerEntry = (usize, u32, u64);

pub struct TimerWheel {
    slots: Vec<Vec<TimerEntry>>,
    tick_ms: u64,
    /// The next tick (absolute, in ticks since the worker's epoch) not yet processed.
    cursor: u64,
}

impl TimerWheel {
    /// `horizon_ms` only sizes the wheel; later deadlines wrap around and are re-inserted.
    pub fn new(tick_ms: u64, horizon_ms: u64, now_ms: u64) -> TimerWheel {
        let tick_ms = tick_ms.max(1);
        let slots = (horizon_ms / tick_ms).clamp(16, 1 << 16) as usize;
        TimerWheel {
            slots: vec![Vec::new(); slots],
            tick_ms,
            cursor: now_ms / tick_ms,
        }
    }

    /// Schedule `entry` to be looked at once `deadline_ms` has passed.
    pub fn insert(&mut self, entry: TimerEntry, deadline_ms: u64) {
        // Never behind the cursor, so an entry is always visited by a future advance.
        let tick = (deadline_ms.div_ceil(self.tick_ms)).max(self.cursor);
        let index = (tick % self.slots.len() as u64) as usize;
        self.slots[index].push(entry);
    }

    /// Move time forward to `now_ms`, handing every entry of every passed slot to `due`.
    /// Entries whose deadline is in fact later (wrapped, or moved) must be re-inserted by the
    /// caller, which is the only one who knows the current deadline.
    pub fn advance(&mut self, now_ms: u64, due: &mut Vec<TimerEntry>) {
        let now_tick = now_ms / self.tick_ms;
        let len = self.slots.len() as u64;
        // After a long stall visit each slot once, not once per missed tick.
        let start = self.cursor.max(now_tick.saturating_sub(len - 1));
        for tick in start..=now_tick {
            let index = (tick % len) as usize;
            due.append(&mut self.slots[index]);
        }
        self.cursor = now_tick + 1;
    }
}

/// Unarmed timer.
const NEVER: u64 = u64::MAX;

/// `N` named deadlines of one slot (absolute worker milliseconds) and the time of the slot's
/// live entry in the wheel.
#[derive(Debug, Clone)]
pub struct Timers<const N: usize> {
    at_ms: [u64; N],
    wheel_at_ms: Option<u64>,
}

impl<const N: usize> Default for Timers<N> {
    fn default() -> Self {
        Timers {
            at_ms: [NEVER; N],
            wheel_at_ms: None,
        }
    }
}

impl<const N: usize> Timers<N> {
    /// Arm timer `index` at `at_ms` (re-arming moves it). Returns `Some(at)` when the wheel
    /// needs a new entry for the slot at `at` (the new deadline is earlier than its entry).
    #[must_use]
    pub fn arm(&mut self, index: usize, at_ms: u64) -> Option<u64> {
        self.at_ms[index] = at_ms;
        if self.wheel_at_ms.is_none_or(|at| at > at_ms) {
            self.wheel_at_ms = Some(at_ms);
            return Some(at_ms);
        }
        None
    }

    pub fn disarm(&mut self, index: usize) {
        self.at_ms[index] = NEVER;
    }

    pub fn disarm_all(&mut self) {
        self.at_ms = [NEVER; N];
    }

    pub fn is_armed(&self, index: usize) -> bool {
        self.at_ms[index] != NEVER
    }

    pub fn get(&self, index: usize) -> Option<u64> {
        (self.at_ms[index] != NEVER).then_some(self.at_ms[index])
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<u64> {
        self.at_ms.iter().copied().filter(|&t| t != NEVER).min()
    }

    /// The wheel handed back the slot's entry scheduled at `entry_at_ms`. Returns the timers
    /// due at `now_ms` (disarmed; the caller acts on them in index order), or nothing when the
    /// entry is stale (superseded by an earlier one). Afterwards, `reschedule` says whether
    /// the slot needs a new wheel entry.
    pub fn fire(&mut self, entry_at_ms: u64, now_ms: u64, due: &mut Vec<usize>) -> bool {
        if self.wheel_at_ms != Some(entry_at_ms) {
            return false;
        }
        self.wheel_at_ms = None;
        for (index, at) in self.at_ms.iter_mut().enumerate() {
            if *at <= now_ms {
                *at = NEVER;
                due.push(index);
            }
        }
        true
    }

    /// After [`Timers::fire`] (and whatever the fired timers did): the time of the new wheel
    /// entry the slot needs, if a timer is still armed and no entry covers it.
    #[must_use]
    pub fn reschedule(&mut self) -> Option<u64> {
        let next = self.next()?;
        if self.wheel_at_ms.is_none_or(|at| at > next) {
            self.wheel_at_ms = Some(next);
            return Some(next);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_after_deadline_not_before() {
        let mut wheel = TimerWheel::new(100, 10_000, 0);
        wheel.insert((1, 0, 250), 250);
        let mut due = Vec::new();
        wheel.advance(200, &mut due);
        assert!(due.is_empty());
        wheel.advance(300, &mut due);
        assert_eq!(due, vec![(1, 0, 250)]);
    }

    #[test]
    fn wrapped_entries_surface_early_for_reinsertion_and_long_stalls_visit_all() {
        let mut wheel = TimerWheel::new(10, 160, 0);
        wheel.insert((7, 1, 1_000), 1_000); // beyond the horizon: surfaces early, caller re-inserts
        wheel.insert((8, 1, 50), 50);
        let mut due = Vec::new();
        wheel.advance(5_000, &mut due);
        due.sort();
        assert_eq!(due, vec![(7, 1, 1_000), (8, 1, 50)]);
    }

    #[test]
    fn timers_keep_one_wheel_entry_at_their_minimum() {
        let mut t: Timers<3> = Timers::default();
        assert_eq!(t.arm(0, 500), Some(500));
        // Later deadlines ride on the existing entry.
        assert_eq!(t.arm(1, 900), None);
        // An earlier one needs a new entry; the old one goes stale.
        assert_eq!(t.arm(2, 200), Some(200));
        let mut due = Vec::new();
        assert!(!t.fire(500, 600, &mut due), "stale entry");
        assert!(t.fire(200, 600, &mut due));
        assert_eq!(due, vec![0, 2]);
        assert_eq!(t.reschedule(), Some(900));
        assert_eq!(t.reschedule(), None);
        t.disarm(1);
        assert_eq!(t.next(), None);
        due.clear();
        assert!(t.fire(900, 1000, &mut due));
        assert!(due.is_empty());
        assert_eq!(t.reschedule(), None);
    }

    #[test]
    fn insert_in_the_past_fires_on_next_advance() {
        let mut wheel = TimerWheel::new(100, 1_000, 10_000);
        let mut due = Vec::new();
        wheel.advance(10_000, &mut due);
        wheel.insert((3, 2, 5), 5);
        wheel.advance(10_100, &mut due);
        assert_eq!(due, vec![(3, 2, 5)]);
    }
}
