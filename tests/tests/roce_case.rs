//! What the RoCE oracle takes from each captured conversation (no board needed): the
//! responder, its QPs and MRs, the requests played and the responses expected.

use splitrx_harness::roce::{gid_str, read_case, RoceCase};
use splitrx_host::roce::QpType;

fn case(name: &str) -> RoceCase {
    read_case(format!(
        "{}/../testdata/captures/roce__{name}.pcap",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn summary(c: &RoceCase) -> String {
    let mut s = format!(
        "responder {} requests {} expected {} skipped {}\n",
        gid_str(&c.responder),
        c.requests.len(),
        c.expected.len(),
        c.skipped.len()
    );
    for q in &c.qps {
        s += &format!(
            "qp {:#x} {:?} dest {:#x} psn {} mtu {} qkey {:#x} msgs {:?}\n",
            q.qpn,
            q.qp_type,
            q.dest_qpn,
            q.first_psn,
            q.mtu,
            q.qkey,
            q.messages
                .iter()
                .map(|m| (m.0.len(), m.1))
                .collect::<Vec<_>>()
        );
    }
    for m in &c.mrs {
        s += &format!(
            "mr rkey {:#x} iova {:#x} len {} access {:#x} preload {:?} writes {}\n",
            m.rkey,
            m.iova,
            m.len,
            m.access,
            m.preload
                .iter()
                .map(|p| (p.0, p.1.len()))
                .collect::<Vec<_>>(),
            m.writes.len()
        );
    }
    s
}

#[test]
fn every_roce_capture_yields_a_case() {
    for name in [
        "rdma_write_bw",
        "rdma_write_lat",
        "rdma_send_bw",
        "rdma_read_bw",
        "rdma_read_lat",
        "rdma_atomic_bw",
        "pingpong_uc",
        "pingpong_ud",
        "nccl_ring2_node0",
        "rping",
        "rdma_cm",
    ] {
        println!("== {name}\n{}", summary(&case(name)));
    }
}

#[test]
fn write_bw_case_is_exact() {
    let c = case("rdma_write_bw");
    assert_eq!(gid_str(&c.responder), "10.1.16.61");
    assert_eq!((c.requests.len(), c.expected.len()), (15, 5));
    assert_eq!(c.qps.len(), 1);
    let q = &c.qps[0];
    assert_eq!(
        (q.qpn, q.qp_type, q.dest_qpn, q.first_psn, q.mtu),
        (0x1b, QpType::Rc, 0x1d, 5454383, 1024)
    );
    assert!(q.messages.is_empty(), "plain WRITEs consume no receive WQE");
    assert_eq!(c.mrs.len(), 1);
    let m = &c.mrs[0];
    assert_eq!((m.rkey, m.iova, m.len), (0xce6, 0x5e6b89b96000, 4096));
    assert_eq!(m.writes.len(), 15);
    assert_eq!(m.writes[2].1, 0x5e6b89b96000 + 2048);
}

#[test]
fn atomic_and_read_cases_preload_what_the_responder_returned() {
    let c = case("rdma_atomic_bw");
    assert_eq!(c.mrs.len(), 1);
    assert_eq!(c.mrs[0].preload[0].1, 4179805055496059590u64.to_le_bytes());
    let c = case("rdma_read_bw");
    assert_eq!(
        c.mrs[0].preload.len(),
        1,
        "every READ reads the same 3000 bytes"
    );
    assert_eq!(c.mrs[0].preload[0].1.len(), 3000);
    let c = case("pingpong_ud");
    assert_eq!(c.qps[0].qp_type, QpType::Ud);
    assert_eq!(c.qps[0].qkey, 0x1111_1111);
}
