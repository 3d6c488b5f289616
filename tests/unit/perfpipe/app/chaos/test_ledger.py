"""Ledger helpers: where it lives, what it records (never secrets), atomic entries, leftovers of dead holders."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from perfpipe.core import paths
from perfpipe.app.chaos import ledger
from perfpipe.app.chaos.injectors import fault_active, injector_for
from perfpipe.app.chaos.spec import ComponentSpec, ScenarioSpec


def test_ledger_dir_follows_perfpipe_run_dir(monkeypatch, tmp_path):
    assert paths.chaos_ledger_dir() == paths.PROJECT_ROOT / "run" / "chaos"
    monkeypatch.setenv("PERFPIPE_RUN_DIR", str(tmp_path / "run"))
    assert paths.chaos_ledger_dir() == tmp_path / "run" / "chaos"


def test_recorded_env_keeps_perfpipe_settings_but_no_secrets():
    environ = {"PERFPIPE_DEMO_REDIS_PORT": "6390", "PERFPIPE_RUN_DIR": "/x", "HOME": "/root",
               "PERFPIPE_INFLUXDB_PASSWORD": "p", "PERFPIPE_AIRFLOW_TOKEN": "t", "PERFPIPE_API_KEY": "k",
               "PERFPIPE_AIRFLOW_USER": "admin"}
    assert ledger.recorded_env(environ) == {"PERFPIPE_DEMO_REDIS_PORT": "6390", "PERFPIPE_RUN_DIR": "/x",
                                            "PERFPIPE_AIRFLOW_USER": "admin"}


def test_entries_are_atomic_and_unreadable_ones_reported(tmp_path):
    path = ledger.new_entry_path(tmp_path, "db failure/x")
    assert "/" not in path.name[:-5] and path.name.endswith(".json")
    ledger.write_entry(path, {"a": 1})
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "events.log").write_text("not an entry")
    found = dict(ledger.entries(tmp_path))
    assert found == {path: {"a": 1}, tmp_path / "broken.json": None}
    assert not list(tmp_path.glob(".*.tmp"))
    ledger.remove_entry(path)
    ledger.remove_entry(path)  # idempotent


@pytest.mark.parametrize("faults, active", [
    ({"latency_ms": 0, "partition": False}, False), ({"latency_ms": None}, False), ({"partition": False}, False),
    ({"faults": {"latency_ms": 0, "partition": False}}, False), ({"faults": {"latency_ms": 300}}, True),
    ({"latency_ms": 300, "partition": False}, True), ({"latency_ms": 0, "partition": True}, True),
    ({}, True), ({"status": "ok"}, True), ([], True), ("ok", True),
])
def test_fault_active(faults, active):
    assert fault_active(faults) is active


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _docker_entry(holder_pid: int, holder_starttime: int) -> dict:
    return {"version": 1, "target": "demo", "scenario": "api_pause",
            "scenario_spec": {"name": "api_pause", "component": "api", "action": "pause"},
            "component": {"name": "api", "kind": "docker", "container": "demo-api"}, "action": "pause",
            "holder_pid": holder_pid, "holder_starttime": holder_starttime, "cwd": "/", "env": {},
            "state": {"kind": "docker", "action": "pause", "container": "demo-api", "container_id": "c1"},
            "restore_by": 4e9}


def test_restore_leftovers_restores_dead_holders_only(tmp_path, monkeypatch):
    from .test_injectors import FakeClient, FakeContainer

    box = FakeContainer("demo-api", status="paused")
    box.id = "c1"
    client = FakeClient(box)
    monkeypatch.setattr(ledger, "injector_for",
                        lambda c, s, env=None, cwd=None: injector_for(c, s, env, cwd, lambda: client))
    live = ledger.new_entry_path(tmp_path, "live")
    ledger.write_entry(live, _docker_entry(os.getpid(), ledger.holder_starttime()))
    recycled = ledger.new_entry_path(tmp_path, "recycled")  # our pid, but another start time: a recycled pid
    ledger.write_entry(recycled, _docker_entry(os.getpid(), ledger.holder_starttime() - 1))
    dead = ledger.new_entry_path(tmp_path, "dead")
    ledger.write_entry(dead, _docker_entry(_dead_pid(), 1))

    results = ledger.restore_leftovers(tmp_path)
    assert sorted(r["file"] for r in results) == sorted([str(recycled), str(dead)])
    assert all(r["ok"] and r["scenario"] == "api_pause" for r in results)
    assert box.status == "running" and box.calls == ["unpause"]  # the second restore found it running
    assert [p for p, _ in ledger.entries(tmp_path)] == [live]


def test_failed_leftover_restore_keeps_the_entry_with_its_error(tmp_path, monkeypatch):
    from .test_injectors import FakeClient

    monkeypatch.setattr(ledger, "RESTORE_RETRY_PAUSE_S", 0)
    monkeypatch.setattr(ledger, "injector_for",
                        lambda c, s, env=None, cwd=None: injector_for(c, s, env, cwd, lambda: FakeClient()))
    path = ledger.new_entry_path(tmp_path, "gone")
    ledger.write_entry(path, _docker_entry(_dead_pid(), 1))
    (result,) = ledger.restore_leftovers(tmp_path)
    assert result["ok"] is False and "failed 3 times" in result["error"] and "No such container" in result["error"]
    assert "No such container" in json.loads(path.read_text())["last_restore_error"]
