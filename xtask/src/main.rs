//! `cargo xtask`: the single entry point for everything that is more than one cargo call.
//!
//! - `cargo xtask run [ARGS..]`   the main job: `splitrx run` on the default sim board (release build)
//! - `cargo xtask test`           the whole test suite (what `.ci/run` calls); installs what it needs
//! - `cargo xtask targets`        build the no_std crates for the ARM targets (also with `defmt`)
//! - `cargo xtask size`           code size of the firmware datapath on thumbv7em (size-probe image)
//! - `cargo xtask fuzz [--secs N]` bounded runs of every cargo-fuzz target (nightly)
//! - `cargo xtask bench`          run every criterion benchmark
//! - `cargo xtask oracle`         regenerate the tshark oracle fixtures (needs tshark)
//! - `cargo xtask boards`         list and validate the boards (`boards/*/board.toml`)
//! - `cargo xtask layering`       check the crate layering against the dependency graph
//! - `cargo xtask on-target`      the Cortex-M on-target tests (QEMU) and probe-rs checks alone
//! - `cargo xtask flash --board B` flash and run B's image through a debug probe (probe-rs)
//! - `cargo xtask build-image --board B`  build a board's firmware image (qemu-virt)
//! - `cargo xtask hil --target sim|qemu|probe`  the harness scenarios on a target, as a table
//! - `cargo xtask rxe-guest`      build (or find cached) the Linux soft-RoCE guest for QEMU
//! - `cargo xtask interop`        the interop tests alone: perftest and rping in the rxe guest
//!   against the firmware on sim and qemu-virt, bytes checked, bounded; the bandwidth table
//!
//! ARM binaries live outside the host workspace (stable Cargo has no per-package target); they are
//! built here with an explicit `--target`.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

mod boards;
mod cortexm;
mod hil;
mod interop;
mod rxe_guest;

/// ARM targets the `no_std` crates must build for (library portability; the boards' own
/// targets come from `boards/*/board.toml`).
const ARM_TARGETS: &[&str] = &["thumbv7em-none-eabihf", "aarch64-unknown-none"];
/// Crates that must build `no_std` for the ARM targets.
const NO_STD_CRATES: &[&str] = &["splitrx-shared", "splitrx-firmware"];
/// Feature builds of the `no_std` crates for the ARM targets: (package, features). The
/// firmware's `defmt` logging (also turns on `defmt::Format` in shared), and its `no_std` test
/// fakes.
const NO_STD_FEATURE_BUILDS: &[(&str, &str)] = &[
    ("splitrx-firmware", "defmt"),
    ("splitrx-firmware", "testing"),
];
/// cargo-fuzz crates and their targets.
const FUZZ: &[(&str, &[&str])] = &[
    ("shared/fuzz", &["parse_split", "ring_consumer"]),
    (
        "firmware/fuzz",
        &["command_ring", "fill_descriptors", "roce_peer"],
    ),
    ("host/fuzz", &["capture_reader"]),
];
/// Loom models: (package, test target).
const LOOM: &[(&str, &str)] = &[
    ("splitrx-shared", "ring_loom"),
    ("splitrx-host", "pool_loom"),
];

#[derive(Parser)]
#[command(name = "xtask", about = "splitrx build, test and tooling entry point")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the main job (`splitrx run`) on the default sim board; extra args go to `splitrx run`.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the whole test suite (unit, integration, loom, ARM builds, fuzz smoke, bench smoke).
    Test {
        /// Seconds per fuzz target (0 skips fuzzing). Six targets share the two minutes the
        /// four had before.
        #[arg(long, default_value_t = 20)]
        fuzz_secs: u32,
    },
    /// Build the no_std crates for every ARM target.
    Targets,
    /// Report the code size of the firmware datapath on thumbv7em-none-eabihf.
    Size,
    /// Run every cargo-fuzz target for a bounded time.
    Fuzz {
        #[arg(long, default_value_t = 60)]
        secs: u32,
    },
    /// Run every criterion benchmark (short measurement).
    Bench {
        /// Extra args for criterion (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Regenerate testdata/oracle from the captures with tshark.
    Oracle,
    /// List and validate the boards (`boards/*/board.toml`).
    Boards,
    /// Check the crate layering against the dependency graph.
    Layering,
    /// Run the Cortex-M on-target tests under QEMU and the probe-rs checks (part of `test`).
    OnTarget,
    /// Flash a board's image through a debug probe and run it (probe-rs; defmt logs over RTT).
    Flash {
        /// Board name (`cargo xtask boards`).
        #[arg(long)]
        board: String,
        /// Which probe (VID:PID[:serial]); the first one found by default.
        #[arg(long)]
        probe: Option<String>,
    },
    /// Build a board's firmware image (boards/<B>/image, its own workspace; cached by cargo).
    BuildImage {
        #[arg(long, default_value = "qemu-virt")]
        board: String,
        /// Also print the image's text/data/bss.
        #[arg(long)]
        size: bool,
    },
    /// Run the harness scenarios (tests/tests/e2e.rs) against targets and print a pass/fail
    /// table per scenario and target.
    Hil {
        /// sim, qemu or probe (repeat or comma-separate for several).
        #[arg(long, value_delimiter = ',', required = true)]
        target: Vec<String>,
    },
    /// Build the Linux soft-RoCE (rxe) guest for QEMU from Debian packages (cached; installs
    /// qemu-system-x86 from bookworm-backports when missing).
    RxeGuest {
        /// Also run the guest's tests (tests/tests/rxe_guest.rs) against it.
        #[arg(long)]
        test: bool,
    },
    /// The interop tests alone: unmodified perftest clients and rping in the rxe guest
    /// against the firmware on the sim board and on qemu-virt, every payload byte checked
    /// (builds the guest and the qemu-virt image when needed; the runs are bounded in time);
    /// then the bandwidth table (splitrx vs rxe-to-rxe).
    Interop,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match cli.cmd {
        Cmd::Run { args } => {
            let mut c = cargo();
            c.args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "splitrx-cli",
                "--bin",
                "splitrx",
                "--",
                "run",
            ]);
            c.args(args);
            run(&mut c)
        }
        Cmd::Test { fuzz_secs } => test_all(fuzz_secs),
        Cmd::Targets => {
            ensure_targets()?;
            build_targets()
        }
        Cmd::Size => {
            ensure_targets()?;
            size()
        }
        Cmd::Fuzz { secs } => fuzz(secs),
        Cmd::Bench { args } => {
            let mut c = cargo();
            c.args(["bench", "--workspace", "--"]);
            if args.is_empty() {
                c.args(["--warm-up-time", "1", "--measurement-time", "3"]);
            }
            c.args(args);
            run(&mut c)
        }
        Cmd::Oracle => run(Command::new("bash").arg("scripts/gen-oracle.sh")),
        Cmd::Layering => layering(),
        Cmd::OnTarget => {
            ensure_targets()?;
            cortexm::test_steps()?;
            let (passed, failed) = (PASSED.load(Relaxed), FAILED.load(Relaxed));
            println!("{passed} passed, {failed} failed");
            Ok(())
        }
        Cmd::Flash { board, probe } => cortexm::flash(&board, probe.as_deref()),
        Cmd::BuildImage { board, size } => {
            if size {
                hil::image_size(&board)
            } else {
                hil::build_image(&board).map(|_| ())
            }
        }
        Cmd::Hil { target } => hil::hil(&target),
        Cmd::Interop => interop::cmd(),
        Cmd::RxeGuest { test } => {
            if test {
                // The interop tests against qemu-virt need its image.
                ensure_qemu("qemu-system-aarch64")?;
                hil::build_image("qemu-virt")?;
                rxe_guest::test_step()
            } else {
                rxe_guest::cmd().map(|_| ())
            }
        }
        Cmd::Boards => {
            boards::print(&boards::load(&root)?);
            Ok(())
        }
    }
}

fn test_all(fuzz_secs: u32) -> Result<()> {
    let start = Instant::now();
    step("boards (boards/*/board.toml)", || {
        boards::print(&boards::load(&project_root())?);
        Ok(())
    })?;
    step("layering (cargo tree)", layering)?;
    step("rustup targets", ensure_targets)?;
    step("format check", || {
        run(cargo().args(["fmt", "--all", "--check"]))
    })?;
    step("clippy (deny warnings)", || {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    step("unit + integration tests", || {
        run_tests(cargo().args(["test", "--workspace", "--all-targets"]))
    })?;
    step("doc tests", || {
        run_tests(cargo().args(["test", "--workspace", "--doc"]))
    })?;
    step("loom models", loom)?;
    step("32-bit (i686) tests of shared and firmware", thirty_two_bit)?;
    step("no_std builds for ARM", build_targets)?;
    step("firmware code size (thumbv7em)", size)?;
    cortexm::test_steps()?;
    step(
        "HIL: the scenarios on qemu-virt (aarch64 image in QEMU)",
        hil::test_qemu,
    )?;
    step(
        "rxe guest: Linux soft-RoCE in QEMU (x86_64 TCG; guest built from Debian packages, cached)",
        rxe_guest::test_step,
    )?;
    if fuzz_secs > 0 {
        step("fuzz smoke", || fuzz(fuzz_secs))?;
    }
    println!("\nxtask test: all steps passed in {:.0?}", start.elapsed());
    let (passed, failed) = (PASSED.load(Relaxed), FAILED.load(Relaxed));
    if passed == 0 {
        bail!("no test ran");
    }
    // The suite's closing line, counted over every libtest run above.
    println!("{passed} passed, {failed} failed");
    Ok(())
}

/// The intended layering, from the dependency graph: `shared` at the bottom; `firmware` and
/// `host` side by side on it, neither knowing a board, a CLI or each other; boards, the harness
/// and the CLI above.
const LAYERS: &[(&str, &[&str])] = &[
    ("splitrx-shared", &["splitrx-"]),
    (
        "splitrx-firmware",
        &[
            "splitrx-host",
            "splitrx-sim",
            "splitrx-qemu-virt",
            "splitrx-harness",
            "splitrx-cli",
        ],
    ),
    (
        "splitrx-host",
        &[
            "splitrx-firmware",
            "splitrx-sim",
            "splitrx-qemu-virt",
            "splitrx-harness",
            "splitrx-cli",
            "clap",
            "indicatif",
            "tracing-subscriber",
            "anyhow",
        ],
    ),
    ("splitrx-sim", &["splitrx-harness", "splitrx-cli", "clap"]),
    (
        "splitrx-qemu-virt",
        &[
            "splitrx-firmware",
            "splitrx-sim",
            "splitrx-harness",
            "splitrx-cli",
            "clap",
        ],
    ),
    ("splitrx-harness", &["splitrx-cli", "clap"]),
];

fn layering() -> Result<()> {
    for (pkg, banned) in LAYERS {
        let tree = output(cargo().args([
            "tree", "-p", pkg, "-e", "normal", "--prefix", "none", "--quiet",
        ]))?;
        for line in tree.lines().skip(1) {
            let name = line.split_whitespace().next().unwrap_or("");
            if banned.iter().any(|b| name.starts_with(b)) {
                bail!("{pkg} depends on {name}, which the layering forbids (ARCHITECTURE.md)");
            }
        }
        println!("  {pkg}: no dependency on {}", banned.join(", "));
    }
    Ok(())
}

/// The 32-bit host target: shared's and the firmware's tests run as 32-bit code (`usize` is
/// 32 bits there, as on the Cortex-M firmware), so size arithmetic on peer-controlled values is
/// proven on a real 32-bit build.
const I686: &str = "i686-unknown-linux-gnu";

fn thirty_two_bit() -> Result<()> {
    ensure_rustup_target(I686)?;
    // Linking 32-bit test binaries needs the 32-bit C runtime.
    ensure_apt(&["gcc-multilib"])?;
    for pkg in ["splitrx-shared", "splitrx-firmware"] {
        run_tests(cargo().args(["test", "-p", pkg, "--target", I686]))?;
    }
    Ok(())
}

/// Installs Debian packages that are missing (as root), or says exactly what to install.
pub(crate) fn ensure_apt(pkgs: &[&str]) -> Result<()> {
    ensure_apt_from(pkgs, None)
}

/// [`ensure_apt`], taking the packages from `suite` (`apt-get install -t`) when given.
pub(crate) fn ensure_apt_from(pkgs: &[&str], suite: Option<&str>) -> Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| {
            !Command::new("dpkg")
                .args(["-s", p])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = output(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0");
    if !root {
        bail!(
            "missing Debian packages: {} (run: sudo apt-get install {}{})",
            missing.join(" "),
            suite.map(|s| format!("-t {s} ")).unwrap_or_default(),
            missing.join(" ")
        );
    }
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(suite.map(|s| ["-t", s]).into_iter().flatten())
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .with_context(|| format!("could not install {}", missing.join(" ")))
}

/// QEMU 10 from bookworm-backports for `binary` (`qemu-system-arm`, `qemu-system-aarch64`,
/// `qemu-system-x86_64`): installed as root when missing (enabling the suite in
/// `/etc/apt/sources.list.d/debian.sources` if needed), otherwise the exact command to run. The
/// suite's QEMU packages must all come from one release: bookworm's 7.2 `qemu-system-x86` next
/// to backports' `qemu-system-common` 10 does not install.
pub(crate) fn ensure_qemu(binary: &str) -> Result<()> {
    if let Ok(v) = output(Command::new(binary).arg("--version")) {
        let first = v.lines().next().unwrap_or("");
        let major: u32 = first
            .split("version ")
            .nth(1)
            .and_then(|r| r.split('.').next())
            .and_then(|m| m.trim().parse().ok())
            .unwrap_or(0);
        if major < 10 {
            println!("warning: {first}: the reference is QEMU 10 (bookworm-backports)");
        }
        return Ok(());
    }
    let pkg = match binary {
        "qemu-system-x86_64" | "qemu-system-i386" => "qemu-system-x86",
        _ => "qemu-system-arm",
    };
    let how = format!(
        "{binary} is missing: install QEMU 10 from bookworm-backports \
         (add `bookworm-backports` to the `Suites:` line of /etc/apt/sources.list.d/debian.sources, \
         then `apt-get update && apt-get install -t bookworm-backports {pkg}`)"
    );
    let root = output(Command::new("id").arg("-u")).is_ok_and(|u| u.trim() == "0");
    if !root {
        bail!("{how}");
    }
    ensure_backports().with_context(|| how.clone())?;
    ensure_apt_from(&[pkg], Some("bookworm-backports")).with_context(|| how.clone())?;
    output(Command::new(binary).arg("--version")).with_context(|| how.clone())?;
    Ok(())
}

/// Adds `bookworm-backports` to the main archive's `Suites:` line of
/// /etc/apt/sources.list.d/debian.sources (as root) unless apt's sources have it already.
pub(crate) fn ensure_backports() -> Result<()> {
    let sources = Path::new("/etc/apt/sources.list.d/debian.sources");
    if let Ok(text) = std::fs::read_to_string(sources) {
        if !text.contains("bookworm-backports") {
            // The first `Suites:` line is the main archive's.
            let fixed = text.replacen(
                "Suites: bookworm bookworm-updates",
                "Suites: bookworm bookworm-updates bookworm-backports",
                1,
            );
            if fixed == text {
                bail!(
                    "could not enable bookworm-backports: no main archive's Suites line in {}",
                    sources.display()
                );
            }
            std::fs::write(sources, fixed)
                .with_context(|| format!("writing {}", sources.display()))?;
            println!("enabled bookworm-backports in {}", sources.display());
            run(Command::new("apt-get").args(["update", "-qq"]))?;
        }
    }
    Ok(())
}

pub(crate) fn ensure_rustup_target(t: &str) -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("rustup is needed to add targets (install rustup, then rerun)")?;
    if installed.lines().any(|l| l.trim() == t) {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", t]))
        .with_context(|| format!("could not add rustup target {t}: run `rustup target add {t}`"))
}

fn loom() -> Result<()> {
    for (pkg, test) in LOOM {
        let mut c = cargo();
        c.env("RUSTFLAGS", "--cfg loom")
            .env("CARGO_TARGET_DIR", project_root().join("target/loom"))
            .env("LOOM_MAX_PREEMPTIONS", "3")
            .args(["test", "--release", "-p", pkg, "--test", test]);
        run_tests(&mut c)?;
    }
    Ok(())
}

fn ensure_targets() -> Result<()> {
    let mut want: Vec<String> = ARM_TARGETS.iter().map(|t| t.to_string()).collect();
    want.extend(boards::cross_targets(&boards::load(&project_root())?));
    want.sort();
    want.dedup();
    // One target per call: concurrent rustup calls adding several targets can race.
    want.iter().try_for_each(|t| ensure_rustup_target(t))
}

fn build_targets() -> Result<()> {
    for t in ARM_TARGETS {
        for p in NO_STD_CRATES {
            run(cargo().args(["build", "--release", "-p", p, "--target", t]))?;
        }
        for (p, features) in NO_STD_FEATURE_BUILDS {
            run(cargo().args([
                "build",
                "--release",
                "-p",
                p,
                "--features",
                features,
                "--target",
                t,
            ]))?;
        }
    }
    Ok(())
}

fn size() -> Result<()> {
    let probe = project_root().join("boards/size-probe");
    if !probe.join("Cargo.toml").exists() {
        bail!("boards/size-probe is missing");
    }
    // The probe is its own workspace and is read back from its own target directory.
    run(cargo()
        .current_dir(&probe)
        .env_remove("CARGO_TARGET_DIR")
        .args(["build", "--release"]))?;
    let elf = probe.join("target/thumbv7em-none-eabihf/release/splitrx-size-probe");
    let text = elf_size(&elf)?;
    println!("size-probe (firmware datapath + control plane):\n{text}");
    cortexm::image_sizes()
}

/// `size`-style text/data/bss of an ELF, using whichever size tool exists.
pub(crate) fn elf_size(elf: &Path) -> Result<String> {
    for tool in ["arm-none-eabi-size", "llvm-size", "size"] {
        if let Ok(out) = output(Command::new(tool).arg(elf)) {
            return Ok(out);
        }
    }
    // Fallback: rust-lld ships no size tool; read the section headers ourselves.
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    elf32_sections(&bytes).context("parsing the ELF section table")
}

/// Minimal ELF32 section-size summary (text = alloc+exec, data = alloc+write progbits, bss = nobits).
fn elf32_sections(b: &[u8]) -> Option<String> {
    let rd16 = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let rd32 = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    if b.get(0..4)? != b"\x7fELF" || *b.get(4)? != 1 {
        return None;
    }
    let shoff = rd32(0x20)? as usize;
    let shentsize = rd16(0x2e)? as usize;
    let shnum = rd16(0x30)? as usize;
    let (mut text, mut data, mut bss) = (0u64, 0u64, 0u64);
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let kind = rd32(h + 4)?;
        let flags = rd32(h + 8)?;
        let size = rd32(h + 0x14)? as u64;
        const ALLOC: u32 = 2;
        const WRITE: u32 = 1;
        const EXEC: u32 = 4;
        if flags & ALLOC == 0 {
            continue;
        }
        if kind == 8 {
            bss += size;
        } else if flags & WRITE != 0 {
            data += size;
        } else if flags & EXEC != 0 || kind == 1 {
            text += size;
        }
    }
    Some(format!(
        "   text    data     bss\n{text:7} {data:7} {bss:7}"
    ))
}

fn fuzz(secs: u32) -> Result<()> {
    if output(Command::new("rustc").args(["+nightly", "--version"])).is_err() {
        bail!(
            "fuzzing needs the nightly toolchain (`rustup toolchain install nightly`); \
             rerun with `cargo xtask test --fuzz-secs 0` to skip fuzzing"
        );
    }
    if output(Command::new("cargo").args(["fuzz", "--version"])).is_err() {
        println!("installing cargo-fuzz (crates.io)...");
        run(cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    }
    // Seed the parse+split fuzzer with every Ethernet frame of the captures (written into its
    // corpus directory), so libFuzzer starts from real traffic.
    run(&mut capture_writer("write_fuzz_seed_corpus"))?;
    // Seed the capture-reader fuzzer with every capture file (copied, not committed).
    let corpus = project_root().join("host/fuzz/corpus/capture_reader");
    std::fs::create_dir_all(&corpus)?;
    for entry in std::fs::read_dir(project_root().join("testdata/captures"))? {
        let path = entry?.path();
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pcap" | "pcapng")
        ) {
            std::fs::copy(&path, corpus.join(path.file_name().context("file name")?))?;
        }
    }
    for (dir, targets) in FUZZ {
        let dir = project_root().join(dir);
        for t in *targets {
            let corpus = dir.join("corpus").join(t);
            std::fs::create_dir_all(&corpus)?;
            let seeds = dir.join("seeds").join(t);
            let mut c = Command::new("cargo");
            c.current_dir(&dir).args(["+nightly", "fuzz", "run", t]);
            c.arg(&corpus);
            if seeds.is_dir() {
                c.arg(&seeds);
            }
            c.args([
                "--",
                &format!("-max_total_time={secs}"),
                "-print_final_stats=1",
            ]);
            run(&mut c)?;
        }
    }
    Ok(())
}

/// One of the shared crate's ignored `wire_captures` tests that write files derived from every
/// capture frame (fuzz seeds, the on-target split blob).
fn capture_writer(test: &str) -> Command {
    let mut c = cargo();
    c.args([
        "test",
        "--quiet",
        "-p",
        "splitrx-shared",
        "--test",
        "wire_captures",
        "--",
        "--ignored",
        "--exact",
        test,
    ]);
    c
}

fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    println!("\n==> {name}");
    let t = Instant::now();
    f().with_context(|| format!("step failed: {name}"))?;
    println!("==> {name}: ok ({:.1?})", t.elapsed());
    Ok(())
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Tests counted over every `cargo test` run of `xtask test`.
static PASSED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);

/// Runs a `cargo test` command, streaming its output and adding its libtest
/// `test result: ... N passed; M failed` lines to the totals.
pub(crate) fn run_tests(c: &mut Command) -> Result<()> {
    run_tests_watched(c, None, &mut |_| {})
}

/// [`run_tests`], each line also shown to `line`; with a `limit`, the command (its whole
/// process group: cargo, the test binary, the VMs it started) is killed once it has run that
/// long, and that is an error.
pub(crate) fn run_tests_watched(
    c: &mut Command,
    limit: Option<std::time::Duration>,
    line: &mut dyn FnMut(&str),
) -> Result<()> {
    use std::os::unix::process::CommandExt;
    if limit.is_some() {
        c.process_group(0);
    }
    let mut child = c
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {c:?}"))?;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(limit) = limit {
        let (pid, done, killed) = (child.id(), done.clone(), killed.clone());
        std::thread::spawn(move || {
            let end = Instant::now() + limit;
            while Instant::now() < end {
                if done.load(Relaxed) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            if !done.load(Relaxed) {
                killed.store(true, Relaxed);
                let _ = Command::new("kill")
                    .args(["-KILL", &format!("-{pid}")])
                    .status();
            }
        });
    }
    let out = child.stdout.take().context("no stdout pipe")?;
    for l in BufReader::new(out).lines() {
        let l = l?;
        println!("{l}");
        line(&l);
        if let Some(rest) = l.strip_prefix("test result: ") {
            let count = |word: &str| -> u64 {
                rest.split(';')
                    .find_map(|part| part.trim().strip_suffix(word))
                    .and_then(|n| n.trim().rsplit(' ').next()?.parse().ok())
                    .unwrap_or(0)
            };
            PASSED.fetch_add(count(" passed"), Relaxed);
            FAILED.fetch_add(count(" failed"), Relaxed);
        }
    }
    let status = child.wait()?;
    done.store(true, Relaxed);
    if killed.load(Relaxed) {
        bail!(
            "killed after {:?} (the time limit): {c:?}",
            limit.unwrap_or_default()
        );
    }
    if !status.success() {
        bail!("command failed ({status}): {c:?}");
    }
    Ok(())
}

pub(crate) fn run(c: &mut Command) -> Result<()> {
    let status = c
        .status()
        .with_context(|| format!("could not start {c:?}"))?;
    if !status.success() {
        bail!("command failed ({status}): {c:?}");
    }
    Ok(())
}

pub(crate) fn output(c: &mut Command) -> Result<String> {
    let out = c
        .output()
        .with_context(|| format!("could not start {c:?}"))?;
    if !out.status.success() {
        bail!("command failed ({}): {c:?}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}
