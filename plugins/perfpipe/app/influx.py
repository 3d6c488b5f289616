"""perfpipe's InfluxDB: the hook with the settings perfpipe itself uses.

URL and database from config/perfpipe.yaml (PERFPIPE_INFLUXDB_URL / PERFPIPE_INFLUXDB_DB win), credentials from
PERFPIPE_INFLUXDB_USER / PERFPIPE_INFLUXDB_PASSWORD; inside Airflow the Connection `perfpipe_influxdb`, when
defined, replaces them, unless PERFPIPE_INFLUXDB_URL names an InfluxDB explicitly (tests, the CLI against a given
influxd). The password is registered with Airflow's log masker.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from perfpipe.app.config import settings
from perfpipe.app.targets import mask_secret
from perfpipe.core.hooks.influxdb_common import DEFAULT_CONN_ID, DEFAULT_PORT, InfluxSettings

if TYPE_CHECKING:
    from perfpipe.core.hooks.influxdb import InfluxDBHook

CONN_ID = DEFAULT_CONN_ID


def influx_settings(conn_id: str = CONN_ID) -> InfluxSettings:
    conf = settings()["influxdb"]
    url, database = conf["url"], conf["database"]
    username = os.environ.get("PERFPIPE_INFLUXDB_USER")
    password = os.environ.get("PERFPIPE_INFLUXDB_PASSWORD")
    conn = _airflow_connection(conn_id)
    if conn is not None:
        scheme = "https" if (conn.extra_dejson or {}).get("ssl") else "http"
        if conn.host:
            url = f"{scheme}://{conn.host}:{conn.port or DEFAULT_PORT}"
        database = conn.schema or database
        username, password = conn.login or username, conn.password or password
    if password:
        mask_secret(password)
    return InfluxSettings(url=url, database=database, username=username, password=password)


def influxdb_hook(timeout_s: float = 30, conn_id: str = CONN_ID) -> InfluxDBHook:
    """The hook every perfpipe task, gate and CLI command uses."""
    # Here, not at the top: an Airflow hook imports Airflow (~4 s), which the CLI's pre-flight and `stop` skip.
    from perfpipe.core.hooks.influxdb import InfluxDBHook

    return InfluxDBHook(conn_id, settings=influx_settings(conn_id), timeout_s=timeout_s)


def _airflow_connection(conn_id: str) -> Any:
    if "PERFPIPE_INFLUXDB_URL" in os.environ:
        return None  # an explicit URL wins (tests, the CLI against a given influxd)
    try:
        # Only inside Airflow: the CLI and tests without a metadata DB fall back to config/env.
        from airflow.sdk import Connection

        return Connection.get(conn_id)
    except Exception:  # not defined, or not inside a task: fall back to config/env
        return None
