//! The host's RoCE API against the firmware on a target (`SPLITRX_TARGETS`, default `sim`):
//! receive WQEs and CQEs, the page-pool SRQ with its tokens, and destroy reconciling exactly
//! like a queue reset — with exact counts per ownership state.

use splitrx_harness::roce::{read_case, RoceRig};
use splitrx_host::ctrl::CtrlError;
use splitrx_host::roce::{gid_from_ipv4, Cqe, Mtu, PoolSrq, QpInit, QpType, RoceError, RtrAttr};
use splitrx_shared::abi::{access, wc_opcode, wc_status, BufRef, CtrlStatus};
use std::time::Duration;

fn request(name: &str, number: u64) -> Vec<u8> {
    read_case(format!(
        "{}/../testdata/captures/roce__{name}.pcap",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .requests
    .into_iter()
    .find(|p| p.number == number)
    .expect("a request of the capture")
    .frame
}

/// `frame` aimed at QP `qpn` with PSN `psn`, ICRC recomputed.
fn aim(f: Vec<u8>, qpn: u32, psn: u32) -> Vec<u8> {
    splitrx_harness::roce::aim(&f, qpn, psn, None).unwrap()
}

const REQUESTER: [u8; 4] = [10, 1, 16, 62];

fn rtr(psn: u32) -> RtrAttr {
    RtrAttr {
        dest_qpn: 0x77,
        rq_psn: psn,
        mtu: Mtu::M1024,
        remote_gid: gid_from_ipv4(REQUESTER),
        udp_sport: 49152,
        min_rnr_timer: 12,
    }
}

fn status(e: RoceError) -> CtrlStatus {
    match e {
        RoceError::Ctrl(CtrlError::Status { status, .. }) => status,
        other => panic!("not a control status: {other}"),
    }
}

/// A SEND FIRST leaves the QP holding its WQE; destroy flushes that one with WR_FLUSH_ERR
/// and hands back the two the firmware never took.
#[test]
fn destroy_flushes_the_held_wqe_and_returns_the_rest() {
    for t in splitrx_harness::targets_from_env() {
        // rdma_send_bw frame 24: RC SEND FIRST, 1024 bytes.
        let f = aim(request("rdma_send_bw", 24), 0x40, 7);
        let mut rig = RoceRig::up(t.as_ref(), vec![f], 16 * 4096, 64 * 4096).unwrap();
        let rdma = rig.rdma.clone();
        let pd = rdma.alloc_pd();
        let mem = rdma.alloc_device(3 * 4096).unwrap();
        let mr = rdma
            .reg_mr(pd, mem.bus_addr, mem.len, mem.bus_addr, access::LOCAL_WRITE)
            .unwrap();
        let mut qp = rdma
            .create_qp(&QpInit {
                qpn: 0x40,
                qp_type: QpType::Rc,
                pd,
                rq_depth: 16,
                cq_depth: 32,
                srqn: None,
                sq_depth: 0,
            })
            .unwrap();
        qp.to_init(access::REMOTE_WRITE, 0).unwrap();
        qp.to_rtr(&rtr(7)).unwrap();
        qp.to_rts().unwrap();
        for i in 0..3u64 {
            qp.post_recv(i, mem.bus_addr + i * 4096, 4096, &mr, BufRef::NONE)
                .unwrap();
        }
        rig.start();
        let (tx, ok) = rig.settle(0, Duration::from_secs(10));
        assert!(ok);
        assert!(
            tx.is_empty(),
            "SEND FIRST without AckReq is not acknowledged"
        );
        let info = qp.query().unwrap();
        assert_eq!(info.held_wqes.get(), 1);
        assert_eq!(info.expected_psn.get(), 8);
        assert!(qp.poll_cq(16).unwrap().is_empty());
        let d = qp.destroy().unwrap();
        assert_eq!(d.completions.len(), 1);
        match d.completions[0] {
            Cqe::Own(c) => {
                assert_eq!((c.wr_id, c.status), (0, wc_status::WR_FLUSH_ERR));
            }
            other => panic!("{other:?}"),
        }
        let back: Vec<u64> = d.returned.iter().map(|w| w.wr_id.get()).collect();
        assert_eq!(back, vec![1, 2]);
        rdma.dereg_mr(mr).unwrap();
        drop(mem);
        let (out, err) = rig.finish();
        assert_eq!(err, None);
        assert_eq!(out.unwrap().ledger_errors, 0);
    }
}

/// Three SENDs into an SRQ fed from a page pool in device memory: each lands in a pool
/// buffer lent as a token with exactly the sent bytes; the pool's states add up at every
/// step; dropping the tokens and destroying QP and SRQ leaves the audit clean.
#[test]
fn srq_from_a_page_pool_lends_tokens_and_takes_them_back() {
    for t in splitrx_harness::targets_from_env() {
        // rdma_cm frame 4: RC SEND ONLY, 16 bytes, AckReq.
        let send = request("rdma_cm", 4);
        let frames: Vec<Vec<u8>> = (0..3).map(|i| aim(send.clone(), 0x41, 20 + i)).collect();
        let payload = splitrx_harness::roce::parse(0, &frames[0]).unwrap().payload;
        let mut rig = RoceRig::up(t.as_ref(), frames, 16 * 4096, 64 * 4096).unwrap();
        let rdma = rig.rdma.clone();
        let pd = rdma.alloc_pd();
        let (pool, pmem) = rdma.device_pool(2048, 8).unwrap();
        let mut srq = PoolSrq::new(&rdma, 3, pd, pool, Some(pmem), 4).unwrap();
        assert_eq!(
            srq.outstanding(),
            4,
            "the ring holds 4: four buffers posted"
        );
        let a = srq.pool().audit().unwrap();
        assert_eq!((a.total, a.posted, a.free), (8, 4, 4));
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
        qp.to_rtr(&rtr(20)).unwrap();
        qp.to_rts().unwrap();
        rig.start();
        let (tx, ok) = rig.settle(3, Duration::from_secs(10));
        assert!(ok);
        assert_eq!(tx.len(), 3, "three ACKs");
        let mut tokens = Vec::new();
        for c in qp.poll_cq(16).unwrap() {
            let Cqe::Srq(c) = c else {
                panic!("an SRQ QP's CQE")
            };
            let rx = srq.accept(c).unwrap().unwrap();
            assert_eq!(rx.completion.opcode, wc_opcode::RECV);
            assert_eq!(rx.completion.byte_len, 16);
            assert_eq!(rx.token.bytes().unwrap(), &payload[..]);
            tokens.push(rx.token);
        }
        assert_eq!(tokens.len(), 3);
        let a = srq.pool().audit().unwrap();
        assert_eq!((a.posted, a.lent, a.lent_frags), (1, 3, 3));
        assert_eq!(srq.refill().unwrap(), 3, "three more posted");
        drop(tokens);
        let a = srq.pool().audit().unwrap();
        assert_eq!((a.posted, a.lent, a.free), (4, 0, 4));
        // The SRQ cannot go while a QP takes WQEs from it.
        let d = qp.destroy().unwrap();
        assert!(d.completions.is_empty() && d.returned.is_empty());
        let sd = srq.destroy().unwrap();
        assert_eq!(sd.retired, 4);
        let audit = sd.audit.unwrap();
        assert_eq!((audit.free, audit.posted, audit.lent), (8, 0, 0));
        assert_eq!(sd.counters.received, 3);
        assert_eq!(sd.counters.cqe_invalid, 0);
        let (_, err) = rig.finish();
        assert_eq!(err, None);
    }
}

/// Control errors come back as exact statuses.
#[test]
fn control_errors_are_exact() {
    for t in splitrx_harness::targets_from_env() {
        let rig = RoceRig::up(t.as_ref(), Vec::new(), 16 * 4096, 16 * 4096).unwrap();
        let rdma = rig.rdma.clone();
        let pd = rdma.alloc_pd();
        let init = QpInit {
            qpn: 0x50,
            qp_type: QpType::Rc,
            pd,
            rq_depth: 4,
            cq_depth: 8,
            srqn: None,
            sq_depth: 0,
        };
        let qp = rdma.create_qp(&init).unwrap();
        assert_eq!(
            status(rdma.create_qp(&init).unwrap_err()),
            CtrlStatus::Exists
        );
        // An MR outside every window the firmware reaches.
        assert_eq!(
            status(
                rdma.reg_mr(pd, 0x10, 4096, 0, access::REMOTE_WRITE)
                    .unwrap_err()
            ),
            CtrlStatus::Invalid
        );
        let mem = rdma.alloc_device(4096).unwrap();
        let mr = rdma
            .reg_mr(pd, mem.bus_addr, 4096, 0x1000, access::REMOTE_WRITE)
            .unwrap();
        assert_eq!(
            status(
                rdma.reg_mr_keyed(pd, mem.bus_addr, 4096, 0, 0, mr.lkey, mr.rkey)
                    .unwrap_err()
            ),
            CtrlStatus::Exists
        );
        // A SRQ in use cannot be destroyed.
        let (pool, pmem) = rdma.device_pool(1024, 4).unwrap();
        let srq = PoolSrq::new(&rdma, 9, pd, pool, Some(pmem), 4).unwrap();
        let user = rdma
            .create_qp(&QpInit {
                qpn: 0x51,
                srqn: Some(9),
                rq_depth: 0,
                ..init
            })
            .unwrap();
        let busy = srq.destroy().unwrap_err();
        assert_eq!(status(busy.error), CtrlStatus::Busy);
        user.destroy().unwrap();
        let sd = busy.srq.destroy().unwrap();
        assert_eq!(sd.audit.unwrap().free, 4);
        qp.destroy().unwrap();
        assert_eq!(
            status(rdma.query_qp(0x50).unwrap_err()),
            CtrlStatus::NotFound
        );
        rdma.dereg_mr(mr).unwrap();
        assert_eq!(status(rdma.dereg_mr(mr).unwrap_err()), CtrlStatus::NotFound);
        let (_, err) = rig.finish();
        assert_eq!(err, None);
    }
}

/// A WQE with a scatter list: a 16-byte SEND fills its two entries (5 + 11 bytes, in two
/// separate buffers) in order; the completion lists both entries; posting checks the entry
/// count and posts a whole WQE or nothing; destroy hands back every entry of a WQE never used.
#[test]
fn a_scatter_list_wqe_is_filled_in_order_and_returned_whole() {
    use splitrx_host::roce::RecvSge;
    for t in splitrx_harness::targets_from_env() {
        // rdma_cm frame 4: RC SEND ONLY, 16 bytes, AckReq.
        let f = aim(request("rdma_cm", 4), 0x42, 30);
        let payload = splitrx_harness::roce::parse(0, &f).unwrap().payload;
        assert_eq!(payload.len(), 16);
        let mut rig = RoceRig::up(t.as_ref(), vec![f], 16 * 4096, 64 * 4096).unwrap();
        let rdma = rig.rdma.clone();
        let pd = rdma.alloc_pd();
        let mem = rdma.alloc_device(2 * 4096).unwrap();
        let mr = rdma
            .reg_mr(pd, mem.bus_addr, mem.len, mem.bus_addr, access::LOCAL_WRITE)
            .unwrap();
        rig.fill_mem(mem.bus_addr, 2 * 4096, 0xee);
        let mut qp = rdma
            .create_qp(&QpInit {
                qpn: 0x42,
                qp_type: QpType::Rc,
                pd,
                rq_depth: 4,
                cq_depth: 8,
                srqn: None,
                sq_depth: 0,
            })
            .unwrap();
        qp.to_init(0, 0).unwrap();
        qp.to_rtr(&rtr(30)).unwrap();
        qp.to_rts().unwrap();
        let sge = |off: u64, len: u32, buf: u32| RecvSge {
            bus_addr: mem.bus_addr + off,
            len,
            mr: &mr,
            buf: BufRef::new(0, buf).unwrap(),
        };
        // The second buffer first in memory: placement follows the list, not the addresses.
        qp.post_recv_sgl(7, &[sge(4096 + 100, 5, 1), sge(8, 11, 2)])
            .unwrap();
        for bad in [
            vec![],
            (0..5).map(|i| sge(i * 64, 64, 9)).collect::<Vec<_>>(),
        ] {
            assert!(
                matches!(qp.post_recv_sgl(8, &bad), Err(RoceError::Invalid(_))),
                "{} entries refused",
                bad.len()
            );
        }
        // Two of the ring's four slots are taken: a three-entry WQE does not fit, and
        // nothing of it is posted.
        assert!(matches!(
            qp.post_recv_sgl(8, &[sge(512, 8, 3), sge(600, 8, 4), sge(700, 8, 5)]),
            Err(RoceError::QueueFull)
        ));
        qp.post_recv_sgl(9, &[sge(512, 8, 3), sge(600, 8, 4)])
            .unwrap();
        assert_eq!((qp.outstanding(), qp.counters().posted), (2, 2));
        rig.start();
        let (tx, ok) = rig.settle(1, Duration::from_secs(10));
        assert!(ok);
        assert_eq!(tx.len(), 1, "one ACK");
        let cs = qp.poll_cq(8).unwrap();
        assert_eq!(cs.len(), 1);
        let Cqe::Own(c) = cs[0] else {
            panic!("{:?}", cs[0])
        };
        assert_eq!((c.wr_id, c.status, c.byte_len), (7, wc_status::SUCCESS, 16));
        let bufs: Vec<BufRef> = c.sges().iter().map(|w| w.buf).collect();
        assert_eq!(
            bufs,
            vec![BufRef::new(0, 1).unwrap(), BufRef::new(0, 2).unwrap()]
        );
        assert_eq!(rig.read_mem(mem.bus_addr + 4096 + 100, 5), &payload[..5]);
        assert_eq!(rig.read_mem(mem.bus_addr + 8, 11), &payload[5..]);
        // Guard bytes either side of both entries untouched.
        assert_eq!(rig.read_mem(mem.bus_addr + 4096 + 99, 1), vec![0xee]);
        assert_eq!(rig.read_mem(mem.bus_addr + 4096 + 105, 1), vec![0xee]);
        assert_eq!(rig.read_mem(mem.bus_addr + 7, 1), vec![0xee]);
        assert_eq!(rig.read_mem(mem.bus_addr + 19, 1), vec![0xee]);
        assert_eq!(qp.outstanding(), 1);
        let d = qp.destroy().unwrap();
        assert!(d.completions.is_empty());
        let back: Vec<(u64, BufRef)> = d.returned.iter().map(|w| (w.wr_id.get(), w.buf)).collect();
        assert_eq!(
            back,
            vec![
                (9, BufRef::new(0, 3).unwrap()),
                (9, BufRef::new(0, 4).unwrap())
            ]
        );
        rdma.dereg_mr(mr).unwrap();
        drop(mem);
        let (out, err) = rig.finish();
        assert_eq!(err, None);
        assert_eq!(out.unwrap().ledger_errors, 0);
    }
}

/// The send side of the host API: a QP without a send ring refuses `post_send`, a UC QP
/// cannot have one; the firmware takes send WQEs only while the CQ has room for their
/// completions (CQ of 4: one slot kept for the responder, a window of 3 here, as nothing can be
/// sent before the peer spoke), and destroy completes those it took with `WR_FLUSH_ERR` and
/// hands back the ones still in the ring.
#[test]
fn send_wqes_are_bounded_by_the_cq_and_destroy_flushes_or_returns_each() {
    use splitrx_host::roce::SendWr;
    for t in splitrx_harness::targets_from_env() {
        let rig = RoceRig::up(t.as_ref(), Vec::new(), 16 * 4096, 64 * 4096).unwrap();
        let rdma = rig.rdma.clone();
        let pd = rdma.alloc_pd();
        let mem = rdma.alloc_device(4096).unwrap();
        let mr = rdma
            .reg_mr(pd, mem.bus_addr, mem.len, mem.bus_addr, access::LOCAL_WRITE)
            .unwrap();
        let init = |qpn, qp_type, sq_depth| QpInit {
            qpn,
            qp_type,
            pd,
            rq_depth: 2,
            cq_depth: 4,
            srqn: None,
            sq_depth,
        };
        assert!(matches!(
            rdma.create_qp(&init(0x41, QpType::Uc, 4)),
            Err(RoceError::Invalid(_))
        ));
        let mut plain = rdma.create_qp(&init(0x42, QpType::Rc, 0)).unwrap();
        assert!(matches!(
            plain.post_send(&SendWr::send(1, &mr, mem.bus_addr, 8)),
            Err(RoceError::Invalid(_))
        ));
        let mut qp = rdma.create_qp(&init(0x40, QpType::Rc, 8)).unwrap();
        qp.to_init(access::REMOTE_WRITE, 0).unwrap();
        qp.to_rtr(&rtr(7)).unwrap();
        qp.to_rts_with(&Default::default()).unwrap();
        for i in 0..5 {
            qp.post_send(&SendWr::send(i, &mr, mem.bus_addr, 8))
                .unwrap();
        }
        assert_eq!(qp.sends_outstanding(), 5);
        let taken = |rig: &RoceRig| rig.nic_counters()[splitrx_shared::stats::dev::REQ_WQES_TAKEN];
        let t0 = std::time::Instant::now();
        while taken(&rig) < 3 && t0.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(
            taken(&rig),
            3,
            "{}: the window is what the CQ can complete",
            t.name()
        );
        let d = qp.destroy().unwrap();
        let flushed: Vec<(u64, u8, u8)> = d
            .completions
            .iter()
            .map(|c| match c {
                Cqe::Send(c) => (c.wr_id, c.status, c.opcode),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            flushed,
            vec![
                (0, wc_status::WR_FLUSH_ERR, wc_opcode::SEND),
                (1, wc_status::WR_FLUSH_ERR, wc_opcode::SEND),
                (2, wc_status::WR_FLUSH_ERR, wc_opcode::SEND)
            ]
        );
        let unsent: Vec<u64> = d.unsent.iter().map(|w| w.wr_id.get()).collect();
        assert_eq!(unsent, vec![3, 4]);
        assert!(d.returned.is_empty());
        plain.destroy().unwrap();
        let _ = rdma.dereg_mr(mr);
        drop(mem);
        let (_, fw_error) = rig.finish();
        assert_eq!(fw_error, None);
    }
}
