"""Session fixtures: the test suite's own influxd, demo target, Airflow DB and config, all on loopback.

Airflow reads its settings at import time, so the environment is set here, before any test imports airflow.
Nothing touches the developer's ./data, ./reports or .airflow.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="perfpipe-tests-"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


DEMO_PORT = free_port()
DEMO_URL = f"http://127.0.0.1:{DEMO_PORT}"
CONFIG_DIR = SESSION_DIR / "config"

os.environ.update({
    "AIRFLOW_HOME": str(SESSION_DIR / "airflow"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{SESSION_DIR / 'airflow' / 'airflow.db'}",
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "PERFPIPE_CONFIG_DIR": str(CONFIG_DIR),
    "PERFPIPE_REPORTS_DIR": str(SESSION_DIR / "reports"),
    "K6_NO_USAGE_REPORT": "true",
})
(SESSION_DIR / "airflow").mkdir(parents=True, exist_ok=True)


def _write_test_config() -> None:
    """The repo's config with the demo target moved to this session's port."""
    shutil.copytree(ROOT / "config", CONFIG_DIR)
    targets_file = CONFIG_DIR / "targets.yaml"
    targets = yaml.safe_load(targets_file.read_text())
    targets["targets"]["demo"]["base_url"] = DEMO_URL
    targets_file.write_text(yaml.safe_dump(targets, sort_keys=False))


_write_test_config()


def http_json(url: str, method: str = "GET", timeout: float = 5) -> dict:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout_s}s")


@pytest.fixture(scope="session")
def influxdb():
    """Our own influxd on a free loopback port (scripts/influxd.sh, max-body-size 0), stopped at the end."""
    port = free_port()
    env = {**os.environ, "PERFPIPE_INFLUXDB_PORT": str(port),
           "PERFPIPE_INFLUXDB_DATA_DIR": str(SESSION_DIR / "influxdb"),
           "PERFPIPE_RUN_DIR": str(SESSION_DIR / "run"), "PERFPIPE_LOG_DIR": str(SESSION_DIR / "log")}
    env.pop("PERFPIPE_INFLUXDB_URL", None)
    subprocess.run(["bash", str(ROOT / "scripts" / "influxd.sh"), "start"], env=env, check=True, timeout=60)
    os.environ["PERFPIPE_INFLUXDB_URL"] = f"http://127.0.0.1:{port}"
    from perfpipe.hooks.influxdb import InfluxDBHook

    yield InfluxDBHook()
    subprocess.run(["bash", str(ROOT / "scripts" / "influxd.sh"), "stop"], env=env, check=False, timeout=60)


class DemoTarget:
    def __init__(self, url: str):
        self.url = url

    def stats(self) -> dict:
        return http_json(f"{self.url}/__stats")

    def reset(self) -> None:
        http_json(f"{self.url}/__stats/reset", method="POST")

    def requests(self) -> int:
        return int(self.stats()["requests"])


@pytest.fixture(scope="session")
def demo_target():
    """The demo shop on this session's port; its /__stats counts every request it receives."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "demo" / "demo_target.py"), "--host", "127.0.0.1",
                             "--port", str(DEMO_PORT)], stdout=subprocess.DEVNULL,
                            stderr=open(SESSION_DIR / "demo.log", "w"), start_new_session=True)
    wait_until(lambda: http_json(f"{DEMO_URL}/health") is not None, 20, "demo target")
    yield DemoTarget(DEMO_URL)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def airflow_db():
    from airflow.utils import db

    db.initdb()


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(ROOT / "dags"))


@pytest.fixture
def stack(influxdb, demo_target, dagbag):
    """Everything a real run needs: influxd, demo target, Airflow DB and the parsed DAGs."""
    return {"influx": influxdb, "demo": demo_target, "dagbag": dagbag}


def perfpipe_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed `perfpipe` console script, as a user runs it."""
    exe = Path(sys.executable).parent / "perfpipe"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def cli(influxdb, demo_target, airflow_db):
    """Run the `perfpipe` CLI against this session's stack."""
    return perfpipe_cli


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return SESSION_DIR
