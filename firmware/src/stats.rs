//! The firmware's counters. Their numbering for [`splitrx_shared::abi::CtrlOp::ReadStats`] is
//! part of the ABI and lives in [`splitrx_shared::stats`] (re-exported here).

pub use splitrx_shared::stats::*;

/// A fixed array of `N` counters.
#[derive(Clone, Copy, Debug)]
pub struct Counters<const N: usize>(pub [u64; N]);

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Counters([0; N])
    }
}

impl<const N: usize> Counters<N> {
    #[inline(always)]
    pub fn inc(&mut self, i: usize) {
        self.add(i, 1)
    }
    #[inline(always)]
    pub fn add(&mut self, i: usize, v: u64) {
        if let Some(c) = self.0.get_mut(i) {
            *c = c.wrapping_add(v);
        }
    }
    pub fn get(&self, i: usize) -> u64 {
        self.0.get(i).copied().unwrap_or(0)
    }
}

/// Per-queue counters.
pub type QueueStats = Counters<Q_COUNT>;
/// Device-wide counters.
pub type DeviceStats = Counters<DEV_COUNT>;
