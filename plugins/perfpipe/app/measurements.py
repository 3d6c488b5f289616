"""The InfluxDB schema, in one place: every measurement perfpipe writes or reads, with its tags, fields and types.

perfpipe writes perf_results (one point per stage result), perf_pipeline (one per pipeline outcome),
perf_rollup_state, perf_events and perf_target_stats; InfluxDB itself writes perf_rollup (`SELECT ... INTO`, see
perfpipe.app.rollup). k6 writes its own measurements (http_reqs, http_req_duration, ...), each with one float
field `value` and the tags perfpipe passes on its command line (perfpipe.core.k6.command: testid, test_type,
target).

The Grafana dashboards in grafana/ query these names: they are stored data, never rename them. A field keeps one
type forever (InfluxDB refuses a float after an int in the same shard), hence the declared types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Measurement:
    """One measurement: its name, its tag keys and its fields with their Python types (bool, int, float, str)."""

    name: str
    tags: tuple[str, ...]
    fields: Mapping[str, type] = field(default_factory=dict)
    written_by: str = "perfpipe"  # perfpipe (line protocol), influxdb (SELECT ... INTO) or k6
    doc: str = ""

    def __str__(self) -> str:  # f'FROM "{PERF_RESULTS}"' reads as the query it makes
        return self.name

    def problems(self, point: dict[str, Any]) -> list[str]:
        """Why a point (as given to InfluxDBHook.write) does not fit this measurement; [] when it does."""
        found = []
        if point.get("measurement") != self.name:
            found.append(f"measurement {point.get('measurement')!r} is not {self.name!r}")
        tags = point.get("tags") or {}
        found += [f"unknown tag {t!r}" for t in sorted(set(tags) - set(self.tags))]
        found += [f"missing tag {t!r}" for t in self.tags if t not in tags]
        for name, value in sorted((point.get("fields") or {}).items()):
            wanted = self.fields.get(name)
            if wanted is None:
                found.append(f"unknown field {name!r}")
            elif type(value) is not wanted:  # exact: a bool is not an int, an int is not a float, to InfluxDB
                found.append(f"field {name!r} is {type(value).__name__}, declared {wanted.__name__}")
        return found


# --- k6's own measurements (written by k6's InfluxDB output, read by perfpipe and Grafana) --------------------

# Tags perfpipe puts on every k6 sample (`k6 run --tag ...`) and on its own per-run points.
TESTID, TEST_TYPE, TARGET = "testid", "test_type", "target"
K6_TAGS = (TESTID, TEST_TYPE, TARGET)
# Tags k6 itself adds to its HTTP samples (its default system tags; the InfluxDB output stores url, vu and iter as
# fields). Grafana's k6-run dashboard groups by some of them; perfpipe's own queries use K6_TAGS only.
K6_SYSTEM_TAGS = ("name", "method", "status", "expected_response", "scenario", "group", "check", "proto",
                  "error", "error_code", "tls_version")
K6_VALUE = "value"  # k6 stores each sample as one float field `value`


def _k6(name: str, doc: str) -> Measurement:
    return Measurement(name, K6_TAGS, {K6_VALUE: float}, written_by="k6", doc=doc)


def k6_tags_of(measurement: Measurement) -> tuple[str, ...]:
    """Every tag a k6 sample of the measurement may carry: perfpipe's and k6's own."""
    return measurement.tags + (K6_SYSTEM_TAGS if measurement.written_by == "k6" else ())


HTTP_REQS = _k6("http_reqs", "one sample per request (value 1): counted for requests and rates")
HTTP_REQ_DURATION = _k6("http_req_duration", "request duration in ms: p95/p99/avg")
HTTP_REQ_FAILED = _k6("http_req_failed", "1 for a failed request, 0 otherwise: the error rate")
VUS = _k6("vus", "active VUs, one sample a second: peak VUs and the run's time window")
CHECKS = _k6("checks", "1 per passed k6 check, 0 per failed one: checks_rate")
ITERATIONS = _k6("iterations", "one sample per VU iteration (counted by bench/throughput.py)")
DATA_SENT = _k6("data_sent", "bytes sent (read by Grafana's k6-run dashboard only)")
DATA_RECEIVED = _k6("data_received", "bytes received (read by Grafana's k6-run dashboard only)")
K6_MEASUREMENTS = (HTTP_REQS, HTTP_REQ_DURATION, HTTP_REQ_FAILED, VUS, CHECKS, ITERATIONS, DATA_SENT,
                   DATA_RECEIVED)

# --- perf_results: one point per stage result (perfpipe.app.results) -------------------------------------------

# Gate metrics of a stage; the CLI JSON and the reports read the same names.
METRIC_FIELDS = ("p95_ms", "p99_ms", "avg_ms", "error_rate", "rps", "checks_rate", "requests", "vus_max",
                 "duration_s")
# Figures of perfpipe.app.analysis (present for their test type only); booleans are stored as 0/1 floats.
ANALYSIS_FIELDS = (
    "capacity_vus", "capacity_rps", "breaking_vus", "breaking_rps", "peak_stable_rps", "breaking_at_s",
    "peak_vus_reached", "broke", "stopped_at_break",
    "baseline_p95_ms", "spike_p95_ms", "spike_error_rate", "recovery_s", "recovered",
    "p95_first_ms", "p95_last_ms", "p95_drift_pct", "p95_slope_ms_per_min", "error_rate_drift",
    "memory_first_mb", "memory_last_mb", "memory_growth_pct", "memory_slope_mb_per_min",
    "fault_injected", "fault_restored", "recovered_s",
    "baseline_error_rate", "baseline_rps", "inject_error_rate", "inject_p95_ms", "inject_rps",
    "recovery_error_rate", "recovery_p95_ms", "recovery_rps")
# k6's request count vs the samples InfluxDB stored (perfpipe.app.results.reconcile).
SAMPLE_FIELDS = ("samples_expected", "samples_stored")
# Every numeric field of a stage's metrics, stored as float.
NUMERIC_RESULT_FIELDS = METRIC_FIELDS + ANALYSIS_FIELDS + SAMPLE_FIELDS
NO_SCORE = -1.0  # the score field when no check was evaluated (InfluxDB fields cannot be null)
NO_EXIT_CODE = -1  # k6_exit_code when k6 never reported one

PERF_RESULTS = Measurement(
    "perf_results", (TEST_TYPE, TARGET, "dag_id", "run_id"),
    {"verdict": str, "testid": str, "metrics_complete": bool, "report": str, "checks_json": str, "profile": str,
     "score": float, "k6_exit_code": int, "started_ms": float, "ended_ms": float, "analysis_json": str,
     **{name: float for name in NUMERIC_RESULT_FIELDS}},
    doc="one verdict per (dag_id, test_type, target) at the run's logical date: a rerun's point replaces the "
        "earlier run's once written (perfpipe.app.results.store_result)")

# --- perf_pipeline: one point per pipeline outcome (perfpipe.app.outcomes) ---------------------------------------

PATH_SEPARATOR = " -> "  # perf_pipeline.path joins the decision path with it
PERF_PIPELINE = Measurement(
    "perf_pipeline", ("dag_id", "run_id", TARGET),
    {"outcome": str, "path": str, "explanation": str, "evidence_json": str},
    doc="one point per pipeline run at its logical date: the outcome, its decision path and evidence")

# --- the rollup (perfpipe.app.rollup) ----------------------------------------------------------------------------

PERF_ROLLUP = Measurement(
    "perf_rollup", (TESTID,),
    {"reqs": int, "durations": int, "failed_n": int, "failed": float, "p95_ms": float, "vus": float},
    written_by="influxdb", doc="GROUP BY time() buckets of a run's raw k6 samples, written by SELECT ... INTO")
PERF_ROLLUP_STATE = Measurement(
    "perf_rollup_state", (TESTID,), {"bucket_s": int, "rolled_to_ms": float},
    doc="one point per testid at its first sample: the bucket width and how far the rollup has got")

# --- companions of a k6 run (perfpipe.app.companions), read by perfpipe.app.analysis and Grafana -----------------

PERF_EVENTS = Measurement(
    "perf_events", K6_TAGS + ("scenario", "event"),
    {"text": str, "component": str, "action": str, "ok": bool},
    doc="chaos injection/restore events: phase boundaries and Grafana annotations")
PERF_TARGET_STATS = Measurement(
    "perf_target_stats", K6_TAGS, {"rss_mb": float},
    doc="the target's memory, sampled from its metrics endpoint during a run")

PERFPIPE_MEASUREMENTS = (PERF_RESULTS, PERF_PIPELINE, PERF_ROLLUP, PERF_ROLLUP_STATE, PERF_EVENTS, PERF_TARGET_STATS)
ALL = PERFPIPE_MEASUREMENTS + K6_MEASUREMENTS
BY_NAME = {m.name: m for m in ALL}
