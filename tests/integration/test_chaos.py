"""Quick chaos against the demo system: real faults (Redis / PostgreSQL stopped), real k6, real influxd.

The fault is always restored: after a passing run, a failing run, and when the run is killed mid-inject.
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

from conftest import wait_until  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.integration


def chaos_env(demo_system) -> dict:
    """What the chaos holder needs to address this session's demo system through scripts/demo.sh."""
    return {k: v for k, v in demo_system.env.items() if k.startswith("PERFPIPE_DEMO_") or k == "PERFPIPE_RUN_DIR"}


def ledger_entries(demo_system) -> list[Path]:
    return sorted((Path(demo_system.env["PERFPIPE_RUN_DIR"]) / "chaos").glob("*.json"))


def assert_running_normally(demo_system, component: str, old_pid: int) -> None:
    wait_until(lambda: demo_system.health().get(component) is True, 30, f"{component} back in the demo's health")
    new_pid = demo_system.pid(component)
    os.kill(new_pid, 0)
    assert new_pid != old_pid, "a stopped component must have been started again"
    demo_system.wait_serving()
    # the holder removes its ledger entry once the restore is confirmed (just after the component answers)
    wait_until(lambda: not ledger_entries(demo_system), 15, "no fault left in the ledger")


def run_chaos(cli, demo_system, scenario: str) -> tuple[int, dict]:
    proc = cli("run", "chaos", "--target", "demo", "--profile", "quick", "--scenario", scenario, "--json",
               env=chaos_env(demo_system), timeout=300)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def test_cache_failure_degrades_but_passes(cli, demo_system):
    old_pid = demo_system.pid("cache")
    code, result = run_chaos(cli, demo_system, "cache_failure")
    [stage] = result["stages"]
    analysis = stage["analysis"]
    assert analysis["scenario"] == "cache_failure" and analysis["fault_injected"] == 1.0, analysis
    assert analysis["fault_restored"] == 1.0
    assert set(analysis["phases"]) == {"baseline", "inject", "recovery"}
    assert all(p["requests"] > 0 for p in analysis["phases"].values()), analysis["phases"]
    assert analysis["inject_error_rate"] <= 0.01, "the demo serves from PostgreSQL while Redis is down"
    assert [e["event"] for e in analysis["events"]] == ["inject", "restore"]
    assert stage["verdict"] in ("pass", "warn") and code == 0, stage["checks"]
    assert_running_normally(demo_system, "cache", old_pid)


def test_db_failure_without_fallback_fails_the_gate(cli, demo_system):
    old_pid = demo_system.pid("database")
    code, result = run_chaos(cli, demo_system, "db_failure")
    [stage] = result["stages"]
    analysis = stage["analysis"]
    assert analysis["fault_injected"] == 1.0 and analysis["fault_restored"] == 1.0
    assert analysis["inject_error_rate"] > 0.01, analysis["phases"]
    assert analysis["recovery_error_rate"] < analysis["inject_error_rate"]
    checks = {c["name"]: c for c in stage["checks"]}
    assert checks["inject_error_rate"]["result"] == "fail"
    assert stage["verdict"] == "fail" and code == 1
    assert_running_normally(demo_system, "database", old_pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_fault_is_restored_when_the_run_is_killed_mid_inject(demo_system, influxdb, airflow_db, sig):
    old_pid = demo_system.pid("database")
    exe = Path(sys.executable).parent / "perfpipe"
    proc = subprocess.Popen([str(exe), "run", "chaos", "--target", "demo", "--profile", "quick", "--scenario",
                             "db_failure"], env={**os.environ, **chaos_env(demo_system)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # mid-inject: the ledger holds the fault and the database is down
        wait_until(lambda: ledger_entries(demo_system) and demo_system.health().get("database") is False, 90,
                   "the database fault injected")
        time.sleep(2)
        os.killpg(proc.pid, sig)  # the whole CLI (and with it Airflow's task and k6), as a stop or crash would
        proc.wait(timeout=30)
        assert_running_normally(demo_system, "database", old_pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        demo_system.restore()
