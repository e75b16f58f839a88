//! IP protocol numbers (IANA "Assigned Internet Protocol Numbers") the parsers act on.

pub const HOPOPT: u8 = 0;
pub const ICMP: u8 = 1;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const IPV6_ROUTE: u8 = 43;
pub const IPV6_FRAG: u8 = 44;
pub const GRE: u8 = 47;
pub const ESP: u8 = 50;
pub const AH: u8 = 51;
pub const ICMPV6: u8 = 58;
pub const IPV6_NONXT: u8 = 59;
pub const IPV6_OPTS: u8 = 60;
