//! Ground truth: what a generated frame is, and the exact split decision it must get.

use splitrx_shared::split::{
    FrameClass, NoSplitReason, RoceInfo, SplitConfig, SplitResult, Tunnel,
};

/// RoCE details of a generated packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RoceTruth {
    pub opcode: u8,
    pub dest_qp: u32,
    pub psn: u32,
    /// BTH pad count (0..=3).
    pub pad: u8,
    /// Message number within the flow (0, 1, ...).
    pub msn: u64,
    /// Total message length.
    pub msg_len: u32,
    /// Offset of this packet's payload within the message.
    pub msg_offset: u32,
    /// WRITE: the remote virtual address this packet's payload is written to.
    pub va: Option<u64>,
    /// WRITE: the R_Key of the flow's region.
    pub rkey: Option<u32>,
}

/// What a generated frame is: the exact answers the header split must give.
/// All offsets are from the first byte of the Ethernet frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FrameTruth {
    /// Index of the flow in the spec.
    pub flow: u32,
    /// Packet number within the flow (0, 1, ...); with `flow` it determines the payload.
    pub seq: u64,
    pub class: FrameClass,
    pub frame_len: u32,
    /// Where the innermost L4 (or RoCE) payload starts.
    pub payload_offset: u32,
    /// Payload length (excludes Ethernet padding, RoCE pad and ICRC).
    pub payload_len: u32,
    /// Innermost IP header.
    pub l3_offset: u32,
    /// Innermost L4 header.
    pub l4_offset: u32,
    /// Outermost IP header.
    pub outer_l3_offset: u32,
    pub outer_ip_version: u8,
    pub tunnel: Option<Tunnel>,
    pub roce: Option<RoceTruth>,
}

impl FrameTruth {
    /// The payload bytes, taken from `frame` (`None` when `frame` is too short for them).
    pub fn payload<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        let start = self.payload_offset as usize;
        frame.get(start..start.checked_add(self.payload_len as usize)?)
    }

    /// The [`SplitResult`] the split decision must return for this frame under `cfg`.
    pub fn expected_split(&self, cfg: &SplitConfig) -> SplitResult {
        let split = self.payload_len > cfg.hds_thresh;
        SplitResult {
            class: self.class,
            reason: if split {
                NoSplitReason::Split
            } else {
                NoSplitReason::BelowThresh
            },
            split,
            payload_offset: Some(self.payload_offset),
            payload_len: Some(self.payload_len),
            l3_offset: Some(self.l3_offset),
            l4_offset: Some(self.l4_offset),
            outer_l3_offset: Some(self.outer_l3_offset),
            outer_ip_version: self.outer_ip_version,
            tunnel: self.tunnel,
            roce: self.roce.map(|r| RoceInfo {
                opcode: r.opcode,
                dest_qp: r.dest_qp,
                psn: r.psn,
                icrc_ok: cfg.verify_icrc.then_some(true),
            }),
            error: None,
        }
    }
}

/// A generated frame with its truth.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Frame {
    pub bytes: Vec<u8>,
    pub truth: FrameTruth,
}
