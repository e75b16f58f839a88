//! The Internet checksum (RFC 1071): ones'-complement sums and the TCP/UDP pseudo-headers.
//!
//! Sums are carried unfolded in a `u64` ([`Sum`]) so that ranges can be added cheaply and
//! folded to 16 bits once ([`fold`]). Every sum treats its bytes as big-endian 16-bit words
//! starting at the first byte; an odd trailing byte is padded with a zero byte. A range that
//! starts at an odd distance from the start of the checksummed data contributes its sum with
//! the two bytes swapped ([`Sum::at`]). Never panics, never allocates.

/// An unfolded ones'-complement sum.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Sum(pub u64);

impl Sum {
    /// The sum of `data` (big-endian 16-bit words from `data[0]`, odd tail zero-padded).
    #[inline]
    pub fn of(data: &[u8]) -> Sum {
        Sum(add_bytes(data))
    }
    /// Adds another sum (64-bit add with the carry added back: exact for any two sums).
    #[inline(always)]
    pub fn plus(self, other: Sum) -> Sum {
        let (s, carry) = self.0.overflowing_add(other.0);
        // With a carry out, `s` <= 2^64 - 2: adding it back cannot overflow.
        Sum(s + carry as u64)
    }
    /// Adds a 16-bit word.
    #[inline(always)]
    pub fn word(self, w: u16) -> Sum {
        self.plus(Sum(w as u64))
    }
    /// This sum as a range that starts `rel` bytes after the start of the checksummed data:
    /// at an odd distance its bytes fall in the other half of each word (RFC 1071 2(B)).
    #[inline(always)]
    pub fn at(self, rel: usize) -> Sum {
        if rel & 1 == 0 {
            self
        } else {
            Sum(fold(self.0).swap_bytes() as u64)
        }
    }
    /// Folded to 16 bits (not complemented).
    #[inline(always)]
    pub fn folded(self) -> u16 {
        fold(self.0)
    }
}

/// Folds an unfolded sum to 16 bits (end-around carry), not complemented.
#[inline(always)]
pub fn fold(sum: u64) -> u16 {
    let mut s = fold32(sum);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

#[inline(always)]
fn fold32(sum: u64) -> u32 {
    let s = (sum & 0xffff_ffff) + (sum >> 32);
    ((s & 0xffff_ffff) + (s >> 32)) as u32
}

/// Sum of `data` as big-endian 16-bit words. Computed over little-endian 16-bit words and
/// byte-swapped once at the end: the ones'-complement sum is byte-order independent
/// (RFC 1071 2(B)), so this is exact on every target. The inner loop adds the two halves of
/// each 32-bit word into a `u32` (it vectorises to 32-bit lanes); blocks of 32 KiB keep that
/// sum below 2^31 (8192 words of at most 2 * 0xffff), and the blocks add up in a `u64`.
#[inline]
fn add_bytes(data: &[u8]) -> u64 {
    const BLOCK: usize = 32 << 10;
    let mut acc: u64 = 0;
    for block in data.chunks(BLOCK) {
        let mut lanes: u32 = 0;
        let mut chunks = block.chunks_exact(4);
        for c in &mut chunks {
            let w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            lanes += (w & 0xffff) + (w >> 16);
        }
        acc += lanes as u64;
        let rest = chunks.remainder();
        if rest.len() >= 2 {
            acc += u16::from_le_bytes([rest[0], rest[1]]) as u64;
        }
        if rest.len() & 1 == 1 {
            // The odd last byte is the high byte of a big-endian word: the low byte here. Only
            // the last block can have an odd length.
            acc += rest[rest.len() - 1] as u64;
        }
    }
    fold(acc).swap_bytes() as u64
}

/// The IPv4 pseudo-header sum (RFC 793 / 768): addresses, protocol, upper-layer length.
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, len: u32) -> Sum {
    pseudo(&src, &dst, protocol, len)
}

/// The IPv6 pseudo-header sum (RFC 8200 8.1): addresses, upper-layer length (32 bits), next
/// header.
#[inline]
pub fn pseudo_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, len: u32) -> Sum {
    pseudo(&src, &dst, next_header, len)
}

/// Both pseudo-headers sum to the same thing: the addresses, the protocol as a word and the
/// length's two halves (a 16-bit IPv4 length has a zero high half).
#[inline(always)]
fn pseudo(src: &[u8], dst: &[u8], protocol: u8, len: u32) -> Sum {
    Sum::of(src)
        .plus(Sum::of(dst))
        .plus(pseudo_rest(protocol, len))
}

/// The pseudo-header without its addresses (for callers that sum the addresses as one range,
/// as they lie in the IP header): the protocol / next header and the upper-layer length.
#[inline(always)]
pub fn pseudo_rest(protocol: u8, len: u32) -> Sum {
    Sum(protocol as u64 + (len >> 16) as u64 + (len & 0xffff) as u64)
}

/// Whether a checksummed range (its checksum field included) is correct: the folded sum is
/// 0xffff (RFC 1071: the ones'-complement sum of the data with its checksum is all ones).
#[inline(always)]
pub fn verifies(sum: Sum) -> bool {
    sum.folded() == 0xffff
}

// The accumulator interface the wire emitters and parsers use: the same sums, as `u64`s.

/// Adds `data` (which must start at an even offset of the summed message) to `acc`.
#[inline]
pub fn sum(data: &[u8], acc: u64) -> u64 {
    Sum(acc).plus(Sum::of(data)).0
}

/// The Internet checksum of `data`: the complement of its ones'-complement sum. Over a header
/// whose checksum field is correct, the sum is 0xffff and this is 0.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    !Sum::of(data).folded()
}

/// The pseudo-header sum of TCP/UDP over IPv4 or IPv6 (`src`/`dst`: 4 or 16 bytes each).
#[inline(always)]
pub fn pseudo_header(src: &[u8], dst: &[u8], protocol: u8, len: u32) -> u64 {
    pseudo(src, dst, protocol, len).0
}

/// The TCP/UDP checksum of `segment` (the upper-layer header with its checksum field zero, and
/// the payload) under the pseudo-header of `src`, `dst` (4 or 16 bytes) and `protocol`. UDP
/// sends a result of 0 as 0xffff (0 means "no checksum"); the caller does that.
#[inline(always)]
pub fn upper_layer(src: &[u8], dst: &[u8], protocol: u8, segment: &[u8]) -> u16 {
    !pseudo(src, dst, protocol, segment.len() as u32)
        .plus(Sum::of(segment))
        .folded()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 section 3's worked example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
    #[test]
    fn rfc1071_example() {
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Sum::of(&d).folded(), 0xddf2);
        // Split at an even and at an odd point: the same sum.
        assert_eq!(Sum::of(&d[..4]).plus(Sum::of(&d[4..])).folded(), 0xddf2);
        assert_eq!(
            Sum::of(&d[..3]).plus(Sum::of(&d[3..]).at(3)).folded(),
            0xddf2
        );
        assert_eq!(Sum::of(&[]).folded(), 0);
        assert_eq!(Sum::of(&[0xab]).folded(), 0xab00);
    }

    #[test]
    fn long_runs_carry_correctly() {
        let d = [0xffu8; 4099];
        // 2049 words of 0xffff and a 0xff00 tail: 0xffff + 0xff00 folds to 0xff00.
        assert_eq!(Sum::of(&d).folded(), 0xff00);
        let mut naive: u32 = 0;
        let d: std::vec::Vec<u8> = (0..1501u32).map(|i| (i * 7 + 3) as u8).collect();
        for c in d.chunks(2) {
            naive += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32;
        }
        while naive > 0xffff {
            naive = (naive & 0xffff) + (naive >> 16);
        }
        assert_eq!(Sum::of(&d).folded(), naive as u16);
        // Across the 32 KiB blocks of the fast loop, odd and even lengths.
        for len in [(32 << 10) - 1, 32 << 10, (32 << 10) + 3, 100_001] {
            let d: std::vec::Vec<u8> = (0..len as u32).map(|i| (i * 13 + 5) as u8).collect();
            let mut naive: u64 = 0;
            for c in d.chunks(2) {
                naive += u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u64;
            }
            assert_eq!(Sum::of(&d).folded(), fold(naive), "len {len}");
        }
    }

    /// A UDP/IPv4 datagram from the ipv4 module's fixture: 10.0.0.1 -> 10.0.0.2, ports
    /// 1234 -> 5678, 4 payload bytes "abcd"; checksum 0x0c0d (computed independently).
    #[test]
    fn pseudo_header_udp4() {
        let mut udp = [
            0x04, 0xd2, 0x16, 0x2e, 0x00, 0x0c, 0x00, 0x00, b'a', b'b', b'c', b'd',
        ];
        let ph = pseudo_v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 12);
        let c = !ph.plus(Sum::of(&udp)).folded();
        assert_eq!(c, 0x0c0d);
        udp[6..8].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(ph.plus(Sum::of(&udp))));
        udp[9] ^= 1;
        assert!(!verifies(ph.plus(Sum::of(&udp))));
        // The IPv6 pseudo-header of the same lengths differs only by the addresses.
        let a = [0u8; 16];
        assert_eq!(pseudo_v6(a, a, 17, 12).folded(), 17 + 12);
        assert_eq!(pseudo_v6(a, a, 6, 0x1_0002).folded(), 6 + 1 + 2);
    }

    #[test]
    fn rfc1071_example_free_functions() {
        // RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to ddf2 (checksum 220d).
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        // An odd trailing byte is the high byte of a padded word.
        assert_eq!(data(&[0x12]), !0x1200);
        assert_eq!(data(&[]), 0xffff);
    }

    #[test]
    fn fast_sum_matches_naive_for_all_lengths() {
        let mut buf = [0u8; 300];
        let mut x = 0x1234_5678u32;
        for b in buf.iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 24) as u8;
        }
        buf[..64].fill(0xff); // carries in every column
        for len in 0..buf.len() {
            let mut acc = 0u32;
            for pair in buf[..len].chunks(2) {
                acc += u32::from(pair[0]) << 8 | u32::from(*pair.get(1).unwrap_or(&0));
            }
            while acc >> 16 != 0 {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            assert_eq!(data(&buf[..len]), !(acc as u16), "len {len}");
        }
    }

    #[test]
    fn pseudo_header_words() {
        // 10.0.0.1 -> 10.0.0.2, UDP, length 12: 0a00 0001 0a00 0002 0011 000c.
        let acc = pseudo_header(&[10, 0, 0, 1], &[10, 0, 0, 2], 17, 12);
        assert_eq!(
            fold(acc),
            0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 0x0011 + 0x000c
        );
        // A jumbo length contributes both halves.
        assert_eq!(pseudo_header(&[], &[], 6, 0x0001_0002), 6 + 1 + 2);
    }
}
