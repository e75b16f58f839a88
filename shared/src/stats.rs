//! Counter numbering of [`crate::abi::CtrlOp::ReadStats`].
//!
//! A queue's counters are numbered by the constants in [`q`], the device-wide counters
//! (`StatsArgs::queue == u16::MAX`) by those in [`dev`]. Page `p` of a ReadStats response holds
//! counters `p * STATS_PER_PAGE ..` ([`crate::abi::STATS_PER_PAGE`]). The numbering is part of
//! the ABI: new counters are only ever appended. `docs/ABI.md` has the same table (checked by
//! `tests/abi_doc.rs`). The counters themselves live in the firmware.

use crate::split::{FrameClass, NoSplitReason};

macro_rules! counters {
    ($(#[$m:meta])* $modname:ident, $count:ident, $names:ident { $($(#[$fm:meta])* $name:ident = $idx:expr, $text:literal;)* }) => {
        $(#[$m])*
        pub mod $modname {
            $($(#[$fm])* pub const $name: usize = $idx;)*
        }
        /// Names of the counters, indexed by number.
        pub const $names: &[&str] = &[$($text),*];
        pub const $count: usize = $names.len();
        const _: () = { let mut i = 0; $(assert!($modname::$name == i); i += 1;)* let _ = i; };
    };
}

counters! {
    /// Per-queue counter numbers.
    q, Q_COUNT, Q_NAMES {
        /// Frames placed (a completion was written).
        RX_FRAMES = 0, "rx_frames";
        /// Bytes of placed frames (frame length).
        RX_BYTES = 1, "rx_bytes";
        /// Placed frames that were split.
        SPLIT = 2, "split";
        /// Placed frames that went whole to the header buffer.
        NOT_SPLIT = 3, "not_split";
        /// Unsplit frames longer than the header buffer (truncated, `HDR_TRUNCATED`).
        HDR_TRUNCATED = 4, "hdr_truncated";
        /// Dropped at the MAC: no header buffer.
        DROP_NO_HDR_BUF = 5, "drop_no_hdr_buf";
        /// Dropped at the MAC: no payload buffer.
        DROP_NO_PAY_BUF = 6, "drop_no_pay_buf";
        /// Dropped at the MAC: completion ring full.
        DROP_CQ_FULL = 7, "drop_cq_full";
        /// Dropped at the MAC: the queue is faulted, stopped or resetting.
        DROP_QUEUE_FAULT = 8, "drop_queue_fault";
        /// Dropped: a split frame's headers are longer than a header buffer.
        DROP_HDR_OVERFLOW = 9, "drop_hdr_overflow";
        /// Dropped: a payload is longer than a payload buffer.
        DROP_PAY_OVERFLOW = 10, "drop_pay_overflow";
        /// Dropped: the DMA engine reported an error.
        DROP_DMA_ERROR = 11, "drop_dma_error";
        /// Fill descriptor discarded: names a pool not bound to that fill ring.
        DESC_BAD_POOL = 12, "desc_bad_pool";
        /// Fill descriptor discarded: buffer index >= pool count.
        DESC_BAD_INDEX = 13, "desc_bad_index";
        /// Fill descriptor discarded: bus address != base + index * buf_size.
        DESC_BAD_ADDR = 14, "desc_bad_addr";
        /// Fill descriptor discarded: length != buf_size.
        DESC_BAD_LEN = 15, "desc_bad_len";
        /// Fill descriptor discarded: the buffer is already posted (held by the NIC).
        DESC_DUP = 16, "desc_dup";
        /// Fill descriptors accepted.
        DESC_OK = 17, "desc_ok";
        /// Packed mode: payload buffers retired (with PAY_RETIRED, on a frame or a FLUSH).
        PACKED_RETIRED = 18, "packed_retired";
        /// Packed mode: FLUSH completions written.
        PACKED_FLUSH = 19, "packed_flush";
        /// Ring corruption faults.
        RING_FAULTS = 20, "ring_faults";
        /// Resets (ResetQueue) completed.
        RESETS = 21, "resets";
        /// Buffers reported outstanding by resets and destroys.
        REPORTED = 22, "reported_outstanding";
        /// Placed frames per class (`FrameClass as usize - 1`): tcp, udp, roce, fragment,
        /// other_ip, non_ip, malformed.
        CLASS_TCP = 23, "class_tcp";
        CLASS_UDP = 24, "class_udp";
        CLASS_ROCE = 25, "class_roce";
        CLASS_FRAGMENT = 26, "class_fragment";
        CLASS_OTHER_IP = 27, "class_other_ip";
        CLASS_NON_IP = 28, "class_non_ip";
        CLASS_MALFORMED = 29, "class_malformed";
        /// Placed unsplit frames per reason (`NoSplitReason as usize - 1` for reasons 1..=5;
        /// the later reasons follow `icrc_bad`: see [`super::reason_counter`]).
        REASON_BELOW_THRESH = 30, "reason_below_hds_thresh";
        REASON_FRAGMENT = 31, "reason_fragment";
        REASON_UNKNOWN_PROTO = 32, "reason_unknown_proto";
        REASON_NON_IP = 33, "reason_non_ip";
        REASON_MALFORMED = 34, "reason_malformed";
        /// RoCE frames whose ICRC was wrong.
        ICRC_BAD = 35, "icrc_bad";
        /// Completions that broke the shared rule (`RxCompletion::validate`) when the firmware
        /// built them: a firmware defect. They are still published, so the host quarantines
        /// their buffers instead of losing them.
        COMPLETION_INVALID = 36, "completion_invalid";
        /// Placed unsplit frames per reason, continued: RoCE with an RD/XRC opcode.
        REASON_UNSUPPORTED_TRANSPORT = 37, "reason_unsupported_transport";
        /// VXLAN/Geneve nested deeper than `split::MAX_TUNNEL_DEPTH`.
        REASON_TUNNEL_TOO_DEEP = 38, "reason_tunnel_too_deep";
        /// Placed frames whose innermost TCP/UDP checksum was verified right (`CSUM_OK`).
        CSUM_OK = 39, "csum_ok";
        /// Placed frames with a wrong IPv4 header or TCP/UDP checksum (`CSUM_BAD`).
        CSUM_BAD = 40, "csum_bad";
        /// Placed frames with no L4 checksum verified (neither flag: not TCP/UDP, a fragment,
        /// UDP checksum 0 over IPv4, malformed).
        CSUM_NONE = 41, "csum_none";
    }
}

counters! {
    /// Device-wide counter numbers.
    dev, DEV_COUNT, DEV_NAMES {
        /// Frames taken from the MAC.
        MAC_FRAMES = 0, "mac_frames";
        /// Bytes taken from the MAC.
        MAC_BYTES = 1, "mac_bytes";
        /// Frames dropped because no RX queue exists.
        DROP_NO_QUEUE = 2, "drop_no_queue";
        /// Control requests answered `Ok`.
        CMD_OK = 3, "cmd_ok";
        /// Control requests answered with an error status.
        CMD_ERR = 4, "cmd_err";
        /// Control requests with an unknown opcode.
        CMD_UNKNOWN = 5, "cmd_unknown";
        /// Control requests answered `Invalid`.
        CMD_INVALID = 6, "cmd_invalid";
        /// The control rings were found corrupt (control plane stopped).
        CTRL_RING_FAULT = 7, "ctrl_ring_fault";
        /// RX timestamp of the last frame taken from the MAC (ns).
        LAST_RX_TIMESTAMP = 8, "last_rx_timestamp_ns";
        /// Poll calls that did work.
        BUSY_POLLS = 9, "busy_polls";
        /// Frames shorter than an Ethernet header (`abi::MIN_FRAME`), empty ones included,
        /// dropped at the MAC.
        DROP_RUNT = 10, "drop_runt";
        /// RoCE responder (rxe / mlx5 counter names where one exists): RoCEv2 packets for an
        /// existing QP, taken by the responder instead of the RX queues.
        ROCE_RCVD_PKTS = 11, "rcvd_pkts";
        /// Packets the responder transmitted (ACK, NAK, READ response, ATOMIC ACK, CNP).
        ROCE_SENT_PKTS = 12, "sent_pkts";
        /// Requests with a PSN before the expected one (re-ACKed, READ re-executed, atomic
        /// replayed, or dropped when no saved resource covers it).
        ROCE_DUPLICATE_REQUEST = 13, "duplicate_request";
        /// Requests with a PSN after the expected one (one PSN-sequence-error NAK per gap).
        ROCE_OUT_OF_SEQ_REQUEST = 14, "out_of_seq_request";
        /// RNR NAKs sent (no receive WQE posted, or no free CQ slot for its completion).
        ROCE_SEND_RNR_ERR = 15, "send_rnr_err";
        /// Receive WQEs completed successfully (SEND, WRITE with immediate).
        ROCE_RECV_COMPLETED = 16, "recv_wqe_completed";
        /// RDMA WRITE messages whose first packet (FIRST or ONLY) was executed: a request
        /// refused (bad rkey, range, length) or RNR-NAKed is not counted, its retry once.
        ROCE_RX_WRITE_REQUESTS = 17, "rx_write_requests";
        /// RDMA READ requests executed (duplicates included).
        ROCE_RX_READ_REQUESTS = 18, "rx_read_requests";
        /// Atomic requests executed (replays not included).
        ROCE_RX_ATOMIC_REQUESTS = 19, "rx_atomic_requests";
        /// Remote access errors: bad rkey, PD, access right or range (NAK, RC QP to ERR).
        ROCE_RESP_REMOTE_ACCESS_ERRORS = 20, "resp_remote_access_errors";
        /// SEND messages longer than the posted receive buffer.
        ROCE_RESP_LOCAL_LENGTH_ERROR = 21, "resp_local_length_error";
        /// Invalid requests: opcode sequence, length against the path MTU or the RETH,
        /// misaligned atomic, an operation the QP's access flags do not allow.
        ROCE_RESP_INVALID_REQUEST = 22, "resp_invalid_request";
        /// Receive completions written with an error status (flushes included).
        ROCE_RESP_CQE_ERROR = 23, "resp_cqe_error";
        /// Receive WQEs completed with `WR_FLUSH_ERR` (QP destroyed, or moved to ERR/RESET).
        ROCE_RESP_CQE_FLUSH_ERROR = 24, "resp_cqe_flush_error";
        /// RoCE packets for a QP dropped because their ICRC was wrong.
        ROCE_ICRC_ERRORS = 25, "rx_icrc_errors";
        /// CE-marked (ECN) RoCE packets for a QP.
        ROCE_NP_ECN_MARKED = 26, "np_ecn_marked_roce_packets";
        /// CNPs sent (at most one per QP per CNP interval).
        ROCE_NP_CNP_SENT = 27, "np_cnp_sent";
        /// UD packets dropped for a Q_Key mismatch.
        ROCE_QKEY_MISMATCH = 28, "rx_qkey_mismatch";
        /// Packets the responder dropped silently for other reasons: QP not in RTR/RTS, source
        /// address not the QP's peer, opcode of another transport or of the requester side,
        /// P_Key or TVer mismatch, UC message dropped after a gap, READ response in progress.
        ROCE_RESP_DISCARDS = 29, "resp_discards";
        /// Responses the MAC did not accept (busy or too long).
        ROCE_RESP_TX_DROPPED = 30, "resp_tx_dropped";
        /// RNR NAKs sent because the QP's CQ had no free slot (also counted `send_rnr_err`).
        ROCE_RESP_CQ_FULL = 31, "resp_cq_full";
        /// DMA errors while placing, reading or completing (the QP goes to ERR).
        ROCE_RESP_DMA_ERRORS = 32, "resp_dma_errors";
        /// Receive WQEs refused: lkey, PD, LOCAL_WRITE or range (completed `LOC_PROT_ERR`).
        ROCE_RESP_LOCAL_PROT_ERROR = 33, "resp_local_protection_error";
        /// RoCE receive rings (RecvWqe) or CQs found corrupt (the QP goes to ERR).
        ROCE_RING_FAULTS = 34, "roce_ring_faults";
        /// CM REQs received on QP 1 (duplicates included).
        CM_REQ_RCVD = 35, "cm_req_rcvd";
        /// CM REPs sent (a duplicate REQ is answered with the same REP again).
        CM_REP_SENT = 36, "cm_rep_sent";
        /// CM RTUs that completed a connection (the QP to RTS).
        CM_RTU_RCVD = 37, "cm_rtu_rcvd";
        /// CM REJs sent: nobody listens on the service, its QP is taken, or the REQ asks for
        /// something the responder cannot do.
        CM_REJ_SENT = 38, "cm_rej_sent";
        /// CM DREQs received.
        CM_DREQ_RCVD = 39, "cm_dreq_rcvd";
        /// CM DREPs sent.
        CM_DREP_SENT = 40, "cm_drep_sent";
        /// CM MADs to QP 1 dropped while some service is listened on: not whole, another
        /// class version or method, an attribute the CM does not serve, a message for no
        /// known connection, a repeated RTU, or no room in the connection table.
        CM_MADS_DROPPED = 41, "cm_mads_dropped";
        /// Send WQEs the requester took from send rings.
        REQ_WQES_TAKEN = 42, "req_wqes_taken";
        /// Send WQEs completed successfully.
        REQ_WQES_COMPLETED = 43, "req_wqes_completed";
        /// Send completions written with an error status (flushes included).
        REQ_CQE_ERROR = 44, "req_cqe_error";
        /// Request packets sent again (after a timeout, a sequence NAK or an RNR NAK).
        REQ_RETRANSMITS = 45, "req_retransmits";
        /// Local ACK timeouts (no acknowledgement within the QP's timeout).
        REQ_TIMEOUTS = 46, "req_local_ack_timeouts";
        /// RNR NAKs received.
        REQ_RNR_NAKS_RCVD = 47, "req_rnr_naks_rcvd";
        /// PSN sequence error NAKs received.
        REQ_SEQ_NAKS_RCVD = 48, "req_seq_naks_rcvd";
        /// Responses the requester dropped: nothing outstanding at that PSN, an opcode out of
        /// sequence, a READ response of the wrong length, a stale duplicate acknowledgement.
        REQ_DISCARDS = 49, "req_discards";
    }
}

/// Counter number of a frame class (placed frames).
pub const fn class_counter(c: FrameClass) -> usize {
    q::CLASS_TCP + c as usize - 1
}

/// Counter number of a no-split reason (`None` for `Split`).
pub const fn reason_counter(r: NoSplitReason) -> Option<usize> {
    match r {
        NoSplitReason::Split => None,
        NoSplitReason::BelowThresh => Some(q::REASON_BELOW_THRESH),
        NoSplitReason::Fragment => Some(q::REASON_FRAGMENT),
        NoSplitReason::UnknownProto => Some(q::REASON_UNKNOWN_PROTO),
        NoSplitReason::NonIp => Some(q::REASON_NON_IP),
        NoSplitReason::Malformed => Some(q::REASON_MALFORMED),
        NoSplitReason::UnsupportedTransport => Some(q::REASON_UNSUPPORTED_TRANSPORT),
        NoSplitReason::TunnelTooDeep => Some(q::REASON_TUNNEL_TOO_DEEP),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_is_dense() {
        assert_eq!(Q_COUNT, 42);
        assert_eq!(DEV_COUNT, 50);
        assert_eq!(class_counter(FrameClass::Malformed), q::CLASS_MALFORMED);
        assert_eq!(reason_counter(NoSplitReason::Split), None);
        // Every reason has its own counter, named after the reason.
        let mut seen = std::vec::Vec::new();
        for i in 1..NoSplitReason::COUNT as u8 {
            let r = NoSplitReason::from_u8(i).unwrap();
            let c = reason_counter(r).unwrap();
            assert_eq!(Q_NAMES[c], std::format!("reason_{}", r.as_str()), "{r:?}");
            assert!(!seen.contains(&c));
            seen.push(c);
        }
        assert_eq!(
            reason_counter(NoSplitReason::TunnelTooDeep),
            Some(q::REASON_TUNNEL_TOO_DEEP)
        );
        assert_eq!(Q_NAMES[q::ICRC_BAD], "icrc_bad");
        assert_eq!(
            (q::CSUM_OK, q::CSUM_BAD, q::CSUM_NONE, Q_NAMES[q::CSUM_NONE]),
            (39, 40, 41, "csum_none")
        );
    }
}
