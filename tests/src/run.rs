//! A run: a source of frames through a target's board, end to end, verified.
//!
//! [`Rig`] powers a [`Target`] up, brings the host [`Device`] up over the target's seam,
//! lets traffic flow, and tears everything down in an order that accounts for every buffer.
//! [`run`] is `splitrx run` on top of it, with a verifying sink per queue: the verifier
//! rebuilds the source on its own and compares every header byte in host memory and every
//! payload byte in device memory (read through the seam when the host mapping cannot), and
//! checks that frames sent = frames matched + frames dropped, with the drops equal to the NIC's
//! counters. [`report`] turns a finished rig into a [`RunReport`] (the CLI renders it).

use crate::target::{Rate, Session, Target, TargetError, TargetReport, Traffic, WireStatus};
use splitrx_host::device::{Device, DeviceConfig, DeviceError, DeviceLayout, DeviceOutcome};
use splitrx_host::pool::PoolStats;
use splitrx_host::queue::{QueueCounters, ResetOutcome, Sink};
use splitrx_host::seam::DeviceMemory;
use splitrx_host::token::Rx;
use splitrx_host::verify::{Expected, NicParams, QueueVerdict, QueueVerifier};
use splitrx_shared::abi::PoolMode;
use splitrx_shared::split::FrameClass;
use splitrx_shared::stats::{dev, q, Q_NAMES};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

impl RunConfig {
    /// The device part of the configuration.
    pub fn device(&self) -> DeviceConfig {
        DeviceConfig {
            queues: self.queues,
            mode: self.mode,
            buf_size: self.buf_size,
            hdr_buf_size: self.hdr_buf_size,
            bufs_per_queue: self.bufs_per_queue,
            pay_bufs_per_queue: self.pay_bufs_per_queue,
            fill_ring: self.fill_ring,
            cq_ring: self.cq_ring,
            hds_thresh: self.hds_thresh,
            ..DeviceConfig::default()
        }
    }
    /// What the verifier needs to know of the NIC's configuration.
    pub fn nic_params(&self) -> NicParams {
        NicParams {
            queues: self.queues,
            hds_thresh: self.hds_thresh,
            hdr_buf_size: self.hdr_buf_size,
            pay_buf_size: self.buf_size,
        }
    }
}

/// Why a run could not be done (a verification failure is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("source: {0}")]
    Source(String),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Device(#[from] DeviceError),
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
            let frames = splitrx_host::capture::read_all(path)
                .map_err(|e| RunError::Source(format!("{}: {e}", path.display())))?;
            Ok(frames.into_iter().map(|f| f.data).collect())
        }
        Source::Frames(f) => Ok(f.as_ref().clone()),
    }
}

/// A target's board with the host device up on it, traffic flowing. `S` is the per-queue sink.
pub struct Rig<S: Sink + 'static> {
    pub cfg: RunConfig,
    pub device: Device<S>,
    session: Box<dyn Session>,
    pub started: Instant,
}

impl<S: Sink + 'static> std::fmt::Debug for Rig<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rig")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// Everything a finished rig reports.
#[derive(Debug)]
pub struct RigOutcome<S> {
    pub device: DeviceOutcome<S>,
    pub target: TargetReport,
    /// Frames and bytes the wire offered.
    pub sent: u64,
    pub sent_bytes: u64,
    /// From the start of traffic to the last completion.
    pub elapsed: Duration,
}

impl<S: Sink + 'static> Rig<S> {
    /// Powers `target` up, brings the device up over its seam and starts traffic from
    /// `frames` (one period, repeated, `limit` frames in all), delivering queue `q`'s frames
    /// to `sink(q)`.
    pub fn start(
        target: &dyn Target,
        cfg: &RunConfig,
        frames: &[Vec<u8>],
        limit: Option<u64>,
        mut sink: impl FnMut(u16) -> S,
    ) -> Result<Rig<S>, RunError> {
        Self::start_verifying(target, cfg, frames, limit, |q, _| sink(q))
    }

    /// [`Rig::start`], with each sink also given the board's device-memory reader (for
    /// verifying payloads the host mapping cannot read).
    pub fn start_verifying(
        target: &dyn Target,
        cfg: &RunConfig,
        frames: &[Vec<u8>],
        limit: Option<u64>,
        mut sink: impl FnMut(u16, Option<Arc<dyn DeviceMemory>>) -> S,
    ) -> Result<Rig<S>, RunError> {
        let dcfg = cfg.device();
        let layout = DeviceLayout::new(&dcfg)?;
        // Lossless: the wire must know which queue and which buffers each frame will use.
        let flow = (cfg.lossless && target.lossless()).then(|| {
            // Packed payload buffers hold many payloads: only header buffers are metered.
            let page = cfg.mode == PoolMode::Page;
            Expected::new(frames, &cfg.nic_params())
                .frames
                .iter()
                .map(|e| {
                    let placed = !e.overflow && !e.runt;
                    (e.queue, placed, page && e.split && placed)
                })
                .collect()
        });
        let mut session = target.power_up(
            &layout,
            Traffic {
                frames: Arc::new(frames.to_vec()),
                limit,
                rate: cfg.rate,
                flow,
            },
        )?;
        let seam = session.seam();
        let reader = seam.device_reader();
        let up = Device::bring_up(
            seam,
            &dcfg,
            |q| sink(q, reader.clone()),
            |q| session.observer(q),
        );
        let device = match up {
            Ok(d) => d,
            Err(e) => {
                // Say why the firmware is not there, when the target knows.
                let why = session.power_down().error;
                return Err(match why {
                    Some(w) => RunError::Target(TargetError {
                        target: target.name().into(),
                        message: format!("{e} (firmware: {w})"),
                    }),
                    None => e.into(),
                });
            }
        };
        session.device_up();
        Ok(Rig {
            cfg: cfg.clone(),
            device,
            session,
            started: Instant::now(),
        })
    }

    /// What the wire did so far.
    pub fn wire(&self) -> WireStatus {
        self.session.wire()
    }
    /// Ends the wire after its current frame.
    pub fn stop_wire(&self) {
        self.session.stop_wire()
    }

    /// Waits (bounded) until the wire has ended and the firmware released its last frame.
    /// `tick` is called about every 50 ms (progress displays; it may stop the wire).
    pub fn wait_wire_done(
        &self,
        deadline: Duration,
        mut tick: impl FnMut(&Self, WireStatus),
    ) -> bool {
        let end = Instant::now() + deadline;
        let mut spins = 0u32;
        let mut last = Instant::now();
        loop {
            let w = self.wire();
            if w.done {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            if last.elapsed() >= Duration::from_millis(50) {
                tick(self, w);
                last = Instant::now();
            }
            spins += 1;
            if spins < 16 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Ends the run (the wire must be done, or is stopped now) and accounts for everything.
    pub fn finish(self) -> RigOutcome<S> {
        self.stop_wire();
        // The wire ends after its current frame; wait for the firmware to release it.
        let _ = self.wait_wire_done(Duration::from_secs(30), |_, _| {});
        // Every completion of every queue is in its ring now: drain them all.
        self.device.drain();
        let elapsed = self.started.elapsed();
        let w = self.wire();
        let device = self.device.finish();
        let target = self.session.power_down();
        RigOutcome {
            device,
            target,
            sent: w.offered,
            sent_bytes: w.offered_bytes,
            elapsed,
        }
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
    /// The target the run used (in the text report's first line; not a JSON key, so the JSON
    /// report stays the same on every board).
    #[serde(skip)]
    pub target: String,
    /// The firmware's own log, when the target captures it (`qemu`: defmt over the UART,
    /// decoded on the host). Not a JSON key, for the same reason.
    #[serde(skip)]
    pub firmware_log: Vec<String>,
    /// Source frames longer than the target's wire carries, left out of the run
    /// ([`Target::max_frame`]). Not a JSON key either.
    #[serde(skip)]
    pub frames_too_long: u64,
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

/// `splitrx run`: runs the source through `target`'s board and checks everything.
/// `progress(offered, total)` is called periodically.
pub fn run(
    target: &dyn Target,
    cfg: &RunConfig,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<RunReport, RunError> {
    let limit = match (cfg.frames, cfg.duration, &cfg.source) {
        (Some(n), _, _) => Some(n),
        (None, Some(_), _) => None,
        (None, None, Source::Synthetic { .. }) => Some(DEFAULT_FRAMES),
        (None, None, _) => None,
    };
    // The wire's copy and the verifier's copy of the source are built independently; frames
    // longer than the target's wire carries are left out of both.
    let max = target.max_frame().unwrap_or(usize::MAX);
    let fit = |mut v: Vec<Vec<u8>>| {
        v.retain(|f| f.len() <= max);
        v
    };
    let all = load_frames(&cfg.source, limit)?;
    let too_long = all.iter().filter(|f| f.len() > max).count() as u64;
    let wire_frames = fit(all);
    if wire_frames.is_empty() {
        return Err(RunError::Source("the source has no frames".into()));
    }
    let limit = match (limit, cfg.duration) {
        (None, None) => Some(wire_frames.len() as u64),
        (l, _) => l,
    };
    let expected = if cfg.verify {
        Some(Arc::new(Expected::new(
            &fit(load_frames(&cfg.source, limit)?),
            &cfg.nic_params(),
        )))
    } else {
        None
    };
    let rig = Rig::start_verifying(target, cfg, &wire_frames, limit, |q, reader| RunSink {
        inner: VerifySink::new(
            expected
                .as_ref()
                .map(|e| QueueVerifier::new(e.clone(), q).with_reader(reader)),
        ),
        classes: [(0, 0); 8],
    })?;
    drop(wire_frames);
    let deadline = cfg
        .duration
        .map_or(Duration::from_secs(3600), |d| d + Duration::from_secs(60));
    let started = Instant::now();
    let done = rig.wait_wire_done(deadline, |rig, w| {
        progress(w.offered, limit);
        if cfg.duration.is_some_and(|d| started.elapsed() >= d) {
            rig.stop_wire();
        }
    });
    let out = rig.finish();
    let mut rep = report(target.name(), cfg, &out, expected.as_deref());
    rep.frames_too_long = too_long;
    if !done {
        rep.pass = false;
        rep.failures.push("the wire did not finish in time".into());
    }
    Ok(rep)
}

/// Builds the report of a finished rig.
pub fn report(
    target: &str,
    cfg: &RunConfig,
    out: &RigOutcome<RunSink>,
    expected: Option<&Expected>,
) -> RunReport {
    let mut failures = Vec::new();
    let dv = &out.device;
    let host: QueueCounters = dv.queues.iter().copied().sum();
    let secs = out.elapsed.as_secs_f64().max(1e-9);
    let mut classes = Vec::new();
    for c in 1..8u8 {
        let (f, b) = dv.sinks.iter().fold((0, 0), |a, s| {
            (a.0 + s.classes[c as usize].0, a.1 + s.classes[c as usize].1)
        });
        if f > 0 {
            let name = FrameClass::from_u8(c).map_or("unknown", FrameClass::as_str);
            classes.push((name.to_string(), f, b));
        }
    }
    let mut drops: Vec<(String, u64)> = DROP_COUNTERS
        .iter()
        .map(|&i| (Q_NAMES[i].to_string(), nic_sum(&dv.nic_queues, i)))
        .collect();
    for (name, i) in [
        ("drop_no_queue", dev::DROP_NO_QUEUE),
        ("drop_runt", dev::DROP_RUNT),
    ] {
        drops.push((name.into(), dv.nic_device.get(i).copied().unwrap_or(0)));
    }
    let pp: PoolStats = dv.pool_stats.iter().flat_map(|(h, p)| [*h, *p]).sum();
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
    for (q, (h, p)) in dv.audits.iter().enumerate() {
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
    for (q, f) in dv.finish.iter().enumerate() {
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
    if dv.tokens_outstanding != 0 {
        failures.push(format!(
            "{} tokens still outstanding",
            dv.tokens_outstanding
        ));
    }
    if dv.ledger_errors != 0 {
        failures.push(format!("{} ledger errors", dv.ledger_errors));
    }
    let completion_errors: Vec<String> = dv
        .completion_errors
        .iter()
        .enumerate()
        .filter_map(|(q, e)| e.as_ref().map(|e| format!("queue {q}: {e}")))
        .collect();
    failures.extend(completion_errors.iter().cloned());
    let mut verdicts = Vec::new();
    if let Some(exp) = expected {
        let sent = exp.sent_per_queue(out.sent);
        for (q, s) in dv.sinks.iter().enumerate() {
            if let Some(v) = &s.inner.verifier {
                let nic_dropped: u64 = DROP_COUNTERS
                    .iter()
                    .map(|&i| {
                        dv.nic_queues
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
        let no_queue = dv.nic_device.get(dev::DROP_NO_QUEUE).copied().unwrap_or(0);
        if no_queue != 0 {
            failures.push(format!("{no_queue} frames found no queue"));
        }
        let runts = dv.nic_device.get(dev::DROP_RUNT).copied().unwrap_or(0);
        if runts != exp.sent_runts(out.sent) {
            failures.push(format!(
                "{} runts were sent, the NIC dropped {runts} as runts",
                exp.sent_runts(out.sent)
            ));
        }
        if let Some(e) = &out.target.error {
            failures.push(format!("target {target}: {e}"));
        }
        if let Some(seen) = out.target.mac_offered {
            if seen != out.sent {
                failures.push(format!(
                    "wire offered {} frames, firmware saw {seen}",
                    out.sent
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
        tokens_outstanding: dv.tokens_outstanding,
        ledger_errors: dv.ledger_errors,
        completion_errors,
        verdicts,
        verified,
        pass: failures.is_empty(),
        failures,
        firmware_polls_busy: out.target.polls.map_or(0, |p| p.0),
        firmware_polls_idle: out.target.polls.map_or(0, |p| p.1),
        target: target.to_string(),
        firmware_log: out.target.log.clone(),
        frames_too_long: 0,
    }
}
