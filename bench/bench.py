"""perfpipe metrics-path benchmark: one run, one machine, every figure side by side (see bench/README.md).

    bash bench/run.sh [--duration 15] [--vus 50] [--repeats 3] [--no-levers] [--skip-p3] [--skip-p5] [--quick]

Starts its own loopback services (nginx, the demo target, a stock influxd and perfpipe's influxd), runs wrk and
k6 (no output / seeds' default --out influxdb / perfpipe's metrics path as shipped / lever variants) against each
target, then P3 (gate time vs run length on synthetic runs) and P5 (k6 memory per VU at 10,000 VUs), prints the
figures and ratios and appends them to bench/RESULTS.md with the command line.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from services import perfpipe_influx_conf, start_demo, start_influxd, start_nginx, stock_influx_conf  # noqa: E402
from throughput import Variant, run_k6, run_wrk  # noqa: E402

RESULTS = HERE / "RESULTS.md"
TRIMMED_SYSTEM_TAGS = ["--system-tags", "status,method,name,check,error_code,scenario,expected_response"]


def variants(levers: bool) -> list[Variant]:
    rows = [
        Variant("k6 no output", "none", note="k6's own ceiling"),
        Variant("seeds default", "influxdb", "stock", note="--out influxdb, stock influxd (25 MB body limit)"),
        Variant("perfpipe path", "influxdb", "perfpipe", shipped=True,
                note="perfpipe.core.k6.command.influxdb_output + config/influxdb.conf.template"),
    ]
    if levers:
        rows += [
            Variant("lever GOGC=100 (Go default)", "influxdb", "perfpipe", shipped=True, env={"GOGC": "100"},
                    note="the perfpipe path before this lever"),
            Variant("lever GOGC=400", "influxdb", "perfpipe", shipped=True, env={"GOGC": "400"},
                    note="k6's Go GC runs even less often"),
            Variant("lever trimmed system tags", "influxdb", "perfpipe", shipped=True, args=TRIMMED_SYSTEM_TAGS,
                    note="drops proto, subproto, tls_version, group, service, error, url"),
            Variant("lever GOGC=400 + trimmed tags", "influxdb", "perfpipe", shipped=True, env={"GOGC": "400"},
                    args=TRIMMED_SYSTEM_TAGS, note="both"),
            Variant("lever push 5s", "influxdb", "perfpipe", shipped=True, env={"K6_INFLUXDB_PUSH_INTERVAL": "5s"},
                    note="bigger, rarer batches"),
            Variant("lever tsi1 influxd", "influxdb", "tsi1", shipped=True, note="index-version tsi1"),
            Variant("lever local csv.gz", "csv", note="own-ingestion-path cost in k6 (file not loaded)"),
            Variant("lever local csv", "csv", env={"K6_CSV_TIME_FORMAT": "unix_nano"}, args=["--plain-csv"],
                    note="same, uncompressed, ns timestamps (file not loaded)"),
            Variant("own ingestion: csv + own_ingest", "csv", "perfpipe", env={"K6_CSV_TIME_FORMAT": "unix_nano"},
                    args=["--plain-csv"], note="k6 writes csv, bench/own_ingest.py loads it after the run (no live data)"),
        ]
    return rows


def _median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 4) if values else None


def _spread(values: list[float | None]) -> str:
    values = [v for v in values if v is not None]
    return f"{min(values):,.0f}-{max(values):,.0f}" if values else "-"


def summarise(rows: list[dict]) -> dict:
    stored = sum(sum(r["stored"].values()) for r in rows if "stored" in r)
    expected = sum(sum(v or 0 for v in r["expected"].values()) for r in rows if "expected" in r)
    return {
        "rps": _median([r["rps"] for r in rows]), "rps_spread": _spread([r["rps"] for r in rows]),
        "k6_cpu_per_1k": _median([r.get("k6_cpu_per_1k") for r in rows]),
        "influxd_cpu_per_1k": _median([r.get("influxd_cpu_per_1k") for r in rows]),
        "k6_peak_rss_mb": max((r.get("k6_peak_rss_mb") or 0) for r in rows),
        "ingest_cpu_per_1k": _median([r.get("ingest_cpu_per_1k") for r in rows]),
        "ingest_s": _median([r.get("ingest_s") for r in rows]),
        "ingest_moved": sum(r.get("ingest_moved") or 0 for r in rows),
        "stored": stored, "expected": expected,
        "stored_ratio": round(stored / expected, 6) if expected else None,
        "lost_requests": sum(r.get("lost_requests") or 0 for r in rows) if any("expected" in r for r in rows) else None,
        "errors": sum(r.get("output_errors") or 0 for r in rows),
        "exits": sorted({r["exit"] for r in rows}),
        "runs": len(rows),
    }


def _ingest_note(s: dict) -> str:
    if s.get("ingest_s") is None:
        return ""
    return (f"; load after the run {s['ingest_s']} s (median), loader {s['ingest_cpu_per_1k']} CPU-s/1k req, "
            f"{s['ingest_moved']} colliding timestamps moved")


def throughput_section(target, path: str, vlist: list[Variant], influx: dict, args, workdir: Path, out) -> list[str]:
    out(f"\n== target {target.name} ({target.url}{path}): {args.vus} VUs x {args.duration}s, {args.repeats} repeats, "
        f"variants interleaved")
    wrk = [run_wrk(target.url + path, args.vus, args.duration) for _ in range(max(1, args.repeats - 1))]
    out(f"  wrk ceiling: {_median([w['rps'] for w in wrk]):,.0f} req/s")
    runs: dict[str, list[dict]] = {v.name: [] for v in vlist}
    for rep in range(args.repeats):
        for variant in vlist:
            row = run_k6(variant, target.url, path, args.vus, args.duration, influx.get(variant.influx), workdir)
            runs[variant.name].append(row)
            out(f"  [{rep + 1}] {variant.name:<28} {row['rps'] or 0:>9,.0f} req/s  k6 {row['k6_cpu_per_1k']} "
                f"influxd {row.get('influxd_cpu_per_1k')} CPU-s/1k  rss {row['k6_peak_rss_mb']} MB  "
                f"stored {row.get('stored_ratio', '-')}  load {os.getloadavg()[0]:.1f}")
    stats = {name: summarise(rows) for name, rows in runs.items()}
    base = stats[vlist[0].name]
    lines = [f"### {target.name} ({args.vus} VUs, {args.duration}s, {args.repeats} repeats)", "",
             f"wrk ceiling: **{_median([w['rps'] for w in wrk]):,.0f} req/s**", "",
             "| variant | req/s (median) | range | x no-output | CPU-model x | stored / expected | lost reqs | "
             "k6 CPU-s/1k req | influxd CPU-s/1k req | k6 peak RSS MB | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for variant in vlist:
        s = stats[variant.name]
        ratio = round(s["rps"] / base["rps"], 3) if (s["rps"] and base["rps"]) else None
        # On a CPU-bound 2-core box the throughput ratio is the CPU per request ratio (k6 + influxd): steadier
        # than the measured rate while other work shares the cores.
        cost = (s["k6_cpu_per_1k"] or 0) + (s["influxd_cpu_per_1k"] or 0) + (s["ingest_cpu_per_1k"] or 0)
        cpu_ratio = round(base["k6_cpu_per_1k"] / cost, 3) if cost and base["k6_cpu_per_1k"] else None
        stored = (f"{s['stored']:,} / {s['expected']:,} = {s['stored_ratio']}" if s["expected"] else "n/a")
        lines.append(f"| {variant.name} | {s['rps']:,.0f} | {s['rps_spread']} | {ratio} | {cpu_ratio} | {stored} | "
                     f"{s['lost_requests'] if s['lost_requests'] is not None else 'n/a'} | {s['k6_cpu_per_1k']} | "
                     f"{s['influxd_cpu_per_1k'] if s['influxd_cpu_per_1k'] is not None else '-'} | "
                     f"{s['k6_peak_rss_mb']} | {variant.note}{_ingest_note(s)} |")
        out(f"  => {variant.name:<28} {s['rps']:>9,.0f} req/s ({s['rps_spread']}), x{ratio} of no-output "
            f"(CPU model x{cpu_ratio}), stored/expected {s['stored_ratio']}, lost requests {s['lost_requests']}, "
            f"k6 {s['k6_cpu_per_1k']} / influxd {s['influxd_cpu_per_1k']} CPU-s per 1k req, "
            f"k6 peak {s['k6_peak_rss_mb']} MB, exit codes {s['exits']}{_ingest_note(s)}")
    lines.append("")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds per k6/wrk run (default 15)")
    parser.add_argument("--vus", type=int, default=50, help="k6 VUs = wrk connections (default 50)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per variant, interleaved (default 3)")
    parser.add_argument("--no-levers", action="store_true", help="only the three paths the issue compares")
    parser.add_argument("--skip-demo", action="store_true", help="no run against the demo target")
    parser.add_argument("--skip-p3", action="store_true")
    parser.add_argument("--skip-p5", action="store_true")
    parser.add_argument("--p3-minutes", default="1,5,20", help="synthetic run lengths for P3 (default 1,5,20)")
    parser.add_argument("--p5-vus", type=int, default=10_000)
    parser.add_argument("--only", help="comma-separated variant names to run (k6 no output always runs)")
    parser.add_argument("--quick", action="store_true", help="8 s runs, 2 repeats, no levers, P3 at 1,5 min")
    parser.add_argument("--keep-workdir", action="store_true", help="keep the influxd data, logs and k6 logs")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.repeats, args.no_levers, args.p3_minutes = 8, 2, True, "1,5"
    command = ("bash bench/run.sh " + shlex.join(sys.argv[1:])).strip()
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    report: list[str] = [f"## {started:%Y-%m-%d %H:%M} UTC", "", f"Command: `{command}`", "",
                         f"Machine: {os.cpu_count()} cores, {platform.platform()}, k6 "
                         f"{_k6_version()}, influxd {_influxd_version()}; load average at start "
                         f"{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}", ""]

    def out(line: str) -> None:
        print(line, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="perfpipe-bench-"))
    services = []
    try:
        nginx = start_nginx(workdir)
        services.append(nginx)
        configs = {"stock": stock_influx_conf, "perfpipe": perfpipe_influx_conf}
        if not args.no_levers:
            configs["tsi1"] = lambda p, r, d: perfpipe_influx_conf(p, r, d, {"data.index-version": '"tsi1"'})
        influx = {}
        for name, conf_for in configs.items():
            influx[name] = start_influxd(name, workdir, conf_for)
            services.append(influx[name])  # registered at once: stopped even if a later start fails
        out(f"services: nginx {nginx.url}, " + ", ".join(f"influxd {k} {s.url}" for k, s in influx.items()))
        vlist = variants(not args.no_levers)
        if args.only:
            wanted = {name.strip() for name in args.only.split(",")}
            vlist = [v for v in vlist if v.name == "k6 no output" or v.name in wanted]
        report += ["### Throughput and completeness", ""]
        report += throughput_section(nginx, "/", vlist, influx, args, workdir, out)
        if not args.skip_demo:
            demo = start_demo(workdir)
            services.append(demo)
            report += throughput_section(demo, "/api/products/1", [v for v in vlist if not v.name.startswith("lever")],
                                         influx, args, workdir, out)
        if not args.skip_p3:
            import gate_time

            out("\n== P3: gate evaluation time vs run length (synthetic 1,000-VU runs, 600 req/s, 14 samples/req)")
            p3 = gate_time.measure(influx["perfpipe"], [float(m) for m in args.p3_minutes.split(",")], log=out)
            report += ["### P3: gate time vs run length", "",
                       "Gate as shipped = complete_rollup (tail + counts) + collect_metrics + stress analysis + gate. "
                       "Live rollup = the companion's work during the run (10 s steps). Query-time path = the "
                       "reconciliation counts and GROUP BY time() buckets from the raw samples at gate time (replaced).",
                       "",
                       "| run | points | gate as shipped s | buckets | complete | live rollup during the run: steps, "
                       "median / max step s, s per 1k requests | query-time path s | raw-sample gate metrics s | p95 summary / raw |",
                       "|---|---|---|---|---|---|---|---|---|"]
            report += [f"| {r['minutes']} min | {r['points']:,} | **{r['gate_s']}** | {r['buckets']} | "
                       f"{r['complete']} ({r['stored']:,} / {r['expected']:,}) | {r['live_steps']}, "
                       f"{r['live_step_median_s']} / {r['live_step_max_s']}, {r['live_s_per_1k_req']} | {r['query_time_s']} | "
                       f"{r['raw_metrics_s']} | {r['p95_summary']} / {r['p95_raw']} |" for r in p3]
            report.append("")
        if not args.skip_p5:
            import vu_memory

            out(f"\n== P5: k6 memory per VU, stress.js at {args.p5_vus:,} VUs (1 s think time) with the perfpipe path")
            p5 = vu_memory.measure(nginx.url, influx["perfpipe"], vus=args.p5_vus, log=out)
            report += ["### P5: k6 memory per VU", "",
                       f"stress.js, {p5['peak_vus']:,} VUs reached (asked {p5['vus']:,}), perfpipe metrics path: "
                       f"k6 peak RSS {p5['k6_peak_rss_mb']} MB = **{p5['mb_per_vu']} MB per VU** "
                       f"({p5['requests']:,} requests, exit {p5['exit']}, {p5['wall_s']} s)", ""]
    finally:
        for service in reversed(services):
            service.stop()
    load_after = os.getloadavg()
    report.insert(6, f"Load average at end {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} "
                     f"(2 cores shared with other work: rates are noisy, ratios within one run are the figures)\n")
    out(f"\nload average: start {load_before[0]:.2f}, end {load_after[0]:.2f}")
    if args.keep_workdir:
        out(f"work dir kept: {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)  # influxd data of one run: hundreds of MB
    if not args.no_record:
        with open(RESULTS, "a", encoding="utf-8") as results:
            results.write("\n".join(report) + "\n\n")
        out(f"appended to {RESULTS}")
    return 0


def _k6_version() -> str:
    k6 = Path(sys.executable).parent / "k6"
    try:
        return subprocess.run([str(k6), "version"], capture_output=True, text=True, timeout=10).stdout.split()[1]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def _influxd_version() -> str:
    try:
        return subprocess.run(["/usr/bin/influxd", "version"], capture_output=True, text=True,
                              timeout=10).stdout.split()[1]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
