//! Page pool benchmarks (criterion).
//!
//! `cargo bench -p splitrx-host --bench pool -- --warm-up-time 1 --measurement-time 3`
//!
//! - `owner_fast`: allocate + give back on the owner thread (kernel fast path:
//!   `page_pool_alloc_netmems` + direct recycle into the NAPI cache), against a
//!   `Mutex<Vec<u32>>` pool and a crossbeam `ArrayQueue<u32>` pool doing pop + push.
//! - `owner_cycle`: the poller's whole per-fragment cycle on one thread: alloc (Free ->
//!   Posted), complete (-> Filled), lend (-> Lent, a token), drop the token (-> Free through the
//!   recycle ring), and the ring refill on the next alloc.
//! - `remote_return`: dropping tokens on another thread (ledger CAS + recycle-ring push) —
//!   per token, against `Mutex<Vec<u32>>::push` and `ArrayQueue::push` from another thread.
//! - `owner_refill`: the owner taking those buffers back from the ring (pop path).
//!
//! Remote return through the ring = `remote_return` + `owner_refill` per buffer.

use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_queue::ArrayQueue;
use splitrx_host::pool::{PagePool, PoolConfig};
use splitrx_host::provider::{HostMemory, HostMemoryConfig};
use splitrx_host::token::Token;
use splitrx_shared::abi::BufRef;
use std::hint::black_box;
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

const COUNT: u32 = 4096;
const BATCH: usize = 1024;

fn pool() -> PagePool {
    let mut cfg = PoolConfig::new(0);
    cfg.ring_size = BATCH;
    PagePool::new(
        cfg,
        Box::new(HostMemory::new(HostMemoryConfig::new(2048, COUNT))),
    )
    .unwrap()
}

fn owner_fast(c: &mut Criterion) {
    let mut g = c.benchmark_group("owner_fast");
    let mut p = pool();
    g.bench_function("splitrx_alloc_flush", |b| {
        b.iter(|| {
            let buf = p.alloc().unwrap();
            p.retire(black_box(buf)).unwrap();
        })
    });
    let m = Mutex::new((0..COUNT).collect::<Vec<u32>>());
    g.bench_function("mutex_vec_pop_push", |b| {
        b.iter(|| {
            let i = m.lock().unwrap().pop().unwrap();
            m.lock().unwrap().push(black_box(i));
        })
    });
    let q = ArrayQueue::new(COUNT as usize);
    for i in 0..COUNT {
        q.push(i).unwrap();
    }
    g.bench_function("array_queue_pop_push", |b| {
        b.iter(|| {
            let i = q.pop().unwrap();
            q.push(black_box(i)).unwrap();
        })
    });
    g.finish();
}

fn owner_cycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("owner_cycle");
    let mut p = pool();
    g.bench_function("alloc_complete_lend_drop", |b| {
        b.iter(|| {
            let buf = p.alloc().unwrap();
            let f = p.complete(buf, 0, 1500, true).unwrap();
            let t = p.lend(f).unwrap();
            drop(black_box(t));
        })
    });
    g.bench_function("alloc_complete_lend_put", |b| {
        b.iter(|| {
            let buf = p.alloc().unwrap();
            let f = p.complete(buf, 0, 1500, true).unwrap();
            let t = p.lend(f).unwrap();
            p.put(black_box(t));
        })
    });
    g.finish();
}

/// Runs `drop_all` on a helper thread for batches prepared by `make` on this thread; returns
/// the helper's time per element.
fn remote<T: Send + 'static>(
    iters: u64,
    mut make: impl FnMut(usize) -> Vec<T>,
    drop_all: impl Fn(Vec<T>) + Send + 'static,
) -> Duration {
    let (tx, rx) = mpsc::channel::<Vec<T>>();
    let (dtx, drx) = mpsc::channel::<Duration>();
    let worker = thread::spawn(move || {
        for batch in rx {
            let t0 = Instant::now();
            drop_all(batch);
            dtx.send(t0.elapsed()).unwrap();
        }
    });
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH as u64) as usize;
        tx.send(make(n)).unwrap();
        total += drx.recv().unwrap();
        left -= n as u64;
    }
    drop(tx);
    worker.join().unwrap();
    total
}

fn remote_return(c: &mut Criterion) {
    let mut g = c.benchmark_group("remote_return");
    let mut p = pool();
    g.bench_function("splitrx_token_drop", |b| {
        b.iter_custom(|iters| {
            remote(
                iters,
                |n| {
                    (0..n)
                        .map(|_| {
                            let buf = p.alloc().unwrap();
                            let f = p.complete(buf, 0, 64, true).unwrap();
                            p.lend(f).unwrap()
                        })
                        .collect::<Vec<Token>>()
                },
                |v| {
                    for t in v {
                        drop(t);
                    }
                },
            )
        })
    });
    assert_eq!(p.stats().recycle_ring_full, 0, "ring sized for the batch");
    let m = std::sync::Arc::new(Mutex::new((0..COUNT).collect::<Vec<u32>>()));
    g.bench_function("mutex_vec_push", |b| {
        b.iter_custom(|iters| {
            let m2 = m.clone();
            remote(
                iters,
                |n| {
                    let mut l = m.lock().unwrap();
                    (0..n).map(|_| l.pop().unwrap()).collect::<Vec<u32>>()
                },
                move |v| {
                    for i in v {
                        m2.lock().unwrap().push(i);
                    }
                },
            )
        })
    });
    let q = std::sync::Arc::new(ArrayQueue::new(COUNT as usize));
    for i in 0..COUNT {
        q.push(i).unwrap();
    }
    g.bench_function("array_queue_push", |b| {
        b.iter_custom(|iters| {
            let q2 = q.clone();
            remote(
                iters,
                |n| (0..n).map(|_| q.pop().unwrap()).collect::<Vec<u32>>(),
                move |v| {
                    for i in v {
                        q2.push(i).unwrap();
                    }
                },
            )
        })
    });
    g.finish();
}

fn owner_refill(c: &mut Criterion) {
    let mut g = c.benchmark_group("owner_refill");
    let mut p = pool();
    // Outlives the per-sample calls of the closure below: buffers allocated in one sample are
    // given back in the next.
    let mut pending: Vec<BufRef> = Vec::new();
    g.bench_function("splitrx_alloc_from_ring", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                // Untimed: give last round's buffers back (cache, then ring), allocate a batch
                // (draining both), lend and drop it: the batch sits in the ring, the cache empty.
                for buf in pending.drain(..) {
                    p.retire(buf).unwrap();
                }
                let toks: Vec<Token> = (0..BATCH)
                    .map(|_| {
                        let buf = p.alloc().unwrap();
                        let f = p.complete(buf, 0, 64, true).unwrap();
                        p.lend(f).unwrap()
                    })
                    .collect();
                drop(toks);
                let n = left.min(BATCH as u64) as usize;
                let t0 = Instant::now();
                for _ in 0..n {
                    pending.push(p.alloc().unwrap());
                }
                total += t0.elapsed();
                left -= n as u64;
            }
            total
        })
    });
    // Baselines: the owner popping what other threads pushed (push back untimed).
    let m = Mutex::new((0..COUNT).collect::<Vec<u32>>());
    g.bench_function("mutex_vec_pop", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            let mut got = Vec::with_capacity(BATCH);
            while left > 0 {
                let n = left.min(BATCH as u64) as usize;
                let t0 = Instant::now();
                for _ in 0..n {
                    got.push(m.lock().unwrap().pop().unwrap());
                }
                total += t0.elapsed();
                m.lock().unwrap().extend(got.drain(..));
                left -= n as u64;
            }
            total
        })
    });
    let q = ArrayQueue::new(COUNT as usize);
    for i in 0..COUNT {
        q.push(i).unwrap();
    }
    g.bench_function("array_queue_pop", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            let mut got = Vec::with_capacity(BATCH);
            while left > 0 {
                let n = left.min(BATCH as u64) as usize;
                let t0 = Instant::now();
                for _ in 0..n {
                    got.push(q.pop().unwrap());
                }
                total += t0.elapsed();
                for i in got.drain(..) {
                    q.push(i).unwrap();
                }
                left -= n as u64;
            }
            total
        })
    });
    g.finish();
    let s = p.stats();
    eprintln!(
        "owner_refill stats: refill={} fast={} slow={}",
        s.alloc_refill, s.alloc_fast, s.alloc_slow
    );
}

fn metadata(_c: &mut Criterion) {
    for count in [1024u32, 65536, 1 << 20] {
        let p = PagePool::new(
            PoolConfig::new(0),
            Box::new(HostMemory::new(HostMemoryConfig::new(4096, count))),
        )
        .unwrap();
        let m = p.metadata_bytes();
        eprintln!(
            "metadata: {count} buffers: ledger {} B, cache+ring {} B, provider {} B => {:.2} B/buffer",
            m.ledger,
            m.cache_and_ring,
            m.provider,
            m.per_buffer()
        );
    }
}

criterion_group!(
    benches,
    owner_fast,
    owner_cycle,
    remote_return,
    owner_refill,
    metadata
);
criterion_main!(benches);
