"""perfpipe.core.hooks.influxdb.InfluxSettings: the connection settings keep their secret out of logs."""

from __future__ import annotations

from perfpipe.core.hooks.influxdb import InfluxSettings


def test_influx_password_not_in_repr():
    assert "hunter2" not in repr(InfluxSettings(url="http://127.0.0.1:8086", database="k6", password="hunter2"))
