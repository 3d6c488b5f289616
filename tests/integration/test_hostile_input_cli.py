"""Hostile input through the real CLI (issue 13): exit 2, one line naming the field, no traceback, and the demo target
(which counts every request it receives) saw nothing. The table-driven cases run the same pre-flight in-process
(tests/unit/perfpipe/app/test_stage_hostile_inputs.py); these few show the CLI's own path: `--set` parsing, the
target file reader and the exit code."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.integration


def refused(counting_cli, demo_target, tmp_path, *args: str) -> dict:
    before = demo_target.requests()
    proc = counting_cli(tmp_path / "counts.json", "run", "smoke", "--profile", "quick", *args, "--json", timeout=120)
    assert proc.returncode == 2, (proc.stdout[-2000:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert demo_target.requests() == before
    return json.loads(proc.stdout)


def test_a_nan_threshold_is_refused_not_switched_off(counting_cli, demo_target, tmp_path):
    """It once removed the p95 check silently, and the run passed."""
    result = refused(counting_cli, demo_target, tmp_path, "--target", "demo", "--set", "thresholds.p95_ms=.nan")
    assert result["error"].startswith("overrides.thresholds.p95_ms: "), result


def test_a_request_name_with_a_newline_is_refused_before_the_load(counting_cli, demo_target, tmp_path):
    """It once wrote 680 extra points into perf_results (k6 does not escape a newline in a tag value), refused only
    after the load had run."""
    target = tmp_path / "newline.yaml"
    target.write_text(json.dumps({"base_url": demo_target.url, "requests": [
        {"name": "list\nevil,test_type=smoke value=1", "path": "/api/products"}]}), encoding="utf-8")
    result = refused(counting_cli, demo_target, tmp_path, "--target", str(target))
    assert result["error"].startswith(f"{target}.requests[0].name: "), result


def test_a_non_utf8_target_file_is_a_clear_error(counting_cli, demo_target, tmp_path):
    """It once ended in a UnicodeDecodeError traceback."""
    target = tmp_path / "latin1.yaml"
    target.write_bytes(f"base_url: {demo_target.url}\nrequests:\n  - {{name: caf\xe9, path: /}}\n".encode("latin-1"))
    result = refused(counting_cli, demo_target, tmp_path, "--target", str(target))
    assert result["error"].startswith("target: ") and "not UTF-8" in result["error"], result
