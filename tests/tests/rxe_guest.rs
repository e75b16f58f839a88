//! The rxe guest (`splitrx_harness::rxe`): Linux soft-RoCE in a QEMU x86_64 VM boots with
//! rxe0 ACTIVE, shows its GID table, talks TCP to this host out of band, carries frames to and
//! from a peer on its RoCE link as one UDP datagram each, and runs a real verbs application
//! (`ibv_rc_pingpong`, `rping`, `ib_write_bw`) over rxe0; rping in the guest connects to
//! splitrx's own responder over the RDMA CM; QEMU never outlives a guest.
//!
//! Each test boots a VM (a few seconds under TCG, more on a loaded machine), so they are
//! ignored in the workspace run; `cargo xtask test` (and `cargo xtask rxe-guest --test`) build
//! the guest and run them with `--ignored`. They skip, saying why, only when told the guest is
//! unavailable (`SPLITRX_RXE_GUEST_UNAVAILABLE=<reason>`); a guest that is missing otherwise
//! fails them with how to build it.

use splitrx_harness::interop::{check_link, LinkCheck};
use splitrx_harness::rxe::{
    free_udp_port, Availability, GuestConfig, GuestError, GuestImage, RxeGuest, ScriptRun,
    DEFAULT_ROCE_IP,
};
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn image() -> Option<GuestImage> {
    match GuestImage::locate() {
        Ok(Availability::Ready(img)) => {
            println!(
                "rxe guest: {} (kernel {}, built uncached in {:.1} s)",
                img.dir.display(),
                img.manifest["kernel_version"].as_str().unwrap_or("?"),
                img.build_secs().unwrap_or(f64::NAN)
            );
            Some(img)
        }
        Ok(Availability::Unavailable(why)) => {
            println!("skipped: the rxe guest is unavailable here: {why}");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn report(what: &str, run: &ScriptRun) {
    println!(
        "{what}: boot {:.1?} to rxe0 ACTIVE (guest uptime {:.2} s), script {:.1?}, exit {}",
        run.ready.boot, run.ready.guest_uptime, run.run, run.status
    );
}

/// Prints one line per non-zero GID of rxe0 port 1: `gid <index> <gid> <type> <netdev>`. The
/// table has hundreds of slots: one `grep` reads them (a process per slot costs seconds
/// under TCG).
const GID_TABLE: &str = r#"
gid_table() {
    p=/sys/class/infiniband/rxe0/ports/1
    grep -H . $p/gids/* | grep -v ':0000:0000:0000:0000:0000:0000:0000:0000$' |
    while IFS= read -r l; do
        f=${l%%:*}
        i=${f##*/}
        echo "gid $i ${l#*:} $(cat $p/gid_attrs/types/$i 2>/dev/null) $(cat $p/gid_attrs/ndevs/$i 2>/dev/null)"
    done | sort -n -k2
    echo "gid slots $(ls $p/gids | wc -l)"
}
"#;

/// The IPv4-mapped GID of `ip` as sysfs prints it.
fn mapped_gid(ip: std::net::Ipv4Addr) -> String {
    let o = ip.octets();
    format!(
        "0000:0000:0000:0000:0000:ffff:{:02x}{:02x}:{:02x}{:02x}",
        o[0], o[1], o[2], o[3]
    )
}

#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn rxe0_is_port_active_with_its_gid_table_and_the_guest_reaches_the_host_over_tcp() {
    let Some(img) = image() else { return };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "{GID_TABLE}
set -x
ibv_devices
ibv_devinfo -d rxe0
rdma link show
/usr/bin/ip -br addr show
set +x
gid_table
{{ ibv_devinfo -d rxe0; gid_table; }} | nc 10.0.2.2 {port}
echo nc=$?
"
    );
    // The guest connects to 10.0.2.2:port, i.e. this listener.
    let got = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let end = Instant::now() + Duration::from_secs(300);
        loop {
            match listener.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let mut text = String::new();
                    let _ = s.read_to_string(&mut text);
                    return Some(text);
                }
                Err(_) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => return None,
            }
        }
    });
    let cfg = GuestConfig::with_free_ports().unwrap();
    let run = RxeGuest::run(&img, &cfg, &script).unwrap_or_else(|e| panic!("{e}"));
    report("boot + GID table", &run);
    println!("--- guest output ---\n{}--- end ---", run.output);
    let o = &run.output;
    assert_eq!(run.status, 0, "{o}");
    // ibv_devices: "    rxe0                505400fffe525801" (the node GUID from the MAC).
    assert!(
        o.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["rxe0", "505400fffe525801"]),
        "ibv_devices lists no rxe0:\n{o}"
    );
    assert!(o.contains("PORT_ACTIVE"), "{o}");
    assert!(o.contains("link_layer:\t\tEthernet"), "{o}");
    // The RoCE netdev is up (carrier) with its address.
    assert!(
        o.lines().any(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() >= 3 && w[0] == run.ready.roce_netdev && w[1] == "UP" && w[2] == "10.50.0.2/24"
        }),
        "the RoCE netdev is not UP with 10.50.0.2/24:\n{o}"
    );
    assert!(
        o.contains(&format!(
            "link rxe0/1 state ACTIVE physical_state LINK_UP netdev {}",
            run.ready.roce_netdev
        )),
        "{o}"
    );
    // rxe on 6.1 lists RoCE v2 GIDs only: the link-local IPv6 one (from the MAC) and the
    // IPv4-mapped one of the netdev's address.
    let v4 = mapped_gid(DEFAULT_ROCE_IP);
    let line = o
        .lines()
        .find(|l| l.starts_with("gid ") && l.contains(&v4))
        .unwrap_or_else(|| panic!("no GID {v4}:\n{o}"));
    assert!(line.contains("RoCE v2"), "{line}");
    println!("IPv4 RoCE v2 GID: {line}");
    assert!(
        o.lines()
            .any(|l| l.contains("fe80:0000:0000:0000:5054:00ff:fe52:5801")),
        "no link-local GID from the MAC:\n{o}"
    );
    assert!(o.contains("nc=0"), "{o}");
    let host = got.join().unwrap().expect("the guest never connected");
    assert!(
        host.contains("PORT_ACTIVE") && host.contains(line),
        "{host}"
    );
}

#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn ibv_rc_pingpong_server_and_client_over_rxe0_in_one_guest() {
    let Some(img) = image() else { return };
    let v4 = mapped_gid(DEFAULT_ROCE_IP);
    let script = format!(
        "{GID_TABLE}
idx=$(gid_table | grep '{v4} RoCE v2' | cut -d' ' -f2)
echo \"gid index $idx\"
ibv_rc_pingpong -d rxe0 -g $idx -n 200 > /tmp/server.log 2>&1 &
server=$!
sleep 1
ibv_rc_pingpong -d rxe0 -g $idx -n 200 {DEFAULT_ROCE_IP} > /tmp/client.log 2>&1
client=$?
wait $server
echo \"server exit $? client exit $client\"
sed 's/^/server: /' /tmp/server.log
sed 's/^/client: /' /tmp/client.log
"
    );
    let cfg = GuestConfig::with_free_ports().unwrap();
    let run = RxeGuest::run(&img, &cfg, &script).unwrap_or_else(|e| panic!("{e}"));
    report("ibv_rc_pingpong", &run);
    println!("--- guest output ---\n{}--- end ---", run.output);
    let o = &run.output;
    assert_eq!(run.status, 0, "{o}");
    assert!(o.contains("server exit 0 client exit 0"), "{o}");
    for side in ["server", "client"] {
        // "  local address:  LID 0x0000, QPN 0x000011, PSN 0x..., GID ::ffff:10.50.0.2"
        assert!(
            o.contains(&format!("{side}:   local address:"))
                && o.lines()
                    .any(|l| l.starts_with(side)
                        && l.contains(&format!("GID ::ffff:{DEFAULT_ROCE_IP}"))),
            "{side}: no local address with the IPv4 GID:\n{o}"
        );
        // "1638400 bytes in 0.12 seconds = ..." (4096 bytes each way per iteration) and
        // "200 iters in 0.12 seconds = ... usec/iter"
        assert!(
            o.lines()
                .any(|l| l.starts_with(&format!("{side}: 1638400 bytes in"))),
            "{side}: no throughput line:\n{o}"
        );
        assert!(
            o.lines()
                .any(|l| l.starts_with(&format!("{side}: 200 iters in"))),
            "{side}: no latency line:\n{o}"
        );
    }
}

#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn a_script_over_its_time_fails_with_the_console_and_qemu_dies_with_the_guest() {
    let Some(img) = image() else { return };
    let mut cfg = GuestConfig::with_free_ports().unwrap();
    cfg.script_timeout = Duration::from_secs(2);
    let mut guest = RxeGuest::start(&img, &cfg, "echo sleeping; sleep 600\n").unwrap();
    let ready = guest.wait_ready().unwrap_or_else(|e| panic!("{e}"));
    println!(
        "boot {:.1?} to rxe0 ACTIVE (guest uptime {:.2} s, netdev {})",
        ready.boot, ready.guest_uptime, ready.roce_netdev
    );
    let pid = guest.pid().unwrap();
    let err = guest.wait_exit().unwrap_err();
    match &err {
        GuestError::Timeout { console, .. } => {
            assert!(console.contains("SPLITRX-RXE: BEGIN"), "{err}");
            assert!(console.contains("sleeping"), "{err}");
        }
        other => panic!("expected a timeout, got: {other}"),
    }
    // wait_exit consumed the guest: QEMU is gone (killed on drop, reaped).
    let end = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU {pid} outlived its guest"
    );
}

/// The Internet checksum of `b`.
fn inet_csum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The echo reply to `f` if it is an ICMP echo request to `ip` (Ethernet, IPv4).
fn echo_reply(f: &[u8], ip: Ipv4Addr) -> Option<Vec<u8>> {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] || f[23] != 1 || f[30..34] != ip.octets() {
        return None;
    }
    let icmp = 14 + usize::from(f[14] & 0x0f) * 4;
    if f.get(icmp) != Some(&8) {
        return None;
    }
    let mut r = f.to_vec();
    r.copy_within(6..12, 0);
    r[6..12].copy_from_slice(&f[0..6]);
    // Swapping the addresses leaves the IPv4 header checksum as it is.
    r.copy_within(30..34, 26);
    r[30..34].copy_from_slice(&f[26..30]);
    r[icmp] = 0;
    r[icmp + 2..icmp + 4].fill(0);
    let c = inet_csum(&r[icmp..]);
    r[icmp + 2..icmp + 4].copy_from_slice(&c.to_be_bytes());
    Some(r)
}

#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn the_roce_link_carries_one_ethernet_frame_per_udp_datagram_both_ways() {
    let Some(img) = image() else { return };
    // The peer's end of the link, as `splitrx roce serve` binds it: a UDP socket on loopback.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut cfg = GuestConfig::new(free_udp_port().unwrap(), peer.local_addr().unwrap().port());
    let (peer_ip, peer_mac) = (Ipv4Addr::new(10, 50, 0, 1), [0x02, 0, 0, 0, 0, 0x01]);
    // Like the firmware, this peer answers no ARP: the guest gets a permanent neighbour.
    cfg.neighbors.push((peer_ip, peer_mac));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            let mut requests = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = peer.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(r) = echo_reply(&buf[..n], peer_ip) {
                    requests.push(buf[..n].to_vec());
                    peer.send_to(&r, from).unwrap();
                }
            }
            requests
        })
    };
    let run = RxeGuest::run(&img, &cfg, &format!("ping -c 3 -W 5 {peer_ip}\n"));
    stop.store(true, Ordering::Relaxed);
    let requests = seen.join().unwrap();
    let run = run.unwrap_or_else(|e| panic!("{e}"));
    report("ping over the RoCE link", &run);
    println!("--- guest output ---\n{}--- end ---", run.output);
    let o = &run.output;
    assert_eq!(run.status, 0, "{o}");
    assert!(
        o.contains("3 packets transmitted, 3 packets received"),
        "{o}"
    );
    assert_eq!(requests.len(), 3, "echo requests seen by the peer");
    for f in &requests {
        // One datagram is exactly one frame: Ethernet header + IPv4 total length, no FCS.
        let ip_len = usize::from(u16::from_be_bytes([f[16], f[17]]));
        assert_eq!(f.len(), 14 + ip_len);
        assert_eq!(f[0..6], peer_mac);
        assert_eq!(f[6..12], cfg.roce_mac);
        assert_eq!(f[26..30], DEFAULT_ROCE_IP.octets());
    }
}

#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn rping_over_the_rdma_cm_and_perftest_ib_write_bw_run_over_rxe0_in_one_guest() {
    let Some(img) = image() else { return };
    let v4 = mapped_gid(DEFAULT_ROCE_IP);
    let ip = DEFAULT_ROCE_IP;
    let script = format!(
        "{GID_TABLE}
idx=$(gid_table | grep '{v4} RoCE v2' | cut -d' ' -f2)
rping -s -a {ip} -C 3 -v > /tmp/rs.log 2>&1 &
server=$!
sleep 1
rping -c -a {ip} -C 3 -v > /tmp/rc.log 2>&1
client=$?
wait $server
echo \"rping server exit $? client exit $client\"
sed 's/^/rping server: /' /tmp/rs.log
sed 's/^/rping client: /' /tmp/rc.log
ib_write_bw -d rxe0 -x $idx -s 4096 -n 50 -F > /tmp/ps.log 2>&1 &
server=$!
sleep 1
ib_write_bw -d rxe0 -x $idx -s 4096 -n 50 -F {ip} > /tmp/pc.log 2>&1
client=$?
wait $server
echo \"ib_write_bw server exit $? client exit $client\"
sed 's/^/ib_write_bw server: /' /tmp/ps.log
sed 's/^/ib_write_bw client: /' /tmp/pc.log
"
    );
    let cfg = GuestConfig::with_free_ports().unwrap();
    let run = RxeGuest::run(&img, &cfg, &script).unwrap_or_else(|e| panic!("{e}"));
    report("rping + ib_write_bw", &run);
    println!("--- guest output ---\n{}--- end ---", run.output);
    let o = &run.output;
    assert_eq!(run.status, 0, "{o}");
    assert!(o.contains("rping server exit 0 client exit 0"), "{o}");
    // rping -v: "ping data: rdma-ping-0: ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqr"
    for i in 0..3 {
        assert!(
            o.contains(&format!("rping client: ping data: rdma-ping-{i}: ")),
            "{o}"
        );
    }
    assert!(o.contains("ib_write_bw server exit 0 client exit 0"), "{o}");
    // The result row: " 4096       50             <peak>    <avg>    <msg rate>"
    assert!(
        o.lines().any(|l| l.starts_with("ib_write_bw client:")
            && l.split_whitespace().skip(2).take(2).collect::<Vec<_>>() == ["4096", "50"]),
        "no result row for 4096-byte WRITEs x 50:\n{o}"
    );
}

/// The board the firmware runs on in an interop run, its MAC linked to the guest's RoCE NIC
/// over UDP (one datagram per frame, QEMU's `-netdev dgram` framing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Board {
    /// The sim board: the firmware on a thread of this process.
    Sim,
    /// qemu-virt: the firmware as a bare-metal aarch64 image in QEMU (`cargo xtask
    /// build-image`), its virtio-net NIC relayed to the same link.
    QemuVirt,
}

impl Board {
    fn name(self) -> &'static str {
        match self {
            Board::Sim => "sim",
            Board::QemuVirt => "qemu-virt",
        }
    }
    /// The board as a target whose MAC is linked to `peer`, listening on `local`.
    fn linked(
        self,
        local: std::net::SocketAddr,
        peer: std::net::SocketAddr,
    ) -> Box<dyn splitrx_harness::target::Target + Send> {
        let name = match self {
            Board::Sim => "sim",
            Board::QemuVirt => "qemu",
        };
        splitrx_harness::linked_target_by_name(name, local, peer).expect("a known target")
    }
}

/// The device counter `name` (`splitrx_shared::stats::DEV_NAMES`) at the end of a serve.
fn dev_counter(rep: &splitrx_harness::roce::ServeReport, name: &str) -> u64 {
    let i = splitrx_shared::stats::DEV_NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("no device counter {name}"));
    rep.nic_counters[i]
}

/// The firmware's address on the link (it answers no ARP: the guest gets a neighbour entry).
const FW_IP: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 1);

/// A responder (`serve` with `serve_cfg`) on `board` linked to a guest that runs `script`;
/// returns the guest's run and the serve's report. The serve stops when `stop(received)`
/// says so, when the guest's script has ended, or after 180 s.
fn serve_against_guest(
    img: &GuestImage,
    board: Board,
    serve_cfg: splitrx_harness::roce::ServeConfig,
    script: impl FnOnce(&splitrx_harness::roce::ServeInfo) -> String,
    stop: impl Fn(u64) -> bool + Send + 'static,
) -> (ScriptRun, splitrx_harness::roce::ServeReport) {
    use splitrx_harness::roce::serve;
    let (board_port, qemu_port) = (free_udp_port().unwrap(), free_udp_port().unwrap());
    let (local, peer) = (
        std::net::SocketAddr::from(([127, 0, 0, 1], board_port)),
        std::net::SocketAddr::from(([127, 0, 0, 1], qemu_port)),
    );
    let target = board.linked(local, peer);
    let (tx, rx) = std::sync::mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let server = {
        let done = done.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            serve(
                target.as_ref(),
                &serve_cfg,
                |i| tx.send(i.clone()).unwrap(),
                |_, received| {
                    stop(received)
                        || done.load(Ordering::Relaxed)
                        || t0.elapsed() > Duration::from_secs(180)
                },
            )
        })
    };
    let Ok(info) = rx.recv_timeout(Duration::from_secs(90)) else {
        let r = server.join().unwrap();
        panic!("{}: the responder did not come up: {r:?}", board.name());
    };
    let mut cfg = GuestConfig::new(qemu_port, board_port);
    cfg.neighbors.push((FW_IP, [0x02, 0, 0, 0, 0, 0x01]));
    let run = RxeGuest::run(img, &cfg, &script(&info));
    done.store(true, Ordering::Relaxed);
    let rep = server.join().unwrap();
    let run = run.unwrap_or_else(|e| panic!("{e}"));
    let rep = rep.unwrap_or_else(|e| panic!("{}: serve: {e}", board.name()));
    (run, rep)
}

/// The link check of a serve (every payload byte; see `splitrx_harness::interop`), printed.
fn link_check(what: &str, rep: &splitrx_harness::roce::ServeReport) -> LinkCheck {
    let bytes = rep.bytes.as_ref().expect("keep_bytes was set");
    let c = check_link(rep.info.qpn, bytes);
    println!(
        "{what}: link check: {} frames received, {} transmitted; {c:?}",
        bytes.link_rx.len(),
        bytes.link_tx.len()
    );
    assert_eq!(c.errors, Vec::<String>::new(), "{what}: bytes differ");
    assert_eq!(c.bad_icrc, 0, "{what}");
    assert_eq!(c.mr_bytes_compared, rep.info.mr_len, "{what}");
    c
}

/// The perftest clients run against splitrx (the tool with its own flags), what each
/// exchanges, and the message size. Each runs `ITERS` iterations.
const PERFTESTS: [(&str, splitrx_harness::perftest::Test, u64); 5] = {
    use splitrx_harness::perftest::Test;
    [
        ("ib_write_bw", Test::Write, 4096),
        ("ib_read_bw", Test::Read, 4096),
        ("ib_send_bw", Test::Send, 4096),
        ("ib_atomic_bw", Test::Atomic, 8),
        ("ib_atomic_bw -A CMP_AND_SWAP", Test::Atomic, 8),
    ]
};
const ITERS: u64 = 500;
/// rxe's active MTU on the guest's 1500-byte link (what perftest settles on).
const PATH_MTU: u64 = 1024;

/// What a perftest client printed in its result row (`size iterations peak average rate`).
#[derive(Clone, Copy, Debug)]
struct Printed {
    /// `BW average[MB/sec]` (two decimals).
    mbs: f64,
    /// `MsgRate[Mpps]` (six decimals: the precise one for 8-byte atomics).
    mpps: f64,
}

/// The result row for `size`-byte messages x `iters` among the lines of `out` that start with
/// `prefix`.
fn result_row(out: &str, prefix: &str, size: u64, iters: u64) -> Option<Printed> {
    let (s, n) = (size.to_string(), iters.to_string());
    out.lines().find_map(|l| {
        let w: Vec<&str> = l.strip_prefix(prefix)?.split_whitespace().collect();
        if w.len() < 5 || w[0] != s || w[1] != n {
            return None;
        }
        Some(Printed {
            mbs: w[3].parse().ok()?,
            mpps: w[4].parse().ok()?,
        })
    })
}

/// Interop: perftest's `ib_write_bw`, `ib_read_bw`, `ib_send_bw` and `ib_atomic_bw` (fetch-add,
/// and compare-swap with `-A CMP_AND_SWAP`) in the guest (unmodified, without `-R`), each
/// against splitrx as its server (`splitrx roce serve --perftest`): splitrx's host side speaks perftest's out-of-band TCP exchange (reached over
/// slirp at 10.0.2.2), the firmware on the sim board serves the RDMA traffic that comes over
/// the guest's RoCE NIC. Each tool must finish with its result row, and the responder must
/// have executed exactly the client's 500 requests; every payload byte is checked against what
/// crossed the link (`splitrx_harness::interop::check_link`: WRITEs in the MR, SENDs through
/// the page-pool SRQ's tokens, READ responses against the MR, atomics' values and ACKs), every
/// token returned, audit clean. Then the same tools run rxe-to-rxe between two guests
/// linked the same way, and the bandwidths the tools printed are tabled side by side (TCG
/// speeds).
#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn perftest_clients_in_the_guest_run_against_splitrx() {
    perftest_against_splitrx(Board::Sim);
}

/// The same perftest clients against the firmware on the qemu-virt board (the aarch64
/// image in QEMU, its NIC relayed to the guest's link), bytes checked the same way.
#[test]
#[ignore = "boots a Linux VM and the qemu-virt image under QEMU: run by `cargo xtask test` (`cargo xtask interop`)"]
fn perftest_clients_in_the_guest_run_against_splitrx_on_qemu_virt() {
    perftest_against_splitrx(Board::QemuVirt);
}

fn perftest_against_splitrx(board: Board) {
    let Some(img) = image() else { return };
    let splitrx: Vec<Printed> = PERFTESTS
        .iter()
        .map(|&(tool, test, size)| perftest_client_against_splitrx(&img, board, tool, test, size))
        .collect();
    let rxe = perftest_rxe_to_rxe(&img);
    let b = board.name();
    println!(
        "figures {b}: perftest clients in the rxe guest (QEMU x86_64 TCG, 1 vCPU), MTU {PATH_MTU}; average MB/s and message rate as each tool printed them; ratio = splitrx / rxe-to-rxe message rate"
    );
    println!(
        "figures {b}: | tool | size (B) | iterations | MB/s splitrx ({b}) | MB/s rxe-to-rxe (two guests) | kmsg/s splitrx | kmsg/s rxe-to-rxe | ratio |"
    );
    println!("figures {b}: |---|---:|---:|---:|---:|---:|---:|---:|");
    for ((&(tool, _, size), s), r) in PERFTESTS.iter().zip(&splitrx).zip(&rxe) {
        println!(
            "figures {b}: | {tool} | {size} | {ITERS} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            s.mbs,
            r.mbs,
            s.mpps * 1e3,
            r.mpps * 1e3,
            s.mpps / r.mpps
        );
    }
}

/// One perftest client against splitrx on `board`; returns what it printed.
fn perftest_client_against_splitrx(
    img: &GuestImage,
    board: Board,
    tool: &str,
    test: splitrx_harness::perftest::Test,
    size: u64,
) -> Printed {
    use splitrx_harness::perftest::Test;
    use splitrx_harness::roce::ServeConfig;
    let tcp = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let serve_cfg = ServeConfig {
        perftest: Some(tcp),
        perftest_test: test,
        local_gid: splitrx_host::roce::gid_from_ipv4(FW_IP.octets()),
        // Every byte kept for the link check.
        keep_bytes: true,
        ..ServeConfig::default()
    };
    let (run, rep) = serve_against_guest(
        img,
        board,
        serve_cfg,
        |_| {
            format!(
                "timeout 120 {tool} -d rxe0 -x 1 -s {size} -n {ITERS} -p {} 10.0.2.2 2>&1\necho \"{tool} exit $?\"\n",
                tcp.port()
            )
        },
        |_| false,
    );
    let what = format!("{tool} -> splitrx on {}", board.name());
    report(&what, &run);
    println!("--- guest output ---\n{}--- end ---", run.output);
    println!("splitrx: {rep:?}");
    let o = &run.output;
    assert!(o.contains(&format!("{tool} exit 0")), "{o}");
    let bw = result_row(o, "", size, ITERS).unwrap_or_else(|| {
        panic!("{tool}: no result row for {size}-byte messages x {ITERS}:\n{o}")
    });
    let client = rep.perftest.clone().expect("the exchange ended").unwrap();
    if test != Test::Send {
        assert_eq!(
            (client.msg_size, client.iterations),
            (size, ITERS),
            "{client:?}"
        );
    }
    let c = |name: &str| dev_counter(&rep, name);
    match test {
        Test::Write => assert_eq!(c("rx_write_requests"), ITERS, "{what}: {rep:?}"),
        Test::Read => assert_eq!(c("rx_read_requests"), ITERS, "{what}: {rep:?}"),
        Test::Atomic => assert_eq!(c("rx_atomic_requests"), ITERS, "{what}: {rep:?}"),
        Test::Send => assert_eq!(
            (rep.received, rep.received_bytes),
            (ITERS, ITERS * size),
            "{rep:?}"
        ),
    }
    assert_eq!(c("rx_icrc_errors"), 0);
    assert_eq!(rep.recv_errors, 0);
    assert_eq!(rep.cqe_invalid, 0);
    assert_eq!(rep.audit_error, None);
    // Every payload byte, exact counts: each message is size / MTU packets.
    let ck = link_check(&what, &rep);
    let (pkts, bytes) = (size.div_ceil(PATH_MTU) * ITERS, size * ITERS);
    let counts = (
        ck.requests,
        [ck.write_packets, ck.write_bytes],
        [
            ck.send_messages,
            ck.send_packets,
            ck.send_bytes,
            ck.messages_matched,
        ],
        [ck.read_requests, ck.read_responses, ck.read_bytes],
        [ck.atomics, ck.atomic_acks],
    );
    let want = match test {
        Test::Write => (pkts, [pkts, bytes], [0; 4], [0; 3], [0; 2]),
        Test::Send => (pkts, [0; 2], [ITERS, pkts, bytes, ITERS], [0; 3], [0; 2]),
        Test::Read => (ITERS, [0; 2], [0; 4], [ITERS, pkts, bytes], [0; 2]),
        Test::Atomic => (ITERS, [0; 2], [0; 4], [0; 3], [ITERS, ITERS]),
    };
    assert_eq!(counts, want, "{what}: {ck:?}");
    println!(
        "{what}: verified: {} requests ({} retransmitted), {} WRITE packets / {} bytes in the MR, {} SEND messages / {} bytes through tokens, {} READ responses / {} bytes, {} atomics and their ACKs ({} changed the value), {} MR bytes",
        ck.requests,
        ck.duplicates,
        ck.write_packets,
        ck.write_bytes,
        ck.messages_matched,
        ck.send_bytes,
        ck.read_responses,
        ck.read_bytes,
        ck.atomic_acks,
        ck.atomics_changed,
        ck.mr_bytes_compared
    );
    bw
}

/// The perftest tools rxe-to-rxe in the same set-up as against splitrx: the client in
/// one guest (the same flags), its RoCE NIC linked over UDP to a second guest's whose rxe0 is
/// the server, the out-of-band exchange over slirp (the server's port forwarded from this
/// host). Returns what each client printed, in `PERFTESTS` order.
fn perftest_rxe_to_rxe(img: &GuestImage) -> Vec<Printed> {
    let (a_port, b_port) = (free_udp_port().unwrap(), free_udp_port().unwrap());
    let fwd = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server_ip = Ipv4Addr::new(10, 50, 0, 3);
    let mut b = GuestConfig::new(b_port, a_port);
    b.roce_ip = server_ip;
    b.roce_mac = [0x52, 0x54, 0x00, 0x52, 0x59, 0x01];
    b.oob_mac = [0x52, 0x54, 0x00, 0x52, 0x59, 0x02];
    b.host_forwards.push((fwd, 18515));
    let a = GuestConfig::new(a_port, b_port);
    let v4 = mapped_gid(server_ip);
    let mut server = format!(
        "{GID_TABLE}
idx=$(gid_table | grep '{v4} RoCE v2' | cut -d' ' -f2)
"
    );
    let mut client = String::new();
    for (tool, _, size) in PERFTESTS {
        server.push_str(&format!(
            "timeout 120 {tool} -d rxe0 -x $idx -s {size} -n {ITERS} -p 18515 > /tmp/s.log 2>&1
echo \"{tool} server exit $?\"
sed 's/^/{tool} server: /' /tmp/s.log
"
        ));
        // The server may not listen yet (booting, or still ending the previous tool).
        client.push_str(&format!(
            "rc=1
for i in $(seq 60); do
  if timeout 120 {tool} -d rxe0 -x 1 -s {size} -n {ITERS} -p {fwd} 10.0.2.2 > /tmp/c.log 2>&1; then
    rc=0
    break
  fi
  sleep 1
done
echo \"{tool} client exit $rc after $i tries\"
sed 's/^/{tool} client: /' /tmp/c.log
"
        ));
    }
    let img2 = img.clone();
    let server = std::thread::spawn(move || RxeGuest::run(&img2, &b, &server));
    let run = RxeGuest::run(img, &a, &client).unwrap_or_else(|e| panic!("{e}"));
    let srun = server.join().unwrap().unwrap_or_else(|e| panic!("{e}"));
    report("perftest rxe-to-rxe: client guest", &run);
    report("perftest rxe-to-rxe: server guest", &srun);
    println!(
        "--- client guest ---\n{}--- server guest ---\n{}--- end ---",
        run.output, srun.output
    );
    let o = &run.output;
    assert_eq!((run.status, srun.status), (0, 0), "{o}");
    PERFTESTS
        .iter()
        .map(|&(tool, _, size)| {
            assert!(o.contains(&format!("{tool} client exit 0")), "{o}");
            assert!(
                srun.output.contains(&format!("{tool} server exit 0")),
                "{}",
                srun.output
            );
            result_row(o, &format!("{tool} client: "), size, ITERS)
                .unwrap_or_else(|| panic!("{tool} rxe-to-rxe: no result row:\n{o}"))
        })
        .collect()
}

/// Interop: rdma-core's `ibv_rc_pingpong` and `ibv_ud_pingpong` in the guest (unmodified)
/// against splitrx as their server (`splitrx roce serve --pingpong`, with `--qp-type ud` for
/// UD): splitrx's host side speaks pingpong's out-of-band exchange (reached over slirp at
/// 10.0.2.2), the firmware on the sim board receives each SEND into a page-pool buffer
/// (checked byte for byte: the client's 0x7b; UD: after the 40-byte GRH area) and its
/// requester SENDs the same size back, 50 times; the client must finish with its result lines.
#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn ibv_rc_pingpong_and_ibv_ud_pingpong_in_the_guest_run_against_splitrx() {
    pingpongs_against_splitrx(Board::Sim);
}

/// The same with the firmware on the qemu-virt board (the aarch64 image in QEMU).
#[test]
#[ignore = "boots a Linux VM and the qemu-virt image under QEMU: run by `cargo xtask test` (`cargo xtask interop`)"]
fn ibv_rc_pingpong_and_ibv_ud_pingpong_in_the_guest_run_against_splitrx_on_qemu_virt() {
    pingpongs_against_splitrx(Board::QemuVirt);
}

fn pingpongs_against_splitrx(board: Board) {
    use splitrx_host::roce::QpType;
    pingpong_against_splitrx(board, "ibv_rc_pingpong", QpType::Rc, 4096);
    // UD messages are at most the path MTU (rxe: 1024 on a 1500-byte link).
    pingpong_against_splitrx(board, "ibv_ud_pingpong", QpType::Ud, 1024);
}

fn pingpong_against_splitrx(
    board: Board,
    tool: &str,
    qp_type: splitrx_host::roce::QpType,
    size: u32,
) {
    use splitrx_harness::roce::ServeConfig;
    let Some(img) = image() else { return };
    let what = format!("{tool} -> splitrx on {}", board.name());
    let tcp = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let iters = 50u64;
    let serve_cfg = ServeConfig {
        qp_type,
        pingpong: Some(tcp),
        pingpong_iters: iters,
        pingpong_size: size,
        local_gid: splitrx_host::roce::gid_from_ipv4(FW_IP.octets()),
        ..ServeConfig::default()
    };
    let (run, rep) = serve_against_guest(
        &img,
        board,
        serve_cfg,
        |_| {
            format!(
                "timeout 120 {tool} -d rxe0 -g 1 -s {size} -n {iters} -p {} 10.0.2.2 2>&1\necho \"{tool} exit $?\"\n",
                tcp.port()
            )
        },
        |_| false,
    );
    report(&what, &run);
    println!("--- guest output ---\n{}--- end ---", run.output);
    println!("splitrx: {rep:?}");
    let o = &run.output;
    assert!(o.contains(&format!("{tool} exit 0")), "{o}");
    assert!(
        o.contains(&format!("{} bytes in", 2 * iters * size as u64)),
        "{tool}: no result line:\n{o}"
    );
    assert!(o.contains(&format!("{iters} iters in")), "{o}");
    let pp = rep.pingpong.clone().expect("pingpong mode").unwrap();
    assert_eq!(
        (pp.received, pp.verified, pp.mismatched),
        (iters, iters, 0),
        "{tool}: {pp:?}"
    );
    assert_eq!(
        (pp.sends_posted, pp.sends_completed, pp.send_errors),
        (iters, iters, 0),
        "{tool}: {pp:?}"
    );
    let c = |name: &str| dev_counter(&rep, name);
    assert_eq!(c("req_wqes_completed"), iters);
    assert_eq!(c("req_cqe_error"), 0);
    assert_eq!(c("rx_icrc_errors"), 0);
    assert_eq!(rep.recv_errors, 0);
    assert_eq!(rep.cqe_invalid, 0);
    assert_eq!(rep.audit_error, None);
}

/// Interop: `rping -c -V` in the guest (librdmacm's example: RDMA CM, then per ping a SEND,
/// an RDMA READ by the server, a SEND, an RDMA WRITE by the server, a SEND) against splitrx
/// as the server: the firmware answers the CM, its requester READs each ping's source buffer
/// (checked here byte for byte against rping's pattern) and WRITEs it back to the client's
/// sink, which the client validates (`-V`) and prints.
#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn rping_in_the_guest_pings_splitrx_with_reads_and_writes_validated() {
    rping_pings_against_splitrx(Board::Sim);
}

/// The same with the firmware on the qemu-virt board (the aarch64 image in QEMU).
#[test]
#[ignore = "boots a Linux VM and the qemu-virt image under QEMU: run by `cargo xtask test` (`cargo xtask interop`)"]
fn rping_in_the_guest_pings_splitrx_on_qemu_virt_with_reads_and_writes_validated() {
    rping_pings_against_splitrx(Board::QemuVirt);
}

fn rping_pings_against_splitrx(board: Board) {
    use splitrx_harness::roce::ServeConfig;
    let Some(img) = image() else { return };
    let serve_cfg = ServeConfig {
        cm_port: Some(7471),
        rping: true,
        ..ServeConfig::default()
    };
    let pings = 5;
    let (run, rep) = serve_against_guest(
        &img,
        board,
        serve_cfg,
        |_| {
            format!(
                "timeout 60 rping -c -a {FW_IP} -p 7471 -C {pings} -S 64 -V -v 2>&1\necho \"rping exit $?\"\n"
            )
        },
        |_| false,
    );
    report(&format!("rping -V -> splitrx on {}", board.name()), &run);
    println!("--- guest output ---\n{}--- end ---", run.output);
    println!("splitrx: {rep:?}");
    let o = &run.output;
    assert!(o.contains("rping exit 0"), "{o}");
    for k in 0..pings {
        let want = splitrx_harness::rping::ping_data(k, 64);
        let line = format!("ping data: {}", std::str::from_utf8(&want[..63]).unwrap());
        assert!(o.contains(&line), "no {line:?} in:\n{o}");
    }
    assert!(!o.contains("data mismatch"), "{o}");
    let rp = rep.rping.clone().expect("rping mode");
    assert_eq!(rp.error, None, "{rp:?}");
    assert_eq!(
        (rp.pings, rp.reads_verified, rp.reads_mismatched, rp.writes),
        (pings as u64, pings as u64, 0, pings as u64),
        "{rp:?}"
    );
    let c = |name: &str| dev_counter(&rep, name);
    // Per ping: a READ, a WRITE and two SENDs, all completed.
    assert_eq!(c("req_wqes_completed"), 4 * pings as u64);
    assert_eq!(c("req_cqe_error"), 0);
    assert_eq!(c("cm_rtu_rcvd"), 1);
    assert_eq!(c("cm_drep_sent"), 1);
    assert_eq!(rep.recv_errors, 0);
    assert_eq!(rep.cqe_invalid, 0);
    assert_eq!(rep.audit_error, None);
}

// ---------------------------------------------------------------------------------------------
// The verbs backend (splitrx_host::verbs) against rxe0, inside the guest: the binary
// `splitrx-verbs` (tests/src/bin/splitrx-verbs.rs, feature `verbs`) is built on this host and
// handed to the guest through fw_cfg; `cargo xtask rxe-guest --test` builds it and names it in
// SPLITRX_VERBS_BIN.
// ---------------------------------------------------------------------------------------------

/// The guest binary of the verbs backend's tests.
fn verbs_bin() -> std::path::PathBuf {
    match std::env::var_os("SPLITRX_VERBS_BIN") {
        Some(p) => std::path::PathBuf::from(p),
        None => panic!(
            "SPLITRX_VERBS_BIN is not set: run `cargo xtask rxe-guest --test`, or build \
             `cargo build -p splitrx-harness --features verbs --bin splitrx-verbs` and set it \
             to the binary"
        ),
    }
}

/// Runs `script` in a guest that has `splitrx-verbs`; returns its output (exit 0 asserted).
fn run_verbs(what: &str, script: &str) -> Option<String> {
    let img = image()?;
    let mut cfg = GuestConfig::with_free_ports().unwrap();
    cfg.files.push(("splitrx-verbs".into(), verbs_bin()));
    let run = RxeGuest::run(&img, &cfg, script).unwrap_or_else(|e| panic!("{e}"));
    report(what, &run);
    println!("--- guest output ---\n{}--- end ---", run.output);
    assert_eq!(run.status, 0, "{}", run.output);
    Some(run.output)
}

/// The `RESULT <name> ...` line of `out` (exactly one).
fn result<'a>(out: &'a str, name: &str) -> &'a str {
    let prefix = format!("RESULT {name} ");
    let lines: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    assert_eq!(lines.len(), 1, "RESULT {name} in:\n{out}");
    lines[0].trim()
}

/// Discovery finds rxe0; 64 RC SENDs (1 to 4096 bytes, each a distinct pattern) from one QP of
/// rxe0 to another that receives through a `VerbsSrq` — 16 WQEs, buffers of a 32-buffer page
/// pool — reach the example app (`splitrx_harness::sink`, the same function the sim board
/// runs in `pool_recv.rs`) as tokens with exactly the sent bytes, in order. Holding 4 tokens
/// after a refill the ledger says 4 lent, 16 posted, 12 free; at the end 16 posted, 16 free;
/// after close every buffer is free and nothing was refused.
#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn verbs_rc_sends_land_in_page_pool_tokens_on_rxe0_and_every_buffer_comes_back() {
    let Some(out) = run_verbs(
        "verbs rc",
        "splitrx-verbs devices && splitrx-verbs rc 64\necho \"exit $?\"\n",
    ) else {
        return;
    };
    let dev = result(&out, "device");
    assert!(dev.starts_with("name=rxe0 guid="), "{dev}");
    check_pair(&out, "rc", 64, 4096);
}

/// The exact lines of `splitrx-verbs rc|ud N` (`name`): N messages of `1 + (i * 997) % max`
/// bytes all received and all SENDs completed; 32 buffers, 16 WQEs, 4 tokens held: 4 lent, 16
/// posted, 12 free while held; 16 posted, 16 free at the end; 16 + N WQEs posted in all; after
/// close every buffer free and nothing refused.
fn check_pair(out: &str, name: &str, n: usize, max: usize) {
    let bytes: usize = (0..n).map(|i| 1 + (i * 997) % max).sum();
    assert_eq!(
        result(out, name),
        format!("received={n} bytes={bytes} sends_ok={n}/{n}")
    );
    let held = "outstanding=16 total=32 free=12 posted=16 filled=0 lent=4 lent_frags=4";
    assert_eq!(result(out, &format!("{name}-held")), held);
    let end = "outstanding=16 total=32 free=16 posted=16 filled=0 lent=0 lent_frags=0";
    assert_eq!(result(out, &format!("{name}-end")), end);
    assert_eq!(
        result(out, &format!("{name}-counters")),
        format!(
            "posted={} received={n} errors=0 cqe_invalid=0 first_error=None",
            16 + n
        )
    );
    let closed = "retired=16 total=32 free=32 posted=0 filled=0 lent=0 lent_frags=0";
    assert_eq!(result(out, &format!("{name}-closed")), closed);
}

/// UD through the same SRQ API: 12 SENDs (1 to 1024 bytes) through an address handle to a UD
/// QP on the SRQ arrive behind the 40-byte GRH area, each with its exact bytes; the same exact
/// ledger counts as RC.
#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn verbs_ud_sends_land_behind_the_grh_in_page_pool_tokens_on_rxe0() {
    let Some(out) = run_verbs("verbs ud", "splitrx-verbs ud 12\necho \"exit $?\"\n") else {
        return;
    };
    check_pair(&out, "ud", 12, 1024);
}

/// The `DeviceWindow` provider over a real dmabuf: a memfd (sealed against shrinking) made a
/// dmabuf by `/dev/udmabuf` (the 6.12 guest kernel has `CONFIG_UDMABUF=y`), mapped by the
/// provider, carved into 8 buffers of 4096 bytes, each lent as a token whose bytes are those
/// written through the memfd (the same pages: a later write shows through), every buffer
/// reclaimed when the tokens drop. `ibv_reg_dmabuf_mr` of that dmabuf on rxe0 is refused with
/// the clear error kind (`VerbsError::DmabufUnsupported`, EOPNOTSUPP: rxe's provider has no
/// dmabuf MR).
#[test]
#[ignore = "boots a Linux VM under QEMU: run by `cargo xtask test` (`cargo xtask rxe-guest --test`)"]
fn verbs_dmabuf_window_over_a_udmabuf_and_rxe_refuses_a_dmabuf_mr() {
    let Some(out) = run_verbs("verbs dmabuf", "splitrx-verbs dmabuf\necho \"exit $?\"\n") else {
        return;
    };
    assert_eq!(
        result(&out, "dmabuf-window"),
        "count=8 buf_size=4096 bus_base=0x100000000 mapped=true"
    );
    assert_eq!(
        result(&out, "dmabuf-lent"),
        "tokens=8 bytes_match=8 total=8 free=0 posted=0 filled=0 lent=8 lent_frags=8"
    );
    assert_eq!(result(&out, "dmabuf-shared"), "byte5=Some(a5)");
    assert_eq!(
        result(&out, "dmabuf-reclaimed"),
        "total=8 free=8 posted=0 filled=0 lent=0 lent_frags=0"
    );
    assert_eq!(
        result(&out, "dmabuf-mr"),
        "unsupported errno=95 (Operation not supported (os error 95))"
    );
    assert_eq!(
        result(&out, "dmabuf-destroyed"),
        "deferred=false tokens_outstanding=0"
    );
}
