"""No overlap: two runs triggered at once on the same target, under a real scheduler (pools are enforced by the
scheduler; dag.test ignores them), are serialised by the target's one-slot pool. Asserted from InfluxDB: the k6
samples of the two runs occupy disjoint time windows. While the first one loads, a scan of the listening sockets
of Airflow and everything it started finds nothing bound beyond loopback (the scheduler runs with
--skip-serve-logs: Airflow's log server would otherwise bind 0.0.0.0:8793)."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone

import pytest

from conftest import ROOT, airflow_task_env, wait_until  # noqa: E402  (tests/ is on sys.path)
from integration.test_exposure import LOOPBACK, descendants, listeners_of  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))

from local_airflow import LocalAirflow  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.standalone]

DAGS_FOLDER = ROOT / "bench" / "fault_dags"
CONF = {"target": "demo", "profile": "quick", "overrides": {"duration": "6s", "vus": 3}}


def sample_window(influx, testid: str) -> tuple[int, int, int]:
    """(first, last sample time in ms, count) of a testid's http_reqs samples."""
    [first] = influx.query('SELECT first("value") FROM "http_reqs" WHERE "testid" = $t', {"t": testid})
    [last] = influx.query('SELECT last("value") FROM "http_reqs" WHERE "testid" = $t', {"t": testid})
    [count] = influx.query('SELECT count("value") AS n FROM "http_reqs" WHERE "testid" = $t', {"t": testid})
    return first["time"], last["time"], count["n"]


def test_two_runs_on_one_target_never_load_it_at_the_same_time(influxdb, demo_target, tmp_path):
    from perfpipe.app.live_status import k6_processes_of_run
    from perfpipe.app.results import read_results
    from perfpipe.app.run_identity import home_tag, run_id_for, target_name_of

    env = airflow_task_env()
    date = datetime(2026, 5, 3, tzinfo=timezone.utc)
    with LocalAirflow(tmp_path / "airflow", DAGS_FOLDER, env) as airflow:
        airflow.wait_for_dags(["perf_smoke", "perf_chaos"])
        client = airflow.client()
        run_id = run_id_for(date, target_name_of(CONF), home_tag(tmp_path / "airflow"))
        runs = [(dag_id, client.trigger(dag_id, CONF, date, run_id)["dag_run_id"])
                for dag_id in ("perf_smoke", "perf_chaos")]

        def k6_tasks() -> dict:
            return {dag_id: next((t for t in client.task_instances(dag_id, run_id) if t["task_id"] == "run_k6"), {})
                    for dag_id, run_id in runs}

        # The first k6 runs while the other's k6 task waits for the pool slot.
        running = wait_until(lambda: [r for r in runs if k6_processes_of_run(*r)], 180, "a k6 run") or \
            [r for r in runs if k6_processes_of_run(*r)]
        waiting = [r for r in runs if r not in running]
        assert len(running) == 1 and len(waiting) == 1
        states = {dag_id: t.get("state") for dag_id, t in k6_tasks().items()}
        assert states[waiting[0][0]] in (None, "scheduled", "queued", "none"), states
        ours = set().union(*(descendants(pid) for pid in airflow.component_pids()))
        listeners = [(pid, addr) for pid, addrs in listeners_of(ours).items() for addr in addrs]
        assert any(port == airflow.port for _, (_, port) in listeners)  # the API server was seen
        assert [entry for entry in listeners if entry[1][0] not in LOOPBACK] == []

        finished = lambda: all(client.get_run(*r)["state"] in ("success", "failed") for r in runs)  # noqa: E731
        wait_until(finished, 240, "both runs finished")
        assert [client.get_run(*r)["state"] for r in runs] == ["success", "success"], airflow.log_tail()
        assert {t["pool"] for t in k6_tasks().values()} == {"perf_target_demo"}
    windows = []
    for dag_id, run_id in runs:
        [point] = read_results(influxdb, dag_id, run_id)
        first, last, count = sample_window(influxdb, point.testid)
        assert count > 0 and point.verdict in ("pass", "warn")
        windows.append((first, last))
    (a_first, a_last), (b_first, b_last) = sorted(windows)
    assert a_last < b_first, f"load windows overlap: {windows}"
