//! PCI through ECAM: find the ivshmem-plain devices at the slots `board.toml` names, size
//! their BARs and assign them the board's fixed addresses (the host learns the same addresses
//! from the same file), then enable memory decoding. No firmware runs before us: every BAR is
//! ours to assign.

use crate::board;

/// Red Hat / QEMU's ivshmem (`ivshmem-plain`).
const IVSHMEM: u32 = 0x1110_1af4;
const COMMAND: usize = 0x04;
const BAR0: usize = 0x10;
const BAR2: usize = 0x18;
const CMD_MEMORY: u32 = 1 << 1;

fn cfg(slot: u8, reg: usize) -> *mut u32 {
    (board::ECAM as usize + ((slot as usize) << 15) + reg) as *mut u32
}
fn rd(slot: u8, reg: usize) -> u32 {
    // SAFETY: ECAM configuration space of bus 0, mapped as device memory.
    unsafe { core::ptr::read_volatile(cfg(slot, reg)) }
}
fn wr(slot: u8, reg: usize, v: u32) {
    // SAFETY: as in `rd`.
    unsafe { core::ptr::write_volatile(cfg(slot, reg), v) }
}

/// Why a window could not be set up.
#[derive(Clone, Copy, Debug, defmt::Format)]
pub enum PciError {
    /// No ivshmem device at the slot.
    Missing(u8),
    /// Its shared-memory BAR is larger than the board's window (`len` in board.toml).
    TooLarge(u8),
}

/// Assigns the ivshmem device at `slot` its shared-memory BAR (BAR2, 64-bit) at `bus` and its
/// register BAR (BAR0) in the 32-bit window; returns the BAR's size.
pub fn map_ivshmem(slot: u8, bus: u64, max_len: u64) -> Result<u64, PciError> {
    if rd(slot, 0) != IVSHMEM {
        return Err(PciError::Missing(slot));
    }
    wr(slot, COMMAND, rd(slot, COMMAND) & !CMD_MEMORY);
    // Size BAR2/3 (a 64-bit memory BAR): write all ones, read the mask back.
    wr(slot, BAR2, 0xffff_ffff);
    wr(slot, BAR2 + 4, 0xffff_ffff);
    let mask = (rd(slot, BAR2) as u64 & !0xf) | ((rd(slot, BAR2 + 4) as u64) << 32);
    let size = (!mask).wrapping_add(1);
    if size == 0 || size > max_len {
        return Err(PciError::TooLarge(slot));
    }
    wr(slot, BAR2, bus as u32);
    wr(slot, BAR2 + 4, (bus >> 32) as u32);
    // The 256-byte register BAR: one 4 KiB slot per device in the 32-bit window, so it never
    // decodes at 0.
    wr(slot, BAR0, board::PCI_MMIO32 as u32 + ((slot as u32) << 12));
    wr(slot, COMMAND, rd(slot, COMMAND) | CMD_MEMORY);
    Ok(size)
}
