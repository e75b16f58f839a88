//! Deterministic synthetic traffic: complete Ethernet frames with correct checksums and ICRCs,
//! each paired with its ground truth (the exact header-split answer).
//!
//! # The `--synthetic SPEC` grammar
//!
//! ```text
//! spec   := item ("," item)*
//! item   := "mix" | flow                                ("mix" adds the flows of MIX)
//! flow   := kind [":" sizes] ["@" pmtu] ["*" weight]
//! kind   := ["vlan" [ID] "-"] base
//! base   := "tcp4" | "tcp6" | "udp4" | "udp6"
//!         | "vxlan" | "vxlan-tcp" | "vxlan-udp"          (vxlan = vxlan-tcp)
//!         | "roce-write" | "roce-send" | "roce6-write" | "roce6-send"
//! sizes  := N | LO "-" HI | A "/" B ["/" C ...]          (decimal bytes)
//! pmtu   := 256 | 512 | 1024 | 2048 | 4096               (RoCE only; default 4096)
//! weight := 1..=1000                                     (default 1)
//! ```
//!
//! Every `flow` item is one flow (one 5-tuple, one QP). `sizes` is the L4 payload length of each
//! frame for TCP/UDP/VXLAN (default 1500; `N` fixed, `LO-HI` uniform, `A/B/C` uniform choice),
//! and the *message* length for RoCE, which is segmented into path-MTU packets
//! (FIRST/MIDDLE.../LAST, or ONLY). Limits: TCP/UDP/VXLAN payloads at most [`MAX_PAYLOAD`]
//! (9000) bytes, RoCE messages at most [`MAX_ROCE_MESSAGE`] bytes, and no frame longer than
//! [`MAX_FRAME`] (9216) bytes. `vlan-` adds an 802.1Q tag (VLAN 100, or `vlanID-` for ID in
//! 1..=4094; for VXLAN the tag is on the outer frame). The generator picks the next flow at
//! random in proportion to the weights; a RoCE flow that is in the middle of a message continues
//! it when picked, so packets of one QP are always in PSN order.
//!
//! `mix` is [`MIX`]. Examples: `tcp4:1500,udp6:64,vxlan:4000,roce-write:4096,vlan-tcp4:1500`,
//! `tcp4:64-9000*3,roce-send:65536@1024`.
//!
//! # What is generated
//! - TCP: 32-byte header (NOP, NOP, timestamps), PSH|ACK, sequence numbers advance by payload.
//! - UDP: 8-byte header, checksum always computed (IPv4 and IPv6 pseudo-headers).
//! - IPv4: 20-byte header, DF, TTL 64, increasing identification, correct header checksum.
//!   IPv6: no extension headers, per-flow flow label, hop limit 64.
//! - VXLAN: outer IPv4/UDP 4789 with UDP checksum 0 (RFC 7348), VNI per flow, inner Ethernet /
//!   IPv4 / TCP or UDP with correct inner checksums.
//! - RoCEv2 (UDP 4791) RC: BTH (+ RETH on WRITE FIRST/ONLY), payload, pad to a multiple of 4,
//!   ICRC. The UDP checksum is 0 over IPv4 (as Linux rxe and RoCE NICs send) and computed over
//!   IPv6. PSNs increase by one per packet per QP (24-bit, wrapping), AckReq on LAST/ONLY.
//! - Frames shorter than 60 bytes get Ethernet padding, which is not payload.
//! - Payload bytes are [`fill_payload`]`(flow, seq)`: a verifier recomputes them.
//!
//! # Layout
//! Frames are built from `splitrx_shared::wire`'s emitters (the `Repr` structs of each layer,
//! the shared checksum module and the shared ICRC), one implementation for parsing and
//! generating. `spec.rs` is the grammar and its parser, `pattern.rs` the PRNG and the payload
//! pattern, `truth.rs` the ground truth of a frame, `generator.rs` the generator (flow state
//! and frames from `Repr`s).

mod generator;
mod pattern;
mod spec;
mod truth;

pub use generator::{Generator, RoceFlowParams};
pub use pattern::{fill_payload, payload_mismatch, SplitMix64};
pub use spec::{
    FlowKind, FlowSpec, IpVersion, RoceOp, SizeSpec, SpecError, SpecErrorKind, TrafficSpec, L4,
};
pub use truth::{Frame, FrameTruth, RoceTruth};

/// Largest TCP/UDP/VXLAN-inner payload the generator accepts.
pub const MAX_PAYLOAD: u32 = 9000;
/// Largest frame (without FCS) the generator may produce.
pub const MAX_FRAME: usize = 9216;
/// Ethernet minimum frame length without FCS; shorter frames are zero-padded.
pub const MIN_FRAME: usize = 60;
/// Largest RoCE message (it is segmented into path-MTU packets).
pub const MAX_ROCE_MESSAGE: u32 = 1 << 20;
/// Largest number of flows in one spec.
pub const MAX_FLOWS: usize = 4096;
/// Largest flow weight.
pub const MAX_WEIGHT: u32 = 1000;
/// Size of each RoCE WRITE flow's remote memory region; messages are placed in it one after
/// another (64-byte aligned), wrapping to its start.
pub const ROCE_REGION_LEN: u64 = 4 << 20;
/// Default payload size when an item has no `:sizes`.
pub const DEFAULT_SIZE: u32 = 1500;
/// Default RoCE path MTU.
pub const DEFAULT_PMTU: u32 = 4096;
/// VLAN id used by a bare `vlan-` prefix.
pub const DEFAULT_VLAN: u16 = 100;

/// The built-in mixed workload (`--synthetic mix`).
pub const MIX: &str = "tcp4:64-1500*4,tcp6:1500*2,udp4:64/512/1500*2,udp6:64-9000,\
vlan-tcp4:1500,vxlan-tcp:1400,vxlan-udp:64-1400,roce-write:1-16384@1024*2,\
roce-send:64-4096@1024,roce6-write:9000@4096";

/// UDP destination port of RoCEv2.
pub const ROCE_PORT: u16 = splitrx_shared::wire::udp::port::ROCEV2;
/// UDP destination port of VXLAN.
pub const VXLAN_PORT: u16 = splitrx_shared::wire::udp::port::VXLAN;
/// TCP destination port of generated TCP flows.
pub const TCP_PORT: u16 = 5201;
/// UDP destination port of generated UDP flows.
pub const UDP_PORT: u16 = 9000;

/// The RC opcodes the generator sends (IBTA vol. 1, table 38), under their short names: aliases
/// of `splitrx_shared::wire::roce::opcode`.
pub mod opcode {
    use splitrx_shared::wire::roce::opcode as rc;
    pub const SEND_FIRST: u8 = rc::RC_SEND_FIRST;
    pub const SEND_MIDDLE: u8 = rc::RC_SEND_MIDDLE;
    pub const SEND_LAST: u8 = rc::RC_SEND_LAST;
    pub const SEND_ONLY: u8 = rc::RC_SEND_ONLY;
    pub const WRITE_FIRST: u8 = rc::RC_WRITE_FIRST;
    pub const WRITE_MIDDLE: u8 = rc::RC_WRITE_MIDDLE;
    pub const WRITE_LAST: u8 = rc::RC_WRITE_LAST;
    pub const WRITE_ONLY: u8 = rc::RC_WRITE_ONLY;
}
