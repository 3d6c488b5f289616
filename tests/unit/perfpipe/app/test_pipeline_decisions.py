"""The decision tree as pure logic."""

import pytest

from perfpipe.app import pipeline

from unit.stage_points import stage_result


@pytest.mark.parametrize("stage, verdict, include_soak, expected", [
    ("smoke", "pass", False, "load"),
    ("smoke", "fail", False, "fix_issues"),
    ("load", "warn", False, "stress"),
    ("load", "fail", False, "optimize_system"),
    ("stress", "fail", False, "scale_system"),
    ("spike", "fail", False, "improve_failover"),
    ("chaos", "pass", False, "ready_to_deploy"),
    ("chaos", "pass", True, "soak"),
    ("chaos", "fail", True, "improve_failover"),
    ("soak", "pass", True, "ready_to_deploy"),
    ("soak", "fail", True, "optimize_system"),
])
def test_decisions(stage, verdict, include_soak, expected):
    assert pipeline.decide(stage, stage_result(verdict=verdict, test_type=stage), include_soak) == expected


@pytest.mark.parametrize("verdict", [None, "inconclusive", "aborted"])
def test_no_trustworthy_verdict_is_not_a_performance_decision(verdict):
    with pytest.raises(pipeline.InconclusiveStage):
        pipeline.decide("load", verdict and stage_result(verdict=verdict), False)


def test_branch_task_ids():
    assert pipeline.branch_task_id("smoke", "load") == "load.validate"
    assert pipeline.branch_task_id("smoke", "fix_issues") == "fix_issues"
    assert pipeline.branch_task_id("spike", "improve_failover") == "spike_not_resilient"
    assert pipeline.branch_task_id("chaos", "ready_to_deploy") == "chaos_resilient"


def test_explanation_names_values_and_thresholds():
    failed = stage_result(test_type="load", verdict="fail", checks=[
        {"name": "p95_ms", "value": 812.0, "op": "<", "threshold": 500.0, "result": "fail"},
        {"name": "error_rate", "value": 0.0, "op": "<", "threshold": 0.01, "result": "pass"}])
    text = pipeline.explain("optimize_system", failed)
    assert "p95_ms = 812.0 (needs < 500.0)" in text and "error_rate" not in text
    assert pipeline.evidence(failed) == [{"stage": "load", "name": "p95_ms", "value": 812.0, "op": "<",
                                          "threshold": 500.0, "result": "fail"}]
