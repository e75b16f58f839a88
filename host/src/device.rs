//! Device bring-up and teardown over the board seam ([`crate::seam`]), for any board.
//!
//! [`DeviceLayout`] says where everything lives in the host window (mailbox, control region,
//! one region per RX queue, header pools) and in device window 0 (payload pools), so a board
//! can size its windows before anything is mapped. [`Device::bring_up`] maps the host window,
//! lays out the control region, posts the bootstrap mailbox, waits for the firmware to attach,
//! then through the control plane: sets RSS, registers a header and a payload pool per queue
//! (carved from the windows by [`DeviceWindow`] providers), creates each queue and starts its
//! poller thread. [`Device::finish`] tears down in an order that accounts for every buffer:
//! drain every completion ring, read the NIC's counters, reset each queue (the NIC returns every
//! buffer it holds; the ledger must agree exactly), destroy the queues, unregister the pools,
//! audit them.

use crate::ctrl::{CtrlClient, CtrlError, Deadline};
use crate::pool::{AuditReport, PagePool, PoolConfig, PoolStats};
use crate::provider::{DeviceWindow, DeviceWindowConfig};
use crate::queue::{
    spawn_poller, Poller, PostObserver, QueueCounters, ResetOutcome, RxQueue, Sink,
};
use crate::seam::{BoardSeam, HostWindow, Liveness, LivenessProbe, MailboxState, SeamError};
use splitrx_shared::abi::{abi_major, ABI_VERSION};
use splitrx_shared::abi::{
    CreateRxQueueArgs, FillDesc, PoolMode, RegisterPoolArgs, RingKind, RxCompletion, RSS_KEY_LEN,
};
use splitrx_shared::bootstrap::MAILBOX_LEN;
use splitrx_shared::region::RegionLayout;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use zerocopy::little_endian::{U16, U32, U64};

/// Page size every region and pool is aligned to.
pub const PAGE: u64 = 4096;

/// How long a control request may take before the device gives up on the firmware.
pub const CTRL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the firmware may take to attach the posted mailbox.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);

/// What the device is asked to be: queues, pools, rings, split threshold, RSS key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    pub queues: u16,
    pub mode: PoolMode,
    /// Payload buffer size (page mode: one payload each; packed: several).
    pub buf_size: u32,
    pub hdr_buf_size: u32,
    /// Header buffers per queue.
    pub bufs_per_queue: u32,
    /// Payload buffers per queue.
    pub pay_bufs_per_queue: u32,
    pub fill_ring: u32,
    pub cq_ring: u32,
    pub hds_thresh: u32,
    pub rss_key: [u8; RSS_KEY_LEN],
    /// Bytes of the host window set aside for RoCE QP and SRQ regions (0: no RoCE).
    pub roce_host_bytes: u64,
    /// Bytes of device window 0 set aside for RoCE memory (MRs, SRQ pools).
    pub roce_dev_bytes: u64,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            queues: 2,
            mode: PoolMode::Page,
            buf_size: 9216,
            hdr_buf_size: 2048,
            bufs_per_queue: 2048,
            pay_bufs_per_queue: 2048,
            fill_ring: 1024,
            cq_ring: 2048,
            hds_thresh: 0,
            rss_key: crate::verify::RSS_KEY,
            roce_host_bytes: 0,
            roce_dev_bytes: 0,
        }
    }
}

/// Why a device could not be brought up (or a control call failed).
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{0}")]
    Config(String),
    #[error("board seam: {0}")]
    Seam(#[from] SeamError),
    #[error("control plane: {0}")]
    Ctrl(#[from] CtrlError),
    #[error("pool: {0}")]
    Provider(#[from] crate::provider::ProviderError),
    #[error("region layout: {0}")]
    Layout(#[from] splitrx_shared::region::LayoutError),
}

const fn page_up(v: u64) -> u64 {
    (v + PAGE - 1) & !(PAGE - 1)
}

/// Where everything lives: offsets in the host window and in device window 0.
#[derive(Clone, Debug)]
pub struct DeviceLayout {
    /// The control region, at `ctrl_offset` (after the bootstrap mailbox).
    pub ctrl: RegionLayout,
    pub ctrl_offset: u64,
    /// Per queue: offset of its region in the host window, and its layout.
    pub queues: Vec<(u64, RegionLayout)>,
    /// Offsets of the header pools in the host window and of the payload pools in device
    /// window 0.
    pub hdr_pools: Vec<u64>,
    pub pay_pools: Vec<u64>,
    /// The RoCE arenas (offset, length): QP/SRQ regions in the host window, RoCE memory in
    /// device window 0 ([`crate::roce::Rdma`]).
    pub roce_host: (u64, u64),
    pub roce_dev: (u64, u64),
    /// Bytes the host window and device window 0 must have.
    pub host_len: u64,
    pub device_len: u64,
}

impl DeviceLayout {
    /// Checks `cfg` and lays it out.
    pub fn new(cfg: &DeviceConfig) -> Result<DeviceLayout, DeviceError> {
        check_config(cfg)?;
        let ctrl = RegionLayout::new(
            u16::MAX,
            &[(RingKind::CtrlRequest, 64), (RingKind::CtrlResponse, 64)],
        )?;
        let ctrl_offset = MAILBOX_LEN;
        let mut off = page_up(ctrl_offset + ctrl.size);
        let mut queues = Vec::new();
        for q in 0..cfg.queues {
            let l = RegionLayout::new(
                q,
                &[
                    (RingKind::HeaderFill, cfg.fill_ring),
                    (RingKind::PayloadFill, cfg.fill_ring),
                    (RingKind::RxCompletion, cfg.cq_ring),
                ],
            )?;
            queues.push((off, l.clone()));
            off = page_up(off + l.size);
        }
        let mut hdr_pools = Vec::new();
        for _ in 0..cfg.queues {
            hdr_pools.push(off);
            off = page_up(off + cfg.hdr_buf_size as u64 * cfg.bufs_per_queue as u64);
        }
        let roce_host = (off, page_up(cfg.roce_host_bytes));
        let host_len = off + roce_host.1;
        let (mut dev, mut pay_pools) = (0u64, Vec::new());
        for _ in 0..cfg.queues {
            pay_pools.push(dev);
            dev = page_up(dev + cfg.buf_size as u64 * cfg.pay_bufs_per_queue as u64);
        }
        let roce_dev = (dev, page_up(cfg.roce_dev_bytes));
        dev += roce_dev.1;
        Ok(DeviceLayout {
            ctrl,
            ctrl_offset,
            queues,
            hdr_pools,
            pay_pools,
            roce_host,
            roce_dev,
            host_len,
            device_len: dev,
        })
    }
}

fn check_config(cfg: &DeviceConfig) -> Result<(), DeviceError> {
    let bad = |m: &str| Err(DeviceError::Config(m.to_string()));
    if cfg.queues == 0 || cfg.queues > 4 {
        return bad("--queues must be 1..=4 (the firmware has 8 pools, two per queue)");
    }
    if cfg.buf_size < 64 || !cfg.buf_size.is_multiple_of(64) {
        return bad("--buf-size must be a multiple of 64, at least 64");
    }
    if cfg.hdr_buf_size < 128 || !cfg.hdr_buf_size.is_multiple_of(64) {
        return bad("the header buffer size must be a multiple of 64, at least 128");
    }
    if !cfg.fill_ring.is_power_of_two() || !cfg.cq_ring.is_power_of_two() || cfg.fill_ring < 128 {
        return bad("ring sizes must be powers of two (fill rings at least 128)");
    }
    if cfg.bufs_per_queue < 256 || cfg.pay_bufs_per_queue < 64 {
        return bad("at least 256 buffers per pool");
    }
    Ok(())
}

/// A device up on a board: the control client, one poller thread per queue.
pub struct Device<S: Sink + 'static> {
    pub cfg: DeviceConfig,
    pub layout: DeviceLayout,
    pub ctrl: Arc<Mutex<CtrlClient>>,
    pub pollers: Vec<Poller<S>>,
    /// What the firmware published when it attached.
    pub attached: MailboxState,
    seam: Arc<dyn BoardSeam>,
    liveness: LivenessProbe,
    /// The host's mapping of the host window. The control client's rings point into it: it is
    /// declared after `ctrl` (fields drop in order) and the pollers' queues hold their own
    /// reference.
    host: Arc<HostWindow>,
}

impl<S: Sink + 'static> std::fmt::Debug for Device<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("board", &self.seam.board())
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Everything a finished device reports.
#[derive(Debug)]
pub struct DeviceOutcome<S> {
    pub sinks: Vec<S>,
    pub queues: Vec<QueueCounters>,
    /// The first completion each queue rejected.
    pub completion_errors: Vec<Option<String>>,
    /// Final resets (every buffer back from the NIC), per queue.
    pub finish: Vec<Result<ResetOutcome, String>>,
    /// NIC counters per queue (read through the control plane before the queues were reset),
    /// and the device-wide ones.
    pub nic_queues: Vec<Vec<u64>>,
    pub nic_device: Vec<u64>,
    /// Pool stats and audits, per queue: (header pool, payload pool).
    pub pool_stats: Vec<(PoolStats, PoolStats)>,
    pub audits: Vec<(Result<AuditReport, String>, Result<AuditReport, String>)>,
    pub ledger_errors: u64,
    /// Tokens still outstanding at the end (not returned by the application).
    pub tokens_outstanding: u64,
}

fn wait() -> Deadline {
    Deadline::after(CTRL_TIMEOUT)
}

impl<S: Sink + 'static> Device<S> {
    /// Brings the device up on `seam` (see the module docs). Queue `q`'s frames go to
    /// `sink(q)`; `observer(q)`, when it returns one, is told about every post and reset of
    /// queue `q` (flow control).
    pub fn bring_up(
        seam: Arc<dyn BoardSeam>,
        cfg: &DeviceConfig,
        mut sink: impl FnMut(u16) -> S,
        mut observer: impl FnMut(u16) -> Option<Arc<dyn PostObserver>>,
    ) -> Result<Device<S>, DeviceError> {
        let lay = DeviceLayout::new(cfg)?;
        let hw = seam.host_window().clone();
        let Some(dw) = seam.device_windows().first().cloned() else {
            return Err(DeviceError::Config(format!(
                "board {} has no device window",
                seam.board()
            )));
        };
        if hw.len < lay.host_len {
            return Err(DeviceError::Config(format!(
                "the {} has {} bytes; this configuration needs {}",
                hw.name, hw.len, lay.host_len
            )));
        }
        if dw.len < lay.device_len {
            return Err(DeviceError::Config(format!(
                "the {} has {} bytes; this configuration needs {}",
                dw.name, dw.len, lay.device_len
            )));
        }
        let host = Arc::new(HostWindow::map(&hw)?);
        let base = host.base();
        // SAFETY: the control region lies inside the host window mapping at `ctrl_offset`
        // (64-aligned, `ctrl.size` bytes reserved by the layout, the mapping is `host_len` or
        // more); the firmware does not know about it until the mailbox is posted below.
        let cbase = unsafe { NonNull::new_unchecked(base.as_ptr().add(lay.ctrl_offset as usize)) };
        // SAFETY: as above.
        unsafe { lay.ctrl.init(cbase, lay.ctrl.size as usize)? };
        // SAFETY: the rings were just initialised inside the mapping, which `host` keeps alive
        // for as long as the client (the device owns both; the client is dropped first); one
        // producer and one consumer.
        let client = unsafe {
            CtrlClient::new(
                lay.ctrl.producer(cbase, RingKind::CtrlRequest)?,
                lay.ctrl.consumer(cbase, RingKind::CtrlResponse)?,
            )
        };
        let generation = host.mailbox().fw_generation.wrapping_add(1).max(1);
        host.post_mailbox(lay.ctrl_offset, lay.ctrl.size, generation);
        let attached = host.wait_attached(generation, seam.as_ref(), ATTACH_TIMEOUT)?;
        let ctrl = Arc::new(Mutex::new(client));
        let mut pollers = Vec::new();
        {
            let mut c = ctrl.lock().unwrap_or_else(|p| p.into_inner());
            let v = c.get_version(&mut wait())?;
            let fw_abi = v.abi_version.get();
            if abi_major(fw_abi) != abi_major(ABI_VERSION) {
                return Err(DeviceError::Config(format!(
                    "the firmware speaks ABI {}.{}, this host {}.{}",
                    fw_abi >> 16,
                    fw_abi & 0xffff,
                    ABI_VERSION >> 16,
                    ABI_VERSION & 0xffff
                )));
            }
            c.set_rss(cfg.queues, &cfg.rss_key, &mut wait())?;
            for qid in 0..cfg.queues {
                let i = qid as usize;
                let (hdr_id, pay_id) = (2 * qid as u8, 2 * qid as u8 + 1);
                let hdr_bus = hw.bus(lay.hdr_pools[i]);
                let pay_bus = dw.bus(lay.pay_pools[i]);
                let ring_size =
                    (cfg.bufs_per_queue.max(cfg.pay_bufs_per_queue) as usize).next_power_of_two();
                let hdr_pool = PagePool::new(
                    PoolConfig {
                        pool_id: hdr_id,
                        mode: PoolMode::Page,
                        ring_size,
                        ..PoolConfig::new(hdr_id)
                    },
                    Box::new(DeviceWindow::new(DeviceWindowConfig {
                        offset: hw.file_offset + lay.hdr_pools[i],
                        host_readable: hw.host_readable,
                        ..DeviceWindowConfig::open(
                            &hw.path,
                            cfg.hdr_buf_size,
                            cfg.bufs_per_queue,
                            hdr_bus,
                        )
                    })),
                )?;
                let pay_pool = PagePool::new(
                    PoolConfig {
                        pool_id: pay_id,
                        mode: cfg.mode,
                        align_log2: 6,
                        ring_size,
                        ..PoolConfig::new(pay_id)
                    },
                    Box::new(DeviceWindow::new(DeviceWindowConfig {
                        offset: dw.file_offset + lay.pay_pools[i],
                        host_readable: dw.host_readable,
                        ..DeviceWindowConfig::open(
                            &dw.path,
                            cfg.buf_size,
                            cfg.pay_bufs_per_queue,
                            pay_bus,
                        )
                    })),
                )?;
                for (id, bus, size, count, mode) in [
                    (
                        hdr_id,
                        hdr_bus,
                        cfg.hdr_buf_size,
                        cfg.bufs_per_queue,
                        PoolMode::Page,
                    ),
                    (
                        pay_id,
                        pay_bus,
                        cfg.buf_size,
                        cfg.pay_bufs_per_queue,
                        cfg.mode,
                    ),
                ] {
                    c.register_pool(
                        &RegisterPoolArgs {
                            bus_base: U64::new(bus),
                            window_len: U64::new(size as u64 * count as u64),
                            buf_size: U32::new(size),
                            count: U32::new(count),
                            pool: id,
                            mode: mode as u8,
                            align_log2: if mode == PoolMode::Packed { 6 } else { 0 },
                            _pad: 0,
                        },
                        &mut wait(),
                    )?;
                }
                let (off, ql) = &lay.queues[i];
                // SAFETY: the queue region lies inside the host window mapping at `off`
                // (page-aligned, `ql.size` bytes reserved by the layout); the NIC has not been
                // told about it yet, so no ring handle exists.
                let qbase = unsafe { NonNull::new_unchecked(base.as_ptr().add(*off as usize)) };
                // SAFETY: as above.
                unsafe { ql.init(qbase, ql.size as usize)? };
                // SAFETY: rings initialised above in a mapping kept alive by the queue (it holds
                // `host`); one producer per fill ring and one consumer for the completion ring
                // on the host side.
                let rings = unsafe {
                    (
                        ql.producer::<FillDesc>(qbase, RingKind::HeaderFill)?,
                        ql.producer::<FillDesc>(qbase, RingKind::PayloadFill)?,
                        ql.consumer::<RxCompletion>(qbase, RingKind::RxCompletion)?,
                    )
                };
                c.create_rx_queue(
                    &CreateRxQueueArgs {
                        region_bus_addr: U64::new(hw.bus(*off)),
                        region_len: U64::new(ql.size),
                        queue: U16::new(qid),
                        hdr_pool: hdr_id,
                        pay_pool: pay_id,
                        hds_thresh: U32::new(cfg.hds_thresh),
                    },
                    &mut wait(),
                )?;
                let mut queue = RxQueue::new(qid, rings, hdr_pool, pay_pool, host.clone());
                // SAFETY: `qbase` is where `ql` was initialised, inside the host window mapping
                // the queue holds (`host`).
                unsafe { queue.set_region(qbase, ql.clone()) };
                if let Some(o) = observer(qid) {
                    queue.set_observer(o);
                }
                // Fill the rings before traffic starts.
                while queue.refill() > 0 {}
                pollers.push(spawn_poller(queue, sink(qid), ctrl.clone()));
            }
        }
        Ok(Device {
            cfg: cfg.clone(),
            layout: lay,
            ctrl,
            pollers,
            attached,
            seam,
            liveness: LivenessProbe::default(),
            host,
        })
    }

    /// The board this device runs on.
    pub fn seam(&self) -> &Arc<dyn BoardSeam> {
        &self.seam
    }

    /// One look at the firmware's liveness (the heartbeat must move between two looks).
    pub fn liveness(&mut self) -> Liveness {
        self.liveness.look(&self.host, self.seam.as_ref())
    }

    /// Polls every completion ring until it is empty (call once the wire has ended).
    pub fn drain(&self) {
        for p in &self.pollers {
            p.drain();
        }
    }

    /// The device's RoCE side over the arenas `DeviceConfig::roce_host_bytes` and
    /// `roce_dev_bytes` set aside (`None` when both are 0). Call it once: each call hands out
    /// the whole arenas again.
    pub fn rdma(&self) -> Option<crate::roce::Rdma> {
        if self.layout.roce_host.1 == 0 {
            return None;
        }
        let dw = self.seam.device_windows().first()?.clone();
        Some(crate::roce::Rdma::new(
            self.ctrl.clone(),
            self.host.clone(),
            dw,
            self.layout.roce_host,
            self.layout.roce_dev,
        ))
    }

    /// The NIC's counters of queue `q` (`u16::MAX`: the device-wide ones).
    pub fn read_stats(&self, q: u16) -> Result<Vec<u64>, CtrlError> {
        let mut c = self.ctrl.lock().unwrap_or_else(|p| p.into_inner());
        c.read_stats(q, &mut wait())
    }

    /// Tears the device down and accounts for every buffer (see the module docs).
    pub fn finish(mut self) -> DeviceOutcome<S> {
        self.drain();
        let mut nic_queues = Vec::new();
        for q in 0..self.cfg.queues {
            nic_queues.push(self.read_stats(q).unwrap_or_default());
        }
        let nic_device = self.read_stats(u16::MAX).unwrap_or_default();
        let mut out = DeviceOutcome {
            sinks: Vec::new(),
            queues: Vec::new(),
            completion_errors: Vec::new(),
            finish: Vec::new(),
            nic_queues,
            nic_device,
            pool_stats: Vec::new(),
            audits: Vec::new(),
            ledger_errors: 0,
            tokens_outstanding: 0,
        };
        let mut queues = Vec::new();
        for p in std::mem::take(&mut self.pollers) {
            match p.finish() {
                Some(exit) => {
                    out.finish
                        .push(exit.finish.unwrap_or_else(|| Err("no final reset".into())));
                    out.queues.push(exit.queue.counters());
                    out.completion_errors
                        .push(exit.queue.first_error().map(|e| e.to_string()));
                    out.sinks.push(exit.sink);
                    queues.push(exit.queue);
                }
                None => out.finish.push(Err("poller thread panicked".into())),
            }
        }
        {
            let mut c = self.ctrl.lock().unwrap_or_else(|p| p.into_inner());
            for q in &queues {
                let _ = c.destroy_rx_queue(q.id(), &mut wait());
                for id in [q.hdr_pool.id(), q.pay_pool.id()] {
                    let _ = c.unregister_pool(id, &mut wait());
                }
            }
        }
        for q in &queues {
            let audit = |p: &PagePool| p.audit().map_err(|e| e.to_string());
            out.audits.push((audit(&q.hdr_pool), audit(&q.pay_pool)));
            let (hs, ps) = (q.hdr_pool.stats(), q.pay_pool.stats());
            out.tokens_outstanding += hs.tokens_outstanding + ps.tokens_outstanding;
            out.pool_stats.push((hs, ps));
            out.ledger_errors +=
                q.hdr_pool.ledger_counters().errors() + q.pay_pool.ledger_counters().errors();
        }
        out
    }
}
