"""Tests of the worker-side shim (run by `cargo test` through tests/it/shim.rs)."""

import fcntl
import json
import os
import signal
import time

import pytest

import multiproc_exporter as shim


@pytest.fixture
def mpdir(tmp_path, monkeypatch):
    d = tmp_path / "mp"
    d.mkdir()
    monkeypatch.setenv(shim.DIR_ENV, str(d))
    return d


def probe(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return "released"
    except BlockingIOError:
        return "held"
    finally:
        os.close(fd)


def test_prepare_directory_wipes_only_what_is_ours(mpdir, tmp_path):
    outside = tmp_path / "outside.db"
    outside.write_text("keep")
    for name in ["counter_1.db", "gauge_all_2.db", "histogram_archive.db",
                 ".mpe-tmp.counter_archive.db", ".mpe-absorbing.counter_3.db",
                 ".multiproc-exporter-7.lock", "notes.txt", "other.db"]:
        (mpdir / name).write_text("x")
    (mpdir / "sub").mkdir()
    (mpdir / "sub" / "counter_5.db").write_text("x")
    os.symlink(outside, mpdir / "counter_9.db")
    held = os.open(mpdir / ".multiproc-exporter-8.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    path, removed = shim.prepare_directory()
    assert path == str(mpdir)
    assert os.environ[shim.DIR_ENV] == str(mpdir)
    assert removed == 6
    left = sorted(os.listdir(mpdir))
    assert left == [".multiproc-exporter-8.lock", ".multiproc-exporter.lock",
                    ".multiproc-exporter.wiped", "counter_9.db", "notes.txt", "other.db", "sub"]
    assert (mpdir / "sub" / "counter_5.db").exists()
    assert outside.read_text() == "keep"
    os.close(held)


def test_issue_9_every_wipe_replaces_the_wipe_marker(mpdir):
    # The sidecar keeps the last values of counter files that vanish (someone deleted
    # them) until a wipe; a new inode of the marker is how it tells a wipe from that.
    shim.prepare_directory()
    first = os.stat(mpdir / shim.WIPE_MARKER).st_ino
    shim.prepare_directory()
    assert os.stat(mpdir / shim.WIPE_MARKER).st_ino != first
    assert not [n for n in os.listdir(mpdir) if ".tmp." in n]
    shim.prepare_directory(wipe=False)
    assert shim._deletable(shim.WIPE_MARKER) == "no"


def test_issue_8_wipe_applies_the_sidecars_file_name_grammar(mpdir):
    # Regression: the wipe took every `.db` name with a known type prefix for ours, so it
    # deleted `gauge_1.db`, which the sidecar rejects as a bad name (a gauge file names a
    # mode and a pid), and it knew lock temporaries only by a substring.
    for name in ["gauge_1.db", "gauge_all_1.db", "gauge_x_y_1.db", "info_1.db",
                 "counter_archive.db", ".multiproc-exporter-3.lock.tmp.3",
                 ".multiproc-exporter-4.lock.tmp.4"]:
        (mpdir / name).write_text("x")
    held = os.open(mpdir / ".multiproc-exporter-4.lock.tmp.4", os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    assert shim._deletable("gauge_1.db") == "no"
    assert shim._deletable(".multiproc-exporter-3.lock.tmp.3") == "if_lock_released"
    _, removed = shim.prepare_directory()
    assert removed == 4
    assert sorted(os.listdir(mpdir)) == [".multiproc-exporter-4.lock.tmp.4",
                                         ".multiproc-exporter.lock",
                                         ".multiproc-exporter.wiped", "gauge_1.db",
                                         "info_1.db"]
    os.close(held)


def test_prepare_creates_a_missing_directory(tmp_path, monkeypatch):
    d = tmp_path / "later" / "mp"
    monkeypatch.setenv(shim.DIR_ENV, str(d))
    shim.prepare_directory()
    assert d.is_dir()


def test_worker_lock_is_held_for_life_and_released_at_death(mpdir):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        shim.hold_worker_lock()
        os.write(w, b"x")
        time.sleep(60)
        os._exit(0)
    os.read(r, 1)
    lock = shim.lock_path(pid)
    assert probe(lock) == "held"
    record = json.loads(open(lock).read())
    assert record["pid"] == pid
    assert record["pidns"] == os.stat("/proc/self/ns/pid").st_ino
    assert not [n for n in os.listdir(mpdir) if ".tmp." in n]
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert probe(lock) == "released"


def test_mark_dead_removes_only_live_gauges(mpdir):
    for name in ["gauge_livesum_5.db", "gauge_liveall_5.db", "gauge_all_5.db",
                 "counter_5.db", "gauge_livesum_55.db"]:
        (mpdir / name).write_text("x")
    shim.mark_dead(5)
    assert sorted(os.listdir(mpdir)) == ["counter_5.db", "gauge_all_5.db",
                                         "gauge_livesum_55.db"]


def test_issue_5_mark_dead_in_the_master_imports_nothing(mpdir):
    # Regression: child_exit runs in Gunicorn's SIGCHLD handler; a lazy import of
    # prometheus_client there was re-entered by the next SIGCHLD and failed half done.
    import subprocess
    import sys
    (mpdir / "gauge_livesum_5.db").write_text("x")
    code = ("import sys, multiproc_exporter as m; m.mark_dead(5); "
            "assert 'prometheus_client' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert not (mpdir / "gauge_livesum_5.db").exists()


def test_gunicorn_hooks(mpdir):
    from multiproc_exporter import gunicorn

    class Log:
        def info(self, *a):
            self.said = a

    class Server:
        log = Log()

    class Worker:
        pid = os.getpid()

    (mpdir / "counter_1.db").write_text("x")
    gunicorn.on_starting(Server())
    assert not (mpdir / "counter_1.db").exists()
    gunicorn.post_fork(Server(), Worker())
    assert probe(shim.lock_path(os.getpid())) == "held"
    (mpdir / f"gauge_livesum_{os.getpid()}.db").write_text("x")
    gunicorn.child_exit(Server(), Worker())
    assert not (mpdir / f"gauge_livesum_{os.getpid()}.db").exists()


def test_uwsgi_module_outside_uwsgi_touches_nothing(mpdir):
    (mpdir / "counter_1.db").write_text("x")
    import multiproc_exporter.uwsgi  # noqa: F401
    assert (mpdir / "counter_1.db").exists()
