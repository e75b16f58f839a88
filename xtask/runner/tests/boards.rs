//! Boards as data, as probe-rs sees them: every board's probe-rs target (built-in chip or the
//! board's own target description) loads and validates, agrees with the image's link map
//! (`memory.x`), and the built image's loadable data fits it, planned by probe-rs's loader
//! without a probe. The images come from `$SPLITRX_BOARD_IMAGES/<board>.elf` (`cargo xtask
//! test` builds them and sets it).

use splitrx_runner::probe;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (name, folder, probe) of every board with a probe-rs description.
fn probe_boards() -> Vec<(String, PathBuf, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(root().join("boards")).unwrap() {
        let dir = e.unwrap().path();
        let Ok(text) = std::fs::read_to_string(dir.join("board.toml")) else {
            continue;
        };
        let t: toml::Table = toml::from_str(&text).unwrap();
        let p = t["probe"].as_str().unwrap().to_string();
        if p != "none" {
            v.push((t["name"].as_str().unwrap().to_string(), dir, p));
        }
    }
    v.sort();
    v
}

fn image(board: &str) -> Vec<u8> {
    let dir = std::env::var_os("SPLITRX_BOARD_IMAGES")
        .expect("SPLITRX_BOARD_IMAGES is not set: run through `cargo xtask test`, which builds the board images");
    let p = Path::new(&dir).join(format!("{board}.elf"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn mps2_an500_is_described_by_its_own_target_description() {
    let b = probe_boards();
    let names: Vec<&str> = b
        .iter()
        .map(|(n, _, p)| (n.as_str(), p.as_str()))
        .map(|(n, _)| n)
        .collect();
    assert!(names.contains(&"mps2-an500"), "{names:?}");
    // probe-rs has no built-in MPS2 target (its generic Cortex-M7 has no memory map), hence
    // the shipped description.
    let builtin = probe_rs::config::Registry::from_builtin_families();
    assert!(builtin.get_target_by_name("MPS2-AN500").is_err());
    let m7 = builtin.get_target_by_name("Cortex-M7").unwrap();
    assert!(m7.memory_map.is_empty());
}

#[test]
fn every_board_description_loads_and_agrees_with_memory_x() {
    let boards = probe_boards();
    assert!(!boards.is_empty());
    for (name, dir, p) in boards {
        let (_, t) = probe::target(&dir, &p).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        assert!(!t.memory_map.is_empty(), "{name}");
        assert_eq!(t.cores.len(), 1, "{name}: one core");
        let Ok(mx) = std::fs::read_to_string(dir.join("memory.x")) else {
            continue;
        };
        for (region, origin, len) in probe::memory_x(&mx).unwrap() {
            let hit = t.memory_map.iter().any(|r| {
                let rr = r.address_range();
                rr.start == origin && rr.end - rr.start == len
            });
            assert!(
                hit,
                "{name}: memory.x region {region} ({origin:#x}, {len:#x}) is not a region of the probe-rs description"
            );
        }
    }
}

#[test]
fn every_board_image_fits_its_memory_map() {
    for (name, dir, p) in probe_boards() {
        let (_, t) = probe::target(&dir, &p).unwrap();
        let plan = probe::plan(&t, &image(&name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let names: Vec<&str> = plan.sections.iter().map(|(n, _)| n.as_str()).collect();
        for want in [".vector_table", ".text", ".rodata", ".bss"] {
            assert!(names.contains(&want), "{name}: {names:?}");
        }
        assert!(plan.loaded.iter().map(|s| s.len).sum::<u64>() > 100_000);
        if name == "mps2-an500" {
            // Loaded into SSRAM1 and booted from there; data and stack in SSRAM2/3.
            assert!(plan.boots_from_ram);
            assert!(
                plan.loaded.iter().all(|s| s.region == "ZBT_SSRAM1"),
                "{plan:?}"
            );
            let bss = &plan.sections.iter().find(|(n, _)| n == ".bss").unwrap().1;
            assert_eq!(bss.region, "ZBT_SSRAM23");
        }
    }
}

/// Sets the physical address of the image's first loadable segment (ELF32, little-endian).
fn move_first_segment(elf: &mut [u8], to: u32) {
    let rd32 = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let phoff = rd32(elf, 0x1c) as usize;
    let phentsize = u16::from_le_bytes([elf[0x2a], elf[0x2b]]) as usize;
    let phnum = u16::from_le_bytes([elf[0x2c], elf[0x2d]]) as usize;
    for i in 0..phnum {
        let h = phoff + i * phentsize;
        if rd32(elf, h) == 1 && rd32(elf, h + 16) > 0 {
            elf[h + 12..h + 16].copy_from_slice(&to.to_le_bytes());
            return;
        }
    }
    panic!("no loadable segment");
}

#[test]
fn data_outside_the_memory_map_is_refused_by_the_loader() {
    let dir = root().join("boards/mps2-an500");
    let (_, t) = probe::target(&dir, "mps2-an500.yaml").unwrap();
    let mut elf = image("mps2-an500");
    // 0x1000_0000 is in no region of the AN500 map.
    move_first_segment(&mut elf, 0x1000_0000);
    let e = format!("{:#}", probe::plan(&t, &elf).unwrap_err());
    assert!(
        e.contains("probe-rs cannot place") && e.contains("0x10000000"),
        "{e}"
    );
}

#[test]
fn a_broken_target_description_is_refused() {
    let dir = std::env::temp_dir().join(format!("splitrx-runner-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(root().join("boards/mps2-an500/mps2-an500.yaml")).unwrap();
    // A core the memory map does not name: probe-rs's validation refuses the family.
    let bad = good.replacen("  - name: main\n", "  - name: other\n", 1);
    assert_ne!(bad, good);
    std::fs::write(dir.join("bad.yaml"), bad).unwrap();
    let e = format!("{:#}", probe::target(&dir, "bad.yaml").err().unwrap());
    assert!(e.contains("probe-rs refused"), "{e}");
    // An unknown chip name.
    let e = format!("{:#}", probe::target(&dir, "NoSuchChip123").err().unwrap());
    assert!(e.contains("no target `NoSuchChip123`"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn memory_x_is_read_exactly() {
    let m = probe::memory_x(
        "/* c */ MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 4M /* x */\n  RAM : ORIGIN = 0x20000000, LENGTH = 64K\n}\n",
    )
    .unwrap();
    assert_eq!(
        m,
        vec![
            ("FLASH".to_string(), 0, 4 << 20),
            ("RAM".to_string(), 0x2000_0000, 64 << 10)
        ]
    );
    assert!(probe::memory_x("SECTIONS {}").is_err());
}
