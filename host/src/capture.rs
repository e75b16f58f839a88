//! Reading packet captures (pcap and pcapng) as the Ethernet frames a NIC would receive.
//!
//! [`CaptureReader`] opens a classic pcap file (either byte order, micro- or nanosecond
//! timestamps) or a pcapng file (any number of sections and interfaces), detected by the magic
//! number, and yields one [`Frame`] per packet record, numbered from 1 in file order like
//! Wireshark's `frame.number`.
//!
//! # Link types and conversion to Ethernet
//!
//! The split decision works on Ethernet frames, so every record is converted to the Ethernet II
//! frame a NIC on the same link would have received. The per-record link type comes from the
//! pcap file header, or for pcapng from the Interface Description Block the packet names (a
//! pcapng file can mix link types).
//!
//! | link type | value | conversion | offset shift |
//! |---|---|---|---|
//! | Ethernet | 1 | none: the record is the frame | 0 |
//! | raw IP | 101 (also 12, 14) | prepend a 14-byte Ethernet header: dst [`NIC_MAC`], src [`PEER_MAC`], ethertype 0x86DD if the IP version nibble is 6, else 0x0800 | +14 |
//! | raw IPv4 / IPv6 | 228 / 229 | as raw IP, ethertype 0x0800 / 0x86DD | +14 |
//! | Linux cooked (SLL) | 113 | replace the 16-byte SLL header by an Ethernet header: dst [`NIC_MAC`], src = first 6 bytes of the SLL address (zero-filled when shorter), ethertype = SLL protocol field | -2 |
//! | Linux cooked v2 (SLL2) | 276 | likewise for the 20-byte SLL2 header | -6 |
//!
//! The *offset shift* is what must be added to an offset in the original record (e.g. one that
//! tshark reports) to get the offset in the converted frame. All offsets `splitrx` reports are
//! of the converted frame.
//!
//! Notes on the conversion:
//! - For raw IP a version nibble other than 4 or 6 still gets ethertype 0x0800, so the split
//!   decision reports the bad IP version (malformed) instead of calling the frame non-IP.
//! - The SLL protocol field is copied even when it is not an ethertype (values < 0x0600 such as
//!   0x0004 for 802.2 LLC); such frames classify as non-IP, as they would on the wire.
//! - A record whose captured bytes end inside the SLL/SLL2 header becomes an empty frame
//!   (`caplen` 0): nothing beyond the link header was captured.
//!
//! # Truncated records (snaplen)
//!
//! A record with captured length < original length is what the NIC "saw" only up to the
//! captured length: the frame is the captured bytes, and [`Frame::len`] keeps the original
//! length for reporting. The IP length fields then usually claim more bytes than the frame has,
//! so the split decision calls it malformed (`ip length exceeds frame`) rather than reading
//! past the end.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::PcapNgReader;
use pcap_file::{Endianness, PcapError};

/// The destination MAC of converted frames: the receiving NIC (locally administered).
pub const NIC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// The source MAC of frames converted from raw IP (locally administered).
pub const PEER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

/// Length of the Ethernet II header prepended by conversion.
pub const ETH_HDR_LEN: usize = 14;
/// Length of the Linux cooked-mode (SLL) header.
pub const SLL_HDR_LEN: usize = 16;
/// Length of the Linux cooked-mode v2 (SLL2) header.
pub const SLL2_HDR_LEN: usize = 20;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Largest pcap record accepted (bytes captured): libpcap's maximum snapshot length, which no
/// real capture exceeds; a bigger value means the file is corrupt. (pcap-file buffers at most
/// 8 MB: a record claiming more than that is reported as a truncated file.)
pub const MAX_RECORD_LEN: u32 = 256 * 1024;

/// The container format of a capture file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CaptureFormat {
    Pcap,
    PcapNg,
}

impl CaptureFormat {
    pub const fn as_str(self) -> &'static str {
        match self {
            CaptureFormat::Pcap => "pcap",
            CaptureFormat::PcapNg => "pcapng",
        }
    }
}

/// A link type this reader can convert to Ethernet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101; also the BSD DLT values 12 and 14): IPv4 or IPv6 by version nibble.
    RawIp,
    /// LINKTYPE_IPV4 (228).
    RawIpv4,
    /// LINKTYPE_IPV6 (229).
    RawIpv6,
    /// LINKTYPE_LINUX_SLL (113).
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
}

impl LinkType {
    /// Maps a LINKTYPE_ value (low 16 bits of the pcap link-type field) to a supported type.
    pub const fn from_linktype(v: u32) -> Option<LinkType> {
        Some(match v & 0xffff {
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            228 => LinkType::RawIpv4,
            229 => LinkType::RawIpv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// Short stable name (the `link` field of `splitrx inspect --json`).
    pub const fn as_str(self) -> &'static str {
        match self {
            LinkType::Ethernet => "ethernet",
            LinkType::RawIp => "raw_ip",
            LinkType::RawIpv4 => "raw_ipv4",
            LinkType::RawIpv6 => "raw_ipv6",
            LinkType::LinuxSll => "linux_sll",
            LinkType::LinuxSll2 => "linux_sll2",
        }
    }

    /// Offset in the converted Ethernet frame minus offset in the original record.
    pub const fn offset_shift(self) -> i32 {
        match self {
            LinkType::Ethernet => 0,
            LinkType::RawIp | LinkType::RawIpv4 | LinkType::RawIpv6 => ETH_HDR_LEN as i32,
            LinkType::LinuxSll => ETH_HDR_LEN as i32 - SLL_HDR_LEN as i32,
            LinkType::LinuxSll2 => ETH_HDR_LEN as i32 - SLL2_HDR_LEN as i32,
        }
    }
}

/// One packet record, converted to an Ethernet frame.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame {
    /// 1-based record number in the file (Wireshark's `frame.number`).
    pub number: u64,
    /// Link type of the record before conversion.
    pub link: LinkType,
    /// Original length on the wire, converted to Ethernet (what the NIC's MAC would have
    /// counted); >= `data.len()` for well-formed captures.
    pub len: u32,
    /// The converted frame: the captured bytes only.
    pub data: Vec<u8>,
}

impl Frame {
    /// Captured length of the converted frame.
    pub fn caplen(&self) -> u32 {
        self.data.len() as u32
    }
}

/// Why a capture cannot be read. Every variant is a property of the file, never a panic.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read capture: {0}")]
    Io(#[from] io::Error),
    #[error("not a pcap or pcapng file (magic {0:#010x})")]
    NotACapture(u32),
    #[error("not a pcap or pcapng file (only {0} bytes)")]
    TooShort(usize),
    #[error("truncated capture file: it ends inside record {record}")]
    Truncated { record: u64 },
    #[error("unsupported link type {linktype} ({name}){where_}")]
    UnknownLinkType {
        linktype: u32,
        name: LinkTypeName,
        where_: InterfaceNote,
    },
    #[error("corrupt capture at record {record}: {what}")]
    Corrupt { record: u64, what: String },
}

/// Display helper: the conventional name of a LINKTYPE_ value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTypeName(pub u32);

impl fmt::Display for LinkTypeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 & 0xffff {
            0 => "NULL/BSD loopback",
            1 => "ETHERNET",
            9 => "PPP",
            12 | 14 | 101 => "RAW",
            105 => "IEEE802_11",
            108 => "LOOP",
            113 => "LINUX_SLL",
            127 => "IEEE802_11_RADIOTAP",
            147..=162 => "USER",
            187 => "BLUETOOTH_HCI_H4",
            195 => "IEEE802_15_4",
            220 => "USB_LINUX_MMAPPED",
            228 => "IPV4",
            229 => "IPV6",
            276 => "LINUX_SLL2",
            _ => "unknown",
        };
        f.write_str(name)
    }
}

/// Display helper: " on pcapng interface N" or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceNote(pub Option<u32>);

impl fmt::Display for InterfaceNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(i) => write!(f, " on pcapng interface {i}"),
            None => Ok(()),
        }
    }
}

fn unknown_link(linktype: u32, interface: Option<u32>) -> CaptureError {
    CaptureError::UnknownLinkType {
        linktype: linktype & 0xffff,
        name: LinkTypeName(linktype),
        where_: InterfaceNote(interface),
    }
}

enum Inner<R: Read> {
    Pcap {
        reader: PcapReader<R>,
        link: LinkType,
    },
    /// `links`: the link type of each interface of the current section (a copy of what the
    /// reader tracks, refreshed after each SHB/IDB).
    PcapNg {
        reader: PcapNgReader<R>,
        links: Vec<u32>,
    },
}

/// The stream handed to pcap-file: the magic bytes already consumed for format detection,
/// followed by the rest of the input.
type Stream<R> = io::Chain<io::Cursor<[u8; 4]>, R>;

/// Streams the frames of a pcap or pcapng capture.
pub struct CaptureReader<R: Read = BufReader<File>> {
    inner: Inner<Stream<R>>,
    format: CaptureFormat,
    /// Number of records returned so far.
    records: u64,
    /// Set after an error: the stream position is unknown, so reading stops.
    failed: bool,
}

impl<R: Read> fmt::Debug for CaptureReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.format)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl CaptureReader<BufReader<File>> {
    /// Opens a capture file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let file = File::open(path.as_ref())?;
        CaptureReader::new(BufReader::new(file))
    }
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
fn read_up_to<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> CaptureReader<R> {
    /// Wraps any byte stream holding a capture; the format is detected from the magic number.
    pub fn new(mut reader: R) -> Result<Self, CaptureError> {
        let mut magic = [0u8; 4];
        let got = read_up_to(&mut reader, &mut magic)?;
        if got < magic.len() {
            return Err(CaptureError::TooShort(got));
        }
        let be = u32::from_be_bytes(magic);
        let format = match be {
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => CaptureFormat::Pcap,
            0x0a0d_0d0a => CaptureFormat::PcapNg,
            _ => return Err(CaptureError::NotACapture(be)),
        };
        let stream = io::Cursor::new(magic).chain(reader);
        let header_err = |e: PcapError| match e {
            PcapError::IoError(ref io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                CaptureError::Truncated { record: 0 }
            }
            PcapError::IoError(io) => CaptureError::Io(io),
            other => CaptureError::Corrupt {
                record: 0,
                what: other.to_string(),
            },
        };
        let inner = match format {
            CaptureFormat::Pcap => {
                let reader = PcapReader::new(stream).map_err(header_err)?;
                let raw = u32::from(reader.header().datalink);
                let link = LinkType::from_linktype(raw).ok_or_else(|| unknown_link(raw, None))?;
                Inner::Pcap { reader, link }
            }
            CaptureFormat::PcapNg => Inner::PcapNg {
                reader: PcapNgReader::new(stream).map_err(header_err)?,
                links: Vec::new(),
            },
        };
        Ok(CaptureReader {
            inner,
            format,
            records: 0,
            failed: false,
        })
    }

    /// The container format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// For a pcap file, its link type; for pcapng `None` (per interface).
    pub fn pcap_link_type(&self) -> Option<LinkType> {
        match &self.inner {
            Inner::Pcap { link, .. } => Some(*link),
            Inner::PcapNg { .. } => None,
        }
    }

    fn record_err(&self, e: PcapError) -> CaptureError {
        let record = self.records + 1;
        match e {
            PcapError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                CaptureError::Truncated { record }
            }
            PcapError::IoError(io) => CaptureError::Io(io),
            PcapError::IncompleteBuffer => CaptureError::Truncated { record },
            other => CaptureError::Corrupt {
                record,
                what: other.to_string(),
            },
        }
    }

    /// Returns the next frame, `Ok(None)` at the end of the capture. After an error every
    /// further call returns `Ok(None)`.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, CaptureError> {
        if self.failed {
            return Ok(None);
        }
        let r = self.next_frame_inner();
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn next_frame_inner(&mut self) -> Result<Option<Frame>, CaptureError> {
        let record = self.records + 1;
        let (link, orig_len, data) = match &mut self.inner {
            Inner::Pcap { reader, link } => {
                let link = *link;
                match reader.next_raw_packet() {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(self.record_err(e)),
                    Some(Ok(p)) => {
                        // The raw record is not validated by pcap-file (its checked variant
                        // rejects orig_len > snaplen, which real tcpdump test files have).
                        if p.incl_len > MAX_RECORD_LEN {
                            return Err(CaptureError::Corrupt {
                                record,
                                what: format!("captured length {} is implausible", p.incl_len),
                            });
                        }
                        let data = convert(link, &p.data);
                        (link, p.orig_len, data)
                    }
                }
            }
            Inner::PcapNg { reader, links } => loop {
                // Raw blocks: pcap-file's typed blocks also decode packet options and reject a
                // whole record for, e.g., a comment that is not UTF-8 (pcapng-example has
                // one). Only the packet header fields are needed here.
                let big = reader.section().endianness == Endianness::Big;
                let block = match reader.next_raw_block() {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(self.record_err(e)),
                    Some(Ok(b)) => b,
                };
                let Some(pkt) = parse_packet_block(block.type_, &block.body, big) else {
                    if matches!(block.type_, PCAPNG_SECTION_HEADER_BLOCK | PCAPNG_IDB) {
                        links.clear();
                        links.extend(reader.interfaces().iter().map(|i| u32::from(i.linktype)));
                    }
                    continue;
                };
                let (iface, orig_len, data) = pkt.map_err(|what| CaptureError::Corrupt {
                    record,
                    what: what.into(),
                })?;
                let Some(&raw) = links.get(iface as usize) else {
                    return Err(CaptureError::Corrupt {
                        record,
                        what: format!("packet names interface {iface}, which is not described"),
                    });
                };
                let link =
                    LinkType::from_linktype(raw).ok_or_else(|| unknown_link(raw, Some(iface)))?;
                break (link, orig_len, convert(link, data));
            },
        };
        self.records = record;
        let shift = i64::from(link.offset_shift());
        let len = (i64::from(orig_len) + shift).clamp(0, i64::from(u32::MAX)) as u32;
        Ok(Some(Frame {
            number: record,
            link,
            len,
            data,
        }))
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}

const PCAPNG_SECTION_HEADER_BLOCK: u32 = 0x0a0d_0d0a;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_PACKET_BLOCK: u32 = 2;
const PCAPNG_SIMPLE_PACKET_BLOCK: u32 = 3;
const PCAPNG_ENHANCED_PACKET_BLOCK: u32 = 6;

/// A packet block's interface id, original length and captured bytes.
type PacketFields<'a> = (u32, u32, &'a [u8]);

/// Decodes the fixed fields of a pcapng packet block body (EPB, SPB or the obsolete PB);
/// `None` for other block types, `Some(Err)` when the body is inconsistent.
fn parse_packet_block(
    type_: u32,
    body: &[u8],
    big_endian: bool,
) -> Option<Result<PacketFields<'_>, &'static str>> {
    let u32_at = |off: usize| -> Option<u32> {
        let b: [u8; 4] = body.get(off..off + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let u16_at = |off: usize| -> Option<u16> {
        let b: [u8; 2] = body.get(off..off + 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    };
    let fixed = |iface: Option<u32>, caplen_at: usize, data_at: usize| {
        let (Some(iface), Some(caplen), Some(orig)) =
            (iface, u32_at(caplen_at), u32_at(caplen_at + 4))
        else {
            return Err("packet block shorter than its fixed fields");
        };
        let data = body
            .get(data_at..)
            .and_then(|d| d.get(..caplen as usize))
            .ok_or("packet block captured length exceeds the block")?;
        Ok((iface, orig, data))
    };
    Some(match type_ {
        // interface id (4), timestamp (8), captured len (4), original len (4), data.
        PCAPNG_ENHANCED_PACKET_BLOCK => fixed(u32_at(0), 12, 20),
        // interface id (2), drops (2), timestamp (8), captured len (4), original len (4), data.
        PCAPNG_PACKET_BLOCK => fixed(u16_at(0).map(u32::from), 12, 20),
        // original len (4), data padded to 32 bits: the packet is min(original len, body).
        PCAPNG_SIMPLE_PACKET_BLOCK => match u32_at(0) {
            None => Err("simple packet block without length"),
            Some(orig) => {
                let data = &body[4..];
                Ok((0, orig, &data[..data.len().min(orig as usize)]))
            }
        },
        _ => return None,
    })
}

/// Reads every frame of a capture file into memory.
pub fn read_all(path: impl AsRef<Path>) -> Result<Vec<Frame>, CaptureError> {
    CaptureReader::open(path)?.collect()
}

fn eth_header(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> [u8; ETH_HDR_LEN] {
    let mut h = [0u8; ETH_HDR_LEN];
    h[..6].copy_from_slice(&dst);
    h[6..12].copy_from_slice(&src);
    h[12..].copy_from_slice(&ethertype.to_be_bytes());
    h
}

fn with_eth_header(header: [u8; ETH_HDR_LEN], rest: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(ETH_HDR_LEN + rest.len());
    v.extend_from_slice(&header);
    v.extend_from_slice(rest);
    v
}

/// Converts one captured record of link type `link` to the Ethernet frame a NIC would
/// receive (see the module documentation for the rules).
pub fn convert(link: LinkType, rec: &[u8]) -> Vec<u8> {
    match link {
        LinkType::Ethernet => rec.to_vec(),
        LinkType::RawIp | LinkType::RawIpv4 | LinkType::RawIpv6 => {
            let ethertype = match link {
                LinkType::RawIpv4 => ETHERTYPE_IPV4,
                LinkType::RawIpv6 => ETHERTYPE_IPV6,
                _ => match rec.first().map(|b| b >> 4) {
                    Some(6) => ETHERTYPE_IPV6,
                    _ => ETHERTYPE_IPV4,
                },
            };
            with_eth_header(eth_header(NIC_MAC, PEER_MAC, ethertype), rec)
        }
        LinkType::LinuxSll => {
            // packet type (2), ARPHRD (2), address length (2), address (8), protocol (2).
            let Some(hdr) = rec.get(..SLL_HDR_LEN) else {
                return Vec::new();
            };
            let addr_len = usize::from(u16::from_be_bytes([hdr[4], hdr[5]]));
            let src = mac_from_addr(&hdr[6..14], addr_len);
            let proto = u16::from_be_bytes([hdr[14], hdr[15]]);
            with_eth_header(eth_header(NIC_MAC, src, proto), &rec[SLL_HDR_LEN..])
        }
        LinkType::LinuxSll2 => {
            // protocol (2), reserved (2), ifindex (4), ARPHRD (2), packet type (1),
            // address length (1), address (8).
            let Some(hdr) = rec.get(..SLL2_HDR_LEN) else {
                return Vec::new();
            };
            let proto = u16::from_be_bytes([hdr[0], hdr[1]]);
            let src = mac_from_addr(&hdr[12..20], usize::from(hdr[11]));
            with_eth_header(eth_header(NIC_MAC, src, proto), &rec[SLL2_HDR_LEN..])
        }
    }
}

/// The first 6 bytes of a link-layer address field of which `addr_len` bytes are valid;
/// missing bytes are zero.
fn mac_from_addr(addr: &[u8], addr_len: usize) -> [u8; 6] {
    let mut mac = [0u8; 6];
    let n = addr_len.min(6).min(addr.len());
    mac[..n].copy_from_slice(&addr[..n]);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_bytes(linktype: u32, records: &[(&[u8], u32)]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&0i32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&linktype.to_le_bytes());
        for (i, (data, orig)) in records.iter().enumerate() {
            v.extend_from_slice(&(i as u32).to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&orig.to_le_bytes());
            v.extend_from_slice(data);
        }
        v
    }

    fn read(bytes: Vec<u8>) -> Result<Vec<Frame>, CaptureError> {
        CaptureReader::new(io::Cursor::new(bytes))?.collect()
    }

    #[test]
    fn raw_ip_gets_ethernet_header_by_version_nibble() {
        let v4 = [0x45u8, 0, 0, 20];
        let v6 = [0x60u8, 0, 0, 0];
        let bogus = [0x75u8];
        let frames = read(pcap_bytes(
            101,
            &[(&v4, 4), (&v6, 4), (&bogus, 1), (&[], 0)],
        ))
        .unwrap();
        assert_eq!(frames.len(), 4);
        let hdr4 = eth_header(NIC_MAC, PEER_MAC, 0x0800);
        assert_eq!(frames[0].data, [&hdr4[..], &v4[..]].concat());
        assert_eq!(frames[0].len, 18);
        assert_eq!(frames[0].number, 1);
        assert_eq!(frames[0].link, LinkType::RawIp);
        assert_eq!(&frames[1].data[12..14], &[0x86, 0xdd]);
        assert_eq!(&frames[2].data[12..14], &[0x08, 0x00]);
        assert_eq!(frames[3].data, hdr4.to_vec());
        assert_eq!(frames[3].number, 4);
    }

    #[test]
    fn sll_and_sll2_become_ethernet() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0xee, 0xee, 0x08, 0x00];
        sll.extend_from_slice(&[0x45, 0xaa]);
        let f = convert(LinkType::LinuxSll, &sll);
        assert_eq!(
            f,
            [&NIC_MAC[..], &[1, 2, 3, 4, 5, 6], &[0x08, 0x00, 0x45, 0xaa]].concat()
        );
        // Address shorter than 6 bytes is zero-filled.
        sll[5] = 2;
        assert_eq!(
            &convert(LinkType::LinuxSll, &sll)[6..12],
            &[1, 2, 0, 0, 0, 0]
        );
        // Cut inside the SLL header -> empty frame.
        assert!(convert(LinkType::LinuxSll, &sll[..15]).is_empty());

        let mut sll2 = vec![
            0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 9, 8, 7, 6, 5, 4, 0xee, 0xee,
        ];
        sll2.push(0x60);
        let f = convert(LinkType::LinuxSll2, &sll2);
        assert_eq!(
            f,
            [&NIC_MAC[..], &[9, 8, 7, 6, 5, 4], &[0x86, 0xdd, 0x60]].concat()
        );
        assert!(convert(LinkType::LinuxSll2, &sll2[..19]).is_empty());
    }

    #[test]
    fn sll_len_is_shifted() {
        let rec = [0u8; 40];
        let frames = read(pcap_bytes(113, &[(&rec, 100)])).unwrap();
        assert_eq!(frames[0].len, 98);
        assert_eq!(frames[0].caplen(), 38);
    }

    #[test]
    fn bad_files_are_typed_errors() {
        assert!(matches!(
            read(b"hello world\n".to_vec()),
            Err(CaptureError::NotACapture(_))
        ));
        assert!(matches!(
            read(b"ab".to_vec()),
            Err(CaptureError::TooShort(2))
        ));
        let mut cut = pcap_bytes(1, &[(&[1u8; 60], 60), (&[2u8; 60], 60)]);
        cut.truncate(cut.len() - 10);
        let mut r = CaptureReader::new(io::Cursor::new(cut)).unwrap();
        assert_eq!(r.next_frame().unwrap().unwrap().data, vec![1u8; 60]);
        assert!(matches!(
            r.next_frame(),
            Err(CaptureError::Truncated { record: 2 })
        ));
        assert!(r.next_frame().unwrap().is_none());
        let e = read(pcap_bytes(147, &[])).unwrap_err();
        assert_eq!(e.to_string(), "unsupported link type 147 (USER)");
        // Header cut short.
        let hdr = pcap_bytes(1, &[]);
        assert!(matches!(
            read(hdr[..10].to_vec()),
            Err(CaptureError::Truncated { record: 0 })
        ));
        // A record longer than any snaplen.
        let big = vec![0u8; MAX_RECORD_LEN as usize + 1];
        let e = read(pcap_bytes(1, &[(&[0u8; 60], 60), (&big, 70_000)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "corrupt capture at record 2: captured length 262145 is implausible"
        );
    }

    #[test]
    fn big_endian_nanosecond_pcap() {
        let mut v = Vec::new();
        for x in [0xa1b2_3c4du32, 0x0002_0004, 0, 0, 65535, 1] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        for x in [7u32, 999_999_999, 3, 60] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(&[0xaa, 0xbb, 0xcc]);
        let frames = read(v).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(
            (frames[0].len, frames[0].data.clone()),
            (60, vec![0xaa, 0xbb, 0xcc])
        );
    }

    #[test]
    fn pcapng_packet_blocks() {
        // EPB, little endian: iface 2, caplen 3, orig 9, data + padding + options.
        let mut epb = Vec::new();
        for x in [2u32, 0, 0, 3, 9] {
            epb.extend_from_slice(&x.to_le_bytes());
        }
        epb.extend_from_slice(&[1, 2, 3, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            parse_packet_block(6, &epb, false),
            Some(Ok((2, 9, &[1u8, 2, 3][..])))
        );
        // Captured length past the block body.
        epb[12] = 200;
        assert!(matches!(parse_packet_block(6, &epb, false), Some(Err(_))));
        assert!(matches!(
            parse_packet_block(6, &epb[..10], false),
            Some(Err(_))
        ));
        // Obsolete PB, big endian: iface (u16) 1, drops, ts, caplen 2, orig 2.
        let mut pb = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2];
        pb.extend_from_slice(&[9, 8, 0, 0]);
        assert_eq!(
            parse_packet_block(2, &pb, true),
            Some(Ok((1, 2, &[9u8, 8][..])))
        );
        // SPB: the data is min(original length, body): padding is dropped.
        let spb = [5u8, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0];
        assert_eq!(
            parse_packet_block(3, &spb, false),
            Some(Ok((0, 5, &[1u8, 2, 3, 4, 5][..])))
        );
        assert!(matches!(
            parse_packet_block(3, &spb[..2], false),
            Some(Err(_))
        ));
        // Other blocks are skipped.
        assert_eq!(parse_packet_block(5, &spb, false), None);
    }

    proptest::proptest! {
        /// Arbitrary bytes behind a valid pcap or pcapng magic: frames or a typed error, never
        /// a panic, and the reader stops after the first error.
        #[test]
        fn arbitrary_input_never_panics(
            ng in proptest::bool::ANY,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
        ) {
            // A valid file header (pcap header, or pcapng SHB + Ethernet IDB), then garbage.
            let mut v = if ng {
                let mut v = Vec::new();
                for x in [0x0a0d_0d0au32, 28, 0x1a2b_3c4d, 1, u32::MAX, u32::MAX, 28] {
                    v.extend_from_slice(&x.to_le_bytes());
                }
                for x in [1u32, 20, 1, 0, 20] {
                    v.extend_from_slice(&x.to_le_bytes());
                }
                v
            } else {
                pcap_bytes(1, &[])
            };
            v.extend_from_slice(&body);
            let mut r = CaptureReader::new(io::Cursor::new(v)).unwrap();
            let mut n = 0;
            loop {
                match r.next_frame() {
                    Ok(Some(f)) => {
                        n += 1;
                        proptest::prop_assert_eq!(f.number, n);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        proptest::prop_assert!(r.next_frame().unwrap().is_none());
                        break;
                    }
                }
            }
        }
    }
}
