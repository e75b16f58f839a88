//! Helpers shared by the `ring_*` integration tests: a 128-byte aligned, zeroed heap buffer
//! standing in for one ring's shared memory, and a 16-byte entry like `FillDesc`.
#![allow(dead_code)]

use splitrx_shared::ring::{self, ring_bytes, Consumer, Producer, RingEntry};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// A ring-sized, 128-aligned, zeroed allocation.
pub struct RingMem {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl RingMem {
    pub fn new(capacity: u32, entry_size: usize) -> RingMem {
        let layout =
            Layout::from_size_align(ring_bytes(capacity, entry_size) as usize, 128).unwrap();
        // SAFETY: the layout has non-zero size (>= 256 bytes of index blocks).
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("alloc");
        RingMem { ptr, layout }
    }
    pub fn base(&self) -> NonNull<u8> {
        self.ptr
    }
    /// Writes a raw index word, as a (hostile) peer would.
    pub fn poke(&self, offset: usize, v: u32) {
        // SAFETY: offset is an index-word offset inside the allocation; the word is accessed
        // atomically everywhere else.
        let a =
            unsafe { std::sync::atomic::AtomicU32::from_ptr(self.ptr.as_ptr().add(offset).cast()) };
        a.store(v, std::sync::atomic::Ordering::Release);
    }
    /// Reads a raw index word.
    pub fn peek_word(&self, offset: usize) -> u32 {
        // SAFETY: as in `poke`.
        let a =
            unsafe { std::sync::atomic::AtomicU32::from_ptr(self.ptr.as_ptr().add(offset).cast()) };
        a.load(std::sync::atomic::Ordering::Acquire)
    }
    /// The whole ring as bytes (for checksums of untouched memory).
    pub fn bytes(&self) -> Vec<u8> {
        // SAFETY: the allocation is `layout.size()` initialised bytes; no handle writes
        // concurrently while a test calls this.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }.to_vec()
    }
}

impl Drop for RingMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

// SAFETY: plain heap memory; the tests hand it to at most one producer and one consumer.
unsafe impl Send for RingMem {}
// SAFETY: `&RingMem` only hands out the base pointer; the ring handles built on it do their
// own synchronisation (Acquire/Release on the indices).
unsafe impl Sync for RingMem {}

/// 16 bytes, like `FillDesc`: a sequence number and a payload word.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, FromBytes, IntoBytes, Immutable)]
#[repr(C)]
pub struct E16 {
    pub seq: u64,
    pub val: u64,
}

impl E16 {
    pub fn new(seq: u64) -> E16 {
        E16 {
            seq,
            val: seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xa5a5,
        }
    }
}

/// Initialises a ring at `start` and attaches both handles.
///
/// The returned handles borrow nothing: the caller keeps `mem` alive longer than them.
pub fn pair<T: RingEntry>(mem: &RingMem, capacity: u32, start: u32) -> (Producer<T>, Consumer<T>) {
    // SAFETY: `mem` is sized for (capacity, size_of::<T>()), 128-aligned, outlives the
    // handles (caller), and one producer and one consumer are created.
    unsafe {
        ring::init_at::<T>(mem.base(), capacity, start).unwrap();
        (
            Producer::attach(mem.base(), capacity).unwrap(),
            Consumer::attach(mem.base(), capacity).unwrap(),
        )
    }
}
