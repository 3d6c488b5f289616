"""What each test type is for, measured from the run's raw k6 samples in InfluxDB.

- stress: the breaking point — the first sustained window where the error rate or p95 crosses the stress limits,
  the VUs and request rate there, and the peak stable throughput before it;
- spike: baseline p95 before the spike, worst p95 and error rate during it, and how long after the load fell back
  p95 stayed above `recovery_factor` x baseline;
- soak: p95 and error-rate drift (first vs last window of the steady state, and the p95 slope), and the target's
  memory growth from its own metrics endpoint (sampled during the run, see perfpipe.app.companions);
- chaos: error rate, p95 and request rate per phase (baseline / inject / recovery, split at the recorded
  injection and restore times) and the time after the restore until errors stayed under the recovery limit.

Time-based figures come from the run's rollup (perfpipe.app.rollup: InfluxDB GROUP BY time() buckets, at most ~600 per
run, kept up to date while k6 runs, so the cost stays flat in the run's length). The spike's and chaos phases'
windows (bounded by the load profile) get one exact query each; a soak's first and last fifths, as long as the soak
itself, are summed from the buckets. The functions that turn buckets into figures are pure, for unit tests.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from perfpipe.app.measurements import HTTP_REQ_DURATION, HTTP_REQ_FAILED, PERF_EVENTS, PERF_TARGET_STATS
from perfpipe.core.hooks.influxdb_common import queries_in_parallel
from perfpipe.app.results import round_or_none
from perfpipe.app.rollup import Bucket, RolledRun, summed, time_range

if TYPE_CHECKING:  # an Airflow hook: importing Airflow (~4 s) waits until someone makes a hook
    from perfpipe.core.hooks.influxdb import InfluxDBHook

EVENTS_MEASUREMENT, TARGET_STATS_MEASUREMENT = PERF_EVENTS.name, PERF_TARGET_STATS.name  # kept for importers
# A bucket with fewer requests says nothing about the error rate or p95.
MIN_BUCKET_REQUESTS = 5


def window_stats(hook: InfluxDBHook, testid: str, start_ms: float, end_ms: float) -> dict[str, Any]:
    """Exact figures of one time window: requests, error rate, p95 and request rate."""
    where = f'"testid" = $testid AND {time_range(start_ms, end_ms)}'
    params = {"testid": testid}
    failed, p95 = queries_in_parallel(hook, [
        f'SELECT count("value") AS n, mean("value") AS rate FROM "{HTTP_REQ_FAILED}" WHERE {where}',
        f'SELECT percentile("value", 95) AS p95 FROM "{HTTP_REQ_DURATION}" WHERE {where}'], params)
    requests = int(failed[0].get("n") or 0) if failed else 0
    seconds = max((end_ms - start_ms) / 1000, 1e-9)
    return {
        "requests": requests,
        "error_rate": round_or_none(failed[0].get("rate"), 6) if failed else None,
        "p95_ms": round_or_none(p95[0].get("p95")) if p95 else None,
        "rps": round_or_none(requests / seconds),
        "seconds": round_or_none(seconds),
    }



# ---------------------------------------------------------------------------------------------- stress


def breaking_point(buckets: list[Bucket], bucket_s: int, limits: dict[str, Any]) -> dict[str, Any]:
    """The first bucket that starts `sustain_s` of buckets all over the limits (error rate or p95)."""
    sustain = max(1, math.ceil(float(limits["sustain_s"]) / bucket_s))

    def over(b: Bucket) -> bool:
        return b.requests >= MIN_BUCKET_REQUESTS and (
            b.error_rate > limits["error_rate"] or (b.p95_ms is not None and b.p95_ms > limits["p95_ms"]))

    flags = [over(b) for b in buckets]
    start = next((i for i in range(len(buckets) - sustain + 1) if all(flags[i:i + sustain])), None)
    stable = buckets if start is None else buckets[:start]
    ok_rps = [(b.requests - b.failed) / bucket_s for b in stable if b.requests]
    peak_vus = max((b.vus or 0 for b in buckets), default=0)
    result: dict[str, Any] = {
        "broke": start is not None,
        "breaking_vus": None, "breaking_rps": None, "breaking_at_s": None,
        "peak_stable_rps": round_or_none(max(ok_rps)) if ok_rps else None,
        "peak_vus_reached": int(peak_vus),
    }
    if start is not None:
        b = buckets[start]
        result.update(breaking_vus=int(b.vus or 0), breaking_rps=round_or_none(b.requests / bucket_s),
                      breaking_at_s=round_or_none(b.t - buckets[0].t), breaking_error_rate=round_or_none(b.error_rate, 4),
                      breaking_p95_ms=round_or_none(b.p95_ms))
    # What the run demonstrated: the VUs where it broke, or (never broke) the most VUs it held.
    result["capacity_vus"] = result["breaking_vus"] if start is not None else int(peak_vus)
    result["capacity_rps"] = result["peak_stable_rps"]
    return result


# ---------------------------------------------------------------------------------------------- spike


def spike_windows(buckets: list[Bucket], bucket_s: int) -> tuple[float, float, float, float] | None:
    """(run start, spike start, spike end, run end) in epoch seconds, from the measured VUs: the spike is where
    VUs exceed the baseline level by more than 20% of the jump."""
    levels = [b.vus for b in buckets if b.vus is not None]
    if len(levels) < 3:
        return None
    base, peak = levels[0], max(levels)
    if peak <= base:
        return None
    cut = base + 0.2 * (peak - base)
    high = [b.t for b in buckets if b.vus is not None and b.vus > cut]
    return buckets[0].t, high[0], high[-1] + bucket_s, buckets[-1].t + bucket_s


def recovery_seconds(after: list[Bucket], spike_end: float, ok_p95_ms: float, max_error_rate: float) -> float | None:
    """Seconds from the end of the spike until every later bucket is back within limits (None: never)."""
    recovered_at = None
    for b in after:
        healthy = b.requests == 0 or (b.error_rate <= max_error_rate and (b.p95_ms or 0) <= ok_p95_ms)
        if healthy and recovered_at is None:
            recovered_at = b.t
        elif not healthy:
            recovered_at = None
    if recovered_at is None:
        return None
    return round_or_none(max(0.0, recovered_at - spike_end))


# ---------------------------------------------------------------------------------------------- soak


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (epoch seconds, value) pairs, per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if not var:
        return None
    return round_or_none(60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var, 4)


def drift_pct(first: float | None, last: float | None, noise: float = 0.0) -> float | None:
    """Change from first to last in percent; changes within `noise` (absolute) count as none."""
    if first is None or last is None:
        return None
    if abs(last - first) <= noise:
        return 0.0
    if first <= 0:
        return None
    return round_or_none(100 * (last - first) / first, 2)


def steady_buckets(buckets: list[Bucket]) -> list[Bucket]:
    """The buckets at (>= 90% of) the peak VUs: the soak's plateau, without ramp-up and ramp-down."""
    peak = max((b.vus or 0 for b in buckets), default=0)
    return [b for b in buckets if b.vus is not None and b.vus >= 0.9 * peak and b.requests]


# ---------------------------------------------------------------------------------------------- chaos


def phase_bounds(events: list[dict], run_start_ms: float, run_end_ms: float) -> dict[str, tuple[float, float]]:
    """baseline/inject/recovery windows (ms) from the recorded inject and restore events."""
    inject = next((e["time"] for e in events if e.get("event") == "inject"), None)
    restore = next((e["time"] for e in events if e.get("event") == "restore"), None)
    if inject is None:
        return {}
    restore = restore if restore is not None else run_end_ms
    return {"baseline": (run_start_ms, inject), "inject": (inject, restore), "recovery": (restore, run_end_ms)}


# ---------------------------------------------------------------------------------------------- per run


def analyse(plan: TestPlan, hook: InfluxDBHook, testid: str, run: RolledRun) -> dict[str, Any]:
    """The test type's analysis: flat figures (gate metrics, perf_results fields) plus `details` for reports."""
    analyser = _ANALYSERS.get(plan.test_type)
    if analyser is None or not run.buckets:
        return {}
    return analyser(plan, hook, testid, run.buckets, run.bucket_s, run.start_ms, run.end_ms)


def _stress(plan, hook, testid, buckets, bucket_s, start_ms, end_ms) -> dict[str, Any]:
    limits = plan.analysis
    result = breaking_point(buckets, bucket_s, limits)
    result["details"] = {"limits": {k: limits[k] for k in ("error_rate", "p95_ms", "sustain_s")},
                         "bucket_s": bucket_s, "series": _series(buckets)}
    return result


def _spike(plan, hook, testid, buckets, bucket_s, start_ms, end_ms) -> dict[str, Any]:
    limits = plan.analysis
    windows = spike_windows(buckets, bucket_s)
    if windows is None:
        return {"details": {"note": "no spike in the measured VUs"}}
    run_start, spike_start, spike_end, run_end = windows
    before = window_stats(hook, testid, run_start * 1000, spike_start * 1000)
    during = window_stats(hook, testid, spike_start * 1000, spike_end * 1000)
    baseline_p95 = before["p95_ms"]
    worst = max((b.p95_ms for b in buckets if spike_start <= b.t < spike_end and b.p95_ms is not None),
                default=None)
    ok_p95 = None
    recovery = None
    if baseline_p95 is not None:
        ok_p95 = max(baseline_p95 * limits["recovery_factor"], baseline_p95 + limits["recovery_margin_ms"])
        recovery = recovery_seconds([b for b in buckets if b.t >= spike_end], spike_end, ok_p95,
                                    limits["recovery_error_rate"])
    return {
        "baseline_p95_ms": baseline_p95, "spike_p95_ms": round_or_none(worst), "spike_error_rate": during["error_rate"],
        "recovery_s": recovery, "recovered": recovery is not None,
        "details": {"windows_s": {"spike_start": round_or_none(spike_start - run_start),
                                  "spike_end": round_or_none(spike_end - run_start), "run_end": round_or_none(run_end - run_start)},
                    "before": before, "during": during, "recovered_p95_limit_ms": round_or_none(ok_p95),
                    "bucket_s": bucket_s, "series": _series(buckets)},
    }


def _soak(plan, hook, testid, buckets, bucket_s, start_ms, end_ms) -> dict[str, Any]:
    limits = plan.analysis
    steady = steady_buckets(buckets)
    if len(steady) < 2:
        return {"details": {"note": "too short a steady state to measure drift"}}
    n = max(1, round(len(steady) * limits["window_fraction"]))
    first_w = (steady[0].t * 1000, (steady[n - 1].t + bucket_s) * 1000)
    last_w = (steady[-n].t * 1000, (steady[-1].t + bucket_s) * 1000)
    # Windows of the rollup's buckets, not exact queries: a soak's fifths are long, and a rollup read stays flat.
    first, last = summed(steady[:n], bucket_s), summed(steady[-n:], bucket_s)
    result: dict[str, Any] = {
        "p95_first_ms": first["p95_ms"], "p95_last_ms": last["p95_ms"],
        "p95_drift_pct": drift_pct(first["p95_ms"], last["p95_ms"], limits["p95_noise_ms"]),
        "p95_slope_ms_per_min": slope_per_minute([(b.t, b.p95_ms) for b in steady if b.p95_ms is not None]),
        "error_rate_drift": (round_or_none(last["error_rate"] - first["error_rate"], 6)
                             if first["error_rate"] is not None and last["error_rate"] is not None else None),
    }
    memory = _memory_points(hook, testid)
    if memory:
        def mean_in(window: tuple[float, float]) -> float | None:
            values = [v for t, v in memory if window[0] <= t * 1000 < window[1]]
            return sum(values) / len(values) if values else None

        # The sampler runs every few seconds: widen the windows to the run's first/last fifth if needed.
        span = (memory[-1][0] - memory[0][0]) * 1000
        fifth = max(span * limits["window_fraction"], 1)
        mem_first = mean_in(first_w) or mean_in((memory[0][0] * 1000, memory[0][0] * 1000 + fifth + 1))
        mem_last = mean_in(last_w) or mean_in((memory[-1][0] * 1000 - fifth, memory[-1][0] * 1000 + 1))
        result.update(memory_first_mb=round_or_none(mem_first), memory_last_mb=round_or_none(mem_last),
                      memory_growth_pct=drift_pct(mem_first, mem_last),
                      memory_slope_mb_per_min=slope_per_minute(memory))
    result["details"] = {"steady_buckets": len(steady), "window_buckets": n, "first": first, "last": last,
                         "memory_samples": len(memory), "bucket_s": bucket_s, "series": _series(buckets)}
    return result


def _memory_points(hook: InfluxDBHook, testid: str) -> list[tuple[float, float]]:
    points = hook.query(f'SELECT "rss_mb" FROM "{PERF_TARGET_STATS}" WHERE "testid" = $testid',
                        {"testid": testid})
    return [(p["time"] / 1000, float(p["rss_mb"])) for p in points if p.get("rss_mb") is not None]


def read_events(hook: InfluxDBHook, testid: str) -> list[dict]:
    return hook.query(f'SELECT * FROM "{PERF_EVENTS}" WHERE "testid" = $testid', {"testid": testid})


def _chaos(plan, hook, testid, buckets, bucket_s, start_ms, end_ms) -> dict[str, Any]:
    chaos = plan.chaos
    if not chaos:
        return {"details": {"note": "no fault injected: the target declares no chaos scenario"}}
    events = read_events(hook, testid)
    phases = phase_bounds(events, start_ms, end_ms)
    if not phases:
        return {"fault_injected": False, "details": {"scenario": chaos.scenario, "events": events,
                                                     "note": "the fault was never injected"}}
    stats = {name: window_stats(hook, testid, *bounds) for name, bounds in phases.items()}
    restore_s = phases["recovery"][0] / 1000
    restored = any(e.get("event") == "restore" and e.get("ok", True) in (True, "true") for e in events)
    recovered = recovery_seconds([b for b in buckets if b.t + bucket_s > restore_s], restore_s, math.inf,
                                 plan.analysis["recovery_error_rate"]) if restored else None
    result: dict[str, Any] = {"fault_injected": True, "fault_restored": restored, "recovered_s": recovered}
    for name, figures in stats.items():
        for key in ("error_rate", "p95_ms", "rps"):
            result[f"{name}_{key}"] = figures[key]
    result["details"] = {"scenario": chaos.scenario, "component": chaos.component,
                         "action": chaos.action, "phases": stats, "events": events,
                         "bucket_s": bucket_s, "series": _series(buckets)}
    return result


def _series(buckets: list[Bucket]) -> list[list]:
    """[t, vus, requests, error_rate, p95_ms] per bucket: compact, for the report's charts."""
    return [[b.t, b.vus, b.requests, round(b.error_rate, 4), round_or_none(b.p95_ms)] for b in buckets]


_ANALYSERS = {"stress": _stress, "spike": _spike, "soak": _soak, "chaos": _chaos}
