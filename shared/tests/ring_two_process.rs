//! Two PROCESSES share one ring through a `MAP_SHARED` file mapping.
//!
//! The test process creates and sizes a file in a temporary directory, maps it, initialises a
//! ring in it and re-runs its own binary as a child (`--exact <this test>`, with
//! `SPLITRX_RING_CHILD=<path>` in the environment). The child maps the same file, attaches the
//! `Producer` and pushes `N` 16-byte entries (sequence number + pseudo-random payload word)
//! in reserve/commit batches, then prints an order-sensitive checksum of what it produced.
//! The parent consumes with `pop_into`, checks that sequence numbers arrive exactly in order,
//! folds the payload words into the same checksum and compares it with the child's. Both sides
//! are bounded in time: the parent kills the child and fails after `TIMEOUT`.
#![cfg(not(loom))]

mod ring_util;

use memmap2::MmapMut;
use ring_util::E16;
use splitrx_shared::ring::{self, ring_bytes, Consumer, Producer};
use std::fs::OpenOptions;
use std::io::Read;
use std::process::{Command, Stdio};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

const N: u64 = 10_000_000;
const CAP: u32 = 4096;
const BATCH: u32 = 32;
const TIMEOUT: Duration = Duration::from_secs(90);
const CHILD_ENV: &str = "SPLITRX_RING_CHILD";
const TEST_NAME: &str = "two_processes_share_one_ring";

/// Order-sensitive running checksum of the payload words.
fn fold(h: u64, e: &E16) -> u64 {
    (h ^ e.val)
        .wrapping_mul(0x0000_0100_0000_01b3)
        .rotate_left(7)
}

/// The entry with sequence number `seq`: the payload is a splitmix64 of it.
fn entry(seq: u64) -> E16 {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    E16 {
        seq,
        val: z ^ (z >> 31),
    }
}

fn map(path: &str) -> (std::fs::File, MmapMut) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open ring file");
    // SAFETY: the file is private to this test's temporary directory; the only other mapping is
    // the peer process's, which accesses it through the ring protocol.
    let map = unsafe { MmapMut::map_mut(&file) }.expect("mmap");
    assert!(map.len() as u64 >= ring_bytes(CAP, 16));
    (file, map)
}

/// Waits on an empty/full ring: spin a little, then give the core away (2-core machines).
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

fn child_producer(path: &str) {
    let (_file, mut map) = map(path);
    let base = NonNull::new(map.as_mut_ptr()).unwrap();
    // SAFETY: the mapping is page-aligned, covers the ring and outlives `p`; the parent
    // attached only a Consumer.
    let mut p = unsafe { Producer::<E16>::attach(base, CAP) }.expect("attach producer");
    let start = Instant::now();
    let mut seq = 0u64;
    let mut h = 0u64;
    let mut spins = 0;
    while seq < N {
        let want = BATCH.min((N - seq) as u32);
        let mut w = p.reserve(want).expect("producer: ring corrupt");
        let n = w.len();
        for i in 0..n {
            let e = entry(seq + u64::from(i));
            h = fold(h, &e);
            w.write(i, &e);
        }
        w.commit(n);
        seq += u64::from(n);
        if n == 0 {
            backoff(&mut spins);
            if spins & 4095 == 0 && start.elapsed() > TIMEOUT {
                panic!("child: parent stopped consuming at {seq}");
            }
        } else {
            spins = 0;
        }
    }
    assert_eq!(p.stats().entries, N);
    println!("CHILD-CHECKSUM {h:016x} {}", p.stats().entries);
}

#[test]
fn two_processes_share_one_ring() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        return child_producer(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.shm");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    file.set_len(ring_bytes(CAP, 16)).unwrap();
    drop(file);
    let path = path.to_str().unwrap().to_owned();
    let (_file, mut map) = map(&path);
    let base = NonNull::new(map.as_mut_ptr()).unwrap();
    // SAFETY: the mapping is page-aligned, sized for the ring and outlives the Consumer; no
    // handle exists yet (the child starts below).
    unsafe { ring::init::<E16>(base, CAP) }.unwrap();
    // SAFETY: as above; the only Consumer.
    let mut c = unsafe { Consumer::<E16>::attach(base, CAP) }.unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let start = Instant::now();
    let fail = |child: &mut std::process::Child, why: String| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{why}");
    };

    let mut buf = [E16::default(); BATCH as usize];
    let mut next = 0u64;
    let mut h = 0u64;
    let mut spins = 0u32;
    while next < N {
        let n = match c.pop_into(&mut buf) {
            Ok(n) => n,
            Err(e) => fail(&mut child, format!("consumer: {e}")),
        };
        for e in &buf[..n] {
            if e.seq != next {
                fail(&mut child, format!("entry {next} arrived as seq {}", e.seq));
            }
            h = fold(h, e);
            next += 1;
        }
        if n == 0 {
            backoff(&mut spins);
            if spins & 1023 == 0 {
                if start.elapsed() > TIMEOUT {
                    fail(&mut child, format!("timeout after {next} entries"));
                }
                if let Ok(Some(st)) = child.try_wait() {
                    fail(
                        &mut child,
                        format!("child exited ({st}) after {next} entries"),
                    );
                }
            }
        } else {
            spins = 0;
        }
    }
    let consumed_in = start.elapsed();
    // The child exits right after its last commit; bound the wait too.
    let status = loop {
        match child.try_wait().unwrap() {
            Some(st) => break st,
            None if start.elapsed() > TIMEOUT => fail(&mut child, "child did not exit".into()),
            None => std::thread::sleep(Duration::from_millis(2)),
        }
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "child failed: {status}\n{out}");
    let line = out
        .lines()
        .find_map(|l| l.split_once("CHILD-CHECKSUM ").map(|(_, rest)| rest.trim()))
        .unwrap_or_else(|| panic!("no checksum line in child output:\n{out}"));
    assert_eq!(line, format!("{h:016x} {N}"), "checksums differ");
    assert_eq!(c.stats().entries, N);
    assert_eq!(c.stats().corrupt, 0);
    assert_eq!(c.pop(), Ok(None));
    eprintln!(
        "two-process ring: {N} entries in {consumed_in:?} ({:.1} Mentries/s), {} producer-index loads",
        N as f64 / consumed_in.as_secs_f64() / 1e6,
        c.stats().peer_refresh
    );
}
