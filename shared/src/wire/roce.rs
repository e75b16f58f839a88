//! RoCEv2 (InfiniBand Architecture annex A17, UDP destination port 4791): the Base Transport
//! Header, the extended transport headers each opcode implies, and the invariant CRC.
//!
//! A RoCEv2 packet is the UDP payload:
//!
//! ```text
//! BTH (12) | extended headers (per opcode) | payload | pad (0..3) | ICRC (4)
//! ```
//!
//! Extended headers, in wire order: DETH (8), RETH (16), AtomicETH (28), AETH (4),
//! AtomicAckETH (8), ImmDt (4), IETH (4). Opcodes of the RC, UC and UD transports are
//! recognised, plus the RoCEv2 congestion notification packet (CNP, opcode 0x81: 16 reserved
//! bytes). RD, XRC and vendor opcodes are rejected (`Malformed`); the split decision
//! (`crate::split`) classes RD and XRC packets as RoCE of an unsupported transport.
//!
//! **ICRC** (IBA A17.3.3, as Linux `rxe_icrc.c` computes it): CRC-32 (the IEEE polynomial,
//! reflected, init and final XOR all ones: what `crc32fast` computes) over
//! * 8 bytes of 0xff (the masked LRH of native InfiniBand),
//! * the IP header with the variant fields set to all ones: IPv4 TOS, TTL and header checksum;
//!   IPv6 traffic class, flow label and hop limit (an IPv4 header's options and an IPv6
//!   header's extension headers are covered as they are: rxe cannot send them),
//! * the UDP header with the checksum set to all ones,
//! * the BTH with its reserved byte `resv8a` (byte 4, above the destination QP) set to all
//!   ones,
//! * everything after the BTH up to the ICRC (extended headers, payload, pad).
//!
//! The ICRC field holds that CRC least-significant byte first (rxe stores the CPU-order `u32`
//! over a `__be32` slot; Wireshark reads it the same way). [`icrc`] returns the CRC,
//! [`verify_icrc`] compares it with the trailing 4 bytes and [`fill_icrc`] stores it (one CRC
//! implementation for the receive and the transmit half).
//!
//! Transmit half: [`BthRepr`], the extended headers ([`Reth`], [`Aeth`], [`AtomicEth`],
//! [`AtomicAckEth`], [`Deth`], [`ImmDt`], [`Ieth`]: each an [`ExtHeader`] with `parse`/`emit`)
//! and [`RoceRepr`], which emits the BTH, the headers the opcode implies, and zeroes the pad and
//! the ICRC trailer; [`fill_icrc`] completes the packet once the payload and the IP/UDP headers
//! are in place.

use super::{be16, be32, be64, clamp, clamp_mut, put, u8_at, Error, Result};

/// Length of the Base Transport Header.
pub const BTH_LEN: usize = 12;
/// Length of the invariant CRC trailer.
pub const ICRC_LEN: usize = 4;

/// BTH opcodes (IBA 9.2, table 38).
pub mod opcode {
    pub const RC_SEND_FIRST: u8 = 0x00;
    pub const RC_SEND_MIDDLE: u8 = 0x01;
    pub const RC_SEND_LAST: u8 = 0x02;
    pub const RC_SEND_LAST_IMM: u8 = 0x03;
    pub const RC_SEND_ONLY: u8 = 0x04;
    pub const RC_SEND_ONLY_IMM: u8 = 0x05;
    pub const RC_WRITE_FIRST: u8 = 0x06;
    pub const RC_WRITE_MIDDLE: u8 = 0x07;
    pub const RC_WRITE_LAST: u8 = 0x08;
    pub const RC_WRITE_LAST_IMM: u8 = 0x09;
    pub const RC_WRITE_ONLY: u8 = 0x0a;
    pub const RC_WRITE_ONLY_IMM: u8 = 0x0b;
    pub const RC_READ_REQUEST: u8 = 0x0c;
    pub const RC_READ_RESPONSE_FIRST: u8 = 0x0d;
    pub const RC_READ_RESPONSE_MIDDLE: u8 = 0x0e;
    pub const RC_READ_RESPONSE_LAST: u8 = 0x0f;
    pub const RC_READ_RESPONSE_ONLY: u8 = 0x10;
    pub const RC_ACK: u8 = 0x11;
    pub const RC_ATOMIC_ACK: u8 = 0x12;
    pub const RC_COMPARE_SWAP: u8 = 0x13;
    pub const RC_FETCH_ADD: u8 = 0x14;
    pub const RC_SEND_LAST_INV: u8 = 0x16;
    pub const RC_SEND_ONLY_INV: u8 = 0x17;
    pub const UC_SEND_FIRST: u8 = 0x20;
    pub const UC_SEND_MIDDLE: u8 = 0x21;
    pub const UC_SEND_LAST: u8 = 0x22;
    pub const UC_SEND_LAST_IMM: u8 = 0x23;
    pub const UC_SEND_ONLY: u8 = 0x24;
    pub const UC_SEND_ONLY_IMM: u8 = 0x25;
    pub const UC_WRITE_FIRST: u8 = 0x26;
    pub const UC_WRITE_MIDDLE: u8 = 0x27;
    pub const UC_WRITE_LAST: u8 = 0x28;
    pub const UC_WRITE_LAST_IMM: u8 = 0x29;
    pub const UC_WRITE_ONLY: u8 = 0x2a;
    pub const UC_WRITE_ONLY_IMM: u8 = 0x2b;
    pub const UD_SEND_ONLY: u8 = 0x64;
    pub const UD_SEND_ONLY_IMM: u8 = 0x65;
    /// RoCEv2 congestion notification packet.
    pub const CNP: u8 = 0x81;
}

/// Extended transport headers, as bits of [`RoceLayout::headers`].
pub mod ext {
    pub const DETH: u8 = 1 << 0;
    pub const RETH: u8 = 1 << 1;
    pub const ATOMIC_ETH: u8 = 1 << 2;
    pub const AETH: u8 = 1 << 3;
    pub const ATOMIC_ACK_ETH: u8 = 1 << 4;
    pub const IMMDT: u8 = 1 << 5;
    pub const IETH: u8 = 1 << 6;
    /// The 16 reserved bytes of a CNP.
    pub const CNP_RSVD: u8 = 1 << 7;

    pub const DETH_LEN: usize = 8;
    pub const RETH_LEN: usize = 16;
    pub const ATOMIC_ETH_LEN: usize = 28;
    pub const AETH_LEN: usize = 4;
    pub const ATOMIC_ACK_ETH_LEN: usize = 8;
    pub const IMMDT_LEN: usize = 4;
    pub const IETH_LEN: usize = 4;
    pub const CNP_RSVD_LEN: usize = 16;

    /// (bit, length) in wire order.
    pub(super) const ORDER: [(u8, usize); 8] = [
        (DETH, DETH_LEN),
        (RETH, RETH_LEN),
        (ATOMIC_ETH, ATOMIC_ETH_LEN),
        (AETH, AETH_LEN),
        (ATOMIC_ACK_ETH, ATOMIC_ACK_ETH_LEN),
        (IMMDT, IMMDT_LEN),
        (IETH, IETH_LEN),
        (CNP_RSVD, CNP_RSVD_LEN),
    ];
}

/// Which extended headers follow the BTH for one opcode.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct RoceLayout {
    /// Bits from [`ext`].
    pub headers: u8,
    /// Total length of the extended headers in bytes.
    pub ext_len: u8,
}

impl RoceLayout {
    const fn of(headers: u8) -> RoceLayout {
        let mut len = 0;
        let mut i = 0;
        while i < ext::ORDER.len() {
            if headers & ext::ORDER[i].0 != 0 {
                len += ext::ORDER[i].1;
            }
            i += 1;
        }
        RoceLayout {
            headers,
            ext_len: len as u8,
        }
    }

    /// The layout the opcode implies, `None` for opcodes that are not RC, UC, UD or CNP.
    pub const fn for_opcode(op: u8) -> Option<RoceLayout> {
        use ext::*;
        use opcode::*;
        let h = match op {
            RC_SEND_FIRST | RC_SEND_MIDDLE | RC_SEND_LAST | RC_SEND_ONLY => 0,
            RC_SEND_LAST_IMM | RC_SEND_ONLY_IMM => IMMDT,
            RC_WRITE_FIRST | RC_WRITE_ONLY => RETH,
            RC_WRITE_MIDDLE | RC_WRITE_LAST => 0,
            RC_WRITE_LAST_IMM => IMMDT,
            RC_WRITE_ONLY_IMM => RETH | IMMDT,
            RC_READ_REQUEST => RETH,
            RC_READ_RESPONSE_FIRST | RC_READ_RESPONSE_LAST | RC_READ_RESPONSE_ONLY => AETH,
            RC_READ_RESPONSE_MIDDLE => 0,
            RC_ACK => AETH,
            RC_ATOMIC_ACK => AETH | ATOMIC_ACK_ETH,
            RC_COMPARE_SWAP | RC_FETCH_ADD => ATOMIC_ETH,
            RC_SEND_LAST_INV | RC_SEND_ONLY_INV => IETH,
            UC_SEND_FIRST | UC_SEND_MIDDLE | UC_SEND_LAST | UC_SEND_ONLY => 0,
            UC_SEND_LAST_IMM | UC_SEND_ONLY_IMM => IMMDT,
            UC_WRITE_FIRST | UC_WRITE_ONLY => RETH,
            UC_WRITE_MIDDLE | UC_WRITE_LAST => 0,
            UC_WRITE_LAST_IMM => IMMDT,
            UC_WRITE_ONLY_IMM => RETH | IMMDT,
            UD_SEND_ONLY => DETH,
            UD_SEND_ONLY_IMM => DETH | IMMDT,
            CNP => CNP_RSVD,
            _ => return None,
        };
        Some(RoceLayout::of(h))
    }

    /// Table lookup of [`RoceLayout::for_opcode`] for the datapath.
    #[inline]
    pub fn lookup(op: u8) -> Option<RoceLayout> {
        LAYOUTS[op as usize]
    }

    #[inline]
    pub const fn has(self, header: u8) -> bool {
        self.headers & header != 0
    }

    /// Offset of `header` from the end of the BTH, if the layout has it.
    #[inline]
    pub const fn offset_of(self, header: u8) -> Option<usize> {
        if !self.has(header) {
            return None;
        }
        let mut off = 0;
        let mut i = 0;
        while i < ext::ORDER.len() {
            let (bit, len) = ext::ORDER[i];
            if bit == header {
                return Some(off);
            }
            if self.headers & bit != 0 {
                off += len;
            }
            i += 1;
        }
        None
    }
}

static LAYOUTS: [Option<RoceLayout>; 256] = {
    let mut t = [None; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = RoceLayout::for_opcode(i as u8);
        i += 1;
    }
    t
};

mod bth_field {
    pub const OPCODE: usize = 0;
    pub const FLAGS: usize = 1;
    pub const PKEY: usize = 2;
    pub const RESV8A: usize = 4;
    pub const DEST_QP: usize = 4;
    pub const APSN: usize = 8;
}

/// A read-only view of a Base Transport Header.
#[derive(Debug, Clone, Copy)]
pub struct BthPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> BthPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        BthPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.b().len() < BTH_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn opcode(&self) -> u8 {
        u8_at(self.b(), bth_field::OPCODE)
    }
    /// SE: solicited event.
    pub fn solicited(&self) -> bool {
        u8_at(self.b(), bth_field::FLAGS) & 0x80 != 0
    }
    /// M: migration state.
    pub fn mig_req(&self) -> bool {
        u8_at(self.b(), bth_field::FLAGS) & 0x40 != 0
    }
    /// Pad count: bytes of padding before the ICRC (0..=3).
    pub fn pad_count(&self) -> u8 {
        (u8_at(self.b(), bth_field::FLAGS) >> 4) & 0x3
    }
    /// Transport header version.
    pub fn tver(&self) -> u8 {
        u8_at(self.b(), bth_field::FLAGS) & 0x0f
    }
    pub fn pkey(&self) -> u16 {
        be16(self.b(), bth_field::PKEY)
    }
    /// The reserved byte the ICRC masks.
    pub fn resv8a(&self) -> u8 {
        u8_at(self.b(), bth_field::RESV8A)
    }
    /// Destination QP (24 bits).
    pub fn dest_qp(&self) -> u32 {
        be32(self.b(), bth_field::DEST_QP) & 0x00ff_ffff
    }
    /// A: acknowledge request.
    pub fn ack_req(&self) -> bool {
        u8_at(self.b(), bth_field::APSN) & 0x80 != 0
    }
    /// Packet sequence number (24 bits).
    pub fn psn(&self) -> u32 {
        be32(self.b(), bth_field::APSN) & 0x00ff_ffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> BthPacket<T> {
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_opcode(&mut self, v: u8) {
        put(self.b_mut(), bth_field::OPCODE, [v]);
    }
    /// SE, M, pad count (0..=3) and TVer in one store.
    pub fn set_flags(&mut self, solicited: bool, mig_req: bool, pad_count: u8, tver: u8) {
        let v = (u8::from(solicited) << 7)
            | (u8::from(mig_req) << 6)
            | ((pad_count & 3) << 4)
            | (tver & 0x0f);
        put(self.b_mut(), bth_field::FLAGS, [v]);
    }
    pub fn set_pkey(&mut self, v: u16) {
        put(self.b_mut(), bth_field::PKEY, v.to_be_bytes());
    }
    /// `resv8a` and the 24-bit destination QP.
    pub fn set_resv8a_dest_qp(&mut self, resv8a: u8, qp: u32) {
        let v = (u32::from(resv8a) << 24) | (qp & 0x00ff_ffff);
        put(self.b_mut(), bth_field::DEST_QP, v.to_be_bytes());
    }
    /// The AckReq bit and the 24-bit PSN (the 7 reserved bits are zeroed).
    pub fn set_ack_req_psn(&mut self, ack_req: bool, psn: u32) {
        let v = (u32::from(ack_req) << 31) | (psn & 0x00ff_ffff);
        put(self.b_mut(), bth_field::APSN, v.to_be_bytes());
    }
}

/// The Base Transport Header as values (the 7 reserved bits after AckReq are zero).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct BthRepr {
    pub opcode: u8,
    pub solicited: bool,
    pub mig_req: bool,
    /// 0..=3: pad bytes between the payload and the ICRC.
    pub pad_count: u8,
    pub tver: u8,
    pub pkey: u16,
    /// The reserved byte above the destination QP (0 on transmit; the ICRC masks it).
    pub resv8a: u8,
    /// 24 bits.
    pub dest_qp: u32,
    pub ack_req: bool,
    /// 24 bits.
    pub psn: u32,
}

impl BthRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &BthPacket<T>) -> Result<BthRepr> {
        p.check_len()?;
        Ok(BthRepr {
            opcode: p.opcode(),
            solicited: p.solicited(),
            mig_req: p.mig_req(),
            pad_count: p.pad_count(),
            tver: p.tver(),
            pkey: p.pkey(),
            resv8a: p.resv8a(),
            dest_qp: p.dest_qp(),
            ack_req: p.ack_req(),
            psn: p.psn(),
        })
    }

    #[inline]
    pub const fn header_len(&self) -> usize {
        BTH_LEN
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut BthPacket<T>) {
        p.set_opcode(self.opcode);
        p.set_flags(self.solicited, self.mig_req, self.pad_count, self.tver);
        p.set_pkey(self.pkey);
        p.set_resv8a_dest_qp(self.resv8a, self.dest_qp);
        p.set_ack_req_psn(self.ack_req, self.psn);
    }
}

/// An extended transport header: its bit in [`ext`], its length, and its fields as values.
pub trait ExtHeader: Sized + Copy {
    /// The header's bit in [`RoceLayout::headers`].
    const BIT: u8;
    /// Its length in bytes.
    const LEN: usize;
    /// Reads the fields from the start of `b`; bytes outside `b` read as zero (never panics).
    fn read(b: &[u8]) -> Self;
    /// Writes the header into the first [`Self::LEN`] bytes of `b` (panics when shorter).
    fn emit(&self, b: &mut [u8]);
    /// Reads the header from the start of `b`; `Truncated` when `b` is shorter than it.
    fn parse(b: &[u8]) -> Result<Self> {
        if b.len() < Self::LEN {
            Err(Error::Truncated)
        } else {
            Ok(Self::read(b))
        }
    }
}

/// RDMA Extended Transport Header.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Reth {
    pub va: u64,
    pub rkey: u32,
    pub dma_len: u32,
}

impl ExtHeader for Reth {
    const BIT: u8 = ext::RETH;
    const LEN: usize = ext::RETH_LEN;
    fn read(h: &[u8]) -> Self {
        Reth {
            va: be64(h, 0),
            rkey: be32(h, 8),
            dma_len: be32(h, 12),
        }
    }
    fn emit(&self, b: &mut [u8]) {
        put(b, 0, self.va.to_be_bytes());
        put(b, 8, self.rkey.to_be_bytes());
        put(b, 12, self.dma_len.to_be_bytes());
    }
}

/// ACK Extended Transport Header.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Aeth {
    /// Syndrome (ACK / RNR NAK / NAK and its code).
    pub syndrome: u8,
    /// Message sequence number (24 bits).
    pub msn: u32,
}

impl ExtHeader for Aeth {
    const BIT: u8 = ext::AETH;
    const LEN: usize = ext::AETH_LEN;
    fn read(h: &[u8]) -> Self {
        Aeth {
            syndrome: u8_at(h, 0),
            msn: be32(h, 0) & 0x00ff_ffff,
        }
    }
    fn emit(&self, b: &mut [u8]) {
        let v = (u32::from(self.syndrome) << 24) | (self.msn & 0x00ff_ffff);
        put(b, 0, v.to_be_bytes());
    }
}

/// Datagram Extended Transport Header.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Deth {
    pub qkey: u32,
    /// Source QP (24 bits; the reserved byte above it is zero).
    pub src_qp: u32,
}

impl ExtHeader for Deth {
    const BIT: u8 = ext::DETH;
    const LEN: usize = ext::DETH_LEN;
    fn read(h: &[u8]) -> Self {
        Deth {
            qkey: be32(h, 0),
            src_qp: be32(h, 4) & 0x00ff_ffff,
        }
    }
    fn emit(&self, b: &mut [u8]) {
        put(b, 0, self.qkey.to_be_bytes());
        put(b, 4, (self.src_qp & 0x00ff_ffff).to_be_bytes());
    }
}

/// Atomic Extended Transport Header.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct AtomicEth {
    pub va: u64,
    pub rkey: u32,
    /// Swap value (CmpSwap) or add value (FetchAdd).
    pub swap_add: u64,
    /// Compare value (CmpSwap).
    pub compare: u64,
}

impl ExtHeader for AtomicEth {
    const BIT: u8 = ext::ATOMIC_ETH;
    const LEN: usize = ext::ATOMIC_ETH_LEN;
    fn read(h: &[u8]) -> Self {
        AtomicEth {
            va: be64(h, 0),
            rkey: be32(h, 8),
            swap_add: be64(h, 12),
            compare: be64(h, 20),
        }
    }
    fn emit(&self, b: &mut [u8]) {
        put(b, 0, self.va.to_be_bytes());
        put(b, 8, self.rkey.to_be_bytes());
        put(b, 12, self.swap_add.to_be_bytes());
        put(b, 20, self.compare.to_be_bytes());
    }
}

/// The extended headers that are one big-endian integer: a newtype and its [`ExtHeader`].
macro_rules! one_field_ext_header {
    ($(#[$doc:meta])* $name:ident($ty:ty), $bit:expr, $len:expr, $read:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
        pub struct $name(pub $ty);

        impl ExtHeader for $name {
            const BIT: u8 = $bit;
            const LEN: usize = $len;
            fn read(h: &[u8]) -> Self {
                $name($read(h, 0))
            }
            fn emit(&self, b: &mut [u8]) {
                put(b, 0, self.0.to_be_bytes());
            }
        }
    };
}

one_field_ext_header!(
    /// AtomicAck Extended Transport Header: the original remote value.
    AtomicAckEth(u64),
    ext::ATOMIC_ACK_ETH,
    ext::ATOMIC_ACK_ETH_LEN,
    be64
);
one_field_ext_header!(
    /// Immediate data (the 4 wire bytes read big-endian).
    ImmDt(u32),
    ext::IMMDT,
    ext::IMMDT_LEN,
    be32
);
one_field_ext_header!(
    /// Invalidate Extended Transport Header: the rkey to invalidate.
    Ieth(u32),
    ext::IETH,
    ext::IETH_LEN,
    be32
);

/// A read-only view of a RoCEv2 packet: the UDP payload, from the BTH to the ICRC included
/// (the buffer must end where the UDP datagram ends).
#[derive(Debug, Clone, Copy)]
pub struct RocePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RocePacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        RocePacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` when shorter than the BTH; `Malformed` for an opcode that is not RC, UC,
    /// UD or CNP, or when BTH + extended headers + pad + ICRC exceed the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.b().len();
        if len < BTH_LEN {
            return Err(Error::Truncated);
        }
        let Some(layout) = self.layout() else {
            return Err(Error::Malformed);
        };
        let need = BTH_LEN + layout.ext_len as usize + self.bth().pad_count() as usize + ICRC_LEN;
        if need > len {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn bth(&self) -> BthPacket<&[u8]> {
        BthPacket::new_unchecked(self.b())
    }

    #[inline]
    pub fn layout(&self) -> Option<RoceLayout> {
        RoceLayout::lookup(u8_at(self.b(), bth_field::OPCODE))
    }

    /// Extended header `H`, if the opcode's layout has it (zeros where the buffer ends early).
    pub fn ext<H: ExtHeader>(&self) -> Option<H> {
        let off = BTH_LEN + self.layout()?.offset_of(H::BIT)?;
        Some(H::read(clamp(self.b(), off, self.b().len())))
    }

    pub fn reth(&self) -> Option<Reth> {
        self.ext()
    }
    pub fn aeth(&self) -> Option<Aeth> {
        self.ext()
    }
    pub fn deth(&self) -> Option<Deth> {
        self.ext()
    }
    pub fn atomic_eth(&self) -> Option<AtomicEth> {
        self.ext()
    }
    /// AtomicAckETH: the original remote value.
    pub fn atomic_ack_eth(&self) -> Option<u64> {
        self.ext().map(|h: AtomicAckEth| h.0)
    }
    /// Immediate data (kept as the 4 wire bytes read big-endian).
    pub fn imm_data(&self) -> Option<u32> {
        self.ext().map(|h: ImmDt| h.0)
    }
    /// IETH: the rkey to invalidate.
    pub fn ieth(&self) -> Option<u32> {
        self.ext().map(|h: Ieth| h.0)
    }

    /// Offset of the payload from the BTH start.
    pub fn payload_offset(&self) -> usize {
        BTH_LEN + self.layout().map_or(0, |l| l.ext_len as usize)
    }
    /// The payload: after the extended headers, before the pad and the ICRC (empty when
    /// those do not fit).
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        let end = b
            .len()
            .saturating_sub(ICRC_LEN + self.bth().pad_count() as usize);
        clamp(b, self.payload_offset(), end)
    }
    /// The ICRC field as the CRC value (least-significant byte first on the wire).
    pub fn icrc_field(&self) -> u32 {
        let b = self.b();
        match super::bytes::<4>(b, b.len().wrapping_sub(ICRC_LEN)) {
            Some(v) if b.len() >= ICRC_LEN => u32::from_le_bytes(v),
            _ => 0,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RocePacket<T> {
    /// The BTH, mutably.
    pub fn bth_mut(&mut self) -> BthPacket<&mut [u8]> {
        BthPacket::new_unchecked(self.buffer.as_mut())
    }
    /// The payload, mutably (the opcode and the pad count must be set first).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.payload_offset();
        let b = self.buffer.as_mut();
        let end = b
            .len()
            .saturating_sub(ICRC_LEN + BthPacket::new_unchecked(&*b).pad_count() as usize);
        clamp_mut(b, start, end)
    }
}

/// A RoCEv2 packet's headers as values: the BTH, the extended headers (each `Some` exactly
/// when the opcode's [`RoceLayout`] has it), and the payload length.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct RoceRepr {
    pub bth: BthRepr,
    pub deth: Option<Deth>,
    pub reth: Option<Reth>,
    pub atomic_eth: Option<AtomicEth>,
    pub aeth: Option<Aeth>,
    pub atomic_ack_eth: Option<AtomicAckEth>,
    pub imm_dt: Option<ImmDt>,
    pub ieth: Option<Ieth>,
    /// Payload bytes (without the pad and the ICRC).
    pub payload_len: usize,
}

impl RoceRepr {
    /// A packet with `opcode` to `dest_qp` at `psn` carrying `payload_len` bytes: BTH with
    /// P_Key 0xffff, TVer 0, no SE/MigReq/AckReq, the pad for the payload; no extended headers
    /// yet (set those the opcode implies). The one constructor the responder, the requester,
    /// the CM and the test builders start from.
    pub const fn new(opcode: u8, dest_qp: u32, psn: u32, payload_len: usize) -> RoceRepr {
        RoceRepr {
            bth: BthRepr {
                opcode,
                solicited: false,
                mig_req: false,
                pad_count: ((4 - payload_len % 4) % 4) as u8,
                tver: 0,
                pkey: 0xffff,
                resv8a: 0,
                dest_qp,
                ack_req: false,
                psn,
            },
            deth: None,
            reth: None,
            atomic_eth: None,
            aeth: None,
            atomic_ack_eth: None,
            imm_dt: None,
            ieth: None,
            payload_len,
        }
    }

    /// Reads a checked packet (`check_len` runs first: the opcode must be RC, UC, UD or CNP).
    pub fn parse<T: AsRef<[u8]>>(p: &RocePacket<T>) -> Result<RoceRepr> {
        p.check_len()?;
        Ok(RoceRepr {
            bth: BthRepr::parse(&p.bth())?,
            deth: p.ext(),
            reth: p.ext(),
            atomic_eth: p.ext(),
            aeth: p.ext(),
            atomic_ack_eth: p.ext(),
            imm_dt: p.ext(),
            ieth: p.ext(),
            payload_len: p.payload().len(),
        })
    }

    /// The layout of the BTH opcode (`None` for an opcode the parser rejects).
    #[inline]
    pub fn layout(&self) -> Option<RoceLayout> {
        RoceLayout::lookup(self.bth.opcode)
    }

    /// BTH and extended headers.
    #[inline]
    pub fn header_len(&self) -> usize {
        BTH_LEN + self.layout().map_or(0, |l| l.ext_len as usize)
    }

    /// The whole UDP payload: headers, payload, pad and ICRC.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len + self.bth.pad_count as usize + ICRC_LEN
    }

    /// Writes the BTH and the extended headers the opcode implies, and zeroes the pad and the
    /// ICRC at the end of the buffer (which must be exactly [`buffer_len`](Self::buffer_len)
    /// long, as a `RocePacket` ends where the UDP datagram ends). The ICRC is filled by
    /// [`fill_icrc`] once the whole frame is in place.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut RocePacket<T>) {
        self.bth.emit(&mut p.bth_mut());
        let layout = self.layout().unwrap_or(RoceLayout::of(0));
        let b = p.buffer.as_mut();
        fn one<H: ExtHeader>(b: &mut [u8], layout: RoceLayout, h: Option<H>) {
            debug_assert_eq!(layout.has(H::BIT), h.is_some(), "header vs opcode");
            if let (Some(off), Some(h)) = (layout.offset_of(H::BIT), h) {
                h.emit(&mut b[BTH_LEN + off..]);
            }
        }
        one(b, layout, self.deth);
        one(b, layout, self.reth);
        one(b, layout, self.atomic_eth);
        one(b, layout, self.aeth);
        one(b, layout, self.atomic_ack_eth);
        one(b, layout, self.imm_dt);
        one(b, layout, self.ieth);
        if let Some(off) = layout.offset_of(ext::CNP_RSVD) {
            b[BTH_LEN + off..BTH_LEN + off + ext::CNP_RSVD_LEN].fill(0);
        }
        let n = b.len();
        b[n - ICRC_LEN - self.bth.pad_count as usize..].fill(0);
    }
}

/// The masks the ICRC applies: (absolute offset, bits forced to 1).
fn icrc_masks(l3: usize, ip_version: u8, l4: usize) -> [(usize, u8); 8] {
    let bth_resv8a = (l4 + super::udp::HEADER_LEN + bth_field::RESV8A, 0xff);
    let udp_csum = l4 + 6;
    if ip_version == 4 {
        [
            (l3 + 1, 0xff),  // TOS
            (l3 + 8, 0xff),  // TTL
            (l3 + 10, 0xff), // header checksum
            (l3 + 11, 0xff),
            (udp_csum, 0xff),
            (udp_csum + 1, 0xff),
            bth_resv8a,
            bth_resv8a, // (unused slot)
        ]
    } else {
        [
            (l3, 0x0f),     // traffic class (low nibble of byte 0) ...
            (l3 + 1, 0xff), // ... and flow label
            (l3 + 2, 0xff),
            (l3 + 3, 0xff),
            (l3 + 7, 0xff), // hop limit
            (udp_csum, 0xff),
            (udp_csum + 1, 0xff),
            bth_resv8a,
        ]
    }
}

/// The ICRC masks as bytes ORed into the first 48 bytes after an IPv4 header without options
/// (IPv4, UDP, BTH): TOS, TTL, header checksum, UDP checksum, BTH resv8a.
static MASK_V4: [u8; 48] = {
    let mut m = [0u8; 48];
    m[1] = 0xff;
    m[8] = 0xff;
    m[10] = 0xff;
    m[11] = 0xff;
    m[20 + 6] = 0xff;
    m[20 + 7] = 0xff;
    m[28 + bth_field::RESV8A] = 0xff;
    m
};
/// The same after an IPv6 header without extension headers (64 bytes): traffic class and flow
/// label, hop limit, UDP checksum, BTH resv8a.
static MASK_V6: [u8; 64] = {
    let mut m = [0u8; 64];
    m[0] = 0x0f;
    m[1] = 0xff;
    m[2] = 0xff;
    m[3] = 0xff;
    m[7] = 0xff;
    m[40 + 6] = 0xff;
    m[40 + 7] = 0xff;
    m[48 + bth_field::RESV8A] = 0xff;
    m
};

/// `dst = src | mask`, 16 bytes at a time (all three the same length, a multiple of 16), with
/// one 16-byte store per 16 bytes where the target has 16-byte vectors: the CRC kernel then
/// reads each 16 bytes straight from the store buffer. Byte-wise stores followed by the kernel's
/// 16-byte loads defeat store-to-load forwarding and cost ~20 ns per packet on x86-64.
#[inline]
fn or_words(dst: &mut [u8], src: &[u8], mask: &[u8]) {
    debug_assert!(
        dst.len() == src.len() && src.len() == mask.len() && src.len().is_multiple_of(16)
    );
    for ((d, s), m) in dst
        .chunks_exact_mut(16)
        .zip(src.chunks_exact(16))
        .zip(mask.chunks_exact(16))
    {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE2 is part of the x86-64 baseline; the three chunks are 16 bytes each
        // (`chunks_exact`), and the loads and the store are unaligned ones.
        unsafe {
            use core::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_or_si128, _mm_storeu_si128};
            let v = _mm_or_si128(
                _mm_loadu_si128(s.as_ptr().cast::<__m128i>()),
                _mm_loadu_si128(m.as_ptr().cast::<__m128i>()),
            );
            _mm_storeu_si128(d.as_mut_ptr().cast::<__m128i>(), v);
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        // SAFETY: NEON is available (checked by the cfg); the three chunks are 16 bytes each
        // (`chunks_exact`), and `vld1q_u8`/`vst1q_u8` need no alignment.
        unsafe {
            use core::arch::aarch64::{vld1q_u8, vorrq_u8, vst1q_u8};
            vst1q_u8(
                d.as_mut_ptr(),
                vorrq_u8(vld1q_u8(s.as_ptr()), vld1q_u8(m.as_ptr())),
            );
        }
        #[cfg(not(any(
            target_arch = "x86_64",
            all(target_arch = "aarch64", target_feature = "neon")
        )))]
        for ((d, s), m) in d.iter_mut().zip(s).zip(m) {
            *d = s | m;
        }
    }
}

/// The CRC-32 of the 8 bytes of ones that stand for the LRH in front of every RoCEv2 ICRC
/// (`crc32fast` state to continue from; a test checks it).
const ONES_CRC: u32 = 0x2144_df1c;

/// Computes the RoCEv2 ICRC of the packet whose IP header starts at `l3` (version
/// `ip_version`, 4 or 6), UDP header at `l4` (BTH at `l4 + 8`), and ICRC at `icrc_off`.
/// `None` when the offsets are inconsistent or outside `frame`. See the module docs for what is
/// covered.
///
/// Two CRC updates, starting from the state after the 8 bytes of ones: the headers with the
/// masks applied, copied to the stack together with the first `n % 256` bytes after them, then
/// the rest straight from `frame`, a multiple of 256 bytes (crc32fast's wide kernels handle a
/// remainder slowly). For IPv4 without options and IPv6 without extension headers the masks
/// are applied 16 bytes at a time ([`or_words`]).
pub fn icrc(frame: &[u8], l3: usize, ip_version: u8, l4: usize, icrc_off: usize) -> Option<u32> {
    let bth_end = l4.checked_add(super::udp::HEADER_LEN + BTH_LEN)?;
    let min_l4 = l3 + if ip_version == 4 { 20 } else { 40 };
    if (ip_version != 4 && ip_version != 6) || l4 < min_l4 || bth_end > icrc_off {
        return None;
    }
    let covered = frame.get(l3..icrc_off)?;
    icrc_off
        .checked_add(ICRC_LEN)
        .filter(|&e| e <= frame.len())?;
    let mut h = crc32fast::Hasher::new_with_initial(ONES_CRC);
    let hdr_len = bth_end - l3;
    // The stack part: the headers and the remainder of the rest modulo 256.
    let small = hdr_len + (covered.len() - hdr_len) % 256;
    let mut buf = [0u8; 384];
    let mask: &[u8] = match (ip_version, l4 == min_l4) {
        (4, true) => &MASK_V4,
        (6, true) => &MASK_V6,
        _ => &[],
    };
    if !mask.is_empty() && small <= buf.len() && covered.len() >= mask.len() {
        let m = mask.len();
        or_words(&mut buf[..m], &covered[..m], mask);
        if small > m {
            buf[m..small].copy_from_slice(&covered[m..small]);
        }
        h.update(&buf[..small]);
    } else {
        // IP options, IPv6 extension headers, or a packet shorter than the mask table: the
        // masks byte by byte, at most 384 bytes at a time.
        let masks = icrc_masks(l3, ip_version, l4);
        let mut done = 0;
        while done < small {
            let n = core::cmp::min(buf.len(), small - done);
            let chunk = &mut buf[..n];
            chunk.copy_from_slice(&covered[done..done + n]);
            let start = l3 + done;
            for &(pos, bits) in masks.iter() {
                if pos >= start && pos < start + n {
                    chunk[pos - start] |= bits;
                }
            }
            h.update(chunk);
            done += n;
        }
    }
    h.update(&covered[small..]);
    Some(h.finalize())
}

/// Computes [`icrc`] and stores it at `icrc_off` (least-significant byte first). Everything
/// the CRC covers must be in place (the variant fields it masks need not be: the IPv4 header
/// checksum and the UDP checksum may be filled before or after). Returns the CRC; `None` (and
/// nothing written) when the offsets are inconsistent.
pub fn fill_icrc(
    frame: &mut [u8],
    l3: usize,
    ip_version: u8,
    l4: usize,
    icrc_off: usize,
) -> Option<u32> {
    let crc = icrc(frame, l3, ip_version, l4, icrc_off)?;
    put(frame, icrc_off, crc.to_le_bytes());
    Some(crc)
}

/// Whether the ICRC at `icrc_off` matches [`icrc`]. `None` when the offsets are inconsistent.
pub fn verify_icrc(
    frame: &[u8],
    l3: usize,
    ip_version: u8,
    l4: usize,
    icrc_off: usize,
) -> Option<bool> {
    let want = icrc(frame, l3, ip_version, l4, icrc_off)?;
    let got = u32::from_le_bytes(super::bytes::<4>(frame, icrc_off)?);
    Some(want == got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ones_crc_is_the_crc_of_eight_bytes_of_ones() {
        assert_eq!(crc32fast::hash(&[0xff; 8]), ONES_CRC);
    }

    /// The ICRC by its definition: CRC-32 over 8 bytes of ones and a masked copy of
    /// `frame[l3..icrc_off]` (one plain hash over a heap copy).
    fn icrc_reference(frame: &[u8], l3: usize, v: u8, l4: usize, icrc_off: usize) -> u32 {
        let mut b = std::vec![0xffu8; 8];
        b.extend_from_slice(&frame[l3..icrc_off]);
        for (pos, bits) in icrc_masks(l3, v, l4) {
            b[8 + pos - l3] |= bits;
        }
        crc32fast::hash(&b)
    }

    #[test]
    fn icrc_fast_and_byte_paths_agree_with_the_definition() {
        let mut seed = 0x1234_5678u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 24) as u8
        };
        // (IP version, IP header length): the table paths and the byte path (options,
        // extension headers).
        for (v, ip_len) in [(4u8, 20usize), (4, 24), (4, 60), (6, 40), (6, 48), (6, 200)] {
            for rest in (0..700).chain([1020, 2047, 4096, 4100, 4112, 4113, 8191, 9000]) {
                let l3 = 14;
                let l4 = l3 + ip_len;
                let icrc_off = l4 + 8 + BTH_LEN + rest;
                let frame: std::vec::Vec<u8> = (0..icrc_off + 4).map(|_| next()).collect();
                assert_eq!(
                    icrc(&frame, l3, v, l4, icrc_off),
                    Some(icrc_reference(&frame, l3, v, l4, icrc_off)),
                    "IPv{v}, IP header {ip_len}, {rest} bytes after the BTH"
                );
            }
        }
    }

    #[test]
    fn layouts() {
        use ext::*;
        use opcode::*;
        let cases: [(u8, u8, u8); 22] = [
            (RC_SEND_FIRST, 0, 0),
            (RC_SEND_LAST_IMM, IMMDT, 4),
            (RC_SEND_ONLY_INV, IETH, 4),
            (RC_WRITE_FIRST, RETH, 16),
            (RC_WRITE_MIDDLE, 0, 0),
            (RC_WRITE_ONLY_IMM, RETH | IMMDT, 20),
            (RC_READ_REQUEST, RETH, 16),
            (RC_READ_RESPONSE_FIRST, AETH, 4),
            (RC_READ_RESPONSE_MIDDLE, 0, 0),
            (RC_READ_RESPONSE_LAST, AETH, 4),
            (RC_READ_RESPONSE_ONLY, AETH, 4),
            (RC_ACK, AETH, 4),
            (RC_ATOMIC_ACK, AETH | ATOMIC_ACK_ETH, 12),
            (RC_COMPARE_SWAP, ATOMIC_ETH, 28),
            (RC_FETCH_ADD, ATOMIC_ETH, 28),
            (UC_SEND_ONLY_IMM, IMMDT, 4),
            (UC_WRITE_FIRST, RETH, 16),
            (UC_WRITE_LAST_IMM, IMMDT, 4),
            (UD_SEND_ONLY, DETH, 8),
            (UD_SEND_ONLY_IMM, DETH | IMMDT, 12),
            (CNP, CNP_RSVD, 16),
            (RC_WRITE_LAST, 0, 0),
        ];
        for (op, h, len) in cases {
            assert_eq!(
                RoceLayout::lookup(op),
                Some(RoceLayout {
                    headers: h,
                    ext_len: len
                })
            );
        }
        for op in [0x15u8, 0x18, 0x2c, 0x40, 0x60, 0x63, 0x66, 0xa0, 0xc0, 0xff] {
            assert_eq!(RoceLayout::lookup(op), None, "{op:#x}");
        }
        let l = RoceLayout::lookup(RC_WRITE_ONLY_IMM).unwrap();
        assert_eq!(
            (l.offset_of(RETH), l.offset_of(IMMDT), l.offset_of(AETH)),
            (Some(0), Some(16), None)
        );
        let l = RoceLayout::lookup(UD_SEND_ONLY_IMM).unwrap();
        assert_eq!((l.offset_of(DETH), l.offset_of(IMMDT)), (Some(0), Some(8)));
        let l = RoceLayout::lookup(RC_ATOMIC_ACK).unwrap();
        assert_eq!(
            (l.offset_of(AETH), l.offset_of(ATOMIC_ACK_ETH)),
            (Some(0), Some(4))
        );
    }

    // RC WRITE ONLY with immediate: BTH (SE, pad 2, tver 0, pkey 0xffff, QP 0x000011,
    // A, PSN 0x123456), RETH (va 0x1000, rkey 0xabcd, len 2), ImmDt 0xcafebabe,
    // payload "hi", 2 pad bytes, ICRC (dummy).
    static WRITE_IMM: [u8; 12 + 16 + 4 + 2 + 2 + 4] = [
        0x0b, 0xa0, 0xff, 0xff, 0x00, 0x00, 0x00, 0x11, 0x80, 0x12, 0x34, 0x56, // BTH
        0, 0, 0, 0, 0, 0, 0x10, 0x00, 0, 0, 0xab, 0xcd, 0, 0, 0, 2, // RETH
        0xca, 0xfe, 0xba, 0xbe, // ImmDt
        b'h', b'i', 0, 0, // payload + pad
        0x01, 0x02, 0x03, 0x04, // ICRC
    ];

    #[test]
    fn write_only_imm() {
        let p = RocePacket::new_checked(&WRITE_IMM[..]).unwrap();
        let b = p.bth();
        assert_eq!(b.opcode(), opcode::RC_WRITE_ONLY_IMM);
        assert!(b.solicited() && !b.mig_req() && b.ack_req());
        assert_eq!((b.pad_count(), b.tver(), b.pkey()), (2, 0, 0xffff));
        assert_eq!((b.dest_qp(), b.psn(), b.resv8a()), (0x11, 0x123456, 0));
        assert_eq!(
            p.reth(),
            Some(Reth {
                va: 0x1000,
                rkey: 0xabcd,
                dma_len: 2
            })
        );
        assert_eq!(p.imm_data(), Some(0xcafebabe));
        assert_eq!(
            (p.aeth(), p.deth(), p.ieth(), p.atomic_eth()),
            (None, None, None, None)
        );
        assert_eq!(p.payload_offset(), 32);
        assert_eq!(p.payload(), b"hi");
        assert_eq!(p.icrc_field(), 0x04030201);
        // Too short for its pad + ICRC.
        assert_eq!(
            RocePacket::new_checked(&WRITE_IMM[..35]).unwrap_err(),
            Error::Malformed
        );
        assert_eq!(
            RocePacket::new_checked(&WRITE_IMM[..11]).unwrap_err(),
            Error::Truncated
        );
        let mut bad = WRITE_IMM;
        bad[0] = 0x40; // RD
        assert_eq!(
            RocePacket::new_checked(&bad[..]).unwrap_err(),
            Error::Malformed
        );
        // An unchecked short view does not panic.
        let p = RocePacket::new_unchecked(&WRITE_IMM[..13]);
        assert_eq!((p.payload(), p.icrc_field()), (&[] as &[u8], 0x0056_3412)); // bytes 9..13
        assert_eq!(
            p.reth(),
            Some(Reth {
                va: 0,
                rkey: 0,
                dma_len: 0
            })
        );
    }

    #[test]
    fn atomic_and_ud_headers() {
        let mut a = [0u8; 12 + 28 + 4];
        a[0] = opcode::RC_COMPARE_SWAP;
        a[12..20].copy_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
        a[20..24].copy_from_slice(&7u32.to_be_bytes());
        a[24..32].copy_from_slice(&9u64.to_be_bytes());
        a[32..40].copy_from_slice(&3u64.to_be_bytes());
        let p = RocePacket::new_checked(&a[..]).unwrap();
        assert_eq!(
            p.atomic_eth(),
            Some(AtomicEth {
                va: 0x1122_3344_5566_7788,
                rkey: 7,
                swap_add: 9,
                compare: 3
            })
        );
        assert_eq!(p.payload(), &[] as &[u8]);
        let mut ack = [0u8; 12 + 12 + 4];
        ack[0] = opcode::RC_ATOMIC_ACK;
        ack[12..16].copy_from_slice(&[0x00, 0x00, 0x00, 0x05]);
        ack[16..24].copy_from_slice(&42u64.to_be_bytes());
        let p = RocePacket::new_checked(&ack[..]).unwrap();
        assert_eq!(
            p.aeth(),
            Some(Aeth {
                syndrome: 0,
                msn: 5
            })
        );
        assert_eq!(p.atomic_ack_eth(), Some(42));
        let mut ud = [0u8; 12 + 8 + 4 + 4];
        ud[0] = opcode::UD_SEND_ONLY;
        ud[12..20].copy_from_slice(&[0x80, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01]);
        let p = RocePacket::new_checked(&ud[..]).unwrap();
        assert_eq!(
            p.deth(),
            Some(Deth {
                qkey: 0x8001_0000,
                src_qp: 1
            })
        );
        assert_eq!(p.payload().len(), 4);
    }
}
