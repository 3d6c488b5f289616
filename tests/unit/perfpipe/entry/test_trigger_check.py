"""perfpipe.entry.trigger_check: the API server's trigger and backfill of a perf DAG refuse bad Params with
perfpipe's message (one line per problem, naming the field, no jsonschema dump) before Airflow's own check;
everything else, and every caller Airflow would not let create runs, passes untouched."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from perfpipe.entry.trigger_check import TriggerCheckMiddleware, refusal, stages_of


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"reached": True, "body": (await request.body()).decode()})


async def allow(scope: dict, dag_id: str) -> bool:
    return True


def client(**middleware_kwargs) -> TestClient:
    app = Starlette(routes=[Route("/api/v2/dags/{dag_id}/dagRuns", echo, methods=["POST", "GET"]),
                            Route("/api/v2/backfills", echo, methods=["POST"]),
                            Route("/api/v2/backfills/dry_run", echo, methods=["POST"]),
                            Route("/other", echo, methods=["POST"])])
    app.add_middleware(TriggerCheckMiddleware, **({"authorize": allow} | middleware_kwargs))
    return TestClient(app)


def trigger(dag_id: str, conf, **middleware_kwargs) -> tuple[int, dict]:
    response = client(**middleware_kwargs).post(f"/api/v2/dags/{dag_id}/dagRuns",
                                                json={"logical_date": None, "conf": conf})
    return response.status_code, response.json()


def backfill(dag_id: str, conf, path: str = "/api/v2/backfills") -> tuple[int, dict]:
    response = client().post(path, json={"dag_id": dag_id, "from_date": "2026-04-01T00:00:00Z",
                                         "to_date": "2026-04-01T02:00:00Z", "dag_run_conf": conf})
    return response.status_code, response.json()


def assert_refused(status: int, body: dict, *expected: str) -> None:
    assert status == 400, body
    detail = body["detail"]
    assert detail.startswith("refused before any load: ")
    assert "Failed validating" not in detail and "schema" not in detail
    for text in expected:
        assert text in detail, detail


def test_an_override_out_of_range_is_refused_naming_it():
    assert_refused(*trigger("perf_smoke", {"profile": "quick", "overrides": {"vus": -5}}),
                   "overrides.vus: expected an integer between 1 and 20000, got -5")


def test_an_unknown_key_is_called_unknown_and_the_known_ones_listed():
    assert_refused(*trigger("perf_smoke", {"overrides": {"thresholds.p95_ms.bogus": 1}}),
                   "overrides.thresholds.p95_ms.bogus: unknown key (known: op, threshold, warn, weight, key, "
                   "baseline_runs)")
    assert_refused(*trigger("perf_load", {"overrides": {"bogus": 1}}),
                   "overrides.bogus: unknown key (known: executor, vus, duration")


def test_a_conf_key_that_is_no_param_is_refused_not_ignored():
    # Airflow would keep it and run the defaults: a standard-profile load nobody asked for.
    assert_refused(*trigger("perf_smoke", {"vus": -5}),
                   'vus: unknown key (known: target, inline_target, profile, overrides); it is an override: '
                   '{"overrides": {"vus": ...}}')
    status, body = trigger("perf_pipeline", {"profil": "quick", "chaos_scenario": None})
    assert_refused(status, body, "profil: unknown key (known: target, inline_target, profile, overrides, "
                                 "chaos_scenario, include_soak)")
    assert "it is an override" not in body["detail"]
    assert_refused(*trigger("perf_smoke", {"chaos_scenario": "db_failure"}), "chaos_scenario: unknown key")


def test_what_only_the_params_schema_refuses_is_one_line_too():
    assert_refused(*trigger("perf_pipeline", {"include_soak": "yes"}), "include_soak: 'yes' is not of type 'boolean'")


def test_an_unknown_target_is_refused_for_the_pipeline():
    assert_refused(*trigger("perf_pipeline", {"profile": "quick", "target": "nope"}), "unknown target 'nope'")


def test_a_good_conf_reaches_airflow_with_its_body_intact():
    conf = {"profile": "quick", "overrides": {"vus": 2}}
    status, body = trigger("perf_load", conf)
    assert status == 200 and body["reached"]
    assert json.loads(body["body"])["conf"] == conf


def test_a_backfill_cannot_bypass_the_check():
    assert_refused(*backfill("perf_smoke", {"overrides": {"vus": -5}}), "overrides.vus: expected an integer")
    assert_refused(*backfill("perf_smoke", {"vus": 2}, path="/api/v2/backfills/dry_run"), "vus: unknown key")
    conf = {"target": "demo", "profile": "quick", "overrides": {"duration": "2s", "vus": 2}}
    status, body = backfill("perf_smoke", conf)
    assert status == 200 and json.loads(body["body"])["dag_run_conf"] == conf
    assert backfill("someone_elses_dag", {"vus": -5})[0] == 200
    assert backfill("perf_smoke", None)[0] == 200  # no conf: the Params' defaults


def test_a_caller_airflow_would_refuse_gets_airflows_answer_not_ours():
    async def deny(scope: dict, dag_id: str) -> bool:
        assert dag_id == "perf_smoke"
        return False

    async def broken(scope: dict, dag_id: str) -> bool:
        raise RuntimeError("auth manager not initialised")

    bad = {"overrides": {"vus": -5}}
    assert trigger("perf_smoke", bad, authorize=deny)[0] == 200
    assert trigger("perf_smoke", bad, authorize=broken)[0] == 200
    # The default asks Airflow's auth manager, which this test app has none of: Airflow checks it itself.
    assert trigger("perf_smoke", bad, authorize=None)[0] == 200


def test_defaults_fill_what_the_conf_leaves_out():
    # Airflow merges the Params' defaults with the conf: an empty conf is the default target and profile.
    assert refusal("perf_smoke", {}) is None
    assert refusal("perf_smoke", None) is None
    assert refusal("perf_pipeline", {"target": "demo", "inline_target": None, "profile": "standard",
                                     "overrides": {}, "chaos_scenario": None, "include_soak": False}) is None
    assert refusal("perf_smoke", ["profile"]).startswith("conf: expected a mapping")


def test_other_dags_paths_and_methods_pass_untouched():
    bad = {"overrides": {"vus": -5}}
    assert trigger("someone_elses_dag", bad)[0] == 200
    assert client().post("/other", json={"conf": bad}).status_code == 200
    assert client().get("/api/v2/dags/perf_smoke/dagRuns").status_code == 200
    assert client().post("/api/v2/dags/perf_smoke/dagRuns", content=b"{not json").status_code == 200
    assert client().post("/api/v2/backfills", content=b"[1, 2]").status_code == 200


def test_stages_of_each_dag():
    assert stages_of("perf_chaos") == ["chaos"]
    assert stages_of("perf_pipeline")[0] == "smoke" and "soak" in stages_of("perf_pipeline")
    assert stages_of("perf_unknown") == []


def test_the_plugin_registers_it_as_a_root_middleware_of_the_api_server():
    import perfpipe_plugin

    [entry] = perfpipe_plugin.PerfpipePlugin.fastapi_root_middlewares
    assert entry["middleware"] is TriggerCheckMiddleware and callable(entry["middleware"])
    assert (entry.get("args", []), entry.get("kwargs", {})) == ([], {}) and entry["name"]


# The trust boundary: chaos components (commands, pids, control URLs) come only from config/targets.yaml.
RUNTIME_CHAOS_TARGETS = [  # (id, inline_target, field)
    ("pid_command", {"chaos": {"components": {"cache": {"kind": "process", "pid_command": ["touch", "/tmp/no"]}}}},
     "target.chaos.components.cache.pid_command"),
    ("start_command", {"chaos": {"components": {"cache": {"kind": "process", "start_command": ["sh", "-c", "id"]}}}},
     "target.chaos.components.cache.start_command"),
    ("stop_command", {"chaos": {"components": {"cache": {"kind": "process", "stop_command": ["reboot"]}}}},
     "target.chaos.components.cache.stop_command"),
    ("control_url", {"chaos": {"components": {"link": {"kind": "proxy", "control_url": "http://127.0.0.1:1"}}}},
     "target.chaos.components.link.control_url"),
    ("nested", {"chaos": {"components": {"cache": {"kind": "process", "x": [{"pid_command": ["id"]}]}}}},
     "target.chaos.components.cache.x[0].pid_command"),
]


@pytest.mark.parametrize("dag_id", ["perf_chaos", "perf_pipeline", "perf_smoke"])
@pytest.mark.parametrize("extra, field", [c[1:] for c in RUNTIME_CHAOS_TARGETS],
                         ids=[c[0] for c in RUNTIME_CHAOS_TARGETS])
def test_an_inline_target_with_chaos_components_is_refused_with_400(dag_id, extra, field):
    inline = {"name": "mine", "base_url": "http://127.0.0.1:8090", "requests": [{"path": "/"}], **extra}
    status, body = trigger(dag_id, {"inline_target": inline, "profile": "quick"})
    assert_refused(status, body, f"{field}: a run-time target (the inline_target Param or a target file) may not "
                                 "declare chaos components", "config/targets.yaml of the deployment")
    assert "reached" not in body


def test_a_target_file_with_chaos_named_by_the_target_param_is_refused_with_400(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text('base_url: http://127.0.0.1:8090\nrequests: [{path: /}]\n'
                    'chaos: {components: {c: {kind: process, pid_command: [touch, /tmp/no]}}}\n')
    assert_refused(*trigger("perf_chaos", {"target": str(path), "profile": "quick"}),
                   f"{path}.chaos.components.c.pid_command: a run-time target")


def test_a_configured_targets_chaos_scenario_is_let_through():
    status, body = trigger("perf_chaos", {"target": "demo", "profile": "quick", "chaos_scenario": "cache_failure"})
    assert status == 200 and body["reached"], body
