//! Booting from the bootstrap mailbox (`splitrx_shared::bootstrap`): the entry point for boards
//! that cannot pass arguments to the firmware (a bare-metal image under QEMU, a real board).
//!
//! The board knows one bus address from its memory map, the mailbox at the start of the host
//! window. [`Firmware::boot`] waits for the host to post it, attaches the control region it
//! names, and publishes the outcome there; [`Firmware::poll`] then keeps the mailbox's
//! heartbeat moving so the host can tell a live firmware from a stopped one.

use crate::config::FW_VERSION;
use crate::control::InitError;
use crate::hal::{Hal, HalParts, SharedMemory};
use crate::Firmware;
use core::ptr::NonNull;
use core::sync::atomic::{fence, Ordering};
use splitrx_shared::bootstrap::{
    field, fw_state, Bootstrap, BootstrapError, BOOT_MAGIC, MAILBOX_LEN,
};
use zerocopy::FromBytes;

/// Heartbeat stores happen once every this many polls (a power of two).
pub const HEARTBEAT_EVERY: u64 = 64;

/// Why [`Firmware::boot`] did not bring the firmware up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The mailbox address is not inside a shared-memory window, or not 8-byte aligned.
    NoMailbox,
    /// The board asked to stop waiting before the host posted the mailbox.
    Stopped,
    /// The posted mailbox is unusable (published as REFUSED with [`BootstrapError::code`]).
    Mailbox(BootstrapError),
    /// The control region it names was refused (published as REFUSED with
    /// [`init_error_code`]).
    Init(InitError),
}

/// The `fw_error` code published for a refused control region: 0x100 + the reason.
pub const fn init_error_code(e: InitError) -> u32 {
    0x100
        + match e {
            InitError::Unmapped => 1,
            InitError::Misaligned => 2,
            InitError::Header(_) => 3,
            InitError::WrongQueueId => 4,
            InitError::Rings => 5,
            InitError::Ring(_) => 6,
        }
}

/// Stores a firmware field of the mailbox.
///
/// # Safety
/// `mb` points to a mapped, 8-byte aligned mailbox of at least `MAILBOX_LEN` bytes.
unsafe fn store_u32(mb: NonNull<u8>, off: usize, v: u32) {
    // SAFETY: the caller's contract; `off` is a field offset inside the 64-byte record, 4-byte
    // aligned (asserted in shared), and the host never writes the firmware's fields.
    unsafe { core::ptr::write_volatile(mb.as_ptr().add(off).cast::<u32>(), v.to_le()) }
}

/// Publishes the heartbeat.
///
/// # Safety
/// As for [`store_u32`].
pub(crate) unsafe fn store_heartbeat(mb: NonNull<u8>, beats: u64) {
    // SAFETY: the caller's contract; the heartbeat is 8-byte aligned in the record.
    unsafe {
        core::ptr::write_volatile(
            mb.as_ptr().add(field::HEARTBEAT).cast::<u64>(),
            beats.to_le(),
        )
    }
}

impl<H: Hal> Firmware<H> {
    /// Waits for the host to post the mailbox at `mailbox_bus` (calling `keep_waiting` between
    /// looks; it returns `false` to give up), attaches the control region it names, and
    /// publishes `ATTACHED` (or `REFUSED` and the reason) in the mailbox.
    pub fn boot(
        mut hal: HalParts<H>,
        mailbox_bus: u64,
        mut keep_waiting: impl FnMut() -> bool,
    ) -> Result<Self, BootError> {
        let mb = hal
            .mem
            .translate(mailbox_bus, MAILBOX_LEN as usize)
            .filter(|p| (p.as_ptr() as usize).is_multiple_of(8))
            .ok_or(BootError::NoMailbox)?;
        // SAFETY: translated above: MAILBOX_LEN mapped bytes, 8-byte aligned.
        unsafe {
            store_u32(mb, field::FW_STATE, fw_state::WAITING);
            store_u32(mb, field::FW_VERSION, FW_VERSION);
        }
        loop {
            // SAFETY: `magic` is the first, 4-byte aligned word of the mapped mailbox.
            let magic =
                u32::from_le(unsafe { core::ptr::read_volatile(mb.as_ptr().cast::<u32>()) });
            if magic == BOOT_MAGIC {
                break;
            }
            if !keep_waiting() {
                return Err(BootError::Stopped);
            }
            core::hint::spin_loop();
        }
        // Everything the host wrote before `magic` is visible after this fence.
        fence(Ordering::Acquire);
        // SAFETY: 64 mapped bytes; a volatile copy, after which only the copy is used (any bit
        // pattern is a valid Bootstrap).
        let raw: [u8; 64] = unsafe { core::ptr::read_volatile(mb.as_ptr().cast()) };
        let rec = Bootstrap::read_from_bytes(&raw).map_err(|_| BootError::NoMailbox)?;
        let refuse = |code: u32| {
            // SAFETY: as above.
            unsafe {
                store_u32(mb, field::FW_ERROR, code);
                store_u32(mb, field::FW_STATE, fw_state::REFUSED);
            }
        };
        // The window's length is not the firmware's to know: `translate` bounds the region.
        let (off, len) = match rec.validate(u64::MAX) {
            Ok(v) => v,
            Err(e) => {
                refuse(e.code());
                fw_error!("bootstrap mailbox refused: code {}", e.code());
                return Err(BootError::Mailbox(e));
            }
        };
        let Some(ctrl_bus) = mailbox_bus.checked_add(off) else {
            refuse(BootstrapError::BadRegion.code());
            return Err(BootError::Mailbox(BootstrapError::BadRegion));
        };
        match Self::attach_control(&mut hal, ctrl_bus, len) {
            Ok(ctrl) => {
                let mut fw = Self::with_control(hal, ctrl);
                fw.mailbox = Some(mb);
                // SAFETY: as above.
                unsafe {
                    store_u32(mb, field::FW_ERROR, 0);
                    store_u32(mb, field::FW_GENERATION, rec.generation.get());
                    store_u32(mb, field::FW_STATE, fw_state::ATTACHED);
                }
                Ok(fw)
            }
            Err(e) => {
                refuse(init_error_code(e));
                fw_error!("control region refused: code {}", init_error_code(e));
                Err(BootError::Init(e))
            }
        }
    }

    /// Publishes `FAULTED` with `code` in the mailbox (a board that stops on a fatal error).
    pub fn publish_fault(&mut self, code: u32) {
        if let Some(mb) = self.mailbox {
            // SAFETY: `mb` was translated and checked by `boot`; the HAL keeps it mapped.
            unsafe {
                store_u32(mb, field::FW_ERROR, code);
                store_u32(mb, field::FW_STATE, fw_state::FAULTED);
            }
        }
    }
}
