"""Stress, spike and soak analyses on real runs: real k6, real influxd, a demo target with a known capacity."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, free_port, http_json, wait_until  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.integration

# The capped demo answers 503 at once beyond CAPACITY requests in progress; with no think time every VU keeps one
# request in progress, so the system breaks at about CAPACITY VUs.
CAPACITY = 20
LATENCY_MS = 50


@pytest.fixture
def capped_demo():
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "demo" / "demo_target.py"), "--host", "127.0.0.1",
                             "--port", str(port), "--latency-ms", str(LATENCY_MS),
                             "--max-concurrency", str(CAPACITY)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_json(f"{url}/health"), 20, "capped demo")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def target_file(tmp_path, url: str, **extra) -> str:
    body = {"base_url": url, "requests": [{"name": "get_product", "method": "GET", "path": "/api/products/1"}],
            **extra}
    path = tmp_path / "capped.yaml"
    path.write_text(yaml.safe_dump({"targets": {"capped": body}}), encoding="utf-8")
    return str(path)


def run_json(cli, *args: str, timeout: float = 300) -> tuple[int, dict]:
    proc = cli("run", *args, "--json", timeout=timeout)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def test_stress_finds_the_breaking_point_and_stops_the_ramp(cli, capped_demo, tmp_path):
    # A 30 s ramp to 100 VUs: the system breaks near 20, and k6 stops itself well before the ramp's end.
    target = target_file(tmp_path, capped_demo, required_capacity={"vus": 60})
    code, result = run_json(cli, "stress", "--target", target, "--profile", "quick",
                            "--set", "stress.think_time_s=0", "--set", "stress.stages=30s:100")
    [stage] = result["stages"]
    analysis = stage["analysis"]
    assert analysis["broke"] == 1.0, analysis
    assert 0.7 * CAPACITY <= analysis["breaking_vus"] <= 1.3 * CAPACITY, analysis
    # peak stable throughput: at most CAPACITY requests in progress of LATENCY_MS each
    assert 0 < analysis["peak_stable_rps"] <= 1.2 * CAPACITY * 1000 / LATENCY_MS, analysis
    assert analysis["stopped_at_break"] == 1.0, analysis
    assert stage["metrics"]["duration_s"] < 27, "k6 should have stopped the ramp after the break"
    assert stage["metrics_complete"]
    checks = {c["name"]: c for c in stage["checks"]}
    assert checks["capacity_vus"]["result"] == "fail" and checks["capacity_vus"]["threshold"] == 60
    assert "k6_thresholds" not in checks, "stopping at the break is by design, not a crossed user threshold"
    assert (stage["verdict"], code) == ("fail", 1)


def test_pipeline_branches_to_scale_when_required_capacity_is_above_the_break(cli, capped_demo, tmp_path):
    target = target_file(tmp_path, capped_demo, required_capacity={"vus": 60})
    code, result = run_json(cli, "pipeline", "--target", target, "--profile", "quick",
                            "--set", "stress.think_time_s=0", timeout=600)
    assert result["outcome"] == "scale_system", result
    assert result["path"][:3] == ["smoke", "load", "stress"]
    stress = {s["test_type"]: s for s in result["stages"]}["stress"]
    assert 0.7 * CAPACITY <= stress["analysis"]["breaking_vus"] <= 1.3 * CAPACITY, stress["analysis"]
    assert code == 1


def test_spike_reports_a_finite_recovery_time(cli, demo_target):
    code, result = run_json(cli, "spike", "--target", "demo", "--profile", "quick")
    [stage] = result["stages"]
    analysis = stage["analysis"]
    assert analysis["recovered"] == 1.0 and 0 <= analysis["recovery_s"] < 10, analysis
    assert analysis["baseline_p95_ms"] > 0 and analysis["spike_p95_ms"] > 0
    assert 0 <= analysis["spike_error_rate"] <= 1
    names = {c["name"] for c in stage["checks"]}
    assert {"recovery_s", "spike_error_rate", "spike_p95_ms"} <= names
    assert stage["verdict"] in ("pass", "warn") and code == 0, stage


def test_soak_reports_drift_figures(cli, demo_target, tmp_path):
    target = tmp_path / "soak-demo.yaml"
    demo = yaml.safe_load((ROOT / "config" / "targets.yaml").read_text())["targets"]["demo"]
    demo = {k: v for k, v in demo.items() if k not in ("chaos",)}
    demo.update(base_url=demo_target.url, metrics_url="/__stats")
    target.write_text(yaml.safe_dump({"targets": {"soak-demo": demo}}), encoding="utf-8")
    code, result = run_json(cli, "soak", "--target", str(target), "--profile", "quick")
    [stage] = result["stages"]
    analysis = stage["analysis"]
    for figure in ("p95_first_ms", "p95_last_ms", "p95_drift_pct", "error_rate_drift", "p95_slope_ms_per_min"):
        assert analysis.get(figure) is not None, (figure, analysis)
    checks = {c["name"]: c for c in stage["checks"]}
    assert checks["p95_drift_pct"]["result"] in ("pass", "warn", "fail")
    if "rss_bytes" in http_json(f"{demo_target.url}/__stats"):
        assert analysis["memory_first_mb"] > 0 and analysis.get("memory_growth_pct") is not None, analysis
    else:
        assert checks["memory_growth_pct"]["result"] == "skipped" or analysis.get("memory_growth_pct") is None
    assert code in (0, 1)
