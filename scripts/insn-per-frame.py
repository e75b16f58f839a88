#!/usr/bin/env python3
"""Instructions per frame of the firmware datapath on aarch64, from QEMU's libinsn trace.

The qemu-virt image built with `--features insn-markers` executes unallocated HINTs (NOPs) at
fixed places; libinsn (`match=hint,trace=on`) prints, for every executed marker, the
instructions executed since the previous marker. This script attributes those deltas:

  0x60 ... 0x61   one call of Firmware::poll_rx that took frames (the window)
  0x62 .. 0x63    the MAC's peek (virtio used ring, FCS check)      -> excluded (MAC)
  0x64 .. 0x65    the MAC's release (repost, notify check)          -> excluded (MAC)
  0x66 .. 0x67    the CPU copy of one DMA segment                   -> excluded (DMA engine)

Everything else inside a window is the datapath: split, steering, fill-descriptor checks,
DMA submission (window checks), checksum verification, completion.

usage: insn-per-frame.py LOG
"""
import re
import sys

LINE = re.compile(r"'hint #(0x6[0-7])', .* Δ\+(\d+) since last match")
MARKERS_PER = 1  # each marker instruction itself is counted once in the next delta


def main(path):
    prev = None
    inside = False
    total = mac = copy = frames = windows = markers = 0
    copies = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.search(line)
            if not m:
                continue
            role, delta = m.group(1), int(m.group(2))
            if role == "0x60":
                inside = True
                total_w = 0
                seg = {"mac": 0, "copy": 0, "frames": 0, "copies": 0, "markers": 0}
            elif inside:
                total_w += delta
                seg["markers"] += MARKERS_PER
                if prev == "0x62" and role == "0x63" or prev == "0x64" and role == "0x65":
                    seg["mac"] += delta
                if prev == "0x66" and role == "0x67":
                    seg["copy"] += delta
                    seg["copies"] += 1
                if role == "0x64":
                    seg["frames"] += 1
                if role == "0x61":
                    inside = False
                    windows += 1
                    total += total_w
                    mac += seg["mac"]
                    copy += seg["copy"]
                    frames += seg["frames"]
                    copies += seg["copies"]
                    markers += seg["markers"]
            prev = role
    if frames == 0:
        sys.exit("no frames inside marked datapath calls")
    dp = total - mac - copy - markers
    print(f"{windows} datapath calls, {frames} frames, {copies / frames:.1f} DMA segments/frame")
    print(f"inside poll_rx, per frame:      {total / frames:10.1f} instructions")
    print(f"  MAC (peek + release):         {mac / frames:10.1f}")
    print(f"  DMA copies (CPU memcpy):      {copy / frames:10.1f}")
    print(f"  markers:                      {markers / frames:10.1f}")
    print(f"  datapath (the rest):          {dp / frames:10.1f}")


if __name__ == "__main__":
    main(sys.argv[1])
