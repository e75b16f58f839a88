//! Receive-side scaling: the Toeplitz hash (Microsoft RSS) over the outer IP 2-tuple or
//! 4-tuple, and steering a hash to a queue.
//!
//! Input (as in the RSS spec): source address, destination address, then for TCP/UDP/RoCE
//! frames that are not tunnelled and not fragments, source port and destination port.
//! Tunnelled frames and fragments hash the outer 2-tuple (addresses only). Non-IP frames hash
//! to 0.
//!
//! The hash is computed with per-nibble tables derived from the key when it is set (72 tables
//! of 16 words = 4.5 KiB), so a 12-byte IPv4 4-tuple costs 24 loads and XORs instead of 96
//! conditional shifts.

use crate::config::RSS_INPUT_MAX;
use splitrx_shared::abi::RSS_KEY_LEN;
use splitrx_shared::split::{FrameClass, SplitResult};

/// The 40-byte key from Microsoft's RSS specification (also the default of most NICs).
pub const MS_RSS_KEY: [u8; RSS_KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Bit-serial Toeplitz hash (the reference definition; used to check the table version).
pub fn toeplitz_reference(key: &[u8; RSS_KEY_LEN], input: &[u8]) -> u32 {
    let mut result = 0u32;
    for (i, &byte) in input.iter().enumerate().take(RSS_INPUT_MAX) {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                result ^= window(key, i * 8 + bit);
            }
        }
    }
    result
}

/// The 32 key bits starting at bit `pos` (MSB first).
fn window(key: &[u8; RSS_KEY_LEN], pos: usize) -> u32 {
    let byte = pos / 8;
    let shift = pos % 8;
    let mut w: u64 = 0;
    for k in 0..5 {
        w = (w << 8) | *key.get(byte + k).unwrap_or(&0) as u64;
    }
    ((w << shift) >> 8) as u32
}

/// Toeplitz hasher with precomputed nibble tables.
#[derive(Clone, Debug)]
pub struct Toeplitz {
    tables: [[u32; 16]; RSS_INPUT_MAX * 2],
}

impl Toeplitz {
    pub fn new(key: &[u8; RSS_KEY_LEN]) -> Toeplitz {
        let mut tables = [[0u32; 16]; RSS_INPUT_MAX * 2];
        for (n, t) in tables.iter_mut().enumerate() {
            for (v, slot) in t.iter_mut().enumerate() {
                let mut h = 0;
                for bit in 0..4 {
                    if v & (0x8 >> bit) != 0 {
                        h ^= window(key, n * 4 + bit);
                    }
                }
                *slot = h;
            }
        }
        Toeplitz { tables }
    }

    /// Hash of `input` (at most [`RSS_INPUT_MAX`] bytes are used).
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        let mut h = 0;
        for (b, t) in input.iter().zip(self.tables.chunks_exact(2)) {
            h ^= t[0][(b >> 4) as usize] ^ t[1][(b & 15) as usize];
        }
        h
    }

    /// Hash of `N` input bytes starting at input byte position `pos` (fixed length: the loop
    /// is unrolled and bounds-check free), XORed into `h`.
    #[inline(always)]
    fn hash_fixed<const N: usize>(&self, pos: usize, bytes: &[u8; N], mut h: u32) -> u32 {
        let t = &self.tables[2 * pos..2 * (pos + N)];
        for (i, &b) in bytes.iter().enumerate() {
            h ^= t[2 * i][(b >> 4) as usize] ^ t[2 * i + 1][(b & 15) as usize];
        }
        h
    }

    /// Flow hash of a frame from its split decision (see the module docs for the input).
    /// Equal to `self.hash(input)` with `input` from [`flow_input`], computed straight from the
    /// frame without assembling the input.
    #[inline]
    pub fn flow_hash(&self, frame: &[u8], r: &SplitResult) -> u32 {
        let Some(l3) = r.outer_l3_offset else {
            return 0;
        };
        let l3 = l3 as usize;
        let ported = r.tunnel.is_none()
            && matches!(
                r.class,
                FrameClass::Tcp | FrameClass::Udp | FrameClass::Roce
            );
        let ports = || -> Option<&[u8; 4]> {
            if !ported {
                return None;
            }
            let l4 = r.l4_offset? as usize;
            frame.get(l4..l4 + 4)?.try_into().ok()
        };
        match r.outer_ip_version {
            4 => {
                let Some(a) = frame
                    .get(l3 + 12..l3 + 20)
                    .and_then(|a| <&[u8; 8]>::try_from(a).ok())
                else {
                    return 0;
                };
                let h = self.hash_fixed(0, a, 0);
                match ports() {
                    Some(p) => self.hash_fixed(8, p, h),
                    None => h,
                }
            }
            6 => {
                let Some(a) = frame
                    .get(l3 + 8..l3 + 40)
                    .and_then(|a| <&[u8; 32]>::try_from(a).ok())
                else {
                    return 0;
                };
                let h = self.hash_fixed(0, a, 0);
                match ports() {
                    Some(p) => self.hash_fixed(32, p, h),
                    None => h,
                }
            }
            _ => 0,
        }
    }
}

/// Writes the hash input of a frame into `out`; returns its length (0 for non-IP).
pub fn flow_input(frame: &[u8], r: &SplitResult, out: &mut [u8; RSS_INPUT_MAX]) -> usize {
    let Some(l3) = r.outer_l3_offset else {
        return 0;
    };
    let l3 = l3 as usize;
    let (addrs, alen) = match r.outer_ip_version {
        4 => (frame.get(l3 + 12..l3 + 20), 8),
        6 => (frame.get(l3 + 8..l3 + 40), 32),
        _ => (None, 0),
    };
    let Some(addrs) = addrs else { return 0 };
    out[..alen].copy_from_slice(addrs);
    let ported = r.tunnel.is_none()
        && matches!(
            r.class,
            FrameClass::Tcp | FrameClass::Udp | FrameClass::Roce
        );
    if ported {
        if let Some(ports) = r
            .l4_offset
            .and_then(|l4| frame.get(l4 as usize..l4 as usize + 4))
        {
            out[alen..alen + 4].copy_from_slice(ports);
            return alen + 4;
        }
    }
    alen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) -> ([u8; 12], usize) {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&src);
        b[4..8].copy_from_slice(&dst);
        b[8..10].copy_from_slice(&sp.to_be_bytes());
        b[10..12].copy_from_slice(&dp.to_be_bytes());
        (b, 12)
    }

    /// The IPv4 verification suite of Microsoft's RSS specification
    /// ("Verifying the RSS Hash Calculation"): (dst, dst port, src, src port, IPv4-only hash,
    /// IPv4-with-TCP hash).
    type V4Case = ([u8; 4], u16, [u8; 4], u16, u32, u32);

    #[test]
    fn microsoft_ipv4_vectors() {
        let cases: [V4Case; 5] = [
            (
                [161, 142, 100, 80],
                1766,
                [66, 9, 149, 187],
                2794,
                0x323e8fc2,
                0x51ccc178,
            ),
            (
                [65, 69, 140, 83],
                4739,
                [199, 92, 111, 2],
                14230,
                0xd718262a,
                0xc626b0ea,
            ),
            (
                [12, 22, 207, 184],
                38024,
                [24, 19, 198, 95],
                12898,
                0xd2d0a5de,
                0x5c2b394a,
            ),
            (
                [209, 142, 163, 6],
                2217,
                [38, 27, 205, 30],
                48228,
                0x82989176,
                0xafc7327f,
            ),
            (
                [202, 188, 127, 2],
                1303,
                [153, 39, 163, 191],
                44251,
                0x5d1809c5,
                0x10e828a2,
            ),
        ];
        let t = Toeplitz::new(&MS_RSS_KEY);
        for (dst, dp, src, sp, h2, h4) in cases {
            let (b, _) = v4(src, dst, sp, dp);
            assert_eq!(t.hash(&b[..8]), h2, "2-tuple {dst:?}");
            assert_eq!(t.hash(&b), h4, "4-tuple {dst:?}");
            assert_eq!(toeplitz_reference(&MS_RSS_KEY, &b), h4);
        }
    }

    /// The IPv6 verification suite of the same document.
    #[test]
    fn microsoft_ipv6_vectors() {
        fn a(s: [u16; 8]) -> [u8; 16] {
            let mut o = [0u8; 16];
            for (i, w) in s.iter().enumerate() {
                o[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
            }
            o
        }
        let cases = [
            (
                a([0x3ffe, 0x2501, 0x200, 3, 0, 0, 0, 1]),
                1766u16,
                a([0x3ffe, 0x2501, 0x200, 0x1fff, 0, 0, 0, 7]),
                2794u16,
                0x2cc18cd5u32,
                0x40207d3du32,
            ),
            (
                a([0xff02, 0, 0, 0, 0, 0, 0, 1]),
                4739,
                a([0x3ffe, 0x501, 8, 0, 0x260, 0x97ff, 0xfe40, 0xefab]),
                14230,
                0x0f0c461c,
                0xdde51bbf,
            ),
            (
                a([0xfe80, 0, 0, 0, 0x200, 0xf8ff, 0xfe21, 0x67cf]),
                38024,
                a([0x3ffe, 0x1900, 0x4545, 3, 0x200, 0xf8ff, 0xfe21, 0x67cf]),
                44251,
                0x4b61e985,
                0x02d1feef,
            ),
        ];
        let t = Toeplitz::new(&MS_RSS_KEY);
        for (dst, dp, src, sp, h2, h4) in cases {
            let mut b = [0u8; 36];
            b[..16].copy_from_slice(&src);
            b[16..32].copy_from_slice(&dst);
            b[32..34].copy_from_slice(&sp.to_be_bytes());
            b[34..36].copy_from_slice(&dp.to_be_bytes());
            assert_eq!(t.hash(&b[..32]), h2);
            assert_eq!(t.hash(&b), h4);
            assert_eq!(toeplitz_reference(&MS_RSS_KEY, &b), h4);
        }
    }

    #[test]
    fn flow_hash_equals_hash_of_flow_input() {
        use splitrx_shared::split::{split, SplitConfig};
        let mut f = [0u8; 14 + 40 + 20 + 8];
        f[12] = 0x86;
        f[13] = 0xdd;
        f[14] = 0x60;
        f[18..20].copy_from_slice(&28u16.to_be_bytes());
        f[20] = 6;
        f[21] = 64;
        for (i, b) in f[22..54].iter_mut().enumerate() {
            *b = i as u8 * 7 + 1;
        }
        f[54..58].copy_from_slice(&[0x12, 0x34, 0x00, 0x50]);
        f[66] = 5 << 4;
        let r = split(&f, &SplitConfig::default());
        let t = Toeplitz::new(&MS_RSS_KEY);
        let mut buf = [0u8; RSS_INPUT_MAX];
        let n = flow_input(&f, &r, &mut buf);
        assert_eq!(n, 36);
        assert_eq!(t.flow_hash(&f, &r), t.hash(&buf[..n]));
        assert_eq!(
            t.flow_hash(&f, &r),
            toeplitz_reference(&MS_RSS_KEY, &buf[..n])
        );
    }

    #[test]
    fn table_matches_reference_for_other_keys() {
        let mut key = [0u8; RSS_KEY_LEN];
        for (i, k) in key.iter_mut().enumerate() {
            *k = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let t = Toeplitz::new(&key);
        let input: [u8; 36] = core::array::from_fn(|i| (i as u8).wrapping_mul(91) ^ 0x5a);
        for n in 0..=36 {
            assert_eq!(
                t.hash(&input[..n]),
                toeplitz_reference(&key, &input[..n]),
                "len {n}"
            );
        }
    }
}
