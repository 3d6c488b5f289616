"""`perfpipe`'s arguments: the parser, and a `run`'s arguments as the DAG's Params (`--set key=value` pairs
become the `overrides` Param, `--target` a configured name or an inline target file) and its logical date."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

from perfpipe import TEST_TYPES
from perfpipe.app.config import PROFILES, parse_set_arguments
from perfpipe.app.pipeline import INCLUDE_SOAK
from perfpipe.app.run_identity import check_logical_date
from perfpipe.app.targets import configured_targets, resolve_target
from perfpipe.core.errors import InputError
from perfpipe.entry.airflow_api import ENV_PASSWORD, ENV_TOKEN, ENV_USER
from perfpipe.entry.cli.output import CliError

# The DAGs with a chaos_scenario Param.
CHAOS_DAGS = ("chaos", "pipeline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfpipe", description="k6 performance tests driven by Airflow")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one test type through its Airflow DAG and print the result")
    run.add_argument("test_type", choices=TEST_TYPES + ("pipeline",),
                     help="one test type, or `pipeline` for the whole decision tree")
    run.add_argument("--target", required=True, help="a target name from config/targets.yaml or a YAML file")
    run.add_argument("--profile", default="standard", choices=PROFILES)
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a value for this run, e.g. vus=10, duration=30s, thresholds.p95_ms=300")
    run.add_argument("--logical-date", help="ISO date of the run (default: now), from the DAGs' start_date "
                                            "on; rerunning a date replaces the target's result once the rerun "
                                            "has recorded its own")
    run.add_argument("--scenario", dest="chaos_scenario", metavar="NAME",
                     help="chaos: the target's fault scenario (default: the target's default_scenario)")
    run.add_argument("--include-soak", action="store_true", help="pipeline: run the soak stage before ready")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    run.add_argument("--no-wait", action="store_true",
                     help="local run: refuse (exit 2) instead of waiting when another run loads the same target")
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
    parser.add_argument("--airflow-url", metavar="URL", help=url_help + ", e.g. http://127.0.0.1:8080")
    parser.add_argument("--airflow-user", metavar="USER", help=f"Airflow user (or {ENV_USER})")
    parser.add_argument("--airflow-password", metavar="PASSWORD",
                        help=f"its password (better: {ENV_PASSWORD}; arguments show in ps)")
    parser.add_argument("--airflow-token", metavar="JWT", help=f"an Airflow API token instead (or {ENV_TOKEN})")


def params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """A `run`'s arguments as the DAG's Params (the same for dag.test and the REST API's conf)."""
    params: dict[str, Any] = {"profile": args.profile, "overrides": parse_set_arguments(args.overrides)}
    if args.test_type in CHAOS_DAGS:  # always set, or dag.test() would keep a previous run's value
        params["chaos_scenario"] = args.chaos_scenario
    elif args.chaos_scenario:
        raise CliError(f"--scenario: only chaos and pipeline runs inject faults, not {args.test_type}")
    if args.test_type == "pipeline":
        params[INCLUDE_SOAK] = args.include_soak
    if args.target in configured_targets():
        params["target"] = args.target
    else:
        params["inline_target"] = resolve_target(args.target)  # a YAML file: validated and passed inline
    return params


def parse_logical_date(value: str | None) -> datetime:
    """--logical-date: an ISO date, UTC unless it says otherwise; default now (to the second)."""
    if not value:
        return datetime.now(timezone.utc).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"--logical-date: not an ISO date: {value!r}") from None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    try:
        check_logical_date(parsed)  # a date no test can run at: refused before any run exists
    except InputError as exc:
        raise CliError(str(exc)) from None
    return parsed
