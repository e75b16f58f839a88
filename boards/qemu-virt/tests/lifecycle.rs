//! QEMU's lifecycle: the board boots the image to "waiting for the host" within its timeout,
//! and QEMU never outlives its owner: not when the board is dropped during a panic, and not
//! when the thread that started it ends without dropping it (PR_SET_PDEATHSIG).
//!
//! These need the image (`cargo xtask build-image --board qemu-virt`) and QEMU; without them
//! they say so and pass, unless `SPLITRX_REQUIRE_QEMU` is set (`cargo xtask test` sets it).

use splitrx_qemu_virt::board::BoardData;
use splitrx_qemu_virt::qemu::{page, QemuConfig, QemuHw};
use std::time::{Duration, Instant};

fn available() -> bool {
    let image = BoardData::load().unwrap().image();
    if image.exists() {
        return true;
    }
    assert!(
        std::env::var_os("SPLITRX_REQUIRE_QEMU").is_none(),
        "{} missing: run `cargo xtask build-image --board qemu-virt`",
        image.display()
    );
    eprintln!("skipped: {} is not built", image.display());
    false
}

/// Whether process `pid` is gone (or a zombie nobody reaped: it runs no more).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: u32) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn boots_to_waiting_for_the_host_and_logs_over_defmt() {
    if !available() {
        return;
    }
    let hw = QemuHw::start(&QemuConfig::new(1 << 20, 1 << 20)).unwrap();
    let p = hw.page();
    assert_eq!(p.stage, page::STAGE_WAITING_HOST);
    assert_eq!((p.rx_frames, p.fcs_errors, p.tx_frames), (0, 0, 0));
    let pid = hw.pid().unwrap();
    let rep = hw.stop();
    assert!(wait_gone(pid), "QEMU {pid} still runs after stop");
    assert!(
        rep.error
            .as_deref()
            .is_some_and(|e| e.contains("did not run")),
        "{:?}",
        rep.error
    );
    let log = rep.log.join("\n");
    assert!(log.contains("qemu-virt: boot"), "{log}");
    assert!(log.contains("host window 0x8000000000+0x100000"), "{log}");
    assert!(log.contains("virtio-net up"), "{log}");
}

#[test]
fn qemu_is_killed_when_a_panic_drops_the_board() {
    if !available() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let r = std::panic::catch_unwind(move || {
        let hw = QemuHw::start(&QemuConfig::new(1 << 20, 1 << 20)).unwrap();
        tx.send(hw.pid().unwrap()).unwrap();
        panic!("a failing test");
    });
    assert!(r.is_err());
    let pid = rx.recv().unwrap();
    assert!(wait_gone(pid), "QEMU {pid} outlived the panic");
}

#[test]
fn qemu_dies_with_the_thread_that_started_it_even_if_never_dropped() {
    if !available() {
        return;
    }
    let (pid, dir) = std::thread::spawn(|| {
        let hw = QemuHw::start(&QemuConfig::new(1 << 20, 1 << 20)).unwrap();
        let pid = hw.pid().unwrap();
        let dir = hw.work_dir().to_path_buf();
        hw.unlink();
        // Leak it: no Drop runs, as when a process is killed. The kernel's parent-death
        // signal must end QEMU when this thread exits.
        std::mem::forget(hw);
        (pid, dir)
    })
    .join()
    .unwrap();
    assert!(
        wait_gone(pid),
        "QEMU {pid} outlived the thread that started it"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_window_larger_than_the_board_map_is_refused_before_qemu_starts() {
    let err = QemuHw::start(&QemuConfig::new(1 << 40, 1 << 20)).unwrap_err();
    assert!(err.to_string().contains("host window needs"), "{err}");
}
