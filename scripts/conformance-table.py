#!/usr/bin/env python3
"""Side-by-side table of two `kmipctl conformance run` outputs (PASS/FAIL lines
named vX.Y/file.xml): per version and profile, files passed by each server.
Usage: conformance-table.py KMIPD_OUTPUT PYKMIP_OUTPUT"""
import re, sys
from collections import OrderedDict

PROFILES = [("SKLC", "SKLC"), ("SKFF", "SKFF"), ("AKLC", "AKLC"), ("OMOS", "OMOS"), ("TL", "TL"),
            ("SASED", "SASED"), ("CS-BC", "CS.BC"), ("CS-AC", "CS.AC"), ("CS-RNG", "CS.RNG"),
            ("MSGENC", "MSGENC"), ("SUITEB", "SUITEB"), ("TC (use cases)", "TC")]

def profile(name):
    f = name.split("/")[-1]
    for label, pat in PROFILES:
        if re.match(pat + r"[-_]", f):
            return label
    return "other"

def read(path):
    out = {}
    for line in open(path):
        m = re.match(r"(PASS|FAIL) (\S+?)(:|$)", line.strip())
        if m:
            out[m.group(2)] = m.group(1) == "PASS"
    return out

k, p = read(sys.argv[1]), read(sys.argv[2])
for v in sorted({n.split("/")[0] for n in k}):
    rows = OrderedDict()
    for n in sorted(k):
        if n.startswith(v + "/"):
            r = rows.setdefault(profile(n), [0, 0, 0])
            r[0] += 1; r[1] += k[n]; r[2] += p.get(n, False)
    print(f"\n### {v}\n\n| profile | files | kmipd passes | PyKMIP 0.11 passes |\n| --- | ---: | ---: | ---: |")
    order = [l for l, _ in PROFILES] + ["other"]
    for label in sorted(rows, key=order.index):
        f, a, b = rows[label]
        print(f"| {label} | {f} | {a} | {b} |")
    t = [sum(x[i] for x in rows.values()) for i in range(3)]
    print(f"| **all** | {t[0]} | {t[1]} | {t[2]} |")
