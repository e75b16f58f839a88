//! The RX datapath: per-queue state and placing one frame.
//!
//! For each frame: the split decision (run once by the caller, with `hds_thresh = 0`; the
//! queue applies its own threshold), then **decide everything before writing anything**:
//! completion-ring slots, a header buffer and, if split, a payload buffer must all be
//! available, else the frame is dropped at the MAC with a per-reason counter and nothing
//! changes. Only then the DMA engine writes the header part to the header buffer and the
//! payload to the payload buffer, and after the DMA has landed the completion is published.
//!
//! Packed mode (one large payload buffer holds several payloads at `align`):
//! - a payload of `len` bytes goes to the current buffer at `off = used` if
//!   `off + len <= buf_size`; otherwise a fresh buffer is taken from the payload fill ring and
//!   the payload goes to offset 0 of it, and the old buffer (if any) is retired by a completion
//!   with flags `FLUSH | PAY_RETIRED`, `hdr_buf = NONE`, `pay_buf = old`, `pay_off = used`,
//!   `pay_len = 0`, published immediately before the frame's completion;
//! - after placing, `used = align_up(off + len, align)`; if `buf_size - used <= hds_thresh`
//!   (no payload that is split could fit any more) the frame's completion carries
//!   `PAY_RETIRED` and the buffer stops being current;
//! - a reset or destroy reports the current buffer among the outstanding buffers (for the
//!   host: retired).
//!
//! Page mode: every split completion carries `PAY_RETIRED`.

use crate::config::{FILL_BATCH, FILL_CACHE};
use crate::hal::{Dma, DmaError, DmaSegment};
use crate::pools::{HeldBuf, Pool, Pools};
use crate::stats::{class_counter, q, reason_counter, QueueStats};
use core::mem::offset_of;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};
use heapless::Deque;
use splitrx_shared::abi::{
    rx_flags, BufRef, FillDesc, PoolMode, QueueHeader, QueueStatus, RxCompletion,
};
use splitrx_shared::csum::{self, CsumVerdict};
use splitrx_shared::ring::{Consumer, CorruptKind, Producer, RingError};
use splitrx_shared::split::{FrameClass, NoSplitReason, RoceInfo, SplitResult};
use zerocopy::little_endian::{U16, U32, U64};

/// Lifecycle of an RX queue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum QueueState {
    Running,
    /// A ring of the queue was found corrupt; the queue is stopped until ResetQueue.
    Fault,
    /// A ResetQueue or DestroyRxQueue is reporting outstanding buffers.
    Resetting,
}

/// Which of the queue's rings (for fault codes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u32)]
pub enum QueueRing {
    HeaderFill = 1,
    PayloadFill = 2,
    Completion = 3,
}

/// `QueueHeader::nic_fault` code: `ring << 8 | kind` ([`QueueRing`], [`CorruptKind`] + 1).
pub const fn fault_code(ring: QueueRing, kind: CorruptKind) -> u32 {
    let k = match kind {
        CorruptKind::ProducerAhead => 1,
        CorruptKind::ProducerBackwards => 2,
        CorruptKind::ConsumerAhead => 3,
        CorruptKind::ConsumerBackwards => 4,
    };
    ((ring as u32) << 8) | k
}

/// Writes the NIC status words of a region's [`splitrx_shared::abi::QueueHeader`].
pub(crate) fn write_region_status(region: NonNull<u8>, status: QueueStatus, fault: u32) {
    const STATUS: usize = offset_of!(QueueHeader, nic_status);
    const FAULT: usize = offset_of!(QueueHeader, nic_fault);
    const _: () = assert!(STATUS.is_multiple_of(4) && FAULT.is_multiple_of(4));
    // SAFETY: `region` came from `SharedMemory::translate` for at least a QueueHeader and is
    // RING_ALIGN-aligned (checked when the region was mapped), so the two fields are 4-byte
    // aligned u32 words inside it (asserted above); the peer only reads them, and we access
    // them atomically because the peer reads concurrently.
    unsafe {
        let p = region.as_ptr();
        AtomicU32::from_ptr(p.add(FAULT).cast::<u32>()).store(fault, Ordering::Relaxed);
        AtomicU32::from_ptr(p.add(STATUS).cast::<u32>()).store(status as u32, Ordering::Release);
    }
}

/// Where one of the queue's rings lives (for re-attaching after a reset).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RingLoc {
    pub base: NonNull<u8>,
    pub capacity: u32,
}

/// The current packed-mode payload buffer.
#[derive(Clone, Copy, Debug)]
pub struct PackedCur {
    pub buf: HeldBuf,
    /// Next aligned free offset.
    pub used: u32,
}

/// One RX queue.
#[derive(Debug)]
pub struct RxQueue {
    pub id: u16,
    pub state: QueueState,
    pub(crate) region: NonNull<u8>,
    /// Bus range `[start, end)` of the queue's shared region.
    pub(crate) region_bus: (u64, u64),
    pub(crate) locs: [RingLoc; 3],
    pub hdr_pool: usize,
    pub pay_pool: usize,
    /// Usable header-buffer bytes (`min(buf_size, u16::MAX)`).
    hdr_cap: u32,
    pay_size: u32,
    pay_mode: PoolMode,
    pay_align: u32,
    pub hds_thresh: u32,
    pub(crate) hdr_fill: Consumer<FillDesc>,
    pub(crate) pay_fill: Consumer<FillDesc>,
    pub(crate) cq: Producer<RxCompletion>,
    pub(crate) hdr_cache: Deque<HeldBuf, FILL_CACHE>,
    pub(crate) pay_cache: Deque<HeldBuf, FILL_CACHE>,
    pub(crate) packed: Option<PackedCur>,
    /// Checksum offload: verify every placed frame's checksums (`splitrx_shared::csum`) and
    /// report `CSUM_OK`/`CSUM_BAD` and `csum_complete`. On by default; off only to measure
    /// its cost ([`crate::Firmware::set_csum_offload`]), then every frame counts `csum_none`.
    pub csum_offload: bool,
    pub stats: QueueStats,
}

/// Everything needed to build a queue (from a validated CreateRxQueue).
pub(crate) struct QueueInit {
    pub id: u16,
    pub region: NonNull<u8>,
    pub region_bus: (u64, u64),
    pub locs: [RingLoc; 3],
    pub hdr_fill: Consumer<FillDesc>,
    pub pay_fill: Consumer<FillDesc>,
    pub cq: Producer<RxCompletion>,
    pub hdr_pool: usize,
    pub pay_pool: usize,
    pub hds_thresh: u32,
}

#[inline(always)]
fn align_up(v: u64, align: u32) -> u64 {
    let a = align as u64;
    v.div_ceil(a) * a
}

/// Moves up to [`FILL_BATCH`] descriptors from a fill ring into a cache (one peek/release),
/// validating each against `pool`.
#[inline(never)]
fn refill(
    ring: &mut Consumer<FillDesc>,
    cache: &mut Deque<HeldBuf, FILL_CACHE>,
    pool: &mut Pool,
    st: &mut QueueStats,
) -> Result<(), RingError> {
    let room = (FILL_CACHE - cache.len()) as u32;
    if room == 0 {
        return Ok(());
    }
    let mut batch = [FillDesc::default(); FILL_BATCH as usize];
    let take = (room.min(FILL_BATCH)) as usize;
    let n = ring.pop_into(&mut batch[..take])?;
    for d in &batch[..n] {
        match pool.accept(d) {
            Ok(h) => {
                // Cannot fail: at most `room` entries are taken.
                let _ = cache.push_back(h);
                st.inc(q::DESC_OK);
            }
            Err(e) => st.inc(e.counter()),
        }
    }
    Ok(())
}

impl RxQueue {
    pub(crate) fn new(init: QueueInit, pools: &Pools) -> Option<RxQueue> {
        let hp = pools.get(init.hdr_pool)?;
        let pp = pools.get(init.pay_pool)?;
        Some(RxQueue {
            id: init.id,
            state: QueueState::Running,
            region: init.region,
            region_bus: init.region_bus,
            locs: init.locs,
            hdr_pool: init.hdr_pool,
            pay_pool: init.pay_pool,
            hdr_cap: hp.buf_size.min(u16::MAX as u32),
            pay_size: pp.buf_size,
            pay_mode: pp.mode,
            pay_align: pp.align,
            hds_thresh: init.hds_thresh,
            hdr_fill: init.hdr_fill,
            pay_fill: init.pay_fill,
            cq: init.cq,
            hdr_cache: Deque::new(),
            pay_cache: Deque::new(),
            packed: None,
            csum_offload: true,
            stats: QueueStats::default(),
        })
    }

    /// Stops the queue after a ring reported corruption.
    fn fault(&mut self, ring: QueueRing, e: RingError) {
        let kind = match e {
            RingError::Corrupt(c) => c.kind,
            RingError::BadLayout => CorruptKind::ProducerAhead,
        };
        self.state = QueueState::Fault;
        self.stats.inc(q::RING_FAULTS);
        write_region_status(
            self.region,
            QueueStatus::FaultRingCorrupt,
            fault_code(ring, kind),
        );
        fw_warn!(
            "rx queue {}: ring {} corrupt, queue stopped",
            self.id,
            ring as u32
        );
    }

    /// The current packed-mode payload buffer, if any.
    pub fn packed_current(&self) -> Option<PackedCur> {
        self.packed
    }

    /// Buffers the queue holds right now (caches + packed current).
    pub fn held(&self) -> usize {
        self.hdr_cache.len() + self.pay_cache.len() + self.packed.is_some() as usize
    }

    /// Places one frame (see the module docs). `r` is the split decision taken with
    /// `hds_thresh = 0`; `hash` the flow hash; `ts` the MAC's receive timestamp (ns).
    #[inline]
    pub(crate) fn receive<D: Dma>(
        &mut self,
        pools: &mut Pools,
        dma: &mut D,
        frame: &[u8],
        r: &SplitResult,
        hash: u32,
        ts: u64,
    ) {
        if self.state != QueueState::Running {
            self.stats.inc(q::DROP_QUEUE_FAULT);
            return;
        }
        let flen = frame.len();

        // 1. Where do the bytes go?
        let mut reason = r.reason;
        let mut split = false;
        let (mut po, mut pl) = (0usize, 0usize);
        if r.split {
            match (r.payload_offset, r.payload_len) {
                (Some(o), Some(l)) if (o as usize).saturating_add(l as usize) <= flen => {
                    if l <= self.hds_thresh {
                        reason = NoSplitReason::BelowThresh;
                    } else {
                        split = true;
                        (po, pl) = (o as usize, l as usize);
                    }
                }
                // The split decision promised bytes the frame does not have: never follow it.
                _ => reason = NoSplitReason::Malformed,
            }
        }
        let (hdr_len, truncated) = if split {
            if po > self.hdr_cap as usize {
                self.stats.inc(q::DROP_HDR_OVERFLOW);
                return;
            }
            if pl > self.pay_size as usize {
                self.stats.inc(q::DROP_PAY_OVERFLOW);
                return;
            }
            (po, false)
        } else {
            let cap = self.hdr_cap as usize;
            (flen.min(cap), flen > cap)
        };

        // 2. Packed mode: current buffer, or a fresh one (and a FLUSH of the old one)?
        let packed = split && self.pay_mode == PoolMode::Packed;
        let mut fresh_pay = split && !packed;
        let mut flush_old = false;
        if packed {
            match &self.packed {
                Some(c) if c.used as u64 + pl as u64 <= self.pay_size as u64 => {}
                Some(_) => (fresh_pay, flush_old) = (true, true),
                None => fresh_pay = true,
            }
        }
        let need = 1 + flush_old as u32;

        // 3. Reserve: completion slots (nothing is visible until `commit`), header buffer,
        // payload buffer.
        let mut chunk = match self.cq.reserve(need) {
            Ok(c) if c.len() >= need => c,
            Ok(_) => {
                self.stats.inc(q::DROP_CQ_FULL);
                return;
            }
            Err(e) => {
                self.fault(QueueRing::Completion, e);
                self.stats.inc(q::DROP_QUEUE_FAULT);
                return;
            }
        };
        if self.hdr_cache.is_empty() {
            let Some(pool) = pools.get_mut(self.hdr_pool) else {
                return;
            };
            if let Err(e) = refill(
                &mut self.hdr_fill,
                &mut self.hdr_cache,
                pool,
                &mut self.stats,
            ) {
                self.fault(QueueRing::HeaderFill, e);
                self.stats.inc(q::DROP_QUEUE_FAULT);
                return;
            }
        }
        let Some(&hdr) = self.hdr_cache.front() else {
            self.stats.inc(q::DROP_NO_HDR_BUF);
            return;
        };
        let mut pay: Option<(HeldBuf, u32)> = None;
        if fresh_pay {
            if self.pay_cache.is_empty() {
                let Some(pool) = pools.get_mut(self.pay_pool) else {
                    return;
                };
                if let Err(e) = refill(
                    &mut self.pay_fill,
                    &mut self.pay_cache,
                    pool,
                    &mut self.stats,
                ) {
                    self.fault(QueueRing::PayloadFill, e);
                    self.stats.inc(q::DROP_QUEUE_FAULT);
                    return;
                }
            }
            match self.pay_cache.front() {
                Some(&b) => pay = Some((b, 0)),
                None => {
                    self.stats.inc(q::DROP_NO_PAY_BUF);
                    return;
                }
            }
        } else if let (true, Some(c)) = (packed, &self.packed) {
            pay = Some((c.buf, c.used));
        }

        // 4. DMA: header part to the header buffer, payload to the payload buffer.
        let hseg = DmaSegment {
            bus_addr: hdr.bus_addr,
            data: &frame[..hdr_len],
        };
        let res = match pay {
            Some((p, off)) => {
                let pseg = DmaSegment {
                    bus_addr: p.bus_addr + off as u64,
                    data: &frame[po..po + pl],
                };
                dma_write(dma, &[hseg, pseg])
            }
            None => dma_write(dma, &[hseg]),
        };
        if res.is_err() {
            self.stats.inc(q::DROP_DMA_ERROR);
            return;
        }

        // 5. Commit: take the buffers, write the completion(s), publish.
        self.hdr_cache.pop_front();
        if fresh_pay {
            self.pay_cache.pop_front();
        }
        let mut flags = 0u16;
        let mut pay_ref = BufRef::NONE;
        let mut pay_off = 0u32;
        let mut retired: Option<BufRef> = None;
        let mut flush: Option<RxCompletion> = None;
        if let Some((p, off)) = pay {
            flags |= rx_flags::SPLIT;
            pay_ref = p.buf;
            pay_off = off;
            if packed {
                if flush_old {
                    if let Some(old) = self.packed.take() {
                        flush = Some(RxCompletion {
                            hdr_buf: BufRef::NONE,
                            pay_buf: old.buf.buf,
                            pay_off: U32::new(old.used),
                            flags: U16::new(rx_flags::FLUSH | rx_flags::PAY_RETIRED),
                            queue: U16::new(self.id),
                            ..RxCompletion::default()
                        });
                    }
                }
                let used = align_up(off as u64 + pl as u64, self.pay_align);
                let remaining = (self.pay_size as u64).saturating_sub(used);
                if remaining <= self.hds_thresh as u64 {
                    flags |= rx_flags::PAY_RETIRED;
                    retired = Some(p.buf);
                    self.packed = None;
                } else {
                    self.packed = Some(PackedCur {
                        buf: p,
                        used: used as u32,
                    });
                }
            } else {
                flags |= rx_flags::PAY_RETIRED;
                retired = Some(p.buf);
            }
        }
        if truncated {
            flags |= rx_flags::HDR_TRUNCATED;
        }
        if r.class == FrameClass::Malformed || reason == NoSplitReason::Malformed {
            flags |= rx_flags::ERROR;
        }
        if r.tunnel.is_some() {
            flags |= rx_flags::TUNNEL;
        }
        match r.roce {
            Some(RoceInfo {
                icrc_ok: Some(true),
                ..
            }) => flags |= rx_flags::ICRC_OK,
            Some(RoceInfo {
                icrc_ok: Some(false),
                ..
            }) => {
                flags |= rx_flags::ICRC_BAD;
                self.stats.inc(q::ICRC_BAD);
            }
            _ => {}
        }
        // Checksums last: only frames that are placed pay for them.
        let cs = if self.csum_offload {
            let cs = csum::verify(frame, r);
            let (flag, counter) = match cs.verdict() {
                CsumVerdict::Ok => (rx_flags::CSUM_OK, q::CSUM_OK),
                CsumVerdict::Bad => (rx_flags::CSUM_BAD, q::CSUM_BAD),
                CsumVerdict::None => (0, q::CSUM_NONE),
            };
            flags |= flag;
            self.stats.inc(counter);
            cs.complete
        } else {
            self.stats.inc(q::CSUM_NONE);
            0
        };
        let c = RxCompletion {
            hdr_buf: hdr.buf,
            pay_buf: pay_ref,
            pay_off: U32::new(pay_off),
            pay_len: U32::new(pl as u32),
            hdr_len: U16::new(hdr_len as u16),
            flags: U16::new(flags),
            class: r.class as u8,
            reason: if split {
                NoSplitReason::Split as u8
            } else {
                reason as u8
            },
            queue: U16::new(self.id),
            flow_hash: U32::new(hash),
            frame_len: U32::new(flen as u32),
            rx_timestamp_ns: U64::new(ts),
            csum_complete: U16::new(cs),
            _reserved: [0; 6],
        };
        // The rule the host applies (shared): a completion that breaks it is a firmware defect,
        // counted; it is still published so the host takes its buffers back (quarantine).
        if c.validate(self.id).is_err() {
            self.stats.inc(q::COMPLETION_INVALID);
        }
        let mut i = 0;
        if let Some(f) = &flush {
            chunk.write(0, f);
            i = 1;
        }
        chunk.write(i, &c);
        chunk.commit(need);

        // 6. The host owns what the completions named.
        if let Some(pool) = pools.get_mut(self.hdr_pool) {
            pool.release(hdr.buf);
        }
        if let Some(pool) = pools.get_mut(self.pay_pool) {
            if let Some(f) = &flush {
                pool.release(f.pay_buf);
                self.stats.inc(q::PACKED_FLUSH);
                self.stats.inc(q::PACKED_RETIRED);
            }
            if let Some(b) = retired {
                pool.release(b);
                if packed {
                    self.stats.inc(q::PACKED_RETIRED);
                }
            }
        }
        let st = &mut self.stats;
        st.inc(q::RX_FRAMES);
        st.add(q::RX_BYTES, flen as u64);
        st.inc(if split { q::SPLIT } else { q::NOT_SPLIT });
        st.inc(class_counter(r.class));
        if !split {
            if let Some(i) = reason_counter(reason) {
                st.inc(i);
            }
        }
        if truncated {
            st.inc(q::HDR_TRUNCATED);
        }
    }

    /// Moves up to `out.capacity() - out.len()` held buffers into `out` for a reset report,
    /// in the order: header cache, payload cache, packed current buffer, then validated
    /// entries drained from the header and payload fill rings (at most one ring capacity
    /// each). Bits stay set in the pools until [`RxQueue::finish_reset`]. Returns `true` when
    /// everything has been reported.
    pub(crate) fn report_outstanding<const N: usize>(
        &mut self,
        pools: &mut Pools,
        cursor: &mut ResetCursor,
        out: &mut heapless::Vec<BufRef, N>,
    ) -> bool {
        while !out.is_full() {
            match cursor.stage {
                0 => match self.hdr_cache.pop_front() {
                    Some(b) => {
                        let _ = out.push(b.buf);
                    }
                    None => cursor.stage = 1,
                },
                1 => match self.pay_cache.pop_front() {
                    Some(b) => {
                        let _ = out.push(b.buf);
                    }
                    None => cursor.stage = 2,
                },
                2 => {
                    if let Some(c) = self.packed.take() {
                        let _ = out.push(c.buf.buf);
                    }
                    cursor.stage = 3;
                    cursor.drained = 0;
                }
                3 | 4 => {
                    let hdr = cursor.stage == 3;
                    let (ring, slot, loc) = if hdr {
                        (&mut self.hdr_fill, self.hdr_pool, self.locs[0])
                    } else {
                        (&mut self.pay_fill, self.pay_pool, self.locs[1])
                    };
                    let room = (N - out.len()) as u32;
                    let left = loc.capacity.saturating_sub(cursor.drained);
                    let take = room.min(left);
                    let next = |c: &mut ResetCursor| {
                        c.stage += 1;
                        c.drained = 0;
                    };
                    if take == 0 || ring.is_stopped() {
                        next(cursor);
                        continue;
                    }
                    let Some(pool) = pools.get_mut(slot) else {
                        next(cursor);
                        continue;
                    };
                    let chunk = match ring.peek(take) {
                        Ok(c) => c,
                        Err(_) => {
                            self.stats.inc(q::RING_FAULTS);
                            next(cursor);
                            continue;
                        }
                    };
                    let n = chunk.len();
                    if n == 0 {
                        next(cursor);
                        continue;
                    }
                    for i in 0..n {
                        if let Some(d) = chunk.get(i) {
                            match pool.accept(&d) {
                                Ok(h) => {
                                    self.stats.inc(q::DESC_OK);
                                    let _ = out.push(h.buf);
                                }
                                Err(e) => self.stats.inc(e.counter()),
                            }
                        }
                    }
                    chunk.release(n);
                    cursor.drained += n;
                }
                _ => return true,
            }
        }
        cursor.stage >= 5
    }

    /// Ends a reset: every bit of the queue's pools is cleared (pools are bound to one queue),
    /// rings that were stopped by a fault are re-attached (the host re-initialised them before
    /// sending ResetQueue), and the queue runs again.
    pub(crate) fn finish_reset(&mut self, pools: &mut Pools) {
        for slot in [self.hdr_pool, self.pay_pool] {
            if let Some(p) = pools.get_mut(slot) {
                p.posted.clear_all();
            }
        }
        self.hdr_cache.clear();
        self.pay_cache.clear();
        self.packed = None;
        let mut ok = true;
        // The three re-attaches below rely on the same facts: the locations were validated
        // against the region when the queue was created, the region stays mapped while the
        // queue exists (SharedMemory contract), and the old handle for the ring is replaced
        // (dropped) by the new one, so at most one handle per side exists.
        if self.hdr_fill.is_stopped() {
            // SAFETY: see above (header fill ring, `locs[0]`).
            match unsafe { Consumer::attach(self.locs[0].base, self.locs[0].capacity) } {
                Ok(h) => self.hdr_fill = h,
                Err(_) => ok = false,
            }
        }
        if self.pay_fill.is_stopped() {
            // SAFETY: see above (payload fill ring, `locs[1]`).
            match unsafe { Consumer::attach(self.locs[1].base, self.locs[1].capacity) } {
                Ok(h) => self.pay_fill = h,
                Err(_) => ok = false,
            }
        }
        if self.cq.is_stopped() {
            // SAFETY: see above (completion ring, `locs[2]`).
            match unsafe { Producer::attach(self.locs[2].base, self.locs[2].capacity) } {
                Ok(h) => self.cq = h,
                Err(_) => ok = false,
            }
        }
        self.stats.inc(q::RESETS);
        if ok {
            self.state = QueueState::Running;
            write_region_status(self.region, QueueStatus::Running, 0);
        } else {
            // A faulted ring the host did not repair: the queue stays stopped.
            self.state = QueueState::Fault;
            write_region_status(self.region, QueueStatus::FaultRingCorrupt, 0);
        }
    }
}

/// Progress of a reset report.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResetCursor {
    pub stage: u8,
    pub drained: u32,
}

/// Writes `segs` and waits for them to land: one submission when the engine takes that many
/// segments, else one per segment.
#[inline(always)]
pub(crate) fn dma_write<D: Dma>(dma: &mut D, segs: &[DmaSegment<'_>]) -> Result<(), DmaError> {
    if segs.len() <= D::MAX_SEGMENTS {
        let t = dma.write(segs)?;
        dma.wait(t)
    } else {
        for s in segs {
            let t = dma.write(core::slice::from_ref(s))?;
            dma.wait(t)?;
        }
        Ok(())
    }
}
