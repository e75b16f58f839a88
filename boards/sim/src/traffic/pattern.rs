//! The generator's randomness and payload pattern: SplitMix64 and [`fill_payload`], a pure
//! function of `(flow, seq)` that a verifier recomputes.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough to drive a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub const fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// A value in `0..n` (`n > 0`), by Lemire's multiply-shift (bias < n / 2^64).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// The SplitMix64 output function (a strong 64-bit mixer).
#[inline]
pub(super) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The per-packet base word of the payload pattern.
fn payload_base(flow: u32, seq: u64) -> u64 {
    mix64(seq ^ mix64(u64::from(flow) ^ 0x5350_5258_5041_594c))
}

/// Golden-ratio increment: consecutive payload words differ in about half their bits.
const PAYLOAD_STEP: u64 = 0x9e37_79b9_7f4a_7c15;

/// Writes the payload of packet `seq` of flow `flow` into `out`: little-endian 64-bit words
/// `base(flow, seq) ^ ((i + 1) * PAYLOAD_STEP)` for word `i`, where `base` is a SplitMix64 hash
/// of `(flow, seq)`. A pure function of `(flow, seq, out.len())`; a shorter payload is a prefix
/// of a longer one. Every 8-byte word of a packet is distinct, and packets differ from each
/// other, so a verifier catches misplaced, shifted, stale or swapped payload bytes. (Cheap on
/// purpose: the generator must outrun the datapath it feeds.)
pub fn fill_payload(flow: u32, seq: u64, out: &mut [u8]) {
    let base = payload_base(flow, seq);
    // Four words per step, each from its own index, so the loop has no carried chain but `i`.
    let mut blocks = out.chunks_exact_mut(32);
    let mut i = 0u64;
    for b in &mut blocks {
        for (k, w) in b.chunks_exact_mut(8).enumerate() {
            let step = (i + k as u64 + 1).wrapping_mul(PAYLOAD_STEP);
            w.copy_from_slice(&(base ^ step).to_le_bytes());
        }
        i += 4;
    }
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for w in &mut words {
        i += 1;
        w.copy_from_slice(&(base ^ i.wrapping_mul(PAYLOAD_STEP)).to_le_bytes());
    }
    let tail = words.into_remainder();
    let n = tail.len();
    tail.copy_from_slice(&(base ^ (i + 1).wrapping_mul(PAYLOAD_STEP)).to_le_bytes()[..n]);
}

/// Index of the first byte of `data` that differs from [`fill_payload`]`(flow, seq)`, or
/// `None` when all match.
pub fn payload_mismatch(flow: u32, seq: u64, data: &[u8]) -> Option<usize> {
    let base = payload_base(flow, seq);
    let mut step = 0u64;
    for (i, c) in data.chunks(8).enumerate() {
        step = step.wrapping_add(PAYLOAD_STEP);
        let want = (base ^ step).to_le_bytes();
        if let Some(j) = c.iter().zip(want.iter()).position(|(a, b)| a != b) {
            return Some(i * 8 + j);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // Reference outputs of SplitMix64 seeded with 1234567 (from the original paper's code).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    #[test]
    fn payload_is_a_pure_function_and_prefix_stable() {
        let mut a = vec![0u8; 1001];
        let mut b = vec![0u8; 17];
        fill_payload(7, 9, &mut a);
        fill_payload(7, 9, &mut b);
        assert_eq!(&a[..17], &b[..]);
        assert_eq!(payload_mismatch(7, 9, &a), None);
        assert_eq!(payload_mismatch(7, 10, &a), Some(0));
        let mut c = a.clone();
        c[999] ^= 1;
        assert_eq!(payload_mismatch(7, 9, &c), Some(999));
        fill_payload(8, 9, &mut b);
        assert_ne!(&a[..17], &b[..]);
        // Every word of a jumbo payload is distinct (a shifted copy never matches).
        let mut j = vec![0u8; 9000];
        fill_payload(1, 1, &mut j);
        let words: std::collections::HashSet<&[u8]> = j.chunks_exact(8).collect();
        assert_eq!(words.len(), 1125);
        assert_eq!(payload_mismatch(1, 1, &j[8..]), Some(0));
    }
}
