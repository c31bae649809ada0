//! Segment memory in the live memory budget (`live.memory_max`): a completed segment's bytes
//! are counted while anything holds them, and given back when the last holder lets go.
//!
//! The charge lives inside the segment's `Bytes` (their owner, [`Bytes::from_owner`]), not
//! beside it: every holder (the segmenter's window, the snapshots workers serve, an ended
//! stream's final snapshot, a response still being sent, the recorder's queue) shares the one
//! allocation, so the bytes leave the budget exactly when the memory is freed, by whichever
//! path drops the last reference. No path has to remember to give them back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

/// `bytes` counted in `counter` from now until this guard drops.
#[derive(Debug)]
pub struct MemoryCharge {
    counter: Arc<AtomicUsize>,
    bytes: usize,
}

impl MemoryCharge {
    pub fn new(counter: Arc<AtomicUsize>, bytes: usize) -> MemoryCharge {
        counter.fetch_add(bytes, Ordering::Relaxed);
        MemoryCharge { counter, bytes }
    }

    /// The bytes this guard holds in its counter.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for MemoryCharge {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A buffer and the charge of its memory, as the owner of a `Bytes`.
struct Charged {
    data: Vec<u8>,
    _charge: MemoryCharge,
}

impl AsRef<[u8]> for Charged {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

/// `data` as shared `Bytes` (no copy) whose memory (its capacity) counts in `counter` until
/// the last clone or slice of them drops.
pub fn charged_bytes(data: Vec<u8>, counter: Arc<AtomicUsize>) -> Bytes {
    let charge = MemoryCharge::new(counter, data.capacity());
    Bytes::from_owner(Charged {
        data,
        _charge: charge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_is_given_back_when_it_drops() {
        let counter = Arc::new(AtomicUsize::new(10));
        let a = MemoryCharge::new(counter.clone(), 100);
        let b = MemoryCharge::new(counter.clone(), 5);
        assert_eq!(a.bytes(), 100);
        assert_eq!(counter.load(Ordering::Relaxed), 115);
        drop(a);
        assert_eq!(counter.load(Ordering::Relaxed), 15);
        drop(b);
        assert_eq!(counter.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn charged_bytes_count_until_the_last_clone_or_slice_drops() {
        let counter = Arc::new(AtomicUsize::new(0));
        let mut data = Vec::with_capacity(1000);
        data.extend_from_slice(&[7u8; 600]);
        let pointer = data.as_ptr();
        let bytes = charged_bytes(data, counter.clone());
        // The capacity is what is held, and the bytes were not copied.
        assert_eq!(counter.load(Ordering::Relaxed), 1000);
        assert_eq!(bytes.len(), 600);
        assert_eq!(bytes.as_ptr(), pointer);
        let clone = bytes.clone();
        let slice = bytes.slice(100..200);
        assert_eq!(slice.as_ptr(), pointer.wrapping_add(100));
        drop(bytes);
        drop(clone);
        assert_eq!(counter.load(Ordering::Relaxed), 1000, "the slice holds it");
        drop(slice);
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_empty_buffer_charges_nothing() {
        let counter = Arc::new(AtomicUsize::new(0));
        let bytes = charged_bytes(Vec::new(), counter.clone());
        assert!(bytes.is_empty());
        assert_eq!(counter.load(Ordering::Relaxed), 0);
        drop(bytes);
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }
}
