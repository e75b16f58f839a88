//! The split decision and the wire parsers over the real capture files in
//! `testdata/captures/` (Ethernet link type only; raw-IP and SLL files are skipped).
mod wire_support;

use splitrx_shared::split::*;
use splitrx_shared::wire::roce::{self, BthPacket};
use splitrx_shared::wire::{TcpOption, TcpPacket};
use std::collections::BTreeMap;
use wire_support::*;

fn cfg(hds_thresh: u32) -> SplitConfig {
    SplitConfig {
        hds_thresh,
        verify_icrc: true,
    }
}

fn split0(f: &Frame) -> SplitResult {
    split(&f.data, &cfg(0))
}

/// Invariants every result must hold, whatever the frame.
fn check_invariants(frame: &[u8], c: &SplitConfig, r: &SplitResult) {
    let n = frame.len() as u64;
    assert_eq!(r.split, r.reason == NoSplitReason::Split, "{r:?}");
    if r.split {
        assert!(
            matches!(
                r.class,
                FrameClass::Tcp | FrameClass::Udp | FrameClass::Roce
            ),
            "{r:?}"
        );
        assert!(r.payload_len.unwrap() > c.hds_thresh, "{r:?}");
    }
    if let (Some(o), Some(l)) = (r.payload_offset, r.payload_len) {
        assert!(o as u64 + l as u64 <= n, "payload past the frame: {r:?}");
        assert!(r.l4_offset.unwrap() < o, "{r:?}");
    }
    assert_eq!(r.payload_offset.is_some(), r.payload_len.is_some());
    assert_eq!(r.class == FrameClass::Malformed, r.error.is_some(), "{r:?}");
    assert_eq!(
        r.class == FrameClass::Malformed,
        r.reason == NoSplitReason::Malformed
    );
    if r.class == FrameClass::Malformed {
        assert_eq!(
            (r.payload_offset, r.payload_len, r.split),
            (None, None, false)
        );
    }
    if r.reason == NoSplitReason::BelowThresh {
        assert!(r.payload_len.unwrap() <= c.hds_thresh);
    }
    for o in [r.l3_offset, r.l4_offset, r.outer_l3_offset]
        .into_iter()
        .flatten()
    {
        assert!((o as u64) <= n, "offset past the frame: {r:?}");
    }
    assert_eq!(r.outer_l3_offset.is_some(), r.outer_ip_version != 0);
    if r.roce.is_some() && r.class != FrameClass::Malformed {
        assert_eq!(r.class, FrameClass::Roce);
    }
    if let Some(RoceInfo { icrc_ok, .. }) = r.roce {
        assert_eq!(icrc_ok.is_some(), c.verify_icrc);
    }
}

fn find(frames: &[Frame], number: usize) -> &Frame {
    frames.iter().find(|f| f.number == number).unwrap()
}

/// Every RoCEv2 frame of the captures carries a correct ICRC, and our CRC agrees with it;
/// every flipped bit after the BTH is detected.
#[test]
fn roce_captures_icrc_verifies() {
    let want: BTreeMap<&str, usize> = [
        ("roce__nccl_ring2_node0.pcap", 184),
        ("roce__pingpong_uc.pcap", 10),
        ("roce__pingpong_ud.pcap", 10),
        ("roce__rdma_atomic_bw.pcap", 10),
        ("roce__rdma_cm.pcap", 96),
        ("roce__rdma_read_bw.pcap", 20),
        ("roce__rdma_read_lat.pcap", 10),
        ("roce__rdma_send_bw.pcap", 20),
        ("roce__rdma_write_bw.pcap", 20),
        ("roce__rdma_write_lat.pcap", 20),
        ("roce__rping.pcap", 65),
    ]
    .into_iter()
    .collect();
    let mut got = BTreeMap::new();
    for name in want.keys() {
        for f in frames_of(name) {
            let r = split0(&f);
            if r.class != FrameClass::Roce {
                continue;
            }
            *got.entry(*name).or_insert(0) += 1;
            let info = r.roce.unwrap();
            assert_eq!(info.icrc_ok, Some(true), "{} #{}", f.file, f.number);
            // With verification off, no verdict.
            let off = split(
                &f.data,
                &SplitConfig {
                    hds_thresh: 0,
                    verify_icrc: false,
                },
            );
            assert_eq!(off.roce.unwrap().icrc_ok, None);
            assert_eq!(
                SplitResult {
                    roce: r.roce.map(|i| RoceInfo { icrc_ok: None, ..i }),
                    ..r
                },
                off
            );
            // Corrupt one payload/header byte after the BTH: the ICRC must catch it, but the
            // split decision must not change.
            let mut bad = f.data.clone();
            let i = r.l4_offset.unwrap() as usize + 8 + 12;
            bad[i] ^= 0x01;
            let rb = split(&bad, &cfg(0));
            assert_eq!(
                rb.roce.unwrap().icrc_ok,
                Some(false),
                "{} #{}",
                f.file,
                f.number
            );
            // ... while a change in a masked field (TTL, UDP checksum, BTH resv8a) does not.
            let mut masked = f.data.clone();
            masked[r.l3_offset.unwrap() as usize + 8] ^= 0x55;
            masked[r.l4_offset.unwrap() as usize + 6] ^= 0x55;
            masked[r.l4_offset.unwrap() as usize + 8 + 4] ^= 0x55;
            assert_eq!(split(&masked, &cfg(0)).roce.unwrap().icrc_ok, Some(true));
        }
    }
    assert_eq!(got, want);
}

/// RoCE payload boundaries by opcode, against the extended-header lengths tshark shows.
#[test]
fn roce_payload_offsets() {
    // (file, frame, opcode, payload offset, payload length); Ethernet 14 + IPv4 20 + UDP 8 +
    // BTH 12 = 54 before the extended headers.
    let cases = [
        ("roce__rping.pcap", 1, 0x64, 54 + 8, 256), // UD SEND only: DETH
        ("roce__rping.pcap", 4, 0x04, 54, 16),      // RC SEND only
        ("roce__rping.pcap", 5, 0x11, 54 + 4, 0),   // ACK: AETH
        ("roce__rping.pcap", 6, 0x0c, 54 + 16, 0),  // READ request: RETH
        ("roce__rping.pcap", 7, 0x10, 54 + 4, 64),  // READ response only: AETH
    ];
    for (file, n, op, off, len) in cases {
        let frames = frames_of(file);
        let r = split0(find(&frames, n));
        assert_eq!(r.roce.unwrap().opcode, op, "{file} #{n}");
        assert_eq!(
            (r.payload_offset, r.payload_len),
            (Some(off), Some(len)),
            "{file} #{n}"
        );
    }
    // Every RoCE frame: payload + pad + ICRC ends exactly at the UDP end, and the extended
    // header length matches the opcode table.
    let mut opcodes = BTreeMap::new();
    for f in all_ethernet_frames()
        .iter()
        .filter(|f| f.file.starts_with("roce__"))
    {
        let r = split0(f);
        let Some(info) = r.roce else { continue };
        let l4 = r.l4_offset.unwrap() as usize;
        let bth = BthPacket::new_checked(&f.data[l4 + 8..]).unwrap();
        let layout = roce::RoceLayout::lookup(bth.opcode()).unwrap();
        assert_eq!(
            r.payload_offset.unwrap() as usize,
            l4 + 8 + 12 + layout.ext_len as usize
        );
        let udp_len = u16::from_be_bytes([f.data[l4 + 4], f.data[l4 + 5]]) as usize;
        assert_eq!(
            r.payload_offset.unwrap() as usize
                + r.payload_len.unwrap() as usize
                + bth.pad_count() as usize
                + 4,
            l4 + udp_len
        );
        *opcodes.entry(info.opcode).or_insert(0) += 1;
    }
    // The opcode mix the captures README lists (WRITE_ONLY 0x0a: 10+5+32+... etc.).
    for op in [
        0x00, 0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    ] {
        assert!(
            opcodes.contains_key(&op),
            "opcode {op:#x} missing: {opcodes:?}"
        );
    }
    for op in [0x10, 0x11, 0x12, 0x14, 0x24, 0x64] {
        assert!(
            opcodes.contains_key(&op),
            "opcode {op:#x} missing: {opcodes:?}"
        );
    }
    assert_eq!(opcodes.values().sum::<usize>(), 465);
}

/// No frame of any capture, and no prefix of one, makes split() panic or break an invariant.
#[test]
fn all_frames_and_truncations_hold_invariants() {
    let frames = all_ethernet_frames();
    assert_eq!(frames.len(), 1421);
    for f in &frames {
        for t in [0, 1, 64, 100, 1000, u32::MAX] {
            let c = SplitConfig {
                hds_thresh: t,
                verify_icrc: t % 2 == 0,
            };
            check_invariants(&f.data, &c, &split(&f.data, &c));
        }
        // Every prefix of small frames, a sample of prefixes of the super-frames.
        let step = if f.data.len() > 2048 { 61 } else { 1 };
        for end in (0..f.data.len()).step_by(step) {
            let c = cfg(0);
            let r = split(&f.data[..end], &c);
            check_invariants(&f.data[..end], &c, &r);
        }
    }
}

/// The class mix over all captures (a regression pin on the whole decision table).
#[test]
fn class_summary() {
    let mut got: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for f in all_ethernet_frames() {
        let r = split0(&f);
        *got.entry((r.class.as_str(), r.reason.as_str()))
            .or_default() += 1;
    }
    let want: BTreeMap<(&str, &str), usize> = [
        (("fragment", "fragment"), 85),
        (("malformed", "malformed"), 14),
        (("non_ip", "non_ip"), 100),
        (("other_ip", "fragment"), 16),
        (("other_ip", "unknown_proto"), 98),
        (("roce", "below_hds_thresh"), 193),
        (("roce", "split"), 272),
        (("tcp", "below_hds_thresh"), 275),
        (("tcp", "split"), 333),
        (("udp", "below_hds_thresh"), 3),
        (("udp", "split"), 32),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want);
    // Counters agree with the per-frame results.
    let mut c = SplitCounters::default();
    for f in all_ethernet_frames() {
        c.record(&split0(&f));
    }
    assert_eq!((c.frames, c.split, c.not_split), (1421, 637, 784));
    assert_eq!(c.per_class[FrameClass::Roce as usize], 465);
    assert_eq!(c.per_reason[NoSplitReason::Fragment as usize], 101);
    assert_eq!((c.icrc_bad, c.tunnelled), (0, 39 + 10 + 2));
}

#[test]
fn vlan_and_qinq_offsets() {
    // One 802.1Q tag: IPv4 at 18.
    let f = frames_of("pcapplusplus__frag_with_padding.pcap");
    assert_eq!(split0(&f[0]).l3_offset, Some(18));
    // 802.1ad S-tag + 802.1Q C-tag: IPv4 at 22, ICMP.
    let f = frames_of("pcapplusplus__QinQ_802.1_AD.pcapng");
    assert_eq!(&f[0].data[12..14], &[0x88, 0xa8]);
    let r = split0(&f[0]);
    assert_eq!(
        (r.outer_l3_offset, r.l3_offset, r.l4_offset),
        (Some(22), Some(22), Some(42))
    );
    assert_eq!(
        (r.class, r.reason),
        (FrameClass::OtherIp, NoSplitReason::UnknownProto)
    );
    // 0x8100/0x8100 QinQ ICMP.
    let f = frames_of("pcapplusplus__VlanPackets.pcap");
    let qinq: Vec<_> = f
        .iter()
        .filter(|f| f.data[12..14] == [0x81, 0] && f.data[16..18] == [0x81, 0])
        .collect();
    assert_eq!(qinq.len(), 20);
    for f in qinq {
        assert_eq!(split0(f).l3_offset, Some(22));
    }
    // QinQ ARP: not IP.
    for f in frames_of("tcpdump__802.1ad_QinQ.pcap") {
        let r = split0(&f);
        assert_eq!(
            (r.class, r.l3_offset, r.outer_ip_version),
            (FrameClass::NonIp, None, 0)
        );
    }
}

#[test]
fn tunnel_inner_offsets() {
    // VXLAN: Eth 14 + IPv4 20 + UDP 8 + VXLAN 8 + inner Eth 14 = 64; inner ICMP or ARP.
    for f in frames_of("tcpdump__vxlan.pcap") {
        let r = split0(&f);
        assert_eq!(r.tunnel, Some(Tunnel::Vxlan));
        assert_eq!(r.outer_l3_offset, Some(14));
        if f.data[62..64] == [0x08, 0x06] {
            // Inner ARP: no innermost IP/L4 header (not the outer ones).
            assert_eq!(
                (r.class, r.l3_offset, r.l4_offset),
                (FrameClass::NonIp, None, None)
            );
        } else {
            assert_eq!(
                (r.class, r.l3_offset, r.l4_offset),
                (FrameClass::OtherIp, Some(64), Some(84))
            );
        }
    }
    // Geneve: 8 bytes of options move the inner frame from 64 to 72.
    let mut with_opts = 0;
    for f in frames_of("tcpdump__geneve.pcap") {
        let r = split0(&f);
        assert_eq!(r.tunnel, Some(Tunnel::Geneve));
        let opt_len = (f.data[42] & 0x3f) as u32 * 4;
        with_opts += (opt_len > 0) as usize;
        assert_eq!(r.l3_offset, Some(64 + opt_len), "#{}", f.number);
        if r.class == FrameClass::Tcp {
            let l4 = r.l4_offset.unwrap() as usize;
            let tcp = TcpPacket::new_checked(&f.data[l4..]).unwrap();
            assert_eq!(r.payload_offset, Some((l4 + tcp.header_len()) as u32));
            // The inner IP total length, not the frame, bounds the payload.
            let ip_end = r.l3_offset.unwrap() as usize
                + u16::from_be_bytes([
                    f.data[r.l3_offset.unwrap() as usize + 2],
                    f.data[r.l3_offset.unwrap() as usize + 3],
                ]) as usize;
            assert_eq!(
                r.payload_offset.unwrap() + r.payload_len.unwrap(),
                ip_end as u32
            );
        }
    }
    assert_eq!(with_opts, 19);
    // GSO super-frames: IPv4/UDP/VXLAN/Eth/IPv6/TCP and IPv6/UDP/Geneve/Eth/IPv6/TCP.
    let r = split0(&frames_of("tcpdump__gso-ipv4-vxlan-ipv6.pcap")[0]);
    assert_eq!(
        (r.class, r.tunnel, r.split),
        (FrameClass::Tcp, Some(Tunnel::Vxlan), true)
    );
    assert_eq!(
        (r.l3_offset, r.l4_offset, r.payload_offset, r.payload_len),
        (Some(64), Some(104), Some(136), Some(4134))
    );
    let r = split0(&frames_of("tcpdump__gso-ipv6-geneve-ipv6.pcap")[0]);
    assert_eq!(
        (r.class, r.tunnel, r.outer_ip_version),
        (FrameClass::Tcp, Some(Tunnel::Geneve), 6)
    );
    assert_eq!(
        (r.l3_offset, r.l4_offset, r.payload_offset, r.payload_len),
        (Some(84), Some(124), Some(156), Some(6790))
    );
}

#[test]
fn ipv6_extension_headers() {
    // Hop-by-Hop + Jumbo Payload, BIG TCP: 14 + 40 + HBH 8 = 62, TCP with timestamps (32).
    let f = &frames_of("tcpdump__bigtcp-ipv6-hbh.pcap")[0];
    assert_eq!(&f.data[18..20], &[0, 0]); // payload length 0
    let r = split0(f);
    assert_eq!(
        (r.class, r.l4_offset, r.payload_offset, r.payload_len),
        (FrameClass::Tcp, Some(62), Some(94), Some(80000))
    );
    assert_eq!(
        r.payload_offset.unwrap() + r.payload_len.unwrap(),
        f.data.len() as u32
    );
    // Jumbogram ICMPv6.
    let r = split0(&frames_of("tcpdump__ipv6_jumbogram_1.pcap")[0]);
    assert_eq!((r.class, r.l4_offset), (FrameClass::OtherIp, Some(62)));
    // SRH (40 bytes) + ICMPv6.
    let r = split0(&frames_of("tcpdump__ipv6-srh-ext-header.pcap")[0]);
    assert_eq!((r.class, r.l4_offset), (FrameClass::OtherIp, Some(94)));
    // Type-0 routing header, then UDP with an empty payload (frames 3, 4).
    let f = frames_of("tcpdump__ipv6-routing-header.pcap");
    let r = split0(&f[2]);
    assert_eq!(
        (
            r.class,
            r.reason,
            r.l4_offset,
            r.payload_offset,
            r.payload_len
        ),
        (
            FrameClass::Udp,
            NoSplitReason::BelowThresh,
            Some(78),
            Some(86),
            Some(0)
        )
    );
    let r = split0(&f[3]);
    assert_eq!((r.l4_offset, r.payload_offset), (Some(94), Some(102)));
    // HBH, routing, destination options: UDP with 10 payload bytes after 48 bytes of ext
    // headers (frame 6), OSPF/ICMPv6 (OtherIp) behind the others.
    let f = frames_of("pcapplusplus__ipv6_options.pcap");
    let r = split0(&f[5]);
    assert_eq!(
        (
            r.class,
            r.split,
            r.l4_offset,
            r.payload_offset,
            r.payload_len
        ),
        (FrameClass::Udp, true, Some(62), Some(70), Some(10))
    );
    let l4s: Vec<_> = f.iter().map(|f| split0(f).l4_offset).collect();
    assert_eq!(
        l4s,
        [Some(94), Some(94), Some(78), Some(54), Some(62), Some(62)]
    );
}

#[test]
fn big_tcp_ipv4_total_length_zero() {
    let f = &frames_of("tcpdump__bigtcp-ipv4.pcap")[0];
    assert_eq!(&f.data[16..18], &[0, 0]);
    let r = split0(f);
    assert_eq!(
        (
            r.class,
            r.split,
            r.l4_offset,
            r.payload_offset,
            r.payload_len
        ),
        (FrameClass::Tcp, true, Some(34), Some(66), Some(80000))
    );
    let tcp = TcpPacket::new_checked(&f.data[34..]).unwrap();
    assert!(tcp
        .options()
        .any(|o| matches!(o, Ok(TcpOption::Timestamps { .. }))));
}

#[test]
fn fragments_are_not_split() {
    let check = |file: &str, first: &[usize], n: usize| {
        let f = frames_of(file);
        assert_eq!(f.len(), n, "{file}");
        for f in &f {
            let r = split0(f);
            assert!(!r.split);
            assert_eq!(r.reason, NoSplitReason::Fragment, "{file} #{}", f.number);
            if first.contains(&f.number) {
                assert_eq!(r.class, FrameClass::OtherIp, "{file} #{}", f.number);
                assert!(r.l4_offset.is_some());
            } else {
                assert_eq!(
                    (r.class, r.l4_offset),
                    (FrameClass::Fragment, None),
                    "{file} #{}",
                    f.number
                );
            }
            assert_eq!((r.payload_offset, r.payload_len), (None, None));
        }
    };
    check("pcapplusplus__IPv4Frag.pcap", &[1], 3);
    check("pcapplusplus__frag_with_padding.pcap", &[8], 8);
    check("pcapplusplus__ipv6_opt_fragments.pcap", &[1], 4);
    let f = frames_of("pcapplusplus__ip4_fragments.pcap");
    let frag = f
        .iter()
        .filter(|f| split0(f).reason == NoSplitReason::Fragment)
        .count();
    assert_eq!(frag, 50);
    let f = frames_of("pcapplusplus__ip6_fragments.pcap");
    let frag = f
        .iter()
        .filter(|f| split0(f).reason == NoSplitReason::Fragment)
        .count();
    assert_eq!(frag, 36);
}

#[test]
fn malformed_captures() {
    let cases: [(&str, usize, Malformed); 14] = [
        (
            "pcapplusplus__ipv4-malformed.pcap",
            1,
            Malformed::BadIpv4TotalLen,
        ),
        (
            "pcapplusplus__ipv4-malformed.pcap",
            2,
            Malformed::BadIpVersion,
        ),
        (
            "pcapplusplus__tcp-malformed.pcap",
            1,
            Malformed::BadTcpDataOffset,
        ),
        (
            "pcapplusplus__tcp-malformed.pcap",
            2,
            Malformed::BadTcpDataOffset,
        ),
        (
            "tcpdump__esp_truncated.pcap",
            1,
            Malformed::IpLengthExceedsFrame,
        ),
        (
            "tcpdump__ipv4_invalid_hdr_length.pcap",
            1,
            Malformed::BadIpv4HeaderLen,
        ),
        (
            "tcpdump__ipv4_invalid_total_length.pcap",
            1,
            Malformed::IpLengthExceedsFrame,
        ),
        ("tcpdump__ipv6-bad-version.pcap", 2, Malformed::BadIpVersion),
        ("tcpdump__ipv6-bad-version.pcap", 4, Malformed::BadIpVersion),
        (
            "tcpdump__ipv6-srh-tlv-pad1-padn-5-trunc.pcap",
            1,
            Malformed::IpLengthExceedsFrame,
        ),
        ("tcpdump__ipv6_invalid_length.pcap", 1, Malformed::Truncated),
        (
            "tcpdump__tcp_header_heapoverflow.pcap",
            1,
            Malformed::IpLengthExceedsFrame,
        ),
        (
            "tcpdump__tcp_rst_data-trunc.pcap",
            1,
            Malformed::IpLengthExceedsFrame,
        ),
        (
            "tcpdump__udp-length-heapoverflow.pcap",
            1,
            Malformed::IpLengthExceedsFrame,
        ),
    ];
    for (file, n, want) in cases {
        let frames = frames_of(file);
        let r = split0(find(&frames, n));
        assert_eq!(
            (r.class, r.reason, r.error),
            (FrameClass::Malformed, NoSplitReason::Malformed, Some(want)),
            "{file} #{n}"
        );
        assert!(!r.split);
    }
    // The good frames of ipv6-bad-version are ICMPv6.
    let f = frames_of("tcpdump__ipv6-bad-version.pcap");
    assert_eq!(split0(&f[0]).class, FrameClass::OtherIp);
    // MPLS in front of the bad IPv4: not IP to us.
    assert_eq!(
        split0(&frames_of("pcapplusplus__ip4_bad_fragment.pcap")[0]).class,
        FrameClass::NonIp
    );
}

#[test]
fn ethernet_padding_is_not_payload() {
    // The last fragment of frag_with_padding is a 60-byte frame whose IP datagram is shorter.
    // Find plain TCP frames with padding (bare ACKs in 60-byte frames) and check payload 0.
    let mut seen = 0;
    for f in all_ethernet_frames() {
        let r = split0(&f);
        if r.class == FrameClass::Tcp && r.tunnel.is_none() && f.data.len() == 60 {
            let l3 = r.l3_offset.unwrap() as usize;
            if f.data[12..14] == [0x08, 0x00] {
                let tl = u16::from_be_bytes([f.data[l3 + 2], f.data[l3 + 3]]) as usize;
                if l3 + tl < 60 {
                    seen += 1;
                    assert_eq!(
                        r.payload_offset.unwrap() + r.payload_len.unwrap(),
                        (l3 + tl) as u32
                    );
                }
            }
        }
    }
    assert!(seen >= 10, "{seen}");
}

/// Seed corpus for the `parse_split` fuzz target: `cargo test -p splitrx-shared --test
/// wire_captures -- --ignored write_fuzz_seed_corpus`. Writes one file per frame (frames over
/// 16 KiB are cut: libFuzzer's default -max_len is far below).
#[test]
#[ignore]
fn write_fuzz_seed_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse_split");
    std::fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    for f in all_ethernet_frames() {
        // First byte = hds_thresh selector for the fuzz target; the rest is the frame.
        let mut seed = vec![0u8];
        seed.extend_from_slice(&f.data[..f.data.len().min(16384)]);
        std::fs::write(dir.join(format!("{}-{}", f.file, f.number)), seed).unwrap();
        n += 1;
    }
    println!("wrote {n} seeds to {}", dir.display());
}

/// The split configurations of the on-target agreement test (written into its blob).
const TARGET_CONFIGS: [SplitConfig; 2] = [
    SplitConfig {
        hds_thresh: 0,
        verify_icrc: true,
    },
    SplitConfig {
        hds_thresh: 256,
        verify_icrc: false,
    },
];

/// The blob the Cortex-M on-target test (`boards/mps2-an500/tests/split_agreement.rs`) links:
/// every Ethernet frame of the captures with the host's [`SplitResult::fingerprint`] under each
/// of [`TARGET_CONFIGS`]. Little-endian throughout:
///
/// ```text
/// b"SRXSPLIT"  u32 configs C  C x (u32 hds_thresh, u32 verify_icrc)  u32 frames N
/// N x (u32 frame number, u32 frame length, u8 name length, name, C x u32 fingerprint, frame)
/// ```
fn target_split_blob() -> (Vec<u8>, usize) {
    let mut b = b"SRXSPLIT".to_vec();
    b.extend_from_slice(&(TARGET_CONFIGS.len() as u32).to_le_bytes());
    for c in &TARGET_CONFIGS {
        b.extend_from_slice(&c.hds_thresh.to_le_bytes());
        b.extend_from_slice(&u32::from(c.verify_icrc).to_le_bytes());
    }
    let frames = all_ethernet_frames();
    b.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    for f in &frames {
        b.extend_from_slice(&(f.number as u32).to_le_bytes());
        b.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
        b.push(f.file.len() as u8);
        b.extend_from_slice(f.file.as_bytes());
        for c in &TARGET_CONFIGS {
            b.extend_from_slice(&split(&f.data, c).fingerprint().to_le_bytes());
        }
        b.extend_from_slice(&f.data);
    }
    (b, frames.len())
}

/// The blob is deterministic and covers every frame; fingerprints tell results apart.
#[test]
fn target_split_blob_is_stable() {
    let (a, n) = target_split_blob();
    let (b, m) = target_split_blob();
    assert_eq!((a.len(), n), (b.len(), m));
    assert!(a == b);
    assert_eq!(n, all_ethernet_frames().len());
    assert!(n > 1000, "{n} frames");
    // Equal results, equal fingerprints; any field changed, another fingerprint.
    let r = split0(find(&frames_of("pcapplusplus__tls.pcap"), 1));
    assert_eq!(r.fingerprint(), { r }.fingerprint());
    let fields = [
        SplitResult {
            split: !r.split,
            ..r
        },
        SplitResult {
            payload_offset: r.payload_offset.map(|o| o + 1),
            ..r
        },
        SplitResult {
            outer_ip_version: 5,
            ..r
        },
        SplitResult {
            error: Some(Malformed::BadUdpLength),
            ..r
        },
    ];
    for other in fields {
        assert_ne!(other.fingerprint(), r.fingerprint(), "{other:?}");
    }
}

/// Writes the on-target agreement blob to `$SPLITRX_SPLIT_BLOB` (`cargo xtask test` and
/// `cargo xtask flash` do this before building the Cortex-M images).
#[test]
#[ignore]
fn write_target_split_blob() {
    let path = std::env::var_os("SPLITRX_SPLIT_BLOB").expect("set SPLITRX_SPLIT_BLOB");
    let (blob, n) = target_split_blob();
    std::fs::write(&path, &blob).unwrap();
    println!(
        "wrote {n} frames ({} bytes) to {}",
        blob.len(),
        std::path::Path::new(&path).display()
    );
}
