"""Pure pieces of run control: Airflow REST URLs and payloads, API error texts, credentials, the REST client's
token handling (against a fake API on loopback)."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer

import pytest

from perfpipe.entry import airflow_api
from perfpipe.entry.airflow_api import (AirflowAPIError, AirflowClient, Credentials, api_url, credentials_from,
                                  dag_run_url, error_message, normalize_base_url, trigger_payload)

from unit.json_http import JsonHandler

DATE = datetime(2026, 1, 5, tzinfo=timezone.utc)
RUN_ID = "manual__2026-01-05T00:00:00+00:00"


# --- URLs and payloads ---------------------------------------------------------------------------------------

def test_base_url_is_normalized_and_checked():
    assert normalize_base_url(" http://127.0.0.1:8080/ ") == "http://127.0.0.1:8080"
    assert normalize_base_url("https://af.example/sub/") == "https://af.example/sub"
    for bad in ("127.0.0.1:8080", "ftp://x", "", "http://x/?a=1"):
        with pytest.raises(ValueError):
            normalize_base_url(bad)


def test_run_ids_are_quoted_as_one_path_segment():
    url = dag_run_url("http://127.0.0.1:8080/", "perf_chaos", RUN_ID)
    assert url == ("http://127.0.0.1:8080/api/v2/dags/perf_chaos/dagRuns/"
                   "manual__2026-01-05T00%3A00%3A00%2B00%3A00")
    assert "+" not in url.split("/dagRuns/")[1]  # a raw + could be read as a space
    assert dag_run_url("http://h:1", "d", "a/b", "taskInstances", query={"limit": 100, "offset": None}) == \
        "http://h:1/api/v2/dags/d/dagRuns/a%2Fb/taskInstances?limit=100"
    assert api_url("http://h:1/base", "dags", "perf_smoke") == "http://h:1/base/api/v2/dags/perf_smoke"


def test_trigger_payload_pins_run_id_logical_date_and_conf():
    conf = {"target": "demo", "profile": "quick", "overrides": {"duration": "40s"}}
    payload = trigger_payload(conf, DATE, RUN_ID)
    assert payload == {"dag_run_id": RUN_ID, "logical_date": "2026-01-05T00:00:00+00:00",
                       "run_after": "2026-01-05T00:00:00+00:00", "conf": conf}
    json.dumps(payload)  # what is sent is plain JSON


def test_trigger_payload_is_accepted_by_airflows_own_body_model():
    from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody

    body = TriggerDAGRunPostBody(**trigger_payload({"profile": "quick"}, DATE, RUN_ID))
    assert body.dag_run_id == RUN_ID and body.logical_date == DATE and body.conf == {"profile": "quick"}


def test_error_message_reads_fastapi_details():
    schema_refusal = {"detail": "Invalid input for param overrides: 0 is less than the minimum of 1"}
    assert error_message(schema_refusal) == schema_refusal["detail"]
    pydantic = {"detail": [{"type": "missing", "loc": ["body", "logical_date"], "msg": "Field required"},
                           {"loc": ["body"], "msg": "bad"}]}
    assert error_message(pydantic) == "logical_date: Field required; bad"
    assert error_message({}, "Not Found") == "Not Found"
    assert error_message("plain") == "plain"


def test_credentials_flags_win_over_environment():
    env = {"PERFPIPE_AIRFLOW_USER": "env-user", "PERFPIPE_AIRFLOW_PASSWORD": "env-pw",
           "PERFPIPE_AIRFLOW_TOKEN": "env-token"}
    assert credentials_from(env=env) == Credentials("env-token", "env-user", "env-pw")
    assert credentials_from("t", "u", "p", env=env) == Credentials("t", "u", "p")
    assert credentials_from(env={}) == Credentials(None, None, None)
    assert not Credentials(username="u").can_login and Credentials(username="u", password="").can_login


# --- the client against a fake Airflow on loopback -----------------------------------------------------------

class FakeAirflow(JsonHandler):
    """/auth/token hands out numbered tokens for admin/pw; /api/v2 wants the latest one."""

    tokens: list[str] = []
    requests: list[tuple[str, str, dict]] = []

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.requests.append((method, self.path, body))
        if self.path == "/auth/token" and method == "POST":
            if body != {"username": "admin", "password": "pw"}:
                return self._reply(401, {"detail": "Invalid credentials"})
            self.tokens.append(f"token-{len(self.tokens) + 1}")
            return self._reply(201, {"access_token": self.tokens[-1]})
        if self.headers.get("Authorization") != f"Bearer {self.tokens[-1] if self.tokens else ''}":
            return self._reply(401, {"detail": "Not authenticated"})
        if self.path.startswith("/api/v2/dags/perf_smoke/dagRuns") and method == "POST":
            if body["conf"].get("overrides", {}).get("vus") == 0:
                return self._reply(400, {"detail": "Invalid input for param overrides: 0 is less than the "
                                                   "minimum of 1"})
            return self._reply(200, {"dag_run_id": body["dag_run_id"], "state": "queued"})
        self._reply(404, {"detail": "not found"})

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")


@pytest.fixture
def fake_airflow():
    FakeAirflow.tokens, FakeAirflow.requests = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAirflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_client_logs_in_and_renews_an_expired_token(fake_airflow):
    client = AirflowClient(fake_airflow, Credentials(username="admin", password="pw"), timeout_s=5)
    run = client.trigger("perf_smoke", {"profile": "quick"}, DATE, RUN_ID)
    assert run == {"dag_run_id": RUN_ID, "state": "queued"}
    assert FakeAirflow.requests[0][:2] == ("POST", "/auth/token")
    FakeAirflow.tokens.append("token-rotated")  # the server no longer accepts ours: 401, login again, retry
    assert client.trigger("perf_smoke", {}, DATE, RUN_ID)["state"] == "queued"
    assert client._token == "token-3"


def test_client_reports_the_schema_refusal_and_bad_credentials(fake_airflow):
    client = AirflowClient(fake_airflow, Credentials(username="admin", password="pw"), timeout_s=5)
    with pytest.raises(AirflowAPIError) as refused:
        client.trigger("perf_smoke", {"overrides": {"vus": 0}}, DATE, RUN_ID)
    assert refused.value.status == 400 and "minimum of 1" in refused.value.message
    with pytest.raises(AirflowAPIError) as denied:
        AirflowClient(fake_airflow, Credentials(username="admin", password="nope"), timeout_s=5).get_dag("x")
    assert denied.value.status == 401 and "Invalid credentials" in denied.value.message
    with pytest.raises(AirflowAPIError) as anonymous:
        AirflowClient(fake_airflow, timeout_s=5).get_dag("x")
    assert anonymous.value.status == 401 and "--airflow-user" in anonymous.value.message


def test_unreachable_airflow_is_status_zero():
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(AirflowAPIError) as exc:
            AirflowClient(f"http://127.0.0.1:{port}", Credentials(token="t"), timeout_s=2).health()
    assert exc.value.status == 0 and "not reachable" in exc.value.message


def test_module_constants_agree_with_airflow():
    from airflow.utils.state import DagRunState

    assert set(airflow_api.FINISHED_RUN_STATES) | set(airflow_api.ACTIVE_RUN_STATES) == \
        {s.value for s in DagRunState}
