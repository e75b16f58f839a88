//! The logging shim (embassy style): `defmt` macros with the `defmt` feature (on target), the
//! `log` crate otherwise (on the host, where `tracing` can pick `log` records up). Arguments
//! must be primitives that both back-ends format with `{}`.
#![allow(unused_macros)]

macro_rules! fw_debug {
    ($s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::debug!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        ::log::debug!($s $(, $x)*);
    }};
}

macro_rules! fw_info {
    ($s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::info!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        ::log::info!($s $(, $x)*);
    }};
}

macro_rules! fw_warn {
    ($s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::warn!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        ::log::warn!($s $(, $x)*);
    }};
}

macro_rules! fw_error {
    ($s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::error!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        ::log::error!($s $(, $x)*);
    }};
}
