//! The board page: a 4 KiB ivshmem window where the board layer (not the firmware) publishes
//! its boot stage and MAC counters for the host-side board crate (`boards/qemu-virt/src`),
//! which uses them to tell when the MAC has taken every frame the wire sent. Little-endian u64
//! fields at fixed offsets (`page::*` there mirrors this list).

use core::sync::atomic::{AtomicU64, Ordering};

pub const MAGIC: u64 = 0x3150_4256_5152_5053; // "SPRQVBP1"
/// Field offsets (u64 each).
pub const F_MAGIC: usize = 0;
pub const F_STAGE: usize = 1;
pub const F_RX_FRAMES: usize = 2;
pub const F_RX_BYTES: usize = 3;
pub const F_FCS_ERRORS: usize = 4;
pub const F_TRUNCATED: usize = 5;
pub const F_TX_FRAMES: usize = 6;
pub const F_POLLS_BUSY: usize = 7;
pub const F_POLLS_IDLE: usize = 8;
pub const F_BOOT_ERROR: usize = 9;

pub const STAGE_BOOTING: u64 = 1;
pub const STAGE_WAITING_HOST: u64 = 2;
pub const STAGE_RUNNING: u64 = 3;
pub const STAGE_BOOT_FAILED: u64 = 4;
pub const STAGE_FAULT: u64 = 5;

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
