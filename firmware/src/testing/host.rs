//! The `std` extras of the test fakes (feature `std`, or unit tests): Vec-backed arenas and a
//! host-side test driver.
//!
//! - [`Memory`]: bus-addressed arenas standing in for host memory and the GPU BAR (the
//!   [`BusMemory`] the core fakes [`FakeMem`] and [`FakeDma`] use here);
//! - [`FakeMac`] (frames queued by the test), [`RepeatMac`] (one frame N times), [`FakeTx`];
//! - [`Testbed`]: the firmware plus the host's side of the control ring and queue rings, laid
//!   out in the arenas the way the host crate lays them out.
//!
//! Used by the integration tests, the fuzz targets and the benchmarks.

use super::{lay_out_region, BusMemory, FakeClock, FakeDma, FakeMem, HostPool};
use crate::hal::{Hal, HalParts, MacRx, MacTx, RxFrame, TxError};
use crate::Firmware;
use core::mem::offset_of;
use core::ptr::NonNull;
use splitrx_shared::abi::{
    qp_attr, qp_state, BufRef, CreateQpArgs, CreateRxQueueArgs, CreateSrqArgs, CtrlMsg, CtrlOp,
    CtrlStatus, FillDesc, ModifyQpArgs, PoolMode, QueueHeader, RecvWqe, RegisterMrArgs,
    RegisterPoolArgs, RingKind, RoceCqe, RxCompletion, SendWqe, NO_SRQ,
};
use splitrx_shared::ring::{Consumer, Producer, RingEntry};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::VecDeque;
use std::rc::Rc;
use std::vec;
use std::vec::Vec;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{Immutable, IntoBytes};

/// One bus-addressed arena (page-aligned, zeroed). Allocated with calloc's alignment and
/// aligned by hand: `alloc_zeroed` with a 4096 alignment would memset the whole arena, while
/// calloc hands out lazily zeroed pages (what makes the fuzz targets fast).
#[derive(Debug)]
pub struct Arena {
    raw: NonNull<u8>,
    ptr: NonNull<u8>,
    len: usize,
    bus: u64,
}

impl Arena {
    pub fn new(bus: u64, len: usize) -> Arena {
        assert!(len > 0);
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size.
        let raw = NonNull::new(unsafe { alloc_zeroed(layout) }).expect("arena alloc");
        let pad = raw.as_ptr().align_offset(4096);
        // SAFETY: pad < 4096 and the allocation is len + 4096 bytes long.
        let ptr = unsafe { NonNull::new_unchecked(raw.as_ptr().add(pad)) };
        Arena { raw, ptr, len, bus }
    }
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len + 4096, 16).expect("arena layout")
    }
    fn offset(&self, bus: u64, len: usize) -> Option<usize> {
        let off = bus.checked_sub(self.bus)?;
        let end = off.checked_add(len as u64)?;
        (end <= self.len as u64).then_some(off as usize)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.raw.as_ptr(), Self::layout(self.len)) }
    }
}

/// The bus address space of a test: a set of arenas. Shared (Rc) between the fakes and the
/// test's host side; all access goes through raw pointers (both "sides" run on one thread).
#[derive(Debug, Default)]
pub struct Memory {
    arenas: Vec<Arena>,
}

impl Memory {
    pub fn new(arenas: Vec<Arena>) -> Rc<Memory> {
        Rc::new(Memory { arenas })
    }
    /// Pointer to `[bus, bus+len)` if it lies in one arena.
    pub fn ptr(&self, bus: u64, len: usize) -> Option<NonNull<u8>> {
        self.arenas.iter().find_map(|a| {
            let off = a.offset(bus, len)?;
            // SAFETY: off + len <= a.len.
            Some(unsafe { NonNull::new_unchecked(a.ptr.as_ptr().add(off)) })
        })
    }
    /// Copies `len` bytes out of the bus range (panics if unmapped: test helper).
    pub fn read(&self, bus: u64, len: usize) -> Vec<u8> {
        let p = self.ptr(bus, len).expect("read of unmapped bus range");
        let mut v = vec![0u8; len];
        // SAFETY: `ptr` checked the range is inside an arena.
        unsafe { core::ptr::copy_nonoverlapping(p.as_ptr(), v.as_mut_ptr(), len) };
        v
    }
    /// Writes bytes at a bus address; `false` when unmapped.
    pub fn write(&self, bus: u64, data: &[u8]) -> bool {
        match self.ptr(bus, data.len()) {
            Some(p) => {
                // SAFETY: `ptr` checked the range is inside an arena.
                unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), p.as_ptr(), data.len()) };
                true
            }
            None => false,
        }
    }
    /// Fills a bus range with a byte.
    pub fn fill(&self, bus: u64, len: usize, v: u8) {
        if let Some(p) = self.ptr(bus, len) {
            // SAFETY: in range.
            unsafe { core::ptr::write_bytes(p.as_ptr(), v, len) };
        }
    }
}

/// MAC fake: frames queued by the test, delivered in order.
#[derive(Debug, Default)]
pub struct FakeMac {
    pub frames: VecDeque<(Vec<u8>, u64)>,
}

impl FakeMac {
    pub fn push(&mut self, f: &[u8]) {
        let ts = self.frames.len() as u64 * 1000;
        self.frames.push_back((f.to_vec(), ts));
    }
}

impl MacRx for FakeMac {
    fn peek(&mut self) -> Option<RxFrame<'_>> {
        self.frames.front().map(|(d, ts)| RxFrame {
            data: d,
            timestamp_ns: *ts,
        })
    }
    fn release(&mut self) {
        self.frames.pop_front();
    }
}

/// MAC fake for benchmarks: the same frame `remaining` times.
#[derive(Debug, Default)]
pub struct RepeatMac {
    pub frame: Vec<u8>,
    pub remaining: u64,
}

impl MacRx for RepeatMac {
    #[inline]
    fn peek(&mut self) -> Option<RxFrame<'_>> {
        (self.remaining > 0).then_some(RxFrame {
            data: &self.frame,
            timestamp_ns: self.remaining,
        })
    }
    #[inline]
    fn release(&mut self) {
        self.remaining = self.remaining.saturating_sub(1);
    }
}

/// MAC fake for benchmarks: cycles through a list of frames, `remaining` in all.
#[derive(Debug, Default)]
pub struct ListMac {
    pub frames: Vec<Vec<u8>>,
    pub next: usize,
    pub remaining: u64,
}

impl MacRx for ListMac {
    #[inline]
    fn peek(&mut self) -> Option<RxFrame<'_>> {
        if self.remaining == 0 || self.frames.is_empty() {
            return None;
        }
        Some(RxFrame {
            data: &self.frames[self.next % self.frames.len()],
            timestamp_ns: self.remaining,
        })
    }
    #[inline]
    fn release(&mut self) {
        if self.remaining > 0 {
            self.remaining -= 1;
            self.next += 1;
        }
    }
}

#[derive(Debug, Default)]
pub struct FakeTx {
    pub sent: Vec<Vec<u8>>,
    /// Refuse the next N frames with `TxError::Busy`.
    pub busy: u32,
}
impl MacTx for FakeTx {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        if self.busy > 0 {
            self.busy -= 1;
            return Err(TxError::Busy);
        }
        self.sent.push(frame.to_vec());
        Ok(())
    }
}

impl BusMemory for Memory {
    fn ptr(&self, bus: u64, len: usize) -> Option<NonNull<u8>> {
        Memory::ptr(self, bus, len)
    }
}

impl BusMemory for Rc<Memory> {
    fn ptr(&self, bus: u64, len: usize) -> Option<NonNull<u8>> {
        Memory::ptr(self, bus, len)
    }
}

/// The fake HAL over [`Memory`], generic over the MAC fake.
#[derive(Debug)]
pub struct FakeHal<R = FakeMac>(core::marker::PhantomData<R>);
impl<R: MacRx> Hal for FakeHal<R> {
    type Rx = R;
    type Tx = FakeTx;
    type Dma = FakeDma<Rc<Memory>>;
    type Mem = FakeMem<Rc<Memory>>;
    type Clock = FakeClock;
}

/// Bus address of the host-memory arena.
pub const HOST_BUS: u64 = 0x1_0000_0000;
/// Size of the host-memory arena.
pub const HOST_LEN: usize = 4 << 20;
/// Bus address of the "GPU BAR" arena.
pub const GPU_BUS: u64 = 0x80_0000_0000;
pub const GPU_LEN: usize = 8 << 20;
/// Control region (host memory).
pub const CTRL_BUS: u64 = HOST_BUS;
pub const CTRL_LEN: u64 = 64 << 10;
/// Queue `q`'s region.
pub const fn queue_region_bus(q: u16) -> u64 {
    HOST_BUS + (64 << 10) + q as u64 * QUEUE_REGION_LEN
}
pub const QUEUE_REGION_LEN: u64 = 64 << 10;
/// Header pools live here (host memory).
pub const HDR_POOL_BUS: u64 = HOST_BUS + (1 << 20);
/// Payload pools live in the GPU arena.
pub const PAY_POOL_BUS: u64 = GPU_BUS;

/// QP and SRQ regions are carved from host memory from here ([`Testbed::alloc_region`]).
pub const ROCE_REGION_BUS: u64 = HOST_BUS + (2 << 20);
/// RoCE memory regions of the tests live in the GPU arena from here.
pub const MR_BUS: u64 = GPU_BUS + (4 << 20);

/// The host's handles to one QP: its receive-WQE ring (none with an SRQ) and CQ.
#[derive(Debug)]
pub struct HostQp {
    pub qpn: u32,
    pub region: u64,
    pub region_len: u64,
    pub rq: Option<Producer<RecvWqe>>,
    pub cq: Consumer<RoceCqe>,
    /// The send ring (QPs created with [`Testbed::create_qp_sq`]).
    pub sq: Option<Producer<SendWqe>>,
}

impl HostQp {
    /// Posts a receive WQE (panics when the ring is full: test helper).
    pub fn post(&mut self, wr_id: u64, bus: u64, len: u32, lkey: u32) {
        let w = recv_wqe(wr_id, bus, len, lkey, self.qpn);
        assert!(self
            .rq
            .as_mut()
            .expect("own receive ring")
            .push(&w)
            .expect("rq"));
    }
    /// Posts one WQE whose scatter list is `sges` (`(bus, len, lkey)` each), in one commit.
    pub fn post_sgl(&mut self, wr_id: u64, sges: &[(u64, u32, u32)]) {
        let n = sges.len();
        let v: Vec<RecvWqe> = sges
            .iter()
            .enumerate()
            .map(|(i, &(bus, len, lkey))| {
                let mut w = recv_wqe(wr_id, bus, len, lkey, self.qpn);
                if i + 1 < n {
                    w.qpn = U32::new(self.qpn | RecvWqe::MORE);
                }
                w
            })
            .collect();
        self.post_raw(&v);
    }
    /// Pushes ring entries as given, in one commit (a hostile or buggy host).
    pub fn post_raw(&mut self, entries: &[RecvWqe]) {
        let rq = self.rq.as_mut().expect("own receive ring");
        assert_eq!(rq.push_slice(entries).expect("rq"), entries.len());
    }
    /// Posts a send WQE (panics when the ring is full: test helper).
    pub fn post_send(&mut self, w: &SendWqe) {
        assert!(self
            .sq
            .as_mut()
            .expect("own send ring")
            .push(w)
            .expect("sq"));
    }
    /// Pops every CQE.
    pub fn cqes(&mut self) -> Vec<RoceCqe> {
        let mut v = Vec::new();
        while let Some(c) = self.cq.pop().expect("cq") {
            v.push(c);
        }
        v
    }
}

/// A receive WQE.
pub fn recv_wqe(wr_id: u64, bus: u64, len: u32, lkey: u32, qpn: u32) -> RecvWqe {
    RecvWqe {
        wr_id: U64::new(wr_id),
        bus_addr: U64::new(bus),
        len: U32::new(len),
        lkey: U32::new(lkey),
        buf: BufRef::NONE,
        qpn: U32::new(qpn),
    }
}

/// [`lay_out_region`] over the arenas, as a `Vec`.
pub fn layout_region(
    mem: &Memory,
    bus: u64,
    len: u64,
    queue_id: u16,
    rings: &[(RingKind, u32)],
) -> Vec<NonNull<u8>> {
    lay_out_region(mem, bus, len, queue_id, rings)
        .into_iter()
        .collect()
}

/// The host's handles to one RX queue.
#[derive(Debug)]
pub struct HostQueue {
    pub id: u16,
    pub hdr_fill: Producer<FillDesc>,
    pub pay_fill: Producer<FillDesc>,
    pub cq: Consumer<RxCompletion>,
    pub rings: Vec<NonNull<u8>>,
}

impl HostQueue {
    /// Pops every completion.
    pub fn completions(&mut self) -> Vec<RxCompletion> {
        let mut v = Vec::new();
        while let Some(c) = self.cq.pop().expect("completion ring") {
            v.push(c);
        }
        v
    }
}

/// Firmware + host side, over fakes.
pub struct Testbed<R: MacRx = FakeMac> {
    pub mem: Rc<Memory>,
    pub fw: Firmware<FakeHal<R>>,
    pub req: Producer<CtrlMsg>,
    pub resp: Consumer<CtrlMsg>,
    pub seq: u32,
    /// Capacity of the control rings.
    pub ctrl_cap: u32,
    /// Base pointers of the control request and response rings.
    pub ctrl_rings: [NonNull<u8>; 2],
    /// Next free byte of the host-memory area QP and SRQ regions are carved from
    /// ([`Testbed::alloc_region`]).
    pub next_region: u64,
}

impl<R: MacRx> core::fmt::Debug for Testbed<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Testbed")
    }
}

fn host_attach<T: RingEntry>(p: NonNull<u8>, cap: u32) -> (Producer<T>, ()) {
    // SAFETY: the ring was laid out and initialised by `layout_region` in a live arena; the
    // test is the only host-side producer.
    (unsafe { Producer::attach(p, cap) }.expect("attach"), ())
}

impl Default for Testbed<FakeMac> {
    fn default() -> Self {
        Self::new()
    }
}

impl Testbed<FakeMac> {
    pub fn new() -> Testbed<FakeMac> {
        Testbed::with_mac(FakeMac::default(), true, 16)
    }
}

impl<R: MacRx> Testbed<R> {
    /// A testbed with control rings of `ctrl_cap` entries; `copy` selects a copying DMA fake.
    pub fn with_mac(mac: R, copy: bool, ctrl_cap: u32) -> Testbed<R> {
        let mem = Memory::new(vec![
            Arena::new(HOST_BUS, HOST_LEN),
            Arena::new(GPU_BUS, GPU_LEN),
        ]);
        let rings = layout_region(
            &mem,
            CTRL_BUS,
            CTRL_LEN,
            u16::MAX,
            &[
                (RingKind::CtrlRequest, ctrl_cap),
                (RingKind::CtrlResponse, ctrl_cap),
            ],
        );
        let (req, ()) = host_attach::<CtrlMsg>(rings[0], ctrl_cap);
        // SAFETY: as in `host_attach`; the test is the only host-side consumer.
        let resp = unsafe { Consumer::attach(rings[1], ctrl_cap) }.expect("attach");
        let hal = HalParts {
            rx: mac,
            tx: FakeTx::default(),
            dma: FakeDma::new(mem.clone(), copy),
            mem: FakeMem { mem: mem.clone() },
            clock: FakeClock::default(),
        };
        let fw = Firmware::new(hal, CTRL_BUS, CTRL_LEN).expect("firmware init");
        Testbed {
            mem,
            fw,
            req,
            resp,
            seq: 0,
            ctrl_cap,
            ctrl_rings: [rings[0], rings[1]],
            next_region: ROCE_REGION_BUS,
        }
    }

    /// Sends a raw request (returns false when the request ring is full).
    pub fn send_raw(&mut self, m: &CtrlMsg) -> bool {
        self.req.push(m).expect("request ring")
    }

    /// Sends a request and polls until its final response; returns every response.
    pub fn call<A: IntoBytes + Immutable>(&mut self, op: CtrlOp, args: &A) -> Vec<CtrlMsg> {
        self.seq += 1;
        let m = CtrlMsg::with_args(self.seq, op, CtrlStatus::Ok, args);
        self.call_msg(&m)
    }

    /// Sends `m` (its seq is used as is) and collects responses until a non-More one.
    pub fn call_msg(&mut self, m: &CtrlMsg) -> Vec<CtrlMsg> {
        assert!(self.send_raw(m), "request ring full");
        let mut out = Vec::new();
        for _ in 0..100_000 {
            self.fw.poll();
            while let Some(r) = self.resp.pop().expect("response ring") {
                assert_eq!(r.seq.get(), m.seq.get(), "response for another request");
                let more = r.status() == Some(CtrlStatus::More);
                out.push(r);
                if !more {
                    return out;
                }
            }
        }
        panic!("no final response");
    }

    /// Status of a single-response call.
    pub fn status<A: IntoBytes + Immutable>(&mut self, op: CtrlOp, args: &A) -> CtrlStatus {
        let r = self.call(op, args);
        assert_eq!(r.len(), 1);
        r[0].status().expect("valid status")
    }

    /// Registers a pool of `count` x `buf_size` at `bus`.
    pub fn register_pool(
        &mut self,
        id: u8,
        bus: u64,
        count: u32,
        buf_size: u32,
        mode: PoolMode,
        align_log2: u8,
    ) -> (CtrlStatus, HostPool) {
        let a = RegisterPoolArgs {
            bus_base: U64::new(bus),
            window_len: U64::new(count as u64 * buf_size as u64),
            buf_size: U32::new(buf_size),
            count: U32::new(count),
            pool: id,
            mode: mode as u8,
            align_log2,
            _pad: 0,
        };
        (
            self.status(CtrlOp::RegisterPool, &a),
            HostPool {
                id,
                bus,
                buf_size,
                count,
            },
        )
    }

    /// Lays out queue `q`'s region (fill rings of `fill_cap`, completion ring of `cq_cap`) and
    /// creates it.
    pub fn create_queue(
        &mut self,
        q: u16,
        hdr_pool: u8,
        pay_pool: u8,
        hds_thresh: u32,
        fill_cap: u32,
        cq_cap: u32,
    ) -> (CtrlStatus, HostQueue) {
        let bus = queue_region_bus(q);
        let rings = layout_region(
            &self.mem,
            bus,
            QUEUE_REGION_LEN,
            q,
            &[
                (RingKind::HeaderFill, fill_cap),
                (RingKind::PayloadFill, fill_cap),
                (RingKind::RxCompletion, cq_cap),
            ],
        );
        let (hdr_fill, ()) = host_attach::<FillDesc>(rings[0], fill_cap);
        let (pay_fill, ()) = host_attach::<FillDesc>(rings[1], fill_cap);
        // SAFETY: as in `host_attach`.
        let cq = unsafe { Consumer::attach(rings[2], cq_cap) }.expect("attach");
        let a = CreateRxQueueArgs {
            region_bus_addr: U64::new(bus),
            region_len: U64::new(QUEUE_REGION_LEN),
            queue: U16::new(q),
            hdr_pool,
            pay_pool,
            hds_thresh: U32::new(hds_thresh),
        };
        let st = self.status(CtrlOp::CreateRxQueue, &a);
        (
            st,
            HostQueue {
                id: q,
                hdr_fill,
                pay_fill,
                cq,
                rings,
            },
        )
    }

    /// Carves `len` bytes (256-aligned) for a QP or SRQ region out of host memory.
    pub fn alloc_region(&mut self, len: u64) -> u64 {
        let bus = self.next_region;
        self.next_region = (bus + len + 255) & !255;
        assert!(
            self.next_region <= HOST_BUS + HOST_LEN as u64,
            "host arena full"
        );
        bus
    }

    /// Registers an MR.
    #[allow(clippy::too_many_arguments)]
    pub fn register_mr(
        &mut self,
        bus: u64,
        len: u64,
        iova: u64,
        rkey: u32,
        lkey: u32,
        access: u32,
        pd: u32,
    ) -> CtrlStatus {
        let a = RegisterMrArgs {
            bus_addr: U64::new(bus),
            len: U64::new(len),
            iova: U64::new(iova),
            rkey: U32::new(rkey),
            lkey: U32::new(lkey),
            access: U32::new(access),
            pd: U32::new(pd),
        };
        self.status(CtrlOp::RegisterMr, &a)
    }

    /// Lays out a QP region (a RecvWqe ring of `rq_cap` unless `srqn` is set, a CQ of
    /// `cq_cap`) and creates the QP.
    pub fn create_qp(
        &mut self,
        qpn: u32,
        pd: u32,
        qp_type: u8,
        srqn: u32,
        rq_cap: u32,
        cq_cap: u32,
    ) -> (CtrlStatus, HostQp) {
        self.create_qp_sq(qpn, pd, qp_type, srqn, rq_cap, cq_cap, 0)
    }

    /// [`Testbed::create_qp`] with a send ring of `sq_cap` entries too (none when 0).
    #[allow(clippy::too_many_arguments)]
    pub fn create_qp_sq(
        &mut self,
        qpn: u32,
        pd: u32,
        qp_type: u8,
        srqn: u32,
        rq_cap: u32,
        cq_cap: u32,
        sq_cap: u32,
    ) -> (CtrlStatus, HostQp) {
        let mut rings = Vec::new();
        if srqn == NO_SRQ {
            rings.push((RingKind::RecvWqe, rq_cap));
        }
        rings.push((RingKind::RoceCq, cq_cap));
        if sq_cap > 0 {
            rings.push((RingKind::SendWqe, sq_cap));
        }
        let len = splitrx_shared::region::RegionLayout::new(0, &rings)
            .expect("layout")
            .size;
        let bus = self.alloc_region(len);
        let ptrs = layout_region(&self.mem, bus, len, 0, &rings);
        let (rq, cqp) = if srqn == NO_SRQ {
            (Some(host_attach::<RecvWqe>(ptrs[0], rq_cap).0), ptrs[1])
        } else {
            (None, ptrs[0])
        };
        // SAFETY: as in `host_attach`; the test is the only host-side consumer.
        let cq = unsafe { Consumer::attach(cqp, cq_cap) }.expect("attach");
        let sq =
            (sq_cap > 0).then(|| host_attach::<SendWqe>(*ptrs.last().expect("ring"), sq_cap).0);
        let a = CreateQpArgs {
            qpn: U32::new(qpn),
            pd: U32::new(pd),
            qp_type,
            flags: if sq_cap > 0 {
                CreateQpArgs::SEND_QUEUE
            } else {
                0
            },
            _pad: [0; 2],
            srqn: U32::new(srqn),
            region_bus_addr: U64::new(bus),
            region_len: U64::new(len),
        };
        let st = self.status(CtrlOp::CreateQp, &a);
        (
            st,
            HostQp {
                qpn,
                region: bus,
                region_len: len,
                rq,
                cq,
                sq,
            },
        )
    }

    /// Lays out an SRQ region (one RecvWqe ring of `cap`) and creates the SRQ; returns the
    /// host's producer.
    pub fn create_srq(&mut self, srqn: u32, pd: u32, cap: u32) -> (CtrlStatus, Producer<RecvWqe>) {
        let rings = [(RingKind::RecvWqe, cap)];
        let len = splitrx_shared::region::RegionLayout::new(0, &rings)
            .expect("layout")
            .size;
        let bus = self.alloc_region(len);
        let ptrs = layout_region(&self.mem, bus, len, 0, &rings);
        let a = CreateSrqArgs {
            srqn: U32::new(srqn),
            pd: U32::new(pd),
            region_bus_addr: U64::new(bus),
            region_len: U64::new(len),
        };
        (
            self.status(CtrlOp::CreateSrq, &a),
            host_attach(ptrs[0], cap).0,
        )
    }

    /// ModifyQp with `a` (its `qpn` must be set).
    pub fn modify_qp(&mut self, a: &ModifyQpArgs) -> CtrlStatus {
        self.status(CtrlOp::ModifyQp, a)
    }

    /// RESET -> INIT -> RTR -> RTS: peer `dest_qpn` at `gid` (UDP source port `sport`),
    /// expected PSN `rq_psn`, path MTU code `mtu` (`ibv_mtu`), remote `access`, Q_Key `qkey`,
    /// RNR timer 12. Returns the first status that is not `Ok`.
    #[allow(clippy::too_many_arguments)]
    pub fn connect_qp(
        &mut self,
        qpn: u32,
        dest_qpn: u32,
        gid: [u8; 16],
        sport: u16,
        rq_psn: u32,
        mtu: u8,
        access: u32,
        qkey: u32,
    ) -> CtrlStatus {
        let mut a = ModifyQpArgs {
            qpn: U32::new(qpn),
            attr_mask: U32::new(qp_attr::STATE | qp_attr::ACCESS_FLAGS | qp_attr::QKEY),
            state: qp_state::INIT,
            access: U32::new(access),
            qkey: U32::new(qkey),
            ..Default::default()
        };
        for st in [qp_state::INIT, qp_state::RTR, qp_state::RTS] {
            a.state = st;
            if st == qp_state::RTR {
                a.attr_mask = U32::new(
                    qp_attr::STATE
                        | qp_attr::AV
                        | qp_attr::PATH_MTU
                        | qp_attr::DEST_QPN
                        | qp_attr::RQ_PSN
                        | qp_attr::MIN_RNR_TIMER,
                );
                a.path_mtu = mtu;
                a.dest_qpn = U32::new(dest_qpn);
                a.rq_psn = U32::new(rq_psn);
                a.remote_gid = gid;
                a.udp_sport = U16::new(sport);
                a.min_rnr_timer = 12;
            } else if st == qp_state::RTS {
                a.attr_mask = U32::new(qp_attr::STATE);
            }
            let s = self.modify_qp(&a);
            if s != CtrlStatus::Ok {
                return s;
            }
        }
        CtrlStatus::Ok
    }

    /// Frames the responder transmitted since the last call.
    pub fn take_sent(&mut self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.fw.hal_mut().tx.sent)
    }

    /// Queue `q`'s `nic_status` and `nic_fault` words.
    pub fn nic_status(&self, bus: u64) -> (u32, u32) {
        const _: () =
            assert!(offset_of!(QueueHeader, nic_fault) == offset_of!(QueueHeader, nic_status) + 4);
        let b = self
            .mem
            .read(bus + offset_of!(QueueHeader, nic_status) as u64, 8);
        (
            u32::from_le_bytes(b[..4].try_into().unwrap()),
            u32::from_le_bytes(b[4..].try_into().unwrap()),
        )
    }
}
