#!/usr/bin/env python3
"""tshark's checksum verdict per frame of one capture: the oracle for checksum offload.

Usage: oracle_csum.py CAPTURE > testdata/oracle/csum/CAPTURE.tsv   (run by scripts/gen-oracle.sh)

tshark runs with checksum validation on (`ip.check_checksum`, `tcp.check_checksum`,
`udp.check_checksum`) and reassembly off (as for the split oracle). One row per frame:

    frame  protocols  ip  tcp  udp  l4  verdict

- protocols: tshark's `frame.protocols` (the layer stack, outermost first).
- ip / tcp / udp: every `ip.checksum.status` / `tcp.checksum.status` / `udp.checksum.status`
  tshark reports for the frame, outermost first, comma-separated (`-` = none). Wireshark's
  values: 0 bad, 1 good, 2 unverified, 3 not present (UDP checksum 0), 4 illegal (UDP
  checksum 0 over IPv6).
- l4: the innermost transport in `protocols` (`tcp`, `udp` or `-`) and its status (the last
  status of that protocol), e.g. `tcp:1`.
- verdict: the verdict tshark's statuses imply by splitrx's rule (`shared/src/csum.rs`):
  `bad` when any IPv4 header status is bad or the innermost TCP/UDP status is bad or
  illegal; else `ok` when that status is good; else `none`.

The rows are tshark's view. Where splitrx's rule deliberately differs (tunnels it does not
open, ICMP error quotes, frames it classifies malformed), `tests/tests/oracle_csum.rs` says so
case by case.
"""

import subprocess
import sys

FIELDS = ["frame.number", "frame.protocols", "ip.checksum.status", "tcp.checksum.status",
          "udp.checksum.status"]
OPTS = [
    "-o", "ip.check_checksum:TRUE",
    "-o", "tcp.check_checksum:TRUE",
    "-o", "udp.check_checksum:TRUE",
    "-o", "ip.defragment:FALSE",
    "-o", "ipv6.defragment:FALSE",
    "-o", "tcp.desegment_tcp_streams:FALSE",
    "-o", "tcp.analyze_sequence_numbers:FALSE",
]


def verdict(ip, l4_status):
    if "0" in ip or l4_status in ("0", "4"):
        return "bad"
    if l4_status == "1":
        return "ok"
    return "none"


def main():
    cap = sys.argv[1]
    cmd = ["tshark", "-n", "-r", cap, *OPTS, "-T", "fields", "-E", "separator=/t",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        num, protos, ip, tcp, udp = (line.split("\t") + [""] * 5)[:5]
        ip_l = [s for s in ip.split(",") if s]
        st = {"tcp": [s for s in tcp.split(",") if s], "udp": [s for s in udp.split(",") if s]}
        layers = protos.split(":")
        inner = next((p for p in reversed(layers) if p in ("tcp", "udp")), None)
        l4 = "-"
        l4_status = None
        if inner and st[inner]:
            l4_status = st[inner][-1]
            l4 = f"{inner}:{l4_status}"
        rows.append((num, protos, ",".join(ip_l) or "-", ",".join(st["tcp"]) or "-",
                     ",".join(st["udp"]) or "-", l4, verdict(ip_l, l4_status)))
    name = cap.rsplit("/", 1)[-1]
    print(f"# checksum oracle for {name}: scripts/oracle_csum.py over tshark fields; "
          "see that script for the columns")
    print(f"# frames: {len(rows)}")
    print("frame\tprotocols\tip\ttcp\tudp\tl4\tverdict")
    for r in rows:
        print("\t".join(r))


if __name__ == "__main__":
    main()
