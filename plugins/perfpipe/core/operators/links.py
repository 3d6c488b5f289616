"""Operator extra link: the Grafana k6-run dashboard filtered to a task's testid and time range."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from airflow.sdk import BaseOperatorLink

DASHBOARD_UID = "perfpipe-k6-run"
DEFAULT_GRAFANA_URL = "http://127.0.0.1:3000"  # perfpipe's DAGs pass config/perfpipe.yaml `grafana.url`


def grafana_run_url(testid: str, started: datetime, ended: datetime | None,
                    grafana_url: str = DEFAULT_GRAFANA_URL) -> str:
    base = (grafana_url or DEFAULT_GRAFANA_URL).rstrip("/")
    query = {"var-testid": testid, "from": int(started.timestamp() * 1000) - 10_000,
             "to": int(ended.timestamp() * 1000) + 10_000 if ended else "now"}
    return f"{base}/d/{DASHBOARD_UID}/k6-run?{urlencode(query)}"


class GrafanaRunLink(BaseOperatorLink):
    """Airflow 3 evaluates links in the worker when the task ends and stores them; the k6 operators keep the
    URL of their run on themselves."""

    name = "Grafana: k6 run"

    def get_link(self, operator, *, ti_key) -> str:
        return getattr(operator, "grafana_url", "") or ""
