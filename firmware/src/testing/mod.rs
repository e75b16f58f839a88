//! In-memory HAL fakes.
//!
//! The core (feature `testing`, `no_std`, builds for the ARM targets) runs the firmware on
//! target or on the host without a board:
//! - [`BusMemory`]: a bus address space; [`Windows`] implements it over caller-provided buffers
//!   (statics on target);
//! - [`FakeMem`] (SharedMemory) and [`FakeDma`] (copies into the bus memory, or only counts
//!   bytes for benchmarks) over any [`BusMemory`];
//! - [`SliceMac`] (frames from a caller-provided list), [`CountTx`], [`FakeClock`];
//! - [`WindowHal`]: the HAL made of them;
//! - [`roce`]: RoCEv2 request frames for the responder (one builder, over the responder's own
//!   emitter), and reading its responses.
//!
//! The `std` extras (feature `std`, module `host`, re-exported here) add Vec-backed arenas, a
//! queueing MAC and the [`Testbed`] driver used by the integration tests, fuzz targets and
//! benchmarks.

use crate::hal::{
    Clock, Dma, DmaError, DmaSegment, DmaTicket, Hal, MacRx, MacTx, RxFrame, SharedMemory, TxError,
};
use core::marker::PhantomData;
use core::ptr::NonNull;
use splitrx_shared::abi::{BufRef, FillDesc, RingKind, MAX_RINGS};
use splitrx_shared::region::RegionLayout;
use splitrx_shared::ring::ring_bytes;

#[cfg(any(test, feature = "std"))]
mod host;
pub mod roce;
#[cfg(any(test, feature = "std"))]
pub use host::*;

/// A bus address space the fakes read and write through raw pointers.
pub trait BusMemory {
    /// Pointer to `[bus, bus + len)` if the range lies in one piece of memory that stays valid
    /// while `self` (or a copy of it) lives.
    fn ptr(&self, bus: u64, len: usize) -> Option<NonNull<u8>>;
    /// Writes bytes at a bus address; `false` when unmapped.
    fn write(&self, bus: u64, data: &[u8]) -> bool {
        match self.ptr(bus, data.len()) {
            Some(p) => {
                // SAFETY: `ptr` promised `data.len()` valid bytes at `p`; `data` is a Rust
                // slice, which cannot alias memory only reached through raw pointers.
                unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), p.as_ptr(), data.len()) };
                true
            }
            None => false,
        }
    }
    /// Reads bytes at a bus address into `out`; `false` when unmapped.
    fn read_into(&self, bus: u64, out: &mut [u8]) -> bool {
        match self.ptr(bus, out.len()) {
            Some(p) => {
                // SAFETY: `ptr` promised `out.len()` valid bytes at `p`; `out` is a Rust slice,
                // which cannot alias memory only reached through raw pointers.
                unsafe { core::ptr::copy_nonoverlapping(p.as_ptr(), out.as_mut_ptr(), out.len()) };
                true
            }
            None => false,
        }
    }
}

/// One window of [`Windows`]: `len` bytes at `base`, seen at bus address `bus`.
#[derive(Clone, Copy, Debug)]
struct Window {
    bus: u64,
    base: NonNull<u8>,
    len: usize,
}

/// `N` caller-provided buffers, each at a bus address: the `no_std` bus memory. Copies share
/// the buffers (all access is through raw pointers), so one `Windows` can back both
/// [`FakeMem`] and [`FakeDma`]; none outlives the borrow `'a`.
#[derive(Clone, Copy, Debug)]
pub struct Windows<'a, const N: usize> {
    windows: [Window; N],
    _mem: PhantomData<&'a mut [u8]>,
}

impl<'a, const N: usize> Windows<'a, N> {
    /// Maps each buffer at its bus address. From here on the buffers are only reached through
    /// the windows (the borrow lasts as long as they do).
    pub fn new(buffers: [(u64, &'a mut [u8]); N]) -> Self {
        Windows {
            windows: buffers.map(|(bus, b)| Window {
                bus,
                len: b.len(),
                base: NonNull::from(b).cast(),
            }),
            _mem: PhantomData,
        }
    }
}

impl<const N: usize> BusMemory for Windows<'_, N> {
    fn ptr(&self, bus: u64, len: usize) -> Option<NonNull<u8>> {
        self.windows.iter().find_map(|w| {
            let off = bus.checked_sub(w.bus)?;
            let end = off.checked_add(len as u64)?;
            if end > w.len as u64 {
                return None;
            }
            // SAFETY: off + len <= w.len, so the pointer stays inside the window's buffer.
            Some(unsafe { NonNull::new_unchecked(w.base.as_ptr().add(off as usize)) })
        })
    }
}

/// SharedMemory over a [`BusMemory`].
#[derive(Debug)]
pub struct FakeMem<M: BusMemory> {
    pub mem: M,
}

// SAFETY: a BusMemory's pointers stay valid while it (here: `self.mem`) lives, and its memory
// is only reached through raw pointers (Memory's arenas, or the buffers Windows borrowed).
unsafe impl<M: BusMemory> SharedMemory for FakeMem<M> {
    fn translate(&mut self, bus_addr: u64, len: usize) -> Option<NonNull<u8>> {
        self.mem.ptr(bus_addr, len)
    }
}

/// DMA engine fake: copies into a [`BusMemory`] (or, with `copy == false`, only counts).
#[derive(Debug)]
pub struct FakeDma<M: BusMemory> {
    pub mem: M,
    pub copy: bool,
    pub writes: u64,
    pub bytes: u64,
    /// Reads ([`Dma::read`]) and the bytes they read.
    pub reads: u64,
    pub read_bytes: u64,
    /// Fail the next N writes (and reads) with `DmaError::Bus`.
    pub fail_next: u32,
    /// Every (bus_addr, len) written, when `log` is set.
    #[cfg(any(test, feature = "std"))]
    pub log: Option<std::vec::Vec<(u64, usize)>>,
    next: u32,
}

impl<M: BusMemory> FakeDma<M> {
    pub fn new(mem: M, copy: bool) -> FakeDma<M> {
        FakeDma {
            mem,
            copy,
            writes: 0,
            bytes: 0,
            reads: 0,
            read_bytes: 0,
            fail_next: 0,
            #[cfg(any(test, feature = "std"))]
            log: None,
            next: 0,
        }
    }
}

impl<M: BusMemory> Dma for FakeDma<M> {
    const MAX_SEGMENTS: usize = 4;
    fn write(&mut self, segs: &[DmaSegment<'_>]) -> Result<DmaTicket, DmaError> {
        if segs.len() > Self::MAX_SEGMENTS {
            return Err(DmaError::TooManySegments);
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Err(DmaError::Bus);
        }
        for s in segs {
            if self.copy && !self.mem.write(s.bus_addr, s.data) {
                return Err(DmaError::Bus);
            }
            #[cfg(any(test, feature = "std"))]
            if let Some(l) = &mut self.log {
                l.push((s.bus_addr, s.data.len()));
            }
            self.bytes += s.data.len() as u64;
        }
        self.writes += 1;
        self.next = self.next.wrapping_add(1);
        Ok(DmaTicket(self.next))
    }
    #[inline]
    fn poll(&mut self, _t: DmaTicket) -> Result<bool, DmaError> {
        Ok(true)
    }
    /// Copies out of the bus memory (with `copy == false`: leaves `out` as it is, only
    /// counts). `fail_next` fails reads too.
    fn read(&mut self, bus_addr: u64, out: &mut [u8]) -> Result<(), DmaError> {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Err(DmaError::Bus);
        }
        if self.copy && !self.mem.read_into(bus_addr, out) {
            return Err(DmaError::Bus);
        }
        self.reads += 1;
        self.read_bytes += out.len() as u64;
        Ok(())
    }
}

/// MAC fake over a caller-provided list of frames, delivered in order (RX timestamps 1000 ns
/// apart).
#[derive(Debug, Default)]
pub struct SliceMac<'a> {
    pub frames: &'a [&'a [u8]],
    /// Index of the next frame.
    pub next: usize,
}

impl MacRx for SliceMac<'_> {
    fn peek(&mut self) -> Option<RxFrame<'_>> {
        self.frames.get(self.next).map(|f| RxFrame {
            data: f,
            timestamp_ns: self.next as u64 * 1000,
        })
    }
    fn release(&mut self) {
        self.next = (self.next + 1).min(self.frames.len());
    }
}

/// Transmit fake that only counts.
#[derive(Debug, Default)]
pub struct CountTx {
    pub frames: u64,
    pub bytes: u64,
}

impl MacTx for CountTx {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        self.frames += 1;
        self.bytes += frame.len() as u64;
        Ok(())
    }
}

/// A clock that advances 1 ns per reading.
#[derive(Debug, Default)]
pub struct FakeClock {
    pub now: u64,
}

impl Clock for FakeClock {
    fn now_ns(&mut self) -> u64 {
        self.now += 1;
        self.now
    }
}

/// The `no_std` fake HAL: MAC `R`, DMA and shared memory over [`Windows`].
#[derive(Debug)]
pub struct WindowHal<'a, R, const N: usize>(PhantomData<(R, Windows<'a, N>)>);

impl<'a, R: MacRx, const N: usize> Hal for WindowHal<'a, R, N> {
    type Rx = R;
    type Tx = CountTx;
    type Dma = FakeDma<Windows<'a, N>>;
    type Mem = FakeMem<Windows<'a, N>>;
    type Clock = FakeClock;
}

/// Lays out a region at `bus` the way the host does ([`RegionLayout`]): writes its
/// QueueHeader and initialises the rings. Returns the ring base pointers, in `rings` order.
/// Panics (test helper) when the layout is refused or does not fit `mem`.
pub fn lay_out_region<M: BusMemory + ?Sized>(
    mem: &M,
    bus: u64,
    len: u64,
    queue_id: u16,
    rings: &[(RingKind, u32)],
) -> heapless::Vec<NonNull<u8>, MAX_RINGS> {
    let l = RegionLayout::new(queue_id, rings).expect("region layout");
    assert!(l.size <= len, "rings do not fit the region");
    let base = mem
        .ptr(bus, len as usize)
        .expect("region inside the bus memory");
    // SAFETY: `ptr` checked that `len` bytes at `base` lie in live memory (regions are placed
    // at aligned bus addresses); no ring handle exists yet.
    unsafe { l.init(base, len as usize) }.expect("region init");
    l.header.rings[..rings.len()]
        .iter()
        .map(|r| {
            let bytes = ring_bytes(r.capacity.get(), r.entry_size.get() as usize) as usize;
            mem.ptr(bus + r.offset.get(), bytes)
                .expect("ring inside the bus memory")
        })
        .collect()
}

/// A registered pool, host view.
#[derive(Clone, Copy, Debug)]
pub struct HostPool {
    pub id: u8,
    pub bus: u64,
    pub buf_size: u32,
    pub count: u32,
}

impl HostPool {
    pub fn desc(&self, i: u32) -> FillDesc {
        FillDesc::new(
            BufRef::new(self.id, i).unwrap(),
            self.bus + i as u64 * self.buf_size as u64,
            self.buf_size,
        )
    }
    pub fn addr(&self, b: BufRef) -> u64 {
        self.bus + b.index() as u64 * self.buf_size as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hal::HalParts;
    use crate::Firmware;
    use splitrx_shared::abi::{call, CtrlMsg, CtrlStatus, RingKind};
    use splitrx_shared::region::RegionLayout;

    /// The core fakes bring the firmware up over a caller-provided buffer, as on target.
    #[test]
    fn firmware_runs_over_caller_provided_windows() {
        #[repr(C, align(4096))]
        struct Page([u8; 16 << 10]);
        let mut buf = std::boxed::Box::new(Page([0; 16 << 10]));
        const BUS: u64 = 0x1_0000_0000;
        let w = Windows::new([(BUS, &mut buf.0[..])]);
        let l = RegionLayout::new(
            u16::MAX,
            &[(RingKind::CtrlRequest, 4), (RingKind::CtrlResponse, 4)],
        )
        .unwrap();
        let base = w.ptr(BUS, l.size as usize).unwrap();
        // SAFETY: the window is 4096-aligned and large enough; no ring handle exists yet, and
        // the host handles below are the only host-side producer and consumer.
        let (mut req, mut resp) = unsafe {
            l.init(base, l.size as usize).unwrap();
            (
                l.producer::<CtrlMsg>(base, RingKind::CtrlRequest).unwrap(),
                l.consumer::<CtrlMsg>(base, RingKind::CtrlResponse).unwrap(),
            )
        };
        let frames: [&[u8]; 1] = [&[0u8; 60]];
        let hal: HalParts<WindowHal<'_, SliceMac<'_>, 1>> = HalParts {
            rx: SliceMac {
                frames: &frames,
                next: 0,
            },
            tx: CountTx::default(),
            dma: FakeDma::new(w, true),
            mem: FakeMem { mem: w },
            clock: FakeClock::default(),
        };
        let mut fw = Firmware::new(hal, BUS, l.size).unwrap();
        assert!(req
            .push(&CtrlMsg::request::<call::GetVersion>(1, &[]))
            .unwrap());
        assert!(fw.poll());
        let r = resp.pop().unwrap().unwrap();
        assert_eq!(r.status(), Some(CtrlStatus::Ok));
        let v = r.resp_of::<call::GetVersion>().unwrap();
        assert_eq!(v.max_queues.get() as usize, crate::config::MAX_QUEUES);
        assert_eq!(
            fw.hal().rx.next,
            1,
            "the frame was taken (no queue: dropped)"
        );
    }
}
