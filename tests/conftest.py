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
# The whole demo system (scripts/demo.sh: Redis, PostgreSQL, fault proxy, API) on free ports. Its own
# directory, searchable by others: PostgreSQL runs as the `postgres` user when the tests run as root, and
# SESSION_DIR (mkdtemp, 0700) is not reachable for it.
# Named at import (the environment below needs it), made by the demo_system fixture: unit runs need none.
DEMO_DIR = Path(tempfile.gettempdir()) / f"perfpipe-demo-{SESSION_DIR.name.rsplit('-', 1)[-1]}"
DEMO_PORTS = {"api": DEMO_PORT, "cache": free_port(), "database": free_port(), "proxy": free_port(),
              "proxy_control": free_port()}
# In the tests' own environment too: the chaos holder addresses this demo system through scripts/demo.sh (pid,
# start), from in-process dag.test() runs and from the CLI alike.
DEMO_ENV = {
    "PERFPIPE_DEMO_HOST": "127.0.0.1",
    "PERFPIPE_DEMO_PORT": str(DEMO_PORTS["api"]),
    "PERFPIPE_DEMO_REDIS_PORT": str(DEMO_PORTS["cache"]),
    "PERFPIPE_DEMO_PG_PORT": str(DEMO_PORTS["database"]),
    "PERFPIPE_DEMO_PROXY_PORT": str(DEMO_PORTS["proxy"]),
    "PERFPIPE_DEMO_PROXY_CONTROL_PORT": str(DEMO_PORTS["proxy_control"]),
    "PERFPIPE_DEMO_DATA_DIR": str(DEMO_DIR / "data"),
    "PERFPIPE_DEMO_WORKERS": "2",
    "PERFPIPE_RUN_DIR": str(DEMO_DIR / "run"),
}
os.environ.update(DEMO_ENV)
os.environ.pop("PERFPIPE_DEMO_ARGS", None)


def airflow_task_env() -> dict[str, str]:
    """What an Airflow started by a test gives its tasks: this session's config, reports and InfluxDB, and the demo
    system's ports and run dir (a chaos task reaches the demo's components through scripts/demo.sh)."""
    return {k: v for k, v in os.environ.items()
            if k in ("PERFPIPE_CONFIG_DIR", "PERFPIPE_REPORTS_DIR", "PERFPIPE_INFLUXDB_URL", "PERFPIPE_RUN_DIR")
            or k.startswith("PERFPIPE_DEMO_")}
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
    components = targets["targets"]["demo"]["chaos"]["components"]
    components["database_link"]["control_url"] = f"http://127.0.0.1:{DEMO_PORTS['proxy_control']}"
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


def k6_runs_at(dag_id: str, date: str) -> list:
    """This user's k6 processes of `dag_id` runs at that logical date. Each attempt has its own run id
    (manual__<date>__<target>__<home>.<nonce>, perfpipe.app.run_identity): found by its date part."""
    from perfpipe.app.live_status import k6_processes, split_testid

    found = []
    for proc in k6_processes():
        parts = split_testid(proc.testid)
        if parts and parts[0] == dag_id and parts[1].startswith(f"manual__{date}__"):
            found.append(proc)
    return found


def run_id_of(k6_process) -> str:
    from perfpipe.app.live_status import split_testid

    return split_testid(k6_process.testid)[1]


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
    from perfpipe.app.influx import influxdb_hook

    yield influxdb_hook()
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


DEMO_COMPONENTS = ("api", "cache", "database", "proxy")


class DemoSystem(DemoTarget):
    """The running demo system: `.env` is what scripts/demo.sh needs to address THIS instance (ports, dirs), so
    `subprocess.run(["bash", DEMO_SH, "pid", "cache"], env=demo_system.env)` works from any test; the helpers
    below wrap the same calls."""

    script = ROOT / "scripts" / "demo.sh"

    def __init__(self, url: str, env: dict, ports: dict):
        super().__init__(url)
        self.env = env
        self.ports = ports  # api, cache, database, proxy, proxy_control
        self.control_url = f"http://127.0.0.1:{ports['proxy_control']}"
        self.data_dir = Path(env["PERFPIPE_DEMO_DATA_DIR"])
        self.pgpass_file = self.data_dir / "secrets" / "pgpass"

    def sh(self, *args: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess:
        done = subprocess.run(["bash", str(self.script), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"scripts/demo.sh {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
        return done

    def pid(self, component: str) -> int:
        return int(self.sh("pid", component).stdout.strip())

    def pids(self, component: str) -> list[int]:
        return [int(p) for p in self.sh("pids", component).stdout.split()]

    def start(self, component: str) -> None:
        self.sh("start", component)

    def stop(self, component: str) -> None:
        self.sh("stop", component)

    def pause(self, component: str) -> None:
        self.sh("pause", component)

    def resume(self, component: str) -> None:
        self.sh("resume", component)

    def health(self) -> dict:
        return http_json(f"{self.url}/health")

    def faults(self, method: str = "GET", body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.control_url}/faults", method=method, data=data)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def database_url(self, via_proxy: bool = False) -> str:
        port = self.ports["proxy" if via_proxy else "database"]
        return f"postgresql://demo@127.0.0.1:{port}/demo"

    def restore(self) -> None:
        """Undo any fault: resume paused components, start stopped ones, clear the proxy's faults."""
        for component in ("cache", "database", "proxy", "api"):
            self.sh("resume", component, check=False)
            self.start(component)
        self.faults("DELETE")
        self.wait_serving()

    def serves_normally(self, rounds: int = 8) -> bool:
        """Reads and a checkout (a database write) answer normally, `rounds` times in a row: every worker's
        breakers have closed again, not just /health."""
        body = json.dumps({"user_id": 1, "items": [{"product_id": 2, "qty": 1}]}).encode()
        try:
            for i in range(rounds):
                for request, want in ((f"{self.url}/api/products/{1 + i}", 200), (f"{self.url}/api/users/{1 + i}", 200),
                                      (urllib.request.Request(f"{self.url}/api/checkout", data=body, method="POST",
                                                              headers={"Content-Type": "application/json"}), 201)):
                    with urllib.request.urlopen(request, timeout=5) as response:
                        if response.status != want:
                            return False
        except OSError:  # HTTPError (a 503) included
            return False
        return True

    def wait_serving(self, timeout_s: float = 30) -> None:
        wait_until(lambda: self.health()["status"] == "ok" and self.serves_normally(), timeout_s,
                   "demo system serving normally")


@pytest.fixture(scope="session")
def demo_system():
    """The whole demo system on this session's ports, stopped (and its data removed) at session end."""
    DEMO_DIR.mkdir(mode=0o711)
    DEMO_DIR.chmod(0o711)  # mkdir's mode is masked by the umask
    ports = DEMO_PORTS
    env = {**os.environ, **DEMO_ENV, "PERFPIPE_LOG_DIR": str(SESSION_DIR / "log"), "PERFPIPE_PYTHON": sys.executable}
    system = DemoSystem(DEMO_URL, env, ports)
    try:
        system.sh("start", timeout=120)
        yield system
    finally:
        system.sh("resume", "database", check=False)  # a paused server cannot shut down
        system.sh("resume", "cache", check=False)
        system.sh("stop", check=False, timeout=120)
        shutil.rmtree(DEMO_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_target(demo_system):
    """The demo shop on this session's port (the whole demo system); /__stats counts every request it receives."""
    return demo_system


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
def quick_pipeline(influxdb, demo_target, airflow_db) -> subprocess.CompletedProcess:
    """One quick pipeline run with soak on the demo target, through the CLI, shared by the tests that check its
    path (test_pipeline) and the data it leaves (test_grafana_dashboards): a pipeline run takes minutes."""
    return counted_cli(QUICK_PIPELINE_COUNTS, "run", "pipeline", "--target", "demo", "--profile", "quick",
                       "--include-soak", "--json", timeout=900)


# The quick pipeline's expensive checks, counted in its own process (tests/counting_cli.py; test_validate_once).
QUICK_PIPELINE_COUNTS = SESSION_DIR / "quick_pipeline_counts.json"


def counted_cli(counts_file: Path, *args: str, timeout: float = 300,
                env: dict | None = None) -> subprocess.CompletedProcess:
    """The CLI's own main() as the console script runs it, writing the run's check counts to counts_file."""
    return subprocess.run([sys.executable, str(ROOT / "tests" / "counting_cli.py"), str(counts_file), *args],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def counting_cli(influxdb, demo_target, airflow_db):
    """counted_cli against this session's stack."""
    return counted_cli


@pytest.fixture(scope="session")
def quick_pipeline_counts(quick_pipeline) -> dict:
    return json.loads(QUICK_PIPELINE_COUNTS.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return SESSION_DIR


# --- a Docker engine of our own (runtime: docker, chaos faults on containers) -------------------------------

K6_TEST_IMAGE = "perfpipe-test/k6:1.1.0"  # not grafana/k6: proves the configured image is the one used
DOCKERD_SH = ROOT / "scripts" / "dockerd.sh"


def _dockerd_env() -> dict[str, str]:
    return {**os.environ, "PERFPIPE_DOCKER_DIR": str(SESSION_DIR / "docker"),
            "PERFPIPE_RUN_DIR": str(SESSION_DIR / "run"), "PERFPIPE_LOG_DIR": str(SESSION_DIR / "log")}


def _dockerd(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DOCKERD_SH), *args], env=_dockerd_env(), capture_output=True, text=True,
                          timeout=timeout)


class Engine:
    def __init__(self, host: str):
        self.host = host

    def docker(self, *args: str) -> str:
        proc = subprocess.run(["docker", *args], env={**os.environ, "DOCKER_HOST": self.host},
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def containers(self, *filters: str) -> list[str]:
        args = ["ps", "-aq"] + [f"--filter={f}" for f in filters]
        return self.docker(*args).split()


@pytest.fixture(scope="session")
def docker_engine():
    """Our own dockerd for this session (scripts/dockerd.sh), with the k6 image imported; stopped at the end, nothing left running."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("no Docker engine can start here: docker.io is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("no Docker engine can start here: dockerd needs root")
    started = _dockerd("start")
    if started.returncode != 0:
        _dockerd("stop")
        pytest.skip(f"no Docker engine can start here: {(started.stderr or started.stdout).strip()[-600:]}")
    host = _dockerd("host").stdout.strip()
    old = {k: os.environ.get(k) for k in ("DOCKER_HOST", "PERFPIPE_K6_IMAGE")}
    try:
        imported = _dockerd("import-k6", K6_TEST_IMAGE, timeout=180)
        assert imported.returncode == 0, imported.stderr
        os.environ.update({"DOCKER_HOST": host, "PERFPIPE_K6_IMAGE": K6_TEST_IMAGE})
        engine = Engine(host)
        yield engine
        assert engine.containers() == [], "a k6 container was left behind"
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stopped = _dockerd("stop")
        assert stopped.returncode == 0, stopped.stderr
        leftovers = subprocess.run(["pgrep", "-f", str(SESSION_DIR / "docker")], capture_output=True, text=True)
        assert leftovers.stdout.strip() == "", f"engine processes left running: {leftovers.stdout}"


@pytest.fixture(autouse=True)
def _fresh_checks():
    """Validate-once caches (perfpipe.app.stage, perfpipe.core.k6.runner) live per process: each test checks
    its own input afresh, as a new run would."""
    from perfpipe.app.stage import clear_checks
    from perfpipe.core.k6.runner import clear_inspect_cache

    clear_checks()
    clear_inspect_cache()
    yield
