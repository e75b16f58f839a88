//! Memory providers: where a pool's buffers come from.
//!
//! Kernel counterpart: `struct memory_provider_ops` (`net/core/page_pool.c`,
//! `include/net/page_pool/memory_provider.h`), implemented by devmem TCP (`net/core/devmem.c`,
//! dmabuf-backed `net_iov`s) and io_uring zero-copy receive (`io_uring/zcrx.c`):
//!
//! | kernel op                      | here                                   |
//! |--------------------------------|----------------------------------------|
//! | `init(pool)`                   | [`MemoryProvider::init`] -> [`Region`] |
//! | `destroy(pool)`                | [`MemoryProvider::destroy`]            |
//! | `alloc_netmems(pool, gfp)`     | [`MemoryProvider::alloc_bulk`]         |
//! | `release_netmem(pool, netmem)` | [`MemoryProvider::release`] (returns whether it took the buffer) |
//! | `nl_fill` / `show`             | [`MemoryProvider::describe`]           |
//!
//! A provider's memory is one contiguous [`Region`] carved into `count` buffers of `buf_size`
//! bytes; buffer `i` is at host address `base + i * buf_size` (when mapped) and bus address
//! `bus_base + i * buf_size` — computed, never stored, which keeps per-buffer metadata small.
//! Providers: [`HostMemory`] (anonymous mmap, optional huge pages) and [`DeviceWindow`] (a
//! mapped file: an emulated GPU BAR in shared memory, a PCI BAR resource file, or a dmabuf).

mod device_window;
mod host_memory;

pub use device_window::{DeviceWindow, DeviceWindowConfig};
pub use host_memory::{HostMemory, HostMemoryConfig};

use std::fmt;

/// The memory a provider hands to a pool.
#[derive(Clone, Copy)]
pub struct Region {
    /// Host virtual address of buffer 0 (null when the memory is not mapped into the host).
    pub base: *mut u8,
    /// Bus address of buffer 0 as the NIC's DMA engine sees it.
    pub bus_base: u64,
    pub buf_size: u32,
    pub count: u32,
    /// Whether the CPU may read buffers on the hot path. Device memory (a GPU BAR behind a
    /// write-combining or uncached mapping) may be mapped but slow or unsafe to read:
    /// tokens then expose (provider, offset, length) instead of a slice.
    pub host_readable: bool,
}

// SAFETY: `Region` is a description (address + sizes); the memory it names is owned by its
// provider, which outlives every user (the pool keeps the provider until the last token is
// back), and concurrent access is governed by the ledger.
unsafe impl Send for Region {}
// SAFETY: as above; `Region` itself is immutable.
unsafe impl Sync for Region {}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("base", &self.base)
            .field("bus_base", &format_args!("{:#x}", self.bus_base))
            .field("buf_size", &self.buf_size)
            .field("count", &self.count)
            .field("host_readable", &self.host_readable)
            .finish()
    }
}

impl Region {
    /// Bus address of buffer `index` (no range check: the ledger checks indices).
    #[inline]
    pub fn bus_addr(&self, index: u32) -> u64 {
        self.bus_base + index as u64 * self.buf_size as u64
    }
    /// Total bytes.
    pub fn len(&self) -> usize {
        self.count as usize * self.buf_size as usize
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// What kind of memory a provider manages.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProviderKind {
    HostMemory,
    DeviceWindow,
}

/// Introspection: what the provider is and what it currently holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderInfo {
    pub kind: ProviderKind,
    /// Human-readable origin (e.g. "anon", a file path).
    pub name: String,
    pub buf_size: u32,
    pub count: u32,
    pub bus_base: u64,
    pub host_readable: bool,
    /// Buffers currently held by the provider (not handed to the pool).
    pub held: u32,
    /// Huge pages were requested.
    pub hugepages_requested: bool,
    /// Huge pages are in use.
    pub hugepages: bool,
    /// Times a huge-page mapping was requested but the system had none (fell back to small
    /// pages).
    pub hugepage_fallbacks: u64,
    /// Buffers the pool returned with `release` (lifetime).
    pub released: u64,
    /// Buffers handed out by `alloc_bulk` (lifetime).
    pub allocated: u64,
    /// Heap bytes of the provider's bookkeeping (its free list).
    pub metadata_bytes: usize,
}

/// Provider failure.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("invalid provider configuration: {0}")]
    Config(&'static str),
    #[error("provider already initialised")]
    AlreadyInit,
    #[error("mapping failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Where a pool's buffers come from; the shape of the kernel's `memory_provider_ops`.
///
/// The pool calls these on its slow paths only (bulk refill, overflow release, create and
/// destroy), under a lock, so implementations use `&mut self` and need not be lock-free.
pub trait MemoryProvider: Send {
    /// Maps (or otherwise acquires) the memory; called once when the pool is created. After
    /// `init` the provider holds every buffer.
    fn init(&mut self) -> Result<Region, ProviderError>;
    /// Releases the memory. Called once, when the pool's destroy completes (after the last
    /// outstanding token came back). No buffer of the region is used afterwards.
    fn destroy(&mut self);
    /// Hands up to `max` free buffer indices to the pool (appended to `out`); returns how
    /// many.
    fn alloc_bulk(&mut self, out: &mut Vec<u32>, max: usize) -> usize;
    /// The pool gives buffer `index` back. Returns whether the provider took it; when it
    /// declines the pool keeps the buffer (counted) and retries on its next slow path.
    fn release(&mut self, index: u32) -> bool;
    /// Buffer indices the provider currently holds (appended to `out`), for audits.
    fn held(&self, out: &mut Vec<u32>);
    /// Introspection for stats.
    fn describe(&self) -> ProviderInfo;
}

/// The free list shared by both providers: a LIFO stack of indices (the most recently
/// released buffer is the warmest in cache).
#[derive(Debug, Default)]
pub(crate) struct FreeList {
    stack: Vec<u32>,
    in_list: Vec<bool>,
    pub(crate) allocated: u64,
    pub(crate) released: u64,
}

impl FreeList {
    pub(crate) fn full(count: u32) -> FreeList {
        FreeList {
            stack: (0..count).rev().collect(),
            in_list: vec![true; count as usize],
            allocated: 0,
            released: 0,
        }
    }
    pub(crate) fn alloc_bulk(&mut self, out: &mut Vec<u32>, max: usize) -> usize {
        let n = max.min(self.stack.len());
        for _ in 0..n {
            if let Some(i) = self.stack.pop() {
                self.in_list[i as usize] = false;
                out.push(i);
            }
        }
        self.allocated += n as u64;
        n
    }
    /// Takes `index` back unless it is out of range or already held (a duplicate release
    /// would hand the same buffer out twice).
    pub(crate) fn release(&mut self, index: u32) -> bool {
        match self.in_list.get_mut(index as usize) {
            Some(held @ false) => {
                *held = true;
                self.stack.push(index);
                self.released += 1;
                true
            }
            _ => false,
        }
    }
    pub(crate) fn held(&self, out: &mut Vec<u32>) {
        out.extend_from_slice(&self.stack);
    }
    pub(crate) fn bytes(&self) -> usize {
        self.stack.capacity() * 4 + self.in_list.capacity()
    }
    pub(crate) fn len(&self) -> u32 {
        self.stack.len() as u32
    }
    pub(crate) fn clear(&mut self) {
        self.stack.clear();
        self.in_list.clear();
    }
}
