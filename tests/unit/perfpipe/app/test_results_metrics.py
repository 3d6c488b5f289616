"""Gate metrics from k6's end-of-test aggregates, raw InfluxDB samples only for what the summary lacks, and the
reconciliation always against InfluxDB's stored counts (results.collect_metrics with a recording fake hook; the
counts come from perfpipe.app.rollup)."""

from __future__ import annotations

import pytest

from perfpipe.app.results import collect_metrics, reconcile, summary_aggregates

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
