//! Fuzzes the capture reader (`splitrx_host::capture::CaptureReader`) on arbitrary bytes, read
//! from memory: it must return frames or a typed error, never panic, and keep its invariants.
//!
//! Seed corpus: every capture in `testdata/captures/`, copied into `corpus/capture_reader/` by
//! `cargo xtask fuzz`.
#![no_main]
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use splitrx_host::capture::{CaptureReader, MAX_RECORD_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = CaptureReader::new(Cursor::new(data)) else {
        return;
    };
    let mut last = 0;
    let mut frames = 0u64;
    loop {
        match r.next_frame() {
            Ok(Some(f)) => {
                // Numbers increase; gaps are skipped records.
                assert!(f.number > last);
                last = f.number;
                frames += 1;
                // Conversion adds at most an Ethernet header.
                assert!(f.caplen() <= MAX_RECORD_LEN + 14);
            }
            Ok(None) => break,
            Err(e) => {
                let _ = e.to_string();
                // After an error the reader stops.
                assert!(r.next_frame().unwrap().is_none());
                break;
            }
        }
    }
    // Every record read is a frame or a skipped record.
    assert!(frames + r.skipped_records() >= last);
    assert!(r
        .skipped()
        .iter()
        .all(|s| s.records > 0 && !s.reason.is_empty()));
});
