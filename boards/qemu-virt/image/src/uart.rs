//! `defmt` over the PL011 UART: the global logger frames each log record with defmt's encoder
//! (rzcobs) and writes the bytes to the UART's data register, polling the TX-full flag. QEMU
//! writes the UART to a file the host side decodes with `defmt-decoder`.

use crate::board;
use core::sync::atomic::{AtomicBool, Ordering};

const DR: usize = 0x00;
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

fn putc(b: u8) {
    let base = board::UART as usize;
    // SAFETY: the PL011's registers at the board's UART address, mapped as device memory.
    unsafe {
        while core::ptr::read_volatile((base + FR) as *const u32) & FR_TXFF != 0 {}
        core::ptr::write_volatile((base + DR) as *mut u32, b as u32);
    }
}

fn write_all(bytes: &[u8]) {
    bytes.iter().copied().for_each(putc);
}

#[defmt::global_logger]
struct Logger;

static TAKEN: AtomicBool = AtomicBool::new(false);
static mut ENCODER: defmt::Encoder = defmt::Encoder::new();

fn encoder() -> *mut defmt::Encoder {
    &raw mut ENCODER
}

// SAFETY: one core, no interrupts: `acquire`/`release` bracket every use of ENCODER, and a
// nested acquire (logging from a panic inside a log call) is refused.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        // Plain load/store: one core, no interrupt handlers that log.
        if TAKEN.load(Ordering::Relaxed) {
            crate::boot::exit(4);
        }
        TAKEN.store(true, Ordering::Relaxed);
        // SAFETY: the logger is held (TAKEN) by this caller only.
        unsafe { (*encoder()).start_frame(write_all) }
    }
    unsafe fn flush() {}
    unsafe fn release() {
        // SAFETY: the caller holds the logger (defmt's contract).
        unsafe { (*encoder()).end_frame(write_all) };
        TAKEN.store(false, Ordering::Relaxed);
    }
    unsafe fn write(bytes: &[u8]) {
        // SAFETY: the caller holds the logger (defmt's contract).
        unsafe { (*encoder()).write(bytes, write_all) }
    }
}

defmt::timestamp!("{=u64:us}", {
    let (c, f) = crate::boot::counter();
    (c as u128 * 1_000_000 / f.max(1) as u128) as u64
});
