"""perfpipe.app.report: the pipeline's self-contained HTML summary, from recorded results faked in place of
InfluxDB. The HTML is parsed, not string-matched against the template."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from perfpipe.app import report, rollup
from perfpipe.app.rollup import Bucket

from unit.stage_points import stage_result


class Page(HTMLParser):
    """Text per tag, attributes of every element, and whether any raw <script> got through."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.elements if name == tag]

    @property
    def plain(self) -> str:
        return "".join(self.text)


# --- svg_chart -----------------------------------------------------------------------------------------------

def test_a_chart_without_data_says_so_and_draws_nothing():
    page = Page(report.svg_chart("VUs", "", []))
    assert page.all("svg") == [] and "no data" in page.plain


def test_chart_points_stay_inside_the_chart_and_the_peak_touches_the_top():
    width, height = 360, 140
    values = [(0, 0.0), (10_000, 50.0), (20_000, 200.0), (60_000, 100.0)]
    page = Page(report.svg_chart("Request rate", "req/s", values, width=width, height=height))
    [line] = page.all("polyline")
    points = [tuple(map(float, p.split(","))) for p in line["points"].split()]
    assert len(points) == len(values)
    xs, ys = [x for x, _ in points], [y for _, y in points]
    assert xs == sorted(xs) and 0 < xs[0] < xs[-1] <= width  # time runs left to right inside the box
    assert all(0 <= y <= height for y in ys)
    assert ys[2] == min(ys) and ys[0] == max(ys)  # SVG y grows downwards: the peak is highest, zero lowest
    assert "max 200 req/s" in page.plain and "60 s" in page.plain  # the scale and the run's length


def test_a_flat_zero_series_does_not_divide_by_zero():
    page = Page(report.svg_chart("Error rate", "", [(0, 0.0), (1000, 0.0)]))
    assert len(page.all("polyline")) == 1


# --- time_series ---------------------------------------------------------------------------------------------

def test_series_come_from_the_rollup_as_rates_per_second_and_in_milliseconds(monkeypatch):
    buckets = [Bucket(t=100.0, requests=50, failed=5, p95_ms=12.0, vus=3),
               Bucket(t=105.0, requests=0, failed=0, p95_ms=None, vus=3)]  # an idle bucket
    monkeypatch.setattr(rollup, "read_state", lambda hook, testid: (5, 110_000))
    monkeypatch.setattr(rollup, "read_rollup", lambda hook, testid: (buckets, []))
    series = report.time_series(object(), stage_result(testid="t1"))
    assert series["Request rate"] == [(100_000, 10.0), (105_000, 0.0)]  # 50 requests in a 5 s bucket
    assert series["p95 latency"] == [(100_000, 12.0)]  # no latency without requests: no point, not zero
    assert series["Error rate"] == [(100_000, 0.1)]  # an idle bucket has no error rate
    assert series["VUs"] == [(100_000, 3.0), (105_000, 3.0)]


def test_a_stage_without_rollup_has_empty_series(monkeypatch):
    monkeypatch.setattr(rollup, "read_state", lambda hook, testid: None)
    monkeypatch.setattr(rollup, "read_rollup", lambda hook, testid: pytest.fail("no rollup to read"))
    assert all(v == [] for v in report.time_series(object(), stage_result(testid="t1")).values())
    assert all(v == [] for v in report.time_series(object(), stage_result(testid="")).values())


# --- render / write_pipeline_report ----------------------------------------------------------------------------

def _stage(test_type: str, verdict: str, **extra):
    return stage_result(**{"test_type": test_type, "target": "demo", "verdict": verdict,
                           "testid": f"perf_pipeline:r:{test_type}", "metrics_complete": True, "p95_ms": 120.5,
                           "report": "", "analysis": {},
                           "checks": [{"name": "p95_ms", "value": 120.5, "op": "<", "threshold": 500.0, "warn": 300.0,
                                       "result": "pass"}], **extra})


@pytest.fixture
def recorded(monkeypatch):
    """Recorded stages and conclusion, as outcomes would read them back; charts without data."""
    state = {"stages": [], "conclusion": None}
    monkeypatch.setattr(report, "stage_results", lambda hook, dag_id, run_id: state["stages"])
    monkeypatch.setattr(report, "read_conclusion", lambda hook, dag_id, run_id: state["conclusion"])
    monkeypatch.setattr(report, "time_series", lambda hook, stage: {title: [] for title, _ in report.SERIES})
    return state


def test_the_report_shows_the_decision_path_with_the_outcome_last(recorded, tmp_path):
    recorded["stages"] = [_stage("smoke", "pass"), _stage("load", "fail")]
    recorded["conclusion"] = {"path": ["smoke", "load", "remediate_performance"], "outcome": "performance regression",
                              "explanation": "load failed its gate", "target": "demo"}
    page = Page(report.render(object(), "perf_pipeline", "r1", tmp_path))
    path = [attrs for tag, attrs in page.elements if tag == "span" and "class" in attrs]
    assert [a["class"] for a in path if a["class"] in ("", "outcome")][-1] == "outcome"
    assert "perf_pipeline: performance regression" in page.plain
    assert page.plain.count("p95_ms") >= 2 and "load failed its gate" in page.plain
    assert len(page.all("section")) == 2  # one per recorded stage


def test_a_run_without_a_conclusion_says_it_is_an_infrastructure_error(recorded, tmp_path):
    recorded["stages"] = [_stage("smoke", "pass")]
    page = Page(report.render(object(), "perf_pipeline", "r1", tmp_path))
    assert "no outcome (infrastructure error" in page.plain
    assert not [a for a in page.all("span") if a.get("class") == "outcome"]  # nothing claims to be the outcome


def test_names_and_values_from_a_run_are_escaped(recorded, tmp_path):
    evil = "<script>alert(1)</script>"
    recorded["stages"] = [_stage("smoke", "pass", testid=evil, checks=[
        {"name": evil, "value": evil, "op": "<", "threshold": 1, "warn": None, "result": "pass"}])]
    recorded["conclusion"] = {"path": ["smoke"], "outcome": evil, "explanation": evil, "target": evil}
    html_text = report.render(object(), "perf_pipeline", evil, tmp_path)
    assert Page(html_text).all("script") == [] and evil not in html_text


def test_incomplete_metrics_are_flagged_with_the_counts(recorded, tmp_path):
    recorded["stages"] = [_stage("load", "inconclusive", metrics_complete=False, samples_stored=900,
                                 samples_expected=1000)]
    page = Page(report.render(object(), "perf_pipeline", "r1", tmp_path))
    assert "INCOMPLETE (900 of 1000)" in page.plain


def test_the_k6_report_link_is_relative_to_the_pipeline_report(recorded, tmp_path):
    recorded["stages"] = [_stage("smoke", "pass", report=str(tmp_path / "smoke" / "report.html"))]
    page = Page(report.render(object(), "perf_pipeline", "r1", tmp_path))
    assert [a["href"] for a in page.all("a")] == ["smoke/report.html"]  # the folder can be moved or served


def test_analysis_figures_and_chaos_phases_are_shown_only_when_present():
    assert report.analysis_section(stage_result(test_type="smoke")) == ""
    section = Page(report.analysis_section(stage_result(
        breaking_vus=420, analysis={"scenario": "cache_failure", "action": "stop", "component": "cache",
                                    "phases": {"before": {"seconds": 10, "requests": 100},
                                               "during": {"seconds": 20, "requests": 150}}})))
    assert "breaking_vus 420" in section.plain and "cache_failure" in section.plain
    rows = [t for t in section.text if t in ("before", "during")]
    assert rows == ["before", "during"]


def test_write_pipeline_report_writes_one_file_under_the_runs_report_folder(recorded, perfpipe_env):
    recorded["stages"] = [_stage("smoke", "pass")]
    path = report.write_pipeline_report("perf_pipeline", "manual__2026-01-05T00:00:00+00:00")
    assert path.name == report.REPORT_FILE and path.is_file()
    assert (perfpipe_env / "reports") in path.parents  # under PERFPIPE_REPORTS_DIR, nowhere else
    assert Page(path.read_text()).all("section")
