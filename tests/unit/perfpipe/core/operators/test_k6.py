"""perfpipe.core.operators.k6: K6Operator takes its plan as an XComArg (or data) and runs it with local k6."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from airflow.sdk import DAG, task

from perfpipe.app.config import build_plan
from perfpipe.core.hooks.influxdb import InfluxSettings
from perfpipe.core.k6.run import RunSpec
from perfpipe.core.model.plan import TestPlan
from perfpipe.core.operators.k6 import K6Operator, local_invocation
from perfpipe.core.operators.links import GrafanaRunLink

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def plan(api_target):
    return build_plan("smoke", api_target, "quick", allowed_addresses=("127.0.0.1",))


def test_the_plan_is_a_template_field_and_an_xcomarg_gives_the_dependency(plan):
    with DAG(dag_id="unit_k6_xcomarg", schedule=None, start_date=START) as dag:
        @task
        def make_plan() -> dict:
            return plan.to_json_data()

        made = make_plan()
        run = K6Operator(task_id="run_k6", plan=made.operator.output)  # no `>>`: the XComArg is the edge
    assert "plan" in K6Operator.template_fields
    assert dag.task_dict["make_plan"].downstream_task_ids == {"run_k6"}
    assert run.upstream_task_ids == {"make_plan"}
    assert isinstance(run.operator_extra_links[0], GrafanaRunLink)


def test_a_plan_given_as_data_is_checked_and_jinja_leaves_its_templates_alone(plan):
    templated = plan.model_copy(update={"target": dict(plan.target, requests=[
        dict(plan.target["requests"][0], path="/api/items/{{int:1:9}}")])})
    with DAG(dag_id="unit_k6_data", schedule=None, start_date=START):
        op = K6Operator(task_id="run_k6", plan=templated.to_json_data())
    assert isinstance(op.plan, TestPlan) and op.plan == templated
    assert op.render_template(op.plan, {}) == templated  # not rendered as Jinja
    with pytest.raises(Exception):
        K6Operator(task_id="bad", plan={"test_type": "smoke"})


def test_only_the_local_runtime(plan):
    with pytest.raises(ValueError, match="K6DockerOperator"):
        K6Operator(task_id="run_k6", plan=plan, runtime="docker")
    assert K6Operator(task_id="run_k6", plan=plan, influxdb_conn_id="mine").influxdb_conn_id == "mine"


def test_local_invocation_uses_the_spec(plan, tmp_path):
    spec = RunSpec(testid="t-9", report_dir=tmp_path, headers={"X": "1"}, blocked_networks=["10.0.0.0/8"],
                   timeout_s=30, influx=InfluxSettings("http://127.0.0.1:8086", "k6"))
    invocation = local_invocation(plan, spec)
    assert invocation.argv[1:3] == ["run", str(plan_script(plan))]
    assert "testid=t-9" in invocation.argv and "10.0.0.0/8" in invocation.argv
    assert "influxdb=http://127.0.0.1:8086/k6" in invocation.argv
    assert invocation.env["PERFPIPE_RUN_CONFIG"] == f"{tmp_path}/run-config.json"


def plan_script(plan):
    from perfpipe.core.paths import scripts_dir

    return scripts_dir() / f"{plan.test_type}.js"


def test_on_kill_before_execute_does_nothing(plan):
    K6Operator(task_id="run_k6", plan=plan).on_kill()
