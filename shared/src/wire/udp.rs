//! UDP (RFC 768).

use super::{be16, checksum, clamp, clamp_mut, ip, put, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// Well-known destination ports the split dispatches on.
pub mod port {
    pub const VXLAN: u16 = 4789;
    pub const ROCEV2: u16 = 4791;
    pub const GENEVE: u16 = 6081;
}

/// A read-only view of a UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

// `len()` is the UDP length field (as in smoltcp), not a collection length.
#[allow(clippy::len_without_is_empty)]
impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` when shorter than 8 bytes or than the length field; `Malformed` when the
    /// length field is below 8. (A length of 0 is only legal in an IPv6 jumbogram, RFC 2675:
    /// it is `Malformed` here and the split handles jumbograms itself.)
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = self.len() as usize;
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len < l {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }
    /// The length field (header included).
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }
    /// The payload, up to the length field (clamped to the buffer).
    pub fn payload(&self) -> &[u8] {
        clamp(self.buffer.as_ref(), HEADER_LEN, self.len() as usize)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    pub fn set_src_port(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::SRC_PORT, v.to_be_bytes());
    }
    pub fn set_dst_port(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::DST_PORT, v.to_be_bytes());
    }
    pub fn set_len(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::LENGTH, v.to_be_bytes());
    }
    pub fn set_checksum(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::CHECKSUM, v.to_be_bytes());
    }
    /// The payload, mutably (up to the length field).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = self.len() as usize;
        clamp_mut(self.buffer.as_mut(), HEADER_LEN, len)
    }
    /// Computes and stores the checksum over the pseudo-header of `src`/`dst` (4 or 16 bytes
    /// each), this header and the payload (the datagram is the first `len()` bytes). A
    /// computed 0 is sent as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, src: &[u8], dst: &[u8]) {
        self.set_checksum(0);
        let len = self.len() as usize;
        let c = checksum::upper_layer(src, dst, ip::UDP, clamp(self.buffer.as_ref(), 0, len));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }
}

/// A UDP header as values. `emit` writes checksum 0 ("none", legal over IPv4 and for tunnels
/// and RoCEv2): call [`UdpPacket::fill_checksum`] once the payload is in place.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Payload length (the length field is 8 more).
    pub payload_len: usize,
}

impl UdpRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> Result<UdpRepr> {
        p.check_len()?;
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: p.len() as usize - HEADER_LEN,
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

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut UdpPacket<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(self.buffer_len() as u16);
        p.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DGRAM: [u8; 14] = [
        0x30, 0x39, 0x12, 0xb7, 0x00, 0x0c, 0xbe, 0xef, 1, 2, 3, 4, 0xee, 0xee,
    ];

    #[test]
    fn fields() {
        let p = UdpPacket::new_checked(&DGRAM[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (12345, port::ROCEV2));
        assert_eq!((p.len(), p.checksum()), (12, 0xbeef));
        assert_eq!(p.payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn check_len_errors() {
        assert_eq!(
            UdpPacket::new_checked(&DGRAM[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            UdpPacket::new_checked(&DGRAM[..11]).unwrap_err(),
            Error::Truncated
        );
        let mut d = DGRAM;
        d[5] = 7;
        assert_eq!(
            UdpPacket::new_checked(&d[..]).unwrap_err(),
            Error::Malformed
        );
        d[5] = 0;
        assert_eq!(
            UdpPacket::new_checked(&d[..]).unwrap_err(),
            Error::Malformed
        );
        assert_eq!(UdpPacket::new_unchecked(&d[..3]).len(), 0);
    }
}
