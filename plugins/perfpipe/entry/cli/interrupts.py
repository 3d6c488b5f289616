"""Ctrl-C, SIGTERM and SIGHUP of a local run: k6 stopped within seconds, its stage recorded `aborted`, exit
128 + the signal (130, 143, 129) with one line on stderr and no traceback.

Why a supervising parent: the run (dag.test) executes Airflow's task runner in this process, and that installs
its own SIGTERM handler at each task (the task's on_kill, never restored), so a handler of ours would be replaced
after the first task, and SIGINT would surface as a KeyboardInterrupt deep inside Airflow. So the run goes into a
forked child that ignores the terminal's SIGINT and SIGHUP, and this process only waits. On a signal it stops the
child's k6 (SIGTERM to k6's process group: k6 writes its summary and the run task records the stage `aborted`,
the path of `perfpipe stop`), tells the child to start no further k6 (SIGUSR1: a pipeline stops there), and gives
the child RECORD_S to finish recording; with no k6 running (Airflow still starting, between stages) there is
nothing to record and the child is killed at once. A second signal kills everything at once.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from perfpipe.core.k6.runner import refuse_new_runs

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}
K6_GRACE_S = 2.5  # k6 gets this long to write its summary after SIGTERM, then its group is killed
RECORD_S = 15.0  # the child's time, from the signal, to record the aborted stage and print the result
POLL_S = 0.05


def run_supervised(work: Callable[[], int]) -> int:
    """work() (the run and its printing) in a forked child; its exit code, or 128 + the signal that stopped it."""
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's exit code is what the parent returns
        code = 2
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal sends Ctrl-C to both: the parent decides
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            signal.signal(signal.SIGUSR1, _stopping)
            _die_with_parent()
            code = work()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return _supervise(child)


def _supervise(child: int) -> int:
    signals: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: signals.append(signum)) for sig in EXIT_CODES}
    try:
        status = _wait(child, signals)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signals:
        return EXIT_CODES[signals[0]]
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code  # the child killed by a signal: as a shell reports it


def _wait(child: int, signals: list[int]) -> int:
    stop_at = k6_gone_at = None
    k6_groups: list[int] = []
    child_killed = False
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            if signals and k6_gone_at is None and stop_at is not None and not any(map(_group_alive, k6_groups)):
                k6_gone_at = time.monotonic()  # k6 ended and the child finished within one poll
            if signals:
                _report(signals[0], stop_at, k6_gone_at, k6_groups, recorded=not child_killed and os.WIFEXITED(status),
                        log=after_signal_log(child))
            return status
        now = time.monotonic()
        if signals and stop_at is None:
            stop_at = now
            k6_groups = k6_process_groups(child)
            _signal_groups(k6_groups, signal.SIGTERM)
            _kill(child, signal.SIGUSR1 if k6_groups else signal.SIGKILL)
            child_killed = not k6_groups
        if stop_at is not None:
            if k6_gone_at is None and not any(_group_alive(g) for g in k6_groups):
                k6_gone_at = now
            if len(signals) > 1 or now - stop_at > RECORD_S:  # asked twice, or the child cannot finish
                _signal_groups(k6_groups, signal.SIGKILL)
                _kill(child, signal.SIGKILL)
                child_killed = True
            elif k6_gone_at is None and now - stop_at > K6_GRACE_S:
                _signal_groups(k6_groups, signal.SIGKILL)
        time.sleep(POLL_S)


def after_signal_log(child: int) -> Path:
    """Where the child's stderr goes once interrupted: the rest of the run's log (the aborted stage's task failure
    and its traceback) is kept there instead of burying the one line that says what happened."""
    return Path(os.environ.get("AIRFLOW_HOME") or ".") / "logs" / f"perfpipe-interrupted-{child}.log"


def _stopping(_signum: int, _frame) -> None:  # the child's SIGUSR1: the parent is stopping the run
    refuse_new_runs()
    try:
        path = after_signal_log(os.getpid())
        path.parent.mkdir(parents=True, exist_ok=True)
        sys.stderr.flush()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    except OSError:
        pass  # the log stays on the terminal


def _report(signum: int, stop_at: float | None, k6_gone_at: float | None, groups: list[int], recorded: bool,
            log: Path) -> None:
    name = signal.Signals(signum).name
    if not groups:
        what = "no k6 was running, nothing was sent since and nothing recorded"
    else:
        took = f" in {k6_gone_at - stop_at:.1f}s" if k6_gone_at is not None and stop_at is not None else ""
        what = f"k6 stopped{took}; " + ("its stage is recorded aborted" if recorded else
                                        "the run was ended before it recorded the stage")
        if log.is_file():
            what += f"; the run's log since: {log}"
    print(f"perfpipe: interrupted by {name}: {what} (exit {EXIT_CODES[signum]})", file=sys.stderr, flush=True)


def k6_process_groups(parent: int) -> list[int]:
    """The process groups of the k6 processes `parent` started (each k6 leads its own group, see runner)."""
    groups = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        if comm == "k6" and int(fields[1]) == parent:
            groups.append(int(fields[2]))
    return sorted(set(groups))


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_groups(groups: list[int], sig: int) -> None:
    for group in groups:
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _die_with_parent() -> None:
    """The child gets SIGTERM (Airflow's on_kill ends k6) if its supervisor dies, even by SIGKILL."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
