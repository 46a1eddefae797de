#!/usr/bin/env python3
"""Automation figures for a drover binary (run on loopback, prints figures, asserts nothing
about them):

1. event -> action start and finish latency: N webhooks posted one after another, each
   firing a rule whose action is core.noop; the times come from the controller (the
   event's time, the execution's started_at and finished_at).
2. per-task overhead of a 50-task sequential workflow of core.noop, end to end through
   the store (5 runs): (finished_at - started_at) / 50.

With K (default 0), K datastore keys (one in ten a secret) are set before the workflow
runs, to show what the datastore's size costs per task.

Usage: python3 bench/scripts/automation.py target/release/drover [N] [K]
"""
import json, os, subprocess, sys, time, urllib.request, tempfile, re, statistics, datetime
BIN = sys.argv[1]; N = int(sys.argv[2]) if len(sys.argv) > 2 else 200
K = int(sys.argv[3]) if len(sys.argv) > 3 else 0
d = tempfile.mkdtemp()
srv = subprocess.Popen([BIN, "server", "--listen", "127.0.0.1:0", "--data-dir", d], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "RUST_LOG": "info,sqlx=warn"})
addr = token = None
for line in srv.stdout:
    m = re.search(r"drover_api_[0-9a-f]+", line); token = token or (m.group(0) if m else None)
    m = re.search(r"listening on http://(\S+)", line)
    if m: addr = m.group(1).strip('",')
    if addr and token: break
url = f"http://{addr}"
env = {**os.environ, "DROVER_URL": url, "DROVER_TOKEN": token}
pk = os.path.join(d, "pk"); os.makedirs(pk + "/rules")
open(pk + "/pack.yaml", "w").write("ref: lat\nname: lat\nversion: 1.0.0\ndescription: latency\n")
open(pk + "/rules/r.yaml", "w").write("name: r\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters: {url: lat}\nmax_rate: {count: 1000000, per: 1m}\naction:\n  ref: core.noop\n")
subprocess.run([BIN, "packs", "install", pk], env=env, check=True, capture_output=True)
def call(method, path, body=None):
    req = urllib.request.Request(url + "/api/v1" + path, method=method, data=json.dumps(body).encode() if body is not None else None, headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req))
def ts(s): return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000
t0 = time.time()
for i in range(N):
    call("POST", "/webhooks/lat", {"i": i})
time.sleep(2)
execs = []; after = None
while True:
    page = call("GET", "/executions?kind=action&limit=1000" + (f"&after={after}" if after else ""))
    execs += page["items"]; after = page.get("next")
    if not after: break
events = {}
lst = call("GET", "/events?type=webhook&limit=1000")
items = lst["items"] if isinstance(lst, dict) else lst
for e in items: events[e["id"]] = ts(e["time"])
start, fin = [], []
for e in execs:
    ev = e["action"].get("event_id")
    if ev in events and e.get("started_at") and e.get("finished_at"):
        start.append(ts(e["started_at"]) - events[ev]); fin.append(ts(e["finished_at"]) - events[ev])
def pct(v, p): v = sorted(v); return v[min(len(v)-1, int(len(v)*p))]
print(f"n={len(start)} of {N}: event→start p50 {pct(start,.5):.1f} p95 {pct(start,.95):.1f} p99 {pct(start,.99):.1f} max {max(start):.1f} ms; event→finished p50 {pct(fin,.5):.1f} p99 {pct(fin,.99):.1f} ms")
# 50-task workflow
for i in range(K):
    call("PUT", f"/kv/system/bench_{i:05d}", {"value": f"value-{i}", "secret": i % 10 == 0})
if K:
    print(f"datastore: {K} keys ({(K + 9) // 10} secrets)")
os.makedirs(pk + "/actions/workflows", exist_ok=True)
tasks = "".join(f"  t{i}:\n    action: core.noop\n" + (f"    next:\n      - when: '{{{{ succeeded() }}}}'\n        do: t{i+1}\n" if i < 49 else "") for i in range(50))
open(pk + "/actions/workflows/w.yaml", "w").write("version: 1.0\ntasks:\n" + tasks)
open(pk + "/actions/w.yaml", "w").write("name: w\nrunner_type: orquesta\nentry_point: workflows/w.yaml\n")
subprocess.run([BIN, "packs", "install", pk], env=env, check=True, capture_output=True)
per = []; split = []
for r in range(5):
    e = call("POST", "/actions/lat.w/run", {"parameters": {}})
    while True:
        x = call("GET", f"/executions/{e['id']}")
        if x["status"] in ("succeeded", "failed", "cancelled"): break
        time.sleep(0.05)
    assert x["status"] == "succeeded", x
    per.append((ts(x["finished_at"]) - ts(x["started_at"])) / 50)
    # Where the time goes, from the store's own timestamps (Unix ms).
    import sqlite3
    db = sqlite3.connect(os.path.join(d, "drover.db"))
    rows = db.execute("SELECT created_at, started_at, finished_at FROM executions WHERE parent_id = ? ORDER BY created_at", (e["id"],)).fetchall()
    claim = statistics.mean(r[1] - r[0] for r in rows); run = statistics.mean(r[2] - r[1] for r in rows)
    engine = statistics.mean(rows[i + 1][0] - rows[i][2] for i in range(len(rows) - 1))
    split.append((claim, run, engine))
print("  where: " + "; ".join(f"queued→claimed {c:.2f}, claimed→finished {r:.2f}, finished→next queued {g:.2f} ms" for c, r, g in split))
print("50-task noop workflow: per task " + ", ".join(f"{p:.1f}" for p in per) + f" ms (median {statistics.median(per):.1f})")
srv.terminate()
