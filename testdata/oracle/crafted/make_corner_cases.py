#!/usr/bin/env python3
"""Writes split-corner-cases.pcap (next to this script): crafted frames for the header-split
corner cases of issue 9 / defect 7 that no capture in ../../captures/ has. Deterministic and
rerunnable; scripts/gen-oracle.sh derives split-corner-cases.pcap.tsv from tshark's dissection
of it like for the real captures, and tests/tests/oracle.rs compares split() with it.

Frames (in order):
 1  IPv4 total length 0 in a 60-byte padded frame (4 TCP payload bytes + 2 padding)
 2  IPv4 total length 0 with 65536 bytes of IPv4 datagram (BIG TCP)
 3  IPv6 payload length 0, no Jumbo option, short frame (TCP header past the datagram)
 4  VXLAN in VXLAN, inner TCP       5  Geneve in VXLAN, inner TCP
 6  VXLAN in Geneve, inner TCP      7  VXLAN / Geneve / VXLAN (3 levels), inner TCP
 8  4 x VXLAN (one level too deep)  9  VXLAN carrying ARP
10  VXLAN in VXLAN carrying ARP    11  RoCEv2 RD SEND ONLY (0x44)
12  RoCEv2 XRC SEND ONLY (0xa4)    13  RoCEv2 RD SEND ONLY in VXLAN
"""

import os
import struct


def eth(ethertype):
    return bytes.fromhex("020000000001020000000002") + struct.pack(">H", ethertype)


def ipv4(proto, payload, total=None):
    tl = 20 + len(payload) if total is None else total
    h = struct.pack(">BBHHHBBH4s4s", 0x45, 0, tl, 1, 0x4000, 64, proto, 0,
                    bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return h + payload


def ipv6(nh, payload, plen=None):
    pl = len(payload) if plen is None else plen
    return struct.pack(">IHBB", 0x60000000, pl, nh, 64) + bytes(15) + b"\x01" + bytes(15) \
        + b"\x02" + payload


def udp(dport, payload):
    return struct.pack(">HHHH", 49152, dport, 8 + len(payload), 0) + payload


def tcp(payload):
    return struct.pack(">HHIIBBHHH", 1234, 80, 1, 0, 5 << 4, 0x18, 512, 0, 0) + payload


def tcp_frame(n=4):
    return eth(0x0800) + ipv4(6, tcp(bytes(range(1, n + 1))))


def vxlan(inner):
    return eth(0x0800) + ipv4(17, udp(4789, bytes([8, 0, 0, 0, 0, 0, 7, 0]) + inner))


def geneve(inner):
    hdr = bytes([0x02, 0, 0x65, 0x58, 0, 0, 1, 0, 0x01, 0x02, 0x03, 0x01, 0xa, 0xb, 0xc, 0xd])
    return eth(0x86dd) + ipv6(17, udp(6081, hdr + inner))


def arp():
    return eth(0x0806) + bytes.fromhex("0001080006040001") + bytes(20)


def roce(op, ext, payload):
    bth = struct.pack(">BBHII", op, 0x40, 0xffff, 0x11, 5)
    return eth(0x0800) + ipv4(17, udp(4791, bth + ext + payload + bytes(4)))


def frames():
    f = []
    short = eth(0x0800) + ipv4(6, tcp(b"\x01\x02\x03\x04"), total=0) + bytes(2)
    f.append(short)
    f.append(eth(0x0800) + ipv4(6, tcp(bytes(65536 - 40)), total=0))
    f.append(eth(0x86dd) + ipv6(6, tcp(bytes(10)), plen=0))
    t = tcp_frame()
    f += [vxlan(vxlan(t)), vxlan(geneve(t)), geneve(vxlan(t)), vxlan(geneve(vxlan(t))),
          vxlan(vxlan(vxlan(vxlan(t)))), vxlan(arp()), vxlan(vxlan(arp()))]
    rdeth_deth = bytes([0, 0, 0, 1]) + bytes([0, 0, 0, 0x11, 0, 0, 0, 3])
    xrceth = bytes([0, 0, 0, 9])
    f.append(roce(0x44, rdeth_deth, bytes(16)))
    f.append(roce(0xa4, xrceth, bytes(16)))
    f.append(vxlan(roce(0x44, rdeth_deth, bytes(8))))
    return f


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "split-corner-cases.pcap")
    with open(out, "wb") as w:
        w.write(struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
        for i, fr in enumerate(frames()):
            w.write(struct.pack("<IIII", 1700000000, i, len(fr), len(fr)))
            w.write(fr)


if __name__ == "__main__":
    main()
