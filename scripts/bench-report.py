#!/usr/bin/env python3
"""The summary table of scripts/bench: every rate beside the rate of the
fixed reference script measured in the same run (the honest denominator),
the real hold function's own rate, CPU and Redis bytes per hold, expiry
lag, the Goose rush per request type, errors by status, persister lag, and
the verdict.

Usage: bench-report.py BENCH_DIR LAG FAIL SMOKE (and BENCH_DIR's *.env files)
Prints `RESULT: PASS` or `RESULT: FAIL (...)` last.
"""
import json
import os
import re
import sys

bench, lag, fail, smoke = sys.argv[1:5]
problems = []


def env(name):
    out = {}
    with open(os.path.join(bench, name)) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            if k:
                out[k] = float(v) if re.match(r"^-?[\d.]+$", v) else v
    return out


rb, mem, exp = env("redis.env"), env("memory.env"), env("expiry.env")
ref_rate = rb["REF_ALWAYS_RATE"]
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
ratio = lambda r: f"{r / ref_rate:.3f}x" if ref_rate else "-"

print()
print("Stampede benchmark" + (" (smoke: figures not meaningful)" if smoke else ""))
print(f"machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}")
print()
print(f"{'measure':48} {'rate/s':>9} {'vs ref':>7} {'p50 ms':>7} {'p99 ms':>7} {'svc CPU µs/hold':>16} {'Redis CPU µs/hold':>18} {'Redis µs/call':>14}")
blank = f"{'':>7} {'':>7} {'':>16} {'':>18}"
for fsync, name in (("ALWAYS", "always"), ("EVERYSEC", "everysec"), ("REPLICA", "everysec + replica")):
    if not rb.get(f"REF_{fsync}_RATE"):
        continue
    r, h = rb[f"REF_{fsync}_RATE"], rb[f"RB_{fsync}_RATE"]
    note = " (default)" if rb.get("FSYNC_DEFAULT", "").upper() == fsync else ""
    print(f"{'reference script, ' + name + note:48} {r:9.0f} {'1.000x':>7} {blank} {rb[f'REF_{fsync}_US']:14.2f}")
    print(f"{'hold function (FCALL), ' + name:48} {h:9.0f} {h / r if r else 0:6.3f}x {blank} {rb[f'RB_{fsync}_US']:14.2f}")
    if rb.get(f"BEST_{fsync}_RATE"):
        b = rb[f"BEST_{fsync}_RATE"]
        print(f"{'best-available function (FCALL), ' + name:48} {b:9.0f} {b / r if r else 0:6.3f}x {blank} {rb[f'BEST_{fsync}_US']:14.2f}")
print("  redis-benchmark -P16 -c64, random user, hold id and seat per call; target ≤ 10 µs per hold call")
print("  best available: 2 adjacent seats per call, chosen by the function in a 1,000,000-seat section (5,000 rows of 200)")
for label, r in (("lean holds, direct (wrk, 64 conns)", direct), ("lean holds, through nginx (wrk, 64 conns)", nginx)):
    print(f"{label:48} {r['RATE']:9.0f} {ratio(r['RATE']):>7} {r['P50']:7.2f} {r['P99']:7.2f} {r['CPU_US']:16.1f} {r['REDIS_CPU_US']:18.1f} {r['REDIS_US']:14.2f}")
print(f"  nginx / direct: {nginx['RATE'] / direct['RATE']:.2f}  (target ≥ 0.5)" if direct["RATE"] else "")
print("  targets: direct ≥ 45,000 holds/s with p99 ≤ 5 ms; service CPU ≤ 12 µs/hold; Redis CPU ≤ 20 µs/hold")
print(f"  Redis bytes per live 1-seat hold (direct run): {mem['MEM_STATE_BYTES']:.0f} B of state"
      f" + {mem['MEM_STREAM_BYTES']:.0f} B of stream until the persister and notifier have read it (target ≤ 120 B)")
print(f"  expiry run: {exp['EXP_CREATED']:.0f} holds of 2 s, {exp['EXP_EXPIRED']:.0f} hold.expired; deadline → released"
      f" p50 {exp['EXP_P50_MS']:.0f} ms, p99 {exp['EXP_P99_MS']:.0f} ms, max {exp['EXP_MAX_MS']:.0f} ms (target p99 ≤ 1,000 ms)")
if exp["EXP_EXPIRED"] != exp["EXP_CREATED"]:
    problems.append(f"expiry run: {exp['EXP_CREATED']:.0f} holds but {exp['EXP_EXPIRED']:.0f} hold.expired")
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
          f"  (reference script this run: {ref_rate:.0f}/s)")
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
