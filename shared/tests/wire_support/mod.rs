//! Loads the Ethernet frames of the capture files in `testdata/captures/` (shared by the wire
//! tests and the `parse` bench). Non-Ethernet link types (raw IP, Linux SLL) are skipped.
#![allow(dead_code)]

use pcap_file::pcapng::PcapNgReader;
use pcap_file::Endianness;
use std::path::{Path, PathBuf};

/// One Ethernet frame of a capture.
#[derive(Clone, Debug)]
pub struct Frame {
    /// File name (no directory).
    pub file: String,
    /// 1-based frame number, as tshark counts (non-Ethernet frames count too).
    pub number: usize,
    pub data: Vec<u8>,
    /// Length on the wire (> data.len() when the capture snap-truncated it).
    pub orig_len: u32,
}

pub fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/captures")
}

/// All capture files, sorted by name.
pub fn capture_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(captures_dir())
        .expect("testdata/captures")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    v
}

/// The Ethernet frames of one file (pcap or pcapng, whatever the extension says).
pub fn ethernet_frames(path: &Path) -> Vec<Frame> {
    let bytes = std::fs::read(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut out = Vec::new();
    if bytes.get(..4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        // Raw blocks: the typed parser rejects the non-UTF-8 comments some files carry.
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let big = r.section().endianness == Endianness::Big;
        let u32_at = |b: &[u8], o: usize| {
            let v: [u8; 4] = b[o..o + 4].try_into().unwrap();
            if big {
                u32::from_be_bytes(v)
            } else {
                u32::from_le_bytes(v)
            }
        };
        let mut links: Vec<u32> = Vec::new();
        let mut number = 0;
        while let Some(b) = r.next_raw_block() {
            let b = b.unwrap();
            let body = &b.body[..];
            match b.type_ {
                // Interface description: link type (u16) then reserved (u16).
                1 => links.push(u32_at(body, 0)),
                // Enhanced packet.
                6 => {
                    number += 1;
                    let ifc = u32_at(body, 0) as usize;
                    let caplen = u32_at(body, 12) as usize;
                    let link = links.get(ifc).map(|&l| if big { l >> 16 } else { l });
                    if link == Some(1) {
                        out.push(Frame {
                            file: file.clone(),
                            number,
                            data: body[20..20 + caplen].to_vec(),
                            orig_len: u32_at(body, 16),
                        });
                    }
                }
                2 | 3 => number += 1,
                _ => {}
            }
        }
    } else {
        // Classic pcap, read by hand: pcap-file rejects records with orig_len > snaplen, which
        // the fuzzed tcpdump inputs have on purpose.
        let magic: [u8; 4] = bytes[..4].try_into().unwrap();
        let big = match magic {
            [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => true,
            [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => false,
            _ => panic!("{file}: not a capture file"),
        };
        let u32_at = |o: usize| {
            let v: [u8; 4] = bytes[o..o + 4].try_into().unwrap();
            if big {
                u32::from_be_bytes(v)
            } else {
                u32::from_le_bytes(v)
            }
        };
        let ether = u32_at(20) & 0x0fff_ffff == 1;
        let mut off = 24;
        let mut number = 0;
        while off + 16 <= bytes.len() {
            let caplen = u32_at(off + 8) as usize;
            let orig_len = u32_at(off + 12);
            let data = &bytes[off + 16..off + 16 + caplen];
            number += 1;
            if ether {
                out.push(Frame {
                    file: file.clone(),
                    number,
                    data: data.to_vec(),
                    orig_len,
                });
            }
            off += 16 + caplen;
        }
    }
    out
}

/// The Ethernet frames of every capture file.
pub fn all_ethernet_frames() -> Vec<Frame> {
    capture_files()
        .iter()
        .flat_map(|p| ethernet_frames(p))
        .collect()
}

/// The frames of the file named `name`.
pub fn frames_of(name: &str) -> Vec<Frame> {
    ethernet_frames(&captures_dir().join(name))
}
