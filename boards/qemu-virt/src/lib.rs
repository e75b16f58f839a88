//! The qemu-virt board, host side (the image itself is `image/`, its own workspace).
//!
//! - [`board`]: `board.toml` (the windows' bus addresses and PCI slots, QEMU's machine);
//! - [`qemu`]: [`qemu::QemuHw`], a powered-up board: three shared-memory files (host window,
//!   emulated GPU BAR, board page), QEMU running the image with them as `ivshmem-plain`
//!   devices and a virtio-net NIC on a datagram socket, started and stopped with timeouts and
//!   never left running (killed on drop, and by the kernel if this process dies);
//! - [`seam`]: [`seam::QemuSeam`], the host library's [`splitrx_host::seam::BoardSeam`] for it;
//! - [`vm`]: [`vm::Vm`], a QEMU process killed on drop and by the kernel if its owner dies
//!   (also the harness's rxe guest's);
//! - [`log`]: the image's `defmt` log (PL011 UART, written to a file by QEMU), decoded with
//!   `defmt-decoder`.

pub mod board;
pub mod log;
pub mod qemu;
pub mod seam;
pub mod vm;
