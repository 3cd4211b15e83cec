"""Real prometheus_client workers for the deploy checks: `python writers.py DIR N`
starts N worker processes, one after the other, each writing into the multiprocess
directory DIR under its own pid, and prints what the merged exposition must show.

Worker i (1..N) adds 10 * i to `ci_requests_total{route="/"}`, observes one request of
0.05 s in `ci_request_duration_seconds` and sets the gauge (mode `sum`)
`ci_workers_started` to 1. Nothing is left running.
"""

import os
import subprocess
import sys


def worker(index):
    from prometheus_client import Counter, Gauge, Histogram

    requests = Counter("ci_requests", "Requests served.", ["route"])
    latency = Histogram("ci_request_duration_seconds", "Request latency.",
                        buckets=[0.01, 0.1, 1.0])
    started = Gauge("ci_workers_started", "Workers started.", multiprocess_mode="sum")
    requests.labels("/").inc(10 * index)
    latency.observe(0.05)
    started.set(1)


def main():
    if sys.argv[1] == "--worker":
        worker(int(sys.argv[2]))
        return
    directory, n = sys.argv[1], int(sys.argv[2])
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=directory)
    for i in range(1, n + 1):
        subprocess.run([sys.executable, __file__, "--worker", str(i)], env=env, check=True)
    total = sum(10 * i for i in range(1, n + 1))
    print(f'ci_requests_total{{route="/"}} {total:.1f}')
    print(f"ci_request_duration_seconds_count {n:.1f}")
    print(f'ci_request_duration_seconds_bucket{{le="0.1"}} {n:.1f}')
    print(f"ci_workers_started {n:.1f}")


if __name__ == "__main__":
    main()
