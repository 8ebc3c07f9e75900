#!/usr/bin/env python3
"""Quantiles of a Prometheus histogram between two /metrics scrapes.

usage: histq.py BEFORE AFTER METRIC -> "p50 <= X us, p99 <= Y us, p99.9 <= Z us (n requests)"
Bucket upper bounds, so each figure is "at most"; the buckets are
25, 50, 100, 200, 400, 700 us, 1, 2, 5, 10, 50 ms.
"""
import re, sys

def buckets(path, metric):
    out = {}
    for line in open(path):
        m = re.match(re.escape(metric) + r'_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out

a, b = buckets(sys.argv[1], sys.argv[3]), buckets(sys.argv[2], sys.argv[3])
rows = sorted(((float('inf') if k == '+Inf' else float(k)), b[k] - a.get(k, 0)) for k in b)
total = rows[-1][1]
def q(p):
    for le, n in rows:
        if n >= p * total:
            return "inf" if le == float('inf') else f"{le*1e6:.0f}"
    return "inf"
print(f"server time p50 <= {q(0.5)} us, p99 <= {q(0.99)} us, p99.9 <= {q(0.999)} us ({total:.0f} requests)")
