//! The RoCEv2 responder: RC, UC and UD QPs, memory regions, shared receive queues.
//!
//! `no_std`, heapless: every table is sized by the capacity profile ([`crate::config`]:
//! [`MAX_QPS`] QPs, [`MAX_MRS`] MRs, [`MAX_SRQS`] SRQs, [`RD_ATOMIC`] saved READ/atomic
//! requests per QP) and counted in [`crate::TABLES_RAM`]. QPNs and keys are looked up through
//! heapless `FnvIndexMap`s.
//!
//! - [`control`]: the control ops (RegisterMr, DeregisterMr, CreateQp, ModifyQp, QueryQp,
//!   DestroyQp, CreateSrq, DestroySrq).
//! - [`resp`]: the per-packet responder (PSN and opcode-sequence checks, placement, ACK/NAK,
//!   READ responses, atomics, CNP), entered from [`crate::Firmware::poll_rx`] for a RoCEv2
//!   frame (found by [`splitrx_shared::split::split`]) whose BTH destination QP exists.
//! - [`tx`]: the responder's packets, built with the `shared::wire` emitters.
//!
//! The Linux soft-RoCE driver (`drivers/infiniband/sw/rxe`, `rxe_resp.c`) is the behavioural
//! reference; where splitrx differs on purpose it says so next to the code (see also
//! `docs/firmware.md`).

pub mod cm;
pub mod control;
pub mod req;
pub mod resp;
pub mod tx;

use crate::config::{CNP_INTERVAL_NS, MAX_MRS, MAX_MTU, MAX_QPS, MAX_SQS, MAX_SRQS, RD_ATOMIC};
use crate::hal::DmaSegment;
use core::ptr::NonNull;
use heapless::FnvIndexMap;
use splitrx_shared::abi::{qp_state, RecvWqe, RoceCqe, MAX_RECV_SGE};
use splitrx_shared::ring::{Consumer, Producer};
use zerocopy::little_endian::U64;

/// Longest frame the responder or requester transmits: Ethernet with two VLAN tags, IPv6, UDP,
/// BTH, the largest extended headers of a packet that carries a payload (a request's RETH +
/// ImmDt; a response's AETH + AtomicAckETH is shorter), a [`MAX_MTU`] payload, pad, ICRC.
pub const TX_FRAME_MAX: usize = 14 + 8 + 40 + 8 + 12 + 20 + MAX_MTU as usize + 3 + 4;

/// A registered memory region.
#[derive(Clone, Copy, Debug)]
pub struct Mr {
    pub bus: u64,
    pub len: u64,
    pub iova: u64,
    pub rkey: u32,
    pub lkey: u32,
    pub access: u32,
    pub pd: u32,
    /// Cleared by a SEND with invalidate naming its rkey: the MR is unusable until
    /// deregistered.
    pub valid: bool,
}

impl Mr {
    /// Bus address of the peer's `[va, va + len)` when it lies inside the MR.
    #[inline]
    pub fn remote(&self, va: u64, len: u64) -> Option<u64> {
        let off = va.checked_sub(self.iova)?;
        let end = off.checked_add(len)?;
        (end <= self.len).then_some(self.bus + off)
    }
    /// Whether the bus range `[bus, bus + len)` lies inside the MR.
    #[inline]
    pub fn holds(&self, bus: u64, len: u64) -> bool {
        match bus.checked_sub(self.bus) {
            Some(off) => off.checked_add(len).is_some_and(|e| e <= self.len),
            None => false,
        }
    }
}

/// One scatter entry of a held receive WQE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sge {
    pub bus: u64,
    pub len: u32,
    pub lkey: u32,
}

/// The receive WQE a QP holds: taken from the ring (all its scatter entries), message not
/// finished.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    pub wr_id: U64,
    sges: [Sge; MAX_RECV_SGE],
    n: u8,
    /// Bytes of all scatter entries.
    pub len: u32,
    /// Bytes placed so far.
    pub off: u32,
}

impl Held {
    /// A WQE of one entry `w` (its first).
    pub fn new(w: &RecvWqe) -> Held {
        let mut h = Held {
            wr_id: w.wr_id,
            sges: [Sge::default(); MAX_RECV_SGE],
            n: 0,
            len: 0,
            off: 0,
        };
        h.push(w);
        h
    }
    /// Appends the entry `w`; `false` when the WQE already has [`MAX_RECV_SGE`] entries or
    /// the total length would pass `u32::MAX`.
    pub fn push(&mut self, w: &RecvWqe) -> bool {
        let Some(len) = self.len.checked_add(w.len.get()) else {
            return false;
        };
        let Some(s) = self.sges.get_mut(self.n as usize) else {
            return false;
        };
        *s = Sge {
            bus: w.bus_addr.get(),
            len: w.len.get(),
            lkey: w.lkey.get(),
        };
        self.n += 1;
        self.len = len;
        true
    }
    /// The scatter entries.
    #[inline]
    pub fn sges(&self) -> &[Sge] {
        &self.sges[..self.n as usize]
    }
    /// The DMA segments that put `data` at byte `off` of the scatter list; `None` when it does
    /// not fit (the caller checked the length first).
    pub fn scatter<'d>(
        &self,
        mut off: u32,
        mut data: &'d [u8],
    ) -> Option<heapless::Vec<DmaSegment<'d>, MAX_RECV_SGE>> {
        let mut out = heapless::Vec::new();
        for s in self.sges() {
            if data.is_empty() {
                break;
            }
            if off >= s.len {
                off -= s.len;
                continue;
            }
            let n = ((s.len - off) as usize).min(data.len());
            let (now, rest) = data.split_at(n);
            out.push(DmaSegment {
                bus_addr: s.bus + off as u64,
                data: now,
            })
            .ok()?;
            data = rest;
            off = 0;
        }
        data.is_empty().then_some(out)
    }
}

/// The message in progress on a QP (opcode sequence state).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Msg {
    Idle,
    /// A multi-packet SEND (FIRST seen): MIDDLE/LAST must follow.
    Send,
    /// A multi-packet WRITE: the next bus address and the bytes the RETH still announces.
    Write {
        bus: u64,
        left: u32,
        total: u32,
    },
    /// UC: the rest of a message is dropped (a packet was lost); FIRST/ONLY starts anew.
    Drop,
}

/// A saved READ or atomic request (rxe's responder resource), for duplicates.
#[derive(Clone, Copy, Default, Debug)]
pub struct Res {
    /// 0 none, [`Res::READ`], [`Res::ATOMIC`].
    pub kind: u8,
    pub first_psn: u32,
    pub last_psn: u32,
    pub rkey: u32,
    /// READ: the requested address; atomic: the original value returned.
    pub va_or_orig: u64,
    /// READ: the requested length; atomic: the MSN of its ATOMIC ACK.
    pub len_or_msn: u32,
}

impl Res {
    pub const READ: u8 = 1;
    pub const ATOMIC: u8 = 2;
}

/// One QP (the responder's half).
#[derive(Debug)]
pub struct Qp {
    pub qpn: u32,
    pub pd: u32,
    pub qp_type: u8,
    /// [`qp_state`].
    pub state: u8,
    /// Path MTU in bytes.
    pub mtu: u32,
    pub rnr_timer: u8,
    /// Whether an address vector was given (RC/UC need one for RTR).
    pub av: bool,
    pub dest_qpn: u32,
    /// Expected PSN.
    pub epsn: u32,
    /// MSN: messages completed (24 bits).
    pub msn: u32,
    pub qkey: u32,
    pub access: u32,
    /// The requester's address (IPv4 as `::ffff:a.b.c.d`).
    pub remote_gid: [u8; 16],
    pub udp_sport: u16,
    /// SRQ slot the QP takes receive WQEs from.
    pub srq: Option<u16>,
    pub(crate) rq: Option<Consumer<RecvWqe>>,
    pub(crate) cq: Producer<RoceCqe>,
    pub(crate) region: NonNull<u8>,
    pub(crate) region_bus: (u64, u64),
    pub held: Option<Held>,
    pub msg: Msg,
    /// A PSN-sequence-error NAK was sent and the gap is not closed yet.
    pub nak_sent: bool,
    pub res: [Res; RD_ATOMIC],
    pub res_next: u8,
    /// Clock reading of the last CNP sent (`None`: never).
    pub last_cnp_ns: Option<u64>,
    /// The requester's half (QPs created with a send ring): its slot in the send-queue
    /// table.
    pub sq: Option<u16>,
    /// Completions the requester's window is owed (the responder leaves them their CQ
    /// slots).
    pub sq_owed: u16,
}

impl Qp {
    /// RTR or RTS: the responder takes its packets.
    #[inline]
    pub fn receiving(&self) -> bool {
        self.state == qp_state::RTR || self.state == qp_state::RTS
    }
}

/// A shared receive queue.
#[derive(Debug)]
pub struct Srq {
    pub srqn: u32,
    pub pd: u32,
    pub(crate) rq: Consumer<RecvWqe>,
    pub(crate) region: NonNull<u8>,
    pub(crate) region_bus: (u64, u64),
    /// QPs created on it (DestroySrq is `Busy` while > 0).
    pub users: u16,
}

/// A READ response in progress (the MAC was busy): continued by [`crate::Firmware::poll`].
#[derive(Clone, Copy, Debug)]
pub struct ReadJob {
    pub qp: u16,
    pub route: tx::Route,
    /// Next bus address to read, and bytes left.
    pub bus: u64,
    pub left: u32,
    /// PSN of the next response packet.
    pub psn: u32,
    /// No response packet sent yet for this (re-)execution: FIRST/ONLY comes next, else
    /// MIDDLE/LAST.
    pub first: bool,
}

/// The responder's tables and transmit buffer.
pub struct Responder {
    pub(crate) mrs: [Option<Mr>; MAX_MRS],
    pub(crate) rkeys: FnvIndexMap<u32, u16, MAX_MRS>,
    pub(crate) lkeys: FnvIndexMap<u32, u16, MAX_MRS>,
    pub(crate) qps: [Option<Qp>; MAX_QPS],
    pub(crate) qpns: FnvIndexMap<u32, u16, MAX_QPS>,
    pub(crate) srqs: [Option<Srq>; MAX_SRQS],
    pub(crate) job: Option<ReadJob>,
    pub(crate) tx: [u8; TX_FRAME_MAX],
    pub(crate) cnp_interval_ns: u64,
    /// Connection management on QP 1.
    pub(crate) cm: cm::Cm,
    /// The requesters' state, by [`Qp::sq`].
    pub(crate) sqs: [Option<req::Sq>; MAX_SQS],
    /// Send queues in use (`poll_sq` returns at once while 0: the RX-only path pays nothing).
    pub(crate) sq_count: u16,
}

impl core::fmt::Debug for Responder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Responder")
            .field("qps", &self.qpns.len())
            .field("mrs", &self.rkeys.len())
            .finish_non_exhaustive()
    }
}

impl Default for Responder {
    fn default() -> Self {
        Self::new()
    }
}

impl Responder {
    pub const fn new() -> Responder {
        Responder {
            mrs: [None; MAX_MRS],
            rkeys: FnvIndexMap::new(),
            lkeys: FnvIndexMap::new(),
            qps: [const { None }; MAX_QPS],
            qpns: FnvIndexMap::new(),
            srqs: [const { None }; MAX_SRQS],
            job: None,
            tx: [0; TX_FRAME_MAX],
            cnp_interval_ns: CNP_INTERVAL_NS,
            cm: cm::Cm::new(),
            sqs: [const { None }; MAX_SQS],
            sq_count: 0,
        }
    }

    /// The QP numbered `qpn`.
    pub fn qp(&self, qpn: u32) -> Option<&Qp> {
        let s = *self.qpns.get(&qpn)?;
        self.qps.get(s as usize)?.as_ref()
    }
    /// QPs in the table.
    pub fn qp_count(&self) -> usize {
        self.qpns.len()
    }
    /// The MR whose lkey is `lkey`.
    pub fn mr(&self, lkey: u32) -> Option<&Mr> {
        let s = *self.lkeys.get(&lkey)?;
        self.mrs.get(s as usize)?.as_ref()
    }

    /// Whether a QP or SRQ region overlaps `span`.
    pub(crate) fn overlaps(&self, span: (u64, u64)) -> bool {
        let o = |r: (u64, u64)| span.0 < r.1 && r.0 < span.1;
        self.qps.iter().flatten().any(|q| o(q.region_bus))
            || self.srqs.iter().flatten().any(|s| o(s.region_bus))
    }
}

/// 24-bit PSN difference `a - b` as a signed number (`> 0`: `a` is after `b`), with wrap.
#[inline(always)]
pub const fn psn_diff(a: u32, b: u32) -> i32 {
    ((a.wrapping_sub(b)) << 8) as i32 >> 8
}

/// `psn + n` modulo 2^24.
#[inline(always)]
pub const fn psn_add(psn: u32, n: u32) -> u32 {
    psn.wrapping_add(n) & 0x00ff_ffff
}

/// Path MTU in bytes of an `ibv_mtu` code (1 = 256 ... 5 = 4096).
pub const fn mtu_bytes(code: u8) -> Option<u32> {
    match code {
        1..=5 => Some(128 << code),
        _ => None,
    }
}

/// AETH syndromes (IBA 9.7.5.1.2; rxe's values).
pub mod syndrome {
    /// ACK with the credit field "unlimited" (rxe: `AETH_ACK_UNLIMITED`).
    pub const ACK: u8 = 0x1f;
    /// RNR NAK: `0x20 | timer`.
    pub const RNR_NAK: u8 = 0x20;
    pub const NAK_PSN_SEQ: u8 = 0x60;
    pub const NAK_INVALID_REQUEST: u8 = 0x61;
    pub const NAK_REMOTE_ACCESS: u8 = 0x62;
    pub const NAK_REMOTE_OP: u8 = 0x63;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psn_arithmetic_wraps_at_24_bits() {
        assert_eq!(psn_diff(0, 0xff_ffff), 1);
        assert_eq!(psn_diff(0xff_ffff, 0), -1);
        assert_eq!(psn_diff(5, 3), 2);
        assert_eq!(psn_diff(0x80_0000, 0), -0x80_0000);
        assert_eq!(psn_add(0xff_ffff, 2), 1);
        assert_eq!(
            (mtu_bytes(1), mtu_bytes(5), mtu_bytes(0), mtu_bytes(6)),
            (Some(256), Some(4096), None, None)
        );
    }
}
