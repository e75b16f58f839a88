//! Ring throughput: splitrx's shared-memory SPSC ring vs `rtrb` (chunk API) vs crossbeam's
//! `ArrayQueue`, with 16-byte `FillDesc` entries, capacity 4096, batches of 32.
//!
//! (a) `ring_2threads/*`: a producer thread pushes `N` entries in batches of 32, the
//!     consumer (the bench thread) pops batches of 32; time from spawn to the last entry.
//! (b) `ring_batch32_1thread/*`: one thread, one batch of 32 in and out (reserve+commit 32,
//!     peek+release 32), i.e. the per-batch bookkeeping cost without cross-core traffic.
//!
//! Contenders come in like-for-like pairs: `*_slices` copy a staged batch in and a batch out
//! into an array (`push_slice`/`pop_into`, rtrb `fill_from_iter`/`read_chunk` + copy);
//! `*_chunks` generate entries in place and read them in place (`reserve`+`write`,
//! `peek`+`get`; rtrb `fill_from_iter` of a generator, `read_chunk` + `as_slices`).
//!
//! Run: `cargo bench -p splitrx-shared --bench ring -- --warm-up-time 1 --measurement-time 3`
//! With `RING_BENCH_INTERLEAVED=<rounds>` the two-thread contenders are first also run
//! round-robin and their medians/bests and ratios printed (see `interleaved`).

use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use splitrx_shared::abi::{BufRef, FillDesc};
use splitrx_shared::ring::{self, ring_bytes, Consumer, Producer};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

const CAP: u32 = 4096;
const BATCH: usize = 32;
/// Entries per measured iteration of the two-thread benchmarks.
const N: u64 = 1 << 20;

/// Heap memory for one ring (stands in for the shared mapping), 128-byte aligned.
struct RingMem {
    ptr: NonNull<u8>,
    layout: Layout,
}
impl RingMem {
    fn new() -> RingMem {
        let layout = Layout::from_size_align(ring_bytes(CAP, 16) as usize, 128).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        RingMem { ptr, layout }
    }
    fn pair(&self) -> (Producer<FillDesc>, Consumer<FillDesc>) {
        // SAFETY: sized and aligned for the ring; outlives the handles (each bench joins the
        // producer thread before dropping the memory); one handle of each kind.
        unsafe {
            ring::init::<FillDesc>(self.ptr, CAP).unwrap();
            (
                Producer::attach(self.ptr, CAP).unwrap(),
                Consumer::attach(self.ptr, CAP).unwrap(),
            )
        }
    }
}
impl Drop for RingMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

fn desc(i: u64) -> FillDesc {
    FillDesc::new(
        BufRef::new(1, (i as u32) & 0xff_ffff).unwrap(),
        i << 12,
        4096,
    )
}

fn batch_of(first: u64) -> [FillDesc; BATCH] {
    core::array::from_fn(|i| desc(first + i as u64))
}

/// Pins the calling thread to `cpu` (Linux; elsewhere, and with `RING_BENCH_NOPIN` set, a
/// no-op). Every two-thread contender runs its producer on CPU 1 and its consumer on CPU 0:
/// without pinning, the scheduler often leaves a freshly spawned thread on its parent's CPU
/// for the whole few-millisecond round, and the "two-thread" figure is then one CPU switching
/// between the two sides once per lap of the ring (seen as a full ring, then an empty one, in
/// the per-side wait counts) — the same ~470 Mentries/s for every contender on this machine.
fn pin(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        if std::env::var_os("RING_BENCH_NOPIN").is_some() {
            return;
        }
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        // Best effort: on a machine with one CPU the bench still runs, unpinned.
        let _ = rustix::thread::sched_setaffinity(None, &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// Same waiting policy for every queue: spin briefly, then yield (2-core machine).
#[inline]
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

fn splitrx_2t(n: u64) -> Duration {
    splitrx_slices_with(n, 1)
}
fn splitrx_lazy_2t(n: u64) -> Duration {
    splitrx_slices_with(n, LAZY)
}

/// Lazy-release setting of the `*_lazy` contenders (`Consumer::set_release_every`).
const LAZY: u32 = CAP / 8;

fn splitrx_slices_with(n: u64, release_every: u32) -> Duration {
    let mem = RingMem::new();
    let (mut p, mut c) = mem.pair();
    c.set_release_every(release_every);
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        pin(1);
        let mut sent = 0;
        let mut spins = 0;
        while sent < n {
            let b = batch_of(sent);
            let mut off = 0;
            while off < BATCH {
                let k = p.push_slice(&b[off..]).unwrap();
                off += k;
                if k == 0 {
                    backoff(&mut spins);
                } else {
                    spins = 0;
                }
            }
            sent += BATCH as u64;
        }
    });
    let mut got = 0u64;
    let mut sum = 0u64;
    let mut out = [FillDesc::default(); BATCH];
    let mut spins = 0;
    while got < n {
        let k = c.pop_into(&mut out).unwrap();
        for d in &out[..k] {
            sum = sum.wrapping_add(d.bus_addr.get());
        }
        got += k as u64;
        if k == 0 {
            backoff(&mut spins);
        } else {
            spins = 0;
        }
    }
    t.join().unwrap();
    let el = start.elapsed();
    black_box(sum);
    el
}

/// Same as `splitrx_2t`, but the producer writes each entry into a `reserve`d chunk (no
/// staging array) and the consumer reads each entry out of a `peek`ed chunk.
fn splitrx_chunks_2t(n: u64) -> Duration {
    splitrx_chunks_with(n, 1)
}
fn splitrx_chunks_lazy_2t(n: u64) -> Duration {
    splitrx_chunks_with(n, LAZY)
}

fn splitrx_chunks_with(n: u64, release_every: u32) -> Duration {
    let mem = RingMem::new();
    let (mut p, mut c) = mem.pair();
    c.set_release_every(release_every);
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        pin(1);
        let mut sent = 0;
        let mut spins = 0;
        while sent < n {
            let mut w = p.reserve(BATCH as u32).unwrap();
            let k = w.len();
            for i in 0..k {
                w.write(i, &desc(sent + u64::from(i)));
            }
            w.commit(k);
            sent += u64::from(k);
            if k == 0 {
                backoff(&mut spins);
            } else {
                spins = 0;
            }
        }
    });
    let mut got = 0u64;
    let mut sum = 0u64;
    let mut spins = 0;
    while got < n {
        let r = c.peek(BATCH as u32).unwrap();
        let k = r.len();
        for i in 0..k {
            sum = sum.wrapping_add(r.get(i).unwrap().bus_addr.get());
        }
        r.release(k);
        got += u64::from(k);
        if k == 0 {
            backoff(&mut spins);
        } else {
            spins = 0;
        }
    }
    t.join().unwrap();
    let el = start.elapsed();
    black_box(sum);
    el
}

fn rtrb_2t(n: u64) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<FillDesc>::new(CAP as usize);
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        pin(1);
        let mut sent = 0;
        let mut spins = 0;
        while sent < n {
            let b = batch_of(sent);
            loop {
                if let Ok(chunk) = p.write_chunk_uninit(BATCH) {
                    chunk.fill_from_iter(b.iter().copied());
                    break;
                }
                backoff(&mut spins);
            }
            spins = 0;
            sent += BATCH as u64;
        }
    });
    let mut got = 0u64;
    let mut sum = 0u64;
    let mut out = [FillDesc::default(); BATCH];
    let mut spins = 0;
    while got < n {
        match c.read_chunk(BATCH) {
            Ok(chunk) => {
                let (a, b) = chunk.as_slices();
                out[..a.len()].copy_from_slice(a);
                out[a.len()..].copy_from_slice(b);
                chunk.commit_all();
                for d in &out {
                    sum = sum.wrapping_add(d.bus_addr.get());
                }
                got += BATCH as u64;
                spins = 0;
            }
            Err(_) => backoff(&mut spins),
        }
    }
    t.join().unwrap();
    let el = start.elapsed();
    black_box(sum);
    el
}

/// rtrb used in place, like `splitrx_chunks_2t`: the producer generates entries straight into
/// the chunk, the consumer reads them through `as_slices` without copying them out.
fn rtrb_chunks_2t(n: u64) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<FillDesc>::new(CAP as usize);
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        pin(1);
        let mut sent = 0;
        let mut spins = 0;
        while sent < n {
            loop {
                if let Ok(chunk) = p.write_chunk_uninit(BATCH) {
                    chunk.fill_from_iter((0..BATCH as u64).map(|i| desc(sent + i)));
                    break;
                }
                backoff(&mut spins);
            }
            spins = 0;
            sent += BATCH as u64;
        }
    });
    let mut got = 0u64;
    let mut sum = 0u64;
    let mut spins = 0;
    while got < n {
        match c.read_chunk(BATCH) {
            Ok(chunk) => {
                let (a, b) = chunk.as_slices();
                for d in a.iter().chain(b) {
                    sum = sum.wrapping_add(d.bus_addr.get());
                }
                chunk.commit_all();
                got += BATCH as u64;
                spins = 0;
            }
            Err(_) => backoff(&mut spins),
        }
    }
    t.join().unwrap();
    let el = start.elapsed();
    black_box(sum);
    el
}

fn arrayqueue_2t(n: u64) -> Duration {
    let q = std::sync::Arc::new(crossbeam_queue::ArrayQueue::<FillDesc>::new(CAP as usize));
    let qp = q.clone();
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        pin(1);
        let mut sent = 0;
        let mut spins = 0;
        while sent < n {
            for d in batch_of(sent) {
                let mut d = d;
                while let Err(back) = qp.push(d) {
                    d = back;
                    backoff(&mut spins);
                }
                spins = 0;
            }
            sent += BATCH as u64;
        }
    });
    let mut got = 0u64;
    let mut sum = 0u64;
    let mut spins = 0;
    while got < n {
        let mut k = 0;
        while k < BATCH {
            match q.pop() {
                Some(d) => {
                    sum = sum.wrapping_add(d.bus_addr.get());
                    k += 1;
                }
                None => break,
            }
        }
        got += k as u64;
        if k == 0 {
            backoff(&mut spins);
        } else {
            spins = 0;
        }
    }
    t.join().unwrap();
    let el = start.elapsed();
    black_box(sum);
    el
}

type Run = fn(u64) -> Duration;
/// Pairs are like for like: `*_slices` copy a staged batch in and copy a batch out into an
/// array; `*_chunks` generate entries in place and read them in place (splitrx's `get` still
/// copies each entry out of shared memory: that is its TOCTOU rule).
const RUNS: [(&str, Run); 7] = [
    ("splitrx_slices", splitrx_2t),
    ("rtrb_slices", rtrb_2t),
    ("splitrx_chunks", splitrx_chunks_2t),
    ("rtrb_chunks", rtrb_chunks_2t),
    ("crossbeam_arrayqueue", arrayqueue_2t),
    ("splitrx_slices_lazy", splitrx_lazy_2t),
    ("splitrx_chunks_lazy", splitrx_chunks_lazy_2t),
];

/// With `RING_BENCH_INTERLEAVED=<rounds>`: before the criterion runs, runs the two-thread
/// contenders round-robin (A, B, C, D, A, B, ...) and prints each one's median and best
/// Mentries/s and the throughput ratios of splitrx to each (of the medians and of the bests;
/// on a loaded machine the best run is the one where both threads had a core). Interleaving makes the ratios robust against
/// load that changes while a benchmark runs (other jobs on a small machine), which
/// criterion's one-benchmark-after-the-other order is not.
fn interleaved(rounds: usize) {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); RUNS.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in RUNS.iter().enumerate() {
            times[i].push(f(N).as_secs_f64());
        }
    }
    let mut medians = Vec::new();
    let mut bests = Vec::new();
    println!("interleaved two-thread runs: {rounds} rounds of {N} entries each");
    for (i, (name, _)) in RUNS.iter().enumerate() {
        let t = &mut times[i];
        t.sort_by(f64::total_cmp);
        let med = t[t.len() / 2];
        medians.push(med);
        bests.push(t[0]);
        println!(
            "  {name:<22} median {:>7.1} Mentries/s ({:.2} ns/entry), best {:>7.1} Mentries/s",
            N as f64 / med / 1e6,
            med * 1e9 / N as f64,
            N as f64 / t[0] / 1e6
        );
    }
    let ratio = |a: usize, b: usize| {
        println!(
            "  {} / {}: {:.2}x (medians), {:.2}x (bests)",
            RUNS[a].0,
            RUNS[b].0,
            medians[b] / medians[a],
            bests[b] / bests[a]
        );
    };
    ratio(0, 1);
    ratio(2, 3);
    ratio(5, 1);
    ratio(6, 3);
    ratio(2, 1);
    ratio(0, 4);
    ratio(2, 4);
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring_2threads");
    g.throughput(Throughput::Elements(N));
    g.sample_size(20);
    let runs = RUNS;
    for (name, f) in runs {
        g.bench_function(BenchmarkId::new(name, "batch32_cap4096"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| f(N)).sum())
        });
    }
    g.finish();
}

fn one_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring_batch32_1thread");
    g.throughput(Throughput::Elements(BATCH as u64));
    let src = batch_of(7);

    let mem = RingMem::new();
    let (mut p, mut cons) = mem.pair();
    g.bench_function("splitrx_reserve_commit_peek_release", |b| {
        b.iter(|| {
            let mut w = p.reserve(BATCH as u32).unwrap();
            w.write_slice(0, black_box(&src));
            w.commit(BATCH as u32);
            let r = cons.peek(BATCH as u32).unwrap();
            let mut out = [FillDesc::default(); BATCH];
            r.copy_to(0, &mut out);
            r.release(BATCH as u32);
            black_box(out);
        })
    });
    g.bench_function("splitrx_reserve_write_each_get_each", |b| {
        b.iter(|| {
            let mut w = p.reserve(BATCH as u32).unwrap();
            for (i, d) in black_box(&src).iter().enumerate() {
                w.write(i as u32, d);
            }
            w.commit(BATCH as u32);
            let r = cons.peek(BATCH as u32).unwrap();
            let mut sum = 0u64;
            for i in 0..BATCH as u32 {
                sum = sum.wrapping_add(r.get(i).unwrap().bus_addr.get());
            }
            r.release(BATCH as u32);
            black_box(sum);
        })
    });
    g.bench_function("splitrx_push_slice_pop_into", |b| {
        b.iter(|| {
            p.push_slice(black_box(&src)).unwrap();
            let mut out = [FillDesc::default(); BATCH];
            cons.pop_into(&mut out).unwrap();
            black_box(out);
        })
    });
    // The handles end here, before the memory is reused by nothing else (explicit for clarity).
    let _ = (p, cons);

    let (mut rp, mut rc) = rtrb::RingBuffer::<FillDesc>::new(CAP as usize);
    g.bench_function("rtrb_write_chunk_uninit_read_chunk", |b| {
        b.iter(|| {
            let chunk = rp.write_chunk_uninit(BATCH).unwrap();
            chunk.fill_from_iter(black_box(&src).iter().copied());
            let chunk = rc.read_chunk(BATCH).unwrap();
            let (x, y) = chunk.as_slices();
            let mut out = [FillDesc::default(); BATCH];
            out[..x.len()].copy_from_slice(x);
            out[x.len()..].copy_from_slice(y);
            chunk.commit_all();
            black_box(out);
        })
    });

    g.bench_function("rtrb_fill_from_iter_sum_in_place", |b| {
        b.iter(|| {
            let chunk = rp.write_chunk_uninit(BATCH).unwrap();
            chunk.fill_from_iter(black_box(&src).iter().copied());
            let chunk = rc.read_chunk(BATCH).unwrap();
            let (x, y) = chunk.as_slices();
            let mut sum = 0u64;
            for d in x.iter().chain(y) {
                sum = sum.wrapping_add(d.bus_addr.get());
            }
            chunk.commit_all();
            black_box(sum);
        })
    });

    let q = crossbeam_queue::ArrayQueue::<FillDesc>::new(CAP as usize);
    g.bench_function("crossbeam_arrayqueue_push_pop_32", |b| {
        b.iter(|| {
            for d in black_box(&src) {
                q.push(*d).unwrap();
            }
            let mut out = [FillDesc::default(); BATCH];
            for o in out.iter_mut() {
                *o = q.pop().unwrap();
            }
            black_box(out);
        })
    });
    g.finish();
}

criterion_group!(benches, two_threads, one_thread);

fn main() {
    // The bench thread is every consumer (and runs the one-thread benchmarks): CPU 0.
    pin(0);
    if let Some(rounds) = std::env::var("RING_BENCH_INTERLEAVED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        interleaved(rounds);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
