"""`perfpipe run|stop --airflow-url URL`: a run in a running Airflow through its REST API. Trigger the DAG (a
finished run of the same logical date is replaced), make sure its target's pool exists, follow it to the end
printing each stage result as it lands in InfluxDB, and summarize it like an in-process run; or stop a run.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime
from typing import Any, TextIO

from perfpipe.app.config import max_run_seconds
from perfpipe.app.pools import LOAD_TASK_ID, pool_for, wanted_pools
from perfpipe.app.results import read_results
from perfpipe.app.run_identity import home_tag, run_id_for, target_name_of
from perfpipe.core.errors import PerfpipeError
from perfpipe.app.influx import influxdb_hook
from perfpipe.entry.airflow_api import (ACTIVE_RUN_STATES, FINISHED_RUN_STATES, AirflowAPIError, AirflowClient,
                                        credentials_from)
from perfpipe.entry.cli import output
from perfpipe.entry.cli.output import EXIT_GATE_FAILED, EXIT_PASSED, CliError, progress

POLL_INTERVAL_S = 2.0
# After a run ends as failed (e.g. stopped), the killed task still records its aborted stage: wait this long.
ABORTED_RESULT_GRACE_S = 60.0
QUEUE_SLACK_S = 600.0
MAX_CONSECUTIVE_API_ERRORS = 10


def airflow_client(args: argparse.Namespace) -> AirflowClient:
    credentials = credentials_from(args.airflow_token, args.airflow_user, args.airflow_password)
    try:
        return AirflowClient(args.airflow_url, credentials)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def api_error(exc: AirflowAPIError, what: str) -> CliError:
    """An API refusal as a CLI error: 400/422 carry the API's own reason (perfpipe's trigger check's message)."""
    if exc.status in (400, 422):
        return CliError(f"{what}: Airflow refused it: {exc.message}")
    if exc.status == 0:
        return CliError(f"{what}: {exc.message}")
    return CliError(f"{what}: {exc}")


def stop_hint(client: AirflowClient, dag_id: str, run_id: str) -> str:
    return f"perfpipe stop '{run_id}' --dag-id {dag_id} --airflow-url {client.base_url}"


def run_remote(args: argparse.Namespace, params: dict[str, Any], stages: list[str],
               logical_date: datetime) -> dict[str, Any]:
    """Trigger perf_<test_type> in the Airflow at --airflow-url, follow it, and summarize it like dag.test."""
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
    # The attempt's own run id, naming the target and this checkout (perfpipe.app.run_identity).
    run_id = run_id_for(logical_date, target_name_of(params), home_tag(os.environ["AIRFLOW_HOME"]))
    run = trigger(client, dag_id, params, logical_date, run_id)  # refused params: nothing changed in Airflow
    ensure_pool(client, params)
    if dag.get("is_paused"):
        # A run of a paused DAG stays queued: unpause, as the UI's trigger button does.
        try:
            client.set_paused(dag_id, False)
        except AirflowAPIError as exc:
            raise api_error(exc, f"unpausing {dag_id} (run {run['dag_run_id']} is queued)") from None
        note = f" (it is scheduled: {schedule}; its scheduled runs start too)" if scheduled else ""
        progress(f"perfpipe: {dag_id} was paused in Airflow: unpaused it{note}")
    run_id = run["dag_run_id"]
    progress(f"perfpipe: triggered {dag_id} run {run_id} at {client.base_url}\n"
             f"perfpipe: stop it with: {stop_hint(client, dag_id, run_id)}")
    timeout_s = args.wait_timeout or sum(max_run_seconds(s) for s in stages) + QUEUE_SLACK_S
    try:
        state, instances = follow_run(client, dag_id, run_id, stages, timeout_s)
    except KeyboardInterrupt:
        raise CliError(f"interrupted: run {run_id} goes on in Airflow; stop it with: "
                       f"{stop_hint(client, dag_id, run_id)}") from None
    failed = [ti["task_id"] for ti in instances if str(ti.get("state")) in output.FAILED_TASK_STATES]
    return output.summarize_run(dag_id, run_id, state, failed, stages, pipeline=args.test_type == "pipeline")


def ensure_pool(client: AirflowClient, params: dict[str, Any]) -> None:
    """The k6 tasks run in their target's one-slot pool (perfpipe.app.pools); without it they would wait forever.
    Create it if that Airflow lacks it (never change an existing one), as `python -m perfpipe.app.pools sync` does."""
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
    progress(f"perfpipe: created the one-slot pool {name} in Airflow (the k6 task runs in it)")


def trigger(client: AirflowClient, dag_id: str, params: dict[str, Any], logical_date: datetime,
            run_id: str) -> dict[str, Any]:
    """POST the run. A finished run of the same logical date is replaced, as dag.test does; a live one is not
    (Airflow keeps one run per DAG and date). The replaced run's results stay until this one records its own."""
    for attempt in range(2):
        try:
            return client.trigger(dag_id, params, logical_date, run_id)
        except AirflowAPIError as exc:
            if exc.status != 409 or attempt:
                raise api_error(exc, f"triggering {dag_id}") from None
        try:
            existing = client.runs_at(dag_id, logical_date)
            live = [r for r in existing if r.get("state") in ACTIVE_RUN_STATES]
            if live:
                raise CliError(f"logical_date: run {live[0]['dag_run_id']} of {dag_id} for {logical_date.isoformat()} "
                               f"is still {live[0]['state']} and Airflow keeps one run per DAG and date: wait for "
                               f"it, stop it first (perfpipe stop) or pass another --logical-date")
            if not existing:
                raise CliError(f"triggering {dag_id}: Airflow reports a conflict (the run id exists) but has no "
                               f"run for {logical_date.isoformat()}")
            for old in existing:
                progress(f"perfpipe: replacing the earlier {old.get('state')} run {old['dag_run_id']} of that "
                         f"logical date")
                client.delete_run(dag_id, old["dag_run_id"])
        except AirflowAPIError as exc:
            raise api_error(exc, f"replacing the earlier run of {dag_id}") from None
    raise AssertionError("unreachable")


def k6_task_id(dag_id: str, stage: str) -> str:
    return f"{stage}.run_k6" if dag_id == "perf_pipeline" else "run_k6"


def follow_run(client: AirflowClient, dag_id: str, run_id: str, stages: list[str], timeout_s: float,
               poll_s: float = POLL_INTERVAL_S) -> tuple[str, list[dict[str, Any]]]:
    """Poll the run until it ends, printing task state changes and each stage result as it lands in InfluxDB.

    Returns the final run state and task instances. Bounded by `timeout_s`; transient API errors are retried a
    few times, never forever.
    """
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
            progress(f"perfpipe: Airflow API error, retrying: {exc}")
        for ti in sorted(instances, key=lambda t: (t.get("start_date") or "~", t["task_id"])):
            ti_state = str(ti.get("state") or "none")
            if task_states.get(ti["task_id"]) != ti_state and ti_state != "none":
                progress(f"  [{dag_id}] {ti['task_id']}: {ti_state}")
            task_states[ti["task_id"]] = ti_state
        show_new_results(dag_id, run_id, shown)
        if state in FINISHED_RUN_STATES:
            break
        if time.monotonic() > deadline:
            raise CliError(f"run {run_id} of {dag_id} is still {state} after {timeout_s:.0f}s: stopped following "
                           f"it (stop it with: {stop_hint(client, dag_id, run_id)})")
        time.sleep(poll_s)
    progress(f"  [{dag_id}] run {run_id}: {state}")
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
    progress(f"perfpipe: waiting up to {grace_s:.0f}s for the result of the stopped stage(s) {', '.join(pending)}")
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(s not in shown for s in pending):
        time.sleep(1)
        show_new_results(dag_id, run_id, shown)


def show_new_results(dag_id: str, run_id: str, shown: dict[str, tuple]) -> None:
    """Print perf_results points of the run that are new (or changed) since the last call."""
    try:
        points = read_results(influxdb_hook(timeout_s=10), dag_id, run_id)
    except PerfpipeError as exc:
        progress(f"perfpipe: cannot read results yet: {exc}")
        return
    for stage in points:
        key = (stage.verdict, stage.testid)
        if shown.get(stage.test_type) != key:
            shown[stage.test_type] = key
            progress("  " + output.stage_line(output.stage_json(stage)))


def stop_command(args: argparse.Namespace, out: TextIO) -> int:
    """Mark the run failed: Airflow ends its running task, k6 stops and the stage is recorded as aborted.
    Exit 0: it was stopped; 1: it was not running (or does not exist)."""
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
    output.emit(out, args.json, result, output.remote_stop_text(result, client.base_url))
    return EXIT_PASSED if result["stopped"] else EXIT_GATE_FAILED
