//! TCP (RFC 9293) header and an option walk that never panics.

use super::{be16, be32, checksum, clamp, clamp_mut, ip, put, u8_at, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const FLAGS: usize = 12;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// Length of the TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS;

pub mod flags {
    pub const FIN: u16 = 0x001;
    pub const SYN: u16 = 0x002;
    pub const RST: u16 = 0x004;
    pub const PSH: u16 = 0x008;
    pub const ACK: u16 = 0x010;
    pub const URG: u16 = 0x020;
    pub const ECE: u16 = 0x040;
    pub const CWR: u16 = 0x080;
}

/// A read-only view of a TCP segment. The buffer is the IP payload (it must end where the IP
/// datagram ends, so that `payload()` excludes link padding).
#[derive(Debug, Clone, Copy)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// `Truncated` when shorter than 20 bytes; `Malformed` when the data offset is below 5 or
    /// past the buffer.
    pub fn check_len(&self) -> Result<()> {
        let len = self.b().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = self.header_len();
        if hl < HEADER_LEN || hl > len {
            return Err(Error::Malformed);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn src_port(&self) -> u16 {
        be16(self.b(), field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        be16(self.b(), field::DST_PORT)
    }
    pub fn seq_number(&self) -> u32 {
        be32(self.b(), field::SEQ_NUM)
    }
    pub fn ack_number(&self) -> u32 {
        be32(self.b(), field::ACK_NUM)
    }
    /// Header length in bytes (data offset * 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        (u8_at(self.b(), field::FLAGS) >> 4) as usize * 4
    }
    /// The 9 flag bits (NS is not included: it is reserved since RFC 8311), see [`flags`].
    pub fn flags(&self) -> u16 {
        be16(self.b(), field::FLAGS) & 0x0ff
    }
    pub fn window_len(&self) -> u16 {
        be16(self.b(), field::WIN_SIZE)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.b(), field::CHECKSUM)
    }
    pub fn urgent_at(&self) -> u16 {
        be16(self.b(), field::URGENT)
    }
    /// The option bytes.
    pub fn options_raw(&self) -> &[u8] {
        clamp(self.b(), HEADER_LEN, self.header_len())
    }
    pub fn options(&self) -> TcpOptions<'_> {
        TcpOptions {
            data: self.options_raw(),
        }
    }
    /// The bytes after the header (after at least the 20-byte fixed header).
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        clamp(b, self.header_len().max(HEADER_LEN), b.len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn b_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_src_port(&mut self, v: u16) {
        put(self.b_mut(), field::SRC_PORT, v.to_be_bytes());
    }
    pub fn set_dst_port(&mut self, v: u16) {
        put(self.b_mut(), field::DST_PORT, v.to_be_bytes());
    }
    pub fn set_seq_number(&mut self, v: u32) {
        put(self.b_mut(), field::SEQ_NUM, v.to_be_bytes());
    }
    pub fn set_ack_number(&mut self, v: u32) {
        put(self.b_mut(), field::ACK_NUM, v.to_be_bytes());
    }
    /// Data offset (`header_len / 4`) and the 12 bits after it (reserved, NS/AE and the flags
    /// of [`flags`]) in one store.
    pub fn set_header_len_and_flags(&mut self, header_len: usize, flags: u16) {
        let v = ((header_len / 4) as u16) << 12 | (flags & 0x0fff);
        put(self.b_mut(), field::FLAGS, v.to_be_bytes());
    }
    pub fn set_window_len(&mut self, v: u16) {
        put(self.b_mut(), field::WIN_SIZE, v.to_be_bytes());
    }
    pub fn set_checksum(&mut self, v: u16) {
        put(self.b_mut(), field::CHECKSUM, v.to_be_bytes());
    }
    pub fn set_urgent_at(&mut self, v: u16) {
        put(self.b_mut(), field::URGENT, v.to_be_bytes());
    }
    /// The option bytes, mutably (the data offset must be set first).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        clamp_mut(self.b_mut(), HEADER_LEN, hl)
    }
    /// The bytes after the header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len().max(HEADER_LEN);
        let len = self.b().len();
        clamp_mut(self.b_mut(), hl, len)
    }
    /// Computes and stores the checksum over the pseudo-header of `src`/`dst` (4 or 16 bytes
    /// each) and the whole buffer (the segment must end where the buffer ends).
    pub fn fill_checksum(&mut self, src: &[u8], dst: &[u8]) {
        self.set_checksum(0);
        let c = checksum::upper_layer(src, dst, ip::TCP, self.b());
        self.set_checksum(c);
    }
}

/// A TCP header as values. Options are raw bytes (a multiple of 4, at most 40). `emit` writes
/// checksum 0: call [`TcpPacket::fill_checksum`] once the payload is in place.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    pub ack_number: u32,
    /// The 12 bits after the data offset: the flags of [`flags`], plus NS/AE and the reserved
    /// bits as they were (so that a parsed header is emitted unchanged).
    pub flags: u16,
    pub window_len: u16,
    pub urgent_at: u16,
    pub options: &'a [u8],
    pub payload_len: usize,
}

impl<'a> TcpRepr<'a> {
    /// Reads a checked segment; the payload is the rest of the buffer.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &'a TcpPacket<&'a T>) -> Result<TcpRepr<'a>> {
        p.check_len()?;
        let b: &'a T = p.buffer;
        let b: &'a [u8] = b.as_ref();
        let hl = p.header_len();
        Ok(TcpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq_number: p.seq_number(),
            ack_number: p.ack_number(),
            flags: be16(b, field::FLAGS) & 0x0fff,
            window_len: p.window_len(),
            urgent_at: p.urgent_at(),
            options: clamp(b, HEADER_LEN, hl),
            payload_len: b.len() - hl,
        })
    }

    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }

    #[inline]
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut TcpPacket<T>) {
        let hl = self.header_len();
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_seq_number(self.seq_number);
        p.set_ack_number(self.ack_number);
        p.set_header_len_and_flags(hl, self.flags);
        p.set_window_len(self.window_len);
        p.set_checksum(0);
        p.set_urgent_at(self.urgent_at);
        p.b_mut()[HEADER_LEN..hl].copy_from_slice(self.options);
    }
}

/// One TCP option.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    WindowScale(u8),
    SackPermitted,
    /// SACK blocks, raw (pairs of big-endian u32 edges).
    Sack(&'a [u8]),
    Timestamps {
        tsval: u32,
        tsecr: u32,
    },
    /// Any other kind (MPTCP, TCP-AO, fast open, ...), with its data.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// Iterator over TCP options. After End-of-List it stops; on an option whose length is < 2 or
/// runs past the option area, or a known option with the wrong length, it yields one
/// `Err(Malformed)` and stops. Every step consumes at least one byte, so it terminates.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    data: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        TcpOptions { data }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, rest) = self.data.split_first()?;
        match kind {
            0 => {
                self.data = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            1 => {
                self.data = rest;
                return Some(Ok(TcpOption::NoOperation));
            }
            _ => {}
        }
        let len = match rest.first() {
            Some(&l) if l >= 2 => l as usize,
            _ => {
                self.data = &[];
                return Some(Err(Error::Malformed));
            }
        };
        let Some(value) = self.data.get(2..len) else {
            self.data = &[];
            return Some(Err(Error::Malformed));
        };
        self.data = clamp(self.data, len, self.data.len());
        let opt = match (kind, value.len()) {
            (2, 2) => TcpOption::MaxSegmentSize(be16(value, 0)),
            (3, 1) => TcpOption::WindowScale(value[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, n) if n % 8 == 0 && n > 0 => TcpOption::Sack(value),
            (8, 8) => TcpOption::Timestamps {
                tsval: be32(value, 0),
                tsecr: be32(value, 4),
            },
            (2..=5 | 8, _) => {
                self.data = &[];
                return Some(Err(Error::Malformed));
            }
            _ => TcpOption::Unknown { kind, data: value },
        };
        Some(Ok(opt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 1234 -> 80, seq 1, ack 2, data offset 8 (32 bytes), ACK|PSH, window 512, options
    // NOP NOP TS(0x11, 0x22), then 4 payload bytes.
    static SEG: [u8; 36] = [
        0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 2, 0x80, 0x18, 0x02, 0x00, 0xab, 0xcd, 0, 0,
        1, 1, 8, 10, 0, 0, 0, 0x11, 0, 0, 0, 0x22, // options
        b'd', b'a', b't', b'a',
    ];

    #[test]
    fn fields_and_options() {
        let p = TcpPacket::new_checked(&SEG[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port()), (1234, 80));
        assert_eq!((p.seq_number(), p.ack_number()), (1, 2));
        assert_eq!(p.header_len(), 32);
        assert_eq!(p.flags(), flags::ACK | flags::PSH);
        assert_eq!(p.window_len(), 512);
        assert_eq!(p.checksum(), 0xabcd);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.payload(), b"data");
        let want: [_; 3] = [
            Ok(TcpOption::NoOperation),
            Ok(TcpOption::NoOperation),
            Ok(TcpOption::Timestamps {
                tsval: 0x11,
                tsecr: 0x22,
            }),
        ];
        assert!(p.options().eq(want));
    }

    #[test]
    fn option_kinds() {
        let o = [
            2, 4, 0x05, 0xb4, 3, 3, 7, 4, 2, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2, 30, 4, 0xaa, 0xbb, 0,
        ];
        let want: [_; 6] = [
            Ok(TcpOption::MaxSegmentSize(1460)),
            Ok(TcpOption::WindowScale(7)),
            Ok(TcpOption::SackPermitted),
            Ok(TcpOption::Sack(&[0, 0, 0, 1, 0, 0, 0, 2])),
            Ok(TcpOption::Unknown {
                kind: 30,
                data: &[0xaa, 0xbb],
            }),
            Ok(TcpOption::EndOfList),
        ];
        assert!(TcpOptions::new(&o).eq(want));
        // Nothing is read after End-of-List.
        assert_eq!(TcpOptions::new(&[0, 2, 0]).count(), 1);
    }

    #[test]
    fn malformed_options_stop_the_walk() {
        let cases: [&[u8]; 5] = [
            &[2],              // no length byte
            &[2, 1],           // length < 2
            &[2, 0],           // length 0 (would loop forever if trusted)
            &[8, 10, 0, 0, 0], // runs past the end
            &[2, 3, 0x05],     // MSS with the wrong length
        ];
        for c in cases {
            let v: [_; 1] = [Err(Error::Malformed)];
            assert!(TcpOptions::new(c).eq(v), "{c:?}");
        }
        let v: [_; 2] = [Ok(TcpOption::NoOperation), Err(Error::Malformed)];
        assert!(TcpOptions::new(&[1, 4, 9]).eq(v));
    }

    #[test]
    fn check_len_errors() {
        assert_eq!(
            TcpPacket::new_checked(&SEG[..19]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            TcpPacket::new_checked(&SEG[..31]).unwrap_err(),
            Error::Malformed
        );
        let mut s = SEG;
        s[12] = 0x40; // data offset 4
        assert_eq!(
            TcpPacket::new_checked(&s[..]).unwrap_err(),
            Error::Malformed
        );
        s[12] = 0x50;
        let p = TcpPacket::new_checked(&s[..]).unwrap();
        assert_eq!(p.payload().len(), 16);
        assert_eq!(p.options().count(), 0);
        let p = TcpPacket::new_unchecked(&s[..5]);
        assert_eq!((p.seq_number(), p.payload().len()), (0, 0));
    }
}
