//! Fuzzes the RoCE firmware against a hostile peer on the wire: an RC QP that both responds and
//! requests (SEND, WRITE, READ and SEND posted on its send ring), a UD QP with a send ring, and
//! an rdma_cm listen on QP 1; then arbitrary packets from the peer, each built from a few input
//! bytes (opcode, PSN offset, AETH syndrome, extended headers, payload length) with valid
//! headers and ICRC (or a corrupted byte), interleaved with clock jumps past the timers.
//! Invariants: no panic; the RC QP's send completions name its send WQEs in posting order, each
//! at most once; nothing outside the two memory regions is written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splitrx_firmware::testing::roce::{request, REQUESTER_V4};
use splitrx_firmware::testing::{Testbed, MR_BUS};
use splitrx_shared::abi::{
    access, qp_attr, qp_state, qp_type, send_op, CtrlStatus, ModifyQpArgs, SendWqe, NO_SRQ,
};
use splitrx_shared::wire::roce::{
    ext, opcode as op, Aeth, AtomicAckEth, AtomicEth, Deth, Ieth, ImmDt, Reth, RoceLayout,
};
use zerocopy::little_endian::{U32, U64};

const RC: u32 = 0x11;
const UD: u32 = 0x12;
const PEER: u32 = 0x22;
const KEY: u32 = 0x1000;
const MR_LEN: u64 = 16 << 10;
const GUARD: u8 = 0xa5;

/// Opcodes a peer may send: every request and response opcode, UD, CNP, and junk.
const OPS: [u8; 24] = [
    op::RC_SEND_FIRST,
    op::RC_SEND_MIDDLE,
    op::RC_SEND_LAST,
    op::RC_SEND_ONLY,
    op::RC_SEND_ONLY_IMM,
    op::RC_WRITE_FIRST,
    op::RC_WRITE_LAST,
    op::RC_WRITE_ONLY,
    op::RC_WRITE_ONLY_IMM,
    op::RC_READ_REQUEST,
    op::RC_READ_RESPONSE_FIRST,
    op::RC_READ_RESPONSE_MIDDLE,
    op::RC_READ_RESPONSE_LAST,
    op::RC_READ_RESPONSE_ONLY,
    op::RC_ACK,
    op::RC_ATOMIC_ACK,
    op::RC_COMPARE_SWAP,
    op::RC_FETCH_ADD,
    op::RC_SEND_ONLY_INV,
    op::UD_SEND_ONLY,
    op::UD_SEND_ONLY_IMM,
    op::CNP,
    0x1f,
    0xff,
];

fn wqe(wr_id: u64, opc: u8, qpn: u32, off: u64, len: u32) -> SendWqe {
    SendWqe {
        wr_id: U64::new(wr_id),
        bus_addr: U64::new(MR_BUS + off),
        len: U32::new(len),
        lkey: U32::new(KEY),
        remote_addr: U64::new(0x5000_0000),
        rkey: U32::new(0x77),
        opcode: opc,
        qpn: U32::new(qpn),
        remote_qpn: U32::new(PEER),
        remote_qkey: U32::new(0x1111_1111),
        ..Default::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut tb = Testbed::new();
    tb.mem.fill(MR_BUS - 4096, (MR_LEN + 8192) as usize, GUARD);
    let all =
        access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ | access::REMOTE_ATOMIC;
    if tb.register_mr(MR_BUS, MR_LEN, 0x10_0000, KEY, KEY, all, 1) != CtrlStatus::Ok {
        return;
    }
    let (_, mut rc) = tb.create_qp_sq(RC, 1, qp_type::RC, NO_SRQ, 8, 32, 8);
    let (_, mut ud) = tb.create_qp_sq(UD, 1, qp_type::UD, NO_SRQ, 8, 32, 8);
    let req = REQUESTER_V4;
    tb.connect_qp(RC, PEER, req.gid(), 0xd000, 0, 3, all, 0);
    tb.connect_qp(UD, 0, req.gid(), 0xd000, 0, 3, all, 0x1111_1111);
    let a = ModifyQpArgs {
        qpn: U32::new(RC),
        attr_mask: U32::new(qp_attr::TIMEOUT | qp_attr::RETRY_CNT | qp_attr::RNR_RETRY),
        state: qp_state::RTS,
        timeout: 8,
        retry_cnt: 2,
        rnr_retry: 2,
        ..Default::default()
    };
    tb.modify_qp(&a);
    for i in 0..4 {
        rc.post(100 + i, MR_BUS + 8192 + i * 1024, 1024, KEY);
        ud.post(200 + i, MR_BUS + 12288 + i * 1024, 1024, KEY);
    }
    let posted = [
        wqe(1, send_op::SEND, RC, 0, 2000),
        wqe(2, send_op::RDMA_WRITE, RC, 0, 700),
        wqe(3, send_op::RDMA_READ, RC, 4096, 3000),
        wqe(4, send_op::SEND_WITH_IMM, RC, 0, 0),
    ];
    for w in &posted {
        rc.post_send(w);
    }
    ud.post_send(&wqe(9, send_op::SEND, UD, 0, 100));
    let mut seen = 0u64;
    for c in data.chunks(8) {
        let get = |i: usize| c.get(i).copied().unwrap_or(0);
        let opcode = OPS[get(0) as usize % OPS.len()];
        let dest = if opcode >= op::UD_SEND_ONLY { UD } else { RC };
        let psn = (get(1) as u32).wrapping_sub(8) & 0xff_ffff;
        let len = (get(3) as usize) * 8 % 1100;
        let mut r = request(opcode, dest, psn, get(4) & 1 == 1, len);
        // Exactly the extended headers the opcode implies, their values from the input.
        let layout = RoceLayout::for_opcode(opcode);
        let has = |bit: u8| layout.is_some_and(|l| l.has(bit));
        let ext = get(4) >> 1;
        if has(ext::AETH) {
            r.aeth = Some(Aeth {
                syndrome: get(2),
                msn: get(5) as u32,
            });
        }
        if has(ext::RETH) {
            r.reth = Some(Reth {
                va: 0x10_0000 + (get(5) as u64) * 64,
                rkey: if ext & 1 == 1 { 0x55 } else { KEY },
                dma_len: (get(6) as u32) * 16,
            });
        }
        if has(ext::ATOMIC_ETH) {
            r.atomic_eth = Some(AtomicEth {
                va: 0x10_0000 + (get(5) as u64) * 4,
                rkey: KEY,
                swap_add: 1,
                compare: 0,
            });
        }
        if has(ext::ATOMIC_ACK_ETH) {
            r.atomic_ack_eth = Some(AtomicAckEth(7));
        }
        if has(ext::DETH) {
            r.deth = Some(Deth {
                qkey: if ext & 4 == 4 { 0x1111_1111 } else { 5 },
                src_qp: PEER,
            });
        }
        if has(ext::IMMDT) {
            r.imm_dt = Some(ImmDt(1));
        }
        if has(ext::IETH) {
            r.ieth = Some(Ieth(0x55));
        }
        let payload = vec![get(7); len];
        let mut f = req.frame(&r, &payload);
        if get(6) == 0xff {
            let i = get(7) as usize % f.len();
            f[i] ^= 0x40;
        }
        tb.fw.hal_mut().rx.push(&f);
        let mut polls = 0;
        while tb.fw.poll() && polls < 10_000 {
            polls += 1;
        }
        assert!(polls < 10_000, "the firmware never went idle");
        if get(2) & 0x80 != 0 {
            tb.fw.hal_mut().clock.now += 2_000_000;
            while tb.fw.poll() {}
        }
        let _ = tb.take_sent();
        for cqe in rc.cqes() {
            if cqe.opcode < 128 {
                seen += 1;
                assert_eq!(
                    cqe.wr_id.get(),
                    seen,
                    "send completions in posting order, once each"
                );
            }
        }
        let _ = ud.cqes();
    }
    assert!(seen <= posted.len() as u64);
    // Nothing outside the MR was written.
    assert!(tb.mem.read(MR_BUS - 4096, 4096).iter().all(|&b| b == GUARD));
    assert!(tb
        .mem
        .read(MR_BUS + MR_LEN, 4096)
        .iter()
        .all(|&b| b == GUARD));
});
