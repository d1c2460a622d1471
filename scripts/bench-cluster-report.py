#!/usr/bin/env python3
"""scripts/bench-cluster-report.py — the table of scripts/bench-cluster from its runs.txt.

    scripts/bench-cluster-report.py RUNS_FILE SECONDS

Each line of RUNS_FILE: topology, Redis port, event, FCALL calls and usec on
that Redis over the run, its CPU ticks, the service's CPU ticks, CLK_TCK, and
the wrk output of that event's run. Exits 1 if any answer was not a 201.
"""
import re, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
secs = float(sys.argv[2])

def wrk(path):
    text = open(path).read()
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    unit = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
    p99 = [float(v) * unit[u] for p, v, u in re.findall(r"^\s+(99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)]
    return rate, (p99[0] if p99 else 0.0), int(bad.group(1)) if bad else 0

print()
print("  holds on three events at once, one wrk each (21 connections, straight to reservation)")
print(f"  {'topology':<9} {'Redis':<7} {'event':>5} {'holds/s':>9} {'p99 ms':>8} {'non-201':>8} {'Redis CPU µs/hold':>18} {'FCALL µs':>9}")
per = {}
for topo, node, event, calls, usec, ticks, app_ticks, clk, path in rows:
    rate, p99, bad = wrk(path)
    calls, usec, ticks, app_ticks, clk = int(calls), int(usec), int(ticks), int(app_ticks), int(clk)
    per.setdefault(topo, {"rate": 0.0, "nodes": {}, "app": app_ticks / clk, "bad": 0})
    t = per[topo]
    t["rate"] += rate
    t["bad"] += bad
    n = t["nodes"].setdefault(node, {"calls": calls, "usec": usec, "cpu": ticks / clk})
    cpu_us = 1e6 * n["cpu"] / n["calls"] if n["calls"] else 0.0
    fcall_us = n["usec"] / n["calls"] if n["calls"] else 0.0
    print(f"  {topo:<9} {node:<7} {event:>5} {rate:>9.0f} {p99:>8.2f} {bad:>8} {cpu_us:>18.1f} {fcall_us:>9.1f}")
print()
print(f"  {'topology':<9} {'holds/s':>9} {'Redis processes':>16} {'service CPU µs/hold':>20}")
for topo, t in per.items():
    holds = t["rate"] * secs
    app_us = 1e6 * t["app"] / holds if holds else 0.0
    t["app_us"] = app_us
    print(f"  {topo:<9} {t['rate']:>9.0f} {len(t['nodes']):>16} {app_us:>20.1f}")
# What one core sustains at each topology's measured cost per hold (the
# costliest shard's), and so how many shards and API cores a sale needs,
# each core kept at 70 %.
cost = {}
for topo, t in per.items():
    redis_us = max(1e6 * n["cpu"] / n["calls"] for n in t["nodes"].values() if n["calls"])
    cost[topo] = (redis_us, t["app_us"])
print()
for topo, (redis_us, app_us) in cost.items():
    print(f"  at the {topo} run's costs: one Redis core sustains about {1e6 / redis_us:,.0f} holds/s ({redis_us:.1f} µs of Redis CPU a hold),"
          f" one API core about {1e6 / app_us:,.0f} ({app_us:.1f} µs of service CPU a hold)")
print()
head = "".join(f"  {'shards @ ' + t:>18} {'API cores @ ' + t:>20}" for t in cost)
print(f"  {'holds/s wanted':>15}{head}")
for want in (10_000, 50_000, 100_000, 250_000):
    cells = ""
    for redis_us, app_us in cost.values():
        shard, api = 0.7 * 1e6 / redis_us, 0.7 * 1e6 / app_us
        cells += f"  {max(1, -(-want // int(shard))):>18} {max(1, -(-want // int(api))):>20}"
    print(f"  {want:>15,}{cells}")
bad = sum(t["bad"] for t in per.values())
print()
print("  0 oversold (stampede admin check on every event: drift 0)")
print("RESULT: " + ("PASS" if bad == 0 else f"FAIL ({bad} answers that were not 201)"))
sys.exit(0 if bad == 0 else 1)
