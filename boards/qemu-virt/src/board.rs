//! `boards/qemu-virt/board.toml`, as the host side needs it. The image's build script reads the
//! same file, so the addresses the firmware assigns and the ones the host uses cannot differ.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One window of the memory map: an ivshmem device's BAR.
#[derive(Clone, Debug, Deserialize)]
pub struct Window {
    pub bus: u64,
    /// Largest BAR the board's map leaves room for.
    pub len: u64,
    pub pci_slot: u8,
}

/// The machine QEMU emulates.
#[derive(Clone, Debug, Deserialize)]
pub struct Machine {
    pub binary: String,
    pub machine: String,
    pub cpu: String,
    pub memory_mib: u32,
    /// The image, relative to the board folder.
    pub image: PathBuf,
}

/// What the host side reads of `board.toml`.
#[derive(Clone, Debug, Deserialize)]
pub struct BoardData {
    pub name: String,
    pub memory: BTreeMap<String, Window>,
    pub qemu: Machine,
}

/// Errors reading the board data.
#[derive(Debug, thiserror::Error)]
pub enum BoardDataError {
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    #[error("parsing {0}: {1}")]
    Parse(String, toml::de::Error),
    #[error("board.toml has no `{0}` window")]
    Missing(&'static str),
}

impl BoardData {
    /// The board folder (`boards/qemu-virt`).
    pub fn dir() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    /// Reads `board.toml` of this board.
    pub fn load() -> Result<BoardData, BoardDataError> {
        let path = Self::dir().join("board.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| BoardDataError::Read(path.display().to_string(), e))?;
        toml::from_str(&text).map_err(|e| BoardDataError::Parse(path.display().to_string(), e))
    }

    /// The window named `name` (`host_window`, `gpu_bar`, `board_page`).
    pub fn window(&self, name: &'static str) -> Result<&Window, BoardDataError> {
        self.memory.get(name).ok_or(BoardDataError::Missing(name))
    }

    /// The image: `SPLITRX_QEMU_IMAGE`, or where `cargo xtask build-image` leaves it.
    pub fn image(&self) -> PathBuf {
        std::env::var_os("SPLITRX_QEMU_IMAGE")
            .map(PathBuf::from)
            .unwrap_or_else(|| Self::dir().join(&self.qemu.image))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_toml_names_three_disjoint_naturally_aligned_windows() {
        let b = BoardData::load().unwrap();
        assert_eq!(b.name, "qemu-virt");
        let mut slots = Vec::new();
        for name in ["host_window", "gpu_bar", "board_page"] {
            let w = b.window(name).unwrap();
            assert!(w.len.is_power_of_two(), "{name}");
            assert_eq!(
                w.bus % w.len,
                0,
                "{name}: a BAR of `len` bytes must be aligned"
            );
            slots.push(w.pci_slot);
        }
        slots.sort();
        slots.dedup();
        assert_eq!(slots.len(), 3, "one PCI slot per window");
        let h = b.window("host_window").unwrap();
        let g = b.window("gpu_bar").unwrap();
        assert!(h.bus + h.len <= g.bus || g.bus + g.len <= h.bus);
    }
}
