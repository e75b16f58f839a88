//! The rest of the HAL: the windows ([`Windows`]: bus address = physical address, identity
//! mapped, checked against the BARs `pci` assigned), the DMA engine ([`CpuDma`]) and the clock.
//!
//! **DMA is a CPU copy on this machine**: QEMU's virt machine has no DMA engine a bare-metal
//! image could drive into an ivshmem BAR, so `write` copies each segment with the core and the
//! write has landed when `write` returns. On a SmartNIC this is the board's DMA engine.

use crate::virtio::VirtioNet;
use core::ptr::NonNull;
use splitrx_firmware::hal::{Clock, Dma, DmaError, DmaSegment, DmaTicket, Hal, SharedMemory};

/// The windows the host shares with the firmware: (bus base, length) of each assigned BAR.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    pub win: [(u64, u64); 2],
}

impl Windows {
    /// The pointer for `[bus, bus + len)` when it lies inside one window.
    #[inline]
    fn find(&self, bus: u64, len: usize) -> Option<NonNull<u8>> {
        let end = bus.checked_add(len as u64)?;
        self.win
            .iter()
            .find(|(b, l)| bus >= *b && end <= b + l)
            .and_then(|_| NonNull::new(bus as usize as *mut u8))
    }
}

// SAFETY: each window is a PCI BAR of an ivshmem device (a shared-memory file the host maps),
// assigned by `pci` and identity-mapped as normal memory by `boot`; it stays mapped while the
// image runs and is not memory any Rust reference points into.
unsafe impl SharedMemory for Windows {
    fn translate(&mut self, bus_addr: u64, len: usize) -> Option<NonNull<u8>> {
        self.find(bus_addr, len)
    }
}

/// DMA by CPU copy (see the module docs).
#[derive(Debug)]
pub struct CpuDma {
    pub windows: Windows,
    next: u32,
}

impl CpuDma {
    pub fn new(windows: Windows) -> CpuDma {
        CpuDma { windows, next: 0 }
    }
}

impl Dma for CpuDma {
    const MAX_SEGMENTS: usize = 4;
    #[inline]
    fn write(&mut self, segs: &[DmaSegment<'_>]) -> Result<DmaTicket, DmaError> {
        if segs.len() > Self::MAX_SEGMENTS {
            return Err(DmaError::TooManySegments);
        }
        // Check every segment before copying any: a failed write changes nothing.
        for s in segs {
            self.windows
                .find(s.bus_addr, s.data.len())
                .ok_or(DmaError::Bus)?;
        }
        for s in segs {
            let dst = self
                .windows
                .find(s.bus_addr, s.data.len())
                .ok_or(DmaError::Bus)?;
            marker!(0x66);
            // SAFETY: `dst..+len` is inside a shared window (checked above); the source is the
            // MAC's buffer, which never overlaps a window.
            unsafe { core::ptr::copy_nonoverlapping(s.data.as_ptr(), dst.as_ptr(), s.data.len()) };
            marker!(0x67);
        }
        self.next = self.next.wrapping_add(1);
        Ok(DmaTicket(self.next))
    }
    #[inline]
    fn poll(&mut self, _t: DmaTicket) -> Result<bool, DmaError> {
        // The copy is done when `write` returns; order it before the completion the firmware
        // publishes next (its ring commit is a release store as well).
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        Ok(true)
    }
    /// A DMA read (READ responses, atomics): a CPU copy out of the window, like `write`.
    fn read(&mut self, bus_addr: u64, out: &mut [u8]) -> Result<(), DmaError> {
        let src = self
            .windows
            .find(bus_addr, out.len())
            .ok_or(DmaError::Bus)?;
        // Order the copy after whatever the host published before the request arrived.
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        // SAFETY: `src..+len` is inside a shared window (checked by `find`); `out` is the
        // firmware's own buffer, which never overlaps a window.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}

/// Nanoseconds from the generic timer.
pub fn now_ns() -> u64 {
    let (c, f) = crate::boot::counter();
    (c as u128 * 1_000_000_000 / f.max(1) as u128) as u64
}

#[derive(Debug)]
pub struct Timer;

impl Clock for Timer {
    fn now_ns(&mut self) -> u64 {
        now_ns()
    }
}

/// The board's HAL: virtio-net RX and TX (one device, two queues), CPU-copy DMA, the windows.
pub struct Board;

impl Hal for Board {
    type Rx = VirtioNet;
    type Tx = crate::virtio::VirtioTx;
    type Dma = CpuDma;
    type Mem = Windows;
    type Clock = Timer;
}
