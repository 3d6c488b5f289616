"""perfpipe.core.k6.run: the run core both k6 operators share (setup, result, exit codes, abort)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from perfpipe.app.config import build_plan
from perfpipe.core.errors import InfrastructureError, InputError
from perfpipe.core.hooks.influxdb import InfluxDBHook, InfluxSettings
from perfpipe.core.k6 import run as k6_run
from perfpipe.core.k6.run import K6RunCore, RunSpec, check_exit_code, default_run_setup, plan_of, prepare_report_dir

DAG_ID, RUN_ID = "my_dag", "manual__2026-03-01T12:00:00+00:00"
TI = SimpleNamespace(dag_id=DAG_ID, run_id=RUN_ID, try_number=3)
HOOK = InfluxDBHook(settings=InfluxSettings("http://127.0.0.1:8086", "k6"))


@pytest.fixture
def plan(api_target):
    return build_plan("smoke", api_target, "quick", allowed_addresses=("127.0.0.1",))


def test_plan_of_reads_every_form_xcom_may_carry(plan):
    assert plan_of(plan) is plan
    assert plan_of(plan.to_json_data()) == plan
    assert plan_of(json.dumps(plan.to_json_data())) == plan
    with pytest.raises(InfrastructureError, match="no plan"):
        plan_of(None)
    with pytest.raises(InputError, match="plan"):
        plan_of("not json")


def test_default_setup_needs_no_perfpipe_config(plan, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFPIPE_REPORTS_DIR", str(tmp_path / "r"))
    spec = default_run_setup(plan, {"ti": TI}, HOOK)
    assert spec.testid == f"{DAG_ID}:{RUN_ID}:smoke:try3"
    assert spec.report_dir == tmp_path / "r" / DAG_ID / "manual__2026-03-01T12_00_00+00_00" / "smoke"
    assert spec.influx == HOOK.settings and spec.prometheus is None
    assert spec.timeout_s > plan.expected_duration_s
    blocked = [ipaddress.ip_network(n) for n in spec.blocked_networks]
    assert not any(ipaddress.ip_address("127.0.0.1") in n for n in blocked)
    assert any(ipaddress.ip_address("127.0.0.2") in n for n in blocked)


def test_default_setup_refuses_an_unchecked_plan_and_secret_headers(plan):
    with pytest.raises(InputError, match="allowlist"):
        default_run_setup(plan.model_copy(update={"allowed_addresses": ()}), {"ti": TI}, HOOK)
    secret = plan.model_copy(update={"target": dict(plan.target, headers={"A": {"env": "TOKEN"}})})
    with pytest.raises(InputError, match="headers"):
        default_run_setup(secret, {"ti": TI}, HOOK)


def test_prepare_report_dir_writes_the_run_config_and_drops_stale_files(plan, tmp_path):
    for name in ("summary.json", "report.html", "k6.log"):
        (tmp_path / name).write_text("stale")
    prepare_report_dir(plan, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k6-options.json", "run-config.json"]


def test_exit_codes(tmp_path):
    check_exit_code(0, False, tmp_path / "k6.log")
    check_exit_code(99, False, tmp_path / "k6.log")  # the script's own thresholds: still measured
    check_exit_code(137, True, tmp_path / "k6.log")  # stopped from outside
    (tmp_path / "k6.log").write_text("a\nb\nboom\n")
    with pytest.raises(InfrastructureError, match="code 107: a | b | boom"):
        check_exit_code(107, False, tmp_path / "k6.log")


def test_duration_from_the_summary_else_wall_time(tmp_path):
    assert k6_run.test_duration(tmp_path, 12.5) == 12.5
    (tmp_path / "summary.json").write_text(json.dumps({"state": {"testRunDurationMs": 3000}}))
    assert k6_run.test_duration(tmp_path, 12.5) == 3.0


class Companions:
    def __init__(self, plan, testid):
        self.testid, self.events = testid, []

    def __enter__(self):
        self.events.append("enter")
        return self

    def __exit__(self, *exc):
        self.events.append("exit")

    def stop(self):
        self.events.append("stop")


def _core(tmp_path, aborted):
    made = []

    def setup(plan, context, hook):
        return RunSpec(testid="t-1", report_dir=tmp_path / "run", headers={}, blocked_networks=[], timeout_s=9,
                       influx=hook.settings)

    def companions(plan, testid):
        made.append(Companions(plan, testid))
        return made[-1]

    core = K6RunCore(setup=setup, companions=companions, on_abort=lambda plan, run, ctx: aborted.append(run))
    return core, made


def test_the_run_core_sets_up_runs_beside_companions_and_finishes(plan, tmp_path):
    aborted = []
    core, made = _core(tmp_path, aborted)
    got_plan, spec = core.start(plan.to_json_data(), {"ti": TI}, HOOK)
    assert got_plan == plan and spec.testid == "t-1" and (tmp_path / "run" / "run-config.json").is_file()
    with core.companions():
        pass
    assert made[0].testid == "t-1" and made[0].events == ["enter", "exit"]
    result = core.finish(exit_code=99, stopped=False, timed_out=False, wall_s=4.0)
    assert (result["testid"], result["exit_code"], result["aborted"], result["test_duration_s"]) == ("t-1", 99,
                                                                                                   False, 4.0)
    assert core.finish(exit_code=105, stopped=False, timed_out=False, wall_s=1)["aborted"] is True
    assert aborted == []


def test_abort_stops_the_companions_and_reports_once(plan, tmp_path):
    aborted = []
    core, made = _core(tmp_path, aborted)
    core.abort()  # before start: nothing to report
    core.start(plan, {"ti": TI}, HOOK)
    core.companions()
    core.stop_companions()
    core.abort()
    core.abort()
    assert made[0].events == ["stop"]
    assert len(aborted) == 1 and aborted[0]["aborted"] is True and aborted[0]["exit_code"] == 105


def test_a_failing_on_abort_does_not_stop_the_kill(plan, tmp_path):
    def broken(plan, run, context):
        raise RuntimeError("influx down")

    core = K6RunCore(setup=_core(tmp_path, [])[0].setup, on_abort=broken)
    core.start(plan, {"ti": TI}, HOOK)
    core.abort()  # logged, not raised


def test_defaults_without_companions(plan, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFPIPE_REPORTS_DIR", str(tmp_path))
    core = K6RunCore()
    core.start(plan, {"ti": TI}, HOOK)
    with core.companions():
        pass
    core.stop_companions()
    core.abort()  # the default on_abort logs


def test_k6_is_given_relays_not_the_output_credentials(plan, tmp_path, monkeypatch):
    """Both outputs' credentials stay with the run's relays: the spec k6's command is built from has none."""
    monkeypatch.setenv("PERFPIPE_REPORTS_DIR", str(tmp_path / "r"))
    secret_hook = InfluxDBHook(settings=InfluxSettings("http://127.0.0.1:8086", "k6", "user", "influx-secret"))
    prometheus = {"remote_write_url": "http://127.0.0.1:9/api/v1/write", "trend_stats": ["p(95)"],
                  "push_interval": "5s", "username": "writer", "password": "rw-secret"}

    def setup(plan, context, hook):
        return replace(default_run_setup(plan, context, hook), prometheus=prometheus)

    run = K6RunCore(setup=setup)
    _, spec = run.start(plan, {"ti": TI}, secret_hook)
    try:
        assert spec.influx.password is None and spec.influx.url.startswith("http://127.0.0.1:")
        assert spec.prometheus["password"] is None and spec.prometheus["username"] is None
        assert spec.prometheus["remote_write_url"].startswith("http://127.0.0.1:")
        assert "rw-secret" not in json.dumps(spec.prometheus) and spec.prometheus["trend_stats"] == ["p(95)"]
    finally:
        run.close_relay()
