//! The RoCEv2 responder (issue 10 item 7, firmware part), all rows in one criterion run:
//!
//! - per-packet responder cost with the payload copy excluded (the DMA fake only counts
//!   bytes): `Firmware::poll_rx` on RC WRITE ONLY / SEND ONLY requests — split decision, QP
//!   lookup, PSN and opcode checks, rkey / receive-WQE checks, DMA submission, CQE — with ICRC
//!   verification off (`*_noicrc`) and on;
//! - the ICRC alone over a 4 KiB-payload packet, and a 4 KiB memcpy;
//! - placement with a copying DMA fake (4 KiB MTU): WRITE and SEND as bytes/s, against
//!   memcpy of the same footprint (4 KiB from the frame into the same destination);
//! - READ request -> one 4 KiB READ RESPONSE (DMA read + ICRC + the MAC fake's copy);
//! - the requester: a window of 8 RDMA WRITEs of 4 KiB (and 64 B) posted, sent (DMA read into
//!   the frame + ICRC + the MAC fake's copy, like the READ response), acknowledged by one
//!   coalesced ACK and completed: per WQE.
//!
//! cargo bench -p splitrx-firmware --bench roce

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use splitrx_firmware::bench_support::{ReqRig, RoceBench, RoceRig, REQ_ROUND, ROCE_BATCH};
use splitrx_firmware::stats::dev;
use splitrx_shared::split::{split, SplitConfig};
use splitrx_shared::wire::roce::icrc;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn run(rig: &mut RoceRig, iters: u64) -> Duration {
    let mut t = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(ROCE_BATCH as u64);
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

fn check(rig: &RoceRig, name: &str) {
    let d = rig.tb.fw.device_stats();
    if d.get(dev::ROCE_RCVD_PKTS) == 0 {
        // Not run: the command line's filter left this row out.
        return;
    }
    let bad = [
        dev::ROCE_DUPLICATE_REQUEST,
        dev::ROCE_OUT_OF_SEQ_REQUEST,
        dev::ROCE_SEND_RNR_ERR,
        dev::ROCE_RESP_DISCARDS,
        dev::ROCE_ICRC_ERRORS,
        dev::ROCE_RESP_INVALID_REQUEST,
        dev::ROCE_RESP_REMOTE_ACCESS_ERRORS,
        dev::ROCE_RESP_DMA_ERRORS,
    ];
    for c in bad {
        assert_eq!(
            d.get(c),
            0,
            "{name}: {}",
            splitrx_firmware::stats::DEV_NAMES[c]
        );
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("roce_responder");
    g.throughput(Throughput::Elements(1));
    for (name, kind, len, icrc_on) in [
        ("write_only_4096_noicrc", RoceBench::Write, 4096, false),
        ("write_only_4096", RoceBench::Write, 4096, true),
        ("write_only_64_noicrc", RoceBench::Write, 64, false),
        ("send_only_4096_noicrc", RoceBench::Send, 4096, false),
        ("send_only_4096", RoceBench::Send, 4096, true),
    ] {
        let mut rig = RoceRig::new(kind, len, false);
        rig.tb.fw.set_icrc_verify(icrc_on);
        g.bench_function(name, |b| b.iter_custom(|iters| run(&mut rig, iters)));
        check(&rig, name);
    }
    // ICRC and memcpy of 4 KiB.
    let rig = RoceRig::new(RoceBench::Write, 4096, false);
    let f = rig.tb.fw.hal().rx.frames[0].clone();
    let r = split(&f, &SplitConfig::default());
    let (l3, l4) = (r.l3_offset.unwrap() as usize, r.l4_offset.unwrap() as usize);
    assert_eq!(r.roce.unwrap().icrc_ok, Some(true));
    g.throughput(Throughput::Bytes(4096));
    g.bench_function("icrc_4096", |b| {
        b.iter(|| icrc(black_box(&f), l3, 4, l4, f.len() - 4))
    });
    let src = vec![7u8; 4096];
    let mut dst = vec![0u8; 4096];
    g.bench_function("memcpy_4096", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    // The same footprint as placement: 4 KiB out of each of the rig's 256 frames (in turn)
    // into one 4 KiB destination.
    let frames = rig.tb.fw.hal().rx.frames.clone();
    let off = r.payload_offset.unwrap() as usize;
    let mut i = 0usize;
    g.bench_function("memcpy_4096_from_frames", |b| {
        b.iter(|| {
            let f = &frames[i % frames.len()];
            i += 1;
            dst.copy_from_slice(black_box(&f[off..off + 4096]));
            black_box(&mut dst);
        })
    });
    // The same over a DRAM-sized footprint, as on a NIC whose frames stream through memory:
    // 16,384 copies of the frame (~68 MB) taken in turn, payloads copied into 64 MiB. Here
    // the ICRC's first read of a frame pulls it out of DRAM, and a copy that follows reads it
    // from the cache.
    const COLD: usize = 16384;
    let flen = f.len();
    let big: Vec<u8> = f.iter().copied().cycle().take(flen * COLD).collect();
    let mut far = vec![0u8; 4096 * COLD];
    let mut i = 0usize;
    g.bench_function("icrc_4096_cold", |b| {
        b.iter(|| {
            let k = i % COLD;
            i += 1;
            icrc(
                black_box(&big[k * flen..(k + 1) * flen]),
                l3,
                4,
                l4,
                flen - 4,
            )
        })
    });
    g.bench_function("memcpy_4096_cold", |b| {
        b.iter(|| {
            let k = i % COLD;
            i += 1;
            far[k * 4096..(k + 1) * 4096]
                .copy_from_slice(black_box(&big[k * flen + off..k * flen + off + 4096]));
        })
    });
    g.bench_function("icrc_then_memcpy_4096_cold", |b| {
        b.iter(|| {
            let k = i % COLD;
            i += 1;
            let fr = &big[k * flen..(k + 1) * flen];
            let c = icrc(black_box(fr), l3, 4, l4, flen - 4);
            far[k * 4096..(k + 1) * 4096].copy_from_slice(&fr[off..off + 4096]);
            c
        })
    });
    drop((big, far));
    // Placement with copies, 4 KiB MTU.
    for (name, kind, icrc_on) in [
        ("place_write_4096_noicrc", RoceBench::Write, false),
        ("place_write_4096", RoceBench::Write, true),
        ("place_send_4096_noicrc", RoceBench::Send, false),
        ("read_response_4096", RoceBench::Read, true),
    ] {
        let mut rig = RoceRig::new(kind, 4096, true);
        rig.tb.fw.set_icrc_verify(icrc_on);
        g.bench_function(name, |b| b.iter_custom(|iters| run(&mut rig, iters)));
        check(&rig, name);
        if kind == RoceBench::Read && rig.tb.fw.device_stats().get(dev::ROCE_RCVD_PKTS) > 0 {
            assert!(rig.tb.fw.device_stats().get(dev::ROCE_SENT_PKTS) > 0);
        }
    }
    // The requester: per WRITE WQE (post, packet, ACK share, completion).
    for (name, len) in [("req_write_4096", 4096u32), ("req_write_64", 64)] {
        let mut rig = ReqRig::new(len);
        g.throughput(Throughput::Elements(1));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut t = Duration::ZERO;
                let mut done = 0;
                while done < iters {
                    let start = Instant::now();
                    let sent = rig.round();
                    t += start.elapsed();
                    assert_eq!(sent as u64, REQ_ROUND, "{name}: a window of packets");
                    assert_eq!(rig.host_recycle() as u64, REQ_ROUND, "{name}: completions");
                    done += REQ_ROUND;
                }
                t.mul_f64(iters as f64 / done as f64)
            })
        });
        let d = rig.tb.fw.device_stats();
        assert_eq!(d.get(dev::REQ_RETRANSMITS), 0, "{name}");
        assert_eq!(d.get(dev::REQ_CQE_ERROR), 0, "{name}");
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
