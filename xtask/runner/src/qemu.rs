//! An image under QEMU: semihosting on (defmt bytes arrive on QEMU's stdout, the exit code
//! through semihosting's exit call), decoded line by line, with a timeout.
//!
//! No orphaned QEMU: it is started with the parent-death signal set to SIGKILL (it dies with
//! this process, however this process ends), killed and reaped on timeout, and shares this
//! process group (an interrupt from the terminal reaches it too).

use crate::Log;
use anyhow::{Context, Result};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a QEMU run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// QEMU exited with this code (the image's semihosting exit code).
    Exited(i32),
    /// QEMU was killed by a signal.
    Signalled,
    /// Still running after the timeout: killed.
    TimedOut(Duration),
}

/// The emulated machine (a board.toml's `[qemu]` table).
#[derive(Debug, Clone)]
pub struct Machine {
    /// `qemu-system-arm`, ...
    pub binary: String,
    /// `-M`.
    pub machine: String,
    /// `-cpu`, when not the machine's default.
    pub cpu: Option<String>,
    /// `-m` in MiB, when not the machine's default.
    pub memory_mib: Option<u32>,
}

/// QEMU's command line for an image: no display, semihosting with the guest's console on
/// QEMU's stdout.
pub fn command(m: &Machine, elf: &Path) -> Command {
    let mut c = Command::new(&m.binary);
    c.args(["-M", &m.machine]);
    if let Some(cpu) = &m.cpu {
        c.args(["-cpu", cpu]);
    }
    if let Some(mib) = m.memory_mib {
        c.args(["-m", &format!("{mib}M")]);
    }
    c.args(["-nographic", "-monitor", "none", "-serial", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-kernel")
        .arg(elf);
    c
}

/// Runs `elf` under QEMU, printing every decoded defmt line through `out`; returns how QEMU
/// ended. A QEMU binary that is missing is an error that names the Debian package.
pub fn run(
    m: &Machine,
    elf: &Path,
    timeout: Duration,
    mut out: impl FnMut(&str),
) -> Result<Outcome> {
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let log = Log::from_elf(&bytes)?;
    let mut c = command(m, elf);
    let binary = &m.binary;
    c.stdin(Stdio::null()).stdout(Stdio::piped());
    // SAFETY: the closure runs in the forked child before exec and only makes one
    // async-signal-safe system call (prctl), touching no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
            "{binary} is not installed: install QEMU 10 (Debian: `apt-get install -t \
             bookworm-backports {}`); `cargo xtask test` installs it when run as root",
            qemu_package(binary)
        ),
        Err(e) => return Err(e).with_context(|| format!("starting {binary}")),
    };
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stream = log.decoder();
    let start = Instant::now();
    let outcome = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(chunk) => stream.feed(&chunk).iter().for_each(|l| out(l)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                break status.code().map_or(Outcome::Signalled, Outcome::Exited);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if start.elapsed() > timeout {
            // Kill and reap; the reader ends when the pipe closes.
            let _ = child.kill();
            child.wait()?;
            break Outcome::TimedOut(timeout);
        }
    };
    let _ = reader.join();
    for chunk in rx.try_iter() {
        stream.feed(&chunk).iter().for_each(|l| out(l));
    }
    if stream.malformed > 0 {
        out(&format!("({} malformed defmt frames)", stream.malformed));
    }
    Ok(outcome)
}

/// The Debian package that ships a QEMU system emulator.
pub fn qemu_package(binary: &str) -> &'static str {
    match binary {
        "qemu-system-arm" => "qemu-system-arm",
        "qemu-system-aarch64" => "qemu-system-arm",
        _ => "qemu-system",
    }
}
