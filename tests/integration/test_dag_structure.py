"""DagBag import and DAG structure: task ids, edges, schedules and the Params form."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

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


def test_every_dag_runs_on_its_configured_schedule(dagbag):
    """The DAG files hard-code no schedule: each perf_<type> takes perfpipe.yaml's `schedules` entry, a valid cron
    expression, or none (manual only)."""
    from croniter import croniter

    from perfpipe.app.config import read_config_yaml

    configured = read_config_yaml("perfpipe.yaml")["schedules"]
    for test_type in TEST_TYPES:
        schedule = dagbag.dags[f"perf_{test_type}"].schedule
        assert schedule == configured.get(test_type), test_type
        assert schedule is None or croniter.is_valid(schedule), (test_type, schedule)


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


# Run in a fresh interpreter: records every connect, name lookup and child process while a DAG file is parsed.
PARSE_PROBE = """
import json, runpy, socket, subprocess, sys
sys.path.insert(0, "plugins")
calls = {"connect": [], "resolve": [], "subprocess": []}
real_connect, real_getaddrinfo, real_popen_init = socket.socket.connect, socket.getaddrinfo, subprocess.Popen.__init__
def connect(self, address):
    calls["connect"].append(repr(address))
    return real_connect(self, address)
def getaddrinfo(host, *args, **kwargs):
    calls["resolve"].append(repr(host))
    return real_getaddrinfo(host, *args, **kwargs)
def popen_init(self, args, *rest, **kwargs):
    argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
    if argv[:2] != ["file", "-b"]:  # the stdlib's platform.architecture(), which croniter calls at import
        calls["subprocess"].append(argv)
    return real_popen_init(self, args, *rest, **kwargs)
socket.socket.connect, socket.getaddrinfo, subprocess.Popen.__init__ = connect, getaddrinfo, popen_init
namespace = runpy.run_path(sys.argv[1])
dags = sorted(getattr(v, "dag_id", "") for v in namespace.values() if type(v).__name__ == "DAG")
heavy = sorted(m for m in ("influxdb", "requests", "perfpipe.app.results", "perfpipe.core.k6.runner")
               if m in sys.modules)
print(json.dumps({"dags": dags, "heavy": heavy, **calls}))
"""


def test_parsing_a_dag_file_touches_no_network_no_k6_and_no_influxdb():
    """Top-level DAG code stays thin: parsing builds the DAG without a connection, a name lookup, a child process
    (k6 inspect, docker) or the InfluxDB/results modules. (How long it takes is a bench row, not a test.)"""
    root = Path(__file__).resolve().parents[2]
    for dag_file, dag_id in (("dags/perf_load.py", "perf_load"), ("dags/perf_pipeline.py", "perf_pipeline"),
                             ("dags/example_k6_operator.py", "example_k6_operator")):
        out = subprocess.run([sys.executable, "-c", PARSE_PROBE, dag_file], capture_output=True, text=True,
                             check=True, cwd=str(root)).stdout.splitlines()
        probe = json.loads(out[-1])
        assert probe["dags"] == [dag_id], dag_file  # the file did build its DAG: the probe saw a real parse
        assert (probe["connect"], probe["resolve"], probe["subprocess"], probe["heavy"]) == ([], [], [], []), dag_file


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
