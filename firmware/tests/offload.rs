//! Issue 9, features 8 and 9 in the firmware: the MAC's RX timestamp and the checksum verdict
//! reach the completion exactly, the verdicts are counted, and a queue region written for
//! ABI 1.x (32-byte completions) is refused at CreateRxQueue.

use splitrx_firmware::stats::{dev, q};
use splitrx_firmware::testing::*;
use splitrx_shared::abi::{
    abi_version, rx_flags, CreateRxQueueArgs, CtrlOp, CtrlStatus, PoolMode, QueueHeader, RingKind,
    RxCompletion, ABI_VERSION,
};
use std::mem::offset_of;
use zerocopy::little_endian::{U16, U32, U64};

/// The textbook RFC 1071 loop, written independently of `splitrx_shared::wire::checksum`.
fn naive_sum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut s: u64 = 0;
    for c in bytes.chunks(2) {
        s += ((c[0] as u64) << 8) | *c.get(1).unwrap_or(&0) as u64;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Ethernet + IPv4 10.1.0.1 -> 10.1.0.2 (protocol `proto`, `ip_len` bytes, right header
/// checksum), zero-filled up to `len` bytes.
fn eth_ipv4(len: usize, proto: u8, ip_len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
    f[22] = 64;
    f[23] = proto;
    f[26..30].copy_from_slice(&[10, 1, 0, 1]);
    f[30..34].copy_from_slice(&[10, 1, 0, 2]);
    let c = !naive_sum(&[&f[14..34]]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f
}

/// Ethernet + IPv4 + TCP (20-byte header) + `payload`, with right IPv4 and TCP checksums.
fn tcp4(payload: &[u8]) -> Vec<u8> {
    let mut f = eth_ipv4(54, 6, 40 + payload.len());
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&5201u16.to_be_bytes());
    f[46] = 5 << 4;
    f[47] = 0x18;
    f.extend_from_slice(payload);
    let tcp_len = (20 + payload.len()) as u16;
    let mut pseudo = [0u8; 12];
    pseudo[..8].copy_from_slice(&f[26..34]);
    pseudo[9] = 6;
    pseudo[10..].copy_from_slice(&tcp_len.to_be_bytes());
    let c = !naive_sum(&[&pseudo, &f[34..]]);
    f[50..52].copy_from_slice(&c.to_be_bytes());
    f
}

/// Ethernet + IPv4 + UDP with checksum 0 ("none") + `payload`.
fn udp4_no_csum(payload: &[u8]) -> Vec<u8> {
    let mut f = eth_ipv4(42, 17, 28 + payload.len());
    f[34..36].copy_from_slice(&1000u16.to_be_bytes());
    f[36..38].copy_from_slice(&2000u16.to_be_bytes());
    f[38..40].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn setup() -> (Testbed, HostPool, HostPool, HostQueue) {
    let mut tb = Testbed::new();
    let (s, hp) = tb.register_pool(1, HDR_POOL_BUS, 64, 512, PoolMode::Page, 0);
    assert_eq!(s, CtrlStatus::Ok);
    let (s, pp) = tb.register_pool(2, PAY_POOL_BUS, 64, 4096, PoolMode::Page, 0);
    assert_eq!(s, CtrlStatus::Ok);
    let (s, mut q) = tb.create_queue(0, 1, 2, 0, 64, 64);
    assert_eq!(s, CtrlStatus::Ok);
    for i in 0..64 {
        assert!(q.hdr_fill.push(&hp.desc(i)).unwrap());
        assert!(q.pay_fill.push(&pp.desc(i)).unwrap());
    }
    (tb, hp, pp, q)
}

/// Feeds `frames` with the given MAC timestamps and returns their completions.
fn receive(tb: &mut Testbed, q: &mut HostQueue, frames: &[(Vec<u8>, u64)]) -> Vec<RxCompletion> {
    let mac = &mut tb.fw.hal_mut().rx;
    for (f, ts) in frames {
        mac.frames.push_back((f.clone(), *ts));
    }
    while tb.fw.poll() {}
    q.completions()
}

#[test]
fn mac_timestamps_reach_the_completion_exactly() {
    let (mut tb, _, _, mut q) = setup();
    let stamps = [0u64, 1, 1_700_000_000_123_456_789, u64::MAX];
    let frames: Vec<(Vec<u8>, u64)> = stamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| (tcp4(&vec![i as u8; 100 + i]), ts))
        .collect();
    let cs = receive(&mut tb, &mut q, &frames);
    let got: Vec<u64> = cs.iter().map(|c| c.rx_timestamp_ns.get()).collect();
    assert_eq!(got, stamps);
    assert_eq!(
        tb.fw.device_stats().get(dev::LAST_RX_TIMESTAMP),
        u64::MAX,
        "the device counter still follows the last frame"
    );
    for c in &cs {
        assert_eq!(c._reserved, [0; 6]);
    }
}

#[test]
fn checksum_verdicts_flags_counters_and_complete_sum() {
    let (mut tb, _, _, mut q) = setup();
    let payload: Vec<u8> = (0..1001u32).map(|i| (i * 31 + 7) as u8).collect();
    let good = tcp4(&payload);
    let mut bad_l4 = good.clone();
    *bad_l4.last_mut().unwrap() ^= 0x01;
    let mut bad_ip = good.clone();
    bad_ip[22] = 63; // TTL changed, header checksum not updated
    let none = udp4_no_csum(&payload);
    let frames = [(good, 10), (bad_l4, 20), (bad_ip, 30), (none, 40)];
    let cs = receive(&mut tb, &mut q, &frames);
    let got: Vec<(u16, u16, u64)> = cs
        .iter()
        .map(|c| {
            (
                c.flags.get() & (rx_flags::CSUM_OK | rx_flags::CSUM_BAD),
                c.csum_complete.get(),
                c.rx_timestamp_ns.get(),
            )
        })
        .collect();
    let mut flipped = payload.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    let sum = naive_sum(&[&payload]);
    assert_eq!(
        got,
        [
            (rx_flags::CSUM_OK, sum, 10),
            (rx_flags::CSUM_BAD, naive_sum(&[&flipped]), 20),
            (rx_flags::CSUM_BAD, sum, 30),
            (0, sum, 40),
        ]
    );
    let st = tb.fw.queue_stats(0).unwrap();
    assert_eq!(
        (
            st.get(q::CSUM_OK),
            st.get(q::CSUM_BAD),
            st.get(q::CSUM_NONE)
        ),
        (1, 2, 1)
    );
    // Off (benchmarks only): no verdict, no sum, every frame counted as none.
    tb.fw.set_csum_offload(false);
    let cs = receive(&mut tb, &mut q, &[(tcp4(&payload), 50)]);
    assert_eq!(
        (
            cs[0].flags.get() & rx_flags::CSUM_OK,
            cs[0].csum_complete.get()
        ),
        (0, 0)
    );
    assert_eq!(cs[0].rx_timestamp_ns.get(), 50);
    assert_eq!(tb.fw.queue_stats(0).unwrap().get(q::CSUM_NONE), 2);
}

/// A queue region whose header says ABI 1.0 (with the 32-byte completion entries 1.0 had) is
/// refused at CreateRxQueue with `BadRegion` (the header's AbiMismatch), counted as a command
/// error, and no queue exists afterwards; so is a 2.0 header with 32-byte completion entries.
#[test]
fn an_abi_1_queue_region_is_refused_at_create() {
    let mut tb = Testbed::new();
    tb.register_pool(1, HDR_POOL_BUS, 16, 256, PoolMode::Page, 0);
    tb.register_pool(2, PAY_POOL_BUS, 16, 4096, PoolMode::Page, 0);
    let bus = queue_region_bus(0);
    let kinds = [
        (RingKind::HeaderFill, 16),
        (RingKind::PayloadFill, 16),
        (RingKind::RxCompletion, 16),
    ];
    let args = CreateRxQueueArgs {
        region_bus_addr: U64::new(bus),
        region_len: U64::new(QUEUE_REGION_LEN),
        queue: U16::new(0),
        hdr_pool: 1,
        pay_pool: 2,
        hds_thresh: U32::new(0),
    };
    let cq_entry_size = bus + (offset_of!(QueueHeader, rings) + 2 * 16 + 14) as u64;
    let version = bus + offset_of!(QueueHeader, abi_version) as u64;
    for (abi, entry) in [(abi_version(1, 0), 32u16), (ABI_VERSION, 32)] {
        layout_region(&tb.mem, bus, QUEUE_REGION_LEN, 0, &kinds);
        assert!(tb.mem.write(version, &abi.to_le_bytes()));
        assert!(tb.mem.write(cq_entry_size, &entry.to_le_bytes()));
        let errs = tb.fw.device_stats().get(dev::CMD_ERR);
        assert_eq!(
            tb.status(CtrlOp::CreateRxQueue, &args),
            CtrlStatus::BadRegion,
            "abi {abi:#x}, entry {entry}"
        );
        assert_eq!(tb.fw.device_stats().get(dev::CMD_ERR), errs + 1);
        assert!(tb.fw.queue(0).is_none());
    }
    // The same region written for 2.0 is accepted.
    layout_region(&tb.mem, bus, QUEUE_REGION_LEN, 0, &kinds);
    assert_eq!(tb.status(CtrlOp::CreateRxQueue, &args), CtrlStatus::Ok);
    assert_eq!(size_of::<RxCompletion>(), 48);
}
