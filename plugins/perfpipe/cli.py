"""`perfpipe` command line.

    perfpipe run <test_type> --target NAME|FILE.yaml [--profile quick|standard] [--set key=value ...] [--json]

Runs the perf_<test_type> DAG in-process (Airflow's dag.test on the embedded local Airflow) and prints the result.
Exit codes: 0 every gate passed (warn counts as passed), 1 a gate failed, 2 bad input or infrastructure error
(including metrics too incomplete to judge).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Any

from perfpipe import TEST_TYPES

EXIT_PASSED, EXIT_GATE_FAILED, EXIT_ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfpipe", description="k6 performance tests driven by Airflow")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one test type through its Airflow DAG and print the result")
    run.add_argument("test_type", choices=TEST_TYPES + ("pipeline",),
                     help="one test type, or `pipeline` for the whole decision tree")
    run.add_argument("--target", required=True, help="a target name from config/targets.yaml or a YAML file")
    run.add_argument("--profile", default="standard", choices=("quick", "standard"))
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a value for this run, e.g. vus=10, duration=30s, thresholds.p95_ms=300")
    run.add_argument("--logical-date", help="ISO date of the run (default: now); rerunning a date replaces "
                                            "its result")
    run.add_argument("--include-soak", action="store_true", help="pipeline: run the soak stage before ready")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from perfpipe import airflow_env

    airflow_env.configure()
    out = _reserve_stdout()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        result = run_test(args)
    except CliError as exc:
        print(f"perfpipe: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(exc), "outcome": "error"}), file=out, flush=True)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(result, indent=2, default=str), file=out, flush=True)
    else:
        print_table(result, out)
    return result["exit_code"]


def _reserve_stdout():
    """Keep stdout for the result alone: Airflow's logging (bound to fd 1) and k6 go to stderr instead."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return out


class CliError(Exception):
    pass


def params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from perfpipe.config import parse_set_arguments
    from perfpipe.targets import configured_targets, resolve_target

    params: dict[str, Any] = {"profile": args.profile, "overrides": parse_set_arguments(args.overrides)}
    if args.test_type == "pipeline":
        params["include_soak"] = args.include_soak
    if args.target in configured_targets():
        params["target"] = args.target
    else:
        params["inline_target"] = resolve_target(args.target)  # a YAML file: validated and passed inline
    return params


def run_test(args: argparse.Namespace) -> dict[str, Any]:
    from perfpipe.errors import PerfpipeError
    from perfpipe.stage import prepare_plan

    from perfpipe.pipeline import STAGES

    stages = [args.test_type] if args.test_type != "pipeline" else \
        [s for s in STAGES if s != "soak" or args.include_soak]
    try:
        params = params_from_args(args)
        # Refuse bad input (for every stage) before Airflow starts a run: nothing is sent to the target.
        for stage in stages:
            prepare_plan(stage, params)
    except PerfpipeError as exc:
        raise CliError(str(exc)) from None
    logical_date = parse_logical_date(args.logical_date)
    dag = load_dag(f"perf_{args.test_type}")
    dag_run = run_dag(dag, params, logical_date)
    return summarize(dag, dag_run, stages, pipeline=args.test_type == "pipeline")


def parse_logical_date(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--logical-date: not an ISO date: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def load_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    from perfpipe.airflow_env import ensure_db

    ensure_db()
    import os

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if dag_id not in bag.dags:
        raise CliError(f"DAG {dag_id} not found in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}: "
                       f"{bag.import_errors or 'not defined'}")
    return bag.dags[dag_id]


def run_dag(dag, params: dict[str, Any], logical_date: datetime):
    from airflow.sdk.exceptions import ParamValidationError

    try:
        with contextlib.redirect_stdout(sys.stderr):
            # run_after = logical date makes the run id (manual__<date>) a function of the date, so a rerun of
            # the date reuses its run and replaces its results instead of adding new ones.
            return dag.test(logical_date=logical_date, run_after=logical_date, run_conf=params)
    except ParamValidationError as exc:
        raise CliError(f"invalid params: {exc}") from None


def summarize(dag, dag_run, test_types: list[str], pipeline: bool = False) -> dict[str, Any]:
    """The run as one JSON-able object, from perf_results (and perf_pipeline) in InfluxDB and the task states."""
    from perfpipe.errors import PerfpipeError
    from perfpipe.gates import FAIL, PASS, WARN
    from perfpipe.hooks.influxdb import InfluxDBHook
    from perfpipe.outcomes import read_conclusion
    from perfpipe.results import read_results

    hook = InfluxDBHook()
    try:
        points = read_results(hook, dag.dag_id, dag_run.run_id)
        conclusion = read_conclusion(hook, dag.dag_id, dag_run.run_id) if pipeline else None
    except PerfpipeError as exc:
        raise CliError(str(exc)) from None
    by_type = {p["test_type"]: p for p in points}
    stages = [stage_json(by_type[t]) for t in test_types if t in by_type]
    failed_tasks = sorted(ti.task_id for ti in dag_run.get_task_instances()
                          if str(getattr(ti.state, "value", ti.state)) in ("failed", "upstream_failed"))
    if pipeline:
        from perfpipe.pipeline import READY
        from perfpipe.report import REPORT_FILE

        if conclusion is None:
            outcome, exit_code = "error", EXIT_ERROR  # no outcome reached: an infrastructure error
        else:
            outcome = conclusion["outcome"]
            exit_code = EXIT_PASSED if outcome == READY else EXIT_GATE_FAILED
        from perfpipe.paths import reports_root, safe_component

        report = reports_root() / safe_component(dag.dag_id) / safe_component(dag_run.run_id) / REPORT_FILE
        return {"dag_id": dag.dag_id, "run_id": dag_run.run_id, "state": str(dag_run.state), "stages": stages,
                "path": conclusion["path"] if conclusion else [s["test_type"] for s in stages],
                "outcome": outcome, "explanation": (conclusion or {}).get("explanation"),
                "evidence": (conclusion or {}).get("evidence", []), "report": str(report) if report.is_file() else None,
                "failed_tasks": failed_tasks, "exit_code": exit_code}
    verdicts = [s["verdict"] for s in stages]
    if len(stages) < len(test_types) and not any(v == FAIL for v in verdicts):
        outcome, exit_code = "error", EXIT_ERROR  # a stage never produced a result: infrastructure
    elif any(v == FAIL for v in verdicts):
        outcome, exit_code = "failed", EXIT_GATE_FAILED
    elif all(v in (PASS, WARN) for v in verdicts):
        outcome, exit_code = ("passed_with_warnings" if WARN in verdicts else "passed"), EXIT_PASSED
    else:
        outcome, exit_code = "inconclusive", EXIT_ERROR
    return {"dag_id": dag.dag_id, "run_id": dag_run.run_id, "state": str(dag_run.state), "stages": stages,
            "path": [s["test_type"] for s in stages], "outcome": outcome, "failed_tasks": failed_tasks,
            "exit_code": exit_code}


def stage_json(point: dict[str, Any]) -> dict[str, Any]:
    from perfpipe.results import METRIC_FIELDS

    metrics = {name: point.get(name) for name in METRIC_FIELDS + ("samples_expected", "samples_stored")}
    return {"test_type": point["test_type"], "target": point["target"], "verdict": point["verdict"],
            "testid": point.get("testid"), "metrics": metrics,
            "checks": [{k: c.get(k) for k in ("name", "op", "threshold", "warn", "value", "result")}
                       for c in point["checks"]],
            "metrics_complete": bool(point.get("metrics_complete")), "report": point.get("report")}


def print_table(result: dict[str, Any], out) -> None:
    lines = [f"{result['dag_id']}  run {result['run_id']}  -> {result['outcome'].upper()}"]
    for stage in result["stages"]:
        m = stage["metrics"]
        lines += [
            f"\n  {stage['test_type']} on {stage['target']}: {stage['verdict'].upper()}   p95 {m['p95_ms']} ms  "
            f"p99 {m['p99_ms']} ms  errors {m['error_rate']}  {m['rps']} req/s  {m['requests']} requests  "
            f"peak {m['vus_max']} VUs",
            f"    samples stored {m['samples_stored']} of {m['samples_expected']} "
            f"(metrics_complete={stage['metrics_complete']})"]
        lines += [f"    {c['result'].upper():5} {c['name']:12} {c['value']!s:>10} {c['op']} {c['threshold']}"
                  for c in stage["checks"]]
        lines.append(f"    report: {stage['report']}")
    if result.get("explanation"):
        lines.append(f"\n  {' -> '.join(result['path'])}\n  {result['explanation']}")
    if result.get("report"):
        lines.append(f"  pipeline report: {result['report']}")
    if result["failed_tasks"]:
        lines.append(f"\n  failed tasks: {', '.join(result['failed_tasks'])} (see the log above)")
    out.write("\n".join(lines) + "\n")
    out.flush()


if __name__ == "__main__":
    sys.exit(main())
