#!/usr/bin/env python3
"""Expiry lag of scripts/bench's expiry run: reads `redis-cli --raw XRANGE`
of the run's stream and prints, as shell variables, how many holds were
created and expired and the lag from each hold's deadline (`exp`) to its
`hold.expired` (`at`, the release script's Redis time: its seats were
freed in the same step), p50, p99 and max in ms.

Usage: bench-expiry.py XRANGE_RAW_FILE
"""
import sys

lines = open(sys.argv[1]).read().split("\n")
created, lags = 0, []
entry = {}


def flush(e):
    global created
    if e.get("type") == "hold.created":
        created += 1
    elif e.get("type") == "hold.expired":
        lags.append(int(e["at"]) - int(e["exp"]))


# --raw prints each entry as its id, then field and value lines.
i = 0
while i < len(lines):
    line = lines[i]
    ms, dash, seq = line.partition("-")
    if dash and ms.isdigit() and seq.isdigit() and i + 1 < len(lines) and lines[i + 1] == "type":
        flush(entry)
        entry = {}
        i += 1
        continue
    if i + 1 < len(lines):
        entry[line] = lines[i + 1]
    i += 2
flush(entry)
lags.sort()


def pct(p):
    return lags[min(len(lags) - 1, int(len(lags) * p))] if lags else 0


print(f"EXP_CREATED={created}")
print(f"EXP_EXPIRED={len(lags)}")
print(f"EXP_P50_MS={pct(0.50)}")
print(f"EXP_P99_MS={pct(0.99)}")
print(f"EXP_MAX_MS={lags[-1] if lags else 0}")
