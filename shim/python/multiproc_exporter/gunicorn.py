"""Gunicorn hooks. In gunicorn.conf.py:

    from multiproc_exporter.gunicorn import on_starting, post_fork, child_exit  # noqa: F401

with PROMETHEUS_MULTIPROC_DIR set in the environment. That is all:

* on_starting (master, once, before any worker): prepare and wipe the directory;
* post_fork (each worker): take the worker's liveness lock;
* child_exit (master, for each worker that exits): mark it dead.

If your gunicorn.conf.py defines its own hooks, call these from them.
"""

import multiproc_exporter as _shim


def on_starting(server):
    path, removed = _shim.prepare_directory()
    server.log.info("multiproc_exporter: prepared %s (removed %d files of an earlier run)",
                    path, removed)


def post_fork(server, worker):
    _shim.hold_worker_lock()


def child_exit(server, worker):
    _shim.mark_dead(worker.pid)
