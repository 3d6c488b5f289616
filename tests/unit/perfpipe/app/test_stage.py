"""perfpipe.app.stage: what a stage's tasks do with a plan, without Airflow, k6 or InfluxDB."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfpipe.app import stage
from perfpipe.app.config import build_plan
from perfpipe.app.stage import target_from_params
from perfpipe.core.errors import InfrastructureError, InputError
from perfpipe.core.hooks.influxdb import InfluxDBHook

from unit.stage_points import stage_result


SCRIPTED = {"name": "t", "base_url": "http://127.0.0.1:8090", "script": "/x.js", "headers": {}}


def _scripted_plan(test_type, requirements, **target):
    return build_plan(test_type, {**SCRIPTED, **target}, "quick", script_requirements=requirements)


def test_script_targets_are_held_to_the_vu_cap_and_timed_by_their_own_duration():
    plan = _scripted_plan("smoke", {"maxVUs": 10, "totalDuration": "45s"}, max_vus=10)
    assert (plan.peak_vus, plan.expected_duration_s) == (10, 45.0)
    with pytest.raises(InputError, match="11 VUs, above the target's cap of 10"):
        _scripted_plan("smoke", {"maxVUs": 11, "totalDuration": "45s"}, max_vus=10)
    with pytest.raises(InputError, match="longer than a smoke run may last") as exc:
        _scripted_plan("smoke", {"maxVUs": 1, "totalDuration": "10h"}, max_vus=10)
    assert exc.value.field == "script"


def test_script_scenarios_above_the_targets_max_rps_are_refused():
    fast = {"maxVUs": 5, "totalDuration": "30s",
            "scenarios": {"api": {"executor": "constant-arrival-rate", "rate": 80, "timeUnit": "1s"}}}
    with pytest.raises(InputError, match="max_rps of 50"):
        _scripted_plan("load", fast, max_rps=50)


# --- target_from_params and prepare_plan (k6 inspect and InfluxDB faked, recorded) ------------------------------

INLINE = {"name": "inline-api", "base_url": "http://127.0.0.1:8090", "requests": [{"path": "/health"}]}


def test_an_inline_target_wins_over_the_named_one():
    assert target_from_params({"target": "demo", "inline_target": INLINE})["name"] == "inline-api"
    assert target_from_params({"target": "demo", "inline_target": None})["name"] == "demo"


@pytest.fixture
def preflight(monkeypatch):
    """Records, in order, the InfluxDB check and each k6 inspect (with the env k6 would get) prepare_plan makes."""
    calls: list[tuple] = []
    requirements: dict = {"maxVUs": 1, "totalDuration": "10s"}

    def inspect(binary, script, env, timeout_s=60):
        run_config = env.get("PERFPIPE_RUN_CONFIG")
        calls.append(("inspect", script, dict(env), run_config and Path(run_config).is_file()))
        return dict(requirements)

    monkeypatch.setattr(stage, "validate_script", inspect)
    monkeypatch.setattr(InfluxDBHook, "check_available", lambda self: calls.append(("influx",)))
    return calls, requirements


# Inputs k6-scripts/lib/compile.js used to judge at `k6 inspect` (some it let through: weight 0, paths without '/',
# ns/us/d durations, think time over 60 s). The scripts trust the run config now; check_params, the config-only
# pre-flight (no DNS, no InfluxDB, no k6), refuses every one of them, naming the field.
COMPILE_JS_ERA = [
    ("load", {"requests": [{"path": "/a", "weight": 0}]}, {}, "target.requests[0].weight"),
    ("load", {"requests": [{"path": "/a", "weight": float("inf")}]}, {}, "target.requests[0].weight"),
    ("smoke", {"requests": [{"path": "health"}]}, {}, "target.requests[0].path"),
    ("smoke", {"requests": [{"path": "/{{x}}"}]}, {}, "target.requests[0].path"),
    ("smoke", {"requests": [{"path": "/{{int:9:1}}"}]}, {}, "target.requests[0].path"),
    ("smoke", {"requests": [{"path": "/{{vu"}]}, {}, "target.requests[0].path"),
    ("smoke", {"requests": [{"path": "/", "method": "POST", "body": ["{{uuid}}", {"id": "{{nope}}"}]}]}, {},
     "target.requests[0].body[1].id"),
    ("smoke", {"requests": [{"path": "/", "method": "TRACE"}]}, {}, "target.requests[0].method"),
    ("smoke", {"requests": [{"path": "/", "expect_status": [200, 99]}]}, {},
     "target.requests[0].expect_status[1]"),
    ("smoke", {"base_url": "ftp://127.0.0.1"}, {}, "target.base_url"),
    ("smoke", {"requests": []}, {}, "target.requests"),
    ("smoke", {}, {"duration": "1d"}, "overrides.duration"),
    ("smoke", {}, {"duration": "90000000us"}, "overrides.duration"),
    ("smoke", {}, {"graceful_stop": "5000000000ns"}, "overrides.graceful_stop"),
    ("load", {}, {"stages": "1d:5"}, "overrides.stages"),
    ("load", {}, {"stages": [{"duration": "5s", "target": -1}]}, "overrides.stages[0].target"),
    ("load", {}, {"start_vus": 1.5}, "overrides.start_vus"),
    ("smoke", {}, {"vus": 0}, "overrides.vus"),
    ("smoke", {}, {"executor": "per-vu-iterations"}, "overrides.executor"),
    ("smoke", {}, {"think_time_s": 61}, "overrides.think_time_s"),
    ("smoke", {}, {"think_time_s": -1}, "overrides.think_time_s"),
    ("load", {}, {"read_ratio": 2}, "overrides.read_ratio"),
    ("stress", {"analysis": {"stress": {"error_rate": -0.1}}}, {}, "target.analysis.stress.error_rate"),
    ("stress", {"analysis": {"stress": {"sustain_s": float("nan")}}}, {}, "target.analysis.stress.sustain_s"),
]


@pytest.mark.parametrize("test_type, target, overrides, field", COMPILE_JS_ERA,
                         ids=[f"{c[3]}={c[1] or c[2]}" for c in COMPILE_JS_ERA])
def test_check_params_refuses_what_the_k6_scripts_no_longer_judge(preflight, test_type, target, overrides, field):
    calls, _ = preflight
    with pytest.raises(InputError) as exc:
        stage.check_params(test_type, {"inline_target": {**INLINE, **target}, "profile": "quick",
                                       "overrides": overrides})
    assert exc.value.field == field, str(exc.value)
    assert calls == []


# The trust boundary: a run's params never bring chaos components (commands, pids, control URLs) of their own.
RUNTIME_CHAOS = {"components": {"cache": {"kind": "process", "pid_command": ["touch", "/tmp/perfpipe-no"],
                                          "start_command": ["true"]}},
                 "scenarios": {"s": {"component": "cache", "action": "stop"}}, "default_scenario": "s"}


@pytest.mark.parametrize("test_type", ["chaos", "smoke"])
def test_check_params_and_the_validate_task_refuse_an_inline_targets_chaos(preflight, test_type):
    calls, _ = preflight
    params = {"target": "demo", "inline_target": {**INLINE, "chaos": RUNTIME_CHAOS}, "profile": "quick",
              "chaos_scenario": "s"}
    for check in (lambda: stage.check_params(test_type, params),  # the REST API's trigger check
                  lambda: stage.prepare_run(["smoke", "load", "stress", "spike", "chaos"], params),  # validate
                  lambda: stage.prepare_plan(test_type, params)):  # a later stage's validate
        with pytest.raises(InputError) as exc:
            check()
        assert exc.value.field == "target.chaos.components.cache.pid_command"
        assert "config/targets.yaml of the deployment" in str(exc.value)
    assert calls == []  # refused before InfluxDB or k6


def test_a_configured_targets_chaos_still_reaches_the_plan(preflight):
    plan = stage.prepare_plan("chaos", {"target": "demo", "profile": "quick", "chaos_scenario": "cache_failure"},
                              check_influx=False)
    component = plan.chaos.spec["components"][plan.chaos.component]
    assert plan.chaos.scenario == "cache_failure" and component["kind"] == "process"
    assert component["pid_command"] and component["start_command"]  # from config/targets.yaml


def test_prepare_plan_checks_influxdb_then_inspects_the_script_with_its_run_config(preflight):
    calls, _ = preflight
    plan = stage.prepare_plan("smoke", {"inline_target": INLINE, "profile": "quick"})
    assert [c[0] for c in calls] == ["influx", "inspect"]
    _, script, env, run_config_written = calls[1]
    assert script.endswith(".js") and run_config_written  # the real run config, in a scratch folder
    assert not any("INFLUX" in key for key in env)  # inspect sends nothing anywhere
    assert "127.0.0.1" in plan.allowed_addresses
    assert plan.target["name"] == "inline-api" and plan.profile == "quick"


def test_prepare_plan_without_the_influx_check_still_inspects(preflight):
    calls, _ = preflight
    stage.prepare_plan("smoke", {"inline_target": INLINE, "profile": "quick"}, check_influx=False)
    assert [c[0] for c in calls] == ["inspect"]


def test_a_target_outside_the_allowlist_is_refused_before_influxdb_or_k6(preflight):
    calls, _ = preflight
    with pytest.raises(InputError):
        stage.prepare_plan("smoke", {"inline_target": {**INLINE, "base_url": "http://10.11.12.13:8090"}})
    assert calls == []


def test_influxdb_down_stops_the_preflight_before_k6(preflight, monkeypatch):
    calls, _ = preflight

    def down(self):
        raise InfrastructureError("InfluxDB not reachable")

    monkeypatch.setattr(InfluxDBHook, "check_available", down)
    with pytest.raises(InfrastructureError):
        stage.prepare_plan("smoke", {"inline_target": INLINE, "profile": "quick"})
    assert calls == []


def test_a_script_target_is_timed_and_capped_by_what_inspect_reports(preflight, tmp_path):
    _, requirements = preflight
    script = tmp_path / "mine.js"
    script.write_text("export default function () {}\n")
    target = {"name": "scripted", "base_url": "http://127.0.0.1:8090", "script": str(script), "max_vus": 20}
    requirements.update({"maxVUs": 12, "totalDuration": "1m30s"})
    plan = stage.prepare_plan("load", {"inline_target": target, "profile": "quick"}, check_influx=False)
    assert (plan.peak_vus, plan.expected_duration_s) == (12, 90.0)
    requirements["maxVUs"] = 21
    with pytest.raises(InputError, match="cap of 20"):
        stage.prepare_plan("load", {"inline_target": target, "profile": "quick"}, check_influx=False)


def test_a_requests_target_keeps_the_profiles_shape_whatever_inspect_reports(preflight):
    _, requirements = preflight
    requirements.update({"maxVUs": 999, "totalDuration": "5h"})  # what the generic script reports is not the plan
    plan = stage.prepare_plan("smoke", {"inline_target": INLINE, "profile": "quick"}, check_influx=False)
    assert plan.peak_vus != 999 and plan.expected_duration_s < 3600


# --- enforce_verdict (the recorded result read back, faked) -----------------------------------------------------

def _point(test_type: str, verdict: str, **extra):
    checks = [{"name": "p95_ms", "op": "<", "threshold": 500.0, "value": 812.0,
               "result": "fail" if verdict == "fail" else "pass", "key": True},
              {"name": "error_rate", "op": "<", "threshold": 0.01, "value": 0.0,
               "result": "warn" if verdict == "warn" else "pass", "key": True}]
    return stage_result(test_type=test_type, verdict=verdict, checks=checks, **extra)


@pytest.fixture
def recorded(monkeypatch):
    points: list = []
    monkeypatch.setattr(stage, "read_results", lambda hook, dag_id, run_id: list(points))
    return points


@pytest.mark.parametrize("verdict", ["pass", "warn"])
def test_a_passed_or_warned_stage_returns_its_result(recorded, verdict):
    recorded.append(_point("smoke", verdict))
    assert stage.enforce_verdict("perf_smoke", "r1", "smoke").verdict == verdict


def test_a_failed_stage_fails_the_task_with_the_evidence(recorded):
    from airflow.sdk.exceptions import AirflowFailException

    recorded.append(_point("load", "fail"))
    with pytest.raises(AirflowFailException) as exc:
        stage.enforce_verdict("perf_load", "r1", "load")
    assert "load gate FAIL" in str(exc.value) and "p95_ms = 812.0 (needs < 500.0)" in str(exc.value)
    assert "error_rate" not in str(exc.value)  # only the failed checks are evidence


def test_an_inconclusive_stage_says_how_many_samples_are_missing(recorded):
    from airflow.sdk.exceptions import AirflowFailException

    recorded.append(_point("load", "inconclusive", samples_stored=900, samples_expected=1000))
    with pytest.raises(AirflowFailException, match="InfluxDB holds 900 of 1000 samples"):
        stage.enforce_verdict("perf_load", "r1", "load")


def test_an_aborted_stage_fails_the_task(recorded):
    from airflow.sdk.exceptions import AirflowFailException

    recorded.append(_point("chaos", "aborted"))
    with pytest.raises(AirflowFailException, match="ABORTED"):
        stage.enforce_verdict("perf_chaos", "r1", "chaos")


def test_only_the_stages_own_latest_point_counts(recorded):
    recorded.extend([_point("load", "fail"), _point("smoke", "fail"), _point("load", "pass")])
    assert stage.enforce_verdict("perf_pipeline", "r1", "load").verdict == "pass"  # the retry passed


def test_no_recorded_result_is_an_infrastructure_error_not_a_pass(recorded):
    recorded.append(_point("smoke", "pass"))
    with pytest.raises(InfrastructureError, match="no perf_results point"):
        stage.enforce_verdict("perf_pipeline", "r1", "load")
