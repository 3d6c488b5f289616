"""P3: how long gate evaluation takes as the run gets longer (synthetic runs from generate_run.py).

For each run length: the gate metrics as shipped (collect_metrics: k6's exact aggregates + reconciliation against
InfluxDB), the same metrics read from the raw samples in InfluxDB only (what collect_metrics did before), the
time-bucket read of the analyses (run_window_ms + read_buckets), and the full gate (collect + analysis + gate).
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


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        started = time.monotonic()
        result = fn()
        times.append(time.monotonic() - started)
    return statistics.median(times), result


def measure(influx: Service, minutes_list: list[float], vus: int = 1000, rps: int = 600, repeats: int = 3,
            log=print) -> list[dict]:
    from perfpipe import analysis
    from perfpipe.gates import evaluate_gate
    from perfpipe.hooks.influxdb import InfluxDBHook, InfluxSettings
    from perfpipe.config import load_gates, validate_gates
    from perfpipe.results import collect_metrics, summary_count

    hook = InfluxDBHook(InfluxSettings(url=influx.url, database=influx.extra["database"]), timeout_s=600)
    gates = validate_gates(load_gates("load"), "thresholds.load")
    limits = {"error_rate": 0.05, "p95_ms": 1000, "sustain_s": 10}
    rows = []
    for minutes in minutes_list:
        testid = f"synthetic:p3:{minutes}min:{int(time.time())}"
        generated = generate(influx.url, influx.extra["database"], testid, minutes, vus, rps)
        summary = generated["summary"]
        # Only the request count: every other figure has to come from the raw samples (the old path).
        counts_only = {"metrics": {"http_reqs": {"count": summary_count(summary, "http_reqs")}}}

        def gate() -> tuple:
            metrics = collect_metrics(hook, testid, summary, generated["seconds"])
            window = analysis.run_window_ms(hook, testid)
            bucket_s = analysis.bucket_seconds((window[1] - window[0]) / 1000)
            buckets = analysis.read_buckets(hook, testid, *window, bucket_s)
            metrics.update({k: v for k, v in analysis.breaking_point(buckets, bucket_s, limits).items()})
            return evaluate_gate(metrics, gates, metrics_complete=metrics["metrics_complete"], k6_thresholds_ok=True,
                                 aborted=False, baselines={}, skipped={}), metrics

        def buckets_only() -> int:
            window = analysis.run_window_ms(hook, testid)
            return len(analysis.read_buckets(hook, testid, *window,
                                             analysis.bucket_seconds((window[1] - window[0]) / 1000)))

        t_collect, shipped = _timed(lambda: collect_metrics(hook, testid, summary, generated["seconds"]), repeats)
        t_raw, raw = _timed(lambda: collect_metrics(hook, testid, counts_only, generated["seconds"]), repeats)
        t_buckets, n_buckets = _timed(buckets_only, repeats)
        t_gate, (verdict, metrics) = _timed(gate, repeats)
        row = {"minutes": minutes, "points": generated["points"], "write_s": generated["write_s"],
               "gate_metrics_s": round(t_collect, 3), "raw_metrics_s": round(t_raw, 3),
               "buckets_s": round(t_buckets, 3), "buckets": n_buckets, "full_gate_s": round(t_gate, 3),
               "complete": shipped["metrics_complete"], "p95_summary": shipped["p95_ms"], "p95_raw": raw["p95_ms"],
               "verdict": verdict[0]}
        log(f"  P3 {minutes:>5} min {generated['points']:>11,} points: gate metrics {t_collect:.3f}s "
            f"(raw-sample path {t_raw:.3f}s), buckets {t_buckets:.3f}s ({n_buckets}), full gate {t_gate:.3f}s, "
            f"complete={shipped['metrics_complete']}, p95 {shipped['p95_ms']} vs raw {raw['p95_ms']}")
        rows.append(row)
    return rows
