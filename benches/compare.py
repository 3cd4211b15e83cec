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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--scale", default="M", choices=SCALES)
    ap.add_argument("--runs", type=int, default=15)
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
