"""Run the local k6 binary in its own process group, stream its output, and never leave it behind."""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from perfpipe.core.errors import InfrastructureError, InputError
from perfpipe.core.k6.command import EXIT_INVALID_CONFIG, EXIT_SCRIPT_ERROR, K6Invocation, base_env, inspect_argv

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass
class K6Outcome:
    exit_code: int
    duration_s: float
    aborted: bool  # stopped from outside (kill, timeout, stop request)
    timed_out: bool


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def redact_line(line: str) -> str:
    """k6 output with every registered secret (header values, the InfluxDB password) replaced by ***: a user's
    script may print what it sends, and k6.log is kept with the reports."""
    try:
        # Airflow's secrets masker, when running inside Airflow
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # outside Airflow no secret was registered
        return line
    return str(redact(line))


# Path-valued variables naming the caller's scratch folder: their *content* is part of the key instead.
_INSPECT_PATH_VARS = ("PERFPIPE_RUN_CONFIG", "K6_WEB_DASHBOARD_EXPORT")
INSPECT_CACHE_TTL_S = 300.0
_inspected: dict[str, tuple[float, dict]] = {}


def inspect_key(binary: str, script: str, env: dict[str, str]) -> str:
    """What k6 inspect's answer depends on: the binary, the script's content (and the bundled library next to
    it), the environment k6 sees, and the run config the script reads (its content, not its scratch path)."""

    digest = hashlib.sha256()
    digest.update(binary.encode() + b"\0")
    script_path = Path(script)
    digest.update(script_path.read_bytes())
    lib = script_path.parent / "lib"
    if lib.is_dir():
        for path in sorted(lib.rglob("*.js")):
            digest.update(str(path.relative_to(lib)).encode() + b"\0" + path.read_bytes())
    full_env = {**base_env(), **env}
    for key in sorted(full_env):
        value = full_env[key]
        if key in _INSPECT_PATH_VARS:
            try:
                value = Path(value).read_text(encoding="utf-8")
            except OSError:
                value = "<missing>"
        digest.update(f"{key}={value}\0".encode())
    return digest.hexdigest()


def clear_inspect_cache() -> None:
    _inspected.clear()


def validate_script(binary: str, script: str, env: dict[str, str], timeout_s: float = 60) -> dict:
    """Run k6's init context without load and return k6's execution requirements (maxVUs, totalDuration...).

    A script or config error becomes an InputError (exit 2); k6 itself failing is an InfrastructureError.
    Memoized in this process by `inspect_key` (successes only) for INSPECT_CACHE_TTL_S.
    """
    if not Path(script).is_file():
        raise InputError("script", f"k6 script {script!r} not found")
    key = inspect_key(binary, script, env)
    hit = _inspected.get(key)
    if hit is not None and time.monotonic() - hit[0] < INSPECT_CACHE_TTL_S:
        return json.loads(json.dumps(hit[1]))
    requirements = _run_inspect(binary, script, env, timeout_s)
    _inspected[key] = (time.monotonic(), requirements)
    return json.loads(json.dumps(requirements))


def _run_inspect(binary: str, script: str, env: dict[str, str], timeout_s: float) -> dict:
    log.info("checks: k6 inspect %s", script)
    try:
        proc = subprocess.run(inspect_argv(binary, script), env={**base_env(), **env}, capture_output=True,
                              text=True, timeout=timeout_s, start_new_session=True)
    except subprocess.TimeoutExpired:
        raise InputError("script", f"k6 inspect of {script} did not finish in {timeout_s:.0f}s") from None
    detail = _error_lines(proc.stderr or proc.stdout)
    if proc.returncode in (EXIT_SCRIPT_ERROR, EXIT_INVALID_CONFIG):  # the user's script: bad input, exit 2
        raise InputError("script", f"k6 rejected {script} (exit {proc.returncode}): {detail}")
    if proc.returncode != 0:
        raise InfrastructureError(f"k6 inspect failed (exit {proc.returncode}): {detail}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise InfrastructureError(f"k6 inspect printed no execution requirements: {proc.stdout[-500:]}") from None


def _error_lines(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if "level=error" in ln or "Error" in ln or "error" in ln]
    return " | ".join((errors or lines)[-5:])[:2000]


_refusing = threading.Event()


def refuse_new_runs() -> None:
    """From now on this process starts no k6 (the CLI was interrupted: a pipeline must not go on to a next stage).
    Safe in a signal handler."""
    _refusing.set()


class LocalK6Process:
    """One k6 run. `stop()` may be called from another thread (Airflow's on_kill) or a signal handler."""

    def __init__(self, invocation: K6Invocation, log_file: Path, timeout_s: float, stop_grace_s: float = 30):
        self.invocation = invocation
        self.log_file = log_file
        self.timeout_s = timeout_s
        self.stop_grace_s = stop_grace_s
        self._proc: subprocess.Popen | None = None
        self._stop_requested = threading.Event()
        self._timed_out = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def run(self) -> K6Outcome:
        if _refusing.is_set():
            raise InfrastructureError("interrupted: k6 was not started")
        started = time.monotonic()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log.info("k6: %s", self.invocation.loggable_argv())
        try:
            self._proc = subprocess.Popen(
                self.invocation.argv, env={**base_env(), **self.invocation.env}, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, bufsize=1,
                start_new_session=True,  # its own process group: we can end k6 and anything it spawned
                preexec_fn=_die_with_parent)
        except OSError as exc:
            raise InfrastructureError(f"cannot start k6: {exc}") from None
        watchdog = threading.Thread(target=self._watchdog, name="k6-watchdog", daemon=True)
        watchdog.start()
        try:
            with open(self.log_file, "w", encoding="utf-8") as out:
                assert self._proc.stdout is not None
                for line in self._proc.stdout:
                    line = redact_line(line)
                    out.write(line)
                    stripped = line.rstrip()
                    if stripped:
                        log.info("k6 | %s", stripped)
            exit_code = self._proc.wait()
        finally:
            self._terminate_group()
        return K6Outcome(exit_code=exit_code, duration_s=time.monotonic() - started,
                         aborted=self._stop_requested.is_set(), timed_out=self._timed_out)

    def _watchdog(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while self._proc is not None and self._proc.poll() is None:
            if time.monotonic() > deadline:
                log.error("k6 ran past its %.0fs limit: stopping it", self.timeout_s)
                self._timed_out = True
                self.stop()
                return
            time.sleep(0.5)

    def stop(self, grace_s: float | None = None) -> None:
        """Graceful stop: SIGTERM lets k6 finish its summary and flush metrics; SIGKILL the group after a grace."""
        self._stop_requested.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        grace_s = self.stop_grace_s if grace_s is None else grace_s
        self._signal_group(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            log.warning("k6 did not stop within %.0fs: killing its process group", grace_s)
            self._signal_group(signal.SIGKILL)

    def _terminate_group(self) -> None:
        """Whatever happened (an exception while streaming included), k6 does not survive us."""
        if self._proc is not None and self._proc.poll() is None:
            self.stop()

    def _signal_group(self, sig: int) -> None:
        if self._proc is None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
