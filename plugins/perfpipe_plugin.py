"""Registers perfpipe with Airflow. The package itself (plugins/perfpipe) is excluded from plugin scanning by
.airflowignore and imported as a normal package."""

from airflow.plugins_manager import AirflowPlugin


class PerfpipePlugin(AirflowPlugin):
    name = "perfpipe"
