//! The AN500 image (`cargo xtask flash --board mps2-an500`, or QEMU): checks on this core that
//! the split decision of every capture frame equals the host's, logs the counts over defmt and
//! exits through semihosting (0 when every decision agreed).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use splitrx_mps2_an500::{exit, split_agreement, SPLIT_BLOB};

#[entry]
fn main() -> ! {
    defmt::info!("splitrx on the MPS2+ AN500 (Cortex-M7)");
    match split_agreement(SPLIT_BLOB) {
        Ok(a) if a.agreed == a.compared && a.frames > 0 => {
            defmt::info!("split agreement: {}", a);
            exit(0)
        }
        Ok(a) => {
            defmt::error!("split agreement FAILED: {}", a);
            exit(1)
        }
        Err(e) => {
            defmt::error!("bad split blob: {}", e);
            exit(2)
        }
    }
}
