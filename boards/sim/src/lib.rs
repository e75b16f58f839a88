//! The sim board: the firmware and the host run in one process on separate threads and share
//! only mapped memory.
//!
//! Firmware side (the board's HAL):
//! - [`board`]: the firmware HAL in-process (MAC over a [`wire::Wire`], DMA engine and shared
//!   memory over the board's own mappings) and [`board::SimBoard`], the firmware thread, which
//!   boots from the bootstrap mailbox like firmware on real hardware;
//! - [`wire`]: what the MAC receives from: a looping frame list, with pacing ([`pace`]) and
//!   PFC-like per-queue flow control metered by the host's posted buffers;
//! - [`shm`]: file-backed shared-memory regions with bus addresses, and the board's memory map;
//! - [`traffic`]: deterministic synthetic frames with ground truth (`--synthetic SPEC`).
//!
//! Host side: [`seam`] implements the host library's board seam
//! ([`splitrx_host::seam::BoardSeam`]) for the sim, and [`seam::SimHw`] powers a board up.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

pub mod board;
pub mod pace;
pub mod seam;
pub mod shm;
pub mod traffic;
pub mod wire;
