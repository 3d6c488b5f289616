"""The fault holder: a separate process (own session) that injects one fault and always restores it.

    hold = FaultHold.start(spec, "cache_failure", hold_s=60, on_event=print)  # returns once injected, or raises
    hold.inject_time   # epoch seconds when the fault was in place
    hold.wait()        # -> restore event, after the holder restored the fault at hold_s
    hold.restore()     # restore now; idempotent (on_kill / finally)

`python -m perfpipe.app.chaos.holder --request JSON` is the holder itself. It writes a ledger entry, injects, prints
JSON lines ({"event": "inject"|"restore"|"error", ...}) and restores when hold_s has elapsed, when its stdin
reaches EOF or its parent changes (the parent died, SIGKILL included), or on SIGTERM/SIGINT/SIGHUP. It is in
its own session, so signals to the task's process group do not reach it; the ledger entry is removed only
after a successful restore, so restore_leftovers() can undo what a killed holder could not.
Holder exit codes: 0 injected and restored; 1 inject failed, partial fault restored; 2 bad request or plan failed
(nothing injected); 3 signalled before inject (nothing injected); 4 restore failed (ledger entry kept).
`python -m perfpipe.app.chaos.holder --restore-leftovers` restores leftovers and prints them as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

from perfpipe.app.chaos import ledger
from perfpipe.app.chaos.injectors import PID_COMMAND_TIMEOUT_S, STOP_GRACE_S, ChaosError, injector_for
from perfpipe.app.chaos.spec import ChaosSpec, parse_chaos
from perfpipe.core.errors import InputError
from perfpipe.core.paths import PROJECT_ROOT

MAX_HOLD_S = 6 * 3600
POLL_S = 0.1  # how often the hold loop also checks the parent pid and the clock
RESTORE_REQUEST = b"restore\n"
# plan + inject worst case (pid_command twice, SIGTERM grace, SIGKILL settle) plus interpreter start-up.
INJECT_TIMEOUT_S = 2 * PID_COMMAND_TIMEOUT_S + STOP_GRACE_S + 30

EventCallback = Callable[[dict[str, Any]], None]


def validate_hold_s(hold_s: Any, field: str = "hold_s") -> float:
    if isinstance(hold_s, bool) or not isinstance(hold_s, (int, float)) or not 0 < hold_s <= MAX_HOLD_S:
        raise InputError(field, f"expected seconds in (0, {MAX_HOLD_S}], got {hold_s!r}")
    return float(hold_s)


# --- the holder process --------------------------------------------------------------------------------------

class _Holder:
    def __init__(self, request: dict[str, Any]):
        self.spec = parse_chaos(request["target"], request["chaos"])
        self.scenario = self.spec.scenario(request["scenario"])
        self.component = self.spec.component_of(self.scenario)
        self.hold_s = validate_hold_s(request["hold_s"])
        self.ledger_dir = ledger.ledger_dir(request.get("ledger_dir"))
        self.cwd = request.get("cwd") or str(PROJECT_ROOT)
        self.injector = injector_for(self.component, self.scenario, cwd=self.cwd)
        self.parent_pid = os.getppid()
        self.signal_name: str | None = None
        self.entry_path: Path | None = None
        self.entry: dict[str, Any] = {}
        self._stdout_ok = True

    # Events go to the parent on stdout; a dead parent must not stop the restore.
    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "time": time.time(), "scenario": self.scenario.name,
                           "component": self.component.name, "action": self.scenario.action, **fields},
                          default=str)
        if self._stdout_ok:
            try:
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
            except (BrokenPipeError, OSError):
                self._stdout_ok = False
                with contextlib.suppress(OSError):
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, sys.stdout.fileno())
                    os.dup2(devnull, sys.stderr.fileno())
        with contextlib.suppress(OSError):  # evidence that survives the parent
            with open(self.ledger_dir / "events.log", "a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    def _on_signal(self, signum, _frame) -> None:
        self.signal_name = signal.Signals(signum).name

    def _save(self, **changes: Any) -> None:
        self.entry.update(changes)
        ledger.write_entry(self.entry_path, self.entry)

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        self.ledger_dir.mkdir(parents=True, exist_ok=True)

        started = time.monotonic()
        try:
            state = self.injector.plan()
        except Exception as exc:
            self.emit("error", stage="plan", message=str(exc), ok=False)
            return 2
        with ledger.locked(self.ledger_dir):
            busy = [e for _, e in ledger.entries(self.ledger_dir)
                    if e and e.get("target") == self.spec.target
                    and (e.get("component") or {}).get("name") == self.component.name]
            if busy:
                self.emit("error", stage="plan", ok=False,
                          message=f"component {self.component.name!r} already has a fault in the ledger "
                                  f"({busy[0].get('scenario')}, holder pid {busy[0].get('holder_pid')}); "
                                  "run `perfpipe chaos restore` (restore_leftovers) first")
                return 2
            self.entry_path = ledger.new_entry_path(self.ledger_dir, self.scenario.name)
            self._save(version=ledger.LEDGER_VERSION, target=self.spec.target, scenario=self.scenario.name,
                       scenario_spec=self.scenario.to_dict(), component=self.component.to_dict(),
                       action=self.scenario.action, holder_pid=os.getpid(),
                       holder_starttime=ledger.holder_starttime(), parent_pid=self.parent_pid, cwd=self.cwd,
                       env=ledger.recorded_env(), state=state, status="injecting", created=time.time(),
                       deadline=time.time() + self.hold_s + ledger.restore_budget_s(self.component),
                       restore_by=time.time() + self.hold_s + 2 * ledger.restore_budget_s(self.component))
        if self.signal_name:  # told to stop before anything was done
            ledger.remove_entry(self.entry_path)
            self.emit("error", stage="plan", ok=False, message=f"{self.signal_name} before inject: nothing injected")
            return 3

        try:
            detail = self.injector.inject(state, on_state=lambda s: self._save(state=s))
        except Exception as exc:
            self.emit("error", stage="inject", message=str(exc), ok=False)
            return 1 if self._restore("inject_failed", time.monotonic()) else 4
        inject_time = time.time()
        hold_until = time.monotonic() + self.hold_s
        self._save(state=state, status="injected", inject_time=inject_time,
                   deadline=inject_time + self.hold_s + ledger.restore_budget_s(self.component),
                   restore_by=inject_time + self.hold_s + 2 * ledger.restore_budget_s(self.component))
        self.emit("inject", time=inject_time, detail=detail, duration_s=round(time.monotonic() - started, 4),
                  hold_s=self.hold_s, holder_pid=os.getpid(), ledger=str(self.entry_path))
        reason = self._hold(hold_until, wake_r)
        return 0 if self._restore(reason, time.monotonic()) else 4

    def _hold(self, hold_until: float, wake_r: int) -> str:
        stdin_fd = sys.stdin.fileno()
        while True:
            if self.signal_name:
                return f"signal:{self.signal_name}"
            remaining = hold_until - time.monotonic()
            if remaining <= 0:
                return "hold_elapsed"
            if os.getppid() != self.parent_pid:
                return "parent_gone"
            readable, _, _ = select.select([stdin_fd, wake_r], [], [], min(remaining, POLL_S))
            if stdin_fd in readable:
                data = os.read(stdin_fd, 4096)
                if not data:
                    return "parent_gone"  # EOF: the parent closed stdin or died
                if RESTORE_REQUEST.strip() in data:
                    return "requested"
            if wake_r in readable:
                with contextlib.suppress(BlockingIOError, OSError):
                    os.read(wake_r, 512)

    def _restore(self, reason: str, started: float) -> bool:
        self._save(status="restoring", restore_reason=reason)
        try:
            detail = ledger.restore_entry(self.entry)
        except Exception as exc:
            self._save(status="restore_failed", last_restore_error=str(exc))
            self.emit("restore", ok=False, reason=reason, detail={"error": str(exc)},
                      duration_s=round(time.monotonic() - started, 4), ledger=str(self.entry_path))
            return False
        ledger.remove_entry(self.entry_path)
        self.emit("restore", ok=True, reason=reason, detail=detail, duration_s=round(time.monotonic() - started, 4))
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perfpipe.app.chaos.holder")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--request", help="JSON: target, chaos, scenario, hold_s, ledger_dir, cwd")
    group.add_argument("--restore-leftovers", action="store_true", help="restore faults of dead holders")
    parser.add_argument("--ledger-dir", help="with --restore-leftovers (default: perfpipe.core.paths)")
    args = parser.parse_args(argv)
    if args.restore_leftovers:
        results = ledger.restore_leftovers(args.ledger_dir)
        print(json.dumps(results, indent=1, default=str))
        return 0 if all(r.get("ok") for r in results) else 1
    try:
        holder = _Holder(json.loads(args.request))
    except (InputError, ValueError, KeyError) as exc:
        print(json.dumps({"event": "error", "time": time.time(), "stage": "request", "ok": False,
                          "message": f"bad holder request: {exc}"}), flush=True)
        return 2
    return holder.run()


# --- the parent's handle -------------------------------------------------------------------------------------

class FaultHold:
    """A running holder process; see the module docstring."""

    def __init__(self, proc: subprocess.Popen, scenario: str, hold_s: float, budget_s: float,
                 on_event: EventCallback | None, ledger_dir: Path):
        self.proc = proc
        self.scenario = scenario
        self.hold_s = hold_s
        self._budget_s = budget_s
        self._on_event = on_event
        self._ledger_dir = ledger_dir
        self.events: list[dict[str, Any]] = []
        self.inject_event: dict[str, Any] | None = None
        self.restore_event: dict[str, Any] | None = None
        self.error_event: dict[str, Any] | None = None
        self._changed = threading.Condition()
        self._stderr_tail: deque[str] = deque(maxlen=40)
        self._stdout_done = False
        self._lock = threading.RLock()  # restore() may be re-entered from on_kill's signal handler
        threading.Thread(target=self._read_stdout, name=f"chaos-holder-{proc.pid}-out", daemon=True).start()
        threading.Thread(target=self._read_stderr, name=f"chaos-holder-{proc.pid}-err", daemon=True).start()

    @classmethod
    def start(cls, spec: ChaosSpec, scenario_name: str | None = None, hold_s: float = 60,
              on_event: EventCallback | None = None, *, inject_timeout_s: float = INJECT_TIMEOUT_S,
              ledger_dir: str | Path | None = None, cwd: str | Path | None = None,
              env: dict[str, str] | None = None) -> FaultHold:
        """Start the holder; returns once the fault is in place. Raises InputError (bad scenario/hold_s) before
        anything starts, ChaosError when the fault could not be injected (whatever was partly done is restored)."""
        scenario = spec.scenario(scenario_name)
        hold_s = validate_hold_s(hold_s)
        directory = ledger.ledger_dir(ledger_dir)
        request = {"target": spec.target, "chaos": spec.to_dict(), "scenario": scenario.name, "hold_s": hold_s,
                   "ledger_dir": str(directory), "cwd": str(cwd or PROJECT_ROOT)}
        child_env = dict(os.environ if env is None else env)
        # The holder imports perfpipe from wherever this process did (plugins/ under Airflow, or the venv).
        package_parent = str(Path(__file__).resolve().parents[3])
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, child_env.get("PYTHONPATH")) if p)
        proc = subprocess.Popen([sys.executable, "-m", "perfpipe.app.chaos.holder", "--request", json.dumps(request)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=str(cwd or PROJECT_ROOT), env=child_env, start_new_session=True)
        hold = cls(proc, scenario.name, hold_s, ledger.restore_budget_s(spec.component_of(scenario)), on_event,
                   directory)
        injected = hold._wait_for(lambda: hold.inject_event or hold.error_event or hold._stdout_done,
                                  inject_timeout_s)
        if hold.inject_event:
            return hold
        if not injected:
            restored = hold.restore()
            raise ChaosError(f"chaos {scenario.name}: not injected within {inject_timeout_s:g} s "
                             f"(restore ok={restored.get('ok')})")
        hold._reap(hold._budget_s)
        message = (hold.error_event or {}).get("message") or f"holder exited {proc.returncode}: {hold._stderr()}"
        restore = hold.restore_event
        suffix = "" if restore is None else f" (partial fault restored: ok={restore.get('ok')})"
        raise ChaosError(f"chaos {scenario.name}: {message}{suffix}")

    @property
    def inject_time(self) -> float | None:
        return self.inject_event["time"] if self.inject_event else None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the holder restored the fault -> its restore event (check `ok`).

        A holder that died without restoring (killed) is replaced here: its ledger entry is restored directly."""
        if timeout is None:
            elapsed = time.time() - (self.inject_time or time.time())
            timeout = max(0.0, self.hold_s - elapsed) + self._budget_s + 10
        self._wait_for(lambda: self.restore_event or self._stdout_done, timeout)
        if self.restore_event is None and not self._stdout_done:
            raise ChaosError(f"chaos {self.scenario}: holder pid {self.pid} did not restore within {timeout:g} s")
        self._reap(10)
        if self.restore_event is None:
            self.restore_event = self._restore_from_ledger()
        return self.restore_event

    def restore(self, timeout: float | None = None) -> dict[str, Any]:
        """Restore now (idempotent). If the holder does not finish in time it is killed and the fault restored
        from the ledger here."""
        with self._lock:
            if self.restore_event is not None:
                return self.restore_event
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.write(RESTORE_REQUEST)
                self.proc.stdin.flush()
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
            timeout = self._budget_s + 10 if timeout is None else timeout
            try:
                return self.wait(timeout)
            except ChaosError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                self._reap(10)
                self.restore_event = self._restore_from_ledger()
                return self.restore_event

    def __enter__(self) -> FaultHold:
        return self

    def __exit__(self, *exc_info) -> None:
        self.restore()

    # internals

    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                self._stderr_tail.append(raw.decode(errors="replace").rstrip())
                continue
            with self._changed:
                self.events.append(event)
                kind = event.get("event")
                if kind == "inject":
                    self.inject_event = event
                elif kind == "restore":
                    self.restore_event = event
                elif kind == "error":
                    self.error_event = event
                self._changed.notify_all()
            if self._on_event is not None:
                try:
                    self._on_event(event)
                except Exception as exc:  # a faulty callback must not stop us from seeing the restore
                    self._stderr_tail.append(f"on_event callback failed: {exc!r}")
        with self._changed:
            self._stdout_done = True
            self._changed.notify_all()

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            self._stderr_tail.append(raw.decode(errors="replace").rstrip())

    def _stderr(self) -> str:
        return " | ".join(list(self._stderr_tail)[-10:])

    def _wait_for(self, predicate: Callable[[], Any], timeout_s: float) -> bool:
        with self._changed:
            return bool(self._changed.wait_for(predicate, timeout=timeout_s))

    def _reap(self, timeout_s: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout_s)

    def _restore_from_ledger(self) -> dict[str, Any]:
        """The holder is gone without a restore event: undo its fault from its ledger entry, if any."""
        started = time.monotonic()
        path = Path(self.inject_event["ledger"]) if self.inject_event and self.inject_event.get("ledger") else None
        entry = next((e for p, e in ledger.entries(self._ledger_dir) if e and
                      (p == path or e.get("holder_pid") == self.pid)), None)
        event = {"event": "restore", "time": time.time(), "scenario": self.scenario, "reason": "holder_gone",
                 "holder_exit": self.proc.returncode}
        if entry is None:
            return {**event, "ok": True, "detail": {"note": "no ledger entry left: nothing to restore"},
                    "duration_s": round(time.monotonic() - started, 4)}
        try:
            detail = ledger.restore_entry(entry)
        except Exception as exc:
            return {**event, "ok": False, "detail": {"error": str(exc)},
                    "duration_s": round(time.monotonic() - started, 4)}
        for p, e in ledger.entries(self._ledger_dir):
            if e and e.get("holder_pid") == self.pid:
                ledger.remove_entry(p)
        return {**event, "ok": True, "detail": detail, "duration_s": round(time.monotonic() - started, 4)}


def restore_leftovers(ledger_dir: str | Path | None = None, environ: dict[str, str] | None = None
                      ) -> list[dict[str, Any]]:
    """Restore the faults of dead (or hung) holders; see perfpipe.app.chaos.ledger.restore_leftovers."""
    return ledger.restore_leftovers(ledger_dir, environ)


if __name__ == "__main__":
    sys.exit(main())
