//! Building RoCEv2 requests (and reading the responder's answers) for tests and the harness.
//!
//! One builder: a [`Requester`] (its addresses and the NIC's) turns a [`RoceRepr`] and a
//! payload into an Ethernet frame with [`crate::roce::tx::Route::emit`] — the same emitters
//! (and the one ICRC implementation) the responder transmits with. [`request`] makes the
//! `RoceRepr` of a request; set its extended headers (`reth`, `imm_dt`, ...) before building.

use crate::roce::tx::{Route, RouteIp};
use splitrx_shared::wire::ethernet::{EtherType, EthernetRepr, VlanRepr};
use splitrx_shared::wire::roce::RoceRepr;

/// The requester of a test: its addresses, the responder's, UDP source port, VLAN, ECN.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Requester {
    pub mac: [u8; 6],
    pub nic_mac: [u8; 6],
    /// The requester's and the NIC's IP addresses.
    pub ip: RouteIp,
    pub sport: u16,
    /// An 802.1Q tag (VLAN id).
    pub vlan: Option<u16>,
    /// IPv4 DSCP/ECN byte or IPv6 traffic class (3 = CE).
    pub tos: u8,
}

/// IPv4 requester 10.0.0.1 (02:00:00:00:00:01) to the NIC 10.0.0.2 (02:00:00:00:00:02), UDP
/// source port 0xc000.
pub const REQUESTER_V4: Requester = Requester {
    mac: [2, 0, 0, 0, 0, 1],
    nic_mac: [2, 0, 0, 0, 0, 2],
    ip: RouteIp::V4 {
        src: [10, 0, 0, 1],
        dst: [10, 0, 0, 2],
    },
    sport: 0xc000,
    vlan: None,
    tos: 0,
};

impl Requester {
    /// The same requester over IPv6 (fd00::1 to fd00::2).
    pub const fn v6(self) -> Requester {
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        let mut src = a;
        src[15] = 1;
        let mut dst = a;
        dst[15] = 2;
        Requester {
            ip: RouteIp::V6 { src, dst },
            ..self
        }
    }

    /// The requester's GID as ModifyQp's `remote_gid` wants it (IPv4: `::ffff:a.b.c.d`).
    pub fn gid(&self) -> [u8; 16] {
        match self.ip {
            RouteIp::V4 { src, .. } => {
                let mut g = [0u8; 16];
                g[10] = 0xff;
                g[11] = 0xff;
                g[12..].copy_from_slice(&src);
                g
            }
            RouteIp::V6 { src, .. } => src,
        }
    }

    /// The route of the requester's packets.
    pub fn route(&self) -> Route {
        let ethertype = match self.ip {
            RouteIp::V4 { .. } => EtherType::IPV4,
            RouteIp::V6 { .. } => EtherType::IPV6,
        };
        Route {
            eth: EthernetRepr {
                dst_addr: self.nic_mac,
                src_addr: self.mac,
                vlans: [self.vlan.map(VlanRepr::ctag), None],
                ethertype,
            },
            ip: self.ip,
            sport: self.sport,
            tos: self.tos,
        }
    }

    /// Builds the frame of `roce` with `payload` (whose length must be `roce.payload_len`)
    /// into `out`; returns its length (`None` when `out` is too short).
    pub fn build(&self, roce: &RoceRepr, payload: &[u8], out: &mut [u8]) -> Option<usize> {
        assert_eq!(payload.len(), roce.payload_len, "payload vs RoceRepr");
        self.route()
            .emit(out, roce, |p| {
                p.copy_from_slice(payload);
                Ok::<(), ()>(())
            })
            .ok()
            .flatten()
    }

    /// [`Requester::build`] into a new vector.
    #[cfg(any(test, feature = "std"))]
    pub fn frame(&self, roce: &RoceRepr, payload: &[u8]) -> std::vec::Vec<u8> {
        let mut v = std::vec![0u8; 128 + payload.len()];
        let n = self.build(roce, payload, &mut v).expect("frame fits");
        v.truncate(n);
        v
    }
}

/// A request's `RoceRepr`: BTH with `opcode`, destination QP, PSN and AckReq (P_Key 0xffff,
/// pad for `payload_len`), no extended headers yet.
pub const fn request(
    opcode: u8,
    dest_qp: u32,
    psn: u32,
    ack_req: bool,
    payload_len: usize,
) -> RoceRepr {
    let mut r = RoceRepr::new(opcode, dest_qp, psn, payload_len);
    r.bth.ack_req = ack_req;
    r
}

/// A responder packet as a test reads it: headers, payload, and whether its ICRC verifies.
#[cfg(any(test, feature = "std"))]
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Response {
    pub roce: RoceRepr,
    pub payload: std::vec::Vec<u8>,
    pub icrc_ok: bool,
    /// The route the packet took (addresses as sent).
    pub route: Route,
}

/// Parses a frame the responder transmitted (`None` when it is not a well-formed RoCEv2
/// packet).
#[cfg(any(test, feature = "std"))]
pub fn parse_response(frame: &[u8]) -> Option<Response> {
    use splitrx_shared::split::{split, SplitConfig};
    use splitrx_shared::wire::roce::RocePacket;
    use splitrx_shared::wire::{udp, UdpPacket};
    let r = split(frame, &SplitConfig::default());
    let info = r.roce?;
    let (l3, l4) = (r.l3_offset? as usize, r.l4_offset? as usize);
    let u = UdpPacket::new_checked(frame.get(l4..)?).ok()?;
    let b = frame.get(l4 + udp::HEADER_LEN..l4 + u.len() as usize)?;
    let p = RocePacket::new_checked(b).ok()?;
    let roce = RoceRepr::parse(&p).ok()?;
    let mut route = Route::reply_to(frame, l3, r.outer_ip_version, u.src_port())?;
    // `reply_to` swaps: swap back to the packet's own direction.
    core::mem::swap(&mut route.eth.src_addr, &mut route.eth.dst_addr);
    route.ip = match route.ip {
        RouteIp::V4 { src, dst } => RouteIp::V4 { src: dst, dst: src },
        RouteIp::V6 { src, dst } => RouteIp::V6 { src: dst, dst: src },
    };
    route.tos = frame.get(l3 + 1).copied().unwrap_or(0);
    Some(Response {
        roce,
        payload: p.payload().to_vec(),
        icrc_ok: info.icrc_ok == Some(true),
        route,
    })
}
