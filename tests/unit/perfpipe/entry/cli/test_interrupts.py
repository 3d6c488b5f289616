"""perfpipe.entry.cli.interrupts: the run in a supervised child; a signal to the CLI ends the child's k6 first.

A stand-in k6 (a copy of `sleep` named k6, its own process group as the runner starts it) replaces the real one;
tests/integration/test_interrupts.py does the same with the real CLI, Airflow and k6."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from perfpipe.entry.cli import interrupts


def test_the_childs_exit_code_is_the_clis():
    assert interrupts.run_supervised(lambda: 3) == 3
    assert interrupts.run_supervised(lambda: os.kill(os.getpid(), signal.SIGKILL) or 0) == 128 + signal.SIGKILL


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_stops_the_childs_k6_then_waits_for_the_child(tmp_path, capfd, sig, code):
    fake_k6 = tmp_path / "k6"
    shutil.copy(shutil.which("sleep"), fake_k6)
    marker = tmp_path / "k6-ended"

    def work() -> int:  # the child: start "k6", wait for it as the run task does, then "record"
        k6 = subprocess.Popen([str(fake_k6), "30"], start_new_session=True)
        k6.wait()
        marker.write_text(str(k6.returncode))
        return 0

    def signal_when_k6_runs() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                interrupts.k6_process_groups(int(p)) for p in os.listdir("/proc") if p.isdigit()
                and _ppid(p) == os.getpid()):
            time.sleep(0.05)
        os.kill(os.getpid(), sig)  # to the CLI process: the supervisor's handler is installed by now

    threading.Thread(target=signal_when_k6_runs, daemon=True).start()
    started = time.monotonic()
    assert interrupts.run_supervised(work) == code
    assert time.monotonic() - started < 5
    assert marker.read_text() == str(-signal.SIGTERM)  # k6 got SIGTERM (its graceful stop), the child went on
    [line] = [ln for ln in capfd.readouterr().err.splitlines() if ln.startswith("perfpipe: interrupted")]
    assert f"by {sig.name}: k6 stopped in" in line and "its stage is recorded aborted" in line


def _ppid(pid: str) -> int | None:
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2:].split()[1])
