//! Checksum offload: the verdict the NIC reports in `RxCompletion::flags` (`CSUM_OK` /
//! `CSUM_BAD`) and the CHECKSUM_COMPLETE value (`RxCompletion::csum_complete`). One
//! implementation, used by the firmware for every placed frame and by the host's tests.
//!
//! # Rules (`docs/ABI.md` "Checksum offload" says the same)
//!
//! [`verify`] takes a frame and its [`split`](crate::split::split) result and checks:
//! * **IPv4 header checksums**: the outer IPv4 header and, in a tunnel, the inner one, whenever
//!   there is a sane header to check (version 4, IHL >= 5, total length 0 or >= IHL * 4, the
//!   header inside the frame), whatever the frame's class (fragments and frames malformed
//!   beyond the IP header included);
//! * **the innermost TCP or UDP checksum** (pseudo-header, header, payload) for frames of class
//!   `Tcp`, `Udp` and `Roce` (the UDP checksum of a RoCEv2 frame). A UDP checksum of 0 over
//!   IPv4 means "no checksum" (RFC 768): not verified. Over IPv6 a UDP checksum of 0 is
//!   invalid (RFC 8200 8.1): bad. An IPv6 Routing header with segments left names the final
//!   destination the pseudo-header uses (RFC 8200 8.1): the last address of a type 0 header,
//!   segment 0 of an SRH (type 4); another routing type leaves the L4 checksum unverified.
//!   Outer UDP checksums of VXLAN/Geneve are not checked (innermost only, as NICs do),
//!   fragments and unknown protocols have no L4 checksum to check.
//!
//! The verdict ([`Csum::verdict`]): `Bad` when any checked checksum is wrong; `Ok` when the L4
//! checksum was checked and is right (and no IPv4 header checksum is wrong); `None` otherwise
//! (nothing at L4 verified: neither flag is set).
//!
//! `complete` is the ones'-complement sum, folded to 16 bits and not complemented, of the
//! L4 payload bytes as the split decision delimits them (`payload_offset ..
//! payload_offset + payload_len`: what the payload buffer receives when the frame is split,
//! excluding Ethernet padding and the RoCE pad and ICRC), taken as big-endian 16-bit words
//! from the payload's first byte with an odd last byte zero-padded; 0 when the frame has no
//! recognised payload. A driver combines it with the header sums it needs (Linux
//! `CHECKSUM_COMPLETE`).

use crate::split::{FrameClass, SplitResult};
use crate::wire::checksum::{pseudo_rest, pseudo_v6, verifies, Sum};
use crate::wire::{ip, ipv4};

/// Field offsets the verifier reads (the same as the wire modules' `field` offsets).
mod off {
    pub const IPV4_SRC: usize = 12;
    pub const IPV4_DST: usize = 16;
    pub const IPV6_NXT: usize = 6;
    pub const IPV6_SRC: usize = 8;
    pub const IPV6_HDR: usize = 40;
    pub const TCP_CHECKSUM: usize = 16;
    pub const UDP_LENGTH: usize = 4;
    pub const UDP_CHECKSUM: usize = 6;
}

/// What the NIC concluded about a frame's checksums.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CsumVerdict {
    /// No L4 checksum was verified (and no IPv4 header checksum was wrong).
    None,
    /// The innermost L4 checksum was verified and is right.
    Ok,
    /// A verified checksum is wrong.
    Bad,
}

/// The checksum result for one frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Csum {
    /// Every IPv4 header checksum checked is right (`Some(true)`), one is wrong
    /// (`Some(false)`), or none was checked (`None`).
    pub ip: Option<bool>,
    /// The innermost TCP/UDP checksum: right, wrong, or not verified.
    pub l4: Option<bool>,
    /// Ones'-complement sum of the L4 payload (module docs).
    pub complete: u16,
}

impl Csum {
    /// The verdict by the module's rule.
    pub const fn verdict(&self) -> CsumVerdict {
        match (self.ip, self.l4) {
            (Some(false), _) | (_, Some(false)) => CsumVerdict::Bad,
            (_, Some(true)) => CsumVerdict::Ok,
            _ => CsumVerdict::None,
        }
    }
}

/// Checks the frame's checksums (module docs). Never panics, never reads past `frame`.
pub fn verify(frame: &[u8], r: &SplitResult) -> Csum {
    let payload = match (r.payload_offset, r.payload_len) {
        (Some(o), Some(l)) => frame.get(o as usize..(o as usize).saturating_add(l as usize)),
        _ => None,
    };
    let pay_sum = payload.map(Sum::of);
    let mut ip = None;
    if r.outer_ip_version == 4 {
        if let Some(o) = r.outer_l3_offset {
            ip = ipv4_header(frame, o as usize);
        }
    }
    if let Some(l3) = r.l3_offset {
        if Some(l3) != r.outer_l3_offset {
            ip = match (ip, ipv4_header(frame, l3 as usize)) {
                (Some(a), Some(b)) => Some(a && b),
                (a, b) => a.or(b),
            };
        }
    }
    let l4 = match (r.class, pay_sum, r.l3_offset, r.l4_offset) {
        (FrameClass::Tcp | FrameClass::Udp | FrameClass::Roce, Some(ps), Some(l3), Some(l4)) => {
            // Both present: checked above.
            let (po, pl) = (r.payload_offset.unwrap_or(0), r.payload_len.unwrap_or(0));
            l4_checksum(
                frame,
                r.class,
                l3 as usize,
                l4 as usize,
                po as usize,
                pl as usize,
                ps,
            )
        }
        _ => None,
    };
    Csum {
        ip,
        l4,
        complete: pay_sum.map_or(0, Sum::folded),
    }
}

/// The IPv4 header checksum at `l3`, when there is a header to check: version 4, IHL >= 5,
/// a total length of 0 (BIG TCP) or at least the header length, the whole header inside the
/// frame. A header that fails these is malformed and its checksum is not looked at.
fn ipv4_header(frame: &[u8], l3: usize) -> Option<bool> {
    let vihl = *frame.get(l3)?;
    let hl = (vihl as usize & 0x0f) * 4;
    let total = be16(frame, l3 + 2)? as usize;
    if vihl >> 4 != 4 || hl < ipv4::HEADER_LEN || (total != 0 && total < hl) {
        return None;
    }
    let h = frame.get(l3..l3.checked_add(hl)?)?;
    Some(verifies(Sum::of(h)))
}

/// The innermost TCP/UDP checksum. `ps` is the sum of the payload `po .. po + pl`.
fn l4_checksum(
    frame: &[u8],
    class: FrameClass,
    l3: usize,
    l4: usize,
    po: usize,
    pl: usize,
    ps: Sum,
) -> Option<bool> {
    let is_tcp = class == FrameClass::Tcp;
    // Where the segment ends: the payload end, except for RoCE, whose payload excludes the
    // pad and ICRC that the UDP length covers.
    let end = if class == FrameClass::Roce {
        let ulen = be16(frame, l4 + off::UDP_LENGTH)? as usize;
        if ulen == 0 {
            return None; // a RoCE jumbogram: not produced by RoCEv2, not verified
        }
        l4 + ulen
    } else {
        po + pl
    };
    if end < po + pl || po < l4 || end > frame.len() {
        return None;
    }
    let len = (end - l4) as u32;
    let csum_field = if is_tcp {
        off::TCP_CHECKSUM
    } else {
        off::UDP_CHECKSUM
    };
    let stored = be16(frame, l4 + csum_field)?;
    let v4 = frame.get(l3)? >> 4 == 4;
    let proto = if is_tcp { ip::TCP } else { ip::UDP };
    if !is_tcp && stored == 0 {
        // IPv4: "no checksum" (RFC 768). IPv6: a zero UDP checksum is invalid (RFC 8200).
        return if v4 { None } else { Some(false) };
    }
    // The addresses are summed as one range where they lie in the IP header.
    let rest = pseudo_rest(proto, len);
    let pseudo = if v4 {
        Sum::of(frame.get(l3 + off::IPV4_SRC..l3 + off::IPV4_DST + 4)?).plus(rest)
    } else {
        match ipv6_final_destination(frame, l3, l4)? {
            Some(d) => pseudo_v6(bytes(frame, l3 + off::IPV6_SRC)?, d, proto, len),
            None => Sum::of(frame.get(l3 + off::IPV6_SRC..l3 + off::IPV6_HDR)?).plus(rest),
        }
    };
    let sum = pseudo
        .plus(Sum::of(frame.get(l4..po)?))
        .plus(ps.at(po - l4))
        .plus(Sum::of(frame.get(po + pl..end)?).at(po + pl - l4));
    Some(verifies(sum))
}

/// Walks the IPv6 extension headers between `l3 + 40` and `l4`: `Some(Some(addr))` when a
/// Routing header with segments left names the final destination, `Some(None)` when there is
/// none, `None` when the pseudo-header cannot be formed (an unknown routing type).
fn ipv6_final_destination(frame: &[u8], l3: usize, l4: usize) -> Option<Option<[u8; 16]>> {
    let mut nh = *frame.get(l3 + off::IPV6_NXT)?;
    let mut at = l3 + off::IPV6_HDR;
    let mut found = None;
    while at < l4 {
        let hlen = (*frame.get(at + 1)? as usize + 1) * 8;
        if nh == ip::IPV6_ROUTE && *frame.get(at + 3)? > 0 {
            let (rtype, ext_len) = (*frame.get(at + 2)?, *frame.get(at + 1)? as usize);
            let addr = match rtype {
                0 if ext_len >= 2 => at + 8 + 16 * (ext_len / 2 - 1),
                4 => at + 8,
                _ => return None,
            };
            found = Some(bytes(frame, addr)?);
        }
        // A Fragment header's length byte is reserved (0): 8 bytes, as computed.
        nh = *frame.get(at)?;
        at += hlen;
    }
    Some(found)
}

fn be16(b: &[u8], off: usize) -> Option<u16> {
    bytes::<2>(b, off).map(u16::from_be_bytes)
}

fn bytes<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::{split, SplitConfig};
    use std::vec::Vec;

    /// Ethernet + IPv4 (10.0.0.1 -> 10.0.0.2) + UDP 1234 -> 5678 + "abcd", both checksums
    /// right (UDP 0x0c0d, as in wire::checksum's test).
    fn udp4(udp_csum: u16) -> Vec<u8> {
        let mut f = std::vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        let c = !Sum::of(&f[14..34]).folded();
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&[0x04, 0xd2, 0x16, 0x2e, 0, 12]);
        f.extend_from_slice(&udp_csum.to_be_bytes());
        f.extend_from_slice(b"abcd");
        f
    }

    fn check(f: &[u8]) -> Csum {
        verify(f, &split(f, &SplitConfig::default()))
    }

    #[test]
    fn udp4_good_bad_and_none() {
        let good = check(&udp4(0x0c0d));
        assert_eq!(
            good,
            Csum {
                ip: Some(true),
                l4: Some(true),
                complete: 0x6162 + 0x6364
            }
        );
        assert_eq!(good.verdict(), CsumVerdict::Ok);
        assert_eq!(check(&udp4(0x0c0e)).verdict(), CsumVerdict::Bad);
        let none = check(&udp4(0));
        assert_eq!((none.ip, none.l4), (Some(true), None));
        assert_eq!(none.verdict(), CsumVerdict::None);
        // A wrong IPv4 header checksum is bad whatever the L4 says; so is a flipped payload
        // bit (and `complete` follows the payload).
        let mut f = udp4(0x0c0d);
        f[24] ^= 0x80;
        assert_eq!(check(&f).verdict(), CsumVerdict::Bad);
        let mut f = udp4(0x0c0d);
        f[45] = b'e';
        let c = check(&f);
        assert_eq!((c.l4, c.complete), (Some(false), 0x6162 + 0x6365));
    }

    #[test]
    fn non_ip_and_truncated_frames_are_not_verified() {
        let f = udp4(0x0c0d);
        for n in [0, 14, 20, 33, 41, 45] {
            let c = check(&f[..n]);
            assert_eq!(c.l4, None, "truncated to {n}");
            assert_eq!(c.complete, 0);
        }
        // The IPv4 header alone is still checked on a frame cut inside its UDP header.
        assert_eq!(check(&f[..40]).ip, Some(true));
        let mut arp = std::vec![0u8; 60];
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert_eq!(
            check(&arp),
            Csum {
                ip: None,
                l4: None,
                complete: 0
            }
        );
    }
}
