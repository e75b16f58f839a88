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
use splitrx_shared::wire::roce::{opcode as op, Deth, Ieth, ImmDt, Reth, RoceRepr};
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
        Self::with(ty, mtu, REQUESTER_V4)
    }
    fn with(ty: u8, mtu: u8, req: Requester) -> Rig {
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
            tb.connect_qp(QPN, PEER, req.gid(), 0xd000, PSN0, mtu, ALL, 0x1234_5678),
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
    assert!(MAX_QPS >= 1024, "cap-host: at least 1024 QPs");
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
