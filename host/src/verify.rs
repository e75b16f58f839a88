//! End-to-end verification: every delivered frame is checked against the traffic source,
//! regenerated (or re-read) by the host independently of anything the firmware wrote.
//!
//! The host knows, for each frame of the source, everything the NIC must do with it: which
//! queue RSS steers it to (Toeplitz over the outer tuple with the key the host itself set,
//! computed here with an independent bit-serial implementation), whether it is split and where,
//! how many header bytes land in the header buffer. Completions of one queue arrive in wire
//! order, and the NIC only ever *drops* frames (backpressure, overflow), never reorders or
//! invents them. So per queue the delivered frames must be an ordered subsequence of the
//! expected frames steered to that queue: [`QueueVerifier`] matches them greedily (frame
//! length, header length, split flag and every header byte), then compares **every payload
//! byte** in device memory with the payload on the wire. Skipped frames are drops; at the end
//! `sent == matched + dropped` must hold exactly per queue, and `dropped` must equal the NIC's
//! own drop counters. Anything else is a failure naming the first differing frame and offset.

use crate::token::Rx;
use splitrx_shared::abi::{rx_flags, MIN_FRAME, RSS_KEY_LEN};
use splitrx_shared::split::{split, FrameClass, SplitConfig, SplitResult};

/// The key the host programs with SetRss (Microsoft's RSS specification key).
pub const RSS_KEY: [u8; RSS_KEY_LEN] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// Toeplitz hash, bit by bit (the definition in Microsoft's RSS specification).
pub fn toeplitz(key: &[u8; RSS_KEY_LEN], input: &[u8]) -> u32 {
    let mut h = 0u32;
    // The 32-bit window of the key starting at the current input bit.
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    let mut next_key_bit = 32usize;
    for &b in input {
        for bit in (0..8).rev() {
            if b >> bit & 1 != 0 {
                h ^= window;
            }
            let kb = key
                .get(next_key_bit / 8)
                .map_or(0, |k| k >> (7 - next_key_bit % 8) & 1);
            window = window << 1 | kb as u32;
            next_key_bit += 1;
        }
    }
    h
}

/// The RSS hash input of a frame: outer source and destination address, plus the ports for
/// TCP/UDP/RoCE frames that are not tunnelled (fragments and other protocols: addresses only;
/// non-IP: empty).
pub fn rss_input(frame: &[u8], r: &SplitResult) -> Vec<u8> {
    let mut v = Vec::with_capacity(36);
    let Some(l3) = r.outer_l3_offset.map(|o| o as usize) else {
        return v;
    };
    let addrs = match r.outer_ip_version {
        4 => frame.get(l3 + 12..l3 + 20),
        6 => frame.get(l3 + 8..l3 + 40),
        _ => None,
    };
    let Some(addrs) = addrs else { return v };
    v.extend_from_slice(addrs);
    if r.tunnel.is_none()
        && matches!(
            r.class,
            FrameClass::Tcp | FrameClass::Udp | FrameClass::Roce
        )
    {
        if let Some(p) = r
            .l4_offset
            .and_then(|l4| frame.get(l4 as usize..l4 as usize + 4))
        {
            v.extend_from_slice(p);
        }
    }
    v
}

/// What the NIC must do with one frame of the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedFrame {
    /// Index of the frame in the source period.
    pub index: u32,
    off: usize,
    pub len: u32,
    pub queue: u16,
    pub class: FrameClass,
    pub split: bool,
    pub pay_off: u32,
    pub pay_len: u32,
    /// Bytes in the header buffer.
    pub hdr_len: u32,
    pub truncated: bool,
    /// The NIC must drop it (headers longer than a header buffer, payload longer than a
    /// payload buffer).
    pub overflow: bool,
    /// Shorter than an Ethernet header: dropped at the MAC, steered nowhere.
    pub runt: bool,
}

/// Queue parameters the expectation depends on.
#[derive(Clone, Copy, Debug)]
pub struct NicParams {
    pub queues: u16,
    pub hds_thresh: u32,
    pub hdr_buf_size: u32,
    pub pay_buf_size: u32,
}

/// The source's frames (one period; the wire repeats it) and what must happen to each.
#[derive(Debug)]
pub struct Expected {
    data: Vec<u8>,
    pub frames: Vec<ExpectedFrame>,
    /// Per queue: indices of the frames steered to it, in wire order.
    pub per_queue: Vec<Vec<u32>>,
    /// Indices of the runts (dropped at the MAC before steering).
    pub runts: Vec<u32>,
}

impl Expected {
    pub fn new<F: AsRef<[u8]>>(frames: &[F], p: &NicParams) -> Expected {
        let cfg = SplitConfig {
            hds_thresh: 0,
            verify_icrc: true,
        };
        let hdr_cap = p.hdr_buf_size.min(u16::MAX as u32);
        let queues = p.queues.max(1);
        let mut data = Vec::new();
        let mut out = Vec::with_capacity(frames.len());
        let mut per_queue = vec![Vec::new(); queues as usize];
        let mut runts = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let f = f.as_ref();
            if f.len() < MIN_FRAME {
                out.push(ExpectedFrame {
                    index: i as u32,
                    off: data.len(),
                    len: f.len() as u32,
                    queue: 0,
                    class: FrameClass::Malformed,
                    split: false,
                    pay_off: 0,
                    pay_len: 0,
                    hdr_len: 0,
                    truncated: false,
                    overflow: false,
                    runt: true,
                });
                runts.push(i as u32);
                data.extend_from_slice(f);
                continue;
            }
            let r = split(f, &cfg);
            let hash = toeplitz(&RSS_KEY, &rss_input(f, &r));
            let queue = (hash % queues as u32) as u16;
            let flen = f.len() as u32;
            let (mut split_it, mut po, mut pl) = (false, 0, 0);
            if r.split {
                if let (Some(o), Some(l)) = (r.payload_offset, r.payload_len) {
                    if o as u64 + l as u64 <= flen as u64 && l > p.hds_thresh {
                        (split_it, po, pl) = (true, o, l);
                    }
                }
            }
            let (hdr_len, truncated, overflow) = if split_it {
                (po, false, po > hdr_cap || pl > p.pay_buf_size)
            } else {
                (flen.min(hdr_cap), flen > hdr_cap, false)
            };
            out.push(ExpectedFrame {
                index: i as u32,
                off: data.len(),
                len: flen,
                queue,
                class: r.class,
                split: split_it,
                pay_off: po,
                pay_len: pl,
                hdr_len,
                truncated,
                overflow,
                runt: false,
            });
            per_queue[queue as usize].push(i as u32);
            data.extend_from_slice(f);
        }
        Expected {
            data,
            frames: out,
            per_queue,
            runts,
        }
    }

    /// The bytes of frame `e`.
    pub fn bytes(&self, e: &ExpectedFrame) -> &[u8] {
        &self.data[e.off..e.off + e.len as usize]
    }

    /// Frames per queue among the first `sent` frames of the (repeating) source.
    pub fn sent_per_queue(&self, sent: u64) -> Vec<u64> {
        self.per_queue
            .iter()
            .map(|l| self.sent_of(l, sent))
            .collect()
    }

    /// Runts among the first `sent` frames of the (repeating) source.
    pub fn sent_runts(&self, sent: u64) -> u64 {
        self.sent_of(&self.runts, sent)
    }

    /// How many of the first `sent` frames of the repeating source are in `list`.
    fn sent_of(&self, list: &[u32], sent: u64) -> u64 {
        let k = self.frames.len() as u64;
        if k == 0 {
            return 0;
        }
        let (passes, rest) = (sent / k, sent % k);
        passes * list.len() as u64 + list.iter().filter(|&&i| (i as u64) < rest).count() as u64
    }
}

/// Verdict for one queue at the end of a run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QueueVerdict {
    pub queue: u16,
    /// Frames of the source steered to this queue.
    pub sent: u64,
    /// Delivered frames matched to a source frame, header and payload identical.
    pub matched: u64,
    /// `sent - matched`.
    pub dropped: u64,
    /// The NIC's drop counters for the queue.
    pub nic_dropped: u64,
    pub payload_bytes_checked: u64,
    pub header_bytes_checked: u64,
    /// The first failure, if any.
    pub failure: Option<String>,
}

impl QueueVerdict {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
            && self.matched + self.dropped == self.sent
            && self.dropped == self.nic_dropped
    }
}

/// Matches one queue's delivered frames against the source (see the module docs).
#[derive(Debug)]
pub struct QueueVerifier {
    exp: std::sync::Arc<Expected>,
    queue: u16,
    /// Position in the queue's (repeating) expected stream.
    pos: u64,
    matched: u64,
    delivered: u64,
    pay_bytes: u64,
    hdr_bytes: u64,
    failure: Option<String>,
    /// Reads device memory the host mapping cannot (see [`QueueVerifier::with_reader`]).
    reader: Option<std::sync::Arc<dyn crate::seam::DeviceMemory>>,
    scratch: (Vec<u8>, Vec<u8>),
}

/// A token's bytes: through the host mapping when it is readable, else through `reader`.
fn token_bytes<'a>(
    t: &'a crate::token::Token,
    reader: Option<&dyn crate::seam::DeviceMemory>,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], String> {
    if let Some(b) = t.bytes() {
        return Ok(b);
    }
    let Some(r) = reader else {
        return Err("is not host-readable and the target cannot read device memory".into());
    };
    scratch.clear();
    scratch.resize(t.len() as usize, 0);
    r.read(t.location().bus_addr, scratch)
        .map_err(|e| format!("could not be read from device memory: {e}"))?;
    Ok(scratch)
}

impl QueueVerifier {
    pub fn new(exp: std::sync::Arc<Expected>, queue: u16) -> QueueVerifier {
        QueueVerifier {
            exp,
            queue,
            pos: 0,
            matched: 0,
            delivered: 0,
            pay_bytes: 0,
            hdr_bytes: 0,
            failure: None,
            reader: None,
            scratch: (Vec::new(), Vec::new()),
        }
    }

    /// Reads payloads (and headers) the host cannot read through its mapping with `reader`
    /// (a real GPU BAR is not host-readable; the target says how to read it, if it can).
    pub fn with_reader(
        mut self,
        reader: Option<std::sync::Arc<dyn crate::seam::DeviceMemory>>,
    ) -> QueueVerifier {
        self.reader = reader;
        self
    }

    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }
    pub fn matched(&self) -> u64 {
        self.matched
    }

    fn fail(&mut self, msg: String) {
        if self.failure.is_none() {
            self.failure = Some(msg);
        }
    }

    /// Checks one delivered frame.
    pub fn check(&mut self, rx: &Rx) {
        self.delivered += 1;
        let mut scratch = std::mem::take(&mut self.scratch);
        self.check_frame(rx, &mut scratch);
        self.scratch = scratch;
    }

    fn check_frame(&mut self, rx: &Rx, scratch: &mut (Vec<u8>, Vec<u8>)) {
        let c = &rx.completion;
        let exp = self.exp.clone();
        let list = &exp.per_queue[self.queue as usize];
        let reader = self.reader.clone();
        let hdr = match rx
            .header
            .as_ref()
            .map(|t| token_bytes(t, reader.as_deref(), &mut scratch.0))
        {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                self.fail(format!(
                    "queue {}: the header of delivered frame #{} {e}",
                    self.queue, self.delivered
                ));
                return;
            }
            None => {
                self.fail(format!(
                    "queue {}: delivered frame #{} has no header",
                    self.queue, self.delivered
                ));
                return;
            }
        };
        if list.is_empty() {
            self.fail(format!(
                "queue {}: frame delivered, but no source frame steers here",
                self.queue
            ));
            return;
        }
        let split = c.flags.get() & rx_flags::SPLIT != 0;
        let start = self.pos;
        let e = loop {
            if self.pos - start > list.len() as u64 {
                self.pos = start;
                self.fail(format!(
                    "queue {}: delivered frame #{} (frame_len {}, hdr_len {}) matches no source frame in order",
                    self.queue, self.delivered, c.frame_len.get(), c.hdr_len.get()
                ));
                return;
            }
            let e = &exp.frames[list[(self.pos % list.len() as u64) as usize] as usize];
            if !e.overflow
                && e.len == c.frame_len.get()
                && e.hdr_len == c.hdr_len.get() as u32
                && e.split == split
                && exp.bytes(e)[..e.hdr_len as usize] == *hdr
            {
                break *e;
            }
            self.pos += 1;
        };
        let at = self.pos;
        self.pos += 1;
        self.matched += 1;
        self.hdr_bytes += e.hdr_len as u64;
        let truncated = c.flags.get() & rx_flags::HDR_TRUNCATED != 0;
        if c.class != e.class as u8 || truncated != e.truncated {
            self.fail(format!(
                "queue {}: source frame {} (stream position {at}): class {} / truncated {truncated}, expected {:?} / {}",
                self.queue, e.index, c.class, e.class, e.truncated
            ));
        }
        if !split {
            return;
        }
        let wire = &exp.bytes(&e)[e.pay_off as usize..(e.pay_off + e.pay_len) as usize];
        let dev = match rx
            .payload
            .as_ref()
            .map(|t| token_bytes(t, reader.as_deref(), &mut scratch.1))
        {
            Some(Ok(d)) => Some(d),
            Some(Err(err)) => {
                self.fail(format!(
                    "queue {}: source frame {} (stream position {at}): the payload {err}",
                    self.queue, e.index
                ));
                return;
            }
            None => None,
        };
        match dev {
            Some(dev) if dev.len() == wire.len() => {
                if dev != wire {
                    let off = dev.iter().zip(wire).position(|(a, b)| a != b).unwrap_or(0);
                    self.fail(format!(
                        "queue {}: source frame {} (stream position {at}): payload byte {off} differs: device {:#04x}, wire {:#04x}",
                        self.queue, e.index, dev[off], wire[off]
                    ));
                } else {
                    self.pay_bytes += wire.len() as u64;
                }
            }
            other => self.fail(format!(
                "queue {}: source frame {} (stream position {at}): payload of {} bytes expected, device has {:?}",
                self.queue,
                e.index,
                wire.len(),
                other.map(|d| d.len())
            )),
        }
    }

    /// The verdict once `sent` source frames were steered to this queue and the NIC counted
    /// `nic_dropped` drops on it.
    pub fn finish(&self, sent: u64, nic_dropped: u64) -> QueueVerdict {
        let mut failure = self.failure.clone();
        if self.pos > sent && failure.is_none() {
            failure = Some(format!(
                "queue {}: matched past the end of the source ({} > {sent} frames)",
                self.queue, self.pos
            ));
        }
        let dropped = sent.saturating_sub(self.matched);
        if failure.is_none() && dropped != nic_dropped {
            failure = Some(format!(
                "queue {}: {dropped} frames missing, but the NIC counted {nic_dropped} drops",
                self.queue
            ));
        }
        QueueVerdict {
            queue: self.queue,
            sent,
            matched: self.matched,
            dropped,
            nic_dropped,
            payload_bytes_checked: self.pay_bytes,
            header_bytes_checked: self.hdr_bytes,
            failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microsoft RSS specification, "Verifying the RSS Hash Calculation", IPv4 with TCP.
    #[test]
    fn toeplitz_matches_the_rss_spec_vectors() {
        type Case = ([u8; 4], u16, [u8; 4], u16, u32, u32);
        let cases: [Case; 3] = [
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
                [202, 188, 127, 2],
                1303,
                [153, 39, 163, 191],
                44251,
                0x5d1809c5,
                0x10e828a2,
            ),
        ];
        for (dst, dp, src, sp, h2, h4) in cases {
            let mut b = Vec::new();
            b.extend_from_slice(&src);
            b.extend_from_slice(&dst);
            assert_eq!(toeplitz(&RSS_KEY, &b), h2);
            b.extend_from_slice(&sp.to_be_bytes());
            b.extend_from_slice(&dp.to_be_bytes());
            assert_eq!(toeplitz(&RSS_KEY, &b), h4);
        }
    }
}
