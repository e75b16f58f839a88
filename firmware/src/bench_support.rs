//! Shared by the datapath benchmark and the `dp_count` example: a testbed whose MAC repeats one
//! frame and whose DMA engine does not copy (only counts), with a host side that recycles every
//! buffer a completion hands back. Only [`crate::Firmware::poll_rx`] is the firmware's work;
//! [`Rig::host_recycle`] is the host's.

use crate::testing::*;
use splitrx_shared::abi::{rx_flags, CtrlStatus, FillDesc, PoolMode, RxCompletion};
use std::vec::Vec;

/// Fill and completion ring capacity of the rig.
pub const RIG_RING: u32 = 512;

/// The benchmark rig.
#[derive(Debug)]
pub struct Rig {
    pub tb: Testbed<RepeatMac>,
    pub q: HostQueue,
    pub hp: HostPool,
    pub pp: HostPool,
    comps: Vec<RxCompletion>,
    descs: Vec<FillDesc>,
}

/// A TCP/IPv4 frame of `frame_len` bytes: Ethernet + IPv4 (20) + TCP with the timestamp
/// option (32) + payload; 1514 gives the classic 1500-byte IP packet with 1448 bytes of payload.
pub fn tcp_ipv4_frame(frame_len: usize) -> Vec<u8> {
    assert!(frame_len >= 66);
    let mut f = std::vec![0u8; frame_len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip_len = (frame_len - 14) as u16;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&ip_len.to_be_bytes());
    f[20] = 0x40; // DF
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 1, 0, 1]);
    f[30..34].copy_from_slice(&[10, 1, 0, 2]);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&5201u16.to_be_bytes());
    f[46] = 8 << 4; // data offset 32
    f[47] = 0x10; // ACK
    f[54..58].copy_from_slice(&[1, 1, 8, 10]); // NOP NOP TS
    for (i, b) in f[66..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

impl Rig {
    /// A rig with one queue; `packed` selects a packed payload pool (64 KiB buffers, 64-byte
    /// alignment) instead of page mode (2 KiB buffers).
    pub fn new(frame: Vec<u8>, packed: bool) -> Rig {
        let mac = RepeatMac {
            frame,
            remaining: 0,
        };
        let mut tb = Testbed::with_mac(mac, false, 16);
        let n = 2 * RIG_RING;
        let (s, hp) = tb.register_pool(1, HDR_POOL_BUS, n, 256, PoolMode::Page, 0);
        assert_eq!(s, CtrlStatus::Ok);
        let (s, pp) = if packed {
            tb.register_pool(2, PAY_POOL_BUS, n, 64 << 10, PoolMode::Packed, 6)
        } else {
            tb.register_pool(2, PAY_POOL_BUS, n, 2048, PoolMode::Page, 0)
        };
        assert_eq!(s, CtrlStatus::Ok);
        let (s, mut q) = tb.create_queue(0, 1, 2, 0, RIG_RING, RIG_RING);
        assert_eq!(s, CtrlStatus::Ok);
        let h: Vec<FillDesc> = (0..RIG_RING).map(|i| hp.desc(i)).collect();
        let p: Vec<FillDesc> = (0..RIG_RING).map(|i| pp.desc(i)).collect();
        assert_eq!(q.hdr_fill.push_slice(&h).unwrap(), RIG_RING as usize);
        assert_eq!(q.pay_fill.push_slice(&p).unwrap(), RIG_RING as usize);
        Rig {
            tb,
            q,
            hp,
            pp,
            comps: std::vec![RxCompletion::default(); RIG_RING as usize],
            descs: Vec::new(),
        }
    }

    /// Queues `n` more frames at the MAC.
    pub fn feed(&mut self, n: u64) {
        self.tb.fw.hal_mut().rx.remaining += n;
    }

    /// Host side: consume completions, re-post the buffers they handed back.
    pub fn host_recycle(&mut self) -> usize {
        let n = self.q.cq.pop_into(&mut self.comps).unwrap();
        self.descs.clear();
        for c in &self.comps[..n] {
            if !c.hdr_buf.is_none() {
                self.descs.push(self.hp.desc(c.hdr_buf.index()));
            }
        }
        let pushed = self.q.hdr_fill.push_slice(&self.descs).unwrap();
        assert_eq!(pushed, self.descs.len());
        self.descs.clear();
        for c in &self.comps[..n] {
            if c.flags.get() & rx_flags::PAY_RETIRED != 0 {
                self.descs.push(self.pp.desc(c.pay_buf.index()));
            }
        }
        let pushed = self.q.pay_fill.push_slice(&self.descs).unwrap();
        assert_eq!(pushed, self.descs.len());
        n
    }
}
