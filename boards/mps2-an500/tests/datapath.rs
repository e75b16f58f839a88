//! The firmware library (capacity profile `cap-cortex-m`) on the Cortex-M7 over its `no_std`
//! test fakes: control plane (version, pools, queue), then frames through the datapath with
//! the exact bytes at the header and payload buffers and the exact completions.
#![no_std]
#![no_main]

use splitrx_mps2_an500::tcp4_frame;

use core::ptr::addr_of_mut;
use splitrx_firmware::hal::HalParts;
use splitrx_firmware::stats::q;
use splitrx_firmware::testing::{
    lay_out_region, BusMemory, CountTx, FakeClock, FakeDma, FakeMem, HostPool, SliceMac, WindowHal,
    Windows,
};
use splitrx_firmware::Firmware;
use splitrx_shared::abi::{
    call, rx_flags, BufRef, CreateRxQueueArgs, CtrlMsg, CtrlOp, CtrlStatus, FillDesc, PoolMode,
    RegisterPoolArgs, RingKind, RxCompletion,
};
use splitrx_shared::ring::{Consumer, Producer};
use splitrx_shared::split::{FrameClass, NoSplitReason};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{Immutable, IntoBytes};

const HOST_BUS: u64 = 0x1_0000_0000;
const GPU_BUS: u64 = 0x80_0000_0000;
const CTRL_LEN: u64 = 16 << 10;
const QREGION_BUS: u64 = HOST_BUS + CTRL_LEN;
const QREGION_LEN: u64 = 16 << 10;
const HDR_BUS: u64 = QREGION_BUS + QREGION_LEN;
const HDR_SIZE: u32 = 256;
const PAY_SIZE: u32 = 2048;
const BUFS: u32 = 8;
const PAD: u8 = 0xAA;

#[repr(C, align(4096))]
struct Host([u8; (CTRL_LEN + QREGION_LEN) as usize + (BUFS * HDR_SIZE) as usize]);
#[repr(C, align(4096))]
struct Gpu([u8; (BUFS * PAY_SIZE) as usize]);
static mut HOST: Host = Host([0; (CTRL_LEN + QREGION_LEN) as usize + (BUFS * HDR_SIZE) as usize]);
static mut GPU: Gpu = Gpu([PAD; (BUFS * PAY_SIZE) as usize]);

type Hal<'a> = WindowHal<'a, SliceMac<'a>, 2>;

/// The host side of the control ring.
struct Ctrl {
    req: Producer<CtrlMsg>,
    resp: Consumer<CtrlMsg>,
    seq: u32,
}

impl Ctrl {
    fn call<A: IntoBytes + Immutable>(
        &mut self,
        fw: &mut Firmware<Hal<'_>>,
        op: CtrlOp,
        args: &A,
    ) -> CtrlMsg {
        self.seq += 1;
        defmt::assert!(self
            .req
            .push(&CtrlMsg::with_args(self.seq, op, CtrlStatus::Ok, args))
            .unwrap());
        for _ in 0..100 {
            fw.poll();
            if let Some(r) = self.resp.pop().unwrap() {
                defmt::assert_eq!(r.seq.get(), self.seq);
                return r;
            }
        }
        defmt::panic!("no response to {}", op)
    }
}

fn read<'m>(w: &'m Windows<'_, 2>, bus: u64, len: usize) -> &'m [u8] {
    let p = w.ptr(bus, len).unwrap();
    // SAFETY: `ptr` checked that `len` bytes at `bus` lie in one window; the firmware is
    // not polled while the slice lives (the test reads between polls).
    unsafe { core::slice::from_raw_parts(p.as_ptr(), len) }
}

#[defmt_test::tests]
mod tests {
    use super::*;

    #[test]
    fn frames_land_byte_exact_through_the_firmware() {
        let mut tcp = [0u8; 54 + 1000];
        let tcp = tcp4_frame(&mut tcp, 4000, 80, 1, 1000);
        let arp = [0x5a_u8; 60];
        let mut arp = arp;
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let frames: [&[u8]; 2] = [tcp, &arp];

        // SAFETY: the statics are handed to the windows once (this is the only test using
        // them) and reached only through them from here on.
        let (host, gpu): (&mut [u8], &mut [u8]) =
            unsafe { (&mut (*addr_of_mut!(HOST)).0, &mut (*addr_of_mut!(GPU)).0) };
        let w = Windows::new([(HOST_BUS, host), (GPU_BUS, gpu)]);
        let ring = lay_out_region(
            &w,
            HOST_BUS,
            CTRL_LEN,
            u16::MAX,
            &[(RingKind::CtrlRequest, 4), (RingKind::CtrlResponse, 4)],
        );
        // SAFETY: rings laid out and initialised just above, inside the host window; these
        // are the host's only producer and consumer of them.
        let mut ctrl = unsafe {
            Ctrl {
                req: Producer::attach(ring[0], 4).unwrap(),
                resp: Consumer::attach(ring[1], 4).unwrap(),
                seq: 0,
            }
        };
        let hal: HalParts<Hal<'_>> = HalParts {
            rx: SliceMac {
                frames: &[],
                next: 0,
            },
            tx: CountTx::default(),
            dma: FakeDma::new(w, true),
            mem: FakeMem { mem: w },
            clock: FakeClock::default(),
        };
        let mut fw = Firmware::new(hal, HOST_BUS, CTRL_LEN).unwrap();

        let v = ctrl.call(&mut fw, CtrlOp::GetVersion, &[0u8; 0]);
        defmt::assert_eq!(v.status(), Some(CtrlStatus::Ok));
        let v = v.resp_of::<call::GetVersion>().unwrap();
        defmt::assert_eq!(
            v.max_queues.get() as usize,
            splitrx_firmware::config::MAX_QUEUES
        );

        let hp = HostPool {
            id: 1,
            bus: HDR_BUS,
            buf_size: HDR_SIZE,
            count: BUFS,
        };
        let pp = HostPool {
            id: 2,
            bus: GPU_BUS,
            buf_size: PAY_SIZE,
            count: BUFS,
        };
        for p in [hp, pp] {
            let a = RegisterPoolArgs {
                bus_base: U64::new(p.bus),
                window_len: U64::new((p.count * p.buf_size) as u64),
                buf_size: U32::new(p.buf_size),
                count: U32::new(p.count),
                pool: p.id,
                mode: PoolMode::Page as u8,
                align_log2: 0,
                _pad: 0,
            };
            let r = ctrl.call(&mut fw, CtrlOp::RegisterPool, &a);
            defmt::assert_eq!(r.status(), Some(CtrlStatus::Ok));
        }
        let rings = lay_out_region(
            &w,
            QREGION_BUS,
            QREGION_LEN,
            0,
            &[
                (RingKind::HeaderFill, 8),
                (RingKind::PayloadFill, 8),
                (RingKind::RxCompletion, 8),
            ],
        );
        // SAFETY: as for the control rings.
        let (mut hfill, mut pfill, mut cq) = unsafe {
            (
                Producer::<FillDesc>::attach(rings[0], 8).unwrap(),
                Producer::<FillDesc>::attach(rings[1], 8).unwrap(),
                Consumer::<RxCompletion>::attach(rings[2], 8).unwrap(),
            )
        };
        let a = CreateRxQueueArgs {
            region_bus_addr: U64::new(QREGION_BUS),
            region_len: U64::new(QREGION_LEN),
            queue: U16::new(0),
            hdr_pool: 1,
            pay_pool: 2,
            hds_thresh: U32::new(0),
        };
        let r = ctrl.call(&mut fw, CtrlOp::CreateRxQueue, &a);
        defmt::assert_eq!(r.status(), Some(CtrlStatus::Ok));
        for i in 0..4 {
            defmt::assert!(hfill.push(&hp.desc(i)).unwrap());
            defmt::assert!(pfill.push(&pp.desc(i)).unwrap());
        }
        // Header buffers start as padding too, so bytes past hdr_len can be checked.
        for i in 0..BUFS {
            defmt::assert!(w.write(
                hp.addr(BufRef::new(1, i).unwrap()),
                &[PAD; HDR_SIZE as usize]
            ));
        }

        fw.hal_mut().rx = SliceMac {
            frames: &frames,
            next: 0,
        };
        for _ in 0..10 {
            fw.poll();
        }
        defmt::assert_eq!(fw.hal().rx.next, 2);
        let mut c = [RxCompletion::default(); 2];
        defmt::assert_eq!(cq.pop_into(&mut c), Ok(2));
        defmt::assert!(matches!(cq.pop(), Ok(None)));

        // The TCP frame: split after 54 bytes, 1000 payload bytes in the payload buffer.
        let t = c[0];
        defmt::assert_eq!(t.validate(0), Ok(()));
        defmt::assert_eq!(t.class, FrameClass::Tcp as u8);
        defmt::assert_eq!(t.reason, NoSplitReason::Split as u8);
        defmt::assert_eq!(t.flags.get() & rx_flags::SPLIT, rx_flags::SPLIT);
        defmt::assert_eq!(
            (t.hdr_len.get(), t.pay_len.get(), t.pay_off.get()),
            (54, 1000, 0)
        );
        defmt::assert_eq!(t.frame_len.get(), 1054);
        let hdr = read(&w, hp.addr(t.hdr_buf), HDR_SIZE as usize);
        defmt::assert_eq!(&hdr[..54], &tcp[..54]);
        defmt::assert!(
            hdr[54..].iter().all(|&b| b == PAD),
            "header buffer written past hdr_len"
        );
        let pay = read(&w, pp.addr(t.pay_buf), PAY_SIZE as usize);
        defmt::assert!(pay[..1000] == tcp[54..], "payload bytes");
        defmt::assert!(
            pay[1000..].iter().all(|&b| b == PAD),
            "payload buffer written past pay_len"
        );

        // The ARP frame: not IP, whole into a header buffer, no payload buffer.
        let n = c[1];
        defmt::assert_eq!(n.validate(0), Ok(()));
        defmt::assert_eq!(n.class, FrameClass::NonIp as u8);
        defmt::assert_eq!(n.reason, NoSplitReason::NonIp as u8);
        defmt::assert_eq!(n.flags.get() & rx_flags::SPLIT, 0);
        defmt::assert_eq!((n.hdr_len.get(), n.pay_len.get()), (60, 0));
        defmt::assert!(n.pay_buf == BufRef::NONE);
        let hdr = read(&w, hp.addr(n.hdr_buf), HDR_SIZE as usize);
        defmt::assert_eq!(&hdr[..60], &arp[..]);
        defmt::assert!(hdr[60..].iter().all(|&b| b == PAD));

        let s = fw.queue_stats(0).unwrap();
        defmt::assert_eq!(
            (s.get(q::RX_FRAMES), s.get(q::SPLIT), s.get(q::NOT_SPLIT)),
            (2, 1, 1)
        );
        defmt::assert_eq!(s.get(q::RX_BYTES), 1054 + 60);
    }
}
