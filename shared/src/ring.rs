//! Single-producer / single-consumer ring over raw shared memory.
//!
//! CONTRACT (implementation pending): see the module docs the ring helper writes.
//!
//! Memory layout of one ring (`ring_bytes(capacity, entry_size)` bytes, 64-byte aligned):
//! ```text
//! 0    producer index (u32, free-running), alone on its 128-byte block
//! 128  consumer index (u32, free-running), alone on its 128-byte block
//! 256  entries[capacity], entry i at 256 + (idx & (capacity-1)) * entry_size
//! ```

/// Bytes before the first entry: the two index blocks.
pub const RING_INDEX_BYTES: usize = 256;
/// Offset of the producer index inside the ring.
pub const PRODUCER_OFFSET: usize = 0;
/// Offset of the consumer index inside the ring.
pub const CONSUMER_OFFSET: usize = 128;

/// Total bytes one ring occupies.
pub const fn ring_bytes(capacity: u32, entry_size: usize) -> usize {
    RING_INDEX_BYTES + capacity as usize * entry_size
}

use core::marker::PhantomData;
use core::ptr::NonNull;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// What kind of impossible index the peer published.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
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
pub struct Corruption {
    pub kind: CorruptKind,
    /// The index value the peer published.
    pub seen: u32,
    /// Our own index at the time.
    pub ours: u32,
}

/// Ring errors.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RingError {
    /// The peer published an impossible index. The ring is stopped: every later call returns
    /// this same error and touches no memory.
    Corrupt(Corruption),
    /// `attach`/`init`: capacity not a non-zero power of two, or the memory is misaligned.
    BadLayout,
}

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

/// The producing side of a ring.
#[derive(Debug)]
pub struct Producer<T: RingEntry> {
    base: NonNull<u8>,
    _t: PhantomData<T>,
}

/// The consuming side of a ring.
#[derive(Debug)]
pub struct Consumer<T: RingEntry> {
    base: NonNull<u8>,
    _t: PhantomData<T>,
}

/// Zeroes the index blocks of a ring (the creator does this once, before either side attaches).
///
/// # Safety
/// `base` is valid for writes of `ring_bytes(capacity, size_of::<T>())` bytes and no handle
/// to this ring is live.
pub unsafe fn init<T: RingEntry>(base: NonNull<u8>, capacity: u32) -> Result<(), RingError> {
    let _ = (base, capacity);
    todo!("ring helper")
}

impl<T: RingEntry> Producer<T> {
    /// Attaches to a ring. Reads the current indices once; does not trust them later.
    ///
    /// # Safety
    /// `base` is 64-byte aligned and valid for reads and writes of
    /// `ring_bytes(capacity, size_of::<T>())` bytes for as long as the handle lives (the mapping
    /// outlives it); at most one `Producer` exists for the ring. The peer may write anything at
    /// any time into the consumer index block (that is detected, never trusted).
    pub unsafe fn attach(base: NonNull<u8>, capacity: u32) -> Result<Self, RingError> {
        let _ = (base, capacity);
        todo!("ring helper")
    }
    pub fn capacity(&self) -> u32 {
        todo!()
    }
    /// Free slots (refreshes the cached consumer index only when needed).
    pub fn free(&mut self) -> Result<u32, RingError> {
        todo!()
    }
    /// Pushes one entry; `Ok(false)` when full.
    pub fn push(&mut self, v: &T) -> Result<bool, RingError> {
        let _ = v;
        todo!()
    }
    /// Pushes as many of `items` as fit, publishes once; returns how many.
    pub fn push_slice(&mut self, items: &[T]) -> Result<usize, RingError> {
        let _ = items;
        todo!()
    }
    /// Reserves up to `n` slots for writing (may be fewer, possibly 0).
    pub fn reserve(&mut self, n: u32) -> Result<WriteChunk<'_, T>, RingError> {
        let _ = n;
        todo!()
    }
    pub fn stats(&self) -> RingStats {
        todo!()
    }
    pub fn is_stopped(&self) -> bool {
        todo!()
    }
}

/// Slots reserved by [`Producer::reserve`]; nothing is visible to the consumer until `commit`.
#[derive(Debug)]
pub struct WriteChunk<'a, T: RingEntry> {
    p: &'a mut Producer<T>,
}
impl<T: RingEntry> WriteChunk<'_, T> {
    pub fn len(&self) -> u32 {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes slot `i` (< len) of the reservation. Panics never; out-of-range `i` is ignored
    /// and debug-asserted.
    pub fn write(&mut self, i: u32, v: &T) {
        let _ = (i, v, &self.p);
        todo!()
    }
    /// Publishes the first `n` (<= len) slots with Release ordering.
    pub fn commit(self, n: u32) {
        let _ = n;
        todo!()
    }
}

impl<T: RingEntry> Consumer<T> {
    /// Attaches to a ring.
    ///
    /// # Safety
    /// As [`Producer::attach`], with at most one `Consumer`.
    pub unsafe fn attach(base: NonNull<u8>, capacity: u32) -> Result<Self, RingError> {
        let _ = (base, capacity);
        todo!("ring helper")
    }
    pub fn capacity(&self) -> u32 {
        todo!()
    }
    /// Entries ready to read (Acquire on the producer index, validated).
    pub fn available(&mut self) -> Result<u32, RingError> {
        todo!()
    }
    /// Copies out one entry.
    pub fn pop(&mut self) -> Result<Option<T>, RingError> {
        todo!()
    }
    /// Copies out up to `out.len()` entries, releases them once; returns how many.
    pub fn pop_into(&mut self, out: &mut [T]) -> Result<usize, RingError> {
        let _ = out;
        todo!()
    }
    /// Looks at up to `max` entries without consuming them.
    pub fn peek(&mut self, max: u32) -> Result<ReadChunk<'_, T>, RingError> {
        let _ = max;
        todo!()
    }
    pub fn stats(&self) -> RingStats {
        todo!()
    }
    pub fn is_stopped(&self) -> bool {
        todo!()
    }
    #[doc(hidden)]
    pub fn _base(&self) -> NonNull<u8> {
        self.base
    }
}

/// Entries seen by [`Consumer::peek`]; they stay in the ring until `release`.
#[derive(Debug)]
pub struct ReadChunk<'a, T: RingEntry> {
    c: &'a mut Consumer<T>,
}
impl<T: RingEntry> ReadChunk<'_, T> {
    pub fn len(&self) -> u32 {
        todo!()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copies entry `i` (< len) out of shared memory (a copy, so the peer cannot change it
    /// after validation). `None` when `i >= len`.
    pub fn get(&self, i: u32) -> Option<T> {
        let _ = (i, &self.c);
        todo!()
    }
    /// Releases the first `n` (<= len) entries to the producer (Release ordering).
    pub fn release(self, n: u32) {
        let _ = n;
        todo!()
    }
}
