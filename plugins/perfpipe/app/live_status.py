"""What runs right now: our k6 processes on this machine, and live load figures of running tests from InfluxDB.

Local processes are found by the exact `--tag testid=<dag_id>:<run_id>:<test_type>:try<N>[.r<M>]` argument perfpipe gives
every k6 run (perfpipe.core.k6.command.testid_for / results.unused_testid): a process is ours only if it is a k6
binary, owned by this user, and carries that tag for exactly that DAG and run. Nothing else is ever signalled.

Live figures come from k6's own samples (tagged testid, test_type, target) over the last seconds; every query is
bounded in time.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfpipe import TEST_TYPES
from perfpipe.app.measurements import HTTP_REQ_FAILED, HTTP_REQS, K6_TAGS, VUS
from perfpipe.core.errors import InfrastructureError

TESTID_TAG = "testid="
# What may follow `<dag_id>:<run_id>:` in a testid: the try and, for a cleared re-run, `.r<N>`.
_TRY_SUFFIX = re.compile(r"try\d+(\.r\d+)?")
# Live window: tests count as running with samples this recent; figures are taken over the shorter window.
ACTIVE_WINDOW_S = 15
RATE_WINDOW_S = 10
QUERY_BOUND_S = 30


# --- local k6 processes --------------------------------------------------------------------------------------

def run_tag_prefix(dag_id: str, run_id: str) -> str:
    return f"{TESTID_TAG}{dag_id}:{run_id}:"


def split_testid(testid: str) -> tuple[str, str, str, str] | None:
    """`dag:run:load:try1` -> (dag, run, load, try1). Run ids hold colons (ISO dates): the DAG id is up to the
    first colon (DAG ids cannot contain one), the test type and the try are the last two parts."""

    dag_id, sep, rest = testid.partition(":")
    rest, sep2, attempt = rest.rpartition(":")
    run_id, sep3, test_type = rest.rpartition(":")
    if not (sep and sep2 and sep3 and dag_id and run_id and test_type in TEST_TYPES
            and _TRY_SUFFIX.fullmatch(attempt)):
        return None
    return dag_id, run_id, test_type, attempt


def cmdline_testid(argv: list[str]) -> str | None:
    """The testid a k6 `run` command line carries (`--tag testid=...` or `--tag=testid=...`), else None."""
    if not argv or Path(argv[0]).name != "k6" or "run" not in argv[1:]:
        return None
    for i, arg in enumerate(argv):
        value = None
        if arg == "--tag" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--tag="):
            value = arg[len("--tag="):]
        if value is not None and value.startswith(TESTID_TAG):
            return value[len(TESTID_TAG):]
    return None


def cmdline_matches_run(argv: list[str], dag_id: str, run_id: str) -> bool:
    """True only for a k6 run of exactly this DAG run: the tag's DAG and run id are equal, not prefixes."""
    testid = cmdline_testid(argv)
    if testid is None:
        return False
    parts = split_testid(testid)
    return parts is not None and parts[0] == dag_id and parts[1] == run_id


def parse_cmdline(raw: bytes) -> list[str]:
    """/proc/<pid>/cmdline: NUL-separated arguments."""
    return [part.decode("utf-8", errors="replace") for part in raw.split(b"\0") if part]


@dataclass
class K6Process:
    pid: int
    testid: str
    argv: list[str] = field(repr=False)


def k6_processes(proc_root: str | Path = "/proc", uid: int | None = None) -> list[K6Process]:
    """Every k6 run of perfpipe (a testid tag) owned by `uid` (default: this user)."""
    uid = os.getuid() if uid is None else uid
    found = []
    root = Path(proc_root)
    for entry in root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            argv = parse_cmdline((entry / "cmdline").read_bytes())
        except OSError:  # gone meanwhile, or not ours to read
            continue
        testid = cmdline_testid(argv)
        if testid is not None and split_testid(testid) is not None:
            found.append(K6Process(pid=int(entry.name), testid=testid, argv=argv))
    return sorted(found, key=lambda p: p.pid)


def k6_processes_of_run(dag_id: str, run_id: str, proc_root: str | Path = "/proc") -> list[K6Process]:
    return [p for p in k6_processes(proc_root) if cmdline_matches_run(p.argv, dag_id, run_id)]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has exited; only its parent has not collected it yet


def stop_local(dag_id: str, run_id: str, wait_s: float = 40, log=print) -> list[dict[str, Any]]:
    """SIGTERM our k6 processes of that run (k6 then writes its summary and exits 105: the stage is recorded as
    aborted). Waits up to `wait_s` for them to exit. Returns what was signalled."""
    stopped = []
    for proc in k6_processes_of_run(dag_id, run_id):
        # Re-check right before signalling: the pid must still be that very k6 run.
        try:
            if not cmdline_matches_run(parse_cmdline(Path(f"/proc/{proc.pid}/cmdline").read_bytes()), dag_id, run_id):
                continue
            os.kill(proc.pid, signal.SIGTERM)
        except (OSError, ProcessLookupError):
            continue
        log(f"sent SIGTERM to k6 pid {proc.pid} (testid {proc.testid})")
        stopped.append({"pid": proc.pid, "testid": proc.testid, "exited": False})
    deadline = time.monotonic() + wait_s
    while stopped and time.monotonic() < deadline and any(_alive(s["pid"]) for s in stopped):
        time.sleep(0.2)
    for entry in stopped:
        entry["exited"] = not _alive(entry["pid"])
    return stopped


# --- live figures from InfluxDB ------------------------------------------------------------------------------

def live_queries(active_s: int = ACTIVE_WINDOW_S, window_s: int = RATE_WINDOW_S) -> list[str]:
    """One InfluxQL request, four statements, each bounded in time and grouped by the run's tags."""
    active_s, window_s = min(active_s, QUERY_BOUND_S), min(window_s, QUERY_BOUND_S)  # never an unbounded scan
    group = 'GROUP BY ' + ', '.join(f'"{tag}"' for tag in K6_TAGS)
    return [
        f'SELECT count("value") AS n FROM "{HTTP_REQS}" WHERE time >= now() - {active_s}s {group}',
        f'SELECT max("value") AS vus FROM "{VUS}" WHERE time >= now() - {window_s}s {group}',
        f'SELECT count("value") AS n FROM "{HTTP_REQS}" WHERE time >= now() - {window_s}s {group}',
        f'SELECT mean("value") AS rate FROM "{HTTP_REQ_FAILED}" WHERE time >= now() - {window_s}s {group}',
    ]


def _series(result) -> dict[str, tuple[dict[str, str], dict[str, Any]]]:
    """testid -> (tags, first point) of a GROUP BY result set."""
    out = {}
    for (_, tags), points in result.items():
        tags = tags or {}
        point = next(iter(points), None)
        if tags.get("testid") and point is not None:
            out[tags["testid"]] = (tags, point)
    return out


def running_tests(hook=None, window_s: int = RATE_WINDOW_S) -> list[dict[str, Any]]:
    """Tests with http_reqs samples in the last ACTIVE_WINDOW_S seconds and their live figures."""
    from perfpipe.app.influx import influxdb_hook  # here: the live view loads InfluxDB only when asked

    hook = hook or influxdb_hook(timeout_s=10)
    statements = live_queries(window_s=window_s)
    try:
        results = hook.get_conn().query("; ".join(statements), epoch="ms")
    except Exception as exc:
        raise InfrastructureError(f"InfluxDB query failed ({hook.settings.url}): {exc}") from None
    if not isinstance(results, list):
        results = [results]
    active, vus, reqs, failed = (_series(r) for r in results)
    tests = []
    for testid, (tags, _) in sorted(active.items()):
        parts = split_testid(testid)
        vus_point, req_point, failed_point = (s.get(testid, ({}, {}))[1] for s in (vus, reqs, failed))
        tests.append({
            "testid": testid,
            "dag_id": parts[0] if parts else None,
            "run_id": parts[1] if parts else None,
            "test_type": tags.get("test_type"),
            "target": tags.get("target"),
            "vus": int(vus_point["vus"]) if vus_point.get("vus") is not None else None,
            "rps": round(int(req_point.get("n") or 0) / window_s, 2),
            "error_rate": round(float(failed_point["rate"]), 4) if failed_point.get("rate") is not None else None,
        })
    return tests


def format_status(tests: list[dict[str, Any]]) -> str:
    if not tests:
        return "no test running (no k6 samples in InfluxDB in the last %ds)\n" % ACTIVE_WINDOW_S
    rows = [("TEST", "TARGET", "VUS", "REQ/S", "ERRORS", "DAG", "RUN")]
    for t in tests:
        errors = "-" if t["error_rate"] is None else f"{t['error_rate'] * 100:.1f}%"
        rows.append((t["test_type"] or "?", t["target"] or "?", "-" if t["vus"] is None else str(t["vus"]),
                     f"{t['rps']:.1f}", errors, t["dag_id"] or "?", t["run_id"] or t["testid"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"
