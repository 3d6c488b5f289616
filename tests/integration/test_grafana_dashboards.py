"""The provisioned Grafana dashboards against real data: every panel query, variable query and annotation query,
with its variables substituted as Grafana would, returns data from this session's influxd after real quick runs
(the quick pipeline with soak against the demo target, plus one smoke run whose target answers 500s, for the error panels).

Grafana itself is not installable here, so the queries run directly against InfluxDB. A query that returns nothing
fails its test: the analysis panels (breaking point, recovery, drift, chaos phases and events) included.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import pytest
import yaml

from perfpipe import TEST_TYPES
from perfpipe.core.model.plan import StageResult

from conftest import DEMO_URL, ROOT, perfpipe_cli  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.integration

DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
DATASOURCE_FILE = ROOT / "grafana" / "provisioning" / "datasources" / "influxdb.yaml"
DASHBOARDS = {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS_DIR.glob("*.json"))}
# The k6-run panels that only have data when requests fail: run against the smoke run whose target answers 500.
ERROR_PANELS = {"Errors by status"}
# Chaos events exist only for a chaos run: the k6-run annotation is checked against the chaos stage's testid.
CHAOS_QUERIES = {"annotation 'Chaos events'"}
_GRAFANA_REGEX_SPECIALS = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def _queries(dashboard: dict) -> list[tuple[str, str]]:
    """(label, InfluxQL) of every panel target, template variable and annotation."""
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["query"]))
    for variable in dashboard["templating"]["list"]:
        found.append((f"variable {variable['name']}", variable["query"]))
    for annotation in dashboard["annotations"]["list"]:
        if annotation.get("query"):
            found.append((f"annotation {annotation['name']!r}", annotation["query"]))
    return found


def _cases() -> list:
    return [pytest.param(name, label, query, id=f"{name}: {label}")
            for name, dashboard in DASHBOARDS.items() for label, query in _queries(dashboard)]


def substitute(query: str, values: dict[str, str | None], time_from_ms: int, time_to_ms: int,
               interval_s: int = 1) -> str:
    """What Grafana sends: ${var:raw} as is, ${var:regex} regex-escaped (None = All -> the allValue '.*'),
    $timeFilter and $__interval(_ms) for the time range. A variable without an explicit format is refused:
    Grafana's default escaping for InfluxDB differs between versions."""
    def replace(match: re.Match) -> str:
        name, fmt = match.group(1), match.group(2)
        if name not in values:
            raise AssertionError(f"unknown variable ${{{name}}} in {query}")
        value = values[name]
        if fmt == "raw":
            assert value is not None, f"${{{name}:raw}} has no All value"
            return value
        return ".*" if value is None else _GRAFANA_REGEX_SPECIALS.sub(lambda m: "\\" + m.group(0), value)

    text = re.sub(r"\$\{(\w+):(raw|regex)\}", replace, query)
    text = text.replace("$timeFilter", f"time >= {time_from_ms}ms and time <= {time_to_ms}ms")
    text = text.replace("$__interval_ms", str(interval_s * 1000)).replace("$__interval", f"{interval_s}s")
    assert not re.search(r"\$(\{|\w)", text), f"unsubstituted variable or macro in {text}"
    return text


def _rows(influx, query: str) -> list:
    result = influx.get_conn().query(query, epoch="ms")
    return [point for series in result.raw.get("series", []) for point in series.get("values", [])]


@pytest.fixture(scope="module")
def quick_runs(influxdb, quick_pipeline, tmp_path_factory):
    """The quick pipeline (soak included) on the demo target and one smoke run with failing requests, through the CLI."""
    from perfpipe.app.results import read_results

    cli = perfpipe_cli
    started_ms = int(time.time() * 1000)
    pipeline = quick_pipeline
    # 0: ready to deploy, 1: a remediation outcome; both leave real data (2 would be bad input or infrastructure).
    assert pipeline.returncode in (0, 1), pipeline.stdout[-2000:] + pipeline.stderr[-3000:]
    pipeline_run = json.loads(pipeline.stdout)
    stages = {p.test_type: p for p in read_results(influxdb, pipeline_run["dag_id"], pipeline_run["run_id"])}
    for test_type in TEST_TYPES:  # stages the decision tree did not reach: run them on their own
        if test_type not in stages:
            single = cli("run", test_type, "--target", "demo", "--profile", "quick", "--json", timeout=600)
            assert single.returncode in (0, 1), single.stdout[-2000:] + single.stderr[-3000:]
            run = json.loads(single.stdout)
            [stages[test_type]] = read_results(influxdb, run["dag_id"], run["run_id"])

    failing = tmp_path_factory.mktemp("targets") / "demo-failing.yaml"
    failing.write_text(yaml.safe_dump({"targets": {"demo-failing": {"base_url": DEMO_URL, "requests": [
        {"name": "list_products", "method": "GET", "path": "/api/products?limit=5", "weight": 3,
         "expect_status": 200},
        {"name": "broken", "method": "GET", "path": "/api/broken", "weight": 1, "expect_status": 200}]}}}))
    errors = cli("run", "smoke", "--target", str(failing), "--profile", "quick", "--json", timeout=300)
    assert errors.returncode == 1, errors.stdout[-2000:] + errors.stderr[-3000:]  # its gate fails: it should
    error_run = json.loads(errors.stdout)
    [error_stage] = read_results(influxdb, error_run["dag_id"], error_run["run_id"])
    return {"stages": stages, "errors": error_stage, "from_ms": started_ms - 3_600_000,
            "to_ms": int(time.time() * 1000) + 600_000}


def _run_window(stage: StageResult) -> tuple[int, int]:
    """The k6-run link's time range: the load window with 10 s either side."""
    started, ended = (int(datetime.fromisoformat(at).timestamp() * 1000) for at in (stage.started_at, stage.ended_at))
    return started - 10_000, ended + 10_000


def _variables(name: str, label: str, runs: dict) -> tuple[dict, int, int]:
    if name == "k6-run":
        if any(f"panel {title!r}" in label for title in ERROR_PANELS):
            stage = runs["errors"]
        elif label in CHAOS_QUERIES:
            stage = runs["stages"]["chaos"]
        else:
            stage = runs["stages"]["load"]
        values = {"testid": stage.testid, "test_type": stage.test_type, "target": stage.target}
        if label.startswith("variable"):
            values.update(test_type=None, target=None)  # the link opens the dashboard with All selected
        return (values, *_run_window(stage))
    return {"target": "demo", "test_type": None}, runs["from_ms"], runs["to_ms"]


@pytest.mark.parametrize("name,label,query", _cases())
def test_query_returns_data(quick_runs, influxdb, name, label, query):
    values, time_from, time_to = _variables(name, label, quick_runs)
    influxql = substitute(query, values, time_from, time_to)
    rows = _rows(influxdb, influxql)
    assert rows, f"{name}: {label} returned no data:\n{influxql}"


def test_every_panel_query_is_raw_influxql_on_the_provisioned_datasource():
    datasource = yaml.safe_load(DATASOURCE_FILE.read_text())["datasources"][0]
    assert datasource["type"] == "influxdb" and datasource["uid"] == "perfpipe-influxdb"
    assert DASHBOARDS.keys() == {"k6-run", "pipeline-history"}
    for name, dashboard in DASHBOARDS.items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == datasource["uid"], (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["rawQuery"] is True and target["datasource"]["uid"] == datasource["uid"]
        for variable in dashboard["templating"]["list"]:
            assert variable["datasource"]["uid"] == datasource["uid"]


def test_k6_run_dashboard_matches_the_task_link():
    from perfpipe.core.operators.links import DASHBOARD_UID

    dashboard = DASHBOARDS["k6-run"]
    assert dashboard["uid"] == DASHBOARD_UID
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"testid", "test_type", "target"} <= variables.keys()
    assert variables["testid"]["includeAll"] is False  # a run is one testid: the link's var-testid selects it
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Virtual users", "Request rate", "p95 latency per request", "p99 latency per request",
            "Errors by status", "Checks", "Data sent / received"} <= titles


def test_history_dashboard_has_the_analysis_panels():
    dashboard = DASHBOARDS["pipeline-history"]
    titles = {panel["title"] for panel in dashboard["panels"]}
    assert {"Verdict timeline", "p95 latency trend", "Stress: breaking point", "Spike: recovery time",
            "Chaos: injection vs recovery", "Soak: drift"} <= titles
    assert any("perf_events" in a.get("query", "") for a in dashboard["annotations"]["list"])


def test_substitute_escapes_like_grafana():
    query = "SELECT 1 FROM \"x\" WHERE \"testid\" = '${testid:raw}' AND \"t\" =~ /^${target:regex}$/ AND $timeFilter " \
            "GROUP BY time($__interval) LIMIT $__interval_ms"
    text = substitute(query, {"testid": "perf_smoke:manual__2026-01-01T00:00:00+00:00:smoke:try1",
                              "target": "a.b/c"}, 1000, 2000, interval_s=5)
    assert text == ("SELECT 1 FROM \"x\" WHERE \"testid\" = 'perf_smoke:manual__2026-01-01T00:00:00+00:00:smoke:try1'"
                    " AND \"t\" =~ /^a\\.b\\/c$/ AND time >= 1000ms and time <= 2000ms GROUP BY time(5s) LIMIT 5000")
    assert "=~ /^.*$/" in substitute("\"t\" =~ /^${target:regex}$/", {"target": None}, 0, 1)
    with pytest.raises(AssertionError):
        substitute("WHERE \"t\" = '$target'", {"target": "demo"}, 0, 1)

