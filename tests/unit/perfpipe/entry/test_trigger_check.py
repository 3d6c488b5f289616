"""perfpipe.entry.trigger_check: the API server's trigger of a perf DAG refuses bad Params with perfpipe's message
(one line per problem, naming the field) before Airflow's jsonschema check; everything else passes untouched."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from perfpipe.entry.trigger_check import TriggerCheckMiddleware, refusal, stages_of


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"reached": True, "body": (await request.body()).decode()})


def client() -> TestClient:
    app = Starlette(routes=[Route("/api/v2/dags/{dag_id}/dagRuns", echo, methods=["POST", "GET"]),
                            Route("/other", echo, methods=["POST"])])
    app.add_middleware(TriggerCheckMiddleware)
    return TestClient(app)


def trigger(dag_id: str, conf) -> tuple[int, dict]:
    response = client().post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    return response.status_code, response.json()


def test_a_bad_override_is_refused_with_the_field_and_no_schema_dump() -> None:
    status, body = trigger("perf_smoke", {"profile": "quick", "overrides": {"thresholds.p95_ms.bogus": 1}})
    assert status == 400
    assert "thresholds.p95_ms.bogus" in body["detail"] and body["detail"].startswith("refused before any load")
    assert "Failed validating" not in body["detail"] and "schema" not in body["detail"]


def test_an_unknown_target_is_refused_for_the_pipeline() -> None:
    status, body = trigger("perf_pipeline", {"profile": "quick", "target": "nope"})
    assert status == 400 and "unknown target 'nope'" in body["detail"]


def test_a_good_conf_reaches_airflow_with_its_body_intact() -> None:
    conf = {"profile": "quick", "overrides": {"vus": 2}}
    status, body = trigger("perf_load", conf)
    assert status == 200 and body["reached"]
    assert json.loads(body["body"])["conf"] == conf


def test_defaults_fill_what_the_conf_leaves_out() -> None:
    # Airflow merges the Params' defaults with the conf: an empty conf is the default target and profile.
    assert refusal("perf_smoke", {}) is None
    assert refusal("perf_smoke", None) is None


def test_other_dags_paths_and_methods_pass_untouched() -> None:
    bad = {"overrides": {"vus": -5}}
    assert trigger("someone_elses_dag", bad)[0] == 200
    assert client().post("/other", json={"conf": bad}).status_code == 200
    assert client().get("/api/v2/dags/perf_smoke/dagRuns").status_code == 200
    assert client().post("/api/v2/dags/perf_smoke/dagRuns", content=b"{not json").status_code == 200


def test_stages_of_each_dag() -> None:
    assert stages_of("perf_chaos") == ["chaos"]
    assert stages_of("perf_pipeline")[0] == "smoke" and "soak" in stages_of("perf_pipeline")
    assert stages_of("perf_unknown") == []
