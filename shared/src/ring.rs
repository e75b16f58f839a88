//! Single-producer / single-consumer ring over raw shared memory.
//!
//! CONTRACT (implementation pending): see the module docs the ring helper writes.
//!
//! Memory layout of one ring (`ring_bytes(capacity, entry_size)` bytes, 64-byte aligned):
//! ```text
//! 0    producer index (u32, free-running), alone on its 128-byte block
//! 128  consumer index (u32, free-running), alone on its 128-byte block
//! 256  entries[capacity], entry i at 256 + (idx & (capacity-1)) * entry_size
//! ```

/// Bytes before the first entry: the two index blocks.
pub const RING_INDEX_BYTES: usize = 256;
/// Offset of the producer index inside the ring.
pub const PRODUCER_OFFSET: usize = 0;
/// Offset of the consumer index inside the ring.
pub const CONSUMER_OFFSET: usize = 128;

/// Total bytes one ring occupies.
pub const fn ring_bytes(capacity: u32, entry_size: usize) -> usize {
    RING_INDEX_BYTES + capacity as usize * entry_size
}
