"""The `perfpipe run` command as users and CI jobs call it: exit codes, JSON, refusals before any load."""

from __future__ import annotations

import json
import textwrap

import pytest
import yaml

pytestmark = pytest.mark.integration


def write_target(tmp_path, name: str, body: dict):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def test_smoke_passes_with_complete_metrics(cli, influxdb, demo_target):
    proc = cli("run", "smoke", "--target", "demo", "--profile", "quick", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert set(result) >= {"dag_id", "run_id", "stages", "path", "outcome"}
    [stage] = result["stages"]
    assert stage["verdict"] == "pass" and stage["metrics_complete"] is True
    assert {c["name"] for c in stage["checks"]} >= {"p95_ms", "error_rate"}
    assert all(set(c) >= {"name", "op", "threshold", "value", "result"} for c in stage["checks"])
    assert stage["report"].endswith("report.html")
    # InfluxDB holds the raw k6 measurements for that testid and exactly one perf_results point.
    [raw] = influxdb.query('SELECT count("value") AS n FROM "http_req_duration" WHERE "testid" = $t',
                           {"t": stage["testid"]})
    assert raw["n"] == stage["metrics"]["samples_stored"] > 0
    points = influxdb.query('SELECT * FROM "perf_results" WHERE "run_id" = $r', {"r": result["run_id"]})
    assert len(points) == 1


def test_failing_endpoint_fails_the_smoke_gate(cli, demo_target, tmp_path):
    target = write_target(tmp_path, "broken", {
        "base_url": demo_target.url,
        "requests": [{"name": "broken", "method": "GET", "path": "/api/broken", "expect_status": 200}]})
    proc = cli("run", "smoke", "--target", target, "--profile", "quick", "--set", "duration=3s", "--json")
    assert proc.returncode == 1, proc.stderr[-3000:]
    [stage] = json.loads(proc.stdout)["stages"]
    assert stage["verdict"] == "fail"
    failed = {c["name"]: c for c in stage["checks"] if c["result"] == "fail"}
    assert failed["error_rate"]["value"] == 1.0


def test_script_with_syntax_error_is_refused_before_any_request(cli, demo_target, tmp_path):
    script = tmp_path / "broken.js"
    script.write_text("import http from 'k6/http';\nexport default function ( {\n  http.get(__ENV.BASE_URL);\n}\n")
    target = write_target(tmp_path, "scripted", {"base_url": demo_target.url, "script": str(script)})
    demo_target.reset()
    proc = cli("run", "smoke", "--target", target, "--profile", "quick", "--json")
    assert proc.returncode == 2
    assert "script" in proc.stderr and "107" in proc.stderr
    assert demo_target.requests() == 0


def test_target_outside_allowlist_is_refused_before_any_request(cli, demo_target, tmp_path):
    outside = write_target(tmp_path, "outside", {
        "base_url": "http://10.255.255.1:8090", "requests": [{"path": "/"}]})
    proc = cli("run", "smoke", "--target", outside, "--profile", "quick", "--json")
    assert proc.returncode == 2
    assert "not in the allowlist" in proc.stderr and "10.255.255.1" in proc.stderr

    # The same refusal for the real demo target once loopback is no longer allowed: it sees no request at all.
    demo_target.reset()
    proc = cli("run", "smoke", "--target", "demo", "--profile", "quick", "--json",
               env={"PERFPIPE_ALLOWLIST": "10.0.0.0/8"})
    assert proc.returncode == 2
    assert "not in the allowlist" in proc.stderr
    assert demo_target.requests() == 0


@pytest.mark.parametrize("args, field", [
    (["--set", "vus=0"], "vus"),
    (["--set", "thresholds.latency=5"], "thresholds.latency"),
    (["--set", "duration=ten"], "duration"),
    (["--target", "nope"], "target"),
])
def test_bad_input_is_refused_with_the_field_named(cli, demo_target, args, field):
    base = ["run", "smoke", "--profile", "quick", "--json"]
    if "--target" not in args:
        base += ["--target", "demo"]
    demo_target.reset()
    proc = cli(*base, *args)
    assert proc.returncode == 2, proc.stdout
    assert field in json.loads(proc.stdout)["error"]
    assert demo_target.requests() == 0


def test_rerunning_a_logical_date_keeps_one_result(cli, influxdb):
    date = "2026-01-05T00:00:00+00:00"
    runs = []
    for _ in range(2):
        proc = cli("run", "smoke", "--target", "demo", "--profile", "quick", "--set", "duration=2s",
                   "--logical-date", date, "--json")
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs.append(json.loads(proc.stdout))
    assert runs[0]["run_id"] == runs[1]["run_id"]
    # Each execution has its own testid, so the second run's samples never mix with the first's.
    assert runs[0]["stages"][0]["testid"] != runs[1]["stages"][0]["testid"]
    assert runs[1]["stages"][0]["metrics_complete"] is True
    points = influxdb.query('SELECT * FROM "perf_results" WHERE "dag_id" = \'perf_smoke\' AND '
                            "time = '2026-01-05T00:00:00Z'")
    assert len(points) == 1
    assert points[0]["testid"] == runs[1]["stages"][0]["testid"]
