//! Replay of frames: a [`FrameSource`] (frames in memory, [`MemFrames`], or any other source),
//! played N times or forever, optionally paced by a token bucket on a monotonic [`Clock`].
//!
//! Capture files are read by the host crate's capture reader (`splitrx_host::capture`), which
//! handles pcap and pcapng and converts every supported link type to the Ethernet frame a NIC
//! would receive; its frames are fed through [`MemFrames`]. (The board does not read files
//! itself, so there is one capture reader in the project.)
//!
//! Pacing: a rate in frames/s or bits/s (frame bytes x 8; no preamble or inter-frame gap) and a
//! burst size in the same unit. The bucket starts full; it refills continuously at the rate and
//! holds at most the burst (or one frame's cost, if larger; plus one nanosecond of refill, so
//! rounded wake-ups lose nothing). Arithmetic is in integer
//! nano-tokens, so a schedule has no drift: 3 frames/s puts the fourth frame at exactly 1 s.
//! The real clock sleeps with the OS timer (tens of microseconds of slack); at high rates
//! choose a burst of at least `rate x 100 us` so the slack is absorbed, not lost.

use std::str::FromStr;
use std::time::{Duration, Instant};

/// Something that yields frames, one pass at a time (a lending iterator: the current frame is
/// borrowed from the source).
pub trait FrameSource {
    /// Moves to the next frame of the current pass: `Ok(true)` when there is one, `Ok(false)`
    /// at the end of the pass.
    fn advance(&mut self) -> Result<bool, ReplayError>;
    /// The current frame; empty before the first successful [`advance`](Self::advance).
    fn frame(&self) -> &[u8];
    /// Starts a new pass at the first frame.
    fn rewind(&mut self) -> Result<(), ReplayError>;
}

/// Frames held in memory (from any reader: collect its frames into this).
#[derive(Clone, Debug)]
pub struct MemFrames<T = Vec<u8>> {
    frames: Vec<T>,
    /// Index of the current frame + 1 (0: before the first).
    pos: usize,
}

impl<T: AsRef<[u8]>> MemFrames<T> {
    pub fn new(frames: impl IntoIterator<Item = T>) -> Self {
        MemFrames {
            frames: frames.into_iter().collect(),
            pos: 0,
        }
    }
    pub fn len(&self) -> usize {
        self.frames.len()
    }
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
    pub fn frames(&self) -> &[T] {
        &self.frames
    }
}

impl<T: AsRef<[u8]>> FromIterator<T> for MemFrames<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        MemFrames::new(iter)
    }
}

impl<T: AsRef<[u8]>> FrameSource for MemFrames<T> {
    fn advance(&mut self) -> Result<bool, ReplayError> {
        if self.pos < self.frames.len() {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }
    fn frame(&self) -> &[u8] {
        match self.pos.checked_sub(1) {
            Some(i) => self.frames[i].as_ref(),
            None => &[],
        }
    }
    fn rewind(&mut self) -> Result<(), ReplayError> {
        self.pos = 0;
        Ok(())
    }
}

/// Why a frame source failed. [`MemFrames`] never fails; sources over files or devices say
/// what went wrong.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("frame source failed: {0}")]
    Source(String),
}

// ---------------------------------------------------------------------------------------------
// Pacing
// ---------------------------------------------------------------------------------------------

/// A monotonic clock in nanoseconds that can wait.
pub trait Clock {
    fn now_ns(&self) -> u64;
    /// Returns once `now_ns() >= t` (at once when it already is).
    fn sleep_until_ns(&mut self, t: u64);
}

/// The real monotonic clock (`Instant`), counting from its creation.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    start: Instant,
}

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock {
            start: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
    fn sleep_until_ns(&mut self, t: u64) {
        loop {
            let now = self.now_ns();
            if now >= t {
                return;
            }
            std::thread::sleep(Duration::from_nanos(t - now));
        }
    }
}

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

// ---------------------------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------------------------

/// How many passes over the source.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Loops {
    Count(u64),
    /// Until stopped (a source with no frames still ends).
    Forever,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReplayConfig {
    pub loops: Loops,
    pub rate: Option<Rate>,
    /// Burst in the rate's unit; `None` for [`Rate::default_burst`].
    pub burst: Option<u64>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            loops: Loops::Count(1),
            rate: None,
            burst: None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ReplayStats {
    pub frames: u64,
    pub bytes: u64,
    /// Completed passes.
    pub passes: u64,
    /// Times pacing had to wait, and for how long in total.
    pub throttled: u64,
    pub waited_ns: u64,
}

/// Plays a [`FrameSource`] `loops` times, paced.
#[derive(Debug)]
pub struct Replay<S, C = MonotonicClock> {
    src: S,
    clock: C,
    loops: Loops,
    pacer: Option<(Rate, TokenBucket)>,
    pass_frames: u64,
    done: bool,
    stats: ReplayStats,
}

impl<S: FrameSource> Replay<S, MonotonicClock> {
    pub fn new(src: S, cfg: ReplayConfig) -> Self {
        Replay::with_clock(src, cfg, MonotonicClock::new())
    }
}

impl<S: FrameSource, C: Clock> Replay<S, C> {
    pub fn with_clock(src: S, cfg: ReplayConfig, clock: C) -> Self {
        let pacer = cfg.rate.map(|rate| {
            let burst = cfg.burst.unwrap_or_else(|| rate.default_burst());
            (
                rate,
                TokenBucket::new(rate.per_sec(), burst, clock.now_ns()),
            )
        });
        Replay {
            src,
            clock,
            loops: cfg.loops,
            pacer,
            pass_frames: 0,
            done: cfg.loops == Loops::Count(0),
            stats: ReplayStats::default(),
        }
    }

    /// The next frame, after waiting for the pacer; `None` when all passes are done. After an
    /// error the replay ends.
    pub fn next_frame(&mut self) -> Option<Result<&[u8], ReplayError>> {
        if self.done {
            return None;
        }
        loop {
            match self.src.advance() {
                Ok(true) => break,
                Ok(false) => {
                    self.stats.passes += 1;
                    let more = match self.loops {
                        Loops::Count(n) => self.stats.passes < n,
                        Loops::Forever => true,
                    };
                    if !more || self.pass_frames == 0 {
                        self.done = true;
                        return None;
                    }
                    self.pass_frames = 0;
                    if let Err(e) = self.src.rewind() {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        let len = self.src.frame().len();
        if let Some((rate, bucket)) = &mut self.pacer {
            let cost = rate.cost(len);
            loop {
                let now = self.clock.now_ns();
                match bucket.try_take(cost, now) {
                    Ok(()) => break,
                    Err(at) => {
                        self.stats.throttled += 1;
                        self.stats.waited_ns += at.saturating_sub(now);
                        self.clock.sleep_until_ns(at);
                    }
                }
            }
        }
        self.pass_frames += 1;
        self.stats.frames += 1;
        self.stats.bytes += len as u64;
        Some(Ok(self.src.frame()))
    }

    pub fn stats(&self) -> ReplayStats {
        self.stats
    }
    pub fn clock(&self) -> &C {
        &self.clock
    }
    pub fn clock_mut(&mut self) -> &mut C {
        &mut self.clock
    }
    pub fn source(&self) -> &S {
        &self.src
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that only moves when slept on (or advanced by the test).
    #[derive(Debug, Default)]
    struct FakeClock {
        now: u64,
        sleeps: u64,
    }

    impl Clock for FakeClock {
        fn now_ns(&self) -> u64 {
            self.now
        }
        fn sleep_until_ns(&mut self, t: u64) {
            self.sleeps += 1;
            self.now = self.now.max(t);
        }
    }

    fn frames(lens: &[usize]) -> MemFrames {
        MemFrames::new(lens.iter().enumerate().map(|(i, &n)| vec![i as u8; n]))
    }

    /// Emission times of every frame of a paced replay.
    fn schedule(src: MemFrames, cfg: ReplayConfig) -> Vec<u64> {
        let mut r = Replay::with_clock(src, cfg, FakeClock::default());
        let mut times = Vec::new();
        while let Some(f) = r.next_frame() {
            f.unwrap();
            times.push(r.clock().now);
        }
        times
    }

    fn paced(rate: Rate, burst: u64, loops: u64) -> ReplayConfig {
        ReplayConfig {
            loops: Loops::Count(loops),
            rate: Some(rate),
            burst: Some(burst),
        }
    }

    #[test]
    fn frames_per_second_spacing_is_exact() {
        let t = schedule(frames(&[60; 5]), paced(Rate::FramesPerSec(1000), 1, 1));
        assert_eq!(t, [0, 1_000_000, 2_000_000, 3_000_000, 4_000_000]);
    }

    #[test]
    fn non_divisible_rate_has_no_drift() {
        let t = schedule(frames(&[60; 4]), paced(Rate::FramesPerSec(3), 1, 1));
        assert_eq!(t, [0, 333_333_334, 666_666_667, 1_000_000_000]);
    }

    #[test]
    fn bits_per_second_charges_frame_bits() {
        // 1 Mb/s: a 125-byte frame is 1 ms of tokens, a 250-byte frame 2 ms. Burst 1000 bits.
        let t = schedule(
            frames(&[125, 250, 125, 125]),
            paced(Rate::BitsPerSec(1_000_000), 1000, 1),
        );
        // Frame 0 empties the bucket; frame 1 (2000 bits > burst) waits for 2000 bits.
        assert_eq!(t, [0, 2_000_000, 3_000_000, 4_000_000]);
    }

    #[test]
    fn burst_goes_at_once_then_paces() {
        let t = schedule(frames(&[60; 6]), paced(Rate::FramesPerSec(1000), 3, 1));
        assert_eq!(t, [0, 0, 0, 1_000_000, 2_000_000, 3_000_000]);
    }

    #[test]
    fn idle_time_refills_at_most_the_burst() {
        let mut r = Replay::with_clock(
            frames(&[60; 8]),
            paced(Rate::FramesPerSec(1000), 2, 1),
            FakeClock::default(),
        );
        r.next_frame().unwrap().unwrap();
        r.next_frame().unwrap().unwrap();
        r.clock_mut().now = 10_000_000_000; // 10 s idle: 10000 tokens' worth, capped at 2.
        let mut times = Vec::new();
        while let Some(f) = r.next_frame() {
            f.unwrap();
            times.push(r.clock().now - 10_000_000_000);
        }
        assert_eq!(times, [0, 0, 1_000_000, 2_000_000, 3_000_000, 4_000_000]);
        let s = r.stats();
        assert_eq!(
            (s.frames, s.bytes, s.passes, s.throttled, s.waited_ns),
            (8, 480, 1, 4, 4_000_000)
        );
        assert_eq!(r.clock().sleeps, 4);
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
    fn unpaced_replay_loops_in_order() {
        let mut r = Replay::with_clock(
            frames(&[1, 2, 3]),
            ReplayConfig {
                loops: Loops::Count(2),
                ..Default::default()
            },
            FakeClock::default(),
        );
        let mut got = Vec::new();
        while let Some(f) = r.next_frame() {
            got.push(f.unwrap().to_vec());
        }
        assert_eq!(
            got,
            [
                vec![0],
                vec![1, 1],
                vec![2, 2, 2],
                vec![0],
                vec![1, 1],
                vec![2, 2, 2]
            ]
        );
        assert_eq!(r.stats().passes, 2);
        assert_eq!(r.stats().throttled, 0);
        assert!(r.next_frame().is_none());
    }

    #[test]
    fn zero_loops_and_empty_sources_end() {
        let cfg = |loops| ReplayConfig {
            loops,
            ..Default::default()
        };
        let mut r = Replay::with_clock(frames(&[1]), cfg(Loops::Count(0)), FakeClock::default());
        assert!(r.next_frame().is_none());
        let mut r = Replay::with_clock(frames(&[]), cfg(Loops::Forever), FakeClock::default());
        assert!(r.next_frame().is_none());
        assert_eq!(r.stats().passes, 1);
        let mut r = Replay::with_clock(frames(&[1, 2]), cfg(Loops::Forever), FakeClock::default());
        let lens: Vec<usize> = (0..7)
            .map(|_| r.next_frame().unwrap().unwrap().len())
            .collect();
        assert_eq!(lens, [1, 2, 1, 2, 1, 2, 1]);
        assert_eq!(r.stats().passes, 3);
    }

    /// A source that fails on its second frame.
    struct Failing(u32);
    impl FrameSource for Failing {
        fn advance(&mut self) -> Result<bool, ReplayError> {
            self.0 += 1;
            if self.0 == 2 {
                return Err(ReplayError::Source("device gone".into()));
            }
            Ok(true)
        }
        fn frame(&self) -> &[u8] {
            &[7]
        }
        fn rewind(&mut self) -> Result<(), ReplayError> {
            Ok(())
        }
    }

    #[test]
    fn an_error_ends_the_replay() {
        let mut r = Replay::with_clock(
            Failing(0),
            ReplayConfig {
                loops: Loops::Forever,
                ..Default::default()
            },
            FakeClock::default(),
        );
        assert_eq!(r.next_frame().unwrap().unwrap(), &[7]);
        assert!(matches!(r.next_frame(), Some(Err(ReplayError::Source(_)))));
        assert!(r.next_frame().is_none());
        assert_eq!(r.stats().frames, 1);
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

    #[test]
    fn monotonic_clock_sleeps_until() {
        let mut c = MonotonicClock::new();
        let a = c.now_ns();
        c.sleep_until_ns(a + 200_000);
        assert!(c.now_ns() >= a + 200_000);
        c.sleep_until_ns(0); // in the past: returns at once
    }
}
