//! splitrx host crate: memory providers, page pool, buffer ledger, the control-plane client,
//! capture reading, RX queues, the board seam and device bring-up over it, and the verifier.
//! It knows no board and no command line: boards implement [`seam::BoardSeam`]; the `splitrx`
//! CLI is its own crate (`host/cli`).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod capture;
#[macro_use]
mod counters;
pub mod ctrl;
pub mod device;
pub mod inspect;
pub mod ledger;
pub mod pool;
pub mod provider;
pub mod queue;
pub mod recv;
pub mod recycle;
pub mod roce;
pub mod seam;
pub mod sync;
pub mod token;
#[cfg(feature = "verbs")]
pub mod verbs;
pub mod verify;
