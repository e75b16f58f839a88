//! The per-packet responder.
//!
//! [`Responder::receive`] takes a RoCEv2 frame the split decision recognised (not tunnelled,
//! RC/UC/UD opcode) whose BTH destination QP exists; every other frame stays on the RX path.
//! A frame for a QP that is not in RTR or RTS is dropped (`resp_discards`), unlike rxe it
//! never reaches an RX queue. Then, in order:
//!
//! 1. ICRC (verified once by the split, unless `Firmware::set_icrc_verify(false)`): bad ->
//!    drop, `rx_icrc_errors`.
//! 2. BTH: TVer 0 and the full or limited default P_Key, else drop; RC/UC: the IP source must be
//!    the QP's `remote_gid`, else drop; the opcode must be of the QP's transport and a request
//!    (READ responses, ACKs and CNPs are the requester's: dropped).
//! 3. ECN: a CE-marked packet counts `np_ecn_marked_roce_packets` and sends a CNP to the
//!    requester unless one went to that QP less than the CNP interval ago (`np_cnp_sent`).
//! 4. RC: PSN against the expected PSN (24-bit, with wrap). Ahead: one PSN-sequence-error NAK
//!    (PSN = expected) until the gap closes (`out_of_seq_request`). Behind: a duplicate
//!    (`duplicate_request`): SEND/WRITE are re-ACKed with the PSN before the expected one;
//!    a READ inside a saved READ's PSN range is re-executed from the saved request (the
//!    duplicate's range must lie inside the original; responses start at the duplicate's PSN,
//!    FIRST/ONLY when it is the original's first PSN, else MIDDLE/LAST, as rxe); an atomic
//!    with a saved PSN gets its saved ATOMIC ACK again (the memory is not touched twice).
//!    UC: a gap drops the rest of the message; the next FIRST/ONLY starts anew. UD: no PSNs.
//! 5. Opcode sequence (FIRST/MIDDLE must be followed by MIDDLE/LAST of the same operation)
//!    and length: FIRST/MIDDLE carry exactly the path MTU, LAST/ONLY at most, READ requests
//!    and atomics none; the QP's access flags must allow the operation. RC: invalid-request
//!    NAK and the QP goes to ERR; UC: the message is dropped.
//! 6. Execute: SEND into the receive WQE the QP holds (taken at FIRST/ONLY from its ring or
//!    SRQ: lkey, PD, LOCAL_WRITE and range checked against the MR table; none posted, or no
//!    free CQ slot -> RNR NAK with the QP's timer, nothing changes); WRITE after rkey, PD,
//!    REMOTE_WRITE and bounds checks (a zero-length WRITE checks none), WRITE with immediate
//!    takes a WQE at its LAST/ONLY before placing it; READ -> READ RESPONSE packets of the
//!    path MTU; CmpSwap/FetchAdd on an 8-byte-aligned address. A bad rkey, PD, access right
//!    or range is a remote-access NAK (RC: QP to ERR). Messages end with a CQE (SEND, WRITE
//!    with immediate) and MSN + 1 (READ: when executed, as rxe; atomics too).
//! 7. ACK (RC) when the request asked for one (AckReq): ACKs are coalesced exactly as the
//!    requester asks; syndrome 0x1f (credits unlimited, as rxe), the QP's MSN, the request's
//!    PSN.
//!
//! Atomics are read-modify-write by this single-threaded responder: atomic with respect to
//! every other RDMA operation on the NIC, not with respect to the host CPU
//! (`IBV_ATOMIC_HCA`). Values are little-endian u64 in memory (the host's byte order).
//!
//! Differences from rxe on purpose: a SEND longer than the posted buffer completes the WQE
//! with `LOC_LEN_ERR` (the responder's local view) where rxe reports `REM_INV_REQ_ERR`; a
//! SEND with invalidate whose rkey names no MR of the QP's PD completes with
//! `LOC_PROT_ERR`, else the MR becomes unusable (rkey and lkey) until deregistered; a READ
//! request that arrives while another READ's responses wait for the MAC is dropped
//! (`resp_discards`) and retried by the requester.

use super::tx::Route;
use super::{mtu_bytes, psn_add, psn_diff, syndrome, Held, Mr, Msg, Qp, ReadJob, Res, Responder};
use super::{Srq, TX_FRAME_MAX};
use crate::config::{MAX_MRS, MAX_SRQS};
use crate::hal::{Clock, Dma, DmaSegment, Hal, HalParts, MacTx, TxError};
use crate::stats::{dev, DeviceStats};
use heapless::FnvIndexMap;
use splitrx_shared::abi::{
    access, qp_state, qp_type, wc_flags, wc_opcode, wc_status, RecvWqe, RoceCqe,
};
use splitrx_shared::split::{FrameClass, NoSplitReason, SplitResult};
use splitrx_shared::wire::roce::{opcode, Aeth, AtomicAckEth, RocePacket, RoceRepr};
use splitrx_shared::wire::{udp, UdpPacket};
use zerocopy::little_endian::{U16, U32};

/// Bytes of the GRH area at the start of a UD receive buffer.
pub const GRH_LEN: usize = 40;
/// READ response packets sent per [`crate::Firmware::poll`] for a READ the MAC held up.
pub const READ_BUDGET: u32 = 64;

/// The low 5 bits of an RC/UC/UD opcode.
mod code {
    pub const SEND_FIRST: u8 = 0;
    pub const SEND_MIDDLE: u8 = 1;
    pub const SEND_LAST: u8 = 2;
    pub const SEND_LAST_IMM: u8 = 3;
    pub const SEND_ONLY: u8 = 4;
    pub const SEND_ONLY_IMM: u8 = 5;
    pub const WRITE_FIRST: u8 = 6;
    pub const WRITE_MIDDLE: u8 = 7;
    pub const WRITE_LAST: u8 = 8;
    pub const WRITE_LAST_IMM: u8 = 9;
    pub const WRITE_ONLY: u8 = 10;
    pub const WRITE_ONLY_IMM: u8 = 11;
    pub const READ_REQUEST: u8 = 12;
    pub const COMPARE_SWAP: u8 = 19;
    pub const FETCH_ADD: u8 = 20;
    pub const SEND_LAST_INV: u8 = 22;
    pub const SEND_ONLY_INV: u8 = 23;

    pub const fn is_send(c: u8) -> bool {
        matches!(c, 0..=5 | 22 | 23)
    }
    pub const fn is_write(c: u8) -> bool {
        matches!(c, 6..=11)
    }
    pub const fn is_atomic(c: u8) -> bool {
        matches!(c, COMPARE_SWAP | FETCH_ADD)
    }
    /// FIRST or ONLY (or a single-packet request).
    pub const fn starts(c: u8) -> bool {
        matches!(
            c,
            SEND_FIRST
                | SEND_ONLY
                | SEND_ONLY_IMM
                | SEND_ONLY_INV
                | WRITE_FIRST
                | WRITE_ONLY
                | WRITE_ONLY_IMM
                | READ_REQUEST
                | COMPARE_SWAP
                | FETCH_ADD
        )
    }
    /// LAST or ONLY.
    pub const fn ends(c: u8) -> bool {
        matches!(c, 2..=5 | 8..=11 | 22 | 23)
    }
    pub const fn has_imm(c: u8) -> bool {
        matches!(c, 3 | 5 | 9 | 11)
    }
    pub const fn has_inv(c: u8) -> bool {
        matches!(c, 22 | 23)
    }
}

/// The request being processed.
struct Pkt<'a> {
    p: RocePacket<&'a [u8]>,
    opcode: u8,
    code: u8,
    psn: u32,
    ack_req: bool,
    payload: &'a [u8],
    frame: &'a [u8],
    l3: usize,
    ip_version: u8,
    sport: u16,
}

/// The HAL parts the responder uses (the MAC's RX side stays borrowed by the frame).
#[derive(Debug)]
pub struct Io<'a, H: Hal> {
    pub tx: &'a mut H::Tx,
    pub dma: &'a mut H::Dma,
    pub clock: &'a mut H::Clock,
}

impl<'a, H: Hal> Io<'a, H> {
    /// Everything of `hal` but the MAC's receive side.
    pub fn of(hal: &'a mut HalParts<H>) -> Io<'a, H> {
        Io {
            tx: &mut hal.tx,
            dma: &mut hal.dma,
            clock: &mut hal.clock,
        }
    }
}

/// Everything the handlers borrow besides the QP.
struct Ctx<'a, 'b, H: Hal> {
    hal: &'b mut Io<'a, H>,
    st: &'b mut DeviceStats,
    mrs: &'b mut [Option<Mr>; MAX_MRS],
    rkeys: &'b FnvIndexMap<u32, u16, MAX_MRS>,
    lkeys: &'b FnvIndexMap<u32, u16, MAX_MRS>,
    srqs: &'b mut [Option<Srq>; MAX_SRQS],
    tx: &'b mut [u8; TX_FRAME_MAX],
    job: &'b mut Option<ReadJob>,
    slot: u16,
}

/// Why no receive WQE could be taken.
enum Take {
    /// None posted, or no free CQ slot: RNR.
    NotReady,
    /// The WQE was refused (it is held, to be completed with `LOC_PROT_ERR`).
    Bad,
    /// The ring or CQ is corrupt (the QP goes to ERR).
    Fault,
}

/// Builds a CQE for the WQE `h` of `qp`.
#[allow(clippy::too_many_arguments)]
fn cqe(
    qp: &Qp,
    h: &Held,
    status: u8,
    op: u8,
    byte_len: u32,
    imm: u32,
    flags: u16,
    src_qp: u32,
    psn: u32,
) -> RoceCqe {
    RoceCqe {
        wr_id: h.wr_id,
        byte_len: U32::new(byte_len),
        imm_or_inv: U32::new(imm),
        qpn: U32::new(qp.qpn),
        src_qp: U32::new(src_qp),
        status,
        opcode: op,
        wc_flags: U16::new(flags),
        psn: U32::new(psn),
    }
}

/// Publishes `c` on the QP's CQ and forgets the held WQE. `false` when the CQ is corrupt or
/// (against the reserved-slot rule) full: counted, the QP goes to ERR.
pub(crate) fn push_cqe(qp: &mut Qp, st: &mut DeviceStats, c: &RoceCqe) -> bool {
    qp.held = None;
    if c.status != wc_status::SUCCESS {
        st.inc(dev::ROCE_RESP_CQE_ERROR);
    }
    publish(qp, st, c)
}

/// Publishes `c` on the QP's CQ (the responder's and the requester's one write). `false` when
/// the CQ is corrupt or (against the reserved-slot rule) full: counted, the QP goes to ERR.
pub(crate) fn publish(qp: &mut Qp, st: &mut DeviceStats, c: &RoceCqe) -> bool {
    match qp.cq.push(c) {
        Ok(true) => true,
        _ => {
            st.inc(dev::ROCE_RING_FAULTS);
            qp.state = qp_state::ERR;
            false
        }
    }
}

/// The flush rule: the WQE the QP holds completes with `WR_FLUSH_ERR` (byte count 0).
pub(crate) fn flush_held(qp: &mut Qp, st: &mut DeviceStats) {
    if let Some(h) = qp.held {
        let c = cqe(
            qp,
            &h,
            wc_status::WR_FLUSH_ERR,
            wc_opcode::RECV,
            0,
            0,
            0,
            qp.dest_qpn,
            qp.epsn,
        );
        st.inc(dev::ROCE_RESP_CQE_FLUSH_ERROR);
        push_cqe(qp, st, &c);
    }
    qp.msg = Msg::Idle;
}

impl<H: Hal> Ctx<'_, '_, H> {
    fn mr_rkey(&self, rkey: u32) -> Option<&Mr> {
        let s = *self.rkeys.get(&rkey)?;
        self.mrs.get(s as usize)?.as_ref().filter(|m| m.valid)
    }

    /// The bus address of the peer's `[va, va + len)` under `rkey` for an operation needing
    /// `right` on a QP of PD `pd`; `None`: remote access error.
    fn remote(&self, pd: u32, rkey: u32, va: u64, len: u64, right: u32) -> Option<u64> {
        let mr = self.mr_rkey(rkey)?;
        if mr.pd != pd || mr.access & right == 0 {
            return None;
        }
        mr.remote(va, len)
    }

    /// Transmits a response built by `route.emit`.
    fn transmit(&mut self, n: Option<usize>) -> Result<(), TxError> {
        transmit(&mut *self.hal.tx, self.st, &self.tx[..], n)
    }

    /// Sends a packet without payload.
    fn send(&mut self, route: &Route, roce: &RoceRepr) {
        let n = route.emit(&mut self.tx[..], roce, |_| Ok::<(), ()>(()));
        let _ = self.transmit(n.unwrap_or(None));
    }

    /// Sends an ACK or NAK with `syn`, the QP's MSN and `psn`.
    fn ack(&mut self, qp: &Qp, pkt: &Pkt<'_>, syn: u8, psn: u32) {
        let Some(route) = route(qp, pkt) else { return };
        let mut r = response(qp, opcode::RC_ACK, psn, 0);
        r.aeth = Some(Aeth {
            syndrome: syn,
            msn: qp.msn,
        });
        self.send(&route, &r);
    }

    /// Writes `data` at `bus` and waits for it to land.
    fn place(&mut self, bus: u64, data: &[u8]) -> bool {
        if data.is_empty() {
            return true;
        }
        self.dma(&[DmaSegment {
            bus_addr: bus,
            data,
        }])
    }

    /// Writes `data` at byte `off` of the held WQE's scatter list (one DMA submission) and
    /// waits for it to land. The caller checked that it fits.
    fn place_sg(&mut self, h: &Held, off: u32, data: &[u8]) -> bool {
        if data.is_empty() {
            return true;
        }
        match h.scatter(off, data) {
            Some(segs) => self.dma(&segs),
            None => {
                self.st.inc(dev::ROCE_RESP_DMA_ERRORS);
                false
            }
        }
    }

    fn dma(&mut self, segs: &[DmaSegment<'_>]) -> bool {
        match crate::datapath::dma_write(&mut *self.hal.dma, segs) {
            Ok(()) => true,
            Err(_) => {
                self.st.inc(dev::ROCE_RESP_DMA_ERRORS);
                false
            }
        }
    }

    /// Takes the next receive WQE for `qp` (unless it holds one), checking it against the MR
    /// table. One CQ slot must be free for its completion (or its flush).
    fn take_wqe(&mut self, qp: &mut Qp) -> Result<(), Take> {
        if qp.held.is_some() {
            return Ok(());
        }
        // One slot for this WQE's completion besides those the requester's window is owed.
        let owed = 1 + qp.sq_owed as usize;
        match qp.cq.free() {
            Ok(n) if n as usize >= owed => {}
            Ok(_) => {
                self.st.inc(dev::ROCE_RESP_CQ_FULL);
                return Err(Take::NotReady);
            }
            Err(_) => {
                self.st.inc(dev::ROCE_RING_FAULTS);
                return Err(Take::Fault);
            }
        }
        let rq = match (qp.srq, qp.rq.as_mut()) {
            (Some(s), _) => match self.srqs.get_mut(s as usize).and_then(Option::as_mut) {
                Some(srq) => &mut srq.rq,
                None => return Err(Take::Fault),
            },
            (None, Some(rq)) => rq,
            (None, None) => return Err(Take::Fault),
        };
        let first = match rq.pop() {
            Ok(Some(w)) => w,
            Ok(None) => return Err(Take::NotReady),
            Err(_) => {
                self.st.inc(dev::ROCE_RING_FAULTS);
                return Err(Take::Fault);
            }
        };
        // The rest of a scatter list: committed with its first entry, so it must be there,
        // with the same wr_id and QP, and no more than MAX_RECV_SGE entries in all.
        let mut h = Held::new(&first);
        let mut last = first;
        while last.more() {
            let same = |w: &RecvWqe| {
                w.wr_id == first.wr_id && (w.qpn.get() ^ first.qpn.get()) & !RecvWqe::MORE == 0
            };
            match rq.pop() {
                Ok(Some(w)) if same(&w) && h.push(&w) => last = w,
                _ => {
                    self.st.inc(dev::ROCE_RING_FAULTS);
                    return Err(Take::Fault);
                }
            }
        }
        qp.held = Some(h);
        let ok = h.sges().iter().all(|g| {
            self.lkeys
                .get(&g.lkey)
                .and_then(|&s| self.mrs.get(s as usize)?.as_ref())
                .is_some_and(|m| {
                    m.valid
                        && m.pd == qp.pd
                        && m.access & access::LOCAL_WRITE != 0
                        && m.holds(g.bus, g.len as u64)
                })
        });
        if ok {
            Ok(())
        } else {
            Err(Take::Bad)
        }
    }

    /// A fatal request error: counted (`counter`, when the cause was not counted where it was
    /// found), a NAK (RC), the held WQE completed with `status`, the QP to ERR.
    fn fail(&mut self, qp: &mut Qp, pkt: &Pkt<'_>, syn: u8, status: u8, counter: Option<usize>) {
        if let Some(c) = counter {
            self.st.inc(c);
        }
        if qp.qp_type == qp_type::RC {
            self.ack(qp, pkt, syn, pkt.psn);
        }
        if let Some(h) = qp.held {
            let c = cqe(
                qp,
                &h,
                status,
                wc_opcode::RECV,
                h.off,
                0,
                0,
                qp.dest_qpn,
                pkt.psn,
            );
            push_cqe(qp, self.st, &c);
        }
        to_error(qp, self.st, self.job, self.slot);
    }

    /// A UC message that cannot be placed: the rest of it is dropped, the held WQE reused.
    fn drop_uc(&mut self, qp: &mut Qp, counter: Option<usize>) {
        if let Some(c) = counter {
            self.st.inc(c);
        }
        qp.msg = Msg::Drop;
        if let Some(h) = &mut qp.held {
            h.off = 0;
        }
    }

    /// A request that cannot be executed: RC fails the QP, UC drops the message.
    fn reject(&mut self, qp: &mut Qp, pkt: &Pkt<'_>, syn: u8, status: u8, counter: Option<usize>) {
        if qp.qp_type == qp_type::RC {
            self.fail(qp, pkt, syn, status, counter);
        } else {
            self.drop_uc(qp, counter);
        }
    }

    /// Handles a failed [`Ctx::take_wqe`]. Returns after answering.
    fn not_taken(&mut self, qp: &mut Qp, pkt: &Pkt<'_>, why: Take) {
        match why {
            Take::NotReady => {
                if qp.qp_type == qp_type::RC {
                    self.st.inc(dev::ROCE_SEND_RNR_ERR);
                    self.ack(qp, pkt, syndrome::RNR_NAK | (qp.rnr_timer & 0x1f), pkt.psn);
                } else {
                    self.st.inc(dev::ROCE_RESP_DISCARDS);
                    if qp.qp_type == qp_type::UC {
                        qp.msg = Msg::Drop;
                    }
                }
            }
            Take::Bad => self.fail(
                qp,
                pkt,
                syndrome::NAK_REMOTE_OP,
                wc_status::LOC_PROT_ERR,
                Some(dev::ROCE_RESP_LOCAL_PROT_ERROR),
            ),
            Take::Fault => {
                self.st.inc(dev::ROCE_RESP_DISCARDS);
                to_error(qp, self.st, self.job, self.slot);
            }
        }
    }
}

/// The QP goes to ERR: its held WQE is flushed, a READ in progress is dropped.
pub(crate) fn to_error(qp: &mut Qp, st: &mut DeviceStats, job: &mut Option<ReadJob>, slot: u16) {
    flush_held(qp, st);
    // The requester flushes its window when it next sees the QP in ERR (`poll_sq`).
    qp.state = qp_state::ERR;
    if job.is_some_and(|j| j.qp == slot) {
        *job = None;
    }
}

/// Hands `tx[..n]` to the MAC (`n`: `None` when the packet did not fit the buffer): counted
/// `sent_pkts`, or `resp_tx_dropped`. The one transmit of the responder and the CM.
pub(crate) fn transmit<T: MacTx>(
    mac: &mut T,
    st: &mut DeviceStats,
    tx: &[u8],
    n: Option<usize>,
) -> Result<(), TxError> {
    let Some(frame) = n.and_then(|n| tx.get(..n)) else {
        st.inc(dev::ROCE_RESP_TX_DROPPED);
        return Err(TxError::TooLong);
    };
    match mac.transmit(frame) {
        Ok(()) => {
            st.inc(dev::ROCE_SENT_PKTS);
            Ok(())
        }
        Err(e) => {
            st.inc(dev::ROCE_RESP_TX_DROPPED);
            Err(e)
        }
    }
}

/// The route back to the requester of `pkt` (UDP source port: the QP's, else the request's).
fn route(qp: &Qp, pkt: &Pkt<'_>) -> Option<Route> {
    let sport = if qp.udp_sport != 0 {
        qp.udp_sport
    } else {
        pkt.sport
    };
    Route::reply_to(pkt.frame, pkt.l3, pkt.ip_version, sport)
}

/// A response BTH to the QP's peer.
fn response(qp: &Qp, op: u8, psn: u32, payload_len: usize) -> RoceRepr {
    RoceRepr::new(op, qp.dest_qpn, psn, payload_len)
}

impl Responder {
    /// Whether a QP numbered `qpn` exists (the frame is the responder's).
    #[inline]
    pub fn owns(&self, qpn: u32) -> bool {
        self.qpns.contains_key(&qpn)
    }

    /// Takes `frame` (split as `r`) when it is a RoCEv2 request for an existing QP; `false`
    /// leaves it to the RX path.
    pub fn receive<H: Hal>(
        &mut self,
        hal: &mut Io<'_, H>,
        st: &mut DeviceStats,
        frame: &[u8],
        r: &SplitResult,
    ) -> bool {
        let Some(info) = r.roce else { return false };
        if r.class != FrameClass::Roce
            || r.tunnel.is_some()
            || r.reason == NoSplitReason::UnsupportedTransport
        {
            return false;
        }
        let Some(&slot) = self.qpns.get(&info.dest_qp) else {
            return false;
        };
        st.inc(dev::ROCE_RCVD_PKTS);
        // `None`: verification is off (`Firmware::set_icrc_verify`).
        if info.icrc_ok == Some(false) {
            st.inc(dev::ROCE_ICRC_ERRORS);
            return true;
        }
        let (Some(l3), Some(l4)) = (r.l3_offset, r.l4_offset) else {
            st.inc(dev::ROCE_RESP_DISCARDS);
            return true;
        };
        let (l3, l4) = (l3 as usize, l4 as usize);
        let u = UdpPacket::new_unchecked(frame.get(l4..).unwrap_or(&[]));
        let end = l4 + u.len() as usize;
        let Some(b) = frame.get(l4 + udp::HEADER_LEN..end) else {
            st.inc(dev::ROCE_RESP_DISCARDS);
            return true;
        };
        let p = RocePacket::new_unchecked(b);
        if p.check_len().is_err() {
            st.inc(dev::ROCE_RESP_DISCARDS);
            return true;
        }
        let bth = p.bth();
        let ip_version = r.outer_ip_version;
        let pkt = Pkt {
            p,
            opcode: bth.opcode(),
            code: bth.opcode() & 0x1f,
            psn: bth.psn(),
            ack_req: bth.ack_req(),
            payload: p.payload(),
            frame,
            l3,
            ip_version,
            sport: u.src_port(),
        };
        if super::req::is_response(pkt.opcode) {
            let Some(qp) = self.qps.get(slot as usize).and_then(Option::as_ref) else {
                return true;
            };
            if qp.qp_type != qp_type::RC
                || qp.state != qp_state::RTS
                || bth.tver() != 0
                || bth.pkey() & 0x7fff != 0x7fff
                || !source_matches(qp, frame, l3, ip_version)
            {
                st.inc(dev::ROCE_RESP_DISCARDS);
                return true;
            }
            self.learn_peer(slot as usize, &pkt);
            let now = hal.clock.now_ns();
            self.response(&mut *hal.dma, st, slot as usize, &p, now);
            return true;
        }
        self.learn_peer(slot as usize, &pkt);
        let Responder {
            mrs,
            rkeys,
            lkeys,
            qps,
            srqs,
            job,
            tx,
            cnp_interval_ns,
            ..
        } = self;
        let Some(qp) = qps.get_mut(slot as usize).and_then(Option::as_mut) else {
            return true;
        };
        let mut cx = Ctx {
            hal,
            st,
            mrs,
            rkeys,
            lkeys,
            srqs,
            tx,
            job,
            slot,
        };
        if !qp.receiving()
            || cx.job.is_some_and(|j| j.qp == slot)
            || bth.tver() != 0
            || bth.pkey() & 0x7fff != 0x7fff
            || !transport_matches(qp.qp_type, pkt.opcode)
        {
            cx.st.inc(dev::ROCE_RESP_DISCARDS);
            return true;
        }
        if qp.qp_type != qp_type::UD && !source_matches(qp, frame, l3, ip_version) {
            cx.st.inc(dev::ROCE_RESP_DISCARDS);
            return true;
        }

        if ce_marked(frame, l3, ip_version) {
            cnp(&mut cx, qp, &pkt, *cnp_interval_ns);
        }
        match qp.qp_type {
            qp_type::UD => ud(&mut cx, qp, &pkt),
            _ => rc_uc(&mut cx, qp, &pkt),
        }
        true
    }

    /// Continues a READ response the MAC held up. Returns whether a packet was sent.
    pub fn poll_tx<H: Hal>(&mut self, hal: &mut HalParts<H>, st: &mut DeviceStats) -> bool {
        let Some(j) = self.job else { return false };
        let Some(qp) = self.qps.get(j.qp as usize).and_then(Option::as_ref) else {
            self.job = None;
            return false;
        };
        let before = st.get(dev::ROCE_SENT_PKTS);
        run_job(
            &mut Io::of(hal),
            st,
            &mut self.tx,
            &mut self.job,
            qp,
            READ_BUDGET,
        );
        st.get(dev::ROCE_SENT_PKTS) != before
    }

    /// Sets the CNP interval (at most one CNP per QP per interval).
    pub fn set_cnp_interval_ns(&mut self, ns: u64) {
        self.cnp_interval_ns = ns;
    }
}

impl Responder {
    /// The requester sends where its peer's packets come from: learned from the first request
    /// or response that passed the QP's source check (RC) or carried its Q_Key (UD).
    fn learn_peer(&mut self, slot: usize, pkt: &Pkt<'_>) {
        let Some(qp) = self.qps.get(slot).and_then(Option::as_ref) else {
            return;
        };
        let Some(sq) = qp.sq.and_then(|i| self.sqs.get_mut(i as usize)?.as_mut()) else {
            return;
        };
        // Learned once: the checks below run only until then.
        if sq.peer.is_some() || !qp.receiving() {
            return;
        }
        let from_peer = match qp.qp_type {
            qp_type::RC => source_matches(qp, pkt.frame, pkt.l3, pkt.ip_version),
            // UD: the first sender whose datagram carries the QP's Q_Key.
            qp_type::UD => pkt.p.deth().is_some_and(|d| d.qkey == qp.qkey),
            _ => false,
        };
        if from_peer {
            sq.peer = route(qp, pkt);
        }
    }
}

/// Whether `op` is a request opcode of the QP's transport.
fn transport_matches(t: u8, op: u8) -> bool {
    let c = op & 0x1f;
    match (t, op >> 5) {
        (qp_type::RC, 0) => {
            code::is_send(c) || code::is_write(c) || c == code::READ_REQUEST || code::is_atomic(c)
        }
        (qp_type::UC, 1) => code::is_send(c) && c <= code::SEND_ONLY_IMM || code::is_write(c),
        (qp_type::UD, 3) => c == code::SEND_ONLY || c == code::SEND_ONLY_IMM,
        _ => false,
    }
}

/// RC/UC: the IP source is the QP's `remote_gid` (IPv4 as `::ffff:a.b.c.d`).
fn source_matches(qp: &Qp, frame: &[u8], l3: usize, v: u8) -> bool {
    source_gid(frame, l3, v) == Some(qp.remote_gid)
}

/// The GID of the sender of the frame whose IP header (version `v`) starts at `l3` (IPv4 as
/// `::ffff:a.b.c.d`).
pub(crate) fn source_gid(frame: &[u8], l3: usize, v: u8) -> Option<[u8; 16]> {
    match v {
        4 => {
            let mut g = [0u8; 16];
            g[10] = 0xff;
            g[11] = 0xff;
            g[12..].copy_from_slice(frame.get(l3 + 12..l3 + 16)?);
            Some(g)
        }
        6 => frame.get(l3 + 8..l3 + 24)?.try_into().ok(),
        _ => None,
    }
}

/// The IP header's ECN field is CE (0b11).
fn ce_marked(frame: &[u8], l3: usize, v: u8) -> bool {
    let b1 = frame.get(l3 + 1).copied().unwrap_or(0);
    match v {
        4 => b1 & 3 == 3,
        6 => (b1 >> 4) & 3 == 3,
        _ => false,
    }
}

/// The notification point: a CNP to the requester, at most one per QP per interval.
fn cnp<H: Hal>(cx: &mut Ctx<'_, '_, H>, qp: &mut Qp, pkt: &Pkt<'_>, interval: u64) {
    cx.st.inc(dev::ROCE_NP_ECN_MARKED);
    let now = cx.hal.clock.now_ns();
    if qp
        .last_cnp_ns
        .is_some_and(|t| now.wrapping_sub(t) < interval)
    {
        return;
    }
    let Some(route) = route(qp, pkt) else { return };
    let mut r = response(qp, opcode::CNP, 0, 0);
    if qp.qp_type == qp_type::UD {
        r.bth.dest_qp = pkt.p.deth().map_or(0, |d| d.src_qp);
    }
    let n = route.emit(&mut cx.tx[..], &r, |_| Ok::<(), ()>(()));
    if cx.transmit(n.unwrap_or(None)).is_ok() {
        qp.last_cnp_ns = Some(now);
        cx.st.inc(dev::ROCE_NP_CNP_SENT);
    }
}

/// UD: SEND ONLY (+imm) with DETH, Q_Key checked, the 40-byte GRH area first.
fn ud<H: Hal>(cx: &mut Ctx<'_, '_, H>, qp: &mut Qp, pkt: &Pkt<'_>) {
    let Some(deth) = pkt.p.deth() else { return };
    if deth.qkey != qp.qkey {
        cx.st.inc(dev::ROCE_QKEY_MISMATCH);
        return;
    }
    if pkt.payload.len() > qp.mtu as usize {
        cx.st.inc(dev::ROCE_RESP_DISCARDS);
        return;
    }
    if let Err(why) = cx.take_wqe(qp) {
        cx.not_taken(qp, pkt, why);
        return;
    }
    let Some(h) = qp.held else { return };
    let n = GRH_LEN + pkt.payload.len();
    if n > h.len as usize {
        cx.st.inc(dev::ROCE_RESP_LOCAL_LENGTH_ERROR);
        return; // the WQE stays held for the next datagram
    }
    // The GRH area: IPv6 header, or 20 zero bytes and the IPv4 header (as rxe).
    let mut grh = [0u8; GRH_LEN];
    let src = match pkt.ip_version {
        4 => pkt.frame.get(pkt.l3..pkt.l3 + 20).map(|s| (20, s)),
        _ => pkt.frame.get(pkt.l3..pkt.l3 + 40).map(|s| (0, s)),
    };
    if let Some((at, s)) = src {
        grh[at..at + s.len()].copy_from_slice(s);
    }
    if !(cx.place_sg(&h, 0, &grh) && cx.place_sg(&h, GRH_LEN as u32, pkt.payload)) {
        to_error(qp, cx.st, cx.job, cx.slot);
        return;
    }
    let (imm, mut flags) = match pkt.p.imm_data() {
        Some(i) => (i, wc_flags::WITH_IMM),
        None => (0, 0),
    };
    flags |= wc_flags::GRH;
    let c = cqe(
        qp,
        &h,
        wc_status::SUCCESS,
        wc_opcode::RECV,
        n as u32,
        imm,
        flags,
        deth.src_qp,
        pkt.psn,
    );
    if push_cqe(qp, cx.st, &c) {
        cx.st.inc(dev::ROCE_RECV_COMPLETED);
    }
}

/// RC and UC requests.
fn rc_uc<H: Hal>(cx: &mut Ctx<'_, '_, H>, qp: &mut Qp, pkt: &Pkt<'_>) {
    let c = pkt.code;
    let rc = qp.qp_type == qp_type::RC;
    let d = psn_diff(pkt.psn, qp.epsn);
    if rc {
        if d > 0 {
            cx.st.inc(dev::ROCE_OUT_OF_SEQ_REQUEST);
            if !qp.nak_sent {
                qp.nak_sent = true;
                cx.ack(qp, pkt, syndrome::NAK_PSN_SEQ, qp.epsn);
            }
            return;
        }
        if d < 0 {
            cx.st.inc(dev::ROCE_DUPLICATE_REQUEST);
            duplicate(cx, qp, pkt);
            return;
        }
        qp.nak_sent = false;
    } else if d != 0 || qp.msg == Msg::Drop {
        // UC: a gap ends the message in progress; a FIRST/ONLY starts the next one.
        if !code::starts(c) {
            cx.drop_uc(qp, Some(dev::ROCE_RESP_DISCARDS));
            qp.epsn = psn_add(pkt.psn, 1);
            return;
        }
        if let Some(h) = &mut qp.held {
            h.off = 0;
        }
        qp.msg = Msg::Idle;
        qp.epsn = pkt.psn;
    }
    // Opcode sequence.
    let in_seq = match qp.msg {
        Msg::Idle => code::starts(c),
        Msg::Send => matches!(
            c,
            code::SEND_MIDDLE | code::SEND_LAST | code::SEND_LAST_IMM | code::SEND_LAST_INV
        ),
        Msg::Write { .. } => matches!(
            c,
            code::WRITE_MIDDLE | code::WRITE_LAST | code::WRITE_LAST_IMM
        ),
        Msg::Drop => false,
    };
    let plen = pkt.payload.len() as u32;
    let len_ok = match c {
        code::SEND_FIRST | code::SEND_MIDDLE | code::WRITE_FIRST | code::WRITE_MIDDLE => {
            plen == qp.mtu
        }
        code::READ_REQUEST | code::COMPARE_SWAP | code::FETCH_ADD => plen == 0,
        _ => plen <= qp.mtu,
    };
    let right = if code::is_write(c) {
        access::REMOTE_WRITE
    } else if c == code::READ_REQUEST {
        access::REMOTE_READ
    } else if code::is_atomic(c) {
        access::REMOTE_ATOMIC
    } else {
        0
    };
    let allowed = right == 0 || qp.access & right != 0;
    if !(in_seq && len_ok && allowed) {
        cx.reject(
            qp,
            pkt,
            syndrome::NAK_INVALID_REQUEST,
            wc_status::REM_INV_REQ_ERR,
            Some(dev::ROCE_RESP_INVALID_REQUEST),
        );
        return;
    }
    if code::is_send(c) {
        send(cx, qp, pkt);
    } else if code::is_write(c) {
        write(cx, qp, pkt);
    } else if c == code::READ_REQUEST {
        read(cx, qp, pkt);
    } else {
        atomic(cx, qp, pkt);
    }
}

/// After a SEND/WRITE packet was executed: the next PSN, the MSN at a message's end, the ACK.
fn executed<H: Hal>(cx: &mut Ctx<'_, '_, H>, qp: &mut Qp, pkt: &Pkt<'_>) {
    qp.epsn = psn_add(pkt.psn, 1);
    if code::ends(pkt.code) {
        qp.msn = psn_add(qp.msn, 1);
        qp.msg = Msg::Idle;
    }
    if qp.qp_type == qp_type::RC && pkt.ack_req {
        cx.ack(qp, pkt, syndrome::ACK, pkt.psn);
    }
}

fn send<H: Hal>(cx: &mut Ctx<'_, '_, H>, qp: &mut Qp, pkt: &Pkt<'_>) {
    let c = pkt.code;
    if code::starts(c) {
        if let Err(why) = cx.take_wqe(qp) {
            cx.not_taken(qp, pkt, why);
            return;
        }
    }
    let Some(mut h) = qp.held else {
        // A MIDDLE/LAST without a held WQE cannot happen (FIRST took one); treat as a fault.
        cx.reject(
            qp,
            pkt,
            syndrome::NAK_REMOTE_OP,
            wc_status::LOC_QP_OP_ERR,
            Some(dev::ROCE_RESP_DISCARDS),
        );
        return;
    };
    let plen = pkt.payload.len() as u32;
    if h.off as u64 + plen as u64 > h.len as u64 {
        if qp.qp_type == qp_type::RC {
            cx.fail(
                qp,
                pkt,
                syndrome::NAK_INVALID_REQUEST,
                wc_status::LOC_LEN_ERR,
                Some(dev::ROCE_RESP_LOCAL_LENGTH_ERROR),
            );
        } else {
            cx.drop_uc(qp, Some(dev::ROCE_RESP_LOCAL_LENGTH_ERROR));
        }
        return;
    }
    if !cx.place_sg(&h, h.off, pkt.payload) {
        cx.reject(
            qp,
            pkt,
            syndrome::NAK_REMOTE_OP,
            wc_status::LOC_QP_OP_ERR,
            None,
        );
        return;
    }
    h.off += plen;
    qp.held = Some(h);
    if code::ends(c) {
        let (mut status, mut imm, mut flags) = (wc_status::SUCCESS, 0, 0);
        if let Some(i) = pkt.p.imm_data() {
            (imm, flags) = (i, wc_flags::WITH_IMM);
        }
        if code::has_inv(c) {
            let rkey = pkt.p.ieth().unwrap_or(0);
            (imm, flags) = (rkey, wc_flags::WITH_INV);
            match cx
                .rkeys
                .get(&rkey)
                .and_then(|&s| cx.mrs.get_mut(s as usize)?.as_mut())
            {
                Some(mr) if mr.pd == qp.pd => mr.valid = false,
                _ => status = wc_status::LOC_PROT_ERR,
            }
        }
        debug_assert!(!code::has_imm(c) || flags == wc_flags::WITH_IMM);
        let e = cqe(
            qp,
            &h,
            status,
            wc_opcode::RECV,
            h.off,
            imm,
            flags,
            qp.dest_qpn,
            pkt.psn,
        );
        if push_cqe(qp, cx.st, &e) && status == wc_status::SUCCESS {
            cx.st.inc(dev::ROCE_RECV_COMPLETED);
        }
    } else {
        qp.msg = Msg::Send;
    }
    executed(cx, qp, pkt);
}

fn write<H: Hal>(cx: &mut Ctx<'_, '_, H>, qp: &mut Qp, pkt: &Pkt<'_>) {
    let c = pkt.code;
    let plen = pkt.payload.len() as u32;
    let first = !matches!(qp.msg, Msg::Write { .. });
    let (mut bus, mut left, total) = match qp.msg {
        Msg::Write { bus, left, total } => (bus, left, total),
        _ => {
            let Some(reth) = pkt.p.reth() else { return };
            let bus = if reth.dma_len == 0 {
                0
            } else {
                match cx.remote(
                    qp.pd,
                    reth.rkey,
                    reth.va,
                    reth.dma_len as u64,
                    access::REMOTE_WRITE,
                ) {
                    Some(b) => b,
                    None => {
                        cx.reject(
                            qp,
                            pkt,
                            syndrome::NAK_REMOTE_ACCESS,
                            wc_status::REM_ACCESS_ERR,
                            Some(dev::ROCE_RESP_REMOTE_ACCESS_ERRORS),
                        );
                        return;
                    }
                }
            };
            (bus, reth.dma_len, reth.dma_len)
        }
    };
    // The payload must fit what the RETH announced, and the last packet must finish it.
    if plen > left || (code::ends(c) && plen != left) {
        cx.reject(
            qp,
            pkt,
            syndrome::NAK_INVALID_REQUEST,
            wc_status::REM_INV_REQ_ERR,
            Some(dev::ROCE_RESP_INVALID_REQUEST),
        );
        return;
    }
    // WRITE with immediate consumes a receive WQE: taken before anything is placed, so an
    // RNR NAK leaves the QP exactly as it was (the requester retries this packet).
    if code::has_imm(c) {
        if let Err(why) = cx.take_wqe(qp) {
            cx.not_taken(qp, pkt, why);
            return;
        }
    }
    // Counted once per WRITE message, when its first packet is executed (an RNR NAK'd
    // WRITE_ONLY_IMM and its retry count once).
    if first {
        cx.st.inc(dev::ROCE_RX_WRITE_REQUESTS);
    }
    if !cx.place(bus, pkt.payload) {
        cx.reject(
            qp,
            pkt,
            syndrome::NAK_REMOTE_OP,
            wc_status::LOC_QP_OP_ERR,
            None,
        );
        return;
    }
    bus += plen as u64;
    left -= plen;
    if code::ends(c) {
        if code::has_imm(c) {
            if let Some(h) = qp.held {
                let imm = pkt.p.imm_data().unwrap_or(0);
                let e = cqe(
                    qp,
                    &h,
                    wc_status::SUCCESS,
                    wc_opcode::RECV_RDMA_WITH_IMM,
                    total,
                    imm,
                    wc_flags::WITH_IMM,
                    qp.dest_qpn,
                    pkt.psn,
                );
                if push_cqe(qp, cx.st, &e) {
                    cx.st.inc(dev::ROCE_RECV_COMPLETED);
                }
            }
        }
    } else {
        qp.msg = Msg::Write { bus, left, total };
    }
    executed(cx, qp, pkt);
}

/// Saves a READ/atomic request in the QP's resource ring (oldest overwritten).
fn save(qp: &mut Qp, r: Res) {
    let n = qp.res.len();
    let i = qp.res_next as usize % n;
    qp.res[i] = r;
    qp.res_next = ((i + 1) % n) as u8;
}

/// READ response packets for `len` bytes at the path MTU.
fn read_packets(len: u32, mtu: u32) -> u32 {
    len.div_ceil(mtu).max(1)
}

fn read<H: Hal>(cx: &mut Ctx<'_, '_, H>, qp: &mut Qp, pkt: &Pkt<'_>) {
    let Some(reth) = pkt.p.reth() else { return };
    if cx.job.is_some() {
        // Another READ's responses wait for the MAC: the requester will retry this one.
        cx.st.inc(dev::ROCE_RESP_DISCARDS);
        return;
    }
    let len = reth.dma_len;
    let bus = if len == 0 {
        0
    } else {
        match cx.remote(qp.pd, reth.rkey, reth.va, len as u64, access::REMOTE_READ) {
            Some(b) => b,
            None => {
                cx.fail(
                    qp,
                    pkt,
                    syndrome::NAK_REMOTE_ACCESS,
                    wc_status::REM_ACCESS_ERR,
                    Some(dev::ROCE_RESP_REMOTE_ACCESS_ERRORS),
                );
                return;
            }
        }
    };
    let n = read_packets(len, qp.mtu);
    cx.st.inc(dev::ROCE_RX_READ_REQUESTS);
    save(
        qp,
        Res {
            kind: Res::READ,
            first_psn: pkt.psn,
            last_psn: psn_add(pkt.psn, n - 1),
            rkey: reth.rkey,
            va_or_orig: reth.va,
            len_or_msn: len,
        },
    );
    qp.msn = psn_add(qp.msn, 1);
    qp.epsn = psn_add(pkt.psn, n);
    start_read(cx, qp, pkt, bus, len, pkt.psn, true);
}

/// Starts (and runs as far as the MAC allows) a READ response.
fn start_read<H: Hal>(
    cx: &mut Ctx<'_, '_, H>,
    qp: &mut Qp,
    pkt: &Pkt<'_>,
    bus: u64,
    len: u32,
    psn: u32,
    first: bool,
) {
    let Some(route) = route(qp, pkt) else { return };
    *cx.job = Some(ReadJob {
        qp: cx.slot,
        route,
        bus,
        left: len,
        psn,
        first,
    });
    run_job(cx.hal, cx.st, cx.tx, cx.job, qp, u32::MAX);
}

/// Sends READ response packets of `job` (at most `budget`), each read from memory with
/// [`Dma::read`] straight into the transmit buffer. Stops when the MAC is busy (the job
/// stays, continued by the next poll) and ends the job after the last packet or an error.
fn run_job<H: Hal>(
    hal: &mut Io<'_, H>,
    st: &mut DeviceStats,
    tx: &mut [u8; TX_FRAME_MAX],
    job: &mut Option<ReadJob>,
    qp: &Qp,
    budget: u32,
) {
    let mtu = mtu_bytes_or(qp.mtu);
    for _ in 0..budget {
        let Some(j) = job.as_mut() else { return };
        let n = j.left.min(mtu);
        let last = j.left <= mtu;
        let op = match (j.first, last) {
            (true, true) => opcode::RC_READ_RESPONSE_ONLY,
            (true, false) => opcode::RC_READ_RESPONSE_FIRST,
            (false, false) => opcode::RC_READ_RESPONSE_MIDDLE,
            (false, true) => opcode::RC_READ_RESPONSE_LAST,
        };
        let mut r = response(qp, op, j.psn, n as usize);
        if op != opcode::RC_READ_RESPONSE_MIDDLE {
            r.aeth = Some(Aeth {
                syndrome: syndrome::ACK,
                msn: qp.msn,
            });
        }
        let dma = &mut hal.dma;
        let bus = j.bus;
        let built = j.route.emit(&mut tx[..], &r, |p| {
            if p.is_empty() {
                Ok(())
            } else {
                dma.read(bus, p)
            }
        });
        let len = match built {
            Ok(Some(len)) => len,
            Ok(None) => {
                st.inc(dev::ROCE_RESP_TX_DROPPED);
                *job = None;
                return;
            }
            Err(_) => {
                st.inc(dev::ROCE_RESP_DMA_ERRORS);
                *job = None;
                return;
            }
        };
        match hal.tx.transmit(&tx[..len]) {
            Ok(()) => st.inc(dev::ROCE_SENT_PKTS),
            Err(TxError::Busy) => return,
            Err(TxError::TooLong) => {
                st.inc(dev::ROCE_RESP_TX_DROPPED);
                *job = None;
                return;
            }
        }
        j.bus += n as u64;
        j.left -= n;
        j.psn = psn_add(j.psn, 1);
        j.first = false;
        if last {
            *job = None;
            return;
        }
    }
}

fn mtu_bytes_or(mtu: u32) -> u32 {
    if mtu == 0 {
        mtu_bytes(5).unwrap_or(4096)
    } else {
        mtu
    }
}

fn atomic<H: Hal>(cx: &mut Ctx<'_, '_, H>, qp: &mut Qp, pkt: &Pkt<'_>) {
    let Some(a) = pkt.p.atomic_eth() else { return };
    if a.va & 7 != 0 {
        cx.fail(
            qp,
            pkt,
            syndrome::NAK_INVALID_REQUEST,
            wc_status::REM_INV_REQ_ERR,
            Some(dev::ROCE_RESP_INVALID_REQUEST),
        );
        return;
    }
    let Some(bus) = cx.remote(qp.pd, a.rkey, a.va, 8, access::REMOTE_ATOMIC) else {
        cx.fail(
            qp,
            pkt,
            syndrome::NAK_REMOTE_ACCESS,
            wc_status::REM_ACCESS_ERR,
            Some(dev::ROCE_RESP_REMOTE_ACCESS_ERRORS),
        );
        return;
    };
    let mut v = [0u8; 8];
    if cx.hal.dma.read(bus, &mut v).is_err() {
        cx.st.inc(dev::ROCE_RESP_DMA_ERRORS);
        cx.fail(
            qp,
            pkt,
            syndrome::NAK_REMOTE_OP,
            wc_status::REM_OP_ERR,
            None,
        );
        return;
    }
    let orig = u64::from_le_bytes(v);
    let new = if pkt.code == code::COMPARE_SWAP {
        if orig == a.compare {
            Some(a.swap_add)
        } else {
            None
        }
    } else {
        Some(orig.wrapping_add(a.swap_add))
    };
    if let Some(nv) = new {
        if !cx.place(bus, &nv.to_le_bytes()) {
            cx.fail(
                qp,
                pkt,
                syndrome::NAK_REMOTE_OP,
                wc_status::REM_OP_ERR,
                None,
            );
            return;
        }
    }
    cx.st.inc(dev::ROCE_RX_ATOMIC_REQUESTS);
    qp.msn = psn_add(qp.msn, 1);
    qp.epsn = psn_add(pkt.psn, 1);
    save(
        qp,
        Res {
            kind: Res::ATOMIC,
            first_psn: pkt.psn,
            last_psn: pkt.psn,
            rkey: a.rkey,
            va_or_orig: orig,
            len_or_msn: qp.msn,
        },
    );
    atomic_ack(cx, qp, pkt, orig, qp.msn);
}

fn atomic_ack<H: Hal>(cx: &mut Ctx<'_, '_, H>, qp: &Qp, pkt: &Pkt<'_>, orig: u64, msn: u32) {
    let Some(route) = route(qp, pkt) else { return };
    let mut r = response(qp, opcode::RC_ATOMIC_ACK, pkt.psn, 0);
    r.aeth = Some(Aeth {
        syndrome: syndrome::ACK,
        msn,
    });
    r.atomic_ack_eth = Some(AtomicAckEth(orig));
    cx.send(&route, &r);
}

/// A request with a PSN before the expected one (RC).
fn duplicate<H: Hal>(cx: &mut Ctx<'_, '_, H>, qp: &mut Qp, pkt: &Pkt<'_>) {
    let c = pkt.code;
    if code::is_send(c) || code::is_write(c) {
        // Already executed: acknowledge again with the last executed PSN (C9-105).
        cx.ack(qp, pkt, syndrome::ACK, psn_add(qp.epsn, 0x00ff_ffff));
        return;
    }
    let within =
        |r: &Res| psn_diff(pkt.psn, r.first_psn) >= 0 && psn_diff(r.last_psn, pkt.psn) >= 0;
    if c == code::READ_REQUEST {
        let (Some(reth), Some(res)) = (
            pkt.p.reth(),
            qp.res
                .iter()
                .find(|r| r.kind == Res::READ && within(r))
                .copied(),
        ) else {
            cx.st.inc(dev::ROCE_RESP_DISCARDS);
            return;
        };
        let end = reth.va.checked_add(reth.dma_len as u64);
        let (va, len) = (res.va_or_orig, res.len_or_msn as u64);
        let inside = reth.va >= va && end.is_some_and(|e| e <= va + len);
        if !inside || cx.job.is_some() {
            cx.st.inc(dev::ROCE_RESP_DISCARDS);
            return;
        }
        let bus = if reth.dma_len == 0 {
            Some(0)
        } else {
            cx.remote(
                qp.pd,
                res.rkey,
                reth.va,
                reth.dma_len as u64,
                access::REMOTE_READ,
            )
        };
        let Some(bus) = bus else {
            cx.st.inc(dev::ROCE_RESP_DISCARDS);
            return;
        };
        cx.st.inc(dev::ROCE_RX_READ_REQUESTS);
        start_read(
            cx,
            qp,
            pkt,
            bus,
            reth.dma_len,
            pkt.psn,
            pkt.psn == res.first_psn,
        );
    } else if code::is_atomic(c) {
        match qp
            .res
            .iter()
            .find(|r| r.kind == Res::ATOMIC && r.first_psn == pkt.psn)
            .copied()
        {
            Some(r) => atomic_ack(cx, qp, pkt, r.va_or_orig, r.len_or_msn),
            None => cx.st.inc(dev::ROCE_RESP_DISCARDS),
        }
    }
}
