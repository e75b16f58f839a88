//! The `sim` target: the firmware on a thread of this process (`splitrx_sim`), sharing two
//! `/dev/shm` files with the host.

use crate::target::{Session, Target, TargetError, TargetReport, Traffic, WireStatus};
use splitrx_host::device::DeviceLayout;
use splitrx_host::queue::PostObserver;
use splitrx_host::seam::BoardSeam;
use splitrx_sim::seam::{BarAccess, SimHw};
use splitrx_sim::wire::{Credit, DgramWire, FlowControl, LoopWire, WireCtl};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Lossless mode: the wire holds a queue's frames while fewer than this many of its posted
/// buffers are not yet claimed by frames already sent.
pub const PAUSE_LOW: i64 = 1;

/// The in-process sim board.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimTarget {
    /// How the host may read the emulated GPU BAR (default: through its mapping). The other
    /// settings exercise the paths a real GPU BAR takes: verification through the board's
    /// reader, or no payload verification possible.
    pub bar: BarAccess,
    /// Link the MAC to a peer over UDP instead of playing the session's traffic: (local
    /// address, peer address), one datagram per frame each way ([`DgramWire`]).
    pub link: Option<(SocketAddr, SocketAddr)>,
}

struct SimSession {
    hw: Option<SimHw>,
    credit: Vec<Arc<Credit>>,
    linked: bool,
}

impl Target for SimTarget {
    fn name(&self) -> &str {
        "sim"
    }
    fn lossless(&self) -> bool {
        true
    }
    fn power_up(
        &self,
        layout: &DeviceLayout,
        traffic: Traffic,
    ) -> Result<Box<dyn Session>, TargetError> {
        let ctl = Arc::new(WireCtl::default());
        let err = |e: String| TargetError {
            target: "sim".into(),
            message: e,
        };
        if let Some((local, peer)) = self.link {
            let wire = DgramWire::bind(local, peer, ctl.clone())
                .map_err(|e| err(format!("{local}: {e}")))?;
            let hw = SimHw::start_with(layout.host_len, layout.device_len, wire, ctl, self.bar)
                .map_err(|e| err(e.to_string()))?;
            return Ok(Box::new(SimSession {
                hw: Some(hw),
                credit: Vec::new(),
                linked: true,
            }));
        }
        let mut wire = LoopWire::new(&traffic.frames, traffic.limit, ctl.clone());
        if let Some(r) = traffic.rate {
            wire = wire.with_rate(r);
        }
        let mut credit = Vec::new();
        if let Some(tags) = traffic.flow {
            credit = (0..layout.queues.len())
                .map(|_| Arc::new(Credit::default()))
                .collect();
            wire = wire.with_flow_control(FlowControl::new(tags, credit.clone(), PAUSE_LOW));
        }
        let hw = SimHw::start_with(layout.host_len, layout.device_len, wire, ctl, self.bar)
            .map_err(|e| err(e.to_string()))?;
        Ok(Box::new(SimSession {
            hw: Some(hw),
            credit,
            linked: false,
        }))
    }
}

impl SimSession {
    fn hw(&self) -> &SimHw {
        self.hw
            .as_ref()
            .expect("the session owns its board until power_down")
    }
}

impl Session for SimSession {
    fn seam(&self) -> Arc<dyn BoardSeam> {
        self.hw().seam.clone()
    }
    fn observer(&self, queue: u16) -> Option<Arc<dyn PostObserver>> {
        self.credit
            .get(queue as usize)
            .map(|c| c.clone() as Arc<dyn PostObserver>)
    }
    fn device_up(&mut self) {
        let hw = self.hw();
        hw.unlink();
        hw.start_traffic();
    }
    fn wire(&self) -> WireStatus {
        let w = &self.hw().wire;
        WireStatus {
            offered: w.offered.load(Ordering::Relaxed),
            offered_bytes: w.offered_bytes.load(Ordering::Relaxed),
            done: w.done.load(Ordering::Acquire),
        }
    }
    fn stop_wire(&self) {
        self.hw().wire.stop.store(true, Ordering::Relaxed);
    }
    fn transmitted(&self) -> Option<Vec<Vec<u8>>> {
        Some(self.hw().wire.take_tx())
    }
    fn record_link(&self) -> bool {
        self.linked && {
            self.hw().wire.record.store(true, Ordering::Relaxed);
            true
        }
    }
    fn received(&self) -> Option<Vec<Vec<u8>>> {
        let w = &self.hw().wire;
        w.record.load(Ordering::Relaxed).then(|| w.take_rx())
    }
    fn record_overflow(&self) -> (u64, u64) {
        self.hw().wire.record_overflow()
    }
    fn power_down(mut self: Box<Self>) -> TargetReport {
        let Some(hw) = self.hw.take() else {
            return TargetReport::default();
        };
        match hw.stop() {
            Some(fw) => TargetReport {
                mac_offered: Some(fw.mac_offered),
                polls: Some((fw.polls_busy, fw.polls_idle)),
                error: fw.boot_error,
                log: Vec::new(),
            },
            None => TargetReport {
                error: Some("the sim firmware thread panicked".into()),
                ..TargetReport::default()
            },
        }
    }
}
