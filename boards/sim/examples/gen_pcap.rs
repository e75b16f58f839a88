//! Writes synthetic frames to a pcap file, for inspection with tshark/Wireshark.
//!
//! `cargo run -p splitrx-sim --example gen_pcap -- SPEC COUNT OUT.pcap [SEED]`
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use splitrx_sim::traffic::{Generator, TrafficSpec, MAX_FRAME};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [spec, count, out, rest @ ..] = args.as_slice() else {
        eprintln!("usage: gen_pcap SPEC COUNT OUT.pcap [SEED]");
        std::process::exit(2);
    };
    let spec: TrafficSpec = spec.parse()?;
    let count: u64 = count.parse()?;
    let seed: u64 = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        snaplen: MAX_FRAME as u32,
        ..Default::default()
    };
    let mut w = PcapWriter::with_header(std::fs::File::create(out)?, header)?;
    let mut g = Generator::new(&spec, seed);
    let mut buf = Vec::new();
    for i in 0..count {
        g.next_into(&mut buf);
        let ts = Duration::from_micros(i);
        w.write_packet(&PcapPacket::new(ts, buf.len() as u32, &buf))?;
    }
    Ok(())
}
