//! The RoCE control ops (ABI 2.1, `docs/ABI.md`; semantics in `docs/firmware.md`).
//!
//! Regions of QPs and SRQs are `QueueHeader` regions mapped and validated by the same code as
//! an RX queue's (`crate::control::map_region` -> `QueueHeader::validate`), their rings found
//! by `Region::rings` and attached with the ring handles; a region may not overlap the control
//! region or any queue, QP or SRQ region. The header's `queue_id` is not checked for QP and SRQ
//! regions (QPNs and SRQNs are 24/32-bit).

use super::req::{self, Sq};
use super::resp::{flush_held, to_error};
use super::{mtu_bytes, Mr, Msg, Qp, Res, Srq};
use crate::config::{MAX_MRS, MAX_MTU, MAX_QPS, MAX_SQS, MAX_SRQS, RD_ATOMIC};
use crate::control::{map_region, ok, reply, Answer};
use crate::datapath::write_region_status;
use crate::hal::{Hal, SharedMemory};
use crate::stats::DeviceStats;
use crate::Firmware;
use splitrx_shared::abi::{
    access, call, qp_attr, qp_state, qp_type, CreateQpArgs, CreateSrqArgs, CtrlStatus,
    ModifyQpArgs, MrArgs, QpArgs, QpInfo, QueueStatus, RegisterMrArgs, RingKind, SrqArgs, NO_SRQ,
};
use splitrx_shared::ring::{Consumer, Producer};
use zerocopy::little_endian::{U16, U32};

/// Largest QP number (24 bits).
const QPN_MAX: u32 = 0x00ff_ffff;
const ACCESS_ALL: u32 =
    access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ | access::REMOTE_ATOMIC;
const ATTR_ALL: u32 = qp_attr::STATE
    | qp_attr::ACCESS_FLAGS
    | qp_attr::QKEY
    | qp_attr::AV
    | qp_attr::PATH_MTU
    | qp_attr::RQ_PSN
    | qp_attr::MIN_RNR_TIMER
    | qp_attr::DEST_QPN
    | qp_attr::SQ_PSN
    | qp_attr::TIMEOUT
    | qp_attr::RETRY_CNT
    | qp_attr::RNR_RETRY
    | qp_attr::MAX_QP_RD_ATOMIC;

/// A mapped QP/SRQ region: the region, the slots of the rings asked for, its bus span.
type Mapped<const N: usize> = (crate::control::Region, [usize; N], (u64, u64));

impl<H: Hal> Firmware<H> {
    /// RoCE responder tables (QPs, MRs, SRQs), for inspection.
    pub fn roce(&self) -> &crate::roce::Responder {
        &self.roce
    }
    /// Sets the CNP interval of every QP (default [`crate::config::CNP_INTERVAL_NS`]).
    pub fn set_cnp_interval_ns(&mut self, ns: u64) {
        self.roce.set_cnp_interval_ns(ns);
    }

    pub(crate) fn op_register_mr(&mut self, a: RegisterMrArgs) -> Result<Answer, CtrlStatus> {
        let (bus, len) = (a.bus_addr.get(), a.len.get());
        let (rkey, lkey) = (a.rkey.get(), a.lkey.get());
        if a.access.get() & !ACCESS_ALL != 0
            || len == 0
            || bus.checked_add(len).is_none()
            || a.iova.get().checked_add(len).is_none()
        {
            return Err(CtrlStatus::Invalid);
        }
        // The range must lie inside one window the firmware reaches.
        let n = usize::try_from(len).map_err(|_| CtrlStatus::Invalid)?;
        if self.hal.mem.translate(bus, n).is_none() {
            return Err(CtrlStatus::Invalid);
        }
        let r = &mut self.roce;
        if r.rkeys.contains_key(&rkey) || r.lkeys.contains_key(&lkey) {
            return Err(CtrlStatus::Exists);
        }
        let slot = r
            .mrs
            .iter()
            .position(Option::is_none)
            .ok_or(CtrlStatus::NoSpace)?;
        // Both maps have MAX_MRS room and hold exactly the occupied slots: cannot fail.
        if r.rkeys.insert(rkey, slot as u16).is_err() || r.lkeys.insert(lkey, slot as u16).is_err()
        {
            r.rkeys.remove(&rkey);
            return Err(CtrlStatus::NoSpace);
        }
        r.mrs[slot] = Some(Mr {
            bus,
            len,
            iova: a.iova.get(),
            rkey,
            lkey,
            access: a.access.get(),
            pd: a.pd.get(),
            valid: true,
        });
        const _: () = assert!(MAX_MRS <= u16::MAX as usize);
        Ok(ok())
    }

    pub(crate) fn op_deregister_mr(&mut self, a: MrArgs) -> Result<Answer, CtrlStatus> {
        let r = &mut self.roce;
        let lkey = a.lkey.get();
        let slot = *r.lkeys.get(&lkey).ok_or(CtrlStatus::NotFound)? as usize;
        let mr = r.mrs[slot].ok_or(CtrlStatus::NotFound)?;
        // Busy while a held receive WQE or a WRITE in progress points into it.
        let used = r.qps.iter().flatten().any(|q| {
            q.held
                .is_some_and(|h| h.sges().iter().any(|g| g.lkey == lkey))
                || matches!(q.msg, Msg::Write { bus, left, .. } if left > 0 && mr.holds(bus, 1))
        }) || r.job.is_some_and(|j| j.left > 0 && mr.holds(j.bus, 1));
        if used {
            return Err(CtrlStatus::Busy);
        }
        r.lkeys.remove(&lkey);
        r.rkeys.remove(&mr.rkey);
        r.mrs[slot] = None;
        Ok(ok())
    }

    /// Maps a QP or SRQ region and finds exactly the rings `want`.
    fn roce_region<const N: usize>(
        &mut self,
        bus: u64,
        len: u64,
        want: [RingKind; N],
    ) -> Result<Mapped<N>, CtrlStatus> {
        let span = (bus, bus.checked_add(len).ok_or(CtrlStatus::BadRegion)?);
        if self.region_in_use(span) {
            return Err(CtrlStatus::BadRegion);
        }
        let region = map_region(&mut self.hal.mem, bus, len).map_err(|_| CtrlStatus::BadRegion)?;
        let slots = region.rings(want).map_err(|_| CtrlStatus::BadRegion)?;
        Ok((region, slots, span))
    }

    pub(crate) fn op_create_qp(&mut self, a: CreateQpArgs) -> Result<Answer, CtrlStatus> {
        let qpn = a.qpn.get();
        let with_sq = a.flags & CreateQpArgs::SEND_QUEUE != 0;
        if !(2..=QPN_MAX).contains(&qpn)
            || a._pad != [0; 2]
            || a.flags & !CreateQpArgs::SEND_QUEUE != 0
            || (with_sq && a.qp_type == qp_type::UC)
            || !matches!(a.qp_type, qp_type::RC | qp_type::UC | qp_type::UD)
        {
            return Err(CtrlStatus::Invalid);
        }
        if self.roce.qpns.contains_key(&qpn) {
            return Err(CtrlStatus::Exists);
        }
        let slot = self
            .roce
            .qps
            .iter()
            .position(Option::is_none)
            .ok_or(CtrlStatus::NoSpace)?;
        let srq = match a.srqn.get() {
            NO_SRQ => None,
            n => Some(
                self.roce
                    .srqs
                    .iter()
                    .position(|s| s.as_ref().is_some_and(|s| s.srqn == n))
                    .ok_or(CtrlStatus::NotFound)?,
            ),
        };
        let (bus, len) = (a.region_bus_addr.get(), a.region_len.get());
        use RingKind::{RecvWqe, RoceCq, SendWqe};
        let (region, rq, cq, sq, span) = match (srq.is_some(), with_sq) {
            (true, false) => {
                let (region, [c], span) = self.roce_region(bus, len, [RoceCq])?;
                (region, None, c, None, span)
            }
            (true, true) => {
                let (region, [c, s], span) = self.roce_region(bus, len, [RoceCq, SendWqe])?;
                (region, None, c, Some(s), span)
            }
            (false, false) => {
                let (region, [w, c], span) = self.roce_region(bus, len, [RecvWqe, RoceCq])?;
                (region, Some(w), c, None, span)
            }
            (false, true) => {
                let (region, [w, c, s], span) =
                    self.roce_region(bus, len, [RecvWqe, RoceCq, SendWqe])?;
                (region, Some(w), c, Some(s), span)
            }
        };
        let rq = match rq {
            Some(i) => {
                let l = region.ring(i);
                // SAFETY: the ring lies inside the validated, mapped, 64-aligned region, which
                // stays valid while the HAL lives (SharedMemory contract); the region overlaps
                // no other region the firmware attached, so no other handle to it exists.
                Some(
                    unsafe { Consumer::attach(l.base, l.capacity) }
                        .map_err(|_| CtrlStatus::BadRegion)?,
                )
            }
            None => None,
        };
        let l = region.ring(cq);
        // SAFETY: as above.
        let cq =
            unsafe { Producer::attach(l.base, l.capacity) }.map_err(|_| CtrlStatus::BadRegion)?;
        let sq = match sq {
            Some(i) => {
                let at = self
                    .roce
                    .sqs
                    .iter()
                    .position(Option::is_none)
                    .ok_or(CtrlStatus::NoSpace)?;
                let l = region.ring(i);
                // SAFETY: as above.
                let ring = unsafe { Consumer::attach(l.base, l.capacity) }
                    .map_err(|_| CtrlStatus::BadRegion)?;
                Some((at, Sq::new(slot as u16, ring)))
            }
            None => None,
        };
        self.roce
            .qpns
            .insert(qpn, slot as u16)
            .map_err(|_| CtrlStatus::NoSpace)?;
        const _: () = assert!(MAX_QPS <= u16::MAX as usize);
        const _: () = assert!(MAX_SRQS <= u16::MAX as usize);
        if let Some(s) = srq.and_then(|s| self.roce.srqs[s].as_mut()) {
            s.users += 1;
        }
        self.roce.qps[slot] = Some(Qp {
            qpn,
            pd: a.pd.get(),
            qp_type: a.qp_type,
            state: qp_state::RESET,
            mtu: MAX_MTU.min(4096),
            rnr_timer: 0,
            av: false,
            dest_qpn: 0,
            epsn: 0,
            msn: 0,
            qkey: 0,
            access: 0,
            remote_gid: [0; 16],
            udp_sport: 0,
            srq: srq.map(|s| s as u16),
            rq,
            cq,
            region: region.base,
            region_bus: span,
            held: None,
            msg: Msg::Idle,
            nak_sent: false,
            res: [Res::default(); RD_ATOMIC],
            res_next: 0,
            last_cnp_ns: None,
            sq: sq.as_ref().map(|(at, _)| *at as u16),
            sq_owed: 0,
        });
        const _: () = assert!(MAX_SQS <= u16::MAX as usize);
        if let Some((at, sq)) = sq {
            self.roce.sqs[at] = Some(sq);
            self.roce.sq_count += 1;
        }
        write_region_status(region.base, QueueStatus::Running, 0);
        fw_info!("qp {} created", qpn);
        Ok(ok())
    }

    fn qp_mut(&mut self, qpn: u32) -> Result<(usize, &mut Qp), CtrlStatus> {
        let s = *self.roce.qpns.get(&qpn).ok_or(CtrlStatus::NotFound)? as usize;
        let q = self.roce.qps[s].as_mut().ok_or(CtrlStatus::NotFound)?;
        Ok((s, q))
    }

    pub(crate) fn op_modify_qp(&mut self, a: ModifyQpArgs) -> Result<Answer, CtrlStatus> {
        self.roce.modify_qp(&mut self.stats, a).map(|()| ok())
    }

    pub(crate) fn op_query_qp(&mut self, a: QpArgs) -> Result<Answer, CtrlStatus> {
        let (_, q) = self.qp_mut(a.qpn.get())?;
        let info = QpInfo {
            qpn: U32::new(q.qpn),
            state: q.state,
            qp_type: q.qp_type,
            _pad: U16::new(0),
            expected_psn: U32::new(q.epsn),
            msn: U32::new(q.msn),
            dest_qpn: U32::new(q.dest_qpn),
            held_wqes: U32::new(q.held.is_some() as u32),
        };
        Ok(reply::<call::QueryQp>(&info))
    }

    pub(crate) fn op_destroy_qp(&mut self, a: QpArgs) -> Result<Answer, CtrlStatus> {
        let Firmware {
            roce, stats: st, ..
        } = self;
        let qpn = a.qpn.get();
        let s = *roce.qpns.get(&qpn).ok_or(CtrlStatus::NotFound)?;
        let Some(mut qp) = roce.qps[s as usize].take() else {
            return Err(CtrlStatus::NotFound);
        };
        to_error(&mut qp, st, &mut roce.job, s);
        if let Some(srq) = qp.srq.and_then(|i| roce.srqs[i as usize].as_mut()) {
            srq.users = srq.users.saturating_sub(1);
        }
        roce.qpns.remove(&qpn);
        if let Some(sq) = qp.sq.and_then(|i| roce.sqs.get_mut(i as usize)) {
            if let Some(s) = sq.as_mut() {
                req::flush(&mut qp, s, st);
            }
            *sq = None;
            roce.sq_count -= 1;
        }
        write_region_status(qp.region, QueueStatus::Stopped, 0);
        self.cm_forget_qp(qpn);
        fw_info!("qp {} destroyed", qpn);
        Ok(ok())
    }

    pub(crate) fn op_create_srq(&mut self, a: CreateSrqArgs) -> Result<Answer, CtrlStatus> {
        let n = a.srqn.get();
        if n == NO_SRQ {
            return Err(CtrlStatus::Invalid);
        }
        if self.roce.srqs.iter().flatten().any(|s| s.srqn == n) {
            return Err(CtrlStatus::Exists);
        }
        let slot = self
            .roce
            .srqs
            .iter()
            .position(Option::is_none)
            .ok_or(CtrlStatus::NoSpace)?;
        let (region, [w], span) = self.roce_region(
            a.region_bus_addr.get(),
            a.region_len.get(),
            [RingKind::RecvWqe],
        )?;
        let l = region.ring(w);
        // SAFETY: the ring lies inside the validated, mapped, 64-aligned region, which stays
        // valid while the HAL lives; the region overlaps no other attached region.
        let rq =
            unsafe { Consumer::attach(l.base, l.capacity) }.map_err(|_| CtrlStatus::BadRegion)?;
        self.roce.srqs[slot] = Some(Srq {
            srqn: n,
            pd: a.pd.get(),
            rq,
            region: region.base,
            region_bus: span,
            users: 0,
        });
        write_region_status(region.base, QueueStatus::Running, 0);
        Ok(ok())
    }

    pub(crate) fn op_destroy_srq(&mut self, a: SrqArgs) -> Result<Answer, CtrlStatus> {
        let n = a.srqn.get();
        let slot = self
            .roce
            .srqs
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.srqn == n))
            .ok_or(CtrlStatus::NotFound)?;
        if self.roce.srqs[slot].as_ref().is_some_and(|s| s.users > 0) {
            return Err(CtrlStatus::Busy);
        }
        if let Some(s) = self.roce.srqs[slot].take() {
            write_region_status(s.region, QueueStatus::Stopped, 0);
        }
        Ok(ok())
    }
}

impl super::Responder {
    /// ModifyQp: the verbs state table (responder side) and the attributes; used by the
    /// host's ModifyQp and by the CM.
    pub(crate) fn modify_qp(
        &mut self,
        st: &mut DeviceStats,
        a: ModifyQpArgs,
    ) -> Result<(), CtrlStatus> {
        let mask = a.attr_mask.get();
        if mask & !ATTR_ALL != 0 || a._pad != 0 || a._pad2.get() != 0 {
            return Err(CtrlStatus::Invalid);
        }
        let has = |b: u32| mask & b != 0;
        let mtu = if has(qp_attr::PATH_MTU) {
            let m = mtu_bytes(a.path_mtu).ok_or(CtrlStatus::Invalid)?;
            if m > MAX_MTU {
                return Err(CtrlStatus::Invalid);
            }
            Some(m)
        } else {
            None
        };
        if (has(qp_attr::ACCESS_FLAGS) && a.access.get() & !ACCESS_ALL != 0)
            || (has(qp_attr::RQ_PSN) && a.rq_psn.get() > QPN_MAX)
            || (has(qp_attr::DEST_QPN) && a.dest_qpn.get() > QPN_MAX)
            || (has(qp_attr::MIN_RNR_TIMER) && a.min_rnr_timer > 0x1f)
            || (has(qp_attr::SQ_PSN) && a.sq_psn.get() > QPN_MAX)
            || (has(qp_attr::TIMEOUT) && a.timeout > 31)
            || (has(qp_attr::RETRY_CNT) && a.retry_cnt > 7)
            || (has(qp_attr::RNR_RETRY) && a.rnr_retry > 7)
            || (has(qp_attr::MAX_QP_RD_ATOMIC) && a.max_rd_atomic > 16)
        {
            return Err(CtrlStatus::Invalid);
        }
        let roce = self;
        let s = *roce.qpns.get(&a.qpn.get()).ok_or(CtrlStatus::NotFound)? as usize;
        let qp = roce.qps[s].as_mut().ok_or(CtrlStatus::NotFound)?;
        let mut sq = qp
            .sq
            .and_then(|i| roce.sqs.get_mut(i as usize))
            .and_then(Option::as_mut);
        let cur = qp.state;
        let to = if has(qp_attr::STATE) { a.state } else { cur };
        // The verbs state table, responder side.
        use qp_state::*;
        let legal = match (cur, to) {
            (_, RESET) | (_, ERR) => true,
            (RESET, INIT) | (INIT, INIT) | (INIT, RTR) | (RTR, RTS) | (RTS, RTS) => true,
            (c, t) => c == t && !has(qp_attr::STATE),
        };
        if !legal {
            return Err(CtrlStatus::Invalid);
        }
        if cur == INIT && to == RTR && qp.qp_type != qp_type::UD {
            let need = qp_attr::PATH_MTU | qp_attr::DEST_QPN | qp_attr::RQ_PSN;
            if mask & need != need || !(has(qp_attr::AV) || qp.av) {
                return Err(CtrlStatus::Invalid);
            }
        }
        if to == RESET || to == ERR {
            flush_held(qp, st);
            if let Some(sq) = sq.as_deref_mut() {
                req::flush(qp, sq, st);
            }
            if roce.job.is_some_and(|j| j.qp as usize == s) {
                roce.job = None;
            }
        }
        if to == RESET {
            qp.epsn = 0;
            qp.msn = 0;
            qp.nak_sent = false;
            qp.res = [Res::default(); RD_ATOMIC];
            qp.res_next = 0;
            qp.av = false;
            qp.last_cnp_ns = None;
            if let Some(sq) = sq.as_deref_mut() {
                sq.reset();
            }
        }
        if let Some(sq) = sq {
            if has(qp_attr::SQ_PSN) {
                sq.set_psn(a.sq_psn.get());
            }
            if has(qp_attr::TIMEOUT) {
                sq.timeout = a.timeout;
            }
            if has(qp_attr::RETRY_CNT) {
                sq.retry_cnt = a.retry_cnt;
                sq.retries = a.retry_cnt;
            }
            if has(qp_attr::RNR_RETRY) {
                sq.rnr_retry = a.rnr_retry;
                sq.rnr_retries = a.rnr_retry;
            }
        }
        if let Some(m) = mtu {
            qp.mtu = m;
        }
        if has(qp_attr::ACCESS_FLAGS) {
            qp.access = a.access.get();
        }
        if has(qp_attr::QKEY) {
            qp.qkey = a.qkey.get();
        }
        if has(qp_attr::AV) {
            qp.remote_gid = a.remote_gid;
            qp.udp_sport = a.udp_sport.get();
            qp.av = true;
        }
        if has(qp_attr::RQ_PSN) {
            qp.epsn = a.rq_psn.get();
            qp.nak_sent = false;
        }
        if has(qp_attr::MIN_RNR_TIMER) {
            qp.rnr_timer = a.min_rnr_timer;
        }
        if has(qp_attr::DEST_QPN) {
            qp.dest_qpn = a.dest_qpn.get();
        }
        qp.state = to;
        Ok(())
    }
}
