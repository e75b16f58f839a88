//! The RC requester: a QP created with a send ring ([`CreateQpArgs::SEND_QUEUE`]) executes the
//! host's [`SendWqe`]s (SEND, SEND with immediate, RDMA WRITE, WRITE with immediate, RDMA READ)
//! towards its peer and completes each on the QP's CQ once the peer acknowledged it.
//!
//! - **Window.** Up to [`SQ_WINDOW`] WQEs are taken from the ring and given PSNs from the QP's
//!   send PSN (a READ takes one PSN per response packet it asks for). A WQE is taken only when
//!   the CQ can hold its completion on top of every completion already owed
//!   ([`Sq::cq_owed`], which the responder also honours).
//! - **Transmit** ([`Responder::poll_sq`], from [`crate::Firmware::poll`]): packets in PSN
//!   order, the path MTU each, payload read by DMA straight into the frame; the last packet of
//!   each message asks for an ACK. At most one READ is in flight
//!   ([`MAX_RD_ATOMIC_INFLIGHT`]): a READ waits for the one before it to complete.
//! - **Acknowledgement** ([`Responder::response`], from the RX path for the response opcodes):
//!   an ACK completes every WQE whose last PSN it covers (coalesced ACKs included); READ
//!   response packets are checked for sequence, opcode and length and placed at the WQE's
//!   buffer by DMA; an ACK beyond a READ that has not been answered means its responses were
//!   lost: the READ is asked again from the first missing byte.
//! - **Retransmission.** A PSN sequence NAK resends from its PSN; an RNR NAK waits the timer
//!   the NAK names (IBA table 45) and resends; no acknowledgement within the QP's timeout
//!   (4.096 us x 2^timeout) resends from the oldest unacknowledged PSN. `retry_cnt` and
//!   `rnr_retry` (7: without limit) bound them; past the bound the WQE completes with
//!   `RETRY_EXC_ERR` / `RNR_RETRY_EXC_ERR`.
//! - **Errors.** A NAK for an invalid request, a remote access or operation error completes
//!   the WQE with `REM_INV_REQ_ERR` / `REM_ACCESS_ERR` / `REM_OP_ERR`; a WQE the NIC refuses
//!   (foreign QPN, unknown opcode, reserved bytes, local range outside its MR, a READ into an
//!   MR without LOCAL_WRITE) completes with `LOC_QP_OP_ERR` / `LOC_PROT_ERR`. Either moves the
//!   QP to ERR, and the WQEs behind it complete with `WR_FLUSH_ERR`, in order.
//! - **Address.** The firmware has no neighbour table: the requester sends to the address the
//!   peer's packets come from (the first request or response accepted on the QP, or the CM
//!   REQ that created the connection). Until then its WQEs wait in the window.
//!
//! The Linux soft-RoCE requester (`rxe_req.c`, `rxe_comp.c`) is the behavioural reference.

use super::resp::{publish, transmit, Io};
use super::tx::Route;
use super::{psn_add, psn_diff, syndrome, Mr, Qp, Responder, TX_FRAME_MAX};
use crate::hal::{Clock, Dma, DmaSegment, Hal, HalParts, TxError};
use crate::stats::{dev, DeviceStats};
use heapless::Deque;
use splitrx_shared::abi::{
    access, qp_state, qp_type, send_flags, send_op, wc_opcode, wc_status, RoceCqe, SendWqe,
    MAX_RD_ATOMIC_INFLIGHT,
};
use splitrx_shared::ring::Consumer;
use splitrx_shared::wire::roce::{opcode, Aeth, Deth, ImmDt, Reth, RocePacket, RoceRepr};
use zerocopy::little_endian::{U16, U32};

/// Send WQEs a QP keeps between its ring and their completion.
pub const SQ_WINDOW: usize = 8;
/// Packets [`Responder::poll_sq`] sends per QP per call.
const SQ_BUDGET: u32 = 16;

/// One send WQE in the window.
#[derive(Clone, Copy, Debug)]
pub struct Swqe {
    pub wr_id: u64,
    /// [`send_op`].
    pub op: u8,
    pub solicited: bool,
    pub bus: u64,
    pub len: u32,
    pub raddr: u64,
    pub rkey: u32,
    pub imm: u32,
    /// PSN of its first packet (a READ: of its request and first response).
    pub first_psn: u32,
    /// PSNs it takes: its packets, or a READ's response packets.
    pub npkts: u32,
    /// `SUCCESS`, or the local error it completes with when it reaches the head.
    pub status: u8,
    /// READ: response packets placed so far.
    pub got: u32,
}

impl Swqe {
    fn last_psn(&self) -> u32 {
        psn_add(self.first_psn, self.npkts.saturating_sub(1))
    }
    /// Whether `psn` is one of its PSNs.
    fn holds(&self, psn: u32) -> bool {
        let d = psn_diff(psn, self.first_psn);
        d >= 0 && (d as u32) < self.npkts
    }
    fn wc_opcode(&self) -> u8 {
        match self.op {
            send_op::RDMA_WRITE | send_op::RDMA_WRITE_WITH_IMM => wc_opcode::RDMA_WRITE,
            send_op::RDMA_READ => wc_opcode::RDMA_READ,
            _ => wc_opcode::SEND,
        }
    }
}

/// A QP's requester state.
#[derive(Debug)]
pub struct Sq {
    /// The QP's slot in the QP table.
    pub qp: u16,
    pub(crate) ring: Consumer<SendWqe>,
    /// PSN of the next WQE taken.
    pub psn: u32,
    /// Next PSN to transmit.
    pub send_psn: u32,
    /// Oldest PSN not yet acknowledged.
    pub una: u32,
    /// Highest PSN sent + 1 (packets below it are retransmissions).
    pub sent_hwm: u32,
    pub wqes: Deque<Swqe, SQ_WINDOW>,
    /// `ibv_qp_attr` timeout code, retry counts, and the retries left.
    pub timeout: u8,
    pub retry_cnt: u8,
    pub rnr_retry: u8,
    pub retries: u8,
    pub rnr_retries: u8,
    /// When the oldest outstanding packet's timer started (`None`: nothing outstanding).
    pub timer_ns: Option<u64>,
    /// An RNR NAK holds transmission until then.
    pub rnr_until: Option<u64>,
    /// Where the peer is (learned from its packets).
    pub peer: Option<Route>,
    /// The head READ was asked again from a response in its middle: the next response
    /// starts anew (FIRST or ONLY).
    pub restarted: bool,
}

impl Sq {
    pub fn new(qp: u16, ring: Consumer<SendWqe>) -> Sq {
        Sq {
            qp,
            ring,
            psn: 0,
            send_psn: 0,
            una: 0,
            sent_hwm: 0,
            wqes: Deque::new(),
            timeout: 14,
            retry_cnt: 7,
            rnr_retry: 7,
            retries: 7,
            rnr_retries: 7,
            timer_ns: None,
            rnr_until: None,
            peer: None,
            restarted: false,
        }
    }
    /// Sets the first PSN (ModifyQp's `sq_psn`): nothing is outstanding then.
    pub fn set_psn(&mut self, psn: u32) {
        self.psn = psn;
        self.send_psn = psn;
        self.una = psn;
        self.sent_hwm = psn;
    }
    /// Forgets everything but the ring and the attributes (ModifyQp to RESET).
    pub fn reset(&mut self) {
        self.wqes.clear();
        self.set_psn(0);
        self.timer_ns = None;
        self.rnr_until = None;
        self.peer = None;
        self.restarted = false;
    }
}

/// The local ACK timeout of code `t` in ns (`None`: 0, wait forever).
pub const fn timeout_ns(t: u8) -> Option<u64> {
    if t == 0 {
        None
    } else {
        Some(4096u64 << (if t > 31 { 31 } else { t }))
    }
}

/// The RNR NAK timer of code `t` (IBA table 45) in ns.
pub const fn rnr_ns(t: u8) -> u64 {
    const US_X100: [u32; 32] = [
        65536, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024,
        1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152,
    ];
    // Entries are in units of 10 us (0.01 ms).
    US_X100[(t & 0x1f) as usize] as u64 * 10_000
}

/// Validates a ring entry against the QP and its MR (`mr` looks an lkey up); `SUCCESS` or the
/// local error.
fn check(w: &SendWqe, qp: &Qp, mr: &impl Fn(u32) -> Option<Mr>) -> u8 {
    let op = w.opcode;
    if w.qpn.get() != qp.qpn
        || w._pad.get() != 0
        || w._rsvd != [0; 8]
        || w.flags & !send_flags::SOLICITED != 0
        || op > send_op::RDMA_READ
        || (qp.qp_type == qp_type::UD && !matches!(op, send_op::SEND | send_op::SEND_WITH_IMM))
    {
        return wc_status::LOC_QP_OP_ERR;
    }
    let len = w.len.get();
    if qp.qp_type == qp_type::UD && len > qp.mtu {
        return wc_status::LOC_LEN_ERR;
    }
    if len == 0 {
        return wc_status::SUCCESS;
    }
    let Some(mr) = mr(w.lkey.get()) else {
        return wc_status::LOC_PROT_ERR;
    };
    if mr.pd != qp.pd
        || !mr.holds(w.bus_addr.get(), len as u64)
        || (op == send_op::RDMA_READ && mr.access & access::LOCAL_WRITE == 0)
    {
        return wc_status::LOC_PROT_ERR;
    }
    wc_status::SUCCESS
}

/// A requester completion for `w`.
fn cqe(qp: &Qp, w: &Swqe, status: u8) -> RoceCqe {
    RoceCqe {
        wr_id: w.wr_id.into(),
        byte_len: U32::new(if status == wc_status::SUCCESS {
            w.len
        } else {
            0
        }),
        imm_or_inv: U32::new(0),
        qpn: U32::new(qp.qpn),
        src_qp: U32::new(qp.dest_qpn),
        status,
        opcode: w.wc_opcode(),
        wc_flags: U16::new(0),
        psn: U32::new(w.last_psn()),
    }
}

/// Completes the head WQE with `status`.
fn complete_head(qp: &mut Qp, sq: &mut Sq, st: &mut DeviceStats, status: u8) {
    let Some(w) = sq.wqes.pop_front() else {
        return;
    };
    qp.sq_owed = sq.wqes.len() as u16;
    let c = cqe(qp, &w, status);
    if status == wc_status::SUCCESS {
        st.inc(dev::REQ_WQES_COMPLETED);
    } else {
        st.inc(dev::REQ_CQE_ERROR);
    }
    // The window's completions were reserved when its WQEs were taken; a failed push (a
    // corrupt CQ) is counted and moves the QP to ERR inside `publish`.
    publish(qp, st, &c);
}

/// The requester failed (`status` for the head WQE): the QP goes to ERR, the rest of the
/// window completes with `WR_FLUSH_ERR`.
fn fail(qp: &mut Qp, sq: &mut Sq, st: &mut DeviceStats, status: u8) {
    complete_head(qp, sq, st, status);
    flush(qp, sq, st);
    qp.state = qp_state::ERR;
}

/// Every WQE of the window completes with `WR_FLUSH_ERR` (the QP is in ERR or going to
/// RESET).
pub(crate) fn flush(qp: &mut Qp, sq: &mut Sq, st: &mut DeviceStats) {
    while !sq.wqes.is_empty() {
        complete_head(qp, sq, st, wc_status::WR_FLUSH_ERR);
    }
    sq.timer_ns = None;
    sq.rnr_until = None;
}

impl Responder {
    /// The QP in `slot` and its requester, when it has one.
    pub(crate) fn qp_sq(&mut self, slot: usize) -> Option<(&mut Qp, &mut Sq)> {
        let qp = self.qps.get_mut(slot)?.as_mut()?;
        let sq = self.sqs.get_mut(qp.sq? as usize)?.as_mut()?;
        Some((qp, sq))
    }

    /// Runs every requester: takes WQEs, sends packets, fires timers, flushes the windows of
    /// QPs the responder moved to ERR. Returns whether a packet was sent or a WQE completed.
    pub fn poll_sq<H: Hal>(&mut self, hal: &mut HalParts<H>, st: &mut DeviceStats) -> bool {
        if self.sq_count == 0 {
            return false;
        }
        let mut io = Io::of(hal);
        let mut work = false;
        let mut now = None;
        for i in 0..self.sqs.len() {
            let Some(slot) = self.sqs[i].as_ref().map(|s| s.qp as usize) else {
                continue;
            };
            let now = *now.get_or_insert_with(|| io.clock.now_ns());
            let Responder {
                qps,
                sqs,
                mrs,
                lkeys,
                tx,
                ..
            } = self;
            let (Some(qp), Some(sq)) = (qps[slot].as_mut(), sqs[i].as_mut()) else {
                continue;
            };
            match qp.state {
                qp_state::RTS => {}
                qp_state::ERR if !sq.wqes.is_empty() => {
                    flush(qp, sq, st);
                    work = true;
                    continue;
                }
                _ => continue,
            }
            let mr = |lkey| {
                let m = mrs.get(*lkeys.get(&lkey)? as usize)?.as_ref()?;
                m.valid.then_some(*m)
            };
            if qp.qp_type == qp_type::UD {
                work |= ud_send(&mut io, tx, qp, sq, st, mr);
                continue;
            }
            work |= take_wqes(qp, sq, st, mr);
            work |= timers(qp, sq, st, now);
            work |= send_packets(&mut io, tx, qp, sq, st, now);
        }
        work
    }
}

/// UD: each WQE is one SEND ONLY datagram (DETH: the WQE's Q_Key, our QPN) to the WQE's
/// destination QP at the QP's peer address, completed as soon as the MAC took it (UD has no
/// acknowledgement). A WQE the NIC refuses completes with its error; the QP stays usable, as
/// a UD QP's local errors only fail the WQE in verbs.
fn ud_send<H: Hal>(
    io: &mut Io<'_, H>,
    tx: &mut [u8; TX_FRAME_MAX],
    qp: &mut Qp,
    sq: &mut Sq,
    st: &mut DeviceStats,
    mr: impl Fn(u32) -> Option<Mr>,
) -> bool {
    let Some(route) = sq.peer else { return false };
    let mut work = false;
    for _ in 0..SQ_BUDGET {
        // One CQ slot for this completion besides the responder's.
        match qp.cq.free() {
            Ok(n) if n >= 2 => {}
            Ok(_) => break,
            Err(_) => {
                st.inc(dev::ROCE_RING_FAULTS);
                qp.state = qp_state::ERR;
                return true;
            }
        }
        // Looked at, not taken: a busy MAC leaves it for the next poll.
        let w = match sq.ring.peek(1).map(|c| c.get(0)) {
            Ok(Some(w)) => w,
            Ok(None) => break,
            Err(_) => {
                st.inc(dev::ROCE_RING_FAULTS);
                qp.state = qp_state::ERR;
                return true;
            }
        };
        let mut status = check(&w, qp, &mr);
        let len = w.len.get();
        if status == wc_status::SUCCESS {
            let imm = w.opcode == send_op::SEND_WITH_IMM;
            let op = if imm {
                opcode::UD_SEND_ONLY_IMM
            } else {
                opcode::UD_SEND_ONLY
            };
            let mut r = RoceRepr::new(op, w.remote_qpn.get() & 0xff_ffff, sq.psn, len as usize);
            r.bth.solicited = w.flags & send_flags::SOLICITED != 0;
            r.deth = Some(Deth {
                qkey: w.remote_qkey.get(),
                src_qp: qp.qpn,
            });
            r.imm_dt = imm.then_some(ImmDt(w.imm.get()));
            let dma = &mut io.dma;
            let from = w.bus_addr.get();
            let built = route.emit(&mut tx[..], &r, |p| {
                if p.is_empty() {
                    Ok(())
                } else {
                    dma.read(from, p)
                }
            });
            match built {
                Ok(n) => match transmit(&mut *io.tx, st, &tx[..], n) {
                    Ok(()) => {}
                    Err(TxError::Busy) => break,
                    Err(TxError::TooLong) => status = wc_status::LOC_LEN_ERR,
                },
                Err(_) => {
                    st.inc(dev::ROCE_RESP_DMA_ERRORS);
                    status = wc_status::LOC_PROT_ERR;
                }
            }
        }
        // Our copy `w` is what was checked and sent; this only moves the index.
        let _ = sq.ring.pop();
        st.inc(dev::REQ_WQES_TAKEN);
        let s = Swqe {
            wr_id: w.wr_id.get(),
            op: w.opcode,
            solicited: false,
            bus: w.bus_addr.get(),
            len,
            raddr: 0,
            rkey: 0,
            imm: 0,
            first_psn: sq.psn,
            npkts: 1,
            status,
            got: 0,
        };
        if status == wc_status::SUCCESS {
            sq.psn = psn_add(sq.psn, 1);
        }
        let c = cqe(qp, &s, status);
        if status == wc_status::SUCCESS {
            st.inc(dev::REQ_WQES_COMPLETED);
        } else {
            st.inc(dev::REQ_CQE_ERROR);
        }
        publish(qp, st, &c);
        work = true;
    }
    work
}

/// Moves WQEs from the ring into the window while it and the CQ have room.
fn take_wqes(
    qp: &mut Qp,
    sq: &mut Sq,
    st: &mut DeviceStats,
    mr: impl Fn(u32) -> Option<Mr>,
) -> bool {
    let mut took = false;
    loop {
        // A refused WQE ends the window: nothing behind it runs (it fails the QP).
        if sq.wqes.is_full() || sq.wqes.iter().any(|w| w.status != wc_status::SUCCESS) {
            return took;
        }
        // Room for this completion, those the window owes and the responder's.
        let owed = sq.wqes.len() + 1 + 1;
        match qp.cq.free() {
            Ok(n) if n as usize >= owed => {}
            Ok(_) => return took,
            Err(_) => {
                st.inc(dev::ROCE_RING_FAULTS);
                qp.state = qp_state::ERR;
                return true;
            }
        }
        let w = match sq.ring.pop() {
            Ok(Some(w)) => w,
            Ok(None) => return took,
            Err(_) => {
                st.inc(dev::ROCE_RING_FAULTS);
                qp.state = qp_state::ERR;
                return true;
            }
        };
        let status = check(&w, qp, &mr);
        let mtu = qp.mtu.max(256);
        let len = w.len.get();
        let npkts = len.div_ceil(mtu).max(1);
        let s = Swqe {
            wr_id: w.wr_id.get(),
            op: w.opcode,
            solicited: w.flags & send_flags::SOLICITED != 0,
            bus: w.bus_addr.get(),
            len,
            raddr: w.remote_addr.get(),
            rkey: w.rkey.get(),
            imm: w.imm.get(),
            first_psn: sq.psn,
            npkts: if status == wc_status::SUCCESS {
                npkts
            } else {
                0
            },
            status,
            got: 0,
        };
        // A refused WQE takes no PSN: it completes with its error at the head.
        sq.psn = psn_add(sq.psn, s.npkts);
        let _ = sq.wqes.push_back(s);
        qp.sq_owed = sq.wqes.len() as u16;
        st.inc(dev::REQ_WQES_TAKEN);
        took = true;
    }
}

/// The local ACK timer, the RNR wait, and a refused WQE at the head.
fn timers(qp: &mut Qp, sq: &mut Sq, st: &mut DeviceStats, now: u64) -> bool {
    if sq.rnr_until.is_some_and(|t| now >= t) {
        sq.rnr_until = None;
    }
    if let Some(h) = sq.wqes.front() {
        if h.status != wc_status::SUCCESS {
            let s = h.status;
            fail(qp, sq, st, s);
            return true;
        }
    }
    let (Some(t0), Some(limit)) = (sq.timer_ns, timeout_ns(sq.timeout)) else {
        return false;
    };
    if now.wrapping_sub(t0) < limit {
        return false;
    }
    st.inc(dev::REQ_TIMEOUTS);
    if sq.retries == 0 {
        fail(qp, sq, st, wc_status::RETRY_EXC_ERR);
        return true;
    }
    sq.retries -= 1;
    sq.send_psn = sq.una;
    sq.timer_ns = Some(now);
    true
}

/// Sends packets from `send_psn` on.
fn send_packets<H: Hal>(
    io: &mut Io<'_, H>,
    tx: &mut [u8; TX_FRAME_MAX],
    qp: &mut Qp,
    sq: &mut Sq,
    st: &mut DeviceStats,
    now: u64,
) -> bool {
    let mtu = qp.mtu.max(256);
    let Some(route) = sq.peer else { return false };
    if sq.rnr_until.is_some() {
        return false;
    }
    let mut sent = false;
    for _ in 0..SQ_BUDGET {
        let psn = sq.send_psn;
        let Some(i) = sq.wqes.iter().position(|w| w.holds(psn)) else {
            break;
        };
        let w = *sq.wqes.iter().nth(i).expect("found");
        // One READ in flight: a READ waits for the READs before it.
        if w.op == send_op::RDMA_READ
            && sq
                .wqes
                .iter()
                .take(i)
                .filter(|p| p.op == send_op::RDMA_READ)
                .count()
                >= MAX_RD_ATOMIC_INFLIGHT as usize
        {
            break;
        }
        let k = psn_diff(psn, w.first_psn) as u32;
        let (roce, from, n, next) = build(&w, k, mtu, qp.dest_qpn, psn);
        if w.op == send_op::RDMA_READ {
            sq.restarted = k > 0;
        }
        let dma = &mut io.dma;
        let built = route.emit(&mut tx[..], &roce, |p| {
            if n == 0 {
                Ok(())
            } else {
                dma.read(from, p)
            }
        });
        let len = match built {
            Ok(len) => len,
            Err(_) => {
                st.inc(dev::ROCE_RESP_DMA_ERRORS);
                fail(qp, sq, st, wc_status::LOC_PROT_ERR);
                return true;
            }
        };
        match transmit(&mut *io.tx, st, &tx[..], len) {
            Ok(()) => {}
            Err(TxError::Busy) => break,
            Err(TxError::TooLong) => {
                fail(qp, sq, st, wc_status::LOC_QP_OP_ERR);
                return true;
            }
        }
        if psn_diff(psn, sq.sent_hwm) < 0 {
            st.inc(dev::REQ_RETRANSMITS);
        }
        if psn_diff(next, sq.sent_hwm) > 0 {
            sq.sent_hwm = next;
        }
        sq.send_psn = next;
        if sq.timer_ns.is_none() {
            sq.timer_ns = Some(now);
        }
        sent = true;
    }
    sent
}

/// Packet `k` of `w` at `psn`: its headers, where its payload comes from, how many bytes, and
/// the PSN after it (a READ request jumps over its responses).
fn build(w: &Swqe, k: u32, mtu: u32, dest_qp: u32, psn: u32) -> (RoceRepr, u64, u32, u32) {
    let off = k * mtu;
    let last = k + 1 >= w.npkts;
    let mut r = RoceRepr::new(0, dest_qp, psn, 0);
    if w.op == send_op::RDMA_READ {
        // From the first response not received: the rest of the READ.
        r.bth.opcode = opcode::RC_READ_REQUEST;
        r.bth.ack_req = true;
        r.reth = Some(Reth {
            va: w.raddr.wrapping_add(off as u64),
            rkey: w.rkey,
            dma_len: w.len - off.min(w.len),
        });
        return (r, 0, 0, psn_add(w.first_psn, w.npkts));
    }
    let n = (w.len - off.min(w.len)).min(mtu);
    let first = k == 0;
    let imm = matches!(w.op, send_op::SEND_WITH_IMM | send_op::RDMA_WRITE_WITH_IMM);
    let send = matches!(w.op, send_op::SEND | send_op::SEND_WITH_IMM);
    r.bth.opcode = match (send, first, last, imm) {
        (true, true, true, false) => opcode::RC_SEND_ONLY,
        (true, true, true, true) => opcode::RC_SEND_ONLY_IMM,
        (true, true, false, _) => opcode::RC_SEND_FIRST,
        (true, false, false, _) => opcode::RC_SEND_MIDDLE,
        (true, false, true, false) => opcode::RC_SEND_LAST,
        (true, false, true, true) => opcode::RC_SEND_LAST_IMM,
        (false, true, true, false) => opcode::RC_WRITE_ONLY,
        (false, true, true, true) => opcode::RC_WRITE_ONLY_IMM,
        (false, true, false, _) => opcode::RC_WRITE_FIRST,
        (false, false, false, _) => opcode::RC_WRITE_MIDDLE,
        (false, false, true, false) => opcode::RC_WRITE_LAST,
        (false, false, true, true) => opcode::RC_WRITE_LAST_IMM,
    };
    if !send && first {
        r.reth = Some(Reth {
            va: w.raddr,
            rkey: w.rkey,
            dma_len: w.len,
        });
    }
    if imm && last {
        r.imm_dt = Some(ImmDt(w.imm));
    }
    r.bth.ack_req = last;
    r.bth.solicited = last && w.solicited;
    r.bth.pad_count = ((4 - n % 4) % 4) as u8;
    r.payload_len = n as usize;
    (r, w.bus + off as u64, n, psn_add(psn, 1))
}

/// Whether `op` is a response the requester takes (ACK, READ response, atomic ACK).
#[inline]
pub fn is_response(op: u8) -> bool {
    (opcode::RC_READ_RESPONSE_FIRST..=opcode::RC_ATOMIC_ACK).contains(&op)
}

impl Responder {
    /// A response (`p`) for the requester of the QP in `slot`, whose sender passed the QP's
    /// checks (state, source address, ICRC).
    pub(crate) fn response<D: Dma>(
        &mut self,
        dma: &mut D,
        st: &mut DeviceStats,
        slot: usize,
        p: &RocePacket<&[u8]>,
        now: u64,
    ) {
        let Some((qp, sq)) = self.qp_sq(slot) else {
            st.inc(dev::REQ_DISCARDS);
            return;
        };
        let bth = p.bth();
        let (op, psn) = (bth.opcode(), bth.psn());
        // Only PSNs sent and not yet acknowledged are answers.
        let fresh = psn_diff(psn, sq.una) >= 0 && psn_diff(psn, sq.sent_hwm) < 0;
        if !fresh {
            st.inc(dev::REQ_DISCARDS);
            return;
        }
        let before = psn_add(psn, 0xff_ffff);
        match op {
            opcode::RC_ACK => {
                let Some(Aeth { syndrome: syn, .. }) = p.aeth() else {
                    st.inc(dev::REQ_DISCARDS);
                    return;
                };
                match syn >> 5 {
                    0 => ack_upto(qp, sq, st, psn, now),
                    1 => {
                        st.inc(dev::REQ_RNR_NAKS_RCVD);
                        ack_upto(qp, sq, st, before, now);
                        if sq.rnr_retry != 7 {
                            if sq.rnr_retries == 0 {
                                fail(qp, sq, st, wc_status::RNR_RETRY_EXC_ERR);
                                return;
                            }
                            sq.rnr_retries -= 1;
                        }
                        sq.send_psn = psn;
                        sq.rnr_until = Some(now + rnr_ns(syn & 0x1f));
                        sq.timer_ns = None;
                    }
                    3 => {
                        ack_upto(qp, sq, st, before, now);
                        let status = match syn {
                            syndrome::NAK_PSN_SEQ => {
                                st.inc(dev::REQ_SEQ_NAKS_RCVD);
                                if sq.retries > 0 {
                                    sq.retries -= 1;
                                    sq.send_psn = psn;
                                    sq.timer_ns = Some(now);
                                    return;
                                }
                                wc_status::RETRY_EXC_ERR
                            }
                            syndrome::NAK_REMOTE_ACCESS => wc_status::REM_ACCESS_ERR,
                            syndrome::NAK_REMOTE_OP => wc_status::REM_OP_ERR,
                            _ => wc_status::REM_INV_REQ_ERR,
                        };
                        fail(qp, sq, st, status);
                    }
                    _ => st.inc(dev::REQ_DISCARDS),
                }
            }
            opcode::RC_READ_RESPONSE_FIRST
            | opcode::RC_READ_RESPONSE_MIDDLE
            | opcode::RC_READ_RESPONSE_LAST
            | opcode::RC_READ_RESPONSE_ONLY => {
                // Responses come in order: the WQEs before this READ were acknowledged.
                ack_upto(qp, sq, st, before, now);
                read_response(qp, sq, dma, st, p, op, psn, now);
            }
            _ => st.inc(dev::REQ_DISCARDS),
        }
    }
}

/// An ACK up to and including `psn`: completes the WQEs it covers; an ACK past a READ not yet
/// answered asks the READ again from its first missing response.
fn ack_upto(qp: &mut Qp, sq: &mut Sq, st: &mut DeviceStats, psn: u32, now: u64) {
    if psn_diff(psn, sq.una) < 0 {
        return;
    }
    while let Some(h) = sq.wqes.front().copied() {
        if psn_diff(psn, h.last_psn()) < 0 {
            break;
        }
        if h.op == send_op::RDMA_READ {
            // Its responses were lost (an ACK cannot pass them): ask again.
            sq.una = psn_add(h.first_psn, h.got);
            sq.send_psn = sq.una;
            return;
        }
        complete_head(qp, sq, st, wc_status::SUCCESS);
    }
    let mut next = psn_add(psn, 1);
    // Inside a READ, only its responses acknowledge its PSNs.
    if let Some(h) = sq.wqes.front().filter(|h| h.op == send_op::RDMA_READ) {
        let answered = psn_add(h.first_psn, h.got);
        if psn_diff(next, answered) > 0 {
            next = answered;
        }
    }
    if psn_diff(next, sq.una) > 0 {
        sq.una = next;
        sq.retries = sq.retry_cnt;
        sq.rnr_retries = sq.rnr_retry;
    }
    if psn_diff(sq.send_psn, sq.una) < 0 {
        sq.send_psn = sq.una;
    }
    sq.timer_ns = (sq.una != sq.sent_hwm).then_some(now);
}

/// A READ response packet at `psn`: in sequence for the head READ, the right opcode and
/// length, placed at its buffer.
#[allow(clippy::too_many_arguments)]
fn read_response<D: Dma>(
    qp: &mut Qp,
    sq: &mut Sq,
    dma: &mut D,
    st: &mut DeviceStats,
    p: &RocePacket<&[u8]>,
    op: u8,
    psn: u32,
    now: u64,
) {
    let mtu = qp.mtu.max(256);
    let Some(h) = sq.wqes.front_mut() else {
        st.inc(dev::REQ_DISCARDS);
        return;
    };
    if h.op != send_op::RDMA_READ || psn != psn_add(h.first_psn, h.got) {
        st.inc(dev::REQ_DISCARDS);
        return;
    }
    let off = h.got * mtu;
    let left = h.len - off.min(h.len);
    let last = left <= mtu;
    let data = p.payload();
    // A READ asked again starts its responses anew with FIRST (or ONLY).
    let first = h.got == 0 || sq.restarted;
    let op_ok = match (first, last) {
        (true, true) => op == opcode::RC_READ_RESPONSE_ONLY,
        (true, false) => op == opcode::RC_READ_RESPONSE_FIRST,
        (false, false) => op == opcode::RC_READ_RESPONSE_MIDDLE,
        (false, true) => op == opcode::RC_READ_RESPONSE_LAST,
    };
    let len_ok = data.len() as u32 == if last { left } else { mtu };
    if !op_ok || !len_ok {
        st.inc(dev::REQ_DISCARDS);
        return;
    }
    if !data.is_empty() {
        let seg = DmaSegment {
            bus_addr: h.bus + off as u64,
            data,
        };
        if crate::datapath::dma_write(dma, core::slice::from_ref(&seg)).is_err() {
            st.inc(dev::ROCE_RESP_DMA_ERRORS);
            fail(qp, sq, st, wc_status::LOC_PROT_ERR);
            return;
        }
    }
    h.got += 1;
    sq.restarted = false;
    sq.una = psn_add(psn, 1);
    if psn_diff(sq.send_psn, sq.una) < 0 {
        sq.send_psn = sq.una;
    }
    sq.retries = sq.retry_cnt;
    sq.timer_ns = Some(now);
    if last {
        complete_head(qp, sq, st, wc_status::SUCCESS);
        if sq.una == sq.sent_hwm {
            sq.timer_ns = None;
        }
    }
}
