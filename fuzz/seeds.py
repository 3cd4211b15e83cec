"""Regenerates the fuzzers' seed corpus (fuzz/seeds/) from real prometheus_client writers.

  python3 fuzz/seeds.py fuzz/seeds

Run with any Python 3: it makes a throw-away virtualenv per pinned prometheus_client
version, and in each runs itself as the writer (`write DIR`). The writers are real
processes (forked, one per worker, each creating its metrics after the fork so its files
carry its own pid), as in tests/py/harness.py. Then:

- `file/`: every `.db` file, cut to its `used` bytes. A real file is 64 KiB of mostly
  zeros; the fuzzer mutates every byte it is given, so the zeros past `used` (which the
  sidecar never reads) would only slow it down.
- `key/`: every distinct key text of those files, one per file, as the decoder sees it.

Seeded, with fixed pids, so a rerun gives the same bytes except the timestamps of the
mostrecent gauges. See docs/fuzzing.md.
"""

import glob
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import venv

# The version the sidecar targets, and the last one with 8-byte values (the old layout
# the parser must recognise and skip).
VERSIONS = {"current": "0.26.0", "old": "0.17.1"}

LABELS = ["", "/", 'quote"d', "back\\slash", "new\nline", "tab\there", "caf\u00e9",
          "\U0001F600 emoji", "+Inf"]


def fork(body):
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
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SystemExit(f"writer {pid} failed")


def write(out, version):
    """Writes one directory of files in worker processes (run inside the virtualenv)."""
    import random

    from prometheus_client import Counter, Gauge, Histogram, Summary, values

    modes = ["all", "liveall", "livesum", "min", "max", "sum", "livemin", "livemax",
             "mostrecent", "livemostrecent"]
    if version == "old":
        modes = ["all", "livesum", "max"]

    def worker(pid):
        def run():
            rng = random.Random(pid)
            values.ValueClass = values.MultiProcessValue(lambda: pid)
            c = Counter("http_requests", "Requests by \"path\"\\n and\nstatus \u00e9.",
                        ["path", "status"])
            for i in range(6):
                c.labels(LABELS[(i + pid) % len(LABELS)], rng.choice(["200", "500"])).inc()
            h = Histogram("latency_seconds", "Latency.", ["m"], buckets=[0.1, 1, 10])
            h.labels("GET \U0001F600").observe(rng.expovariate(2))
            s = Summary("size_bytes", "Sizes.")
            s.observe(rng.randint(1, 5000))
            for mode in modes:
                g = Gauge(f"g_{mode}", f"gauge in {mode} mode", ["v"],
                          multiprocess_mode=mode)
                g.labels(LABELS[pid % len(LABELS)]).set(rng.uniform(-5, 5))
            if version == "current":
                # Special values as the exposition spells them.
                sv = Gauge("special", "special values", ["i"], multiprocess_mode="max")
                for i, v in enumerate([float("inf"), float("-inf"), float("nan"), -0.0]):
                    sv.labels(str(i)).set(v)
        return run

    for pid in (7, 8):
        fork(worker(pid))


def used_part(path):
    with open(path, "rb") as f:
        data = f.read()
    used = struct.unpack_from("i", data, 0)[0]
    return data[:used]


def keys_of(data):
    """The key texts of a file in the 0.18+ layout (no old-format file is passed here)."""
    used = struct.unpack_from("i", data, 0)[0]
    pos, out = 8, []
    while pos < used:
        n = struct.unpack_from("i", data, pos)[0]
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n + (8 - (n + 4) % 8) + 16
    return out


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "write":
        os.makedirs(sys.argv[2], exist_ok=True)
        write(sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    dest = sys.argv[1]
    shutil.rmtree(os.path.join(dest, "file"), ignore_errors=True)
    shutil.rmtree(os.path.join(dest, "key"), ignore_errors=True)
    os.makedirs(os.path.join(dest, "file"))
    os.makedirs(os.path.join(dest, "key"))
    keys = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in VERSIONS.items():
            env_dir = os.path.join(tmp, f"venv-{name}")
            venv.create(env_dir, with_pip=True)
            py = os.path.join(env_dir, "bin", "python")
            subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                            f"prometheus_client=={version}"], check=True)
            out = os.path.join(tmp, name)
            env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=out)
            subprocess.run([py, os.path.abspath(__file__), "write", out, name], env=env,
                           check=True)
            for path in sorted(glob.glob(os.path.join(out, "*.db"))):
                data = used_part(path)
                base = os.path.basename(path)
                if name == "old":
                    base = "old-" + base
                else:
                    keys.extend(k for k in keys_of(data) if k not in keys)
                with open(os.path.join(dest, "file", base), "wb") as f:
                    f.write(data)
    for i, k in enumerate(keys):
        with open(os.path.join(dest, "key", f"{i:03}.json"), "wb") as f:
            f.write(k)
    print(f"{len(os.listdir(os.path.join(dest, 'file')))} files, {len(keys)} keys in {dest}")


if __name__ == "__main__":
    main()
