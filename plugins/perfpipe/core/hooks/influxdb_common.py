"""What InfluxDB access needs without Airflow: the connection settings and parallel queries.

perfpipe.core.hooks.influxdb's InfluxDBHook is an Airflow hook, and importing Airflow costs ~4 s: the CLI's
pre-flight, `stop` and the k6 command line use these pieces without paying it (the hook module re-exports them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_PORT = 8086
DEFAULT_CONN_ID = "perfpipe_influxdb"  # InfluxDBHook.default_conn_name


class Queryable(Protocol):
    """What queries_in_parallel needs of a hook (InfluxDBHook, or a test's stand-in)."""

    def query(self, query: str, params: dict[str, Any] | None = None) -> list[dict]: ...

    def execute(self, statement: str, params: dict[str, Any] | None = None) -> None: ...


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


def settings_from_connection(conn: Any, default_database: str = "k6") -> InfluxSettings:
    """InfluxSettings of an Airflow Connection: host/port (https when extra `ssl` is true), schema = database."""
    scheme = "https" if (conn.extra_dejson or {}).get("ssl") else "http"
    host = conn.host or "127.0.0.1"
    return InfluxSettings(url=f"{scheme}://{host}:{conn.port or DEFAULT_PORT}",
                          database=conn.schema or default_database, username=conn.login or None,
                          password=conn.password or None)


def queries_in_parallel(hook: Queryable, queries: list[str], params: dict[str, Any],
                        method: str = "GET") -> list[list[dict]]:
    """Each query's points, the queries run side by side (influxd scans each on its own core): a gate's
    independent scans cost the slowest one, not their sum. One client per query: a client is not shared
    across threads. method="POST" runs statements that write (SELECT ... INTO) and returns no points."""
    from concurrent.futures import ThreadPoolExecutor  # only the parallel path needs threads

    def run(client: Queryable, query: str) -> list[dict]:
        if method == "POST":
            client.execute(query, params)
            return []
        return client.query(query, params)

    if len(queries) < 2 or not getattr(hook, "parallel_safe", False):  # e.g. a test double: one at a time
        return [run(hook, q) for q in queries]
    with ThreadPoolExecutor(max_workers=len(queries), thread_name_prefix="influx-query") as pool:
        futures = [pool.submit(run, hook.copy(), q) for q in queries]
        return [f.result() for f in futures]
