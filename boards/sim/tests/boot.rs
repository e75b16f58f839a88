//! The firmware finds the control region only through the bootstrap mailbox, as on hardware:
//! a good mailbox attaches and the heartbeat moves; a bad one is refused with the documented
//! code, and the host sees it (never a hang, never a panic).

use splitrx_host::device::{Device, DeviceConfig, DeviceLayout};
use splitrx_host::queue::DropSink;
use splitrx_host::seam::{BoardSeam, HostWindow, Liveness, SeamError};
use splitrx_shared::abi::abi_version;
use splitrx_shared::bootstrap::{field, fw_state, MAILBOX_LEN};
use splitrx_sim::seam::SimHw;
use splitrx_sim::wire::{LoopWire, WireCtl};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The smallest device the firmware accepts: one queue.
fn small() -> DeviceConfig {
    DeviceConfig {
        queues: 1,
        bufs_per_queue: 256,
        pay_bufs_per_queue: 256,
        fill_ring: 128,
        cq_ring: 256,
        ..DeviceConfig::default()
    }
}

fn board() -> SimHw {
    let lay = DeviceLayout::new(&small()).unwrap();
    let ctl = Arc::new(WireCtl::default());
    let frames: [&[u8]; 0] = [];
    SimHw::start(
        lay.host_len,
        lay.device_len,
        LoopWire::new(&frames, Some(0), ctl.clone()),
        ctl,
    )
    .unwrap()
}

/// Writes raw mailbox bytes (a hostile or broken host).
fn poke(w: &HostWindow, off: usize, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        // SAFETY: `off + i` < MAILBOX_LEN, inside the mapping (at least MAILBOX_LEN bytes).
        unsafe { std::ptr::write_volatile(w.base().as_ptr().add(off + i), *b) };
    }
}

#[test]
fn a_mailbox_of_another_abi_major_is_refused_with_its_code() {
    let hw = board();
    let w = HostWindow::map(hw.seam.host_window()).unwrap();
    // A host of ABI 7.0 posts a mailbox: every field, then `magic` last.
    poke(&w, 4, &abi_version(7, 0).to_le_bytes());
    poke(&w, 8, &MAILBOX_LEN.to_le_bytes());
    poke(&w, 16, &4096u64.to_le_bytes());
    poke(&w, 24, &1u32.to_le_bytes());
    poke(&w, field::MAGIC, b"SPRB");
    match w.wait_attached(1, hw.seam.as_ref(), Duration::from_secs(10)) {
        Err(SeamError::Refused(code)) => assert_eq!(code, 2, "ABI mismatch"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(w.mailbox().fw_state, fw_state::REFUSED);
    // The firmware thread ends after a refusal; the seam says so.
    let end = Instant::now() + Duration::from_secs(10);
    while hw.seam.board_alive().is_ok() {
        assert!(Instant::now() < end, "the refused firmware kept running");
        std::thread::yield_now();
    }
}

#[test]
fn a_control_region_of_zeros_is_refused_as_a_bad_header() {
    let hw = board();
    let w = HostWindow::map(hw.seam.host_window()).unwrap();
    // Posted, but the region it names was never laid out.
    w.post_mailbox(MAILBOX_LEN, 4096, 1);
    match w.wait_attached(1, hw.seam.as_ref(), Duration::from_secs(10)) {
        Err(SeamError::Refused(code)) => assert_eq!(code, 0x103, "bad QueueHeader"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A region overlapping the mailbox is refused before it is looked at.
    let hw = board();
    let w = HostWindow::map(hw.seam.host_window()).unwrap();
    w.post_mailbox(64, 4096, 1);
    match w.wait_attached(1, hw.seam.as_ref(), Duration::from_secs(10)) {
        Err(SeamError::Refused(code)) => assert_eq!(code, 3, "bad region"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn an_attached_firmware_has_a_moving_heartbeat_and_a_stopped_one_is_gone() {
    let hw = board();
    let mut dev = Device::bring_up(hw.seam.clone(), &small(), |_| DropSink, |_| None).unwrap();
    assert_eq!(dev.attached.fw_state, fw_state::ATTACHED);
    assert_eq!(dev.attached.fw_generation, 1);
    let mut running = 0;
    let end = Instant::now() + Duration::from_secs(10);
    while running < 3 {
        assert!(Instant::now() < end, "the heartbeat did not move");
        if let Liveness::Running { .. } = dev.liveness() {
            running += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = dev.finish();
    assert!(out
        .finish
        .iter()
        .all(|f| f.as_ref().is_ok_and(|r| r.exact())));
    let seam = hw.seam.clone();
    assert!(hw.stop().is_some());
    assert!(matches!(seam.board_alive(), Err(SeamError::Gone(_))));
}
