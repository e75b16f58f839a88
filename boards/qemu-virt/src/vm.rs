//! A QEMU process that is never left running: [`Vm::spawn`] starts it with
//! `PR_SET_PDEATHSIG` = `SIGKILL` (the kernel kills it if the thread that started it, and with
//! it normally this process, dies without dropping it: a panic that aborts, a `kill -9`), its
//! stdout and stderr in a file kept for error messages; [`Vm`] kills it on drop. Used by the
//! qemu-virt board ([`crate::qemu::QemuHw`]) and the harness's rxe guest
//! (`splitrx_harness::rxe::RxeGuest`).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The QEMU child. Killed on drop.
#[derive(Debug)]
pub struct Vm {
    child: Mutex<Option<Child>>,
    /// QEMU's stdout and stderr, for messages.
    pub err_path: PathBuf,
}

impl Vm {
    /// Starts `c` (stdin closed, stdout and stderr into `err_path`) so that it dies with the
    /// thread that started it.
    pub fn spawn(c: &mut Command, err_path: PathBuf) -> std::io::Result<Vm> {
        let err_file = std::fs::File::create(&err_path)?;
        c.stdin(Stdio::null())
            .stdout(err_file.try_clone()?)
            .stderr(err_file);
        // SAFETY: the hook runs in the forked child before exec and only makes one
        // async-signal-safe system call (prctl).
        unsafe {
            c.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let child = c.spawn()?;
        Ok(Vm {
            child: Mutex::new(Some(child)),
            err_path,
        })
    }

    /// `Ok` while QEMU runs; its exit status otherwise.
    pub fn alive(&self) -> Result<(), String> {
        match self.status() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => Err(format!("QEMU exited ({st}){}", tail(&self.err_path))),
            Err(e) => Err(e),
        }
    }

    /// `None` while QEMU runs, its exit status once it has exited (reaped).
    pub fn status(&self) -> Result<Option<ExitStatus>, String> {
        let mut g = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(c) = g.as_mut() else {
            return Err("QEMU was stopped".into());
        };
        c.try_wait().map_err(|e| format!("QEMU: {e}"))
    }

    /// QEMU's process id (until it is stopped).
    pub fn pid(&self) -> Option<u32> {
        let g = self.child.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().map(Child::id)
    }

    /// Stops QEMU and reaps it, bounded: SIGTERM first (QEMU exits cleanly, plugins write
    /// their reports), SIGKILL after `grace`.
    pub fn kill(&self, grace: Duration) {
        let mut g = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut c) = g.take() else { return };
        let reaped = |c: &mut Child, within: Duration| {
            let end = Instant::now() + within;
            loop {
                if !matches!(c.try_wait(), Ok(None)) {
                    return true;
                }
                if Instant::now() >= end {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        if !grace.is_zero() {
            if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
                if reaped(&mut c, grace) {
                    return;
                }
            }
        }
        let _ = c.kill();
        reaped(&mut c, Duration::from_secs(5));
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill(Duration::ZERO);
    }
}

/// The last lines QEMU printed, for error messages (`: a | b | c`, or nothing).
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        String::new()
    } else {
        let v: Vec<&str> = lines.into_iter().rev().collect();
        format!(": {}", v.join(" | "))
    }
}
