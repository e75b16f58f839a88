#!/usr/bin/env python3
"""Turn tshark's dissection (PDML) of one capture into the oracle fixture for the split test.

Usage: oracle_pdml.py CAPTURE > testdata/oracle/CAPTURE.tsv   (run by scripts/gen-oracle.sh)

One row per frame of the capture:

    frame  kind  class  payload_offset  payload_len  l3_offset  l4_offset  tunnel  opcode  dest_qp
    psn  notes

- kind: what tshark found as the innermost transport: `tcp`, `udp`, `roce` (UDP + InfiniBand
  BTH), or `other` (no TCP/UDP/BTH, e.g. ARP, ICMP, GRE, MPLS, non-first fragments).
- class: the FrameClass splitrx must report (FrameClass::as_str), derived from tshark's
  protocol tree by the DESIGN.md rule (see "Deliberate differences" below).
- payload_offset / payload_len: where the innermost L4 (or RoCE) payload starts and how long
  it is, as splitrx must report it, or `-` for "none" (not recognised: fragments, unknown
  protocols, non-IP, malformed).  Offsets are in the frame *as the NIC sees it*: tshark's
  offsets in the original record plus the link-type shift of host/src/capture.rs (Ethernet 0,
  raw IP +14, Linux SLL -2, SLL2 -6).
- l3_offset / l4_offset: the innermost IP and TCP/UDP header offsets (same shift), given for
  tcp/udp/roce rows only (`-` otherwise).
- tunnel: `vxlan` / `geneve` when the frame's headers were found inside that tunnel.
- opcode / dest_qp / psn: from the RoCE BTH (`-` otherwise).
- notes: why a row deviates from tshark, or extra detail.

How the expected values are computed from tshark's fields (PDML gives every field's byte
position `pos` and `size` in the frame):
- TCP:  offset = pos(tcp) + tcp.hdr_len, length = tcp.len (tshark derives it from the IP
        length fields, not the frame length).
- UDP:  offset = pos(udp) + 8, length = udp.length - 8.
- RoCE: offset = pos(infiniband) + size of every transport header tshark shows (BTH 12 and
        RETH/AETH/ImmDt/DETH/IETH/AtomicETH/AtomicAckETH), length = udp.length - 8 - those
        headers - BTH pad count - 4 (ICRC).

Deliberate differences between DESIGN.md's split rule and tshark (each is noted per row):
- Ethernet padding: tshark shows it as an Ethernet trailer; neither counts it as payload
  (lengths come from the IP/UDP length fields) -> no difference, noted where present.
- RoCE pad and ICRC are not payload (tshark's `data` excludes the ICRC; we also exclude the
  pad bytes the BTH pad count names).
- IP fragments: tshark runs with reassembly off, so a first fragment shows its UDP/TCP header.
  DESIGN: a non-first fragment is class `fragment`; a first fragment is not split either
  (the L4 length fields describe the whole datagram) and is class `other_ip`.
- Frames tshark dissects although they are malformed by the DESIGN rule -> class `malformed`,
  no payload: an IP header whose length fields claim more bytes than were captured
  (snap-truncated captures included: the NIC "saw" only caplen bytes), IPv4 IHL < 5, IPv4
  total length < header length, a UDP length that disagrees with the IP payload length, a TCP
  data offset < 5 or past the IP payload, a bad IP version nibble.
- BIG TCP: an IPv4 total length of 0 means "the rest of the frame" (Linux BIG TCP GSO/GRO
  packets; shared/src/split.rs documents this extension of DESIGN's "lengths from the IP
  header"); tshark presumes TSO and also uses the frame length -> same result, but only when
  more than 65535 bytes are left for the datagram (BIG TCP exists only above 64 KiB).  With
  65535 or fewer the field could have stated the length: splitrx reports `malformed` (bad
  ipv4 total length) where tshark still presumes TSO and would take Ethernet padding as
  payload.  IPv6 BIG TCP uses the RFC 2675 Jumbo Payload hop-by-hop option, a real IP length
  field -> as tshark; an IPv6 payload length of 0 without that option is "the rest of the
  frame" likewise only above 65535 bytes after the fixed header, else an empty payload.
- GRE, IP-in-IP, MPLS and other encapsulations are not recognised tunnels: the rule stops at
  the outer IP (-> `other_ip`) or at the non-IP ethertype (MPLS -> `non_ip`), while tshark
  dissects the inner TCP/UDP.
- VXLAN (UDP 4789) / Geneve (UDP 6081): split at the inner L4 payload like tshark's innermost
  TCP/UDP, through nested tunnels (any order) up to 3 tunnel headers (split::MAX_TUNNEL_DEPTH);
  `tunnel` is the innermost one.  tshark dissects any depth: a fourth tunnel header is not
  opened by splitrx -> `udp` (the UDP datagram carrying it; l3/l4 are its IP/UDP headers), no
  payload, not split (reason tunnel_too_deep).  An inner datagram is bounded by the tunnel
  payload holding it.  Tunnels carrying non-IP (ARP) or non-TCP/UDP (ICMP) -> `non_ip` /
  `other_ip`.
- RoCEv2 with an RD (BTH opcode 0x40-0x5f) or XRC (0xa0-0xbf) opcode: tshark dissects the
  RDETH/XRCETH; splitrx does not parse these transports -> `roce` with the BTH fields, no
  payload, not split (reason unsupported_transport).  Reserved and vendor opcodes -> malformed.
- UDP 4791 to QP1 (MAD, RDMA-CM): still RoCE: BTH + DETH, the MAD is payload (tshark
  dissects it as part of InfiniBand).
- Wireshark's RPC-over-RDMA heuristic marks 4-byte SEND payloads in roce__rdma_cm as
  malformed; the frames are well-formed RoCE -> `roce` with a 4-byte payload.
"""

import subprocess
import sys
import xml.etree.ElementTree as ET

TSHARK_OPTS = [
    "-o", "ip.defragment:FALSE",
    "-o", "ipv6.defragment:FALSE",
    "-o", "tcp.desegment_tcp_streams:FALSE",
    "-o", "tcp.analyze_sequence_numbers:FALSE",
]

# Link-layer proto -> offset shift to the converted Ethernet frame (host/src/capture.rs).
LINK_SHIFT = {"eth": 0, "raw": 14}
IB_HEADERS = ("infiniband.bth", "infiniband.reth", "infiniband.aeth", "infiniband.immdt",
              "infiniband.deth", "infiniband.ieth", "infiniband.atomiceth",
              "infiniband.atomicacketh")
SKIP = {"geninfo", "frame", "fake-field-wrapper", "pkt_comment"}
VLAN = {"vlan", "ieee8021ad"}


class Malformed(Exception):
    pass


def field(elem, name):
    for f in elem.iter("field"):
        if f.get("name") == name:
            return f
    for p in elem.iter("proto"):
        if p.get("name") == name:
            return p
    return None


def num(elem, name, default=None):
    f = field(elem, name)
    if f is None:
        return default
    s = f.get("show")
    return int(s, 16) if s.startswith("0x") else int(s)


def pos(elem):
    return int(elem.get("pos"))


# The largest length an IP length field can state; BIG TCP (length 0) only above it.
IP_MAX_LEN = 65535
# Tunnel headers opened, at most (shared/src/split.rs MAX_TUNNEL_DEPTH).
MAX_TUNNEL_DEPTH = 3


def ip_info(p, caplen, notes):
    """Checks an ip/ipv6 proto; returns (end offset of the IP packet, is_fragment, is_first).

    `caplen` is where the bytes that may hold the datagram end (the frame, or the payload of
    the tunnel holding it)."""
    start = pos(p)
    if p.get("name") == "ip":
        if num(p, "ip.version") != 4:
            raise Malformed("bad ip version")
        hl = num(p, "ip.hdr_len")
        if hl < 20:
            raise Malformed("bad ipv4 header length")
        raw_len = int(field(p, "ip.len").get("value"), 16)
        if raw_len == 0:
            if caplen - start <= IP_MAX_LEN:
                # Not BIG TCP: the total length could have been stated (tshark presumes TSO).
                raise Malformed("bad ipv4 total length (0 below 64 KiB)")
            # BIG TCP: the datagram is the rest of the frame (tshark presumes TSO, same result).
            notes.append("BIG TCP: ipv4 total length 0 = rest of frame")
            end = caplen
        elif raw_len < hl:
            raise Malformed("bad ipv4 total length")
        else:
            end = start + raw_len
        off = num(p, "ip.frag_offset", 0)
        mf = num(p, "ip.flags.mf", 0)
        frag, first = (off != 0 or mf != 0), off == 0
    else:
        if num(p, "ipv6.version") != 6:
            raise Malformed("bad ip version")
        plen = num(p, "ipv6.plen")
        jumbo = num(p, "ipv6.opt.jumbo")
        if plen == 0 and jumbo is not None:
            plen = jumbo
            notes.append("ipv6 jumbo payload option")
        end = start + 40 + plen
        if plen == 0 and jumbo is None and field(p, "ipv6.nxt") is not None \
                and num(p, "ipv6.nxt") != 59 and caplen - start - 40 > IP_MAX_LEN:
            # BIG TCP without the hop-by-hop header: the rest of the frame.
            notes.append("BIG TCP: ipv6 payload length 0 = rest of frame")
            end = caplen
        fh = field(p, "ipv6.fraghdr")
        frag = fh is not None
        first = frag and num(fh, "ipv6.fraghdr.offset") == 0
    if end > caplen:
        raise Malformed("ip length exceeds frame")
    return end, frag, first


def analyse(pkt, loc):
    """Returns (kind, class, payload_offset, payload_len, roce(opcode,qp,psn) or None, notes).

    Fills `loc` with the innermost IP and L4 header offsets (`l3`, `l4`; recognised TCP/UDP/
    RoCE only) and the tunnel entered (`tunnel`)."""
    protos = [p for p in pkt.findall("proto")
              if p.get("name") not in SKIP and not p.get("name").startswith("_ws.")]
    names = [p.get("name") for p in protos]
    ws = [p.get("name") for p in pkt.findall("proto") if p.get("name").startswith("_ws.")]
    geninfo = pkt.find("proto[@name='geninfo']")
    caplen_orig = num(geninfo, "caplen")
    notes = []

    # tshark's view of the innermost transport.
    if "infiniband" in names:
        kind = "roce"
    else:
        l4 = [n for n in names if n in ("tcp", "udp")]
        kind = l4[-1] if l4 else "other"
        # A tunnel's outer UDP is not the innermost transport.
        if kind == "udp" and names[len(names) - 1 - names[::-1].index("udp") + 1:][:1] in (
                ["vxlan"], ["geneve"]):
            kind = "other"
    if "_ws.short" in ws:
        notes.append("snap-truncated")
    if "_ws.malformed" in ws:
        mal = [p.get("showname") for p in pkt.findall("proto[@name='_ws.malformed']")]
        notes.append("tshark: " + "; ".join(mal))

    link = names[0]
    if link == "sll":
        shift = 14 - int(protos[0].get("size"))
    else:
        shift = LINK_SHIFT[link]
    caplen = caplen_orig  # record coordinates; converted = + shift
    if link == "sll" and caplen < int(protos[0].get("size")):
        return kind, "malformed", None, None, None, notes + ["cut inside SLL header"]

    i = 1
    depth = 0  # tunnel headers opened
    limit = caplen  # end of the bytes holding the current datagram
    try:
        while True:
            while i < len(names) and names[i] in VLAN:
                i += 1
            if i >= len(names) or names[i] not in ("ip", "ipv6"):
                rest = names[i] if i < len(names) else "nothing"
                return kind, "non_ip", None, None, None, notes + [f"ethertype -> {rest}"]
            ip = protos[i]
            loc["l3"] = pos(ip) + shift
            ip_end, frag, first = ip_info(ip, limit, notes)
            i += 1
            nxt = names[i] if i < len(names) else None
            if frag:
                if not first:
                    return kind, "fragment", None, None, None, notes + ["non-first fragment"]
                return kind, "other_ip", None, None, None, notes + [
                    "first fragment: not split (tshark shows its L4 header)"]
            if nxt == "tcp":
                t = protos[i]
                hl = num(t, "tcp.hdr_len")
                if hl < 20 or pos(t) + hl > ip_end:
                    raise Malformed("bad tcp data offset")
                plen = ip_end - (pos(t) + hl)
                tlen = num(t, "tcp.len")
                if tlen != plen:
                    notes.append(f"tshark tcp.len {tlen} != ip-derived {plen}")
                cls = "tcp"
                loc["l4"] = pos(t) + shift
                return kind, cls, pos(t) + hl + shift, plen, None, notes
            if nxt is None and "_ws.malformed" in ws:
                # tshark gave up on the L4 header it expected (no room in the datagram).
                raise Malformed("truncated (tshark: malformed L4)")
            if nxt != "udp":
                what = nxt or "nothing"
                return kind, "other_ip", None, None, None, notes + [f"ip payload: {what}"]
            u = protos[i]
            ulen = num(u, "udp.length")
            loc["l4"] = pos(u) + shift
            if ulen == 0 and "ipv6 jumbo payload option" in notes:
                ulen = ip_end - pos(u)  # RFC 2675: UDP length 0 in a jumbogram
            if ulen < 8 or pos(u) + ulen != ip_end:
                raise Malformed("bad udp length")
            i += 1
            nxt = names[i] if i < len(names) else None
            dport = num(u, "udp.dstport")
            if dport in (4789, 6081) and nxt in ("vxlan", "geneve"):
                if depth == MAX_TUNNEL_DEPTH:
                    return kind, "udp", None, None, None, notes + [
                        f"{nxt} nested deeper than {MAX_TUNNEL_DEPTH} tunnels: not opened"]
                depth += 1
                limit = ip_end
                loc["tunnel"] = nxt
                notes.append(nxt)
                i += 1
                if i < len(names) and names[i] == "eth":
                    i += 1
                continue
            if nxt == "infiniband":
                ib = protos[i]
                op = num(ib, "infiniband.bth.opcode")
                if op >> 5 in (0b010, 0b101):
                    if ulen - 8 < 12 + 4:
                        raise Malformed("bad roce header")
                    roce = (op, num(ib, "infiniband.bth.destqp"), num(ib, "infiniband.bth.psn"))
                    transport = "RD" if op >> 5 == 0b010 else "XRC"
                    return kind, "roce", None, None, roce, notes + [
                        f"{transport} transport: not split (unsupported_transport)"]
                hdrs = 0
                for c in ib.findall("field"):
                    if c.get("name") in IB_HEADERS:
                        hdrs += int(c.get("size"))
                pad = num(ib, "infiniband.bth.padcnt")
                plen = ulen - 8 - hdrs - pad - 4
                if plen < 0:
                    raise Malformed("bad roce header")
                roce = (num(ib, "infiniband.bth.opcode"), num(ib, "infiniband.bth.destqp"),
                        num(ib, "infiniband.bth.psn"))
                if field(ib, "infiniband.mad") is not None:
                    notes.append("MAD on QP1: payload after DETH")
                data = field(pkt, "data.len")
                tlen = None if data is None else num(pkt, "data.len")
                if pad:
                    notes.append(f"pad {pad} is not payload"
                                 + (" (tshark's data includes it)" if tlen == plen + pad else ""))
                if tlen is not None and tlen not in (plen, plen + pad):
                    notes.append(f"tshark data.len {tlen}")
                return kind, "roce", pos(ib) + hdrs + shift, plen, roce, notes
            if dport == 4791:
                notes.append("udp 4791 without BTH in tshark")
            return kind, "udp", pos(u) + 8 + shift, ulen - 8, None, notes
    except Malformed as e:
        return kind, "malformed", None, None, None, notes + [str(e)]


def main():
    path = sys.argv[1]
    proc = subprocess.Popen(["tshark", "-r", path, "-T", "pdml", *TSHARK_OPTS],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    rows = []
    for _, elem in ET.iterparse(proc.stdout, events=("end",)):
        if elem.tag != "packet":
            continue
        geninfo = elem.find("proto[@name='geninfo']")
        number = num(geninfo, "num")
        loc = {}
        kind, cls, off, plen, roce, notes = analyse(elem, loc)
        if cls not in ("tcp", "udp", "roce"):
            loc.pop("l3", None)
            loc.pop("l4", None)
        if num(geninfo, "len") > num(geninfo, "caplen"):
            notes.append(f"caplen {num(geninfo, 'caplen')} < len {num(geninfo, 'len')}")
        rows.append((number, kind, cls, off, plen, loc, roce, notes))
        elem.clear()
    if proc.wait() != 0:
        sys.exit(f"tshark failed on {path}")
    d = lambda v: "-" if v is None else str(v)
    print(f"# oracle for {path.rsplit('/', 1)[-1]}: generated by scripts/gen-oracle.sh from tshark "
          "PDML; see scripts/oracle_pdml.py for the rules")
    print(f"# frames: {len(rows)}")
    print("frame\tkind\tclass\tpayload_offset\tpayload_len\tl3_offset\tl4_offset\ttunnel"
          "\topcode\tdest_qp\tpsn\tnotes")
    for number, kind, cls, off, plen, loc, roce, notes in rows:
        r = roce or (None, None, None)
        print("\t".join([str(number), kind, cls, d(off), d(plen), d(loc.get("l3")),
                         d(loc.get("l4")), d(loc.get("tunnel")), d(r[0]), d(r[1]), d(r[2]),
                         "; ".join(notes) or "-"]))


if __name__ == "__main__":
    main()
