//! VXLAN (RFC 7348), UDP destination port 4789: an 8-byte header, then an Ethernet frame.

use super::{be32, clamp, clamp_mut, put, u8_at, Error, Result};

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI: usize = 4;
    pub const PAYLOAD: usize = 8;
}

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = field::PAYLOAD;

/// The I flag: the VNI is valid. RFC 7348 requires it; other flag bits (GBP's G, ...) are
/// tolerated.
pub const FLAG_I: u8 = 0x08;

/// A read-only view of a VXLAN packet (the UDP payload).
#[derive(Debug, Clone, Copy)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` when shorter than 8 bytes; `Malformed` when the I flag is clear.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if !self.vni_valid() {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    pub fn flags(&self) -> u8 {
        u8_at(self.buffer.as_ref(), field::FLAGS)
    }
    pub fn vni_valid(&self) -> bool {
        self.flags() & FLAG_I != 0
    }
    /// The 24-bit VXLAN network identifier.
    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VNI) >> 8
    }
    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        clamp(b, HEADER_LEN, b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// The flags byte (the three reserved bytes after it are zeroed).
    pub fn set_flags(&mut self, v: u8) {
        put(self.buffer.as_mut(), field::FLAGS, [v, 0, 0, 0]);
    }
    /// The 24-bit VNI (the reserved byte after it is zeroed).
    pub fn set_vni(&mut self, v: u32) {
        put(self.buffer.as_mut(), field::VNI, (v << 8).to_be_bytes());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let b = self.buffer.as_mut();
        let len = b.len();
        clamp_mut(b, HEADER_LEN, len)
    }
}

/// A VXLAN header as values (the reserved fields are zero).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct VxlanRepr {
    /// [`FLAG_I`] and any other flag bits.
    pub flags: u8,
    /// 24 bits.
    pub vni: u32,
}

impl VxlanRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &VxlanPacket<T>) -> Result<VxlanRepr> {
        p.check_len()?;
        Ok(VxlanRepr {
            flags: p.flags(),
            vni: p.vni(),
        })
    }

    #[inline]
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus an inner frame of `payload_len` bytes.
    #[inline]
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut VxlanPacket<T>) {
        p.set_flags(self.flags);
        p.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_errors() {
        let h = [0x08, 0, 0, 0, 0x00, 0x12, 0x34, 0x00, 0xaa];
        let p = VxlanPacket::new_checked(&h[..]).unwrap();
        assert_eq!((p.flags(), p.vni_valid(), p.vni()), (0x08, true, 0x1234));
        assert_eq!(p.payload(), &[0xaa]);
        assert_eq!(
            VxlanPacket::new_checked(&h[..7]).unwrap_err(),
            Error::Truncated
        );
        let mut g = h;
        g[0] = 0;
        assert_eq!(
            VxlanPacket::new_checked(&g[..]).unwrap_err(),
            Error::Malformed
        );
        g[0] = 0x88; // GBP-style extra flag: accepted
        assert!(VxlanPacket::new_checked(&g[..]).is_ok());
    }
}
