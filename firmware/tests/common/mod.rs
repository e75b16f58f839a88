//! Shared helpers of the firmware integration tests: the capture loader of the wire tests
//! (`shared/tests/wire_support`, which reads pcap and pcapng by hand because the typed parsers
//! reject some of the real files), re-exported with a firmware-friendly shape.
#![allow(dead_code)]

#[path = "../../../shared/tests/wire_support/mod.rs"]
mod wire_support;

/// All Ethernet frames of all captures, with their file names.
pub fn all_frames() -> Vec<(String, Vec<u8>)> {
    wire_support::all_ethernet_frames()
        .into_iter()
        .map(|f| (f.file, f.data))
        .collect()
}

/// The Ethernet frames of one capture.
pub fn frames_of(name: &str) -> Vec<Vec<u8>> {
    wire_support::frames_of(name)
        .into_iter()
        .map(|f| f.data)
        .collect()
}
