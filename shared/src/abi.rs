//! The host <-> NIC ABI: every record that crosses the boundary.
//!
//! Rules (see `docs/ABI.md` for the byte-level tables):
//! - every record is `#[repr(C)]`, fixed-size, little-endian (zerocopy's `little_endian`
//!   integer types, which are alignment-1 byte arrays, so the layout has no padding and is the
//!   same on every target);
//! - sizes and field offsets are asserted at compile time below each record;
//! - records are read out of shared memory by value (copied) before they are validated, so a
//!   hostile peer cannot change a record between check and use;
//! - a buffer is named by a [`BufRef`] (pool id, buffer index) and carries a bus address; every
//!   offset and length inside a buffer is range-checked by the receiver.

use core::mem::{offset_of, size_of};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// `"SPRX"` read as a little-endian u32.
pub const QUEUE_MAGIC: u32 = u32::from_le_bytes(*b"SPRX");
/// ABI version: major in the high 16 bits, minor in the low 16 bits. A peer accepts any minor
/// of its own major.
///
/// 2.0: [`RxCompletion`] grew from 32 to 48 bytes (`rx_timestamp_ns`, `csum_complete`,
/// reserved bytes): a completion ring of 1.x cannot be read by a 2.x peer, so the major moved.
/// 2.2: a receive WQE may span several [`RecvWqe`] entries ([`RecvWqe::MORE`], scatter
/// lists; a 2.1 host never sets that bit, so nothing it wrote changes meaning); the CM listen
/// ops ([`CtrlOp::CmListen`], [`CtrlOp::CmUnlisten`]) and device counters 35-41.
/// 2.3: the RC requester: a QP region may hold a [`RingKind::SendWqe`] ring
/// ([`CreateQpArgs::flags`] [`CreateQpArgs::SEND_QUEUE`]), [`ModifyQpArgs`] grew to 56 bytes
/// (send PSN, timeout, retry counts; a 2.2 host's zero padding leaves them unset) and device
/// counters 42-49. Nothing a 2.2 peer wrote changes meaning.
pub const ABI_VERSION: u32 = abi_version(2, 3);
/// Builds an ABI version word.
pub const fn abi_version(major: u16, minor: u16) -> u32 {
    ((major as u32) << 16) | minor as u32
}
/// Major part of an ABI version word.
pub const fn abi_major(v: u32) -> u16 {
    (v >> 16) as u16
}

/// Maximum number of rings described by one [`QueueHeader`].
pub const MAX_RINGS: usize = 8;

macro_rules! assert_layout {
    ($t:ty, size = $size:expr, $($field:ident = $off:expr),* $(,)?) => {
        const _: () = assert!(size_of::<$t>() == $size);
        const _: () = assert!(core::mem::align_of::<$t>() == 1);
        $(const _: () = assert!(offset_of!($t, $field) == $off);)*
    };
}

/// Names one buffer: pool id in the top 8 bits, buffer index in the low 24 bits.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(transparent)]
pub struct BufRef(pub U32);

impl BufRef {
    /// "No buffer" (e.g. the payload buffer of an unsplit frame).
    pub const NONE: BufRef = BufRef(U32::new(u32::MAX));
    /// Largest buffer index a pool can have (24 bits).
    pub const MAX_INDEX: u32 = (1 << 24) - 2;
    /// Largest pool id.
    pub const MAX_POOL: u8 = u8::MAX;

    /// Builds a reference; `None` when `index` does not fit 24 bits.
    pub const fn new(pool: u8, index: u32) -> Option<BufRef> {
        if index > Self::MAX_INDEX {
            return None;
        }
        Some(BufRef(U32::new(((pool as u32) << 24) | index)))
    }
    pub const fn pool(self) -> u8 {
        (self.0.get() >> 24) as u8
    }
    pub const fn index(self) -> u32 {
        self.0.get() & 0x00ff_ffff
    }
    pub const fn is_none(self) -> bool {
        self.0.get() == u32::MAX
    }
    pub const fn raw(self) -> u32 {
        self.0.get()
    }
    pub const fn from_raw(raw: u32) -> BufRef {
        BufRef(U32::new(raw))
    }
}

impl core::fmt::Debug for BufRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_none() {
            f.write_str("BufRef(NONE)")
        } else {
            write!(f, "BufRef({}:{})", self.pool(), self.index())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Queue header
// ---------------------------------------------------------------------------------------------

int_enum! {
    /// What a ring in a [`QueueHeader`] carries.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum RingKind: u16, from_u16 {
        Unused = 0,
        /// host -> NIC, [`FillDesc`]: header buffers.
        HeaderFill = 1,
        /// host -> NIC, [`FillDesc`]: payload buffers.
        PayloadFill = 2,
        /// NIC -> host, [`RxCompletion`].
        RxCompletion = 3,
        /// host -> NIC, [`CtrlMsg`] requests.
        CtrlRequest = 4,
        /// NIC -> host, [`CtrlMsg`] responses.
        CtrlResponse = 5,
        /// host -> NIC, [`RecvWqe`] (RoCE receive queue / SRQ).
        RecvWqe = 6,
        /// NIC -> host, [`RoceCqe`].
        RoceCq = 7,
        /// host -> NIC, [`SendWqe`] (RoCE send queue).
        SendWqe = 8,
    }
}

impl RingKind {
    /// Size of one entry of this ring kind.
    pub const fn entry_size(self) -> usize {
        match self {
            RingKind::Unused => 0,
            RingKind::HeaderFill | RingKind::PayloadFill => size_of::<FillDesc>(),
            RingKind::RxCompletion => size_of::<RxCompletion>(),
            RingKind::CtrlRequest | RingKind::CtrlResponse => size_of::<CtrlMsg>(),
            RingKind::RecvWqe => size_of::<RecvWqe>(),
            RingKind::RoceCq => size_of::<RoceCqe>(),
            RingKind::SendWqe => size_of::<SendWqe>(),
        }
    }
}

/// Where one ring lives inside the shared region.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RingDesc {
    /// Byte offset of the ring (its index block) from the start of the shared region; 64-aligned.
    pub offset: U64,
    /// Number of entries; a power of two.
    pub capacity: U32,
    /// [`RingKind`] as u16.
    pub kind: U16,
    /// Size of one entry in bytes; must equal `RingKind::entry_size`.
    pub entry_size: U16,
}
assert_layout!(
    RingDesc,
    size = 16,
    offset = 0,
    capacity = 8,
    kind = 12,
    entry_size = 14
);

int_enum! {
    /// Status the NIC publishes for a queue in [`QueueHeader::nic_status`].
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum QueueStatus: u32, from_u32 {
        Stopped = 0,
        Running = 1,
        /// The NIC detected a corrupt ring index from the host and stopped the queue.
        FaultRingCorrupt = 2,
        Resetting = 3,
    }
}

/// The first bytes of a shared region (the host memory window of a queue or of the control
/// plane). Written by the host before it tells the NIC about the region; the NIC copies it out
/// once, validates it, and never re-reads the layout fields.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct QueueHeader {
    /// [`QUEUE_MAGIC`].
    pub magic: U32,
    /// [`ABI_VERSION`] of the writer.
    pub abi_version: U32,
    /// Total size of the shared region in bytes.
    pub region_size: U64,
    /// Queue id this region belongs to (`u16::MAX` for the control region).
    pub queue_id: U16,
    /// Number of valid entries in `rings`.
    pub ring_count: U16,
    /// Written by the NIC: a [`QueueStatus`].
    pub nic_status: U32,
    /// Written by the NIC: a fault detail code (0 = none).
    pub nic_fault: U32,
    pub _reserved: [u8; 36],
    pub rings: [RingDesc; MAX_RINGS],
}
assert_layout!(
    QueueHeader,
    size = 192,
    magic = 0,
    abi_version = 4,
    region_size = 8,
    queue_id = 16,
    ring_count = 18,
    nic_status = 20,
    nic_fault = 24,
    rings = 64
);

/// Why a [`QueueHeader`] was rejected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HeaderError {
    BadMagic,
    AbiMismatch { ours: u32, theirs: u32 },
    TooManyRings,
    RingOutOfRegion { ring: usize },
    RingMisaligned { ring: usize },
    RingNotPowerOfTwo { ring: usize },
    RingKindUnknown { ring: usize },
    RingEntrySize { ring: usize },
    RingsOverlap { a: usize, b: usize },
    RegionTooSmall,
}

impl QueueHeader {
    /// Validates a header copied out of a shared region of `region_len` bytes. Rings must lie
    /// inside the region, after the header, 64-byte aligned, not overlap, have power-of-two
    /// capacity and the entry size of their kind.
    pub fn validate(&self, region_len: usize) -> Result<(), HeaderError> {
        if self.magic.get() != QUEUE_MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if abi_major(self.abi_version.get()) != abi_major(ABI_VERSION) {
            return Err(HeaderError::AbiMismatch {
                ours: ABI_VERSION,
                theirs: self.abi_version.get(),
            });
        }
        if (self.region_size.get() as u128) > region_len as u128
            || region_len < size_of::<QueueHeader>()
        {
            return Err(HeaderError::RegionTooSmall);
        }
        let n = self.ring_count.get() as usize;
        if n > MAX_RINGS {
            return Err(HeaderError::TooManyRings);
        }
        let mut spans: [(u64, u64); MAX_RINGS] = [(0, 0); MAX_RINGS];
        for (i, r) in self.rings[..n].iter().enumerate() {
            let kind =
                RingKind::from_u16(r.kind.get()).ok_or(HeaderError::RingKindUnknown { ring: i })?;
            if kind == RingKind::Unused {
                continue;
            }
            if r.entry_size.get() as usize != kind.entry_size() {
                return Err(HeaderError::RingEntrySize { ring: i });
            }
            let cap = r.capacity.get();
            if cap == 0 || !cap.is_power_of_two() {
                return Err(HeaderError::RingNotPowerOfTwo { ring: i });
            }
            let off = r.offset.get();
            if off % crate::ring::RING_ALIGN as u64 != 0 {
                return Err(HeaderError::RingMisaligned { ring: i });
            }
            let bytes = crate::ring::ring_bytes(cap, kind.entry_size());
            let end = off
                .checked_add(bytes)
                .ok_or(HeaderError::RingOutOfRegion { ring: i })?;
            if off < size_of::<QueueHeader>() as u64 || end > self.region_size.get() {
                return Err(HeaderError::RingOutOfRegion { ring: i });
            }
            spans[i] = (off, end);
            for (j, s) in spans[..i].iter().enumerate() {
                if s.1 > s.0 && off < s.1 && s.0 < end {
                    return Err(HeaderError::RingsOverlap { a: j, b: i });
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// RX datapath records
// ---------------------------------------------------------------------------------------------

/// host -> NIC: one free buffer for a fill ring (header or payload). 16 bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct FillDesc {
    /// Bus address of the first byte of the buffer (as the NIC's DMA engine sees it).
    pub bus_addr: U64,
    /// Usable length of the buffer in bytes.
    pub len: U32,
    /// Which buffer this is.
    pub buf: BufRef,
}
assert_layout!(FillDesc, size = 16, bus_addr = 0, len = 8, buf = 12);

impl FillDesc {
    pub fn new(buf: BufRef, bus_addr: u64, len: u32) -> FillDesc {
        FillDesc {
            bus_addr: U64::new(bus_addr),
            len: U32::new(len),
            buf,
        }
    }
}

/// Bits of [`RxCompletion::flags`].
pub mod rx_flags {
    /// Header and payload were split; `pay_*` fields are valid.
    pub const SPLIT: u16 = 1 << 0;
    /// The innermost TCP/UDP checksum was verified by the NIC and is correct (and no IPv4
    /// header checksum is wrong). The rule: [`crate::csum`].
    pub const CSUM_OK: u16 = 1 << 1;
    /// An IPv4 header checksum or the innermost TCP/UDP checksum was verified by the NIC and
    /// is wrong. Neither `CSUM_OK` nor `CSUM_BAD`: no L4 checksum verified (not TCP/UDP, a
    /// fragment, UDP checksum 0 over IPv4, malformed).
    pub const CSUM_BAD: u16 = 1 << 2;
    /// The frame was malformed or truncated (class `Malformed`); it went whole to the header
    /// buffer, `reason` says why.
    pub const ERROR: u16 = 1 << 3;
    /// Packed mode: the NIC is done with the payload buffer (no later completion will name it).
    /// In page mode every split completion carries this bit.
    pub const PAY_RETIRED: u16 = 1 << 4;
    /// RoCEv2 frame whose ICRC was verified and is correct.
    pub const ICRC_OK: u16 = 1 << 5;
    /// RoCEv2 frame whose ICRC is wrong.
    pub const ICRC_BAD: u16 = 1 << 6;
    /// Frame came through a tunnel (VXLAN/Geneve); offsets are of the inner headers.
    pub const TUNNEL: u16 = 1 << 7;
    /// The header buffer holds only the first `hdr_len` bytes of a frame that was longer than
    /// the header buffer (unsplit frame truncated to fit).
    pub const HDR_TRUNCATED: u16 = 1 << 8;
    /// Not a frame: the NIC returns an unused payload buffer (queue reset / flush).
    pub const FLUSH: u16 = 1 << 9;
    /// All bits defined in this ABI version.
    pub const ALL: u16 = (1 << 10) - 1;
}

/// NIC -> host: one received frame. 48 bytes (ABI 2.0; 32 in 1.x).
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RxCompletion {
    /// Header buffer the frame's header part (or whole frame, if unsplit) was written to.
    pub hdr_buf: BufRef,
    /// Payload buffer, or [`BufRef::NONE`] when unsplit.
    pub pay_buf: BufRef,
    /// Offset of the payload inside the payload buffer (non-zero in packed mode).
    pub pay_off: U32,
    /// Payload length in bytes (0 when unsplit).
    pub pay_len: U32,
    /// Bytes written to the header buffer.
    pub hdr_len: U16,
    /// [`rx_flags`] bits.
    pub flags: U16,
    /// [`crate::split::FrameClass`] as u8.
    pub class: u8,
    /// [`crate::split::NoSplitReason`] as u8 (0 when split).
    pub reason: u8,
    /// RX queue that received the frame.
    pub queue: U16,
    /// Flow hash used to steer the frame (Toeplitz over the outer 4-tuple/2-tuple).
    pub flow_hash: U32,
    /// Length of the frame on the wire (as received from the MAC).
    pub frame_len: U32,
    /// The MAC's receive timestamp of the frame, in nanoseconds of the NIC's clock (what
    /// `SO_TIMESTAMPING` with `SOF_TIMESTAMPING_RX_HARDWARE` reports in
    /// `scm_timestamping.ts[2]`). 0 on FLUSH completions.
    pub rx_timestamp_ns: U64,
    /// CHECKSUM_COMPLETE: the ones'-complement sum, folded to 16 bits and not complemented,
    /// of the L4 payload bytes (`crate::csum` and `docs/ABI.md` say exactly which); 0 when the
    /// frame has no recognised payload.
    pub csum_complete: U16,
    /// Zero.
    pub _reserved: [u8; 6],
}
assert_layout!(
    RxCompletion,
    size = 48,
    hdr_buf = 0,
    pay_buf = 4,
    pay_off = 8,
    pay_len = 12,
    hdr_len = 16,
    flags = 18,
    class = 20,
    reason = 21,
    queue = 22,
    flow_hash = 24,
    frame_len = 28,
    rx_timestamp_ns = 32,
    csum_complete = 40,
    _reserved = 42
);

/// Shortest frame the NIC places: an Ethernet header. Shorter frames (runts, including empty
/// ones) are dropped at the MAC and counted (`dev::DROP_RUNT`); no completion ever names one.
pub const MIN_FRAME: usize = 14;

/// Why an [`RxCompletion`] is not valid: the one rule both sides apply
/// ([`RxCompletion::validate`]). The firmware checks every completion before publishing it; the
/// host checks every completion it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CompletionFault {
    /// It names another queue.
    WrongQueue(u16),
    /// Unknown flag bits, or a FLUSH that names a header buffer or carries bytes.
    Flags(u16),
    /// Lengths that cannot describe a frame: a header part shorter than [`MIN_FRAME`] (or, when
    /// unsplit and the frame is short, than the frame), a split frame without payload, parts
    /// longer than the frame, or a payload buffer on an unsplit frame.
    Lengths {
        hdr_len: u16,
        pay_len: u32,
        frame_len: u32,
    },
}

impl core::fmt::Display for CompletionFault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CompletionFault::WrongQueue(q) => write!(f, "completion names queue {q}"),
            CompletionFault::Flags(v) => write!(f, "bad flag bits {v:#x}"),
            CompletionFault::Lengths {
                hdr_len,
                pay_len,
                frame_len,
            } => write!(
                f,
                "inconsistent lengths (hdr {hdr_len}, payload {pay_len}, frame {frame_len})"
            ),
        }
    }
}

impl RxCompletion {
    /// Checks the completion's own fields for queue `queue` (the buffers it names are the
    /// ledger's business): known flags; a FLUSH names no header buffer and carries no bytes;
    /// otherwise the header part holds at least [`MIN_FRAME`] bytes (unsplit: the whole frame,
    /// truncated to the header buffer), a split frame has payload and both parts fit the
    /// frame, an unsplit one names no payload buffer.
    pub fn validate(&self, queue: u16) -> Result<(), CompletionFault> {
        if self.queue.get() != queue {
            return Err(CompletionFault::WrongQueue(self.queue.get()));
        }
        let flags = self.flags.get();
        if flags & !rx_flags::ALL != 0 {
            return Err(CompletionFault::Flags(flags));
        }
        let (hdr_len, pay_len, frame_len) =
            (self.hdr_len.get(), self.pay_len.get(), self.frame_len.get());
        if flags & rx_flags::FLUSH != 0 {
            if !self.hdr_buf.is_none() || pay_len != 0 {
                return Err(CompletionFault::Flags(flags));
            }
            return Ok(());
        }
        let lengths_ok = (hdr_len as usize) >= MIN_FRAME
            && if flags & rx_flags::SPLIT != 0 {
                pay_len > 0 && hdr_len as u64 + pay_len as u64 <= frame_len as u64
            } else {
                pay_len == 0 && self.pay_buf.is_none() && hdr_len as u32 <= frame_len
            };
        if !lengths_ok {
            return Err(CompletionFault::Lengths {
                hdr_len,
                pay_len,
                frame_len,
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// RoCE records (used by the RoCEv2 responder; layout fixed now so the ABI does not move later)
// ---------------------------------------------------------------------------------------------

/// host -> NIC: one scatter entry (SGE) of a receive WQE posted to a QP or SRQ. 32 bytes.
///
/// A WQE is 1 to [`MAX_RECV_SGE`] consecutive entries of the ring, all with the same `wr_id`
/// and `qpn`: every entry but the last has [`RecvWqe::MORE`] set in `qpn`. The host commits a
/// WQE's entries in one ring commit; the NIC places a message over the entries in order
/// (`ibv_post_recv`'s `sg_list`). A WQE the NIC cannot read whole (a missing, foreign or
/// surplus entry) is a ring fault.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RecvWqe {
    /// Opaque to the NIC; returned in the CQE.
    pub wr_id: U64,
    /// Bus address of the receive buffer.
    pub bus_addr: U64,
    /// Length of the receive buffer.
    pub len: U32,
    /// Local key of the memory region the buffer lies in.
    pub lkey: U32,
    /// The buffer, for the host's ledger.
    pub buf: BufRef,
    /// QP number (or SRQ number with the top bit set), and [`RecvWqe::MORE`].
    pub qpn: U32,
}

/// The most scatter entries one receive WQE may have (`max_recv_sge`).
pub const MAX_RECV_SGE: usize = 4;

impl RecvWqe {
    /// `qpn` bit: another entry of the same WQE follows.
    pub const MORE: u32 = 1 << 30;
    /// Whether another entry of the same WQE follows.
    #[inline]
    pub fn more(&self) -> bool {
        self.qpn.get() & Self::MORE != 0
    }
}
assert_layout!(
    RecvWqe,
    size = 32,
    wr_id = 0,
    bus_addr = 8,
    len = 16,
    lkey = 20,
    buf = 24,
    qpn = 28
);

/// Bits of [`RoceCqe::wc_flags`] (the meaning of `ibv_wc_flags`).
pub mod wc_flags {
    pub const WITH_IMM: u16 = 1 << 0;
    pub const WITH_INV: u16 = 1 << 1;
    pub const GRH: u16 = 1 << 2;
}

/// NIC -> host: a RoCE work completion. 32 bytes.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RoceCqe {
    pub wr_id: U64,
    /// Bytes placed into the receive buffer.
    pub byte_len: U32,
    /// Immediate data (the 4 wire bytes read big-endian: what `ntohl(wc.imm_data)` gives in
    /// verbs) or the invalidated rkey.
    pub imm_or_inv: U32,
    /// Local QP number.
    pub qpn: U32,
    /// Source QP (UD) or remote QP.
    pub src_qp: U32,
    /// Completion status (`ibv_wc_status` numbering).
    pub status: u8,
    /// Completion opcode (`ibv_wc_opcode` numbering).
    pub opcode: u8,
    pub wc_flags: U16,
    /// PSN of the last packet of the message.
    pub psn: U32,
}
assert_layout!(
    RoceCqe,
    size = 32,
    wr_id = 0,
    byte_len = 8,
    imm_or_inv = 12,
    qpn = 16,
    src_qp = 20,
    status = 24,
    opcode = 25,
    wc_flags = 26,
    psn = 28
);

/// `ibv_wr_opcode` values the requester executes, in [`SendWqe::opcode`].
pub mod send_op {
    pub const RDMA_WRITE: u8 = 0;
    pub const RDMA_WRITE_WITH_IMM: u8 = 1;
    pub const SEND: u8 = 2;
    pub const SEND_WITH_IMM: u8 = 3;
    pub const RDMA_READ: u8 = 4;
}

/// Bits of [`SendWqe::flags`].
pub mod send_flags {
    /// The last packet asks the peer for a solicited event (BTH SE).
    pub const SOLICITED: u8 = 1 << 0;
}

/// host -> NIC: one send work request of an RC or UD QP (`ibv_post_send` with one SGE). 64
/// bytes.
///
/// The requester segments it into path-MTU packets from the QP's send PSN, keeps it until the
/// peer acknowledges its last packet (a READ: until its last response arrives) and then
/// completes it on the QP's CQ with the [`wc_opcode`] of the work request. Every WQE
/// completes (all are signaled). A WQE the NIC refuses (foreign `qpn`, unknown opcode,
/// nonzero reserved bytes, local range outside its MR) completes with `LOC_QP_OP_ERR` or
/// `LOC_PROT_ERR` and moves the QP to ERR, as a local error does in verbs.
#[derive(
    Clone, Copy, PartialEq, Eq, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SendWqe {
    /// Opaque to the NIC; returned in the CQE.
    pub wr_id: U64,
    /// Local buffer: bus address (source of a SEND/WRITE, destination of a READ).
    pub bus_addr: U64,
    /// Bytes to send, write or read.
    pub len: U32,
    /// Local key of the MR the local buffer lies in (a READ needs `LOCAL_WRITE`).
    pub lkey: U32,
    /// WRITE/READ: the peer's virtual address and rkey.
    pub remote_addr: U64,
    pub rkey: U32,
    /// `*_WITH_IMM`: the immediate data (host order; sent big-endian).
    pub imm: U32,
    /// [`send_op`].
    pub opcode: u8,
    /// [`send_flags`].
    pub flags: u8,
    pub _pad: U16,
    /// The QP the WQE belongs to.
    pub qpn: U32,
    /// UD: the destination QP and its Q_Key (the datagram goes to the QP's peer address).
    pub remote_qpn: U32,
    pub remote_qkey: U32,
    pub _rsvd: [u8; 8],
}
assert_layout!(
    SendWqe,
    size = 64,
    wr_id = 0,
    bus_addr = 8,
    len = 16,
    lkey = 20,
    remote_addr = 24,
    rkey = 32,
    imm = 36,
    opcode = 40,
    flags = 41,
    _pad = 42,
    qpn = 44,
    remote_qpn = 48,
    remote_qkey = 52,
    _rsvd = 56
);

// ---------------------------------------------------------------------------------------------
// Control plane
// ---------------------------------------------------------------------------------------------

/// Size of the argument body of a control message.
pub const CTRL_BODY: usize = 56;

/// A control request (host -> NIC) or response (NIC -> host). 64 bytes, one cache line.
/// Requests carry a fresh `seq`; the response echoes `seq` and `opcode` and sets `status`.
/// A response with [`CtrlStatus::More`] is followed by further responses with the same `seq`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CtrlMsg {
    pub seq: U32,
    /// [`CtrlOp`] as u16.
    pub opcode: U16,
    /// [`CtrlStatus`] as u16 in responses; 0 in requests.
    pub status: U16,
    /// Opcode-specific arguments (one of the `*Args` records below, zero-padded).
    pub body: [u8; CTRL_BODY],
}
assert_layout!(
    CtrlMsg,
    size = 64,
    seq = 0,
    opcode = 4,
    status = 6,
    body = 8
);

impl Default for CtrlMsg {
    fn default() -> Self {
        CtrlMsg::new_zeroed()
    }
}

impl CtrlMsg {
    /// A message with `args` serialized into the body.
    pub fn with_args<A: IntoBytes + Immutable>(
        seq: u32,
        op: CtrlOp,
        status: CtrlStatus,
        args: &A,
    ) -> CtrlMsg {
        let mut m = CtrlMsg::new_zeroed();
        m.seq = U32::new(seq);
        m.opcode = U16::new(op as u16);
        m.status = U16::new(status as u16);
        let b = args.as_bytes();
        let n = b.len().min(CTRL_BODY);
        m.body[..n].copy_from_slice(&b[..n]);
        m
    }
    /// Reads the body as `A` (always succeeds for records up to 56 bytes; longer ones fail).
    /// Prefer the typed [`CtrlMsg::args_of`] / [`CtrlMsg::resp_of`].
    pub fn args<A: FromBytes>(&self) -> Option<A> {
        A::read_from_prefix(&self.body).ok().map(|(a, _)| a)
    }
    /// A request of call `C`.
    pub fn request<C: CtrlCall>(seq: u32, args: &C::Args) -> CtrlMsg {
        CtrlMsg::with_args(seq, C::OP, CtrlStatus::Ok, args)
    }
    /// A response of call `C`.
    pub fn response<C: CtrlCall>(seq: u32, status: CtrlStatus, body: &C::Resp) -> CtrlMsg {
        CtrlMsg::with_args(seq, C::OP, status, body)
    }
    /// The request body, when this message is a `C` (its opcode is `C::OP`).
    pub fn args_of<C: CtrlCall>(&self) -> Option<C::Args> {
        (self.opcode.get() == C::OP as u16).then(|| self.args())?
    }
    /// The response body, when this message answers a `C`.
    pub fn resp_of<C: CtrlCall>(&self) -> Option<C::Resp> {
        (self.opcode.get() == C::OP as u16).then(|| self.args())?
    }
    pub fn op(&self) -> Option<CtrlOp> {
        CtrlOp::from_u16(self.opcode.get())
    }
    pub fn status(&self) -> Option<CtrlStatus> {
        CtrlStatus::from_u16(self.status.get())
    }
}

int_enum! {
    /// Control opcodes.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum CtrlOp: u16, from_u16 {
        /// No body. Response body: [`VersionInfo`].
        GetVersion = 1,
        /// Body: [`RegisterPoolArgs`].
        RegisterPool = 2,
        /// Body: [`PoolArgs`].
        UnregisterPool = 3,
        /// Body: [`CreateRxQueueArgs`].
        CreateRxQueue = 4,
        /// Body: [`QueueArgs`].
        DestroyRxQueue = 5,
        /// Body: [`HdsThreshArgs`].
        SetHdsThresh = 6,
        /// Body: [`QueueArgs`]. Responses: zero or more [`CtrlStatus::More`] with [`OutstandingArgs`]
        /// (buffers the NIC still held), then one `Ok` with the final batch and the total.
        ResetQueue = 7,
        /// Body: [`StatsArgs`] (queue, page). Response: [`StatsPage`].
        ReadStats = 8,
        /// Body: [`RssArgs`]: how many queues and the hash key.
        SetRss = 9,
        /// RoCE: register a memory region. Body: [`RegisterMrArgs`].
        RegisterMr = 16,
        /// RoCE: create a QP (state RESET). Body: [`CreateQpArgs`].
        CreateQp = 17,
        /// RoCE: destroy a QP; its held WQE is completed with `WR_FLUSH_ERR`. Body: [`QpArgs`].
        DestroyQp = 18,
        /// RoCE: deregister a memory region. Body: [`MrArgs`].
        DeregisterMr = 19,
        /// RoCE: change a QP's state and attributes. Body: [`ModifyQpArgs`].
        ModifyQp = 20,
        /// RoCE: create a shared receive queue. Body: [`CreateSrqArgs`].
        CreateSrq = 21,
        /// RoCE: destroy a shared receive queue (`Busy` while a QP uses it). Body: [`SrqArgs`].
        DestroySrq = 22,
        /// RoCE: a QP's state. Body: [`QpArgs`]. Response: [`QpInfo`].
        QueryQp = 23,
        /// RoCE connection management: answer CM REQs for a service ID on QP 1 by connecting
        /// a QP the host created (state INIT). Body: [`CmListenArgs`].
        CmListen = 24,
        /// Stop answering a service ID: every listen on it ends (connections made stay).
        /// Body: [`CmListenArgs`] (`qpn` ignored).
        CmUnlisten = 25,
    }
}

int_enum! {
    /// Control status codes.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum CtrlStatus: u16, from_u16 {
        Ok = 0,
        /// More responses with this `seq` follow.
        More = 1,
        UnknownOp = 2,
        /// Body fields out of range or inconsistent.
        Invalid = 3,
        /// Queue/pool/QP id does not exist.
        NotFound = 4,
        /// Id already in use.
        Exists = 5,
        /// A fixed-capacity table is full.
        NoSpace = 6,
        /// The object is busy (e.g. pool still bound to a queue).
        Busy = 7,
        /// Recognised but not implemented by this firmware.
        Unsupported = 8,
        /// The region header did not validate.
        BadRegion = 9,
    }
}

/// Response to [`CtrlOp::GetVersion`].
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VersionInfo {
    pub abi_version: U32,
    /// Firmware semantic version: major << 16 | minor << 8 | patch.
    pub fw_version: U32,
    pub max_queues: U16,
    pub max_pools: U16,
    /// Capabilities bitmap (bit 0 packed mode, bit 1 RSS, bit 2 RoCE responder).
    pub caps: U32,
}
assert_layout!(
    VersionInfo,
    size = 16,
    abi_version = 0,
    fw_version = 4,
    max_queues = 8,
    max_pools = 10,
    caps = 12
);

int_enum! {
    /// Buffer mode of a payload pool.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum PoolMode: u8, from_u8 {
        /// One payload per buffer (header pools are always this).
        Page = 0,
        /// Several payloads packed into a buffer at `align`; the NIC retires the buffer when the
        /// next payload does not fit.
        Packed = 1,
    }
}

/// [`CtrlOp::RegisterPool`]: a window of bus addresses carved into `count` buffers of
/// `buf_size` bytes; buffer `i` starts at `bus_base + i * buf_size`. The NIC checks every fill
/// descriptor of this pool against it (IOMMU-style).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RegisterPoolArgs {
    pub bus_base: U64,
    pub window_len: U64,
    pub buf_size: U32,
    pub count: U32,
    pub pool: u8,
    /// [`PoolMode`].
    pub mode: u8,
    /// log2 of the packing alignment in packed mode (e.g. 6 = 64 bytes).
    pub align_log2: u8,
    pub _pad: u8,
}
assert_layout!(
    RegisterPoolArgs,
    size = 28,
    bus_base = 0,
    window_len = 8,
    buf_size = 16,
    count = 20,
    pool = 24,
    mode = 25,
    align_log2 = 26
);

/// Body naming a pool.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct PoolArgs {
    pub pool: u8,
    pub _pad: [u8; 3],
}
assert_layout!(PoolArgs, size = 4, pool = 0);

/// [`CtrlOp::CreateRxQueue`]: the queue's shared region (its [`QueueHeader`] describes the
/// fill and completion rings) and the pools its fill rings draw from.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CreateRxQueueArgs {
    /// Bus address of the queue's shared region (starts with a [`QueueHeader`]).
    pub region_bus_addr: U64,
    pub region_len: U64,
    pub queue: U16,
    pub hdr_pool: u8,
    pub pay_pool: u8,
    pub hds_thresh: U32,
}
assert_layout!(
    CreateRxQueueArgs,
    size = 24,
    region_bus_addr = 0,
    region_len = 8,
    queue = 16,
    hdr_pool = 18,
    pay_pool = 19,
    hds_thresh = 20
);

/// Body naming a queue.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct QueueArgs {
    pub queue: U16,
    pub _pad: U16,
}
assert_layout!(QueueArgs, size = 4, queue = 0);

/// [`CtrlOp::SetHdsThresh`]: frames whose payload is <= `hds_thresh` bytes are not split.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct HdsThreshArgs {
    pub queue: U16,
    pub _pad: U16,
    pub hds_thresh: U32,
}
assert_layout!(HdsThreshArgs, size = 8, queue = 0, hds_thresh = 4);

/// Buffers per [`OutstandingArgs`] batch.
pub const OUTSTANDING_PER_MSG: usize = 12;

/// A batch of buffers the NIC still held when a queue was reset (response to
/// [`CtrlOp::ResetQueue`]). The last response (`Ok`) carries `total`, the number of buffers
/// reported across all batches of this `seq`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OutstandingArgs {
    pub queue: U16,
    /// Valid entries in `bufs`.
    pub count: u8,
    pub _pad: u8,
    pub total: U32,
    pub bufs: [BufRef; OUTSTANDING_PER_MSG],
}
assert_layout!(
    OutstandingArgs,
    size = 56,
    queue = 0,
    count = 2,
    total = 4,
    bufs = 8
);

/// [`CtrlOp::ReadStats`] request.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StatsArgs {
    /// Queue, or `u16::MAX` for device-wide counters.
    pub queue: U16,
    /// Which page of 12 counters.
    pub page: U16,
}
assert_layout!(StatsArgs, size = 4, queue = 0, page = 2);

/// Counters per [`StatsPage`].
pub const STATS_PER_PAGE: usize = 6;

/// [`CtrlOp::ReadStats`] response: `count` counters starting at counter number `first`
/// (numbering documented by the firmware's stats table). `total` is the number of counters.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StatsPage {
    pub queue: U16,
    pub first: U16,
    pub count: U16,
    pub total: U16,
    pub values: [U64; STATS_PER_PAGE],
}
assert_layout!(
    StatsPage,
    size = 56,
    queue = 0,
    first = 2,
    count = 4,
    total = 6,
    values = 8
);

/// Length of the RSS hash key (Toeplitz, as in Microsoft's RSS spec).
pub const RSS_KEY_LEN: usize = 40;

/// [`CtrlOp::SetRss`].
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RssArgs {
    /// Frames are steered to `hash % queues` (over the created queues, in id order).
    pub queues: U16,
    pub _pad: U16,
    pub key: [u8; RSS_KEY_LEN],
}
assert_layout!(RssArgs, size = 44, queues = 0, key = 4);

/// `ibv_access_flags` bits, as carried by [`RegisterMrArgs::access`] and
/// [`ModifyQpArgs::access`].
pub mod access {
    pub const LOCAL_WRITE: u32 = 1 << 0;
    pub const REMOTE_WRITE: u32 = 1 << 1;
    pub const REMOTE_READ: u32 = 1 << 2;
    pub const REMOTE_ATOMIC: u32 = 1 << 3;
}

/// [`CtrlOp::RegisterMr`]: a memory region the responder may place into (receive WQEs name it
/// by `lkey`) and remote peers may reach (RETH / AtomicETH name it by `rkey`). `iova` is the
/// address peers use; byte `iova + k` is bus address `bus_addr + k`. The firmware refuses an
/// MR whose range wraps or lies outside every window it can reach (`Invalid`), a key already
/// in use (`Exists`) and a full table (`NoSpace`).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RegisterMrArgs {
    pub bus_addr: U64,
    pub len: U64,
    /// Virtual address the peer uses in RETH.
    pub iova: U64,
    pub rkey: U32,
    pub lkey: U32,
    /// Access bits ([`access`], `ibv_access_flags` numbering).
    pub access: U32,
    /// Protection domain: a QP reaches only MRs of its own PD.
    pub pd: U32,
}
assert_layout!(
    RegisterMrArgs,
    size = 40,
    bus_addr = 0,
    len = 8,
    iova = 16,
    rkey = 24,
    lkey = 28,
    access = 32,
    pd = 36
);

/// [`CtrlOp::DeregisterMr`].
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct MrArgs {
    pub lkey: U32,
}
assert_layout!(MrArgs, size = 4, lkey = 0);

/// `ibv_qp_type` numbering, as carried by [`CreateQpArgs::qp_type`].
pub mod qp_type {
    pub const RC: u8 = 2;
    pub const UC: u8 = 3;
    pub const UD: u8 = 4;
}

/// [`CreateQpArgs::srqn`] of a QP with its own receive-WQE ring.
pub const NO_SRQ: u32 = u32::MAX;

/// [`CtrlOp::CreateQp`]: a QP in state RESET. Its region (a [`QueueHeader`] region, like an RX
/// queue's) holds a [`RingKind::RoceCq`] ring and, unless `srqn` names a shared receive
/// queue, a [`RingKind::RecvWqe`] ring.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CreateQpArgs {
    pub qpn: U32,
    pub pd: U32,
    /// [`qp_type`]: 2 = RC, 3 = UC, 4 = UD.
    pub qp_type: u8,
    /// [`CreateQpArgs::SEND_QUEUE`] (RC and UD QPs); other bits must be 0.
    pub flags: u8,
    pub _pad: [u8; 2],
    /// Shared receive queue the QP takes its receive WQEs from, or [`NO_SRQ`].
    pub srqn: U32,
    /// Region whose header describes this QP's RecvWqe ring (if any) and RoCE CQ.
    pub region_bus_addr: U64,
    pub region_len: U64,
}
impl CreateQpArgs {
    /// The region also holds a [`RingKind::SendWqe`] ring: the QP is a requester too (RC or
    /// UD).
    pub const SEND_QUEUE: u8 = 1 << 0;
}
assert_layout!(
    CreateQpArgs,
    size = 32,
    qpn = 0,
    pd = 4,
    qp_type = 8,
    flags = 9,
    srqn = 12,
    region_bus_addr = 16,
    region_len = 24
);

/// `ibv_qp_state` numbering.
pub mod qp_state {
    pub const RESET: u8 = 0;
    pub const INIT: u8 = 1;
    pub const RTR: u8 = 2;
    pub const RTS: u8 = 3;
    pub const SQD: u8 = 4;
    pub const SQE: u8 = 5;
    pub const ERR: u8 = 6;
}

/// `ibv_qp_attr_mask` bits understood in [`ModifyQpArgs::attr_mask`]; other bits are
/// refused (`Invalid`).
pub mod qp_attr {
    pub const STATE: u32 = 1 << 0;
    pub const ACCESS_FLAGS: u32 = 1 << 3;
    pub const QKEY: u32 = 1 << 6;
    /// The address vector: `remote_gid` and `udp_sport`.
    pub const AV: u32 = 1 << 7;
    pub const PATH_MTU: u32 = 1 << 8;
    /// The requester's local ACK timeout ([`super::ModifyQpArgs::timeout`]).
    pub const TIMEOUT: u32 = 1 << 9;
    pub const RETRY_CNT: u32 = 1 << 10;
    pub const RNR_RETRY: u32 = 1 << 11;
    pub const RQ_PSN: u32 = 1 << 12;
    /// READs the requester keeps in flight ([`super::ModifyQpArgs::max_rd_atomic`]).
    pub const MAX_QP_RD_ATOMIC: u32 = 1 << 13;
    pub const MIN_RNR_TIMER: u32 = 1 << 15;
    /// The requester's first PSN ([`super::ModifyQpArgs::sq_psn`]).
    pub const SQ_PSN: u32 = 1 << 16;
    pub const DEST_QPN: u32 = 1 << 20;
}

/// [`CtrlOp::ModifyQp`]: `ibv_modify_qp` for the responder's side. Fields not named by
/// `attr_mask` are ignored. Transitions follow the verbs state table (RESET -> INIT -> RTR ->
/// RTS, any -> ERR, any -> RESET); RTR needs the path MTU, the remote QPN (RC/UC), the
/// expected PSN and the address vector. Moving to ERR or RESET completes the receive WQE the
/// QP holds with `WR_FLUSH_ERR`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ModifyQpArgs {
    pub qpn: U32,
    /// [`qp_attr`] bits.
    pub attr_mask: U32,
    /// Target [`qp_state`].
    pub state: u8,
    /// `ibv_mtu`: 1 = 256, 2 = 512, 3 = 1024, 4 = 2048, 5 = 4096.
    pub path_mtu: u8,
    /// RNR NAK timer code (IBA table 45, 5 bits).
    pub min_rnr_timer: u8,
    pub _pad: u8,
    pub dest_qpn: U32,
    /// Expected PSN of the next request (24 bits).
    pub rq_psn: U32,
    pub qkey: U32,
    /// Remote access the QP allows ([`access`] bits).
    pub access: U32,
    /// The requester's GID (an IPv4 address as `::ffff:a.b.c.d`): requests from another
    /// source address are dropped and counted.
    pub remote_gid: [u8; 16],
    /// UDP source port of the packets the responder sends on this QP.
    pub udp_sport: U16,
    pub _pad2: U16,
    /// The requester's next PSN (24 bits).
    pub sq_psn: U32,
    /// Local ACK timeout code: 4.096 us x 2^timeout (0: wait forever; 1-31).
    pub timeout: u8,
    /// Retransmissions after a timeout or sequence NAK before the WQE fails (0-7).
    pub retry_cnt: u8,
    /// Retransmissions after an RNR NAK (0-6; 7: without limit).
    pub rnr_retry: u8,
    /// READs in flight (1-16; the firmware keeps at most [`MAX_RD_ATOMIC_INFLIGHT`]).
    pub max_rd_atomic: u8,
}

/// The most READ requests the requester keeps in flight per QP.
pub const MAX_RD_ATOMIC_INFLIGHT: u8 = 1;
assert_layout!(
    ModifyQpArgs,
    size = 56,
    qpn = 0,
    attr_mask = 4,
    state = 8,
    path_mtu = 9,
    min_rnr_timer = 10,
    dest_qpn = 12,
    rq_psn = 16,
    qkey = 20,
    access = 24,
    remote_gid = 28,
    udp_sport = 44,
    sq_psn = 48,
    timeout = 52,
    retry_cnt = 53,
    rnr_retry = 54,
    max_rd_atomic = 55
);

/// [`CtrlOp::DestroyQp`] and [`CtrlOp::QueryQp`].
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct QpArgs {
    pub qpn: U32,
}
assert_layout!(QpArgs, size = 4, qpn = 0);

/// Response to [`CtrlOp::QueryQp`].
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct QpInfo {
    pub qpn: U32,
    /// [`qp_state`].
    pub state: u8,
    /// [`qp_type`].
    pub qp_type: u8,
    pub _pad: U16,
    /// The PSN the responder expects next.
    pub expected_psn: U32,
    /// Message sequence number (the MSN of the last completed request, 24 bits).
    pub msn: U32,
    pub dest_qpn: U32,
    /// Receive WQEs the responder holds (taken from the ring, not yet completed).
    pub held_wqes: U32,
}
assert_layout!(
    QpInfo,
    size = 24,
    qpn = 0,
    state = 4,
    qp_type = 5,
    expected_psn = 8,
    msn = 12,
    dest_qpn = 16,
    held_wqes = 20
);

/// [`CtrlOp::CreateSrq`]: a shared receive queue. Its region holds one [`RingKind::RecvWqe`]
/// ring; QPs created with its `srqn` take their receive WQEs from it.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CreateSrqArgs {
    pub srqn: U32,
    pub pd: U32,
    pub region_bus_addr: U64,
    pub region_len: U64,
}
assert_layout!(
    CreateSrqArgs,
    size = 24,
    srqn = 0,
    pd = 4,
    region_bus_addr = 8,
    region_len = 16
);

/// [`CtrlOp::DestroySrq`].
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SrqArgs {
    pub srqn: U32,
}
assert_layout!(SrqArgs, size = 4, srqn = 0);

/// [`CtrlOp::CmListen`] / [`CtrlOp::CmUnlisten`]: a service ID (rdma_cm's is
/// `0x0000_0000_0106_0000 | port` for `RDMA_PS_TCP`) and the RC QP (state INIT) that accepts
/// its next connection request. The firmware answers the REQ with a REP, moves the QP to RTR
/// with the REQ's QPN, PSN, GID and path MTU, to RTS on the RTU, and answers a DREQ with a
/// DREP (the QP to ERR); a REQ for a service nobody listens on, or whose QP is taken, gets a
/// REJ. One connection per listen; several QPs may listen on one service (each REQ takes the
/// oldest); `Exists` when the QP already listens.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct CmListenArgs {
    pub service_id: U64,
    pub qpn: U32,
    pub _pad: U32,
}
assert_layout!(CmListenArgs, size = 16, service_id = 0, qpn = 8, _pad = 12);

/// `ibv_wc_status` values the responder reports in [`RoceCqe::status`].
pub mod wc_status {
    pub const SUCCESS: u8 = 0;
    pub const LOC_LEN_ERR: u8 = 1;
    pub const LOC_QP_OP_ERR: u8 = 2;
    pub const LOC_PROT_ERR: u8 = 4;
    pub const WR_FLUSH_ERR: u8 = 5;
    pub const REM_INV_REQ_ERR: u8 = 9;
    pub const REM_ACCESS_ERR: u8 = 10;
    pub const REM_OP_ERR: u8 = 11;
    pub const RETRY_EXC_ERR: u8 = 12;
    pub const RNR_RETRY_EXC_ERR: u8 = 13;
}

/// `ibv_wc_opcode` values, in [`RoceCqe::opcode`]: send-queue completions below 128, receive
/// completions from 128.
pub mod wc_opcode {
    pub const SEND: u8 = 0;
    pub const RDMA_WRITE: u8 = 1;
    pub const RDMA_READ: u8 = 2;
    pub const RECV: u8 = 128;
    pub const RECV_RDMA_WITH_IMM: u8 = 129;
}

// ---------------------------------------------------------------------------------------------
// Control calls: every opcode with its request and response body
// ---------------------------------------------------------------------------------------------

/// Body of a request or response that carries nothing.
pub type NoBody = [u8; 0];

/// One control call: the opcode, the record its request carries and the record its responses
/// carry. Implemented by the marker types of [`call`], generated from one table, so a request
/// can only be built ([`CtrlMsg::request`]) and read ([`CtrlMsg::args_of`]) with its own
/// records.
pub trait CtrlCall {
    const OP: CtrlOp;
    /// The request body.
    type Args: FromBytes + IntoBytes + Immutable + KnownLayout + Copy;
    /// The body of every response (for multi-part answers: of each part).
    type Resp: FromBytes + IntoBytes + Immutable + KnownLayout + Copy;
}

macro_rules! ctrl_calls {
    ($($(#[$m:meta])* $op:ident: $args:ty => $resp:ty;)*) => {
        /// Marker types, one per [`CtrlOp`], implementing [`CtrlCall`].
        pub mod call {
            use super::*;
            $(
                $(#[$m])*
                #[derive(Clone, Copy, Debug)]
                pub struct $op;
                impl CtrlCall for $op {
                    const OP: CtrlOp = CtrlOp::$op;
                    type Args = $args;
                    type Resp = $resp;
                }
                const _: () = assert!(size_of::<$args>() <= CTRL_BODY);
                const _: () = assert!(size_of::<$resp>() <= CTRL_BODY);
            )*
        }

        impl CtrlOp {
            /// Size of the opcode's request body record.
            pub const fn args_size(self) -> usize {
                match self {
                    $(CtrlOp::$op => size_of::<$args>(),)*
                }
            }
            /// Size of the opcode's response body record.
            pub const fn resp_size(self) -> usize {
                match self {
                    $(CtrlOp::$op => size_of::<$resp>(),)*
                }
            }
        }
    };
}

ctrl_calls! {
    GetVersion: NoBody => VersionInfo;
    RegisterPool: RegisterPoolArgs => NoBody;
    UnregisterPool: PoolArgs => NoBody;
    CreateRxQueue: CreateRxQueueArgs => NoBody;
    /// Answered like ResetQueue: `More` batches of outstanding buffers, then `Ok`.
    DestroyRxQueue: QueueArgs => OutstandingArgs;
    SetHdsThresh: HdsThreshArgs => NoBody;
    ResetQueue: QueueArgs => OutstandingArgs;
    ReadStats: StatsArgs => StatsPage;
    SetRss: RssArgs => NoBody;
    RegisterMr: RegisterMrArgs => NoBody;
    CreateQp: CreateQpArgs => NoBody;
    DestroyQp: QpArgs => NoBody;
    DeregisterMr: MrArgs => NoBody;
    ModifyQp: ModifyQpArgs => NoBody;
    CreateSrq: CreateSrqArgs => NoBody;
    DestroySrq: SrqArgs => NoBody;
    QueryQp: QpArgs => QpInfo;
    CmListen: CmListenArgs => NoBody;
    CmUnlisten: CmListenArgs => NoBody;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bufref_packs_pool_and_index() {
        let b = BufRef::new(7, 0x12_3456).unwrap();
        assert_eq!(b.pool(), 7);
        assert_eq!(b.index(), 0x12_3456);
        assert_eq!(b.as_bytes(), &[0x56, 0x34, 0x12, 0x07]);
        assert!(BufRef::new(0, 1 << 24).is_none());
        assert!(BufRef::NONE.is_none());
        assert!(!b.is_none());
    }

    #[test]
    fn fill_desc_bytes_are_little_endian() {
        let d = FillDesc::new(BufRef::new(1, 2).unwrap(), 0x1122_3344_5566_7788, 4096);
        assert_eq!(
            d.as_bytes(),
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0, 0x10, 0, 0, 2, 0, 0, 1]
        );
        let back = FillDesc::read_from_bytes(d.as_bytes()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn ctrl_args_roundtrip() {
        let a = HdsThreshArgs {
            queue: U16::new(3),
            _pad: U16::new(0),
            hds_thresh: U32::new(256),
        };
        let m = CtrlMsg::with_args(9, CtrlOp::SetHdsThresh, CtrlStatus::Ok, &a);
        assert_eq!(m.op(), Some(CtrlOp::SetHdsThresh));
        assert_eq!(m.status(), Some(CtrlStatus::Ok));
        let b: HdsThreshArgs = m.args().unwrap();
        assert_eq!(b.queue.get(), 3);
        assert_eq!(b.hds_thresh.get(), 256);
        assert_eq!(CtrlOp::from_u16(0xffff), None);
        let m = CtrlMsg::request::<call::SetHdsThresh>(9, &a);
        assert_eq!(
            m.args_of::<call::SetHdsThresh>().unwrap().hds_thresh.get(),
            256
        );
        assert!(
            m.args_of::<call::ReadStats>().is_none(),
            "another call's body"
        );
    }

    #[test]
    fn int_enums_roundtrip() {
        for &op in CtrlOp::ALL {
            assert_eq!(CtrlOp::from_u16(op.into()), Some(op));
            assert!(op.args_size() <= CTRL_BODY && op.resp_size() <= CTRL_BODY);
        }
        for &k in RingKind::ALL {
            assert_eq!(RingKind::from_u16(k.into()), Some(k));
        }
        for &st in CtrlStatus::ALL {
            assert_eq!(CtrlStatus::from_u16(st.into()), Some(st));
        }
        assert_eq!(QueueStatus::from_u32(4), None);
        assert_eq!(PoolMode::from_u8(1), Some(PoolMode::Packed));
        assert_eq!(CtrlOp::ReadStats.args_size(), size_of::<StatsArgs>());
    }

    fn header(rings: &[(u64, u32, RingKind)], region: u64) -> QueueHeader {
        let mut h = QueueHeader::new_zeroed();
        h.magic = U32::new(QUEUE_MAGIC);
        h.abi_version = U32::new(ABI_VERSION);
        h.region_size = U64::new(region);
        h.ring_count = U16::new(rings.len() as u16);
        for (i, (off, cap, kind)) in rings.iter().enumerate() {
            h.rings[i] = RingDesc {
                offset: U64::new(*off),
                capacity: U32::new(*cap),
                kind: U16::new(*kind as u16),
                entry_size: U16::new(kind.entry_size() as u16),
            };
        }
        h
    }

    /// A host-chosen capacity whose ring size does not fit 32 bits (issue 9, defect 4): the
    /// arithmetic is done in u64, so a 32-bit firmware refuses the ring instead of panicking
    /// (overflow checks) or accepting wrapped bounds. `xtask test` also runs this crate's unit
    /// tests compiled for i686 (32-bit `usize`), where the old code failed.
    #[test]
    fn ring_sizes_beyond_32_bits_are_refused_not_wrapped() {
        // 2^27 entries of 64 bytes = 8 GiB: wraps to 0 in a 32-bit usize.
        let big = 1u32 << 27;
        assert_eq!(crate::ring::ring_bytes(big, 64), 256 + (1u64 << 33));
        assert_eq!(
            crate::ring::ring_bytes(u32::MAX, 64),
            256 + u32::MAX as u64 * 64
        );
        let region = 0xffff_f000u64; // just under 4 GiB: a region a 32-bit target can map
        let h = header(&[(256, big, RingKind::CtrlRequest)], region);
        assert_eq!(
            h.validate(region as usize),
            Err(HeaderError::RingOutOfRegion { ring: 0 })
        );
        let h = header(&[(256, 1u32 << 31, RingKind::RxCompletion)], region);
        assert_eq!(
            h.validate(region as usize),
            Err(HeaderError::RingOutOfRegion { ring: 0 })
        );
    }

    #[test]
    fn header_validation() {
        let ok = header(
            &[
                (256, 64, RingKind::HeaderFill),
                (8192, 64, RingKind::RxCompletion),
            ],
            1 << 16,
        );
        assert_eq!(ok.validate(1 << 16), Ok(()));
        let mut bad = ok;
        bad.magic = U32::new(0);
        assert_eq!(bad.validate(1 << 16), Err(HeaderError::BadMagic));
        let mut bad = ok;
        for theirs in [abi_version(1, 0), abi_version(3, 0)] {
            bad.abi_version = U32::new(theirs);
            assert_eq!(
                bad.validate(1 << 16),
                Err(HeaderError::AbiMismatch {
                    ours: ABI_VERSION,
                    theirs
                })
            );
        }
        bad.abi_version = U32::new(abi_version(2, 7));
        assert_eq!(bad.validate(1 << 16), Ok(()), "any minor of our major");
        assert_eq!(ok.validate(1 << 12), Err(HeaderError::RegionTooSmall));
        let h = header(&[(256, 48, RingKind::HeaderFill)], 1 << 16);
        assert_eq!(
            h.validate(1 << 16),
            Err(HeaderError::RingNotPowerOfTwo { ring: 0 })
        );
        let h = header(&[(100, 64, RingKind::HeaderFill)], 1 << 16);
        assert_eq!(
            h.validate(1 << 16),
            Err(HeaderError::RingMisaligned { ring: 0 })
        );
        let h = header(&[(u64::MAX - 63, 64, RingKind::HeaderFill)], 1 << 16);
        assert_eq!(
            h.validate(1 << 16),
            Err(HeaderError::RingOutOfRegion { ring: 0 })
        );
        let h = header(
            &[
                (256, 64, RingKind::HeaderFill),
                (512, 64, RingKind::RxCompletion),
            ],
            1 << 16,
        );
        assert_eq!(
            h.validate(1 << 16),
            Err(HeaderError::RingsOverlap { a: 0, b: 1 })
        );
        let mut h = ok;
        h.rings[0].entry_size = U16::new(8);
        assert_eq!(
            h.validate(1 << 16),
            Err(HeaderError::RingEntrySize { ring: 0 })
        );
    }
}
