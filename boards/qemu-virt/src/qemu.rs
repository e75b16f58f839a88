//! A powered-up qemu-virt board: QEMU running the firmware image, three shared-memory files and
//! the NIC's datagram socket.
//!
//! - The **windows** are files under `/dev/shm`, each an `ivshmem-plain` device of the VM
//!   (`memory-backend-file,share=on`), at the PCI slot `board.toml` names; the image assigns
//!   their BARs the bus addresses `board.toml` names. A BAR's size is a power of two, so each
//!   file is rounded up; the host window and GPU BAR the host uses are the requested lengths.
//! - The **wire** is a pair of Unix datagram sockets (QEMU's `-netdev dgram` with
//!   `type=unix`): one datagram is one Ethernet frame with its FCS. Unix rather than UDP
//!   sockets because a full receiver blocks the sender instead of dropping the datagram: the
//!   lossless runs must lose nothing between this process and the emulated NIC.
//! - The **board page** (a 4 KiB file) is where the image's board layer publishes its boot
//!   stage and MAC counters ([`PageState`]).
//! - The **log**: QEMU writes the UART to a file; [`crate::log::decode`] turns it into lines.
//!
//! QEMU is never left running: [`QemuHw`] kills it on drop (and [`QemuHw::stop`]), and the
//! child is started with `PR_SET_PDEATHSIG` = `SIGKILL` ([`crate::vm::Vm`]), so the kernel
//! kills it if the thread that started it (and with it, normally, this process) dies without
//! dropping it — a panic that aborts, a `kill -9`. QEMU also writes a pid file next to its
//! socket.

use crate::board::{BoardData, BoardDataError};
use crate::seam::QemuSeam;
pub(crate) use crate::vm::Vm;
use memmap2::{MmapOptions, MmapRaw};
use splitrx_host::seam::WindowDesc;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The board page's layout and the wire's limits, shared with the image.
pub mod page {
    include!("../contract.rs");
}

pub use page::QEMU_MAX_DATAGRAM;
/// The longest frame the wire carries intact: QEMU's buffer less the FCS. (The image counts a
/// datagram that filled the buffer as truncated.)
pub const MAX_FRAME: usize = QEMU_MAX_DATAGRAM - page::FCS_LEN;

/// The board page, read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageState {
    pub stage: u64,
    /// Frames the MAC took from the wire and the firmware released (placed or dropped).
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Datagrams whose FCS was wrong (dropped by the MAC, never seen by the firmware).
    pub fcs_errors: u64,
    /// Datagrams QEMU cut at its receive-buffer size (delivered without the FCS check).
    pub truncated: u64,
    pub tx_frames: u64,
    pub polls_busy: u64,
    pub polls_idle: u64,
    pub boot_error: u64,
}

/// How to start the board.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    /// Bytes the host window and the GPU BAR must have.
    pub host_len: u64,
    pub device_len: u64,
    /// How long QEMU may take to reach the firmware's "waiting for the host" stage.
    pub boot_timeout: Duration,
}

impl QemuConfig {
    pub fn new(host_len: u64, device_len: u64) -> QemuConfig {
        QemuConfig {
            host_len,
            device_len,
            boot_timeout: Duration::from_secs(20),
        }
    }
}

/// Why the board could not be started.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error(transparent)]
    Board(#[from] BoardDataError),
    #[error("the qemu-virt image {0} is missing: run `cargo xtask build-image --board qemu-virt`")]
    NoImage(PathBuf),
    #[error("{what} needs {need} bytes; board.toml leaves room for {max}")]
    TooLarge {
        what: &'static str,
        need: u64,
        max: u64,
    },
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(
        "could not start {0}: {1} (is QEMU installed? `cargo xtask test` installs qemu-system-arm)"
    )]
    Spawn(String, std::io::Error),
    #[error("the firmware did not boot: {0}")]
    Boot(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> QemuError {
    let what = what.into();
    move |e| QemuError::Io(what, e)
}

/// A file under `/dev/shm`, removed on drop.
#[derive(Debug)]
struct ShmFile {
    path: PathBuf,
    len: u64,
}

impl ShmFile {
    fn create(tag: &str, len: u64) -> Result<ShmFile, QemuError> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = PathBuf::from(format!(
            "/dev/shm/splitrx-qemu-{}-{n}-{tag}",
            std::process::id()
        ));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io(path.display().to_string()))?;
        f.set_len(len).map_err(io(path.display().to_string()))?;
        Ok(ShmFile { path, len })
    }
    fn unlink(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// What the board reports when stopped.
#[derive(Clone, Debug, Default)]
pub struct QemuReport {
    pub page: PageState,
    /// The firmware's log, decoded.
    pub log: Vec<String>,
    /// Why the board did not run to the end, if it did not.
    pub error: Option<String>,
}

/// A powered-up qemu-virt board (see the module docs).
#[derive(Debug)]
pub struct QemuHw {
    pub seam: Arc<QemuSeam>,
    vm: Arc<Vm>,
    files: Vec<ShmFile>,
    page: MmapRaw,
    sock: UnixDatagram,
    image: PathBuf,
    uart: PathBuf,
    // Sockets, the UART log, QEMU's stderr and pid file; removed on drop.
    _dir: tempfile::TempDir,
}

/// A power of two at least `len` (and a page).
fn bar_size(len: u64) -> u64 {
    len.max(4096).next_power_of_two()
}

impl QemuHw {
    /// Creates the files, starts QEMU with the image and waits (bounded) until the firmware
    /// waits for the host's mailbox.
    pub fn start(cfg: &QemuConfig) -> Result<QemuHw, QemuError> {
        let b = BoardData::load()?;
        let (hw, gw, pw) = (
            b.window("host_window")?,
            b.window("gpu_bar")?,
            b.window("board_page")?,
        );
        let sizes = [
            ("host window", bar_size(cfg.host_len), hw.len),
            ("GPU BAR", bar_size(cfg.device_len), gw.len),
            ("board page", 4096, pw.len),
        ];
        for (what, need, max) in sizes {
            if need > max {
                return Err(QemuError::TooLarge { what, need, max });
            }
        }
        let image = b.image();
        if !image.exists() {
            return Err(QemuError::NoImage(image));
        }
        let files = vec![
            ShmFile::create("host", sizes[0].1)?,
            ShmFile::create("gpubar", sizes[1].1)?,
            ShmFile::create("page", 4096)?,
        ];
        let dir = tempfile::Builder::new()
            .prefix("splitrx-qemu-")
            .tempdir()
            .map_err(io("temporary directory"))?;
        let ours = dir.path().join("wire.sock");
        let theirs = dir.path().join("nic.sock");
        let uart = dir.path().join("uart.defmt");
        let err_path = dir.path().join("qemu.stderr");
        let sock = UnixDatagram::bind(&ours).map_err(io(ours.display().to_string()))?;
        let mut c = Command::new(&b.qemu.binary);
        c.args(["-machine", &b.qemu.machine, "-cpu", &b.qemu.cpu]);
        c.args(["-m", &format!("{}M", b.qemu.memory_mib), "-smp", "1"]);
        c.args(["-nodefaults", "-display", "none", "-no-reboot"]);
        c.arg("-serial").arg(format!("file:{}", uart.display()));
        c.args(["-semihosting-config", "enable=on,target=native"]);
        c.arg("-pidfile").arg(dir.path().join("qemu.pid"));
        c.arg("-kernel").arg(&image);
        // Measurement only (BENCHMARKS.md, instructions per frame): a TCG plugin and where
        // its output goes.
        if let Some(p) = std::env::var_os("SPLITRX_QEMU_PLUGIN") {
            c.arg("-plugin")
                .arg(format!("file={}", p.to_string_lossy()));
            c.args(["-d", "plugin"]);
            if let Some(log) = std::env::var_os("SPLITRX_QEMU_PLUGIN_LOG") {
                c.arg("-D").arg(log);
            }
        }
        c.args(["-global", "virtio-mmio.force-legacy=false"]);
        c.arg("-netdev").arg(format!(
            "dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
            theirs.display(),
            ours.display()
        ));
        c.args(["-device", "virtio-net-device,netdev=n0"]);
        for (i, (f, w)) in files.iter().zip([hw, gw, pw]).enumerate() {
            c.arg("-object").arg(format!(
                "memory-backend-file,id=m{i},share=on,mem-path={},size={}",
                f.path.display(),
                f.len
            ));
            c.arg("-device")
                .arg(format!("ivshmem-plain,memdev=m{i},addr={:#x}", w.pci_slot));
        }
        let vm = Arc::new(
            Vm::spawn(&mut c, err_path).map_err(|e| QemuError::Spawn(b.qemu.binary.clone(), e))?,
        );
        let page = {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&files[2].path)
                .map_err(io("board page"))?;
            MmapOptions::new()
                .len(4096)
                .map_raw(&f)
                .map_err(io("mapping the board page"))?
        };
        let desc = |name: &str, f: &ShmFile, bus: u64, len: u64| WindowDesc {
            name: name.into(),
            path: f.path.clone(),
            file_offset: 0,
            bus_base: bus,
            len,
            host_readable: true,
        };
        let seam = Arc::new(QemuSeam::new(
            desc("host window", &files[0], hw.bus, cfg.host_len),
            desc("GPU BAR", &files[1], gw.bus, cfg.device_len),
            vm.clone(),
        ));
        let me = QemuHw {
            seam,
            vm,
            files,
            page,
            sock,
            image,
            uart,
            _dir: dir,
        };
        me.wait_booted(cfg.boot_timeout)?;
        me.sock
            .connect(&theirs)
            .map_err(io(theirs.display().to_string()))?;
        Ok(me)
    }

    fn wait_booted(&self, timeout: Duration) -> Result<(), QemuError> {
        let end = Instant::now() + timeout;
        loop {
            let p = self.page();
            match p.stage {
                page::STAGE_WAITING_HOST | page::STAGE_RUNNING => return Ok(()),
                page::STAGE_BOOT_FAILED | page::STAGE_FAULT => {
                    return Err(QemuError::Boot(format!(
                        "stage {}, boot error {}; log: {}",
                        p.stage,
                        p.boot_error,
                        self.log().join(" | ")
                    )))
                }
                _ => {}
            }
            if let Err(e) = self.vm.alive() {
                return Err(QemuError::Boot(format!(
                    "{e}; log: {}",
                    self.log().join(" | ")
                )));
            }
            if Instant::now() >= end {
                return Err(QemuError::Boot(format!(
                    "not waiting for the host after {timeout:?} (stage {}); log: {}",
                    p.stage,
                    self.log().join(" | ")
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The board page, read now.
    pub fn page(&self) -> PageState {
        let base = self.page.as_mut_ptr().cast::<u64>();
        let rd = |i: usize| {
            // SAFETY: `i` < 512 fields of the 4096-byte, page-aligned mapping; volatile reads
            // of words the image writes (any value is valid).
            u64::from_le(unsafe { core::ptr::read_volatile(base.add(i)) })
        };
        if rd(page::F_MAGIC) != page::MAGIC {
            return PageState::default();
        }
        PageState {
            stage: rd(page::F_STAGE),
            rx_frames: rd(page::F_RX_FRAMES),
            rx_bytes: rd(page::F_RX_BYTES),
            fcs_errors: rd(page::F_FCS_ERRORS),
            truncated: rd(page::F_TRUNCATED),
            tx_frames: rd(page::F_TX_FRAMES),
            polls_busy: rd(page::F_POLLS_BUSY),
            polls_idle: rd(page::F_POLLS_IDLE),
            boot_error: rd(page::F_BOOT_ERROR),
        }
    }

    /// A sender for the wire (its own handle on the socket).
    pub fn wire(&self) -> Result<WireTx, QemuError> {
        Ok(WireTx {
            sock: self.sock.try_clone().map_err(io("wire socket"))?,
            buf: Vec::with_capacity(16 << 10),
            rx_buf: vec![0; 70 << 10],
            received: 0,
            log: Default::default(),
            overflow: 0,
        })
    }

    /// `Ok` while QEMU runs.
    pub fn alive(&self) -> Result<(), String> {
        self.vm.alive()
    }

    /// The temporary directory with the sockets, the UART log and QEMU's pid file (removed
    /// on drop).
    pub fn work_dir(&self) -> &Path {
        self._dir.path()
    }

    /// QEMU's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.vm.pid()
    }

    /// Once the host has mapped the windows: removes the files' names (QEMU and the host keep
    /// their mappings), so nothing is left in `/dev/shm` whatever happens next.
    pub fn unlink(&self) {
        self.files.iter().for_each(ShmFile::unlink);
    }

    /// The firmware's log so far, decoded.
    pub fn log(&self) -> Vec<String> {
        let bytes = std::fs::read(&self.uart).unwrap_or_default();
        crate::log::decode(&self.image, &bytes).unwrap_or_else(|e| vec![e])
    }

    /// Stops QEMU (SIGTERM, then SIGKILL after 2 s: the firmware has no state worth a clean
    /// shutdown) and reports.
    pub fn stop(self) -> QemuReport {
        let page = self.page();
        let error = self.vm.alive().err();
        self.vm.kill(Duration::from_secs(2));
        let error = match (error, page.stage) {
            (Some(e), _) => Some(e),
            (None, page::STAGE_RUNNING) => None,
            (None, s) => Some(format!("the firmware did not run (board stage {s})")),
        };
        QemuReport {
            page,
            log: self.log(),
            error,
        }
    }
}

/// The host's end of the wire: sends frames (the FCS appended) and drains what the firmware
/// transmits.
#[derive(Debug)]
pub struct WireTx {
    sock: UnixDatagram,
    buf: Vec<u8>,
    rx_buf: Vec<u8>,
    /// Frames the firmware transmitted, with a good FCS.
    pub received: u64,
    /// Those frames (FCS stripped), oldest first, until taken ([`WireTx::take_received`]);
    /// at most [`WireTx::LOG_CAP`] are kept, the rest counted in `overflow`.
    log: std::collections::VecDeque<Vec<u8>>,
    pub overflow: u64,
}

impl WireTx {
    /// Sends `frame` as one datagram (frame + FCS); blocks while QEMU's socket is full.
    pub fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(frame);
        self.buf
            .extend_from_slice(&crc32fast::hash(frame).to_le_bytes());
        self.sock.send(&self.buf).map(|_| ())
    }

    /// Sends `datagram` as it is (no FCS appended): for tests of the MAC's FCS check.
    pub fn send_raw(&mut self, datagram: &[u8]) -> std::io::Result<()> {
        self.sock.send(datagram).map(|_| ())
    }

    /// Frames kept for [`WireTx::take_received`].
    pub const LOG_CAP: usize = 1 << 16;

    /// Takes the transmitted frames kept so far.
    pub fn take_received(&mut self) -> Vec<Vec<u8>> {
        self.log.drain(..).collect()
    }

    /// Reads (without blocking) every frame the firmware has transmitted so far.
    pub fn drain(&mut self) -> u64 {
        let mut n = 0;
        let _ = self.sock.set_nonblocking(true);
        while let Ok(len) = self.sock.recv(&mut self.rx_buf) {
            if len >= page::FCS_LEN {
                let (f, fcs) = self.rx_buf[..len].split_at(len - page::FCS_LEN);
                if crc32fast::hash(f).to_le_bytes() == fcs {
                    n += 1;
                    if self.log.len() < Self::LOG_CAP {
                        self.log.push_back(f.to_vec());
                    } else {
                        self.overflow += 1;
                    }
                }
            }
        }
        let _ = self.sock.set_nonblocking(false);
        self.received += n;
        n
    }
}
