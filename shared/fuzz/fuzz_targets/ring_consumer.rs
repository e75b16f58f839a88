//! Fuzz the ring against a hostile peer: the input IS the ring's shared memory (index blocks +
//! entries, copied into an exactly-sized 64-aligned allocation so ASan sees any out-of-bounds
//! access) followed by op bytes. A `Consumer` (or, in the second variant, a `Producer`) is
//! attached and driven by the ops, interleaved with the "peer" rewriting its index word, our
//! index word or entries at will.
//!
//! Asserts: no panic, no out-of-bounds access; every entry copied out equals the bytes of the
//! slot `idx & (capacity - 1)` at the time of the copy; once an op returns `Corrupt`, the
//! handle is stopped, `stats().corrupt == 1`, every later op returns exactly the same error and
//! the handle writes nothing to shared memory any more.
//!
//! Input: byte 0 = config (bits 0-2: capacity log2, bit 3: producer variant, bit 4: 3-byte
//! entries instead of 16-byte ones), then `ring_bytes` bytes of ring memory (zero-padded if
//! the input is short), then ops.
#![no_main]

use libfuzzer_sys::fuzz_target;
use splitrx_shared::ring::{
    self, ring_bytes, Consumer, Producer, RingEntry, RingError, CONSUMER_OFFSET, PRODUCER_OFFSET,
    RING_INDEX_BYTES,
};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

struct Mem {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl Mem {
    fn new(len: usize) -> Mem {
        let layout = Layout::from_size_align(len, 64).unwrap();
        // SAFETY: len >= RING_INDEX_BYTES > 0.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        Mem { ptr, layout }
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` initialised bytes; the handles only access them from this thread, and
        // never while this borrow is alive (it is taken between ops).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.layout.size()) }
    }
    fn fill(&self, src: &[u8]) {
        let n = src.len().min(self.layout.size());
        // SAFETY: in bounds; no handle exists yet.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr(), n) };
    }
    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: off is an index-word offset (4-aligned, in bounds); accessed atomically.
        unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast()) }
    }
    /// The peer writes `b` over the byte at `off % len` (an entry or padding).
    fn scribble(&self, off: usize, b: u8) {
        let off = RING_INDEX_BYTES + off % (self.layout.size() - RING_INDEX_BYTES).max(1);
        if off < self.layout.size() {
            // SAFETY: in bounds; the handles do not access memory concurrently (one thread).
            unsafe { self.ptr.as_ptr().add(off).write_volatile(b) };
        }
    }
}

impl Drop for Mem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Reads op bytes.
struct Ops<'a>(&'a [u8]);
impl Ops<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u32(&mut self) -> u32 {
        let mut v = [0u8; 4];
        for b in &mut v {
            *b = self.u8().unwrap_or(0);
        }
        u32::from_le_bytes(v)
    }
}

/// Peer actions shared by both variants. Returns true if `op` was one.
fn peer_op(mem: &Mem, peer_word: usize, own_word: usize, op: u8, ops: &mut Ops) -> bool {
    match op % 16 {
        10 => mem.word(peer_word).store(ops.u32(), Ordering::Release),
        11 => {
            let d = u32::from(ops.u8().unwrap_or(0));
            mem.word(peer_word).fetch_add(d, Ordering::Release);
        }
        12 => {
            let d = u32::from(ops.u8().unwrap_or(0));
            mem.word(peer_word).fetch_sub(d, Ordering::Release);
        }
        13 => mem.word(own_word).store(ops.u32(), Ordering::Release),
        14 => {
            let off = ops.u32() as usize;
            mem.scribble(off, ops.u8().unwrap_or(0));
        }
        _ => return false,
    }
    true
}

fn slot_bytes<T>(mem: &Mem, cap: u32, idx: u32) -> Vec<u8> {
    let size = size_of::<T>();
    let off = RING_INDEX_BYTES + (idx & (cap - 1)) as usize * size;
    mem.bytes()[off..off + size].to_vec()
}

/// Checks the stop contract around one op: `r` is the op's result.
fn track<X>(
    stopped: &mut Option<RingError>,
    r: Result<X, RingError>,
    is_stopped: bool,
    corrupt: u64,
) -> Option<X> {
    match (*stopped, r) {
        (Some(e), Err(got)) => assert_eq!(got, e, "a stopped handle returned a different error"),
        (Some(e), Ok(_)) => panic!("a stopped handle ({e:?}) returned Ok"),
        (None, Err(RingError::BadLayout)) => panic!("BadLayout after attach"),
        (None, Err(e)) => *stopped = Some(e),
        (None, Ok(x)) => {
            assert!(!is_stopped);
            assert_eq!(corrupt, 0);
            return Some(x);
        }
    }
    assert!(is_stopped);
    assert_eq!(corrupt, 1);
    None
}

fn run_consumer<T: RingEntry + Default + core::fmt::Debug>(mem: &Mem, cap: u32, mut ops: Ops) {
    // SAFETY: `mem` is exactly ring_bytes(cap, size_of::<T>()), 64-aligned, outlives `c`;
    // the only handle.
    let mut c = match unsafe { Consumer::<T>::attach(mem.ptr, cap) } {
        Ok(c) => c,
        Err(e) => return assert!(matches!(e, RingError::Corrupt(_))),
    };
    let mut stopped = None;
    let mut out = vec![T::default(); 48];
    while let Some(op) = ops.u8() {
        if peer_op(mem, PRODUCER_OFFSET, CONSUMER_OFFSET, op, &mut ops) {
            continue;
        }
        let before = stopped.map(|_| mem.bytes().to_vec());
        let idx = c.index();
        match op % 16 {
            0..=2 => {
                let want = slot_bytes::<T>(mem, cap, idx);
                let r = c.pop();
                if let Some(Some(v)) = track(&mut stopped, r, c.is_stopped(), c.stats().corrupt) {
                    assert_eq!(v.as_bytes(), &want[..]);
                    assert_eq!(c.index(), idx.wrapping_add(1));
                }
            }
            3..=5 => {
                let n = usize::from(op >> 4) * 3;
                let snap = mem.bytes().to_vec();
                let r = c.pop_into(&mut out[..n]);
                if let Some(k) = track(&mut stopped, r, c.is_stopped(), c.stats().corrupt) {
                    assert!(k <= n && k as u32 <= cap);
                    for (i, v) in out[..k].iter().enumerate() {
                        let s = RING_INDEX_BYTES
                            + (idx.wrapping_add(i as u32) & (cap - 1)) as usize * size_of::<T>();
                        assert_eq!(v.as_bytes(), &snap[s..s + size_of::<T>()]);
                    }
                    assert_eq!(c.index(), idx.wrapping_add(k as u32));
                }
            }
            6..=8 => {
                let max = u32::from(op >> 4) * 5;
                let rel = u32::from(ops.u8().unwrap_or(0));
                match c.peek(max) {
                    Err(e) => {
                        track::<()>(&mut stopped, Err(e), c.is_stopped(), c.stats().corrupt);
                    }
                    Ok(chunk) => {
                        assert!(stopped.is_none(), "a stopped consumer returned a chunk");
                        assert!(chunk.len() <= max.min(cap));
                        for i in 0..chunk.len() {
                            let want = slot_bytes::<T>(mem, cap, idx.wrapping_add(i));
                            assert_eq!(chunk.get(i).unwrap().as_bytes(), &want[..]);
                        }
                        assert!(chunk.get(chunk.len()).is_none());
                        let n = rel % (chunk.len() + 1);
                        chunk.release(n);
                        assert_eq!(c.index(), idx.wrapping_add(n));
                        assert_eq!(c.stats().corrupt, 0);
                    }
                }
            }
            _ => {
                let r = c.available();
                if let Some(n) = track(&mut stopped, r, c.is_stopped(), c.stats().corrupt) {
                    assert!(n <= cap);
                }
            }
        }
        if let Some(b) = before {
            assert_eq!(
                mem.bytes(),
                &b[..],
                "a stopped consumer wrote to shared memory"
            );
        }
    }
}

fn run_producer<T: RingEntry + Default + core::fmt::Debug + From<u8>>(
    mem: &Mem,
    cap: u32,
    mut ops: Ops,
) {
    // SAFETY: as in `run_consumer`.
    let mut p = match unsafe { Producer::<T>::attach(mem.ptr, cap) } {
        Ok(p) => p,
        Err(e) => return assert!(matches!(e, RingError::Corrupt(_))),
    };
    let mut stopped = None;
    while let Some(op) = ops.u8() {
        if peer_op(mem, CONSUMER_OFFSET, PRODUCER_OFFSET, op, &mut ops) {
            continue;
        }
        let before = stopped.map(|_| mem.bytes().to_vec());
        let idx = p.index();
        let v = T::from(op);
        match op % 16 {
            0..=2 => {
                let r = p.push(&v);
                if let Some(true) = track(&mut stopped, r, p.is_stopped(), p.stats().corrupt) {
                    assert_eq!(slot_bytes::<T>(mem, cap, idx), v.as_bytes());
                    assert_eq!(
                        mem.word(PRODUCER_OFFSET).load(Ordering::Relaxed),
                        idx.wrapping_add(1)
                    );
                }
            }
            3..=5 => {
                let items = vec![v; usize::from(op >> 4) * 3];
                let r = p.push_slice(&items);
                if let Some(k) = track(&mut stopped, r, p.is_stopped(), p.stats().corrupt) {
                    assert!(k <= items.len() && k as u32 <= cap);
                    for i in 0..k as u32 {
                        assert_eq!(slot_bytes::<T>(mem, cap, idx.wrapping_add(i)), v.as_bytes());
                    }
                    assert_eq!(p.index(), idx.wrapping_add(k as u32));
                }
            }
            6..=8 => {
                let n = u32::from(op >> 4) * 5;
                let k = u32::from(ops.u8().unwrap_or(0));
                match p.reserve(n) {
                    Err(e) => {
                        track::<()>(&mut stopped, Err(e), p.is_stopped(), p.stats().corrupt);
                    }
                    Ok(mut w) => {
                        assert!(stopped.is_none(), "a stopped producer returned a chunk");
                        assert!(w.len() <= n.min(cap));
                        for i in 0..w.len() {
                            w.write(i, &v);
                        }
                        let k = k % (w.len() + 1);
                        w.commit(k);
                        assert_eq!(p.index(), idx.wrapping_add(k));
                        assert_eq!(p.stats().corrupt, 0);
                    }
                }
            }
            _ => {
                let r = p.free();
                if let Some(n) = track(&mut stopped, r, p.is_stopped(), p.stats().corrupt) {
                    assert!(n <= cap);
                }
            }
        }
        if let Some(b) = before {
            assert_eq!(
                mem.bytes(),
                &b[..],
                "a stopped producer wrote to shared memory"
            );
        }
    }
}

#[derive(
    Clone, Copy, Default, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable,
)]
#[repr(C)]
struct E16([u32; 4]);
impl From<u8> for E16 {
    fn from(b: u8) -> E16 {
        E16([u32::from(b) * 0x0101_0101; 4])
    }
}

#[derive(
    Clone, Copy, Default, Debug, zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable,
)]
#[repr(C)]
struct E3([u8; 3]);
impl From<u8> for E3 {
    fn from(b: u8) -> E3 {
        E3([b, !b, b ^ 0x5a])
    }
}

fn run<T: RingEntry + Default + core::fmt::Debug + From<u8>>(cfg: u8, data: &[u8]) {
    let cap = 1u32 << (cfg & 7);
    let len = ring_bytes(cap, size_of::<T>()) as usize;
    let mem = Mem::new(len);
    mem.fill(data);
    let ops = Ops(data.get(len..).unwrap_or(&[]));
    if cfg & 8 == 0 {
        run_consumer::<T>(&mem, cap, ops);
    } else {
        run_producer::<T>(&mem, cap, ops);
    }
    // `init` always yields a healthy ring afterwards.
    // SAFETY: the handle is gone; `mem` covers the ring.
    unsafe { ring::init::<T>(mem.ptr, cap).unwrap() };
    assert!(mem.bytes()[..RING_INDEX_BYTES].iter().all(|&b| b == 0));
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    if cfg & 16 == 0 {
        run::<E16>(cfg, rest);
    } else {
        run::<E3>(cfg, rest);
    }
});
