# Gunicorn for the example app, beside the multiproc-exporter sidecar.
#
#   PROMETHEUS_MULTIPROC_DIR=/run/app-metrics gunicorn -c gunicorn.conf.py --bind 127.0.0.1:8000
#
# PROMETHEUS_MULTIPROC_DIR must be in the environment before Gunicorn starts (the
# workers' prometheus_client reads it at import); the shim's on_starting creates the
# directory and removes the files of an earlier run. Options can also come from
# GUNICORN_CMD_ARGS (for example "--bind=0.0.0.0:8000" in a container).
from multiproc_exporter.gunicorn import on_starting, post_fork, child_exit  # noqa: F401

wsgi_app = "app:app"
workers = 2
# Recycle workers, as production pools do: every dead worker's files are what the
# sidecar proves dead and folds into archives, so the directory stays small.
max_requests = 1000
max_requests_jitter = 100
