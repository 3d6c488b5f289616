"""perfpipe's setup of one k6 run (perfpipe.core.k6.run.RunSetup), passed to the k6 operators by its DAGs.

The testid is unique per DAG run, stage and try (and not yet used by samples in InfluxDB); the reports go to
perfpipe's report folder; secret header values are resolved now, at run time; k6 may reach the allowlist's
networks only; the time limit and the outputs come from config/perfpipe.yaml; InfluxDB from perfpipe.app.influx.
"""

from __future__ import annotations

from typing import Any

from perfpipe.app.config import prometheus_output, run_timeout_s
from perfpipe.app.influx import influxdb_hook
from perfpipe.app.results import unused_testid
from perfpipe.app.stage import blocked_networks, report_dir_for
from perfpipe.app.targets import resolve_header_values
from perfpipe.core.hooks.influxdb import InfluxDBHook
from perfpipe.core.k6.command import testid_for
from perfpipe.core.k6.run import RunSpec
from perfpipe.core.model.plan import TestPlan


def perfpipe_run_setup(plan: TestPlan, context: dict[str, Any], hook: InfluxDBHook) -> RunSpec:
    ti = context["ti"]
    influx = influxdb_hook(conn_id=hook.influxdb_conn_id)
    testid = unused_testid(influx, testid_for(ti.dag_id, ti.run_id, plan.test_type, ti.try_number))
    return RunSpec(testid=testid, report_dir=report_dir_for(ti.dag_id, ti.run_id, plan.test_type),
                   headers=resolve_header_values(plan.target.get("headers") or {}),
                   blocked_networks=blocked_networks(plan), timeout_s=run_timeout_s(plan), influx=influx.settings,
                   prometheus=prometheus_output())
