"""example_k6_operator: perfpipe's K6Operator in a DAG of your own.

A @task builds the plan with perfpipe (the target checked against the allowlist, the profile's shape, `k6
inspect` of the script) and returns it as XCom; K6Operator takes that XComArg as its `plan`, which also makes it
run after the task. k6 writes its samples to the InfluxDB of the Airflow Connection `perfpipe_influxdb`; the
summary, HTML report and k6.log land under PERFPIPE_REPORTS_DIR (else reports/).

The target is demo-like (the demo shop's read endpoints) at the `base_url` Param: PERFPIPE_EXAMPLE_BASE_URL, else
the demo on 127.0.0.1:8090. Parsing this file reads nothing but that variable.
"""

import os
from datetime import datetime, timezone

from airflow.sdk import DAG, Param, task

from perfpipe.core.operators.k6 import K6Operator

with DAG(
    dag_id="example_k6_operator",
    description="a @task builds a TestPlan, K6Operator runs it",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={
        "base_url": Param(os.environ.get("PERFPIPE_EXAMPLE_BASE_URL", "http://127.0.0.1:8090"), type="string",
                          description="the demo-like target (must pass the allowlist of config/perfpipe.yaml)"),
        "profile": Param("quick", type="string", enum=["quick", "standard"]),
        "duration": Param("10s", type="string", pattern=r"^[0-9]+[smh]$"),
        "vus": Param(2, type="integer", minimum=1, maximum=50),
    },
    tags=["perfpipe", "example"],
) as dag:

    @task
    def smoke_plan(**context) -> dict:
        # At task run time: parsing this file does not load perfpipe's config, checks or k6 modules.
        from perfpipe.app.stage import prepare_plan

        params = context["params"]
        target = {"name": "example", "base_url": params["base_url"], "requests": [
            {"name": "list_products", "method": "GET", "path": "/api/products?limit=20", "expect_status": 200},
            {"name": "get_product", "method": "GET", "path": "/api/products/{{int:1:100}}", "expect_status": 200}]}
        plan = prepare_plan("smoke", {"inline_target": target, "profile": params["profile"],
                                      "overrides": {"duration": params["duration"], "vus": params["vus"]}})
        return plan.to_json_data()

    K6Operator(task_id="k6", plan=smoke_plan())
