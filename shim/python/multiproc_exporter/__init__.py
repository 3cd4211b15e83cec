"""Worker-side companion of the multiproc-exporter sidecar.

prometheus_client's multiprocess mode writes one set of files per worker process into
PROMETHEUS_MULTIPROC_DIR. The sidecar merges them; this module gives it what a plain
application cannot:

* prepare_directory(): create the directory, set the environment variable before
  prometheus_client is imported, and wipe the files of an earlier run, under the same
  directory lock the sidecar takes, so a restarted pool shows no phantom series;
* hold_worker_lock(): in each worker, hold an exclusive flock on a per-worker lock file
  for the worker's lifetime. The kernel releases it when the worker dies, however it
  dies, so the sidecar's non-blocking probe proves death, across containers and pid
  namespaces;
* mark_dead(pid): what a supervisor calls when a worker exits (prometheus_client's
  mark_process_dead).

Only the standard library is used; prometheus_client is imported lazily.
"""

import errno
import fcntl
import json
import os
import time

__all__ = ["DIR_ENV", "directory", "prepare_directory", "hold_worker_lock", "mark_dead",
           "lock_path"]

DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
LEGACY_DIR_ENV = "prometheus_multiproc_dir"
DIR_LOCK = ".multiproc-exporter.lock"
# Replaced (a new inode each time) under the directory lock after every wipe: the sidecar
# takes it as a reset and forgets the last values of the files that vanished.
WIPE_MARKER = ".multiproc-exporter.wiped"
LOCK_PREFIX = ".multiproc-exporter-"
LOCK_SUFFIX = ".lock"
# A lock file is created as f"{final}{LOCK_TMP_INFIX}{creator pid}", then renamed.
LOCK_TMP_INFIX = ".tmp."
# File types named by a prefix and an identifier: f"{kind}_{id}.db". Gauges also name a
# mode: f"gauge_{mode}_{id}.db".
KINDS = ("counter", "histogram", "summary", "unknown", "untyped")
OUR_HIDDEN = (".mpe-absorbing.", ".mpe-tmp.")

_held = {}


def directory(path=None):
    """The multiprocess directory: `path`, or the environment variables prometheus_client
    reads (the upper-case one first)."""
    path = path or os.environ.get(DIR_ENV) or os.environ.get(LEGACY_DIR_ENV)
    if not path:
        raise RuntimeError(f"set {DIR_ENV} or pass the directory")
    return path


def lock_path(pid, path=None):
    """The liveness lock file of worker `pid`."""
    return os.path.join(directory(path), f"{LOCK_PREFIX}{pid}{LOCK_SUFFIX}")


def _in_grammar(name):
    """Whether the sidecar reads `name` as a file of prometheus_client's grammar (its
    src/scan.rs parse_name): not hidden, `.db`, a known type prefix and an identifier,
    and for gauges a mode too. `gauge_1.db` or `info_1.db` are bad names the sidecar
    skips and reports, not files of ours."""
    if not name.endswith(".db") or name.startswith("."):
        return False
    parts = name.split("_")
    if parts[0] in KINDS:
        return True
    return parts[0] == "gauge" and len(parts) >= 3


def _lock_pid(name):
    """The pid of a lock file name, or None."""
    if not name.startswith(LOCK_PREFIX):
        return None
    rest = name[len(LOCK_PREFIX):]
    if not rest.endswith(LOCK_SUFFIX):
        return None
    pid = rest[:-len(LOCK_SUFFIX)]
    return pid if pid and "." not in pid else None


def _is_lock_tmp(name):
    """Whether `name` is a lock file being created: f"{lock name}.tmp.{creator pid}"."""
    lock, infix, creator = name.rpartition(LOCK_TMP_INFIX)
    return (bool(infix) and _lock_pid(lock) is not None and creator.isascii()
            and creator.isdigit())


def _deletable(name):
    """The stale-wipe rule by name alone, the same as the sidecar's
    compact::deletable: "yes" for names of the file grammar (archives included) and our
    hidden files, "if_lock_released" for worker lock files (final or being created),
    "no" for everything else (the directory lock included)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # Not UTF-8 on disk: not a name the sidecar reads or writes.
        return "no"
    if _in_grammar(name) or name.startswith(OUR_HIDDEN):
        return "yes"
    if _lock_pid(name) is not None or _is_lock_tmp(name):
        return "if_lock_released"
    return "no"


def _ours(name, path):
    """Whether `name` in the directory is a file this project may delete: names of the
    prometheus_client file grammar, the sidecar's hidden files, and lock files that
    nobody holds (workers of an earlier run)."""
    deletable = _deletable(name)
    if deletable == "if_lock_released":
        return _released(os.path.join(path, name))
    return deletable == "yes"


def _released(lock_file):
    try:
        fd = os.open(lock_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    finally:
        os.close(fd)


class _DirectoryLock:
    """The directory lock the sidecar also takes around its compactions."""

    def __init__(self, path):
        self.path = os.path.join(path, DIR_LOCK)

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def prepare_directory(path=None, wipe=True):
    """Creates the directory, exports it in PROMETHEUS_MULTIPROC_DIR (call this before
    prometheus_client is imported: it picks multiprocess mode at import), and with
    `wipe` removes the files of an earlier run. Returns the directory and the number of
    files removed.

    Call it once per run, in the supervisor, before any worker starts. It never
    recurses, never follows a symlink and leaves names it does not own alone."""
    path = directory(path)
    os.makedirs(path, exist_ok=True)
    os.environ[DIR_ENV] = path
    removed = 0
    if wipe:
        with _DirectoryLock(path):
            for entry in os.scandir(path):
                if not entry.is_file(follow_symlinks=False):
                    continue
                if _ours(entry.name, path):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except FileNotFoundError:
                        pass
            _replace_wipe_marker(path)
    return path, removed


def _replace_wipe_marker(path):
    """Says "this was a wipe" to the sidecar: without it, counter files that vanish are
    taken for files deleted by accident, and their last values are kept."""
    marker = os.path.join(path, WIPE_MARKER)
    tmp = f"{marker}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    try:
        os.write(fd, f"{time.time():.6f} {os.getpid()}\n".encode())
    finally:
        os.close(fd)
    os.replace(tmp, marker)


def _pid_namespace():
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def _start_ticks():
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def hold_worker_lock(path=None, pid=None):
    """In a worker: takes its liveness lock and keeps it until the process ends.

    The file is created and locked under a temporary name, then renamed into place, so a
    lock file under its final name is always held by its creator until it dies. Its
    content (JSON) tells the sidecar the pid, the pid namespace and the start time."""
    path = directory(path)
    pid = pid or os.getpid()
    if _held.get("pid") == pid:
        return _held["path"]
    final = lock_path(pid, path)
    tmp = f"{final}{LOCK_TMP_INFIX}{os.getpid()}"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    record = {"pid": pid, "pidns": _pid_namespace(), "start_ticks": _start_ticks(),
              "created": time.time()}
    os.write(fd, json.dumps(record).encode("ascii"))
    os.rename(tmp, final)
    _held.clear()
    _held.update(pid=pid, fd=fd, path=final)
    return final


LIVE_MODES = ("liveall", "livesum", "livemin", "livemax", "livemostrecent")


def mark_dead(pid, path=None):
    """What a supervisor calls when worker `pid` exits: removes its live-mode gauge files,
    exactly the files prometheus_client's mark_process_dead removes. The sidecar folds
    the rest into archives.

    It imports nothing: Gunicorn calls child_exit from its SIGCHLD handler in the master,
    where a first import of prometheus_client can be interrupted by the next SIGCHLD and
    re-entered half initialised (and importing it in the master would also fix its value
    class before the workers fork)."""
    path = directory(path)
    for mode in LIVE_MODES:
        try:
            os.unlink(os.path.join(path, f"gauge_{mode}_{pid}.db"))
        except FileNotFoundError:
            pass
