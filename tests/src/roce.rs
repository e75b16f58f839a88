//! The RoCE oracle: replays the requester's side of a captured RoCEv2 conversation against the
//! firmware's responder on any [`Target`] and checks what it did against what the captured
//! responder did.
//!
//! [`RoceCase::from_frames`] reads a capture's RoCE packets and picks the responder: the address
//! that receives the most request packets (QP1, the CM MADs, is left to the CM issue). From the
//! capture's own packets it takes each responder QP (QPN, type, the requester's QPN, the first
//! PSN, the path MTU, the Q_Key, the UDP port), each memory region (rkey, the VA range the
//! requests touch, the access they need, and for READ and ATOMIC the bytes the captured
//! responder returned, which become the MR's initial contents), and how many receive WQEs the
//! QP consumes and how large. [`replay`] brings a device up on the target, sets all of that up
//! through the host's RoCE API ([`splitrx_host::roce`]), plays the requests on the wire, and
//! checks:
//! * every response the firmware transmitted against the captured responder's packet, in
//!   order: opcode, destination QP, PSN, AETH syndrome and MSN, READ payload, ATOMIC original
//!   value, and a valid ICRC;
//! * placement: WRITE payloads at their MR offsets, SEND messages at the start of the posted
//!   buffers (UD: after the 40-byte GRH area), with guard bytes around every MR and buffer
//!   untouched, and each CQE's byte count and immediate data.
//!
//! The result is a per-packet verdict table ([`ReplayReport`]).

use crate::target::{Session, Target, Traffic};
use splitrx_host::device::{Device, DeviceConfig, DeviceLayout};
use splitrx_host::queue::DropSink;
use splitrx_host::roce::{self as hroce, Cqe, Mtu, QpInit, QpType, RtrAttr};
use splitrx_host::seam::WindowDesc;
use splitrx_shared::abi::{access, wc_opcode, BufRef};
use splitrx_shared::split::{split, FrameClass, Malformed, NoSplitReason, SplitConfig};
use splitrx_shared::wire::roce::{opcode as op, verify_icrc, RocePacket};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Guard bytes before and after every MR and receive buffer.
pub const GUARD: u64 = 256;
const GUARD_BYTE: u8 = 0xa5;
const GRH: usize = 40;

/// One RoCEv2 packet of a capture, parsed.
#[derive(Clone, Debug)]
pub struct Pkt {
    /// 1-based frame number in the capture.
    pub number: u64,
    pub frame: Vec<u8>,
    /// Source and destination GIDs (IPv4 mapped into `::ffff:0:0/96`).
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub opcode: u8,
    pub dest_qp: u32,
    pub psn: u32,
    pub ack_req: bool,
    /// RETH (va, rkey, dma_len).
    pub reth: Option<(u64, u32, u32)>,
    /// AETH (syndrome, msn).
    pub aeth: Option<(u8, u32)>,
    /// DETH (qkey, src_qp).
    pub deth: Option<(u32, u32)>,
    /// AtomicETH (va, rkey, swap_add, compare).
    pub atomic: Option<(u64, u32, u64, u64)>,
    pub atomic_ack: Option<u64>,
    pub imm: Option<u32>,
    pub payload: Vec<u8>,
    pub icrc_ok: bool,
    /// Bytes of the IP header (for the UD GRH area check).
    pub ip_header: Vec<u8>,
}

/// Parses a RoCEv2 packet out of an Ethernet frame (`None`: not RoCEv2, or malformed).
pub fn parse(number: u64, frame: &[u8]) -> Option<Pkt> {
    let r = split(frame, &SplitConfig::default());
    let info = r.roce?;
    let (l3, l4) = (r.l3_offset? as usize, r.l4_offset? as usize);
    let ulen = u16::from_be_bytes([*frame.get(l4 + 4)?, *frame.get(l4 + 5)?]) as usize;
    let roce = frame.get(l4 + 8..l4 + ulen)?;
    let p = RocePacket::new_checked(roce).ok()?;
    let (src, dst) = match frame[l3] >> 4 {
        4 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s[10..12].fill(0xff);
            d[10..12].fill(0xff);
            s[12..].copy_from_slice(frame.get(l3 + 12..l3 + 16)?);
            d[12..].copy_from_slice(frame.get(l3 + 16..l3 + 20)?);
            (s, d)
        }
        _ => (
            frame.get(l3 + 8..l3 + 24)?.try_into().ok()?,
            frame.get(l3 + 24..l3 + 40)?.try_into().ok()?,
        ),
    };
    let bth = p.bth();
    let icrc_ok =
        info.icrc_ok == Some(true) || verify_icrc_at(frame, l3, l4, l4 + ulen).unwrap_or(false);
    Some(Pkt {
        number,
        frame: frame.to_vec(),
        src,
        dst,
        sport: u16::from_be_bytes([frame[l4], frame[l4 + 1]]),
        opcode: bth.opcode(),
        dest_qp: info.dest_qp,
        psn: info.psn,
        ack_req: bth.ack_req(),
        reth: p.reth().map(|r| (r.va, r.rkey, r.dma_len)),
        aeth: p.aeth().map(|a| (a.syndrome, a.msn)),
        deth: p.deth().map(|d| (d.qkey, d.src_qp)),
        atomic: p
            .atomic_eth()
            .map(|a| (a.va, a.rkey, a.swap_add, a.compare)),
        atomic_ack: p.atomic_ack_eth(),
        imm: p.imm_data(),
        payload: p.payload().to_vec(),
        icrc_ok,
        ip_header: frame[l3..l4].to_vec(),
    })
}

/// [`parse`], or why the frame is not a RoCEv2 packet the oracle can use.
pub fn classify(number: u64, frame: &[u8]) -> Result<Pkt, String> {
    if let Some(p) = parse(number, frame) {
        return Ok(p);
    }
    if frame.is_empty() {
        return Err("an empty record".into());
    }
    let r = split(frame, &SplitConfig::default());
    let udp_4791 = r.class == FrameClass::Roce
        || r.error == Some(Malformed::BadRoceHeader)
        || r.l4_offset.is_some_and(|l4| {
            frame.get(l4 as usize + 2..l4 as usize + 4) == Some(&[0x12, 0xb7][..])
                && r.class == FrameClass::Udp
        });
    if !udp_4791 {
        return Err(format!("not RoCEv2 ({})", r.class.as_str()));
    }
    match r.roce {
        Some(i) if r.reason == NoSplitReason::UnsupportedTransport => Err(format!(
            "RoCEv2 of the {} transport (opcode {:#04x}): not served by the responder",
            if i.opcode >> 5 == 2 { "RD" } else { "XRC" },
            i.opcode
        )),
        Some(i) => Err(format!(
            "RoCEv2 (opcode {:#04x}) whose headers do not parse",
            i.opcode
        )),
        None => {
            let bth = r
                .l4_offset
                .and_then(|l4| frame.get(l4 as usize + 8..).map(<[u8]>::len));
            match bth {
                Some(n) if n < 16 => Err(format!(
                    "RoCEv2 (UDP 4791) too short for a BTH and an ICRC ({n} bytes after UDP)"
                )),
                _ => Err(format!(
                    "RoCEv2 (UDP 4791) with a malformed BTH (opcode {}: unknown or reserved, or headers beyond the datagram)",
                    r.l4_offset
                        .and_then(|l4| frame.get(l4 as usize + 8))
                        .map_or("?".into(), |o| format!("{o:#04x}"))
                )),
            }
        }
    }
}

/// Opcode names as Wireshark shows them.
pub fn opcode_name(op: u8) -> &'static str {
    const RC: [&str; 24] = [
        "SEND_FIRST",
        "SEND_MIDDLE",
        "SEND_LAST",
        "SEND_LAST_IMM",
        "SEND_ONLY",
        "SEND_ONLY_IMM",
        "WRITE_FIRST",
        "WRITE_MIDDLE",
        "WRITE_LAST",
        "WRITE_LAST_IMM",
        "WRITE_ONLY",
        "WRITE_ONLY_IMM",
        "READ_REQUEST",
        "READ_RESP_FIRST",
        "READ_RESP_MIDDLE",
        "READ_RESP_LAST",
        "READ_RESP_ONLY",
        "ACK",
        "ATOMIC_ACK",
        "CMP_SWAP",
        "FETCH_ADD",
        "?",
        "SEND_LAST_INV",
        "SEND_ONLY_INV",
    ];
    match op {
        0x00..=0x17 => RC[op as usize],
        0x20..=0x2b => RC[(op - 0x20) as usize],
        0x64 => "UD_SEND_ONLY",
        0x65 => "UD_SEND_ONLY_IMM",
        0x81 => "CNP",
        _ => "?",
    }
}

fn verify_icrc_at(frame: &[u8], l3: usize, l4: usize, end: usize) -> Option<bool> {
    let v = frame.get(l3)? >> 4;
    verify_icrc(frame.get(..end)?, l3, v, l4, end.checked_sub(4)?)
}

/// Whether `opcode` is a request a responder serves.
pub fn is_request(opcode: u8) -> bool {
    matches!(opcode, 0x00..=0x0c | 0x13 | 0x14 | 0x16 | 0x17 | 0x20..=0x2b | 0x64 | 0x65)
}

/// Whether `opcode` is a responder's packet (ACK/NAK, READ response, ATOMIC ACK).
pub fn is_response(opcode: u8) -> bool {
    matches!(opcode, op::RC_READ_RESPONSE_FIRST..=op::RC_ATOMIC_ACK)
}

fn starts_message(o: u8) -> bool {
    matches!(
        o & 0x1f,
        0x00 | 0x04 | 0x05 | 0x06 | 0x0a | 0x0b | 0x0c | 0x13 | 0x14 | 0x17
    ) || o == op::UD_SEND_ONLY
        || o == op::UD_SEND_ONLY_IMM
}

/// Whether the packet consumes (or continues) a receive WQE: SENDs and WRITE with immediate.
fn uses_wqe(o: u8) -> bool {
    matches!(o & 0x1f, 0x00..=0x05 | 0x09 | 0x0b | 0x16 | 0x17) || o >= 0x64
}

pub(crate) fn ends_message(o: u8) -> bool {
    matches!(
        o & 0x1f,
        0x02..=0x05 | 0x08..=0x0c | 0x13 | 0x14 | 0x16 | 0x17
    ) || o >= 0x64
}

/// One responder QP the capture implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QpSpec {
    pub qpn: u32,
    pub qp_type: QpType,
    pub dest_qpn: u32,
    pub first_psn: u32,
    pub mtu: u32,
    pub qkey: u32,
    pub udp_sport: u16,
    pub remote: [u8; 16],
    /// Per receive WQE the QP consumes: (message bytes as they must land, immediate).
    pub messages: Vec<(Vec<u8>, Option<u32>)>,
    /// Frame numbers of the packets of each message (for the verdict table).
    pub message_frames: Vec<Vec<u64>>,
    /// The CQE byte count of each message: the SEND's length, or for a WRITE with immediate
    /// the WRITE's length (its RETH `dma_len`), as verbs reports it.
    pub message_lens: Vec<u32>,
    /// Whether each message's last packet is in the capture (and not lost): a message cut
    /// short holds its WQE without a completion.
    pub message_done: Vec<bool>,
}

/// One memory region the capture implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MrSpec {
    pub rkey: u32,
    /// First VA of the MR (page-aligned) and its length.
    pub iova: u64,
    pub len: u64,
    pub access: u32,
    /// Initial contents: (va, bytes).
    pub preload: Vec<(u64, Vec<u8>)>,
    /// What WRITEs must leave there: (frame, va, bytes).
    pub writes: Vec<(u64, u64, Vec<u8>)>,
}

/// What a capture asks of a responder.
#[derive(Clone, Debug)]
pub struct RoceCase {
    pub responder: [u8; 16],
    pub qps: Vec<QpSpec>,
    pub mrs: Vec<MrSpec>,
    /// The packets played to the responder, in capture order.
    pub requests: Vec<Pkt>,
    /// The captured responder's packets answering them, in capture order.
    pub expected: Vec<Pkt>,
    /// Packets of the capture not used, with why.
    pub skipped: Vec<(u64, String)>,
    /// Requests the firmware must not execute, by frame: those with a bad ICRC in the
    /// capture and what their loss does to the rest of their QP's conversation.
    pub lost: BTreeMap<u64, Lost>,
    /// The captured responses to those requests, which the firmware must not send, with why.
    pub unanswered: Vec<(Pkt, String)>,
    /// READ responses whose payload cannot be predicted (the capture's responder application
    /// rewrote the source between READs, off the wire), by frame, with the verdict's text:
    /// everything else of them is compared.
    pub rewritten: BTreeMap<u64, String>,
}

/// AETH syndrome of a NAK for a PSN sequence error.
const NAK_PSN_SEQ: u8 = 0x60;

/// A request the firmware must not execute, and what it must do instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    /// The verdict's text.
    pub why: String,
    /// The device counter that counts the drop (`splitrx_shared::stats` name).
    pub counter: Option<&'static str>,
    /// The NAK (PSN sequence error) it must get instead: (PSN, MSN).
    pub nak: Option<(u32, u32)>,
}

/// What the firmware must do with each request the capture's responder executed but ours
/// must not: a request with a bad ICRC is dropped and counted (`rx_icrc_errors`); then
/// * RC: the responder still expects that PSN, so its conversation breaks off: the first
///   later request of the QP is NAKed (PSN sequence error, the lost PSN, the MSN of the
///   messages done before) and every later one dropped (`out_of_seq_request`), until a
///   request with the lost PSN and a good ICRC arrives (a retransmission);
/// * UC: the rest of that message is dropped (`resp_discards`), and a SEND message broken off
///   leaves its receive WQE to the next message; the next FIRST/ONLY starts afresh;
/// * UD: only that datagram is lost.
pub fn losses(requests: &[Pkt]) -> BTreeMap<u64, Lost> {
    let mut lost = BTreeMap::new();
    // RC QPs broken off: (lost frame, lost PSN, MSN then, NAK sent).
    let mut rc_cut: BTreeMap<u32, (u64, u32, u32, bool)> = BTreeMap::new();
    // UC QPs dropping the rest of a message: the lost frame.
    let mut uc_cut: BTreeMap<u32, u64> = BTreeMap::new();
    // Messages done per QP (the MSN), and the frames of the message in progress.
    let mut msn: BTreeMap<u32, u32> = BTreeMap::new();
    let mut cur: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let bad = "bad ICRC in the capture: dropped, counted (rx_icrc_errors)";
    for p in requests {
        let qp = p.dest_qp;
        let transport = p.opcode >> 5;
        if let Some(&(f, psn, m, nak_sent)) = rc_cut.get(&qp) {
            if !p.icrc_ok {
                lost.insert(
                    p.number,
                    Lost {
                        why: format!("{bad}; after frame {f}'s loss"),
                        counter: Some("rx_icrc_errors"),
                        nak: None,
                    },
                );
                continue;
            }
            if p.psn == psn {
                // A retransmission of the lost PSN: the conversation resumes.
                rc_cut.remove(&qp);
            } else if psn_in(psn, p.psn.wrapping_add(1), 0x80_0000) {
                // A PSN before the lost one: a duplicate; not predicted here.
                lost.insert(
                    p.number,
                    Lost {
                        why: format!("a duplicate after frame {f}'s loss: not compared"),
                        counter: None,
                        nak: None,
                    },
                );
                continue;
            } else {
                let (why, nak) = if nak_sent {
                    (format!("out of sequence after frame {f}'s loss (bad ICRC): dropped, counted (out_of_seq_request); the captured requester never retransmits"), None)
                } else {
                    (format!("out of sequence after frame {f}'s loss (bad ICRC): NAKed (PSN sequence error, PSN {psn}), counted (out_of_seq_request)"), Some((psn, m)))
                };
                rc_cut.insert(qp, (f, psn, m, true));
                lost.insert(
                    p.number,
                    Lost {
                        why,
                        counter: Some("out_of_seq_request"),
                        nak,
                    },
                );
                continue;
            }
        }
        if transport == 1 {
            if let Some(&f) = uc_cut.get(&qp) {
                if !starts_message(p.opcode) {
                    if ends_message(p.opcode) {
                        uc_cut.remove(&qp);
                    }
                    let why = if p.icrc_ok {
                        format!("the rest of a UC message whose frame {f} was lost: dropped, counted (resp_discards)")
                    } else {
                        format!("{bad}; in a UC message whose frame {f} was lost")
                    };
                    let counter = Some(if p.icrc_ok {
                        "resp_discards"
                    } else {
                        "rx_icrc_errors"
                    });
                    lost.insert(
                        p.number,
                        Lost {
                            why,
                            counter,
                            nak: None,
                        },
                    );
                    continue;
                }
                uc_cut.remove(&qp);
            }
        }
        if starts_message(p.opcode) {
            cur.insert(qp, Vec::new());
        }
        if !p.icrc_ok {
            lost.insert(
                p.number,
                Lost {
                    why: bad.into(),
                    counter: Some("rx_icrc_errors"),
                    nak: None,
                },
            );
            match transport {
                0 => {
                    rc_cut.insert(
                        qp,
                        (p.number, p.psn, msn.get(&qp).copied().unwrap_or(0), false),
                    );
                }
                1 => {
                    // A SEND message broken off leaves its WQE to the next message: its
                    // earlier packets land in a WQE the next message reuses.
                    if uses_wqe(p.opcode) && p.opcode & 0x1f <= 0x05 {
                        for &e in cur.get(&qp).into_iter().flatten() {
                            lost.insert(e, Lost { why: format!("part of a UC SEND message whose frame {} was lost: its receive WQE goes to the next message", p.number), counter: None, nak: None });
                        }
                    }
                    if !ends_message(p.opcode) {
                        uc_cut.insert(qp, p.number);
                    }
                }
                _ => {}
            }
            cur.remove(&qp);
            continue;
        }
        cur.entry(qp).or_default().push(p.number);
        if ends_message(p.opcode) {
            *msn.entry(qp).or_default() += 1;
            cur.remove(&qp);
        }
    }
    lost
}

/// Reads a capture file and builds its case ([`RoceCase::from_frames`]).
pub fn read_case(path: impl AsRef<std::path::Path>) -> Result<RoceCase, String> {
    let frames: Vec<(u64, Vec<u8>)> = splitrx_host::capture::read_all(path)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|f| (f.number, f.data))
        .collect();
    RoceCase::from_frames(&frames)
}

/// A request frame re-aimed: at QP `qpn` with PSN `psn` (and, with a RETH, at `va`/`rkey`),
/// its ICRC recomputed. `None` when `frame` is not a RoCEv2 packet.
pub fn aim(frame: &[u8], qpn: u32, psn: u32, reth: Option<(u64, u32)>) -> Option<Vec<u8>> {
    let mut f = frame.to_vec();
    let r = split(&f, &SplitConfig::default());
    r.roce?;
    let (l3, l4) = (r.l3_offset? as usize, r.l4_offset? as usize);
    let bth = l4 + 8;
    f.get(bth..bth + 12)?;
    f[bth + 5..bth + 8].copy_from_slice(&qpn.to_be_bytes()[1..]);
    f[bth + 9..bth + 12].copy_from_slice(&psn.to_be_bytes()[1..]);
    if let Some((va, rkey)) = reth {
        f.get(bth + 12..bth + 28)?;
        f[bth + 12..bth + 20].copy_from_slice(&va.to_be_bytes());
        f[bth + 20..bth + 24].copy_from_slice(&rkey.to_be_bytes());
    }
    let ulen = u16::from_be_bytes([f[l4 + 4], f[l4 + 5]]) as usize;
    let v = f[l3] >> 4;
    splitrx_shared::wire::roce::fill_icrc(&mut f, l3, v, l4, (l4 + ulen).checked_sub(4)?)?;
    Some(f)
}

/// Formats a GID (IPv4-mapped ones as dotted quads).
pub fn gid_str(g: &[u8; 16]) -> String {
    if g[..10] == [0; 10] && g[10..12] == [0xff, 0xff] {
        format!("{}.{}.{}.{}", g[12], g[13], g[14], g[15])
    } else {
        std::net::Ipv6Addr::from(*g).to_string()
    }
}

fn page_down(v: u64) -> u64 {
    v & !4095
}

impl RoceCase {
    /// Builds the case from a capture's frames (`(number, frame)`).
    pub fn from_frames(frames: &[(u64, Vec<u8>)]) -> Result<RoceCase, String> {
        let mut pkts = Vec::new();
        let mut skipped = Vec::new();
        for (n, f) in frames {
            match classify(*n, f) {
                Ok(p) => pkts.push(p),
                Err(why) => skipped.push((*n, why)),
            }
        }
        // The responder: the address receiving the most requests (QP1 aside).
        let mut votes: BTreeMap<[u8; 16], usize> = BTreeMap::new();
        for p in &pkts {
            if is_request(p.opcode) && p.dest_qp != 1 {
                *votes.entry(p.dst).or_default() += 1;
            }
        }
        let Some((&responder, _)) = votes
            .iter()
            .max_by_key(|(a, n)| (**n, std::cmp::Reverse(**a)))
        else {
            return Err(if frames.is_empty() {
                "the capture holds no frame".into()
            } else if pkts.is_empty() {
                format!(
                    "no well-formed RoCEv2 packet (UDP port 4791) in its {} frames: nothing to replay",
                    frames.len()
                )
            } else {
                format!(
                    "its {} RoCEv2 packets hold no request to a QP other than QP1 (the CM's): nothing to replay",
                    pkts.len()
                )
            });
        };
        let mut requests = Vec::new();
        let mut expected = Vec::new();
        for p in pkts {
            let name = opcode_name(p.opcode);
            if p.dest_qp == 1 {
                skipped.push((p.number, "QP1 (CM MAD): not served by the responder".into()));
            } else if p.dst == responder && is_request(p.opcode) {
                // A bad ICRC is played too: the firmware must drop it (counted).
                requests.push(p);
            } else if p.src == responder && is_response(p.opcode) {
                expected.push(p);
            } else {
                let why = if p.src == responder && is_request(p.opcode) {
                    "a request from the responder's address (it is the requester there)".into()
                } else if is_response(p.opcode) && p.dst == responder {
                    format!("{name}: a response to the responder's address (to a request of its own; the responder makes none)")
                } else if is_response(p.opcode) {
                    format!("{name}: a response to the responder side's own request")
                } else if is_request(p.opcode) {
                    format!("{name}: a request between two other addresses")
                } else {
                    format!(
                        "opcode {:#04x} ({name}): not a request the responder serves",
                        p.opcode
                    )
                };
                skipped.push((p.number, why));
            }
        }
        let lost = losses(&requests);
        let live = |p: &Pkt| !lost.contains_key(&p.number);
        let mut qps: BTreeMap<u32, QpSpec> = BTreeMap::new();
        let mut mrs: BTreeMap<u32, MrSpec> = BTreeMap::new();
        let mut cur_msg: BTreeMap<u32, usize> = BTreeMap::new();
        // The RETH length of the WRITE message in progress, per QP.
        let mut write_len: BTreeMap<u32, u32> = BTreeMap::new();
        for p in requests.iter().filter(|p| p.icrc_ok) {
            let qp_type = match p.opcode >> 5 {
                0 => QpType::Rc,
                1 => QpType::Uc,
                _ => QpType::Ud,
            };
            let q = qps.entry(p.dest_qp).or_insert_with(|| QpSpec {
                qpn: p.dest_qp,
                qp_type,
                dest_qpn: 0,
                first_psn: p.psn,
                mtu: 0,
                qkey: 0,
                udp_sport: p.sport,
                remote: p.src,
                messages: Vec::new(),
                message_frames: Vec::new(),
                message_lens: Vec::new(),
                message_done: Vec::new(),
            });
            if let Some((qkey, src_qp)) = p.deth {
                q.qkey = qkey;
                q.dest_qpn = src_qp;
            }
            let o = p.opcode & 0x1f;
            // FIRST/MIDDLE packets carry exactly one MTU.
            if matches!(o, 0x00 | 0x01 | 0x06 | 0x07) {
                q.mtu = q.mtu.max(p.payload.len() as u32);
            } else {
                q.mtu = q
                    .mtu
                    .max((p.payload.len() as u32).next_power_of_two().min(4096));
            }
            // A request the firmware must not execute (lost, or after a loss) implies no
            // message, placement or MR.
            if !live(p) {
                continue;
            }
            if let (0x06..=0x0b, Some((_, _, len))) = (o, p.reth) {
                write_len.insert(p.dest_qp, len);
            }
            if uses_wqe(p.opcode) && (starts_message(p.opcode) || !cur_msg.contains_key(&p.dest_qp))
            {
                {
                    q.messages.push((Vec::new(), None));
                    q.message_frames.push(Vec::new());
                    q.message_lens.push(0);
                    q.message_done.push(false);
                    cur_msg.insert(p.dest_qp, q.messages.len() - 1);
                }
            }
            // WRITE with immediate consumes a WQE but places nothing in it.
            let into_wqe = matches!(o, 0x00..=0x05 | 0x16 | 0x17) || p.opcode >= 0x64;
            if let Some(&m) = cur_msg.get(&p.dest_qp) {
                if uses_wqe(p.opcode) {
                    if into_wqe {
                        q.messages[m].0.extend_from_slice(&p.payload);
                        q.message_lens[m] += p.payload.len() as u32;
                    } else if let Some(&len) = write_len.get(&p.dest_qp) {
                        q.message_lens[m] = len;
                    }
                    if let Some(i) = p.imm {
                        q.messages[m].1 = Some(i);
                    }
                    q.message_frames[m].push(p.number);
                }
            }
            if let (0x06..=0x0b, Some((_, _, len))) = (o, p.reth) {
                write_len.insert(p.dest_qp, len);
            }
            if ends_message(p.opcode) {
                if let Some(m) = cur_msg.remove(&p.dest_qp) {
                    if uses_wqe(p.opcode) {
                        q.message_done[m] = true;
                    }
                }
            }
            // Memory regions.
            let mut touch = |rkey: u32, va: u64, len: u64, acc: u32| {
                let m = mrs.entry(rkey).or_insert_with(|| MrSpec {
                    rkey,
                    iova: page_down(va),
                    len: 0,
                    access: 0,
                    preload: Vec::new(),
                    writes: Vec::new(),
                });
                let lo = page_down(va).min(m.iova);
                let hi = (m.iova.saturating_add(m.len)).max(va.saturating_add(len));
                m.iova = lo;
                m.len = (hi - lo).div_ceil(4096).saturating_mul(4096);
                m.access |= acc;
            };
            if let Some((va, rkey, len)) = p.reth {
                let acc = if o == 0x0c {
                    access::REMOTE_READ
                } else {
                    access::REMOTE_WRITE
                };
                touch(rkey, va, (len as u64).max(1), acc);
            }
            if let Some((va, rkey, _, _)) = p.atomic {
                touch(rkey, va, 8, access::REMOTE_ATOMIC);
            }
        }
        // WRITE placement: the VA of each packet follows from its message's RETH.
        let mut wpos: BTreeMap<u32, (u32, u64)> = BTreeMap::new();
        for p in requests.iter().filter(|p| live(p)) {
            let o = p.opcode & 0x1f;
            if !matches!(o, 0x06..=0x0b) {
                continue;
            }
            if let Some((va, rkey, _)) = p.reth {
                wpos.insert(p.dest_qp, (rkey, va));
            }
            if let Some(&(rkey, va)) = wpos.get(&p.dest_qp) {
                if let Some(m) = mrs.get_mut(&rkey) {
                    m.writes.push((p.number, va, p.payload.clone()));
                }
                wpos.insert(p.dest_qp, (rkey, va.saturating_add(p.payload.len() as u64)));
            }
        }
        // READ and ATOMIC: the captured responses give the MR's initial contents.
        let mut rewritten = BTreeMap::new();
        for p in requests.iter().filter(|p| live(p)) {
            let Some(q) = qps.get(&p.dest_qp) else {
                continue;
            };
            if p.opcode == op::RC_READ_REQUEST {
                let Some((va, rkey, len)) = p.reth else {
                    continue;
                };
                let npk = (len as u64).div_ceil(q.mtu.max(256) as u64).max(1) as u32;
                let mut bytes = Vec::new();
                for r in expected
                    .iter()
                    .filter(|r| matches!(r.opcode, 0x0d..=0x10) && psn_in(r.psn, p.psn, npk))
                {
                    bytes.extend_from_slice(&r.payload);
                }
                bytes.truncate(len as usize);
                if let Some(m) = mrs.get_mut(&rkey) {
                    match m.preload.iter().find(|(v, _)| *v == va) {
                        None => m.preload.push((va, bytes)),
                        // Other bytes from the same source, and no WRITE on the wire to
                        // that MR: the capture's responder's application rewrote it.
                        Some((_, first)) if *first != bytes && m.writes.is_empty() => {
                            for r in expected.iter().filter(|r| {
                                matches!(r.opcode, 0x0d..=0x10) && psn_in(r.psn, p.psn, npk)
                            }) {
                                rewritten.insert(
                                    r.number,
                                    format!(
                                        "payload not compared: the capture's responder application rewrote the READ source (rkey {rkey:#x} VA {va:#x}) since an earlier READ, not on the wire; opcode, QP, PSN, AETH and ICRC match"
                                    ),
                                );
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
            if let Some((va, rkey, _, _)) = p.atomic {
                let orig = expected
                    .iter()
                    .find(|r| r.opcode == op::RC_ATOMIC_ACK && r.psn == p.psn)
                    .and_then(|r| r.atomic_ack);
                if let (Some(orig), Some(m)) = (orig, mrs.get_mut(&rkey)) {
                    if !m.preload.iter().any(|(v, _)| *v == va) {
                        m.preload.push((va, orig.to_le_bytes().to_vec()));
                    }
                }
            }
        }
        // The requester's QPN (RC/UC): the destination of the responder's first packet
        // answering one of the QP's PSNs, else of its first packet to that address.
        for q in qps.values_mut() {
            if q.qp_type == QpType::Ud {
                continue;
            }
            let psns: Vec<u32> = requests
                .iter()
                .filter(|p| p.dest_qp == q.qpn)
                .map(|p| p.psn)
                .collect();
            q.dest_qpn = expected
                .iter()
                .find(|r| r.dst == q.remote && psns.contains(&r.psn))
                .map(|r| r.dest_qp)
                .or_else(|| frames_from(frames, responder, q.remote).map(|p| p.dest_qp))
                .unwrap_or(0);
            // READ RESPONSE FIRST/MIDDLE packets carry exactly one MTU too.
            for r in expected.iter().filter(|r| r.dest_qp == q.dest_qpn) {
                if matches!(r.opcode, 0x0d | 0x0e) {
                    q.mtu = q.mtu.max(r.payload.len() as u32);
                }
            }
        }
        for q in qps.values_mut() {
            q.mtu = path_mtu(q.mtu, &requests, q.qpn);
        }
        // The captured responses to requests the firmware does not execute are not expected;
        // an RC QP whose conversation broke off NAKs the first request after the loss.
        let mut unanswered = Vec::new();
        let mut kept = Vec::new();
        let mut answers = Vec::new();
        for r in expected {
            let mtu = qps
                .values()
                .find(|q| q.dest_qpn == r.dest_qp)
                .map_or(1024, |q| q.mtu);
            let req = requests.iter().rev().find(|p| {
                p.number < r.number && p.src == r.dst && {
                    let npk = match (p.opcode, p.reth) {
                        (op::RC_READ_REQUEST, Some((_, _, len))) => {
                            (len as u64).div_ceil(mtu.max(256) as u64).max(1) as u32
                        }
                        _ => 1,
                    };
                    psn_in(r.psn, p.psn, npk)
                }
            });
            match req.and_then(|p| lost.get(&p.number).map(|l| (p, l))) {
                Some((p, l)) => {
                    let why = format!(
                        "not sent here: it answers frame {}, which the firmware must not execute ({})",
                        p.number, l.why
                    );
                    unanswered.push((r, why));
                }
                None => {
                    answers.push(req.map_or(r.number, |p| p.number));
                    kept.push(r);
                }
            }
        }
        let mut expected = kept;
        for (&frame, l) in &lost {
            let Some((psn, msn)) = l.nak else { continue };
            let Some(p) = requests.iter().find(|p| p.number == frame) else {
                continue;
            };
            let Some(q) = qps.get(&p.dest_qp) else {
                continue;
            };
            let nak = Pkt {
                opcode: op::RC_ACK,
                dest_qp: q.dest_qpn,
                psn,
                ack_req: false,
                reth: None,
                aeth: Some((NAK_PSN_SEQ, msn)),
                deth: None,
                atomic: None,
                atomic_ack: None,
                imm: None,
                payload: Vec::new(),
                icrc_ok: true,
                src: p.dst,
                dst: p.src,
                ..p.clone()
            };
            let at = answers
                .iter()
                .position(|a| *a > frame)
                .unwrap_or(answers.len());
            answers.insert(at, frame);
            expected.insert(at, nak);
        }
        Ok(RoceCase {
            responder,
            qps: qps.into_values().collect(),
            mrs: mrs.into_values().collect(),
            requests,
            expected,
            skipped,
            lost,
            unanswered,
            rewritten,
        })
    }
}

fn frames_from(frames: &[(u64, Vec<u8>)], src: [u8; 16], dst: [u8; 16]) -> Option<Pkt> {
    frames
        .iter()
        .filter_map(|(n, f)| parse(*n, f))
        .find(|p| p.src == src && p.dst == dst && p.dest_qp != 1)
}

/// The path MTU: the size of full (FIRST/MIDDLE) packets when the capture has any; else the
/// smallest MTU of at least 1024 (rxe's on a 1500-byte link) that holds every ONLY packet.
fn path_mtu(seen: u32, requests: &[Pkt], qpn: u32) -> u32 {
    let full = requests
        .iter()
        .any(|p| p.dest_qp == qpn && matches!(p.opcode & 0x1f, 0x00 | 0x01 | 0x06 | 0x07));
    let floor = if full { 256 } else { 1024 };
    [256, 512, 1024, 2048, 4096]
        .into_iter()
        .find(|m| *m >= seen.max(floor))
        .unwrap_or(4096)
}

pub(crate) fn psn_in(psn: u32, first: u32, n: u32) -> bool {
    psn.wrapping_sub(first) & 0xff_ffff < n
}

/// One row of the verdict table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verdict {
    /// Capture frame number (0 for a packet the firmware sent that the capture lacks).
    pub frame: u64,
    pub direction: &'static str,
    pub opcode: u8,
    pub psn: u32,
    pub ok: bool,
    pub detail: String,
}

/// What [`replay`] found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayReport {
    pub responder: String,
    pub qps: usize,
    pub mrs: usize,
    pub verdicts: Vec<Verdict>,
    /// Device-wide counters of the firmware after the replay (index order of
    /// `splitrx_shared::stats`).
    pub nic_counters: Vec<u64>,
    pub skipped: Vec<(u64, String)>,
}

impl ReplayReport {
    pub fn pass(&self) -> bool {
        self.verdicts.iter().all(|v| v.ok)
    }
    pub fn failures(&self) -> Vec<&Verdict> {
        self.verdicts.iter().filter(|v| !v.ok).collect()
    }
}

/// Device memory the oracle reads and writes: the device window file mapped by the harness
/// (the harness plays the GPU's owner: it preloads READ sources and checks placement).
struct DevMem {
    map: memmap2::MmapMut,
    bus_base: u64,
}

impl DevMem {
    fn open(w: &WindowDesc) -> Result<DevMem, String> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&w.path)
            .map_err(|e| format!("{}: {e}", w.path.display()))?;
        // SAFETY: the file is the board's device window; the firmware writes it concurrently
        // only where the responder places data, which the oracle reads only after the wire
        // ended and the responder went quiet (the check is the point); nothing else maps it
        // as Rust references.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(w.file_offset)
                .len(w.len as usize)
                .map_mut(&f)
        }
        .map_err(|e| format!("mapping {}: {e}", w.path.display()))?;
        Ok(DevMem {
            map,
            bus_base: w.bus_base,
        })
    }
    fn range(&self, bus: u64, len: usize) -> std::ops::Range<usize> {
        let s = (bus - self.bus_base) as usize;
        s..s + len
    }
    fn write(&mut self, bus: u64, b: &[u8]) {
        let r = self.range(bus, b.len());
        self.map[r].copy_from_slice(b);
    }
    fn fill(&mut self, bus: u64, len: usize, v: u8) {
        let r = self.range(bus, len);
        self.map[r].fill(v);
    }
    fn read(&self, bus: u64, len: usize) -> Vec<u8> {
        self.map[self.range(bus, len)].to_vec()
    }
}

/// A device with its RoCE side up on a target, for RoCE scenarios: the host's device over the
/// target's seam, its [`hroce::Rdma`], and the device window mapped for the scenario to
/// preload and check. Traffic flows once [`RoceRig::start`] is called.
pub struct RoceRig {
    // Field order is drop order: the device goes before the session that holds its board.
    pub dev: Option<Device<DropSink>>,
    pub rdma: hroce::Rdma,
    mem: DevMem,
    pub session: Box<dyn Session>,
}

impl RoceRig {
    /// Powers `target` up with `frames` on its wire (played once) and brings a one-queue
    /// device up with `roce_host` / `roce_dev` bytes of RoCE arena.
    pub fn up(
        target: &dyn Target,
        frames: Vec<Vec<u8>>,
        roce_host: u64,
        roce_dev: u64,
    ) -> Result<RoceRig, String> {
        let cfg = DeviceConfig {
            queues: 1,
            bufs_per_queue: 256,
            pay_bufs_per_queue: 256,
            fill_ring: 128,
            cq_ring: 256,
            buf_size: 4096,
            roce_host_bytes: roce_host,
            roce_dev_bytes: roce_dev,
            ..DeviceConfig::default()
        };
        let layout = DeviceLayout::new(&cfg).map_err(|e| e.to_string())?;
        let n = frames.len() as u64;
        let session = target
            .power_up(
                &layout,
                Traffic {
                    frames: std::sync::Arc::new(frames),
                    limit: Some(n),
                    rate: None,
                    flow: None,
                },
            )
            .map_err(|e| e.to_string())?;
        let seam = session.seam();
        let dev = match Device::bring_up(seam.clone(), &cfg, |_| DropSink, |q| session.observer(q))
        {
            Ok(d) => d,
            Err(e) => {
                let rep = session.power_down();
                return Err(match rep.error {
                    Some(fw) => format!("{e} (the firmware: {fw})"),
                    None => e.to_string(),
                });
            }
        };
        let rdma = dev.rdma().ok_or("the device has no RoCE arena")?;
        let dw = seam
            .device_windows()
            .first()
            .cloned()
            .ok_or("no device window")?;
        let mem = DevMem::open(&dw)?;
        Ok(RoceRig {
            dev: Some(dev),
            rdma,
            mem,
            session,
        })
    }

    /// Lets traffic flow.
    pub fn start(&mut self) {
        self.session.device_up();
    }

    /// Waits until the wire has played every frame, at least `want` frames came back and the
    /// responder has then been quiet for 100 ms, at most `limit`; returns what it transmitted
    /// and whether that happened in time.
    pub fn settle(&mut self, want: usize, limit: Duration) -> (Vec<Vec<u8>>, bool) {
        let mut got = Vec::new();
        let t0 = Instant::now();
        let mut quiet = Instant::now();
        loop {
            if let Some(tx) = self.session.transmitted() {
                if !tx.is_empty() {
                    quiet = Instant::now();
                }
                got.extend(tx);
            }
            let done = self.session.wire().done;
            // Every expected response came and nothing more for a while (a loaded machine or a
            // VM may answer late: until `limit`, fewer responses than expected keep it waiting).
            if done && got.len() >= want && quiet.elapsed() > Duration::from_millis(100) {
                return (got, true);
            }
            if t0.elapsed() > limit {
                return (got, false);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The device-wide counters of the firmware.
    pub fn nic_counters(&self) -> Vec<u64> {
        self.dev
            .as_ref()
            .and_then(|d| d.read_stats(u16::MAX).ok())
            .unwrap_or_default()
    }

    /// Writes device memory at bus address `bus` (the app owning the GPU memory).
    pub fn write_mem(&mut self, bus: u64, b: &[u8]) {
        self.mem.write(bus, b)
    }
    pub fn fill_mem(&mut self, bus: u64, len: usize, v: u8) {
        self.mem.fill(bus, len, v)
    }
    pub fn read_mem(&self, bus: u64, len: usize) -> Vec<u8> {
        self.mem.read(bus, len)
    }

    /// Tears the device down (every buffer accounted for) and powers the target down; the
    /// firmware's error, if it stopped on its own.
    pub fn finish(
        mut self,
    ) -> (
        Option<splitrx_host::device::DeviceOutcome<DropSink>>,
        Option<String>,
    ) {
        let out = self.dev.take().map(Device::finish);
        let rep = self.session.power_down();
        (out, rep.error)
    }
}

fn expect_eq(got: &Pkt, want: &Pkt) -> Result<(), String> {
    let mut diff = Vec::new();
    if got.opcode != want.opcode {
        diff.push(format!("opcode {:#x} != {:#x}", got.opcode, want.opcode));
    }
    if got.dest_qp != want.dest_qp {
        diff.push(format!("dest QP {:#x} != {:#x}", got.dest_qp, want.dest_qp));
    }
    if got.psn != want.psn {
        diff.push(format!("PSN {} != {}", got.psn, want.psn));
    }
    if got.aeth != want.aeth {
        diff.push(format!("AETH {:?} != {:?}", got.aeth, want.aeth));
    }
    if got.atomic_ack != want.atomic_ack {
        diff.push(format!(
            "atomic original {:?} != {:?}",
            got.atomic_ack, want.atomic_ack
        ));
    }
    if got.payload != want.payload {
        let at = got
            .payload
            .iter()
            .zip(&want.payload)
            .position(|(a, b)| a != b)
            .unwrap_or(got.payload.len().min(want.payload.len()));
        diff.push(format!(
            "payload differs from byte {at} ({} vs {} bytes)",
            got.payload.len(),
            want.payload.len()
        ));
    }
    if !got.icrc_ok {
        diff.push("bad ICRC".into());
    }
    if diff.is_empty() {
        Ok(())
    } else {
        Err(diff.join("; "))
    }
}

/// Replays `case` on `target` (see the module docs). `Err` when the device could not be set
/// up; a mismatch is a failed verdict in the report.
pub fn replay(target: &dyn Target, case: &RoceCase) -> Result<ReplayReport, String> {
    let recv_bytes: u64 = case
        .qps
        .iter()
        .map(|q| {
            q.messages
                .iter()
                .map(|m| (m.0.len() + GRH) as u64 + 2 * GUARD + 4096)
                .sum::<u64>()
        })
        .sum();
    let mr_bytes: u64 = case.mrs.iter().map(|m| m.len + 2 * GUARD + 4096).sum();
    let frames: Vec<Vec<u8>> = case.requests.iter().map(|p| p.frame.clone()).collect();
    let mut rig = RoceRig::up(
        target,
        frames,
        64 * 4096 + case.qps.len() as u64 * 3 * 4096,
        (recv_bytes + mr_bytes).div_ceil(4096) * 4096 + 4096,
    )?;
    let r = run_session(&mut rig, case);
    let (_, fw_error) = rig.finish();
    let mut out = r?;
    if let Some(e) = fw_error {
        out.verdicts.push(Verdict {
            frame: 0,
            direction: "-",
            opcode: 0,
            psn: 0,
            ok: false,
            detail: format!("the firmware did not run: {e}"),
        });
    }
    Ok(out)
}

struct PostedBuf {
    qpn: u32,
    msg: usize,
    bus: u64,
    len: u64,
}

fn run_session(rig: &mut RoceRig, case: &RoceCase) -> Result<ReplayReport, String> {
    let rdma = rig.rdma.clone();
    let pd = rdma.alloc_pd();
    let mut verdicts = Vec::new();
    let mut bufs_mem = Vec::new();
    // Memory regions, with guards and their initial contents.
    let mut mrs = Vec::new();
    for m in &case.mrs {
        let b = rdma
            .alloc_device(m.len + 2 * GUARD)
            .map_err(|e| e.to_string())?;
        rig.fill_mem(b.bus_addr, b.len as usize, GUARD_BYTE);
        let base = b.bus_addr + GUARD;
        rig.fill_mem(base, m.len as usize, 0);
        for (va, bytes) in &m.preload {
            rig.write_mem(base + (va - m.iova), bytes);
        }
        let mr = rdma
            .reg_mr_keyed(pd, base, m.len, m.iova, m.access, m.rkey, m.rkey)
            .map_err(|e| format!("MR rkey {:#x}: {e}", m.rkey))?;
        mrs.push((m, mr, base, b));
    }
    // QPs with their receive buffers.
    let mut qps = Vec::new();
    let mut posted = Vec::new();
    for q in &case.qps {
        let depth = ((q.messages.len() + 1) as u32).next_power_of_two().max(16);
        let mut qp = rdma
            .create_qp(&QpInit {
                qpn: q.qpn,
                qp_type: q.qp_type,
                pd,
                rq_depth: depth,
                cq_depth: depth * 2,
                srqn: None,
                sq_depth: 0,
            })
            .map_err(|e| format!("QP {:#x}: {e}", q.qpn))?;
        let all = access::REMOTE_WRITE | access::REMOTE_READ | access::REMOTE_ATOMIC;
        qp.to_init(all, q.qkey)
            .and_then(|_| {
                qp.to_rtr(&RtrAttr {
                    dest_qpn: q.dest_qpn,
                    rq_psn: q.first_psn,
                    mtu: Mtu::from_bytes(q.mtu).unwrap_or(Mtu::M1024),
                    remote_gid: q.remote,
                    udp_sport: q.udp_sport,
                    min_rnr_timer: 12,
                })
            })
            .and_then(|_| qp.to_rts())
            .map_err(|e| format!("QP {:#x} to RTS: {e}", q.qpn))?;
        for (i, (msg, _)) in q.messages.iter().enumerate() {
            let len = ((msg.len() + GRH) as u64).div_ceil(64) * 64;
            let b = rdma
                .alloc_device(len + 2 * GUARD)
                .map_err(|e| e.to_string())?;
            rig.fill_mem(b.bus_addr, b.len as usize, GUARD_BYTE);
            let bus = b.bus_addr + GUARD;
            let mr = rdma
                .reg_mr(pd, bus, len, bus, access::LOCAL_WRITE)
                .map_err(|e| e.to_string())?;
            qp.post_recv(i as u64, bus, len as u32, &mr, BufRef::NONE)
                .map_err(|e| e.to_string())?;
            posted.push(PostedBuf {
                qpn: q.qpn,
                msg: i,
                bus,
                len,
            });
            bufs_mem.push((b, mr));
        }
        qps.push((q, qp));
    }
    rig.start();
    let want = case.expected.len();
    let (got, in_time) = rig.settle(want, Duration::from_secs(20));
    if !in_time {
        verdicts.push(Verdict {
            frame: 0,
            direction: "-",
            opcode: 0,
            psn: 0,
            ok: false,
            detail: "the replay did not finish within 20 s".into(),
        });
    }
    // Responses, in order.
    let got: Vec<Option<Pkt>> = got.iter().map(|f| parse(0, f)).collect();
    for (i, w) in case.expected.iter().enumerate() {
        // The NAK a loss calls for is the oracle's, not the capture's.
        let nak = case.lost.get(&w.number).is_some_and(|l| l.nak.is_some());
        let (ok, detail) = match got.get(i) {
            Some(Some(g)) if case.rewritten.contains_key(&w.number) => {
                let mut g = g.clone();
                if g.payload.len() == w.payload.len() {
                    g.payload.clone_from(&w.payload);
                }
                match expect_eq(&g, w) {
                    Ok(()) => (true, case.rewritten[&w.number].clone()),
                    Err(d) => (false, d),
                }
            }
            Some(Some(g)) => match expect_eq(g, w) {
                Ok(()) if nak => (
                    true,
                    format!(
                        "the NAK (PSN sequence error) frame {}'s loss calls for",
                        w.number
                    ),
                ),
                Ok(()) => (true, "matches the captured response".to_string()),
                Err(d) if nak => (
                    false,
                    format!(
                        "not the NAK (PSN sequence error) frame {}'s loss calls for: {d}",
                        w.number
                    ),
                ),
                Err(d) => (false, d),
            },
            Some(None) => (false, "the firmware sent a frame that is not RoCEv2".into()),
            None if nak => (
                false,
                "the firmware sent no NAK (PSN sequence error) for this request".into(),
            ),
            None => (false, "the firmware sent no such response".into()),
        };
        verdicts.push(Verdict {
            frame: w.number,
            direction: "out",
            opcode: w.opcode,
            psn: w.psn,
            ok,
            detail,
        });
    }
    for g in got.iter().skip(case.expected.len()) {
        verdicts.push(Verdict {
            frame: 0,
            direction: "out",
            opcode: g.as_ref().map_or(0, |g| g.opcode),
            psn: g.as_ref().map_or(0, |g| g.psn),
            ok: false,
            detail: "a response the captured responder did not send".into(),
        });
    }
    // Placement: WRITEs.
    let mut frame_ok: BTreeMap<u64, Result<(), String>> = BTreeMap::new();
    for (m, _mr, base, b) in &mrs {
        let mut img = rig.read_mem(*base, m.len as usize);
        let mut want = vec![0u8; m.len as usize];
        for (va, bytes) in &m.preload {
            let o = (va - m.iova) as usize;
            want[o..o + bytes.len()].copy_from_slice(bytes);
        }
        for (i, (f, va, bytes)) in m.writes.iter().enumerate() {
            let o = (va - m.iova) as usize;
            // Only the bytes no later WRITE overwrites are this packet's to check.
            let later = &m.writes[i + 1..];
            let mine = (0..bytes.len()).filter(|k| {
                let a = va.saturating_add(*k as u64);
                !later
                    .iter()
                    .any(|(_, v, b)| a >= *v && a < v.saturating_add(b.len() as u64))
            });
            let r = if mine.clone().all(|k| img[o + k] == bytes[k]) {
                Ok(())
            } else {
                Err(format!("WRITE bytes at VA {va:#x} differ"))
            };
            frame_ok.insert(*f, r);
            want[o..o + bytes.len()].copy_from_slice(bytes);
        }
        // Atomic targets change by design; take them from the image.
        for p in case.requests.iter().filter(|p| p.atomic.is_some()) {
            let (va, rkey, _, _) = p.atomic.unwrap();
            if rkey == m.rkey {
                let o = (va - m.iova) as usize;
                want[o..o + 8].copy_from_slice(&img[o..o + 8]);
            }
        }
        if img != want {
            let at = img.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
            verdicts.push(Verdict {
                frame: 0,
                direction: "mem",
                opcode: 0,
                psn: 0,
                ok: false,
                detail: format!(
                    "MR rkey {:#x}: a byte no request may write changed, at offset {at}",
                    m.rkey
                ),
            });
        }
        img.clear();
        check_guards(rig, b.bus_addr, *base, m.len, &mut verdicts, "MR");
    }
    // Placement: SENDs, and the CQEs.
    let mut cqes: BTreeMap<u32, Vec<hroce::Completion>> = BTreeMap::new();
    for (q, qp) in qps.iter_mut() {
        for c in qp.poll_cq(usize::MAX).map_err(|e| e.to_string())? {
            if let Cqe::Own(c) = c {
                cqes.entry(q.qpn).or_default().push(c);
            }
        }
    }
    for p in &posted {
        let Some(q) = case.qps.iter().find(|q| q.qpn == p.qpn) else {
            continue;
        };
        let (msg, imm) = &q.messages[p.msg];
        let done = q.message_done.get(p.msg).copied().unwrap_or(true);
        let frames = &q.message_frames[p.msg];
        let want_len = q.message_lens[p.msg] as usize;
        let off = if q.qp_type == QpType::Ud { GRH } else { 0 };
        let got = rig.read_mem(p.bus + off as u64, msg.len());
        let mut r: Result<(), String> = if got == *msg {
            Ok(())
        } else {
            Err(format!(
                "message {} bytes differ in the posted buffer",
                p.msg
            ))
        };
        if r.is_ok() && q.qp_type == QpType::Ud {
            // rxe's convention: an IPv4 header lands in the last 20 bytes of the GRH area.
            let req = case
                .requests
                .iter()
                .find(|x| Some(&x.number) == frames.first());
            if let Some(req) = req.filter(|x| x.ip_header.len() == 20) {
                if rig.read_mem(p.bus + 20, 20) != req.ip_header {
                    r = Err("GRH area does not hold the IPv4 header".into());
                }
            }
            // An IPv6 header (without extension headers) fills the GRH area.
            if let Some(req) = req.filter(|x| x.ip_header.len() == GRH) {
                if rig.read_mem(p.bus, GRH) != req.ip_header {
                    r = Err("GRH area does not hold the IPv6 header".into());
                }
            }
        }
        let c = cqes.get(&p.qpn).and_then(|v| v.get(p.msg));
        if r.is_ok() && !done {
            // A message the capture does not finish (or whose end is lost) holds its WQE.
            r = match c {
                None => Ok(()),
                Some(c) => Err(format!(
                    "a CQE (status {}) for a message whose last packet never arrived",
                    c.status
                )),
            };
        } else if r.is_ok() {
            r = match c {
                None => Err("no CQE".into()),
                Some(c) if !c.is_ok() => Err(format!("CQE status {}", c.status)),
                Some(c) if c.byte_len as usize != want_len + off => {
                    Err(format!("CQE byte_len {} != {}", c.byte_len, want_len + off))
                }
                Some(c) if c.imm != *imm => Err(format!("CQE imm {:?} != {imm:?}", c.imm)),
                Some(c)
                    if imm.is_some()
                        && msg.is_empty()
                        && c.opcode != wc_opcode::RECV_RDMA_WITH_IMM =>
                {
                    Err("CQE opcode is not RECV_RDMA_WITH_IMM".into())
                }
                Some(_) => Ok(()),
            };
        }
        for f in frames {
            let prev = frame_ok.remove(f).unwrap_or(Ok(()));
            frame_ok.insert(*f, prev.and(r.clone()));
        }
        check_guards(
            rig,
            p.bus - GUARD,
            p.bus,
            p.len,
            &mut verdicts,
            "receive buffer",
        );
    }
    let nic_counters = rig.nic_counters();
    // The drops the lost requests must have been counted as, per counter.
    let mut drops: BTreeMap<&'static str, u64> = BTreeMap::new();
    let qpns: Vec<u32> = case.qps.iter().map(|q| q.qpn).collect();
    for p in &case.requests {
        if let Some(c) = case.lost.get(&p.number).and_then(|l| l.counter) {
            // A packet to a QP the responder does not have is not the responder's to count.
            if qpns.contains(&p.dest_qp) {
                *drops.entry(c).or_default() += 1;
            }
        }
    }
    let counter = |name: &str| {
        splitrx_shared::stats::DEV_NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| nic_counters.get(i).copied())
            .unwrap_or(0)
    };
    for (r, why) in &case.unanswered {
        verdicts.push(Verdict {
            frame: r.number,
            direction: "out",
            opcode: r.opcode,
            psn: r.psn,
            ok: true,
            detail: why.clone(),
        });
    }
    for p in &case.requests {
        let (ok, detail) = match frame_ok.get(&p.number) {
            _ if case.lost.contains_key(&p.number) => {
                let l = &case.lost[&p.number];
                match l.counter {
                    _ if !qpns.contains(&p.dest_qp) => (
                        true,
                        format!(
                            "{}; to QP {:#x}, which no good packet of the capture sets up: not the responder's QP, not counted",
                            l.why, p.dest_qp
                        ),
                    ),
                    Some(c) if counter(c) != drops[c] => (
                        false,
                        format!(
                            "{}: but {c} is {}, the capture's losses make {}",
                            l.why,
                            counter(c),
                            drops[c]
                        ),
                    ),
                    _ => (true, l.why.clone()),
                }
            }
            Some(Ok(())) => (true, "placed exactly".to_string()),
            Some(Err(e)) => (false, e.clone()),
            None => (true, "served".to_string()),
        };
        verdicts.push(Verdict {
            frame: p.number,
            direction: "in",
            opcode: p.opcode,
            psn: p.psn,
            ok,
            detail,
        });
    }
    verdicts.sort_by_key(|v| (v.frame == 0, v.frame));
    for (_, qp) in qps {
        let _ = qp.destroy();
    }
    for (_, mr, _, _) in mrs {
        let _ = rdma.dereg_mr(mr);
    }
    for (_, mr) in &bufs_mem {
        let _ = rdma.dereg_mr(*mr);
    }
    drop(bufs_mem);
    Ok(ReplayReport {
        responder: gid_str(&case.responder),
        qps: case.qps.len(),
        mrs: case.mrs.len(),
        verdicts,
        nic_counters,
        skipped: case.skipped.clone(),
    })
}

fn check_guards(
    mem: &RoceRig,
    start: u64,
    base: u64,
    len: u64,
    verdicts: &mut Vec<Verdict>,
    what: &str,
) {
    let before = mem.read_mem(start, (base - start) as usize);
    let after = mem.read_mem(base + len, GUARD as usize);
    if before.iter().chain(&after).any(|b| *b != GUARD_BYTE) {
        verdicts.push(Verdict {
            frame: 0,
            direction: "mem",
            opcode: 0,
            psn: 0,
            ok: false,
            detail: format!("a guard byte around a {what} at {base:#x} was written"),
        });
    }
}

/// What [`serve`] sets up: one responder QP taking its receive WQEs from an SRQ fed by a page
/// pool in device memory, and one MR over device memory that peers WRITE, READ and ATOMIC.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub qpn: u32,
    pub qp_type: QpType,
    pub mtu: Mtu,
    /// The requester: its QPN (RC/UC), the PSN of its first request, its GID, the Q_Key (UD).
    pub remote_qpn: u32,
    pub rq_psn: u32,
    pub remote_gid: [u8; 16],
    pub qkey: u32,
    /// UDP source port of the responder's packets.
    pub udp_sport: u16,
    /// Bytes of the MR (device memory).
    pub mr_len: u64,
    /// Receive buffers of the SRQ's pool, and their size.
    pub recv_bufs: u32,
    pub recv_buf_size: u32,
    /// Accept an rdma_cm connection to this TCP-space port (RC only) instead of being given
    /// the requester's QPN, PSN and GID: the firmware answers the CM on QP 1.
    pub cm_port: Option<u16>,
    /// Be the server of an unmodified perftest client (`ib_write_bw`, `ib_read_bw`,
    /// `ib_send_bw`, `ib_atomic_bw` without `-R`): its out-of-band exchange on this TCP
    /// listener ([`crate::perftest`]) gives the requester's QPN, PSN and GID; the serve ends
    /// when the client has finished.
    pub perftest: Option<std::net::SocketAddr>,
    /// Which perftest the client runs (the exchange differs).
    pub perftest_test: crate::perftest::Test,
    /// The responder's GID as the perftest exchange announces it (the address the requester
    /// reaches the board's MAC at).
    pub local_gid: [u8; 16],
    /// Be the server of an unmodified `ibv_rc_pingpong` client: its out-of-band exchange on
    /// this TCP listener ([`crate::pingpong`]); every message received is checked (`size`
    /// bytes of 0x7b) and answered with a SEND of `size` bytes from the MR, `iters` times.
    pub pingpong: Option<std::net::SocketAddr>,
    pub pingpong_iters: u64,
    pub pingpong_size: u32,
    /// With `cm_port`: be the server of an unmodified `rping -c` ([`crate::rping`]): READ
    /// each ping's source buffer (checked byte for byte), WRITE it back to the sink.
    pub rping: bool,
    /// Keep what a byte check needs ([`crate::interop::check_link`]): the MR is filled with
    /// [`crate::interop::mr_pattern`] before the peer connects, the target records its link
    /// ([`crate::target::Session::record_link`]; an error if it cannot), every received
    /// message's bytes are kept, and the MR is read back at the end: [`ServeReport::bytes`].
    pub keep_bytes: bool,
}

/// The send PSN splitrx announces in the pingpong exchange.
pub const PINGPONG_PSN: u32 = 0x5a_5a5a;

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            qpn: 0x11,
            qp_type: QpType::Rc,
            mtu: Mtu::M1024,
            remote_qpn: 0,
            rq_psn: 0,
            remote_gid: hroce::gid_from_ipv4([127, 0, 0, 1]),
            qkey: 0x1111_1111,
            udp_sport: 49152,
            mr_len: 1 << 20,
            recv_bufs: 256,
            recv_buf_size: 4096,
            cm_port: None,
            perftest: None,
            perftest_test: crate::perftest::Test::Write,
            local_gid: hroce::gid_from_ipv4([127, 0, 0, 1]),
            pingpong: None,
            pingpong_iters: 1000,
            pingpong_size: 4096,
            rping: false,
            keep_bytes: false,
        }
    }
}

/// The connection details a requester needs (what perftest exchanges out of band).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServeInfo {
    pub qpn: u32,
    pub qp_type: String,
    /// The PSN the responder expects first.
    pub rq_psn: u32,
    pub mtu: u32,
    pub rkey: u32,
    /// VA of the MR's first byte (its length: `mr_len`).
    pub va: u64,
    pub mr_len: u64,
    pub srqn: u32,
    pub recv_buf_size: u32,
    /// The rdma_cm service ID listened on (CM mode); `rq_psn` is then chosen at connect time.
    pub cm_service_id: Option<u64>,
}

/// What a [`serve`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ServeReport {
    pub info: ServeInfo,
    /// Messages received into SRQ buffers (tokens lent to the app and returned) and their
    /// bytes.
    pub received: u64,
    pub received_bytes: u64,
    /// Receive completions with an error status.
    pub recv_errors: u64,
    /// CQEs the host refused.
    pub cqe_invalid: u64,
    /// The pool's ledger audit after teardown (`None`: clean).
    pub audit_error: Option<String>,
    /// Device-wide counters at the end (index order of `splitrx_shared::stats`).
    pub nic_counters: Vec<u64>,
    /// CM mode: the requester's QPN once its connection reached RTS.
    pub cm_peer_qpn: Option<u32>,
    /// perftest mode: the client's QPN and its report (bytes per message, iterations, peak
    /// and average MB/s, Mpps), or why the exchange failed.
    pub perftest: Option<Result<PerftestClient, String>>,
    /// pingpong mode: what the exchange and the echo did, or why the exchange failed.
    pub pingpong: Option<Result<PingpongRun, String>>,
    /// rping mode: the pings served and their checks.
    pub rping: Option<crate::rping::RpingRun>,
    /// With `keep_bytes`: the MR before and after, the messages' bytes and the link's frames
    /// (not serialized: megabytes).
    #[serde(skip)]
    pub bytes: Option<crate::interop::ServeBytes>,
}

/// What a pingpong [`serve`] did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PingpongRun {
    /// The client's destination.
    pub client_qpn: u32,
    pub client_psn: u32,
    /// Messages received, and of those checked byte for byte (all `size` bytes 0x7b), and
    /// found different.
    pub received: u64,
    pub verified: u64,
    pub mismatched: u64,
    /// SENDs posted back, completed successfully, and completed with an error.
    pub sends_posted: u64,
    pub sends_completed: u64,
    pub send_errors: u64,
}

/// What a perftest client told a [`serve`] (see [`ServeReport::perftest`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PerftestClient {
    pub version: String,
    pub qpn: u32,
    pub msg_size: u64,
    pub iterations: u64,
    pub bw_peak_mbs: f64,
    pub bw_avg_mbs: f64,
    pub msg_rate_mpps: f64,
}

/// Runs a responder on `target` (see [`ServeConfig`]) until `stop(&info, received)` says so
/// (it is asked about every millisecond). Every message received is lent to the app as a token
/// and given straight back (the buffer returns to the pool, the SRQ reposts it).
pub fn serve(
    target: &dyn Target,
    cfg: &ServeConfig,
    mut started: impl FnMut(&ServeInfo),
    mut stop: impl FnMut(&ServeInfo, u64) -> bool,
) -> Result<ServeReport, String> {
    let mut rig = RoceRig::up(
        target,
        Vec::new(),
        16 * 4096,
        cfg.mr_len + cfg.recv_bufs as u64 * cfg.recv_buf_size as u64 + 8192,
    )?;
    let r = serve_session(&mut rig, cfg, &mut started, &mut stop);
    let (_, fw_error) = rig.finish();
    match (r, fw_error) {
        (Err(e), _) => Err(e),
        (Ok(_), Some(e)) => Err(format!("the firmware stopped: {e}")),
        (Ok(r), None) => Ok(r),
    }
}

fn serve_session(
    rig: &mut RoceRig,
    cfg: &ServeConfig,
    started: &mut dyn FnMut(&ServeInfo),
    stop: &mut dyn FnMut(&ServeInfo, u64) -> bool,
) -> Result<ServeReport, String> {
    let e = |e: hroce::RoceError| e.to_string();
    let rdma = rig.rdma.clone();
    let pd = rdma.alloc_pd();
    let mem = rdma.alloc_device(cfg.mr_len).map_err(e)?;
    let mr = rdma
        .reg_mr(
            pd,
            mem.bus_addr,
            cfg.mr_len,
            mem.bus_addr,
            access::LOCAL_WRITE
                | access::REMOTE_WRITE
                | access::REMOTE_READ
                | access::REMOTE_ATOMIC,
        )
        .map_err(e)?;
    let mut kept = None;
    if cfg.keep_bytes {
        if !rig.session.record_link() {
            return Err("keep_bytes needs a target whose link to the peer can be recorded".into());
        }
        let initial = crate::interop::mr_pattern(cfg.mr_len);
        rig.write_mem(mem.bus_addr, &initial);
        kept = Some(crate::interop::ServeBytes {
            mr_va: mr.iova,
            mr_initial: initial,
            ..Default::default()
        });
    }
    let (pool, pmem) = rdma
        .device_pool(cfg.recv_buf_size, cfg.recv_bufs)
        .map_err(e)?;
    let srqn = 1;
    let depth = cfg.recv_bufs.next_power_of_two() / 2;
    let mut srq =
        hroce::PoolSrq::new(&rdma, srqn, pd, pool, Some(pmem), depth.max(2)).map_err(e)?;
    let mut qp = rdma
        .create_qp(&QpInit {
            qpn: cfg.qpn,
            qp_type: cfg.qp_type,
            pd,
            rq_depth: 0,
            cq_depth: (depth * 2).max(64),
            srqn: Some(srqn),
            sq_depth: if cfg.pingpong.is_some() || cfg.rping {
                16
            } else {
                0
            },
        })
        .map_err(e)?;
    qp.to_init(
        access::REMOTE_WRITE | access::REMOTE_READ | access::REMOTE_ATOMIC,
        cfg.qkey,
    )
    .map_err(e)?;
    let perftest = match cfg.perftest {
        Some(addr) => {
            if cfg.qp_type != QpType::Rc || cfg.cm_port.is_some() {
                return Err("perftest mode needs an RC QP and no --cm-port".into());
            }
            let l = std::net::TcpListener::bind(addr)
                .map_err(|x| format!("perftest listener {addr}: {x}"))?;
            let ours = crate::perftest::Keys {
                out_reads: 4,
                qpn: cfg.qpn,
                psn: 0,
                rkey: mr.rkey,
                vaddr: mr.iova,
                gid: cfg.local_gid,
                ..Default::default()
            };
            Some(perftest_thread(l, ours, cfg.mtu as u8, cfg.perftest_test))
        }
        None => None,
    };
    let pingpong = match cfg.pingpong {
        Some(addr) => {
            if cfg.qp_type == QpType::Uc || cfg.cm_port.is_some() || perftest.is_some() {
                return Err(
                    "pingpong mode needs an RC (ibv_rc_pingpong) or UD (ibv_ud_pingpong) QP, no --cm-port and no --perftest"
                        .into(),
                );
            }
            if cfg.pingpong_size as u64 > cfg.mr_len || cfg.pingpong_size > cfg.recv_buf_size {
                return Err(format!(
                    "pingpong size {} is larger than the MR or a receive buffer",
                    cfg.pingpong_size
                ));
            }
            let l = std::net::TcpListener::bind(addr)
                .map_err(|x| format!("pingpong listener {addr}: {x}"))?;
            // What the client's buffer holds, and ours (the client does not check it).
            rig.fill_mem(mem.bus_addr, cfg.pingpong_size as usize, 0x7b);
            Some(pingpong_thread(
                l,
                crate::pingpong::Dest {
                    lid: 0,
                    qpn: cfg.qpn,
                    psn: PINGPONG_PSN,
                    gid: cfg.local_gid,
                },
            ))
        }
        None => None,
    };
    if cfg.keep_bytes && (cfg.rping || cfg.pingpong.is_some()) {
        return Err(
            "the link check (--verify) models a responder; pingpong and rping check their own bytes"
                .into(),
        );
    }
    if cfg.rping && cfg.cm_port.is_none() {
        return Err("rping mode needs --cm-port (rping connects through the RDMA CM)".into());
    }
    let mut rping = cfg.rping.then(crate::rping::RpingRun::default);
    let cm_service_id = match cfg.cm_port {
        Some(port) => {
            if cfg.qp_type != QpType::Rc {
                return Err("connection management (--cm-port) needs an RC QP".into());
            }
            let sid = hroce::rdma_cm_service_id(hroce::RDMA_PS_TCP, port);
            rdma.cm_listen(sid, &qp).map_err(e)?;
            Some(sid)
        }
        None if perftest.is_some() || pingpong.is_some() => None,
        None => {
            qp.to_rtr(&RtrAttr {
                dest_qpn: cfg.remote_qpn,
                rq_psn: cfg.rq_psn,
                mtu: cfg.mtu,
                remote_gid: cfg.remote_gid,
                udp_sport: cfg.udp_sport,
                min_rnr_timer: 12,
            })
            .and_then(|_| qp.to_rts())
            .map_err(e)?;
            None
        }
    };
    let info = ServeInfo {
        qpn: cfg.qpn,
        qp_type: format!("{:?}", cfg.qp_type).to_uppercase(),
        rq_psn: cfg.rq_psn,
        mtu: cfg.mtu.bytes(),
        rkey: mr.rkey,
        va: mr.iova,
        mr_len: mr.len,
        srqn,
        recv_buf_size: cfg.recv_buf_size,
        cm_service_id,
    };
    rig.start();
    started(&info);
    let (mut received, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    let mut cm_peer_qpn = None;
    let mut polls = 0u64;
    let mut perftest_out: Option<Result<PerftestClient, String>> = None;
    let mut pp = PingpongRun::default();
    let mut pp_exchange: Option<Result<(), String>> = None;
    let mut stopping: Option<Instant> = None;
    loop {
        polls += 1;
        if let Some(p) = &perftest {
            if let Ok((k, mtu)) = p.keys.try_recv() {
                // The client's QP: ours to RTR and RTS with it, then the exchange goes on.
                let mtu = match mtu {
                    1 => Mtu::M256,
                    2 => Mtu::M512,
                    3 => Mtu::M1024,
                    4 => Mtu::M2048,
                    _ => Mtu::M4096,
                };
                let r = qp
                    .to_rtr(&RtrAttr {
                        dest_qpn: k.qpn,
                        rq_psn: k.psn & 0xff_ffff,
                        mtu,
                        remote_gid: k.gid,
                        udp_sport: cfg.udp_sport,
                        min_rnr_timer: 12,
                    })
                    .and_then(|_| qp.to_rts());
                let _ = p.ready.send(r.is_ok());
                r.map_err(e)?;
            }
            if let Ok(r) = p.done.try_recv() {
                perftest_out = Some(r);
            }
        }
        if let Some(p) = &pingpong {
            if let Ok(d) = p.client.try_recv() {
                let r = qp
                    .to_rtr(&RtrAttr {
                        dest_qpn: d.qpn,
                        rq_psn: d.psn,
                        mtu: cfg.mtu,
                        remote_gid: d.gid,
                        udp_sport: cfg.udp_sport,
                        min_rnr_timer: 12,
                    })
                    .and_then(|_| {
                        qp.to_rts_with(&hroce::RtsAttr {
                            sq_psn: PINGPONG_PSN,
                            ..Default::default()
                        })
                    });
                let _ = p.ready.send(r.is_ok());
                r.map_err(e)?;
                pp.client_qpn = d.qpn;
                pp.client_psn = d.psn;
            }
            if let Ok(r) = p.done.try_recv() {
                pp_exchange = Some(r);
            }
        }
        if cm_service_id.is_some() && cm_peer_qpn.is_none() && polls % 16 == 1 {
            let q = qp.query().map_err(e)?;
            if q.state == splitrx_shared::abi::qp_state::RTS {
                cm_peer_qpn = Some(q.dest_qpn.get());
            }
        }
        let cqes = qp.poll_cq(64).map_err(e)?;
        let idle = cqes.is_empty();
        for c in cqes {
            match c {
                Cqe::Srq(c) => match srq.accept(c) {
                    Ok(Ok(rx)) => {
                        received += 1;
                        bytes += rx.completion.byte_len as u64;
                        if let Some(k) = &mut kept {
                            let b = rx
                                .token
                                .bytes()
                                .ok_or("a received message is not host-readable")?;
                            k.messages.push(b.to_vec());
                        }
                        if let Some(rp) = rping.as_mut() {
                            let step = match rx.token.bytes() {
                                Some(b) => {
                                    rp.on_recv(&b[..(rx.completion.byte_len as usize).min(b.len())])
                                }
                                None => None,
                            };
                            drop(rx.token);
                            if let Some(step) = step {
                                rping_step(rig, &mut qp, &mr, mem.bus_addr, step).map_err(e)?;
                            }
                        } else if pingpong.is_some() {
                            pp.received += 1;
                            // UD: the 40-byte GRH area comes first.
                            let grh = if cfg.qp_type == QpType::Ud { 40 } else { 0 };
                            let n = cfg.pingpong_size as usize;
                            if let Some(b) = rx.token.bytes() {
                                pp.verified += 1;
                                let body = (b.len() == grh + n).then(|| &b[grh..]);
                                if body.is_none_or(|p| p.iter().any(|&x| x != 0x7b)) {
                                    pp.mismatched += 1;
                                }
                            }
                            drop(rx.token);
                            if pp.sends_posted < cfg.pingpong_iters {
                                let (id, bus, n) =
                                    (pp.sends_posted, mem.bus_addr, cfg.pingpong_size);
                                let wr = match cfg.qp_type {
                                    QpType::Ud => hroce::SendWr::ud_send(
                                        id,
                                        &mr,
                                        bus,
                                        n,
                                        pp.client_qpn,
                                        cfg.qkey,
                                    ),
                                    _ => hroce::SendWr::send(id, &mr, bus, n),
                                };
                                qp.post_send(&wr).map_err(e)?;
                                pp.sends_posted += 1;
                            }
                        } else {
                            drop(rx.token);
                        }
                    }
                    Ok(Err(_)) => errors += 1,
                    Err(_) => {}
                },
                Cqe::Send(c) if rping.is_some() => {
                    let rp = rping.as_mut().expect("checked");
                    let step = match (c.is_ok(), c.wr_id) {
                        (false, _) => {
                            rp.error.get_or_insert(format!(
                                "send WQE {:#x} completed with status {}",
                                c.wr_id, c.status
                            ));
                            None
                        }
                        (true, RPING_READ) => {
                            let b = rig.read_mem(mem.bus_addr, c.byte_len as usize);
                            rp.on_read_done(&b)
                        }
                        (true, RPING_WRITE) => rp.on_write_done(),
                        _ => None,
                    };
                    if let Some(step) = step {
                        rping_step(rig, &mut qp, &mr, mem.bus_addr, step).map_err(e)?;
                    }
                }
                Cqe::Send(c) if c.is_ok() => pp.sends_completed += 1,
                Cqe::Send(_) => pp.send_errors += 1,
                Cqe::Own(_) => {}
            }
        }
        srq.refill().map_err(e)?;
        let pp_done = pingpong.is_some()
            && (pp_exchange.as_ref().is_some_and(|r| r.is_err())
                || (pp_exchange.is_some()
                    && pp.received >= cfg.pingpong_iters
                    && pp.sends_completed + pp.send_errors >= pp.sends_posted
                    && pp.sends_posted >= cfg.pingpong_iters));
        // With the RDMA CM the first SEND can come before the RTU (Linux 6.12's rxe sends the
        // RTU from its MAD work queue after rping's first SEND): once told to stop, wait up to
        // 2 s more for the RTU to move the QP to RTS.
        let cm_pending = cm_service_id.is_some() && cm_peer_qpn.is_none();
        if perftest_out.is_some() || pp_done || (stop(&info, received) && !cm_pending) {
            break;
        }
        if stop(&info, received) {
            let t = *stopping.get_or_insert_with(Instant::now);
            if t.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if cm_service_id.is_some() && cm_peer_qpn.is_none() {
        let q = qp.query().map_err(e)?;
        if q.state == splitrx_shared::abi::qp_state::RTS {
            cm_peer_qpn = Some(q.dest_qpn.get());
        }
    }
    let nic_counters = rig.nic_counters();
    if let Some(k) = &mut kept {
        k.mr_final = rig.read_mem(mem.bus_addr, cfg.mr_len as usize);
        k.link_rx = rig.session.received().unwrap_or_default();
        k.link_tx = rig.session.transmitted().unwrap_or_default();
        k.link_overflow = rig.session.record_overflow();
    }
    let d = qp.destroy().map_err(e)?;
    for c in d.completions {
        if let Cqe::Srq(c) = c {
            if let Ok(Err(_)) = srq.accept(c) {
                errors += 1;
            }
        }
    }
    let cqe_invalid = srq.counters().cqe_invalid;
    let sd = srq.destroy().map_err(|e| e.to_string())?;
    let _ = rdma.dereg_mr(mr);
    drop(mem);
    Ok(ServeReport {
        info,
        received,
        received_bytes: bytes,
        recv_errors: errors,
        cqe_invalid,
        audit_error: sd.audit.err(),
        nic_counters,
        cm_peer_qpn,
        perftest: perftest_out,
        pingpong: pingpong.map(|_| match pp_exchange {
            Some(Err(x)) => Err(x),
            None => Err("the pingpong exchange did not end".into()),
            Some(Ok(())) => Ok(pp),
        }),
        rping,
        bytes: kept,
    })
}

/// wr_ids of the rping server's send WQEs.
const RPING_READ: u64 = 1;
const RPING_WRITE: u64 = 2;
const RPING_GO_AHEAD: u64 = 3;

/// Posts what the rping server does next: the READ of the client's source into our buffer at
/// `buf` (the MR's first bytes), the WRITE of the string read back to its sink, or the
/// 16-byte go ahead (our buffer's advertisement, as rping's server sends).
fn rping_step(
    rig: &mut RoceRig,
    qp: &mut hroce::Qp,
    mr: &hroce::MemoryRegion,
    buf: u64,
    step: crate::rping::Step,
) -> Result<(), hroce::RoceError> {
    use crate::rping::{Info, Step, INFO_LEN};
    const GO_AHEAD_OFF: u64 = 1 << 16;
    let wr = match step {
        Step::Read(i) => {
            let len = i.size.min(GO_AHEAD_OFF as u32);
            hroce::SendWr::read(RPING_READ, mr, buf, len, i.addr, i.rkey)
        }
        Step::Write(i, _) => {
            let b = rig.read_mem(buf, i.size.min(GO_AHEAD_OFF as u32) as usize);
            let len = crate::rping::c_string_len(&b) as u32;
            hroce::SendWr::write(RPING_WRITE, mr, buf, len, i.addr, i.rkey)
        }
        Step::GoAhead => {
            let ours = Info {
                addr: mr.iova,
                rkey: mr.rkey,
                size: GO_AHEAD_OFF as u32,
            };
            rig.write_mem(buf + GO_AHEAD_OFF, &ours.to_bytes());
            hroce::SendWr::send(RPING_GO_AHEAD, mr, buf + GO_AHEAD_OFF, INFO_LEN as u32)
        }
    };
    qp.post_send(&wr)
}

/// The pingpong exchange's thread and what it tells [`serve_session`].
struct PingpongLink {
    client: std::sync::mpsc::Receiver<crate::pingpong::Dest>,
    ready: std::sync::mpsc::Sender<bool>,
    done: std::sync::mpsc::Receiver<Result<(), String>>,
}

/// Runs the server's side of the pingpong exchange ([`crate::pingpong`]) on `l` in a thread:
/// the client's destination goes to the serve loop, which connects the QP and says `ready`;
/// then our destination and the client's `done`.
fn pingpong_thread(l: std::net::TcpListener, ours: crate::pingpong::Dest) -> PingpongLink {
    let (ctx, client) = std::sync::mpsc::channel();
    let (ready, rrx) = std::sync::mpsc::channel();
    let (dtx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let run = || -> Result<(), String> {
            let s = crate::pingpong::PingpongServer::accept(&l, Duration::from_secs(120))?;
            ctx.send(s.client).map_err(|_| "serve ended")?;
            if !rrx
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| "serve ended")?
            {
                return Err("the QP could not be connected to the client's".into());
            }
            s.answer(&ours)
        };
        let _ = dtx.send(run());
    });
    PingpongLink {
        client,
        ready,
        done,
    }
}

/// The perftest exchange's thread and what it tells [`serve_session`].
struct PerftestLink {
    /// The client's keys and the MTU settled on, once read.
    keys: std::sync::mpsc::Receiver<(crate::perftest::Keys, u8)>,
    /// Whether our QP could be set up (the exchange goes on or gives up).
    ready: std::sync::mpsc::Sender<bool>,
    /// The end of the exchange.
    done: std::sync::mpsc::Receiver<Result<PerftestClient, String>>,
}

/// Runs the server's side of the perftest exchange (`crate::perftest`) on `l` in a thread:
/// the client's keys go to the serve loop, which sets the QP up and says `ready`; then our
/// keys, the two barriers, and the client's end (up to 10 minutes) with its report.
fn perftest_thread(
    l: std::net::TcpListener,
    ours: crate::perftest::Keys,
    mtu: u8,
    test: crate::perftest::Test,
) -> PerftestLink {
    let (ktx, keys) = std::sync::mpsc::channel();
    let (ready, rrx) = std::sync::mpsc::channel();
    let (dtx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let run = || -> Result<PerftestClient, String> {
            let e = |x: crate::perftest::PerftestError| x.to_string();
            let mut s = crate::perftest::PerftestServer::accept(&l, Duration::from_secs(120), mtu)
                .map_err(e)?;
            let theirs = s.read_keys().map_err(e)?;
            ktx.send((theirs, s.mtu)).map_err(|_| "serve ended")?;
            if !rrx
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| "serve ended")?
            {
                return Err("the QP could not be connected to the client's".into());
            }
            s.write_keys(&ours).map_err(e)?;
            for _ in 0..test.barriers() {
                s.hand_shake(&ours).map_err(e)?;
            }
            let (size, iters, peak, avg, rate) =
                s.finish(test, &ours, Duration::from_secs(600)).map_err(e)?;
            Ok(PerftestClient {
                version: s.version.clone(),
                qpn: theirs.qpn,
                msg_size: size,
                iterations: iters,
                bw_peak_mbs: peak,
                bw_avg_mbs: avg,
                msg_rate_mpps: rate,
            })
        };
        let _ = dtx.send(run());
    });
    PerftestLink { keys, ready, done }
}
