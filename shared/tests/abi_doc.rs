//! Checks that every byte table in docs/ABI.md matches the records in `splitrx_shared::abi`.

use core::mem::{offset_of, size_of};
use splitrx_shared::abi::*;
use splitrx_shared::bootstrap::Bootstrap;

/// (record, total size, [(field, offset)]) straight from the code.
macro_rules! layout {
    ($t:ident: $($f:ident),+) => {
        (stringify!($t), size_of::<$t>(), vec![$((stringify!($f), offset_of!($t, $f))),+])
    };
}

#[test]
fn abi_doc_tables_match_code() {
    let records = vec![
        layout!(QueueHeader: magic, abi_version, region_size, queue_id, ring_count, nic_status,
            nic_fault, _reserved, rings),
        layout!(RingDesc: offset, capacity, kind, entry_size),
        layout!(FillDesc: bus_addr, len, buf),
        layout!(RxCompletion: hdr_buf, pay_buf, pay_off, pay_len, hdr_len, flags, class, reason,
            queue, flow_hash, frame_len, rx_timestamp_ns, csum_complete, _reserved),
        layout!(RecvWqe: wr_id, bus_addr, len, lkey, buf, qpn),
        layout!(RoceCqe: wr_id, byte_len, imm_or_inv, qpn, src_qp, status, opcode, wc_flags, psn),
        layout!(SendWqe: wr_id, bus_addr, len, lkey, remote_addr, rkey, imm, opcode, flags, _pad,
            qpn, remote_qpn, remote_qkey, _rsvd),
        layout!(CtrlMsg: seq, opcode, status, body),
        layout!(VersionInfo: abi_version, fw_version, max_queues, max_pools, caps),
        layout!(RegisterPoolArgs: bus_base, window_len, buf_size, count, pool, mode, align_log2, _pad),
        layout!(PoolArgs: pool, _pad),
        layout!(CreateRxQueueArgs: region_bus_addr, region_len, queue, hdr_pool, pay_pool, hds_thresh),
        layout!(QueueArgs: queue, _pad),
        layout!(HdsThreshArgs: queue, _pad, hds_thresh),
        layout!(OutstandingArgs: queue, count, _pad, total, bufs),
        layout!(StatsArgs: queue, page),
        layout!(StatsPage: queue, first, count, total, values),
        layout!(RssArgs: queues, _pad, key),
        layout!(RegisterMrArgs: bus_addr, len, iova, rkey, lkey, access, pd),
        layout!(MrArgs: lkey),
        layout!(CreateQpArgs: qpn, pd, qp_type, flags, _pad, srqn, region_bus_addr, region_len),
        layout!(ModifyQpArgs: qpn, attr_mask, state, path_mtu, min_rnr_timer, _pad, dest_qpn,
            rq_psn, qkey, access, remote_gid, udp_sport, _pad2, sq_psn, timeout, retry_cnt,
            rnr_retry, max_rd_atomic),
        layout!(QpArgs: qpn),
        layout!(QpInfo: qpn, state, qp_type, _pad, expected_psn, msn, dest_qpn, held_wqes),
        layout!(CreateSrqArgs: srqn, pd, region_bus_addr, region_len),
        layout!(SrqArgs: srqn),
        layout!(CmListenArgs: service_id, qpn, _pad),
        layout!(Bootstrap: magic, abi_version, ctrl_offset, ctrl_len, generation, fw_state,
            fw_error, fw_generation, heartbeat, fw_version, _reserved),
    ];
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ABI.md"))
        .expect("docs/ABI.md");
    for (name, size, fields) in records {
        let heading = format!("### {name} ({size} bytes)");
        let start = doc
            .find(&heading)
            .unwrap_or_else(|| panic!("docs/ABI.md lacks `{heading}`"));
        let rows: Vec<(usize, usize, String)> = doc[start + heading.len()..]
            .lines()
            .skip_while(|l| l.trim().is_empty())
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| {
                let c: Vec<&str> = l.split('|').map(str::trim).collect();
                (
                    c[1].parse().unwrap(),
                    c[2].parse().unwrap(),
                    c[3].to_string(),
                )
            })
            .collect();
        // Field sizes from the code: the distance to the next field (no padding: alignment 1).
        let mut expected = Vec::new();
        for (i, (f, off)) in fields.iter().enumerate() {
            let end = fields.get(i + 1).map_or(size, |n| n.1);
            expected.push((*off, end - off, f.to_string()));
        }
        assert_eq!(
            rows, expected,
            "docs/ABI.md table for {name} disagrees with the code"
        );
    }
}

/// The `| # | name | meaning |` rows of the counter table that follows `intro` in docs/ABI.md.
fn counter_rows(doc: &str, intro: &str) -> Vec<(usize, String)> {
    let start = doc
        .find(intro)
        .unwrap_or_else(|| panic!("docs/ABI.md lacks `{intro}`"));
    doc[start + intro.len()..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            (c[1].parse().unwrap(), c[2].trim_matches('`').to_string())
        })
        .collect()
}

#[test]
fn abi_doc_stats_tables_match_code() {
    use splitrx_shared::stats::{DEV_NAMES, Q_NAMES};
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ABI.md"))
        .expect("docs/ABI.md");
    for (intro, names) in [
        ("Per-queue counters", Q_NAMES),
        ("Device-wide counters", DEV_NAMES),
    ] {
        let expected: Vec<(usize, String)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i, n.to_string()))
            .collect();
        assert_eq!(
            counter_rows(&doc, intro),
            expected,
            "docs/ABI.md {intro} table disagrees with splitrx_shared::stats"
        );
    }
}
