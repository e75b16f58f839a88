//! Hostile-peer tests: the peer's index word is written directly with impossible values.
//! Each `CorruptKind` must be reported exactly once, with the exact values, and the handle must
//! then stay stopped: the same error from every call, no shared-memory writes.
#![cfg(not(loom))]

mod ring_util;

use ring_util::{pair, RingMem, E16};
use splitrx_shared::ring::{
    self, Consumer, CorruptKind, Corruption, Producer, RingError, CONSUMER_OFFSET, PRODUCER_OFFSET,
};

fn corrupt(kind: CorruptKind, seen: u32, ours: u32) -> RingError {
    RingError::Corrupt(Corruption { kind, seen, ours })
}

/// Every fallible consumer call returns `err`, the counter stays 1, and the consumer index
/// word is not written (even after the producer index is made plausible again).
fn assert_consumer_stopped(mem: &RingMem, c: &mut Consumer<E16>, err: RingError) {
    assert!(c.is_stopped());
    assert_eq!(c.stats().corrupt, 1);
    let cons_word = mem.peek_word(CONSUMER_OFFSET);
    // A now-plausible producer index does not revive the handle.
    mem.poke(PRODUCER_OFFSET, cons_word.wrapping_add(1));
    let before = mem.bytes();
    let mut out = [E16::default(); 4];
    for _ in 0..3 {
        assert_eq!(c.available(), Err(err));
        assert_eq!(c.pop(), Err(err));
        assert_eq!(c.pop_into(&mut out), Err(err));
        assert_eq!(c.peek(1).err(), Some(err));
        assert_eq!(c.peek(0).err(), Some(err));
        assert_eq!(c.flush(), Err(err));
    }
    assert_eq!(out, [E16::default(); 4]);
    assert_eq!(mem.bytes(), before);
    assert_eq!(c.stats().corrupt, 1);
}

/// Every fallible producer call returns `err`, the counter stays 1, and neither the producer
/// index word nor any entry is written.
fn assert_producer_stopped(mem: &RingMem, p: &mut Producer<E16>, err: RingError) {
    assert!(p.is_stopped());
    assert_eq!(p.stats().corrupt, 1);
    let prod_word = mem.peek_word(PRODUCER_OFFSET);
    mem.poke(CONSUMER_OFFSET, prod_word);
    let before = mem.bytes();
    for _ in 0..3 {
        assert_eq!(p.free(), Err(err));
        assert_eq!(p.push(&E16::new(1)), Err(err));
        assert_eq!(p.push_slice(&[E16::new(1), E16::new(2)]), Err(err));
        assert_eq!(p.reserve(1).err(), Some(err));
        assert_eq!(p.reserve(0).err(), Some(err));
    }
    assert_eq!(mem.bytes(), before);
    assert_eq!(p.stats().corrupt, 1);
}

#[test]
fn producer_ahead_by_more_than_capacity() {
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, 0);
    p.push_slice(&[E16::new(0), E16::new(1)]).unwrap();
    assert_eq!(c.pop(), Ok(Some(E16::new(0))));
    // cons = 1: a producer index of 1 + 8 is the most possible, 1 + 9 is impossible.
    mem.poke(PRODUCER_OFFSET, 9);
    assert_eq!(c.available(), Ok(8));
    let mut c2_out = [E16::default(); 8];
    assert_eq!(c.pop_into(&mut c2_out), Ok(8));
    mem.poke(PRODUCER_OFFSET, 9 + 9);
    let err = corrupt(CorruptKind::ProducerAhead, 18, 9);
    assert_eq!(c.available(), Err(err));
    assert_consumer_stopped(&mem, &mut c, err);
}

#[test]
fn producer_far_ahead_is_ahead_even_across_the_wrap() {
    let mem = RingMem::new(8, 16);
    let (_p, mut c) = pair::<E16>(&mem, 8, u32::MAX - 1);
    mem.poke(PRODUCER_OFFSET, 0x7fff_0000);
    let err = corrupt(CorruptKind::ProducerAhead, 0x7fff_0000, u32::MAX - 1);
    assert_eq!(c.pop(), Err(err));
    assert_consumer_stopped(&mem, &mut c, err);
}

#[test]
fn producer_backwards_below_consumer() {
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, 0);
    p.push_slice(&[E16::new(0); 4]).unwrap();
    let mut out = [E16::default(); 4];
    assert_eq!(c.pop_into(&mut out), Ok(4));
    mem.poke(PRODUCER_OFFSET, 3);
    let err = corrupt(CorruptKind::ProducerBackwards, 3, 4);
    assert_eq!(c.pop(), Err(err));
    assert_consumer_stopped(&mem, &mut c, err);
}

#[test]
fn producer_backwards_but_still_inside_the_window() {
    // prod 4 seen, cons 1; the producer then claims 3 (still >= cons, but it retracted an entry
    // the consumer already knows about).
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, 0);
    p.push_slice(&[E16::new(0); 4]).unwrap();
    assert_eq!(c.pop(), Ok(Some(E16::new(0))));
    mem.poke(PRODUCER_OFFSET, 3);
    let err = corrupt(CorruptKind::ProducerBackwards, 3, 1);
    assert_eq!(c.available(), Err(err));
    assert_consumer_stopped(&mem, &mut c, err);
}

#[test]
fn consumer_ahead_of_producer() {
    let mem = RingMem::new(8, 16);
    let (mut p, _c) = pair::<E16>(&mem, 8, 0);
    p.push_slice(&[E16::new(0); 2]).unwrap();
    mem.poke(CONSUMER_OFFSET, 3);
    let err = corrupt(CorruptKind::ConsumerAhead, 3, 2);
    // The cache shows 6 free, fewer than the whole ring: free() looks.
    assert_eq!(p.free(), Err(err));
    assert_producer_stopped(&mem, &mut p, err);
}

#[test]
fn consumer_ahead_is_seen_when_the_ring_looks_full() {
    let mem = RingMem::new(4, 16);
    let (mut p, _c) = pair::<E16>(&mem, 4, u32::MAX - 2);
    assert_eq!(p.push_slice(&[E16::new(0); 4]), Ok(4));
    mem.poke(CONSUMER_OFFSET, 0x1234_5678);
    let err = corrupt(CorruptKind::ConsumerAhead, 0x1234_5678, 1);
    assert_eq!(p.push(&E16::new(5)), Err(err));
    assert_producer_stopped(&mem, &mut p, err);
}

#[test]
fn consumer_backwards() {
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, 0);
    p.push_slice(&[E16::new(0); 4]).unwrap();
    let mut out = [E16::default(); 4];
    assert_eq!(c.pop_into(&mut out), Ok(4));
    assert_eq!(p.free(), Ok(8));
    mem.poke(CONSUMER_OFFSET, 2);
    p.push_slice(&[E16::new(0); 8]).unwrap();
    // The cache is now full: the next push looks and sees the consumer went from 4 to 2.
    let err = corrupt(CorruptKind::ConsumerBackwards, 2, 12);
    assert_eq!(p.reserve(1).err(), Some(err));
    assert_producer_stopped(&mem, &mut p, err);
}

#[test]
fn inconsistent_indices_are_refused_at_attach() {
    let mem = RingMem::new(8, 16);
    // SAFETY: `mem` covers the ring; each handle is dropped before the next attach.
    unsafe {
        ring::init::<E16>(mem.base(), 8).unwrap();
        mem.poke(PRODUCER_OFFSET, 9);
        assert_eq!(
            Consumer::<E16>::attach(mem.base(), 8).err(),
            Some(corrupt(CorruptKind::ProducerAhead, 9, 0))
        );
        assert_eq!(
            Producer::<E16>::attach(mem.base(), 8).err(),
            Some(corrupt(CorruptKind::ConsumerBackwards, 0, 9))
        );
        mem.poke(PRODUCER_OFFSET, 5);
        mem.poke(CONSUMER_OFFSET, 6);
        assert_eq!(
            Consumer::<E16>::attach(mem.base(), 8).err(),
            Some(corrupt(CorruptKind::ProducerBackwards, 5, 6))
        );
        assert_eq!(
            Producer::<E16>::attach(mem.base(), 8).err(),
            Some(corrupt(CorruptKind::ConsumerAhead, 6, 5))
        );
        mem.poke(CONSUMER_OFFSET, 5u32.wrapping_sub(8));
        assert!(Consumer::<E16>::attach(mem.base(), 8).is_ok());
        assert!(Producer::<E16>::attach(mem.base(), 8).is_ok());
    }
}

#[test]
fn a_plausible_lie_is_followed_and_stays_in_bounds() {
    // A producer index inside the window cannot be told from the truth: the consumer reads the
    // (stale) slots, but only inside the ring, and stays healthy.
    let mem = RingMem::new(4, 16);
    let (_p, mut c) = pair::<E16>(&mem, 4, 0);
    mem.poke(PRODUCER_OFFSET, 4);
    let mut out = [E16::new(1); 4];
    assert_eq!(c.pop_into(&mut out), Ok(4));
    assert_eq!(out, [E16::default(); 4]);
    assert!(!c.is_stopped());
    assert_eq!(c.stats().corrupt, 0);
}

#[test]
fn our_own_index_word_is_never_read_back() {
    // The peer scribbling over *our* index word does not change what we do: the handle's own
    // index is authoritative and the next publish overwrites the scribble.
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, 0);
    p.push(&E16::new(0)).unwrap();
    mem.poke(PRODUCER_OFFSET, 0xffff_0000);
    p.push(&E16::new(1)).unwrap();
    assert_eq!(mem.peek_word(PRODUCER_OFFSET), 2);
    assert_eq!(c.pop(), Ok(Some(E16::new(0))));
    mem.poke(CONSUMER_OFFSET, 7);
    assert_eq!(c.pop(), Ok(Some(E16::new(1))));
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), 2);
    assert!(!p.is_stopped() && !c.is_stopped());
}

#[test]
fn a_lazy_consumer_publishes_before_it_looks_then_stops_on_a_bad_index() {
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, 0);
    c.set_release_every(8);
    p.push_slice(&[E16::new(0), E16::new(1), E16::new(2)])
        .unwrap();
    let mut out = [E16::default(); 3];
    assert_eq!(c.pop_into(&mut out), Ok(3));
    assert_eq!((c.unpublished(), mem.peek_word(CONSUMER_OFFSET)), (3, 0));
    // The cache is empty: the next call publishes the 3 releases, then loads 3 + 9.
    mem.poke(PRODUCER_OFFSET, 12);
    let err = corrupt(CorruptKind::ProducerAhead, 12, 3);
    assert_eq!(c.pop(), Err(err));
    assert_eq!((c.unpublished(), mem.peek_word(CONSUMER_OFFSET)), (0, 3));
    assert_consumer_stopped(&mem, &mut c, err);
}
