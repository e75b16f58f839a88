//! loom model of the ring protocol: every interleaving (within loom's bounds) of one producer
//! thread and one consumer thread must deliver every entry exactly once, in order, with no
//! unsynchronised slot access (loom's `UnsafeCell` tracking fails the model if the consumer
//! could read a slot while the producer writes it, or vice versa) and no corruption reported.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p splitrx-shared --release --test ring_loom`
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use splitrx_shared::ring::{self, Consumer, LoomRegion, Producer};
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
struct E {
    seq: u32,
    check: u32,
}

fn e(seq: u32) -> E {
    E { seq, check: !seq }
}

/// Sets up a ring of `cap` entries starting at index `start`, returns the handles and the
/// region (which must outlive them: each thread keeps a clone of the `Arc`).
fn setup(cap: u32, start: u32) -> (Arc<LoomRegion>, Producer<E>, Consumer<E>) {
    let region = Arc::new(LoomRegion::new(cap, core::mem::size_of::<E>()));
    // SAFETY: the region has `cap` slots of size_of::<E>() and outlives both handles (each
    // thread holds an Arc clone until its handle is dropped); one producer, one consumer.
    unsafe {
        ring::init_at::<E>(region.base(), cap, start).unwrap();
        let p = Producer::attach(region.base(), cap).unwrap();
        let c = Consumer::attach(region.base(), cap).unwrap();
        (region, p, c)
    }
}

/// Producer: reserve/commit batches of up to 2. Consumer: peek/release batches of up to 2.
#[test]
fn batches_reserve_commit_peek_release() {
    const N: u32 = 3;
    loom::model(|| {
        let (region, mut p, mut c) = setup(2, 0);
        let r2 = region.clone();
        let prod = thread::spawn(move || {
            let _keep = r2;
            let mut sent = 0;
            while sent < N {
                let mut w = p.reserve(2.min(N - sent)).unwrap();
                let n = w.len();
                for i in 0..n {
                    w.write(i, &e(sent + i));
                }
                w.commit(n);
                sent += n;
                if n == 0 {
                    thread::yield_now();
                }
            }
            assert_eq!(p.stats().entries, u64::from(N));
            assert_eq!(p.stats().corrupt, 0);
        });
        let mut got = 0;
        while got < N {
            let r = c.peek(2).unwrap();
            let n = r.len();
            for i in 0..n {
                assert_eq!(r.get(i), Some(e(got + i)));
            }
            r.release(n);
            got += n;
            if n == 0 {
                thread::yield_now();
            }
        }
        prod.join().unwrap();
        assert_eq!(c.stats().entries, u64::from(N));
        assert_eq!(c.stats().corrupt, 0);
        assert_eq!(c.pop(), Ok(None));
        drop((c, region));
    });
}

/// Single-entry push/pop across the u32 wrap of the free-running indices.
#[test]
fn push_pop_across_the_index_wrap() {
    const N: u32 = 3;
    loom::model(|| {
        let (region, mut p, mut c) = setup(2, u32::MAX - 1);
        let r2 = region.clone();
        let prod = thread::spawn(move || {
            let _keep = r2;
            let mut i = 0;
            while i < N {
                if p.push(&e(i)).unwrap() {
                    i += 1;
                } else {
                    thread::yield_now();
                }
            }
            assert_eq!(p.index(), (u32::MAX - 1).wrapping_add(N));
        });
        let mut i = 0;
        while i < N {
            match c.pop().unwrap() {
                Some(v) => {
                    assert_eq!(v, e(i));
                    i += 1;
                }
                None => thread::yield_now(),
            }
        }
        prod.join().unwrap();
        assert_eq!(c.index(), (u32::MAX - 1).wrapping_add(N));
        drop((c, region));
    });
}

/// push_slice / pop_into with a capacity-4 ring, slices that wrap around the slot array.
#[test]
fn push_slice_pop_into() {
    const N: u32 = 5;
    loom::model(|| {
        let (region, mut p, mut c) = setup(4, 1);
        let r2 = region.clone();
        let prod = thread::spawn(move || {
            let _keep = r2;
            let items: Vec<E> = (0..N).map(e).collect();
            let mut sent = 0;
            while sent < items.len() {
                let n = p.push_slice(&items[sent..]).unwrap();
                sent += n;
                if n == 0 {
                    thread::yield_now();
                }
            }
        });
        let mut out = Vec::new();
        let mut buf = [E::default(); 3];
        while out.len() < N as usize {
            let n = c.pop_into(&mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            if n == 0 {
                thread::yield_now();
            }
        }
        prod.join().unwrap();
        assert_eq!(out, (0..N).map(e).collect::<Vec<_>>());
        assert_eq!(c.stats().corrupt, 0);
        drop((c, region));
    });
}

/// Lazy release with a producer that needs 3 free slots at once (a frame's completions, say)
/// on a capacity-4 ring, the consumer releasing one entry at a time with a threshold of 4: after
/// the first batch of 3 the ring is empty but only 1 slot is published free, so this model
/// fails (livelock past loom's bounds) unless the consumer publishes its pending releases
/// before it looks at the producer index when short.
#[test]
fn lazy_release_never_strands_the_producer() {
    const N: u32 = 6;
    loom::model(|| {
        let (region, mut p, mut c) = setup(4, u32::MAX - 1);
        c.set_release_every(4);
        let r2 = region.clone();
        let prod = thread::spawn(move || {
            let _keep = r2;
            let mut i = 0;
            while i < N {
                let mut w = p.reserve(3).unwrap();
                if w.len() < 3 {
                    drop(w);
                    thread::yield_now();
                    continue;
                }
                for k in 0..3 {
                    w.write(k, &e(i + k));
                }
                w.commit(3);
                i += 3;
            }
        });
        let mut i = 0;
        while i < N {
            let r = c.peek(1).unwrap();
            if r.is_empty() {
                thread::yield_now();
                continue;
            }
            assert_eq!(r.get(0), Some(e(i)));
            r.release(1);
            i += 1;
        }
        prod.join().unwrap();
        assert!(c.unpublished() < 4);
        c.flush().unwrap();
        assert_eq!(c.unpublished(), 0);
        assert_eq!(c.stats().corrupt, 0);
        assert_eq!(c.pop(), Ok(None));
        drop((c, region));
    });
}
