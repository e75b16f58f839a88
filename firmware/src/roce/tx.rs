//! The responder's packets: Ethernet / IPv4 or IPv6 / UDP / BTH (+ extended headers, payload,
//! pad) / ICRC, built with the `shared::wire` emitters (`Repr::emit`) and
//! [`splitrx_shared::wire::roce::fill_icrc`] (the one ICRC implementation).
//!
//! A response goes back where the request came from ([`Route::reply_to`]): the Ethernet
//! addresses swapped and the request's VLAN tags kept, the IP addresses swapped, UDP source
//! port the QP's `udp_sport` (ModifyQp's address vector; the request's source port when it is
//! 0), destination port 4791.
//!
//! Fields that differ from rxe on purpose:
//! - IPv4 identification is 0 (rxe numbers its packets per socket; with DF set the field has
//!   no meaning, RFC 6864), DSCP/ECN 0, TTL / hop limit 64, DF set (as rxe);
//! - an IPv6 response carries no extension headers, traffic class and flow label 0;
//! - the UDP checksum is 0 over IPv4 and IPv6 (rxe: 0 over IPv4; the RoCEv2 annex allows 0
//!   over IPv6, the ICRC covers the packet);
//! - BTH: P_Key 0xffff, M (MigReq) 0, TVer 0, as rxe.

use splitrx_shared::wire::ethernet::{self, EthernetFrame, EthernetRepr};
use splitrx_shared::wire::roce::{fill_icrc, RocePacket, RoceRepr};
use splitrx_shared::wire::udp::{self, port, UdpPacket, UdpRepr};
use splitrx_shared::wire::{ipv4, ipv6, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr};

/// IP protocol number of UDP.
const IPPROTO_UDP: u8 = 17;
/// TTL / hop limit of the responder's packets.
pub const TTL: u8 = 64;

/// The responder's IP addresses for one response (`src` is the responder's own).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RouteIp {
    V4 { src: [u8; 4], dst: [u8; 4] },
    V6 { src: [u8; 16], dst: [u8; 16] },
}

/// Where a response goes: the headers below the BTH, as values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Route {
    pub eth: EthernetRepr,
    pub ip: RouteIp,
    pub sport: u16,
    /// IPv4 DSCP/ECN byte or IPv6 traffic class (0 in the responder's packets; requesters
    /// built by the test helpers set ECN bits with it).
    pub tos: u8,
}

impl Route {
    /// The route back to the sender of `frame`, whose IP header (version `version`) starts at
    /// `l3`. `None` when the frame's headers do not parse (the split accepted them, so this
    /// does not happen for a frame the responder takes).
    pub fn reply_to(frame: &[u8], l3: usize, version: u8, sport: u16) -> Option<Route> {
        let mut eth = EthernetRepr::parse(&EthernetFrame::new_checked(frame).ok()?).ok()?;
        core::mem::swap(&mut eth.src_addr, &mut eth.dst_addr);
        let ip = frame.get(l3..)?;
        let ip = match version {
            4 => {
                let p = Ipv4Packet::new_unchecked(ip);
                RouteIp::V4 {
                    src: p.dst_addr(),
                    dst: p.src_addr(),
                }
            }
            6 => {
                let p = Ipv6Packet::new_unchecked(ip);
                RouteIp::V6 {
                    src: p.dst_addr(),
                    dst: p.src_addr(),
                }
            }
            _ => return None,
        };
        Some(Route {
            eth,
            ip,
            sport,
            tos: 0,
        })
    }

    /// IP version of the route.
    pub fn ip_version(&self) -> u8 {
        match self.ip {
            RouteIp::V4 { .. } => 4,
            RouteIp::V6 { .. } => 6,
        }
    }

    /// Bytes of the frame before the BTH.
    pub fn header_len(&self) -> usize {
        self.eth.header_len()
            + match self.ip {
                RouteIp::V4 { .. } => ipv4::HEADER_LEN,
                RouteIp::V6 { .. } => ipv6::HEADER_LEN,
            }
            + udp::HEADER_LEN
    }

    /// Builds one packet into `buf`: the headers, `roce`'s BTH and extended headers, the
    /// payload (`fill` writes its `roce.payload_len` bytes), zero pad and the ICRC. Returns
    /// the frame length, `Ok(None)` when `buf` is too short; `fill`'s error is passed on.
    pub fn emit<E>(
        &self,
        buf: &mut [u8],
        roce: &RoceRepr,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<Option<usize>, E> {
        let l3 = self.eth.header_len();
        let l4 = self.header_len() - udp::HEADER_LEN;
        let rl = roce.buffer_len();
        let total = l4 + udp::HEADER_LEN + rl;
        let Some(buf) = buf.get_mut(..total) else {
            return Ok(None);
        };
        debug_assert!(l3 >= ethernet::HEADER_LEN);
        self.eth
            .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        match self.ip {
            RouteIp::V4 { src, dst } => Ipv4Repr {
                dscp_ecn: self.tos,
                ident: 0,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                ttl: TTL,
                protocol: IPPROTO_UDP,
                src_addr: src,
                dst_addr: dst,
                options: &[],
                payload_len: udp::HEADER_LEN + rl,
            }
            .emit(&mut Ipv4Packet::new_unchecked(&mut buf[l3..])),
            RouteIp::V6 { src, dst } => Ipv6Repr {
                traffic_class: self.tos,
                flow_label: 0,
                next_header: IPPROTO_UDP,
                hop_limit: TTL,
                src_addr: src,
                dst_addr: dst,
                payload_len: udp::HEADER_LEN + rl,
            }
            .emit(&mut Ipv6Packet::new_unchecked(&mut buf[l3..])),
        }
        UdpRepr {
            src_port: self.sport,
            dst_port: port::ROCEV2,
            payload_len: rl,
        }
        .emit(&mut UdpPacket::new_unchecked(&mut buf[l4..]));
        let mut p = RocePacket::new_unchecked(&mut buf[l4 + udp::HEADER_LEN..]);
        roce.emit(&mut p);
        fill(p.payload_mut())?;
        let ok = fill_icrc(buf, l3, self.ip_version(), l4, total - 4);
        debug_assert!(ok.is_some());
        Ok(Some(total))
    }
}
