//! Loom models of the pool's concurrency core: the recycle ring (MPSC, with the full-ring
//! fallback to the provider) and the ledger word transitions that decide which thread owns a
//! buffer that becomes free.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p splitrx-host --release --test pool_loom`
#![cfg(loom)]

use loom::sync::atomic::AtomicU32;
use loom::sync::{Arc, Mutex};
use loom::thread;
use splitrx_host::ledger::slot;
use splitrx_host::recycle::RecycleRing;

/// Two producers push two values each into a 2-cell ring while the consumer pops; a full
/// ring sends the value to the "provider". Every value ends up exactly once in
/// popped + released + left in the ring, and each producer's values are popped in order.
#[test]
fn ring_two_producers_one_consumer_with_overflow() {
    loom::model(|| {
        let (ring, mut cons) = RecycleRing::new(2);
        let ring = Arc::new(ring);
        let released = Arc::new(Mutex::new(Vec::new()));
        let producers: Vec<_> = [[1u32, 2], [3, 4]]
            .into_iter()
            .map(|vals| {
                let (ring, released) = (ring.clone(), released.clone());
                thread::spawn(move || {
                    for v in vals {
                        if let Err(v) = ring.push(v) {
                            released.lock().unwrap().push(v);
                        }
                    }
                })
            })
            .collect();
        let mut popped = Vec::new();
        for _ in 0..2 {
            if let Some(v) = ring.pop(&mut cons) {
                popped.push(v);
            }
        }
        for p in producers {
            p.join().unwrap();
        }
        while let Some(v) = ring.pop(&mut cons) {
            popped.push(v);
        }
        let pos = |v: u32| popped.iter().position(|&x| x == v);
        for (a, b) in [(1, 2), (3, 4)] {
            if let (Some(pa), Some(pb)) = (pos(a), pos(b)) {
                assert!(pa < pb, "per-producer FIFO: {popped:?}");
            }
        }
        let mut all = popped;
        all.extend(released.lock().unwrap().iter().copied());
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3, 4]);
    });
}

/// A packed buffer the NIC still holds has two lent fragments. Two application threads drop
/// their tokens while the owner retires the buffer (PAY_RETIRED). Exactly one of the three
/// sees the word reach zero and recycles the buffer (non-owners push it into the recycle
/// ring, the owner into its cache); the owner then refills its cache from the ring. The
/// buffer ends up exactly once in the owner's cache and the word is zero.
#[test]
fn last_reference_frees_exactly_once() {
    last_reference(2);
}

/// The same with one lent fragment: once the owner's retire cleared NIC the application
/// takes the plain-store path of `put_lent`.
#[test]
fn last_reference_frees_exactly_once_single_fragment() {
    last_reference(1);
}

fn last_reference(frags: u32) {
    loom::model(move || {
        const IDX: u32 = 7;
        let word = Arc::new(AtomicU32::new(slot::NIC | (frags * slot::LENT_ONE)));
        let (ring, mut cons) = RecycleRing::new(2);
        let ring = Arc::new(ring);
        let apps: Vec<_> = (0..frags)
            .map(|_| {
                let (word, ring) = (word.clone(), ring.clone());
                thread::spawn(move || {
                    if slot::put_lent(&word) == Ok(true) {
                        ring.push(IDX).expect("ring has room");
                    }
                })
            })
            .collect();
        // Owner: the fast cache is a plain Vec, as in PagePool.
        let mut cache: Vec<u32> = Vec::new();
        let (old, new) =
            slot::owner_update(&word, |w| (w & slot::NIC != 0).then_some(w & !slot::NIC)).unwrap();
        assert_ne!(old & slot::NIC, 0);
        if new == 0 {
            cache.push(IDX);
        }
        for a in apps {
            a.join().unwrap();
        }
        while let Some(i) = ring.pop(&mut cons) {
            cache.push(i);
        }
        assert_eq!(cache, [IDX]);
        assert_eq!(word.load(loom::sync::atomic::Ordering::SeqCst), 0);
        // A further return is rejected, not applied.
        assert!(slot::put_lent(&word).is_err());
    });
}

/// The owner lends a second fragment (packed, lent > 0: RMW path) while an application drops
/// the first: no update is lost.
#[test]
fn owner_lend_races_with_return() {
    loom::model(|| {
        let word = Arc::new(AtomicU32::new(
            slot::NIC | slot::FILLED_ONE | slot::LENT_ONE,
        ));
        let w2 = word.clone();
        let app = thread::spawn(move || slot::put_lent(&w2));
        slot::owner_update(&word, |w| Some(w - slot::FILLED_ONE + slot::LENT_ONE)).unwrap();
        assert_eq!(app.join().unwrap(), Ok(false));
        assert_eq!(
            word.load(loom::sync::atomic::Ordering::SeqCst),
            slot::NIC | slot::LENT_ONE
        );
    });
}

/// The owner returns its token (`PagePool::put`) while an application drops the other
/// fragment of the same retired buffer: exactly one of them frees it, the word ends at zero.
#[test]
fn owner_put_races_with_remote_return() {
    loom::model(|| {
        let word = Arc::new(AtomicU32::new(2 * slot::LENT_ONE));
        let w2 = word.clone();
        let app = thread::spawn(move || slot::put_lent(&w2).unwrap());
        let owner_freed = slot::owner_put_lent(&word).unwrap();
        let app_freed = app.join().unwrap();
        assert!(owner_freed ^ app_freed, "exactly one frees");
        assert_eq!(word.load(loom::sync::atomic::Ordering::SeqCst), 0);
    });
}
