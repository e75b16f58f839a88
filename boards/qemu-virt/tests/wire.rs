//! The image's MAC on the wire: with a host device up (the firmware polling its MAC), good
//! frames are taken and counted, and datagrams whose FCS is wrong or that are shorter than an
//! FCS are dropped at the MAC and counted as FCS errors, never reaching the firmware.
//! Needs the image (see `lifecycle.rs`).

use splitrx_host::device::{Device, DeviceConfig, DeviceLayout};
use splitrx_host::queue::Sink;
use splitrx_host::token::Rx;
use splitrx_qemu_virt::board::BoardData;
use splitrx_qemu_virt::qemu::{page, QemuConfig, QemuHw};
use std::time::{Duration, Instant};

struct Discard;
impl Sink for Discard {
    fn deliver(&mut self, _rx: Rx) -> bool {
        true
    }
}

#[test]
fn bad_fcs_and_short_datagrams_are_dropped_at_the_mac_and_counted() {
    let image = BoardData::load().unwrap().image();
    if !image.exists() {
        assert!(
            std::env::var_os("SPLITRX_REQUIRE_QEMU").is_none(),
            "{} missing",
            image.display()
        );
        eprintln!("skipped: {} is not built", image.display());
        return;
    }
    let cfg = DeviceConfig {
        queues: 1,
        bufs_per_queue: 256,
        pay_bufs_per_queue: 256,
        fill_ring: 128,
        cq_ring: 256,
        ..DeviceConfig::default()
    };
    let lay = DeviceLayout::new(&cfg).unwrap();
    let hw = QemuHw::start(&QemuConfig::new(lay.host_len, lay.device_len)).unwrap();
    let dev = Device::bring_up(hw.seam.clone(), &cfg, |_| Discard, |_| None).unwrap();
    hw.unlink();
    assert_eq!(hw.page().stage, page::STAGE_RUNNING);
    let mut tx = hw.wire().unwrap();
    let mut frame = vec![0u8; 60];
    frame[12..14].copy_from_slice(&[0x88, 0xb5]);
    tx.send(&frame).unwrap();
    let mut bad = frame.clone();
    bad.extend_from_slice(&(crc32fast::hash(&frame) ^ 1).to_le_bytes());
    tx.send_raw(&bad).unwrap();
    tx.send_raw(&[0xff, 0xff]).unwrap();
    tx.send(&[]).unwrap(); // an empty frame crosses the wire as its FCS alone
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let p = hw.page();
        if p.rx_frames + p.fcs_errors >= 4 {
            assert_eq!((p.rx_frames, p.fcs_errors, p.truncated), (2, 2, 0), "{p:?}");
            assert_eq!(p.rx_bytes, 60);
            break;
        }
        assert!(
            Instant::now() < end,
            "the MAC did not take the frames: {p:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = dev.finish();
    drop(out);
    let rep = hw.stop();
    assert!(rep.error.is_none(), "{:?}", rep.error);
}
