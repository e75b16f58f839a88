//! Replaying a real capture (read with pcap-file, the independent reference) in a loop.
use std::path::PathBuf;

use splitrx_sim::replay::{Loops, MemFrames, Replay, ReplayConfig};

fn cap(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(name)
}

/// The frames of a classic pcap, read directly with pcap-file.
fn reference(name: &str) -> Vec<Vec<u8>> {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(cap(name)).unwrap()).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        v.push(p.unwrap().data.into_owned());
    }
    v
}

#[test]
fn replay_loops_a_capture_file() {
    let want = reference("roce__rping.pcap");
    let cfg = ReplayConfig {
        loops: Loops::Count(3),
        ..Default::default()
    };
    let mut r = Replay::new(MemFrames::new(want.clone()), cfg);
    let mut got = Vec::new();
    while let Some(f) = r.next_frame() {
        got.push(f.unwrap().to_vec());
    }
    assert_eq!(got.len(), 3 * want.len());
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f, &want[i % want.len()]);
    }
    let s = r.stats();
    assert_eq!(s.passes, 3);
    assert_eq!(
        s.bytes,
        3 * want.iter().map(|f| f.len() as u64).sum::<u64>()
    );
}
