"""The `perfpipe run` command as users and CI jobs call it: exit codes, JSON, refusals before any load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from conftest import k6_runs_at, run_id_of, wait_until  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.integration


def write_target(tmp_path, name: str, body: dict):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def test_smoke_passes_with_complete_metrics(cli, influxdb, demo_target):
    proc = cli("run", "smoke", "--target", "demo", "--profile", "quick", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert set(result) >= {"dag_id", "run_id", "stages", "path", "outcome"}
    [stage] = result["stages"]
    assert stage["verdict"] == "pass" and stage["metrics_complete"] is True
    assert {c["name"] for c in stage["checks"]} >= {"p95_ms", "error_rate"}
    assert all(set(c) >= {"name", "op", "threshold", "value", "result"} for c in stage["checks"])
    assert stage["report"].endswith("report.html")
    # InfluxDB holds the raw k6 measurements for that testid and exactly one perf_results point.
    [raw] = influxdb.query('SELECT count("value") AS n FROM "http_req_duration" WHERE "testid" = $t',
                           {"t": stage["testid"]})
    assert raw["n"] == stage["metrics"]["samples_stored"] > 0
    points = influxdb.query('SELECT * FROM "perf_results" WHERE "run_id" = $r', {"r": result["run_id"]})
    assert len(points) == 1


def test_failing_endpoint_fails_the_smoke_gate(cli, demo_target, tmp_path):
    target = write_target(tmp_path, "broken", {
        "base_url": demo_target.url,
        "requests": [{"name": "broken", "method": "GET", "path": "/api/broken", "expect_status": 200}]})
    proc = cli("run", "smoke", "--target", target, "--profile", "quick", "--set", "duration=3s", "--json")
    assert proc.returncode == 1, proc.stderr[-3000:]
    [stage] = json.loads(proc.stdout)["stages"]
    assert stage["verdict"] == "fail"
    failed = {c["name"]: c for c in stage["checks"] if c["result"] == "fail"}
    assert failed["error_rate"]["value"] == 1.0


def test_script_with_syntax_error_is_refused_before_any_request(cli, demo_target, tmp_path):
    script = tmp_path / "broken.js"
    script.write_text("import http from 'k6/http';\nexport default function ( {\n  http.get(__ENV.BASE_URL);\n}\n")
    target = write_target(tmp_path, "scripted", {"base_url": demo_target.url, "script": str(script)})
    demo_target.reset()
    proc = cli("run", "smoke", "--target", target, "--profile", "quick", "--json")
    assert proc.returncode == 2
    assert "script" in proc.stderr and "107" in proc.stderr
    assert demo_target.requests() == 0


def test_target_outside_allowlist_is_refused_before_any_request(cli, demo_target, tmp_path):
    outside = write_target(tmp_path, "outside", {
        "base_url": "http://10.255.255.1:8090", "requests": [{"path": "/"}]})
    proc = cli("run", "smoke", "--target", outside, "--profile", "quick", "--json")
    assert proc.returncode == 2
    assert "not in the allowlist" in proc.stderr and "10.255.255.1" in proc.stderr

    # The same refusal for the real demo target once loopback is no longer allowed: it sees no request at all.
    demo_target.reset()
    proc = cli("run", "smoke", "--target", "demo", "--profile", "quick", "--json",
               env={"PERFPIPE_ALLOWLIST": "10.0.0.0/8"})
    assert proc.returncode == 2
    assert "not in the allowlist" in proc.stderr
    assert demo_target.requests() == 0


@pytest.mark.parametrize("args, field", [
    (["--set", "vus=0"], "vus"),
    (["--set", "thresholds.latency=5"], "thresholds.latency"),
    (["--set", "duration=ten"], "duration"),
    (["--target", "nope"], "target"),
    (["--logical-date", "2001-01-01"], "logical_date"),  # before the start_date: Airflow would run no task
])
def test_bad_input_is_refused_with_the_field_named(cli, demo_target, args, field):
    base = ["run", "smoke", "--profile", "quick", "--json"]
    if "--target" not in args:
        base += ["--target", "demo"]
    demo_target.reset()
    proc = cli(*base, *args)
    assert proc.returncode == 2, proc.stdout
    assert field in json.loads(proc.stdout)["error"]
    assert demo_target.requests() == 0


RERUN_DATE = "2026-01-05T00:00:00+00:00"
SMOKE_2S = ("run", "smoke", "--profile", "quick", "--set", "duration=2s", "--logical-date", RERUN_DATE, "--json")


def results_at_rerun_date(influxdb) -> list[dict]:
    return influxdb.query('SELECT * FROM "perf_results" WHERE "dag_id" = \'perf_smoke\' AND '
                          "time = '2026-01-05T00:00:00Z'")


def demo_pass_at_rerun_date(cli, influxdb) -> dict:
    """The demo target's passing result of RERUN_DATE (run once if no earlier test left one)."""
    demo = [p for p in results_at_rerun_date(influxdb) if p["target"] == "demo" and p["verdict"] == "pass"]
    if not demo:
        proc = cli(*SMOKE_2S, "--target", "demo")
        assert proc.returncode == 0, proc.stderr[-3000:]
        demo = [p for p in results_at_rerun_date(influxdb) if p["target"] == "demo"]
    [point] = demo
    return point


def test_rerunning_a_logical_date_keeps_one_result(cli, influxdb):
    runs = []
    for _ in range(2):
        proc = cli(*SMOKE_2S, "--target", "demo")
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(json.loads(proc.stdout))
    # Each attempt has its own run id and testid, so the second run's samples never mix with the first's ...
    assert runs[0]["run_id"] != runs[1]["run_id"]
    assert runs[0]["stages"][0]["testid"] != runs[1]["stages"][0]["testid"]
    assert runs[1]["stages"][0]["metrics_complete"] is True
    # ... and the date still holds one verdict for the target: the second run's.
    points = [p for p in results_at_rerun_date(influxdb) if p["target"] == "demo"]
    assert [(p["run_id"], p["testid"]) for p in points] == [(runs[1]["run_id"], runs[1]["stages"][0]["testid"])]


def test_a_same_date_run_of_another_target_keeps_both_results(cli, influxdb, demo_target, tmp_path):
    earlier = demo_pass_at_rerun_date(cli, influxdb)
    other = write_target(tmp_path, "other", {"name": "other", "base_url": demo_target.url,
                                             "requests": [{"name": "health", "path": "/health"}]})
    proc = cli(*SMOKE_2S, "--target", other)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    by_target = {p["target"]: p for p in results_at_rerun_date(influxdb)}
    assert set(by_target) == {"demo", "other"}
    assert by_target["demo"]["testid"] == earlier["testid"]  # untouched by the other target's run
    assert by_target["other"]["testid"] == result["stages"][0]["testid"]


def test_a_sigkilled_rerun_keeps_the_earlier_pass(cli, influxdb, tmp_path):
    """A rerun killed outright (SIGKILL: no handler runs) leaves the earlier verdict; a second run of the same
    DAG and date meanwhile is refused with a clear message; the dead run does not stay `running`."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    from perfpipe.entry.cli import local_runs

    earlier = demo_pass_at_rerun_date(cli, influxdb)
    log = tmp_path / "rerun.log"
    rerun = subprocess.Popen([str(Path(sys.executable).parent / "perfpipe"), "run", "smoke", "--target", "demo",
                              "--profile", "quick", "--set", "duration=30s", "--logical-date", RERUN_DATE],
                             stdout=subprocess.DEVNULL, stderr=open(log, "w"), start_new_session=True)
    try:
        def k6_running() -> bool:
            assert rerun.poll() is None, log.read_text()[-3000:]
            return bool(k6_runs_at("perf_smoke", RERUN_DATE))

        wait_until(k6_running, 120, "the rerun's k6")
        killed_run_id = run_id_of(k6_runs_at("perf_smoke", RERUN_DATE)[0])
        second = cli(*SMOKE_2S, "--target", "demo", timeout=120)
        assert second.returncode == 2, second.stderr[-3000:]
        assert json.loads(second.stdout)["error"].startswith(
            f"logical_date: perf_smoke already has a run at {RERUN_DATE} in progress here (run {killed_run_id}")
    finally:
        os.killpg(rerun.pid, signal.SIGKILL)
        rerun.wait(timeout=30)
    wait_until(lambda: not k6_runs_at("perf_smoke", RERUN_DATE), 30, "k6 gone with its run")
    [point] = [p for p in results_at_rerun_date(influxdb) if p["target"] == "demo"]
    assert (point["testid"], point["verdict"]) == (earlier["testid"], "pass")
    # The next run (called here directly) sees the dead CLI's run and fails it, with the reason.
    assert killed_run_id in local_runs.fail_stale_runs(os.environ["AIRFLOW_HOME"])
    with settings.Session() as session:
        run = session.scalar(select(DagRun).where(DagRun.run_id == killed_run_id))
        assert (str(run.state), run.note) == ("failed", local_runs.STALE_NOTE)
