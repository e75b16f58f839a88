//! [`DeviceWindow`]: buffers carved out of a mapped file standing for device memory.
//!
//! Kernel counterpart: devmem TCP's dmabuf binding (`net_devmem_bind_dmabuf`: a dmabuf's
//! scatterlist carved into `net_iov`s, each with a DMA address) — a provider whose buffers the
//! CPU normally does not touch.
//!
//! The file can be:
//! - **emulation**: a shared-memory file (e.g. under `/dev/shm`) standing in for a GPU BAR;
//!   [`DeviceWindowConfig::create`] creates/sizes it. Another process (the simulated NIC) maps
//!   the same file and DMA-writes into it.
//! - **hardware**: a PCI BAR resource file, `/sys/bus/pci/devices/<bdf>/resource<N>`
//!   (mmap-able for memory BARs; root required) — open it with `create = false`; the bus base
//!   is the BAR's bus address (`/sys/bus/pci/devices/<bdf>/resource`, line N, first column)
//!   plus `offset`. Reads through such a mapping are uncached: set `host_readable = false`.
//! - a **dmabuf** fd whose exporter allows mmap: [`DeviceWindow::from_file`] with the fd
//!   wrapped as a `File`.

use super::{FreeList, MemoryProvider, ProviderError, ProviderInfo, ProviderKind, Region};
use memmap2::{MmapMut, MmapOptions};
use std::fs::{File, OpenOptions};
use std::path::PathBuf;

/// Configuration of a [`DeviceWindow`].
#[derive(Clone, Debug)]
pub struct DeviceWindowConfig {
    pub path: PathBuf,
    pub buf_size: u32,
    pub count: u32,
    /// Byte offset of buffer 0 inside the file.
    pub offset: u64,
    /// Bus address of buffer 0.
    pub bus_base: u64,
    /// Whether the CPU may read the buffers on the hot path.
    pub host_readable: bool,
    /// Create the file if missing and size it to `offset + buf_size * count` (emulation). For a
    /// PCI resource file or a dmabuf this must be false: the size is the device's.
    pub create: bool,
}

impl DeviceWindowConfig {
    /// An emulated window: creates and sizes `path`.
    pub fn create(path: impl Into<PathBuf>, buf_size: u32, count: u32, bus_base: u64) -> Self {
        DeviceWindowConfig {
            path: path.into(),
            buf_size,
            count,
            offset: 0,
            bus_base,
            host_readable: true,
            create: true,
        }
    }
    /// An existing file (a PCI BAR resource file, a pre-sized shared-memory file).
    pub fn open(path: impl Into<PathBuf>, buf_size: u32, count: u32, bus_base: u64) -> Self {
        DeviceWindowConfig {
            create: false,
            ..Self::create(path, buf_size, count, bus_base)
        }
    }
}

/// Mapped-file provider.
#[derive(Debug)]
pub struct DeviceWindow {
    cfg: DeviceWindowConfig,
    file: Option<File>,
    map: Option<MmapMut>,
    free: FreeList,
}

impl DeviceWindow {
    pub fn new(cfg: DeviceWindowConfig) -> DeviceWindow {
        DeviceWindow {
            cfg,
            file: None,
            map: None,
            free: FreeList::default(),
        }
    }

    /// A window over an already open file or fd (e.g. a dmabuf). `cfg.path` is only a label.
    pub fn from_file(file: File, cfg: DeviceWindowConfig) -> DeviceWindow {
        DeviceWindow {
            cfg,
            file: Some(file),
            map: None,
            free: FreeList::default(),
        }
    }
}

impl MemoryProvider for DeviceWindow {
    fn init(&mut self) -> Result<Region, ProviderError> {
        if self.map.is_some() {
            return Err(ProviderError::AlreadyInit);
        }
        let c = &self.cfg;
        if c.buf_size == 0 || c.count == 0 || c.count > splitrx_shared::abi::BufRef::MAX_INDEX + 1 {
            return Err(ProviderError::Config(
                "buf_size and count must be non-zero, count <= 2^24-1",
            ));
        }
        let bytes = (c.buf_size as u64)
            .checked_mul(c.count as u64)
            .filter(|b| *b <= usize::MAX as u64)
            .ok_or(ProviderError::Config("window too large"))?;
        let end = c
            .offset
            .checked_add(bytes)
            .ok_or(ProviderError::Config("window too large"))?;
        let file = match self.file.take() {
            Some(f) => f,
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create(c.create)
                .truncate(false)
                .open(&c.path)?,
        };
        let meta_len = file.metadata()?.len();
        if meta_len < end {
            if c.create {
                file.set_len(end)?;
            } else if file.metadata()?.is_file() {
                // sysfs resource files report their BAR size; a regular file must be big enough.
                return Err(ProviderError::Config(
                    "file smaller than offset + buf_size * count",
                ));
            }
        }
        // SAFETY: mapping a file is unsafe because another process may change or truncate it
        // under us. The window is device memory shared with the (simulated) NIC by design;
        // access to each buffer is serialised by the ledger (the NIC writes only Posted
        // buffers), and nothing here creates references that outlive the pool's ownership.
        let mut map = unsafe {
            MmapOptions::new()
                .offset(c.offset)
                .len(bytes as usize)
                .map_mut(&file)?
        };
        let base = map.as_mut_ptr();
        self.file = Some(file);
        self.map = Some(map);
        self.free = FreeList::full(c.count);
        Ok(Region {
            base,
            bus_base: c.bus_base,
            buf_size: c.buf_size,
            count: c.count,
            host_readable: c.host_readable,
        })
    }

    fn destroy(&mut self) {
        self.map = None;
        self.file = None;
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
            kind: ProviderKind::DeviceWindow,
            name: self.cfg.path.display().to_string(),
            buf_size: self.cfg.buf_size,
            count: self.cfg.count,
            bus_base: self.cfg.bus_base,
            host_readable: self.cfg.host_readable,
            held: self.free.len(),
            hugepages_requested: false,
            hugepages: false,
            hugepage_fallbacks: 0,
            released: self.free.released,
            allocated: self.free.allocated,
            metadata_bytes: self.free.bytes(),
        }
    }
}
