//! The bootstrap mailbox: how firmware that cannot be given arguments finds the control region,
//! and how the host sees that the firmware is alive.
//!
//! A board's memory map (its data file) names one bus address, the **mailbox**: the first
//! [`MAILBOX_LEN`] bytes of the host-memory window. The firmware knows that address at build
//! time; nothing else has to be passed to it. The protocol (see `docs/ABI.md`):
//!
//! 1. The host lays out the control region inside the host window (anywhere after the
//!    mailbox), initialises its rings, fills in [`Bootstrap`] with `magic` still zero, and
//!    writes `magic` last (a release store): the mailbox is then *posted*.
//! 2. The firmware polls `magic` (acquire). Once it reads [`BOOT_MAGIC`], it copies the record
//!    out, checks it with [`Bootstrap::validate`], attaches the control region, and publishes
//!    `fw_state` = [`fw_state::ATTACHED`] (or [`fw_state::REFUSED`] with a reason code in
//!    `fw_error`) and the `generation` it attached to in `fw_generation`.
//! 3. While running, the firmware increments `heartbeat` from its main loop. The host reads
//!    `fw_state` and `heartbeat` for liveness: a heartbeat that stops moving means the firmware
//!    stopped or hung; `fw_state` = [`fw_state::FAULTED`] means it gave up (reason in
//!    `fw_error`).
//!
//! The host writes only the host fields, the firmware only the `fw_*` fields and `heartbeat`;
//! each side copies the other's fields out before using them.

use core::mem::{offset_of, size_of};
use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `"SPRB"` read as a little-endian u32: a posted mailbox.
pub const BOOT_MAGIC: u32 = u32::from_le_bytes(*b"SPRB");
/// Bytes reserved for the mailbox at the start of the host window. The control region starts
/// at or after this offset.
pub const MAILBOX_LEN: u64 = 128;

/// Values of [`Bootstrap::fw_state`].
pub mod fw_state {
    /// The firmware has not attached (it is booting, or waiting for the host).
    pub const WAITING: u32 = 0;
    /// The firmware attached the control region of `fw_generation`.
    pub const ATTACHED: u32 = 1;
    /// The firmware refused the mailbox; the reason code is in `fw_error`.
    pub const REFUSED: u32 = 2;
    /// The firmware stopped on a fatal error; the reason code is in `fw_error`.
    pub const FAULTED: u32 = 3;
}

/// The mailbox record (64 bytes, at the start of the host window).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Bootstrap {
    /// Host: [`BOOT_MAGIC`], written last.
    pub magic: U32,
    /// Host: the ABI version the host speaks.
    pub abi_version: U32,
    /// Host: offset of the control region from the mailbox's bus address.
    pub ctrl_offset: U64,
    /// Host: length of the control region.
    pub ctrl_len: U64,
    /// Host: bumped each time the host posts a new control region (a new session).
    pub generation: U32,
    /// Firmware: [`fw_state`].
    pub fw_state: U32,
    /// Firmware: why it refused or faulted (0 none; codes in `docs/ABI.md`).
    pub fw_error: U32,
    /// Firmware: the `generation` it attached to.
    pub fw_generation: U32,
    /// Firmware: incremented from the main loop while it runs.
    pub heartbeat: U64,
    /// Firmware: its version (as GetVersion reports it).
    pub fw_version: U32,
    pub _reserved: [u8; 12],
}

const _: () = assert!(size_of::<Bootstrap>() == 64);
const _: () = assert!(size_of::<Bootstrap>() as u64 <= MAILBOX_LEN);
const _: () = assert!(offset_of!(Bootstrap, magic) == 0);
const _: () = assert!(offset_of!(Bootstrap, fw_state) == 28);
const _: () = assert!(offset_of!(Bootstrap, heartbeat) == 40);

/// Byte offsets of the fields each side stores on its own (the rest is copied as a record).
pub mod field {
    use super::Bootstrap;
    use core::mem::offset_of;
    pub const MAGIC: usize = offset_of!(Bootstrap, magic);
    pub const FW_STATE: usize = offset_of!(Bootstrap, fw_state);
    pub const FW_ERROR: usize = offset_of!(Bootstrap, fw_error);
    pub const FW_GENERATION: usize = offset_of!(Bootstrap, fw_generation);
    pub const HEARTBEAT: usize = offset_of!(Bootstrap, heartbeat);
    pub const FW_VERSION: usize = offset_of!(Bootstrap, fw_version);
}

/// Why a posted mailbox cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootstrapError {
    /// `magic` is not [`BOOT_MAGIC`] (nothing posted yet).
    NotPosted,
    /// The host speaks another ABI major version.
    AbiMismatch { host: u32 },
    /// The control region overlaps the mailbox, is not 64-byte aligned, or lies outside the
    /// window.
    BadRegion,
}

impl BootstrapError {
    /// The code the firmware publishes in `fw_error` when it refuses a mailbox for this reason.
    pub const fn code(self) -> u32 {
        match self {
            BootstrapError::NotPosted => 1,
            BootstrapError::AbiMismatch { .. } => 2,
            BootstrapError::BadRegion => 3,
        }
    }
}

impl core::fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BootstrapError::NotPosted => f.write_str("no mailbox posted"),
            BootstrapError::AbiMismatch { host } => write!(
                f,
                "host ABI {}.{} is not ours ({}.x)",
                host >> 16,
                host & 0xffff,
                crate::abi::ABI_VERSION >> 16
            ),
            BootstrapError::BadRegion => {
                f.write_str("the control region is misplaced or outside the window")
            }
        }
    }
}

impl Bootstrap {
    /// A posted mailbox naming the control region at `ctrl_offset..+ctrl_len` (`magic` set:
    /// the host must still write it last, see the module docs).
    pub fn posted(ctrl_offset: u64, ctrl_len: u64, generation: u32) -> Bootstrap {
        Bootstrap {
            magic: U32::new(BOOT_MAGIC),
            abi_version: U32::new(crate::abi::ABI_VERSION),
            ctrl_offset: U64::new(ctrl_offset),
            ctrl_len: U64::new(ctrl_len),
            generation: U32::new(generation),
            ..Bootstrap::default()
        }
    }

    /// Checks a mailbox copied out of a window of `window_len` bytes; returns the control
    /// region's (offset, length). All arithmetic is in `u64` with overflow checks: every field
    /// is the peer's.
    pub fn validate(&self, window_len: u64) -> Result<(u64, u64), BootstrapError> {
        if self.magic.get() != BOOT_MAGIC {
            return Err(BootstrapError::NotPosted);
        }
        let host = self.abi_version.get();
        if crate::abi::abi_major(host) != crate::abi::abi_major(crate::abi::ABI_VERSION) {
            return Err(BootstrapError::AbiMismatch { host });
        }
        let (off, len) = (self.ctrl_offset.get(), self.ctrl_len.get());
        let end = off.checked_add(len).ok_or(BootstrapError::BadRegion)?;
        if off < MAILBOX_LEN || !off.is_multiple_of(64) || len == 0 || end > window_len {
            return Err(BootstrapError::BadRegion);
        }
        Ok((off, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posted_mailbox_validates_and_bad_ones_do_not() {
        let ok = Bootstrap::posted(128, 4096, 1);
        assert_eq!(ok.validate(1 << 20), Ok((128, 4096)));
        assert_eq!(
            Bootstrap::default().validate(1 << 20),
            Err(BootstrapError::NotPosted)
        );
        let mut b = ok;
        b.abi_version = U32::new(crate::abi::abi_version(9, 0));
        assert_eq!(
            b.validate(1 << 20),
            Err(BootstrapError::AbiMismatch { host: 9 << 16 })
        );
        let mut b = ok;
        b.ctrl_offset = U64::new(192);
        assert_eq!(
            b.validate(1 << 20),
            Ok((192, 4096)),
            "anywhere after the mailbox"
        );
        for (off, len, win) in [
            (0, 4096, 1 << 20),             // overlaps the mailbox
            (130, 64, 1 << 20),             // not 64-byte aligned
            (128, 0, 1 << 20),              // empty
            (128, 4096, 4000),              // past the window
            (u64::MAX - 63, 128, u64::MAX), // offset + length overflows
        ] {
            let mut b = ok;
            b.ctrl_offset = U64::new(off);
            b.ctrl_len = U64::new(len);
            assert_eq!(
                b.validate(win),
                Err(BootstrapError::BadRegion),
                "{off} {len} {win}"
            );
        }
    }
}
