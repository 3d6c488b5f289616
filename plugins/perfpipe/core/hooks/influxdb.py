"""InfluxDB 1.x access: where results live and gates read from, shaped like an Airflow provider's hook.

`InfluxDBHook(influxdb_conn_id=..., settings=...)` reads no perfpipe config: given `settings`, it uses them;
otherwise it builds them from the Airflow Connection `influxdb_conn_id` (host, port, schema = database, login,
password, extra `{"ssl": true}`). perfpipe's own settings (config/perfpipe.yaml, PERFPIPE_INFLUXDB_* env, the
Connection only when no URL is set explicitly) are put together by perfpipe.app.influx.influxdb_hook().
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from perfpipe.core.errors import InfrastructureError
# Re-exported: the hook's settings and helpers live where importing them does not import Airflow (~4 s).
from perfpipe.core.hooks.influxdb_common import (DEFAULT_CONN_ID, DEFAULT_PORT, InfluxSettings,  # noqa: F401
                                                 queries_in_parallel, settings_from_connection)

class InfluxDBHook(BaseHook):
    """Thin wrapper over influxdb.InfluxDBClient with perfpipe's error reporting."""

    conn_name_attr = "influxdb_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "influxdb"
    hook_name = "InfluxDB 1.x (perfpipe)"
    parallel_safe = True  # copy() gives an independent client: queries_in_parallel may run its queries side by side

    def __init__(self, influxdb_conn_id: str = default_conn_name, settings: InfluxSettings | None = None,
                 timeout_s: float = 30):
        super().__init__()
        self.influxdb_conn_id = influxdb_conn_id
        self._settings = settings
        self.timeout_s = timeout_s
        self._client = None

    @property
    def settings(self) -> InfluxSettings:
        """The settings given, else those of the Connection `influxdb_conn_id` (looked up once)."""
        if self._settings is None:
            try:
                conn = self.get_connection(self.influxdb_conn_id)
            except Exception as exc:
                raise InfrastructureError(
                    f"no InfluxDB settings: Airflow Connection {self.influxdb_conn_id!r} is not available "
                    f"({exc})") from None
            self._settings = settings_from_connection(conn)
        return self._settings

    def get_conn(self):
        if self._client is None:
            # Imported on first use: parsing a DAG that names the hook does not load the client library.
            from influxdb import InfluxDBClient

            settings = self.settings
            parts = urlsplit(settings.url)
            self._client = InfluxDBClient(
                host=parts.hostname, port=parts.port or DEFAULT_PORT, username=settings.username,
                password=settings.password, database=settings.database,
                ssl=parts.scheme == "https", verify_ssl=parts.scheme == "https", timeout=self.timeout_s)
        return self._client

    def copy(self) -> "InfluxDBHook":
        """A hook with the same settings and its own client (a client is not shared across threads)."""
        return type(self)(self.influxdb_conn_id, settings=self.settings, timeout_s=self.timeout_s)

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
                f"{exc}. Start it (perfpipe: `make influxd-start`) or point the Connection or "
                "PERFPIPE_INFLUXDB_URL at one.") from None

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
