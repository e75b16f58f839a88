//! `splitrx inspect`: run the split decision over a capture and report it per frame (JSON
//! lines) or as a summary table.
//!
//! Every frame comes from [`crate::capture`], converted to the Ethernet frame a NIC would
//! receive; all offsets reported are offsets in that converted frame.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use serde::Serialize;
use splitrx_shared::split::{
    split, FrameClass, NoSplitReason, SplitConfig, SplitCounters, SplitResult, Tunnel,
};

use crate::capture::{CaptureError, CaptureFormat, CaptureReader, Frame, SkippedInterface};

/// The RoCE part of a JSON frame record.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct RoceRecord {
    pub opcode: u8,
    pub opcode_name: &'static str,
    pub dest_qp: u32,
    pub psn: u32,
    pub icrc_ok: Option<bool>,
}

/// One line of `splitrx inspect --json`. Field order is the output order.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct FrameRecord {
    /// 1-based record number in the capture.
    pub frame: u64,
    /// Link type of the record before conversion to Ethernet.
    pub link: &'static str,
    /// Original (on-the-wire) length of the converted frame.
    pub len: u32,
    /// Captured length of the converted frame (what the split decision sees).
    pub caplen: u32,
    pub class: &'static str,
    pub split: bool,
    /// Why it was not split (`"split"` when it was).
    pub reason: &'static str,
    pub payload_offset: Option<u32>,
    pub payload_len: Option<u32>,
    pub l3_offset: Option<u32>,
    pub l4_offset: Option<u32>,
    pub tunnel: Option<&'static str>,
    pub roce: Option<RoceRecord>,
    pub error: Option<&'static str>,
}

impl FrameRecord {
    pub fn new(frame: &Frame, r: &SplitResult) -> FrameRecord {
        FrameRecord {
            frame: frame.number,
            link: frame.link.as_str(),
            len: frame.len,
            caplen: frame.caplen(),
            class: r.class.as_str(),
            split: r.split,
            reason: r.reason.as_str(),
            payload_offset: r.payload_offset,
            payload_len: r.payload_len,
            l3_offset: r.l3_offset,
            l4_offset: r.l4_offset,
            tunnel: r.tunnel.map(Tunnel::as_str),
            roce: r.roce.map(|ro| RoceRecord {
                opcode: ro.opcode,
                opcode_name: roce_opcode_name(ro.opcode),
                dest_qp: ro.dest_qp,
                psn: ro.psn,
                icrc_ok: ro.icrc_ok,
            }),
            error: r.error.map(|e| e.as_str()),
        }
    }
}

/// IBTA name of a BTH opcode (transport prefix + operation), `"UNKNOWN"` otherwise.
pub fn roce_opcode_name(op: u8) -> &'static str {
    match op {
        0x00 => "RC_SEND_FIRST",
        0x01 => "RC_SEND_MIDDLE",
        0x02 => "RC_SEND_LAST",
        0x03 => "RC_SEND_LAST_IMM",
        0x04 => "RC_SEND_ONLY",
        0x05 => "RC_SEND_ONLY_IMM",
        0x06 => "RC_RDMA_WRITE_FIRST",
        0x07 => "RC_RDMA_WRITE_MIDDLE",
        0x08 => "RC_RDMA_WRITE_LAST",
        0x09 => "RC_RDMA_WRITE_LAST_IMM",
        0x0a => "RC_RDMA_WRITE_ONLY",
        0x0b => "RC_RDMA_WRITE_ONLY_IMM",
        0x0c => "RC_RDMA_READ_REQUEST",
        0x0d => "RC_RDMA_READ_RESPONSE_FIRST",
        0x0e => "RC_RDMA_READ_RESPONSE_MIDDLE",
        0x0f => "RC_RDMA_READ_RESPONSE_LAST",
        0x10 => "RC_RDMA_READ_RESPONSE_ONLY",
        0x11 => "RC_ACKNOWLEDGE",
        0x12 => "RC_ATOMIC_ACKNOWLEDGE",
        0x13 => "RC_CMP_SWAP",
        0x14 => "RC_FETCH_ADD",
        0x16 => "RC_SEND_LAST_INV",
        0x17 => "RC_SEND_ONLY_INV",
        0x20 => "UC_SEND_FIRST",
        0x21 => "UC_SEND_MIDDLE",
        0x22 => "UC_SEND_LAST",
        0x23 => "UC_SEND_LAST_IMM",
        0x24 => "UC_SEND_ONLY",
        0x25 => "UC_SEND_ONLY_IMM",
        0x26 => "UC_RDMA_WRITE_FIRST",
        0x27 => "UC_RDMA_WRITE_MIDDLE",
        0x28 => "UC_RDMA_WRITE_LAST",
        0x29 => "UC_RDMA_WRITE_LAST_IMM",
        0x2a => "UC_RDMA_WRITE_ONLY",
        0x2b => "UC_RDMA_WRITE_ONLY_IMM",
        0x64 => "UD_SEND_ONLY",
        0x65 => "UD_SEND_ONLY_IMM",
        0x81 => "CNP",
        _ => "UNKNOWN",
    }
}

/// Totals over a capture, for the human-readable table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub counters: SplitCounters,
    /// Frames per link type (before conversion).
    pub per_link: BTreeMap<&'static str, u64>,
    /// Malformed frames per error text.
    pub per_error: BTreeMap<&'static str, u64>,
    /// Frames per tunnel kind.
    pub per_tunnel: BTreeMap<&'static str, u64>,
    /// Split frames per class (indexed by `FrameClass as usize`).
    pub split_per_class: [u64; FrameClass::COUNT],
    /// Payload bytes of split frames, per class (indexed by `FrameClass as usize`).
    pub split_payload_bytes: [u64; FrameClass::COUNT],
    /// RoCE frames whose ICRC was checked / found good.
    pub icrc_checked: u64,
    pub icrc_ok: u64,
    /// Records captured shorter than they were on the wire (caplen < len).
    pub snap_truncated: u64,
    /// Captured bytes (converted frames).
    pub bytes: u64,
    /// pcapng interfaces whose records were skipped (unsupported link type), from the reader.
    pub skipped: Vec<SkippedInterface>,
    /// Records whose captured length exceeds their original length (kept as captured).
    pub caplen_exceeds_len: u64,
}

impl Summary {
    /// Packet records skipped by the reader (not frames, not in `counters`).
    pub fn skipped_records(&self) -> u64 {
        self.skipped.iter().map(|s| s.records).sum()
    }

    pub fn record(&mut self, frame: &Frame, r: &SplitResult) {
        self.counters.record(r);
        *self.per_link.entry(frame.link.as_str()).or_default() += 1;
        if let Some(e) = r.error {
            *self.per_error.entry(e.as_str()).or_default() += 1;
        }
        if let Some(t) = r.tunnel {
            *self.per_tunnel.entry(t.as_str()).or_default() += 1;
        }
        if r.split {
            self.split_per_class[r.class as usize] += 1;
            self.split_payload_bytes[r.class as usize] += u64::from(r.payload_len.unwrap_or(0));
        }
        if let Some(ok) = r.roce.and_then(|ro| ro.icrc_ok) {
            self.icrc_checked += 1;
            self.icrc_ok += u64::from(ok);
        }
        if frame.caplen() < frame.len {
            self.snap_truncated += 1;
        }
        self.bytes += u64::from(frame.caplen());
    }

    /// Writes the human-readable summary.
    pub fn write_table(&self, w: &mut dyn Write, title: &str, cfg: &SplitConfig) -> io::Result<()> {
        let c = &self.counters;
        let links: Vec<String> = self
            .per_link
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(w, "{title}")?;
        writeln!(
            w,
            "  frames        {} ({} bytes captured)",
            c.frames, self.bytes
        )?;
        if !links.is_empty() {
            writeln!(w, "  link types    {}", links.join(", "))?;
        }
        writeln!(w, "  hds_thresh    {}", cfg.hds_thresh)?;
        writeln!(
            w,
            "  snap-truncated records (caplen < len): {}",
            self.snap_truncated
        )?;
        writeln!(
            w,
            "  records with caplen > len (kept as captured): {}",
            self.caplen_exceeds_len
        )?;
        writeln!(w, "  skipped records {}", self.skipped_records())?;
        for s in &self.skipped {
            writeln!(
                w,
                "    section {} interface {}: {} ({} records)",
                s.section, s.interface, s.reason, s.records
            )?;
        }
        writeln!(w)?;
        writeln!(
            w,
            "  {:<10} {:>9} {:>9} {:>9} {:>14}",
            "class", "frames", "split", "unsplit", "split payload"
        )?;
        for i in 1..FrameClass::COUNT {
            let Some(class) = FrameClass::from_u8(i as u8) else {
                continue;
            };
            let n = c.per_class[i];
            let split = self.split_per_class[i];
            writeln!(
                w,
                "  {:<10} {:>9} {:>9} {:>9} {:>14}",
                class.as_str(),
                n,
                split,
                n - split.min(n),
                self.split_payload_bytes[i]
            )?;
        }
        writeln!(
            w,
            "  {:<10} {:>9} {:>9} {:>9} {:>14}",
            "total",
            c.frames,
            c.split,
            c.not_split,
            self.split_payload_bytes.iter().sum::<u64>()
        )?;
        writeln!(w)?;
        writeln!(w, "  not split, by reason:")?;
        for i in 1..NoSplitReason::COUNT {
            if let Some(reason) = NoSplitReason::from_u8(i as u8) {
                writeln!(w, "    {:<21} {:>9}", reason.as_str(), c.per_reason[i])?;
            }
        }
        let malformed = c.per_class[FrameClass::Malformed as usize];
        writeln!(w, "  malformed     {malformed}")?;
        for (e, n) in &self.per_error {
            writeln!(w, "    {e:<28} {n:>9}")?;
        }
        writeln!(
            w,
            "  ICRC          {} checked, {} ok, {} bad",
            self.icrc_checked,
            self.icrc_ok,
            self.icrc_checked - self.icrc_ok
        )?;
        let tunnels = ["vxlan", "geneve"]
            .iter()
            .map(|t| format!("{t} {}", self.per_tunnel.get(t).copied().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(w, "  tunnelled     {} ({tunnels})", c.tunnelled)
    }
}

/// An error while inspecting: the capture could not be read (the frames before the error
/// have been reported), or the output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("writing output: {0}")]
    Output(#[source] io::Error),
}

/// Runs the split decision over every frame of `reader`, calling `on_frame` for each, and
/// returns the totals.
pub fn inspect<R: Read>(
    reader: &mut CaptureReader<R>,
    cfg: &SplitConfig,
    mut on_frame: impl FnMut(&Frame, &SplitResult) -> io::Result<()>,
) -> Result<Summary, InspectError> {
    let mut summary = Summary::default();
    while let Some(frame) = reader.next_frame()? {
        let r = split(&frame.data, cfg);
        summary.record(&frame, &r);
        on_frame(&frame, &r).map_err(InspectError::Output)?;
    }
    summary.skipped = reader.skipped().to_vec();
    summary.caplen_exceeds_len = reader.caplen_exceeds_len();
    Ok(summary)
}

/// Writes one JSON line for a frame.
pub fn write_json_line(w: &mut dyn Write, frame: &Frame, r: &SplitResult) -> io::Result<()> {
    serde_json::to_writer(&mut *w, &FrameRecord::new(frame, r)).map_err(io::Error::from)?;
    w.write_all(b"\n")
}

/// The last line of `splitrx inspect --json` when the reader skipped records or met records
/// with caplen > len (it has no `frame` key).
#[derive(Serialize, Debug)]
pub struct ReaderRecord<'a> {
    pub skipped_records: u64,
    pub skipped: &'a [SkippedInterface],
    pub caplen_exceeds_len: u64,
}

/// Writes the [`ReaderRecord`] line, if there is anything to report.
pub fn write_json_trailer(w: &mut dyn Write, summary: &Summary) -> io::Result<()> {
    if summary.skipped.is_empty() && summary.caplen_exceeds_len == 0 {
        return Ok(());
    }
    let rec = ReaderRecord {
        skipped_records: summary.skipped_records(),
        skipped: &summary.skipped,
        caplen_exceeds_len: summary.caplen_exceeds_len,
    };
    serde_json::to_writer(&mut *w, &rec).map_err(io::Error::from)?;
    w.write_all(b"\n")
}

/// A one-line description of a capture for the summary title.
pub fn title(path: &str, format: CaptureFormat) -> String {
    format!("{path} ({})", format.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::{convert, LinkType};

    fn frame(link: LinkType, rec: &[u8]) -> Frame {
        let data = convert(link, rec);
        Frame {
            number: 1,
            link,
            len: data.len() as u32,
            data,
        }
    }

    #[test]
    fn conversion_edge_cases_classify_as_documented() {
        let cfg = SplitConfig::default();
        // Cut inside the SLL header -> empty frame -> malformed.
        let f = frame(LinkType::LinuxSll, &[0u8; 10]);
        assert_eq!(f.caplen(), 0);
        assert_eq!(split(&f.data, &cfg).class, FrameClass::Malformed);
        // Raw IP with version nibble 5 -> IPv4 ethertype -> bad ip version.
        let mut ip = [0u8; 20];
        ip[0] = 0x55;
        let r = split(&frame(LinkType::RawIp, &ip).data, &cfg);
        assert_eq!(
            (r.class, r.error.map(|e| e.as_str())),
            (FrameClass::Malformed, Some("bad ip version"))
        );
        // SLL protocol 0x0004 (802.2 LLC) -> non-IP.
        let mut sll = vec![0u8; 16];
        sll[15] = 4;
        sll.extend_from_slice(&[0x42; 30]);
        assert_eq!(
            split(&frame(LinkType::LinuxSll, &sll).data, &cfg).class,
            FrameClass::NonIp
        );
    }

    #[test]
    fn json_line_is_exact() {
        // IPv4/UDP, 4 payload bytes, from raw IP.
        let mut ip = vec![
            0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 12, 0, 0, 1, 2, 3, 4]);
        let f = frame(LinkType::RawIp, &ip);
        let r = split(&f.data, &SplitConfig::default());
        let mut out = Vec::new();
        write_json_line(&mut out, &f, &r).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"frame\":1,\"link\":\"raw_ip\",\"len\":46,\"caplen\":46,\"class\":\"udp\",\
             \"split\":true,\"reason\":\"split\",\"payload_offset\":42,\"payload_len\":4,\
             \"l3_offset\":14,\"l4_offset\":34,\"tunnel\":null,\"roce\":null,\"error\":null}\n"
        );
        let mut s = Summary::default();
        s.record(&f, &r);
        assert_eq!(s.split_per_class[FrameClass::Udp as usize], 1);
        assert_eq!(s.split_payload_bytes[FrameClass::Udp as usize], 4);
        assert_eq!(
            (s.bytes, s.snap_truncated, s.per_link["raw_ip"]),
            (46, 0, 1)
        );
    }
}
