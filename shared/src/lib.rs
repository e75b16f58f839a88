//! splitrx shared crate: the host<->NIC ABI, shared-memory rings, wire parsers and the
//! header-split decision. `no_std`, no `alloc`: compiled by the firmware and the host alike.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

#[cfg(any(feature = "std", test))]
extern crate std;

pub mod abi;
pub mod region;
pub mod ring;
pub mod split;
pub mod stats;
pub mod wire;
