//! The sim board: the firmware and the host run in one process on separate threads and share
//! only mapped memory (issue 5). This crate holds the board's independent foundations:
//!
//! - [`traffic`]: deterministic synthetic frames with ground truth (`--synthetic SPEC`);
//! - [`replay`]: a pcap/pcapng replay source with loop count and token-bucket pacing;
//! - [`shm`]: file-backed shared-memory regions with bus addresses, and [`shm::SimDma`],
//!   a general DMA engine over registered windows;
//! - [`board`]: the firmware HAL in-process (MAC over a [`board::Wire`], DMA engine and shared
//!   memory over the board's own mappings) and [`board::SimBoard`], the firmware thread.
//!
//! [`firmware`] re-exports `splitrx-firmware` for the host side of the board (its counter
//! names and RSS), which depends on this crate, not on the firmware directly.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

pub mod board;
pub mod replay;
pub mod shm;
pub mod traffic;

pub use splitrx_firmware as firmware;
