//! splitrx host crate: memory providers, page pool, buffer ledger, the control-plane client,
//! shared-region layout, capture reading, and the `splitrx` CLI.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod capture;
pub mod ctrl;
pub mod inspect;
pub mod ledger;
pub mod pool;
pub mod provider;
pub mod recycle;
pub mod region;
pub mod sync;
pub mod token;
