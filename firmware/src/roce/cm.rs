//! Connection management on QP 1 (the passive side of the IB CM, as rdma_cm servers use it).
//!
//! The host listens on a service ID with a QP it created and moved to INIT
//! ([`CtrlOp::CmListen`](splitrx_shared::abi::CtrlOp::CmListen)); several QPs may listen on
//! one service (a backlog: each REQ takes the oldest). While any service is listened
//! on, [`Firmware::cm_receive`] takes the CM MADs that reach QP 1 (UD SEND ONLY, GSI Q_Key):
//!
//! - REQ for a listened service whose QP is in INIT, transport RC: the QP goes to RTR through
//!   the same ModifyQp code the host uses (the REQ's QPN and path MTU, the requester's GID
//!   and UDP port, and as expected PSN the starting PSN of our REP: Linux's CM has the active
//!   side send from the REP's starting PSN), and a REP answers; the connection is remembered (by the
//!   requester's comm ID and GID) so a retransmitted REQ gets the same REP again;
//! - RTU for a remembered connection: the QP to RTS;
//! - DREQ for a remembered connection: DREP, the QP to ERR (its held WQE flushed), the
//!   connection forgotten; a DREQ for no known connection still gets a DREP (the requester
//!   retries until it gets one);
//! - REQ nobody listens on: REJ "invalid service ID"; a listened QP not in INIT: REJ "no QP";
//!   a transport other than RC: REJ "invalid transport".
//!
//! Everything is answered back along the request's path (`Route::reply_to`), QP 1 to QP 1,
//! with the request's UDP source port, the MAD's transaction ID echoed. Counted: `cm_*`.

use super::resp::Io;
use super::tx::Route;
use crate::config::CM_CONNS;
use crate::control::{ok, Answer};
use crate::hal::Hal;
use crate::stats::{dev, DeviceStats};
use crate::Firmware;
use splitrx_shared::abi::{qp_attr, qp_state, qp_type, CmListenArgs, CtrlStatus, ModifyQpArgs};
use splitrx_shared::split::{FrameClass, SplitResult};
use splitrx_shared::wire::mad::{
    self, attr, emit_ids, emit_rej, guid_from_mac, rej_reason, CmIds, CmRep, CmReq, MadPacket,
    MadRepr, GSI_QKEY, MAD_LEN,
};
use splitrx_shared::wire::roce::{opcode, Deth, RocePacket, RoceRepr};
use splitrx_shared::wire::{udp, UdpPacket};
use zerocopy::little_endian::{U16, U32};

/// A listened service.
#[derive(Clone, Copy, Debug)]
pub struct Listen {
    pub service_id: u64,
    pub qpn: u32,
}

/// A connection the CM made (REP sent), until its DREQ.
#[derive(Clone, Copy, Debug)]
pub struct Conn {
    /// The requester's comm ID and GID: what identifies a retransmitted REQ.
    pub remote_comm_id: u32,
    pub remote_gid: [u8; 16],
    pub local_comm_id: u32,
    pub qpn: u32,
    pub rep: CmRep,
    pub established: bool,
}

/// The CM's tables.
#[derive(Debug)]
pub struct Cm {
    pub listens: heapless::Vec<Listen, CM_CONNS>,
    pub conns: heapless::Vec<Conn, CM_CONNS>,
    /// PSN of QP 1's next MAD.
    pub psn: u32,
    /// Values handed out so far by [`Cm::next`].
    issued: u32,
}

/// The `n`-th value the CM hands out after boot (comm IDs and starting PSNs: connection `k`
/// gets comm ID `cm_value(2k)` and starting PSN `cm_value(2k + 1) & 0xff_ffff`). A fixed
/// sequence, as the firmware has no entropy source; a requester only needs the comm ID to
/// differ from its other connections' (IB spec 12.9.8.1), which a per-boot sequence ensures.
pub const fn cm_value(n: u32) -> u32 {
    let mut x = n.wrapping_add(1).wrapping_mul(0x9e37_79b9);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    if x == 0 {
        1
    } else {
        x
    }
}

impl Cm {
    pub const fn new() -> Cm {
        Cm {
            listens: heapless::Vec::new(),
            conns: heapless::Vec::new(),
            psn: 0,
            issued: 0,
        }
    }
    /// The next value of [`cm_value`]'s sequence.
    fn next(&mut self) -> u32 {
        let v = cm_value(self.issued);
        self.issued = self.issued.wrapping_add(1);
        v
    }
}

impl Default for Cm {
    fn default() -> Self {
        Self::new()
    }
}

/// What a QP 1 packet is, for the CM.
struct Gsi<'a> {
    /// The whole frame (answers go back along its path).
    frame: &'a [u8],
    mad: &'a [u8],
    l3: usize,
    ip_version: u8,
    sport: u16,
    src_gid: [u8; 16],
}

/// The QP 1 CM MAD in `frame`, when it is one (UD SEND ONLY to QP 1, GSI Q_Key, a whole MAD of
/// the CM class).
fn gsi<'a>(frame: &'a [u8], r: &SplitResult) -> Option<Gsi<'a>> {
    let info = r.roce?;
    if info.dest_qp != 1 || r.class != FrameClass::Roce || r.tunnel.is_some() {
        return None;
    }
    let (l3, l4) = (r.l3_offset? as usize, r.l4_offset? as usize);
    let u = UdpPacket::new_unchecked(frame.get(l4..)?);
    let b = frame.get(l4 + udp::HEADER_LEN..l4 + u.len() as usize)?;
    let p = RocePacket::new_unchecked(b);
    p.check_len().ok()?;
    let deth = p.deth()?;
    if p.bth().opcode() != opcode::UD_SEND_ONLY || deth.qkey != GSI_QKEY {
        return None;
    }
    let off = p.payload_offset();
    let mad = b.get(off..off + p.payload().len())?;
    let m = MadPacket::new_unchecked(mad);
    if m.mgmt_class() != mad::class::CM {
        return None;
    }
    let src_gid = super::resp::source_gid(frame, l3, r.outer_ip_version)?;
    Some(Gsi {
        frame,
        mad,
        l3,
        ip_version: r.outer_ip_version,
        sport: u.src_port(),
        src_gid,
    })
}

impl super::Responder {
    /// Takes `frame` when it is a CM MAD to QP 1 and some service is listened on (see the
    /// module docs). `false`: not the CM's (the frame goes on to the RX queues).
    pub(crate) fn cm_receive<H: Hal>(
        &mut self,
        io: &mut Io<'_, H>,
        st: &mut DeviceStats,
        frame: &[u8],
        r: &SplitResult,
    ) -> bool {
        if self.cm.listens.is_empty() && self.cm.conns.is_empty() {
            return false;
        }
        let Some(g) = gsi(frame, r) else {
            return false;
        };
        st.inc(dev::ROCE_RCVD_PKTS);
        if r.roce.and_then(|i| i.icrc_ok) == Some(false) {
            st.inc(dev::ROCE_ICRC_ERRORS);
            return true;
        }
        let m = MadPacket::new_unchecked(g.mad);
        if m.check_len().is_err() || m.class_version() != 2 || m.method() != mad::method::SEND {
            st.inc(dev::CM_MADS_DROPPED);
            return true;
        }
        let tid = m.transaction_id();
        let d = m.data();
        match m.attribute_id() {
            attr::REQ => self.cm_req(io, st, &g, tid, CmReq(d)),
            attr::RTU => {
                let ids = CmIds(d);
                let at = self.cm_conn(ids.remote_comm_id(), ids.local_comm_id(), &g.src_gid);
                match at {
                    Some(i) => {
                        let c = self.cm.conns[i];
                        let mut a = qp_args(c.qpn, qp_attr::STATE);
                        a.state = qp_state::RTS;
                        // A repeated RTU, or one for a QP the host moved on: dropped.
                        if !c.established && self.modify_qp(st, a).is_ok() {
                            self.cm.conns[i].established = true;
                            st.inc(dev::CM_RTU_RCVD);
                        } else {
                            st.inc(dev::CM_MADS_DROPPED);
                        }
                    }
                    None => st.inc(dev::CM_MADS_DROPPED),
                }
            }
            attr::DREQ => {
                st.inc(dev::CM_DREQ_RCVD);
                let ids = CmIds(d);
                let at = self.cm_conn(ids.remote_comm_id(), ids.local_comm_id(), &g.src_gid);
                if let Some(i) = at {
                    let c = self.cm.conns.swap_remove(i);
                    let mut a = qp_args(c.qpn, qp_attr::STATE);
                    a.state = qp_state::ERR;
                    let _ = self.modify_qp(st, a);
                }
                let (l, rem) = (ids.remote_comm_id(), ids.local_comm_id());
                let drep = MadRepr::cm(attr::DREP, tid);
                self.cm_send(io, st, &g, drep, dev::CM_DREP_SENT, |d| emit_ids(d, l, rem));
            }
            _ => st.inc(dev::CM_MADS_DROPPED),
        }
        true
    }

    /// The connection with our comm ID `local` made for the requester `remote` at `gid`.
    fn cm_conn(&self, local: u32, remote: u32, gid: &[u8; 16]) -> Option<usize> {
        self.cm.conns.iter().position(|c| {
            c.local_comm_id == local && c.remote_comm_id == remote && &c.remote_gid == gid
        })
    }

    fn cm_req<H: Hal>(
        &mut self,
        io: &mut Io<'_, H>,
        st: &mut DeviceStats,
        g: &Gsi<'_>,
        tid: u64,
        req: CmReq<'_>,
    ) {
        st.inc(dev::CM_REQ_RCVD);
        let remote = req.local_comm_id();
        // A retransmitted REQ: the same REP again.
        if let Some(c) = self
            .cm
            .conns
            .iter()
            .find(|c| c.remote_comm_id == remote && c.remote_gid == g.src_gid)
            .copied()
        {
            if !c.established {
                self.cm_rep(io, st, g, tid, &c.rep);
            }
            return;
        }
        let Some(li) = self
            .cm
            .listens
            .iter()
            .position(|l| l.service_id == req.service_id())
        else {
            return self.cm_rej(io, st, g, tid, remote, rej_reason::INVALID_SERVICE_ID);
        };
        if req.transport() != 0 {
            return self.cm_rej(io, st, g, tid, remote, rej_reason::INVALID_TRANSPORT);
        }
        let qpn = self.cm.listens[li].qpn;
        let qp = self
            .qpns
            .get(&qpn)
            .and_then(|&s| self.qps[s as usize].as_ref());
        let (srq, rd) = match qp {
            Some(q) if q.state == qp_state::INIT && q.qp_type == qp_type::RC => {
                (q.srq.is_some(), crate::config::RD_ATOMIC as u8)
            }
            _ => return self.cm_rej(io, st, g, tid, remote, rej_reason::NO_QP),
        };
        if self.cm.conns.is_full() {
            st.inc(dev::CM_MADS_DROPPED);
            return;
        }
        // RTR with what the REQ says (the same checks as the host's ModifyQp). The PSN the
        // requester sends with is the REP's starting PSN, ours: that is how Linux's CM (and so
        // rxe, roce__rdma_cm.pcap) pairs them; the REQ's starting PSN is the one it expects
        // from us, which a responder never uses.
        let (local_comm_id, psn) = (self.cm.next(), self.cm.next() & 0xff_ffff);
        let mut a = qp_args(
            qpn,
            qp_attr::STATE
                | qp_attr::AV
                | qp_attr::PATH_MTU
                | qp_attr::RQ_PSN
                | qp_attr::DEST_QPN
                | qp_attr::MIN_RNR_TIMER,
        );
        a.state = qp_state::RTR;
        a.path_mtu = req.path_mtu().min(5);
        a.dest_qpn = U32::new(req.local_qpn());
        a.rq_psn = U32::new(psn);
        a.remote_gid = g.src_gid;
        a.udp_sport = U16::new(g.sport);
        a.min_rnr_timer = 12;
        // Our requester (if the QP has one) sends from the REQ's starting PSN, which is what
        // Linux's active side expects (its responder PSN is the PSN it asked with).
        a.attr_mask = U32::new(a.attr_mask.get() | qp_attr::SQ_PSN);
        a.sq_psn = U32::new(req.starting_psn());
        if self.modify_qp(st, a).is_err() {
            return self.cm_rej(io, st, g, tid, remote, rej_reason::NO_QP);
        }
        // The requester sends back along the REQ's path.
        if let Some(&slot) = self.qpns.get(&qpn) {
            let peer = Route::reply_to(g.frame, g.l3, g.ip_version, g.sport);
            if let Some((_, sq)) = self.qp_sq(slot as usize) {
                sq.peer = peer;
            }
        }
        let mac = g
            .frame
            .get(..6)
            .and_then(|m| m.try_into().ok())
            .unwrap_or([0; 6]);
        let rep = CmRep {
            local_comm_id,
            remote_comm_id: remote,
            local_qkey: 0,
            local_qpn: qpn,
            starting_psn: psn,
            // What rdma_cm's passive side offers by default: as many as the requester asks
            // for, up to our READ/atomic slots (the requester keeps fewer READs in flight
            // than this bound).
            responder_resources: req.initiator_depth().min(rd),
            initiator_depth: req.responder_resources().min(rd),
            target_ack_delay: 15,
            failover_accepted: 0,
            e2e_flow_control: false,
            rnr_retry: 7,
            srq,
            local_ca_guid: guid_from_mac(mac),
        };
        // The oldest listen of the service is used up.
        let _ = self.cm.listens.remove(li);
        // Room was checked above.
        let _ = self.cm.conns.push(Conn {
            remote_comm_id: remote,
            remote_gid: g.src_gid,
            local_comm_id: rep.local_comm_id,
            qpn,
            rep,
            established: false,
        });
        self.cm_rep(io, st, g, tid, &rep);
    }

    fn cm_rep<H: Hal>(
        &mut self,
        io: &mut Io<'_, H>,
        st: &mut DeviceStats,
        g: &Gsi<'_>,
        tid: u64,
        rep: &CmRep,
    ) {
        let hdr = MadRepr::cm(attr::REP, tid);
        self.cm_send(io, st, g, hdr, dev::CM_REP_SENT, |d| rep.emit(d));
    }

    fn cm_rej<H: Hal>(
        &mut self,
        io: &mut Io<'_, H>,
        st: &mut DeviceStats,
        g: &Gsi<'_>,
        tid: u64,
        remote: u32,
        reason: u16,
    ) {
        let hdr = MadRepr::cm(attr::REJ, tid);
        self.cm_send(io, st, g, hdr, dev::CM_REJ_SENT, |d| {
            emit_rej(d, 0, remote, reason)
        });
    }

    /// Sends a CM MAD (header `hdr`, class data by `data`) back along `g`'s path; counts
    /// `sent` (and `sent_pkts`) when the MAC took it.
    fn cm_send<H: Hal>(
        &mut self,
        io: &mut Io<'_, H>,
        st: &mut DeviceStats,
        g: &Gsi<'_>,
        hdr: MadRepr,
        sent: usize,
        data: impl FnOnce(&mut [u8]),
    ) {
        let Some(route) = Route::reply_to(g.frame, g.l3, g.ip_version, g.sport) else {
            return;
        };
        let psn = self.cm.psn;
        self.cm.psn = (psn + 1) & 0xff_ffff;
        let mut roce = RoceRepr::new(opcode::UD_SEND_ONLY, 1, psn, MAD_LEN);
        roce.bth.ack_req = true;
        roce.deth = Some(Deth {
            qkey: GSI_QKEY,
            src_qp: 1,
        });
        let n = route.emit(&mut self.tx[..], &roce, |p| {
            hdr.emit(p);
            data(&mut p[mad::HEADER_LEN..]);
            Ok::<(), ()>(())
        });
        if super::resp::transmit(&mut *io.tx, st, &self.tx, n.ok().flatten()).is_ok() {
            st.inc(sent);
        }
    }
}

impl<H: Hal> Firmware<H> {
    pub(crate) fn op_cm_listen(&mut self, a: CmListenArgs) -> Result<Answer, CtrlStatus> {
        if a._pad.get() != 0 {
            return Err(CtrlStatus::Invalid);
        }
        let qp = self
            .roce
            .qpns
            .get(&a.qpn.get())
            .and_then(|&s| self.roce.qps[s as usize].as_ref())
            .ok_or(CtrlStatus::NotFound)?;
        if qp.qp_type != qp_type::RC || qp.state != qp_state::INIT {
            return Err(CtrlStatus::Invalid);
        }
        let cm = &mut self.roce.cm;
        if cm.listens.iter().any(|l| l.qpn == a.qpn.get()) {
            return Err(CtrlStatus::Exists);
        }
        cm.listens
            .push(Listen {
                service_id: a.service_id.get(),
                qpn: a.qpn.get(),
            })
            .map_err(|_| CtrlStatus::NoSpace)?;
        Ok(ok())
    }

    pub(crate) fn op_cm_unlisten(&mut self, a: CmListenArgs) -> Result<Answer, CtrlStatus> {
        let cm = &mut self.roce.cm;
        let before = cm.listens.len();
        cm.listens.retain(|l| l.service_id != a.service_id.get());
        if cm.listens.len() == before {
            return Err(CtrlStatus::NotFound);
        }
        Ok(ok())
    }

    /// Forgets the CM's state of QP `qpn` (it is being destroyed).
    pub(crate) fn cm_forget_qp(&mut self, qpn: u32) {
        let cm = &mut self.roce.cm;
        cm.listens.retain(|l| l.qpn != qpn);
        cm.conns.retain(|c| c.qpn != qpn);
    }
}

fn qp_args(qpn: u32, mask: u32) -> ModifyQpArgs {
    ModifyQpArgs {
        qpn: U32::new(qpn),
        attr_mask: U32::new(mask),
        ..Default::default()
    }
}
