//! The host verifier's independent Toeplitz/RSS agrees with the firmware's table-driven one on
//! every frame of the built-in mix, so the verifier's steering expectation is right. (This board
//! crate is the one place that links both the firmware and the host library.)

use splitrx_firmware::rss::Toeplitz;
use splitrx_host::verify::{rss_input, toeplitz, RSS_KEY};
use splitrx_shared::split::{split, SplitConfig};
use splitrx_sim::traffic::{Generator, TrafficSpec, MIX};

#[test]
fn host_rss_matches_firmware_rss() {
    let spec = TrafficSpec::parse(MIX).unwrap();
    let mut g = Generator::new(&spec, 7);
    let fw = Toeplitz::new(&RSS_KEY);
    let cfg = SplitConfig {
        hds_thresh: 0,
        verify_icrc: true,
    };
    for i in 0..4000 {
        let f = g.next_frame().bytes;
        let r = split(&f, &cfg);
        assert_eq!(
            toeplitz(&RSS_KEY, &rss_input(&f, &r)),
            fw.flow_hash(&f, &r),
            "frame {i}"
        );
    }
}
