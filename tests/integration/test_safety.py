"""Dead dependencies, with real parts: InfluxDB unreachable before a run, InfluxDB killed in the middle of one
(its own influxd, never the session's), and a target that is down.

Loads go only to the session's demo target or to a closed port on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml


from conftest import ROOT, free_port, k6_runs_at, perfpipe_cli, wait_until  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.integration

PERFPIPE = str(Path(sys.executable).parent / "perfpipe")


class OwnInfluxd:
    """A second influxd (scripts/influxd.sh) with its own port, data, pid and log dirs: this test may kill it."""

    def __init__(self, work: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "PERFPIPE_INFLUXDB_PORT": str(self.port),
                    "PERFPIPE_INFLUXDB_RPC_PORT": str(free_port()),
                    "PERFPIPE_INFLUXDB_DATA_DIR": str(work / "influxdb"), "PERFPIPE_RUN_DIR": str(work / "run"),
                    "PERFPIPE_LOG_DIR": str(work / "log")}
        self.env.pop("PERFPIPE_INFLUXDB_URL", None)
        self.pidfile = work / "run" / "influxd.pid"

    def start(self) -> None:
        subprocess.run(["bash", str(ROOT / "scripts" / "influxd.sh"), "start"], env=self.env, check=True,
                       timeout=60, capture_output=True)

    def crash(self) -> None:
        """SIGKILL, as an OOM kill or a crash would end it: no flush, no goodbye."""
        pid = int(self.pidfile.read_text().strip())
        assert b"influxd" in Path(f"/proc/{pid}/cmdline").read_bytes()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{pid}").exists() or
                   Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 10, "influxd gone")

    def stop(self) -> None:
        subprocess.run(["bash", str(ROOT / "scripts" / "influxd.sh"), "stop"], env=self.env, timeout=60,
                       capture_output=True)


def test_influxdb_unreachable_before_the_run_is_refused_before_any_request(cli, demo_target):
    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    demo_target.reset()
    started = time.monotonic()
    proc = cli("run", "smoke", "--target", "demo", "--profile", "quick", "--json", timeout=120,
               env={"PERFPIPE_INFLUXDB_URL": dead_url})
    assert proc.returncode == 2, proc.stderr[-3000:]
    error = json.loads(proc.stdout)["error"]
    assert f"InfluxDB at {dead_url}" in error and "not reachable" in error
    assert time.monotonic() - started < 60
    assert demo_target.requests() == 0


def test_influxdb_killed_mid_run_is_inconclusive_and_a_rerun_leaves_one_result(demo_target, airflow_db, tmp_path):
    """Loss detected: influxd crashes for a few seconds of a 20 s run and comes back; the samples k6 pushed in the
    gap are lost, the reconciliation sees it, the gate is inconclusive (exit 2, never pass). Rerunning the date
    (what an Airflow retry of the run does) then leaves exactly one result for the run."""
    influxd = OwnInfluxd(tmp_path)
    influxd.start()
    env = {"PERFPIPE_INFLUXDB_URL": influxd.url}
    date = "2026-05-01T00:00:00+00:00"
    args = ["run", "chaos", "--target", "demo", "--profile", "quick", "--set", "duration=20s", "--logical-date",
            date, "--json"]
    log = tmp_path / "run.log"
    run = subprocess.Popen([PERFPIPE, *args], stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
                           env={**os.environ, **env}, start_new_session=True)
    try:
        def k6_running() -> bool:
            assert run.poll() is None, log.read_text()[-3000:]
            return bool(k6_runs_at("perf_chaos", date))

        wait_until(k6_running, 120, "k6 started")
        time.sleep(4)  # samples are flowing
        influxd.crash()
        time.sleep(5)  # k6 keeps loading; its pushes in this gap fail and are dropped
        influxd.start()
        out, _ = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGTERM)
            run.wait(timeout=60)
    try:
        assert run.returncode == 2, log.read_text()[-3000:]
        result = json.loads(out)
        [stage] = result["stages"]
        assert stage["verdict"] == "inconclusive" and stage["metrics_complete"] is False
        assert result["outcome"] == "inconclusive"
        expected, stored = stage["metrics"]["samples_expected"], stage["metrics"]["samples_stored"]
        assert stored < expected, stage["metrics"]
        # Rerun of the date with InfluxDB healthy: it passes, and the run holds one result, not two.
        rerun = perfpipe_cli(*args, timeout=300, env=env)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        [again] = json.loads(rerun.stdout)["stages"]
        assert again["verdict"] in ("pass", "warn") and again["metrics_complete"] is True
        from perfpipe.core.hooks.influxdb import InfluxDBHook, InfluxSettings

        points = InfluxDBHook(settings=InfluxSettings(url=influxd.url, database="k6")).query(
            'SELECT * FROM "perf_results" WHERE "dag_id" = \'perf_chaos\' AND "target" = \'demo\' AND '
            "time = '2026-05-01T00:00:00Z'")
        assert [(p["testid"], p["verdict"]) for p in points] == [(again["testid"], again["verdict"])]
        assert again["testid"] != stage["testid"]
    finally:
        influxd.stop()


def test_target_down_smoke_fails_fast_with_connection_errors_counted(cli, tmp_path):
    down = f"http://127.0.0.1:{free_port()}"  # a closed loopback port: every connection is refused
    target_file = tmp_path / "down.yaml"
    target_file.write_text(yaml.safe_dump({"name": "down", "base_url": down,
                                           "requests": [{"name": "home", "path": "/"}]}))
    started = time.monotonic()
    proc = cli("run", "smoke", "--target", str(target_file), "--profile", "quick", "--json", timeout=180)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr[-3000:]  # a gate failure: measured, not an infrastructure error
    result = json.loads(proc.stdout)
    [stage] = result["stages"]
    assert stage["verdict"] == "fail" and stage["metrics_complete"] is True
    assert stage["metrics"]["requests"] > 0 and stage["metrics"]["error_rate"] == 1.0
    assert next(c for c in stage["checks"] if c["name"] == "error_rate")["result"] == "fail"
    assert elapsed < 90, f"smoke against a dead target took {elapsed:.0f}s"


def test_a_target_file_cannot_bring_chaos_commands(tmp_path):
    """The trust boundary, as a user meets it: `perfpipe run chaos --target FILE.yaml` whose chaos component
    would create a marker file (pid_command, start_command) is refused with exit 2 before anything runs. No stack
    is needed: the refusal comes before Airflow, InfluxDB or the target are asked anything."""
    marker = tmp_path / "marker"
    touch = ["sh", "-c", f"touch {marker}; echo $$"]
    target_file = tmp_path / "evil.yaml"
    target_file.write_text(yaml.safe_dump({
        "name": "evil", "base_url": f"http://127.0.0.1:{free_port()}", "requests": [{"path": "/"}],
        # Two lists, not one object twice: safe_dump would write an alias, which a run-time file may not hold.
        "chaos": {"components": {"cache": {"kind": "process", "pid_command": touch, "start_command": list(touch)}},
                  "scenarios": {"boom": {"component": "cache", "action": "stop"}}, "default_scenario": "boom"}}))
    proc = perfpipe_cli("run", "chaos", "--target", str(target_file), "--profile", "quick", "--json", timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    field = f"{target_file}.chaos.components.cache.pid_command"
    assert json.loads(proc.stdout) == {"outcome": "error", "error": json.loads(proc.stdout)["error"]}
    assert json.loads(proc.stdout)["error"].startswith(f"{field}: a run-time target")
    [line] = [l for l in proc.stderr.splitlines() if l.startswith("perfpipe: ")]
    assert line.startswith(f"perfpipe: {field}: ") and "config/targets.yaml of the deployment" in line
    time.sleep(1)  # anything started in the background would have touched it by now
    assert not marker.exists()
