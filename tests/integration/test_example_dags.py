"""Every example DAG (dags/example_*.py) runs as a user would run it: dag.test() with real k6 and influxd.

The examples use perfpipe's operators with their defaults (no perfpipe run setup injected): k6 writes to the
InfluxDB of the Airflow Connection `perfpipe_influxdb`, given here as AIRFLOW_CONN_PERFPIPE_INFLUXDB.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.stem for p in (ROOT / "dags").glob("example_*.py"))


def test_there_are_examples():
    assert "example_k6_operator" in EXAMPLES


@pytest.mark.parametrize("dag_id", EXAMPLES)
def test_example_dag_runs(dag_id, stack, monkeypatch):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    from perfpipe.app.results import stored_request_count

    influx, demo, dagbag = stack["influx"], stack["demo"], stack["dagbag"]
    assert dagbag.import_errors == {}
    monkeypatch.setenv("AIRFLOW_CONN_PERFPIPE_INFLUXDB", json.dumps(
        {"conn_type": "influxdb", "host": "127.0.0.1", "port": int(influx.settings.url.rsplit(":", 1)[1]),
         "schema": influx.settings.database}))
    before = demo.requests()
    date = datetime(2026, 4, 1, tzinfo=timezone.utc)
    dag_run = dagbag.dags[dag_id].test(
        logical_date=date, run_after=date,
        run_conf={"base_url": demo.url, "profile": "quick", "duration": "3s", "vus": 1})  # a literal 127.0.0.1
    assert dag_run.state == DagRunState.SUCCESS, {ti.task_id: ti.state for ti in dag_run.get_task_instances()}

    with create_session() as session:
        value = session.query(XComModel.value).filter(
            XComModel.dag_id == dag_id, XComModel.run_id == dag_run.run_id, XComModel.task_id == "k6",
            XComModel.key == "return_value").scalar()
    run = value if isinstance(value, dict) else json.loads(value)
    assert run["exit_code"] == 0 and run["aborted"] is False
    assert run["testid"] == f"{dag_id}:{dag_run.run_id}:smoke:try1"
    assert Path(run["summary"]).is_file() and Path(run["log"]).is_file()
    assert demo.requests() > before  # the load reached the target
    assert stored_request_count(influx, run["testid"]) > 0  # and its samples the Connection's InfluxDB
