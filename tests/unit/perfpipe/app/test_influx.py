"""perfpipe.app.influx: perfpipe's InfluxDB settings (config, env, the Connection unless a URL is given)."""

from __future__ import annotations

from types import SimpleNamespace

from perfpipe.app import influx
from perfpipe.core.hooks.influxdb import InfluxDBHook, InfluxSettings

CONN = SimpleNamespace(host="10.9.8.7", port=8087, schema="perfdb", login="conn-user", password="conn-pw-3c4d",
                       extra_dejson={})


def _with_connection(monkeypatch, conn=CONN):
    looked_up = []

    def connection(conn_id):
        looked_up.append(conn_id)
        return conn

    from airflow.sdk import Connection

    # Airflow's lookup (metadata DB / API) stands in: whether it is asked, and what is made of its answer, is ours.
    monkeypatch.setattr(Connection, "get", staticmethod(connection))
    return looked_up


def test_settings_from_config_and_env(monkeypatch):
    monkeypatch.setenv("PERFPIPE_INFLUXDB_DB", "perf")
    monkeypatch.setenv("PERFPIPE_INFLUXDB_USER", "writer")
    monkeypatch.setenv("PERFPIPE_INFLUXDB_PASSWORD", "env-pw-1a2b")
    assert influx.influx_settings() == InfluxSettings("http://127.0.0.1:8086", "perf", "writer", "env-pw-1a2b")


def test_an_explicit_url_wins_over_the_connection(monkeypatch):
    looked_up = _with_connection(monkeypatch)
    assert influx.influx_settings().url == "http://127.0.0.1:8086"  # PERFPIPE_INFLUXDB_URL (unit conftest)
    assert looked_up == []


def test_the_connection_replaces_config_and_env_without_a_url(monkeypatch):
    monkeypatch.delenv("PERFPIPE_INFLUXDB_URL")
    monkeypatch.setenv("PERFPIPE_INFLUXDB_USER", "env-user")
    looked_up = _with_connection(monkeypatch)
    assert influx.influx_settings() == InfluxSettings("http://10.9.8.7:8087", "perfdb", "conn-user", "conn-pw-3c4d")
    assert looked_up == ["perfpipe_influxdb"]


def test_no_connection_outside_airflow_falls_back_to_config():
    assert influx._airflow_connection("perfpipe_influxdb") is None  # PERFPIPE_INFLUXDB_URL is set


def test_the_password_is_masked(monkeypatch):
    masked = []
    monkeypatch.setattr(influx, "mask_secret", masked.append)
    monkeypatch.setenv("PERFPIPE_INFLUXDB_PASSWORD", "env-pw-9z8y")
    influx.influx_settings()
    assert masked == ["env-pw-9z8y"]


def test_influxdb_hook_carries_the_settings(monkeypatch):
    hook = influx.influxdb_hook(timeout_s=5)
    assert isinstance(hook, InfluxDBHook)
    assert (hook.influxdb_conn_id, hook.timeout_s, hook.settings.url) == ("perfpipe_influxdb", 5,
                                                                         "http://127.0.0.1:8086")
