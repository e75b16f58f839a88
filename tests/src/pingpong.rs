//! The out-of-band exchange of rdma-core's `ibv_rc_pingpong` (libibverbs/examples), server
//! side: the client connects over TCP (port 18515 by default) and writes its destination as
//! one 52-byte message, `"%04x:%06x:%06x:%s"` (LID, QPN, PSN, GID as 32 hex digits of its
//! bytes in order, `gid_to_wire_gid`) and a NUL; the server connects its QP, answers with its
//! own destination in the same form, and the client writes `"done"` and a NUL.
//!
//! Then the traffic: the client SENDs `size` bytes, the server's receive completes and it SENDs
//! `size` bytes back, `iters` times (the client's buffer holds 0x7b in every byte unless it
//! runs with `--chk`, which makes it zeros).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Bytes of one destination message (`sizeof "0000:000000:000000:" + 32 hex digits + NUL`).
pub const MSG_LEN: usize = 52;

/// One side's destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Dest {
    pub lid: u16,
    pub qpn: u32,
    pub psn: u32,
    pub gid: [u8; 16],
}

impl Dest {
    /// The message `ibv_rc_pingpong` writes.
    pub fn to_wire(&self) -> [u8; MSG_LEN] {
        let mut s = format!("{:04x}:{:06x}:{:06x}:", self.lid, self.qpn, self.psn);
        for b in self.gid {
            s.push_str(&format!("{b:02x}"));
        }
        let mut m = [0u8; MSG_LEN];
        m[..s.len()].copy_from_slice(s.as_bytes());
        m
    }

    /// Reads a message (as `sscanf("%x:%x:%x:%s")` and `wire_gid_to_gid` would).
    pub fn parse(m: &[u8]) -> Result<Dest, String> {
        let text = m.split(|&b| b == 0).next().unwrap_or(&[]);
        let text = std::str::from_utf8(text).map_err(|_| "the destination is not text")?;
        let mut f = text.split(':');
        let mut num = |what: &str, max: u32| -> Result<u32, String> {
            let v = f
                .next()
                .and_then(|x| u32::from_str_radix(x, 16).ok())
                .ok_or_else(|| format!("no {what} in {text:?}"))?;
            if v > max {
                return Err(format!("{what} {v:#x} out of range in {text:?}"));
            }
            Ok(v)
        };
        let lid = num("LID", 0xffff)? as u16;
        let qpn = num("QPN", 0xff_ffff)?;
        let psn = num("PSN", 0xff_ffff)?;
        let g = f.next().ok_or_else(|| format!("no GID in {text:?}"))?;
        if g.len() != 32 || f.next().is_some() {
            return Err(format!("the GID is not 32 hex digits in {text:?}"));
        }
        let mut gid = [0u8; 16];
        for (i, b) in gid.iter_mut().enumerate() {
            *b = u8::from_str_radix(&g[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("the GID is not hex in {text:?}"))?;
        }
        Ok(Dest { lid, qpn, psn, gid })
    }
}

/// The server's end of one exchange.
#[derive(Debug)]
pub struct PingpongServer {
    s: TcpStream,
    pub client: Dest,
}

impl PingpongServer {
    /// Accepts one client within `timeout` and reads its destination.
    pub fn accept(l: &TcpListener, timeout: Duration) -> Result<PingpongServer, String> {
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        let t0 = Instant::now();
        let s = loop {
            match l.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if t0.elapsed() > timeout {
                        return Err(format!("no pingpong client within {timeout:?}"));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        s.set_nonblocking(false).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        let mut s = s;
        let mut m = [0u8; MSG_LEN];
        s.read_exact(&mut m)
            .map_err(|e| format!("reading the client's destination: {e}"))?;
        let client = Dest::parse(&m)?;
        Ok(PingpongServer { s, client })
    }

    /// Writes our destination (our QP is connected) and reads the client's `"done"`.
    pub fn answer(mut self, ours: &Dest) -> Result<(), String> {
        self.s
            .write_all(&ours.to_wire())
            .map_err(|e| format!("writing our destination: {e}"))?;
        let mut d = [0u8; 5];
        self.s
            .read_exact(&mut d)
            .map_err(|e| format!("reading the client's done: {e}"))?;
        if &d != b"done\0" {
            return Err(format!("the client ended with {d:?}, not \"done\""));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_destination_message_is_byte_for_byte_rc_pingpongs() {
        // What rc_pingpong prints for QPN 0x11, PSN 0x1234 and GID ::ffff:10.50.0.2.
        let d = Dest {
            lid: 0,
            qpn: 0x11,
            psn: 0x1234,
            gid: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 50, 0, 2],
        };
        let w = d.to_wire();
        assert_eq!(
            &w[..51],
            b"0000:000011:001234:00000000000000000000ffff0a320002"
        );
        assert_eq!(w[51], 0);
        assert_eq!(Dest::parse(&w), Ok(d));
        assert!(Dest::parse(b"0000:000011:001234:00ff\0").is_err());
        assert!(Dest::parse(b"0000:1000000:001234:00000000000000000000ffff0a320002\0").is_err());
        assert!(Dest::parse(&[0xff; MSG_LEN]).is_err());
    }
}
