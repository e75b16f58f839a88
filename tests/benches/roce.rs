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
//! the frames are checked to have all been served (`rcvd_pkts`) without a NAK. "Steady" is the
//! rate between the moments 10 % and 90 % of the frames were taken (the start-up of the
//! firmware thread and the first touches excluded). Then memcpy copies the same payload bytes
//! out of the same frames into the same device memory, 4 KiB at a time (the footprint of the
//! placement: ~70 MB of frames read; written: WRITE the generator's 4 MiB region, round and
//! round, SEND one 64 KiB pool buffer per message, 64 MiB). Every page of device memory is
//! touched before either is timed (the board maps its windows populated). Ratios are per
//! round; the median of `ROUNDS` rounds is printed.

use splitrx_harness::roce::{parse, RoceRig};
use splitrx_harness::sim::SimTarget;
use splitrx_host::roce::{Cqe, Mtu, PoolSrq, QpInit, QpType, RtrAttr};
use splitrx_shared::abi::access;
use splitrx_shared::stats::DEV_NAMES;
use splitrx_sim::traffic::{Generator, TrafficSpec};
use std::time::{Duration, Instant};

const MSGS: usize = 1024;
const MSG: u32 = 65536;
const ROUNDS: usize = 5;

fn counter(v: &[u64], name: &str) -> u64 {
    v[DEV_NAMES.iter().position(|n| *n == name).unwrap()]
}

/// One round: (responder time, steady-state Gb/s, payload bytes, memcpy time of the same bytes).
fn round(op: &str) -> (Duration, f64, u64, Duration) {
    let spec = TrafficSpec::parse(&format!("roce-{op}:{MSG}@4096")).unwrap();
    let mut g = Generator::new(&spec, 7);
    let params = g.roce_params(0).unwrap();
    let per_msg = MSG.div_ceil(4096) as usize;
    let (frames, _) = g.pregenerate(MSGS * per_msg);
    let first = parse(0, &frames[0]).unwrap();
    let send = op == "send";
    // Per frame: (payload offset in the frame, length, offset of its bytes in its message, and
    // for WRITE the MR offset of the message).
    let mut places = Vec::with_capacity(frames.len());
    let (mut msg_off, mut mr_off) = (0u64, 0u64);
    for f in &frames {
        let p = parse(0, f).unwrap();
        if let Some((va, _, _)) = p.reth {
            (msg_off, mr_off) = (0, va - params.va_base);
        }
        if matches!(p.opcode & 0x1f, 0x00 | 0x04 | 0x06 | 0x0a) {
            msg_off = 0; // SEND FIRST / ONLY, WRITE FIRST / ONLY
        }
        // 4 KiB payloads: no pad, the payload ends where the ICRC starts.
        let at = f.len() - 4 - p.payload.len();
        assert_eq!(&f[at..f.len() - 4], &p.payload[..]);
        places.push((at, p.payload.len(), msg_off, mr_off));
        msg_off += p.payload.len() as u64;
    }
    let payload: u64 = places.iter().map(|p| p.1 as u64).sum();
    let n = frames.len() as u64;
    let frames_copy = frames.clone();
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
    // Touch every page the responder will write before timing (a GPU BAR is mapped once, up
    // front; the first touch of a fresh shared-memory page is a page fault).
    rig.fill_mem(mem.bus_addr, params.region_len as usize, 0);
    let mut srq = None;
    let mut pool_bus = 0;
    if send {
        let (pool, pmem) = rdma.device_pool(MSG, MSGS as u32 + 8).unwrap();
        rig.fill_mem(pmem.bus_addr, pmem.len as usize, 0);
        pool_bus = pmem.bus_addr;
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
            sq_depth: 0,
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
    // Sleep, not spin: the board's firmware thread and the host's poller have the 2 cores.
    let (mut t10, mut t90) = (None, None);
    while !rig.session.wire().done {
        let o = rig.session.wire().offered;
        if t10.is_none() && o >= n / 10 {
            t10 = Some(t0.elapsed());
        }
        if t90.is_none() && o >= n * 9 / 10 {
            t90 = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    let t = t0.elapsed();
    let steady = match (t10, t90) {
        (Some(a), Some(b)) if b > a => payload as f64 * 0.8 * 8.0 / (b - a).as_secs_f64() / 1e9,
        _ => 0.0,
    };
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
    // memcpy of the same payload bytes out of the same frames to where the responder put
    // them (WRITE: the MR offset; SEND: a pool buffer per message), 4 KiB at a time.
    let t1 = Instant::now();
    let mut m = 0u64;
    for (f, &(at, len, off, mr)) in frames_copy.iter().zip(&places) {
        let dst = if send {
            if off == 0 {
                m += 1;
            }
            pool_bus + (m % (MSGS as u64 + 8)) * MSG as u64 + off
        } else {
            mem.bus_addr + (mr + off) % (params.region_len - 4096)
        };
        rig.write_mem(dst, &f[at..at + len]);
    }
    let tm = t1.elapsed();
    rdma.dereg_mr(mr).unwrap();
    drop(mem);
    rig.finish();
    (t, steady, payload, tm)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("RoCE placement on the sim board, {MSGS} x {} KiB messages at MTU 4096, median of {ROUNDS} rounds", MSG / 1024);
    for op in ["write", "send"] {
        let mut rows: Vec<(f64, f64, f64, f64)> = (0..ROUNDS)
            .map(|_| {
                let (t, steady, bytes, tm) = round(op);
                let gbps = bytes as f64 * 8.0 / t.as_secs_f64() / 1e9;
                let mgbps = bytes as f64 * 8.0 / tm.as_secs_f64() / 1e9;
                (gbps / mgbps, gbps, mgbps, steady)
            })
            .collect();
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (r, g, m, st) = rows[ROUNDS / 2];
        println!(
            "  RC {op:<5}: {g:7.1} Gb/s placed ({st:.1} steady); memcpy same footprint {m:7.1} Gb/s; ratio {:.0} % ({:.0} % steady)",
            r * 100.0,
            st / m * 100.0
        );
    }
}
