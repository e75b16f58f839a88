//! What the oracle tests share: where the test data is, the fixtures (one per capture) and
//! reading a capture the way `splitrx inspect` does. Each oracle test uses a subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use splitrx_host::capture::{CaptureReader, Frame};

pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

/// The `.tsv` fixtures in `dir`, sorted; asserts there is one per capture of
/// `testdata/captures`.
pub fn fixtures(dir: &Path) -> Vec<PathBuf> {
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tsv"))
        .collect();
    fixtures.sort();
    let captures = std::fs::read_dir(testdata().join("captures"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".pcap") || name.ends_with(".pcapng")
        })
        .count();
    assert_eq!(
        fixtures.len(),
        captures,
        "one fixture per capture in {} (run scripts/gen-oracle.sh)",
        dir.display()
    );
    fixtures
}

/// The capture a fixture describes (its file stem) and its frames.
pub fn capture_of(fixture: &Path) -> (String, Vec<Frame>) {
    let name = fixture.file_stem().unwrap().to_string_lossy().into_owned();
    let frames = read_capture(&name, &testdata().join("captures").join(&name));
    (name, frames)
}

/// Every frame of the capture at `path` (`name` for messages).
pub fn read_capture(name: &str, path: &Path) -> Vec<Frame> {
    CaptureReader::open(path)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A fixture's `# frames: N` count and its data rows (comment and header lines skipped), each
/// split at tabs into exactly `columns` cells.
pub fn read_tsv(path: &Path, columns: usize) -> (u64, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut frames = None;
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("# frames: ") {
            frames = Some(n.parse().unwrap());
            continue;
        }
        if line.starts_with('#') || line.starts_with("frame\t") {
            continue;
        }
        let f: Vec<String> = line.split('\t').map(str::to_string).collect();
        assert_eq!(f.len(), columns, "{}: bad row {line:?}", path.display());
        rows.push(f);
    }
    let frames = frames.unwrap_or_else(|| panic!("{}: no '# frames:' line", path.display()));
    (frames, rows)
}
