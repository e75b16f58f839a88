//! splitrx host crate: memory providers, page pool, buffer ledger, the control-plane client,
//! shared-region layout, capture reading, RX queues, and the `splitrx` CLI.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod capture;
pub mod ctrl;
pub mod inspect;
pub mod ledger;
pub mod pool;
pub mod provider;
pub mod queue;
pub mod recycle;
pub mod region;
#[cfg(feature = "sim")]
pub mod sim_run;
pub mod sync;
pub mod token;
pub mod verify;
