//! The sim board's host side: its windows as the host sees them ([`SimSeam`], the
//! [`BoardSeam`] implementation) and [`SimHw`], a powered-up board (two shared-memory files,
//! the firmware thread, the wire).
//!
//! The host library brings a device up over [`SimSeam`] exactly as over any other board: it
//! maps the host window, posts the bootstrap mailbox, and talks to the firmware through the
//! control rings. Nothing of the board's internals crosses the seam.

use crate::board::{AliveHandle, BoardConfig, BoardError, FirmwareReport, SimBoard};
use crate::shm::{map, ShmRegion};
use crate::wire::{Wire, WireCtl};
use splitrx_host::seam::{BoardSeam, DeviceMemory, SeamError, WindowDesc};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The sim board as the host sees it.
#[derive(Debug)]
pub struct SimSeam {
    host: WindowDesc,
    devices: [WindowDesc; 1],
    alive: AliveHandle,
    reader: Option<Arc<dyn DeviceMemory>>,
}

/// How the host may read the emulated GPU BAR, for exercising the paths a real board takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BarAccess {
    /// Through its mapping, like host memory (the default).
    #[default]
    Mapped,
    /// Not through its mapping (like a real GPU BAR), but through the board's reader: copies
    /// out of the board's own mapping, standing in for a debug port or a NIC DMA read.
    ReaderOnly,
    /// Not at all.
    Unreadable,
}

/// Reads the BAR through the board's own mapping.
#[derive(Debug)]
struct BarReader(Arc<ShmRegion>);

impl DeviceMemory for BarReader {
    fn read(&self, bus: u64, out: &mut [u8]) -> Result<(), SeamError> {
        if self.0.read(bus, out) {
            Ok(())
        } else {
            Err(SeamError::OutOfRange {
                bus,
                len: out.len(),
            })
        }
    }
}

impl BoardSeam for SimSeam {
    fn board(&self) -> &str {
        "sim"
    }
    fn host_window(&self) -> &WindowDesc {
        &self.host
    }
    fn device_windows(&self) -> &[WindowDesc] {
        &self.devices
    }
    fn board_alive(&self) -> Result<(), SeamError> {
        self.alive.alive().map_err(SeamError::Gone)
    }
    fn device_reader(&self) -> Option<Arc<dyn DeviceMemory>> {
        self.reader.clone()
    }
}

/// A powered-up sim board: the two files (host window and emulated GPU BAR), the firmware
/// thread booting from the mailbox, and the wire feeding its MAC.
#[derive(Debug)]
pub struct SimHw {
    pub seam: Arc<SimSeam>,
    pub wire: Arc<WireCtl>,
    board: Option<SimBoard>,
    // The files' creators: they remove the names on drop (mappings stay valid).
    host: ShmRegion,
    bar: Arc<ShmRegion>,
}

impl SimHw {
    /// Creates a host window of `host_len` bytes and a GPU BAR of `bar_len` bytes under
    /// `/dev/shm` at the board's bus addresses, and starts the firmware fed by `wire` (which
    /// offers nothing until `ctl.start` is set).
    pub fn start<W: Wire + 'static>(
        host_len: u64,
        bar_len: u64,
        wire: W,
        ctl: Arc<WireCtl>,
    ) -> Result<SimHw, BoardError> {
        Self::start_with(host_len, bar_len, wire, ctl, BarAccess::Mapped)
    }

    /// [`SimHw::start`], with the host's access to the GPU BAR chosen by `bar`.
    pub fn start_with<W: Wire + 'static>(
        host_len: u64,
        bar_len: u64,
        wire: W,
        ctl: Arc<WireCtl>,
        bar_access: BarAccess,
    ) -> Result<SimHw, BoardError> {
        let len = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let host = ShmRegion::create_temp("host", len(host_len), map::HOST_MEM_BUS_BASE)?;
        let bar = Arc::new(ShmRegion::create_temp(
            "gpubar",
            len(bar_len),
            map::GPU_BAR_BUS_BASE,
        )?);
        let board = SimBoard::spawn(
            &BoardConfig {
                host_window: host.path().to_path_buf(),
                gpu_bar: bar.path().to_path_buf(),
            },
            wire,
            ctl.clone(),
        )?;
        let desc = |name: &str, r: &ShmRegion| WindowDesc {
            name: name.into(),
            path: r.path().to_path_buf(),
            file_offset: 0,
            bus_base: r.bus_base(),
            len: r.len() as u64,
            host_readable: true,
        };
        let mut bar_desc = desc("GPU BAR", &bar);
        bar_desc.host_readable = bar_access == BarAccess::Mapped;
        let seam = Arc::new(SimSeam {
            host: desc("host window", &host),
            devices: [bar_desc],
            alive: board.alive_handle(),
            reader: (bar_access == BarAccess::ReaderOnly)
                .then(|| Arc::new(BarReader(bar.clone())) as Arc<dyn DeviceMemory>),
        });
        Ok(SimHw {
            seam,
            wire: ctl,
            board: Some(board),
            host,
            bar,
        })
    }

    /// Once every mapping of the two files exists (the host's device is up): removes their
    /// names, so nothing is left in `/dev/shm` even if the process is killed. Mappings stay
    /// valid until dropped.
    pub fn unlink(&self) {
        let _ = std::fs::remove_file(self.host.path());
        let _ = std::fs::remove_file(self.bar.path());
    }

    /// Lets the wire offer frames.
    pub fn start_traffic(&self) {
        self.wire.start.store(true, Ordering::Release);
    }

    /// Base addresses of the board's own mappings (host window, GPU BAR).
    pub fn board_mappings(&self) -> [usize; 2] {
        self.board.as_ref().map_or([0; 2], |b| b.mapping_bases)
    }

    /// Stops the firmware and returns its final counters.
    pub fn stop(mut self) -> Option<FirmwareReport> {
        self.wire.stop.store(true, Ordering::Relaxed);
        self.board.take().and_then(SimBoard::stop)
    }
}
