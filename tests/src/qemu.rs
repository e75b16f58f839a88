//! The `qemu` target: the firmware as a bare-metal aarch64 image in QEMU's `virt` machine
//! (`boards/qemu-virt`), another process. The host device runs here as on every target, over
//! the board's seam (the `/dev/shm` files QEMU maps as ivshmem BARs). The wire is the same
//! [`LoopWire`] the sim board uses (pacing, per-queue flow control), played by a sender thread
//! into the VM's virtio-net NIC, one datagram per frame; what the MAC took comes from the
//! board page the image publishes. Or, with [`QemuTarget::link`], the wire is a real peer's
//! UDP link (the sim board's [`DgramWire`]: QEMU's `-netdev dgram` framing, e.g. the rxe
//! guest's RoCE NIC): the thread relays its datagrams into the VM and the firmware's frames
//! back to the peer.

use crate::target::{Session, Target, TargetError, TargetReport, Traffic, WireStatus};
use splitrx_host::device::DeviceLayout;
use splitrx_host::queue::PostObserver;
use splitrx_host::seam::BoardSeam;
use splitrx_qemu_virt::qemu::{QemuConfig, QemuHw};
use splitrx_sim::wire::{Credit, DgramWire, FlowControl, LoopWire, Wire, WireCtl};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The qemu-virt board.
#[derive(Clone, Copy, Debug, Default)]
pub struct QemuTarget {
    /// Link the VM's NIC to a peer over UDP instead of playing the session's traffic: (local
    /// address, peer address), one datagram per frame each way, as `SimTarget::link` (the
    /// same [`DgramWire`], relayed by the wire thread into QEMU's socket and back).
    pub link: Option<(SocketAddr, SocketAddr)>,
}

/// What the sender thread shares.
#[derive(Debug, Default)]
struct Sent {
    frames: AtomicU64,
    finished: AtomicBool,
    /// What the firmware transmitted (RoCE responses), taken by `Session::transmitted`.
    tx: Mutex<Vec<Vec<u8>>>,
    error: Mutex<Option<String>>,
}

struct QemuSession {
    hw: Option<QemuHw>,
    linked: bool,
    ctl: Arc<WireCtl>,
    credit: Vec<Arc<Credit>>,
    sent: Arc<Sent>,
    sender: Option<JoinHandle<()>>,
}

fn err(message: impl ToString) -> TargetError {
    TargetError {
        target: "qemu".into(),
        message: message.to_string(),
    }
}

impl Target for QemuTarget {
    fn name(&self) -> &str {
        "qemu"
    }
    fn lossless(&self) -> bool {
        true
    }
    fn max_frame(&self) -> Option<usize> {
        Some(splitrx_qemu_virt::qemu::MAX_FRAME)
    }
    fn power_up(
        &self,
        layout: &DeviceLayout,
        traffic: Traffic,
    ) -> Result<Box<dyn Session>, TargetError> {
        let hw =
            QemuHw::start(&QemuConfig::new(layout.host_len, layout.device_len)).map_err(err)?;
        let ctl = Arc::new(WireCtl::default());
        let mut wire = LoopWire::new(&traffic.frames, traffic.limit, ctl.clone());
        if let Some(r) = traffic.rate {
            wire = wire.with_rate(r);
        }
        let mut credit = Vec::new();
        if let Some(tags) = traffic.flow {
            credit = (0..layout.queues.len())
                .map(|_| Arc::new(Credit::default()))
                .collect();
            wire = wire.with_flow_control(FlowControl::new(
                tags,
                credit.clone(),
                crate::sim::PAUSE_LOW,
            ));
        }
        let tx = hw.wire().map_err(err)?;
        let sent = Arc::new(Sent::default());
        let (s2, ctl2) = (sent.clone(), ctl.clone());
        let spawn = std::thread::Builder::new().name("qemu-wire".into());
        let sender = match self.link {
            // The peer's datagrams are the wire (the sim board's `DgramWire`); what the
            // firmware transmits goes back to the peer through the same link.
            Some((local, peer)) => {
                let link = DgramWire::bind(local, peer, ctl.clone())
                    .map_err(|e| err(format!("{local}: {e}")))?;
                spawn.spawn(move || play(link, tx, &s2, &ctl2, true))
            }
            None => spawn.spawn(move || play(wire, tx, &s2, &ctl2, false)),
        }
        .map_err(err)?;
        Ok(Box::new(QemuSession {
            hw: Some(hw),
            linked: self.link.is_some(),
            ctl,
            credit,
            sent,
            sender: Some(sender),
        }))
    }
}

/// The wire thread: plays `wire` into QEMU's socket, one datagram per frame, and collects
/// what the firmware transmits: for the harness (`Session::transmitted`), or, `linked`, back
/// to the peer ([`WireCtl::transmit`]).
fn play<W: Wire>(
    mut wire: W,
    mut tx: splitrx_qemu_virt::qemu::WireTx,
    sent: &Sent,
    ctl: &WireCtl,
    linked: bool,
) {
    let mut n = 0u64;
    let keep = |tx: &mut splitrx_qemu_virt::qemu::WireTx| {
        tx.drain();
        let got = tx.take_received();
        if linked {
            for f in got {
                // A full socket: wait a little (a link holds the frame), then lose it.
                for _ in 0..100 {
                    if ctl.transmit(&f).is_ok() {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        } else if !got.is_empty() {
            sent.tx
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(got);
        }
    };
    while !wire.finished() {
        if wire.advance() {
            if let Err(e) = tx.send(wire.frame()) {
                if ctl.stop.load(Ordering::Relaxed) {
                    break; // the board is being stopped
                }
                *sent.error.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("sending to QEMU: {e}"));
                break;
            }
            n += 1;
            sent.frames.store(n, Ordering::Release);
            if linked || n.is_multiple_of(64) {
                keep(&mut tx);
            }
        } else if !ctl.start.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        } else {
            keep(&mut tx);
            if linked {
                // A peer's link is mostly idle: do not spin a core on it.
                std::thread::sleep(Duration::from_micros(50));
            } else {
                std::thread::yield_now();
            }
        }
    }
    sent.finished.store(true, Ordering::Release);
    // The firmware may still answer the last frames: keep collecting until stopped.
    while !ctl.stop.load(Ordering::Relaxed) {
        keep(&mut tx);
        std::thread::sleep(Duration::from_millis(1));
    }
    // And what reached the socket before the stop (a linked peer waits for that ACK).
    keep(&mut tx);
}

impl QemuSession {
    fn hw(&self) -> &QemuHw {
        self.hw
            .as_ref()
            .expect("the session owns its board until power_down")
    }
}

impl Session for QemuSession {
    fn seam(&self) -> Arc<dyn BoardSeam> {
        self.hw().seam.clone()
    }
    fn observer(&self, queue: u16) -> Option<Arc<dyn PostObserver>> {
        self.credit
            .get(queue as usize)
            .map(|c| c.clone() as Arc<dyn PostObserver>)
    }
    fn device_up(&mut self) {
        self.hw().unlink();
        self.ctl.start.store(true, Ordering::Release);
    }
    fn wire(&self) -> WireStatus {
        let p = self.hw().page();
        let sent = self.sent.frames.load(Ordering::Acquire);
        let finished = self.sent.finished.load(Ordering::Acquire);
        // Every datagram sent is accounted for at the MAC: taken (placed or dropped by the
        // firmware) or dropped for its FCS. A dead QEMU ends the wire too (the run then fails
        // on what is missing).
        let taken = p.rx_frames + p.fcs_errors;
        WireStatus {
            offered: p.rx_frames,
            offered_bytes: p.rx_bytes,
            done: finished && (taken >= sent || self.hw().alive().is_err()),
        }
    }
    fn stop_wire(&self) {
        self.ctl.stop.store(true, Ordering::Relaxed);
    }
    fn transmitted(&self) -> Option<Vec<Vec<u8>>> {
        if self.linked {
            return Some(self.ctl.take_tx());
        }
        Some(std::mem::take(
            &mut *self.sent.tx.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }
    fn record_link(&self) -> bool {
        self.linked && {
            self.ctl.record.store(true, Ordering::Relaxed);
            true
        }
    }
    fn received(&self) -> Option<Vec<Vec<u8>>> {
        self.ctl
            .record
            .load(Ordering::Relaxed)
            .then(|| self.ctl.take_rx())
    }
    fn record_overflow(&self) -> (u64, u64) {
        self.ctl.record_overflow()
    }
    fn power_down(mut self: Box<Self>) -> TargetReport {
        self.ctl.stop.store(true, Ordering::Relaxed);
        // The sender ends after its current frame; a send blocked on a full socket returns
        // once QEMU is killed below, so join after stopping the board.
        let Some(hw) = self.hw.take() else {
            return TargetReport::default();
        };
        let rep = hw.stop();
        if let Some(t) = self.sender.take() {
            let _ = t.join();
        }
        let mut error = rep.error;
        if let Some(e) = self
            .sent
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            error.get_or_insert(e);
        }
        if rep.page.fcs_errors > 0 {
            error.get_or_insert(format!(
                "{} frames arrived with a bad FCS",
                rep.page.fcs_errors
            ));
        }
        TargetReport {
            mac_offered: Some(rep.page.rx_frames),
            polls: Some((rep.page.polls_busy, rep.page.polls_idle)),
            error,
            log: rep.log,
        }
    }
}
