//! Rendering of the `splitrx run` report (the harness builds it; the CLI prints it).

use splitrx_harness::run::RunReport;

/// The human-readable report of `splitrx run`.
pub fn write_text(rep: &RunReport, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    writeln!(
        w,
        "splitrx run: {} board, {} queue(s), {} mode, buf {} B, hds_thresh {}",
        rep.target, rep.queues, rep.mode, rep.buf_size, rep.hds_thresh
    )?;
    writeln!(w, "source: {}", rep.source)?;
    if rep.frames_too_long > 0 {
        writeln!(
            w,
            "        ({} frames longer than the {} board's wire carries were left out)",
            rep.frames_too_long, rep.target
        )?;
    }
    writeln!(
        w,
        "wire:      {:>12} frames {:>15} bytes",
        rep.sent_frames, rep.sent_bytes
    )?;
    writeln!(
        w,
        "delivered: {:>12} frames {:>15} bytes   split {} / unsplit {}",
        rep.delivered_frames, rep.delivered_bytes, rep.split_frames, rep.unsplit_frames
    )?;
    writeln!(
        w,
        "rate:      {:.2} Gb/s  {:.3} Mpps  over {:.3} s (payload into device memory: {} bytes)",
        rep.gbps, rep.mpps, rep.seconds, rep.payload_bytes
    )?;
    writeln!(w, "\nper class:")?;
    for (c, f, b) in &rep.classes {
        writeln!(w, "  {c:<10} {f:>12} frames {b:>15} bytes")?;
    }
    writeln!(w, "\nNIC drops:")?;
    for (n, v) in &rep.drops {
        writeln!(w, "     {n}: {v}")?;
    }
    writeln!(w, "\nhost queue counters (sum over queues):")?;
    if let Ok(serde_json::Value::Object(m)) = serde_json::to_value(rep.host) {
        for (k, v) in m {
            writeln!(w, "     {k}: {v}")?;
        }
    }
    writeln!(w, "\npage_pool (header + payload pools):")?;
    for (n, v) in &rep.page_pool {
        writeln!(w, "     {n}: {v}")?;
    }
    writeln!(
        w,
        "\nledger audit: {}",
        if rep.audit_ok { "clean" } else { "FAILED" }
    )?;
    for a in &rep.audit {
        writeln!(w, "  {a}")?;
    }
    for (q, r) in rep.resets.iter().enumerate() {
        writeln!(w, "  queue {q} teardown: NIC returned {} buffers, ledger had {} posted, {} freed now, {} on last token", r.reported, r.nic_held, r.freed, r.retired_in_use)?;
    }
    for v in &rep.verdicts {
        writeln!(w, "  queue {}: sent {} = matched {} + dropped {} (NIC counted {}), {} payload bytes compared", v.queue, v.sent, v.matched, v.dropped, v.nic_dropped, v.payload_bytes_checked)?;
    }
    if !rep.firmware_log.is_empty() {
        writeln!(w, "\nfirmware log ({} board, defmt):", rep.target)?;
        for l in &rep.firmware_log {
            writeln!(w, "  {l}")?;
        }
    }
    if !rep.failures.is_empty() {
        writeln!(w, "\nfailures:")?;
        for f in &rep.failures {
            writeln!(w, "  {f}")?;
        }
    }
    let what = if rep.verified {
        "every payload byte in device memory equals the wire, every header byte in host memory equals the wire, every frame and buffer accounted for"
    } else {
        "not checked against the source (--no-verify); buffers accounted for"
    };
    writeln!(
        w,
        "\nverification: {} ({what})",
        if rep.pass { "PASS" } else { "FAIL" }
    )
}
