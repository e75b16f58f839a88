//! splitrx shared crate: the host<->NIC ABI, shared-memory rings, wire parsers and the
//! header-split decision. `no_std`, no `alloc`: compiled by the firmware and the host alike.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

#[cfg(any(feature = "std", test))]
extern crate std;

/// A fieldless `#[repr(int)]` enum with its integer conversion: `from_xx(v) -> Option<Self>`,
/// `ALL` (every variant in declaration order) and `From<Self> for int`. The one place enum <->
/// integer conversions of the ABI are written; every generated enum derives `defmt::Format`
/// with the `defmt` feature.
macro_rules! int_enum {
    (
        $(#[$m:meta])*
        $vis:vis enum $name:ident: $repr:ident, $from:ident {
            $($(#[$vm:meta])* $var:ident = $val:literal,)*
        }
    ) => {
        $(#[$m])*
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr($repr)]
        $vis enum $name {
            $($(#[$vm])* $var = $val,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            /// The variant whose value is `v`, if any.
            pub const fn $from(v: $repr) -> Option<$name> {
                match v {
                    $($val => Some($name::$var),)*
                    _ => None,
                }
            }
        }

        impl From<$name> for $repr {
            fn from(v: $name) -> $repr {
                v as $repr
            }
        }
    };
}

pub mod abi;
pub mod bootstrap;
pub mod csum;
pub mod region;
pub mod ring;
pub mod split;
pub mod stats;
pub mod wire;
