//! A **target**: a board the harness powers up, feeds traffic to, and powers down. The host
//! side (the host library's [`Device`](splitrx_host::device::Device), its pollers and pools)
//! always runs in the harness process; the firmware runs wherever the target puts it: a thread
//! (`sim`), another process (QEMU), another machine (a real board). So the harness assumes
//! nothing of the firmware but the seam ([`BoardSeam`]) and the wire ([`Session::wire`]), and
//! it reads device memory only through the seam's reader when the host mapping cannot.

use splitrx_host::device::DeviceLayout;
use splitrx_host::queue::PostObserver;
use splitrx_host::seam::BoardSeam;
use std::sync::Arc;

pub use splitrx_sim::pace::Rate;

/// The traffic a session plays on the board's wire.
#[derive(Clone, Debug)]
pub struct Traffic {
    /// One period of frames; the wire repeats it.
    pub frames: Arc<Vec<Vec<u8>>>,
    /// Frames to send in total (`None`: until stopped).
    pub limit: Option<u64>,
    /// Pacing.
    pub rate: Option<Rate>,
    /// Lossless link: per frame of `frames`, (queue, uses a header buffer, uses a payload
    /// buffer); the wire then sends a frame only while its queue has a buffer posted for it.
    /// A target that cannot hold its wire says so ([`Target::lossless`]).
    pub flow: Option<Vec<(u16, bool, bool)>>,
}

/// What the wire did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireStatus {
    /// Frames the MAC took from the wire (placed or dropped).
    pub offered: u64,
    pub offered_bytes: u64,
    /// The wire ended and the firmware released its last frame.
    pub done: bool,
}

/// What a target reports when powered down.
#[derive(Clone, Debug, Default)]
pub struct TargetReport {
    /// Frames the firmware's MAC saw, when the target can tell.
    pub mac_offered: Option<u64>,
    /// Busy / idle polls of the firmware's main loop, when the target can tell.
    pub polls: Option<(u64, u64)>,
    /// Why the firmware did not run, if it did not.
    pub error: Option<String>,
    /// The firmware's own log (decoded), when the target captures it (`qemu`: defmt over
    /// the UART).
    pub log: Vec<String>,
}

/// Why a target could not be powered up.
#[derive(Debug, thiserror::Error)]
#[error("target {target}: {message}")]
pub struct TargetError {
    pub target: String,
    pub message: String,
}

/// A board the harness can drive.
pub trait Target {
    /// `sim`, `qemu`, `probe`, ...
    fn name(&self) -> &str;
    /// Whether the wire can hold frames until the receiver has buffers (lossless runs).
    fn lossless(&self) -> bool;
    /// The longest frame the target's wire carries intact, if it has a limit (`qemu`: QEMU's
    /// datagram buffer). [`crate::run::run`] leaves longer frames out of the source (the
    /// wire's and the verifier's copies alike) and reports how many.
    fn max_frame(&self) -> Option<usize> {
        None
    }
    /// Powers the board up with windows large enough for `layout` and `traffic` waiting on the
    /// wire (nothing flows until [`Session::device_up`]).
    fn power_up(
        &self,
        layout: &DeviceLayout,
        traffic: Traffic,
    ) -> Result<Box<dyn Session>, TargetError>;
}

/// A powered-up board.
pub trait Session: Send {
    /// What the host brings the device up over.
    fn seam(&self) -> Arc<dyn BoardSeam>;
    /// Told about queue `queue`'s posts and resets (the wire's flow control), if the target
    /// meters its wire.
    fn observer(&self, queue: u16) -> Option<Arc<dyn PostObserver>>;
    /// The host device is up (every host mapping exists): traffic may flow.
    fn device_up(&mut self);
    fn wire(&self) -> WireStatus;
    /// Ends the wire after its current frame.
    fn stop_wire(&self);
    /// Takes the frames the firmware transmitted since the last call (RoCE ACKs, READ
    /// responses, CNPs), oldest first. A target that cannot capture its transmit side returns
    /// `None`.
    fn transmitted(&self) -> Option<Vec<Vec<u8>>>;
    /// Starts recording the board's link to a real peer (`SimTarget::link`,
    /// `QemuTarget::link`), both ways, before the traffic flows: from then on
    /// [`Session::received`] returns the frames the MAC took from the peer and
    /// [`Session::transmitted`] the frames sent to it. `false`: the session has no link or
    /// cannot record it.
    fn record_link(&self) -> bool {
        false
    }
    /// Takes the frames the MAC received from a recorded link since the last call, oldest
    /// first (`None`: not recording).
    fn received(&self) -> Option<Vec<Vec<u8>>> {
        None
    }
    /// Frames a recorded link could not keep (its logs were full): (received, transmitted).
    fn record_overflow(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Stops the firmware and reports.
    fn power_down(self: Box<Self>) -> TargetReport;
}
