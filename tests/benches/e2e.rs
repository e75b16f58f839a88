//! End-to-end pipeline on the sim board (criterion), against single-core memcpy into a mapped
//! shared-memory file measured in the same run.
//!
//! `cargo bench -p splitrx-harness --bench e2e -- --warm-up-time 1 --measurement-time 5`
//!
//! Each iteration batch is one `splitrx run` (one queue, no verification, lossless wire) of
//! `iters x FRAMES_PER_ITER` frames; only the traffic time is measured (`iter_custom` with the
//! run's own clock: from the start of traffic to the last completion), not the set-up. Groups:
//! - `payload_4k`: 4 KiB payloads, page mode, throughput in payload bytes; `memcpy_4k`: the same
//!   bytes copied in 4 KiB chunks into a mapped file — the physical limit of the simulation;
//! - `header_only_64`: 64-byte payloads below `hds_thresh` (the whole frame to the header
//!   buffer), throughput in frames;
//! - `payload_1500`: 1500-byte payloads, page mode.
//!
//! `splitrx bench` prints the same comparison as a table (`docs/bench-e2e.md`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use splitrx_harness::run::{self, RunConfig, Source, DEFAULT_SEED};
use splitrx_harness::sim::SimTarget;
use splitrx_sim::shm::ShmRegion;
use std::time::{Duration, Instant};

const FRAMES_PER_ITER: u64 = 1000;

fn pipeline(spec: &str, buf: u32, thresh: u32, iters: u64) -> Duration {
    let cfg = RunConfig {
        source: Source::Synthetic {
            spec: spec.into(),
            seed: DEFAULT_SEED,
        },
        queues: 1,
        buf_size: buf,
        hds_thresh: thresh,
        frames: Some((iters * FRAMES_PER_ITER).max(10_000)),
        verify: false,
        ..RunConfig::default()
    };
    let r = run::run(&SimTarget::default(), &cfg, |_, _| {}).expect("sim run");
    assert!(r.pass, "pipeline run failed: {:?}", r.failures);
    // Scale to exactly `iters` iterations (small batches are padded to 10k frames).
    Duration::from_secs_f64(r.seconds * (iters * FRAMES_PER_ITER) as f64 / r.sent_frames as f64)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("e2e");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(4096 * FRAMES_PER_ITER));
    g.bench_function("payload_4k", |b| {
        b.iter_custom(|n| pipeline("udp4:4096", 4096, 0, n))
    });
    let dst = ShmRegion::create_temp("bench-memcpy", 64 << 20, 0).expect("shm");
    let src: Vec<u8> = (0..(4096 * FRAMES_PER_ITER as usize))
        .map(|i| i as u8)
        .collect();
    g.bench_function("memcpy_4k", |b| {
        let mut off = 0u64;
        b.iter_custom(|n| {
            let t = Instant::now();
            for _ in 0..n {
                for c in src.chunks(4096) {
                    dst.write(off, c);
                    off = (off + 4096) % (64 << 20);
                }
            }
            t.elapsed()
        })
    });
    g.throughput(Throughput::Elements(FRAMES_PER_ITER));
    g.bench_function("header_only_64", |b| {
        b.iter_custom(|n| pipeline("udp4:64", 4096, 256, n))
    });
    g.throughput(Throughput::Bytes(1500 * FRAMES_PER_ITER));
    g.bench_function("payload_1500", |b| {
        b.iter_custom(|n| pipeline("udp4:1500", 2048, 0, n))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
