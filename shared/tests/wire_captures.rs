//! The split decision and the wire parsers over the real capture files.
mod wire_support;

use splitrx_shared::split::*;
use wire_support::*;

#[test]
#[ignore]
fn dump() {
    let cfg = SplitConfig::default();
    for f in all_ethernet_frames() {
        let r = split(&f.data, &cfg);
        println!(
            "{} #{} len={} {:?}/{:?} split={} p={:?}+{:?} l3={:?} l4={:?} o={:?}v{} t={:?} roce={:?} e={:?}",
            f.file, f.number, f.data.len(), r.class, r.reason, r.split, r.payload_offset,
            r.payload_len, r.l3_offset, r.l4_offset, r.outer_l3_offset, r.outer_ip_version,
            r.tunnel, r.roce, r.error
        );
    }
}
