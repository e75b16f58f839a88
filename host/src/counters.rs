//! Counter structs: one field list gives the struct and its sum (over queues, over pools).

/// Defines a struct of `u64` counters with `AddAssign` and `Sum`, from one field list.
#[macro_export]
macro_rules! counters {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident,)* }) => {
        $(#[$m])*
        pub struct $name {
            $($(#[$fm])* pub $f: u64,)*
        }
        impl ::core::ops::AddAssign for $name {
            fn add_assign(&mut self, o: Self) {
                $(self.$f += o.$f;)*
            }
        }
        impl ::core::iter::Sum for $name {
            fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
                let mut t = Self::default();
                for x in iter {
                    t += x;
                }
                t
            }
        }
    };
}
