"""The kill-and-timeout fault loop (bench/fault_loops.py) in quick mode: one trial per stop method, at a random
moment, against a real Airflow (scheduler, API server, DAG processor) and real k6, with this session's influxd and
demo target. Every trial must leave nothing behind; the full 20-trial loop is `python bench/fault_loops.py`."""

from __future__ import annotations

import random
import sys

import pytest

from conftest import ROOT, airflow_task_env  # noqa: E402  (tests/ is on sys.path)

sys.path.insert(0, str(ROOT / "bench"))

import fault_loops  # noqa: E402
from local_airflow import LocalAirflow  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.mark.standalone
def test_every_stop_method_leaves_nothing_behind(influxdb, demo_target, session_dir, tmp_path):
    perfpipe_env = airflow_task_env()
    seed = random.randrange(1_000_000)
    lines: list[str] = []
    with LocalAirflow(tmp_path / "airflow", fault_loops.DAGS_FOLDER, perfpipe_env) as airflow:
        trials = fault_loops.run_trials(airflow, influxdb, len(fault_loops.METHODS), seed, log=lines.append)
    summary = fault_loops.summarize(trials)
    report = "\n".join(lines) + f"\nseed {seed}"
    assert [t.method for t in trials] == list(fault_loops.METHODS), report
    assert summary["trials_with_leftovers"] == 0, report
    assert fault_loops.FAULT_CHECKS, "the chaos leg checks that no fault is left"
    for trial in trials:
        assert trial.verdict == "aborted" and trial.run_state == "failed", report
        assert trial.time_to_clean_s is not None and trial.time_to_clean_s < fault_loops.CLEAN_DEADLINE_S, report


def test_a_leftover_is_reported_not_hidden():
    """The checks can fail: a k6 of a triggered run still running, a fault left, a stage not aborted."""
    trial = fault_loops.Trial(index=1, method="mark_failed", dag_id="perf_chaos", run_id="r", delay_s=1.0,
                              run_state="success", verdict="pass")
    assert fault_loops.aborted_not_recorded(trial) and fault_loops.run_not_failed(trial)
    fault_loops.FAULT_CHECKS.append(lambda t: "latency fault still injected on demo")
    try:
        assert fault_loops.no_fault_injected(trial) == "latency fault still injected on demo"
    finally:
        fault_loops.FAULT_CHECKS.pop()
    assert fault_loops.no_fault_injected(trial) is None
