"""perfpipe.entry.cli: run summaries and exit codes, argument handling and the pre-flight (no Airflow, no k6)."""

from __future__ import annotations

RUN_ID = "manual__2026-01-05T00:00:00+00:00"


def test_a_stopped_run_summarizes_as_aborted_not_passed(monkeypatch):
    from perfpipe.app import outcomes, results
    from perfpipe.entry import cli

    point = {"test_type": "chaos", "target": "demo", "verdict": "aborted", "testid": "t", "checks": [],
             "metrics_complete": False, "report": ""}
    monkeypatch.setattr(results, "read_results", lambda hook, dag_id, run_id: [point])
    monkeypatch.setattr(outcomes, "read_conclusion", lambda hook, dag_id, run_id: None)
    summary = cli.summarize_run("perf_chaos", RUN_ID, "failed", ["verdict"], ["chaos"])
    assert (summary["outcome"], summary["exit_code"], summary["state"]) == ("aborted", 2, "failed")
    summary = cli.summarize_run("perf_pipeline", RUN_ID, "failed", [], ["smoke", "chaos"], pipeline=True)
    assert (summary["outcome"], summary["exit_code"]) == ("aborted", 2)
