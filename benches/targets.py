"""The targets of issue 11 besides the steady scrape (that one is benches/compare.py --http).

  target/tmp/pyenv/bin/python benches/targets.py --binary target/release/multiproc-exporter \
      --row first|memory|active|churn|concurrent|defaults [--scale L] [--runs N]

Each row writes the directory with real prometheus_client writers (benches/shape.py, the
L of DESIGN section 6 by default), serves it with our release binary over loopback
(`--compaction off --liveness none` unless the row says otherwise) and prints one JSON
object:
  first       (3) process start to the first 200 on /metrics, body read; --runs starts
  memory      (4) RssAnon after 10, 100, 200, 500 and 1,000 scrapes and VmHWM, with glibc's
              malloc as it is, with MALLOC_ARENA_MAX=2 and with a fixed mmap threshold
              (M_MMAP_THRESHOLD 128 KiB: large blocks always mapped, and unmapped on free);
              then RssAnon after malloc_trim(0) called in the process by gdb, if present
  active      (5) live writers updating values and adding label sets at --updates per
              writer per second and a new label set per writer every --new-every seconds,
              in blocks alternating with the writers stopped (SIGSTOP): p50 of each, and
              the CPU the writers used while running
  churn       (5) 5,000 dead writers' files (counter, histogram, summary, a max gauge each,
              lock files released) on top of L, `--liveness lock`: before compaction
              (`--compaction off`) and after it (`--compaction on`), each against L alone
              with the same flags, alternating
  concurrent  (6) --runs batches of 50 concurrent scrapes: merge passes per batch (our
              self-metrics), every body complete, p50 and p99 within the batch
  defaults    (7) the defaults users run (`--liveness auto --compaction on`) against the
              steady flags, alternating: p50, CPU seconds per scrape, and the CPU used
              while nobody scrapes for --idle seconds
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402 - beside this script
import shape  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def status(pid):
    """RssAnon and VmHWM of `pid`, in MB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("RssAnon", "VmHWM", "RssShmem", "RssFile"):
                out[key] = round(int(rest.split()[0]) / 1024, 1)
    return out


def cpu(pid):
    """CPU seconds (user + system) `pid` has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def serve(args, d, flags=compare.OURS_STEADY, env=None):
    p, addr, _ = compare.start_ours(args.binary, d, flags, env)
    compare.scrape(addr)  # the first pass reads and indexes every file
    return p, addr


def row_first(args, d):
    times = []
    for _ in range(args.runs):
        p, addr, t0 = compare.start_ours(args.binary, d)
        try:
            while True:
                try:
                    conn = http.client.HTTPConnection(addr, timeout=60)
                    conn.request("GET", "/metrics")
                    resp = conn.getresponse()
                    resp.read()
                    if resp.status == 200:
                        times.append(time.perf_counter() - t0)
                        break
                except OSError:
                    pass
                time.sleep(0.002)
        finally:
            compare.stop([p])
    return {"first_200": compare.summary(times), "max_ms": compare.ms(max(times))}


def gdb_malloc_trim(pid):
    if not shutil.which("gdb"):
        return None
    subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "call (int) malloc_trim(0)"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    return status(pid)["RssAnon"]


def row_memory(args, d):
    variants = {"glibc default": None, "MALLOC_ARENA_MAX=2": {"MALLOC_ARENA_MAX": "2"},
                "mmap threshold 128 KiB": {"MALLOC_MMAP_THRESHOLD_": "131072"}}
    out = {}
    for name, env in variants.items():
        p, addr = serve(args, d, env=env)
        try:
            conn = http.client.HTTPConnection(addr, timeout=300)
            seen, times = {}, []
            for n in range(1, args.scrapes + 1):
                times.append(compare.timed_get(conn)[0])
                if n in (10, 100, 200, 500, 1000, args.scrapes):
                    seen[n] = status(p.pid)["RssAnon"]
            conn.close()
            row = {"rss_anon_mb_after": seen, **status(p.pid), "scrape": compare.summary(times)}
            row["after_100_to_last"] = round(seen[args.scrapes] / seen[100] - 1, 3)
            row["rss_anon_mb_after_malloc_trim"] = gdb_malloc_trim(p.pid)
            out[name] = row
        finally:
            compare.stop([p])
    return out


def active_loop(updates, new_every):
    """What a live worker does after start-up: updates `updates` random children per
    second (in ten ticks), and every `new_every` seconds creates a new label set."""
    def run(w, children):
        rnd = random.Random(w)
        per_tick = max(int(updates / 10), 1)
        counter = next(m for kind, _, m, _ in children if kind == "counter")
        created, next_new = 0, time.monotonic() + new_every
        while True:
            for _ in range(per_tick):
                kind, mode, _, child = children[rnd.randrange(len(children))]
                if kind == "counter":
                    child.inc()
                elif kind in ("histogram", "summary"):
                    child.observe(rnd.random() * 2)
                else:
                    child.set(rnd.random() * 100)
            if new_every > 0 and time.monotonic() >= next_new:
                labels = [f"/api/orders/w{shape.FIRST_ID + w}-new{created}", "GET", "200"]
                counter.labels(*labels).inc()
                created += 1
                next_new += new_every
            time.sleep(0.1)
    return run


def row_active(args, d, pids):
    p, addr = serve(args, d)
    try:
        conn = http.client.HTTPConnection(addr, timeout=300)
        idle, active = [], []
        writer_cpu, active_wall = 0.0, 0.0
        for _ in range(args.blocks):
            for sig, times in ((signal.SIGSTOP, idle), (signal.SIGCONT, active)):
                for pid in pids:
                    os.kill(pid, sig)
                time.sleep(0.3)
                c0, t0 = sum(cpu(pid) for pid in pids), time.perf_counter()
                for _ in range(args.runs):
                    times.append(compare.timed_get(conn)[0])
                if sig == signal.SIGCONT:
                    writer_cpu += sum(cpu(pid) for pid in pids) - c0
                    active_wall += time.perf_counter() - t0
        return {"writers": len(pids), "updates_per_writer_s": args.updates,
                "new_label_set_per_writer_every_s": args.new_every,
                "writers_cpu_cores": round(writer_cpu / active_wall, 3),
                "idle": compare.summary(idle), "active": compare.summary(active),
                "active_vs_idle": round(statistics.median(active) / statistics.median(idle), 2),
                "entries_after": sum(v["entries"] for v in shape.stats(d).values())}
    finally:
        compare.stop([p])
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)


def churn_writer(d, ident):
    """A short-lived worker of a churning pool: it served a few requests and died."""
    import multiproc_exporter  # the shim: its lock is the evidence of death
    from prometheus_client import Counter, Gauge, Histogram, Summary, values
    multiproc_exporter.hold_worker_lock(d, pid=ident)
    values.ValueClass = values.MultiProcessValue(lambda: ident)
    c = Counter("http_requests", "HTTP requests served, by route.",
                ["handler", "method", "status"], registry=None)
    h = Histogram("http_request_duration_seconds", "HTTP request latency, seconds.",
                  ["handler", "method"], buckets=shape.BUCKETS, registry=None)
    s = Summary("http_response_size_bytes", "HTTP response body sizes in bytes.",
                ["handler", "method"], registry=None)
    g = Gauge("pool_connections_max", "Connections of the pool (max).", ["pool", "state"],
              multiprocess_mode="max", registry=None)
    for i in range(20):
        c.labels(*shape.labels(shape.FAMILIES[0], i, 1800, 0, ident)).inc(1 + i % 3)
    for i in range(4):
        h.labels(*shape.labels(shape.FAMILIES[3], i, 260, 0, ident)).observe(0.01 * (i + 1))
        s.labels(*shape.labels(shape.FAMILIES[5], i, 500, 0, ident)).observe(100 * (i + 1))
        g.labels(*shape.labels(shape.FAMILIES[6 + 4], i, 150, 0, ident)).set(i)


def write_churn(d, n):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = d
    running = []
    for k in range(n):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                churn_writer(d, 100000 + k)
                code = 0
            finally:
                os._exit(code)
        running.append(pid)
        if len(running) >= 4:
            os.waitpid(running.pop(0), 0)
    for pid in running:
        os.waitpid(pid, 0)


def files(d):
    return sum(1 for f in os.listdir(d) if f.endswith(".db"))


def row_churn(args, d):
    b = d + "-churn"
    shutil.copytree(d, b)
    t = time.perf_counter()
    write_churn(b, args.dead)
    out = {"dead_writers": args.dead, "files_before": files(b),
           "write_s": round(time.perf_counter() - t, 1)}
    try:
        for phase, compaction in (("before_compaction", "off"), ("after_compaction", "on")):
            flags = ("--liveness", "lock", "--compaction", compaction)
            live_p, live_addr = serve(args, d, flags)
            t = time.perf_counter()
            p, addr = serve(args, b, flags)
            if compaction == "on":
                while files(b) > files(d) + 8:
                    if time.perf_counter() - t > 600:
                        raise SystemExit("compaction did not absorb the dead writers")
                    time.sleep(0.5)
                out["compacted_in_s"] = round(time.perf_counter() - t, 1)
                out["files_after"] = files(b)
                # The round that absorbed them goes on removing their lock files and
                # archiving; "after compaction" is once it is done, not during it.
                time.sleep(args.settle)
            try:
                times, _ = compare.alternate([live_addr, addr], args.runs)
                out[phase] = {"live_only": compare.summary(times[0]),
                              "with_churn": compare.summary(times[1]),
                              "ratio": round(statistics.median(times[1])
                                             / statistics.median(times[0]), 2)}
            finally:
                compare.stop([live_p, p])
        return out
    finally:
        shutil.rmtree(b)


def row_concurrent(args, d):
    p, addr = serve(args, d)
    expected = compare.samples(compare.scrape(addr))
    batches = []
    try:
        for _ in range(args.runs):
            conns = [http.client.HTTPConnection(addr, timeout=300) for _ in range(50)]
            for c in conns:
                c.connect()
            merges = compare.self_metric(addr, "multiproc_exporter_merges_total")
            barrier = threading.Barrier(len(conns))
            results = [None] * len(conns)

            def one(i):
                barrier.wait()
                results[i] = compare.timed_get(conns[i])

            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(conns))]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            # The scrape that reads the counter runs a pass of its own, after the batch.
            passes = compare.self_metric(addr, "multiproc_exporter_merges_total") - merges - 1
            times = sorted(r[0] for r in results)
            complete = sum(1 for r in results if compare.samples(r[1].decode()) == expected
                           and r[1].endswith(b"\n"))
            batches.append({"merge_passes": int(passes), "complete_bodies": complete,
                            "p50_ms": compare.ms(statistics.median(times)),
                            "p99_ms": compare.ms(compare.rank(times, 0.99)),
                            "max_ms": compare.ms(times[-1])})
            for c in conns:
                c.close()
        return {"batches": batches, "p99_vs_p50": [round(x["p99_ms"] / x["p50_ms"], 2)
                                                   for x in batches]}
    finally:
        compare.stop([p])


def row_defaults(args, d):
    procs = [serve(args, d, ()), serve(args, d)]
    try:
        addrs = [a for _, a in procs]
        c0 = [cpu(p.pid) for p, _ in procs]
        times, _ = compare.alternate(addrs, args.runs)
        used = [cpu(p.pid) - c for (p, _), c in zip(procs, c0)]
        c1 = [cpu(p.pid) for p, _ in procs]
        time.sleep(args.idle)
        idle = [cpu(p.pid) - c for (p, _), c in zip(procs, c1)]
        out = {}
        for name, t, u, i in zip(("defaults", "steady_flags"), times, used, idle):
            # alternate() adds one warm-up scrape per side.
            out[name] = {**compare.summary(t), "cpu_s_per_scrape": round(u / (len(t) + 1), 4),
                         "idle_cpu_cores": round(i / args.idle, 4)}
        out["files_after"] = files(d)
        return out
    finally:
        compare.stop([p for p, _ in procs])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--row", required=True,
                    choices=["first", "memory", "active", "churn", "concurrent", "defaults"])
    ap.add_argument("--scale", default="L", choices=shape.SCALES)
    ap.add_argument("--runs", type=int, default=15, help="scrapes (starts, batches) per side")
    ap.add_argument("--scrapes", type=int, default=1000, help="memory: scrapes per variant")
    ap.add_argument("--blocks", type=int, default=5, help="active: idle/active block pairs")
    ap.add_argument("--updates", type=int, default=500, help="active: per writer per second")
    ap.add_argument("--new-every", type=float, default=2.0, help="active: seconds (0: none)")
    ap.add_argument("--dead", type=int, default=5000, help="churn: dead writers")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="churn: seconds between compaction and the measurement")
    ap.add_argument("--idle", type=float, default=30.0, help="defaults: seconds unscraped")
    ap.add_argument("--tmp", help="where the directory is made (default: /dev/shm if any)")
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="mpe-bench-", dir=compare.tmp_root(args.tmp))
    try:
        pids = None
        if args.row == "active":
            pids = shape.generate(d, args.scale, active_loop(args.updates, args.new_every))
        else:
            shape.generate(d, args.scale)
        result = {"row": args.row, **compare.describe(d, args.scale), "runs": args.runs}
        if args.row == "active":
            result.update(row_active(args, d, pids))
        else:
            result.update(globals()[f"row_{args.row}"](args, d))
        result["load_after"] = [round(x, 2) for x in os.getloadavg()]
        print(json.dumps(result))
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
