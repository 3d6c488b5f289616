"""perfpipe.entry.cli: run summaries and exit codes, argument handling and the pre-flight (no Airflow, no k6)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from perfpipe.entry import cli

from unit.stage_points import stage_result

RUN_ID = "manual__2026-01-05T00:00:00+00:00"


def test_a_stopped_run_summarizes_as_aborted_not_passed(monkeypatch):
    from perfpipe.app import outcomes, results

    point = stage_result(test_type="chaos", target="demo", verdict="aborted", testid="t", checks=[],
                         metrics_complete=False, report="")
    monkeypatch.setattr(results, "read_results", lambda hook, dag_id, run_id: [point])
    monkeypatch.setattr(outcomes, "read_conclusion", lambda hook, dag_id, run_id: None)
    summary = cli.summarize_run("perf_chaos", RUN_ID, "failed", ["verdict"], ["chaos"])
    assert (summary["outcome"], summary["exit_code"], summary["state"]) == ("aborted", 2, "failed")
    summary = cli.summarize_run("perf_pipeline", RUN_ID, "failed", [], ["smoke", "chaos"], pipeline=True)
    assert (summary["outcome"], summary["exit_code"]) == ("aborted", 2)


# --- summarize_run: outcome and exit code from the recorded results (0 passed, 1 a gate failed, 2 no verdict) ---

def _point(test_type: str, verdict: str):
    return stage_result(test_type=test_type, target="demo", verdict=verdict, testid=f"t-{test_type}",
                        checks=[{"name": "p95_ms", "op": "<", "threshold": 500.0, "warn": None, "value": 120.0,
                                 "result": verdict}], metrics_complete=verdict != "inconclusive", report="",
                        p95_ms=120.0, samples_expected=10, samples_stored=10)


@pytest.fixture
def recorded(monkeypatch):
    from perfpipe.app import outcomes, results

    state = {"points": [], "conclusion": None}
    monkeypatch.setattr(results, "read_results", lambda hook, dag_id, run_id: list(state["points"]))
    monkeypatch.setattr(outcomes, "read_conclusion", lambda hook, dag_id, run_id: state["conclusion"])
    return state


@pytest.mark.parametrize("verdicts, outcome, exit_code", [
    (["pass"], "passed", 0),
    (["warn"], "passed_with_warnings", 0),
    (["fail"], "failed", 1),
    (["inconclusive"], "inconclusive", 2),
    (["aborted"], "aborted", 2),
    ([], "error", 2),  # the stage never recorded a result: an infrastructure problem, not a pass
])
def test_a_single_test_runs_outcome_and_exit_code(recorded, verdicts, outcome, exit_code):
    recorded["points"] = [_point("load", v) for v in verdicts]
    summary = cli.summarize_run("perf_load", RUN_ID, "success", [], ["load"])
    assert (summary["outcome"], summary["exit_code"]) == (outcome, exit_code)


def test_other_stages_points_do_not_decide_a_single_test(recorded):
    recorded["points"] = [_point("smoke", "fail"), _point("load", "pass")]
    summary = cli.summarize_run("perf_load", RUN_ID, "success", [], ["load"])
    assert summary["outcome"] == "passed" and [s["test_type"] for s in summary["stages"]] == ["load"]


@pytest.mark.parametrize("outcome, exit_code", [("ready_to_deploy", 0), ("performance regression", 1)])
def test_a_pipeline_exits_by_its_recorded_outcome(recorded, outcome, exit_code):
    recorded["points"] = [_point("smoke", "pass"), _point("load", "fail")]
    recorded["conclusion"] = {"path": ["smoke", "load", "remediate"], "outcome": outcome, "explanation": "why",
                              "evidence": []}
    summary = cli.summarize_run("perf_pipeline", RUN_ID, "success", [], ["smoke", "load"], pipeline=True)
    assert (summary["outcome"], summary["exit_code"], summary["path"]) == \
        (outcome, exit_code, ["smoke", "load", "remediate"])
    assert summary["report"] is None  # no report file was written for this run


def test_a_pipeline_without_a_conclusion_is_an_error(recorded):
    recorded["points"] = [_point("smoke", "pass")]
    summary = cli.summarize_run("perf_pipeline", RUN_ID, "failed", ["load.run_k6"], ["smoke", "load"], pipeline=True)
    assert (summary["outcome"], summary["exit_code"], summary["failed_tasks"]) == ("error", 2, ["load.run_k6"])


def test_influxdb_down_while_summarizing_is_a_cli_error(monkeypatch):
    from perfpipe.app import results
    from perfpipe.core.errors import InfrastructureError

    def down(hook, dag_id, run_id):
        raise InfrastructureError("InfluxDB not reachable")

    monkeypatch.setattr(results, "read_results", down)
    with pytest.raises(cli.CliError, match="InfluxDB not reachable"):
        cli.summarize_run("perf_load", RUN_ID, "success", [], ["load"])


def test_the_table_names_the_outcome_the_checks_and_the_failed_tasks(recorded):
    recorded["points"] = [_point("load", "fail")]
    summary = cli.summarize_run("perf_load", RUN_ID, "failed", ["verdict"], ["load"])
    out = io.StringIO()
    cli.print_table(summary, out)
    text = out.getvalue()
    assert "-> FAILED" in text and "FAIL  p95_ms" in text and "failed tasks: verdict" in text
    assert json.loads(json.dumps(summary))["stages"][0]["checks"][0]["result"] == "fail"  # --json is plain JSON


# --- arguments -----------------------------------------------------------------------------------------------

def _args(*argv: str):
    return cli.build_parser().parse_args(list(argv))


def test_a_configured_target_is_passed_by_name_and_a_file_inline(tmp_path):
    assert cli.params_from_args(_args("run", "smoke", "--target", "demo"))["target"] == "demo"
    path = tmp_path / "mine.yaml"
    path.write_text("base_url: http://127.0.0.1:9000\nrequests: [{path: /}]\n")
    params = cli.params_from_args(_args("run", "smoke", "--target", str(path), "--set", "vus=3"))
    assert "target" not in params and params["inline_target"]["base_url"] == "http://127.0.0.1:9000"
    assert params["overrides"] == {"vus": 3}


def test_a_scenario_is_refused_for_a_test_that_injects_no_fault():
    with pytest.raises(cli.CliError, match="--scenario"):
        cli.params_from_args(_args("run", "load", "--target", "demo", "--scenario", "cache_failure"))
    params = cli.params_from_args(_args("run", "pipeline", "--target", "demo", "--include-soak"))
    assert params["include_soak"] is True and "chaos_scenario" in params  # always set: dag.test() keeps old values


def test_logical_dates_are_utc_unless_they_say_otherwise():
    assert cli.parse_logical_date("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=timezone.utc)
    assert cli.parse_logical_date("2026-03-01T10:00:00+02:00").utcoffset() == timedelta(hours=2)
    with pytest.raises(cli.CliError, match="--logical-date"):
        cli.parse_logical_date("yesterday")


# --- main: exit codes and stdout (Airflow is never started here) -------------------------------------------------

@pytest.fixture
def no_airflow(monkeypatch):
    """main() without touching the process's fds or Airflow: stdout is a buffer, loading a DAG fails the test."""
    from perfpipe.entry import airflow_env

    out = io.StringIO()
    monkeypatch.setattr(airflow_env, "configure", lambda: None)
    monkeypatch.setattr(cli, "_reserve_stdout", lambda: out)
    monkeypatch.setattr(cli, "load_dag", lambda dag_id: pytest.fail("a bad input must not start a run"))
    return out


def test_bad_input_exits_2_with_one_json_error_before_any_run(no_airflow):
    code = cli.main(["run", "smoke", "--target", "demo", "--profile", "quick", "--set", "vus=0", "--json"])
    result = json.loads(no_airflow.getvalue())
    assert code == 2 and result["outcome"] == "error" and "vus" in result["error"]


def test_a_crash_of_ours_exits_2_never_1(no_airflow, monkeypatch):
    monkeypatch.setattr(cli, "run_test", lambda args: {}["boom"])
    assert cli.main(["run", "smoke", "--target", "demo", "--json"]) == 2
    assert json.loads(no_airflow.getvalue())["error"].startswith("KeyError")


def test_chaos_restore_exits_2_when_a_leftover_fault_could_not_be_restored(no_airflow, monkeypatch):
    import perfpipe.app.chaos as chaos

    leftovers = [{"scenario": "cache_failure", "action": "stop", "component": "cache", "ok": True},
                 {"scenario": "db_failure", "action": "stop", "component": "database", "ok": False,
                  "error": "pid gone"}]
    monkeypatch.setattr(chaos, "restore_leftovers", lambda: leftovers)
    assert cli.main(["chaos", "restore"]) == 2
    assert "NOT restored: pid gone" in no_airflow.getvalue() and "2 leftover fault(s), 1 failed" in no_airflow.getvalue()
    monkeypatch.setattr(chaos, "restore_leftovers", lambda: leftovers[:1])
    assert cli.main(["chaos", "restore"]) == 0
