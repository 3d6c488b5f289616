"""A real Airflow (API server, scheduler with LocalExecutor, DAG processor) on a loopback port, for the fault loops
and the overlap test: the parts that enforce pools, heartbeats, mark-failed and execution_timeout.

Unlike `airflow standalone`, the scheduler runs with `--skip-serve-logs`: Airflow binds its log server to 0.0.0.0
(port 8793) and that is the one listener of ours that would not be loopback. Nothing else changes: SQLite, the
simple auth manager (all users admin, so no password exists to leak) and LocalExecutor, as standalone uses.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from perfpipe.app.chaos.injectors import process_alive as is_alive  # running, not a zombie waiting to be reaped

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
COMPONENTS = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler", "--skip-serve-logs"],
    "dag-processor": ["dag-processor"],
}
HEALTHY_COMPONENTS = ("metadatabase", "scheduler", "dag_processor")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"{what}: not reached after {timeout_s:.0f}s")


def processes_with_env(key: str, value: str) -> list[int]:
    """Our processes whose environment carries key=value (this Airflow's own AIRFLOW_HOME)."""
    needle = f"{key}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid == os.getuid() and needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


class LocalAirflow:
    """`with LocalAirflow(home, dags_folder, env) as airflow:` -> airflow.url, airflow.client()."""

    def __init__(self, home: Path, dags_folder: Path, perfpipe_env: dict[str, str], parallelism: int = 4):
        self.home = Path(home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PERFPIPE_"))}
        env.update(perfpipe_env)
        env.update({
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,  # tasks reach the Execution API here
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # no cron runs in the middle of a measurement
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "K6_NO_USAGE_REPORT": "true",
        })
        self.env = env

    def __enter__(self) -> "LocalAirflow":
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            self._run(["airflow", "db", "migrate"], timeout=300)
            self._run([str(VENV_BIN / "python"), "-m", "perfpipe.app.pools", "sync"], timeout=120)
            for name, argv in COMPONENTS.items():
                self.procs[name] = subprocess.Popen(
                    [str(VENV_BIN / "airflow"), *argv], cwd=self.home, env=self.env, stdin=subprocess.DEVNULL,
                    stdout=open(self.home / f"{name}.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
            wait_until(self._healthy, 240, "Airflow health")
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self, argv: list[str], timeout: float) -> None:
        proc = subprocess.run(argv, cwd=self.home, env=self.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr[-3000:]}")

    def _healthy(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited ({proc.returncode}): {self.log_tail(name)}")
        with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as response:
            health = json.loads(response.read())
        return all((health.get(c) or {}).get("status") == "healthy" for c in HEALTHY_COMPONENTS)

    def log_tail(self, name: str = "scheduler", n: int = 3000) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.is_file() else ""

    def client(self):
        from perfpipe.entry.airflow_api import AirflowClient

        return AirflowClient(self.url)

    def wait_for_dags(self, dag_ids: list[str], timeout_s: float = 180) -> None:
        from perfpipe.entry.airflow_api import AirflowAPIError

        client = self.client()

        def parsed() -> bool:
            try:
                return all(not client.get_dag(d)["has_import_errors"] for d in dag_ids)
            except AirflowAPIError as exc:
                if exc.status == 404:
                    return False
                raise

        wait_until(parsed, timeout_s, f"DAGs {dag_ids} parsed", interval_s=1)
        for dag_id in dag_ids:
            client.set_paused(dag_id, False)

    def component_pids(self) -> set[int]:
        return {p.pid for p in self.procs.values()}

    def stop(self, timeout_s: float = 45) -> list[int]:
        """SIGTERM every component's process group; SIGKILL what still carries this AIRFLOW_HOME after the wait.
        Returns the pids that had to be killed."""
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout_s
        mine = lambda: [p for p in processes_with_env("AIRFLOW_HOME", str(self.home)) if is_alive(p)]  # noqa: E731
        while time.monotonic() < deadline and (any(p.poll() is None for p in self.procs.values()) or mine()):
            time.sleep(0.5)
        leftovers = mine()
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        return leftovers
