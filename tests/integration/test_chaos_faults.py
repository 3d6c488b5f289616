"""Chaos faults against real processes: a small HTTP server (with a child) run by a real control script, a real
redis-server when installed, a stdlib stub of the fault proxy's control API, a Docker engine when one answers.

Every server binds 127.0.0.1 on a free port and ends itself after SERVER_MAX_LIFETIME_S even if a test crashes.
"""

from __future__ import annotations

import http.server
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import K6_TEST_IMAGE  # noqa: E402  (tests/ is on sys.path)
from perfpipe.app.chaos import ChaosError, FaultHold, parse_chaos, restore_leftovers
from perfpipe.app.chaos.injectors import proc_stat
from perfpipe.app.chaos.ledger import entries, restore_entry

pytestmark = pytest.mark.integration

SERVER_MAX_LIFETIME_S = 600
PORT_ENV = "PERFPIPE_CHAOS_TEST_PORT"  # PERFPIPE_*: recorded in the ledger, so a leftover restore finds the port
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
TIMINGS: dict[str, list[float]] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timing(name: str, seconds: float) -> None:
    TIMINGS.setdefault(name, []).append(seconds)


@pytest.fixture(scope="module", autouse=True)
def print_timings():
    yield
    for name, values in sorted(TIMINGS.items()):
        values = sorted(values)
        print(f"\nCHAOS TIMING {name}: n={len(values)} min={values[0] * 1000:.1f}ms "
              f"median={values[len(values) // 2] * 1000:.1f}ms max={values[-1] * 1000:.1f}ms")


SERVER_PY = textwrap.dedent(f"""
    import http.server, json, os, subprocess, sys, threading, time
    port = int(sys.argv[1])
    # A child process, so pause/stop must handle the whole tree; it leaves when its parent is gone.
    child = subprocess.Popen([sys.executable, "-c",
        "import os, time\\nparent = os.getppid()\\nfor _ in range({SERVER_MAX_LIFETIME_S * 5}):\\n"
        "    time.sleep(0.2)\\n    if os.getppid() != parent: break"])
    threading.Timer({SERVER_MAX_LIFETIME_S}, lambda: os._exit(0)).start()  # never outlive the tests

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({{"pid": os.getpid(), "child": child.pid}}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
""")

CONTROL_SH = textwrap.dedent(f"""\
    #!/usr/bin/env bash
    # pid: print the server's pid (exit 1 when not running); start: start it, return once /health answers.
    set -euo pipefail
    DIR="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
    PORT="${{{PORT_ENV}:?}}"
    PIDFILE="$DIR/server.pid"
    alive() {{
        [[ -s "$PIDFILE" ]] || return 1
        local pid state
        pid="$(cat "$PIDFILE")"
        state="$(awk '{{print $3}}' "/proc/$pid/stat" 2>/dev/null)" || return 1
        [[ -n "$state" && "$state" != Z ]] || return 1
        echo "$pid"
    }}
    case "$1" in
        pid) alive ;;
        start)
            alive >/dev/null && exit 0
            setsid nohup "{sys.executable}" "$DIR/server.py" "$PORT" >>"$DIR/server.log" 2>&1 </dev/null &
            echo $! >"$PIDFILE"
            for _ in $(seq 1 100); do
                curl --noproxy '*' -sf -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health" && exit 0
                sleep 0.1
            done
            echo "server did not answer on port $PORT" >&2; exit 1 ;;
        *) exit 2 ;;
    esac
""")


class Component:
    """The HTTP server under test, run by its control script (exactly as a target's chaos block would)."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.port = free_port()
        (directory / "server.py").write_text(SERVER_PY)
        self.control = directory / "control.sh"
        self.control.write_text(CONTROL_SH)
        self.env = {**os.environ, PORT_ENV: str(self.port)}

    def chaos(self, **component_overrides) -> dict:
        cache = {"kind": "process", "pid_command": ["bash", str(self.control), "pid"],
                 "start_command": ["bash", str(self.control), "start"], "start_timeout_s": 20,
                 **component_overrides}
        return {"components": {"cache": cache},
                "scenarios": {"cache_pause": {"component": "cache", "action": "pause"},
                              "cache_stop": {"component": "cache", "action": "stop"}},
                "default_scenario": "cache_pause"}

    def spec(self, **overrides):
        return parse_chaos("chaostest", self.chaos(**overrides))

    def start(self) -> None:
        subprocess.run(["bash", str(self.control), "start"], env=self.env, check=True, timeout=30)

    def answer(self, timeout: float = 1.0) -> dict | None:
        try:
            with _NO_PROXY.open(f"http://127.0.0.1:{self.port}/health", timeout=timeout) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def pids(self) -> list[int]:
        """The server's pid and its child's (from the pidfile and /proc, not from the server)."""
        try:
            root = int((self.dir / "server.pid").read_text())
        except (OSError, ValueError):
            return []
        kids = [int(p) for p in os.listdir("/proc") if p.isdigit() and (proc_stat(int(p)) or ("", 0))[1] == root]
        return [root] + kids

    def kill(self) -> None:
        for pid in self.pids():
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass


def state(pid: int) -> str | None:
    stat = proc_stat(pid)
    return None if stat is None or stat[0] == "Z" else stat[0]


def wait_until(predicate, timeout_s: float, interval_s: float = 0.02) -> float | None:
    """Seconds until predicate() held, None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval_s)
    return None


def holder_processes(ledger_dir: Path) -> list[int]:
    """Holder processes of this test's ledger dir (their request JSON names it)."""
    found = []
    needle = str(ledger_dir).encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"perfpipe.app.chaos.holder" in cmdline and needle in cmdline and state(int(pid)) is not None:
            found.append(int(pid))
    return found


@pytest.fixture
def component(tmp_path, monkeypatch):
    comp = Component(tmp_path)
    monkeypatch.setenv(PORT_ENV, str(comp.port))  # the caller's environment reaches pid/start commands
    comp.start()
    yield comp
    comp.kill()


@pytest.fixture
def ledger_dir(tmp_path):
    directory = tmp_path / "ledger"
    yield directory
    for pid in holder_processes(directory):  # a failed test must not leave a holder behind
        os.kill(pid, signal.SIGKILL)


def assert_clean(ledger_dir: Path) -> None:
    assert [p.name for p, _ in entries(ledger_dir)] == []
    assert holder_processes(ledger_dir) == []


# --- process: pause / stop ---------------------------------------------------------------------------------

def test_pause_stops_process_and_child_restore_resumes(component, ledger_dir):
    pids = component.pids()
    assert len(pids) == 2 and all(state(p) in ("S", "R") for p in pids)
    events = []
    started = time.monotonic()
    hold = FaultHold.start(component.spec(), "cache_pause", hold_s=120, on_event=events.append,
                           ledger_dir=ledger_dir)
    timing("process pause: FaultHold.start -> injected (incl. holder start)", time.monotonic() - started)
    timing("process pause: inject (holder, plan+inject)", hold.inject_event["duration_s"])
    assert [state(p) for p in pids] == ["T", "T"]
    assert sorted(hold.inject_event["detail"]["paused_pids"]) == sorted(pids)
    assert abs(hold.inject_time - time.time()) < 5
    assert component.answer(timeout=0.5) is None  # paused: accepts in the backlog, never answers
    (path, entry), = entries(ledger_dir)
    assert entry["holder_pid"] == hold.pid and entry["action"] == "pause"
    assert sorted(p["pid"] for p in entry["state"]["processes"]) == sorted(pids)

    started = time.monotonic()
    info = hold.restore()
    timing("process pause: restore() -> restored", time.monotonic() - started)
    assert info["ok"] is True and info["reason"] == "requested", info
    assert all(state(p) in ("S", "R") for p in pids)
    assert component.answer()["pid"] == pids[0]
    assert [e["event"] for e in events] == ["inject", "restore"]
    assert hold.restore() is info  # idempotent
    assert restore_entry(entry)["resumed_pids"] == pids  # restoring the same fault again is harmless
    assert all(state(p) in ("S", "R") for p in pids) and component.answer()["pid"] == pids[0]
    assert_clean(ledger_dir)


def test_stop_kills_tree_and_restore_starts_a_new_process(component, ledger_dir):
    old = component.pids()
    hold = FaultHold.start(component.spec(), "cache_stop", hold_s=120, ledger_dir=ledger_dir)
    timing("process stop: inject (holder, SIGTERM tree)", hold.inject_event["duration_s"])
    assert all(state(p) is None for p in old)
    assert component.answer(timeout=0.5) is None
    (_, entry), = entries(ledger_dir)
    assert sorted(p["pid"] for p in entry["state"]["processes"]) == sorted(old)
    started = time.monotonic()
    info = hold.restore()
    timing("process stop: restore() -> start_command + pid check", time.monotonic() - started)
    assert info["ok"] is True, info
    new_pid = info["detail"]["started_pid"]
    assert new_pid != old[0] and component.answer()["pid"] == new_pid
    assert restore_entry(entry) == {"already_running_pid": new_pid, "attempts": 1}  # no second start
    assert component.answer()["pid"] == new_pid
    assert_clean(ledger_dir)


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path, ledger_dir, monkeypatch):
    comp = Component(tmp_path)
    (tmp_path / "server.py").write_text("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + SERVER_PY)
    monkeypatch.setenv(PORT_ENV, str(comp.port))
    comp.start()
    try:
        root = comp.pids()[0]
        started = time.monotonic()
        hold = FaultHold.start(comp.spec(), "cache_stop", hold_s=120, ledger_dir=ledger_dir)
        assert time.monotonic() - started >= 4.5  # waited the SIGTERM grace first
        assert root in hold.inject_event["detail"]["sigkilled_pids"] and state(root) is None
        assert hold.restore()["ok"] is True and comp.answer() is not None
        assert_clean(ledger_dir)
    finally:
        comp.kill()


def test_hold_elapsed_restores_automatically(component, ledger_dir):
    pids = component.pids()
    hold = FaultHold.start(component.spec(), None, hold_s=1.5, ledger_dir=ledger_dir)  # default: cache_pause
    assert state(pids[0]) == "T"
    info = hold.wait(timeout=20)
    held = info["time"] - hold.inject_time
    timing("process pause: restore after hold_s elapsed (holder)", info["duration_s"])
    assert info["ok"] is True and info["reason"] == "hold_elapsed"
    assert 1.5 <= held < 3.0, held
    assert all(state(p) in ("S", "R") for p in pids) and component.answer() is not None
    assert_clean(ledger_dir)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_holder_signalled_restores(component, ledger_dir, sig):
    pids = component.pids()
    hold = FaultHold.start(component.spec(), "cache_pause", hold_s=120, ledger_dir=ledger_dir)
    os.kill(hold.pid, sig)
    info = hold.wait(timeout=20)
    assert info["ok"] is True and info["reason"] == f"signal:{sig.name}"
    assert all(state(p) in ("S", "R") for p in pids) and component.answer() is not None
    assert_clean(ledger_dir)


@pytest.mark.parametrize("scenario", ["cache_pause", "cache_stop"])
def test_holder_sigkill_leaves_ledger_and_restore_leftovers_restores(component, ledger_dir, scenario):
    pids = component.pids()
    hold = FaultHold.start(component.spec(), scenario, hold_s=120, ledger_dir=ledger_dir)
    os.kill(hold.pid, signal.SIGKILL)
    hold.proc.wait(timeout=10)
    time.sleep(0.3)
    assert state(pids[0]) == ("T" if scenario == "cache_pause" else None)  # nobody restored it
    assert len(entries(ledger_dir)) == 1

    # Another process, without the port variable: the ledger's recorded PERFPIPE_* environment supplies it.
    environ = {k: v for k, v in os.environ.items() if k != PORT_ENV}
    started = time.monotonic()
    restored = restore_leftovers(ledger_dir, environ=environ)
    timing(f"restore_leftovers ({scenario})", time.monotonic() - started)
    assert len(restored) == 1 and restored[0]["ok"] is True, restored
    assert restored[0]["holder_pid"] == hold.pid and restored[0]["scenario"] == scenario
    assert component.answer() is not None
    if scenario == "cache_pause":
        assert all(state(p) in ("S", "R") for p in pids)
    assert restore_leftovers(ledger_dir) == []  # nothing left; a second call is a no-op
    assert hold.restore()["ok"] is True  # the parent's handle: holder gone, nothing left to restore
    assert_clean(ledger_dir)


def test_wait_restores_from_the_ledger_when_the_holder_was_killed(component, ledger_dir):
    pids = component.pids()
    hold = FaultHold.start(component.spec(), "cache_pause", hold_s=120, ledger_dir=ledger_dir)
    os.kill(hold.pid, signal.SIGKILL)
    info = hold.wait(timeout=20)
    assert info["ok"] is True and info["reason"] == "holder_gone" and info["holder_exit"] == -signal.SIGKILL
    assert all(state(p) in ("S", "R") for p in pids) and component.answer() is not None
    assert_clean(ledger_dir)


def test_start_times_out_then_restores_what_the_late_holder_injected(component, ledger_dir):
    pids = component.pids()
    slow = component.spec(pid_command=["bash", "-c", f'sleep 1.5; exec bash "{component.control}" pid'])
    started = time.monotonic()
    with pytest.raises(ChaosError, match=r"not injected within 0.5 s \(restore ok=True\)"):
        FaultHold.start(slow, "cache_pause", hold_s=120, inject_timeout_s=0.5, ledger_dir=ledger_dir)
    assert time.monotonic() - started < 20
    assert all(state(p) in ("S", "R") for p in pids) and component.answer() is not None
    assert_clean(ledger_dir)


def test_restore_leftovers_kills_a_holder_hung_past_its_restore_deadline(ledger_dir, tmp_path):
    from perfpipe.app.chaos import ledger as chaos_ledger

    stub = StubProxy()
    hung = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "perfpipe.app.chaos.holder"])
    try:
        stub.faults = {"latency_ms": 300, "partition": False}
        spec = proxy_spec(stub.url)
        scenario = spec.scenario("network_fault")
        chaos_ledger.write_entry(chaos_ledger.new_entry_path(ledger_dir, scenario.name), {
            "target": "chaostest", "scenario": scenario.name, "scenario_spec": scenario.to_dict(),
            "component": spec.component_of(scenario).to_dict(), "action": "latency", "holder_pid": hung.pid,
            "holder_starttime": proc_stat(hung.pid)[2], "cwd": str(tmp_path), "env": {},
            "state": {"kind": "proxy", "action": "latency", "control_url": stub.url},
            "restore_by": time.time() - 1})
        (result,) = restore_leftovers(ledger_dir)
        assert result["ok"] is True and result["holder_pid"] == hung.pid
        assert hung.wait(timeout=5) == -signal.SIGKILL
        assert stub.faults == {"latency_ms": 0, "partition": False}
        assert_clean(ledger_dir)
    finally:
        hung.kill()
        hung.wait(timeout=5)
        stub.close()


def test_restore_leftovers_leaves_a_live_holders_fault_alone(component, ledger_dir):
    pids = component.pids()
    hold = FaultHold.start(component.spec(), "cache_pause", hold_s=120, ledger_dir=ledger_dir)
    try:
        assert restore_leftovers(ledger_dir) == []
        assert state(pids[0]) == "T"
        with pytest.raises(ChaosError, match="already has a fault in the ledger"):
            FaultHold.start(component.spec(), "cache_stop", hold_s=5, ledger_dir=ledger_dir)
    finally:
        assert hold.restore()["ok"] is True
    assert_clean(ledger_dir)


def test_inject_failure_is_a_clear_error_and_leaves_nothing(component, ledger_dir):
    pids = component.pids()
    bad_pid = component.spec(pid_command=["bash", "-c", "echo not-a-pid"])
    with pytest.raises(ChaosError, match=r"pid_command .* must print one pid and exit 0, printed 'not-a-pid'"):
        FaultHold.start(bad_pid, "cache_pause", hold_s=10, ledger_dir=ledger_dir)
    not_running = component.spec(pid_command=["bash", "-c", "exit 1"])
    with pytest.raises(ChaosError, match="not running"):
        FaultHold.start(not_running, "cache_stop", hold_s=10, ledger_dir=ledger_dir)
    missing = component.spec(pid_command=["/nonexistent/pid-helper"])
    with pytest.raises(ChaosError, match="could not run"):
        FaultHold.start(missing, "cache_stop", hold_s=10, ledger_dir=ledger_dir)
    # pid 1 and our own ancestors are never ours to stop.
    ours = component.spec(pid_command=["bash", "-c", f"echo {os.getpid()}"])
    with pytest.raises(ChaosError, match="refused"):
        FaultHold.start(ours, "cache_stop", hold_s=10, ledger_dir=ledger_dir)
    assert all(state(p) in ("S", "R") for p in pids) and component.answer()["pid"] == pids[0]
    assert_clean(ledger_dir)


def test_bad_scenario_or_hold_is_refused_before_a_holder_starts(component, ledger_dir):
    from perfpipe.core.errors import InputError

    with pytest.raises(InputError, match="unknown chaos scenario 'nope'"):
        FaultHold.start(component.spec(), "nope", hold_s=10, ledger_dir=ledger_dir)
    with pytest.raises(InputError, match="hold_s"):
        FaultHold.start(component.spec(), "cache_pause", hold_s=0, ledger_dir=ledger_dir)
    assert not ledger_dir.exists() or entries(ledger_dir) == []


# --- the parent dies ---------------------------------------------------------------------------------------

PARENT_PY = textwrap.dedent("""
    import json, sys, time
    from perfpipe.app.chaos import FaultHold, parse_chaos
    spec = parse_chaos("chaostest", json.loads(sys.argv[1]))
    hold = FaultHold.start(spec, sys.argv[2], hold_s=float(sys.argv[3]), ledger_dir=sys.argv[4])
    print(json.dumps({"holder_pid": hold.pid, "inject_time": hold.inject_time}), flush=True)
    time.sleep(120)
""")


def _start_parent(component: Component, scenario: str, ledger_dir: Path, tmp_path: Path) -> subprocess.Popen:
    script = tmp_path / "parent.py"
    script.write_text(PARENT_PY)
    return subprocess.Popen([sys.executable, str(script), json.dumps(component.chaos()), scenario, "120",
                             str(ledger_dir)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=component.env, start_new_session=True)


def _recovered(component: Component, ledger_dir: Path) -> bool:
    pids = component.pids()
    return (bool(pids) and all(state(p) in ("S", "R") for p in pids) and not holder_processes(ledger_dir)
            and not entries(ledger_dir) and component.answer(timeout=0.3) is not None)


def test_parent_sigkilled_mid_hold_holder_restores(component, ledger_dir, tmp_path):
    pids = component.pids()
    parent = _start_parent(component, "cache_pause", ledger_dir, tmp_path)
    try:
        started = json.loads(parent.stdout.readline())
        assert state(pids[0]) == "T" and started["holder_pid"] in holder_processes(ledger_dir)
    finally:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
    killed = time.monotonic()
    resumed = wait_until(lambda: all(state(p) in ("S", "R") for p in pids), 5)
    assert resumed is not None and resumed < 1.0, resumed
    timing("parent SIGKILL -> process resumed", resumed)
    assert wait_until(lambda: _recovered(component, ledger_dir), 5) is not None
    timing("parent SIGKILL -> holder gone, ledger empty", time.monotonic() - killed)
    assert_clean(ledger_dir)


def test_parent_sigkilled_at_random_moments_leaves_no_fault(component, ledger_dir, tmp_path):
    rng = random.Random(20260101)
    outcomes = []
    for round_no in range(10):
        scenario = ("cache_pause", "cache_stop")[round_no % 2]
        delay = rng.uniform(0.0, 1.5)  # before the holder starts, mid-plan/inject, or mid-hold
        parent = _start_parent(component, scenario, ledger_dir, tmp_path)
        time.sleep(delay)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        injected = bool(parent.stdout.read().strip())
        parent.stdout.close()
        recovered = wait_until(lambda: _recovered(component, ledger_dir), 30, interval_s=0.05)
        outcomes.append((scenario, round(delay, 2), injected, recovered))
        assert recovered is not None, f"round {round_no}: {scenario} killed after {delay:.2f}s not recovered"
    assert restore_leftovers(ledger_dir) == []
    assert_clean(ledger_dir)
    print("\nparent SIGKILL rounds (scenario, delay s, inject reported, recovered after s):", outcomes)


# --- redis-server (real, when installed) -------------------------------------------------------------------

REDIS_CONTROL_SH = textwrap.dedent("""\
    #!/usr/bin/env bash
    set -euo pipefail
    DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    PORT="${PERFPIPE_CHAOS_TEST_REDIS_PORT:?}"
    alive() {
        [[ -s "$DIR/redis.pid" ]] || return 1
        local pid; pid="$(cat "$DIR/redis.pid")"
        [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" =~ ^[RSDT]$ ]] || return 1
        echo "$pid"
    }
    case "$1" in
        pid) alive ;;
        start)
            alive >/dev/null && exit 0
            rm -f "$DIR/redis.pid"
            redis-server --bind 127.0.0.1 --port "$PORT" --daemonize yes --pidfile "$DIR/redis.pid" \\
                --dir "$DIR" --save '' --appendonly no --logfile "$DIR/redis.log"
            for _ in $(seq 1 100); do
                [[ "$(redis-cli -p "$PORT" ping 2>/dev/null || true)" == PONG ]] && [[ -s "$DIR/redis.pid" ]] && exit 0
                sleep 0.1
            done
            exit 1 ;;
        *) exit 2 ;;
    esac
""")


def redis_ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.mark.skipif(not (shutil.which("redis-server") and shutil.which("redis-cli")),
                    reason="redis-server/redis-cli not installed (apt-get install redis-server): real-redis case "
                           "skipped; the process injector is covered by the HTTP server cases")
@pytest.mark.parametrize("scenario", ["cache_pause", "cache_stop"])
def test_real_redis_server(tmp_path, ledger_dir, monkeypatch, scenario):
    port = free_port()
    monkeypatch.setenv("PERFPIPE_CHAOS_TEST_REDIS_PORT", str(port))
    control = tmp_path / "redis.sh"
    control.write_text(REDIS_CONTROL_SH)
    subprocess.run(["bash", str(control), "start"], check=True, timeout=30)
    spec = parse_chaos("chaostest", {
        "components": {"cache": {"kind": "process", "pid_command": ["bash", str(control), "pid"],
                                 "start_command": ["bash", str(control), "start"]}},
        "scenarios": {"cache_pause": {"component": "cache", "action": "pause"},
                      "cache_stop": {"component": "cache", "action": "stop"}}})
    first_pid = int((tmp_path / "redis.pid").read_text())
    try:
        assert redis_ping(port)
        hold = FaultHold.start(spec, scenario, hold_s=120, ledger_dir=ledger_dir)
        timing(f"redis {scenario}: inject (holder)", hold.inject_event["duration_s"])
        assert state(first_pid) == ("T" if scenario == "cache_pause" else None)
        assert not redis_ping(port)
        started = time.monotonic()
        assert hold.restore()["ok"] is True
        timing(f"redis {scenario}: restore()", time.monotonic() - started)
        assert redis_ping(port)
        assert_clean(ledger_dir)
    finally:
        pid = int((tmp_path / "redis.pid").read_text())
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


# --- fault proxy control API (stdlib stub of the other team's proxy) ---------------------------------------

class StubProxy:
    """GET/PUT/DELETE /faults like the fault proxy; `broken_put` accepts a PUT but keeps no fault."""

    def __init__(self, broken_put: bool = False):
        self.faults = {"latency_ms": 0, "partition": False}
        self.calls: list[tuple[str, dict | None]] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self, body: dict, code: int = 200):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                stub.calls.append(("GET", None))
                self._reply(stub.faults) if self.path == "/faults" else self._reply({}, 404)

            def do_PUT(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.calls.append(("PUT", body))
                if not broken_put:
                    stub.faults = {"latency_ms": body["latency_ms"], "partition": body["partition"]}
                self._reply(stub.faults)

            def do_DELETE(self):
                stub.calls.append(("DELETE", None))
                stub.faults = {"latency_ms": 0, "partition": False}
                self._reply(stub.faults)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def proxy_spec(url: str):
    return parse_chaos("chaostest", {
        "components": {"database_link": {"kind": "proxy", "control_url": url}},
        "scenarios": {"network_fault": {"component": "database_link", "action": "latency", "latency_ms": 300},
                      "partition": {"component": "database_link", "action": "partition"}}})


@pytest.mark.parametrize("scenario, fault", [
    ("network_fault", {"latency_ms": 300, "partition": False}),
    ("partition", {"latency_ms": 0, "partition": True}),
])
def test_proxy_fault_put_then_delete(ledger_dir, scenario, fault):
    stub = StubProxy()
    try:
        hold = FaultHold.start(proxy_spec(stub.url), scenario, hold_s=120, ledger_dir=ledger_dir)
        timing("proxy: inject (holder, GET+PUT+GET)", hold.inject_event["duration_s"])
        assert stub.faults == fault
        started = time.monotonic()
        info = hold.restore()
        timing("proxy: restore() (DELETE+GET)", time.monotonic() - started)
        assert info["ok"] is True
        assert stub.faults == {"latency_ms": 0, "partition": False}
        assert stub.calls == [("GET", None), ("PUT", fault), ("GET", None), ("DELETE", None), ("GET", None)]
        assert_clean(ledger_dir)
    finally:
        stub.close()


def test_proxy_partial_inject_is_restored_and_reported(ledger_dir):
    stub = StubProxy(broken_put=True)
    try:
        with pytest.raises(ChaosError, match=r"GET /faults shows .*partial fault restored: ok=True"):
            FaultHold.start(proxy_spec(stub.url), "partition", hold_s=10, ledger_dir=ledger_dir)
        assert [method for method, _ in stub.calls] == ["GET", "PUT", "GET", "DELETE", "GET"]
        assert_clean(ledger_dir)
    finally:
        stub.close()


def test_proxy_unreachable_is_a_clear_error(ledger_dir):
    with pytest.raises(ChaosError, match=r"GET http://127\.0\.0\.1:\d+/faults failed"):
        FaultHold.start(proxy_spec(f"http://127.0.0.1:{free_port()}"), "partition", hold_s=10,
                        ledger_dir=ledger_dir)
    assert_clean(ledger_dir)


# --- docker: a real engine of our own (conftest.docker_engine; skipped only where none can start) -----------

SLEEP_SCRIPT = "import { sleep } from 'k6';\nexport const options = { vus: 1, duration: '300s' };\n" \
               "export default function () { sleep(1); }\n"


@pytest.fixture
def docker_container(docker_engine, tmp_path):
    """A running container on our own engine: the k6 stand-in image idling in a script that only sleeps (no
    network), long enough to be paused, stopped and started again."""
    import docker

    client = docker.DockerClient(base_url=docker_engine.host, timeout=30)
    script = tmp_path / "sleep.js"
    script.write_text(SLEEP_SCRIPT)
    script.parent.chmod(0o755)
    script.chmod(0o644)
    name = f"perfpipe-chaos-test-{os.getpid()}-{time.monotonic_ns()}"
    container = client.containers.run(K6_TEST_IMAGE, ["run", "--quiet", "--address", "", "/s/sleep.js"], name=name,
                                      detach=True, network_mode="none", volumes={str(tmp_path): {"bind": "/s",
                                                                                                "mode": "ro"}})
    try:
        yield container
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("scenario", ["pause", "stop"])
def test_docker_container_fault(docker_container, ledger_dir, scenario):
    name = docker_container.name
    spec = parse_chaos("chaostest", {"components": {"api": {"kind": "docker", "container": name}},
                                     "scenarios": {scenario: {"component": "api", "action": scenario}}})
    hold = FaultHold.start(spec, scenario, hold_s=120, ledger_dir=ledger_dir)
    timing(f"docker {scenario}: inject (holder)", hold.inject_event["duration_s"])
    docker_container.reload()
    assert docker_container.status == ("paused" if scenario == "pause" else "exited")
    started = time.monotonic()
    assert hold.restore()["ok"] is True
    timing(f"docker {scenario}: restore()", time.monotonic() - started)
    docker_container.reload()
    assert docker_container.status == "running"
    assert_clean(ledger_dir)


def test_restore_leftovers_command_line(component, ledger_dir):
    pids = component.pids()
    hold = FaultHold.start(component.spec(), "cache_pause", hold_s=120, ledger_dir=ledger_dir)
    os.kill(hold.pid, signal.SIGKILL)
    hold.proc.wait(timeout=10)
    run = subprocess.run([sys.executable, "-m", "perfpipe.app.chaos.holder", "--restore-leftovers", "--ledger-dir",
                          str(ledger_dir)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    (result,) = json.loads(run.stdout)
    assert result["ok"] is True and result["scenario"] == "cache_pause"
    assert all(state(p) in ("S", "R") for p in pids)
    assert_clean(ledger_dir)
