//! The header-split decision (DESIGN.md "Header split"). CONTRACT: types are fixed; the body of
//! [`split`] is being implemented.

/// What a frame is, as the split decision classifies it. Stored in `RxCompletion::class`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum FrameClass {
    /// TCP over IPv4/IPv6 (possibly inside VXLAN/Geneve).
    Tcp = 1,
    /// UDP that is not RoCEv2 or a recognised tunnel's outer header.
    Udp = 2,
    /// RoCEv2 (UDP 4791).
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

impl FrameClass {
    pub const COUNT: usize = 8;
    pub const fn from_u8(v: u8) -> Option<FrameClass> {
        Some(match v {
            1 => FrameClass::Tcp,
            2 => FrameClass::Udp,
            3 => FrameClass::Roce,
            4 => FrameClass::Fragment,
            5 => FrameClass::OtherIp,
            6 => FrameClass::NonIp,
            7 => FrameClass::Malformed,
            _ => return None,
        })
    }
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

/// Why a frame was not split. Stored in `RxCompletion::reason`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum NoSplitReason {
    /// It was split.
    Split = 0,
    /// Payload length <= `hds_thresh` (includes zero-length payloads).
    BelowThresh = 1,
    /// Non-first IP fragment.
    Fragment = 2,
    /// IP, but an L4 protocol we do not split.
    UnknownProto = 3,
    /// Not IP.
    NonIp = 4,
    /// Malformed or truncated.
    Malformed = 5,
}

impl NoSplitReason {
    pub const COUNT: usize = 6;
    pub const fn from_u8(v: u8) -> Option<NoSplitReason> {
        Some(match v {
            0 => NoSplitReason::Split,
            1 => NoSplitReason::BelowThresh,
            2 => NoSplitReason::Fragment,
            3 => NoSplitReason::UnknownProto,
            4 => NoSplitReason::NonIp,
            5 => NoSplitReason::Malformed,
            _ => return None,
        })
    }
    pub const fn as_str(self) -> &'static str {
        match self {
            NoSplitReason::Split => "split",
            NoSplitReason::BelowThresh => "below_hds_thresh",
            NoSplitReason::Fragment => "fragment",
            NoSplitReason::UnknownProto => "unknown_proto",
            NoSplitReason::NonIp => "non_ip",
            NoSplitReason::Malformed => "malformed",
        }
    }
}

/// Which tunnel the innermost headers were found in.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
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
#[non_exhaustive]
pub enum Malformed {
    /// The frame ends inside a header.
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
    /// Innermost IP header offset.
    pub l3_offset: Option<u32>,
    /// Innermost L4 header offset.
    pub l4_offset: Option<u32>,
    /// Outermost IP header offset and version (for flow hashing).
    pub outer_l3_offset: Option<u32>,
    pub outer_ip_version: u8,
    pub tunnel: Option<Tunnel>,
    pub roce: Option<RoceInfo>,
    pub error: Option<Malformed>,
}

/// Decides how to split `frame` (the bytes the MAC delivered). Never panics, never reads past
/// `frame`.
pub fn split(frame: &[u8], cfg: &SplitConfig) -> SplitResult {
    let _ = (frame, cfg);
    todo!("wire helper")
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
