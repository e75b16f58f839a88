//! Deterministic synthetic traffic: complete Ethernet frames with correct checksums and ICRCs,
//! each paired with its ground truth (the exact header-split answer).
//!
//! # The `--synthetic SPEC` grammar
//!
//! ```text
//! spec   := item ("," item)*
//! item   := "mix" | flow                                ("mix" adds the flows of MIX)
//! flow   := kind [":" sizes] ["@" pmtu] ["*" weight]
//! kind   := ["vlan" [ID] "-"] base
//! base   := "tcp4" | "tcp6" | "udp4" | "udp6"
//!         | "vxlan" | "vxlan-tcp" | "vxlan-udp"          (vxlan = vxlan-tcp)
//!         | "roce-write" | "roce-send" | "roce6-write" | "roce6-send"
//! sizes  := N | LO "-" HI | A "/" B ["/" C ...]          (decimal bytes)
//! pmtu   := 256 | 512 | 1024 | 2048 | 4096               (RoCE only; default 4096)
//! weight := 1..=1000                                     (default 1)
//! ```
//!
//! Every `flow` item is one flow (one 5-tuple, one QP). `sizes` is the L4 payload length of each
//! frame for TCP/UDP/VXLAN (default 1500; `N` fixed, `LO-HI` uniform, `A/B/C` uniform choice),
//! and the *message* length for RoCE, which is segmented into path-MTU packets
//! (FIRST/MIDDLE.../LAST, or ONLY). Limits: TCP/UDP/VXLAN payloads at most [`MAX_PAYLOAD`]
//! (9000) bytes, RoCE messages at most [`MAX_ROCE_MESSAGE`] bytes, and no frame longer than
//! [`MAX_FRAME`] (9216) bytes. `vlan-` adds an 802.1Q tag (VLAN 100, or `vlanID-` for ID in
//! 1..=4094; for VXLAN the tag is on the outer frame). The generator picks the next flow at
//! random in proportion to the weights; a RoCE flow that is in the middle of a message continues
//! it when picked, so packets of one QP are always in PSN order.
//!
//! `mix` is [`MIX`]. Examples: `tcp4:1500,udp6:64,vxlan:4000,roce-write:4096,vlan-tcp4:1500`,
//! `tcp4:64-9000*3,roce-send:65536@1024`.
//!
//! # What is generated
//! - TCP: 32-byte header (NOP, NOP, timestamps), PSH|ACK, sequence numbers advance by payload.
//! - UDP: 8-byte header, checksum always computed (IPv4 and IPv6 pseudo-headers).
//! - IPv4: 20-byte header, DF, TTL 64, increasing identification, correct header checksum.
//!   IPv6: no extension headers, per-flow flow label, hop limit 64.
//! - VXLAN: outer IPv4/UDP 4789 with UDP checksum 0 (RFC 7348), VNI per flow, inner Ethernet /
//!   IPv4 / TCP or UDP with correct inner checksums.
//! - RoCEv2 (UDP 4791) RC: BTH (+ RETH on WRITE FIRST/ONLY), payload, pad to a multiple of 4,
//!   ICRC. The UDP checksum is 0 over IPv4 (as Linux rxe and RoCE NICs send) and computed over
//!   IPv6. PSNs increase by one per packet per QP (24-bit, wrapping), AckReq on LAST/ONLY.
//! - Frames shorter than 60 bytes get Ethernet padding, which is not payload.
//! - Payload bytes are [`fill_payload`]`(flow, seq)`: a verifier recomputes them.

use core::fmt;
use core::str::FromStr;

use splitrx_shared::split::{
    FrameClass, NoSplitReason, RoceInfo, SplitConfig, SplitResult, Tunnel,
};

/// Largest TCP/UDP/VXLAN-inner payload the generator accepts.
pub const MAX_PAYLOAD: u32 = 9000;
/// Largest frame (without FCS) the generator may produce.
pub const MAX_FRAME: usize = 9216;
/// Ethernet minimum frame length without FCS; shorter frames are zero-padded.
pub const MIN_FRAME: usize = 60;
/// Largest RoCE message (it is segmented into path-MTU packets).
pub const MAX_ROCE_MESSAGE: u32 = 1 << 20;
/// Largest number of flows in one spec.
pub const MAX_FLOWS: usize = 4096;
/// Largest flow weight.
pub const MAX_WEIGHT: u32 = 1000;
/// Size of each RoCE WRITE flow's remote memory region; messages are placed in it one after
/// another (64-byte aligned), wrapping to its start.
pub const ROCE_REGION_LEN: u64 = 4 << 20;
/// Default payload size when an item has no `:sizes`.
pub const DEFAULT_SIZE: u32 = 1500;
/// Default RoCE path MTU.
pub const DEFAULT_PMTU: u32 = 4096;
/// VLAN id used by a bare `vlan-` prefix.
pub const DEFAULT_VLAN: u16 = 100;

/// The built-in mixed workload (`--synthetic mix`).
pub const MIX: &str = "tcp4:64-1500*4,tcp6:1500*2,udp4:64/512/1500*2,udp6:64-9000,\
vlan-tcp4:1500,vxlan-tcp:1400,vxlan-udp:64-1400,roce-write:1-16384@1024*2,\
roce-send:64-4096@1024,roce6-write:9000@4096";

/// UDP destination port of RoCEv2.
pub const ROCE_PORT: u16 = 4791;
/// UDP destination port of VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// TCP destination port of generated TCP flows.
pub const TCP_PORT: u16 = 5201;
/// UDP destination port of generated UDP flows.
pub const UDP_PORT: u16 = 9000;

const ETH_HDR: usize = 14;
const VLAN_TAG: usize = 4;
const IPV4_HDR: usize = 20;
const IPV6_HDR: usize = 40;
const TCP_HDR: usize = 32;
const UDP_HDR: usize = 8;
const VXLAN_HDR: usize = 8;
const BTH: usize = 12;
const RETH: usize = 16;
const ICRC: usize = 4;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// RC opcodes (IBTA vol. 1, table 38).
pub mod opcode {
    pub const SEND_FIRST: u8 = 0x00;
    pub const SEND_MIDDLE: u8 = 0x01;
    pub const SEND_LAST: u8 = 0x02;
    pub const SEND_ONLY: u8 = 0x04;
    pub const WRITE_FIRST: u8 = 0x06;
    pub const WRITE_MIDDLE: u8 = 0x07;
    pub const WRITE_LAST: u8 = 0x08;
    pub const WRITE_ONLY: u8 = 0x0a;
}

// ---------------------------------------------------------------------------------------------
// PRNG and payload pattern
// ---------------------------------------------------------------------------------------------

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to drive a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// A value in `0..n` (`n > 0`), by Lemire's multiply-shift (bias < n / 2^64).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The SplitMix64 output function (a strong 64-bit mixer).
#[inline]
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The per-packet base word of the payload pattern.
fn payload_base(flow: u32, seq: u64) -> u64 {
    mix64(seq ^ mix64(u64::from(flow) ^ 0x5350_5258_5041_594c))
}

/// Golden-ratio increment: consecutive payload words differ in about half their bits.
const PAYLOAD_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// Writes the payload of packet `seq` of flow `flow` into `out`: little-endian 64-bit words
/// `base(flow, seq) ^ ((i + 1) * PAYLOAD_STEP)` for word `i`, where `base` is a SplitMix64 hash
/// of `(flow, seq)`. A pure function of `(flow, seq, out.len())`; a shorter payload is a prefix
/// of a longer one. Every 8-byte word of a packet is distinct, and packets differ from each
/// other, so a verifier catches misplaced, shifted, stale or swapped payload bytes. (Cheap on
/// purpose: the generator must outrun the datapath it feeds.)
pub fn fill_payload(flow: u32, seq: u64, out: &mut [u8]) {
    let base = payload_base(flow, seq);
    // Four words per step, each from its own index, so the loop has no carried chain but `i`.
    let mut blocks = out.chunks_exact_mut(32);
    let mut i = 0u64;
    for b in &mut blocks {
        for (k, w) in b.chunks_exact_mut(8).enumerate() {
            let step = (i + k as u64 + 1).wrapping_mul(PAYLOAD_STEP);
            w.copy_from_slice(&(base ^ step).to_le_bytes());
        }
        i += 4;
    }
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for w in &mut words {
        i += 1;
        w.copy_from_slice(&(base ^ i.wrapping_mul(PAYLOAD_STEP)).to_le_bytes());
    }
    let tail = words.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&(base ^ (i + 1).wrapping_mul(PAYLOAD_STEP)).to_le_bytes()[..n]);
}

/// Index of the first byte of `data` that differs from [`fill_payload`]`(flow, seq)`, or
/// `None` when all match.
pub fn payload_mismatch(flow: u32, seq: u64, data: &[u8]) -> Option<usize> {
    let base = payload_base(flow, seq);
    let mut step = 0u64;
    for (i, c) in data.chunks(8).enumerate() {
        step = step.wrapping_add(PAYLOAD_STEP);
        let want = (base ^ step).to_le_bytes();
        if let Some(j) = c.iter().zip(want.iter()).position(|(a, b)| a != b) {
            return Some(i * 8 + j);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Checksums
// ---------------------------------------------------------------------------------------------

/// Adds `data` to a one's-complement accumulator as big-endian 16-bit words (an odd trailing
/// byte is the high byte of a zero-padded word). `data` must start at an even offset of the
/// summed message.
///
/// The bulk is summed as native-endian 32-bit words into a u64 (which the compiler
/// vectorises), folded, and byte-swapped on little-endian machines: the one's-complement sum
/// is byte-order independent (RFC 1071 section 2(B)).
#[inline]
fn sum_be(data: &[u8], mut acc: u64) -> u64 {
    if data.len() < 64 {
        // Short headers: a plain loop beats the vector loop's setup.
        let mut words = data.chunks_exact(2);
        for w in &mut words {
            acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
        }
        if let [b] = words.remainder() {
            acc += u64::from(*b) << 8;
        }
        return acc;
    }
    let bulk = data.len() & !3;
    let mut native = 0u64;
    for c in data[..bulk].chunks_exact(4) {
        native += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let folded = fold(native);
    acc += u64::from(if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    });
    let mut rest = &data[bulk..];
    if rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let [b] = rest {
        acc += u64::from(*b) << 8;
    }
    acc
}

#[inline]
fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum (RFC 1071) of `data`.
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(sum_be(data, 0))
}

/// TCP/UDP checksum over an IPv4 or IPv6 pseudo-header plus `l4` (header with a zero checksum
/// field, and payload). `src`/`dst` are 4 or 16 bytes. A UDP result of 0 must be sent as
/// 0xffff; the caller does that.
pub fn l4_checksum(src: &[u8], dst: &[u8], proto: u8, l4: &[u8]) -> u16 {
    let mut acc = sum_be(src, 0);
    acc = sum_be(dst, acc);
    acc += u64::from(proto);
    acc += l4.len() as u64;
    !fold(sum_be(l4, acc))
}

/// The RoCEv2 ICRC (IBTA annex A17.3.3) of an IP packet `l3` that starts at the IP header and
/// ends with the 4-byte ICRC (i.e. `l3` is exactly the IP packet by its length fields). The CRC
/// runs over 8 bytes of 0xff (the masked LRH), the IP header with its variant fields set to
/// ones (IPv4: TOS, TTL, header checksum; IPv6: traffic class, flow label, hop limit), the UDP
/// header with its checksum set to ones, the BTH with resv8a set to ones, and everything after
/// the BTH up to the ICRC. It goes on the wire little-endian, as Linux rxe stores it.
///
/// `None` when `l3` is not IPv4/IPv6 + UDP + BTH + ICRC.
pub fn roce_icrc(l3: &[u8]) -> Option<u32> {
    let version = l3.first()? >> 4;
    let ip_len = match version {
        4 => usize::from(l3[0] & 0x0f) * 4,
        6 => IPV6_HDR,
        _ => return None,
    };
    if ip_len < IPV4_HDR || l3.len() < ip_len + UDP_HDR + BTH + ICRC {
        return None;
    }
    let proto = if version == 4 { l3[9] } else { l3[6] };
    if proto != PROTO_UDP {
        return None;
    }
    // One ICRC implementation for generator and NIC alike: the shared crate's.
    splitrx_shared::wire::roce::icrc(l3, 0, version, ip_len, l3.len() - ICRC)
}

/// Checks the ICRC of a RoCEv2 Ethernet frame (up to two VLAN tags; the IP packet is delimited
/// by the IP length fields, so Ethernet padding is ignored). `None` when the frame is not
/// IPv4/IPv6 + UDP port 4791 or is too short to hold an ICRC.
pub fn verify_roce_frame(frame: &[u8]) -> Option<bool> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    let mut tags = 0;
    while (ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ) && tags < 2 {
        off += VLAN_TAG;
        tags += 1;
        ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    }
    let l3 = frame.get(off + 2..)?;
    let (len, udp) = match ethertype {
        ETHERTYPE_IPV4 => {
            let ihl = usize::from(l3.first()? & 0x0f) * 4;
            (
                usize::from(u16::from_be_bytes([*l3.get(2)?, *l3.get(3)?])),
                ihl,
            )
        }
        ETHERTYPE_IPV6 => (
            IPV6_HDR + usize::from(u16::from_be_bytes([*l3.get(4)?, *l3.get(5)?])),
            IPV6_HDR,
        ),
        _ => return None,
    };
    let l3 = l3.get(..len)?;
    if u16::from_be_bytes([*l3.get(udp + 2)?, *l3.get(udp + 3)?]) != ROCE_PORT {
        return None;
    }
    let want = roce_icrc(l3)?;
    let got = u32::from_le_bytes(l3[len - ICRC..].try_into().ok()?);
    Some(want == got)
}

// ---------------------------------------------------------------------------------------------
// The spec
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum IpVersion {
    V4,
    V6,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum L4 {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum RoceOp {
    Write,
    Send,
}

/// What a flow carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum FlowKind {
    /// Ethernet / IP / TCP or UDP.
    Plain { ip: IpVersion, l4: L4 },
    /// Ethernet / IPv4 / UDP 4789 / VXLAN / Ethernet / IPv4 / TCP or UDP.
    Vxlan { l4: L4 },
    /// Ethernet / IP / UDP 4791 / BTH [/ RETH] / payload / pad / ICRC, reliable connected.
    Roce {
        ip: IpVersion,
        op: RoceOp,
        pmtu: u32,
    },
}

impl FlowKind {
    const NAMES: &'static str = "tcp4, tcp6, udp4, udp6, vxlan, vxlan-tcp, vxlan-udp, \
roce-write, roce-send, roce6-write, roce6-send";

    fn from_base(base: &str) -> Option<FlowKind> {
        use FlowKind::*;
        use IpVersion::*;
        Some(match base {
            "tcp4" => Plain {
                ip: V4,
                l4: L4::Tcp,
            },
            "tcp6" => Plain {
                ip: V6,
                l4: L4::Tcp,
            },
            "udp4" => Plain {
                ip: V4,
                l4: L4::Udp,
            },
            "udp6" => Plain {
                ip: V6,
                l4: L4::Udp,
            },
            "vxlan" | "vxlan-tcp" => Vxlan { l4: L4::Tcp },
            "vxlan-udp" => Vxlan { l4: L4::Udp },
            "roce-write" => Roce {
                ip: V4,
                op: RoceOp::Write,
                pmtu: DEFAULT_PMTU,
            },
            "roce-send" => Roce {
                ip: V4,
                op: RoceOp::Send,
                pmtu: DEFAULT_PMTU,
            },
            "roce6-write" => Roce {
                ip: V6,
                op: RoceOp::Write,
                pmtu: DEFAULT_PMTU,
            },
            "roce6-send" => Roce {
                ip: V6,
                op: RoceOp::Send,
                pmtu: DEFAULT_PMTU,
            },
            _ => return None,
        })
    }

    fn base_name(self) -> &'static str {
        use FlowKind::*;
        use IpVersion::*;
        match self {
            Plain {
                ip: V4,
                l4: L4::Tcp,
            } => "tcp4",
            Plain {
                ip: V6,
                l4: L4::Tcp,
            } => "tcp6",
            Plain {
                ip: V4,
                l4: L4::Udp,
            } => "udp4",
            Plain {
                ip: V6,
                l4: L4::Udp,
            } => "udp6",
            Vxlan { l4: L4::Tcp } => "vxlan-tcp",
            Vxlan { l4: L4::Udp } => "vxlan-udp",
            Roce {
                ip: V4,
                op: RoceOp::Write,
                ..
            } => "roce-write",
            Roce {
                ip: V4,
                op: RoceOp::Send,
                ..
            } => "roce-send",
            Roce {
                ip: V6,
                op: RoceOp::Write,
                ..
            } => "roce6-write",
            Roce {
                ip: V6,
                op: RoceOp::Send,
                ..
            } => "roce6-send",
        }
    }

    /// Header bytes before the payload (without a VLAN tag), and the trailer after it (RoCE
    /// pad + ICRC at most), for the largest case.
    fn max_overhead(self) -> usize {
        match self {
            FlowKind::Plain { ip, l4 } => ETH_HDR + ip_hdr_len(ip) + l4_hdr_len(l4),
            FlowKind::Vxlan { l4 } => {
                ETH_HDR + IPV4_HDR + UDP_HDR + VXLAN_HDR + ETH_HDR + IPV4_HDR + l4_hdr_len(l4)
            }
            FlowKind::Roce { ip, .. } => ETH_HDR + ip_hdr_len(ip) + UDP_HDR + BTH + RETH + 3 + ICRC,
        }
    }
}

const fn ip_hdr_len(ip: IpVersion) -> usize {
    match ip {
        IpVersion::V4 => IPV4_HDR,
        IpVersion::V6 => IPV6_HDR,
    }
}

const fn l4_hdr_len(l4: L4) -> usize {
    match l4 {
        L4::Tcp => TCP_HDR,
        L4::Udp => UDP_HDR,
    }
}

/// Payload (or RoCE message) sizes of a flow.
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
pub enum SizeSpec {
    Fixed(u32),
    /// Uniform in `lo..=hi`.
    Range(u32, u32),
    /// Uniform choice among the values.
    Choice(Vec<u32>),
}

impl SizeSpec {
    pub fn max(&self) -> u32 {
        match self {
            SizeSpec::Fixed(n) => *n,
            SizeSpec::Range(_, hi) => *hi,
            SizeSpec::Choice(v) => v.iter().copied().max().unwrap_or(0),
        }
    }

    fn sample(&self, rng: &mut SplitMix64) -> u32 {
        match self {
            SizeSpec::Fixed(n) => *n,
            SizeSpec::Range(lo, hi) => lo + rng.below(u64::from(hi - lo) + 1) as u32,
            SizeSpec::Choice(v) => v[rng.below(v.len() as u64) as usize],
        }
    }
}

impl fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeSpec::Fixed(n) => write!(f, "{n}"),
            SizeSpec::Range(lo, hi) => write!(f, "{lo}-{hi}"),
            SizeSpec::Choice(v) => {
                for (i, n) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str("/")?;
                    }
                    write!(f, "{n}")?;
                }
                Ok(())
            }
        }
    }
}

/// One flow of a [`TrafficSpec`].
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
pub struct FlowSpec {
    pub kind: FlowKind,
    /// 802.1Q VLAN id (outer frame for VXLAN).
    pub vlan: Option<u16>,
    pub size: SizeSpec,
    pub weight: u32,
}

impl FlowSpec {
    /// Length of the longest frame this flow can produce.
    pub fn max_frame_len(&self) -> usize {
        let vlan = if self.vlan.is_some() { VLAN_TAG } else { 0 };
        let payload = match self.kind {
            FlowKind::Roce { pmtu, .. } => self.size.max().min(pmtu),
            _ => self.size.max(),
        };
        (self.kind.max_overhead() + vlan + payload as usize).max(MIN_FRAME)
    }

    fn validate(&self, item: &str) -> Result<(), SpecError> {
        let err = |kind| {
            Err(SpecError {
                item: item.to_string(),
                kind,
            })
        };
        let limit = match self.kind {
            FlowKind::Roce { .. } => MAX_ROCE_MESSAGE,
            _ => MAX_PAYLOAD,
        };
        match &self.size {
            SizeSpec::Range(lo, hi) if lo > hi => {
                return err(SpecErrorKind::EmptyRange { lo: *lo, hi: *hi })
            }
            SizeSpec::Choice(v) if v.is_empty() => {
                return err(SpecErrorKind::BadSize {
                    text: String::new(),
                })
            }
            _ => {}
        }
        if self.size.max() > limit {
            return err(SpecErrorKind::SizeTooLarge {
                size: self.size.max(),
                max: limit,
            });
        }
        if let FlowKind::Roce { pmtu, .. } = self.kind {
            if !matches!(pmtu, 256 | 512 | 1024 | 2048 | 4096) {
                return err(SpecErrorKind::BadPmtu {
                    text: pmtu.to_string(),
                });
            }
        }
        if let Some(v) = self.vlan {
            if !(1..=4094).contains(&v) {
                return err(SpecErrorKind::BadVlan {
                    text: v.to_string(),
                });
            }
        }
        if self.weight == 0 || self.weight > MAX_WEIGHT {
            return err(SpecErrorKind::BadWeight {
                text: self.weight.to_string(),
            });
        }
        // With the limits above every kind fits (asserted by a test); this guards new kinds.
        let len = self.max_frame_len();
        if len > MAX_FRAME {
            return err(SpecErrorKind::FrameTooLarge {
                len,
                max: MAX_FRAME,
            });
        }
        Ok(())
    }

    fn parse_item(item: &str) -> Result<FlowSpec, SpecError> {
        let err = |kind| SpecError {
            item: item.to_string(),
            kind,
        };
        let (rest, weight) = match item.rsplit_once('*') {
            Some((r, w)) => {
                let weight = w
                    .parse::<u32>()
                    .ok()
                    .filter(|w| (1..=MAX_WEIGHT).contains(w))
                    .ok_or_else(|| {
                        err(SpecErrorKind::BadWeight {
                            text: w.to_string(),
                        })
                    })?;
                (r, weight)
            }
            None => (item, 1),
        };
        let (rest, pmtu) = match rest.rsplit_once('@') {
            Some((r, p)) => {
                let pmtu = p
                    .parse::<u32>()
                    .ok()
                    .filter(|p| matches!(p, 256 | 512 | 1024 | 2048 | 4096))
                    .ok_or_else(|| {
                        err(SpecErrorKind::BadPmtu {
                            text: p.to_string(),
                        })
                    })?;
                (r, Some(pmtu))
            }
            None => (rest, None),
        };
        let (kind_text, size) = match rest.split_once(':') {
            Some((k, s)) => (
                k,
                Some(parse_sizes(s).ok_or_else(|| {
                    err(SpecErrorKind::BadSize {
                        text: s.to_string(),
                    })
                })?),
            ),
            None => (rest, None),
        };
        let (vlan, base) = match kind_text.strip_prefix("vlan") {
            Some(r) => {
                let (id, base) = r.split_once('-').ok_or_else(|| {
                    err(SpecErrorKind::UnknownKind {
                        kind: kind_text.to_string(),
                    })
                })?;
                let vlan = if id.is_empty() {
                    DEFAULT_VLAN
                } else {
                    id.parse::<u16>()
                        .ok()
                        .filter(|v| (1..=4094).contains(v))
                        .ok_or_else(|| {
                            err(SpecErrorKind::BadVlan {
                                text: id.to_string(),
                            })
                        })?
                };
                (Some(vlan), base)
            }
            None => (None, kind_text),
        };
        let mut kind = FlowKind::from_base(base).ok_or_else(|| {
            err(SpecErrorKind::UnknownKind {
                kind: base.to_string(),
            })
        })?;
        if let Some(p) = pmtu {
            match &mut kind {
                FlowKind::Roce { pmtu, .. } => *pmtu = p,
                _ => return Err(err(SpecErrorKind::PmtuNotRoce)),
            }
        }
        let spec = FlowSpec {
            kind,
            vlan,
            size: size.unwrap_or(SizeSpec::Fixed(DEFAULT_SIZE)),
            weight,
        };
        spec.validate(item)?;
        Ok(spec)
    }
}

fn parse_sizes(s: &str) -> Option<SizeSpec> {
    let num = |t: &str| -> Option<u32> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if let Some((lo, hi)) = s.split_once('-') {
        return Some(SizeSpec::Range(num(lo)?, num(hi)?));
    }
    if s.contains('/') {
        return s
            .split('/')
            .map(num)
            .collect::<Option<Vec<_>>>()
            .map(SizeSpec::Choice);
    }
    num(s).map(SizeSpec::Fixed)
}

impl fmt::Display for FlowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(v) = self.vlan {
            write!(f, "vlan{v}-")?;
        }
        write!(f, "{}:{}", self.kind.base_name(), self.size)?;
        if let FlowKind::Roce { pmtu, .. } = self.kind {
            write!(f, "@{pmtu}")?;
        }
        if self.weight != 1 {
            write!(f, "*{}", self.weight)?;
        }
        Ok(())
    }
}

/// A parsed `--synthetic` spec: the flows of a workload.
#[derive(Clone, PartialEq, Eq, Debug, Hash)]
pub struct TrafficSpec {
    flows: Vec<FlowSpec>,
}

impl TrafficSpec {
    /// Validates programmatically built flows (the same rules as the parser).
    pub fn new(flows: Vec<FlowSpec>) -> Result<TrafficSpec, SpecError> {
        if flows.is_empty() {
            return Err(SpecError {
                item: String::new(),
                kind: SpecErrorKind::Empty,
            });
        }
        if flows.len() > MAX_FLOWS {
            return Err(SpecError {
                item: String::new(),
                kind: SpecErrorKind::TooManyFlows {
                    n: flows.len(),
                    max: MAX_FLOWS,
                },
            });
        }
        for f in &flows {
            f.validate(&f.to_string())?;
        }
        Ok(TrafficSpec { flows })
    }

    /// Parses the grammar in the module documentation.
    pub fn parse(s: &str) -> Result<TrafficSpec, SpecError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SpecError {
                item: String::new(),
                kind: SpecErrorKind::Empty,
            });
        }
        let mut flows = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(SpecError {
                    item: s.to_string(),
                    kind: SpecErrorKind::EmptyItem,
                });
            }
            if item == "mix" {
                flows.extend(TrafficSpec::parse(MIX)?.flows);
            } else {
                flows.push(FlowSpec::parse_item(item)?);
            }
        }
        TrafficSpec::new(flows)
    }

    pub fn flows(&self) -> &[FlowSpec] {
        &self.flows
    }

    /// Longest frame any flow can produce.
    pub fn max_frame_len(&self) -> usize {
        self.flows
            .iter()
            .map(FlowSpec::max_frame_len)
            .max()
            .unwrap_or(MIN_FRAME)
    }
}

impl FromStr for TrafficSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TrafficSpec::parse(s)
    }
}

/// The canonical form; it parses back to the same spec.
impl fmt::Display for TrafficSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, flow) in self.flows.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{flow}")?;
        }
        Ok(())
    }
}

/// A bad `--synthetic` spec: the offending item and what is wrong with it.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("bad traffic spec item `{item}`: {kind}")]
pub struct SpecError {
    pub item: String,
    pub kind: SpecErrorKind,
}

#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum SpecErrorKind {
    #[error("the spec is empty (try `mix` or e.g. `tcp4:1500,udp6:64`)")]
    Empty,
    #[error("empty item (stray comma)")]
    EmptyItem,
    #[error("unknown flow kind `{kind}`; expected one of {}, optionally prefixed by `vlan-` or `vlanID-`", FlowKind::NAMES)]
    UnknownKind { kind: String },
    #[error("bad size `{text}`; expected N, LO-HI or A/B/C in decimal bytes")]
    BadSize { text: String },
    #[error("empty size range {lo}-{hi}")]
    EmptyRange { lo: u32, hi: u32 },
    #[error("size {size} exceeds the limit of {max} bytes")]
    SizeTooLarge { size: u32, max: u32 },
    #[error("frames of up to {len} bytes exceed the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("bad weight `{text}`; expected 1..={MAX_WEIGHT}")]
    BadWeight { text: String },
    #[error("bad path MTU `{text}`; expected 256, 512, 1024, 2048 or 4096")]
    BadPmtu { text: String },
    #[error("`@pmtu` applies only to roce flows")]
    PmtuNotRoce,
    #[error("bad VLAN id `{text}`; expected 1..=4094")]
    BadVlan { text: String },
    #[error("{n} flows exceed the limit of {max}")]
    TooManyFlows { n: usize, max: usize },
}

// ---------------------------------------------------------------------------------------------
// Ground truth
// ---------------------------------------------------------------------------------------------

/// RoCE details of a generated packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RoceTruth {
    pub opcode: u8,
    pub dest_qp: u32,
    pub psn: u32,
    /// BTH pad count (0..=3).
    pub pad: u8,
    /// Message number within the flow (0, 1, ...).
    pub msn: u64,
    /// Total message length.
    pub msg_len: u32,
    /// Offset of this packet's payload within the message.
    pub msg_offset: u32,
    /// WRITE: the remote virtual address this packet's payload is written to.
    pub va: Option<u64>,
    /// WRITE: the R_Key of the flow's region.
    pub rkey: Option<u32>,
}

/// What a generated frame is: the exact answers the header split must give.
/// All offsets are from the first byte of the Ethernet frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FrameTruth {
    /// Index of the flow in the spec.
    pub flow: u32,
    /// Packet number within the flow (0, 1, ...); with `flow` it determines the payload.
    pub seq: u64,
    pub class: FrameClass,
    pub frame_len: u32,
    /// Where the innermost L4 (or RoCE) payload starts.
    pub payload_offset: u32,
    /// Payload length (excludes Ethernet padding, RoCE pad and ICRC).
    pub payload_len: u32,
    /// Innermost IP header.
    pub l3_offset: u32,
    /// Innermost L4 header.
    pub l4_offset: u32,
    /// Outermost IP header.
    pub outer_l3_offset: u32,
    pub outer_ip_version: u8,
    pub tunnel: Option<Tunnel>,
    pub roce: Option<RoceTruth>,
}

impl FrameTruth {
    /// The payload bytes, taken from `frame` (`None` when `frame` is too short for them).
    pub fn payload<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        let start = self.payload_offset as usize;
        frame.get(start..start.checked_add(self.payload_len as usize)?)
    }

    /// The [`SplitResult`] the split decision must return for this frame under `cfg`.
    pub fn expected_split(&self, cfg: &SplitConfig) -> SplitResult {
        let split = self.payload_len > cfg.hds_thresh;
        SplitResult {
            class: self.class,
            reason: if split {
                NoSplitReason::Split
            } else {
                NoSplitReason::BelowThresh
            },
            split,
            payload_offset: Some(self.payload_offset),
            payload_len: Some(self.payload_len),
            l3_offset: Some(self.l3_offset),
            l4_offset: Some(self.l4_offset),
            outer_l3_offset: Some(self.outer_l3_offset),
            outer_ip_version: self.outer_ip_version,
            tunnel: self.tunnel,
            roce: self.roce.map(|r| RoceInfo {
                opcode: r.opcode,
                dest_qp: r.dest_qp,
                psn: r.psn,
                icrc_ok: cfg.verify_icrc.then_some(true),
            }),
            error: None,
        }
    }
}

/// A generated frame with its truth.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame {
    pub bytes: Vec<u8>,
    pub truth: FrameTruth,
}

// ---------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------

/// The parameters of a RoCE flow's QP, for whoever sets up the responder.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RoceFlowParams {
    pub op: RoceOp,
    pub dest_qp: u32,
    pub initial_psn: u32,
    /// WRITE: the remote region `[va_base, va_base + ROCE_REGION_LEN)` and its R_Key.
    pub rkey: u32,
    pub va_base: u64,
    pub region_len: u64,
    pub pmtu: u32,
}

#[derive(Clone, Debug)]
struct Message {
    len: u32,
    done: u32,
    va: u64,
}

#[derive(Clone, Debug)]
struct RoceState {
    params: RoceFlowParams,
    next_psn: u32,
    msn: u64,
    va_cursor: u64,
    msg: Option<Message>,
}

#[derive(Clone, Debug)]
struct Addrs {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src4: [u8; 4],
    dst4: [u8; 4],
    src6: [u8; 16],
    dst6: [u8; 16],
    sport: u16,
    flow_label: u32,
    /// VXLAN inner addresses and VNI.
    inner_src4: [u8; 4],
    inner_dst4: [u8; 4],
    inner_dst_mac: [u8; 6],
    inner_src_mac: [u8; 6],
    inner_sport: u16,
    vni: u32,
}

#[derive(Clone, Debug)]
struct FlowState {
    id: u32,
    spec: FlowSpec,
    addrs: Addrs,
    seq: u64,
    tcp_seq: u32,
    ip_id: u16,
    roce: Option<RoceState>,
}

/// Deterministic frame generator: the same spec and seed give the same frames.
#[derive(Clone, Debug)]
pub struct Generator {
    flows: Vec<FlowState>,
    /// Cumulative weights, for weighted flow choice.
    cumulative: Vec<u64>,
    rng: SplitMix64,
    frames: u64,
    bytes: u64,
}

impl Generator {
    pub fn new(spec: &TrafficSpec, seed: u64) -> Generator {
        let mut cumulative = Vec::with_capacity(spec.flows.len());
        let mut total = 0u64;
        let flows = spec
            .flows
            .iter()
            .enumerate()
            .map(|(i, f)| {
                total += u64::from(f.weight);
                cumulative.push(total);
                FlowState::new(i as u32, f.clone(), seed)
            })
            .collect();
        Generator {
            flows,
            cumulative,
            rng: SplitMix64::new(seed),
            frames: 0,
            bytes: 0,
        }
    }

    /// RoCE parameters of flow `flow` (None for other flows).
    pub fn roce_params(&self, flow: u32) -> Option<RoceFlowParams> {
        self.flows
            .get(flow as usize)?
            .roce
            .as_ref()
            .map(|r| r.params)
    }

    /// Number of flows.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Frames and bytes generated so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.frames, self.bytes)
    }

    /// Writes the next frame into `out` (cleared first; its capacity is reused) and returns its
    /// truth.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> FrameTruth {
        let total = *self
            .cumulative
            .last()
            .expect("a TrafficSpec has at least one flow");
        let pick = self.rng.below(total);
        let idx = self.cumulative.partition_point(|&c| c <= pick);
        let flow = &mut self.flows[idx];
        let truth = flow.emit(&mut self.rng, out);
        self.frames += 1;
        self.bytes += out.len() as u64;
        truth
    }

    /// Generates `n` frames up front: replay them in a loop (`replay::MemFrames` +
    /// `replay::Replay`) when the datapath under test must not wait for the generator. The
    /// truths are indexed like the frames.
    pub fn pregenerate(&mut self, n: usize) -> (Vec<Vec<u8>>, Vec<FrameTruth>) {
        (0..n)
            .map(|_| self.next_frame())
            .map(|f| (f.bytes, f.truth))
            .unzip()
    }

    pub fn next_frame(&mut self) -> Frame {
        let mut bytes = Vec::new();
        let truth = self.next_into(&mut bytes);
        Frame { bytes, truth }
    }
}

/// An endless stream of frames; use `.take(n)`.
impl Iterator for Generator {
    type Item = Frame;
    fn next(&mut self) -> Option<Frame> {
        Some(self.next_frame())
    }
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Appends an Ethernet header (with an optional 802.1Q tag); returns the header length.
fn push_eth(out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, ethertype: u16) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    if let Some(v) = vlan {
        out.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes()); // PCP 0, DEI 0
    }
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// Appends an IPv4 header with a correct checksum.
fn push_ipv4(out: &mut Vec<u8>, src: [u8; 4], dst: [u8; 4], id: u16, proto: u8, l4_len: usize) {
    let total = ((IPV4_HDR + l4_len) as u16).to_be_bytes();
    let id = id.to_be_bytes();
    let mut h = [
        0x45, 0, total[0], total[1], id[0], id[1], 0x40, 0, 64, proto, 0, 0, src[0], src[1],
        src[2], src[3], dst[0], dst[1], dst[2], dst[3],
    ];
    // Fixed size: the compiler unrolls this into a handful of adds.
    let mut acc = 0u32;
    for w in h.chunks_exact(2) {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    let csum = !fold(u64::from(acc));
    h[10..12].copy_from_slice(&csum.to_be_bytes());
    out.extend_from_slice(&h);
}

fn push_ipv6(
    out: &mut Vec<u8>,
    src: [u8; 16],
    dst: [u8; 16],
    flow_label: u32,
    nh: u8,
    l4_len: usize,
) {
    out.extend_from_slice(&(0x6000_0000 | (flow_label & 0x000f_ffff)).to_be_bytes());
    out.extend_from_slice(&(l4_len as u16).to_be_bytes());
    out.extend_from_slice(&[nh, 64]);
    out.extend_from_slice(&src);
    out.extend_from_slice(&dst);
}

fn push_udp(out: &mut Vec<u8>, sport: u16, dport: u16, payload_len: usize) {
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&dport.to_be_bytes());
    out.extend_from_slice(&((UDP_HDR + payload_len) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
}

fn push_tcp(out: &mut Vec<u8>, sport: u16, dport: u16, seq: u32, ack: u32, tsval: u32) {
    out.extend_from_slice(&sport.to_be_bytes());
    out.extend_from_slice(&dport.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ack.to_be_bytes());
    // Data offset 8 words, PSH|ACK, window 65535, checksum 0, urgent 0.
    out.extend_from_slice(&[0x80, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    // NOP, NOP, Timestamps(tsval, tsecr).
    out.extend_from_slice(&[1, 1, 8, 10]);
    out.extend_from_slice(&tsval.to_be_bytes());
    out.extend_from_slice(&tsval.wrapping_sub(7).to_be_bytes());
}

/// Appends `len` payload bytes of `(flow, seq)`.
fn push_payload(out: &mut Vec<u8>, flow: u32, seq: u64, len: usize) {
    let start = out.len();
    out.resize(start + len, 0);
    fill_payload(flow, seq, &mut out[start..]);
}

/// Fills in the TCP/UDP checksum of the L4 segment `out[l4..l4 + l4_len]`.
fn finish_l4(out: &mut [u8], ip: IpVersion, l3: usize, l4: usize, l4_len: usize, l4p: L4) {
    let (src, dst) = match ip {
        IpVersion::V4 => (l3 + 12..l3 + 16, l3 + 16..l3 + 20),
        IpVersion::V6 => (l3 + 8..l3 + 24, l3 + 24..l3 + 40),
    };
    let (proto, field) = match l4p {
        L4::Tcp => (PROTO_TCP, l4 + 16),
        L4::Udp => (PROTO_UDP, l4 + 6),
    };
    let mut c = l4_checksum(&out[src], &out[dst], proto, &out[l4..l4 + l4_len]);
    if l4p == L4::Udp && c == 0 {
        c = 0xffff;
    }
    put16(out, field, c);
}

fn pad_min(out: &mut Vec<u8>) {
    if out.len() < MIN_FRAME {
        out.resize(MIN_FRAME, 0);
    }
}

impl FlowState {
    fn new(id: u32, spec: FlowSpec, seed: u64) -> FlowState {
        let mut rng = SplitMix64::new(mix64(seed ^ mix64(u64::from(id) + 1)));
        let r = rng.next_u64().to_be_bytes();
        let idb = (id as u16).to_be_bytes();
        let mut src6 = [0xfd, 0x00, 0x53, 0x70, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut dst6 = src6;
        src6[6..8].copy_from_slice(&idb);
        dst6[6..8].copy_from_slice(&idb);
        src6[8..14].copy_from_slice(&r[..6]);
        dst6[15] = 2;
        let addrs = Addrs {
            dst_mac: [0x02, 0x00, 0x00, 0x00, 0x00, 0x01],
            src_mac: [0x02, 0x00, 0x53, idb[0], idb[1], r[6]],
            src4: [10, idb[0], idb[1], 1],
            dst4: [10, idb[0], idb[1], 2],
            src6,
            dst6,
            sport: 32768 + (rng.below(28000) as u16),
            flow_label: rng.next_u64() as u32 & 0x000f_ffff,
            inner_src4: [192, 168, idb[1], 1],
            inner_dst4: [192, 168, idb[1], 2],
            inner_dst_mac: [0x02, 0x00, 0x00, 0x00, 0x01, 0x01],
            inner_src_mac: [0x02, 0x00, 0x54, idb[0], idb[1], r[7]],
            inner_sport: 32768 + (rng.below(28000) as u16),
            vni: (id + 1) & 0x00ff_ffff,
        };
        let roce = match spec.kind {
            FlowKind::Roce { op, pmtu, .. } => {
                let initial_psn = rng.next_u64() as u32 & 0x00ff_ffff;
                let params = RoceFlowParams {
                    op,
                    dest_qp: 0x1000 + id * 0x100 + rng.below(0x100) as u32,
                    initial_psn,
                    rkey: (rng.next_u64() as u32) | 1,
                    va_base: 0x7f00_0000_0000 + (u64::from(id) << 32),
                    region_len: ROCE_REGION_LEN,
                    pmtu,
                };
                Some(RoceState {
                    params,
                    next_psn: initial_psn,
                    msn: 0,
                    va_cursor: 0,
                    msg: None,
                })
            }
            _ => None,
        };
        FlowState {
            id,
            spec,
            addrs,
            seq: 0,
            tcp_seq: rng.next_u64() as u32,
            ip_id: rng.next_u64() as u16,
            roce,
        }
    }

    fn emit(&mut self, rng: &mut SplitMix64, out: &mut Vec<u8>) -> FrameTruth {
        out.clear();
        let truth = match self.spec.kind {
            FlowKind::Plain { ip, l4 } => {
                let len = self.spec.size.sample(rng) as usize;
                self.emit_plain(out, ip, l4, len)
            }
            FlowKind::Vxlan { l4 } => {
                let len = self.spec.size.sample(rng) as usize;
                self.emit_vxlan(out, l4, len)
            }
            FlowKind::Roce { ip, .. } => self.emit_roce(rng, out, ip),
        };
        pad_min(out);
        self.seq += 1;
        FrameTruth {
            frame_len: out.len() as u32,
            ..truth
        }
    }

    fn truth(
        &self,
        class: FrameClass,
        l3: usize,
        l4: usize,
        payload: usize,
        len: usize,
    ) -> FrameTruth {
        let outer_ip_version = match self.spec.kind {
            FlowKind::Plain {
                ip: IpVersion::V6, ..
            }
            | FlowKind::Roce {
                ip: IpVersion::V6, ..
            } => 6,
            _ => 4,
        };
        FrameTruth {
            flow: self.id,
            seq: self.seq,
            class,
            frame_len: 0,
            payload_offset: payload as u32,
            payload_len: len as u32,
            l3_offset: l3 as u32,
            l4_offset: l4 as u32,
            outer_l3_offset: l3 as u32,
            outer_ip_version,
            tunnel: None,
            roce: None,
        }
    }

    fn emit_plain(&mut self, out: &mut Vec<u8>, ip: IpVersion, l4p: L4, len: usize) -> FrameTruth {
        let a = &self.addrs;
        let l4_len = l4_hdr_len(l4p) + len;
        let (proto, dport) = match l4p {
            L4::Tcp => (PROTO_TCP, TCP_PORT),
            L4::Udp => (PROTO_UDP, UDP_PORT),
        };
        out.reserve(ETH_HDR + VLAN_TAG + IPV6_HDR + l4_len + MIN_FRAME);
        let ethertype = match ip {
            IpVersion::V4 => ETHERTYPE_IPV4,
            IpVersion::V6 => ETHERTYPE_IPV6,
        };
        push_eth(out, a.dst_mac, a.src_mac, self.spec.vlan, ethertype);
        let l3 = out.len();
        match ip {
            IpVersion::V4 => push_ipv4(out, a.src4, a.dst4, self.ip_id, proto, l4_len),
            IpVersion::V6 => push_ipv6(out, a.src6, a.dst6, a.flow_label, proto, l4_len),
        }
        let l4 = out.len();
        match l4p {
            L4::Tcp => push_tcp(out, a.sport, dport, self.tcp_seq, 1, self.seq as u32),
            L4::Udp => push_udp(out, a.sport, dport, len),
        }
        let payload = out.len();
        push_payload(out, self.id, self.seq, len);
        finish_l4(out, ip, l3, l4, l4_len, l4p);
        self.ip_id = self.ip_id.wrapping_add(1);
        self.tcp_seq = self.tcp_seq.wrapping_add(len as u32);
        let class = match l4p {
            L4::Tcp => FrameClass::Tcp,
            L4::Udp => FrameClass::Udp,
        };
        self.truth(class, l3, l4, payload, len)
    }

    fn emit_vxlan(&mut self, out: &mut Vec<u8>, l4p: L4, len: usize) -> FrameTruth {
        let a = &self.addrs;
        let inner_l4_len = l4_hdr_len(l4p) + len;
        let inner_frame = ETH_HDR + IPV4_HDR + inner_l4_len;
        let outer_udp_payload = VXLAN_HDR + inner_frame;
        out.reserve(ETH_HDR + VLAN_TAG + IPV4_HDR + UDP_HDR + outer_udp_payload);
        push_eth(out, a.dst_mac, a.src_mac, self.spec.vlan, ETHERTYPE_IPV4);
        let outer_l3 = out.len();
        push_ipv4(
            out,
            a.src4,
            a.dst4,
            self.ip_id,
            PROTO_UDP,
            UDP_HDR + outer_udp_payload,
        );
        // Outer source port: entropy from the inner flow (RFC 7348 section 5); checksum 0.
        let outer_sport = 49152 | (a.inner_sport & 0x3fff);
        push_udp(out, outer_sport, VXLAN_PORT, outer_udp_payload);
        out.extend_from_slice(&[0x08, 0, 0, 0]);
        out.extend_from_slice(&(a.vni << 8).to_be_bytes());
        push_eth(out, a.inner_dst_mac, a.inner_src_mac, None, ETHERTYPE_IPV4);
        let (proto, dport) = match l4p {
            L4::Tcp => (PROTO_TCP, TCP_PORT),
            L4::Udp => (PROTO_UDP, UDP_PORT),
        };
        let l3 = out.len();
        push_ipv4(
            out,
            a.inner_src4,
            a.inner_dst4,
            self.ip_id,
            proto,
            inner_l4_len,
        );
        let l4 = out.len();
        match l4p {
            L4::Tcp => push_tcp(out, a.inner_sport, dport, self.tcp_seq, 1, self.seq as u32),
            L4::Udp => push_udp(out, a.inner_sport, dport, len),
        }
        let payload = out.len();
        push_payload(out, self.id, self.seq, len);
        finish_l4(out, IpVersion::V4, l3, l4, inner_l4_len, l4p);
        self.ip_id = self.ip_id.wrapping_add(1);
        self.tcp_seq = self.tcp_seq.wrapping_add(len as u32);
        let class = match l4p {
            L4::Tcp => FrameClass::Tcp,
            L4::Udp => FrameClass::Udp,
        };
        FrameTruth {
            outer_l3_offset: outer_l3 as u32,
            outer_ip_version: 4,
            tunnel: Some(Tunnel::Vxlan),
            ..self.truth(class, l3, l4, payload, len)
        }
    }

    fn emit_roce(&mut self, rng: &mut SplitMix64, out: &mut Vec<u8>, ip: IpVersion) -> FrameTruth {
        let st = self.roce.as_mut().expect("roce flows have roce state");
        let p = st.params;
        if st.msg.is_none() {
            let len = self.spec.size.sample(rng);
            // Place the message in the region, 64-byte aligned, wrapping to its start.
            let mut off = st.va_cursor;
            if off + u64::from(len) > p.region_len {
                off = 0;
            }
            st.va_cursor = (off + u64::from(len)).next_multiple_of(64);
            st.msg = Some(Message {
                len,
                done: 0,
                va: p.va_base + off,
            });
        }
        let msg = st.msg.as_mut().expect("set above");
        let remaining = msg.len - msg.done;
        let first = msg.done == 0;
        let last = remaining <= p.pmtu;
        let seg = remaining.min(p.pmtu) as usize;
        let (opcode, reth) = match (p.op, first, last) {
            (RoceOp::Write, true, true) => (opcode::WRITE_ONLY, true),
            (RoceOp::Write, true, false) => (opcode::WRITE_FIRST, true),
            (RoceOp::Write, false, false) => (opcode::WRITE_MIDDLE, false),
            (RoceOp::Write, false, true) => (opcode::WRITE_LAST, false),
            (RoceOp::Send, true, true) => (opcode::SEND_ONLY, false),
            (RoceOp::Send, true, false) => (opcode::SEND_FIRST, false),
            (RoceOp::Send, false, false) => (opcode::SEND_MIDDLE, false),
            (RoceOp::Send, false, true) => (opcode::SEND_LAST, false),
        };
        let pad = (4 - seg % 4) % 4;
        let ext = if reth { RETH } else { 0 };
        let udp_payload = BTH + ext + seg + pad + ICRC;
        let psn = st.next_psn;
        let roce_truth = RoceTruth {
            opcode,
            dest_qp: p.dest_qp,
            psn,
            pad: pad as u8,
            msn: st.msn,
            msg_len: msg.len,
            msg_offset: msg.done,
            va: (p.op == RoceOp::Write).then_some(msg.va + u64::from(msg.done)),
            rkey: (p.op == RoceOp::Write).then_some(p.rkey),
        };
        let (msg_va, msg_len) = (msg.va, msg.len);
        msg.done += seg as u32;
        st.next_psn = (psn + 1) & 0x00ff_ffff;
        if last {
            st.msg = None;
            st.msn += 1;
        }

        let a = &self.addrs;
        out.reserve(ETH_HDR + VLAN_TAG + IPV6_HDR + UDP_HDR + udp_payload + MIN_FRAME);
        let ethertype = match ip {
            IpVersion::V4 => ETHERTYPE_IPV4,
            IpVersion::V6 => ETHERTYPE_IPV6,
        };
        push_eth(out, a.dst_mac, a.src_mac, self.spec.vlan, ethertype);
        let l3 = out.len();
        let l4_len = UDP_HDR + udp_payload;
        match ip {
            IpVersion::V4 => push_ipv4(out, a.src4, a.dst4, self.ip_id, PROTO_UDP, l4_len),
            IpVersion::V6 => push_ipv6(out, a.src6, a.dst6, a.flow_label, PROTO_UDP, l4_len),
        }
        let l4 = out.len();
        // Source port: entropy from the QP, as RoCE NICs do.
        push_udp(
            out,
            0xc000 | (p.dest_qp & 0x3fff) as u16,
            ROCE_PORT,
            udp_payload,
        );
        let bth = out.len();
        out.extend_from_slice(&[opcode, (pad as u8) << 4, 0xff, 0xff]);
        out.extend_from_slice(&(p.dest_qp & 0x00ff_ffff).to_be_bytes());
        out.extend_from_slice(&(psn | if last { 0x8000_0000 } else { 0 }).to_be_bytes());
        debug_assert_eq!(out.len() - bth, BTH);
        if reth {
            out.extend_from_slice(&msg_va.to_be_bytes());
            out.extend_from_slice(&p.rkey.to_be_bytes());
            out.extend_from_slice(&msg_len.to_be_bytes());
        }
        let payload = out.len();
        push_payload(out, self.id, self.seq, seg);
        out.resize(out.len() + pad + ICRC, 0);
        // The ICRC masks the UDP checksum, so it can be computed first.
        let icrc = roce_icrc(&out[l3..]).expect("a well-formed RoCE packet");
        let end = out.len();
        out[end - ICRC..].copy_from_slice(&icrc.to_le_bytes());
        if ip == IpVersion::V6 {
            // The UDP checksum covers the ICRC; over IPv4 it stays 0, as rxe and RoCE NICs send.
            finish_l4(out, ip, l3, l4, l4_len, L4::Udp);
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        FrameTruth {
            roce: Some(roce_truth),
            ..self.truth(FrameClass::Roce, l3, l4, payload, seg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // Reference outputs of SplitMix64 seeded with 1234567 (from the original paper's code).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    #[test]
    fn internet_checksum_rfc1071_example() {
        // RFC 1071 section 3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d).
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        // An odd trailing byte is the high byte of a padded word.
        assert_eq!(internet_checksum(&[0x12]), !0x1200);
        assert_eq!(internet_checksum(&[]), 0xffff);
    }

    #[test]
    fn internet_checksum_matches_naive_for_all_lengths() {
        let mut data = vec![0u8; 300];
        fill_payload(3, 4, &mut data);
        data[..64].fill(0xff); // carries in every column
        for len in 0..data.len() {
            let mut acc = 0u32;
            for pair in data[..len].chunks(2) {
                let w = u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
                acc += w;
            }
            while acc >> 16 != 0 {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            assert_eq!(internet_checksum(&data[..len]), !(acc as u16), "len {len}");
        }
    }

    #[test]
    fn payload_is_a_pure_function_and_prefix_stable() {
        let mut a = vec![0u8; 1001];
        let mut b = vec![0u8; 17];
        fill_payload(7, 9, &mut a);
        fill_payload(7, 9, &mut b);
        assert_eq!(&a[..17], &b[..]);
        assert_eq!(payload_mismatch(7, 9, &a), None);
        assert_eq!(payload_mismatch(7, 10, &a), Some(0));
        let mut c = a.clone();
        c[999] ^= 1;
        assert_eq!(payload_mismatch(7, 9, &c), Some(999));
        fill_payload(8, 9, &mut b);
        assert_ne!(&a[..17], &b[..]);
        // Every word of a jumbo payload is distinct (a shifted copy never matches).
        let mut j = vec![0u8; 9000];
        fill_payload(1, 1, &mut j);
        let words: std::collections::HashSet<&[u8]> = j.chunks_exact(8).collect();
        assert_eq!(words.len(), 1125);
        assert_eq!(payload_mismatch(1, 1, &j[8..]), Some(0));
    }

    #[test]
    fn parse_examples_and_roundtrip() {
        let s = TrafficSpec::parse("tcp4:1500,udp6:64,vxlan:4000,roce-write:4096,vlan-tcp4:1500")
            .unwrap();
        assert_eq!(s.flows().len(), 5);
        assert_eq!(
            s.flows()[2],
            FlowSpec {
                kind: FlowKind::Vxlan { l4: L4::Tcp },
                vlan: None,
                size: SizeSpec::Fixed(4000),
                weight: 1
            }
        );
        assert_eq!(
            s.flows()[3].kind,
            FlowKind::Roce {
                ip: IpVersion::V4,
                op: RoceOp::Write,
                pmtu: 4096
            }
        );
        assert_eq!(s.flows()[4].vlan, Some(DEFAULT_VLAN));
        assert_eq!(
            s.to_string(),
            "tcp4:1500,udp6:64,vxlan-tcp:4000,roce-write:4096@4096,vlan100-tcp4:1500"
        );
        assert_eq!(TrafficSpec::parse(&s.to_string()).unwrap(), s);

        let s = TrafficSpec::parse(" vlan42-udp4:64-9000*3 , roce6-send:100/200/65536@1024*1000")
            .unwrap();
        assert_eq!(
            s.flows()[0],
            FlowSpec {
                kind: FlowKind::Plain {
                    ip: IpVersion::V4,
                    l4: L4::Udp
                },
                vlan: Some(42),
                size: SizeSpec::Range(64, 9000),
                weight: 3
            }
        );
        assert_eq!(
            s.flows()[1],
            FlowSpec {
                kind: FlowKind::Roce {
                    ip: IpVersion::V6,
                    op: RoceOp::Send,
                    pmtu: 1024
                },
                vlan: None,
                size: SizeSpec::Choice(vec![100, 200, 65536]),
                weight: 1000
            }
        );
        assert_eq!(
            TrafficSpec::parse("tcp6").unwrap().flows()[0].size,
            SizeSpec::Fixed(1500)
        );
        let mix = TrafficSpec::parse("mix").unwrap();
        assert_eq!(mix, TrafficSpec::parse(MIX).unwrap());
        assert_eq!(mix.flows().len(), 10);
        assert_eq!(TrafficSpec::parse(&mix.to_string()).unwrap(), mix);
        let more = TrafficSpec::parse("udp4:64,mix").unwrap();
        assert_eq!(more.flows().len(), 11);
        assert_eq!(&more.flows()[1..], mix.flows());
    }

    fn kind_of(s: &str) -> SpecErrorKind {
        TrafficSpec::parse(s).unwrap_err().kind
    }

    #[test]
    fn parse_errors_are_specific() {
        assert_eq!(kind_of(""), SpecErrorKind::Empty);
        assert_eq!(kind_of("  "), SpecErrorKind::Empty);
        assert_eq!(kind_of("tcp4,,udp4"), SpecErrorKind::EmptyItem);
        assert_eq!(
            kind_of("tcp5:100"),
            SpecErrorKind::UnknownKind {
                kind: "tcp5".into()
            }
        );
        assert_eq!(
            kind_of("vlantcp4"),
            SpecErrorKind::UnknownKind {
                kind: "vlantcp4".into()
            }
        );
        assert_eq!(
            kind_of("tcp4:abc"),
            SpecErrorKind::BadSize { text: "abc".into() }
        );
        assert_eq!(kind_of("tcp4:"), SpecErrorKind::BadSize { text: "".into() });
        assert_eq!(
            kind_of("tcp4:-5"),
            SpecErrorKind::BadSize { text: "-5".into() }
        );
        assert_eq!(
            kind_of("tcp4:+5"),
            SpecErrorKind::BadSize { text: "+5".into() }
        );
        assert_eq!(
            kind_of("tcp4:1/"),
            SpecErrorKind::BadSize { text: "1/".into() }
        );
        assert_eq!(
            kind_of("tcp4:99999999999"),
            SpecErrorKind::BadSize {
                text: "99999999999".into()
            }
        );
        assert_eq!(
            kind_of("udp4:900-100"),
            SpecErrorKind::EmptyRange { lo: 900, hi: 100 }
        );
        assert_eq!(
            kind_of("udp4:9001"),
            SpecErrorKind::SizeTooLarge {
                size: 9001,
                max: 9000
            }
        );
        assert_eq!(
            kind_of("udp4:64-9001"),
            SpecErrorKind::SizeTooLarge {
                size: 9001,
                max: 9000
            }
        );
        assert_eq!(
            kind_of("vxlan:64/10000"),
            SpecErrorKind::SizeTooLarge {
                size: 10000,
                max: 9000
            }
        );
        assert_eq!(
            kind_of("roce-send:1048577"),
            SpecErrorKind::SizeTooLarge {
                size: 1048577,
                max: MAX_ROCE_MESSAGE
            }
        );
        assert_eq!(
            kind_of("tcp4*0"),
            SpecErrorKind::BadWeight { text: "0".into() }
        );
        assert_eq!(
            kind_of("tcp4*1001"),
            SpecErrorKind::BadWeight {
                text: "1001".into()
            }
        );
        assert_eq!(
            kind_of("tcp4*x"),
            SpecErrorKind::BadWeight { text: "x".into() }
        );
        assert_eq!(kind_of("tcp4@1024"), SpecErrorKind::PmtuNotRoce);
        assert_eq!(
            kind_of("roce-write@1000"),
            SpecErrorKind::BadPmtu {
                text: "1000".into()
            }
        );
        assert_eq!(
            kind_of("vlan0-tcp4"),
            SpecErrorKind::BadVlan { text: "0".into() }
        );
        assert_eq!(
            kind_of("vlan4095-tcp4"),
            SpecErrorKind::BadVlan {
                text: "4095".into()
            }
        );
        let e = TrafficSpec::parse("tcp4:1500,udp4:9001").unwrap_err();
        assert_eq!(e.item, "udp4:9001");
        assert_eq!(
            e.to_string(),
            "bad traffic spec item `udp4:9001`: size 9001 exceeds the limit of 9000 bytes"
        );
        let many = vec!["tcp4"; MAX_FLOWS + 1].join(",");
        assert_eq!(
            kind_of(&many),
            SpecErrorKind::TooManyFlows {
                n: MAX_FLOWS + 1,
                max: MAX_FLOWS
            }
        );
    }

    #[test]
    fn programmatic_specs_are_validated() {
        let f = |kind, size, weight| FlowSpec {
            kind,
            vlan: None,
            size,
            weight,
        };
        let tcp = FlowKind::Plain {
            ip: IpVersion::V4,
            l4: L4::Tcp,
        };
        assert_eq!(
            TrafficSpec::new(vec![]).unwrap_err().kind,
            SpecErrorKind::Empty
        );
        assert_eq!(
            TrafficSpec::new(vec![f(tcp, SizeSpec::Choice(vec![]), 1)])
                .unwrap_err()
                .kind,
            SpecErrorKind::BadSize {
                text: String::new()
            }
        );
        assert_eq!(
            TrafficSpec::new(vec![f(tcp, SizeSpec::Fixed(1), 0)])
                .unwrap_err()
                .kind,
            SpecErrorKind::BadWeight { text: "0".into() }
        );
        let bad_pmtu = FlowKind::Roce {
            ip: IpVersion::V4,
            op: RoceOp::Send,
            pmtu: 100,
        };
        assert_eq!(
            TrafficSpec::new(vec![f(bad_pmtu, SizeSpec::Fixed(1), 1)])
                .unwrap_err()
                .kind,
            SpecErrorKind::BadPmtu { text: "100".into() }
        );
        let mut v = f(tcp, SizeSpec::Fixed(1), 1);
        v.vlan = Some(5000);
        assert_eq!(
            TrafficSpec::new(vec![v]).unwrap_err().kind,
            SpecErrorKind::BadVlan {
                text: "5000".into()
            }
        );
    }

    #[test]
    fn every_kind_at_its_largest_fits_the_frame_limit() {
        for base in FlowKind::NAMES.split(", ") {
            for vlan in ["", "vlan-"] {
                let size = if base.starts_with("roce") {
                    MAX_ROCE_MESSAGE
                } else {
                    MAX_PAYLOAD
                };
                let spec = TrafficSpec::parse(&format!("{vlan}{base}:{size}")).unwrap();
                let max = spec.max_frame_len();
                assert!(max <= MAX_FRAME, "{vlan}{base}: {max}");
                // And the generator's frames never exceed the computed maximum.
                let mut g = Generator::new(&spec, 1);
                for f in g.by_ref().take(8) {
                    assert!(
                        f.bytes.len() <= max,
                        "{vlan}{base}: {} > {max}",
                        f.bytes.len()
                    );
                }
            }
        }
    }

    #[test]
    fn weights_steer_flow_choice() {
        let spec = TrafficSpec::parse("udp4:64*3,udp4:64").unwrap();
        let mut counts = [0u32; 2];
        for f in Generator::new(&spec, 42).take(40_000) {
            counts[f.truth.flow as usize] += 1;
        }
        // Expect 30000 / 10000; 5 sigma is about 430.
        assert!((29_500..=30_500).contains(&counts[0]), "{counts:?}");
        assert_eq!(counts[0] + counts[1], 40_000);
    }

    #[test]
    fn sizes_stay_in_their_spec() {
        let spec = TrafficSpec::parse("udp4:100-103,tcp6:7/9000").unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for f in Generator::new(&spec, 5).take(2000) {
            seen.insert((f.truth.flow, f.truth.payload_len));
        }
        let want: std::collections::BTreeSet<_> =
            [(0, 100), (0, 101), (0, 102), (0, 103), (1, 7), (1, 9000)]
                .into_iter()
                .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn short_frames_are_padded_and_padding_is_not_payload() {
        let spec = TrafficSpec::parse("udp4:0/1/17/18").unwrap();
        for f in Generator::new(&spec, 9).take(64) {
            let t = f.truth;
            // 14 + 20 + 8 = 42 header bytes; 18 payload bytes make exactly 60.
            assert_eq!(t.payload_offset, 42);
            assert_eq!(t.frame_len as usize, f.bytes.len());
            assert_eq!(f.bytes.len(), MIN_FRAME);
            assert!(f.bytes[42 + t.payload_len as usize..]
                .iter()
                .all(|&b| b == 0));
        }
    }

    #[test]
    fn expected_split_applies_hds_thresh() {
        let spec = TrafficSpec::parse("roce-send:100").unwrap();
        let f = Generator::new(&spec, 1).next_frame();
        let r = f.truth.expected_split(&SplitConfig {
            hds_thresh: 100,
            verify_icrc: true,
        });
        assert!(!r.split);
        assert_eq!(r.reason, NoSplitReason::BelowThresh);
        assert_eq!(r.payload_offset, Some(14 + 20 + 8 + 12));
        assert_eq!(r.roce.unwrap().icrc_ok, Some(true));
        let r = f.truth.expected_split(&SplitConfig {
            hds_thresh: 99,
            verify_icrc: false,
        });
        assert!(r.split);
        assert_eq!(r.reason, NoSplitReason::Split);
        assert_eq!(r.roce.unwrap().icrc_ok, None);
    }
}
