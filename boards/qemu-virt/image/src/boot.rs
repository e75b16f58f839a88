//! Boot: the entry point, the exception vectors, FP/SIMD enable, the stack, `.bss` zeroing
//! (`global_asm!`), then the MMU (identity map: RAM and the PCI BAR windows as normal cacheable
//! memory, devices as Device-nGnRnE) so that Rust code may make unaligned and exclusive accesses
//! to RAM and to the shared-memory windows. Also the semihosting exit call.

use crate::board;
use core::arch::{asm, global_asm};

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    // Only core 0 runs (QEMU is started with one core); others would park here.
    mrs     x1, mpidr_el1
    and     x1, x1, #0xff
    cbnz    x1, 9f
    ldr     x1, =__stack_top
    mov     sp, x1
    // FP/SIMD at EL1 and EL0: CPACR_EL1.FPEN = 0b11 (Rust code uses the vector registers).
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    ldr     x1, =exception_vectors
    msr     vbar_el1, x1
    isb
    // Zero .bss (16-byte aligned bounds, from the linker script).
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  bl      rust_start
9:  wfe
    b       9b

    .macro VECTOR kind
    .balign 0x80
    mov     x0, #\kind
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       rust_exception
    .endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global exception_vectors
exception_vectors:
    VECTOR 0
    VECTOR 1
    VECTOR 2
    VECTOR 3
    VECTOR 4
    VECTOR 5
    VECTOR 6
    VECTOR 7
    VECTOR 8
    VECTOR 9
    VECTOR 10
    VECTOR 11
    VECTOR 12
    VECTOR 13
    VECTOR 14
    VECTOR 15
"#
);

/// Any exception is fatal (the firmware polls; nothing should trap): log it and exit QEMU.
#[no_mangle]
extern "C" fn rust_exception(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    defmt::error!(
        "exception: vector {=u64}, ESR {=u64:#x}, ELR {=u64:#x}, FAR {=u64:#x}",
        kind,
        esr,
        elr,
        far
    );
    crate::page::set_stage(crate::page::STAGE_FAULT);
    exit(3)
}

#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Level-0 table (two entries: 0..512 GiB, 512 GiB..1 TiB) and the two level-1 tables of 1 GiB
/// blocks below it.
static mut L0: Table = Table([0; 512]);
static mut L1_LOW: Table = Table([0; 512]);
static mut L1_HIGH: Table = Table([0; 512]);

/// MAIR_EL1 attribute indices.
const ATTR_DEVICE: u64 = 0; // Device-nGnRnE
const ATTR_NORMAL: u64 = 1; // Normal, write-back cacheable
const BLOCK: u64 = 0b01;
const TABLE: u64 = 0b11;
const AF: u64 = 1 << 10;
const INNER_SHAREABLE: u64 = 0b11 << 8;
const XN: u64 = (1 << 54) | (1 << 53);

const fn block(addr: u64, normal: bool) -> u64 {
    if normal {
        addr | BLOCK | AF | INNER_SHAREABLE | (ATTR_NORMAL << 2)
    } else {
        addr | BLOCK | AF | XN | (ATTR_DEVICE << 2)
    }
}

/// Identity-maps the 40-bit physical address space in 1 GiB blocks and turns the MMU and the
/// caches on. RAM and the 64-bit PCI MMIO window (the ivshmem BARs: shared-memory files) are
/// normal memory; everything else (UART, virtio-mmio, ECAM, the 32-bit PCI window) is device
/// memory.
///
/// # Safety
/// Called once, first thing, on the boot core with the MMU off.
pub unsafe fn enable_mmu() {
    const GIB: u64 = 1 << 30;
    let is_normal = |addr: u64| {
        (board::RAM..board::RAM + board::RAM_LEN).contains(&addr)
            || (board::PCI_MMIO64..board::PCI_MMIO64 + board::PCI_MMIO64_LEN).contains(&addr)
    };
    // SAFETY: single core, MMU off, nothing else uses the tables yet; raw pointers only.
    unsafe {
        let l0 = &raw mut L0;
        let lo = &raw mut L1_LOW;
        let hi = &raw mut L1_HIGH;
        for i in 0..512u64 {
            (*lo).0[i as usize] = block(i * GIB, is_normal(i * GIB));
            let a = 512 * GIB + i * GIB;
            (*hi).0[i as usize] = block(a, is_normal(a));
        }
        (*l0).0[0] = lo as u64 | TABLE;
        (*l0).0[1] = hi as u64 | TABLE;
        let mair: u64 = 0xff << (8 * ATTR_NORMAL); // attr 0 = 0x00: Device-nGnRnE
                                                   // T0SZ = 24 (40-bit VA, walk starts at level 0), 4 KiB granule, inner/outer
                                                   // write-back, inner shareable, IPS = 40 bits, EPD1 (no TTBR1 walks).
        let tcr: u64 = 24 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (0b010 << 32) | (1 << 23);
        asm!(
            "dsb sy",
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr}",
            "isb",
            "tlbi vmalle1",
            "dsb sy",
            "isb",
            "mrs {t}, sctlr_el1",
            // M (MMU), C (data cache), I (instruction cache); A (alignment check) off.
            "orr {t}, {t}, #0x1",
            "orr {t}, {t}, #0x4",
            "orr {t}, {t}, #0x1000",
            "bic {t}, {t}, #0x2",
            "msr sctlr_el1, {t}",
            "isb",
            mair = in(reg) mair,
            tcr = in(reg) tcr,
            ttbr = in(reg) l0 as u64,
            t = out(reg) _,
        );
    }
}

/// Ends the QEMU process with `code` through semihosting (`SYS_EXIT_EXTENDED`-style
/// `ADP_Stopped_ApplicationExit` block). QEMU runs with `-semihosting-config enable=on`.
pub fn exit(code: u32) -> ! {
    let block: [u64; 2] = [0x20026, code as u64];
    loop {
        // SAFETY: the semihosting call reads the two-word block and does not return when QEMU
        // honours it; otherwise it is retried (spinning is what a dead board does).
        unsafe {
            asm!(
                "hlt #0xf000",
                in("x0") 0x18u64,
                in("x1") block.as_ptr(),
                options(nostack)
            );
        }
    }
}

/// The generic timer's counter and frequency.
pub fn counter() -> (u64, u64) {
    let (cnt, frq): (u64, u64);
    // SAFETY: reading the virtual counter and its frequency has no side effect.
    unsafe {
        asm!("isb", "mrs {c}, cntvct_el0", "mrs {f}, cntfrq_el0", c = out(reg) cnt, f = out(reg) frq, options(nomem, nostack));
    }
    (cnt, frq)
}
