"""perfpipe.app.results: count reconciliation, the perf_results point and the k6 summary (no InfluxDB), and the gate
metrics from k6's end-of-test aggregates (raw InfluxDB samples, through a recording fake hook, only for what the
summary lacks; the reconciliation always against InfluxDB's stored counts)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from perfpipe.core.model.plan import StageResult
from perfpipe.app.results import (METRIC_FIELDS, RESULTS_MEASUREMENT, collect_metrics, read_k6_summary, reconcile,
                                  result_point, summary_aggregates, summary_count, unused_testid)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("expected, stored, complete", [
    (1200, 1200, True),
    (1200, 1199, True),  # a same-nanosecond collision InfluxDB merged: within the allowance of 3
    (1200, 1197, True),
    (1200, 1196, False),  # beyond the allowance: lost samples
    (1_000_000, 999_900, True),  # 0.01 %
    (1_000_000, 999_899, False),
    (1200, 600, False),
    (1200, 1250, False),  # more than k6 counted: another run's samples share the testid
    (0, 0, True),
    (None, 0, False),
    (None, 500, False),
])
def test_reconcile(expected, stored, complete):
    assert reconcile(expected, stored) == {"samples_expected": expected, "samples_stored": stored,
                                           "metrics_complete": complete}


def test_summary_count():
    summary = {"metrics": {"http_reqs": {"count": 1234.0, "rate": 10.5}, "checks": {"passes": 3}}}
    assert summary_count(summary, "http_reqs") == 1234
    assert type(summary_count(summary, "http_reqs")) is int
    assert summary_count(summary, "checks") is None
    assert summary_count(summary, "iterations") is None
    assert summary_count({}, "http_reqs") is None
    assert summary_count({"metrics": None}, "http_reqs") is None
    assert summary_count({"metrics": {"http_reqs": {"count": 0}}}, "http_reqs") == 0


def test_read_k6_summary(tmp_path):
    assert read_k6_summary(tmp_path / "missing.json") == {}
    broken = tmp_path / "broken.json"
    broken.write_text("{\"metrics\": ")  # k6 killed mid-write
    assert read_k6_summary(broken) == {}
    good = tmp_path / "summary.json"
    good.write_text(json.dumps({"metrics": {"http_reqs": {"count": 3}}}))
    assert summary_count(read_k6_summary(str(good)), "http_reqs") == 3


def _stage(**overrides):
    stage = {
        "test_type": "load", "target": "demo", "profile": "quick", "dag_id": "perf_load",
        "run_id": "manual__2026-03-01T12:00:00+00:00", "testid": "perf_load:manual__2026-03-01T12:00:00+00:00:try1",
        "verdict": "warn", "report": "/r/report.html", "k6_exit_code": 0,
        "checks": [{"name": "p95_ms", "op": "<", "threshold": 500.0, "warn": 300.0, "value": 412.5,
                    "result": "warn"},
                   {"name": "rps", "op": ">=", "threshold": 1.0, "warn": None, "value": None, "result": "fail",
                    "reason": "no data"}],
        "metrics": {"p95_ms": 412.5, "p99_ms": 800, "avg_ms": 120.25, "error_rate": 0, "rps": None,
                    "checks_rate": 1, "requests": 1200, "vus_max": 20, "duration_s": 20.0,
                    "samples_expected": 1200, "samples_stored": 1200, "metrics_complete": True},
    }
    stage.update(overrides)
    return stage


def test_result_point_tags_and_time():
    logical_date = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    point = result_point(StageResult(**_stage()), logical_date)
    assert point["measurement"] == RESULTS_MEASUREMENT == "perf_results"
    assert point["tags"] == {"test_type": "load", "target": "demo", "dag_id": "perf_load",
                             "run_id": "manual__2026-03-01T12:00:00+00:00"}
    assert point["time"] == 1772366400000
    assert point["time"] == (logical_date - EPOCH) // timedelta(milliseconds=1)


@pytest.mark.parametrize("logical_date", [
    datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=timezone.utc),
    datetime(2026, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),  # same instant, another zone
])
def test_result_point_time_is_the_logical_date_in_ms(logical_date):
    point = result_point(StageResult(**_stage()), logical_date)
    assert point["time"] == 1772366400123
    assert point["time"] == (logical_date - EPOCH) // timedelta(milliseconds=1)


def test_result_point_fields():
    fields = result_point(StageResult(**_stage()), datetime(2026, 3, 1, tzinfo=timezone.utc))["fields"]
    assert fields == {
        "verdict": "warn", "testid": "perf_load:manual__2026-03-01T12:00:00+00:00:try1", "metrics_complete": True,
        "report": "/r/report.html", "profile": "quick", "k6_exit_code": 0, "score": -1.0,
        "checks_json": fields["checks_json"],
        "p95_ms": 412.5, "p99_ms": 800.0, "avg_ms": 120.25, "error_rate": 0.0, "checks_rate": 1.0,
        "requests": 1200.0, "vus_max": 20.0, "duration_s": 20.0, "samples_expected": 1200.0,
        "samples_stored": 1200.0,
    }
    assert "rps" not in fields  # None is left out, never written as a different type
    for name in METRIC_FIELDS + ("samples_expected", "samples_stored"):
        if name in fields:
            assert type(fields[name]) is float, name  # one type per field forever
    assert type(fields["k6_exit_code"]) is int
    assert fields["metrics_complete"] is True


def test_result_point_checks_json_round_trips():
    stage = _stage()
    fields = result_point(StageResult(**stage), datetime(2026, 3, 1, tzinfo=timezone.utc))["fields"]
    assert json.loads(fields["checks_json"]) == stage["checks"]


def test_result_point_defaults_for_a_crashed_run():
    stage = _stage(k6_exit_code=None, report="", checks=[],
                   metrics={"samples_expected": None, "samples_stored": 0, "metrics_complete": False})
    fields = result_point(StageResult(**stage), datetime(2026, 3, 1, tzinfo=timezone.utc))["fields"]
    assert fields == {"verdict": "warn", "testid": stage["testid"], "metrics_complete": False, "report": "",
                      "checks_json": "[]", "profile": "quick", "k6_exit_code": -1, "score": -1.0,
                      "samples_stored": 0.0}


class _FakeHook:
    """Answers the http_reqs count query with a point for testids that already hold samples."""

    def __init__(self, used):
        self.used, self.asked = set(used), []

    def query(self, query, params=None):
        assert 'FROM "http_reqs"' in query and "$testid" in query
        self.asked.append(params["testid"])
        return [{"n": 10}] if params["testid"] in self.used else []


def test_unused_testid_keeps_a_fresh_testid():
    hook = _FakeHook(used=[])
    assert unused_testid(hook, "perf_load:run:try1") == "perf_load:run:try1"
    assert hook.asked == ["perf_load:run:try1"]


def test_unused_testid_suffixes_a_cleared_rerun_of_the_same_try():
    hook = _FakeHook(used=["perf_load:run:try1", "perf_load:run:try1.r2"])
    assert unused_testid(hook, "perf_load:run:try1") == "perf_load:run:try1.r3"
    assert hook.asked == ["perf_load:run:try1", "perf_load:run:try1.r2", "perf_load:run:try1.r3"]


# --- gate metrics from the k6 summary --------------------------------------------------------------------

SUMMARY = {
    "state": {"testRunDurationMs": 20_000},
    "metrics": {
        "http_reqs": {"count": 1000, "rate": 50.0},
        "http_req_duration": {"avg": 12.5, "p(95)": 30.25, "p(99)": 41.0, "count": 1000},
        "http_req_failed": {"passes": 20, "fails": 980, "value": 0.02},
        "checks": {"passes": 990, "fails": 10, "value": 0.99},
        "vus": {"value": 0, "min": 0, "max": 20},
    },
}


class FakeHook:
    """Answers aggregate queries with fixed raw-sample figures; records queries."""

    def __init__(self, raw: dict | None = None):
        self.raw = raw or {"avg": 99.0, "p95": 199.0, "p99": 299.0, "rate": 0.5, "peak": 7}
        self.queries: list[str] = []

    def query(self, query: str, params=None) -> list[dict]:
        self.queries.append(query)
        return [dict(self.raw)]


def test_figures_come_from_the_summary_without_any_influxdb_query():
    hook = FakeHook()
    metrics = collect_metrics(hook, "t1", SUMMARY, 20.0, 1000, 1000)
    assert (metrics["p95_ms"], metrics["p99_ms"], metrics["avg_ms"]) == (30.25, 41.0, 12.5)
    assert (metrics["error_rate"], metrics["checks_rate"], metrics["vus_max"]) == (0.02, 0.99, 20)
    assert metrics["requests"] == 1000 and metrics["rps"] == 50.0
    assert metrics["metrics_complete"] is True
    # No raw-sample scan (mean/percentile/max) was needed; the counts come from the rollup.
    assert hook.queries == []


def test_missing_summary_figures_are_read_from_the_raw_samples():
    summary = {"metrics": {"http_reqs": {"count": 1000}, "http_req_duration": {"avg": 12.5}}}  # custom trend stats
    hook = FakeHook()
    metrics = collect_metrics(hook, "t1", summary, 20.0, 1000, 1000)
    assert metrics["avg_ms"] == 99.0  # one query answers all duration figures once any is missing
    assert (metrics["p95_ms"], metrics["p99_ms"]) == (199.0, 299.0)
    assert (metrics["error_rate"], metrics["checks_rate"], metrics["vus_max"]) == (0.5, 0.5, 7)
    assert any("percentile" in q for q in hook.queries)


def test_no_summary_at_all_is_incomplete_whatever_influxdb_holds():
    metrics = collect_metrics(FakeHook(), "t1", {}, 20.0, 1000, 1000)
    assert metrics["samples_expected"] is None and metrics["metrics_complete"] is False
    assert metrics["requests"] == 1000  # still reported, from what InfluxDB holds


@pytest.mark.parametrize("stored, complete", [(1000, True), (997, True), (996, False), (500, False), (0, False),
                                              (1001, False)])
def test_summary_figures_never_hide_a_loss(stored, complete):
    """Exact figures from k6 do not make lost samples acceptable: Grafana and the analyses read InfluxDB."""
    metrics = collect_metrics(FakeHook(), "t1", SUMMARY, 20.0, stored, stored)
    assert metrics["metrics_complete"] is complete
    assert metrics["samples_stored"] == stored


def test_lost_durations_count_even_when_every_request_counter_arrived():
    metrics = collect_metrics(FakeHook(), "t1", SUMMARY, 20.0, 1000, 900)
    assert metrics["samples_stored"] == 900 and metrics["metrics_complete"] is False
    assert metrics["p95_ms"] == 30.25


def test_summary_aggregates_of_an_empty_summary_are_all_unknown():
    assert set(summary_aggregates({}).values()) == {None}


def test_reconcile_allowance_boundaries():
    assert reconcile(100_000, 100_000 - 10)["metrics_complete"] is True
    assert reconcile(100_000, 100_000 - 11)["metrics_complete"] is False


class _KeyHook:
    """Answers the same-key query with points of the given run ids; records what is deleted."""

    def __init__(self, run_ids):
        self.run_ids, self.asked, self.executed = run_ids, [], []

    def query(self, query, params=None):
        self.asked.append((query, params))
        return [{"run_id": r} for r in self.run_ids]

    def execute(self, statement):
        self.executed.append(statement)


def test_only_other_runs_points_of_the_same_key_are_dropped():
    from perfpipe.app.results import drop_other_runs

    point = {"tags": {"dag_id": "perf_smoke", "test_type": "smoke", "target": "it's", "run_id": "new"},
             "time": 1772366400000}
    hook = _KeyHook(["old", "new", "older"])
    drop_other_runs(hook, "perf_results", point, ("dag_id", "test_type", "target"))
    [(query, params)] = hook.asked
    assert "time = 1772366400000ms" in query and params == {"dag_id": "perf_smoke", "test_type": "smoke",
                                                             "target": "it's"}
    assert hook.executed == [
        f'DELETE FROM "perf_results" WHERE "dag_id" = \'perf_smoke\' AND "test_type" = \'smoke\' AND '
        f'"target" = \'it\\\'s\' AND "run_id" = \'{run}\' AND time = 1772366400000ms' for run in ("old", "older")]
    alone = _KeyHook(["new"])
    drop_other_runs(alone, "perf_results", point, ("dag_id", "test_type", "target"))
    assert alone.executed == []  # its own point is never deleted
