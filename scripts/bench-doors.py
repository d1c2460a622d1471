#!/usr/bin/env python3
"""The check-in burst of scripts/bench ("doors open"): the preparation and
the verdict around its wrk run (loadtest/wrk/check_in.lua).

  bench-doors.py prep API EVENT SECTION TOKENS_FILE TICKETS PER_BUYER DUP_PERCENT OUT_DIR
    buys every place of the event's general-admission section through the
    API (TICKETS / PER_BUYER buyers, the first lines of TOKENS_FILE, a hold
    of PER_BUYER places each, paid), fetches every ticket's code as its
    owner, and writes OUT_DIR/doors-codes.txt: every code once and
    DUP_PERCENT % of them a second time, shuffled. Prints DOORS_TICKETS and
    DOORS_DUPES as shell variables.

  bench-doors.py verify WRK_OUT XRANGE_RAW HVALS_RAW PG_USED TICKETS DUPES
    from wrk's output (with check_in.lua's counts), the event's stream
    (`redis-cli --raw XRANGE`), its tickets hash (`redis-cli --raw HVALS`)
    and Postgres's count of used tickets: prints the DOORS_* figures and
    DOORS_OK=1 only if every code was admitted once (200s, `used` tickets in
    Redis and in Postgres, and ticket.checked_in entries: one per ticket,
    none twice) and every second scan answered 409 already_used.
"""
import http.client
import json
import random
import re
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

local = threading.local()


def request(api, method, path, token, body=None, headers=None):
    if not hasattr(local, "conn"):
        u = urllib.parse.urlparse(api)
        local.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = {"authorization": f"Bearer {token}", "content-type": "application/json", **(headers or {})}
    data = json.dumps(body).encode() if body is not None else None
    for attempt in range(2):
        try:
            local.conn.request(method, path, body=data, headers=h)
            r = local.conn.getresponse()
            return r.status, json.loads(r.read() or b"null")
        except (http.client.HTTPException, ConnectionError):
            local.conn.close()
            if attempt:
                raise
    raise AssertionError("unreachable")


def prep(api, event, section, tokens_file, tickets, per_buyer, dup_percent, out_dir):
    tickets, per_buyer = int(tickets), int(per_buyer)
    buyers = [t.strip() for t in open(tokens_file)][: (tickets + per_buyer - 1) // per_buyer]

    def buy(i):
        token = buyers[i]
        qty = min(per_buyer, tickets - i * per_buyer)
        s, hold = request(api, "POST", f"/api/events/{event}/holds", token, {"section_id": section, "quantity": qty})
        if s != 201:
            raise SystemExit(f"bench-doors: hold of {qty} places answered {s}: {hold}")
        key = hold["id"].replace("-", "_")
        s, paid = request(api, "POST", f"/api/holds/{hold['id']}/payment", token, {"payment_method": "pm_card_visa"},
                          {"idempotency-key": key})
        if s != 201:
            raise SystemExit(f"bench-doors: payment answered {s}: {paid}")

    def codes_of(token):
        s, listed = request(api, "GET", "/api/tickets", token)
        if s != 200:
            raise SystemExit(f"bench-doors: GET /api/tickets answered {s}")
        out = []
        for t in listed["tickets"]:
            if t["event_id"] != str(event):
                continue
            s, code = request(api, "GET", f"/api/tickets/{t['id']}/code", token)
            if s != 200:
                raise SystemExit(f"bench-doors: GET /api/tickets/{t['id']}/code answered {s}: {code}")
            out.append(code["code"])
        return out

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(buy, range(len(buyers))))
        codes = [c for cs in pool.map(codes_of, buyers) for c in cs]
    if len(codes) != tickets:
        raise SystemExit(f"bench-doors: {len(codes)} codes for {tickets} tickets")
    rng = random.Random(16)
    dupes = rng.sample(codes, len(codes) * int(dup_percent) // 100)
    scans = codes + dupes
    rng.shuffle(scans)
    with open(f"{out_dir}/doors-codes.txt", "w") as f:
        f.write("\n".join(scans) + "\n")
    print(f"DOORS_TICKETS={len(codes)}")
    print(f"DOORS_DUPES={len(dupes)}")


def unit(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}[u]


def verify(wrk_out, xrange_raw, hvals_raw, pg_used, tickets, dupes):
    tickets, dupes = int(tickets), int(dupes)
    text = open(wrk_out).read()
    counts = re.search(r"check-in admitted=(\d+) again=(\d+) other=(\d+) filler=(\d+)", text)
    admitted, again, other, filler = (int(x) for x in counts.groups()) if counts else (0, 0, 0, 0)
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    secs = unit(m.group(2), m.group(3)) / 1000.0 if m else 0
    lat = {p: unit(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    sockerr = sum(int(x) for x in sock.groups()) if sock else 0
    # The stream, as `redis-cli --raw XRANGE` prints it: id, then field and
    # value lines; count ticket.checked_in per ticket.
    per_ticket = {}
    lines = open(xrange_raw).read().split("\n")
    fields, i = {}, 0
    def flush():
        if fields.get("type") == "ticket.checked_in":
            per_ticket[fields.get("ticket")] = per_ticket.get(fields.get("ticket"), 0) + 1
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\d+-\d+$", line):
            flush()
            fields, i = {}, i + 1
            continue
        if i + 1 < len(lines):
            fields[line] = lines[i + 1]
        i += 2
    flush()
    used_redis = sum(1 for v in open(hvals_raw).read().split("\n") if v.startswith("used|"))
    doubles = sum(1 for n in per_ticket.values() if n > 1)
    scans = admitted + again + other
    ok = (admitted == tickets and again == dupes and other == 0 and sockerr == 0 and used_redis == tickets
          and int(pg_used) == tickets and len(per_ticket) == tickets and doubles == 0)
    print(f"DOORS_RATE={scans / secs if secs else 0:.0f}")
    print(f"DOORS_P50={lat.get('50', 0):.2f}")
    print(f"DOORS_P99={lat.get('99', 0):.2f}")
    print(f"DOORS_SCANS={scans}")
    print(f"DOORS_ADMITTED={admitted}")
    print(f"DOORS_AGAIN={again}")
    print(f"DOORS_OTHER={other + sockerr}")
    print(f"DOORS_FILLER={filler}")
    print(f"DOORS_USED_REDIS={used_redis}")
    print(f"DOORS_USED_PG={int(pg_used)}")
    print(f"DOORS_STREAM_TICKETS={len(per_ticket)}")
    print(f"DOORS_DOUBLE={doubles}")
    print(f"DOORS_OK={1 if ok else 0}")


if __name__ == "__main__":
    {"prep": prep, "verify": verify}[sys.argv[1]](*sys.argv[2:])
