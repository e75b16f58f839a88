//! The shared-memory SPSC ring on the Cortex-M7: push/pop over a static buffer (with the
//! free-running indices wrapping past u32::MAX), and a hostile peer index stopping the ring
//! with the exact corruption, once counted.
#![no_std]
#![no_main]

use splitrx_mps2_an500 as _;

use core::ptr::{addr_of_mut, NonNull};
use splitrx_shared::abi::{BufRef, FillDesc};
use splitrx_shared::ring::{
    self, ring_bytes, Consumer, CorruptKind, Corruption, Producer, RingError, PRODUCER_OFFSET,
};

const CAP: u32 = 8;
const BYTES: usize = ring_bytes(CAP, 16) as usize;

#[repr(C, align(128))]
struct RingMem([u8; BYTES]);
static mut MEM: RingMem = RingMem([0; BYTES]);

fn base() -> NonNull<u8> {
    // SAFETY: only the address of the static is taken; the tests run one at a time and
    // every ring handle over it is dropped before the next test starts.
    NonNull::new(unsafe { addr_of_mut!(MEM.0) }.cast::<u8>()).unwrap()
}

/// A fresh ring at `start`, both handles attached.
fn pair(start: u32) -> (Producer<FillDesc>, Consumer<FillDesc>) {
    // SAFETY: MEM is 128-aligned and ring-sized; no handle to it is live (the previous
    // test's were dropped); these are its only producer and consumer.
    unsafe {
        ring::init_at::<FillDesc>(base(), CAP, start).unwrap();
        (
            Producer::attach(base(), CAP).unwrap(),
            Consumer::attach(base(), CAP).unwrap(),
        )
    }
}

fn desc(i: u32) -> FillDesc {
    FillDesc::new(
        BufRef::new(1, i).unwrap(),
        0x1_0000_0000 + i as u64 * 4096,
        4096,
    )
}

fn poke(offset: usize, v: u32) {
    // SAFETY: an index word inside MEM, written as the peer would (atomically).
    let w = unsafe { core::sync::atomic::AtomicU32::from_ptr(base().as_ptr().add(offset).cast()) };
    w.store(v, core::sync::atomic::Ordering::Release);
}

#[defmt_test::tests]
mod tests {
    use super::*;

    #[test]
    fn push_pop_in_order_across_the_index_wrap() {
        let (mut p, mut c) = pair(u32::MAX - 3);
        let mut next_pop = 0u32;
        for i in 0..40u32 {
            defmt::assert!(p.push(&desc(i)).unwrap());
            if i % 3 == 2 {
                // Pop two of every three: the ring fills up, then stays nearly full.
                for _ in 0..2 {
                    let d = c.pop().unwrap().unwrap();
                    defmt::assert!(d == desc(next_pop));
                    next_pop += 1;
                }
            }
            if p.free().unwrap() == 0 {
                defmt::assert_eq!(p.push(&desc(99)), Ok(false));
                break;
            }
        }
        let mut out = [FillDesc::default(); 8];
        let n = c.pop_into(&mut out).unwrap();
        defmt::assert_eq!(n, CAP as usize);
        for (k, d) in out.iter().enumerate() {
            defmt::assert!(*d == desc(next_pop + k as u32));
        }
        defmt::assert!(c.pop() == Ok(None));
        // The indices wrapped past u32::MAX.
        defmt::assert!(p.index() < 100);
        defmt::assert_eq!(p.index(), c.index());
        defmt::assert_eq!(p.stats().corrupt + c.stats().corrupt, 0);
    }

    #[test]
    fn hostile_producer_index_stops_the_consumer() {
        let (mut p, mut c) = pair(0);
        defmt::assert_eq!(p.push_slice(&[desc(0), desc(1)]), Ok(2));
        defmt::assert!(c.pop().unwrap().unwrap() == desc(0));
        // cons = 1: a producer index of 1 + 8 is the most possible; 1 + 9 is a lie.
        poke(PRODUCER_OFFSET, 1 + CAP + 1);
        let err = RingError::Corrupt(Corruption {
            kind: CorruptKind::ProducerAhead,
            seen: 1 + CAP + 1,
            ours: 1,
        });
        defmt::assert_eq!(c.available(), Err(err));
        // Stopped: every call reports the same error, counted once, even once the index is
        // plausible again.
        poke(PRODUCER_OFFSET, 2);
        defmt::assert!(c.pop() == Err(err));
        defmt::assert!(c.is_stopped());
        defmt::assert_eq!(c.stats().corrupt, 1);
    }

    #[test]
    fn backwards_producer_index_stops_the_consumer() {
        let (_p, mut c) = pair(100);
        poke(PRODUCER_OFFSET, 99);
        let err = RingError::Corrupt(Corruption {
            kind: CorruptKind::ProducerBackwards,
            seen: 99,
            ours: 100,
        });
        defmt::assert_eq!(c.available(), Err(err));
        defmt::assert!(c.pop() == Err(err));
        defmt::assert_eq!(c.stats().corrupt, 1);
    }

    #[test]
    fn misaligned_ring_is_refused() {
        // SAFETY: the pointer is inside MEM; attach refuses a base that is not 64-byte aligned
        // before it reads anything, so the 4 bytes past MEM's end are never reached.
        let r = unsafe {
            Producer::<FillDesc>::attach(NonNull::new(base().as_ptr().add(4)).unwrap(), CAP)
        };
        defmt::assert_eq!(r.err(), Some(RingError::BadLayout));
    }
}
