//! The split decision against tshark's dissection of real captures.
//!
//! `testdata/oracle/<capture>.tsv` holds, per frame, the class and the payload offset/length
//! splitrx must report, derived from tshark by `scripts/gen-oracle.sh` (the rules, and where
//! DESIGN.md deliberately differs from tshark, are in `scripts/oracle_pdml.py`). This test
//! reads every capture through the same capture reader `splitrx inspect` uses, runs
//! `split()`, and requires exact agreement on every frame: class, payload offset and length,
//! tunnel, the innermost L3/L4 header offsets of TCP/UDP/RoCE frames, and for RoCE the opcode,
//! destination QP and PSN. Every RoCEv2 frame of the `roce__*`
//! captures must carry a valid ICRC.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

mod oracle_util;
use oracle_util::{fixtures, read_capture, read_tsv, testdata};

use splitrx_host::capture::Frame;
use splitrx_shared::split::{split, FrameClass, SplitConfig, SplitResult};

#[derive(Debug)]
struct Row {
    frame: u64,
    kind: String,
    class: String,
    payload_offset: Option<u32>,
    payload_len: Option<u32>,
    /// Innermost IP / L4 header offsets: given for tcp/udp/roce rows only.
    l3_offset: Option<u32>,
    l4_offset: Option<u32>,
    tunnel: Option<String>,
    roce: Option<(u8, u32, u32)>,
    notes: String,
}

fn opt<T: std::str::FromStr>(s: &str) -> Option<T>
where
    T::Err: std::fmt::Debug,
{
    (s != "-").then(|| {
        s.parse()
            .unwrap_or_else(|e| panic!("bad fixture value {s:?}: {e:?}"))
    })
}

struct Fixture {
    frames: u64,
    rows: Vec<Row>,
}

fn load_fixture(path: &Path) -> Fixture {
    let (frames, cells) = read_tsv(path, 12);
    let mut rows = Vec::new();
    for f in &cells {
        let roce = match (opt::<u8>(&f[8]), opt::<u32>(&f[9]), opt::<u32>(&f[10])) {
            (Some(op), Some(qp), Some(psn)) => Some((op, qp, psn)),
            (None, None, None) => None,
            _ => panic!("{}: partial RoCE fields in {f:?}", path.display()),
        };
        rows.push(Row {
            frame: f[0].parse().unwrap(),
            kind: f[1].to_string(),
            class: f[2].to_string(),
            payload_offset: opt(&f[3]),
            payload_len: opt(&f[4]),
            l3_offset: opt(&f[5]),
            l4_offset: opt(&f[6]),
            tunnel: opt(&f[7]),
            roce,
            notes: f[11].to_string(),
        });
    }
    Fixture { frames, rows }
}

/// Compares one frame; returns the mismatch description, if any.
fn compare(row: &Row, frame: &Frame, r: &SplitResult, is_roce_capture: bool) -> Option<String> {
    let mut diffs = Vec::new();
    if r.class.as_str() != row.class {
        diffs.push(format!(
            "class {} (expected {})",
            r.class.as_str(),
            row.class
        ));
    }
    if r.payload_offset != row.payload_offset {
        diffs.push(format!(
            "payload_offset {:?} (expected {:?})",
            r.payload_offset, row.payload_offset
        ));
    }
    if r.payload_len != row.payload_len {
        diffs.push(format!(
            "payload_len {:?} (expected {:?})",
            r.payload_len, row.payload_len
        ));
    }
    if matches!(row.class.as_str(), "tcp" | "udp" | "roce")
        && (r.l3_offset, r.l4_offset) != (row.l3_offset, row.l4_offset)
    {
        diffs.push(format!(
            "l3/l4 offsets {:?}/{:?} (expected {:?}/{:?})",
            r.l3_offset, r.l4_offset, row.l3_offset, row.l4_offset
        ));
    }
    if r.tunnel.map(|t| t.as_str()) != row.tunnel.as_deref() {
        diffs.push(format!("tunnel {:?} (expected {:?})", r.tunnel, row.tunnel));
    }
    let got_roce = r.roce.map(|ro| (ro.opcode, ro.dest_qp, ro.psn));
    if got_roce != row.roce {
        diffs.push(format!(
            "roce (opcode, qp, psn) {got_roce:?} (expected {:?})",
            row.roce
        ));
    }
    // Split exactly when the payload is recognised and non-empty (hds_thresh 0).
    let want_split = matches!(row.payload_len, Some(n) if n > 0);
    if r.split != want_split {
        diffs.push(format!("split {} (expected {want_split})", r.split));
    }
    if (r.class == FrameClass::Malformed) != r.error.is_some() {
        diffs.push(format!("class {:?} with error {:?}", r.class, r.error));
    }
    if is_roce_capture && row.class == "roce" {
        match r.roce.and_then(|ro| ro.icrc_ok) {
            Some(true) => {}
            other => diffs.push(format!("icrc_ok {other:?} (expected Some(true))")),
        }
    }
    (!diffs.is_empty()).then(|| {
        format!(
            "frame {} (tshark: {}, caplen {}, notes: {}): {}",
            frame.number,
            row.kind,
            frame.caplen(),
            row.notes,
            diffs.join(", ")
        )
    })
}

const CFG: SplitConfig = SplitConfig {
    hds_thresh: 0,
    verify_icrc: true,
};

/// Compares `split()` of every frame of `capture` with its fixture `fx`; disagreements are
/// appended to `failures`. Returns the fixture and the split results.
fn check_capture(
    name: &str,
    fx: &Path,
    capture: &Path,
    failures: &mut Vec<String>,
) -> (Fixture, Vec<SplitResult>) {
    let fixture = load_fixture(fx);
    let frames = read_capture(name, capture);
    assert_eq!(frames.len() as u64, fixture.frames, "{name}: frame count");
    assert_eq!(
        fixture.rows.len() as u64,
        fixture.frames,
        "{name}: one row per frame"
    );
    let is_roce = name.starts_with("roce__");
    let mut results = Vec::new();
    for (row, frame) in fixture.rows.iter().zip(&frames) {
        assert_eq!(row.frame, frame.number, "{name}: row order");
        let r = split(&frame.data, &CFG);
        if let Some(d) = compare(row, frame, &r, is_roce) {
            failures.push(format!("{name}: {d}"));
        }
        results.push(r);
    }
    (fixture, results)
}

/// The crafted captures of testdata/oracle/crafted/ (corner cases no real capture has:
/// nested tunnels, the BIG TCP limits, RD/XRC RoCE), against their tshark fixtures, plus the
/// not-split reason of each frame (the fixtures carry no reason).
#[test]
fn crafted_corner_cases_agree_with_tshark() {
    use splitrx_shared::split::{Malformed, NoSplitReason as R};
    let dir = testdata().join("oracle/crafted");
    let name = "split-corner-cases.pcap";
    let mut failures = Vec::new();
    let (_, results) = check_capture(
        name,
        &dir.join(format!("{name}.tsv")),
        &dir.join(name),
        &mut failures,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let got: Vec<_> = results.iter().map(|r| (r.reason, r.error)).collect();
    let ok = |r| (r, None);
    assert_eq!(
        got,
        [
            (R::Malformed, Some(Malformed::BadIpv4TotalLen)),
            ok(R::Split),
            (R::Malformed, Some(Malformed::Truncated)),
            ok(R::Split),
            ok(R::Split),
            ok(R::Split),
            ok(R::Split),
            ok(R::TunnelTooDeep),
            ok(R::NonIp),
            ok(R::NonIp),
            ok(R::UnsupportedTransport),
            ok(R::UnsupportedTransport),
            ok(R::UnsupportedTransport),
        ]
    );
}

#[test]
fn split_agrees_with_tshark_on_every_frame() {
    let fixtures = fixtures(&testdata().join("oracle"));

    let mut failures = Vec::new();
    let mut summary = String::new();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut icrc_checked = 0u64;
    for fx in &fixtures {
        let name = fx.file_stem().unwrap().to_string_lossy().into_owned();
        let capture = testdata().join("captures").join(&name);
        let (fixture, _) = check_capture(&name, fx, &capture, &mut failures);
        let is_roce = name.starts_with("roce__");
        let mut per_kind: BTreeMap<&str, u64> = BTreeMap::new();
        for row in &fixture.rows {
            icrc_checked += (is_roce && row.class == "roce") as u64;
            *per_kind.entry(row.kind.as_str()).or_default() += 1;
            *totals.entry(row.kind.clone()).or_default() += 1;
        }
        let kinds: Vec<String> = per_kind.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            summary,
            "  {name:<48} {:>4} frames ({})",
            fixture.frames,
            kinds.join(", ")
        )
        .unwrap();
    }
    let kinds: Vec<String> = totals.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "oracle: {} captures compared frame by frame; by tshark's innermost transport: {}; \
         {icrc_checked} RoCE ICRCs required valid\n{summary}",
        fixtures.len(),
        kinds.join(", ")
    );
    // The fixtures must keep covering what they cover today.
    assert!(
        totals["tcp"] >= 800 && totals["roce"] >= 465 && totals["udp"] >= 50,
        "{totals:?}"
    );
    assert!(
        failures.is_empty(),
        "{} frame(s) disagree with the oracle:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
