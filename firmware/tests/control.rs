//! Control-plane tests: every opcode's status codes, malformed requests, reset and destroy with
//! the outstanding-buffer report, statistics pages, RSS steering.

use splitrx_firmware::config::{MAX_POOLS, MAX_QUEUES};
use splitrx_firmware::rss::{flow_input, toeplitz_reference, MS_RSS_KEY};
use splitrx_firmware::stats::{dev, q, DEV_COUNT, Q_COUNT};
use splitrx_firmware::testing::*;
use splitrx_shared::abi::{
    rx_flags, BufRef, CreateRxQueueArgs, CtrlMsg, CtrlOp, CtrlStatus, OutstandingArgs, PoolArgs,
    PoolMode, QueueArgs, QueueStatus, RegisterPoolArgs, RssArgs, StatsArgs, StatsPage, VersionInfo,
    ABI_VERSION, OUTSTANDING_PER_MSG, STATS_PER_PAGE,
};
use splitrx_shared::split::{split, SplitConfig};
use std::collections::HashSet;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::FromZeros;

fn qa(q: u16) -> QueueArgs {
    QueueArgs {
        queue: U16::new(q),
        _pad: U16::new(0),
    }
}

fn setup(tb: &mut Testbed, mode: PoolMode) -> (HostPool, HostPool, HostQueue) {
    let (s, hp) = tb.register_pool(1, HDR_POOL_BUS, 256, 256, PoolMode::Page, 0);
    assert_eq!(s, CtrlStatus::Ok);
    let align = if mode == PoolMode::Packed { 6 } else { 0 };
    let (s, pp) = tb.register_pool(2, PAY_POOL_BUS, 256, 4096, mode, align);
    assert_eq!(s, CtrlStatus::Ok);
    let (s, q) = tb.create_queue(0, 1, 2, 0, 64, 64);
    assert_eq!(s, CtrlStatus::Ok);
    (hp, pp, q)
}

fn tcp_frame(len: usize, sport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 54 + len];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((40 + len) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[192, 168, 1, 1]);
    f[30..34].copy_from_slice(&[192, 168, 1, 2]);
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&443u16.to_be_bytes());
    f[46] = 5 << 4;
    f
}

#[test]
fn get_version() {
    let mut tb = Testbed::new();
    let r = tb.call(CtrlOp::GetVersion, &[0u8; 0]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status(), Some(CtrlStatus::Ok));
    assert_eq!(r[0].op(), Some(CtrlOp::GetVersion));
    assert_eq!(r[0].seq.get(), 1);
    let v: VersionInfo = r[0].args().unwrap();
    assert_eq!(v.abi_version.get(), ABI_VERSION);
    assert_eq!(v.max_queues.get() as usize, MAX_QUEUES);
    assert_eq!(v.max_pools.get() as usize, MAX_POOLS);
    assert_eq!(v.caps.get(), 0b111, "packed, RSS, RoCE responder");
    assert_eq!(tb.nic_status(CTRL_BUS).0, QueueStatus::Running as u32);
}

#[test]
fn malformed_and_unknown_requests_get_error_statuses() {
    let mut tb = Testbed::new();
    let mut m = CtrlMsg::new_zeroed();
    m.seq = U32::new(77);
    m.opcode = U16::new(0xbeef);
    let r = tb.call_msg(&m);
    assert_eq!(
        (r[0].status(), r[0].seq.get(), r[0].opcode.get()),
        (Some(CtrlStatus::UnknownOp), 77, 0xbeef)
    );
    m.opcode = U16::new(0);
    assert_eq!(tb.call_msg(&m)[0].status(), Some(CtrlStatus::UnknownOp));
    // A request with a non-zero status field is malformed.
    let mut m = CtrlMsg::with_args(78, CtrlOp::GetVersion, CtrlStatus::Ok, &[0u8; 0]);
    m.status = U16::new(3);
    assert_eq!(tb.call_msg(&m)[0].status(), Some(CtrlStatus::Invalid));
    // RoCE ops with an all-zero body: an empty MR and QP 0 are invalid, QP 0 does not exist.
    for (op, st) in [
        (CtrlOp::RegisterMr, CtrlStatus::Invalid),
        (CtrlOp::CreateQp, CtrlStatus::Invalid),
        (CtrlOp::DestroyQp, CtrlStatus::NotFound),
    ] {
        assert_eq!(tb.status(op, &[0u8; 0]), st, "{op:?}");
    }
    // Padding must be zero.
    assert_eq!(
        tb.status(
            CtrlOp::UnregisterPool,
            &PoolArgs {
                pool: 1,
                _pad: [0, 1, 0]
            }
        ),
        CtrlStatus::Invalid
    );
    assert_eq!(
        tb.status(
            CtrlOp::ResetQueue,
            &QueueArgs {
                queue: U16::new(0),
                _pad: U16::new(9)
            }
        ),
        CtrlStatus::Invalid
    );
    let d = tb.fw.device_stats();
    assert_eq!(d.get(dev::CMD_UNKNOWN), 2);
    assert_eq!(
        d.get(dev::CMD_INVALID),
        5,
        "3 + the two invalid RoCE requests"
    );
    assert_eq!(d.get(dev::CMD_ERR), 8);
}

#[test]
fn register_and_unregister_pool_statuses() {
    let mut tb = Testbed::new();
    assert_eq!(
        tb.register_pool(1, HDR_POOL_BUS, 16, 256, PoolMode::Page, 0)
            .0,
        CtrlStatus::Ok
    );
    assert_eq!(
        tb.register_pool(1, HDR_POOL_BUS, 16, 256, PoolMode::Page, 0)
            .0,
        CtrlStatus::Exists
    );
    assert_eq!(
        tb.register_pool(2, HDR_POOL_BUS, 0, 256, PoolMode::Page, 0)
            .0,
        CtrlStatus::Invalid
    );
    assert_eq!(
        tb.register_pool(2, HDR_POOL_BUS, 16, 0, PoolMode::Page, 0)
            .0,
        CtrlStatus::Invalid
    );
    assert_eq!(
        tb.register_pool(2, HDR_POOL_BUS, 16, 256, PoolMode::Page, 3)
            .0,
        CtrlStatus::Invalid
    );
    assert_eq!(
        tb.register_pool(2, HDR_POOL_BUS, 16, 64, PoolMode::Packed, 7)
            .0,
        CtrlStatus::Invalid
    );
    assert_eq!(
        tb.register_pool(2, HDR_POOL_BUS, 1 << 17, 64, PoolMode::Page, 0)
            .0,
        CtrlStatus::Invalid
    );
    let a = RegisterPoolArgs {
        bus_base: U64::new(u64::MAX - 100),
        window_len: U64::new(4096),
        buf_size: U32::new(64),
        count: U32::new(2),
        pool: 3,
        mode: 0,
        align_log2: 0,
        _pad: 0,
    };
    assert_eq!(
        tb.status(CtrlOp::RegisterPool, &a),
        CtrlStatus::Invalid,
        "window wraps the bus"
    );
    for i in 0..MAX_POOLS as u8 - 1 {
        assert_eq!(
            tb.register_pool(10 + i, HDR_POOL_BUS, 1, 256, PoolMode::Page, 0)
                .0,
            CtrlStatus::Ok
        );
    }
    assert_eq!(
        tb.register_pool(50, HDR_POOL_BUS, 1, 256, PoolMode::Page, 0)
            .0,
        CtrlStatus::NoSpace
    );
    assert_eq!(
        tb.status(
            CtrlOp::UnregisterPool,
            &PoolArgs {
                pool: 10,
                _pad: [0; 3]
            }
        ),
        CtrlStatus::Ok
    );
    assert_eq!(
        tb.status(
            CtrlOp::UnregisterPool,
            &PoolArgs {
                pool: 10,
                _pad: [0; 3]
            }
        ),
        CtrlStatus::NotFound
    );
}

#[test]
#[cfg_attr(
    feature = "cap-cortex-m",
    ignore = "needs the cap-host profile (3 queues, 6 pools)"
)]
fn create_queue_statuses() {
    let mut tb = Testbed::new();
    tb.register_pool(1, HDR_POOL_BUS, 16, 256, PoolMode::Page, 0);
    tb.register_pool(2, PAY_POOL_BUS, 16, 4096, PoolMode::Packed, 6);
    tb.register_pool(3, HDR_POOL_BUS + (1 << 20), 16, 64, PoolMode::Page, 0);
    let args = |q: u16, bus: u64, len: u64, h: u8, p: u8| CreateRxQueueArgs {
        region_bus_addr: U64::new(bus),
        region_len: U64::new(len),
        queue: U16::new(q),
        hdr_pool: h,
        pay_pool: p,
        hds_thresh: U32::new(0),
    };
    let rb = queue_region_bus(0);
    let st = |tb: &mut Testbed, a: CreateRxQueueArgs| tb.status(CtrlOp::CreateRxQueue, &a);
    // No header laid out yet: bad magic.
    assert_eq!(
        st(&mut tb, args(0, rb, QUEUE_REGION_LEN, 1, 2)),
        CtrlStatus::BadRegion
    );
    assert_eq!(
        st(&mut tb, args(0, 0x10, 4096, 1, 2)),
        CtrlStatus::BadRegion,
        "unmapped"
    );
    assert_eq!(
        st(&mut tb, args(0, rb + 8, 4096, 1, 2)),
        CtrlStatus::BadRegion,
        "misaligned"
    );
    assert_eq!(
        st(&mut tb, args(0, rb, 100, 1, 2)),
        CtrlStatus::BadRegion,
        "too short"
    );
    assert_eq!(
        st(&mut tb, args(MAX_QUEUES as u16, rb, QUEUE_REGION_LEN, 1, 2)),
        CtrlStatus::Invalid
    );
    assert_eq!(
        st(&mut tb, args(0, rb, QUEUE_REGION_LEN, 1, 1)),
        CtrlStatus::Invalid
    );
    assert_eq!(
        st(&mut tb, args(0, rb, QUEUE_REGION_LEN, 1, 9)),
        CtrlStatus::NotFound
    );
    assert_eq!(
        st(&mut tb, args(0, rb, QUEUE_REGION_LEN, 2, 1)),
        CtrlStatus::Invalid,
        "packed header pool"
    );
    assert_eq!(
        st(&mut tb, args(0, rb, QUEUE_REGION_LEN, 3, 2)),
        CtrlStatus::Invalid,
        "header buffers too small"
    );
    // A region whose rings are of the wrong kinds.
    layout_region(
        &tb.mem,
        rb,
        QUEUE_REGION_LEN,
        0,
        &[
            (splitrx_shared::abi::RingKind::HeaderFill, 16),
            (splitrx_shared::abi::RingKind::CtrlRequest, 16),
            (splitrx_shared::abi::RingKind::RxCompletion, 16),
        ],
    );
    assert_eq!(
        st(&mut tb, args(0, rb, QUEUE_REGION_LEN, 1, 2)),
        CtrlStatus::BadRegion
    );
    // The header's queue id must match.
    let (s, _q) = tb.create_queue(0, 1, 2, 0, 16, 16);
    assert_eq!(s, CtrlStatus::Ok);
    assert_eq!(tb.nic_status(rb).0, QueueStatus::Running as u32);
    let (s, _) = tb.create_queue(0, 1, 2, 0, 16, 16);
    assert_eq!(s, CtrlStatus::Exists);
    tb.register_pool(4, HDR_POOL_BUS + (2 << 20), 16, 256, PoolMode::Page, 0);
    tb.register_pool(5, PAY_POOL_BUS + (2 << 20), 16, 4096, PoolMode::Page, 0);
    assert_eq!(
        st(&mut tb, args(1, rb, QUEUE_REGION_LEN, 4, 5)),
        CtrlStatus::BadRegion,
        "queue id mismatch"
    );
    let (s, _) = tb.create_queue(1, 1, 2, 0, 16, 16);
    assert_eq!(s, CtrlStatus::Busy, "pools are bound to one queue");
    // Regions must not overlap another queue's region or the control region (rings would
    // alias): a header for queue 1 written inside queue 0's region.
    let inner = rb + 32 * 1024;
    let kinds = [
        (splitrx_shared::abi::RingKind::HeaderFill, 16),
        (splitrx_shared::abi::RingKind::PayloadFill, 16),
        (splitrx_shared::abi::RingKind::RxCompletion, 16),
    ];
    layout_region(&tb.mem, inner, 16 * 1024, 1, &kinds);
    assert_eq!(
        st(&mut tb, args(1, inner, 16 * 1024, 4, 5)),
        CtrlStatus::BadRegion,
        "overlap"
    );
    assert_eq!(
        st(&mut tb, args(1, CTRL_BUS, CTRL_LEN, 4, 5)),
        CtrlStatus::BadRegion,
        "control"
    );
    assert_eq!(
        tb.status(
            CtrlOp::UnregisterPool,
            &PoolArgs {
                pool: 1,
                _pad: [0; 3]
            }
        ),
        CtrlStatus::Busy
    );
}

/// Reads every buffer of a reset/destroy report; checks the More/Ok sequence and the totals.
fn report(responses: &[CtrlMsg], queue: u16) -> Vec<BufRef> {
    let mut out = Vec::new();
    for (i, r) in responses.iter().enumerate() {
        let last = i + 1 == responses.len();
        assert_eq!(
            r.status(),
            Some(if last {
                CtrlStatus::Ok
            } else {
                CtrlStatus::More
            })
        );
        let a: OutstandingArgs = r.args().unwrap();
        assert_eq!(a.queue.get(), queue);
        if !last {
            assert_eq!(
                a.count as usize, OUTSTANDING_PER_MSG,
                "only the last batch may be short"
            );
        }
        out.extend_from_slice(&a.bufs[..a.count as usize]);
        assert_eq!(a.total.get() as usize, out.len());
        assert!(a.bufs[a.count as usize..].iter().all(|b| b.is_none()));
    }
    out
}

#[test]
fn reset_reports_every_buffer_the_host_did_not_get_back() {
    let mut tb = Testbed::new();
    let (hp, pp, mut q) = setup(&mut tb, PoolMode::Packed);
    let mut posted = HashSet::new();
    for i in 0..40 {
        q.hdr_fill.push(&hp.desc(i)).unwrap();
        posted.insert(hp.desc(i).buf);
    }
    for i in 0..30 {
        q.pay_fill.push(&pp.desc(i)).unwrap();
        posted.insert(pp.desc(i).buf);
    }
    for s in 0..5 {
        tb.fw.hal_mut().rx.push(&tcp_frame(1000, s));
    }
    tb.fw.poll();
    let cs = q.completions();
    assert_eq!(cs.len(), 5);
    for c in &cs {
        posted.remove(&c.hdr_buf);
        if c.flags.get() & rx_flags::PAY_RETIRED != 0 {
            posted.remove(&c.pay_buf);
        }
    }
    // 5 x 1000 bytes in 4096-byte packed buffers: a current, partly filled buffer remains.
    assert!(tb.fw.queue(0).unwrap().packed_current().is_some());
    let r = tb.call(CtrlOp::ResetQueue, &qa(0));
    let got = report(&r, 0);
    let got_set: HashSet<BufRef> = got.iter().copied().collect();
    assert_eq!(got_set.len(), got.len(), "no buffer reported twice");
    assert_eq!(
        got_set, posted,
        "exactly the buffers the host did not get back"
    );
    // 40 - 5 header buffers; 30 payload buffers minus the one retired when the fourth
    // 1000-byte payload filled it to 4096 (the fifth went to a fresh, still current, buffer).
    assert_eq!(got.len(), 35 + 29);
    assert_eq!(tb.fw.pool_posted(1), Some(0));
    assert_eq!(tb.fw.pool_posted(2), Some(0));
    let st = tb.fw.queue_stats(0).unwrap();
    assert_eq!((st.get(q::RESETS), st.get(q::REPORTED)), (1, 64));
    assert_eq!(
        tb.nic_status(queue_region_bus(0)).0,
        QueueStatus::Running as u32
    );
    // The queue runs again, and the rings continue at their indices.
    q.hdr_fill.push(&hp.desc(3)).unwrap();
    q.pay_fill.push(&pp.desc(3)).unwrap();
    tb.fw.hal_mut().rx.push(&tcp_frame(100, 1));
    tb.fw.poll();
    let cs = q.completions();
    assert_eq!(cs.len(), 1);
    assert_eq!(
        (cs[0].hdr_buf, cs[0].pay_buf, cs[0].pay_off.get()),
        (hp.desc(3).buf, pp.desc(3).buf, 0)
    );
}

#[test]
fn reset_report_waits_for_room_in_a_small_response_ring() {
    let mut tb = Testbed::with_mac(FakeMac::default(), true, 2);
    let (hp, pp, mut q) = setup(&mut tb, PoolMode::Page);
    for i in 0..50 {
        q.hdr_fill.push(&hp.desc(i)).unwrap();
        q.pay_fill.push(&pp.desc(i)).unwrap();
    }
    tb.fw.hal_mut().rx.push(&tcp_frame(10, 1)); // pulls 16 + 16 into the caches
    tb.fw.poll();
    assert_eq!(q.completions().len(), 1);
    tb.seq += 1;
    let m = CtrlMsg::with_args(tb.seq, CtrlOp::ResetQueue, CtrlStatus::Ok, &qa(0));
    assert!(tb.send_raw(&m));
    // A request queued behind the reset is answered after it.
    let v = CtrlMsg::with_args(tb.seq + 1, CtrlOp::GetVersion, CtrlStatus::Ok, &[0u8; 0]);
    assert!(tb.send_raw(&v));
    let mut resp = Vec::new();
    let mut polls = 0;
    while resp.last().map(|r: &CtrlMsg| r.op()) != Some(Some(CtrlOp::GetVersion)) {
        tb.fw.poll();
        polls += 1;
        while let Some(r) = tb.resp.pop().unwrap() {
            resp.push(r);
        }
        assert!(polls < 1000);
    }
    let v = resp.pop().unwrap();
    assert_eq!(v.status(), Some(CtrlStatus::Ok));
    let got = report(&resp, 0);
    assert_eq!(
        got.len(),
        49 + 49,
        "everything except the header buffer of the unsplit frame"
    );
    assert_eq!(got.len(), 98);
    assert!(
        polls > 4,
        "the report was spread over several polls ({polls})"
    );
}

#[test]
fn destroy_reports_and_frees_the_pools() {
    let mut tb = Testbed::new();
    let (hp, pp, mut q) = setup(&mut tb, PoolMode::Page);
    for i in 0..3 {
        q.hdr_fill.push(&hp.desc(i)).unwrap();
        q.pay_fill.push(&pp.desc(i)).unwrap();
    }
    let r = tb.call(CtrlOp::DestroyRxQueue, &qa(0));
    assert_eq!(report(&r, 0).len(), 6);
    assert!(tb.fw.queue(0).is_none());
    assert_eq!(
        tb.nic_status(queue_region_bus(0)).0,
        QueueStatus::Stopped as u32
    );
    assert_eq!(
        tb.status(CtrlOp::DestroyRxQueue, &qa(0)),
        CtrlStatus::NotFound
    );
    assert_eq!(tb.status(CtrlOp::ResetQueue, &qa(0)), CtrlStatus::NotFound);
    tb.fw.hal_mut().rx.push(&tcp_frame(100, 1));
    tb.fw.poll();
    assert_eq!(tb.fw.device_stats().get(dev::DROP_NO_QUEUE), 1);
    assert_eq!(
        tb.status(
            CtrlOp::UnregisterPool,
            &PoolArgs {
                pool: 1,
                _pad: [0; 3]
            }
        ),
        CtrlStatus::Ok
    );
    assert_eq!(
        tb.status(
            CtrlOp::UnregisterPool,
            &PoolArgs {
                pool: 2,
                _pad: [0; 3]
            }
        ),
        CtrlStatus::Ok
    );
}

#[test]
fn read_stats_pages_match_the_counters() {
    let mut tb = Testbed::new();
    let (hp, pp, mut q) = setup(&mut tb, PoolMode::Page);
    q.hdr_fill.push(&hp.desc(0)).unwrap();
    q.pay_fill.push(&pp.desc(0)).unwrap();
    for s in 0..3 {
        tb.fw.hal_mut().rx.push(&tcp_frame(600, s));
    }
    tb.fw.poll();
    for (queue, total) in [(0u16, Q_COUNT), (u16::MAX, DEV_COUNT)] {
        let mut all = Vec::new();
        for page in 0.. {
            let r = tb.call(
                CtrlOp::ReadStats,
                &StatsArgs {
                    queue: U16::new(queue),
                    page: U16::new(page),
                },
            );
            if (page as usize) * STATS_PER_PAGE >= total {
                assert_eq!(r[0].status(), Some(CtrlStatus::Invalid));
                break;
            }
            let sp: StatsPage = r[0].args().unwrap();
            assert_eq!(
                (
                    sp.queue.get(),
                    sp.first.get() as usize,
                    sp.total.get() as usize
                ),
                (queue, page as usize * STATS_PER_PAGE, total)
            );
            all.extend(sp.values[..sp.count.get() as usize].iter().map(|v| v.get()));
        }
        assert_eq!(all.len(), total);
        if queue == 0 {
            assert_eq!(&all[..], &tb.fw.queue_stats(0).unwrap().0[..]);
            assert_eq!(all[q::RX_FRAMES], 1);
            assert_eq!(all[q::DROP_NO_HDR_BUF], 2);
        } else {
            assert_eq!(all[dev::MAC_FRAMES], 3);
        }
    }
    let r = tb.call(
        CtrlOp::ReadStats,
        &StatsArgs {
            queue: U16::new(5),
            page: U16::new(0),
        },
    );
    assert_eq!(r[0].status(), Some(CtrlStatus::NotFound));
}

#[test]
#[cfg_attr(
    feature = "cap-cortex-m",
    ignore = "needs the cap-host profile (3 queues, 6 pools)"
)]
fn rss_steers_by_toeplitz_hash() {
    let mut tb = Testbed::new();
    let mut queues = Vec::new();
    for qid in 0..3u16 {
        let (_, hp) = tb.register_pool(
            qid as u8 * 2,
            HDR_POOL_BUS + qid as u64 * (1 << 20),
            64,
            256,
            PoolMode::Page,
            0,
        );
        let (_, pp) = tb.register_pool(
            qid as u8 * 2 + 1,
            PAY_POOL_BUS + qid as u64 * (1 << 20),
            64,
            4096,
            PoolMode::Page,
            0,
        );
        let (s, mut q) = tb.create_queue(qid, hp.id, pp.id, 0, 64, 64);
        assert_eq!(s, CtrlStatus::Ok);
        for i in 0..64 {
            q.hdr_fill.push(&hp.desc(i)).unwrap();
            q.pay_fill.push(&pp.desc(i)).unwrap();
        }
        queues.push(q);
    }
    let mut key = MS_RSS_KEY;
    key[0] ^= 0x55;
    let a = RssArgs {
        queues: U16::new(2),
        _pad: U16::new(0),
        key,
    };
    assert_eq!(tb.status(CtrlOp::SetRss, &a), CtrlStatus::Ok);
    let bad = RssArgs {
        queues: U16::new(MAX_QUEUES as u16 + 1),
        _pad: U16::new(0),
        key,
    };
    assert_eq!(tb.status(CtrlOp::SetRss, &bad), CtrlStatus::Invalid);
    let mut per_queue = [0usize; 3];
    for s in 0..40u16 {
        let f = tcp_frame(200, 1000 + s);
        let r = split(
            &f,
            &SplitConfig {
                hds_thresh: 0,
                verify_icrc: false,
            },
        );
        let mut input = [0u8; 36];
        let n = flow_input(&f, &r, &mut input);
        assert_eq!(n, 12);
        let h = toeplitz_reference(&key, &input[..n]);
        let want = (h % 2) as usize;
        tb.fw.hal_mut().rx.push(&f);
        tb.fw.poll();
        let c = queues[want].completions();
        assert_eq!(c.len(), 1, "frame {s} on queue {want}");
        assert_eq!((c[0].flow_hash.get(), c[0].queue.get() as usize), (h, want));
        per_queue[want] += 1;
    }
    assert!(
        per_queue[0] > 5 && per_queue[1] > 5 && per_queue[2] == 0,
        "{per_queue:?}"
    );
    assert!(queues[2].completions().is_empty());
}

#[test]
fn control_ring_corruption_stops_only_the_control_plane() {
    let mut tb = Testbed::new();
    let (hp, pp, mut q) = setup(&mut tb, PoolMode::Page);
    // The host publishes an impossible request producer index.
    let req_ring = tb.ctrl_rings[0];
    // SAFETY: test writes the producer word of a ring it laid out.
    unsafe { std::ptr::write_volatile(req_ring.as_ptr().cast::<u32>(), 1000) };
    tb.fw.poll();
    assert!(tb.fw.control().is_faulted());
    assert_eq!(
        tb.nic_status(CTRL_BUS).0,
        QueueStatus::FaultRingCorrupt as u32
    );
    assert_eq!(tb.fw.device_stats().get(dev::CTRL_RING_FAULT), 1);
    // The datapath keeps running.
    q.hdr_fill.push(&hp.desc(0)).unwrap();
    q.pay_fill.push(&pp.desc(0)).unwrap();
    tb.fw.hal_mut().rx.push(&tcp_frame(300, 1));
    tb.fw.poll();
    assert_eq!(q.completions().len(), 1);
}
