"""runtime: docker for real: a private Docker engine (scripts/dockerd.sh), a k6 image built with `docker import`
from the venv's static k6 binary, and perf_smoke run through the K6DockerOperator against the demo target.

The container reaches the demo target and influxd on the host's loopback (--network host), so the docker run
must give the same verdict as the local one, leave the same files on the host and no container behind.
Skipped (with the reason) only where no engine can start: no docker.io, not root, or dockerd refuses to run.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import K6_TEST_IMAGE, ROOT, SESSION_DIR  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.integration

def _run_dag(dag, conf: dict, logical_date: datetime):
    # Every Param explicitly: dag.test() leaves the previous call's conf in the shared DAG object's params.
    conf = {"inline_target": None, "overrides": {}, **conf}
    return dag.test(logical_date=logical_date, run_after=logical_date, run_conf=conf)


def _docker_dag(monkeypatch, test_type: str):
    from perfpipe.entry.dag_factory import build_test_dag
    from perfpipe.core.operators.k6_docker import K6DockerOperator

    monkeypatch.setenv("PERFPIPE_RUNTIME", "docker")
    dag = build_test_dag(test_type)
    run_k6 = dag.get_task("run_k6")
    assert isinstance(run_k6, K6DockerOperator) and run_k6.image == K6_TEST_IMAGE
    return dag


def _result(influx, dag_id: str, run_id: str) -> dict:
    from perfpipe.app.results import read_results

    [result] = read_results(influx, dag_id, run_id)
    return result


def test_docker_smoke_equals_the_local_run(stack, docker_engine, monkeypatch):
    influx, demo = stack["influx"], stack["demo"]
    now = datetime.now(timezone.utc).replace(microsecond=0)

    local_run = _run_dag(stack["dagbag"].dags["perf_smoke"], {"target": "demo", "profile": "quick"},
                         now - timedelta(minutes=2))
    assert str(local_run.state) == "success"
    local = _result(influx, "perf_smoke", local_run.run_id)

    demo.reset()
    started = time.monotonic()
    docker_run = _run_dag(_docker_dag(monkeypatch, "smoke"), {"target": "demo", "profile": "quick"}, now)
    docker_s = time.monotonic() - started
    states = {ti.task_id: str(ti.state) for ti in docker_run.get_task_instances()}
    assert str(docker_run.state) == "success", states
    docker = _result(influx, "perf_smoke", docker_run.run_id)
    print(f"\ndocker smoke: {docker_s:.1f}s wall, verdict {docker.verdict}, {docker.metrics['requests']} requests; "
          f"local verdict {local.verdict}, {local.metrics['requests']} requests")

    assert docker.verdict == local.verdict == "pass", (docker.checks, local.checks)
    assert docker.metrics["metrics_complete"] is True and local.metrics["metrics_complete"] is True
    assert [c["name"] for c in docker.checks] == [c["name"] for c in local.checks]
    # The container's load reached the demo target on the host: every request k6 counted arrived there.
    assert demo.requests() == docker.metrics["samples_expected"] > 0
    assert docker.testid.startswith(f"perf_smoke:{docker_run.run_id}:smoke:try")
    [raw] = influx.query('SELECT count("value") AS n FROM "http_reqs" WHERE "testid" = $t AND '
                         '"test_type" = \'smoke\' AND "target" = \'demo\'', {"t": docker.testid})
    assert raw["n"] == docker.metrics["samples_stored"]

    # The same files as the local runtime, on the host, owned by the worker's user.
    docker_dir, local_dir = Path(docker.report).parent, Path(local.report).parent
    names = {"summary.json", "report.html", "k6.log", "run-config.json", "k6-options.json"}
    assert {p.name for p in docker_dir.iterdir()} == {p.name for p in local_dir.iterdir()} == names
    for name in names:
        path = docker_dir / name
        assert path.stat().st_size > 0, name
        assert path.stat().st_uid == os.getuid(), f"{name} not owned by the worker"
    assert "<html" in (docker_dir / "report.html").read_text(errors="replace")[:2000].lower()
    assert "http_reqs" in (docker_dir / "k6.log").read_text()  # k6's end-of-test summary, from the container

    assert docker_engine.containers(f"label=perfpipe.testid={docker.testid}") == []


class _FakeTI:
    dag_id, try_number = "perf_smoke", 1

    def __init__(self, run_id: str):
        self.run_id = run_id


class _FakeDagRun:
    def __init__(self, logical_date: datetime):
        self.logical_date = self.run_after = logical_date


def test_on_kill_stops_the_container_and_records_aborted(stack, docker_engine):
    """Airflow's on_kill: the container stops within the kill window, is removed, and the stage is `aborted`."""
    from airflow.sdk import DAG

    from perfpipe.core.operators.k6_docker import K6DockerOperator
    from perfpipe.app.stage import prepare_plan
    from perfpipe.entry.dag_factory import record_aborted_stage, run_companions, run_setup

    influx = stack["influx"]
    plan = prepare_plan("smoke", {"target": "demo", "profile": "quick", "overrides": {"duration": "60s"}})
    logical_date = datetime.now(timezone.utc).replace(microsecond=0)
    run_id = f"manual__docker_kill_{int(time.time())}"
    with DAG(dag_id="perf_smoke_docker_kill", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):
        operator = K6DockerOperator(task_id="run_k6", plan=plan, image=K6_TEST_IMAGE, run_setup=run_setup,
                                    companions=run_companions, on_abort=record_aborted_stage)
    context = {"ti": _FakeTI(run_id), "dag_run": _FakeDagRun(logical_date)}
    outcome: dict = {}

    def execute():
        try:
            outcome["result"] = operator.execute(context)
        except Exception as exc:  # reported by the assertions below
            outcome["error"] = exc

    worker = threading.Thread(target=execute, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    running = []
    while time.monotonic() < deadline and not running:
        running = docker_engine.containers("label=perfpipe.run_id=" + run_id, "status=running")
        time.sleep(0.5)
    assert running, "the k6 container never started"
    time.sleep(3)  # k6 sends load and writes samples before it is stopped

    killed_at = time.monotonic()
    operator.on_kill()
    kill_s = time.monotonic() - killed_at
    worker.join(timeout=30)
    assert not worker.is_alive(), "execute did not return after on_kill"
    print(f"\non_kill took {kill_s:.1f}s")
    assert kill_s < 5, "on_kill must finish before Airflow's SIGKILL (5 s after SIGTERM)"
    assert docker_engine.containers("label=perfpipe.run_id=" + run_id) == []
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"]["aborted"] is True and outcome["result"]["exit_code"] == 105
    [result] = [r for r in _results(influx, run_id)]
    assert result.verdict == "aborted"
    assert 0 < result.metrics["requests"]


def _results(influx, run_id: str) -> list[dict]:
    from perfpipe.app.results import read_results

    return read_results(influx, "perf_smoke", run_id)
