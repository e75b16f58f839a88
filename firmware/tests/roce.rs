//! The RoCEv2 responder over the fakes: control ops, placement, ACK/NAK, READ, atomics,
//! faults, CNP. Every test checks the exact response packets (opcode, PSN, AETH syndrome, MSN,
//! payload, ICRC), the counters, and the whole memory image around the regions (guard bytes:
//! nothing outside what the rules allow was written).

use splitrx_firmware::config::MAX_QPS;
use splitrx_firmware::stats::dev;
use splitrx_firmware::testing::roce::{parse_response, request, Requester, Response, REQUESTER_V4};
use splitrx_firmware::testing::{HostQp, Testbed, MR_BUS};
use splitrx_shared::abi::{
    access, qp_attr, qp_state, qp_type, wc_flags, wc_opcode, wc_status, CtrlOp, CtrlStatus,
    ModifyQpArgs, MrArgs, QpArgs, QpInfo, RoceCqe, SrqArgs, NO_SRQ,
};
use splitrx_shared::wire::roce::{opcode as op, AtomicEth, Deth, Ieth, ImmDt, Reth, RoceRepr};
use zerocopy::little_endian::U32;

const QPN: u32 = 0x11;
const PEER: u32 = 0x22;
const PD: u32 = 7;
const PSN0: u32 = 100;
/// The data MR (remote write/read/atomic) and the receive-buffer MR (local write only).
const DATA_RKEY: u32 = 0x1000;
const DATA_LKEY: u32 = 0x1001;
const RECV_RKEY: u32 = 0x2000;
const RECV_LKEY: u32 = 0x2001;
const IOVA: u64 = 0x7f00_0000_0000;
const DATA_BUS: u64 = MR_BUS;
const MR_LEN: u64 = 16 << 10;
const RECV_BUS: u64 = MR_BUS + (32 << 10);
/// The memory image the tests compare: guard bytes before, between and after both MRs.
const IMG_BUS: u64 = MR_BUS - 4096;
const IMG_LEN: usize = (64 << 10) + 4096;
const GUARD: u8 = 0xa5;
const ALL: u32 =
    access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ | access::REMOTE_ATOMIC;
const ACK: u8 = 0x1f;

struct Rig {
    tb: Testbed,
    qp: HostQp,
    req: Requester,
    /// Expected bytes of `[IMG_BUS, IMG_BUS + IMG_LEN)`.
    img: Vec<u8>,
}

impl Rig {
    /// One QP of `ty`, connected (MTU code `mtu`), both MRs registered, memory filled with
    /// guard bytes.
    fn new(ty: u8, mtu: u8) -> Rig {
        Self::with(ty, mtu, REQUESTER_V4, PSN0)
    }
    fn with(ty: u8, mtu: u8, req: Requester, psn0: u32) -> Rig {
        let mut tb = Testbed::new();
        tb.mem.fill(IMG_BUS, IMG_LEN, GUARD);
        assert_eq!(
            tb.register_mr(DATA_BUS, MR_LEN, IOVA, DATA_RKEY, DATA_LKEY, ALL, PD),
            CtrlStatus::Ok
        );
        assert_eq!(
            tb.register_mr(
                RECV_BUS,
                MR_LEN,
                0x10_0000,
                RECV_RKEY,
                RECV_LKEY,
                access::LOCAL_WRITE,
                PD
            ),
            CtrlStatus::Ok
        );
        let (st, qp) = tb.create_qp(QPN, PD, ty, NO_SRQ, 16, 16);
        assert_eq!(st, CtrlStatus::Ok);
        assert_eq!(
            tb.connect_qp(QPN, PEER, req.gid(), 0xd000, psn0, mtu, ALL, 0x1234_5678),
            CtrlStatus::Ok
        );
        Rig {
            tb,
            qp,
            req,
            img: vec![GUARD; IMG_LEN],
        }
    }

    /// Feeds one request frame; returns the responses it caused.
    fn feed(&mut self, frame: &[u8]) -> Vec<Response> {
        self.tb.fw.hal_mut().rx.push(frame);
        while self.tb.fw.poll() {}
        self.tb
            .take_sent()
            .iter()
            .map(|f| {
                let r = parse_response(f).expect("responder packet parses");
                assert!(r.icrc_ok, "responder packet has a valid ICRC");
                r
            })
            .collect()
    }

    fn send(&mut self, r: &RoceRepr, payload: &[u8]) -> Vec<Response> {
        let f = self.req.frame(r, payload);
        self.feed(&f)
    }

    /// Expect `data` at bus address `bus` in the image.
    fn expect(&mut self, bus: u64, data: &[u8]) {
        let o = (bus - IMG_BUS) as usize;
        self.img[o..o + data.len()].copy_from_slice(data);
    }

    /// Fills real memory and the image.
    fn preload(&mut self, bus: u64, data: &[u8]) {
        assert!(self.tb.mem.write(bus, data));
        self.expect(bus, data);
    }

    /// The whole image equals memory (guard bytes included).
    fn check_memory(&self) {
        let got = self.tb.mem.read(IMG_BUS, IMG_LEN);
        if let Some(i) = (0..IMG_LEN).find(|&i| got[i] != self.img[i]) {
            panic!(
                "memory differs at bus {:#x} (image offset {i}): got {:#04x}, want {:#04x}",
                IMG_BUS + i as u64,
                got[i],
                self.img[i]
            );
        }
    }

    fn stat(&self, i: usize) -> u64 {
        self.tb.fw.device_stats().get(i)
    }

    fn info(&mut self) -> QpInfo {
        let r = self
            .tb
            .call(CtrlOp::QueryQp, &QpArgs { qpn: U32::new(QPN) });
        assert_eq!(r[0].status(), Some(CtrlStatus::Ok));
        r[0].args().unwrap()
    }
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// (opcode, destination QP, PSN, AETH syndrome, MSN) of a response.
fn ack_of(r: &Response) -> (u8, u32, u32, Option<u8>, Option<u32>) {
    (
        r.roce.bth.opcode,
        r.roce.bth.dest_qp,
        r.roce.bth.psn,
        r.roce.aeth.map(|a| a.syndrome),
        r.roce.aeth.map(|a| a.msn),
    )
}

fn write_only(psn: u32, va: u64, rkey: u32, data: &[u8], ack: bool) -> RoceRepr {
    let mut r = request(op::RC_WRITE_ONLY, QPN, psn, ack, data.len());
    r.reth = Some(Reth {
        va,
        rkey,
        dma_len: data.len() as u32,
    });
    r
}

#[allow(clippy::too_many_arguments)]
fn cqe(
    wr_id: u64,
    byte_len: u32,
    imm: u32,
    status: u8,
    opcode: u8,
    flags: u16,
    src_qp: u32,
    psn: u32,
) -> RoceCqe {
    RoceCqe {
        wr_id: wr_id.into(),
        byte_len: byte_len.into(),
        imm_or_inv: imm.into(),
        qpn: QPN.into(),
        src_qp: src_qp.into(),
        status,
        opcode,
        wc_flags: flags.into(),
        psn: psn.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Control ops
// ---------------------------------------------------------------------------------------------

#[test]
fn qp_table_fills_to_capacity_and_refuses_the_next_create() {
    let mut tb = Testbed::new();
    let mut qps = Vec::new();
    for i in 0..MAX_QPS as u32 {
        let (st, q) = tb.create_qp(2 + i, PD, qp_type::RC, NO_SRQ, 1, 1);
        assert_eq!(st, CtrlStatus::Ok, "qp {i}");
        qps.push(q);
    }
    assert_eq!(tb.fw.roce().qp_count(), MAX_QPS);
    let (st, _) = tb.create_qp(0x10_0000, PD, qp_type::RC, NO_SRQ, 1, 1);
    assert_eq!(st, CtrlStatus::NoSpace);
    // An existing QPN is Exists even when full; after one destroy a create fits again.
    assert_eq!(
        tb.create_qp(2, PD, qp_type::RC, NO_SRQ, 1, 1).0,
        CtrlStatus::Exists
    );
    assert_eq!(
        tb.status(CtrlOp::DestroyQp, &QpArgs { qpn: U32::new(2) }),
        CtrlStatus::Ok
    );
    assert_eq!(
        tb.create_qp(0x10_0000, PD, qp_type::RC, NO_SRQ, 1, 1).0,
        CtrlStatus::Ok
    );
    #[allow(clippy::assertions_on_constants)]
    {
        assert!(MAX_QPS >= 1024, "cap-host: at least 1024 QPs");
    }
}

#[test]
fn control_ops_refuse_bad_requests_with_exact_statuses() {
    let mut tb = Testbed::new();
    // MR: zero length, unknown access bit, outside every window, duplicate keys.
    assert_eq!(
        tb.register_mr(MR_BUS, 0, 0, 1, 2, ALL, PD),
        CtrlStatus::Invalid
    );
    assert_eq!(
        tb.register_mr(MR_BUS, 64, 0, 1, 2, 0x100, PD),
        CtrlStatus::Invalid
    );
    assert_eq!(
        tb.register_mr(0x10, 64, 0, 1, 2, ALL, PD),
        CtrlStatus::Invalid
    );
    assert_eq!(tb.register_mr(MR_BUS, 64, 0, 1, 2, ALL, PD), CtrlStatus::Ok);
    assert_eq!(
        tb.register_mr(MR_BUS, 64, 0, 1, 3, ALL, PD),
        CtrlStatus::Exists
    );
    assert_eq!(
        tb.register_mr(MR_BUS, 64, 0, 4, 2, ALL, PD),
        CtrlStatus::Exists
    );
    assert_eq!(
        tb.status(CtrlOp::DeregisterMr, &MrArgs { lkey: U32::new(9) }),
        CtrlStatus::NotFound
    );
    // QP: QPN 0/1 and > 24 bits, unknown type, unknown SRQ.
    assert_eq!(
        tb.create_qp(1, PD, qp_type::RC, NO_SRQ, 4, 4).0,
        CtrlStatus::Invalid
    );
    assert_eq!(
        tb.create_qp(1 << 24, PD, qp_type::RC, NO_SRQ, 4, 4).0,
        CtrlStatus::Invalid
    );
    assert_eq!(tb.create_qp(5, PD, 9, NO_SRQ, 4, 4).0, CtrlStatus::Invalid);
    assert_eq!(
        tb.create_qp(5, PD, qp_type::RC, 77, 4, 4).0,
        CtrlStatus::NotFound
    );
    let (st, q5) = tb.create_qp(5, PD, qp_type::RC, NO_SRQ, 4, 4);
    assert_eq!(st, CtrlStatus::Ok);
    // A region overlapping QP 5's: BadRegion.
    let next = tb.next_region;
    tb.next_region = q5.region + 64;
    assert_eq!(
        tb.create_qp(6, PD, qp_type::RC, NO_SRQ, 4, 4).0,
        CtrlStatus::BadRegion
    );
    tb.next_region = next + 4096;
    // ModifyQp: RESET -> RTR is not a transition; INIT -> RTR needs MTU, dest QPN, PSN, AV.
    let mut a = ModifyQpArgs {
        qpn: U32::new(5),
        attr_mask: U32::new(qp_attr::STATE),
        state: qp_state::RTR,
        ..Default::default()
    };
    assert_eq!(tb.modify_qp(&a), CtrlStatus::Invalid);
    a.state = qp_state::INIT;
    assert_eq!(tb.modify_qp(&a), CtrlStatus::Ok);
    a.state = qp_state::RTR;
    assert_eq!(tb.modify_qp(&a), CtrlStatus::Invalid);
    a.attr_mask = U32::new(
        qp_attr::STATE | qp_attr::PATH_MTU | qp_attr::DEST_QPN | qp_attr::RQ_PSN | qp_attr::AV,
    );
    a.path_mtu = 6;
    assert_eq!(tb.modify_qp(&a), CtrlStatus::Invalid, "MTU code 6");
    a.path_mtu = 3;
    a.rq_psn = U32::new(1 << 24);
    assert_eq!(tb.modify_qp(&a), CtrlStatus::Invalid, "25-bit PSN");
    a.rq_psn = U32::new(0);
    a.attr_mask = U32::new(a.attr_mask.get() | (1 << 2));
    assert_eq!(
        tb.modify_qp(&a),
        CtrlStatus::Invalid,
        "unknown attribute bit"
    );
    a.attr_mask = U32::new(a.attr_mask.get() & !(1 << 2));
    assert_eq!(tb.modify_qp(&a), CtrlStatus::Ok);
    a.qpn = U32::new(99);
    assert_eq!(tb.modify_qp(&a), CtrlStatus::NotFound);
    // SRQ: Busy while a QP uses it.
    let (st, _srq) = tb.create_srq(40, PD, 8);
    assert_eq!(st, CtrlStatus::Ok);
    assert_eq!(tb.create_srq(40, PD, 8).0, CtrlStatus::Exists);
    let (st, _q7) = tb.create_qp(7, PD, qp_type::UD, 40, 0, 4);
    assert_eq!(st, CtrlStatus::Ok);
    assert_eq!(
        tb.status(CtrlOp::DestroySrq, &SrqArgs { srqn: U32::new(40) }),
        CtrlStatus::Busy
    );
    assert_eq!(
        tb.status(CtrlOp::DestroyQp, &QpArgs { qpn: U32::new(7) }),
        CtrlStatus::Ok
    );
    assert_eq!(
        tb.status(CtrlOp::DestroySrq, &SrqArgs { srqn: U32::new(40) }),
        CtrlStatus::Ok
    );
    assert_eq!(
        tb.status(CtrlOp::DestroySrq, &SrqArgs { srqn: U32::new(40) }),
        CtrlStatus::NotFound
    );
}

#[test]
fn query_qp_reports_state_psn_and_msn() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let i = rig.info();
    assert_eq!(
        (
            i.qpn.get(),
            i.state,
            i.qp_type,
            i.expected_psn.get(),
            i.msn.get(),
            i.dest_qpn.get(),
            i.held_wqes.get()
        ),
        (QPN, qp_state::RTS, qp_type::RC, PSN0, 0, PEER, 0)
    );
    let d = payload(8, 1);
    rig.send(&write_only(PSN0, IOVA, DATA_RKEY, &d, false), &d);
    let i = rig.info();
    assert_eq!((i.expected_psn.get(), i.msn.get()), (PSN0 + 1, 1));
}

// ---------------------------------------------------------------------------------------------
// WRITE, SEND, ACK
// ---------------------------------------------------------------------------------------------

#[test]
fn write_only_places_at_the_rkey_offset_and_acks() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let d = payload(100, 7);
    let r = rig.send(&write_only(PSN0, IOVA + 16, DATA_RKEY, &d, true), &d);
    assert_eq!(r.len(), 1);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(ACK), Some(1)));
    // Addresses swapped, the QP's UDP source port, VLAN none.
    let route = r[0].route;
    assert_eq!(
        (route.eth.dst_addr, route.eth.src_addr),
        (rig.req.mac, rig.req.nic_mac)
    );
    assert_eq!(route.sport, 0xd000);
    rig.expect(DATA_BUS + 16, &d);
    rig.check_memory();
    assert_eq!(
        (
            rig.stat(dev::ROCE_RCVD_PKTS),
            rig.stat(dev::ROCE_SENT_PKTS),
            rig.stat(dev::ROCE_RX_WRITE_REQUESTS)
        ),
        (1, 1, 1)
    );
    assert_eq!(rig.stat(dev::DROP_NO_QUEUE), 0, "not on the RX path");
}

#[test]
fn multi_packet_write_acks_only_where_asked() {
    let mut rig = Rig::new(qp_type::RC, 1); // 256-byte MTU
    let d = payload(600, 3);
    let mut first = request(op::RC_WRITE_FIRST, QPN, PSN0, false, 256);
    first.reth = Some(Reth {
        va: IOVA + 1000,
        rkey: DATA_RKEY,
        dma_len: 600,
    });
    assert!(rig.send(&first, &d[..256]).is_empty());
    assert!(rig
        .send(
            &request(op::RC_WRITE_MIDDLE, QPN, PSN0 + 1, false, 256),
            &d[256..512]
        )
        .is_empty());
    let r = rig.send(
        &request(op::RC_WRITE_LAST, QPN, PSN0 + 2, true, 88),
        &d[512..],
    );
    assert_eq!(
        r.iter().map(ack_of).collect::<Vec<_>>(),
        vec![(op::RC_ACK, PEER, PSN0 + 2, Some(ACK), Some(1))]
    );
    rig.expect(DATA_BUS + 1000, &d);
    rig.check_memory();
}

#[test]
fn send_first_middle_last_fills_the_posted_buffer_and_completes() {
    let mut rig = Rig::new(qp_type::RC, 1);
    rig.qp.post(0xabc, RECV_BUS + 64, 1024, RECV_LKEY);
    let d = payload(700, 9);
    assert!(rig
        .send(
            &request(op::RC_SEND_FIRST, QPN, PSN0, false, 256),
            &d[..256]
        )
        .is_empty());
    assert_eq!(rig.info().held_wqes.get(), 1);
    rig.send(
        &request(op::RC_SEND_MIDDLE, QPN, PSN0 + 1, false, 256),
        &d[256..512],
    );
    let mut last = request(op::RC_SEND_LAST_IMM, QPN, PSN0 + 2, true, 188);
    last.imm_dt = Some(ImmDt(0xdead_beef));
    let r = rig.send(&last, &d[512..]);
    assert_eq!(
        r.iter().map(ack_of).collect::<Vec<_>>(),
        vec![(op::RC_ACK, PEER, PSN0 + 2, Some(ACK), Some(1))]
    );
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            0xabc,
            700,
            0xdead_beef,
            wc_status::SUCCESS,
            wc_opcode::RECV,
            wc_flags::WITH_IMM,
            PEER,
            PSN0 + 2
        )]
    );
    rig.expect(RECV_BUS + 64, &d);
    rig.check_memory();
    assert_eq!(rig.stat(dev::ROCE_RECV_COMPLETED), 1);
}

#[test]
fn write_with_immediate_consumes_a_wqe_and_send_with_invalidate_revokes_the_mr() {
    let mut rig = Rig::new(qp_type::RC, 3);
    rig.qp.post(1, RECV_BUS, 64, RECV_LKEY);
    rig.qp.post(2, RECV_BUS + 64, 64, RECV_LKEY);
    let d = payload(40, 1);
    let mut w = request(op::RC_WRITE_ONLY_IMM, QPN, PSN0, true, 40);
    w.reth = Some(Reth {
        va: IOVA,
        rkey: DATA_RKEY,
        dma_len: 40,
    });
    w.imm_dt = Some(ImmDt(7));
    let r = rig.send(&w, &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(ACK), Some(1)));
    rig.expect(DATA_BUS, &d);
    let mut s = request(op::RC_SEND_ONLY_INV, QPN, PSN0 + 1, true, 4);
    s.ieth = Some(Ieth(DATA_RKEY));
    let r = rig.send(&s, &[1, 2, 3, 4]);
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ACK, PEER, PSN0 + 1, Some(ACK), Some(2))
    );
    rig.expect(RECV_BUS + 64, &[1, 2, 3, 4]);
    assert_eq!(
        rig.qp.cqes(),
        vec![
            cqe(
                1,
                40,
                7,
                wc_status::SUCCESS,
                wc_opcode::RECV_RDMA_WITH_IMM,
                wc_flags::WITH_IMM,
                PEER,
                PSN0
            ),
            cqe(
                2,
                4,
                DATA_RKEY,
                wc_status::SUCCESS,
                wc_opcode::RECV,
                wc_flags::WITH_INV,
                PEER,
                PSN0 + 1
            ),
        ]
    );
    // The invalidated rkey no longer works: remote access NAK.
    let r = rig.send(&write_only(PSN0 + 2, IOVA, DATA_RKEY, &d, true), &d);
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ACK, PEER, PSN0 + 2, Some(0x62), Some(2))
    );
    rig.check_memory();
}

#[test]
fn ud_send_puts_the_grh_first_and_checks_the_qkey() {
    let mut rig = Rig::new(qp_type::UD, 5);
    rig.qp.post(5, RECV_BUS, 256, RECV_LKEY);
    let d = payload(100, 2);
    let mut s = request(op::UD_SEND_ONLY, QPN, 0x33, false, 100);
    s.deth = Some(Deth {
        qkey: 0x1234_5678,
        src_qp: 0x99,
    });
    let f = rig.req.frame(&s, &d);
    assert!(rig.feed(&f).is_empty(), "UD: no ACK");
    // GRH area: 20 zero bytes, then the request's IPv4 header.
    let mut grh = vec![0u8; 20];
    grh.extend_from_slice(&f[14..34]);
    rig.expect(RECV_BUS, &grh);
    rig.expect(RECV_BUS + 40, &d);
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            5,
            140,
            0,
            wc_status::SUCCESS,
            wc_opcode::RECV,
            wc_flags::GRH,
            0x99,
            0x33
        )]
    );
    // A wrong Q_Key is dropped and counted; no WQE is consumed.
    rig.qp.post(6, RECV_BUS + 256, 256, RECV_LKEY);
    s.deth = Some(Deth {
        qkey: 1,
        src_qp: 0x99,
    });
    assert!(rig.send(&s, &d).is_empty());
    assert_eq!(rig.stat(dev::ROCE_QKEY_MISMATCH), 1);
    assert!(rig.qp.cqes().is_empty());
    rig.check_memory();
}

#[test]
fn uc_write_and_send_need_no_acks_and_a_gap_drops_the_message() {
    let mut rig = Rig::new(qp_type::UC, 1);
    rig.qp.post(1, RECV_BUS, 1024, RECV_LKEY);
    let d = payload(512, 4);
    // SEND FIRST at PSN0, its LAST lost; a new SEND ONLY at PSN0 + 5 reuses the WQE.
    assert!(rig
        .send(&request(op::UC_SEND_FIRST, QPN, PSN0, true, 256), &d[..256])
        .is_empty());
    assert!(rig
        .send(
            &request(op::UC_SEND_MIDDLE, QPN, PSN0 + 2, false, 256),
            &d[256..]
        )
        .is_empty());
    assert!(rig
        .send(&request(op::UC_SEND_ONLY, QPN, PSN0 + 5, false, 8), &d[..8])
        .is_empty());
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            1,
            8,
            0,
            wc_status::SUCCESS,
            wc_opcode::RECV,
            0,
            PEER,
            PSN0 + 5
        )]
    );
    // The first 256 bytes of the broken message were placed, then overwritten by 8.
    rig.expect(RECV_BUS, &d[..256]);
    rig.expect(RECV_BUS, &d[..8]);
    rig.check_memory();
    assert_eq!(rig.stat(dev::ROCE_SENT_PKTS), 0);
}

#[test]
fn roce_frames_for_no_qp_stay_on_the_rx_path() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let d = payload(16, 0);
    let mut r = write_only(PSN0, IOVA, DATA_RKEY, &d, true);
    r.bth.dest_qp = 0x4444;
    assert!(rig.send(&r, &d).is_empty());
    assert_eq!(
        (rig.stat(dev::DROP_NO_QUEUE), rig.stat(dev::ROCE_RCVD_PKTS)),
        (1, 0)
    );
    rig.check_memory();
}

#[test]
fn destroy_qp_flushes_the_held_wqe_and_err_flushes_too() {
    let mut rig = Rig::new(qp_type::RC, 1);
    rig.qp.post(0x51, RECV_BUS, 1024, RECV_LKEY);
    rig.qp.post(0x52, RECV_BUS + 1024, 1024, RECV_LKEY);
    let d = payload(256, 1);
    rig.send(&request(op::RC_SEND_FIRST, QPN, PSN0, false, 256), &d);
    rig.expect(RECV_BUS, &d);
    assert_eq!(
        rig.tb
            .status(CtrlOp::DestroyQp, &QpArgs { qpn: U32::new(QPN) }),
        CtrlStatus::Ok
    );
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            0x51,
            0,
            0,
            wc_status::WR_FLUSH_ERR,
            wc_opcode::RECV,
            0,
            PEER,
            PSN0 + 1
        )]
    );
    // WQE 0x52 is still in the ring: the host's to take back.
    assert_eq!(rig.stat(dev::ROCE_RESP_CQE_FLUSH_ERROR), 1);
    // Frames for the gone QP go to the RX path.
    rig.send(&request(op::RC_SEND_MIDDLE, QPN, PSN0 + 1, false, 256), &d);
    assert_eq!(rig.stat(dev::DROP_NO_QUEUE), 1);
    rig.check_memory();

    // ModifyQp to ERR flushes as well.
    let mut rig = Rig::new(qp_type::RC, 1);
    rig.qp.post(0x61, RECV_BUS, 1024, RECV_LKEY);
    rig.send(&request(op::RC_SEND_FIRST, QPN, PSN0, false, 256), &d);
    let a = ModifyQpArgs {
        qpn: U32::new(QPN),
        attr_mask: U32::new(qp_attr::STATE),
        state: qp_state::ERR,
        ..Default::default()
    };
    assert_eq!(rig.tb.modify_qp(&a), CtrlStatus::Ok);
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            0x61,
            0,
            0,
            wc_status::WR_FLUSH_ERR,
            wc_opcode::RECV,
            0,
            PEER,
            PSN0 + 1
        )]
    );
    assert_eq!(rig.info().held_wqes.get(), 0);
}

#[test]
fn deregister_mr_is_busy_while_a_held_wqe_names_it() {
    let mut rig = Rig::new(qp_type::RC, 1);
    rig.qp.post(1, RECV_BUS, 1024, RECV_LKEY);
    rig.send(
        &request(op::RC_SEND_FIRST, QPN, PSN0, false, 256),
        &payload(256, 0),
    );
    assert_eq!(
        rig.tb.status(
            CtrlOp::DeregisterMr,
            &MrArgs {
                lkey: U32::new(RECV_LKEY)
            }
        ),
        CtrlStatus::Busy
    );
    assert_eq!(
        rig.tb.status(
            CtrlOp::DeregisterMr,
            &MrArgs {
                lkey: U32::new(DATA_LKEY)
            }
        ),
        CtrlStatus::Ok
    );
}

// ---------------------------------------------------------------------------------------------
// READ and atomics
// ---------------------------------------------------------------------------------------------

fn read_req(psn: u32, va: u64, rkey: u32, len: u32) -> RoceRepr {
    let mut r = request(op::RC_READ_REQUEST, QPN, psn, true, 0);
    r.reth = Some(Reth {
        va,
        rkey,
        dma_len: len,
    });
    r
}

fn atomic_req(opc: u8, psn: u32, va: u64, swap_add: u64, compare: u64) -> RoceRepr {
    let mut r = request(opc, QPN, psn, true, 0);
    r.atomic_eth = Some(AtomicEth {
        va,
        rkey: DATA_RKEY,
        swap_add,
        compare,
    });
    r
}

#[test]
fn read_is_answered_with_mtu_sized_responses_and_a_duplicate_is_re_executed() {
    let mut rig = Rig::new(qp_type::RC, 1);
    let d = payload(600, 5);
    rig.preload(DATA_BUS + 8, &d);
    let r = rig.send(&read_req(PSN0, IOVA + 8, DATA_RKEY, 600), &[]);
    assert_eq!(
        r.iter().map(ack_of).collect::<Vec<_>>(),
        vec![
            (op::RC_READ_RESPONSE_FIRST, PEER, PSN0, Some(ACK), Some(1)),
            (op::RC_READ_RESPONSE_MIDDLE, PEER, PSN0 + 1, None, None),
            (
                op::RC_READ_RESPONSE_LAST,
                PEER,
                PSN0 + 2,
                Some(ACK),
                Some(1)
            ),
        ]
    );
    let got: Vec<u8> = r.iter().flat_map(|x| x.payload.clone()).collect();
    assert_eq!(got, d);
    assert_eq!(r[2].roce.bth.pad_count, 0);
    // A READ consumes one PSN per response packet.
    assert_eq!(rig.info().expected_psn.get(), PSN0 + 3);
    // The whole READ again: re-executed from the saved request.
    let r2 = rig.send(&read_req(PSN0, IOVA + 8, DATA_RKEY, 600), &[]);
    assert_eq!(r2, r);
    // From the middle (the requester lost the FIRST... no: lost the MIDDLE): MIDDLE, LAST.
    let r3 = rig.send(&read_req(PSN0 + 1, IOVA + 8 + 256, DATA_RKEY, 344), &[]);
    assert_eq!(
        r3.iter().map(ack_of).collect::<Vec<_>>(),
        vec![
            (op::RC_READ_RESPONSE_MIDDLE, PEER, PSN0 + 1, None, None),
            (
                op::RC_READ_RESPONSE_LAST,
                PEER,
                PSN0 + 2,
                Some(ACK),
                Some(1)
            ),
        ]
    );
    assert_eq!(r3[0].payload, &d[256..512]);
    // A duplicate asking for more than the original: dropped.
    assert!(rig
        .send(&read_req(PSN0, IOVA + 8, DATA_RKEY, 601), &[])
        .is_empty());
    assert_eq!(rig.stat(dev::ROCE_DUPLICATE_REQUEST), 3);
    assert_eq!(rig.stat(dev::ROCE_RX_READ_REQUESTS), 3);
    // Zero-length READ: one READ RESPONSE ONLY without payload.
    let r4 = rig.send(&read_req(PSN0 + 3, 0, 0, 0), &[]);
    assert_eq!(
        r4.iter().map(ack_of).collect::<Vec<_>>(),
        vec![(
            op::RC_READ_RESPONSE_ONLY,
            PEER,
            PSN0 + 3,
            Some(ACK),
            Some(2)
        )]
    );
    assert!(r4[0].payload.is_empty());
    // An odd length is padded.
    let r5 = rig.send(&read_req(PSN0 + 4, IOVA + 8, DATA_RKEY, 5), &[]);
    assert_eq!(
        (r5[0].roce.bth.pad_count, r5[0].payload.clone()),
        (3, d[..5].to_vec())
    );
    rig.check_memory();
}

#[test]
fn atomics_modify_8_bytes_and_duplicates_replay_the_saved_result() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let at = DATA_BUS + 64;
    rig.preload(at, &10u64.to_le_bytes());
    let fa = atomic_req(op::RC_FETCH_ADD, PSN0, IOVA + 64, 5, 0);
    let r = rig.send(&fa, &[]);
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ATOMIC_ACK, PEER, PSN0, Some(ACK), Some(1))
    );
    assert_eq!(r[0].roce.atomic_ack_eth.map(|a| a.0), Some(10));
    let r = rig.send(
        &atomic_req(op::RC_COMPARE_SWAP, PSN0 + 1, IOVA + 64, 99, 15),
        &[],
    );
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ATOMIC_ACK, PEER, PSN0 + 1, Some(ACK), Some(2))
    );
    assert_eq!(r[0].roce.atomic_ack_eth.map(|a| a.0), Some(15));
    let r = rig.send(
        &atomic_req(op::RC_COMPARE_SWAP, PSN0 + 2, IOVA + 64, 7, 1),
        &[],
    );
    assert_eq!(
        r[0].roce.atomic_ack_eth.map(|a| a.0),
        Some(99),
        "compare failed: no swap"
    );
    // The first FetchAdd again: the saved original value and MSN, memory not touched.
    let r = rig.send(&fa, &[]);
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ATOMIC_ACK, PEER, PSN0, Some(ACK), Some(1))
    );
    assert_eq!(r[0].roce.atomic_ack_eth.map(|a| a.0), Some(10));
    rig.expect(at, &99u64.to_le_bytes());
    rig.check_memory();
    assert_eq!(
        (
            rig.stat(dev::ROCE_RX_ATOMIC_REQUESTS),
            rig.stat(dev::ROCE_DUPLICATE_REQUEST)
        ),
        (3, 1)
    );
}

// ---------------------------------------------------------------------------------------------
// Faults (issue 10 item 4)
// ---------------------------------------------------------------------------------------------

#[test]
fn lost_packet_gets_one_psn_sequence_nak_and_recovers_on_retransmit() {
    let mut rig = Rig::new(qp_type::RC, 1);
    let d = payload(600, 8);
    let mut first = request(op::RC_WRITE_FIRST, QPN, PSN0, false, 256);
    first.reth = Some(Reth {
        va: IOVA,
        rkey: DATA_RKEY,
        dma_len: 600,
    });
    let middle = request(op::RC_WRITE_MIDDLE, QPN, PSN0 + 1, false, 256);
    let last = request(op::RC_WRITE_LAST, QPN, PSN0 + 2, true, 88);
    assert!(rig.send(&first, &d[..256]).is_empty());
    // MIDDLE lost: LAST is ahead -> one NAK (PSN-sequence error, the expected PSN).
    let r = rig.send(&last, &d[512..]);
    assert_eq!(
        r.iter().map(ack_of).collect::<Vec<_>>(),
        vec![(op::RC_ACK, PEER, PSN0 + 1, Some(0x60), Some(0))]
    );
    // Further packets ahead of the gap: no more NAKs until it closes.
    assert!(rig.send(&last, &d[512..]).is_empty());
    assert_eq!(rig.stat(dev::ROCE_OUT_OF_SEQ_REQUEST), 2);
    rig.expect(DATA_BUS, &d[..256]);
    rig.check_memory();
    // The requester retransmits from the NAK'd PSN.
    assert!(rig.send(&middle, &d[256..512]).is_empty());
    let r = rig.send(&last, &d[512..]);
    assert_eq!(
        r.iter().map(ack_of).collect::<Vec<_>>(),
        vec![(op::RC_ACK, PEER, PSN0 + 2, Some(ACK), Some(1))]
    );
    rig.expect(DATA_BUS, &d);
    rig.check_memory();
    // A new gap gets a new NAK.
    let r = rig.send(
        &write_only(PSN0 + 5, IOVA, DATA_RKEY, &d[..4], true),
        &d[..4],
    );
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ACK, PEER, PSN0 + 3, Some(0x60), Some(1))
    );
}

#[test]
fn duplicated_packet_is_re_acked_and_not_placed_again() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let d = payload(32, 1);
    let r = rig.send(&write_only(PSN0, IOVA, DATA_RKEY, &d, true), &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(ACK), Some(1)));
    // The duplicate carries other bytes: they must not land. Re-ACKed even without AckReq.
    let other = payload(32, 99);
    let r = rig.send(&write_only(PSN0, IOVA, DATA_RKEY, &other, false), &other);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(ACK), Some(1)));
    rig.expect(DATA_BUS, &d);
    rig.check_memory();
    assert_eq!(rig.stat(dev::ROCE_DUPLICATE_REQUEST), 1);
}

#[test]
fn reordered_packets_nak_then_complete_in_order() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let (a, b) = (payload(16, 1), payload(16, 2));
    let wa = write_only(PSN0, IOVA, DATA_RKEY, &a, true);
    let wb = write_only(PSN0 + 1, IOVA + 16, DATA_RKEY, &b, true);
    let r = rig.send(&wb, &b);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x60), Some(0)));
    let r = rig.send(&wa, &a);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(ACK), Some(1)));
    let r = rig.send(&wb, &b);
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ACK, PEER, PSN0 + 1, Some(ACK), Some(2))
    );
    rig.expect(DATA_BUS, &a);
    rig.expect(DATA_BUS + 16, &b);
    rig.check_memory();
}

#[test]
fn psn_wraps_at_24_bits() {
    let mut rig = Rig::with(qp_type::RC, 1, REQUESTER_V4, 0xff_fffe);
    let d = payload(600, 6);
    let mut first = request(op::RC_WRITE_FIRST, QPN, 0xff_fffe, false, 256);
    first.reth = Some(Reth {
        va: IOVA,
        rkey: DATA_RKEY,
        dma_len: 600,
    });
    rig.send(&first, &d[..256]);
    rig.send(
        &request(op::RC_WRITE_MIDDLE, QPN, 0xff_ffff, false, 256),
        &d[256..512],
    );
    let r = rig.send(&request(op::RC_WRITE_LAST, QPN, 0, true, 88), &d[512..]);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, 0, Some(ACK), Some(1)));
    // 0xfffffe is now a duplicate (behind 1), not 16 million ahead.
    let r = rig.send(
        &write_only(0xff_fffe, IOVA, DATA_RKEY, &d[..4], false),
        &d[..4],
    );
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, 0, Some(ACK), Some(1)));
    rig.expect(DATA_BUS, &d);
    rig.check_memory();
    assert_eq!(rig.info().expected_psn.get(), 1);
}

#[test]
fn bad_rkey_is_a_remote_access_nak_and_the_qp_goes_to_error() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let d = payload(16, 1);
    let r = rig.send(&write_only(PSN0, IOVA, 0x5555, &d, true), &d);
    assert_eq!(
        r.iter().map(ack_of).collect::<Vec<_>>(),
        vec![(op::RC_ACK, PEER, PSN0, Some(0x62), Some(0))]
    );
    assert_eq!(rig.info().state, qp_state::ERR);
    assert_eq!(rig.stat(dev::ROCE_RESP_REMOTE_ACCESS_ERRORS), 1);
    // The QP is in ERR: further requests are dropped.
    assert!(rig
        .send(&write_only(PSN0, IOVA, DATA_RKEY, &d, true), &d)
        .is_empty());
    assert_eq!(rig.stat(dev::ROCE_RESP_DISCARDS), 1);
    // The receive MR's rkey lacks REMOTE_WRITE: also a remote access error.
    let mut rig = Rig::new(qp_type::RC, 3);
    let r = rig.send(&write_only(PSN0, 0x10_0000, RECV_RKEY, &d, true), &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x62), Some(0)));
    rig.check_memory();
}

#[test]
fn out_of_range_write_is_refused_before_any_byte_lands() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let d = payload(16, 1);
    let r = rig.send(
        &write_only(PSN0, IOVA + MR_LEN - 8, DATA_RKEY, &d, true),
        &d,
    );
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x62), Some(0)));
    // Below the MR's iova, and a length that wraps.
    let mut rig2 = Rig::new(qp_type::RC, 3);
    let r = rig2.send(&write_only(PSN0, IOVA - 8, DATA_RKEY, &d, true), &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x62), Some(0)));
    let mut rig3 = Rig::new(qp_type::RC, 3);
    let mut w = write_only(PSN0, u64::MAX - 4, DATA_RKEY, &d, true);
    w.reth = Some(Reth {
        va: u64::MAX - 4,
        rkey: DATA_RKEY,
        dma_len: 16,
    });
    let r = rig3.send(&w, &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x62), Some(0)));
    // A WRITE ONLY whose payload differs from the RETH length: invalid request.
    let mut rig4 = Rig::new(qp_type::RC, 3);
    let mut w = write_only(PSN0, IOVA, DATA_RKEY, &d, true);
    w.reth = Some(Reth {
        va: IOVA,
        rkey: DATA_RKEY,
        dma_len: 32,
    });
    let r = rig4.send(&w, &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x61), Some(0)));
    for r in [rig, rig2, rig3, rig4] {
        r.check_memory();
    }
}

#[test]
fn too_long_send_for_the_posted_buffer_completes_in_error() {
    let mut rig = Rig::new(qp_type::RC, 3);
    rig.qp.post(9, RECV_BUS, 64, RECV_LKEY);
    let d = payload(100, 1);
    let r = rig.send(&request(op::RC_SEND_ONLY, QPN, PSN0, true, 100), &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x61), Some(0)));
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            9,
            0,
            0,
            wc_status::LOC_LEN_ERR,
            wc_opcode::RECV,
            0,
            PEER,
            PSN0
        )]
    );
    assert_eq!(rig.info().state, qp_state::ERR);
    assert_eq!(rig.stat(dev::ROCE_RESP_LOCAL_LENGTH_ERROR), 1);
    rig.check_memory();
}

#[test]
fn no_posted_buffer_is_an_rnr_nak_and_the_retry_succeeds() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let d = payload(20, 1);
    let s = request(op::RC_SEND_ONLY, QPN, PSN0, true, 20);
    let r = rig.send(&s, &d);
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ACK, PEER, PSN0, Some(0x20 | 12), Some(0))
    );
    assert_eq!(rig.info().state, qp_state::RTS);
    assert_eq!(rig.stat(dev::ROCE_SEND_RNR_ERR), 1);
    rig.qp.post(3, RECV_BUS + 8, 64, RECV_LKEY);
    let r = rig.send(&s, &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(ACK), Some(1)));
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            3,
            20,
            0,
            wc_status::SUCCESS,
            wc_opcode::RECV,
            0,
            PEER,
            PSN0
        )]
    );
    rig.expect(RECV_BUS + 8, &d);
    // A WQE outside its MR (or naming another MR's lkey) completes LOC_PROT_ERR, NAK 0x63.
    rig.qp.post(4, RECV_BUS + MR_LEN - 8, 64, RECV_LKEY);
    let r = rig.send(&request(op::RC_SEND_ONLY, QPN, PSN0 + 1, true, 4), &d[..4]);
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ACK, PEER, PSN0 + 1, Some(0x63), Some(1))
    );
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            4,
            0,
            0,
            wc_status::LOC_PROT_ERR,
            wc_opcode::RECV,
            0,
            PEER,
            PSN0 + 1
        )]
    );
    assert_eq!(rig.stat(dev::ROCE_RESP_LOCAL_PROT_ERROR), 1);
    assert_eq!(rig.stat(dev::ROCE_RESP_CQE_ERROR), 1, "counted once");
    rig.check_memory();
}

#[test]
fn bad_icrc_is_dropped_and_counted() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let d = payload(16, 1);
    let mut f = rig
        .req
        .frame(&write_only(PSN0, IOVA, DATA_RKEY, &d, true), &d);
    let n = f.len();
    f[n - 1] ^= 0x40;
    assert!(rig.feed(&f).is_empty());
    assert_eq!(
        (
            rig.stat(dev::ROCE_ICRC_ERRORS),
            rig.stat(dev::ROCE_RCVD_PKTS)
        ),
        (1, 1)
    );
    assert_eq!(rig.info().expected_psn.get(), PSN0);
    rig.check_memory();
}

#[test]
fn truncated_bth_never_reaches_the_responder() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let d = payload(16, 1);
    let mut f = rig
        .req
        .frame(&write_only(PSN0, IOVA, DATA_RKEY, &d, true), &d);
    // Keep 10 bytes of the BTH; fix the IPv4 and UDP lengths to match.
    f.truncate(14 + 20 + 8 + 10);
    f[16..18].copy_from_slice(&(20u16 + 8 + 10).to_be_bytes());
    f[38..40].copy_from_slice(&18u16.to_be_bytes());
    assert!(rig.feed(&f).is_empty());
    assert_eq!(
        (rig.stat(dev::ROCE_RCVD_PKTS), rig.stat(dev::DROP_NO_QUEUE)),
        (0, 1)
    );
    rig.check_memory();
}

#[test]
fn read_larger_than_the_region_is_a_remote_access_nak() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let r = rig.send(&read_req(PSN0, IOVA + MR_LEN - 100, DATA_RKEY, 200), &[]);
    assert_eq!(
        r.iter().map(ack_of).collect::<Vec<_>>(),
        vec![(op::RC_ACK, PEER, PSN0, Some(0x62), Some(0))]
    );
    assert_eq!(rig.info().state, qp_state::ERR);
    rig.check_memory();
}

#[test]
fn misaligned_atomic_is_an_invalid_request_nak() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let r = rig.send(&atomic_req(op::RC_FETCH_ADD, PSN0, IOVA + 4, 1, 0), &[]);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x61), Some(0)));
    assert_eq!(rig.stat(dev::ROCE_RESP_INVALID_REQUEST), 1);
    rig.check_memory();
}

#[test]
fn opcode_sequence_and_mtu_violations_are_invalid_requests() {
    // A MIDDLE without a FIRST.
    let mut rig = Rig::new(qp_type::RC, 1);
    let d = payload(256, 1);
    let r = rig.send(&request(op::RC_WRITE_MIDDLE, QPN, PSN0, true, 256), &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x61), Some(0)));
    // A FIRST shorter than the MTU.
    let mut rig = Rig::new(qp_type::RC, 1);
    rig.qp.post(1, RECV_BUS, 1024, RECV_LKEY);
    let r = rig.send(&request(op::RC_SEND_FIRST, QPN, PSN0, true, 128), &d[..128]);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x61), Some(0)));
    // A SEND FIRST followed by a WRITE: the held WQE completes REM_INV_REQ_ERR.
    let mut rig = Rig::new(qp_type::RC, 1);
    rig.qp.post(2, RECV_BUS, 1024, RECV_LKEY);
    rig.send(&request(op::RC_SEND_FIRST, QPN, PSN0, false, 256), &d);
    let r = rig.send(
        &write_only(PSN0 + 1, IOVA, DATA_RKEY, &d[..8], true),
        &d[..8],
    );
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ACK, PEER, PSN0 + 1, Some(0x61), Some(0))
    );
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            2,
            256,
            0,
            wc_status::REM_INV_REQ_ERR,
            wc_opcode::RECV,
            0,
            PEER,
            PSN0 + 1
        )]
    );
    rig.expect(RECV_BUS, &d);
    rig.check_memory();
}

// ---------------------------------------------------------------------------------------------
// ECN / CNP, IPv6, VLAN
// ---------------------------------------------------------------------------------------------

#[test]
fn ce_marked_packets_send_one_cnp_per_interval() {
    let mut req = REQUESTER_V4;
    req.tos = 3; // ECN CE
    let mut rig = Rig::with(qp_type::RC, 3, req, PSN0);
    let d = payload(8, 1);
    let r = rig.send(&write_only(PSN0, IOVA, DATA_RKEY, &d, true), &d);
    assert_eq!(
        r.iter().map(ack_of).collect::<Vec<_>>(),
        vec![
            (op::CNP, PEER, 0, None, None),
            (op::RC_ACK, PEER, PSN0, Some(ACK), Some(1))
        ]
    );
    // The fake clock moves 1 ns per reading: well inside the 50 us interval.
    let r = rig.send(&write_only(PSN0 + 1, IOVA, DATA_RKEY, &d, true), &d);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (
            rig.stat(dev::ROCE_NP_ECN_MARKED),
            rig.stat(dev::ROCE_NP_CNP_SENT)
        ),
        (2, 1)
    );
    rig.tb.fw.set_cnp_interval_ns(0);
    let r = rig.send(&write_only(PSN0 + 2, IOVA, DATA_RKEY, &d, true), &d);
    assert_eq!(r[0].roce.bth.opcode, op::CNP);
    assert_eq!(rig.stat(dev::ROCE_NP_CNP_SENT), 2);
}

#[test]
fn ipv6_and_vlan_requests_are_answered_on_the_same_path() {
    let mut req = REQUESTER_V4.v6();
    req.vlan = Some(5);
    let mut rig = Rig::with(qp_type::RC, 3, req, PSN0);
    let d = payload(8, 1);
    let r = rig.send(&write_only(PSN0, IOVA, DATA_RKEY, &d, true), &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(ACK), Some(1)));
    let route = r[0].route;
    assert_eq!(route.eth.vlans[0].map(|v| v.tci & 0xfff), Some(5));
    let want = req.route();
    match (route.ip, want.ip) {
        (
            splitrx_firmware::roce::tx::RouteIp::V6 { src, dst },
            splitrx_firmware::roce::tx::RouteIp::V6 { src: rs, dst: rd },
        ) => assert_eq!((src, dst), (rd, rs)),
        x => panic!("not IPv6: {x:?}"),
    }
    // A request from another address is not the QP's peer: dropped.
    let mut other = req;
    other.ip = REQUESTER_V4.ip;
    let f = other.frame(&write_only(PSN0 + 1, IOVA, DATA_RKEY, &d, true), &d);
    assert!(rig.feed(&f).is_empty());
    assert_eq!(rig.stat(dev::ROCE_RESP_DISCARDS), 1);
    rig.expect(DATA_BUS, &d);
    rig.check_memory();
}

// ---------------------------------------------------------------------------------------------
// Random requester sequences (loss, duplication, reordering) against a model
// ---------------------------------------------------------------------------------------------

mod model {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    pub enum Op {
        /// WRITE of `len` bytes at data-MR offset `off`.
        Write { off: u64, len: usize },
        /// SEND of `len` bytes (into the next posted buffer).
        Send { len: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..8192, 1usize..=900).prop_map(|(off, len)| Op::Write { off, len }),
            (1usize..=900).prop_map(|len| Op::Send { len }),
        ]
    }

    /// xorshift: the network's choices, from the case's seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn chance(&mut self, pct: u64) -> bool {
            self.next() % 100 < pct
        }
    }

    const MTU: usize = 256;
    const RECV_BUF: u64 = 1024;

    /// Every packet of `ops`, PSN order: (repr without PSN/AckReq, payload, ends a message).
    fn packets(ops: &[Op]) -> Vec<(RoceRepr, Vec<u8>, bool)> {
        let mut v = Vec::new();
        for (k, o) in ops.iter().enumerate() {
            let (len, write) = match o {
                Op::Write { len, .. } => (*len, true),
                Op::Send { len } => (*len, false),
            };
            let data = payload(len, k as u8);
            let n = len.div_ceil(MTU);
            for i in 0..n {
                let chunk = data[i * MTU..((i + 1) * MTU).min(len)].to_vec();
                let (first, last) = (i == 0, i + 1 == n);
                let opc = match (write, first, last) {
                    (true, true, true) => op::RC_WRITE_ONLY,
                    (true, true, false) => op::RC_WRITE_FIRST,
                    (true, false, false) => op::RC_WRITE_MIDDLE,
                    (true, false, true) => op::RC_WRITE_LAST,
                    (false, true, true) => op::RC_SEND_ONLY,
                    (false, true, false) => op::RC_SEND_FIRST,
                    (false, false, false) => op::RC_SEND_MIDDLE,
                    (false, false, true) => op::RC_SEND_LAST,
                };
                let mut r = request(opc, QPN, 0, false, chunk.len());
                if let (true, true, Op::Write { off, .. }) = (write, first, o) {
                    r.reth = Some(Reth {
                        va: IOVA + off,
                        rkey: DATA_RKEY,
                        dma_len: len as u32,
                    });
                }
                v.push((r, chunk, last));
            }
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn random_lossy_requester_converges_to_the_model(
            ops in proptest::collection::vec(op(), 1..10),
            seed in 1u64..,
            loss in 0u64..30,
            dup in 0u64..30,
            swap in 0u64..30,
        ) {
            let mut rig = Rig::new(qp_type::RC, 1);
            let sends = ops.iter().filter(|o| matches!(o, Op::Send { .. })).count();
            let mut rng = Rng(seed);
            // Receive buffer k is posted as a scatter list of 1 to 4 entries over its 1 KiB:
            // random cuts, in address order or reversed.
            let mut sgls = Vec::new();
            let mut slots = 16usize; // the receive ring's capacity (`Rig`)
            for k in 0..sends {
                let base = RECV_BUS + k as u64 * RECV_BUF;
                // Keep one slot for every WQE still to post.
                let most = (slots - (sends - k - 1)).min(4);
                let n = 1 + (rng.next() % most as u64) as usize;
                slots -= n;
                let mut cuts: Vec<u64> = (1..n).map(|_| 1 + rng.next() % (RECV_BUF - 1)).collect();
                cuts.sort_unstable();
                cuts.dedup();
                slots += n - 1 - cuts.len(); // duplicate cuts: fewer entries
                let mut bounds = vec![0];
                bounds.extend(cuts);
                bounds.push(RECV_BUF);
                let mut sgl: Vec<(u64, u32, u32)> = bounds
                    .windows(2)
                    .map(|w| (base + w[0], (w[1] - w[0]) as u32, RECV_LKEY))
                    .collect();
                if rng.chance(50) {
                    sgl.reverse();
                }
                rig.qp.post_sgl(k as u64, &sgl);
                sgls.push(sgl);
            }
            let pk = packets(&ops);
            let n = pk.len();
            let mut acked = 0usize; // packets before this index are acknowledged
            let mut rounds = 0;
            while acked < n {
                rounds += 1;
                prop_assert!(rounds < 500, "no progress");
                // One window (go-back-N from the first unacknowledged packet), through a
                // network that loses, duplicates and swaps neighbours.
                let end = (acked + 4).min(n);
                let mut wire: Vec<usize> = Vec::new();
                for i in acked..end {
                    if rng.chance(loss) { continue; }
                    wire.push(i);
                    if rng.chance(dup) { wire.push(i); }
                }
                for j in 1..wire.len() {
                    if rng.chance(swap) { wire.swap(j - 1, j); }
                }
                for &i in &wire {
                    let (mut r, data, ends) = pk[i].clone();
                    r.bth.psn = PSN0 + i as u32;
                    r.bth.ack_req = ends || i + 1 == end || rng.chance(30);
                    for resp in rig.send(&r, &data) {
                        let (opc, _, psn, syn, _) = ack_of(&resp);
                        prop_assert_eq!(opc, op::RC_ACK);
                        let idx = (psn - PSN0) as usize;
                        match syn {
                            Some(0x1f) => acked = acked.max(idx + 1),
                            Some(0x60) => acked = acked.max(idx),
                            other => prop_assert!(false, "unexpected syndrome {:?}", other),
                        }
                    }
                }
            }
            // The model: WRITEs in order into the data MR, SEND k into buffer k.
            let mut cqes = Vec::new();
            let mut psn = PSN0;
            let mut k = 0u64;
            for (m, o) in ops.iter().enumerate() {
                let len = match o { Op::Write { len, .. } | Op::Send { len } => *len };
                let data = payload(len, m as u8);
                psn += len.div_ceil(MTU) as u32;
                match o {
                    Op::Write { off, .. } => rig.expect(DATA_BUS + off, &data),
                    Op::Send { .. } => {
                        // The message over the scatter list, entry by entry.
                        let mut rest = &data[..];
                        for &(bus, l, _) in &sgls[k as usize] {
                            let now = rest.len().min(l as usize);
                            rig.expect(bus, &rest[..now]);
                            rest = &rest[now..];
                        }
                        cqes.push(cqe(k, len as u32, 0, wc_status::SUCCESS, wc_opcode::RECV, 0, PEER, psn - 1));
                        k += 1;
                    }
                }
            }
            rig.check_memory();
            prop_assert_eq!(rig.qp.cqes(), cqes);
            let info = rig.info();
            prop_assert_eq!((info.expected_psn.get(), info.msn.get(), info.state), (PSN0 + n as u32, ops.len() as u32, qp_state::RTS));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Busy MAC, SRQ, hostile rings, DMA errors
// ---------------------------------------------------------------------------------------------

#[test]
fn read_response_waits_for_a_busy_mac_and_resumes() {
    let mut rig = Rig::new(qp_type::RC, 1);
    let d = payload(600, 5);
    rig.preload(DATA_BUS, &d);
    rig.tb.fw.hal_mut().tx.busy = 2;
    // Nothing goes out while the MAC is busy (the first poll tries once, the second once).
    rig.tb
        .fw
        .hal_mut()
        .rx
        .push(&rig.req.frame(&read_req(PSN0, IOVA, DATA_RKEY, 600), &[]));
    rig.tb.fw.poll();
    assert!(rig.tb.take_sent().is_empty());
    // A WRITE for the QP meanwhile is dropped (the requester retries it).
    let w = payload(4, 1);
    rig.tb.fw.hal_mut().rx.push(
        &rig.req
            .frame(&write_only(PSN0 + 3, IOVA + 4096, DATA_RKEY, &w, true), &w),
    );
    rig.tb.fw.poll();
    assert_eq!(rig.stat(dev::ROCE_RESP_DISCARDS), 1);
    let r = rig.feed(&[]);
    let r: Vec<_> = r
        .into_iter()
        .chain(
            rig.tb
                .take_sent()
                .iter()
                .map(|f| parse_response(f).unwrap()),
        )
        .collect();
    assert_eq!(
        r.iter().map(ack_of).collect::<Vec<_>>(),
        vec![
            (op::RC_READ_RESPONSE_FIRST, PEER, PSN0, Some(ACK), Some(1)),
            (op::RC_READ_RESPONSE_MIDDLE, PEER, PSN0 + 1, None, None),
            (
                op::RC_READ_RESPONSE_LAST,
                PEER,
                PSN0 + 2,
                Some(ACK),
                Some(1)
            ),
        ]
    );
    assert_eq!(
        r.iter().flat_map(|x| x.payload.clone()).collect::<Vec<_>>(),
        d
    );
    assert_eq!(
        rig.stat(dev::ROCE_RESP_TX_DROPPED),
        0,
        "a busy MAC delays READ responses: no drop"
    );
    rig.check_memory();
}

#[test]
fn qps_on_an_srq_take_its_wqes_in_order() {
    let mut tb = Testbed::new();
    tb.mem.fill(IMG_BUS, IMG_LEN, GUARD);
    assert_eq!(
        tb.register_mr(
            RECV_BUS,
            MR_LEN,
            0,
            RECV_RKEY,
            RECV_LKEY,
            access::LOCAL_WRITE,
            PD
        ),
        CtrlStatus::Ok
    );
    let (st, mut srq) = tb.create_srq(9, PD, 8);
    assert_eq!(st, CtrlStatus::Ok);
    let req = REQUESTER_V4;
    let mut qps = Vec::new();
    for (i, qpn) in [0x11u32, 0x12].into_iter().enumerate() {
        let (st, q) = tb.create_qp(qpn, PD, qp_type::RC, 9, 0, 8);
        assert_eq!(st, CtrlStatus::Ok);
        assert_eq!(
            tb.connect_qp(qpn, 0x40 + i as u32, req.gid(), 0xd000, 0, 3, ALL, 0),
            CtrlStatus::Ok
        );
        qps.push(q);
    }
    for k in 0..2u64 {
        assert!(srq
            .push(&splitrx_firmware::testing::recv_wqe(
                k,
                RECV_BUS + k * 256,
                256,
                RECV_LKEY,
                9 | 1 << 31
            ))
            .unwrap());
    }
    for (i, qpn) in [0x12u32, 0x11].into_iter().enumerate() {
        let d = payload(10, i as u8);
        tb.fw
            .hal_mut()
            .rx
            .push(&req.frame(&request(op::RC_SEND_ONLY, qpn, 0, false, 10), &d));
        while tb.fw.poll() {}
    }
    let c12 = qps[1].cqes();
    let c11 = qps[0].cqes();
    assert_eq!((c12.len(), c11.len()), (1, 1));
    assert_eq!(
        (c12[0].wr_id.get(), c12[0].qpn.get(), c12[0].src_qp.get()),
        (0, 0x12, 0x41)
    );
    assert_eq!(
        (c11[0].wr_id.get(), c11[0].qpn.get(), c11[0].src_qp.get()),
        (1, 0x11, 0x40)
    );
    assert_eq!(tb.mem.read(RECV_BUS, 10), payload(10, 0));
    assert_eq!(tb.mem.read(RECV_BUS + 256, 10), payload(10, 1));
    assert_eq!(tb.mem.read(RECV_BUS + 10, 246), vec![GUARD; 246]);
}

#[test]
fn a_corrupt_receive_ring_faults_the_qp_not_the_firmware() {
    use splitrx_shared::abi::RingKind;
    use splitrx_shared::region::RegionLayout;
    let mut rig = Rig::new(qp_type::RC, 3);
    let l = RegionLayout::new(0, &[(RingKind::RecvWqe, 16), (RingKind::RoceCq, 16)]).unwrap();
    let prod = rig.qp.region + l.ring(RingKind::RecvWqe).unwrap().offset.get();
    assert!(
        rig.tb.mem.write(prod, &0x1000u32.to_le_bytes()),
        "producer index far ahead"
    );
    let r = rig.send(
        &request(op::RC_SEND_ONLY, QPN, PSN0, true, 4),
        &[1, 2, 3, 4],
    );
    assert!(r.is_empty());
    assert_eq!(
        (rig.stat(dev::ROCE_RING_FAULTS), rig.info().state),
        (1, qp_state::ERR)
    );
    // Other QPs and the control plane carry on.
    assert_eq!(
        rig.tb.create_qp(0x55, PD, qp_type::RC, NO_SRQ, 4, 4).0,
        CtrlStatus::Ok
    );
    rig.check_memory();
}

#[test]
fn a_dma_error_is_a_remote_operational_nak() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let d = payload(16, 1);
    rig.tb.fw.hal_mut().dma.fail_next = 1;
    let r = rig.send(&write_only(PSN0, IOVA, DATA_RKEY, &d, true), &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x63), Some(0)));
    assert_eq!(
        (rig.stat(dev::ROCE_RESP_DMA_ERRORS), rig.info().state),
        (1, qp_state::ERR)
    );
    rig.check_memory();
}

mod hostile {
    use super::*;
    use proptest::prelude::*;
    use splitrx_shared::wire::roce::{ext, RoceLayout};

    /// Every request opcode of RC, UC and UD, plus the requester-side and CNP ones.
    const OPCODES: &[u8] = &[
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
        0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x16, 0x17, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,
        0x27, 0x28, 0x29, 0x2a, 0x2b, 0x64, 0x65, 0x81,
    ];

    #[derive(Clone, Debug)]
    struct Req {
        opcode: u8,
        psn_off: u32,
        ack: bool,
        va_off: u64,
        good_rkey: bool,
        dma_len: u32,
        len: usize,
        qkey_ok: bool,
    }

    fn req() -> impl Strategy<Value = Req> {
        (
            proptest::sample::select(OPCODES),
            0u32..6,
            any::<bool>(),
            prop_oneof![0u64..(MR_LEN + 64), any::<u64>()],
            any::<bool>(),
            prop_oneof![0u32..2048, any::<u32>()],
            0usize..1100,
            any::<bool>(),
        )
            .prop_map(
                |(opcode, psn_off, ack, va_off, good_rkey, dma_len, len, qkey_ok)| Req {
                    opcode,
                    psn_off,
                    ack,
                    va_off,
                    good_rkey,
                    dma_len,
                    len,
                    qkey_ok,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Hostile requesters: any opcode sequence, PSN, key, address and length. The
        /// responder never panics, never writes outside the two MRs, and the control plane
        /// still answers.
        #[test]
        fn hostile_requests_never_write_outside_the_mrs(
            ty in prop_oneof![Just(qp_type::RC), Just(qp_type::UC), Just(qp_type::UD)],
            reqs in proptest::collection::vec(req(), 1..40),
        ) {
            let mut rig = Rig::new(ty, 1);
            for k in 0..4u64 {
                rig.qp.post(k, RECV_BUS + k * 1024, 1024, RECV_LKEY);
            }
            let mut psn = PSN0;
            for r in &reqs {
                let layout = RoceLayout::lookup(r.opcode).unwrap();
                let len = if layout.has(ext::ATOMIC_ETH) || r.opcode == op::RC_READ_REQUEST { 0 } else { r.len };
                let mut x = request(r.opcode, QPN, psn.wrapping_add(r.psn_off) & 0xff_ffff, r.ack, len);
                let rkey = if r.good_rkey { DATA_RKEY } else { RECV_RKEY };
                let va = IOVA.wrapping_add(r.va_off);
                if layout.has(ext::RETH) {
                    x.reth = Some(Reth { va, rkey, dma_len: r.dma_len });
                }
                if layout.has(ext::ATOMIC_ETH) {
                    x.atomic_eth = Some(AtomicEth { va, rkey, swap_add: 1, compare: 0 });
                }
                if layout.has(ext::DETH) {
                    x.deth = Some(Deth { qkey: if r.qkey_ok { 0x1234_5678 } else { 1 }, src_qp: 3 });
                }
                if layout.has(ext::IMMDT) {
                    x.imm_dt = Some(ImmDt(5));
                }
                if layout.has(ext::IETH) {
                    x.ieth = Some(Ieth(0x9999));
                }
                if layout.has(ext::AETH) {
                    x.aeth = Some(splitrx_shared::wire::roce::Aeth { syndrome: 0, msn: 0 });
                }
                if layout.has(ext::ATOMIC_ACK_ETH) {
                    x.atomic_ack_eth = Some(splitrx_shared::wire::roce::AtomicAckEth(0));
                }
                rig.send(&x, &payload(len, r.opcode));
                psn = psn.wrapping_add(1);
            }
            // Guard bytes: everything in the image outside the two MRs is untouched.
            let got = rig.tb.mem.read(IMG_BUS, IMG_LEN);
            for (i, b) in got.iter().enumerate() {
                let bus = IMG_BUS + i as u64;
                let in_mr = (DATA_BUS..DATA_BUS + MR_LEN).contains(&bus) || (RECV_BUS..RECV_BUS + MR_LEN).contains(&bus);
                if !in_mr {
                    prop_assert_eq!(*b, GUARD, "byte at {:#x} outside the MRs was written", bus);
                }
            }
            // The receive MR has no REMOTE_WRITE: only SENDs (into posted buffers) reach it.
            let i = rig.info();
            prop_assert_eq!(i.qpn.get(), QPN);
        }
    }
}

#[test]
fn write_with_immediate_rnr_at_its_last_packet_keeps_the_message_for_the_retry() {
    let mut rig = Rig::new(qp_type::RC, 1);
    let d = payload(300, 2);
    let mut first = request(op::RC_WRITE_FIRST, QPN, PSN0, false, 256);
    first.reth = Some(Reth {
        va: IOVA,
        rkey: DATA_RKEY,
        dma_len: 300,
    });
    let mut last = request(op::RC_WRITE_LAST_IMM, QPN, PSN0 + 1, true, 44);
    last.imm_dt = Some(ImmDt(0x0102_0304));
    rig.send(&first, &d[..256]);
    let r = rig.send(&last, &d[256..]);
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ACK, PEER, PSN0 + 1, Some(0x20 | 12), Some(0))
    );
    // The LAST's bytes were not placed: the WQE is taken before placing.
    rig.expect(DATA_BUS, &d[..256]);
    rig.check_memory();
    rig.qp.post(8, RECV_BUS, 16, RECV_LKEY);
    let r = rig.send(&last, &d[256..]);
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ACK, PEER, PSN0 + 1, Some(ACK), Some(1))
    );
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            8,
            300,
            0x0102_0304,
            wc_status::SUCCESS,
            wc_opcode::RECV_RDMA_WITH_IMM,
            wc_flags::WITH_IMM,
            PEER,
            PSN0 + 1
        )]
    );
    rig.expect(DATA_BUS, &d);
    rig.check_memory();
}

// ---------------------------------------------------------------------------------------------
// Scatter lists: a receive WQE of several entries (RecvWqe::MORE).
// ---------------------------------------------------------------------------------------------

#[test]
fn a_multi_packet_send_is_scattered_over_the_wqes_entries_in_order() {
    let mut rig = Rig::new(qp_type::RC, 1);
    // Three entries, out of address order and of uneven sizes: 100 + 300 + 400 bytes.
    let sgl = [
        (RECV_BUS + 4096, 100, RECV_LKEY),
        (RECV_BUS + 64, 300, RECV_LKEY),
        (RECV_BUS + 8192, 400, RECV_LKEY),
    ];
    rig.qp.post_sgl(0x5a, &sgl);
    let d = payload(700, 3);
    rig.send(
        &request(op::RC_SEND_FIRST, QPN, PSN0, false, 256),
        &d[..256],
    );
    rig.send(
        &request(op::RC_SEND_MIDDLE, QPN, PSN0 + 1, false, 256),
        &d[256..512],
    );
    assert_eq!(rig.info().held_wqes.get(), 1);
    let r = rig.send(
        &request(op::RC_SEND_LAST, QPN, PSN0 + 2, true, 188),
        &d[512..],
    );
    assert_eq!(
        r.iter().map(ack_of).collect::<Vec<_>>(),
        vec![(op::RC_ACK, PEER, PSN0 + 2, Some(ACK), Some(1))]
    );
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            0x5a,
            700,
            0,
            wc_status::SUCCESS,
            wc_opcode::RECV,
            0,
            PEER,
            PSN0 + 2
        )]
    );
    // 100 bytes in the first entry, 300 in the second, the last 300 at the start of the third
    // (its last 100 bytes untouched).
    rig.expect(RECV_BUS + 4096, &d[..100]);
    rig.expect(RECV_BUS + 64, &d[100..400]);
    rig.expect(RECV_BUS + 8192, &d[400..]);
    rig.check_memory();
    assert_eq!(
        (
            rig.stat(dev::ROCE_RECV_COMPLETED),
            rig.stat(dev::ROCE_RING_FAULTS)
        ),
        (1, 0)
    );
}

#[test]
fn a_send_longer_than_the_whole_scatter_list_is_a_length_error() {
    let mut rig = Rig::new(qp_type::RC, 3);
    rig.qp.post_sgl(
        4,
        &[(RECV_BUS, 32, RECV_LKEY), (RECV_BUS + 256, 32, RECV_LKEY)],
    );
    let d = payload(65, 1);
    let r = rig.send(&request(op::RC_SEND_ONLY, QPN, PSN0, true, 65), &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x61), Some(0)));
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            4,
            0,
            0,
            wc_status::LOC_LEN_ERR,
            wc_opcode::RECV,
            0,
            PEER,
            PSN0
        )]
    );
    assert_eq!(rig.stat(dev::ROCE_RESP_LOCAL_LENGTH_ERROR), 1);
    // Nothing was written: the length is checked before any byte is placed.
    rig.check_memory();
}

#[test]
fn ud_grh_area_and_datagram_span_scatter_entries() {
    let mut rig = Rig::new(qp_type::UD, 5);
    // The 40-byte GRH area straddles the first two entries (24 + 30 bytes), the payload runs
    // on into the third.
    rig.qp.post_sgl(
        9,
        &[
            (RECV_BUS + 1000, 24, RECV_LKEY),
            (RECV_BUS, 30, RECV_LKEY),
            (RECV_BUS + 2000, 200, RECV_LKEY),
        ],
    );
    let d = payload(100, 7);
    let mut s = request(op::UD_SEND_ONLY, QPN, 0x44, false, 100);
    s.deth = Some(Deth {
        qkey: 0x1234_5678,
        src_qp: 0x77,
    });
    let f = rig.req.frame(&s, &d);
    assert!(rig.feed(&f).is_empty());
    let mut all = vec![0u8; 20];
    all.extend_from_slice(&f[14..34]);
    all.extend_from_slice(&d);
    rig.expect(RECV_BUS + 1000, &all[..24]);
    rig.expect(RECV_BUS, &all[24..54]);
    rig.expect(RECV_BUS + 2000, &all[54..]);
    rig.check_memory();
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            9,
            140,
            0,
            wc_status::SUCCESS,
            wc_opcode::RECV,
            wc_flags::GRH,
            0x77,
            0x44
        )]
    );
}

#[test]
fn a_scatter_entry_outside_its_mr_is_a_local_protection_error() {
    let mut rig = Rig::new(qp_type::RC, 3);
    // The second entry runs 8 bytes past the end of the receive MR: every entry is checked
    // against its MR, even one the message would never reach.
    rig.qp.post_sgl(
        3,
        &[
            (RECV_BUS, 16, RECV_LKEY),
            (RECV_BUS + MR_LEN - 8, 16, RECV_LKEY),
        ],
    );
    let d = payload(8, 1);
    let r = rig.send(&request(op::RC_SEND_ONLY, QPN, PSN0, true, 8), &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(0x63), Some(0)));
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            3,
            0,
            0,
            wc_status::LOC_PROT_ERR,
            wc_opcode::RECV,
            0,
            PEER,
            PSN0
        )]
    );
    assert_eq!(
        (rig.stat(dev::ROCE_RESP_LOCAL_PROT_ERROR), rig.info().state),
        (1, qp_state::ERR)
    );
    rig.check_memory();
}

/// Entries of a WQE as a hostile host might post them.
fn entry(wr_id: u64, bus: u64, len: u32, more: bool) -> splitrx_shared::abi::RecvWqe {
    let mut w = splitrx_firmware::testing::recv_wqe(wr_id, bus, len, RECV_LKEY, QPN);
    if more {
        w.qpn = U32::new(QPN | splitrx_shared::abi::RecvWqe::MORE);
    }
    w
}

#[test]
fn a_malformed_scatter_list_is_a_ring_fault_never_a_placement() {
    use splitrx_shared::abi::MAX_RECV_SGE;
    let cases: Vec<(&str, Vec<splitrx_shared::abi::RecvWqe>)> = vec![
        (
            "MORE on the last entry in the ring",
            vec![entry(1, RECV_BUS, 64, true)],
        ),
        (
            "the next entry names another wr_id",
            vec![
                entry(1, RECV_BUS, 64, true),
                entry(2, RECV_BUS + 64, 64, false),
            ],
        ),
        (
            "more than MAX_RECV_SGE entries",
            (0..=MAX_RECV_SGE)
                .map(|i| entry(1, RECV_BUS + 64 * i as u64, 64, i < MAX_RECV_SGE))
                .collect(),
        ),
        (
            "total length past u32::MAX",
            vec![
                entry(1, RECV_BUS, u32::MAX, true),
                entry(1, RECV_BUS + 64, 64, false),
            ],
        ),
    ];
    for (what, entries) in cases {
        let mut rig = Rig::new(qp_type::RC, 3);
        rig.qp.post_raw(&entries);
        let d = payload(16, 1);
        let r = rig.send(&request(op::RC_SEND_ONLY, QPN, PSN0, true, 16), &d);
        assert!(
            r.is_empty(),
            "{what}: no answer from a QP whose ring is corrupt"
        );
        assert_eq!(
            (
                rig.stat(dev::ROCE_RING_FAULTS),
                rig.stat(dev::ROCE_RESP_DISCARDS),
                rig.info().state,
                rig.info().held_wqes.get()
            ),
            (1, 1, qp_state::ERR, 0),
            "{what}"
        );
        assert!(
            rig.qp.cqes().is_empty(),
            "{what}: no CQE names a broken WQE"
        );
        rig.check_memory();
    }
}

#[test]
fn a_write_with_immediate_refused_rnr_counts_one_write_request_after_its_retry() {
    let mut rig = Rig::new(qp_type::RC, 3);
    let d = payload(40, 5);
    let mut w = request(op::RC_WRITE_ONLY_IMM, QPN, PSN0, true, 40);
    w.reth = Some(Reth {
        va: IOVA,
        rkey: DATA_RKEY,
        dma_len: 40,
    });
    w.imm_dt = Some(ImmDt(1));
    let r = rig.send(&w, &d);
    assert_eq!(
        ack_of(&r[0]),
        (op::RC_ACK, PEER, PSN0, Some(0x20 | 12), Some(0))
    );
    assert_eq!(rig.stat(dev::ROCE_RX_WRITE_REQUESTS), 0);
    rig.check_memory();
    rig.qp.post(1, RECV_BUS, 64, RECV_LKEY);
    let r = rig.send(&w, &d);
    assert_eq!(ack_of(&r[0]), (op::RC_ACK, PEER, PSN0, Some(ACK), Some(1)));
    assert_eq!(
        (
            rig.stat(dev::ROCE_RX_WRITE_REQUESTS),
            rig.stat(dev::ROCE_SEND_RNR_ERR)
        ),
        (1, 1)
    );
    rig.expect(DATA_BUS, &d);
    rig.check_memory();
}
