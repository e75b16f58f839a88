//! The generator: per-flow state (addresses, sequence numbers, RoCE QPs and messages) and
//! frames built layer by layer from `splitrx_shared::wire`'s `Repr` emitters, with the shared
//! checksum and ICRC code filling what covers the payload.

use splitrx_shared::split::{FrameClass, Tunnel};
use splitrx_shared::wire::ethernet::MAX_VLAN_TAGS;
use splitrx_shared::wire::{
    ip, roce, tcp, vxlan, BthRepr, EtherType, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, Reth, RocePacket, RoceRepr, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
    VlanRepr, VxlanPacket, VxlanRepr,
};

use super::pattern::{fill_payload, mix64, SplitMix64};
use super::spec::{l4_hdr_len, FlowKind, FlowSpec, IpVersion, RoceOp, TrafficSpec, L4};
use super::truth::{Frame, FrameTruth, RoceTruth};
use super::{opcode, MIN_FRAME, ROCE_PORT, ROCE_REGION_LEN, TCP_PORT, UDP_PORT, VXLAN_PORT};

/// Generated TCP options: NOP, NOP, Timestamps (RFC 7323).
const TCP_OPTIONS_LEN: usize = 12;
/// Length of a generated TCP header (20 + the options).
pub(super) const TCP_HEADER_LEN: usize = tcp::HEADER_LEN + TCP_OPTIONS_LEN;

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
        let mut cumulative = Vec::with_capacity(spec.flows().len());
        let mut total = 0u64;
        let flows = spec
            .flows()
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

    /// Generates `n` frames up front: play them in a loop (`crate::wire::LoopWire`) when the
    /// datapath under test must not wait for the generator. The
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

/// The IP header of a generated frame.
enum IpRepr {
    V4(Ipv4Repr<'static>),
    V6(Ipv6Repr),
}

impl IpRepr {
    fn ethertype(&self) -> u16 {
        match self {
            IpRepr::V4(_) => EtherType::IPV4,
            IpRepr::V6(_) => EtherType::IPV6,
        }
    }

    fn version(&self) -> u8 {
        match self {
            IpRepr::V4(_) => 4,
            IpRepr::V6(_) => 6,
        }
    }

    fn header_len(&self) -> usize {
        match self {
            IpRepr::V4(r) => r.header_len(),
            IpRepr::V6(r) => r.header_len(),
        }
    }

    /// Fills the TCP/UDP checksum of `seg` under this header's pseudo-header (a match per
    /// version, so that the address lengths are constants where the sum is inlined).
    fn fill_checksum(&self, seg: &mut [u8], l4: L4) {
        match (self, l4) {
            (IpRepr::V4(r), L4::Tcp) => {
                TcpPacket::new_unchecked(seg).fill_checksum(&r.src_addr, &r.dst_addr)
            }
            (IpRepr::V4(r), L4::Udp) => {
                UdpPacket::new_unchecked(seg).fill_checksum(&r.src_addr, &r.dst_addr)
            }
            (IpRepr::V6(r), L4::Tcp) => {
                TcpPacket::new_unchecked(seg).fill_checksum(&r.src_addr, &r.dst_addr)
            }
            (IpRepr::V6(r), L4::Udp) => {
                UdpPacket::new_unchecked(seg).fill_checksum(&r.src_addr, &r.dst_addr)
            }
        }
    }

    fn emit(&self, b: &mut [u8]) {
        match self {
            IpRepr::V4(r) => r.emit(&mut Ipv4Packet::new_unchecked(b)),
            IpRepr::V6(r) => r.emit(&mut Ipv6Packet::new_unchecked(b)),
        }
    }
}

/// Clears `out` and sizes it for a frame of `len` bytes, zero-padded to the Ethernet minimum.
fn frame_buffer(out: &mut Vec<u8>, len: usize) {
    out.clear();
    out.resize(len.max(MIN_FRAME), 0);
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

    /// The flow's Ethernet header (with its 802.1Q tag, if any) announcing `ethertype`.
    fn eth(&self, ethertype: u16) -> EthernetRepr {
        let mut vlans = [None; MAX_VLAN_TAGS];
        vlans[0] = self.spec.vlan.map(VlanRepr::ctag);
        EthernetRepr {
            dst_addr: self.addrs.dst_mac,
            src_addr: self.addrs.src_mac,
            vlans,
            ethertype,
        }
    }

    /// An IPv4 header with this flow's identification, DF and TTL 64.
    fn ipv4(
        &self,
        src: [u8; 4],
        dst: [u8; 4],
        protocol: u8,
        payload_len: usize,
    ) -> Ipv4Repr<'static> {
        Ipv4Repr {
            dscp_ecn: 0,
            ident: self.ip_id,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            ttl: 64,
            protocol,
            src_addr: src,
            dst_addr: dst,
            options: &[],
            payload_len,
        }
    }

    /// The flow's outer IP header.
    fn ip(&self, ip: IpVersion, protocol: u8, payload_len: usize) -> IpRepr {
        let a = &self.addrs;
        match ip {
            IpVersion::V4 => IpRepr::V4(self.ipv4(a.src4, a.dst4, protocol, payload_len)),
            IpVersion::V6 => IpRepr::V6(Ipv6Repr {
                traffic_class: 0,
                flow_label: a.flow_label,
                next_header: protocol,
                hop_limit: 64,
                src_addr: a.src6,
                dst_addr: a.dst6,
                payload_len,
            }),
        }
    }

    /// Writes a TCP or UDP segment (`seg` is exactly the segment) with this packet's payload
    /// and fills its checksum under the pseudo-header of `ip`. Returns the header length.
    fn transport(&self, seg: &mut [u8], l4: L4, sport: u16, ip: &IpRepr) -> usize {
        let payload_len = seg.len() - l4_hdr_len(l4);
        match l4 {
            L4::Tcp => {
                let tsval = self.seq as u32;
                let mut options = [1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0];
                options[4..8].copy_from_slice(&tsval.to_be_bytes());
                options[8..].copy_from_slice(&tsval.wrapping_sub(7).to_be_bytes());
                let repr = TcpRepr {
                    src_port: sport,
                    dst_port: TCP_PORT,
                    seq_number: self.tcp_seq,
                    ack_number: 1,
                    flags: tcp::flags::PSH | tcp::flags::ACK,
                    window_len: 0xffff,
                    urgent_at: 0,
                    options: &options,
                    payload_len,
                };
                let mut p = TcpPacket::new_unchecked(&mut *seg);
                repr.emit(&mut p);
                fill_payload(self.id, self.seq, p.payload_mut());
            }
            L4::Udp => {
                let repr = UdpRepr {
                    src_port: sport,
                    dst_port: UDP_PORT,
                    payload_len,
                };
                let mut p = UdpPacket::new_unchecked(&mut *seg);
                repr.emit(&mut p);
                fill_payload(self.id, self.seq, p.payload_mut());
            }
        }
        ip.fill_checksum(seg, l4);
        l4_hdr_len(l4)
    }

    fn emit_plain(&mut self, out: &mut Vec<u8>, ip: IpVersion, l4p: L4, len: usize) -> FrameTruth {
        let l4_len = l4_hdr_len(l4p) + len;
        let proto = match l4p {
            L4::Tcp => ip::TCP,
            L4::Udp => ip::UDP,
        };
        let ipr = self.ip(ip, proto, l4_len);
        let eth = self.eth(ipr.ethertype());
        let l3 = eth.header_len();
        let l4 = l3 + ipr.header_len();
        let end = l4 + l4_len;
        frame_buffer(out, end);
        eth.emit(&mut EthernetFrame::new_unchecked(&mut out[..l3]));
        ipr.emit(&mut out[l3..l4]);
        let payload = l4 + self.transport(&mut out[l4..end], l4p, self.addrs.sport, &ipr);
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
        let proto = match l4p {
            L4::Tcp => ip::TCP,
            L4::Udp => ip::UDP,
        };
        let inner_l4_len = l4_hdr_len(l4p) + len;
        let inner_ip = IpRepr::V4(self.ipv4(a.inner_src4, a.inner_dst4, proto, inner_l4_len));
        let inner_eth = EthernetRepr {
            dst_addr: a.inner_dst_mac,
            src_addr: a.inner_src_mac,
            vlans: [None; MAX_VLAN_TAGS],
            ethertype: EtherType::IPV4,
        };
        let vx = VxlanRepr {
            flags: vxlan::FLAG_I,
            vni: a.vni,
        };
        let inner_frame = inner_eth.buffer_len(inner_ip.header_len() + inner_l4_len);
        // Outer source port: entropy from the inner flow (RFC 7348 section 5); checksum 0.
        let udp = UdpRepr {
            src_port: 49152 | (a.inner_sport & 0x3fff),
            dst_port: VXLAN_PORT,
            payload_len: vx.buffer_len(inner_frame),
        };
        let outer_ip = self.ip(IpVersion::V4, ip::UDP, udp.buffer_len());
        let eth = self.eth(EtherType::IPV4);
        let outer_l3 = eth.header_len();
        let outer_l4 = outer_l3 + outer_ip.header_len();
        let vxlan = outer_l4 + udp.header_len();
        let inner = vxlan + vx.header_len();
        let l3 = inner + inner_eth.header_len();
        let l4 = l3 + inner_ip.header_len();
        let end = l4 + inner_l4_len;
        frame_buffer(out, end);
        eth.emit(&mut EthernetFrame::new_unchecked(&mut out[..outer_l3]));
        outer_ip.emit(&mut out[outer_l3..outer_l4]);
        udp.emit(&mut UdpPacket::new_unchecked(&mut out[outer_l4..vxlan]));
        vx.emit(&mut VxlanPacket::new_unchecked(&mut out[vxlan..inner]));
        inner_eth.emit(&mut EthernetFrame::new_unchecked(&mut out[inner..l3]));
        inner_ip.emit(&mut out[l3..l4]);
        let payload = l4 + self.transport(&mut out[l4..end], l4p, a.inner_sport, &inner_ip);
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
        let repr = RoceRepr {
            bth: BthRepr {
                opcode,
                solicited: false,
                mig_req: false,
                pad_count: pad as u8,
                tver: 0,
                pkey: 0xffff,
                resv8a: 0,
                dest_qp: p.dest_qp,
                ack_req: last,
                psn,
            },
            reth: reth.then_some(Reth {
                va: msg.va,
                rkey: p.rkey,
                dma_len: msg.len,
            }),
            deth: None,
            atomic_eth: None,
            aeth: None,
            atomic_ack_eth: None,
            imm_dt: None,
            ieth: None,
            payload_len: seg,
        };
        msg.done += seg as u32;
        st.next_psn = (psn + 1) & 0x00ff_ffff;
        if last {
            st.msg = None;
            st.msn += 1;
        }

        // Source port: entropy from the QP, as RoCE NICs do.
        let udp = UdpRepr {
            src_port: 0xc000 | (p.dest_qp & 0x3fff) as u16,
            dst_port: ROCE_PORT,
            payload_len: repr.buffer_len(),
        };
        let ipr = self.ip(ip, ip::UDP, udp.buffer_len());
        let eth = self.eth(ipr.ethertype());
        let l3 = eth.header_len();
        let l4 = l3 + ipr.header_len();
        let bth = l4 + udp.header_len();
        let payload = bth + repr.header_len();
        let end = l4 + udp.buffer_len();
        frame_buffer(out, end);
        eth.emit(&mut EthernetFrame::new_unchecked(&mut out[..l3]));
        ipr.emit(&mut out[l3..l4]);
        udp.emit(&mut UdpPacket::new_unchecked(&mut out[l4..bth]));
        let mut packet = RocePacket::new_unchecked(&mut out[bth..end]);
        repr.emit(&mut packet);
        fill_payload(self.id, self.seq, packet.payload_mut());
        // The ICRC masks the UDP checksum, so it can be computed first.
        roce::fill_icrc(out, l3, ipr.version(), l4, end - roce::ICRC_LEN)
            .expect("a well-formed RoCE packet");
        if let IpRepr::V6(_) = ipr {
            // The UDP checksum covers the ICRC; over IPv4 it stays 0, as rxe and RoCE NICs send.
            ipr.fill_checksum(&mut out[l4..end], L4::Udp);
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
    use super::super::{MAX_FRAME, MAX_PAYLOAD, MAX_ROCE_MESSAGE};
    use super::*;
    use splitrx_shared::split::{NoSplitReason, SplitConfig};

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
