//! Unit tests of the ring: fill/drain, wraparound across `u32::MAX`, partial batches,
//! full/empty, layout checks and the exact byte layout in memory.
#![cfg(not(loom))]
// Handles and chunks are dropped explicitly to show where they end (uncommitted chunk,
// handles gone before a re-attach).
#![allow(clippy::drop_non_drop)]

mod ring_util;

use ring_util::{pair, RingMem, E16};
use splitrx_shared::ring::{
    self, Consumer, Producer, RingError, RingStats, CONSUMER_OFFSET, PRODUCER_OFFSET,
    RING_INDEX_BYTES,
};
use zerocopy::IntoBytes;

#[test]
fn fill_then_drain() {
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, 0);
    assert_eq!(p.capacity(), 8);
    assert_eq!(c.capacity(), 8);
    for i in 0..8 {
        assert_eq!(p.push(&E16::new(i)), Ok(true), "push {i}");
    }
    assert_eq!(p.push(&E16::new(99)), Ok(false));
    assert_eq!(p.free(), Ok(0));
    assert_eq!(c.available(), Ok(8));
    for i in 0..8 {
        assert_eq!(c.pop(), Ok(Some(E16::new(i))));
    }
    assert_eq!(c.pop(), Ok(None));
    assert_eq!(p.free(), Ok(8));
    assert_eq!(mem.peek_word(PRODUCER_OFFSET), 8);
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), 8);
    assert_eq!(p.stats().entries, 8);
    assert_eq!(c.stats().entries, 8);
    assert_eq!((p.stats().corrupt, c.stats().corrupt), (0, 0));
}

#[test]
fn entries_land_at_the_documented_offsets() {
    let mem = RingMem::new(4, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 4, 0);
    // Indices 0..6: slots 0,1,2,3,0,1 — the last two overwrite the first two after a drain.
    assert_eq!(
        p.push_slice(&[E16::new(10), E16::new(11), E16::new(12), E16::new(13)]),
        Ok(4)
    );
    let mut out = [E16::default(); 2];
    assert_eq!(c.pop_into(&mut out), Ok(2));
    assert_eq!(p.push_slice(&[E16::new(14), E16::new(15)]), Ok(2));
    let bytes = mem.bytes();
    assert_eq!(&bytes[0..4], &6u32.to_le_bytes());
    assert_eq!(&bytes[4..128], &[0u8; 124][..]);
    assert_eq!(&bytes[128..132], &2u32.to_le_bytes());
    assert_eq!(&bytes[132..256], &[0u8; 124][..]);
    let slot = |i: usize| &bytes[RING_INDEX_BYTES + i * 16..RING_INDEX_BYTES + (i + 1) * 16];
    assert_eq!(slot(0), E16::new(14).as_bytes());
    assert_eq!(slot(1), E16::new(15).as_bytes());
    assert_eq!(slot(2), E16::new(12).as_bytes());
    assert_eq!(slot(3), E16::new(13).as_bytes());
}

#[test]
fn wraparound_across_u32_max() {
    let start = u32::MAX - 5;
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, start);
    assert_eq!(p.index(), start);
    assert_eq!(c.index(), start);
    let mut next_in = 0u64;
    let mut next_out = 0u64;
    // Mixed batch sizes so that batches straddle both the slot-array end and the u32 wrap.
    for round in 0..40u32 {
        let k = 1 + round % 7;
        let batch: Vec<E16> = (0..k as u64).map(|j| E16::new(next_in + j)).collect();
        let pushed = p.push_slice(&batch).unwrap();
        next_in += pushed as u64;
        let mut out = vec![E16::default(); (1 + round % 5) as usize];
        let got = c.pop_into(&mut out).unwrap();
        for e in &out[..got] {
            assert_eq!(*e, E16::new(next_out));
            next_out += 1;
        }
    }
    while let Some(e) = c.pop().unwrap() {
        assert_eq!(e, E16::new(next_out));
        next_out += 1;
    }
    assert_eq!(next_in, next_out);
    assert!(next_in > 100, "moved {next_in}");
    let end = start.wrapping_add(next_in as u32);
    assert!(end < start, "indices wrapped");
    assert_eq!(p.index(), end);
    assert_eq!(c.index(), end);
    assert_eq!(mem.peek_word(PRODUCER_OFFSET), end);
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), end);
    assert_eq!(p.free(), Ok(8));
    assert_eq!((p.stats().corrupt, c.stats().corrupt), (0, 0));
}

#[test]
fn full_and_empty_exactly_at_the_wrap() {
    // Producer index goes u32::MAX-3 .. u32::MAX+5 (wrapped) with the ring exactly full.
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, u32::MAX - 3);
    let items: Vec<E16> = (0..20).map(E16::new).collect();
    assert_eq!(p.push_slice(&items), Ok(8));
    assert_eq!(p.index(), 4);
    assert_eq!(p.reserve(1).unwrap().len(), 0);
    assert_eq!(c.available(), Ok(8));
    let mut out = [E16::default(); 20];
    assert_eq!(c.pop_into(&mut out), Ok(8));
    assert_eq!(&out[..8], &items[..8]);
    assert_eq!(c.available(), Ok(0));
    assert!(c.peek(4).unwrap().is_empty());
    assert_eq!(c.pop(), Ok(None));
    assert_eq!(p.free(), Ok(8));
}

#[test]
fn partial_commit_and_release() {
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, 0);
    let mut w = p.reserve(5).unwrap();
    assert_eq!(w.len(), 5);
    for i in 0..5 {
        w.write(i, &E16::new(u64::from(i)));
    }
    w.commit(3);
    assert_eq!(mem.peek_word(PRODUCER_OFFSET), 3);
    assert_eq!(c.available(), Ok(3));

    // The next reservation starts right after the 3 committed: slot 3 is rewritten.
    let mut w = p.reserve(2).unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(w.write_slice(0, &[E16::new(30), E16::new(40)]), 2);
    drop(w); // uncommitted: nothing published
    assert_eq!(mem.peek_word(PRODUCER_OFFSET), 3);

    let r = c.peek(10).unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r.get(0), Some(E16::new(0)));
    assert_eq!(r.get(2), Some(E16::new(2)));
    assert_eq!(r.get(3), None);
    let mut two = [E16::default(); 2];
    assert_eq!(r.copy_to(1, &mut two), 2);
    assert_eq!(two, [E16::new(1), E16::new(2)]);
    r.release(2);
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), 2);
    assert_eq!(c.available(), Ok(1));
    assert_eq!(c.pop(), Ok(Some(E16::new(2))));

    // Dropping a ReadChunk releases nothing.
    p.push(&E16::new(7)).unwrap();
    drop(c.peek(1).unwrap());
    assert_eq!(c.pop(), Ok(Some(E16::new(7))));

    // Committing 0 publishes nothing.
    p.reserve(4).unwrap().commit(0);
    assert_eq!(mem.peek_word(PRODUCER_OFFSET), 4);
    assert_eq!(p.stats().entries, 4);
    assert_eq!(c.stats().entries, 4);
}

#[test]
fn reserve_and_peek_return_what_fits() {
    let mem = RingMem::new(4, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 4, 0);
    let mut w = p.reserve(10).unwrap();
    assert_eq!(w.len(), 4);
    assert_eq!(w.write_slice(2, &[E16::new(2), E16::new(3)]), 2);
    w.write(0, &E16::new(0));
    w.write(1, &E16::new(1));
    w.commit(4);
    assert_eq!(p.reserve(1).unwrap().len(), 0);
    assert_eq!(p.push(&E16::new(9)), Ok(false));
    assert_eq!(p.push_slice(&[E16::new(9)]), Ok(0));
    let r = c.peek(3).unwrap();
    assert_eq!(r.len(), 3);
    r.release(3);
    // The producer sees 3 free only after refreshing.
    assert_eq!(p.reserve(3).unwrap().len(), 3);
    assert_eq!(c.pop(), Ok(Some(E16::new(3))));
    assert_eq!(c.pop(), Ok(None));
}

#[test]
fn the_peer_index_is_loaded_only_when_the_cache_is_short() {
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, 0);
    // The cache says 8 free: four pushes of 2 load nothing.
    for i in 0..4 {
        assert_eq!(p.push_slice(&[E16::new(2 * i), E16::new(2 * i + 1)]), Ok(2));
    }
    assert_eq!(p.stats().peer_refresh, 0);
    // The consumer's cache says 0 ready: one load, then 8 pops from the cache.
    let mut out = [E16::default(); 1];
    for _ in 0..8 {
        assert_eq!(c.pop_into(&mut out), Ok(1));
    }
    assert_eq!(c.stats().peer_refresh, 1);
    // Empty: each pop attempt must look again.
    assert_eq!(c.pop(), Ok(None));
    assert_eq!(c.pop(), Ok(None));
    assert_eq!(c.stats().peer_refresh, 3);
    // Producer: cache says full; one load sees 8 free.
    assert_eq!(p.push(&E16::new(8)), Ok(true));
    assert_eq!(p.stats().peer_refresh, 1);
    assert_eq!(
        p.stats(),
        RingStats {
            entries: 9,
            corrupt: 0,
            peer_refresh: 1
        }
    );
}

#[test]
fn bad_layout_is_rejected() {
    let mem = RingMem::new(8, 16);
    for cap in [0u32, 3, 6, 7] {
        // SAFETY: the memory covers ring_bytes(8, 16) >= any ring the checks would accept.
        unsafe {
            assert_eq!(
                ring::init::<E16>(mem.base(), cap),
                Err(RingError::BadLayout)
            );
            assert_eq!(
                Producer::<E16>::attach(mem.base(), cap).err(),
                Some(RingError::BadLayout)
            );
            assert_eq!(
                Consumer::<E16>::attach(mem.base(), cap).err(),
                Some(RingError::BadLayout)
            );
        }
    }
    let big = RingMem::new(8, 16);
    for off in [4usize, 8, 32] {
        // SAFETY: `off < 64`; a misaligned base is rejected before any access.
        let base = unsafe { big.base().add(off) };
        // SAFETY: the calls below only check `base`'s alignment and refuse it before any access.
        unsafe {
            assert_eq!(ring::init::<E16>(base, 4), Err(RingError::BadLayout));
            assert_eq!(
                Producer::<E16>::attach(base, 4).err(),
                Some(RingError::BadLayout)
            );
            assert_eq!(
                Consumer::<E16>::attach(base, 4).err(),
                Some(RingError::BadLayout)
            );
        }
    }
    // A ring whose byte size does not fit in `isize`: 2^31 entries of 2^32 bytes.
    #[cfg(target_pointer_width = "64")]
    // SAFETY: rejected before any access.
    unsafe {
        type Huge = [u8; 1 << 32];
        assert_eq!(
            ring::init::<Huge>(mem.base(), 1 << 31),
            Err(RingError::BadLayout)
        );
        assert_eq!(
            Consumer::<Huge>::attach(mem.base(), 1 << 31).err(),
            Some(RingError::BadLayout)
        );
    }
    // 64-aligned is enough.
    // SAFETY: base + 64 is 64-aligned and the allocation covers ring_bytes(4, 16) from there.
    unsafe { ring::init::<E16>(big.base().add(64), 4).unwrap() };
}

#[test]
fn init_zeroes_the_index_blocks() {
    let mem = RingMem::new(4, 16);
    let (mut p, _c) = pair::<E16>(&mem, 4, 0);
    p.push(&E16::new(1)).unwrap();
    drop(p);
    for off in (0..RING_INDEX_BYTES).step_by(4) {
        mem.poke(off, 0xdead_beef);
    }
    // SAFETY: no handle lives (`_c` never touches memory again: it is dropped unused).
    unsafe { ring::init::<E16>(mem.base(), 4).unwrap() };
    assert_eq!(
        &mem.bytes()[..RING_INDEX_BYTES],
        &[0u8; RING_INDEX_BYTES][..]
    );
    // Entries are left alone.
    assert_eq!(&mem.bytes()[256..272], E16::new(1).as_bytes());
}

#[test]
fn attach_resumes_at_the_published_indices() {
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, 100);
    p.push_slice(&(0..6).map(E16::new).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(c.pop(), Ok(Some(E16::new(0))));
    drop((p, c));
    // SAFETY: the previous handles are gone; the memory outlives the new ones.
    let (mut p, mut c) = unsafe {
        (
            Producer::<E16>::attach(mem.base(), 8).unwrap(),
            Consumer::<E16>::attach(mem.base(), 8).unwrap(),
        )
    };
    assert_eq!((p.index(), c.index()), (106, 101));
    assert_eq!(p.free(), Ok(3));
    assert_eq!(c.available(), Ok(5));
    assert_eq!(c.pop(), Ok(Some(E16::new(1))));
}

#[test]
fn zero_sized_batches_are_no_ops() {
    let mem = RingMem::new(4, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 4, 0);
    assert_eq!(p.push_slice(&[]), Ok(0));
    assert_eq!(c.pop_into(&mut []), Ok(0));
    assert_eq!(p.reserve(0).unwrap().len(), 0);
    assert_eq!(c.peek(0).unwrap().len(), 0);
    assert_eq!(mem.peek_word(PRODUCER_OFFSET), 0);
    assert_eq!(p.stats().entries + c.stats().entries, 0);
}

#[test]
fn a_capacity_one_ring_works() {
    let mem = RingMem::new(1, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 1, u32::MAX);
    for i in 0..5 {
        assert_eq!(p.push(&E16::new(i)), Ok(true));
        assert_eq!(p.push(&E16::new(i)), Ok(false));
        assert_eq!(c.pop(), Ok(Some(E16::new(i))));
        assert_eq!(c.pop(), Ok(None));
    }
}

#[test]
fn handles_can_move_to_another_thread() {
    fn send<X: Send>(_: &X) {}
    let mem = RingMem::new(4, 16);
    let (p, c) = pair::<E16>(&mem, 4, 0);
    send(&p);
    send(&c);
    let mut p = std::thread::scope(|s| {
        s.spawn(move || {
            let mut p = p;
            p.push_slice(&[E16::new(1), E16::new(2)]).unwrap();
            p
        })
        .join()
        .unwrap()
    });
    let mut c = c;
    assert_eq!(c.pop(), Ok(Some(E16::new(1))));
    assert_eq!(p.push(&E16::new(3)), Ok(true));
    let mut out = [E16::default(); 3];
    assert_eq!(c.pop_into(&mut out), Ok(2));
    assert_eq!(&out[..2], &[E16::new(2), E16::new(3)]);
}

#[test]
fn lazy_release_publishes_at_the_threshold_when_short_and_on_flush() {
    let mem = RingMem::new(8, 16);
    let (mut p, mut c) = pair::<E16>(&mem, 8, u32::MAX - 1);
    c.set_release_every(4);
    let items: Vec<E16> = (0..8).map(E16::new).collect();
    assert_eq!(p.push_slice(&items), Ok(8));
    let start = u32::MAX - 1;
    let mut out = [E16::default(); 3];
    // 3 released: below the threshold, nothing published; the producer still sees a full ring.
    assert_eq!(c.pop_into(&mut out), Ok(3));
    assert_eq!(out, [E16::new(0), E16::new(1), E16::new(2)]);
    assert_eq!((c.index(), c.unpublished()), (start.wrapping_add(3), 3));
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), start);
    assert_eq!(p.free(), Ok(0));
    // The 4th release reaches the threshold: all 4 published with one store.
    assert_eq!(c.pop(), Ok(Some(E16::new(3))));
    assert_eq!(c.unpublished(), 0);
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), start.wrapping_add(4));
    assert_eq!(p.free(), Ok(4));
    // Flush publishes what is pending, and is a no-op when nothing is.
    let r = c.peek(2).unwrap();
    assert_eq!(r.get(1), Some(E16::new(5)));
    r.release(2);
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), start.wrapping_add(4));
    assert_eq!(c.flush(), Ok(()));
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), start.wrapping_add(6));
    assert_eq!(c.flush(), Ok(()));
    assert_eq!(p.free(), Ok(6));
    // Short of entries (asks for 3, 2 are left in the cache): the consumer publishes its 2
    // pending releases before it loads the producer index, so a producer waiting for space
    // is never left waiting for slots the consumer already freed.
    let mut out = [E16::default(); 3];
    assert_eq!(c.pop_into(&mut out), Ok(2));
    assert_eq!(c.unpublished(), 2);
    assert_eq!(c.pop(), Ok(None));
    assert_eq!(c.unpublished(), 0);
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), start.wrapping_add(8));
    assert_eq!(p.free(), Ok(8));
    assert_eq!(c.stats().entries, 8);
    // Thresholds are clamped to 1..=capacity: 0 means every release, 100 means 8.
    c.set_release_every(0);
    assert_eq!(p.push(&E16::new(8)), Ok(true));
    assert_eq!(c.pop(), Ok(Some(E16::new(8))));
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), start.wrapping_add(9));
    c.set_release_every(100);
    assert_eq!(p.push_slice(&items), Ok(8));
    let mut out = [E16::default(); 8];
    assert_eq!(c.pop_into(&mut out[..7]), Ok(7));
    assert_eq!(c.unpublished(), 7);
    assert_eq!(c.pop_into(&mut out[7..]), Ok(1));
    assert_eq!(c.unpublished(), 0);
    assert_eq!(mem.peek_word(CONSUMER_OFFSET), start.wrapping_add(17));
}

/// Entries whose size selects each copy width of the ring (16-byte chunks for 48 bytes,
/// 8-byte words for 24, 4-byte words for 12, bytes for 3) come out byte for byte as they went
/// in, through every copy path (`push`/`push_slice`/`write`/`write_slice` in, `pop`/`pop_into`/
/// `get`/`copy_to` out), with batches that straddle the end of the slot array.
#[test]
fn every_copy_width_round_trips_across_the_slot_array_end() {
    fn run<const S: usize>() {
        let mem = RingMem::new(8, S);
        let (mut p, mut c) = pair::<[u8; S]>(&mem, 8, 5);
        let e = |i: usize| -> [u8; S] { core::array::from_fn(|b| (i * 31 + b * 7) as u8) };
        let mut next_in = 0;
        let mut next_out = 0;
        for round in 0..12 {
            let batch: Vec<[u8; S]> = (0..3).map(|j| e(next_in + j)).collect();
            match round % 3 {
                0 => assert_eq!(p.push_slice(&batch), Ok(3)),
                1 => {
                    let mut w = p.reserve(3).unwrap();
                    assert_eq!(w.write_slice(0, &batch), 3);
                    w.commit(3);
                }
                _ => {
                    assert_eq!(p.push(&batch[0]), Ok(true));
                    let mut w = p.reserve(2).unwrap();
                    w.write(1, &batch[2]);
                    w.write(0, &batch[1]);
                    w.commit(2);
                }
            }
            next_in += 3;
            let mut out = [[0u8; S]; 3];
            match round % 4 {
                0 => assert_eq!(c.pop_into(&mut out), Ok(3)),
                1 => {
                    let r = c.peek(3).unwrap();
                    assert_eq!(r.copy_to(0, &mut out), 3);
                    r.release(3);
                }
                2 => {
                    let r = c.peek(3).unwrap();
                    for (i, o) in out.iter_mut().enumerate() {
                        *o = r.get(i as u32).unwrap();
                    }
                    r.release(3);
                }
                _ => {
                    for o in out.iter_mut() {
                        *o = c.pop().unwrap().unwrap();
                    }
                }
            }
            for o in out {
                assert_eq!(o, e(next_out), "size {S}, entry {next_out}");
                next_out += 1;
            }
        }
        assert_eq!(c.pop(), Ok(None));
        // The slots hold exactly the last entries written, at their documented offsets.
        let bytes = mem.bytes();
        for idx in (next_in - 8)..next_in {
            let slot = (5 + idx) % 8;
            let at = RING_INDEX_BYTES + slot * S;
            assert_eq!(&bytes[at..at + S], &e(idx)[..], "size {S}, slot {slot}");
        }
    }
    run::<48>();
    run::<24>();
    run::<12>();
    run::<3>();
}
