"""Registers perfpipe with Airflow. The package itself (plugins/perfpipe) is excluded from plugin scanning by
.airflowignore and imported as a normal package."""

from airflow.plugins_manager import AirflowPlugin

from perfpipe.core.operators.links import GrafanaRunLink
from perfpipe.entry.trigger_check import TriggerCheckMiddleware


class PerfpipePlugin(AirflowPlugin):
    name = "perfpipe"
    # Known to the API server, so the k6 tasks' "Grafana: k6 run" button can be shown.
    operator_extra_links = [GrafanaRunLink()]
    # The API server's trigger and backfill of a perf DAG refuse bad Params with perfpipe's one-line-per-problem
    # message before Airflow's own jsonschema check (perfpipe.entry.trigger_check).
    fastapi_root_middlewares = [{"middleware": TriggerCheckMiddleware, "args": [], "kwargs": {},
                                 "name": "perfpipe trigger check"}]
