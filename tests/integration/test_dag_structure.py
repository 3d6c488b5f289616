"""DagBag import and DAG structure: task ids, edges, schedules and the Params form."""

from __future__ import annotations

import copy
import subprocess
import sys
import pytest

from perfpipe import TEST_TYPES

STAGE_EDGES = {
    "validate": {"run_k6", "evaluate"},
    "run_k6": {"evaluate"},
    "evaluate": {"record"},
    "record": {"verdict"},
    "verdict": set(),
}


def test_dagbag_imports_every_dag_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {f"perf_{t}" for t in TEST_TYPES} <= set(dagbag.dags)


@pytest.mark.parametrize("test_type", TEST_TYPES)
def test_test_dag_structure(dagbag, test_type):
    dag = dagbag.dags[f"perf_{test_type}"]
    assert {t.task_id: set(t.downstream_task_ids) for t in dag.tasks} == STAGE_EDGES
    assert dag.catchup is False
    chaos = {"chaos_scenario"} if test_type == "chaos" else set()
    assert set(dag.params.keys()) == {"target", "inline_target", "profile", "overrides"} | chaos
    assert dag.task_dict["run_k6"].execution_timeout.total_seconds() > 0


def test_schedules_follow_the_test_matrix(dagbag):
    expected = {"smoke": "0 * * * *", "load": "0 2 * * 1", "stress": "0 3 1 * *", "chaos": "0 3 15 * *",
                "soak": "0 1 1 1,4,7,10 *", "spike": None}
    assert {t: dagbag.dags[f"perf_{t}"].schedule for t in expected} == expected


@pytest.mark.parametrize("conf", [
    {"profile": "huge"},
    {"target": "not-configured"},
    {"overrides": {"vus": 0}},
    {"overrides": {"vus": "many"}},
    {"overrides": {"bogus": 1}},
    {"overrides": {"thresholds.p95_ms": "fast"}},
    {"inline_target": {"requests": []}},
])
def test_params_schema_refuses_bad_values_before_any_task(dagbag, conf):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags["perf_smoke"].params)
    with pytest.raises(ParamValidationError):
        params.update(conf)  # validates each value as the UI form and the REST API do
        params.validate()


def test_valid_params_pass_the_schema(dagbag):
    params = copy.deepcopy(dagbag.dags["perf_smoke"].params)
    params.update({"profile": "quick", "overrides": {"vus": 3, "load.duration": "30s", "thresholds.p95_ms": 250}})
    assert params.validate()["overrides"]["vus"] == 3


def test_dag_files_parse_fast_without_network_or_heavy_imports(tmp_path):
    """Top-level DAG code stays thin: no influxdb client, requests or k6 work at parse time."""
    code = ("import sys, time; sys.path.insert(0, 'plugins'); t = time.monotonic(); "
            "import runpy; runpy.run_path('dags/perf_load.py'); "
            "print(time.monotonic() - t); "
            "print(sorted(m for m in ('influxdb', 'requests', 'perfpipe.app.results', 'perfpipe.core.k6.runner') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2])).stdout.splitlines()
    assert out[-1] == "[]"


def test_k6_tasks_get_their_targets_one_slot_pool(stack, tmp_path):
    """The cluster policy routes run_k6 into perf_target_<target> from the run's conf; other tasks stay put."""
    from datetime import datetime, timezone

    from airflow.models.pool import Pool

    from perfpipe.app.pools import sync_pools

    assert {"perf_target_demo", "perf_target_inline"} <= set(sync_pools())
    assert Pool.get_pool("perf_target_demo").slots == 1
    date = datetime(2026, 3, 1, tzinfo=timezone.utc)
    dag_run = stack["dagbag"].dags["perf_smoke"].test(
        logical_date=date, run_after=date,
        run_conf={"target": "demo", "inline_target": None, "profile": "quick",
                  "overrides": {"duration": "1s", "vus": 1}})
    pools = {ti.task_id: ti.pool for ti in dag_run.get_task_instances()}
    assert pools["run_k6"] == "perf_target_demo"
    assert pools["validate"] == "default_pool"


def test_k6_task_links_to_grafana_for_its_testid(stack):
    from datetime import datetime, timezone
    from urllib.parse import parse_qs, urlsplit

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    date = datetime(2026, 3, 2, tzinfo=timezone.utc)
    dag_run = stack["dagbag"].dags["perf_smoke"].test(
        logical_date=date, run_after=date,
        run_conf={"target": "demo", "inline_target": None, "profile": "quick",
                  "overrides": {"duration": "1s", "vus": 1}})
    with create_session() as session:
        link = session.query(XComModel.value).filter(
            XComModel.dag_id == "perf_smoke", XComModel.run_id == dag_run.run_id,
            XComModel.task_id == "run_k6", XComModel.key == "_link_GrafanaRunLink").scalar()
        testid = session.query(XComModel.value).filter(
            XComModel.dag_id == "perf_smoke", XComModel.run_id == dag_run.run_id,
            XComModel.task_id == "run_k6", XComModel.key == "return_value").scalar()
    link = link if isinstance(link, str) else __import__("json").loads(link)
    testid = (testid if isinstance(testid, dict) else __import__("json").loads(testid))["testid"]
    parts = urlsplit(link)
    assert parts.path == "/d/perfpipe-k6-run/k6-run"
    query = parse_qs(parts.query)
    assert query["var-testid"] == [testid]
    assert int(query["from"][0]) < int(query["to"][0])
