"""perfpipe.entry.cli.local: the pre-flight refuses bad input before any run exists, and `stop`, `status` and
`chaos restore` on this machine (no Airflow, no k6; InfluxDB is unreachable in unit tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from perfpipe.core.paths import PROJECT_ROOT
from perfpipe.entry import cli
from perfpipe.entry.cli import local, output
from perfpipe.entry.cli.args import build_parser
from perfpipe.entry.cli.output import CliError


def _args(*argv: str):
    return build_parser().parse_args(list(argv))


def test_the_preflight_names_the_refused_key():
    with pytest.raises(CliError, match=r"overrides\.thresholds\.p95_ms\.bogus: unknown key \(known: op, threshold"):
        local.preflight(_args("run", "load", "--target", "demo", "--set", "thresholds.p95_ms.bogus=1"))
    with pytest.raises(CliError, match="vus"):
        local.preflight(_args("run", "pipeline", "--target", "demo", "--set", "vus=-5"))


def test_a_target_outside_the_allowlist_is_refused_before_any_run(tmp_path):
    target = tmp_path / "elsewhere.yaml"
    target.write_text("base_url: http://10.1.2.3:9000\nrequests: [{path: /}]\n")
    with pytest.raises(CliError, match="10.1.2.3"):
        local.preflight(_args("run", "smoke", "--target", str(target)))


def test_without_influxdb_a_good_run_is_refused_before_it_starts(out):
    # Unit tests have no InfluxDB: the pre-flight's ping fails, so no run starts and nothing loads the target.
    assert cli.main(["run", "smoke", "--target", "demo", "--profile", "quick", "--json"]) == 2
    assert "InfluxDB" in json.loads(out.getvalue())["error"]


def test_stopping_a_run_with_nothing_running_exits_1(out):
    assert cli.main(["stop", "manual__2026-01-05T00:00:00+00:00", "--dag-id", "perf_chaos", "--json",
                     "--wait", "0"]) == 1
    assert json.loads(out.getvalue()) == {"dag_id": "perf_chaos", "run_id": "manual__2026-01-05T00:00:00+00:00",
                                          "mode": "local", "stopped": []}


def test_status_without_influxdb_is_an_error_not_an_empty_list(out):
    assert cli.main(["status", "--json"]) == 2
    assert "InfluxDB" in json.loads(out.getvalue())["error"]


def test_chaos_restore_exits_2_when_a_leftover_fault_could_not_be_restored(out, monkeypatch):
    leftovers = [{"scenario": "cache_failure", "action": "stop", "component": "cache", "ok": True},
                 {"scenario": "db_failure", "action": "stop", "component": "database", "ok": False,
                  "error": "pid gone"}]
    monkeypatch.setattr(local, "restore_leftovers", lambda: leftovers)
    assert cli.main(["chaos", "restore"]) == 2
    assert "NOT restored: pid gone" in out.getvalue() and "2 leftover fault(s), 1 failed" in out.getvalue()
    monkeypatch.setattr(local, "restore_leftovers", lambda: leftovers[:1])
    assert cli.main(["chaos", "restore", "--json"]) == 0
    assert json.loads(out.getvalue().split("failed\n", 1)[1]) == {"restored": leftovers[:1]}


def test_the_command_line_configures_airflow_before_airflow_reads_its_settings(tmp_path):
    # Airflow reads AIRFLOW_HOME and its settings when first imported, and the CLI's modules import it (the
    # InfluxDB hook): importing the CLI must set perfpipe's defaults first. Airflow's settings fix the dags folder
    # at import: its default would be $AIRFLOW_HOME/dags; perfpipe's is the project's dags/.
    code = ("import perfpipe.entry.cli, sys; from airflow import settings; "
            "print(settings.DAGS_FOLDER); print('airflow' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(tmp_path / "home")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env,
                          check=True)
    assert done.stdout.split() == [str(PROJECT_ROOT / "dags"), "True"]


def test_the_command_line_does_not_import_airflow_until_a_command_needs_it():
    # Importing Airflow costs ~4 s: the pre-flight's refusals and `stop` answer without it.
    code = "import sys, perfpipe.entry.cli; assert 'airflow' not in sys.modules, sorted(m for m in sys.modules " \
           "if m.startswith('airflow'))[:5]"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_local_run_bundles_only_its_own_dag_file(tmp_path, monkeypatch):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "perf_smoke.py").write_text("# the smoke DAG\n")
    (dags / "perf_load.py").write_text("# another DAG\n")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(local.BUNDLES_ENV, raising=False)

    link = local.one_dag_bundle(dags, "perf_smoke")
    [bundle] = json.loads(os.environ[local.BUNDLES_ENV])
    assert bundle["name"] == "dags-folder"  # Airflow's default bundle: the rows already in the database are its
    assert sorted(p.name for p in link.parent.iterdir()) == ["perf_smoke.py"]
    assert bundle["kwargs"]["path"] == str(link.parent)
    assert link.read_text() == "# the smoke DAG\n"
    # A later run in the same process bundles its own DAG; a user's own bundle configuration is left as it is.
    load = local.one_dag_bundle(dags, "perf_load")
    assert json.loads(os.environ[local.BUNDLES_ENV])[0]["kwargs"]["path"] == str(load.parent)
    assert local.one_dag_bundle(dags, "perf_smoke") == link
    monkeypatch.setenv(local.BUNDLES_ENV, "[]")
    assert local.one_dag_bundle(dags, "perf_load") is None
    assert os.environ[local.BUNDLES_ENV] == "[]"
    monkeypatch.delenv(local.BUNDLES_ENV)
    assert local.one_dag_bundle(dags, "perf_nothing") is None and local.BUNDLES_ENV not in os.environ


def test_stop_refuses_a_run_another_checkout_started(out):
    from perfpipe.app.run_identity import home_tag

    elsewhere = f"manual__2026-01-05T00:00:00+00:00__demo__{home_tag('/some/other/checkout/.airflow')}.a1b2c3"
    assert cli.main(["stop", elsewhere, "--dag-id", "perf_smoke", "--json", "--wait", "0"]) == 2
    error = json.loads(out.getvalue())["error"]
    assert error.startswith(f"run_id: {elsewhere} was started by another checkout") and "stop it from there" in error
