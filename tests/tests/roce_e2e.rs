//! RoCE scenarios, written once for every target (`SPLITRX_TARGETS`, default `sim`): each
//! captured soft-RoCE conversation replayed to the firmware's responder, with exact placement
//! and byte-exact responses (`splitrx_harness::roce`).

use splitrx_harness::roce::{replay, ReplayReport, RoceCase};
use splitrx_host::capture::read_all;
use splitrx_shared::stats::DEV_NAMES;

fn case(name: &str) -> RoceCase {
    let path = format!(
        "{}/../testdata/captures/roce__{name}.pcap",
        env!("CARGO_MANIFEST_DIR")
    );
    let frames: Vec<(u64, Vec<u8>)> = read_all(&path)
        .unwrap()
        .into_iter()
        .map(|f| (f.number, f.data))
        .collect();
    RoceCase::from_frames(&frames).unwrap()
}

fn counter(r: &ReplayReport, name: &str) -> u64 {
    let i = DEV_NAMES.iter().position(|n| *n == name).unwrap();
    r.nic_counters[i]
}

/// Replays capture `name` on every target; every verdict must pass. Returns the reports.
fn replay_all(name: &str) -> Vec<ReplayReport> {
    let c = case(name);
    let mut out = Vec::new();
    for t in splitrx_harness::targets_from_env() {
        let r = replay(t.as_ref(), &c).unwrap_or_else(|e| panic!("{name} on {}: {e}", t.name()));
        let fails: Vec<String> = r
            .failures()
            .iter()
            .map(|v| {
                format!(
                    "frame {} {} op {:#x} psn {}: {}",
                    v.frame, v.direction, v.opcode, v.psn, v.detail
                )
            })
            .collect();
        assert!(
            fails.is_empty(),
            "{name} on {}:\n{}",
            t.name(),
            fails.join("\n")
        );
        assert_eq!(
            counter(&r, "rcvd_pkts"),
            c.requests.len() as u64,
            "{name}: every request reached the responder"
        );
        assert_eq!(
            counter(&r, "sent_pkts"),
            c.expected.len() as u64,
            "{name}: exactly the captured responses"
        );
        assert_eq!(counter(&r, "rx_icrc_errors"), 0);
        out.push(r);
    }
    out
}

#[test]
fn rdma_write_bw() {
    for r in replay_all("rdma_write_bw") {
        assert_eq!(counter(&r, "rx_write_requests"), 5);
    }
}

#[test]
fn rdma_write_lat() {
    replay_all("rdma_write_lat");
}

#[test]
fn rdma_send_bw() {
    for r in replay_all("rdma_send_bw") {
        assert_eq!(counter(&r, "recv_wqe_completed"), 5);
    }
}

#[test]
fn rdma_read_bw() {
    for r in replay_all("rdma_read_bw") {
        assert_eq!(counter(&r, "rx_read_requests"), 5);
    }
}

#[test]
fn rdma_read_lat() {
    replay_all("rdma_read_lat");
}

#[test]
fn rdma_atomic_bw() {
    for r in replay_all("rdma_atomic_bw") {
        assert_eq!(counter(&r, "rx_atomic_requests"), 5);
    }
}

#[test]
fn pingpong_uc() {
    replay_all("pingpong_uc");
}

#[test]
fn pingpong_ud() {
    replay_all("pingpong_ud");
}

#[test]
fn nccl_ring2_node0() {
    replay_all("nccl_ring2_node0");
}
