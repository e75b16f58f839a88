//! The host end of the control plane: typed calls over the command ring pair.
//!
//! Every request carries a fresh sequence number; the firmware answers each with one or more
//! responses echoing `seq` and `opcode` (a multi-part answer is a run of [`CtrlStatus::More`]
//! closed by a final status). The client never trusts what comes back: a response for an older
//! `seq` (left over from a call that timed out) is skipped and counted, anything else unexpected is
//! a [`CtrlError::Protocol`], and multi-part answers are bounded.

use splitrx_shared::abi::{
    call, BufRef, CreateRxQueueArgs, CtrlCall, CtrlMsg, CtrlOp, CtrlStatus, HdsThreshArgs,
    OutstandingArgs, PoolArgs, QueueArgs, RegisterPoolArgs, RssArgs, StatsArgs, VersionInfo,
    OUTSTANDING_PER_MSG, RSS_KEY_LEN, STATS_PER_PAGE,
};
use splitrx_shared::ring::{Consumer, Producer, RingError};
use std::time::{Duration, Instant};
use zerocopy::little_endian::{U16, U32};
use zerocopy::{Immutable, IntoBytes};

/// Most parts one multi-part answer may have (a reset report of 2^24 buffers is 1.4 M parts;
/// the firmware's tables are far smaller, see `firmware/docs`). Beyond this the answer is
/// treated as a protocol error rather than followed forever.
pub const MAX_PARTS: usize = 1 << 21;

/// Control-plane errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CtrlError {
    #[error("{op:?} failed with status {status:?}")]
    Status { op: CtrlOp, status: CtrlStatus },
    #[error("{op:?} (seq {seq}) timed out")]
    Timeout { op: CtrlOp, seq: u32 },
    #[error("control ring: {0:?}")]
    Ring(RingError),
    #[error("control protocol violation: {0}")]
    Protocol(&'static str),
}

/// Counters of the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtrlStats {
    pub requests: u64,
    pub responses: u64,
    /// Responses for an older `seq` that were skipped.
    pub stale: u64,
    pub timeouts: u64,
    pub errors: u64,
}

/// Decides how long a call waits: called between polls of the response ring; returns `false` to
/// give up. [`Deadline`] spins then yields until a time limit; tests that drive the firmware on
/// the same thread pass a closure that runs one firmware poll.
pub trait Wait {
    fn wait(&mut self) -> bool;
}

impl<F: FnMut() -> bool> Wait for F {
    fn wait(&mut self) -> bool {
        self()
    }
}

/// Waits until a deadline: busy-spins briefly, then yields the thread.
#[derive(Debug)]
pub struct Deadline {
    end: Instant,
    spins: u32,
}

impl Deadline {
    pub fn after(d: Duration) -> Deadline {
        Deadline {
            end: Instant::now() + d,
            spins: 0,
        }
    }
}

impl Wait for Deadline {
    fn wait(&mut self) -> bool {
        self.spins = self.spins.saturating_add(1);
        if self.spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
        Instant::now() < self.end
    }
}

/// The host end of the control ring pair.
#[derive(Debug)]
pub struct CtrlClient {
    req: Producer<CtrlMsg>,
    resp: Consumer<CtrlMsg>,
    seq: u32,
    stats: CtrlStats,
}

impl CtrlClient {
    pub fn new(req: Producer<CtrlMsg>, resp: Consumer<CtrlMsg>) -> CtrlClient {
        CtrlClient {
            req,
            resp,
            seq: 0,
            stats: CtrlStats::default(),
        }
    }

    pub fn stats(&self) -> CtrlStats {
        self.stats
    }

    /// Sends one request and collects its answer: every `More` part plus the final response.
    /// `on_part` sees each part as it arrives (so long answers need no buffering).
    fn exchange(
        &mut self,
        op: CtrlOp,
        build: impl FnOnce(u32) -> CtrlMsg,
        wait: &mut dyn Wait,
        mut on_part: impl FnMut(&CtrlMsg) -> Result<(), CtrlError>,
    ) -> Result<CtrlMsg, CtrlError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let msg = build(seq);
        loop {
            if self.req.push(&msg).map_err(CtrlError::Ring)? {
                break;
            }
            if !wait.wait() {
                self.stats.timeouts += 1;
                return Err(CtrlError::Timeout { op, seq });
            }
        }
        self.stats.requests += 1;
        let mut parts = 0usize;
        loop {
            let Some(r) = self.resp.pop().map_err(CtrlError::Ring)? else {
                if !wait.wait() {
                    self.stats.timeouts += 1;
                    return Err(CtrlError::Timeout { op, seq });
                }
                continue;
            };
            self.stats.responses += 1;
            let rseq = r.seq.get();
            if rseq != seq {
                // An answer to an earlier call that we gave up on: skip it. Anything "newer"
                // than what we sent cannot be.
                if seq.wrapping_sub(rseq) < (1 << 31) {
                    self.stats.stale += 1;
                    continue;
                }
                self.stats.errors += 1;
                return Err(CtrlError::Protocol(
                    "response sequence number from the future",
                ));
            }
            if r.opcode.get() != op as u16 {
                self.stats.errors += 1;
                return Err(CtrlError::Protocol(
                    "response opcode does not echo the request",
                ));
            }
            match r.status() {
                Some(CtrlStatus::More) => {
                    parts += 1;
                    if parts > MAX_PARTS {
                        self.stats.errors += 1;
                        return Err(CtrlError::Protocol("multi-part answer too long"));
                    }
                    on_part(&r)?;
                }
                Some(CtrlStatus::Ok) => {
                    on_part(&r)?;
                    return Ok(r);
                }
                Some(status) => {
                    self.stats.errors += 1;
                    return Err(CtrlError::Status { op, status });
                }
                None => {
                    self.stats.errors += 1;
                    return Err(CtrlError::Protocol("unknown status code"));
                }
            }
        }
    }

    /// Call `C` with its request record; collects every part of the answer, typed. `on_part`
    /// sees each part's body as it arrives; the final part's body is returned.
    pub fn request_with<C: CtrlCall>(
        &mut self,
        args: &C::Args,
        wait: &mut dyn Wait,
        mut on_part: impl FnMut(&C::Resp) -> Result<(), CtrlError>,
    ) -> Result<C::Resp, CtrlError> {
        let last = self.exchange(
            C::OP,
            |seq| CtrlMsg::request::<C>(seq, args),
            wait,
            |m| on_part(&body::<C>(m)?),
        )?;
        body::<C>(&last)
    }

    /// Call `C`, whose answer must be a single part.
    pub fn request<C: CtrlCall>(
        &mut self,
        args: &C::Args,
        wait: &mut dyn Wait,
    ) -> Result<C::Resp, CtrlError> {
        let mut parts = 0;
        let r = self.request_with::<C>(args, wait, |_| {
            parts += 1;
            Ok(())
        })?;
        if parts != 1 {
            return Err(CtrlError::Protocol(
                "multi-part answer to a single-part request",
            ));
        }
        Ok(r)
    }

    /// An untyped single-part call, kept for `host/src/sim_run.rs` until the seam merge (use
    /// [`CtrlClient::request`]). A body that is not `op`'s request record (by size) is refused
    /// before anything is sent.
    pub fn call<A: IntoBytes + Immutable>(
        &mut self,
        op: CtrlOp,
        args: &A,
        wait: &mut dyn Wait,
    ) -> Result<CtrlMsg, CtrlError> {
        if size_of::<A>() != op.args_size() {
            return Err(CtrlError::Protocol(
                "request body is not the opcode's record",
            ));
        }
        let mut parts = 0;
        let r = self.exchange(
            op,
            |seq| CtrlMsg::with_args(seq, op, CtrlStatus::Ok, args),
            wait,
            |_| {
                parts += 1;
                Ok(())
            },
        )?;
        if parts != 1 {
            return Err(CtrlError::Protocol(
                "multi-part answer to a single-part request",
            ));
        }
        Ok(r)
    }

    pub fn get_version(&mut self, wait: &mut dyn Wait) -> Result<VersionInfo, CtrlError> {
        self.request::<call::GetVersion>(&[], wait)
    }

    pub fn register_pool(
        &mut self,
        a: &RegisterPoolArgs,
        wait: &mut dyn Wait,
    ) -> Result<(), CtrlError> {
        self.request::<call::RegisterPool>(a, wait).map(|_| ())
    }

    pub fn create_rx_queue(
        &mut self,
        a: &CreateRxQueueArgs,
        wait: &mut dyn Wait,
    ) -> Result<(), CtrlError> {
        self.request::<call::CreateRxQueue>(a, wait).map(|_| ())
    }

    /// Unregisters a pool (no queue may be bound to it).
    pub fn unregister_pool(&mut self, pool: u8, wait: &mut dyn Wait) -> Result<(), CtrlError> {
        let a = PoolArgs { pool, _pad: [0; 3] };
        self.request::<call::UnregisterPool>(&a, wait).map(|_| ())
    }

    /// Destroys a queue; like [`CtrlClient::reset_queue`] the firmware first reports every
    /// buffer it still held, which is returned here for the ledger to reconcile.
    pub fn destroy_rx_queue(
        &mut self,
        queue: u16,
        wait: &mut dyn Wait,
    ) -> Result<Vec<BufRef>, CtrlError> {
        self.outstanding_report::<call::DestroyRxQueue>(queue, wait)
    }

    pub fn set_hds_thresh(
        &mut self,
        queue: u16,
        thresh: u32,
        wait: &mut dyn Wait,
    ) -> Result<(), CtrlError> {
        let a = HdsThreshArgs {
            queue: U16::new(queue),
            _pad: U16::new(0),
            hds_thresh: U32::new(thresh),
        };
        self.request::<call::SetHdsThresh>(&a, wait).map(|_| ())
    }

    pub fn set_rss(
        &mut self,
        queues: u16,
        key: &[u8; RSS_KEY_LEN],
        wait: &mut dyn Wait,
    ) -> Result<(), CtrlError> {
        let a = RssArgs {
            queues: U16::new(queues),
            _pad: U16::new(0),
            key: *key,
        };
        self.request::<call::SetRss>(&a, wait).map(|_| ())
    }

    /// Resets a queue; returns every buffer the NIC reported it still held.
    pub fn reset_queue(
        &mut self,
        queue: u16,
        wait: &mut dyn Wait,
    ) -> Result<Vec<BufRef>, CtrlError> {
        self.outstanding_report::<call::ResetQueue>(queue, wait)
    }

    /// Collects a multi-part [`OutstandingArgs`] report (the answer to ResetQueue and
    /// DestroyRxQueue). Checks that each part names this queue, that counts are in range, and
    /// that the final `total` equals the number of buffers received.
    fn outstanding_report<C: CtrlCall<Args = QueueArgs, Resp = OutstandingArgs>>(
        &mut self,
        queue: u16,
        wait: &mut dyn Wait,
    ) -> Result<Vec<BufRef>, CtrlError> {
        let mut bufs = Vec::new();
        let a = self.request_with::<C>(&queue_args(queue), wait, |a| {
            if a.queue.get() != queue {
                return Err(CtrlError::Protocol("buffer report names another queue"));
            }
            let n = a.count as usize;
            if n > OUTSTANDING_PER_MSG {
                return Err(CtrlError::Protocol(
                    "buffer report batch count out of range",
                ));
            }
            bufs.extend_from_slice(&a.bufs[..n]);
            Ok(())
        })?;
        if a.total.get() as usize != bufs.len() {
            return Err(CtrlError::Protocol(
                "buffer report total disagrees with the buffers sent",
            ));
        }
        Ok(bufs)
    }

    /// Reads every counter of a queue (`u16::MAX` = device-wide), page by page.
    pub fn read_stats(&mut self, queue: u16, wait: &mut dyn Wait) -> Result<Vec<u64>, CtrlError> {
        let mut out = Vec::new();
        let mut page = 0u16;
        loop {
            let a = StatsArgs {
                queue: U16::new(queue),
                page: U16::new(page),
            };
            let p = self.request::<call::ReadStats>(&a, wait)?;
            let (first, count, total) = (
                p.first.get() as usize,
                p.count.get() as usize,
                p.total.get() as usize,
            );
            if count > STATS_PER_PAGE
                || first != out.len()
                || first + count > total
                || p.queue.get() != queue
            {
                return Err(CtrlError::Protocol("stats page out of sequence"));
            }
            out.extend(p.values[..count].iter().map(|v| v.get()));
            if out.len() >= total || count == 0 {
                return Ok(out);
            }
            page = page
                .checked_add(1)
                .ok_or(CtrlError::Protocol("too many stats pages"))?;
        }
    }
}

fn queue_args(queue: u16) -> QueueArgs {
    QueueArgs {
        queue: U16::new(queue),
        _pad: U16::new(0),
    }
}

/// The body of a response to call `C` (its opcode was checked against the request already).
fn body<C: CtrlCall>(m: &CtrlMsg) -> Result<C::Resp, CtrlError> {
    m.resp_of::<C>().ok_or(CtrlError::Protocol(
        "response body is not the call's record",
    ))
}
