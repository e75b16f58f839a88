//! `splitrx roce`: the RoCEv2 responder on a board.
//!
//! `replay FILE` runs the RoCE oracle (`splitrx_harness::roce`) on a capture: the requester's
//! packets are played to the firmware's responder, and every response and every placed byte
//! is checked against what the captured responder did. It prints one verdict per packet, one
//! `not used:` line per reason a packet was not played (not RoCEv2, QP1 CM MADs, opcodes the
//! responder does not serve, malformed or truncated BTHs, the responder side's own requests and
//! their responses), and the responder's counters (named like rdma-core's `rdma statistic` /
//! rxe's hw counters).
//!
//! A request whose ICRC is bad in the capture (the captured responder saw it intact; the copy
//! is corrupted) is played too: the firmware must drop it and count it (`rx_icrc_errors`), its
//! row says `bad ICRC in the capture: dropped, counted (rx_icrc_errors)`, and what the capture's
//! responder answered to it (and, on RC, to the requests after it: the firmware NAKs the first
//! with a PSN sequence error and drops the rest; UC drops the rest of the message) is expected
//! not to be sent (`out` rows `not sent here: ...`). Such a file PASSes when the firmware did
//! exactly that and everything else matched (see `splitrx_harness::roce::losses`).
//!
//! Exit status: 0 PASS (every verdict ok), 3 FAIL (a verdict failed: printed with `FAIL`),
//! 1 error (the file cannot be read, holds no frame, or no RoCEv2 request to a QP other than
//! QP1; or the device could not be set up): the message on stderr names the file.

use crate::run_cmd::Board;
use clap::{Args, Subcommand};
use splitrx_harness::roce::{read_case, replay};
use splitrx_shared::stats::DEV_NAMES;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum RoceCmd {
    /// Replay a RoCEv2 capture's requests to the responder and check every response packet
    /// and every placed byte against the captured responder. Exit 0 PASS, 3 FAIL, 1 error.
    Replay(ReplayArgs),
    /// Run a responder on the sim board linked to a peer over UDP (one datagram per Ethernet
    /// frame each way, QEMU's `-netdev dgram` framing) and print its connection details: an RC
    /// (or UC/UD) QP fed from a page-pool SRQ in device memory, and an MR peers may WRITE,
    /// READ and ATOMIC. Runs until `--duration` or `--messages`, then prints what it received,
    /// the responder's counters and the ledger audit.
    Serve(ServeArgs),
}

/// `--perftest-test`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PerftestKind {
    /// `ib_write_bw`
    Write,
    /// `ib_read_bw`
    Read,
    /// `ib_send_bw`
    Send,
    /// `ib_atomic_bw`
    Atomic,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum QpKind {
    Rc,
    Uc,
    Ud,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// UDP address the board's MAC receives on.
    #[arg(long, default_value = "127.0.0.1:18515")]
    listen: std::net::SocketAddr,
    /// UDP address the board's MAC transmits to (the peer's `-netdev dgram` local address).
    #[arg(long)]
    peer: std::net::SocketAddr,
    /// The responder's QP number.
    #[arg(long, default_value_t = 0x11, value_parser = parse_u32)]
    qpn: u32,
    #[arg(long, value_enum, default_value_t = QpKind::Rc)]
    qp_type: QpKind,
    /// Path MTU (256, 512, 1024, 2048, 4096).
    #[arg(long, default_value_t = 1024)]
    mtu: u32,
    /// The requester's QP number (RC/UC).
    #[arg(long, default_value_t = 0, value_parser = parse_u32)]
    remote_qpn: u32,
    /// The PSN of the requester's first request.
    #[arg(long, default_value_t = 0, value_parser = parse_u32)]
    rq_psn: u32,
    /// The requester's IPv4 address (requests from elsewhere are dropped).
    #[arg(long, default_value = "127.0.0.1")]
    remote_ip: std::net::Ipv4Addr,
    /// Q_Key (UD).
    #[arg(long, default_value_t = 0x1111_1111, value_parser = parse_u32)]
    qkey: u32,
    /// Bytes of the MR (device memory).
    #[arg(long, default_value_t = 1 << 20)]
    mr_size: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Stop after this many messages were received.
    #[arg(long)]
    messages: Option<u64>,
    /// Accept an rdma_cm connection to this port (RC only; what `rping -c -p PORT` or
    /// `ib_send_bw -R` connect to): the firmware answers the CM's REQ/RTU/DREQ on QP 1, so
    /// `--remote-qpn`, `--rq-psn` and `--remote-ip` are not needed.
    #[arg(long)]
    cm_port: Option<u16>,
    /// Be the server of an unmodified perftest client (`ib_write_bw`, `ib_read_bw`,
    /// `ib_send_bw`, `ib_atomic_bw`, without `-R`): speak its out-of-band exchange on this TCP
    /// address (perftest's default port is 18515); ends when the client has finished.
    #[arg(long)]
    perftest: Option<std::net::SocketAddr>,
    /// Which perftest the client runs (its exchange differs).
    #[arg(long, value_enum, default_value_t = PerftestKind::Write)]
    perftest_test: PerftestKind,
    /// The responder's IPv4 address as the perftest and pingpong exchanges announce it
    /// (where the requester reaches the board's MAC).
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: std::net::Ipv4Addr,
    /// Be the server of an unmodified `ibv_rc_pingpong` client: speak its out-of-band
    /// exchange on this TCP address (its default port is 18515), check every message it sends
    /// (`--pingpong-size` bytes of 0x7b) and SEND the same size back from the MR, through
    /// the firmware's requester, `--pingpong-iters` times (give the client the same `-s` and
    /// `-n`).
    #[arg(long)]
    pingpong: Option<std::net::SocketAddr>,
    #[arg(long, default_value_t = 1000)]
    pingpong_iters: u64,
    #[arg(long, default_value_t = 4096)]
    pingpong_size: u32,
    /// With `--cm-port`: be the server of an unmodified `rping -c` (the firmware's requester
    /// READs each ping's buffer, checked against rping's pattern, and WRITEs it back).
    #[arg(long)]
    rping: bool,
    /// The board the firmware runs on: `sim` (in-process) or `qemu-virt` (the aarch64 image
    /// in QEMU, its NIC relayed to the same UDP link).
    #[arg(long, value_enum, default_value_t = Board::Sim)]
    board: Board,
    /// Check every payload byte at the end against what crossed the link: the MR is filled
    /// with a known pattern first, the link is recorded both ways, and WRITEs (in the MR),
    /// SENDs (the app's tokens), READ responses and atomics are compared; exit status 3 when
    /// anything differs.
    #[arg(long)]
    verify: bool,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s}: {e}"))
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

pub use splitrx_harness::roce::opcode_name;

/// The responder's counters (device-wide counters `rcvd_pkts` onwards).
pub fn responder_counters(nic: &[u64]) -> Vec<(&'static str, u64)> {
    let first = DEV_NAMES
        .iter()
        .position(|n| *n == "rcvd_pkts")
        .unwrap_or(DEV_NAMES.len());
    (first..DEV_NAMES.len())
        .map(|i| (DEV_NAMES[i], nic.get(i).copied().unwrap_or(0)))
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
        RoceCmd::Serve(a) => match serve_cmd(a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(3),
            Err(e) => {
                eprintln!("splitrx: error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Runs the serve; `Ok(false)` when `--verify` found bytes that differ.
fn serve_cmd(a: &ServeArgs) -> Result<bool, String> {
    use splitrx_harness::roce::{serve, ServeConfig};
    use splitrx_host::roce::{gid_from_ipv4, Mtu, QpType};
    let cfg = ServeConfig {
        qpn: a.qpn,
        qp_type: match a.qp_type {
            QpKind::Rc => QpType::Rc,
            QpKind::Uc => QpType::Uc,
            QpKind::Ud => QpType::Ud,
        },
        mtu: Mtu::from_bytes(a.mtu).ok_or_else(|| format!("--mtu {}: one of 256..4096", a.mtu))?,
        remote_qpn: a.remote_qpn,
        rq_psn: a.rq_psn,
        remote_gid: gid_from_ipv4(a.remote_ip.octets()),
        qkey: a.qkey,
        mr_len: a.mr_size,
        cm_port: a.cm_port,
        perftest: a.perftest,
        perftest_test: match a.perftest_test {
            PerftestKind::Write => splitrx_harness::perftest::Test::Write,
            PerftestKind::Read => splitrx_harness::perftest::Test::Read,
            PerftestKind::Send => splitrx_harness::perftest::Test::Send,
            PerftestKind::Atomic => splitrx_harness::perftest::Test::Atomic,
        },
        local_gid: gid_from_ipv4(a.local_ip.octets()),
        pingpong: a.pingpong,
        pingpong_iters: a.pingpong_iters,
        pingpong_size: a.pingpong_size,
        rping: a.rping,
        keep_bytes: a.verify,
        ..ServeConfig::default()
    };
    let target = a.board.linked(a.listen, a.peer);
    let t0 = std::time::Instant::now();
    let limit = std::time::Duration::from_secs_f64(a.duration.max(0.0));
    let json = a.json;
    let listen = a.listen;
    let perftest = a.perftest.map(|p| (p, a.perftest_test));
    let pingpong = a.pingpong;
    let rep = serve(
        target.as_ref(),
        &cfg,
        |i| {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "listening": listen.to_string(), "qp": i })
                );
            } else if let Some(sid) = i.cm_service_id {
                println!(
                    "responder on {listen}: {} QP {:#x} listening for rdma_cm connections (service ID {sid:#018x}), MTU {}, SRQ {} of {}-byte buffers\n  MR: rkey {:#x} va {:#x} len {}",
                    i.qp_type, i.qpn, i.mtu, i.srqn, i.recv_buf_size, i.rkey, i.va, i.mr_len
                );
            } else if let Some(p) = pingpong {
                println!(
                    "responder on {listen}: {} QP {:#x}, MTU {}, SRQ {} of {}-byte buffers\n  ibv_rc_pingpong server: out-of-band exchange on {p}",
                    i.qp_type, i.qpn, i.mtu, i.srqn, i.recv_buf_size
                );
            } else if let Some((p, t)) = perftest {
                println!(
                    "responder on {listen}: {} QP {:#x}, MTU {}, SRQ {} of {}-byte buffers, MR rkey {:#x} va {:#x} len {}\n  perftest server ({t:?}): out-of-band exchange on {p}",
                    i.qp_type, i.qpn, i.mtu, i.srqn, i.recv_buf_size, i.rkey, i.va, i.mr_len
                );
            } else {
                println!(
                    "responder on {listen}: {} QP {:#x} (expects PSN {}), MTU {}, SRQ {} of {}-byte buffers\n  MR: rkey {:#x} va {:#x} len {}",
                    i.qp_type, i.qpn, i.rq_psn, i.mtu, i.srqn, i.recv_buf_size, i.rkey, i.va, i.mr_len
                );
            }
        },
        |_, received| t0.elapsed() >= limit || a.messages.is_some_and(|m| received >= m),
    )?;
    let check = rep
        .bytes
        .as_ref()
        .map(|b| splitrx_harness::interop::check_link(rep.info.qpn, b));
    let verified = check.as_ref().is_none_or(|c| c.pass());
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "report": rep, "verification": check })
        );
        return Ok(verified);
    }
    match &rep.perftest {
        Some(Ok(c)) => println!(
            "perftest client (version {}) QP {:#x}: {} x {} bytes, {:.2} MB/s average",
            c.version, c.qpn, c.iterations, c.msg_size, c.bw_avg_mbs
        ),
        Some(Err(e)) => return Err(format!("perftest exchange: {e}")),
        None if a.perftest.is_some() => println!("no perftest client finished"),
        None => {}
    }
    match &rep.pingpong {
        Some(Ok(p)) => println!(
            "ibv_rc_pingpong client QP {:#x}: {} messages received ({} checked, {} different), {} SENDs back completed, {} failed",
            p.client_qpn, p.received, p.verified, p.mismatched, p.sends_completed, p.send_errors
        ),
        Some(Err(e)) => return Err(format!("pingpong exchange: {e}")),
        None => {}
    }
    if let Some(r) = &rep.rping {
        println!(
            "rping: {} pings served ({} READs checked against the client's pattern, {} different), {} WRITEs{}",
            r.pings,
            r.reads_verified,
            r.reads_mismatched,
            r.writes,
            r.error.as_ref().map(|e| format!("; stopped: {e}")).unwrap_or_default()
        );
    }
    if rep.info.cm_service_id.is_some() {
        match rep.cm_peer_qpn {
            Some(q) => println!("connected (rdma_cm) to requester QP {q:#x}"),
            None => println!("no rdma_cm connection was completed"),
        }
    }
    println!(
        "received {} messages ({} bytes) into pool buffers, {} receive errors, {} CQEs refused",
        rep.received, rep.received_bytes, rep.recv_errors, rep.cqe_invalid
    );
    println!("responder counters:");
    for (k, v) in responder_counters(&rep.nic_counters) {
        if v != 0 {
            println!("  {k:<32} {v}");
        }
    }
    match &rep.audit_error {
        None => println!("ledger audit: clean"),
        Some(e) => return Err(format!("ledger audit: {e}")),
    }
    if let Some(c) = &check {
        println!(
            "verified against the link: {} requests ({} retransmitted, {} with a bad ICRC), {} WRITE packets / {} bytes in the MR, {} of {} SEND messages / {} bytes through the app's tokens, {} READ responses / {} bytes, {} atomics / {} ACKs, {} MR bytes compared",
            c.requests,
            c.duplicates,
            c.bad_icrc,
            c.write_packets,
            c.write_bytes,
            c.messages_matched,
            c.send_messages,
            c.send_bytes,
            c.read_responses,
            c.read_bytes,
            c.atomics,
            c.atomic_acks,
            c.mr_bytes_compared
        );
        for e in &c.errors {
            println!("  differs: {e}");
        }
        println!("verification: {}", if c.pass() { "PASS" } else { "FAIL" });
    }
    Ok(verified)
}

/// The packets not played, one line per reason: `not used: frames 1-3,7 (4): why`.
fn print_skipped(skipped: &[(u64, String)]) {
    let mut by: Vec<(&str, Vec<u64>)> = Vec::new();
    for (n, why) in skipped {
        match by.iter_mut().find(|(w, _)| *w == why.as_str()) {
            Some((_, v)) => v.push(*n),
            None => by.push((why, vec![*n])),
        }
    }
    for (why, mut v) in by {
        v.sort_unstable();
        println!("not used: frames {} ({}): {why}", ranges(&v), v.len());
    }
}

/// `1-3,7`.
pub fn ranges(v: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    out.join(",")
}

fn replay_cmd(a: &ReplayArgs) -> Result<bool, String> {
    let case = read_case(&a.file)?;
    let target = a.board.target();
    let rep = replay(target.as_ref(), &case)?;
    let bad_icrc: Vec<u64> = case
        .requests
        .iter()
        .filter(|p| !p.icrc_ok)
        .map(|p| p.number)
        .collect();
    if a.json {
        let counters: serde_json::Map<String, serde_json::Value> =
            responder_counters(&rep.nic_counters)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into()))
                .collect();
        let doc = serde_json::json!({
            "file": a.file.display().to_string(),
            "pass": rep.pass(),
            "bad_icrc": bad_icrc,
            "report": rep,
            "counters": counters,
        });
        println!("{doc}");
        return Ok(rep.pass());
    }
    println!(
        "{}: responder {} ({} QP, {} MR), {} requests played ({} with a bad ICRC), {} responses expected, {} packets not used",
        a.file.display(),
        rep.responder,
        rep.qps,
        rep.mrs,
        case.requests.len(),
        bad_icrc.len(),
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
    print_skipped(&rep.skipped);
    println!("responder counters:");
    for (k, v) in responder_counters(&rep.nic_counters) {
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
