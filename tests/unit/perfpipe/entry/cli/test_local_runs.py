"""perfpipe.entry.cli.local_runs: one in-process run per DAG and date in a home, and runs left `running` by a
CLI that died are failed by the next one (real flocks, real processes, the session's Airflow database)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest

from perfpipe.app.run_identity import home_tag, run_id_for
from perfpipe.entry.cli import local_runs
from perfpipe.entry.cli.output import CliError

DATE = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_a_second_run_of_the_same_dag_and_date_is_refused_with_its_holder(tmp_path):
    with local_runs.date_slot(tmp_path, "perf_smoke", DATE, "run-a"):
        with pytest.raises(CliError, match=r"^logical_date: perf_smoke already has a run at 2026-03-01T12:00:00"
                                           r"\+00:00 in progress here \(run run-a, pid \d+\)"):
            with local_runs.date_slot(tmp_path, "perf_smoke", DATE, "run-b"):
                pytest.fail("entered a held slot")
        with local_runs.date_slot(tmp_path, "perf_load", DATE, "run-c"):  # another DAG: its own slot
            pass
    with local_runs.date_slot(tmp_path, "perf_smoke", DATE, "run-b"):  # released when the run ended
        pass


def test_the_same_instant_in_another_time_zone_is_the_same_slot(tmp_path):
    from datetime import timedelta

    local_time = DATE.astimezone(timezone(timedelta(hours=2)))
    assert local_runs.lock_path(tmp_path, "perf_smoke", local_time) == local_runs.lock_path(tmp_path, "perf_smoke",
                                                                                           DATE)


def test_a_slot_whose_holder_was_sigkilled_is_stale(tmp_path):
    path = local_runs.lock_path(tmp_path, "perf_smoke", DATE)
    path.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)\n")], stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not local_runs.is_stale(tmp_path, "perf_smoke", DATE)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    assert local_runs.is_stale(tmp_path, "perf_smoke", DATE)  # the kernel released the dead holder's lock
    assert not local_runs.is_stale(tmp_path, "perf_smoke", None)


def _running_run(session, dag_id: str, run_id: str, logical_date: datetime):
    from airflow.models.dagrun import DagRun

    run = DagRun(dag_id=dag_id, run_id=run_id, logical_date=logical_date, run_after=logical_date,
                 run_type="manual", state="running", start_date=logical_date)
    session.add(run)
    session.commit()


def test_only_this_homes_runs_whose_cli_is_gone_are_failed(tmp_path):
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.utils import db
    from sqlalchemy import delete, select

    db.initdb()
    home = tmp_path / "home"
    ours = home_tag(home)
    dead = run_id_for(datetime(2026, 4, 1, tzinfo=timezone.utc), "demo", ours)
    alive = run_id_for(datetime(2026, 4, 2, tzinfo=timezone.utc), "demo", ours)
    foreign = run_id_for(datetime(2026, 4, 3, tzinfo=timezone.utc), "demo", home_tag(tmp_path / "other"))
    plain = "manual__2026-04-04T00:00:00+00:00"  # a DAG.test or scheduler run sharing the database
    ids = (dead, alive, foreign, plain)
    with settings.Session() as session:
        session.execute(delete(DagRun).where(DagRun.dag_id == "perf_identity_test"))
        for day, run_id in enumerate(ids, start=1):
            _running_run(session, "perf_identity_test", run_id, datetime(2026, 4, day, tzinfo=timezone.utc))
    try:
        with local_runs.date_slot(home, "perf_identity_test", datetime(2026, 4, 2, tzinfo=timezone.utc), alive):
            assert local_runs.fail_stale_runs(home) == [dead]
        with settings.Session() as session:
            states = {r.run_id: (str(r.state), r.note) for r in session.scalars(
                select(DagRun).where(DagRun.dag_id == "perf_identity_test"))}
        assert states[dead] == ("failed", local_runs.STALE_NOTE)
        assert {states[r][0] for r in (alive, foreign, plain)} == {"running"}
    finally:
        with settings.Session() as session:
            session.execute(delete(DagRun).where(DagRun.dag_id == "perf_identity_test"))
            session.commit()
