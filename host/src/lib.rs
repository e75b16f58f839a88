//! splitrx host crate. Implementation pending.
#![deny(unsafe_op_in_unsafe_fn)]
