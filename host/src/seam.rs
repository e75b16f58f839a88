//! The board seam, host side: what any board gives the host, and the host's end of the
//! bootstrap mailbox.
//!
//! A board (the in-process sim, a firmware image under QEMU, an FPGA NIC on PCIe) gives the
//! host:
//! - one **host window** ([`WindowDesc`]): memory both sides map, holding the bootstrap
//!   mailbox, the control region, the RX queue regions and the header buffers;
//! - one or more **device windows**: payload memory (the emulated GPU BAR; on hardware a PCIe
//!   BAR resource file or a dmabuf), which the host may or may not be able to read;
//! - the **bus-address map**: each window's bus base, i.e. where the NIC sees it;
//! - **liveness**: whether the firmware (thread, process, board) is still there
//!   ([`BoardSeam::board_alive`]), on top of the mailbox's state and heartbeat, which every
//!   board shares ([`HostWindow::mailbox`]);
//! - optionally a way to **read device memory** when the host mapping is not readable
//!   ([`BoardSeam::device_reader`]).
//!
//! The control ring pair is found through the bootstrap mailbox
//! (`splitrx_shared::bootstrap`): the host posts it at offset 0 of the host window, the
//! firmware finds it at the bus address its board's memory map names. `docs/ABI.md` has the
//! protocol. [`crate::device`] brings a device up and down over this seam.

use memmap2::{MmapOptions, MmapRaw};
use splitrx_shared::bootstrap::{field, fw_state, Bootstrap, MAILBOX_LEN};
use std::fs::OpenOptions;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use zerocopy::{FromBytes, IntoBytes};

/// One memory window a board exposes to the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowDesc {
    /// What it is ("host window", "gpu bar"), for messages.
    pub name: String,
    /// The file the host maps: a shared-memory file, a PCI BAR resource file
    /// (`/sys/bus/pci/devices/<bdf>/resourceN`), or `/proc/self/fd/N` of a dmabuf.
    pub path: PathBuf,
    /// Offset of the window's first byte in that file.
    pub file_offset: u64,
    /// Bus address of the window's first byte (what the NIC uses).
    pub bus_base: u64,
    pub len: u64,
    /// Whether the CPU may read the window through its mapping (a real GPU BAR is not).
    pub host_readable: bool,
}

impl WindowDesc {
    /// The bus address of `off` bytes into the window.
    pub fn bus(&self, off: u64) -> u64 {
        self.bus_base + off
    }
}

/// Errors of the seam.
#[derive(Debug, thiserror::Error)]
pub enum SeamError {
    #[error("mapping {what} ({path}): {err}")]
    Map {
        what: String,
        path: String,
        err: std::io::Error,
    },
    #[error("the {0} is too small or not page-aligned")]
    Window(String),
    #[error("the firmware refused the bootstrap mailbox (fw_error {0:#x}; see docs/ABI.md)")]
    Refused(u32),
    #[error("the firmware faulted (fw_error {0:#x})")]
    Faulted(u32),
    #[error("the firmware did not attach within {0:?}")]
    NotAttached(std::time::Duration),
    #[error("the board is gone: {0}")]
    Gone(String),
    #[error("this board cannot read device memory from the host")]
    CannotRead,
    #[error("bus range {bus:#x}+{len} is outside every device window")]
    OutOfRange { bus: u64, len: usize },
}

/// Reads device memory the host cannot read through its mapping (a debug port, a DMA read by
/// the NIC, a probe). Used by verification only, never on the datapath.
pub trait DeviceMemory: Send + Sync + std::fmt::Debug {
    /// Fills `out` from bus address `bus`.
    fn read(&self, bus: u64, out: &mut [u8]) -> Result<(), SeamError>;
}

/// What a board gives the host (see the module docs).
pub trait BoardSeam: Send + Sync + std::fmt::Debug {
    /// The board's name (`sim`, `qemu-virt`, ...).
    fn board(&self) -> &str;
    /// The host window: mailbox at offset 0, then control and queue regions, header buffers.
    fn host_window(&self) -> &WindowDesc;
    /// The device windows (payload memory). Index 0 holds the payload pools.
    fn device_windows(&self) -> &[WindowDesc];
    /// `Ok` while the firmware's container (thread, process, board link) is there.
    fn board_alive(&self) -> Result<(), SeamError>;
    /// How to read device memory the host mapping cannot read; `None`: it cannot be read.
    fn device_reader(&self) -> Option<Arc<dyn DeviceMemory>> {
        None
    }
}

/// The firmware's side of the mailbox, as the host last read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxState {
    pub fw_state: u32,
    pub fw_error: u32,
    pub fw_generation: u32,
    pub heartbeat: u64,
    pub fw_version: u32,
}

/// The host's mapping of the host window.
///
/// Rings and the mailbox are accessed through raw pointers only (the firmware writes the same
/// pages concurrently); no Rust reference into the mapping is ever made.
#[derive(Debug)]
pub struct HostWindow {
    map: MmapRaw,
    desc: WindowDesc,
}

// SAFETY: the mapping is plain shared memory accessed through raw pointers with volatile or
// atomic operations by the ring handles and the mailbox methods; moving or sharing the
// `MmapRaw` between threads is what memmap2 allows for raw maps.
unsafe impl Send for HostWindow {}
// SAFETY: as above: `&HostWindow` only hands out raw pointers and does volatile accesses.
unsafe impl Sync for HostWindow {}

impl HostWindow {
    /// Maps the window `desc` read-write.
    pub fn map(desc: &WindowDesc) -> Result<HostWindow, SeamError> {
        let err = |err| SeamError::Map {
            what: desc.name.clone(),
            path: desc.path.display().to_string(),
            err,
        };
        if desc.len < MAILBOX_LEN || !desc.file_offset.is_multiple_of(4096) {
            return Err(SeamError::Window(desc.name.clone()));
        }
        let len = usize::try_from(desc.len).map_err(|_| SeamError::Window(desc.name.clone()))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&desc.path)
            .map_err(err)?;
        let map = MmapOptions::new()
            .offset(desc.file_offset)
            .len(len)
            .map_raw(&file)
            .map_err(err)?;
        Ok(HostWindow {
            map,
            desc: desc.clone(),
        })
    }

    pub fn desc(&self) -> &WindowDesc {
        &self.desc
    }
    /// Base of the mapping (page-aligned).
    pub fn base(&self) -> NonNull<u8> {
        // SAFETY: a successful mmap never returns null.
        unsafe { NonNull::new_unchecked(self.map.as_mut_ptr()) }
    }
    pub fn len(&self) -> u64 {
        self.desc.len
    }
    pub fn is_empty(&self) -> bool {
        self.desc.len == 0
    }

    /// Posts the mailbox naming the control region at `ctrl_offset..+ctrl_len` of this window:
    /// clears it, writes every host field, then `magic` last (release).
    pub fn post_mailbox(&self, ctrl_offset: u64, ctrl_len: u64, generation: u32) {
        let rec = Bootstrap::posted(ctrl_offset, ctrl_len, generation);
        let bytes = rec.as_bytes();
        let p = self.base().as_ptr();
        // SAFETY: the mapping is at least MAILBOX_LEN (>= 64) bytes (checked in `map`); volatile
        // byte stores into shared memory the firmware only reads until `magic` is set.
        unsafe {
            core::ptr::write_volatile(p.cast::<u32>(), 0);
            for (i, b) in bytes.iter().enumerate().skip(4) {
                core::ptr::write_volatile(p.add(i), *b);
            }
        }
        fence(Ordering::Release);
        // SAFETY: `magic` is the first, 4-byte aligned (page-aligned mapping) word.
        unsafe {
            core::ptr::write_volatile(
                p.add(field::MAGIC).cast::<u32>(),
                u32::from_le_bytes(bytes[0..4].try_into().unwrap_or_default()),
            )
        };
    }

    /// The firmware's fields of the mailbox, copied out.
    pub fn mailbox(&self) -> MailboxState {
        // SAFETY: 64 mapped bytes at the page-aligned base; a volatile copy (the firmware may
        // be writing; any bit pattern is a valid record), then only the copy is used.
        let raw: [u8; 64] = unsafe { core::ptr::read_volatile(self.base().as_ptr().cast()) };
        fence(Ordering::Acquire);
        let b = Bootstrap::read_from_bytes(&raw).unwrap_or_default();
        MailboxState {
            fw_state: b.fw_state.get(),
            fw_error: b.fw_error.get(),
            fw_generation: b.fw_generation.get(),
            heartbeat: b.heartbeat.get(),
            fw_version: b.fw_version.get(),
        }
    }

    /// Waits (polling, bounded) until the firmware attached `generation`, refused it, or the
    /// board went away.
    pub fn wait_attached(
        &self,
        generation: u32,
        board: &dyn BoardSeam,
        timeout: std::time::Duration,
    ) -> Result<MailboxState, SeamError> {
        let end = std::time::Instant::now() + timeout;
        let mut spins = 0u32;
        loop {
            let m = self.mailbox();
            match m.fw_state {
                fw_state::ATTACHED if m.fw_generation == generation => return Ok(m),
                fw_state::REFUSED => return Err(SeamError::Refused(m.fw_error)),
                fw_state::FAULTED => return Err(SeamError::Faulted(m.fw_error)),
                _ => {}
            }
            board.board_alive()?;
            if std::time::Instant::now() >= end {
                return Err(SeamError::NotAttached(timeout));
            }
            spins += 1;
            if spins < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
    }
}

/// The firmware's liveness as the host can tell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Attached, and the heartbeat moved since the last look.
    Running {
        heartbeat: u64,
    },
    /// Attached, but the heartbeat has not moved since the last look (stopped or hung).
    Stalled {
        heartbeat: u64,
    },
    /// Not attached (booting, or waiting for the host).
    Waiting,
    Refused(u32),
    Faulted(u32),
    /// The board says the firmware's container is gone.
    Gone(String),
}

/// Tracks liveness across looks (the heartbeat must move between two of them).
#[derive(Debug, Default)]
pub struct LivenessProbe {
    last: Option<u64>,
}

impl LivenessProbe {
    /// One look at the board and the mailbox.
    pub fn look(&mut self, window: &HostWindow, board: &dyn BoardSeam) -> Liveness {
        if let Err(e) = board.board_alive() {
            return Liveness::Gone(e.to_string());
        }
        let m = window.mailbox();
        match m.fw_state {
            fw_state::ATTACHED => {
                let moved = self.last != Some(m.heartbeat);
                self.last = Some(m.heartbeat);
                if moved {
                    Liveness::Running {
                        heartbeat: m.heartbeat,
                    }
                } else {
                    Liveness::Stalled {
                        heartbeat: m.heartbeat,
                    }
                }
            }
            fw_state::REFUSED => Liveness::Refused(m.fw_error),
            fw_state::FAULTED => Liveness::Faulted(m.fw_error),
            _ => Liveness::Waiting,
        }
    }
}
