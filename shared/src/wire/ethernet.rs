//! Ethernet II frames and 802.1Q / 802.1ad VLAN tags.
//!
//! The frame as the MAC delivers it: no preamble, no FCS. Frames with an 802.3 length field
//! (EtherType < 0x0600, LLC/SNAP) are valid frames whose `ethertype()` is that length; callers
//! treat them as "not IP".

use super::{be16, bytes, clamp, clamp_mut, put, Error, Result};

/// EtherType values the parsers act on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct EtherType;

impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    /// 802.1Q customer tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (S-tag).
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
    /// Transparent Ethernet Bridging: Geneve's "inner frame is Ethernet".
    pub const TEB: u16 = 0x6558;
    /// Values below this are 802.3 length fields, not EtherTypes.
    pub const MIN_ETHERTYPE: u16 = 0x0600;

    /// Whether `t` announces a VLAN tag (0x8100 or 0x88a8).
    #[inline]
    pub const fn is_vlan(t: u16) -> bool {
        t == Self::VLAN || t == Self::QINQ
    }
}

mod field {
    use core::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// Length of the Ethernet II header (two addresses and the EtherType).
pub const HEADER_LEN: usize = field::PAYLOAD;

/// A read-only view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// `Truncated` when the buffer is shorter than the 14-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_addr(&self) -> [u8; 6] {
        bytes(self.buffer.as_ref(), field::DESTINATION.start).unwrap_or([0; 6])
    }

    pub fn src_addr(&self) -> [u8; 6] {
        bytes(self.buffer.as_ref(), field::SOURCE.start).unwrap_or([0; 6])
    }

    /// The EtherType (or 802.3 length) right after the addresses.
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ETHERTYPE)
    }

    /// Everything after the 14-byte header (VLAN tags included, if any).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        clamp(b, HEADER_LEN, b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    pub fn set_dst_addr(&mut self, v: [u8; 6]) {
        put(self.buffer.as_mut(), field::DESTINATION.start, v);
    }
    pub fn set_src_addr(&mut self, v: [u8; 6]) {
        put(self.buffer.as_mut(), field::SOURCE.start, v);
    }
    pub fn set_ethertype(&mut self, v: u16) {
        put(self.buffer.as_mut(), field::ETHERTYPE, v.to_be_bytes());
    }
    /// Everything after the 14-byte header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let b = self.buffer.as_mut();
        let len = b.len();
        clamp_mut(b, HEADER_LEN, len)
    }
}

mod vlan_field {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
    pub const PAYLOAD: usize = 4;
}

/// Length of one VLAN tag (after the TPID, which is the previous EtherType).
pub const VLAN_TAG_LEN: usize = vlan_field::PAYLOAD;

/// A view of one 802.1Q/802.1ad tag: the 4 bytes that follow a 0x8100/0x88a8 EtherType
/// (TCI, then the next EtherType).
#[derive(Debug, Clone, Copy)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let t = Self::new_unchecked(buffer);
        t.check_len()?;
        Ok(t)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < VLAN_TAG_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn tci(&self) -> u16 {
        be16(self.buffer.as_ref(), vlan_field::TCI)
    }
    /// Priority code point (3 bits).
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }
    /// Drop eligible indicator.
    pub fn dei(&self) -> bool {
        self.tci() & 0x1000 != 0
    }
    /// VLAN identifier (12 bits).
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }
    /// The EtherType that follows the tag.
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), vlan_field::ETHERTYPE)
    }
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        clamp(b, VLAN_TAG_LEN, b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    pub fn set_tci(&mut self, v: u16) {
        put(self.buffer.as_mut(), vlan_field::TCI, v.to_be_bytes());
    }
    pub fn set_ethertype(&mut self, v: u16) {
        put(self.buffer.as_mut(), vlan_field::ETHERTYPE, v.to_be_bytes());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let b = self.buffer.as_mut();
        let len = b.len();
        clamp_mut(b, VLAN_TAG_LEN, len)
    }
}

/// Maximum number of VLAN tags [`l2_header`] steps over (802.1ad S-tag + 802.1Q C-tag).
pub const MAX_VLAN_TAGS: usize = 2;

/// The result of walking an Ethernet header and its VLAN tags.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct L2Header {
    /// The EtherType after the last tag stepped over. If the frame has more than
    /// [`MAX_VLAN_TAGS`] tags, this is the third tag's TPID (a VLAN EtherType), which callers
    /// treat as "not IP".
    pub ethertype: u16,
    /// Offset of the L3 header (14 + 4 per tag).
    pub l3_offset: usize,
    /// VLAN ids of the tags, outermost first.
    pub vids: [Option<u16>; MAX_VLAN_TAGS],
}

/// Walks the Ethernet header and up to two VLAN tags, in any TPID combination (0x88a8 then
/// 0x8100 as 802.1ad prescribes, but also 0x8100/0x8100 and the other orders real QinQ captures
/// use). `Err(Truncated)` when the frame ends inside the header or a tag.
#[inline]
pub fn l2_header(frame: &[u8]) -> Result<L2Header> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut ethertype = eth.ethertype();
    let mut off = HEADER_LEN;
    let mut vids = [None; MAX_VLAN_TAGS];
    let mut n = 0;
    while EtherType::is_vlan(ethertype) && n < MAX_VLAN_TAGS {
        let tag = match frame.get(off..) {
            Some(rest) => VlanTag::new_checked(rest)?,
            None => return Err(Error::Truncated),
        };
        vids[n] = Some(tag.vid());
        ethertype = tag.ethertype();
        off += VLAN_TAG_LEN;
        n += 1;
    }
    Ok(L2Header {
        ethertype,
        l3_offset: off,
        vids,
    })
}

/// One VLAN tag: its TPID (the EtherType that announces it: 0x8100 or 0x88a8) and its TCI.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct VlanRepr {
    pub tpid: u16,
    /// PCP (3 bits) | DEI (1) | VID (12).
    pub tci: u16,
}

impl VlanRepr {
    /// An 802.1Q C-tag with PCP 0, DEI 0 and this VLAN id.
    #[inline]
    pub const fn ctag(vid: u16) -> VlanRepr {
        VlanRepr {
            tpid: EtherType::VLAN,
            tci: vid & 0x0fff,
        }
    }
}

/// An Ethernet II header and up to [`MAX_VLAN_TAGS`] VLAN tags, as values.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct EthernetRepr {
    pub dst_addr: [u8; 6],
    pub src_addr: [u8; 6],
    /// The tags, outermost first; a `None` ends the list (tags after it are not emitted).
    pub vlans: [Option<VlanRepr>; MAX_VLAN_TAGS],
    /// The EtherType after the last tag (the payload's).
    pub ethertype: u16,
}

impl EthernetRepr {
    /// Reads the header and the tags [`l2_header`] steps over (`Truncated` when a tag is cut).
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        let mut vlans = [None; MAX_VLAN_TAGS];
        let mut ethertype = frame.ethertype();
        let mut rest = frame.payload();
        for slot in vlans.iter_mut() {
            if !EtherType::is_vlan(ethertype) {
                break;
            }
            let tag = VlanTag::new_checked(rest)?;
            *slot = Some(VlanRepr {
                tpid: ethertype,
                tci: tag.tci(),
            });
            ethertype = tag.ethertype();
            rest = clamp(rest, VLAN_TAG_LEN, rest.len());
        }
        Ok(EthernetRepr {
            dst_addr: frame.dst_addr(),
            src_addr: frame.src_addr(),
            vlans,
            ethertype,
        })
    }

    /// The tags that are emitted (those before the first `None`).
    #[inline]
    fn tags(&self) -> impl Iterator<Item = VlanRepr> + '_ {
        self.vlans.iter().map_while(|t| *t)
    }

    /// Header length: 14 bytes and 4 per tag.
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + VLAN_TAG_LEN * self.tags().count()
    }

    /// Header plus a payload of `payload_len` bytes (no minimum-frame padding).
    #[inline]
    pub fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Writes the header and the tags (the first [`header_len`](Self::header_len) bytes).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        // Each tag is (TPID, TCI) in the previous EtherType slot and the 2 bytes after it.
        let b = frame.buffer.as_mut();
        let mut off = field::ETHERTYPE;
        for t in self.tags() {
            put(b, off, t.tpid.to_be_bytes());
            put(b, off + 2, t.tci.to_be_bytes());
            off += VLAN_TAG_LEN;
        }
        put(b, off, self.ethertype.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // dst 00:11:22:33:44:55, src 66:77:88:99:aa:bb, 802.1ad S-tag vid 100 pcp 3,
    // 802.1Q C-tag vid 200, IPv4.
    static QINQ: [u8; 24] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, // addrs
        0x88, 0xa8, 0x60, 0x64, // S-tag: pcp 3, vid 100
        0x81, 0x00, 0x10, 0xc8, // C-tag: dei, vid 200
        0x08, 0x00, // IPv4
        0x45, 0x00,
    ];

    #[test]
    fn ethernet_fields() {
        let f = EthernetFrame::new_checked(&QINQ[..]).unwrap();
        assert_eq!(f.dst_addr(), [0x00, 0x11, 0x22, 0x33, 0x44, 0x55]);
        assert_eq!(f.src_addr(), [0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb]);
        assert_eq!(f.ethertype(), EtherType::QINQ);
        assert_eq!(f.payload().len(), 10);
        let t = VlanTag::new_checked(f.payload()).unwrap();
        assert_eq!(
            (t.pcp(), t.dei(), t.vid(), t.ethertype()),
            (3, false, 100, 0x8100)
        );
        let t = VlanTag::new_checked(t.payload()).unwrap();
        assert_eq!(
            (t.pcp(), t.dei(), t.vid(), t.ethertype()),
            (0, true, 200, 0x0800)
        );
    }

    #[test]
    fn qinq_walk() {
        let h = l2_header(&QINQ).unwrap();
        assert_eq!(
            h,
            L2Header {
                ethertype: 0x0800,
                l3_offset: 22,
                vids: [Some(100), Some(200)]
            }
        );
        // 0x8100 / 0x8100 and 0x8100 / 0x88a8 are walked too.
        let mut f = QINQ;
        f[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(l2_header(&f).unwrap().l3_offset, 22);
        f[16..18].copy_from_slice(&[0x88, 0xa8]);
        assert_eq!(l2_header(&f).unwrap().l3_offset, 22);
        // A third tag is not stepped over.
        f[20..22].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            l2_header(&f).unwrap(),
            L2Header {
                ethertype: 0x8100,
                l3_offset: 22,
                vids: [Some(100), Some(200)]
            }
        );
    }

    #[test]
    fn untagged_and_truncated() {
        let mut f = QINQ;
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(
            l2_header(&f[..14]).unwrap(),
            L2Header {
                ethertype: EtherType::IPV6,
                l3_offset: 14,
                vids: [None, None]
            }
        );
        // A tag announced but cut.
        assert_eq!(l2_header(&QINQ[..14]), Err(Error::Truncated));
        assert_eq!(l2_header(&QINQ[..17]), Err(Error::Truncated));
        assert_eq!(l2_header(&QINQ[..21]), Err(Error::Truncated));
        assert_eq!(l2_header(&QINQ[..13]), Err(Error::Truncated));
        assert_eq!(
            EthernetFrame::new_checked(&QINQ[..13]).unwrap_err(),
            Error::Truncated
        );
        // Accessors on a short buffer return zeros, never panic.
        let f = EthernetFrame::new_unchecked(&QINQ[..3]);
        assert_eq!(f.src_addr(), [0; 6]);
        assert_eq!(f.ethertype(), 0);
        assert_eq!(f.payload(), &[] as &[u8]);
    }
}
