//! Runs N RoCE requests through the responder (non-copying DMA fake, 4 KiB payloads, path MTU
//! 4096) for instruction counting:
//!
//! valgrind --tool=callgrind --toggle-collect='*Firmware*poll_rx*' \
//!     target/release/examples/roce_count 100000 write|send|read [icrc]
//!
//! Only instructions inside `poll_rx` are counted; divide by N (N = 0 is the baseline). `read`
//! includes the MAC fake's copy of each 4 KiB READ RESPONSE into a `Vec`; without `icrc` the
//! ICRC is not verified (transmitted packets always get one).

use splitrx_firmware::bench_support::{RoceBench, RoceRig, ROCE_BATCH};
use splitrx_firmware::stats::dev;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let kind = match args.next().as_deref() {
        Some("send") => RoceBench::Send,
        Some("read") => RoceBench::Read,
        _ => RoceBench::Write,
    };
    let icrc = args.next().as_deref() == Some("icrc");
    let mut rig = RoceRig::new(kind, 4096, false);
    rig.tb.fw.set_icrc_verify(icrc);
    let mut left = n;
    while left > 0 {
        let k = left.min(ROCE_BATCH as u64);
        rig.feed(k);
        let mut done = 0;
        while done < k as usize {
            done += rig.tb.fw.poll_rx();
        }
        rig.host_recycle();
        left -= k;
    }
    let d = rig.tb.fw.device_stats();
    assert_eq!(d.get(dev::ROCE_RCVD_PKTS), n);
    assert_eq!(d.get(dev::ROCE_RESP_DISCARDS), 0);
    println!(
        "{} requests, {} packets sent",
        d.get(dev::ROCE_RCVD_PKTS),
        d.get(dev::ROCE_SENT_PKTS)
    );
}
