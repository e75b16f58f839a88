//! `splitrx roce serve --verify` as a user runs it: the board's MAC linked over UDP to this
//! test, which plays a requester (a WRITE and a SEND taken from the committed soft-RoCE
//! captures, aimed at the served QP); the report must say which bytes were verified against
//! the link, and PASS.

use splitrx_harness::roce::{aim, parse, read_case};
use std::io::{BufRead, BufReader, Read};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::Duration;

fn request(name: &str, nth: usize) -> Vec<u8> {
    let path = format!(
        "{}/../../testdata/captures/roce__{name}.pcap",
        env!("CARGO_MANIFEST_DIR")
    );
    read_case(path).unwrap().requests[nth].frame.clone()
}

#[test]
fn serve_verify_checks_the_bytes_that_crossed_the_link() {
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let board = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_splitrx"))
        .args(["roce", "serve", "--verify", "--messages", "1"])
        .args(["--qpn", "0x31", "--remote-qpn", "0x77", "--rq-psn", "100"])
        .args(["--remote-ip", "10.1.16.62", "--duration", "30"])
        .arg("--listen")
        .arg(board.to_string())
        .arg("--peer")
        .arg(peer.local_addr().unwrap().to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run splitrx");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    // "responder on ADDR: RC QP 0x31 (expects PSN 100), ...\n  MR: rkey 0x.. va 0x.. len N"
    let (mut first, mut mr) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    out.read_line(&mut mr).unwrap();
    assert!(first.contains("RC QP 0x31 (expects PSN 100)"), "{first}");
    let w: Vec<&str> = mr.split_whitespace().collect();
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let (rkey, va) = (hex(w[2]) as u32, hex(w[4]));
    // A 64-byte RC WRITE ONLY (rdma_write_lat) at va + 64, then a 16-byte SEND ONLY
    // (rdma_cm's first SEND), PSNs 100 and 101.
    let write = aim(
        &request("rdma_write_lat", 0),
        0x31,
        100,
        Some((va + 64, rkey)),
    )
    .unwrap();
    let cm = read_case(format!(
        "{}/../../testdata/captures/roce__rdma_cm.pcap",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let send = cm
        .requests
        .iter()
        .find(|p| p.number == 4)
        .map(|p| aim(&p.frame, 0x31, 101, None).unwrap())
        .unwrap();
    for f in [&write, &send] {
        peer.send_to(f, board).unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = peer.recv_from(&mut buf).expect("an ACK");
        assert_eq!(parse(0, &buf[..n]).unwrap().opcode, 0x11, "ACK");
    }
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}:\n{rest}");
    assert!(
        rest.contains(
            "verified against the link: 2 requests (0 retransmitted, 0 with a bad ICRC), 1 WRITE packets / 64 bytes in the MR, 1 of 1 SEND messages / 16 bytes through the app's tokens, 0 READ responses / 0 bytes, 0 atomics / 0 ACKs, 1048576 MR bytes compared"
        ),
        "{rest}"
    );
    assert!(rest.contains("verification: PASS"), "{rest}");
    assert!(rest.contains("ledger audit: clean"), "{rest}");
}
