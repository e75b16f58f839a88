//! The split decision on the Cortex-M7 agrees exactly with the host's for every Ethernet frame
//! of `testdata/captures` (under each configuration in the blob), and does not depend on where
//! the frame sits in memory: endianness and alignment proven on ARM, not only compiled.
#![no_std]
#![no_main]

use splitrx_mps2_an500 as _;

use splitrx_mps2_an500::{split_agreement, tcp4_frame, Blob, SPLIT_BLOB};
use splitrx_shared::split::{split, FrameClass, NoSplitReason, SplitConfig};
use splitrx_shared::wire::{EthernetFrame, Ipv4Packet, TcpPacket};

#[defmt_test::tests]
mod tests {
    use super::*;

    #[test]
    fn every_capture_frame_agrees_with_the_host() {
        let a = split_agreement(SPLIT_BLOB).unwrap();
        let configs = Blob::parse(SPLIT_BLOB).unwrap().configs.len() as u32;
        defmt::println!(
            "split agreement: {=u32} of {=u32} decisions ({=u32} frames x {=u32} configs) equal the host's; {=u64} payload bytes split",
            a.agreed,
            a.compared,
            a.frames,
            configs,
            a.payload_bytes
        );
        defmt::assert!(a.frames > 1000, "{=u32} frames: captures missing", a.frames);
        defmt::assert_eq!(a.compared, a.frames * configs);
        defmt::assert_eq!(a.agreed, a.compared);
    }

    /// A stale or cut blob is an error, never a panic or a read past the end.
    #[test]
    fn truncated_blob_is_an_error() {
        let cut = &SPLIT_BLOB[..SPLIT_BLOB.len() - 1];
        defmt::assert!(split_agreement(cut).is_err());
        defmt::assert!(split_agreement(&SPLIT_BLOB[..20]).is_err());
        defmt::assert!(split_agreement(b"NOTABLOB").is_err());
    }

    /// A TCP/IPv4 frame parsed at every alignment: the same fields and the same decision.
    #[test]
    fn parsers_at_every_alignment() {
        let mut frame = [0u8; 14 + 20 + 20 + 100];
        let frame = tcp4_frame(&mut frame, 0x1234, 443, 0xdead_beef, 100);
        let cfg = SplitConfig::default();
        let want = split(frame, &cfg);
        defmt::assert_eq!(want.class, FrameClass::Tcp);
        defmt::assert_eq!(want.reason, NoSplitReason::Split);
        defmt::assert_eq!(
            (want.payload_offset, want.payload_len),
            (Some(54), Some(100))
        );
        let mut buf = [0u8; 160 + 8];
        for shift in 0..8 {
            let f = &mut buf[shift..shift + frame.len()];
            f.copy_from_slice(frame);
            defmt::assert!(split(f, &cfg) == want, "shift {=usize}", shift);
            let eth = EthernetFrame::new_checked(&f[..]).unwrap();
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            defmt::assert_eq!(ip.total_len(), 140);
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            defmt::assert_eq!((tcp.src_port(), tcp.dst_port()), (0x1234, 443));
            defmt::assert_eq!(tcp.seq_number(), 0xdead_beef);
        }
    }
}
