//! Replay of captured frames: a [`FrameSource`] (a pcap/pcapng file read with pcap-file, or
//! frames in memory from any reader), played N times or forever, optionally paced by a token
//! bucket on a monotonic [`Clock`].
//!
//! Only Ethernet captures are replayed: a frame of another link type is a
//! [`ReplayError::UnsupportedLinkType`]. To replay other link types, convert the frames to
//! Ethernet first (the host crate's capture reader does) and feed them through [`MemFrames`].
//!
//! Pacing: a rate in frames/s or bits/s (frame bytes x 8; no preamble or inter-frame gap) and a
//! burst size in the same unit. The bucket starts full; it refills continuously at the rate and
//! holds at most the burst (or one frame's cost, if larger; plus one nanosecond of refill, so
//! rounded wake-ups lose nothing). Arithmetic is in integer
//! nano-tokens, so a schedule has no drift: 3 frames/s puts the fourth frame at exactly 1 s.
//! The real clock sleeps with the OS timer (tens of microseconds of slack); at high rates
//! choose a burst of at least `rate x 100 us` so the slack is absorbed, not lost.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::{ENHANCED_PACKET_BLOCK, PACKET_BLOCK, SIMPLE_PACKET_BLOCK};
use pcap_file::pcapng::PcapNgReader;
use pcap_file::{DataLink, Endianness};

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

/// Why a capture cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a pcap or pcapng file (starts with {magic:02x?})", path.display())]
    NotPcap { path: PathBuf, magic: Vec<u8> },
    #[error("{}: {source}", path.display())]
    Pcap {
        path: PathBuf,
        source: pcap_file::PcapError,
    },
    #[error(
        "{}: frame {frame}: link type {link:?} is not Ethernet (convert it to Ethernet first)",
        path.display()
    )]
    UnsupportedLinkType {
        path: PathBuf,
        frame: u64,
        link: DataLink,
    },
    #[error("{}: frame {frame}: malformed pcapng packet block (type {block_type})", path.display())]
    BadBlock {
        path: PathBuf,
        frame: u64,
        block_type: u32,
    },
    #[error("{}: frame {frame}: interface {interface} has no description block", path.display())]
    UnknownInterface {
        path: PathBuf,
        frame: u64,
        interface: u32,
    },
}

enum Reader {
    Pcap(PcapReader<BufReader<File>>),
    PcapNg(PcapNgReader<BufReader<File>>),
}

/// A pcap or pcapng file, streamed (the format is detected from the magic number, not the
/// name). Frames are copied into one reused buffer; [`FrameSource::rewind`] reopens the file.
pub struct PcapSource {
    path: PathBuf,
    reader: Reader,
    buf: Vec<u8>,
    /// Frames of the current pass read so far.
    index: u64,
    /// Frames whose captured length was smaller than their original length.
    truncated: u64,
}

impl std::fmt::Debug for PcapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PcapSource")
            .field("path", &self.path)
            .field("index", &self.index)
            .field("truncated", &self.truncated)
            .finish_non_exhaustive()
    }
}

const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

impl PcapSource {
    pub fn open(path: impl AsRef<Path>) -> Result<PcapSource, ReplayError> {
        let path = path.as_ref().to_path_buf();
        let reader = Self::open_reader(&path)?;
        Ok(PcapSource {
            path,
            reader,
            buf: Vec::new(),
            index: 0,
            truncated: 0,
        })
    }

    fn open_reader(path: &Path) -> Result<Reader, ReplayError> {
        let io = |source| ReplayError::Io {
            path: path.to_path_buf(),
            source,
        };
        let pcap = |source| ReplayError::Pcap {
            path: path.to_path_buf(),
            source,
        };
        let mut magic = Vec::with_capacity(4);
        File::open(path)
            .map_err(io)?
            .take(4)
            .read_to_end(&mut magic)
            .map_err(io)?;
        let file = BufReader::with_capacity(1 << 16, File::open(path).map_err(io)?);
        if magic == PCAPNG_MAGIC {
            return Ok(Reader::PcapNg(PcapNgReader::new(file).map_err(pcap)?));
        }
        if !PCAP_MAGICS.iter().any(|m| *m == magic[..]) {
            return Err(ReplayError::NotPcap {
                path: path.to_path_buf(),
                magic,
            });
        }
        let r = PcapReader::new(file).map_err(pcap)?;
        let link = r.header().datalink;
        if link != DataLink::ETHERNET {
            return Err(ReplayError::UnsupportedLinkType {
                path: path.to_path_buf(),
                frame: 0,
                link,
            });
        }
        Ok(Reader::Pcap(r))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames read so far (over all passes) whose captured length was below the original.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    fn check_link(&self, link: DataLink) -> Result<(), ReplayError> {
        if link == DataLink::ETHERNET {
            Ok(())
        } else {
            Err(ReplayError::UnsupportedLinkType {
                path: self.path.clone(),
                frame: self.index,
                link,
            })
        }
    }
}

impl FrameSource for PcapSource {
    fn advance(&mut self) -> Result<bool, ReplayError> {
        let pcap = |path: &Path, source| ReplayError::Pcap {
            path: path.to_path_buf(),
            source,
        };
        match &mut self.reader {
            Reader::Pcap(r) => match r.next_packet() {
                None => return Ok(false),
                Some(Err(e)) => return Err(pcap(&self.path, e)),
                Some(Ok(p)) => {
                    self.buf.clear();
                    self.buf.extend_from_slice(&p.data);
                    if (p.orig_len as usize) > p.data.len() {
                        self.truncated += 1;
                    }
                }
            },
            Reader::PcapNg(r) => loop {
                let big = r.section().endianness == Endianness::Big;
                let (interface, orig_len, len) = match r.next_raw_block() {
                    None => return Ok(false),
                    Some(Err(e)) => return Err(pcap(&self.path, e)),
                    Some(Ok(b)) => match parse_packet_block(b.type_, &b.body, big) {
                        PacketBlock::NotPacket => continue,
                        PacketBlock::Bad => {
                            return Err(ReplayError::BadBlock {
                                path: self.path.clone(),
                                frame: self.index,
                                block_type: b.type_,
                            })
                        }
                        PacketBlock::Packet {
                            interface,
                            orig_len,
                            data,
                        } => {
                            self.buf.clear();
                            self.buf.extend_from_slice(&b.body[data]);
                            (interface, orig_len, self.buf.len())
                        }
                    },
                };
                let link = match r.interfaces().get(interface as usize) {
                    Some(i) => i.linktype,
                    None => {
                        return Err(ReplayError::UnknownInterface {
                            path: self.path.clone(),
                            frame: self.index,
                            interface,
                        })
                    }
                };
                if orig_len as usize > len {
                    self.truncated += 1;
                }
                self.check_link(link)?;
                break;
            },
        }
        self.index += 1;
        Ok(true)
    }

    fn frame(&self) -> &[u8] {
        &self.buf
    }

    fn rewind(&mut self) -> Result<(), ReplayError> {
        self.reader = Self::open_reader(&self.path)?;
        self.buf.clear();
        self.index = 0;
        Ok(())
    }
}

enum PacketBlock {
    NotPacket,
    Bad,
    Packet {
        interface: u32,
        orig_len: u32,
        data: std::ops::Range<usize>,
    },
}

/// Finds the packet data in the body of a pcapng packet block (enhanced, simple or obsolete
/// packet block) without parsing its options, so an odd option (a comment that is not UTF-8)
/// cannot stop a replay.
fn parse_packet_block(block_type: u32, body: &[u8], big: bool) -> PacketBlock {
    let word = |off: usize| -> Option<u32> {
        let b: [u8; 4] = body.get(off..off + 4)?.try_into().ok()?;
        Some(if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let parsed = match block_type {
        // Interface id (4), timestamp (8), captured length (4), original length (4), data.
        ENHANCED_PACKET_BLOCK => (|| {
            let cap = word(12)? as usize;
            let data = 20..20usize.checked_add(cap)?;
            body.get(data.clone())?;
            Some((word(0)?, word(16)?, data))
        })(),
        // Original length (4), data (the rest, up to the original length; padded to 4).
        SIMPLE_PACKET_BLOCK => (|| {
            let orig = word(0)?;
            let data = 4..4 + (orig as usize).min(body.len().saturating_sub(4));
            Some((0, orig, data))
        })(),
        // Interface id (2), drops (2), timestamp (8), captured length (4), original length (4).
        PACKET_BLOCK => (|| {
            let id = word(0)?;
            let interface = if big { id >> 16 } else { id & 0xffff };
            let cap = word(12)? as usize;
            let data = 20..20usize.checked_add(cap)?;
            body.get(data.clone())?;
            Some((interface, word(16)?, data))
        })(),
        _ => return PacketBlock::NotPacket,
    };
    match parsed {
        Some((interface, orig_len, data)) => PacketBlock::Packet {
            interface,
            orig_len,
            data,
        },
        None => PacketBlock::Bad,
    }
}

/// Reads every frame of an Ethernet pcap/pcapng file into memory.
pub fn load(path: impl AsRef<Path>) -> Result<MemFrames, ReplayError> {
    let mut src = PcapSource::open(path)?;
    let mut frames = Vec::new();
    while src.advance()? {
        frames.push(src.frame().to_vec());
    }
    Ok(MemFrames::new(frames))
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
                return Err(ReplayError::NotPcap {
                    path: "x".into(),
                    magic: vec![],
                });
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
        assert!(matches!(
            r.next_frame(),
            Some(Err(ReplayError::NotPcap { .. }))
        ));
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

    fn packet(b: PacketBlock) -> Option<(u32, u32, std::ops::Range<usize>)> {
        match b {
            PacketBlock::Packet {
                interface,
                orig_len,
                data,
            } => Some((interface, orig_len, data)),
            _ => None,
        }
    }

    #[test]
    fn pcapng_packet_blocks_are_bounds_checked() {
        // EPB, little-endian: interface 1, timestamp, captured 5, original 9, 5 bytes + pad.
        let mut epb = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0];
        epb.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(
            packet(parse_packet_block(ENHANCED_PACKET_BLOCK, &epb, false)),
            Some((1, 9, 20..25))
        );
        // A captured length past the body, or one that overflows, is Bad (never a panic).
        epb[12] = 9;
        assert!(matches!(
            parse_packet_block(ENHANCED_PACKET_BLOCK, &epb, false),
            PacketBlock::Bad
        ));
        epb[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_packet_block(ENHANCED_PACKET_BLOCK, &epb, false),
            PacketBlock::Bad
        ));
        assert!(matches!(
            parse_packet_block(ENHANCED_PACKET_BLOCK, &epb[..10], false),
            PacketBlock::Bad
        ));
        // Obsolete packet block, big-endian: interface 2, drops 7.
        let mut pb = vec![
            0, 2, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 9, 9, 9, 0,
        ];
        assert_eq!(
            packet(parse_packet_block(PACKET_BLOCK, &pb, true)),
            Some((2, 3, 20..23))
        );
        pb.truncate(22);
        assert!(matches!(
            parse_packet_block(PACKET_BLOCK, &pb, true),
            PacketBlock::Bad
        ));
        // Simple packet block: the data is the rest, capped at the original length.
        let spb = [6, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0];
        assert_eq!(
            packet(parse_packet_block(SIMPLE_PACKET_BLOCK, &spb, false)),
            Some((0, 6, 4..10))
        );
        let spb = [60, 0, 0, 0, 1, 2, 3, 4];
        assert_eq!(
            packet(parse_packet_block(SIMPLE_PACKET_BLOCK, &spb, false)),
            Some((0, 60, 4..8))
        );
        assert!(matches!(
            parse_packet_block(SIMPLE_PACKET_BLOCK, &[1], false),
            PacketBlock::Bad
        ));
        assert!(matches!(
            parse_packet_block(4, &spb, false),
            PacketBlock::NotPacket
        ));
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
