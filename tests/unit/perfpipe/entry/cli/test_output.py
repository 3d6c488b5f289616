"""perfpipe.entry.cli.output: a run's summary (outcome and exit code from the recorded results, 0 passed, 1 a gate
failed, 2 no verdict), its JSON and table, and main()'s exit codes and stdout (no Airflow, no k6, no InfluxDB:
the recorded results are given)."""

from __future__ import annotations

import io
import json

import pytest

from perfpipe.app import outcomes
from perfpipe.app.outcomes import RunOutcome
from perfpipe.entry import cli
from perfpipe.entry.cli import local, output
from perfpipe.entry.cli.output import CliError, summarize_run

from unit.stage_points import stage_result

RUN_ID = "manual__2026-01-05T00:00:00+00:00"
STAGE_KEYS = {"test_type", "target", "verdict", "testid", "metrics", "analysis", "checks", "metrics_complete",
              "report"}


def _point(test_type: str, verdict: str, **fields):
    return stage_result(test_type=test_type, target="demo", verdict=verdict, testid=f"t-{test_type}",
                        checks=[{"name": "p95_ms", "op": "<", "threshold": 500.0, "warn": None, "value": 120.0,
                                 "result": verdict}], metrics_complete=verdict != "inconclusive", report="",
                        p95_ms=120.0, samples_expected=10, samples_stored=10, **fields)


@pytest.fixture
def recorded(monkeypatch):
    """What InfluxDB holds for the run: its perf_results points and its pipeline conclusion."""
    state = {"points": [], "conclusion": None}
    monkeypatch.setattr(outcomes, "read_results", lambda hook, dag_id, run_id: list(state["points"]))
    monkeypatch.setattr(outcomes, "read_conclusion", lambda hook, dag_id, run_id: state["conclusion"])
    return state


def test_exit_codes_follow_the_outcome():
    assert [output.exit_code_of(RunOutcome("x", p)) for p in (True, False, None)] == [0, 1, 2]


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
    summary = summarize_run("perf_load", RUN_ID, "success", [], ["load"])
    assert (summary["outcome"], summary["exit_code"]) == (outcome, exit_code)


def test_a_single_tests_summary_has_the_documented_keys(recorded):
    recorded["points"] = [_point("stress", "pass", breaking_vus=40.0,
                                 analysis={"limits": {"p95_ms": 2000}, "buckets": [1, 2, 3]})]
    summary = summarize_run("perf_stress", RUN_ID, "success", ["b", "a"], ["stress"])
    assert list(summary) == ["dag_id", "run_id", "state", "stages", "path", "outcome", "failed_tasks", "exit_code"]
    assert summary["failed_tasks"] == ["a", "b"] and summary["path"] == ["stress"]
    [stage] = summary["stages"]
    assert set(stage) == STAGE_KEYS and set(stage["checks"][0]) == {"name", "op", "threshold", "warn", "value",
                                                                    "result"}
    assert stage["metrics"]["p95_ms"] == 120.0 and stage["metrics"]["samples_stored"] == 10
    # the figures and the named details of the analysis, not its bucket series
    assert stage["analysis"] == {"breaking_vus": 40.0, "limits": {"p95_ms": 2000}}
    assert json.loads(json.dumps(summary)) == summary  # --json is plain JSON


def test_a_stopped_run_summarizes_as_aborted_not_passed(recorded):
    recorded["points"] = [_point("chaos", "aborted")]
    summary = summarize_run("perf_chaos", RUN_ID, "failed", ["verdict"], ["chaos"])
    assert (summary["outcome"], summary["exit_code"], summary["state"]) == ("aborted", 2, "failed")
    summary = summarize_run("perf_pipeline", RUN_ID, "failed", [], ["smoke", "chaos"], pipeline=True)
    assert (summary["outcome"], summary["exit_code"]) == ("aborted", 2)


def test_other_stages_points_do_not_decide_a_single_test(recorded):
    recorded["points"] = [_point("smoke", "fail"), _point("load", "pass")]
    summary = summarize_run("perf_load", RUN_ID, "success", [], ["load"])
    assert summary["outcome"] == "passed" and [s["test_type"] for s in summary["stages"]] == ["load"]


def test_stages_are_listed_in_decision_tree_order(recorded):
    recorded["points"] = [_point("stress", "pass"), _point("smoke", "pass"), _point("load", "pass")]
    summary = summarize_run("perf_pipeline", RUN_ID, "failed", [], ["smoke", "load", "stress"], pipeline=True)
    assert summary["path"] == ["smoke", "load", "stress"]  # no conclusion recorded: the stages reached


@pytest.mark.parametrize("outcome, exit_code", [("ready_to_deploy", 0), ("scale_system", 1)])
def test_a_pipeline_exits_by_its_recorded_outcome(recorded, outcome, exit_code):
    recorded["points"] = [_point("smoke", "pass"), _point("load", "fail")]
    recorded["conclusion"] = {"path": ["smoke", "load", outcome], "outcome": outcome, "explanation": "why",
                              "evidence": [{"stage": "load"}]}
    summary = summarize_run("perf_pipeline", RUN_ID, "success", [], ["smoke", "load"], pipeline=True)
    assert (summary["outcome"], summary["exit_code"], summary["path"]) == \
        (outcome, exit_code, ["smoke", "load", outcome])
    assert list(summary) == ["dag_id", "run_id", "state", "stages", "path", "outcome", "explanation", "evidence",
                             "report", "failed_tasks", "exit_code"]
    assert (summary["explanation"], summary["evidence"]) == ("why", [{"stage": "load"}])
    assert summary["report"] is None  # no report file was written for this run


def test_a_pipelines_report_is_named_when_it_was_written(recorded):
    from perfpipe.app.report import REPORT_FILE
    from perfpipe.app.report_paths import run_report_dir

    report = run_report_dir("perf_pipeline", RUN_ID) / REPORT_FILE
    report.parent.mkdir(parents=True)
    report.write_text("<html></html>")
    recorded["conclusion"] = {"path": ["ready_to_deploy"], "outcome": "ready_to_deploy", "explanation": "ok",
                              "evidence": []}
    assert summarize_run("perf_pipeline", RUN_ID, "success", [], [], pipeline=True)["report"] == str(report)


def test_a_pipeline_without_a_conclusion_is_an_error(recorded):
    recorded["points"] = [_point("smoke", "pass")]
    summary = summarize_run("perf_pipeline", RUN_ID, "failed", ["load.run_k6"], ["smoke", "load"], pipeline=True)
    assert (summary["outcome"], summary["exit_code"], summary["failed_tasks"]) == ("error", 2, ["load.run_k6"])


def test_influxdb_down_while_summarizing_is_a_cli_error(monkeypatch):
    from perfpipe.core.errors import InfrastructureError

    def down(hook, dag_id, run_id):
        raise InfrastructureError("InfluxDB not reachable")

    monkeypatch.setattr(outcomes, "read_results", down)
    with pytest.raises(CliError, match="InfluxDB not reachable"):
        summarize_run("perf_load", RUN_ID, "success", [], ["load"])


def test_the_table_names_the_outcome_the_checks_and_the_failed_tasks(recorded):
    recorded["points"] = [_point("load", "fail")]
    summary = summarize_run("perf_load", RUN_ID, "failed", ["verdict"], ["load"])
    out = io.StringIO()
    assert output.print_run(summary, out, as_json=False) == 1
    text = out.getvalue()
    assert "-> FAILED" in text and "FAIL  p95_ms" in text and "failed tasks: verdict" in text
    assert "load on demo: FAIL" in text and "samples stored 10 of 10" in text
    out = io.StringIO()
    assert output.print_run(summary, out, as_json=True) == 1
    assert json.loads(out.getvalue()) == summary


def test_stop_and_restore_texts():
    stopped = [{"pid": 7, "testid": "t", "exited": True}, {"pid": 8, "testid": "u", "exited": False}]
    assert output.local_stop_text("perf_chaos", "r", stopped, 40) == \
        "stopped k6 pid 7 (testid t): exited\nstopped k6 pid 8 (testid u): still stopping after 40s"
    assert "no k6 process of perf_chaos run r" in output.local_stop_text("perf_chaos", "r", [], 40)
    base = {"dag_id": "perf_chaos", "run_id": "r"}
    assert "marked failed" in output.remote_stop_text({**base, "stopped": True, "previous_state": "running"}, "u")
    assert "already failed" in output.remote_stop_text({**base, "stopped": False, "previous_state": "failed"}, "u")
    assert "no run r of perf_chaos" in output.remote_stop_text({**base, "stopped": False, "previous_state": None}, "u")


# --- main: exit codes and stdout (Airflow is never started here) -------------------------------------------------


def test_bad_input_exits_2_with_one_json_error_before_any_run(out, capsys):
    code = cli.main(["run", "smoke", "--target", "demo", "--profile", "quick", "--set", "vus=0", "--json"])
    result = json.loads(out.getvalue())
    assert code == 2 and result["outcome"] == "error" and "vus" in result["error"]
    assert capsys.readouterr().err.startswith("perfpipe: ")


def test_a_target_file_with_chaos_components_exits_2_with_one_line_naming_the_field(out, capsys, tmp_path):
    path = tmp_path / "x.yaml"
    marker = tmp_path / "marker"
    path.write_text("base_url: http://127.0.0.1:9000\nrequests: [{path: /}]\n"
                    f"chaos: {{components: {{c: {{kind: process, pid_command: [touch, {marker}], "
                    f"start_command: [touch, {marker}]}}}}, scenarios: {{s: {{component: c, action: stop}}}}}}\n")
    assert cli.main(["run", "chaos", "--target", str(path), "--profile", "quick"]) == 2
    assert out.getvalue() == ""
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"perfpipe: {path}.chaos.components.c.pid_command: a run-time target")
    assert "config/targets.yaml of the deployment" in line
    assert not marker.exists()


def test_a_scenario_for_a_load_test_exits_2_without_json_noise(out):
    assert cli.main(["run", "load", "--target", "demo", "--scenario", "db_failure"]) == 2
    assert out.getvalue() == ""  # without --json the error goes to stderr only


def test_a_crash_of_ours_exits_2_never_1(out, monkeypatch):
    monkeypatch.setattr(local, "preflight", lambda args: {}["boom"])
    assert cli.main(["run", "smoke", "--target", "demo", "--json"]) == 2
    assert json.loads(out.getvalue())["error"].startswith("KeyError")


def test_a_run_in_which_no_test_ran_is_never_success_and_says_why(recorded):
    # Airflow marks a run it skipped (a logical date before the start_date) success without running a task.
    recorded["points"] = []
    summary = summarize_run("perf_smoke", RUN_ID, "success", [], ["smoke"])
    assert (summary["outcome"], summary["exit_code"]) == ("error", 2)
    assert summary["reason"] == f"no test ran: run {RUN_ID} recorded no result (Airflow run state success)"
    pipeline = summarize_run("perf_pipeline", RUN_ID, "failed", ["smoke.validate"], ["smoke"], pipeline=True)
    assert pipeline["exit_code"] == 2 and pipeline["reason"].endswith("failed tasks: smoke.validate)")
