#!/usr/bin/env python3
"""Derives fuzz seeds from a PyKMIP server log of vCenter traffic (the one-off
used for seeds/decode_roundtrip/). Requests are logged as two parts, the
8-byte header then the body; they are concatenated.
Usage: python3 extract_vcenter.py LOG... """
import os, re, sys

NAMES = {1: "create", 10: "get", 11: "get_attributes", 13: "add_attribute",
         18: "activate", 24: "query", 30: "discover_versions", None: "error"}
out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "decode_roundtrip")
by_op, seen = {}, set()
for log in sys.argv[1:]:
    pending = None
    for line in open(log):
        m = re.search(r"(Request|Response) encoding: b'([0-9a-f]+)'", line)
        if not m:
            continue
        kind, h = m.groups()
        if kind == "Request":
            if len(h) == 16 and pending is None:
                pending = h
                continue
            if pending is not None:
                h, pending = pending + h, None
        if h in seen:
            continue
        seen.add(h)
        b = bytes.fromhex(h)
        i = b.find(bytes.fromhex("42005c0500000004"))
        op = int.from_bytes(b[i + 8:i + 12], "big") if i >= 0 else None
        by_op.setdefault((kind, op), []).append(b)
os.makedirs(out_dir, exist_ok=True)
for (kind, op), msgs in by_op.items():
    for i, b in enumerate(msgs[:2]):
        name = f"{kind.lower()}_{NAMES.get(op, op)}_{i}.bin"
        open(os.path.join(out_dir, name), "wb").write(b)
