//! Host RX queues: the poller side of one NIC RX queue.
//!
//! One [`RxQueue`] owns the host ends of a queue's three rings (header fill and payload fill:
//! producer; completion ring: consumer) and the queue's two page pools (header buffers in host
//! memory, payload buffers in device memory). Its poller loop (kernel: the NAPI poll of a
//! page_pool driver; io_uring zcrx: the refill ring + CQ):
//!
//! 1. **refill**: posts free buffers from each pool to its fill ring in batches
//!    ([`PagePool::fill`] straight into a reserved ring chunk, one publish per batch);
//! 2. **poll**: takes completions in batches, validates each against the ledger — never trusting
//!    the device: queue id, flag bits, lengths, and both buffers with [`PagePool::check`] before
//!    either is committed — and hands the frame to the application as an [`Rx`] with a header
//!    token and (split frames) a payload token. A completion that fails validation changes
//!    nothing, bumps a counter and keeps its first error for the report; it never panics.
//! 3. the application returns tokens by dropping them (any thread); the buffers come back to
//!    the pools' recycle rings and are posted again by step 1.
//!
//! [`spawn_poller`] runs the loop on its own thread (one poller per queue) with a [`Sink`] for
//! the frames, and takes [`Cmd`]s: reset the queue mid-traffic (stop posting, ResetQueue,
//! drain the completion ring, reconcile the pools against the NIC's report), drain, finish.

use crate::ctrl::{CtrlClient, CtrlError, Deadline};
use crate::ledger::{Filled, LedgerError};
use crate::pool::{PagePool, ReconcileReport};
use crate::token::Rx;
use splitrx_shared::abi::{rx_flags, BufRef, CompletionFault, FillDesc, PoolMode, RxCompletion};
use splitrx_shared::abi::{QueueHeader, QueueStatus, RingKind};
use splitrx_shared::region::{LayoutError, RegionLayout};
use splitrx_shared::ring::{self, Consumer, Producer, RingError};
use std::mem::offset_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Completions taken per poll.
pub const POLL_BATCH: usize = 64;
/// Fill descriptors posted per batch; a ring is refilled once this many slots are free.
pub const FILL_BATCH: u32 = 64;

crate::counters! {
/// Counters of one queue, named like a NIC driver's `ethtool -S` counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounters {
    /// Frames delivered to the application.
    pub rx_packets,
    /// Bytes of those frames (frame length on the wire).
    pub rx_bytes,
    /// Delivered frames that were split (payload in device memory).
    pub rx_hds_split,
    /// Delivered frames that went whole to the header buffer.
    pub rx_hds_unsplit,
    /// Payload bytes of split frames.
    pub rx_hds_payload_bytes,
    /// Unsplit frames truncated to the header buffer.
    pub rx_hdr_truncated,
    /// Frames flagged malformed by the NIC (delivered whole, unsplit).
    pub rx_errors_malformed,
    /// RoCE frames with a bad ICRC.
    pub rx_icrc_bad,
    /// Packed mode: buffers the NIC handed back with a FLUSH completion.
    pub rx_flush,
    /// Completions rejected: wrong queue id, unknown flag bits, inconsistent lengths.
    pub rx_err_completion,
    /// Completions rejected by the ledger (buffer not posted, out of range, ...).
    pub rx_err_ledger,
    /// Buffers named by rejected completions, taken back into quarantine until the next reset.
    pub rx_quarantined,
    /// Header / payload buffers posted to the fill rings.
    pub fill_hdr_posted,
    pub fill_pay_posted,
    /// Refills that found a pool empty (buffers lent out, not yet returned).
    pub fill_pool_empty,
    /// Polls that found completions / found none.
    pub polls_busy,
    pub polls_idle,
    /// Frames the sink refused (application handle closed); their tokens went back at once.
    pub rx_deliver_closed,
    /// Queue resets done.
    pub resets,
    /// Resets that failed (control plane error): the queue stopped posting, faulted.
    pub reset_failures,
    /// Delivered frames the NIC verified: L4 checksum right (`CSUM_OK`, like a driver's
    /// `rx_csum_unnecessary`), a checksum wrong (`CSUM_BAD`), nothing verified (neither).
    pub rx_csum_ok,
    pub rx_csum_bad,
    pub rx_csum_none,
}
}

/// Frames go here: the application side of a queue.
pub trait Sink: Send {
    /// One validated frame. Dropping `rx` returns its tokens. Returns `false` when the
    /// application is gone (the frame was dropped).
    fn deliver(&mut self, rx: Rx) -> bool;
}

impl Sink for crate::token::ConsumerTx {
    fn deliver(&mut self, rx: Rx) -> bool {
        self.send(rx).is_ok()
    }
}

/// A sink that drops every frame at once (returning its tokens): a pure datapath.
#[derive(Debug, Default)]
pub struct DropSink;

impl Sink for DropSink {
    #[inline]
    fn deliver(&mut self, rx: Rx) -> bool {
        drop(rx);
        true
    }
}

/// Why a completion was rejected (the first one is kept for the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompletionError {
    /// The completion breaks the rule both sides share ([`RxCompletion::validate`]); the
    /// buffers it names were taken into quarantine.
    #[error("{0}")]
    Invalid(CompletionFault),
    #[error("header buffer: {0}")]
    Header(LedgerError),
    #[error("payload buffer: {0}")]
    Payload(LedgerError),
}

/// The outcome of a queue reset or finish, checked exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResetOutcome {
    /// Buffers the NIC reported it still held (header + payload).
    pub reported: u32,
    /// Buffers the host ledger had posted to the NIC after the completion ring was drained.
    pub nic_held: u32,
    /// Completions drained after the reset answer.
    pub drained: u64,
    /// Of the reported buffers: freed now / freed when their last token returns.
    pub freed: u32,
    pub retired_in_use: u32,
    /// Rings re-initialised or re-attached by this reset after a fault.
    pub rings_repaired: u32,
    /// Reported buffers the ledger did not have posted, or named twice (must be 0).
    pub unknown: u32,
    pub duplicates: u32,
}

impl ResetOutcome {
    /// Nothing lost, nothing duplicated: the NIC reported exactly what the ledger says it held.
    pub fn exact(&self) -> bool {
        self.reported == self.nic_held
            && self.unknown == 0
            && self.duplicates == 0
            && self.freed + self.retired_in_use == self.reported
    }
}

/// Errors of queue operations that need the control plane.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("control plane: {0}")]
    Ctrl(#[from] CtrlError),
    #[error("ring: {0:?}")]
    Ring(RingError),
    #[error("the completion ring did not drain after the reset")]
    NotDrained,
}

/// Told how many buffers a queue posts to the NIC and how many a reset hands back: whoever
/// meters the link by the receiver's posted buffers (the sim wire's PFC-like flow control)
/// implements it. Called from the poller thread, once per refill batch and once per reset.
pub trait PostObserver: Send + Sync {
    /// `hdr` header and `pay` payload buffers were posted to the fill rings.
    fn posted(&self, hdr: u32, pay: u32);
    /// A reset handed back `hdr` header and `pay` payload buffers the NIC had not used.
    fn reclaimed(&self, hdr: u32, pay: u32);
}

/// Where a queue stands after its last reset (issue 9: a failed or partial reset never leaves
/// the queue half-stopped).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum QueueHealth {
    /// Posting and polling.
    Running,
    /// Reset without resuming (teardown): nothing posted, every buffer back.
    Stopped,
    /// Not posting; the reason says what failed. Every buffer is still accounted for: the
    /// ledger keeps the ones the NIC may hold as Posted until a reset succeeds.
    Faulted(String),
}

/// The queue's shared region as the host mapped it: read for the NIC's status, written to
/// repair a ring the NIC stopped on.
struct QueueRegion {
    base: NonNull<u8>,
    layout: RegionLayout,
}

// SAFETY: `base` points into a mapping that the queue keeps alive (`RxQueue::_mem`) and that is
// only accessed through volatile reads and the ring module's raw-pointer operations.
unsafe impl Send for QueueRegion {}

impl QueueRegion {
    /// The NIC's status word and fault detail, read from the header.
    fn nic_status(&self) -> (u32, u32) {
        let p = self.base.as_ptr();
        // SAFETY: the region starts with a QueueHeader (at least 64 bytes, 64-aligned); the
        // status and fault words are aligned u32s the NIC writes with plain stores.
        unsafe {
            (
                u32::from_le(core::ptr::read_volatile(
                    p.add(offset_of!(QueueHeader, nic_status)).cast::<u32>(),
                )),
                u32::from_le(core::ptr::read_volatile(
                    p.add(offset_of!(QueueHeader, nic_fault)).cast::<u32>(),
                )),
            )
        }
    }
    /// The ring the NIC stopped on, when it reports a corrupt ring.
    fn faulted_ring(&self) -> Option<RingKind> {
        let (status, fault) = self.nic_status();
        (status == QueueStatus::FaultRingCorrupt as u32)
            .then(|| RingKind::from_u16((fault >> 8) as u16))
            .flatten()
    }
}

/// The host side of one RX queue.
pub struct RxQueue {
    id: u16,
    hdr_fill: Producer<FillDesc>,
    pay_fill: Producer<FillDesc>,
    cq: Consumer<RxCompletion>,
    pub hdr_pool: PagePool,
    pub pay_pool: PagePool,
    pay_mode: PoolMode,
    /// Post buffers (false while a reset is in progress).
    posting: bool,
    counters: QueueCounters,
    first_error: Option<CompletionError>,
    ring_error: Option<RingError>,
    descs: Vec<FillDesc>,
    comps: Vec<RxCompletion>,
    /// Told about every post and reset (see [`PostObserver`]).
    observer: Option<Arc<dyn PostObserver>>,
    /// Buffers named by completions rejected for a non-ledger reason, taken back from the NIC
    /// and held out of circulation (true: payload pool) until the next reset.
    quarantine: Vec<(bool, Filled)>,
    health: QueueHealth,
    /// How long a control request of a reset may take.
    ctrl_timeout: Duration,
    /// The shared region, when the queue was told where it is ([`RxQueue::set_region`]).
    region: Option<QueueRegion>,
    /// Keeps the memory the ring handles point into mapped.
    _mem: Arc<dyn Send + Sync>,
}

impl std::fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxQueue")
            .field("id", &self.id)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl RxQueue {
    /// Builds the host side of queue `id` from its attached ring handles and its pools.
    /// `mem` keeps the mapping the ring handles point into alive as long as the queue.
    pub fn new(
        id: u16,
        rings: (
            Producer<FillDesc>,
            Producer<FillDesc>,
            Consumer<RxCompletion>,
        ),
        hdr_pool: PagePool,
        pay_pool: PagePool,
        mem: Arc<dyn Send + Sync>,
    ) -> RxQueue {
        let pay_mode = pay_pool.config().mode;
        RxQueue {
            id,
            hdr_fill: rings.0,
            pay_fill: rings.1,
            cq: rings.2,
            hdr_pool,
            pay_pool,
            pay_mode,
            posting: true,
            counters: QueueCounters::default(),
            first_error: None,
            ring_error: None,
            descs: vec![FillDesc::default(); FILL_BATCH as usize],
            comps: vec![RxCompletion::default(); POLL_BATCH],
            observer: None,
            quarantine: Vec::new(),
            health: QueueHealth::Running,
            ctrl_timeout: Duration::from_secs(10),
            region: None,
            _mem: mem,
        }
    }

    pub fn id(&self) -> u16 {
        self.id
    }
    pub fn counters(&self) -> QueueCounters {
        self.counters
    }
    /// The first completion the queue rejected, if any.
    pub fn first_error(&self) -> Option<CompletionError> {
        self.first_error
    }
    /// Where the queue stands (see [`QueueHealth`]).
    pub fn health(&self) -> &QueueHealth {
        &self.health
    }

    /// How long each control request of a reset may take (default 10 s).
    pub fn set_ctrl_timeout(&mut self, t: Duration) {
        self.ctrl_timeout = t;
    }

    /// Tells the queue where its shared region is, so a reset can read the NIC's status and
    /// repair a ring the NIC stopped on.
    ///
    /// # Safety
    /// `base` is the region `layout` was initialised in, inside the mapping `mem` given to
    /// [`RxQueue::new`] (which keeps it alive).
    pub unsafe fn set_region(&mut self, base: NonNull<u8>, layout: RegionLayout) {
        self.region = Some(QueueRegion { base, layout });
    }

    /// Reports every post and reset to `observer` from now on.
    pub fn set_observer(&mut self, observer: Arc<dyn PostObserver>) {
        self.observer = Some(observer);
    }
    /// A ring found corrupt (the queue stops polling it).
    pub fn ring_error(&self) -> Option<RingError> {
        self.ring_error
    }

    /// Posts free buffers to both fill rings, in batches. Returns how many were posted.
    pub fn refill(&mut self) -> usize {
        if !self.posting || self.ring_error.is_some() {
            return 0;
        }
        let h = refill_one(&mut self.hdr_fill, &mut self.hdr_pool, &mut self.descs);
        let p = refill_one(&mut self.pay_fill, &mut self.pay_pool, &mut self.descs);
        if let Some(o) = &self.observer {
            let k = |r: &Result<(usize, bool), RingError>| r.as_ref().map_or(0, |v| v.0 as u32);
            let (kh, kp) = (k(&h), k(&p));
            if kh + kp > 0 {
                o.posted(kh, kp);
            }
        }
        let mut n = 0;
        for (r, posted) in [
            (h, &mut self.counters.fill_hdr_posted),
            (p, &mut self.counters.fill_pay_posted),
        ] {
            match r {
                Ok((k, dry)) => {
                    *posted += k as u64;
                    self.counters.fill_pool_empty += dry as u64;
                    n += k;
                }
                Err(e) => self.ring_error = Some(e),
            }
        }
        n
    }

    /// Fault injection (feature `fault-injection`, for scenario tests): writes `descs` to the
    /// header (`payload` false) or payload fill ring as they are, bypassing the pool and the
    /// ledger — a host that posts descriptors the NIC must refuse. Returns how many fit.
    #[cfg(feature = "fault-injection")]
    pub fn inject_fill(&mut self, payload: bool, descs: &[FillDesc]) -> Result<usize, RingError> {
        let ring = if payload {
            &mut self.pay_fill
        } else {
            &mut self.hdr_fill
        };
        let mut chunk = ring.reserve(descs.len() as u32)?;
        let n = (chunk.len() as usize).min(descs.len());
        chunk.write_slice(0, &descs[..n]);
        chunk.commit(n as u32);
        Ok(n)
    }

    /// A completion broke the shared rule: the NIC still said it is done with the buffers it
    /// names, so every one of them this queue has posted is taken back into quarantine (a
    /// packed payload buffer only when the completion retires it: the NIC keeps filling it
    /// otherwise), never lost and never reused before the next reset. A buffer that is not
    /// posted here is the ledger's business and changes nothing.
    fn quarantine_named(&mut self, c: &RxCompletion) {
        let flags = c.flags.get();
        let pay_ours = self.pay_mode == PoolMode::Page || flags & rx_flags::PAY_RETIRED != 0;
        for (payload, buf) in [(false, c.hdr_buf), (true, c.pay_buf)] {
            if buf.is_none() || (payload && !pay_ours) {
                continue;
            }
            let pool = if payload {
                &mut self.pay_pool
            } else {
                &mut self.hdr_pool
            };
            if buf.pool() != pool.id() || !pool.state(buf).is_some_and(|v| v.nic) {
                continue;
            }
            if let Ok(f) = pool.quarantine(buf) {
                self.quarantine.push((payload, f));
                self.counters.rx_quarantined += 1;
            }
        }
    }

    /// Buffers held in quarantine now.
    pub fn quarantined(&self) -> usize {
        self.quarantine.len()
    }

    /// Takes up to [`POLL_BATCH`] completions, validates them and delivers the frames to `sink`.
    /// Returns the number of completions taken.
    pub fn poll(&mut self, sink: &mut dyn Sink) -> usize {
        if self.ring_error.is_some() {
            return 0;
        }
        let n = match self.cq.pop_into(&mut self.comps) {
            Ok(n) => n,
            Err(e) => {
                self.ring_error = Some(e);
                return 0;
            }
        };
        if n == 0 {
            self.counters.polls_idle += 1;
            return 0;
        }
        self.counters.polls_busy += 1;
        for i in 0..n {
            let c = self.comps[i];
            if let Err(e) = self.complete(&c, sink) {
                if e.is_ledger() {
                    self.counters.rx_err_ledger += 1;
                } else {
                    self.counters.rx_err_completion += 1;
                }
                self.first_error.get_or_insert(e);
            }
        }
        n
    }

    /// Validates one completion and delivers its frame.
    #[inline]
    fn complete(&mut self, c: &RxCompletion, sink: &mut dyn Sink) -> Result<(), CompletionError> {
        if let Err(fault) = c.validate(self.id) {
            self.quarantine_named(c);
            return Err(CompletionError::Invalid(fault));
        }
        let flags = c.flags.get();
        if flags & rx_flags::FLUSH != 0 {
            // The NIC hands back a packed payload buffer it will not write again.
            self.pay_pool
                .retire(c.pay_buf)
                .map_err(CompletionError::Payload)?;
            self.counters.rx_flush += 1;
            return Ok(());
        }
        let (hdr_len, pay_len, frame_len) = (c.hdr_len.get(), c.pay_len.get(), c.frame_len.get());
        let split = flags & rx_flags::SPLIT != 0;
        // Check both buffers before committing either.
        self.hdr_pool
            .check(c.hdr_buf, 0, hdr_len as u32)
            .map_err(CompletionError::Header)?;
        if split {
            self.pay_pool
                .check(c.pay_buf, c.pay_off.get(), pay_len)
                .map_err(CompletionError::Payload)?;
        }
        let hdr = self
            .hdr_pool
            .complete(c.hdr_buf, 0, hdr_len as u32, true)
            .map_err(CompletionError::Header)?;
        let payload = if split {
            let retired = self.pay_mode == PoolMode::Page || flags & rx_flags::PAY_RETIRED != 0;
            match self
                .pay_pool
                .complete(c.pay_buf, c.pay_off.get(), pay_len, retired)
            {
                Ok(f) => Some(f),
                Err(e) => {
                    self.hdr_pool.drop_filled(hdr);
                    return Err(CompletionError::Payload(e));
                }
            }
        } else {
            None
        };
        let header = self.hdr_pool.lend(hdr).ok();
        let payload = match payload {
            Some(f) => self.pay_pool.lend(f).ok(),
            None => None,
        };
        let k = &mut self.counters;
        k.rx_packets += 1;
        k.rx_bytes += frame_len as u64;
        if split {
            k.rx_hds_split += 1;
            k.rx_hds_payload_bytes += pay_len as u64;
        } else {
            k.rx_hds_unsplit += 1;
        }
        k.rx_hdr_truncated += (flags & rx_flags::HDR_TRUNCATED != 0) as u64;
        k.rx_errors_malformed += (flags & rx_flags::ERROR != 0) as u64;
        k.rx_icrc_bad += (flags & rx_flags::ICRC_BAD != 0) as u64;
        match (
            flags & rx_flags::CSUM_OK != 0,
            flags & rx_flags::CSUM_BAD != 0,
        ) {
            (_, true) => k.rx_csum_bad += 1,
            (true, false) => k.rx_csum_ok += 1,
            (false, false) => k.rx_csum_none += 1,
        }
        if !sink.deliver(Rx {
            completion: *c,
            header,
            payload,
        }) {
            self.counters.rx_deliver_closed += 1;
        }
        Ok(())
    }

    /// Polls until the completion ring is empty. Returns the completions taken.
    pub fn drain(&mut self, sink: &mut dyn Sink) -> u64 {
        let mut total = 0u64;
        loop {
            let n = self.poll(sink);
            if n == 0 {
                return total;
            }
            total += n as u64;
        }
    }

    /// Resets the queue through the control plane and reconciles the pools with the NIC's
    /// report: stop posting, ResetQueue (the NIC returns every buffer it holds, in its caches
    /// and still on the fill rings), drain the completion ring (everything in it was written
    /// before the answer; the NIC has no buffer left to write more), check that the report
    /// names exactly the buffers the ledger has posted, then retire them all. Posting resumes
    /// unless `resume` is false.
    pub fn reset(
        &mut self,
        ctrl: &Mutex<CtrlClient>,
        sink: &mut dyn Sink,
        resume: bool,
    ) -> Result<ResetOutcome, QueueError> {
        self.posting = false;
        // The NIC stopped on a corrupt ring: re-initialise it (its handle on the NIC side is
        // stopped, so nobody else touches it) before the reset, as the firmware expects.
        let repaired = match self.region.as_ref().and_then(QueueRegion::faulted_ring) {
            Some(kind) => match self.repair_ring(kind) {
                Ok(()) => 1,
                Err(e) => {
                    self.health = QueueHealth::Faulted(format!("repairing the {kind:?} ring: {e}"));
                    return Err(QueueError::Ring(e));
                }
            },
            None => 0,
        };
        let answer = {
            let mut c = ctrl.lock().unwrap_or_else(|p| p.into_inner());
            c.reset_queue(self.id, &mut Deadline::after(self.ctrl_timeout))
        };
        let reported = match answer {
            Ok(r) => r,
            Err(e) => {
                // Nothing is known of what the NIC holds: the ledger keeps those buffers
                // Posted (accounted for), posting stays off, and a later reset may recover.
                self.counters.reset_failures += 1;
                self.health = QueueHealth::Faulted(format!("reset failed: {e}"));
                return Err(e.into());
            }
        };
        let mut out = ResetOutcome {
            drained: self.drain(sink),
            rings_repaired: repaired,
            ..ResetOutcome::default()
        };
        let (mut hdr, mut pay) = (Vec::new(), Vec::new());
        for b in reported {
            if b.pool() == self.hdr_pool.id() {
                hdr.push(b);
            } else if b.pool() == self.pay_pool.id() {
                pay.push(b);
            } else {
                out.unknown += 1;
            }
        }
        if let Some(o) = &self.observer {
            o.reclaimed(hdr.len() as u32, pay.len() as u32);
        }
        for (pool, list) in [(&mut self.hdr_pool, &hdr), (&mut self.pay_pool, &pay)] {
            out.reported += list.len() as u32;
            out.nic_held += nic_held(pool);
            // Every reported buffer must be one the ledger has posted; then all of them are
            // retired (the NIC cleared its holdings when it answered).
            let check = pool.reconcile(list);
            out.unknown += check.unknown.len() as u32;
            out.duplicates += check.duplicates;
            let r: ReconcileReport = pool.reconcile(&[]);
            out.freed += check.freed + r.freed;
            out.retired_in_use += check.retired_in_use + r.retired_in_use;
        }
        // The NIC's report is reconciled: it holds none of the quarantined buffers.
        for (payload, f) in std::mem::take(&mut self.quarantine) {
            if payload {
                self.pay_pool.drop_filled(f);
            } else {
                self.hdr_pool.drop_filled(f);
            }
        }
        self.counters.resets += 1;
        // A ring the host found corrupt: take the host's handles afresh from shared memory (the
        // NIC re-attached its own). If the NIC still publishes nonsense, the queue faults again.
        if let Some(e) = self.ring_error.take() {
            if let Err(why) = self.reattach_host_rings() {
                self.health =
                    QueueHealth::Faulted(format!("host ring fault {e:?} not repaired: {why}"));
                self.ring_error = Some(e);
                return Ok(out);
            }
            out.rings_repaired += 1;
        }
        // The NIC's own verdict on the reset.
        if let Some(kind) = self.region.as_ref().and_then(QueueRegion::faulted_ring) {
            self.health = QueueHealth::Faulted(format!(
                "the NIC still reports the {kind:?} ring corrupt after the reset"
            ));
            return Ok(out);
        }
        self.posting = resume;
        self.health = if resume {
            QueueHealth::Running
        } else {
            QueueHealth::Stopped
        };
        Ok(out)
    }

    /// Re-initialises ring `kind` (indices zeroed) and gives the host a fresh handle to it.
    fn repair_ring(&mut self, kind: RingKind) -> Result<(), RingError> {
        let Some(r) = &self.region else {
            return Err(RingError::BadLayout);
        };
        let desc = r.layout.ring(kind).ok_or(RingError::BadLayout)?;
        let base = r.base.as_ptr().wrapping_add(desc.offset.get() as usize);
        let base = NonNull::new(base).ok_or(RingError::BadLayout)?;
        let cap = desc.capacity.get();
        // SAFETY: the ring lies inside the region (its layout was validated when it was
        // initialised), which `_mem` keeps mapped; the NIC's handle for it is stopped (it
        // reported the ring corrupt), and the host's old handle is replaced below, so nothing
        // else accesses the index blocks meanwhile.
        unsafe {
            match kind {
                RingKind::HeaderFill | RingKind::PayloadFill => {
                    ring::init::<FillDesc>(base, cap)?;
                    let p = Producer::<FillDesc>::attach(base, cap)?;
                    if kind == RingKind::HeaderFill {
                        self.hdr_fill = p;
                    } else {
                        self.pay_fill = p;
                    }
                }
                RingKind::RxCompletion => {
                    ring::init::<RxCompletion>(base, cap)?;
                    self.cq = Consumer::<RxCompletion>::attach(base, cap)?;
                }
                _ => return Err(RingError::BadLayout),
            }
        }
        Ok(())
    }

    /// New host handles for the three rings, from the indices in shared memory.
    fn reattach_host_rings(&mut self) -> Result<(), LayoutError> {
        let Some(r) = &self.region else {
            return Err(LayoutError::Misaligned);
        };
        // SAFETY: the region and its rings were initialised in memory `_mem` keeps mapped; the
        // old handles are replaced, so one producer and one consumer per ring remain.
        unsafe {
            self.hdr_fill = r.layout.producer(r.base, RingKind::HeaderFill)?;
            self.pay_fill = r.layout.producer(r.base, RingKind::PayloadFill)?;
            self.cq = r.layout.consumer(r.base, RingKind::RxCompletion)?;
        }
        Ok(())
    }
}

fn nic_held(pool: &PagePool) -> u32 {
    (0..pool.count())
        .filter_map(|i| BufRef::new(pool.id(), i))
        .filter(|b| pool.state(*b).is_some_and(|v| v.nic))
        .count() as u32
}

impl CompletionError {
    fn is_ledger(&self) -> bool {
        matches!(
            self,
            CompletionError::Header(_) | CompletionError::Payload(_)
        )
    }
}

/// Posts up to [`FILL_BATCH`] buffers of `pool` to `ring` when at least a batch is free.
/// Returns (posted, pool ran dry).
#[inline]
fn refill_one(
    ring: &mut Producer<FillDesc>,
    pool: &mut PagePool,
    descs: &mut [FillDesc],
) -> Result<(usize, bool), RingError> {
    let mut chunk = ring.reserve(FILL_BATCH)?;
    let want = chunk.len() as usize;
    if want < FILL_BATCH as usize {
        return Ok((0, false));
    }
    let n = pool.fill(&mut descs[..want]);
    chunk.write_slice(0, &descs[..n]);
    chunk.commit(n as u32);
    Ok((n, n < want))
}

/// Commands to a poller thread.
pub enum Cmd {
    /// Reset the queue mid-traffic and resume; the outcome is sent back.
    Reset(mpsc::Sender<Result<ResetOutcome, String>>),
    /// Poll until the completion ring is empty, then answer with the counters.
    Drain(mpsc::Sender<QueueCounters>),
    /// Stop posting, reset (returning every buffer), drain, and exit the thread.
    Finish,
    /// Run a closure on the queue, on the poller thread, between two polls.
    With(Box<dyn FnOnce(&mut RxQueue) + Send>),
}

/// What a poller thread returns when it exits.
#[derive(Debug)]
pub struct PollerExit<S> {
    pub queue: RxQueue,
    pub sink: S,
    /// The final reset's outcome (`Finish`), or why it failed.
    pub finish: Option<Result<ResetOutcome, String>>,
}

/// A running poller thread.
#[derive(Debug)]
pub struct Poller<S> {
    pub cmd: mpsc::Sender<Cmd>,
    /// Completions processed so far (for progress displays).
    pub progress: Arc<AtomicU64>,
    thread: JoinHandle<PollerExit<S>>,
}

impl<S> Poller<S> {
    /// Sends `Finish` and joins.
    pub fn finish(self) -> Option<PollerExit<S>> {
        let _ = self.cmd.send(Cmd::Finish);
        self.thread.join().ok()
    }
    /// Asks the poller to drain and waits for the answer.
    pub fn drain(&self) -> Option<QueueCounters> {
        let (tx, rx) = mpsc::channel();
        self.cmd.send(Cmd::Drain(tx)).ok()?;
        rx.recv().ok()
    }
    /// Runs `f` on the poller's queue (on the poller thread, between two polls) and returns
    /// its result; `None` when the poller is gone.
    pub fn with_queue<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut RxQueue) -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = mpsc::channel();
        self.cmd
            .send(Cmd::With(Box::new(move |q| {
                let _ = tx.send(f(q));
            })))
            .ok()?;
        rx.recv().ok()
    }
    /// Asks the poller to reset its queue mid-traffic and waits for the outcome.
    pub fn reset(&self) -> Result<ResetOutcome, String> {
        let (tx, rx) = mpsc::channel();
        self.cmd
            .send(Cmd::Reset(tx))
            .map_err(|_| "poller gone".to_string())?;
        rx.recv().map_err(|_| "poller gone".to_string())?
    }
}

/// Runs `queue`'s poller on a new thread, delivering frames to `sink`.
pub fn spawn_poller<S: Sink + 'static>(
    mut queue: RxQueue,
    mut sink: S,
    ctrl: Arc<Mutex<CtrlClient>>,
) -> Poller<S> {
    let (tx, rx) = mpsc::channel::<Cmd>();
    let progress = Arc::new(AtomicU64::new(0));
    let prog = progress.clone();
    let thread = std::thread::Builder::new()
        .name(format!("rxq{}-poller", queue.id()))
        .spawn(move || {
            let mut spins = 0u32;
            let mut since_cmd = 0u32;
            let finish = loop {
                queue.refill();
                let n = queue.poll(&mut sink);
                if n > 0 {
                    prog.store(queue.counters.rx_packets, Ordering::Relaxed);
                    spins = 0;
                    since_cmd += 1;
                    if since_cmd < 64 {
                        continue;
                    }
                }
                since_cmd = 0;
                match rx.try_recv() {
                    Ok(Cmd::Reset(reply)) => {
                        let r = queue
                            .reset(&ctrl, &mut sink, true)
                            .map_err(|e| e.to_string());
                        let _ = reply.send(r);
                        continue;
                    }
                    Ok(Cmd::Drain(reply)) => {
                        queue.drain(&mut sink);
                        prog.store(queue.counters.rx_packets, Ordering::Relaxed);
                        let _ = reply.send(queue.counters);
                        continue;
                    }
                    Ok(Cmd::With(f)) => {
                        f(&mut queue);
                        continue;
                    }
                    Ok(Cmd::Finish) | Err(mpsc::TryRecvError::Disconnected) => {
                        break Some(
                            queue
                                .reset(&ctrl, &mut sink, false)
                                .map_err(|e| e.to_string()),
                        );
                    }
                    Err(mpsc::TryRecvError::Empty) => {}
                }
                if n == 0 {
                    spins += 1;
                    if spins < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
            };
            prog.store(queue.counters.rx_packets, Ordering::Relaxed);
            PollerExit {
                queue,
                sink,
                finish,
            }
        })
        .expect("spawning a poller thread");
    Poller {
        cmd: tx,
        progress,
        thread,
    }
}

#[cfg(test)]
mod tests {
    //! The poller against a hostile NIC: completions crafted by the test (playing the NIC on
    //! the other ends of the rings) must be validated, counted and rejected with a typed error,
    //! never followed, never a panic, and never lose a buffer.
    use super::*;
    use crate::pool::PoolConfig;
    use crate::provider::{HostMemory, HostMemoryConfig};
    use splitrx_shared::abi::CtrlMsg;
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use zerocopy::little_endian::{U16, U32, U64};

    struct Mem(NonNull<u8>, Layout);
    // SAFETY: the test owns the allocation; the ring handles are the only users.
    unsafe impl Send for Mem {}
    // SAFETY: as above.
    unsafe impl Sync for Mem {}
    impl Drop for Mem {
        fn drop(&mut self) {
            // SAFETY: allocated in `rig` with this layout.
            unsafe { dealloc(self.0.as_ptr(), self.1) }
        }
    }

    /// The queue, plus the NIC's ends of its rings.
    struct Rig {
        q: RxQueue,
        nic_hdr: Consumer<FillDesc>,
        nic_pay: Consumer<FillDesc>,
        nic_cq: Producer<RxCompletion>,
    }

    fn rig(mode: PoolMode) -> Rig {
        let l = RegionLayout::new(
            0,
            &[
                (RingKind::HeaderFill, 64),
                (RingKind::PayloadFill, 64),
                (RingKind::RxCompletion, 64),
            ],
        )
        .unwrap();
        let layout = Layout::from_size_align(l.size as usize, 4096).unwrap();
        // SAFETY: non-zero size.
        let p = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        let mem = Arc::new(Mem(p, layout));
        // SAFETY: fresh, aligned, large enough; one handle per ring side below.
        unsafe { l.init(p, l.size as usize).unwrap() };
        // SAFETY: the rings were initialised above in `mem`, which the rig keeps alive; exactly
        // one producer and one consumer per ring.
        let (rings, nic) = unsafe {
            (
                (
                    l.producer(p, RingKind::HeaderFill).unwrap(),
                    l.producer(p, RingKind::PayloadFill).unwrap(),
                    l.consumer(p, RingKind::RxCompletion).unwrap(),
                ),
                (
                    l.consumer(p, RingKind::HeaderFill).unwrap(),
                    l.consumer(p, RingKind::PayloadFill).unwrap(),
                    l.producer(p, RingKind::RxCompletion).unwrap(),
                ),
            )
        };
        let hdr = PagePool::new(
            PoolConfig::new(0),
            Box::new(HostMemory::new(HostMemoryConfig::new(256, 128))),
        )
        .unwrap();
        let pay = PagePool::new(
            PoolConfig {
                mode,
                ..PoolConfig::new(1)
            },
            Box::new(HostMemory::new(HostMemoryConfig::new(4096, 128))),
        )
        .unwrap();
        let mut q = RxQueue::new(0, rings, hdr, pay, mem);
        // SAFETY: `p` is the region `l` was initialised in, inside `mem`, which `q` keeps.
        unsafe { q.set_region(p, l) };
        assert_eq!(q.refill(), 128, "two batches of 64 posted");
        Rig {
            q,
            nic_hdr: nic.0,
            nic_pay: nic.1,
            nic_cq: nic.2,
        }
    }

    fn comp(hdr: BufRef, pay: BufRef, hdr_len: u16, pay_len: u32, flags: u16) -> RxCompletion {
        RxCompletion {
            hdr_buf: hdr,
            pay_buf: pay,
            pay_off: U32::new(0),
            pay_len: U32::new(pay_len),
            hdr_len: U16::new(hdr_len),
            flags: U16::new(flags),
            class: 1,
            reason: 0,
            queue: U16::new(0),
            flow_hash: U32::new(0),
            frame_len: U32::new(hdr_len as u32 + pay_len),
            ..RxCompletion::default()
        }
    }

    /// Feature 9 and 8 on the host: the NIC's timestamp, checksum flags and CHECKSUM_COMPLETE
    /// reach the application's `Rx` exactly, and the flags are counted.
    #[test]
    fn timestamp_and_checksum_reach_the_rx() {
        let mut r = rig(PoolMode::Page);
        let split = rx_flags::SPLIT | rx_flags::PAY_RETIRED;
        let cases = [
            (0x0123_4567_89ab_cdefu64, rx_flags::CSUM_OK, 0xbeefu16),
            (u64::MAX, rx_flags::CSUM_BAD, 0),
            (1, 0, 0x0001),
        ];
        for &(ts, csum, complete) in &cases {
            let h = r.nic_hdr.pop().unwrap().unwrap();
            let p = r.nic_pay.pop().unwrap().unwrap();
            let c = RxCompletion {
                rx_timestamp_ns: U64::new(ts),
                csum_complete: U16::new(complete),
                ..comp(h.buf, p.buf, 54, 100, split | csum)
            };
            assert!(r.nic_cq.push(&c).unwrap());
        }
        let mut sink = Collect::default();
        assert_eq!(r.q.poll(&mut sink), 3);
        let got: Vec<(u64, bool, bool, u16)> = sink
            .0
            .iter()
            .map(|rx| {
                (
                    rx.timestamp_ns(),
                    rx.csum_ok(),
                    rx.csum_bad(),
                    rx.csum_complete(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (0x0123_4567_89ab_cdef, true, false, 0xbeef),
                (u64::MAX, false, true, 0),
                (1, false, false, 1),
            ]
        );
        let k = r.q.counters();
        assert_eq!((k.rx_csum_ok, k.rx_csum_bad, k.rx_csum_none), (1, 1, 1));
        assert!(r.q.first_error().is_none());
    }

    #[derive(Default)]
    struct Collect(Vec<Rx>);
    impl Sink for Collect {
        fn deliver(&mut self, rx: Rx) -> bool {
            self.0.push(rx);
            true
        }
    }

    #[test]
    fn valid_completion_delivers_tokens_and_recycles() {
        let mut r = rig(PoolMode::Page);
        let h = r.nic_hdr.pop().unwrap().unwrap();
        let p = r.nic_pay.pop().unwrap().unwrap();
        assert_eq!(r.q.counters().fill_hdr_posted, 64);
        let c = comp(
            h.buf,
            p.buf,
            54,
            1000,
            rx_flags::SPLIT | rx_flags::PAY_RETIRED,
        );
        assert!(r.nic_cq.push(&c).unwrap());
        let mut sink = Collect::default();
        assert_eq!(r.q.poll(&mut sink), 1);
        let k = r.q.counters();
        assert_eq!(
            (
                k.rx_packets,
                k.rx_bytes,
                k.rx_hds_split,
                k.rx_hds_payload_bytes
            ),
            (1, 1054, 1, 1000)
        );
        let rx = sink.0.pop().unwrap();
        assert_eq!(rx.header.as_ref().unwrap().len(), 54);
        assert_eq!(rx.payload.as_ref().unwrap().len(), 1000);
        assert_eq!(r.q.pay_pool.stats().tokens_outstanding, 1);
        drop(rx);
        assert_eq!(r.q.pay_pool.stats().tokens_outstanding, 0);
        assert!(r.q.first_error().is_none());
    }

    #[test]
    fn hostile_completions_are_rejected_counted_and_their_buffers_quarantined() {
        let mut r = rig(PoolMode::Page);
        let h = r.nic_hdr.pop().unwrap().unwrap();
        let p = r.nic_pay.pop().unwrap().unwrap();
        let split = rx_flags::SPLIT | rx_flags::PAY_RETIRED;
        let never_posted = BufRef::new(0, 127).unwrap();
        let mut wrong_queue = comp(h.buf, p.buf, 54, 100, split);
        wrong_queue.queue = U16::new(3);
        let cases: Vec<(RxCompletion, CompletionFault)> = vec![
            (wrong_queue, CompletionFault::WrongQueue(3)),
            (
                comp(h.buf, p.buf, 54, 100, 1 << 15),
                CompletionFault::Flags(1 << 15),
            ),
            // Header + payload longer than the frame.
            (
                RxCompletion {
                    frame_len: U32::new(100),
                    ..comp(h.buf, p.buf, 54, 100, split)
                },
                CompletionFault::Lengths {
                    hdr_len: 54,
                    pay_len: 100,
                    frame_len: 100,
                },
            ),
            // Unsplit but names a payload buffer.
            (
                comp(h.buf, p.buf, 54, 0, 0),
                CompletionFault::Lengths {
                    hdr_len: 54,
                    pay_len: 0,
                    frame_len: 54,
                },
            ),
            // An empty frame (what a 0-byte capture record used to make the NIC post).
            (
                comp(h.buf, BufRef::NONE, 0, 0, 0),
                CompletionFault::Lengths {
                    hdr_len: 0,
                    pay_len: 0,
                    frame_len: 0,
                },
            ),
        ];
        let mut sink = Collect::default();
        for (c, want) in &cases {
            assert_eq!(
                r.q.complete(c, &mut sink),
                Err(CompletionError::Invalid(*want))
            );
        }
        // The first one took both buffers it names into quarantine; the others named buffers
        // no longer posted, which changes nothing more.
        assert_eq!(r.q.counters().rx_quarantined, 2);
        assert_eq!(r.q.quarantined(), 2);
        assert_eq!(r.q.hdr_pool.state(h.buf).map(|v| v.nic), Some(false));
        // Through the ring: counted, the first one kept.
        for (c, _) in &cases {
            assert!(r.nic_cq.push(c).unwrap());
            assert_eq!(r.q.poll(&mut sink), 1);
        }
        assert_eq!(
            r.q.first_error(),
            Some(CompletionError::Invalid(cases[0].1))
        );
        assert_eq!(r.q.counters().rx_err_completion, 5);
        // A later completion naming a quarantined buffer is a ledger violation.
        assert!(matches!(
            r.q.complete(&comp(h.buf, p.buf, 54, 100, split), &mut sink),
            Err(CompletionError::Header(LedgerError::NotPosted { .. }))
        ));
        // Ledger-level lies on buffers still posted: never posted; a header longer than its
        // buffer; the same buffer completed twice.
        let h2 = r.nic_hdr.pop().unwrap().unwrap();
        let p2 = r.nic_pay.pop().unwrap().unwrap();
        let lies = [
            comp(never_posted, p2.buf, 54, 100, split),
            comp(h2.buf, p2.buf, 300, 100, split),
        ];
        assert!(matches!(
            r.q.complete(&lies[0], &mut sink),
            Err(CompletionError::Header(LedgerError::NotPosted { .. }))
        ));
        assert!(matches!(
            r.q.complete(&lies[1], &mut sink),
            Err(CompletionError::Header(LedgerError::OutOfBounds { .. }))
        ));
        for c in &lies {
            assert!(r.nic_cq.push(c).unwrap());
            assert_eq!(r.q.poll(&mut sink), 1);
        }
        assert_eq!(r.q.counters().rx_err_ledger, 2);
        assert!(sink.0.is_empty(), "nothing delivered");
        // A ledger violation commits nothing: the honest completion of h2/p2 still works...
        assert!(r
            .nic_cq
            .push(&comp(h2.buf, p2.buf, 54, 100, split))
            .unwrap());
        assert_eq!(r.q.poll(&mut sink), 1);
        assert_eq!(sink.0.len(), 1);
        // ...and replaying it is a double completion: rejected.
        assert!(r
            .nic_cq
            .push(&comp(h2.buf, p2.buf, 54, 100, split))
            .unwrap());
        assert_eq!(r.q.poll(&mut sink), 1);
        assert_eq!(r.q.counters().rx_err_ledger, 3);
        assert_eq!(r.q.counters().rx_packets, 1);
        sink.0.clear();
        // Every buffer is accounted for: 1 completed and returned, 1 in quarantine (filled,
        // held by the queue), the rest posted.
        let a = r.q.pay_pool.audit().unwrap();
        assert_eq!((a.total, a.posted + a.free, a.filled), (128, 127, 1));
        assert_eq!(a.lent, 0);
    }

    #[test]
    fn a_ring_full_of_garbage_is_rejected_entry_by_entry() {
        let mut r = rig(PoolMode::Page);
        let mut sink = Collect::default();
        for _ in 0..64 {
            assert!(r
                .nic_cq
                .push(&comp(BufRef::NONE, BufRef::NONE, 60, 0, 0))
                .unwrap());
        }
        assert!(
            !r.nic_cq
                .push(&comp(BufRef::NONE, BufRef::NONE, 1, 0, 0))
                .unwrap(),
            "ring full"
        );
        assert_eq!(r.q.drain(&mut sink), 64);
        assert_eq!(
            r.q.counters().rx_err_ledger,
            64,
            "NONE header buffers rejected"
        );
        assert!(r.q.ring_error().is_none());
    }

    /// A control region in test memory: the client, and the NIC's ends of its rings.
    fn ctrl_pair() -> (
        Mutex<CtrlClient>,
        Consumer<CtrlMsg>,
        Producer<CtrlMsg>,
        Arc<Mem>,
    ) {
        let l = RegionLayout::new(
            u16::MAX,
            &[(RingKind::CtrlRequest, 64), (RingKind::CtrlResponse, 64)],
        )
        .unwrap();
        let layout = Layout::from_size_align(l.size as usize, 4096).unwrap();
        // SAFETY: non-zero size.
        let p = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        let mem = Arc::new(Mem(p, layout));
        // SAFETY: fresh memory of the region's size; one producer and one consumer per ring;
        // the caller keeps `mem` alive as long as the handles.
        unsafe {
            l.init(p, l.size as usize).unwrap();
            (
                Mutex::new(CtrlClient::new(
                    l.producer(p, RingKind::CtrlRequest).unwrap(),
                    l.consumer(p, RingKind::CtrlResponse).unwrap(),
                )),
                l.consumer(p, RingKind::CtrlRequest).unwrap(),
                l.producer(p, RingKind::CtrlResponse).unwrap(),
                mem,
            )
        }
    }

    /// Plays the NIC's side of ResetQueue: answers every reset request with `held` plus every
    /// descriptor still on the fill rings (the NIC reports all it holds), in batches.
    fn answer_resets(
        req: &mut Consumer<CtrlMsg>,
        resp: &mut Producer<CtrlMsg>,
        hdr: &mut Consumer<FillDesc>,
        pay: &mut Consumer<FillDesc>,
        held: &mut Vec<BufRef>,
        until: std::time::Instant,
    ) -> usize {
        use splitrx_shared::abi::{call, CtrlStatus, OutstandingArgs, OUTSTANDING_PER_MSG};
        let mut answered = 0;
        while std::time::Instant::now() < until && answered == 0 {
            let Some(m) = req.pop().unwrap() else {
                std::thread::yield_now();
                continue;
            };
            if m.args_of::<call::ResetQueue>().is_none() {
                continue;
            }
            while let Some(d) = hdr.pop().unwrap() {
                held.push(d.buf);
            }
            while let Some(d) = pay.pop().unwrap() {
                held.push(d.buf);
            }
            let total = held.len();
            let mut chunks: Vec<&[BufRef]> = held.chunks(OUTSTANDING_PER_MSG).collect();
            if chunks.is_empty() {
                chunks.push(&[]);
            }
            for (i, c) in chunks.iter().enumerate() {
                let mut a = OutstandingArgs {
                    queue: U16::new(0),
                    count: c.len() as u8,
                    _pad: 0,
                    total: U32::new(total as u32),
                    bufs: [BufRef::NONE; OUTSTANDING_PER_MSG],
                };
                a.bufs[..c.len()].copy_from_slice(c);
                let last = i + 1 == chunks.len();
                let st = if last {
                    CtrlStatus::Ok
                } else {
                    CtrlStatus::More
                };
                assert!(resp
                    .push(&CtrlMsg::response::<call::ResetQueue>(m.seq.get(), st, &a))
                    .unwrap());
            }
            held.clear();
            answered += 1;
        }
        answered
    }

    #[test]
    fn a_failed_reset_faults_the_queue_keeps_every_buffer_accounted_and_a_retry_recovers() {
        let mut r = rig(PoolMode::Page);
        let (ctrl, mut fw_req, mut fw_resp, _cmem) = ctrl_pair();
        let mut sink = Collect::default();
        // The NIC took 10 buffers of each kind into its caches.
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(r.nic_hdr.pop().unwrap().unwrap().buf);
            held.push(r.nic_pay.pop().unwrap().unwrap().buf);
        }
        // Nobody answers: the reset times out.
        r.q.set_ctrl_timeout(Duration::from_millis(30));
        let e = r.q.reset(&ctrl, &mut sink, true).unwrap_err();
        assert!(
            matches!(e, QueueError::Ctrl(CtrlError::Timeout { .. })),
            "{e}"
        );
        assert!(matches!(r.q.health(), QueueHealth::Faulted(_)));
        assert_eq!(r.q.counters().reset_failures, 1);
        assert_eq!(r.q.refill(), 0, "a faulted queue posts nothing");
        // Every buffer accounted for: the ledger still has all 64 + 64 as the NIC's.
        let (h, p) = (r.q.hdr_pool.audit().unwrap(), r.q.pay_pool.audit().unwrap());
        assert_eq!((h.posted, p.posted), (64, 64));
        // The retry, with the NIC answering (it also sees the stale request first).
        r.q.set_ctrl_timeout(Duration::from_secs(10));
        let out = std::thread::scope(|sc| {
            let nic = sc.spawn(|| {
                let until = std::time::Instant::now() + Duration::from_secs(10);
                let mut n = 0;
                while n < 2 && std::time::Instant::now() < until {
                    n += answer_resets(
                        &mut fw_req,
                        &mut fw_resp,
                        &mut r.nic_hdr,
                        &mut r.nic_pay,
                        &mut held,
                        until,
                    );
                }
                n
            });
            let out = r.q.reset(&ctrl, &mut sink, true);
            (out, nic.join().unwrap())
        });
        let (out, answered) = out;
        let out = out.unwrap();
        assert_eq!(answered, 2, "the stale and the new request");
        // The NIC reset the queue on the first request (its answer came too late and was
        // skipped as stale), so the retry finds it holding nothing: the ledger retires all
        // 128 buffers it still had as the NIC's. Not exact, but nothing lost.
        assert_eq!(
            (out.reported, out.nic_held, out.freed),
            (0, 128, 128),
            "{out:?}"
        );
        assert!(!out.exact());
        assert_eq!(r.q.health(), &QueueHealth::Running);
        assert_eq!(r.q.hdr_pool.audit().unwrap().free, 128);
        assert_eq!(r.q.refill(), 128, "posting resumed");
    }

    #[test]
    fn a_ring_fault_on_either_side_is_repaired_by_the_reset() {
        let mut r = rig(PoolMode::Page);
        let (ctrl, mut fw_req, mut fw_resp, _cmem) = ctrl_pair();
        let mut sink = Collect::default();
        // Host side: the NIC publishes an impossible completion producer index.
        let cq_off =
            r.q.region
                .as_ref()
                .unwrap()
                .layout
                .ring(RingKind::RxCompletion)
                .unwrap()
                .offset
                .get();
        let base = r.q.region.as_ref().unwrap().base;
        // SAFETY: the producer index word of the completion ring, inside the rig's region.
        unsafe {
            core::ptr::write_volatile(
                base.as_ptr()
                    .add(cq_off as usize + ring::PRODUCER_OFFSET)
                    .cast::<u32>(),
                1_000_000,
            )
        };
        assert_eq!(r.q.poll(&mut sink), 0);
        assert!(r.q.ring_error().is_some(), "the host stopped the ring");
        // NIC side: it also stopped on the header fill ring (status and fault detail).
        // SAFETY: the header's status words, inside the rig's region.
        unsafe {
            let h = base.as_ptr();
            core::ptr::write_volatile(
                h.add(offset_of!(QueueHeader, nic_status)).cast::<u32>(),
                QueueStatus::FaultRingCorrupt as u32,
            );
            core::ptr::write_volatile(
                h.add(offset_of!(QueueHeader, nic_fault)).cast::<u32>(),
                (RingKind::HeaderFill as u32) << 8 | 1,
            );
        }
        let mut held = Vec::new();
        let addr = base.as_ptr() as usize;
        let out = std::thread::scope(|sc| {
            let nic = sc.spawn(|| {
                let until = std::time::Instant::now() + Duration::from_secs(10);
                let base = addr as *mut u8;
                // The NIC recovered its completion ring and its queue before answering.
                // SAFETY: as above.
                unsafe {
                    core::ptr::write_volatile(
                        base.add(cq_off as usize + ring::PRODUCER_OFFSET)
                            .cast::<u32>(),
                        0,
                    );
                    core::ptr::write_volatile(
                        base.add(offset_of!(QueueHeader, nic_status)).cast::<u32>(),
                        QueueStatus::Running as u32,
                    );
                }
                answer_resets(
                    &mut fw_req,
                    &mut fw_resp,
                    &mut r.nic_hdr,
                    &mut r.nic_pay,
                    &mut held,
                    until,
                )
            });
            let out = r.q.reset(&ctrl, &mut sink, true);
            (out, nic.join().unwrap())
        });
        let out = out.0.unwrap();
        // The header fill ring was re-initialised (its 64 descriptors gone from the ring: the
        // NIC reported only the payload ring's), and the host's handles re-attached.
        assert_eq!(out.rings_repaired, 2, "{out:?}");
        assert_eq!(out.reported, 64);
        assert!(r.q.ring_error().is_none());
        assert_eq!(r.q.health(), &QueueHealth::Running);
        let (h, p) = (r.q.hdr_pool.audit().unwrap(), r.q.pay_pool.audit().unwrap());
        assert_eq!((h.free, p.free), (128, 128), "every buffer back");
        assert_eq!(r.q.refill(), 128, "posting resumed on the repaired rings");
        assert_eq!(r.nic_hdr.pop().unwrap().map(|d| d.buf.pool()), Some(0));
    }
}
