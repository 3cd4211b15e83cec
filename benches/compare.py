"""Compare multiproc-exporter with prometheus_client on the same directory, in the same run.

  target/tmp/pyenv/bin/python benches/compare.py --binary target/release/multiproc-exporter \
      [--scale S|M|L] [--runs 15] [--http [--speedups]]
  ... benches/compare.py --scale L --write DIR      only write the directory, print its shape

Real prometheus_client writers (one forked process per worker, benches/shape.py) write
the directory: at L the L of DESIGN section 6 (64 writers, 16 of them dead and marked with
mark_process_dead, all 10 gauge modes, 752 files, 628,000 entries, ~112 MB used, 88,512
output samples). The directory is on tmpfs (/dev/shm, where the pool's files live in
production) when the machine has it; --tmp chooses another place.

Then, in the same run, alternating so that machine noise hits all alike:
  ours:      wall time of `render --dir DIR` (a whole process: start, read, merge, print)
  reference: generate_latest() over a registry holding MultiProcessCollector(DIR), in
             this Python process (what an in-app /metrics handler pays per scrape)
With --http (target 1 and 2 of issue 11), every side serves over loopback HTTP and the
same client times GET /metrics (keep-alive, body read) in turn against:
  ours:      `multiproc-exporter serve --dir DIR --compaction off --liveness none`
             (steady state: the first scrape is excluded, every later one runs a fresh
             merge pass)
  collector: prometheus_client's start_http_server() over MultiProcessCollector(DIR)
  speedups:  (--speedups) the same server over a collector that merges with the Rust
             extension prometheus-client-python-speedups 0.1.0
             (benches/requirements.txt) and renders with generate_latest
once without compression and once with Accept-Encoding: gzip (compressed bytes read, as
Prometheus receives them). The other targets of issue 11 are in benches/targets.py.
Prints one JSON object: medians, minimums, p90s and the ratios of the medians.
"""

import argparse
import http.client
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shape  # noqa: E402 - beside this script

OURS_STEADY = ("--compaction", "off", "--liveness", "none")

REFERENCE_SERVER = """
import glob, os, sys, time
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector
d, kind = sys.argv[1], sys.argv[2]
r = CollectorRegistry()
if kind == "collector":
    MultiProcessCollector(r, path=d)
else:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample
    from prometheus_client_python_speedups import merge

    class SpeedupsCollector:
        # How an app wires the extension in: it merges the files, prometheus_client
        # renders. Its samples carry timestamp 0.0, which the exposition would print.
        def collect(self):
            for m in merge(glob.glob(os.path.join(d, "*.db"))):
                out = Metric(m.name, m.documentation, m.typ)
                out.samples = [Sample(s.name, s.labels, s.value) for s in m.samples]
                yield out

    r.register(SpeedupsCollector())
server, _ = start_http_server(0, addr="127.0.0.1", registry=r)
print("127.0.0.1:%d" % server.server_port, flush=True)
time.sleep(3600)
"""


def tmp_root(arg):
    if arg:
        return arg
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


def start_ours(binary, d, flags=OURS_STEADY, env=None):
    """Starts `serve`; returns the process, its address and the time it was started."""
    t = time.perf_counter()
    p = subprocess.Popen([binary, "--dir", d, "--web.listen-address", "127.0.0.1:0", *flags],
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                         env=None if env is None else {**os.environ, **env})
    for line in p.stderr:
        if "address=" in line:
            addr = line.split("address=")[1].split()[0]
            # Keep draining the log so the sidecar never blocks on a full pipe.
            drain = subprocess.Popen(["cat"], stdin=p.stderr, stdout=subprocess.DEVNULL)
            p.drain = drain
            return p, addr, t
    raise SystemExit("our server did not start")


def start_reference(d, kind):
    p = subprocess.Popen([sys.executable, "-c", REFERENCE_SERVER, d, kind],
                         stdout=subprocess.PIPE, text=True)
    return p, p.stdout.readline().strip()


def stop(procs):
    for p in procs:
        p.terminate()
        p.wait()
        if getattr(p, "drain", None):
            p.drain.wait()


def timed_get(conn, gzip=False, path="/metrics"):
    """One request on `conn`: seconds until the whole body was read, and the body."""
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    t = time.perf_counter()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    took = time.perf_counter() - t
    assert resp.status == 200, resp.status
    return took, body


def get(conn, gzip=False, path="/metrics"):
    """timed_get(), again on a new connection if the server had closed this one: ours
    closes connections idle for longer than --web.header-timeout (10 s), and a round of
    the references takes seconds."""
    try:
        return timed_get(conn, gzip, path)
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        conn.close()
        return timed_get(conn, gzip, path)


def ms(x):
    return round(x * 1000, 2)


def rank(s, q):
    """The nearest-rank `q` quantile of the sorted `s`."""
    return s[max(math.ceil(q * len(s)) - 1, 0)]


def summary(times):
    s = sorted(times)
    return {"p50_ms": ms(statistics.median(s)), "min_ms": ms(s[0]), "p90_ms": ms(rank(s, 0.9)),
            "n": len(s)}


def alternate(addrs, runs, gzip=False, path="/metrics"):
    """Times `runs` requests per address, in turn, after one warm-up request each."""
    conns = [http.client.HTTPConnection(a, timeout=300) for a in addrs]
    for c in conns:  # warm up: the first scrape indexes every file
        get(c, gzip, path)
    times = [[] for _ in addrs]
    sizes = [0] * len(addrs)
    for _ in range(runs):
        for i, c in enumerate(conns):
            took, body = get(c, gzip, path)
            times[i].append(took)
            sizes[i] = len(body)
    for c in conns:
        c.close()
    return times, sizes


def scrape(addr, path="/metrics"):
    conn = http.client.HTTPConnection(addr, timeout=300)
    try:
        return timed_get(conn, False, path)[1].decode()
    finally:
        conn.close()


def self_metric(addr, name):
    """The value of one of our unlabelled self-metrics."""
    for line in scrape(addr).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise SystemExit(f"no {name} in our output")


def samples(body):
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


def http_compare(binary, d, runs, speedups):
    kinds = ["collector"] + (["speedups"] if speedups else [])
    ours_p, ours_addr, _ = start_ours(binary, d)
    refs = [start_reference(d, k) for k in kinds]
    try:
        out = {}
        addrs = [ours_addr] + [a for _, a in refs]
        bodies = [scrape(a) for a in addrs]
        # Our body also holds our self-metrics; the sample counts say how exact each is.
        out["samples"] = dict(zip(["ours"] + kinds, [samples(b) for b in bodies]))
        out["samples"]["ours_self_metrics"] = samples(
            "\n".join(line for line in bodies[0].splitlines()
                      if line.startswith("multiproc_exporter_")))
        out["text_bytes"] = dict(zip(["ours"] + kinds, [len(b.encode()) for b in bodies]))
        del bodies
        for gzip in (False, True):
            times, sizes = alternate(addrs, runs, gzip)
            row = {"ours": summary(times[0]), "body_bytes": dict(zip(["ours"] + kinds, sizes))}
            for k, t in zip(kinds, times[1:]):
                row[k] = summary(t)
                row[f"{k}_vs_ours"] = round(statistics.median(t) / statistics.median(times[0]),
                                            1)
            out["gzip" if gzip else "text"] = row
        return out
    finally:
        stop([ours_p] + [p for p, _ in refs])


def render_compare(binary, d, runs):
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=d)
    ours, ref = [], []
    out_bytes = ref_bytes = 0
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run([binary, "render", "--dir", d], capture_output=True, check=True)
        ours.append(time.perf_counter() - t)
        out_bytes = len(p.stdout)
        t = time.perf_counter()
        body = generate_latest(registry)
        ref.append(time.perf_counter() - t)
        ref_bytes = len(body)
    return {"ours": summary(ours), "collector": summary(ref),
            "collector_vs_ours": round(statistics.median(ref) / statistics.median(ours), 1),
            "ours_output_bytes": out_bytes, "collector_output_bytes": ref_bytes}


def describe(d, scale):
    st = shape.stats(d)
    workers, dead, div = shape.SCALES[scale]
    return {"scale": scale, "workers": workers, "dead": dead, "files": len(st),
            "entries": sum(v["entries"] for v in st.values()),
            "used_bytes": sum(v["used"] for v in st.values()),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "load": [round(x, 2) for x in os.getloadavg()]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary")
    ap.add_argument("--scale", default="M", choices=shape.SCALES)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--http", action="store_true")
    ap.add_argument("--speedups", action="store_true",
                    help="also time the prometheus-client-python-speedups extension")
    ap.add_argument("--write", metavar="DIR", help="only write the directory (must not exist)")
    ap.add_argument("--tmp", help="where the directory is made (default: /dev/shm if any)")
    args = ap.parse_args()
    if args.write:
        os.makedirs(args.write)
        shape.generate(args.write, args.scale)
        print(json.dumps(describe(args.write, args.scale)))
        return
    if not args.binary:
        ap.error("--binary is required")
    d = tempfile.mkdtemp(prefix="mpe-bench-", dir=tmp_root(args.tmp))
    try:
        shape.generate(d, args.scale)
        result = {**describe(d, args.scale), "runs": args.runs}
        if args.http:
            result.update(http_compare(args.binary, d, args.runs, args.speedups))
        else:
            result.update(render_compare(args.binary, d, args.runs))
        print(json.dumps(result))
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
