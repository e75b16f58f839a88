//! A polled virtio-net driver over virtio-mmio (modern transport, version 2; split virtqueues):
//! the board's MAC. QEMU's `-netdev dgram` turns each datagram from the host into one frame on
//! the RX queue and each frame on the TX queue into one datagram.
//!
//! The wire carries frames **with their FCS** (CRC-32, little-endian, as on Ethernet): the MAC
//! checks and strips it, dropping (and counting) a frame whose FCS is wrong, and appends it on
//! transmit. (It also lets an empty Ethernet frame cross QEMU's datagram backend, which takes a
//! zero-length datagram for the end of the connection.) A datagram that fills QEMU's receive
//! buffer ([`QEMU_MAX_DATAGRAM`]) was truncated by QEMU: it is delivered without the FCS check
//! and counted as truncated (the firmware drops any frame that large as an overflow).
//!
//! No interrupts: RX completions are found by polling the used ring; the device is notified
//! only when it asked to be (`VRING_USED_F_NO_NOTIFY` clear).

use crate::board;
use crate::page;
use core::sync::atomic::{fence, Ordering};
use splitrx_firmware::hal::{MacRx, MacTx, RxFrame, TxError};

const MAGIC: u32 = 0x7472_6976; // "virt"
const R_MAGIC: usize = 0x000;
const R_VERSION: usize = 0x004;
const R_DEVICE_ID: usize = 0x008;
const R_DEVICE_FEATURES: usize = 0x010;
const R_DEVICE_FEATURES_SEL: usize = 0x014;
const R_DRIVER_FEATURES: usize = 0x020;
const R_DRIVER_FEATURES_SEL: usize = 0x024;
const R_QUEUE_SEL: usize = 0x030;
const R_QUEUE_NUM_MAX: usize = 0x034;
const R_QUEUE_NUM: usize = 0x038;
const R_QUEUE_READY: usize = 0x044;
const R_QUEUE_NOTIFY: usize = 0x050;
const R_STATUS: usize = 0x070;
const R_QUEUE_DESC: usize = 0x080;
const R_QUEUE_DRIVER: usize = 0x090;
const R_QUEUE_DEVICE: usize = 0x0a0;
const R_CONFIG: usize = 0x100;

const S_ACK: u32 = 1;
const S_DRIVER: u32 = 2;
const S_DRIVER_OK: u32 = 4;
const S_FEATURES_OK: u32 = 8;
/// VIRTIO_F_VERSION_1 is feature bit 32: bit 0 of the second feature word.
const F_VERSION_1_HI: u32 = 1;
const DEVICE_NET: u32 = 1;
const DESC_F_WRITE: u16 = 2;
const USED_F_NO_NOTIFY: u16 = 1;

/// The virtio-net header in front of every frame (VERSION_1 layout: 12 bytes).
const NET_HDR: usize = 12;
/// QEMU's datagram receive buffer (`NET_BUFSIZE`): a datagram this long may have been cut.
pub use crate::page::QEMU_MAX_DATAGRAM;
const FCS: usize = crate::page::FCS_LEN;
const RX_N: usize = 128;
const TX_N: usize = 16;
const RX_BUF: usize = NET_HDR + QEMU_MAX_DATAGRAM;
/// Largest frame the MAC transmits (jumbo), without FCS.
pub const TX_MAX: usize = 9216;
const TX_BUF: usize = NET_HDR + TX_MAX + FCS;

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

#[repr(C, align(4))]
#[derive(Clone, Copy)]
struct UsedElem {
    id: u32,
    len: u32,
}

/// One split virtqueue: descriptor table, driver (avail) ring, device (used) ring.
#[repr(C, align(4096))]
struct Ring<const N: usize> {
    desc: [Desc; N],
    avail_flags: u16,
    avail_idx: u16,
    avail_ring: [u16; N],
    used_event: u16,
    used: Used<N>,
}

#[repr(C, align(4))]
struct Used<const N: usize> {
    flags: u16,
    idx: u16,
    ring: [UsedElem; N],
    avail_event: u16,
}

const ZERO_DESC: Desc = Desc {
    addr: 0,
    len: 0,
    flags: 0,
    next: 0,
};
const ZERO_USED: UsedElem = UsedElem { id: 0, len: 0 };

macro_rules! ring {
    ($n:expr) => {
        Ring {
            desc: [ZERO_DESC; $n],
            avail_flags: 0,
            avail_idx: 0,
            avail_ring: [0; $n],
            used_event: 0,
            used: Used {
                flags: 0,
                idx: 0,
                ring: [ZERO_USED; $n],
                avail_event: 0,
            },
        }
    };
}

static mut RXQ: Ring<RX_N> = ring!(RX_N);
static mut TXQ: Ring<TX_N> = ring!(TX_N);
#[repr(C, align(64))]
struct RxBufs([[u8; RX_BUF]; RX_N]);
#[repr(C, align(64))]
struct TxBufs([[u8; TX_BUF]; TX_N]);
static mut RXB: RxBufs = RxBufs([[0; RX_BUF]; RX_N]);
static mut TXB: TxBufs = TxBufs([[0; TX_BUF]; TX_N]);

/// RX buffer `id`.
///
/// # Safety
/// The device must have returned descriptor `id` (it does not write the buffer until reposted).
unsafe fn rx_buf(id: u16) -> &'static [u8; RX_BUF] {
    let bufs: *const RxBufs = &raw const RXB;
    // SAFETY: the caller's contract; `id < RX_N` is checked by indexing.
    unsafe { &(*bufs).0[id as usize] }
}

/// Why the NIC could not be brought up.
#[derive(Clone, Copy, Debug, defmt::Format)]
pub enum NetError {
    /// No virtio-net device on any virtio-mmio slot.
    NotFound,
    /// A virtio-net device, but with the legacy transport (version 1): QEMU needs
    /// `-global virtio-mmio.force-legacy=false`.
    Legacy,
    /// The device does not offer VIRTIO_F_VERSION_1.
    NoVersion1,
    /// The device refused our features.
    FeaturesRefused,
    /// A queue is smaller than we need.
    QueueTooSmall(u8),
}

/// The virtio-net device: both queues, and the frame currently lent to the firmware.
pub struct VirtioNet {
    base: usize,
    rx_seen: u16,
    rx_avail: u16,
    /// The frame lent by `peek`: (descriptor, frame length without FCS).
    cur: Option<(u16, usize)>,
    cur_ts: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub fcs_errors: u64,
    pub truncated: u64,
    /// The guest MAC address QEMU gave the device (config space).
    pub mac: [u8; 6],
}

impl VirtioNet {
    fn rd(&self, r: usize) -> u32 {
        // SAFETY: a register of the virtio-mmio device found by `probe` (device memory).
        unsafe { core::ptr::read_volatile((self.base + r) as *const u32) }
    }
    fn wr(&self, r: usize, v: u32) {
        // SAFETY: as in `rd`.
        unsafe { core::ptr::write_volatile((self.base + r) as *mut u32, v) }
    }

    /// Finds the virtio-net device on the virtio-mmio slots and brings it up: features
    /// (VERSION_1 only), both queues, every RX buffer posted.
    pub fn probe() -> Result<(VirtioNet, VirtioTx), NetError> {
        let mut legacy = false;
        for slot in 0..board::VIRTIO_MMIO_SLOTS as usize {
            let base = board::VIRTIO_MMIO as usize + slot * 0x200;
            let mut dev = VirtioNet {
                base,
                rx_seen: 0,
                rx_avail: 0,
                cur: None,
                cur_ts: 0,
                rx_frames: 0,
                rx_bytes: 0,
                fcs_errors: 0,
                truncated: 0,
                mac: [0; 6],
            };
            if dev.rd(R_MAGIC) != MAGIC || dev.rd(R_DEVICE_ID) != DEVICE_NET {
                continue;
            }
            if dev.rd(R_VERSION) != 2 {
                legacy = true;
                continue;
            }
            dev.init()?;
            let tx = VirtioTx {
                base,
                tx_avail: 0,
                tx_done: 0,
                tx_frames: 0,
            };
            return Ok((dev, tx));
        }
        Err(if legacy {
            NetError::Legacy
        } else {
            NetError::NotFound
        })
    }

    fn init(&mut self) -> Result<(), NetError> {
        self.wr(R_STATUS, 0);
        while self.rd(R_STATUS) != 0 {}
        self.wr(R_STATUS, S_ACK);
        self.wr(R_STATUS, S_ACK | S_DRIVER);
        self.wr(R_DEVICE_FEATURES_SEL, 1);
        if self.rd(R_DEVICE_FEATURES) & F_VERSION_1_HI == 0 {
            return Err(NetError::NoVersion1);
        }
        self.wr(R_DRIVER_FEATURES_SEL, 0);
        self.wr(R_DRIVER_FEATURES, 0);
        self.wr(R_DRIVER_FEATURES_SEL, 1);
        self.wr(R_DRIVER_FEATURES, F_VERSION_1_HI);
        self.wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
        if self.rd(R_STATUS) & S_FEATURES_OK == 0 {
            return Err(NetError::FeaturesRefused);
        }
        for (i, m) in self.mac.iter_mut().enumerate() {
            // SAFETY: config space byte `i` of the device (the MAC address field).
            *m = unsafe { core::ptr::read_volatile((self.base + R_CONFIG + i) as *const u8) };
        }
        // SAFETY: the rings and buffers are statics only this driver touches; their addresses
        // go to the device, which then owns the posted buffers until it returns them.
        unsafe {
            let rx = &raw mut RXQ;
            let rxb = &raw mut RXB;
            for i in 0..RX_N {
                (*rx).desc[i] = Desc {
                    addr: (*rxb).0[i].as_ptr() as u64,
                    len: RX_BUF as u32,
                    flags: DESC_F_WRITE,
                    next: 0,
                };
                (*rx).avail_ring[i] = i as u16;
            }
            let tx = &raw mut TXQ;
            let txb = &raw mut TXB;
            for i in 0..TX_N {
                (*tx).desc[i].addr = (*txb).0[i].as_ptr() as u64;
            }
            self.queue(
                0,
                rx as usize,
                RX_N,
                core::mem::offset_of!(Ring<RX_N>, avail_flags),
                core::mem::offset_of!(Ring<RX_N>, used),
            )?;
            self.queue(
                1,
                tx as usize,
                TX_N,
                core::mem::offset_of!(Ring<TX_N>, avail_flags),
                core::mem::offset_of!(Ring<TX_N>, used),
            )?;
            self.rx_avail = RX_N as u16;
            fence(Ordering::Release);
            core::ptr::write_volatile(&raw mut (*rx).avail_idx, self.rx_avail);
        }
        self.wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
        self.wr(R_QUEUE_NOTIFY, 0);
        Ok(())
    }

    fn queue(
        &self,
        q: u32,
        ring: usize,
        n: usize,
        avail: usize,
        used: usize,
    ) -> Result<(), NetError> {
        self.wr(R_QUEUE_SEL, q);
        if (self.rd(R_QUEUE_NUM_MAX) as usize) < n {
            return Err(NetError::QueueTooSmall(q as u8));
        }
        self.wr(R_QUEUE_NUM, n as u32);
        for (reg, addr) in [
            (R_QUEUE_DESC, ring),
            (R_QUEUE_DRIVER, ring + avail),
            (R_QUEUE_DEVICE, ring + used),
        ] {
            self.wr(reg, addr as u32);
            self.wr(reg + 4, (addr as u64 >> 32) as u32);
        }
        self.wr(R_QUEUE_READY, 1);
        Ok(())
    }

    /// Gives RX descriptor `id` back to the device; notifies it if it asked.
    fn repost(&mut self, id: u16) {
        // SAFETY: RXQ is this driver's ring; the device reads avail entries only below
        // `avail_idx`, which is published after the entry (release fence).
        unsafe {
            let rx = &raw mut RXQ;
            core::ptr::write_volatile(&raw mut (*rx).avail_ring[self.rx_avail as usize % RX_N], id);
            self.rx_avail = self.rx_avail.wrapping_add(1);
            fence(Ordering::Release);
            core::ptr::write_volatile(&raw mut (*rx).avail_idx, self.rx_avail);
            fence(Ordering::SeqCst);
            if core::ptr::read_volatile(&raw const (*rx).used.flags) & USED_F_NO_NOTIFY == 0 {
                self.wr(R_QUEUE_NOTIFY, 0);
            }
        }
    }

    fn publish(&self) {
        page::set(page::F_RX_FRAMES, self.rx_frames);
        page::set(page::F_RX_BYTES, self.rx_bytes);
        page::set(page::F_FCS_ERRORS, self.fcs_errors);
        page::set(page::F_TRUNCATED, self.truncated);
    }
}

impl MacRx for VirtioNet {
    fn peek(&mut self) -> Option<RxFrame<'_>> {
        marker!(0x62);
        let f = self.peek_inner();
        marker!(0x63);
        f
    }

    fn release(&mut self) {
        marker!(0x64);
        self.release_inner();
        marker!(0x65);
    }
}

impl VirtioNet {
    #[inline(always)]
    fn peek_inner(&mut self) -> Option<RxFrame<'_>> {
        loop {
            if let Some((id, len)) = self.cur {
                // SAFETY: descriptor `id`'s buffer was returned by the device (used ring) and
                // is not reposted until `release`; `len` was checked against its size.
                let buf = unsafe { rx_buf(id) };
                return Some(RxFrame {
                    data: &buf[NET_HDR..NET_HDR + len],
                    timestamp_ns: self.cur_ts,
                });
            }
            // SAFETY: the used ring is written by the device; volatile reads, entries read
            // only below the index seen (acquire fence in between).
            let (id, len) = unsafe {
                let rx = &raw const RXQ;
                if core::ptr::read_volatile(&raw const (*rx).used.idx) == self.rx_seen {
                    return None;
                }
                fence(Ordering::Acquire);
                let e = core::ptr::read_volatile(
                    &raw const (*rx).used.ring[self.rx_seen as usize % RX_N],
                );
                (e.id, e.len as usize)
            };
            self.rx_seen = self.rx_seen.wrapping_add(1);
            if id as usize >= RX_N {
                // A device bug; nothing to give back.
                self.fcs_errors += 1;
                continue;
            }
            let id = id as u16;
            let Some(wire_len) = len
                .checked_sub(NET_HDR)
                .filter(|l| (FCS..=QEMU_MAX_DATAGRAM).contains(l))
            else {
                self.fcs_errors += 1;
                self.repost(id);
                self.publish();
                continue;
            };
            let frame_len = wire_len - FCS;
            if wire_len == QEMU_MAX_DATAGRAM {
                self.truncated += 1;
            } else {
                // SAFETY: as above: the device returned the buffer; `wire_len` fits it.
                let buf = unsafe { &rx_buf(id)[NET_HDR..NET_HDR + wire_len] };
                let want = u32::from_le_bytes([
                    buf[frame_len],
                    buf[frame_len + 1],
                    buf[frame_len + 2],
                    buf[frame_len + 3],
                ]);
                if crc32fast::hash(&buf[..frame_len]) != want {
                    self.fcs_errors += 1;
                    self.repost(id);
                    self.publish();
                    continue;
                }
            }
            self.cur = Some((id, frame_len));
            self.cur_ts = crate::hal::now_ns();
        }
    }

    #[inline(always)]
    fn release_inner(&mut self) {
        if let Some((id, len)) = self.cur.take() {
            self.rx_frames += 1;
            self.rx_bytes += len as u64;
            self.repost(id);
            self.publish();
        }
    }
}

/// The transmit side of the same device (the firmware owns RX and TX separately).
pub struct VirtioTx {
    base: usize,
    tx_avail: u16,
    tx_done: u16,
    pub tx_frames: u64,
}

/// How long a transmit waits for a free TX slot before it reports `Busy`.
const TX_WAIT_NS: u64 = 2_000_000;

impl MacTx for VirtioTx {
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError> {
        if frame.len() > TX_MAX {
            return Err(TxError::TooLong);
        }
        // SAFETY: TXQ/TXB are this driver's; descriptor `slot` is free: fewer than TX_N
        // transmits are outstanding and QEMU's virtio-net completes them in order.
        unsafe {
            let tx = &raw mut TXQ;
            // A full ring waits (bounded) for QEMU to complete a transmit, as a MAC with a TX
            // FIFO back-pressures: a burst of responses (an ACK per message) must not be lost
            // to a momentarily busy device.
            let deadline = crate::hal::now_ns() + TX_WAIT_NS;
            loop {
                self.tx_done = core::ptr::read_volatile(&raw const (*tx).used.idx);
                fence(Ordering::Acquire);
                if (self.tx_avail.wrapping_sub(self.tx_done) as usize) < TX_N {
                    break;
                }
                if crate::hal::now_ns() > deadline {
                    return Err(TxError::Busy);
                }
                core::hint::spin_loop();
            }
            let slot = self.tx_avail as usize % TX_N;
            let bufs: *mut TxBufs = &raw mut TXB;
            let buf = &mut (*bufs).0[slot];
            buf[..NET_HDR].fill(0);
            buf[NET_HDR..NET_HDR + frame.len()].copy_from_slice(frame);
            let fcs = crc32fast::hash(frame).to_le_bytes();
            buf[NET_HDR + frame.len()..NET_HDR + frame.len() + FCS].copy_from_slice(&fcs);
            (*tx).desc[slot].len = (NET_HDR + frame.len() + FCS) as u32;
            (*tx).desc[slot].flags = 0;
            core::ptr::write_volatile(&raw mut (*tx).avail_ring[slot], slot as u16);
            self.tx_avail = self.tx_avail.wrapping_add(1);
            fence(Ordering::Release);
            core::ptr::write_volatile(&raw mut (*tx).avail_idx, self.tx_avail);
            fence(Ordering::SeqCst);
            if core::ptr::read_volatile(&raw const (*tx).used.flags) & USED_F_NO_NOTIFY == 0 {
                core::ptr::write_volatile((self.base + R_QUEUE_NOTIFY) as *mut u32, 1);
            }
        }
        self.tx_frames += 1;
        page::set(page::F_TX_FRAMES, self.tx_frames);
        Ok(())
    }
}
