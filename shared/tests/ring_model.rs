//! Model test: random single-threaded operation sequences on both handles against a
//! `VecDeque`. Every return value, every copied entry and the final counters must match, with
//! the consumer releasing eagerly or lazily (`set_release_every`): the producer then sees the
//! model's free space minus exactly the consumer's unpublished releases, and the shared
//! consumer word always equals `index() - unpublished()`.
#![cfg(not(loom))]

mod ring_util;

use proptest::prelude::*;
use ring_util::{pair, RingMem, E16};
use splitrx_shared::ring::CONSUMER_OFFSET;
use std::collections::VecDeque;

#[derive(Clone, Debug)]
enum Op {
    Push,
    PushSlice(usize),
    /// reserve(n), write all, commit(k % (len + 1)).
    ReserveCommit(u32, u32),
    Pop,
    PopInto(usize),
    /// peek(n), read all, release(k % (len + 1)).
    PeekRelease(u32, u32),
    Free,
    Available,
    /// `Consumer::flush`.
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        Just(Op::Push),
        (0usize..40).prop_map(Op::PushSlice),
        (0u32..40, any::<u32>()).prop_map(|(n, k)| Op::ReserveCommit(n, k)),
        Just(Op::Pop),
        (0usize..40).prop_map(Op::PopInto),
        (0u32..40, any::<u32>()).prop_map(|(n, k)| Op::PeekRelease(n, k)),
        Just(Op::Free),
        Just(Op::Available),
        Just(Op::Flush),
    ]
}

fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(u32::MAX),
        u32::MAX - 64..=u32::MAX,
        any::<u32>()
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_vecdeque(
        cap_log2 in 0u32..6,
        start in start_index(),
        lazy in prop_oneof![Just(1u32), 1u32..80],
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let cap = 1u32 << cap_log2;
        let mem = RingMem::new(cap, 16);
        let (mut p, mut c) = pair::<E16>(&mem, cap, start);
        c.set_release_every(lazy);
        let release_every = lazy.clamp(1, cap);
        let mut model: VecDeque<E16> = VecDeque::new();
        let mut seq = 0u64;
        let mut next = || { seq += 1; E16::new(seq) };
        let (mut pushed, mut popped) = (0u64, 0u64);

        for op in ops {
            // What the producer can see: released slots count only once published.
            let free = cap as usize - model.len() - c.unpublished() as usize;
            match op {
                Op::Push => {
                    let e = next();
                    let ok = p.push(&e).unwrap();
                    prop_assert_eq!(ok, free > 0);
                    if ok { model.push_back(e); pushed += 1; }
                }
                Op::PushSlice(n) => {
                    let items: Vec<E16> = (0..n).map(|_| next()).collect();
                    let got = p.push_slice(&items).unwrap();
                    prop_assert_eq!(got, n.min(free));
                    model.extend(&items[..got]);
                    pushed += got as u64;
                }
                Op::ReserveCommit(n, k) => {
                    let mut w = p.reserve(n).unwrap();
                    prop_assert_eq!(w.len() as usize, (n as usize).min(free));
                    let items: Vec<E16> = (0..w.len()).map(|_| next()).collect();
                    for (i, e) in items.iter().enumerate() {
                        w.write(i as u32, e);
                    }
                    let k = k % (w.len() + 1);
                    w.commit(k);
                    model.extend(&items[..k as usize]);
                    pushed += u64::from(k);
                }
                Op::Pop => {
                    let want = model.pop_front();
                    prop_assert_eq!(c.pop().unwrap(), want);
                    popped += u64::from(want.is_some());
                }
                Op::PopInto(n) => {
                    let mut out = vec![E16::default(); n];
                    let got = c.pop_into(&mut out).unwrap();
                    prop_assert_eq!(got, n.min(model.len()));
                    let want: Vec<E16> = model.drain(..got).collect();
                    prop_assert_eq!(&out[..got], &want[..]);
                    prop_assert!(out[got..].iter().all(|e| *e == E16::default()));
                    popped += got as u64;
                }
                Op::PeekRelease(n, k) => {
                    let r = c.peek(n).unwrap();
                    prop_assert_eq!(r.len() as usize, (n as usize).min(model.len()));
                    for i in 0..r.len() {
                        prop_assert_eq!(r.get(i), Some(model[i as usize]));
                    }
                    prop_assert_eq!(r.get(r.len()), None);
                    let k = k % (r.len() + 1);
                    r.release(k);
                    model.drain(..k as usize);
                    popped += u64::from(k);
                }
                Op::Free => prop_assert_eq!(p.free().unwrap() as usize, free),
                Op::Available => {
                    prop_assert_eq!(c.available().unwrap() as usize, model.len());
                    // Looking at the producer index publishes every release first.
                    prop_assert_eq!(c.unpublished(), 0);
                }
                Op::Flush => {
                    c.flush().unwrap();
                    prop_assert_eq!(c.unpublished(), 0);
                }
            }
            prop_assert!(c.unpublished() < release_every);
            prop_assert_eq!(
                mem.peek_word(CONSUMER_OFFSET),
                c.index().wrapping_sub(c.unpublished())
            );
            prop_assert_eq!(p.index().wrapping_sub(c.index()) as usize, model.len());
        }
        prop_assert_eq!(p.stats().entries, pushed);
        prop_assert_eq!(c.stats().entries, popped);
        prop_assert_eq!(p.index(), start.wrapping_add(pushed as u32));
        prop_assert_eq!(c.index(), start.wrapping_add(popped as u32));
        prop_assert_eq!((p.stats().corrupt, c.stats().corrupt), (0, 0));
        // Whatever is left drains in order.
        let mut rest = vec![E16::default(); model.len() + 1];
        let got = c.pop_into(&mut rest).unwrap();
        prop_assert_eq!(&rest[..got], &model.iter().copied().collect::<Vec<_>>()[..]);
    }
}
