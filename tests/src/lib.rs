//! The scenario harness: scenarios written once, run against any board.
//!
//! - [`target`]: what a board must offer the harness ([`target::Target`]: power up with
//!   windows sized for a device, play traffic on its wire, power down) — the firmware may be a
//!   thread, another process or another machine;
//! - [`sim`]: the in-process sim board as a target;
//! - [`qemu`]: the qemu-virt board (the firmware as an aarch64 image in QEMU) as a target;
//! - [`roce`]: the RoCE oracle: a capture's requests replayed to the responder on a target,
//!   every response and placed byte checked against the captured responder;
//! - [`perftest`], [`pingpong`], [`rping`]: the server sides of perftest's and
//!   `ibv_rc_pingpong`'s out-of-band exchanges and of rping's READ/WRITE protocol, so
//!   unmodified tools can run against splitrx;
//! - [`interop`]: the byte check of an interop run: what crossed the link to a real RoCE peer
//!   against what the responder did to device memory;
//! - [`rxe`]: [`rxe::RxeGuest`], a Linux soft-RoCE (rxe) peer in a QEMU x86_64 VM (the guest
//!   built by `cargo xtask rxe-guest`), for interop with a real RDMA stack;
//! - [`run`]: a source of frames through a target, end to end: the host device brought up
//!   over the target's seam, the verifier on every delivered frame, the report.
//!
//! The scenarios themselves are the integration tests in `tests/` (`e2e.rs`); they take a
//! target and assert exact bytes, exact counts per ownership state and exact drops.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod craft;
pub mod interop;
pub mod perftest;
pub mod pingpong;
pub mod qemu;
pub mod roce;
pub mod rping;
pub mod run;
pub mod rxe;
pub mod sim;
pub mod sink;
pub mod target;

use target::Target;

/// Names [`target_by_name`] knows.
pub const TARGETS: &[&str] = &["sim", "qemu"];

/// The target a name stands for (`sim`, `qemu`).
pub fn target_by_name(name: &str) -> Option<Box<dyn Target>> {
    match name {
        "sim" => Some(Box::new(sim::SimTarget::default())),
        "qemu" => Some(Box::new(qemu::QemuTarget::default())),
        _ => None,
    }
}

/// The target a name stands for, its MAC linked to a real peer over UDP instead of playing
/// traffic (`local`: the board's end, `peer`: where its frames go; one datagram per frame,
/// QEMU's `-netdev dgram` framing): [`sim::SimTarget::link`], [`qemu::QemuTarget::link`].
pub fn linked_target_by_name(
    name: &str,
    local: std::net::SocketAddr,
    peer: std::net::SocketAddr,
) -> Option<Box<dyn Target + Send>> {
    let link = Some((local, peer));
    match name {
        "sim" => Some(Box::new(sim::SimTarget {
            link,
            ..Default::default()
        })),
        "qemu" => Some(Box::new(qemu::QemuTarget { link })),
        _ => None,
    }
}

/// The names in `SPLITRX_TARGETS` (comma-separated, default `sim`).
pub fn target_names_from_env() -> Vec<String> {
    let names = std::env::var("SPLITRX_TARGETS").unwrap_or_else(|_| "sim".into());
    names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect()
}

/// The targets the scenarios run on: `SPLITRX_TARGETS` (comma-separated names, default
/// `sim`). Panics on an unknown name (a test configuration error).
pub fn targets_from_env() -> Vec<Box<dyn Target>> {
    target_names_from_env()
        .iter()
        .map(|n| target_by_name(n).unwrap_or_else(|| panic!("unknown target `{n}`")))
        .collect()
}
