//! The control plane: requests from the host's CtrlRequest ring, one or more responses on the
//! CtrlResponse ring. Every request gets a status; a request that cannot be understood gets an
//! error status, never a crash. Semantics of each opcode: `docs/firmware.md`.
//!
//! A request is taken from the ring only when the response ring has room for its (first)
//! response, so every request is answered. ResetQueue and DestroyRxQueue produce several
//! responses ([`CtrlStatus::More`] batches of outstanding buffers, then `Ok`); while one is in
//! progress no further request is taken.

use crate::config::{caps, FW_VERSION, MAX_POOLS, MAX_QUEUES, MIN_HDR_BUF};
use crate::datapath::{write_region_status, QueueInit, QueueState, ResetCursor, RingLoc, RxQueue};
use crate::hal::{Hal, HalParts, SharedMemory};
use crate::pools::{PoolError, Pools};
use crate::rss::{Toeplitz, MS_RSS_KEY};
use crate::stats::{dev, q, DeviceStats, DEV_COUNT, Q_COUNT};
use crate::Firmware;
use core::mem::size_of;
use core::ptr::NonNull;
use splitrx_shared::abi::{
    call, BufRef, CreateRxQueueArgs, CtrlCall, CtrlMsg, CtrlOp, CtrlStatus, HdsThreshArgs,
    HeaderError, OutstandingArgs, PoolArgs, PoolMode, QueueArgs, QueueHeader, QueueStatus,
    RegisterPoolArgs, RingKind, RssArgs, StatsArgs, StatsPage, VersionInfo, ABI_VERSION,
    OUTSTANDING_PER_MSG, STATS_PER_PAGE,
};
use splitrx_shared::ring::{Consumer, Producer, RingError, RING_ALIGN};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros};

/// Why [`Firmware::new`] refused the control region.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum InitError {
    /// The bus range is not inside a shared-memory window (or its length does not fit usize).
    Unmapped,
    /// The region is not 64-byte aligned or shorter than a QueueHeader.
    Misaligned,
    Header(HeaderError),
    /// `queue_id` is not `u16::MAX` (control) / the queue's id.
    WrongQueueId,
    /// The rings the region must describe are missing, duplicated or of a foreign kind.
    Rings,
    Ring(RingError),
}

/// A validated region: its pointer and the header copied out of it.
pub(crate) struct Region {
    pub base: NonNull<u8>,
    pub header: QueueHeader,
}

impl Region {
    /// The location of ring `i` of the header.
    pub(crate) fn ring(&self, i: usize) -> RingLoc {
        let r = &self.header.rings[i];
        // SAFETY: `validate` checked offset + ring_bytes <= region_size <= mapped length, so the
        // offset is inside the mapping.
        let base =
            unsafe { NonNull::new_unchecked(self.base.as_ptr().add(r.offset.get() as usize)) };
        RingLoc {
            base,
            capacity: r.capacity.get(),
        }
    }

    /// Finds exactly one ring of each kind in `want` (and nothing else); returns their slots.
    pub(crate) fn rings<const N: usize>(
        &self,
        want: [RingKind; N],
    ) -> Result<[usize; N], InitError> {
        let mut found = [usize::MAX; N];
        let n = self.header.ring_count.get() as usize;
        for (i, r) in self.header.rings[..n].iter().enumerate() {
            let kind = RingKind::from_u16(r.kind.get()).ok_or(InitError::Rings)?;
            if kind == RingKind::Unused {
                continue;
            }
            let k = want
                .iter()
                .position(|w| *w == kind)
                .ok_or(InitError::Rings)?;
            if found[k] != usize::MAX {
                return Err(InitError::Rings);
            }
            found[k] = i;
        }
        if found.contains(&usize::MAX) {
            return Err(InitError::Rings);
        }
        Ok(found)
    }
}

/// Translates, checks and copies out a region's header.
pub(crate) fn map_region<M: SharedMemory>(
    mem: &mut M,
    bus: u64,
    len: u64,
) -> Result<Region, InitError> {
    let len = usize::try_from(len).map_err(|_| InitError::Unmapped)?;
    if len < size_of::<QueueHeader>() {
        return Err(InitError::Misaligned);
    }
    let base = mem.translate(bus, len).ok_or(InitError::Unmapped)?;
    if !(base.as_ptr() as usize).is_multiple_of(RING_ALIGN) {
        return Err(InitError::Misaligned);
    }
    // SAFETY: `translate` promised `len >= size_of::<QueueHeader>()` readable bytes; a volatile
    // read copies the header out once (the peer may write it concurrently; any bit pattern is a
    // valid QueueHeader, and from here on only the copy is used).
    let raw: [u8; size_of::<QueueHeader>()] =
        unsafe { core::ptr::read_volatile(base.as_ptr().cast()) };
    let header = QueueHeader::read_from_bytes(&raw).map_err(|_| InitError::Misaligned)?;
    header.validate(len).map_err(InitError::Header)?;
    Ok(Region { base, header })
}

/// A request in progress that answers with several responses.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pending {
    seq: u32,
    op: CtrlOp,
    queue: u16,
    cursor: ResetCursor,
    total: u32,
}

/// The control rings and the request in progress.
#[derive(Debug)]
pub struct ControlPlane {
    region: NonNull<u8>,
    region_bus: (u64, u64),
    req: Consumer<CtrlMsg>,
    resp: Producer<CtrlMsg>,
    faulted: bool,
    pending: Option<Pending>,
}

impl ControlPlane {
    /// The control rings were found corrupt: the control plane stopped.
    pub fn is_faulted(&self) -> bool {
        self.faulted
    }
}

fn pool_status(e: PoolError) -> CtrlStatus {
    match e {
        PoolError::Invalid => CtrlStatus::Invalid,
        PoolError::Exists => CtrlStatus::Exists,
        PoolError::NoSpace => CtrlStatus::NoSpace,
        PoolError::NotFound => CtrlStatus::NotFound,
        PoolError::Busy => CtrlStatus::Busy,
    }
}

/// A handler's answer: a status and an optional response body.
pub(crate) enum Answer {
    Done(CtrlStatus, CtrlMsg),
    /// A multi-response request started (see [`Pending`]).
    Started,
}

impl<H: Hal> Firmware<H> {
    /// Brings the firmware up on the control region at `ctrl_bus` (`ctrl_len` bytes): its
    /// QueueHeader (queue id `u16::MAX`) must describe exactly one CtrlRequest and one
    /// CtrlResponse ring, which the host has initialised.
    pub fn new(mut hal: HalParts<H>, ctrl_bus: u64, ctrl_len: u64) -> Result<Self, InitError> {
        let ctrl = Self::attach_control(&mut hal, ctrl_bus, ctrl_len)?;
        Ok(Self::with_control(hal, ctrl))
    }

    /// Validates the control region and attaches its rings (the HAL stays the caller's, so a
    /// refusal can still be reported through shared memory).
    pub(crate) fn attach_control(
        hal: &mut HalParts<H>,
        ctrl_bus: u64,
        ctrl_len: u64,
    ) -> Result<ControlPlane, InitError> {
        let region = map_region(&mut hal.mem, ctrl_bus, ctrl_len)?;
        if region.header.queue_id.get() != u16::MAX {
            return Err(InitError::WrongQueueId);
        }
        let [rq, rs] = region.rings([RingKind::CtrlRequest, RingKind::CtrlResponse])?;
        let (lq, ls) = (region.ring(rq), region.ring(rs));
        // SAFETY: both rings lie inside the validated, mapped, 64-aligned region (ring offsets
        // are 64-aligned), which stays valid for the HAL's lifetime (SharedMemory contract);
        // the firmware creates exactly one handle per ring side.
        let req = unsafe { Consumer::attach(lq.base, lq.capacity) }.map_err(InitError::Ring)?;
        // SAFETY: as above.
        let resp = unsafe { Producer::attach(ls.base, ls.capacity) }.map_err(InitError::Ring)?;
        write_region_status(region.base, QueueStatus::Running, 0);
        fw_info!("splitrx firmware up, abi {}", ABI_VERSION);
        Ok(ControlPlane {
            region: region.base,
            region_bus: (ctrl_bus, ctrl_bus.saturating_add(ctrl_len)),
            req,
            resp,
            faulted: false,
            pending: None,
        })
    }

    /// The firmware over `hal` with an attached control plane.
    pub(crate) fn with_control(hal: HalParts<H>, ctrl: ControlPlane) -> Self {
        Firmware {
            hal,
            pools: Pools::new(),
            queues: [const { None }; MAX_QUEUES],
            active: heapless::Vec::new(),
            rss: Toeplitz::new(&MS_RSS_KEY),
            rss_queues: 0,
            ctrl,
            roce: crate::roce::Responder::new(),
            stats: DeviceStats::default(),
            mailbox: None,
            beats: 0,
            verify_icrc: true,
        }
    }

    /// The control plane state.
    pub fn control(&self) -> &ControlPlane {
        &self.ctrl
    }

    fn ctrl_fault(&mut self) {
        if !self.ctrl.faulted {
            self.ctrl.faulted = true;
            self.stats.inc(dev::CTRL_RING_FAULT);
            write_region_status(self.ctrl.region, QueueStatus::FaultRingCorrupt, 1);
            fw_error!("control rings corrupt: control plane stopped");
        }
    }

    /// Publishes one response (room was checked before).
    fn respond(&mut self, m: &CtrlMsg) {
        match CtrlStatus::from_u16(m.status.get()) {
            Some(CtrlStatus::Ok) => self.stats.inc(dev::CMD_OK),
            Some(CtrlStatus::More) => {}
            _ => self.stats.inc(dev::CMD_ERR),
        }
        match self.ctrl.resp.push(m) {
            Ok(true) => {}
            Ok(false) => {} // unreachable: `free() >= 1` was checked and we are the only producer
            Err(_) => self.ctrl_fault(),
        }
    }

    /// Room for at least one response?
    fn resp_room(&mut self) -> bool {
        match self.ctrl.resp.free() {
            Ok(n) => n > 0,
            Err(_) => {
                self.ctrl_fault();
                false
            }
        }
    }

    /// Processes control requests. Returns whether anything was done.
    pub fn poll_control(&mut self) -> bool {
        if self.ctrl.faulted {
            return false;
        }
        let mut work = false;
        if self.ctrl.pending.is_some() {
            work |= self.run_pending();
            if self.ctrl.pending.is_some() || self.ctrl.faulted {
                return work;
            }
        }
        for _ in 0..crate::config::CMD_BATCH {
            if !self.resp_room() {
                break;
            }
            let req = match self.ctrl.req.pop() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => {
                    self.ctrl_fault();
                    break;
                }
            };
            work = true;
            match self.handle(&req) {
                Answer::Done(st, body) => {
                    let mut m = body;
                    m.seq = req.seq;
                    m.opcode = req.opcode;
                    m.status = U16::new(st as u16);
                    if st != CtrlStatus::Ok {
                        fw_debug!(
                            "ctrl op {} seq {}: status {}",
                            req.opcode.get(),
                            req.seq.get(),
                            st as u16
                        );
                    }
                    self.respond(&m);
                }
                Answer::Started => {
                    self.run_pending();
                    if self.ctrl.pending.is_some() {
                        break;
                    }
                }
            }
            if self.ctrl.faulted {
                break;
            }
        }
        work
    }

    fn handle(&mut self, req: &CtrlMsg) -> Answer {
        let err = |s| Answer::Done(s, CtrlMsg::new_zeroed());
        let Some(op) = req.op() else {
            self.stats.inc(dev::CMD_UNKNOWN);
            return err(CtrlStatus::UnknownOp);
        };
        if req.status.get() != 0 {
            self.stats.inc(dev::CMD_INVALID);
            return err(CtrlStatus::Invalid);
        }
        // Each arm reads the body as its call's record (`CtrlCall`), so a handler cannot be
        // given another opcode's record.
        let r = match op {
            CtrlOp::GetVersion => self.with::<call::GetVersion>(req, |fw, _| fw.op_version()),
            CtrlOp::RegisterPool => self.with::<call::RegisterPool>(req, Self::op_register_pool),
            CtrlOp::UnregisterPool => {
                self.with::<call::UnregisterPool>(req, Self::op_unregister_pool)
            }
            CtrlOp::CreateRxQueue => self.with::<call::CreateRxQueue>(req, Self::op_create_queue),
            CtrlOp::DestroyRxQueue => self.with::<call::DestroyRxQueue>(req, |fw, a| {
                fw.op_start_report(req.seq.get(), a, CtrlOp::DestroyRxQueue)
            }),
            CtrlOp::ResetQueue => self.with::<call::ResetQueue>(req, |fw, a| {
                fw.op_start_report(req.seq.get(), a, CtrlOp::ResetQueue)
            }),
            CtrlOp::SetHdsThresh => self.with::<call::SetHdsThresh>(req, Self::op_hds_thresh),
            CtrlOp::ReadStats => self.with::<call::ReadStats>(req, Self::op_read_stats),
            CtrlOp::SetRss => self.with::<call::SetRss>(req, Self::op_set_rss),
            CtrlOp::RegisterMr => self.with::<call::RegisterMr>(req, Self::op_register_mr),
            CtrlOp::DeregisterMr => self.with::<call::DeregisterMr>(req, Self::op_deregister_mr),
            CtrlOp::CreateQp => self.with::<call::CreateQp>(req, Self::op_create_qp),
            CtrlOp::ModifyQp => self.with::<call::ModifyQp>(req, Self::op_modify_qp),
            CtrlOp::QueryQp => self.with::<call::QueryQp>(req, Self::op_query_qp),
            CtrlOp::DestroyQp => self.with::<call::DestroyQp>(req, Self::op_destroy_qp),
            CtrlOp::CreateSrq => self.with::<call::CreateSrq>(req, Self::op_create_srq),
            CtrlOp::DestroySrq => self.with::<call::DestroySrq>(req, Self::op_destroy_srq),
            CtrlOp::CmListen => self.with::<call::CmListen>(req, Self::op_cm_listen),
            CtrlOp::CmUnlisten => self.with::<call::CmUnlisten>(req, Self::op_cm_unlisten),
        };
        match r {
            Ok(a) => a,
            Err(s) => {
                if s == CtrlStatus::Invalid {
                    self.stats.inc(dev::CMD_INVALID);
                }
                err(s)
            }
        }
    }

    /// Reads `req`'s body as call `C`'s request record and runs the handler on it.
    fn with<C: CtrlCall>(
        &mut self,
        req: &CtrlMsg,
        handler: impl FnOnce(&mut Self, C::Args) -> Result<Answer, CtrlStatus>,
    ) -> Result<Answer, CtrlStatus> {
        let a = req.args_of::<C>().ok_or(CtrlStatus::Invalid)?;
        handler(self, a)
    }

    fn op_version(&mut self) -> Result<Answer, CtrlStatus> {
        let v = VersionInfo {
            abi_version: U32::new(ABI_VERSION),
            fw_version: U32::new(FW_VERSION),
            max_queues: U16::new(MAX_QUEUES as u16),
            max_pools: U16::new(MAX_POOLS as u16),
            caps: U32::new(caps::PACKED | caps::RSS | caps::ROCE),
        };
        Ok(reply::<call::GetVersion>(&v))
    }

    fn op_register_pool(&mut self, a: RegisterPoolArgs) -> Result<Answer, CtrlStatus> {
        self.pools.register(&a).map_err(pool_status)?;
        fw_info!(
            "pool {} registered: {} x {} bytes",
            a.pool,
            a.count.get(),
            a.buf_size.get()
        );
        Ok(ok())
    }

    fn op_unregister_pool(&mut self, a: PoolArgs) -> Result<Answer, CtrlStatus> {
        if a._pad != [0; 3] {
            return Err(CtrlStatus::Invalid);
        }
        self.pools.unregister(a.pool).map_err(pool_status)?;
        Ok(ok())
    }

    fn op_create_queue(&mut self, a: CreateRxQueueArgs) -> Result<Answer, CtrlStatus> {
        let id = a.queue.get();
        if id as usize >= MAX_QUEUES {
            return Err(CtrlStatus::Invalid);
        }
        if self.queues[id as usize].is_some() {
            return Err(CtrlStatus::Exists);
        }
        if a.hdr_pool == a.pay_pool {
            return Err(CtrlStatus::Invalid);
        }
        let hs = self.pools.find(a.hdr_pool).ok_or(CtrlStatus::NotFound)?;
        let ps = self.pools.find(a.pay_pool).ok_or(CtrlStatus::NotFound)?;
        let (hp, pp) = (
            self.pools.get(hs).ok_or(CtrlStatus::NotFound)?,
            self.pools.get(ps).ok_or(CtrlStatus::NotFound)?,
        );
        if hp.mode != PoolMode::Page || hp.buf_size < MIN_HDR_BUF {
            return Err(CtrlStatus::Invalid);
        }
        if hp.bound != 0 || pp.bound != 0 {
            return Err(CtrlStatus::Busy);
        }
        let (rb, rl) = (a.region_bus_addr.get(), a.region_len.get());
        // A region must not overlap the control region or another queue's region: the
        // firmware keeps one handle per ring, so rings must not alias.
        let span = (rb, rb.checked_add(rl).ok_or(CtrlStatus::BadRegion)?);
        if self.region_in_use(span) {
            return Err(CtrlStatus::BadRegion);
        }
        let region = map_region(&mut self.hal.mem, rb, rl).map_err(|_| CtrlStatus::BadRegion)?;
        if region.header.queue_id.get() != id {
            return Err(CtrlStatus::BadRegion);
        }
        let [h, p, c] = region
            .rings([
                RingKind::HeaderFill,
                RingKind::PayloadFill,
                RingKind::RxCompletion,
            ])
            .map_err(|_| CtrlStatus::BadRegion)?;
        let locs = [region.ring(h), region.ring(p), region.ring(c)];
        // SAFETY: each ring lies inside the validated, mapped, 64-aligned region, which stays
        // valid while the HAL lives (SharedMemory contract); the queue id is new, so no other
        // handle to these rings exists in the firmware. (The same holds for the next two.)
        let hdr_fill = unsafe { Consumer::attach(locs[0].base, locs[0].capacity) }
            .map_err(|_| CtrlStatus::BadRegion)?;
        // SAFETY: as above.
        let pay_fill = unsafe { Consumer::attach(locs[1].base, locs[1].capacity) }
            .map_err(|_| CtrlStatus::BadRegion)?;
        // SAFETY: as above.
        let cq = unsafe { Producer::attach(locs[2].base, locs[2].capacity) }
            .map_err(|_| CtrlStatus::BadRegion)?;
        let init = QueueInit {
            id,
            region: region.base,
            region_bus: span,
            locs,
            hdr_fill,
            pay_fill,
            cq,
            hdr_pool: hs,
            pay_pool: ps,
            hds_thresh: a.hds_thresh.get(),
        };
        let q = RxQueue::new(init, &self.pools).ok_or(CtrlStatus::NotFound)?;
        for s in [hs, ps] {
            if let Some(p) = self.pools.get_mut(s) {
                p.bound += 1;
            }
        }
        self.queues[id as usize] = Some(q);
        let pos = self
            .active
            .iter()
            .position(|&x| x > id)
            .unwrap_or(self.active.len());
        let _ = self.active.insert(pos, id);
        write_region_status(region.base, QueueStatus::Running, 0);
        fw_info!("rx queue {} created", id);
        Ok(ok())
    }

    /// Whether `span` overlaps the control region or any queue, QP or SRQ region: the
    /// firmware keeps one handle per ring, so rings must not alias.
    pub(crate) fn region_in_use(&self, span: (u64, u64)) -> bool {
        let overlaps = |o: (u64, u64)| span.0 < o.1 && o.0 < span.1;
        overlaps(self.ctrl.region_bus)
            || self.queues.iter().flatten().any(|q| overlaps(q.region_bus))
            || self.roce.overlaps(span)
    }

    fn op_start_report(
        &mut self,
        seq: u32,
        a: QueueArgs,
        op: CtrlOp,
    ) -> Result<Answer, CtrlStatus> {
        if a._pad.get() != 0 {
            return Err(CtrlStatus::Invalid);
        }
        let id = a.queue.get();
        let q = self
            .queues
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .ok_or(CtrlStatus::NotFound)?;
        q.state = QueueState::Resetting;
        write_region_status(q.region, QueueStatus::Resetting, 0);
        self.ctrl.pending = Some(Pending {
            seq,
            op,
            queue: id,
            cursor: ResetCursor::default(),
            total: 0,
        });
        Ok(Answer::Started)
    }

    /// Emits outstanding-buffer batches while the response ring has room; finishes the reset or
    /// destroy after the last one.
    fn run_pending(&mut self) -> bool {
        let Some(mut p) = self.ctrl.pending.take() else {
            return false;
        };
        let mut work = false;
        loop {
            if !self.resp_room() {
                if !self.ctrl.faulted {
                    self.ctrl.pending = Some(p);
                }
                return work;
            }
            work = true;
            let mut batch: heapless::Vec<BufRef, OUTSTANDING_PER_MSG> = heapless::Vec::new();
            let done = match self
                .queues
                .get_mut(p.queue as usize)
                .and_then(Option::as_mut)
            {
                Some(q) => q.report_outstanding(&mut self.pools, &mut p.cursor, &mut batch),
                None => true,
            };
            p.total += batch.len() as u32;
            let mut args = OutstandingArgs {
                queue: U16::new(p.queue),
                count: batch.len() as u8,
                _pad: 0,
                total: U32::new(p.total),
                bufs: [BufRef::NONE; OUTSTANDING_PER_MSG],
            };
            args.bufs[..batch.len()].copy_from_slice(&batch);
            let status = if done {
                CtrlStatus::Ok
            } else {
                CtrlStatus::More
            };
            let m = match p.op {
                CtrlOp::DestroyRxQueue => {
                    CtrlMsg::response::<call::DestroyRxQueue>(p.seq, status, &args)
                }
                _ => CtrlMsg::response::<call::ResetQueue>(p.seq, status, &args),
            };
            if done {
                self.finish_pending(&p);
            }
            self.respond(&m);
            if done || self.ctrl.faulted {
                return work;
            }
        }
    }

    /// After the last report batch: restart (reset) or remove (destroy) the queue. Done before
    /// the final `Ok` is published, so the host sees the new state when it reads the `Ok`.
    fn finish_pending(&mut self, p: &Pending) {
        let id = p.queue as usize;
        let Some(q) = self.queues.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        q.stats.add(q::REPORTED, p.total as u64);
        match p.op {
            CtrlOp::DestroyRxQueue => {
                for s in [q.hdr_pool, q.pay_pool] {
                    if let Some(pool) = self.pools.get_mut(s) {
                        pool.posted.clear_all();
                        pool.bound = pool.bound.saturating_sub(1);
                    }
                }
                write_region_status(q.region, QueueStatus::Stopped, 0);
                self.queues[id] = None;
                self.active.retain(|&x| x != p.queue);
                fw_info!(
                    "rx queue {} destroyed, {} buffers returned",
                    p.queue,
                    p.total
                );
            }
            _ => {
                q.finish_reset(&mut self.pools);
                fw_info!("rx queue {} reset, {} buffers returned", p.queue, p.total);
            }
        }
    }

    fn op_hds_thresh(&mut self, a: HdsThreshArgs) -> Result<Answer, CtrlStatus> {
        if a._pad.get() != 0 {
            return Err(CtrlStatus::Invalid);
        }
        let q = self
            .queues
            .get_mut(a.queue.get() as usize)
            .and_then(Option::as_mut)
            .ok_or(CtrlStatus::NotFound)?;
        q.hds_thresh = a.hds_thresh.get();
        Ok(ok())
    }

    fn op_read_stats(&mut self, a: StatsArgs) -> Result<Answer, CtrlStatus> {
        let (queue, page) = (a.queue.get(), a.page.get() as usize);
        let values: &[u64] = if queue == u16::MAX {
            &self.stats.0[..DEV_COUNT]
        } else {
            let q = self
                .queues
                .get(queue as usize)
                .and_then(Option::as_ref)
                .ok_or(CtrlStatus::NotFound)?;
            &q.stats.0[..Q_COUNT]
        };
        let first = page * STATS_PER_PAGE;
        if first >= values.len() {
            return Err(CtrlStatus::Invalid);
        }
        let n = (values.len() - first).min(STATS_PER_PAGE);
        let mut sp = StatsPage {
            queue: U16::new(queue),
            first: U16::new(first as u16),
            count: U16::new(n as u16),
            total: U16::new(values.len() as u16),
            values: [U64::new(0); STATS_PER_PAGE],
        };
        for (d, s) in sp.values.iter_mut().zip(&values[first..first + n]) {
            *d = U64::new(*s);
        }
        Ok(reply::<call::ReadStats>(&sp))
    }

    fn op_set_rss(&mut self, a: RssArgs) -> Result<Answer, CtrlStatus> {
        if a._pad.get() != 0 || a.queues.get() as usize > MAX_QUEUES {
            return Err(CtrlStatus::Invalid);
        }
        self.rss = Toeplitz::new(&a.key);
        self.rss_queues = a.queues.get();
        Ok(ok())
    }
}

pub(crate) fn ok() -> Answer {
    Answer::Done(CtrlStatus::Ok, CtrlMsg::new_zeroed())
}

/// An `Ok` answer with call `C`'s response body (seq and opcode are filled in by the caller).
pub(crate) fn reply<C: CtrlCall>(body: &C::Resp) -> Answer {
    Answer::Done(
        CtrlStatus::Ok,
        CtrlMsg::response::<C>(0, CtrlStatus::Ok, body),
    )
}
