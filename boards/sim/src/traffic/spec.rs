//! The `--synthetic SPEC` grammar (see the `traffic` module docs) and its parser.

use core::fmt;
use core::str::FromStr;

use splitrx_shared::wire::{ethernet, ipv4, ipv6, roce, udp, vxlan};

use super::generator::TCP_HEADER_LEN;
use super::pattern::SplitMix64;
use super::{
    DEFAULT_PMTU, DEFAULT_SIZE, DEFAULT_VLAN, MAX_FLOWS, MAX_FRAME, MAX_PAYLOAD, MAX_ROCE_MESSAGE,
    MAX_WEIGHT, MIN_FRAME, MIX,
};

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
    pub(super) const NAMES: &'static str = "tcp4, tcp6, udp4, udp6, vxlan, vxlan-tcp, vxlan-udp, \
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
            FlowKind::Plain { ip, l4 } => ETH + ip_hdr_len(ip) + l4_hdr_len(l4),
            FlowKind::Vxlan { l4 } => {
                ETH + ipv4::HEADER_LEN
                    + udp::HEADER_LEN
                    + vxlan::HEADER_LEN
                    + ETH
                    + ipv4::HEADER_LEN
                    + l4_hdr_len(l4)
            }
            FlowKind::Roce { ip, .. } => {
                ETH + ip_hdr_len(ip)
                    + udp::HEADER_LEN
                    + roce::BTH_LEN
                    + roce::ext::RETH_LEN
                    + 3
                    + roce::ICRC_LEN
            }
        }
    }
}

const ETH: usize = ethernet::HEADER_LEN;

pub(super) const fn ip_hdr_len(ip: IpVersion) -> usize {
    match ip {
        IpVersion::V4 => ipv4::HEADER_LEN,
        IpVersion::V6 => ipv6::HEADER_LEN,
    }
}

pub(super) const fn l4_hdr_len(l4: L4) -> usize {
    match l4 {
        L4::Tcp => TCP_HEADER_LEN,
        L4::Udp => udp::HEADER_LEN,
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

    pub(super) fn sample(&self, rng: &mut SplitMix64) -> u32 {
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
        let vlan = if self.vlan.is_some() {
            ethernet::VLAN_TAG_LEN
        } else {
            0
        };
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
