#!/usr/bin/env python3
"""The summary table of scripts/bench: every rate beside the rate of the
fixed reference script measured in the same run (the honest denominator),
the real hold function's own rate, CPU and Redis bytes per hold, expiry
lag, the two Goose runs (buyers with think times; no think time) per
request kind with the CPU of every process over each run and the process
that stands in the way, errors by status, persister lag, the check-in
burst (doors open: check-ins/s, p99, double admissions), and the verdict.

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
if os.path.exists(os.path.join(bench, "persister.env")):
    p = env("persister.env")
    want = 2 * direct["RATE"]
    print(f"{'persister (persister_bench, batch 500)':48} {p['PERSIST_RATE']:9.0f} messages/s of {p['PERSIST_MESSAGES']:.0f}"
          f"; target ≥ 2 × the direct hold rate = {want:.0f}/s: {'met' if p['PERSIST_RATE'] >= want else 'not met'}")
    burst = p.get("PERSIST_BURST_LAG", "-")
    met = isinstance(burst, float) and burst <= 10
    print(f"  the stack's persister drained the direct and expiry runs' burst {burst if isinstance(burst, float) else str(burst).replace('_', ' ')}"
          f"{' s' if isinstance(burst, float) else ''} after its end (target ≤ 10 s: {'met' if met else 'not met'})")
for label, r in (("direct", direct), ("nginx", nginx)):
    if r["ERRORS"] > 0:
        problems.append(f"lean {label}: {int(r['ERRORS'])} requests were not 201")
if os.path.exists(os.path.join(bench, "seatmap.env")):
    m = env("seatmap.env")
    print(f"{'seat map, ?format=rows gzip, nginx (wrk, 64 c)':48} {m['MAP_RATE']:9.0f} {'':>7} {m['MAP_P50']:7.2f} {m['MAP_P99']:7.2f}")
    print(f"  a 20,000-seat section: {m['MAP_BYTES']:.0f} B of JSON, {m['MAP_GZIP_BYTES']:.0f} B gzipped; target ≥ 20,000 requests/s")
    if m["MAP_ERRORS"] > 0:
        problems.append(f"seat map: {int(m['MAP_ERRORS'])} requests were not 200")

PROCS = (("stampede", "stampede (all services)"), ("redis", "Redis"), ("nginx", "nginx"),
         ("postgres", "PostgreSQL"), ("goose", "Goose (the buyers)"))
HUMAN_KINDS = ("event", "seat map", "hold best", "hold seats")


def ms(v):
    return f"{v:7.1f}" if v is not None else f"{'-':>7}"


def percentile(times_us, q):
    """q-th quantile (ms) of Goose's histogram {µs bucket: count}."""
    buckets = sorted((int(k), n) for k, n in times_us.items())
    total = sum(n for _, n in buckets)
    seen = 0
    for us, n in buckets:
        seen += n
        if seen >= q * total:
            return us / 1000
    return None


def cpu_table(name, requests):
    """The CPU each process used over the run, beside its request rate, and
    the process that stands in the way."""
    path = os.path.join(bench, f"{name}-cpu.json")
    if not os.path.exists(path):
        return
    cpu = json.load(open(path))
    b, a = cpu["before"], cpu["after"]
    hz, cores, wall = a["hz"], a["cpus"], max(a["wall"] - b["wall"], 1e-9)
    used = {k: (a["procs"].get(k, 0) - b["procs"].get(k, 0)) / hz for k, _ in PROCS if k != "goose"}
    used["goose"] = cpu["goose"] / hz
    busy = (a["busy"] - b["busy"]) / hz
    used["irq"] = (a.get("irq", 0) - b.get("irq", 0)) / hz
    used["other"] = max(busy - sum(used.values()), 0)
    print(f"  CPU over the run ({wall:.1f} s of wall clock, {cores} cores, {requests / wall:.0f} requests/s over it):")
    print(f"  {'process':28} {'CPU s':>7} {'cores':>6} {'of busy':>8} {'µs/request':>11}")
    for key, label in PROCS + (("irq", "kernel interrupts (network)"), ("other", "the rest of the machine")):
        u = used[key]
        print(f"  {label:28} {u:7.1f} {u / wall:6.2f} {(u / busy if busy else 0):8.0%} {u * 1e6 / max(requests, 1):11.0f}")
    print(f"  {'machine busy':28} {busy:7.1f} {busy / wall:6.2f} {'':>8} {busy * 1e6 / max(requests, 1):11.0f}")
    labels = dict(PROCS + (("irq", "kernel interrupts (network)"), ("other", "the rest of the machine (not this stack)")))
    top = max(labels, key=lambda k: used[k])
    if used["redis"] / wall >= 0.9:
        wall_is = f"Redis: {used['redis'] / wall:.2f} of its one core"
    elif busy / wall >= 0.9 * cores:
        wall_is = (f"the machine's {cores} cores ({busy / wall:.2f} busy); the most of it: {labels[top]},"
                   f" {used[top] / wall:.2f} cores ({used[top] / busy:.0%})")
    else:
        wall_is = (f"no process: the machine was {busy / wall / cores:.0%} busy (the most: {labels[top]},"
                   f" {used[top] / wall:.2f} cores) — the rate is what the buyers asked for")
    print(f"  the wall: {wall_is}")


def goose_run(name, title):
    """Per request kind: count, rate, p50 and p99, statuses; returns
    (report, 5xx count) or None without a report."""
    path = os.path.join(bench, f"{name}.json")
    if not os.path.exists(path):
        return None
    report = json.load(open(path))
    # Percentiles from the raw histograms (µs), not the JSON's truncated ms.
    raw = report.get("raw_metrics", {}).get("requests", {})
    every = {}
    for r in raw.values():
        for us, n in r.get("raw_data", {}).get("times_us", {}).items():
            every[us] = every.get(us, 0) + n
    raw[" Aggregated"] = {"raw_data": {"times_us": every}}
    pct = {}
    for m in report.get("raw_response_metrics", []):
        times = raw.get(f"{m['method']} {m['name']}", {}).get("raw_data", {}).get("times_us")
        pct[(m["method"], m["name"])] = (
            {"percentile_50": percentile(times, 0.5), "percentile_99": percentile(times, 0.99)} if times
            else {k: float(m[k]) for k in ("percentile_50", "percentile_99")})
    codes = {(m["method"], m["name"]): m["status_codes"] for m in report.get("status_code_metrics", [])}
    duration = report.get("raw_metrics", {}).get("duration", 0) or 1
    print()
    print(f"{title} ({report.get('raw_metrics', {}).get('maximum_users', '?')} users, {duration}s)")
    print(f"{'request':22} {'count':>8} {'per s':>8} {'p50 ms':>7} {'p99 ms':>7}  statuses")
    fivexx = 0
    total = 0
    for m in report.get("raw_request_metrics", []):
        key = (m["method"], m["name"])
        p = pct.get(key, {})
        status = codes.get(key, "")
        if m["name"] != "Aggregated":
            total += m["number_of_requests"]
            for count, code in re.findall(r"([\d,]+) \[(\d+)\]", status):
                if code.startswith("5") or code == "0":
                    fivexx += int(count.replace(",", ""))
        print(f"{m['method'] + ' ' + m['name']:22} {m['number_of_requests']:8} {m['number_of_requests'] / duration:8.0f} "
              f"{ms(p.get('percentile_50'))} {ms(p.get('percentile_99'))}  {status}")
    rows = {m["name"]: m for m in report.get("raw_request_metrics", [])}
    holds = sum(rows[k]["number_of_requests"] for k in ("hold best", "hold seats", "hold ga") if k in rows)
    pays = rows.get("pay", {}).get("number_of_requests", 0)
    print(f"  holds/s {holds / duration:.0f}, payments/s {pays / duration:.0f}, requests/s {total / duration:.0f}"
          f"  (reference script this run: {ref_rate:.0f}/s); 5xx or transport errors: {fivexx}")
    cpu_table(name, total)
    return report, pct, fivexx, total / duration


fivexx = 0
human = goose_run("rush", "Goose rush: buyers with think times")
if human:
    _, pct, errors, _ = human
    fivexx += errors
    p99 = {k: pct.get(("POST" if k.startswith("hold") else "GET", k), {}).get("percentile_99") for k in HUMAN_KINDS}
    slow = [f"{k} {v:.1f} ms" for k, v in p99.items() if v is not None and v > 50] + ([f"{errors} 5xx"] if errors else [])
    print("  target: p99 ≤ 50 ms for event, seat map and holds, zero 5xx — " + ("not met: " + ", ".join(slow) if slow else "met"))
else:
    problems.append("no report of the Goose rush")
zero = goose_run("rush-zero-think", "Goose zero-think run: the same buyers with no think time, no waiting room"
                 " (the platform's mixed-workload throughput)")
if zero:
    _, _, errors, rate = zero
    fivexx += errors
    print(f"  target: ≥ 10,000 requests/s in all, or the process that stops it named above — {rate:.0f} requests/s")
print(f"  persister lag after the rush: {lag} s (target ≤ 10 s)")
if fivexx:
    problems.append(f"{fivexx} 5xx/transport errors in the Goose runs")
if not re.match(r"^[\d.]+$", lag):
    problems.append("the persister did not drain")
elif float(lag) > 10 and not smoke:
    problems.append(f"persister lag {lag}s > 10s")
print()
with open(os.path.join(bench, "oversell.txt")) as f:
    lines = f.read().strip().splitlines()
    print("\n".join("oversell check: " + line for line in lines) if lines else "oversell check: no output")
print()
if os.path.exists(os.path.join(bench, "doors.env")):
    d = env("doors.env")
    print()
    print(f"{'measure':48} {'rate/s':>9} {'':>7} {'p50 ms':>7} {'p99 ms':>7}")
    print(f"{'check-in burst, nginx (wrk, 64 conns)':48} {d['DOORS_RATE']:9.0f} {'':>7} {d['DOORS_P50']:7.2f} {d['DOORS_P99']:7.2f}")
    print(f"  doors open: {d['DOORS_SCANS']:.0f} scans of {d['DOORS_USED_REDIS']:.0f} used tickets; admitted {d['DOORS_ADMITTED']:.0f},"
          f" second scans answered 409 already_used {d['DOORS_AGAIN']:.0f}, anything else {d['DOORS_OTHER']:.0f};"
          f" used in Postgres {d['DOORS_USED_PG']:.0f}; tickets with ticket.checked_in {d['DOORS_STREAM_TICKETS']:.0f},"
          f" double admissions {d['DOORS_DOUBLE']:.0f}")
    print(f"  (p50/p99 include the {d['DOORS_FILLER']:.0f} ticket-key requests of connections whose share was all sent)")
    if d["DOORS_OK"] != 1:
        problems.append(f"check-in burst: {d['DOORS_DOUBLE']:.0f} double admissions, {d['DOORS_ADMITTED']:.0f} admitted,"
                        f" {d['DOORS_AGAIN']:.0f} second scans refused, {d['DOORS_OTHER']:.0f} other answers")
else:
    problems.append("check-in burst: no figures (doors.env missing)")

print("RESULT: PASS" if not problems else "RESULT: FAIL (" + "; ".join(problems) + ")")
