//! The rxe guest: a real Linux soft-RoCE (rxe) peer, in a QEMU x86_64 VM (TCG), for interop.
//!
//! The guest (Debian's kernel and an initramfs with busybox, rdma-core's tools, perftest,
//! iproute2 and the modules rxe needs) is built from Debian packages by `cargo xtask rxe-guest`
//! (`xtask/src/rxe_guest.rs`) and cached under `<target>/rxe-guest/`. [`RxeGuest`] boots it
//! with two NICs:
//!
//! - **the RoCE link**: virtio-net on `-netdev dgram` over UDP on loopback (QEMU at
//!   `127.0.0.1:roce_port`, the peer at `127.0.0.1:peer_port`), one datagram per Ethernet
//!   frame: the framing of the sim board's `DgramWire` and `splitrx roce serve`. The guest's
//!   `/init` runs `rdma link add rxe0 type rxe netdev <it>`;
//! - **out of band**: virtio-net on `-netdev user` (slirp) for TCP between the guest's tools
//!   and host processes: the guest reaches the host's loopback at `10.0.2.2`, the host reaches
//!   the guest through `hostfwd` ports. The guest has no default route: it reaches the host and
//!   nothing beyond.
//!
//! Executables built on this host (Debian 12 x86_64: the guest's glibc and libibverbs) go in
//! through fw_cfg too ([`GuestConfig::files`], `opt/splitrx/bin/<name>`); `/init` copies each to
//! `/usr/bin/<name>` before the script runs.
//!
//! The test script goes in through fw_cfg (`opt/splitrx/script`, any size); `/init` prints its
//! output between markers on the serial console (a file QEMU writes) and powers off. Boot and
//! script are bounded; QEMU is killed on drop and by the kernel if this process dies
//! ([`splitrx_qemu_virt::vm::Vm`]); every error carries the end of the console log.
//!
//! Finding the guest ([`GuestImage::locate`]): `SPLITRX_RXE_GUEST_UNAVAILABLE=<reason>` says
//! there is none (tests then skip, printing the reason); `SPLITRX_RXE_GUEST=<dir>` names one
//! (`cargo xtask test` sets it); otherwise the cache's `current` guest, or an error saying how
//! to build it.

use splitrx_qemu_virt::vm::Vm;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Names a built guest's directory.
pub const ENV_GUEST: &str = "SPLITRX_RXE_GUEST";
/// Says the guest is unavailable here, and why: the only way its tests skip.
pub const ENV_UNAVAILABLE: &str = "SPLITRX_RXE_GUEST_UNAVAILABLE";
/// The serial console's markers (`xtask/src/rxe_guest_init.sh`).
const MARK: &str = "SPLITRX-RXE: ";
/// The IPv4 address rxe0's netdev gets unless told otherwise.
pub const DEFAULT_ROCE_IP: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 2);

/// Why the guest could not be found, booted or run.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("no rxe guest at {0}: build it with `cargo xtask rxe-guest` (or set {ENV_GUEST})")]
    NotBuilt(PathBuf),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error(
        "could not start {0}: {1} (`cargo xtask rxe-guest` installs qemu-system-x86 from \
         bookworm-backports)"
    )]
    Spawn(String, std::io::Error),
    #[error("the guest's setup failed: {why}\n--- console (end) ---\n{console}")]
    Setup { why: String, console: String },
    #[error("{what} after {after:?}\n--- console (end) ---\n{console}")]
    Timeout {
        what: &'static str,
        after: Duration,
        console: String,
    },
    #[error("{0}\n--- console (end) ---\n{1}")]
    Exited(String, String),
}

/// A built guest: its kernel, initramfs and manifest (`xtask/src/rxe_guest.rs`).
#[derive(Clone, Debug)]
pub struct GuestImage {
    pub dir: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// What it was built from and how long that took (`build_secs`, `packages`, `modules`,
    /// `tools`, `libraries`, `kernel_version`, `initrd_bytes`).
    pub manifest: serde_json::Value,
}

/// What [`GuestImage::locate`] found.
#[derive(Debug)]
pub enum Availability {
    Ready(GuestImage),
    /// Explicitly unavailable (`SPLITRX_RXE_GUEST_UNAVAILABLE`), with the reason given.
    Unavailable(String),
}

impl GuestImage {
    /// The guest in `dir`.
    pub fn open(dir: &Path) -> Result<GuestImage, GuestError> {
        let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initrd.img"));
        let manifest = std::fs::read_to_string(dir.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        match manifest {
            Some(manifest) if kernel.is_file() && initrd.is_file() => Ok(GuestImage {
                dir: dir.to_path_buf(),
                kernel,
                initrd,
                manifest,
            }),
            _ => Err(GuestError::NotBuilt(dir.to_path_buf())),
        }
    }

    /// Finds the guest (see the module docs).
    pub fn locate() -> Result<Availability, GuestError> {
        if let Some(why) = std::env::var_os(ENV_UNAVAILABLE) {
            return Ok(Availability::Unavailable(
                why.to_string_lossy().into_owned(),
            ));
        }
        if let Some(dir) = std::env::var_os(ENV_GUEST) {
            return GuestImage::open(Path::new(&dir)).map(Availability::Ready);
        }
        let cache = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
            .join("rxe-guest");
        let current = std::fs::read_to_string(cache.join("current"))
            .map_err(|_| GuestError::NotBuilt(cache.clone()))?;
        let key = current.lines().next().unwrap_or("").trim();
        GuestImage::open(&cache.join(key)).map(Availability::Ready)
    }

    /// Seconds the (uncached) build took.
    pub fn build_secs(&self) -> Option<f64> {
        self.manifest.get("build_secs")?.as_f64()
    }
}

/// How to boot the guest.
#[derive(Clone, Debug)]
pub struct GuestConfig {
    pub qemu: String,
    pub memory_mib: u32,
    /// QEMU's end of the RoCE link (UDP on 127.0.0.1).
    pub roce_port: u16,
    /// The peer's end of the RoCE link (UDP on 127.0.0.1): where the guest's frames go.
    pub peer_port: u16,
    pub roce_mac: [u8; 6],
    pub roce_ip: Ipv4Addr,
    pub roce_prefix: u8,
    /// The RoCE NIC's MTU (the kernel's default, 1500, if `None`).
    pub roce_mtu: Option<u32>,
    /// Permanent neighbour entries on the RoCE NIC (IPv4 -> MAC): a peer that answers no ARP
    /// (the firmware's responder) is reachable all the same.
    pub neighbors: Vec<(Ipv4Addr, [u8; 6])>,
    pub oob_mac: [u8; 6],
    /// `hostfwd`: host TCP port on 127.0.0.1 -> guest TCP port.
    pub host_forwards: Vec<(u16, u16)>,
    /// Executables for the guest: (name, file on this host), installed as `/usr/bin/<name>`
    /// (fw_cfg `opt/splitrx/bin/<name>`; names up to 40 bytes).
    pub files: Vec<(String, PathBuf)>,
    /// From QEMU's start to `/init`'s READY (rxe0 ACTIVE with its IPv4 GID).
    pub boot_timeout: Duration,
    /// From READY to the script's exit.
    pub script_timeout: Duration,
}

impl GuestConfig {
    /// A guest on `10.50.0.2/24` whose RoCE link is QEMU at `roce_port`, the peer at
    /// `peer_port`.
    pub fn new(roce_port: u16, peer_port: u16) -> GuestConfig {
        GuestConfig {
            qemu: "qemu-system-x86_64".into(),
            memory_mib: 512,
            roce_port,
            peer_port,
            roce_mac: [0x52, 0x54, 0x00, 0x52, 0x58, 0x01],
            roce_ip: DEFAULT_ROCE_IP,
            roce_prefix: 24,
            roce_mtu: None,
            neighbors: Vec::new(),
            oob_mac: [0x52, 0x54, 0x00, 0x52, 0x58, 0x02],
            host_forwards: Vec::new(),
            files: Vec::new(),
            boot_timeout: Duration::from_secs(90),
            script_timeout: Duration::from_secs(120),
        }
    }

    /// [`GuestConfig::new`] on two UDP ports free now.
    pub fn with_free_ports() -> Result<GuestConfig, GuestError> {
        Ok(GuestConfig::new(free_udp_port()?, free_udp_port()?))
    }

    /// The kernel command line `/init` reads.
    fn cmdline(&self) -> String {
        let mut s = format!(
            "console=ttyS0 panic=-1 loglevel=4 splitrx.roce_mac={} splitrx.roce_ip={}/{} \
             splitrx.oob_mac={} splitrx.oob_ip=10.0.2.15/24",
            mac(&self.roce_mac),
            self.roce_ip,
            self.roce_prefix,
            mac(&self.oob_mac)
        );
        if let Some(m) = self.roce_mtu {
            s.push_str(&format!(" splitrx.roce_mtu={m}"));
        }
        if !self.neighbors.is_empty() {
            let n: Vec<String> = self
                .neighbors
                .iter()
                .map(|(ip, m)| format!("{ip}@{}", mac(m)))
                .collect();
            s.push_str(&format!(" splitrx.neigh={}", n.join(",")));
        }
        s
    }
}

fn mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A UDP port on 127.0.0.1 that nobody holds now.
pub fn free_udp_port() -> Result<u16, GuestError> {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| GuestError::Io("binding a UDP port".into(), e))
}

/// The guest reached READY.
#[derive(Clone, Debug)]
pub struct Ready {
    /// From QEMU's start to READY, on this host's clock.
    pub boot: Duration,
    /// The guest's uptime at READY (its kernel's clock).
    pub guest_uptime: f64,
    /// The guest's name for the RoCE NIC (rxe0's netdev).
    pub roce_netdev: String,
}

/// A finished script.
#[derive(Clone, Debug)]
pub struct ScriptRun {
    pub ready: Ready,
    /// The script's exit status.
    pub status: i32,
    /// What it printed (stdout and stderr), between the markers.
    pub output: String,
    /// From READY to the script's exit.
    pub run: Duration,
    /// The whole serial console.
    pub console: String,
}

/// A booted (or booting) rxe guest; QEMU is killed on drop.
#[derive(Debug)]
pub struct RxeGuest {
    vm: Vm,
    console: PathBuf,
    cfg: GuestConfig,
    started: Instant,
    ready: Option<Ready>,
    // The script, the console log and QEMU's stderr; removed on drop.
    _dir: tempfile::TempDir,
}

impl RxeGuest {
    /// Starts QEMU with `script` for `/init` to run once rxe0 is up.
    pub fn start(
        img: &GuestImage,
        cfg: &GuestConfig,
        script: &str,
    ) -> Result<RxeGuest, GuestError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |e| GuestError::Io(what, e)
        };
        let dir = tempfile::Builder::new()
            .prefix("splitrx-rxe-")
            .tempdir()
            .map_err(io("temporary directory"))?;
        let script_path = dir.path().join("script.sh");
        std::fs::write(&script_path, script).map_err(io("writing the script"))?;
        let console = dir.path().join("console.log");
        let mut c = Command::new(&cfg.qemu);
        c.args(["-machine", "q35", "-accel", "tcg", "-smp", "1"]);
        c.args(["-m", &format!("{}M", cfg.memory_mib)]);
        c.args(["-nodefaults", "-display", "none", "-no-reboot"]);
        c.arg("-serial").arg(format!("file:{}", console.display()));
        c.arg("-kernel").arg(&img.kernel);
        c.arg("-initrd").arg(&img.initrd);
        c.arg("-append").arg(cfg.cmdline());
        c.arg("-netdev").arg(format!(
            "dgram,id=roce,local.type=inet,local.host=127.0.0.1,local.port={},\
             remote.type=inet,remote.host=127.0.0.1,remote.port={}",
            cfg.roce_port, cfg.peer_port
        ));
        c.arg("-device").arg(format!(
            "virtio-net-pci,netdev=roce,mac={},addr=0x3",
            mac(&cfg.roce_mac)
        ));
        let mut user = "user,id=oob".to_string();
        for (h, g) in &cfg.host_forwards {
            user.push_str(&format!(",hostfwd=tcp:127.0.0.1:{h}-:{g}"));
        }
        c.arg("-netdev").arg(user);
        c.arg("-device").arg(format!(
            "virtio-net-pci,netdev=oob,mac={},addr=0x4",
            mac(&cfg.oob_mac)
        ));
        c.arg("-fw_cfg").arg(format!(
            "name=opt/splitrx/script,file={}",
            script_path.display()
        ));
        for (name, path) in &cfg.files {
            if name.is_empty() || name.len() > 40 || name.contains('/') || name.contains(',') {
                return Err(GuestError::Io(
                    format!("guest file name {name:?}"),
                    std::io::Error::from(std::io::ErrorKind::InvalidInput),
                ));
            }
            if !path.is_file() {
                return Err(GuestError::Io(
                    format!("guest file {}", path.display()),
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            }
            c.arg("-fw_cfg").arg(format!(
                "name=opt/splitrx/bin/{name},file={}",
                path.display()
            ));
        }
        let vm = Vm::spawn(&mut c, dir.path().join("qemu.stderr"))
            .map_err(|e| GuestError::Spawn(cfg.qemu.clone(), e))?;
        Ok(RxeGuest {
            vm,
            console,
            cfg: cfg.clone(),
            started: Instant::now(),
            ready: None,
            _dir: dir,
        })
    }

    /// Boots, runs `script`, and returns its output (see [`RxeGuest::wait_exit`]).
    pub fn run(img: &GuestImage, cfg: &GuestConfig, script: &str) -> Result<ScriptRun, GuestError> {
        RxeGuest::start(img, cfg, script)?.wait_exit()
    }

    /// The serial console so far.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).into_owned()
    }

    /// The console's last 60 lines, for messages.
    fn console_tail(&self) -> String {
        let text = self.console();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// QEMU's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.vm.pid()
    }

    /// The line after `MARK` that starts with `word`, if the console has it.
    fn marker(&self, word: &str) -> Option<String> {
        self.console().lines().find_map(|l| {
            l.find(MARK)
                .map(|i| &l[i + MARK.len()..])
                .and_then(|m| m.strip_prefix(word))
                .map(|r| r.trim().to_string())
        })
    }

    /// Polls until `found` gives a value, QEMU exits, the guest's setup fails or `timeout`
    /// (counted from `from`) passes.
    fn wait_for<T>(
        &self,
        what: &'static str,
        from: Instant,
        timeout: Duration,
        mut found: impl FnMut(&RxeGuest) -> Option<T>,
    ) -> Result<T, GuestError> {
        loop {
            if let Some(v) = found(self) {
                return Ok(v);
            }
            if let Some(why) = self.marker("SETUP-FAILED") {
                return Err(GuestError::Setup {
                    why,
                    console: self.console_tail(),
                });
            }
            if let Err(e) = self.vm.alive() {
                // The console may have been completed as QEMU exited.
                if let Some(v) = found(self) {
                    return Ok(v);
                }
                return Err(GuestError::Exited(
                    format!("{e} before {what}"),
                    self.console_tail(),
                ));
            }
            if from.elapsed() >= timeout {
                return Err(GuestError::Timeout {
                    what,
                    after: timeout,
                    console: self.console_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded by the boot timeout) for `/init`'s READY: rxe0 ACTIVE with its IPv4 GID.
    pub fn wait_ready(&mut self) -> Result<Ready, GuestError> {
        if let Some(r) = &self.ready {
            return Ok(r.clone());
        }
        let r = self.wait_for(
            "the guest was ready (rxe0 ACTIVE)",
            self.started,
            self.cfg.boot_timeout,
            |g| g.marker("READY"),
        )?;
        let mut words = r.split_whitespace();
        let ready = Ready {
            boot: self.started.elapsed(),
            guest_uptime: words.next().and_then(|u| u.parse().ok()).unwrap_or(0.0),
            roce_netdev: words
                .find_map(|w| w.strip_prefix("roce="))
                .unwrap_or("")
                .to_string(),
        };
        self.ready = Some(ready.clone());
        Ok(ready)
    }

    /// Waits (bounded by the script timeout, from READY) for the script to finish, then for
    /// QEMU to exit (the guest powers off; killed after 10 s).
    pub fn wait_exit(mut self) -> Result<ScriptRun, GuestError> {
        let ready = self.wait_ready()?;
        let t = Instant::now();
        let status = self.wait_for("the script finished", t, self.cfg.script_timeout, |g| {
            g.marker("EXIT").and_then(|s| s.parse::<i32>().ok())
        })?;
        let run = t.elapsed();
        let end = Instant::now() + Duration::from_secs(10);
        while matches!(self.vm.status(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.vm.kill(Duration::ZERO);
        let console = self.console();
        let begin = format!("{MARK}BEGIN");
        let exit = format!("{MARK}EXIT");
        let output = console
            .split_once(&begin)
            .map(|(_, r)| r.split_once(&exit).map_or(r, |(o, _)| o))
            .unwrap_or("")
            .trim_start_matches(['\r', '\n'])
            .replace("\r\n", "\n");
        Ok(ScriptRun {
            ready,
            status,
            output,
            run,
            console,
        })
    }
}
