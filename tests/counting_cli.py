"""`perfpipe` as the console script runs it, counting the run's expensive checks (for test_validate_once).

    python tests/counting_cli.py COUNTS.json run pipeline --target demo ...

dag.test() runs every task in the CLI's run process (a forked child, see below), so wrapping the functions here counts what the whole run did:
target resolutions (perfpipe.app.targets.resolve_target), allowlist/DNS checks (check_target_safe), `k6 inspect`
processes (subprocess.run with k6's `inspect`) and InfluxDB pings (InfluxDBClient.ping). The counts are written
to COUNTS.json at exit; stdout, stderr and the exit code are the CLI's own.
"""

from __future__ import annotations

import atexit
import functools
import json
import subprocess
import sys
from collections import Counter

COUNTS: Counter = Counter()
SCRIPTS: list[str] = []


def counted(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        COUNTS[name] += 1
        return fn(*args, **kwargs)
    return wrapper


def install() -> None:
    import influxdb

    from perfpipe.app import stage, targets

    targets.resolve_target = counted("resolve_target", targets.resolve_target)
    targets.check_target_safe = counted("check_target_safe", targets.check_target_safe)
    for module in (stage,):  # imported by name at module level
        module.resolve_target = targets.resolve_target
        module.check_target_safe = targets.check_target_safe
    influxdb.InfluxDBClient.ping = counted("influxdb_ping", influxdb.InfluxDBClient.ping)
    real_run = subprocess.run

    @functools.wraps(real_run)
    def run(argv, *args, **kwargs):
        if isinstance(argv, (list, tuple)) and len(argv) > 1 and argv[1] == "inspect":
            COUNTS["k6_inspect"] += 1
            SCRIPTS.append(str(argv[-1]))
        return real_run(argv, *args, **kwargs)

    subprocess.run = run


def main() -> int:
    counts_file, argv = sys.argv[1], sys.argv[2:]
    install()

    def write() -> None:
        with open(counts_file, "w", encoding="utf-8") as out:
            json.dump({**COUNTS, "inspected_scripts": SCRIPTS}, out)

    # A local run goes on in a forked child (perfpipe.entry.cli.interrupts): the run's counts are the child's,
    # written when its work ends (it leaves with os._exit); this process writes only when it ran no child.
    from perfpipe.entry.cli import interrupts

    real_supervised = interrupts.run_supervised
    supervised = []

    def counted_supervised(work):
        supervised.append(True)

        def work_then_write() -> int:
            try:
                return work()
            finally:
                write()
        return real_supervised(work_then_write)

    interrupts.run_supervised = counted_supervised
    atexit.register(lambda: None if supervised else write())
    from perfpipe.entry.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
