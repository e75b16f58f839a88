#!/usr/bin/env python3
"""Writes the seed corpora of the ring and control-plane fuzz targets (committed under
`*/fuzz/seeds/<target>/`; `cargo xtask fuzz` passes them to libFuzzer with the working corpus).

Each seed is valid traffic in the target's own input format (see the target's module docs):
- firmware/fuzz command_ring: 64-byte control requests (`CtrlMsg`: seq, opcode, status, body;
  `docs/ABI.md`), one bring-up and teardown sequence with traffic, two queues, and every opcode
  once with an empty body;
- firmware/fuzz fill_descriptors: a mode byte, then 18-byte steps (control byte, pool index,
  raw descriptor): valid posts of both pools in page and packed mode with frames between them,
  and one step of each descriptor mutation;
- shared/fuzz ring_consumer: a config byte, the ring's shared memory (index blocks + entries)
  in consistent states (empty, partly full, full, wrapped around 2^32), then op bytes.

Rerun after changing a target's input format: `python3 scripts/gen-fuzz-seeds.py`.
"""
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# CtrlOp numbers (shared/src/abi.rs).
GET_VERSION, REGISTER_POOL, UNREGISTER_POOL, CREATE_RXQ, DESTROY_RXQ = 1, 2, 3, 4, 5
SET_HDS, RESET_Q, READ_STATS, SET_RSS = 6, 7, 8, 9
MS_RSS_KEY = bytes.fromhex(
    "6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa")


def msg(op, body=b"", region=False, q=0):
    """A request in command_ring's format (the target sets seq). With `region`, the status's
    high byte asks the target to point a CreateRxQueue at queue `q`'s laid-out region (body
    byte 0 picks it). Body bytes 1 and 2 also size the frame the target sends after it."""
    body = bytearray(body.ljust(56, b"\0"))
    if region:
        body[0] = q
    status = bytes([0, 1 if region else 0])
    return struct.pack("<IH", 0, op) + status + bytes(body)


def create_q(q, hdr=1, pay=2, thresh=0):
    # Region fields are filled in by the target (`region`); queue and pools stay ours.
    b = bytearray(24)
    b[0] = q
    struct.pack_into("<HBBI", b, 16, q, hdr, pay, thresh)
    return msg(CREATE_RXQ, bytes(b), region=True, q=q)


def command_ring():
    qa = lambda q: struct.pack("<HH", q, 0)
    bring_up = [
        msg(GET_VERSION),
        msg(SET_RSS, struct.pack("<HH", 1, 0) + MS_RSS_KEY),
        create_q(0),
        msg(SET_HDS, struct.pack("<HHI", 0, 0, 256)),
        msg(READ_STATS, struct.pack("<HH", 0, 0)),
        msg(READ_STATS, struct.pack("<HH", 0, 1)),
        msg(READ_STATS, struct.pack("<HH", 0xFFFF, 0)),
        msg(RESET_Q, qa(0)),
        msg(SET_HDS, struct.pack("<HHI", 0, 0, 0)),
        msg(DESTROY_RXQ, qa(0)),
        msg(UNREGISTER_POOL, bytes([2, 0, 0, 0])),
        msg(UNREGISTER_POOL, bytes([1, 0, 0, 0])),
        msg(GET_VERSION),
    ]
    two_queues = [
        msg(SET_RSS, struct.pack("<HH", 2, 0) + MS_RSS_KEY),
        create_q(0),
        create_q(1),
    ] + [msg(READ_STATS, struct.pack("<HH", i % 2, 0) + bytes([i * 37 % 250]))
         for i in range(12)] + [
        msg(RESET_Q, qa(1)),
        msg(DESTROY_RXQ, qa(0)),
        msg(DESTROY_RXQ, qa(1)),
    ]
    every_op = [msg(op) for op in range(20)]
    return {"bring_up": bring_up, "two_queues": two_queues, "every_opcode": every_op}


def fill_descriptors():
    def step(ctl, idx=0, raw=b"", size8=0):
        raw = bytearray(raw.ljust(16, b"\0"))
        raw[3] = size8  # c[5]: frame size / 8 when the step sends a frame
        return bytes([ctl, idx]) + bytes(raw)

    HDR, PAY, VALID, FRAME = 0, 1, 1 << 1, 0x40
    seeds = {}
    for name, mode in [("page", 0), ("packed_thresh8", 1 | (1 << 1))]:
        s = bytearray([mode])
        for i in range(24):
            s += step(HDR | VALID, i)
            s += step(PAY | VALID, i)
        for i in range(40):
            s += step(HDR | VALID | FRAME, 24 + i % 8, size8=(i * 37) % 200)
            s += step(PAY | VALID, 24 + i % 8)
        seeds[name] = bytes(s)
    s = bytearray([0])
    for mutation in range(1, 4):
        for pool in (HDR, PAY):
            s += step(pool | VALID | (mutation << 3), 3, raw=bytes([0x40, 0x10, 0x02]))
    s += step(HDR | VALID | FRAME, 5, size8=20)
    seeds["each_mutation"] = bytes(s)
    return seeds


def ring_consumer():
    def ring(cfg, prod, cons, fill, ops):
        cap = 1 << (cfg & 7)
        esz = 3 if cfg & 16 else 16
        mem = bytearray(256 + cap * esz)
        struct.pack_into("<I", mem, 0, prod & 0xFFFFFFFF)
        struct.pack_into("<I", mem, 128, cons & 0xFFFFFFFF)
        for i in range(cap):
            b = (fill + i) & 0xFF
            e = bytes([b, (~b) & 0xFF, b ^ 0x5A]) if esz == 3 else bytes([b]) * 16
            mem[256 + i * esz:256 + (i + 1) * esz] = e
        return bytes([cfg]) + bytes(mem) + bytes(ops)

    ops = list(range(32))
    return {
        "consumer_empty": ring(4, 0, 0, 1, ops),
        "consumer_partly_full": ring(4, 5, 0, 1, ops),
        "consumer_full": ring(4, 16, 0, 1, ops),
        "consumer_wrapped": ring(4, 0x00000003, 0xFFFFFFF6, 9, ops),
        "producer_partly_full": ring(4 | 8, 3, 1, 2, ops),
        "producer_wrapped": ring(3 | 8, 0x00000002, 0xFFFFFFFC, 4, ops),
        "consumer_e3": ring(3 | 16, 6, 2, 7, ops),
    }


def write(dir_, seeds):
    os.makedirs(dir_, exist_ok=True)
    for name, data in seeds.items():
        if isinstance(data, list):
            data = b"".join(data)
        with open(os.path.join(dir_, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write(os.path.join(ROOT, "firmware/fuzz/seeds/command_ring"), command_ring())
    write(os.path.join(ROOT, "firmware/fuzz/seeds/fill_descriptors"), fill_descriptors())
    write(os.path.join(ROOT, "shared/fuzz/seeds/ring_consumer"), ring_consumer())
