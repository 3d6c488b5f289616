"""perfpipe.core.k6.command: the k6 argv and environment (built, never run)."""

from __future__ import annotations

import json

import pytest

from perfpipe.app.config import build_plan
from perfpipe.core.hooks.influxdb import InfluxSettings
from perfpipe.core.k6.command import K6Invocation, base_env, build_invocation, run_config, script_for, write_run_config
from perfpipe.core.k6.command import testid_for as make_testid  # not named test*: pytest would collect it
from perfpipe.app.targets import k6_blocked_networks, resolve_target

HEADER_SECRET = "tok-unit-9f8e7d6c5b4a"
INFLUX_SECRET = "influx-pw-1a2b3c4d"
REPORT = "/tmp/perfpipe-unit/reports/perf_load/run/load"
TESTID = "perf_load:manual__2026-03-01T12:00:00+00:00:try1"


@pytest.fixture
def plan(api_target):
    target = dict(api_target, headers={"Authorization": {"env": "API_TOKEN", "prefix": "Bearer "}})
    return build_plan("load", target, "quick", allowed_addresses=("127.0.0.1",))


def _invocation(plan, influx=InfluxSettings("http://127.0.0.1:8086/", "k6", "writer", INFLUX_SECRET),
                blocked=("0.0.0.0/1", "128.0.0.0/1")):
    return build_invocation(plan, testid=TESTID, binary="/venv/bin/k6", script="/scripts/load.js",
                            report_path=REPORT, influx=influx,
                            headers={"Authorization": f"Bearer {HEADER_SECRET}"}, blocked_networks=list(blocked))


def _flag_values(argv, flag):
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_argv_starts_with_binary_run_script(plan):
    assert _invocation(plan).argv[:3] == ["/venv/bin/k6", "run", "/scripts/load.js"]


def test_argv_tags_testid_test_type_and_target(plan):
    argv = _invocation(plan).argv
    assert _flag_values(argv, "--tag") == [f"testid={TESTID}", "test_type=load", "target=unit-api"]


def test_argv_summary_export_out_address_and_blacklist(plan):
    argv = _invocation(plan).argv
    assert _flag_values(argv, "--summary-export") == [f"{REPORT}/summary.json"]
    assert _flag_values(argv, "--out") == ["influxdb=http://127.0.0.1:8086/k6"]
    assert _flag_values(argv, "--address") == [""]  # no REST API listener
    assert _flag_values(argv, "--blacklist-ip") == ["0.0.0.0/1,128.0.0.0/1"]
    assert "--no-color" in argv


def test_argv_blacklist_from_the_allowlist(plan):
    blocked = k6_blocked_networks(["127.0.0.0/8", "::1/128", "localhost"], plan.allowed_addresses)
    argv = _invocation(plan, blocked=blocked).argv
    assert _flag_values(argv, "--blacklist-ip") == [",".join(blocked)]
    assert "127.0.0.0/8" not in _flag_values(argv, "--blacklist-ip")[0].split(",")


def test_no_blacklist_flag_when_nothing_is_blocked(plan):
    assert "--blacklist-ip" not in _invocation(plan, blocked=()).argv


def test_env(plan):
    env = _invocation(plan).env
    assert env["K6_NO_USAGE_REPORT"] == "true"
    assert env["K6_WEB_DASHBOARD"] == "true"
    assert env["K6_WEB_DASHBOARD_PORT"] == "-1"
    assert env["K6_WEB_DASHBOARD_EXPORT"] == f"{REPORT}/report.html"
    assert env["K6_WEB_DASHBOARD_PERIOD"] == "1s"  # a 20 s quick run samples every second
    assert env["PERFPIPE_RUN_CONFIG"] == f"{REPORT}/run-config.json"
    assert env["BASE_URL"] == "http://127.0.0.1:8090"
    assert env["PERFPIPE_TEST_TYPE"] == "load"
    assert json.loads(env["PERFPIPE_TARGET_HEADERS"]) == {"Authorization": f"Bearer {HEADER_SECRET}"}
    assert env["K6_INFLUXDB_USERNAME"] == "writer"
    assert env["K6_INFLUXDB_PASSWORD"] == INFLUX_SECRET
    assert all(isinstance(v, str) for v in env.values())


def test_long_runs_sample_the_dashboard_every_10s(api_target):
    plan = build_plan("load", api_target, "standard")
    assert _invocation(plan).env["K6_WEB_DASHBOARD_PERIOD"] == "10s"


def test_secrets_are_marked_and_never_in_argv(plan):
    invocation = _invocation(plan)
    assert invocation.secret_env_keys == {"PERFPIPE_TARGET_HEADERS", "K6_INFLUXDB_PASSWORD"}
    shown = invocation.loggable_argv()
    for secret in (HEADER_SECRET, INFLUX_SECRET):
        assert secret not in shown
        assert not any(secret in arg for arg in invocation.argv)
    public = {k: v for k, v in invocation.env.items() if k not in invocation.secret_env_keys}
    assert not any(secret in v for v in public.values() for secret in (HEADER_SECRET, INFLUX_SECRET))


def test_without_influx_no_out_and_only_headers_secret(plan):
    invocation = _invocation(plan, influx=None)
    assert "--out" not in invocation.argv
    assert invocation.secret_env_keys == {"PERFPIPE_TARGET_HEADERS"}
    assert not any(k.startswith("K6_INFLUXDB_") for k in invocation.env)


def test_influx_without_credentials(plan):
    invocation = _invocation(plan, influx=InfluxSettings("http://127.0.0.1:8086", "k6"))
    assert not any(k.startswith("K6_INFLUXDB_") for k in invocation.env)
    assert invocation.secret_env_keys == {"PERFPIPE_TARGET_HEADERS"}


def test_loggable_argv_shortens_long_arguments():
    invocation = K6Invocation(argv=["k6", "run", "x" * 250], env={})
    assert invocation.loggable_argv() == "k6 run " + "x" * 60 + "...(250 chars)"


def test_run_config_has_no_headers(plan):
    config = run_config(plan)
    assert set(config) == {"schema", "test_type", "target", "shape"}
    assert set(config["target"]) == {"name", "base_url", "requests"}
    assert config["shape"] == plan.shape
    assert "headers" not in json.dumps(config) and "Authorization" not in json.dumps(config)


def test_write_run_config(plan, tmp_path):
    path = write_run_config(plan, tmp_path / "new" / "dir")
    assert path == tmp_path / "new" / "dir" / "run-config.json"
    assert json.loads(path.read_text()) == run_config(plan)


def test_script_for(plan):
    assert script_for(plan, "/scripts") == "/scripts/load.js"
    assert script_for(plan.model_copy(update={"target": dict(plan.target, script="/abs/mine.js")}), "/scripts") == "/abs/mine.js"


def test_testid_is_unique_per_dag_run_and_try():
    assert make_testid("perf_load", "manual__1", "load", 1) == "perf_load:manual__1:load:try1"
    ids = {make_testid(dag, run, stage, n) for dag in ("perf_load", "perf_smoke") for run in ("r1", "r2")
           for stage in ("smoke", "load") for n in (1, 2, 3)}
    assert len(ids) == 24


def test_k6_inherits_no_proxy_and_no_secret(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:3128")
    monkeypatch.setenv("PERFPIPE_INFLUXDB_PASSWORD", "hunter2")
    monkeypatch.setenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "postgresql://u:pw@db/airflow")
    env = base_env()
    assert env["K6_NO_USAGE_REPORT"] == "true" and "PATH" in env
    assert not {"HTTPS_PROXY", "http_proxy", "PERFPIPE_INFLUXDB_PASSWORD", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"} & set(env)


def test_networks_outside_leaves_only_the_allowed_addresses_reachable():
    import ipaddress

    from perfpipe.core.k6.command import networks_outside

    blocked = [ipaddress.ip_network(n) for n in networks_outside(["127.0.0.1", "::1/128"])]
    for reachable in ("127.0.0.1", "::1"):
        assert not any(ipaddress.ip_address(reachable) in n for n in blocked)
    for unreachable in ("127.0.0.2", "10.0.0.1", "8.8.8.8", "::2"):
        assert any(ipaddress.ip_address(unreachable) in n for n in blocked)
    assert networks_outside([]) == ["0.0.0.0/0", "::/0"]


def test_prometheus_output_only_when_given(plan):
    from perfpipe.core.k6.command import PROMETHEUS_OUTPUT

    assert PROMETHEUS_OUTPUT not in _invocation(plan).argv
    invocation = build_invocation(
        plan, testid=TESTID, binary="k6", script="/s/load.js", report_path=REPORT, influx=None, headers={},
        blocked_networks=[], prometheus={"remote_write_url": "http://127.0.0.1:9090/api/v1/write",
                                         "trend_stats": ["p(95)"], "push_interval": "5s", "username": "u",
                                         "password": "rw-pw-0a9b"})
    assert _flag_values(invocation.argv, "--out") == [PROMETHEUS_OUTPUT]
    assert invocation.env["K6_PROMETHEUS_RW_USERNAME"] == "u"
    assert invocation.secret_env_keys >= {"K6_PROMETHEUS_RW_PASSWORD"}


@pytest.mark.parametrize("base_url, addresses, hosts", [
    ("http://LocalHost:8090", ("127.0.0.1", "::1"), {"localhost": "127.0.0.1"}),  # the first checked address
    ("http://127.0.0.1:8090", ("127.0.0.1",), {}),  # an address literal: nothing to resolve
    ("http://[::1]:8090", ("::1",), {}),
])
def test_k6_gets_the_target_name_pinned_to_its_checked_address(base_url, addresses, hosts, tmp_path):
    target = resolve_target({"name": "t", "base_url": base_url, "requests": [{"path": "/"}]})
    plan = build_plan("smoke", target, "quick", allowed_addresses=addresses)
    write_run_config(plan, tmp_path)
    assert json.loads((tmp_path / "k6-options.json").read_text()) == {"hosts": hosts}
    argv = _invocation(plan).argv
    assert _flag_values(argv, "--config")[0].endswith("/k6-options.json")
    assert _flag_values(argv, "--max-redirects") == ["0"]
