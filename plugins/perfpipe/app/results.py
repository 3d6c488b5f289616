"""Stage results: metrics for a testid from InfluxDB, reconciled with k6's own counts, stored in perf_results.

One perf_results point per (dag_id, test_type, target), timestamped with the DAG run's logical date: a rerun of
the same date replaces the earlier run's point once it has written its own (store_result).
"""

from __future__ import annotations

import json
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfpipe.app.measurements import (ANALYSIS_FIELDS, CHECKS, HTTP_REQ_DURATION, HTTP_REQ_FAILED, HTTP_REQS,
                                       METRIC_FIELDS, NO_EXIT_CODE, NO_SCORE, NUMERIC_RESULT_FIELDS, PERF_PIPELINE,
                                       PERF_RESULTS, VUS)
from perfpipe.core.hooks.influxdb_common import queries_in_parallel
from perfpipe.core.model.plan import PlannedCheck, StageResult

if TYPE_CHECKING:  # an Airflow hook: importing Airflow (~4 s) waits until someone makes a hook
    from perfpipe.core.hooks.influxdb import InfluxDBHook

RESULTS_MEASUREMENT = PERF_RESULTS.name  # kept for importers; the schema is perfpipe.app.measurements


def read_k6_summary(path: str | Path) -> dict[str, Any]:
    """k6 --summary-export JSON; {} when k6 did not write one (crash before the end)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def crossed_thresholds(summary: dict) -> list[str]:
    """Metrics whose k6 thresholds failed, from --summary-export (`"thresholds": {"rate<0.01": true}` = crossed)."""
    return sorted(name for name, metric in (summary.get("metrics") or {}).items()
                  if any((metric.get("thresholds") or {}).values()))


def summary_count(summary: dict, metric: str) -> int | None:
    value = ((summary.get("metrics") or {}).get(metric) or {}).get("count")
    return int(value) if value is not None else None


def _first(hook: InfluxDBHook, query: str, testid: str) -> dict:
    points = hook.query(query, {"testid": testid})
    return points[0] if points else {}


def summary_aggregates(summary: dict) -> dict[str, float | None]:
    """k6's own end-of-test aggregates over every sample it measured (--summary-export): the same figures as
    percentile()/mean()/max() over all of the testid's samples in InfluxDB, computed without reading them back.
    (k6 interpolates between ranks, InfluxDB takes the nearest rank: they differ by less than one sample step.)
    A figure the summary lacks (a custom script's summaryTrendStats, a crash) is None."""
    metrics = summary.get("metrics") or {}
    duration = metrics.get("http_req_duration") or {}

    def rate(name: str) -> float | None:
        value = (metrics.get(name) or {}).get("value")
        return float(value) if value is not None else None

    vus_max = (metrics.get("vus") or {}).get("max")
    return {"p95": duration.get("p(95)"), "p99": duration.get("p(99)"), "avg": duration.get("avg"),
            "failed_rate": rate("http_req_failed"), "checks_rate": rate("checks"),
            "vus_peak": float(vus_max) if vus_max is not None else None}


def influx_aggregates(hook: InfluxDBHook, testid: str, wanted: set[str]) -> dict[str, float | None]:
    """The same figures from the raw samples in InfluxDB (cost grows with the run: only for what k6 lacks)."""
    found: dict[str, float | None] = {}
    if wanted & {"p95", "p99", "avg"}:
        durations = _first(hook, 'SELECT mean("value") AS avg, percentile("value", 95) AS p95, '
                                 f'percentile("value", 99) AS p99 FROM "{HTTP_REQ_DURATION}" WHERE "testid" = $testid',
                           testid)
        found.update(p95=durations.get("p95"), p99=durations.get("p99"), avg=durations.get("avg"))
    if "failed_rate" in wanted:
        found["failed_rate"] = _first(hook, f'SELECT mean("value") AS rate FROM "{HTTP_REQ_FAILED}" '
                                            'WHERE "testid" = $testid', testid).get("rate")
    if "checks_rate" in wanted:
        found["checks_rate"] = _first(hook, f'SELECT mean("value") AS rate FROM "{CHECKS}" WHERE "testid" = $testid',
                                      testid).get("rate")
    if "vus_peak" in wanted:
        found["vus_peak"] = _first(hook, f'SELECT max("value") AS peak FROM "{VUS}" WHERE "testid" = $testid',
                                   testid).get("peak")
    return found


def collect_metrics(hook: InfluxDBHook, testid: str, summary: dict, duration_s: float | None,
                    stored_reqs: int, stored_durations: int) -> dict[str, Any]:
    """Gate metrics for one testid, plus the reconciliation of k6's request count with InfluxDB's samples.

    Latency, error and check figures are k6's exact aggregates over all samples (summary_aggregates) — reading
    them back from InfluxDB would cost time in proportion to the run's length — and come from InfluxDB's raw
    samples only where the summary lacks them. The reconciliation compares k6's count with the `http_reqs` and
    `http_req_duration` samples InfluxDB stored (counted by perfpipe.app.rollup): a gate on data InfluxDB (and so
    Grafana and the analyses) does not fully hold is never a pass."""
    aggregates = summary_aggregates(summary)
    missing = {name for name, value in aggregates.items() if value is None}
    if missing:
        aggregates.update(influx_aggregates(hook, testid, missing))
    expected = summary_count(summary, "http_reqs")
    stored = min(stored_reqs, stored_durations)
    if not duration_s:
        duration_s = None
    requests = expected if expected is not None else stored_reqs
    return {
        "p95_ms": round_or_none(aggregates["p95"]),
        "p99_ms": round_or_none(aggregates["p99"]),
        "avg_ms": round_or_none(aggregates["avg"]),
        "error_rate": round_or_none(aggregates["failed_rate"], 6),
        "checks_rate": round_or_none(aggregates["checks_rate"], 6),
        "requests": requests,
        "rps": round_or_none(requests / duration_s, 3) if duration_s else None,
        "vus_max": int(aggregates["vus_peak"]) if aggregates["vus_peak"] is not None else None,
        "duration_s": round_or_none(duration_s, 3),
        **reconcile(expected, stored),
    }


def collision_allowance(expected: int) -> int:
    """Samples InfluxDB 1.x may silently merge without any loss of transport.

    k6 stamps a request's samples with one nanosecond time; two VUs finishing the same request in the same
    nanosecond produce the same series key and timestamp, and InfluxDB keeps only one point (measured on this
    stack: 4 of 376,959 requests, never more than 2 in one run). Transport loss drops whole push batches (at least
    a second of samples), always more than this allowance, so it is still caught.
    """
    return max(3, expected // 10_000)


def reconcile(expected: int | None, stored: int) -> dict[str, Any]:
    """k6's own request count vs the samples InfluxDB holds for the testid.

    Complete when InfluxDB holds every sample up to the timestamp-collision allowance. More samples than k6
    counted means another run's samples share the testid; fewer beyond the allowance means samples were lost. An
    unknown k6 count is incomplete too. Either way the gate's numbers cannot be trusted.
    """
    complete = expected is not None and stored <= expected and expected - stored <= collision_allowance(expected)
    return {"samples_expected": expected, "samples_stored": stored, "metrics_complete": complete}


def stored_request_count(hook: InfluxDBHook, testid: str) -> int:
    """k6 `http_reqs` samples InfluxDB holds for a testid."""
    return int(_first(hook, f'SELECT count("value") AS n FROM "{HTTP_REQS}" WHERE "testid" = $testid',
                      testid).get("n") or 0)


def unused_testid(hook: InfluxDBHook, testid: str) -> str:
    """`testid`, or `testid.rN` when samples already carry it (a cleared task re-run under the same try)."""
    candidate, rerun = testid, 1
    while stored_request_count(hook, candidate):
        rerun += 1
        candidate = f"{testid}.r{rerun}"
    return candidate


def round_or_none(value: Any, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def result_point(stage: StageResult, logical_date: datetime) -> dict[str, Any]:
    """The perf_results point of one stage result (perfpipe.app.stage.evaluate_stage)."""
    fields: dict[str, Any] = {
        "verdict": stage.verdict,
        "testid": stage.testid,
        "metrics_complete": bool(stage.metrics.get("metrics_complete")),
        "report": stage.report,
        "checks_json": json.dumps(stage.checks, sort_keys=True),
        "profile": stage.profile,
        "score": float(stage.score) if stage.score is not None else NO_SCORE,
        "k6_exit_code": int(stage.k6_exit_code if stage.k6_exit_code is not None else NO_EXIT_CODE),
    }
    for key in ("started_at", "ended_at"):  # the load window: for charts, links and overlap checks
        if getattr(stage, key):
            fields[key.replace("_at", "_ms")] = float(int(datetime.fromisoformat(getattr(stage, key)).timestamp()
                                                          * 1000))
    if stage.analysis:
        fields["analysis_json"] = json.dumps(stage.analysis, sort_keys=True, default=str)
    for name in NUMERIC_RESULT_FIELDS:
        value = stage.metrics.get(name)
        if value is not None:
            # One type per field forever: InfluxDB rejects a float after an int in the same shard.
            fields[name] = float(value)
    return {
        "measurement": PERF_RESULTS.name,
        "tags": {"test_type": stage.test_type, "target": stage.target, "dag_id": stage.dag_id,
                 "run_id": stage.run_id},
        "time": int(logical_date.timestamp() * 1000),
        "fields": fields,
    }


def store_result(hook: InfluxDBHook, stage: StageResult, logical_date: datetime) -> None:
    """Write the stage's perf_results point, then drop the points other runs recorded for the same key.

    One verdict per (dag, target, test type, logical date). Same run id and time as an earlier try -> InfluxDB
    overwrites the point. A rerun under another run id (every CLI attempt has its own, see
    perfpipe.app.run_identity) adds a point; the earlier ones go only once the new one is safely written, so an
    attempt that dies before recording leaves the earlier verdict in place.
    """
    point = result_point(stage, logical_date)
    hook.write([point], time_precision="ms")
    drop_other_runs(hook, PERF_RESULTS.name, point, ("dag_id", "test_type", "target"))


def drop_other_runs(hook: InfluxDBHook, measurement: str, point: dict[str, Any], key: tuple[str, ...]) -> None:
    """Delete the points of `measurement` at the point's time whose `key` tags equal the point's but whose run_id
    differs: what earlier runs recorded for the key the just-written point now answers."""
    tags, time_ms = point["tags"], int(point["time"])
    where = " AND ".join(f'"{name}" = ${name}' for name in key)
    same_key = hook.query(f'SELECT * FROM "{measurement}" WHERE {where} AND time = {time_ms}ms',
                          {name: tags[name] for name in key})
    for stale_run_id in sorted({p["run_id"] for p in same_key} - {tags["run_id"]}):
        match = " AND ".join(f'"{name}" = {_quote(tags[name])}' for name in key)
        hook.execute(f'DELETE FROM "{measurement}" WHERE {match} AND "run_id" = {_quote(stale_run_id)} '
                     f'AND time = {time_ms}ms')


def _quote(value: str) -> str:
    """An InfluxQL string literal (DELETE takes no bind parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def baseline_values(hook: InfluxDBHook, test_type: str, target: str, profile: str, gates: dict[str, PlannedCheck],
                    before: datetime) -> dict[str, float | None]:
    """For each relative check: the median of its metric over the last N passing, complete runs of the same test
    type, target and profile (a quick run is no baseline for a standard one) with a logical date before `before`
    (so reruns and backfills compare with the past only)."""

    baselines: dict[str, float | None] = {}
    for name, check in gates.items():
        if check.relative is None:
            continue
        metric = check.metric or name
        points = hook.query(
            f'SELECT "{metric}" AS v FROM "{PERF_RESULTS}" WHERE "test_type" = $test_type AND '
            f'"target" = $target AND "profile" = $profile AND ("verdict" = \'pass\' OR "verdict" = \'warn\') AND '
            f'"metrics_complete" = true AND time < {int(before.timestamp() * 1000)}ms '
            f'ORDER BY time DESC LIMIT {int(check.baseline_runs or 5)}',
            {"test_type": test_type, "target": target, "profile": profile})
        values = [float(p["v"]) for p in points if p.get("v") is not None]
        baselines[name] = statistics.median(values) if values else None
    return baselines


def read_results(hook: InfluxDBHook, dag_id: str, run_id: str) -> list[StageResult]:
    """The stage results one DAG run recorded, oldest first."""
    points = hook.query(f'SELECT * FROM "{PERF_RESULTS}" WHERE "dag_id" = $dag_id AND "run_id" = $run_id',
                        {"dag_id": dag_id, "run_id": run_id})
    return [stage_from_point(point) for point in points]


def stage_from_point(point: dict[str, Any]) -> StageResult:
    """A perf_results point (as InfluxDB returns it: tags and fields side by side) read back as the StageResult
    result_point wrote; the load window comes back as ISO times, the "no value" markers as None."""
    metrics = {name: point[name] for name in NUMERIC_RESULT_FIELDS if point.get(name) is not None}
    metrics["metrics_complete"] = bool(point.get("metrics_complete"))
    window = {key: datetime.fromtimestamp(point[f"{key[:-3]}_ms"] / 1000, timezone.utc).isoformat()
              for key in ("started_at", "ended_at") if point.get(f"{key[:-3]}_ms") is not None}
    score, exit_code = point.get("score"), point.get("k6_exit_code")
    return StageResult(
        test_type=point["test_type"], target=point["target"], profile=point.get("profile") or "",
        dag_id=point["dag_id"], run_id=point["run_id"], testid=point.get("testid") or "", verdict=point["verdict"],
        score=None if score is None or score == NO_SCORE else float(score), metrics=metrics,
        checks=json.loads(point.get("checks_json") or "[]"), analysis=json.loads(point.get("analysis_json") or "{}"),
        report=point.get("report") or "", k6_exit_code=None if exit_code in (None, NO_EXIT_CODE) else int(exit_code),
        **window)
