//! Code-size probe: the firmware with a dummy HAL on thumbv7em-none-eabihf. See README.md.
#![no_std]
#![no_main]

use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};
use splitrx_firmware::hal::{
    Clock, Dma, DmaError, DmaSegment, DmaTicket, Hal, HalParts, MacRx, MacTx, RxFrame,
    SharedMemory, TxError,
};
use splitrx_firmware::Firmware;

/// Dummy "device registers": volatile accesses keep the code paths alive.
const MMIO: usize = 0x4000_0000;
const SHARED_BASE: usize = 0x6000_0000;
const SHARED_LEN: usize = 16 << 20;
static mut FRAME: [u8; 2048] = [0; 2048];

fn reg(off: usize) -> u32 {
    // SAFETY: a dummy MMIO address on the (not really existing) board; only linked, never run.
    unsafe { ptr::read_volatile((MMIO + off) as *const u32) }
}
fn set_reg(off: usize, v: u32) {
    // SAFETY: as in `reg`.
    unsafe { ptr::write_volatile((MMIO + off) as *mut u32, v) }
}

struct Rx;
impl MacRx for Rx {
    fn peek(&mut self) -> Option<RxFrame<'_>> {
        let len = reg(0) as usize;
        if len == 0 || len > 2048 {
            return None;
        }
        // SAFETY: the MAC "DMA'd" the frame into FRAME; single-threaded probe.
        let data = unsafe { &*ptr::addr_of!(FRAME) };
        Some(RxFrame {
            data: &data[..len],
            timestamp_ns: reg(4) as u64,
        })
    }
    fn release(&mut self) {
        set_reg(0, 0);
    }
}

struct Tx;
impl MacTx for Tx {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        set_reg(8, frame.as_ptr() as u32);
        set_reg(12, frame.len() as u32);
        Ok(())
    }
}

struct Engine;
impl Dma for Engine {
    const MAX_SEGMENTS: usize = 2;
    fn write(&mut self, segs: &[DmaSegment<'_>]) -> Result<DmaTicket, DmaError> {
        for s in segs {
            set_reg(16, s.bus_addr as u32);
            set_reg(20, (s.bus_addr >> 32) as u32);
            set_reg(24, s.data.as_ptr() as u32);
            set_reg(28, s.data.len() as u32);
        }
        Ok(DmaTicket(reg(32)))
    }
    fn poll(&mut self, t: DmaTicket) -> Result<bool, DmaError> {
        match reg(36) {
            0xffff_ffff => Err(DmaError::Bus),
            done => Ok(done.wrapping_sub(t.0) as i32 >= 0),
        }
    }
    fn read(&mut self, bus_addr: u64, out: &mut [u8]) -> Result<(), DmaError> {
        set_reg(44, bus_addr as u32);
        set_reg(48, (bus_addr >> 32) as u32);
        set_reg(52, out.as_mut_ptr() as u32);
        set_reg(56, out.len() as u32);
        // Bounded wait for the (dummy) engine's read-done register.
        for _ in 0..1_000_000 {
            match reg(60) {
                0 => core::hint::spin_loop(),
                0xffff_ffff => return Err(DmaError::Bus),
                _ => return Ok(()),
            }
        }
        Err(DmaError::Timeout)
    }
}

struct Windows;
// SAFETY: the probe's single window is a fixed (dummy) address range that is never freed.
unsafe impl SharedMemory for Windows {
    fn translate(&mut self, bus_addr: u64, len: usize) -> Option<NonNull<u8>> {
        let off = bus_addr.checked_sub(0x1_0000_0000)? as usize;
        if off.checked_add(len)? > SHARED_LEN {
            return None;
        }
        NonNull::new((SHARED_BASE + off) as *mut u8)
    }
}

struct Timer;
impl Clock for Timer {
    fn now_ns(&mut self) -> u64 {
        reg(40) as u64 * 1000
    }
}

struct Board;
impl Hal for Board {
    type Rx = Rx;
    type Tx = Tx;
    type Dma = Engine;
    type Mem = Windows;
    type Clock = Timer;
}

static mut FW: MaybeUninit<Firmware<Board>> = MaybeUninit::uninit();

#[no_mangle]
pub extern "C" fn _start() -> ! {
    let hal = HalParts {
        rx: Rx,
        tx: Tx,
        dma: Engine,
        mem: Windows,
        clock: Timer,
    };
    let Ok(fw) = Firmware::new(hal, 0x1_0000_0000, 64 << 10) else {
        loop {}
    };
    // SAFETY: single-threaded start-up; FW is written once here and only used below.
    let fw = unsafe { (*ptr::addr_of_mut!(FW)).write(fw) };
    loop {
        if !fw.poll() {
            set_reg(44, 1); // wait for interrupt
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Static RAM of the firmware's tables on this target with the Cortex-M capacity profile, for
/// `docs/firmware.md` (`llvm-objdump -s -j .rodata` shows them): whole firmware, one RX queue,
/// one pool, the RSS tables, the control plane, the tables without the HAL (`TABLES_RAM`).
#[no_mangle]
#[used]
pub static FW_SIZES: [u32; 6] = [
    core::mem::size_of::<Firmware<Board>>() as u32,
    core::mem::size_of::<splitrx_firmware::datapath::RxQueue>() as u32,
    core::mem::size_of::<splitrx_firmware::pools::Pool>() as u32,
    core::mem::size_of::<splitrx_firmware::rss::Toeplitz>() as u32,
    core::mem::size_of::<splitrx_firmware::control::ControlPlane>() as u32,
    splitrx_firmware::TABLES_RAM as u32,
];
