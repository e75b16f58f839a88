// What the image and the host side of qemu-virt agree on besides board.toml: the board page's
// layout and the wire's limits. `include!`d by both (`image/src/page.rs`, `src/qemu.rs`), so
// it is written once. No items beyond plain constants.

/// "SPRQVBP1": the board page is initialised.
pub const MAGIC: u64 = 0x3150_4256_5152_5053;
/// Board-page fields: little-endian u64 at `8 * index`.
pub const F_MAGIC: usize = 0;
pub const F_STAGE: usize = 1;
pub const F_RX_FRAMES: usize = 2;
pub const F_RX_BYTES: usize = 3;
pub const F_FCS_ERRORS: usize = 4;
pub const F_TRUNCATED: usize = 5;
pub const F_TX_FRAMES: usize = 6;
pub const F_POLLS_BUSY: usize = 7;
pub const F_POLLS_IDLE: usize = 8;
pub const F_BOOT_ERROR: usize = 9;

/// Boot stages (`F_STAGE`).
pub const STAGE_BOOTING: u64 = 1;
pub const STAGE_WAITING_HOST: u64 = 2;
pub const STAGE_RUNNING: u64 = 3;
pub const STAGE_BOOT_FAILED: u64 = 4;
pub const STAGE_FAULT: u64 = 5;

/// QEMU's datagram backend reads each datagram into a buffer of this size (`NET_BUFSIZE`); a
/// longer one is cut.
pub const QEMU_MAX_DATAGRAM: usize = 4096 + 65536;
/// Bytes of the Ethernet FCS every datagram carries after its frame.
pub const FCS_LEN: usize = 4;
