//! Fuzzes fill-descriptor validation: arbitrary descriptors (raw, or valid ones with one field
//! mutated) into the header and payload fill rings, interleaved with frames, then a reset.
//! Invariants: no panic; every completion names a buffer the host validly posted and did not
//! get back (never one written twice without re-posting); the reset report is exactly the set
//! of buffers the host posted validly and did not get back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splitrx_firmware::testing::*;
use splitrx_shared::abi::{
    rx_flags, BufRef, CtrlOp, FillDesc, OutstandingArgs, PoolMode, QueueArgs,
};
use std::collections::HashSet;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::FromBytes;

fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; 54 + len];
    f[12] = 0x08;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((40 + len) as u16).to_be_bytes());
    f[23] = 6;
    f[46] = 0x50;
    f
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let packed = mode & 1 == 1;
    let mut tb = Testbed::new();
    let (_, hp) = tb.register_pool(1, HDR_POOL_BUS, 32, 256, PoolMode::Page, 0);
    let (_, pp) = if packed {
        tb.register_pool(2, PAY_POOL_BUS, 32, 4096, PoolMode::Packed, 6)
    } else {
        tb.register_pool(2, PAY_POOL_BUS, 32, 2048, PoolMode::Page, 0)
    };
    let (_, mut q) = tb.create_queue(0, 1, 2, (mode >> 1) as u32 * 8, 16, 16);
    // The host's view: buffers validly posted and not handed back.
    let mut out: HashSet<BufRef> = HashSet::new();
    let valid = |d: &FillDesc, p: &HostPool| {
        d.buf.pool() == p.id
            && d.buf.index() < p.count
            && d.bus_addr.get() == p.bus + d.buf.index() as u64 * p.buf_size as u64
            && d.len.get() == p.buf_size
    };
    for c in data.chunks_exact(18) {
        let ctl = c[0];
        let hdr = ctl & 1 == 0;
        let pool = if hdr { hp } else { pp };
        let mut d = match (ctl >> 1) & 3 {
            0 => FillDesc::read_from_bytes(&c[2..18]).unwrap(),
            _ => pool.desc(c[1] as u32 % 40),
        };
        match (ctl >> 3) & 7 {
            1 => d.bus_addr = U64::new(d.bus_addr.get() ^ (c[2] as u64)),
            2 => d.len = U32::new(d.len.get().wrapping_add(c[3] as u32)),
            3 => d.buf = BufRef::from_raw(d.buf.raw() ^ ((c[4] as u32) << 24)),
            _ => {}
        }
        let ring = if hdr {
            &mut q.hdr_fill
        } else {
            &mut q.pay_fill
        };
        let ok = valid(&d, &pool);
        if ok && out.contains(&d.buf) {
            // A duplicate of a buffer the NIC holds. The NIC checks "already posted" when it
            // takes the descriptor from the ring, so whether it is rejected depends on whether
            // the first copy was handed back before the NIC reached it (then it counts as a
            // re-post; docs/firmware.md). The model cannot see that moment: don't post it.
            continue;
        }
        if ring.push(&d).unwrap() && ok {
            out.insert(d.buf);
        }
        if ctl & 0x40 != 0 {
            tb.fw.hal_mut().rx.push(&frame(c[5] as usize * 8));
            tb.fw.poll();
            for comp in q.completions() {
                let f = comp.flags.get();
                if !comp.hdr_buf.is_none() {
                    assert!(
                        out.remove(&comp.hdr_buf),
                        "completion names {:?}",
                        comp.hdr_buf
                    );
                }
                if !comp.pay_buf.is_none() {
                    assert!(
                        out.contains(&comp.pay_buf),
                        "payload {:?} not posted",
                        comp.pay_buf
                    );
                    if f & rx_flags::PAY_RETIRED != 0 {
                        out.remove(&comp.pay_buf);
                    }
                }
            }
        }
    }
    tb.fw.poll();
    for comp in q.completions() {
        if !comp.hdr_buf.is_none() {
            assert!(out.remove(&comp.hdr_buf));
        }
        if comp.flags.get() & rx_flags::PAY_RETIRED != 0 {
            out.remove(&comp.pay_buf);
        }
    }
    let r = tb.call(
        CtrlOp::ResetQueue,
        &QueueArgs {
            queue: U16::new(0),
            _pad: U16::new(0),
        },
    );
    let mut reported = HashSet::new();
    for m in &r {
        let a: OutstandingArgs = m.args().unwrap();
        for b in &a.bufs[..a.count as usize] {
            assert!(reported.insert(*b), "reported twice: {b:?}");
        }
    }
    assert_eq!(reported, out, "reset report == posted and not handed back");
    assert_eq!(tb.fw.pool_posted(1), Some(0));
    assert_eq!(tb.fw.pool_posted(2), Some(0));
});
