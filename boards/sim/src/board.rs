//! The sim board proper: the firmware HAL implemented in-process, and the firmware thread.
//!
//! - [`SimMac`] ([`MacRx`]): frames come from a [`Wire`], lent to the firmware without a copy;
//! - [`SimTx`] ([`MacTx`]): counts and discards (RoCE ACKs are not looped back yet);
//! - [`SimDmaEngine`] ([`Dma`]): synchronous scatter-gather copies into the board's **own**
//!   mappings of the shared-memory files (range-checked like [`crate::shm::SimDma`], with a
//!   leaner hot path);
//! - [`SimMem`] ([`SharedMemory`]): bus ranges to pointers into the same mappings;
//! - [`SimClock`] ([`Clock`]): `Instant` since the board started.
//!
//! [`SimBoard::spawn`] maps the two files itself (a second, independent mapping of each: the
//! host and the firmware share nothing but the files' pages), brings the firmware up on the
//! control region the host initialised, and runs `Firmware::poll` on its own thread until told
//! to stop. The [`FirmwareReport`] returned on join carries the firmware's final counters.

use crate::shm::{map, ShmError, ShmRegion, WindowKind, WindowStats};
use splitrx_firmware::hal::{
    Clock, Dma, DmaError, DmaSegment, DmaTicket, Hal, HalParts, MacRx, MacTx, RxFrame,
    SharedMemory, TxError,
};
use splitrx_firmware::stats::{DEV_COUNT, Q_COUNT};
use splitrx_firmware::{Firmware, InitError};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the MAC receives from: a lending frame source.
pub trait Wire: Send {
    /// Moves to the next frame; `false` when there is none (yet, or any more: see
    /// [`Wire::finished`]).
    fn advance(&mut self) -> bool;
    /// The current frame (valid after `advance` returned `true`).
    fn frame(&self) -> &[u8];
    /// No frame will ever come again.
    fn finished(&self) -> bool;
}

/// Observable state of the wire, shared with whoever drives the run (progress bar, tests).
/// Not part of the datapath: the firmware never reads it.
#[derive(Debug, Default)]
pub struct WireCtl {
    /// The wire offers nothing until this is set (the host is still bringing queues up).
    pub start: AtomicBool,
    /// Stop offering frames (the wire ends after the current frame).
    pub stop: AtomicBool,
    /// Frames the MAC has handed to the firmware and got back (placed or dropped).
    pub offered: AtomicU64,
    /// Bytes of those frames.
    pub offered_bytes: AtomicU64,
    /// The wire ended and its last frame was released by the firmware.
    pub done: AtomicBool,
}

/// A wire that plays a list of frames (held in one flat buffer) over and over: a capture
/// replayed N times, or a generated workload. Optional pacing with a token bucket.
pub struct LoopWire {
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// Frames to offer in total (`None`: until stopped).
    limit: Option<u64>,
    /// Frames sent so far, and the index of the next one in `spans`.
    next: u64,
    pos: usize,
    cur: (usize, usize),
    ctl: Arc<WireCtl>,
    pace: Option<(crate::replay::TokenBucket, crate::replay::Rate, Instant)>,
    /// Link-level flow control (see [`FlowControl`]).
    flow: Option<FlowControl>,
    /// Times the wire was held by flow control.
    pub paused: u64,
}

impl std::fmt::Debug for LoopWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopWire")
            .field("frames", &self.spans.len())
            .field("next", &self.next)
            .field("limit", &self.limit)
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl LoopWire {
    /// `frames` played in order, wrapping around, `limit` frames in total (`None` = forever).
    pub fn new<F: AsRef<[u8]>>(frames: &[F], limit: Option<u64>, ctl: Arc<WireCtl>) -> LoopWire {
        let total: usize = frames.iter().map(|f| f.as_ref().len()).sum();
        let mut data = Vec::with_capacity(total);
        let mut spans = Vec::with_capacity(frames.len());
        for f in frames {
            let f = f.as_ref();
            spans.push((data.len(), f.len()));
            data.extend_from_slice(f);
        }
        LoopWire {
            data,
            spans,
            limit,
            next: 0,
            pos: 0,
            cur: (0, 0),
            ctl,
            pace: None,
            flow: None,
            paused: 0,
        }
    }
    /// Lossless mode: the link partner honours per-queue flow control (see [`FlowControl`]).
    pub fn with_flow_control(mut self, flow: FlowControl) -> LoopWire {
        self.flow = Some(flow);
        self
    }
    /// Paces the wire at `rate` (token bucket with the rate's default burst).
    pub fn with_rate(mut self, rate: crate::replay::Rate) -> LoopWire {
        // 10 ms of burst: the firmware thread may yield its core for a scheduler tick while
        // idle, and the wire should catch up afterwards rather than lose the time.
        let burst = (rate.per_sec() / 100).max(rate.default_burst());
        let bucket = crate::replay::TokenBucket::new(rate.per_sec(), burst, 0);
        self.pace = Some((bucket, rate, Instant::now()));
        self
    }
}

impl Wire for LoopWire {
    #[inline]
    fn advance(&mut self) -> bool {
        if !self.ctl.start.load(Ordering::Acquire) || self.spans.is_empty() || self.finished() {
            return false;
        }
        let i = self.pos;
        // Flow control first (it only looks), then pacing (takes tokens), then the frame
        // claims its buffers: a frame held by either is not charged twice.
        if let Some(f) = &mut self.flow {
            if !f.admit(i) {
                self.paused += 1;
                return false;
            }
        }
        let span = self.spans[i];
        if let Some((bucket, rate, t0)) = &mut self.pace {
            let now = t0.elapsed().as_nanos() as u64;
            if bucket.try_take(rate.cost(span.1), now).is_err() {
                return false;
            }
        }
        if let Some(f) = &mut self.flow {
            f.claim(i);
        }
        self.cur = span;
        self.next += 1;
        self.pos += 1;
        if self.pos == self.spans.len() {
            self.pos = 0;
        }
        true
    }
    #[inline]
    fn frame(&self) -> &[u8] {
        &self.data[self.cur.0..self.cur.0 + self.cur.1]
    }
    fn finished(&self) -> bool {
        self.spans.is_empty()
            || self.limit.is_some_and(|l| self.next >= l)
            || self.ctl.stop.load(Ordering::Relaxed)
    }
}

/// Priority flow control as the link partner sees it (like 802.1Qbb PFC with one priority per
/// RX queue): a frame for queue `q` is sent only while the receiver has advertised room for it.
/// The receiver advertises, per queue, the number of header and payload buffers it has posted
/// in total (minus buffers handed back by resets); every frame sent to `q` may use one of each,
/// so `posted - sent >= low` guarantees the frame a buffer. Frames that use no buffer of a kind
/// (unsplit frames: no payload buffer; frames the NIC must drop: none) are tagged so.
pub struct FlowControl {
    /// Per frame of the wire's list: (queue, uses a header buffer, uses a payload buffer).
    pub tags: Vec<(u16, bool, bool)>,
    /// Per queue: buffers posted in total (header, payload).
    pub posted: Box<dyn Fn(u16) -> (i64, i64) + Send>,
    /// Minimum room kept.
    pub low: i64,
    used: Vec<(i64, i64)>,
    /// Last advertised values read (re-read only when they do not admit a frame).
    seen: Vec<(i64, i64)>,
    /// When the current pause began. A pause longer than [`PAUSE_MAX`] is given up (the frame
    /// is sent; if the NIC has no buffer it drops it, counted): like a PFC watchdog, so that a
    /// receiver that never advertises credit again (an application holding every buffer, or
    /// credit lost to frames dropped during a queue reset) cannot stall the link forever.
    paused_since: Option<Instant>,
    /// Pauses given up by the watchdog.
    pub watchdog: u64,
}

/// Longest flow-control pause before the watchdog sends anyway.
pub const PAUSE_MAX: Duration = Duration::from_millis(100);

impl std::fmt::Debug for FlowControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowControl")
            .field("low", &self.low)
            .field("used", &self.used)
            .finish()
    }
}

impl FlowControl {
    pub fn new(
        tags: Vec<(u16, bool, bool)>,
        queues: u16,
        low: i64,
        posted: Box<dyn Fn(u16) -> (i64, i64) + Send>,
    ) -> FlowControl {
        FlowControl {
            tags,
            posted,
            low,
            used: vec![(0, 0); queues as usize],
            seen: vec![(0, 0); queues as usize],
            paused_since: None,
            watchdog: 0,
        }
    }
    #[inline]
    fn admit(&mut self, i: usize) -> bool {
        let Some(&(q, h, p)) = self.tags.get(i) else {
            return true;
        };
        let (Some(used), Some(seen)) = (self.used.get(q as usize), self.seen.get_mut(q as usize))
        else {
            return true;
        };
        let short =
            |s: &(i64, i64)| (h && s.0 - used.0 < self.low) || (p && s.1 - used.1 < self.low);
        if short(seen) {
            // Advertised credit only grows (resets aside): re-read it only when needed.
            *seen = (self.posted)(q);
            if short(seen) {
                let since = *self.paused_since.get_or_insert_with(Instant::now);
                if since.elapsed() < PAUSE_MAX {
                    return false;
                }
                self.watchdog += 1;
            }
        }
        self.paused_since = None;
        true
    }
    /// Frame `i` is sent: it may use one buffer of each kind it is tagged with.
    #[inline]
    fn claim(&mut self, i: usize) {
        let Some(&(q, h, p)) = self.tags.get(i) else {
            return;
        };
        if let Some(used) = self.used.get_mut(q as usize) {
            used.0 += h as i64;
            used.1 += p as i64;
        }
    }
}

/// The MAC: lends the wire's current frame to the firmware.
#[derive(Debug)]
pub struct SimMac<W: Wire> {
    wire: W,
    ctl: Arc<WireCtl>,
    has: bool,
    offered: u64,
    bytes: u64,
    ts_ns: u64,
    t0: Instant,
}

impl<W: Wire> SimMac<W> {
    pub fn new(wire: W, ctl: Arc<WireCtl>) -> SimMac<W> {
        SimMac {
            wire,
            ctl,
            has: false,
            offered: 0,
            bytes: 0,
            ts_ns: 0,
            t0: Instant::now(),
        }
    }
}

impl<W: Wire> MacRx for SimMac<W> {
    #[inline]
    fn peek(&mut self) -> Option<RxFrame<'_>> {
        if !self.has {
            if !self.wire.advance() {
                if self.wire.finished() {
                    self.ctl.done.store(true, Ordering::Release);
                }
                return None;
            }
            self.has = true;
            if self.offered.is_multiple_of(256) {
                self.ts_ns = self.t0.elapsed().as_nanos() as u64;
            }
        }
        Some(RxFrame {
            data: self.wire.frame(),
            timestamp_ns: self.ts_ns,
        })
    }
    #[inline]
    fn release(&mut self) {
        if self.has {
            self.has = false;
            self.offered += 1;
            self.bytes += self.wire.frame().len() as u64;
            self.ctl.offered.store(self.offered, Ordering::Relaxed);
            self.ctl.offered_bytes.store(self.bytes, Ordering::Relaxed);
        }
    }
}

/// The transmit side: frames are counted and discarded.
#[derive(Debug, Default)]
pub struct SimTx {
    pub frames: u64,
    pub bytes: u64,
}

impl MacTx for SimTx {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        if frame.len() > crate::traffic::MAX_FRAME {
            return Err(TxError::TooLong);
        }
        self.frames += 1;
        self.bytes += frame.len() as u64;
        Ok(())
    }
}

/// One DMA window: a bus range and the board's own mapping of it.
#[derive(Debug)]
struct DmaWindow {
    bus: u64,
    len: u64,
    ptr: NonNull<u8>,
    kind: WindowKind,
    writes: u64,
    bytes: u64,
    _region: Arc<ShmRegion>,
}

/// The DMA engine: a synchronous copy per segment into the board's own mappings. Tickets
/// complete at once. A segment must lie entirely inside one window, else the write fails
/// (counted) and the rest of it is not written.
///
/// (The datapath copy is the simulation's physical limit, so the engine keeps its hot path to
/// a range check and one `memcpy`; counters are plain integers of the firmware thread.)
#[derive(Debug)]
pub struct SimDmaEngine {
    windows: Vec<DmaWindow>,
    next: u32,
    failed: Option<u32>,
    faults: u64,
}

// SAFETY: the pointers are into mappings owned (through `_region`) by the engine itself; the
// engine is used by one thread at a time (it moves to the firmware thread once).
unsafe impl Send for SimDmaEngine {}

impl SimDmaEngine {
    fn new(regions: &[(WindowKind, Arc<ShmRegion>)]) -> SimDmaEngine {
        SimDmaEngine {
            windows: regions
                .iter()
                .map(|(kind, r)| DmaWindow {
                    bus: r.bus_base(),
                    len: r.len() as u64,
                    ptr: r.as_ptr(),
                    kind: *kind,
                    writes: 0,
                    bytes: 0,
                    _region: r.clone(),
                })
                .collect(),
            next: 0,
            failed: None,
            faults: 0,
        }
    }
    /// Writes and bytes per window kind.
    pub fn stats(&self, kind: WindowKind) -> WindowStats {
        self.windows
            .iter()
            .filter(|w| w.kind == kind)
            .fold(WindowStats::default(), |a, w| WindowStats {
                writes: a.writes + w.writes,
                bytes_written: a.bytes_written + w.bytes,
                ..a
            })
    }
    /// Rejected writes.
    pub fn faults(&self) -> u64 {
        self.faults
    }
    #[inline(always)]
    fn copy(&mut self, bus: u64, data: &[u8]) -> bool {
        for w in &mut self.windows {
            let Some(off) = bus.checked_sub(w.bus) else {
                continue;
            };
            if off > w.len || data.len() as u64 > w.len - off {
                continue;
            }
            // SAFETY: `[off, off + len)` is inside the window's mapping (checked above, without
            // overflow); the mapping is a shared file no Rust reference points into, and the
            // source is the MAC's frame buffer, which cannot overlap it.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    data.as_ptr(),
                    w.ptr.as_ptr().add(off as usize),
                    data.len(),
                )
            };
            w.writes += 1;
            w.bytes += data.len() as u64;
            return true;
        }
        self.faults += 1;
        false
    }
}

impl Dma for SimDmaEngine {
    const MAX_SEGMENTS: usize = 4;
    #[inline]
    fn write(&mut self, segs: &[DmaSegment<'_>]) -> Result<DmaTicket, DmaError> {
        if segs.len() > Self::MAX_SEGMENTS {
            return Err(DmaError::TooManySegments);
        }
        self.next = self.next.wrapping_add(1);
        // A failed segment ends the write (the firmware then reuses the buffers, which the
        // host has not been told about).
        for s in segs {
            if !self.copy(s.bus_addr, s.data) {
                self.failed = Some(self.next);
                return Err(DmaError::Bus);
            }
        }
        Ok(DmaTicket(self.next))
    }
    #[inline]
    fn poll(&mut self, t: DmaTicket) -> Result<bool, DmaError> {
        if self.failed == Some(t.0) {
            return Err(DmaError::Bus);
        }
        Ok(true)
    }
}

/// The shared-memory windows, as the firmware sees them: its own mappings.
#[derive(Debug)]
pub struct SimMem {
    regions: Vec<Arc<ShmRegion>>,
}

// SAFETY: `translate` returns pointers into mappings held by `self.regions` (kept alive as
// long as `self`), after `ShmRegion::translate`'s overflow-safe range check. The memory is a
// shared file mapping no Rust code holds references into (ShmRegion only ever copies through
// raw pointers).
unsafe impl SharedMemory for SimMem {
    fn translate(&mut self, bus_addr: u64, len: usize) -> Option<NonNull<u8>> {
        self.regions.iter().find_map(|r| r.translate(bus_addr, len))
    }
}

/// The clock: nanoseconds since the board was created.
#[derive(Debug)]
pub struct SimClock(Instant);

impl Clock for SimClock {
    fn now_ns(&mut self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// The sim board's HAL, over a wire `W`.
#[derive(Debug)]
pub struct SimHal<W>(std::marker::PhantomData<W>);

impl<W: Wire> Hal for SimHal<W> {
    type Rx = SimMac<W>;
    type Tx = SimTx;
    type Dma = SimDmaEngine;
    type Mem = SimMem;
    type Clock = SimClock;
}

/// Why the board did not come up.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("mapping a shared-memory file: {0}")]
    Shm(#[from] ShmError),
    #[error("the firmware refused the control region: {0:?}")]
    Init(InitError),
    #[error("the firmware thread exited during bring-up")]
    Thread,
}

/// The firmware's counters when it stopped.
#[derive(Clone, Debug)]
pub struct FirmwareReport {
    pub device: [u64; DEV_COUNT],
    /// Per queue id (`None`: the queue did not exist at the end).
    pub queues: Vec<Option<[u64; Q_COUNT]>>,
    /// Frames the MAC offered (placed or dropped).
    pub mac_offered: u64,
    pub mac_bytes: u64,
    /// DMA bytes written into the host-memory window and into the device BAR.
    pub dma_host: WindowStats,
    pub dma_bar: WindowStats,
    pub dma_faults: u64,
    /// Busy/idle polls of the firmware loop.
    pub polls_busy: u64,
    pub polls_idle: u64,
    pub run_time: Duration,
}

/// The files the board maps: the host memory window and the emulated GPU BAR.
#[derive(Clone, Debug)]
pub struct BoardConfig {
    pub host_window: PathBuf,
    pub gpu_bar: PathBuf,
    /// Bus address of the control region (inside the host window) and its length.
    pub ctrl_bus: u64,
    pub ctrl_len: u64,
}

/// A running sim board: the firmware on its own thread.
#[derive(Debug)]
pub struct SimBoard {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<FirmwareReport>>,
    /// Base addresses of the board's own mappings (host window, GPU BAR), for checking that
    /// the firmware does not use the host's mappings.
    pub mapping_bases: [usize; 2],
}

fn open(path: &Path, bus: u64) -> Result<Arc<ShmRegion>, ShmError> {
    ShmRegion::open(path, bus).map(Arc::new)
}

impl SimBoard {
    /// Maps the files, brings the firmware up on the control region, and runs it on a new
    /// thread fed by `wire`. Returns once the firmware accepted the control region.
    pub fn spawn<W: Wire + 'static>(
        cfg: &BoardConfig,
        wire: W,
        ctl: Arc<WireCtl>,
    ) -> Result<SimBoard, BoardError> {
        let host = open(&cfg.host_window, map::HOST_MEM_BUS_BASE)?;
        let bar = open(&cfg.gpu_bar, map::GPU_BAR_BUS_BASE)?;
        let mapping_bases = [
            host.as_ptr().as_ptr() as usize,
            bar.as_ptr().as_ptr() as usize,
        ];
        // The two windows are at fixed, disjoint bus ranges of the board's memory map.
        let dma = SimDmaEngine::new(&[
            (WindowKind::HostMemory, host.clone()),
            (WindowKind::DeviceBar, bar.clone()),
        ]);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Result<(), InitError>>();
        let (ctrl_bus, ctrl_len) = (cfg.ctrl_bus, cfg.ctrl_len);
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sim-firmware".into())
            .spawn(move || {
                let parts = HalParts::<SimHal<W>> {
                    rx: SimMac::new(wire, ctl),
                    tx: SimTx::default(),
                    dma,
                    mem: SimMem {
                        regions: vec![host, bar],
                    },
                    clock: SimClock(Instant::now()),
                };
                let t0 = Instant::now();
                let mut fw = match Firmware::new(parts, ctrl_bus, ctrl_len) {
                    Ok(fw) => {
                        let _ = tx.send(Ok(()));
                        fw
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return empty_report();
                    }
                };
                let (mut busy, mut idle, mut spins) = (0u64, 0u64, 0u32);
                loop {
                    if fw.poll() {
                        busy += 1;
                        spins = 0;
                        continue;
                    }
                    idle += 1;
                    if stop2.load(Ordering::Acquire) {
                        break;
                    }
                    spins += 1;
                    if spins < 128 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                let mut queues = Vec::new();
                for id in 0..splitrx_firmware::config::MAX_QUEUES as u16 {
                    queues.push(fw.queue_stats(id).map(|s| s.0));
                }
                let mac = &fw.hal().rx;
                FirmwareReport {
                    device: fw.device_stats().0,
                    queues,
                    mac_offered: mac.offered,
                    mac_bytes: mac.bytes,
                    dma_host: fw.hal().dma.stats(WindowKind::HostMemory),
                    dma_bar: fw.hal().dma.stats(WindowKind::DeviceBar),
                    dma_faults: fw.hal().dma.faults(),
                    polls_busy: busy,
                    polls_idle: idle,
                    run_time: t0.elapsed(),
                }
            })
            .map_err(|_| BoardError::Thread)?;
        match rx.recv() {
            Ok(Ok(())) => Ok(SimBoard {
                stop,
                thread: Some(thread),
                mapping_bases,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(BoardError::Init(e))
            }
            Err(_) => {
                let _ = thread.join();
                Err(BoardError::Thread)
            }
        }
    }

    /// Stops the firmware loop and returns its final counters.
    pub fn stop(mut self) -> Option<FirmwareReport> {
        self.stop.store(true, Ordering::Release);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for SimBoard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn empty_report() -> FirmwareReport {
    FirmwareReport {
        device: [0; DEV_COUNT],
        queues: Vec::new(),
        mac_offered: 0,
        mac_bytes: 0,
        dma_host: WindowStats::default(),
        dma_bar: WindowStats::default(),
        dma_faults: 0,
        polls_busy: 0,
        polls_idle: 0,
        run_time: Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;

    fn wire(frames: &[&[u8]], limit: Option<u64>) -> (LoopWire, Arc<WireCtl>) {
        let ctl = Arc::new(WireCtl::default());
        (LoopWire::new(frames, limit, ctl.clone()), ctl)
    }

    #[test]
    fn loop_wire_waits_for_start_repeats_and_ends_at_the_limit() {
        let (mut w, ctl) = wire(&[b"aa", b"bbb"], Some(5));
        assert!(!w.advance(), "nothing before start");
        assert!(!w.finished());
        ctl.start.store(true, Ordering::Release);
        let mut got = Vec::new();
        while w.advance() {
            got.push(w.frame().to_vec());
        }
        assert_eq!(got, [&b"aa"[..], b"bbb", b"aa", b"bbb", b"aa"]);
        assert!(w.finished());
        let (mut w, ctl) = wire(&[b"x"], None);
        ctl.start.store(true, Ordering::Release);
        assert!(w.advance() && w.advance());
        ctl.stop.store(true, Ordering::Relaxed);
        assert!(!w.advance() && w.finished());
    }

    #[test]
    fn mac_lends_the_same_frame_until_release_and_counts() {
        let (w, ctl) = wire(&[b"one", b"two!"], Some(2));
        ctl.start.store(true, Ordering::Release);
        let mut mac = SimMac::new(w, ctl.clone());
        assert_eq!(mac.peek().unwrap().data, b"one");
        assert_eq!(mac.peek().unwrap().data, b"one");
        mac.release();
        assert_eq!(mac.peek().unwrap().data, b"two!");
        mac.release();
        mac.release(); // no frame: no effect
        assert!(mac.peek().is_none());
        assert_eq!(ctl.offered.load(Ordering::Relaxed), 2);
        assert_eq!(ctl.offered_bytes.load(Ordering::Relaxed), 7);
        assert!(ctl.done.load(Ordering::Acquire));
    }

    #[test]
    fn flow_control_sends_only_frames_with_a_posted_buffer() {
        // Frame 0 -> queue 0 (header + payload), frame 1 -> queue 1 (header only).
        let posted = Arc::new([AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)]);
        let p = posted.clone();
        let fc = FlowControl::new(
            vec![(0, true, true), (1, true, false)],
            2,
            1,
            Box::new(move |q| match q {
                0 => (p[0].load(Ordering::Relaxed), p[1].load(Ordering::Relaxed)),
                _ => (p[2].load(Ordering::Relaxed), 0),
            }),
        );
        let (w, ctl) = wire(&[b"q0", b"q1"], None);
        let mut w = w.with_flow_control(fc);
        ctl.start.store(true, Ordering::Release);
        assert!(!w.advance(), "queue 0 has no buffer");
        posted[0].store(1, Ordering::Relaxed);
        assert!(
            !w.advance(),
            "queue 0 has a header buffer but no payload buffer"
        );
        posted[1].store(1, Ordering::Relaxed);
        assert!(w.advance() && w.frame() == b"q0");
        assert!(!w.advance(), "queue 1 has no buffer");
        posted[2].store(1, Ordering::Relaxed);
        assert!(w.advance() && w.frame() == b"q1");
        assert!(
            !w.advance(),
            "queue 0's single buffer was claimed by frame 0"
        );
        assert!(w.paused >= 4);
    }

    #[test]
    fn flow_control_watchdog_gives_up_a_pause() {
        let fc = FlowControl::new(vec![(0, true, false)], 1, 1, Box::new(|_| (0, 0)));
        let (w, ctl) = wire(&[b"f"], None);
        let mut w = w.with_flow_control(fc);
        ctl.start.store(true, Ordering::Release);
        assert!(!w.advance());
        let end = Instant::now() + Duration::from_secs(10);
        while !w.advance() {
            assert!(Instant::now() < end, "watchdog never fired");
        }
        assert_eq!(w.flow.as_ref().map(|f| f.watchdog), Some(1));
    }

    #[test]
    fn dma_engine_writes_inside_windows_only() {
        let host = Arc::new(ShmRegion::create_temp("dmatest", PAGE_TEST, 0x10_000).unwrap());
        let mut dma = SimDmaEngine::new(&[(WindowKind::HostMemory, host.clone())]);
        let t = dma
            .write(&[DmaSegment {
                bus_addr: 0x10_000 + 8,
                data: b"hello",
            }])
            .unwrap();
        assert_eq!(dma.poll(t), Ok(true));
        let mut out = [0u8; 5];
        assert!(host.read(0x10_008, &mut out));
        assert_eq!(&out, b"hello");
        // One byte past the end, below the window, and an overflowing address: refused.
        for bus in [0x10_000 + PAGE_TEST as u64 - 4, 0xfff0, u64::MAX - 2] {
            let r = dma.write(&[DmaSegment {
                bus_addr: bus,
                data: b"hello",
            }]);
            assert_eq!(r, Err(DmaError::Bus));
        }
        assert_eq!(dma.faults(), 3);
        let s = dma.stats(WindowKind::HostMemory);
        assert_eq!((s.writes, s.bytes_written), (1, 5));
        let segs = [DmaSegment {
            bus_addr: 0x10_000,
            data: b"x",
        }; 5];
        assert_eq!(dma.write(&segs), Err(DmaError::TooManySegments));
    }

    const PAGE_TEST: usize = crate::shm::PAGE;
}
