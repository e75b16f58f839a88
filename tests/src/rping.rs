//! The server side of librdmacm's `rping` (librdmacm/examples/rping.c), as a state machine the
//! serve loop drives: per ping, the client SENDs a 16-byte advertisement of its source buffer
//! (`struct rping_rdma_info`: address, rkey, size, big-endian), the server RDMA READs it into
//! its own buffer and SENDs a 16-byte "go ahead"; the client SENDs the advertisement of its
//! sink buffer, the server RDMA WRITEs the string it read (`strlen + 1` bytes) there and SENDs
//! "go ahead" again. The client checks the sink against its source with `-V`.
//!
//! The client's source buffer of ping `k` is [`ping_data`]`(k, size)`: the server checks
//! every byte it read against it.

/// Bytes of `struct rping_rdma_info`.
pub const INFO_LEN: usize = 16;

/// The client's source buffer for ping `ping` (`rping_test_client`): `"rdma-ping-%d: "`, then
/// letters from `'A' + ping % 58` counting up through `'z'` and wrapping to `'A'`, and a NUL
/// in the last byte.
pub fn ping_data(ping: u32, size: usize) -> Vec<u8> {
    let mut b = format!("rdma-ping-{ping}: ").into_bytes();
    b.truncate(size.saturating_sub(1));
    let mut c = 65 + (ping % 58) as u8;
    while b.len() < size {
        b.push(c);
        c = if c >= 122 { 65 } else { c + 1 };
    }
    if let Some(l) = b.last_mut() {
        *l = 0;
    }
    b
}

/// `struct rping_rdma_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    pub addr: u64,
    pub rkey: u32,
    pub size: u32,
}

impl Info {
    pub fn parse(b: &[u8]) -> Option<Info> {
        if b.len() != INFO_LEN {
            return None;
        }
        Some(Info {
            addr: u64::from_be_bytes(b[0..8].try_into().ok()?),
            rkey: u32::from_be_bytes(b[8..12].try_into().ok()?),
            size: u32::from_be_bytes(b[12..16].try_into().ok()?),
        })
    }
    pub fn to_bytes(self) -> [u8; INFO_LEN] {
        let mut b = [0u8; INFO_LEN];
        b[0..8].copy_from_slice(&self.addr.to_be_bytes());
        b[8..12].copy_from_slice(&self.rkey.to_be_bytes());
        b[12..16].copy_from_slice(&self.size.to_be_bytes());
        b
    }
}

/// What the server does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// RDMA READ the client's buffer into ours (`len` bytes).
    Read(Info),
    /// SEND "go ahead".
    GoAhead,
    /// RDMA WRITE `len` bytes of our buffer to the client's.
    Write(Info, u32),
}

/// Where the server is in the ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum State {
    /// Waiting for the source advertisement.
    #[default]
    ReadAdv,
    Reading,
    /// Waiting for the sink advertisement.
    WriteAdv,
    Writing,
    /// Something was out of order: the server stops acting.
    Broken,
}

/// The rping server's progress and checks.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RpingRun {
    /// Pings completed (READ, go ahead, WRITE, go ahead).
    pub pings: u64,
    /// READs whose bytes equalled the client's source buffer, and those that did not.
    pub reads_verified: u64,
    pub reads_mismatched: u64,
    pub writes: u64,
    /// Why the exchange broke off, if it did.
    pub error: Option<String>,
    #[serde(skip)]
    state: State,
}

impl RpingRun {
    fn broken(&mut self, why: String) -> Option<Step> {
        self.state = State::Broken;
        self.error.get_or_insert(why);
        None
    }

    /// A SEND from the client (its receive completion's bytes).
    pub fn on_recv(&mut self, b: &[u8]) -> Option<Step> {
        let Some(info) = Info::parse(b) else {
            return self.broken(format!("a {}-byte SEND, not an advertisement", b.len()));
        };
        match self.state {
            State::ReadAdv => {
                self.state = State::Reading;
                Some(Step::Read(info))
            }
            State::WriteAdv => {
                self.state = State::Writing;
                Some(Step::Write(info, 0))
            }
            s => self.broken(format!("an advertisement in state {s:?}")),
        }
    }

    /// Our READ of ping `self.pings` completed with `data` in our buffer.
    pub fn on_read_done(&mut self, data: &[u8]) -> Option<Step> {
        if self.state != State::Reading {
            return self.broken("a READ completion out of turn".into());
        }
        if data == ping_data(self.pings as u32, data.len()) {
            self.reads_verified += 1;
        } else {
            self.reads_mismatched += 1;
        }
        self.state = State::WriteAdv;
        Some(Step::GoAhead)
    }

    /// Our WRITE completed.
    pub fn on_write_done(&mut self) -> Option<Step> {
        if self.state != State::Writing {
            return self.broken("a WRITE completion out of turn".into());
        }
        self.writes += 1;
        self.pings += 1;
        self.state = State::ReadAdv;
        Some(Step::GoAhead)
    }
}

/// `strlen(buf) + 1` bounded by the buffer (what rping WRITEs back).
pub fn c_string_len(b: &[u8]) -> usize {
    b.iter().position(|&c| c == 0).map_or(b.len(), |n| n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_source_buffer_is_rpings() {
        let d = ping_data(0, 64);
        assert_eq!(&d[..13], b"rdma-ping-0: ");
        assert_eq!(&d[13..16], b"ABC");
        assert_eq!(d[63], 0);
        let d = ping_data(1, 64);
        assert_eq!(&d[..16], b"rdma-ping-1: BCD");
        // 'z' wraps to 'A'.
        let d = ping_data(57, 40);
        assert_eq!(&d[14..17], b"zAB");
        assert_eq!(c_string_len(&d), 40);
    }

    #[test]
    fn the_state_machine_follows_one_ping_and_refuses_what_is_out_of_turn() {
        let mut r = RpingRun::default();
        let i = Info {
            addr: 0x1000,
            rkey: 7,
            size: 64,
        };
        assert_eq!(Info::parse(&i.to_bytes()), Some(i));
        assert_eq!(r.on_recv(&i.to_bytes()), Some(Step::Read(i)));
        assert_eq!(r.on_read_done(&ping_data(0, 64)), Some(Step::GoAhead));
        assert_eq!(r.on_recv(&i.to_bytes()), Some(Step::Write(i, 0)));
        assert_eq!(r.on_write_done(), Some(Step::GoAhead));
        assert_eq!((r.pings, r.reads_verified, r.writes), (1, 1, 1));
        assert_eq!(r.on_write_done(), None);
        assert!(r.error.is_some());
        assert_eq!(r.on_recv(&i.to_bytes()), None, "broken stays broken");
        let mut r = RpingRun::default();
        assert_eq!(r.on_recv(&[0; 15]), None);
    }
}
