"""Registers perfpipe with Airflow. The package itself (plugins/perfpipe) is excluded from plugin scanning by
.airflowignore and imported as a normal package."""

from airflow.plugins_manager import AirflowPlugin

from perfpipe.core.operators.links import GrafanaRunLink


class PerfpipePlugin(AirflowPlugin):
    name = "perfpipe"
    # Known to the API server, so the k6 tasks' "Grafana: k6 run" button can be shown.
    operator_extra_links = [GrafanaRunLink()]
