#!/usr/bin/env python3
"""The summary table of scripts/bench: every rate beside the raw Redis rate
of the same script measured in the same run, CPU per hold, the Goose rush
per request type, errors by status, persister lag, and the verdict.

Usage: bench-report.py BENCH_DIR RB_RATE RB_US RB_CREATED LAG FAIL SMOKE
Prints `RESULT: PASS` or `RESULT: FAIL (...)` last.
"""
import json
import os
import re
import sys

bench, rb_rate, rb_us, rb_created, lag, fail, smoke = sys.argv[1:8]
rb_rate, rb_us = float(rb_rate), float(rb_us)
problems = []
if fail != "0":
    problems.append("an invariant check failed (see above)")


def lean(name):
    env = {}
    with open(os.path.join(bench, f"lean-{name}.env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            env[k.split("_", 2)[2]] = float(v)
    return env


direct, nginx = lean("direct"), lean("nginx")
ratio = lambda r: f"{r / rb_rate:.2f}x" if rb_rate else "-"

print()
print("Stampede benchmark" + (" (smoke: figures not meaningful)" if smoke else ""))
print(f"machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}")
print()
print(f"{'measure':44} {'rate/s':>9} {'vs raw':>7} {'p50 ms':>7} {'p99 ms':>7} {'svc CPU µs/hold':>16} {'Redis CPU µs/hold':>18} {'Redis µs/call':>14}")
print(f"{'redis-benchmark EVALSHA hold.lua (-P16, 64c)':44} {rb_rate:9.0f} {'1.00x':>7} {'':>7} {'':>7} {'':>16} {'':>18} {rb_us:14.2f}")
for label, r in (("lean holds, direct (wrk, 64 conns)", direct), ("lean holds, through nginx (wrk, 64 conns)", nginx)):
    print(f"{label:44} {r['RATE']:9.0f} {ratio(r['RATE']):>7} {r['P50']:7.2f} {r['P99']:7.2f} {r['CPU_US']:16.1f} {r['REDIS_CPU_US']:18.1f} {r['REDIS_US']:14.2f}")
print(f"  nginx / direct: {nginx['RATE'] / direct['RATE']:.2f}  (target ≥ 0.5)" if direct["RATE"] else "")
print("  targets: direct ≥ 45,000 holds/s with p99 ≤ 5 ms; service CPU ≤ 12 µs/hold; Redis ≤ 8 µs/hold")
print("  (the nginx row's service CPU is the whole stack process: it includes the persister writing the holds)")
for label, r in (("direct", direct), ("nginx", nginx)):
    if r["ERRORS"] > 0:
        problems.append(f"lean {label}: {int(r['ERRORS'])} requests were not 201")

report = json.load(open(os.path.join(bench, "rush.json")))
pct = {(m["method"], m["name"]): m for m in report.get("raw_response_metrics", [])}
codes = {(m["method"], m["name"]): m["status_codes"] for m in report.get("status_code_metrics", [])}
duration = report.get("raw_metrics", {}).get("duration", 0) or 1
print()
print(f"Goose rush ({report.get('raw_metrics', {}).get('maximum_users', '?')} users, {duration}s)")
print(f"{'request':22} {'count':>8} {'per s':>8} {'p50 ms':>7} {'p99 ms':>7}  statuses")
fivexx = 0
for m in report.get("raw_request_metrics", []):
    key = (m["method"], m["name"])
    p = pct.get(key, {})
    status = codes.get(key, "")
    for count, code in re.findall(r"([\d,]+) \[(\d+)\]", status):
        if code.startswith("5") or code == "0":
            if m["name"] != "Aggregated":
                fivexx += int(count.replace(",", ""))
    print(f"{m['method'] + ' ' + m['name']:22} {m['number_of_requests']:8} {m['number_of_requests'] / duration:8.0f} "
          f"{p.get('percentile_50', 0):7} {p.get('percentile_99', 0):7}  {status}")
holds = next((m for m in report.get("raw_request_metrics", []) if m["name"] == "hold"), None)
pays = next((m for m in report.get("raw_request_metrics", []) if m["name"] == "pay"), None)
if holds:
    print(f"  holds/s {holds['number_of_requests'] / duration:.0f}, payments/s {(pays or {}).get('number_of_requests', 0) / duration:.0f}"
          f"  (raw Redis hold rate this run: {rb_rate:.0f}/s)")
print(f"  5xx or transport errors: {fivexx}")
print(f"  persister lag after the rush: {lag} s (target ≤ 10 s)")
if fivexx:
    problems.append(f"{fivexx} 5xx/transport errors in the rush")
if not re.match(r"^[\d.]+$", lag):
    problems.append("the persister did not drain")
elif float(lag) > 10 and not smoke:
    problems.append(f"persister lag {lag}s > 10s")
print()
with open(os.path.join(bench, "oversell.txt")) as f:
    print("oversell check: " + f.read().strip().splitlines()[0] if os.path.getsize(f.name) else "oversell check: no output")
print()
print("RESULT: PASS" if not problems else "RESULT: FAIL (" + "; ".join(problems) + ")")
