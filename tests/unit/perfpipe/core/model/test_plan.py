"""perfpipe.core.model.plan: the plan tasks hand each other, and how it crosses XCom."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from perfpipe.core.model.plan import PlannedCheck, TestPlan

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
