"""Differential test harness: real prometheus_client writers and the real reference.

Run inside the pinned virtualenv that the Rust tests provision (see tests/it/util.rs).

  harness.py random DIR SEED COUNT      write COUNT random directories DIR/SEED.. with
                                        2-8 worker processes each
  harness.py case DIR NAME              write one named scenario (CASES or CONFORMANCE)
  harness.py reference-text DIR         print prometheus_client's text exposition of DIR
  harness.py check JSON                 for each [dir, text file, om file] in the JSON list,
                                        compare our output with
                                        MultiProcessCollector.merge(sorted files); prints JSON
  harness.py looping-worker DIR         one worker updating every file kind in a tight loop
                                        (adding series as it goes) until killed
  harness.py resume-worker DIR K        one worker that waits for a line on stdin, then
                                        records full_mix(K) into its pid's files (resuming
                                        files that already carry its pid), says "done"

Workers are real processes: the parent sets PROMETHEUS_MULTIPROC_DIR before importing
prometheus_client and forks; each child creates its metrics after the fork (so its files
carry its own pid), updates them and exits. Some pids are then passed to
mark_process_dead, as Gunicorn's child_exit hook would.
"""

import glob
import json
import math
import os
import random
import sys

if len(sys.argv) >= 3 and sys.argv[1] in ("case", "live-workers", "pool", "churn",
                                          "locked-worker", "reuse-writer", "looping-worker",
                                          "resume-worker"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[2]
elif len(sys.argv) >= 3 and sys.argv[1] == "random":
    # Must be present at import so prometheus_client picks multiprocess values;
    # each directory then sets its own before forking its workers.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[2]

import prometheus_client  # noqa: E402
from prometheus_client import Counter, Gauge, Histogram, Summary  # noqa: E402
from prometheus_client import values  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead  # noqa: E402

MODES = ["all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum",
         "mostrecent", "livemostrecent"]

LABEL_VALUES = ["", "a", "b", 'quote"d', "back\\slash", "new\nline", "tab\there",
                "caf\u00e9", "\U0001F600 emoji", "/a\"b\\c\nd \u00e9", "x" * 40, "0", "+Inf"]


def run_workers(bodies, dead=()):
    """Fork one process per body, wait for all, then mark the chosen ones dead."""
    pids = []
    for body in bodies:
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                body()
            except BaseException:  # noqa: BLE001 - report and fail the child
                import traceback
                traceback.print_exc()
                code = 1
            os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SystemExit(f"worker {pid} failed with status {status}")
    for i in dead:
        mark_process_dead(pids[i])
    return pids


# ---------------------------------------------------------------------------------------
# Random directories


def random_spec(rng):
    families = []
    for i in range(rng.randint(2, 8)):
        typ = rng.choice(["counter", "gauge", "gauge", "histogram", "summary"])
        fam = {
            "name": f"f{i}_{typ}",
            "type": typ,
            "help": rng.choice(["", "plain help", "help with \\ and\nnewline", 'say "hi"']),
            "labels": rng.sample(["method", "path", "code", "le_x", "zone"], rng.randint(0, 3)),
        }
        if typ == "gauge":
            fam["mode"] = rng.choice(MODES)
        if typ == "histogram":
            fam["buckets"] = rng.choice([
                None,
                [0.1, 1.0, 10.0],
                [-5.0, -1.0, 0.0, 1.0],
                [1e-05, 0.001, 1e6, 1e16, 1e300],
                [0.25, 0.5, 1.5, 2.5, 1234567.0],
            ])
        families.append(fam)
    return families


def nice_value(rng, allow_negative):
    # Values whose sums are exact in binary, so both sides agree to the last bit.
    v = rng.choice([0, 1, 2, 3, 0.5, 0.25, 1.5, 1000, 1e6, 123456789, 2 ** 40])
    if allow_negative and rng.random() < 0.3:
        v = -v
    return float(v)


def worker_body(spec, seed):
    def body():
        rng = random.Random(seed)
        made = []
        for fam in spec:
            kw = {"labelnames": fam["labels"]}
            if fam["type"] == "counter":
                m = Counter(fam["name"], fam["help"], **kw)
            elif fam["type"] == "gauge":
                m = Gauge(fam["name"], fam["help"], multiprocess_mode=fam["mode"], **kw)
            elif fam["type"] == "histogram":
                if fam["buckets"] is None:
                    m = Histogram(fam["name"], fam["help"], **kw)
                else:
                    m = Histogram(fam["name"], fam["help"], buckets=fam["buckets"], **kw)
            else:
                m = Summary(fam["name"], fam["help"], **kw)
            made.append((fam, m))
        for _ in range(rng.randint(1, 30)):
            fam, m = rng.choice(made)
            child = m
            if fam["labels"]:
                child = m.labels(*[rng.choice(LABEL_VALUES) for _ in fam["labels"]])
            if fam["type"] == "counter":
                child.inc(abs(nice_value(rng, False)))
            elif fam["type"] == "gauge":
                if fam["mode"] in ("mostrecent", "livemostrecent"):
                    child.set(nice_value(rng, True))
                else:
                    rng.choice([child.inc, child.dec, child.set])(nice_value(rng, True))
            else:
                child.observe(nice_value(rng, True))
    return body


def write_random(d, seed):
    os.makedirs(d, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = d
    rng = random.Random(seed)
    spec = random_spec(rng)
    n = rng.randint(2, 8)
    bodies = [worker_body(spec, seed * 1000 + i) for i in range(n)]
    dead = rng.sample(range(n), rng.randint(0, n - 1))
    run_workers(bodies, dead)


# ---------------------------------------------------------------------------------------
# Named scenarios


def case_types_and_modes():
    def body(k):
        def run():
            c = Counter("req", "Requests served", ["path"])
            c.labels("/").inc(k + 1)
            c.labels("/x").inc(0.5)
            for mode in MODES:
                g = Gauge(f"g_{mode}", f"gauge in {mode} mode", ["z"], multiprocess_mode=mode)
                g.labels("a").set(10 * k + 1)
                g.labels("b").set(-k)
            h = Histogram("lat_seconds", "latency", ["m"])
            for v in (0.001, 0.3, 2.0, 7.5, 100.0):
                h.labels("GET").observe(v * (k + 1))
            s = Summary("size_bytes", "payload size")
            s.observe(100 * (k + 1))
            Counter("untouched", "created, never incremented")
        return run
    run_workers([body(k) for k in range(3)], dead=[0])


def case_labels_escapes():
    def body(k):
        def run():
            c = Counter("esc", 'Help with "quotes", back\\slash\nand newline', ["v", "w"])
            for i, v in enumerate(LABEL_VALUES):
                c.labels(v, LABEL_VALUES[(i + k) % len(LABEL_VALUES)]).inc(i + 1)
            g = Gauge("esc_g", "tab\there \U0001F600", ["v"], multiprocess_mode="all")
            for i, v in enumerate(LABEL_VALUES):
                g.labels(v).set(i)
            Gauge("empty_help", "").set(1)
        return run
    run_workers([body(k) for k in range(2)])


def case_histogram_bounds():
    def body(k):
        def run():
            default = Histogram("h_default", "default buckets")
            custom = Histogram("h_custom", "custom", buckets=[0.5, 2, 8])
            neg = Histogram("h_negative", "negative", buckets=[-10, -1, 0, 1])
            huge = Histogram("h_huge", "huge", buckets=[1e6, 1234567, 1e7, 1e16, 1e300])
            for v in (-20, -5, -0.5, 0, 0.3, 1, 3, 9, 2e6, 5e15, 1e200):
                default.observe(v)
                custom.observe(v)
                neg.observe(v * (k + 1))
                huge.observe(v)
        return run
    run_workers([body(k) for k in range(2)], dead=[1])


def case_mostrecent_never_set():
    def run():
        Gauge("mr_never", "never set", multiprocess_mode="mostrecent")
        Gauge("lmr_never", "never set", ["x"], multiprocess_mode="livemostrecent").labels("a")
        g = Gauge("mr_some", "set on one label", ["x"], multiprocess_mode="mostrecent")
        g.labels("set").set(4)
        g.labels("unset")
    run_workers([run, run])


def case_help_disagree():
    def body(k):
        def run():
            Counter("drift", f"help from worker {k}").inc()
            Gauge("drift_g", f"gauge help {k}", multiprocess_mode="max").set(k)
        return run
    run_workers([body(k) for k in range(3)])


def case_special_values():
    specials = [math.inf, -math.inf, -0.0, 5e-324, 1e300, float(2 ** 53 + 1), 1e6,
                1234567.0, 1e-05, -1234567.0, 0.1]

    def body(k):
        def run():
            for mode in ("all", "min", "max", "sum", "mostrecent"):
                g = Gauge(f"sv_{mode}", "special values", ["i"], multiprocess_mode=mode)
                for i, v in enumerate(specials):
                    g.labels(str(i)).set(v if k == 0 else specials[(i + 3) % len(specials)])
            c = Counter("sv_counter", "special increments", ["i"])
            for i, v in enumerate([5e-324, 1e300, float(2 ** 53 + 1), 1e6, math.inf]):
                c.labels(str(i)).inc(v)
        return run
    run_workers([body(k) for k in range(2)])


def case_big_files():
    def body(k):
        def run():
            c = Counter("big", "many series", ["i", "pad"])
            pad = "p" * 60
            for i in range(20000 if k == 0 else 3000):
                c.labels(str(i), pad).inc(i % 7)
            # One key larger than the initial 64 KiB file.
            Gauge("huge_key", "a huge label", ["v"], multiprocess_mode="max").labels("k" * 70000).set(3)
        return run
    run_workers([body(k) for k in range(2)])


CASES = {
    "types_and_modes": case_types_and_modes,
    "labels_escapes": case_labels_escapes,
    "histogram_bounds": case_histogram_bounds,
    "mostrecent_never_set": case_mostrecent_never_set,
    "help_disagree": case_help_disagree,
    "special_values": case_special_values,
    "big_files": case_big_files,
}


# ---------------------------------------------------------------------------------------
# Conformance scenarios: the reading and merging cases of prometheus_client's
# tests/test_multiprocess.py, replayed with the same process identifiers.


def use_pid(pid):
    values.ValueClass = values.MultiProcessValue(lambda: pid)


def conf_test_counter_adds():
    use_pid(123)
    c1 = Counter("c", "help", registry=None)
    use_pid(456)
    c2 = Counter("c", "help", registry=None)
    c1.inc(1)
    c2.inc(2)


def conf_test_summary_adds():
    use_pid(123)
    s1 = Summary("s", "help", registry=None)
    use_pid(456)
    s2 = Summary("s", "help", registry=None)
    s1.observe(1)
    s2.observe(2)


def conf_test_histogram_adds():
    use_pid(123)
    h1 = Histogram("h", "help", registry=None)
    use_pid(456)
    h2 = Histogram("h", "help", registry=None)
    h1.observe(1)
    h2.observe(2)


def gauge_pair(mode, a=1, b=2, dead=None):
    def run():
        use_pid(123)
        g1 = Gauge("g", "help", registry=None, multiprocess_mode=mode)
        use_pid(456)
        g2 = Gauge("g", "help", registry=None, multiprocess_mode=mode)
        g1.set(a)
        g2.set(b)
        if dead is not None:
            mark_process_dead(dead)
    return run


def conf_test_namespace_subsystem():
    use_pid(123)
    Counter("c", "help", namespace="ns", subsystem="ss", registry=None).inc(1)


def conf_test_counter_across_forks():
    pid = [0]
    values.ValueClass = values.MultiProcessValue(lambda: pid[0])
    c1 = Counter("c", "help", registry=None)
    c1.inc(1)
    pid[0] = 1
    c1.inc(1)
    c1.inc(1)


def conf_test_initialization_detects_pid_change():
    pid = [0]
    values.ValueClass = values.MultiProcessValue(lambda: pid[0])
    Gauge("g", "help", registry=None)
    pid[0] = 1
    Gauge("g1", "help", registry=None)


def collect_scenario(c_help, g_help, h_help):
    """The scenario of upstream test_collect and test_collect_preserves_help."""
    def run():
        pid = [0]
        values.ValueClass = values.MultiProcessValue(lambda: pid[0])
        labels = {i: i for i in "abcd"}
        c = Counter("c", c_help, labelnames=labels.keys(), registry=None)
        g = Gauge("g", g_help, labelnames=labels.keys(), registry=None)
        h = Histogram("h", h_help, labelnames=labels.keys(), registry=None)
        c.labels(**labels).inc(1)
        g.labels(**labels).set(1)
        h.labels(**labels).observe(1)
        pid[0] = 1
        c.labels(**labels).inc(1)
        g.labels(**labels).set(1)
        h.labels(**labels).observe(5)
    return run


def conf_test_collect_histogram_ordering():
    pid = [0]
    values.ValueClass = values.MultiProcessValue(lambda: pid[0])
    h = Histogram("h", "help", labelnames=["view"], registry=None)
    h.labels(view="view1").observe(1)
    pid[0] = 1
    h.labels(view="view1").observe(5)
    h.labels(view="view2").observe(1)


def conf_test_process_restart():
    from prometheus_client.mmap_dict import MmapedDict, mmap_key
    path = os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "gauge_mostrecent_123.db")
    d = MmapedDict(path)
    d.write_value(mmap_key("g", "g", [], [], "help"), 123.0, 987.0)
    d.close()
    MmapedDict(path).close()  # the restarted process reopens the same file


def conf_test_multi_expansion():
    use_pid(123)
    c = Counter("c", "help", ["k"], registry=None)
    c.labels("small1").inc(1)
    c.labels("x" * 256 * 1024).inc(2)
    c.labels("small2").inc(3)


def conf_test_child_name_is_built_once_with_namespace_subsystem_unit():
    use_pid(123)
    c = Counter("m", "help", ["l"], namespace="ns", subsystem="ss", unit="seconds", registry=None)
    c.labels("x").inc(1)


def conf_test_expansion():
    use_pid(123)
    c = Counter("c", "help", ["k"], registry=None)
    c.labels("y" * 64 * 1024).inc(4)


def conf_test_missing_gauge_file_during_merge():
    use_pid(123)
    Counter("c", "help", registry=None).inc(1)


CONFORMANCE = {
    "test_counter_adds": conf_test_counter_adds,
    "test_summary_adds": conf_test_summary_adds,
    "test_histogram_adds": conf_test_histogram_adds,
    "test_gauge_all": gauge_pair("all", dead=123),
    "test_gauge_liveall": gauge_pair("liveall", dead=123),
    "test_gauge_min": gauge_pair("min"),
    "test_gauge_livemin": gauge_pair("livemin", dead=123),
    "test_gauge_max": gauge_pair("max"),
    "test_gauge_livemax": gauge_pair("livemax", dead=456),
    "test_gauge_sum": gauge_pair("sum", dead=123),
    "test_gauge_livesum": gauge_pair("livesum", dead=123),
    "test_gauge_mostrecent": None,
    "test_gauge_livemostrecent": None,
    "test_namespace_subsystem": conf_test_namespace_subsystem,
    "test_counter_across_forks": conf_test_counter_across_forks,
    "test_initialization_detects_pid_change": conf_test_initialization_detects_pid_change,
    "test_collect": collect_scenario("help", "help", "help"),
    "test_collect_histogram_ordering": conf_test_collect_histogram_ordering,
    "test_collect_preserves_help": collect_scenario("c help", "g help", "h help"),
    "test_process_restart": conf_test_process_restart,
    "test_multi_expansion": conf_test_multi_expansion,
    "test_missing_gauge_file_during_merge": conf_test_missing_gauge_file_during_merge,
    "test_child_name_is_built_once_with_namespace_subsystem_unit":
        conf_test_child_name_is_built_once_with_namespace_subsystem_unit,
    "test_expansion": conf_test_expansion,
}


def mostrecent_pair(mode, dead):
    def run():
        import time
        use_pid(123)
        g1 = Gauge("g", "help", registry=None, multiprocess_mode=mode)
        use_pid(456)
        g2 = Gauge("g", "help", registry=None, multiprocess_mode=mode)
        g2.set(2)  # earlier
        time.sleep(0.01)
        g1.set(1)  # later: wins
        if dead is not None:
            mark_process_dead(dead)
    return run


CONFORMANCE["test_gauge_mostrecent"] = mostrecent_pair("mostrecent", 123)
CONFORMANCE["test_gauge_livemostrecent"] = mostrecent_pair("livemostrecent", 123)


# ---------------------------------------------------------------------------------------
# Checking


def sorted_files(d):
    # Our read order: file names sorted bytewise (code point order for UTF-8 names).
    return sorted(glob.glob(os.path.join(d, "*.db")), key=lambda p: os.path.basename(p))


class Merged:
    def __init__(self, d):
        self.d = d

    def collect(self):
        return MultiProcessCollector.merge(sorted_files(self.d), accumulate=True)


def families_json(families):
    out = []
    for f in families:
        out.append({
            "name": f.name, "type": f.type, "help": f.documentation,
            "samples": [[s.name, dict(s.labels), s.value] for s in f.samples],
        })
    return out


def close(a, b):
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        if a == b:
            return True
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b))
    return a == b


def compare_families(ref, got, what):
    diffs = []
    rf = {f["name"]: f for f in ref}
    gf = {f["name"]: f for f in got}
    if sorted(rf) != sorted(gf):
        diffs.append(f"{what}: families differ: missing {sorted(set(rf) - set(gf))}, "
                     f"extra {sorted(set(gf) - set(rf))}")
    for name in sorted(set(rf) & set(gf)):
        r, g = rf[name], gf[name]
        for field in ("type", "help"):
            if r[field] != g[field]:
                diffs.append(f"{what}: family {name}: {field} {r[field]!r} != {g[field]!r}")
        key = lambda s: (s[0], sorted(s[1].items()))  # noqa: E731
        rs = sorted(r["samples"], key=key)
        gs = sorted(g["samples"], key=key)
        if len(rs) != len(gs):
            diffs.append(f"{what}: family {name}: {len(rs)} samples expected, {len(gs)} got:"
                         f" {rs[:5]} vs {gs[:5]}")
            continue
        for a, b in zip(rs, gs):
            if a[0] != b[0] or a[1] != b[1] or not close(float(a[2]), float(b[2])):
                diffs.append(f"{what}: family {name}: sample {a!r} != {b!r}")
    return diffs


def split_line(line):
    if line.startswith("#"):
        return line, None
    head, _, value = line.rpartition(" ")
    return head, value


def parse_value(v):
    return {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}.get(v) or float(v)


def compare_lines(ref_text, got_text, what):
    """Same multiset of lines: names, labels and escaping byte-exact; values spelled
    exactly when equal and within 1e-9 relative otherwise (sums may round differently)."""
    ref = sorted(split_line(line) for line in ref_text.splitlines())
    got = sorted(split_line(line) for line in got_text.splitlines())
    diffs = []
    if len(ref) != len(got):
        diffs.append(f"{what}: {len(ref)} lines expected, {len(got)} got")
    for (rh, rv), (gh, gv) in zip(ref, got):
        if rh != gh:
            diffs.append(f"{what}: line {rh!r} != {gh!r}")
            break
        if rv != gv and not close(parse_value(rv), parse_value(gv)):
            diffs.append(f"{what}: value of {rh!r}: {rv} != {gv}")
    return diffs


def check(d, text_path, om_path):
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as om_latest
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
    from prometheus_client.parser import text_string_to_metric_families as text_parse

    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    with open(om_path, encoding="utf-8") as f:
        om = f.read()
    ref = families_json(Merged(d).collect())
    diffs = []
    diffs += compare_families(ref, families_json(text_parse(text)), "text (parsed)")
    om_parsed = True
    try:
        parsed = families_json(om_parse(om))
    except ValueError as e:
        # The OpenMetrics parser rejects what prometheus_client itself writes for a NaN or
        # negative histogram sum; such directories are compared as text lines only.
        om_parsed = False
        try:
            list(om_parse(om_latest(Merged(d)).decode("utf-8")))
            diffs.append(f"openmetrics: our output does not parse ({e}) but the reference does")
        except ValueError:
            pass
    if om_parsed:
        diffs += compare_families(ref, parsed, "openmetrics (parsed)")
    diffs += compare_lines(generate_latest(Merged(d)).decode("utf-8"), text, "text (lines)")
    diffs += compare_lines(om_latest(Merged(d)).decode("utf-8"), om, "openmetrics (lines)")
    samples = sum(len(f["samples"]) for f in ref)
    return {"dir": d, "families": len(ref), "samples": samples,
            "files": len(sorted_files(d)), "om_parsed": om_parsed, "diffs": diffs}


def live_workers(d, n):
    """Workers that record known amounts, say "ready", and stay alive until the harness
    process goes away (as a live pool does while Prometheus scrapes it)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = d
    parent = os.getpid()
    ready_r, ready_w = os.pipe()
    for k in range(n):
        if os.fork() == 0:
            import time
            c = Counter("app_requests", "Requests.", ["path"], registry=None)
            c.labels("/a").inc(k + 1)
            h = Histogram("app_latency_seconds", "Latency.", registry=None, buckets=[0.1, 1.0])
            for v in (0.05, 0.5, 5.0):
                h.observe(v)
            Gauge("app_in_progress", "In progress.", multiprocess_mode="livesum",
                  registry=None).set(1)
            os.write(ready_w, b"x")
            while os.getppid() == parent:
                time.sleep(0.2)
            os._exit(0)
    got = 0
    while got < n:
        got += len(os.read(ready_r, n - got))
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin or kills us


def full_mix(k):
    """Every file kind a worker can have, with values that depend on k."""
    c = Counter("mix_requests", "Requests.", ["path"], registry=None)
    c.labels("/a").inc(k + 1)
    c.labels("/b").inc(0.5)
    h = Histogram("mix_latency_seconds", "Latency.", ["m"], registry=None, buckets=[0.1, 1, 10])
    for v in (0.05, 0.5, 5, 50):
        h.labels("GET").observe(v * (k + 1))
    Summary("mix_size_bytes", "Size.", registry=None).observe(100 * (k + 1))
    for mode in MODES:
        g = Gauge(f"mix_g_{mode}", f"gauge {mode}", registry=None, multiprocess_mode=mode)
        g.set(k * 10 - 3)


def pool(d, n, dead):
    """n workers with the full mix; the first `dead` exit, the others stay alive until
    stdin closes. Prints the pids as JSON: {"alive": [...], "dead": [...]}."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = d
    parent = os.getpid()
    ready_r, ready_w = os.pipe()
    pids = []
    for k in range(n):
        pid = os.fork()
        if pid == 0:
            import time
            full_mix(k)
            os.write(ready_w, b"x")
            if k >= dead:
                while os.getppid() == parent:
                    time.sleep(0.1)
            os._exit(0)
        pids.append(pid)
    got = 0
    while got < n:
        got += len(os.read(ready_r, n - got))
    for pid in pids[:dead]:
        os.waitpid(pid, 0)
    print(json.dumps({"alive": pids[dead:], "dead": pids[:dead]}), flush=True)
    sys.stdin.read()


def churn(d, total, concurrency):
    """`total` short-lived workers, at most `concurrency` at a time, forked from this
    process (prometheus_client already imported). Each records a random number of
    requests and exits; nobody calls mark_process_dead. Prints the expected totals."""
    import time
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = d
    rng = random.Random(7)
    running = {}
    expected = {"/a": 0, "/b": 0}
    observations = 0
    started = 0
    pids = set()
    while started < total or running:
        while started < total and len(running) < concurrency:
            n_a, n_b = rng.randint(0, 5), rng.randint(1, 3)
            expected["/a"] += n_a
            expected["/b"] += n_b
            observations += n_a + n_b
            pid = os.fork()
            if pid == 0:
                c = Counter("churn_requests", "Requests.", ["path"], registry=None)
                h = Histogram("churn_latency_seconds", "Latency.", registry=None, buckets=[0.1, 1])
                g = Gauge("churn_in_progress", "In progress.", multiprocess_mode="livesum",
                          registry=None)
                g.inc()
                for path, n in (("/a", n_a), ("/b", n_b)):
                    for i in range(n):
                        c.labels(path).inc()
                        h.observe(i * 0.3)
                time.sleep(0.005)
                g.dec()
                os._exit(0)
            running[pid] = True
            pids.add(pid)
            started += 1
        pid, _ = os.wait()
        running.pop(pid, None)
    print(json.dumps({"requests": expected, "observations": observations, "workers": total,
                      "distinct_pids": len(pids)}),
          flush=True)


def locked_worker(d):
    """A worker that takes its liveness lock the way the shim does (flock under a temp
    name, renamed into place), records metrics, says "ready" and sleeps until killed."""
    import fcntl
    import time
    pid = os.getpid()
    tmp = os.path.join(d, f".multiproc-exporter-{pid}.lock.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, json.dumps({"pid": pid}).encode())
    os.rename(tmp, os.path.join(d, f".multiproc-exporter-{pid}.lock"))
    full_mix(1)
    print("ready", pid, flush=True)
    while True:
        time.sleep(1)


def looping_worker(d):
    """A worker that says "ready PID" and then updates its counter, histogram, summary
    and gauges (three modes) without pause, adding a new labelled series every 20
    rounds for the first 10,000 rounds (so entries are appended while it runs too),
    until it is killed."""
    c = Counter("loop_requests", "Requests.", ["k"], registry=None)
    h = Histogram("loop_latency_seconds", "Latency.", registry=None, buckets=[0.1, 1])
    s = Summary("loop_size_bytes", "Size.", registry=None)
    g_sum = Gauge("loop_g_livesum", "Live sum.", multiprocess_mode="livesum", registry=None)
    g_max = Gauge("loop_g_max", "Max.", multiprocess_mode="max", registry=None)
    g_all = Gauge("loop_g_all", "All.", multiprocess_mode="all", registry=None)
    c.labels("k0").inc()
    print("ready", os.getpid(), flush=True)
    i = 0
    while True:
        i += 1
        c.labels(f"k{(i // 20) % 500}").inc()
        h.observe((i % 13) * 0.1)
        s.observe(i % 7)
        g_sum.set(i % 100)
        g_max.set(i)
        g_all.inc()


def resume_worker(d, k):
    """Says "ready PID", waits for a line on stdin, records full_mix(k) (prometheus_client
    resumes files that already carry this pid), says "done" and waits for stdin to end."""
    print("ready", os.getpid(), flush=True)
    sys.stdin.readline()
    full_mix(k)
    print("done", flush=True)
    sys.stdin.read()


def reuse(d, binary, write):
    """In a fresh pid namespace (we are pid 1): with `write`, resume counter_1.db and add
    5 (a new process that reuses the pid of the file's writer); without, leave the files
    alone (pid 1 exists, started after the files were created, and does not map them).
    Then ask the sidecar, from inside the namespace, what it makes of pid 1."""
    import subprocess
    if write:
        Counter("reused", "Requests.", registry=None).inc(5)
    out = subprocess.run([binary, "compact", "--dir", d, "--liveness", "proc"],
                         capture_output=True, text=True)
    print(out.stdout.strip(), flush=True)


def compare_dirs(d1, d2):
    ref = families_json(Merged(d1).collect())
    got = families_json(Merged(d2).collect())
    return compare_families(ref, got, "MultiProcessCollector")


def main():
    cmd = sys.argv[1]
    if cmd == "random":
        first, count = int(sys.argv[3]), int(sys.argv[4])
        for seed in range(first, first + count):
            write_random(os.path.join(sys.argv[2], str(seed)), seed)
    elif cmd == "case":
        name = sys.argv[3]
        if name in CASES:
            CASES[name]()
        else:
            CONFORMANCE[name]()
    elif cmd == "check":
        with open(sys.argv[2], encoding="utf-8") as f:
            jobs = json.load(f)
        print(json.dumps([check(*job) for job in jobs]))
    elif cmd == "pool":
        pool(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "churn":
        churn(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "locked-worker":
        locked_worker(sys.argv[2])
    elif cmd == "looping-worker":
        looping_worker(sys.argv[2])
    elif cmd == "resume-worker":
        resume_worker(sys.argv[2], int(sys.argv[3]))
    elif cmd in ("reuse-writer", "reuse-idle"):
        reuse(sys.argv[2], sys.argv[3], cmd == "reuse-writer")
    elif cmd == "mark-dead":
        for pid in sys.argv[3:]:
            mark_process_dead(int(pid), sys.argv[2])
    elif cmd == "compare-dirs":
        print(json.dumps(compare_dirs(sys.argv[2], sys.argv[3])))
    elif cmd == "live-workers":
        live_workers(sys.argv[2], int(sys.argv[3]))
    elif cmd == "reference-text":
        from prometheus_client.exposition import generate_latest
        sys.stdout.write(generate_latest(Merged(sys.argv[2])).decode("utf-8"))
    elif cmd == "version":
        print(prometheus_client.__version__ if hasattr(prometheus_client, "__version__") else "")
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
