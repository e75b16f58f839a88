//! The example app of the page-pool receive API (`splitrx_harness::sink`, generic over
//! `PoolRecv`) on splitrx's backend: the firmware on a target (`SPLITRX_TARGETS`, default
//! `sim`) receives RC SENDs into a page-pool SRQ, the app gets each as a token, checks its
//! bytes, holds two at a time and gives them back; the pool's ledger adds up exactly at every
//! step. The same function runs on Linux soft-RoCE through the verbs backend in the rxe guest
//! (`rxe_guest.rs`, `verbs_sink_app_on_rxe`).

use splitrx_harness::roce::{read_case, RoceRig};
use splitrx_harness::sink::sink;
use splitrx_host::recv::{PoolRecv, SrqRecv};
use splitrx_host::roce::{gid_from_ipv4, Mtu, PoolSrq, QpInit, QpType, RtrAttr};
use std::time::Duration;

#[test]
fn the_example_app_runs_on_splitrx_over_a_page_pool_srq() {
    for t in splitrx_harness::targets_from_env() {
        // rdma_cm frame 4: RC SEND ONLY, 16 bytes, AckReq; six of them, each with its own
        // payload (ICRC recomputed).
        let send = read_case(format!(
            "{}/../testdata/captures/roce__rdma_cm.pcap",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .requests
        .into_iter()
        .find(|p| p.number == 4)
        .unwrap()
        .frame;
        let mut expected = Vec::new();
        let mut frames = Vec::new();
        for i in 0..6u32 {
            let mut f = splitrx_harness::roce::aim(&send, 0x41, 20 + i, None).unwrap();
            let n = f.len();
            let payload: Vec<u8> = (0..16).map(|b| (i * 16 + b) as u8).collect();
            f[n - 4 - 16..n - 4].copy_from_slice(&payload);
            splitrx_harness::craft::refill_icrc(&mut f).unwrap();
            assert_eq!(
                splitrx_harness::roce::parse(0, &f).unwrap().payload,
                payload
            );
            expected.push(payload);
            frames.push(f);
        }
        let mut rig = RoceRig::up(t.as_ref(), frames, 16 * 4096, 64 * 4096).unwrap();
        let rdma = rig.rdma.clone();
        let pd = rdma.alloc_pd();
        let (pool, pmem) = rdma.device_pool(2048, 16).unwrap();
        let srq = PoolSrq::new(&rdma, 3, pd, pool, Some(pmem), 8).unwrap();
        let mut qp = rdma
            .create_qp(&QpInit {
                qpn: 0x41,
                qp_type: QpType::Rc,
                pd,
                rq_depth: 0,
                cq_depth: 16,
                srqn: Some(3),
                sq_depth: 0,
            })
            .unwrap();
        qp.to_init(0, 0).unwrap();
        qp.to_rtr(&RtrAttr {
            dest_qpn: 0x77,
            rq_psn: 20,
            mtu: Mtu::M1024,
            remote_gid: gid_from_ipv4([10, 1, 16, 62]),
            udp_sport: 49152,
            min_rnr_timer: 12,
        })
        .unwrap();
        qp.to_rts().unwrap();
        let mut rx = SrqRecv::new(srq, vec![qp]);
        rig.start();
        // Every SEND lands (six ACKs) before the app looks: the counts below are exact.
        let (acks, ok) = rig.settle(6, Duration::from_secs(10));
        assert!(ok && acks.len() == 6, "{} ACKs", acks.len());
        let rep = sink(&mut rx, &expected, 2, Duration::from_secs(20), || {}).unwrap();
        assert_eq!((rep.received, rep.bytes), (6, 96));
        // Holding two tokens after a refill: 16 buffers = 2 lent + 12 posted (4 completed
        // and not yet polled, 8 in the refilled ring: the firmware took the 6 landed WQEs out
        // of it) + 2 free. (The wire plays each SEND once: the SRQ holds a WQE for every one
        // of them, an RNR NAK would lose it.)
        let (a, outstanding) = rep.audit_held.unwrap();
        assert_eq!(
            (
                a.total,
                a.lent,
                a.lent_frags,
                a.posted,
                a.filled,
                a.free,
                outstanding
            ),
            (16, 2, 2, 12, 0, 2, 12)
        );
        let (a, outstanding) = rep.audit_end;
        assert_eq!((a.lent, a.posted, a.free, outstanding), (0, 8, 8, 8));
        assert_eq!(rx.counters().received, 6);
        assert_eq!(rx.counters().cqe_invalid, 0);
        let closed = rx.close().unwrap();
        assert_eq!(closed.retired, 8);
        let a = closed.audit.unwrap();
        assert_eq!((a.free, a.posted, a.lent, a.filled), (16, 0, 0, 0));
        assert_eq!(closed.counters.received, 6);
        assert_eq!(closed.counters.errors, 0);
        let (_, err) = rig.finish();
        assert_eq!(err, None);
    }
}
