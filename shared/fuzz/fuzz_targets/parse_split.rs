//! Fuzzes the header-split decision: `split()` on arbitrary bytes with an arbitrary
//! `hds_thresh`, asserting the invariants the firmware relies on.
//!
//! Input layout: byte 0 selects the configuration (`hds_thresh = byte0 as u32 * 8`, ICRC
//! verification when it is even), the rest is the frame. Seed corpus: the capture frames,
//! written by `cargo test -p splitrx-shared --test wire_captures -- --ignored
//! write_fuzz_seed_corpus` (into `corpus/parse_split/`).
#![no_main]
use libfuzzer_sys::fuzz_target;
use splitrx_shared::split::{split, FrameClass, NoSplitReason, SplitConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else {
        return;
    };
    let cfg = SplitConfig {
        hds_thresh: sel as u32 * 8,
        verify_icrc: sel % 2 == 0,
    };
    let r = split(frame, &cfg);
    let n = frame.len() as u64;
    assert_eq!(r.split, r.reason == NoSplitReason::Split);
    if r.split {
        assert!(matches!(
            r.class,
            FrameClass::Tcp | FrameClass::Udp | FrameClass::Roce
        ));
        assert!(r.payload_len.unwrap() > cfg.hds_thresh);
    }
    if let (Some(o), Some(l)) = (r.payload_offset, r.payload_len) {
        assert!(o as u64 + l as u64 <= n);
    }
    assert_eq!(r.payload_offset.is_some(), r.payload_len.is_some());
    assert_eq!(r.class == FrameClass::Malformed, r.error.is_some());
    for o in [r.l3_offset, r.l4_offset, r.outer_l3_offset]
        .into_iter()
        .flatten()
    {
        assert!(o as u64 <= n);
    }
    if let Some(roce) = r.roce {
        assert_eq!(roce.icrc_ok.is_some(), cfg.verify_icrc);
    }
});
