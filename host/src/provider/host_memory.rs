//! [`HostMemory`]: buffers in anonymous host memory.
//!
//! Kernel counterpart: the page pool's default source, the page allocator
//! (`__page_pool_alloc_pages_slow`), with `MAP_HUGETLB` standing in for high-order pages.

use super::{FreeList, MemoryProvider, ProviderError, ProviderInfo, ProviderKind, Region};
use memmap2::{MmapMut, MmapOptions};
use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide count of huge-page requests that fell back to small pages.
static HUGEPAGE_FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// Huge page size assumed for rounding (x86-64 / arm64 default 2 MiB).
const HUGE_PAGE: usize = 2 << 20;

/// Configuration of a [`HostMemory`] provider.
#[derive(Clone, Debug)]
pub struct HostMemoryConfig {
    pub buf_size: u32,
    pub count: u32,
    /// Ask for huge pages (`MAP_HUGETLB`); falls back to small pages when the system has
    /// none, counted in `hugepage_fallbacks`.
    pub huge_pages: bool,
    /// Bus address of buffer 0. `None`: the host virtual address (identity mapping, as with no
    /// IOMMU; what the in-process simulator uses).
    pub bus_base: Option<u64>,
    /// Test hook: behave as if the system had no huge pages even when it has some.
    pub force_hugepage_failure: bool,
}

impl HostMemoryConfig {
    pub fn new(buf_size: u32, count: u32) -> HostMemoryConfig {
        HostMemoryConfig {
            buf_size,
            count,
            huge_pages: false,
            bus_base: None,
            force_hugepage_failure: false,
        }
    }
}

/// Anonymous-mmap provider.
#[derive(Debug)]
pub struct HostMemory {
    cfg: HostMemoryConfig,
    map: Option<MmapMut>,
    huge: bool,
    fallbacks: u64,
    free: FreeList,
    bus_base: u64,
}

impl HostMemory {
    pub fn new(cfg: HostMemoryConfig) -> HostMemory {
        HostMemory {
            cfg,
            map: None,
            huge: false,
            fallbacks: 0,
            free: FreeList::default(),
            bus_base: 0,
        }
    }

    /// Process-wide number of huge-page fallbacks.
    pub fn global_hugepage_fallbacks() -> u64 {
        HUGEPAGE_FALLBACKS.load(Ordering::Relaxed)
    }

    fn map(len: usize, huge: bool) -> std::io::Result<MmapMut> {
        let mut o = MmapOptions::new();
        o.len(len).no_reserve_swap();
        if huge {
            o.huge(Some(21)); // MAP_HUGETLB | MAP_HUGE_2MB
        }
        o.map_anon()
    }
}

impl MemoryProvider for HostMemory {
    fn init(&mut self) -> Result<Region, ProviderError> {
        if self.map.is_some() {
            return Err(ProviderError::AlreadyInit);
        }
        let (bs, n) = (self.cfg.buf_size as usize, self.cfg.count as usize);
        if bs == 0 || n == 0 || self.cfg.count > splitrx_shared::abi::BufRef::MAX_INDEX + 1 {
            return Err(ProviderError::Config(
                "buf_size and count must be non-zero, count <= 2^24-1",
            ));
        }
        let bytes = bs
            .checked_mul(n)
            .ok_or(ProviderError::Config("region too large"))?;
        let mut mapped = None;
        if self.cfg.huge_pages {
            let len = bytes.div_ceil(HUGE_PAGE) * HUGE_PAGE;
            let r = if self.cfg.force_hugepage_failure {
                Err(std::io::Error::from(std::io::ErrorKind::OutOfMemory))
            } else {
                Self::map(len, true)
            };
            match r {
                Ok(m) => {
                    mapped = Some(m);
                    self.huge = true;
                }
                Err(e) => {
                    self.fallbacks += 1;
                    HUGEPAGE_FALLBACKS.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("MAP_HUGETLB failed ({e}); falling back to small pages");
                }
            }
        }
        let mut map = match mapped {
            Some(m) => m,
            None => Self::map(bytes, false)?,
        };
        let p = map.as_mut_ptr();
        self.map = Some(map);
        self.free = FreeList::full(self.cfg.count);
        self.bus_base = self.cfg.bus_base.unwrap_or(p as u64);
        Ok(Region {
            base: p,
            bus_base: self.bus_base,
            buf_size: self.cfg.buf_size,
            count: self.cfg.count,
            host_readable: true,
        })
    }

    fn destroy(&mut self) {
        // Unmaps. The pool calls destroy only after every buffer came back, so no reference
        // into the mapping remains.
        self.map = None;
        self.free.clear();
    }

    fn alloc_bulk(&mut self, out: &mut Vec<u32>, max: usize) -> usize {
        self.free.alloc_bulk(out, max)
    }

    fn release(&mut self, index: u32) -> bool {
        self.map.is_some() && self.free.release(index)
    }

    fn held(&self, out: &mut Vec<u32>) {
        self.free.held(out)
    }

    fn describe(&self) -> ProviderInfo {
        ProviderInfo {
            kind: ProviderKind::HostMemory,
            name: "anon".into(),
            buf_size: self.cfg.buf_size,
            count: self.cfg.count,
            bus_base: self.bus_base,
            host_readable: true,
            held: self.free.len(),
            hugepages_requested: self.cfg.huge_pages,
            hugepages: self.huge,
            hugepage_fallbacks: self.fallbacks,
            released: self.free.released,
            allocated: self.free.allocated,
            metadata_bytes: self.free.bytes(),
        }
    }
}
