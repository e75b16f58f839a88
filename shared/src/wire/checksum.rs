//! The Internet checksum (RFC 1071): the ones'-complement sum the IPv4 header checksum and the
//! TCP/UDP checksums (over an IPv4 or IPv6 pseudo-header) are made of. One implementation for
//! parsing (verification) and emitting (generation).
//!
//! Sums are accumulated in a `u64` ([`sum`]) and folded to 16 bits at the end ([`fold`]), so
//! pieces (pseudo-header, header, payload) can be added one after another: each piece must
//! start at an even offset of the summed message.

/// Adds `data` to a ones'-complement accumulator as big-endian 16-bit words (an odd trailing
/// byte is the high byte of a zero-padded word). `data` must start at an even offset of the
/// summed message.
///
/// The bulk is summed as native-endian 32-bit words into a `u64` (which the compiler
/// vectorises), folded, and byte-swapped on little-endian machines: the ones'-complement sum
/// is byte-order independent (RFC 1071 section 2(B)).
#[inline]
pub fn sum(data: &[u8], mut acc: u64) -> u64 {
    if data.len() < 64 {
        // Headers and addresses: big-endian 32-bit words (a 32-bit word is two 16-bit words
        // of the sum), a plain loop that beats the vector loop's setup.
        let mut words = data.chunks_exact(4);
        for w in &mut words {
            acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
        }
        return sum_tail(words.remainder(), acc);
    }
    let bulk = data.len() & !3;
    let mut native = 0u64;
    for c in data[..bulk].chunks_exact(4) {
        native += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let folded = fold(native);
    acc += u64::from(if cfg!(target_endian = "little") {
        folded.swap_bytes()
    } else {
        folded
    });
    sum_tail(&data[bulk..], acc)
}

/// The last 0..=3 bytes: a 16-bit word and/or a high byte.
#[inline(always)]
fn sum_tail(mut rest: &[u8], mut acc: u64) -> u64 {
    if rest.len() >= 2 {
        acc += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
        rest = &rest[2..];
    }
    if let [b] = rest {
        acc += u64::from(*b) << 8;
    }
    acc
}

/// Folds an accumulator to 16 bits (end-around carry).
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The Internet checksum of `data`: the complement of its ones'-complement sum. Over a header
/// whose checksum field is correct, the sum is 0xffff and this is 0.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// The pseudo-header sum of TCP/UDP over IPv4 (RFC 9293 3.1) or IPv6 (RFC 8200 8.1):
/// source and destination addresses (`src`/`dst`: 4 or 16 bytes each), the protocol and the
/// upper-layer length.
#[inline(always)]
pub fn pseudo_header(src: &[u8], dst: &[u8], protocol: u8, len: u32) -> u64 {
    let acc = sum(dst, sum(src, 0));
    acc + u64::from(protocol) + u64::from(len >> 16) + u64::from(len & 0xffff)
}

/// The TCP/UDP checksum of `segment` (the upper-layer header with its checksum field zero, and
/// the payload) under the pseudo-header of `src`, `dst` (4 or 16 bytes) and `protocol`. UDP
/// sends a result of 0 as 0xffff (0 means "no checksum"); the caller does that.
///
/// Always inlined: with 4- or 16-byte address arrays at the call site the address sums
/// unroll (the generic short loop costs a 64-byte frame generator 15%).
#[inline(always)]
pub fn upper_layer(src: &[u8], dst: &[u8], protocol: u8, segment: &[u8]) -> u16 {
    let acc = pseudo_header(src, dst, protocol, segment.len() as u32);
    !fold(sum(segment, acc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
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
