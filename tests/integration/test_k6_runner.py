"""The local k6 runner: script validation before load, and no k6 left behind on stop or timeout."""

from __future__ import annotations

import os
import threading
import time

import pytest

from perfpipe.app.config import build_plan
from perfpipe.core.errors import InputError
from perfpipe.core.k6.command import LOG_FILE, SUMMARY_FILE, k6_binary, write_run_config
from perfpipe.core.k6.runner import LocalK6Process, validate_script
from perfpipe.app.stage import local_invocation
from perfpipe.app.targets import resolve_target

pytestmark = pytest.mark.integration


def long_plan(seconds: int = 60):
    return build_plan("chaos", resolve_target("demo"), "quick", {"vus": 2, "duration": f"{seconds}s"},
                      allowed_addresses=("127.0.0.1",))


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def start(tmp_path, timeout_s: float, seconds: int = 60) -> tuple[LocalK6Process, dict, threading.Thread]:
    plan = long_plan(seconds)
    write_run_config(plan, tmp_path)
    process = LocalK6Process(local_invocation(plan, testid="runner-test", report_dir=tmp_path, headers={},
                                              with_influx=False), tmp_path / LOG_FILE, timeout_s=timeout_s,
                             stop_grace_s=10)
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(result=process.run()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while process.pid is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return process, outcome, thread


def test_stop_ends_k6_gracefully_and_leaves_no_process(demo_target, tmp_path):
    process, outcome, thread = start(tmp_path, timeout_s=120)
    time.sleep(3)
    pgid = process.pid
    assert group_alive(pgid)
    stopped_at = time.monotonic()
    process.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert time.monotonic() - stopped_at < 15
    assert outcome["result"].aborted is True
    assert not group_alive(pgid)
    assert (tmp_path / SUMMARY_FILE).is_file()  # graceful: k6 still wrote its summary


def test_timeout_stops_k6(demo_target, tmp_path):
    process, outcome, thread = start(tmp_path, timeout_s=3)
    thread.join(timeout=40)
    assert not thread.is_alive()
    result = outcome["result"]
    assert result.timed_out is True and result.aborted is True
    assert result.duration_s < 20
    assert not group_alive(process.pid)


def test_script_errors_are_refused_before_load(tmp_path, demo_target):
    script = tmp_path / "bad.js"
    script.write_text("export default function ( {")
    demo_target.reset()
    with pytest.raises(InputError, match="exit 107"):
        validate_script(k6_binary(), str(script), {})
    with pytest.raises(InputError, match="not found"):
        validate_script(k6_binary(), str(tmp_path / "missing.js"), {})
    assert demo_target.requests() == 0
