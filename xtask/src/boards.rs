//! Boards as data: every `boards/*/board.toml`, read and validated. xtask takes the rustup
//! targets it needs from here instead of a hard-coded list, and `cargo xtask boards` prints and
//! checks them.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One memory window of a board's map.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub bus: u64,
    /// The bootstrap mailbox's bus address, on the window that holds it.
    pub mailbox: Option<u64>,
    /// Length, where the board fixes it (the sim sizes its windows per run).
    pub len: Option<u64>,
    /// PCI slot of the device whose BAR this window is (boards whose firmware enumerates PCI).
    pub pci_slot: Option<u8>,
    pub what: String,
}

/// A board's `[qemu]` table: the emulator and machine (other keys are the board's own, read
/// by its code).
#[derive(Debug, serde::Deserialize)]
pub struct Qemu {
    /// `qemu-system-arm`, `qemu-system-aarch64`.
    pub binary: String,
    /// QEMU's `-M` machine.
    pub machine: String,
    /// QEMU's `-cpu` (the machine's default when absent).
    pub cpu: Option<String>,
    /// QEMU's `-m`, in MiB (the machine's default when absent).
    pub memory_mib: Option<u32>,
    /// The board's own keys (fixed addresses of the machine, the image path, ...).
    #[serde(flatten)]
    pub extra: toml::Table,
}

/// A `board.toml`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    pub name: String,
    pub description: String,
    /// A rustup target triple, or `host`.
    pub target: String,
    /// How the harness drives it: `in-process`, `qemu`, `probe`, or `none`.
    pub runner: String,
    /// probe-rs chip name, a path to a target description, or `none`.
    pub probe: String,
    /// Firmware capacity profile: a `cap-*` feature of the firmware crate.
    pub capacities: String,
    #[serde(default)]
    pub memory: BTreeMap<String, Window>,
    /// How QEMU runs the board's images (boards with runner `qemu`).
    pub qemu: Option<Qemu>,
    #[serde(skip)]
    pub dir: PathBuf,
}

const RUNNERS: &[&str] = &["in-process", "qemu", "probe", "none"];

impl Board {
    /// Checks what can be checked without hardware: the name matches the folder, the runner
    /// is known, the target is `host` or a triple, windows do not overlap, exactly one window
    /// holds the mailbox (when there are windows) and at its start.
    pub fn validate(&self) -> Result<()> {
        let folder = self.dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if self.name != folder {
            bail!("board `{}` lives in folder `{folder}`", self.name);
        }
        if !RUNNERS.contains(&self.runner.as_str()) {
            bail!(
                "board `{}`: runner `{}` is not one of {RUNNERS:?}",
                self.name,
                self.runner
            );
        }
        if self.target != "host" && self.target.split('-').count() < 3 {
            bail!(
                "board `{}`: target `{}` is not a target triple",
                self.name,
                self.target
            );
        }
        if (self.runner == "qemu") != self.qemu.is_some() {
            bail!(
                "board `{}`: a [qemu] table (binary, machine) goes with runner `qemu`, and only with it",
                self.name
            );
        }
        if self.probe.ends_with(".yaml") && !self.dir.join(&self.probe).is_file() {
            bail!(
                "board `{}`: probe-rs target description `{}` is not in the board folder",
                self.name,
                self.probe
            );
        }
        let fw = root_of(&self.dir).join("firmware/Cargo.toml");
        let fw: toml::Value = toml::from_str(&std::fs::read_to_string(&fw)?)?;
        let is_profile = fw
            .get("features")
            .and_then(|f| f.get(&self.capacities))
            .is_some()
            && self.capacities.starts_with("cap-");
        if !is_profile {
            bail!(
                "board `{}`: capacities `{}` is not a firmware capacity feature (cap-*)",
                self.name,
                self.capacities
            );
        }
        let w: Vec<(&String, &Window)> = self.memory.iter().collect();
        for (i, (a, wa)) in w.iter().enumerate() {
            for (b, wb) in &w[i + 1..] {
                let (ea, eb) = (wa.bus + wa.len.unwrap_or(1), wb.bus + wb.len.unwrap_or(1));
                if wa.bus < eb && wb.bus < ea {
                    bail!("board `{}`: windows `{a}` and `{b}` overlap", self.name);
                }
            }
        }
        if self.runner == "qemu" {
            let q = self.qemu.as_ref().with_context(|| {
                format!("board `{}`: runner qemu needs a [qemu] table", self.name)
            })?;
            if q.cpu.is_none() || q.memory_mib.is_none() {
                bail!("board `{}`: [qemu] needs `cpu` and `memory_mib`", self.name);
            }
            let pci = w.iter().any(|(_, x)| x.pci_slot.is_some());
            if pci && !q.extra.contains_key("image") {
                bail!("board `{}`: [qemu] has no `image`", self.name);
            }
            for (n, x) in w.iter().filter(|_| pci) {
                let len = x.len.unwrap_or(0);
                if x.pci_slot.is_none() || !len.is_power_of_two() || x.bus % len != 0 {
                    bail!(
                        "board `{}`: window `{n}` must be a PCI BAR: a pci_slot and a power-of-two `len` the bus address is aligned to",
                        self.name
                    );
                }
            }
        }
        let mailboxes: Vec<_> = w.iter().filter(|(_, x)| x.mailbox.is_some()).collect();
        if !w.is_empty() && mailboxes.len() != 1 {
            bail!(
                "board `{}`: exactly one window must hold the bootstrap mailbox",
                self.name
            );
        }
        if let Some((n, x)) = mailboxes.first() {
            if x.mailbox != Some(x.bus) {
                bail!(
                    "board `{}`: the mailbox must be at the start of `{n}`",
                    self.name
                );
            }
        }
        Ok(())
    }
}

/// The project root of a board folder (`<root>/boards/<name>`).
fn root_of(board_dir: &Path) -> &Path {
    board_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(board_dir)
}

/// Every board under `root/boards`, sorted by name, each validated.
pub fn load(root: &Path) -> Result<Vec<Board>> {
    let mut out = Vec::new();
    let dir = root.join("boards");
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let d = e?.path();
        let f = d.join("board.toml");
        if !f.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&f)?;
        let mut b: Board =
            toml::from_str(&text).with_context(|| format!("parsing {}", f.display()))?;
        b.dir = d;
        b.validate().with_context(|| format!("{}", f.display()))?;
        out.push(b);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if out.is_empty() {
        bail!("no boards/*/board.toml found");
    }
    Ok(out)
}

/// The cross targets the boards need.
pub fn cross_targets(boards: &[Board]) -> Vec<String> {
    let mut t: Vec<String> = boards
        .iter()
        .filter(|b| b.target != "host")
        .map(|b| b.target.clone())
        .collect();
    t.sort();
    t.dedup();
    t
}

/// `cargo xtask boards`: one line per board and window.
pub fn print(boards: &[Board]) {
    for b in boards {
        println!(
            "{:<12} target {:<24} runner {:<10} probe {:<8} capacities {:<9} {}",
            b.name, b.target, b.runner, b.probe, b.capacities, b.description
        );
        for (n, w) in &b.memory {
            let mb = w
                .mailbox
                .map_or(String::new(), |m| format!(", mailbox {m:#x}"));
            println!("{:<12}   {n:<12} bus {:#x}{mb}: {}", "", w.bus, w.what);
        }
    }
}
