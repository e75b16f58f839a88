//! The `splitrx-runner` command: no probe -> a clear message and exit status 2; QEMU missing
//! -> the package to install; QEMU that does not finish -> killed at the timeout and reaped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn image() -> PathBuf {
    let dir = std::env::var_os("SPLITRX_BOARD_IMAGES")
        .expect("SPLITRX_BOARD_IMAGES is not set: run through `cargo xtask test`");
    Path::new(&dir).join("mps2-an500.elf")
}

fn machine(binary: &str) -> splitrx_runner::qemu::Machine {
    splitrx_runner::qemu::Machine {
        binary: binary.into(),
        machine: "mps2-an500".into(),
        cpu: None,
        memory_mib: None,
    }
}

#[test]
fn flash_without_a_probe_fails_clearly() {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splitrx-runner"));
    c.args(["flash", "--board-dir"])
        .arg(root().join("boards/mps2-an500"))
        .args(["--probe", "mps2-an500.yaml"]);
    let probes = probe_rs::probe::list::Lister::new().list_all();
    let want = if probes.is_empty() {
        "no debug probe found"
    } else {
        // A machine with a probe: name one that is not there.
        c.args(["--selector", "ffff:fffe"]);
        "no debug probe matches `ffff:fffe`"
    };
    let out = c.arg(image()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(want), "{err}");
    assert!(err.contains("nothing was flashed"), "{err}");
}

#[test]
fn missing_qemu_names_the_package() {
    let e = splitrx_runner::qemu::run(
        &machine("qemu-system-arm-not-installed"),
        &image(),
        Duration::from_secs(5),
        |_| {},
    )
    .unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("is not installed") && e.contains("apt-get install"),
        "{e}"
    );
}

#[test]
fn a_hung_qemu_is_killed_at_the_timeout_and_reaped() {
    // A stand-in QEMU that records its pid and never exits.
    let dir = std::env::temp_dir().join(format!("splitrx-runner-hang-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("qemu-hangs");
    let pid_file = dir.join("pid");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 600\n",
            pid_file.display()
        ),
    )
    .unwrap();
    let mut perm = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&fake, perm).unwrap();
    let t0 = std::time::Instant::now();
    let outcome = splitrx_runner::qemu::run(
        &machine(fake.to_str().unwrap()),
        &image(),
        Duration::from_secs(1),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        outcome,
        splitrx_runner::qemu::Outcome::TimedOut(Duration::from_secs(1))
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        !Path::new("/proc").join(pid.trim()).exists(),
        "the stand-in QEMU (pid {}) is still there",
        pid.trim()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
