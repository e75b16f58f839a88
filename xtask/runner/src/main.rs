//! `splitrx-runner`: see the library docs. Called by `cargo xtask test` and `cargo xtask flash`.
//!
//! ```text
//! splitrx-runner qemu  --binary qemu-system-arm --machine mps2-an500 [--cpu C] [--memory-mib N] --timeout 120 IMAGE
//! splitrx-runner check --board-dir boards/mps2-an500 --probe mps2-an500.yaml IMAGE
//! splitrx-runner flash --board-dir boards/mps2-an500 --probe mps2-an500.yaml [--selector VID:PID] IMAGE
//! ```
//! Exit status: the image's exit code (qemu, flash); 124 on timeout; 2 when no probe is found;
//! 1 on any other error.

use clap::{Parser, Subcommand};
use splitrx_runner::{probe, qemu};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "splitrx-runner",
    about = "Run splitrx ARM images under QEMU or on a probe"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an image under QEMU with semihosting; print its decoded defmt log.
    Qemu {
        #[arg(long, default_value = "qemu-system-arm")]
        binary: String,
        #[arg(long)]
        machine: String,
        /// `-cpu` (the machine's default when absent).
        #[arg(long)]
        cpu: Option<String>,
        /// `-m` in MiB (the machine's default when absent).
        #[arg(long)]
        memory_mib: Option<u32>,
        /// Seconds before QEMU is killed.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
        image: PathBuf,
    },
    /// Without a probe: load the board's probe-rs target and plan the image against it.
    Check {
        #[arg(long)]
        board_dir: PathBuf,
        /// board.toml's `probe`: a probe-rs chip name or a target description file.
        #[arg(long)]
        probe: String,
        image: PathBuf,
    },
    /// Flash the image through a debug probe, run it, print its defmt log (RTT).
    Flash {
        #[arg(long)]
        board_dir: PathBuf,
        #[arg(long)]
        probe: String,
        /// Which probe (VID:PID[:serial]); the first one found by default.
        #[arg(long)]
        selector: Option<String>,
        /// Seconds to wait for the image's exit.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        image: PathBuf,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse().cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("splitrx-runner: {e:#}");
            if e.downcast_ref::<probe::NoProbe>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn code(c: i64) -> ExitCode {
    ExitCode::from(u8::try_from(c).unwrap_or(1).max(u8::from(c != 0)))
}

fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Qemu {
            binary,
            machine,
            cpu,
            memory_mib,
            timeout,
            image,
        } => {
            let t = Duration::from_secs(timeout);
            let m = qemu::Machine {
                binary,
                machine,
                cpu,
                memory_mib,
            };
            match qemu::run(&m, &image, t, |l| println!("{l}"))? {
                qemu::Outcome::Exited(c) => {
                    println!("qemu: exit code {c}");
                    Ok(code(c.into()))
                }
                qemu::Outcome::Signalled => {
                    println!("qemu: killed by a signal");
                    Ok(ExitCode::from(1))
                }
                qemu::Outcome::TimedOut(t) => {
                    println!("qemu: timed out after {t:?}, killed");
                    Ok(ExitCode::from(124))
                }
            }
        }
        Cmd::Check {
            board_dir,
            probe: p,
            image,
        } => {
            let (_, t) = probe::target(&board_dir, &p)?;
            let elf = std::fs::read(&image)?;
            let plan = probe::plan(&t, &elf)?;
            println!(
                "probe-rs target {} ({:?}): the image fits",
                t.name,
                t.source()
            );
            for s in &plan.loaded {
                println!(
                    "  load {:#010x} {:>8} bytes -> {}",
                    s.address, s.len, s.region
                );
            }
            for (n, s) in &plan.sections {
                println!(
                    "  {n:<16} {:#010x} {:>8} bytes in {}",
                    s.address, s.len, s.region
                );
            }
            println!(
                "  boot: {}",
                if plan.boots_from_ram {
                    "from RAM (vector table in RAM)"
                } else {
                    "from flash"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Flash {
            board_dir,
            probe: p,
            selector,
            timeout,
            image,
        } => {
            let (registry, target) = probe::target(&board_dir, &p)?;
            let t = Duration::from_secs(timeout);
            let out = |l: &str| println!("{l}");
            match probe::flash_and_run(&registry, target, &image, selector.as_deref(), t, out)? {
                probe::Exit::Code(c) => {
                    println!("board: exit code {c}");
                    Ok(code(c.into()))
                }
                probe::Exit::TimedOut => {
                    println!("board: no exit after {t:?} (left running)");
                    Ok(ExitCode::from(124))
                }
            }
        }
    }
}
