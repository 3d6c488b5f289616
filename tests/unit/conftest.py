"""Fixtures for perfpipe's pure unit tests: no network, no InfluxDB, no k6, no Airflow metadata DB.

Environment is pinned per test (real config/ files, reports under tmp_path, an explicit InfluxDB URL so no Airflow
Connection lookup is ever attempted), and name resolution is refused for anything but 'localhost' and literal IPs.
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

# Importing Airflow creates $AIRFLOW_HOME/logs: keep it out of the repo and ~ unless tests/conftest.py (loaded
# first) already chose a home. setdefault, so the shared conftest's values always win.
if "AIRFLOW_HOME" not in os.environ:
    _airflow_home = tempfile.mkdtemp(prefix="perfpipe-unit-airflow-")
    os.environ["AIRFLOW_HOME"] = _airflow_home
    atexit.register(shutil.rmtree, _airflow_home, ignore_errors=True)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "config"
SCRIPTS_DIR = REPO_ROOT / "k6-scripts"
INFLUX_URL = "http://127.0.0.1:8086"

_real_getaddrinfo = socket.getaddrinfo


def _guarded_getaddrinfo(host, *args, **kwargs):
    """Only loopback names and literal addresses may be resolved in unit tests (no DNS, no network)."""
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and name.lower().rstrip(".") != "localhost":
        try:
            ipaddress.ip_address(name.split("%")[0])
        except ValueError:
            raise AssertionError(f"unit test tried to resolve {name!r}: fake the resolver instead") from None
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def perfpipe_env(monkeypatch, tmp_path):
    """Every test sees the repo's config, writes reports under tmp_path and never resolves a public name."""
    for key in list(os.environ):
        if key.startswith("PERFPIPE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PERFPIPE_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("PERFPIPE_SCRIPTS_DIR", str(SCRIPTS_DIR))
    monkeypatch.setenv("PERFPIPE_REPORTS_DIR", str(tmp_path / "reports"))
    # An explicit URL makes influx_settings() skip the Airflow Connection lookup (which could reach a DB/API).
    monkeypatch.setenv("PERFPIPE_INFLUXDB_URL", INFLUX_URL)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    from perfpipe.core.hooks.influxdb import InfluxDBHook

    def no_influx(self):
        raise AssertionError("unit tests never talk to InfluxDB: fake InfluxDBHook.query instead")

    monkeypatch.setattr(InfluxDBHook, "get_conn", no_influx)
    return tmp_path


@pytest.fixture
def api_target():
    """A validated inline target with no max_vus (the standard stress shape needs 10,000 VUs)."""
    from perfpipe.app.targets import resolve_target

    return resolve_target({
        "name": "unit-api",
        "base_url": "http://127.0.0.1:8090/",
        "requests": [
            {"name": "list", "method": "GET", "path": "/api/items", "weight": 80},
            {"name": "create", "method": "post", "path": "/api/items", "weight": 20, "expect_status": [201],
             "body": {"a": 1}},
        ],
    })
