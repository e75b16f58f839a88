//! Shared by the datapath benchmark and the `dp_count` example: a testbed whose MAC repeats one
//! frame and whose DMA engine does not copy (only counts), with a host side that recycles every
//! buffer a completion hands back. Only [`crate::Firmware::poll_rx`] is the firmware's work;
//! [`Rig::host_recycle`] is the host's. [`RoceRig`] is the same for the RoCE responder
//! (`benches/roce.rs`).

use crate::testing::roce::{request, REQUESTER_V4};
use crate::testing::*;
use splitrx_shared::abi::{
    access, qp_attr, qp_type, rx_flags, CtrlStatus, FillDesc, ModifyQpArgs, PoolMode, RoceCqe,
    RxCompletion, NO_SRQ,
};
use splitrx_shared::wire::roce::{opcode, Reth};
use std::vec::Vec;
use zerocopy::little_endian::U32;

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

/// What a [`RoceRig`] frame asks the responder to do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RoceBench {
    /// RC WRITE ONLY (no AckReq) of the payload length into the MR.
    Write,
    /// RC SEND ONLY (no AckReq) into a posted receive WQE.
    Send,
    /// RC READ request of the payload length: one READ RESPONSE (path MTU 4096).
    Read,
}

/// Frames a [`RoceRig`] cycles through (one PSN each); the host resets the expected PSN after
/// each batch.
pub const ROCE_BATCH: usize = 256;
const QPN: u32 = 0x11;
const KEY: u32 = 0x77;
const IOVA: u64 = 0x1000_0000;

/// The RoCE benchmark rig: one RC QP (path MTU 4096) on a testbed whose MAC cycles through
/// [`ROCE_BATCH`] requests with consecutive PSNs. `copy` selects a DMA fake that copies
/// (placement) or only counts (per-packet cost, payload copy excluded).
#[derive(Debug)]
pub struct RoceRig {
    pub tb: Testbed<ListMac>,
    pub qp: HostQp,
    pub kind: RoceBench,
    pub len: usize,
    cqes: Vec<RoceCqe>,
}

impl RoceRig {
    pub fn new(kind: RoceBench, len: usize, copy: bool) -> RoceRig {
        let mut tb = Testbed::with_mac(ListMac::default(), copy, 16);
        let all = access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ;
        assert_eq!(
            tb.register_mr(MR_BUS, 1 << 20, IOVA, KEY, KEY, all, 1),
            CtrlStatus::Ok
        );
        let (st, qp) = tb.create_qp(QPN, 1, qp_type::RC, NO_SRQ, 512, 512);
        assert_eq!(st, CtrlStatus::Ok);
        let req = REQUESTER_V4;
        assert_eq!(
            tb.connect_qp(QPN, 0x22, req.gid(), 0xc000, 0, 5, all, 0),
            CtrlStatus::Ok
        );
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let frames = (0..ROCE_BATCH as u32)
            .map(|psn| {
                let r = match kind {
                    RoceBench::Write => {
                        let mut r = request(opcode::RC_WRITE_ONLY, QPN, psn, false, len);
                        r.reth = Some(Reth {
                            va: IOVA,
                            rkey: KEY,
                            dma_len: len as u32,
                        });
                        r
                    }
                    RoceBench::Send => request(opcode::RC_SEND_ONLY, QPN, psn, false, len),
                    RoceBench::Read => {
                        let mut r = request(opcode::RC_READ_REQUEST, QPN, psn, false, 0);
                        r.reth = Some(Reth {
                            va: IOVA,
                            rkey: KEY,
                            dma_len: len as u32,
                        });
                        r
                    }
                };
                let pl: &[u8] = if kind == RoceBench::Read { &[] } else { &data };
                req.frame(&r, pl)
            })
            .collect();
        tb.fw.hal_mut().rx.frames = frames;
        RoceRig {
            tb,
            qp,
            kind,
            len,
            cqes: std::vec![RoceCqe::default(); 512],
        }
    }

    /// Queues `n` (<= [`ROCE_BATCH`]) more frames at the MAC.
    pub fn feed(&mut self, n: u64) {
        assert!(n as usize <= ROCE_BATCH);
        if self.kind == RoceBench::Send {
            for i in 0..n {
                self.qp.post(i, MR_BUS + (i % 64) * 4096, 4096, KEY);
            }
        }
        self.tb.fw.hal_mut().rx.remaining += n;
    }

    /// Host side after a batch: take the CQEs and the transmitted frames, rewind the
    /// expected PSN to 0 (ModifyQp RQ_PSN) and the MAC to the first frame.
    pub fn host_recycle(&mut self) {
        let _ = self.qp.cq.pop_into(&mut self.cqes);
        self.tb.fw.hal_mut().tx.sent.clear();
        self.tb.fw.hal_mut().rx.next = 0;
        let a = ModifyQpArgs {
            qpn: U32::new(QPN),
            attr_mask: U32::new(qp_attr::RQ_PSN),
            ..Default::default()
        };
        assert_eq!(self.tb.modify_qp(&a), CtrlStatus::Ok);
    }
}

/// The requester benchmark rig: one RC QP with a send ring (path MTU 4096) whose peer address
/// was learned from one WRITE; [`ReqRig::round`] posts a window of WRITEs of `len` bytes, runs
/// the requester until they are on the wire (DMA read into the frame, ICRC, the MAC fake's
/// copy), feeds the peer's one coalesced ACK and takes the completions.
#[derive(Debug)]
pub struct ReqRig {
    pub tb: Testbed<ListMac>,
    pub qp: HostQp,
    pub len: u32,
    cqes: Vec<RoceCqe>,
}

/// WQEs per [`ReqRig::round`] (the requester's window).
pub const REQ_ROUND: u64 = crate::roce::req::SQ_WINDOW as u64;

impl ReqRig {
    pub fn new(len: u32) -> ReqRig {
        let mut tb = Testbed::with_mac(ListMac::default(), true, 16);
        let all = access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ;
        assert_eq!(
            tb.register_mr(MR_BUS, 1 << 20, IOVA, KEY, KEY, all, 1),
            CtrlStatus::Ok
        );
        let (st, qp) = tb.create_qp_sq(QPN, 1, qp_type::RC, NO_SRQ, 64, 64, 16);
        assert_eq!(st, CtrlStatus::Ok);
        let req = REQUESTER_V4;
        assert_eq!(
            tb.connect_qp(QPN, 0x22, req.gid(), 0xc000, 0, 5, all, 0),
            CtrlStatus::Ok
        );
        // The peer's WRITE (teaches the requester its address), then its ACK of our window.
        let mut w = request(opcode::RC_WRITE_ONLY, QPN, 0, false, 4);
        w.reth = Some(Reth {
            va: IOVA,
            rkey: KEY,
            dma_len: 4,
        });
        let mut ack = request(opcode::RC_ACK, QPN, REQ_ROUND as u32 - 1, false, 0);
        ack.aeth = Some(splitrx_shared::wire::roce::Aeth {
            syndrome: 0x1f,
            msn: 0,
        });
        tb.fw.hal_mut().rx.frames = std::vec![req.frame(&w, &[1, 2, 3, 4]), req.frame(&ack, &[])];
        tb.fw.hal_mut().rx.remaining = 1;
        while tb.fw.poll() {}
        tb.fw.hal_mut().tx.sent.clear();
        ReqRig {
            tb,
            qp,
            len,
            cqes: std::vec![RoceCqe::default(); 64],
        }
    }

    /// One window: post, send, ACK, complete. Returns the packets sent.
    pub fn round(&mut self) -> usize {
        for i in 0..REQ_ROUND {
            let w = splitrx_shared::abi::SendWqe {
                wr_id: i.into(),
                bus_addr: (MR_BUS + (i % 16) * 4096).into(),
                len: self.len.into(),
                lkey: KEY.into(),
                remote_addr: 0x7000_0000.into(),
                rkey: 0x99.into(),
                opcode: splitrx_shared::abi::send_op::RDMA_WRITE,
                qpn: QPN.into(),
                ..Default::default()
            };
            assert!(self
                .qp
                .sq
                .as_mut()
                .expect("send ring")
                .push(&w)
                .expect("sq"));
        }
        while self.tb.fw.poll() {}
        let sent = self.tb.fw.hal().tx.sent.len();
        // The coalesced ACK (frame 1 of the list).
        let mac = &mut self.tb.fw.hal_mut().rx;
        mac.next = 1;
        mac.remaining = 1;
        while self.tb.fw.poll() {}
        sent
    }

    /// Host side after a round: the completions taken, the frames dropped, the send PSN back
    /// to 0 (ModifyQp SQ_PSN) so the same ACK fits the next round.
    pub fn host_recycle(&mut self) -> usize {
        let n = self.qp.cq.pop_into(&mut self.cqes).unwrap_or(0);
        self.tb.fw.hal_mut().tx.sent.clear();
        let a = ModifyQpArgs {
            qpn: U32::new(QPN),
            attr_mask: U32::new(qp_attr::SQ_PSN),
            ..Default::default()
        };
        assert_eq!(self.tb.modify_qp(&a), CtrlStatus::Ok);
        n
    }
}
