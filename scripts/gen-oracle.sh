#!/bin/sh
# Regenerates testdata/oracle/<capture>.tsv (split) and testdata/oracle/csum/<capture>.tsv
# (checksum validation) from tshark's dissection of every capture in testdata/captures/, and
# testdata/oracle/crafted/<capture>.tsv for the crafted captures there. Rerunnable; the
# fixtures are committed so CI and `cargo test` need no
# tshark. Needs tshark (Debian: `apt-get install tshark`) and python3.
#
# The rules that turn tshark's protocol tree into the expected split result, and every case
# where DESIGN.md's split rule deliberately differs from tshark (Ethernet padding, RoCE pad and
# ICRC, fragments, malformed and snap-truncated frames, BIG TCP, GRE/MPLS, MADs on QP1,
# Wireshark's RPC-over-RDMA heuristic), are documented in scripts/oracle_pdml.py.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/testdata/oracle"
mkdir -p "$out" "$out/csum"
command -v tshark >/dev/null || { echo "gen-oracle: tshark not found" >&2; exit 1; }
tshark --version | head -n 1 > "$out/TSHARK_VERSION"
for cap in "$root"/testdata/captures/*.pcap "$root"/testdata/captures/*.pcapng; do
    name=$(basename "$cap")
    python3 "$root/scripts/oracle_pdml.py" "$cap" > "$out/$name.tsv.tmp"
    mv "$out/$name.tsv.tmp" "$out/$name.tsv"
    # Checksum offload oracle: tshark's checksum validation (scripts/oracle_csum.py).
    python3 "$root/scripts/oracle_csum.py" "$cap" > "$out/csum/$name.tsv.tmp"
    mv "$out/csum/$name.tsv.tmp" "$out/csum/$name.tsv"
done
# Crafted corner cases no capture has (nested tunnels, BIG TCP limits, RD/XRC RoCE): the
# capture is written by a script next to it, the fixture derived like the others.
python3 "$out/crafted/make_corner_cases.py"
for cap in "$out"/crafted/*.pcap; do
    python3 "$root/scripts/oracle_pdml.py" "$cap" > "$cap.tsv.tmp"
    mv "$cap.tsv.tmp" "$cap.tsv"
done
echo "gen-oracle: wrote $(ls "$out"/*.tsv | wc -l) fixtures to testdata/oracle/, $(ls "$out"/crafted/*.tsv | wc -l) to testdata/oracle/crafted/ and $(ls "$out"/csum/*.tsv | wc -l) to testdata/oracle/csum/"
