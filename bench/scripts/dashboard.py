#!/usr/bin/env python3
"""Dashboard and API figures at fleet scale for a drover binary (prints figures, asserts
nothing about them):

1. A controller's SQLite store is seeded with H hosts (default 10,000; 95 % up, 4 % down,
   1 % missing, labels role/rack/zone) and 10 live instances each (100,000), and a model
   version that places 10 instances of `app` on every `web` host, so the delta page has
   the whole fleet to compare.
2. Server time of the main pages, signed in like a browser: the fleet page and its
   2-second poll (plain, filtered, grouped, a far page), a host page, the delta page and
   its poll (plain, errors only, grouped by host). Each is fetched R times (default 10)
   after one warm-up; the time is to the last byte on loopback.
3. `wrk` against `GET /api/v1/hosts` (default page of 100, limit=1000, a selector) and
   `GET /api/v1/instances` (a page of 1,000 from the middle, one host's), with the
   latency distribution (p50, p99) and requests per second.

Usage: python3 bench/scripts/dashboard.py target/release/drover [HOSTS] [REPEATS]
"""
import json, os, re, signal, sqlite3, statistics, subprocess, sys, tempfile, time, uuid
import http.cookiejar, urllib.parse, urllib.request

BIN = sys.argv[1]
HOSTS = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
REPEATS = int(sys.argv[3]) if len(sys.argv) > 3 else 10
PER_HOST = 10
d = tempfile.mkdtemp()


def start(first):
    srv = subprocess.Popen([BIN, "server", "--listen", "127.0.0.1:0", "--data-dir", d],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, "RUST_LOG": "info,sqlx=warn"})
    addr = token = None
    for line in srv.stdout:
        m = re.search(r"drover_api_[0-9a-f]+", line)
        token = token or (m.group(0) if m else None)
        m = re.search(r"listening on http://(\S+)", line)
        if m:
            addr = m.group(1).strip('",')
        if addr and (token or not first):
            break
    # Keep draining the log so the controller never blocks on a full pipe.
    import threading
    threading.Thread(target=lambda: [None for _ in srv.stdout], daemon=True).start()
    return srv, addr, token


srv, addr, token = start(True)
srv.send_signal(signal.SIGTERM)
srv.wait(timeout=30)

# Seed the store.
db = sqlite3.connect(os.path.join(d, "drover.db"))
now = int(time.time() * 1000)
hosts, instances = [], []
for i in range(HOSTS):
    hid = str(uuid.uuid4())
    status = "missing" if i % 100 == 99 else ("down" if i % 25 == 7 else "up")
    labels = {"role": "web", "rack": f"r{i % 40:02d}", "zone": f"z{i % 3}"}
    facts = {"hostname": f"h-{i:05d}", "os": "linux", "kernel": "6.1", "arch": "x86_64",
             "cpus": 8, "memory_bytes": 16 << 30, "addresses": [f"10.0.{i // 250}.{i % 250}"],
             "agent_version": "0.1.0"}
    hosts.append((hid, f"h-{i:05d}", status, json.dumps(labels), json.dumps(facts), now, now))
    for k in range(PER_HOST):
        health = "unhealthy" if (i * PER_HOST + k) % 97 == 0 else "healthy"
        instances.append((hid, "app", k, "1.0.0", "running", health, "seeded", 1000 + k, 0, None, now))
db.executemany("INSERT INTO hosts (id, name, status, labels, facts, enrolled_at, last_seen_at) "
               "VALUES (?, ?, ?, ?, ?, ?, ?)", hosts)
db.executemany("INSERT INTO instances (host_id, service, idx, version, state, health, spec_hash, "
               "pid, restarts, drift, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", instances)
model = """kind: hostclass
name: web
selector: label.role=web
---
kind: service
name: app
version: "1.0.0"
artifact:
  url: https://example.invalid/app-1.0.0.tar.gz
  sha256: 30727946d0ec8ad557c5ff2f0a309c27dc5ca0614544dcb8196edc4bcbf31904
placement:
  hostclass: web
  per_host: %d
scripts:
  start: "true"
  stop: "true"
""" % PER_HOST
db.execute("INSERT INTO model_versions (content_hash, author, message, files, created_at) "
           "VALUES (?, ?, ?, ?, ?)",
           ("seeded", "bench", "seeded model", json.dumps([{"path": "model.yaml", "text": model}]), now))
db.commit()
db.close()
print(f"seeded {HOSTS} hosts, {HOSTS * PER_HOST} instances")

srv, addr, _ = start(False)
url = f"http://{addr}"
try:
    # Sign in like a browser: the sign-in page's cookie and CSRF token, then the form.
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(url + "/ui/signin").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    body = urllib.parse.urlencode({"token": token, "csrf": csrf, "next": "/ui/fleet"}).encode()
    opener.open(urllib.request.Request(url + "/ui/signin", data=body, method="POST"))

    def timed(path):
        t = time.perf_counter()
        n = len(opener.open(url + path).read())
        return (time.perf_counter() - t) * 1000, n

    pages = [
        "/ui/fleet", "/ui/fleet/live", "/ui/fleet/live?selector=label.rack%3Dr07",
        "/ui/fleet/live?group=rack", "/ui/fleet/live?group=hostclass",
        "/ui/fleet/live?page=90", f"/ui/hosts/h-{HOSTS // 2:05d}",
        "/ui/delta", "/ui/delta/live", "/ui/delta/live?errors=1", "/ui/delta/live?group=host",
        "/ui/events",
    ]
    print(f"{'page':46} {'p50 ms':>8} {'max ms':>8} {'KB':>6}")
    for p in pages:
        timed(p)
        runs = [timed(p) for _ in range(REPEATS)]
        ms = sorted(r[0] for r in runs)
        print(f"{p:46} {statistics.median(ms):8.1f} {ms[-1]:8.1f} {runs[-1][1] / 1024:6.1f}")

    # wrk on the hosts API, and on the instances list (a page from the middle of the
    # fleet, through the cursor).
    for q in ["/hosts", "/hosts?limit=1000", "/hosts?selector=label.rack%3Dr07",
              "/hosts?selector=fact.status%21%3Dup",
              f"/instances?limit=1000&after=h-{HOSTS // 2:05d}/app/0",
              f"/instances?host=h-{HOSTS // 2:05d}"]:
        out = subprocess.run(["wrk", "-t2", "-c16", "-d10s", "--latency", "-H",
                              f"Authorization: Bearer {token}", f"{url}/api/v1{q}"],
                             capture_output=True, text=True).stdout
        lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
        rps = re.search(r"Requests/sec:\s+(\S+)", out)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        print(f"wrk GET /api/v1{q}: p50 {lat.get('50')} p99 {lat.get('99')}, "
              f"{rps.group(1) if rps else '?'} req/s, non-2xx {errors.group(1) if errors else 0}")
finally:
    srv.terminate()
    srv.wait(timeout=30)
