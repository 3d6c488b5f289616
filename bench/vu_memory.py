"""P5: k6's memory per VU with perfpipe's own stress script (k6-scripts/stress.js, its run config compiled by
perfpipe like a real run), ramped to 10,000 VUs against the loopback target, with perfpipe's metrics path."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from services import Service, run_tracked

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))


def measure(target_url: str, influx: Service, vus: int = 10_000, hold_s: int = 15, think_s: float = 1.0,
            log=print) -> dict:
    from perfpipe.app.config import build_plan
    from perfpipe.core.hooks.influxdb import InfluxSettings
    from perfpipe.core.k6.command import build_invocation, k6_binary, write_run_config
    from perfpipe.core.paths import scripts_dir
    from perfpipe.app.targets import resolve_target

    target = resolve_target({"name": "bench", "base_url": target_url, "max_vus": vus,
                             "requests": [{"method": "GET", "path": "/", "name": "root"}]})
    # Ramp to the peak, hold, stop: bounded in VUs, time and (think time) request rate.
    plan = build_plan("stress", target, "quick", {"stages": f"10s:{vus},{hold_s}s:{vus}", "think_time_s": think_s})
    plan = plan.model_copy(update={"analysis": {**plan.analysis, "abort_after_s": 0}})  # no stop-at-break
    workdir = Path(tempfile.mkdtemp(prefix="bench-p5-"))
    write_run_config(plan, workdir)
    influx_settings = InfluxSettings(url=influx.url, database=influx.extra["database"])
    invocation = build_invocation(plan, testid=f"bench:p5:{int(time.time())}", binary=k6_binary(),
                                  script=str(scripts_dir() / "stress.js"), report_path=str(workdir),
                                  influx=influx_settings, headers={}, blocked_networks=[])
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(invocation.env)
    env["K6_WEB_DASHBOARD"] = "false"  # the HTML report is not what is measured here
    # init of 10,000 VUs on 2 busy cores takes a while; never unbounded
    exit_code, _usage, rss_mb, wall_s = run_tracked(invocation.argv, env, workdir / "k6.log", 10 + hold_s + 240,
                                                     poll_s=0.2)
    summary_file = workdir / "summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    metrics = summary.get("metrics") or {}
    peak_vus = int((metrics.get("vus_max") or {}).get("max") or (metrics.get("vus") or {}).get("max") or 0)
    result = {"vus": vus, "peak_vus": peak_vus, "exit": exit_code,
              "k6_peak_rss_mb": round(rss_mb, 1), "mb_per_vu": round(rss_mb / peak_vus, 3) if peak_vus else None,
              "requests": int((metrics.get("http_reqs") or {}).get("count") or 0),
              "wall_s": round(wall_s, 1), "log": str(workdir / "k6.log")}
    log(f"  P5 {peak_vus:,} VUs reached: k6 peak RSS {result['k6_peak_rss_mb']} MB -> {result['mb_per_vu']} MB/VU "
        f"({result['requests']:,} requests, exit {result['exit']}, {result['wall_s']}s)")
    return result
