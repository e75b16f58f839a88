//! `splitrx run` on the sim board: the real firmware library and the real host crate, talking
//! only through shared memory.
//!
//! Memory: two files under `/dev/shm` (removed at the end), each mapped twice — once by the
//! host, once by the board (the firmware's [`SimMem`](splitrx_sim::board::SimMem) and DMA
//! engine use only their own mappings):
//! - the **host window** (bus `HOST_MEM_BUS_BASE`): control region (request/response rings),
//!   one region per RX queue (header fill, payload fill, completion ring), and the header
//!   buffer pools;
//! - the **GPU BAR** (bus `GPU_BAR_BUS_BASE`): the payload pools, served to the host pools by
//!   the [`DeviceWindow`] provider.
//!
//! [`SimRig`] brings everything up (files, rings, the firmware thread, pools registered and
//! queues created through the control plane, one poller thread per queue), lets traffic run,
//! and tears it down in an order that lets every buffer be accounted for: wait for the wire to
//! end, drain every completion ring, read the NIC's counters, reset each queue (the NIC returns
//! every buffer it holds; the ledger must agree exactly), destroy the queues, audit the pools.
//! [`run`] is the `splitrx run` command on top of it, with a verifying sink per queue.

use crate::ctrl::{CtrlClient, CtrlError, Deadline};
use crate::pool::{AuditReport, PagePool, PoolConfig, PoolStats};
use crate::provider::{DeviceWindow, DeviceWindowConfig};
use crate::queue::{spawn_poller, Poller, QueueCounters, ResetOutcome, RxQueue, Sink};
use crate::region::RegionLayout;
use crate::token::Rx;
use crate::verify::{Expected, NicParams, QueueVerdict, QueueVerifier, RSS_KEY};
use splitrx_shared::abi::{
    CreateRxQueueArgs, CtrlOp, FillDesc, PoolArgs, PoolMode, RegisterPoolArgs, RingKind,
    RxCompletion,
};
use splitrx_sim::board::{BoardConfig, FirmwareReport, FlowControl, LoopWire, SimBoard, WireCtl};
use splitrx_sim::firmware::stats::{dev, q, Q_NAMES};
use splitrx_sim::replay::Rate;
use splitrx_sim::shm::{map, ShmRegion, PAGE};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zerocopy::little_endian::{U16, U32, U64};

/// Frames in one period of a synthetic source (the wire repeats them).
pub const SYNTHETIC_PERIOD: usize = 8192;
/// Frames `splitrx run` sends when neither `--frames` nor `--duration` is given.
pub const DEFAULT_FRAMES: u64 = 200_000;
/// Seed of the built-in workload.
pub const DEFAULT_SEED: u64 = 0x5eed_5911_7e00;

/// Where the frames come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// The synthetic generator (`splitrx_sim::traffic`), `spec` in its `--synthetic` syntax.
    Synthetic { spec: String, seed: u64 },
    /// A pcap/pcapng capture (any link type `capture` converts to Ethernet).
    Pcap(PathBuf),
    /// Frames given directly (tests).
    Frames(Arc<Vec<Vec<u8>>>),
}

/// Everything `splitrx run` can be told.
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub source: Source,
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
    /// Frames to send (`None`: one pass of a capture / [`DEFAULT_FRAMES`] synthetic frames,
    /// unless `duration` is set).
    pub frames: Option<u64>,
    pub duration: Option<Duration>,
    pub rate: Option<Rate>,
    /// Check every delivered frame against the source.
    pub verify: bool,
    /// Lossless link: the sim wire honours flow control (PAUSE) asserted while an RX queue
    /// has few buffers posted. Off: the wire never waits and the NIC drops at the MAC.
    pub lossless: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            source: Source::Synthetic {
                spec: "mix".into(),
                seed: DEFAULT_SEED,
            },
            queues: 2,
            mode: PoolMode::Page,
            buf_size: 9216,
            hdr_buf_size: 2048,
            bufs_per_queue: 2048,
            pay_bufs_per_queue: 2048,
            fill_ring: 1024,
            cq_ring: 2048,
            hds_thresh: 0,
            frames: None,
            duration: None,
            rate: None,
            verify: true,
            lossless: true,
        }
    }
}

/// Lossless mode: the wire holds a queue's frames while fewer than this many of its posted
/// buffers are not yet claimed by frames already sent (> the firmware's fill cache refill
/// granularity, so the NIC never runs dry).
pub const PAUSE_LOW: i64 = 1;

/// Why a run could not be done (a verification failure is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Config(String),
    #[error("source: {0}")]
    Source(String),
    #[error("shared memory: {0}")]
    Shm(#[from] splitrx_sim::shm::ShmError),
    #[error("board: {0}")]
    Board(#[from] splitrx_sim::board::BoardError),
    #[error("control plane: {0}")]
    Ctrl(#[from] CtrlError),
    #[error("pool: {0}")]
    Provider(#[from] crate::provider::ProviderError),
    #[error("region layout: {0}")]
    Layout(#[from] crate::region::LayoutError),
    #[error("{0}")]
    Other(String),
}

/// One period of the source's frames.
pub fn load_frames(src: &Source, frames: Option<u64>) -> Result<Vec<Vec<u8>>, RunError> {
    match src {
        Source::Synthetic { spec, seed } => {
            let spec = if spec == "mix" {
                splitrx_sim::traffic::MIX
            } else {
                spec.as_str()
            };
            let spec = splitrx_sim::traffic::TrafficSpec::parse(spec)
                .map_err(|e| RunError::Source(format!("--synthetic: {e}")))?;
            let n = frames
                .map_or(SYNTHETIC_PERIOD, |f| (f as usize).min(SYNTHETIC_PERIOD))
                .max(1);
            let mut g = splitrx_sim::traffic::Generator::new(&spec, *seed);
            Ok((0..n).map(|_| g.next_frame().bytes).collect())
        }
        Source::Pcap(path) => {
            let frames = crate::capture::read_all(path)
                .map_err(|e| RunError::Source(format!("{}: {e}", path.display())))?;
            Ok(frames.into_iter().map(|f| f.data).collect())
        }
        Source::Frames(f) => Ok(f.as_ref().clone()),
    }
}

const fn page_up(v: u64) -> u64 {
    (v + PAGE as u64 - 1) & !(PAGE as u64 - 1)
}

/// Where everything lives in the two files.
#[derive(Debug)]
struct Layout {
    ctrl: RegionLayout,
    queues: Vec<(u64, RegionLayout)>,
    /// Offsets of the header pools in the host window and of the payload pools in the BAR.
    hdr_pools: Vec<u64>,
    pay_pools: Vec<u64>,
    host_len: u64,
    bar_len: u64,
}

fn layout(cfg: &RunConfig) -> Result<Layout, RunError> {
    let ctrl = RegionLayout::new(
        u16::MAX,
        &[(RingKind::CtrlRequest, 64), (RingKind::CtrlResponse, 64)],
    )?;
    let mut off = page_up(ctrl.size);
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
    let host_len = off;
    let (mut bar, mut pay_pools) = (0u64, Vec::new());
    for _ in 0..cfg.queues {
        pay_pools.push(bar);
        bar = page_up(bar + cfg.buf_size as u64 * cfg.pay_bufs_per_queue as u64);
    }
    Ok(Layout {
        ctrl,
        queues,
        hdr_pools,
        pay_pools,
        host_len,
        bar_len: bar,
    })
}

fn check_config(cfg: &RunConfig) -> Result<(), RunError> {
    let bad = |m: &str| Err(RunError::Config(m.to_string()));
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

/// A sim board with host queues, ready for traffic. `S` is the per-queue sink.
pub struct SimRig<S: Sink + 'static> {
    pub cfg: RunConfig,
    pub ctrl: Arc<Mutex<CtrlClient>>,
    pub wire: Arc<WireCtl>,
    pub pollers: Vec<Poller<S>>,
    board: Option<SimBoard>,
    /// The host's mappings. The control client's rings point into `_host`: it is declared
    /// after `ctrl` (fields drop in order) and the pollers' queues hold their own reference.
    _host: Arc<ShmRegion>,
    _bar: ShmRegion,
    pub started: Instant,
}

impl<S: Sink + 'static> std::fmt::Debug for SimRig<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimRig")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Everything a finished rig reports.
#[derive(Debug)]
pub struct RigOutcome<S> {
    pub sinks: Vec<S>,
    pub queues: Vec<QueueCounters>,
    /// The first completion each queue rejected.
    pub completion_errors: Vec<Option<String>>,
    /// Final resets (every buffer back from the NIC), per queue.
    pub finish: Vec<Result<ResetOutcome, String>>,
    /// NIC counters per queue (read through the control plane before the queues were reset).
    pub nic_queues: Vec<Vec<u64>>,
    pub nic_device: Vec<u64>,
    pub firmware: Option<FirmwareReport>,
    /// Pool stats and audits, per queue: (header pool, payload pool).
    pub pool_stats: Vec<(PoolStats, PoolStats)>,
    pub audits: Vec<(Result<AuditReport, String>, Result<AuditReport, String>)>,
    pub ledger_errors: u64,
    /// Frames the wire offered.
    pub sent: u64,
    pub sent_bytes: u64,
    /// From the start of traffic to the last completion.
    pub elapsed: Duration,
    /// Tokens still outstanding at the end (not returned by the application).
    pub tokens_outstanding: u64,
}

impl<S: Sink + 'static> SimRig<S> {
    /// Builds everything and starts traffic from `frames` (one period, repeated), delivering
    /// queue `q`'s frames to `sink(q)`.
    pub fn start(
        cfg: &RunConfig,
        frames: &[Vec<u8>],
        limit: Option<u64>,
        mut sink: impl FnMut(u16) -> S,
    ) -> Result<SimRig<S>, RunError> {
        check_config(cfg)?;
        let lay = layout(cfg)?;
        let host = Arc::new(ShmRegion::create_temp(
            "host",
            lay.host_len as usize,
            map::HOST_MEM_BUS_BASE,
        )?);
        let bar = ShmRegion::create_temp("gpubar", lay.bar_len as usize, map::GPU_BAR_BUS_BASE)?;
        let base = host.as_ptr();
        // SAFETY: the control region is at offset 0 of the host window mapping (page-aligned,
        // `lay.host_len` bytes, `ctrl.size` of them reserved for it); no ring handle exists yet.
        unsafe { lay.ctrl.init(base, lay.ctrl.size as usize)? };
        // SAFETY: the rings were just initialised inside the mapping, which `host` keeps alive
        // for as long as the client (the rig owns both; the client is dropped first); one
        // producer and one consumer.
        let client = unsafe {
            CtrlClient::new(
                lay.ctrl.producer(base, RingKind::CtrlRequest)?,
                lay.ctrl.consumer(base, RingKind::CtrlResponse)?,
            )
        };
        let ctrl = Arc::new(Mutex::new(client));
        let wire_ctl = Arc::new(WireCtl::default());
        let mut wire = LoopWire::new(frames, limit, wire_ctl.clone());
        if let Some(r) = cfg.rate {
            wire = wire.with_rate(r);
        }
        let gauges: Arc<std::sync::OnceLock<Vec<Arc<crate::queue::InNic>>>> = Arc::default();
        if cfg.lossless {
            let params = NicParams {
                queues: cfg.queues,
                hds_thresh: cfg.hds_thresh,
                hdr_buf_size: cfg.hdr_buf_size,
                pay_buf_size: cfg.buf_size,
            };
            // Packed payload buffers hold many payloads: only header buffers are metered.
            let page = cfg.mode == PoolMode::Page;
            let tags = Expected::new(frames, &params)
                .frames
                .iter()
                .map(|e| (e.queue, !e.overflow, page && e.split && !e.overflow))
                .collect();
            let g = gauges.clone();
            wire = wire.with_flow_control(FlowControl::new(
                tags,
                cfg.queues,
                PAUSE_LOW,
                Box::new(move |q| {
                    g.get().and_then(|v| v.get(q as usize)).map_or((0, 0), |n| {
                        (
                            n.posted_hdr.load(Ordering::Acquire),
                            n.posted_pay.load(Ordering::Acquire),
                        )
                    })
                }),
            ));
        }
        let board = SimBoard::spawn(
            &BoardConfig {
                host_window: host.path().to_path_buf(),
                gpu_bar: bar.path().to_path_buf(),
                ctrl_bus: map::HOST_MEM_BUS_BASE,
                ctrl_len: lay.ctrl.size,
            },
            wire,
            wire_ctl.clone(),
        )?;
        let separate = board.mapping_bases[0] != base.as_ptr() as usize
            && board.mapping_bases[1] != bar.as_ptr().as_ptr() as usize;
        if !separate {
            return Err(RunError::Other(
                "the board shares the host's mapping".into(),
            ));
        }
        let wait = || Deadline::after(Duration::from_secs(10));
        let mut pollers = Vec::new();
        {
            let mut c = ctrl.lock().unwrap_or_else(|p| p.into_inner());
            c.get_version(&mut wait())?;
            c.set_rss(cfg.queues, &RSS_KEY, &mut wait())?;
            for qid in 0..cfg.queues {
                let i = qid as usize;
                let (hdr_id, pay_id) = (2 * qid as u8, 2 * qid as u8 + 1);
                let hdr_bus = map::HOST_MEM_BUS_BASE + lay.hdr_pools[i];
                let pay_bus = map::GPU_BAR_BUS_BASE + lay.pay_pools[i];
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
                        offset: lay.hdr_pools[i],
                        ..DeviceWindowConfig::open(
                            host.path(),
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
                        offset: lay.pay_pools[i],
                        ..DeviceWindowConfig::open(
                            bar.path(),
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
                        region_bus_addr: U64::new(map::HOST_MEM_BUS_BASE + off),
                        region_len: U64::new(ql.size),
                        queue: U16::new(qid),
                        hdr_pool: hdr_id,
                        pay_pool: pay_id,
                        hds_thresh: U32::new(cfg.hds_thresh),
                    },
                    &mut wait(),
                )?;
                let mut queue = RxQueue::new(qid, rings, hdr_pool, pay_pool, host.clone());
                // Fill the rings before traffic starts.
                while queue.refill() > 0 {}
                pollers.push(spawn_poller(queue, sink(qid), ctrl.clone()));
            }
        }
        let _ = gauges.set(pollers.iter().map(|p| p.in_nic.clone()).collect());
        // Every mapping of the two files exists now (host rings, the pools' providers, the
        // board's own): unlink the names, so nothing is left in /dev/shm even if the process is
        // killed. The mappings stay valid until they are dropped.
        let _ = std::fs::remove_file(host.path());
        let _ = std::fs::remove_file(bar.path());
        wire_ctl.start.store(true, Ordering::Release);
        Ok(SimRig {
            cfg: cfg.clone(),
            ctrl,
            wire: wire_ctl,
            pollers,
            board: Some(board),
            _host: host,
            _bar: bar,
            started: Instant::now(),
        })
    }

    /// Waits (bounded) until the wire has ended and the firmware released its last frame.
    /// `tick` is called about every 50 ms (progress displays).
    pub fn wait_wire_done(&self, deadline: Duration, mut tick: impl FnMut(&WireCtl)) -> bool {
        let end = Instant::now() + deadline;
        let mut spins = 0u32;
        let mut last = Instant::now();
        while !self.wire.done.load(Ordering::Acquire) {
            if Instant::now() >= end {
                return false;
            }
            if last.elapsed() >= Duration::from_millis(50) {
                tick(&self.wire);
                last = Instant::now();
            }
            spins += 1;
            if spins < 16 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        true
    }

    /// Ends the run (the wire must be done, or is stopped now) and accounts for everything.
    pub fn finish(mut self) -> RigOutcome<S> {
        self.wire.stop.store(true, Ordering::Relaxed);
        // The wire ends after its current frame; wait for the firmware to release it.
        let _ = self.wait_wire_done(Duration::from_secs(30), |_| {});
        // Every completion of every queue is in its ring now: drain them all.
        for p in &self.pollers {
            p.drain();
        }
        let elapsed = self.started.elapsed();
        let wait = || Deadline::after(Duration::from_secs(10));
        let (mut nic_queues, mut nic_device) = (Vec::new(), Vec::new());
        {
            let mut c = self.ctrl.lock().unwrap_or_else(|p| p.into_inner());
            for q in 0..self.cfg.queues {
                nic_queues.push(c.read_stats(q, &mut wait()).unwrap_or_default());
            }
            nic_device = c.read_stats(u16::MAX, &mut wait()).unwrap_or(nic_device);
        }
        let mut out = RigOutcome {
            sinks: Vec::new(),
            queues: Vec::new(),
            completion_errors: Vec::new(),
            finish: Vec::new(),
            nic_queues,
            nic_device,
            firmware: None,
            pool_stats: Vec::new(),
            audits: Vec::new(),
            ledger_errors: 0,
            sent: self.wire.offered.load(Ordering::Relaxed),
            sent_bytes: self.wire.offered_bytes.load(Ordering::Relaxed),
            elapsed,
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
                    let _ = c.call(
                        CtrlOp::UnregisterPool,
                        &PoolArgs {
                            pool: id,
                            _pad: [0; 3],
                        },
                        &mut wait(),
                    );
                }
            }
        }
        out.firmware = self.board.take().and_then(|b| b.stop());
        for q in &queues {
            let audit = |p: &PagePool| p.audit().map_err(|e| e.to_string());
            out.audits.push((audit(&q.hdr_pool), audit(&q.pay_pool)));
            let (hs, ps) = (q.hdr_pool.stats(), q.pay_pool.stats());
            out.tokens_outstanding += hs.tokens_outstanding + ps.tokens_outstanding;
            out.pool_stats.push((hs, ps));
            out.ledger_errors +=
                q.hdr_pool.ledger_counters().errors() + q.pay_pool.ledger_counters().errors();
        }
        drop(queues);
        out
    }
}

/// Sums a NIC queue counter over queues.
pub fn nic_sum(rows: &[Vec<u64>], i: usize) -> u64 {
    rows.iter().map(|r| r.get(i).copied().unwrap_or(0)).sum()
}

/// The NIC's per-queue drop counters (every reason a frame steered to a queue is not placed).
pub const DROP_COUNTERS: [usize; 7] = [
    q::DROP_NO_HDR_BUF,
    q::DROP_NO_PAY_BUF,
    q::DROP_CQ_FULL,
    q::DROP_QUEUE_FAULT,
    q::DROP_HDR_OVERFLOW,
    q::DROP_PAY_OVERFLOW,
    q::DROP_DMA_ERROR,
];

/// The sink `splitrx run` uses: verify the frame, then return its tokens — or, while `hold`
/// is set, keep them in `held` (an application that stops returning tokens; whoever shares
/// `held` can return them later from any thread by clearing it).
#[derive(Debug)]
pub struct VerifySink {
    pub verifier: Option<QueueVerifier>,
    pub hold: Option<Arc<AtomicBool>>,
    pub held: Arc<Mutex<Vec<Rx>>>,
}

impl VerifySink {
    pub fn new(verifier: Option<QueueVerifier>) -> VerifySink {
        VerifySink {
            verifier,
            hold: None,
            held: Arc::default(),
        }
    }
}

impl Sink for VerifySink {
    #[inline]
    fn deliver(&mut self, rx: Rx) -> bool {
        if let Some(v) = &mut self.verifier {
            v.check(&rx);
        }
        if let Some(h) = &self.hold {
            if h.load(Ordering::Relaxed) {
                self.held.lock().unwrap_or_else(|p| p.into_inner()).push(rx);
            }
        }
        true
    }
}

/// The result of `splitrx run`.
#[derive(Debug, serde::Serialize)]
pub struct RunReport {
    pub source: String,
    pub queues: u16,
    pub mode: String,
    pub buf_size: u32,
    pub hds_thresh: u32,
    pub sent_frames: u64,
    pub sent_bytes: u64,
    pub delivered_frames: u64,
    pub delivered_bytes: u64,
    pub split_frames: u64,
    pub unsplit_frames: u64,
    pub payload_bytes: u64,
    pub seconds: f64,
    pub gbps: f64,
    pub mpps: f64,
    /// Delivered frames and bytes per class.
    #[serde(serialize_with = "classes_as_map")]
    pub classes: Vec<(String, u64, u64)>,
    /// NIC drops per reason (sum over queues, plus frames with no queue).
    #[serde(serialize_with = "as_map")]
    pub drops: Vec<(String, u64)>,
    /// Host queue counters (ethtool -S style), summed over queues.
    pub host: QueueCounters,
    /// Page-pool counters (kernel `page_pool_stats` names), header and payload pools summed.
    #[serde(serialize_with = "as_map")]
    pub page_pool: Vec<(String, u64)>,
    pub audit_ok: bool,
    pub audit: Vec<String>,
    pub resets: Vec<ResetOutcome>,
    pub tokens_outstanding: u64,
    pub ledger_errors: u64,
    pub completion_errors: Vec<String>,
    pub verdicts: Vec<QueueVerdict>,
    pub verified: bool,
    pub pass: bool,
    pub failures: Vec<String>,
    /// Firmware loop polls that did work / found nothing (the firmware core's load).
    pub firmware_polls_busy: u64,
    pub firmware_polls_idle: u64,
}

fn as_map<S: serde::Serializer>(v: &[(String, u64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().map(|(k, v)| (k, v)))
}

fn classes_as_map<S: serde::Serializer>(v: &[(String, u64, u64)], s: S) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Count {
        frames: u64,
        bytes: u64,
    }
    s.collect_map(v.iter().map(|(k, f, b)| {
        (
            k,
            Count {
                frames: *f,
                bytes: *b,
            },
        )
    }))
}

/// Human name of a `FrameClass` number.
pub fn class_name(c: u8) -> &'static str {
    match c {
        1 => "tcp",
        2 => "udp",
        3 => "roce",
        4 => "fragment",
        5 => "other_ip",
        6 => "non_ip",
        7 => "malformed",
        _ => "unknown",
    }
}

/// Per-class counting sink wrapper used by [`run`].
#[derive(Debug)]
pub struct RunSink {
    pub inner: VerifySink,
    /// Frames and bytes per class number (index = class).
    pub classes: [(u64, u64); 8],
}

impl Sink for RunSink {
    #[inline]
    fn deliver(&mut self, rx: Rx) -> bool {
        let c = (rx.completion.class as usize).min(7);
        self.classes[c].0 += 1;
        self.classes[c].1 += rx.completion.frame_len.get() as u64;
        self.inner.deliver(rx)
    }
}

/// `splitrx run`: runs the source through the sim board and checks everything.
/// `progress(offered, total)` is called periodically.
pub fn run(
    cfg: &RunConfig,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<RunReport, RunError> {
    let limit = match (cfg.frames, cfg.duration, &cfg.source) {
        (Some(n), _, _) => Some(n),
        (None, Some(_), _) => None,
        (None, None, Source::Synthetic { .. }) => Some(DEFAULT_FRAMES),
        (None, None, _) => None,
    };
    // The wire's copy and the verifier's copy of the source are built independently.
    let wire_frames = load_frames(&cfg.source, limit)?;
    if wire_frames.is_empty() {
        return Err(RunError::Source("the source has no frames".into()));
    }
    let limit = match (limit, cfg.duration) {
        (None, None) => Some(wire_frames.len() as u64),
        (l, _) => l,
    };
    let params = NicParams {
        queues: cfg.queues,
        hds_thresh: cfg.hds_thresh,
        hdr_buf_size: cfg.hdr_buf_size,
        pay_buf_size: cfg.buf_size,
    };
    let expected = if cfg.verify {
        Some(Arc::new(Expected::new(
            &load_frames(&cfg.source, limit)?,
            &params,
        )))
    } else {
        None
    };
    let rig = SimRig::start(cfg, &wire_frames, limit, |q| RunSink {
        inner: VerifySink::new(expected.as_ref().map(|e| QueueVerifier::new(e.clone(), q))),
        classes: [(0, 0); 8],
    })?;
    drop(wire_frames);
    let deadline = cfg
        .duration
        .map_or(Duration::from_secs(3600), |d| d + Duration::from_secs(60));
    let started = Instant::now();
    let done = rig.wait_wire_done(deadline, |w| {
        progress(w.offered.load(Ordering::Relaxed), limit);
        if cfg.duration.is_some_and(|d| started.elapsed() >= d) {
            w.stop.store(true, Ordering::Relaxed);
        }
    });
    let out = rig.finish();
    let mut rep = report(cfg, &out, expected.as_deref());
    if !done {
        rep.pass = false;
        rep.failures.push("the wire did not finish in time".into());
    }
    Ok(rep)
}

/// Builds the report of a finished rig.
pub fn report(
    cfg: &RunConfig,
    out: &RigOutcome<RunSink>,
    expected: Option<&Expected>,
) -> RunReport {
    let mut failures = Vec::new();
    let host = out
        .queues
        .iter()
        .fold(QueueCounters::default(), |a, k| add_counters(&a, k));
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let mut classes = Vec::new();
    for c in 1..8u8 {
        let (f, b) = out.sinks.iter().fold((0, 0), |a, s| {
            (a.0 + s.classes[c as usize].0, a.1 + s.classes[c as usize].1)
        });
        if f > 0 {
            classes.push((class_name(c).to_string(), f, b));
        }
    }
    let mut drops: Vec<(String, u64)> = DROP_COUNTERS
        .iter()
        .map(|&i| (Q_NAMES[i].to_string(), nic_sum(&out.nic_queues, i)))
        .collect();
    drops.push((
        "drop_no_queue".into(),
        out.nic_device.get(dev::DROP_NO_QUEUE).copied().unwrap_or(0),
    ));
    let pp = out
        .pool_stats
        .iter()
        .fold(PoolStats::default(), |a, (h, p)| {
            add_pool(&add_pool(&a, h), p)
        });
    let page_pool = vec![
        ("alloc_fast".into(), pp.alloc_fast),
        ("alloc_slow".into(), pp.alloc_slow),
        ("alloc_empty".into(), pp.alloc_empty),
        ("alloc_refill".into(), pp.alloc_refill),
        ("alloc_failed".into(), pp.alloc_failed),
        ("recycle_cached".into(), pp.recycle_cached),
        ("recycle_cache_full".into(), pp.recycle_cache_full),
        ("recycle_ring".into(), pp.recycle_ring),
        ("recycle_ring_full".into(), pp.recycle_ring_full),
        ("recycle_released_refcnt".into(), pp.recycle_released),
        ("inflight".into(), pp.inflight),
    ];
    let mut audit = Vec::new();
    let mut audit_ok = true;
    for (q, (h, p)) in out.audits.iter().enumerate() {
        for (what, a) in [("header", h), ("payload", p)] {
            match a {
                Ok(r) if r.free == r.total => audit.push(format!(
                    "queue {q} {what} pool: {} buffers, all free",
                    r.total
                )),
                Ok(r) => {
                    audit_ok = false;
                    audit.push(format!(
                        "queue {q} {what} pool: {} buffers, {} free, {} posted, {} filled, {} lent",
                        r.total, r.free, r.posted, r.filled, r.lent
                    ));
                }
                Err(e) => {
                    audit_ok = false;
                    audit.push(format!("queue {q} {what} pool: {e}"));
                }
            }
        }
    }
    if !audit_ok {
        failures.push("ledger audit: not every buffer is back in its pool".into());
    }
    let mut resets = Vec::new();
    for (q, f) in out.finish.iter().enumerate() {
        match f {
            Ok(r) => {
                if !r.exact() {
                    failures.push(format!("queue {q}: final reset not exact: {r:?}"));
                }
                resets.push(r.clone());
            }
            Err(e) => failures.push(format!("queue {q}: final reset failed: {e}")),
        }
    }
    if out.tokens_outstanding != 0 {
        failures.push(format!(
            "{} tokens still outstanding",
            out.tokens_outstanding
        ));
    }
    if out.ledger_errors != 0 {
        failures.push(format!("{} ledger errors", out.ledger_errors));
    }
    let completion_errors: Vec<String> = out
        .completion_errors
        .iter()
        .enumerate()
        .filter_map(|(q, e)| e.as_ref().map(|e| format!("queue {q}: {e}")))
        .collect();
    failures.extend(completion_errors.iter().cloned());
    let mut verdicts = Vec::new();
    if let Some(exp) = expected {
        let sent = exp.sent_per_queue(out.sent);
        for (q, s) in out.sinks.iter().enumerate() {
            if let Some(v) = &s.inner.verifier {
                let nic_dropped: u64 = DROP_COUNTERS
                    .iter()
                    .map(|&i| {
                        out.nic_queues
                            .get(q)
                            .and_then(|r| r.get(i))
                            .copied()
                            .unwrap_or(0)
                    })
                    .sum();
                let vd = v.finish(sent[q], nic_dropped);
                if let Some(f) = &vd.failure {
                    failures.push(f.clone());
                } else if !vd.ok() {
                    failures.push(format!("queue {q}: counts do not add up: {vd:?}"));
                }
                verdicts.push(vd);
            }
        }
        let no_queue = out.nic_device.get(dev::DROP_NO_QUEUE).copied().unwrap_or(0);
        if no_queue != 0 {
            failures.push(format!("{no_queue} frames found no queue"));
        }
        if let Some(fw) = &out.firmware {
            if fw.mac_offered != out.sent {
                failures.push(format!(
                    "wire offered {} frames, firmware saw {}",
                    out.sent, fw.mac_offered
                ));
            }
        }
    }
    let verified = expected.is_some();
    RunReport {
        source: match &cfg.source {
            Source::Synthetic { spec, seed } => format!("synthetic {spec} (seed {seed:#x})"),
            Source::Pcap(p) => format!("pcap {}", p.display()),
            Source::Frames(f) => format!("{} frames", f.len()),
        },
        queues: cfg.queues,
        mode: match cfg.mode {
            PoolMode::Page => "page".into(),
            PoolMode::Packed => "packed".into(),
        },
        buf_size: cfg.buf_size,
        hds_thresh: cfg.hds_thresh,
        sent_frames: out.sent,
        sent_bytes: out.sent_bytes,
        delivered_frames: host.rx_packets,
        delivered_bytes: host.rx_bytes,
        split_frames: host.rx_hds_split,
        unsplit_frames: host.rx_hds_unsplit,
        payload_bytes: host.rx_hds_payload_bytes,
        seconds: secs,
        gbps: host.rx_bytes as f64 * 8.0 / secs / 1e9,
        mpps: host.rx_packets as f64 / secs / 1e6,
        classes,
        drops,
        host,
        page_pool,
        audit_ok,
        audit,
        resets,
        tokens_outstanding: out.tokens_outstanding,
        ledger_errors: out.ledger_errors,
        completion_errors,
        verdicts,
        verified,
        pass: failures.is_empty(),
        failures,
        firmware_polls_busy: out.firmware.as_ref().map_or(0, |f| f.polls_busy),
        firmware_polls_idle: out.firmware.as_ref().map_or(0, |f| f.polls_idle),
    }
}

fn add_counters(a: &QueueCounters, b: &QueueCounters) -> QueueCounters {
    QueueCounters {
        rx_packets: a.rx_packets + b.rx_packets,
        rx_bytes: a.rx_bytes + b.rx_bytes,
        rx_hds_split: a.rx_hds_split + b.rx_hds_split,
        rx_hds_unsplit: a.rx_hds_unsplit + b.rx_hds_unsplit,
        rx_hds_payload_bytes: a.rx_hds_payload_bytes + b.rx_hds_payload_bytes,
        rx_hdr_truncated: a.rx_hdr_truncated + b.rx_hdr_truncated,
        rx_errors_malformed: a.rx_errors_malformed + b.rx_errors_malformed,
        rx_icrc_bad: a.rx_icrc_bad + b.rx_icrc_bad,
        rx_flush: a.rx_flush + b.rx_flush,
        rx_err_completion: a.rx_err_completion + b.rx_err_completion,
        rx_err_ledger: a.rx_err_ledger + b.rx_err_ledger,
        fill_hdr_posted: a.fill_hdr_posted + b.fill_hdr_posted,
        fill_pay_posted: a.fill_pay_posted + b.fill_pay_posted,
        fill_pool_empty: a.fill_pool_empty + b.fill_pool_empty,
        polls_busy: a.polls_busy + b.polls_busy,
        polls_idle: a.polls_idle + b.polls_idle,
        rx_deliver_closed: a.rx_deliver_closed + b.rx_deliver_closed,
        resets: a.resets + b.resets,
    }
}

fn add_pool(a: &PoolStats, b: &PoolStats) -> PoolStats {
    PoolStats {
        alloc_fast: a.alloc_fast + b.alloc_fast,
        alloc_slow: a.alloc_slow + b.alloc_slow,
        alloc_empty: a.alloc_empty + b.alloc_empty,
        alloc_refill: a.alloc_refill + b.alloc_refill,
        alloc_failed: a.alloc_failed + b.alloc_failed,
        recycle_cached: a.recycle_cached + b.recycle_cached,
        recycle_cache_full: a.recycle_cache_full + b.recycle_cache_full,
        recycle_ring: a.recycle_ring + b.recycle_ring,
        recycle_ring_full: a.recycle_ring_full + b.recycle_ring_full,
        recycle_released: a.recycle_released + b.recycle_released,
        release_declined: a.release_declined + b.release_declined,
        inflight: a.inflight + b.inflight,
        tokens_outstanding: a.tokens_outstanding + b.tokens_outstanding,
    }
}

impl RunReport {
    /// The human-readable report.
    pub fn write_text(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(
            w,
            "splitrx run: sim board, {} queue(s), {} mode, buf {} B, hds_thresh {}",
            self.queues, self.mode, self.buf_size, self.hds_thresh
        )?;
        writeln!(w, "source: {}", self.source)?;
        writeln!(
            w,
            "wire:      {:>12} frames {:>15} bytes",
            self.sent_frames, self.sent_bytes
        )?;
        writeln!(
            w,
            "delivered: {:>12} frames {:>15} bytes   split {} / unsplit {}",
            self.delivered_frames, self.delivered_bytes, self.split_frames, self.unsplit_frames
        )?;
        writeln!(w, "rate:      {:.2} Gb/s  {:.3} Mpps  over {:.3} s (payload into device memory: {} bytes)", self.gbps, self.mpps, self.seconds, self.payload_bytes)?;
        writeln!(w, "\nper class:")?;
        for (c, f, b) in &self.classes {
            writeln!(w, "  {c:<10} {f:>12} frames {b:>15} bytes")?;
        }
        writeln!(w, "\nNIC drops:")?;
        for (n, v) in &self.drops {
            writeln!(w, "     {n}: {v}")?;
        }
        writeln!(w, "\nhost queue counters (sum over queues):")?;
        if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(self.host) {
            for (k, v) in m {
                writeln!(w, "     {k}: {v}")?;
            }
        }
        writeln!(w, "\npage_pool (header + payload pools):")?;
        for (n, v) in &self.page_pool {
            writeln!(w, "     {n}: {v}")?;
        }
        writeln!(
            w,
            "\nledger audit: {}",
            if self.audit_ok { "clean" } else { "FAILED" }
        )?;
        for a in &self.audit {
            writeln!(w, "  {a}")?;
        }
        for (q, r) in self.resets.iter().enumerate() {
            writeln!(w, "  queue {q} teardown: NIC returned {} buffers, ledger had {} posted, {} freed now, {} on last token", r.reported, r.nic_held, r.freed, r.retired_in_use)?;
        }
        for v in &self.verdicts {
            writeln!(w, "  queue {}: sent {} = matched {} + dropped {} (NIC counted {}), {} payload bytes compared", v.queue, v.sent, v.matched, v.dropped, v.nic_dropped, v.payload_bytes_checked)?;
        }
        if !self.failures.is_empty() {
            writeln!(w, "\nfailures:")?;
            for f in &self.failures {
                writeln!(w, "  {f}")?;
            }
        }
        let what = if self.verified {
            "every payload byte in device memory equals the wire, every header byte in host memory equals the wire, every frame and buffer accounted for"
        } else {
            "not checked against the source (--no-verify); buffers accounted for"
        };
        writeln!(
            w,
            "\nverification: {} ({what})",
            if self.pass { "PASS" } else { "FAIL" }
        )
    }
}
