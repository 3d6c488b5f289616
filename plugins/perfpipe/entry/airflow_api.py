"""A small client for the Airflow 3 REST API (`/api/v2`): trigger a perf DAG, follow its run, stop it.

Authentication (Airflow 3 uses JWTs, never basic auth on /api/v2):
- a token given directly (`--airflow-token` / PERFPIPE_AIRFLOW_TOKEN), or
- username/password exchanged for a token at `POST {base}/auth/token` (JSON {"username", "password"} ->
  201 {"access_token"}); the simple auth manager (`airflow standalone`) serves it, FAB's auth manager serves the
  same route. An expired token is renewed once per request when credentials are known.
- neither: the API is tried without a token, then `GET {base}/auth/token`, which hands out a token when the
  simple auth manager runs with `simple_auth_manager_all_admins = True`.

Pure helpers (URLs, payloads, run ids, error texts) are separate from the HTTP calls so they can be tested alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

API_PREFIX = "/api/v2"
TOKEN_PATH = "/auth/token"
HEALTH_PATH = f"{API_PREFIX}/monitor/health"
# Run states after which nothing more happens (queued/running are the others).
FINISHED_RUN_STATES = ("success", "failed")
ACTIVE_RUN_STATES = ("queued", "running")
FINISHED_TASK_STATES = ("success", "failed", "skipped", "upstream_failed", "removed")
PAGE_LIMIT = 100
MAX_PAGES = 20

ENV_USER, ENV_PASSWORD, ENV_TOKEN = "PERFPIPE_AIRFLOW_USER", "PERFPIPE_AIRFLOW_PASSWORD", "PERFPIPE_AIRFLOW_TOKEN"


class AirflowAPIError(Exception):
    """An answer of the Airflow API that is not a success (status 0: Airflow could not be reached)."""

    def __init__(self, status: int, message: str, method: str = "", url: str = ""):
        self.status = status
        self.message = message
        self.method = method
        self.url = url
        where = f"{method} {url}: " if method else ""
        super().__init__(f"{where}HTTP {status}: {message}" if status else f"{where}{message}")


# --- pure pieces ---------------------------------------------------------------------------------------------

def normalize_base_url(url: str) -> str:
    """`http://127.0.0.1:8080/` -> `http://127.0.0.1:8080`; refuses anything that is not an http(s) URL."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--airflow-url: expected http(s)://host:port, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"--airflow-url: no query or fragment allowed, got {url!r}")
    return url.rstrip("/")


def api_url(base_url: str, *segments: str, query: dict[str, Any] | None = None) -> str:
    """`{base}/api/v2/<segment>/<segment>...`, each segment percent-encoded on its own.

    Run ids carry `:` and `+` (manual__2026-01-05T00:00:00+00:00): quoted, so a `+` never turns into a space and
    a segment never splits the path.
    """
    path = "/".join(quote(str(s), safe="") for s in segments)
    url = f"{normalize_base_url(base_url)}{API_PREFIX}" + (f"/{path}" if path else "")
    if query:
        url += "?" + urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
    return url


def dag_run_url(base_url: str, dag_id: str, run_id: str | None = None, *more: str,
                query: dict[str, Any] | None = None) -> str:
    segments = ["dags", dag_id, "dagRuns"] + ([run_id] if run_id is not None else []) + list(more)
    return api_url(base_url, *segments, query=query)


def iso(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("a logical date must be timezone-aware")
    return value.isoformat()


def trigger_payload(conf: dict[str, Any], logical_date: datetime, run_id: str) -> dict[str, Any]:
    """The body of `POST /dags/{dag_id}/dagRuns`.

    `logical_date` is required by Airflow 3 (it may be null there; ours never is). `run_id`: the attempt's own
    (perfpipe.app.run_identity.run_id_for), the same shape as an in-process run's. `conf` is validated against the
    DAG's Params (JSON schema) by the API: a refusal is HTTP 400.
    """
    return {"dag_run_id": run_id, "logical_date": iso(logical_date), "run_after": iso(logical_date), "conf": conf}


def error_message(body: Any, fallback: str = "") -> str:
    """The human part of an API error body: FastAPI's `detail` (a string, or a list of pydantic errors)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if detail is not None:
        return str(detail)
    return fallback or (str(body) if body else "")


@dataclass(frozen=True)
class Credentials:
    token: str | None = None
    username: str | None = None
    password: str | None = None

    @property
    def can_login(self) -> bool:
        return bool(self.username and self.password is not None)


def credentials_from(token: str | None = None, username: str | None = None, password: str | None = None,
                     env: dict[str, str] | None = None) -> Credentials:
    """Flags first, then PERFPIPE_AIRFLOW_TOKEN / PERFPIPE_AIRFLOW_USER / PERFPIPE_AIRFLOW_PASSWORD."""
    env = os.environ if env is None else env
    return Credentials(token=token or env.get(ENV_TOKEN) or None,
                       username=username or env.get(ENV_USER) or None,
                       password=password if password is not None else env.get(ENV_PASSWORD))


# --- HTTP ----------------------------------------------------------------------------------------------------

class AirflowClient:
    """The few Airflow REST API calls perfpipe needs. Every call has a timeout; nothing retries forever."""

    def __init__(self, base_url: str, credentials: Credentials | None = None, timeout_s: float = 30):
        import requests  # requests for the REST calls only: DAG parsing and the trigger check never load it

        self.base_url = normalize_base_url(base_url)
        self.credentials = credentials or Credentials()
        self.timeout_s = timeout_s
        self._session = requests.Session()
        self._token: str | None = self.credentials.token

    # auth
    def login(self) -> str:
        """Exchange username/password for a JWT (`POST /auth/token`)."""
        if not self.credentials.can_login:
            raise AirflowAPIError(401, "Airflow asks for credentials: pass --airflow-user/--airflow-password "
                                       f"(or {ENV_USER}/{ENV_PASSWORD}) or --airflow-token ({ENV_TOKEN})")
        body = self._send("POST", self.base_url + TOKEN_PATH, json={"username": self.credentials.username,
                                                                    "password": self.credentials.password},
                          auth=False)
        self._token = _access_token(body, self.base_url + TOKEN_PATH)
        return self._token

    def _token_without_credentials(self) -> str:
        """`GET /auth/token`: a token for everyone when the simple auth manager runs with all_admins."""
        try:
            body = self._send("GET", self.base_url + TOKEN_PATH, auth=False)
        except AirflowAPIError as exc:
            raise AirflowAPIError(401, "Airflow asks for credentials: pass --airflow-user/--airflow-password "
                                       f"(or {ENV_USER}/{ENV_PASSWORD}) or --airflow-token ({ENV_TOKEN})",
                                  exc.method, exc.url) from None
        self._token = _access_token(body, self.base_url + TOKEN_PATH)
        return self._token

    def request(self, method: str, url: str, json: Any = None) -> Any:
        """One API call; on 401 get a (new) token once and repeat it."""
        if self._token is None and self.credentials.can_login:
            self.login()
        try:
            return self._send(method, url, json=json)
        except AirflowAPIError as exc:
            if exc.status != 401:
                raise
        if self.credentials.can_login:
            self.login()
        elif self.credentials.token:
            raise AirflowAPIError(401, "Airflow refused the token (expired or for another instance)", method, url)
        else:
            self._token_without_credentials()
        return self._send(method, url, json=json)

    def _send(self, method: str, url: str, json: Any = None, auth: bool = True) -> Any:
        import requests  # requests for the REST calls only: DAG parsing and the trigger check never load it

        headers = {"Accept": "application/json"}
        if auth and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self._session.request(method, url, json=json, headers=headers, timeout=self.timeout_s,
                                             allow_redirects=False)
        except requests.RequestException as exc:
            raise AirflowAPIError(0, f"Airflow is not reachable: {exc}", method, url) from None
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {"detail": response.text[:500]}
        if response.status_code >= 300:
            raise AirflowAPIError(response.status_code, error_message(body, response.reason or ""), method, url)
        return body

    # endpoints
    def health(self) -> dict[str, Any]:
        return self._send("GET", self.base_url + HEALTH_PATH, auth=False)

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        return self.request("GET", api_url(self.base_url, "dags", dag_id))

    def set_paused(self, dag_id: str, paused: bool) -> dict[str, Any]:
        return self.request("PATCH", api_url(self.base_url, "dags", dag_id, query={"update_mask": "is_paused"}),
                            json={"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any], logical_date: datetime, run_id: str) -> dict[str, Any]:
        return self.request("POST", dag_run_url(self.base_url, dag_id),
                            json=trigger_payload(conf, logical_date, run_id))

    def get_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", dag_run_url(self.base_url, dag_id, run_id))

    def runs_at(self, dag_id: str, logical_date: datetime) -> list[dict[str, Any]]:
        """The runs of a DAG with exactly that logical date (at most one: Airflow keeps it unique)."""
        stamp = iso(logical_date)
        body = self.request("GET", dag_run_url(self.base_url, dag_id, query={
            "logical_date_gte": stamp, "logical_date_lte": stamp, "limit": PAGE_LIMIT}))
        return list(body.get("dag_runs") or [])

    def delete_run(self, dag_id: str, run_id: str) -> None:
        self.request("DELETE", dag_run_url(self.base_url, dag_id, run_id))

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> dict[str, Any]:
        """PATCH the run's state (`failed` stops it: Airflow SIGTERMs its running tasks)."""
        return self.request("PATCH", dag_run_url(self.base_url, dag_id, run_id, query={"update_mask": "state"}),
                            json={"state": state})

    def get_pool(self, name: str) -> dict[str, Any]:
        return self.request("GET", api_url(self.base_url, "pools", name))

    def create_pool(self, name: str, slots: int, description: str) -> dict[str, Any]:
        return self.request("POST", api_url(self.base_url, "pools"),
                            json={"name": name, "slots": slots, "description": description,
                                  "include_deferred": False})

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        instances: list[dict[str, Any]] = []
        for page in range(MAX_PAGES):
            body = self.request("GET", dag_run_url(self.base_url, dag_id, run_id, "taskInstances", query={
                "limit": PAGE_LIMIT, "offset": page * PAGE_LIMIT}))
            batch = list(body.get("task_instances") or [])
            instances += batch
            if len(batch) < PAGE_LIMIT or len(instances) >= int(body.get("total_entries") or 0):
                break
        return instances


def _access_token(body: Any, url: str) -> str:
    token = body.get("access_token") if isinstance(body, dict) else None
    if not token:
        raise AirflowAPIError(0, f"no access_token in the answer of {url}")
    return str(token)


def task_state(instance: dict[str, Any]) -> str:
    return str(instance.get("state") or "none")
