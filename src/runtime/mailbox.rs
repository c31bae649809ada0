//! A per-worker mailbox: a lock-free queue of commands from other workers plus a doorbell, an
//! IORING_OP_MSG_RING completion posted into the owner's ring, so the owner learns of new
//! commands inside its own `io_uring_enter` with no eventfd, syscall or lock of its own.
//!
//! Doorbells are coalesced: a sender rings only when the doorbell is not already pending, and
//! the owner clears "pending" *before* it drains the queue, so a command pushed during a drain
//! either is drained by it or rings again. The owner also drains once per tick, so a doorbell
//! that failed (counted by the sender) delays commands by at most a tick.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use crossbeam_queue::SegQueue;
use crossbeam_utils::CachePadded;

pub struct Mailbox<T> {
    queue: SegQueue<T>,
    /// A doorbell is on its way or unhandled; senders need not ring.
    pending: CachePadded<AtomicBool>,
    /// The owner's ring fd (-1 until the owner has started).
    ring_fd: AtomicI32,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Mailbox {
            queue: SegQueue::new(),
            pending: CachePadded::new(AtomicBool::new(false)),
            ring_fd: AtomicI32::new(-1),
        }
    }
}

impl<T> Mailbox<T> {
    /// The owner announces its ring.
    pub fn set_ring_fd(&self, fd: RawFd) {
        self.ring_fd.store(fd, Ordering::Release);
    }

    /// Queue `command`. Returns the owner's ring fd when the caller must ring the doorbell
    /// (one IORING_OP_MSG_RING, see [`super::ops::msg_ring`]); None when a doorbell is already
    /// pending or the owner has not started (it drains on its first turn).
    pub fn post(&self, command: T) -> Option<RawFd> {
        self.queue.push(command);
        if self.pending.swap(true, Ordering::AcqRel) {
            return None;
        }
        let fd = self.ring_fd.load(Ordering::Acquire);
        (fd >= 0).then_some(fd)
    }

    /// The owner: a doorbell arrived (or a tick passed). Clears "pending", then hands every
    /// queued command to `handle`.
    pub fn drain(&self, mut handle: impl FnMut(T)) {
        self.pending.store(false, Ordering::Release);
        while let Some(command) = self.queue.pop() {
            handle(command);
        }
    }

    /// Whether commands are waiting (for the per-tick check).
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn rings_once_until_drained() {
        let mailbox: Mailbox<u32> = Mailbox::default();
        assert_eq!(mailbox.post(1), None, "no ring fd yet");
        mailbox.set_ring_fd(7);
        let mut got = Vec::new();
        mailbox.drain(|c| got.push(c));
        assert_eq!(mailbox.post(2), Some(7));
        assert_eq!(mailbox.post(3), None, "coalesced");
        mailbox.drain(|c| got.push(c));
        assert_eq!(got, vec![1, 2, 3]);
        assert_eq!(mailbox.post(4), Some(7));
    }

    #[test]
    fn no_command_is_lost_between_senders_and_a_draining_owner() {
        let mailbox: Arc<Mailbox<u64>> = Arc::new(Mailbox::default());
        mailbox.set_ring_fd(3);
        let senders: Vec<_> = (0..3u64)
            .map(|t| {
                let mailbox = mailbox.clone();
                std::thread::spawn(move || {
                    let mut rings = 0;
                    for i in 0..10_000 {
                        rings += usize::from(mailbox.post(t * 100_000 + i).is_some());
                    }
                    rings
                })
            })
            .collect();
        let mut got = 0usize;
        while got < 30_000 {
            mailbox.drain(|_| got += 1);
            std::hint::spin_loop();
        }
        let rings: usize = senders.into_iter().map(|s| s.join().unwrap_or(0)).sum();
        assert_eq!(got, 30_000);
        assert!(rings >= 1);
        // After the last drain, a new command rings again.
        mailbox.drain(|_| {});
        assert_eq!(mailbox.post(1), Some(3));
    }
}
