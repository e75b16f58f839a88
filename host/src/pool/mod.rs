//! The page pool of one RX queue: fast cache, recycle ring, provider slow path, and the ledger.
//!
//! Kernel counterpart: `struct page_pool` (`net/core/page_pool.c`).
//!
//! | kernel                                   | here                                       |
//! |------------------------------------------|--------------------------------------------|
//! | `pool->alloc.cache` (NAPI-owned array)   | `PagePool::cache`, a plain `Vec<u32>` stack owned by the poller (`&mut self`, no atomics) |
//! | `page_pool_alloc_netmems` fast path      | [`PagePool::alloc`] / [`PagePool::fill`]   |
//! | `page_pool_refill_alloc_cache`           | refill from the [`RecycleRing`] (`alloc_refill`, `alloc_empty`) |
//! | `__page_pool_alloc_netmems_slow`         | bulk refill from the [`MemoryProvider`] (`alloc_slow`) |
//! | `page_pool_recycle_in_cache`             | owner-side recycle (`recycle_cached`, `recycle_cache_full`) |
//! | `page_pool_recycle_in_ring` / `ptr_ring` | [`RecycleRing`] (`recycle_ring`, `recycle_ring_full`) |
//! | `page_pool_return_page` / `release_netmem` | release to the provider (`recycle_released`) |
//! | `pp_ref_count` / `page_pool_unref_netmem`| the ledger word's filled/lent counts ([`crate::ledger`]) |
//! | `page_pool_destroy` + `page_pool_release_retry` | [`PagePool::destroy`], deferred while tokens are out, completed by the last token |
//!
//! Threads: the `PagePool` value belongs to the queue's poller. Applications hold
//! [`Token`]s (one per lent fragment), which are `Send` and may be dropped on any thread: the
//! drop decrements the buffer's ledger word with one CAS, and the thread that frees the
//! buffer pushes its index into the recycle ring (or, ring full, releases it to the provider).
//! The poller pulls buffers back from the ring on its allocation slow path. So nothing but
//! the ring and the per-buffer word is shared, and the owner's fast path touches neither.

use crate::ledger::{
    BufState, Filled, Ledger, LedgerCounters, LedgerError, LedgerShared, SlotView,
};
use crate::provider::{MemoryProvider, ProviderError, ProviderInfo, Region};
use crate::recycle::{RecycleConsumer, RecycleRing};
mod token;
use splitrx_shared::abi::{BufRef, FillDesc, PoolMode};
use std::ptr::NonNull;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
pub use token::{FragLocation, Token};

/// References the owner charges at once for the tokens it lends.
const TOKEN_CHARGE: usize = 64;

/// Pool parameters.
#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    /// Pool id (the top byte of every [`BufRef`] of this pool).
    pub pool_id: u8,
    /// Page mode (one fragment per buffer) or packed ("frag") mode.
    pub mode: PoolMode,
    /// Packed mode: fragments start at multiples of `1 << align_log2`.
    pub align_log2: u8,
    /// Capacity of the owner's fast cache (kernel: `PP_ALLOC_CACHE_SIZE` = 128).
    pub cache_size: usize,
    /// Buffers moved per slow-path refill (kernel: `PP_ALLOC_CACHE_REFILL` = 64).
    pub refill: usize,
    /// Cells of the recycle ring (rounded up to a power of two; kernel: `pool_size`).
    pub ring_size: usize,
}

impl PoolConfig {
    pub fn new(pool_id: u8) -> PoolConfig {
        PoolConfig {
            pool_id,
            mode: PoolMode::Page,
            align_log2: 6,
            cache_size: 128,
            refill: 64,
            ring_size: 1024,
        }
    }
}

crate::counters! {
/// Counters of the pool; names follow the kernel's `page_pool_stats`
/// (`ethtool -S` / netlink `page-pool-stats-get`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Allocations served from the fast cache.
    pub alloc_fast,
    /// Slow-path refills from the provider (calls).
    pub alloc_slow,
    /// Refill attempts that found the recycle ring empty.
    pub alloc_empty,
    /// Buffers moved from the recycle ring into the cache.
    pub alloc_refill,
    /// Allocations that found no buffer anywhere.
    pub alloc_failed,
    /// Owner-side recycles into the cache.
    pub recycle_cached,
    /// Owner-side recycles that found the cache full.
    pub recycle_cache_full,
    /// Buffers recycled through the ring (popped so far + still in it).
    pub recycle_ring,
    /// Recycles that found the ring full (owner and other threads).
    pub recycle_ring_full,
    /// Buffers released to the provider (owner and other threads).
    pub recycle_released,
    /// Releases the provider declined (the pool kept those buffers).
    pub release_declined,
    /// Buffers not free (posted, filled or lent).
    pub inflight,
    /// Lent fragments (outstanding tokens).
    pub tokens_outstanding,
}
}

/// Shared destroy status, observable through a [`StatsHandle`] after the pool is gone.
#[derive(Debug, Default)]
pub(crate) struct SharedCounters {
    /// References to the [`PoolShared`] ([`PoolRef`]s): the owner's, its pre-charged token
    /// budget, and one per outstanding token. Lives here (not in `PoolShared`) so a
    /// [`StatsHandle`] can read it after the pool is freed.
    refs: AtomicUsize,
    ring_full: AtomicU64,
    released: AtomicU64,
    declined: AtomicU64,
    destroy_requested: AtomicBool,
    destroy_deferred: AtomicBool,
    destroyed: AtomicBool,
    /// Buffers not back in the provider when the destroy completed (must be 0).
    lost_at_destroy: AtomicU64,
}

/// Destroy status of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestroyStatus {
    /// `destroy` was called (or the pool dropped).
    pub requested: bool,
    /// The destroy had to wait for outstanding tokens.
    pub deferred: bool,
    /// The provider was destroyed: every buffer came back.
    pub completed: bool,
    /// Tokens still outstanding (0 once completed).
    pub tokens_outstanding: u64,
    /// Buffers missing when the destroy completed (0 unless a bug leaked one).
    pub lost: u64,
}

/// A handle that observes a pool's destroy, also after the owner is gone.
#[derive(Clone, Debug)]
pub struct StatsHandle {
    counters: Arc<SharedCounters>,
}

impl StatsHandle {
    pub fn destroy_status(&self) -> DestroyStatus {
        let c = &self.counters;
        let completed = c.destroyed.load(Ordering::Acquire);
        let requested = c.destroy_requested.load(Ordering::Acquire);
        // After the owner let go, each outstanding token holds exactly one reference.
        let tokens = if requested && !completed {
            c.refs.load(Ordering::Acquire) as u64
        } else {
            0
        };
        DestroyStatus {
            requested,
            deferred: c.destroy_deferred.load(Ordering::Acquire),
            completed,
            tokens_outstanding: tokens,
            lost: c.lost_at_destroy.load(Ordering::Acquire),
        }
    }
}

/// The provider and what goes with it, behind the slow-path lock.
struct ProviderSlot {
    provider: Box<dyn MemoryProvider>,
    /// Buffers the provider declined to take back.
    parked: Vec<u32>,
    /// The ring's consumer, handed over by the owner when it goes away (deferred destroy).
    orphan_consumer: Option<RecycleConsumer>,
}

/// What the owner and every token share.
pub(crate) struct PoolShared {
    pub(crate) ledger: LedgerShared,
    pub(crate) ring: RecycleRing,
    pub(crate) region: Region,
    provider: Mutex<ProviderSlot>,
    counters: Arc<SharedCounters>,
}

impl std::fmt::Debug for PoolShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolShared")
            .field("pool", &self.ledger.pool)
            .finish_non_exhaustive()
    }
}

// `PoolRef`'s `Send`/`Sync` impls rely on this.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PoolShared>();
};

/// One counted reference to a [`PoolShared`] (a hand-rolled `Arc`). Tokens hold one each.
/// Unlike `Arc`, the owner can charge references in bulk ([`PoolRef::charge`]) and hand
/// them to tokens without an atomic operation per token, and take a token's reference back
/// into its budget ([`PoolRef::forget`]) — so lending and owner-side returns cost no atomic
/// read-modify-write (kernel analogue: page_pool counts `pages_state_hold_cnt` /
/// `release_cnt`, not a reference per page).
pub(crate) struct PoolRef(NonNull<PoolShared>);

// SAFETY: a PoolRef is a shared reference to a `PoolShared`, which is `Send + Sync` (atomics,
// a Mutex, and a `Region` whose memory is governed by the ledger); the count is atomic.
unsafe impl Send for PoolRef {}
// SAFETY: as above; `&PoolRef` only gives `&PoolShared`.
unsafe impl Sync for PoolRef {}

impl PoolRef {
    fn new(shared: PoolShared) -> PoolRef {
        shared.counters.refs.store(1, Ordering::Relaxed);
        PoolRef(NonNull::from(Box::leak(Box::new(shared))))
    }
    /// Adds `n` references that the caller will hand out with [`PoolRef::charged`].
    #[inline]
    fn charge(&self, n: usize) {
        self.counters.refs.fetch_add(n, Ordering::Relaxed);
    }
    /// A new reference paid for by an earlier [`charge`](Self::charge).
    ///
    /// # Safety
    /// The caller must own one charged, not yet handed out reference.
    #[inline]
    unsafe fn charged(&self) -> PoolRef {
        PoolRef(self.0)
    }
    /// Gives this reference back to the caller's budget without decrementing the count.
    #[inline]
    pub(crate) fn forget(self) {
        std::mem::forget(self)
    }
    /// Drops `n` references at once (the owner's unused budget).
    fn release_budget(&self, n: usize) {
        // Never the last reference: `self` still holds one.
        self.counters.refs.fetch_sub(n, Ordering::Release);
    }
    #[inline]
    pub(crate) fn same(&self, other: &PoolRef) -> bool {
        self.0 == other.0
    }
}

impl Clone for PoolRef {
    fn clone(&self) -> PoolRef {
        self.counters.refs.fetch_add(1, Ordering::Relaxed);
        PoolRef(self.0)
    }
}

impl std::ops::Deref for PoolRef {
    type Target = PoolShared;
    #[inline]
    fn deref(&self) -> &PoolShared {
        // SAFETY: the pointee lives until the last reference is dropped (below), and `self`
        // is one.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for PoolRef {
    #[inline]
    fn drop(&mut self) {
        // Release: our uses of the pool happen before its destruction; the last dropper
        // acquires them all (the `Arc` protocol).
        if self.counters.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        std::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: this was the last reference; the pointer came from `Box::leak` in `new`.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

impl PoolShared {
    fn provider(&self) -> MutexGuard<'_, ProviderSlot> {
        // A panic while holding the lock cannot leave the free lists inconsistent in a way
        // that matters more than losing the pool: keep going with the inner value.
        self.provider.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Any thread: a token of `buf` came back (kernel: `page_pool_put_unrefed_netmem` with
    /// `allow_direct = false`).
    #[inline]
    pub(crate) fn return_token(&self, buf: BufRef) {
        if let Ok(true) = self.ledger.put_lent(buf) {
            self.recycle_remote(buf.index());
        }
    }

    /// Any thread: buffer `i` is free and owned by the caller.
    #[inline]
    fn recycle_remote(&self, i: u32) {
        if let Err(i) = self.ring.push(i) {
            self.counters.ring_full.fetch_add(1, Ordering::Relaxed);
            self.release(&mut self.provider(), i);
        }
    }

    fn release(&self, slot: &mut ProviderSlot, i: u32) {
        if slot.provider.release(i) {
            self.counters.released.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.declined.fetch_add(1, Ordering::Relaxed);
            slot.parked.push(i);
        }
    }
}

impl Drop for PoolShared {
    /// The last reference is gone: the owner destroyed the pool and every token came back
    /// (kernel: `page_pool_release` succeeding, then `mp_ops->destroy`).
    fn drop(&mut self) {
        let slot = self.provider.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(mut c) = slot.orphan_consumer.take() {
            while let Some(i) = self.ring.pop(&mut c) {
                if slot.provider.release(i) {
                    self.counters.released.fetch_add(1, Ordering::Relaxed);
                } else {
                    slot.parked.push(i);
                }
            }
        }
        let parked = std::mem::take(&mut slot.parked);
        for i in parked {
            slot.provider.release(i);
        }
        let held = slot.provider.describe().held as u64;
        self.counters.lost_at_destroy.store(
            (self.ledger.count() as u64).saturating_sub(held),
            Ordering::Release,
        );
        slot.provider.destroy();
        self.counters.destroyed.store(true, Ordering::Release);
    }
}

/// Outcome of [`PagePool::reconcile`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Reported buffers that stay Posted (the NIC still holds them).
    pub kept: u32,
    /// Posted buffers not reported, now Free.
    pub freed: u32,
    /// Posted buffers not reported whose fragments are still held or lent: retired, and
    /// freed when the last fragment comes back.
    pub retired_in_use: u32,
    /// Reported buffers the ledger did not have posted (or not of this pool); ignored.
    pub unknown: Vec<BufRef>,
    /// Reported buffers named more than once.
    pub duplicates: u32,
}

/// Result of a successful [`PagePool::audit`]: buffers per state and where the free ones are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub total: u32,
    pub free: u32,
    pub posted: u32,
    pub filled: u32,
    pub lent: u32,
    /// Filled fragments (sum over buffers).
    pub filled_frags: u64,
    /// Lent fragments (sum over buffers) = outstanding tokens.
    pub lent_frags: u64,
    pub in_cache: u32,
    pub in_ring: u32,
    pub in_provider: u32,
    pub parked: u32,
}

/// An inconsistency found by [`PagePool::audit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    #[error("buffer {index} is Free but no free list holds it (lost)")]
    FreeNotHeld { index: u32 },
    #[error("buffer {index} is held by a free list but is {state:?}")]
    HeldNotFree { index: u32, state: BufState },
    #[error("buffer {index} is held twice by the free lists (duplicated)")]
    HeldTwice { index: u32 },
    #[error("free list holds index {index}, beyond the pool")]
    HeldOutOfRange { index: u32 },
    #[error("state counts {sum} do not add up to {total}")]
    StateSum { sum: u32, total: u32 },
    #[error("ledger words hold {words} filled fragments, the owner counted {counted}")]
    FilledMismatch { words: u64, counted: u64 },
}

/// Outcome of [`PagePool::destroy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DestroyReport {
    /// Buffers the NIC still held, retired (the queue must be stopped before destroy).
    pub retired_posted: u32,
    /// Filled fragments dropped (never lent).
    pub dropped_filled: u64,
    /// Tokens outstanding when destroy was called; the destroy completes when they are back.
    pub tokens_outstanding: u64,
    /// Destroy had to be deferred.
    pub deferred: bool,
}

/// Bytes of bookkeeping of a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataBytes {
    /// Ledger words + packing watermarks (both per buffer).
    pub ledger: usize,
    /// Fast cache + recycle ring (fixed size, independent of the buffer count).
    pub cache_and_ring: usize,
    /// The provider's free list (per buffer).
    pub provider: usize,
    pub buffers: u32,
}

impl MetadataBytes {
    /// Total bytes divided by the buffer count.
    pub fn per_buffer(&self) -> f64 {
        (self.ledger + self.cache_and_ring + self.provider) as f64 / self.buffers as f64
    }
}

/// Owner-only statistics (plain integers: only the poller writes them).
#[derive(Clone, Copy, Debug, Default)]
struct OwnerStats {
    alloc_fast: u64,
    alloc_slow: u64,
    alloc_empty: u64,
    alloc_refill: u64,
    alloc_failed: u64,
    recycle_cached: u64,
    recycle_cache_full: u64,
    ring_pushes: u64,
    ring_pops: u64,
}

/// The page pool of one RX queue (see the module docs). Owned by the queue's poller.
pub struct PagePool {
    cache: Vec<u32>,
    cache_cap: usize,
    stats: OwnerStats,
    ledger: Ledger,
    consumer: Option<RecycleConsumer>,
    shared: PoolRef,
    /// References charged to `shared` and not yet handed to tokens.
    budget: usize,
    cfg: PoolConfig,
    shut_down: bool,
}

impl std::fmt::Debug for PagePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagePool")
            .field("pool", &self.cfg.pool_id)
            .field("region", &self.shared.region)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl PagePool {
    /// Creates a pool over `provider` (calls its `init`).
    pub fn new(
        cfg: PoolConfig,
        mut provider: Box<dyn MemoryProvider>,
    ) -> Result<PagePool, ProviderError> {
        if cfg.mode == PoolMode::Packed && cfg.align_log2 > 24 {
            return Err(ProviderError::Config("align_log2 must be <= 24"));
        }
        let region = provider.init()?;
        if region.count == 0 || region.count > BufRef::MAX_INDEX + 1 {
            return Err(ProviderError::Config(
                "provider region has an invalid buffer count",
            ));
        }
        let (ring, consumer) = RecycleRing::new(cfg.ring_size);
        let shared = PoolRef::new(PoolShared {
            ledger: LedgerShared::new(cfg.pool_id, region.count, region.buf_size),
            ring,
            region,
            provider: Mutex::new(ProviderSlot {
                provider,
                parked: Vec::new(),
                orphan_consumer: None,
            }),
            counters: Arc::default(),
        });
        let cache_cap = cfg.cache_size.max(1);
        Ok(PagePool {
            cache: Vec::with_capacity(cache_cap),
            cache_cap,
            stats: OwnerStats::default(),
            ledger: Ledger::new(region.count, cfg.mode, cfg.align_log2),
            consumer: Some(consumer),
            shared,
            budget: 0,
            cfg: PoolConfig {
                cache_size: cache_cap,
                refill: cfg.refill.clamp(1, cache_cap),
                ..cfg
            },
            shut_down: false,
        })
    }

    pub fn id(&self) -> u8 {
        self.cfg.pool_id
    }
    pub fn config(&self) -> &PoolConfig {
        &self.cfg
    }
    /// The memory the buffers live in (base pointer, bus base, sizes).
    pub fn region(&self) -> &Region {
        &self.shared.region
    }
    pub fn buf_size(&self) -> u32 {
        self.shared.region.buf_size
    }
    pub fn count(&self) -> u32 {
        self.shared.region.count
    }
    /// Bus address of `buf`, if it is a buffer of this pool.
    pub fn bus_addr(&self, buf: BufRef) -> Option<u64> {
        let i = self.shared.ledger.index(buf).ok()?;
        Some(self.shared.region.bus_addr(i as u32))
    }
    /// Ledger view of `buf`.
    pub fn state(&self, buf: BufRef) -> Option<SlotView> {
        let i = self.shared.ledger.index(buf).ok()?;
        self.shared.ledger.view(i as u32)
    }
    pub fn provider_info(&self) -> ProviderInfo {
        self.shared.provider().provider.describe()
    }
    /// Ledger counters (transitions and rejected transitions).
    pub fn ledger_counters(&self) -> LedgerCounters {
        self.ledger.counters(&self.shared.ledger)
    }
    /// A handle that observes the pool's destroy (works after the pool is gone).
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            counters: self.shared.counters.clone(),
        }
    }

    #[inline]
    fn bufref(&self, i: u32) -> BufRef {
        BufRef::from_raw(((self.cfg.pool_id as u32) << 24) | i)
    }

    // ----------------------------------------------------------------------------------
    // Allocation: Free -> Posted
    // ----------------------------------------------------------------------------------

    /// Takes a free buffer for a fill ring and marks it Posted (the NIC owns it from now
    /// on). Kernel: `page_pool_alloc_netmems` (fast path: pop the NAPI cache). `None` when
    /// the pool is exhausted (`alloc_failed`).
    #[inline]
    pub fn alloc(&mut self) -> Option<BufRef> {
        let i = match self.cache.pop() {
            Some(i) => {
                self.stats.alloc_fast += 1;
                i
            }
            None => self.alloc_slow()?,
        };
        self.ledger.post_free(&self.shared.ledger, i as usize);
        Some(self.bufref(i))
    }

    /// Bulk [`alloc`](Self::alloc) straight into fill descriptors (bus address, length,
    /// buffer). Returns how many of `out` were written; fewer than `out.len()` only when the
    /// pool ran dry.
    pub fn fill(&mut self, out: &mut [FillDesc]) -> usize {
        let (bus_base, size) = (self.shared.region.bus_base, self.shared.region.buf_size);
        for (n, d) in out.iter_mut().enumerate() {
            let Some(buf) = self.alloc() else { return n };
            *d = FillDesc::new(buf, bus_base + buf.index() as u64 * size as u64, size);
        }
        out.len()
    }

    /// Cache empty: refill from the recycle ring, else from the provider.
    #[cold]
    fn alloc_slow(&mut self) -> Option<u32> {
        let want = self.cfg.refill;
        let mut n = 0;
        if let Some(c) = self.consumer.as_mut() {
            while n < want {
                match self.shared.ring.pop(c) {
                    Some(i) => {
                        self.cache.push(i);
                        n += 1;
                    }
                    None => break,
                }
            }
        }
        self.stats.ring_pops += n as u64;
        if n > 0 {
            self.stats.alloc_refill += n as u64;
        } else {
            self.stats.alloc_empty += 1;
            self.stats.alloc_slow += 1;
            let start = self.cache.len();
            let mut slot = self.shared.provider();
            let take = want.min(slot.parked.len());
            let from = slot.parked.len() - take;
            self.cache.extend(slot.parked.drain(from..));
            let rest = want - take;
            if rest > 0 {
                slot.provider.alloc_bulk(&mut self.cache, rest);
            }
            // Hand buffers out in the provider's order (lowest index first on a fresh pool).
            self.cache[start..].reverse();
        }
        match self.cache.pop() {
            Some(i) => {
                self.stats.alloc_fast += 1;
                Some(i)
            }
            None => {
                self.stats.alloc_failed += 1;
                None
            }
        }
    }

    /// Owner: buffer `i` just became free (kernel: `page_pool_recycle_in_cache`, then
    /// `page_pool_recycle_in_ring`, then release).
    #[inline]
    fn recycle_direct(&mut self, i: u32) {
        if self.cache.len() < self.cache_cap {
            self.cache.push(i);
            self.stats.recycle_cached += 1;
            return;
        }
        self.stats.recycle_cache_full += 1;
        match self.shared.ring.push(i) {
            Ok(()) => self.stats.ring_pushes += 1,
            Err(i) => {
                self.shared
                    .counters
                    .ring_full
                    .fetch_add(1, Ordering::Relaxed);
                let sh = &self.shared;
                sh.release(&mut sh.provider(), i);
            }
        }
    }

    // ----------------------------------------------------------------------------------
    // Completions: Posted -> Filled -> Lent
    // ----------------------------------------------------------------------------------

    /// Validates a fragment the NIC reports in `buf` without changing anything: `buf` must be
    /// a buffer of this pool that the NIC holds, `off + len` within the buffer, and in packed
    /// mode aligned and after the previous fragment. Use it to check both buffers of a
    /// completion (header and payload) before committing either.
    pub fn check(&self, buf: BufRef, off: u32, len: u32) -> Result<(), LedgerError> {
        self.ledger
            .check(&self.shared.ledger, buf, off, len)
            .map(|_| ())
    }

    /// Posted -> Filled: the NIC wrote `len` bytes at `off` of `buf`. `retired`: the NIC will
    /// not write `buf` again (`rx_flags::PAY_RETIRED`; implied in page mode). Errors are
    /// counted and leave the ledger unchanged.
    #[inline]
    pub fn complete(
        &mut self,
        buf: BufRef,
        off: u32,
        len: u32,
        retired: bool,
    ) -> Result<Filled, LedgerError> {
        self.ledger
            .complete(&self.shared.ledger, buf, off, len, retired)
    }

    /// Takes `buf` back from the NIC into quarantine (see the ledger's `quarantine`): it comes
    /// back as an empty [`Filled`] fragment, and the buffer is reused only once that is
    /// dropped ([`PagePool::drop_filled`]).
    pub fn quarantine(&mut self, buf: BufRef) -> Result<Filled, LedgerError> {
        let r = self.ledger.quarantine(&self.shared.ledger, buf);
        if let Err(e) = &r {
            self.ledger.count_err(e);
        }
        r
    }

    /// The NIC gave `buf` back without (another) fragment: `rx_flags::FLUSH`, or a packed
    /// buffer retired after its last fragment. Posted -> Free when no fragment is out.
    pub fn retire(&mut self, buf: BufRef) -> Result<(), LedgerError> {
        if self.ledger.retire(&self.shared.ledger, buf)? {
            self.recycle_direct(buf.index());
        }
        Ok(())
    }

    /// Filled -> Lent: a token for the fragment, to give to an application. On
    /// `RefOverflow` (more than 65535 fragments of one buffer lent) the fragment is dropped.
    #[inline]
    pub fn lend(&mut self, f: Filled) -> Result<Token, LedgerError> {
        match self.ledger.lend(&self.shared.ledger, &f) {
            Ok(()) => {
                if self.budget == 0 {
                    self.shared.charge(TOKEN_CHARGE);
                    self.budget = TOKEN_CHARGE;
                }
                self.budget -= 1;
                // SAFETY: one charged reference taken from the budget.
                let r = unsafe { self.shared.charged() };
                Ok(Token::new(r, f.buf, f.off, f.len))
            }
            // A fragment of another pool instance is refused untouched (counted).
            Err(e @ LedgerError::ForeignFilled { .. }) => Err(e),
            Err(e) => {
                self.drop_filled(f);
                Err(e)
            }
        }
    }

    /// Returns a token on the owner thread (kernel: recycling with `allow_direct` from NAPI
    /// context): no CAS when it is the buffer's only lent fragment, and a freed buffer goes
    /// straight into the fast cache instead of through the recycle ring. A token of another
    /// pool is simply dropped (returned to its own pool).
    #[inline]
    pub fn put(&mut self, t: Token) {
        if !t.pool().same(&self.shared) {
            drop(t);
            return;
        }
        let (r, buf) = t.into_parts();
        r.forget();
        self.budget += 1;
        let i = buf.index();
        match crate::ledger::slot::owner_put_lent(&self.shared.ledger.slots[i as usize]) {
            Ok(true) => self.recycle_direct(i),
            Ok(false) => {}
            Err(_) => {
                // Unreachable for a live token (its fragment is counted in the word); counted
                // like any double return rather than trusted.
                let e = LedgerError::NotLent { buf };
                self.ledger.count_err(&e);
            }
        }
    }

    /// Drops a filled fragment without lending it (e.g. a header the poller consumed, an
    /// error frame). Frees the buffer if it was the last reference and the NIC retired it.
    #[inline]
    pub fn drop_filled(&mut self, f: Filled) {
        let i = f.buf.index();
        if self.ledger.drop_filled(&self.shared.ledger, f) {
            self.recycle_direct(i);
        }
    }

    /// Host bytes of a filled fragment, when the region is host-readable (e.g. the poller
    /// reading a header).
    /// `None` as well for a fragment of another pool instance.
    pub fn filled_bytes(&self, f: &Filled) -> Option<&[u8]> {
        (self.shared.region.host_readable && self.ledger.made(f)).then(|| {
            // SAFETY: `f` was made by this pool's ledger (checked above) and validated by its
            // `complete` (off + len within buffer `f.buf` of this region), the fragment is Filled so the NIC no longer writes these bytes, and the
            // region lives as long as `self.shared`, which `&self` keeps alive.
            unsafe { fragment_slice(&self.shared.region, f.buf.index(), f.off, f.len) }
        })
    }

    // ----------------------------------------------------------------------------------
    // Reset, audit, stats, destroy
    // ----------------------------------------------------------------------------------

    /// After a queue reset: `held_by_nic` is what the NIC says it still holds (the
    /// `ResetQueue` responses). Every other Posted buffer is retired: freed now when no
    /// fragment of it is out, else when the last one comes back. Reported buffers that the
    /// ledger does not have posted are returned in `unknown` (and counted), never trusted.
    pub fn reconcile(&mut self, held_by_nic: &[BufRef]) -> ReconcileReport {
        let sh = self.shared.clone();
        let mut rep = ReconcileReport::default();
        let mut reported = vec![false; sh.ledger.count() as usize];
        for &b in held_by_nic {
            match sh.ledger.index(b) {
                Ok(i)
                    if sh.ledger.slots[i].load(crate::sync::Ordering::Acquire)
                        & crate::ledger::slot::NIC
                        != 0 =>
                {
                    if reported[i] {
                        rep.duplicates += 1;
                    } else {
                        reported[i] = true;
                        rep.kept += 1;
                    }
                }
                _ => rep.unknown.push(b),
            }
        }
        self.ledger.counters.err_reconcile_unknown += rep.unknown.len() as u64;
        self.ledger.counters.err_reconcile_duplicate += rep.duplicates as u64;
        for (i, kept) in reported.iter().enumerate() {
            let w = sh.ledger.slots[i].load(crate::sync::Ordering::Acquire);
            if *kept || w & crate::ledger::slot::NIC == 0 {
                continue;
            }
            match self.ledger.retire(&sh.ledger, self.bufref(i as u32)) {
                Ok(true) => {
                    rep.freed += 1;
                    self.ledger.reset_wm(i);
                    self.recycle_direct(i as u32);
                }
                Ok(false) => rep.retired_in_use += 1,
                Err(_) => {} // unreachable: NIC bit checked and only the owner clears it
            }
        }
        self.ledger.counters.reconciled_freed += rep.freed as u64;
        rep
    }

    /// Proves the books balance: every buffer is in exactly one state, the free buffers are
    /// exactly those held by the cache, the ring, the provider and the parked list (each
    /// once), and the filled-fragment count matches. Exact when no other thread is dropping
    /// a token at the same moment (e.g. after joining them); a token drop racing with the
    /// audit can make a just-freed buffer appear not yet held.
    pub fn audit(&self) -> Result<AuditReport, AuditError> {
        let sh = &self.shared;
        let total = sh.ledger.count();
        let mut rep = AuditReport {
            total,
            ..AuditReport::default()
        };
        let mut held: Vec<u8> = vec![0; total as usize];
        let mut mark = |list: &[u32]| -> Result<(), AuditError> {
            for &i in list {
                let h = held
                    .get_mut(i as usize)
                    .ok_or(AuditError::HeldOutOfRange { index: i })?;
                if *h != 0 {
                    return Err(AuditError::HeldTwice { index: i });
                }
                *h = 1;
            }
            Ok(())
        };
        mark(&self.cache)?;
        rep.in_cache = self.cache.len() as u32;
        let mut v = Vec::new();
        if let Some(c) = &self.consumer {
            sh.ring.peek_all(c, &mut v);
        }
        rep.in_ring = v.len() as u32;
        mark(&v)?;
        {
            let slot = sh.provider();
            v.clear();
            slot.provider.held(&mut v);
            rep.in_provider = v.len() as u32;
            mark(&v)?;
            rep.parked = slot.parked.len() as u32;
            mark(&slot.parked)?;
        }
        for (i, s) in sh.ledger.slots.iter().enumerate() {
            let view = SlotView::of(s.load(crate::sync::Ordering::Acquire));
            rep.filled_frags += view.filled as u64;
            rep.lent_frags += view.lent as u64;
            match view.state {
                BufState::Free => rep.free += 1,
                BufState::Posted => rep.posted += 1,
                BufState::Filled => rep.filled += 1,
                BufState::Lent => rep.lent += 1,
            }
            let is_held = held[i] != 0;
            if view.state == BufState::Free && !is_held {
                return Err(AuditError::FreeNotHeld { index: i as u32 });
            }
            if view.state != BufState::Free && is_held {
                return Err(AuditError::HeldNotFree {
                    index: i as u32,
                    state: view.state,
                });
            }
        }
        let sum = rep.free + rep.posted + rep.filled + rep.lent;
        if sum != total {
            return Err(AuditError::StateSum { sum, total });
        }
        if rep.filled_frags != self.ledger.filled_out {
            return Err(AuditError::FilledMismatch {
                words: rep.filled_frags,
                counted: self.ledger.filled_out,
            });
        }
        Ok(rep)
    }

    /// A snapshot of the pool's counters. `inflight` and `tokens_outstanding` scan the ledger
    /// (O(buffers)); everything else is a counter read.
    pub fn stats(&self) -> PoolStats {
        let c = &self.shared.counters;
        let s = &self.stats;
        let mut in_ring = Vec::new();
        if let Some(cons) = &self.consumer {
            self.shared.ring.peek_all(cons, &mut in_ring);
        }
        let (mut inflight, mut tokens) = (0u64, 0u64);
        for w in self.shared.ledger.slots.iter() {
            let v = SlotView::of(w.load(crate::sync::Ordering::Relaxed));
            inflight += (v.state != BufState::Free) as u64;
            tokens += v.lent as u64;
        }
        PoolStats {
            alloc_fast: s.alloc_fast,
            alloc_slow: s.alloc_slow,
            alloc_empty: s.alloc_empty,
            alloc_refill: s.alloc_refill,
            alloc_failed: s.alloc_failed,
            recycle_cached: s.recycle_cached,
            recycle_cache_full: s.recycle_cache_full,
            recycle_ring: s.ring_pops + in_ring.len() as u64,
            recycle_ring_full: c.ring_full.load(Ordering::Relaxed),
            recycle_released: c.released.load(Ordering::Relaxed),
            release_declined: c.declined.load(Ordering::Relaxed),
            inflight,
            tokens_outstanding: tokens,
        }
    }

    /// Bytes of bookkeeping (heap capacity actually allocated).
    pub fn metadata_bytes(&self) -> MetadataBytes {
        MetadataBytes {
            ledger: self.shared.ledger.slots.len() * std::mem::size_of::<crate::sync::AtomicU32>()
                + self.shared.ledger.count() as usize * Ledger::OWNER_BYTES_PER_BUF,
            cache_and_ring: self.cache.capacity() * 4 + self.shared.ring.capacity() * 8,
            provider: self.provider_info().metadata_bytes,
            buffers: self.count(),
        }
    }

    /// Destroys the pool (kernel: `page_pool_destroy`). The queue must be stopped: buffers
    /// the NIC still holds are retired. Free buffers go back to the provider now; if tokens
    /// are outstanding the destroy is deferred and completes (provider destroyed,
    /// [`DestroyStatus::completed`]) when the last one is dropped — on whatever thread.
    pub fn destroy(mut self) -> DestroyReport {
        self.shutdown()
    }

    fn shutdown(&mut self) -> DestroyReport {
        self.shut_down = true;
        let sh = self.shared.clone();
        sh.counters.destroy_requested.store(true, Ordering::Release);
        let mut rep = DestroyReport {
            retired_posted: 0,
            dropped_filled: 0,
            tokens_outstanding: 0,
            deferred: false,
        };
        for i in 0..sh.ledger.count() as usize {
            let r = crate::ledger::slot::owner_update(&sh.ledger.slots[i], |w| {
                Some(w & !(crate::ledger::slot::NIC | crate::ledger::slot::FILLED_MASK))
            });
            let (old, new) = match r {
                Ok(x) => x,
                Err(_) => continue,
            };
            rep.retired_posted += (old & crate::ledger::slot::NIC != 0) as u32;
            rep.dropped_filled += crate::ledger::slot::filled(old) as u64;
            if old != 0 && new == 0 {
                self.cache.push(i as u32); // freed here: release below
            }
        }
        self.ledger.filled_out = 0;
        let mut slot = sh.provider();
        let mut c = self.consumer.take();
        if let Some(c) = c.as_mut() {
            while let Some(i) = sh.ring.pop(c) {
                self.cache.push(i);
            }
        }
        for i in self.cache.drain(..) {
            sh.release(&mut slot, i);
        }
        slot.orphan_consumer = c;
        drop(slot);
        for w in sh.ledger.slots.iter() {
            rep.tokens_outstanding +=
                crate::ledger::slot::lent(w.load(crate::sync::Ordering::Relaxed)) as u64;
        }
        self.shared.release_budget(std::mem::take(&mut self.budget));
        rep.deferred = rep.tokens_outstanding > 0;
        sh.counters
            .destroy_deferred
            .store(rep.deferred, Ordering::Release);
        rep
        // `self.shared` is dropped with `self`; the last token's drop runs `PoolShared::drop`.
    }
}

impl Drop for PagePool {
    fn drop(&mut self) {
        if !self.shut_down {
            self.shutdown();
        }
    }
}

/// # Safety
/// `index < region.count`, `off + len <= region.buf_size`, the region is mapped and
/// host-readable, and nobody writes those bytes while the returned slice lives.
pub(crate) unsafe fn fragment_slice(region: &Region, index: u32, off: u32, len: u32) -> &[u8] {
    let start = index as usize * region.buf_size as usize + off as usize;
    // SAFETY: guaranteed by the caller: in bounds of the mapping, not concurrently written.
    unsafe { std::slice::from_raw_parts(region.base.add(start), len as usize) }
}
