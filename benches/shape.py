"""The benchmark directories of DESIGN section 6, written by real prometheus_client writers.

benches/support/mod.rs writes the same shape with our own writer (for criterion, no
Python); tests/it/bench_shape.rs checks that the two cannot drift apart: the same files
per writer, the same keys in the same order in each, the same rendered series and values.
Change both together.

L as a pool of 64 workers writes it: 16 of them dead and marked with mark_process_dead
(their five live-mode gauge files removed), all 10 gauge modes. Per writer, 10,000 entries
(9,250 for a dead one): half of them histogram buckets (312 label sets of 15 default
buckets and a _sum), 15% gauges (150 label sets per mode), 10% summaries (500 label sets:
_count and _sum), the rest counters (2,508 label sets). About 10% of each family's label
sets are the writer's own (they carry its identifier), the rest are shared by all writers;
13 + 12 shared children of the (live)mostrecent gauges are created and never set, as an
app that labels a gauge before its first update leaves them. That gives 752 files,
628,000 entries and 88,512 output samples. S and M are the same shape with fewer label
sets per family (divided by 100 and 10).

Writers use identifiers 10000 + worker index (values.MultiProcessValue with a fixed
identifier), as benches/support names its files, so the two directories have the same
file names; the content is what a worker with that pid writes.
"""

import os

# name: (workers, dead workers, divisor of the label sets per family)
SCALES = {"S": (4, 1, 100), "M": (64, 16, 10), "L": (64, 16, 1)}
FIRST_ID = 10000

INF = float("inf")
BUCKETS = (.005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5, 10.0, INF)
GAUGE_MODES = ("all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum",
               "mostrecent", "livemostrecent")
# Shared children of these gauges that are created but never set (at L).
NEVER_SET = {"mostrecent": 13, "livemostrecent": 12}

# (kind, gauge mode, family, help, label names, value choices of the labels after the
#  first, label sets at L, of them the writer's own at L). The first label takes the
# label set's index (and the writer's identifier for its own label sets). Help texts are
# in every key but only once in the output (HELP): their lengths tune `used` to ~112 MB
# at L without changing the text body much.
FAMILIES = [
    ("counter", None, "http_requests", "HTTP requests served, by route.",
     ("handler", "method", "status"),
     (("GET", "POST", "PUT", "DELETE", "PATCH"), ("200", "201", "400", "404", "500", "503")),
     1800, 178),
    ("counter", None, "db_queries", "Database queries run.",
     ("operation", "table"), (("select", "insert", "update", "delete"),), 508, 50),
    ("counter", None, "cache_operations", "Cache lookups and stores.",
     ("cache", "operation", "result"), (("get", "set"), ("hit", "miss")), 200, 20),
    ("histogram", None, "http_request_duration_seconds", "HTTP request latency, seconds.",
     ("handler", "method"), (("GET", "POST", "PUT", "DELETE"),), 260, 26),
    ("histogram", None, "db_query_duration_seconds", "Database query latency in seconds.",
     ("operation", "table"), (("select", "insert", "update", "delete"),), 52, 5),
    ("summary", None, "http_response_size_bytes", "HTTP response body sizes in bytes.",
     ("handler", "method"), (("GET", "POST", "PUT", "DELETE", "PATCH"),), 500, 50),
] + [
    ("gauge", mode, f"pool_connections_{mode}", f"Connections of the pool ({mode}).",
     ("pool", "state"), (("idle", "busy", "waiting"),), 150, 15)
    for mode in GAUGE_MODES
]

# Stems of the first label's values; their length is how the text reaches ~7.7 MB at L.
STEMS = {"handler": "/api/orders/", "operation": "orders.by_customer.",
         "cache": "session-tokens-", "pool": "pg-main-"}


def counts(scale, n, own):
    """Label sets of a family at `scale`, and how many of them are a writer's own."""
    div = SCALES[scale][2]
    return max(n // div, 1), own // div


def labels(fam, i, n, own, ident):
    """The label values of label set `i` (of `n`, the last `own` the writer's own)."""
    names, choices = fam[4], fam[5]
    vals = []
    rest = i
    for ch in reversed(choices):
        vals.append(ch[rest % len(ch)])
        rest //= len(ch)
    stem = STEMS[names[0]]
    first = f"{stem}{rest}" if i < n - own else f"{stem}w{ident}-{rest}"
    return [first] + vals[::-1]


def observations(kind, i, w):
    """What worker `w` observed on histogram or summary label set `i`."""
    if kind == "histogram":
        return [((i * 31 + w * 17 + j * 7) % 1200) / 100 for j in range(1 + (i + w) % 3)]
    return [float(100 + (i * 53 + w * 11 + j) % 5000) for j in range(1 + (i + w) % 2)]


def gauge_value(scale, mode, i, w, shared):
    """The value worker `w` sets on gauge label set `i`, or None: never set."""
    if mode.endswith("mostrecent"):
        # The same value from every writer: the merged value does not depend on which
        # writer set it last (timestamps are real times in Python).
        if shared and i < NEVER_SET[mode] // SCALES[scale][2]:
            return None
        return float(i % 50) + 0.5 if shared else w + 0.5
    if mode.endswith("all"):
        return float(w * 1000 + i)
    return ((i * 3 + w * 5) % 101) * 0.25


def write_worker(scale, w):
    """Worker `w`: its metrics, as an app creates and updates them (runs in a fork).
    Returns (kind, gauge mode, metric, child) of every child."""
    from prometheus_client import Counter, Gauge, Histogram, Summary, values
    ident = FIRST_ID + w
    values.ValueClass = values.MultiProcessValue(lambda: ident)
    children = []
    for fam in FAMILIES:
        kind, mode, name, help_text, names = fam[:5]
        n, own = counts(scale, fam[6], fam[7])
        if kind == "counter":
            m = Counter(name, help_text, names, registry=None)
        elif kind == "histogram":
            m = Histogram(name, help_text, names, buckets=BUCKETS, registry=None)
        elif kind == "summary":
            m = Summary(name, help_text, names, registry=None)
        else:
            m = Gauge(name, help_text, names, multiprocess_mode=mode, registry=None)
        for i in range(n):
            child = m.labels(*labels(fam, i, n, own, ident))
            if kind == "counter":
                child.inc(1 + (i * 7 + w * 13) % 997)
            elif kind in ("histogram", "summary"):
                for v in observations(kind, i, w):
                    child.observe(v)
            else:
                v = gauge_value(scale, mode, i, w, i < n - own)
                if v is not None:
                    child.set(v)
            children.append((kind, mode, m, child))
    return children


def generate(d, scale, keep_alive=None):
    """Writes `scale` into the empty directory `d`: one forked process per worker, two at
    a time; the dead ones exit and are marked dead (mark_process_dead). With
    `keep_alive(w, children)`, the live workers run it instead of exiting, and their pids
    are returned."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = d
    from prometheus_client import multiprocess  # multiprocess mode is chosen at import
    workers, dead, _ = SCALES[scale]
    running, live = [], []
    for w in range(workers):
        r, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                children = write_worker(scale, w)
                os.write(wr, b"1")
                os.close(wr)
                if keep_alive is not None and w < workers - dead:
                    keep_alive(w, children)
                code = 0
            finally:
                os._exit(code)
        os.close(wr)
        running.append((w, pid, r))
        while len(running) >= 2 or (running and w == workers - 1):
            w0, pid0, r0 = running.pop(0)
            if not os.read(r0, 1):
                raise SystemExit(f"writer {w0} failed")
            os.close(r0)
            if keep_alive is not None and w0 < workers - dead:
                live.append(pid0)
            else:
                os.waitpid(pid0, 0)
    for w in range(workers - dead, workers):
        multiprocess.mark_process_dead(FIRST_ID + w, d)
    return live


def stats(d):
    """Files, entries and used bytes of a directory, per file."""
    import struct
    out = {}
    for f in sorted(os.listdir(d)):
        if not f.endswith(".db"):
            continue
        with open(os.path.join(d, f), "rb") as fh:
            data = fh.read()
        used = struct.unpack_from("i", data, 0)[0]
        pos, n = 8, 0
        while pos < used:
            klen = struct.unpack_from("i", data, pos)[0]
            pos += 4 + klen + (8 - (klen + 4) % 8) + 16
            n += 1
        out[f] = {"entries": n, "used": used}
    return out
