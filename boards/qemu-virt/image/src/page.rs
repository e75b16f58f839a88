//! The board page: a 4 KiB ivshmem window where the board layer (not the firmware) publishes
//! its boot stage and MAC counters for the host-side board crate (`boards/qemu-virt/src`),
//! which uses them to tell when the MAC has taken every frame the wire sent. Little-endian u64
//! fields at fixed offsets, written down once in `boards/qemu-virt/contract.rs`.

use core::sync::atomic::{AtomicU64, Ordering};

include!("../../contract.rs");

static BASE: AtomicU64 = AtomicU64::new(0);

/// Uses the page at `addr` (its BAR, assigned by `pci`).
pub fn init(addr: u64) {
    BASE.store(addr, Ordering::Relaxed);
    set(F_MAGIC, MAGIC);
}

pub fn set(field: usize, v: u64) {
    let base = BASE.load(Ordering::Relaxed);
    if base == 0 {
        return;
    }
    // SAFETY: `base` is the board page's BAR (4 KiB, mapped normal memory); `field` < 512.
    unsafe { core::ptr::write_volatile((base as *mut u64).add(field), v.to_le()) }
}

pub fn set_stage(stage: u64) {
    set(F_STAGE, stage);
}
