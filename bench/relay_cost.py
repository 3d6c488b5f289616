"""k6 throughput writing to InfluxDB directly vs through the run's write relay (perfpipe.core.k6.relay).

    .venv/bin/python bench/relay_cost.py [--duration 8] [--vus 20] [--repeats 2]

Own influxd (scripts/influxd.sh on a free port) and the stand-alone demo target, both on 127.0.0.1, stopped at
the end. Prints requests/s, samples stored / k6's count and the relay's CPU (this process) per 1,000 requests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

from perfpipe.core.hooks.influxdb_common import InfluxSettings  # noqa: E402
from perfpipe.core.k6.command import base_env, influxdb_output, k6_binary  # noqa: E402
from perfpipe.core.k6.relay import WriteRelay  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def count(url: str, testid: str) -> int:
    q = urllib.parse.urlencode({"db": "k6", "q": f"SELECT count(value) FROM http_reqs WHERE testid='{testid}'"})
    with urllib.request.urlopen(f"{url}/query?{q}", timeout=10) as r:
        series = json.loads(r.read())["results"][0].get("series") or [{"values": [[0, 0]]}]
    return int(series[0]["values"][0][1])


def run(target: str, influx: InfluxSettings, testid: str, args, work: Path) -> dict:
    argv, env, _ = influxdb_output(influx)
    summary = work / f"{testid}.json"
    cmd = [k6_binary(), "run", str(ROOT / "bench/k6/bench.js"), "--quiet", "--address", "", "--tag",
           f"testid={testid}", "--tag", "test_type=bench", "--tag", "target=demo", "--summary-export",
           str(summary), *argv]
    env = {**base_env(), **env, "BASE_URL": target, "BENCH_VUS": str(args.vus), "BENCH_DURATION": f"{args.duration}s"}
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=args.duration + 120,
                   check=True)
    data = json.loads(summary.read_text())
    reqs = int(data["metrics"]["http_reqs"]["count"])
    return {"rps": round(data["metrics"]["http_reqs"]["rate"], 1), "requests": reqs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--vus", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    port, demo_port = free_port(), free_port()
    influx_env = {**os.environ, "PERFPIPE_INFLUXDB_PORT": str(port), "PERFPIPE_INFLUXDB_DATA_DIR": str(work / "db"),
                  "PERFPIPE_RUN_DIR": str(work / "run"), "PERFPIPE_LOG_DIR": str(work / "log")}
    influx_env.pop("PERFPIPE_INFLUXDB_URL", None)
    subprocess.run(["bash", str(ROOT / "scripts/influxd.sh"), "start"], env=influx_env, check=True, timeout=60,
                   stdout=subprocess.DEVNULL)
    demo = subprocess.Popen([sys.executable, str(ROOT / "demo/demo_target.py"), "--host", "127.0.0.1", "--port",
                             str(demo_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2)
        url, target = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{demo_port}"
        direct = InfluxSettings(url=url, database="k6")
        for i in range(args.repeats):
            testid = f"bench-direct-{i}-{int(time.time())}"
            row = run(target, direct, testid, args, work)
            print(json.dumps({"path": "direct", **row, "stored": count(url, testid)}))
            testid = f"bench-relay-{i}-{int(time.time())}"
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            with WriteRelay(direct, {"testid": testid, "test_type": "bench", "target": "demo"}) as relay:
                row = run(target, relay.settings, testid, args, work)
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
            print(json.dumps({"path": "relay", **row, "stored": count(url, testid),
                              "relay_cpu_s_per_1k": round(1000 * cpu / row["requests"], 4)}))
    finally:
        demo.terminate()
        demo.wait(timeout=30)
        subprocess.run(["bash", str(ROOT / "scripts/influxd.sh"), "stop"], env=influx_env, timeout=60,
                       stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    import urllib.parse  # noqa: F401  (count() builds its query)

    main()
