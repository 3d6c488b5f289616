"""Fault injectors: plan (what will be faulted, recorded in the ledger first), inject, restore (idempotent).

Each injector works on JSON-able `state` so that a different process (restore_leftovers) can undo a fault
from the ledger alone:

- process: pause = SIGSTOP the pid from pid_command and all its descendants; stop = SIGTERM the tree, SIGKILL
  what is left after STOP_GRACE_S. Restore: SIGCONT the same processes / run start_command, then pid_command must
  report a live pid. Pids are recorded with their start time so a recycled pid is never signalled.
- docker: pause/unpause or stop/start a container (by id once planned); restore verifies it is running.
- proxy: PUT/DELETE <control_url>/faults on a loopback fault proxy; restore verifies GET /faults shows no fault.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from perfpipe.app import egress
from perfpipe.app.chaos.spec import ComponentSpec, ScenarioSpec, is_loopback_host
from perfpipe.core.errors import InfrastructureError, InputError
from perfpipe.core.paths import PROJECT_ROOT

STOP_GRACE_S = 5.0  # SIGTERM -> SIGKILL
PID_COMMAND_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 5.0
DOCKER_TIMEOUT_S = 15
DOCKER_RUNNING_WAIT_S = 30.0
STATE_SETTLE_S = 2.0  # how long a signalled process may take to show its new state

State = dict[str, Any]
StateCallback = Callable[[State], None]


class ChaosError(InfrastructureError):
    """A fault could not be injected or restored (never a performance verdict)."""


class Injector:
    """plan() -> state (written to the ledger before anything happens); inject(state); restore(state)."""

    def __init__(self, component: ComponentSpec, scenario: ScenarioSpec, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None):
        self.component = component
        self.scenario = scenario
        self.env = env
        self.cwd = str(cwd or PROJECT_ROOT)

    def plan(self) -> State:
        raise NotImplementedError

    def inject(self, state: State, on_state: StateCallback | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def restore(self, state: State) -> dict[str, Any]:
        raise NotImplementedError


def injector_for(component: ComponentSpec, scenario: ScenarioSpec, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None, docker_client_factory: Callable[[], Any] | None = None) -> Injector:
    if component.kind == "process":
        return ProcessInjector(component, scenario, env, cwd)
    if component.kind == "docker":
        return DockerInjector(component, scenario, env, cwd, client_factory=docker_client_factory)
    if component.kind == "proxy":
        return ProxyInjector(component, scenario, env, cwd)
    raise ChaosError(f"unknown component kind {component.kind!r}")


# --- processes ---------------------------------------------------------------------------------------------

def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, starttime) from /proc/<pid>/stat, or None when the pid does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def process_alive(pid: int, starttime: int | None = None) -> bool:
    """Alive = exists, not a zombie and (when given) started at the recorded time, so not a recycled pid."""
    stat = proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X", "x"):
        return False
    return starttime is None or stat[2] == starttime


def descendants(root: int) -> list[int]:
    """root's descendants (children first found first), from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = proc_stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[1], []).append(int(entry.name))
    found, queue = [], [root]
    while queue:
        for child in children.get(queue.pop(0), []):
            if child not in found and child != root:
                found.append(child)
                queue.append(child)
    return found


def ancestors(pid: int) -> set[int]:
    """pid and every process above it: never ours to stop or pause."""
    seen = set()
    while pid > 0 and pid not in seen and len(seen) < 1000:
        seen.add(pid)
        stat = proc_stat(pid)
        if stat is None:
            break
        pid = stat[1]
    return seen


def run_command(argv: list[str] | tuple[str, ...], timeout_s: float, cwd: str, env: dict[str, str] | None,
                what: str) -> tuple[int, str]:
    """Run argv (no shell) bounded in time -> (exit code, output tail).

    Output goes to a temp file, not a pipe: a start command that leaves a server running in the background must
    not keep us waiting for EOF. On timeout the command's whole process group is killed.
    """
    with tempfile.TemporaryFile() as output:
        try:
            proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise ChaosError(f"{what} {list(argv)} could not run: {exc}") from None
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=5)
            output.seek(0)
            tail = output.read()[-2000:].decode(errors="replace").strip()
            raise ChaosError(f"{what} {list(argv)} did not finish within {timeout_s:g} s (killed); output: {tail}") \
                from None
        output.seek(0)
        return code, output.read()[-4000:].decode(errors="replace").strip()


class ProcessInjector(Injector):
    def _pid(self) -> int | None:
        """The component's live pid per pid_command; None when it reports 'not running' (exit != 0)."""
        code, out = run_command(self.component.pid_command, PID_COMMAND_TIMEOUT_S, self.cwd, self.env,
                                f"{self.component.name}: pid_command")
        if code != 0:
            return None
        words = out.split()
        if len(words) != 1 or not words[0].isdigit() or int(words[0]) <= 1:
            raise ChaosError(f"{self.component.name}: pid_command {list(self.component.pid_command)} must print "
                             f"one pid and exit 0, printed {out[-300:]!r}")
        pid = int(words[0])
        return pid if process_alive(pid) else None

    def _tree(self, root: int) -> list[int]:
        tree = [root] + descendants(root)
        protected = ancestors(os.getpid())
        if protected & set(tree):
            raise ChaosError(f"{self.component.name}: pid_command named pid {root}, whose process tree contains "
                             f"this chaos process or one of its parents: refused")
        return tree

    def plan(self) -> State:
        pid = self._pid()
        if pid is None:
            raise ChaosError(f"{self.component.name}: not running (pid_command {list(self.component.pid_command)} "
                             "reported no live pid): nothing to fault")
        procs = [_proc_record(p) for p in self._tree(pid)]
        return {"kind": "process", "action": self.scenario.action, "root_pid": pid,
                "processes": [p for p in procs if p is not None]}

    def inject(self, state: State, on_state: StateCallback | None = None) -> dict[str, Any]:
        if self.scenario.action == "pause":
            return self._pause(state, on_state)
        return self._stop(state)

    def _pause(self, state: State, on_state: StateCallback | None) -> dict[str, Any]:
        # Stop the known set, then re-walk: a child forked meanwhile is recorded (ledger first) and stopped too.
        for _round in range(5):
            for proc in state["processes"]:
                _signal(proc, signal.SIGSTOP)
            known = {p["pid"] for p in state["processes"]}
            new = [p for root in [state["root_pid"]] for p in descendants(root) if p not in known]
            if not new:
                break
            state["processes"].extend(r for r in map(_proc_record, new) if r is not None)
            if on_state:
                on_state(state)
        _wait_for(lambda: all(_state_of(p) in ("T", "t", None) for p in state["processes"]), STATE_SETTLE_S)
        not_stopped = [p["pid"] for p in state["processes"] if _state_of(p) not in ("T", "t", None)]
        if not_stopped:
            raise ChaosError(f"{self.component.name}: pids {not_stopped} did not stop on SIGSTOP")
        return {"paused_pids": [p["pid"] for p in state["processes"] if _state_of(p) is not None]}

    def _stop(self, state: State) -> dict[str, Any]:
        for proc in state["processes"]:
            _signal(proc, signal.SIGTERM)
        terminated = _wait_for(lambda: not any(_alive(p) for p in state["processes"]), STOP_GRACE_S)
        killed = []
        if not terminated:
            for proc in state["processes"]:
                if _alive(proc):
                    _signal(proc, signal.SIGCONT)  # a paused process cannot act on SIGTERM; harmless otherwise
                    _signal(proc, signal.SIGKILL)
                    killed.append(proc["pid"])
            if not _wait_for(lambda: not any(_alive(p) for p in state["processes"]), STATE_SETTLE_S):
                left = [p["pid"] for p in state["processes"] if _alive(p)]
                raise ChaosError(f"{self.component.name}: pids {left} still alive after SIGKILL")
        return {"stopped_pids": [p["pid"] for p in state["processes"]], "sigkilled_pids": killed}

    def restore(self, state: State) -> dict[str, Any]:
        if state.get("action") == "pause":
            for proc in state.get("processes", []):
                _signal(proc, signal.SIGCONT)
            settled = _wait_for(lambda: all(_state_of(p) not in ("T", "t") for p in state["processes"]),
                                STATE_SETTLE_S)
            if not settled:
                stuck = [p["pid"] for p in state["processes"] if _state_of(p) in ("T", "t")]
                raise ChaosError(f"{self.component.name}: pids {stuck} still stopped after SIGCONT")
            gone = [p["pid"] for p in state["processes"] if _state_of(p) is None]
            return {"resumed_pids": [p["pid"] for p in state["processes"] if p["pid"] not in gone],
                    "gone_pids": gone}
        # stop: start it again unless something already did (restore is idempotent).
        pid = self._pid()
        if pid is not None:
            return {"already_running_pid": pid}
        code, out = run_command(self.component.start_command, self.component.start_timeout_s, self.cwd, self.env,
                                f"{self.component.name}: start_command")
        if code != 0:
            raise ChaosError(f"{self.component.name}: start_command {list(self.component.start_command)} exited "
                             f"{code}: {out[-500:]}")
        pid = self._pid()
        if pid is None:
            raise ChaosError(f"{self.component.name}: start_command exited 0 but pid_command reports no live pid")
        return {"started_pid": pid}


def _proc_record(pid: int) -> dict[str, int] | None:
    stat = proc_stat(pid)
    return None if stat is None else {"pid": pid, "starttime": stat[2]}


def _state_of(proc: dict[str, int]) -> str | None:
    """The process's state letter, None when it is gone (or the pid now belongs to another process)."""
    stat = proc_stat(proc["pid"])
    if stat is None or stat[2] != proc["starttime"] or stat[0] in ("Z", "X", "x"):
        return None
    return stat[0]


def _alive(proc: dict[str, int]) -> bool:
    return _state_of(proc) is not None


def _signal(proc: dict[str, int], sig: signal.Signals) -> None:
    if _alive(proc):  # never signal a recycled pid
        try:
            os.kill(proc["pid"], sig)
        except ProcessLookupError:
            pass


def _wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


# --- docker ------------------------------------------------------------------------------------------------

class DockerInjector(Injector):
    def __init__(self, *args, client_factory: Callable[[], Any] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._client_factory = client_factory
        self._client_obj = None

    def _client(self):
        if self._client_obj is None:
            try:
                if self._client_factory is not None:
                    self._client_obj = self._client_factory()
                else:
                    import docker  # lazy: only chaos runs against containers need the SDK and an engine
                    self._client_obj = docker.from_env(timeout=DOCKER_TIMEOUT_S)
            except Exception as exc:  # docker.errors.DockerException: no engine answers
                raise ChaosError(f"{self.component.name}: no Docker engine reachable: {exc}") from None
        return self._client_obj

    def _container(self, ref: str):
        try:
            container = self._client().containers.get(ref)
            container.reload()
            return container
        except ChaosError:
            raise
        except Exception as exc:  # docker.errors.NotFound / APIError
            raise ChaosError(f"{self.component.name}: container {ref!r}: {exc}") from None

    def plan(self) -> State:
        container = self._container(self.component.container)
        if container.status != "running":
            raise ChaosError(f"{self.component.name}: container {self.component.container!r} is "
                             f"{container.status!r}, not running: nothing to fault")
        return {"kind": "docker", "action": self.scenario.action, "container": self.component.container,
                "container_id": container.id}

    def inject(self, state: State, on_state: StateCallback | None = None) -> dict[str, Any]:
        container = self._container(state["container_id"])
        try:
            if self.scenario.action == "pause":
                container.pause()
            else:
                container.stop(timeout=int(STOP_GRACE_S))
            container.reload()
        except Exception as exc:
            raise ChaosError(f"{self.component.name}: docker {self.scenario.action} failed: {exc}") from None
        expected = "paused" if self.scenario.action == "pause" else ("exited", "dead", "created")
        if container.status not in expected:
            raise ChaosError(f"{self.component.name}: container is {container.status!r} after "
                             f"{self.scenario.action}")
        return {"container_id": state["container_id"], "status": container.status}

    def restore(self, state: State) -> dict[str, Any]:
        container = self._container(state.get("container_id") or state["container"])
        before = container.status
        try:
            if before == "paused":
                container.unpause()
            elif before != "running":
                container.start()
        except Exception as exc:
            raise ChaosError(f"{self.component.name}: docker restore from {before!r} failed: {exc}") from None

        def running() -> bool:
            container.reload()
            return container.status == "running"

        if not _wait_for(running, DOCKER_RUNNING_WAIT_S, interval_s=0.2):
            raise ChaosError(f"{self.component.name}: container is {container.status!r}, not running, "
                             f"{DOCKER_RUNNING_WAIT_S:g} s after restore")
        return {"container_id": container.id, "was": before, "status": "running"}


# --- fault proxy -------------------------------------------------------------------------------------------

def fault_active(faults: Any) -> bool:
    """GET /faults ({"latency_ms": int, "partition": bool}) shows a fault when latency_ms > 0 or partition is true.

    An answer without either field is not known to be clean, so it counts as a fault (restore then fails loudly
    instead of reporting a link as healthy that it cannot read)."""
    if isinstance(faults, dict) and isinstance(faults.get("faults"), dict):
        faults = faults["faults"]
    if not isinstance(faults, dict) or not ({"latency_ms", "partition"} & set(faults)):
        return True
    return bool(faults.get("partition")) or bool(faults.get("latency_ms") or 0)


class ProxyInjector(Injector):
    destination: egress.Destination | None = None

    def _call(self, method: str, body: dict | None = None) -> Any:
        url = f"{self.component.control_url}/faults"
        host = urlsplit(url).hostname or ""
        if not is_loopback_host(host):  # validated already; re-checked so no code path can send it elsewhere
            raise ChaosError(f"{self.component.name}: control_url host {host!r} is not loopback: refused")
        if self.destination is None:  # loopback is not enough: the allowlist names the ports perfpipe may reach
            try:
                self.destination = egress.checked_destination(
                    url, f"chaos.components.{self.component.name}.control_url")
            except InputError as exc:
                raise ChaosError(f"{self.component.name}: {exc}") from None
        data = json.dumps(body).encode() if body is not None else None
        try:
            reply = egress.send(self.destination, method, data,
                                {"Content-Type": "application/json"} if data else {}, timeout=HTTP_TIMEOUT_S)
        except egress.EgressError as exc:
            raise ChaosError(f"{self.component.name}: {exc}") from None
        if reply.status >= 300:  # a redirect included: never followed
            raise ChaosError(f"{self.component.name}: {method} {url} -> HTTP {reply.status}: "
                             f"{reply.body[:300].decode(errors='replace')}")
        raw = reply.body
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise ChaosError(f"{self.component.name}: {method} {url} answered non-JSON: {raw[:200]!r}") from None

    def plan(self) -> State:
        current = self._call("GET")
        if fault_active(current):
            raise ChaosError(f"{self.component.name}: proxy already has a fault active ({current}); restore it "
                             "first (perfpipe chaos restore)")
        return {"kind": "proxy", "action": self.scenario.action, "control_url": self.component.control_url}

    def inject(self, state: State, on_state: StateCallback | None = None) -> dict[str, Any]:
        fault = ({"latency_ms": self.scenario.latency_ms, "partition": False} if self.scenario.action == "latency"
                 else {"latency_ms": 0, "partition": True})
        self._call("PUT", fault)
        shown = self._call("GET")
        if not fault_active(shown):
            raise ChaosError(f"{self.component.name}: PUT /faults {fault} accepted but GET /faults shows {shown}")
        return {"fault": fault}

    def restore(self, state: State) -> dict[str, Any]:
        self._call("DELETE")
        shown = self._call("GET")
        if fault_active(shown):
            raise ChaosError(f"{self.component.name}: DELETE /faults done but GET /faults still shows {shown}")
        return {"faults": shown}
