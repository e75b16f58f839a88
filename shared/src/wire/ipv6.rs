//! IPv6 (RFC 8200) and the extension headers the split walks: Hop-by-Hop options (with the
//! RFC 2675 Jumbo Payload option), Routing (any type; type 4 is the Segment Routing Header of
//! RFC 8754), Destination options and Fragment.
//!
//! **Payload length 0**: a jumbogram (RFC 2675, used by Linux BIG TCP for IPv6) has a payload
//! length of 0 and its true length in the Hop-by-Hop Jumbo Payload option. [`Ipv6Packet`] itself
//! cannot see the option; with payload length 0, `payload()` is the rest of the buffer and the
//! caller reads the real length with [`jumbo_payload_len`].

use super::{be16, be32, bytes, clamp, clamp_mut, put, u8_at, Error, Result};

mod field {
    pub const VER_TC_FL: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: usize = 8;
    pub const DST_ADDR: usize = 24;
    pub const PAYLOAD: usize = 40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read-only view of an IPv6 packet (the fixed header and what follows).
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// * `Truncated`: shorter than 40 bytes or than 40 + payload length;
    /// * `Malformed`: version != 6.
    pub fn check_len(&self) -> Result<()> {
        let len = self.b().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::Malformed);
        }
        if len < HEADER_LEN + self.payload_len() as usize {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        u8_at(self.b(), field::VER_TC_FL) >> 4
    }
    pub fn traffic_class(&self) -> u8 {
        ((be16(self.b(), field::VER_TC_FL) >> 4) & 0xff) as u8
    }
    pub fn flow_label(&self) -> u32 {
        be32(self.b(), field::VER_TC_FL) & 0x000f_ffff
    }
    /// The payload length field (0 for a jumbogram).
    pub fn payload_len(&self) -> u16 {
        be16(self.b(), field::LENGTH)
    }
    pub fn next_header(&self) -> u8 {
        u8_at(self.b(), field::NXT_HDR)
    }
    pub fn hop_limit(&self) -> u8 {
        u8_at(self.b(), field::HOP_LIMIT)
    }
    pub fn src_addr(&self) -> [u8; 16] {
        bytes(self.b(), field::SRC_ADDR).unwrap_or([0; 16])
    }
    pub fn dst_addr(&self) -> [u8; 16] {
        bytes(self.b(), field::DST_ADDR).unwrap_or([0; 16])
    }
    /// Bytes after the fixed header, up to the payload length (or the whole rest of the buffer
    /// when the payload length is 0: see the module docs).
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        match self.payload_len() {
            0 => clamp(b, HEADER_LEN, b.len()),
            n => clamp(b, HEADER_LEN, HEADER_LEN + n as usize),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Version 6, traffic class and flow label (20 bits) in one store.
    pub fn set_version_tc_flow_label(&mut self, traffic_class: u8, flow_label: u32) {
        let v = 0x6000_0000 | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        put(self.b_mut(), field::VER_TC_FL, v.to_be_bytes());
    }
    pub fn set_payload_len(&mut self, v: u16) {
        put(self.b_mut(), field::LENGTH, v.to_be_bytes());
    }
    pub fn set_next_header(&mut self, v: u8) {
        put(self.b_mut(), field::NXT_HDR, [v]);
    }
    pub fn set_hop_limit(&mut self, v: u8) {
        put(self.b_mut(), field::HOP_LIMIT, [v]);
    }
    pub fn set_src_addr(&mut self, v: [u8; 16]) {
        put(self.b_mut(), field::SRC_ADDR, v);
    }
    pub fn set_dst_addr(&mut self, v: [u8; 16]) {
        put(self.b_mut(), field::DST_ADDR, v);
    }
    /// Bytes after the fixed header, mutably (as [`Ipv6Packet::payload`] delimits them).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = match self.payload_len() {
            0 => self.b().len(),
            n => HEADER_LEN + n as usize,
        };
        clamp_mut(self.b_mut(), HEADER_LEN, end)
    }
}

/// The fixed IPv6 header as values (extension headers are payload: emit them as bytes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Ipv6Repr {
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    /// Bytes after the fixed header. Above 65535 the payload length is emitted as 0 (a
    /// jumbogram's, see the module docs) and parsed back from the buffer length.
    pub payload_len: usize,
}

impl Ipv6Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Ipv6Repr> {
        p.check_len()?;
        Ok(Ipv6Repr {
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
            next_header: p.next_header(),
            hop_limit: p.hop_limit(),
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            payload_len: p.payload().len(),
        })
    }

    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    #[inline]
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        p.set_version_tc_flow_label(self.traffic_class, self.flow_label);
        p.set_payload_len(u16::try_from(self.payload_len).unwrap_or(0));
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
    }
}

mod ext_field {
    pub const NXT_HDR: usize = 0;
    pub const LENGTH: usize = 1;
    pub const DATA: usize = 2;
    // Routing header.
    pub const ROUTING_TYPE: usize = 2;
    pub const SEG_LEFT: usize = 3;
    // Segment Routing Header (routing type 4).
    pub const SRH_LAST_ENTRY: usize = 4;
    pub const SRH_FLAGS: usize = 5;
    pub const SRH_TAG: usize = 6;
    pub const SRH_SEGMENTS: usize = 8;
}

/// A generic extension header in the (next header, length in 8-octet units beyond the first)
/// format: Hop-by-Hop, Routing, Destination options.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6ExtHeader<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6ExtHeader { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// `Truncated` when the buffer is shorter than the header's own length.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < 2 || len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn next_header(&self) -> u8 {
        u8_at(self.buffer.as_ref(), ext_field::NXT_HDR)
    }
    /// Header length in bytes: (length field + 1) * 8.
    #[inline]
    pub fn header_len(&self) -> usize {
        (u8_at(self.buffer.as_ref(), ext_field::LENGTH) as usize + 1) * 8
    }
    /// The bytes after the two-byte (next header, length) prefix.
    pub fn data(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), ext_field::DATA, self.header_len())
    }
    /// The TLV options of a Hop-by-Hop or Destination options header.
    pub fn options(&self) -> Ipv6Options<'_> {
        Ipv6Options { data: self.data() }
    }
}

/// One Hop-by-Hop / Destination option.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ipv6Option<'a> {
    Pad1,
    /// PadN with this many bytes of data.
    PadN(u8),
    /// RFC 2675 Jumbo Payload: the length of everything after the IPv6 header.
    JumboPayload(u32),
    Other {
        kind: u8,
        data: &'a [u8],
    },
}

/// Option type of the RFC 2675 Jumbo Payload option.
pub const OPT_JUMBO_PAYLOAD: u8 = 0xc2;
const OPT_PAD1: u8 = 0;
const OPT_PADN: u8 = 1;

/// Iterator over the TLV options of a Hop-by-Hop or Destination options header. Yields
/// `Err(Truncated)` once and stops when an option runs past the header, and `Err(Malformed)`
/// for a Jumbo Payload option whose length is not 4. Terminates: every step consumes at least
/// one byte.
#[derive(Debug, Clone)]
pub struct Ipv6Options<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for Ipv6Options<'a> {
    type Item = Result<Ipv6Option<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, rest) = self.data.split_first()?;
        if kind == OPT_PAD1 {
            self.data = rest;
            return Some(Ok(Ipv6Option::Pad1));
        }
        let Some((&len, rest)) = rest.split_first() else {
            self.data = &[];
            return Some(Err(Error::Truncated));
        };
        let Some(value) = rest.get(..len as usize) else {
            self.data = &[];
            return Some(Err(Error::Truncated));
        };
        self.data = clamp(rest, len as usize, rest.len());
        Some(Ok(match kind {
            OPT_PADN => Ipv6Option::PadN(len),
            OPT_JUMBO_PAYLOAD => match bytes::<4>(value, 0) {
                Some(v) if len == 4 => Ipv6Option::JumboPayload(u32::from_be_bytes(v)),
                _ => {
                    self.data = &[];
                    return Some(Err(Error::Malformed));
                }
            },
            _ => Ipv6Option::Other { kind, data: value },
        }))
    }
}

/// The Jumbo Payload length carried by a Hop-by-Hop header, if it has one (the first one wins).
/// `hbh` is the Hop-by-Hop header (from its next-header byte). Malformed options end the walk.
pub fn jumbo_payload_len(hbh: &[u8]) -> Option<u32> {
    let h = Ipv6ExtHeader::new_checked(hbh).ok()?;
    for o in h.options() {
        match o {
            Ok(Ipv6Option::JumboPayload(n)) => return Some(n),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// A Routing header (RFC 8200 4.4), with the Segment Routing Header (routing type 4, RFC 8754)
/// fields.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6RoutingHeader<T: AsRef<[u8]>> {
    buffer: T,
}

/// Routing type of the Segment Routing Header.
pub const ROUTING_TYPE_SRH: u8 = 4;

impl<T: AsRef<[u8]>> Ipv6RoutingHeader<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6RoutingHeader { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// `Truncated` when shorter than 8 bytes or its length; for an SRH, `Malformed` when the
    /// segment list (last entry + 1 addresses) does not fit in the header.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < 8 {
            return Err(Error::Truncated);
        }
        Ipv6ExtHeader::new_checked(b)?;
        if self.routing_type() == ROUTING_TYPE_SRH
            && ext_field::SRH_SEGMENTS + 16 * (self.last_entry() as usize + 1) > self.header_len()
        {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn next_header(&self) -> u8 {
        u8_at(self.b(), ext_field::NXT_HDR)
    }
    #[inline]
    pub fn header_len(&self) -> usize {
        (u8_at(self.b(), ext_field::LENGTH) as usize + 1) * 8
    }
    pub fn routing_type(&self) -> u8 {
        u8_at(self.b(), ext_field::ROUTING_TYPE)
    }
    pub fn segments_left(&self) -> u8 {
        u8_at(self.b(), ext_field::SEG_LEFT)
    }
    /// SRH: index of the last element of the segment list.
    pub fn last_entry(&self) -> u8 {
        u8_at(self.b(), ext_field::SRH_LAST_ENTRY)
    }
    pub fn srh_flags(&self) -> u8 {
        u8_at(self.b(), ext_field::SRH_FLAGS)
    }
    pub fn srh_tag(&self) -> u16 {
        be16(self.b(), ext_field::SRH_TAG)
    }
    /// SRH: segment `i` (0 = the last segment of the path), if inside the list and the header.
    pub fn srh_segment(&self, i: usize) -> Option<[u8; 16]> {
        if i > self.last_entry() as usize {
            return None;
        }
        let off = ext_field::SRH_SEGMENTS + 16 * i;
        if off + 16 > self.header_len() {
            return None;
        }
        bytes(self.b(), off)
    }
    /// SRH: the TLVs after the segment list.
    pub fn srh_tlvs(&self) -> &[u8] {
        let start = ext_field::SRH_SEGMENTS + 16 * (self.last_entry() as usize + 1);
        clamp(self.b(), start, self.header_len())
    }
}

mod frag_field {
    pub const NXT_HDR: usize = 0;
    pub const FRAG_OFF: usize = 2;
    pub const IDENT: usize = 4;
}

/// Length of the Fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// A Fragment header (RFC 8200 4.5).
#[derive(Debug, Clone, Copy)]
pub struct Ipv6FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6FragmentHeader<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6FragmentHeader { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let h = Self::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn next_header(&self) -> u8 {
        u8_at(self.buffer.as_ref(), frag_field::NXT_HDR)
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u32 {
        (be16(self.buffer.as_ref(), frag_field::FRAG_OFF) & 0xfff8) as u32
    }
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), frag_field::FRAG_OFF) & 1 != 0
    }
    pub fn ident(&self) -> u32 {
        be32(self.buffer.as_ref(), frag_field::IDENT)
    }
    /// Whether this is the first fragment (offset 0): it carries the upper-layer header.
    pub fn is_first(&self) -> bool {
        self.frag_offset() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // IPv6 tc 0xb8, flow 0x12345, payload 16, next HBH, hop limit 64, ::1 -> ::2;
    // HBH (next UDP, len 0): PadN(4)... then UDP 8 bytes.
    static V6: [u8; 56] = [
        0x6b, 0x81, 0x23, 0x45, 0x00, 0x10, 0x00, 0x40, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, //
        0x11, 0x00, 0x01, 0x04, 0, 0, 0, 0, // HBH: PadN(4)
        0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00, // UDP
    ];

    #[test]
    fn fixed_header() {
        let p = Ipv6Packet::new_checked(&V6[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 16);
        assert_eq!(p.next_header(), 0);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr()[15], 1);
        assert_eq!(p.dst_addr()[15], 2);
        assert_eq!(p.payload().len(), 16);
        let h = Ipv6ExtHeader::new_checked(p.payload()).unwrap();
        assert_eq!((h.next_header(), h.header_len()), (17, 8));
        let o: [_; 1] = [Ok(Ipv6Option::PadN(4))];
        assert!(h.options().eq(o));
        assert_eq!(jumbo_payload_len(p.payload()), None);
    }

    #[test]
    fn check_len_errors() {
        assert_eq!(
            Ipv6Packet::new_checked(&V6[..39]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Ipv6Packet::new_checked(&V6[..55]).unwrap_err(),
            Error::Truncated
        );
        let mut v = V6;
        v[0] = 0x4b;
        assert_eq!(
            Ipv6Packet::new_checked(&v[..]).unwrap_err(),
            Error::Malformed
        );
        // Extension header length 16 in an 8-byte buffer.
        let mut e = [0u8; 8];
        e[1] = 1;
        assert_eq!(
            Ipv6ExtHeader::new_checked(&e[..]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Ipv6ExtHeader::new_checked(&e[..1]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn jumbo_option() {
        // HBH: next TCP, len 0, Jumbo (0xc2, 4, 0x00013880 = 80000).
        let hbh = [6, 0, 0xc2, 4, 0x00, 0x01, 0x38, 0x80];
        assert_eq!(jumbo_payload_len(&hbh), Some(80000));
        let h = Ipv6ExtHeader::new_checked(&hbh[..]).unwrap();
        let v: [_; 1] = [Ok(Ipv6Option::JumboPayload(80000))];
        assert!(h.options().eq(v));
        // Wrong option length: Malformed, then the walk stops.
        let bad = [6, 0, 0xc2, 3, 0, 0, 0, 1];
        let h = Ipv6ExtHeader::new_checked(&bad[..]).unwrap();
        let v: [_; 1] = [Err(Error::Malformed)];
        assert!(h.options().eq(v));
        assert_eq!(jumbo_payload_len(&bad), None);
        // An option running past the header.
        let bad = [6, 0, 0, 0x1e, 9, 0, 0, 0];
        let h = Ipv6ExtHeader::new_checked(&bad[..]).unwrap();
        let v: [_; 2] = [Ok(Ipv6Option::Pad1), Err(Error::Truncated)];
        assert!(h.options().eq(v));
        let other = [6, 0, 0x1e, 4, 1, 2, 3, 4];
        let h = Ipv6ExtHeader::new_checked(&other[..]).unwrap();
        let v: [_; 1] = [Ok(Ipv6Option::Other {
            kind: 0x1e,
            data: &[1, 2, 3, 4],
        })];
        assert!(h.options().eq(v));
    }

    #[test]
    fn segment_routing_header() {
        // SRH: next ICMPv6, len 4 (40 bytes), type 4, segments left 1, last entry 1, flags 0,
        // tag 0x0102, two segments (::a, ::b).
        let mut srh = [0u8; 40];
        srh[..8].copy_from_slice(&[58, 4, 4, 1, 1, 0, 1, 2]);
        srh[23] = 0xa;
        srh[39] = 0xb;
        let h = Ipv6RoutingHeader::new_checked(&srh[..]).unwrap();
        assert_eq!(
            (h.next_header(), h.header_len(), h.routing_type()),
            (58, 40, 4)
        );
        assert_eq!(
            (h.segments_left(), h.last_entry(), h.srh_tag()),
            (1, 1, 0x0102)
        );
        assert_eq!(h.srh_flags(), 0);
        assert_eq!(h.srh_segment(0).unwrap()[15], 0xa);
        assert_eq!(h.srh_segment(1).unwrap()[15], 0xb);
        assert_eq!(h.srh_segment(2), None);
        assert_eq!(h.srh_tlvs(), &[] as &[u8]);
        // Last entry 2 needs 56 bytes.
        srh[4] = 2;
        assert_eq!(
            Ipv6RoutingHeader::new_checked(&srh[..]).unwrap_err(),
            Error::Malformed
        );
        assert_eq!(
            Ipv6RoutingHeader::new_checked(&srh[..39]).unwrap_err(),
            Error::Truncated
        );
    }

    #[test]
    fn fragment_header() {
        // next UDP, offset 1448 (181 * 8), M=1, ident 0xdeadbeef.
        let f = [17, 0, 0x05, 0xa9, 0xde, 0xad, 0xbe, 0xef];
        let h = Ipv6FragmentHeader::new_checked(&f[..]).unwrap();
        assert_eq!(h.next_header(), 17);
        assert_eq!(h.frag_offset(), 1448);
        assert!(h.more_frags() && !h.is_first());
        assert_eq!(h.ident(), 0xdeadbeef);
        let first = [17, 0, 0x00, 0x01, 0, 0, 0, 1];
        assert!(Ipv6FragmentHeader::new_checked(&first[..])
            .unwrap()
            .is_first());
        assert_eq!(
            Ipv6FragmentHeader::new_checked(&f[..7]).unwrap_err(),
            Error::Truncated
        );
    }
}
