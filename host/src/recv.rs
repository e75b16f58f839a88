//! One receive API over two kinds of RDMA NIC: [`PoolRecv`], a shared receive queue whose
//! WQEs are page-pool buffers and whose completions come back as [`Received`] tokens — the
//! same [`Token`](crate::token::Token) and ledger as the splitrx RX queues.
//!
//! Backends:
//! - splitrx's own firmware: [`SrqRecv`] (a [`PoolSrq`] with the [`Qp`]s that take WQEs from
//!   it; completions are polled from those QPs' CQs);
//! - any ibverbs device (Linux soft-RoCE, a hardware HCA): `verbs::VerbsSrq` (cargo feature
//!   `verbs`).
//!
//! Both keep their books in one [`SrqBook`]: which buffer each posted WQE names, the CQE
//! checks (a CQE naming no posted buffer, an unknown status or opcode, more bytes than the
//! buffer: refused and counted, never trusted), and the ledger transitions (Posted -> Filled ->
//! Lent -> Free; an error completion or a flushed WQE Posted -> Free). An app written against
//! [`PoolRecv`] does not know which NIC it runs on.

use crate::pool::PagePool;
use crate::roce::{
    completion, cqe_check, Completion, Cqe, PoolSrq, Qp, Received, RoceError, SrqCounters,
    SrqDestroyed,
};
use splitrx_shared::abi::{wc_opcode, wc_status, RecvWqe, RoceCqe};
use std::collections::HashMap;
use zerocopy::little_endian::{U32, U64};

/// A receive queue fed from a page pool (see the module docs).
pub trait PoolRecv {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Posts free pool buffers as receive WQEs until the queue is full or the pool is dry;
    /// returns how many.
    fn refill(&mut self) -> Result<usize, Self::Error>;
    /// Polls up to `max` completions: each successful receive is appended to `out` (its token
    /// gives the buffer back to the pool when dropped); an error completion puts its buffer
    /// back at once and is counted ([`SrqCounters::errors`]); a refused CQE is counted
    /// ([`SrqCounters::cqe_invalid`]). Returns how many completions were consumed.
    fn poll(&mut self, max: usize, out: &mut Vec<Received>) -> Result<usize, Self::Error>;
    /// The pool the WQEs come from (for audits and statistics).
    fn pool(&self) -> &PagePool;
    fn counters(&self) -> SrqCounters;
    /// WQEs posted and not completed.
    fn outstanding(&self) -> usize;
    /// Tears the queue (and what feeds it) down: every buffer still posted goes back to the
    /// pool, which is audited. Tokens the app still holds stay valid (counted as lent).
    fn close(self) -> Result<SrqDestroyed, Self::Error>
    where
        Self: Sized;
}

/// The books of a pool-fed SRQ, shared by both backends (see the module docs).
#[derive(Debug)]
pub struct SrqBook {
    pool: PagePool,
    /// Buffers posted and not completed, by buffer.
    posted: HashMap<u32, RecvWqe>,
    counters: SrqCounters,
    first_error: Option<&'static str>,
    lkey: u32,
    /// The `qpn` word of the WQEs (the firmware's SRQ tag; 0 for verbs).
    tag: u32,
    /// The NIC's address of buffer 0 (the bus address for splitrx; the registered virtual
    /// address for verbs).
    addr_base: u64,
}

impl SrqBook {
    pub fn new(pool: PagePool, lkey: u32, tag: u32, addr_base: u64) -> SrqBook {
        SrqBook {
            pool,
            posted: HashMap::new(),
            counters: SrqCounters::default(),
            first_error: None,
            lkey,
            tag,
            addr_base,
        }
    }

    pub fn pool(&self) -> &PagePool {
        &self.pool
    }
    pub fn counters(&self) -> SrqCounters {
        self.counters
    }
    pub fn first_error(&self) -> Option<&'static str> {
        self.first_error
    }
    pub fn outstanding(&self) -> usize {
        self.posted.len()
    }

    /// A free buffer as a WQE (`wr_id` = the buffer's [`splitrx_shared::abi::BufRef`]),
    /// recorded as posted; `None` when the pool is dry.
    pub fn take(&mut self) -> Option<RecvWqe> {
        let buf = self.pool.alloc()?;
        let off = buf.index() as u64 * self.pool.buf_size() as u64;
        let w = RecvWqe {
            wr_id: U64::new(buf.raw() as u64),
            bus_addr: U64::new(self.addr_base + off),
            len: U32::new(self.pool.buf_size()),
            lkey: U32::new(self.lkey),
            buf,
            qpn: U32::new(self.tag),
        };
        self.posted.insert(buf.raw(), w);
        self.counters.posted += 1;
        Some(w)
    }

    /// A WQE [`take`](Self::take) gave that could not be posted: its buffer goes back.
    pub fn untake(&mut self, w: &RecvWqe) {
        if self.posted.remove(&w.buf.raw()).is_some() {
            self.counters.posted -= 1;
            let _ = self.pool.retire(w.buf);
        }
    }

    /// Validates a CQE and resolves it: `Ok(Ok)` a successful receive lent as a token;
    /// `Ok(Err)` an error completion (the buffer is back in the pool); `Err` a refused CQE
    /// (counted, nothing changed).
    pub fn accept(&mut self, c: &RoceCqe) -> Result<Result<Received, Completion>, &'static str> {
        let raw = c.wr_id.get();
        let Some(w) = u32::try_from(raw)
            .ok()
            .and_then(|r| self.posted.get(&r).copied())
        else {
            return Err(self.refuse("the CQE names no buffer this SRQ posted"));
        };
        if let Err(e) = cqe_check(c, &w, w.len.get() as u64) {
            return Err(self.refuse(e));
        }
        let comp = completion(c, &[w]);
        self.posted.remove(&w.buf.raw());
        if c.status != wc_status::SUCCESS {
            self.counters.errors += 1;
            if self.pool.retire(w.buf).is_err() {
                return Err(self.refuse("the ledger refused the retired buffer"));
            }
            return Ok(Err(comp));
        }
        // A WRITE with immediate places nothing in the buffer (its byte count is the WRITE's).
        let placed = if comp.opcode == wc_opcode::RECV {
            comp.byte_len
        } else {
            0
        };
        let filled = match self.pool.complete(w.buf, 0, placed, true) {
            Ok(f) => f,
            Err(_) => return Err(self.refuse("the ledger refused the completed buffer")),
        };
        match self.pool.lend(filled) {
            Ok(token) => {
                self.counters.received += 1;
                Ok(Ok(Received {
                    token,
                    completion: comp,
                }))
            }
            Err(_) => Err(self.refuse("the ledger refused to lend the buffer")),
        }
    }

    fn refuse(&mut self, why: &'static str) -> &'static str {
        self.counters.cqe_invalid += 1;
        self.first_error.get_or_insert(why);
        why
    }

    /// The NIC has let go of every WQE (the SRQ is destroyed): the buffers still posted go
    /// back to the pool, which is audited.
    pub fn close(&mut self) -> SrqDestroyed {
        let bufs: Vec<_> = self.posted.drain().map(|(_, w)| w.buf).collect();
        let retired = bufs.len();
        for b in bufs {
            let _ = self.pool.retire(b);
        }
        SrqDestroyed {
            retired,
            audit: self.pool.audit().map_err(|e| e.to_string()),
            counters: self.counters,
        }
    }
}

/// splitrx's backend of [`PoolRecv`]: a [`PoolSrq`] and the QPs attached to it (their CQs
/// carry its completions).
#[derive(Debug)]
pub struct SrqRecv {
    pub srq: PoolSrq,
    pub qps: Vec<Qp>,
    /// CQEs of the QPs' own receive rings (not the SRQ's) and send completions: ignored
    /// here, counted.
    pub foreign: u64,
}

impl SrqRecv {
    pub fn new(srq: PoolSrq, qps: Vec<Qp>) -> SrqRecv {
        SrqRecv {
            srq,
            qps,
            foreign: 0,
        }
    }

    fn resolve(&mut self, c: Cqe, out: &mut Vec<Received>) -> usize {
        match c {
            Cqe::Srq(c) => match self.srq.accept(c) {
                Ok(Ok(r)) => {
                    out.push(r);
                    1
                }
                Ok(Err(_)) => 1,
                Err(_) => 0,
            },
            // Receive CQEs of a QP's own ring, and send completions: not this API's.
            Cqe::Own(_) | Cqe::Send(_) => {
                self.foreign += 1;
                0
            }
        }
    }
}

impl PoolRecv for SrqRecv {
    type Error = RoceError;

    fn refill(&mut self) -> Result<usize, RoceError> {
        self.srq.refill()
    }

    fn poll(&mut self, max: usize, out: &mut Vec<Received>) -> Result<usize, RoceError> {
        let mut n = 0;
        for i in 0..self.qps.len() {
            if n >= max {
                break;
            }
            for c in self.qps[i].poll_cq(max - n)? {
                n += self.resolve(c, out);
            }
        }
        Ok(n)
    }

    fn pool(&self) -> &PagePool {
        self.srq.pool()
    }

    fn counters(&self) -> SrqCounters {
        self.srq.counters()
    }

    fn outstanding(&self) -> usize {
        self.srq.outstanding()
    }

    /// Destroys the QPs (their flushed SRQ completions are resolved: the buffers go back),
    /// then the SRQ.
    fn close(mut self) -> Result<SrqDestroyed, RoceError> {
        let mut late = Vec::new();
        for qp in std::mem::take(&mut self.qps) {
            for c in qp.destroy()?.completions {
                self.resolve(c, &mut late);
            }
        }
        // Receives that completed between the last poll and the destroy: dropped (their
        // buffers go back to the pool now).
        drop(late);
        self.srq.destroy().map_err(|e| e.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::PoolConfig;
    use crate::provider::{HostMemory, HostMemoryConfig};
    use splitrx_shared::abi::PoolMode;

    fn book() -> SrqBook {
        let pool = PagePool::new(
            PoolConfig {
                mode: PoolMode::Page,
                ring_size: 4,
                ..PoolConfig::new(1)
            },
            Box::new(HostMemory::new(HostMemoryConfig::new(256, 4))),
        )
        .unwrap();
        SrqBook::new(pool, 0x55, 0, 0x1000)
    }

    fn cqe(w: &RecvWqe, status: u8, len: u32) -> RoceCqe {
        RoceCqe {
            wr_id: w.wr_id,
            byte_len: U32::new(len),
            status,
            opcode: wc_opcode::RECV,
            ..Default::default()
        }
    }

    /// The books both backends keep: WQEs name pool buffers at the NIC's address; a CQE that
    /// names no posted buffer, claims more bytes than the buffer or has an unknown status is
    /// refused and counted with nothing changed; an error completion puts the buffer back; a
    /// success lends it; close retires what is still posted; the audit adds up at each step.
    #[test]
    fn srq_book_lends_refuses_and_retires_exactly() {
        let mut b = book();
        let ws: Vec<RecvWqe> = (0..3).map(|_| b.take().unwrap()).collect();
        for w in &ws {
            let off = w.buf.index() as u64 * 256;
            assert_eq!(
                (w.bus_addr.get(), w.len.get(), w.lkey.get()),
                (0x1000 + off, 256, 0x55)
            );
        }
        assert_eq!((b.outstanding(), b.counters().posted), (3, 3));
        let forged = RoceCqe {
            wr_id: U64::new(u64::from(u32::MAX) + 1),
            ..cqe(&ws[0], 0, 1)
        };
        assert_eq!(
            b.accept(&forged).unwrap_err(),
            "the CQE names no buffer this SRQ posted"
        );
        assert_eq!(
            b.accept(&cqe(&ws[0], 0, 257)).unwrap_err(),
            "more bytes than the posted buffer"
        );
        assert_eq!(
            b.accept(&cqe(&ws[0], 77, 1)).unwrap_err(),
            "unknown completion status"
        );
        assert_eq!(b.counters().cqe_invalid, 3);
        assert_eq!(
            b.first_error(),
            Some("the CQE names no buffer this SRQ posted")
        );
        assert_eq!(b.outstanding(), 3, "a refused CQE changes nothing");
        let flushed = b.accept(&cqe(&ws[1], wc_status::WR_FLUSH_ERR, 0)).unwrap();
        assert!(flushed.is_err());
        let r = b.accept(&cqe(&ws[0], 0, 10)).unwrap().unwrap();
        assert_eq!(r.token.len(), 10);
        let a = b.pool().audit().unwrap();
        assert_eq!((a.free, a.posted, a.lent, a.filled), (2, 1, 1, 0));
        assert_eq!(
            b.accept(&cqe(&ws[0], 0, 10)).unwrap_err(),
            "the CQE names no buffer this SRQ posted",
            "a buffer completes once"
        );
        let w = b.take().unwrap();
        b.untake(&w);
        assert_eq!((b.outstanding(), b.counters().posted), (1, 3));
        drop(r);
        let d = b.close();
        assert_eq!(d.retired, 1);
        let a = d.audit.unwrap();
        assert_eq!((a.free, a.posted, a.lent, a.filled), (4, 0, 0, 0));
        assert_eq!(
            (
                d.counters.received,
                d.counters.errors,
                d.counters.cqe_invalid
            ),
            (1, 1, 4)
        );
    }
}
