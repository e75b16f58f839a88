//! `splitrx inspect` as a user runs it: the built binary on real captures and on bad files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(name)
}

fn splitrx(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_splitrx"))
        .arg("inspect")
        .args(args)
        .arg(file)
        .output()
        .expect("run splitrx")
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The last line of stdout, as printed (key order included).
fn last_line(out: &Output) -> String {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    text.lines().last().unwrap_or_default().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// The keys of a JSON frame record.
const KEYS: [&str; 14] = [
    "frame",
    "link",
    "len",
    "caplen",
    "class",
    "split",
    "reason",
    "payload_offset",
    "payload_len",
    "l3_offset",
    "l4_offset",
    "tunnel",
    "roce",
    "error",
];

#[test]
fn json_roce_write() {
    let out = splitrx(&["--json"], &capture("roce__rdma_write_bw.pcap"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty());
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 60);
    for (i, v) in lines.iter().enumerate() {
        let obj = v.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut want: Vec<&str> = KEYS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "frame {}", i + 1);
        assert_eq!(v["frame"], i as u64 + 1);
        assert_eq!(v["link"], "ethernet");
    }
    // Frame 22: RC RDMA WRITE First, BTH at 42 + RETH 16 -> payload at 70, 1024 bytes (tshark).
    let f = &lines[21];
    assert_eq!(f["class"], "roce");
    assert_eq!(f["split"], true);
    assert_eq!(f["reason"], "split");
    assert_eq!(f["len"], 1098);
    assert_eq!(f["caplen"], 1098);
    assert_eq!(f["payload_offset"], 70);
    assert_eq!(f["payload_len"], 1024);
    assert_eq!(f["l3_offset"], 14);
    assert_eq!(f["l4_offset"], 34);
    assert_eq!(f["tunnel"], Value::Null);
    assert_eq!(f["error"], Value::Null);
    let roce = f["roce"].as_object().unwrap();
    assert_eq!(roce.len(), 5);
    assert_eq!(roce["opcode"], 6);
    assert_eq!(roce["opcode_name"], "RC_RDMA_WRITE_FIRST");
    assert_eq!(roce["dest_qp"], 0x1b);
    assert_eq!(roce["psn"], 5_454_383);
    assert_eq!(roce["icrc_ok"], true);
    // Frame 1: TCP SYN, no payload -> recognised but not split.
    let f = &lines[0];
    assert_eq!(f["class"], "tcp");
    assert_eq!(f["split"], false);
    assert_eq!(f["reason"], "below_hds_thresh");
    assert_eq!(f["payload_offset"], 74);
    assert_eq!(f["payload_len"], 0);
    assert_eq!(f["roce"], Value::Null);
    // Every RoCE frame: ICRC good.
    let roce: Vec<&Value> = lines.iter().filter(|v| v["class"] == "roce").collect();
    assert_eq!(roce.len(), 20);
    assert!(roce.iter().all(|v| v["roce"]["icrc_ok"] == true));
}

#[test]
fn hds_thresh_and_no_icrc() {
    let file = capture("roce__rdma_write_bw.pcap");
    let all = json_lines(&splitrx(&["--json"], &file));
    let big = all
        .iter()
        .filter(|v| v["payload_len"].as_u64().is_some_and(|n| n > 1023))
        .count();
    assert_eq!(big, 10, "WRITE First and Middle carry 1024 bytes");
    let out = splitrx(&["--json", "--hds-thresh", "1023"], &file);
    let lines = json_lines(&out);
    let split = lines.iter().filter(|v| v["split"] == true).count();
    assert_eq!(split, big);
    assert!(lines
        .iter()
        .filter(|v| v["split"] == false && v["payload_len"].as_u64().is_some())
        .all(|v| v["reason"] == "below_hds_thresh"));
    let out = splitrx(&["--json", "--hds-thresh", "1024"], &file);
    assert!(json_lines(&out).iter().all(|v| v["split"] == false));
    let out = splitrx(&["--json", "--no-icrc"], &file);
    let lines = json_lines(&out);
    assert!(lines
        .iter()
        .filter(|v| v["class"] == "roce")
        .all(|v| v["roce"]["icrc_ok"].is_null()));
}

#[test]
fn converted_link_types() {
    // Linux SLL: offsets are of the converted frame (SLL 16 bytes -> Ethernet 14: tshark's
    // offset - 2). Frame 4 of mptcp-v1: tshark TCP payload at 92 -> 90, 7100 bytes.
    let lines = json_lines(&splitrx(&["--json"], &capture("tcpdump__mptcp-v1.pcap")));
    assert_eq!(lines.len(), 20);
    let f = &lines[3];
    assert_eq!(f["link"], "linux_sll");
    assert_eq!(f["payload_offset"], 90);
    assert_eq!(f["payload_len"], 7100);
    assert_eq!(f["l3_offset"], 14);
    assert_eq!(f["len"], f["caplen"]);
    // Raw IPv6: a 14-byte Ethernet header is prepended.
    let lines = json_lines(&splitrx(
        &["--json"],
        &capture("pcapplusplus__four_ipv6_http_streams.pcap"),
    ));
    assert_eq!(lines.len(), 81);
    assert!(lines
        .iter()
        .all(|v| v["link"] == "raw_ip" && v["class"] == "tcp"));
    assert!(lines
        .iter()
        .all(|v| v["l3_offset"] == 14 && v["l4_offset"] == 54));
    // pcapng with an Ethernet and an SLL interface; 39 snap-truncated SLL records are
    // malformed (the IP length exceeds what was captured), and the file still exits 0.
    let out = splitrx(&["--json"], &capture("pcapplusplus__pcapng-example.pcapng"));
    assert!(out.status.success());
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 159);
    let eth = lines.iter().filter(|v| v["link"] == "ethernet").count();
    let sll = lines.iter().filter(|v| v["link"] == "linux_sll").count();
    assert_eq!((eth, sll), (59, 100));
    let short: Vec<&Value> = lines
        .iter()
        .filter(|v| v["caplen"].as_u64() < v["len"].as_u64())
        .collect();
    assert_eq!(short.len(), 39);
    assert!(short.iter().all(|v| v["class"] == "malformed"
        && v["error"] == "ip length exceeds frame"
        && v["payload_offset"].is_null()));
}

#[test]
fn summary_table() {
    // Expected figures: the oracle fixture (tshark) of this capture gives tcp 40 frames, 28
    // with payload (1212 bytes), roce 20 frames, 15 with payload (15000 bytes); the captured
    // bytes are the sum of tshark's frame.cap_len.
    let out = splitrx(&[], &capture("roce__rdma_write_bw.pcap"));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with("roce__rdma_write_bw.pcap (pcap)"),
        "{text}"
    );
    for want in [
        "  frames        60 (20128 bytes captured)",
        "  link types    ethernet 60",
        "  hds_thresh    0",
        "  tcp               40        28        12           1212",
        "  roce              20        15         5          15000",
        "  malformed          0         0         0              0",
        "  total             60        43        17          16212",
        "    below_hds_thresh             17",
        "  malformed     0",
        "  ICRC          20 checked, 20 ok, 0 bad",
        "  tunnelled     0 (vxlan 0, geneve 0)",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn summary_counts_malformed_and_tunnels() {
    let out = splitrx(&[], &capture("tcpdump__ipv4_invalid_total_length.pcap"));
    assert!(
        out.status.success(),
        "malformed frames inside a good capture are not an error"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("\n  malformed     1\n    ip length exceeds frame              1\n"),
        "{text}"
    );
    let out = splitrx(&[], &capture("tcpdump__geneve.pcap"));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("\n  tunnelled     39 (vxlan 0, geneve 39)\n"),
        "{text}"
    );
}

// ---- bad input: one-line error, exit status 1, never a panic ----

fn pcap_header(linktype: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, linktype] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

fn pcap_record(data: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [1u32, 0, data.len() as u32, data.len() as u32] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn assert_fails(file: &Path, args: &[&str], want: &str) -> Output {
    let out = splitrx(args, file);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("splitrx: error: "), "{err}");
    assert!(err.trim_end().ends_with(want), "want {want:?}, got {err:?}");
    assert!(!err.contains("panicked"));
    out
}

#[test]
fn bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    std::fs::write(p("text"), "this is not a capture\n").unwrap();
    assert_fails(
        &p("text"),
        &[],
        "not a pcap or pcapng file (magic 0x74686973)",
    );

    std::fs::write(p("empty"), "").unwrap();
    assert_fails(&p("empty"), &[], "not a pcap or pcapng file (only 0 bytes)");

    assert_fails(
        &p("missing"),
        &[],
        "cannot read capture: No such file or directory (os error 2)",
    );

    // A pcap cut in the middle of its third record: two frames are reported, then the error.
    let frame =
        std::fs::read(capture("tcpdump__vxlan.pcap")).unwrap()[24 + 16..24 + 16 + 148].to_vec();
    let mut cut = pcap_header(1);
    for _ in 0..3 {
        cut.extend(pcap_record(&frame));
    }
    cut.truncate(cut.len() - 100);
    std::fs::write(p("cut.pcap"), &cut).unwrap();
    assert_fails(
        &p("cut.pcap"),
        &[],
        "truncated capture file: it ends inside record 3",
    );
    let out = assert_fails(&p("cut.pcap"), &["--json"], "it ends inside record 3");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["frame"], 2);
    assert_eq!(lines[1]["tunnel"], "vxlan");

    // Cut inside the file header.
    std::fs::write(p("hdr.pcap"), &pcap_header(1)[..20]).unwrap();
    assert_fails(
        &p("hdr.pcap"),
        &[],
        "truncated capture file: it ends inside record 0",
    );

    // Unsupported link type (147, LINKTYPE_USER0), pcap and pcapng.
    let mut user = pcap_header(147);
    user.extend(pcap_record(&frame));
    std::fs::write(p("user.pcap"), &user).unwrap();
    assert_fails(&p("user.pcap"), &[], "unsupported link type 147 (USER)");

    let mut ng = Vec::new();
    let block = |ng: &mut Vec<u8>, ty: u32, body: &[u8]| {
        let len = 12 + body.len() as u32;
        ng.extend_from_slice(&ty.to_le_bytes());
        ng.extend_from_slice(&len.to_le_bytes());
        ng.extend_from_slice(body);
        ng.extend_from_slice(&len.to_le_bytes());
    };
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    block(&mut ng, 0x0a0d_0d0a, &shb);
    let mut idb = 1u16.to_le_bytes().to_vec(); // interface 0: Ethernet
    idb.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    block(&mut ng, 1, &idb);
    let mut idb = 147u16.to_le_bytes().to_vec(); // interface 1: USER0
    idb.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    block(&mut ng, 1, &idb);
    let epb = |iface: u32| {
        let mut b = Vec::new();
        for x in [iface, 0, 0, frame.len() as u32, frame.len() as u32] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        b.extend_from_slice(&frame);
        b
    };
    block(&mut ng, 6, &epb(0));
    block(&mut ng, 6, &epb(1));
    std::fs::write(p("user.pcapng"), &ng).unwrap();
    // pcapng: the unsupported interface's records are skipped and reported (issue 9, defect
    // 6; it used to reject the whole file), the supported one's frames are inspected.
    let out = splitrx(&["--json"], &p("user.pcapng"));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "one frame, then the reader line");
    assert_eq!(lines[0]["frame"], 1);
    assert_eq!(lines[0]["class"], "other_ip");
    assert_eq!(lines[0]["tunnel"], "vxlan");
    assert_eq!(
        last_line(&out),
        r#"{"skipped_records":1,"skipped":[{"section":0,"interface":1,"linktype":147,"reason":"unsupported link type 147 (USER)","records":1}],"caplen_exceeds_len":0}"#
    );
    let out = splitrx(&[], &p("user.pcapng"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "  frames        1 (148 bytes captured)",
        "  skipped records 1",
        "    section 0 interface 1: unsupported link type 147 (USER) (1 records)",
        "  records with caplen > len (kept as captured): 0",
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "missing {want:?} in\n{text}"
        );
    }

    // An interface with the if_tzone option (pcap-file 2.0 called this valid file
    // truncated), and a record with caplen > len: read, kept as captured, counted.
    let mut ng = Vec::new();
    block(&mut ng, 0x0a0d_0d0a, &shb);
    let mut idb = 1u16.to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    idb.extend_from_slice(&[10, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    block(&mut ng, 1, &idb);
    block(&mut ng, 6, &epb(0));
    let mut over = epb(0);
    over[16..20].copy_from_slice(&100u32.to_le_bytes());
    block(&mut ng, 6, &over);
    std::fs::write(p("tzone.pcapng"), &ng).unwrap();
    let out = splitrx(&["--json"], &p("tzone.pcapng"));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3);
    assert_eq!(
        (&lines[1]["len"], &lines[1]["caplen"]),
        (&100.into(), &148.into())
    );
    assert_eq!(
        last_line(&out),
        r#"{"skipped_records":0,"skipped":[],"caplen_exceeds_len":1}"#
    );

    // Usage errors are clap's (exit 2).
    let out = Command::new(env!("CARGO_BIN_EXE_splitrx"))
        .args(["inspect"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
