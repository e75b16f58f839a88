//! Registered buffer pools and the IOMMU-style check of fill descriptors.
//!
//! A pool is a window of bus addresses carved into `count` buffers of `buf_size` bytes (buffer
//! `i` at `bus_base + i * buf_size`). For every pool the firmware keeps one bit per buffer:
//! set while the NIC holds the buffer ("posted": accepted from a fill ring and not yet handed
//! back by a completion, a retirement or a reset report). A fill descriptor is accepted only if
//! it names the pool bound to its ring, an index in range, exactly the bus address and length
//! of that buffer, and a buffer that is not already posted.

use crate::config::{MAX_ALIGN_LOG2, MAX_BUFFERS_PER_POOL, MAX_POOLS};
use crate::stats::q;
use splitrx_shared::abi::{BufRef, FillDesc, PoolMode, RegisterPoolArgs};

const WORDS: usize = MAX_BUFFERS_PER_POOL / 32;

/// One bit per buffer of a pool.
#[derive(Clone, Debug)]
pub struct Bitmap {
    words: [u32; WORDS],
}

impl Bitmap {
    pub const fn new() -> Bitmap {
        Bitmap { words: [0; WORDS] }
    }
    #[inline(always)]
    pub fn get(&self, i: u32) -> bool {
        self.words
            .get((i / 32) as usize)
            .is_some_and(|w| w & (1 << (i % 32)) != 0)
    }
    /// Sets bit `i`; returns its previous value.
    #[inline(always)]
    pub fn set(&mut self, i: u32) -> bool {
        match self.words.get_mut((i / 32) as usize) {
            Some(w) => {
                let m = 1 << (i % 32);
                let old = *w & m != 0;
                *w |= m;
                old
            }
            None => true,
        }
    }
    /// Clears bit `i`; returns its previous value.
    #[inline(always)]
    pub fn clear(&mut self, i: u32) -> bool {
        match self.words.get_mut((i / 32) as usize) {
            Some(w) => {
                let m = 1 << (i % 32);
                let old = *w & m != 0;
                *w &= !m;
                old
            }
            None => false,
        }
    }
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }
    pub fn clear_all(&mut self) {
        self.words = [0; WORDS];
    }
}

impl Default for Bitmap {
    fn default() -> Self {
        Self::new()
    }
}

/// A registered pool.
#[derive(Clone, Debug)]
pub struct Pool {
    pub id: u8,
    pub bus_base: u64,
    pub window_len: u64,
    pub buf_size: u32,
    pub count: u32,
    pub mode: PoolMode,
    /// Packing alignment in bytes (packed mode; 1 in page mode).
    pub align: u32,
    /// Queues whose fill rings draw from this pool.
    pub bound: u16,
    pub posted: Bitmap,
}

/// Why a RegisterPool was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PoolError {
    Invalid,
    Exists,
    NoSpace,
    NotFound,
    Busy,
}

/// Why a fill descriptor was discarded (each has its own counter).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DescError {
    /// Pool is not the one bound to the ring.
    BadPool,
    /// Index >= count.
    BadIndex,
    /// Bus address is not `bus_base + index * buf_size`.
    BadAddr,
    /// Length is not `buf_size`.
    BadLen,
    /// Already posted.
    Duplicate,
}

impl DescError {
    /// The per-queue counter of this failure.
    pub const fn counter(self) -> usize {
        match self {
            DescError::BadPool => q::DESC_BAD_POOL,
            DescError::BadIndex => q::DESC_BAD_INDEX,
            DescError::BadAddr => q::DESC_BAD_ADDR,
            DescError::BadLen => q::DESC_BAD_LEN,
            DescError::Duplicate => q::DESC_DUP,
        }
    }
}

/// A buffer the NIC holds: its name and (validated) bus address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HeldBuf {
    pub buf: BufRef,
    pub bus_addr: u64,
}

impl Pool {
    /// Checks `d` against this pool and, if it passes, marks the buffer posted.
    #[inline]
    pub fn accept(&mut self, d: &FillDesc) -> Result<HeldBuf, DescError> {
        let buf = d.buf;
        if buf.pool() != self.id {
            return Err(DescError::BadPool);
        }
        let idx = buf.index();
        if idx >= self.count {
            return Err(DescError::BadIndex);
        }
        // Cannot overflow: idx * buf_size + buf_size <= window_len was checked at registration.
        let addr = self.bus_base + idx as u64 * self.buf_size as u64;
        if d.bus_addr.get() != addr {
            return Err(DescError::BadAddr);
        }
        if d.len.get() != self.buf_size {
            return Err(DescError::BadLen);
        }
        if self.posted.set(idx) {
            return Err(DescError::Duplicate);
        }
        Ok(HeldBuf {
            buf,
            bus_addr: addr,
        })
    }

    /// The NIC hands `buf` back to the host (completion, retirement or reset report).
    #[inline]
    pub fn release(&mut self, buf: BufRef) {
        self.posted.clear(buf.index());
    }

    /// Buffers currently posted.
    pub fn posted_count(&self) -> u32 {
        self.posted.count()
    }
}

/// The pool table.
#[derive(Debug)]
pub struct Pools {
    slots: [Option<Pool>; MAX_POOLS],
}

impl Default for Pools {
    fn default() -> Self {
        Self::new()
    }
}

impl Pools {
    pub const fn new() -> Pools {
        Pools {
            slots: [const { None }; MAX_POOLS],
        }
    }

    /// Registers a pool after checking its arguments (see `docs/firmware.md`).
    pub fn register(&mut self, a: &RegisterPoolArgs) -> Result<usize, PoolError> {
        let mode = PoolMode::from_u8(a.mode).ok_or(PoolError::Invalid)?;
        let (buf_size, count) = (a.buf_size.get(), a.count.get());
        let (base, wlen) = (a.bus_base.get(), a.window_len.get());
        if a.pool == BufRef::MAX_POOL || a._pad != 0 || buf_size == 0 || count == 0 {
            return Err(PoolError::Invalid);
        }
        if count as usize > MAX_BUFFERS_PER_POOL {
            return Err(PoolError::Invalid);
        }
        let need = (buf_size as u64)
            .checked_mul(count as u64)
            .ok_or(PoolError::Invalid)?;
        if need > wlen || base.checked_add(wlen).is_none() {
            return Err(PoolError::Invalid);
        }
        let align = match mode {
            PoolMode::Page => {
                if a.align_log2 != 0 {
                    return Err(PoolError::Invalid);
                }
                1
            }
            PoolMode::Packed => {
                if a.align_log2 > MAX_ALIGN_LOG2 || (1u32 << a.align_log2) > buf_size {
                    return Err(PoolError::Invalid);
                }
                1u32 << a.align_log2
            }
        };
        if self.find(a.pool).is_some() {
            return Err(PoolError::Exists);
        }
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(PoolError::NoSpace)?;
        self.slots[slot] = Some(Pool {
            id: a.pool,
            bus_base: base,
            window_len: wlen,
            buf_size,
            count,
            mode,
            align,
            bound: 0,
            posted: Bitmap::new(),
        });
        Ok(slot)
    }

    /// Removes a pool; `Busy` while a queue is bound to it.
    pub fn unregister(&mut self, id: u8) -> Result<(), PoolError> {
        let slot = self.find(id).ok_or(PoolError::NotFound)?;
        if self.slots[slot].as_ref().is_some_and(|p| p.bound != 0) {
            return Err(PoolError::Busy);
        }
        self.slots[slot] = None;
        Ok(())
    }

    /// Slot of pool `id`.
    pub fn find(&self, id: u8) -> Option<usize> {
        self.slots
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.id == id))
    }

    #[inline(always)]
    pub fn get(&self, slot: usize) -> Option<&Pool> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    #[inline(always)]
    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Pool> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    /// Looks a pool up by id.
    pub fn by_id(&self, id: u8) -> Option<&Pool> {
        self.find(id).and_then(|s| self.get(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::little_endian::{U32, U64};

    fn args(pool: u8, count: u32, size: u32) -> RegisterPoolArgs {
        RegisterPoolArgs {
            bus_base: U64::new(0x1000_0000),
            window_len: U64::new(count as u64 * size as u64),
            buf_size: U32::new(size),
            count: U32::new(count),
            pool,
            mode: 0,
            align_log2: 0,
            _pad: 0,
        }
    }

    #[test]
    fn register_checks() {
        let mut p = Pools::new();
        assert_eq!(p.register(&args(1, 4, 2048)), Ok(0));
        assert_eq!(p.register(&args(1, 4, 2048)), Err(PoolError::Exists));
        let mut a = args(2, 4, 2048);
        a.window_len = U64::new(4 * 2048 - 1);
        assert_eq!(p.register(&a), Err(PoolError::Invalid));
        assert_eq!(
            p.register(&args(2, MAX_BUFFERS_PER_POOL as u32 + 1, 64)),
            Err(PoolError::Invalid)
        );
        assert_eq!(p.register(&args(255, 4, 64)), Err(PoolError::Invalid));
        let mut a = args(3, 4, 64);
        a.mode = 2;
        assert_eq!(p.register(&a), Err(PoolError::Invalid));
        a.mode = 1;
        a.align_log2 = 7; // 128 > buf_size 64
        assert_eq!(p.register(&a), Err(PoolError::Invalid));
        a.align_log2 = 6;
        assert_eq!(p.register(&a), Ok(1));
        for i in 4..4 + MAX_POOLS as u8 - 2 {
            assert!(p.register(&args(i, 1, 64)).is_ok());
        }
        assert_eq!(p.register(&args(100, 1, 64)), Err(PoolError::NoSpace));
        assert_eq!(p.unregister(1), Ok(()));
        assert_eq!(p.unregister(1), Err(PoolError::NotFound));
    }

    #[test]
    fn accept_checks_each_field() {
        let mut p = Pools::new();
        let s = p.register(&args(1, 4, 2048)).unwrap();
        let pool = p.get_mut(s).unwrap();
        let d = |pool: u8, idx: u32, addr: u64, len: u32| {
            FillDesc::new(BufRef::new(pool, idx).unwrap(), addr, len)
        };
        assert_eq!(
            pool.accept(&d(2, 0, 0x1000_0000, 2048)),
            Err(DescError::BadPool)
        );
        assert_eq!(
            pool.accept(&d(1, 4, 0x1000_2000, 2048)),
            Err(DescError::BadIndex)
        );
        assert_eq!(
            pool.accept(&d(1, 1, 0x1000_0001, 2048)),
            Err(DescError::BadAddr)
        );
        assert_eq!(
            pool.accept(&d(1, 1, 0x1000_0800, 2047)),
            Err(DescError::BadLen)
        );
        let ok = pool.accept(&d(1, 1, 0x1000_0800, 2048)).unwrap();
        assert_eq!(ok.bus_addr, 0x1000_0800);
        assert_eq!(
            pool.accept(&d(1, 1, 0x1000_0800, 2048)),
            Err(DescError::Duplicate)
        );
        assert_eq!(pool.posted_count(), 1);
        pool.release(ok.buf);
        assert_eq!(pool.posted_count(), 0);
        assert!(pool.accept(&d(1, 1, 0x1000_0800, 2048)).is_ok());
        let none = FillDesc::new(BufRef::NONE, 0, 0);
        assert_eq!(pool.accept(&none), Err(DescError::BadPool));
    }
}
