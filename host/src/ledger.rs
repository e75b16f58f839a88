//! The buffer ledger: who owns every buffer of a pool, always.
//!
//! Each buffer has one 32-bit state word (in [`LedgerShared`], shared with application threads
//! so they can drop their references without a lock) plus one owner-only 32-bit packing
//! watermark (in [`Ledger`]). The word packs:
//!
//! | bits   | field  | meaning                                                          |
//! |--------|--------|------------------------------------------------------------------|
//! | 31     | NIC    | the NIC holds the buffer (posted, may still write payloads)      |
//! | 16..31 | filled | fragments completed by the NIC and held by the host, not lent    |
//! | 0..16  | lent   | fragments lent to applications (outstanding tokens)              |
//!
//! and the buffer's [`BufState`] is a function of the word, so "exactly one state" holds by
//! construction: `lent > 0` -> `Lent`, else `filled > 0` -> `Filled`, else `NIC` -> `Posted`,
//! else `Free`. In page mode a buffer holds one fragment; in packed ("frag") mode a buffer may
//! carry several fragments at once and the counts are its reference count — the kernel's
//! `pp_ref_count` split into "held by the stack" and "held by userspace" (devmem TCP's
//! `net_iov` user refs). A buffer becomes `Free` when the NIC retired it (`NIC` clear) and the
//! last fragment came back (both counts zero); whichever thread makes the word zero owns the
//! free buffer, so it is recycled exactly once.
//!
//! Threading: only the pool owner (the RX poller) sets `NIC`, adds `filled`, or moves
//! `filled` -> `lent`; other threads only decrement `lent` (dropping a token) with a CAS. So
//! when the owner sees `lent == 0` nobody else can write the word and the owner updates it
//! with a plain store; only packed buffers with tokens out need a read-modify-write.
//!
//! Illegal transitions are typed [`LedgerError`]s plus counters ([`LedgerCounters`]), never
//! panics.

use crate::sync::{AtomicU32, Ordering};
use splitrx_shared::abi::{BufRef, PoolMode};
use std::sync::atomic::AtomicU64;

/// Word transitions of the ledger, the part model-checked with loom (`tests/pool_loom.rs`).
pub mod slot {
    use super::{AtomicU32, Ordering};

    /// The NIC holds the buffer.
    pub const NIC: u32 = 1 << 31;
    /// One filled (completed, not lent) fragment.
    pub const FILLED_ONE: u32 = 1 << 16;
    /// Mask of the filled count.
    pub const FILLED_MASK: u32 = 0x7fff << 16;
    /// One lent fragment.
    pub const LENT_ONE: u32 = 1;
    /// Mask of the lent count.
    pub const LENT_MASK: u32 = 0xffff;
    /// Largest filled count per buffer.
    pub const MAX_FILLED: u32 = FILLED_MASK >> 16;
    /// Largest lent count per buffer.
    pub const MAX_LENT: u32 = LENT_MASK;

    /// Filled count of a word.
    pub const fn filled(w: u32) -> u32 {
        (w & FILLED_MASK) >> 16
    }
    /// Lent count of a word.
    pub const fn lent(w: u32) -> u32 {
        w & LENT_MASK
    }

    /// Owner-side update: applies `f` to the word. With no lent fragment no other thread can
    /// write the word (others only decrement `lent`), so this is a load and a plain store;
    /// otherwise a CAS loop that re-applies `f` to the current value. `f` returns `None` to
    /// abort (the word is left unchanged). Returns `(old, new)`.
    #[inline]
    pub fn owner_update(
        slot: &AtomicU32,
        f: impl Fn(u32) -> Option<u32>,
    ) -> Result<(u32, u32), u32> {
        let mut w = slot.load(Ordering::Acquire);
        if lent(w) == 0 {
            let new = f(w).ok_or(w)?;
            slot.store(new, Ordering::Relaxed);
            return Ok((w, new));
        }
        loop {
            let new = f(w).ok_or(w)?;
            match slot.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok((w, new)),
                Err(cur) => w = cur,
            }
        }
    }

    /// Owner thread: drops one lent fragment of a token the owner itself got back. When it is
    /// the only lent fragment nobody else can write the word (others only drop fragments they
    /// hold), so this is a plain store; otherwise the same CAS as [`put_lent`].
    #[inline]
    pub fn owner_put_lent(slot: &AtomicU32) -> Result<bool, u32> {
        let w = slot.load(Ordering::Acquire);
        match lent(w) {
            0 => Err(w),
            1 => {
                slot.store(w - LENT_ONE, Ordering::Relaxed);
                Ok(w - LENT_ONE == 0)
            }
            _ => put_lent(slot),
        }
    }

    /// Any thread: drops one lent fragment (a token came back). `Ok(true)` when this made the
    /// buffer free (the caller now owns it and must recycle it); `Err(word)` when the word has
    /// no lent fragment (a double return or a return of a never-lent token).
    #[inline]
    pub fn put_lent(slot: &AtomicU32) -> Result<bool, u32> {
        let mut w = slot.load(Ordering::Acquire);
        if w == LENT_ONE {
            // Our fragment is the buffer's only reference and the NIC retired it: no other
            // thread can write this word (others write only while holding a fragment or while
            // NIC/filled are set), so a plain store frees it — page mode's common case.
            slot.store(0, Ordering::Release);
            return Ok(true);
        }
        loop {
            if lent(w) == 0 {
                return Err(w);
            }
            // Release: our reads of the payload happen before the buffer's reuse; Acquire:
            // if we free it, we see the owner's last writes.
            match slot.compare_exchange_weak(w, w - LENT_ONE, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Ok(w - LENT_ONE == 0),
                Err(cur) => w = cur,
            }
        }
    }
}

/// The one state a buffer is in.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum BufState {
    /// In the pool (fast cache, recycle ring or provider).
    Free,
    /// The NIC owns it (on a fill ring), no completion outstanding.
    Posted,
    /// The NIC wrote at least one fragment that the host holds but has not lent.
    Filled,
    /// At least one fragment is lent to an application.
    Lent,
}

impl BufState {
    /// The state a word encodes.
    pub const fn of(w: u32) -> BufState {
        if slot::lent(w) > 0 {
            BufState::Lent
        } else if slot::filled(w) > 0 {
            BufState::Filled
        } else if w & slot::NIC != 0 {
            BufState::Posted
        } else {
            BufState::Free
        }
    }
}

/// Detailed view of one buffer's word.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SlotView {
    pub state: BufState,
    /// The NIC still holds the buffer (may write more fragments in packed mode).
    pub nic: bool,
    pub filled: u32,
    pub lent: u32,
}

impl SlotView {
    pub const fn of(w: u32) -> SlotView {
        SlotView {
            state: BufState::of(w),
            nic: w & slot::NIC != 0,
            filled: slot::filled(w),
            lent: slot::lent(w),
        }
    }
}

/// An illegal transition or an invalid reference. Every variant is also counted in
/// [`LedgerCounters`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("buffer reference is NONE")]
    NoBuffer,
    #[error("{buf:?} belongs to another pool (this is pool {pool})")]
    WrongPool { buf: BufRef, pool: u8 },
    /// A [`Filled`] fragment handed to a pool other than the one that made it (two pools may
    /// share an id: the check is on the pool instance). It is refused and not touched; its
    /// buffer stays Filled in its own pool (visible in that pool's audit).
    #[error("{buf:?}: a filled fragment of another pool instance")]
    ForeignFilled { buf: BufRef },
    #[error("{buf:?}: index beyond the pool's {count} buffers")]
    BadIndex { buf: BufRef, count: u32 },
    #[error("completion for {buf:?}, which the NIC does not hold (state {state:?})")]
    NotPosted { buf: BufRef, state: BufState },
    #[error("{buf:?}: fragment {off}+{len} outside the {size}-byte buffer")]
    OutOfBounds {
        buf: BufRef,
        off: u32,
        len: u32,
        size: u32,
    },
    #[error("{buf:?}: packed fragment offset {off} not aligned to {align}")]
    Misaligned { buf: BufRef, off: u32, align: u32 },
    #[error("{buf:?}: packed fragment offset {off} overlaps earlier fragments (end {watermark})")]
    Overlap {
        buf: BufRef,
        off: u32,
        watermark: u32,
    },
    #[error("{buf:?}: too many fragments outstanding")]
    RefOverflow { buf: BufRef },
    #[error("{buf:?}: returned but no fragment of it is lent (double return / never lent)")]
    NotLent { buf: BufRef },
}

/// Ledger counters: transitions done and illegal transitions rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct LedgerCounters {
    pub posted: u64,
    pub completed: u64,
    pub retired: u64,
    pub lent: u64,
    pub filled_dropped: u64,
    pub reconciled_freed: u64,
    pub err_no_buffer: u64,
    pub err_wrong_pool: u64,
    pub err_bad_index: u64,
    pub err_not_posted: u64,
    pub err_out_of_bounds: u64,
    pub err_misaligned: u64,
    pub err_overlap: u64,
    pub err_ref_overflow: u64,
    /// Double returns / returns of never-lent tokens (owner and other threads together).
    pub err_not_lent: u64,
    /// Buffers a reset report named that the ledger did not have posted.
    pub err_reconcile_unknown: u64,
    /// Buffers a reset report named more than once.
    pub err_reconcile_duplicate: u64,
}

impl LedgerCounters {
    /// Total rejected transitions.
    pub fn errors(&self) -> u64 {
        self.err_no_buffer
            + self.err_wrong_pool
            + self.err_bad_index
            + self.err_not_posted
            + self.err_out_of_bounds
            + self.err_misaligned
            + self.err_overlap
            + self.err_ref_overflow
            + self.err_not_lent
            + self.err_reconcile_unknown
            + self.err_reconcile_duplicate
    }
}

/// The slot index and state word of `buf`, which the NIC must hold (Posted).
fn posted(sh: &LedgerShared, buf: BufRef) -> Result<(usize, u32), LedgerError> {
    let i = sh.index(buf)?;
    let w = sh.slots[i].load(Ordering::Acquire);
    if w & slot::NIC == 0 {
        return Err(LedgerError::NotPosted {
            buf,
            state: BufState::of(w),
        });
    }
    Ok((i, w))
}

/// A fragment the NIC completed and the host now holds (`Filled`): lend it to an application
/// with [`crate::pool::PagePool::lend`] (then send the token through a
/// [`crate::token::ConsumerTx`]), or give it back with [`crate::pool::PagePool::drop_filled`].
/// Not `Clone`: one value per fragment reference.
#[must_use = "a Filled fragment holds a buffer reference; lend it or drop_filled it"]
#[derive(Debug, PartialEq, Eq)]
pub struct Filled {
    pub(crate) buf: BufRef,
    pub(crate) off: u32,
    pub(crate) len: u32,
    /// The ledger (pool instance) that made it: unique in the process.
    pub(crate) owner: u64,
}

impl Filled {
    pub fn buf(&self) -> BufRef {
        self.buf
    }
    pub fn offset(&self) -> u32 {
        self.off
    }
    pub fn len(&self) -> u32 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The part of the ledger every thread may touch: the state words.
#[derive(Debug)]
pub struct LedgerShared {
    pub(crate) pool: u8,
    pub(crate) buf_size: u32,
    pub(crate) slots: Box<[AtomicU32]>,
    /// `NotLent` errors raised by non-owner threads.
    pub(crate) remote_not_lent: AtomicU64,
}

impl LedgerShared {
    pub(crate) fn new(pool: u8, count: u32, buf_size: u32) -> LedgerShared {
        LedgerShared {
            pool,
            buf_size,
            slots: (0..count).map(|_| AtomicU32::new(0)).collect(),
            remote_not_lent: AtomicU64::new(0),
        }
    }

    /// Number of buffers.
    pub fn count(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Resolves `buf` to a slot index of this pool (no counting).
    #[inline]
    pub(crate) fn index(&self, buf: BufRef) -> Result<usize, LedgerError> {
        if buf.is_none() {
            return Err(LedgerError::NoBuffer);
        }
        if buf.pool() != self.pool {
            return Err(LedgerError::WrongPool {
                buf,
                pool: self.pool,
            });
        }
        let i = buf.index() as usize;
        if i >= self.slots.len() {
            return Err(LedgerError::BadIndex {
                buf,
                count: self.count(),
            });
        }
        Ok(i)
    }

    /// Current view of buffer `index` (a snapshot).
    pub fn view(&self, index: u32) -> Option<SlotView> {
        self.slots
            .get(index as usize)
            .map(|s| SlotView::of(s.load(Ordering::Acquire)))
    }

    /// Any thread: one lent fragment of `buf` came back. `Ok(true)` when the buffer became
    /// free and the caller owns it.
    #[inline]
    pub(crate) fn put_lent(&self, buf: BufRef) -> Result<bool, LedgerError> {
        let i = self.index(buf)?;
        slot::put_lent(&self.slots[i]).map_err(|_| {
            self.remote_not_lent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            LedgerError::NotLent { buf }
        })
    }
}

/// Owner-side ledger state: packing watermarks, the mode, counters. Owned by the pool's poller
/// thread inside [`crate::pool::PagePool`].
#[derive(Debug)]
pub struct Ledger {
    /// Unique in the process: the identity [`Filled`] fragments carry.
    uid: u64,
    /// Per buffer: end of the last fragment (packed mode), so offsets must increase.
    wm: Vec<u32>,
    mode: PoolMode,
    align: u32,
    pub(crate) counters: LedgerCounters,
    /// Filled fragments outstanding (cross-checked by `audit`).
    pub(crate) filled_out: u64,
}

impl Ledger {
    pub(crate) fn new(count: u32, mode: PoolMode, align_log2: u8) -> Ledger {
        static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ledger {
            uid: NEXT_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            wm: vec![0; count as usize],
            mode,
            align: 1u32 << align_log2.min(31),
            counters: LedgerCounters::default(),
            filled_out: 0,
        }
    }

    pub(crate) fn count_err(&mut self, e: &LedgerError) {
        let c = &mut self.counters;
        match e {
            LedgerError::NoBuffer => c.err_no_buffer += 1,
            LedgerError::WrongPool { .. } | LedgerError::ForeignFilled { .. } => {
                c.err_wrong_pool += 1
            }
            LedgerError::BadIndex { .. } => c.err_bad_index += 1,
            LedgerError::NotPosted { .. } => c.err_not_posted += 1,
            LedgerError::OutOfBounds { .. } => c.err_out_of_bounds += 1,
            LedgerError::Misaligned { .. } => c.err_misaligned += 1,
            LedgerError::Overlap { .. } => c.err_overlap += 1,
            LedgerError::RefOverflow { .. } => c.err_ref_overflow += 1,
            LedgerError::NotLent { .. } => c.err_not_lent += 1,
        }
    }

    /// Free -> Posted for a buffer the owner just took from its cache (known `Free`).
    #[inline]
    pub(crate) fn post_free(&mut self, sh: &LedgerShared, i: usize) {
        // The buffer came out of the pool: no fragment is out, nobody else writes the word.
        sh.slots[i].store(slot::NIC, Ordering::Relaxed);
        self.wm[i] = 0;
        self.counters.posted += 1;
    }

    /// Validates a completion's fragment against the ledger without changing anything.
    pub(crate) fn check(
        &self,
        sh: &LedgerShared,
        buf: BufRef,
        off: u32,
        len: u32,
    ) -> Result<usize, LedgerError> {
        let (i, w) = posted(sh, buf)?;
        match off.checked_add(len) {
            Some(end) if end <= sh.buf_size => {}
            _ => {
                return Err(LedgerError::OutOfBounds {
                    buf,
                    off,
                    len,
                    size: sh.buf_size,
                })
            }
        }
        if self.mode == PoolMode::Packed {
            if off & (self.align - 1) != 0 {
                return Err(LedgerError::Misaligned {
                    buf,
                    off,
                    align: self.align,
                });
            }
            if off < self.wm[i] {
                return Err(LedgerError::Overlap {
                    buf,
                    off,
                    watermark: self.wm[i],
                });
            }
        }
        if slot::filled(w) >= slot::MAX_FILLED {
            return Err(LedgerError::RefOverflow { buf });
        }
        Ok(i)
    }

    /// Whether `f` was made by this ledger; counts the error when not.
    pub(crate) fn owns(&mut self, f: &Filled) -> Result<(), LedgerError> {
        if f.owner == self.uid {
            return Ok(());
        }
        let e = LedgerError::ForeignFilled { buf: f.buf };
        self.count_err(&e);
        Err(e)
    }

    /// Whether `f` was made by this ledger (no counting).
    pub(crate) fn made(&self, f: &Filled) -> bool {
        f.owner == self.uid
    }

    /// Posted -> Filled with an empty fragment, and retired: a buffer named by a completion the
    /// host rejected for a reason other than the ledger's. The NIC said it is done with it; the
    /// host does not reuse it until the holder of the returned fragment (the queue's
    /// quarantine) drops it, after the next reset has confirmed the NIC does not hold it.
    pub(crate) fn quarantine(
        &mut self,
        sh: &LedgerShared,
        buf: BufRef,
    ) -> Result<Filled, LedgerError> {
        let (i, w) = posted(sh, buf)?;
        if slot::filled(w) >= slot::MAX_FILLED {
            return Err(LedgerError::RefOverflow { buf });
        }
        // Cannot fail: checked NIC set and filled below max; only `lent` changes concurrently.
        let _ = slot::owner_update(&sh.slots[i], |w| Some((w + slot::FILLED_ONE) & !slot::NIC));
        self.counters.retired += 1;
        self.filled_out += 1;
        Ok(Filled {
            buf,
            off: self.wm[i],
            len: 0,
            owner: self.uid,
        })
    }

    /// Posted -> Filled: the NIC wrote `len` bytes at `off`. `retired`: the NIC is done with
    /// the buffer (always true in page mode).
    pub(crate) fn complete(
        &mut self,
        sh: &LedgerShared,
        buf: BufRef,
        off: u32,
        len: u32,
        retired: bool,
    ) -> Result<Filled, LedgerError> {
        let i = match self.check(sh, buf, off, len) {
            Ok(i) => i,
            Err(e) => {
                self.count_err(&e);
                return Err(e);
            }
        };
        let retire = retired || self.mode == PoolMode::Page;
        let clear = if retire { slot::NIC } else { 0 };
        // Cannot fail: checked NIC set and filled below max; only `lent` changes concurrently.
        let _ = slot::owner_update(&sh.slots[i], |w| Some((w + slot::FILLED_ONE) & !clear));
        self.wm[i] = off + len;
        self.counters.completed += 1;
        self.counters.retired += retire as u64;
        self.filled_out += 1;
        Ok(Filled {
            buf,
            off,
            len,
            owner: self.uid,
        })
    }

    /// The NIC is done with `buf` without a new fragment (packed retirement, or a flushed
    /// buffer on reset). `Ok(true)` when the buffer is now free (the caller recycles it).
    pub(crate) fn retire(&mut self, sh: &LedgerShared, buf: BufRef) -> Result<bool, LedgerError> {
        let r = sh.index(buf).and_then(|i| {
            slot::owner_update(&sh.slots[i], |w| {
                (w & slot::NIC != 0).then_some(w & !slot::NIC)
            })
            .map_err(|w| LedgerError::NotPosted {
                buf,
                state: BufState::of(w),
            })
        });
        match r {
            Ok((_, new)) => {
                self.counters.retired += 1;
                Ok(new == 0)
            }
            Err(e) => {
                self.count_err(&e);
                Err(e)
            }
        }
    }

    /// Filled -> Lent for one fragment.
    pub(crate) fn lend(&mut self, sh: &LedgerShared, f: &Filled) -> Result<(), LedgerError> {
        self.owns(f)?;
        let i = f.buf.index() as usize;
        let r = slot::owner_update(&sh.slots[i], |w| {
            (slot::lent(w) < slot::MAX_LENT).then(|| w - slot::FILLED_ONE + slot::LENT_ONE)
        });
        match r {
            Ok(_) => {
                self.counters.lent += 1;
                self.filled_out -= 1;
                Ok(())
            }
            Err(_) => {
                let e = LedgerError::RefOverflow { buf: f.buf };
                self.count_err(&e);
                Err(e)
            }
        }
    }

    /// Drops a filled fragment without lending it. `true` when the buffer is now free.
    pub(crate) fn drop_filled(&mut self, sh: &LedgerShared, f: Filled) -> bool {
        if self.owns(&f).is_err() {
            return false;
        }
        let i = f.buf.index() as usize;
        // The closure never aborts; `Err` carries the unchanged word.
        let new = match slot::owner_update(&sh.slots[i], |w| Some(w - slot::FILLED_ONE)) {
            Ok((_, new)) => new,
            Err(w) => w,
        };
        self.counters.filled_dropped += 1;
        self.filled_out -= 1;
        new == 0
    }

    /// Counters, including `NotLent` errors raised on other threads.
    pub fn counters(&self, sh: &LedgerShared) -> LedgerCounters {
        let mut c = self.counters;
        c.err_not_lent += sh
            .remote_not_lent
            .load(std::sync::atomic::Ordering::Relaxed);
        c
    }

    pub(crate) fn reset_wm(&mut self, i: usize) {
        self.wm[i] = 0;
    }

    /// Bytes of owner-side metadata per buffer.
    pub const OWNER_BYTES_PER_BUF: usize = core::mem::size_of::<u32>();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn states_decode_from_the_word() {
        assert_eq!(BufState::of(0), BufState::Free);
        assert_eq!(BufState::of(slot::NIC), BufState::Posted);
        assert_eq!(BufState::of(slot::NIC | slot::FILLED_ONE), BufState::Filled);
        assert_eq!(
            BufState::of(slot::FILLED_ONE | slot::LENT_ONE),
            BufState::Lent
        );
        let v = SlotView::of(slot::NIC | (3 * slot::FILLED_ONE) | (2 * slot::LENT_ONE));
        assert_eq!(
            v,
            SlotView {
                state: BufState::Lent,
                nic: true,
                filled: 3,
                lent: 2
            }
        );
    }

    #[test]
    fn returns_without_a_lent_fragment_are_rejected_and_counted() {
        let sh = LedgerShared::new(3, 4, 256);
        let b = BufRef::new(3, 1).unwrap();
        // Never lent (Free), and posted-but-not-lent: both rejected, word unchanged.
        assert_eq!(sh.put_lent(b), Err(LedgerError::NotLent { buf: b }));
        sh.slots[1].store(slot::NIC | slot::FILLED_ONE, Ordering::Relaxed);
        assert_eq!(sh.put_lent(b), Err(LedgerError::NotLent { buf: b }));
        assert_eq!(
            slot::owner_put_lent(&sh.slots[1]),
            Err(slot::NIC | slot::FILLED_ONE)
        );
        assert_eq!(
            sh.slots[1].load(Ordering::Relaxed),
            slot::NIC | slot::FILLED_ONE
        );
        assert_eq!(
            sh.remote_not_lent
                .load(std::sync::atomic::Ordering::Relaxed),
            2
        );
        // A real return, then the double return.
        sh.slots[1].store(slot::LENT_ONE, Ordering::Relaxed);
        assert_eq!(sh.put_lent(b), Ok(true));
        assert_eq!(sh.put_lent(b), Err(LedgerError::NotLent { buf: b }));
        assert_eq!(
            sh.remote_not_lent
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        let l = Ledger::new(4, PoolMode::Page, 0);
        assert_eq!(l.counters(&sh).err_not_lent, 3);
        // References that are not this pool's buffers.
        assert_eq!(sh.put_lent(BufRef::NONE), Err(LedgerError::NoBuffer));
        let other = BufRef::new(4, 1).unwrap();
        assert_eq!(
            sh.put_lent(other),
            Err(LedgerError::WrongPool {
                buf: other,
                pool: 3
            })
        );
        let far = BufRef::new(3, 4).unwrap();
        assert_eq!(
            sh.put_lent(far),
            Err(LedgerError::BadIndex { buf: far, count: 4 })
        );
    }

    #[test]
    fn lent_and_filled_counts_saturate_with_an_error() {
        let sh = LedgerShared::new(0, 1, 4096);
        let mut l = Ledger::new(1, PoolMode::Packed, 0);
        let b = BufRef::new(0, 0).unwrap();
        sh.slots[0].store(
            slot::NIC | (slot::MAX_FILLED * slot::FILLED_ONE),
            Ordering::Relaxed,
        );
        assert_eq!(
            l.complete(&sh, b, 0, 1, false),
            Err(LedgerError::RefOverflow { buf: b })
        );
        sh.slots[0].store(slot::FILLED_ONE | slot::MAX_LENT, Ordering::Relaxed);
        let f = Filled {
            buf: b,
            off: 0,
            len: 1,
            owner: l.uid,
        };
        l.filled_out = 1;
        assert_eq!(l.lend(&sh, &f), Err(LedgerError::RefOverflow { buf: b }));
        assert_eq!(l.counters(&sh).err_ref_overflow, 2);
        assert_eq!(
            sh.slots[0].load(Ordering::Relaxed),
            slot::FILLED_ONE | slot::MAX_LENT
        );
    }
}
