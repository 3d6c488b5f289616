"""What `perfpipe` prints and how it exits: a run's summary (its stages as JSON, the outcome from
perfpipe.app.outcomes), the table, stage lines, the other commands' results, and the exit codes.

Exit codes: 0 every gate passed (warn counts as passed), 1 a gate failed, 2 bad input or infrastructure error
(including metrics too incomplete to judge, and a run stopped before its end).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from perfpipe.app import outcomes
from perfpipe.app.measurements import ANALYSIS_FIELDS, METRIC_FIELDS, SAMPLE_FIELDS
from perfpipe.app.report import REPORT_FILE
from perfpipe.app.report_paths import run_report_dir
from perfpipe.core.errors import PerfpipeError
from perfpipe.app.influx import influxdb_hook
from perfpipe.core.model.plan import StageResult

EXIT_PASSED, EXIT_GATE_FAILED, EXIT_ERROR = 0, 1, 2
FAILED_TASK_STATES = ("failed", "upstream_failed")
# The analysis details (besides the figures, which are fields) a stage's JSON carries.
ANALYSIS_DETAILS = ("scenario", "component", "action", "phases", "events", "limits", "windows_s")
CHECK_KEYS = ("name", "op", "threshold", "warn", "value", "result")


class CliError(Exception):
    """Bad input or an error of the stack: `perfpipe: <message>` on stderr, exit 2."""

def reserve_stdout() -> TextIO:
    """Keep stdout for the result alone: Airflow's logging (bound to fd 1) and k6 go to stderr instead."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return out


def exit_code_of(run: outcomes.RunOutcome) -> int:
    """0 every gate passed, 1 a gate failed, 2 no verdict on the system (perfpipe.app.outcomes.RunOutcome)."""
    return {True: EXIT_PASSED, False: EXIT_GATE_FAILED, None: EXIT_ERROR}[run.passed]


def stage_json(stage: StageResult) -> dict[str, Any]:
    """A StageResult as the CLI's JSON shows it (README: Command line)."""
    metrics = {name: stage.metrics.get(name) for name in METRIC_FIELDS + SAMPLE_FIELDS}
    analysis = {name: stage.metrics[name] for name in ANALYSIS_FIELDS if stage.metrics.get(name) is not None}
    analysis.update({key: stage.analysis[key] for key in ANALYSIS_DETAILS if key in stage.analysis})
    return {"test_type": stage.test_type, "target": stage.target, "verdict": stage.verdict,
            "testid": stage.testid, "metrics": metrics, "analysis": analysis,
            "checks": [{k: c.get(k) for k in CHECK_KEYS} for c in stage.checks],
            "metrics_complete": bool(stage.metrics.get("metrics_complete")), "report": stage.report}


def summarize_run(dag_id: str, run_id: str, state: str, failed_tasks: list[str], test_types: list[str],
                  pipeline: bool = False) -> dict[str, Any]:
    """The run as one JSON-able object, from perf_results (and perf_pipeline) in InfluxDB and the task states.

    The same for an in-process run and a run in a remote Airflow: only dag_id, run_id, the run's final state and
    its failed tasks come from Airflow; everything else is read from InfluxDB, and the outcome is
    perfpipe.app.outcomes' (the pipeline's recorded conclusion, or the stages' verdicts).
    """
    hook = influxdb_hook()
    try:
        recorded = outcomes.stage_results(hook, dag_id, run_id)
        conclusion = outcomes.read_conclusion(hook, dag_id, run_id) if pipeline else None
    except PerfpipeError as exc:
        raise CliError(str(exc)) from None
    stages = [stage_json(s) for s in recorded if s.test_type in test_types]
    verdicts = [s["verdict"] for s in stages]
    summary: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id, "state": state, "stages": stages,
                               "path": [s["test_type"] for s in stages]}
    if pipeline:
        run = outcomes.pipeline_outcome(conclusion, verdicts)
        report = run_report_dir(dag_id, run_id) / REPORT_FILE
        summary.update({"path": conclusion["path"] if conclusion else summary["path"], "outcome": run.outcome,
                        "explanation": (conclusion or {}).get("explanation"),
                        "evidence": (conclusion or {}).get("evidence", []),
                        "report": str(report) if report.is_file() else None})
    else:
        run = outcomes.stages_outcome(verdicts, len(test_types))
        summary["outcome"] = run.outcome
    summary.update({"failed_tasks": sorted(failed_tasks), "exit_code": exit_code_of(run)})
    if not stages:  # whatever Airflow says of the run (a run it skipped is "success"), nothing was tested
        summary["reason"] = (f"no test ran: run {run_id} recorded no result (Airflow run state {state}"
                             + (f", failed tasks: {', '.join(sorted(failed_tasks))})" if failed_tasks else ")"))
    return summary


def stage_line(stage: dict[str, Any]) -> str:
    m = stage["metrics"]
    return (f"{stage['test_type']} on {stage['target']}: {stage['verdict'].upper()}   p95 {m['p95_ms']} ms  "
            f"p99 {m['p99_ms']} ms  errors {m['error_rate']}  {m['rps']} req/s  {m['requests']} requests  "
            f"peak {m['vus_max']} VUs")


def progress(message: str) -> None:
    """A line for the person watching (stderr): stdout carries only the result."""
    print(message, file=sys.stderr, flush=True)


def print_table(result: dict[str, Any], out: TextIO) -> None:
    lines = [f"{result['dag_id']}  run {result['run_id']}  -> {result['outcome'].upper()}"]
    for stage in result["stages"]:
        m = stage["metrics"]
        lines += [
            f"\n  {stage_line(stage)}",
            f"    samples stored {m['samples_stored']} of {m['samples_expected']} "
            f"(metrics_complete={stage['metrics_complete']})"]
        figures = {k: v for k, v in stage.get("analysis", {}).items() if not isinstance(v, (dict, list))}
        if figures:
            lines.append("    analysis: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
        lines += [f"    {c['result'].upper():5} {c['name']:12} {c['value']!s:>10} {c['op']} {c['threshold']}"
                  for c in stage["checks"]]
        lines.append(f"    report: {stage['report']}")
    if result.get("explanation"):
        lines.append(f"\n  {' -> '.join(result['path'])}\n  {result['explanation']}")
    if result.get("report"):
        lines.append(f"  pipeline report: {result['report']}")
    if result["failed_tasks"]:
        lines.append(f"\n  failed tasks: {', '.join(result['failed_tasks'])} (see the log above)")
    if result.get("reason"):
        lines.append(f"\n  reason: {result['reason']}")
    out.write("\n".join(lines) + "\n")
    out.flush()


def print_run(result: dict[str, Any], out: TextIO, as_json: bool) -> int:
    """A run's summary (see summarize_run) as JSON or the table; returns its exit code."""
    if result.get("reason"):
        progress(f"perfpipe: {result['reason']}")
    if as_json:
        print(json.dumps(result, indent=2, default=str), file=out, flush=True)
    else:
        print_table(result, out)
    return result["exit_code"]


def print_error(message: str, out: TextIO, as_json: bool) -> int:
    """An error: always on stderr, and with --json also as the one JSON object on stdout; exit 2."""
    print(f"perfpipe: {message}", file=sys.stderr)
    if as_json:
        print(json.dumps({"error": message, "outcome": "error"}), file=out, flush=True)
    return EXIT_ERROR


def print_crash(exc: Exception, out: TextIO, as_json: bool) -> int:
    """An unexpected error (logged with its traceback by the caller): exit 2, never 1 ("a gate failed")."""
    if as_json:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "outcome": "error"}), file=out, flush=True)
    return EXIT_ERROR


def emit(out: TextIO, as_json: bool, document: dict[str, Any], text: str, indent: int | None = None) -> None:
    """A command's result: `document` as JSON with --json, else `text`."""
    if as_json:
        print(json.dumps(document, indent=indent, default=str), file=out, flush=True)
    else:
        out.write(text if text.endswith("\n") else text + "\n")
        out.flush()


def local_stop_text(dag_id: str, run_id: str, stopped: list[dict[str, Any]], wait_s: float) -> str:
    if not stopped:
        return f"no k6 process of {dag_id} run {run_id} is running on this machine"
    return "\n".join(f"stopped k6 pid {e['pid']} (testid {e['testid']}): "
                     f"{'exited' if e['exited'] else f'still stopping after {wait_s:.0f}s'}" for e in stopped)


def remote_stop_text(result: dict[str, Any], base_url: str) -> str:
    dag_id, run_id = result["dag_id"], result["run_id"]
    if result["stopped"]:
        return (f"stopped {dag_id} run {run_id} (was {result['previous_state']}): marked failed; Airflow ends its "
                f"running task, k6 stops and the stage is recorded as aborted")
    if result["previous_state"] is None:
        return f"no run {run_id} of {dag_id} in the Airflow at {base_url}"
    return f"{dag_id} run {run_id} is already {result['previous_state']}: nothing to stop"


def restored_text(restored: list[dict[str, Any]]) -> str:
    lines = [f"{r.get('scenario')}: {r.get('action')} on {r.get('component')}: "
             f"{'restored' if r.get('ok') else 'NOT restored: ' + str(r.get('error'))}" for r in restored]
    failed = sum(1 for r in restored if not r.get("ok"))
    return "\n".join(lines + [f"{len(restored)} leftover fault(s), {failed} failed"])
