//! InfiniBand management datagrams (MADs) as RoCEv2 carries them to QP1 (the GSI), and the
//! communication manager's messages (IB spec vol. 1, chapter 12: REQ, REP, RTU, REJ, DREQ,
//! DREP).
//!
//! A MAD is 256 bytes: a 24-byte common header ([`MadPacket`]) and 232 bytes of class data. On
//! RoCEv2 it is the payload of a UD SEND ONLY to QP 1 with a DETH whose Q_Key is
//! [`GSI_QKEY`]. CM messages are class [`class::CM`], version 2, method [`method::SEND`].
//!
//! Readers take the class data (`MadPacket::data`) and never panic: fields outside the buffer
//! read as zero (as everywhere in `wire`); `MadPacket::check_len` says whether the MAD is whole.
//! Writers ([`MadRepr::emit`], [`CmRep::emit`], ...) fill a 256-byte MAD; reserved bytes and
//! private data are zero.

use super::{be16, be32, be64, put, u8_at, Error, Result};

/// Bytes of a MAD.
pub const MAD_LEN: usize = 256;
/// Bytes of the common MAD header.
pub const HEADER_LEN: usize = 24;
/// The Q_Key of QP 1 (the GSI).
pub const GSI_QKEY: u32 = 0x8001_0000;

/// Management classes.
pub mod class {
    /// Communication management.
    pub const CM: u8 = 0x07;
}

/// MAD methods.
pub mod method {
    pub const SEND: u8 = 0x03;
}

/// CM attribute IDs (the message type).
pub mod attr {
    pub const REQ: u16 = 0x0010;
    pub const MRA: u16 = 0x0011;
    pub const REJ: u16 = 0x0012;
    pub const REP: u16 = 0x0013;
    pub const RTU: u16 = 0x0014;
    pub const DREQ: u16 = 0x0015;
    pub const DREP: u16 = 0x0016;
}

/// REJ reasons (IB spec table 112) the responder uses.
pub mod rej_reason {
    /// No QP available.
    pub const NO_QP: u16 = 1;
    /// Invalid service ID (nobody listens).
    pub const INVALID_SERVICE_ID: u16 = 8;
    /// Invalid transport service type.
    pub const INVALID_TRANSPORT: u16 = 9;
}

/// The common MAD header, zero-copy.
#[derive(Clone, Copy, Debug)]
pub struct MadPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MadPacket<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        MadPacket { buffer }
    }
    /// A view of a whole MAD (at least [`MAD_LEN`] bytes).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < MAD_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    pub fn base_version(&self) -> u8 {
        u8_at(self.b(), 0)
    }
    pub fn mgmt_class(&self) -> u8 {
        u8_at(self.b(), 1)
    }
    pub fn class_version(&self) -> u8 {
        u8_at(self.b(), 2)
    }
    /// The method (the response bit cleared).
    pub fn method(&self) -> u8 {
        u8_at(self.b(), 3) & 0x7f
    }
    pub fn status(&self) -> u16 {
        be16(self.b(), 4)
    }
    pub fn transaction_id(&self) -> u64 {
        be64(self.b(), 8)
    }
    pub fn attribute_id(&self) -> u16 {
        be16(self.b(), 16)
    }
    pub fn attribute_modifier(&self) -> u32 {
        be32(self.b(), 20)
    }
    /// The class data (232 bytes of a whole MAD; clamped).
    pub fn data(&self) -> &[u8] {
        let b = self.b();
        b.get(HEADER_LEN..b.len().min(MAD_LEN)).unwrap_or(&[])
    }
}

/// A MAD header as values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MadRepr {
    pub mgmt_class: u8,
    pub class_version: u8,
    pub method: u8,
    pub transaction_id: u64,
    pub attribute_id: u16,
}

impl MadRepr {
    /// A CM MAD (class 7, version 2, method SEND).
    pub fn cm(attribute_id: u16, transaction_id: u64) -> MadRepr {
        MadRepr {
            mgmt_class: class::CM,
            class_version: 2,
            method: method::SEND,
            transaction_id,
            attribute_id,
        }
    }
    /// Writes the header into `b[..24]` and zeroes the rest of the MAD (`b` must be at least
    /// [`MAD_LEN`] bytes).
    pub fn emit(&self, b: &mut [u8]) {
        b[..MAD_LEN].fill(0);
        b[0] = 1;
        b[1] = self.mgmt_class;
        b[2] = self.class_version;
        b[3] = self.method;
        put(b, 8, self.transaction_id.to_be_bytes());
        put(b, 16, self.attribute_id.to_be_bytes());
    }
}

/// Offsets inside the class data (after the 24-byte header).
mod req {
    pub const LOCAL_COMM_ID: usize = 0;
    pub const SERVICE_ID: usize = 8;
    pub const LOCAL_CA_GUID: usize = 16;
    pub const LOCAL_QPN: usize = 32;
    pub const INITIATOR_DEPTH: usize = 39;
    pub const TRANSPORT: usize = 43;
    pub const STARTING_PSN: usize = 44;
    pub const PKEY: usize = 48;
    pub const MTU: usize = 50;
    pub const SRQ: usize = 51;
    pub const PRIMARY_LOCAL_GID: usize = 56;
    pub const PRIMARY_REMOTE_GID: usize = 72;
    pub const PRIVATE_DATA: usize = 140;
}

/// A CM REQ (the active side asks to connect), read from the class data.
#[derive(Clone, Copy, Debug)]
pub struct CmReq<'a>(pub &'a [u8]);

impl CmReq<'_> {
    pub fn local_comm_id(&self) -> u32 {
        be32(self.0, req::LOCAL_COMM_ID)
    }
    pub fn service_id(&self) -> u64 {
        be64(self.0, req::SERVICE_ID)
    }
    pub fn local_ca_guid(&self) -> u64 {
        be64(self.0, req::LOCAL_CA_GUID)
    }
    /// The requester's QPN.
    pub fn local_qpn(&self) -> u32 {
        be32(self.0, req::LOCAL_QPN) >> 8
    }
    /// The requester's responder resources (READ/atomic it accepts in flight).
    pub fn responder_resources(&self) -> u8 {
        u8_at(self.0, req::LOCAL_QPN + 3)
    }
    /// READ/atomic requests the requester keeps in flight.
    pub fn initiator_depth(&self) -> u8 {
        u8_at(self.0, req::INITIATOR_DEPTH)
    }
    /// Transport service type: 0 RC, 1 UC, 3 RD.
    pub fn transport(&self) -> u8 {
        (u8_at(self.0, req::TRANSPORT) >> 1) & 0x3
    }
    /// The requester's first PSN.
    pub fn starting_psn(&self) -> u32 {
        be32(self.0, req::STARTING_PSN) >> 8
    }
    pub fn pkey(&self) -> u16 {
        be16(self.0, req::PKEY)
    }
    /// Path MTU as the IB enum (1: 256 .. 5: 4096).
    pub fn path_mtu(&self) -> u8 {
        u8_at(self.0, req::MTU) >> 4
    }
    pub fn rnr_retry(&self) -> u8 {
        u8_at(self.0, req::MTU) & 0x7
    }
    pub fn srq(&self) -> bool {
        u8_at(self.0, req::SRQ) & 0x08 != 0
    }
    /// The requester's GID (primary path).
    pub fn primary_local_gid(&self) -> [u8; 16] {
        super::bytes(self.0, req::PRIMARY_LOCAL_GID).unwrap_or([0; 16])
    }
    /// Our GID as the requester addressed us.
    pub fn primary_remote_gid(&self) -> [u8; 16] {
        super::bytes(self.0, req::PRIMARY_REMOTE_GID).unwrap_or([0; 16])
    }
    /// The 92 bytes of private data (rdma_cm's IP header: version, ports, addresses).
    pub fn private_data(&self) -> &[u8] {
        super::clamp(self.0, req::PRIVATE_DATA, req::PRIVATE_DATA + 92)
    }
}

/// The two communication IDs every CM message after the REQ starts with.
#[derive(Clone, Copy, Debug)]
pub struct CmIds<'a>(pub &'a [u8]);

impl CmIds<'_> {
    /// The sender's ID.
    pub fn local_comm_id(&self) -> u32 {
        be32(self.0, 0)
    }
    /// The receiver's ID (ours).
    pub fn remote_comm_id(&self) -> u32 {
        be32(self.0, 4)
    }
}

/// A CM REP (the passive side accepts), as values.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CmRep {
    pub local_comm_id: u32,
    pub remote_comm_id: u32,
    pub local_qkey: u32,
    pub local_qpn: u32,
    pub starting_psn: u32,
    pub responder_resources: u8,
    pub initiator_depth: u8,
    /// 5 bits.
    pub target_ack_delay: u8,
    pub failover_accepted: u8,
    pub e2e_flow_control: bool,
    /// 3 bits.
    pub rnr_retry: u8,
    pub srq: bool,
    pub local_ca_guid: u64,
}

impl CmRep {
    /// Writes the class data into `d` (at least 232 bytes, zeroed by [`MadRepr::emit`]).
    pub fn emit(&self, d: &mut [u8]) {
        put(d, 0, self.local_comm_id.to_be_bytes());
        put(d, 4, self.remote_comm_id.to_be_bytes());
        put(d, 8, self.local_qkey.to_be_bytes());
        put(d, 12, (self.local_qpn << 8).to_be_bytes());
        put(d, 20, (self.starting_psn << 8).to_be_bytes());
        d[24] = self.responder_resources;
        d[25] = self.initiator_depth;
        d[26] = ((self.target_ack_delay & 0x1f) << 3)
            | ((self.failover_accepted & 0x3) << 1)
            | self.e2e_flow_control as u8;
        d[27] = ((self.rnr_retry & 0x7) << 5) | ((self.srq as u8) << 4);
        put(d, 28, self.local_ca_guid.to_be_bytes());
    }
    /// Reads a REP's class data.
    pub fn parse(d: &[u8]) -> CmRep {
        let b26 = u8_at(d, 26);
        let b27 = u8_at(d, 27);
        CmRep {
            local_comm_id: be32(d, 0),
            remote_comm_id: be32(d, 4),
            local_qkey: be32(d, 8),
            local_qpn: be32(d, 12) >> 8,
            starting_psn: be32(d, 20) >> 8,
            responder_resources: u8_at(d, 24),
            initiator_depth: u8_at(d, 25),
            target_ack_delay: b26 >> 3,
            failover_accepted: (b26 >> 1) & 0x3,
            e2e_flow_control: b26 & 1 != 0,
            rnr_retry: b27 >> 5,
            srq: b27 & 0x10 != 0,
            local_ca_guid: be64(d, 28),
        }
    }
}

/// Writes the class data of a DREP or an RTU (`d` zeroed by [`MadRepr::emit`]).
pub fn emit_ids(d: &mut [u8], local_comm_id: u32, remote_comm_id: u32) {
    put(d, 0, local_comm_id.to_be_bytes());
    put(d, 4, remote_comm_id.to_be_bytes());
}

/// Writes the class data of a REJ of a REQ (`d` zeroed by [`MadRepr::emit`]): message
/// REJected 0 (the REQ), no additional reject information.
pub fn emit_rej(d: &mut [u8], local_comm_id: u32, remote_comm_id: u32, reason: u16) {
    emit_ids(d, local_comm_id, remote_comm_id);
    put(d, 10, reason.to_be_bytes());
}

/// A REJ's reason.
pub fn rej_reason_of(d: &[u8]) -> u16 {
    be16(d, 10)
}

/// The EUI-64 node GUID of a MAC address (the U/L bit flipped, `ff:fe` in the middle), as rxe
/// and most RoCE NICs derive theirs.
pub fn guid_from_mac(mac: [u8; 6]) -> u64 {
    u64::from_be_bytes([
        mac[0] ^ 0x02,
        mac[1],
        mac[2],
        0xff,
        0xfe,
        mac[3],
        mac[4],
        mac[5],
    ])
}

/// rdma_cm's service ID of a port space and port (`RDMA_PS_TCP` is 0x0106).
pub const fn rdma_cm_service_id(port_space: u16, port: u16) -> u64 {
    0x0000_0000_0100_0000 | ((port_space as u64 & 0xff) << 16) | port as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_and_service_id() {
        assert_eq!(
            guid_from_mac([0x00, 0x50, 0x56, 0xa7, 0x12, 0x9f]),
            0x0250_56ff_fea7_129f
        );
        assert_eq!(rdma_cm_service_id(0x0106, 0x4853), 0x0000_0000_0106_4853);
    }

    #[test]
    fn rep_round_trips() {
        let r = CmRep {
            local_comm_id: 0x8988_f456,
            remote_comm_id: 0x64c0_c56d,
            local_qkey: 0,
            local_qpn: 0x3b,
            starting_psn: 0x72_7d6d,
            responder_resources: 0,
            initiator_depth: 0,
            target_ack_delay: 15,
            failover_accepted: 0,
            e2e_flow_control: false,
            rnr_retry: 7,
            srq: false,
            local_ca_guid: 0x0250_56ff_fea7_129f,
        };
        let mut m = [0xaau8; MAD_LEN];
        MadRepr::cm(attr::REP, 0x2_6dc5_c064).emit(&mut m);
        r.emit(&mut m[HEADER_LEN..]);
        // The bytes rxe sent (roce__rdma_cm.pcap frame 2, class data).
        assert_eq!(
            &m[HEADER_LEN..HEADER_LEN + 36],
            &[
                0x89, 0x88, 0xf4, 0x56, 0x64, 0xc0, 0xc5, 0x6d, 0, 0, 0, 0, 0, 0, 0x3b, 0, 0, 0, 0,
                0, 0x72, 0x7d, 0x6d, 0, 0, 0, 0x78, 0xe0, 0x02, 0x50, 0x56, 0xff, 0xfe, 0xa7, 0x12,
                0x9f
            ]
        );
        assert!(m[HEADER_LEN + 36..].iter().all(|&b| b == 0));
        let p = MadPacket::new_checked(&m[..]).unwrap();
        assert_eq!(
            (p.mgmt_class(), p.method(), p.attribute_id()),
            (7, 3, attr::REP)
        );
        assert_eq!(CmRep::parse(p.data()), r);
    }

    #[test]
    fn short_mads_read_as_zero_and_never_panic() {
        for n in 0..MAD_LEN {
            let b = std::vec![0xffu8; n];
            let p = MadPacket::new_unchecked(&b[..]);
            assert_eq!(p.check_len().is_ok(), n >= MAD_LEN);
            let r = CmReq(p.data());
            let _ = (r.local_qpn(), r.primary_local_gid(), r.private_data().len());
            let _ = CmIds(p.data()).remote_comm_id();
        }
    }
}
