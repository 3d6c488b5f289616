"""perfpipe.core.k6.runner against a fake k6: a shell script in tmp_path that prints, exits or hangs on cue
(no real k6, no network). What is checked is what the runner promises: exit codes mapped to InputError or
InfrastructureError, k6's output streamed to the log file with secrets masked, and no k6 left running."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest

from perfpipe.core.errors import InfrastructureError, InputError
from perfpipe.core.k6.command import EXIT_SCRIPT_ERROR, K6Invocation
import base64
import urllib.parse

from perfpipe.core.k6.runner import LocalK6Process, redact_line, validate_script


def fake_k6(tmp_path, body: str):
    path = tmp_path / "k6"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "test.js"
    path.write_text("export default function () {}\n")
    return str(path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by anyone) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --- validate_script (k6 inspect) ----------------------------------------------------------------------------

def test_inspect_returns_k6s_execution_requirements_and_runs_inspect_on_the_script(tmp_path, script):
    binary = fake_k6(tmp_path, f'echo "$@" > {tmp_path}/argv; echo \'{{"maxVUs": 7, "totalDuration": "45s"}}\'')
    assert validate_script(binary, script, {}) == {"maxVUs": 7, "totalDuration": "45s"}
    argv = (tmp_path / "argv").read_text().split()
    assert argv[0] == "inspect" and argv[-1] == script


def test_inspect_passes_the_runs_env_but_not_the_workers_secrets(tmp_path, script, monkeypatch):
    monkeypatch.setenv("PERFPIPE_INFLUXDB_PASSWORD", "hunter2")
    binary = fake_k6(tmp_path, f"env > {tmp_path}/env; echo '{{}}'")
    validate_script(binary, script, {"K6_RUN_SETTING": "on"})
    env = (tmp_path / "env").read_text()
    assert "K6_RUN_SETTING=on" in env and "hunter2" not in env


def test_a_missing_script_is_an_input_error_without_running_k6(tmp_path):
    binary = fake_k6(tmp_path, f"touch {tmp_path}/ran")
    with pytest.raises(InputError) as exc:
        validate_script(binary, str(tmp_path / "nope.js"), {})
    assert exc.value.field == "script" and not (tmp_path / "ran").exists()


def test_a_script_error_is_the_users_input_error_with_k6s_error_line(tmp_path, script):
    binary = fake_k6(tmp_path, "echo 'some banner' >&2; echo 'level=error msg=\"SyntaxError: line 3\"' >&2; "
                               f"exit {EXIT_SCRIPT_ERROR}")
    with pytest.raises(InputError) as exc:
        validate_script(binary, script, {})
    assert exc.value.field == "script"
    assert "SyntaxError: line 3" in str(exc.value) and "some banner" not in str(exc.value)


@pytest.mark.parametrize("body", ["echo 'segfault' >&2; exit 1", "echo 'not json'"])
def test_k6_itself_failing_is_an_infrastructure_error(tmp_path, script, body):
    with pytest.raises(InfrastructureError):
        validate_script(fake_k6(tmp_path, body), script, {})


def test_a_hanging_inspect_is_refused_after_its_timeout(tmp_path, script):
    started = time.monotonic()
    with pytest.raises(InputError, match="did not finish"):
        validate_script(fake_k6(tmp_path, "sleep 30"), script, {}, timeout_s=0.5)
    assert time.monotonic() - started < 10


# --- LocalK6Process ------------------------------------------------------------------------------------------

def test_a_run_streams_k6s_output_to_its_log_and_returns_its_exit_code(tmp_path):
    binary = fake_k6(tmp_path, "echo first; echo second; exit 99")
    log_file = tmp_path / "reports" / "k6.log"  # its folder does not exist yet
    outcome = LocalK6Process(K6Invocation(argv=[binary, "run"], env={}), log_file, timeout_s=30).run()
    assert (outcome.exit_code, outcome.aborted, outcome.timed_out) == (99, False, False)
    assert log_file.read_text() == "first\nsecond\n"


def test_registered_secrets_never_reach_the_log(tmp_path):
    from perfpipe.app.targets import mask_secret

    mask_secret("s3cr3t-token-value")
    assert "s3cr3t-token-value" not in redact_line("Authorization: Bearer s3cr3t-token-value\n")
    binary = fake_k6(tmp_path, "echo 'sending Authorization: Bearer s3cr3t-token-value'")
    LocalK6Process(K6Invocation(argv=[binary], env={}), tmp_path / "k6.log", timeout_s=30).run()
    text = (tmp_path / "k6.log").read_text()
    assert "sending Authorization" in text and "s3cr3t-token-value" not in text


def test_a_run_past_its_limit_is_stopped_and_reported_as_timed_out(tmp_path):
    binary = fake_k6(tmp_path, "echo started; sleep 30")
    started = time.monotonic()
    outcome = LocalK6Process(K6Invocation(argv=[binary], env={}), tmp_path / "k6.log", timeout_s=0.5,
                             stop_grace_s=2).run()
    assert outcome.timed_out and outcome.aborted
    assert time.monotonic() - started < 10


def test_stop_from_another_thread_ends_k6_and_everything_it_spawned(tmp_path):
    child_pid = tmp_path / "child.pid"
    binary = fake_k6(tmp_path, f"sleep 60 & echo $! > {child_pid}; echo ready; wait")
    process = LocalK6Process(K6Invocation(argv=[binary], env={}), tmp_path / "k6.log", timeout_s=60,
                             stop_grace_s=2)
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("outcome", process.run()))
    runner.start()
    deadline = time.monotonic() + 10
    while not (child_pid.exists() and child_pid.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.stop()
    runner.join(timeout=10)
    assert not runner.is_alive()
    outcome = result["outcome"]
    assert outcome.aborted and not outcome.timed_out
    grandchild = int(child_pid.read_text())
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)  # the whole process group went, not only k6


def test_a_k6_that_cannot_start_is_an_infrastructure_error(tmp_path):
    with pytest.raises(InfrastructureError, match="cannot start k6"):
        LocalK6Process(K6Invocation(argv=[str(tmp_path / "no-k6")], env={}), tmp_path / "k6.log", 5).run()


@pytest.mark.parametrize("encode", [
    lambda s: s,
    lambda s: base64.b64encode(s.encode()).decode(),
    lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    lambda s: base64.b64encode(b"perfpipe:" + s.encode()).decode(),  # inside a Basic header: another alignment
    lambda s: base64.b64encode(b"u:" + s.encode()).decode(),
    lambda s: urllib.parse.quote(s, safe=""),
    lambda s: urllib.parse.quote_plus(s),
])
def test_k6_output_is_redacted_of_encoded_secrets(encode):
    from perfpipe.app.targets import mask_secret

    secret = "p@ss w/rd+?~s3cr3t-9a1"  # characters that base64 and URL-encoding both change
    mask_secret(secret)
    printed = encode(secret)
    assert printed != "" and len(printed) >= len(secret) - 2
    redacted = redact_line(f"console: {printed}\n")
    assert printed not in redacted and "***" in redacted
    # at most a couple of edge characters survive: never enough to rebuild the secret
    assert all(len(part.strip()) <= 4 for part in redacted.split("***")[1:]), redacted
