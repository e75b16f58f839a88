//! `splitrx roce`: the RoCEv2 responder on a board.
//!
//! `replay FILE` runs the RoCE oracle (`splitrx_harness::roce`) on a capture: the requester's
//! packets are played to the firmware's responder, and every response and every placed byte
//! is checked against what the captured responder did. It prints one verdict per packet and the
//! responder's counters (named like rdma-core's `rdma statistic` / rxe's hw counters).

use crate::run_cmd::Board;
use clap::{Args, Subcommand};
use splitrx_harness::roce::{replay, ReplayReport, RoceCase};
use splitrx_host::capture::CaptureReader;
use splitrx_shared::stats::DEV_NAMES;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum RoceCmd {
    /// Replay a RoCEv2 capture's requests to the responder and check every response packet
    /// and every placed byte against the captured responder. Exit 0 PASS, 3 FAIL, 1 error.
    Replay(ReplayArgs),
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Capture file (pcap or pcapng) with RoCEv2 traffic (UDP 4791).
    file: PathBuf,
    /// The board the firmware runs on.
    #[arg(long, value_enum, default_value_t = Board::Sim)]
    board: Board,
    /// One JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

/// Opcode names as Wireshark shows them.
pub fn opcode_name(op: u8) -> &'static str {
    const RC: [&str; 24] = [
        "SEND_FIRST",
        "SEND_MIDDLE",
        "SEND_LAST",
        "SEND_LAST_IMM",
        "SEND_ONLY",
        "SEND_ONLY_IMM",
        "WRITE_FIRST",
        "WRITE_MIDDLE",
        "WRITE_LAST",
        "WRITE_LAST_IMM",
        "WRITE_ONLY",
        "WRITE_ONLY_IMM",
        "READ_REQUEST",
        "READ_RESP_FIRST",
        "READ_RESP_MIDDLE",
        "READ_RESP_LAST",
        "READ_RESP_ONLY",
        "ACK",
        "ATOMIC_ACK",
        "CMP_SWAP",
        "FETCH_ADD",
        "?",
        "SEND_LAST_INV",
        "SEND_ONLY_INV",
    ];
    match op {
        0x00..=0x17 => RC[op as usize],
        0x20..=0x2b => RC[(op - 0x20) as usize],
        0x64 => "UD_SEND_ONLY",
        0x65 => "UD_SEND_ONLY_IMM",
        0x81 => "CNP",
        _ => "?",
    }
}

/// The responder's counters (device-wide counters `rcvd_pkts` onwards).
pub fn responder_counters(r: &ReplayReport) -> Vec<(&'static str, u64)> {
    let first = DEV_NAMES
        .iter()
        .position(|n| *n == "rcvd_pkts")
        .unwrap_or(DEV_NAMES.len());
    (first..DEV_NAMES.len())
        .map(|i| (DEV_NAMES[i], r.nic_counters.get(i).copied().unwrap_or(0)))
        .collect()
}

fn transport(op: u8) -> &'static str {
    match op >> 5 {
        0 => "RC",
        1 => "UC",
        3 => "UD",
        _ => "",
    }
}

pub fn run(cmd: &RoceCmd) -> ExitCode {
    match cmd {
        RoceCmd::Replay(a) => match replay_cmd(a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(3),
            Err(e) => {
                eprintln!("splitrx: error: {}: {e}", a.file.display());
                ExitCode::FAILURE
            }
        },
    }
}

fn replay_cmd(a: &ReplayArgs) -> Result<bool, String> {
    let mut frames = Vec::new();
    let mut r = CaptureReader::open(&a.file).map_err(|e| e.to_string())?;
    while let Some(f) = r.next_frame().map_err(|e| e.to_string())? {
        frames.push((f.number, f.data));
    }
    let case = RoceCase::from_frames(&frames)?;
    let target = a.board.target();
    let rep = replay(target.as_ref(), &case)?;
    if a.json {
        let counters: serde_json::Map<String, serde_json::Value> = responder_counters(&rep)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into()))
            .collect();
        let doc = serde_json::json!({
            "file": a.file.display().to_string(),
            "pass": rep.pass(),
            "report": rep,
            "counters": counters,
        });
        println!("{doc}");
        return Ok(rep.pass());
    }
    println!(
        "{}: responder {} ({} QP, {} MR), {} requests played, {} responses expected, {} packets not used",
        a.file.display(),
        rep.responder,
        rep.qps,
        rep.mrs,
        case.requests.len(),
        case.expected.len(),
        rep.skipped.len()
    );
    println!(
        "{:>6}  {:<4} {:<3} {:<18} {:>8}  {:<4} detail",
        "frame", "dir", "", "opcode", "psn", ""
    );
    for v in &rep.verdicts {
        println!(
            "{:>6}  {:<4} {:<3} {:<18} {:>8}  {:<4} {}",
            if v.frame == 0 {
                "-".to_string()
            } else {
                v.frame.to_string()
            },
            v.direction,
            transport(v.opcode),
            if v.direction == "mem" {
                ""
            } else {
                opcode_name(v.opcode)
            },
            v.psn,
            if v.ok { "ok" } else { "FAIL" },
            v.detail
        );
    }
    println!("responder counters:");
    for (k, v) in responder_counters(&rep) {
        if v != 0 {
            println!("  {k:<32} {v}");
        }
    }
    let fails = rep.failures().len();
    println!(
        "verdict: {} ({} of {} checks failed)",
        if rep.pass() { "PASS" } else { "FAIL" },
        fails,
        rep.verdicts.len()
    );
    Ok(rep.pass())
}
