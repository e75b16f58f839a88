//! Board support for the ARM MPS2+ AN500 (Cortex-M7), real or QEMU's `mps2-an500`: start-up
//! (cortex-m-rt, `memory.x`), the defmt logger (semihosting under QEMU, RTT on a probe), exit
//! codes through semihosting, panic and HardFault handlers, and the split-agreement check the
//! on-target tests and the image run. See README.md.
#![no_std]

#[cfg(all(feature = "semihosting", feature = "rtt"))]
compile_error!("pick one logger: feature `semihosting` (QEMU) or `rtt` (probe)");
#[cfg(not(any(feature = "semihosting", feature = "rtt")))]
compile_error!("pick a logger: feature `semihosting` (QEMU) or `rtt` (probe)");

#[cfg(feature = "rtt")]
use defmt_rtt as _;
#[cfg(feature = "semihosting")]
use defmt_semihosting as _;

// The single-core critical section defmt's logger needs.
use cortex_m as _;
use cortex_m_rt::{exception, ExceptionFrame};
use splitrx_shared::split::{split, SplitConfig};

/// Ends the program with `code` (0 = success) through semihosting: QEMU exits with it, and
/// probe-rs sees the exit request at the semihosting breakpoint (`cargo xtask flash`).
pub fn exit(code: i32) -> ! {
    semihosting::process::exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("panic: {}", defmt::Display2Format(info));
    exit(101)
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    defmt::error!(
        "HardFault at pc {=u32:#010x} (lr {=u32:#010x})",
        ef.pc(),
        ef.lr()
    );
    exit(3)
}

/// The host's split decisions for every Ethernet frame of `testdata/captures`, written by the
/// shared crate's `write_target_split_blob` test (format documented there) and linked in.
pub static SPLIT_BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/split.blob"));

/// At most this many split configurations in a blob.
pub const MAX_CONFIGS: usize = 4;

/// A malformed blob (a stale or truncated build input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub struct BadBlob {
    /// Byte offset where reading failed.
    pub at: usize,
}

/// Reads the blob's little-endian fields; every read is bounds-checked.
#[derive(Debug)]
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], BadBlob> {
        let s = self
            .at
            .checked_add(n)
            .and_then(|end| self.b.get(self.at..end))
            .ok_or(BadBlob { at: self.at })?;
        self.at += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, BadBlob> {
        let s = self.bytes(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

/// One frame of the blob.
#[derive(Debug)]
pub struct Record<'a> {
    /// Capture file name.
    pub file: &'a str,
    /// 1-based frame number in the file.
    pub number: u32,
    /// The host's fingerprint under each configuration.
    pub fingerprints: [u32; MAX_CONFIGS],
    pub data: &'a [u8],
}

/// The blob's header and its frames.
#[derive(Debug)]
pub struct Blob<'a> {
    pub configs: heapless::Vec<SplitConfig, MAX_CONFIGS>,
    pub frames: u32,
    r: Reader<'a>,
    left: u32,
}

impl<'a> Blob<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Blob<'a>, BadBlob> {
        let mut r = Reader { b, at: 0 };
        if r.bytes(8)? != b"SRXSPLIT" {
            return Err(BadBlob { at: 0 });
        }
        let n = r.u32()? as usize;
        let mut configs = heapless::Vec::new();
        for _ in 0..n {
            let c = SplitConfig {
                hds_thresh: r.u32()?,
                verify_icrc: r.u32()? != 0,
            };
            configs.push(c).map_err(|_| BadBlob { at: r.at })?;
        }
        let frames = r.u32()?;
        Ok(Blob {
            configs,
            frames,
            r,
            left: frames,
        })
    }

    /// The next frame, `None` after the last; an error if the blob is cut short.
    pub fn next_record(&mut self) -> Result<Option<Record<'a>>, BadBlob> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let r = &mut self.r;
        let number = r.u32()?;
        let len = r.u32()? as usize;
        let name_len = r.bytes(1)?[0] as usize;
        let at = r.at;
        let file = core::str::from_utf8(r.bytes(name_len)?).map_err(|_| BadBlob { at })?;
        let mut fingerprints = [0; MAX_CONFIGS];
        for f in fingerprints.iter_mut().take(self.configs.len()) {
            *f = r.u32()?;
        }
        let data = r.bytes(len)?;
        Ok(Some(Record {
            file,
            number,
            fingerprints,
            data,
        }))
    }
}

/// What [`split_agreement`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub struct Agreement {
    /// Frames in the blob.
    pub frames: u32,
    /// Decisions compared (frames x configurations).
    pub compared: u32,
    /// Decisions equal to the host's.
    pub agreed: u32,
    /// Payload bytes the split decisions on this core found in split frames (reported so the
    /// work cannot be optimised away and as a sanity figure).
    pub payload_bytes: u64,
}

/// Runs `split` over every frame of `blob` under each of its configurations and compares
/// each result's fingerprint with the host's; logs every mismatch (file, frame, config and
/// this core's result).
pub fn split_agreement(blob: &[u8]) -> Result<Agreement, BadBlob> {
    let mut b = Blob::parse(blob)?;
    let mut a = Agreement {
        frames: b.frames,
        compared: 0,
        agreed: 0,
        payload_bytes: 0,
    };
    while let Some(rec) = b.next_record()? {
        for (i, cfg) in b.configs.iter().enumerate() {
            let r = split(rec.data, cfg);
            a.compared += 1;
            if r.split {
                a.payload_bytes += u64::from(r.payload_len.unwrap_or(0));
            }
            if r.fingerprint() == rec.fingerprints[i] {
                a.agreed += 1;
            } else {
                defmt::error!(
                    "{=str} #{=u32} (config {=usize}): this core decided {}",
                    rec.file,
                    rec.number,
                    i,
                    defmt::Debug2Format(&r)
                );
            }
        }
    }
    Ok(a)
}

/// Writes an Ethernet + IPv4 + TCP frame (10.0.0.1:`src_port` -> 10.0.0.2:`dst_port`, sequence
/// number `seq`, ACK|PSH, no options) carrying `payload_len` payload bytes 0, 1, 2, ... into
/// `buf` with the shared crate's emitters (their transmit half runs on target too) and returns
/// it. The TCP checksum is left 0.
pub fn tcp4_frame(
    buf: &mut [u8],
    src_port: u16,
    dst_port: u16,
    seq: u32,
    payload_len: usize,
) -> &[u8] {
    use splitrx_shared::wire::{
        ip, tcp, EtherType, EthernetFrame, EthernetRepr, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
    };
    let tcp = TcpRepr {
        src_port,
        dst_port,
        seq_number: seq,
        ack_number: 1,
        flags: tcp::flags::ACK | tcp::flags::PSH,
        window_len: 512,
        urgent_at: 0,
        options: &[],
        payload_len,
    };
    let ipv4 = Ipv4Repr {
        dscp_ecn: 0,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        ttl: 64,
        protocol: ip::TCP,
        src_addr: [10, 0, 0, 1],
        dst_addr: [10, 0, 0, 2],
        options: &[],
        payload_len: tcp.buffer_len(),
    };
    let eth = EthernetRepr {
        dst_addr: [0x02, 0, 0, 0, 0, 2],
        src_addr: [0x02, 0, 0, 0, 0, 1],
        vlans: Default::default(),
        ethertype: EtherType::IPV4,
    };
    let f = &mut buf[..eth.buffer_len(ipv4.buffer_len())];
    let l3 = eth.header_len();
    let l4 = l3 + ipv4.header_len();
    eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    ipv4.emit(&mut Ipv4Packet::new_unchecked(&mut f[l3..]));
    tcp.emit(&mut TcpPacket::new_unchecked(&mut f[l4..]));
    for (i, b) in f[l4 + tcp.header_len()..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}
