//! Atomics shim: `std` atomics normally, `loom` atomics under `--cfg loom`, so the concurrency
//! core of the page pool (the [`crate::recycle`] ring and the [`crate::ledger::slot`] word
//! transitions) can be model-checked unchanged (`tests/pool_loom.rs`).

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicU32, Ordering};
#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicU32, Ordering};

/// Pads and aligns `T` to 128 bytes (two cache lines: adjacent-line prefetch on x86) so that
/// producer and consumer state never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CachePadded<T>(pub T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}
