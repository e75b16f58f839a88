//! Connection management on QP 1 over the fakes: an exact REQ / RTU / DREQ exchange built with
//! `shared::wire::mad`, and a hostile requester throwing random CM MADs at a listened service
//! (never a panic, every MAD counted exactly once, every answer a well-formed CM MAD from QP 1).

use proptest::prelude::*;
use splitrx_firmware::roce::cm::cm_value;
use splitrx_firmware::stats::dev;
use splitrx_firmware::testing::roce::{parse_response, request, REQUESTER_V4};
use splitrx_firmware::testing::Testbed;
use splitrx_shared::abi::{
    access, qp_state, qp_type, CmListenArgs, CtrlOp, CtrlStatus, QpArgs, QpInfo, NO_SRQ,
};
use splitrx_shared::split::{split, SplitConfig};
use splitrx_shared::wire::mad::{
    self, attr, guid_from_mac, rdma_cm_service_id, rej_reason, rej_reason_of, CmIds, CmRep,
    MadPacket, MadRepr, GSI_QKEY, MAD_LEN,
};
use splitrx_shared::wire::roce::{opcode as op, Deth};
use zerocopy::little_endian::{U32, U64};

const QPN: u32 = 0x21;
const PD: u32 = 3;
const SERVICE: u64 = rdma_cm_service_id(0x0106, 7174);

/// A testbed with QP `QPN` (RC, INIT) listening on `SERVICE`.
fn listening() -> Testbed {
    let mut tb = Testbed::new();
    let (st, _qp) = tb.create_qp(QPN, PD, qp_type::RC, NO_SRQ, 16, 16);
    assert_eq!(st, CtrlStatus::Ok);
    let a = splitrx_shared::abi::ModifyQpArgs {
        qpn: U32::new(QPN),
        attr_mask: U32::new(
            splitrx_shared::abi::qp_attr::STATE | splitrx_shared::abi::qp_attr::ACCESS_FLAGS,
        ),
        state: qp_state::INIT,
        access: U32::new(access::REMOTE_WRITE),
        ..Default::default()
    };
    assert_eq!(tb.modify_qp(&a), CtrlStatus::Ok);
    let l = CmListenArgs {
        service_id: U64::new(SERVICE),
        qpn: U32::new(QPN),
        _pad: U32::new(0),
    };
    let r = tb.call(CtrlOp::CmListen, &l);
    assert_eq!(r[0].status(), Some(CtrlStatus::Ok));
    // The same QP twice: Exists.
    let r = tb.call(CtrlOp::CmListen, &l);
    assert_eq!(r[0].status(), Some(CtrlStatus::Exists));
    tb
}

/// The frame of a CM MAD (`mad`, 256 bytes or fewer when truncating) to QP 1.
fn mad_frame(mad: &[u8], psn: u32) -> Vec<u8> {
    let mut r = request(op::UD_SEND_ONLY, 1, psn, true, mad.len());
    r.deth = Some(Deth {
        qkey: GSI_QKEY,
        src_qp: 1,
    });
    REQUESTER_V4.frame(&r, mad)
}

/// A REQ: comm ID `id`, requester QPN 0x77, starting PSN 0x1234, path MTU 1024.
fn req(id: u32, service: u64, tid: u64) -> Vec<u8> {
    let mut m = [0u8; MAD_LEN];
    MadRepr::cm(attr::REQ, tid).emit(&mut m);
    let d = &mut m[mad::HEADER_LEN..];
    d[0..4].copy_from_slice(&id.to_be_bytes());
    d[8..16].copy_from_slice(&service.to_be_bytes());
    d[32..36].copy_from_slice(&((0x77u32 << 8) | 2).to_be_bytes()); // QPN, responder resources 2
    d[39] = 1; // initiator depth
    d[44..48].copy_from_slice(&(0x1234u32 << 8).to_be_bytes());
    d[50] = 3 << 4; // path MTU 1024
    m.to_vec()
}

fn ids(a: u16, local: u32, remote: u32, tid: u64) -> Vec<u8> {
    let mut m = [0u8; MAD_LEN];
    MadRepr::cm(a, tid).emit(&mut m);
    mad::emit_ids(&mut m[mad::HEADER_LEN..], local, remote);
    m.to_vec()
}

fn feed(tb: &mut Testbed, f: &[u8]) -> Vec<Vec<u8>> {
    tb.fw.hal_mut().rx.push(f);
    while tb.fw.poll() {}
    tb.take_sent()
}

/// The MAD of a response frame from QP 1 to QP 1 (checked).
fn answer(f: &[u8]) -> Vec<u8> {
    let r = parse_response(f).expect("a RoCEv2 packet");
    assert!(r.icrc_ok);
    assert_eq!(
        (r.roce.bth.opcode, r.roce.bth.dest_qp),
        (op::UD_SEND_ONLY, 1)
    );
    assert_eq!(
        r.roce.deth,
        Some(Deth {
            qkey: GSI_QKEY,
            src_qp: 1
        })
    );
    let s = split(f, &SplitConfig::default());
    let at = s.l4_offset.unwrap() as usize + 8 + 12 + 8;
    f[at..at + MAD_LEN].to_vec()
}

fn info(tb: &mut Testbed) -> QpInfo {
    let r = tb.call(CtrlOp::QueryQp, &QpArgs { qpn: U32::new(QPN) });
    r[0].args().unwrap()
}

fn stat(tb: &Testbed, i: usize) -> u64 {
    tb.fw.device_stats().get(i)
}

#[test]
fn req_rtu_dreq_connect_and_disconnect_the_listened_qp() {
    let mut tb = listening();
    let tx = feed(&mut tb, &mad_frame(&req(0xaaaa_0001, SERVICE, 9), 1));
    assert_eq!(tx.len(), 1);
    let m = answer(&tx[0]);
    let p = MadPacket::new_checked(&m[..]).unwrap();
    assert_eq!(
        (p.attribute_id(), p.transaction_id(), p.class_version()),
        (attr::REP, 9, 2)
    );
    let rep = CmRep::parse(p.data());
    assert_eq!(
        rep,
        CmRep {
            local_comm_id: cm_value(0),
            remote_comm_id: 0xaaaa_0001,
            local_qkey: 0,
            local_qpn: QPN,
            starting_psn: cm_value(1) & 0xff_ffff,
            responder_resources: 1,
            initiator_depth: 2,
            target_ack_delay: 15,
            failover_accepted: 0,
            e2e_flow_control: false,
            rnr_retry: 7,
            srq: false,
            local_ca_guid: guid_from_mac(REQUESTER_V4.nic_mac),
        }
    );
    let i = info(&mut tb);
    assert_eq!(
        (i.state, i.dest_qpn.get(), i.expected_psn.get()),
        (qp_state::RTR, 0x77, rep.starting_psn)
    );
    // A retransmitted REQ: the same REP again, nothing else changes.
    let again = feed(&mut tb, &mad_frame(&req(0xaaaa_0001, SERVICE, 9), 2));
    assert_eq!(answer(&again[0]), m);
    // RTU with our comm ID: RTS. A second RTU is dropped.
    assert!(feed(
        &mut tb,
        &mad_frame(&ids(attr::RTU, 0xaaaa_0001, cm_value(0), 10), 3)
    )
    .is_empty());
    assert_eq!(info(&mut tb).state, qp_state::RTS);
    assert!(feed(
        &mut tb,
        &mad_frame(&ids(attr::RTU, 0xaaaa_0001, cm_value(0), 10), 4)
    )
    .is_empty());
    // A second REQ for the service: its only listen is used up, REJ invalid service ID.
    let rej = feed(&mut tb, &mad_frame(&req(0xaaaa_0002, SERVICE, 11), 5));
    let m = answer(&rej[0]);
    let p = MadPacket::new_checked(&m[..]).unwrap();
    assert_eq!(p.attribute_id(), attr::REJ);
    assert_eq!(CmIds(p.data()).remote_comm_id(), 0xaaaa_0002);
    assert_eq!(rej_reason_of(p.data()), rej_reason::INVALID_SERVICE_ID);
    // DREQ: DREP, the QP to ERR.
    let drep = feed(
        &mut tb,
        &mad_frame(&ids(attr::DREQ, 0xaaaa_0001, cm_value(0), 12), 6),
    );
    let m = answer(&drep[0]);
    let p = MadPacket::new_checked(&m[..]).unwrap();
    assert_eq!((p.attribute_id(), p.transaction_id()), (attr::DREP, 12));
    let d = CmIds(p.data());
    assert_eq!(
        (d.local_comm_id(), d.remote_comm_id()),
        (cm_value(0), 0xaaaa_0001)
    );
    assert_eq!(info(&mut tb).state, qp_state::ERR);
    assert_eq!(
        [
            dev::CM_REQ_RCVD,
            dev::CM_REP_SENT,
            dev::CM_RTU_RCVD,
            dev::CM_REJ_SENT,
            dev::CM_DREQ_RCVD,
            dev::CM_DREP_SENT,
            dev::CM_MADS_DROPPED
        ]
        .map(|c| stat(&tb, c)),
        [3, 2, 1, 1, 1, 1, 1]
    );
}

#[test]
fn without_a_listen_qp1_frames_take_the_rx_path() {
    let mut tb = Testbed::new();
    assert!(feed(&mut tb, &mad_frame(&req(1, SERVICE, 1), 1)).is_empty());
    assert_eq!(stat(&tb, dev::CM_REQ_RCVD), 0);
    assert_eq!(stat(&tb, dev::ROCE_RCVD_PKTS), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Random CM MADs (any attribute, random body, comm IDs that sometimes match ours, some
    /// cut short) at a listened service: no panic; each is counted exactly once (REQ, RTU that
    /// connected, DREQ, or dropped); each answer is a whole CM MAD (REP, REJ or DREP) and
    /// their number is what the counters say; the QP ends in a state the CM can leave it in.
    #[test]
    fn hostile_cm_mads_are_each_counted_once_and_never_panic(
        mads in proptest::collection::vec(
            (0u16..0x20, any::<bool>(), any::<bool>(), proptest::collection::vec(any::<u8>(), MAD_LEN), 0usize..MAD_LEN + 1),
            1..24,
        )
    ) {
        let mut tb = listening();
        let mut sent = 0u64;
        let mut answers = 0u64;
        for (k, (a, ours, service, body, cut)) in mads.iter().enumerate() {
            let mut m = body.clone();
            MadRepr::cm(0x10 + (a % 8), k as u64).emit(&mut m[..]);
            m[mad::HEADER_LEN..].copy_from_slice(&body[mad::HEADER_LEN..]);
            if *a >= 8 {
                // Some attribute outside the CM's.
                m[16..18].copy_from_slice(&a.wrapping_mul(0x1111).to_be_bytes());
            }
            if *ours {
                m[mad::HEADER_LEN + 4..mad::HEADER_LEN + 8].copy_from_slice(&cm_value(0).to_be_bytes());
            }
            if *service {
                m[mad::HEADER_LEN + 8..mad::HEADER_LEN + 16].copy_from_slice(&SERVICE.to_be_bytes());
            }
            let len = if k % 5 == 4 { *cut } else { MAD_LEN };
            let tx = feed(&mut tb, &mad_frame(&m[..len], k as u32));
            // Shorter than the class byte: not recognisable as a CM MAD, the RX path's.
            if len >= 2 {
                sent += 1;
            }
            for f in &tx {
                let mm = answer(f);
                let p = MadPacket::new_checked(&mm[..]).unwrap();
                prop_assert!(matches!(p.attribute_id(), attr::REP | attr::REJ | attr::DREP));
                prop_assert_eq!(p.transaction_id(), k as u64);
                answers += 1;
            }
        }
        let counted = [dev::CM_REQ_RCVD, dev::CM_RTU_RCVD, dev::CM_DREQ_RCVD, dev::CM_MADS_DROPPED]
            .map(|c| stat(&tb, c))
            .iter()
            .sum::<u64>();
        prop_assert_eq!(counted, sent);
        let out = [dev::CM_REP_SENT, dev::CM_REJ_SENT, dev::CM_DREP_SENT].map(|c| stat(&tb, c)).iter().sum::<u64>();
        prop_assert_eq!(out, answers);
        let st = info(&mut tb).state;
        prop_assert!(matches!(st, qp_state::INIT | qp_state::RTR | qp_state::RTS | qp_state::ERR), "state {}", st);
    }
}
