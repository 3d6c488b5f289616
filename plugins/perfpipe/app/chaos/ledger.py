"""The chaos ledger: one JSON file per fault, written before it is injected, removed only after it is restored.

A holder that dies without restoring (SIGKILL, OOM, reboot of the worker) leaves its entry behind;
restore_leftovers() undoes every such fault from the entry alone. It runs before every chaos run and from
`perfpipe chaos restore`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from perfpipe.app.chaos.injectors import (PID_COMMAND_TIMEOUT_S, STATE_SETTLE_S, ChaosError, injector_for,
                                      process_alive, proc_stat)
from perfpipe.app.chaos.spec import ComponentSpec, ScenarioSpec
from perfpipe.core.paths import chaos_ledger_dir, safe_component

log = logging.getLogger(__name__)

LEDGER_VERSION = 1
RESTORE_ATTEMPTS = 3
RESTORE_RETRY_PAUSE_S = 1.0
# Only these environment variables are kept in the ledger (a leftover restore re-runs start_command with them,
# e.g. PERFPIPE_DEMO_REDIS_PORT); anything that looks like a secret is never written to disk.
_ENV_PREFIX = "PERFPIPE_"
_SECRET_MARKERS = ("PASSWORD", "TOKEN", "SECRET", "KEY", "CREDENTIAL", "AUTH")


def ledger_dir(path: str | Path | None = None) -> Path:
    return Path(path).resolve() if path else chaos_ledger_dir().resolve()


def restore_budget_s(component: ComponentSpec) -> float:
    """Worst-case time for the holder's restore with retries: after this, a live holder counts as hung."""
    per_attempt = 30.0
    if component.kind == "process":
        per_attempt = component.start_timeout_s + 2 * PID_COMMAND_TIMEOUT_S + STATE_SETTLE_S
    return RESTORE_ATTEMPTS * (per_attempt + RESTORE_RETRY_PAUSE_S) + 30.0


def recorded_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items()
            if k.startswith(_ENV_PREFIX) and not any(marker in k.upper() for marker in _SECRET_MARKERS)}


def new_entry_path(directory: Path, scenario: str) -> Path:
    return directory / f"{safe_component(scenario)}-{os.getpid()}-{uuid.uuid4().hex[:8]}.json"


def write_entry(path: Path, entry: dict[str, Any]) -> None:
    """Atomic (write + fsync + rename): a reader never sees half an entry, even after a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(entry, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def remove_entry(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def entries(directory: Path) -> list[tuple[Path, dict[str, Any] | None]]:
    """Every ledger entry (None for an unreadable file), oldest first."""
    if not directory.is_dir():
        return []
    def mtime(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except FileNotFoundError:  # removed by its holder meanwhile
            return 0.0

    found = []
    for path in sorted(directory.glob("*.json"), key=mtime):
        try:
            found.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            found.append((path, None))
    return found


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One ledger writer/restorer at a time (flock: released by the kernel if the holder of it dies)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def holder_alive(entry: dict[str, Any]) -> bool:
    return process_alive(int(entry.get("holder_pid") or 0), entry.get("holder_starttime"))


def holder_starttime() -> int:
    stat = proc_stat(os.getpid())
    return stat[2] if stat else 0


def restore_entry(entry: dict[str, Any], environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Undo the fault an entry describes (with retries); raises ChaosError when it stays faulted."""
    component = ComponentSpec.from_dict(entry["component"])
    scenario = ScenarioSpec.from_dict(entry["scenario_spec"])
    env = {**(os.environ if environ is None else environ), **(entry.get("env") or {})}
    injector = injector_for(component, scenario, env=env, cwd=entry.get("cwd"))
    last: Exception | None = None
    for attempt in range(1, RESTORE_ATTEMPTS + 1):
        try:
            return {**injector.restore(entry["state"]), "attempts": attempt}
        except Exception as exc:  # any failure: try again, bounded
            last = exc
            log.warning("chaos restore of %s attempt %d failed: %s", component.name, attempt, exc)
            if attempt < RESTORE_ATTEMPTS:
                time.sleep(RESTORE_RETRY_PAUSE_S)
    raise ChaosError(f"restore of {scenario.name} ({component.name} {scenario.action}) failed "
                     f"{RESTORE_ATTEMPTS} times: {last}")


def restore_leftovers(directory: str | Path | None = None, environ: dict[str, str] | None = None
                      ) -> list[dict[str, Any]]:
    """Restore every fault whose holder is gone (or hung past its restore deadline); remove those entries.

    Returns one dict per entry acted on: file, scenario, component, action, holder_pid, ok, detail or error.
    Faults held by a live holder within its deadline are left alone: that holder restores them itself.
    """
    directory = ledger_dir(directory)
    results = []
    with locked(directory):
        for path, entry in entries(directory):
            if entry is None:
                results.append({"file": str(path), "ok": False, "error": "unreadable ledger entry (left in place)"})
                continue
            if holder_alive(entry):
                if time.time() <= float(entry.get("restore_by") or 0):
                    continue
                _kill_hung_holder(entry)
            result = {"file": str(path), "scenario": entry.get("scenario"),
                      "component": (entry.get("component") or {}).get("name"), "action": entry.get("action"),
                      "holder_pid": entry.get("holder_pid")}
            try:
                result.update(ok=True, detail=restore_entry(entry, environ))
                remove_entry(path)
            except Exception as exc:  # keep the entry: the next call tries again
                result.update(ok=False, error=str(exc))
                entry["last_restore_error"] = str(exc)
                write_entry(path, entry)
            log.info("chaos leftover %s: %s", path.name, result)
            results.append(result)
    return results


def _kill_hung_holder(entry: dict[str, Any]) -> None:
    """A holder still alive after its restore deadline is hung: end it (only if it really is our holder)."""
    pid = int(entry["holder_pid"])
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"perfpipe.app.chaos.holder" not in cmdline:
        return
    log.warning("chaos holder pid %d is past its restore deadline: killing it and restoring its fault", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while holder_alive(entry) and time.monotonic() < deadline:
        time.sleep(0.05)
