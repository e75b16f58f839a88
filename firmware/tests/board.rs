//! The embedded-hal board peripherals: LEDs, the transceiver EEPROM over I2C, delays.

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin};
use embedded_hal::i2c::{ErrorType as I2cErrorType, I2c, Operation};
use splitrx_firmware::hal::{Board, BoardError, SFP_EEPROM_ADDR};
use std::cell::RefCell;
use std::rc::Rc;

type Log = Rc<RefCell<Vec<String>>>;

struct Pin(&'static str, Log);
impl PinErrorType for Pin {
    type Error = core::convert::Infallible;
}
impl OutputPin for Pin {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.1.borrow_mut().push(format!("{} low", self.0));
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.1.borrow_mut().push(format!("{} high", self.0));
        Ok(())
    }
}

struct Eeprom([u8; 256]);
impl I2cErrorType for Eeprom {
    type Error = embedded_hal::i2c::ErrorKind;
}
impl I2c for Eeprom {
    fn transaction(&mut self, addr: u8, ops: &mut [Operation<'_>]) -> Result<(), Self::Error> {
        if addr != SFP_EEPROM_ADDR {
            return Err(embedded_hal::i2c::ErrorKind::NoAcknowledge(
                embedded_hal::i2c::NoAcknowledgeSource::Address,
            ));
        }
        let mut ptr = 0usize;
        for op in ops {
            match op {
                Operation::Write(w) => ptr = w[0] as usize,
                Operation::Read(r) => {
                    for b in r.iter_mut() {
                        *b = self.0[ptr % 256];
                        ptr += 1;
                    }
                }
            }
        }
        Ok(())
    }
}

struct Delay(Log);
impl DelayNs for Delay {
    fn delay_ns(&mut self, ns: u32) {
        self.0.borrow_mut().push(format!("delay {ns}"));
    }
}

#[test]
fn board_leds_eeprom_and_delay() {
    let log: Log = Rc::default();
    let mut rom = [0u8; 256];
    rom[0] = 0x03; // SFF-8472 identifier: SFP
    rom[20..36].copy_from_slice(b"SPLITRX VENDOR  ");
    let mut b = Board {
        link_led: Pin("link", log.clone()),
        activity_led: Pin("act", log.clone()),
        i2c: Eeprom(rom),
        delay: Delay(log.clone()),
    };
    b.set_link(true).unwrap();
    b.blink_activity(2).unwrap();
    let mut id = [0u8; 1];
    b.read_transceiver_eeprom(0, &mut id).unwrap();
    assert_eq!(id, [0x03]);
    let mut vendor = [0u8; 16];
    b.read_transceiver_eeprom(20, &mut vendor).unwrap();
    assert_eq!(&vendor, b"SPLITRX VENDOR  ");
    assert_eq!(
        b.read_transceiver_eeprom(250, &mut vendor),
        Err(BoardError::Range)
    );
    let log = log.borrow();
    assert_eq!(log[0], "link high");
    assert_eq!(log[1], "act high");
    assert!(log[2].starts_with("delay"));
    assert!(log.iter().any(|l| l == "act low"));
}
