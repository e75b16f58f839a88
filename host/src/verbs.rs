//! The ibverbs backend (cargo feature `verbs`): the same page-pool receive API as splitrx's
//! own RoCE host API ([`crate::recv::PoolRecv`]) on any RDMA device libibverbs drives —
//! Linux soft-RoCE (rxe), a hardware HCA.
//!
//! Bindings: `ibverbs-sys` (rdma-core's `verbs.h` through bindgen; see ARCHITECTURE.md for why
//! this crate). It links the system's `libibverbs.so.1`; the few verbs `verbs.h` defines
//! `static inline` (`ibv_post_send`, `ibv_post_srq_recv`, `ibv_poll_cq`) are called here the
//! same way, through the context's provider ops.
//!
//! - [`Context::open`]: device discovery. No device — `ibv_get_device_list` failing with
//!   `ENOSYS` (no RDMA subsystem) or an empty list — is [`VerbsError::NoDevice`], never a
//!   panic.
//! - [`Pd`], [`Mr`] (`ibv_reg_mr` over a page pool's memory: [`Pd::reg_pool`];
//!   `ibv_reg_dmabuf_mr` over a dmabuf: [`Pd::reg_dmabuf`], a device without dmabuf support
//!   answering [`VerbsError::DmabufUnsupported`]), [`Cq`], [`Qp`] (RC and UD), [`Ah`].
//! - [`VerbsSrq`]: an SRQ whose receive WQEs are page-pool buffers, its completion queue and
//!   the QPs attached to it; a completion becomes a [`Received`] token that gives the buffer
//!   back to the pool when dropped. Its books are [`SrqBook`], the same as splitrx's
//!   [`crate::roce::PoolSrq`].

use crate::pool::PagePool;
use crate::recv::{PoolRecv, SrqBook};
use crate::roce::{Received, SrqCounters, SrqDestroyed};
use ibverbs_sys as sys;
use splitrx_shared::abi::{wc_flags, RoceCqe};
use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::{null_mut, NonNull};
use std::sync::Arc;
use zerocopy::little_endian::{U16, U32, U64};

/// Why a verbs call failed.
#[derive(Debug, thiserror::Error)]
pub enum VerbsError {
    /// No RDMA device: no RDMA subsystem (`ENOSYS`), an empty device list, or no device of
    /// the name asked for.
    #[error("no RDMA device: {0}")]
    NoDevice(String),
    /// `ibv_reg_dmabuf_mr`: the device (or its provider) cannot register dmabufs.
    #[error("{device} cannot register a dmabuf MR (ibv_reg_dmabuf_mr: {errno})")]
    DmabufUnsupported {
        device: String,
        errno: std::io::Error,
    },
    /// A verbs call failed with this errno.
    #[error("{call}: {errno}")]
    Os {
        call: &'static str,
        errno: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn last(call: &'static str) -> VerbsError {
    VerbsError::Os {
        call,
        errno: std::io::Error::last_os_error(),
    }
}

/// A verbs call's returned errno (`0`: success).
fn rc(call: &'static str, r: i32) -> Result<(), VerbsError> {
    if r == 0 {
        Ok(())
    } else {
        Err(VerbsError::Os {
            call,
            errno: std::io::Error::from_raw_os_error(r.abs()),
        })
    }
}

/// An RDMA device as `ibv_get_device_list` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: String,
    pub guid: u64,
}

/// The RDMA devices of this machine; [`VerbsError::NoDevice`] when there are none.
pub fn devices() -> Result<Vec<DeviceInfo>, VerbsError> {
    with_devices(|list| {
        Ok(list
            .iter()
            .map(|&d| DeviceInfo {
                name: device_name(d),
                // SAFETY: `d` is an entry of the live device list.
                guid: u64::from_be(unsafe { sys::ibv_get_device_guid(d) }),
            })
            .collect())
    })
}

fn device_name(d: *mut sys::ibv_device) -> String {
    // SAFETY: `d` is an entry of a live device list; the name is a NUL-terminated string
    // owned by it (or null).
    let p = unsafe { sys::ibv_get_device_name(d) };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated, valid while the list lives.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Runs `f` over the device list (freed afterwards).
fn with_devices<T>(
    f: impl FnOnce(&[*mut sys::ibv_device]) -> Result<T, VerbsError>,
) -> Result<T, VerbsError> {
    let mut n = 0i32;
    // SAFETY: `n` is a valid out-pointer; the list is freed below.
    let list = unsafe { sys::ibv_get_device_list(&mut n) };
    if list.is_null() {
        let e = std::io::Error::last_os_error();
        return Err(VerbsError::NoDevice(
            if e.raw_os_error() == Some(libc_enosys()) {
                "the kernel has no RDMA subsystem (ibv_get_device_list: ENOSYS)".into()
            } else {
                format!("ibv_get_device_list: {e}")
            },
        ));
    }
    // SAFETY: the list holds `n` valid entries (then a null).
    let devs = unsafe { std::slice::from_raw_parts(list, n.max(0) as usize) };
    let r = if devs.is_empty() {
        Err(VerbsError::NoDevice(
            "ibv_get_device_list found none (no /sys/class/infiniband device)".into(),
        ))
    } else {
        f(devs)
    };
    // SAFETY: `list` came from ibv_get_device_list and is freed once; no entry is used after.
    unsafe { sys::ibv_free_device_list(list) };
    r
}

const fn libc_enosys() -> i32 {
    38
}

/// An open RDMA device (`ibv_context`).
#[derive(Debug)]
pub struct Context {
    ctx: NonNull<sys::ibv_context>,
    name: String,
}

// SAFETY: libibverbs contexts are thread-safe (every verb may be called from any thread).
unsafe impl Send for Context {}
// SAFETY: as above.
unsafe impl Sync for Context {}

impl Context {
    /// Opens the device called `name`, or the first one.
    pub fn open(name: Option<&str>) -> Result<Arc<Context>, VerbsError> {
        with_devices(|list| {
            let d = match name {
                Some(want) => list.iter().copied().find(|&d| device_name(d) == want),
                None => list.first().copied(),
            }
            .ok_or_else(|| {
                VerbsError::NoDevice(format!(
                    "no device {} among {:?}",
                    name.unwrap_or(""),
                    list.iter().map(|&d| device_name(d)).collect::<Vec<_>>()
                ))
            })?;
            // SAFETY: `d` is an entry of the live list; the context outlives the list.
            let ctx = unsafe { sys::ibv_open_device(d) };
            let ctx = NonNull::new(ctx).ok_or_else(|| last("ibv_open_device"))?;
            Ok(Arc::new(Context {
                ctx,
                name: device_name(d),
            }))
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// GID `index` of `port`.
    pub fn gid(&self, port: u8, index: u8) -> Result<[u8; 16], VerbsError> {
        let mut g = sys::ibv_gid::default();
        // SAFETY: the context is open; `g` is a valid out-pointer.
        let r = unsafe { sys::ibv_query_gid(self.ctx.as_ptr(), port, index as i32, &mut g) };
        rc("ibv_query_gid", r)?;
        // SAFETY: `raw` is the union's plain-bytes view, always initialised.
        Ok(unsafe { g.raw })
    }

    /// The RoCE v2 GID of an IPv4 address on `port` (`::ffff:a.b.c.d`): its index and value
    /// (from the port's GID types in sysfs).
    pub fn roce_v2_ipv4_gid(&self, port: u8) -> Result<(u8, [u8; 16]), VerbsError> {
        let dir = format!("/sys/class/infiniband/{}/ports/{port}", self.name);
        for i in 0..=255u8 {
            let Ok(g) = self.gid(port, i) else { break };
            let ty =
                std::fs::read_to_string(format!("{dir}/gid_attrs/types/{i}")).unwrap_or_default();
            if g[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] && ty.trim() == "RoCE v2" {
                return Ok((i, g));
            }
        }
        Err(VerbsError::Invalid(format!(
            "{} port {port} has no RoCE v2 GID of an IPv4 address",
            self.name
        )))
    }

    /// `ibv_alloc_pd`.
    pub fn alloc_pd(self: &Arc<Self>) -> Result<Arc<Pd>, VerbsError> {
        // SAFETY: the context is open.
        let pd = unsafe { sys::ibv_alloc_pd(self.ctx.as_ptr()) };
        let pd = NonNull::new(pd).ok_or_else(|| last("ibv_alloc_pd"))?;
        Ok(Arc::new(Pd {
            ctx: self.clone(),
            pd,
        }))
    }

    /// `ibv_create_cq` with `depth` entries.
    pub fn create_cq(self: &Arc<Self>, depth: u32) -> Result<Arc<Cq>, VerbsError> {
        // SAFETY: the context is open; no channel, no context pointer.
        let cq = unsafe {
            sys::ibv_create_cq(self.ctx.as_ptr(), depth as i32, null_mut(), null_mut(), 0)
        };
        let cq = NonNull::new(cq).ok_or_else(|| last("ibv_create_cq"))?;
        Ok(Arc::new(Cq {
            _ctx: self.clone(),
            cq,
        }))
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: every object of the context holds an `Arc` of it: none is left.
        unsafe { sys::ibv_close_device(self.ctx.as_ptr()) };
    }
}

/// A protection domain.
#[derive(Debug)]
pub struct Pd {
    ctx: Arc<Context>,
    pd: NonNull<sys::ibv_pd>,
}

// SAFETY: see `Context`.
unsafe impl Send for Pd {}
// SAFETY: see `Context`.
unsafe impl Sync for Pd {}

/// Access rights of an MR (`ibv_access_flags`).
pub mod access {
    pub const LOCAL_WRITE: u32 = 1;
    pub const REMOTE_WRITE: u32 = 2;
    pub const REMOTE_READ: u32 = 4;
}

impl Pd {
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// `ibv_reg_mr` over `len` bytes at `addr`.
    ///
    /// # Safety
    /// `[addr, addr + len)` is mapped memory that stays mapped while the MR lives, and the
    /// device may write it (with `LOCAL_WRITE`/`REMOTE_WRITE`) whenever the caller posts it.
    pub unsafe fn reg_mr(
        self: &Arc<Self>,
        addr: *mut u8,
        len: usize,
        access: u32,
    ) -> Result<Mr, VerbsError> {
        // SAFETY: the PD is live; the range is the caller's promise.
        let mr = unsafe { sys::ibv_reg_mr(self.pd.as_ptr(), addr.cast(), len, access as i32) };
        let mr = NonNull::new(mr).ok_or_else(|| last("ibv_reg_mr"))?;
        Ok(Mr {
            _pd: self.clone(),
            mr,
        })
    }

    /// `ibv_reg_mr` over a page pool's whole region (local write: receive buffers). The pool
    /// must outlive the MR (the [`VerbsSrq`] holding both guarantees it).
    pub fn reg_pool(self: &Arc<Self>, pool: &PagePool) -> Result<Mr, VerbsError> {
        let r = pool.region();
        if r.base.is_null() {
            return Err(VerbsError::Invalid(
                "the pool's memory is not mapped into this process".into(),
            ));
        }
        // SAFETY: the region is the provider's mapping, alive while the pool is; the NIC
        // writes a buffer only while the ledger has it Posted.
        unsafe { self.reg_mr(r.base, r.len(), access::LOCAL_WRITE) }
    }

    /// `ibv_reg_dmabuf_mr`: `len` bytes at `offset` of the dmabuf `fd`, addressed by peers as
    /// `iova`. A device or provider without dmabuf support (`EOPNOTSUPP`, or `ENOSYS` from an
    /// older library) is [`VerbsError::DmabufUnsupported`].
    pub fn reg_dmabuf(
        self: &Arc<Self>,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
        iova: u64,
        access: u32,
    ) -> Result<Mr, VerbsError> {
        // SAFETY: the PD is live; the kernel checks the fd and the range against the dmabuf.
        let mr = unsafe {
            sys::ibv_reg_dmabuf_mr(
                self.pd.as_ptr(),
                offset,
                len,
                iova,
                fd.as_raw_fd(),
                access as i32,
            )
        };
        match NonNull::new(mr) {
            Some(mr) => Ok(Mr {
                _pd: self.clone(),
                mr,
            }),
            None => {
                let errno = std::io::Error::last_os_error();
                // EOPNOTSUPP (95), ENOSYS (38), EPROTONOSUPPORT (93).
                if matches!(errno.raw_os_error(), Some(95 | 38 | 93)) {
                    Err(VerbsError::DmabufUnsupported {
                        device: self.ctx.name.clone(),
                        errno,
                    })
                } else {
                    Err(VerbsError::Os {
                        call: "ibv_reg_dmabuf_mr",
                        errno,
                    })
                }
            }
        }
    }

    /// `ibv_create_ah` towards `dgid` through `port` (RoCE: always with a GRH).
    pub fn create_ah(
        self: &Arc<Self>,
        port: u8,
        sgid_index: u8,
        dgid: [u8; 16],
    ) -> Result<Ah, VerbsError> {
        let mut a = sys::ibv_ah_attr {
            is_global: 1,
            port_num: port,
            ..Default::default()
        };
        a.grh.dgid.raw = dgid;
        a.grh.sgid_index = sgid_index;
        a.grh.hop_limit = 64;
        // SAFETY: the PD is live; `a` is a valid attribute record.
        let ah = unsafe { sys::ibv_create_ah(self.pd.as_ptr(), &mut a) };
        let ah = NonNull::new(ah).ok_or_else(|| last("ibv_create_ah"))?;
        Ok(Ah {
            _pd: self.clone(),
            ah,
        })
    }
}

impl Drop for Pd {
    fn drop(&mut self) {
        // SAFETY: every object of the PD holds an `Arc` of it: none is left.
        unsafe { sys::ibv_dealloc_pd(self.pd.as_ptr()) };
    }
}

/// A registered memory region.
#[derive(Debug)]
pub struct Mr {
    _pd: Arc<Pd>,
    mr: NonNull<sys::ibv_mr>,
}

// SAFETY: see `Context`.
unsafe impl Send for Mr {}

impl Mr {
    pub fn lkey(&self) -> u32 {
        // SAFETY: the MR is registered.
        unsafe { self.mr.as_ref().lkey }
    }
    pub fn rkey(&self) -> u32 {
        // SAFETY: the MR is registered.
        unsafe { self.mr.as_ref().rkey }
    }
    /// The address the MR starts at (its iova).
    pub fn addr(&self) -> u64 {
        // SAFETY: the MR is registered.
        unsafe { self.mr.as_ref().addr as u64 }
    }
    pub fn len(&self) -> usize {
        // SAFETY: the MR is registered.
        unsafe { self.mr.as_ref().length }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Mr {
    fn drop(&mut self) {
        // SAFETY: registered once, deregistered once.
        unsafe { sys::ibv_dereg_mr(self.mr.as_ptr()) };
    }
}

/// An address handle (UD sends).
#[derive(Debug)]
pub struct Ah {
    _pd: Arc<Pd>,
    ah: NonNull<sys::ibv_ah>,
}

impl Drop for Ah {
    fn drop(&mut self) {
        // SAFETY: created once, destroyed once; no WR in flight names it once its sends
        // completed (callers poll before dropping).
        unsafe { sys::ibv_destroy_ah(self.ah.as_ptr()) };
    }
}

/// A work completion (the fields a receive or send completion carries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wc {
    pub wr_id: u64,
    /// `ibv_wc_status`.
    pub status: u32,
    /// `ibv_wc_opcode`.
    pub opcode: u32,
    pub byte_len: u32,
    /// Immediate data in host order (`ntohl(wc.imm_data)`), or the invalidated rkey.
    pub imm_or_inv: u32,
    /// `ibv_wc_flags`.
    pub flags: u32,
    pub qp_num: u32,
    pub src_qp: u32,
}

impl Wc {
    fn of(w: &sys::ibv_wc) -> Wc {
        let flags = w.wc_flags.0;
        Wc {
            wr_id: w.wr_id(),
            status: w.error().map_or(0, |(s, _)| s),
            opcode: w.opcode(),
            byte_len: w.len() as u32,
            imm_or_inv: if flags & sys::ibv_wc_flags::IBV_WC_WITH_IMM.0 != 0 {
                u32::from_be(w.imm_data)
            } else {
                w.imm_data
            },
            flags,
            qp_num: w.qp_num,
            src_qp: w.src_qp,
        }
    }

    /// The completion in splitrx's CQE record (`ibv_wc_status`/`ibv_wc_opcode` numbering;
    /// `wc_flags` translated), for [`SrqBook::accept`]'s checks. A status or opcode beyond
    /// a byte becomes 255 (refused there as unknown). `ud`: the completing QP is UD — the
    /// GRH flag means "the buffer starts with the 40-byte GRH area" only there (rxe sets
    /// `IBV_WC_GRH` on every receive completion, RC ones included).
    pub fn to_cqe(&self, ud: bool) -> RoceCqe {
        let mut f = 0u16;
        if self.flags & sys::ibv_wc_flags::IBV_WC_WITH_IMM.0 != 0 {
            f |= wc_flags::WITH_IMM;
        }
        if self.flags & sys::ibv_wc_flags::IBV_WC_WITH_INV.0 != 0 {
            f |= wc_flags::WITH_INV;
        }
        if ud && self.flags & sys::ibv_wc_flags::IBV_WC_GRH.0 != 0 {
            f |= wc_flags::GRH;
        }
        RoceCqe {
            wr_id: U64::new(self.wr_id),
            byte_len: U32::new(self.byte_len),
            imm_or_inv: U32::new(self.imm_or_inv),
            qpn: U32::new(self.qp_num),
            src_qp: U32::new(self.src_qp),
            status: u8::try_from(self.status).unwrap_or(u8::MAX),
            opcode: u8::try_from(self.opcode).unwrap_or(u8::MAX),
            wc_flags: U16::new(f),
            psn: U32::new(0),
        }
    }
}

/// A completion queue.
#[derive(Debug)]
pub struct Cq {
    _ctx: Arc<Context>,
    cq: NonNull<sys::ibv_cq>,
}

// SAFETY: see `Context`.
unsafe impl Send for Cq {}
// SAFETY: see `Context`.
unsafe impl Sync for Cq {}

impl Cq {
    /// `ibv_poll_cq`: up to `max` completions appended to `out`; returns how many.
    pub fn poll(&self, max: usize, out: &mut Vec<Wc>) -> Result<usize, VerbsError> {
        let mut wcs = [sys::ibv_wc::default(); 16];
        let mut got = 0;
        while got < max {
            let want = (max - got).min(wcs.len()) as i32;
            // SAFETY: the CQ is live; its context's provider ops are set by ibv_open_device;
            // `wcs` has room for `want` entries.
            let n = unsafe {
                let ctx = (*self.cq.as_ptr()).context;
                let poll = (*ctx)
                    .ops
                    .poll_cq
                    .ok_or_else(|| VerbsError::Invalid("the provider has no poll_cq".into()))?;
                poll(self.cq.as_ptr(), want, wcs.as_mut_ptr())
            };
            if n < 0 {
                return Err(VerbsError::Os {
                    call: "ibv_poll_cq",
                    errno: std::io::Error::from_raw_os_error(-n),
                });
            }
            out.extend(wcs[..n as usize].iter().map(Wc::of));
            got += n as usize;
            if n < want {
                break;
            }
        }
        Ok(got)
    }
}

impl Drop for Cq {
    fn drop(&mut self) {
        // SAFETY: every QP and SRQ using the CQ holds an `Arc` of it: none is left.
        unsafe { sys::ibv_destroy_cq(self.cq.as_ptr()) };
    }
}

/// QP type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QpType {
    Rc,
    Ud,
}

/// What [`Qp::create`] makes.
#[derive(Clone, Copy, Debug)]
pub struct QpInit {
    pub qp_type: QpType,
    pub max_send_wr: u32,
    /// Own receive queue depth (0 with an SRQ).
    pub max_recv_wr: u32,
}

/// The remote end of a connection and the port it is reached through.
#[derive(Clone, Copy, Debug)]
pub struct Path {
    pub port: u8,
    pub sgid_index: u8,
    pub dgid: [u8; 16],
    /// Remote QP (RC).
    pub dest_qpn: u32,
    /// First PSN the remote sends (our receive PSN).
    pub rq_psn: u32,
    /// `ibv_mtu` (1 = 256 … 5 = 4096).
    pub mtu: u32,
}

/// A queue pair.
#[derive(Debug)]
pub struct Qp {
    pd: Arc<Pd>,
    _send_cq: Arc<Cq>,
    _recv_cq: Arc<Cq>,
    qp: NonNull<sys::ibv_qp>,
    pub qp_type: QpType,
}

// SAFETY: see `Context`.
unsafe impl Send for Qp {}

/// The Q_Key of the UD QPs made here.
pub const UD_QKEY: u32 = 0x1111_1111;

impl Qp {
    /// `ibv_create_qp` with its own receive queue (a QP receiving through an SRQ is made by
    /// [`VerbsSrq::attach`]).
    pub fn create(
        pd: &Arc<Pd>,
        send_cq: &Arc<Cq>,
        recv_cq: &Arc<Cq>,
        init: &QpInit,
    ) -> Result<Qp, VerbsError> {
        Qp::create_on(pd, send_cq, recv_cq, None, init)
    }

    /// `ibv_create_qp`, receiving from `srq` if given (a live SRQ its owner destroys only
    /// after the QP).
    fn create_on(
        pd: &Arc<Pd>,
        send_cq: &Arc<Cq>,
        recv_cq: &Arc<Cq>,
        srq: Option<*mut sys::ibv_srq>,
        init: &QpInit,
    ) -> Result<Qp, VerbsError> {
        let mut a = sys::ibv_qp_init_attr {
            send_cq: send_cq.cq.as_ptr(),
            recv_cq: recv_cq.cq.as_ptr(),
            srq: srq.unwrap_or(null_mut()),
            qp_type: match init.qp_type {
                QpType::Rc => sys::ibv_qp_type::IBV_QPT_RC,
                QpType::Ud => sys::ibv_qp_type::IBV_QPT_UD,
            },
            ..Default::default()
        };
        a.cap.max_send_wr = init.max_send_wr;
        a.cap.max_recv_wr = if srq.is_some() { 0 } else { init.max_recv_wr };
        a.cap.max_send_sge = 1;
        a.cap.max_recv_sge = 1;
        // SAFETY: the PD, CQs and SRQ are live (their owners outlive the QP: it holds Arcs
        // of the PD and CQs; an SRQ's owner destroys its QPs first); `a` is valid.
        let qp = unsafe { sys::ibv_create_qp(pd.pd.as_ptr(), &mut a) };
        let qp = NonNull::new(qp).ok_or_else(|| last("ibv_create_qp"))?;
        Ok(Qp {
            pd: pd.clone(),
            _send_cq: send_cq.clone(),
            _recv_cq: recv_cq.clone(),
            qp,
            qp_type: init.qp_type,
        })
    }

    pub fn qpn(&self) -> u32 {
        // SAFETY: the QP is live.
        unsafe { self.qp.as_ref().qp_num }
    }

    fn modify(&mut self, a: &mut sys::ibv_qp_attr, mask: u32) -> Result<(), VerbsError> {
        // SAFETY: the QP is live; `a` is valid for the bits of `mask`.
        let r = unsafe { sys::ibv_modify_qp(self.qp.as_ptr(), a, mask as i32) };
        rc("ibv_modify_qp", r)
    }

    /// RESET -> INIT -> RTR -> RTS. RC: towards `path` (remote QP, PSN, MTU, GIDs); UD:
    /// `path.port` only. `sq_psn`: the first PSN this QP sends.
    pub fn connect(&mut self, path: &Path, sq_psn: u32) -> Result<(), VerbsError> {
        use sys::ibv_qp_attr_mask as m;
        let mut a = sys::ibv_qp_attr {
            qp_state: sys::ibv_qp_state::IBV_QPS_INIT,
            pkey_index: 0,
            port_num: path.port,
            ..Default::default()
        };
        let mut mask = m::IBV_QP_STATE | m::IBV_QP_PKEY_INDEX | m::IBV_QP_PORT;
        match self.qp_type {
            QpType::Rc => {
                a.qp_access_flags = access::LOCAL_WRITE | access::REMOTE_WRITE;
                mask |= m::IBV_QP_ACCESS_FLAGS;
            }
            QpType::Ud => {
                a.qkey = UD_QKEY;
                mask |= m::IBV_QP_QKEY;
            }
        }
        self.modify(&mut a, mask.0)?;

        let mut a = sys::ibv_qp_attr {
            qp_state: sys::ibv_qp_state::IBV_QPS_RTR,
            ..Default::default()
        };
        let mut mask = m::IBV_QP_STATE;
        if self.qp_type == QpType::Rc {
            a.path_mtu = path.mtu;
            a.dest_qp_num = path.dest_qpn;
            a.rq_psn = path.rq_psn;
            a.max_dest_rd_atomic = 1;
            a.min_rnr_timer = 12;
            a.ah_attr.is_global = 1;
            a.ah_attr.port_num = path.port;
            a.ah_attr.grh.dgid.raw = path.dgid;
            a.ah_attr.grh.sgid_index = path.sgid_index;
            a.ah_attr.grh.hop_limit = 64;
            mask |= m::IBV_QP_AV
                | m::IBV_QP_PATH_MTU
                | m::IBV_QP_DEST_QPN
                | m::IBV_QP_RQ_PSN
                | m::IBV_QP_MAX_DEST_RD_ATOMIC
                | m::IBV_QP_MIN_RNR_TIMER;
        }
        self.modify(&mut a, mask.0)?;

        let mut a = sys::ibv_qp_attr {
            qp_state: sys::ibv_qp_state::IBV_QPS_RTS,
            sq_psn,
            ..Default::default()
        };
        let mut mask = m::IBV_QP_STATE | m::IBV_QP_SQ_PSN;
        if self.qp_type == QpType::Rc {
            a.timeout = 14;
            a.retry_cnt = 7;
            a.rnr_retry = 7;
            a.max_rd_atomic = 1;
            mask |= m::IBV_QP_TIMEOUT
                | m::IBV_QP_RETRY_CNT
                | m::IBV_QP_RNR_RETRY
                | m::IBV_QP_MAX_QP_RD_ATOMIC;
        }
        self.modify(&mut a, mask.0)
    }

    /// `ibv_post_send` of one signaled SEND of `len` bytes at `addr` (inside `mr`); UD: to
    /// `ud = (ah, remote qpn)` with [`UD_QKEY`].
    pub fn post_send(
        &mut self,
        wr_id: u64,
        mr: &Mr,
        addr: u64,
        len: u32,
        ud: Option<(&Ah, u32)>,
    ) -> Result<(), VerbsError> {
        if addr < mr.addr() || addr + len as u64 > mr.addr() + mr.len() as u64 {
            return Err(VerbsError::Invalid(format!(
                "{len} bytes at {addr:#x} are not inside the MR"
            )));
        }
        let mut sge = sys::ibv_sge {
            addr,
            length: len,
            lkey: mr.lkey(),
        };
        let mut wr = sys::ibv_send_wr {
            wr_id,
            sg_list: &mut sge,
            num_sge: 1,
            opcode: sys::ibv_wr_opcode::IBV_WR_SEND,
            send_flags: sys::ibv_send_flags::IBV_SEND_SIGNALED.0,
            ..Default::default()
        };
        if let Some((ah, qpn)) = ud {
            wr.wr.ud.ah = ah.ah.as_ptr();
            wr.wr.ud.remote_qpn = qpn;
            wr.wr.ud.remote_qkey = UD_QKEY;
        }
        let mut bad = null_mut();
        // SAFETY: the QP is live; `wr` and `sge` are valid for the call (the provider copies
        // them); the bytes are inside a registered MR (checked above).
        let r = unsafe {
            let ctx = (*self.qp.as_ptr()).context;
            let post = (*ctx)
                .ops
                .post_send
                .ok_or_else(|| VerbsError::Invalid("the provider has no post_send".into()))?;
            post(self.qp.as_ptr(), &mut wr, &mut bad)
        };
        rc("ibv_post_send", r)
    }

    pub fn pd(&self) -> &Arc<Pd> {
        &self.pd
    }
}

impl Drop for Qp {
    fn drop(&mut self) {
        // SAFETY: created once, destroyed once.
        unsafe { sys::ibv_destroy_qp(self.qp.as_ptr()) };
    }
}

/// An SRQ fed from a page pool, its CQ and the QPs receiving through it (see the module
/// docs). Field order is drop order: QPs before the SRQ, the SRQ before its CQ and MR, the MR
/// before the pool (inside `book`).
#[derive(Debug)]
pub struct VerbsSrq {
    qps: Vec<Qp>,
    srq: Option<NonNull<sys::ibv_srq>>,
    cq: Arc<Cq>,
    mr: Mr,
    pd: Arc<Pd>,
    depth: u32,
    book: SrqBook,
    wcs: Vec<Wc>,
}

// SAFETY: see `Context`.
unsafe impl Send for VerbsSrq {}

impl VerbsSrq {
    /// `ibv_create_srq` of `depth` WQEs over `pool` (its memory registered with
    /// `ibv_reg_mr`), a CQ of `cq_depth` entries, and the first refill.
    pub fn new(
        pd: &Arc<Pd>,
        pool: PagePool,
        depth: u32,
        cq_depth: u32,
    ) -> Result<VerbsSrq, VerbsError> {
        let mr = pd.reg_pool(&pool)?;
        let cq = pd.ctx.create_cq(cq_depth)?;
        let mut a = sys::ibv_srq_init_attr::default();
        a.attr.max_wr = depth;
        a.attr.max_sge = 1;
        // SAFETY: the PD is live; `a` is valid.
        let srq = unsafe { sys::ibv_create_srq(pd.pd.as_ptr(), &mut a) };
        let srq = NonNull::new(srq).ok_or_else(|| last("ibv_create_srq"))?;
        let base = pool.region().base as u64;
        let lkey = mr.lkey();
        let mut s = VerbsSrq {
            qps: Vec::new(),
            srq: Some(srq),
            cq,
            mr,
            pd: pd.clone(),
            depth,
            book: SrqBook::new(pool, lkey, 0, base),
            wcs: Vec::new(),
        };
        s.refill()?;
        Ok(s)
    }

    /// A QP receiving through this SRQ (its completions on the SRQ's CQ); sends complete on
    /// `send_cq`. Returns its index for [`VerbsSrq::qp`].
    pub fn attach(&mut self, send_cq: &Arc<Cq>, init: &QpInit) -> Result<usize, VerbsError> {
        let qp = Qp::create_on(
            &self.pd,
            send_cq,
            &self.cq,
            self.srq.map(|s| s.as_ptr()),
            init,
        )?;
        self.qps.push(qp);
        Ok(self.qps.len() - 1)
    }

    pub fn qp(&mut self, i: usize) -> &mut Qp {
        &mut self.qps[i]
    }

    pub fn lkey(&self) -> u32 {
        self.mr.lkey()
    }

    pub fn first_error(&self) -> Option<&'static str> {
        self.book.first_error()
    }

    fn post(&mut self, w: &splitrx_shared::abi::RecvWqe) -> Result<(), VerbsError> {
        let srq = self
            .srq
            .ok_or_else(|| VerbsError::Invalid("SRQ destroyed".into()))?;
        let mut sge = sys::ibv_sge {
            addr: w.bus_addr.get(),
            length: w.len.get(),
            lkey: w.lkey.get(),
        };
        let mut wr = sys::ibv_recv_wr {
            wr_id: w.wr_id.get(),
            next: null_mut(),
            sg_list: &mut sge,
            num_sge: 1,
        };
        let mut bad = null_mut();
        // SAFETY: the SRQ is live; `wr`/`sge` are valid for the call; the buffer lies in the
        // registered pool region and is Posted in the ledger until its completion.
        let r = unsafe {
            let ctx = (*srq.as_ptr()).context;
            let post = (*ctx)
                .ops
                .post_srq_recv
                .ok_or_else(|| VerbsError::Invalid("the provider has no post_srq_recv".into()))?;
            post(srq.as_ptr(), &mut wr, &mut bad)
        };
        rc("ibv_post_srq_recv", r)
    }
}

impl PoolRecv for VerbsSrq {
    type Error = VerbsError;

    fn refill(&mut self) -> Result<usize, VerbsError> {
        let mut n = 0;
        while (self.book.outstanding() as u32) < self.depth {
            let Some(w) = self.book.take() else { break };
            if let Err(e) = self.post(&w) {
                self.book.untake(&w);
                return Err(e);
            }
            n += 1;
        }
        Ok(n)
    }

    fn poll(&mut self, max: usize, out: &mut Vec<Received>) -> Result<usize, VerbsError> {
        self.wcs.clear();
        let mut wcs = std::mem::take(&mut self.wcs);
        let n = self.cq.poll(max, &mut wcs);
        for w in &wcs {
            let ud = self
                .qps
                .iter()
                .any(|q| q.qp_type == QpType::Ud && q.qpn() == w.qp_num);
            if let Ok(Ok(r)) = self.book.accept(&w.to_cqe(ud)) {
                out.push(r);
            }
        }
        self.wcs = wcs;
        n
    }

    fn pool(&self) -> &PagePool {
        self.book.pool()
    }

    fn counters(&self) -> SrqCounters {
        self.book.counters()
    }

    fn outstanding(&self) -> usize {
        self.book.outstanding()
    }

    /// Destroys the QPs, drains the CQ (late receives are dropped: their buffers go back),
    /// destroys the SRQ (the device lets go of every WQE) and retires what was still posted.
    fn close(mut self) -> Result<SrqDestroyed, VerbsError> {
        self.qps.clear();
        let mut late = Vec::new();
        while self.poll(64, &mut late)? > 0 {}
        drop(late);
        if let Some(srq) = self.srq.take() {
            // SAFETY: no QP uses the SRQ any more; destroyed once.
            let r = unsafe { sys::ibv_destroy_srq(srq.as_ptr()) };
            rc("ibv_destroy_srq", r)?;
        }
        Ok(self.book.close())
    }
}

impl Drop for VerbsSrq {
    fn drop(&mut self) {
        self.qps.clear();
        if let Some(srq) = self.srq.take() {
            // SAFETY: its QPs are gone; destroyed once.
            unsafe { sys::ibv_destroy_srq(srq.as_ptr()) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine has no RDMA device (no rxe, no HCA): discovery says so, cleanly. (In the
    /// rxe guest the same calls find rxe0: tests/tests/rxe_guest.rs.)
    #[test]
    fn no_rdma_device_is_a_clear_error() {
        if std::path::Path::new("/sys/class/infiniband")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
        {
            println!("skipped: this machine has an RDMA device");
            return;
        }
        let e = devices().unwrap_err();
        assert!(matches!(e, VerbsError::NoDevice(_)), "{e:?}");
        assert!(e.to_string().starts_with("no RDMA device: "), "{e}");
        let e = Context::open(None).unwrap_err();
        assert!(matches!(e, VerbsError::NoDevice(_)), "{e:?}");
        let e = Context::open(Some("rxe0")).unwrap_err();
        assert!(matches!(e, VerbsError::NoDevice(_)), "{e:?}");
    }

    #[test]
    fn wc_flags_and_immediates_translate_to_the_cqe_record() {
        let w = Wc {
            wr_id: 7,
            status: 0,
            opcode: 128,
            byte_len: 16,
            imm_or_inv: 0x1234_5678,
            flags: sys::ibv_wc_flags::IBV_WC_WITH_IMM.0 | sys::ibv_wc_flags::IBV_WC_GRH.0,
            qp_num: 17,
            src_qp: 18,
        };
        let c = w.to_cqe(true);
        assert_eq!(c.wc_flags.get(), wc_flags::WITH_IMM | wc_flags::GRH);
        assert_eq!(
            w.to_cqe(false).wc_flags.get(),
            wc_flags::WITH_IMM,
            "GRH means a GRH area only on UD"
        );
        assert_eq!(
            (c.wr_id.get(), c.byte_len.get(), c.imm_or_inv.get()),
            (7, 16, 0x1234_5678)
        );
        assert_eq!((c.qpn.get(), c.src_qp.get(), c.opcode), (17, 18, 128));
        let w = Wc { status: 300, ..w };
        assert_eq!(
            w.to_cqe(true).status,
            u8::MAX,
            "an out-of-range status is not truncated"
        );
    }
}
