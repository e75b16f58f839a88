//! State-machine property test: random sequences of alloc / post / complete (page and packed)
//! / lend / drop token / detach / bulk return (with bogus and double ids) / retire /
//! reset + reconcile / handle close / destroy, run against the pool and against a simple
//! model. After every step: `audit()` passes, its per-state counts equal the model's, and
//! every buffer's ledger word equals the model's.

use proptest::prelude::*;
use splitrx_host::ledger::{BufState, Filled, LedgerError, SlotView};
use splitrx_host::pool::{PagePool, PoolConfig};
use splitrx_host::provider::{HostMemory, HostMemoryConfig};
use splitrx_host::token::{consumer, RxHandle, Token, TokenError, TokenId};
use splitrx_shared::abi::{BufRef, PoolMode};
use std::collections::HashMap;

const COUNT: u32 = 12;
const BUF: u32 = 512;
const ALIGN: u32 = 64;
const POOL: u8 = 4;

#[derive(Clone, Debug)]
enum Op {
    Alloc,
    /// `any`: pick a raw index (may be free, out of range); else a buffer the NIC holds.
    Complete {
        sel: usize,
        any: bool,
        off: u32,
        len: u32,
        retired: bool,
    },
    Lend(usize),
    DropFilled(usize),
    DropToken(usize),
    Detach(usize),
    /// Returns detached ids picked by the selectors; `bogus` adds a never-issued id and
    /// `double` returns the first one twice.
    BulkReturn {
        sels: Vec<usize>,
        bogus: bool,
        double: bool,
    },
    Retire {
        sel: usize,
        any: bool,
    },
    /// Reset: the NIC reports the NIC-held buffers whose selector bit is set, plus `extra`.
    Reconcile {
        mask: u16,
        extra: Option<u32>,
    },
    CloseHandle,
}

fn op() -> impl Strategy<Value = Op> {
    let off = prop_oneof![3 => (0u32..9).prop_map(|k| k * ALIGN), 1 => 0u32..700];
    prop_oneof![
        6 => Just(Op::Alloc),
        8 => (any::<usize>(), prop::bool::weighted(0.15), off, 0u32..200, prop::bool::weighted(0.4))
            .prop_map(|(sel, any, off, len, retired)| Op::Complete { sel, any, off, len, retired }),
        5 => any::<usize>().prop_map(Op::Lend),
        1 => any::<usize>().prop_map(Op::DropFilled),
        3 => any::<usize>().prop_map(Op::DropToken),
        2 => any::<usize>().prop_map(Op::Detach),
        2 => (prop::collection::vec(any::<usize>(), 0..4), any::<bool>(), any::<bool>())
            .prop_map(|(sels, bogus, double)| Op::BulkReturn { sels, bogus, double }),
        2 => (any::<usize>(), prop::bool::weighted(0.2)).prop_map(|(sel, any)| Op::Retire { sel, any }),
        1 => (any::<u16>(), prop::option::of(0u32..14))
            .prop_map(|(mask, extra)| Op::Reconcile { mask, extra }),
        1 => Just(Op::CloseHandle),
    ]
}

#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct MBuf {
    nic: bool,
    filled: u32,
    lent: u32,
    wm: u32,
}

impl MBuf {
    fn state(&self) -> BufState {
        if self.lent > 0 {
            BufState::Lent
        } else if self.filled > 0 {
            BufState::Filled
        } else if self.nic {
            BufState::Posted
        } else {
            BufState::Free
        }
    }
}

struct Harness {
    mode: PoolMode,
    pool: PagePool,
    m: Vec<MBuf>,
    filled: Vec<Filled>,
    tokens: Vec<Token>,
    handle: RxHandle,
    /// Detached ids still held by the handle -> buffer index.
    ids: HashMap<TokenId, u32>,
    /// Ids returned before (for double-return expectations).
    returned_ids: Vec<TokenId>,
}

fn b(i: u32) -> BufRef {
    BufRef::new(POOL, i).unwrap()
}

impl Harness {
    fn new(mode: PoolMode) -> Harness {
        let mut cfg = PoolConfig::new(POOL);
        cfg.mode = mode;
        cfg.align_log2 = 6;
        cfg.cache_size = 4;
        cfg.refill = 2;
        cfg.ring_size = 4;
        let prov = HostMemory::new(HostMemoryConfig::new(BUF, COUNT));
        let pool = PagePool::new(cfg, Box::new(prov)).unwrap();
        Harness {
            mode,
            pool,
            m: vec![MBuf::default(); COUNT as usize],
            filled: Vec::new(),
            tokens: Vec::new(),
            handle: consumer().1,
            ids: HashMap::new(),
            returned_ids: Vec::new(),
        }
    }

    fn nic_held(&self) -> Vec<u32> {
        (0..COUNT).filter(|&i| self.m[i as usize].nic).collect()
    }

    fn put_lent(&mut self, i: u32) {
        let mb = &mut self.m[i as usize];
        assert!(mb.lent > 0);
        mb.lent -= 1;
    }

    fn expect_complete(&self, i: u32, off: u32, len: u32) -> Result<(), LedgerError> {
        let buf = b(i);
        if i >= COUNT {
            return Err(LedgerError::BadIndex { buf, count: COUNT });
        }
        let mb = self.m[i as usize];
        if !mb.nic {
            return Err(LedgerError::NotPosted {
                buf,
                state: mb.state(),
            });
        }
        if off.checked_add(len).is_none_or(|e| e > BUF) {
            return Err(LedgerError::OutOfBounds {
                buf,
                off,
                len,
                size: BUF,
            });
        }
        if self.mode == PoolMode::Packed {
            if off & (ALIGN - 1) != 0 {
                return Err(LedgerError::Misaligned {
                    buf,
                    off,
                    align: ALIGN,
                });
            }
            if off < mb.wm {
                return Err(LedgerError::Overlap {
                    buf,
                    off,
                    watermark: mb.wm,
                });
            }
        }
        Ok(())
    }

    fn step(&mut self, op: &Op) {
        match op.clone() {
            Op::Alloc => {
                let any_free = self.m.iter().any(|mb| mb.state() == BufState::Free);
                match self.pool.alloc() {
                    Some(buf) => {
                        assert_eq!(buf.pool(), POOL);
                        let mb = &mut self.m[buf.index() as usize];
                        assert_eq!(mb.state(), BufState::Free, "allocated a non-free buffer");
                        *mb = MBuf {
                            nic: true,
                            ..MBuf::default()
                        };
                    }
                    None => assert!(!any_free, "alloc failed with free buffers"),
                }
            }
            Op::Complete {
                sel,
                any,
                off,
                len,
                retired,
            } => {
                let held = self.nic_held();
                let i = if any || held.is_empty() {
                    (sel % 14) as u32
                } else {
                    held[sel % held.len()]
                };
                let want = self.expect_complete(i, off, len);
                let got = self.pool.complete(b(i), off, len, retired);
                match (want, got) {
                    (Ok(()), Ok(f)) => {
                        assert_eq!((f.buf(), f.offset(), f.len()), (b(i), off, len));
                        let mb = &mut self.m[i as usize];
                        mb.filled += 1;
                        mb.wm = off + len;
                        if retired || self.mode == PoolMode::Page {
                            mb.nic = false;
                        }
                        self.filled.push(f);
                    }
                    (Err(w), Err(g)) => assert_eq!(w, g),
                    (w, g) => panic!("complete {i} {off}+{len}: model {w:?}, pool {g:?}"),
                }
            }
            Op::Lend(sel) => {
                if self.filled.is_empty() {
                    return;
                }
                let f = self.filled.swap_remove(sel % self.filled.len());
                let i = f.buf().index();
                let t = self.pool.lend(f).unwrap();
                let mb = &mut self.m[i as usize];
                mb.filled -= 1;
                mb.lent += 1;
                self.tokens.push(t);
            }
            Op::DropFilled(sel) => {
                if self.filled.is_empty() {
                    return;
                }
                let f = self.filled.swap_remove(sel % self.filled.len());
                self.m[f.buf().index() as usize].filled -= 1;
                self.pool.drop_filled(f);
            }
            Op::DropToken(sel) => {
                if self.tokens.is_empty() {
                    return;
                }
                let t = self.tokens.swap_remove(sel % self.tokens.len());
                let i = t.buf().index();
                if sel % 2 == 0 {
                    drop(t); // any-thread path: CAS + recycle ring
                } else {
                    self.pool.put(t); // owner path: plain store + fast cache
                }
                self.put_lent(i);
            }
            Op::Detach(sel) => {
                if self.tokens.is_empty() {
                    return;
                }
                let t = self.tokens.swap_remove(sel % self.tokens.len());
                let i = t.buf().index();
                let id = self.handle.detach(t);
                assert!(self.ids.insert(id, i).is_none(), "id reused while live");
            }
            Op::BulkReturn {
                sels,
                bogus,
                double,
            } => {
                let mut live: Vec<TokenId> = self.ids.keys().copied().collect();
                live.sort_by_key(|id| id.0);
                let mut ids = Vec::new();
                let mut want_err = Vec::new();
                for s in sels {
                    if live.is_empty() {
                        break;
                    }
                    ids.push(live.swap_remove(s % live.len()));
                }
                if double {
                    if let Some(&first) = ids.first() {
                        ids.push(first);
                        want_err.push(TokenError::AlreadyReturned(first));
                    } else if let Some(&old) = self.returned_ids.last() {
                        ids.push(old);
                        want_err.push(TokenError::AlreadyReturned(old));
                    }
                }
                if bogus {
                    let id = TokenId(0xdead_0000_0000_0000);
                    ids.push(id);
                    want_err.push(TokenError::Unknown(id));
                }
                let r = self.handle.return_ids(&ids);
                let uniq: Vec<TokenId> = ids
                    .iter()
                    .copied()
                    .filter(|id| self.ids.contains_key(id))
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                assert_eq!(r.returned, uniq.len());
                assert_eq!(r.errors, want_err);
                for id in uniq {
                    let i = self.ids.remove(&id).unwrap();
                    self.put_lent(i);
                    self.returned_ids.push(id);
                }
            }
            Op::Retire { sel, any } => {
                let held = self.nic_held();
                let i = if any || held.is_empty() {
                    (sel % COUNT as usize) as u32
                } else {
                    held[sel % held.len()]
                };
                let mb = self.m[i as usize];
                let got = self.pool.retire(b(i));
                if mb.nic {
                    assert_eq!(got, Ok(()));
                    self.m[i as usize].nic = false;
                } else {
                    assert_eq!(
                        got,
                        Err(LedgerError::NotPosted {
                            buf: b(i),
                            state: mb.state()
                        })
                    );
                }
            }
            Op::Reconcile { mask, extra } => {
                let held = self.nic_held();
                let mut report: Vec<BufRef> = held
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| mask & (1 << (k % 16)) != 0)
                    .map(|(_, &i)| b(i))
                    .collect();
                let mut want_unknown = Vec::new();
                let mut want_dup = 0;
                if let Some(x) = extra {
                    report.push(b(x));
                    if x >= COUNT || !self.m[x as usize].nic {
                        want_unknown.push(b(x));
                    } else if report[..report.len() - 1].contains(&b(x)) {
                        want_dup = 1;
                    }
                }
                let r = self.pool.reconcile(&report);
                assert_eq!(r.unknown, want_unknown);
                assert_eq!(r.duplicates, want_dup);
                let kept: Vec<u32> = report.iter().map(|r| r.index()).collect();
                let (mut freed, mut in_use) = (0, 0);
                for i in held {
                    if kept.contains(&i) {
                        continue;
                    }
                    let mb = &mut self.m[i as usize];
                    mb.nic = false;
                    if mb.state() == BufState::Free {
                        freed += 1;
                    } else {
                        in_use += 1;
                    }
                }
                assert_eq!((r.freed, r.retired_in_use), (freed, in_use));
            }
            Op::CloseHandle => {
                let h = std::mem::replace(&mut self.handle, consumer().1);
                let rep = h.close();
                assert_eq!(rep.detached, self.ids.len());
                // Ids of the old handle mean nothing to the new one.
                self.returned_ids.clear();
                for (_, i) in std::mem::take(&mut self.ids) {
                    self.put_lent(i);
                }
            }
        }
    }

    fn check(&self) {
        let a = self.pool.audit().unwrap_or_else(|e| panic!("audit: {e}"));
        let count = |s| self.m.iter().filter(|mb| mb.state() == s).count() as u32;
        assert_eq!(
            (a.free, a.posted, a.filled, a.lent),
            (
                count(BufState::Free),
                count(BufState::Posted),
                count(BufState::Filled),
                count(BufState::Lent)
            )
        );
        assert_eq!(a.filled_frags, self.filled.len() as u64);
        assert_eq!(a.lent_frags, (self.tokens.len() + self.ids.len()) as u64);
        for i in 0..COUNT {
            let mb = self.m[i as usize];
            let want = SlotView {
                state: mb.state(),
                nic: mb.nic,
                filled: mb.filled,
                lent: mb.lent,
            };
            assert_eq!(self.pool.state(b(i)), Some(want), "buffer {i}");
        }
        let s = self.pool.stats();
        assert_eq!(s.tokens_outstanding, a.lent_frags);
        assert_eq!(s.inflight, (COUNT - a.free) as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn pool_matches_model(packed in any::<bool>(), ops in prop::collection::vec(op(), 1..120)) {
        let mode = if packed { PoolMode::Packed } else { PoolMode::Page };
        let mut h = Harness::new(mode);
        for op in &ops {
            h.step(op);
            h.check();
        }
        // Destroy: deferred iff tokens are out; completes when the last comes back.
        let stats = h.pool.stats_handle();
        let outstanding = (h.tokens.len() + h.ids.len()) as u64;
        let posted = h.m.iter().filter(|mb| mb.nic).count() as u32;
        let filled = h.filled.len() as u64;
        let Harness { pool, tokens, handle, filled: fl, .. } = h;
        drop(fl); // destroy reclaims Filled fragments the poller still had
        let rep = pool.destroy();
        prop_assert_eq!((rep.tokens_outstanding, rep.deferred, rep.retired_posted, rep.dropped_filled),
            (outstanding, outstanding > 0, posted, filled));
        prop_assert_eq!(stats.destroy_status().completed, outstanding == 0);
        drop(tokens);
        drop(handle);
        let st = stats.destroy_status();
        prop_assert!(st.completed);
        prop_assert_eq!(st.lost, 0);
    }
}
