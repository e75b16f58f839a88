//! Shared memory of the sim board: file-backed `MAP_SHARED` mappings placed at bus addresses.
//! The firmware's DMA engine over them is [`crate::board::SimDmaEngine`].
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
//! [`ShmRegion::read`], the board's DMA engine). Who may touch which bytes when is the business of the
//! ring protocol above (a producer publishes with Release after writing, a consumer reads
//! with Acquire before reading), exactly as with guest memory in a VMM. Truncating a mapped
//! file from outside makes accesses fault (SIGBUS); the sim owns its files.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

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
        // Populated: the board's view of host memory and of the GPU BAR is mapped once, up
        // front, as on hardware, so no page fault lands on the datapath.
        let map = MmapOptions::new()
            .len(len)
            .populate()
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
// DMA windows
// ---------------------------------------------------------------------------------------------

/// What a DMA window is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum WindowKind {
    /// Host memory (header buffers, rings).
    HostMemory,
    /// A device BAR (the emulated GPU's memory).
    DeviceBar,
}

/// Counters of one window.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct WindowStats {
    pub writes: u64,
    pub bytes_written: u64,
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
}
