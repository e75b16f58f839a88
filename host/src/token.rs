//! The application-facing API: tokens and per-consumer receive handles.
//!
//! Kernel counterparts (devmem TCP / io_uring zcrx):
//!
//! | kernel                                              | here                                  |
//! |-----------------------------------------------------|---------------------------------------|
//! | a `net_iov` fragment in a `recvmsg` + `SCM_DEVMEM_DMABUF` cmsg (`struct dmabuf_cmsg`: `frag_offset`, `frag_size`, `frag_token`, `dmabuf_id`) | a [`Token`]: [`Token::bytes`] when host-readable, else [`Token::location`] |
//! | `SO_DEVMEM_DONTNEED` with a list of tokens          | [`RxHandle::return_ids`] on [`TokenId`]s from [`RxHandle::detach`] |
//! | `sk->sk_user_frags` freed on socket close           | [`RxHandle::close`] / drop reclaims every detached token and every undelivered completion |
//! | zcrx refill ring entry                              | dropping a [`Token`] (one CAS + a push into the pool's recycle ring) |
//!
//! A [`Token`] is RAII: dropping it returns the fragment, on any thread, exactly once. Apps
//! that must hold references across FFI or as plain integers [`detach`](RxHandle::detach)
//! tokens into the handle's table and return them later by id, in bulk; ids are checked
//! (double returns and ids never issued are typed errors and counted, never panics).

pub use crate::pool::{FragLocation, Token};
use splitrx_shared::abi::{rx_flags, RxCompletion};
use std::sync::mpsc;
use std::time::Duration;

/// One received frame delivered to a consumer.
#[derive(Debug)]
pub struct Rx {
    /// The completion as the NIC reported it (validated by the poller).
    pub completion: RxCompletion,
    /// Header fragment, when the poller lends it (else it consumed it).
    pub header: Option<Token>,
    /// Payload fragment of a split frame.
    pub payload: Option<Token>,
}

impl Rx {
    /// The NIC's hardware receive timestamp of the frame, in nanoseconds of the NIC's clock
    /// (`RxCompletion::rx_timestamp_ns`): the value `SO_TIMESTAMPING` users read with
    /// `SOF_TIMESTAMPING_RX_HARDWARE` | `SOF_TIMESTAMPING_RAW_HARDWARE` in
    /// `scm_timestamping.ts[2]` (raw hardware time, not converted to system time).
    pub fn timestamp_ns(&self) -> u64 {
        self.completion.rx_timestamp_ns.get()
    }
    /// The NIC verified the innermost TCP/UDP checksum and it is right (`CSUM_OK`; Linux:
    /// `CHECKSUM_UNNECESSARY`).
    pub fn csum_ok(&self) -> bool {
        self.completion.flags.get() & rx_flags::CSUM_OK != 0
    }
    /// The NIC found a wrong IPv4 header or TCP/UDP checksum (`CSUM_BAD`).
    pub fn csum_bad(&self) -> bool {
        self.completion.flags.get() & rx_flags::CSUM_BAD != 0
    }
    /// The ones'-complement sum of the L4 payload (Linux `CHECKSUM_COMPLETE`; exactly which
    /// bytes: `docs/ABI.md`, "Checksum offload").
    pub fn csum_complete(&self) -> u16 {
        self.completion.csum_complete.get()
    }
}

/// Poller side of a consumer: sends [`Rx`]s to its [`RxHandle`].
#[derive(Debug, Clone)]
pub struct ConsumerTx {
    tx: mpsc::Sender<Rx>,
}

impl ConsumerTx {
    /// Delivers `rx`; `Err(rx)` when the handle is closed (dropping the `Rx` returns its
    /// tokens).
    pub fn send(&self, rx: Rx) -> Result<(), Rx> {
        self.tx.send(rx).map_err(|e| e.0)
    }
}

/// Creates a consumer: the poller keeps the [`ConsumerTx`], the application the [`RxHandle`].
pub fn consumer() -> (ConsumerTx, RxHandle) {
    let (tx, rx) = mpsc::channel();
    (
        ConsumerTx { tx },
        RxHandle {
            rx,
            table: Vec::new(),
            free: Vec::new(),
            stats: HandleStats::default(),
        },
    )
}

/// A detached token's id: slot index in the low 32 bits, generation in the high 32 bits
/// (never 0 for an issued id). A plain integer, for FFI and cross-thread bookkeeping.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TokenId(pub u64);

/// Why a [`TokenId`] was not accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token {0:?} was already returned")]
    AlreadyReturned(TokenId),
    #[error("token {0:?} was never issued by this handle")]
    Unknown(TokenId),
}

/// Outcome of a bulk return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkReturn {
    /// Tokens returned (like `SO_DEVMEM_DONTNEED`'s return value).
    pub returned: usize,
    /// Ids rejected, with the reason.
    pub errors: Vec<TokenError>,
}

/// What [`RxHandle::close`] reclaimed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// Detached tokens still held.
    pub detached: usize,
    /// Delivered but never received frames (their tokens).
    pub undelivered: usize,
}

/// Counters of a handle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandleStats {
    pub received: u64,
    pub detached: u64,
    pub returned_by_id: u64,
    pub err_already_returned: u64,
    pub err_unknown: u64,
}

struct Entry {
    gen: u32,
    token: Option<Token>,
}

/// Application side of a consumer: receives frames with their tokens; keeps detached tokens.
pub struct RxHandle {
    rx: mpsc::Receiver<Rx>,
    table: Vec<Entry>,
    free: Vec<u32>,
    stats: HandleStats,
}

impl std::fmt::Debug for RxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxHandle")
            .field("detached", &self.detached())
            .field("stats", &self.stats)
            .finish()
    }
}

impl RxHandle {
    /// Next delivered frame, if one is waiting.
    pub fn try_recv(&mut self) -> Option<Rx> {
        let r = self.rx.try_recv().ok();
        self.stats.received += r.is_some() as u64;
        r
    }
    /// Next delivered frame, blocking; `None` once the poller dropped its [`ConsumerTx`] and
    /// everything was received.
    pub fn recv(&mut self) -> Option<Rx> {
        let r = self.rx.recv().ok();
        self.stats.received += r.is_some() as u64;
        r
    }
    /// Next delivered frame, waiting up to `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Rx> {
        let r = self.rx.recv_timeout(timeout).ok();
        self.stats.received += r.is_some() as u64;
        r
    }
    /// Moves `token` into the handle's table and returns its id; return it later with
    /// [`return_ids`](Self::return_ids) (or it is reclaimed on close).
    pub fn detach(&mut self, token: Token) -> TokenId {
        self.stats.detached += 1;
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.table.push(Entry {
                    gen: 0,
                    token: None,
                });
                (self.table.len() - 1) as u32
            }
        };
        let e = &mut self.table[slot as usize];
        e.gen = e.gen.wrapping_add(1).max(1);
        e.token = Some(token);
        TokenId(((e.gen as u64) << 32) | slot as u64)
    }
    /// Returns detached tokens by id (`SO_DEVMEM_DONTNEED`). Every id is checked: an id
    /// returned before, or never issued, is reported and counted and changes nothing.
    pub fn return_ids(&mut self, ids: &[TokenId]) -> BulkReturn {
        let mut out = BulkReturn::default();
        for &id in ids {
            let (slot, gen) = ((id.0 & 0xffff_ffff) as usize, (id.0 >> 32) as u32);
            let err = match self.table.get_mut(slot) {
                Some(e) if gen != 0 && e.gen == gen => match e.token.take() {
                    Some(t) => {
                        drop(t);
                        self.free.push(slot as u32);
                        out.returned += 1;
                        continue;
                    }
                    None => TokenError::AlreadyReturned(id),
                },
                // An older generation of an existing slot: issued before, returned since.
                Some(e) if gen != 0 && gen < e.gen => TokenError::AlreadyReturned(id),
                _ => TokenError::Unknown(id),
            };
            match err {
                TokenError::AlreadyReturned(_) => self.stats.err_already_returned += 1,
                TokenError::Unknown(_) => self.stats.err_unknown += 1,
            }
            out.errors.push(err);
        }
        self.stats.returned_by_id += out.returned as u64;
        out
    }
    /// Detached tokens currently held.
    pub fn detached(&self) -> usize {
        self.table.len() - self.free.len()
    }
    pub fn stats(&self) -> HandleStats {
        self.stats
    }
    /// Closes the consumer: returns every detached token and every frame delivered but not
    /// received (like the kernel freeing a socket's leaked devmem tokens on close). Tokens
    /// the application still holds as values stay valid and return when dropped.
    pub fn close(mut self) -> CloseReport {
        self.reclaim()
    }
    fn reclaim(&mut self) -> CloseReport {
        let mut rep = CloseReport::default();
        for e in self.table.iter_mut() {
            if e.token.take().is_some() {
                rep.detached += 1;
            }
        }
        self.table.clear();
        self.free.clear();
        while let Ok(rx) = self.rx.try_recv() {
            drop(rx);
            rep.undelivered += 1;
        }
        rep
    }
}

impl Drop for RxHandle {
    fn drop(&mut self) {
        self.reclaim();
    }
}
