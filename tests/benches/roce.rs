//! RoCE placement on the sim board: RC WRITE and SEND at a 4 KiB path MTU through the real
//! firmware responder and the real host stack, against single-core memcpy of the same bytes
//! into the same mapped device window, measured in the same run.
//!
//! `cargo bench -p splitrx-harness --bench roce`
//!
//! Each round generates `MSGS` messages of 64 KiB (16 packets of 4 KiB each) with the sim
//! traffic generator (real frames: Ethernet/IPv4/UDP/BTH/RETH, ICRC), sets a QP up with the
//! flow's QPN, PSN and rkey, plays the frames once, and times from the start of traffic to the
//! moment the wire has played every frame and the responder has taken it (the wire's `done`);
//! the frames are checked to have all been served (`rcvd_pkts`) without a NAK. Then memcpy
//! copies the same payload bytes, 4 KiB at a time, into the same device memory. Ratios are
//! per round; the median of `ROUNDS` rounds is printed.

use splitrx_harness::roce::{parse, RoceRig};
use splitrx_harness::sim::SimTarget;
use splitrx_host::roce::{Cqe, Mtu, PoolSrq, QpInit, QpType, RtrAttr};
use splitrx_shared::abi::access;
use splitrx_shared::stats::DEV_NAMES;
use splitrx_sim::traffic::{Generator, TrafficSpec};
use std::time::{Duration, Instant};

const MSGS: usize = 256;
const MSG: u32 = 65536;
const ROUNDS: usize = 5;

fn counter(v: &[u64], name: &str) -> u64 {
    v[DEV_NAMES.iter().position(|n| *n == name).unwrap()]
}

/// One round: (responder time, payload bytes, memcpy time of the same bytes).
fn round(op: &str) -> (Duration, u64, Duration) {
    let spec = TrafficSpec::parse(&format!("roce-{op}:{MSG}@4096")).unwrap();
    let mut g = Generator::new(&spec, 7);
    let params = g.roce_params(0).unwrap();
    let per_msg = MSG.div_ceil(4096) as usize;
    let (frames, _) = g.pregenerate(MSGS * per_msg);
    let first = parse(0, &frames[0]).unwrap();
    let payload: u64 = frames
        .iter()
        .map(|f| parse(0, f).unwrap().payload.len() as u64)
        .sum();
    let n = frames.len() as u64;
    let send = op == "send";
    let mut rig = RoceRig::up(
        &SimTarget::default(),
        frames,
        64 * 4096,
        params.region_len + (MSGS as u64 + 8) * MSG as u64 + (1 << 20),
    )
    .unwrap();
    let rdma = rig.rdma.clone();
    let pd = rdma.alloc_pd();
    let mem = rdma.alloc_device(params.region_len).unwrap();
    let mr = rdma
        .reg_mr_keyed(
            pd,
            mem.bus_addr,
            params.region_len,
            params.va_base,
            access::REMOTE_WRITE,
            params.rkey,
            params.rkey,
        )
        .unwrap();
    let mut srq = None;
    if send {
        let (pool, pmem) = rdma.device_pool(MSG, MSGS as u32 + 8).unwrap();
        srq = Some(
            PoolSrq::new(
                &rdma,
                1,
                pd,
                pool,
                Some(pmem),
                (MSGS as u32).next_power_of_two() * 2,
            )
            .unwrap(),
        );
    }
    let mut qp = rdma
        .create_qp(&QpInit {
            qpn: params.dest_qp,
            qp_type: QpType::Rc,
            pd,
            rq_depth: 16,
            cq_depth: (MSGS as u32).next_power_of_two() * 4,
            srqn: send.then_some(1),
        })
        .unwrap();
    qp.to_init(access::REMOTE_WRITE, 0).unwrap();
    qp.to_rtr(&RtrAttr {
        dest_qpn: 0x99,
        rq_psn: params.initial_psn,
        mtu: Mtu::M4096,
        remote_gid: first.src,
        udp_sport: 49152,
        min_rnr_timer: 12,
    })
    .unwrap();
    qp.to_rts().unwrap();
    let t0 = Instant::now();
    rig.start();
    while !rig.session.wire().done {
        std::hint::spin_loop();
    }
    let t = t0.elapsed();
    let c = rig.nic_counters();
    assert_eq!(counter(&c, "rcvd_pkts"), n, "every packet served");
    assert_eq!(counter(&c, "out_of_seq_request"), 0);
    assert_eq!(counter(&c, "send_rnr_err"), 0);
    if let Some(mut s) = srq {
        let mut got = 0;
        for c in qp.poll_cq(usize::MAX).unwrap() {
            if let Cqe::Srq(c) = c {
                got += s.accept(c).unwrap().unwrap().completion.byte_len as u64;
            }
        }
        assert_eq!(got, payload, "every SEND byte completed");
        qp.destroy().unwrap();
        s.destroy().unwrap();
    } else {
        qp.destroy().unwrap();
    }
    // memcpy of the same payload bytes into the same device memory, 4 KiB at a time.
    let src = vec![0x5au8; 4096];
    let t1 = Instant::now();
    let mut off = 0u64;
    for _ in 0..payload / 4096 {
        rig.write_mem(mem.bus_addr + off, &src);
        off = (off + 4096) % (params.region_len - 4096);
    }
    let tm = t1.elapsed();
    rdma.dereg_mr(mr).unwrap();
    drop(mem);
    rig.finish();
    (t, payload, tm)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("RoCE placement on the sim board, {MSGS} x {} KiB messages at MTU 4096, median of {ROUNDS} rounds", MSG / 1024);
    for op in ["write", "send"] {
        let mut rows: Vec<(f64, f64, f64)> = (0..ROUNDS)
            .map(|_| {
                let (t, bytes, tm) = round(op);
                let gbps = bytes as f64 * 8.0 / t.as_secs_f64() / 1e9;
                let mgbps = bytes as f64 * 8.0 / tm.as_secs_f64() / 1e9;
                (gbps / mgbps, gbps, mgbps)
            })
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (r, g, m) = rows[ROUNDS / 2];
        println!(
            "  RC {op:<5}: {g:7.1} Gb/s placed; memcpy same footprint {m:7.1} Gb/s; ratio {:.0} %",
            r * 100.0
        );
    }
}
