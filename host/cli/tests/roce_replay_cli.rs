//! `splitrx roce replay` as a user runs it, on captures crafted from the committed soft-RoCE
//! captures (bad ICRCs, VLAN tags, IPv6, opcodes and frames the responder does not serve,
//! truncated and empty records, pcapng) and on every file of `testdata/captures`: exit code,
//! exact verdict rows, counters and JSON fields.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::DataLink;
use serde_json::Value;
use splitrx_harness::craft;

fn capture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(name)
}

/// The frames of a committed capture, numbered from 1.
fn frames(name: &str) -> Vec<Vec<u8>> {
    splitrx_host::capture::read_all(capture(name))
        .unwrap()
        .into_iter()
        .map(|f| f.data)
        .collect()
}

fn write_pcap(dir: &tempfile::TempDir, name: &str, frames: &[Vec<u8>]) -> PathBuf {
    let path = dir.path().join(name);
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: 65535,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(std::fs::File::create(&path).unwrap(), header).unwrap();
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(&PcapPacket::new(
            Duration::from_micros(i as u64),
            f.len() as u32,
            f,
        ))
        .unwrap();
    }
    path
}

fn replay(file: &Path, json: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splitrx"));
    c.args(["roce", "replay"]);
    if json {
        c.arg("--json");
    }
    c.arg(file).output().expect("run splitrx")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The verdict rows: (frame, dir) -> (ok, detail).
fn rows(o: &Output) -> BTreeMap<(u64, String), (bool, String)> {
    let mut m = BTreeMap::new();
    for l in stdout(o).lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let Some(Ok(frame)) = w.first().map(|f| f.parse::<u64>()) else {
            continue;
        };
        let at = w.iter().position(|x| *x == "ok" || *x == "FAIL").unwrap();
        let detail = w[at + 1..].join(" ");
        let prev = m.insert((frame, w[1].to_string()), (w[at] == "ok", detail));
        assert!(prev.is_none(), "two rows for frame {frame} {}", w[1]);
    }
    m
}

fn row(r: &BTreeMap<(u64, String), (bool, String)>, frame: u64, dir: &str) -> (bool, String) {
    r.get(&(frame, dir.to_string()))
        .cloned()
        .unwrap_or_else(|| panic!("no row {frame} {dir}"))
}

/// The printed counter `name` (0 when not printed: only non-zero ones are).
fn counter(o: &Output, name: &str) -> u64 {
    stdout(o)
        .lines()
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 2 && w[0] == name).then(|| w[1].parse().unwrap())
        })
        .unwrap_or(0)
}

fn json(o: &Output) -> Value {
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// Every request row is ok and says `placed exactly`/`served`, every out row matches.
fn all_exact(r: &BTreeMap<(u64, String), (bool, String)>) {
    for ((f, dir), (ok, d)) in r {
        assert!(*ok, "frame {f} {dir}: {d}");
        match dir.as_str() {
            "in" => assert!(d == "placed exactly" || d == "served", "frame {f}: {d}"),
            "out" => assert_eq!(d, "matches the captured response", "frame {f}"),
            _ => panic!("row {f} {dir}: {d}"),
        }
    }
}

const BAD: &str = "bad ICRC in the capture: dropped, counted (rx_icrc_errors)";

/// UC SEND ONLY x5 with the ICRC of frames 14 and 18 corrupted: both dropped and counted, the
/// other three land in the first three receive WQEs; PASS.
#[test]
fn bad_icrc_uc_sends_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = frames("roce__pingpong_uc.pcap");
    for n in [14, 18] {
        f[n - 1] = craft::corrupt_icrc(&f[n - 1]).unwrap();
        assert!(!craft::icrc_ok(&f[n - 1]));
    }
    let path = write_pcap(&dir, "uc_bad_icrc.pcap", &f);
    let o = replay(&path, false);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r = rows(&o);
    assert_eq!(r.len(), 5);
    for n in [12, 16, 20] {
        assert_eq!(row(&r, n, "in"), (true, "placed exactly".into()));
    }
    for n in [14, 18] {
        assert_eq!(row(&r, n, "in"), (true, BAD.into()));
    }
    assert!(stdout(&o).contains("5 requests played (2 with a bad ICRC)"));
    assert_eq!(counter(&o, "rcvd_pkts"), 5);
    assert_eq!(counter(&o, "rx_icrc_errors"), 2);
    assert_eq!(counter(&o, "recv_wqe_completed"), 3);
    assert!(stdout(&o).ends_with("verdict: PASS (0 of 5 checks failed)\n"));
    let j = json(&replay(&path, true));
    assert_eq!(j["pass"], true);
    assert_eq!(j["bad_icrc"], serde_json::json!([14, 18]));
    assert_eq!(j["counters"]["rx_icrc_errors"], 2);
}

/// RC WRITEs with the ICRC of frame 31 (WRITE_MIDDLE, PSN 5454390) corrupted: the firmware
/// drops it, NAKs the next request (PSN sequence error, PSN 5454390, MSN 2: two WRITEs done),
/// drops the seven after it (the capture's requester never retransmits), and sends none of the
/// ACKs the capture's responder sent for them; the first two messages and frame 30 land.
#[test]
fn bad_icrc_rc_write_breaks_the_conversation_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = frames("roce__rdma_write_bw.pcap");
    f[30] = craft::corrupt_icrc(&f[30]).unwrap();
    let path = write_pcap(&dir, "rc_bad_icrc.pcap", &f);
    let o = replay(&path, false);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r = rows(&o);
    assert_eq!(r.len(), 21);
    for n in [22, 23, 24, 26, 27, 28, 30] {
        assert_eq!(row(&r, n, "in"), (true, "placed exactly".into()), "{n}");
    }
    for n in [25, 29] {
        assert_eq!(
            row(&r, n, "out"),
            (true, "matches the captured response".into())
        );
    }
    assert_eq!(row(&r, 31, "in"), (true, BAD.into()));
    assert_eq!(
        row(&r, 32, "in"),
        (
            true,
            "out of sequence after frame 31's loss (bad ICRC): NAKed (PSN sequence error, PSN 5454390), counted (out_of_seq_request)".into()
        )
    );
    assert_eq!(
        row(&r, 32, "out"),
        (
            true,
            "the NAK (PSN sequence error) frame 32's loss calls for".into()
        )
    );
    for n in 33..=39 {
        if n == 35 {
            continue;
        }
        assert_eq!(
            row(&r, n, "in"),
            (true, "out of sequence after frame 31's loss (bad ICRC): dropped, counted (out_of_seq_request); the captured requester never retransmits".into()),
            "{n}"
        );
    }
    for (n, answers) in [(35, 32), (40, 36), (41, 39)] {
        let (ok, d) = row(&r, n, "out");
        assert!(ok);
        assert!(
            d.starts_with(&format!(
                "not sent here: it answers frame {answers}, which the firmware must not execute (out of sequence after frame 31's loss"
            )),
            "{n}: {d}"
        );
    }
    assert_eq!(counter(&o, "rx_icrc_errors"), 1);
    assert_eq!(counter(&o, "out_of_seq_request"), 7);
    assert_eq!(counter(&o, "sent_pkts"), 3);
    // The third WRITE started (frame 30 landed): counted when its FIRST executed.
    assert_eq!(counter(&o, "rx_write_requests"), 3);
    assert!(stdout(&o).ends_with("verdict: PASS (0 of 21 checks failed)\n"));
}

/// Every frame of an RC WRITE session with an 802.1Q tag (VID 100, PCP 3): the ICRC does not
/// cover Ethernet, so every packet is good; exact placement, exact responses; PASS.
#[test]
fn vlan_tagged_session_passes() {
    let dir = tempfile::tempdir().unwrap();
    let f: Vec<Vec<u8>> = frames("roce__rdma_write_bw.pcap")
        .iter()
        .map(|f| craft::insert_vlan(f, 0x6064).unwrap())
        .collect();
    assert!(craft::icrc_ok(&f[21]));
    let path = write_pcap(&dir, "vlan.pcap", &f);
    let o = replay(&path, false);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r = rows(&o);
    assert_eq!(r.len(), 20);
    all_exact(&r);
    assert_eq!(counter(&o, "rcvd_pkts"), 15);
    assert_eq!(counter(&o, "sent_pkts"), 5);
    assert_eq!(counter(&o, "rx_icrc_errors"), 0);
}

/// The RoCE frames rewritten as RoCEv2 over IPv6 by `gid`, ICRC recomputed with the IPv6 masks
/// (the non-RoCE frames dropped).
fn ipv6_of(name: &str, gid: impl Fn([u8; 4]) -> [u8; 16]) -> Vec<Vec<u8>> {
    frames(name)
        .iter()
        .filter_map(|f| craft::to_ipv6(f, 0x12345, &gid))
        .collect()
}

fn real_gid(a: [u8; 4]) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[..2].copy_from_slice(&[0xfd, 0x00]);
    g[12..].copy_from_slice(&a);
    g
}

/// RC WRITE over IPv6 with IPv4-mapped GIDs and with real (ULA) GIDs: the firmware's
/// responder serves IPv6 and answers over IPv6; exact placement and responses; PASS.
#[test]
fn ipv6_rc_write_passes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, gid) in [
        ("mapped", craft::mapped_gid as fn([u8; 4]) -> [u8; 16]),
        ("ula", real_gid),
    ] {
        let f = ipv6_of("roce__rdma_write_bw.pcap", gid);
        assert_eq!(f.len(), 20);
        assert!(f.iter().all(|f| craft::icrc_ok(f)));
        let path = write_pcap(&dir, &format!("ipv6_{name}.pcap"), &f);
        let o = replay(&path, false);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        let want = if name == "mapped" {
            "responder 10.1.16.61 "
        } else {
            "responder fd00::a01:103d "
        };
        assert!(stdout(&o).contains(want), "{}", stdout(&o));
        let r = rows(&o);
        assert_eq!(r.len(), 20);
        all_exact(&r);
        assert_eq!(counter(&o, "sent_pkts"), 5);
    }
}

/// UD and RC SEND, READ and ATOMIC over IPv6 (real GIDs): PASS, the UD GRH area holds the
/// IPv6 header.
#[test]
fn ipv6_ud_send_read_atomic_pass() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "roce__pingpong_ud.pcap",
        "roce__rdma_send_bw.pcap",
        "roce__rdma_read_bw.pcap",
        "roce__rdma_atomic_bw.pcap",
    ] {
        let f = ipv6_of(name, real_gid);
        let path = write_pcap(&dir, name, &f);
        let o = replay(&path, false);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        all_exact(&rows(&o));
    }
}

/// A WRITE session with frames the responder does not serve mixed in: an ARP request, a
/// request turned into a reserved opcode (0x15), an ACK and a CNP aimed at the responder, a
/// BTH cut short, an RD opcode, a 0-length record, plus the capture's own TCP. Each is a
/// `not used:` line naming why; the WRITEs still PASS.
#[test]
fn unserved_frames_are_named_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = frames("roce__rdma_write_bw.pcap");
    let req = f[21].clone();
    let extra = vec![
        craft::arp_request([2, 0, 0, 0, 0, 1], [10, 1, 16, 62], [10, 1, 16, 61]),
        craft::with_opcode(&req, 0x15).unwrap(),
        craft::with_opcode(&req, 0x11).unwrap(),
        craft::with_opcode(&req, 0x81).unwrap(),
        craft::truncate_bth(&req, 6).unwrap(),
        craft::with_opcode(&req, 0x4a).unwrap(),
        Vec::new(),
    ];
    // Frames 61..=67.
    f.extend(extra);
    let path = write_pcap(&dir, "mixed.pcap", &f);
    let o = replay(&path, false);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    all_exact(&rows(&o));
    let out = stdout(&o);
    for line in [
        "not used: frames 1-21,42-60 (40): not RoCEv2 (tcp)",
        "not used: frames 61 (1): not RoCEv2 (non_ip)",
        "not used: frames 62 (1): RoCEv2 (UDP 4791) with a malformed BTH (opcode 0x15: unknown or reserved, or headers beyond the datagram)",
        "not used: frames 63 (1): ACK: a response to the responder's address (to a request of its own; the responder makes none)",
        "not used: frames 64 (1): opcode 0x81 (CNP): not a request the responder serves",
        "not used: frames 65 (1): RoCEv2 (UDP 4791) too short for a BTH and an ICRC (6 bytes after UDP)",
        "not used: frames 66 (1): RoCEv2 of the RD transport (opcode 0x4a): not served by the responder",
        "not used: frames 67 (1): an empty record",
    ] {
        assert!(out.contains(&format!("{line}\n")), "{line}\n{out}");
    }
    let j = json(&replay(&path, true));
    assert_eq!(j["pass"], true);
    assert_eq!(j["report"]["skipped"].as_array().unwrap().len(), 47);
    assert!(j["report"]["skipped"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!([67, "an empty record"])));
}

/// rping: the client's application rewrites the buffer the server READs between iterations
/// (off the wire), so the READ responses after the first cannot be predicted: their payload is
/// not compared, the rest is, and the verdict says so; PASS.
#[test]
fn rping_read_source_changes() {
    let o = replay(&capture("roce__rping.pcap"), false);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let r = rows(&o);
    assert_eq!(
        row(&r, 7, "out"),
        (true, "matches the captured response".into())
    );
    for n in [19, 31, 43, 55] {
        let (ok, d) = row(&r, n, "out");
        assert!(ok);
        assert!(d.starts_with("payload not compared: the capture's responder application rewrote the READ source (rkey "), "{d}");
    }
    assert!(
        stdout(&o).contains(
            "not used: frames 1-3,64-65 (5): QP1 (CM MAD): not served by the responder\n"
        ),
        "{}",
        stdout(&o)
    );
}

/// The CM MADs on QP1 (rdma_cm, rping) are named, not played.
#[test]
fn cm_mads_on_qp1_are_named() {
    let o = replay(&capture("roce__rdma_cm.pcap"), false);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains(
        "not used: frames 1-3,24-25,30,91-96 (12): QP1 (CM MAD): not served by the responder\n"
    ));
}

/// No RoCE at all, an empty capture, a file that is no capture: exit 1, one clear line.
#[test]
fn files_without_requests_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_pcap(&dir, "empty.pcap", &[]);
    let tcp: Vec<Vec<u8>> = frames("roce__rdma_write_bw.pcap")[..21].to_vec();
    let tcp = write_pcap(&dir, "tcp.pcap", &tcp);
    let qp1: Vec<Vec<u8>> = frames("roce__rping.pcap")[..3].to_vec();
    let qp1 = write_pcap(&dir, "qp1.pcap", &qp1);
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"not a capture at all").unwrap();
    for (path, msg) in [
        (&empty, "the capture holds no frame".to_string()),
        (
            &tcp,
            "no well-formed RoCEv2 packet (UDP port 4791) in its 21 frames: nothing to replay"
                .into(),
        ),
        (
            &qp1,
            "its 3 RoCEv2 packets hold no request to a QP other than QP1 (the CM's): nothing to replay".into(),
        ),
        (&junk, "not a pcap or pcapng file".into()),
    ] {
        for json in [false, true] {
            let o = replay(path, json);
            assert_eq!(o.status.code(), Some(1), "{}", path.display());
            assert!(o.stdout.is_empty());
            let e = stderr(&o);
            assert!(
                e.starts_with(&format!("splitrx: error: {}: {msg}", path.display())),
                "{e}"
            );
            assert_eq!(e.lines().count(), 1);
        }
    }
}

/// The same WRITE session as pcapng: PASS.
#[test]
fn pcapng_capture_passes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("write.pcapng");
    let mut w = PcapNgWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: 65535,
        options: vec![],
    })
    .unwrap();
    for (i, f) in frames("roce__rdma_write_bw.pcap").iter().enumerate() {
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_micros(i as u64),
            original_len: f.len() as u32,
            data: Cow::Borrowed(f),
            options: vec![],
        })
        .unwrap();
    }
    drop(w);
    let o = replay(&path, false);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let r = rows(&o);
    assert_eq!(r.len(), 20);
    all_exact(&r);
}

/// Every file of `testdata/captures`, text and JSON: no panic; exit 0 with `verdict: PASS`, 3
/// with `verdict: FAIL` and the failed rows marked, or 1 with one `splitrx: error:` line.
#[test]
fn every_committed_file_gives_a_clean_verdict() {
    let dir = capture("");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut codes = BTreeMap::new();
    for p in &names {
        for json in [false, true] {
            let o = replay(p, json);
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let code = o.status.code();
            let e = stderr(&o);
            assert!(!e.contains("panicked"), "{name}: {e}");
            match code {
                Some(0) | Some(3) if json => {
                    assert_eq!(json_pass(&o), code == Some(0), "{name}");
                }
                Some(0) => assert!(stdout(&o).contains("\nverdict: PASS ("), "{name}"),
                Some(3) => {
                    assert!(stdout(&o).contains("\nverdict: FAIL ("), "{name}");
                    assert!(rows(&o).values().any(|(ok, _)| !ok), "{name}");
                }
                Some(1) => {
                    assert!(o.stdout.is_empty(), "{name}");
                    assert!(e.starts_with("splitrx: error: "), "{name}: {e}");
                    assert_eq!(e.lines().count(), 1, "{name}: {e}");
                }
                c => panic!("{name}: exit {c:?}: {e}"),
            }
            if !json {
                codes.insert(name, code.unwrap());
            }
        }
    }
    // The soft-RoCE captures replay (rping: see `rping_read_source_changes`); the others hold
    // no RoCE.
    for (name, code) in &codes {
        let want = match name.as_str() {
            n if n.starts_with("roce__") => 0,
            _ => 1,
        };
        assert_eq!(*code, want, "{name}");
    }
}

fn json_pass(o: &Output) -> bool {
    json(o)["pass"].as_bool().unwrap()
}
