//! Laying out a shared region: a [`QueueHeader`] followed by rings.
//!
//! The host owns every shared region. It decides where each ring goes, writes the header, zeroes
//! the ring index blocks, and only then names the region to the NIC (CreateRxQueue, or the control
//! region at boot). The NIC validates the header it copies out ([`QueueHeader::validate`]); this
//! module produces headers that pass that validation by construction.

use splitrx_shared::abi::{QueueHeader, RingDesc, RingKind, ABI_VERSION, MAX_RINGS, QUEUE_MAGIC};
use splitrx_shared::ring::{self, ring_bytes, Consumer, Producer, RingEntry, RingError};
use std::ptr::NonNull;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromZeros, IntoBytes};

/// Alignment of every ring inside a region (two cache lines, so adjacent-line prefetch of one
/// ring's index never touches another's).
pub const RING_ALIGN: u64 = 128;

/// Where each ring of a region lives.
#[derive(Clone, Debug)]
pub struct RegionLayout {
    pub header: QueueHeader,
    /// Bytes the region needs.
    pub size: u64,
}

/// Layout errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("a region holds at most {MAX_RINGS} rings")]
    TooManyRings,
    #[error("ring capacity {0} is not a non-zero power of two")]
    Capacity(u32),
    #[error("ring kind Unused cannot be laid out")]
    UnusedKind,
    #[error("memory of {have} bytes is smaller than the region ({need} bytes)")]
    TooSmall { have: usize, need: u64 },
    #[error("region memory must be 128-byte aligned")]
    Misaligned,
    #[error("the header has no ring of kind {0:?}")]
    NoSuchRing(RingKind),
    #[error("ring attach failed: {0:?}")]
    Ring(RingError),
}

impl RegionLayout {
    /// Lays out `rings` (kind, capacity) after the header, in order, each `RING_ALIGN`-aligned.
    pub fn new(queue_id: u16, rings: &[(RingKind, u32)]) -> Result<RegionLayout, LayoutError> {
        if rings.len() > MAX_RINGS {
            return Err(LayoutError::TooManyRings);
        }
        let mut h = QueueHeader::new_zeroed();
        h.magic = U32::new(QUEUE_MAGIC);
        h.abi_version = U32::new(ABI_VERSION);
        h.queue_id = U16::new(queue_id);
        h.ring_count = U16::new(rings.len() as u16);
        let mut off = align_up(size_of::<QueueHeader>() as u64, RING_ALIGN);
        for (i, &(kind, cap)) in rings.iter().enumerate() {
            if kind == RingKind::Unused {
                return Err(LayoutError::UnusedKind);
            }
            if cap == 0 || !cap.is_power_of_two() {
                return Err(LayoutError::Capacity(cap));
            }
            h.rings[i] = RingDesc {
                offset: U64::new(off),
                capacity: U32::new(cap),
                kind: U16::new(kind as u16),
                entry_size: U16::new(kind.entry_size() as u16),
            };
            off = align_up(off + ring_bytes(cap, kind.entry_size()) as u64, RING_ALIGN);
        }
        h.region_size = U64::new(off);
        debug_assert!(h.validate(off as usize).is_ok());
        Ok(RegionLayout {
            header: h,
            size: off,
        })
    }

    /// The descriptor of the first ring of `kind`.
    pub fn ring(&self, kind: RingKind) -> Option<RingDesc> {
        let n = self.header.ring_count.get() as usize;
        self.header.rings[..n]
            .iter()
            .copied()
            .find(|r| r.kind.get() == kind as u16)
    }

    /// Writes the header into `mem` and initialises every ring's indices to zero.
    ///
    /// # Safety
    /// `mem` is valid for writes of `len` bytes, 128-byte aligned, and no ring handle to any ring
    /// in it is live (the NIC has not been told about the region yet, or has been stopped).
    pub unsafe fn init(&self, mem: NonNull<u8>, len: usize) -> Result<(), LayoutError> {
        if (len as u64) < self.size {
            return Err(LayoutError::TooSmall {
                have: len,
                need: self.size,
            });
        }
        if !(mem.as_ptr() as usize).is_multiple_of(RING_ALIGN as usize) {
            return Err(LayoutError::Misaligned);
        }
        let bytes = self.header.as_bytes();
        // SAFETY: the caller guarantees `len` writable bytes; `bytes.len()` (192) <= `self.size`
        // <= `len`. Source and destination cannot overlap (the header is a local value).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), mem.as_ptr(), bytes.len()) };
        let n = self.header.ring_count.get() as usize;
        for r in &self.header.rings[..n] {
            // SAFETY: offset + ring_bytes <= self.size <= len by construction in `new`; the caller
            // guarantees no live handles.
            unsafe {
                let base = mem.add(r.offset.get() as usize);
                init_ring_bytes(base, r.capacity.get(), r.entry_size.get() as usize)
                    .map_err(LayoutError::Ring)?;
            }
        }
        Ok(())
    }

    /// Attaches a producer to the ring of `kind`.
    ///
    /// # Safety
    /// `mem` is the region memory previously passed to [`RegionLayout::init`], valid for the
    /// life of the handle, and no other producer for that ring exists.
    pub unsafe fn producer<T: RingEntry>(
        &self,
        mem: NonNull<u8>,
        kind: RingKind,
    ) -> Result<Producer<T>, LayoutError> {
        let r = self.ring(kind).ok_or(LayoutError::NoSuchRing(kind))?;
        debug_assert_eq!(size_of::<T>(), kind.entry_size());
        // SAFETY: the ring lies inside the region (validated layout) and the caller upholds the
        // single-producer and lifetime rules.
        unsafe { Producer::attach(mem.add(r.offset.get() as usize), r.capacity.get()) }
            .map_err(LayoutError::Ring)
    }

    /// Attaches a consumer to the ring of `kind`.
    ///
    /// # Safety
    /// As [`RegionLayout::producer`], for the single consumer.
    pub unsafe fn consumer<T: RingEntry>(
        &self,
        mem: NonNull<u8>,
        kind: RingKind,
    ) -> Result<Consumer<T>, LayoutError> {
        let r = self.ring(kind).ok_or(LayoutError::NoSuchRing(kind))?;
        debug_assert_eq!(size_of::<T>(), kind.entry_size());
        // SAFETY: as in `producer`.
        unsafe { Consumer::attach(mem.add(r.offset.get() as usize), r.capacity.get()) }
            .map_err(LayoutError::Ring)
    }
}

/// Zeroes a ring's index blocks without knowing its entry type.
///
/// # Safety
/// As [`ring::init`].
unsafe fn init_ring_bytes(base: NonNull<u8>, capacity: u32, entry: usize) -> Result<(), RingError> {
    // The ring's init only touches the index blocks; any entry type of the right size will do.
    // SAFETY: forwarded from the caller.
    unsafe {
        match entry {
            16 => ring::init::<[u8; 16]>(base, capacity),
            32 => ring::init::<[u8; 32]>(base, capacity),
            64 => ring::init::<[u8; 64]>(base, capacity),
            _ => Err(RingError::BadLayout),
        }
    }
}

const fn align_up(v: u64, a: u64) -> u64 {
    (v + a - 1) & !(a - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_validates_and_packs_rings() {
        let l = RegionLayout::new(
            3,
            &[
                (RingKind::HeaderFill, 256),
                (RingKind::PayloadFill, 256),
                (RingKind::RxCompletion, 512),
            ],
        )
        .unwrap();
        assert_eq!(l.header.validate(l.size as usize), Ok(()));
        let r = l.ring(RingKind::HeaderFill).unwrap();
        assert_eq!(r.offset.get(), 256);
        let p = l.ring(RingKind::PayloadFill).unwrap();
        assert_eq!(p.offset.get(), 256 + 256 + 256 * 16);
        let c = l.ring(RingKind::RxCompletion).unwrap();
        assert_eq!(c.offset.get(), p.offset.get() + 256 + 256 * 16);
        assert_eq!(l.size, c.offset.get() + 256 + 512 * 32);
        assert!(l.ring(RingKind::RoceCq).is_none());
    }

    #[test]
    fn layout_rejects_bad_input() {
        assert_eq!(
            RegionLayout::new(0, &[(RingKind::HeaderFill, 100)]).unwrap_err(),
            LayoutError::Capacity(100)
        );
        assert_eq!(
            RegionLayout::new(0, &[(RingKind::Unused, 64)]).unwrap_err(),
            LayoutError::UnusedKind
        );
        let many = [(RingKind::HeaderFill, 64); MAX_RINGS + 1];
        assert_eq!(
            RegionLayout::new(0, &many).unwrap_err(),
            LayoutError::TooManyRings
        );
    }
}
