"""Kill-and-timeout fault loop: stop running tests at random moments, every way they can be stopped, and count
what each stop leaves behind.

    .venv/bin/python bench/fault_loops.py              # 20 trials, round-robin over the stop methods
    .venv/bin/python bench/fault_loops.py --quick      # one trial per method (what tests/integration runs)
    .venv/bin/python bench/fault_loops.py --trials 40 --seed 7 --json out.json

It starts its own influxd (scripts/influxd.sh on a free port, own data dir), the demo system and a real Airflow
(API server, scheduler with LocalExecutor, DAG processor; bench/local_airflow.py), all on 127.0.0.1, and stops
them at the end. Each trial triggers perf_chaos (or perf_timeout_<N>s) on the demo system: 30 s of constant load
with its default fault (cache_failure: Redis stopped) held from 6 s to 18 s; it waits for k6 to run, waits a random
moment (before, during or after the fault), stops it, then checks:

    k6_process       no k6 process of perfpipe is left (of that run, or any other)
    container        no k6 container is running (runtime docker; n/a when this machine has no docker CLI)
    fault_injected   no chaos fault is left injected: no ledger entry, the demo's cache and database healthy
    aborted_recorded the stage's perf_results point says `aborted`
    run_failed       the DAG run ended `failed` (a stopped test never succeeds)

and prints trials, leftovers and time-to-clean (stop -> no k6 process) per method.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from local_airflow import LocalAirflow, free_port, wait_until  # noqa: E402
from perfpipe.app.chaos.injectors import proc_stat  # noqa: E402

METHODS = ("mark_failed", "task_sigterm", "execution_timeout", "perfpipe_stop", "perfpipe_stop_local")
DAGS_FOLDER = ROOT / "bench" / "fault_dags"
TIMEOUT_DAGS_S = range(3, 13)  # bench/fault_dags/fault_dags.py
# perf_chaos on the demo system injects its default scenario (cache_failure: Redis stopped): 30 s scale the quick
# phases to 6 s baseline, 12 s fault, 12 s recovery, so stops land before, during and after the fault.
LOAD_CONF = {"target": "demo", "profile": "quick", "overrides": {"duration": "30s", "vus": 5}}
STOP_DELAY_S = (0.5, 14.0)  # from k6's start: about half the stops hit the fault phase
FAULT_RESTORE_DEADLINE_S = 20
K6_START_TIMEOUT_S = 120
CLEAN_DEADLINE_S = 30  # k6 must be gone this long after the stop, or it counts as left behind
RUN_END_TIMEOUT_S = 120
RECORD_TIMEOUT_S = 60
PERFPIPE = str(Path(sys.executable).parent / "perfpipe")


@dataclass
class Trial:
    index: int
    method: str
    dag_id: str
    run_id: str
    delay_s: float  # from k6 start to the stop (for execution_timeout: the DAG's timeout)
    fault_held_at_stop: bool = False  # a chaos fault was injected when the stop came
    time_to_clean_s: float | None = None
    run_state: str | None = None
    verdict: str | None = None
    leftovers: list[str] = field(default_factory=list)


# --- what a stop may leave behind: name -> check(trial) -> None (clean) or what was found -------------------

# Every (dag_id, run_id) this process triggered: k6 of other users of the machine (other Airflows, other
# engineers' runs) is not ours to count or to stop.
TRIGGERED: set[tuple[str, str]] = set()


def k6_left(trial: Trial) -> str | None:
    from perfpipe.app.live_status import k6_processes, split_testid

    left = [p for p in k6_processes() if (split_testid(p.testid) or ("", ""))[:2] in TRIGGERED]
    return f"k6 still running: {[(p.pid, p.testid) for p in left]}" if left else None


def container_left(trial: Trial) -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None  # no docker CLI: nothing of ours can run in a container on this machine
    proc = subprocess.run([docker, "ps", "--format", "{{.ID}} {{.Image}} {{.Command}}"], capture_output=True,
                          text=True, timeout=30)
    if proc.returncode != 0:
        return None if "Cannot connect" in proc.stderr else f"docker ps failed: {proc.stderr.strip()[:200]}"
    ours = [line for line in proc.stdout.splitlines() if "k6" in line and trial.run_id in line]
    return f"k6 containers running: {ours}" if ours else None


def fault_ledger() -> list[Path]:
    """Chaos faults held right now (perfpipe.app.chaos writes one ledger entry per fault, removed once restored)."""
    from perfpipe.core.paths import chaos_ledger_dir

    return sorted(chaos_ledger_dir().glob("*.json"))


def demo_health() -> dict:
    import urllib.request

    from perfpipe.app.targets import resolve_target

    try:
        with urllib.request.urlopen(resolve_target("demo")["base_url"] + "/health", timeout=2) as response:
            return json.loads(response.read())
    except Exception as exc:
        return {"status": f"unreachable: {exc}"}


def chaos_fault_left(trial: Trial) -> str | None:
    """The stop leaves no fault: no ledger entry and the demo system's cache and database healthy again (a stopped
    Redis is started again by the holder; give it the deadline to come back)."""
    try:
        wait_until(lambda: not fault_ledger() and demo_health().get("status") == "ok", FAULT_RESTORE_DEADLINE_S,
                   "fault restored", interval_s=0.2)
    except TimeoutError:
        return f"ledger {[p.name for p in fault_ledger()]}, demo health {demo_health()}"
    return None


# Checks that no fault is left injected: fn(trial) -> None | finding.
FAULT_CHECKS: list[Callable[[Trial], str | None]] = [chaos_fault_left]


def no_fault_injected(trial: Trial) -> str | None:
    findings = [f for f in (check(trial) for check in FAULT_CHECKS) if f]
    return "; ".join(findings) or None


def aborted_not_recorded(trial: Trial) -> str | None:
    return None if trial.verdict == "aborted" else f"stage recorded as {trial.verdict!r}, not 'aborted'"


def run_not_failed(trial: Trial) -> str | None:
    return None if trial.run_state == "failed" else f"run ended {trial.run_state!r}"


LEFTOVER_CHECKS: dict[str, Callable[[Trial], str | None]] = {
    "k6_process": k6_left,
    "container": container_left,
    "fault_injected": no_fault_injected,
    "aborted_recorded": aborted_not_recorded,
    "run_failed": run_not_failed,
}


# --- the stop methods ----------------------------------------------------------------------------------------

def k6_of(dag_id: str, run_id: str):
    from perfpipe.app.live_status import k6_processes_of_run

    return k6_processes_of_run(dag_id, run_id)


def stop(method: str, airflow: LocalAirflow, trial: Trial, k6_pid: int) -> None:
    client = airflow.client()
    if method == "mark_failed":  # the UI's "Mark as failed" on the running task
        from perfpipe.entry.airflow_api import dag_run_url

        client.request("PATCH", dag_run_url(airflow.url, trial.dag_id, trial.run_id, "taskInstances", "run_k6"),
                       json={"new_state": "failed"})
    elif method == "task_sigterm":  # SIGTERM to the task process that runs k6 (what a worker shutdown sends)
        task_pid = proc_stat(k6_pid)[1]  # k6's parent: the task process
        cmdline = Path(f"/proc/{task_pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if task_pid in airflow.component_pids() or "airflow" not in cmdline:
            raise RuntimeError(f"k6's parent {task_pid} is not an Airflow task process: {cmdline!r}")
        os.kill(task_pid, signal.SIGTERM)
    elif method in ("perfpipe_stop", "perfpipe_stop_local"):
        argv = [PERFPIPE, "stop", trial.run_id, "--dag-id", trial.dag_id]
        if method == "perfpipe_stop":
            argv += ["--airflow-url", airflow.url]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=90, env=airflow.env)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[1:])} exited {proc.returncode}: {proc.stdout} {proc.stderr[-1500:]}")
    else:
        raise ValueError(method)


def _iso_to_epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def trigger(airflow: LocalAirflow, dag_id: str, logical_date: datetime) -> dict:
    """Trigger a run; Airflow on SQLite answers 500/503 while its database is locked by another writer: retry."""
    from perfpipe.app.run_identity import home_tag, run_id_for, target_name_of
    from perfpipe.entry.airflow_api import AirflowAPIError

    # Each attempt its own run id, as the CLI gives one (perfpipe.app.run_identity), tagged with the home of the
    # Airflow that runs it: `perfpipe stop` (run with that home) refuses a run id another checkout started.
    client = airflow.client()
    run_id = run_id_for(logical_date, target_name_of(LOAD_CONF), home_tag(airflow.home))
    for attempt in range(5):
        try:
            return client.trigger(dag_id, LOAD_CONF, logical_date, run_id)
        except AirflowAPIError as exc:
            if exc.status not in (500, 503) or attempt == 4:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def run_trial(airflow: LocalAirflow, influx, index: int, method: str, rng: random.Random,
              logical_date: datetime, log=None) -> Trial:
    from perfpipe.app.results import read_results

    log = log or (lambda message: print(message, flush=True))
    client = airflow.client()
    timeout_s = rng.choice(TIMEOUT_DAGS_S) if method == "execution_timeout" else None
    dag_id = f"perf_timeout_{timeout_s}s" if timeout_s else "perf_chaos"
    run = trigger(airflow, dag_id, logical_date)
    TRIGGERED.add((dag_id, run["dag_run_id"]))
    trial = Trial(index=index, method=method, dag_id=dag_id, run_id=run["dag_run_id"],
                  delay_s=float(timeout_s) if timeout_s else round(rng.uniform(*STOP_DELAY_S), 2))
    [k6] = wait_until(lambda: k6_of(dag_id, trial.run_id), K6_START_TIMEOUT_S, f"k6 of {trial.run_id}")
    if method == "execution_timeout":
        ti = next(t for t in client.task_instances(dag_id, trial.run_id) if t["task_id"] == "run_k6")
        stopped_at = _iso_to_epoch(ti["start_date"]) + timeout_s  # Airflow's own SIGALRM fires then
    else:
        time.sleep(trial.delay_s)
        stopped_at = time.time()
        trial.fault_held_at_stop = bool(fault_ledger())
        stop(method, airflow, trial, k6.pid)
    try:
        wait_until(lambda: not k6_of(dag_id, trial.run_id), CLEAN_DEADLINE_S + max(0.0, stopped_at - time.time()),
                   "k6 gone", interval_s=0.05)
        trial.time_to_clean_s = round(time.time() - stopped_at, 2)
    except TimeoutError:
        pass  # counted by the k6_process check below
    finished = lambda: client.get_run(dag_id, trial.run_id)["state"] in ("success", "failed")  # noqa: E731
    try:
        wait_until(finished, RUN_END_TIMEOUT_S, "run end", interval_s=0.5)
    except TimeoutError:
        pass
    trial.run_state = client.get_run(dag_id, trial.run_id)["state"]

    def recorded():
        points = [p for p in read_results(influx, dag_id, trial.run_id) if p.test_type == "chaos"]
        return points[-1].verdict if points else None

    try:
        trial.verdict = wait_until(lambda: recorded() == "aborted" and "aborted", RECORD_TIMEOUT_S, "aborted point",
                                   interval_s=0.5)
    except TimeoutError:
        trial.verdict = recorded()
    for name, check in LEFTOVER_CHECKS.items():
        finding = check(trial)
        if finding:
            trial.leftovers.append(f"{name}: {finding}")
    log(f"trial {index:2d} {method:19s} {dag_id:18s} stop after {trial.delay_s:5.2f}s"
        f"{' (fault held)' if trial.fault_held_at_stop else ''} -> clean in "
        f"{trial.time_to_clean_s}s, run {trial.run_state}, stage {trial.verdict}, "
        f"leftovers {trial.leftovers or 0}")
    if any(name.startswith("k6_process") for name in trial.leftovers):
        from perfpipe.app.live_status import stop_local

        stop_local(dag_id, trial.run_id, wait_s=30)  # never leave load running, even when the trial failed
    return trial


def run_trials(airflow: LocalAirflow, influx, trials: int, seed: int, methods=METHODS, log=None) -> list[Trial]:
    rng = random.Random(seed)
    airflow.wait_for_dags(["perf_chaos"] + [f"perf_timeout_{s}s" for s in TIMEOUT_DAGS_S])
    # Logical dates unique per call (the run id is made from it), far from any other test's dates.
    # Between the DAGs' start_date (tasks of earlier dates are not created) and now (a run waits for its run_after,
    # which is the logical date here).
    base = datetime(2026, 6, 1, tzinfo=timezone.utc) + timedelta(days=rng.randrange(0, 120),
                                                                   seconds=int(time.time()) % 86400)
    results = []
    for index in range(trials):
        method = methods[index % len(methods)]
        results.append(run_trial(airflow, influx, index + 1, method, rng, base + timedelta(minutes=index), log))
    return results


def summarize(trials: list[Trial]) -> dict:
    per_method = {}
    for method in dict.fromkeys(t.method for t in trials):
        mine = [t for t in trials if t.method == method]
        clean = [t.time_to_clean_s for t in mine if t.time_to_clean_s is not None]
        per_method[method] = {
            "trials": len(mine), "with_leftovers": sum(bool(t.leftovers) for t in mine),
            "time_to_clean_s": {"min": min(clean), "median": statistics.median(clean), "max": max(clean)}
            if clean else None}
    return {"trials": len(trials), "trials_with_leftovers": sum(bool(t.leftovers) for t in trials),
            "stopped_during_fault": sum(t.fault_held_at_stop for t in trials),
            "per_method": per_method, "details": [asdict(t) for t in trials]}


def print_summary(summary: dict, out=sys.stdout) -> None:
    out.write(f"\nfault loop: {summary['trials']} trials, {summary['trials_with_leftovers']} left anything "
              f"behind (goal 0); {summary['stopped_during_fault']} stopped while a chaos fault was injected\n")
    out.write(f"  {'method':20s} {'trials':>6s} {'leftover':>8s}   time to clean (stop -> no k6) min/median/max\n")
    for method, m in summary["per_method"].items():
        t = m["time_to_clean_s"]
        clean = f"{t['min']:.2f} / {t['median']:.2f} / {t['max']:.2f} s" if t else "-"
        out.write(f"  {method:20s} {m['trials']:6d} {m['with_leftovers']:8d}   {clean}\n")
    for detail in summary["details"]:
        if detail["leftovers"]:
            out.write(f"  trial {detail['index']} ({detail['method']}): {detail['leftovers']}\n")
    out.flush()


# --- standalone run: own influxd, demo target and Airflow ----------------------------------------------------

def perfpipe_config(work: Path, demo_url: str, demo_env: dict) -> Path:
    import yaml

    config = work / "config"
    shutil.copytree(ROOT / "config", config)
    targets = yaml.safe_load((config / "targets.yaml").read_text())
    targets["targets"]["demo"]["base_url"] = demo_url
    control = f"http://127.0.0.1:{demo_env['PERFPIPE_DEMO_PROXY_CONTROL_PORT']}"
    targets["targets"]["demo"]["chaos"]["components"]["database_link"]["control_url"] = control
    (config / "targets.yaml").write_text(yaml.safe_dump(targets, sort_keys=False))
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="one trial per stop method")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    trials = len(METHODS) if args.quick else args.trials
    if not 1 <= trials <= 200:
        parser.error("--trials: between 1 and 200")
    work = Path(tempfile.mkdtemp(prefix="perfpipe-fault-loops-"))
    work.chmod(0o711)  # the demo's PostgreSQL runs as the postgres user and needs to reach its data dir
    influx_port = free_port()
    influx_env = {**os.environ, "PERFPIPE_INFLUXDB_PORT": str(influx_port),
                  "PERFPIPE_INFLUXDB_DATA_DIR": str(work / "influxdb"), "PERFPIPE_RUN_DIR": str(work / "run"),
                  "PERFPIPE_LOG_DIR": str(work / "log")}
    influx_env.pop("PERFPIPE_INFLUXDB_URL", None)
    # The demo system on its own ports; Airflow's tasks (and their chaos holders) address it with the same env.
    demo_env = {"PERFPIPE_DEMO_HOST": "127.0.0.1", "PERFPIPE_DEMO_PORT": str(free_port()),
                "PERFPIPE_DEMO_REDIS_PORT": str(free_port()), "PERFPIPE_DEMO_PG_PORT": str(free_port()),
                "PERFPIPE_DEMO_PROXY_PORT": str(free_port()), "PERFPIPE_DEMO_PROXY_CONTROL_PORT": str(free_port()),
                "PERFPIPE_DEMO_DATA_DIR": str(work / "demo"), "PERFPIPE_RUN_DIR": str(work / "run"),
                "PERFPIPE_LOG_DIR": str(work / "log"), "PERFPIPE_PYTHON": sys.executable}
    demo_url = f"http://127.0.0.1:{demo_env['PERFPIPE_DEMO_PORT']}"
    perfpipe_env = {"PERFPIPE_CONFIG_DIR": str(perfpipe_config(work, demo_url, demo_env)),
                    "PERFPIPE_REPORTS_DIR": str(work / "reports"),
                    "PERFPIPE_INFLUXDB_URL": f"http://127.0.0.1:{influx_port}", "K6_NO_USAGE_REPORT": "true",
                    **demo_env}
    os.environ.update(perfpipe_env)
    print(f"fault loop: {trials} trials, seed {args.seed}, work dir {work}", flush=True)
    demo_sh = ["bash", str(ROOT / "scripts" / "demo.sh")]
    subprocess.run(["bash", str(ROOT / "scripts" / "influxd.sh"), "start"], env=influx_env, check=True, timeout=60)
    try:
        subprocess.run([*demo_sh, "start"], env={**os.environ, **demo_env}, check=True, timeout=180)
        from perfpipe.app.influx import influxdb_hook

        with LocalAirflow(work / "airflow", DAGS_FOLDER, perfpipe_env) as airflow:
            results = run_trials(airflow, influxdb_hook(), trials, args.seed)
    finally:
        subprocess.run([*demo_sh, "stop"], env={**os.environ, **demo_env}, timeout=180)
        subprocess.run(["bash", str(ROOT / "scripts" / "influxd.sh"), "stop"], env=influx_env, timeout=60)
    summary = summarize(results)
    summary["seed"] = args.seed
    print_summary(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0 if summary["trials_with_leftovers"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
