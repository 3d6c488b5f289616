"""A local CLI run as a user starts it, with real k6: two runs on one target take turns (the machine-wide target
lock), and a signal to the CLI stops k6 within seconds, records the stage `aborted` and exits 128 + signal with
one line and no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_until  # noqa: E402  (tests/ is on sys.path)
from integration.test_overlap import sample_window  # noqa: E402
from perfpipe.entry.cli.interrupts import k6_process_groups

pytestmark = pytest.mark.integration

PERFPIPE = str(Path(sys.executable).parent / "perfpipe")


def start_cli(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
    """`perfpipe run smoke --target demo ...` in its own session (a terminal's Ctrl-C reaches its whole group)."""
    stderr = tmp_path / f"{name}.stderr"
    proc = subprocess.Popen(
        [PERFPIPE, "run", "smoke", "--target", "demo", "--profile", "quick", "--json", *args],
        stdout=subprocess.PIPE, stderr=stderr.open("w"), text=True, start_new_session=True,
        env={**os.environ, "PERFPIPE_LOCK_DIR": str(tmp_path / "locks")})
    return proc, stderr


def k6_of(cli_pid: int) -> list[int]:
    """The k6 process groups of a CLI (k6 is started by its supervised child)."""
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _ppid(p) == cli_pid]
    return [g for child in children for g in k6_process_groups(child)]


def _ppid(proc_dir: Path) -> int | None:
    try:
        text = (proc_dir / "stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2:].split()[1])


def test_two_cli_runs_on_one_target_take_turns(influxdb, demo_target, airflow_db, tmp_path):
    """The finding: two CLI runs on one target overlapped 9 of their 10 s and both passed."""
    runs = [start_cli(tmp_path, f"run{i}", "--set", "duration=4s", "--set", "vus=2",
                      "--logical-date", f"2026-06-0{i + 1}T00:00:00+00:00") for i in range(2)]
    results = []
    for proc, stderr in runs:
        stdout, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr.read_text()[-3000:]
        results.append(json.loads(stdout))
    windows = sorted(sample_window(influxdb, r["stages"][0]["testid"]) for r in results)
    assert all(n > 0 for _, _, n in windows)
    assert windows[0][1] < windows[1][0], f"k6 sample windows overlap: {windows}"
    waited = [s.read_text() for _, s in runs]
    assert sum("is busy: pid" in text and "waiting until it ends" in text for text in waited) == 1


def test_no_wait_refuses_a_busy_target(influxdb, demo_target, airflow_db, tmp_path):
    from perfpipe.app.target_lock import target_lock
    from perfpipe.app.targets import endpoints

    os.environ["PERFPIPE_LOCK_DIR"] = str(tmp_path / "locks")
    try:
        with target_lock(endpoints(demo_target.url), holder="this test"):
            proc, stderr = start_cli(tmp_path, "refused", "--no-wait")
            stdout, _ = proc.communicate(timeout=120)
    finally:
        os.environ.pop("PERFPIPE_LOCK_DIR")
    assert proc.returncode == 2
    assert "is busy: pid %d, this test" % os.getpid() in stdout + stderr.read_text()


@pytest.mark.parametrize("sig, code, whole_group", [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False),
                                                    (signal.SIGHUP, 129, True)])
def test_a_signal_stops_k6_records_aborted_and_exits_with_one_line(influxdb, demo_target, airflow_db, tmp_path,
                                                                   sig, code, whole_group):
    """The finding: Ctrl-C gave a KeyboardInterrupt traceback, no aborted result and ~22 s to exit. SIGINT goes
    to the CLI's whole process group, as a terminal's Ctrl-C (and a hang-up) does; SIGTERM to its pid, as `kill`
    does."""
    proc, stderr = start_cli(tmp_path, sig.name, "--set", "duration=60s", "--set", "vus=2",
                             "--logical-date", f"2026-06-1{code % 10}T00:00:00+00:00")
    try:
        wait_until(lambda: k6_of(proc.pid) and "k6 | " in stderr.read_text(), 180, "k6 running")
        time.sleep(2)  # mid-run: samples stored
        groups = k6_of(proc.pid)
        sent = time.monotonic()
        (os.killpg if whole_group else os.kill)(proc.pid, sig)
        stdout, _ = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    text = stderr.read_text()
    assert proc.returncode == code, text[-3000:]
    assert "Traceback" not in text
    ours = [line for line in text.splitlines() if line.startswith("perfpipe: interrupted")]
    assert len(ours) == 1 and f"by {sig.name}: k6 stopped in" in ours[0] and "recorded aborted" in ours[0], ours
    assert not [g for g in groups if Path(f"/proc/{g}").exists()], "k6 left running"
    result = json.loads(stdout)
    assert result["stages"][0]["verdict"] == "aborted"
    [point] = influxdb.query('SELECT * FROM "perf_results" WHERE "run_id" = $r', {"r": result["run_id"]})
    assert point["verdict"] == "aborted"
    assert took < 15, f"{took:.1f}s from the signal to the exit"
    print(f"{sig.name}: exit {proc.returncode} after {took:.1f}s; {ours[0]}")
