//! splitrx host crate: memory providers, page pool, buffer ledger, the control-plane client,
//! shared-region layout, capture reading, RX queues, and the `splitrx` CLI.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod capture;
pub mod ctrl;
pub mod inspect;
pub mod region;
pub mod ledger;
pub mod pool;
pub mod provider;
pub mod recycle;
pub mod sync;
pub mod token;
pub mod queue;
pub mod verify;
#[cfg(feature = "sim")]
pub mod sim_run;
