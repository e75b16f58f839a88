//! Every capacity of the firmware, in one place. All tables are sized from these constants at
//! compile time: there is no heap. `docs/firmware.md` lists them with the RAM they cost.

/// RX queues (queue ids `0..MAX_QUEUES`).
pub const MAX_QUEUES: usize = 8;
/// Registered buffer pools (pool ids are any `u8` except 255; at most this many at once).
pub const MAX_POOLS: usize = 8;
/// Buffers per pool whose "posted" state the firmware tracks (one bit each: 8 KiB per pool).
pub const MAX_BUFFERS_PER_POOL: usize = 65536;
/// Fill descriptors a queue keeps in its local cache, per fill ring (header and payload).
pub const FILL_CACHE: usize = 32;
/// Fill descriptors taken from a fill ring in one peek/release.
pub const FILL_BATCH: u32 = 16;
/// Frames processed per [`crate::Firmware::poll`].
pub const RX_BATCH: usize = 32;
/// Control requests processed per [`crate::Firmware::poll`].
pub const CMD_BATCH: usize = 8;
/// Smallest header-pool buffer size: a split frame's headers must fit (Ethernet + 2 VLAN +
/// IPv6 with extension headers + TCP with options fit in 256 bytes in practice).
pub const MIN_HDR_BUF: u32 = 128;
/// Largest `align_log2` of a packed pool (4 KiB).
pub const MAX_ALIGN_LOG2: u8 = 12;
/// Longest frame the RSS hash input is taken from: IPv6 4-tuple = 36 bytes.
pub const RSS_INPUT_MAX: usize = 36;

/// Firmware version reported by GetVersion: major << 16 | minor << 8 | patch.
pub const FW_VERSION: u32 = 1 << 8; // 0.1.0
/// GetVersion capability bits.
pub mod caps {
    pub const PACKED: u32 = 1 << 0;
    pub const RSS: u32 = 1 << 1;
    pub const ROCE: u32 = 1 << 2;
}

const _: () = assert!(MAX_QUEUES <= u16::MAX as usize);
const _: () = assert!(MAX_POOLS <= 255);
const _: () = assert!(MAX_BUFFERS_PER_POOL & 31 == 0);
const _: () = assert!(FILL_BATCH as usize <= FILL_CACHE);
