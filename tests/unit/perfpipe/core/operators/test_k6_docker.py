"""perfpipe.core.operators.k6_docker: the k6 container's command, environment and mounts (no Docker daemon)."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from airflow.sdk import DAG

from perfpipe.app.config import build_plan, prometheus_output
from perfpipe.app.influx import influx_settings
from perfpipe.app.k6_setup import perfpipe_run_setup
from perfpipe.app.stage import blocked_networks
from perfpipe.core.hooks.influxdb import InfluxDBHook
from perfpipe.core.k6.run import RunSpec
from perfpipe.core.operators.k6_docker import (K6DockerOperator, _exit_code_from, container_invocation, k6_mounts)

TOKEN = "tok-docker-unit-5e6f7a8b"
INFLUX_PASSWORD = "influx-docker-pw-1c2d3e"
IMAGE = "grafana/k6:1.1.0"
DAG_ID, RUN_ID, TRY = "perf_load", "manual__2026-03-01T12:00:00+00:00", 2
TESTID = f"{DAG_ID}:{RUN_ID}:load:try{TRY}"


@pytest.fixture
def secrets(monkeypatch):
    monkeypatch.setenv("PERFPIPE_UNIT_API_TOKEN", TOKEN)
    monkeypatch.setenv("PERFPIPE_INFLUXDB_USER", "k6writer")
    monkeypatch.setenv("PERFPIPE_INFLUXDB_PASSWORD", INFLUX_PASSWORD)
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def plan(api_target):
    target = dict(api_target, headers={"Authorization": {"env": "PERFPIPE_UNIT_API_TOKEN", "prefix": "Bearer "},
                                       "X-Team": "perf"})
    return build_plan("load", target, "quick", allowed_addresses=("127.0.0.1",))


@pytest.fixture
def operator(plan):
    with DAG(dag_id="unit_k6_docker", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):
        # The plan as XCom carries it (JSON data), with perfpipe's run setup as its DAGs pass it.
        return K6DockerOperator(task_id="run_k6", plan=copy.deepcopy(plan.to_json_data()), image=IMAGE,
                                run_setup=perfpipe_run_setup)


class FakeTI:
    dag_id, run_id, try_number = DAG_ID, RUN_ID, TRY


@pytest.fixture
def configured(operator, plan, secrets, monkeypatch):
    """operator.configure() on a fake task context; InfluxDB says no samples carry the testid yet."""
    monkeypatch.setattr(InfluxDBHook, "query", lambda self, query, params=None: [])
    ti = FakeTI()
    result = operator.configure({"ti": ti})
    yield operator, ti, result
    operator._run.close_relay()


def _spec(plan, headers, report_dir=Path("/unused")):
    return RunSpec(testid=TESTID, report_dir=report_dir, headers=headers, blocked_networks=blocked_networks(plan),
                   timeout_s=60, influx=influx_settings(), prometheus=prometheus_output())


def _flag_values(argv, flag):
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


# ---------------------------------------------------------------------------------------------- container_invocation


def test_container_invocation_uses_container_paths(plan, secrets):
    invocation = container_invocation(plan, _spec(plan, secrets))
    assert invocation.argv[:3] == ["k6", "run", "/scripts/load.js"]
    assert _flag_values(invocation.argv, "--summary-export") == ["/reports/summary.json"]
    assert _flag_values(invocation.argv, "--tag") == [f"testid={TESTID}", "test_type=load", "target=unit-api"]
    assert _flag_values(invocation.argv, "--out") == ["influxdb=http://127.0.0.1:8086/k6"]
    assert invocation.env["PERFPIPE_RUN_CONFIG"] == "/reports/run-config.json"
    assert invocation.env["K6_WEB_DASHBOARD_EXPORT"] == "/reports/report.html"
    blocked = _flag_values(invocation.argv, "--blacklist-ip")[0].split(",")
    assert "128.0.0.0/1" in blocked and "126.0.0.0/8" in blocked and "::1/128" not in blocked


def test_container_invocation_for_a_user_script(plan, secrets, tmp_path):
    script = tmp_path / "scripts" / "mine.js"
    script.parent.mkdir()
    script.write_text("export default function () {}\n")
    plan = plan.model_copy(update={"target": dict(plan.target, script=str(script))})
    invocation = container_invocation(plan, _spec(plan, secrets))
    assert invocation.argv[2] == "/user-script/mine.js"


# ---------------------------------------------------------------------------------------------- mounts


def test_k6_mounts(plan, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFPIPE_SCRIPTS_DIR", str(tmp_path / "k6-scripts"))
    report_dir = tmp_path / "reports" / "x"
    mounts = k6_mounts(report_dir, plan)
    assert [dict(m) for m in mounts] == [
        {"Target": "/scripts", "Source": str(tmp_path / "k6-scripts"), "Type": "bind", "ReadOnly": True},
        {"Target": "/reports", "Source": str(report_dir.resolve()), "Type": "bind", "ReadOnly": False},
    ]


def test_k6_mounts_for_a_user_script(plan, tmp_path):
    plan = plan.model_copy(update={"target": dict(plan.target, script=str(tmp_path / "own" / "mine.js"))})
    mounts = [dict(m) for m in k6_mounts(tmp_path / "r", plan)]
    assert mounts[2] == {"Target": "/user-script", "Source": str(tmp_path / "own"), "Type": "bind",
                         "ReadOnly": True}
    assert [m["ReadOnly"] for m in mounts] == [True, False, True]


# ---------------------------------------------------------------------------------------------- the operator


def test_operator_defaults(operator, plan):
    assert operator.network_mode == "host"
    assert operator.auto_remove == "force"
    assert operator.mount_tmp_dir is False
    assert operator.tty is False
    assert operator.image == IMAGE
    assert operator.command is None
    assert operator.plan == plan  # given as data, checked (and kept as a TestPlan) when the DAG is built
    assert "plan" in K6DockerOperator.template_fields and "image" in K6DockerOperator.template_fields
    assert operator.dag.dag_id == "unit_k6_docker"


def test_operator_settings_can_be_overridden(plan):
    with DAG(dag_id="unit_k6_docker_2", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):
        op = K6DockerOperator(task_id="run_k6", plan=plan, image="k6:custom", network_mode="bridge",
                              auto_remove="success")
    assert (op.network_mode, op.auto_remove, op.image) == ("bridge", "success", "k6:custom")


def test_configure_command_is_the_argv_without_the_binary(configured, plan, secrets):
    operator, ti, (configured_plan, spec) = configured
    assert spec.testid == TESTID
    assert configured_plan == plan
    # k6 writes to the run's relay (perfpipe.core.k6.relay), on loopback: the container shares the host network.
    assert spec.influx.url.startswith("http://127.0.0.1:") and spec.influx.password is None
    assert _flag_values(operator.command, "--out") == [f"influxdb={spec.influx.url}/k6"]
    from dataclasses import replace

    expected = container_invocation(plan, replace(_spec(plan, dict(secrets, **{"X-Team": "perf"})),
                                                  influx=spec.influx))
    assert expected.argv[0] == "k6"
    assert operator.command == expected.argv[1:]
    assert operator.command[:2] == ["run", "/scripts/load.js"]


def _private_env(operator):
    """The secrets configure() set aside: DockerOperator keeps them in `_private_environment`."""
    return operator.__dict__.get("_private_environment") or operator.__dict__.get("private_environment")


def test_configure_splits_secrets_into_private_environment(configured):
    operator = configured[0]
    private = _private_env(operator)
    assert private == {
        "PERFPIPE_TARGET_HEADERS": json.dumps({"Authorization": f"Bearer {TOKEN}", "X-Team": "perf"}),
    }  # no InfluxDB credentials at all: the run's relay adds them (a script could read its own environment)
    assert not any(k.startswith("K6_INFLUXDB_USER") for k in operator.environment)
    assert operator.environment["BASE_URL"] == "http://127.0.0.1:8090"
    assert operator.environment["K6_NO_USAGE_REPORT"] == "true"
    assert not set(operator.environment) & set(private)
    for value in list(operator.environment.values()) + operator.command:
        assert TOKEN not in value and INFLUX_PASSWORD not in value


def test_configure_writes_the_run_config_under_the_reports_dir(configured, perfpipe_env):
    operator, _, (plan, spec) = configured
    report_dir = spec.report_dir
    assert report_dir == perfpipe_env / "reports" / "perf_load" / "manual__2026-03-01T12_00_00+00_00" / "load"
    config_text = (report_dir / "run-config.json").read_text()
    assert json.loads(config_text)["target"]["base_url"] == "http://127.0.0.1:8090"
    assert TOKEN not in config_text and "Authorization" not in config_text
    assert [dict(m)["Source"] for m in operator.mounts][1] == str(report_dir.resolve())
    assert [dict(m)["Target"] for m in operator.mounts] == ["/scripts", "/reports"]


def test_configure_removes_an_earlier_try_s_files(operator, plan, secrets, monkeypatch, perfpipe_env):
    monkeypatch.setattr(InfluxDBHook, "query", lambda self, query, params=None: [])
    report_dir = perfpipe_env / "reports" / "perf_load" / "manual__2026-03-01T12_00_00+00_00" / "load"
    report_dir.mkdir(parents=True)
    for name in ("summary.json", "report.html", "k6.log"):
        (report_dir / name).write_text("stale")
    operator.configure({"ti": FakeTI()})
    assert sorted(p.name for p in report_dir.iterdir()) == ["k6-options.json", "run-config.json"]


class _StopBeforeStart(Exception):
    pass


class _FakeDockerClient:
    """Records what DockerOperator would send to the Docker API; stops before a container exists."""

    def __init__(self):
        self.created = None

    def create_host_config(self, **kwargs):
        return kwargs

    def create_container(self, **kwargs):
        self.created = kwargs
        raise _StopBeforeStart


def _container_request(operator):
    client = _FakeDockerClient()
    operator.__dict__["hook"] = type("FakeHook", (), {"api_client": client})()  # DockerOperator.hook is cached
    with pytest.raises(_StopBeforeStart):
        operator._run_image()
    return client.created


def test_container_gets_the_command_public_env_and_mounts(configured):
    operator = configured[0]
    created = _container_request(operator)
    assert created["image"] == IMAGE
    assert created["command"] == operator.command
    assert created["host_config"]["network_mode"] == "host"
    assert [dict(m)["Target"] for m in created["host_config"]["mounts"]] == ["/scripts", "/reports"]
    for key, value in operator.environment.items():
        assert created["environment"][key] == value


def test_container_gets_the_secret_env(configured):
    created = _container_request(configured[0])
    assert INFLUX_PASSWORD not in json.dumps(created)  # the relay holds it, not the container
    assert json.loads(created["environment"]["PERFPIPE_TARGET_HEADERS"])["Authorization"] == f"Bearer {TOKEN}"


# ---------------------------------------------------------------------------------------------- exit codes


def test_exit_code_from_docker_failures():
    from airflow.providers.docker.exceptions import DockerContainerFailedException

    result = {"StatusCode": 99, "Error": None}
    assert _exit_code_from(DockerContainerFailedException(f"Docker container failed: {result!r}")) == 99
    assert _exit_code_from(RuntimeError('{"StatusCode": 107}')) == 107
    assert _exit_code_from(RuntimeError("k6 exit code 3")) == 3
    assert _exit_code_from(RuntimeError("docker daemon unreachable")) is None


def test_container_paths_are_absolute():
    from perfpipe.core.operators import k6_docker

    for path in (k6_docker.CONTAINER_SCRIPTS, k6_docker.CONTAINER_REPORTS, k6_docker.CONTAINER_USER_SCRIPT_DIR):
        assert Path(path).is_absolute()


# ---------------------------------------------------------------------------------------------- user, labels, log


def test_container_runs_as_the_worker_user_with_testid_labels(configured):
    import os

    operator = configured[0]
    created = _container_request(operator)
    # grafana/k6's own uid could not write the host's report folder; the files must belong to the worker.
    assert created["user"] == f"{os.getuid()}:{os.getgid()}"
    assert created["labels"] == {"perfpipe.testid": TESTID, "perfpipe.dag_id": DAG_ID, "perfpipe.run_id": RUN_ID,
                                 "perfpipe.test_type": "load", "perfpipe.target": "unit-api"}
    assert created["host_config"]["auto_remove"] is False  # removed by the operator, after the exit code is read


def test_an_explicit_user_is_kept(plan, secrets, monkeypatch):
    monkeypatch.setattr(InfluxDBHook, "query", lambda self, query, params=None: [])
    with DAG(dag_id="unit_k6_docker_3", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):
        op = K6DockerOperator(task_id="run_k6", plan=plan, image=IMAGE, user="12345", run_setup=perfpipe_run_setup)
    op.configure({"ti": FakeTI()})
    assert op.user == "12345"


def test_container_output_becomes_k6_log(operator):
    assert operator.xcom_all is True  # DockerOperator returns every output line, not just the last


def test_write_log(tmp_path):
    from perfpipe.core.operators.k6_docker import _write_log

    _write_log(tmp_path / "a.log", ["line 1", "line 2"])
    _write_log(tmp_path / "b.log", "only line")
    _write_log(tmp_path / "c.log", [])
    assert (tmp_path / "a.log").read_text() == "line 1\nline 2\n"
    assert (tmp_path / "b.log").read_text() == "only line\n"
    assert (tmp_path / "c.log").read_text() == ""


def test_stop_without_a_container_only_marks_the_stop(operator):
    operator.container = None
    operator.stop_container()
    assert operator._stop_requested.is_set()
