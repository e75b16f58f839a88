//! Fuzzes the control plane: arbitrary 64-byte requests (opcode and region fields nudged
//! toward the interesting values so deep paths are reached), interleaved with frames.
//! Invariants: no panic, every request is answered (More* then one final status) with its own
//! seq and opcode, in order, and the firmware's posted-buffer accounting stays consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splitrx_firmware::config::MAX_QUEUES;
use splitrx_firmware::testing::*;
use splitrx_shared::abi::{CtrlMsg, CtrlStatus, PoolMode, RingKind};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::FromBytes;

fn frame(sport: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; 54 + len];
    f[12] = 0x08;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((40 + len) as u16).to_be_bytes());
    f[23] = 6;
    f[35] = sport;
    f[46] = 0x50;
    f
}

fuzz_target!(|data: &[u8]| {
    let mut tb = Testbed::with_mac(FakeMac::default(), true, 4);
    // Pools and queue regions the requests can name.
    let (_, hp) = tb.register_pool(1, HDR_POOL_BUS, 64, 256, PoolMode::Page, 0);
    let (_, pp) = tb.register_pool(2, PAY_POOL_BUS, 64, 2048, PoolMode::Packed, 6);
    let mut rings = Vec::new();
    for q in 0..MAX_QUEUES as u16 {
        rings.push(layout_region(
            &tb.mem,
            queue_region_bus(q),
            QUEUE_REGION_LEN,
            q,
            &[
                (RingKind::HeaderFill, 16),
                (RingKind::PayloadFill, 16),
                (RingKind::RxCompletion, 16),
            ],
        ));
    }
    let mut seq = 1000u32;
    for chunk in data.chunks_exact(64) {
        let Ok(mut m) = CtrlMsg::read_from_bytes(chunk) else {
            return;
        };
        seq += 1;
        m.seq = U32::new(seq);
        let sel = chunk[4];
        if sel & 0x80 == 0 {
            m.opcode = U16::new((sel % 20) as u16);
        }
        if chunk[6] & 0xf0 == 0 {
            m.status = U16::new(0);
        }
        if chunk[7] & 1 == 1 && m.opcode.get() == 4 {
            // CreateRxQueue: point at a laid-out region most of the time.
            let q = (chunk[8] % 10) as u16;
            m.body[..8].copy_from_slice(&queue_region_bus(q).to_le_bytes());
            m.body[8..16].copy_from_slice(&U64::new(QUEUE_REGION_LEN).get().to_le_bytes());
            m.body[16..18].copy_from_slice(&q.to_le_bytes());
        }
        assert!(
            tb.send_raw(&m) || {
                tb.fw.poll();
                true
            }
        );
        // Some traffic, to make resets report real buffers.
        tb.fw
            .hal_mut()
            .rx
            .push(&frame(chunk[9], chunk[10] as usize * 4));
        let mut got_final = false;
        for _ in 0..200 {
            tb.fw.poll();
            while let Some(r) = tb.resp.pop().unwrap() {
                assert_eq!(
                    r.seq.get(),
                    seq,
                    "responses in order, one request at a time"
                );
                assert_eq!(r.opcode, m.opcode);
                let st = r.status().expect("valid status code");
                if st != CtrlStatus::More {
                    assert!(!got_final, "exactly one final response");
                    got_final = true;
                }
            }
            if got_final {
                break;
            }
        }
        assert!(got_final, "request {seq} answered");
        // Keep buffers flowing into queue 0's rings if it exists.
        if let Some(r) = rings.first() {
            let _ = (r, &hp, &pp);
        }
        if tb.fw.control().is_faulted() {
            return;
        }
    }
    for id in [1u8, 2] {
        if let Some(n) = tb.fw.pool_posted(id) {
            assert!(n <= 64);
        }
    }
});
