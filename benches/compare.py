"""Compare `multiproc-exporter render` with prometheus_client on the same directory.

  target/tmp/pyenv/bin/python benches/compare.py --binary target/release/multiproc-exporter \
      [--scale S|M|L] [--runs 15]

Real prometheus_client writers (one forked process per worker, pids as identifiers)
write the directory; each worker's mix per 1,000 entries is the one of benches/support:
a counter with 100 label sets, a histogram with 50 label sets (14 default bounds and
+Inf, plus _sum), a livesum gauge and an all gauge with 50 label sets each.

Then, in the same run, alternating so that machine noise hits both alike:
  ours:      wall time of `render --dir DIR` (a whole process: start, read, merge, print)
  reference: generate_latest() over a registry holding MultiProcessCollector(DIR), in
             this Python process (what an in-app /metrics handler pays per scrape)
With --http, both sides serve over loopback HTTP instead and the same client times
GET /metrics (body read, keep-alive) alternately against:
  ours:      `multiproc-exporter serve --dir DIR` (steady state: the first scrape is
             excluded, every later one runs a fresh merge pass)
  reference: prometheus_client's start_http_server() over MultiProcessCollector(DIR),
             in its own Python process
once without compression and once with Accept-Encoding: gzip.
Prints one JSON object with medians and the ratio.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

SCALES = {"S": (4, 100), "M": (64, 1000), "L": (64, 10000)}


def write_worker(entries):
    from prometheus_client import Counter, Gauge, Histogram
    units = max(entries // 1000, 1)

    def per(n):
        return max(n * entries // 1000, 1) if entries < 1000 else n * units

    c = Counter("http_requests", "Requests served.", ["path", "status"], registry=None)
    for i in range(per(100)):
        c.labels(f"/api/v1/resource/{i // 5}", ["200", "201", "404", "500", "503"][i % 5]).inc(i)
    h = Histogram("latency_seconds", "Request latency.", ["handler"], registry=None)
    for i in range(per(50)):
        h.labels(f"handler_{i}").observe((i % 20) / 10)
    g = Gauge("inprogress", "In progress.", ["queue"], multiprocess_mode="livesum", registry=None)
    a = Gauge("worker_rss_bytes", "Resident memory.", ["pool"], multiprocess_mode="all",
              registry=None)
    for i in range(per(50)):
        g.labels(f"queue_{i}").set(i % 4)
        a.labels(f"queue_{i}").set(1 << 20)


def generate(d, workers, entries):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = d
    import prometheus_client  # noqa: F401 - multiprocess mode is chosen at import
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                write_worker(entries)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)


def start_ours(binary, d):
    p = subprocess.Popen([binary, "--dir", d, "--web.listen-address", "127.0.0.1:0"],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in p.stderr:
        if "address=" in line:
            addr = line.split("address=")[1].split()[0]
            return p, addr
    raise SystemExit("our server did not start")


REFERENCE_SERVER = """
import sys, time
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector
r = CollectorRegistry()
MultiProcessCollector(r, path=sys.argv[1])
server, _ = start_http_server(0, addr="127.0.0.1", registry=r)
print("127.0.0.1:%d" % server.server_port, flush=True)
time.sleep(3600)
"""


def start_reference(d):
    p = subprocess.Popen([sys.executable, "-c", REFERENCE_SERVER, d], stdout=subprocess.PIPE,
                         text=True)
    return p, p.stdout.readline().strip()


def timed_get(conn, gzip):
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    t = time.perf_counter()
    conn.request("GET", "/metrics", headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    took = time.perf_counter() - t
    assert resp.status == 200, resp.status
    return took, len(body)


def http_compare(binary, d, runs):
    import http.client
    ours_p, ours_addr = start_ours(binary, d)
    ref_p, ref_addr = start_reference(d)
    try:
        out = {}
        for gzip in (False, True):
            conns = [http.client.HTTPConnection(a, timeout=120) for a in (ours_addr, ref_addr)]
            for c in conns:  # warm up: first scrape indexes every file
                timed_get(c, gzip)
            times = ([], [])
            sizes = [0, 0]
            for _ in range(runs):
                for i, c in enumerate(conns):
                    took, n = timed_get(c, gzip)
                    times[i].append(took)
                    sizes[i] = n
            key = "gzip" if gzip else "plain"
            out[key] = {
                "ours_median_ms": round(statistics.median(times[0]) * 1000, 2),
                "ours_p90_ms": round(sorted(times[0])[int(runs * 0.9) - 1] * 1000, 2),
                "reference_median_ms": round(statistics.median(times[1]) * 1000, 2),
                "ratio_of_medians": round(statistics.median(times[1]) / statistics.median(times[0]), 1),
                "ours_body_bytes": sizes[0], "reference_body_bytes": sizes[1],
            }
        return out
    finally:
        for p in (ours_p, ref_p):
            p.terminate()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--scale", default="M", choices=SCALES)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--http", action="store_true")
    args = ap.parse_args()
    workers, entries = SCALES[args.scale]
    with tempfile.TemporaryDirectory() as d:
        generate(d, workers, entries)
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=d)
        files = [f for f in os.listdir(d) if f.endswith(".db")]
        used = 0
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                used += int.from_bytes(fh.read(4), sys.byteorder)
        if args.http:
            result = {"scale": args.scale, "workers": workers, "entries_per_worker": entries,
                      "files": len(files), "used_bytes": used, "runs": args.runs,
                      "python": platform.python_version(), "cpus": os.cpu_count()}
            result.update(http_compare(args.binary, d, args.runs))
            print(json.dumps(result))
            return
        ours, ref = [], []
        out_bytes = ref_bytes = 0
        for _ in range(args.runs):
            t = time.perf_counter()
            p = subprocess.run([args.binary, "render", "--dir", d], capture_output=True, check=True)
            ours.append(time.perf_counter() - t)
            out_bytes = len(p.stdout)
            t = time.perf_counter()
            body = generate_latest(registry)
            ref.append(time.perf_counter() - t)
            ref_bytes = len(body)
        result = {
            "scale": args.scale, "workers": workers, "entries_per_worker": entries,
            "files": len(files), "used_bytes": used, "runs": args.runs,
            "ours_median_ms": round(statistics.median(ours) * 1000, 2),
            "ours_min_ms": round(min(ours) * 1000, 2),
            "reference_median_ms": round(statistics.median(ref) * 1000, 2),
            "reference_min_ms": round(min(ref) * 1000, 2),
            "ratio_of_medians": round(statistics.median(ref) / statistics.median(ours), 1),
            "ours_output_bytes": out_bytes, "reference_output_bytes": ref_bytes,
            "python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
