//! Every legal and illegal ledger transition, with exact errors and counters; providers;
//! consumer handles; reconcile; deferred destroy.

use splitrx_host::ledger::{BufState, LedgerError, SlotView};
use splitrx_host::pool::{AuditReport, PagePool, PoolConfig, ReconcileReport};
use splitrx_host::provider::{
    DeviceWindow, DeviceWindowConfig, HostMemory, HostMemoryConfig, MemoryProvider, ProviderKind,
};
use splitrx_host::token::{consumer, Rx, Token, TokenError, TokenId};
use splitrx_shared::abi::{BufRef, FillDesc, PoolMode, RxCompletion};

fn host_pool(id: u8, count: u32, buf_size: u32, mode: PoolMode) -> PagePool {
    let mut cfg = PoolConfig::new(id);
    cfg.mode = mode;
    cfg.cache_size = 8;
    cfg.refill = 4;
    cfg.ring_size = 4;
    let prov = HostMemory::new(HostMemoryConfig {
        bus_base: Some(0x1_0000_0000),
        ..HostMemoryConfig::new(buf_size, count)
    });
    PagePool::new(cfg, Box::new(prov)).unwrap()
}

/// Writes `bytes` where the NIC would (the simulated DMA).
fn dma(pool: &PagePool, buf: BufRef, off: u32, bytes: &[u8]) {
    let r = pool.region();
    assert!(off as usize + bytes.len() <= r.buf_size as usize);
    // SAFETY: in bounds of the mapping (checked above), buffer is Posted (the NIC's to write).
    unsafe {
        let p = r
            .base
            .add(buf.index() as usize * r.buf_size as usize + off as usize);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
    }
}

fn view(state: BufState, nic: bool, filled: u32, lent: u32) -> Option<SlotView> {
    Some(SlotView {
        state,
        nic,
        filled,
        lent,
    })
}

#[test]
fn page_mode_lifecycle_and_bytes() {
    let mut p = host_pool(3, 4, 2048, PoolMode::Page);
    let mut d = [FillDesc::default(); 2];
    assert_eq!(p.fill(&mut d), 2);
    let b = d[0].buf;
    assert_eq!(b.pool(), 3);
    assert_eq!(d[0].bus_addr.get(), 0x1_0000_0000 + b.index() as u64 * 2048);
    assert_eq!(d[0].len.get(), 2048);
    assert_eq!(p.state(b), view(BufState::Posted, true, 0, 0));
    dma(&p, b, 100, b"payload!");
    let f = p.complete(b, 100, 8, false).unwrap(); // page mode: retired implied
    assert_eq!(p.state(b), view(BufState::Filled, false, 1, 0));
    assert_eq!(p.filled_bytes(&f), Some(&b"payload!"[..]));
    let t = p.lend(f).unwrap();
    assert_eq!(p.state(b), view(BufState::Lent, false, 0, 1));
    assert_eq!(t.bytes(), Some(&b"payload!"[..]));
    let loc = t.location();
    assert_eq!((loc.pool, loc.index, loc.len), (3, b.index(), 8));
    assert_eq!(loc.region_offset, b.index() as u64 * 2048 + 100);
    assert_eq!(loc.bus_addr, 0x1_0000_0000 + loc.region_offset);
    let a = p.audit().unwrap();
    assert_eq!(
        (a.free, a.posted, a.filled, a.lent, a.lent_frags),
        (2, 1, 0, 1, 1)
    );
    drop(t); // returns through the recycle ring
    assert_eq!(p.state(b), view(BufState::Free, false, 0, 0));
    let a = p.audit().unwrap();
    assert_eq!((a.free, a.posted, a.in_ring), (3, 1, 1));
    let c = p.ledger_counters();
    assert_eq!(
        (c.posted, c.completed, c.retired, c.lent, c.errors()),
        (2, 1, 1, 1, 0)
    );
}

#[test]
fn completion_errors_are_typed_counted_and_change_nothing() {
    let mut p = host_pool(1, 4, 1024, PoolMode::Page);
    let b = p.alloc().unwrap();
    let free = BufRef::new(1, 3).unwrap();
    assert_eq!(p.state(free), view(BufState::Free, false, 0, 0));
    let cases: Vec<(BufRef, u32, u32, LedgerError)> = vec![
        (
            free,
            0,
            10,
            LedgerError::NotPosted {
                buf: free,
                state: BufState::Free,
            },
        ),
        (
            BufRef::new(2, 0).unwrap(),
            0,
            10,
            LedgerError::WrongPool {
                buf: BufRef::new(2, 0).unwrap(),
                pool: 1,
            },
        ),
        (
            BufRef::new(1, 4).unwrap(),
            0,
            10,
            LedgerError::BadIndex {
                buf: BufRef::new(1, 4).unwrap(),
                count: 4,
            },
        ),
        (BufRef::NONE, 0, 10, LedgerError::NoBuffer),
        (
            b,
            1000,
            25,
            LedgerError::OutOfBounds {
                buf: b,
                off: 1000,
                len: 25,
                size: 1024,
            },
        ),
        (
            b,
            u32::MAX,
            2,
            LedgerError::OutOfBounds {
                buf: b,
                off: u32::MAX,
                len: 2,
                size: 1024,
            },
        ),
        (
            b,
            0,
            1025,
            LedgerError::OutOfBounds {
                buf: b,
                off: 0,
                len: 1025,
                size: 1024,
            },
        ),
    ];
    for (buf, off, len, e) in &cases {
        assert_eq!(p.check(*buf, *off, *len), Err(*e));
        assert_eq!(p.complete(*buf, *off, *len, true), Err(*e));
    }
    let c = p.ledger_counters();
    assert_eq!(
        (
            c.err_not_posted,
            c.err_wrong_pool,
            c.err_bad_index,
            c.err_no_buffer,
            c.err_out_of_bounds
        ),
        (1, 1, 1, 1, 3)
    );
    assert_eq!(c.completed, 0);
    assert_eq!(p.state(b), view(BufState::Posted, true, 0, 0));
    // Exactly at the end is fine.
    let f = p.complete(b, 1000, 24, true).unwrap();
    // A second completion for the same page-mode buffer: no longer posted.
    assert_eq!(
        p.complete(b, 0, 1, true),
        Err(LedgerError::NotPosted {
            buf: b,
            state: BufState::Filled
        })
    );
    p.drop_filled(f);
    assert_eq!(p.state(b), view(BufState::Free, false, 0, 0));
    // Retire of a buffer the NIC does not hold.
    assert_eq!(
        p.retire(b),
        Err(LedgerError::NotPosted {
            buf: b,
            state: BufState::Free
        })
    );
    assert_eq!(p.ledger_counters().err_not_posted, 3);
    p.audit().unwrap();
}

#[test]
fn packed_mode_fragments_refcount_and_order() {
    let mut p = host_pool(0, 2, 4096, PoolMode::Packed); // align 64
    let b = p.alloc().unwrap();
    dma(&p, b, 0, &[1; 100]);
    let f1 = p.complete(b, 0, 100, false).unwrap();
    // Offsets must be aligned and increasing.
    assert_eq!(
        p.complete(b, 100, 10, false),
        Err(LedgerError::Misaligned {
            buf: b,
            off: 100,
            align: 64
        })
    );
    assert_eq!(
        p.complete(b, 64, 10, false),
        Err(LedgerError::Overlap {
            buf: b,
            off: 64,
            watermark: 100
        })
    );
    dma(&p, b, 128, &[2; 50]);
    let f2 = p.complete(b, 128, 50, false).unwrap();
    assert_eq!(p.state(b), view(BufState::Filled, true, 2, 0));
    let t1 = p.lend(f1).unwrap();
    let t2 = p.lend(f2).unwrap();
    assert_eq!(p.state(b), view(BufState::Lent, true, 0, 2));
    assert_eq!(t1.bytes().unwrap(), &[1; 100][..]);
    assert_eq!(t2.bytes().unwrap(), &[2; 50][..]);
    drop(t1);
    drop(t2);
    // Both fragments back but the NIC still holds the buffer: Posted, not Free.
    assert_eq!(p.state(b), view(BufState::Posted, true, 0, 0));
    dma(&p, b, 192, &[3; 64]);
    let f3 = p.complete(b, 192, 64, true).unwrap(); // PAY_RETIRED
    let t3 = p.lend(f3).unwrap();
    assert_eq!(p.state(b), view(BufState::Lent, false, 0, 1));
    assert_eq!(
        p.complete(b, 256, 1, false),
        Err(LedgerError::NotPosted {
            buf: b,
            state: BufState::Lent
        })
    );
    let a = p.audit().unwrap();
    assert_eq!((a.free, a.lent, a.lent_frags), (1, 1, 1));
    drop(t3); // last fragment of a retired buffer: free
    assert_eq!(p.state(b), view(BufState::Free, false, 0, 0));
    p.audit().unwrap();
    // Retire without a fragment (FLUSH): posted -> free directly.
    let b2 = p.alloc().unwrap();
    p.retire(b2).unwrap();
    assert_eq!(p.state(b2), view(BufState::Free, false, 0, 0));
    let c = p.ledger_counters();
    assert_eq!(
        (c.err_misaligned, c.err_overlap, c.err_not_posted),
        (1, 1, 1)
    );
    p.audit().unwrap();
}

#[test]
fn packed_retire_while_fragments_lent_frees_on_last_return() {
    let mut p = host_pool(0, 1, 4096, PoolMode::Packed);
    let b = p.alloc().unwrap();
    let t = lend(&mut p, b, 0, 10, false);
    p.retire(b).unwrap();
    assert_eq!(p.state(b), view(BufState::Lent, false, 0, 1));
    assert_eq!(p.alloc(), None, "the only buffer is lent");
    assert_eq!(p.stats().alloc_failed, 1);
    drop(t);
    assert_eq!(p.alloc(), Some(b), "back through the ring");
    assert_eq!(p.stats().alloc_refill, 1);
}

fn lend(p: &mut PagePool, b: BufRef, off: u32, len: u32, retired: bool) -> Token {
    let f = p.complete(b, off, len, retired).unwrap();
    p.lend(f).unwrap()
}

#[test]
fn bulk_return_by_id_detects_double_and_unknown() {
    let mut p = host_pool(0, 4, 256, PoolMode::Page);
    let (tx, mut h) = consumer();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let b = p.alloc().unwrap();
        let t = lend(&mut p, b, 0, 16, true);
        tx.send(Rx {
            completion: RxCompletion::default(),
            header: None,
            payload: Some(t),
        })
        .unwrap();
        let rx = h.try_recv().unwrap();
        ids.push(h.detach(rx.payload.unwrap()));
    }
    assert_eq!(h.detached(), 3);
    assert_eq!(p.stats().tokens_outstanding, 3);
    let r = h.return_ids(&[ids[0], ids[2], ids[0], TokenId(0), TokenId(77 << 32 | 9)]);
    assert_eq!(r.returned, 2);
    assert_eq!(
        r.errors,
        vec![
            TokenError::AlreadyReturned(ids[0]),
            TokenError::Unknown(TokenId(0)),
            TokenError::Unknown(TokenId(77 << 32 | 9))
        ]
    );
    assert_eq!(p.stats().tokens_outstanding, 1);
    // Slot reuse: the old id of a reused slot is still "already returned".
    let b = p.alloc().unwrap();
    let id_new = h.detach(lend(&mut p, b, 0, 1, true));
    assert_eq!(id_new.0 & 0xffff_ffff, ids[2].0 & 0xffff_ffff);
    assert_ne!(id_new, ids[2]);
    assert_eq!(
        h.return_ids(&[ids[2]]).errors,
        vec![TokenError::AlreadyReturned(ids[2])]
    );
    let s = h.stats();
    assert_eq!(
        (
            s.detached,
            s.returned_by_id,
            s.err_already_returned,
            s.err_unknown
        ),
        (4, 2, 2, 2)
    );
    // Close reclaims the rest: ids[1], id_new, and one frame never received.
    let b = p.alloc().unwrap();
    let t = lend(&mut p, b, 0, 1, true);
    tx.send(Rx {
        completion: RxCompletion::default(),
        header: None,
        payload: Some(t),
    })
    .unwrap();
    let rep = h.close();
    assert_eq!((rep.detached, rep.undelivered), (2, 1));
    assert_eq!(p.stats().tokens_outstanding, 0);
    let a = p.audit().unwrap();
    assert_eq!(a.free, 4);
    // Sending to a closed consumer hands the frame back; dropping it returns the token.
    let b = p.alloc().unwrap();
    let t = lend(&mut p, b, 0, 1, true);
    let back = tx.send(Rx {
        completion: RxCompletion::default(),
        header: None,
        payload: Some(t),
    });
    assert!(back.is_err());
    drop(back);
    assert_eq!(p.audit().unwrap().free, 4);
}

#[test]
fn reconcile_frees_unreported_keeps_reported_rejects_unknown() {
    let mut p = host_pool(2, 8, 512, PoolMode::Page);
    let bufs: Vec<BufRef> = (0..6).map(|_| p.alloc().unwrap()).collect();
    // bufs[0]: completed and lent; bufs[1]: completed, filled (held by the poller).
    let t0 = lend(&mut p, bufs[0], 0, 4, true);
    let f1 = p.complete(bufs[1], 0, 4, true).unwrap();
    let free_buf = BufRef::new(2, 7).unwrap();
    let report = [
        bufs[2],
        bufs[3],
        bufs[3],
        bufs[0],
        free_buf,
        BufRef::new(9, 1).unwrap(),
    ];
    let r = p.reconcile(&report);
    assert_eq!(
        r,
        ReconcileReport {
            kept: 2,
            freed: 2,
            retired_in_use: 0,
            unknown: vec![bufs[0], free_buf, BufRef::new(9, 1).unwrap()],
            duplicates: 1,
        }
    );
    assert_eq!(p.state(bufs[2]), view(BufState::Posted, true, 0, 0));
    assert_eq!(p.state(bufs[4]), view(BufState::Free, false, 0, 0));
    assert_eq!(p.state(bufs[5]), view(BufState::Free, false, 0, 0));
    let c = p.ledger_counters();
    assert_eq!(
        (
            c.err_reconcile_unknown,
            c.err_reconcile_duplicate,
            c.reconciled_freed
        ),
        (3, 1, 2)
    );
    let a = p.audit().unwrap();
    assert_eq!(
        a,
        AuditReport {
            total: 8,
            free: 4,
            posted: 2,
            filled: 1,
            lent: 1,
            filled_frags: 1,
            lent_frags: 1,
            in_cache: 4,
            in_ring: 0,
            in_provider: 0,
            parked: 0
        }
    );
    drop(t0);
    p.drop_filled(f1);
    // A second reset where the NIC reports nothing: the two kept buffers come back.
    let r = p.reconcile(&[]);
    assert_eq!((r.kept, r.freed), (0, 2));
    assert_eq!(p.audit().unwrap().free, 8);
}

#[test]
fn reconcile_packed_in_use_retires_then_frees() {
    let mut p = host_pool(0, 2, 4096, PoolMode::Packed);
    let b = p.alloc().unwrap();
    let t = lend(&mut p, b, 0, 10, false);
    let r = p.reconcile(&[]);
    assert_eq!((r.freed, r.retired_in_use), (0, 1));
    assert_eq!(p.state(b), view(BufState::Lent, false, 0, 1));
    drop(t);
    assert_eq!(p.state(b), view(BufState::Free, false, 0, 0));
    p.audit().unwrap();
}

#[test]
fn cache_ring_and_provider_counters() {
    // cache 8, refill 4, ring 4, 32 buffers.
    let mut p = host_pool(0, 32, 64, PoolMode::Page);
    let bufs: Vec<BufRef> = (0..32).map(|_| p.alloc().unwrap()).collect();
    assert_eq!(p.alloc(), None);
    let mut d = [FillDesc::default(); 3];
    assert_eq!(p.fill(&mut d), 0, "exhausted pool fills nothing");
    let s = p.stats();
    // 8 slow refills of 4 from the provider, then two failed attempts (ring and provider
    // empty): `alloc` and `fill`.
    assert_eq!(
        (s.alloc_fast, s.alloc_slow, s.alloc_empty, s.alloc_failed),
        (32, 10, 10, 2)
    );
    assert_eq!(s.inflight, 32);
    let toks: Vec<_> = bufs.iter().map(|&b| lend(&mut p, b, 0, 1, true)).collect();
    assert_eq!(p.stats().tokens_outstanding, 32);
    drop(toks); // 4 fit the ring, 28 go back to the provider
    let s = p.stats();
    assert_eq!(
        (s.recycle_ring, s.recycle_ring_full, s.recycle_released),
        (4, 28, 28)
    );
    assert_eq!((s.inflight, s.tokens_outstanding), (0, 0));
    let a = p.audit().unwrap();
    assert_eq!((a.in_ring, a.in_provider, a.in_cache), (4, 28, 0));
    // 10 allocations: 4 refilled from the ring, 6 from the provider in two bulk refills of 4
    // (2 left in the cache). Flushing the 10: 6 fit the cache (8), 4 overflow into the ring.
    let more: Vec<BufRef> = (0..10).map(|_| p.alloc().unwrap()).collect();
    let s0 = p.stats();
    assert_eq!(s0.alloc_refill, 4);
    for b in more {
        p.retire(b).unwrap();
    }
    let s = p.stats();
    assert_eq!((s0.alloc_slow, s0.alloc_empty, s0.alloc_fast), (12, 12, 42));
    assert_eq!(
        (s.recycle_cached - s0.recycle_cached, s.recycle_cache_full),
        (6, 4)
    );
    assert_eq!((s.recycle_ring, s.recycle_ring_full), (8, 28));
    let a = p.audit().unwrap();
    assert_eq!(
        (a.in_cache, a.in_ring, a.in_provider, a.free),
        (8, 4, 20, 32)
    );
}

#[test]
fn deferred_destroy_completes_on_last_token_from_another_thread() {
    let mut p = host_pool(0, 8, 128, PoolMode::Page);
    let h = p.stats_handle();
    let posted = p.alloc().unwrap();
    let _ = posted;
    let filled = p.alloc().unwrap();
    let f = p.complete(filled, 0, 1, true).unwrap();
    let toks: Vec<_> = (0..3)
        .map(|_| {
            let b = p.alloc().unwrap();
            lend(&mut p, b, 0, 1, true)
        })
        .collect();
    drop(f); // a Filled the poller dropped on the floor: destroy reclaims it
    let rep = p.destroy();
    assert_eq!(
        (
            rep.retired_posted,
            rep.dropped_filled,
            rep.tokens_outstanding,
            rep.deferred
        ),
        (1, 1, 3, true)
    );
    let st = h.destroy_status();
    assert!(st.requested && st.deferred && !st.completed);
    assert_eq!(st.tokens_outstanding, 3);
    let mut toks = toks;
    let last = toks.pop().unwrap();
    drop(toks);
    assert_eq!(h.destroy_status().tokens_outstanding, 1);
    assert!(!h.destroy_status().completed);
    std::thread::spawn(move || drop(last)).join().unwrap();
    let st = h.destroy_status();
    assert!(st.completed);
    assert_eq!((st.tokens_outstanding, st.lost), (0, 0));
}

#[test]
fn immediate_destroy() {
    let mut p = host_pool(0, 8, 128, PoolMode::Page);
    let h = p.stats_handle();
    let _ = p.alloc().unwrap();
    let rep = p.destroy();
    assert_eq!((rep.retired_posted, rep.deferred), (1, false));
    let st = h.destroy_status();
    assert!(st.requested && !st.deferred && st.completed);
    assert_eq!(st.lost, 0);
}

#[test]
fn hugepage_fallback_is_counted() {
    let before = HostMemory::global_hugepage_fallbacks();
    let mut cfg = HostMemoryConfig::new(4096, 16);
    cfg.huge_pages = true;
    cfg.force_hugepage_failure = true;
    let mut m = HostMemory::new(cfg);
    let r = m.init().unwrap();
    assert!(!r.base.is_null());
    let d = m.describe();
    assert_eq!(
        (
            d.hugepages_requested,
            d.hugepages,
            d.hugepage_fallbacks,
            d.held
        ),
        (true, false, 1, 16)
    );
    assert_eq!(d.kind, ProviderKind::HostMemory);
    assert_eq!(HostMemory::global_hugepage_fallbacks(), before + 1);
    // A real attempt: either the system has huge pages or the fallback is counted.
    let mut cfg = HostMemoryConfig::new(4096, 16);
    cfg.huge_pages = true;
    let mut m = HostMemory::new(cfg);
    m.init().unwrap();
    let d = m.describe();
    assert!(d.hugepages ^ (d.hugepage_fallbacks == 1), "{d:?}");
    // Double init is an error.
    assert!(m.init().is_err());
}

#[test]
fn device_window_over_a_shared_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpu-bar");
    let mut cfg = DeviceWindowConfig::create(&path, 4096, 16, 0xfe00_0000);
    cfg.host_readable = false;
    let mut pool = PagePool::new(PoolConfig::new(5), Box::new(DeviceWindow::new(cfg))).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096 * 16);
    let info = pool.provider_info();
    assert_eq!(
        (info.kind, info.bus_base, info.host_readable, info.count),
        (ProviderKind::DeviceWindow, 0xfe00_0000, false, 16)
    );
    let b = pool.alloc().unwrap();
    assert_eq!(
        pool.bus_addr(b),
        Some(0xfe00_0000 + b.index() as u64 * 4096)
    );
    // The "NIC" (another mapping of the same file) writes the payload.
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.seek(SeekFrom::Start(b.index() as u64 * 4096 + 32))
            .unwrap();
        f.write_all(b"gpu").unwrap();
    }
    let t = lend(&mut pool, b, 32, 3, true);
    assert_eq!(t.bytes(), None, "device memory is not host-readable");
    let loc = t.location();
    assert_eq!(
        (loc.region_offset, loc.bus_addr, loc.len),
        (
            b.index() as u64 * 4096 + 32,
            0xfe00_0000 + b.index() as u64 * 4096 + 32,
            3
        )
    );
    // Readable flavour: opening the same (existing) file sees the bytes.
    let cfg2 = DeviceWindowConfig::open(&path, 4096, 16, 0);
    let mut dw = DeviceWindow::new(cfg2);
    let r = dw.init().unwrap();
    // SAFETY: in bounds of the 64 KiB mapping.
    let got = unsafe { std::slice::from_raw_parts(r.base.add(loc.region_offset as usize), 3) };
    assert_eq!(got, b"gpu");
    // Opening without create a file that is too small is an error.
    let small = dir.path().join("small");
    std::fs::write(&small, [0u8; 100]).unwrap();
    assert!(
        DeviceWindow::new(DeviceWindowConfig::open(&small, 4096, 16, 0))
            .init()
            .is_err()
    );
    drop(t);
    pool.audit().unwrap();
}

#[test]
fn owner_put_recycles_into_the_cache_and_foreign_tokens_go_home() {
    let mut p = host_pool(0, 4, 256, PoolMode::Packed);
    let mut q = host_pool(1, 4, 256, PoolMode::Page);
    let b = p.alloc().unwrap();
    let t1 = lend(&mut p, b, 0, 8, false);
    let t2 = lend(&mut p, b, 64, 8, true);
    let cached = p.stats().recycle_cached;
    p.put(t1); // two lent: CAS path, buffer stays Lent
    assert_eq!(p.state(b), view(BufState::Lent, false, 0, 1));
    p.put(t2); // last one: plain store, straight into the cache
    assert_eq!(p.state(b), view(BufState::Free, false, 0, 0));
    assert_eq!(p.stats().recycle_cached, cached + 1);
    assert_eq!(p.audit().unwrap().in_ring, 0);
    // A token of pool 1 handed to pool 0's put goes back to pool 1.
    let qb = q.alloc().unwrap();
    let tq = lend(&mut q, qb, 0, 1, true);
    p.put(tq);
    assert_eq!(q.state(qb), view(BufState::Free, false, 0, 0));
    assert_eq!(
        (p.ledger_counters().errors(), q.ledger_counters().errors()),
        (0, 0)
    );
    p.audit().unwrap();
    q.audit().unwrap();
}

#[test]
fn metadata_per_buffer_at_most_16_bytes() {
    let p = PagePool::new(
        PoolConfig::new(0),
        Box::new(HostMemory::new(HostMemoryConfig::new(4096, 65536))),
    )
    .unwrap();
    let m = p.metadata_bytes();
    // 4 (ledger word) + 4 (watermark) per buffer; provider free list 4 + 1 per buffer.
    assert_eq!(m.ledger, 65536 * 8);
    assert_eq!(m.provider, 65536 * 5);
    assert!(m.per_buffer() <= 16.0, "{m:?}");
}

/// A `Filled` from one pool handed to another pool with the same id (issue 9, defect 2): it
/// used to yield a slice past the end of the other pool's mapping, or corrupt a free buffer's
/// ledger word. Now every use checks the pool instance: refused, counted, nothing touched.
#[test]
fn a_filled_fragment_of_another_pool_is_refused() {
    let mut a = host_pool(0, 128, 4096, PoolMode::Page);
    let mut b = host_pool(0, 4, 4096, PoolMode::Page);
    // Post every buffer of A; complete index 100 (beyond B's 4 buffers) and index 1.
    let mut bufs = Vec::new();
    while let Some(x) = a.alloc() {
        bufs.push(x);
    }
    let far = bufs.iter().copied().find(|x| x.index() == 100).unwrap();
    let near = bufs.iter().copied().find(|x| x.index() == 1).unwrap();
    let f_far = a.complete(far, 0, 64, true).unwrap();
    let f_near = a.complete(near, 0, 64, true).unwrap();
    let b_before = b.audit().unwrap();
    assert_eq!(b.filled_bytes(&f_far), None, "no slice past B's mapping");
    assert_eq!(
        b.lend(f_far).err(),
        Some(LedgerError::ForeignFilled { buf: far })
    );
    b.drop_filled(f_near);
    assert_eq!(b.ledger_counters().err_wrong_pool, 2);
    assert_eq!(b.audit().unwrap(), b_before, "B's ledger untouched");
    // A's buffers stay Filled (the caller lost its fragments; nothing was corrupted).
    assert_eq!(a.state(far), view(BufState::Filled, false, 1, 0));
    assert_eq!(a.state(near), view(BufState::Filled, false, 1, 0));
    // The same fragment in its own pool works.
    let f = a.complete(bufs[0], 0, 10, true).unwrap();
    assert_eq!(a.filled_bytes(&f).map(<[u8]>::len), Some(10));
    let t = a.lend(f).unwrap();
    drop(t);
}
