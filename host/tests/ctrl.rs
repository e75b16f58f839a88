//! The control-plane client against a scripted firmware responder, including hostile answers.

use splitrx_host::ctrl::{CtrlClient, CtrlError};
use splitrx_shared::abi::*;
use splitrx_shared::region::RegionLayout;
use splitrx_shared::ring::{Consumer, Producer};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use zerocopy::little_endian::{U16, U32, U64};

/// A 4 KiB-aligned heap region standing in for shared memory.
struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}
impl Mem {
    fn new(len: usize) -> Mem {
        let layout = Layout::from_size_align(len, 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        Mem { ptr, layout }
    }
}
impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Client plus the firmware-side ring ends.
struct Rig {
    client: CtrlClient,
    fw_req: Consumer<CtrlMsg>,
    fw_resp: Producer<CtrlMsg>,
    _mem: Mem,
}

fn rig() -> Rig {
    let l = RegionLayout::new(
        u16::MAX,
        &[(RingKind::CtrlRequest, 16), (RingKind::CtrlResponse, 16)],
    )
    .unwrap();
    let mem = Mem::new(l.size as usize);
    // SAFETY: fresh memory of the right size; each ring gets exactly one producer and one consumer;
    // `mem` outlives the handles (it is dropped last, in `Rig`).
    unsafe {
        l.init(mem.ptr, l.size as usize).unwrap();
        let client = CtrlClient::new(
            l.producer(mem.ptr, RingKind::CtrlRequest).unwrap(),
            l.consumer(mem.ptr, RingKind::CtrlResponse).unwrap(),
        );
        Rig {
            client,
            fw_req: l.consumer(mem.ptr, RingKind::CtrlRequest).unwrap(),
            fw_resp: l.producer(mem.ptr, RingKind::CtrlResponse).unwrap(),
            _mem: mem,
        }
    }
}

/// A waiter that answers the pending request with `script(request)` once, then gives up after a
/// bounded number of polls.
fn responder<'a>(
    req: &'a mut Consumer<CtrlMsg>,
    resp: &'a mut Producer<CtrlMsg>,
    mut script: impl FnMut(&CtrlMsg) -> Vec<CtrlMsg> + 'a,
) -> impl FnMut() -> bool + 'a {
    let mut polls = 0;
    move || {
        polls += 1;
        if let Some(r) = req.pop().unwrap() {
            for m in script(&r) {
                assert!(resp.push(&m).unwrap(), "response ring full in test");
            }
        }
        polls < 100
    }
}

fn reply<A: zerocopy::IntoBytes + zerocopy::Immutable>(
    r: &CtrlMsg,
    status: CtrlStatus,
    a: &A,
) -> CtrlMsg {
    CtrlMsg::with_args(r.seq.get(), r.op().unwrap(), status, a)
}

#[test]
fn version_roundtrip() {
    let mut g = rig();
    let v = VersionInfo {
        abi_version: U32::new(ABI_VERSION),
        fw_version: U32::new(0x0001_0200),
        max_queues: U16::new(8),
        max_pools: U16::new(16),
        caps: U32::new(3),
    };
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        assert_eq!(r.op(), Some(CtrlOp::GetVersion));
        vec![reply(r, CtrlStatus::Ok, &v)]
    });
    let got = g.client.get_version(&mut w).unwrap();
    assert_eq!(got.fw_version.get(), 0x0001_0200);
    assert_eq!(got.max_queues.get(), 8);
    assert_eq!(g.client.stats().requests, 1);
}

#[test]
fn error_status_is_typed() {
    let mut g = rig();
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        vec![reply(r, CtrlStatus::NotFound, &[0u8; 0])]
    });
    assert_eq!(
        g.client.destroy_rx_queue(9, &mut w),
        Err(CtrlError::Status {
            op: CtrlOp::DestroyRxQueue,
            status: CtrlStatus::NotFound
        })
    );
    assert_eq!(g.client.stats().errors, 1);
}

#[test]
fn timeout_then_stale_answer_is_skipped() {
    let mut g = rig();
    // Nobody answers: the call times out.
    let mut polls = 0;
    let mut never = || {
        polls += 1;
        polls < 10
    };
    let e = g.client.set_hds_thresh(0, 128, &mut never).unwrap_err();
    assert!(matches!(
        e,
        CtrlError::Timeout {
            op: CtrlOp::SetHdsThresh,
            seq: 1
        }
    ));
    // The late answer to seq 1 arrives together with the answer to seq 2.
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        if r.seq.get() == 1 {
            return vec![];
        }
        let late = CtrlMsg::with_args(1, CtrlOp::SetHdsThresh, CtrlStatus::Ok, &[0u8; 0]);
        vec![late, reply(r, CtrlStatus::Ok, &[0u8; 0])]
    });
    g.client.set_hds_thresh(0, 256, &mut w).unwrap();
    assert_eq!(g.client.stats().stale, 1);
    assert_eq!(g.client.stats().timeouts, 1);
}

#[test]
fn hostile_answers_are_protocol_errors() {
    // Future sequence number.
    let mut g = rig();
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        vec![CtrlMsg::with_args(
            r.seq.get() + 5,
            CtrlOp::SetHdsThresh,
            CtrlStatus::Ok,
            &[0u8; 0],
        )]
    });
    assert!(matches!(
        g.client.set_hds_thresh(0, 1, &mut w),
        Err(CtrlError::Protocol(_))
    ));
    // Opcode not echoed.
    let mut g = rig();
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        vec![CtrlMsg::with_args(
            r.seq.get(),
            CtrlOp::GetVersion,
            CtrlStatus::Ok,
            &[0u8; 0],
        )]
    });
    assert!(matches!(
        g.client.set_hds_thresh(0, 1, &mut w),
        Err(CtrlError::Protocol(_))
    ));
    // Unknown status code.
    let mut g = rig();
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        let mut m = reply(r, CtrlStatus::Ok, &[0u8; 0]);
        m.status = U16::new(0x7777);
        vec![m]
    });
    assert!(matches!(
        g.client.set_hds_thresh(0, 1, &mut w),
        Err(CtrlError::Protocol(_))
    ));
}

fn outstanding(queue: u16, bufs: &[u32], total: u32) -> OutstandingArgs {
    let mut a = OutstandingArgs {
        queue: U16::new(queue),
        count: bufs.len() as u8,
        total: U32::new(total),
        ..Default::default()
    };
    for (i, b) in bufs.iter().enumerate() {
        a.bufs[i] = BufRef::from_raw(*b);
    }
    a
}

#[test]
fn reset_report_is_collected_and_checked() {
    let mut g = rig();
    let first: Vec<u32> = (0..12).collect();
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        vec![
            reply(r, CtrlStatus::More, &outstanding(2, &first, 0)),
            reply(r, CtrlStatus::Ok, &outstanding(2, &[100, 101], 14)),
        ]
    });
    let got = g.client.reset_queue(2, &mut w).unwrap();
    let want: Vec<BufRef> = (0..12).chain([100, 101]).map(BufRef::from_raw).collect();
    assert_eq!(got, want);

    // A total that disagrees with what was sent.
    let mut g = rig();
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        vec![reply(r, CtrlStatus::Ok, &outstanding(2, &[1], 5))]
    });
    assert!(matches!(
        g.client.reset_queue(2, &mut w),
        Err(CtrlError::Protocol(_))
    ));

    // A batch count beyond the record's capacity.
    let mut g = rig();
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        let mut a = outstanding(2, &[], 0);
        a.count = 13;
        vec![reply(r, CtrlStatus::Ok, &a)]
    });
    assert!(matches!(
        g.client.reset_queue(2, &mut w),
        Err(CtrlError::Protocol(_))
    ));

    // A report for another queue.
    let mut g = rig();
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        vec![reply(r, CtrlStatus::Ok, &outstanding(3, &[], 0))]
    });
    assert!(matches!(
        g.client.reset_queue(2, &mut w),
        Err(CtrlError::Protocol(_))
    ));
}

#[test]
fn stats_pages_are_stitched_and_checked() {
    let mut g = rig();
    let values: Vec<u64> = (0..9).map(|i| i * 1000).collect();
    let vals = values.clone();
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, move |r| {
        let a: StatsArgs = r.args().unwrap();
        let first = a.page.get() as usize * STATS_PER_PAGE;
        let n = (vals.len() - first).min(STATS_PER_PAGE);
        let mut p = StatsPage {
            queue: a.queue,
            first: U16::new(first as u16),
            count: U16::new(n as u16),
            total: U16::new(vals.len() as u16),
            ..Default::default()
        };
        for i in 0..n {
            p.values[i] = U64::new(vals[first + i]);
        }
        vec![reply(r, CtrlStatus::Ok, &p)]
    });
    assert_eq!(g.client.read_stats(1, &mut w).unwrap(), values);

    // A page that skips ahead.
    let mut g = rig();
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        let p = StatsPage {
            queue: U16::new(1),
            first: U16::new(6),
            count: U16::new(1),
            total: U16::new(9),
            ..Default::default()
        };
        vec![reply(r, CtrlStatus::Ok, &p)]
    });
    assert!(matches!(
        g.client.read_stats(1, &mut w),
        Err(CtrlError::Protocol(_))
    ));
}

#[test]
fn destroy_collects_the_buffer_report() {
    // The firmware answers DestroyRxQueue like ResetQueue when it still held buffers.
    let mut g = rig();
    let first: Vec<u32> = (0..12).collect();
    {
        let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
            assert_eq!(r.op(), Some(CtrlOp::DestroyRxQueue));
            vec![
                reply(r, CtrlStatus::More, &outstanding(4, &first, 0)),
                reply(r, CtrlStatus::Ok, &outstanding(4, &[77], 13)),
            ]
        });
        let got = g.client.destroy_rx_queue(4, &mut w).unwrap();
        let want: Vec<BufRef> = (0..12).chain([77]).map(BufRef::from_raw).collect();
        assert_eq!(got, want);
    }
    // An empty report is a single Ok part with total 0.
    let mut w = responder(&mut g.fw_req, &mut g.fw_resp, |r| {
        vec![reply(r, CtrlStatus::Ok, &outstanding(4, &[], 0))]
    });
    assert_eq!(g.client.destroy_rx_queue(4, &mut w).unwrap(), vec![]);
}
