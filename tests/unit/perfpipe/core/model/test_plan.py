"""perfpipe.core.model.plan: the plan tasks hand each other, and how it crosses XCom."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from perfpipe.core.model.plan import PlannedCheck, StageResult, TestPlan

PLAN = {"test_type": "smoke", "profile": "quick", "target": {"name": "t", "base_url": "http://127.0.0.1:1"},
        "shape": {"executor": "constant-vus", "vus": 1, "duration": "5s"},
        "gates": {"p95_ms": {"op": "<", "threshold": 500, "warn": 300}}, "expected_duration_s": 5,
        "peak_vus": 1, "analysis": {}, "allowed_addresses": ["127.0.0.1"]}


def test_a_plan_survives_the_trip_through_json():
    plan = TestPlan.from_json_data(PLAN)
    again = TestPlan.from_json_data(json.loads(json.dumps(plan.to_json_data())))
    assert again == plan
    assert plan.allowed_addresses == ("127.0.0.1",) and plan.target_name == "t"
    assert plan.gates["p95_ms"] == PlannedCheck(op="<", threshold=500.0, warn=300.0)


def test_a_plan_is_frozen():
    plan = TestPlan.from_json_data(PLAN)
    with pytest.raises(ValidationError):
        plan.peak_vus = 10_000  # type: ignore[misc]


@pytest.mark.parametrize("change", [
    {"test_type": "endurance"}, {"peak_vus": -1}, {"expected_duration_s": "5s"}, {"bogus": 1},
    {"gates": {"p95_ms": {"op": "==", "threshold": 1}}}, {"gates": {"p95_ms": {"op": "<", "weight": 0}}},
])
def test_an_xcom_that_is_not_a_plan_is_refused(change):
    # XCom is data another process wrote: a task never runs k6 on a plan it cannot read as one
    with pytest.raises(ValidationError):
        TestPlan.from_json_data({**PLAN, **change})


def test_check_defaults_are_the_gates():
    check = PlannedCheck(op="<=", relative=10.0, baseline_runs=5)
    assert (check.weight, check.key, check.threshold) == (1.0, True, None)


STAGE = {"test_type": "smoke", "target": "t", "profile": "quick", "dag_id": "perf_smoke", "run_id": "r",
         "testid": "perf_smoke:r:smoke:try1", "verdict": "pass", "score": 100.0, "metrics": {"p95_ms": 12.5},
         "checks": [{"name": "p95_ms", "result": "pass"}]}


def test_a_stage_result_survives_the_trip_through_json():
    stage = StageResult.from_json_data(STAGE)
    assert StageResult.from_json_data(json.loads(json.dumps(stage.to_json_data()))) == stage
    assert (stage.report, stage.k6_exit_code, stage.analysis) == ("", None, {})


@pytest.mark.parametrize("change", [{"verdict": "passed"}, {"score": float("nan")}, {"test_type": "x"},
                                    {"metrics": None}, {"extra": 1}])
def test_an_xcom_that_is_not_a_stage_result_is_refused(change):
    with pytest.raises(ValidationError):
        StageResult.from_json_data({**STAGE, **change})
