"""`perfpipe` command line.

    perfpipe run <test_type|pipeline> --target NAME|FILE.yaml [--profile quick|standard] [--set key=value ...]
                 [--logical-date ISO] [--json] [--airflow-url URL [--airflow-user U --airflow-password P |
                 --airflow-token T]]
    perfpipe stop RUN_ID [--dag-id perf_pipeline] [--airflow-url URL ...]
    perfpipe status [--json]
    perfpipe chaos restore [--json]

`run` runs the perf_<test_type> DAG in-process (Airflow's dag.test on the embedded local Airflow: `local`), or,
with --airflow-url, triggers it through that Airflow's REST API and follows it to the end (`remote`); either way
it prints the result (`output`: exit 0 every gate passed, 1 a gate failed, 2 bad input or infrastructure error).

`stop` stops a run: through the REST API (the run is marked failed; Airflow ends its task, k6 stops and the stage
is recorded as aborted), or without --airflow-url by sending SIGTERM to this machine's k6 processes of that run.
Exit 0: something was stopped; 1: nothing of that run was running; 2: error.

`status` lists the tests running now with their live VUs, request rate and error rate, from InfluxDB.
"""

from __future__ import annotations

import logging
import sys

from perfpipe.entry import airflow_env

# First: Airflow reads AIRFLOW_HOME and its settings when first imported, and the modules below import it (the
# InfluxDB hook is an Airflow hook). Only defaults are set: what the environment already says wins.
airflow_env.configure()

from perfpipe.entry.cli import interrupts, local, output, remote  # noqa: E402  (after configure(), see above)
from perfpipe.entry.cli.args import build_parser, parse_logical_date  # noqa: E402
from perfpipe.entry.cli.output import CliError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = output.reserve_stdout()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    return guarded(lambda: command(args, out), out, args.json)


def command(args, out) -> int:
    if args.command == "stop":
        return (remote if args.airflow_url else local).stop_command(args, out)
    if args.command == "status":
        return local.status_command(args, out)
    if args.command == "chaos":
        return local.chaos_command(args, out)
    params, stages = local.preflight(args)
    logical_date = parse_logical_date(args.logical_date)
    if args.airflow_url:
        return output.print_run(remote.run_remote(args, params, stages, logical_date), out, args.json)
    # In a supervised child: a signal to the CLI stops k6, records the stage aborted and exits 128 + signal.
    return interrupts.run_supervised(lambda: guarded(
        lambda: output.print_run(local.run_local(args, params, stages, logical_date), out, args.json),
        out, args.json))


def guarded(body, out, as_json: bool) -> int:
    try:
        return body()
    except CliError as exc:
        return output.print_error(str(exc), out, as_json)
    except KeyboardInterrupt:
        print("perfpipe: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never exit 1 ("a gate failed") for a crash: that is an error of ours or the stack
        logging.getLogger(__name__).exception("perfpipe: unexpected error")
        return output.print_crash(exc, out, as_json)
