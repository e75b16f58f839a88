//! The sim wire: what the sim MAC receives from.
//!
//! - [`Wire`]: a lending frame source the MAC pulls from (on the firmware thread);
//! - [`LoopWire`]: a list of frames (a capture, a generated workload) played over and over,
//!   optionally paced ([`crate::pace`]) and flow-controlled;
//! - [`FlowControl`] and [`Credit`]: a link partner honouring per-queue PAUSE, metered by the
//!   buffers the host has posted (the host queues report them through
//!   [`splitrx_host::queue::PostObserver`]; the host library itself knows nothing of this);
//! - [`DgramWire`]: a link to a real peer over UDP on loopback, one datagram per Ethernet frame
//!   in each direction (QEMU's `-netdev dgram` framing), so a peer in another process or a VM
//!   talks to the sim board's MAC; [`WireCtl::transmit`] is the transmit side of any MAC (the
//!   sim board's, the qemu-virt board's wire thread), and a link can be recorded in both
//!   directions ([`WireCtl::record`]) for whoever checks the bytes afterwards;
//! - [`WireCtl`]: start/stop and what was offered, for whoever drives the run.

use splitrx_host::queue::PostObserver;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Buffers a receiver has advertised for one queue: posted in total minus handed back by
/// resets (header, payload). The host queue updates it ([`PostObserver`]); the wire reads it.
#[derive(Debug, Default)]
pub struct Credit {
    hdr: AtomicI64,
    pay: AtomicI64,
}

impl Credit {
    /// (header, payload) buffers advertised.
    pub fn get(&self) -> (i64, i64) {
        (
            self.hdr.load(Ordering::Acquire),
            self.pay.load(Ordering::Acquire),
        )
    }
}

impl PostObserver for Credit {
    fn posted(&self, hdr: u32, pay: u32) {
        self.hdr.fetch_add(hdr as i64, Ordering::Release);
        self.pay.fetch_add(pay as i64, Ordering::Release);
    }
    fn reclaimed(&self, hdr: u32, pay: u32) {
        self.hdr.fetch_sub(hdr as i64, Ordering::Release);
        self.pay.fetch_sub(pay as i64, Ordering::Release);
    }
}

/// What the MAC receives from: a lending frame source.
pub trait Wire: Send {
    /// Moves to the next frame; `false` when there is none (yet, or any more: see
    /// [`Wire::finished`]).
    fn advance(&mut self) -> bool;
    /// The current frame (valid after `advance` returned `true`).
    fn frame(&self) -> &[u8];
    /// No frame will ever come again.
    fn finished(&self) -> bool;
}

/// Observable state of the wire, shared with whoever drives the run (progress bar, tests).
/// Not part of the datapath: the firmware never reads it.
#[derive(Debug, Default)]
pub struct WireCtl {
    /// The wire offers nothing until this is set (the host is still bringing queues up).
    pub start: AtomicBool,
    /// Stop offering frames (the wire ends after the current frame).
    pub stop: AtomicBool,
    /// Frames the MAC has handed to the firmware and got back (placed or dropped).
    pub offered: AtomicU64,
    /// Bytes of those frames.
    pub offered_bytes: AtomicU64,
    /// The wire ended and its last frame was released by the firmware.
    pub done: AtomicBool,
    /// What the firmware transmitted (RoCE ACKs, READ responses, CNPs), oldest first, for
    /// whoever plays the peer (or, on a recorded link, checks it): see [`FrameLog`].
    pub tx: std::sync::Mutex<FrameLog>,
    /// When the wire is a [`DgramWire`]: the socket and the peer transmitted frames go to
    /// (instead of the log).
    pub tx_link: std::sync::OnceLock<(std::net::UdpSocket, std::net::SocketAddr)>,
    /// Record the link: every frame a [`DgramWire`] receives is also logged in `rx`, and every
    /// frame sent to the linked peer in `tx` (bounded like any [`FrameLog`]). Set before the
    /// traffic starts; for checks of what crossed the link ([`WireCtl::take_rx`]).
    pub record: AtomicBool,
    /// Frames received from a recorded link, oldest first.
    pub rx: std::sync::Mutex<FrameLog>,
}

/// Frames logged and nobody took yet, bounded: beyond [`FrameLog::CAP`] frames the newest are
/// counted in `overflow` and dropped (a peer that never reads cannot grow it).
#[derive(Debug, Default)]
pub struct FrameLog {
    pub frames: std::collections::VecDeque<Vec<u8>>,
    /// Frames logged in all (kept or not).
    pub sent: u64,
    /// Frames dropped because nobody read the log.
    pub overflow: u64,
}

impl FrameLog {
    pub const CAP: usize = 1 << 16;

    /// Logs a copy of `frame` (or counts it in `overflow` when the log is full).
    pub fn push(&mut self, frame: &[u8]) {
        self.sent += 1;
        if self.frames.len() < Self::CAP {
            self.frames.push_back(frame.to_vec());
        } else {
            self.overflow += 1;
        }
    }
}

fn lock(m: &std::sync::Mutex<FrameLog>) -> std::sync::MutexGuard<'_, FrameLog> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WireCtl {
    /// Takes every transmitted frame logged so far.
    pub fn take_tx(&self) -> Vec<Vec<u8>> {
        lock(&self.tx).frames.drain(..).collect()
    }

    /// Takes every frame received from a recorded link so far (see [`WireCtl::record`]).
    pub fn take_rx(&self) -> Vec<Vec<u8>> {
        lock(&self.rx).frames.drain(..).collect()
    }

    /// Frames the recorded logs dropped because they were full (received, transmitted).
    pub fn record_overflow(&self) -> (u64, u64) {
        (lock(&self.rx).overflow, lock(&self.tx).overflow)
    }

    /// Hands a frame the MAC transmitted to the peer: one datagram to the linked peer (a
    /// [`DgramWire`]'s [`WireCtl::tx_link`]; also logged when the link is recorded), else the
    /// log ([`WireCtl::take_tx`]). `Err(WouldBlock)`: the link's socket buffer is full and the
    /// frame was not sent (the caller retries or drops it); any other socket error loses the
    /// frame, as a broken link would, and is `Ok`.
    pub fn transmit(&self, frame: &[u8]) -> std::io::Result<()> {
        match self.tx_link.get() {
            Some((sock, peer)) => match sock.send_to(frame, peer) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Err(e),
                _ => {
                    if self.record.load(Ordering::Relaxed) {
                        lock(&self.tx).push(frame);
                    }
                    Ok(())
                }
            },
            None => {
                lock(&self.tx).push(frame);
                Ok(())
            }
        }
    }
}

/// A wire that plays a list of frames (held in one flat buffer) over and over: a capture
/// replayed N times, or a generated workload. Optional pacing with a token bucket.
pub struct LoopWire {
    data: Vec<u8>,
    spans: Vec<(usize, usize)>,
    /// Frames to offer in total (`None`: until stopped).
    limit: Option<u64>,
    /// Frames sent so far, and the index of the next one in `spans`.
    next: u64,
    pos: usize,
    cur: (usize, usize),
    ctl: Arc<WireCtl>,
    pace: Option<(crate::pace::TokenBucket, crate::pace::Rate, Instant)>,
    /// Link-level flow control (see [`FlowControl`]).
    flow: Option<FlowControl>,
    /// Times the wire was held by flow control.
    pub paused: u64,
}

impl std::fmt::Debug for LoopWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopWire")
            .field("frames", &self.spans.len())
            .field("next", &self.next)
            .field("limit", &self.limit)
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl LoopWire {
    /// `frames` played in order, wrapping around, `limit` frames in total (`None` = forever).
    pub fn new<F: AsRef<[u8]>>(frames: &[F], limit: Option<u64>, ctl: Arc<WireCtl>) -> LoopWire {
        let total: usize = frames.iter().map(|f| f.as_ref().len()).sum();
        let mut data = Vec::with_capacity(total);
        let mut spans = Vec::with_capacity(frames.len());
        for f in frames {
            let f = f.as_ref();
            spans.push((data.len(), f.len()));
            data.extend_from_slice(f);
        }
        LoopWire {
            data,
            spans,
            limit,
            next: 0,
            pos: 0,
            cur: (0, 0),
            ctl,
            pace: None,
            flow: None,
            paused: 0,
        }
    }
    /// Lossless mode: the link partner honours per-queue flow control (see [`FlowControl`]).
    pub fn with_flow_control(mut self, flow: FlowControl) -> LoopWire {
        self.flow = Some(flow);
        self
    }
    /// Paces the wire at `rate` (token bucket with the rate's default burst).
    pub fn with_rate(mut self, rate: crate::pace::Rate) -> LoopWire {
        // 10 ms of burst: the firmware thread may yield its core for a scheduler tick while
        // idle, and the wire should catch up afterwards rather than lose the time.
        let burst = (rate.per_sec() / 100).max(rate.default_burst());
        let bucket = crate::pace::TokenBucket::new(rate.per_sec(), burst, 0);
        self.pace = Some((bucket, rate, Instant::now()));
        self
    }
}

impl Wire for LoopWire {
    #[inline]
    fn advance(&mut self) -> bool {
        if !self.ctl.start.load(Ordering::Acquire) || self.spans.is_empty() || self.finished() {
            return false;
        }
        let i = self.pos;
        // Flow control first (it only looks), then pacing (takes tokens), then the frame
        // claims its buffers: a frame held by either is not charged twice.
        if let Some(f) = &mut self.flow {
            if !f.admit(i) {
                self.paused += 1;
                return false;
            }
        }
        let span = self.spans[i];
        if let Some((bucket, rate, t0)) = &mut self.pace {
            let now = t0.elapsed().as_nanos() as u64;
            if bucket.try_take(rate.cost(span.1), now).is_err() {
                return false;
            }
        }
        if let Some(f) = &mut self.flow {
            f.claim(i);
        }
        self.cur = span;
        self.next += 1;
        self.pos += 1;
        if self.pos == self.spans.len() {
            self.pos = 0;
        }
        // The next frame's first lines into the cache while this one is processed: a NIC's
        // receive buffer is on-chip; this flat list of frames is in DRAM.
        prefetch(&self.data, self.spans[self.pos].0);
        true
    }
    #[inline]
    fn frame(&self) -> &[u8] {
        &self.data[self.cur.0..self.cur.0 + self.cur.1]
    }
    fn finished(&self) -> bool {
        self.spans.is_empty()
            || self.limit.is_some_and(|l| self.next >= l)
            || self.ctl.stop.load(Ordering::Relaxed)
    }
}

/// A hint to bring the two cache lines at `data[at..]` into the cache.
#[inline(always)]
fn prefetch(data: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = data.get(at..at + 128) {
        // SAFETY: a prefetch never faults and reads nothing architecturally; the addresses lie
        // inside `data` (checked by `get`).
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(p.as_ptr().cast());
            _mm_prefetch::<_MM_HINT_T0>(p.as_ptr().add(64).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}

/// Priority flow control as the link partner sees it (like 802.1Qbb PFC with one priority per
/// RX queue): a frame for queue `q` is sent only while the receiver has advertised room for it.
/// The receiver advertises, per queue, the number of header and payload buffers it has posted
/// in total (minus buffers handed back by resets); every frame sent to `q` may use one of each,
/// so `posted - sent >= low` guarantees the frame a buffer. Frames that use no buffer of a kind
/// (unsplit frames: no payload buffer; frames the NIC must drop: none) are tagged so.
pub struct FlowControl {
    /// Per frame of the wire's list: (queue, uses a header buffer, uses a payload buffer).
    pub tags: Vec<(u16, bool, bool)>,
    /// Per queue: what the receiver advertised (buffers posted minus buffers handed back by
    /// resets), kept up to date by the host queue through [`PostObserver`].
    pub credit: Vec<Arc<Credit>>,
    /// Minimum room kept.
    pub low: i64,
    used: Vec<(i64, i64)>,
    /// Last advertised values read (re-read only when they do not admit a frame).
    seen: Vec<(i64, i64)>,
    /// When the current pause began. A pause longer than [`PAUSE_MAX`] is given up (the frame
    /// is sent; if the NIC has no buffer it drops it, counted): like a PFC watchdog, so that a
    /// receiver that never advertises credit again (an application holding every buffer, or
    /// credit lost to frames dropped during a queue reset) cannot stall the link forever.
    paused_since: Option<Instant>,
    /// Pauses given up by the watchdog.
    pub watchdog: u64,
}

/// Longest flow-control pause before the watchdog sends anyway.
pub const PAUSE_MAX: Duration = Duration::from_millis(100);

impl std::fmt::Debug for FlowControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowControl")
            .field("low", &self.low)
            .field("used", &self.used)
            .finish()
    }
}

impl FlowControl {
    /// Flow control over the wire's frames `tags` (queue, uses a header buffer, uses a payload
    /// buffer), one credit per queue, keeping at least `low` buffers of room.
    pub fn new(tags: Vec<(u16, bool, bool)>, credit: Vec<Arc<Credit>>, low: i64) -> FlowControl {
        let queues = credit.len();
        FlowControl {
            tags,
            credit,
            low,
            used: vec![(0, 0); queues],
            seen: vec![(0, 0); queues],
            paused_since: None,
            watchdog: 0,
        }
    }
    #[inline]
    fn admit(&mut self, i: usize) -> bool {
        let Some(&(q, h, p)) = self.tags.get(i) else {
            return true;
        };
        let (Some(used), Some(seen)) = (self.used.get(q as usize), self.seen.get_mut(q as usize))
        else {
            return true;
        };
        let short =
            |s: &(i64, i64)| (h && s.0 - used.0 < self.low) || (p && s.1 - used.1 < self.low);
        if short(seen) {
            // Advertised credit only grows (resets aside): re-read it only when needed.
            *seen = self.credit.get(q as usize).map_or((0, 0), |c| c.get());
            if short(seen) {
                let since = *self.paused_since.get_or_insert_with(Instant::now);
                if since.elapsed() < PAUSE_MAX {
                    return false;
                }
                self.watchdog += 1;
            }
        }
        self.paused_since = None;
        true
    }
    /// Frame `i` is sent: it may use one buffer of each kind it is tagged with.
    #[inline]
    fn claim(&mut self, i: usize) {
        let Some(&(q, h, p)) = self.tags.get(i) else {
            return;
        };
        if let Some(used) = self.used.get_mut(q as usize) {
            used.0 += h as i64;
            used.1 += p as i64;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A loop wire over `frames` and its control.
    pub(crate) fn wire(frames: &[&[u8]], limit: Option<u64>) -> (LoopWire, Arc<WireCtl>) {
        let ctl = Arc::new(WireCtl::default());
        (LoopWire::new(frames, limit, ctl.clone()), ctl)
    }

    #[test]
    fn loop_wire_waits_for_start_repeats_and_ends_at_the_limit() {
        let (mut w, ctl) = wire(&[b"aa", b"bbb"], Some(5));
        assert!(!w.advance(), "nothing before start");
        assert!(!w.finished());
        ctl.start.store(true, Ordering::Release);
        let mut got = Vec::new();
        while w.advance() {
            got.push(w.frame().to_vec());
        }
        assert_eq!(got, [&b"aa"[..], b"bbb", b"aa", b"bbb", b"aa"]);
        assert!(w.finished());
        let (mut w, ctl) = wire(&[b"x"], None);
        ctl.start.store(true, Ordering::Release);
        assert!(w.advance() && w.advance());
        ctl.stop.store(true, Ordering::Relaxed);
        assert!(!w.advance() && w.finished());
    }

    #[test]
    fn flow_control_sends_only_frames_with_a_posted_buffer() {
        // Frame 0 -> queue 0 (header + payload), frame 1 -> queue 1 (header only).
        let credit = vec![Arc::new(Credit::default()), Arc::new(Credit::default())];
        let fc = FlowControl::new(vec![(0, true, true), (1, true, false)], credit.clone(), 1);
        let (w, ctl) = wire(&[b"q0", b"q1"], None);
        let mut w = w.with_flow_control(fc);
        ctl.start.store(true, Ordering::Release);
        assert!(!w.advance(), "queue 0 has no buffer");
        credit[0].posted(1, 0);
        assert!(
            !w.advance(),
            "queue 0 has a header buffer but no payload buffer"
        );
        credit[0].posted(0, 1);
        assert!(w.advance() && w.frame() == b"q0");
        assert!(!w.advance(), "queue 1 has no buffer");
        credit[1].posted(1, 0);
        assert!(w.advance() && w.frame() == b"q1");
        assert!(
            !w.advance(),
            "queue 0's single buffer was claimed by frame 0"
        );
        assert!(w.paused >= 4);
    }

    #[test]
    fn flow_control_watchdog_gives_up_a_pause() {
        let fc = FlowControl::new(vec![(0, true, false)], vec![Arc::new(Credit::default())], 1);
        let (w, ctl) = wire(&[b"f"], None);
        let mut w = w.with_flow_control(fc);
        ctl.start.store(true, Ordering::Release);
        assert!(!w.advance());
        let end = Instant::now() + Duration::from_secs(10);
        while !w.advance() {
            assert!(Instant::now() < end, "watchdog never fired");
        }
        assert_eq!(w.flow.as_ref().map(|f| f.watchdog), Some(1));
    }

    #[test]
    fn a_recorded_link_logs_both_ways_and_an_unrecorded_one_neither() {
        use std::net::UdpSocket;
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        for record in [false, true] {
            let ctl = Arc::new(WireCtl::default());
            ctl.record.store(record, Ordering::Relaxed);
            let mut w = DgramWire::bind(
                "127.0.0.1:0".parse().unwrap(),
                peer.local_addr().unwrap(),
                ctl.clone(),
            )
            .unwrap();
            let at = w.local_addr().unwrap();
            ctl.start.store(true, Ordering::Release);
            for f in [&b"first"[..], b"second"] {
                peer.send_to(f, at).unwrap();
                let end = Instant::now() + Duration::from_secs(5);
                while !w.advance() {
                    assert!(Instant::now() < end, "the datagram never came");
                }
                assert_eq!(w.frame(), f);
            }
            // The firmware's frame goes to the peer as one datagram, not into the log.
            ctl.transmit(b"answer").unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = peer.recv_from(&mut buf).unwrap();
            assert_eq!((&buf[..n], from), (&b"answer"[..], at));
            let (rx, tx) = (ctl.take_rx(), ctl.take_tx());
            if record {
                assert_eq!(rx, [b"first".to_vec(), b"second".to_vec()]);
                assert_eq!(tx, [b"answer".to_vec()]);
            } else {
                assert!(rx.is_empty() && tx.is_empty(), "{rx:?} {tx:?}");
            }
            assert_eq!(ctl.record_overflow(), (0, 0));
        }
        // Without a link, transmitted frames go to the log (the harness plays the peer).
        let ctl = WireCtl::default();
        ctl.transmit(b"ack").unwrap();
        assert_eq!(ctl.take_tx(), [b"ack".to_vec()]);
    }

    #[test]
    fn a_full_frame_log_counts_what_it_drops() {
        let mut l = FrameLog::default();
        for _ in 0..FrameLog::CAP + 3 {
            l.push(b"x");
        }
        assert_eq!(
            (l.frames.len(), l.sent, l.overflow),
            (FrameLog::CAP, FrameLog::CAP as u64 + 3, 3)
        );
    }

    #[test]
    fn a_reset_takes_advertised_credit_back() {
        let c = Credit::default();
        c.posted(64, 32);
        c.reclaimed(10, 32);
        assert_eq!(c.get(), (54, 0));
    }
}

/// A link to a peer over UDP: each datagram received on `socket` is one Ethernet frame for
/// the MAC; each frame the MAC transmits is sent to `peer` as one datagram (set up through
/// [`WireCtl::tx_link`], taken by the board's transmit side). Frames longer than
/// [`crate::traffic::MAX_FRAME`] are dropped by the kernel's truncation check (counted in
/// `truncated`). The wire never finishes on its own: it ends when told to stop.
#[derive(Debug)]
pub struct DgramWire {
    socket: std::net::UdpSocket,
    buf: Vec<u8>,
    len: usize,
    ctl: Arc<WireCtl>,
    /// Datagrams longer than a frame may be (dropped).
    pub truncated: u64,
}

impl DgramWire {
    /// The receive buffer the link's socket asks for.
    pub const RCVBUF: usize = 4 << 20;

    /// Binds `local` and links to `peer`. The socket is non-blocking: the firmware's poll loop
    /// never waits on it.
    pub fn bind(
        local: std::net::SocketAddr,
        peer: std::net::SocketAddr,
        ctl: Arc<WireCtl>,
    ) -> std::io::Result<DgramWire> {
        let socket = std::net::UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        // A peer sends in bursts (rxe: up to a window of packets at once) while the firmware
        // thread may be off its core for a moment: room for a few thousand frames rather than
        // the default's ~100, so the link does not lose them (the kernel caps it at
        // `net.core.rmem_max`; best effort).
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, Self::RCVBUF);
        let _ = ctl.tx_link.set((socket.try_clone()?, peer));
        Ok(DgramWire {
            socket,
            buf: vec![0; crate::traffic::MAX_FRAME + 1],
            len: 0,
            ctl,
            truncated: 0,
        })
    }

    /// The address the wire listens on (the port the OS chose for port 0).
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.socket.local_addr()
    }
}

impl Wire for DgramWire {
    fn advance(&mut self) -> bool {
        if !self.ctl.start.load(Ordering::Acquire) || self.finished() {
            return false;
        }
        loop {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, _)) if n > crate::traffic::MAX_FRAME => self.truncated += 1,
                Ok((n, _)) => {
                    self.len = n;
                    if self.ctl.record.load(Ordering::Relaxed) {
                        lock(&self.ctl.rx).push(&self.buf[..n]);
                    }
                    return true;
                }
                Err(_) => return false,
            }
        }
    }
    fn frame(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn finished(&self) -> bool {
        self.ctl.stop.load(Ordering::Relaxed)
    }
}
