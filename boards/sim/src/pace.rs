//! Pacing of the sim wire: a [`Rate`] (frames/s or bits/s, the `--rate` syntax) and an
//! integer [`TokenBucket`]. [`crate::wire::LoopWire`] takes a frame only once the bucket holds
//! its cost, so a paced wire never blocks the firmware thread.
//!
//! Rates count frame bytes x 8 (no preamble or inter-frame gap). The bucket starts full,
//! refills continuously at the rate and holds at most the burst (or one frame's cost, if larger;
//! plus one nanosecond of refill, so rounded wake-ups lose nothing). Arithmetic is in integer
//! nano-tokens, so a schedule has no drift: 3 frames/s puts the fourth frame at exactly 1 s.

use std::str::FromStr;

/// A replay rate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rate {
    FramesPerSec(u64),
    /// Frame bytes x 8 per second.
    BitsPerSec(u64),
}

impl Rate {
    /// Tokens per second.
    pub fn per_sec(self) -> u64 {
        match self {
            Rate::FramesPerSec(n) | Rate::BitsPerSec(n) => n,
        }
    }
    /// Tokens a frame of `len` bytes costs.
    pub fn cost(self, len: usize) -> u64 {
        match self {
            Rate::FramesPerSec(_) => 1,
            Rate::BitsPerSec(_) => len as u64 * 8,
        }
    }
    /// The default burst: 1 ms worth of tokens, at least one frame (a 9216-byte one for bits).
    pub fn default_burst(self) -> u64 {
        match self {
            Rate::FramesPerSec(n) => (n / 1000).max(1),
            Rate::BitsPerSec(n) => (n / 1000).max(crate::traffic::MAX_FRAME as u64 * 8),
        }
    }
}

/// A bad `--rate` string.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("bad rate `{0}`: expected a positive number with an optional k/M/G prefix and pps or bps, e.g. 1.5Mpps or 10Gbps")]
pub struct RateError(pub String);

/// Parses `<number>[k|M|G](pps|bps)`, e.g. `1000pps`, `1.5Mpps`, `10Gbps`.
impl FromStr for Rate {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Rate, RateError> {
        let err = || RateError(s.to_string());
        let t = s.trim();
        let (num, frames) = if let Some(n) = t.strip_suffix("pps") {
            (n, true)
        } else if let Some(n) = t.strip_suffix("bps") {
            (n, false)
        } else {
            return Err(err());
        };
        let (num, scale) = match num.as_bytes().last() {
            Some(b'k') => (&num[..num.len() - 1], 1e3),
            Some(b'M') => (&num[..num.len() - 1], 1e6),
            Some(b'G') => (&num[..num.len() - 1], 1e9),
            _ => (num, 1.0),
        };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(err());
        }
        let v = num.parse::<f64>().map_err(|_| err())? * scale;
        // Below 1 token/s, or beyond 10^15 (a u64 of nano-token arithmetic stays far from overflow).
        if !(1.0..=1e15).contains(&v) {
            return Err(err());
        }
        let v = v.round() as u64;
        Ok(if frames {
            Rate::FramesPerSec(v)
        } else {
            Rate::BitsPerSec(v)
        })
    }
}

const NANO: u128 = 1_000_000_000;

/// A token bucket in integer nano-tokens (1 token = 10^9 nano-tokens; a rate of r tokens/s adds
/// exactly r nano-tokens per nanosecond).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    rate: u64,
    capacity: u128,
    tokens: u128,
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket of `burst` tokens refilled at `rate` tokens/s (`rate > 0`).
    pub fn new(rate: u64, burst: u64, now_ns: u64) -> TokenBucket {
        assert!(rate > 0, "a token bucket needs a positive rate");
        let capacity = u128::from(burst.max(1)) * NANO;
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            last_ns: now_ns,
        }
    }

    /// Takes `cost` tokens at `now_ns`, or returns the earliest time they will be there.
    /// A cost above the burst is allowed once the bucket holds that cost.
    pub fn try_take(&mut self, cost: u64, now_ns: u64) -> Result<(), u64> {
        let need = u128::from(cost) * NANO;
        // A waiter wakes at the first whole nanosecond at or after the instant its tokens are
        // there, up to one nanosecond late. Letting the bucket hold up to one nanosecond of
        // refill above its size keeps that rounding instead of dropping it, so a paced schedule
        // does not drift (3 frames/s with burst 1: 0, 333333334, 666666667, 1000000000 ns).
        let cap = self.capacity.max(need) + u128::from(self.rate) - 1;
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        self.tokens = (self.tokens + u128::from(elapsed) * u128::from(self.rate)).min(cap);
        if self.tokens >= need {
            self.tokens -= need;
            return Ok(());
        }
        let wait = (need - self.tokens).div_ceil(u128::from(self.rate));
        Err(self
            .last_ns
            .saturating_add(u64::try_from(wait).unwrap_or(u64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The earliest emission time of each frame (of `lens` bytes) through a bucket started at
    /// time 0, waking exactly when the bucket says the tokens are there.
    fn schedule(lens: &[usize], rate: Rate, burst: u64, start: u64) -> Vec<u64> {
        let mut b = TokenBucket::new(rate.per_sec(), burst, 0);
        let mut now = start;
        lens.iter()
            .map(|&len| loop {
                match b.try_take(rate.cost(len), now) {
                    Ok(()) => break now,
                    Err(at) => {
                        assert!(at > now, "the bucket must name a later instant");
                        now = at;
                    }
                }
            })
            .collect()
    }

    #[test]
    fn frames_per_second_spacing_is_exact() {
        let t = schedule(&[60; 5], Rate::FramesPerSec(1000), 1, 0);
        assert_eq!(t, [0, 1_000_000, 2_000_000, 3_000_000, 4_000_000]);
    }

    #[test]
    fn non_divisible_rate_has_no_drift() {
        let t = schedule(&[60; 4], Rate::FramesPerSec(3), 1, 0);
        assert_eq!(t, [0, 333_333_334, 666_666_667, 1_000_000_000]);
    }

    #[test]
    fn bits_per_second_charges_frame_bits() {
        // 1 Mb/s: a 125-byte frame is 1 ms of tokens, a 250-byte frame 2 ms. Burst 1000 bits.
        let t = schedule(&[125, 250, 125, 125], Rate::BitsPerSec(1_000_000), 1000, 0);
        // Frame 0 empties the bucket; frame 1 (2000 bits > burst) waits for 2000 bits.
        assert_eq!(t, [0, 2_000_000, 3_000_000, 4_000_000]);
    }

    #[test]
    fn burst_goes_at_once_then_paces() {
        let t = schedule(&[60; 6], Rate::FramesPerSec(1000), 3, 0);
        assert_eq!(t, [0, 0, 0, 1_000_000, 2_000_000, 3_000_000]);
    }

    #[test]
    fn idle_time_refills_at_most_the_burst() {
        // 10 s idle before the first frame: 10000 tokens' worth, capped at the burst of 2.
        let t = schedule(&[60; 6], Rate::FramesPerSec(1000), 2, 10_000_000_000);
        let t: Vec<u64> = t.iter().map(|x| x - 10_000_000_000).collect();
        assert_eq!(t, [0, 0, 1_000_000, 2_000_000, 3_000_000, 4_000_000]);
    }

    #[test]
    fn token_bucket_arithmetic() {
        let mut b = TokenBucket::new(10, 2, 100);
        assert_eq!(b.try_take(1, 100), Ok(()));
        assert_eq!(b.try_take(1, 100), Ok(()));
        assert_eq!(b.try_take(1, 100), Err(100 + 100_000_000));
        // Half-way, still short; asking again reports the same instant.
        assert_eq!(b.try_take(1, 50_000_100), Err(100_000_100));
        assert_eq!(b.try_take(1, 100_000_100), Ok(()));
        // A cost above the burst waits until that cost has accumulated.
        assert_eq!(b.try_take(5, 100_000_100), Err(100_000_100 + 500_000_000));
        assert_eq!(b.try_take(5, 600_000_100), Ok(()));
        // Time going backwards neither refills nor panics.
        assert_eq!(b.try_take(1, 0), Err(700_000_100));
    }

    #[test]
    fn rate_parsing() {
        assert_eq!("1000pps".parse(), Ok(Rate::FramesPerSec(1000)));
        assert_eq!("1.5Mpps".parse(), Ok(Rate::FramesPerSec(1_500_000)));
        assert_eq!(" 10Gbps ".parse(), Ok(Rate::BitsPerSec(10_000_000_000)));
        assert_eq!("2.5Gbps".parse(), Ok(Rate::BitsPerSec(2_500_000_000)));
        assert_eq!("64kbps".parse(), Ok(Rate::BitsPerSec(64_000)));
        for bad in [
            "",
            "pps",
            "0pps",
            "0.4pps",
            "-1pps",
            "1e3pps",
            "fastpps",
            "10Gb",
            "10 Gbps",
            "1Tbps",
            "2000000Gbps",
        ] {
            assert_eq!(
                bad.parse::<Rate>(),
                Err(RateError(bad.to_string())),
                "{bad}"
            );
        }
        assert_eq!(Rate::FramesPerSec(10).default_burst(), 1);
        assert_eq!(Rate::FramesPerSec(10_000_000).default_burst(), 10_000);
        assert_eq!(Rate::BitsPerSec(1_000_000).default_burst(), 9216 * 8);
        assert_eq!(
            Rate::BitsPerSec(100_000_000_000).default_burst(),
            100_000_000
        );
    }
}
