//! Datapath tests over the in-memory fakes: exact bytes at the header and payload buffers for
//! every Ethernet frame of the real captures (page and packed mode), each backpressure reason,
//! each descriptor-validation failure, ring corruption.

mod common;

use splitrx_firmware::rss::{flow_input, toeplitz_reference, MS_RSS_KEY};
use splitrx_firmware::stats::{dev, q};
use splitrx_firmware::testing::*;
use splitrx_shared::abi::{
    rx_flags, BufRef, CtrlOp, CtrlStatus, FillDesc, HdsThreshArgs, PoolMode, QueueArgs,
    QueueStatus, RxCompletion,
};
use splitrx_shared::split::{split, NoSplitReason, SplitConfig, SplitResult};
use std::collections::{HashSet, VecDeque};
use zerocopy::little_endian::{U16, U32};

const HDR_SIZE: u32 = 512;
const PAD: u8 = 0xAA;

/// The host side of one queue: which buffers are posted, recycling, and DMA checking.
struct Host {
    tb: Testbed,
    q: HostQueue,
    hp: HostPool,
    pp: HostPool,
    /// Raw BufRefs the NIC holds (posted and not handed back).
    posted: HashSet<u32>,
    free_h: VecDeque<u32>,
    free_p: VecDeque<u32>,
}

impl Host {
    fn new(pay_count: u32, pay_size: u32, mode: PoolMode, align_log2: u8, thresh: u32) -> Host {
        let mut tb = Testbed::new();
        let (s, hp) = tb.register_pool(1, HDR_POOL_BUS, 64, HDR_SIZE, PoolMode::Page, 0);
        assert_eq!(s, CtrlStatus::Ok);
        let (s, pp) = tb.register_pool(2, PAY_POOL_BUS, pay_count, pay_size, mode, align_log2);
        assert_eq!(s, CtrlStatus::Ok);
        let (s, q) = tb.create_queue(0, 1, 2, thresh, 64, 64);
        assert_eq!(s, CtrlStatus::Ok);
        tb.fw.hal_mut().dma.log = Some(Vec::new());
        Host {
            tb,
            q,
            hp,
            pp,
            posted: HashSet::new(),
            free_h: (0..64).collect(),
            free_p: (0..pay_count).collect(),
        }
    }

    fn post_hdr(&mut self, n: usize) {
        for _ in 0..n {
            let Some(i) = self.free_h.pop_front() else {
                return;
            };
            let d = self.hp.desc(i);
            self.tb.mem.fill(d.bus_addr.get(), HDR_SIZE as usize, PAD);
            assert!(self.q.hdr_fill.push(&d).unwrap());
            self.posted.insert(d.buf.raw());
        }
    }

    fn post_pay(&mut self, n: usize) {
        for _ in 0..n {
            let Some(i) = self.free_p.pop_front() else {
                return;
            };
            let d = self.pp.desc(i);
            self.tb
                .mem
                .fill(d.bus_addr.get(), self.pp.buf_size as usize, PAD);
            assert!(self.q.pay_fill.push(&d).unwrap());
            self.posted.insert(d.buf.raw());
        }
    }

    /// Every DMA write since the last call must land inside a buffer the NIC holds.
    fn check_dma(&mut self) {
        let log = std::mem::take(self.tb.fw.hal_mut().dma.log.as_mut().unwrap());
        for (bus, len) in log {
            let (pool, size) = if bus >= PAY_POOL_BUS {
                (self.pp, self.pp.buf_size)
            } else {
                (self.hp, HDR_SIZE)
            };
            let idx = ((bus - pool.bus) / size as u64) as u32;
            let b = BufRef::new(pool.id, idx).unwrap();
            assert!(
                self.posted.contains(&b.raw()),
                "DMA into {b:?}, which the NIC does not hold"
            );
            assert!(
                bus + len as u64 <= pool.addr(b) + size as u64,
                "DMA past the end of {b:?}"
            );
        }
    }

    /// A completion hands buffers back: record it (they are recycled later by `recycle`).
    fn returned(&mut self, b: BufRef) {
        assert!(
            self.posted.remove(&b.raw()),
            "{b:?} handed back but not held by the NIC"
        );
        if b.pool() == 1 {
            self.free_h.push_back(b.index());
        } else {
            self.free_p.push_back(b.index());
        }
    }

    fn frame(&mut self, f: &[u8]) -> Vec<RxCompletion> {
        self.tb.fw.hal_mut().rx.push(f);
        self.tb.fw.poll();
        self.check_dma();
        self.q.completions()
    }

    /// What the NIC took (posted bits) plus what still sits in the fill rings is exactly what
    /// the host posted and did not get back.
    fn check_nothing_lost(&mut self) {
        let in_rings =
            (64 - self.q.hdr_fill.free().unwrap()) + (64 - self.q.pay_fill.free().unwrap());
        let taken = self.tb.fw.pool_posted(1).unwrap() + self.tb.fw.pool_posted(2).unwrap();
        assert_eq!(taken + in_rings, self.posted.len() as u32);
    }

    fn stat(&self, i: usize) -> u64 {
        self.tb.fw.queue_stats(0).unwrap().get(i)
    }
}

fn cfg0() -> SplitConfig {
    SplitConfig {
        hds_thresh: 0,
        verify_icrc: true,
    }
}

/// (payload offset, payload len) when the frame is split with threshold `thresh`.
fn expected_split(r: &SplitResult, len: usize, thresh: u32) -> Option<(usize, usize)> {
    if !r.split {
        return None;
    }
    let (o, l) = (r.payload_offset? as usize, r.payload_len? as usize);
    (o + l <= len && l as u32 > thresh).then_some((o, l))
}

fn expected_hash(f: &[u8], r: &SplitResult) -> u32 {
    let mut b = [0u8; 36];
    let n = flow_input(f, r, &mut b);
    toeplitz_reference(&MS_RSS_KEY, &b[..n])
}

fn check_header_buffer(h: &Host, c: &RxCompletion, expect: &[u8]) {
    let addr = h.hp.addr(c.hdr_buf);
    let got = h.tb.mem.read(addr, HDR_SIZE as usize);
    assert_eq!(&got[..expect.len()], expect, "header buffer bytes");
    assert!(
        got[expect.len()..].iter().all(|&b| b == PAD),
        "header buffer written past hdr_len"
    );
}

#[test]
fn every_capture_frame_lands_exactly_page_mode() {
    let frames = common::all_frames();
    assert!(
        frames.len() > 1400,
        "captures not found ({} frames)",
        frames.len()
    );
    let mut h = Host::new(64, 96 << 10, PoolMode::Page, 0, 0);
    h.post_hdr(64);
    h.post_pay(64);
    let (mut n_split, mut n_unsplit, mut n_trunc, mut n_drop_hdr) = (0u64, 0u64, 0u64, 0u64);
    let (mut n_icrc_ok, mut n_tunnel) = (0u64, 0u64);
    for (file, f) in &frames {
        let r = split(f, &cfg0());
        let exp = expected_split(&r, f.len(), 0);
        if let Some((o, _)) = exp {
            if o > HDR_SIZE as usize {
                let before = h.stat(q::DROP_HDR_OVERFLOW);
                assert!(h.frame(f).is_empty());
                assert_eq!(h.stat(q::DROP_HDR_OVERFLOW), before + 1);
                n_drop_hdr += 1;
                continue;
            }
        }
        let cs = h.frame(f);
        assert_eq!(cs.len(), 1, "{file}: one completion per frame");
        let c = cs[0];
        assert_eq!(c.validate(0), Ok(()), "{file}: the shared completion rule");
        assert_eq!(c.class, r.class as u8, "{file}");
        assert_eq!(c.frame_len.get() as usize, f.len());
        assert_eq!(c.queue.get(), 0);
        assert_eq!(c.flow_hash.get(), expected_hash(f, &r), "{file}: flow hash");
        let flags = c.flags.get();
        assert_eq!(
            flags & rx_flags::TUNNEL != 0,
            r.tunnel.is_some(),
            "{file}: TUNNEL"
        );
        let icrc = r.roce.and_then(|x| x.icrc_ok);
        assert_eq!(
            flags & rx_flags::ICRC_OK != 0,
            icrc == Some(true),
            "{file}: ICRC_OK"
        );
        assert_eq!(
            flags & rx_flags::ICRC_BAD != 0,
            icrc == Some(false),
            "{file}: ICRC_BAD"
        );
        if r.class == splitrx_shared::split::FrameClass::Malformed {
            assert_eq!(flags & rx_flags::ERROR, rx_flags::ERROR, "{file}: ERROR");
        }
        n_icrc_ok += (icrc == Some(true)) as u64;
        n_tunnel += r.tunnel.is_some() as u64;
        match exp {
            Some((o, l)) => {
                n_split += 1;
                assert_eq!(flags & rx_flags::SPLIT, rx_flags::SPLIT, "{file}");
                assert_eq!(flags & rx_flags::PAY_RETIRED, rx_flags::PAY_RETIRED);
                assert_eq!(c.reason, 0);
                assert_eq!(c.hdr_len.get() as usize, o);
                assert_eq!(c.pay_len.get() as usize, l);
                assert_eq!(c.pay_off.get(), 0);
                check_header_buffer(&h, &c, &f[..o]);
                let got = h.tb.mem.read(h.pp.addr(c.pay_buf), l + 1);
                assert_eq!(&got[..l], &f[o..o + l], "{file}: payload bytes");
                assert_eq!(got[l], PAD, "{file}: payload buffer written past pay_len");
                h.returned(c.pay_buf);
            }
            None => {
                n_unsplit += 1;
                assert_eq!(flags & rx_flags::SPLIT, 0, "{file}");
                assert!(c.pay_buf.is_none());
                assert_eq!(c.pay_len.get(), 0);
                assert_ne!(c.reason, NoSplitReason::Split as u8);
                let n = f.len().min(HDR_SIZE as usize);
                assert_eq!(c.hdr_len.get() as usize, n);
                let trunc = f.len() > HDR_SIZE as usize;
                assert_eq!(flags & rx_flags::HDR_TRUNCATED != 0, trunc, "{file}");
                n_trunc += trunc as u64;
                check_header_buffer(&h, &c, &f[..n]);
            }
        }
        h.returned(c.hdr_buf);
        h.post_hdr(1);
        h.post_pay(1);
    }
    assert_eq!(h.stat(q::SPLIT), n_split);
    assert_eq!(h.stat(q::NOT_SPLIT), n_unsplit);
    assert_eq!(h.stat(q::HDR_TRUNCATED), n_trunc);
    assert_eq!(h.stat(q::RX_FRAMES), n_split + n_unsplit);
    assert_eq!(h.stat(q::DROP_HDR_OVERFLOW), n_drop_hdr);
    assert!(
        n_split > 500 && n_unsplit > 100,
        "split {n_split} unsplit {n_unsplit}"
    );
    assert!(
        n_icrc_ok > 300 && n_tunnel > 40,
        "icrc ok {n_icrc_ok}, tunnelled {n_tunnel}"
    );
    h.check_nothing_lost();
}

/// Runs the capture frames through packed mode and checks every completion against the
/// documented packing rule.
fn packed_run(thresh: u32) {
    const SIZE: u32 = 8192;
    const ALIGN: u64 = 64;
    let frames = common::all_frames();
    let mut h = Host::new(16, SIZE, PoolMode::Packed, 6, thresh);
    h.post_hdr(64);
    h.post_pay(16);
    let mut cur: Option<(BufRef, u64)> = None;
    let (mut flushes, mut retired, mut placed) = (0u64, 0u64, 0u64);
    for (file, f) in &frames {
        let r = split(f, &cfg0());
        let exp = expected_split(&r, f.len(), thresh);
        if let Some((o, l)) = exp {
            if o > HDR_SIZE as usize || l > SIZE as usize {
                assert!(h.frame(f).is_empty(), "{file}: oversize dropped");
                continue;
            }
        }
        let cs = h.frame(f);
        let Some((o, l)) = exp else {
            assert_eq!(cs.len(), 1);
            assert!(cs[0].pay_buf.is_none());
            h.returned(cs[0].hdr_buf);
            h.post_hdr(1);
            continue;
        };
        placed += 1;
        let fits = cur.is_some_and(|(_, used)| used + l as u64 <= SIZE as u64);
        let c = if fits {
            assert_eq!(cs.len(), 1, "{file}");
            cs[0]
        } else if let Some((old, used)) = cur {
            assert_eq!(
                cs.len(),
                2,
                "{file}: FLUSH of the full buffer precedes the frame"
            );
            let fl = cs[0];
            assert_eq!(fl.flags.get(), rx_flags::FLUSH | rx_flags::PAY_RETIRED);
            assert_eq!(fl.pay_buf, old);
            assert_eq!(fl.pay_off.get() as u64, used);
            assert_eq!(fl.pay_len.get(), 0);
            assert!(fl.hdr_buf.is_none());
            h.returned(old);
            flushes += 1;
            cs[1]
        } else {
            assert_eq!(cs.len(), 1);
            cs[0]
        };
        let off = if fits { cur.unwrap().1 } else { 0 };
        if fits {
            assert_eq!(c.pay_buf, cur.unwrap().0, "{file}: same packed buffer");
        }
        assert_eq!(c.pay_off.get() as u64, off, "{file}: packed offset");
        assert_eq!(c.pay_len.get() as usize, l);
        assert_eq!(c.flags.get() & rx_flags::SPLIT, rx_flags::SPLIT);
        check_header_buffer(&h, &c, &f[..o]);
        let got = h.tb.mem.read(h.pp.addr(c.pay_buf) + off, l);
        assert_eq!(got, &f[o..o + l], "{file}: payload bytes at offset {off}");
        let used = (off + l as u64).div_ceil(ALIGN) * ALIGN;
        let retire = (SIZE as u64).saturating_sub(used) <= thresh as u64;
        assert_eq!(
            c.flags.get() & rx_flags::PAY_RETIRED != 0,
            retire,
            "{file}: eager retire rule"
        );
        if retire {
            h.returned(c.pay_buf);
            retired += 1;
            cur = None;
        } else {
            cur = Some((c.pay_buf, used));
        }
        h.returned(c.hdr_buf);
        h.post_hdr(1);
        h.post_pay(1);
    }
    assert!(
        placed > 200 && flushes > 10,
        "placed {placed} flushes {flushes}"
    );
    assert_eq!(h.stat(q::PACKED_FLUSH), flushes);
    assert_eq!(h.stat(q::PACKED_RETIRED), flushes + retired);
    h.check_nothing_lost();
}

#[test]
fn packed_mode_places_capture_payloads_by_the_rule() {
    packed_run(0);
}

#[test]
fn packed_mode_eager_retire_with_hds_thresh() {
    packed_run(200);
}

/// A TCP/IPv4 frame with a `len`-byte payload (built by hand; checksums are not checked).
fn tcp_frame(len: usize, sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20 + len];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((40 + len) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&sport.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

#[test]
fn hds_thresh_decides_split() {
    let mut h = Host::new(16, 4096, PoolMode::Page, 0, 100);
    h.post_hdr(8);
    h.post_pay(8);
    let c = h.frame(&tcp_frame(100, 1))[0];
    assert_eq!(c.flags.get() & rx_flags::SPLIT, 0);
    assert_eq!(c.reason, NoSplitReason::BelowThresh as u8);
    assert_eq!(c.hdr_len.get(), 154);
    let c = h.frame(&tcp_frame(101, 1))[0];
    assert_eq!(c.flags.get() & rx_flags::SPLIT, rx_flags::SPLIT);
    assert_eq!((c.hdr_len.get(), c.pay_len.get()), (54, 101));
    let a = HdsThreshArgs {
        queue: U16::new(0),
        _pad: U16::new(0),
        hds_thresh: U32::new(1000),
    };
    assert_eq!(h.tb.status(CtrlOp::SetHdsThresh, &a), CtrlStatus::Ok);
    let c = h.frame(&tcp_frame(400, 1))[0];
    assert_eq!(c.reason, NoSplitReason::BelowThresh as u8);
    assert_eq!(h.stat(q::REASON_BELOW_THRESH), 2);
    let a = HdsThreshArgs {
        queue: U16::new(5),
        _pad: U16::new(0),
        hds_thresh: U32::new(1),
    };
    assert_eq!(h.tb.status(CtrlOp::SetHdsThresh, &a), CtrlStatus::NotFound);
}

/// Empty frames and runts (shorter than an Ethernet header) are dropped at the MAC, counted,
/// and take no buffer; a bare 14-byte Ethernet header is the shortest frame placed.
#[test]
fn runts_are_dropped_at_the_mac_and_take_no_buffer() {
    let mut h = Host::new(16, 4096, PoolMode::Page, 0, 0);
    h.post_hdr(4);
    h.post_pay(4);
    for len in [0usize, 1, 13] {
        assert!(h.frame(&vec![0xab; len]).is_empty(), "{len}-byte frame");
    }
    assert_eq!(h.tb.fw.device_stats().get(dev::DROP_RUNT), 3);
    assert_eq!(h.stat(q::RX_FRAMES), 0);
    h.check_nothing_lost();
    let mut eth = vec![0u8; 14];
    eth[12..14].copy_from_slice(&[0x88, 0xb5]);
    let c = h.frame(&eth);
    assert_eq!(c.len(), 1);
    assert_eq!((c[0].hdr_len.get(), c[0].frame_len.get()), (14, 14));
    assert_eq!(c[0].validate(0), Ok(()));
    assert_eq!(h.stat(q::COMPLETION_INVALID), 0);
}

#[test]
fn backpressure_no_header_buffer() {
    let mut h = Host::new(16, 4096, PoolMode::Page, 0, 0);
    h.post_pay(4);
    assert!(h.frame(&tcp_frame(1000, 1)).is_empty());
    assert_eq!(h.stat(q::DROP_NO_HDR_BUF), 1);
    assert_eq!(h.stat(q::RX_FRAMES), 0);
    h.post_hdr(1);
    assert_eq!(h.frame(&tcp_frame(1000, 1)).len(), 1);
    assert_eq!(h.stat(q::DROP_NO_HDR_BUF), 1);
}

#[test]
fn backpressure_no_payload_buffer_keeps_header_buffer() {
    let mut h = Host::new(16, 4096, PoolMode::Page, 0, 0);
    h.post_hdr(1);
    assert!(h.frame(&tcp_frame(1000, 1)).is_empty());
    assert_eq!(h.stat(q::DROP_NO_PAY_BUF), 1);
    // The header buffer taken from the ring is still held, not lost.
    assert_eq!(h.tb.fw.pool_posted(1), Some(1));
    // An unsplit frame needs no payload buffer and goes through.
    let c = h.frame(&tcp_frame(0, 1));
    assert_eq!(c.len(), 1);
    h.returned(c[0].hdr_buf);
    h.post_hdr(1);
    h.post_pay(1);
    let c = h.frame(&tcp_frame(1000, 1));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].pay_buf, BufRef::new(2, 0).unwrap());
}

#[test]
fn backpressure_completion_ring_full() {
    let mut tb = Testbed::new();
    tb.register_pool(1, HDR_POOL_BUS, 64, HDR_SIZE, PoolMode::Page, 0);
    let (_, pp) = tb.register_pool(2, PAY_POOL_BUS, 64, 4096, PoolMode::Page, 0);
    let (st, mut q) = tb.create_queue(0, 1, 2, 0, 64, 2);
    assert_eq!(st, CtrlStatus::Ok);
    let hp = HostPool {
        id: 1,
        bus: HDR_POOL_BUS,
        buf_size: HDR_SIZE,
        count: 64,
    };
    for i in 0..8 {
        q.hdr_fill.push(&hp.desc(i)).unwrap();
        q.pay_fill.push(&pp.desc(i)).unwrap();
    }
    for s in 0..3 {
        tb.fw.hal_mut().rx.push(&tcp_frame(500, s));
    }
    tb.fw.poll();
    let st = tb.fw.queue_stats(0).unwrap();
    assert_eq!(st.get(q::RX_FRAMES), 2);
    assert_eq!(st.get(q::DROP_CQ_FULL), 1);
    let cs = q.completions();
    assert_eq!(cs.len(), 2);
    // 8 + 8 posted, 2 + 2 handed back; the dropped frame took nothing.
    assert_eq!(tb.fw.pool_posted(1), Some(6));
    assert_eq!(tb.fw.pool_posted(2), Some(6));
    tb.fw.hal_mut().rx.push(&tcp_frame(500, 9));
    tb.fw.poll();
    let cs2 = q.completions();
    assert_eq!(cs2.len(), 1);
    assert_eq!(
        cs2[0].hdr_buf,
        BufRef::new(1, 2).unwrap(),
        "next buffer in order, none skipped"
    );
}

#[test]
fn dma_error_drops_frame_and_keeps_buffers() {
    let mut h = Host::new(16, 4096, PoolMode::Page, 0, 0);
    h.post_hdr(2);
    h.post_pay(2);
    h.tb.fw.hal_mut().dma.fail_next = 1;
    assert!(h.frame(&tcp_frame(700, 1)).is_empty());
    assert_eq!(h.stat(q::DROP_DMA_ERROR), 1);
    let c = h.frame(&tcp_frame(700, 1));
    assert_eq!(c[0].hdr_buf, BufRef::new(1, 0).unwrap());
    assert_eq!(c[0].pay_buf, BufRef::new(2, 0).unwrap());
}

#[test]
fn oversize_payload_and_header_are_dropped_and_counted() {
    let mut h = Host::new(16, 1024, PoolMode::Page, 0, 0);
    h.post_hdr(4);
    h.post_pay(4);
    assert!(h.frame(&tcp_frame(1025, 1)).is_empty());
    assert_eq!(h.stat(q::DROP_PAY_OVERFLOW), 1);
    assert_eq!(h.frame(&tcp_frame(1024, 1)).len(), 1);
}

#[test]
fn each_descriptor_validation_failure_is_counted_and_discarded() {
    let mut h = Host::new(16, 4096, PoolMode::Page, 0, 0);
    let good = h.hp.desc(3);
    let bad = [
        (
            FillDesc::new(BufRef::new(2, 3).unwrap(), good.bus_addr.get(), HDR_SIZE),
            q::DESC_BAD_POOL,
        ),
        (
            FillDesc::new(
                BufRef::new(1, 64).unwrap(),
                HDR_POOL_BUS + 64 * 512,
                HDR_SIZE,
            ),
            q::DESC_BAD_INDEX,
        ),
        (
            FillDesc::new(
                BufRef::new(1, 3).unwrap(),
                good.bus_addr.get() + 8,
                HDR_SIZE,
            ),
            q::DESC_BAD_ADDR,
        ),
        (
            FillDesc::new(
                BufRef::new(1, 3).unwrap(),
                good.bus_addr.get(),
                HDR_SIZE + 1,
            ),
            q::DESC_BAD_LEN,
        ),
        (FillDesc::new(BufRef::NONE, 0, 0), q::DESC_BAD_POOL),
    ];
    for (d, _) in &bad {
        h.q.hdr_fill.push(d).unwrap();
    }
    h.q.hdr_fill.push(&good).unwrap();
    h.q.hdr_fill.push(&good).unwrap(); // duplicate
    h.posted.insert(good.buf.raw());
    h.post_pay(1);
    let c = h.frame(&tcp_frame(300, 1));
    assert_eq!(c.len(), 1, "the queue keeps running");
    assert_eq!(c[0].hdr_buf, good.buf);
    assert_eq!(h.stat(q::DESC_BAD_POOL), 2);
    assert_eq!(h.stat(q::DESC_BAD_INDEX), 1);
    assert_eq!(h.stat(q::DESC_BAD_ADDR), 1);
    assert_eq!(h.stat(q::DESC_BAD_LEN), 1);
    assert_eq!(h.stat(q::DESC_DUP), 1);
    assert_eq!(h.stat(q::DESC_OK), 2);
    // Payload ring: a header-pool buffer is a bad pool there.
    h.q.pay_fill.push(&h.hp.desc(5)).unwrap();
    h.q.hdr_fill.push(&h.hp.desc(6)).unwrap();
    h.posted.insert(h.hp.desc(6).buf.raw());
    assert!(h.frame(&tcp_frame(300, 1)).is_empty());
    assert_eq!(h.stat(q::DESC_BAD_POOL), 3);
    assert_eq!(h.stat(q::DROP_NO_PAY_BUF), 1);
}

fn ring_index(mem: &Memory, ring: std::ptr::NonNull<u8>, off: usize) -> u32 {
    let _ = mem;
    // SAFETY: test reads an index word of a ring it laid out.
    unsafe { std::ptr::read_volatile(ring.as_ptr().add(off).cast::<u32>()) }
}

#[test]
fn ring_corruption_faults_queue_until_reset() {
    let mut h = Host::new(16, 4096, PoolMode::Page, 0, 0);
    h.post_hdr(2);
    h.post_pay(2);
    assert_eq!(h.frame(&tcp_frame(300, 1)).len(), 1);
    // The host publishes an impossible producer index on the header fill ring.
    let hdr_ring = h.q.rings[0];
    let cons = ring_index(&h.tb.mem, hdr_ring, splitrx_shared::ring::CONSUMER_OFFSET);
    let bogus = cons.wrapping_add(64 + 7);
    // SAFETY: test writes the producer word of a ring it laid out.
    unsafe { std::ptr::write_volatile(hdr_ring.as_ptr().cast::<u32>(), bogus) };
    // Use up the cached buffer so the firmware has to look at the ring.
    let _ = h.frame(&tcp_frame(300, 1));
    let _ = h.frame(&tcp_frame(300, 1));
    let (st, fault) = h.tb.nic_status(queue_region_bus(0));
    assert_eq!(st, QueueStatus::FaultRingCorrupt as u32);
    assert_eq!(fault >> 8, 1, "header fill ring");
    assert_eq!(h.stat(q::RING_FAULTS), 1);
    let drops = h.stat(q::DROP_QUEUE_FAULT);
    assert!(h.frame(&tcp_frame(300, 1)).is_empty());
    assert_eq!(h.stat(q::DROP_QUEUE_FAULT), drops + 1);
    // Other commands still work.
    assert_eq!(h.tb.status(CtrlOp::GetVersion, &[0u8; 0]), CtrlStatus::Ok);
    // A reset without repairing the ring reports the buffers but leaves the queue faulted.
    let r = h.tb.call(
        CtrlOp::ResetQueue,
        &QueueArgs {
            queue: U16::new(0),
            _pad: U16::new(0),
        },
    );
    assert_eq!(r.last().unwrap().status(), Some(CtrlStatus::Ok));
    assert_eq!(
        h.tb.nic_status(queue_region_bus(0)).0,
        QueueStatus::FaultRingCorrupt as u32
    );
    assert!(h.frame(&tcp_frame(300, 1)).is_empty());
    // Host repairs the ring (re-initialises it) and resets the queue.
    // SAFETY: the queue is stopped; the firmware does not touch the faulted ring.
    unsafe { splitrx_shared::ring::init::<FillDesc>(hdr_ring, 64).unwrap() };
    // SAFETY: the ring was just re-initialised; the old host producer is replaced by this one.
    h.q.hdr_fill = unsafe { splitrx_shared::ring::Producer::attach(hdr_ring, 64).unwrap() };
    let r = h.tb.call(
        CtrlOp::ResetQueue,
        &QueueArgs {
            queue: U16::new(0),
            _pad: U16::new(0),
        },
    );
    assert_eq!(r.last().unwrap().status(), Some(CtrlStatus::Ok));
    assert_eq!(
        h.tb.nic_status(queue_region_bus(0)).0,
        QueueStatus::Running as u32
    );
    h.free_h = (0..64).collect();
    h.free_p = (0..16).collect();
    h.posted.clear();
    h.post_hdr(1);
    h.post_pay(1);
    assert_eq!(h.frame(&tcp_frame(300, 1)).len(), 1);
}
