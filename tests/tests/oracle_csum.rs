//! Checksum offload against tshark's checksum validation of real captures.
//!
//! `testdata/oracle/csum/<capture>.tsv` holds, per frame, the checksum statuses tshark
//! reports with validation on and the verdict they imply by splitrx's rule
//! (`scripts/oracle_csum.py`, run by `scripts/gen-oracle.sh`). This test reads every capture
//! through the capture reader `splitrx inspect` uses, runs `split()` and the shared verifier
//! (`splitrx_shared::csum::verify`, what the firmware runs on every placed frame), and requires
//! the same verdict on every frame, except for the intentional differences below, each of
//! which is recognised by rule and counted exactly:
//!
//! * **tunnels splitrx does not open** (GRE, IP-in-IP, MPLS, ...): tshark validates the IP
//!   and TCP/UDP headers inside, splitrx stops at the outer header (class `other_ip` /
//!   `non_ip`), so it verifies nothing there (`none`) where tshark may say `ok` or `bad`
//!   (GrePackets frames 5-7: `ok`; tcpreplay__test frame 11, IPv4 in MPLS with a wrong
//!   header checksum: `bad`);
//! * **frames splitrx classifies malformed** whose TCP/UDP tshark still validates (e.g. a UDP
//!   length that disagrees with the IP length): splitrx does not follow a malformed frame's
//!   L4 (`none` unless an IPv4 header checksum is wrong): tcp-malformed frames 1-2 (TCP data
//!   offset past the segment; tshark: `bad`), ipv4_invalid_total_length frame 1 (IP length
//!   past the frame; tshark validates the UDP inside what was captured: `ok`).
//!
//! Captures taken on a sending host carry offloaded (wrong) checksums: tshark calls them bad,
//! and so must the verifier.

use std::collections::BTreeMap;
use std::path::Path;

mod oracle_util;
use oracle_util::{capture_of, fixtures, read_tsv, testdata};

use splitrx_shared::csum::{verify, CsumVerdict};
use splitrx_shared::split::{split, FrameClass, SplitConfig, SplitResult};

struct Row {
    frame: u64,
    protocols: String,
    l4: String,
    verdict: String,
}

fn load(path: &Path) -> (u64, Vec<Row>) {
    let (frames, rows) = read_tsv(path, 7);
    let rows = rows
        .into_iter()
        .map(|f| Row {
            frame: f[0].parse().unwrap(),
            protocols: f[1].clone(),
            l4: f[5].clone(),
            verdict: f[6].clone(),
        })
        .collect();
    (frames, rows)
}

fn verdict_str(v: CsumVerdict) -> &'static str {
    match v {
        CsumVerdict::Ok => "ok",
        CsumVerdict::Bad => "bad",
        CsumVerdict::None => "none",
    }
}

/// The intentional difference a disagreement falls under, if any (module docs).
fn intentional(row: &Row, r: &SplitResult, ours: CsumVerdict) -> Option<&'static str> {
    if ours == CsumVerdict::Bad {
        return None; // never: a checksum splitrx finds wrong must be wrong for tshark too
    }
    let layers: Vec<&str> = row.protocols.split(':').collect();
    let ip_layers = layers
        .iter()
        .filter(|p| matches!(**p, "ip" | "ipv6"))
        .count();
    let opened = if r.tunnel.is_some() { 2 } else { 1 };
    if ours == CsumVerdict::None {
        let deeper = match r.class {
            FrameClass::NonIp => ip_layers > 0,
            FrameClass::OtherIp => ip_layers > opened,
            _ => false,
        };
        if deeper {
            return Some("tunnel not opened");
        }
        if r.class == FrameClass::Malformed {
            return Some("malformed: l4 not followed");
        }
    }
    None
}

#[test]
fn checksum_verdicts_agree_with_tshark() {
    let fixtures = fixtures(&testdata().join("oracle").join("csum"));
    let cfg = SplitConfig::default();
    let mut failures = Vec::new();
    let mut compared = 0u64;
    let mut agreed: BTreeMap<String, u64> = BTreeMap::new();
    let mut differences: BTreeMap<&str, u64> = BTreeMap::new();
    for fx in &fixtures {
        let (n, rows) = load(fx);
        let (name, frames) = capture_of(fx);
        assert_eq!((frames.len() as u64, rows.len() as u64), (n, n), "{name}");
        for (row, frame) in rows.iter().zip(&frames) {
            assert_eq!(row.frame, frame.number, "{name}: row order");
            let r = split(&frame.data, &cfg);
            let c = verify(&frame.data, &r);
            let ours = c.verdict();
            compared += 1;
            if verdict_str(ours) == row.verdict {
                *agreed.entry(row.verdict.clone()).or_default() += 1;
            } else if let Some(why) = intentional(row, &r, ours) {
                println!(
                    "intentional ({why}): {name} frame {}: ours {}, tshark {} ({} {})",
                    row.frame,
                    verdict_str(ours),
                    row.verdict,
                    row.l4,
                    row.protocols
                );
                *differences.entry(why).or_default() += 1;
            } else {
                failures.push(format!(
                    "{name} frame {}: ours {} ({:?}, ip {:?}, l4 {:?}), tshark {} ({} {})",
                    row.frame,
                    verdict_str(ours),
                    r.class,
                    c.ip,
                    c.l4,
                    row.verdict,
                    row.l4,
                    row.protocols
                ));
            }
        }
    }
    println!(
        "checksum oracle: {compared} frames compared; agreed {agreed:?}; intentional \
         differences {differences:?}"
    );
    assert_eq!(compared, 1622, "frames in testdata/captures");
    let expect: BTreeMap<&str, u64> = [("tunnel not opened", 4), ("malformed: l4 not followed", 3)]
        .into_iter()
        .collect();
    assert_eq!(differences, expect, "intentional differences (module docs)");
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
