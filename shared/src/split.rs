//! The header-split decision (DESIGN.md "Header split"). CONTRACT: the public types are fixed
//! (others code against them); [`split`] implements the rules below.
//!
//! # Rules
//!
//! The split offset is where the innermost recognised L4 payload starts. [`split`] walks
//!
//! * Ethernet II and up to two VLAN tags (0x8100 / 0x88a8, in any order). A third tag, an
//!   802.3 length field or any EtherType but IPv4/IPv6 is [`FrameClass::NonIp`].
//! * IPv4 (options skipped by IHL) or IPv6 (Hop-by-Hop, Routing incl. SRH, Destination options
//!   and Fragment headers walked; at most 8 extension headers). The datagram ends where the IP
//!   length fields say: IPv4 total length, IPv6 payload length, or the Hop-by-Hop Jumbo Payload
//!   option when the payload length is 0. **BIG TCP**: an IPv4 total length of 0, or an IPv6
//!   payload length of 0 without a Jumbo Payload option, means "the datagram is the rest of the
//!   frame" (Linux BIG TCP GSO/GRO packets) — but only when that rest is more than 65535 bytes
//!   ([`IP_MAX_LEN`]; for IPv6, after the fixed header): BIG TCP exists only above 64 KiB. With
//!   less, the field could have stated the length: an IPv4 total length of 0 is then
//!   [`Malformed::BadIpv4TotalLen`] and an IPv6 payload length of 0 means an empty payload. A
//!   datagram longer than the frame (or than the tunnel payload holding it) is
//!   [`Malformed::IpLengthExceedsFrame`]; bytes after the datagram (Ethernet padding) are
//!   never payload.
//! * TCP (payload after the data offset) or UDP (payload after 8 bytes; the UDP length must
//!   equal the IP payload length, or be 0 in a jumbogram).
//!   * UDP destination port 4791 is RoCEv2: the payload starts after the BTH and the extended
//!     headers its opcode implies and ends before the pad (BTH pad count) and the 4-byte ICRC.
//!     `roce` is filled; `icrc_ok` is checked when [`SplitConfig::verify_icrc`] is set. The RC,
//!     UC and UD transports and the CNP are parsed; a BTH opcode of the RD (0x40..=0x5f) or XRC
//!     (0xa0..=0xbf) transport, in a packet long enough for a BTH and an ICRC, is class `Roce`
//!     with reason [`NoSplitReason::UnsupportedTransport`] (`roce` and `icrc_ok` filled, no
//!     payload fields): well-formed RoCE we do not split. Other unknown opcodes are malformed.
//!   * UDP destination port 4789 (VXLAN, I flag required) and 6081 (Geneve, version 0,
//!     protocol type 0x6558 Ethernet or 0x0800/0x86dd IP directly) are followed into the inner
//!     frame, `tunnel` is set to the innermost tunnel opened, and the inner frame is classified
//!     and split by these same rules within the outer UDP payload. Tunnels nest in any order
//!     (VXLAN in VXLAN, Geneve in VXLAN, VXLAN in Geneve, ...) up to [`MAX_TUNNEL_DEPTH`] (3)
//!     tunnel headers; a VXLAN/Geneve port in the UDP datagram inside the third tunnel is not
//!     opened: class `Udp`, not split, reason [`NoSplitReason::TunnelTooDeep`], no payload
//!     fields (`l3_offset`/`l4_offset` are that datagram's). A tunnel whose inner frame is not
//!     IP is `NonIp` (not split), whose inner L4 is unknown is `OtherIp`: the class is always
//!     that of the innermost frame.
//!
//! # Not split (the whole frame goes to the header buffer)
//!
//! | frame | `class` | `reason` |
//! |---|---|---|
//! | payload length <= `hds_thresh` (incl. 0) | `Tcp`/`Udp`/`Roce` | `BelowThresh` (payload fields set) |
//! | non-first IP fragment (offset != 0) | `Fragment` | `Fragment` |
//! | **first** IP fragment (offset 0, more-fragments set) | `OtherIp` | `Fragment` |
//! | IP with another L4 protocol (ICMP, GRE, ESP, AH, ...) | `OtherIp` | `UnknownProto` |
//! | not IP | `NonIp` | `NonIp` |
//! | malformed or truncated | `Malformed` | `Malformed`, `error` set |
//! | RoCEv2 with an RD or XRC opcode | `Roce` | `UnsupportedTransport` (`roce` set) |
//! | VXLAN/Geneve nested deeper than [`MAX_TUNNEL_DEPTH`] | `Udp` | `TunnelTooDeep` |
//!
//! **Fragments are never split**, first fragments included: the payload of a first fragment
//! does not end where its L4 length fields say the datagram ends, and splitting a datagram's
//! first piece differently from the others only complicates reassembly. The first fragment
//! carries an L4 header (so its class is `OtherIp`, "a first fragment whose L4 header we cannot
//! split on"), the others do not (`Fragment`); both count under the `Fragment` reason.
//! An IPv6 atomic fragment (offset 0, M clear: RFC 6946) is a whole datagram and is walked on.
//!
//! # Offsets reported
//!
//! `outer_l3_offset`/`outer_ip_version` are set for every IP frame; `l3_offset` is the
//! innermost IP header reached, `l4_offset` the header after it (also for first fragments and
//! unknown protocols: the upper-layer header offset; not for non-first fragments, which have
//! none). When a tunnel's inner frame is not IP (VXLAN carrying ARP, Geneve with another
//! protocol type), the innermost frame has no IP header: `l3_offset` and `l4_offset` are
//! `None` as for a plain non-IP frame (the outer headers are still found through
//! `outer_l3_offset` and `tunnel`). On a malformed frame the offsets found
//! before the fault stay set (for inspection) and `payload_offset`/`payload_len` are `None`.
//!
//! The walk reads the frame only through bounds-checked views ([`crate::wire`]); it never
//! allocates or copies packet bytes (ICRC verification copies at most 128 header bytes to the
//! stack to mask them).

use crate::wire::{
    self, ethernet, ip, ipv4, ipv6, roce, tcp, udp, vxlan, EtherType, GenevePacket, Ipv4Packet,
    Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6Packet, RocePacket, TcpPacket, UdpPacket, VxlanPacket,
};

int_enum! {
    /// What a frame is, as the split decision classifies it. Stored in `RxCompletion::class`.
    #[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
    pub enum FrameClass: u8, from_u8 {
        /// TCP over IPv4/IPv6 (possibly inside VXLAN/Geneve).
        Tcp = 1,
        /// UDP that is not RoCEv2 or a recognised tunnel's outer header (or is the UDP of a
        /// tunnel nested too deep: reason `TunnelTooDeep`).
        Udp = 2,
        /// RoCEv2 (UDP 4791), including transports that are not split (reason
        /// `UnsupportedTransport`).
        Roce = 3,
        /// An IP fragment other than the first (no L4 header).
        Fragment = 4,
        /// IP with an L4 protocol we do not split (ICMP, GRE, ESP, ...), or a first fragment whose
        /// L4 header we cannot split on.
        OtherIp = 5,
        /// Not IP at all (ARP, LLDP, MPLS, ...).
        NonIp = 6,
        /// Malformed or truncated.
        Malformed = 7,
    }
}

impl FrameClass {
    pub const COUNT: usize = 8;
    pub const fn as_str(self) -> &'static str {
        match self {
            FrameClass::Tcp => "tcp",
            FrameClass::Udp => "udp",
            FrameClass::Roce => "roce",
            FrameClass::Fragment => "fragment",
            FrameClass::OtherIp => "other_ip",
            FrameClass::NonIp => "non_ip",
            FrameClass::Malformed => "malformed",
        }
    }
}

int_enum! {
    /// Why a frame was not split. Stored in `RxCompletion::reason`.
    #[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
    pub enum NoSplitReason: u8, from_u8 {
        /// It was split.
        Split = 0,
        /// Payload length <= `hds_thresh` (includes zero-length payloads).
        BelowThresh = 1,
        /// An IP fragment: non-first (class `Fragment`) or first (class `OtherIp`). Fragments are
        /// never split (see the `split` module docs).
        Fragment = 2,
        /// IP, but an L4 protocol we do not split.
        UnknownProto = 3,
        /// Not IP.
        NonIp = 4,
        /// Malformed or truncated.
        Malformed = 5,
        /// RoCEv2 with a transport whose headers are not parsed (RD or XRC opcodes; class
        /// `Roce`, `roce` filled, no payload fields).
        UnsupportedTransport = 6,
        /// A VXLAN/Geneve header nested deeper than [`MAX_TUNNEL_DEPTH`] (class `Udp`: the
        /// UDP datagram carrying it; no payload fields).
        TunnelTooDeep = 7,
    }
}

impl NoSplitReason {
    pub const COUNT: usize = 8;
    pub const fn as_str(self) -> &'static str {
        match self {
            NoSplitReason::Split => "split",
            NoSplitReason::BelowThresh => "below_hds_thresh",
            NoSplitReason::Fragment => "fragment",
            NoSplitReason::UnknownProto => "unknown_proto",
            NoSplitReason::NonIp => "non_ip",
            NoSplitReason::Malformed => "malformed",
            NoSplitReason::UnsupportedTransport => "unsupported_transport",
            NoSplitReason::TunnelTooDeep => "tunnel_too_deep",
        }
    }
}

/// Which tunnel the innermost headers were found in.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Tunnel {
    Vxlan,
    Geneve,
}

impl Tunnel {
    pub const fn as_str(self) -> &'static str {
        match self {
            Tunnel::Vxlan => "vxlan",
            Tunnel::Geneve => "geneve",
        }
    }
}

/// RoCEv2 details of a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RoceInfo {
    pub opcode: u8,
    pub dest_qp: u32,
    pub psn: u32,
    /// `None` when ICRC checking is off or the frame is too short to hold one.
    pub icrc_ok: Option<bool>,
}

/// A short, stable reason a frame is malformed (the `error` field of `splitrx inspect`).
/// The variant set may grow; `as_str` gives the stable text.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Malformed {
    /// The frame ends inside a header (or the IP datagram / tunnel payload that holds the
    /// header ends inside it).
    Truncated,
    /// The IP header's length fields claim more bytes than the frame has.
    IpLengthExceedsFrame,
    /// IPv4 IHL < 5 or beyond the total length.
    BadIpv4HeaderLen,
    /// IPv4 total length smaller than its header.
    BadIpv4TotalLen,
    /// IP version nibble disagrees with the ethertype.
    BadIpVersion,
    /// An IPv6 extension header runs past the packet.
    BadIpv6ExtHeader,
    /// TCP data offset < 5 or past the IP payload.
    BadTcpDataOffset,
    /// UDP length < 8 or different from the IP payload length.
    BadUdpLength,
    /// Unknown or impossible RoCE BTH opcode, or the extended headers/pad/ICRC do not fit.
    BadRoceHeader,
    /// Tunnel header inconsistent (Geneve option length past the packet, bad VXLAN flags).
    BadTunnelHeader,
}

impl Malformed {
    pub const fn as_str(self) -> &'static str {
        match self {
            Malformed::Truncated => "truncated",
            Malformed::IpLengthExceedsFrame => "ip length exceeds frame",
            Malformed::BadIpv4HeaderLen => "bad ipv4 header length",
            Malformed::BadIpv4TotalLen => "bad ipv4 total length",
            Malformed::BadIpVersion => "bad ip version",
            Malformed::BadIpv6ExtHeader => "bad ipv6 extension header",
            Malformed::BadTcpDataOffset => "bad tcp data offset",
            Malformed::BadUdpLength => "bad udp length",
            Malformed::BadRoceHeader => "bad roce header",
            Malformed::BadTunnelHeader => "bad tunnel header",
        }
    }
}

/// Configuration of the split decision.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SplitConfig {
    /// Frames whose payload is <= this many bytes are not split.
    pub hds_thresh: u32,
    /// Verify the RoCEv2 ICRC (fills `RoceInfo::icrc_ok`).
    pub verify_icrc: bool,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            hds_thresh: 0,
            verify_icrc: true,
        }
    }
}

/// The decision for one frame. All offsets are from the first byte of the Ethernet frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SplitResult {
    pub class: FrameClass,
    /// `Split` when `split` is true.
    pub reason: NoSplitReason,
    pub split: bool,
    /// Where the innermost L4 (or RoCE) payload starts, when recognised (also when not split
    /// because of `hds_thresh`).
    pub payload_offset: Option<u32>,
    /// Payload length from the IP/UDP length fields (not the frame length; excludes Ethernet
    /// padding, RoCE pad and ICRC).
    pub payload_len: Option<u32>,
    /// Innermost IP header offset (`None` when the innermost frame is not IP, also inside a
    /// tunnel).
    pub l3_offset: Option<u32>,
    /// Innermost L4 header offset (`None` as `l3_offset`, and for non-first fragments).
    pub l4_offset: Option<u32>,
    /// Outermost IP header offset and version (for flow hashing).
    pub outer_l3_offset: Option<u32>,
    pub outer_ip_version: u8,
    /// The innermost tunnel opened (of up to [`MAX_TUNNEL_DEPTH`] nested ones).
    pub tunnel: Option<Tunnel>,
    pub roce: Option<RoceInfo>,
    pub error: Option<Malformed>,
}

impl SplitResult {
    /// CRC-32 of this result's `Debug` rendering (every field, nested ones included). Compares
    /// decisions made on different machines without a serialisation format: the Cortex-M
    /// on-target tests (`boards/mps2-an500`) check the target's fingerprint of every capture
    /// frame against the one the host computed.
    pub fn fingerprint(&self) -> u32 {
        struct Crc(crc32fast::Hasher);
        impl core::fmt::Write for Crc {
            fn write_str(&mut self, s: &str) -> core::fmt::Result {
                self.0.update(s.as_bytes());
                Ok(())
            }
        }
        let mut h = Crc(crc32fast::Hasher::new());
        // Writing into a hasher cannot fail.
        let _ = core::fmt::write(&mut h, format_args!("{self:?}"));
        h.0.finalize()
    }
}

/// Decides how to split `frame` (the bytes the MAC delivered). Never panics, never reads past
/// `frame`. See the module docs for the exact rules.
pub fn split(frame: &[u8], cfg: &SplitConfig) -> SplitResult {
    let mut r = SplitResult::NON_IP;
    if let Err(e) = walk(frame, cfg, &mut r) {
        r.class = FrameClass::Malformed;
        r.reason = NoSplitReason::Malformed;
        r.split = false;
        r.payload_offset = None;
        r.payload_len = None;
        r.error = Some(e);
    }
    r
}

impl SplitResult {
    /// The result for a frame that is not IP: every optional field empty.
    const NON_IP: SplitResult = SplitResult {
        class: FrameClass::NonIp,
        reason: NoSplitReason::NonIp,
        split: false,
        payload_offset: None,
        payload_len: None,
        l3_offset: None,
        l4_offset: None,
        outer_l3_offset: None,
        outer_ip_version: 0,
        tunnel: None,
        roce: None,
        error: None,
    };
}

type Step = Result<(), Malformed>;

/// Offsets are `usize` internally; frames are far below 4 GiB (the ABI's lengths are `u32`).
#[inline(always)]
fn off32(x: usize) -> Option<u32> {
    Some(x as u32)
}

#[inline(always)]
fn walk(frame: &[u8], cfg: &SplitConfig, r: &mut SplitResult) -> Step {
    let l2 = ethernet::l2_header(frame).map_err(|_| Malformed::Truncated)?;
    let Some(version) = ip_version(l2.ethertype) else {
        return Ok(());
    };
    r.outer_l3_offset = off32(l2.l3_offset);
    r.outer_ip_version = version;
    // The outer datagram, then at most MAX_TUNNEL_DEPTH tunnelled ones (a loop, no recursion:
    // the whole walk inlines into `split`, which lets the compiler keep the result in
    // registers).
    let mut next = Inner {
        l3: l2.l3_offset,
        end: frame.len(),
        version,
    };
    let mut depth = 0;
    while let Some(n) = l3(frame, next, cfg, r, depth)? {
        next = n;
        depth += 1;
    }
    Ok(())
}

/// At most this many tunnel headers (VXLAN or Geneve, nested in any order) are opened: the
/// outer frame plus three levels of encapsulation. A tunnel port deeper than that is
/// [`NoSplitReason::TunnelTooDeep`].
pub const MAX_TUNNEL_DEPTH: usize = 3;

#[inline(always)]
fn ip_version(ethertype: u16) -> Option<u8> {
    match ethertype {
        EtherType::IPV4 => Some(4),
        EtherType::IPV6 => Some(6),
        _ => None,
    }
}

/// An IP datagram to walk: header offset, end (exclusive) of what may hold it, version.
#[derive(Clone, Copy)]
struct Inner {
    l3: usize,
    end: usize,
    version: u8,
}

/// `Ok(Some(inner))` when a tunnel was opened and its inner IP datagram is to be walked.
type Walk = Result<Option<Inner>, Malformed>;

/// What the split needs from an IP header.
struct Ip {
    version: u8,
    l3: usize,
    /// Upper-layer protocol (after the IPv6 extension headers).
    proto: u8,
    /// Upper-layer header offset.
    l4: usize,
    /// End of the datagram (from the length fields).
    end: usize,
    frag: Frag,
}

#[derive(PartialEq, Eq)]
enum Frag {
    No,
    First,
    NonFirst,
}

/// The IP header (version from the EtherType or tunnel header) and its L4 header. `depth` is
/// the number of tunnels already opened.
#[inline(always)]
fn l3(frame: &[u8], at: Inner, cfg: &SplitConfig, r: &mut SplitResult, depth: usize) -> Walk {
    r.l3_offset = off32(at.l3);
    let ip = if at.version == 4 {
        ipv4(frame, at.l3, at.end)?
    } else {
        ipv6(frame, at.l3, at.end)?
    };
    match ip.frag {
        Frag::NonFirst => {
            // No L4 header (nor the L4 offset of an outer level).
            r.l4_offset = None;
            r.class = FrameClass::Fragment;
            r.reason = NoSplitReason::Fragment;
            return Ok(None);
        }
        Frag::First => {
            r.l4_offset = off32(ip.l4);
            r.class = FrameClass::OtherIp;
            r.reason = NoSplitReason::Fragment;
            return Ok(None);
        }
        Frag::No => {}
    }
    r.l4_offset = off32(ip.l4);
    match ip.proto {
        ip::TCP => tcp(frame, &ip, cfg, r).map(|()| None),
        ip::UDP => udp(frame, &ip, cfg, r, depth),
        _ => {
            r.class = FrameClass::OtherIp;
            r.reason = NoSplitReason::UnknownProto;
            Ok(None)
        }
    }
}

/// The largest length an IP length field can state. An IPv4 total length of 0 (an IPv6 payload
/// length of 0 without a Jumbo Payload option) means BIG TCP only when the bytes that may hold
/// the datagram (the rest of the frame, or of the tunnel payload; for IPv6 after the fixed
/// header) are more than this.
pub const IP_MAX_LEN: usize = u16::MAX as usize;

#[inline(always)]
fn ipv4(frame: &[u8], off: usize, end: usize) -> Result<Ip, Malformed> {
    let b = frame.get(off..end).unwrap_or(&[]);
    if b.len() < ipv4::HEADER_LEN {
        return Err(Malformed::Truncated);
    }
    let p = Ipv4Packet::new_unchecked(b);
    if p.version() != 4 {
        return Err(Malformed::BadIpVersion);
    }
    let hl = p.header_len();
    if hl < ipv4::HEADER_LEN {
        return Err(Malformed::BadIpv4HeaderLen);
    }
    let total = p.total_len() as usize;
    let dlen = if total == 0 {
        // BIG TCP: the datagram is the rest of the frame (wire::ipv4 module docs). It only
        // exists above 64 KiB: a datagram that could state its length (padding included) and
        // says 0 is malformed, else Ethernet padding would become payload.
        if b.len() <= IP_MAX_LEN {
            return Err(Malformed::BadIpv4TotalLen);
        }
        b.len()
    } else {
        if total < ipv4::HEADER_LEN {
            return Err(Malformed::BadIpv4TotalLen);
        }
        if hl > total {
            return Err(Malformed::BadIpv4HeaderLen);
        }
        if total > b.len() {
            return Err(Malformed::IpLengthExceedsFrame);
        }
        total
    };
    let frag = if p.frag_offset() != 0 {
        Frag::NonFirst
    } else if p.more_frags() {
        Frag::First
    } else {
        Frag::No
    };
    Ok(Ip {
        version: 4,
        l3: off,
        proto: p.protocol(),
        l4: off + hl,
        end: off + dlen,
        frag,
    })
}

/// At most this many IPv6 extension headers are walked; more is treated as malformed.
const MAX_IPV6_EXT_HEADERS: usize = 8;

#[inline(always)]
fn ipv6(frame: &[u8], off: usize, end: usize) -> Result<Ip, Malformed> {
    let b = frame.get(off..end).unwrap_or(&[]);
    if b.len() < ipv6::HEADER_LEN {
        return Err(Malformed::Truncated);
    }
    let p = Ipv6Packet::new_unchecked(b);
    if p.version() != 6 {
        return Err(Malformed::BadIpVersion);
    }
    let plen = p.payload_len() as usize;
    // End of the datagram relative to `off`. Payload length 0 with more than 64 KiB after the
    // header: a jumbogram (the Hop-by-Hop Jumbo Payload option gives the length) or, without
    // that option, BIG TCP without the Hop-by-Hop header: the rest of the frame, as for IPv4
    // total length 0. With less, a payload length of 0 is just that (an empty payload).
    let mut dend = if plen == 0 && b.len() - ipv6::HEADER_LEN > IP_MAX_LEN {
        b.len()
    } else {
        ipv6::HEADER_LEN + plen
    };
    if dend > b.len() {
        return Err(Malformed::IpLengthExceedsFrame);
    }
    let mut nh = p.next_header();
    let mut pos = ipv6::HEADER_LEN;
    let mut frag = Frag::No;
    for i in 0..=MAX_IPV6_EXT_HEADERS {
        match nh {
            ip::HOPOPT | ip::IPV6_ROUTE | ip::IPV6_OPTS => {
                if i == MAX_IPV6_EXT_HEADERS || (nh == ip::HOPOPT && i != 0) {
                    // Hop-by-Hop must come first (RFC 8200 4.1).
                    return Err(Malformed::BadIpv6ExtHeader);
                }
                let h = Ipv6ExtHeader::new_unchecked(wire::clamp(b, pos, dend));
                h.check_len().map_err(|_| Malformed::BadIpv6ExtHeader)?;
                if nh == ip::HOPOPT && plen == 0 {
                    if let Some(j) = ipv6::jumbo_payload_len(wire::clamp(b, pos, dend)) {
                        dend = ipv6::HEADER_LEN + j as usize;
                        if dend > b.len() {
                            return Err(Malformed::IpLengthExceedsFrame);
                        }
                        if pos + h.header_len() > dend {
                            return Err(Malformed::BadIpv6ExtHeader);
                        }
                    }
                }
                nh = h.next_header();
                pos += h.header_len();
            }
            ip::IPV6_FRAG => {
                if i == MAX_IPV6_EXT_HEADERS {
                    return Err(Malformed::BadIpv6ExtHeader);
                }
                let h = Ipv6FragmentHeader::new_checked(wire::clamp(b, pos, dend))
                    .map_err(|_| Malformed::BadIpv6ExtHeader)?;
                nh = h.next_header();
                pos += ipv6::FRAGMENT_HEADER_LEN;
                frag = if h.frag_offset() != 0 {
                    Frag::NonFirst
                } else if h.more_frags() {
                    Frag::First
                } else {
                    // An atomic fragment (RFC 6946): a whole datagram.
                    Frag::No
                };
                if frag == Frag::NonFirst {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(Ip {
        version: 6,
        l3: off,
        proto: nh,
        l4: off + pos,
        end: off + dend,
        frag,
    })
}

#[inline(always)]
fn tcp(frame: &[u8], ip: &Ip, cfg: &SplitConfig, r: &mut SplitResult) -> Step {
    let seg = TcpPacket::new_unchecked(frame.get(ip.l4..ip.end).unwrap_or(&[]));
    let len = ip.end - ip.l4;
    if len < tcp::HEADER_LEN {
        return Err(Malformed::Truncated);
    }
    let hl = seg.header_len();
    if hl < tcp::HEADER_LEN || hl > len {
        return Err(Malformed::BadTcpDataOffset);
    }
    finish(r, FrameClass::Tcp, ip.l4 + hl, len - hl, cfg);
    Ok(())
}

#[inline(always)]
fn udp(frame: &[u8], ip: &Ip, cfg: &SplitConfig, r: &mut SplitResult, depth: usize) -> Walk {
    let d = UdpPacket::new_unchecked(frame.get(ip.l4..ip.end).unwrap_or(&[]));
    let len = ip.end - ip.l4;
    if len < udp::HEADER_LEN {
        return Err(Malformed::Truncated);
    }
    let mut ulen = d.len() as usize;
    if ulen == 0 && len > u16::MAX as usize {
        // RFC 2675: UDP length 0 in a jumbogram; the IP payload length is authoritative.
        ulen = len;
    }
    if ulen < udp::HEADER_LEN || ulen != len {
        return Err(Malformed::BadUdpLength);
    }
    let payload = ip.l4 + udp::HEADER_LEN;
    match d.dst_port() {
        udp::port::ROCEV2 => roce(frame, ip, cfg, r).map(|()| None),
        udp::port::VXLAN | udp::port::GENEVE if depth == MAX_TUNNEL_DEPTH => {
            r.class = FrameClass::Udp;
            r.reason = NoSplitReason::TunnelTooDeep;
            Ok(None)
        }
        udp::port::VXLAN => {
            let v = VxlanPacket::new_unchecked(frame.get(payload..ip.end).unwrap_or(&[]));
            match v.check_len() {
                Ok(()) => {}
                Err(wire::Error::Truncated) => return Err(Malformed::Truncated),
                Err(wire::Error::Malformed) => return Err(Malformed::BadTunnelHeader),
            }
            r.tunnel = Some(Tunnel::Vxlan);
            Ok(inner_ethernet(
                frame,
                payload + vxlan::HEADER_LEN,
                ip.end,
                r,
            )?)
        }
        udp::port::GENEVE => {
            let g = GenevePacket::new_unchecked(frame.get(payload..ip.end).unwrap_or(&[]));
            match g.check_len() {
                Ok(()) => {}
                Err(wire::Error::Truncated) => return Err(Malformed::Truncated),
                Err(wire::Error::Malformed) => return Err(Malformed::BadTunnelHeader),
            }
            r.tunnel = Some(Tunnel::Geneve);
            let inner_off = payload + g.header_len();
            match g.protocol_type() {
                EtherType::TEB => Ok(inner_ethernet(frame, inner_off, ip.end, r)?),
                t => match ip_version(t) {
                    Some(version) => Ok(Some(Inner {
                        l3: inner_off,
                        end: ip.end,
                        version,
                    })),
                    None => {
                        inner_non_ip(r);
                        Ok(None)
                    }
                },
            }
        }
        _ => {
            finish(r, FrameClass::Udp, payload, ulen - udp::HEADER_LEN, cfg);
            Ok(None)
        }
    }
}

/// The Ethernet frame a tunnel carries, at `off`, ending at `end` (the outer UDP end): the
/// inner IP datagram to walk, or `None` (class `NonIp`) when it is not IP.
#[inline(always)]
fn inner_ethernet(
    frame: &[u8],
    off: usize,
    end: usize,
    r: &mut SplitResult,
) -> Result<Option<Inner>, Malformed> {
    let l2 = ethernet::l2_header(frame.get(off..end).unwrap_or(&[]))
        .map_err(|_| Malformed::Truncated)?;
    match ip_version(l2.ethertype) {
        Some(version) => Ok(Some(Inner {
            l3: off + l2.l3_offset,
            end,
            version,
        })),
        None => {
            inner_non_ip(r);
            Ok(None)
        }
    }
}

/// A tunnel's inner frame is not IP: class `NonIp`, and, as for a plain non-IP frame, no
/// innermost IP or L4 header (the outer ones stay in `outer_l3_offset` and the tunnel kind).
#[inline(always)]
fn inner_non_ip(r: &mut SplitResult) {
    r.class = FrameClass::NonIp;
    r.reason = NoSplitReason::NonIp;
    r.l3_offset = None;
    r.l4_offset = None;
}

#[inline(always)]
fn roce(frame: &[u8], ip: &Ip, cfg: &SplitConfig, r: &mut SplitResult) -> Step {
    let bth_off = ip.l4 + udp::HEADER_LEN;
    let b = frame.get(bth_off..ip.end).unwrap_or(&[]);
    let p = RocePacket::new_unchecked(b);
    let bth = p.bth();
    let supported = match p.check_len() {
        Ok(()) => true,
        Err(_)
            if b.len() >= roce::BTH_LEN + roce::ICRC_LEN && unsupported_transport(bth.opcode()) =>
        {
            false
        }
        Err(_) => return Err(Malformed::BadRoceHeader),
    };
    let icrc_off = ip.end - roce::ICRC_LEN;
    let icrc_ok = if cfg.verify_icrc {
        roce::verify_icrc(frame, ip.l3, ip.version, ip.l4, icrc_off)
    } else {
        None
    };
    r.roce = Some(RoceInfo {
        opcode: bth.opcode(),
        dest_qp: bth.dest_qp(),
        psn: bth.psn(),
        icrc_ok,
    });
    if !supported {
        r.class = FrameClass::Roce;
        r.reason = NoSplitReason::UnsupportedTransport;
        return Ok(());
    }
    let payload = bth_off + p.payload_offset();
    // check_len guarantees payload + pad <= icrc_off.
    let payload_len = icrc_off - bth.pad_count() as usize - payload;
    finish(r, FrameClass::Roce, payload, payload_len, cfg);
    Ok(())
}

/// A BTH opcode of a transport the split does not parse: Reliable Datagram (opcode prefix
/// `010`, 0x40..=0x5f) or Extended Reliable Connected (XRC, `101`, 0xa0..=0xbf). Their
/// extended headers (RDETH, XRCETH) are not walked. Vendor-specific opcodes (0xc0..=0xff) and
/// the reserved ones (prefix `100` but the CNP, unused RC/UC/UD codes) stay `Malformed`.
#[inline(always)]
const fn unsupported_transport(opcode: u8) -> bool {
    matches!(opcode >> 5, 0b010 | 0b101)
}

#[inline(always)]
fn finish(r: &mut SplitResult, class: FrameClass, off: usize, len: usize, cfg: &SplitConfig) {
    r.class = class;
    r.payload_offset = off32(off);
    r.payload_len = off32(len);
    if len > cfg.hds_thresh as usize {
        r.split = true;
        r.reason = NoSplitReason::Split;
    } else {
        r.reason = NoSplitReason::BelowThresh;
    }
}

/// Per-class / per-reason counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SplitCounters {
    pub frames: u64,
    pub split: u64,
    pub not_split: u64,
    /// Indexed by `FrameClass as usize`.
    pub per_class: [u64; FrameClass::COUNT],
    /// Indexed by `NoSplitReason as usize`.
    pub per_reason: [u64; NoSplitReason::COUNT],
    pub icrc_bad: u64,
    pub tunnelled: u64,
}

impl SplitCounters {
    pub fn record(&mut self, r: &SplitResult) {
        self.frames += 1;
        if r.split {
            self.split += 1;
        } else {
            self.not_split += 1;
        }
        self.per_class[r.class as usize] += 1;
        self.per_reason[r.reason as usize] += 1;
        if matches!(
            r.roce,
            Some(RoceInfo {
                icrc_ok: Some(false),
                ..
            })
        ) {
            self.icrc_bad += 1;
        }
        if r.tunnel.is_some() {
            self.tunnelled += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    const C0: SplitConfig = SplitConfig {
        hds_thresh: 0,
        verify_icrc: true,
    };

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut f = std::vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    /// IPv4 header (no options) for `payload_len` bytes of `proto`.
    fn ipv4(proto: u8, payload_len: usize) -> Vec<u8> {
        let tl = (20 + payload_len) as u16;
        let mut h =
            std::vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        h[2..4].copy_from_slice(&tl.to_be_bytes());
        h
    }

    fn ipv6(next: u8, payload_len: usize) -> Vec<u8> {
        let mut h = std::vec![0x60, 0, 0, 0, 0, 0, next, 64];
        h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
        h.extend_from_slice(&[0; 32]);
        h
    }

    fn udp(dport: u16, payload_len: usize) -> Vec<u8> {
        let mut h = std::vec![0x30, 0x39, 0, 0, 0, 0, 0, 0];
        h[2..4].copy_from_slice(&dport.to_be_bytes());
        h[4..6].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
        h
    }

    fn tcp(data_offset_words: u8) -> Vec<u8> {
        let mut h = std::vec![0x04, 0xd2, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0x18, 2, 0, 0, 0, 0, 0];
        h[12] = data_offset_words << 4;
        h.resize(data_offset_words.max(5) as usize * 4, 1); // NOP options
        h
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// Ethernet/IPv4/TCP with `n` payload bytes and `pad` bytes of link padding.
    fn tcp4(n: usize, pad: usize) -> Vec<u8> {
        let mut f = cat(&[&eth(0x0800), &ipv4(6, 32 + n), &tcp(8), &std::vec![0xaa; n]]);
        f.resize(f.len() + pad, 0);
        f
    }

    fn err(f: &[u8]) -> Option<Malformed> {
        let r = split(f, &C0);
        assert_eq!(r.class == FrameClass::Malformed, r.error.is_some());
        r.error
    }

    #[test]
    fn tcp_split_and_threshold() {
        let f = tcp4(100, 0);
        let r = split(&f, &C0);
        assert_eq!(
            r,
            SplitResult {
                class: FrameClass::Tcp,
                reason: NoSplitReason::Split,
                split: true,
                payload_offset: Some(66),
                payload_len: Some(100),
                l3_offset: Some(14),
                l4_offset: Some(34),
                outer_l3_offset: Some(14),
                outer_ip_version: 4,
                tunnel: None,
                roce: None,
                error: None,
            }
        );
        // payload == hds_thresh: not split, offsets still reported.
        let r = split(
            &f,
            &SplitConfig {
                hds_thresh: 100,
                verify_icrc: true,
            },
        );
        assert_eq!(
            (r.split, r.class, r.reason),
            (false, FrameClass::Tcp, NoSplitReason::BelowThresh)
        );
        assert_eq!((r.payload_offset, r.payload_len), (Some(66), Some(100)));
        let r = split(
            &f,
            &SplitConfig {
                hds_thresh: 99,
                verify_icrc: true,
            },
        );
        assert!(r.split);
        // Zero-length payload in a padded minimum frame: padding is not payload.
        let f = tcp4(0, 6);
        assert_eq!(f.len(), 72);
        let r = split(&f, &C0);
        assert_eq!(
            (r.reason, r.payload_offset, r.payload_len),
            (NoSplitReason::BelowThresh, Some(66), Some(0))
        );
        let f = tcp4(3, 20);
        assert_eq!(split(&f, &C0).payload_len, Some(3));
    }

    #[test]
    fn udp_vlan_and_ipv6() {
        let f = cat(&[
            &eth(0x8100),
            &[0, 5, 0x86, 0xdd],
            &ipv6(17, 8 + 9),
            &udp(53, 9),
            &[7; 9],
        ]);
        let r = split(&f, &C0);
        assert_eq!(
            (r.class, r.split, r.outer_ip_version),
            (FrameClass::Udp, true, 6)
        );
        assert_eq!(
            (r.l3_offset, r.l4_offset, r.payload_offset, r.payload_len),
            (Some(18), Some(58), Some(66), Some(9))
        );
        // IPv4 with options: IHL 7.
        let mut ip = ipv4(17, 8 + 4);
        ip[0] = 0x47;
        ip[3] += 8;
        let f = cat(&[&eth(0x0800), &ip, &[1; 8], &udp(9, 4), &[1, 2, 3, 4]]);
        let r = split(&f, &C0);
        assert_eq!(
            (r.l4_offset, r.payload_offset, r.payload_len),
            (Some(42), Some(50), Some(4))
        );
    }

    #[test]
    fn non_ip_and_other_ip() {
        let r = split(&cat(&[&eth(0x0806), &[0; 28]]), &C0);
        assert_eq!(r, SplitResult::NON_IP);
        let r = split(&cat(&[&eth(0x002e), &[0; 46]]), &C0); // 802.3 length
        assert_eq!(r.class, FrameClass::NonIp);
        // Three tags: the third is not walked.
        let r = split(
            &cat(&[
                &eth(0x88a8),
                &[0, 1, 0x81, 0],
                &[0, 2, 0x81, 0],
                &[0, 3, 8, 0],
                &ipv4(6, 0),
            ]),
            &C0,
        );
        assert_eq!(r.class, FrameClass::NonIp);
        let r = split(
            &cat(&[&eth(0x0800), &ipv4(1, 8), &[8, 0, 0, 0, 0, 0, 0, 0]]),
            &C0,
        );
        assert_eq!(
            (r.class, r.reason, r.l4_offset),
            (FrameClass::OtherIp, NoSplitReason::UnknownProto, Some(34))
        );
        // IPv6 No Next Header.
        let r = split(&cat(&[&eth(0x86dd), &ipv6(59, 0)]), &C0);
        assert_eq!((r.class, r.l4_offset), (FrameClass::OtherIp, Some(54)));
    }

    #[test]
    fn ipv4_fragments() {
        let mut ip = ipv4(17, 16);
        ip[6] = 0x20; // MF, offset 0: first
        let f = cat(&[&eth(0x0800), &ip, &udp(9, 100), &[0; 8]]);
        let r = split(&f, &C0);
        assert_eq!(
            (r.class, r.reason, r.l4_offset, r.payload_offset),
            (FrameClass::OtherIp, NoSplitReason::Fragment, Some(34), None)
        );
        ip[7] = 1; // offset 8, MF: middle
        let r = split(&cat(&[&eth(0x0800), &ip, &[0; 16]]), &C0);
        assert_eq!(
            (r.class, r.reason, r.l4_offset),
            (FrameClass::Fragment, NoSplitReason::Fragment, None)
        );
        ip[6] = 0; // offset 8, no MF: last
        let r = split(&cat(&[&eth(0x0800), &ip, &[0; 16]]), &C0);
        assert_eq!(r.class, FrameClass::Fragment);
    }

    #[test]
    fn ipv6_ext_headers_and_fragments() {
        // HBH(8) -> DstOpts(8) -> Routing(24, SRH with 1 segment) -> UDP.
        let hbh = [60, 0, 1, 4, 0, 0, 0, 0];
        let dst = [43, 0, 1, 4, 0, 0, 0, 0];
        let mut srh = std::vec![17, 2, 4, 0, 0, 0, 0, 0];
        srh.extend_from_slice(&[0; 16]);
        let ext = cat(&[&hbh, &dst, &srh]);
        let f = cat(&[
            &eth(0x86dd),
            &ipv6(0, ext.len() + 8 + 5),
            &ext,
            &udp(7, 5),
            &[9; 5],
        ]);
        let r = split(&f, &C0);
        assert_eq!(
            (r.class, r.l4_offset, r.payload_offset, r.payload_len),
            (FrameClass::Udp, Some(94), Some(102), Some(5))
        );
        // HBH not first.
        let dst2 = [0, 0, 1, 4, 0, 0, 0, 0];
        let f = cat(&[&eth(0x86dd), &ipv6(60, 16 + 8), &dst2, &hbh, &udp(7, 0)]);
        assert_eq!(err(&f), Some(Malformed::BadIpv6ExtHeader));
        // Nine destination-options headers.
        let mut chain = Vec::new();
        for _ in 0..9 {
            chain.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        let n = chain.len();
        chain[n - 8] = 17;
        let f = cat(&[&eth(0x86dd), &ipv6(60, n + 8), &chain, &udp(7, 0)]);
        assert_eq!(err(&f), Some(Malformed::BadIpv6ExtHeader));
        // Eight is fine.
        let f = cat(&[&eth(0x86dd), &ipv6(60, n), &chain[8..], &udp(7, 0)]);
        assert_eq!(split(&f, &C0).class, FrameClass::Udp);
        // An ext header running past the datagram.
        let f = cat(&[
            &eth(0x86dd),
            &ipv6(60, 8),
            &[17, 1, 0, 0, 0, 0, 0, 0],
            &[0; 8],
        ]);
        assert_eq!(err(&f), Some(Malformed::BadIpv6ExtHeader));
        // Fragment header: first, non-first, atomic.
        let first = [17, 0, 0, 1, 0, 0, 0, 7];
        let f = cat(&[
            &eth(0x86dd),
            &ipv6(44, 16 + 8),
            &first,
            &udp(7, 100),
            &[0; 8],
        ]);
        let r = split(&f, &C0);
        assert_eq!(
            (r.class, r.reason, r.l4_offset),
            (FrameClass::OtherIp, NoSplitReason::Fragment, Some(62))
        );
        let later = [17, 0, 0, 0x09, 0, 0, 0, 7];
        let r = split(&cat(&[&eth(0x86dd), &ipv6(44, 16), &later, &[0; 8]]), &C0);
        assert_eq!(
            (r.class, r.reason, r.l4_offset),
            (FrameClass::Fragment, NoSplitReason::Fragment, None)
        );
        let atomic = [17, 0, 0, 0, 0, 0, 0, 7];
        let r = split(
            &cat(&[
                &eth(0x86dd),
                &ipv6(44, 8 + 8 + 2),
                &atomic,
                &udp(7, 2),
                &[1, 2],
            ]),
            &C0,
        );
        assert_eq!(
            (r.class, r.payload_offset, r.payload_len),
            (FrameClass::Udp, Some(70), Some(2))
        );
        // Truncated fragment header.
        let f = cat(&[&eth(0x86dd), &ipv6(44, 4), &first[..4]]);
        assert_eq!(err(&f), Some(Malformed::BadIpv6ExtHeader));
    }

    #[test]
    fn ipv6_jumbo_and_big_tcp() {
        let n = 70_000;
        let hbh = [6, 0, 0xc2, 4, 0, 0, 0, 0];
        let mut hbh = hbh;
        hbh[4..8].copy_from_slice(&((8 + 20 + n) as u32).to_be_bytes());
        let f = cat(&[
            &eth(0x86dd),
            &ipv6(0, 0),
            &hbh,
            &tcp(5),
            &std::vec![0; n],
            &[0; 4],
        ]);
        let r = split(&f, &C0);
        assert_eq!(
            (r.class, r.payload_offset, r.payload_len),
            (FrameClass::Tcp, Some(82), Some(n as u32))
        );
        // Jumbo length past the frame.
        let mut g = f.clone();
        g.truncate(f.len() - 5);
        assert_eq!(err(&g), Some(Malformed::IpLengthExceedsFrame));
        // Payload length 0 without the option, BIG TCP without HBH: see big_tcp_only_above_64k.
        // UDP length 0 in a jumbogram.
        let mut hbh = [17, 0, 0xc2, 4, 0, 0, 0, 0];
        hbh[4..8].copy_from_slice(&((8 + 8 + n) as u32).to_be_bytes());
        let mut u = udp(9, 0);
        u[4..6].copy_from_slice(&[0, 0]);
        let f = cat(&[&eth(0x86dd), &ipv6(0, 0), &hbh, &u, &std::vec![0; n]]);
        let r = split(&f, &C0);
        assert_eq!((r.class, r.payload_len), (FrameClass::Udp, Some(n as u32)));
    }

    #[test]
    fn every_malformed_reason() {
        use Malformed::*;
        let good = tcp4(10, 0);
        // Truncated: inside Ethernet, a VLAN tag, the IPv4 header, the TCP header.
        assert_eq!(err(&good[..13]), Some(Truncated));
        assert_eq!(err(&cat(&[&eth(0x8100), &[0, 1]])), Some(Truncated));
        assert_eq!(err(&good[..33]), Some(Truncated));
        let f = cat(&[&eth(0x0800), &ipv4(6, 10), &[0; 10]]);
        assert_eq!(err(&f), Some(Truncated));
        let f = cat(&[&eth(0x86dd), &ipv6(17, 0)[..39]]);
        assert_eq!(err(&f), Some(Truncated));
        // IpLengthExceedsFrame: total length > frame.
        assert_eq!(err(&good[..good.len() - 1]), Some(IpLengthExceedsFrame));
        let f = cat(&[&eth(0x86dd), &ipv6(17, 20), &udp(1, 11)]);
        assert_eq!(err(&f), Some(IpLengthExceedsFrame));
        // BadIpv4HeaderLen: IHL < 5, IHL beyond the total length.
        let mut f = good.clone();
        f[14] = 0x44;
        assert_eq!(err(&f), Some(BadIpv4HeaderLen));
        let mut f = good.clone();
        f[14] = 0x46;
        f[16..18].copy_from_slice(&[0, 22]);
        assert_eq!(err(&f), Some(BadIpv4HeaderLen));
        // BadIpv4TotalLen.
        let mut f = good.clone();
        f[16..18].copy_from_slice(&[0, 19]);
        assert_eq!(err(&f), Some(BadIpv4TotalLen));
        // BadIpVersion (both ways).
        let mut f = good.clone();
        f[14] = 0x65;
        assert_eq!(err(&f), Some(BadIpVersion));
        let f = cat(&[&eth(0x86dd), &ipv4(6, 20), &[0; 20]]);
        assert_eq!(err(&f), Some(BadIpVersion));
        // BadTcpDataOffset: < 5, past the IP payload.
        let mut f = good.clone();
        f[46] = 0x40;
        assert_eq!(err(&f), Some(BadTcpDataOffset));
        let mut f = good.clone();
        f[46] = 0xf0;
        assert_eq!(err(&f), Some(BadTcpDataOffset));
        // BadUdpLength: < 8, larger and smaller than the IP payload.
        for l in [7u16, 0, 13, 11] {
            let mut f = cat(&[&eth(0x0800), &ipv4(17, 12), &udp(9, 4), &[0; 4]]);
            f[38..40].copy_from_slice(&l.to_be_bytes());
            assert_eq!(err(&f), Some(BadUdpLength), "udp len {l}");
        }
        // BadIpv6ExtHeader: see ipv6_ext_headers_and_fragments.
        // BadRoceHeader: unknown opcode, headers + pad + ICRC beyond the datagram, short BTH.
        let f = roce_frame(0xc0, &[], 0); // vendor-specific (RD/XRC: roce_unsupported_transports)
        assert_eq!(err(&f), Some(BadRoceHeader));
        let f = roce_frame(0x0a, &[0; 15], 0); // WRITE ONLY needs a 16-byte RETH
        assert_eq!(err(&f), Some(BadRoceHeader));
        let f = cat(&[&eth(0x0800), &ipv4(17, 8 + 11), &udp(4791, 11), &[0; 11]]);
        assert_eq!(err(&f), Some(BadRoceHeader));
        // BadTunnelHeader: VXLAN without the I flag, Geneve version 1, Geneve options past
        // the packet.
        let mut vx = std::vec![0u8; 8];
        let f = cat(&[&eth(0x0800), &ipv4(17, 16), &udp(4789, 8), &vx]);
        assert_eq!(err(&f), Some(BadTunnelHeader));
        vx[0] = 0x08;
        let f = cat(&[&eth(0x0800), &ipv4(17, 16), &udp(4789, 8), &vx]);
        assert_eq!(err(&f), Some(Truncated)); // no inner Ethernet
        let f = cat(&[&eth(0x0800), &ipv4(17, 15), &udp(4789, 7), &vx[..7]]);
        assert_eq!(err(&f), Some(Truncated));
        let gn = [0x40, 0, 0x65, 0x58, 0, 0, 1, 0];
        let f = cat(&[&eth(0x0800), &ipv4(17, 16), &udp(6081, 8), &gn]);
        assert_eq!(err(&f), Some(BadTunnelHeader));
        let gn = [0x02, 0, 0x65, 0x58, 0, 0, 1, 0, 0, 0, 0, 0];
        let f = cat(&[&eth(0x0800), &ipv4(17, 20), &udp(6081, 12), &gn]);
        assert_eq!(err(&f), Some(BadTunnelHeader));
    }

    /// Ethernet/IPv4/UDP 4791 / BTH(opcode, pad) / `ext` + payload bytes / pad / ICRC (wrong).
    fn roce_frame(op: u8, body: &[u8], pad: u8) -> Vec<u8> {
        let n = 12 + body.len() + pad as usize + 4;
        let bth = [op, pad << 4, 0xff, 0xff, 0, 0, 0, 0x11, 0x80, 0, 0, 5];
        cat(&[
            &eth(0x0800),
            &ipv4(17, 8 + n),
            &udp(4791, n),
            &bth,
            body,
            &std::vec![0; pad as usize],
            &[0; 4],
        ])
    }

    #[test]
    fn roce_offsets_pad_and_icrc() {
        // RC SEND ONLY with 5 payload bytes + 3 pad.
        let f = roce_frame(0x04, &[1, 2, 3, 4, 5], 3);
        let r = split(&f, &C0);
        assert_eq!(
            (r.class, r.split, r.payload_offset, r.payload_len),
            (FrameClass::Roce, true, Some(54), Some(5))
        );
        assert_eq!(
            r.roce,
            Some(RoceInfo {
                opcode: 4,
                dest_qp: 0x11,
                psn: 5,
                icrc_ok: Some(false)
            })
        );
        // With the right ICRC.
        let mut g = f.clone();
        let n = g.len();
        let crc = roce::icrc(&g, 14, 4, 34, n - 4).unwrap();
        g[n - 4..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(split(&g, &C0).roce.unwrap().icrc_ok, Some(true));
        assert_eq!(
            split(
                &g,
                &SplitConfig {
                    hds_thresh: 0,
                    verify_icrc: false
                }
            )
            .roce
            .unwrap()
            .icrc_ok,
            None
        );
        // Link padding after the UDP datagram changes nothing.
        let mut p = g.clone();
        p.extend_from_slice(&[0; 7]);
        assert_eq!(split(&p, &C0), split(&g, &C0));
        // Payload below the threshold.
        let r = split(
            &g,
            &SplitConfig {
                hds_thresh: 5,
                verify_icrc: true,
            },
        );
        assert_eq!(
            (r.class, r.reason),
            (FrameClass::Roce, NoSplitReason::BelowThresh)
        );
        // ACK (AETH), no payload.
        let r = split(&roce_frame(0x11, &[0; 4], 0), &C0);
        assert_eq!(
            (r.reason, r.payload_offset, r.payload_len),
            (NoSplitReason::BelowThresh, Some(58), Some(0))
        );
        // Pad count larger than the payload.
        assert_eq!(err(&roce_frame(0x04, &[], 0)[..]), None);
        let mut f = roce_frame(0x04, &[], 0);
        f[43] = 0x30;
        assert_eq!(err(&f), Some(Malformed::BadRoceHeader));
    }

    #[test]
    fn tunnels() {
        let inner = tcp_inner();
        let f = vxlan_in(&inner);
        let r = split(&f, &C0);
        assert_eq!(
            (
                r.class,
                r.tunnel,
                r.outer_l3_offset,
                r.l3_offset,
                r.l4_offset
            ),
            (
                FrameClass::Tcp,
                Some(Tunnel::Vxlan),
                Some(14),
                Some(64),
                Some(84)
            )
        );
        assert_eq!((r.payload_offset, r.payload_len), (Some(104), Some(4)));
        // Inner IP length past the outer UDP payload.
        let mut g = f.clone();
        g[64 + 3] += 1;
        assert_eq!(err(&g), Some(Malformed::IpLengthExceedsFrame));
        // Geneve with 8 bytes of options carrying IPv4 directly (protocol 0x0800).
        let ip_inner = &inner[14..];
        let gn = [
            0x02, 0, 0x08, 0x00, 0, 0, 1, 0, 0x01, 0x02, 0x03, 0x01, 0xa, 0xb, 0xc, 0xd,
        ];
        let f = cat(&[
            &eth(0x86dd),
            &ipv6(17, 8 + 16 + ip_inner.len()),
            &udp(6081, 16 + ip_inner.len()),
            &gn,
            ip_inner,
        ]);
        let r = split(&f, &C0);
        assert_eq!(
            (
                r.class,
                r.tunnel,
                r.outer_ip_version,
                r.l3_offset,
                r.payload_len
            ),
            (FrameClass::Tcp, Some(Tunnel::Geneve), 6, Some(78), Some(4))
        );
        // Geneve with an unknown protocol type.
        let gn = [0, 0, 0x12, 0x34, 0, 0, 1, 0];
        let f = cat(&[
            &eth(0x0800),
            &ipv4(17, 16 + 4),
            &udp(6081, 8 + 4),
            &gn,
            &[0; 4],
        ]);
        let r = split(&f, &C0);
        assert_eq!(
            (
                r.class,
                r.tunnel,
                r.outer_l3_offset,
                r.l3_offset,
                r.l4_offset
            ),
            (
                FrameClass::NonIp,
                Some(Tunnel::Geneve),
                Some(14),
                None,
                None
            )
        );
        // A VXLAN port inside VXLAN is a nested tunnel (nested_tunnels): a bad inner VXLAN
        // header is malformed, not plain UDP.
        let in_udp = cat(&[&eth(0x0800), &ipv4(17, 8 + 8), &udp(4789, 8), &[0; 8]]);
        assert_eq!(err(&vxlan_in(&in_udp)), Some(Malformed::BadTunnelHeader));
        // RoCE inside VXLAN: the ICRC covers the inner IP header.
        let mut rf = roce_frame(0x04, &[1, 2, 3, 4], 0);
        let n = rf.len();
        let crc = roce::icrc(&rf, 14, 4, 34, n - 4).unwrap();
        rf[n - 4..].copy_from_slice(&crc.to_le_bytes());
        let r = split(&vxlan_in(&rf), &C0);
        assert_eq!(
            (r.class, r.payload_offset, r.payload_len),
            (FrameClass::Roce, Some(50 + 54), Some(4))
        );
        assert_eq!(r.roce.unwrap().icrc_ok, Some(true));
    }

    /// Ethernet/IPv4/TCP with 4 payload bytes: 54 bytes of headers, 58 in all.
    fn tcp_inner() -> Vec<u8> {
        cat(&[&eth(0x0800), &ipv4(6, 20 + 4), &tcp(5), &[1, 2, 3, 4]])
    }

    /// `inner` (an Ethernet frame) in Ethernet/IPv4/UDP 4789/VXLAN: 50 bytes in front.
    fn vxlan_in(inner: &[u8]) -> Vec<u8> {
        let vx = [0x08, 0, 0, 0, 0, 0, 7, 0];
        cat(&[
            &eth(0x0800),
            &ipv4(17, 16 + inner.len()),
            &udp(4789, 8 + inner.len()),
            &vx,
            inner,
        ])
    }

    /// `inner` (an Ethernet frame) in Ethernet/IPv6/UDP 6081/Geneve (protocol 0x6558, 8 bytes
    /// of options): 14 + 40 + 8 + 16 = 78 bytes in front.
    fn geneve_in(inner: &[u8]) -> Vec<u8> {
        let gn = [
            0x02, 0, 0x65, 0x58, 0, 0, 1, 0, 0x01, 0x02, 0x03, 0x01, 0xa, 0xb, 0xc, 0xd,
        ];
        cat(&[
            &eth(0x86dd),
            &ipv6(17, 8 + 16 + inner.len()),
            &udp(6081, 16 + inner.len()),
            &gn,
            inner,
        ])
    }

    /// (class, reason, split, payload_offset, payload_len, l3_offset, l4_offset, tunnel).
    type Seen = (
        FrameClass,
        NoSplitReason,
        bool,
        Option<u32>,
        Option<u32>,
        Option<u32>,
        Option<u32>,
        Option<Tunnel>,
    );

    fn seen(f: &[u8]) -> Seen {
        let r = split(f, &C0);
        assert_eq!(r.outer_l3_offset, Some(14));
        assert_eq!(r.error, None);
        (
            r.class,
            r.reason,
            r.split,
            r.payload_offset,
            r.payload_len,
            r.l3_offset,
            r.l4_offset,
            r.tunnel,
        )
    }

    /// The TCP split of `tcp_inner()` behind `front` bytes of tunnel headers.
    fn tcp_split_at(front: u32, tunnel: Tunnel) -> Seen {
        (
            FrameClass::Tcp,
            NoSplitReason::Split,
            true,
            Some(front + 54),
            Some(4),
            Some(front + 14),
            Some(front + 34),
            Some(tunnel),
        )
    }

    #[test]
    fn nested_tunnels() {
        use Tunnel::{Geneve, Vxlan};
        let inner = tcp_inner();
        // One level, then each two-level nesting: split at the innermost TCP payload, the
        // tunnel reported is the innermost one.
        assert_eq!(seen(&vxlan_in(&inner)), tcp_split_at(50, Vxlan));
        assert_eq!(seen(&geneve_in(&inner)), tcp_split_at(78, Geneve));
        let vv = vxlan_in(&vxlan_in(&inner));
        assert_eq!(vv.len(), 50 + 50 + 58);
        assert_eq!(seen(&vv), tcp_split_at(100, Vxlan));
        assert_eq!(
            seen(&vxlan_in(&geneve_in(&inner))),
            tcp_split_at(128, Geneve)
        );
        assert_eq!(
            seen(&geneve_in(&vxlan_in(&inner))),
            tcp_split_at(128, Vxlan)
        );
        assert_eq!(
            seen(&geneve_in(&geneve_in(&inner))),
            tcp_split_at(156, Geneve)
        );
        // Three levels (MAX_TUNNEL_DEPTH): still split.
        let three = vxlan_in(&geneve_in(&vxlan_in(&inner)));
        assert_eq!(seen(&three), tcp_split_at(178, Vxlan));
        // Four: the fourth tunnel header is not opened. The UDP datagram carrying it is the
        // innermost header reached: class Udp, not split, TunnelTooDeep, no payload fields.
        let four = vxlan_in(&vxlan_in(&vxlan_in(&vxlan_in(&inner))));
        assert_eq!(
            seen(&four),
            (
                FrameClass::Udp,
                NoSplitReason::TunnelTooDeep,
                false,
                None,
                None,
                Some(150 + 14),
                Some(150 + 34),
                Some(Vxlan),
            )
        );
        let four = geneve_in(&vxlan_in(&geneve_in(&geneve_in(&inner))));
        let r = split(&four, &C0);
        assert_eq!(
            (r.class, r.reason, r.l4_offset, r.tunnel),
            (
                FrameClass::Udp,
                NoSplitReason::TunnelTooDeep,
                Some(78 + 50 + 78 + 54),
                Some(Geneve)
            )
        );
        let mut c = SplitCounters::default();
        c.record(&r);
        assert_eq!(
            (
                c.not_split,
                c.tunnelled,
                c.per_reason[NoSplitReason::TunnelTooDeep as usize]
            ),
            (1, 1, 1)
        );
        // A malformed frame at any depth is malformed: the inner VXLAN header without the I
        // flag, three levels down.
        let mut bad = three.clone();
        bad[50 + 78 + 42] = 0;
        assert_eq!(err(&bad), Some(Malformed::BadTunnelHeader));
        // The innermost datagram bounded by the tunnel payload holding it.
        let mut bad = vv.clone();
        bad[100 + 14 + 3] += 1;
        assert_eq!(err(&bad), Some(Malformed::IpLengthExceedsFrame));
    }

    #[test]
    fn tunnel_carrying_non_ip_reports_no_inner_offsets() {
        use Tunnel::{Geneve, Vxlan};
        let arp = cat(&[&eth(0x0806), &[0; 28]]);
        let non_ip = |t| {
            (
                FrameClass::NonIp,
                NoSplitReason::NonIp,
                false,
                None,
                None,
                None,
                None,
                Some(t),
            )
        };
        // VXLAN carrying ARP: no innermost IP/L4 header (the outer UDP is at 34, not
        // reported as l4_offset).
        assert_eq!(seen(&vxlan_in(&arp)), non_ip(Vxlan));
        assert_eq!(seen(&vxlan_in(&vxlan_in(&arp))), non_ip(Vxlan));
        assert_eq!(seen(&vxlan_in(&geneve_in(&arp))), non_ip(Geneve));
        // A non-first fragment inside a tunnel has no L4 header either.
        let mut ip = ipv4(17, 16);
        ip[7] = 1;
        let frag = cat(&[&eth(0x0800), &ip, &[0; 16]]);
        assert_eq!(
            seen(&vxlan_in(&frag)),
            (
                FrameClass::Fragment,
                NoSplitReason::Fragment,
                false,
                None,
                None,
                Some(64),
                None,
                Some(Vxlan)
            )
        );
    }

    #[test]
    fn big_tcp_only_above_64k() {
        let with_tl = |mut f: Vec<u8>, tl: u16| {
            f[16..18].copy_from_slice(&tl.to_be_bytes());
            f
        };
        // A minimum-size frame, 4 payload bytes + 2 of Ethernet padding, total length 0: not
        // BIG TCP (the field could have said 44), malformed; the padding is never payload.
        let f = with_tl(tcp4(4, 2), 0);
        assert_eq!(f.len(), 14 + 52 + 4 + 2);
        let r = split(&f, &C0);
        assert_eq!(
            (
                r.class,
                r.reason,
                r.split,
                r.payload_offset,
                r.payload_len,
                r.error
            ),
            (
                FrameClass::Malformed,
                NoSplitReason::Malformed,
                false,
                None,
                None,
                Some(Malformed::BadIpv4TotalLen)
            )
        );
        // Also inside a tunnel (bounded by the outer UDP payload).
        assert_eq!(err(&vxlan_in(&f)), Some(Malformed::BadIpv4TotalLen));
        // The largest IPv4 part a total length could state (65535 bytes): still malformed.
        let n = IP_MAX_LEN - 52;
        let f = with_tl(tcp4(n, 0), 0);
        assert_eq!(f.len() - 14, 65535);
        assert_eq!(err(&f), Some(Malformed::BadIpv4TotalLen));
        // One byte more: BIG TCP, the datagram is the rest of the frame.
        let f = with_tl(tcp4(n + 1, 0), 0);
        let r = split(&f, &C0);
        assert_eq!(
            (r.class, r.split, r.payload_offset, r.payload_len),
            (FrameClass::Tcp, true, Some(66), Some(n as u32 + 1))
        );
        // IPv6 payload length 0 without a Jumbo Payload option: BIG TCP only above 64 KiB
        // after the fixed header; below, an empty payload (here: no room for TCP).
        let f = cat(&[&eth(0x86dd), &ipv6(6, 0), &tcp(5), &[1; 10]]);
        assert_eq!(err(&f), Some(Malformed::Truncated));
        let f = cat(&[&eth(0x86dd), &ipv6(59, 0), &[0; 6]]);
        let r = split(&f, &C0);
        assert_eq!((r.class, r.l4_offset), (FrameClass::OtherIp, Some(54)));
        let big = IP_MAX_LEN + 1 - 20;
        let f = cat(&[&eth(0x86dd), &ipv6(6, 0), &tcp(5), &std::vec![1; big]]);
        let r = split(&f, &C0);
        assert_eq!(
            (r.class, r.split, r.payload_offset, r.payload_len),
            (FrameClass::Tcp, true, Some(74), Some(big as u32))
        );
        let f = cat(&[&eth(0x86dd), &ipv6(6, 0), &tcp(5), &std::vec![1; big - 1]]);
        assert_eq!(err(&f), Some(Malformed::Truncated));
    }

    /// `f` with its ICRC (Ethernet/IPv4/UDP, no tunnel) made right.
    fn with_icrc(mut f: Vec<u8>) -> Vec<u8> {
        let n = f.len();
        let crc = roce::icrc(&f, 14, 4, 34, n - 4).unwrap();
        f[n - 4..].copy_from_slice(&crc.to_le_bytes());
        f
    }

    #[test]
    fn roce_unsupported_transports() {
        // RD (0x40..=0x5f) and XRC (0xa0..=0xbf): RoCE, not split, UnsupportedTransport.
        for op in [0x40u8, 0x44, 0x55, 0x5f, 0xa0, 0xa4, 0xb7, 0xbf] {
            let f = with_icrc(roce_frame(op, &[0; 16], 0));
            let r = split(&f, &C0);
            assert_eq!(
                r,
                SplitResult {
                    class: FrameClass::Roce,
                    reason: NoSplitReason::UnsupportedTransport,
                    split: false,
                    payload_offset: None,
                    payload_len: None,
                    l3_offset: Some(14),
                    l4_offset: Some(34),
                    outer_l3_offset: Some(14),
                    outer_ip_version: 4,
                    tunnel: None,
                    roce: Some(RoceInfo {
                        opcode: op,
                        dest_qp: 0x11,
                        psn: 5,
                        icrc_ok: Some(true)
                    }),
                    error: None,
                },
                "opcode {op:#x}"
            );
            let mut c = SplitCounters::default();
            c.record(&r);
            assert_eq!(
                (
                    c.per_class[FrameClass::Roce as usize],
                    c.per_reason[NoSplitReason::UnsupportedTransport as usize],
                    c.icrc_bad
                ),
                (1, 1, 0)
            );
            // Bad ICRC still reported; inside VXLAN too.
            let r = split(&roce_frame(op, &[0; 16], 0), &C0);
            assert_eq!(r.roce.unwrap().icrc_ok, Some(false));
            let r = split(&vxlan_in(&f), &C0);
            assert_eq!(
                (r.class, r.reason, r.payload_offset, r.tunnel),
                (
                    FrameClass::Roce,
                    NoSplitReason::UnsupportedTransport,
                    None,
                    Some(Tunnel::Vxlan)
                )
            );
        }
        // Room for the BTH but not the ICRC: malformed.
        let f = cat(&[
            &eth(0x0800),
            &ipv4(17, 8 + 15),
            &udp(4791, 15),
            &[0x44],
            &[0; 14],
        ]);
        assert_eq!(err(&f), Some(Malformed::BadRoceHeader));
        // Reserved and vendor-specific opcodes stay malformed.
        for op in [0x15u8, 0x3f, 0x60, 0x80, 0x9f, 0xc0, 0xff] {
            assert_eq!(
                err(&roce_frame(op, &[0; 16], 0)),
                Some(Malformed::BadRoceHeader),
                "opcode {op:#x}"
            );
        }
    }

    fn invariants(frame: &[u8], cfg: &SplitConfig, r: &SplitResult) {
        assert_eq!(r.split, r.reason == NoSplitReason::Split);
        if r.split {
            assert!(matches!(
                r.class,
                FrameClass::Tcp | FrameClass::Udp | FrameClass::Roce
            ));
            let (o, l) = (
                r.payload_offset.unwrap() as u64,
                r.payload_len.unwrap() as u64,
            );
            assert!(o + l <= frame.len() as u64);
            assert!(l > cfg.hds_thresh as u64);
        }
        if let (Some(o), Some(l)) = (r.payload_offset, r.payload_len) {
            assert!(o as u64 + l as u64 <= frame.len() as u64);
        }
        assert_eq!(r.class == FrameClass::Malformed, r.error.is_some());
    }

    fn seeds() -> Vec<Vec<u8>> {
        std::vec![
            tcp4(40, 0),
            roce_frame(0x0b, &[0; 24], 2),
            roce_frame(0x12, &[0; 12], 0),
            vxlan_in(&geneve_in(&tcp_inner())),
            cat(&[
                &eth(0x86dd),
                &ipv6(0, 8 + 8 + 2),
                &[17, 0, 1, 4, 0, 0, 0, 0],
                &udp(7, 2),
                &[1, 2]
            ]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        #[test]
        fn random_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            t in 0u32..64,
        ) {
            let cfg = SplitConfig { hds_thresh: t, verify_icrc: t % 2 == 0 };
            invariants(&data, &cfg, &split(&data, &cfg));
        }

        #[test]
        fn ip_shaped_random_bytes(
            et in prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x8100), Just(0x88a8)],
            body in proptest::collection::vec(any::<u8>(), 0..160),
        ) {
            let f = cat(&[&eth(et), &body]);
            invariants(&f, &C0, &split(&f, &C0));
        }

        #[test]
        fn mutated_frames(
            which in 0usize..5,
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
            cut in any::<usize>(),
            t in 0u32..50,
        ) {
            let mut f = seeds()[which].clone();
            for (i, v) in flips {
                let n = f.len();
                f[i % n] = v;
            }
            let cut = cut % (f.len() + 1);
            let cfg = SplitConfig { hds_thresh: t, verify_icrc: true };
            invariants(&f[..cut], &cfg, &split(&f[..cut], &cfg));
            invariants(&f, &cfg, &split(&f, &cfg));
        }
    }
}
