//! The scenario harness: scenarios written once, run against any board.
//!
//! - [`target`]: what a board must offer the harness ([`target::Target`]: power up with
//!   windows sized for a device, play traffic on its wire, power down) — the firmware may be a
//!   thread, another process or another machine;
//! - [`sim`]: the in-process sim board as a target;
//! - [`qemu`]: the qemu-virt board (the firmware as an aarch64 image in QEMU) as a target;
//! - [`run`]: a source of frames through a target, end to end: the host device brought up
//!   over the target's seam, the verifier on every delivered frame, the report.
//!
//! The scenarios themselves are the integration tests in `tests/` (`e2e.rs`); they take a
//! target and assert exact bytes, exact counts per ownership state and exact drops.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod qemu;
pub mod run;
pub mod sim;
pub mod target;

use target::Target;

/// Names [`target_by_name`] knows.
pub const TARGETS: &[&str] = &["sim", "qemu"];

/// The target a name stands for (`sim`, `qemu`).
pub fn target_by_name(name: &str) -> Option<Box<dyn Target>> {
    match name {
        "sim" => Some(Box::new(sim::SimTarget::default())),
        "qemu" => Some(Box::new(qemu::QemuTarget)),
        _ => None,
    }
}
