"""Every test type, quick profile, against the demo target, through Airflow's dag.test(): real k6, influxd."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from perfpipe import TEST_TYPES
from perfpipe.app.results import collision_allowance

pytestmark = pytest.mark.integration


def run_dag(dagbag, dag_id: str, conf: dict, logical_date: datetime | None = None):
    logical_date = logical_date or datetime.now(timezone.utc).replace(microsecond=0)
    dag = dagbag.dags[dag_id]
    # Every Param explicitly: dag.test() leaves the previous call's conf in the shared DAG object's params.
    conf = {"inline_target": None, "overrides": {}, **conf}
    return dag.test(logical_date=logical_date, run_after=logical_date, run_conf=conf)


@pytest.mark.parametrize("test_type", TEST_TYPES)
def test_each_test_type_runs_end_to_end(stack, test_type):
    from perfpipe.app.results import read_results

    influx = stack["influx"]
    dag_run = run_dag(stack["dagbag"], f"perf_{test_type}", {"target": "demo", "profile": "quick"})

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states
    [result] = read_results(influx, f"perf_{test_type}", dag_run.run_id)
    assert result.test_type == test_type and result.target == "demo"
    assert result.verdict in ("pass", "warn"), result.checks
    assert result.metrics["metrics_complete"] is True  # stored == k6's count, up to the collision allowance
    expected, stored = result.metrics["samples_expected"], result.metrics["samples_stored"]
    assert expected - stored <= collision_allowance(expected)
    # The raw k6 samples are in InfluxDB under the run's testid, with test_type and target tags.
    [raw] = influx.query('SELECT count("value") AS n FROM "http_reqs" WHERE "testid" = $t AND '
                         '"test_type" = $type AND "target" = \'demo\'', {"t": result.testid, "type": test_type})
    assert raw["n"] == result.metrics["samples_stored"] > 0
    assert result.testid.startswith(f"perf_{test_type}:{dag_run.run_id}:{test_type}:try")
