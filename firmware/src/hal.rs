//! Hardware abstraction: the traits the firmware is generic over.
//!
//! The datapath needs five things from a board: a MAC receive queue ([`MacRx`]), a MAC transmit
//! queue ([`MacTx`], for the RoCE responder's ACKs, READ responses and CNPs), a DMA engine that
//! writes byte ranges to bus addresses and reads them back ([`Dma`]: READ responses and atomics
//! read registered memory), the shared-memory windows through which rings in host (or NIC) memory are reached
//! ([`SharedMemory`]), and a monotonic clock ([`Clock`]). They are grouped by the [`Hal`] trait
//! and handed to [`crate::Firmware::new`] as a [`HalParts`], so the firmware can borrow them
//! independently (a frame lent by the MAC stays borrowed while the DMA engine reads it).
//!
//! Board peripherals that are not on the datapath (link LEDs, the transceiver's I2C EEPROM,
//! delays) go through `embedded-hal` 1.0 traits: see [`Board`].

use core::ptr::NonNull;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_hal::i2c::I2c;

/// A received frame, lent by the MAC until [`MacRx::release`].
#[derive(Clone, Copy, Debug)]
pub struct RxFrame<'a> {
    /// The frame as the MAC delivered it (FCS stripped).
    pub data: &'a [u8],
    /// RX timestamp from the MAC's clock, in nanoseconds.
    pub timestamp_ns: u64,
}

/// A MAC receive queue.
pub trait MacRx {
    /// Lends the oldest received frame without consuming it (`None` when nothing arrived).
    /// Calling it again before [`MacRx::release`] returns the same frame.
    fn peek(&mut self) -> Option<RxFrame<'_>>;
    /// Gives the oldest frame's MAC buffer back to the hardware (after it was placed or
    /// dropped). No effect when there is no frame.
    fn release(&mut self);
}

/// Why a transmit failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TxError {
    /// No free TX descriptor; try again later.
    Busy,
    /// Frame longer than the MAC accepts.
    TooLong,
}

/// A MAC transmit queue (RoCE ACK/NAK generation uses it).
pub trait MacTx {
    /// Queues `frame` for transmission (the MAC copies it before returning).
    fn transmit(&mut self, frame: &[u8]) -> Result<(), TxError>;
}

/// One segment of a scatter-gather DMA write.
#[derive(Clone, Copy, Debug)]
pub struct DmaSegment<'a> {
    /// Destination bus address.
    pub bus_addr: u64,
    /// Source bytes (in NIC memory).
    pub data: &'a [u8],
}

/// Identifies a submitted DMA write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DmaTicket(pub u32);

/// Why a DMA write failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DmaError {
    /// The engine has no free descriptor.
    Busy,
    /// More segments than [`Dma::MAX_SEGMENTS`].
    TooManySegments,
    /// The bus rejected the write (unmapped address, IOMMU fault, ...).
    Bus,
    /// The engine did not complete in the HAL's time bound.
    Timeout,
}

/// A DMA engine writing NIC memory to bus addresses (and reading bus addresses into NIC memory,
/// [`Dma::read`]).
///
/// Contract: when [`Dma::wait`] returns (with `Ok` or `Err`), the engine no longer reads the
/// source bytes and no longer writes the destination: an error is terminal for that ticket. The
/// firmware relies on it to reuse a buffer whose write failed (the host has not been told about
/// it, so it is still the NIC's).
pub trait Dma {
    /// Segments one [`Dma::write`] accepts (1 when the engine has no scatter-gather).
    const MAX_SEGMENTS: usize;
    /// Submits a scatter-gather write of `segs` (at most `MAX_SEGMENTS`).
    fn write(&mut self, segs: &[DmaSegment<'_>]) -> Result<DmaTicket, DmaError>;
    /// Polls a submitted write: `Ok(true)` when it has landed (visible to the host).
    fn poll(&mut self, t: DmaTicket) -> Result<bool, DmaError>;
    /// Waits, with the HAL's own time bound, until `t` has landed.
    fn wait(&mut self, t: DmaTicket) -> Result<(), DmaError> {
        loop {
            if self.poll(t)? {
                return Ok(());
            }
            core::hint::spin_loop();
        }
    }
    /// Reads `out.len()` bytes at `bus_addr` into `out` and waits (with the HAL's own time
    /// bound, `Timeout` past it) until they have arrived. Reads are ordered after every write
    /// whose ticket was waited for (the RoCE responder reads what it wrote: atomics, READs).
    /// On an error `out` holds unspecified bytes.
    fn read(&mut self, bus_addr: u64, out: &mut [u8]) -> Result<(), DmaError>;
}

/// The shared-memory windows: host memory regions (or NIC memory the host maps) that hold rings
/// and queue headers.
///
/// # Safety
/// Implementations promise that a pointer returned by [`SharedMemory::translate`] is valid for
/// reads and writes of `len` bytes for as long as the implementation lives, and that the memory
/// is not Rust-owned memory other code holds references to (the peer writes it concurrently:
/// the firmware only accesses it through raw pointers, atomics and copies).
pub unsafe trait SharedMemory {
    /// Translates the bus range `[bus_addr, bus_addr + len)` into a pointer, or `None` when the
    /// range is not entirely inside one window.
    fn translate(&mut self, bus_addr: u64, len: usize) -> Option<NonNull<u8>>;
}

/// A monotonic clock.
pub trait Clock {
    /// Nanoseconds since an arbitrary epoch; never decreases.
    fn now_ns(&mut self) -> u64;
}

/// The set of HAL implementations a board provides.
pub trait Hal {
    type Rx: MacRx;
    type Tx: MacTx;
    type Dma: Dma;
    type Mem: SharedMemory;
    type Clock: Clock;
}

/// The HAL instances, owned by the firmware.
pub struct HalParts<H: Hal> {
    pub rx: H::Rx,
    pub tx: H::Tx,
    pub dma: H::Dma,
    pub mem: H::Mem,
    pub clock: H::Clock,
}

impl<H: Hal> core::fmt::Debug for HalParts<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HalParts")
    }
}

/// I2C address of an SFP/QSFP transceiver's identification EEPROM (SFF-8472 A0h page).
pub const SFP_EEPROM_ADDR: u8 = 0x50;

/// Board peripherals off the datapath, through `embedded-hal` 1.0 traits.
#[derive(Debug)]
pub struct Board<Led: OutputPin, Bus: I2c, Delay: DelayNs> {
    pub link_led: Led,
    pub activity_led: Led,
    pub i2c: Bus,
    pub delay: Delay,
}

/// Errors of [`Board`] operations.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BoardError {
    Pin,
    I2c,
    /// The requested EEPROM range is past the 256-byte page.
    Range,
}

impl<Led: OutputPin, Bus: I2c, Delay: DelayNs> Board<Led, Bus, Delay> {
    /// Shows the link state on the link LED.
    pub fn set_link(&mut self, up: bool) -> Result<(), BoardError> {
        let r = if up {
            self.link_led.set_high()
        } else {
            self.link_led.set_low()
        };
        r.map_err(|_| BoardError::Pin)
    }

    /// Blinks the activity LED once (`on_ms` on, `on_ms` off).
    pub fn blink_activity(&mut self, on_ms: u32) -> Result<(), BoardError> {
        self.activity_led.set_high().map_err(|_| BoardError::Pin)?;
        self.delay.delay_ms(on_ms);
        self.activity_led.set_low().map_err(|_| BoardError::Pin)?;
        self.delay.delay_ms(on_ms);
        Ok(())
    }

    /// Reads `buf.len()` bytes of the transceiver EEPROM (page A0h) starting at `offset`.
    pub fn read_transceiver_eeprom(
        &mut self,
        offset: u8,
        buf: &mut [u8],
    ) -> Result<(), BoardError> {
        if offset as usize + buf.len() > 256 {
            return Err(BoardError::Range);
        }
        self.i2c
            .write_read(SFP_EEPROM_ADDR, &[offset], buf)
            .map_err(|_| BoardError::I2c)
    }
}
