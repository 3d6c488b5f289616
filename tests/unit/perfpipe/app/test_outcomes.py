"""perfpipe.app.outcomes: what a run comes to (the CLI's outcome and exit code) and the pipeline's conclusion."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from perfpipe.app import outcomes
from perfpipe.app.outcomes import RunOutcome, pipeline_outcome, stages_outcome

from unit.stage_points import stage_result

LOGICAL_DATE = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("verdicts, expected, result", [
    (["pass"], 1, RunOutcome("passed", True)),
    (["pass", "warn"], 2, RunOutcome("passed_with_warnings", True)),
    (["pass", "fail"], 2, RunOutcome("failed", False)),
    (["fail"], 2, RunOutcome("failed", False)),  # a failed gate is a verdict even when a later stage is missing
    (["pass"], 2, RunOutcome("error", None)),  # a stage never recorded a result: infrastructure
    ([], 1, RunOutcome("error", None)),
    (["aborted"], 1, RunOutcome("aborted", None)),
    (["pass", "aborted"], 2, RunOutcome("aborted", None)),
    (["inconclusive"], 1, RunOutcome("inconclusive", None)),
])
def test_stages_outcome(verdicts, expected, result):
    assert stages_outcome(verdicts, expected) == result


@pytest.mark.parametrize("conclusion, verdicts, result", [
    ({"outcome": "ready_to_deploy"}, ["pass"], RunOutcome("ready_to_deploy", True)),
    ({"outcome": "scale_system"}, ["pass", "pass", "fail"], RunOutcome("scale_system", False)),
    (None, ["pass", "aborted"], RunOutcome("aborted", None)),  # stopped: no outcome reached
    (None, ["pass"], RunOutcome("error", None)),
])
def test_pipeline_outcome(conclusion, verdicts, result):
    assert pipeline_outcome(conclusion, verdicts) == result


class FakeHook:
    def __init__(self, points=()):
        self.written, self.points = [], list(points)

    def write(self, points, **_):
        self.written += points

    def query(self, query, params=None):
        return [dict(p) for p in self.points]


def _results(*verdicts):
    stages = ("smoke", "load", "stress", "spike", "chaos")
    return [stage_result(test_type=s, target="demo", verdict=v,
                         checks=[{"name": "p95_ms", "value": 900.0, "op": "<", "threshold": 500.0, "result": v}])
            for s, v in zip(stages, verdicts)]


def test_conclude_records_path_and_evidence_and_fails_a_remediation(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    hook = FakeHook()
    monkeypatch.setattr(outcomes, "influxdb_hook", lambda **kwargs: hook)
    # read back in any order: the path follows the decision tree
    monkeypatch.setattr(outcomes, "read_results", lambda h, d, r: list(reversed(_results("pass", "pass", "fail"))))
    with pytest.raises(AirflowFailException, match="scale_system"):
        outcomes.conclude("scale_system", "perf_pipeline", "run1", LOGICAL_DATE)
    [point] = hook.written
    assert point["fields"]["path"] == "smoke -> load -> stress -> scale_system"
    assert point["tags"] == {"dag_id": "perf_pipeline", "run_id": "run1", "target": "demo"}
    assert point["time"] == 1772366400000
    [evidence] = json.loads(point["fields"]["evidence_json"])
    assert (evidence["stage"], evidence["name"], evidence["value"]) == ("stress", "p95_ms", 900.0)


def test_conclude_ready_returns_the_conclusion(monkeypatch):
    hook = FakeHook()
    monkeypatch.setattr(outcomes, "influxdb_hook", lambda **kwargs: hook)
    monkeypatch.setattr(outcomes, "read_results", lambda h, d, r: _results("pass", "warn"))
    conclusion = outcomes.conclude("ready_to_deploy", "perf_pipeline", "run1", LOGICAL_DATE)
    assert conclusion["path"] == ["smoke", "load", "ready_to_deploy"] and conclusion["evidence"] == []


def test_read_conclusion_round_trips_what_conclude_wrote(monkeypatch):
    hook = FakeHook()
    monkeypatch.setattr(outcomes, "influxdb_hook", lambda **kwargs: hook)
    monkeypatch.setattr(outcomes, "read_results", lambda h, d, r: _results("pass", "fail"))
    with pytest.raises(Exception):
        outcomes.conclude("optimize_system", "perf_pipeline", "run1", LOGICAL_DATE)
    [point] = hook.written
    reader = FakeHook([{**point["tags"], **point["fields"]}])
    read = outcomes.read_conclusion(reader, "perf_pipeline", "run1")
    assert read["outcome"] == "optimize_system"
    assert read["path"] == ["smoke", "load", "optimize_system"]
    assert read["evidence"][0]["stage"] == "load"
    assert outcomes.read_conclusion(FakeHook(), "perf_pipeline", "run1") is None
