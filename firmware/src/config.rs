//! Every capacity of the firmware, in one place. All tables are sized from these constants at
//! compile time: there is no heap. `docs/firmware.md` lists them with the RAM they cost.
//!
//! The table capacities come from a **capacity profile**, chosen by a cargo feature so that each
//! board gets what fits its RAM:
//!
//! | feature | for | RAM of the tables (bound checked below) |
//! |---|---|---|
//! | `cap-host` (default) | the sim board, A53-class cores | [`Profile::ram_bound`] of [`HOST`] |
//! | `cap-cortex-m` | Cortex-M4F/M7 class (the size probe) | [`Profile::ram_bound`] of [`CORTEX_M`] |
//!
//! At most one profile feature may be enabled (a build with both fails to compile); with none,
//! `cap-host` applies. [`PROFILE`] is the active one; the constants below are its fields.

/// One capacity profile: the sizes of the firmware's fixed tables.
#[derive(Clone, Copy, Debug)]
pub struct Profile {
    /// Name (`cap-...` feature).
    pub name: &'static str,
    /// RX queues (queue ids `0..queues`).
    pub queues: usize,
    /// Registered buffer pools at once.
    pub pools: usize,
    /// Buffers per pool whose "posted" state is tracked (one bit each).
    pub buffers_per_pool: usize,
    /// Fill descriptors a queue caches per fill ring (header and payload).
    pub fill_cache: usize,
    /// Fill descriptors taken from a fill ring in one peek/release.
    pub fill_batch: u32,
    /// Frames processed per [`crate::Firmware::poll`].
    pub rx_batch: usize,
    /// Control requests processed per [`crate::Firmware::poll`].
    pub cmd_batch: usize,
    /// RoCE QPs at once (a power of two: the QPN index is a heapless FnvIndexMap).
    pub qps: usize,
    /// RoCE memory regions at once (a power of two, as `qps`).
    pub mrs: usize,
    /// RoCE shared receive queues at once.
    pub srqs: usize,
    /// QPs that may have a send queue (the RC requester's window and state, one table slot
    /// each).
    pub sqs: usize,
    /// Saved READ / atomic requests per QP, for duplicate re-execution and atomic replay
    /// (rxe's responder resources, `max_dest_rd_atomic`).
    pub rd_atomic: usize,
    /// Largest path MTU a QP may be given (bytes; sizes the transmit frame buffer).
    pub max_mtu: u32,
    /// CM listens, and CM connections remembered (REP sent, until their DREQ), each.
    pub cm_conns: usize,
    /// Upper bound, in bytes, of the firmware's static RAM with this profile
    /// (`size_of::<Firmware<_>>()` minus the HAL); checked at compile time in `lib.rs`.
    pub ram_budget: usize,
}

impl Profile {
    /// Bytes of the pool table's posted bitmaps.
    pub const fn bitmap_bytes(&self) -> usize {
        self.pools * self.buffers_per_pool / 8
    }
    /// A lower bound of the tables' RAM from the capacities alone (bitmaps, fill caches of
    /// 16-byte entries, RSS tables, counters); the measured sizes are in docs/firmware.md.
    pub const fn ram_bound(&self) -> usize {
        self.bitmap_bytes()
            + self.queues * (2 * self.fill_cache * 16 + crate::stats::Q_COUNT * 8)
            + crate::stats::DEV_COUNT * 8
            + 4608
            + self.qps * 256
            + self.sqs * 256
            + self.mrs * 40
            + self.max_mtu as usize
    }
    const fn check(&self) {
        assert!(self.queues >= 1 && self.queues <= u16::MAX as usize);
        assert!(self.pools >= 2 && self.pools <= 255);
        assert!(self.buffers_per_pool >= 32 && self.buffers_per_pool.is_multiple_of(32));
        assert!(self.buffers_per_pool <= splitrx_shared::abi::BufRef::MAX_INDEX as usize + 1);
        assert!(self.fill_batch >= 1 && self.fill_batch as usize <= self.fill_cache);
        assert!(self.rx_batch >= 1 && self.cmd_batch >= 1);
        assert!(self.qps >= 2 && self.qps.is_power_of_two());
        assert!(self.mrs >= 2 && self.mrs.is_power_of_two());
        assert!(self.srqs >= 1 && self.rd_atomic >= 1 && self.rd_atomic <= 255);
        assert!(self.sqs >= 1 && self.sqs <= self.qps);
        assert!(self.max_mtu.is_power_of_two() && self.max_mtu >= 256 && self.max_mtu <= 4096);
        assert!(self.ram_bound() <= self.ram_budget);
    }
}

/// Host-class cores (the sim board, Cortex-A53): 8 queues, 8 pools of up to 65536 buffers,
/// 1024 RoCE QPs, 256 MRs, 64 SRQs, 4 KiB path MTU.
pub const HOST: Profile = Profile {
    name: "cap-host",
    queues: 8,
    pools: 8,
    buffers_per_pool: 65536,
    fill_cache: 32,
    fill_batch: 16,
    rx_batch: 32,
    cmd_batch: 8,
    qps: 1024,
    mrs: 256,
    srqs: 64,
    sqs: 64,
    rd_atomic: 4,
    max_mtu: 4096,
    cm_conns: 64,
    ram_budget: 768 << 10,
};

/// Cortex-M4F/M7 class (tens to hundreds of KiB of SRAM): 2 queues, 4 pools of up to 4096
/// buffers, 8 RoCE QPs, 8 MRs, 2 SRQs, 1 KiB path MTU.
pub const CORTEX_M: Profile = Profile {
    name: "cap-cortex-m",
    queues: 2,
    pools: 4,
    buffers_per_pool: 4096,
    fill_cache: 16,
    fill_batch: 8,
    rx_batch: 16,
    cmd_batch: 4,
    qps: 8,
    mrs: 8,
    srqs: 2,
    sqs: 2,
    rd_atomic: 2,
    max_mtu: 1024,
    cm_conns: 4,
    ram_budget: 24 << 10,
};

const _: () = HOST.check();
const _: () = CORTEX_M.check();

#[cfg(all(feature = "cap-host", feature = "cap-cortex-m"))]
compile_error!(
    "splitrx-firmware: enable at most one capacity profile feature (cap-host, cap-cortex-m)"
);

/// The active capacity profile.
#[cfg(feature = "cap-cortex-m")]
pub const PROFILE: Profile = CORTEX_M;
/// The active capacity profile.
#[cfg(not(feature = "cap-cortex-m"))]
pub const PROFILE: Profile = HOST;

/// RX queues (queue ids `0..MAX_QUEUES`).
pub const MAX_QUEUES: usize = PROFILE.queues;
/// Registered buffer pools (pool ids are any `u8` except 255; at most this many at once).
pub const MAX_POOLS: usize = PROFILE.pools;
/// Buffers per pool whose "posted" state the firmware tracks (one bit each).
pub const MAX_BUFFERS_PER_POOL: usize = PROFILE.buffers_per_pool;
/// Fill descriptors a queue keeps in its local cache, per fill ring (header and payload).
pub const FILL_CACHE: usize = PROFILE.fill_cache;
/// Fill descriptors taken from a fill ring in one peek/release.
pub const FILL_BATCH: u32 = PROFILE.fill_batch;
/// Frames processed per [`crate::Firmware::poll`].
pub const RX_BATCH: usize = PROFILE.rx_batch;
/// Control requests processed per [`crate::Firmware::poll`].
pub const CMD_BATCH: usize = PROFILE.cmd_batch;
/// RoCE QPs at once.
pub const MAX_QPS: usize = PROFILE.qps;
/// RoCE memory regions at once.
pub const MAX_MRS: usize = PROFILE.mrs;
/// RoCE shared receive queues at once.
pub const MAX_SRQS: usize = PROFILE.srqs;
/// Send queues (see [`Profile::sqs`]).
pub const MAX_SQS: usize = PROFILE.sqs;
/// Saved READ / atomic requests per QP (responder resources).
pub const RD_ATOMIC: usize = PROFILE.rd_atomic;
/// Largest path MTU (bytes).
pub const MAX_MTU: u32 = PROFILE.max_mtu;
/// CM listens and CM connections at once (each).
pub const CM_CONNS: usize = PROFILE.cm_conns;
/// Default CNP interval per QP (DCQCN notification point: at most one CNP per QP per
/// interval), nanoseconds; `Firmware::set_cnp_interval_ns` changes it.
pub const CNP_INTERVAL_NS: u64 = 50_000;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_profile_is_the_constants() {
        std::println!(
            "profile {}: tables {} B (budget {} B, bound {} B)",
            PROFILE.name,
            crate::TABLES_RAM,
            PROFILE.ram_budget,
            PROFILE.ram_bound()
        );
        assert_eq!(MAX_QUEUES, PROFILE.queues);
    }
}
