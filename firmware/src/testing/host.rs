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
    CreateRxQueueArgs, CtrlMsg, CtrlOp, CtrlStatus, FillDesc, PoolMode, QueueHeader,
    RegisterPoolArgs, RingKind, RxCompletion,
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

#[derive(Debug, Default)]
pub struct FakeTx {
    pub sent: Vec<Vec<u8>>,
}
impl MacTx for FakeTx {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
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
