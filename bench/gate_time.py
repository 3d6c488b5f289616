"""P3: how long gate evaluation takes as the run gets longer (synthetic runs from generate_run.py).

For each run length, side by side on the same data:
- the live rollup's work during the run (perfpipe.app.companions.RollupCompanion's steps, replayed here over the
  written run in the same 10-second steps, up to the companion's lag behind the end);
- the gate as shipped: complete_rollup (rolls the tail, sums the counts) + collect_metrics (k6's exact aggregates)
  + the stress analysis on the rollup's buckets + evaluate_gate;
- the query-time path it replaces: counts and GROUP BY time() buckets over the raw samples, at gate time;
- the same gate metrics from the raw samples only (no k6 summary): what the gate cost before either.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from generate_run import generate
from services import Service

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))


def _timed(fn, repeats: int, before=None) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        if before:
            before()
        started = time.monotonic()
        result = fn()
        times.append(time.monotonic() - started)
    return statistics.median(times), result


def query_time_gate(hook, testid: str, bucket_s: int) -> tuple[int, int]:
    """The replaced path: the two reconciliation counts and the analysis buckets straight from the raw samples."""
    from perfpipe.app.measurements import HTTP_REQ_DURATION, HTTP_REQ_FAILED, HTTP_REQS, VUS
    from perfpipe.core.hooks.influxdb import queries_in_parallel
    from perfpipe.app.rollup import run_window_ms

    start, end = run_window_ms(hook, testid)
    where = f'"testid" = $testid AND time >= {start}ms AND time < {end}ms'
    group = f"GROUP BY time({bucket_s}s) fill(none)"
    results = queries_in_parallel(hook, [
        f'SELECT count("value") AS n FROM "{HTTP_REQS}" WHERE "testid" = $testid',
        f'SELECT count("value") AS n FROM "{HTTP_REQ_DURATION}" WHERE "testid" = $testid',
        f'SELECT count("value") AS n, sum("value") AS failed FROM "{HTTP_REQ_FAILED}" WHERE {where} {group}',
        f'SELECT percentile("value", 95) AS p95 FROM "{HTTP_REQ_DURATION}" WHERE {where} {group}',
        f'SELECT max("value") AS vus FROM "{VUS}" WHERE {where} {group}'], {"testid": testid})
    return int(results[0][0]["n"]), len(results[2])


def measure(influx: Service, minutes_list: list[float], vus: int = 1000, rps: int = 600, repeats: int = 3,
            log=print) -> list[dict]:
    from perfpipe.app import analysis, rollup
    from perfpipe.app.config import load_gates, validate_gates
    from perfpipe.app.gates import evaluate_gate
    from perfpipe.core.hooks.influxdb import InfluxDBHook, InfluxSettings
    from perfpipe.app.results import collect_metrics, summary_count

    hook = InfluxDBHook(settings=InfluxSettings(url=influx.url, database=influx.extra["database"]), timeout_s=600)
    from perfpipe.core.model.plan import PlannedCheck, TestPlan

    gates = {name: PlannedCheck(**check)
             for name, check in validate_gates(load_gates("load"), "thresholds.load").items()}
    analysed = {"error_rate": 0.05, "p95_ms": 1000, "sustain_s": 10}
    rows = []
    for minutes in minutes_list:
        testid = f"synthetic:p3:{minutes}min:{int(time.time())}"
        generated = generate(influx.url, influx.extra["database"], testid, minutes, vus, rps)
        summary, start_ms, end_ms = generated["summary"], generated["start_ms"], generated["end_ms"]
        expected = summary_count(summary, "http_reqs")
        planned_s = generated["seconds"]
        bucket_s = rollup.bucket_seconds(planned_s)
        plan = TestPlan(test_type="stress", profile="quick", target={"name": "bench"}, shape={}, gates=gates,
                        expected_duration_s=planned_s, peak_vus=vus, analysis=analysed)

        # The companion's work while the run goes: one step per LIVE_EVERY_S of samples, LIVE_LAG_S behind.
        step_ms = max(rollup.LIVE_EVERY_S, bucket_s) * 1000
        live_to = rollup.live_cutoff_ms(end_ms, end_ms, bucket_s, rollup.LIVE_LAG_S)
        rolled_to, steps = rollup.roll_start_ms(start_ms, bucket_s), []
        while rolled_to < live_to:
            cutoff = min(live_to, rollup.align_down(rolled_to + step_ms, bucket_s))
            began = time.monotonic()
            rollup.roll(hook, testid, rolled_to, cutoff, bucket_s)
            rollup.write_state(hook, testid, start_ms, bucket_s, cutoff)
            steps.append(time.monotonic() - began)
            rolled_to = cutoff

        def rewind() -> None:  # each repeat starts where the companion left off at the end of the run
            rollup.write_state(hook, testid, start_ms, bucket_s, live_to)

        def gate() -> tuple:
            rolled = rollup.complete_rollup(hook, testid, expected, planned_s)
            metrics = collect_metrics(hook, testid, summary, planned_s, rolled.stored_reqs, rolled.stored_durations)
            metrics.update(analysis.analyse(plan, hook, testid, rolled))
            verdict = evaluate_gate(metrics, gates, metrics_complete=metrics["metrics_complete"],
                                    k6_thresholds_ok=True, aborted=False, baselines={}, skipped={})
            return verdict, metrics, rolled

        t_gate, (verdict, metrics, rolled) = _timed(gate, repeats, before=rewind)
        t_query_time, (raw_count, raw_buckets) = _timed(lambda: query_time_gate(hook, testid, bucket_s), repeats)
        counts_only = {"metrics": {"http_reqs": {"count": expected}}}  # every other figure from the raw samples
        t_raw, raw = _timed(lambda: collect_metrics(hook, testid, counts_only, planned_s, raw_count, raw_count),
                            repeats)
        row = {"minutes": minutes, "points": generated["points"], "write_s": generated["write_s"],
               "live_steps": len(steps), "live_step_median_s": round(statistics.median(steps), 3) if steps else 0,
               "live_step_max_s": round(max(steps), 3) if steps else 0, "live_total_s": round(sum(steps), 2),
               "live_s_per_1k_req": round(sum(steps) / (expected / 1000), 5),
               "gate_s": round(t_gate, 3), "query_time_s": round(t_query_time, 3), "raw_metrics_s": round(t_raw, 3),
               "buckets": len(rolled.buckets), "query_time_buckets": raw_buckets,
               "complete": metrics["metrics_complete"], "rerolled": rolled.rerolled,
               "stored": rolled.stored_reqs, "expected": expected,
               "p95_summary": metrics["p95_ms"], "p95_raw": raw["p95_ms"], "verdict": verdict[0],
               "capacity_vus": metrics.get("capacity_vus")}
        log(f"  P3 {minutes:>5} min {generated['points']:>11,} points: gate {t_gate:.3f}s "
            f"({len(rolled.buckets)} buckets, complete={metrics['metrics_complete']}, rerolled={rolled.rerolled}) | "
            f"query-time path {t_query_time:.3f}s | raw-sample metrics {t_raw:.3f}s | live rollup {len(steps)} steps, "
            f"median {row['live_step_median_s']}s, max {row['live_step_max_s']}s, {row['live_s_per_1k_req']}s per 1k "
            f"requests | p95 {metrics['p95_ms']} vs raw "
            f"{raw['p95_ms']}")
        rows.append(row)
    return rows
