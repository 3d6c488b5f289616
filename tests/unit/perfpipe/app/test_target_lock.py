"""perfpipe.app.target_lock: one holder per address:port on this machine, released when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from perfpipe.app.target_lock import LOCK_DIR_ENV, TargetBusyError, lock_path, target_lock

HOLD = """
import sys, time
from perfpipe.app.target_lock import target_lock
with target_lock([sys.argv[1]], holder="the other run"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    return tmp_path / "locks"


@pytest.fixture
def other_process(lock_dir):
    """Another process holding the lock of 127.0.0.1:9001 (killed at the end)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, "127.0.0.1:9001"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, LOCK_DIR_ENV: str(lock_dir)})
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_busy_target_is_refused_naming_who_holds_it(other_process):
    with pytest.raises(TargetBusyError, match=rf"target 127.0.0.1:9001 is busy: pid {other_process.pid}, the other "
                                              r"run, since .* refused \(--no-wait\), nothing was sent"):
        with target_lock(["127.0.0.1:9001"], holder="me", wait=False):
            pytest.fail("the lock was given twice")
    with target_lock(["127.0.0.1:9002"], holder="me", wait=False):  # another port is another target
        pass


def test_a_waiting_run_starts_when_the_holder_dies_however_it_dies(other_process):
    messages: list[str] = []
    threading.Timer(0.5, other_process.send_signal, (signal.SIGKILL,)).start()  # no cleanup runs on SIGKILL
    started = time.monotonic()
    with target_lock(["127.0.0.1:9001"], holder="me", log=messages.append):
        waited = time.monotonic() - started
    assert 0.4 < waited < 10
    assert "is busy" in messages[0] and "waiting until it ends (--no-wait refuses instead)" in messages[0]
    assert messages[1].startswith("target 127.0.0.1:9001 is free after")


def test_locks_are_files_per_endpoint_in_the_shared_folder(lock_dir):
    with target_lock(["[::1]:9001", "127.0.0.1:9001"], holder="me"):
        assert sorted(p.name for p in lock_dir.iterdir()) == ["127.0.0.1_9001.lock", "___1__9001.lock"]
        assert "pid %d, me" % os.getpid() in lock_path("127.0.0.1:9001").read_text()
    with target_lock(["127.0.0.1:9001"], holder="me", wait=False):  # released at the end of the block
        pass
