//! The example app of the page-pool receive API: one function, generic over
//! [`PoolRecv`], that runs unchanged on splitrx's firmware ([`splitrx_host::recv::SrqRecv`]:
//! `tests/tests/pool_recv.rs`, the sim board) and on any ibverbs device
//! (`splitrx_host::verbs::VerbsSrq`: the `splitrx-verbs sink` binary against Linux soft-RoCE in
//! the rxe guest, `tests/tests/rxe_guest.rs`).
//!
//! [`sink`] receives the expected messages, checks every payload byte (in order: one RC
//! connection), holds up to `hold` tokens at a time — the app keeping buffers while it works
//! on them — then returns them all and refills the queue, and audits the pool's ledger at the
//! moment it holds `hold` tokens and again at the end.

use splitrx_host::pool::AuditReport;
use splitrx_host::recv::PoolRecv;
use std::time::{Duration, Instant};

/// What [`sink`] saw.
#[derive(Debug)]
pub struct SinkReport {
    /// Messages received with exactly the expected bytes.
    pub received: usize,
    pub bytes: u64,
    /// The first audit taken while `hold` tokens were held (after a refill), and the number of
    /// WQEs outstanding then.
    pub audit_held: Option<(AuditReport, usize)>,
    /// The audit after the last tokens went back and the queue was refilled, with the
    /// outstanding WQEs then.
    pub audit_end: (AuditReport, usize),
}

/// Receives `expected.len()` messages through `rx` (see the module docs) within `limit`;
/// `pump` is called between polls (a driver that must be stepped, or nothing).
pub fn sink<R: PoolRecv>(
    rx: &mut R,
    expected: &[Vec<u8>],
    hold: usize,
    limit: Duration,
    mut pump: impl FnMut(),
) -> Result<SinkReport, String> {
    let t0 = Instant::now();
    let mut held = Vec::new();
    let mut got = Vec::new();
    let (mut received, mut bytes) = (0usize, 0u64);
    let mut audit_held = None;
    while received < expected.len() {
        if t0.elapsed() > limit {
            return Err(format!(
                "{received} of {} messages in {limit:?} (counters {:?})",
                expected.len(),
                rx.counters()
            ));
        }
        got.clear();
        // Never more than `hold` tokens in the app's hands (polled ones included).
        let room = hold.max(1) - held.len();
        rx.poll(room, &mut got).map_err(|e| e.to_string())?;
        if got.is_empty() {
            pump();
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for r in got.drain(..) {
            let want = expected
                .get(received)
                .ok_or_else(|| format!("message {received}: more messages than sent"))?;
            let b = r
                .token
                .bytes()
                .ok_or("the pool's memory is not host-readable")?;
            // UD: the first 40 bytes are the GRH area, the message follows.
            let b = if r.completion.grh {
                b.get(40..).ok_or("a UD completion shorter than its GRH")?
            } else {
                b
            };
            if b != &want[..] {
                return Err(format!(
                    "message {received}: {} bytes {:02x?}..., expected {} bytes {:02x?}...",
                    b.len(),
                    &b[..b.len().min(16)],
                    want.len(),
                    &want[..want.len().min(16)]
                ));
            }
            received += 1;
            bytes += b.len() as u64;
            held.push(r.token);
            if held.len() == hold || received == expected.len() {
                rx.refill().map_err(|e| e.to_string())?;
                if held.len() == hold && audit_held.is_none() {
                    let a = rx.pool().audit().map_err(|e| e.to_string())?;
                    audit_held = Some((a, rx.outstanding()));
                }
                held.clear();
            }
        }
        rx.refill().map_err(|e| e.to_string())?;
    }
    drop(held);
    rx.refill().map_err(|e| e.to_string())?;
    let a = rx.pool().audit().map_err(|e| e.to_string())?;
    Ok(SinkReport {
        received,
        bytes,
        audit_held,
        audit_end: (a, rx.outstanding()),
    })
}
