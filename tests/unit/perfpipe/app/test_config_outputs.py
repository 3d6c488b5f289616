"""`outputs:` in config/perfpipe.yaml: InfluxDB always (the gates read it), Prometheus remote write optionally."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from perfpipe.app.config import build_plan, prometheus_output, settings, validate_outputs, validate_prometheus
from perfpipe.core.errors import InputError
from perfpipe.app.influx import influx_settings
from perfpipe.core.k6.command import PROMETHEUS_OUTPUT, build_invocation

RW_URL = "http://127.0.0.1:9090/api/v1/write"
CONFIG_DIR = Path(__file__).resolve().parents[4] / "config"


def _write_settings(tmp_path, monkeypatch, **changes) -> None:
    """A copy of the repo's config/ with perfpipe.yaml changed."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    data = yaml.safe_load((target / "perfpipe.yaml").read_text())
    data.update(changes)
    (target / "perfpipe.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("PERFPIPE_CONFIG_DIR", str(target))


def _invocation(plan):
    return build_invocation(plan, testid="t1", binary="k6", script="/s/load.js", report_path="/r",
                            influx=influx_settings(), headers={}, blocked_networks=[], prometheus=prometheus_output())


def _outs(argv):
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "--out"]


def test_default_is_influxdb_only(api_target):
    assert settings()["outputs"] == ["influxdb"]
    invocation = _invocation(build_plan("load", api_target, "quick"))
    assert _outs(invocation.argv) == ["influxdb=http://127.0.0.1:8086/k6"]
    assert not any(key.startswith("K6_PROMETHEUS") for key in invocation.env)


def test_influxdb_and_prometheus(api_target, tmp_path, monkeypatch):
    _write_settings(tmp_path, monkeypatch, outputs=["influxdb", "prometheus"])
    monkeypatch.setenv("PERFPIPE_PROMETHEUS_RW_USERNAME", "k6")
    monkeypatch.setenv("PERFPIPE_PROMETHEUS_RW_PASSWORD", "rw-secret-7f8e")
    invocation = _invocation(build_plan("load", api_target, "quick"))
    assert _outs(invocation.argv) == ["influxdb=http://127.0.0.1:8086/k6", PROMETHEUS_OUTPUT]
    assert invocation.env["K6_PROMETHEUS_RW_SERVER_URL"] == RW_URL
    assert invocation.env["K6_PROMETHEUS_RW_TREND_STATS"] == "p(95),p(99),avg,min,max"
    assert invocation.env["K6_PROMETHEUS_RW_PUSH_INTERVAL"] == "5s"
    assert invocation.env["K6_PROMETHEUS_RW_USERNAME"] == "k6"
    assert "K6_PROMETHEUS_RW_PASSWORD" in invocation.secret_env_keys
    assert "rw-secret-7f8e" not in invocation.loggable_argv()


def test_outputs_from_the_environment(api_target, monkeypatch):
    monkeypatch.setenv("PERFPIPE_OUTPUTS", "influxdb, prometheus")
    monkeypatch.setenv("PERFPIPE_PROMETHEUS_RW_URL", "http://127.0.0.2:19090/api/v1/write")
    conf = settings()
    assert conf["outputs"] == ["influxdb", "prometheus"]
    assert conf["prometheus"]["remote_write_url"] == "http://127.0.0.2:19090/api/v1/write"


def test_the_docker_runtime_gets_the_same_outputs(api_target, monkeypatch):
    from pathlib import Path

    from perfpipe.app.stage import blocked_networks
    from perfpipe.core.k6.run import RunSpec
    from perfpipe.core.operators.k6_docker import container_invocation

    monkeypatch.setenv("PERFPIPE_OUTPUTS", "influxdb,prometheus")
    plan = build_plan("load", api_target, "quick", allowed_addresses=("127.0.0.1",))
    spec = RunSpec(testid="t1", report_dir=Path("/r"), headers={}, blocked_networks=blocked_networks(plan),
                   timeout_s=60, influx=influx_settings(), prometheus=prometheus_output())
    invocation = container_invocation(plan, spec)
    assert _outs(invocation.argv) == ["influxdb=http://127.0.0.1:8086/k6", PROMETHEUS_OUTPUT]
    assert invocation.env["K6_PROMETHEUS_RW_SERVER_URL"] == RW_URL


def test_inspect_sends_nowhere(api_target, monkeypatch):
    monkeypatch.setenv("PERFPIPE_OUTPUTS", "influxdb,prometheus")
    invocation = build_invocation(build_plan("load", api_target, "quick"), testid="inspect", binary="k6",
                                  script="/s/load.js", report_path="/r", influx=None, headers={},
                                  blocked_networks=[])
    assert _outs(invocation.argv) == []


@pytest.mark.parametrize("value, message", [
    (["prometheus"], "must include influxdb"),
    ([], "expected a list"),
    ("", "expected a list"),
    (["influxdb", "graphite"], "unknown output 'graphite'"),
    ({"influxdb": True}, "expected a list"),
    ([1], "expected a list"),
])
def test_bad_outputs_name_the_field(value, message):
    with pytest.raises(InputError, match=message) as info:
        validate_outputs(value)
    assert info.value.field == "outputs"


def test_outputs_are_deduplicated_and_default_to_influxdb():
    assert validate_outputs(None) == ["influxdb"]
    assert validate_outputs(["influxdb", "prometheus", "influxdb"]) == ["influxdb", "prometheus"]
    assert validate_outputs("influxdb") == ["influxdb"]


def test_a_bad_outputs_setting_is_refused_with_its_field(tmp_path, monkeypatch):
    _write_settings(tmp_path, monkeypatch, outputs=["prometheus"])
    with pytest.raises(InputError) as info:
        settings()
    assert info.value.field == "outputs"


@pytest.mark.parametrize("section, field", [
    ({"remote_write_url": "127.0.0.1:9090"}, "prometheus.remote_write_url"),
    ({"remote_write_url": "ftp://127.0.0.1/x"}, "prometheus.remote_write_url"),
    ({"remote_write_url": "http://user:pw@127.0.0.1:9090/api/v1/write"}, "prometheus.remote_write_url"),
    ({"remote_write_url": RW_URL, "trend_stats": ["p95"]}, "prometheus.trend_stats"),
    ({"remote_write_url": RW_URL, "trend_stats": []}, "prometheus.trend_stats"),
    ({"remote_write_url": RW_URL, "push_interval": "soon"}, "prometheus.push_interval"),
    ({"remote_write_url": RW_URL, "push_interval": 0}, "prometheus.push_interval"),
    ({"remote_write_url": RW_URL, "bearer": "x"}, "prometheus"),
    ("http://127.0.0.1:9090", "prometheus"),
])
def test_bad_prometheus_settings_name_the_field(section, field):
    with pytest.raises(InputError) as info:
        validate_prometheus(section)
    assert info.value.field == field


def test_prometheus_settings_normalised():
    assert validate_prometheus({"remote_write_url": RW_URL, "trend_stats": ["p(99.9)", "med"],
                                "push_interval": 10}) == {
        "remote_write_url": RW_URL, "trend_stats": ["p(99.9)", "med"], "push_interval": "10s"}
