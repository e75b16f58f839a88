//! `cargo xtask build-image --board B` and `cargo xtask hil --target T`: the QEMU board's
//! image, and the harness scenarios (`tests/tests/e2e.rs`, `roce_e2e.rs`, `roce_host.rs`)
//! against a chosen target with a pass/fail table.

use crate::boards::{self, Board};
use crate::{cargo, project_root, run};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

/// The board named `name`, which must build an image (its folder has `image/Cargo.toml`).
fn image_board(name: &str) -> Result<Board> {
    let all = boards::load(&project_root())?;
    let names: Vec<String> = all.iter().map(|b| b.name.clone()).collect();
    let b = all
        .into_iter()
        .find(|b| b.name == name)
        .with_context(|| format!("no board `{name}` (boards: {})", names.join(", ")))?;
    if !b.dir.join("image/Cargo.toml").exists() {
        bail!("board `{name}` has no image crate (boards/{name}/image)");
    }
    Ok(b)
}

/// Builds board `name`'s image (release, its own workspace and target directory, so cargo's
/// own cache makes a rebuild without changes a no-op) and returns the ELF's path.
pub fn build_image(name: &str) -> Result<PathBuf> {
    let b = image_board(name)?;
    crate::ensure_rustup_target(&b.target)?;
    let dir = b.dir.join("image");
    run(cargo()
        .current_dir(&dir)
        .env_remove("CARGO_TARGET_DIR")
        .args(["build", "--release", "--quiet"]))?;
    let manifest: toml::Value = toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml"))?)?;
    let pkg = manifest
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .context("image/Cargo.toml has no package name")?;
    let elf = dir.join("target").join(&b.target).join("release").join(pkg);
    if !elf.exists() {
        bail!("{} was not built", elf.display());
    }
    println!("image: {}", elf.display());
    Ok(elf)
}

/// `cargo xtask size --board B` for an image board: text/data/bss of its image.
pub fn image_size(name: &str) -> Result<()> {
    let elf = build_image(name)?;
    println!("{}", crate::elf_size(&elf)?);
    Ok(())
}

/// USB vendor ids of common debug probes (CMSIS-DAP/DAPLink, SEGGER J-Link, ST-LINK, NXP
/// LPC-Link, WCH-Link, FTDI-based JTAG).
const PROBE_VENDORS: &[&str] = &["0d28", "1366", "0483", "1fc9", "1a86", "0403"];

/// Debug probes on the USB bus (by vendor id; without a probe library).
fn usb_probes() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/bus/usb/devices") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let p = e.ok()?.path();
        let v = std::fs::read_to_string(p.join("idVendor")).ok()?;
        let v = v.trim().to_string();
        PROBE_VENDORS.contains(&v.as_str()).then(|| {
            let prod = std::fs::read_to_string(p.join("product")).unwrap_or_default();
            format!("{v} {}", prod.trim())
        })
    })
    .collect()
}

/// One scenario's outcome.
struct Row {
    scenario: String,
    target: String,
    ok: bool,
}

/// Scenarios that drive the sim board directly (board-specific settings), not through
/// `SPLITRX_TARGETS`: run only for `sim`.
const SIM_ONLY: &[&str] =
    &["verification_reads_device_memory_through_the_target_when_it_is_not_mapped"];

/// Runs the scenarios on `target` (one at a time: a QEMU run wants both cores) and returns one
/// row per scenario: the RX scenarios (`e2e`), the RoCE capture replays (`roce_e2e`) and the
/// host RoCE API scenarios (`roce_host`).
fn scenarios_on(target: &str) -> Result<Vec<Row>> {
    let mut c = cargo();
    c.env("SPLITRX_TARGETS", target)
        .args([
            "test",
            "-p",
            "splitrx-harness",
            "--test",
            "e2e",
            "--test",
            "roce_e2e",
            "--test",
            "roce_host",
            "--",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped());
    if target != "sim" {
        for s in SIM_ONLY {
            c.args(["--skip", s]);
        }
    }
    let mut child = c
        .spawn()
        .with_context(|| format!("could not start {c:?}"))?;
    let out = child.stdout.take().context("no stdout pipe")?;
    let mut rows = Vec::new();
    for line in BufReader::new(out).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test ") {
            if let Some((name, verdict)) = rest.split_once(" ... ") {
                rows.push(Row {
                    scenario: name.to_string(),
                    target: target.to_string(),
                    ok: verdict.trim() == "ok",
                });
            }
        }
    }
    let status = child.wait()?;
    if rows.is_empty() && !status.success() {
        bail!("the scenarios did not run on {target} ({status})");
    }
    Ok(rows)
}

/// `cargo xtask hil --target T`: the scenarios against `sim`, `qemu` or `probe`, then a table.
pub fn hil(targets: &[String]) -> Result<()> {
    let mut rows = Vec::new();
    let t0 = Instant::now();
    for t in targets {
        match t.as_str() {
            "sim" => rows.extend(scenarios_on("sim")?),
            "qemu" => {
                build_image("qemu-virt")?;
                rows.extend(scenarios_on("qemu")?);
            }
            "probe" => {
                let found = usb_probes();
                if found.is_empty() {
                    eprintln!("xtask hil: --target probe: no debug probe attached (looked on the USB bus for CMSIS-DAP, J-Link, ST-LINK, LPC-Link, WCH-Link and FTDI probes)");
                    std::process::exit(2);
                }
                bail!(
                    "hil --target probe: found {} but the harness has no probe target yet (flashing is `cargo xtask flash`)",
                    found.join(", ")
                );
            }
            other => bail!("unknown HIL target `{other}` (sim, qemu, probe)"),
        }
    }
    print_table(&rows);
    let failed = rows.iter().filter(|r| !r.ok).count();
    println!(
        "hil: {} scenario runs, {} passed, {failed} failed in {:.0?}",
        rows.len(),
        rows.len() - failed,
        t0.elapsed()
    );
    if failed > 0 {
        bail!("{failed} scenario run(s) failed");
    }
    Ok(())
}

fn print_table(rows: &[Row]) {
    let w = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    println!("\n{:<w$}  {:<6}  result", "scenario", "target");
    println!("{:-<w$}  {:-<6}  ------", "", "");
    for r in rows {
        println!(
            "{:<w$}  {:<6}  {}",
            r.scenario,
            r.target,
            if r.ok { "pass" } else { "FAIL" }
        );
    }
}

/// QEMU's version line, if `qemu-system-aarch64` runs.
fn qemu_version() -> Option<String> {
    let out = std::process::Command::new("qemu-system-aarch64")
        .arg("--version")
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    })
}

/// The scenarios on QEMU for `cargo xtask test`: the image, then the e2e scenarios with
/// `SPLITRX_TARGETS=qemu` (and the qemu-virt crate's own tests, which need the image).
pub fn test_qemu() -> Result<()> {
    crate::ensure_qemu("qemu-system-aarch64")?;
    let v = qemu_version().context("qemu-system-aarch64 does not run after installing it")?;
    println!("{v}");
    build_image("qemu-virt")?;
    crate::run_tests(cargo().env("SPLITRX_REQUIRE_QEMU", "1").args([
        "test",
        "-p",
        "splitrx-qemu-virt",
    ]))?;
    hil(&["qemu".to_string()])
}
