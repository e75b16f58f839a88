//! Zero-copy wire parsers, in the style of smoltcp's `wire` module.
//!
//! Every protocol has a `Packet<T: AsRef<[u8]>>`-like view:
//!
//! * `new_unchecked(buffer)` wraps a buffer without looking at it;
//! * `check_len()` validates that every length field the view relies on fits the buffer and
//!   returns [`Error::Truncated`] (the buffer ends inside the header) or [`Error::Malformed`]
//!   (a length field contradicts itself or the protocol);
//! * `new_checked(buffer)` is `new_unchecked` followed by `check_len`.
//!
//! Accessors never panic, whatever the buffer: fields are read through [`get`]-style helpers
//! that yield zero for bytes outside the buffer, and payload accessors clamp their ranges. After a
//! successful `check_len` every accessor returns the real field value. Offsets of every field are
//! in each module's `mod field`.
//!
//! Nothing here allocates or copies packet bytes (the RoCE ICRC copies at most 128 header bytes
//! to a stack buffer to mask the variant fields). The crate is `no_std`.
//!
//! # The transmit half
//!
//! Every protocol also has a high-level `Repr` (smoltcp style): `Repr::parse(&Packet)` reads a
//! checked view into plain values, `repr.emit(&mut Packet<&mut [u8]>)` writes them back through
//! the views' setters (`set_*`, available when the buffer is `AsMut<[u8]>`), and
//! `header_len()` / `buffer_len()` say how many bytes the header and the whole packet take.
//! `emit` writes the header only; the caller puts the payload in place (`payload_mut()`) and
//! then fills what covers it: [`checksum`] (IPv4 header, TCP/UDP over an IPv4 or IPv6
//! pseudo-header) and the RoCEv2 ICRC ([`roce::fill_icrc`]). Like smoltcp's, setters and
//! `emit` panic when the buffer is shorter than the `Repr` says (`buffer_len()`): emitting is
//! the caller's own data, not untrusted input. `parse(emit(repr)) == repr` for every `Repr`
//! (property tests in `shared/tests/wire_emit.rs`, and byte-exact re-emission of real capture
//! frames).
//!
//! [`get`]: slice::get

pub mod checksum;
pub mod ethernet;
pub mod geneve;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod mad;
pub mod roce;
pub mod tcp;
pub mod udp;
pub mod vxlan;

pub use ethernet::{EtherType, EthernetFrame, EthernetRepr, VlanRepr, VlanTag};
pub use geneve::{GeneveOption, GeneveOptions, GenevePacket, GeneveRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{
    Ipv6ExtHeader, Ipv6FragmentHeader, Ipv6Option, Ipv6Options, Ipv6Packet, Ipv6Repr,
    Ipv6RoutingHeader,
};
pub use roce::{
    Aeth, AtomicAckEth, AtomicEth, BthPacket, BthRepr, Deth, ExtHeader, Ieth, ImmDt, Reth,
    RoceLayout, RocePacket, RoceRepr,
};
pub use tcp::{TcpOption, TcpOptions, TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};
pub use vxlan::{VxlanPacket, VxlanRepr};

/// Why a view rejected its buffer.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Error {
    /// The buffer ends inside the header (or before the length a header field announces).
    Truncated,
    /// A field is inconsistent (a length shorter than the fixed header, a wrong version, ...).
    Malformed,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
        })
    }
}

pub type Result<T> = core::result::Result<T, Error>;

/// `N` bytes at `off`, or `None` when they are not all inside `b`. Never panics (no overflow:
/// the range is taken in two steps).
#[inline(always)]
pub(crate) fn bytes<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    match b.get(off..) {
        Some(rest) => match rest.get(..N) {
            Some(s) => {
                let mut out = [0u8; N];
                out.copy_from_slice(s);
                Some(out)
            }
            None => None,
        },
        None => None,
    }
}

/// The byte at `off`, or 0 outside the buffer.
#[inline(always)]
pub(crate) fn u8_at(b: &[u8], off: usize) -> u8 {
    match b.get(off) {
        Some(v) => *v,
        None => 0,
    }
}

/// Big-endian u16 at `off`, or 0 when it is not inside the buffer.
#[inline(always)]
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    match bytes::<2>(b, off) {
        Some(v) => u16::from_be_bytes(v),
        None => 0,
    }
}

/// Big-endian u32 at `off`, or 0 when it is not inside the buffer.
#[inline(always)]
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    match bytes::<4>(b, off) {
        Some(v) => u32::from_be_bytes(v),
        None => 0,
    }
}

/// Big-endian u64 at `off`, or 0 when it is not inside the buffer.
#[inline(always)]
pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
    match bytes::<8>(b, off) {
        Some(v) => u64::from_be_bytes(v),
        None => 0,
    }
}

/// Writes `v` at `off` (a setter's store). Panics when it is not inside `b`: setters and
/// `emit` need the buffer `buffer_len()` asks for (see the module docs).
#[inline(always)]
pub(crate) fn put<const N: usize>(b: &mut [u8], off: usize, v: [u8; N]) {
    b[off..off + N].copy_from_slice(&v);
}

/// `b[start..end]` mutably, clamped to the buffer (the mutable twin of [`clamp`]).
#[inline(always)]
pub(crate) fn clamp_mut(b: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = if end > b.len() { b.len() } else { end };
    match b.get_mut(start..end) {
        Some(s) => s,
        None => &mut [],
    }
}

/// `b[start..end]`, clamped to the buffer (empty when the range is empty or outside it).
#[inline(always)]
pub(crate) fn clamp(b: &[u8], start: usize, end: usize) -> &[u8] {
    let end = if end > b.len() { b.len() } else { end };
    match b.get(start..end) {
        Some(s) => s,
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_never_panic() {
        let b = [1u8, 2, 3];
        assert_eq!(be16(&b, 0), 0x0102);
        assert_eq!(be16(&b, 2), 0);
        assert_eq!(be16(&b, usize::MAX), 0);
        assert_eq!(be32(&b, 0), 0);
        assert_eq!(be64(&b, usize::MAX - 3), 0);
        assert_eq!(u8_at(&b, 3), 0);
        assert_eq!(clamp(&b, 1, 100), &[2, 3]);
        assert_eq!(clamp(&b, 3, 2), &[] as &[u8]);
        assert_eq!(clamp(&b, usize::MAX, usize::MAX), &[] as &[u8]);
        assert_eq!(bytes::<3>(&b, 0), Some([1, 2, 3]));
        assert_eq!(bytes::<3>(&b, 1), None);
    }
}
