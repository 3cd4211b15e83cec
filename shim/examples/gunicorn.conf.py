# Gunicorn with the multiproc-exporter sidecar: set PROMETHEUS_MULTIPROC_DIR in the
# environment and add this one line. The sidecar serves the merged /metrics.
from multiproc_exporter.gunicorn import on_starting, post_fork, child_exit  # noqa: F401
