//! Single-producer / single-consumer ring over raw shared memory.
//!
//! One ring connects exactly one [`Producer`] and one [`Consumer`] that may live in different
//! address spaces: two processes mapping the same file, or the NIC firmware and the host
//! looking at the same BAR / DMA window. The shape is that of AF_XDP's libxdp rings and
//! io_uring's SQ/CQ: free-running `u32` indices, power-of-two capacity, each side caching the
//! peer's index, batch `reserve`/`commit` on the producer and `peek`/`release` on the consumer.
//!
//! # Memory layout
//!
//! One ring occupies [`ring_bytes`]`(capacity, size_of::<T>())` bytes, 64-byte aligned:
//! ```text
//! 0    producer index (u32, free-running), alone on its 128-byte block
//! 128  consumer index (u32, free-running), alone on its 128-byte block
//! 256  entries[capacity], entry i at 256 + (idx & (capacity-1)) * entry_size
//! ```
//! Each index sits alone in a 128-byte block (two cache lines) so that the adjacent-line
//! prefetcher of x86 cores does not make the two sides fight over one line.
//! `prod - cons` (wrapping) is the number of entries in the ring; it is always in
//! `0..=capacity`.
//!
//! # Protocol
//!
//! * The producer writes entries `prod .. prod+n`, then publishes `prod+n` with one
//!   `Release` store. The consumer reads the producer index with `Acquire` before reading
//!   entries below it.
//! * The consumer copies entries `cons .. cons+n` out, then publishes `cons+n` with one
//!   `Release` store. The producer reads the consumer index with `Acquire` before reusing
//!   those slots. Opt-in lazy release ([`Consumer::set_release_every`]) publishes only every
//!   `n` released entries, and always before the consumer looks at the producer index, so a
//!   producer can never wait for slots that were freed but not published while the consumer
//!   polls; [`Consumer::flush`] publishes on demand.
//! * Each handle keeps its own index privately (it is authoritative; the shared word is only
//!   ever written by it after [`Producer::attach`]/[`Consumer::attach`] read it once) and a
//!   cache of the peer's index. The peer's index is loaded only when the cache cannot satisfy
//!   a request (`reserve(n)` with fewer than `n` slots known free, `peek(n)` with fewer than
//!   `n` entries known ready). A batch therefore costs at most one `Acquire` load and exactly
//!   one `Release` store, and often no load at all. (This is libxdp's `xsk_prod_nb_free` /
//!   `xsk_cons_nb_avail` rule; it includes "the cache says full/empty" and keeps batches whole
//!   when the cache is merely short.)
//!
//! # The peer is not trusted
//!
//! The peer can write any value into its index word at any time (it may be buggy firmware, or
//! a crashed and restarted process). Every value loaded from the peer is validated against
//! what is possible before it is used:
//!
//! * the consumer accepts a producer index `p` only if `p ∈ [last_p, cons + capacity]`
//!   (wrapping): more than `capacity` entries is [`CorruptKind::ProducerAhead`], going below
//!   the last value seen is [`CorruptKind::ProducerBackwards`];
//! * the producer accepts a consumer index `c` only if `c ∈ [last_c, prod]` (wrapping): past
//!   the producer index is [`CorruptKind::ConsumerAhead`], below the last value seen is
//!   [`CorruptKind::ConsumerBackwards`].
//!
//! "Below" is decided by wrapping distance: a value less than 2^31 behind the last one seen is
//! backwards, anything else outside the window is ahead. The first impossible value stops the
//! handle: [`RingStats::corrupt`] becomes 1 and every later fallible call returns the same
//! [`RingError::Corrupt`] without touching shared memory. A plausible lie (a value inside the
//! window) cannot be detected; it can only make the liar lose or re-read its own entries.
//!
//! **No index value can cause an out-of-bounds access.** Every entry address is computed from
//! `idx & (capacity - 1)`, which is `< capacity` for every `u32` (capacity is a non-zero power
//! of two, checked at attach), and contiguous copies are split at the end of the entry array
//! and never longer than `capacity`; see `Region`. Validation exists to detect the fault and
//! to keep counts honest, not to keep accesses in bounds.
//!
//! Entries are copied out of shared memory before anybody looks at them ([`Consumer::pop`],
//! [`Consumer::pop_into`], [`ReadChunk::get`]), so a peer rewriting an entry after it was
//! validated cannot change what the validator saw (no TOCTOU). `T` is [`RingEntry`]: every bit
//! pattern is a valid `T`, so a torn or garbage entry is still a valid value.
//!
//! # Why the indices may be `AtomicU32`s in mapped memory
//!
//! The index words are accessed through `&AtomicU32` created from the raw pointer
//! ([`AtomicU32::from_ptr`](core::sync::atomic::AtomicU32::from_ptr)). This is sound here
//! because: the words are 4-byte aligned (the ring is 64-aligned, offsets 0 and 128);
//! `AtomicU32` has the size and alignment of `u32`; within this process the words are only
//! accessed atomically while handles live (`init` writes them before any handle exists); and
//! on the targets we support (x86_64, aarch64, armv7/thumbv7+ and riscv32/64 with the A
//! extension) an aligned 32-bit load/store is single-copy atomic and the hardware's memory
//! model applies to the physical page no matter how many virtual mappings or processes share
//! it, so `Release`/`Acquire` pair across processes exactly as across threads. A peer in another
//! process (or a device) that writes the word with a plain store cannot produce a torn value.
//! A device peer additionally needs the ring in DMA-coherent (or uncached) memory; that is the
//! mapping's job, not the ring's.
//!
//! # loom
//!
//! Under `cfg(loom)` the atomics come from loom, and entry slots are loom `UnsafeCell`s so the
//! model checker sees every slot access; see `LoomRegion`. The handles' code is the same.

/// Bytes before the first entry: the two index blocks.
pub const RING_INDEX_BYTES: usize = 256;
/// Offset of the producer index inside the ring.
pub const PRODUCER_OFFSET: usize = 0;
/// Offset of the consumer index inside the ring.
pub const CONSUMER_OFFSET: usize = 128;
/// The one ring alignment of the ABI: a ring's base address (checked by `init`/`attach`) and a
/// ring's offset inside its shared region (checked by `abi::QueueHeader::validate`, used by
/// `region::RegionLayout`, the firmware's test fakes and the boards) are multiples of it.
pub const RING_ALIGN: usize = 64;

/// Total bytes one ring occupies, in `u64`: the capacity can be the peer's, and on a 32-bit
/// target `capacity * entry_size` overflows `usize` (4 GiB) for capacities the header allows.
/// The largest value, `2^32 * 64 + 256`, fits easily.
pub const fn ring_bytes(capacity: u32, entry_size: usize) -> u64 {
    RING_INDEX_BYTES as u64 + capacity as u64 * entry_size as u64
}

use core::marker::PhantomData;
use core::ptr::NonNull;
use zerocopy::{FromBytes, Immutable, IntoBytes};

#[cfg(loom)]
pub use shm::LoomRegion;
use shm::{Ordering, Region};

/// What kind of impossible index the peer published.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CorruptKind {
    /// The producer index implies more than `capacity` entries in the ring.
    ProducerAhead,
    /// The producer index moved backwards.
    ProducerBackwards,
    /// The consumer index is past the producer index.
    ConsumerAhead,
    /// The consumer index moved backwards.
    ConsumerBackwards,
}

/// Details of a detected corruption.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Corruption {
    pub kind: CorruptKind,
    /// The index value the peer published.
    pub seen: u32,
    /// Our own index at the time.
    pub ours: u32,
}

/// Ring errors.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RingError {
    /// The peer published an impossible index. The ring is stopped: every later call returns
    /// this same error and touches no memory.
    Corrupt(Corruption),
    /// `attach`/`init`: capacity not a non-zero power of two, the memory is misaligned, or
    /// the ring would not fit in the address space.
    BadLayout,
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::Corrupt(c) => write!(
                f,
                "ring peer published an impossible index ({:?}: seen {}, ours {})",
                c.kind, c.seen, c.ours
            ),
            RingError::BadLayout => f.write_str("bad ring layout (capacity or alignment)"),
        }
    }
}

impl core::error::Error for RingError {}

/// Per-handle counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct RingStats {
    /// Entries moved through this handle.
    pub entries: u64,
    /// Corruption events detected (0 or 1: the ring stops at the first).
    pub corrupt: u64,
    /// Times the cached peer index had to be refreshed from shared memory.
    pub peer_refresh: u64,
}

/// Marker for types that can live in a ring: plain bytes, any bit pattern valid.
pub trait RingEntry: FromBytes + IntoBytes + Immutable + Copy {}
impl<T: FromBytes + IntoBytes + Immutable + Copy> RingEntry for T {}

/// Checks what `init`/`attach` can check about a ring's placement.
fn check_layout<T: RingEntry>(base: NonNull<u8>, capacity: u32) -> Result<(), RingError> {
    if !capacity.is_power_of_two()
        || base.as_ptr() as usize & (RING_ALIGN - 1) != 0
        || core::mem::align_of::<T>() > RING_ALIGN
    {
        return Err(RingError::BadLayout);
    }
    // The byte size must be representable (it bounds every offset we compute).
    match (capacity as usize).checked_mul(core::mem::size_of::<T>()) {
        Some(b) if b <= isize::MAX as usize - RING_INDEX_BYTES => Ok(()),
        _ => Err(RingError::BadLayout),
    }
}

/// Zeroes the index blocks of a ring (the creator does this once, before either side attaches).
///
/// # Safety
/// `base` is valid for writes of `ring_bytes(capacity, size_of::<T>())` bytes and no handle
/// to this ring is live.
pub unsafe fn init<T: RingEntry>(base: NonNull<u8>, capacity: u32) -> Result<(), RingError> {
    // SAFETY: forwarded contract.
    unsafe { init_at::<T>(base, capacity, 0) }
}

/// Like [`init`], but starts both free-running indices at `start` instead of 0 (the rest of the
/// index blocks is zeroed). Useful to exercise index wraparound without pushing 2^32 entries.
///
/// # Safety
/// As [`init`].
pub unsafe fn init_at<T: RingEntry>(
    base: NonNull<u8>,
    capacity: u32,
    start: u32,
) -> Result<(), RingError> {
    check_layout::<T>(base, capacity)?;
    // SAFETY: the caller guarantees `base` covers the ring and that no handle is live, so
    // nothing in this process accesses the index blocks concurrently.
    unsafe { Region::<T>::new(base, capacity).init_indices(start) };
    Ok(())
}

/// Validates `new` as the peer's next index. The peer's index must lie in the window
/// `[last, last + room]` (wrapping), where `room` is how far it can legitimately advance.
#[inline(always)]
fn check_peer(new: u32, last: u32, room: u32) -> Result<(), bool> {
    if new.wrapping_sub(last) <= room {
        Ok(())
    } else {
        // Outside the window: less than 2^31 behind `last` is "backwards", the rest "ahead".
        Err((new.wrapping_sub(last) as i32) < 0)
    }
}

/// The producing side of a ring.
#[derive(Debug)]
pub struct Producer<T: RingEntry> {
    region: Region<T>,
    /// `capacity - 1`.
    mask: u32,
    /// Our producer index: next slot to write. Authoritative; the shared word is a copy.
    prod: u32,
    /// Last validated consumer index.
    cons_cache: u32,
    stopped: Option<Corruption>,
    stats: RingStats,
    _t: PhantomData<T>,
}

// SAFETY: a `Producer` is the unique owner of the producer role of its ring (attach contract);
// moving it to another thread moves that role with it. Entries of type `T: Send` leave it by
// value only. It is not `Sync`: every operation takes `&mut self`.
unsafe impl<T: RingEntry + Send> Send for Producer<T> {}

/// The consuming side of a ring.
#[derive(Debug)]
pub struct Consumer<T: RingEntry> {
    region: Region<T>,
    /// `capacity - 1`.
    mask: u32,
    /// Our consumer index: next entry to read. Authoritative; the shared word is a copy.
    cons: u32,
    /// The value last stored into the shared consumer word (`cons` minus the releases not
    /// yet published; see [`Consumer::set_release_every`]).
    published: u32,
    /// Publish the consumer index once this many released entries are pending (1: every
    /// release, the default).
    release_every: u32,
    /// Last validated producer index.
    prod_cache: u32,
    stopped: Option<Corruption>,
    stats: RingStats,
    _t: PhantomData<T>,
}

// SAFETY: as for `Producer`: the unique owner of the consumer role.
unsafe impl<T: RingEntry + Send> Send for Consumer<T> {}

impl<T: RingEntry> Producer<T> {
    /// Attaches to a ring. Reads the current indices once; does not trust them later.
    ///
    /// Resumes at the producer index found in shared memory (0 after [`init`]). If the two
    /// indices found are inconsistent (more than `capacity` entries), returns
    /// [`RingError::Corrupt`] with kind [`CorruptKind::ConsumerAhead`] or
    /// [`CorruptKind::ConsumerBackwards`].
    ///
    /// # Safety
    /// `base` is 64-byte aligned and valid for reads and writes of
    /// `ring_bytes(capacity, size_of::<T>())` bytes for as long as the handle lives (the mapping
    /// outlives it); at most one `Producer` exists for the ring. The peer may write anything at
    /// any time into the consumer index block (that is detected, never trusted).
    pub unsafe fn attach(base: NonNull<u8>, capacity: u32) -> Result<Self, RingError> {
        check_layout::<T>(base, capacity)?;
        // SAFETY: layout checked above; validity and lifetime are the caller's contract.
        let region = unsafe { Region::<T>::new(base, capacity) };
        let prod = region.producer_index().load(Ordering::Relaxed);
        let cons = region.consumer_index().load(Ordering::Acquire);
        // The consumer index must lie in [prod - capacity, prod].
        if let Err(backwards) = check_peer(cons, prod.wrapping_sub(capacity), capacity) {
            let kind = if backwards {
                CorruptKind::ConsumerBackwards
            } else {
                CorruptKind::ConsumerAhead
            };
            return Err(RingError::Corrupt(Corruption {
                kind,
                seen: cons,
                ours: prod,
            }));
        }
        Ok(Producer {
            region,
            mask: capacity - 1,
            prod,
            cons_cache: cons,
            stopped: None,
            stats: RingStats::default(),
            _t: PhantomData,
        })
    }

    /// Number of slots in the ring.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.mask.wrapping_add(1)
    }

    /// Free slots according to the cache (no shared-memory access).
    #[inline(always)]
    fn cached_free(&self) -> u32 {
        // `prod - cons_cache <= capacity` is an invariant (validated on every refresh).
        self.capacity() - self.prod.wrapping_sub(self.cons_cache)
    }

    /// Returns at least `min(want, truly free)` free slots; loads the consumer index only when
    /// the cache shows fewer than `want`.
    #[inline(always)]
    fn free_for(&mut self, want: u32) -> Result<u32, RingError> {
        if let Some(c) = self.stopped {
            return Err(RingError::Corrupt(c));
        }
        let free = self.cached_free();
        if free >= want {
            return Ok(free);
        }
        self.refresh()
    }

    #[cold]
    #[inline(never)]
    fn refresh(&mut self) -> Result<u32, RingError> {
        self.stats.peer_refresh += 1;
        // Acquire: the consumer's reads of the slots it released happen-before our rewrites.
        let cons = self.region.consumer_index().load(Ordering::Acquire);
        // Legal: cons ∈ [cons_cache, prod].
        match check_peer(
            cons,
            self.cons_cache,
            self.prod.wrapping_sub(self.cons_cache),
        ) {
            Ok(()) => {
                self.cons_cache = cons;
                Ok(self.cached_free())
            }
            Err(backwards) => {
                let kind = if backwards {
                    CorruptKind::ConsumerBackwards
                } else {
                    CorruptKind::ConsumerAhead
                };
                Err(self.stop(Corruption {
                    kind,
                    seen: cons,
                    ours: self.prod,
                }))
            }
        }
    }

    #[cold]
    fn stop(&mut self, c: Corruption) -> RingError {
        self.stopped = Some(c);
        self.stats.corrupt += 1;
        RingError::Corrupt(c)
    }

    #[inline(always)]
    fn publish(&mut self, n: u32) {
        self.prod = self.prod.wrapping_add(n);
        self.stats.entries += u64::from(n);
        // Release: the entry writes above happen-before the consumer's Acquire of this index.
        self.region
            .producer_index()
            .store(self.prod, Ordering::Release);
    }

    /// Free slots (refreshes the cached consumer index only when needed: when the cache does
    /// not already show the whole ring free).
    pub fn free(&mut self) -> Result<u32, RingError> {
        self.free_for(self.capacity())
    }

    /// Pushes one entry; `Ok(false)` when full.
    #[inline]
    pub fn push(&mut self, v: &T) -> Result<bool, RingError> {
        if self.free_for(1)? == 0 {
            return Ok(false);
        }
        self.region.write(self.prod, v);
        self.publish(1);
        Ok(true)
    }

    /// Pushes as many of `items` as fit, publishes once; returns how many.
    #[inline]
    pub fn push_slice(&mut self, items: &[T]) -> Result<usize, RingError> {
        let want = u32::try_from(items.len()).unwrap_or(u32::MAX);
        let n = self.free_for(want)?.min(want);
        if n == 0 {
            return Ok(0);
        }
        self.region.write_slice(self.prod, &items[..n as usize]);
        self.publish(n);
        Ok(n as usize)
    }

    /// Reserves up to `n` slots for writing (may be fewer, possibly 0).
    #[inline]
    pub fn reserve(&mut self, n: u32) -> Result<WriteChunk<'_, T>, RingError> {
        let len = self.free_for(n)?.min(n);
        Ok(WriteChunk { p: self, len })
    }

    /// Counters of this handle.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// Whether a corruption stopped this handle.
    pub fn is_stopped(&self) -> bool {
        self.stopped.is_some()
    }

    /// Our producer index (the next entry to be written).
    pub fn index(&self) -> u32 {
        self.prod
    }
}

/// Slots reserved by [`Producer::reserve`]; nothing is visible to the consumer until `commit`.
/// Dropping the chunk without committing publishes nothing.
#[derive(Debug)]
pub struct WriteChunk<'a, T: RingEntry> {
    p: &'a mut Producer<T>,
    len: u32,
}

impl<T: RingEntry> WriteChunk<'_, T> {
    /// Number of reserved slots.
    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes slot `i` (< len) of the reservation. Panics never; out-of-range `i` is ignored
    /// and debug-asserted.
    #[inline]
    pub fn write(&mut self, i: u32, v: &T) {
        debug_assert!(i < self.len, "WriteChunk::write({i}) out of {}", self.len);
        if i < self.len {
            self.p.region.write(self.p.prod.wrapping_add(i), v);
        }
    }
    /// Writes `items` into slots `first..first + items.len()` of the reservation; items past
    /// the end of the reservation are ignored (debug-asserted). Returns how many were written.
    #[inline]
    pub fn write_slice(&mut self, first: u32, items: &[T]) -> u32 {
        let room = self.len.saturating_sub(first);
        let n = u32::try_from(items.len()).unwrap_or(u32::MAX).min(room);
        debug_assert!(
            n as usize == items.len(),
            "WriteChunk::write_slice past the reservation"
        );
        self.p
            .region
            .write_slice(self.p.prod.wrapping_add(first), &items[..n as usize]);
        n
    }
    /// Publishes the first `n` (<= len) slots with Release ordering. `n > len` is clamped to
    /// `len` (and debug-asserted).
    #[inline]
    pub fn commit(self, n: u32) {
        debug_assert!(n <= self.len, "WriteChunk::commit({n}) of {}", self.len);
        let n = n.min(self.len);
        if n > 0 {
            self.p.publish(n);
        }
    }
}

impl<T: RingEntry> Consumer<T> {
    /// Attaches to a ring. Reads the current indices once; does not trust them later.
    ///
    /// Resumes at the consumer index found in shared memory. If the indices found imply more
    /// than `capacity` entries, returns [`RingError::Corrupt`] with kind
    /// [`CorruptKind::ProducerAhead`] or [`CorruptKind::ProducerBackwards`].
    ///
    /// # Safety
    /// As [`Producer::attach`], with at most one `Consumer`.
    pub unsafe fn attach(base: NonNull<u8>, capacity: u32) -> Result<Self, RingError> {
        check_layout::<T>(base, capacity)?;
        // SAFETY: layout checked above; validity and lifetime are the caller's contract.
        let region = unsafe { Region::<T>::new(base, capacity) };
        let cons = region.consumer_index().load(Ordering::Relaxed);
        let prod = region.producer_index().load(Ordering::Acquire);
        // The producer index must lie in [cons, cons + capacity].
        if let Err(backwards) = check_peer(prod, cons, capacity) {
            let kind = if backwards {
                CorruptKind::ProducerBackwards
            } else {
                CorruptKind::ProducerAhead
            };
            return Err(RingError::Corrupt(Corruption {
                kind,
                seen: prod,
                ours: cons,
            }));
        }
        Ok(Consumer {
            region,
            mask: capacity - 1,
            cons,
            published: cons,
            release_every: 1,
            prod_cache: prod,
            stopped: None,
            stats: RingStats::default(),
            _t: PhantomData,
        })
    }

    /// Number of slots in the ring.
    #[inline]
    pub fn capacity(&self) -> u32 {
        self.mask.wrapping_add(1)
    }

    /// Returns at least `min(want, truly ready)` ready entries; loads the producer index only
    /// when the cache shows fewer than `want`.
    #[inline(always)]
    fn ready_for(&mut self, want: u32) -> Result<u32, RingError> {
        if let Some(c) = self.stopped {
            return Err(RingError::Corrupt(c));
        }
        let ready = self.prod_cache.wrapping_sub(self.cons);
        if ready >= want {
            return Ok(ready);
        }
        self.refresh()
    }

    #[cold]
    #[inline(never)]
    fn refresh(&mut self) -> Result<u32, RingError> {
        self.stats.peer_refresh += 1;
        // We are short of entries, so we may be about to wait for the producer: first give it
        // every slot we have released, so that it can never wait for space that we freed
        // (the lazy-release rule, see `set_release_every`).
        self.store_index();
        // Acquire: the producer's entry writes happen-before our reads of them.
        let prod = self.region.producer_index().load(Ordering::Acquire);
        // Legal: prod ∈ [prod_cache, cons + capacity]. `prod_cache - cons <= capacity` is an
        // invariant, so the room below cannot underflow.
        let room = self.capacity() - self.prod_cache.wrapping_sub(self.cons);
        match check_peer(prod, self.prod_cache, room) {
            Ok(()) => {
                self.prod_cache = prod;
                Ok(prod.wrapping_sub(self.cons))
            }
            Err(backwards) => {
                let kind = if backwards {
                    CorruptKind::ProducerBackwards
                } else {
                    CorruptKind::ProducerAhead
                };
                Err(self.stop(Corruption {
                    kind,
                    seen: prod,
                    ours: self.cons,
                }))
            }
        }
    }

    #[cold]
    fn stop(&mut self, c: Corruption) -> RingError {
        self.stopped = Some(c);
        self.stats.corrupt += 1;
        RingError::Corrupt(c)
    }

    #[inline(always)]
    fn publish(&mut self, n: u32) {
        self.cons = self.cons.wrapping_add(n);
        self.stats.entries += u64::from(n);
        if self.cons.wrapping_sub(self.published) >= self.release_every {
            self.store_index();
        }
    }

    /// Stores our index into the shared consumer word (if it changed since the last store).
    #[inline(always)]
    fn store_index(&mut self) {
        if self.published != self.cons {
            self.published = self.cons;
            // Release: our copies out of the slots happen-before the producer reuses them.
            self.region
                .consumer_index()
                .store(self.cons, Ordering::Release);
        }
    }

    /// Lazy release: publish the consumer index only once `n` released entries are pending
    /// (clamped to `1..=capacity`; 1, the default, publishes on every release), instead of
    /// with one shared store per `release`/`pop`. Fewer stores mean fewer times the index line
    /// moves between the two sides' caches while the producer is polling it.
    ///
    /// Released-but-unpublished slots stay unusable to the producer until they are published,
    /// which happens (a) once `n` are pending, (b) whenever this handle looks at the producer
    /// index, i.e. every time it finds fewer entries ready than asked for (so a consumer that
    /// polls an empty ring has always published everything: the producer can never wait for
    /// space this handle already freed, even one that needs several slots at once), and (c) on
    /// [`Consumer::flush`]. A user that stops polling the ring for a while (goes idle, hands the
    /// ring over, resets) calls `flush` first. The loom model
    /// `lazy_release_never_strands_the_producer` checks rule (b).
    pub fn set_release_every(&mut self, n: u32) {
        self.release_every = n.clamp(1, self.capacity());
    }

    /// Publishes every released entry now (see [`Consumer::set_release_every`]); a no-op when
    /// nothing is pending. A stopped handle writes nothing and returns its error.
    pub fn flush(&mut self) -> Result<(), RingError> {
        if let Some(c) = self.stopped {
            return Err(RingError::Corrupt(c));
        }
        self.store_index();
        Ok(())
    }

    /// Released entries not yet published to the producer (0 unless
    /// [`Consumer::set_release_every`] was set above 1).
    pub fn unpublished(&self) -> u32 {
        self.cons.wrapping_sub(self.published)
    }

    /// Entries ready to read (Acquire on the producer index, validated).
    pub fn available(&mut self) -> Result<u32, RingError> {
        // Asking for more than can exist forces the refresh.
        self.ready_for(u32::MAX)
    }

    /// Copies out one entry.
    #[inline]
    pub fn pop(&mut self) -> Result<Option<T>, RingError> {
        if self.ready_for(1)? == 0 {
            return Ok(None);
        }
        let v = self.region.read(self.cons);
        self.publish(1);
        Ok(Some(v))
    }

    /// Copies out up to `out.len()` entries, releases them once; returns how many.
    #[inline]
    pub fn pop_into(&mut self, out: &mut [T]) -> Result<usize, RingError> {
        let want = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let n = self.ready_for(want)?.min(want);
        if n == 0 {
            return Ok(0);
        }
        self.region.read_slice(self.cons, &mut out[..n as usize]);
        self.publish(n);
        Ok(n as usize)
    }

    /// Looks at up to `max` entries without consuming them. The producer may keep adding
    /// entries meanwhile; the chunk covers the ones ready when it was taken.
    #[inline]
    pub fn peek(&mut self, max: u32) -> Result<ReadChunk<'_, T>, RingError> {
        let len = self.ready_for(max)?.min(max);
        Ok(ReadChunk { c: self, len })
    }

    /// Counters of this handle.
    pub fn stats(&self) -> RingStats {
        self.stats
    }

    /// Whether a corruption stopped this handle.
    pub fn is_stopped(&self) -> bool {
        self.stopped.is_some()
    }

    /// Our consumer index (the next entry to be read).
    pub fn index(&self) -> u32 {
        self.cons
    }

    #[doc(hidden)]
    pub fn _base(&self) -> NonNull<u8> {
        self.region.base()
    }
}

/// Entries seen by [`Consumer::peek`]; they stay in the ring until `release`.
/// Dropping the chunk without releasing releases nothing.
#[derive(Debug)]
pub struct ReadChunk<'a, T: RingEntry> {
    c: &'a mut Consumer<T>,
    len: u32,
}

impl<T: RingEntry> ReadChunk<'_, T> {
    /// Number of entries in the chunk.
    #[inline]
    pub fn len(&self) -> u32 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies entry `i` (< len) out of shared memory (a copy, so the peer cannot change it
    /// after validation). `None` when `i >= len`.
    #[inline]
    pub fn get(&self, i: u32) -> Option<T> {
        (i < self.len).then(|| self.c.region.read(self.c.cons.wrapping_add(i)))
    }
    /// Copies entries `first..` of the chunk into `out` (as many as fit in both); returns how
    /// many were copied.
    #[inline]
    pub fn copy_to(&self, first: u32, out: &mut [T]) -> usize {
        let room = self.len.saturating_sub(first);
        let n = u32::try_from(out.len()).unwrap_or(u32::MAX).min(room) as usize;
        self.c
            .region
            .read_slice(self.c.cons.wrapping_add(first), &mut out[..n]);
        n
    }
    /// Releases the first `n` (<= len) entries to the producer (Release ordering). `n > len`
    /// is clamped to `len` (and debug-asserted).
    #[inline]
    pub fn release(self, n: u32) {
        debug_assert!(n <= self.len, "ReadChunk::release({n}) of {}", self.len);
        let n = n.min(self.len);
        if n > 0 {
            self.c.publish(n);
        }
    }
}

/// Access to one ring's memory: the two index words and the entry slots.
///
/// Every slot access takes a free-running index and masks it itself, and slice copies are
/// clamped to `capacity` and split at the end of the slot array, so **no argument value can
/// reach outside the ring** — the bounds proof lives here, in one place:
/// * `slot(idx) = idx & mask < capacity` for every `u32` (`mask = capacity - 1`, capacity a
///   power of two), so `256 + slot * size + size <= ring_bytes(capacity, size)`;
/// * a copy of `n <= capacity` entries starting at `s = slot(idx)` is split into
///   `first = min(n, capacity - s)` entries at `s` (ending at most at `capacity`) and
///   `n - first` entries at 0; when the split happens `first = capacity - s`, so the second
///   part has `n - capacity + s <= s < capacity` entries.
#[cfg(not(loom))]
mod shm {
    use super::{RingEntry, CONSUMER_OFFSET, PRODUCER_OFFSET, RING_INDEX_BYTES};
    use core::marker::PhantomData;
    use core::ptr::{self, NonNull};
    use core::sync::atomic::AtomicU32;
    pub(super) use core::sync::atomic::Ordering;

    #[derive(Debug)]
    pub(super) struct Region<T> {
        base: NonNull<u8>,
        mask: u32,
        _t: PhantomData<*mut T>,
    }

    impl<T: RingEntry> Region<T> {
        /// # Safety
        /// `capacity` is a non-zero power of two; `base` is 64-aligned, valid for reads and
        /// writes of `ring_bytes(capacity, size_of::<T>())` bytes (which fits in `isize`) for
        /// the lifetime of the `Region`, and its index words are only accessed atomically
        /// while the `Region` is used (by this process; see the module docs for peers).
        pub(super) unsafe fn new(base: NonNull<u8>, capacity: u32) -> Self {
            debug_assert!(capacity.is_power_of_two());
            Region {
                base,
                mask: capacity - 1,
                _t: PhantomData,
            }
        }

        pub(super) fn base(&self) -> NonNull<u8> {
            self.base
        }

        /// # Safety
        /// No access to the index words happens concurrently in this process.
        pub(super) unsafe fn init_indices(&self, start: u32) {
            // SAFETY: the index blocks are the first RING_INDEX_BYTES bytes of the ring
            // (`new`'s contract); nobody accesses them concurrently (our contract).
            unsafe {
                ptr::write_bytes(self.base.as_ptr(), 0, RING_INDEX_BYTES);
                self.base
                    .as_ptr()
                    .add(PRODUCER_OFFSET)
                    .cast::<u32>()
                    .write(start);
                self.base
                    .as_ptr()
                    .add(CONSUMER_OFFSET)
                    .cast::<u32>()
                    .write(start);
            }
        }

        #[inline(always)]
        fn index(&self, offset: usize) -> &AtomicU32 {
            // SAFETY: offset is PRODUCER_OFFSET or CONSUMER_OFFSET, inside the ring; base is
            // 64-aligned so the word is 4-aligned; the memory stays valid while `self` lives;
            // the word is only accessed atomically while handles exist (`new`'s contract).
            unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast::<u32>()) }
        }

        #[inline(always)]
        pub(super) fn producer_index(&self) -> &AtomicU32 {
            self.index(PRODUCER_OFFSET)
        }

        #[inline(always)]
        pub(super) fn consumer_index(&self) -> &AtomicU32 {
            self.index(CONSUMER_OFFSET)
        }

        /// Pointer to the slot of free-running index `idx`.
        #[inline(always)]
        fn slot(&self, idx: u32) -> *mut T {
            let slot = (idx & self.mask) as usize;
            // SAFETY: slot < capacity, so the entry lies inside the ring (see the type docs);
            // the offset fits in isize (`new`'s contract).
            unsafe {
                self.base
                    .as_ptr()
                    .add(RING_INDEX_BYTES)
                    .cast::<T>()
                    .add(slot)
            }
        }

        /// Writes the entry of index `idx`.
        #[inline(always)]
        pub(super) fn write(&self, idx: u32, v: &T) {
            // SAFETY: `slot` is in bounds and aligned for T and for the words `write_once`
            // uses (base 64-aligned, 256-byte header, slot offsets multiples of size_of::<T>()).
            unsafe { write_once(self.slot(idx), v) }
        }

        /// Copies the entry of index `idx` out of shared memory, reading each byte once.
        #[inline(always)]
        pub(super) fn read(&self, idx: u32) -> T {
            // SAFETY: `slot` is in bounds and aligned for T (see `write`).
            unsafe { read_once(self.slot(idx)) }
        }

        /// Splits `n` entries starting at `idx` into the two contiguous runs (at `slot(idx)`,
        /// and at 0). `n` must be <= capacity.
        #[inline(always)]
        fn runs(&self, idx: u32, n: usize) -> (usize, usize) {
            let s = (idx & self.mask) as usize;
            let first = n.min(self.mask as usize + 1 - s);
            (first, n - first)
        }

        /// Copies `src` into the entries `idx..idx + src.len()`; at most `capacity` entries.
        #[inline(always)]
        pub(super) fn write_slice(&self, idx: u32, src: &[T]) {
            let src = &src[..src.len().min(self.mask as usize + 1)];
            let (first, _) = self.runs(idx, src.len());
            let (a, b) = src.split_at(first);
            let s = self.slot(idx);
            let z = self.slot(0);
            // SAFETY: both runs are in bounds (type docs) and aligned as in `write`.
            unsafe {
                for (i, v) in a.iter().enumerate() {
                    write_once(s.add(i), v);
                }
                for (i, v) in b.iter().enumerate() {
                    write_once(z.add(i), v);
                }
            }
        }

        /// Copies entries `idx..idx + dst.len()` into `dst`; at most `capacity` entries.
        #[inline(always)]
        pub(super) fn read_slice(&self, idx: u32, dst: &mut [T]) {
            let n = dst.len().min(self.mask as usize + 1);
            let (first, _) = self.runs(idx, n);
            let (a, b) = dst[..n].split_at_mut(first);
            let s = self.slot(idx);
            let z = self.slot(0);
            // SAFETY: both runs are in bounds (type docs) and aligned as in `write`; `dst` is
            // private memory, so every entry leaves the ring exactly once and later checks
            // look at the copy, never at shared memory.
            unsafe {
                for (i, v) in a.iter_mut().enumerate() {
                    *v = read_once(s.add(i));
                }
                for (i, v) in b.iter_mut().enumerate() {
                    *v = read_once(z.add(i));
                }
            }
        }
    }

    /// A 16-byte value that one volatile access moves as a whole: an SSE register on x86_64
    /// (`movaps`, baseline since SSE2 is part of x86_64), a register pair on aarch64 (`ldp`/`stp`
    /// of two 64-bit words, each single-copy atomic). Other targets copy 8-byte words.
    #[cfg(target_arch = "x86_64")]
    type Chunk16 = core::arch::x86_64::__m128i;
    #[cfg(target_arch = "aarch64")]
    type Chunk16 = u128;
    /// Whether this target has a [`Chunk16`].
    const HAS_CHUNK16: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

    /// The word size `read_once`/`write_once` copy with: 16 where the target has a 16-byte
    /// volatile access (see `Chunk16`), else the widest of 8/4/1 bytes dividing
    /// `size_of::<T>()` (a compile-time constant). Ring slots are aligned to it: the base is
    /// 64-aligned, the header 256 bytes and slot offsets multiples of `size_of::<T>()`.
    /// Every ABI entry (`FillDesc` 16 B, `RxCompletion` 48 B, `CtrlMsg` 64 B) takes the 16-byte
    /// path: one access per 16 bytes halves the loads and stores of the 8-byte copy.
    #[inline(always)]
    const fn word<T>() -> usize {
        let size = core::mem::size_of::<T>();
        if HAS_CHUNK16 && size & 15 == 0 {
            16
        } else if size & 7 == 0 {
            8
        } else if size & 3 == 0 {
            4
        } else {
            1
        }
    }

    /// Copies `*v` into shared memory with one volatile store per word (see `word`): the
    /// compiler cannot turn the copy into a library `memcpy` call or merge it across the
    /// publishing Release store.
    ///
    /// # Safety
    /// `dst` is valid for writes of a `T` and aligned to `word::<T>()`.
    #[inline(always)]
    unsafe fn write_once<T: RingEntry>(dst: *mut T, v: &T) {
        let size = core::mem::size_of::<T>();
        let src = (v as *const T).cast::<u8>();
        let dst = dst.cast::<u8>();
        // SAFETY: every word read lies inside `*v` (unaligned reads: `T` may be less aligned
        // than a word); every word written lies inside `*dst` and is aligned (contract).
        unsafe {
            match word::<T>() {
                #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
                16 => {
                    for i in (0..size).step_by(16) {
                        let w = src.add(i).cast::<Chunk16>().read_unaligned();
                        ptr::write_volatile(dst.add(i).cast::<Chunk16>(), w);
                    }
                }
                8 => {
                    for i in (0..size).step_by(8) {
                        let w = src.add(i).cast::<u64>().read_unaligned();
                        ptr::write_volatile(dst.add(i).cast::<u64>(), w);
                    }
                }
                4 => {
                    for i in (0..size).step_by(4) {
                        let w = src.add(i).cast::<u32>().read_unaligned();
                        ptr::write_volatile(dst.add(i).cast::<u32>(), w);
                    }
                }
                _ => {
                    for i in 0..size {
                        ptr::write_volatile(dst.add(i), src.add(i).read());
                    }
                }
            }
        }
    }

    /// Copies a `T` out of memory another party may be writing, like Linux's `READ_ONCE`:
    /// one volatile load per word (16 bytes where the target has `Chunk16`, else the widest of
    /// 8/4/1 bytes that divides `size_of::<T>()`; the choice is made at compile time), so the
    /// compiler can neither re-read shared memory later nor split the copy differently. Each
    /// byte is read exactly once; a concurrent writer can only make the result a mix of old and
    /// new words (on aarch64 the two 8-byte halves of an `ldp` are separate single-copy-atomic
    /// reads), which is still a valid `T`. Nothing relies on a 16-byte access being atomic.
    ///
    /// Why not `ptr::copy_nonoverlapping` into a private buffer and validate the buffer: the
    /// validation would look at private memory, but nothing obliges the compiler to perform a
    /// non-volatile copy exactly once. LLVM's memcpy optimisations may forward the source to a
    /// later use of the destination when they see no write to the source in between (the peer's
    /// writes are invisible to them), i.e. re-read shared memory after the check: the TOCTOU
    /// this copy exists to prevent. A volatile access is emitted exactly once, as written.
    ///
    /// # Safety
    /// `src` is valid for reads of a `T` and aligned to the word size chosen: ring slots are
    /// (64-aligned base, 256-byte header, slot offsets multiples of `size_of::<T>()`).
    #[inline(always)]
    unsafe fn read_once<T: RingEntry>(src: *const T) -> T {
        let size = core::mem::size_of::<T>();
        let mut out = core::mem::MaybeUninit::<T>::uninit();
        let dst = out.as_mut_ptr().cast::<u8>();
        let src = src.cast::<u8>();
        // SAFETY: every word read lies inside `*src` and is aligned (contract); every word
        // written lies inside `out` (unaligned writes, `out` may be less aligned than a word).
        unsafe {
            match word::<T>() {
                #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
                16 => {
                    for i in (0..size).step_by(16) {
                        let w = ptr::read_volatile(src.add(i).cast::<Chunk16>());
                        dst.add(i).cast::<Chunk16>().write_unaligned(w);
                    }
                }
                8 => {
                    for i in (0..size).step_by(8) {
                        let w = ptr::read_volatile(src.add(i).cast::<u64>());
                        dst.add(i).cast::<u64>().write_unaligned(w);
                    }
                }
                4 => {
                    for i in (0..size).step_by(4) {
                        let w = ptr::read_volatile(src.add(i).cast::<u32>());
                        dst.add(i).cast::<u32>().write_unaligned(w);
                    }
                }
                _ => {
                    for i in 0..size {
                        dst.add(i).write(ptr::read_volatile(src.add(i)));
                    }
                }
            }
        }
        // SAFETY: all `size` bytes of `out` were written, and any bit pattern is a valid T
        // (RingEntry: FromBytes).
        unsafe { out.assume_init() }
    }
}

/// The loom flavour of [`Region`]: the "shared memory" is a [`LoomRegion`] whose index words
/// are loom atomics and whose slots are loom `UnsafeCell`s, so loom checks every index access
/// and every slot access of the protocol. `base` points at the `LoomRegion`.
#[cfg(loom)]
mod shm {
    extern crate std;
    use super::{RingEntry, RING_INDEX_BYTES};
    use core::marker::PhantomData;
    use core::ptr::NonNull;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicU32;
    pub(super) use loom::sync::atomic::Ordering;
    use std::vec::Vec;

    /// Stand-in for the shared memory of one ring under loom. Pass [`LoomRegion::base`] to
    /// `init`/`attach`; keep the region alive (and pinned) while handles exist.
    #[derive(Debug)]
    #[repr(C, align(64))]
    pub struct LoomRegion {
        prod: AtomicU32,
        cons: AtomicU32,
        entry_size: usize,
        slots: Vec<UnsafeCell<Vec<u8>>>,
    }

    impl LoomRegion {
        pub fn new(capacity: u32, entry_size: usize) -> Self {
            let slots = (0..capacity)
                .map(|_| UnsafeCell::new(std::vec![0u8; entry_size]))
                .collect();
            LoomRegion {
                prod: AtomicU32::new(0),
                cons: AtomicU32::new(0),
                entry_size,
                slots,
            }
        }
        pub fn base(&self) -> NonNull<u8> {
            NonNull::from(self).cast()
        }
    }

    #[derive(Debug)]
    pub(super) struct Region<T> {
        r: NonNull<LoomRegion>,
        mask: u32,
        _t: PhantomData<*mut T>,
    }

    impl<T: RingEntry> Region<T> {
        /// # Safety
        /// `base` comes from [`LoomRegion::base`] of a region with `capacity` slots of
        /// `size_of::<T>()` bytes that outlives the `Region`.
        pub(super) unsafe fn new(base: NonNull<u8>, capacity: u32) -> Self {
            let r = base.cast::<LoomRegion>();
            // SAFETY: the caller's contract.
            let lr = unsafe { r.as_ref() };
            assert_eq!(lr.slots.len(), capacity as usize);
            assert_eq!(lr.entry_size, core::mem::size_of::<T>());
            let _ = RING_INDEX_BYTES;
            Region {
                r,
                mask: capacity - 1,
                _t: PhantomData,
            }
        }
        fn lr(&self) -> &LoomRegion {
            // SAFETY: `new`'s contract: the region outlives `self`.
            unsafe { self.r.as_ref() }
        }
        pub(super) fn base(&self) -> NonNull<u8> {
            self.r.cast()
        }
        pub(super) unsafe fn init_indices(&self, start: u32) {
            self.lr().prod.store(start, Ordering::Relaxed);
            self.lr().cons.store(start, Ordering::Relaxed);
        }
        pub(super) fn producer_index(&self) -> &AtomicU32 {
            &self.lr().prod
        }
        pub(super) fn consumer_index(&self) -> &AtomicU32 {
            &self.lr().cons
        }
        pub(super) fn write(&self, idx: u32, v: &T) {
            let cell = &self.lr().slots[(idx & self.mask) as usize];
            // SAFETY: loom checks that no other access to this cell is concurrent; the Vec
            // holds size_of::<T>() bytes (checked in `new`).
            cell.with_mut(|p| unsafe { (*p).as_mut_ptr().cast::<T>().write_unaligned(*v) })
        }
        pub(super) fn read(&self, idx: u32) -> T {
            let cell = &self.lr().slots[(idx & self.mask) as usize];
            // SAFETY: as in `write`; any bit pattern is a valid T.
            cell.with(|p| unsafe { (*p).as_ptr().cast::<T>().read_unaligned() })
        }
        pub(super) fn write_slice(&self, idx: u32, src: &[T]) {
            for (i, v) in src.iter().enumerate() {
                self.write(idx.wrapping_add(i as u32), v);
            }
        }
        pub(super) fn read_slice(&self, idx: u32, dst: &mut [T]) {
            for (i, v) in dst.iter_mut().enumerate() {
                *v = self.read(idx.wrapping_add(i as u32));
            }
        }
    }
}
