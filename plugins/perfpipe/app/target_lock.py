"""One load on one target at a time on this machine, outside a scheduler: a lock per resolved address:port.

Under a scheduler the target's one-slot Airflow pool serialises runs (perfpipe.app.pools); an in-process CLI run
(dag.test) has no scheduler, so it holds these locks for its whole run. A lock is an fcntl lock on a file in a
machine-wide folder (PERFPIPE_LOCK_DIR, default /tmp/perfpipe-locks: not the checkout, so two checkouts exclude
each other), keyed like the pools and caps by the target's resolved host:port (perfpipe.app.targets.endpoints):
two names of one server take the same lock. The kernel releases it when the holding process dies, whatever kills
it: a stale lock cannot outlive its run.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from perfpipe.core.errors import InfrastructureError

LOCK_DIR_ENV = "PERFPIPE_LOCK_DIR"
DEFAULT_LOCK_DIR = Path("/tmp/perfpipe-locks")


class TargetBusyError(InfrastructureError):
    """Another run holds the target and the caller asked not to wait."""


def lock_dir() -> Path:
    folder = Path(os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        try:  # shared by every user of the machine, like /tmp: each may create its lock files, none remove others'
            folder.chmod(0o1777)
        except PermissionError:
            pass
    return folder


def lock_path(endpoint: str) -> Path:
    return lock_dir() / (re.sub(r"[^0-9A-Za-z.]", "_", endpoint) + ".lock")  # one char for one: no two collide


@contextmanager
def target_lock(endpoints: list[str], *, holder: str, wait: bool = True,
                log: Callable[[str], None] = lambda _msg: None) -> Iterator[None]:
    """Hold the lock of every endpoint (sorted, so two runs never deadlock) for the block.

    Busy: wait for it (saying who holds it), or with wait=False raise TargetBusyError before any load."""
    fds: list[int] = []
    try:
        for endpoint in sorted(set(endpoints)):
            path = lock_path(endpoint)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            fds.append(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                busy = f"target {endpoint} is busy: {_holder_of(fd) or 'another run'} holds it ({path})"
                if not wait:
                    raise TargetBusyError(f"{busy}; refused (--no-wait), nothing was sent") from None
                log(f"{busy}; waiting until it ends (--no-wait refuses instead)")
                started = time.monotonic()
                fcntl.flock(fd, fcntl.LOCK_EX)
                log(f"target {endpoint} is free after {time.monotonic() - started:.1f}s: starting")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, {holder}, since {datetime.now(timezone.utc):%H:%M:%S} UTC\n"
                      .encode(), 0)
        yield
    finally:
        for fd in fds:
            os.close(fd)  # closing releases the lock (it would be released at exit anyway)


def _holder_of(fd: int) -> str:
    try:
        return os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
