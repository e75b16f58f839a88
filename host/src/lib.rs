//! splitrx host crate. Implementation pending.
#![deny(unsafe_op_in_unsafe_fn)]
pub mod capture;
pub mod inspect;
