"""The in-process runs of one Airflow home: one run per (DAG, logical date) at a time, with its own run id, and
no run left `running` by a CLI that died.

Airflow keeps one run per (dag_id, logical_date), and `DAG.test` deletes the existing run of its date before it
creates its own, so a second CLI run of the same DAG and date would delete the first one's run under it. Each
in-process run therefore holds an exclusive `flock` on `<AIRFLOW_HOME>/cli-runs/<dag_id>/<date>.lock` while it
runs; a second run of that DAG and date is refused with who holds it. The kernel releases the lock when its
holder dies, even by SIGKILL: a run still `running` in the database whose lock is free was left by a dead CLI,
and the next run marks it failed, with a note saying why.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from perfpipe.app.run_identity import home_of_run_id, home_tag
from perfpipe.core.paths import safe_component
from perfpipe.entry.cli.output import CliError, progress

ACTIVE_STATES = ("queued", "running")
UNFINISHED_TASK_STATES = ("queued", "scheduled", "running", "up_for_retry", "up_for_reschedule", "deferred",
                          "restarting")
STALE_NOTE = ("perfpipe: marked failed by a later CLI run: the process that ran it ended without finishing it "
              "(killed?); its tasks never recorded a result, the earlier result of the date is kept")


def lock_path(home: str | Path, dag_id: str, logical_date: datetime) -> Path:
    stamp = logical_date.astimezone(timezone.utc).isoformat()  # one file per instant, whatever its time zone
    return Path(home) / "cli-runs" / safe_component(dag_id) / f"{safe_component(stamp)}.lock"


def _try_lock(path: Path) -> int | None:
    """An fd holding the exclusive lock on `path`, or None when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _holder(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip() or "another perfpipe process"
    except OSError:
        return "another perfpipe process"


@contextlib.contextmanager
def date_slot(home: str | Path, dag_id: str, logical_date: datetime, run_id: str) -> Iterator[None]:
    """Hold the (dag_id, logical date) slot of this home while the run runs; refuse if another process holds it."""
    path = lock_path(home, dag_id, logical_date)
    fd = _try_lock(path)
    if fd is None:
        raise CliError(f"logical_date: {dag_id} already has a run at {logical_date.isoformat()} in progress here "
                       f"({_holder(path)}); Airflow keeps one run per DAG and date: wait for it to end, stop it "
                       f"(perfpipe stop RUN_ID --dag-id {dag_id}), or pass another --logical-date")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"run {run_id}, pid {os.getpid()}".encode())
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with a new holder)


def is_stale(home: str | Path, dag_id: str, logical_date: datetime | None) -> bool:
    """True when nobody holds the slot of that run: the CLI that ran it is gone."""
    if logical_date is None:
        return False  # not a run of ours (the CLI always sets a logical date)
    fd = _try_lock(lock_path(home, dag_id, logical_date))
    if fd is None:
        return False
    os.close(fd)
    return True


def fail_stale_runs(home: str | Path) -> list[str]:
    """Mark failed every queued/running run this home's CLI started (its run id carries the home's tag) whose CLI
    is gone; returns their run ids. Runs of anything else sharing the database (a scheduler, a test's own
    `DAG.test`) are never touched."""
    from airflow import settings  # Airflow: only for an in-process run, after airflow_env.configure()
    from airflow.models.dagrun import DagRun  # as above
    from airflow.models.taskinstance import TaskInstance  # as above
    from sqlalchemy import select  # Airflow's database layer, as above

    failed, tag = [], home_tag(home)
    with settings.Session() as session:
        for run in session.scalars(select(DagRun).where(DagRun.state.in_(ACTIVE_STATES))):
            if home_of_run_id(run.run_id) != tag or not is_stale(home, run.dag_id, run.logical_date):
                continue
            progress(f"perfpipe: run {run.run_id} of {run.dag_id} was left {run.state} by a CLI that is gone: "
                     f"marking it failed")
            for ti in session.scalars(select(TaskInstance).where(TaskInstance.dag_id == run.dag_id,
                                                                 TaskInstance.run_id == run.run_id)):
                if ti.state in UNFINISHED_TASK_STATES:
                    ti.state = "failed"
            run.state = "failed"
            run.note = STALE_NOTE
            failed.append(run.run_id)
        session.commit()
    return failed


@contextlib.contextmanager
def own_run(home: str | Path, dag_id: str, logical_date: datetime, run_id: str) -> Iterator[None]:
    """The context of one in-process `DAG.test`: the date's slot held, stale runs failed, and the run created
    under `run_id` (DAG.test names its run after the date alone; perfpipe.app.run_identity says why not)."""
    from unittest import mock  # patching one Airflow method for the run: nothing else needs it

    from airflow.models.dagrun import DagRun  # Airflow: only for an in-process run, after airflow_env.configure()

    with date_slot(home, dag_id, logical_date, run_id):
        fail_stale_runs(home)
        with mock.patch.object(DagRun, "generate_run_id", staticmethod(lambda **_: run_id)):
            yield
