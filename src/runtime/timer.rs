//! A hashed timer wheel for connection deadlines.
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
    fn insert_in_the_past_fires_on_next_advance() {
        let mut wheel = TimerWheel::new(100, 1_000, 10_000);
        let mut due = Vec::new();
        wheel.advance(10_000, &mut due);
        wheel.insert((3, 2, 5), 5);
        wheel.advance(10_100, &mut due);
        assert_eq!(due, vec![(3, 2, 5)]);
    }
}
