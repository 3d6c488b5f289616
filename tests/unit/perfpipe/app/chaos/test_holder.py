"""perfpipe.app.chaos.holder: a real holder process pausing a `sleep` of the test's own (a process-kind component
whose pid_command reads a pid file): injected, held, restored, and the ledger left clean. No Docker, no demo."""

from __future__ import annotations

import subprocess
import time

import pytest

from perfpipe.app.chaos import FaultHold, ledger, parse_chaos
from perfpipe.app.chaos.holder import MAX_HOLD_S, validate_hold_s
from perfpipe.core.errors import InputError


def process_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


@pytest.fixture
def victim(tmp_path):
    proc = subprocess.Popen(["sleep", "120"])
    (tmp_path / "victim.pid").write_text(f"{proc.pid}\n")
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def spec(tmp_path, victim):
    return parse_chaos("unit", {
        "components": {"worker": {"kind": "process", "pid_command": ["cat", str(tmp_path / "victim.pid")],
                              "start_command": ["true"]}},  # pause never restarts it
        "scenarios": {"freeze": {"component": "worker", "action": "pause"}}, "default_scenario": "freeze"})


def wait_state(pid: int, wanted: set[str], timeout_s: float = 10) -> str:
    deadline = time.monotonic() + timeout_s
    while (state := process_state(pid)) not in wanted and time.monotonic() < deadline:
        time.sleep(0.05)
    return state


def test_the_fault_is_in_place_when_start_returns_and_undone_after_hold_s(spec, victim, tmp_path):
    events = []
    hold = FaultHold.start(spec, "freeze", hold_s=0.5, on_event=events.append, ledger_dir=tmp_path / "ledger")
    assert hold.inject_time is not None and process_state(victim.pid) == "T"  # paused: SIGSTOP
    assert len(ledger.entries(tmp_path / "ledger")) == 1  # a ledger entry while the fault is held
    restored = hold.wait()
    assert restored["ok"] and wait_state(victim.pid, {"S", "R"}) in {"S", "R"}
    assert [e["event"] for e in events][:1] == ["inject"] and events[-1]["event"] == "restore"
    assert ledger.entries(tmp_path / "ledger") == []  # removed only after a successful restore
    assert hold.restore() is restored  # idempotent: on_kill after the end changes nothing


def test_restore_ends_a_long_hold_now(spec, victim, tmp_path):
    hold = FaultHold.start(spec, "freeze", hold_s=600, ledger_dir=tmp_path / "ledger")
    started = time.monotonic()
    assert hold.restore()["ok"]
    assert time.monotonic() - started < 30 and wait_state(victim.pid, {"S", "R"}) in {"S", "R"}


@pytest.mark.parametrize("hold_s", [0, -1, MAX_HOLD_S + 1, True, "60", float("nan")])
def test_a_bad_hold_time_is_refused_before_anything_starts(spec, victim, tmp_path, hold_s):
    with pytest.raises(InputError) as exc:
        FaultHold.start(spec, "freeze", hold_s=hold_s, ledger_dir=tmp_path / "ledger")
    assert exc.value.field == "hold_s"
    assert process_state(victim.pid) in {"S", "R"} and not (tmp_path / "ledger").exists()


def test_hold_times_up_to_the_maximum_are_accepted():
    assert (validate_hold_s(0.1), validate_hold_s(MAX_HOLD_S)) == (0.1, float(MAX_HOLD_S))
