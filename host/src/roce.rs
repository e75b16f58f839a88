//! The RoCE host API: protection domains, memory regions, QPs with their completion queues,
//! receive WQEs, and a shared receive queue fed from a page pool.
//!
//! Shapes follow libibverbs (`ibv_alloc_pd`, `ibv_reg_mr`, `ibv_create_qp`, `ibv_modify_qp`,
//! `ibv_post_recv`, `ibv_poll_cq`, `ibv_create_srq`); the numbering of every field is
//! libibverbs' (`docs/ABI.md`). Everything goes to the firmware through the same control plane
//! and the same shared-memory rings as the RX queues:
//!
//! * a QP's region (a `QueueHeader` region carved from the device's RoCE arena in the host
//!   window) holds its receive-WQE ring (unless it takes WQEs from an SRQ) and its CQ ring;
//! * [`Qp::post_recv`] pushes a [`RecvWqe`]; the host remembers every WQE it posted, in order,
//!   and a CQE is accepted only for the WQE it must complete next (a QP's receive WQEs complete
//!   in order): a firmware that names another WQE, an unknown status or a byte count over the
//!   buffer is counted (`cqe_invalid`) and the CQE ignored, never trusted;
//! * [`PoolSrq`] posts buffers of a [`PagePool`] as WQEs of a shared receive queue
//!   (`wr_id` = the buffer's [`BufRef`]) and turns each CQE into a [`Received`] holding a
//!   [`Token`]: dropping it gives the buffer back to the pool, which the SRQ reposts — the
//!   bridge between RDMA receive and the page-pool provider model. Every buffer goes through
//!   the pool's ledger exactly as on an RX queue (Posted -> Filled -> Lent -> Free; a flushed or
//!   failed WQE is retired Posted -> Free);
//! * destroying a QP ([`Qp::destroy`]) reconciles like a queue reset: the firmware completes
//!   the WQE it holds with `WR_FLUSH_ERR`, the host drains the CQ and takes back every WQE still
//!   in the ring ([`Destroyed`]); destroying a [`PoolSrq`] retires every buffer still posted and
//!   audits the pool.

use crate::ctrl::{CtrlClient, CtrlError, Deadline};
use crate::pool::{AuditReport, PagePool, PoolConfig};
use crate::provider::{DeviceWindow, DeviceWindowConfig};
use crate::recv::SrqBook;
use crate::seam::{HostWindow, WindowDesc};
use crate::token::Token;
use splitrx_shared::abi::CtrlCall;
use splitrx_shared::abi::{
    self, access, call, qp_attr, qp_state, qp_type, send_flags, send_op, wc_opcode, wc_status,
    BufRef, CreateQpArgs, CreateSrqArgs, ModifyQpArgs, MrArgs, PoolMode, QpArgs, QpInfo, RecvWqe,
    RegisterMrArgs, RingKind, RoceCqe, SendWqe, SrqArgs, MAX_RD_ATOMIC_INFLIGHT, MAX_RECV_SGE,
    NO_SRQ,
};
use splitrx_shared::region::RegionLayout;
use splitrx_shared::ring::{Consumer, Producer, RingError};
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zerocopy::little_endian::{U16, U32, U64};

pub use splitrx_shared::wire::mad::rdma_cm_service_id;

/// rdma_cm's TCP port space (`RDMA_PS_TCP`), for [`rdma_cm_service_id`].
pub const RDMA_PS_TCP: u16 = 0x0106;

/// How long a RoCE control request may take.
pub const ROCE_CTRL_TIMEOUT: Duration = Duration::from_secs(10);
const PAGE: u64 = 4096;

fn wait() -> Deadline {
    Deadline::after(ROCE_CTRL_TIMEOUT)
}

/// Why a RoCE call failed.
#[derive(Debug, thiserror::Error)]
pub enum RoceError {
    #[error("control plane: {0}")]
    Ctrl(#[from] CtrlError),
    #[error("region layout: {0}")]
    Layout(#[from] splitrx_shared::region::LayoutError),
    #[error("ring: {0:?}")]
    Ring(RingError),
    #[error("the RoCE arena of the {window} is full ({want} bytes wanted, {free} free)")]
    ArenaFull {
        window: &'static str,
        want: u64,
        free: u64,
    },
    #[error("pool: {0}")]
    Provider(#[from] crate::provider::ProviderError),
    #[error("{0}")]
    Invalid(String),
    #[error("the receive queue is full")]
    QueueFull,
}

impl From<RingError> for RoceError {
    fn from(e: RingError) -> Self {
        RoceError::Ring(e)
    }
}

/// A first-fit allocator of page-aligned byte ranges of one window.
#[derive(Debug)]
struct Arena {
    /// Free ranges (offset in the window, length), sorted, coalesced.
    free: Vec<(u64, u64)>,
}

impl Arena {
    fn new(off: u64, len: u64) -> Arena {
        Arena {
            free: if len > 0 { vec![(off, len)] } else { vec![] },
        }
    }
    fn alloc(&mut self, len: u64, window: &'static str) -> Result<u64, RoceError> {
        let len = len.div_ceil(PAGE) * PAGE;
        let Some(i) = self.free.iter().position(|&(_, l)| l >= len) else {
            return Err(RoceError::ArenaFull {
                window,
                want: len,
                free: self.free.iter().map(|f| f.1).sum(),
            });
        };
        let (off, l) = self.free[i];
        if l == len {
            self.free.remove(i);
        } else {
            self.free[i] = (off + len, l - len);
        }
        Ok(off)
    }
    fn release(&mut self, off: u64, len: u64) {
        let len = len.div_ceil(PAGE) * PAGE;
        let i = self.free.partition_point(|&(o, _)| o < off);
        self.free.insert(i, (off, len));
        // Coalesce with the neighbours.
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }
    fn free_bytes(&self) -> u64 {
        self.free.iter().map(|f| f.1).sum()
    }
}

struct Inner {
    ctrl: Arc<Mutex<CtrlClient>>,
    host: Arc<HostWindow>,
    host_desc: WindowDesc,
    dev_desc: WindowDesc,
    host_arena: Mutex<Arena>,
    dev_arena: Mutex<Arena>,
    next_pd: AtomicU32,
    next_key: AtomicU32,
    next_pool: AtomicU32,
}

impl Inner {
    /// One control call of the RoCE side, with the RoCE timeout.
    fn call<C: CtrlCall>(&self, args: &C::Args) -> Result<C::Resp, CtrlError> {
        self.ctrl
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .request::<C>(args, &mut wait())
    }
}

/// The device's RoCE side: hands out PDs, MRs, QPs and SRQs. Cheap to clone.
#[derive(Clone)]
pub struct Rdma {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Rdma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rdma")
            .field(
                "host_arena_free",
                &self.inner.host_arena.lock().map(|a| a.free_bytes()),
            )
            .finish_non_exhaustive()
    }
}

/// A protection domain: QPs reach only MRs of their own PD (checked by the firmware).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtectionDomain(pub u32);

/// A registered memory region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub pd: ProtectionDomain,
    pub lkey: u32,
    pub rkey: u32,
    /// The address peers use in RETH for the first byte.
    pub iova: u64,
    pub bus_addr: u64,
    pub len: u64,
    pub access: u32,
}

impl MemoryRegion {
    /// Whether `[bus_addr, bus_addr + len)` lies inside the region.
    pub fn contains(&self, bus_addr: u64, len: u64) -> bool {
        bus_addr >= self.bus_addr
            && bus_addr
                .checked_add(len)
                .is_some_and(|e| e <= self.bus_addr + self.len)
    }
}

/// A byte range of device memory carved from the device's RoCE arena (the emulated GPU BAR):
/// what an app registers as an MR or reads back after RDMA WRITEs.
#[derive(Debug)]
pub struct DeviceBuffer {
    rdma: Rdma,
    /// Offset inside device window 0.
    pub offset: u64,
    pub bus_addr: u64,
    pub len: u64,
}

impl DeviceBuffer {
    /// The device window this buffer lies in (file, offset, bus base).
    pub fn window(&self) -> &WindowDesc {
        &self.rdma.inner.dev_desc
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        let mut a = self
            .rdma
            .inner
            .dev_arena
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        a.release(self.offset, self.len);
    }
}

/// QP type (`ibv_qp_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QpType {
    Rc,
    Uc,
    Ud,
}

impl QpType {
    fn raw(self) -> u8 {
        match self {
            QpType::Rc => qp_type::RC,
            QpType::Uc => qp_type::UC,
            QpType::Ud => qp_type::UD,
        }
    }
}

/// What [`Rdma::create_qp`] creates.
#[derive(Clone, Copy, Debug)]
pub struct QpInit {
    pub qpn: u32,
    pub qp_type: QpType,
    pub pd: ProtectionDomain,
    /// Receive-WQE ring entries (a power of two; ignored with `srqn`).
    pub rq_depth: u32,
    /// CQ ring entries (a power of two, more than `rq_depth`: the firmware keeps one slot for
    /// the flush of a destroyed QP).
    pub cq_depth: u32,
    /// Take receive WQEs from this SRQ instead of an own ring.
    pub srqn: Option<u32>,
    /// Send-ring entries (a power of two) for an RC or UD QP that also sends ([`Qp::post_send`]);
    /// 0: the QP only responds. The firmware keeps at most 8 send WQEs in flight and only as
    /// many as the CQ has room for.
    pub sq_depth: u32,
}

/// The path MTU (`ibv_mtu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mtu {
    M256 = 1,
    M512 = 2,
    M1024 = 3,
    M2048 = 4,
    M4096 = 5,
}

impl Mtu {
    pub fn bytes(self) -> u32 {
        128 << (self as u32)
    }
    pub fn from_bytes(b: u32) -> Option<Mtu> {
        Some(match b {
            256 => Mtu::M256,
            512 => Mtu::M512,
            1024 => Mtu::M1024,
            2048 => Mtu::M2048,
            4096 => Mtu::M4096,
            _ => return None,
        })
    }
}

/// The attributes of the INIT -> RTR transition (the responder's side of a connection).
#[derive(Clone, Copy, Debug)]
pub struct RtrAttr {
    /// Remote QP (RC/UC; ignored for UD).
    pub dest_qpn: u32,
    /// PSN of the first request the responder expects.
    pub rq_psn: u32,
    pub mtu: Mtu,
    /// The requester's GID (IPv4 as `::ffff:a.b.c.d`, see [`gid_from_ipv4`]).
    pub remote_gid: [u8; 16],
    /// UDP source port of the responder's packets.
    pub udp_sport: u16,
    pub min_rnr_timer: u8,
}

/// The GID of an IPv4 address (`::ffff:a.b.c.d`, RoCEv2's IPv4-mapped form).
pub fn gid_from_ipv4(ip: [u8; 4]) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[10] = 0xff;
    g[11] = 0xff;
    g[12..].copy_from_slice(&ip);
    g
}

/// A work completion (`ibv_wc`), validated against what the host posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    pub wr_id: u64,
    /// `ibv_wc_status` ([`abi::wc_status`]).
    pub status: u8,
    /// `ibv_wc_opcode` ([`abi::wc_opcode`]).
    pub opcode: u8,
    pub byte_len: u32,
    /// Immediate data (the wire bytes read big-endian: `ntohl(wc.imm_data)`), when the
    /// message carried one.
    pub imm: Option<u32>,
    /// The rkey a SEND with invalidate named.
    pub invalidated: Option<u32>,
    pub qpn: u32,
    pub src_qp: u32,
    /// Whether the first 40 bytes of the buffer are the GRH area (UD).
    pub grh: bool,
    pub psn: u32,
    /// The posted WQE this completes (its first scatter entry; [`Completion::sges`] lists
    /// them all).
    pub wqe: RecvWqe,
    sgl: [RecvWqe; MAX_RECV_SGE],
    n_sge: u8,
}

impl Completion {
    pub fn is_ok(&self) -> bool {
        self.status == wc_status::SUCCESS
    }
    /// Every scatter entry of the completed WQE, in order (the message's bytes fill them in
    /// this order: `byte_len` bytes in all).
    pub fn sges(&self) -> &[RecvWqe] {
        &self.sgl[..self.n_sge as usize]
    }
}

/// The attributes of the RTR -> RTS transition of a QP that sends ([`Qp::to_rts_with`]).
#[derive(Clone, Copy, Debug)]
pub struct RtsAttr {
    /// PSN of the first request the QP sends (24 bits).
    pub sq_psn: u32,
    /// Local ACK timeout: 4.096 us x 2^timeout (0: wait forever).
    pub timeout: u8,
    /// Retransmissions after a timeout or sequence NAK (0-7).
    pub retry_cnt: u8,
    /// Retransmissions after an RNR NAK (0-6, 7: without limit).
    pub rnr_retry: u8,
}

impl Default for RtsAttr {
    /// What `ibv_rc_pingpong` sets: timeout 14 (67 ms), 7 retries, RNR retries without limit.
    fn default() -> Self {
        RtsAttr {
            sq_psn: 0,
            timeout: 14,
            retry_cnt: 7,
            rnr_retry: 7,
        }
    }
}

/// One send work request ([`Qp::post_send`]; `ibv_send_wr` with one SGE). Build it with
/// [`SendWr::send`], [`SendWr::write`] or [`SendWr::read`].
#[derive(Clone, Copy, Debug)]
pub struct SendWr {
    pub wr_id: u64,
    /// [`abi::send_op`].
    pub opcode: u8,
    /// The local buffer (`len` bytes at `bus_addr`, inside the MR of `lkey`).
    pub bus_addr: u64,
    pub len: u32,
    pub lkey: u32,
    /// WRITE/READ: the peer's address and rkey.
    pub remote_addr: u64,
    pub rkey: u32,
    /// `*_WITH_IMM`: the immediate data.
    pub imm: Option<u32>,
    /// Ask the peer for a solicited event.
    pub solicited: bool,
    /// UD: the destination QP and its Q_Key.
    pub remote_qpn: u32,
    pub remote_qkey: u32,
}

impl SendWr {
    /// A SEND of `len` bytes at `bus_addr` of `mr`.
    pub fn send(wr_id: u64, mr: &MemoryRegion, bus_addr: u64, len: u32) -> SendWr {
        SendWr {
            wr_id,
            opcode: send_op::SEND,
            bus_addr,
            len,
            lkey: mr.lkey,
            remote_addr: 0,
            rkey: 0,
            imm: None,
            solicited: false,
            remote_qpn: 0,
            remote_qkey: 0,
        }
    }
    /// A UD SEND of `len` bytes at `bus_addr` of `mr` to QP `remote_qpn` (Q_Key
    /// `remote_qkey`) at the QP's peer address (at most the path MTU).
    pub fn ud_send(
        wr_id: u64,
        mr: &MemoryRegion,
        bus_addr: u64,
        len: u32,
        remote_qpn: u32,
        remote_qkey: u32,
    ) -> SendWr {
        SendWr {
            remote_qpn,
            remote_qkey,
            ..SendWr::send(wr_id, mr, bus_addr, len)
        }
    }
    /// An RDMA WRITE of `len` bytes at `bus_addr` of `mr` to the peer's `remote_addr`.
    pub fn write(
        wr_id: u64,
        mr: &MemoryRegion,
        bus_addr: u64,
        len: u32,
        remote_addr: u64,
        rkey: u32,
    ) -> SendWr {
        SendWr {
            opcode: send_op::RDMA_WRITE,
            remote_addr,
            rkey,
            ..SendWr::send(wr_id, mr, bus_addr, len)
        }
    }
    /// An RDMA READ of `len` bytes of the peer's `remote_addr` into `bus_addr` of `mr`.
    pub fn read(
        wr_id: u64,
        mr: &MemoryRegion,
        bus_addr: u64,
        len: u32,
        remote_addr: u64,
        rkey: u32,
    ) -> SendWr {
        SendWr {
            opcode: send_op::RDMA_READ,
            ..SendWr::write(wr_id, mr, bus_addr, len, remote_addr, rkey)
        }
    }
    /// With immediate data (a SEND or WRITE becomes its `*_WITH_IMM` form).
    pub fn with_imm(mut self, imm: u32) -> SendWr {
        self.opcode = match self.opcode {
            send_op::SEND => send_op::SEND_WITH_IMM,
            send_op::RDMA_WRITE => send_op::RDMA_WRITE_WITH_IMM,
            o => o,
        };
        self.imm = Some(imm);
        self
    }
}

/// A send-queue completion ([`Cqe::Send`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendCompletion {
    pub wr_id: u64,
    /// `ibv_wc_status` ([`abi::wc_status`]).
    pub status: u8,
    /// [`abi::wc_opcode`]: `SEND`, `RDMA_WRITE` or `RDMA_READ`.
    pub opcode: u8,
    /// Bytes sent, written or read (0 on error).
    pub byte_len: u32,
    /// PSN of the WQE's last packet.
    pub psn: u32,
}

impl SendCompletion {
    pub fn is_ok(&self) -> bool {
        self.status == wc_status::SUCCESS
    }
}

/// One scatter entry of [`Qp::post_recv_sgl`] (`ibv_sge`, plus the ledger's buffer name).
#[derive(Clone, Copy, Debug)]
pub struct RecvSge<'a> {
    pub bus_addr: u64,
    pub len: u32,
    pub mr: &'a MemoryRegion,
    /// The pool buffer for the ledger ([`BufRef::NONE`] for memory outside any pool).
    pub buf: BufRef,
}

counters! {
    /// Counters of one QP's host side.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct QpCounters {
        /// Receive WQEs posted.
        pub posted,
        /// Send WQEs posted.
        pub sends_posted,
        /// Send CQEs accepted (also counted in `completion_errors` when not successful).
        pub send_completions,
        /// CQEs accepted.
        pub completions,
        /// Of those, with a status other than success (including flushes).
        pub completion_errors,
        /// CQEs refused: they named a WQE other than the next one, an unknown status or
        /// opcode, or more bytes than the buffer.
        pub cqe_invalid,
    }
}

/// Whether the send CQE `c` completes `w` (its wr_id, the opcode of its kind, a known
/// status, at most its length).
fn send_cqe_ok(c: &RoceCqe, w: &SendWqe) -> bool {
    let opcode = match w.opcode {
        send_op::RDMA_WRITE | send_op::RDMA_WRITE_WITH_IMM => wc_opcode::RDMA_WRITE,
        send_op::RDMA_READ => wc_opcode::RDMA_READ,
        _ => wc_opcode::SEND,
    };
    let known = [
        wc_status::SUCCESS,
        wc_status::LOC_QP_OP_ERR,
        wc_status::LOC_PROT_ERR,
        wc_status::WR_FLUSH_ERR,
        wc_status::REM_INV_REQ_ERR,
        wc_status::REM_ACCESS_ERR,
        wc_status::REM_OP_ERR,
        wc_status::RETRY_EXC_ERR,
        wc_status::RNR_RETRY_EXC_ERR,
    ];
    c.wr_id.get() == w.wr_id.get()
        && c.opcode == opcode
        && known.contains(&c.status)
        && c.byte_len.get() <= w.len.get()
}

/// `len`: the bytes of all the WQE's scatter entries.
pub(crate) fn cqe_check(c: &RoceCqe, wqe: &RecvWqe, len: u64) -> Result<(), &'static str> {
    if c.wr_id.get() != wqe.wr_id.get() {
        return Err("the CQE names another WQE than the next one posted");
    }
    let known = [
        wc_status::SUCCESS,
        wc_status::LOC_LEN_ERR,
        wc_status::LOC_QP_OP_ERR,
        wc_status::LOC_PROT_ERR,
        wc_status::WR_FLUSH_ERR,
        wc_status::REM_INV_REQ_ERR,
        wc_status::REM_ACCESS_ERR,
        wc_status::REM_OP_ERR,
    ];
    if !known.contains(&c.status) {
        return Err("unknown completion status");
    }
    if c.status == wc_status::SUCCESS {
        if c.opcode != wc_opcode::RECV && c.opcode != wc_opcode::RECV_RDMA_WITH_IMM {
            return Err("unknown completion opcode");
        }
        // RECV_RDMA_WITH_IMM reports the WRITE's length: nothing landed in the buffer.
        if c.opcode == wc_opcode::RECV && c.byte_len.get() as u64 > len {
            return Err("more bytes than the posted buffer");
        }
    }
    Ok(())
}

/// `sgl`: the WQE's scatter entries (at least one, at most [`MAX_RECV_SGE`]).
pub(crate) fn completion(c: &RoceCqe, sgl: &[RecvWqe]) -> Completion {
    let f = c.wc_flags.get();
    let wqe = sgl[0];
    let mut arr = [RecvWqe::default(); MAX_RECV_SGE];
    arr[..sgl.len()].copy_from_slice(sgl);
    Completion {
        wr_id: c.wr_id.get(),
        status: c.status,
        opcode: c.opcode,
        byte_len: if c.status == wc_status::SUCCESS {
            c.byte_len.get()
        } else {
            0
        },
        imm: (f & abi::wc_flags::WITH_IMM != 0).then(|| c.imm_or_inv.get()),
        invalidated: (f & abi::wc_flags::WITH_INV != 0).then(|| c.imm_or_inv.get()),
        qpn: c.qpn.get(),
        src_qp: c.src_qp.get(),
        grh: f & abi::wc_flags::GRH != 0,
        psn: c.psn.get(),
        wqe,
        sgl: arr,
        n_sge: sgl.len() as u8,
    }
}

/// One QP with its CQ.
pub struct Qp {
    rdma: Rdma,
    pub qpn: u32,
    pub qp_type: QpType,
    pub srqn: Option<u32>,
    region_off: u64,
    region_len: u64,
    rq: Option<Producer<RecvWqe>>,
    cq: Consumer<RoceCqe>,
    /// WQEs posted to the own ring, oldest first (completed in order), one entry per
    /// scatter entry ([`RecvWqe::MORE`] chains a WQE's entries).
    posted: VecDeque<RecvWqe>,
    sq: Option<Producer<SendWqe>>,
    /// Send WQEs posted and not completed, oldest first.
    sent: VecDeque<SendWqe>,
    counters: QpCounters,
    /// A CQE for an SRQ WQE: the SRQ validates it ([`PoolSrq::accept`]).
    first_error: Option<&'static str>,
    destroyed: bool,
}

impl std::fmt::Debug for Qp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qp")
            .field("qpn", &self.qpn)
            .field("qp_type", &self.qp_type)
            .field("posted", &self.posted.len())
            .finish_non_exhaustive()
    }
}

/// A CQE of a QP that takes its WQEs from an SRQ, not yet validated: hand it to the SRQ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SrqCqe(pub RoceCqe);

/// What [`Qp::poll_cq`] returns per CQE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cqe {
    /// A completion of a WQE of the QP's own ring, validated.
    Own(Completion),
    /// A completion of an SRQ WQE: validate and resolve it with the SRQ's `accept`.
    Srq(SrqCqe),
    /// A completion of a send WQE, validated.
    Send(SendCompletion),
}

/// What [`Qp::destroy`] gives back.
#[derive(Debug, Default)]
pub struct Destroyed {
    /// Completions drained from the CQ during destroy (including the firmware's flush).
    pub completions: Vec<Cqe>,
    /// WQEs the firmware never took (still in the ring, or taken and not completed by a
    /// hostile firmware): they are the host's again. One entry per scatter entry, so every
    /// buffer is named.
    pub returned: Vec<RecvWqe>,
    /// Send WQEs not completed (the firmware flushes those it took; these it never took).
    pub unsent: Vec<SendWqe>,
}

impl Rdma {
    /// The RoCE side of a device: control client, the host window mapping, and the two arenas
    /// (`host_arena` in the host window for QP/SRQ regions, `dev_arena` in device window 0 for
    /// device buffers and SRQ pools), as `(offset, len)`.
    pub fn new(
        ctrl: Arc<Mutex<CtrlClient>>,
        host: Arc<HostWindow>,
        dev_desc: WindowDesc,
        host_arena: (u64, u64),
        dev_arena: (u64, u64),
    ) -> Rdma {
        Rdma {
            inner: Arc::new(Inner {
                ctrl,
                host_desc: host.desc().clone(),
                host,
                dev_desc,
                host_arena: Mutex::new(Arena::new(host_arena.0, host_arena.1)),
                dev_arena: Mutex::new(Arena::new(dev_arena.0, dev_arena.1)),
                next_pd: AtomicU32::new(1),
                next_key: AtomicU32::new(0x100),
                next_pool: AtomicU32::new(0),
            }),
        }
    }

    /// `ibv_alloc_pd`.
    pub fn alloc_pd(&self) -> ProtectionDomain {
        ProtectionDomain(self.inner.next_pd.fetch_add(1, Ordering::Relaxed))
    }

    /// Carves `len` bytes of device memory (the emulated GPU BAR) from the RoCE arena.
    pub fn alloc_device(&self, len: u64) -> Result<DeviceBuffer, RoceError> {
        let off = self
            .inner
            .dev_arena
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .alloc(len, "device window")?;
        Ok(DeviceBuffer {
            rdma: self.clone(),
            offset: off,
            bus_addr: self.inner.dev_desc.bus(off),
            len: len.div_ceil(PAGE) * PAGE,
        })
    }

    /// `ibv_reg_mr` over `[bus_addr, bus_addr + len)` of any provider's memory, reached by
    /// peers at `iova`. Keys are chosen here (lkey = rkey, unique per device); the firmware
    /// range-checks the MR against the memory it can reach.
    pub fn reg_mr(
        &self,
        pd: ProtectionDomain,
        bus_addr: u64,
        len: u64,
        iova: u64,
        access: u32,
    ) -> Result<MemoryRegion, RoceError> {
        let key = self.inner.next_key.fetch_add(1, Ordering::Relaxed);
        self.reg_mr_keyed(pd, bus_addr, len, iova, access, key, key)
    }

    /// [`Rdma::reg_mr`] with chosen keys (a replay that must match a captured rkey).
    #[allow(clippy::too_many_arguments)]
    pub fn reg_mr_keyed(
        &self,
        pd: ProtectionDomain,
        bus_addr: u64,
        len: u64,
        iova: u64,
        access: u32,
        lkey: u32,
        rkey: u32,
    ) -> Result<MemoryRegion, RoceError> {
        let a = RegisterMrArgs {
            bus_addr: U64::new(bus_addr),
            len: U64::new(len),
            iova: U64::new(iova),
            rkey: U32::new(rkey),
            lkey: U32::new(lkey),
            access: U32::new(access),
            pd: U32::new(pd.0),
        };
        self.inner.call::<call::RegisterMr>(&a)?;
        Ok(MemoryRegion {
            pd,
            lkey,
            rkey,
            iova,
            bus_addr,
            len,
            access,
        })
    }

    /// `ibv_dereg_mr`.
    pub fn dereg_mr(&self, mr: MemoryRegion) -> Result<(), RoceError> {
        let a = MrArgs {
            lkey: U32::new(mr.lkey),
        };
        self.inner.call::<call::DeregisterMr>(&a)?;
        Ok(())
    }

    fn region(
        &self,
        id: u16,
        rings: &[(RingKind, u32)],
    ) -> Result<(u64, RegionLayout, NonNull<u8>), RoceError> {
        let l = RegionLayout::new(id, rings)?;
        let off = self
            .inner
            .host_arena
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .alloc(l.size, "host window")?;
        // SAFETY: `off..off + l.size` was carved from the RoCE arena, which the device layout
        // placed inside the host window mapping `inner.host` keeps alive; nobody else uses it
        // (the arena hands each range out once) and the firmware does not know it yet.
        let base =
            unsafe { NonNull::new_unchecked(self.inner.host.base().as_ptr().add(off as usize)) };
        // SAFETY: as above.
        if let Err(e) = unsafe { l.init(base, l.size as usize) } {
            self.release_host(off, l.size);
            return Err(e.into());
        }
        Ok((off, l, base))
    }

    /// A QP or SRQ going away: destroyed through `C` unless that happened already, then its
    /// region back to the arena. When the firmware refuses, the region is leaked rather than
    /// reused (the firmware may still use it).
    fn drop_object<C: CtrlCall>(&self, destroyed: bool, args: &C::Args, off: u64, len: u64) {
        if destroyed || self.inner.call::<C>(args).is_ok() {
            self.release_host(off, len);
        }
    }

    fn release_host(&self, off: u64, len: u64) {
        self.inner
            .host_arena
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(off, len);
    }

    /// `ibv_create_qp`: a QP in RESET with its CQ (and its own receive ring unless `srqn`).
    pub fn create_qp(&self, init: &QpInit) -> Result<Qp, RoceError> {
        if !init.cq_depth.is_power_of_two()
            || (init.srqn.is_none()
                && (!init.rq_depth.is_power_of_two() || init.cq_depth <= init.rq_depth))
        {
            return Err(RoceError::Invalid(
                "ring depths must be powers of two, the CQ deeper than the receive queue".into(),
            ));
        }
        if init.sq_depth != 0 && (!init.sq_depth.is_power_of_two() || init.qp_type == QpType::Uc) {
            return Err(RoceError::Invalid(
                "a send ring is for RC and UD QPs and its depth a power of two".into(),
            ));
        }
        let mut rings = vec![(RingKind::RoceCq, init.cq_depth)];
        if init.srqn.is_none() {
            rings.insert(0, (RingKind::RecvWqe, init.rq_depth));
        }
        if init.sq_depth != 0 {
            rings.push((RingKind::SendWqe, init.sq_depth));
        }
        let (off, l, base) = self.region(init.qpn as u16, &rings)?;
        // SAFETY: rings initialised by `region` in the host window mapping, which `self`
        // (through `inner.host`) keeps alive as long as the QP; one producer and one consumer on
        // the host side.
        let handles = unsafe {
            let rq = match init.srqn {
                None => Some(l.producer::<RecvWqe>(base, RingKind::RecvWqe)?),
                Some(_) => None,
            };
            let sq = match init.sq_depth {
                0 => None,
                _ => Some(l.producer::<SendWqe>(base, RingKind::SendWqe)?),
            };
            (rq, l.consumer::<RoceCqe>(base, RingKind::RoceCq)?, sq)
        };
        let a = CreateQpArgs {
            qpn: U32::new(init.qpn),
            pd: U32::new(init.pd.0),
            qp_type: init.qp_type.raw(),
            flags: if init.sq_depth != 0 {
                CreateQpArgs::SEND_QUEUE
            } else {
                0
            },
            _pad: [0; 2],
            srqn: U32::new(init.srqn.unwrap_or(NO_SRQ)),
            region_bus_addr: U64::new(self.inner.host_desc.bus(off)),
            region_len: U64::new(l.size),
        };
        if let Err(e) = self.inner.call::<call::CreateQp>(&a) {
            self.release_host(off, l.size);
            return Err(e.into());
        }
        Ok(Qp {
            rdma: self.clone(),
            qpn: init.qpn,
            qp_type: init.qp_type,
            srqn: init.srqn,
            region_off: off,
            region_len: l.size,
            rq: handles.0,
            cq: handles.1,
            posted: VecDeque::new(),
            sq: handles.2,
            sent: VecDeque::new(),
            counters: QpCounters::default(),
            first_error: None,
            destroyed: false,
        })
    }

    fn modify(&self, a: &ModifyQpArgs) -> Result<(), RoceError> {
        self.inner.call::<call::ModifyQp>(a)?;
        Ok(())
    }

    /// `ibv_query_qp`: the firmware's view of a QP.
    pub fn query_qp(&self, qpn: u32) -> Result<QpInfo, RoceError> {
        let a = QpArgs { qpn: U32::new(qpn) };
        Ok(self.inner.call::<call::QueryQp>(&a)?)
    }

    /// `rdma_listen` + `rdma_accept` on the passive side, done by the firmware: the next CM
    /// REQ for `service_id` (rdma_cm's: [`rdma_cm_service_id`]) connects `qp`, which must be an
    /// RC QP in INIT with its access rights set. The firmware answers with a REP, moves the QP
    /// to RTR with the requester's QPN, PSN, GID and path MTU, and to RTS on the RTU (watch it
    /// with [`Qp::query`]); a DREQ gets a DREP and moves it to ERR. One connection per listen.
    pub fn cm_listen(&self, service_id: u64, qp: &Qp) -> Result<(), RoceError> {
        let a = abi::CmListenArgs {
            service_id: U64::new(service_id),
            qpn: U32::new(qp.qpn),
            _pad: U32::new(0),
        };
        self.inner.call::<call::CmListen>(&a)?;
        Ok(())
    }

    /// Stops listening on `service_id` (a connection already made stays).
    pub fn cm_unlisten(&self, service_id: u64) -> Result<(), RoceError> {
        let a = abi::CmListenArgs {
            service_id: U64::new(service_id),
            ..Default::default()
        };
        self.inner.call::<call::CmUnlisten>(&a)?;
        Ok(())
    }

    /// A page pool over `count` buffers of `buf_size` bytes of device memory (the emulated GPU
    /// BAR), for a [`PoolSrq`]. Pool ids of RoCE pools start at 0x80 (RX queues use the low
    /// ones).
    pub fn device_pool(
        &self,
        buf_size: u32,
        count: u32,
    ) -> Result<(PagePool, DeviceBuffer), RoceError> {
        let mem = self.alloc_device(buf_size as u64 * count as u64)?;
        let id = 0x80 + (self.inner.next_pool.fetch_add(1, Ordering::Relaxed) & 0x7f) as u8;
        let d = &self.inner.dev_desc;
        let pool = PagePool::new(
            PoolConfig {
                pool_id: id,
                mode: PoolMode::Page,
                ring_size: (count as usize).next_power_of_two(),
                ..PoolConfig::new(id)
            },
            Box::new(DeviceWindow::new(DeviceWindowConfig {
                offset: d.file_offset + mem.offset,
                host_readable: d.host_readable,
                ..DeviceWindowConfig::open(&d.path, buf_size, count, mem.bus_addr)
            })),
        )?;
        Ok((pool, mem))
    }
}

impl Qp {
    fn args(&self, mask: u32) -> ModifyQpArgs {
        ModifyQpArgs {
            qpn: U32::new(self.qpn),
            attr_mask: U32::new(mask),
            ..Default::default()
        }
    }

    /// RESET -> INIT, allowing `access` ([`abi::access`] bits) to remote peers; UD QPs take
    /// their Q_Key here.
    pub fn to_init(&mut self, access: u32, qkey: u32) -> Result<(), RoceError> {
        let mut a = self.args(qp_attr::STATE | qp_attr::ACCESS_FLAGS | qp_attr::QKEY);
        a.state = qp_state::INIT;
        a.access = U32::new(access);
        a.qkey = U32::new(qkey);
        self.rdma.modify(&a)
    }

    /// INIT -> RTR: the responder is live from here.
    pub fn to_rtr(&mut self, r: &RtrAttr) -> Result<(), RoceError> {
        let mut mask = qp_attr::STATE
            | qp_attr::PATH_MTU
            | qp_attr::RQ_PSN
            | qp_attr::AV
            | qp_attr::MIN_RNR_TIMER;
        if self.qp_type != QpType::Ud {
            mask |= qp_attr::DEST_QPN;
        }
        let mut a = self.args(mask);
        a.state = qp_state::RTR;
        a.path_mtu = r.mtu as u8;
        a.dest_qpn = U32::new(r.dest_qpn);
        a.rq_psn = U32::new(r.rq_psn & 0xff_ffff);
        a.remote_gid = r.remote_gid;
        a.udp_sport = U16::new(r.udp_sport);
        a.min_rnr_timer = r.min_rnr_timer;
        self.rdma.modify(&a)
    }

    /// RTR -> RTS.
    pub fn to_rts(&mut self) -> Result<(), RoceError> {
        let mut a = self.args(qp_attr::STATE);
        a.state = qp_state::RTS;
        self.rdma.modify(&a)
    }

    /// RTR -> RTS with the requester's attributes (a QP created with a send ring).
    pub fn to_rts_with(&mut self, r: &RtsAttr) -> Result<(), RoceError> {
        let mut a = self.args(
            qp_attr::STATE
                | qp_attr::SQ_PSN
                | qp_attr::TIMEOUT
                | qp_attr::RETRY_CNT
                | qp_attr::RNR_RETRY
                | qp_attr::MAX_QP_RD_ATOMIC,
        );
        a.state = qp_state::RTS;
        a.sq_psn = U32::new(r.sq_psn & 0xff_ffff);
        a.timeout = r.timeout;
        a.retry_cnt = r.retry_cnt;
        a.rnr_retry = r.rnr_retry;
        a.max_rd_atomic = MAX_RD_ATOMIC_INFLIGHT;
        self.rdma.modify(&a)
    }

    /// `ibv_post_send` of one work request on the QP's send ring. `Invalid` when the QP has no
    /// send ring or the local buffer is empty-but-addressed wrongly; `QueueFull` when the ring
    /// is full. The firmware checks the lkey and range again (a refused WQE completes with
    /// `LOC_PROT_ERR` and moves the QP to ERR).
    pub fn post_send(&mut self, wr: &SendWr) -> Result<(), RoceError> {
        let Some(sq) = self.sq.as_mut() else {
            return Err(RoceError::Invalid("the QP has no send ring".into()));
        };
        if wr.opcode > send_op::RDMA_READ
            || wr.imm.is_some()
                != matches!(
                    wr.opcode,
                    send_op::SEND_WITH_IMM | send_op::RDMA_WRITE_WITH_IMM
                )
        {
            return Err(RoceError::Invalid(
                "unknown send opcode or immediate".into(),
            ));
        }
        let w = SendWqe {
            wr_id: U64::new(wr.wr_id),
            bus_addr: U64::new(wr.bus_addr),
            len: U32::new(wr.len),
            lkey: U32::new(wr.lkey),
            remote_addr: U64::new(wr.remote_addr),
            rkey: U32::new(wr.rkey),
            imm: U32::new(wr.imm.unwrap_or(0)),
            opcode: wr.opcode,
            flags: if wr.solicited {
                send_flags::SOLICITED
            } else {
                0
            },
            _pad: U16::new(0),
            qpn: U32::new(self.qpn),
            remote_qpn: U32::new(wr.remote_qpn),
            remote_qkey: U32::new(wr.remote_qkey),
            _rsvd: [0; 8],
        };
        if !sq.push(&w)? {
            return Err(RoceError::QueueFull);
        }
        self.sent.push_back(w);
        self.counters.sends_posted += 1;
        Ok(())
    }

    /// Send WQEs posted and not completed yet.
    pub fn sends_outstanding(&self) -> usize {
        self.sent.len()
    }

    /// Any -> ERR: the firmware flushes the WQE it holds (its CQE arrives on the CQ).
    pub fn to_err(&mut self) -> Result<(), RoceError> {
        let mut a = self.args(qp_attr::STATE);
        a.state = qp_state::ERR;
        self.rdma.modify(&a)
    }

    /// The firmware's view of this QP.
    pub fn query(&self) -> Result<QpInfo, RoceError> {
        self.rdma.query_qp(self.qpn)
    }

    pub fn counters(&self) -> QpCounters {
        self.counters
    }

    /// Why the first refused CQE was refused.
    pub fn first_error(&self) -> Option<&'static str> {
        self.first_error
    }

    /// WQEs posted and not completed yet.
    pub fn outstanding(&self) -> usize {
        self.posted.iter().filter(|w| !w.more()).count()
    }

    /// `ibv_post_recv` of one WQE with one scatter entry on the QP's own ring. `buf` names
    /// the pool buffer for the ledger ([`BufRef::NONE`] for memory outside any pool).
    pub fn post_recv(
        &mut self,
        wr_id: u64,
        bus_addr: u64,
        len: u32,
        mr: &MemoryRegion,
        buf: BufRef,
    ) -> Result<(), RoceError> {
        self.post_recv_sgl(
            wr_id,
            &[RecvSge {
                bus_addr,
                len,
                mr,
                buf,
            }],
        )
    }

    /// `ibv_post_recv` of one WQE whose scatter list is `sgl` (1 to [`MAX_RECV_SGE`]
    /// entries): a message fills the entries in order. All entries go to the ring in one
    /// commit, or none ([`RoceError::QueueFull`]).
    pub fn post_recv_sgl(&mut self, wr_id: u64, sgl: &[RecvSge<'_>]) -> Result<(), RoceError> {
        let Some(rq) = self.rq.as_mut() else {
            return Err(RoceError::Invalid(format!(
                "QP {} takes its receive WQEs from SRQ {:?}",
                self.qpn, self.srqn
            )));
        };
        if sgl.is_empty() || sgl.len() > MAX_RECV_SGE {
            return Err(RoceError::Invalid(format!(
                "a receive WQE has 1 to {MAX_RECV_SGE} scatter entries, not {}",
                sgl.len()
            )));
        }
        let total: u64 = sgl.iter().map(|s| s.len as u64).sum();
        if total > u32::MAX as u64 {
            return Err(RoceError::Invalid(format!(
                "a receive WQE of {total} bytes (at most 4 GiB - 1)"
            )));
        }
        let mut ws = [RecvWqe::default(); MAX_RECV_SGE];
        for (i, s) in sgl.iter().enumerate() {
            if !s.mr.contains(s.bus_addr, s.len as u64) {
                return Err(RoceError::Invalid(format!(
                    "receive buffer {:#x}+{} is outside MR lkey {:#x}",
                    s.bus_addr, s.len, s.mr.lkey
                )));
            }
            let more = if i + 1 < sgl.len() { RecvWqe::MORE } else { 0 };
            ws[i] = RecvWqe {
                wr_id: U64::new(wr_id),
                bus_addr: U64::new(s.bus_addr),
                len: U32::new(s.len),
                lkey: U32::new(s.mr.lkey),
                buf: s.buf,
                qpn: U32::new(self.qpn | more),
            };
        }
        let ws = &ws[..sgl.len()];
        // One producer: the free space only grows until the commit below.
        if (rq.free()? as usize) < ws.len() {
            return Err(RoceError::QueueFull);
        }
        let n = rq.push_slice(ws)?;
        debug_assert_eq!(n, ws.len());
        self.posted.extend(ws.iter().copied());
        self.counters.posted += 1;
        Ok(())
    }

    /// The scatter list of the oldest posted WQE (its entries at the front of `posted`), or
    /// `None` when nothing is posted.
    fn next_posted(&self) -> Option<([RecvWqe; MAX_RECV_SGE], usize, u64)> {
        let mut arr = [RecvWqe::default(); MAX_RECV_SGE];
        let mut len = 0u64;
        for (i, w) in self.posted.iter().take(MAX_RECV_SGE).enumerate() {
            arr[i] = *w;
            len += w.len.get() as u64;
            if !w.more() {
                return Some((arr, i + 1, len));
            }
        }
        None
    }

    /// `ibv_poll_cq`: up to `max` completions, oldest first. CQEs of the own ring are checked
    /// against the next posted WQE; refused ones are counted and dropped.
    pub fn poll_cq(&mut self, max: usize) -> Result<Vec<Cqe>, RoceError> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(c) = self.cq.pop()? else { break };
            if c.opcode < wc_opcode::RECV {
                match self.sent.front() {
                    Some(w) if send_cqe_ok(&c, w) => {
                        self.sent.pop_front();
                        self.counters.send_completions += 1;
                        if c.status != wc_status::SUCCESS {
                            self.counters.completion_errors += 1;
                        }
                        out.push(Cqe::Send(SendCompletion {
                            wr_id: c.wr_id.get(),
                            status: c.status,
                            opcode: c.opcode,
                            byte_len: c.byte_len.get(),
                            psn: c.psn.get(),
                        }));
                    }
                    Some(_) => self.refuse("a send CQE for another WQE than the next one posted"),
                    None => self.refuse("a send CQE with no send WQE posted"),
                }
                continue;
            }
            if self.srqn.is_some() {
                out.push(Cqe::Srq(SrqCqe(c)));
                continue;
            }
            let Some((sgl, n, len)) = self.next_posted() else {
                self.refuse("a CQE with no WQE posted");
                continue;
            };
            if let Err(e) = cqe_check(&c, &sgl[0], len) {
                self.refuse(e);
                continue;
            }
            self.posted.drain(..n);
            self.counters.completions += 1;
            if c.status != wc_status::SUCCESS {
                self.counters.completion_errors += 1;
            }
            out.push(Cqe::Own(completion(&c, &sgl[..n])));
        }
        Ok(out)
    }

    fn refuse(&mut self, why: &'static str) {
        self.counters.cqe_invalid += 1;
        self.first_error.get_or_insert(why);
    }

    /// `ibv_destroy_qp`: the firmware completes the WQE it holds with `WR_FLUSH_ERR`; the CQ
    /// is drained; every WQE not completed is returned (see the module docs).
    pub fn destroy(mut self) -> Result<Destroyed, RoceError> {
        let a = QpArgs {
            qpn: U32::new(self.qpn),
        };
        self.rdma.inner.call::<call::DestroyQp>(&a)?;
        self.destroyed = true;
        let completions = self.poll_cq(usize::MAX)?;
        let returned = self.posted.drain(..).collect();
        let unsent = self.sent.drain(..).collect();
        Ok(Destroyed {
            completions,
            returned,
            unsent,
        })
    }
}

impl Drop for Qp {
    fn drop(&mut self) {
        // Best effort: a QP dropped without `destroy` is destroyed here; its WQEs are forgotten
        // by the host side (pool buffers stay Posted until their pool is reconciled).
        let a = QpArgs {
            qpn: U32::new(self.qpn),
        };
        self.rdma.drop_object::<call::DestroyQp>(
            self.destroyed,
            &a,
            self.region_off,
            self.region_len,
        );
    }
}

/// A receive completion of a [`PoolSrq`]: the bytes landed in a pool buffer, lent as a token.
#[derive(Debug)]
pub struct Received {
    /// The payload (`byte_len` bytes at offset 0 of the buffer; for UD the first 40 bytes are
    /// the GRH area). Dropping it returns the buffer to the pool.
    pub token: Token,
    pub completion: Completion,
}

counters! {
    /// Counters of a pool-fed SRQ.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct SrqCounters {
        /// WQEs posted.
        pub posted,
        /// Successful receives lent as tokens.
        pub received,
        /// Completions with an error status (the buffer went back to the pool).
        pub errors,
        /// CQEs refused: not a buffer of this SRQ's pool that the NIC holds, or bytes beyond
        /// the buffer, or an unknown status/opcode.
        pub cqe_invalid,
    }
}

/// A shared receive queue fed from a page pool (see the module docs).
pub struct PoolSrq {
    rdma: Rdma,
    pub srqn: u32,
    pub mr: MemoryRegion,
    _mem: Option<DeviceBuffer>,
    region_off: u64,
    region_len: u64,
    rq: Producer<RecvWqe>,
    book: SrqBook,
    destroyed: bool,
}

impl std::fmt::Debug for PoolSrq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolSrq")
            .field("srqn", &self.srqn)
            .field("posted", &self.book.outstanding())
            .finish_non_exhaustive()
    }
}

/// [`PoolSrq::destroy`] failed (e.g. `Busy`: a QP still uses it): the SRQ, unchanged.
#[derive(Debug)]
pub struct SrqNotDestroyed {
    pub error: RoceError,
    pub srq: Box<PoolSrq>,
}

impl std::fmt::Display for SrqNotDestroyed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SRQ {} not destroyed: {}", self.srq.srqn, self.error)
    }
}

/// What [`PoolSrq::destroy`] reports.
#[derive(Debug)]
pub struct SrqDestroyed {
    /// Buffers that were still posted and went back to the pool.
    pub retired: usize,
    /// The pool's ledger audit after everything came back.
    pub audit: Result<AuditReport, String>,
    pub counters: SrqCounters,
}

impl PoolSrq {
    /// `ibv_create_srq` whose WQEs are buffers of `pool` (`depth` ring entries, a power of
    /// two). An MR with local-write access covering the pool's region is registered in `pd`.
    /// `mem`, when given, is the device memory the pool lives in (kept until the SRQ goes).
    pub fn new(
        rdma: &Rdma,
        srqn: u32,
        pd: ProtectionDomain,
        pool: PagePool,
        mem: Option<DeviceBuffer>,
        depth: u32,
    ) -> Result<PoolSrq, RoceError> {
        if !depth.is_power_of_two() {
            return Err(RoceError::Invalid(
                "SRQ depth must be a power of two".into(),
            ));
        }
        let r = pool.region();
        let len = r.buf_size as u64 * r.count as u64;
        let mr = rdma.reg_mr(pd, r.bus_base, len, r.bus_base, access::LOCAL_WRITE)?;
        let (off, l, base) = rdma.region(0x8000 | srqn as u16, &[(RingKind::RecvWqe, depth)])?;
        // SAFETY: the ring was initialised by `region` inside the host window mapping that
        // `rdma` keeps alive as long as the SRQ; one producer on the host side.
        let rq = unsafe { l.producer::<RecvWqe>(base, RingKind::RecvWqe)? };
        let a = CreateSrqArgs {
            srqn: U32::new(srqn),
            pd: U32::new(pd.0),
            region_bus_addr: U64::new(rdma.inner.host_desc.bus(off)),
            region_len: U64::new(l.size),
        };
        if let Err(e) = rdma.inner.call::<call::CreateSrq>(&a) {
            rdma.release_host(off, l.size);
            let _ = rdma.dereg_mr(mr);
            return Err(e.into());
        }
        let bus_base = pool.region().bus_base;
        let mut s = PoolSrq {
            rdma: rdma.clone(),
            srqn,
            mr,
            _mem: mem,
            region_off: off,
            region_len: l.size,
            rq,
            book: SrqBook::new(pool, mr.lkey, srqn | 0x8000_0000, bus_base),
            destroyed: false,
        };
        s.refill()?;
        Ok(s)
    }

    pub fn pool(&self) -> &PagePool {
        self.book.pool()
    }

    pub fn counters(&self) -> SrqCounters {
        self.book.counters()
    }

    pub fn first_error(&self) -> Option<&'static str> {
        self.book.first_error()
    }

    /// Buffers posted and not completed.
    pub fn outstanding(&self) -> usize {
        self.book.outstanding()
    }

    /// Posts free pool buffers until the ring is full or the pool is dry; returns how many.
    pub fn refill(&mut self) -> Result<usize, RoceError> {
        let mut n = 0;
        while self.rq.free()? > 0 {
            let Some(w) = self.book.take() else { break };
            if !self.rq.push(&w)? {
                // Cannot happen after `free() > 0` with one producer; give the buffer back.
                self.book.untake(&w);
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Validates a CQE of a QP attached to this SRQ and resolves it: `Ok(Ok)` a successful
    /// receive lent as a token; `Ok(Err)` an error completion (the buffer is back in the pool);
    /// `Err` a refused CQE (counted, nothing changed). See [`SrqBook::accept`].
    pub fn accept(&mut self, c: SrqCqe) -> Result<Result<Received, Completion>, &'static str> {
        self.book.accept(&c.0)
    }

    /// `ibv_destroy_srq` (destroy its QPs first: the firmware answers `Busy` otherwise). Every
    /// buffer still posted goes back to the pool, the MR is deregistered and the pool audited.
    /// Tokens the app still holds stay valid; the audit counts them as lent.
    pub fn destroy(mut self) -> Result<SrqDestroyed, SrqNotDestroyed> {
        let a = SrqArgs {
            srqn: U32::new(self.srqn),
        };
        let r = self.rdma.inner.call::<call::DestroySrq>(&a);
        if let Err(e) = r {
            return Err(SrqNotDestroyed {
                error: e.into(),
                srq: Box::new(self),
            });
        }
        self.destroyed = true;
        let _ = self.rdma.dereg_mr(self.mr);
        Ok(self.book.close())
    }
}

impl Drop for PoolSrq {
    fn drop(&mut self) {
        let a = SrqArgs {
            srqn: U32::new(self.srqn),
        };
        self.rdma.drop_object::<call::DestroySrq>(
            self.destroyed,
            &a,
            self.region_off,
            self.region_len,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_allocates_first_fit_and_coalesces() {
        let mut a = Arena::new(0x10000, 0x10000);
        let x = a.alloc(1, "t").unwrap();
        let y = a.alloc(PAGE + 1, "t").unwrap();
        assert_eq!((x, y), (0x10000, 0x11000));
        assert_eq!(a.free_bytes(), 0x10000 - 3 * PAGE);
        assert!(matches!(
            a.alloc(0x10000, "t"),
            Err(RoceError::ArenaFull { want: 0x10000, .. })
        ));
        a.release(x, 1);
        a.release(y, PAGE + 1);
        assert_eq!(a.free, vec![(0x10000, 0x10000)]);
    }

    #[test]
    fn a_send_cqe_is_checked_against_the_send_wqe_posted_next() {
        let w = SendWqe {
            wr_id: U64::new(9),
            len: U32::new(4096),
            opcode: send_op::RDMA_READ,
            ..Default::default()
        };
        let ok = RoceCqe {
            wr_id: U64::new(9),
            byte_len: U32::new(4096),
            opcode: wc_opcode::RDMA_READ,
            status: wc_status::SUCCESS,
            ..Default::default()
        };
        assert!(send_cqe_ok(&ok, &w));
        let bad = [
            RoceCqe {
                wr_id: U64::new(8),
                ..ok
            },
            RoceCqe {
                opcode: wc_opcode::SEND,
                ..ok
            },
            RoceCqe {
                byte_len: U32::new(4097),
                ..ok
            },
            RoceCqe { status: 3, ..ok },
        ];
        for c in bad {
            assert!(!send_cqe_ok(&c, &w), "{c:?}");
        }
        // Errors the requester reports are known statuses.
        for status in [
            wc_status::RETRY_EXC_ERR,
            wc_status::RNR_RETRY_EXC_ERR,
            wc_status::WR_FLUSH_ERR,
            wc_status::REM_ACCESS_ERR,
        ] {
            let c = RoceCqe {
                status,
                byte_len: U32::new(0),
                ..ok
            };
            assert!(send_cqe_ok(&c, &w));
        }
        // A WRITE with immediate completes as RDMA_WRITE.
        let w = SendWqe {
            opcode: send_op::RDMA_WRITE_WITH_IMM,
            ..w
        };
        assert!(send_cqe_ok(
            &RoceCqe {
                opcode: wc_opcode::RDMA_WRITE,
                ..ok
            },
            &w
        ));
    }

    #[test]
    fn cqe_is_checked_against_the_posted_wqe() {
        let w = RecvWqe {
            wr_id: U64::new(7),
            len: U32::new(100),
            ..Default::default()
        };
        let mut c = RoceCqe {
            wr_id: U64::new(7),
            byte_len: U32::new(100),
            opcode: wc_opcode::RECV,
            ..Default::default()
        };
        assert_eq!(cqe_check(&c, &w, w.len.get() as u64), Ok(()));
        c.byte_len = U32::new(101);
        assert_eq!(
            cqe_check(&c, &w, w.len.get() as u64),
            Err("more bytes than the posted buffer")
        );
        c.byte_len = U32::new(1);
        c.wr_id = U64::new(8);
        assert_eq!(
            cqe_check(&c, &w, w.len.get() as u64),
            Err("the CQE names another WQE than the next one posted")
        );
        c.wr_id = U64::new(7);
        c.status = 77;
        assert_eq!(
            cqe_check(&c, &w, w.len.get() as u64),
            Err("unknown completion status")
        );
        c.status = wc_status::WR_FLUSH_ERR;
        c.byte_len = U32::new(4096);
        assert_eq!(
            cqe_check(&c, &w, w.len.get() as u64),
            Ok(()),
            "a flush carries no byte count to check"
        );
        assert_eq!(completion(&c, &[w]).byte_len, 0);
        c.status = 0;
        c.byte_len = U32::new(4);
        c.opcode = wc_opcode::RECV_RDMA_WITH_IMM;
        c.wc_flags = U16::new(abi::wc_flags::WITH_IMM);
        c.imm_or_inv = U32::new(0x1234_5678);
        assert_eq!(completion(&c, &[w]).imm, Some(0x1234_5678));
    }

    #[test]
    fn mtu_and_gid() {
        assert_eq!(Mtu::M1024.bytes(), 1024);
        assert_eq!(Mtu::from_bytes(4096), Some(Mtu::M4096));
        assert_eq!(Mtu::from_bytes(1500), None);
        assert_eq!(
            gid_from_ipv4([192, 168, 1, 2]),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 2]
        );
    }
}
