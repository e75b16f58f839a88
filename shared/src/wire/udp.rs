//! UDP (RFC 768).

use super::{be16, clamp, Error, Result};

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
