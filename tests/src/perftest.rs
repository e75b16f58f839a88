//! perftest's out-of-band exchange, the server's side (TCP, without `-R`), as perftest
//! v4.5-0.17 (Debian 12's `perftest`) speaks it in `ib_write_bw`, `ib_read_bw`,
//! `ib_send_bw` and `ib_atomic_bw` (`src/perftest_communication.c`): so an unmodified perftest
//! client can run against a splitrx responder ([`crate::roce::serve`] with `perftest`).
//!
//! The exchange, every step "the server reads the client's, then writes its own":
//!
//! 1. versions: 16 bytes (`char version[16]`); the server answers the client's own (the
//!    client refuses versions below 5.70, and later sizes depend on the version);
//! 2. system data: `cycle_buffer` and `cache_line_size`, 4 bytes each, big-endian;
//! 3. the MTU: 2 bytes, `"%d"` of the `ibv_mtu` enum (the client takes the smaller);
//! 4. the QP's keys, once per QP: 108 bytes of text,
//!    `lid:out_reads:qpn:psn:rkey:vaddr:gid[16]:srqn:` in hex ([`Keys`]);
//! 5. the keys again after the client moved its QP to RTR, then once more (a barrier);
//!    `ib_send_bw` has one barrier more (after its receive WQEs are posted);
//! 6. the test runs; a half-duplex server only waits for:
//! 7. WRITE, READ, atomics: the keys once more (the client finished), the bandwidth reports
//!    (size, iterations, peak, average, message rate: 8 bytes each), the keys again and
//!    `"done\0"`; SEND: the keys again and `"done\0"` (no reports).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Bytes of a keys message with a GID.
pub const KEYS_LEN: usize = 108;

/// Which perftest the client runs (the exchange differs: see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Test {
    /// `ib_write_bw`
    Write,
    /// `ib_read_bw`
    Read,
    /// `ib_send_bw`
    Send,
    /// `ib_atomic_bw`
    Atomic,
}

impl Test {
    /// Barriers after the first exchange of keys, before the test runs.
    pub fn barriers(self) -> usize {
        match self {
            Test::Send => 3,
            _ => 2,
        }
    }
}

/// One side's QP keys (perftest's `struct pingpong_dest`, as exchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Keys {
    pub lid: u16,
    pub out_reads: u16,
    pub qpn: u32,
    pub psn: u32,
    pub rkey: u32,
    pub vaddr: u64,
    pub gid: [u8; 16],
    pub srqn: u32,
}

impl Keys {
    /// The 108-byte message (`KEY_PRINT_FMT_GID` and its terminating zero).
    pub fn format(&self) -> [u8; KEYS_LEN] {
        let mut s = format!(
            "{:04x}:{:04x}:{:06x}:{:06x}:{:08x}:{:016x}:",
            self.lid, self.out_reads, self.qpn, self.psn, self.rkey, self.vaddr
        );
        for b in self.gid {
            s.push_str(&format!("{b:02x}:"));
        }
        s.push_str(&format!("{:08x}:", self.srqn));
        let mut out = [0u8; KEYS_LEN];
        let n = s.len().min(KEYS_LEN - 1);
        out[..n].copy_from_slice(&s.as_bytes()[..n]);
        out
    }

    /// Reads a keys message (`None` when it is not one).
    pub fn parse(b: &[u8]) -> Option<Keys> {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        let s = std::str::from_utf8(&b[..end]).ok()?;
        let f: Vec<&str> = s.split(':').collect();
        if f.len() < 23 {
            return None;
        }
        let h = |i: usize| u64::from_str_radix(f[i], 16).ok();
        let mut gid = [0u8; 16];
        for (k, g) in gid.iter_mut().enumerate() {
            *g = u8::from_str_radix(f[6 + k], 16).ok()?;
        }
        Some(Keys {
            lid: h(0)? as u16,
            out_reads: h(1)? as u16,
            qpn: h(2)? as u32,
            psn: h(3)? as u32,
            rkey: h(4)? as u32,
            vaddr: h(5)?,
            gid,
            srqn: h(22)? as u32,
        })
    }
}

/// Why the exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum PerftestError {
    #[error("perftest out-of-band socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("perftest out-of-band exchange: {0}")]
    Protocol(String),
}

/// The server's end of one perftest connection.
#[derive(Debug)]
pub struct PerftestServer {
    sock: TcpStream,
    /// The client's version string (echoed).
    pub version: String,
    /// The MTU both settled on (`ibv_mtu` enum, 1..5).
    pub mtu: u8,
}

impl PerftestServer {
    /// Accepts the client (at most `timeout`) and runs steps 1–3 with `our_mtu` (`ibv_mtu`).
    pub fn accept(
        l: &TcpListener,
        timeout: Duration,
        our_mtu: u8,
    ) -> Result<PerftestServer, PerftestError> {
        l.set_nonblocking(true)?;
        let t0 = std::time::Instant::now();
        let sock = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if t0.elapsed() > timeout {
                        return Err(PerftestError::Protocol(format!(
                            "no perftest client connected in {timeout:?}"
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e.into()),
            }
        };
        sock.set_nonblocking(false)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_nodelay(true)?;
        let mut s = PerftestServer {
            sock,
            version: String::new(),
            mtu: our_mtu,
        };
        let v = s.xchg(16, None)?;
        let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
        s.version = String::from_utf8_lossy(&v[..end]).into_owned();
        s.write(&v)?;
        let num: f64 = s.version.trim().parse().unwrap_or(0.0);
        if num < 5.70 {
            return Err(PerftestError::Protocol(format!(
                "perftest version {:?}: the exchange of versions below 5.70 is not spoken",
                s.version
            )));
        }
        // System data: the client's values, then ours (a 4 KiB cycle buffer, 64-byte lines).
        s.xchg(4, Some(&4096u32.to_be_bytes()))?;
        s.xchg(4, Some(&64u32.to_be_bytes()))?;
        // The MTU: 2 bytes of "%d".
        let m = s.xchg(2, Some(&[b'0' + our_mtu, 0]))?;
        let theirs = m[0].wrapping_sub(b'0');
        if (1..=5).contains(&theirs) {
            s.mtu = s.mtu.min(theirs);
        }
        Ok(s)
    }

    fn read(&mut self, n: usize) -> Result<Vec<u8>, PerftestError> {
        let mut b = vec![0u8; n];
        self.sock.read_exact(&mut b)?;
        Ok(b)
    }

    fn write(&mut self, b: &[u8]) -> Result<(), PerftestError> {
        self.sock.write_all(b)?;
        Ok(())
    }

    /// Reads `n` bytes of the client's, then writes `ours` (the same length) or echoes.
    fn xchg(&mut self, n: usize, ours: Option<&[u8]>) -> Result<Vec<u8>, PerftestError> {
        let theirs = self.read(n)?;
        if let Some(o) = ours {
            self.write(o)?;
        }
        Ok(theirs)
    }

    /// Reads the client's keys message.
    pub fn read_keys(&mut self) -> Result<Keys, PerftestError> {
        let b = self.read(KEYS_LEN)?;
        Keys::parse(&b).ok_or_else(|| {
            PerftestError::Protocol(format!(
                "not a keys message: {:?}",
                String::from_utf8_lossy(&b)
            ))
        })
    }

    /// Writes our keys message.
    pub fn write_keys(&mut self, k: &Keys) -> Result<(), PerftestError> {
        self.write(&k.format())
    }

    /// One handshake (step 5 and 7): the client's keys, then ours.
    pub fn hand_shake(&mut self, ours: &Keys) -> Result<Keys, PerftestError> {
        let k = self.read_keys()?;
        self.write_keys(ours)?;
        Ok(k)
    }

    /// Step 7: waits (at most `timeout`) for the client to finish; WRITE/READ/atomics
    /// exchange the bandwidth reports (ours all zero: a half-duplex server measures nothing);
    /// then the close. Returns the client's reports: (bytes per message, iterations, peak,
    /// average (MB/s), message rate (Mpps)); all zero for SEND, whose client sends none.
    pub fn finish(
        &mut self,
        test: Test,
        ours: &Keys,
        timeout: Duration,
    ) -> Result<(u64, u64, f64, f64, f64), PerftestError> {
        self.sock.set_read_timeout(Some(timeout))?;
        if test == Test::Send {
            self.hand_shake(ours)?;
            let _ = self.write(b"done\0");
            return Ok((0, 0, 0.0, 0.0, 0.0));
        }
        self.hand_shake(ours)?;
        let mut v = [0u64; 5];
        for x in v.iter_mut() {
            let b = self.xchg(8, Some(&[0u8; 8]))?;
            *x = u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
        }
        self.hand_shake(ours)?;
        // Both sides write "done" and close; the client's may already be gone.
        let _ = self.write(b"done\0");
        let f = |x: u64| f64::from_bits(x);
        Ok((v[0], v[1], f(v[2]), f(v[3]), f(v[4])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_match_perftests_format() {
        let k = Keys {
            lid: 0,
            out_reads: 16,
            qpn: 0x11,
            psn: 0x8e_2c4f,
            rkey: 0x1e12,
            vaddr: 0x55d1_a3c4_5000,
            gid: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 50, 0, 2],
            srqn: 0,
        };
        let m = k.format();
        let text = std::str::from_utf8(&m[..KEYS_LEN - 1]).unwrap();
        assert_eq!(
            text,
            "0000:0010:000011:8e2c4f:00001e12:000055d1a3c45000:00:00:00:00:00:00:00:00:00:00:ff:ff:0a:32:00:02:00000000:"
        );
        assert_eq!(m[KEYS_LEN - 1], 0);
        assert_eq!(Keys::parse(&m), Some(k));
        assert_eq!(Keys::parse(b"junk"), None);
    }
}
