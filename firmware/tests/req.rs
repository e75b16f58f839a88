//! The RC requester over the fakes: the exact request packets a send WQE becomes (opcodes,
//! PSNs, RETH, ImmDt, AckReq, payload bytes, ICRC), completions on ACK, READ responses placed
//! byte for byte, retransmission after a sequence NAK, an RNR NAK and a timeout, the error
//! completions and flushes, and hostile responses.

use proptest::prelude::*;
use splitrx_firmware::stats::dev;
use splitrx_firmware::testing::roce::{parse_response, request, Requester, Response, REQUESTER_V4};
use splitrx_firmware::testing::{HostQp, Testbed, MR_BUS};
use splitrx_shared::abi::{
    access, qp_attr, qp_state, qp_type, send_op, wc_opcode, wc_status, CtrlStatus, ModifyQpArgs,
    RoceCqe, SendWqe, NO_SRQ,
};
use splitrx_shared::wire::roce::{opcode as op, Aeth, ImmDt, Reth};
use zerocopy::little_endian::{U32, U64};

const QPN: u32 = 0x11;
const PEER: u32 = 0x22;
const PD: u32 = 7;
/// The peer's first PSN (our expected PSN) and ours.
const RQ_PSN: u32 = 100;
const SQ_PSN: u32 = 0xff_fffe;
const LKEY: u32 = 0x1001;
const RKEY: u32 = 0x1000;
const BUS: u64 = MR_BUS;
const MR_LEN: u64 = 64 << 10;
const GUARD: u8 = 0xa5;
const PEER_VA: u64 = 0x5000_0000;
const PEER_RKEY: u32 = 0xabcd;
/// Timeout code 10: 4.2 ms.
const TIMEOUT: u8 = 10;

struct Rig {
    tb: Testbed,
    qp: HostQp,
    req: Requester,
}

fn wqe(wr_id: u64, opc: u8, off: u64, len: u32) -> SendWqe {
    SendWqe {
        wr_id: U64::new(wr_id),
        bus_addr: U64::new(BUS + off),
        len: U32::new(len),
        lkey: U32::new(LKEY),
        remote_addr: U64::new(PEER_VA),
        rkey: U32::new(PEER_RKEY),
        imm: U32::new(0),
        opcode: opc,
        flags: 0,
        _pad: 0.into(),
        qpn: U32::new(QPN),
        remote_qpn: U32::new(0),
        remote_qkey: U32::new(0),
        _rsvd: [0; 8],
    }
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

impl Rig {
    /// An RC QP with a send ring of 8, MTU 1024, connected, the data MR filled with guard
    /// bytes; the peer has sent one 4-byte WRITE (the requester learns its address).
    fn new(retry_cnt: u8, rnr_retry: u8) -> Rig {
        let mut tb = Testbed::new();
        tb.mem.fill(BUS, MR_LEN as usize, GUARD);
        let all = access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ;
        assert_eq!(
            tb.register_mr(BUS, MR_LEN, 0x10_0000, RKEY, LKEY, all, PD),
            CtrlStatus::Ok
        );
        let (st, qp) = tb.create_qp_sq(QPN, PD, qp_type::RC, NO_SRQ, 8, 16, 8);
        assert_eq!(st, CtrlStatus::Ok);
        let req = REQUESTER_V4;
        assert_eq!(
            tb.connect_qp(QPN, PEER, req.gid(), 0xd000, RQ_PSN, 3, all, 0),
            CtrlStatus::Ok
        );
        let a = ModifyQpArgs {
            qpn: U32::new(QPN),
            attr_mask: U32::new(
                qp_attr::SQ_PSN | qp_attr::TIMEOUT | qp_attr::RETRY_CNT | qp_attr::RNR_RETRY,
            ),
            state: qp_state::RTS,
            sq_psn: U32::new(SQ_PSN),
            timeout: TIMEOUT,
            retry_cnt,
            rnr_retry,
            ..Default::default()
        };
        assert_eq!(tb.modify_qp(&a), CtrlStatus::Ok);
        let mut rig = Rig { tb, qp, req };
        // The peer's first request: a 4-byte WRITE into the MR's last bytes.
        let mut w = request(op::RC_WRITE_ONLY, QPN, RQ_PSN, true, 4);
        w.reth = Some(Reth {
            va: 0x10_0000 + MR_LEN - 4,
            rkey: RKEY,
            dma_len: 4,
        });
        let acks = rig.feed(&rig.req.frame(&w, &[1, 2, 3, 4]));
        assert_eq!(acks.len(), 1);
        rig
    }

    fn feed(&mut self, frame: &[u8]) -> Vec<Response> {
        self.tb.fw.hal_mut().rx.push(frame);
        self.run()
    }

    /// Polls until idle; returns what the NIC sent.
    fn run(&mut self) -> Vec<Response> {
        while self.tb.fw.poll() {}
        self.tb
            .take_sent()
            .iter()
            .map(|f| {
                let r = parse_response(f).expect("requester packet parses");
                assert!(r.icrc_ok, "requester packet has a valid ICRC");
                r
            })
            .collect()
    }

    /// An ACK (or NAK: `syn`) from the peer for `psn`.
    fn ack(&mut self, psn: u32, syn: u8) -> Vec<Response> {
        let mut r = request(op::RC_ACK, QPN, psn, false, 0);
        r.aeth = Some(Aeth {
            syndrome: syn,
            msn: 0,
        });
        let f = self.req.frame(&r, &[]);
        self.feed(&f)
    }

    fn stat(&self, i: usize) -> u64 {
        self.tb.fw.device_stats().get(i)
    }

    fn advance_ns(&mut self, ns: u64) {
        self.tb.fw.hal_mut().clock.now += ns;
    }

    fn state(&mut self) -> u8 {
        let r = self.tb.call(
            splitrx_shared::abi::CtrlOp::QueryQp,
            &splitrx_shared::abi::QpArgs { qpn: U32::new(QPN) },
        );
        let i: splitrx_shared::abi::QpInfo = r[0].args().unwrap();
        i.state
    }
}

fn psn(k: u32) -> u32 {
    (SQ_PSN + k) & 0xff_ffff
}

/// (opcode, destination QP, PSN, AckReq) of a packet.
fn hdr(r: &Response) -> (u8, u32, u32, bool) {
    (
        r.roce.bth.opcode,
        r.roce.bth.dest_qp,
        r.roce.bth.psn,
        r.roce.bth.ack_req,
    )
}

fn cqe(wr_id: u64, status: u8, opcode: u8, byte_len: u32, last_psn: u32) -> RoceCqe {
    RoceCqe {
        wr_id: wr_id.into(),
        byte_len: byte_len.into(),
        imm_or_inv: 0.into(),
        qpn: QPN.into(),
        src_qp: PEER.into(),
        status,
        opcode,
        wc_flags: 0.into(),
        psn: last_psn.into(),
    }
}

#[test]
fn a_send_becomes_first_middle_last_at_the_mtu_and_completes_on_the_ack() {
    let mut rig = Rig::new(7, 7);
    let data = pattern(2500, 3);
    assert!(rig.tb.mem.write(BUS + 4096, &data));
    rig.qp.post_send(&wqe(41, send_op::SEND, 4096, 2500));
    let sent = rig.run();
    assert_eq!(
        sent.iter().map(hdr).collect::<Vec<_>>(),
        vec![
            (op::RC_SEND_FIRST, PEER, psn(0), false),
            (op::RC_SEND_MIDDLE, PEER, psn(1), false),
            (op::RC_SEND_LAST, PEER, psn(2), true),
        ]
    );
    // PSNs wrap at 24 bits.
    assert_eq!((psn(0), psn(2)), (0xff_fffe, 0));
    let body: Vec<u8> = sent.iter().flat_map(|r| r.payload.clone()).collect();
    assert_eq!(body, data);
    assert_eq!(sent[0].payload.len(), 1024);
    // Back to the peer: its addresses swapped, the QP's UDP source port.
    assert_eq!(sent[0].route.eth.dst_addr, rig.req.mac);
    assert_eq!(sent[0].route.sport, 0xd000);
    assert!(rig.qp.cqes().is_empty(), "no completion before the ACK");
    // An ACK of the middle packet completes nothing; the ACK of the last one does.
    assert!(rig.ack(psn(1), 0x1f).is_empty());
    assert!(rig.qp.cqes().is_empty());
    assert!(rig.ack(psn(2), 0x1f).is_empty());
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(41, wc_status::SUCCESS, wc_opcode::SEND, 2500, psn(2))]
    );
    assert_eq!(rig.stat(dev::REQ_WQES_TAKEN), 1);
    assert_eq!(rig.stat(dev::REQ_WQES_COMPLETED), 1);
    assert_eq!(rig.stat(dev::REQ_RETRANSMITS), 0);
    assert_eq!(rig.stat(dev::REQ_DISCARDS), 0);
}

#[test]
fn writes_with_immediate_and_sends_complete_in_order_on_one_coalesced_ack() {
    let mut rig = Rig::new(7, 7);
    assert!(rig.tb.mem.write(BUS, &pattern(1500, 9)));
    let mut w = wqe(1, send_op::RDMA_WRITE_WITH_IMM, 0, 1500);
    w.imm = U32::new(0xdead_beef);
    rig.qp.post_send(&w);
    rig.qp.post_send(&wqe(2, send_op::SEND_WITH_IMM, 0, 0));
    rig.qp.post_send(&wqe(3, send_op::RDMA_WRITE, 0, 8));
    let sent = rig.run();
    assert_eq!(
        sent.iter().map(hdr).collect::<Vec<_>>(),
        vec![
            (op::RC_WRITE_FIRST, PEER, psn(0), false),
            (op::RC_WRITE_LAST_IMM, PEER, psn(1), true),
            (op::RC_SEND_ONLY_IMM, PEER, psn(2), true),
            (op::RC_WRITE_ONLY, PEER, psn(3), true),
        ]
    );
    assert_eq!(
        sent[0].roce.reth,
        Some(Reth {
            va: PEER_VA,
            rkey: PEER_RKEY,
            dma_len: 1500
        })
    );
    assert_eq!(sent[1].roce.reth, None);
    assert_eq!(sent[1].roce.imm_dt, Some(ImmDt(0xdead_beef)));
    assert_eq!(sent[1].payload, pattern(1500, 9)[1024..]);
    assert_eq!(sent[2].payload, Vec::<u8>::new());
    assert_eq!(sent[3].roce.reth.map(|r| r.dma_len), Some(8));
    rig.ack(psn(3), 0x1f);
    assert_eq!(
        rig.qp.cqes(),
        vec![
            cqe(1, wc_status::SUCCESS, wc_opcode::RDMA_WRITE, 1500, psn(1)),
            cqe(2, wc_status::SUCCESS, wc_opcode::SEND, 0, psn(2)),
            cqe(3, wc_status::SUCCESS, wc_opcode::RDMA_WRITE, 8, psn(3)),
        ]
    );
}

#[test]
fn a_read_places_its_responses_byte_for_byte_and_nothing_else() {
    let mut rig = Rig::new(7, 7);
    rig.qp.post_send(&wqe(7, send_op::RDMA_READ, 8192, 3000));
    let sent = rig.run();
    assert_eq!(sent.len(), 1);
    assert_eq!(hdr(&sent[0]), (op::RC_READ_REQUEST, PEER, psn(0), true));
    assert_eq!(
        sent[0].roce.reth,
        Some(Reth {
            va: PEER_VA,
            rkey: PEER_RKEY,
            dma_len: 3000
        })
    );
    // A SEND behind the READ goes out at the PSN after the READ's three responses.
    rig.qp.post_send(&wqe(8, send_op::SEND, 0, 4));
    let sent = rig.run();
    assert_eq!(hdr(&sent[0]), (op::RC_SEND_ONLY, PEER, psn(3), true));
    let data = pattern(3000, 77);
    for (k, (o, lo, hi)) in [
        (op::RC_READ_RESPONSE_FIRST, 0, 1024),
        (op::RC_READ_RESPONSE_MIDDLE, 1024, 2048),
        (op::RC_READ_RESPONSE_LAST, 2048, 3000),
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = request(o, QPN, psn(k as u32), false, hi - lo);
        if o != op::RC_READ_RESPONSE_MIDDLE {
            r.aeth = Some(Aeth {
                syndrome: 0x1f,
                msn: 1,
            });
        }
        let f = rig.req.frame(&r, &data[lo..hi]);
        assert!(rig.feed(&f).is_empty());
    }
    rig.ack(psn(3), 0x1f);
    assert_eq!(
        rig.qp.cqes(),
        vec![
            cqe(7, wc_status::SUCCESS, wc_opcode::RDMA_READ, 3000, psn(2)),
            cqe(8, wc_status::SUCCESS, wc_opcode::SEND, 4, psn(3)),
        ]
    );
    let mut want = vec![GUARD; MR_LEN as usize];
    want[8192..8192 + 3000].copy_from_slice(&data);
    want[MR_LEN as usize - 4..].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(rig.tb.mem.read(BUS, MR_LEN as usize), want);
}

#[test]
fn a_read_response_out_of_sequence_or_of_the_wrong_length_is_dropped() {
    let mut rig = Rig::new(7, 7);
    rig.qp.post_send(&wqe(7, send_op::RDMA_READ, 0, 2048));
    rig.run();
    let data = pattern(2048, 1);
    let aeth = Some(Aeth {
        syndrome: 0x1f,
        msn: 1,
    });
    // LAST before FIRST; a FIRST one byte short; a response for a PSN never sent.
    for (o, p, n) in [
        (op::RC_READ_RESPONSE_LAST, psn(1), 1024),
        (op::RC_READ_RESPONSE_FIRST, psn(0), 1023),
        (op::RC_READ_RESPONSE_ONLY, psn(5), 4),
    ] {
        let mut r = request(o, QPN, p, false, n);
        r.aeth = aeth;
        let f = rig.req.frame(&r, &data[..n]);
        rig.feed(&f);
    }
    assert_eq!(rig.stat(dev::REQ_DISCARDS), 3);
    assert!(rig.qp.cqes().is_empty());
    assert_eq!(rig.tb.mem.read(BUS, 2048), vec![GUARD; 2048]);
    // A MIDDLE missing: the LAST is dropped and the timeout asks for the rest again.
    let mut r = request(op::RC_READ_RESPONSE_FIRST, QPN, psn(0), false, 1024);
    r.aeth = aeth;
    rig.feed(&rig.req.frame(&r, &data[..1024]));
    assert_eq!(rig.tb.mem.read(BUS, 1024), data[..1024]);
    rig.advance_ns(5_000_000);
    let sent = rig.run();
    assert_eq!(sent.len(), 1);
    assert_eq!(hdr(&sent[0]), (op::RC_READ_REQUEST, PEER, psn(1), true));
    assert_eq!(
        sent[0].roce.reth,
        Some(Reth {
            va: PEER_VA + 1024,
            rkey: PEER_RKEY,
            dma_len: 1024
        })
    );
    // Its answer is an ONLY response at that PSN.
    let mut r = request(op::RC_READ_RESPONSE_ONLY, QPN, psn(1), false, 1024);
    r.aeth = aeth;
    rig.feed(&rig.req.frame(&r, &data[1024..]));
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            7,
            wc_status::SUCCESS,
            wc_opcode::RDMA_READ,
            2048,
            psn(1)
        )]
    );
    assert_eq!(rig.tb.mem.read(BUS, 2048), data);
    assert_eq!(rig.stat(dev::REQ_TIMEOUTS), 1);
    assert_eq!(rig.stat(dev::REQ_RETRANSMITS), 1);
}

#[test]
fn a_sequence_nak_resends_from_its_psn_and_the_wqes_before_it_complete() {
    let mut rig = Rig::new(7, 7);
    assert!(rig.tb.mem.write(BUS, &pattern(4096, 5)));
    rig.qp.post_send(&wqe(1, send_op::SEND, 0, 100));
    rig.qp.post_send(&wqe(2, send_op::RDMA_WRITE, 0, 2048));
    let first = rig.run();
    assert_eq!(first.len(), 3);
    // The peer lost psn(1): NAK PSN sequence error at psn(1).
    let again = rig.ack(psn(1), 0x60);
    assert_eq!(
        again.iter().map(hdr).collect::<Vec<_>>(),
        vec![
            (op::RC_WRITE_FIRST, PEER, psn(1), false),
            (op::RC_WRITE_LAST, PEER, psn(2), true),
        ]
    );
    assert_eq!(again[0].payload, first[1].payload);
    assert_eq!(again[1].payload, first[2].payload);
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(1, wc_status::SUCCESS, wc_opcode::SEND, 100, psn(0))]
    );
    rig.ack(psn(2), 0x1f);
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(
            2,
            wc_status::SUCCESS,
            wc_opcode::RDMA_WRITE,
            2048,
            psn(2)
        )]
    );
    assert_eq!(rig.stat(dev::REQ_SEQ_NAKS_RCVD), 1);
    assert_eq!(rig.stat(dev::REQ_RETRANSMITS), 2);
}

#[test]
fn an_rnr_nak_waits_its_timer_then_resends() {
    let mut rig = Rig::new(7, 7);
    rig.qp.post_send(&wqe(1, send_op::SEND, 0, 64));
    assert_eq!(rig.run().len(), 1);
    // RNR NAK, timer code 14: 1.28 ms.
    assert!(rig.ack(psn(0), 0x20 | 14).is_empty());
    rig.advance_ns(1_000_000);
    assert!(rig.run().is_empty(), "resent before the RNR timer ran out");
    rig.advance_ns(300_000);
    let again = rig.run();
    assert_eq!(again.len(), 1);
    assert_eq!(hdr(&again[0]), (op::RC_SEND_ONLY, PEER, psn(0), true));
    rig.ack(psn(0), 0x1f);
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(1, wc_status::SUCCESS, wc_opcode::SEND, 64, psn(0))]
    );
    assert_eq!(rig.stat(dev::REQ_RNR_NAKS_RCVD), 1);
}

#[test]
fn rnr_retries_run_out_with_rnr_retry_exc_err_and_the_rest_flushes() {
    let mut rig = Rig::new(7, 1);
    rig.qp.post_send(&wqe(1, send_op::SEND, 0, 64));
    rig.qp.post_send(&wqe(2, send_op::SEND, 0, 64));
    assert_eq!(rig.run().len(), 2);
    rig.ack(psn(0), 0x20 | 1);
    rig.advance_ns(1_000_000);
    assert_eq!(rig.run().len(), 2, "one RNR retry");
    rig.ack(psn(0), 0x20 | 1);
    assert_eq!(
        rig.qp.cqes(),
        vec![
            cqe(1, wc_status::RNR_RETRY_EXC_ERR, wc_opcode::SEND, 0, psn(0)),
            cqe(2, wc_status::WR_FLUSH_ERR, wc_opcode::SEND, 0, psn(1)),
        ]
    );
    assert_eq!(rig.state(), qp_state::ERR);
    assert_eq!(rig.stat(dev::REQ_CQE_ERROR), 2);
}

#[test]
fn timeouts_resend_from_the_oldest_unacked_psn_until_retry_cnt_runs_out() {
    let mut rig = Rig::new(2, 7);
    rig.qp.post_send(&wqe(1, send_op::SEND, 0, 2048));
    assert_eq!(rig.run().len(), 2);
    rig.ack(psn(0), 0x1f);
    // Nothing before the timeout (4.194 ms).
    rig.advance_ns(4_000_000);
    assert!(rig.run().is_empty());
    for _ in 0..2 {
        rig.advance_ns(4_200_000);
        let again = rig.run();
        assert_eq!(
            again.iter().map(hdr).collect::<Vec<_>>(),
            vec![(op::RC_SEND_LAST, PEER, psn(1), true)]
        );
    }
    rig.advance_ns(4_200_000);
    assert!(rig.run().is_empty());
    assert_eq!(
        rig.qp.cqes(),
        vec![cqe(1, wc_status::RETRY_EXC_ERR, wc_opcode::SEND, 0, psn(1))]
    );
    assert_eq!(rig.state(), qp_state::ERR);
    assert_eq!(rig.stat(dev::REQ_TIMEOUTS), 3);
    assert_eq!(rig.stat(dev::REQ_RETRANSMITS), 2);
}

#[test]
fn remote_naks_fail_the_wqe_with_their_status_and_flush_the_rest() {
    for (syn, status) in [
        (0x61, wc_status::REM_INV_REQ_ERR),
        (0x62, wc_status::REM_ACCESS_ERR),
        (0x63, wc_status::REM_OP_ERR),
    ] {
        let mut rig = Rig::new(7, 7);
        rig.qp.post_send(&wqe(1, send_op::RDMA_WRITE, 0, 16));
        rig.qp.post_send(&wqe(2, send_op::RDMA_WRITE, 0, 16));
        rig.qp.post_send(&wqe(3, send_op::SEND, 0, 16));
        assert_eq!(rig.run().len(), 3);
        rig.ack(psn(1), syn);
        assert_eq!(
            rig.qp.cqes(),
            vec![
                cqe(1, wc_status::SUCCESS, wc_opcode::RDMA_WRITE, 16, psn(0)),
                cqe(2, status, wc_opcode::RDMA_WRITE, 0, psn(1)),
                cqe(3, wc_status::WR_FLUSH_ERR, wc_opcode::SEND, 0, psn(2)),
            ],
            "syndrome {syn:#x}"
        );
        assert_eq!(rig.state(), qp_state::ERR);
        // Nothing more goes out, and a late ACK changes nothing.
        assert!(rig.ack(psn(2), 0x1f).is_empty());
        assert!(rig.qp.cqes().is_empty());
    }
}

#[test]
fn a_wqe_the_nic_refuses_completes_with_a_local_error_and_nothing_behind_it_runs() {
    type Case = (&'static str, fn(&mut SendWqe), u8);
    let cases: [Case; 5] = [
        (
            "unknown lkey",
            |w| w.lkey = U32::new(0x999),
            wc_status::LOC_PROT_ERR,
        ),
        (
            "past the MR",
            |w| w.bus_addr = U64::new(BUS + MR_LEN - 8),
            wc_status::LOC_PROT_ERR,
        ),
        (
            "foreign QPN",
            |w| w.qpn = U32::new(0x12),
            wc_status::LOC_QP_OP_ERR,
        ),
        ("atomic opcode", |w| w.opcode = 5, wc_status::LOC_QP_OP_ERR),
        (
            "reserved bytes",
            |w| w._rsvd[3] = 1,
            wc_status::LOC_QP_OP_ERR,
        ),
    ];
    for (what, bad, status) in cases {
        let mut rig = Rig::new(7, 7);
        rig.qp.post_send(&wqe(1, send_op::SEND, 0, 16));
        let mut w = wqe(2, send_op::SEND, 0, 16);
        bad(&mut w);
        rig.qp.post_send(&w);
        rig.qp.post_send(&wqe(3, send_op::SEND, 0, 16));
        let sent = rig.run();
        assert_eq!(sent.len(), 1, "{what}: only the WQE before it is sent");
        rig.ack(psn(0), 0x1f);
        let c = rig.qp.cqes();
        assert_eq!(c.len(), 2, "{what}: {c:?}");
        assert_eq!(
            c[0],
            cqe(1, wc_status::SUCCESS, wc_opcode::SEND, 16, psn(0))
        );
        assert_eq!((c[1].wr_id.get(), c[1].status), (2, status), "{what}");
        assert_eq!(rig.state(), qp_state::ERR, "{what}");
        assert!(rig.run().is_empty(), "{what}");
    }
}

#[test]
fn a_requester_without_a_peer_address_waits_and_the_window_is_bounded_by_the_cq() {
    let mut tb = Testbed::new();
    let all = access::LOCAL_WRITE | access::REMOTE_WRITE;
    assert_eq!(
        tb.register_mr(BUS, MR_LEN, 0x10_0000, RKEY, LKEY, all, PD),
        CtrlStatus::Ok
    );
    // CQ of 4: one slot kept for the responder, a window of 3.
    let (st, mut qp) = tb.create_qp_sq(QPN, PD, qp_type::RC, NO_SRQ, 4, 4, 8);
    assert_eq!(st, CtrlStatus::Ok);
    let req = REQUESTER_V4;
    assert_eq!(
        tb.connect_qp(QPN, PEER, req.gid(), 0xd000, RQ_PSN, 3, all, 0),
        CtrlStatus::Ok
    );
    for i in 0..4 {
        qp.post_send(&wqe(i, send_op::SEND, 0, 8));
    }
    while tb.fw.poll() {}
    assert!(tb.take_sent().is_empty(), "no address yet");
    assert_eq!(tb.fw.device_stats().get(dev::REQ_WQES_TAKEN), 3);
    // A SEND from the peer (into a posted buffer) teaches the address.
    qp.post(90, BUS + 4096, 64, LKEY);
    let mut s = request(op::RC_SEND_ONLY, QPN, RQ_PSN, true, 8);
    s.bth.solicited = false;
    tb.fw.hal_mut().rx.push(&req.frame(&s, &[9; 8]));
    while tb.fw.poll() {}
    let sent: Vec<_> = tb
        .take_sent()
        .iter()
        .map(|f| parse_response(f).unwrap())
        .collect();
    // The ACK of its SEND, then our three SENDs (the window is full).
    assert_eq!(
        sent.iter().map(hdr).collect::<Vec<_>>(),
        vec![
            (op::RC_ACK, PEER, RQ_PSN, false),
            (op::RC_SEND_ONLY, PEER, 0, true),
            (op::RC_SEND_ONLY, PEER, 1, true),
            (op::RC_SEND_ONLY, PEER, 2, true),
        ]
    );
    // The receive completion took the responder's slot: the fourth waits for room.
    while tb.fw.poll() {}
    assert_eq!(tb.fw.device_stats().get(dev::REQ_WQES_TAKEN), 3);
}

/// Any response a hostile peer sends: never a panic, a completion only for a WQE that was
/// posted, each WQE completed at most once, in order, and a well-formed CQ.
#[test]
fn hostile_responses_never_complete_a_wqe_twice_or_out_of_order() {
    let ops = [
        op::RC_ACK,
        op::RC_READ_RESPONSE_FIRST,
        op::RC_READ_RESPONSE_MIDDLE,
        op::RC_READ_RESPONSE_LAST,
        op::RC_READ_RESPONSE_ONLY,
        op::RC_ATOMIC_ACK,
    ];
    proptest!(ProptestConfig::with_cases(96), |(
        pkts in prop::collection::vec((0usize..6, 0u32..12, any::<u8>(), 0usize..1500, any::<bool>()), 1..24),
        kinds in prop::collection::vec(0u8..3, 1..6),
    )| {
        let mut rig = Rig::new(2, 2);
        for (i, k) in kinds.iter().enumerate() {
            let opc = [send_op::SEND, send_op::RDMA_WRITE, send_op::RDMA_READ][*k as usize];
            rig.qp.post_send(&wqe(i as u64, opc, 0, 1500));
        }
        rig.run();
        let mut seen = Vec::new();
        for (o, dp, syn, n, tick) in pkts {
            let o = ops[o];
            let mut r = request(o, QPN, psn(dp), false, n);
            if o != op::RC_READ_RESPONSE_MIDDLE {
                r.aeth = Some(Aeth { syndrome: syn, msn: 0 });
            }
            if o == op::RC_ATOMIC_ACK {
                r.payload_len = 0;
                r.atomic_ack_eth = Some(splitrx_shared::wire::roce::AtomicAckEth(0));
            }
            let f = rig.req.frame(&r, &vec![0x5a; r.payload_len]);
            rig.feed(&f);
            if tick {
                rig.advance_ns(5_000_000);
                rig.run();
            }
            seen.extend(rig.qp.cqes());
        }
        let ids: Vec<u64> = seen.iter().map(|c| c.wr_id.get()).collect();
        let want: Vec<u64> = (0..ids.len() as u64).collect();
        prop_assert_eq!(ids, want, "completions in posting order, once each");
        for c in &seen {
            prop_assert!(c.opcode < 128 && c.qpn.get() == QPN);
        }
        // Only the MR's last 4 bytes (the peer's WRITE) and READ targets may change.
        let m = rig.tb.mem.read(BUS + 1500, (MR_LEN - 1500 - 4) as usize);
        prop_assert!(m.iter().all(|&b| b == GUARD));
    });
}

#[test]
fn a_ud_send_is_one_datagram_to_the_wqes_qp_and_completes_when_sent() {
    let mut tb = Testbed::new();
    tb.mem.fill(BUS, MR_LEN as usize, GUARD);
    assert_eq!(
        tb.register_mr(BUS, MR_LEN, 0x10_0000, RKEY, LKEY, access::LOCAL_WRITE, PD),
        CtrlStatus::Ok
    );
    let (st, mut qp) = tb.create_qp_sq(QPN, PD, qp_type::UD, NO_SRQ, 8, 16, 8);
    assert_eq!(st, CtrlStatus::Ok);
    let req = REQUESTER_V4;
    assert_eq!(
        tb.connect_qp(
            QPN,
            0,
            req.gid(),
            0xd000,
            0,
            3,
            access::LOCAL_WRITE,
            0x1111_1111
        ),
        CtrlStatus::Ok
    );
    let ud = |wr_id: u64, opc: u8, len: u32| {
        let mut w = wqe(wr_id, opc, 0, len);
        w.remote_qpn = U32::new(PEER);
        w.remote_qkey = U32::new(0x2222_2222);
        w
    };
    // Nothing goes out before a datagram with our Q_Key taught the peer's address.
    qp.post_send(&ud(1, send_op::SEND, 100));
    while tb.fw.poll() {}
    assert!(tb.take_sent().is_empty());
    qp.post(50, BUS + 8192, 2048, LKEY);
    let mut d = request(op::UD_SEND_ONLY, QPN, 7, false, 16);
    d.deth = Some(splitrx_shared::wire::roce::Deth {
        qkey: 0x1111_1111,
        src_qp: PEER,
    });
    let data = pattern(100, 4);
    assert!(tb.mem.write(BUS, &data));
    tb.fw.hal_mut().rx.push(&req.frame(&d, &[3; 16]));
    while tb.fw.poll() {}
    let sent: Vec<Response> = tb
        .take_sent()
        .iter()
        .map(|f| parse_response(f).unwrap())
        .collect();
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert!(r.icrc_ok);
    assert_eq!(
        (r.roce.bth.opcode, r.roce.bth.dest_qp, r.roce.bth.psn),
        (op::UD_SEND_ONLY, PEER, 0)
    );
    assert_eq!(
        r.roce.deth,
        Some(splitrx_shared::wire::roce::Deth {
            qkey: 0x2222_2222,
            src_qp: QPN
        })
    );
    assert_eq!(r.route.eth.dst_addr, req.mac);
    let c = qp.cqes();
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!(c[0].opcode, wc_opcode::RECV);
    assert_eq!(
        (
            c[1].wr_id.get(),
            c[1].status,
            c[1].opcode,
            c[1].byte_len.get()
        ),
        (1, wc_status::SUCCESS, wc_opcode::SEND, 100)
    );
    assert_eq!(r.payload, data);
    // Longer than the path MTU, or an RDMA opcode: the WQE fails, the QP stays usable.
    qp.post_send(&ud(2, send_op::SEND, 1025));
    qp.post_send(&ud(3, send_op::RDMA_WRITE, 8));
    qp.post_send(&ud(4, send_op::SEND_WITH_IMM, 8));
    while tb.fw.poll() {}
    let c: Vec<(u64, u8)> = qp
        .cqes()
        .iter()
        .map(|c| (c.wr_id.get(), c.status))
        .collect();
    assert_eq!(
        c,
        vec![
            (2, wc_status::LOC_LEN_ERR),
            (3, wc_status::LOC_QP_OP_ERR),
            (4, wc_status::SUCCESS)
        ]
    );
    let sent = tb.take_sent();
    assert_eq!(sent.len(), 1);
    let r = parse_response(&sent[0]).unwrap();
    assert_eq!(
        (r.roce.bth.opcode, r.roce.bth.psn),
        (op::UD_SEND_ONLY_IMM, 1)
    );
}
