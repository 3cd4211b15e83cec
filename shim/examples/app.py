"""A small WSGI app instrumented with prometheus_client in multiprocess mode, used by
the end-to-end tests and as an example. It exposes no /metrics itself: the sidecar does.
"""

import time

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("app_requests", "Requests served.", ["path"])
LATENCY = Histogram("app_request_duration_seconds", "Request latency.",
                    buckets=[0.001, 0.01, 0.1, 1.0])
IN_PROGRESS = Gauge("app_requests_in_progress", "Requests being served.",
                    multiprocess_mode="livesum")
PER_WORKER = Gauge("app_worker_requests", "Requests served by each live worker.",
                   multiprocess_mode="liveall")
STARTED = Gauge("app_worker_start_time_seconds", "Start time of each worker.",
                multiprocess_mode="all")
STARTED.set(time.time())


def app(environ, start_response):
    with IN_PROGRESS.track_inprogress(), LATENCY.time():
        REQUESTS.labels(environ.get("PATH_INFO", "/")).inc()
        PER_WORKER.inc()
        body = b"ok\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
