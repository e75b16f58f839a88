//! splitrx firmware library: the RX datapath and control plane of the SmartNIC's ARM core.
//!
//! `no_std`, no heap: every table is sized by the constants in [`config`], which come from a
//! capacity profile chosen by a cargo feature (`cap-host`, the default, or `cap-cortex-m`). The firmware is
//! generic over the HAL traits of [`hal`]; tests run it against in-memory fakes (`testing`:
//! the `no_std` core with feature `testing`, the Vec-backed extras and test driver with `std`).
//!
//! The firmware owns nothing the host gave it on trust: ring indices are checked by the ring
//! handles (a corrupt index faults the queue, visible in its `QueueHeader::nic_status`), fill
//! descriptors are checked against the registered pools ([`pools`]), and control requests are
//! parsed by value and answered with a status code ([`control`]).
//!
//! Entry point: [`Firmware::boot`] (the control region found through the bootstrap mailbox) or
//! [`Firmware::new`] (told directly, tests), then [`Firmware::poll`] in the main loop.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

#[cfg(any(test, feature = "std"))]
extern crate std;

#[macro_use]
mod fmt;

#[cfg(any(test, feature = "std"))]
pub mod bench_support;
pub mod boot;
pub mod config;
pub mod control;
pub mod datapath;
pub mod hal;
pub mod pools;
pub mod roce;
pub mod rss;
pub mod stats;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use config::{MAX_QUEUES, RX_BATCH};
use control::ControlPlane;
use datapath::RxQueue;
use hal::{Hal, HalParts, MacRx};
use pools::Pools;
use rss::Toeplitz;
use splitrx_shared::abi::MIN_FRAME;
use splitrx_shared::split::{split, SplitConfig};
use stats::{dev, DeviceStats, QueueStats};

pub use control::InitError;

/// Static RAM of the firmware's tables with the active capacity profile: everything in
/// [`Firmware`] except the HAL (pools and their bitmaps, RX queues, RSS tables, control plane,
/// counters). Checked against the profile's `ram_budget` at compile time.
pub const TABLES_RAM: usize = size_of::<Pools>()
    + size_of::<[Option<RxQueue>; MAX_QUEUES]>()
    + size_of::<heapless::Vec<u16, MAX_QUEUES>>()
    + size_of::<Toeplitz>()
    + size_of::<ControlPlane>()
    + size_of::<roce::Responder>()
    + size_of::<DeviceStats>()
    + size_of::<u16>();
const _: () = assert!(
    TABLES_RAM <= config::PROFILE.ram_budget,
    "the firmware's tables exceed the capacity profile's RAM budget"
);
const _: () = assert!(config::PROFILE.ram_bound() <= TABLES_RAM);

/// The firmware: HAL, pool table, RX queues, RSS state and the control plane.
pub struct Firmware<H: Hal> {
    pub(crate) hal: HalParts<H>,
    pub(crate) pools: Pools,
    pub(crate) queues: [Option<RxQueue>; MAX_QUEUES],
    /// Ids of the created queues, ascending (the RSS steering table).
    pub(crate) active: heapless::Vec<u16, MAX_QUEUES>,
    pub(crate) rss: Toeplitz,
    /// Queues RSS spreads over (0 = all created queues).
    pub(crate) rss_queues: u16,
    pub(crate) ctrl: ControlPlane,
    /// The RoCEv2 responder: QP, MR and SRQ tables ([`roce`]).
    pub(crate) roce: roce::Responder,
    pub(crate) stats: DeviceStats,
    /// The bootstrap mailbox, when booted from one ([`Firmware::boot`]): its heartbeat moves.
    pub(crate) mailbox: Option<core::ptr::NonNull<u8>>,
    /// Polls so far (the heartbeat).
    pub(crate) beats: u64,
    /// Verify RoCEv2 ICRCs (on; off only to measure the responder without it).
    pub(crate) verify_icrc: bool,
}

impl<H: Hal> core::fmt::Debug for Firmware<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Firmware")
            .field("active", &self.active)
            .field("rss_queues", &self.rss_queues)
            .field("ctrl", &self.ctrl)
            .finish_non_exhaustive()
    }
}

impl<H: Hal> Firmware<H> {
    /// Processes up to [`config::CMD_BATCH`] control requests (or continues a multi-response
    /// request), then up to [`RX_BATCH`] frames. Returns whether any work was done.
    pub fn poll(&mut self) -> bool {
        let ctrl = self.poll_control();
        let tx = self.roce.poll_tx(&mut self.hal, &mut self.stats);
        let sq = self.roce.poll_sq(&mut self.hal, &mut self.stats);
        let rx = self.poll_rx() != 0;
        let work = ctrl || tx || sq || rx;
        if work {
            self.stats.inc(dev::BUSY_POLLS);
        }
        self.beats = self.beats.wrapping_add(1);
        if let Some(mb) = self.mailbox {
            if self.beats.is_multiple_of(boot::HEARTBEAT_EVERY) {
                // SAFETY: `mb` was translated and alignment-checked by `boot`; the HAL (owned
                // by `self`) keeps it mapped.
                unsafe { boot::store_heartbeat(mb, self.beats) };
            }
        }
        work
    }

    /// Takes up to [`RX_BATCH`] frames from the MAC and places (or drops) each. Returns the
    /// number of frames taken.
    pub fn poll_rx(&mut self) -> usize {
        let cfg = SplitConfig {
            hds_thresh: 0,
            verify_icrc: self.verify_icrc,
        };
        let mut n = 0;
        while n < RX_BATCH {
            let Some(f) = self.hal.rx.peek() else { break };
            n += 1;
            let data = f.data;
            self.stats.inc(dev::MAC_FRAMES);
            self.stats.add(dev::MAC_BYTES, data.len() as u64);
            self.stats.0[dev::LAST_RX_TIMESTAMP] = f.timestamp_ns;
            if data.len() < MIN_FRAME {
                // A runt (or an empty frame): nothing to split or steer; no buffer is taken.
                self.stats.inc(dev::DROP_RUNT);
                self.hal.rx.release();
                continue;
            }
            let r = split(data, &cfg);
            // A RoCEv2 request for an existing QP goes to the responder; everything else
            // (RoCE frames for no QP included) to the RX queues.
            let mut io = roce::resp::Io::<H> {
                tx: &mut self.hal.tx,
                dma: &mut self.hal.dma,
                clock: &mut self.hal.clock,
            };
            if r.roce.is_some()
                && (self.roce.cm_receive(&mut io, &mut self.stats, data, &r)
                    || self.roce.receive(&mut io, &mut self.stats, data, &r))
            {
                self.hal.rx.release();
                continue;
            }
            let hash = self.rss.flow_hash(data, &r);
            match steer(&self.active, self.rss_queues, hash)
                .and_then(|q| self.queues.get_mut(q as usize))
                .and_then(Option::as_mut)
            {
                Some(q) => q.receive(
                    &mut self.pools,
                    &mut self.hal.dma,
                    data,
                    &r,
                    hash,
                    f.timestamp_ns,
                ),
                None => self.stats.inc(dev::DROP_NO_QUEUE),
            }
            self.hal.rx.release();
        }
        n
    }

    /// The HAL instances (tests feed the fake MAC and inspect the fake DMA through this).
    pub fn hal(&self) -> &HalParts<H> {
        &self.hal
    }
    pub fn hal_mut(&mut self) -> &mut HalParts<H> {
        &mut self.hal
    }
    /// Counters of queue `id`.
    pub fn queue_stats(&self, id: u16) -> Option<&QueueStats> {
        self.queue(id).map(|q| &q.stats)
    }
    /// A queue's state, for inspection.
    pub fn queue(&self, id: u16) -> Option<&RxQueue> {
        self.queues.get(id as usize).and_then(Option::as_ref)
    }
    /// Turns checksum verification on or off on every created queue (on by default; off only
    /// to measure its cost, see `benches/datapath.rs`).
    pub fn set_csum_offload(&mut self, on: bool) {
        for q in self.queues.iter_mut().flatten() {
            q.csum_offload = on;
        }
    }
    /// Turns RoCEv2 ICRC verification on or off (on by default; off only to measure the
    /// responder without it, see `benches/roce.rs`: unverified packets are taken as good).
    pub fn set_icrc_verify(&mut self, on: bool) {
        self.verify_icrc = on;
    }
    /// Device-wide counters.
    pub fn device_stats(&self) -> &DeviceStats {
        &self.stats
    }
    /// Buffers of pool `id` the NIC currently holds (posted bits set).
    pub fn pool_posted(&self, id: u8) -> Option<u32> {
        self.pools.by_id(id).map(|p| p.posted_count())
    }
}

/// Maps a flow hash to a queue id: `hash % n` over the first `n` created queues in id order,
/// `n = rss_queues` (or all created queues when 0).
#[inline(always)]
fn steer(active: &[u16], rss_queues: u16, hash: u32) -> Option<u16> {
    let n = match rss_queues {
        0 => active.len(),
        r => active.len().min(r as usize),
    };
    if n == 0 {
        return None;
    }
    // 32-bit division: the 64-bit one costs several times more on most cores.
    active.get((hash % n as u32) as usize).copied()
}
