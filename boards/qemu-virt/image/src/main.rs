//! The splitrx firmware as a bare-metal aarch64 image for QEMU's `virt` machine (see
//! `boards/qemu-virt/README.md`). A thin board layer around the firmware library:
//!
//! - `boot`: entry, exception vectors, FP/SIMD, stack, `.bss`, MMU (identity map);
//! - `uart`: `defmt` logs over the PL011;
//! - `pci`: the ivshmem windows' BARs, assigned at the addresses `board.toml` names;
//! - `virtio`: the MAC (polled virtio-net, modern virtio-mmio);
//! - `hal`: windows, DMA (CPU copy), clock;
//! - `page`: the board page (boot stage, MAC counters) for the host-side board crate.
//!
//! Then the same sequence as every board: `Firmware::boot` waits for the host's bootstrap
//! mailbox at the start of the host window, and `Firmware::poll` runs forever.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// An instruction-count marker (feature `insn-markers`): `HINT #imm` with an unallocated
/// immediate, a NOP the CPU ignores and QEMU's libinsn plugin finds (`match=hint #0x6`). No
/// `nomem`: it is also a compiler barrier, so code does not move across it.
macro_rules! marker {
    ($imm:literal) => {
        #[cfg(feature = "insn-markers")]
        // SAFETY: a HINT in the unallocated space executes as a NOP.
        unsafe {
            core::arch::asm!(concat!("hint #", $imm), options(nostack, preserves_flags))
        }
    };
}

mod boot;
mod hal;
mod page;
mod pci;
mod uart;
mod virtio;

/// The board's addresses, generated from `board.toml` by `build.rs`.
#[allow(dead_code)]
mod board {
    include!(concat!(env!("OUT_DIR"), "/board.rs"));
}

use core::mem::MaybeUninit;
use splitrx_firmware::hal::HalParts;
use splitrx_firmware::Firmware;

static mut FW: MaybeUninit<Firmware<hal::Board>> = MaybeUninit::uninit();

#[no_mangle]
extern "C" fn rust_start() -> ! {
    // SAFETY: first thing on the boot core, MMU off.
    unsafe { boot::enable_mmu() };
    defmt::info!(
        "qemu-virt: boot (splitrx firmware {=str})",
        env!("CARGO_PKG_VERSION")
    );
    let page = pci::map_ivshmem(
        board::BOARD_PAGE_SLOT,
        board::BOARD_PAGE_BUS,
        board::BOARD_PAGE_LEN,
    );
    match page {
        Ok(_) => page::init(board::BOARD_PAGE_BUS),
        Err(e) => defmt::warn!("no board page: {}", e),
    }
    page::set_stage(page::STAGE_BOOTING);
    let fail = |code: u64| -> ! {
        page::set(page::F_BOOT_ERROR, code);
        page::set_stage(page::STAGE_BOOT_FAILED);
        boot::exit(2)
    };
    let host = match pci::map_ivshmem(
        board::HOST_WINDOW_SLOT,
        board::HOST_WINDOW_BUS,
        board::HOST_WINDOW_LEN,
    ) {
        Ok(len) => len,
        Err(e) => {
            defmt::error!("host window: {}", e);
            fail(1)
        }
    };
    let bar = match pci::map_ivshmem(board::GPU_BAR_SLOT, board::GPU_BAR_BUS, board::GPU_BAR_LEN) {
        Ok(len) => len,
        Err(e) => {
            defmt::error!("GPU BAR: {}", e);
            fail(2)
        }
    };
    defmt::info!(
        "host window {=u64:#x}+{=u64:#x}, GPU BAR {=u64:#x}+{=u64:#x}",
        board::HOST_WINDOW_BUS,
        host,
        board::GPU_BAR_BUS,
        bar
    );
    let (rx, tx) = match virtio::VirtioNet::probe() {
        Ok(v) => v,
        Err(e) => {
            defmt::error!("virtio-net: {}", e);
            fail(3)
        }
    };
    defmt::info!("virtio-net up, MAC {=[u8]:02x}", rx.mac);
    let windows = hal::Windows {
        win: [(board::HOST_WINDOW_BUS, host), (board::GPU_BAR_BUS, bar)],
    };
    let parts = HalParts::<hal::Board> {
        rx,
        tx,
        dma: hal::CpuDma::new(windows),
        mem: windows,
        clock: hal::Timer,
    };
    page::set_stage(page::STAGE_WAITING_HOST);
    let fw = match Firmware::boot(parts, board::HOST_WINDOW_BUS, || true) {
        Ok(fw) => fw,
        Err(e) => {
            defmt::error!("boot from the mailbox failed: {}", defmt::Debug2Format(&e));
            fail(4)
        }
    };
    let slot: *mut MaybeUninit<Firmware<hal::Board>> = &raw mut FW;
    // SAFETY: written once here, before the loop below is its only user.
    let fw = unsafe { (*slot).write(fw) };
    defmt::info!("attached to the host; polling");
    page::set_stage(page::STAGE_RUNNING);
    let (mut busy, mut idle) = (0u64, 0u64);
    loop {
        // Instruction counting: 0x60 .. 0x61 brackets a datapath call that took frames.
        // (Queues are created by the host later: switch their checksum verification off on
        // every turn, outside the marked window.)
        #[cfg(feature = "no-csum-verify")]
        fw.set_csum_offload(false);
        #[cfg(feature = "insn-markers")]
        {
            marker!(0x60);
            if fw.poll_rx() > 0 {
                marker!(0x61);
                busy += 1;
                continue;
            }
        }
        if fw.poll() {
            busy += 1;
        } else {
            idle += 1;
        }
        if (busy + idle).is_multiple_of(1024) {
            page::set(page::F_POLLS_BUSY, busy);
            page::set(page::F_POLLS_IDLE, idle);
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    page::set_stage(page::STAGE_FAULT);
    boot::exit(101)
}
