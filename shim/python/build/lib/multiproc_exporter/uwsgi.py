"""uWSGI hooks. In the uWSGI configuration:

    env = PROMETHEUS_MULTIPROC_DIR=/run/app-metrics
    import = multiproc_exporter.uwsgi

`import` runs in the master before the workers are forked (without lazy-apps): it
prepares and wipes the directory. A post-fork hook then takes each worker's liveness
lock. uWSGI has no Python hook in the master when a worker exits; the lock is released
by the kernel when the worker dies, and the sidecar removes the dead worker's live
gauges itself. prometheus_client identifies processes by pid, which uWSGI changes at
every respawn (max-requests, harakiri), exactly like Gunicorn.
"""

import os

import multiproc_exporter as _shim

try:
    import uwsgi  # noqa: F401 - present only inside uWSGI
    from uwsgidecorators import postfork
except ImportError:  # imported outside uWSGI (tests, tools)
    uwsgi = None

    def postfork(f):
        return f


def _in_master():
    return uwsgi is not None and os.getpid() == uwsgi.masterpid()


if _in_master():
    _shim.prepare_directory()


@postfork
def _take_lock():
    _shim.hold_worker_lock()
