"""Run control with real parts: `perfpipe stop` and `perfpipe status` against real k6 runs, and `perfpipe run/stop
--airflow-url` against a real `airflow standalone` (its own AIRFLOW_HOME, SQLite, loopback port).

Everything listens on and talks to 127.0.0.1 only; loads go only to the session's demo target; every wait is
bounded in time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from perfpipe.app.live_status import k6_processes_of_run
from perfpipe.app.run_identity import home_tag, run_id_for
from perfpipe.app.report_paths import stage_report_dir

from conftest import ROOT, free_port, k6_runs_at, perfpipe_cli, run_id_of, wait_until  # noqa: E402  (tests/ is on sys.path)

sys.path.insert(0, str(ROOT / "bench"))

from local_airflow import is_alive, processes_with_env  # noqa: E402  (the same process checks as the bench Airflow)

pytestmark = pytest.mark.integration

PERFPIPE = str(Path(sys.executable).parent / "perfpipe")
CHAOS_40S = ["run", "chaos", "--target", "demo", "--profile", "quick", "--set", "duration=40s", "--json"]


def start_cli(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """`perfpipe ...` in the background, in its own process group (so a failed test can end all of it)."""
    return subprocess.Popen([PERFPIPE, *args], stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def end_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def wait_for_k6(dag_id: str, date: str, proc: subprocess.Popen, log: Path, timeout_s: float) -> str:
    """Wait for the k6 of the CLI's run of `dag_id` at `date`; returns the run's id (each attempt its own)."""
    def running() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"perfpipe run exited ({proc.returncode}) before k6 started: "
                                 f"{log.read_text()[-3000:]}")
        return bool(k6_runs_at(dag_id, date))

    wait_until(running, timeout_s, f"k6 of {dag_id} at {date}")
    return run_id_of(k6_runs_at(dag_id, date)[0])


def aborted_points(influx, dag_id: str, run_id: str) -> list[dict]:
    return [p for p in influx.query('SELECT * FROM "perf_results" WHERE "dag_id" = $d AND "run_id" = $r',
                                    {"d": dag_id, "r": run_id}) if p["verdict"] == "aborted"]


def live_status_of(run_id: str) -> dict | None:
    proc = perfpipe_cli("status", "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return next((t for t in json.loads(proc.stdout)["running"] if t["run_id"] == run_id), None)


def test_local_stop_aborts_the_in_process_run(influxdb, demo_target, airflow_db, tmp_path):
    date = "2026-03-01T00:00:00+00:00"
    log = tmp_path / "run.log"
    run = start_cli(CHAOS_40S + ["--logical-date", date], log)
    try:
        run_id = wait_for_k6("perf_chaos", date, run, log, timeout_s=120)
        # `perfpipe status` sees it live, from InfluxDB: VUs, request rate and error rate of this very run.
        deadline = time.monotonic() + 30
        live = None
        while time.monotonic() < deadline and not (live and live["rps"] > 0 and live["vus"]):
            time.sleep(1)
            live = live_status_of(run_id)
        assert live is not None, "perfpipe status did not list the running test"
        assert (live["dag_id"], live["test_type"], live["target"]) == ("perf_chaos", "chaos", "demo")
        assert live["vus"] == 10 and live["rps"] > 0 and 0 <= live["error_rate"] <= 1

        started = time.monotonic()
        stop = perfpipe_cli("stop", run_id, "--dag-id", "perf_chaos", "--json", timeout=60)
        assert stop.returncode == 0, stop.stderr[-2000:]
        [stopped] = json.loads(stop.stdout)["stopped"]
        assert stopped["exited"] and stopped["testid"].startswith(f"perf_chaos:{run_id}:chaos:try")

        out, _ = run.communicate(timeout=60)
        assert time.monotonic() - started < 30
        assert not k6_processes_of_run("perf_chaos", run_id)
        assert run.returncode not in (0, None), out
        result = json.loads(out)
        assert result["outcome"] == "aborted" and result["run_id"] == run_id
        [stage] = result["stages"]
        assert stage["verdict"] == "aborted"
        [point] = aborted_points(influxdb, "perf_chaos", run_id)
        assert point["testid"] == stopped["testid"] and point["k6_exit_code"] == 105
        summary = stage_report_dir("perf_chaos", run_id, "chaos") / "summary.json"
        assert json.loads(summary.read_text())["metrics"]["http_reqs"]["count"] > 0
        # Nothing of that run is left to stop.
        again = perfpipe_cli("stop", run_id, "--dag-id", "perf_chaos", timeout=60)
        assert again.returncode == 1 and "no k6 process" in again.stdout
    finally:
        end_group(run)


def test_stop_never_touches_other_runs(influxdb, demo_target, airflow_db, tmp_path):
    """A run id that is a prefix of the running one, or the same run id under another DAG: nothing stopped."""
    date = "2026-03-02T00:00:00+00:00"
    log = tmp_path / "run.log"
    run = start_cli(["run", "smoke", "--target", "demo", "--profile", "quick", "--set", "duration=15s",
                     "--logical-date", date, "--json"], log)
    try:
        run_id = wait_for_k6("perf_smoke", date, run, log, timeout_s=120)
        for args in ([run_id[:-1], "--dag-id", "perf_smoke"], [run_id, "--dag-id", "perf_chaos"],
                     [run_id, "--dag-id", "perf_smok"]):
            proc = perfpipe_cli("stop", *args, "--wait", "1", timeout=60)
            assert proc.returncode == 1, (args, proc.stdout, proc.stderr[-2000:])
        assert k6_processes_of_run("perf_smoke", run_id)
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 0, log.read_text()[-3000:]
        assert json.loads(out)["stages"][0]["verdict"] == "pass"
    finally:
        end_group(run)


# --- against a real `airflow standalone` ---------------------------------------------------------------------

def _http_json(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


class Standalone:
    def __init__(self, url: str, home: Path, user: str, password: str, proc: subprocess.Popen, log: Path):
        self.url, self.home, self.user, self.password, self.proc, self.log = url, home, user, password, proc, log

    @property
    def cli_env(self) -> dict:
        return {"PERFPIPE_AIRFLOW_USER": self.user, "PERFPIPE_AIRFLOW_PASSWORD": self.password}

    def client(self):
        from perfpipe.entry.airflow_api import AirflowClient, Credentials

        return AirflowClient(self.url, Credentials(username=self.user, password=self.password), timeout_s=30)

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:]


@pytest.fixture(scope="module")
def standalone(influxdb, demo_target, tmp_path_factory):
    """`airflow standalone` with its own AIRFLOW_HOME (SQLite) on a free loopback port, this project's dags and
    plugins, and the session's PERFPIPE_* settings (config with the demo target, reports, InfluxDB URL)."""
    home = tmp_path_factory.mktemp("standalone")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # it runs `airflow ...`
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        # Tasks reach the Execution API at {base_url}/execution/; without it they would call localhost:8080.
        "AIRFLOW__API__BASE_URL": url,
        # Unpausing a DAG must not start its cron schedule's runs in the middle of the test.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "K6_NO_USAGE_REPORT": "true",
    })
    log = home / "standalone.log"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"], cwd=home, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        def healthy() -> bool:
            assert proc.poll() is None, f"airflow standalone exited: {log.read_text()[-4000:]}"
            try:
                health = _http_json(f"{url}/api/v2/monitor/health")
            except OSError:
                return False
            return all((health.get(c) or {}).get("status") == "healthy"
                       for c in ("metadatabase", "scheduler", "dag_processor", "triggerer"))

        wait_until(healthy, 240, "airflow standalone health")
        # The simple auth manager writes the generated admin password to this file in AIRFLOW_HOME.
        passwords = home / "simple_auth_manager_passwords.json.generated"
        wait_until(lambda: passwords.is_file() and "admin" in json.loads(passwords.read_text() or "{}"), 30,
                   "generated admin password")
        airflow = Standalone(url, home, "admin", json.loads(passwords.read_text())["admin"], proc, log)

        client = airflow.client()

        def parsed() -> bool:
            from perfpipe.entry.airflow_api import AirflowAPIError

            try:
                return all(not client.get_dag(d)["has_import_errors"] for d in ("perf_smoke", "perf_chaos"))
            except AirflowAPIError as exc:
                if exc.status == 404:
                    return False
                raise

        wait_until(parsed, 120, "perf DAGs parsed by the dag processor")
        yield airflow
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline and (proc.poll() is None or
                                               any(is_alive(p) for p in processes_with_env("AIRFLOW_HOME", str(home)))):
            time.sleep(0.5)
        leftovers = [p for p in processes_with_env("AIRFLOW_HOME", str(home)) if is_alive(p)]
        for pid in leftovers:  # only processes carrying this fixture's own AIRFLOW_HOME
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert not leftovers, f"processes of standalone left after 45s: {leftovers}"


@pytest.mark.standalone
def test_run_through_the_rest_api_matches_the_in_process_result(standalone, influxdb):
    date = "2026-03-03T00:00:00+00:00"
    proc = perfpipe_cli("run", "smoke", "--target", "demo", "--profile", "quick", "--logical-date", date,
                        "--airflow-url", standalone.url, "--json", timeout=300, env=standalone.cli_env)
    # perf_smoke is paused and scheduled: unpausing would start its schedule, so it needs --unpause.
    assert proc.returncode == 2 and "--unpause" in json.loads(proc.stdout)["error"]
    assert standalone.client().runs_at("perf_smoke", datetime.fromisoformat(date)) == []
    proc = perfpipe_cli("run", "smoke", "--target", "demo", "--profile", "quick", "--logical-date", date,
                        "--airflow-url", standalone.url, "--unpause", "--json", timeout=300, env=standalone.cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:] + standalone.log_tail()
    result = json.loads(proc.stdout)
    assert set(result) == {"dag_id", "run_id", "state", "stages", "path", "outcome", "failed_tasks", "exit_code"}
    assert (result["dag_id"], result["state"]) == ("perf_smoke", "success")
    assert result["run_id"].startswith(f"manual__{date}__demo__")  # the attempt's own id: date, target, checkout
    assert (result["outcome"], result["path"], result["failed_tasks"]) == ("passed", ["smoke"], [])
    [stage] = result["stages"]
    assert set(stage) == {"test_type", "target", "verdict", "testid", "metrics", "analysis", "checks",
                          "metrics_complete", "report"}
    assert stage["verdict"] == "pass" and stage["metrics_complete"] is True
    assert stage["testid"] == f"perf_smoke:{result['run_id']}:smoke:try1"
    assert Path(stage["report"]).is_file()
    # It followed the run: the paused DAG was unpaused, task states and the stage result were printed live.
    assert "unpaused" in proc.stderr and "run_k6: running" in proc.stderr and "smoke on demo: PASS" in proc.stderr
    client = standalone.client()
    assert client.get_run("perf_smoke", result["run_id"])["conf"]["profile"] == "quick"
    # The k6 task's one-slot target pool did not exist in this fresh Airflow: the CLI created it.
    assert "created the one-slot pool perf_target_demo" in proc.stderr
    assert client.get_pool("perf_target_demo")["slots"] == 1


@pytest.mark.standalone
def test_rerun_of_a_date_through_the_rest_api_replaces_the_earlier_run(standalone, influxdb):
    date = "2026-03-03T00:00:00+00:00"  # the date of the run above
    proc = perfpipe_cli("run", "smoke", "--target", "demo", "--profile", "quick", "--set", "duration=2s",
                        "--logical-date", date, "--airflow-url", standalone.url, "--json", timeout=300,
                        env=standalone.cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:] + standalone.log_tail()
    assert f"replacing the earlier success run manual__{date}__demo__" in proc.stderr
    result = json.loads(proc.stdout)
    assert result["run_id"].startswith(f"manual__{date}__demo__") and result["stages"][0]["metrics_complete"]
    points = influxdb.query('SELECT * FROM "perf_results" WHERE "dag_id" = \'perf_smoke\' AND '
                            "time = '2026-03-03T00:00:00Z'")
    assert [p["testid"] for p in points] == [result["stages"][0]["testid"]]


@pytest.mark.standalone
def test_params_refused_by_the_api_server(standalone, tmp_path, session_dir):
    """perfpipe's trigger check (a root middleware of the API server, registered by perfpipe_plugin) answers a bad
    trigger or backfill of a perf DAG with one line per problem, and nothing is created."""
    from datetime import datetime, timezone

    import requests

    from perfpipe.entry.airflow_api import AirflowAPIError, api_url

    client = standalone.client()
    date = datetime(2026, 3, 4, tzinfo=timezone.utc)

    def refused_trigger(conf: dict) -> str:
        with pytest.raises(AirflowAPIError) as refused:
            client.trigger("perf_smoke", conf, date, run_id_for(date, "demo", home_tag(os.environ["AIRFLOW_HOME"])))
        assert refused.value.status == 400, refused.value
        assert refused.value.message.startswith("refused before any load: ")
        assert "Failed validating" not in refused.value.message and "schema" not in refused.value.message
        return refused.value.message.removeprefix("refused before any load: ")

    assert refused_trigger({"profile": "quick", "overrides": {"vus": -5}}) == \
        "overrides.vus: expected an integer between 1 and 20000, got -5"
    assert refused_trigger({"vus": -5}) == ('vus: unknown key (known: target, inline_target, profile, overrides); '
                                            'it is an override: {"overrides": {"vus": ...}}')
    unknown = refused_trigger({"profile": "quick", "overrides": {"bogus": 1}})
    assert unknown.startswith("overrides.bogus: unknown key (known: executor, vus, duration, stages, ")
    assert client.runs_at("perf_smoke", date) == []
    # A backfill cannot bypass it: the same answer, and no backfill and no run is created.
    backfill = {"dag_id": "perf_smoke", "from_date": "2026-05-01T00:00:00+00:00",
                "to_date": "2026-05-01T02:00:00+00:00", "dag_run_conf": {"overrides": {"vus": -5}},
                "max_active_runs": 1}
    with pytest.raises(AirflowAPIError) as refused:
        client.request("POST", api_url(standalone.url, "backfills"), json=backfill)
    assert (refused.value.status, refused.value.message) == \
        (400, "refused before any load: overrides.vus: expected an integer between 1 and 20000, got -5")
    listed = client.request("GET", api_url(standalone.url, "backfills", query={"dag_id": "perf_smoke"}))
    assert not [b for b in listed["backfills"] if b["from_date"].startswith("2026-05-01")]
    assert client.runs_at("perf_smoke", datetime(2026, 5, 1, 1, tzinfo=timezone.utc)) == []
    # Only a caller Airflow lets create runs gets perfpipe's answer (and the config's targets): anyone else, Airflow's.
    anonymous = requests.post(api_url(standalone.url, "dags", "perf_smoke", "dagRuns"), timeout=30,
                              json={"logical_date": date.isoformat(), "conf": {"target": "nope"}})
    assert anonymous.status_code == 401 and "refused before any load" not in anonymous.text
    # A target only this CLI knows passes the local pre-flight; Airflow's Params schema refuses it: exit 2 with
    # the API's message, and no run exists.
    config = tmp_path / "config"
    shutil.copytree(session_dir / "config", config)
    targets = yaml.safe_load((config / "targets.yaml").read_text())
    targets["targets"]["demo_only_here"] = targets["targets"]["demo"]
    (config / "targets.yaml").write_text(yaml.safe_dump(targets, sort_keys=False))
    proc = perfpipe_cli("run", "smoke", "--target", "demo_only_here", "--profile", "quick", "--logical-date",
                        "2026-03-05T00:00:00+00:00", "--airflow-url", standalone.url, "--unpause", "--json",
                        timeout=120,
                        env={**standalone.cli_env, "PERFPIPE_CONFIG_DIR": str(config)})
    assert proc.returncode == 2, proc.stderr[-3000:]
    error = json.loads(proc.stdout)["error"]
    assert "refused" in error and "demo_only_here" in error
    assert client.runs_at("perf_smoke", datetime(2026, 3, 5, tzinfo=timezone.utc)) == []  # nothing triggered
    # Wrong credentials: exit 2 with Airflow's reason, nothing triggered.
    proc = perfpipe_cli("run", "smoke", "--target", "demo", "--profile", "quick", "--logical-date",
                        "2026-03-05T00:00:00+00:00", "--airflow-url", standalone.url, "--airflow-user", "admin",
                        "--airflow-password", "wrong", "--json", timeout=120)
    assert proc.returncode == 2 and "Invalid credentials" in json.loads(proc.stdout)["error"]


@pytest.mark.standalone
def test_full_quick_pipeline_through_the_rest_api_reaches_ready(standalone, influxdb):
    """The decision tree under a real scheduler, API server and LocalExecutor, triggered and followed via REST."""
    proc = perfpipe_cli("run", "pipeline", "--target", "demo", "--profile", "quick", "--logical-date",
                        "2026-03-10T00:00:00+00:00", "--airflow-url", standalone.url, "--json", timeout=900,
                        env=standalone.cli_env)
    assert proc.returncode == 0, proc.stderr[-3000:] + standalone.log_tail()
    result = json.loads(proc.stdout)
    assert result["path"] == ["smoke", "load", "stress", "spike", "chaos", "ready_to_deploy"]
    assert result["outcome"] == "ready_to_deploy" and result["state"] == "success"
    assert all(s["verdict"] in ("pass", "warn") and s["metrics_complete"] for s in result["stages"])
    # Stage results printed as they landed, in decision-tree order.
    landed = [line for line in proc.stderr.splitlines() if " on demo: " in line]
    assert [line.split(" on demo")[0].split()[-1] for line in landed][:5] == \
        ["smoke", "load", "stress", "spike", "chaos"]


@pytest.mark.standalone
def test_stop_through_the_rest_api_aborts_the_stage(standalone, influxdb, tmp_path):
    date = "2026-03-06T00:00:00+00:00"
    log = tmp_path / "run.log"
    run = start_cli(CHAOS_40S + ["--logical-date", date, "--airflow-url", standalone.url, "--unpause"], log,
                    env=standalone.cli_env)
    try:
        run_id = wait_for_k6("perf_chaos", date, run, log, timeout_s=180)
        wait_until(lambda: (live_status_of(run_id) or {}).get("rps", 0) > 0, 30, "live load in perfpipe status")
        stop = perfpipe_cli("stop", run_id, "--dag-id", "perf_chaos", "--airflow-url", standalone.url,
                            timeout=60, env=standalone.cli_env)
        assert stop.returncode == 0, stop.stderr[-2000:]
        assert "marked failed" in stop.stdout
        wait_until(lambda: not k6_processes_of_run("perf_chaos", run_id), 60, "k6 ended")
        wait_until(lambda: bool(aborted_points(influxdb, "perf_chaos", run_id)), 60, "aborted perf_results point")
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 2, log.read_text()[-3000:]
        result = json.loads(out)
        assert (result["state"], result["outcome"]) == ("failed", "aborted")
        assert [s["verdict"] for s in result["stages"]] == ["aborted"]
        # Stopping it again: nothing left to stop.
        again = perfpipe_cli("stop", run_id, "--dag-id", "perf_chaos", "--airflow-url", standalone.url,
                             timeout=60, env=standalone.cli_env)
        assert again.returncode == 1 and "already failed" in again.stdout
    finally:
        end_group(run)


@pytest.mark.standalone
def test_backfill_then_rerun_of_a_date_leaves_one_result_per_date(standalone, influxdb):
    """A backfill over three hourly dates of perf_smoke, then one date again: three points."""
    from datetime import datetime, timezone

    from perfpipe.entry.airflow_api import AirflowAPIError

    client = standalone.client()
    try:
        client.get_pool("perf_target_demo")
    except AirflowAPIError:
        client.create_pool("perf_target_demo", 1, "perfpipe: k6 load on target 'demo'")
    client.set_paused("perf_smoke", False)  # the scheduler runs backfills of active DAGs only
    conf = json.dumps({"target": "demo", "profile": "quick", "overrides": {"duration": "2s", "vus": 2}})
    dates = [datetime(2026, 4, 1, hour, tzinfo=timezone.utc) for hour in (0, 1, 2)]

    def backfill(start: datetime, end: datetime, reprocess: str = "none") -> None:
        # The REST API's backfill (what `airflow backfill create` and the UI do): a second process writing the
        # standalone's SQLite file, as the CLI command would, can fail with "database is locked".
        from perfpipe.entry.airflow_api import api_url

        deadline = time.monotonic() + 120
        while True:  # the scheduler closes a finished backfill a little after its last run; one per DAG at a time
            try:
                client.request("POST", api_url(standalone.url, "backfills"), json={
                    "dag_id": "perf_smoke", "from_date": start.isoformat(), "to_date": end.isoformat(),
                    "dag_run_conf": json.loads(conf), "reprocess_behavior": reprocess, "max_active_runs": 1})
                return
            except AirflowAPIError as exc:
                # 409: the previous backfill is still open; 503: SQLite was locked by the scheduler right then
                # (Airflow refuses backfill creation under concurrent SQLite access instead of waiting).
                if exc.status not in (409, 503) or time.monotonic() > deadline:
                    raise
            time.sleep(3)

    def finished(date: datetime, after: str | None = None) -> bool:
        runs = client.runs_at("perf_smoke", date)
        return bool(runs) and all(r["state"] in ("success", "failed") for r in runs) and \
            (after is None or any((r.get("end_date") or "") > after for r in runs))

    def results_at(date: datetime) -> list[dict]:
        return influxdb.query('SELECT * FROM "perf_results" WHERE "dag_id" = \'perf_smoke\' AND '
                              f"time = '{date.strftime('%Y-%m-%dT%H:%M:%SZ')}'")

    backfill(dates[0], dates[-1])
    for date in dates:
        wait_until(lambda: finished(date), 240, f"backfill run at {date}")
    first = {date: results_at(date) for date in dates}
    assert all(len(points) == 1 and points[0]["verdict"] == "pass" for points in first.values()), first
    assert all(r["state"] == "success" for d in dates for r in client.runs_at("perf_smoke", d))

    rerun_from = datetime.now(timezone.utc).isoformat()
    backfill(dates[1], dates[1], reprocess="completed")
    wait_until(lambda: finished(dates[1], after=rerun_from), 240, "re-run of the middle date")
    after = {date: results_at(date) for date in dates}
    assert [len(points) for points in after.values()] == [1, 1, 1]
    assert after[dates[1]][0]["testid"] != first[dates[1]][0]["testid"]  # the rerun replaced the point
    assert after[dates[0]][0]["testid"] == first[dates[0]][0]["testid"]
