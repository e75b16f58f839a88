//! The verbs backend's tests, run inside the rxe guest against rxe0 (cargo feature `verbs`;
//! built on the host, handed to the guest through fw_cfg by `tests/tests/rxe_guest.rs`):
//!
//! - `devices`: discovery (one line per device);
//! - `rc N` / `ud N`: the example app (`splitrx_harness::sink`) on a [`VerbsSrq`]: N SENDs
//!   from a second QP of the same device (RC, or UD through an address handle) into an SRQ
//!   whose WQEs are page-pool buffers, every payload checked, tokens held four at a time and
//!   returned, the ledger audited while they are held, at the end and after close;
//! - `dmabuf`: the `DeviceWindow` provider over a real udmabuf (memfd sealed against
//!   shrinking, `/dev/udmabuf` `UDMABUF_CREATE`): map, carve into a pool, lend tokens whose
//!   bytes are those written through the memfd, reclaim; and `ibv_reg_dmabuf_mr` of that
//!   dmabuf on rxe0.
//!
//! Each prints `RESULT <name> key=value ...` lines the host test checks exactly, and exits
//! non-zero (with the reason) on any failure.

use splitrx_harness::sink::{sink, SinkReport};
use splitrx_host::pool::{AuditReport, PagePool, PoolConfig};
use splitrx_host::provider::{DeviceWindow, DeviceWindowConfig, HostMemory, HostMemoryConfig};
use splitrx_host::recv::PoolRecv;
use splitrx_host::verbs::{self, Context, Path, Qp, QpInit, QpType, VerbsError, VerbsSrq, Wc};
use splitrx_shared::abi::PoolMode;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

type R<T> = Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let r = match args.first().map(String::as_str) {
        Some("devices") => devices(),
        Some("rc") => pair(QpType::Rc, n(1, 64)),
        Some("ud") => pair(QpType::Ud, n(1, 12)),
        Some("dmabuf") => dmabuf(),
        _ => Err("usage: splitrx-verbs devices | rc [N] | ud [N] | dmabuf".into()),
    };
    if let Err(e) = r {
        println!("FAILED: {e}");
        std::process::exit(1);
    }
}

fn devices() -> R<()> {
    match verbs::devices() {
        Ok(d) => {
            for d in d {
                println!("RESULT device name={} guid={:016x}", d.name, d.guid);
            }
            Ok(())
        }
        Err(e @ VerbsError::NoDevice(_)) => {
            println!("RESULT nodevice {e}");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn audit_line(a: &AuditReport) -> String {
    format!(
        "total={} free={} posted={} filled={} lent={} lent_frags={}",
        a.total, a.free, a.posted, a.filled, a.lent, a.lent_frags
    )
}

/// Message `i` of a run: `len` bytes, each a function of `i` and its offset.
fn message(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|b| (i * 7 + b * 13 + 1) as u8).collect()
}

const POOL_BUFS: u32 = 32;
const BUF: u32 = 4096;
const DEPTH: u32 = 16;
const HOLD: usize = 4;

fn pair(ty: QpType, n: usize) -> R<()> {
    let e = |e: VerbsError| e.to_string();
    let ctx = Context::open(Some("rxe0")).map_err(e)?;
    let (sgid, gid) = ctx.roce_v2_ipv4_gid(1).map_err(e)?;
    let pd = ctx.alloc_pd().map_err(e)?;
    let pool = PagePool::new(
        PoolConfig {
            mode: PoolMode::Page,
            ring_size: POOL_BUFS as usize,
            ..PoolConfig::new(1)
        },
        Box::new(HostMemory::new(HostMemoryConfig::new(BUF, POOL_BUFS))),
    )
    .map_err(|e| e.to_string())?;
    let mut srq = VerbsSrq::new(&pd, pool, DEPTH, 256).map_err(e)?;
    let send_cq = ctx.create_cq(256).map_err(e)?;
    let init = QpInit {
        qp_type: ty,
        max_send_wr: 128,
        max_recv_wr: 0,
    };
    let rx = srq.attach(&send_cq, &init).map_err(e)?;
    let mut tx = Qp::create(
        &pd,
        &send_cq,
        &send_cq,
        &QpInit {
            max_recv_wr: 1,
            ..init
        },
    )
    .map_err(e)?;
    let (rx_qpn, tx_qpn) = (srq.qp(rx).qpn(), tx.qpn());
    let path = |dest_qpn| Path {
        port: 1,
        sgid_index: sgid,
        dgid: gid,
        dest_qpn,
        rq_psn: 0,
        mtu: 3,
    };
    srq.qp(rx).connect(&path(tx_qpn), 0).map_err(e)?;
    tx.connect(&path(rx_qpn), 0).map_err(e)?;
    // UD messages fit the 1024-byte path MTU; RC ones span up to a whole buffer.
    let max = if ty == QpType::Ud { 1024 } else { BUF as usize };
    let expected: Vec<Vec<u8>> = (0..n).map(|i| message(i, 1 + (i * 997) % max)).collect();
    let mut sendbuf = vec![0u8; n * max];
    for (i, m) in expected.iter().enumerate() {
        sendbuf[i * max..i * max + m.len()].copy_from_slice(m);
    }
    // SAFETY: `sendbuf` outlives the MR (dropped at the end of this function, after the MR)
    // and is not touched while the sends are in flight.
    let smr = unsafe { pd.reg_mr(sendbuf.as_mut_ptr(), sendbuf.len(), 0) }.map_err(e)?;
    let ah = if ty == QpType::Ud {
        Some(pd.create_ah(1, sgid, gid).map_err(e)?)
    } else {
        None
    };
    // UD drops a message that finds no WQE: post no more than the SRQ holds.
    if ty == QpType::Ud && n > DEPTH as usize {
        return Err(format!("UD: at most {DEPTH} messages"));
    }
    let t0 = std::time::Instant::now();
    for (i, m) in expected.iter().enumerate() {
        let addr = smr.addr() + (i * max) as u64;
        tx.post_send(
            i as u64,
            &smr,
            addr,
            m.len() as u32,
            ah.as_ref().map(|a| (a, rx_qpn)),
        )
        .map_err(e)?;
    }
    let rep = sink(&mut srq, &expected, HOLD, Duration::from_secs(60), || {})?;
    let took = t0.elapsed();
    // Every SEND completed, successfully.
    let mut wcs: Vec<Wc> = Vec::new();
    let t = std::time::Instant::now();
    while wcs.len() < n && t.elapsed() < Duration::from_secs(10) {
        send_cq.poll(64, &mut wcs).map_err(e)?;
    }
    let send_ok = wcs.iter().filter(|w| w.status == 0).count();
    let counters = srq.counters();
    let first_error = srq.first_error();
    let closed = srq.close().map_err(e)?;
    let name = if ty == QpType::Rc { "rc" } else { "ud" };
    report(name, &rep, send_ok, wcs.len());
    // For the record (TCG speed; not checked).
    println!(
        "RESULT {name}-time secs={:.3} mb_per_s={:.2} msgs_per_s={:.0}",
        took.as_secs_f64(),
        rep.bytes as f64 / took.as_secs_f64() / 1e6,
        rep.received as f64 / took.as_secs_f64()
    );
    println!(
        "RESULT {name}-counters posted={} received={} errors={} cqe_invalid={} first_error={first_error:?}",
        counters.posted, counters.received, counters.errors, counters.cqe_invalid
    );
    let a = closed
        .audit
        .map_err(|e| format!("audit after close: {e}"))?;
    println!(
        "RESULT {name}-closed retired={} {}",
        closed.retired,
        audit_line(&a)
    );
    drop(tx);
    drop(ah);
    drop(smr);
    drop(sendbuf);
    Ok(())
}

fn report(name: &str, rep: &SinkReport, send_ok: usize, sends: usize) {
    println!(
        "RESULT {name} received={} bytes={} sends_ok={send_ok}/{sends}",
        rep.received, rep.bytes
    );
    if let Some((a, out)) = &rep.audit_held {
        println!("RESULT {name}-held outstanding={out} {}", audit_line(a));
    }
    let (a, out) = &rep.audit_end;
    println!("RESULT {name}-end outstanding={out} {}", audit_line(a));
}

/// `struct udmabuf_create` (`include/uapi/linux/udmabuf.h`).
#[repr(C)]
struct UdmabufCreate {
    memfd: u32,
    flags: u32,
    offset: u64,
    size: u64,
}
/// `_IOW('u', 0x42, struct udmabuf_create)`.
const UDMABUF_CREATE: u64 = 0x4018_7542;
const UDMABUF_FLAGS_CLOEXEC: u32 = 1;

/// A memfd of `len` bytes sealed against shrinking and the dmabuf `/dev/udmabuf` makes of it.
fn udmabuf(len: u64) -> R<(std::fs::File, std::fs::File)> {
    use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
    let mfd = memfd_create(
        "splitrx-udmabuf",
        MemfdFlags::ALLOW_SEALING | MemfdFlags::CLOEXEC,
    )
    .map_err(|e| format!("memfd_create: {e}"))?;
    ftruncate(&mfd, len).map_err(|e| format!("ftruncate: {e}"))?;
    fcntl_add_seals(&mfd, SealFlags::SHRINK).map_err(|e| format!("F_ADD_SEALS: {e}"))?;
    let dev = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/udmabuf")
        .map_err(|e| format!("/dev/udmabuf: {e}"))?;
    let arg = UdmabufCreate {
        memfd: mfd.as_raw_fd() as u32,
        flags: UDMABUF_FLAGS_CLOEXEC,
        offset: 0,
        size: len,
    };
    // SAFETY: UDMABUF_CREATE reads one `struct udmabuf_create` (layout above) and returns a
    // new fd or -1 with errno.
    let fd = unsafe { libc::ioctl(dev.as_raw_fd(), UDMABUF_CREATE as _, &arg) };
    if fd < 0 {
        return Err(format!(
            "UDMABUF_CREATE: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the ioctl returned a new fd that nothing else owns.
    let dmabuf = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok((std::fs::File::from(mfd), std::fs::File::from(dmabuf)))
}

fn dmabuf() -> R<()> {
    const N: u32 = 8;
    const SZ: u32 = 4096;
    let (memfd, dmabuf) = udmabuf(N as u64 * SZ as u64)?;
    let dma_fd_for_mr = dmabuf.try_clone().map_err(|e| e.to_string())?;
    // The app's view of the memory: the memfd, mapped and written.
    // SAFETY: the memfd is ours, sealed against shrinking, and lives until the end.
    let mut view = unsafe { memmap2::MmapMut::map_mut(&memfd) }.map_err(|e| e.to_string())?;
    for (i, b) in view.iter_mut().enumerate() {
        *b = (i / SZ as usize * 31 + i % 251) as u8;
    }
    let cfg = DeviceWindowConfig::open("udmabuf", SZ, N, 0x1_0000_0000);
    let mut pool = PagePool::new(
        PoolConfig {
            mode: PoolMode::Page,
            ring_size: N as usize,
            ..PoolConfig::new(2)
        },
        Box::new(DeviceWindow::from_file(dmabuf, cfg)),
    )
    .map_err(|e| format!("DeviceWindow over the udmabuf: {e}"))?;
    let info = pool.provider_info();
    println!(
        "RESULT dmabuf-window count={} buf_size={} bus_base={:#x} mapped={}",
        info.count,
        info.buf_size,
        info.bus_base,
        !pool.region().base.is_null()
    );
    // Carve and lend: every buffer as the NIC would fill it (Posted -> Filled), 100 + i bytes.
    let mut tokens = Vec::new();
    let mut same = 0;
    while let Some(b) = pool.alloc() {
        let i = b.index();
        let len = 100 + i;
        let f = pool
            .complete(b, 0, len, true)
            .map_err(|e| format!("complete: {e:?}"))?;
        let t = pool.lend(f).map_err(|e| format!("lend: {e:?}"))?;
        let off = (i * SZ) as usize;
        if t.bytes() == Some(&view[off..off + len as usize]) {
            same += 1;
        }
        tokens.push(t);
    }
    let a = pool.audit().map_err(|e| e.to_string())?;
    println!(
        "RESULT dmabuf-lent tokens={} bytes_match={same} {}",
        tokens.len(),
        audit_line(&a)
    );
    // A write through the memfd shows through the dmabuf mapping: the same pages.
    view[5] = 0xa5;
    let seen = tokens
        .iter()
        .find(|t| t.buf().index() == 0)
        .and_then(|t| t.bytes().map(|b| b[5]));
    println!("RESULT dmabuf-shared byte5={seen:02x?}");
    drop(tokens);
    let a = pool.audit().map_err(|e| e.to_string())?;
    println!("RESULT dmabuf-reclaimed {}", audit_line(&a));
    // ibv_reg_dmabuf_mr of the same dmabuf on rxe0.
    let ctx = Context::open(Some("rxe0")).map_err(|e| e.to_string())?;
    let pd = ctx.alloc_pd().map_err(|e| e.to_string())?;
    match pd.reg_dmabuf(
        dma_fd_for_mr.as_fd(),
        0,
        (N * SZ) as usize,
        0,
        verbs::access::LOCAL_WRITE,
    ) {
        Ok(mr) => println!("RESULT dmabuf-mr registered lkey={:#x}", mr.lkey()),
        Err(VerbsError::DmabufUnsupported { errno, .. }) => println!(
            "RESULT dmabuf-mr unsupported errno={} ({errno})",
            errno.raw_os_error().unwrap_or(0)
        ),
        Err(e) => println!("RESULT dmabuf-mr error {e}"),
    }
    let d = pool.destroy();
    println!(
        "RESULT dmabuf-destroyed deferred={} tokens_outstanding={}",
        d.deferred, d.tokens_outstanding
    );
    Ok(())
}
