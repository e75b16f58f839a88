//! Shared memory of the sim board: file-backed `MAP_SHARED` mappings placed at bus addresses,
//! and [`SimDma`], the DMA engine the firmware's HAL is implemented over.
//!
//! A [`ShmRegion`] is one mapping of a file (in `/dev/shm`, or any path): page-aligned,
//! a whole number of 4 KiB pages, and placed at a page-aligned bus address. The firmware side
//! sees only bus addresses; [`ShmRegion::translate`] turns a bus range into a pointer after an
//! overflow-safe range check. Two mappings of the same file (two threads, or two processes)
//! see each other's writes.
//!
//! # Memory model
//! The bytes of a region are shared with a peer that Rust cannot see. This module never makes
//! a Rust reference to them: every access is a raw-pointer copy ([`ShmRegion::write`],
//! [`ShmRegion::read`], [`SimDma`]). Who may touch which bytes when is the business of the
//! ring protocol above (a producer publishes with Release after writing, a consumer reads
//! with Acquire before reading), exactly as with guest memory in a VMM. Truncating a mapped
//! file from outside makes accesses fault (SIGBUS); the sim owns its files.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

/// Page size: region lengths and bus bases are multiples of it (so regions are also
/// cache-line (64-byte) aligned).
pub const PAGE: usize = 4096;

/// The sim board's memory map (bus addresses of its windows).
pub mod map {
    /// Host memory window (header buffers, rings): at 4 GiB.
    pub const HOST_MEM_BUS_BASE: u64 = 0x0000_0001_0000_0000;
    /// Emulated GPU BAR (payload buffers, RoCE memory regions): at 512 GiB.
    pub const GPU_BAR_BUS_BASE: u64 = 0x0000_0080_0000_0000;
}

/// Why a region cannot be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a shared-memory region cannot be empty")]
    Empty,
    #[error("{}: file length {len} is not a non-zero multiple of {PAGE}", path.display())]
    BadFileLength { path: PathBuf, len: u64 },
    #[error("bus range {base:#x} + {len:#x} is not page-aligned or does not fit 64 bits")]
    BadBusRange { base: u64, len: u64 },
}

/// One mapping of a shared-memory file at a bus address.
#[derive(Debug)]
pub struct ShmRegion {
    path: PathBuf,
    bus_base: u64,
    map: MmapRaw,
    unlink_on_drop: bool,
}

fn round_up_page(len: usize) -> Option<usize> {
    len.checked_next_multiple_of(PAGE)
}

impl ShmRegion {
    /// Creates `path` (which must not exist), sized to `len` rounded up to whole pages, and
    /// maps it at `bus_base`. The file stays when the region is dropped.
    pub fn create(
        path: impl AsRef<Path>,
        len: usize,
        bus_base: u64,
    ) -> Result<ShmRegion, ShmError> {
        Self::create_inner(path.as_ref(), len, bus_base, false)
    }

    /// Creates a uniquely named file under `/dev/shm` (or the temp directory where there is
    /// no `/dev/shm`), maps it like [`create`](Self::create), and removes the file on drop
    /// (mappings made with [`open`](Self::open) meanwhile stay valid).
    pub fn create_temp(tag: &str, len: usize, bus_base: u64) -> Result<ShmRegion, ShmError> {
        let dev_shm = Path::new("/dev/shm");
        let dir = if dev_shm.is_dir() {
            dev_shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let named = tempfile::Builder::new()
            .prefix(&format!("splitrx-{tag}-"))
            .tempfile_in(&dir)
            .map_err(|source| ShmError::Io {
                path: dir.clone(),
                source,
            })?;
        // Keep the file (tempfile would remove it when `named` drops); the region removes it.
        let (_, path) = named.keep().map_err(|e| ShmError::Io {
            path: dir,
            source: e.error,
        })?;
        match Self::map_file(&path, len, bus_base, true) {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    fn create_inner(
        path: &Path,
        len: usize,
        bus_base: u64,
        unlink: bool,
    ) -> Result<ShmRegion, ShmError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| ShmError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        match Self::map_file(path, len, bus_base, unlink) {
            Ok(r) => Ok(r),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Sizes the (new, empty) file at `path` and maps it.
    fn map_file(
        path: &Path,
        len: usize,
        bus_base: u64,
        unlink: bool,
    ) -> Result<ShmRegion, ShmError> {
        if len == 0 {
            return Err(ShmError::Empty);
        }
        let bad = || ShmError::BadBusRange {
            base: bus_base,
            len: len as u64,
        };
        let len = round_up_page(len).ok_or_else(bad)?;
        check_bus_range(bus_base, len as u64).ok_or_else(bad)?;
        let io = |source| ShmError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        file.set_len(len as u64).map_err(io)?;
        Self::map(path, &file, len, bus_base, unlink)
    }

    /// Maps an existing file at `bus_base`; its length must be a non-zero multiple of
    /// [`PAGE`].
    pub fn open(path: impl AsRef<Path>, bus_base: u64) -> Result<ShmRegion, ShmError> {
        let path = path.as_ref();
        let io = |source| ShmError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        let flen = file.metadata().map_err(io)?.len();
        if flen == 0 || flen & (PAGE as u64 - 1) != 0 {
            return Err(ShmError::BadFileLength {
                path: path.to_path_buf(),
                len: flen,
            });
        }
        let len = usize::try_from(flen).map_err(|_| ShmError::BadFileLength {
            path: path.to_path_buf(),
            len: flen,
        })?;
        check_bus_range(bus_base, flen).ok_or(ShmError::BadBusRange {
            base: bus_base,
            len: flen,
        })?;
        Self::map(path, &file, len, bus_base, false)
    }

    fn map(
        path: &Path,
        file: &File,
        len: usize,
        bus_base: u64,
        unlink: bool,
    ) -> Result<ShmRegion, ShmError> {
        let map = MmapOptions::new()
            .len(len)
            .map_raw(file)
            .map_err(|source| ShmError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        debug_assert_eq!(map.as_ptr() as usize % PAGE, 0);
        Ok(ShmRegion {
            path: path.to_path_buf(),
            bus_base,
            map,
            unlink_on_drop: unlink,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn bus_base(&self) -> u64 {
        self.bus_base
    }
    /// Length in bytes (a whole number of pages).
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// Always false: regions are never empty.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// One past the last bus address (fits in u64: checked at creation).
    pub fn bus_end(&self) -> u64 {
        self.bus_base + self.map.len() as u64
    }
    /// The first byte of the mapping (page-aligned).
    pub fn as_ptr(&self) -> NonNull<u8> {
        NonNull::new(self.map.as_mut_ptr()).expect("a mapping is never at address 0")
    }

    /// The offset of the bus range `[bus, bus + len)` inside the region, with slice semantics:
    /// a range must lie entirely inside; an empty range may sit anywhere from the first byte
    /// to one past the last. Never overflows, whatever `bus` and `len` are.
    pub fn offset_of(&self, bus: u64, len: usize) -> Option<usize> {
        let off = bus.checked_sub(self.bus_base)?;
        let size = self.map.len() as u64;
        if off > size || len as u64 > size - off {
            return None;
        }
        Some(off as usize)
    }

    /// Whether `[bus, bus + len)` lies inside the region (see [`offset_of`](Self::offset_of)).
    pub fn contains(&self, bus: u64, len: usize) -> bool {
        self.offset_of(bus, len).is_some()
    }

    /// A pointer to bus address `bus`, valid for `len` bytes, or `None` when the range is not
    /// inside the region. The pointer stays valid while the region lives.
    pub fn translate(&self, bus: u64, len: usize) -> Option<NonNull<u8>> {
        let off = self.offset_of(bus, len)?;
        // SAFETY: off <= self.len(), so the result is inside the mapping or one past its end,
        // which `add` permits.
        Some(unsafe { self.as_ptr().add(off) })
    }

    /// Copies `data` to bus address `bus`. `false` (nothing written) when out of range.
    pub fn write(&self, bus: u64, data: &[u8]) -> bool {
        let Some(dst) = self.translate(bus, data.len()) else {
            return false;
        };
        // SAFETY: translate checked that dst..dst+len is inside the live mapping; `copy`
        // tolerates overlap (data may itself point into a shared mapping). No Rust reference
        // to the shared bytes is created (module docs: memory model).
        unsafe { std::ptr::copy(data.as_ptr(), dst.as_ptr(), data.len()) };
        true
    }

    /// Copies from bus address `bus` into `out`. `false` (nothing read) when out of range.
    pub fn read(&self, bus: u64, out: &mut [u8]) -> bool {
        let Some(src) = self.translate(bus, out.len()) else {
            return false;
        };
        // SAFETY: as in `write`, with source and destination swapped; `out` is a unique
        // borrow, so it is writable for its length.
        unsafe { std::ptr::copy(src.as_ptr(), out.as_mut_ptr(), out.len()) };
        true
    }
}

/// `Some` when `base` is page-aligned and `base + len` fits in u64.
fn check_bus_range(base: u64, len: u64) -> Option<()> {
    (base & (PAGE as u64 - 1) == 0).then_some(())?;
    base.checked_add(len).map(|_| ())
}

impl Drop for ShmRegion {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DMA
// ---------------------------------------------------------------------------------------------

/// What a DMA window is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum WindowKind {
    /// Host memory (header buffers, rings).
    HostMemory,
    /// A device BAR (the emulated GPU's memory).
    DeviceBar,
}

/// A DMA that does not fit inside one window. The engine counts it and moves no byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum DmaError {
    #[error("DMA {dir} of {len} bytes at bus address {addr:#x} is outside every window")]
    OutOfWindow { dir: DmaDir, addr: u64, len: usize },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum DmaDir {
    /// Device to memory.
    Write,
    /// Memory to device.
    Read,
}

impl std::fmt::Display for DmaDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DmaDir::Write => "write",
            DmaDir::Read => "read",
        })
    }
}

/// A window cannot be added.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
#[error("window {base:#x}..{end:#x} overlaps window {other_base:#x}..{other_end:#x}")]
pub struct WindowOverlap {
    pub base: u64,
    pub end: u64,
    pub other_base: u64,
    pub other_end: u64,
}

#[derive(Debug, Default)]
struct WindowCounters {
    writes: AtomicU64,
    bytes_written: AtomicU64,
    reads: AtomicU64,
    bytes_read: AtomicU64,
}

#[derive(Debug)]
struct Window {
    kind: WindowKind,
    region: Arc<ShmRegion>,
    counters: WindowCounters,
}

/// Counters of one window.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WindowStats {
    pub writes: u64,
    pub bytes_written: u64,
    pub reads: u64,
    pub bytes_read: u64,
}

/// The sim board's DMA engine: copies between the firmware's buffers and bus addresses inside
/// registered windows. A transfer must lie entirely inside one window; anything else is a
/// [`DmaError`] and a fault count, never a stray write. Shareable between threads (`&self`).
#[derive(Debug, Default)]
pub struct SimDma {
    windows: Vec<Window>,
    write_faults: AtomicU64,
    read_faults: AtomicU64,
}

impl SimDma {
    pub fn new() -> SimDma {
        SimDma::default()
    }

    /// Registers `region` as a window; returns its index (for [`window_stats`](Self::window_stats)).
    pub fn add_window(
        &mut self,
        kind: WindowKind,
        region: Arc<ShmRegion>,
    ) -> Result<usize, WindowOverlap> {
        let (base, end) = (region.bus_base(), region.bus_end());
        if let Some(w) = self
            .windows
            .iter()
            .find(|w| base < w.region.bus_end() && w.region.bus_base() < end)
        {
            return Err(WindowOverlap {
                base,
                end,
                other_base: w.region.bus_base(),
                other_end: w.region.bus_end(),
            });
        }
        self.windows.push(Window {
            kind,
            region,
            counters: WindowCounters::default(),
        });
        Ok(self.windows.len() - 1)
    }

    fn find(&self, bus: u64, len: usize) -> Option<&Window> {
        self.windows.iter().find(|w| w.region.contains(bus, len))
    }

    /// The window holding all of `[bus, bus + len)`.
    pub fn window_of(&self, bus: u64, len: usize) -> Option<(WindowKind, &ShmRegion)> {
        self.find(bus, len).map(|w| (w.kind, &*w.region))
    }

    /// Copies `data` to bus address `bus`; returns the kind of window written.
    pub fn write(&self, bus: u64, data: &[u8]) -> Result<WindowKind, DmaError> {
        match self.find(bus, data.len()) {
            Some(w) if w.region.write(bus, data) => {
                w.counters.writes.fetch_add(1, Relaxed);
                w.counters
                    .bytes_written
                    .fetch_add(data.len() as u64, Relaxed);
                Ok(w.kind)
            }
            _ => {
                self.write_faults.fetch_add(1, Relaxed);
                Err(DmaError::OutOfWindow {
                    dir: DmaDir::Write,
                    addr: bus,
                    len: data.len(),
                })
            }
        }
    }

    /// Copies from bus address `bus` into `out`; returns the kind of window read.
    pub fn read(&self, bus: u64, out: &mut [u8]) -> Result<WindowKind, DmaError> {
        let len = out.len();
        match self.find(bus, len) {
            Some(w) if w.region.read(bus, out) => {
                w.counters.reads.fetch_add(1, Relaxed);
                w.counters.bytes_read.fetch_add(len as u64, Relaxed);
                Ok(w.kind)
            }
            _ => {
                self.read_faults.fetch_add(1, Relaxed);
                Err(DmaError::OutOfWindow {
                    dir: DmaDir::Read,
                    addr: bus,
                    len,
                })
            }
        }
    }

    pub fn window_count(&self) -> usize {
        self.windows.len()
    }

    pub fn window_stats(&self, index: usize) -> Option<WindowStats> {
        let c = &self.windows.get(index)?.counters;
        Some(WindowStats {
            writes: c.writes.load(Relaxed),
            bytes_written: c.bytes_written.load(Relaxed),
            reads: c.reads.load(Relaxed),
            bytes_read: c.bytes_read.load(Relaxed),
        })
    }

    /// Sum of the stats of every window of `kind`.
    pub fn kind_stats(&self, kind: WindowKind) -> WindowStats {
        (0..self.windows.len())
            .filter(|&i| self.windows[i].kind == kind)
            .filter_map(|i| self.window_stats(i))
            .fold(WindowStats::default(), |a, s| WindowStats {
                writes: a.writes + s.writes,
                bytes_written: a.bytes_written + s.bytes_written,
                reads: a.reads + s.reads,
                bytes_read: a.bytes_read + s.bytes_read,
            })
    }

    /// Rejected writes and reads.
    pub fn faults(&self) -> (u64, u64) {
        (
            self.write_faults.load(Relaxed),
            self.read_faults.load(Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::map::*;
    use super::*;

    fn region(len: usize, base: u64) -> ShmRegion {
        ShmRegion::create_temp("test", len, base).unwrap()
    }

    #[test]
    fn create_rounds_to_pages_and_aligns() {
        let r = region(10_000, HOST_MEM_BUS_BASE);
        assert_eq!(r.len(), 3 * PAGE);
        assert_eq!(r.as_ptr().as_ptr() as usize % PAGE, 0);
        assert_eq!(r.bus_end(), HOST_MEM_BUS_BASE + 3 * PAGE as u64);
        assert_eq!(std::fs::metadata(r.path()).unwrap().len(), 3 * PAGE as u64);
        assert!(r.path().starts_with("/dev/shm") || !Path::new("/dev/shm").is_dir());
        // Fresh pages read as zero.
        let mut buf = [0xffu8; 64];
        assert!(r.read(HOST_MEM_BUS_BASE + 5000, &mut buf));
        assert_eq!(buf, [0; 64]);
    }

    #[test]
    fn bad_parameters_are_rejected() {
        assert!(matches!(
            ShmRegion::create_temp("t", 0, 0),
            Err(ShmError::Empty)
        ));
        assert!(matches!(
            ShmRegion::create_temp("t", PAGE, 100),
            Err(ShmError::BadBusRange { base: 100, .. })
        ));
        let top = u64::MAX - PAGE as u64 + 1; // page-aligned; base + PAGE overflows to 2^64
        assert!(matches!(
            ShmRegion::create_temp("t", PAGE, top),
            Err(ShmError::BadBusRange { .. })
        ));
        assert!(matches!(
            ShmRegion::create_temp("t", usize::MAX, 0),
            Err(ShmError::BadBusRange { .. })
        ));
        // A region may end just below 2^64.
        let r = region(PAGE, top - PAGE as u64);
        assert_eq!(r.bus_end(), top);
    }

    #[test]
    fn translate_boundaries() {
        const B: u64 = GPU_BAR_BUS_BASE;
        let r = region(2 * PAGE, B);
        let p = r.as_ptr().as_ptr() as usize;
        let at = |bus, len| r.translate(bus, len).map(|q| q.as_ptr() as usize - p);
        let n = 2 * PAGE;
        // Start, inside, and the whole region.
        assert_eq!(at(B, 1), Some(0));
        assert_eq!(at(B + 100, 28), Some(100));
        assert_eq!(at(B, n), Some(0));
        // The last byte; the end (one past the last byte) only for an empty range.
        assert_eq!(at(B + n as u64 - 1, 1), Some(n - 1));
        assert_eq!(at(B + n as u64 - 1, 2), None);
        assert_eq!(at(B + n as u64, 0), Some(n));
        assert_eq!(at(B + n as u64, 1), None);
        // One past the end, even empty, is outside.
        assert_eq!(at(B + n as u64 + 1, 0), None);
        // Below the base.
        assert_eq!(at(B - 1, 0), None);
        assert_eq!(at(B - 1, 2), None);
        assert_eq!(at(0, 0), None);
        // Longer than the region.
        assert_eq!(at(B, n + 1), None);
        // bus + len overflows u64: rejected, no wrap-around into the region.
        assert_eq!(at(u64::MAX, 2), None);
        assert_eq!(at(B + 8, usize::MAX), None);
        assert_eq!(at(u64::MAX - 3, usize::MAX), None);
        // Zero length at the start and inside.
        assert_eq!(at(B, 0), Some(0));
        assert_eq!(at(B + 17, 0), Some(17));
        assert!(r.contains(B, n) && !r.contains(B, n + 1));
        assert_eq!(r.offset_of(B + 64, 64), Some(64));
        // Out-of-range copies move nothing.
        assert!(!r.write(B + n as u64 - 2, &[1, 2, 3]));
        let mut out = [0u8; 4];
        assert!(!r.read(B - 2, &mut out));
        assert!(r.write(B + n as u64 - 3, &[1, 2, 3]));
        assert!(r.read(B + n as u64 - 4, &mut out));
        assert_eq!(out, [0, 1, 2, 3]);
    }

    #[test]
    fn two_mappings_of_one_file_share_bytes() {
        let a = region(PAGE, HOST_MEM_BUS_BASE);
        // A second mapping of the same file at a different bus address.
        let b = ShmRegion::open(a.path(), GPU_BAR_BUS_BASE).unwrap();
        assert_eq!(b.len(), PAGE);
        assert_ne!(a.as_ptr(), b.as_ptr());
        assert!(a.write(HOST_MEM_BUS_BASE + 4000, b"splitrx"));
        let mut out = [0u8; 7];
        assert!(b.read(GPU_BAR_BUS_BASE + 4000, &mut out));
        assert_eq!(&out, b"splitrx");
        assert!(b.write(GPU_BAR_BUS_BASE, &[9; 16]));
        let mut out = [0u8; 16];
        assert!(a.read(HOST_MEM_BUS_BASE, &mut out));
        assert_eq!(out, [9; 16]);
        // Across threads: another thread writes through its own mapping.
        let path = a.path().to_path_buf();
        std::thread::spawn(move || {
            let c = ShmRegion::open(&path, 0).unwrap();
            assert!(c.write(2048, &[0xab; 100]));
        })
        .join()
        .unwrap();
        let mut out = [0u8; 100];
        assert!(a.read(HOST_MEM_BUS_BASE + 2048, &mut out));
        assert_eq!(out, [0xab; 100]);
        // The temp file goes with its creator; a mapping made meanwhile stays valid.
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists());
        let mut out = [0u8; 7];
        assert!(b.read(GPU_BAR_BUS_BASE + 4000, &mut out));
        assert_eq!(&out, b"splitrx");
        assert!(matches!(
            ShmRegion::open(&path, 0),
            Err(ShmError::Io { .. })
        ));
    }

    #[test]
    fn create_and_open_named_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bar0");
        let r = ShmRegion::create(&path, 5000, GPU_BAR_BUS_BASE).unwrap();
        assert_eq!(r.len(), 2 * PAGE);
        assert!(matches!(
            ShmRegion::create(&path, PAGE, 0),
            Err(ShmError::Io { .. })
        ));
        drop(r);
        assert!(path.exists()); // named files are kept
        let odd = dir.path().join("odd");
        std::fs::write(&odd, [0u8; 100]).unwrap();
        assert!(matches!(
            ShmRegion::open(&odd, 0),
            Err(ShmError::BadFileLength { len: 100, .. })
        ));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, []).unwrap();
        assert!(matches!(
            ShmRegion::open(&empty, 0),
            Err(ShmError::BadFileLength { len: 0, .. })
        ));
        assert!(matches!(
            ShmRegion::open(&path, 1),
            Err(ShmError::BadBusRange { base: 1, .. })
        ));
    }

    fn dma() -> (SimDma, Arc<ShmRegion>, Arc<ShmRegion>) {
        let host = Arc::new(region(4 * PAGE, HOST_MEM_BUS_BASE));
        let bar = Arc::new(region(8 * PAGE, GPU_BAR_BUS_BASE));
        let mut d = SimDma::new();
        assert_eq!(d.add_window(WindowKind::HostMemory, host.clone()), Ok(0));
        assert_eq!(d.add_window(WindowKind::DeviceBar, bar.clone()), Ok(1));
        (d, host, bar)
    }

    #[test]
    fn dma_writes_land_and_are_counted() {
        let (d, host, bar) = dma();
        assert_eq!(
            d.write(HOST_MEM_BUS_BASE + 64, &[1; 54]),
            Ok(WindowKind::HostMemory)
        );
        assert_eq!(
            d.write(GPU_BAR_BUS_BASE + 8 * PAGE as u64 - 1446, &[2; 1446]),
            Ok(WindowKind::DeviceBar)
        );
        assert_eq!(
            d.write(GPU_BAR_BUS_BASE, &[3; 9000]),
            Ok(WindowKind::DeviceBar)
        );
        let mut out = [0u8; 56];
        host.read(HOST_MEM_BUS_BASE + 63, &mut out);
        assert_eq!(out[0], 0);
        assert_eq!(&out[1..55], &[1; 54]);
        assert_eq!(out[55], 0);
        let mut out = vec![0u8; 1446];
        bar.read(bar.bus_end() - 1446, &mut out);
        assert_eq!(out, vec![2; 1446]);
        let mut back = [0u8; 16];
        assert_eq!(
            d.read(GPU_BAR_BUS_BASE + 8990, &mut back),
            Ok(WindowKind::DeviceBar)
        );
        assert_eq!(back, [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            d.window_stats(0),
            Some(WindowStats {
                writes: 1,
                bytes_written: 54,
                reads: 0,
                bytes_read: 0
            })
        );
        assert_eq!(
            d.kind_stats(WindowKind::DeviceBar),
            WindowStats {
                writes: 2,
                bytes_written: 10446,
                reads: 1,
                bytes_read: 16
            }
        );
        assert_eq!(d.faults(), (0, 0));
        assert_eq!(d.window_stats(2), None);
        assert_eq!(
            d.window_of(GPU_BAR_BUS_BASE + 5, 5).map(|(k, _)| k),
            Some(WindowKind::DeviceBar)
        );
    }

    #[test]
    fn dma_outside_windows_is_a_typed_error_and_moves_nothing() {
        let (d, host, _bar) = dma();
        let host_end = HOST_MEM_BUS_BASE + 4 * PAGE as u64;
        let cases: [(u64, usize); 6] = [
            (0, 1),                                      // below every window
            (host_end, 1),                               // one past the host window
            (host_end - 4, 8),                           // straddles the end of a window
            (HOST_MEM_BUS_BASE - 4, 8),                  // straddles the start of a window
            (GPU_BAR_BUS_BASE + 8 * PAGE as u64 + 1, 0), // past the end, empty
            (u64::MAX - 2, 8),                           // wraps around 2^64
        ];
        for (addr, len) in cases {
            let data = vec![0xee; len];
            let want = Err(DmaError::OutOfWindow {
                dir: DmaDir::Write,
                addr,
                len,
            });
            assert_eq!(d.write(addr, &data), want, "{addr:#x}+{len}");
        }
        let mut out = [0u8; 8];
        assert_eq!(
            d.read(host_end - 4, &mut out),
            Err(DmaError::OutOfWindow {
                dir: DmaDir::Read,
                addr: host_end - 4,
                len: 8
            })
        );
        assert_eq!(d.faults(), (6, 1));
        assert_eq!(d.kind_stats(WindowKind::HostMemory), WindowStats::default());
        let mut tail = [0u8; 4];
        host.read(host_end - 4, &mut tail);
        assert_eq!(tail, [0; 4]);
        assert_eq!(
            d.write(host_end, &[1; 100]).unwrap_err().to_string(),
            "DMA write of 100 bytes at bus address 0x100004000 is outside every window"
        );
        assert_eq!(d.faults(), (7, 1));
    }

    #[test]
    fn overlapping_windows_are_refused() {
        let (mut d, host, _bar) = dma();
        let again =
            Arc::new(ShmRegion::open(host.path(), HOST_MEM_BUS_BASE + 3 * PAGE as u64).unwrap());
        assert_eq!(
            d.add_window(WindowKind::HostMemory, again),
            Err(WindowOverlap {
                base: HOST_MEM_BUS_BASE + 3 * PAGE as u64,
                end: HOST_MEM_BUS_BASE + 7 * PAGE as u64,
                other_base: HOST_MEM_BUS_BASE,
                other_end: HOST_MEM_BUS_BASE + 4 * PAGE as u64,
            })
        );
        // Adjacent is fine.
        let next =
            Arc::new(ShmRegion::open(host.path(), HOST_MEM_BUS_BASE + 4 * PAGE as u64).unwrap());
        assert_eq!(d.add_window(WindowKind::HostMemory, next), Ok(2));
        assert_eq!(d.window_count(), 3);
        // A transfer straddling two adjacent windows is still refused: one window per DMA.
        assert!(d
            .write(HOST_MEM_BUS_BASE + 4 * PAGE as u64 - 2, &[1; 4])
            .is_err());
    }

    #[test]
    fn dma_is_shareable_across_threads() {
        let (d, _host, bar) = dma();
        let d = Arc::new(d);
        let workers: Vec<_> = (0..4u8)
            .map(|t| {
                let d = d.clone();
                std::thread::spawn(move || {
                    for i in 0..100u64 {
                        let addr = GPU_BAR_BUS_BASE + u64::from(t) * 8192 + i * 64;
                        d.write(addr, &[t + 1; 64]).unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(d.kind_stats(WindowKind::DeviceBar).writes, 400);
        assert_eq!(d.kind_stats(WindowKind::DeviceBar).bytes_written, 400 * 64);
        let mut out = vec![0u8; 4 * 8192];
        bar.read(GPU_BAR_BUS_BASE, &mut out);
        for t in 0..4usize {
            assert!(out[t * 8192..t * 8192 + 6400]
                .iter()
                .all(|&b| b == t as u8 + 1));
        }
    }
}
