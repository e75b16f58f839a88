//! [`Token`]: one lent fragment of a pool buffer, owned by the application. A child of the
//! pool module (the pool creates tokens and takes them back), so the app-facing
//! [`crate::token`] module depends on the pool and not the other way round.

use super::{fragment_slice, PoolRef};
use splitrx_shared::abi::BufRef;

/// One lent fragment (a payload, or a header) of a pool buffer. `Send`; dropping it gives the
/// fragment back to the pool.
pub struct Token {
    pool: PoolRef,
    buf: BufRef,
    off: u32,
    len: u32,
}

/// Where a fragment lives, for consumers that cannot (or should not) read it from the CPU:
/// the shape of devmem TCP's `struct dmabuf_cmsg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragLocation {
    /// Pool (provider binding) id — `dmabuf_id`.
    pub pool: u8,
    /// Buffer index inside the pool.
    pub index: u32,
    /// Byte offset of the fragment from the start of the provider's region — `frag_offset`.
    pub region_offset: u64,
    /// Bus address of the fragment's first byte.
    pub bus_addr: u64,
    /// `frag_size`.
    pub len: u32,
}

impl Token {
    pub(crate) fn new(pool: PoolRef, buf: BufRef, off: u32, len: u32) -> Token {
        Token {
            pool,
            buf,
            off,
            len,
        }
    }
    pub fn buf(&self) -> BufRef {
        self.buf
    }
    /// Offset of the fragment inside its buffer.
    pub fn offset(&self) -> u32 {
        self.off
    }
    pub fn len(&self) -> u32 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether [`bytes`](Self::bytes) is available (the provider's memory is host-readable).
    pub fn host_readable(&self) -> bool {
        self.pool.region.host_readable
    }
    /// The fragment's bytes, when the provider allows the CPU to read them.
    pub fn bytes(&self) -> Option<&[u8]> {
        self.host_readable().then(|| {
            // SAFETY: the fragment was range-checked against this pool's region by
            // `complete`; while this token lives the buffer is Lent (its lent count includes
            // us) so it is not recycled and the NIC does not write these bytes (page mode:
            // retired; packed mode: the NIC only writes beyond the fragment's end); the
            // region stays mapped while `self.pool` is alive.
            unsafe { fragment_slice(&self.pool.region, self.buf.index(), self.off, self.len) }
        })
    }
    /// Disarms the token: its pool and buffer, without returning the fragment (the caller
    /// returns it).
    pub(crate) fn into_parts(self) -> (PoolRef, BufRef) {
        let t = std::mem::ManuallyDrop::new(self);
        // SAFETY: `t` is never dropped or used again, so moving its counted reference out of
        // it leaves exactly one owner of that reference.
        let pool = unsafe { std::ptr::read(&t.pool) };
        (pool, t.buf)
    }
    pub(crate) fn pool(&self) -> &PoolRef {
        &self.pool
    }
    /// Where the fragment lives (always available).
    pub fn location(&self) -> FragLocation {
        let r = &self.pool.region;
        let idx = self.buf.index();
        let region_offset = idx as u64 * r.buf_size as u64 + self.off as u64;
        FragLocation {
            pool: self.buf.pool(),
            index: idx,
            region_offset,
            bus_addr: r.bus_base + region_offset,
            len: self.len,
        }
    }
}

// Tokens cross threads: the whole point.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<Token>();
};

impl Drop for Token {
    #[inline]
    fn drop(&mut self) {
        self.pool.return_token(self.buf);
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("buf", &self.buf)
            .field("off", &self.off)
            .field("len", &self.len)
            .finish()
    }
}
