//! Runs N TCP/IPv4 1514-byte frames through the datapath (non-copying DMA fake) for
//! instruction counting:
//!
//! valgrind --tool=callgrind --toggle-collect='*Firmware*poll_rx*' \
//!     target/release/examples/dp_count 100000 [packed]
//!
//! With `--toggle-collect`, only instructions inside `poll_rx` (the firmware's datapath) are
//! counted; divide by N. Running with N = 0 gives the baseline (should be ~0).
//!
//! More arguments, in any order after N: `packed`, a frame length in bytes (default 1514;
//! 4162 = a 4 KiB TCP payload, the figure compared with the aarch64 count under QEMU in
//! BENCHMARKS.md), `nocsum` (checksum verification off).

use splitrx_firmware::bench_support::{tcp_ipv4_frame, Rig};
use splitrx_firmware::stats::q;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rest: Vec<String> = args.collect();
    let packed = rest.iter().any(|a| a == "packed");
    let len = rest.iter().find_map(|a| a.parse().ok()).unwrap_or(1514);
    let mut rig = Rig::new(tcp_ipv4_frame(len), packed);
    rig.tb
        .fw
        .set_csum_offload(!rest.iter().any(|a| a == "nocsum"));
    let mut left = n;
    while left > 0 {
        let k = left.min(256);
        rig.feed(k);
        let mut done = 0;
        while done < k as usize {
            done += rig.tb.fw.poll_rx();
        }
        rig.host_recycle();
        left -= k;
    }
    let st = rig.tb.fw.queue_stats(0).unwrap();
    assert_eq!(st.get(q::RX_FRAMES), n);
    println!(
        "{} frames placed, {} split",
        st.get(q::RX_FRAMES),
        st.get(q::SPLIT)
    );
}
