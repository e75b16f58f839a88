//! The recycle ring: a bounded, lock-free, multi-producer / single-consumer queue of free
//! buffer indices.
//!
//! Kernel counterpart: the page pool's `ptr_ring` (`page_pool_recycle_in_ring`). A buffer whose
//! last reference is dropped on a thread that is not the pool's owner (an application thread
//! dropping a [`crate::token::Token`]) is pushed here; the owner (the RX queue's poller) pops
//! buffers back into its lock-free cache on the allocation slow path
//! (`page_pool_refill_alloc_cache`). When the ring is full the producer releases the buffer
//! to the memory provider instead (`recycle_ring_full` + `released`), exactly like the kernel.
//!
//! Algorithm: Dmitry Vyukov's bounded queue. Each cell carries a sequence number; a producer
//! claims position `p` by CAS on the shared tail when `cell.seq == p`, writes the value and
//! publishes `seq = p + 1` with `Release`; the consumer reads cell `h` when `seq == h + 1`
//! (`Acquire`) and frees it for the next lap with `seq = h + capacity`. The consumer's head is
//! a plain integer in [`RecycleConsumer`] (owned by the one consumer), so popping needs no
//! read-modify-write at all. Producers never read the head; "full" is detected by a cell whose
//! sequence number is a lap behind.
//!
//! Indices are free-running `u32`s compared by wrapping difference, so the ring works across
//! wrap-around for any power-of-two capacity up to 2^30.

use crate::sync::{AtomicU32, CachePadded, Ordering};

#[derive(Debug)]
struct Slot {
    seq: AtomicU32,
    val: AtomicU32,
}

/// Shared (producer) side of the ring. `Sync`: any thread may [`push`](Self::push).
#[derive(Debug)]
pub struct RecycleRing {
    tail: CachePadded<AtomicU32>,
    slots: Box<[Slot]>,
    mask: u32,
}

/// Consumer side: the head index, owned by exactly one thread (the pool owner).
#[derive(Debug)]
pub struct RecycleConsumer {
    head: u32,
}

impl RecycleRing {
    /// A ring with `capacity` cells (rounded up to a power of two, at least 2, at most 2^30)
    /// and its single consumer.
    pub fn new(capacity: usize) -> (RecycleRing, RecycleConsumer) {
        let cap = capacity.clamp(2, 1 << 30).next_power_of_two();
        let slots = (0..cap)
            .map(|i| Slot {
                seq: AtomicU32::new(i as u32),
                val: AtomicU32::new(0),
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let ring = RecycleRing {
            tail: CachePadded(AtomicU32::new(0)),
            slots,
            mask: cap as u32 - 1,
        };
        (ring, RecycleConsumer { head: 0 })
    }

    /// Number of cells.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Pushes `val`; `Err(val)` when the ring is full (the caller then releases the buffer to
    /// the provider). Lock-free: a producer only retries when another producer won the same
    /// cell.
    pub fn push(&self, val: u32) -> Result<(), u32> {
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[(pos & self.mask) as usize];
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos) as i32;
            if diff == 0 {
                match self.tail.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        slot.val.store(val, Ordering::Relaxed);
                        slot.seq.store(pos.wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                // The cell still holds the value of the previous lap: full.
                return Err(val);
            } else {
                // Another producer claimed `pos` already; catch up.
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Pops the oldest value, if any. Only the holder of the one [`RecycleConsumer`] of this
    /// ring can pop, which is what makes the plain head index sound.
    pub fn pop(&self, c: &mut RecycleConsumer) -> Option<u32> {
        let slot = &self.slots[(c.head & self.mask) as usize];
        let seq = slot.seq.load(Ordering::Acquire);
        if seq != c.head.wrapping_add(1) {
            return None;
        }
        let val = slot.val.load(Ordering::Relaxed);
        slot.seq
            .store(c.head.wrapping_add(self.mask + 1), Ordering::Release);
        c.head = c.head.wrapping_add(1);
        Some(val)
    }

    /// Values currently published and not yet popped (a snapshot; exact when no producer is
    /// mid-push). Does not consume. Used by audits.
    pub fn peek_all(&self, c: &RecycleConsumer, out: &mut Vec<u32>) {
        let mut h = c.head;
        for _ in 0..self.slots.len() {
            let slot = &self.slots[(h & self.mask) as usize];
            if slot.seq.load(Ordering::Acquire) != h.wrapping_add(1) {
                break;
            }
            out.push(slot.val.load(Ordering::Relaxed));
            h = h.wrapping_add(1);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_and_wraparound() {
        let (r, mut c) = RecycleRing::new(3);
        assert_eq!(r.capacity(), 4);
        for lap in 0..10u32 {
            for i in 0..4 {
                assert_eq!(r.push(lap * 10 + i), Ok(()));
            }
            assert_eq!(r.push(99), Err(99));
            let mut seen = Vec::new();
            r.peek_all(&c, &mut seen);
            assert_eq!(seen, [lap * 10, lap * 10 + 1, lap * 10 + 2, lap * 10 + 3]);
            for i in 0..4 {
                assert_eq!(r.pop(&mut c), Some(lap * 10 + i));
            }
            assert_eq!(r.pop(&mut c), None);
        }
    }

    #[test]
    fn indices_wrap_u32() {
        let (r, mut c) = RecycleRing::new(4);
        // Start both sides just below u32::MAX to cross the wrap.
        let start = u32::MAX - 5;
        r.tail.0.store(start, Ordering::Relaxed);
        for (i, s) in r.slots.iter().enumerate() {
            // Cell k holds seq = first position p >= start with p & mask == k.
            let k = i as u32;
            let p = start.wrapping_add(k.wrapping_sub(start) & r.mask);
            s.seq.store(p, Ordering::Relaxed);
        }
        c.head = start;
        for round in 0..5u32 {
            for i in 0..3 {
                r.push(round * 3 + i).unwrap();
            }
            for i in 0..3 {
                assert_eq!(r.pop(&mut c), Some(round * 3 + i));
            }
        }
        assert!(c.head < 100);
    }
}
