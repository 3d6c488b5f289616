"""Validate once (issue 12, item 3): one run resolves and checks its target once, runs `k6 inspect` once per
distinct script and pings InfluxDB once, however many stages and tasks it has.

Counted in the run's own process (tests/counting_cli.py wraps resolve_target, check_target_safe, k6's
`inspect` subprocess and InfluxDBClient.ping; dag.test runs every task in that process). The pipeline's counts
come from the session's quick pipeline run (the quick_pipeline fixture), so this file adds one quick smoke.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BUNDLED_STAGES = ("smoke", "load", "stress", "spike", "chaos", "soak")  # --include-soak


def read_counts(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_quick_pipeline_checks_its_input_once(quick_pipeline, quick_pipeline_counts):
    assert quick_pipeline.returncode == 0, quick_pipeline.stderr[-3000:]
    counts = quick_pipeline_counts
    scripts = counts["inspected_scripts"]
    assert counts.get("resolve_target") == 1, counts
    assert counts.get("check_target_safe") == 1, counts
    assert counts.get("influxdb_ping") == 1, counts
    # One bundled script per stage: each is inspected once, none twice.
    assert sorted(Path(s).stem for s in scripts) == sorted(BUNDLED_STAGES), scripts
    assert counts.get("k6_inspect") == len(set(scripts)), counts


def test_single_test_checks_its_input_once(counting_cli, tmp_path):
    counts_file = tmp_path / "counts.json"
    proc = counting_cli(counts_file, "run", "smoke", "--target", "demo", "--profile", "quick",
                       "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["outcome"] == "passed"
    counts = read_counts(counts_file)
    assert (counts.get("resolve_target"), counts.get("check_target_safe"), counts.get("influxdb_ping"),
            counts.get("k6_inspect")) == (1, 1, 1, 1), counts


def test_bad_input_is_still_refused_before_any_load(counting_cli, demo_target, tmp_path):
    requests_before = demo_target.requests()
    proc = counting_cli(tmp_path / "counts.json", "run", "pipeline", "--target", "demo", "--profile", "quick",
                       "--set", "stress.vus=-5", "--json")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "vus" in json.loads(proc.stdout)["error"]
    assert demo_target.requests() == requests_before
