"""InfluxDB 1.x access: where results live and gates read from.

Credentials come from the Airflow Connection `perfpipe_influxdb` (when running inside Airflow and defined) or from
PERFPIPE_INFLUXDB_USER / PERFPIPE_INFLUXDB_PASSWORD; the URL and database from config/perfpipe.yaml or env.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from perfpipe.core.errors import InfrastructureError

CONN_ID = "perfpipe_influxdb"


@dataclass(frozen=True)
class InfluxSettings:
    url: str
    database: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def write_url(self) -> str:
        """The URL k6 writes to (credentials travel in K6_INFLUXDB_USERNAME/PASSWORD, not here)."""
        return f"{self.url.rstrip('/')}/{self.database}"


def influx_settings() -> InfluxSettings:
    from perfpipe.app.config import settings

    conf = settings()["influxdb"]
    url, database = conf["url"], conf["database"]
    username = os.environ.get("PERFPIPE_INFLUXDB_USER")
    password = os.environ.get("PERFPIPE_INFLUXDB_PASSWORD")
    conn = _airflow_connection()
    if conn is not None:
        scheme = "https" if (conn.extra_dejson or {}).get("ssl") else "http"
        if conn.host:
            url = f"{scheme}://{conn.host}:{conn.port or 8086}"
        database = conn.schema or database
        username, password = conn.login or username, conn.password or password
    if password:
        from perfpipe.app.targets import mask_secret

        mask_secret(password)
    return InfluxSettings(url=url, database=database, username=username, password=password)


def _airflow_connection():
    if "PERFPIPE_INFLUXDB_URL" in os.environ:
        return None  # an explicit URL wins (tests, the CLI against a given influxd)
    try:
        from airflow.sdk import Connection

        return Connection.get(CONN_ID)
    except Exception:  # not defined, or not inside a task: fall back to config/env
        return None


class InfluxDBHook:
    """Thin wrapper over influxdb.InfluxDBClient with perfpipe's error reporting."""

    def __init__(self, conf: InfluxSettings | None = None, timeout_s: float = 30):
        self.settings = conf or influx_settings()
        self.timeout_s = timeout_s
        self._client = None

    def get_conn(self):
        if self._client is None:
            from influxdb import InfluxDBClient

            parts = urlsplit(self.settings.url)
            self._client = InfluxDBClient(
                host=parts.hostname, port=parts.port or 8086, username=self.settings.username,
                password=self.settings.password, database=self.settings.database,
                ssl=parts.scheme == "https", verify_ssl=parts.scheme == "https", timeout=self.timeout_s)
        return self._client

    def check_available(self) -> None:
        """Raise InfrastructureError unless InfluxDB answers and the database exists (created if missing)."""
        try:
            client = self.get_conn()
            client.ping()
            names = {d["name"] for d in client.get_list_database()}
            if self.settings.database not in names:
                client.create_database(self.settings.database)
        except Exception as exc:
            raise InfrastructureError(
                f"InfluxDB at {self.settings.url} (database {self.settings.database!r}) is not reachable: "
                f"{exc}. Start it with `make influxdb` or set PERFPIPE_INFLUXDB_URL.") from None

    def query(self, query: str, params: dict[str, Any] | None = None) -> list[dict]:
        """Points of the first series (InfluxQL with bind parameters)."""
        try:
            result = self.get_conn().query(query, bind_params=params or {}, epoch="ms")
        except Exception as exc:
            raise InfrastructureError(f"InfluxDB query failed ({self.settings.url}): {exc}") from None
        return list(result.get_points())

    def write(self, points: list[dict], time_precision: str = "ms") -> None:
        try:
            ok = self.get_conn().write_points(points, time_precision=time_precision)
        except Exception as exc:
            raise InfrastructureError(f"InfluxDB write failed ({self.settings.url}): {exc}") from None
        if not ok:
            raise InfrastructureError(f"InfluxDB refused the write ({self.settings.url})")

    def execute(self, statement: str, params: dict[str, Any] | None = None) -> None:
        try:
            self.get_conn().query(statement, bind_params=params or {}, method="POST")
        except Exception as exc:
            raise InfrastructureError(f"InfluxDB statement failed ({self.settings.url}): {exc}") from None


def queries_in_parallel(hook: InfluxDBHook, queries: list[str], params: dict[str, Any],
                        method: str = "GET") -> list[list[dict]]:
    """Each query's points, the queries run side by side (influxd scans each on its own core): a gate's
    independent scans cost the slowest one, not their sum. One client per query: a client is not shared
    across threads. method="POST" runs statements that write (SELECT ... INTO) and returns no points."""
    from concurrent.futures import ThreadPoolExecutor

    def run(client: InfluxDBHook, query: str) -> list[dict]:
        if method == "POST":
            client.execute(query, params)
            return []
        return client.query(query, params)

    if len(queries) < 2 or type(hook) is not InfluxDBHook:  # a test double: one at a time
        return [run(hook, q) for q in queries]
    with ThreadPoolExecutor(max_workers=len(queries), thread_name_prefix="influx-query") as pool:
        futures = [pool.submit(run, InfluxDBHook(hook.settings, hook.timeout_s), q) for q in queries]
        return [f.result() for f in futures]
