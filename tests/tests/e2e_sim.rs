//! End-to-end scenarios on the sim board: the real firmware library on its own thread, the
//! real host crate on others, nothing shared but the two mapped files.
//!
//! Every run is bounded (frame counts, deadlines that fail the test); nothing sleeps to
//! synchronise.

use splitrx_host::sim_run::{self, RunConfig, Source};
use splitrx_host::verify::{rss_input, toeplitz, RSS_KEY};
use splitrx_shared::split::{split, SplitConfig};
use splitrx_sim::firmware::rss::Toeplitz;

/// The host's independent Toeplitz/RSS input agrees with the firmware's on every frame of the
/// built-in mix (so the verifier's steering expectation is right).
#[test]
fn host_rss_matches_firmware_rss() {
    let frames = sim_run::load_frames(
        &Source::Synthetic { spec: "mix".into(), seed: 7 },
        Some(4000),
    )
    .unwrap();
    let fw = Toeplitz::new(&RSS_KEY);
    let cfg = SplitConfig { hds_thresh: 0, verify_icrc: true };
    for (i, f) in frames.iter().enumerate() {
        let r = split(f, &cfg);
        assert_eq!(toeplitz(&RSS_KEY, &rss_input(f, &r)), fw.flow_hash(f, &r), "frame {i}");
    }
}
