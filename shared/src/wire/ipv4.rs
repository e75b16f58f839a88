//! IPv4 (RFC 791), with options and fragments.
//!
//! **BIG TCP**: Linux sends and receives IPv4 GSO/GRO packets larger than 64 KiB with a total
//! length of 0 ("BIG TCP", net-next 6.3). A total length of 0 therefore means "the datagram is
//! the rest of the buffer": [`Ipv4Packet::datagram_len`] returns the buffer length, and
//! `check_len` accepts it. The price is that Ethernet padding after such a datagram counts as
//! part of it; BIG TCP frames are far above the 60-byte minimum frame, so none is present.
//! The split decision (`crate::split`) is stricter: it takes a total length of 0 as BIG TCP
//! only when more than 65535 bytes are left for the datagram, and as malformed otherwise.

use super::{be16, bytes, checksum, clamp, clamp_mut, put, u8_at, Error, Result};

mod field {
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
    pub const OPTIONS: usize = 20;
}

/// Length of the IPv4 header without options.
pub const HEADER_LEN: usize = field::OPTIONS;

/// A read-only view of an IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// * `Truncated`: shorter than 20 bytes, than the IHL, or than the total length;
    /// * `Malformed`: version != 4, IHL < 5, total length (when not 0) < IHL.
    ///
    /// A total length of 0 is BIG TCP (see the module docs) and is accepted.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 || self.header_len() < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < self.header_len() {
            return Err(Error::Truncated);
        }
        let total = self.total_len() as usize;
        if total != 0 {
            if total < self.header_len() {
                return Err(Error::Malformed);
            }
            if len < total {
                return Err(Error::Truncated);
            }
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
        u8_at(self.b(), field::VER_IHL) >> 4
    }
    /// Header length in bytes (IHL * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        (u8_at(self.b(), field::VER_IHL) & 0x0f) as usize * 4
    }
    /// The former TOS byte (DSCP << 2 | ECN).
    pub fn dscp_ecn(&self) -> u8 {
        u8_at(self.b(), field::DSCP_ECN)
    }
    /// The total length field, raw (0 for BIG TCP).
    pub fn total_len(&self) -> u16 {
        be16(self.b(), field::LENGTH)
    }
    /// The datagram length: the total length, or the buffer length when the total length is 0
    /// (BIG TCP).
    pub fn datagram_len(&self) -> usize {
        match self.total_len() {
            0 => self.b().len(),
            n => n as usize,
        }
    }
    pub fn ident(&self) -> u16 {
        be16(self.b(), field::IDENT)
    }
    pub fn dont_frag(&self) -> bool {
        be16(self.b(), field::FLG_OFF) & 0x4000 != 0
    }
    pub fn more_frags(&self) -> bool {
        be16(self.b(), field::FLG_OFF) & 0x2000 != 0
    }
    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u32 {
        (be16(self.b(), field::FLG_OFF) & 0x1fff) as u32 * 8
    }
    /// Whether this is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        be16(self.b(), field::FLG_OFF) & 0x3fff != 0
    }
    pub fn ttl(&self) -> u8 {
        u8_at(self.b(), field::TTL)
    }
    pub fn protocol(&self) -> u8 {
        u8_at(self.b(), field::PROTOCOL)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }
    pub fn src_addr(&self) -> [u8; 4] {
        bytes(self.b(), field::SRC_ADDR).unwrap_or([0; 4])
    }
    pub fn dst_addr(&self) -> [u8; 4] {
        bytes(self.b(), field::DST_ADDR).unwrap_or([0; 4])
    }
    /// The option bytes (between the fixed header and IHL * 4).
    pub fn options(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, self.header_len())
    }
    /// Whether the header checksum is correct (one's complement sum over the header is 0xffff).
    pub fn verify_checksum(&self) -> bool {
        let h = clamp(self.b(), 0, self.header_len());
        h.len() >= HEADER_LEN && checksum::data(h) == 0
    }
    /// The upper-layer bytes: from the end of the header to the datagram length (clamped).
    pub fn payload(&self) -> &[u8] {
        clamp(self.b(), self.header_len(), self.datagram_len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    /// Sets the version to 4 and the IHL to `header_len / 4`.
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        put(
            self.b_mut(),
            field::VER_IHL,
            [0x40 | (header_len / 4) as u8 & 0x0f],
        );
    }
    pub fn set_dscp_ecn(&mut self, v: u8) {
        put(self.b_mut(), field::DSCP_ECN, [v]);
    }
    pub fn set_total_len(&mut self, v: u16) {
        put(self.b_mut(), field::LENGTH, v.to_be_bytes());
    }
    pub fn set_ident(&mut self, v: u16) {
        put(self.b_mut(), field::IDENT, v.to_be_bytes());
    }
    /// Flags and fragment offset (in bytes, a multiple of 8) in one store.
    pub fn set_flags_and_frag_offset(&mut self, dont_frag: bool, more_frags: bool, offset: u32) {
        let v = (u16::from(dont_frag) << 14) | (u16::from(more_frags) << 13) | (offset / 8) as u16;
        put(self.b_mut(), field::FLG_OFF, v.to_be_bytes());
    }
    pub fn set_ttl(&mut self, v: u8) {
        put(self.b_mut(), field::TTL, [v]);
    }
    pub fn set_protocol(&mut self, v: u8) {
        put(self.b_mut(), field::PROTOCOL, [v]);
    }
    pub fn set_checksum(&mut self, v: u16) {
        put(self.b_mut(), field::CHECKSUM, v.to_be_bytes());
    }
    pub fn set_src_addr(&mut self, v: [u8; 4]) {
        put(self.b_mut(), field::SRC_ADDR, v);
    }
    pub fn set_dst_addr(&mut self, v: [u8; 4]) {
        put(self.b_mut(), field::DST_ADDR, v);
    }
    /// The option bytes, mutably (IHL must be set first).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        clamp_mut(self.b_mut(), HEADER_LEN, hl)
    }
    /// Computes and stores the header checksum (over IHL * 4 bytes).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::data(clamp(self.b(), 0, hl));
        self.set_checksum(c);
    }
    /// The upper-layer bytes, mutably (IHL and total length must be set first).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, end) = (self.header_len(), self.datagram_len());
        clamp_mut(self.b_mut(), hl, end)
    }
}

/// An IPv4 header as values. Options are kept raw (a multiple of 4 bytes, at most 40).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Ipv4Repr<'a> {
    pub dscp_ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// Fragment offset in bytes (a multiple of 8).
    pub frag_offset: u32,
    pub ttl: u8,
    pub protocol: u8,
    pub src_addr: [u8; 4],
    pub dst_addr: [u8; 4],
    pub options: &'a [u8],
    /// Length of the upper-layer bytes. Above 65535 - header, the total length is emitted as
    /// 0 (BIG TCP, see the module docs) and parsed back from the buffer length.
    pub payload_len: usize,
}

impl<'a> Ipv4Repr<'a> {
    /// Reads a checked packet (`check_len` runs first). The checksum is not verified: a view
    /// of a frame with an offloaded checksum parses.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &'a Ipv4Packet<&'a T>) -> Result<Ipv4Repr<'a>> {
        p.check_len()?;
        let b: &'a T = p.buffer;
        Ok(Ipv4Repr {
            dscp_ecn: p.dscp_ecn(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
            more_frags: p.more_frags(),
            frag_offset: p.frag_offset(),
            ttl: p.ttl(),
            protocol: p.protocol(),
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            options: clamp(b.as_ref(), HEADER_LEN, p.header_len()),
            payload_len: p.datagram_len() - p.header_len(),
        })
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    #[inline]
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header, options and a correct header checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv4Packet<T>) {
        // The fixed header is built and summed in a local array and stored once: summing it
        // back from the buffer right after the narrow field stores stalls store-to-load
        // forwarding (the traffic generator ran 1.5x slower on 64-byte frames that way).
        let hl = self.header_len();
        let mut h = Ipv4Packet::new_unchecked([0u8; HEADER_LEN]);
        h.set_version_and_header_len(hl);
        h.set_dscp_ecn(self.dscp_ecn);
        h.set_total_len(u16::try_from(self.buffer_len()).unwrap_or(0));
        h.set_ident(self.ident);
        h.set_flags_and_frag_offset(self.dont_frag, self.more_frags, self.frag_offset);
        h.set_ttl(self.ttl);
        h.set_protocol(self.protocol);
        h.set_src_addr(self.src_addr);
        h.set_dst_addr(self.dst_addr);
        let sum = checksum::sum(&h.buffer, checksum::sum(self.options, 0));
        h.set_checksum(!checksum::fold(sum));
        let b = p.b_mut();
        b[..HEADER_LEN].copy_from_slice(&h.buffer);
        b[HEADER_LEN..hl].copy_from_slice(self.options);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.0.1 -> 10.0.0.2, UDP, total length 32 (20 header + 12), DF, TTL 64, good checksum,
    // followed by 2 bytes of link padding.
    static UDP4: [u8; 34] = [
        0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x14, 0x92, 10, 0, 0, 1, 10, 0,
        0, 2, // header
        0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0c, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef, // UDP
        0x00, 0x00, // padding
    ];

    fn with_checksum(mut h: [u8; 34]) -> [u8; 34] {
        h[10] = 0;
        h[11] = 0;
        let mut sum: u32 = 0;
        let hl = (h[0] & 0x0f) as usize * 4;
        for c in h[..hl].chunks(2) {
            sum += u16::from_be_bytes([c[0], c[1]]) as u32;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        let c = !(sum as u16);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }

    #[test]
    fn fields() {
        let f = with_checksum(UDP4);
        let p = Ipv4Packet::new_checked(&f[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 32);
        assert_eq!(p.datagram_len(), 32);
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), 17);
        assert_eq!(p.src_addr(), [10, 0, 0, 1]);
        assert_eq!(p.dst_addr(), [10, 0, 0, 2]);
        assert!(p.verify_checksum());
        assert_eq!(p.options(), &[] as &[u8]);
        // The payload stops at the total length: the padding is not in it.
        assert_eq!(p.payload().len(), 12);
        assert_eq!(&p.payload()[8..], &[0xde, 0xad, 0xbe, 0xef]);
        let mut bad = f;
        bad[8] = 63;
        assert!(!Ipv4Packet::new_unchecked(&bad[..]).verify_checksum());
    }

    #[test]
    fn options_and_fragments() {
        // IHL 6: one 4-byte option (NOP NOP NOP EOL); MF set, offset 185 * 8.
        let mut f = UDP4;
        f[0] = 0x46;
        f[6] = 0x20;
        f[7] = 185;
        f[20..24].copy_from_slice(&[1, 1, 1, 0]);
        let p = Ipv4Packet::new_checked(&f[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.options(), &[1, 1, 1, 0]);
        assert!(p.more_frags() && p.is_fragment() && !p.dont_frag());
        assert_eq!(p.frag_offset(), 1480);
        assert_eq!(p.payload().len(), 8);
    }

    #[test]
    fn big_tcp_total_length_zero() {
        let mut f = UDP4;
        f[2] = 0;
        f[3] = 0;
        let p = Ipv4Packet::new_checked(&f[..]).unwrap();
        assert_eq!(p.total_len(), 0);
        assert_eq!(p.datagram_len(), 34);
        assert_eq!(p.payload().len(), 14);
    }

    #[test]
    fn check_len_errors() {
        let f = UDP4;
        assert_eq!(
            Ipv4Packet::new_checked(&f[..19]).unwrap_err(),
            Error::Truncated
        );
        // Total length 32 > 31 bytes.
        assert_eq!(
            Ipv4Packet::new_checked(&f[..31]).unwrap_err(),
            Error::Truncated
        );
        let mut g = f;
        g[0] = 0x44; // IHL 4
        assert_eq!(
            Ipv4Packet::new_checked(&g[..]).unwrap_err(),
            Error::Malformed
        );
        g[0] = 0x65; // version 6
        assert_eq!(
            Ipv4Packet::new_checked(&g[..]).unwrap_err(),
            Error::Malformed
        );
        g[0] = 0x4f; // IHL 15 = 60 bytes > 34-byte buffer
        assert_eq!(
            Ipv4Packet::new_checked(&g[..]).unwrap_err(),
            Error::Truncated
        );
        g[0] = 0x46; // IHL 24 > total length 20
        g[3] = 20;
        assert_eq!(
            Ipv4Packet::new_checked(&g[..]).unwrap_err(),
            Error::Malformed
        );
        g[0] = 0x45;
        g[3] = 19; // total length < 20
        assert_eq!(
            Ipv4Packet::new_checked(&g[..]).unwrap_err(),
            Error::Malformed
        );
        // Accessors of an unchecked short view do not panic.
        let p = Ipv4Packet::new_unchecked(&g[..3]);
        assert_eq!((p.total_len(), p.protocol(), p.src_addr()), (0, 0, [0; 4]));
        assert_eq!(p.payload(), &[] as &[u8]);
        assert!(!p.verify_checksum());
    }
}
