"""Issue 12: the in-process overhead of a local `perfpipe run`, side by side in one run.

    .venv/bin/python bench/overhead.py [--repeats N] [--baseline REV] [--skip-pipeline] [--no-record]

Rows (each variant's runs interleaved with the others', so machine noise hits all alike):
  smoke       `perfpipe run smoke --target demo --profile quick --set duration=20s`: wall / k6's own duration
              (the stage's load window in perf_results; goal <= 1.4x)
  pipeline    `perfpipe run pipeline --target demo --profile quick`: wall vs the sum of its k6 stages (goal <= +12 %)
  dag parse   each dags/*.py imported in a fresh interpreter (median of the files; the interpreter's own start
              and `import airflow` are measured once and subtracted)
With --baseline REV the same rows run the code of REV too (its plugins/, dags/ and k6-scripts/ from `git archive`, first on
PYTHONPATH), alternating with this tree's. With --without-bytecode this tree runs a second time as a venv without
.pyc files does (what `uv sync` without --compile-bytecode leaves): Python is pointed at an empty bytecode cache
(PYTHONPYCACHEPREFIX) and writes none (PYTHONDONTWRITEBYTECODE), so every process compiles the source it imports.

Everything is its own: perfpipe's influxd (scripts/influxd.sh) and the whole demo system (scripts/demo.sh) on
free ports of 127.0.0.1, a config/ copy pointing at them, an AIRFLOW_HOME in the work dir; all stopped at the
end. The Airflow DB is migrated once before the first measured run (both variants), as a user's second run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from services import free_port, query  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
CLI_MAIN = "import sys; from perfpipe.entry.cli import main; sys.exit(main(sys.argv[1:]))"


def sh(script: str, action: str, env: dict[str, str], timeout: float = 120) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / script), action], env=env, check=True, timeout=timeout,
                   stdout=subprocess.DEVNULL)


class Stack:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.influx_port = free_port()
        self.demo_dir = Path(tempfile.mkdtemp(prefix="perfpipe-bench-demo-"))
        self.demo_dir.chmod(0o711)
        ports = {"api": free_port(), "cache": free_port(), "database": free_port(), "proxy": free_port(),
                 "proxy_control": free_port()}
        self.ports = ports
        self.env = {**os.environ, "K6_NO_USAGE_REPORT": "true",
                    "PERFPIPE_INFLUXDB_PORT": str(self.influx_port),
                    "PERFPIPE_INFLUXDB_DATA_DIR": str(workdir / "influxdb"),
                    "PERFPIPE_LOG_DIR": str(workdir / "log"), "PERFPIPE_PYTHON": PY,
                    "PERFPIPE_DEMO_HOST": "127.0.0.1", "PERFPIPE_DEMO_PORT": str(ports["api"]),
                    "PERFPIPE_DEMO_REDIS_PORT": str(ports["cache"]), "PERFPIPE_DEMO_PG_PORT": str(ports["database"]),
                    "PERFPIPE_DEMO_PROXY_PORT": str(ports["proxy"]),
                    "PERFPIPE_DEMO_PROXY_CONTROL_PORT": str(ports["proxy_control"]),
                    "PERFPIPE_DEMO_DATA_DIR": str(self.demo_dir / "data"), "PERFPIPE_DEMO_WORKERS": "2",
                    "PERFPIPE_RUN_DIR": str(self.demo_dir / "run")}
        self.env.pop("PERFPIPE_INFLUXDB_URL", None)
        self.env.pop("PERFPIPE_DEMO_ARGS", None)

    def start(self) -> None:
        sh("influxd.sh", "start", self.env)
        self.started_influx = True
        sh("demo.sh", "start", self.env)
        self.env["PERFPIPE_INFLUXDB_URL"] = f"http://127.0.0.1:{self.influx_port}"
        config = self.workdir / "config"
        shutil.copytree(ROOT / "config", config)
        import yaml

        targets_file = config / "targets.yaml"
        targets = yaml.safe_load(targets_file.read_text())
        targets["targets"]["demo"]["base_url"] = f"http://127.0.0.1:{self.ports['api']}"
        components = targets["targets"]["demo"]["chaos"]["components"]
        components["database_link"]["control_url"] = f"http://127.0.0.1:{self.ports['proxy_control']}"
        targets_file.write_text(yaml.safe_dump(targets, sort_keys=False))
        self.env.update({"PERFPIPE_CONFIG_DIR": str(config), "PERFPIPE_REPORTS_DIR": str(self.workdir / "reports")})

    def stop(self) -> None:
        for action in (("resume", "database"), ("resume", "cache")):
            subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), *action], env=self.env, check=False,
                           timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh"), "stop"], env=self.env, check=False, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["bash", str(ROOT / "scripts" / "influxd.sh"), "stop"], env=self.env, check=False,
                       timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.demo_dir, ignore_errors=True)


class Variant:
    """One code tree: this one, or --baseline REV extracted with git archive."""

    def __init__(self, name: str, root: Path, stack: Stack, workdir: Path, bytecode: bool = True):
        self.name, self.root = name, root
        home = workdir / f"airflow-{name}"
        home.mkdir(parents=True, exist_ok=True)
        self.env = {**stack.env, "AIRFLOW_HOME": str(home),
                    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
                    "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
                    "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    # each tree's own k6 scripts: their run-config contract changes with the Python side
                    "PERFPIPE_SCRIPTS_DIR": str(root / "k6-scripts")}
        if root != ROOT:
            self.env["PYTHONPATH"] = str(root / "plugins")
        if not bytecode:
            empty = workdir / f"pycache-{name.replace(' ', '-').replace(',', '')}"
            empty.mkdir(exist_ok=True)
            self.env.update({"PYTHONPYCACHEPREFIX": str(empty), "PYTHONDONTWRITEBYTECODE": "1"})

    def cli(self, *args: str, timeout: float = 900) -> tuple[float, subprocess.CompletedProcess]:
        started = time.monotonic()
        proc = subprocess.run([PY, "-c", CLI_MAIN, *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env, cwd=str(self.root))
        return time.monotonic() - started, proc


def k6_seconds(influx_url: str, result: dict) -> float:
    """Sum of the stages' load windows (k6's own start to end) from their perf_results points."""
    testids = {s["testid"] for s in result.get("stages", [])}
    data = query(influx_url, "SELECT * FROM perf_results", database="k6")
    total = 0.0
    for series in (data.get("results", [{}])[0].get("series") or []):
        cols = series["columns"]
        for row in series["values"]:
            point = dict(zip(cols, row))
            if point.get("testid") in testids and point.get("started_ms") and point.get("ended_ms"):
                total += (point["ended_ms"] - point["started_ms"]) / 1000
    return total


def dag_parse_seconds(variant: Variant) -> tuple[float, dict[str, float]]:
    """Median over dags/*.py of (import the file in a fresh interpreter) - (the same interpreter with airflow
    imported but no DAG file)."""
    code = ("import sys,time,runpy;t0=time.perf_counter();import airflow.sdk;t1=time.perf_counter();"
            "sys.argv[1] and runpy.run_path(sys.argv[1]);print(time.perf_counter()-t1)")
    per_file = {}
    for path in sorted((variant.root / "dags").glob("*.py")):
        out = subprocess.run([PY, "-c", code, str(path)], capture_output=True, text=True, env=variant.env,
                             timeout=120, cwd=str(variant.root))
        try:
            per_file[path.name] = float(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            per_file[path.name] = float("nan")
    return statistics.median(per_file.values()), per_file


def fmt(values: list[float], unit: str = "s") -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f}{unit} ({min(values):.1f}-{max(values):.1f})"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--baseline", metavar="REV", help="also run this git revision's code, interleaved")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--smoke-duration", default="20s")
    parser.add_argument("--without-bytecode", action="store_true",
                        help="also run this tree as a venv without .pyc files does, interleaved")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="perfpipe-bench-overhead-"))
    stack = Stack(workdir)
    rows: dict[str, dict[str, list]] = {}
    try:
        stack.start()
        variants = [Variant("this", ROOT, stack, workdir)]
        if args.without_bytecode:
            variants.insert(0, Variant("this, no .pyc", ROOT, stack, workdir, bytecode=False))
        if args.baseline:
            base = workdir / "baseline"
            base.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "plugins", "dags", "config",
                                      "k6-scripts"],
                                     capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
            variants.insert(0, Variant(f"baseline {args.baseline[:10]}", base, stack, workdir))
        for v in variants:  # migrate once: the measured runs are a user's later runs
            v.cli("run", "smoke", "--target", "demo", "--profile", "quick", "--set", "duration=2s", "--json")
        smoke = ("run", "smoke", "--target", "demo", "--profile", "quick", "--set",
                 f"duration={args.smoke_duration}", "--json")
        pipeline = ("run", "pipeline", "--target", "demo", "--profile", "quick", "--json")
        for repeat in range(args.repeats):
            for kind, argv in (("smoke", smoke), ("pipeline", pipeline)):
                if kind == "pipeline" and args.skip_pipeline:
                    continue
                for v in variants:
                    wall, proc = v.cli(*argv)
                    try:
                        result = json.loads(proc.stdout)
                    except ValueError:
                        result = {"outcome": f"no JSON (exit {proc.returncode})", "stages": []}
                    k6 = k6_seconds(stack.env["PERFPIPE_INFLUXDB_URL"], result)
                    row = rows.setdefault(f"{kind}|{v.name}", {"wall": [], "k6": [], "outcome": []})
                    row["wall"].append(wall)
                    row["k6"].append(k6)
                    row["outcome"].append(result.get("outcome"))
                    print(f"[{repeat + 1}/{args.repeats}] {kind:8s} {v.name:20s} wall {wall:6.1f}s  k6 {k6:6.1f}s  "
                          f"{result.get('outcome')}", file=sys.stderr, flush=True)
        parse = {v.name: dag_parse_seconds(v) for v in variants}
    finally:
        stack.stop()
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    lines = ["| row | code | wall | k6 | ratio | overhead | goal | outcomes |", "|---|---|---|---|---|---|---|---|"]
    for key, row in rows.items():
        kind, name = key.split("|")
        ratios = [w / k for w, k in zip(row["wall"], row["k6"]) if k]
        ratio = statistics.median(ratios) if ratios else float("nan")
        goal = "<= 1.4x" if kind == "smoke" else "<= +12 %"
        lines.append(f"| {kind} | {name} | {fmt(row['wall'])} | {fmt(row['k6'])} | {ratio:.2f}x | "
                     f"+{(ratio - 1) * 100:.0f} % | {goal} | {', '.join(map(str, row['outcome']))} |")
    for name, (median, per_file) in parse.items():
        detail = ", ".join(f"{f} {s * 1000:.0f}" for f, s in per_file.items())
        lines.append(f"| dag parse (median, ms) | {name} | {median * 1000:.0f} ms | | | | | {detail} |")
    table = "\n".join(lines)
    print(table)
    if not args.no_record:
        command = "bench/overhead.py " + " ".join(sys.argv[1:])
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as out:
            load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
            out.write(f"\n## Issue 12: overhead ({stamp})\n\n`.venv/bin/python {command}` — {os.cpu_count()} cores, "
                      f"load average at the end {load}; variants interleaved.\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
