"""The InfluxDB schema (perfpipe.app.measurements) against what the code writes and what Grafana reads."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from perfpipe.core.model.plan import StageResult
from perfpipe.core.model.plan import ChaosPlan
from perfpipe.app import measurements as m
from perfpipe.app import outcomes, rollup
from perfpipe.app.results import result_point

from unit.stage_points import stage_result

REPO_ROOT = Path(__file__).resolve().parents[4]
LOGICAL_DATE = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


class RecordingHook:
    """Stands in for InfluxDBHook: keeps the points written, answers every query with `answer`."""

    def __init__(self, answer=()):
        self.written, self.queries, self.answer = [], [], list(answer)

    def write(self, points, **_):
        self.written += points

    def query(self, query, params=None):
        self.queries.append(query)
        return list(self.answer)


def full_stage() -> dict:
    """A stage result with every figure perfpipe can measure set (ints where analysis produces ints)."""
    metrics = {name: 1 for name in m.NUMERIC_RESULT_FIELDS}
    metrics.update(p95_ms=412.5, error_rate=0.0, broke=True, metrics_complete=True)
    return {"test_type": "stress", "target": "demo", "profile": "quick", "dag_id": "perf_pipeline",
            "run_id": "manual__2026-03-01T12:00:00+00:00", "testid": "perf_pipeline:run:try1",
            "verdict": "fail", "report": "/r/report.html", "k6_exit_code": 99, "score": 40,
            "started_at": "2026-03-01T12:00:00+00:00", "ended_at": "2026-03-01T12:01:00+00:00",
            "analysis": {"scenario": "x"},
            "checks": [{"name": "p95_ms", "op": "<", "threshold": 500, "value": 412.5, "result": "pass"}],
            "metrics": metrics}


def test_a_full_perf_results_point_fits_the_declared_schema():
    point = result_point(StageResult(**full_stage()), LOGICAL_DATE)
    assert m.PERF_RESULTS.problems(point) == []
    # Every declared field is written by a full stage: the schema declares nothing the code never stores.
    assert set(point["fields"]) == set(m.PERF_RESULTS.fields)


def test_a_minimal_perf_results_point_fits_too():
    stage = full_stage()
    stage.update(metrics={}, score=None, k6_exit_code=None, analysis={}, started_at=None, ended_at=None)
    point = result_point(StageResult(**stage), LOGICAL_DATE)
    assert m.PERF_RESULTS.problems(point) == []
    assert type(point["fields"]["k6_exit_code"]) is int and type(point["fields"]["score"]) is float


def test_problems_names_wrong_types_unknown_and_missing_names():
    point = {"measurement": "perf_results", "tags": {"test_type": "load", "target": "demo", "dag_id": "d",
                                                     "colour": "red"},
             "fields": {"p95_ms": 3, "metrics_complete": 1, "verdict": "pass", "bogus": 1.0}}
    assert m.PERF_RESULTS.problems(point) == [
        "unknown tag 'colour'", "missing tag 'run_id'", "unknown field 'bogus'",
        "field 'metrics_complete' is int, declared bool", "field 'p95_ms' is int, declared float"]
    assert m.PERF_RESULTS.problems({**point, "measurement": "perf_result"})[0].startswith("measurement")


def test_the_pipeline_conclusion_fits_perf_pipeline(monkeypatch):
    hook = RecordingHook()
    monkeypatch.setattr(outcomes, "influxdb_hook", lambda **kwargs: hook)
    monkeypatch.setattr(outcomes, "read_results", lambda h, dag_id, run_id: [
        stage_result(test_type="smoke", target="demo", verdict="pass", checks=[])])
    outcomes.conclude("ready_to_deploy", "perf_pipeline", "run", LOGICAL_DATE)
    [point] = hook.written
    assert m.PERF_PIPELINE.problems(point) == []
    assert set(point["fields"]) == set(m.PERF_PIPELINE.fields)


def test_the_rollup_state_fits_perf_rollup_state():
    hook = RecordingHook()
    rollup.write_state(hook, "t1", 1_000, 5, 6_000)
    [point] = hook.written
    assert m.PERF_ROLLUP_STATE.problems(point) == []


def test_chaos_events_and_memory_samples_fit_their_measurements(monkeypatch):
    from perfpipe.app import companions

    hook = RecordingHook()
    controller = companions.ChaosController.__new__(companions.ChaosController)
    controller.hook, controller.tags = hook, {"testid": "t1", "test_type": "chaos", "target": "demo"}
    controller.chaos = ChaosPlan(scenario="db_failure", component="database", action="stop", spec={}, tolerance={})
    controller.record_event({"event": "inject", "time": 1.5, "ok": True, "detail": {"x": 1}})
    [event] = hook.written
    assert m.PERF_EVENTS.problems(event) == []


@pytest.mark.parametrize("measurement", m.K6_MEASUREMENTS, ids=str)
def test_k6_measurements_carry_the_tags_perfpipe_passes_to_k6(measurement, api_target):
    from perfpipe.app.config import build_plan
    from perfpipe.core.k6.command import build_invocation

    plan = build_plan("load", api_target, "quick")
    argv = build_invocation(plan, testid="t1", binary="k6", script="s.js", report_path="/r", influx=None,
                            headers={}, blocked_networks=[]).argv
    tags = [argv[i + 1].split("=", 1)[0] for i, arg in enumerate(argv) if arg == "--tag"]
    assert tuple(tags) == measurement.tags == m.K6_TAGS


def _grafana_queries() -> list[tuple[str, str]]:
    found = []

    def walk(node, name):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "query" and isinstance(value, str) and "FROM" in value:
                    found.append((name, value))
                walk(value, name)
        elif isinstance(node, list):
            for value in node:
                walk(value, name)

    for path in sorted((REPO_ROOT / "grafana" / "dashboards").glob("*.json")):
        walk(json.loads(path.read_text(encoding="utf-8")), path.name)
    return found


def test_grafana_reads_only_declared_measurements_tags_and_fields():
    """A rename in the schema (or a dashboard query of a name nobody writes) fails here."""
    queries = _grafana_queries()
    assert len(queries) > 20
    for dashboard, query in queries:
        source = re.search(r'FROM "(\w+)"', query)
        assert source, (dashboard, query)
        measurement = m.BY_NAME.get(source.group(1))
        assert measurement is not None, (dashboard, query)
        aliases = set(re.findall(r'AS "?(\w+)"?', query))
        names = set(re.findall(r'"(\w+)"', query)) - {measurement.name} - aliases
        unknown = names - set(m.k6_tags_of(measurement)) - set(measurement.fields)
        assert not unknown, (dashboard, query, unknown)


def test_queries_name_declared_measurements():
    from perfpipe.app.live_status import live_queries

    for query in live_queries():
        assert m.BY_NAME[re.search(r'FROM "(\w+)"', query).group(1)].written_by == "k6"
        assert query.endswith('GROUP BY "testid", "test_type", "target"')  # Grafana's and k6's tag names
