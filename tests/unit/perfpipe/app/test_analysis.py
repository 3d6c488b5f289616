"""The pure parts of perfpipe.app.analysis: buckets -> breaking point, recovery, drift, phases."""

from __future__ import annotations

import pytest

from perfpipe.app.analysis import (breaking_point, drift_pct, phase_bounds, recovery_seconds, slope_per_minute,
                               spike_windows, steady_buckets)
from perfpipe.app.rollup import Bucket, bucket_seconds

from unit.stage_points import stage_result

LIMITS = {"error_rate": 0.05, "p95_ms": 2000, "sustain_s": 3}


def ramp(errors_from: int, n: int = 20, rps: int = 100) -> list[Bucket]:
    """One bucket per second, VUs = 5 x second; from `errors_from` on, 30% of requests fail."""
    return [Bucket(t=1000.0 + i, requests=rps, failed=30 if i >= errors_from else 0, p95_ms=50.0, vus=5 * i)
            for i in range(n)]


def test_bucket_seconds_keeps_at_most_600_buckets():
    assert bucket_seconds(30) == 1
    assert bucket_seconds(600) == 1
    assert bucket_seconds(601) == 2
    assert bucket_seconds(2 * 3600) == 12


def test_breaking_point_is_the_start_of_the_first_sustained_window():
    result = breaking_point(ramp(errors_from=8), 1, LIMITS)
    assert result["broke"] is True
    assert result["breaking_vus"] == 40 and result["breaking_at_s"] == 8.0
    assert result["capacity_vus"] == 40
    assert result["peak_stable_rps"] == 100.0


def test_a_short_burst_is_not_a_break():
    buckets = ramp(errors_from=100)
    for i in (5, 6):  # two bad seconds, then healthy again: shorter than sustain_s
        buckets[i].failed = 50
    result = breaking_point(buckets, 1, LIMITS)
    assert result["broke"] is False and result["breaking_vus"] is None
    assert result["capacity_vus"] == 95  # never broke: the most VUs it held


def test_p95_over_the_limit_breaks_too():
    buckets = ramp(errors_from=100)
    for b in buckets[12:]:
        b.p95_ms = 2500
    assert breaking_point(buckets, 1, LIMITS)["breaking_vus"] == 60


def test_buckets_with_too_few_requests_never_break():
    buckets = [Bucket(t=float(i), requests=2, failed=2, p95_ms=10, vus=1) for i in range(10)]
    assert breaking_point(buckets, 1, LIMITS)["broke"] is False


def test_peak_stable_rps_counts_only_successes_before_the_break():
    buckets = ramp(errors_from=8)
    buckets[3].requests, buckets[3].failed = 150, 2  # one busier second with a few failures
    assert breaking_point(buckets, 1, LIMITS)["peak_stable_rps"] == 148.0


def spike_buckets(after: list[float]) -> list[Bucket]:
    vus = [5, 5, 5, 5, 30, 50, 50, 50, 50, 20] + [5] * len(after)
    p95 = [10, 10, 10, 10, 40, 80, 90, 90, 80, 60] + after
    return [Bucket(t=float(i), requests=50, p95_ms=p, vus=v) for i, (v, p) in enumerate(zip(vus, p95))]


def test_spike_windows_follow_the_measured_vus():
    run_start, spike_start, spike_end, run_end = spike_windows(spike_buckets([10, 10]), 1)
    assert (run_start, spike_start, spike_end, run_end) == (0.0, 4.0, 10.0, 12.0)


def test_recovery_is_when_p95_stays_back_within_limits():
    buckets = spike_buckets([40, 30, 12, 11, 10])
    _, _, end, _ = spike_windows(buckets, 1)
    after = [b for b in buckets if b.t >= end]
    assert recovery_seconds(after, end, ok_p95_ms=15, max_error_rate=0.01) == 2.0
    assert recovery_seconds(after, end, ok_p95_ms=100, max_error_rate=0.01) == 0.0


def test_no_recovery_is_none_not_a_number():
    buckets = spike_buckets([40, 30, 12, 11, 60])  # worse again at the very end
    _, _, end, _ = spike_windows(buckets, 1)
    assert recovery_seconds([b for b in buckets if b.t >= end], end, 15, 0.01) is None
    assert recovery_seconds([], end, 15, 0.01) is None


def test_recovery_counts_errors():
    after = [Bucket(t=10.0 + i, requests=100, failed=f, p95_ms=5) for i, f in enumerate([50, 5, 0, 0])]
    assert recovery_seconds(after, 10.0, 100, 0.01) == 2.0


def test_drift_pct_and_noise():
    assert drift_pct(100, 125) == 25.0
    assert drift_pct(4, 7, noise=10) == 0.0
    assert drift_pct(None, 5) is None
    assert drift_pct(0, 50) is None


def test_slope_per_minute():
    assert slope_per_minute([(0, 10), (60, 20), (120, 30)]) == 10.0
    assert slope_per_minute([(0, 10)]) is None


def test_steady_buckets_drop_ramps():
    buckets = [Bucket(t=float(i), requests=10, vus=v) for i, v in enumerate([2, 6, 10, 10, 10, 9, 4, 0])]
    assert [b.vus for b in steady_buckets(buckets)] == [10, 10, 10, 9]


@pytest.mark.parametrize("events, expected", [
    ([{"event": "inject", "time": 5000}, {"event": "restore", "time": 15000}],
     {"baseline": (0, 5000), "inject": (5000, 15000), "recovery": (15000, 25000)}),
    ([{"event": "inject", "time": 5000}], {"baseline": (0, 5000), "inject": (5000, 25000), "recovery": (25000, 25000)}),
    ([], {}),
])
def test_phase_bounds(events, expected):
    assert phase_bounds(events, 0, 25000) == expected


def test_crossed_thresholds_reads_the_summary_export():
    from perfpipe.app.results import crossed_thresholds

    summary = {"metrics": {"perfpipe_break": {"thresholds": {"count<1": True}},
                           "http_req_duration": {"thresholds": {"p(95)<500": False}},
                           "iterations": {"count": 3}}}
    assert crossed_thresholds(summary) == ["perfpipe_break"]
    assert crossed_thresholds({}) == []


def test_report_shows_analysis_figures_and_the_chaos_phase_table():
    from perfpipe.app.report import analysis_section

    stage = stage_result(breaking_vus=24.0, recovered_s=1.0,
                         analysis={"scenario": "db_failure", "action": "stop", "component": "database",
                                   "phases": {"baseline": {"seconds": 5, "requests": 500, "error_rate": 0,
                                                           "p95_ms": 4, "rps": 100},
                                              "inject": {"seconds": 10, "requests": 900, "error_rate": 0.2,
                                                         "p95_ms": 9, "rps": 90}}})
    html = analysis_section(stage)
    assert "breaking_vus <b>24</b>" in html and "recovered_s <b>1</b>" in html
    assert "<td>inject</td><td>10</td><td>900</td><td>0.2</td>" in html
    assert analysis_section(stage_result()) == ""
