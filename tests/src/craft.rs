//! Crafted RoCEv2 frames for the replay oracle's tests: real captured frames rewritten with
//! the `shared::wire` emitters and the one ICRC implementation
//! ([`splitrx_shared::wire::roce::fill_icrc`]). Each helper returns `None` when the frame is not
//! the kind it rewrites (never panics).

use splitrx_shared::split::{split, SplitConfig};
use splitrx_shared::wire::ipv6::{Ipv6Packet, Ipv6Repr};
use splitrx_shared::wire::roce::{fill_icrc, verify_icrc};
use splitrx_shared::wire::udp::UdpPacket;

/// Offsets of a RoCEv2 frame: (l3, l4, end of the UDP datagram).
fn offsets(frame: &[u8]) -> Option<(usize, usize, usize)> {
    let r = split(
        frame,
        &SplitConfig {
            verify_icrc: false,
            ..SplitConfig::default()
        },
    );
    r.roce?;
    let (l3, l4) = (r.l3_offset? as usize, r.l4_offset? as usize);
    let ulen = u16::from_be_bytes([*frame.get(l4 + 4)?, *frame.get(l4 + 5)?]) as usize;
    let end = l4.checked_add(ulen).filter(|e| *e <= frame.len())?;
    Some((l3, l4, end))
}

/// The frame with its ICRC's bits inverted (a bad ICRC). `None`: not RoCEv2.
pub fn corrupt_icrc(frame: &[u8]) -> Option<Vec<u8>> {
    let (_, _, end) = offsets(frame)?;
    let mut f = frame.to_vec();
    for b in f.get_mut(end.checked_sub(4)?..end)? {
        *b ^= 0xff;
    }
    Some(f)
}

/// The frame with its ICRC recomputed (after an edit of the bytes it covers).
pub fn refill_icrc(frame: &mut [u8]) -> Option<()> {
    let (l3, l4, end) = offsets(frame)?;
    let v = frame[l3] >> 4;
    fill_icrc(frame, l3, v, l4, end.checked_sub(4)?).map(|_| ())
}

/// Whether the frame is RoCEv2 with a valid ICRC.
pub fn icrc_ok(frame: &[u8]) -> bool {
    offsets(frame)
        .and_then(|(l3, l4, end)| verify_icrc(&frame[..end], l3, frame[l3] >> 4, l4, end - 4))
        .unwrap_or(false)
}

/// The frame with an 802.1Q tag (TPID 0x8100, `tci`) after the MAC addresses. The ICRC does
/// not cover Ethernet, so it stays valid. `None`: shorter than an Ethernet header.
pub fn insert_vlan(frame: &[u8], tci: u16) -> Option<Vec<u8>> {
    let (macs, rest) = (frame.get(..12)?, frame.get(12..)?);
    rest.get(..2)?;
    let mut f = Vec::with_capacity(frame.len() + 4);
    f.extend_from_slice(macs);
    f.extend_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(rest);
    Some(f)
}

/// `::ffff:a.b.c.d`, the IPv4-mapped GID of an IPv4 address.
pub fn mapped_gid(a: [u8; 4]) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[10] = 0xff;
    g[11] = 0xff;
    g[12..].copy_from_slice(&a);
    g
}

/// A RoCEv2-over-IPv4 frame rewritten as RoCEv2 over IPv6: the IPv4 header (without options)
/// becomes an IPv6 header (traffic class = the IPv4 TOS, flow label `flow`, hop limit = the
/// TTL, addresses `gid(src)`/`gid(dst)`), the EtherType 0x86dd (after any VLAN tags), the UDP
/// checksum computed, the ICRC recomputed with the IPv6 masks. Ethernet padding is dropped.
/// `None`: not RoCEv2 over IPv4 without options.
pub fn to_ipv6(frame: &[u8], flow: u32, gid: impl Fn([u8; 4]) -> [u8; 16]) -> Option<Vec<u8>> {
    let (l3, l4, end) = offsets(frame)?;
    if frame[l3] != 0x45 || l4 != l3 + 20 || l3 < 14 {
        return None;
    }
    let ip = &frame[l3..l4];
    let src: [u8; 4] = ip[12..16].try_into().ok()?;
    let dst: [u8; 4] = ip[16..20].try_into().ok()?;
    let mut f = frame[..l3].to_vec();
    f[l3 - 2..l3].copy_from_slice(&[0x86, 0xdd]);
    f.resize(l3 + 40, 0);
    let repr = Ipv6Repr {
        traffic_class: ip[1],
        flow_label: flow & 0xf_ffff,
        next_header: 17,
        hop_limit: ip[8],
        src_addr: gid(src),
        dst_addr: gid(dst),
        payload_len: end - l4,
    };
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut f[l3..]));
    f.extend_from_slice(&frame[l4..end]);
    let n4 = l3 + 40;
    UdpPacket::new_unchecked(&mut f[n4..]).fill_checksum(&repr.src_addr, &repr.dst_addr);
    let len = f.len();
    fill_icrc(&mut f, l3, 6, n4, len - 4)?;
    Some(f)
}

/// A frame whose BTH opcode is `opcode` (the rest as it was), ICRC recomputed.
pub fn with_opcode(frame: &[u8], opcode: u8) -> Option<Vec<u8>> {
    let (l3, l4, end) = offsets(frame)?;
    let mut f = frame.to_vec();
    f[l4 + 8] = opcode;
    let v = f[l3] >> 4;
    fill_icrc(&mut f, l3, v, l4, end - 4)?;
    Some(f)
}

/// A RoCEv2 frame cut inside its BTH: the UDP datagram keeps `keep` bytes of it (< 12), the
/// IPv4 total length and UDP length shrunk to match. `None`: not RoCEv2 over IPv4.
pub fn truncate_bth(frame: &[u8], keep: usize) -> Option<Vec<u8>> {
    let (l3, l4, _) = offsets(frame)?;
    if frame[l3] >> 4 != 4 || keep >= 12 {
        return None;
    }
    let mut f = frame.get(..l4 + 8 + keep)?.to_vec();
    let ip_len = (f.len() - l3) as u16;
    f[l3 + 2..l3 + 4].copy_from_slice(&ip_len.to_be_bytes());
    // The IPv4 header checksum over the new length.
    f[l3 + 10..l3 + 12].fill(0);
    let c = splitrx_shared::wire::checksum::data(&f[l3..l4]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    f[l4 + 4..l4 + 6].copy_from_slice(&((8 + keep) as u16).to_be_bytes());
    f[l4 + 6..l4 + 8].fill(0);
    Some(f)
}

/// An ARP request (Ethernet broadcast) from `sha`/`spa` for `tpa`.
pub fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f.resize(60, 0);
    f
}
