"""The example application of deploy/: a small WSGI app whose metrics are the golden
signals the example rules and dashboard use, and nothing else:

* ``http_requests_total{method,route,status}`` (a counter): traffic and errors;
* ``http_request_duration_seconds{route}`` (a histogram): latency.

It runs under Gunicorn with prometheus_client in multiprocess mode (the hooks of the
``multiproc_exporter`` shim are in gunicorn.conf.py) and exposes no /metrics itself: the
multiproc-exporter sidecar serves the merged metrics of all its workers.

Routes (``route`` is the route, never the raw path, so the label stays bounded):

* ``/``: 200;
* ``/healthz``: 200, for the runtime's probes;
* ``/error``: 500, to see the error-ratio alert fire;
* ``/slow?seconds=S``: 200 after S seconds (at most 10), to see the latency alert fire;
* anything else: 404 as ``route="unmatched"``.
"""

import time
from urllib.parse import parse_qs

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "http_requests", "HTTP requests served.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "http_request_duration_seconds", "Time to serve an HTTP request.", ["route"]
)

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def index(environ):
    return 200, b"ok\n"


def fail(environ):
    return 500, b"failed on purpose\n"


def slow(environ):
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        seconds = min(max(float(query.get("seconds", ["1"])[0]), 0.0), 10.0)
    except ValueError:
        return 400, b"seconds must be a number\n"
    time.sleep(seconds)
    return 200, b"slept\n"


ROUTES = {"/": index, "/healthz": index, "/error": fail, "/slow": slow}

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


def app(environ, start_response):
    started = time.perf_counter()
    path = environ.get("PATH_INFO") or "/"
    handler = ROUTES.get(path)
    route = path if handler else "unmatched"
    if handler is None:
        status, body = 404, b"not found\n"
    else:
        try:
            status, body = handler(environ)
        except Exception:  # noqa: BLE001 - a failed request is a 500, counted
            status, body = 500, b"internal error\n"
    method = environ.get("REQUEST_METHOD", "GET")
    REQUESTS.labels(method if method in METHODS else "other", route, str(status)).inc()
    LATENCY.labels(route).observe(time.perf_counter() - started)
    start_response(
        f"{status} {REASONS[status]}",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]
