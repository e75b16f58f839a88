//! Parse + split over every Ethernet frame of the capture files, against etherparse and
//! smoltcp's wire parsers on the same frames, in the same run.
//!
//! `cargo bench -p splitrx-shared --bench parse -- --warm-up-time 1 --measurement-time 3`
//!
//! * `splitrx/split` walks Ethernet/VLAN/IP(+ext headers)/TCP/UDP, tunnels (VXLAN, Geneve) and
//!   RoCEv2, and returns the full `SplitResult` (the `_icrc` variant also verifies the RoCEv2
//!   ICRC);
//! * `etherparse/sliced` is `SlicedPacket::from_ethernet` (VLAN, IPv4/IPv6 with extension
//!   headers, TCP/UDP; no tunnels, no RoCE) down to the L4 payload offset;
//! * `smoltcp/wire` is `EthernetFrame` -> `Ipv4Packet`/`Ipv6Packet` -> `TcpPacket`/`UdpPacket`
//!   (checked views; no VLAN, no IPv6 extension headers, no tunnels, no RoCE), computing the
//!   payload offset.
//!
//! Throughput is in frames: criterion's time per iteration / frame count = ns per frame.
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use splitrx_shared::split::{split, SplitConfig};

#[path = "../tests/wire_support/mod.rs"]
mod wire_support;

fn etherparse_offset(frame: &[u8]) -> Option<usize> {
    use etherparse::{SlicedPacket, TransportSlice};
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let payload = match p.transport? {
        TransportSlice::Tcp(t) => t.payload(),
        TransportSlice::Udp(u) => u.payload(),
        _ => return None,
    };
    Some(payload.as_ptr() as usize - frame.as_ptr() as usize)
}

fn smoltcp_offset(frame: &[u8]) -> Option<usize> {
    use smoltcp::wire::{
        EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
    };
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let (proto, l4, l4_off) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            (
                ip.next_header(),
                ip.payload(),
                14 + ip.header_len() as usize,
            )
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            (ip.next_header(), ip.payload(), 14 + 40)
        }
        _ => return None,
    };
    match proto {
        IpProtocol::Tcp => Some(l4_off + TcpPacket::new_checked(l4).ok()?.header_len() as usize),
        IpProtocol::Udp => {
            UdpPacket::new_checked(l4).ok()?;
            Some(l4_off + 8)
        }
        _ => None,
    }
}

fn bench_set(c: &mut Criterion, name: &str, frames: &[Vec<u8>]) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(frames.len() as u64));
    for (id, verify_icrc) in [("splitrx/split", false), ("splitrx/split_icrc", true)] {
        let cfg = SplitConfig {
            hds_thresh: 0,
            verify_icrc,
        };
        g.bench_function(id, |b| {
            b.iter(|| {
                let mut acc = 0u64;
                for f in frames {
                    let r = split(black_box(f), &cfg);
                    acc += r.payload_offset.unwrap_or(0) as u64 + r.split as u64;
                }
                acc
            })
        });
    }
    g.bench_function("etherparse/sliced", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for f in frames {
                acc += etherparse_offset(black_box(f)).unwrap_or(0) as u64;
            }
            acc
        })
    });
    g.bench_function("smoltcp/wire", |b| {
        b.iter(|| {
            let mut acc = 0u64;
            for f in frames {
                acc += smoltcp_offset(black_box(f)).unwrap_or(0) as u64;
            }
            acc
        })
    });
    g.finish();
}

fn parse(c: &mut Criterion) {
    // Loaded once, outside the timed loops.
    let all = wire_support::all_ethernet_frames();
    let frames: Vec<Vec<u8>> = all.iter().map(|f| f.data.clone()).collect();
    let cfg = SplitConfig {
        hds_thresh: 0,
        verify_icrc: false,
    };
    // The RoCEv2 frames alone (for the ICRC on/off comparison).
    let roce: Vec<Vec<u8>> = frames
        .iter()
        .filter(|f| split(f, &cfg).roce.is_some())
        .cloned()
        .collect();
    // Sanity: the three parsers agree on plain TCP/UDP frames (not tunnels, not RoCE).
    let mut agree = 0;
    for f in &frames {
        let r = split(f, &cfg);
        if r.tunnel.is_none()
            && r.roce.is_none()
            && r.payload_offset.is_some()
            && f[12..14] != [0x86, 0xdd]
        {
            let ep = etherparse_offset(f);
            if ep.is_some() && f[12..14] == [8, 0] {
                assert_eq!(ep, r.payload_offset.map(|o| o as usize));
                assert_eq!(smoltcp_offset(f), ep);
                agree += 1;
            }
        }
    }
    eprintln!(
        "{} frames ({} RoCEv2); {agree} plain IPv4 TCP/UDP frames cross-checked",
        frames.len(),
        roce.len()
    );
    bench_set(c, "all_frames", &frames);
    bench_set(c, "roce_only", &roce);
}

criterion_group!(benches, parse);
criterion_main!(benches);
