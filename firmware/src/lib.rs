//! splitrx firmware library (no_std). Implementation pending (issue 4).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
