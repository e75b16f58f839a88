//! Byte checks of an interop run: what crossed the link between a real RoCE peer (the rxe
//! guest's perftest or rping) and the firmware's responder, against what the responder did
//! to device memory ([`crate::roce::serve`] with `keep_bytes`).
//!
//! The peer's data is random (perftest fills its buffers with `rand()`), so the oracle is the
//! link itself: [`check_link`] parses every frame the board received (the peer's requests)
//! and transmitted (the responder's answers) with the oracle's parser ([`crate::roce::parse`],
//! on `splitrx_shared::wire::roce`), replays the requests to the responder's QP on a model of
//! the MR that starts from [`mr_pattern`] (what `serve` wrote there before the peer
//! connected), and checks:
//!
//! * **WRITE**: every ICRC-valid WRITE packet's payload goes into the model at its address
//!   (RETH of the message's first packet, then packet after packet), the last write of a byte
//!   winning; at the end the MR in device memory must equal the model byte for byte (which
//!   also proves every byte no request wrote is still the pattern);
//! * **SEND**: the messages the app received through its tokens, in order, must equal the
//!   SEND payloads on the wire assembled message by message in arrival order;
//! * **READ**: every READ response payload the firmware transmitted must equal the model's
//!   bytes at the requested address plus the packet's offset, as the MR was when the READ
//!   request arrived;
//! * **ATOMIC**: fetch-add and compare-swap are applied to the model (8 bytes, little-endian:
//!   the responder's memory order) in arrival order; each ATOMIC ACK must return the value the
//!   model held before its request, and the MR's final bytes must equal the model's.
//!
//! Requests are applied in PSN order (the order the responder executes them in), each PSN
//! once: a request repeating a PSN seen before (a retransmission) is counted and not applied
//! again (the responder answers a duplicate from what it did the first time; a retransmitted
//! packet carries the same bytes), and a packet lost on the way and sent again later takes its
//! place by PSN. A request with a bad ICRC is counted and not applied (the responder drops
//! it). Every count is exact, so a test can assert how many packets and bytes were verified.

use crate::roce::{ends_message, is_request, parse, psn_in, Pkt};
use splitrx_shared::wire::roce::opcode as op;
use std::collections::{BTreeMap, HashSet};

/// What `serve` writes into its MR before the peer connects (see [`check_link`]): byte `i`
/// of the MR is a hash of `i`, so bytes landing at a wrong offset, or read from one, differ.
pub fn mr_pattern(len: u64) -> Vec<u8> {
    (0..len)
        .map(|i| ((i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 56) as u8 ^ (i as u8))
        .collect()
}

/// What a [`crate::roce::serve`] kept for a byte check (`ServeConfig::keep_bytes`).
#[derive(Clone, Debug, Default)]
pub struct ServeBytes {
    /// The MR's bus address / VA (the same: `serve` registers it with iova = bus address).
    pub mr_va: u64,
    /// The MR as the serve began (what the peer's READs and atomics first see).
    pub mr_initial: Vec<u8>,
    /// The MR when the serve ended.
    pub mr_final: Vec<u8>,
    /// Every message the app received through its SRQ tokens, in completion order.
    pub messages: Vec<Vec<u8>>,
    /// Frames the board received from the link, and transmitted to it, oldest first.
    pub link_rx: Vec<Vec<u8>>,
    pub link_tx: Vec<Vec<u8>>,
    /// Frames the link's record could not keep (received, transmitted): a check is then
    /// incomplete and fails.
    pub link_overflow: (u64, u64),
}

/// The outcome of [`check_link`]: exact counts of what was verified, and every mismatch.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkCheck {
    /// Request packets to the responder's QP with a valid ICRC, each PSN counted once.
    pub requests: u64,
    /// Request packets repeating a PSN (retransmissions): not applied again.
    pub duplicates: u64,
    /// Request packets to the QP whose ICRC is bad: not applied.
    pub bad_icrc: u64,
    /// Frames received that are no request to the QP (ARP, IPv6 ND, CM MADs on QP 1, ...).
    pub other_rx: u64,
    /// WRITE packets applied and their payload bytes.
    pub write_packets: u64,
    pub write_bytes: u64,
    /// SEND messages on the wire, their packets and bytes; messages the app received and
    /// compared equal.
    pub send_messages: u64,
    pub send_packets: u64,
    pub send_bytes: u64,
    pub messages_matched: u64,
    /// READ requests; READ response packets the firmware sent (distinct PSNs) and their
    /// payload bytes, each compared; repeated response PSNs (answers to a retransmission).
    pub read_requests: u64,
    pub read_responses: u64,
    pub read_bytes: u64,
    pub read_response_repeats: u64,
    /// Atomic requests applied; ATOMIC ACKs (distinct PSNs) whose original value was
    /// compared; repeated ACKs (answers to a retransmission, compared too).
    pub atomics: u64,
    pub atomic_acks: u64,
    pub atomic_ack_repeats: u64,
    /// Atomics that changed the value (a fetch-add of 0, a compare that failed: not).
    pub atomics_changed: u64,
    /// Bytes of the MR compared with the model at the end.
    pub mr_bytes_compared: u64,
    /// Everything that did not match (empty: pass).
    pub errors: Vec<String>,
}

impl LinkCheck {
    pub fn pass(&self) -> bool {
        self.errors.is_empty()
    }
}

fn is_write(o: u8) -> bool {
    matches!(o & 0x1f, 0x06..=0x0b)
}

fn is_send(o: u8) -> bool {
    matches!(o & 0x1f, 0x00..=0x05 | 0x16 | 0x17) || o >= op::UD_SEND_ONLY
}

/// The first byte where `a` and `b` differ, if any (or where the shorter ends).
fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

/// Checks the link record of a serve whose responder QP is `qpn` (see the module docs).
pub fn check_link(qpn: u32, b: &ServeBytes) -> LinkCheck {
    let mut c = LinkCheck::default();
    let mut model = b.mr_initial.clone();
    let len = model.len() as u64;
    if b.link_overflow != (0, 0) {
        c.errors.push(format!(
            "the link record overflowed ({} received, {} transmitted frames not kept)",
            b.link_overflow.0, b.link_overflow.1
        ));
    }
    // The MR offset of `va .. va + n`, if it lies inside the MR.
    let offset = |va: u64, n: usize| -> Option<usize> {
        let off = va.checked_sub(b.mr_va)?;
        (off.checked_add(n as u64)? <= len).then_some(off as usize)
    };
    let mut seen = HashSet::new();
    // WRITE: the address the next packet of the current message lands at.
    let mut write_at: Option<u64> = None;
    let mut send: Option<Vec<u8>> = None;
    let mut sends: Vec<Vec<u8>> = Vec::new();
    // READ requests: (PSN, VA, length, the bytes as the request found them).
    let mut reads: Vec<(u32, u64, u32, Vec<u8>)> = Vec::new();
    // Atomics: PSN -> the value before.
    let mut atomics: BTreeMap<u32, u64> = BTreeMap::new();
    // Each PSN once (its first arrival with a valid ICRC), then in PSN order: the order the
    // responder executes them in, whatever order a lossy link delivered them in (a lost
    // packet comes again after the ones behind it).
    let mut requests = Vec::new();
    for (i, f) in b.link_rx.iter().enumerate() {
        let n = i as u64 + 1;
        let Some(p) = parse(n, f).filter(|p| p.dest_qp == qpn && is_request(p.opcode)) else {
            c.other_rx += 1;
            continue;
        };
        if !p.icrc_ok {
            c.bad_icrc += 1;
        } else if !seen.insert(p.psn) {
            c.duplicates += 1;
        } else {
            requests.push(p);
        }
    }
    if let Some(first) = requests.first().map(|p| p.psn) {
        // Signed 24-bit distance from the first arrival (PSNs wrap).
        requests.sort_by_key(|p| ((p.psn.wrapping_sub(first) << 8) as i32) >> 8);
    }
    for p in requests {
        let n = p.number;
        c.requests += 1;
        let o = p.opcode;
        if is_write(o) {
            let at = match (p.reth, write_at) {
                (Some((va, _, _)), _) => va,
                (None, Some(at)) => at,
                (None, None) => {
                    c.errors
                        .push(format!("rx {n}: WRITE PSN {} continues no message", p.psn));
                    continue;
                }
            };
            match offset(at, p.payload.len()) {
                Some(off) => model[off..off + p.payload.len()].copy_from_slice(&p.payload),
                None => c.errors.push(format!(
                    "rx {n}: WRITE PSN {} of {} bytes at {at:#x} outside the MR",
                    p.psn,
                    p.payload.len()
                )),
            }
            c.write_packets += 1;
            c.write_bytes += p.payload.len() as u64;
            write_at = (!ends_message(o)).then_some(at + p.payload.len() as u64);
        } else if is_send(o) {
            let m = send.get_or_insert_with(Vec::new);
            m.extend_from_slice(&p.payload);
            c.send_packets += 1;
            c.send_bytes += p.payload.len() as u64;
            if ends_message(o) {
                sends.extend(send.take());
            }
        } else if o == op::RC_READ_REQUEST {
            let Some((va, _, dlen)) = p.reth else {
                continue;
            };
            let now = offset(va, dlen as usize).map(|off| model[off..off + dlen as usize].to_vec());
            match now {
                Some(bytes) => reads.push((p.psn, va, dlen, bytes)),
                None => c.errors.push(format!(
                    "rx {n}: READ PSN {} of {dlen} bytes at {va:#x} outside the MR",
                    p.psn
                )),
            }
            c.read_requests += 1;
        } else if let (Some((va, _, swap_add, compare)), true) = (
            p.atomic,
            matches!(o, op::RC_COMPARE_SWAP | op::RC_FETCH_ADD),
        ) {
            c.atomics += 1;
            let Some(off) = offset(va, 8) else {
                c.errors.push(format!(
                    "rx {n}: atomic PSN {} at {va:#x} outside the MR",
                    p.psn
                ));
                continue;
            };
            let cell: &mut [u8; 8] = (&mut model[off..off + 8]).try_into().expect("8 bytes");
            let orig = u64::from_le_bytes(*cell);
            let new = if o == op::RC_FETCH_ADD {
                orig.wrapping_add(swap_add)
            } else if orig == compare {
                swap_add
            } else {
                orig
            };
            *cell = new.to_le_bytes();
            c.atomics_changed += u64::from(new != orig);
            atomics.insert(p.psn, orig);
        }
    }
    if send.is_some() {
        c.errors
            .push("the link ended inside a SEND message (no LAST packet)".into());
    }
    c.send_messages = sends.len() as u64;
    // The app's messages against the wire's.
    if b.messages.len() != sends.len() {
        c.errors.push(format!(
            "the app received {} messages, the wire carried {}",
            b.messages.len(),
            sends.len()
        ));
    }
    for (k, (got, want)) in b.messages.iter().zip(&sends).enumerate() {
        match first_diff(got, want) {
            None => c.messages_matched += 1,
            Some(at) => c.errors.push(format!(
                "message {k}: the app's {} bytes differ from the wire's {} from byte {at}",
                got.len(),
                want.len()
            )),
        }
    }
    // The responder's packets: READ responses and ATOMIC ACKs.
    let responses: Vec<Pkt> = b
        .link_tx
        .iter()
        .enumerate()
        .filter_map(|(i, f)| parse(i as u64 + 1, f))
        .collect();
    let pmtu = responses
        .iter()
        .filter(|p| {
            matches!(
                p.opcode,
                op::RC_READ_RESPONSE_FIRST | op::RC_READ_RESPONSE_MIDDLE
            )
        })
        .map(|p| p.payload.len() as u32)
        .max();
    let mut read_psns = HashSet::new();
    let mut acked = HashSet::new();
    for p in &responses {
        let n = p.number;
        if !p.icrc_ok {
            c.errors.push(format!("tx {n}: bad ICRC"));
        }
        match p.opcode {
            op::RC_READ_RESPONSE_FIRST..=op::RC_READ_RESPONSE_ONLY => {
                let m = pmtu.unwrap_or(u32::MAX);
                let r = reads
                    .iter()
                    .find(|r| psn_in(p.psn, r.0, r.2.div_ceil(m).max(1)));
                let Some((psn, va, _, bytes)) = r else {
                    c.errors.push(format!(
                        "tx {n}: READ response PSN {} answers no READ request",
                        p.psn
                    ));
                    continue;
                };
                let first = read_psns.insert(p.psn);
                if !first {
                    c.read_response_repeats += 1;
                }
                let off = (p.psn.wrapping_sub(*psn) & 0xff_ffff) as usize * m as usize;
                let want = bytes.get(off..(off + p.payload.len()).min(bytes.len()));
                if want != Some(&p.payload[..]) {
                    c.errors.push(format!(
                        "tx {n}: READ response PSN {} ({} bytes at {:#x}) differs from the MR",
                        p.psn,
                        p.payload.len(),
                        va + off as u64
                    ));
                } else if first {
                    c.read_responses += 1;
                    c.read_bytes += p.payload.len() as u64;
                }
            }
            op::RC_ATOMIC_ACK => match atomics.get(&p.psn) {
                Some(orig) if p.atomic_ack == Some(*orig) => {
                    if acked.insert(p.psn) {
                        c.atomic_acks += 1;
                    } else {
                        c.atomic_ack_repeats += 1;
                    }
                }
                Some(orig) => c.errors.push(format!(
                    "tx {n}: ATOMIC ACK PSN {} returns {:?}, the value before was {orig:#x}",
                    p.psn, p.atomic_ack
                )),
                None => c.errors.push(format!(
                    "tx {n}: ATOMIC ACK PSN {} answers no atomic request",
                    p.psn
                )),
            },
            _ => {}
        }
    }
    if let Some(psn) = atomics.keys().find(|p| !acked.contains(*p)) {
        c.errors
            .push(format!("the atomic request PSN {psn} got no ATOMIC ACK"));
    }
    // Device memory against the model: WRITEs (last writer wins), atomics, and the pattern
    // everywhere nothing was written.
    c.mr_bytes_compared = b.mr_final.len() as u64;
    if let Some(at) = first_diff(&b.mr_final, &model) {
        let bad = b
            .mr_final
            .iter()
            .zip(&model)
            .filter(|(x, y)| x != y)
            .count();
        c.errors.push(format!(
            "the MR differs from what the wire implies from byte {at} ({bad} bytes differ; {} vs {} bytes)",
            b.mr_final.len(),
            model.len()
        ));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use splitrx_shared::wire::roce::fill_icrc;

    /// An IPv4 RoCEv2 frame to QP `qpn` with `hdrs` (BTH extensions) and `payload`, its ICRC
    /// filled in.
    fn frame(opcode: u8, qpn: u32, psn: u32, ext: &[u8], payload: &[u8]) -> Vec<u8> {
        let udp_len = 8 + 12 + ext.len() + payload.len() + 4;
        let ip_len = 20 + udp_len;
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0x45, 0, (ip_len >> 8) as u8, ip_len as u8]);
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
        f.extend_from_slice(&[0xc0, 0x00, 0x12, 0xb7]);
        f.extend_from_slice(&[(udp_len >> 8) as u8, udp_len as u8, 0, 0]);
        f.extend_from_slice(&[opcode, 0, 0xff, 0xff, 0]);
        f.extend_from_slice(&qpn.to_be_bytes()[1..]);
        f.extend_from_slice(&psn.to_be_bytes());
        f.extend_from_slice(ext);
        f.extend_from_slice(payload);
        f.extend_from_slice(&[0; 4]);
        let end = f.len();
        fill_icrc(&mut f, 14, 4, 34, end - 4);
        f
    }

    fn reth(va: u64, len: u32) -> Vec<u8> {
        let mut v = va.to_be_bytes().to_vec();
        v.extend_from_slice(&0x100u32.to_be_bytes());
        v.extend_from_slice(&len.to_be_bytes());
        v
    }

    const VA: u64 = 0x1000;

    fn bytes(len: u64) -> ServeBytes {
        ServeBytes {
            mr_va: VA,
            mr_initial: mr_pattern(len),
            mr_final: mr_pattern(len),
            ..ServeBytes::default()
        }
    }

    #[test]
    fn writes_land_last_writer_wins_and_the_rest_of_the_mr_is_untouched() {
        let mut b = bytes(64);
        let (a, z) = ([0xaa; 16], [0xbb; 8]);
        // A two-packet WRITE of 16 + 16 bytes at offset 8, then a WRITE ONLY of 8 bytes at
        // offset 16 (over the first), a retransmission of the first packet, and a frame to
        // another QP.
        b.link_rx = vec![
            frame(op::RC_WRITE_FIRST, 0x11, 5, &reth(VA + 8, 32), &a),
            frame(op::RC_WRITE_LAST, 0x11, 6, &[], &a),
            frame(op::RC_WRITE_ONLY, 0x11, 7, &reth(VA + 16, 8), &z),
            frame(op::RC_WRITE_FIRST, 0x11, 5, &reth(VA + 8, 32), &a),
            frame(op::RC_WRITE_ONLY, 0x12, 8, &reth(VA, 8), &z),
        ];
        b.mr_final[8..40].fill(0xaa);
        b.mr_final[16..24].fill(0xbb);
        let c = check_link(0x11, &b);
        assert_eq!(c.errors, Vec::<String>::new());
        assert_eq!(
            (
                c.requests,
                c.duplicates,
                c.other_rx,
                c.write_packets,
                c.write_bytes
            ),
            (3, 1, 1, 3, 40)
        );
        assert_eq!(c.mr_bytes_compared, 64);
        // One byte the wire never wrote changed: caught, and where.
        b.mr_final[60] ^= 1;
        let c = check_link(0x11, &b);
        assert_eq!(c.errors.len(), 1, "{:?}", c.errors);
        assert!(
            c.errors[0].contains("from byte 60 (1 bytes differ"),
            "{:?}",
            c.errors
        );
        // A bad ICRC is counted and not applied.
        b.mr_final[60] ^= 1;
        let mut bad = frame(op::RC_WRITE_ONLY, 0x11, 9, &reth(VA, 8), &z);
        let l = bad.len();
        bad[l - 1] ^= 1;
        b.link_rx.push(bad);
        let c = check_link(0x11, &b);
        assert_eq!((c.bad_icrc, c.errors.len()), (1, 0), "{:?}", c.errors);
    }

    #[test]
    fn a_packet_lost_and_sent_again_takes_its_place_by_psn() {
        let mut b = bytes(64);
        let (x, y, z) = ([1u8; 8], [2u8; 8], [3u8; 8]);
        // WRITE 24 bytes at offset 0 in three packets (PSN 0xfffffe, 0xffffff, 0: the PSN
        // wraps); the middle one is lost and comes again after the last, then the whole
        // message is retransmitted; then a SEND whose first packet came late.
        b.link_rx = vec![
            frame(op::RC_WRITE_FIRST, 0x11, 0xff_fffe, &reth(VA, 24), &x),
            frame(op::RC_WRITE_LAST, 0x11, 0, &[], &z),
            frame(op::RC_WRITE_MIDDLE, 0x11, 0xff_ffff, &[], &y),
            frame(op::RC_WRITE_FIRST, 0x11, 0xff_fffe, &reth(VA, 24), &x),
            frame(op::RC_WRITE_MIDDLE, 0x11, 0xff_ffff, &[], &y),
            frame(op::RC_WRITE_LAST, 0x11, 0, &[], &z),
            frame(op::RC_SEND_LAST, 0x11, 2, &[], b"lo"),
            frame(op::RC_SEND_FIRST, 0x11, 1, &[], b"hel"),
        ];
        b.mr_final[..8].fill(1);
        b.mr_final[8..16].fill(2);
        b.mr_final[16..24].fill(3);
        b.messages = vec![b"hello".to_vec()];
        let c = check_link(0x11, &b);
        assert_eq!(c.errors, Vec::<String>::new());
        assert_eq!(
            (
                c.requests,
                c.duplicates,
                c.write_packets,
                c.write_bytes,
                c.messages_matched
            ),
            (5, 3, 3, 24, 1)
        );
    }

    #[test]
    fn sends_are_compared_message_by_message() {
        let mut b = bytes(16);
        b.link_rx = vec![
            frame(op::RC_SEND_FIRST, 0x11, 1, &[], b"hello "),
            frame(op::RC_SEND_LAST, 0x11, 2, &[], b"world"),
            frame(op::RC_SEND_ONLY, 0x11, 3, &[], b"!"),
        ];
        b.messages = vec![b"hello world".to_vec(), b"!".to_vec()];
        let c = check_link(0x11, &b);
        assert_eq!(c.errors, Vec::<String>::new());
        assert_eq!(
            (
                c.send_messages,
                c.send_packets,
                c.send_bytes,
                c.messages_matched
            ),
            (2, 3, 12, 2)
        );
        b.messages[0][6] = b'W';
        let c = check_link(0x11, &b);
        assert_eq!(c.messages_matched, 1);
        assert!(c.errors[0].contains("message 0") && c.errors[0].contains("from byte 6"));
        b.messages.pop();
        assert!(check_link(0x11, &b)
            .errors
            .iter()
            .any(|e| e.contains("received 1 messages, the wire carried 2")));
    }

    #[test]
    fn read_responses_must_carry_the_mr_bytes_at_their_offset() {
        let mut b = bytes(4096);
        // READ 2048 bytes at offset 1024 with a 1024-byte MTU: two response packets.
        b.link_rx = vec![frame(
            op::RC_READ_REQUEST,
            0x11,
            40,
            &reth(VA + 1024, 2048),
            &[],
        )];
        let mem = b.mr_initial.clone();
        b.link_tx = vec![
            frame(
                op::RC_READ_RESPONSE_FIRST,
                0x22,
                40,
                &[0; 4],
                &mem[1024..2048],
            ),
            frame(
                op::RC_READ_RESPONSE_LAST,
                0x22,
                41,
                &[0; 4],
                &mem[2048..3072],
            ),
        ];
        let c = check_link(0x11, &b);
        assert_eq!(c.errors, Vec::<String>::new());
        assert_eq!(
            (c.read_requests, c.read_responses, c.read_bytes),
            (1, 2, 2048)
        );
        // The second packet carrying the first's bytes (a wrong offset): caught.
        b.link_tx[1] = frame(
            op::RC_READ_RESPONSE_LAST,
            0x22,
            41,
            &[0; 4],
            &mem[1024..2048],
        );
        let c = check_link(0x11, &b);
        assert_eq!(c.read_responses, 1);
        assert!(c.errors[0].contains("PSN 41"), "{:?}", c.errors);
    }

    #[test]
    fn atomics_follow_the_requests_and_each_ack_returns_the_value_before() {
        let mut b = bytes(64);
        let at = |swap_add: u64, compare: u64| {
            let mut v = (VA + 8).to_be_bytes().to_vec();
            v.extend_from_slice(&0x100u32.to_be_bytes());
            v.extend_from_slice(&swap_add.to_be_bytes());
            v.extend_from_slice(&compare.to_be_bytes());
            v
        };
        let v0 = u64::from_le_bytes(b.mr_initial[8..16].try_into().unwrap());
        b.link_rx = vec![
            frame(op::RC_FETCH_ADD, 0x11, 1, &at(5, 0), &[]),
            frame(op::RC_COMPARE_SWAP, 0x11, 2, &at(77, v0 + 5), &[]),
            frame(op::RC_COMPARE_SWAP, 0x11, 3, &at(99, 1), &[]),
            frame(op::RC_FETCH_ADD, 0x11, 1, &at(5, 0), &[]),
        ];
        let ack = |psn: u32, orig: u64| {
            let mut e = vec![0u8; 4];
            e.extend_from_slice(&orig.to_be_bytes());
            frame(op::RC_ATOMIC_ACK, 0x22, psn, &e, &[])
        };
        b.link_tx = vec![ack(1, v0), ack(2, v0 + 5), ack(3, 77), ack(1, v0)];
        b.mr_final[8..16].copy_from_slice(&77u64.to_le_bytes());
        let c = check_link(0x11, &b);
        assert_eq!(c.errors, Vec::<String>::new());
        assert_eq!(
            (c.atomics, c.atomic_acks, c.atomic_ack_repeats, c.duplicates),
            (3, 3, 1, 1)
        );
        // The add and the matching compare-swap changed it, the failed compare did not.
        assert_eq!(c.atomics_changed, 2);
        b.link_tx[2] = ack(3, 78);
        b.link_tx.pop();
        let c = check_link(0x11, &b);
        assert!(c
            .errors
            .iter()
            .any(|e| e.contains("PSN 3 returns Some(78)")));
        assert!(c
            .errors
            .iter()
            .any(|e| e.contains("PSN 3 got no ATOMIC ACK")));
    }
}
