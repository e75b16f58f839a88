//! The synthetic traffic generator checked against independent implementations: etherparse
//! parses every frame (header offsets, payload, IP/TCP/UDP checksums). The ICRC the generator
//! fills is `splitrx_shared::wire::roce`'s, proven on every real RoCEv2 capture frame in
//! `shared/tests/wire_captures.rs` and `shared/tests/wire_emit.rs`; here it is verified on
//! every generated RoCE frame.
use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use splitrx_shared::split::{FrameClass, Tunnel};
use splitrx_shared::wire::roce;
use splitrx_sim::traffic::{
    opcode, payload_mismatch, FrameTruth, Generator, RoceOp, TrafficSpec, MAX_FRAME, MIN_FRAME,
};

fn offset_in(frame: &[u8], part: &[u8]) -> u32 {
    (part.as_ptr() as usize - frame.as_ptr() as usize) as u32
}

/// Whether the ICRC of a generated RoCE frame is right (the datagram ends where the UDP
/// length says: Ethernet padding is not covered).
fn icrc_ok(frame: &[u8], t: &FrameTruth, v6: bool) -> bool {
    let l4 = t.l4_offset as usize;
    let end = l4 + usize::from(u16::from_be_bytes([frame[l4 + 4], frame[l4 + 5]]));
    let version = if v6 { 6 } else { 4 };
    roce::verify_icrc(
        frame,
        t.l3_offset as usize,
        version,
        l4,
        end - roce::ICRC_LEN,
    ) == Some(true)
}

/// Checks one generated frame against etherparse and returns the number of checksums verified.
fn check_frame(frame: &[u8], t: &FrameTruth) -> usize {
    assert_eq!(t.frame_len as usize, frame.len());
    assert!(frame.len() >= MIN_FRAME && frame.len() <= MAX_FRAME);
    let mut checksums = 0;
    let mut p = SlicedPacket::from_ethernet(frame).expect("etherparse parses the frame");
    let outer_net = p.net.clone().unwrap();
    let outer_l3 = match &outer_net {
        NetSlice::Ipv4(ip) => {
            assert_eq!(t.outer_ip_version, 4);
            let h = ip.header();
            assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
            checksums += 1;
            offset_in(frame, h.slice())
        }
        NetSlice::Ipv6(ip) => {
            assert_eq!(t.outer_ip_version, 6);
            offset_in(frame, ip.header().slice())
        }
    };
    assert_eq!(outer_l3, t.outer_l3_offset);
    let mut base = frame;
    if t.tunnel == Some(Tunnel::Vxlan) {
        let Some(TransportSlice::Udp(udp)) = &p.transport else {
            panic!("outer UDP")
        };
        assert_eq!(udp.destination_port(), 4789);
        assert_eq!(udp.checksum(), 0);
        let vx = udp.payload();
        assert_eq!(vx[0], 0x08);
        assert_eq!(
            u32::from_be_bytes(vx[4..8].try_into().unwrap()) >> 8,
            t.flow + 1
        );
        base = &vx[8..];
        p = SlicedPacket::from_ethernet(base).expect("inner frame parses");
    }
    let inner_off = offset_in(frame, base);
    let (src, dst): (Vec<u8>, Vec<u8>) = match p.net.as_ref().unwrap() {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            assert_eq!(inner_off + offset_in(base, h.slice()), t.l3_offset);
            assert_eq!(h.to_header().calc_header_checksum(), h.header_checksum());
            if t.tunnel.is_some() {
                checksums += 1;
            }
            (h.source().to_vec(), h.destination().to_vec())
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            assert_eq!(inner_off + offset_in(base, h.slice()), t.l3_offset);
            (h.source().to_vec(), h.destination().to_vec())
        }
    };
    let v6 = src.len() == 16;
    match p.transport.as_ref().expect("transport parsed") {
        TransportSlice::Tcp(tcp) => {
            assert_eq!(t.class, FrameClass::Tcp);
            assert_eq!(offset_in(frame, tcp.header_slice()), t.l4_offset);
            assert_eq!(tcp.data_offset(), 8);
            assert_eq!(offset_in(frame, tcp.payload()), t.payload_offset);
            assert_eq!(tcp.payload().len() as u32, t.payload_len);
            let want = if v6 {
                tcp.calc_checksum_ipv6(src.try_into().unwrap(), dst.try_into().unwrap())
            } else {
                tcp.calc_checksum_ipv4(src.try_into().unwrap(), dst.try_into().unwrap())
            };
            assert_eq!(want.unwrap(), tcp.checksum());
            checksums += 1;
        }
        TransportSlice::Udp(udp) => {
            assert_eq!(offset_in(frame, udp.header_slice()), t.l4_offset);
            let h = udp.to_header();
            if let Some(r) = t.roce {
                assert_eq!(t.class, FrameClass::Roce);
                assert_eq!(udp.destination_port(), 4791);
                let bth = udp.payload();
                assert_eq!(bth[0], r.opcode);
                assert_eq!(bth[1] >> 4 & 3, r.pad);
                assert_eq!(u32::from_be_bytes(bth[4..8].try_into().unwrap()), r.dest_qp);
                assert_eq!(
                    u32::from_be_bytes(bth[8..12].try_into().unwrap()) & 0xff_ffff,
                    r.psn
                );
                let reth = matches!(r.opcode, opcode::WRITE_FIRST | opcode::WRITE_ONLY);
                let hdrs = 12 + if reth { 16 } else { 0 };
                assert_eq!(t.payload_offset, offset_in(frame, bth) + hdrs);
                assert_eq!(
                    t.payload_len as usize + usize::from(r.pad) + 4,
                    bth.len() - hdrs as usize
                );
                if reth {
                    assert_eq!(
                        u64::from_be_bytes(bth[12..20].try_into().unwrap()),
                        r.va.unwrap()
                    );
                    assert_eq!(
                        u32::from_be_bytes(bth[20..24].try_into().unwrap()),
                        r.rkey.unwrap()
                    );
                    assert_eq!(
                        u32::from_be_bytes(bth[24..28].try_into().unwrap()),
                        r.msg_len
                    );
                }
                assert!(bth[bth.len() - 4 - usize::from(r.pad)..bth.len() - 4]
                    .iter()
                    .all(|&b| b == 0));
                assert!(icrc_ok(frame, t, v6));
                // A flipped PSN bit breaks it.
                let mut bad = frame.to_vec();
                bad[t.l4_offset as usize + 8 + 11] ^= 0x40;
                assert!(!icrc_ok(&bad, t, v6));
                checksums += 1;
                if !v6 {
                    assert_eq!(udp.checksum(), 0);
                    return checksums;
                }
            } else {
                assert_eq!(t.class, FrameClass::Udp);
                assert_eq!(offset_in(frame, udp.payload()), t.payload_offset);
                assert_eq!(udp.payload().len() as u32, t.payload_len);
            }
            let want = if v6 {
                h.calc_checksum_ipv6_raw(
                    src.try_into().unwrap(),
                    dst.try_into().unwrap(),
                    udp.payload(),
                )
            } else {
                h.calc_checksum_ipv4_raw(
                    src.try_into().unwrap(),
                    dst.try_into().unwrap(),
                    udp.payload(),
                )
            };
            assert_eq!(want.unwrap(), udp.checksum());
            checksums += 1;
        }
        other => panic!("unexpected transport {other:?}"),
    }
    checksums
}

#[test]
fn every_flow_kind_parses_with_etherparse() {
    let spec = TrafficSpec::parse(
        "tcp4:0-9000,tcp6:0-9000,udp4:0-9000,udp6:0-9000,vlan-tcp4:1500,vlan7-udp6:1/2/3,\
         vxlan-tcp:0-9000,vxlan-udp:0-9000,vlan-vxlan:64,roce-write:0-20000@1024,\
         roce-send:0-20000@256,roce6-write:1-9000@4096,roce6-send:0-9000@2048,vlan-roce-write:33",
    )
    .unwrap();
    let mut g = Generator::new(&spec, 0xdead_beef);
    let mut per_flow = vec![0u32; spec.flows().len()];
    let mut checksums = 0;
    for f in g.by_ref().take(6000) {
        checksums += check_frame(&f.bytes, &f.truth);
        assert_eq!(
            payload_mismatch(
                f.truth.flow,
                f.truth.seq,
                f.truth.payload(&f.bytes).unwrap()
            ),
            None
        );
        let flow = &spec.flows()[f.truth.flow as usize];
        let tag = flow.vlan.map(|_| {
            assert_eq!(&f.bytes[12..14], &[0x81, 0x00]);
            u16::from_be_bytes([f.bytes[14], f.bytes[15]])
        });
        assert_eq!(tag, flow.vlan);
        per_flow[f.truth.flow as usize] += 1;
    }
    assert!(per_flow.iter().all(|&n| n > 200), "{per_flow:?}");
    assert!(checksums > 6000 * 2 - 1000, "{checksums}");
}

#[test]
fn roce_messages_are_segmented_in_psn_order() {
    for (spec, op) in [
        ("roce-write:0-5000@1024", RoceOp::Write),
        ("roce6-send:0-5000@1024", RoceOp::Send),
    ] {
        let spec = TrafficSpec::parse(spec).unwrap();
        let mut g = Generator::new(&spec, 77);
        let params = g.roce_params(0).unwrap();
        assert_eq!(params.op, op);
        assert_eq!(g.roce_params(1), None);
        let mut psn = params.initial_psn;
        let mut msn = 0;
        let mut offset = 0u32;
        let mut msg_va = None;
        let mut seen_multi = 0;
        for f in g.by_ref().take(3000) {
            let r = f.truth.roce.unwrap();
            assert_eq!(r.psn, psn);
            psn = (psn + 1) & 0xff_ffff;
            assert_eq!(r.msn, msn);
            assert_eq!(r.msg_offset, offset);
            assert_eq!(r.dest_qp, params.dest_qp);
            let first = offset == 0;
            let remaining = r.msg_len - offset;
            let last = remaining <= 1024;
            assert_eq!(f.truth.payload_len, remaining.min(1024));
            assert_eq!(r.pad as u32, (4 - f.truth.payload_len % 4) % 4);
            let want = match (op, first, last) {
                (RoceOp::Write, true, true) => opcode::WRITE_ONLY,
                (RoceOp::Write, true, false) => opcode::WRITE_FIRST,
                (RoceOp::Write, false, false) => opcode::WRITE_MIDDLE,
                (RoceOp::Write, false, true) => opcode::WRITE_LAST,
                (RoceOp::Send, true, true) => opcode::SEND_ONLY,
                (RoceOp::Send, true, false) => opcode::SEND_FIRST,
                (RoceOp::Send, false, false) => opcode::SEND_MIDDLE,
                (RoceOp::Send, false, true) => opcode::SEND_LAST,
            };
            assert_eq!(r.opcode, want);
            // AckReq on the last packet of a message only.
            let ackreq = f.bytes[f.truth.l4_offset as usize + 8 + 8] & 0x80 != 0;
            assert_eq!(ackreq, last);
            if op == RoceOp::Write {
                let va = r.va.unwrap();
                if first {
                    assert!(va >= params.va_base && va % 64 == params.va_base % 64);
                    assert!(va + u64::from(r.msg_len) <= params.va_base + params.region_len);
                    msg_va = Some(va);
                }
                assert_eq!(va, msg_va.unwrap() + u64::from(offset));
                assert_eq!(r.rkey, Some(params.rkey));
            } else {
                assert_eq!((r.va, r.rkey), (None, None));
            }
            if last {
                if !first {
                    seen_multi += 1;
                }
                msn += 1;
                offset = 0;
            } else {
                offset += 1024;
            }
        }
        assert!(seen_multi > 100, "{seen_multi}");
    }
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let spec = TrafficSpec::parse("mix").unwrap();
    let a: Vec<_> = Generator::new(&spec, 1).take(500).collect();
    let b: Vec<_> = Generator::new(&spec, 1).take(500).collect();
    let c: Vec<_> = Generator::new(&spec, 2).take(500).collect();
    assert_eq!(a, b);
    let differing = a.iter().zip(&c).filter(|(x, y)| x.bytes != y.bytes).count();
    assert!(differing > 450, "{differing}");
    // Reusing one buffer gives the same bytes as fresh allocations.
    let mut g = Generator::new(&spec, 1);
    let mut buf = Vec::new();
    for f in &a {
        let t = g.next_into(&mut buf);
        assert_eq!((&buf, t), (&f.bytes, f.truth));
    }
    let (frames, truths) = Generator::new(&spec, 1).pregenerate(500);
    assert_eq!(
        frames,
        a.iter().map(|f| f.bytes.clone()).collect::<Vec<_>>()
    );
    assert_eq!(truths, a.iter().map(|f| f.truth).collect::<Vec<_>>());
    assert_eq!(
        g.totals(),
        (500, a.iter().map(|f| f.bytes.len() as u64).sum())
    );
}

/// Pinned bytes: a change to the generator's output format shows up here first.
#[test]
fn first_frame_is_pinned() {
    let spec = TrafficSpec::parse("udp4:4").unwrap();
    let f = Generator::new(&spec, 0).next_frame();
    let b = &f.bytes;
    assert_eq!(b.len(), 60);
    assert_eq!(&b[0..6], &[2, 0, 0, 0, 0, 1]);
    assert_eq!(&b[12..14], &[0x08, 0x00]);
    assert_eq!(&b[14..16], &[0x45, 0x00]);
    assert_eq!(&b[16..18], &[0, 32]); // 20 + 8 + 4
    assert_eq!(&b[26..34], &[10, 0, 0, 1, 10, 0, 0, 2]);
    assert_eq!(&b[36..38], &9000u16.to_be_bytes());
    assert_eq!(&b[38..40], &[0, 12]);
    assert_eq!(f.truth.payload_offset, 42);
    assert_eq!(f.truth.payload_len, 4);
    assert_eq!(b[46..].iter().filter(|&&x| x != 0).count(), 0);
}

/// The NIC's split decision agrees exactly with the generator's ground truth on every kind of
/// generated frame, at several thresholds, with and without ICRC checking.
#[test]
fn split_decision_matches_ground_truth() {
    use splitrx_shared::split::{split, SplitConfig};
    let spec = TrafficSpec::parse(
        "tcp4:0-9000,tcp6:0-9000,udp4:0-9000,udp6:0-9000,vlan-tcp4:1500,vlan7-udp6:1/2/3,\
         vxlan-tcp:0-9000,vxlan-udp:0-9000,vlan-vxlan:64,roce-write:0-20000@1024,\
         roce-send:0-20000@256,roce6-write:1-9000@4096,roce6-send:0-9000@2048,vlan-roce-write:33",
    )
    .unwrap();
    let mut checked = 0;
    for f in Generator::new(&spec, 0x5eed).take(4000) {
        for cfg in [
            SplitConfig {
                hds_thresh: 0,
                verify_icrc: true,
            },
            SplitConfig {
                hds_thresh: 256,
                verify_icrc: false,
            },
            SplitConfig {
                hds_thresh: 9000,
                verify_icrc: true,
            },
        ] {
            assert_eq!(
                split(&f.bytes, &cfg),
                f.truth.expected_split(&cfg),
                "flow {} seq {} under {cfg:?}",
                f.truth.flow,
                f.truth.seq
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12_000);
}
