//! `cargo xtask interop`: the interop tests alone — unmodified rdma-core and perftest tools in
//! the rxe guest (Linux soft-RoCE in QEMU x86_64) against splitrx's firmware on the sim board
//! and on qemu-virt, every payload byte checked (`tests/tests/rxe_guest.rs`, the tests whose
//! name says `splitrx`) — bounded in time, then the bandwidth table the perftest runs printed.
//!
//! The same tests also run in `cargo xtask test` (its rxe guest step runs every guest test).

use anyhow::{bail, Context, Result};
use std::time::{Duration, Instant};

/// The filter that selects the interop tests among the guest's: every test of
/// `tests/tests/rxe_guest.rs` against splitrx has it in its name.
pub const FILTER: &str = "splitrx";

/// How long the tests may take in all, once built (boots included). They take about 2.5
/// minutes on a 2-core machine shared with other work.
pub const LIMIT: Duration = Duration::from_secs(270);

/// Lines the tests print for the bandwidth table (`figures <board>: ...`).
const FIGURES: &str = "figures ";

/// `cargo xtask interop`.
pub fn cmd() -> Result<()> {
    let t0 = Instant::now();
    let guest = crate::rxe_guest::cmd()?.dir;
    crate::ensure_qemu("qemu-system-aarch64")?;
    crate::hil::build_image("qemu-virt")?;
    // Built first, so that the time limit counts the runs only.
    crate::run(crate::cargo().args([
        "test",
        "-p",
        "splitrx-harness",
        "--test",
        "rxe_guest",
        "--no-run",
        "--quiet",
    ]))?;
    let mut figures = Vec::new();
    let t1 = Instant::now();
    crate::run_tests_watched(
        crate::cargo()
            .env("SPLITRX_RXE_GUEST", &guest)
            .args(["test", "-p", "splitrx-harness", "--test", "rxe_guest"])
            .args(["--", "--ignored", "--test-threads=1", "--nocapture", FILTER]),
        Some(LIMIT),
        &mut |line| {
            if let Some(rest) = line.strip_prefix(FIGURES) {
                figures.push(rest.to_string());
            }
        },
    )
    .with_context(|| format!("the interop tests (limit {LIMIT:?})"))?;
    if figures.is_empty() {
        bail!("the interop tests printed no figures (were the perftest tests filtered out?)");
    }
    println!("\ninterop figures (perftest's own bandwidth lines; TCG speeds):");
    for f in &figures {
        println!("  {f}");
    }
    println!(
        "\nxtask interop: passed; tests {:.0?}, all {:.0?}",
        t1.elapsed(),
        t0.elapsed()
    );
    Ok(())
}
