//! splitrx host crate. Implementation pending.
#![deny(unsafe_op_in_unsafe_fn)]
pub mod ledger;
pub mod pool;
pub mod provider;
pub mod recycle;
pub mod sync;
pub mod token;
