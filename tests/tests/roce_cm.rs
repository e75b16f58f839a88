//! Connection management on QP 1 against the `roce__rdma_cm` and `roce__rping` captures (rdma_cm
//! connections between two Linux soft-RoCE peers), on every target in
//! `SPLITRX_TARGETS`: the firmware's REPs, its ACK and its DREP must match the captured
//! responder's in every field but the random identifiers (its local comm IDs and starting
//! PSNs come from the firmware's per-boot sequence, `cm_value`), the QPs must move
//! INIT -> RTR -> RTS -> ERR as the messages say, and a REQ for a service nobody listens on
//! gets a REJ.

use splitrx_firmware::roce::cm::cm_value;
use splitrx_harness::craft::{icrc_ok, refill_icrc};
use splitrx_harness::roce::{parse, RoceRig};
use splitrx_host::roce::{rdma_cm_service_id, QpInit, QpType, RDMA_PS_TCP};
use splitrx_shared::abi::{access, qp_state, BufRef};
use splitrx_shared::split::{split, SplitConfig};
use splitrx_shared::stats::DEV_NAMES;
use splitrx_shared::wire::mad::{self, attr, rej_reason_of, CmIds, CmRep, MadPacket, MAD_LEN};
use std::time::Duration;

fn frames(name: &str) -> Vec<Vec<u8>> {
    splitrx_host::capture::read_all(format!(
        "{}/../testdata/captures/roce__{name}.pcap",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .into_iter()
    .map(|f| f.data)
    .collect()
}

/// Offset of the MAD in a QP 1 frame (after UDP, BTH and DETH).
fn mad_at(frame: &[u8]) -> usize {
    let r = split(frame, &SplitConfig::default());
    r.l4_offset.expect("UDP") as usize + 8 + 12 + 8
}

fn mad(frame: &[u8]) -> &[u8] {
    let at = mad_at(frame);
    &frame[at..at + MAD_LEN]
}

/// `frame` (a CM MAD) with `bytes` written at `off` of its class data, ICRC recomputed.
fn edit(frame: &[u8], off: usize, bytes: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let at = mad_at(&f) + mad::HEADER_LEN + off;
    f[at..at + bytes.len()].copy_from_slice(bytes);
    refill_icrc(&mut f).unwrap();
    f
}

fn counter(v: &[u64], name: &str) -> u64 {
    v[DEV_NAMES.iter().position(|n| *n == name).unwrap()]
}

/// The IP/UDP/BTH/DETH fields of a MAD frame: (IPv4 src, dst, UDP src, dst, opcode, dest QP,
/// P_Key, AckReq, Q_Key, source QP).
type Path = (Vec<u8>, Vec<u8>, u16, u16, u8, u32, u16, bool, u32, u32);

fn path(frame: &[u8]) -> Path {
    let p = parse(0, frame).unwrap();
    let l3 = 14;
    let l4 = l3 + 20;
    let bth = l4 + 8;
    (
        frame[l3 + 12..l3 + 16].to_vec(),
        frame[l3 + 16..l3 + 20].to_vec(),
        p.sport,
        u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]),
        p.opcode,
        p.dest_qp,
        u16::from_be_bytes([frame[bth + 2], frame[bth + 3]]),
        p.ack_req,
        p.deth.unwrap().0,
        p.deth.unwrap().1,
    )
}

/// A REP of ours against the captured one: everything equal but the local comm ID and the
/// starting PSN, which must be the firmware's `k`-th connection's (and the SRQ flag, `srq`:
/// whether our QP takes its WQEs from an SRQ; rxe's did not).
fn check_rep(got: &[u8], want: &[u8], k: u32) {
    check_rep_srq(got, want, k, false)
}

fn check_rep_srq(got: &[u8], want: &[u8], k: u32, srq: bool) {
    assert!(icrc_ok(got), "REP ICRC");
    assert_eq!(path(got), path(want), "REP path");
    let (g, w) = (mad(got), mad(want));
    assert_eq!(&g[..mad::HEADER_LEN], &w[..mad::HEADER_LEN], "MAD header");
    let (gr, wr) = (
        CmRep::parse(&g[mad::HEADER_LEN..]),
        CmRep::parse(&w[mad::HEADER_LEN..]),
    );
    assert_eq!(gr.local_comm_id, cm_value(2 * k));
    assert_eq!(gr.starting_psn, cm_value(2 * k + 1) & 0xff_ffff);
    assert_eq!(gr.srq, srq, "REP SRQ flag");
    assert_eq!(
        CmRep {
            local_comm_id: wr.local_comm_id,
            starting_psn: wr.starting_psn,
            srq: wr.srq,
            ..gr
        },
        wr,
        "REP fields"
    );
    assert_eq!(
        &g[mad::HEADER_LEN + 36..],
        &w[mad::HEADER_LEN + 36..],
        "private data"
    );
}

#[test]
fn rdma_cm_connections_are_accepted_used_and_torn_down_as_rxe_did() {
    let cap = frames("rdma_cm");
    let f = |n: usize| cap[n - 1].clone();
    let (c0, c1) = (cm_value(0), cm_value(2));
    let service = rdma_cm_service_id(RDMA_PS_TCP, 0x4853);
    // The requester's messages after each REQ, addressed to our comm IDs.
    let rtu0 = edit(&f(3), 4, &c0.to_be_bytes());
    let rtu1 = edit(&f(30), 4, &c1.to_be_bytes());
    let dreq1 = edit(&f(91), 4, &c1.to_be_bytes());
    // A REQ for a service nobody listens on (another port, another comm ID).
    let stray = edit(&edit(&f(1), 14, &[0x99, 0x99]), 0, &[1, 2, 3, 4]);
    // The first SEND, from the PSN of our REP (the captured one used rxe's REP's).
    let psn0 = cm_value(1) & 0xff_ffff;
    let send = splitrx_harness::roce::aim(&f(4), 0x3b, psn0, None).unwrap();
    let wire = vec![f(1), rtu0, send, f(24), rtu1, dreq1, stray];
    for t in splitrx_harness::targets_from_env() {
        let mut rig = RoceRig::up(t.as_ref(), wire.clone(), 16 * 4096, 64 * 4096).unwrap();
        let rdma = rig.rdma.clone();
        let pd = rdma.alloc_pd();
        let mem = rdma.alloc_device(4096).unwrap();
        let mr = rdma
            .reg_mr(pd, mem.bus_addr, mem.len, mem.bus_addr, access::LOCAL_WRITE)
            .unwrap();
        let mut qps = Vec::new();
        for qpn in [0x3b, 0x3c] {
            let mut qp = rdma
                .create_qp(&QpInit {
                    qpn,
                    qp_type: QpType::Rc,
                    pd,
                    rq_depth: 4,
                    cq_depth: 8,
                    srqn: None,
                    sq_depth: 0,
                })
                .unwrap();
            qp.to_init(access::REMOTE_WRITE | access::REMOTE_READ, 0)
                .unwrap();
            rdma.cm_listen(service, &qp).unwrap();
            qps.push(qp);
        }
        qps[0]
            .post_recv(1, mem.bus_addr, 256, &mr, BufRef::NONE)
            .unwrap();
        rig.start();
        let (tx, ok) = rig.settle(5, Duration::from_secs(20));
        assert!(ok, "{}: {} packets transmitted", t.name(), tx.len());
        assert_eq!(tx.len(), 5, "REP, ACK, REP, DREP, REJ");
        check_rep(&tx[0], &f(2), 0);
        // The SEND's ACK: as rxe's (frame 5), at our PSN.
        let (a, w) = (parse(0, &tx[1]).unwrap(), parse(0, &f(5)).unwrap());
        assert_eq!((a.opcode, a.dest_qp, a.aeth), (w.opcode, w.dest_qp, w.aeth));
        assert_eq!(a.psn, psn0);
        check_rep(&tx[2], &f(25), 1);
        // The DREP: as rxe's (frame 93), our comm ID in it.
        assert!(icrc_ok(&tx[3]));
        assert_eq!(path(&tx[3]), path(&f(93)));
        let drep = f(93);
        let (g, w) = (mad(&tx[3]), mad(&drep));
        assert_eq!(&g[..mad::HEADER_LEN], &w[..mad::HEADER_LEN]);
        let ids = CmIds(&g[mad::HEADER_LEN..]);
        assert_eq!(
            (ids.local_comm_id(), ids.remote_comm_id()),
            (c1, 0x65c0_c56d)
        );
        assert_eq!(&g[mad::HEADER_LEN + 8..], &w[mad::HEADER_LEN + 8..]);
        // The REJ: invalid service ID, naming the stray REQ's comm ID.
        let g = mad(&tx[4]);
        let m = MadPacket::new_checked(g).unwrap();
        assert_eq!(m.attribute_id(), attr::REJ);
        assert_eq!(
            m.transaction_id(),
            MadPacket::new_unchecked(mad(&f(1))).transaction_id()
        );
        let d = m.data();
        assert_eq!(CmIds(d).remote_comm_id(), 0x0102_0304);
        assert_eq!(rej_reason_of(d), mad::rej_reason::INVALID_SERVICE_ID);
        // The QPs as the messages left them.
        let i0 = qps[0].query().unwrap();
        assert_eq!(
            (i0.state, i0.dest_qpn.get(), i0.expected_psn.get()),
            (qp_state::RTS, 0x3d, (psn0 + 1) & 0xff_ffff)
        );
        assert_eq!(qps[1].query().unwrap().state, qp_state::ERR);
        let got = qps[0].poll_cq(4).unwrap();
        assert_eq!(got.len(), 1, "the SEND completed");
        let sent = parse(0, &f(4)).unwrap().payload;
        assert_eq!(rig.read_mem(mem.bus_addr, sent.len()), sent);
        let c = rig.nic_counters();
        let names = [
            "cm_req_rcvd",
            "cm_rep_sent",
            "cm_rtu_rcvd",
            "cm_rej_sent",
            "cm_dreq_rcvd",
            "cm_drep_sent",
            "cm_mads_dropped",
        ];
        assert_eq!(
            names.map(|n| counter(&c, n)),
            [3, 2, 2, 1, 1, 1, 0],
            "{names:?}"
        );
        for qp in qps {
            qp.destroy().unwrap();
        }
        rdma.dereg_mr(mr).unwrap();
        drop(mem);
        let (out, err) = rig.finish();
        assert_eq!(err, None);
        assert_eq!(out.unwrap().ledger_errors, 0);
    }
}

/// rping (`roce__rping.pcap`): one connection to port 7174 whose REQ asks for one READ each
/// way; the REP offers the same, and the DREQ at the end gets rxe's DREP.
#[test]
fn rping_connection_is_accepted_and_torn_down_as_rxe_did() {
    let cap = frames("rping");
    let f = |n: usize| cap[n - 1].clone();
    let c0 = cm_value(0);
    let wire = vec![
        f(1),
        edit(&f(3), 4, &c0.to_be_bytes()),
        edit(&f(64), 4, &c0.to_be_bytes()),
    ];
    for t in splitrx_harness::targets_from_env() {
        let mut rig = RoceRig::up(t.as_ref(), wire.clone(), 16 * 4096, 64 * 4096).unwrap();
        let rdma = rig.rdma.clone();
        let pd = rdma.alloc_pd();
        let mut qp = rdma
            .create_qp(&QpInit {
                qpn: 0x2b,
                qp_type: QpType::Rc,
                pd,
                rq_depth: 4,
                cq_depth: 8,
                srqn: None,
                sq_depth: 0,
            })
            .unwrap();
        qp.to_init(access::REMOTE_WRITE | access::REMOTE_READ, 0)
            .unwrap();
        rdma.cm_listen(rdma_cm_service_id(RDMA_PS_TCP, 0x1c06), &qp)
            .unwrap();
        rig.start();
        let (tx, ok) = rig.settle(2, Duration::from_secs(20));
        assert!(ok && tx.len() == 2, "REP and DREP, got {}", tx.len());
        check_rep(&tx[0], &f(2), 0);
        let drep = f(65);
        let (g, w) = (mad(&tx[1]), mad(&drep));
        assert_eq!(path(&tx[1]), path(&drep));
        assert_eq!(&g[..mad::HEADER_LEN], &w[..mad::HEADER_LEN]);
        assert_eq!(CmIds(&g[mad::HEADER_LEN..]).local_comm_id(), c0);
        assert_eq!(&g[mad::HEADER_LEN + 4..], &w[mad::HEADER_LEN + 4..]);
        assert_eq!(qp.query().unwrap().state, qp_state::ERR);
        qp.destroy().unwrap();
        let (out, err) = rig.finish();
        assert_eq!(err, None);
        assert_eq!(out.unwrap().ledger_errors, 0);
    }
}

/// `serve` in CM mode on the sim board linked to this test over UDP: the REQ of
/// `roce__rdma_cm.pcap` (port 0x4853) is answered with a REP on the socket; the RTU built from
/// that REP's comm ID and a SEND from its starting PSN connect the QP and deliver one message.
#[test]
fn serve_accepts_an_rdma_cm_connection_over_a_udp_link() {
    use splitrx_harness::roce::{serve, ServeConfig};
    use splitrx_harness::sim::SimTarget;
    use std::net::UdpSocket;
    use std::time::Instant;
    let cap = frames("rdma_cm");
    let f = |n: usize| cap[n - 1].clone();
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let board_addr = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let target = SimTarget {
        link: Some((board_addr, peer.local_addr().unwrap())),
        ..SimTarget::default()
    };
    let cfg = ServeConfig {
        qpn: 0x3b,
        cm_port: Some(0x4853),
        ..ServeConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let t0 = Instant::now();
        serve(
            &target,
            &cfg,
            |i| tx.send(i.clone()).unwrap(),
            |_, received| received >= 1 || t0.elapsed() > Duration::from_secs(20),
        )
    });
    let info = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the responder came up");
    assert_eq!(
        info.cm_service_id,
        Some(rdma_cm_service_id(RDMA_PS_TCP, 0x4853))
    );
    let mut buf = [0u8; 2048];
    peer.send_to(&f(1), board_addr).unwrap();
    let (n, _) = peer.recv_from(&mut buf).expect("a REP");
    let rep_frame = buf[..n].to_vec();
    check_rep_srq(&rep_frame, &f(2), 0, true);
    let rep = CmRep::parse(&mad(&rep_frame)[mad::HEADER_LEN..]);
    peer.send_to(
        &edit(&f(3), 4, &rep.local_comm_id.to_be_bytes()),
        board_addr,
    )
    .unwrap();
    let send = splitrx_harness::roce::aim(&f(4), 0x3b, rep.starting_psn, None).unwrap();
    peer.send_to(&send, board_addr).unwrap();
    let (n, _) = peer.recv_from(&mut buf).expect("an ACK");
    let ack = parse(0, &buf[..n]).unwrap();
    assert_eq!(
        (ack.opcode, ack.dest_qp, ack.psn),
        (0x11, 0x3d, rep.starting_psn)
    );
    let r = server.join().unwrap().unwrap();
    assert_eq!((r.received, r.received_bytes), (1, 16));
    assert_eq!(r.cm_peer_qpn, Some(0x3d));
    assert_eq!(r.audit_error, None);
    assert_eq!(
        counter(&r.nic_counters, "cm_rtu_rcvd"),
        1,
        "the RTU connected the QP"
    );
}
