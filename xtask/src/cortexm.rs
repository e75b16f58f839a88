//! The Cortex-M board (`boards/mps2-an500`): on-target tests under QEMU, the probe-rs checks,
//! `cargo xtask flash`, and the image's size.
//!
//! The ARM images and `xtask/runner` (probe-rs, defmt-decoder) are workspaces of their own,
//! built here: the runner runs an image under QEMU (timeout, defmt decoded) or on a board
//! through a debug probe.

use super::{cargo, project_root, run, run_tests, step, FAILED, PASSED};
use crate::boards::{self, Board};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;

/// Seconds one on-target test image may run under QEMU before it is killed.
const QEMU_TIMEOUT_SECS: u64 = 120;

/// Where a separate workspace builds (`$CARGO_TARGET_DIR/<name>`, or `<root>/target/<name>`).
fn target_dir(name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join("target"))
        .join(name)
}

/// The boards built for a Cortex-M target (`thumbv*`) that ship an image crate.
fn cortex_m_boards() -> Result<Vec<Board>> {
    Ok(boards::load(&project_root())?
        .into_iter()
        .filter(|b| b.target.starts_with("thumbv") && b.dir.join("memory.x").exists())
        .collect())
}

/// The host's split decision for every capture frame, written by the shared crate's
/// `write_target_split_blob` test for the on-target agreement test to link.
fn split_blob() -> Result<PathBuf> {
    let blob = target_dir("images").join("split.blob");
    std::fs::create_dir_all(blob.parent().context("images dir")?)?;
    run(super::capture_writer("write_target_split_blob").env("SPLITRX_SPLIT_BLOB", &blob))?;
    Ok(blob)
}

/// Runs `cargo <args> --message-format=json-render-diagnostics` in a board's workspace and
/// returns the executables it produced: the test binaries (`tests`), or the images.
fn board_cargo(b: &Board, blob: &Path, args: &[&str], tests: bool) -> Result<Vec<PathBuf>> {
    let mut c = cargo();
    c.current_dir(&b.dir)
        .env("CARGO_TARGET_DIR", target_dir(&b.name))
        .env("SPLITRX_SPLIT_BLOB", blob)
        .args(args)
        .args(["--release", "--message-format=json-render-diagnostics"])
        .stdout(Stdio::piped());
    let mut child = c
        .spawn()
        .with_context(|| format!("could not start {c:?}"))?;
    let out = child.stdout.take().context("no stdout pipe")?;
    let mut exes = Vec::new();
    for line in BufReader::new(out).lines() {
        let v: serde_json::Value = match serde_json::from_str(&line?) {
            Ok(v) => v,
            Err(_) => continue,
        };
        let is_test = v.pointer("/profile/test").and_then(|t| t.as_bool()) == Some(true);
        if let (Some(exe), true) = (
            v.get("executable").and_then(|e| e.as_str()),
            is_test == tests,
        ) {
            exes.push(PathBuf::from(exe));
        }
    }
    if !child.wait()?.success() {
        bail!("building {} failed: {c:?}", b.dir.display());
    }
    Ok(exes)
}

/// Builds `xtask/runner` (once; probe-rs is in it) and returns its binary.
fn runner() -> Result<PathBuf> {
    let dir = target_dir("runner");
    run(cargo()
        .current_dir(project_root().join("xtask/runner"))
        .env("CARGO_TARGET_DIR", &dir)
        .args(["build", "--quiet"]))?;
    Ok(dir.join("debug/splitrx-runner"))
}

/// The two steps `cargo xtask test` and `cargo xtask on-target` run.
pub fn test_steps() -> Result<()> {
    step("format check (Cortex-M board crates, runner)", || {
        let mut dirs = vec![project_root().join("xtask/runner")];
        dirs.extend(cortex_m_boards()?.into_iter().map(|b| b.dir));
        dirs.iter()
            .try_for_each(|d| run(cargo().current_dir(d).args(["fmt", "--check"])))
    })?;
    step(
        "Cortex-M on-target tests (QEMU mps2-an500)",
        on_target_tests,
    )?;
    step(
        "probe-rs: board descriptions, image plans, no-probe flash",
        probe_checks,
    )
}

/// `cargo xtask test`'s on-target step: every Cortex-M board's tests (defmt-test images)
/// under QEMU, each with a timeout; their results join the suite's pass/fail counts.
pub fn on_target_tests() -> Result<()> {
    let boards = cortex_m_boards()?;
    if boards.is_empty() {
        bail!("no Cortex-M board with an image crate under boards/");
    }
    let blob = split_blob()?;
    let runner = runner()?;
    for b in &boards {
        let q = b.qemu.as_ref().context("board has no [qemu] table")?;
        crate::ensure_qemu(&q.binary)?;
        let tests = board_cargo(b, &blob, &["test", "--no-run"], true)?;
        if tests.is_empty() {
            bail!("{}: no on-target test images were built", b.name);
        }
        for t in tests {
            run_on_qemu(&runner, q, &t)?;
        }
    }
    Ok(())
}

/// Runs one defmt-test image under QEMU through the runner, echoing its decoded log, and
/// counts its tests: each `(i/n) running` line is a test, the last one started failed unless
/// the image printed `all tests passed!` and exited 0.
fn run_on_qemu(runner: &Path, q: &boards::Qemu, elf: &Path) -> Result<()> {
    let name = elf
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('-').map(|(a, _)| a))
        .unwrap_or("?")
        .to_string();
    println!("on target ({}): {name}", q.machine);
    let mut c = Command::new(runner);
    c.args(["qemu", "--binary", &q.binary, "--machine", &q.machine])
        .args(["--timeout", &QEMU_TIMEOUT_SECS.to_string()]);
    if let Some(cpu) = &q.cpu {
        c.args(["--cpu", cpu]);
    }
    if let Some(m) = q.memory_mib {
        c.args(["--memory-mib", &m.to_string()]);
    }
    c.arg(elf).stdout(Stdio::piped());
    let mut child = c
        .spawn()
        .with_context(|| format!("could not start {c:?}"))?;
    let out = child.stdout.take().context("no stdout pipe")?;
    let (mut started, mut all_passed) = (0u64, false);
    for line in BufReader::new(out).lines() {
        let line = line?;
        println!("  {line}");
        if line.contains(") running `") {
            started += 1;
        }
        if line.trim_end() == "all tests passed!" {
            all_passed = true;
        }
    }
    let status = child.wait()?;
    if status.success() && all_passed {
        PASSED.fetch_add(started, Relaxed);
        println!("test result: ok. {started} passed; 0 failed (on target: {name})");
        Ok(())
    } else {
        let passed = started.saturating_sub(1);
        PASSED.fetch_add(passed, Relaxed);
        FAILED.fetch_add(1, Relaxed);
        bail!("on-target test {name} failed ({status}); {passed} of its tests passed before it")
    }
}

/// `cargo xtask test`'s probe-rs step: the runner's tests (every board's probe-rs description
/// loaded and validated, each image planned against its memory map, `flash` without a probe)
/// against freshly built board images.
pub fn probe_checks() -> Result<()> {
    let blob = split_blob()?;
    let images = target_dir("images");
    for b in cortex_m_boards()?.iter().filter(|b| b.probe != "none") {
        let exe = image(b, &blob, &[])?;
        std::fs::copy(&exe, images.join(format!("{}.elf", b.name)))?;
    }
    run_tests(
        cargo()
            .current_dir(project_root().join("xtask/runner"))
            .env("CARGO_TARGET_DIR", target_dir("runner"))
            .env("SPLITRX_BOARD_IMAGES", &images)
            .args(["test"]),
    )
}

/// Builds a board's image (`cargo build --release` with extra `args`).
fn image(b: &Board, blob: &Path, args: &[&str]) -> Result<PathBuf> {
    let mut a = vec!["build", "--bins"];
    a.extend_from_slice(args);
    board_cargo(b, blob, &a, false)?
        .into_iter()
        .next()
        .context("the board crate built no image")
}

/// `cargo xtask flash --board B`: builds B's image with RTT logging and hands it to the
/// runner (probe-rs: attach, download, reset, defmt over RTT, semihosting exit code). Fails
/// with the runner's message when no probe is attached.
pub fn flash(board: &str, selector: Option<&str>) -> Result<()> {
    let all = boards::load(&project_root())?;
    let Some(b) = all.iter().find(|b| b.name == board) else {
        let names: Vec<&str> = all.iter().map(|b| b.name.as_str()).collect();
        bail!("no board `{board}` (boards: {})", names.join(", "));
    };
    if b.probe == "none" {
        bail!("board `{board}` has no probe-rs description (probe = \"none\"): nothing to flash");
    }
    let blob = split_blob()?;
    let exe = image(b, &blob, &["--no-default-features", "--features", "rtt"])?;
    let mut c = Command::new(runner()?);
    c.args(["flash", "--board-dir"])
        .arg(&b.dir)
        .args(["--probe", &b.probe]);
    if let Some(s) = selector {
        c.args(["--selector", s]);
    }
    let status = c
        .arg(exe)
        .status()
        .with_context(|| format!("could not start {c:?}"))?;
    if !status.success() {
        // The runner said why (no probe: exit status 2); pass its status on.
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

/// text/data/bss of every Cortex-M board image and its on-target test images (for `cargo
/// xtask size`), with the size of the capture blob the image's `.rodata` carries.
pub fn image_sizes() -> Result<()> {
    let blob = split_blob()?;
    for b in cortex_m_boards()? {
        let exe = image(&b, &blob, &[])?;
        println!(
            "{} image ({}; .rodata holds the {}-byte capture blob):",
            b.name,
            b.target,
            std::fs::metadata(&blob)?.len()
        );
        println!("{}", super::elf_size(&exe)?);
        // The on-target test images: `datapath` links the firmware library (cap-cortex-m).
        for t in board_cargo(&b, &blob, &["test", "--no-run"], true)? {
            println!("{} test image {}:", b.name, t.display());
            println!("{}", super::elf_size(&t)?);
        }
    }
    Ok(())
}
