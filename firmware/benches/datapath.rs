//! Per-packet cost of the firmware datapath, payload copy excluded (the DMA fake only counts
//! bytes): parse + split decision + RSS hash + buffer take + DMA submission + completion write.
//! Only `poll_rx` is timed; the host's recycling of buffers between polls is not.
//!
//! Every datapath case runs twice in the same criterion run: with checksum offload (the
//! default: `splitrx_shared::csum::verify` over every placed frame, the `*` names) and without
//! (`*_nocsum`, `Firmware::set_csum_offload(false)`), so the cost of verification is the ratio
//! of the two (BENCHMARKS.md, "Checksum offload").
//!
//! cargo bench -p splitrx-firmware --bench datapath

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use splitrx_firmware::bench_support::{tcp_ipv4_frame, Rig};
use splitrx_firmware::rss::{Toeplitz, MS_RSS_KEY};
use splitrx_shared::split::{split, SplitConfig};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn run(rig: &mut Rig, iters: u64) -> Duration {
    let mut t = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(256);
        rig.feed(n);
        let start = Instant::now();
        let mut done = 0;
        while done < n as usize {
            done += rig.tb.fw.poll_rx();
        }
        t += start.elapsed();
        rig.host_recycle();
        left -= n;
    }
    t
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("firmware_datapath");
    g.throughput(Throughput::Elements(1));
    for (name, len, packed) in [
        ("tcp4_1514_page", 1514, false),
        ("tcp4_1514_packed", 1514, true),
        ("tcp4_4162_packed", 4162, true),
        ("tcp4_66_unsplit", 66, false),
    ] {
        for csum in [true, false] {
            let mut rig = Rig::new(tcp_ipv4_frame(len), packed);
            rig.tb.fw.set_csum_offload(csum);
            let id = if csum {
                name.to_string()
            } else {
                format!("{name}_nocsum")
            };
            g.bench_function(id, |b| b.iter_custom(|iters| run(&mut rig, iters)));
            let st = rig.tb.fw.queue_stats(0).unwrap();
            assert_eq!(st.get(splitrx_firmware::stats::q::DROP_NO_HDR_BUF), 0);
            assert_eq!(st.get(splitrx_firmware::stats::q::DROP_CQ_FULL), 0);
            assert_eq!(st.get(splitrx_firmware::stats::q::DROP_PAY_OVERFLOW), 0);
            let verified = st.get(splitrx_firmware::stats::q::CSUM_OK)
                + st.get(splitrx_firmware::stats::q::CSUM_BAD);
            assert_eq!(verified > 0, csum, "{name}: verification on = {csum}");
        }
    }
    // The verifier alone on the 4 KiB frame (4096 bytes of TCP payload).
    let f = tcp_ipv4_frame(4162);
    let r = split(&f, &SplitConfig::default());
    g.bench_function("csum_verify_only_tcp4_4162", |b| {
        b.iter(|| splitrx_shared::csum::verify(black_box(&f), black_box(&r)))
    });
    // Breakdown: the split decision and the flow hash alone, on the same frame.
    let f = tcp_ipv4_frame(1514);
    let cfg = SplitConfig {
        hds_thresh: 0,
        verify_icrc: true,
    };
    g.bench_function("split_only_tcp4_1514", |b| {
        b.iter(|| split(black_box(&f), &cfg))
    });
    let t = Toeplitz::new(&MS_RSS_KEY);
    let r = split(&f, &cfg);
    g.bench_function("split_plus_hash_tcp4_1514", |b| {
        b.iter(|| {
            let r = split(black_box(&f), &cfg);
            t.flow_hash(&f, &r)
        })
    });
    g.bench_function("hash_only_tcp4", |b| {
        b.iter(|| t.flow_hash(black_box(&f), black_box(&r)))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
