"""A downsampled copy of each run, kept up to date while k6 runs, so that a gate reads a few hundred rows instead
of every sample: its cost stays flat however long the run was.

`perf_rollup` holds one point per (testid, time bucket): `reqs` (http_reqs samples), `durations` (http_req_duration
samples), `failed_n`/`failed` (count and sum of http_req_failed), `p95_ms` and `vus` (max). InfluxDB computes them
itself (SELECT ... INTO ... GROUP BY time()), so a bucket's p95 is exactly the query-time figure. The bucket width is
`bucket_seconds` of the planned duration: at most ~600 buckets per run.

`perf_rollup_state` records, per testid, the bucket width and `rolled_to_ms`: every bucket before it is rolled.

While k6 runs, perfpipe.app.companions.RollupCompanion rolls the buckets that are safely behind the newest stored
sample (a lag of several k6 pushes). After the run, `complete_rollup` rolls the rest (the tail: the lag and the
last push) and sums the counts for the reconciliation. If the sums do not match k6's own count, samples may have
arrived after their bucket was rolled: the whole run is rolled again from the raw samples before anything is
declared missing, so the rollup can make a gate slower, never wrong.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perfpipe.app.measurements import HTTP_REQ_DURATION, HTTP_REQ_FAILED, HTTP_REQS, PERF_ROLLUP, PERF_ROLLUP_STATE, VUS
from perfpipe.core.hooks.influxdb_common import queries_in_parallel
from perfpipe.app.results import reconcile, round_or_none

if TYPE_CHECKING:  # an Airflow hook: importing Airflow (~4 s) waits until someone makes a hook
    from perfpipe.core.hooks.influxdb import InfluxDBHook

log = logging.getLogger(__name__)

ROLLUP_MEASUREMENT, STATE_MEASUREMENT = PERF_ROLLUP.name, PERF_ROLLUP_STATE.name  # kept for importers
MAX_BUCKETS = 600
# How far behind the newest stored `vus` sample the live rollup stays: k6 pushes every second with a few writes in
# flight, so samples older than this have all arrived unless InfluxDB is struggling (then see complete_rollup).
LIVE_LAG_S = 15
LIVE_EVERY_S = 10
# The run is found by its `vus` gauge (one sample a second), but requests finish before the first and after the
# last of those: rolling starts and ends this far outside (empty buckets cost nothing and are not written).
RUN_MARGIN_S = 60


@dataclass
class Bucket:
    t: float  # bucket start, epoch seconds
    requests: int = 0
    failed: float = 0.0
    p95_ms: float | None = None
    vus: float | None = None

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0


@dataclass
class RolledRun:
    """A run as the gate sees it: its window, buckets and the stored sample counts."""
    start_ms: int = 0
    end_ms: int = 0
    bucket_s: int = 1
    buckets: list[Bucket] = field(default_factory=list)
    stored_reqs: int = 0
    stored_durations: int = 0
    rerolled: bool = False


def bucket_seconds(duration_s: float) -> int:
    """1-second buckets up to 10 minutes, then wider so that a run has at most MAX_BUCKETS."""
    return max(1, math.ceil(duration_s / MAX_BUCKETS))


def align_down(ms: float, bucket_s: int) -> int:
    """The start of the bucket holding `ms`: InfluxDB aligns GROUP BY time() buckets to multiples of the width."""
    width = bucket_s * 1000
    return int(ms // width * width)


def align_up(ms: float, bucket_s: int) -> int:
    width = bucket_s * 1000
    return int(-(-ms // width) * width)


def roll_start_ms(first_sample_ms: float, bucket_s: int) -> int:
    """Where rolling a run starts: the bucket RUN_MARGIN_S before its first `vus` sample."""
    return align_down(first_sample_ms - RUN_MARGIN_S * 1000, bucket_s)


def roll_end_ms(last_sample_ms: float, bucket_s: int) -> int:
    return align_up(last_sample_ms + RUN_MARGIN_S * 1000, bucket_s)


def live_cutoff_ms(newest_sample_ms: float, now_ms: float, bucket_s: int, lag_s: float) -> int:
    """Where the live rollup may roll to: whole buckets at least `lag_s` behind both the newest stored sample and
    the clock."""
    return align_down(min(newest_sample_ms, now_ms) - lag_s * 1000, bucket_s)


def time_range(start_ms: float, end_ms: float) -> str:
    return f'time >= {int(start_ms)}ms AND time < {int(end_ms)}ms'


def roll(hook: InfluxDBHook, testid: str, start_ms: int, end_ms: int, bucket_s: int) -> None:
    """(Re)compute the buckets of [start_ms, end_ms) from the raw samples; rolling a bucket again overwrites it."""
    if end_ms <= start_ms:
        return
    where = f'"testid" = $testid AND {time_range(start_ms, end_ms)}'
    into = f'INTO "{PERF_ROLLUP}"'
    group = f'GROUP BY time({int(bucket_s)}s), "testid" fill(none)'
    statements = [
        f'SELECT count("value") AS "reqs" {into} FROM "{HTTP_REQS}" WHERE {where} {group}',
        f'SELECT count("value") AS "durations", percentile("value", 95) AS "p95_ms" {into} '
        f'FROM "{HTTP_REQ_DURATION}" WHERE {where} {group}',
        f'SELECT count("value") AS "failed_n", sum("value") AS "failed" {into} '
        f'FROM "{HTTP_REQ_FAILED}" WHERE {where} {group}',
        f'SELECT max("value") AS "vus" {into} FROM "{VUS}" WHERE {where} {group}',
    ]
    queries_in_parallel(hook, statements, {"testid": testid}, method="POST")


def write_state(hook: InfluxDBHook, testid: str, start_ms: int, bucket_s: int, rolled_to_ms: int) -> None:
    """One point per testid, at the run's first sample (inside any retention policy the run's samples are in)."""
    hook.write([{"measurement": PERF_ROLLUP_STATE.name, "tags": {"testid": testid}, "time": int(start_ms),
                 "fields": {"bucket_s": int(bucket_s), "rolled_to_ms": float(rolled_to_ms)}}])


def read_state(hook: InfluxDBHook, testid: str) -> tuple[int, int] | None:
    """(bucket_s, rolled_to_ms) of a testid's rollup, or None when nothing was rolled yet."""
    points = hook.query(f'SELECT "bucket_s", "rolled_to_ms" FROM "{PERF_ROLLUP_STATE}" WHERE "testid" = $testid',
                        {"testid": testid})
    if not points or points[-1].get("bucket_s") is None:
        return None
    return int(points[-1]["bucket_s"]), int(points[-1]["rolled_to_ms"])


def newest_sample_ms(hook: InfluxDBHook, testid: str, since_ms: int = 0) -> int | None:
    """Time of the newest stored `vus` sample (k6 writes one per second) at or after `since_ms`."""
    points = hook.query(f'SELECT last("value") FROM "{VUS}" WHERE "testid" = $testid AND time >= {int(since_ms)}ms',
                        {"testid": testid})
    return int(points[0]["time"]) if points else None


def run_window_ms(hook: InfluxDBHook, testid: str) -> tuple[int, int] | None:
    """First and last sample time of a testid (from the 1-per-second `vus` gauge); the end is exclusive."""
    first, last = queries_in_parallel(hook, [f'SELECT first("value") FROM "{VUS}" WHERE "testid" = $testid',
                                             f'SELECT last("value") FROM "{VUS}" WHERE "testid" = $testid'],
                                      {"testid": testid})
    if not first or not last:
        return None
    return int(first[0]["time"]), int(last[0]["time"]) + 1000


def read_rollup(hook: InfluxDBHook, testid: str) -> tuple[list[Bucket], list[dict]]:
    """The buckets, oldest first, and the raw rollup points (for the sample counts)."""
    points = hook.query(f'SELECT "reqs", "durations", "failed_n", "failed", "p95_ms", "vus" '
                        f'FROM "{PERF_ROLLUP}" WHERE "testid" = $testid', {"testid": testid})
    return [Bucket(t=p["time"] / 1000, requests=int(p.get("failed_n") or 0), failed=float(p.get("failed") or 0),
                   p95_ms=p.get("p95_ms"), vus=p.get("vus")) for p in points], points


def _read(hook: InfluxDBHook, testid: str, run: RolledRun) -> RolledRun:
    buckets, points = read_rollup(hook, testid)
    run.buckets = buckets
    run.stored_reqs = sum(int(p.get("reqs") or 0) for p in points)
    run.stored_durations = sum(int(p.get("durations") or 0) for p in points)
    return run


def complete_rollup(hook: InfluxDBHook, testid: str, expected_reqs: int | None,
                    planned_duration_s: float | None = None) -> RolledRun:
    """After the run: roll what the live rollup has not, read the buckets and the stored counts.

    Normally this rolls only the tail (constant work). Without a live rollup (it failed, or the run was not made by
    a perfpipe task) it rolls the whole run. When the counts do not reconcile with k6's, the whole run is rolled
    again from the raw samples first: a late sample is then counted, a lost one is still missing."""
    window = run_window_ms(hook, testid)
    if window is None:
        return RolledRun()
    state = read_state(hook, testid)
    if state is not None:
        bucket_s, rolled_to = state
    else:
        bucket_s = bucket_seconds(planned_duration_s or (window[1] - window[0]) / 1000)
        rolled_to = roll_start_ms(window[0], bucket_s)
    start, end = roll_start_ms(window[0], bucket_s), roll_end_ms(window[1], bucket_s)
    roll(hook, testid, max(rolled_to, start), end, bucket_s)
    write_state(hook, testid, window[0], bucket_s, end)
    run = _read(hook, testid, RolledRun(start_ms=window[0], end_ms=window[1], bucket_s=bucket_s))
    stored = min(run.stored_reqs, run.stored_durations)
    if state is not None and not reconcile(expected_reqs, stored)["metrics_complete"]:
        log.warning("rollup of %s holds %s requests, k6 counted %s: rolling the whole run again from the raw samples",
                    testid, stored, expected_reqs)
        roll(hook, testid, start, end, bucket_s)
        run = _read(hook, testid, run)
        run.rerolled = True
    return run


def summed(buckets: list[Bucket], bucket_s: int) -> dict[str, Any]:
    """Figures of a window from its buckets: exact request and error counts; p95 as the request-weighted mean of
    the buckets' p95s (InfluxDB cannot merge percentiles; used where a trend matters, not a single percentile)."""
    requests = sum(b.requests for b in buckets)
    failed = sum(b.failed for b in buckets)
    weighted = [(b.p95_ms, b.requests) for b in buckets if b.p95_ms is not None and b.requests]
    weight = sum(w for _, w in weighted)
    seconds = len(buckets) * bucket_s
    return {
        "requests": requests,
        "error_rate": round_or_none(failed / requests, 6) if requests else None,
        "p95_ms": round_or_none(sum(p * w for p, w in weighted) / weight) if weight else None,
        "rps": round_or_none(requests / seconds) if seconds else None,
        "seconds": seconds,
    }
