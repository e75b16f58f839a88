//! Reading packet captures (pcap and pcapng) as the Ethernet frames a NIC would receive.
//!
//! # Parser crate: `pcap-parser` (rusticata), not `pcap-file`
//!
//! This reader used `pcap-file` 2.0.0, which rejects every valid pcapng whose Interface
//! Description Block carries the `if_tzone` option (it requires option length 1, then reads 4
//! bytes; issue 9, defect 6). No fixed release exists: the latest, 3.0.0-rc1, has the same
//! code, and a patched fork cannot be used here. `pcap-parser` 0.17 (MIT OR Apache-2.0,
//! maintained by the rusticata project) decodes options generically and only on request, so
//! an option it does not interpret cannot reject a file. It decodes the pcap file header and
//! records and every pcapng block; this module frames the input itself (reads exactly one
//! record or block, checking lengths first) and hands each complete record or block to it.
//! Its own streaming readers are not used because they report a block that is inconsistent
//! with its length as "need more data", i.e. as a truncated file, and need a buffer as big as
//! the largest block.
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
//! # pcapng interfaces of an unsupported link type
//!
//! Their packet records are skipped, not an error: the frames of the other interfaces are
//! returned, and [`CaptureReader::skipped`] lists each skipped interface (section, interface
//! number, link type, reason, record count). Skipped records keep their place in the
//! numbering, so [`Frame::number`] stays Wireshark's frame number. A classic pcap file has one
//! link type: an unsupported one is still an error when the file is opened.
//!
//! # Captured length > original length
//!
//! Returned as libpcap returns it: all captured bytes, the original length as recorded, and
//! counted in [`CaptureReader::caplen_exceeds_len`]. libpcap's `pcap_next_packet`
//! (`sf-pcap.c`) only bounds the captured length by the snapshot length and passes
//! caplen > len through (it swaps the two only for files of an old Linux format whose
//! headers may have them swapped); tcpdump (`print.c`, `pretty_print_packet`) prints such a
//! record as `[Invalid header: len(L) < caplen(C)]` without dissecting it.
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

use pcap_parser::pcapng::{parse_block_be, parse_block_le, Block};
use pcap_parser::{parse_pcap_frame, parse_pcap_frame_be, parse_pcap_header};
use serde::Serialize;

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

/// Largest packet record accepted (bytes captured): libpcap's maximum snapshot length, which
/// no real capture exceeds; a bigger value means the file is corrupt.
pub const MAX_RECORD_LEN: u32 = 256 * 1024;

/// Largest pcapng block accepted (any block type: a packet block of [`MAX_RECORD_LEN`] bytes
/// plus options, or e.g. a large name-resolution or decryption-secrets block). Blocks are read
/// incrementally, so a corrupt length costs no allocation beyond what the file holds.
pub const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;
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

/// A pcapng interface whose packet records were read but not returned as frames.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedInterface {
    /// Section of the file (0-based; most files have one).
    pub section: u32,
    /// Interface number within the section (what its packet blocks name).
    pub interface: u32,
    /// The interface's LINKTYPE_ value.
    pub linktype: u32,
    /// Why its records were skipped, e.g. `unsupported link type 147 (USER)`.
    pub reason: String,
    /// How many packet records of this interface were skipped.
    pub records: u64,
}

/// Per interface of the current pcapng section: its link type, or why its records are skipped.
type Interface = Result<LinkType, u32>;

enum Format {
    Pcap {
        big_endian: bool,
        link: LinkType,
    },
    /// `sections`: Section Header Blocks seen (the current section is `sections - 1`);
    /// `interfaces`: the Interface Description Blocks of the current section, in order.
    PcapNg {
        big_endian: bool,
        sections: u32,
        interfaces: Vec<Interface>,
    },
}

/// Streams the frames of a pcap or pcapng capture.
pub struct CaptureReader<R: Read = BufReader<File>> {
    reader: R,
    inner: Format,
    /// Packet records read so far (returned as frames or skipped).
    records: u64,
    /// Set after an error: the stream position is unknown, so reading stops.
    failed: bool,
    skipped: Vec<SkippedInterface>,
    caplen_exceeds_len: u64,
}

impl<R: Read> fmt::Debug for CaptureReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("format", &self.format())
            .field("records", &self.records)
            .field("skipped", &self.skipped)
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

/// Appends `n` more bytes of `r` to `buf`, reading incrementally (a corrupt length costs no
/// allocation beyond what the input holds); `false` if the input ends first.
fn read_more<R: Read>(r: &mut R, buf: &mut Vec<u8>, n: u32) -> io::Result<bool> {
    let want = buf.len() + n as usize;
    r.take(u64::from(n)).read_to_end(buf)?;
    Ok(buf.len() == want)
}

fn u32_in(b: [u8; 4], big_endian: bool) -> u32 {
    if big_endian {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

fn corrupt(record: u64, what: impl Into<String>) -> CaptureError {
    CaptureError::Corrupt {
        record,
        what: what.into(),
    }
}

const PCAPNG_SECTION_HEADER_BLOCK: u32 = 0x0a0d_0d0a;
const PCAPNG_PACKET_BLOCK: u32 = 2;
const PCAPNG_BYTE_ORDER_MAGIC: [u8; 4] = [0x1a, 0x2b, 0x3c, 0x4d];

/// One packet record: interface (pcapng), captured length and original length as recorded,
/// captured bytes.
struct Record<'a> {
    interface: u32,
    caplen: u32,
    orig_len: u32,
    data: &'a [u8],
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
        let inner = match be {
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
                let mut hdr = magic.to_vec();
                if !read_more(&mut reader, &mut hdr, 20)? {
                    return Err(CaptureError::Truncated { record: 0 });
                }
                let (_, h) = parse_pcap_header(&hdr)
                    .map_err(|_| corrupt(0, "undecodable pcap file header"))?;
                let raw = h.network.0 as u32;
                let link = LinkType::from_linktype(raw).ok_or_else(|| unknown_link(raw, None))?;
                Format::Pcap {
                    big_endian: h.is_bigendian(),
                    link,
                }
            }
            PCAPNG_SECTION_HEADER_BLOCK => Format::PcapNg {
                big_endian: false,
                sections: 0,
                interfaces: Vec::new(),
            },
            _ => return Err(CaptureError::NotACapture(be)),
        };
        let mut r = CaptureReader {
            reader,
            inner,
            records: 0,
            failed: false,
            skipped: Vec::new(),
            caplen_exceeds_len: 0,
        };
        if matches!(r.inner, Format::PcapNg { .. }) {
            // The Section Header Block is the file header: read and check it now.
            let shb = r
                .read_block(Some(magic), 0)?
                .ok_or(CaptureError::Truncated { record: 0 })?;
            r.decode_block(&shb, 0)?;
        }
        Ok(r)
    }

    /// The container format.
    pub fn format(&self) -> CaptureFormat {
        match self.inner {
            Format::Pcap { .. } => CaptureFormat::Pcap,
            Format::PcapNg { .. } => CaptureFormat::PcapNg,
        }
    }

    /// For a pcap file, its link type; for pcapng `None` (per interface).
    pub fn pcap_link_type(&self) -> Option<LinkType> {
        match &self.inner {
            Format::Pcap { link, .. } => Some(*link),
            Format::PcapNg { .. } => None,
        }
    }

    /// The pcapng interfaces whose packet records were skipped so far (an unsupported link
    /// type), in the order first met, each with its record count. Their records still count
    /// in [`Frame::number`], so frame numbers stay Wireshark's.
    pub fn skipped(&self) -> &[SkippedInterface] {
        &self.skipped
    }

    /// Total packet records skipped so far.
    pub fn skipped_records(&self) -> u64 {
        self.skipped.iter().map(|s| s.records).sum()
    }

    /// Records read so far whose captured length exceeds their original length (returned as
    /// libpcap returns them: all captured bytes, the original length as recorded).
    pub fn caplen_exceeds_len(&self) -> u64 {
        self.caplen_exceeds_len
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
        loop {
            let record = self.records + 1;
            let (link, orig_len, data) = match self.inner {
                Format::Pcap { big_endian, link } => {
                    let Some(rec) = self.read_pcap_record(record, big_endian)? else {
                        return Ok(None);
                    };
                    let (_, p) = if big_endian {
                        parse_pcap_frame_be(&rec)
                    } else {
                        parse_pcap_frame(&rec)
                    }
                    .map_err(|_| corrupt(record, "undecodable record"))?;
                    self.count_lengths(p.caplen, p.origlen);
                    (Ok(link), p.origlen, convert(link, p.data))
                }
                Format::PcapNg { .. } => {
                    let Some(block) = self.read_block(None, record)? else {
                        return Ok(None);
                    };
                    let Some(p) = self.decode_block(&block, record)? else {
                        continue;
                    };
                    self.count_lengths(p.caplen, p.orig_len);
                    match self.interface(p.interface, record)? {
                        Ok(link) => (Ok(link), p.orig_len, convert(link, p.data)),
                        Err(raw) => (Err((p.interface, raw)), 0, Vec::new()),
                    }
                }
            };
            self.records = record;
            let link = match link {
                Ok(link) => link,
                Err((interface, raw)) => {
                    self.skip(interface, raw);
                    continue;
                }
            };
            let shift = i64::from(link.offset_shift());
            let len = (i64::from(orig_len) + shift).clamp(0, i64::from(u32::MAX)) as u32;
            return Ok(Some(Frame {
                number: record,
                link,
                len,
                data,
            }));
        }
    }

    fn count_lengths(&mut self, caplen: u32, orig_len: u32) {
        if caplen > orig_len {
            self.caplen_exceeds_len += 1;
        }
    }

    /// The link type of pcapng interface `iface` of the current section, or `Err(linktype)`
    /// for an unsupported one.
    fn interface(&self, iface: u32, record: u64) -> Result<Interface, CaptureError> {
        let Format::PcapNg { interfaces, .. } = &self.inner else {
            unreachable!("pcapng only");
        };
        interfaces.get(iface as usize).copied().ok_or_else(|| {
            corrupt(
                record,
                format!("packet names interface {iface}, which is not described"),
            )
        })
    }

    fn skip(&mut self, interface: u32, linktype: u32) {
        let Format::PcapNg { sections, .. } = self.inner else {
            unreachable!("pcapng only");
        };
        let section = sections.saturating_sub(1);
        let at = |s: &SkippedInterface| s.section == section && s.interface == interface;
        match self.skipped.iter_mut().find(|s| at(s)) {
            Some(s) => s.records += 1,
            None => self.skipped.push(SkippedInterface {
                section,
                interface,
                linktype: linktype & 0xffff,
                reason: unknown_link(linktype, None).to_string(),
                records: 1,
            }),
        }
    }

    /// Reads one pcap record (16-byte header and captured bytes); `None` at a clean end.
    fn read_pcap_record(
        &mut self,
        record: u64,
        big_endian: bool,
    ) -> Result<Option<Vec<u8>>, CaptureError> {
        let mut rec = Vec::with_capacity(16);
        if !read_more(&mut self.reader, &mut rec, 16)? {
            return match rec.len() {
                0 => Ok(None),
                _ => Err(CaptureError::Truncated { record }),
            };
        }
        let caplen = u32_in(rec[8..12].try_into().expect("4 bytes"), big_endian);
        if caplen > MAX_RECORD_LEN {
            return Err(corrupt(
                record,
                format!("captured length {caplen} is implausible"),
            ));
        }
        if !read_more(&mut self.reader, &mut rec, caplen)? {
            return Err(CaptureError::Truncated { record });
        }
        Ok(Some(rec))
    }

    /// Reads one whole pcapng block (`first`: its first 4 bytes, already read); `None` at a
    /// clean end. A Section Header Block sets the byte order for what follows.
    fn read_block(
        &mut self,
        first: Option<[u8; 4]>,
        record: u64,
    ) -> Result<Option<Vec<u8>>, CaptureError> {
        let Format::PcapNg { big_endian, .. } = &mut self.inner else {
            unreachable!("pcapng only");
        };
        let mut block = Vec::with_capacity(12);
        block.extend_from_slice(first.as_ref().map_or(&[][..], |f| &f[..]));
        let missing = 8 - block.len() as u32;
        if !read_more(&mut self.reader, &mut block, missing)? {
            return match block.len() {
                0 => Ok(None),
                _ => Err(CaptureError::Truncated { record }),
            };
        }
        let word = |b: &[u8], at: usize| -> [u8; 4] { b[at..at + 4].try_into().expect("4 bytes") };
        if u32::from_le_bytes(word(&block, 0)) == PCAPNG_SECTION_HEADER_BLOCK {
            if !read_more(&mut self.reader, &mut block, 4)? {
                return Err(CaptureError::Truncated { record });
            }
            *big_endian = match word(&block, 8) {
                PCAPNG_BYTE_ORDER_MAGIC => true,
                m if u32::from_le_bytes(m) == 0x1a2b_3c4d => false,
                _ => {
                    return Err(corrupt(
                        record,
                        "section header with a bad byte-order magic",
                    ))
                }
            };
        }
        let len = u32_in(word(&block, 4), *big_endian);
        if len < 12 || !len.is_multiple_of(4) {
            return Err(corrupt(record, format!("invalid block length {len}")));
        }
        if len > MAX_BLOCK_LEN {
            return Err(corrupt(
                record,
                format!("block length {len} is implausible"),
            ));
        }
        let missing = len - block.len() as u32;
        if !read_more(&mut self.reader, &mut block, missing)? {
            return Err(CaptureError::Truncated { record });
        }
        Ok(Some(block))
    }

    /// Decodes a whole pcapng block: tracks sections and interfaces, and returns the packet
    /// record of a packet block (`None` for other blocks).
    fn decode_block<'b>(
        &mut self,
        block: &'b [u8],
        record: u64,
    ) -> Result<Option<Record<'b>>, CaptureError> {
        let Format::PcapNg {
            big_endian,
            sections,
            interfaces,
        } = &mut self.inner
        else {
            unreachable!("pcapng only");
        };
        let type_ = u32_in(block[..4].try_into().expect("4 bytes"), *big_endian);
        let malformed = || corrupt(record, format!("malformed pcapng block of type {type_:#x}"));
        let parsed = if *big_endian {
            parse_block_be(block)
        } else {
            parse_block_le(block)
        };
        let Ok((_, parsed)) = parsed else {
            return Err(malformed());
        };
        let rec = match parsed {
            Block::SectionHeader(_) => {
                *sections = sections.saturating_add(1);
                interfaces.clear();
                return Ok(None);
            }
            Block::InterfaceDescription(idb) => {
                let raw = u32::from(idb.linktype.0 as u16);
                interfaces.push(LinkType::from_linktype(raw).ok_or(raw));
                return Ok(None);
            }
            // `data` is the captured bytes plus padding to 32 bits.
            Block::EnhancedPacket(epb) => Record {
                interface: epb.if_id,
                caplen: epb.caplen,
                orig_len: epb.origlen,
                data: &epb.data[..epb.data.len().min(epb.caplen as usize)],
            },
            // The packet is min(original length, block body): the body is padded.
            Block::SimplePacket(spb) => {
                let data = &spb.data[..spb.data.len().min(spb.origlen as usize)];
                Record {
                    interface: 0,
                    caplen: data.len() as u32,
                    orig_len: spb.origlen,
                    data,
                }
            }
            // The obsolete Packet Block, which pcap-parser leaves undecoded.
            Block::Unknown(u) if u.block_type == PCAPNG_PACKET_BLOCK => {
                parse_obsolete_packet_block(u.data, *big_endian).ok_or_else(malformed)?
            }
            _ => return Ok(None),
        };
        if rec.caplen > MAX_RECORD_LEN {
            return Err(corrupt(
                record,
                format!("captured length {} is implausible", rec.caplen),
            ));
        }
        Ok(Some(rec))
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<Frame, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_frame().transpose()
    }
}

/// Decodes the body of an obsolete pcapng Packet Block (type 2): interface id (2), drops (2),
/// timestamp (8), captured len (4), original len (4), data; `None` when inconsistent.
fn parse_obsolete_packet_block(body: &[u8], big_endian: bool) -> Option<Record<'_>> {
    let u32_at = |off: usize| Some(u32_in(body.get(off..off + 4)?.try_into().ok()?, big_endian));
    let iface: [u8; 2] = body.get(..2)?.try_into().ok()?;
    let interface = u32::from(if big_endian {
        u16::from_be_bytes(iface)
    } else {
        u16::from_le_bytes(iface)
    });
    let (caplen, orig_len) = (u32_at(12)?, u32_at(16)?);
    let data = body.get(20..)?.get(..caplen as usize)?;
    Some(Record {
        interface,
        caplen,
        orig_len,
        data,
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

    /// A pcapng block (little endian): type, length, body, length.
    fn ng_block(type_: u32, body: &[u8]) -> Vec<u8> {
        let len = (12 + body.len()) as u32;
        let mut v = type_.to_le_bytes().to_vec();
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(body);
        v.extend_from_slice(&len.to_le_bytes());
        v
    }

    /// A little-endian Section Header Block without options.
    fn shb() -> Vec<u8> {
        let mut body = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        body.extend_from_slice(&[1, 0, 0, 0]);
        body.extend_from_slice(&u64::MAX.to_le_bytes());
        ng_block(0x0a0d_0d0a, &body)
    }

    /// An Interface Description Block with the given options (already encoded).
    fn idb(linktype: u16, options: &[u8]) -> Vec<u8> {
        let mut body = linktype.to_le_bytes().to_vec();
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(options);
        ng_block(1, &body)
    }

    /// An Enhanced Packet Block: interface, captured bytes (padded), original length.
    fn epb(iface: u32, data: &[u8], orig: u32) -> Vec<u8> {
        let mut body = Vec::new();
        for x in [iface, 0, 0, data.len() as u32, orig] {
            body.extend_from_slice(&x.to_le_bytes());
        }
        body.extend_from_slice(data);
        body.resize(body.len().next_multiple_of(4), 0);
        ng_block(6, &body)
    }

    #[test]
    fn pcapng_interface_with_if_tzone_option() {
        // if_tzone (code 10, 4 bytes), if_tsresol (code 9, 1 byte + padding), opt_endofopt.
        // pcap-file 2.0 rejected this valid file as "truncated capture file".
        let mut opts = Vec::new();
        opts.extend_from_slice(&[10, 0, 4, 0, 0x10, 0x0e, 0, 0]);
        opts.extend_from_slice(&[9, 0, 1, 0, 6, 0, 0, 0]);
        opts.extend_from_slice(&[0, 0, 0, 0]);
        let mut v = shb();
        v.extend(idb(1, &opts));
        v.extend(epb(0, &[0xaa; 60], 60));
        v.extend(epb(0, &[0xbb; 61], 61));
        let frames = read(v).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(
            (frames[1].number, frames[1].len, frames[1].data.clone()),
            (2, 61, vec![0xbb; 61])
        );
    }

    #[test]
    fn pcapng_unsupported_interface_is_skipped_and_reported() {
        let mut v = shb();
        v.extend(idb(1, &[])); // interface 0: Ethernet
        v.extend(idb(147, &[])); // interface 1: USER0
        v.extend(epb(0, &[1; 60], 60));
        v.extend(epb(1, &[2; 10], 10));
        v.extend(epb(1, &[3; 10], 10));
        v.extend(epb(0, &[4; 60], 60));
        // A second section whose interface 1 is Ethernet and interface 0 is 802.11.
        v.extend(shb());
        v.extend(idb(105, &[]));
        v.extend(idb(1, &[]));
        v.extend(epb(0, &[5; 30], 30));
        v.extend(epb(1, &[6; 60], 60));
        let mut r = CaptureReader::new(io::Cursor::new(v)).unwrap();
        let frames: Vec<Frame> = r.by_ref().collect::<Result<_, _>>().unwrap();
        // Skipped records keep their numbers (Wireshark's frame numbers).
        let got: Vec<(u64, u8)> = frames.iter().map(|f| (f.number, f.data[0])).collect();
        assert_eq!(got, [(1, 1), (4, 4), (6, 6)]);
        assert_eq!(
            r.skipped(),
            [
                SkippedInterface {
                    section: 0,
                    interface: 1,
                    linktype: 147,
                    reason: "unsupported link type 147 (USER)".into(),
                    records: 2,
                },
                SkippedInterface {
                    section: 1,
                    interface: 0,
                    linktype: 105,
                    reason: "unsupported link type 105 (IEEE802_11)".into(),
                    records: 1,
                },
            ]
        );
        assert_eq!(r.skipped_records(), 3);
        // An empty first section still counts: the skipped interface is in section 1.
        let mut v = shb();
        v.extend(shb());
        v.extend(idb(147, &[]));
        v.extend(epb(0, &[0; 10], 10));
        let mut r = CaptureReader::new(io::Cursor::new(v)).unwrap();
        assert_eq!(r.by_ref().count(), 0);
        assert_eq!((r.skipped()[0].section, r.skipped()[0].records), (1, 1));
        // A packet naming an interface that is not described is still an error.
        let mut v = shb();
        v.extend(idb(1, &[]));
        v.extend(epb(1, &[0; 60], 60));
        let e = read(v).unwrap_err();
        assert_eq!(
            e.to_string(),
            "corrupt capture at record 1: packet names interface 1, which is not described"
        );
    }

    #[test]
    fn caplen_over_len_is_kept_and_counted() {
        // pcap: caplen 60 > len 50, then a normal record. Like libpcap, all captured bytes
        // are returned and the original length is kept as recorded.
        let mut r = CaptureReader::new(io::Cursor::new(pcap_bytes(
            1,
            &[(&[7u8; 60], 50), (&[8u8; 60], 60)],
        )))
        .unwrap();
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.caplen(), f.len), (60, 50));
        assert_eq!(r.by_ref().count(), 1);
        assert_eq!(r.caplen_exceeds_len(), 1);
        // pcapng EPB, raw IP: caplen 8 > len 4 (len is shifted like the frame).
        let mut v = shb();
        v.extend(idb(101, &[]));
        v.extend(epb(0, &[0x45; 8], 4));
        v.extend(epb(0, &[0x45; 8], 8));
        v.extend(epb(0, &[0x45; 8], 9));
        let mut r = CaptureReader::new(io::Cursor::new(v)).unwrap();
        let frames: Vec<Frame> = r.by_ref().collect::<Result<_, _>>().unwrap();
        assert_eq!((frames[0].caplen(), frames[0].len), (22, 18));
        assert_eq!(r.caplen_exceeds_len(), 1);
    }

    #[test]
    fn pcapng_block_errors() {
        // A packet block whose captured length runs past the block: corrupt, not truncated.
        let mut v = shb();
        v.extend(idb(1, &[]));
        let mut bad = epb(0, &[0; 8], 8);
        bad[20] = 200;
        v.extend(bad);
        assert!(matches!(
            read(v),
            Err(CaptureError::Corrupt { record: 1, .. })
        ));
        // A block cut by the end of the file: truncated.
        let mut v = shb();
        v.extend(idb(1, &[]));
        v.extend(epb(0, &[0; 60], 60));
        v.truncate(v.len() - 5);
        assert!(matches!(
            read(v),
            Err(CaptureError::Truncated { record: 1 })
        ));
        // Section header cut short, or with a bad byte-order magic: file header errors.
        assert!(matches!(
            read(shb()[..20].to_vec()),
            Err(CaptureError::Truncated { record: 0 })
        ));
        let mut v = shb();
        v[8] = 0x77;
        assert!(matches!(
            read(v),
            Err(CaptureError::Corrupt { record: 0, .. })
        ));
        // Obsolete Packet Block, big endian: iface (u16) 1, drops, ts, caplen 2, orig 2.
        let mut pb = vec![0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2];
        pb.extend_from_slice(&[9, 8, 0, 0]);
        let r = parse_obsolete_packet_block(&pb, true).unwrap();
        assert_eq!(
            (r.interface, r.caplen, r.orig_len, r.data),
            (1, 2, 2, &[9u8, 8][..])
        );
        pb[15] = 5;
        assert!(parse_obsolete_packet_block(&pb, true).is_none());
        assert!(parse_obsolete_packet_block(&pb[..10], true).is_none());
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
            let mut last = 0;
            loop {
                match r.next_frame() {
                    Ok(Some(f)) => {
                        // Increasing; gaps are records of skipped interfaces.
                        proptest::prop_assert!(f.number > last);
                        last = f.number;
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
