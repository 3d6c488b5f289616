"""Bad input, table-driven: every case is refused by the pre-flight (`prepare_plan`, what the validate task and the
CLI run) with an InputError naming the field, and the target's own request counter stays at 0.

Real parts where they are cheap: the target is a counting HTTP server on 127.0.0.1 (so "no request was sent" is
measured, not assumed), and scripts go through the real `k6 inspect` (init context only: it sends no request).
InfluxDB is not involved (check_influx=False): its outage is covered in tests/integration/test_safety.py.
"""

from __future__ import annotations

import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from perfpipe.core.errors import InputError
from perfpipe.app.stage import prepare_plan


class CountingTarget:
    """A loopback HTTP server that counts every request it receives."""

    def __init__(self):
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                with counter.lock:
                    counter.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args):
                pass

        self.requests = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def counting_target():
    server = CountingTarget()
    yield server
    server.close()


REQ = [{"name": "home", "method": "GET", "path": "/"}]

SYNTAX_ERROR_JS = "import http from 'k6/http';\nexport default function ( {\n  http.get(__ENV.BASE_URL);\n}\n"
TOO_MANY_VUS_JS = ("import http from 'k6/http';\nexport const options = { vus: 500, duration: '10s' };\n"
                   "export default function () { http.get(__ENV.BASE_URL); }\n")
TOO_FAST_JS = ("import http from 'k6/http';\nexport const options = { scenarios: { burst: {\n"
               "  executor: 'constant-arrival-rate', rate: 500, timeUnit: '1s', duration: '10s', preAllocatedVUs: 5 } } };\n"
               "export default function () { http.get(__ENV.BASE_URL); }\n")


def inline(url, **fields):
    return {"name": "counter", "base_url": url, "requests": REQ, **fields}


# (id, test type, params builder(url, tmp_path) -> params, extra env, expected field; '*' = ends with)
CASES = [
    # --- Params: types, bounds, unknown test type, unknown target
    ("unknown test type", "soakk", lambda u, t: {"inline_target": inline(u)}, {}, "test_type"),
    ("unknown profile", "smoke", lambda u, t: {"inline_target": inline(u), "profile": "huge"}, {}, "profile"),
    ("unknown target name", "smoke", lambda u, t: {"target": "nope"}, {}, "target"),
    ("empty target", "smoke", lambda u, t: {"target": ""}, {}, "target"),
    ("vus zero", "smoke", lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"vus": 0}},
     {}, "overrides.vus"),
    ("vus not a number", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"vus": "ten"}}, {}, "overrides.vus"),
    ("vus above the hard ceiling", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"vus": 20_001}}, {},
     "overrides.vus"),
    ("unparseable duration", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"duration": "10 parsecs"}}, {},
     "overrides.duration"),
    ("negative duration", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"duration": -5}}, {},
     "overrides.duration"),
    ("duration longer than the task may run", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"duration": "100h"}}, {},
     "quick.smoke.duration"),
    ("think time out of bounds", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"think_time_s": 61}}, {},
     "overrides.think_time_s"),
    ("read ratio above 1", "load",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"read_ratio": 1.5}}, {},
     "overrides.read_ratio"),
    ("unknown executor", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"executor": "shared-iterations"}},
     {}, "overrides.executor"),
    ("unknown override key", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"vu": 3}}, {}, "overrides.vu"),
    ("malformed compact stages", "load",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"stages": "10s:abc"}}, {},
     "overrides.stages"),
    # --- target YAML / mapping
    ("target file without base_url", "smoke",
     lambda u, t: {"target": write_yaml(t, "nobase.yaml", {"requests": REQ})}, {}, "*/nobase.yaml.base_url"),
    ("base_url not http", "smoke", lambda u, t: {"inline_target": inline(u.replace("http", "ftp"))}, {},
     "target.base_url"),
    ("credentials in base_url", "smoke",
     lambda u, t: {"inline_target": inline(u.replace("://", "://user:pw@"))}, {}, "target.base_url"),
    ("bad HTTP method", "smoke",
     lambda u, t: {"inline_target": {**inline(u), "requests": [{"method": "FETCH", "path": "/"}]}}, {},
     "target.requests[0].method"),
    ("negative weight", "smoke",
     lambda u, t: {"inline_target": {**inline(u), "requests": [{"path": "/", "weight": -1}]}}, {},
     "target.requests[0].weight"),
    ("weight not a number", "smoke",
     lambda u, t: {"target": write_yaml(t, "weights.yaml", {"base_url": u, "requests": [
         {"path": "/a", "weight": "heavy"}]})}, {}, "*/weights.yaml.requests[0].weight"),
    ("path without slash", "smoke",
     lambda u, t: {"inline_target": {**inline(u), "requests": [{"path": "api"}]}}, {}, "target.requests[0].path"),
    # What k6-scripts/lib/compile.js once judged too: it compiles the run config now, trusting these refusals.
    ("zero weight", "load",
     lambda u, t: {"inline_target": {**inline(u), "requests": [{"path": "/", "weight": 0}]}}, {},
     "target.requests[0].weight"),
    ("weight not finite", "load",
     lambda u, t: {"target": write_yaml(t, "nan.yaml", {"base_url": u, "requests": [
         {"path": "/a", "weight": float("nan")}]})}, {}, "*/nan.yaml.requests[0].weight"),
    ("duration in days", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"duration": "1d"}}, {},
     "overrides.duration"),
    ("duration in microseconds", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"duration": "5000000us"}}, {},
     "overrides.duration"),
    ("stage duration in nanoseconds", "load",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"stages": "10s:5,9000000000ns:0"}},
     {}, "overrides.stages"),
    ("unknown template in a path", "smoke",
     lambda u, t: {"inline_target": {**inline(u), "requests": [{"path": "/users/{{user}}"}]}}, {},
     "target.requests[0].path"),
    ("unterminated template in a path", "smoke",
     lambda u, t: {"inline_target": {**inline(u), "requests": [{"path": "/users/{{int:1:9"}]}}, {},
     "target.requests[0].path"),
    ("template with A > B in a body", "smoke",
     lambda u, t: {"inline_target": {**inline(u), "requests": [{"path": "/", "method": "POST",
                                                                "body": {"user_id": "{{int:50:1}}"}}]}}, {},
     "target.requests[0].body.user_id"),
    ("negative stop-at-break limit", "stress",
     lambda u, t: {"inline_target": inline(u, analysis={"stress": {"abort_after_s": -8}}), "profile": "quick"}, {},
     "target.analysis.stress.abort_after_s"),
    ("expect_status out of range", "smoke",
     lambda u, t: {"inline_target": {**inline(u), "requests": [{"path": "/", "expect_status": 700}]}}, {},
     "target.requests[0].expect_status"),
    ("unknown target key", "smoke", lambda u, t: {"inline_target": inline(u, timeout=5)}, {}, "target.timeout"),
    ("header value neither string nor reference", "smoke",
     lambda u, t: {"inline_target": inline(u, headers={"Authorization": {"vault": "x"}})}, {},
     "target.headers.Authorization"),
    ("header secret env var unset", "smoke",
     lambda u, t: {"inline_target": inline(u, headers={"Authorization": {"env": "PERFPIPE_TEST_UNSET_TOKEN"}})},
     {}, "headers.Authorization"),
    ("max_vus zero", "smoke", lambda u, t: {"inline_target": inline(u, max_vus=0)}, {}, "target.max_vus"),
    ("max_rps negative", "smoke", lambda u, t: {"inline_target": inline(u, max_rps=-1)}, {}, "target.max_rps"),
    ("production not a boolean", "smoke", lambda u, t: {"inline_target": inline(u, production="yes")}, {},
     "target.production"),
    # --- thresholds
    ("unparseable threshold expression", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"thresholds.p95_ms": "fast"}}, {},
     "overrides.thresholds.p95_ms"),
    ("threshold on an unknown metric", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"thresholds.latency_ms": 300}}, {},
     "overrides.thresholds.latency_ms"),
    ("unknown threshold operator", "smoke",
     lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": {"thresholds.p95_ms.op": "=>"}}, {},
     "overrides.thresholds.p95_ms.op"),
    ("target gate on an unknown metric", "smoke",
     lambda u, t: {"inline_target": inline(u, gates={"smoke": {"latency": "< 300"}})}, {},
     "target.gates.smoke.latency"),
    ("warn on the failing side", "smoke",
     lambda u, t: {"inline_target": inline(u, gates={"smoke": {"p95_ms": {"op": "<", "threshold": 100,
                                                                         "warn": 200}}})}, {},
     "target.gates.smoke.p95_ms.warn"),
    # --- the trust boundary: chaos components come only from config/targets.yaml
    ("inline target with a chaos pid_command", "chaos",
     lambda u, t: {"inline_target": inline(u, chaos={"components": {"cache": {
         "kind": "process", "pid_command": ["touch", str(t / "marker")], "start_command": ["true"]}},
         "scenarios": {"s": {"component": "cache", "action": "stop"}}, "default_scenario": "s"})}, {},
     "target.chaos.components.cache.pid_command"),
    ("inline target with a chaos control_url", "chaos",
     lambda u, t: {"inline_target": inline(u, chaos={"components": {"link": {
         "kind": "proxy", "control_url": "http://127.0.0.1:8091"}}})}, {}, "target.chaos.components.link.control_url"),
    ("target file with a chaos start_command", "chaos",
     lambda u, t: {"target": write_yaml(t, "chaos.yaml", inline(u, chaos={"components": {"cache": {
         "kind": "process", "start_command": ["touch", str(t / "marker")]}}}))}, {},
     "*/chaos.yaml.chaos.components.cache.start_command"),
    # --- scripts
    ("script with a syntax error", "smoke",
     lambda u, t: {"inline_target": {"name": "s", "base_url": u, "script": write_text(t, "broken.js",
                                                                                      SYNTAX_ERROR_JS)}},
     {}, "script"),
    ("missing script file", "smoke",
     lambda u, t: {"inline_target": {"name": "s", "base_url": u, "script": str(t / "absent.js")}}, {},
     "target.script"),
    # --- allowlist
    ("host outside the allowlist", "smoke", lambda u, t: {"inline_target": inline("http://192.0.2.10:8080")}, {},
     "target.base_url"),
    ("port outside the allowlist entry", "smoke", lambda u, t: {"inline_target": inline(u)},
     {"PERFPIPE_ALLOWLIST": "127.0.0.1:1"}, "target.base_url"),
    ("allowlisted non-loopback host without production: true", "smoke",
     lambda u, t: {"inline_target": inline("http://192.0.2.10:8080")},
     {"PERFPIPE_ALLOWLIST": "127.0.0.0/8,192.0.2.0/24"}, "target.production"),
    ("malformed allowlist entry", "smoke", lambda u, t: {"inline_target": inline(u)},
     {"PERFPIPE_ALLOWLIST": "127.0.0.1:99999"}, "allowlist"),
    # --- caps of the target
    ("vus override above the target's max_vus", "smoke",
     lambda u, t: {"inline_target": inline(u, max_vus=3), "profile": "quick", "overrides": {"smoke.vus": 4}}, {},
     "overrides.smoke.vus"),
    ("vus above the target's max_vus", "smoke",
     lambda u, t: {"inline_target": inline(u, max_vus=3), "profile": "quick"}, {}, "quick.smoke.vus"),
    ("ramp above the target's max_vus", "stress",
     lambda u, t: {"inline_target": inline(u, max_vus=50), "profile": "quick"}, {}, "quick.stress.stages[4].target"),
    ("script VUs above the target's max_vus", "smoke",
     lambda u, t: {"inline_target": {"name": "s", "base_url": u, "max_vus": 100,
                                     "script": write_text(t, "many.js", TOO_MANY_VUS_JS)}}, {}, "script"),
    ("script arrival rate above the target's max_rps", "smoke",
     lambda u, t: {"inline_target": {"name": "s", "base_url": u, "max_rps": 100,
                                     "script": write_text(t, "fast.js", TOO_FAST_JS)}}, {},
     "script.scenarios.burst.rate"),
]


def write_yaml(folder, name, data) -> str:
    import yaml

    path = folder / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def write_text(folder, name, text) -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_table_is_large_enough():
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


def test_the_counter_counts_and_a_good_input_passes(counting_target, tmp_path):
    """The harness can fail: a valid input passes the same pre-flight, and a real request moves the counter."""
    plan = prepare_plan("smoke", {"inline_target": inline(counting_target.url), "profile": "quick"},
                        check_influx=False)
    assert plan.target["base_url"] == counting_target.url
    before = counting_target.requests
    with urllib.request.urlopen(counting_target.url + "/", timeout=5) as response:
        assert response.status == 200
    assert counting_target.requests == before + 1
    counting_target.requests = before


@pytest.mark.parametrize("name, test_type, params, env, field", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_naming_the_field_before_any_request(counting_target, tmp_path, monkeypatch,
                                                                   name, test_type, params, env, field):
    assert_refused_before_any_request(counting_target, tmp_path, monkeypatch, name, test_type, params, env, field)


def assert_refused_before_any_request(counting_target, tmp_path, monkeypatch, name, test_type, params, env, field):
    """The pre-flight refuses the case with an InputError naming `field`, and the counting target saw nothing."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PERFPIPE_TEST_UNSET_TOKEN", raising=False)
    before = counting_target.requests
    with pytest.raises(InputError) as refused:
        prepare_plan(test_type, params(counting_target.url, tmp_path), check_influx=False)
    error = refused.value
    # Exact field names; a target file's field starts with its (temporary) path.
    matches = error.field.endswith(field[1:]) if field.startswith("*") else error.field == field
    assert matches, f"{name}: field {error.field!r}, expected {field!r} ({error})"
    assert str(error).startswith(f"{error.field}: ") and len(str(error)) > len(error.field) + 10
    assert counting_target.requests == before == 0, f"{name}: the target received a request"
