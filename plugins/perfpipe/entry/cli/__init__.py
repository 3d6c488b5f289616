"""`perfpipe` command line.

    perfpipe run <test_type|pipeline> --target NAME|FILE.yaml [--profile quick|standard] [--set key=value ...]
                 [--logical-date ISO] [--json] [--airflow-url URL [--airflow-user U --airflow-password P |
                 --airflow-token T]]
    perfpipe stop RUN_ID [--dag-id perf_pipeline] [--airflow-url URL ...]
    perfpipe status [--json]

`run` runs the perf_<test_type> DAG in-process (Airflow's dag.test on the embedded local Airflow), or, with
--airflow-url, triggers it through that Airflow's REST API and follows it to the end; either way it prints the
result. Exit codes: 0 every gate passed (warn counts as passed), 1 a gate failed, 2 bad input or infrastructure
error (including metrics too incomplete to judge, and a run stopped before its end).

`stop` stops a run: through the REST API (the run is marked failed; Airflow ends its task, k6 stops and the stage
is recorded as aborted), or without --airflow-url by sending SIGTERM to this machine's k6 processes of that run.
Exit 0: something was stopped; 1: nothing of that run was running; 2: error.

`status` lists the tests running now with their live VUs, request rate and error rate, from InfluxDB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
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
    run.add_argument("--scenario", dest="chaos_scenario", metavar="NAME",
                     help="chaos: the target's fault scenario (default: the target's default_scenario)")
    run.add_argument("--include-soak", action="store_true", help="pipeline: run the soak stage before ready")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_airflow_arguments(run, "trigger the DAG in that Airflow (REST API) instead of running it in-process")
    run.add_argument("--unpause", action="store_true",
                     help="with --airflow-url: unpause the DAG if it is paused (its schedule starts too)")
    run.add_argument("--wait-timeout", type=float, metavar="SECONDS",
                     help="with --airflow-url: give up following the run after this long (default: the DAG's own "
                          "time limits plus 10 minutes)")

    stop = sub.add_parser("stop", help="stop a running test run")
    stop.add_argument("run_id", help="the DAG run id, e.g. manual__2026-01-05T00:00:00+00:00")
    stop.add_argument("--dag-id", default="perf_pipeline", help="the run's DAG (default: perf_pipeline)")
    stop.add_argument("--wait", type=float, default=40, metavar="SECONDS",
                      help="without --airflow-url: how long to wait for k6 to exit (default 40)")
    stop.add_argument("--json", action="store_true", help="print one JSON object")
    add_airflow_arguments(stop, "stop the run through that Airflow's REST API (mark it failed) instead of "
                                "signalling this machine's k6 processes")

    status = sub.add_parser("status", help="tests running now: live VUs, request rate, error rate (InfluxDB)")
    status.add_argument("--json", action="store_true", help="print one JSON object")

    chaos = sub.add_parser("chaos", help="chaos faults: `chaos restore` undoes any fault a killed run left behind")
    chaos.add_argument("action", choices=("restore",))
    chaos.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def add_airflow_arguments(parser: argparse.ArgumentParser, url_help: str) -> None:
    from perfpipe.entry.airflow_api import ENV_PASSWORD, ENV_TOKEN, ENV_USER  # per command: the CLI starts fast

    parser.add_argument("--airflow-url", metavar="URL", help=url_help + ", e.g. http://127.0.0.1:8080")
    parser.add_argument("--airflow-user", metavar="USER", help=f"Airflow user (or {ENV_USER})")
    parser.add_argument("--airflow-password", metavar="PASSWORD",
                        help=f"its password (better: {ENV_PASSWORD}; arguments show in ps)")
    parser.add_argument("--airflow-token", metavar="JWT", help=f"an Airflow API token instead (or {ENV_TOKEN})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from perfpipe.entry import airflow_env  # before anything imports Airflow
    airflow_env.configure()
    out = _reserve_stdout()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    commands = {"stop": stop_command, "status": status_command, "chaos": chaos_command}
    try:
        if args.command in commands:
            return commands[args.command](args, out)
        result = run_test(args)
    except CliError as exc:
        print(f"perfpipe: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(exc), "outcome": "error"}), file=out, flush=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("perfpipe: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never exit 1 ("a gate failed") for a crash: that is an error of ours or the stack
        logging.getLogger(__name__).exception("perfpipe: unexpected error")
        if args.json:
            print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "outcome": "error"}), file=out, flush=True)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(result, indent=2, default=str), file=out, flush=True)
    else:
        print_table(result, out)
    return result["exit_code"]


def chaos_command(args: argparse.Namespace, out) -> int:
    """Restore the faults of chaos holders that died without restoring (each chaos run also does this first)."""
    from perfpipe.app.chaos import restore_leftovers  # per command: the CLI starts fast

    restored = restore_leftovers()
    failed = [r for r in restored if not r.get("ok")]
    if args.json:
        print(json.dumps({"restored": restored}, indent=2, default=str), file=out, flush=True)
    else:
        for r in restored:
            state = "restored" if r.get("ok") else f"NOT restored: {r.get('error')}"
            print(f"{r.get('scenario')}: {r.get('action')} on {r.get('component')}: {state}", file=out)
        print(f"{len(restored)} leftover fault(s), {len(failed)} failed", file=out, flush=True)
    return EXIT_ERROR if failed else EXIT_PASSED


def _reserve_stdout():
    """Keep stdout for the result alone: Airflow's logging (bound to fd 1) and k6 go to stderr instead."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return out


class CliError(Exception):
    pass


def params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from perfpipe.app.config import parse_set_arguments  # per command: the CLI starts fast
    from perfpipe.app.targets import configured_targets, resolve_target  # per command: the CLI starts fast

    params: dict[str, Any] = {"profile": args.profile, "overrides": parse_set_arguments(args.overrides)}
    if args.test_type in ("chaos", "pipeline"):  # the DAGs with that Param; always set, or dag.test() would keep
        params["chaos_scenario"] = args.chaos_scenario  # a previous run's value
    elif args.chaos_scenario:
        raise CliError(f"--scenario: only chaos and pipeline runs inject faults, not {args.test_type}")
    if args.test_type == "pipeline":
        params["include_soak"] = args.include_soak
    if args.target in configured_targets():
        params["target"] = args.target
    else:
        params["inline_target"] = resolve_target(args.target)  # a YAML file: validated and passed inline
    return params


def run_test(args: argparse.Namespace) -> dict[str, Any]:
    from perfpipe.core.errors import PerfpipeError  # per command: the CLI starts fast
    from perfpipe.app.stage import prepare_run, run_stages  # per command: the CLI starts fast

    stages = run_stages(args.test_type, args.include_soak)
    try:
        params = params_from_args(args)
        # Refuse bad input (for every stage) before Airflow starts a run: nothing is sent to the target. In a
        # local run the first task reuses these checks (same process); a remote Airflow checks for itself.
        prepare_run(stages, params)
    except PerfpipeError as exc:
        raise CliError(str(exc)) from None
    logical_date = parse_logical_date(args.logical_date)
    if getattr(args, "airflow_url", None):
        return run_remote(args, params, stages, logical_date)
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
    """Parse only the file of the DAG being run (dags/<dag_id>.py), not the whole dags folder."""
    from pathlib import Path  # beside this command's other imports

    from airflow.dag_processing.dagbag import DagBag  # after airflow_env.configure()

    from perfpipe.entry.airflow_env import ensure_db  # after airflow_env.configure()

    ensure_db()
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    own_file = folder / f"{dag_id}.py"
    bag = DagBag(str(own_file if own_file.is_file() else folder))
    if dag_id not in bag.dags and own_file.is_file():  # defined elsewhere in the folder after all
        bag = DagBag(str(folder))
    if dag_id not in bag.dags:
        raise CliError(f"DAG {dag_id} not found in {folder}: {bag.import_errors or 'not defined'}")
    return bag.dags[dag_id]


def run_dag(dag, params: dict[str, Any], logical_date: datetime):
    from airflow.sdk.exceptions import ParamValidationError  # per command: the CLI starts fast

    try:
        with contextlib.redirect_stdout(sys.stderr):
            # run_after = logical date makes the run id (manual__<date>) a function of the date, so a rerun of
            # the date reuses its run and replaces its results instead of adding new ones.
            return dag.test(logical_date=logical_date, run_after=logical_date, run_conf=params)
    except ParamValidationError as exc:
        raise CliError(f"invalid params: {exc}") from None


def summarize(dag, dag_run, test_types: list[str], pipeline: bool = False) -> dict[str, Any]:
    """The in-process run as one JSON-able object (see summarize_run)."""
    failed_tasks = sorted(ti.task_id for ti in dag_run.get_task_instances()
                          if str(getattr(ti.state, "value", ti.state)) in FAILED_TASK_STATES)
    return summarize_run(dag.dag_id, dag_run.run_id, str(dag_run.state), failed_tasks, test_types,
                         pipeline=pipeline)


FAILED_TASK_STATES = ("failed", "upstream_failed")


def summarize_run(dag_id: str, run_id: str, state: str, failed_tasks: list[str], test_types: list[str],
                  pipeline: bool = False) -> dict[str, Any]:
    """The run as one JSON-able object, from perf_results (and perf_pipeline) in InfluxDB and the task states.

    The same for an in-process run and a run in a remote Airflow: only dag_id, run_id, the run's final state and
    its failed tasks come from Airflow; everything else is read from InfluxDB.
    """
    from perfpipe.core.errors import PerfpipeError  # per command: the CLI starts fast
    from perfpipe.app.influx import influxdb_hook  # per command: the CLI starts fast
    from perfpipe.app import outcomes  # per command: the CLI starts fast
    from perfpipe.app.results import read_results  # per command: the CLI starts fast

    hook = influxdb_hook()
    try:
        points = read_results(hook, dag_id, run_id)
        conclusion = outcomes.read_conclusion(hook, dag_id, run_id) if pipeline else None
    except PerfpipeError as exc:
        raise CliError(str(exc)) from None
    by_type = {s.test_type: s for s in points}
    stages = [stage_json(by_type[t]) for t in test_types if t in by_type]
    failed_tasks = sorted(failed_tasks)
    verdicts = [s["verdict"] for s in stages]
    path = [s["test_type"] for s in stages]
    if pipeline:
        from perfpipe.app.report import REPORT_FILE  # per command: the CLI starts fast
        from perfpipe.app.report_paths import run_report_dir  # per command: the CLI starts fast

        run = outcomes.pipeline_outcome(conclusion, verdicts)
        report = run_report_dir(dag_id, run_id) / REPORT_FILE
        return {"dag_id": dag_id, "run_id": run_id, "state": state, "stages": stages,
                "path": conclusion["path"] if conclusion else path,
                "outcome": run.outcome, "explanation": (conclusion or {}).get("explanation"),
                "evidence": (conclusion or {}).get("evidence", []), "report": str(report) if report.is_file() else None,
                "failed_tasks": failed_tasks, "exit_code": exit_code_of(run)}
    run = outcomes.stages_outcome(verdicts, len(test_types))
    return {"dag_id": dag_id, "run_id": run_id, "state": state, "stages": stages, "path": path,
            "outcome": run.outcome, "failed_tasks": failed_tasks, "exit_code": exit_code_of(run)}


def exit_code_of(run) -> int:
    """0 every gate passed, 1 a gate failed, 2 no verdict on the system (perfpipe.app.outcomes.RunOutcome)."""
    return {True: EXIT_PASSED, False: EXIT_GATE_FAILED, None: EXIT_ERROR}[run.passed]


def stage_json(stage) -> dict[str, Any]:
    """A StageResult as the CLI's JSON shows it (README: Command line)."""
    from perfpipe.app.measurements import ANALYSIS_FIELDS, METRIC_FIELDS, SAMPLE_FIELDS  # per command

    metrics = {name: stage.metrics.get(name) for name in METRIC_FIELDS + SAMPLE_FIELDS}
    analysis = {name: stage.metrics[name] for name in ANALYSIS_FIELDS if stage.metrics.get(name) is not None}
    details = stage.analysis
    for key in ("scenario", "component", "action", "phases", "events", "limits", "windows_s"):
        if key in details:
            analysis[key] = details[key]
    return {"test_type": stage.test_type, "target": stage.target, "verdict": stage.verdict,
            "testid": stage.testid, "metrics": metrics, "analysis": analysis,
            "checks": [{k: c.get(k) for k in ("name", "op", "threshold", "warn", "value", "result")}
                       for c in stage.checks],
            "metrics_complete": bool(stage.metrics.get("metrics_complete")), "report": stage.report}


def print_table(result: dict[str, Any], out) -> None:
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
    out.write("\n".join(lines) + "\n")
    out.flush()



# --- a run in a remote Airflow (REST API) --------------------------------------------------------------------

POLL_INTERVAL_S = 2.0
# After a run ends as failed (e.g. stopped), the killed task still records its aborted stage: wait this long.
ABORTED_RESULT_GRACE_S = 60.0
QUEUE_SLACK_S = 600.0
MAX_CONSECUTIVE_API_ERRORS = 10


def airflow_client(args: argparse.Namespace):
    from perfpipe.entry.airflow_api import AirflowClient, credentials_from  # per command: the CLI starts fast

    credentials = credentials_from(args.airflow_token, args.airflow_user, args.airflow_password)
    try:
        return AirflowClient(args.airflow_url, credentials)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def api_error(exc, what: str) -> CliError:
    """An API refusal as a CLI error: 400/422 carry the API's own reason (the Params JSON schema's message)."""
    if exc.status in (400, 422):
        return CliError(f"{what}: Airflow refused it: {exc.message}")
    if exc.status == 0:
        return CliError(f"{what}: {exc.message}")
    return CliError(f"{what}: {exc}")


def run_remote(args: argparse.Namespace, params: dict[str, Any], stages: list[str],
               logical_date: datetime) -> dict[str, Any]:
    """Trigger perf_<test_type> in the Airflow at --airflow-url, follow it, and summarize it like dag.test."""
    from perfpipe.entry.airflow_api import AirflowAPIError  # per command: the CLI starts fast
    from perfpipe.app.config import max_run_seconds  # per command: the CLI starts fast

    client = airflow_client(args)
    dag_id = f"perf_{args.test_type}"
    try:
        dag = client.get_dag(dag_id)
    except AirflowAPIError as exc:
        if exc.status == 404:
            raise CliError(f"DAG {dag_id} is not in the Airflow at {client.base_url} (is its dags folder this "
                           f"project's dags/?)") from None
        raise api_error(exc, f"reading DAG {dag_id}") from None
    if dag.get("has_import_errors"):
        raise CliError(f"DAG {dag_id} has import errors in the Airflow at {client.base_url}")
    schedule = dag.get("timetable_summary")
    scheduled = schedule not in (None, "None")
    if dag.get("is_paused") and scheduled and not args.unpause:
        # Unpausing starts the schedule: with catchup off the latest scheduled run starts at once, with the
        # default Params (standard profile), which is load nobody asked for here.
        raise CliError(f"DAG {dag_id} is paused in the Airflow at {client.base_url}, and unpausing it also "
                       f"starts its schedule ({schedule}). Unpause it in Airflow, or pass --unpause.")
    run = trigger_remote(client, dag_id, params, logical_date)  # refused params: nothing changed in Airflow
    ensure_remote_pool(client, params)
    if dag.get("is_paused"):
        # A run of a paused DAG stays queued: unpause, as the UI's trigger button does.
        try:
            client.set_paused(dag_id, False)
        except AirflowAPIError as exc:
            raise api_error(exc, f"unpausing {dag_id} (run {run['dag_run_id']} is queued)") from None
        note = f" (it is scheduled: {schedule}; its scheduled runs start too)" if scheduled else ""
        print(f"perfpipe: {dag_id} was paused in Airflow: unpaused it{note}", file=sys.stderr)
    run_id = run["dag_run_id"]
    print(f"perfpipe: triggered {dag_id} run {run_id} at {client.base_url}\n"
          f"perfpipe: stop it with: perfpipe stop '{run_id}' --dag-id {dag_id} --airflow-url {client.base_url}",
          file=sys.stderr, flush=True)
    timeout_s = args.wait_timeout or sum(max_run_seconds(s) for s in stages) + QUEUE_SLACK_S
    try:
        state, instances = follow_run(client, dag_id, run_id, stages, timeout_s)
    except KeyboardInterrupt:
        raise CliError(f"interrupted: run {run_id} goes on in Airflow; stop it with: perfpipe stop '{run_id}' "
                       f"--dag-id {dag_id} --airflow-url {client.base_url}") from None
    failed = [ti["task_id"] for ti in instances if str(ti.get("state")) in FAILED_TASK_STATES]
    return summarize_run(dag_id, run_id, state, failed, stages, pipeline=args.test_type == "pipeline")


def ensure_remote_pool(client, params: dict[str, Any]) -> None:
    """The k6 tasks run in their target's one-slot pool (perfpipe.app.pools); without it they would wait forever.
    Create it if that Airflow lacks it (never change an existing one), as `python -m perfpipe.app.pools sync` does."""
    from perfpipe.entry.airflow_api import AirflowAPIError  # per command: the CLI starts fast
    from perfpipe.app.pools import LOAD_TASK_ID, pool_for, wanted_pools  # per command: the CLI starts fast

    name = pool_for(LOAD_TASK_ID, params)
    if not name:
        return
    try:
        client.get_pool(name)
        return
    except AirflowAPIError as exc:
        if exc.status != 404:
            raise api_error(exc, f"reading pool {name}") from None
    description = wanted_pools().get(name) or f"perfpipe: k6 load on {name}, one run at a time"
    try:
        client.create_pool(name, 1, description)
    except AirflowAPIError as exc:
        if exc.status != 409:  # 409: created meanwhile
            raise CliError(f"pool {name} is missing in the Airflow at {client.base_url} and could not be created "
                           f"({exc}); run `python -m perfpipe.app.pools sync` there") from None
    print(f"perfpipe: created the one-slot pool {name} in Airflow (the k6 task runs in it)", file=sys.stderr)


def trigger_remote(client, dag_id: str, params: dict[str, Any], logical_date: datetime) -> dict[str, Any]:
    """POST the run. A finished run of the same logical date is replaced, as dag.test does; a live one is not."""
    from perfpipe.entry.airflow_api import ACTIVE_RUN_STATES, AirflowAPIError  # per command: the CLI starts fast

    for attempt in range(2):
        try:
            return client.trigger(dag_id, params, logical_date)
        except AirflowAPIError as exc:
            if exc.status != 409 or attempt:
                raise api_error(exc, f"triggering {dag_id}") from None
        try:
            existing = client.runs_at(dag_id, logical_date)
            live = [r for r in existing if r.get("state") in ACTIVE_RUN_STATES]
            if live:
                raise CliError(f"run {live[0]['dag_run_id']} of {dag_id} for {logical_date.isoformat()} is still "
                               f"{live[0]['state']}: stop it first (perfpipe stop) or pass another --logical-date")
            if not existing:
                raise CliError(f"triggering {dag_id}: Airflow reports a conflict (the run id exists) but has no "
                               f"run for {logical_date.isoformat()}")
            for old in existing:
                print(f"perfpipe: replacing the earlier {old.get('state')} run {old['dag_run_id']} of that "
                      f"logical date", file=sys.stderr)
                client.delete_run(dag_id, old["dag_run_id"])
        except AirflowAPIError as exc:
            raise api_error(exc, f"replacing the earlier run of {dag_id}") from None
    raise AssertionError("unreachable")


def k6_task_id(dag_id: str, stage: str) -> str:
    return f"{stage}.run_k6" if dag_id == "perf_pipeline" else "run_k6"


def follow_run(client, dag_id: str, run_id: str, stages: list[str], timeout_s: float,
               poll_s: float = POLL_INTERVAL_S) -> tuple[str, list[dict[str, Any]]]:
    """Poll the run until it ends, printing task state changes and each stage result as it lands in InfluxDB.

    Returns the final run state and task instances. Bounded by `timeout_s`; transient API errors are retried a
    few times, never forever.
    """
    from perfpipe.entry.airflow_api import FINISHED_RUN_STATES, AirflowAPIError  # per command: the CLI starts fast

    deadline = time.monotonic() + timeout_s
    task_states: dict[str, str] = {}
    shown: dict[str, tuple] = {}
    errors = 0
    state, instances = "queued", []
    while True:
        try:
            state = str(client.get_run(dag_id, run_id).get("state"))
            instances = client.task_instances(dag_id, run_id)
            errors = 0
        except AirflowAPIError as exc:
            errors += 1
            if exc.status in (400, 401, 403, 404) or errors >= MAX_CONSECUTIVE_API_ERRORS:
                raise api_error(exc, f"following run {run_id}") from None
            print(f"perfpipe: Airflow API error, retrying: {exc}", file=sys.stderr)
        for ti in sorted(instances, key=lambda t: (t.get("start_date") or "~", t["task_id"])):
            ti_state = str(ti.get("state") or "none")
            if task_states.get(ti["task_id"]) != ti_state and ti_state != "none":
                print(f"  [{dag_id}] {ti['task_id']}: {ti_state}", file=sys.stderr, flush=True)
            task_states[ti["task_id"]] = ti_state
        show_new_results(dag_id, run_id, shown)
        if state in FINISHED_RUN_STATES:
            break
        if time.monotonic() > deadline:
            raise CliError(f"run {run_id} of {dag_id} is still {state} after {timeout_s:.0f}s: stopped following "
                           f"it (stop it with: perfpipe stop '{run_id}' --dag-id {dag_id} --airflow-url "
                           f"{client.base_url})")
        time.sleep(poll_s)
    print(f"  [{dag_id}] run {run_id}: {state}", file=sys.stderr, flush=True)
    if state != "success":
        wait_for_stopped_stages(dag_id, run_id, stages, instances, shown)
    return state, instances


def wait_for_stopped_stages(dag_id: str, run_id: str, stages: list[str], instances: list[dict[str, Any]],
                            shown: dict[str, tuple], grace_s: float = ABORTED_RESULT_GRACE_S) -> None:
    """A stopped run ends before its killed k6 task has recorded the aborted stage: give that a bounded wait."""
    started = {ti["task_id"] for ti in instances if ti.get("start_date")}
    pending = [s for s in stages if k6_task_id(dag_id, s) in started and s not in shown]
    if not pending:
        return
    print(f"perfpipe: waiting up to {grace_s:.0f}s for the result of the stopped stage(s) {', '.join(pending)}",
          file=sys.stderr, flush=True)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(s not in shown for s in pending):
        time.sleep(1)
        show_new_results(dag_id, run_id, shown)


def show_new_results(dag_id: str, run_id: str, shown: dict[str, tuple]) -> None:
    """Print perf_results points of the run that are new (or changed) since the last call."""
    from perfpipe.core.errors import PerfpipeError  # per command: the CLI starts fast
    from perfpipe.app.influx import influxdb_hook  # per command: the CLI starts fast
    from perfpipe.app.results import read_results  # per command: the CLI starts fast

    try:
        points = read_results(influxdb_hook(timeout_s=10), dag_id, run_id)
    except PerfpipeError as exc:
        print(f"perfpipe: cannot read results yet: {exc}", file=sys.stderr)
        return
    for stage in points:
        key = (stage.verdict, stage.testid)
        if shown.get(stage.test_type) != key:
            shown[stage.test_type] = key
            print("  " + stage_line(stage_json(stage)), file=sys.stderr, flush=True)


def stage_line(stage: dict[str, Any]) -> str:
    m = stage["metrics"]
    return (f"{stage['test_type']} on {stage['target']}: {stage['verdict'].upper()}   p95 {m['p95_ms']} ms  "
            f"p99 {m['p99_ms']} ms  errors {m['error_rate']}  {m['rps']} req/s  {m['requests']} requests  "
            f"peak {m['vus_max']} VUs")


# --- stop / status -------------------------------------------------------------------------------------------

def stop_command(args: argparse.Namespace, out) -> int:
    """Stop one run: through the REST API with --airflow-url, else SIGTERM to this machine's k6 of that run."""
    if args.airflow_url:
        return stop_remote(args, out)
    from perfpipe.app.live_status import stop_local  # per command: the CLI starts fast

    stopped = stop_local(args.dag_id, args.run_id, wait_s=args.wait,
                         log=lambda msg: print(f"perfpipe: {msg}", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"dag_id": args.dag_id, "run_id": args.run_id, "mode": "local", "stopped": stopped}),
              file=out, flush=True)
    elif not stopped:
        print(f"no k6 process of {args.dag_id} run {args.run_id} is running on this machine", file=out, flush=True)
    else:
        for entry in stopped:
            how = "exited" if entry["exited"] else f"still stopping after {args.wait:.0f}s"
            print(f"stopped k6 pid {entry['pid']} (testid {entry['testid']}): {how}", file=out, flush=True)
    return EXIT_PASSED if stopped else EXIT_GATE_FAILED


def stop_remote(args: argparse.Namespace, out) -> int:
    from perfpipe.entry.airflow_api import ACTIVE_RUN_STATES, AirflowAPIError  # per command: the CLI starts fast

    client = airflow_client(args)
    result: dict[str, Any] = {"dag_id": args.dag_id, "run_id": args.run_id, "mode": "airflow", "stopped": False}
    try:
        run = client.get_run(args.dag_id, args.run_id)
        result["previous_state"] = run.get("state")
        if run.get("state") in ACTIVE_RUN_STATES:
            result["state"] = client.set_run_state(args.dag_id, args.run_id, "failed").get("state")
            result["stopped"] = True
    except AirflowAPIError as exc:
        if exc.status != 404:
            raise api_error(exc, f"stopping {args.dag_id} run {args.run_id}") from None
        result["previous_state"] = None
    if args.json:
        print(json.dumps(result), file=out, flush=True)
    elif result["stopped"]:
        print(f"stopped {args.dag_id} run {args.run_id} (was {result['previous_state']}): marked failed; Airflow "
              f"ends its running task, k6 stops and the stage is recorded as aborted", file=out, flush=True)
    elif result["previous_state"] is None:
        print(f"no run {args.run_id} of {args.dag_id} in the Airflow at {client.base_url}", file=out, flush=True)
    else:
        print(f"{args.dag_id} run {args.run_id} is already {result['previous_state']}: nothing to stop", file=out,
              flush=True)
    return EXIT_PASSED if result["stopped"] else EXIT_GATE_FAILED


def status_command(args: argparse.Namespace, out) -> int:
    from perfpipe.core.errors import PerfpipeError  # per command: the CLI starts fast
    from perfpipe.app.live_status import format_status, running_tests  # per command: the CLI starts fast

    try:
        tests = running_tests()
    except PerfpipeError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(json.dumps({"running": tests}, indent=2), file=out, flush=True)
    else:
        out.write(format_status(tests))
        out.flush()
    return EXIT_PASSED


if __name__ == "__main__":
    sys.exit(main())
