//! Geneve (RFC 8926), UDP destination port 6081: an 8-byte header, variable-length options
//! (length in 4-byte words), then the payload named by the protocol type (0x6558 = Ethernet).

use super::{be16, be32, clamp, clamp_mut, put, u8_at, Error, Result};

mod field {
    pub const VER_OPTLEN: usize = 0;
    pub const FLAGS: usize = 1;
    pub const PROTOCOL: usize = 2;
    pub const VNI: usize = 4;
    pub const OPTIONS: usize = 8;
}

/// Length of the Geneve fixed header.
pub const HEADER_LEN: usize = field::OPTIONS;

/// A read-only view of a Geneve packet (the UDP payload).
#[derive(Debug, Clone, Copy)]
pub struct GenevePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GenevePacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        GenevePacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` when shorter than 8 bytes; `Malformed` when the version is not 0 or the
    /// options run past the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 0 || self.header_len() > len {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        u8_at(self.b(), field::VER_OPTLEN) >> 6
    }
    /// Length of the options in bytes (the field counts 4-byte words).
    pub fn options_len(&self) -> usize {
        (u8_at(self.b(), field::VER_OPTLEN) & 0x3f) as usize * 4
    }
    /// Fixed header plus options.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }
    /// O bit: control (OAM) packet.
    pub fn oam(&self) -> bool {
        u8_at(self.b(), field::FLAGS) & 0x80 != 0
    }
    /// C bit: critical options present.
    pub fn critical(&self) -> bool {
        u8_at(self.b(), field::FLAGS) & 0x40 != 0
    }
    /// The EtherType of the payload (0x6558 for Ethernet).
    pub fn protocol_type(&self) -> u16 {
        be16(self.b(), field::PROTOCOL)
    }
    pub fn vni(&self) -> u32 {
        be32(self.b(), field::VNI) >> 8
    }
    pub fn options(&self) -> GeneveOptions<'_> {
        GeneveOptions {
            data: clamp(self.b(), HEADER_LEN, self.header_len()),
        }
    }
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        clamp(b, self.header_len(), b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GenevePacket<T> {
    /// Version 0 and the options length in bytes (a multiple of 4, at most 252).
    pub fn set_options_len(&mut self, len: usize) {
        put(
            self.buffer.as_mut(),
            field::VER_OPTLEN,
            [(len / 4) as u8 & 0x3f],
        );
    }
    /// The O and C bits (the 6 reserved bits are zeroed).
    pub fn set_flags(&mut self, oam: bool, critical: bool) {
        let v = (u8::from(oam) << 7) | (u8::from(critical) << 6);
        put(self.buffer.as_mut(), field::FLAGS, [v]);
    }
    pub fn set_protocol_type(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::PROTOCOL, v.to_be_bytes());
    }
    /// The 24-bit VNI (the reserved byte after it is zeroed).
    pub fn set_vni(&mut self, v: u32) {
        put(self.buffer.as_mut(), field::VNI, (v << 8).to_be_bytes());
    }
    /// The option bytes, mutably (the options length must be set first).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        clamp_mut(self.buffer.as_mut(), HEADER_LEN, hl)
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        let len = b.len();
        clamp_mut(b, hl, len)
    }
}

/// A Geneve header as values. Options are raw bytes (a multiple of 4, at most 252); the
/// reserved fields are zero.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct GeneveRepr<'a> {
    pub oam: bool,
    pub critical: bool,
    pub protocol_type: u16,
    /// 24 bits.
    pub vni: u32,
    pub options: &'a [u8],
}

impl<'a> GeneveRepr<'a> {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &'a GenevePacket<&'a T>) -> Result<GeneveRepr<'a>> {
        p.check_len()?;
        let b: &'a T = p.buffer;
        Ok(GeneveRepr {
            oam: p.oam(),
            critical: p.critical(),
            protocol_type: p.protocol_type(),
            vni: p.vni(),
            options: clamp(b.as_ref(), HEADER_LEN, p.header_len()),
        })
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    /// Header plus a payload of `payload_len` bytes.
    #[inline]
    pub fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut GenevePacket<T>) {
        p.set_options_len(self.options.len());
        p.set_flags(self.oam, self.critical);
        p.set_protocol_type(self.protocol_type);
        p.set_vni(self.vni);
        p.options_mut().copy_from_slice(self.options);
    }
}

/// One Geneve option (TLV).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GeneveOption<'a> {
    pub class: u16,
    /// Type; the high bit is the "critical" bit.
    pub kind: u8,
    pub data: &'a [u8],
}

/// Iterator over Geneve options. Yields one `Err(Malformed)` and stops when an option runs past
/// the option area. Each option is at least 4 bytes, so it terminates.
#[derive(Debug, Clone)]
pub struct GeneveOptions<'a> {
    data: &'a [u8],
}

impl<'a> Iterator for GeneveOptions<'a> {
    type Item = Result<GeneveOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let d = self.data;
        let len = 4 + (u8_at(d, 3) & 0x1f) as usize * 4;
        let Some(data) = d.get(4..len) else {
            self.data = &[];
            return Some(Err(Error::Malformed));
        };
        self.data = clamp(d, len, d.len());
        Some(Ok(GeneveOption {
            class: be16(d, 0),
            kind: u8_at(d, 2),
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Version 0, 3 words of options, O=0 C=1, Ethernet, VNI 0xabcdef; option class 0x0102
    // type 0x80 length 1 word (data 11 22 33 44), then an empty option class 0xffff type 1;
    // then 2 payload bytes.
    static GNV: [u8; 22] = [
        0x03, 0x40, 0x65, 0x58, 0xab, 0xcd, 0xef, 0x00, //
        0x01, 0x02, 0x80, 0x01, 0x11, 0x22, 0x33, 0x44, //
        0xff, 0xff, 0x01, 0x00, //
        0xee, 0xff,
    ];

    #[test]
    fn fields_and_options() {
        let p = GenevePacket::new_checked(&GNV[..]).unwrap();
        assert_eq!((p.version(), p.options_len(), p.header_len()), (0, 12, 20));
        assert!(!p.oam() && p.critical());
        assert_eq!((p.protocol_type(), p.vni()), (0x6558, 0xabcdef));
        assert_eq!(p.payload(), &[0xee, 0xff]);
        let want: [_; 2] = [
            Ok(GeneveOption {
                class: 0x0102,
                kind: 0x80,
                data: &[0x11, 0x22, 0x33, 0x44],
            }),
            Ok(GeneveOption {
                class: 0xffff,
                kind: 1,
                data: &[],
            }),
        ];
        assert!(p.options().eq(want));
    }

    #[test]
    fn errors() {
        assert_eq!(
            GenevePacket::new_checked(&GNV[..7]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            GenevePacket::new_checked(&GNV[..19]).unwrap_err(),
            Error::Malformed
        );
        let mut g = GNV;
        g[0] = 0x43; // version 1
        assert_eq!(
            GenevePacket::new_checked(&g[..]).unwrap_err(),
            Error::Malformed
        );
        // An option claiming 2 words inside a 3-word area that has 1 word left.
        g[0] = 0x03;
        g[19] = 0x02;
        let p = GenevePacket::new_checked(&g[..]).unwrap();
        let mut it = p.options();
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.next(), Some(Err(Error::Malformed)));
        assert_eq!(it.next(), None);
    }
}
