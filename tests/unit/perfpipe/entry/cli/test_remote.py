"""perfpipe.entry.cli.remote: a run in a running Airflow through its REST API, against a fake Airflow on
loopback that keeps its DAG runs, pools and task instances in memory (the stage results in InfluxDB are given)."""

from __future__ import annotations

import io
import json
import os
import threading
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from perfpipe.app import outcomes
from perfpipe.app.run_identity import home_tag
from perfpipe.entry.airflow_api import AirflowAPIError, AirflowClient, Credentials
from perfpipe.entry.cli import remote
from perfpipe.entry.cli.args import build_parser
from perfpipe.entry.cli.output import CliError

from unit.json_http import JsonHandler
from unit.stage_points import stage_result

DATE = datetime(2026, 1, 5, tzinfo=timezone.utc)
RUN_ID = "manual__2026-01-05T00:00:00+00:00"


class Airflow:
    """The state of the fake Airflow: DAGs, runs by (dag_id, run_id), pools, and what was asked of it."""

    def __init__(self):
        self.dags = {"perf_smoke": {"dag_id": "perf_smoke", "is_paused": False, "has_import_errors": False,
                                    "timetable_summary": "None"}}
        self.runs: dict[tuple[str, str], dict] = {}
        self.pools: dict[str, dict] = {}
        self.tasks: list[dict] = []
        self.refuse: str | None = None  # a trigger's 400 detail
        self.calls: list[tuple[str, str]] = []
        self.on_poll = lambda run: None  # how a run moves on each time it is read


class Handler(JsonHandler):
    airflow: Airflow

    def _handle(self, method: str) -> None:
        af = self.airflow
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[3:]]  # after /api/v2
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        af.calls.append((method, "/".join(parts)))
        if self.headers.get("Authorization") != "Bearer t":
            return self._reply(401, {"detail": "Not authenticated"})
        if parts[0] == "pools":
            if method == "POST":
                af.pools[body["name"]] = body
                return self._reply(201, body)
            return self._reply(200, af.pools[parts[1]]) if parts[1] in af.pools else self._reply(404)
        dag = af.dags.get(parts[1])
        if dag is None:
            return self._reply(404, {"detail": "DAG not found"})
        if len(parts) == 2:
            if method == "PATCH":
                dag.update(body)
            return self._reply(200, dag)
        if len(parts) == 3:
            if method == "GET":
                stamp = parse_qs(url.query)["logical_date_gte"][0]
                return self._reply(200, {"dag_runs": [r for (d, _), r in af.runs.items()
                                                      if d == parts[1] and r["logical_date"] == stamp]})
            if af.refuse:
                return self._reply(400, {"detail": af.refuse})
            if any(d == parts[1] and (r_id == body["dag_run_id"] or r["logical_date"] == body["logical_date"])
                   for (d, r_id), r in af.runs.items()):  # Airflow: one run per DAG and logical date
                return self._reply(409, {"detail": "exists"})
            run = {"dag_run_id": body["dag_run_id"], "logical_date": body["logical_date"], "state": "queued",
                   "conf": body["conf"]}
            af.runs[(parts[1], body["dag_run_id"])] = run
            return self._reply(200, run)
        run = af.runs.get((parts[1], parts[3]))
        if run is None:
            return self._reply(404, {"detail": "run not found"})
        if len(parts) == 5:
            return self._reply(200, {"task_instances": af.tasks, "total_entries": len(af.tasks)})
        if method == "DELETE":
            del af.runs[(parts[1], parts[3])]
            return self._reply(204)
        if method == "PATCH":
            run.update(body)
        else:
            af.on_poll(run)
        return self._reply(200, run)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")


@pytest.fixture
def airflow():
    state = Airflow()
    handler = type("BoundHandler", (Handler,), {"airflow": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def results(monkeypatch):
    """The perf_results points InfluxDB holds for the run (read by the live lines and the summary)."""
    points: list = []
    monkeypatch.setattr(remote, "read_results", lambda hook, dag_id, run_id: list(points))
    monkeypatch.setattr(outcomes, "read_results", lambda hook, dag_id, run_id: list(points))
    return points


def _client(airflow) -> AirflowClient:
    return AirflowClient(airflow.url, Credentials(token="t"), timeout_s=5)


def _args(airflow, *argv: str):
    return build_parser().parse_args([*argv, "--airflow-url", airflow.url, "--airflow-token", "t"])


def _smoke(verdict: str = "pass"):
    return stage_result(test_type="smoke", target="demo", verdict=verdict, testid="perf_smoke:r:smoke:try1",
                        checks=[], metrics_complete=True, report="", p95_ms=12.0)


def test_a_run_is_triggered_followed_and_summarized(airflow, results, capsys, monkeypatch):
    monkeypatch.setattr(remote, "POLL_INTERVAL_S", 0.01)
    polls = []

    def advance(run):
        polls.append(run["state"])
        if len(polls) == 2:
            airflow.tasks[:] = [{"task_id": "run_k6", "state": "success", "start_date": "2026-01-05T00:00:01Z"}]
            results.append(_smoke())
        if len(polls) == 3:
            run["state"] = "success"

    airflow.on_poll = advance
    args = _args(airflow, "run", "smoke", "--target", "demo", "--profile", "quick")
    summary = remote.run_remote(args, {"target": "demo", "profile": "quick"}, ["smoke"], DATE)
    [(_, run_id)] = airflow.runs  # the attempt's own id: the date, the target and this checkout
    assert run_id.startswith(f"{RUN_ID}__demo__{home_tag(os.environ['AIRFLOW_HOME'])}.")
    assert (summary["run_id"], summary["state"], summary["outcome"], summary["exit_code"]) == \
        (run_id, "success", "passed", 0)
    assert airflow.runs[("perf_smoke", run_id)]["conf"] == {"target": "demo", "profile": "quick"}
    assert airflow.pools["perf_target_demo"]["slots"] == 1  # the k6 task's pool was missing: created
    err = capsys.readouterr().err
    assert f"triggered perf_smoke run {run_id}" in err and "run_k6: success" in err
    assert "smoke on demo: PASS" in err and f"perfpipe stop '{run_id}' --dag-id perf_smoke" in err


def test_a_paused_scheduled_dag_is_not_unpaused_without_asking(airflow, results):
    airflow.dags["perf_smoke"].update(is_paused=True, timetable_summary="0 3 * * *")
    args = _args(airflow, "run", "smoke", "--target", "demo")
    with pytest.raises(CliError, match="--unpause"):
        remote.run_remote(args, {"target": "demo"}, ["smoke"], DATE)
    assert airflow.runs == {} and airflow.dags["perf_smoke"]["is_paused"] is True


def test_a_dag_that_airflow_lacks_is_named(airflow):
    with pytest.raises(CliError, match="DAG perf_load is not in the Airflow"):
        remote.run_remote(_args(airflow, "run", "load", "--target", "demo"), {}, ["load"], DATE)


def test_params_refused_by_airflow_carry_its_reason(airflow):
    airflow.refuse = "refused before any load: overrides.vus: expected an integer between 1 and 20000, got -5"
    with pytest.raises(CliError) as refused:
        remote.trigger(_client(airflow), "perf_smoke", {"overrides": {"vus": -5}}, DATE, RUN_ID)
    assert str(refused.value) == f"triggering perf_smoke: Airflow refused it: {airflow.refuse}"


def test_a_finished_run_of_the_date_is_replaced_a_live_one_is_not(airflow, capsys):
    client = _client(airflow)
    first, second_id, third_id = (f"{RUN_ID}__{t}__h00000000.00000{n}" for n, t in enumerate(("a", "b", "a")))
    remote.trigger(client, "perf_smoke", {"n": 1}, DATE, first)
    airflow.runs[("perf_smoke", first)]["state"] = "success"
    second = remote.trigger(client, "perf_smoke", {"n": 2}, DATE, second_id)  # another target, same date
    assert second["dag_run_id"] == second_id and list(airflow.runs) == [("perf_smoke", second_id)]
    assert f"replacing the earlier success run {first}" in capsys.readouterr().err
    with pytest.raises(CliError, match=r"^logical_date: run .* is still queued and Airflow keeps one run per DAG"):
        remote.trigger(client, "perf_smoke", {"n": 3}, DATE, third_id)
    assert airflow.runs[("perf_smoke", second_id)]["conf"] == {"n": 2}


def test_following_gives_up_after_its_timeout_and_says_how_to_stop(airflow, results):
    client = _client(airflow)
    remote.trigger(client, "perf_smoke", {}, DATE, RUN_ID)
    with pytest.raises(CliError, match=r"still queued after 0s: stopped following it \(stop it with: perfpipe stop"):
        remote.follow_run(client, "perf_smoke", RUN_ID, ["smoke"], timeout_s=0.0, poll_s=0.01)


def test_following_a_run_that_vanished_is_an_error_not_a_retry_loop(airflow, results):
    with pytest.raises(CliError, match="following run .*HTTP 404"):
        remote.follow_run(_client(airflow), "perf_smoke", RUN_ID, ["smoke"], timeout_s=30, poll_s=0.01)
    assert len(airflow.calls) == 1


def test_a_stopped_runs_aborted_stage_is_awaited_briefly(airflow, results, monkeypatch):
    client = _client(airflow)
    remote.trigger(client, "perf_smoke", {}, DATE, RUN_ID)
    airflow.runs[("perf_smoke", RUN_ID)]["state"] = "failed"
    airflow.tasks[:] = [{"task_id": "run_k6", "state": "failed", "start_date": "2026-01-05T00:00:01Z"}]
    monkeypatch.setattr(remote.time, "sleep", lambda s: results.append(_smoke("aborted")))
    state, instances = remote.follow_run(client, "perf_smoke", RUN_ID, ["smoke"], timeout_s=30, poll_s=0.01)
    assert state == "failed" and [t["task_id"] for t in instances] == ["run_k6"] and len(results) == 1


def test_stop_marks_an_active_run_failed_and_reports_what_it_found(airflow):
    client = _client(airflow)
    remote.trigger(client, "perf_smoke", {}, DATE, RUN_ID)
    out = io.StringIO()
    args = _args(airflow, "stop", RUN_ID, "--dag-id", "perf_smoke", "--json")
    assert remote.stop_command(args, out) == 0
    assert json.loads(out.getvalue()) == {"dag_id": "perf_smoke", "run_id": RUN_ID, "mode": "airflow",
                                          "stopped": True, "previous_state": "queued", "state": "failed"}
    out = io.StringIO()
    assert remote.stop_command(_args(airflow, "stop", RUN_ID, "--dag-id", "perf_smoke"), out) == 1
    assert "is already failed: nothing to stop" in out.getvalue()
    out = io.StringIO()
    assert remote.stop_command(_args(airflow, "stop", "other", "--dag-id", "perf_smoke"), out) == 1
    assert "no run other of perf_smoke" in out.getvalue()


def test_api_errors_as_cli_errors():
    assert str(remote.api_error(AirflowAPIError(422, "bad date"), "x")) == "x: Airflow refused it: bad date"
    assert str(remote.api_error(AirflowAPIError(0, "Airflow is not reachable: refused"), "x")) == \
        "x: Airflow is not reachable: refused"
    assert "HTTP 500" in str(remote.api_error(AirflowAPIError(500, "boom", "GET", "u"), "x"))
    with pytest.raises(CliError, match="--airflow-url"):
        remote.airflow_client(build_parser().parse_args(["stop", "r", "--airflow-url", "127.0.0.1:8080"]))
