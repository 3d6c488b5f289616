"""perfpipe.core.hooks.influxdb: InfluxDBHook shaped like a provider's hook, settings given or from a Connection."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk import BaseHook

from perfpipe.core.errors import InfrastructureError
from perfpipe.core.hooks.influxdb import InfluxDBHook, InfluxSettings


def _conn(**fields):
    values = {"host": None, "port": None, "schema": None, "login": None, "password": None, "extra_dejson": {}}
    return SimpleNamespace(**{**values, **fields})


def test_the_hook_is_shaped_like_a_provider_hook():
    assert issubclass(InfluxDBHook, BaseHook)
    assert (InfluxDBHook.conn_name_attr, InfluxDBHook.default_conn_name) == ("influxdb_conn_id", "perfpipe_influxdb")
    assert InfluxDBHook.conn_type and InfluxDBHook.hook_name
    hook = InfluxDBHook()
    assert hook.influxdb_conn_id == "perfpipe_influxdb" and hook.timeout_s == 30


def test_given_settings_are_used_without_a_connection_lookup(monkeypatch):
    settings = InfluxSettings("http://127.0.0.1:9999", "perf")
    hook = InfluxDBHook("mine", settings=settings, timeout_s=5)

    def no_lookup(conn_id):
        raise AssertionError("looked up a Connection")

    monkeypatch.setattr(hook, "get_connection", no_lookup)
    assert hook.settings is settings and hook.influxdb_conn_id == "mine"


def test_settings_come_from_the_named_connection(monkeypatch):
    looked_up = []

    def get_connection(conn_id):
        looked_up.append(conn_id)
        return _conn(host="10.1.2.3", port=8087, schema="perf", login="w", password="pw-5f6e",
                     extra_dejson={"ssl": True})

    hook = InfluxDBHook("influx_prod")
    monkeypatch.setattr(hook, "get_connection", get_connection)
    assert hook.settings == InfluxSettings("https://10.1.2.3:8087", "perf", "w", "pw-5f6e")
    assert hook.settings.write_url == "https://10.1.2.3:8087/perf"
    assert looked_up == ["influx_prod"]  # once


def test_a_missing_connection_is_an_infrastructure_error(monkeypatch):
    def missing(conn_id):
        raise LookupError(f"The conn_id `{conn_id}` isn't defined")

    hook = InfluxDBHook()
    monkeypatch.setattr(hook, "get_connection", missing)
    with pytest.raises(InfrastructureError, match="perfpipe_influxdb"):
        hook.settings


def test_copy_keeps_the_settings_with_a_client_of_its_own():
    hook = InfluxDBHook("c", settings=InfluxSettings("http://127.0.0.1:1", "k6"), timeout_s=7)
    copy = hook.copy()
    assert (copy.influxdb_conn_id, copy.settings, copy.timeout_s) == ("c", hook.settings, 7)
    assert copy is not hook and copy._client is None
