//! Laying out a shared region: a [`QueueHeader`] followed by rings.
//!
//! The host owns every shared region. It decides where each ring goes, writes the header, zeroes
//! the ring index blocks, and only then names the region to the NIC (CreateRxQueue, or the control
//! region at boot). The NIC validates the header it copies out ([`QueueHeader::validate`]); this
//! module produces headers that pass that validation by construction.

//!
//! Used by the host, by the firmware's test fakes and by boards that lay out regions themselves;
//! `no_std`, so it also runs on target.

use crate::abi::{QueueHeader, RingDesc, RingKind, ABI_VERSION, MAX_RINGS, QUEUE_MAGIC};
use crate::ring::{self, ring_bytes, Consumer, Producer, RingEntry, RingError};
use core::fmt;
use core::ptr::NonNull;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromZeros, IntoBytes};

/// Alignment of every ring inside a region: the one ring alignment of the ABI (what
/// `QueueHeader::validate` and the ring handles check), re-exported from [`crate::ring`].
pub use crate::ring::RING_ALIGN;

/// Where each ring of a region lives.
#[derive(Clone, Debug)]
pub struct RegionLayout {
    pub header: QueueHeader,
    /// Bytes the region needs.
    pub size: u64,
}

/// Layout errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LayoutError {
    /// More than [`MAX_RINGS`] rings.
    TooManyRings,
    /// A ring capacity that is not a non-zero power of two.
    Capacity(u32),
    /// A ring of kind `Unused`.
    UnusedKind,
    /// The memory is smaller than the region.
    TooSmall { have: usize, need: u64 },
    /// The memory is not [`RING_ALIGN`]-aligned.
    Misaligned,
    /// The header has no ring of this kind.
    NoSuchRing(RingKind),
    /// A handle's entry type is not the size of the ring kind's record (a `Producer<FillDesc>`
    /// asked for a completion ring, say).
    EntrySize {
        kind: RingKind,
        entry: usize,
        handle: usize,
    },
    /// Attaching or initialising a ring failed.
    Ring(RingError),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::TooManyRings => write!(f, "a region holds at most {MAX_RINGS} rings"),
            LayoutError::Capacity(c) => {
                write!(f, "ring capacity {c} is not a non-zero power of two")
            }
            LayoutError::UnusedKind => f.write_str("ring kind Unused cannot be laid out"),
            LayoutError::TooSmall { have, need } => write!(
                f,
                "memory of {have} bytes is smaller than the region ({need} bytes)"
            ),
            LayoutError::Misaligned => {
                write!(f, "region memory must be {RING_ALIGN}-byte aligned")
            }
            LayoutError::NoSuchRing(k) => write!(f, "the header has no ring of kind {k:?}"),
            LayoutError::EntrySize {
                kind,
                entry,
                handle,
            } => write!(
                f,
                "a {handle}-byte handle for a {kind:?} ring of {entry}-byte entries"
            ),
            LayoutError::Ring(e) => write!(f, "ring attach failed: {e:?}"),
        }
    }
}

impl core::error::Error for LayoutError {}

/// [`RING_ALIGN`] as a byte offset inside a region.
const ALIGN: u64 = RING_ALIGN as u64;

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
        let mut off = align_up(size_of::<QueueHeader>() as u64, ALIGN);
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
            off = align_up(off + ring_bytes(cap, kind.entry_size()), ALIGN);
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
    /// `mem` is valid for writes of `len` bytes, [`RING_ALIGN`]-aligned, and no ring handle to any ring
    /// in it is live (the NIC has not been told about the region yet, or has been stopped).
    pub unsafe fn init(&self, mem: NonNull<u8>, len: usize) -> Result<(), LayoutError> {
        if (len as u64) < self.size {
            return Err(LayoutError::TooSmall {
                have: len,
                need: self.size,
            });
        }
        if !(mem.as_ptr() as usize).is_multiple_of(RING_ALIGN) {
            return Err(LayoutError::Misaligned);
        }
        let bytes = self.header.as_bytes();
        // SAFETY: the caller guarantees `len` writable bytes; `bytes.len()` (192) <= `self.size`
        // <= `len`. Source and destination cannot overlap (the header is a local value).
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), mem.as_ptr(), bytes.len()) };
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
        let (base, cap) = self.locate::<T>(mem, kind)?;
        // SAFETY: the ring lies inside the region (validated layout) and the caller upholds the
        // single-producer and lifetime rules.
        unsafe { Producer::attach(base, cap) }.map_err(LayoutError::Ring)
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
        let (base, cap) = self.locate::<T>(mem, kind)?;
        // SAFETY: as in `producer`.
        unsafe { Consumer::attach(base, cap) }.map_err(LayoutError::Ring)
    }

    /// Base pointer and capacity of the ring of `kind` in the region at `mem`.
    fn locate<T>(
        &self,
        mem: NonNull<u8>,
        kind: RingKind,
    ) -> Result<(NonNull<u8>, u32), LayoutError> {
        let r = self.ring(kind).ok_or(LayoutError::NoSuchRing(kind))?;
        if size_of::<T>() != kind.entry_size() {
            return Err(LayoutError::EntrySize {
                kind,
                entry: kind.entry_size(),
                handle: size_of::<T>(),
            });
        }
        // `wrapping_add`: computing the address needs no unsafe; `attach`'s callers promise it
        // lies inside the region (offset + ring bytes <= size by construction in `new`), so
        // the pointer is null only for memory that is not a region at all.
        let base = mem.as_ptr().wrapping_add(r.offset.get() as usize);
        Ok((
            NonNull::new(base).ok_or(LayoutError::Misaligned)?,
            r.capacity.get(),
        ))
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
            48 => ring::init::<[u8; 48]>(base, capacity),
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
        let first = align_up(size_of::<QueueHeader>() as u64, ALIGN);
        assert_eq!(first, 192, "the header is a multiple of the ring alignment");
        let r = l.ring(RingKind::HeaderFill).unwrap();
        assert_eq!(r.offset.get(), first);
        let p = l.ring(RingKind::PayloadFill).unwrap();
        assert_eq!(p.offset.get(), first + 256 + 256 * 16);
        let c = l.ring(RingKind::RxCompletion).unwrap();
        assert_eq!(c.offset.get(), p.offset.get() + 256 + 256 * 16);
        assert_eq!(l.size, c.offset.get() + 256 + 512 * 48);
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

    /// A handle whose entry type does not match the ring kind is a hard error in every build
    /// (issue 9, defect 5: it was a `debug_assert`, so a release build attached a 16-byte
    /// producer to a completion ring of 32-byte entries, 48 since ABI 2.0).
    #[test]
    fn a_mismatched_entry_type_is_refused() {
        use crate::abi::{FillDesc, RxCompletion};
        #[repr(C, align(128))]
        struct Mem([u8; 8192]);
        let l = RegionLayout::new(
            0,
            &[(RingKind::HeaderFill, 64), (RingKind::RxCompletion, 64)],
        )
        .unwrap();
        let mut m = std::boxed::Box::new(Mem([0; 8192]));
        let base = core::ptr::NonNull::new(m.0.as_mut_ptr()).unwrap();
        // SAFETY: `m` is 128-byte aligned, outlives every handle below, and holds the region.
        unsafe {
            l.init(base, 8192).unwrap();
            assert_eq!(
                l.producer::<FillDesc>(base, RingKind::RxCompletion).err(),
                Some(LayoutError::EntrySize {
                    kind: RingKind::RxCompletion,
                    entry: 48,
                    handle: 16
                })
            );
            assert_eq!(
                l.consumer::<RxCompletion>(base, RingKind::HeaderFill).err(),
                Some(LayoutError::EntrySize {
                    kind: RingKind::HeaderFill,
                    entry: 16,
                    handle: 48
                })
            );
            assert!(l.producer::<FillDesc>(base, RingKind::HeaderFill).is_ok());
            assert!(l
                .consumer::<RxCompletion>(base, RingKind::RxCompletion)
                .is_ok());
        }
    }
}
