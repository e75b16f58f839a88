//! Shared helpers of the firmware integration tests: reading the real captures.
#![allow(dead_code)]

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::DataLink;
use std::fs::File;
use std::path::PathBuf;

pub fn captures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/captures")
}

/// Every capture file name, sorted.
pub fn capture_files() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(captures_dir())
        .expect("captures dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    v.sort();
    v
}

/// The Ethernet frames of a capture (pcap or pcapng, detected by magic); frames of other link
/// types are skipped.
pub fn ethernet_frames(name: &str) -> Vec<Vec<u8>> {
    let path = captures_dir().join(name);
    let bytes = std::fs::read(&path).expect("capture");
    let mut out = Vec::new();
    if bytes.len() >= 4 && bytes[..4] == [0x0a, 0x0d, 0x0d, 0x0a] {
        let mut r = PcapNgReader::new(File::open(&path).unwrap()).expect("pcapng");
        let mut links: Vec<DataLink> = Vec::new();
        while let Some(b) = r.next_block() {
            match b.expect("pcapng block") {
                Block::InterfaceDescription(i) => links.push(i.linktype),
                Block::EnhancedPacket(p) => {
                    if links.get(p.interface_id as usize) == Some(&DataLink::ETHERNET) {
                        out.push(p.data.into_owned());
                    }
                }
                Block::SimplePacket(p) => {
                    if links.first() == Some(&DataLink::ETHERNET) {
                        out.push(p.data.into_owned());
                    }
                }
                _ => {}
            }
        }
    } else {
        let mut r = PcapReader::new(File::open(&path).unwrap()).expect("pcap");
        if r.header().datalink != DataLink::ETHERNET {
            return out;
        }
        while let Some(p) = r.next_packet() {
            out.push(p.expect("pcap packet").data.into_owned());
        }
    }
    out
}

/// All Ethernet frames of all captures, with their file names.
pub fn all_frames() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for f in capture_files() {
        for fr in ethernet_frames(&f) {
            v.push((f.clone(), fr));
        }
    }
    v
}
