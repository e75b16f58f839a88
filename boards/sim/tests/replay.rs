//! The pcap/pcapng replay source on the real captures in testdata/captures.
use std::path::PathBuf;

use pcap_file::DataLink;
use splitrx_sim::replay::{
    load, FrameSource, Loops, PcapSource, Replay, ReplayConfig, ReplayError,
};

fn cap(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/captures")
        .join(name)
}

/// The frames of a classic pcap, read directly with pcap-file (the independent reference).
fn reference(name: &str) -> Vec<Vec<u8>> {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(cap(name)).unwrap()).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        v.push(p.unwrap().data.into_owned());
    }
    v
}

fn drain(src: &mut impl FrameSource) -> Result<Vec<Vec<u8>>, ReplayError> {
    let mut v = Vec::new();
    while src.advance()? {
        v.push(src.frame().to_vec());
    }
    Ok(v)
}

#[test]
fn pcap_frames_match_the_reference_and_rewind() {
    let want = reference("roce__rdma_write_bw.pcap");
    assert_eq!(want.len(), 60);
    let mut src = PcapSource::open(cap("roce__rdma_write_bw.pcap")).unwrap();
    assert_eq!(src.frame(), &[] as &[u8]);
    assert_eq!(drain(&mut src).unwrap(), want);
    assert!(!src.advance().unwrap()); // stays at the end
    src.rewind().unwrap();
    assert_eq!(drain(&mut src).unwrap(), want);
    assert_eq!(src.truncated(), 0);
}

#[test]
fn pcapng_is_detected_by_magic_not_name() {
    // GrePackets.pcap is really pcapng (7 Ethernet frames); the .pcapng QinQ file has 1.
    let gre = load(cap("pcapplusplus__GrePackets.pcap")).unwrap();
    assert_eq!(gre.len(), 7);
    let qinq = load(cap("pcapplusplus__QinQ_802.1_AD.pcapng")).unwrap();
    assert_eq!(qinq.len(), 1);
    assert_eq!(qinq.frames()[0].len(), 1500);
    assert_eq!(&qinq.frames()[0][12..14], &[0x88, 0xa8]); // 802.1ad S-tag
}

#[test]
fn truncated_frames_are_replayed_as_captured_and_counted() {
    let mut src = PcapSource::open(cap("tcpdump__tcp_rst_data-trunc.pcap")).unwrap();
    let frames = drain(&mut src).unwrap();
    assert_eq!(frames.len(), 1);
    assert!(frames[0].len() < 112);
    assert_eq!(src.truncated(), 1);
}

#[test]
fn non_ethernet_link_types_are_refused() {
    // Bare IPv6 (link type 12, the BSD number of DLT_RAW, which pcap-file leaves as Unknown):
    // refused at open.
    let e = PcapSource::open(cap("pcapplusplus__four_ipv6_http_streams.pcap")).unwrap_err();
    assert!(
        matches!(
            e,
            ReplayError::UnsupportedLinkType {
                frame: 0,
                link: DataLink::Unknown(12),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("is not Ethernet"), "{e}");
    // Linux SLL.
    let e = PcapSource::open(cap("tcpdump__mptcp-v1.pcap")).unwrap_err();
    assert!(
        matches!(
            e,
            ReplayError::UnsupportedLinkType {
                link: DataLink::LINUX_SLL,
                ..
            }
        ),
        "{e:?}"
    );
    // pcapng with an Ethernet interface (59 frames) then a Linux SLL one: refused at the first
    // SLL frame, after the Ethernet frames were delivered.
    let mut src = PcapSource::open(cap("pcapplusplus__pcapng-example.pcapng")).unwrap();
    let mut n = 0;
    let e = loop {
        match src.advance() {
            Ok(true) => n += 1,
            Ok(false) => panic!("no error"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, 59);
    assert!(
        matches!(
            e,
            ReplayError::UnsupportedLinkType {
                frame: 59,
                link: DataLink::LINUX_SLL,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn bad_files_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pcap");
    assert!(matches!(
        PcapSource::open(&missing),
        Err(ReplayError::Io { .. })
    ));
    let text = dir.path().join("readme.pcap");
    std::fs::write(&text, b"hello world").unwrap();
    match PcapSource::open(&text) {
        Err(ReplayError::NotPcap { magic, .. }) => assert_eq!(magic, b"hell"),
        other => panic!("{other:?}"),
    }
    let short = dir.path().join("short.pcap");
    std::fs::write(&short, [0xd4, 0xc3]).unwrap();
    assert!(matches!(
        PcapSource::open(&short),
        Err(ReplayError::NotPcap { .. })
    ));
    // A valid header followed by a cut-off record: an error, then the replay ends.
    let bytes = std::fs::read(cap("roce__rdma_write_lat.pcap")).unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &bytes[..24 + 16 + 10]).unwrap();
    let mut r = Replay::new(PcapSource::open(&cut).unwrap(), ReplayConfig::default());
    assert!(matches!(
        r.next_frame(),
        Some(Err(ReplayError::Pcap { .. }))
    ));
    assert!(r.next_frame().is_none());
}

#[test]
fn replay_loops_a_capture_file() {
    let want = reference("roce__rping.pcap");
    let cfg = ReplayConfig {
        loops: Loops::Count(3),
        ..Default::default()
    };
    let mut r = Replay::new(PcapSource::open(cap("roce__rping.pcap")).unwrap(), cfg);
    let mut got = Vec::new();
    while let Some(f) = r.next_frame() {
        got.push(f.unwrap().to_vec());
    }
    assert_eq!(got.len(), 3 * want.len());
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f, &want[i % want.len()]);
    }
    let s = r.stats();
    assert_eq!(s.passes, 3);
    assert_eq!(
        s.bytes,
        3 * want.iter().map(|f| f.len() as u64).sum::<u64>()
    );
}
