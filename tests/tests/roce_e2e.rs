//! RoCE scenarios, written once for every target (`SPLITRX_TARGETS`, default `sim`): each
//! captured soft-RoCE conversation replayed to the firmware's responder, with exact placement
//! and byte-exact responses (`splitrx_harness::roce`).

use splitrx_harness::roce::{aim, read_case, replay, ReplayReport, RoceCase};
use splitrx_shared::stats::DEV_NAMES;

fn case(name: &str) -> RoceCase {
    read_case(format!(
        "{}/../testdata/captures/roce__{name}.pcap",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
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

/// Packet `number` of capture `name`, aimed at QP `qpn` with PSN `psn` (and a RETH target).
fn aimed(name: &str, number: u64, qpn: u32, psn: u32, reth: Option<(u64, u32)>) -> Vec<u8> {
    let c = case(name);
    let p = c
        .requests
        .iter()
        .find(|p| p.number == number)
        .expect("the packet is a request of the capture");
    aim(&p.frame, qpn, psn, reth).unwrap()
}

/// `serve` on each target of `SPLITRX_TARGETS` (sim, qemu) whose MAC is linked to this test
/// over UDP (the framing QEMU's `-netdev dgram` uses): a WRITE and a SEND from a real socket
/// are answered with ACKs on that socket, the SEND lands in a page-pool buffer lent as a token
/// and given back, the audit is clean, and the link check finds the WRITE's 64 bytes in the
/// MR (every other MR byte still the pattern) and the SEND's 16 in the app's token.
#[test]
fn serve_over_a_udp_link() {
    for name in splitrx_harness::target_names_from_env() {
        serve_over_a_udp_link_on(&name);
    }
}

fn serve_over_a_udp_link_on(name: &str) {
    use splitrx_harness::interop::check_link;
    use splitrx_harness::roce::parse;
    use splitrx_harness::roce::{serve, ServeConfig};
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let board_addr = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let target =
        splitrx_harness::linked_target_by_name(name, board_addr, peer.local_addr().unwrap())
            .unwrap_or_else(|| panic!("unknown target `{name}`"));
    let cfg = ServeConfig {
        qpn: 0x31,
        remote_qpn: 0x77,
        rq_psn: 100,
        remote_gid: splitrx_host::roce::gid_from_ipv4([10, 1, 16, 62]),
        keep_bytes: true,
        ..ServeConfig::default()
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let t0 = Instant::now();
        serve(
            target.as_ref(),
            &cfg,
            |i| tx.send(i.clone()).unwrap(),
            |_, received| received >= 1 || t0.elapsed() > Duration::from_secs(20),
        )
    });
    let info = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the responder came up");
    // rdma_write_lat frame 28 is a 64-byte RC WRITE ONLY with AckReq; rdma_cm frame 4 a
    // 16-byte RC SEND ONLY with AckReq, both from 10.1.16.62.
    let first = case("rdma_write_lat").requests[0].number;
    let w = aimed(
        "rdma_write_lat",
        first,
        info.qpn,
        100,
        Some((info.va + 64, info.rkey)),
    );
    let s = aimed("rdma_cm", 4, info.qpn, 101, None);
    let mut acks = Vec::new();
    for f in [&w, &s] {
        peer.send_to(f, board_addr).unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = peer.recv_from(&mut buf).expect("an ACK from the responder");
        acks.push(parse(0, &buf[..n]).expect("a RoCEv2 packet"));
    }
    let rep = server.join().unwrap().unwrap();
    for (i, a) in acks.iter().enumerate() {
        assert_eq!(a.opcode, 0x11, "{name}: ACK");
        assert_eq!(a.dest_qp, 0x77);
        assert_eq!(a.psn, 100 + i as u32);
        assert_eq!(a.aeth.map(|x| x.1), Some(i as u32 + 1), "MSN");
        assert!(a.icrc_ok);
    }
    assert_eq!((rep.received, rep.received_bytes), (1, 16), "{name}");
    assert_eq!(rep.cqe_invalid, 0);
    assert_eq!(rep.audit_error, None);
    // The link as recorded: exactly our two requests in, our two ACKs out, the bytes placed.
    let b = rep.bytes.as_ref().unwrap();
    assert_eq!(
        (&b.link_rx[..], &b.link_tx.len()),
        (&[w, s][..], &2),
        "{name}"
    );
    let c = check_link(info.qpn, b);
    println!("serve over a UDP link on {name}: {c:?}");
    assert_eq!(c.errors, Vec::<String>::new(), "{name}");
    assert_eq!(
        (
            c.requests,
            c.write_packets,
            c.write_bytes,
            c.messages_matched,
            c.send_bytes
        ),
        (2, 1, 64, 1, 16),
        "{name}: {c:?}"
    );
    assert_eq!(c.mr_bytes_compared, info.mr_len);
    // What the check compares is what memory holds: the WRITE's payload at va + 64.
    assert_eq!(
        b.mr_final[64..128],
        parse(0, &b.link_rx[0]).unwrap().payload[..]
    );
    assert_ne!(b.mr_final[64..128], b.mr_initial[64..128]);
}
