//! The sim board proper: the firmware HAL implemented in-process, and the firmware thread.
//!
//! - [`SimMac`] ([`MacRx`]): frames come from a [`Wire`], lent to the firmware without a copy;
//! - [`SimTx`] ([`MacTx`]): counts every frame and hands it to the wire
//!   ([`WireCtl::transmit`]: the linked peer, or the log the harness takes them from);
//! - [`SimDmaEngine`] ([`Dma`]): synchronous scatter-gather copies into the board's **own**
//!   mappings of the shared-memory files, each range-checked against its window;
//! - [`SimMem`] ([`SharedMemory`]): bus ranges to pointers into the same mappings;
//! - [`SimClock`] ([`Clock`]): `Instant` since the board started.
//!
//! [`SimBoard::spawn`] maps the two files itself (a second, independent mapping of each: the
//! host and the firmware share nothing but the files' pages) and runs the firmware on its own
//! thread: `Firmware::boot` waits for the host's bootstrap mailbox, then `Firmware::poll` runs
//! until the board is told to stop. The [`FirmwareReport`] returned on join carries the firmware's final counters.

use crate::shm::{map, ShmError, ShmRegion, WindowKind, WindowStats};
use crate::wire::{Wire, WireCtl};
use splitrx_firmware::hal::{
    Clock, Dma, DmaError, DmaSegment, DmaTicket, Hal, HalParts, MacRx, MacTx, RxFrame,
    SharedMemory, TxError,
};
use splitrx_firmware::stats::{DEV_COUNT, Q_COUNT};
use splitrx_firmware::Firmware;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Stack of the firmware thread (virtual: only the pages the firmware touches are used).
pub const FIRMWARE_STACK: usize = 32 << 20;

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

/// The transmit side: frames are counted and logged for the peer ([`WireCtl::take_tx`]).
#[derive(Debug)]
pub struct SimTx {
    pub frames: u64,
    pub bytes: u64,
    ctl: Arc<WireCtl>,
}

impl SimTx {
    pub fn new(ctl: Arc<WireCtl>) -> SimTx {
        SimTx {
            frames: 0,
            bytes: 0,
            ctl,
        }
    }
}

impl MacTx for SimTx {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        if frame.len() > crate::traffic::MAX_FRAME {
            return Err(TxError::TooLong);
        }
        self.frames += 1;
        self.bytes += frame.len() as u64;
        // A full link socket holds the frame back (the firmware retries it).
        self.ctl.transmit(frame).map_err(|_| TxError::Busy)
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
    /// Copies `out.len()` bytes at `bus` out of the window holding them (the read half of the
    /// engine: RoCE READ responses and atomics).
    #[inline(always)]
    fn copy_out(&mut self, bus: u64, out: &mut [u8]) -> bool {
        for w in &self.windows {
            let Some(off) = bus.checked_sub(w.bus) else {
                continue;
            };
            if off > w.len || out.len() as u64 > w.len - off {
                continue;
            }
            // SAFETY: `[off, off + len)` is inside the window's mapping (checked above, without
            // overflow); the mapping is a shared file no Rust reference points into, and `out`
            // is firmware memory, which cannot overlap it.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    w.ptr.as_ptr().add(off as usize),
                    out.as_mut_ptr(),
                    out.len(),
                )
            };
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
    /// Synchronous: the copy is done when it returns (writes before it have landed).
    fn read(&mut self, bus_addr: u64, out: &mut [u8]) -> Result<(), DmaError> {
        if self.copy_out(bus_addr, out) {
            Ok(())
        } else {
            Err(DmaError::Bus)
        }
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
    #[error("the firmware thread could not be started")]
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
    /// Why the firmware did not run (it never attached a mailbox), if so.
    pub boot_error: Option<String>,
}

/// The files the board maps: the host memory window and the emulated GPU BAR. Their bus
/// addresses are the board's memory map ([`map`]); the firmware finds the control region
/// through the bootstrap mailbox at the start of the host window.
#[derive(Clone, Debug)]
pub struct BoardConfig {
    pub host_window: PathBuf,
    pub gpu_bar: PathBuf,
}

/// A running sim board: the firmware on its own thread.
#[derive(Debug)]
pub struct SimBoard {
    stop: Arc<AtomicBool>,
    /// Set by the firmware thread when it ends (with why, when it ends on its own).
    exited: Arc<std::sync::Mutex<Option<String>>>,
    thread: Option<JoinHandle<FirmwareReport>>,
    /// Base addresses of the board's own mappings (host window, GPU BAR), for checking that
    /// the firmware does not use the host's mappings.
    pub mapping_bases: [usize; 2],
}

fn open(path: &Path, bus: u64) -> Result<Arc<ShmRegion>, ShmError> {
    ShmRegion::open(path, bus).map(Arc::new)
}

impl SimBoard {
    /// Maps the files (the board's own mappings) and starts the firmware on a new thread fed
    /// by `wire`. The firmware boots like on hardware: it waits for the host to post the
    /// bootstrap mailbox at [`map::HOST_MEM_BUS_BASE`], then serves the control region it
    /// names (see [`Firmware::boot`]).
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
        let exited = Arc::new(std::sync::Mutex::new(None));
        let (stop2, exited2) = (stop.clone(), exited.clone());
        let thread = std::thread::Builder::new()
            .name("sim-firmware".into())
            // The firmware's tables (cap-host: ~0.5 MB, the RoCE QP table most of it) live
            // on this thread's stack and are moved while it boots: give it room.
            .stack_size(FIRMWARE_STACK)
            .spawn(move || {
                let parts = HalParts::<SimHal<W>> {
                    tx: SimTx::new(ctl.clone()),
                    rx: SimMac::new(wire, ctl),
                    dma,
                    mem: SimMem {
                        regions: vec![host, bar],
                    },
                    clock: SimClock(Instant::now()),
                };
                let t0 = Instant::now();
                let report = match Firmware::boot(parts, map::HOST_MEM_BUS_BASE, || {
                    if stop2.load(Ordering::Acquire) {
                        return false;
                    }
                    std::thread::yield_now();
                    true
                }) {
                    Ok(fw) => run(fw, &stop2, t0),
                    Err(e) => FirmwareReport {
                        boot_error: Some(format!("{e:?}")),
                        ..empty_report()
                    },
                };
                let why = report
                    .boot_error
                    .clone()
                    .unwrap_or_else(|| "stopped".into());
                *exited2.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
                report
            })
            .map_err(|_| BoardError::Thread)?;
        Ok(SimBoard {
            stop,
            exited,
            thread: Some(thread),
            mapping_bases,
        })
    }

    /// `Ok` while the firmware thread runs; why it ended otherwise.
    pub fn alive(&self) -> Result<(), String> {
        self.alive_handle().alive()
    }

    /// A handle that answers [`SimBoard::alive`] from anywhere (the host seam holds one).
    pub fn alive_handle(&self) -> AliveHandle {
        AliveHandle(self.exited.clone())
    }

    /// Stops the firmware loop and returns its final counters.
    pub fn stop(mut self) -> Option<FirmwareReport> {
        self.stop.store(true, Ordering::Release);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

/// Whether a [`SimBoard`]'s firmware thread still runs (see [`SimBoard::alive`]).
#[derive(Clone, Debug)]
pub struct AliveHandle(Arc<std::sync::Mutex<Option<String>>>);

impl AliveHandle {
    pub fn alive(&self) -> Result<(), String> {
        match &*self.0.lock().unwrap_or_else(|p| p.into_inner()) {
            None => Ok(()),
            Some(why) => Err(format!("the sim firmware thread ended ({why})")),
        }
    }
}

/// The firmware's main loop: poll until told to stop; then its counters. The stop flag is
/// also read every 1024 busy polls: a wire that never runs dry (an endless one whose test
/// failed before ending it) must not keep the board alive and its owner's `drop` waiting.
fn run<W: Wire>(mut fw: Firmware<SimHal<W>>, stop: &AtomicBool, t0: Instant) -> FirmwareReport {
    let (mut busy, mut idle, mut spins) = (0u64, 0u64, 0u32);
    loop {
        if fw.poll() {
            busy += 1;
            spins = 0;
            if busy.is_multiple_of(1024) && stop.load(Ordering::Acquire) {
                break;
            }
            continue;
        }
        idle += 1;
        if stop.load(Ordering::Acquire) {
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
        boot_error: None,
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
        boot_error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::wire;

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
