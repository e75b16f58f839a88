//! Generation rate of the synthetic traffic source: can it feed the simulated datapath?
//!
//! `cargo bench -p splitrx-sim --bench traffic`
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use splitrx_sim::traffic::{Generator, TrafficSpec};
use splitrx_sim::wire::{LoopWire, Wire, WireCtl};
use std::sync::Arc;

const BATCH: u64 = 1024;

fn bench_generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("traffic");
    // Frame sizes: udp4:22 is a 64-byte frame (60 + 4 FCS on the wire); udp4:1458 and tcp4:1414
    // are 1500-byte IP packets (1514-byte frames).
    for (name, spec) in [
        ("udp4_64B_frame", "udp4:22"),
        ("udp4_1514B_frame", "udp4:1458"),
        ("tcp4_1514B_frame", "tcp4:1414"),
        ("tcp6_1514B_frame", "tcp6:1394"),
        ("vxlan_tcp_1514B_frame", "vxlan-tcp:1364"),
        ("roce_write_1024B_pmtu", "roce-write:65536@1024"),
        ("mix", "mix"),
    ] {
        let spec = TrafficSpec::parse(spec).unwrap();
        let mut g = Generator::new(&spec, 1);
        let mut buf = Vec::with_capacity(9216);
        // Measure the mean frame size of this workload to report bytes/s.
        let mut probe = g.clone();
        let bytes: u64 = (0..BATCH)
            .map(|_| u64::from(probe.next_into(&mut buf).frame_len))
            .sum();
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(format!("{name}/x{BATCH}"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    criterion::black_box(g.next_into(&mut buf));
                }
            })
        });
    }
    // The wire the sim MAC pulls from: 4096 pre-generated 1514-byte frames played in a loop.
    let spec = TrafficSpec::parse("tcp4:1414").unwrap();
    let (frames, _) = Generator::new(&spec, 1).pregenerate(4096);
    let ctl = Arc::new(WireCtl::default());
    ctl.start.store(true, std::sync::atomic::Ordering::Release);
    let mut wire = LoopWire::new(&frames, None, ctl);
    group.throughput(Throughput::Bytes(1514 * BATCH));
    group.bench_function(format!("loop_wire_1514B_frame/x{BATCH}"), |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                assert!(wire.advance());
                criterion::black_box(wire.frame());
            }
        })
    });

    // Reference in the same run: copying the same number of 1514-byte frames (the datapath's
    // physical limit is a copy into the device window).
    let src = vec![0x5au8; 1514 * BATCH as usize];
    let mut dst = vec![0u8; 1514 * BATCH as usize];
    group.throughput(Throughput::Bytes(1514 * BATCH));
    group.bench_function(format!("memcpy_1514B_frame/x{BATCH}"), |b| {
        b.iter(|| {
            for (d, s) in dst.chunks_exact_mut(1514).zip(src.chunks_exact(1514)) {
                d.copy_from_slice(criterion::black_box(s));
            }
            criterion::black_box(&mut dst);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_generate);
criterion_main!(benches);
