"""`perfpipe` on this machine: the pre-flight of every run (bad input is refused before Airflow starts or is
asked to start a run, so nothing is sent to the target), the in-process run (dag.test on the embedded local
Airflow), and `stop` (SIGTERM to this machine's k6 of a run), `status` and `chaos restore`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from perfpipe.app.chaos import restore_leftovers
from perfpipe.app.live_status import format_status, running_tests, stop_local
from perfpipe.app.run_identity import home_of_run_id, home_tag, run_id_for, target_name_of
from perfpipe.app.stage import prepare_run, run_stages, target_from_params
from perfpipe.app.target_lock import TargetBusyError, target_lock
from perfpipe.app.targets import endpoints
from perfpipe.core.errors import PerfpipeError
from perfpipe.entry.airflow_env import ensure_db
from perfpipe.entry.cli import local_runs, output
from perfpipe.entry.cli.args import params_from_args
from perfpipe.entry.cli.output import EXIT_ERROR, EXIT_GATE_FAILED, EXIT_PASSED, CliError


def preflight(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """A `run`'s Params and the stages it may reach, every stage checked here, before any run exists. In a local
    run the first task reuses these checks (same process); a remote Airflow checks for itself."""
    stages = run_stages(args.test_type, args.include_soak)
    try:
        params = params_from_args(args)
        prepare_run(stages, params)
    except PerfpipeError as exc:
        raise CliError(str(exc)) from None
    return params, stages


def run_local(args: argparse.Namespace, params: dict[str, Any], stages: list[str],
              logical_date: datetime) -> dict[str, Any]:
    """Run perf_<test_type> in-process with dag.test and summarize it (perfpipe.entry.cli.output.summarize_run)."""
    dag = load_dag(f"perf_{args.test_type}")
    home = os.environ["AIRFLOW_HOME"]
    # Each attempt its own run id (target, this checkout, a nonce): results are keyed by (dag, target, test, date)
    # and a rerun replaces the earlier one only once it has recorded its own (perfpipe.app.run_identity).
    run_id = run_id_for(logical_date, target_name_of(params), home_tag(home))
    # A second run of the DAG and date is refused at once, before it would wait for the target's lock.
    with local_runs.own_run(home, dag.dag_id, logical_date, run_id), one_load_per_target(args, params):
        dag_run = run_dag(dag, params, logical_date)
    failed_tasks = [ti.task_id for ti in dag_run.get_task_instances()
                    if str(getattr(ti.state, "value", ti.state)) in output.FAILED_TASK_STATES]
    return output.summarize_run(dag.dag_id, dag_run.run_id, str(dag_run.state), failed_tasks, stages,
                                pipeline=args.test_type == "pipeline")


@contextlib.contextmanager
def one_load_per_target(args: argparse.Namespace, params: dict[str, Any]):
    """The machine-wide lock of the run's target (perfpipe.app.target_lock): what the pool is under a scheduler."""
    target = target_from_params(params)  # checked by the pre-flight already: cached, no second resolution
    lock = target_lock(endpoints(target["base_url"]), wait=not getattr(args, "no_wait", False),
                       holder=f"perfpipe run {args.test_type} --target {args.target}",
                       log=lambda msg: output.progress(f"perfpipe: {msg}"))
    try:
        lock.__enter__()
    except TargetBusyError as exc:
        raise CliError(str(exc)) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def load_dag(dag_id: str):
    """Parse only the file of the DAG being run (dags/<dag_id>.py), not the whole dags folder."""
    # Airflow is imported only here, after main() has run airflow_env.configure(): its settings are read at import.
    from airflow.dag_processing.dagbag import DagBag

    ensure_db()
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    own_file = one_dag_bundle(folder, dag_id)
    bag = DagBag(str(own_file or folder))
    if dag_id not in bag.dags and own_file:  # defined elsewhere in the folder after all
        os.environ.pop(BUNDLES_ENV, None)
        bag = DagBag(str(folder))
    if dag_id not in bag.dags:
        raise CliError(f"DAG {dag_id} not found in {folder}: {bag.import_errors or 'not defined'}")
    return bag.dags[dag_id]


BUNDLES_ENV = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"


def one_dag_bundle(folder: Path, dag_id: str) -> Path | None:
    """Make the embedded Airflow's DAG bundle a folder holding only <folder>/<dag_id>.py (a link to it), and
    return the link; None (the bundle stays as configured) when that file is absent or bundles are configured.

    `DAG.test` parses and writes to the database every DAG of its bundle on each call (Airflow 3.3: so that DAGs it
    triggers exist): a parse and a serialization per file, 16.5 s of a 65 s quick smoke for dags/ (measured, before
    the Param schemas moved to draft-07); a local run needs only its own. The bundle keeps Airflow's
    default name, and the file its name relative to the bundle, so the database rows stay those of dags/."""
    own_file = folder / f"{dag_id}.py"
    if os.environ.get(BUNDLES_ENV, _set_here[0]) != _set_here[0]:  # the user's own bundles
        return None
    if not own_file.is_file():
        os.environ.pop(BUNDLES_ENV, None)
        return None
    bundle = Path(os.environ["AIRFLOW_HOME"]) / "cli-bundles" / dag_id
    bundle.mkdir(parents=True, exist_ok=True)
    link = bundle / own_file.name
    if not (link.is_symlink() and link.resolve() == own_file.resolve()):
        link.unlink(missing_ok=True)
        link.symlink_to(own_file.resolve())
    _set_here[0] = os.environ[BUNDLES_ENV] = json.dumps([{
        "name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(bundle)}}])
    return link


# The value one_dag_bundle last set: a later run in the same process (tests, a notebook) replaces it.
_set_here: list[str | None] = [None]


def run_dag(dag, params: dict[str, Any], logical_date: datetime):
    # Airflow is imported only here, after main() has run airflow_env.configure(): its settings are read at import.
    from airflow.sdk.exceptions import ParamValidationError

    try:
        with contextlib.redirect_stdout(sys.stderr):
            return dag.test(logical_date=logical_date, run_after=logical_date, run_conf=params)
    except ParamValidationError as exc:
        raise CliError(f"invalid params: {exc}") from None


def stop_command(args: argparse.Namespace, out: TextIO) -> int:
    """SIGTERM to this machine's k6 processes of the run. Exit 0: something was stopped; 1: nothing was running."""
    started_by = home_of_run_id(args.run_id)
    if started_by and started_by != home_tag(os.environ["AIRFLOW_HOME"]):
        # Run ids name the checkout that started them: another checkout's run is its own to stop.
        raise CliError(f"run_id: {args.run_id} was started by another checkout (home {started_by}, this one is "
                       f"{home_tag(os.environ['AIRFLOW_HOME'])}): stop it from there")
    stopped = stop_local(args.dag_id, args.run_id, wait_s=args.wait,
                         log=lambda msg: output.progress(f"perfpipe: {msg}"))
    output.emit(out, args.json, {"dag_id": args.dag_id, "run_id": args.run_id, "mode": "local", "stopped": stopped},
                output.local_stop_text(args.dag_id, args.run_id, stopped, args.wait))
    return EXIT_PASSED if stopped else EXIT_GATE_FAILED


def status_command(args: argparse.Namespace, out: TextIO) -> int:
    """The tests running now, with their live VUs, request rate and error rate, from InfluxDB."""
    try:
        tests = running_tests()
    except PerfpipeError as exc:
        raise CliError(str(exc)) from None
    output.emit(out, args.json, {"running": tests}, format_status(tests), indent=2)
    return EXIT_PASSED


def chaos_command(args: argparse.Namespace, out: TextIO) -> int:
    """Restore the faults of chaos holders that died without restoring (each chaos run also does this first)."""
    restored = restore_leftovers()
    output.emit(out, args.json, {"restored": restored}, output.restored_text(restored), indent=2)
    return EXIT_ERROR if any(not r.get("ok") for r in restored) else EXIT_PASSED
