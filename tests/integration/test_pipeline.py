"""perf_pipeline: the decision tree's structure, and real runs down the ready path and a remediation path."""

from __future__ import annotations

import json

import pytest
import yaml

from perfpipe.app import pipeline

pytestmark = pytest.mark.integration

# The decision tree as task edges: stage groups, gates, named edges and outcomes.
GATE_EDGES = {
    "smoke_gate": {"load.validate", "fix_issues"},
    "load_gate": {"stress.validate", "load_targets_missed"},
    "stress_gate": {"spike.validate", "scale_system"},
    "spike_gate": {"chaos.validate", "spike_not_resilient"},
    "chaos_gate": {"soak.validate", "chaos_resilient", "chaos_not_resilient"},
    "soak_gate": {"soak_stable", "soak_degraded"},
    "load_targets_missed": {"optimize_system"},
    "soak_degraded": {"optimize_system"},
    "spike_not_resilient": {"improve_failover"},
    "chaos_not_resilient": {"improve_failover"},
    "chaos_resilient": {"ready_to_deploy"},
    "soak_stable": {"ready_to_deploy"},
}


def test_pipeline_structure_reads_like_the_decision_tree(dagbag):
    dag = dagbag.dags["perf_pipeline"]
    downstream = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    for task_id, expected in GATE_EDGES.items():
        assert downstream[task_id] == expected, task_id
    for stage in pipeline.STAGES:
        assert downstream[f"{stage}.validate"] == {f"{stage}.run_k6", f"{stage}.evaluate"}
        assert downstream[f"{stage}.record"] == {f"{stage}_gate"}
    for outcome in pipeline.OUTCOMES:
        assert downstream[outcome] == {"report"}
    assert dag.task_dict["report"].is_teardown
    assert "include_soak" in dag.params


def test_pipeline_walks_to_ready_to_deploy(quick_pipeline, influxdb):
    proc = quick_pipeline  # with --include-soak
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["path"] == ["smoke", "load", "stress", "spike", "chaos", "soak", "ready_to_deploy"]
    assert result["outcome"] == "ready_to_deploy"
    assert [s["test_type"] for s in result["stages"]] == ["smoke", "load", "stress", "spike", "chaos", "soak"]
    assert all(s["verdict"] in ("pass", "warn") and s["metrics_complete"] for s in result["stages"])
    report = open(result["report"], encoding="utf-8").read()
    assert "ready_to_deploy" in report and report.count("<polyline") >= 6 * 4  # 4 charts per stage
    [conclusion] = influxdb.query('SELECT * FROM "perf_pipeline" WHERE "run_id" = $r', {"r": result["run_id"]})
    assert conclusion["outcome"] == "ready_to_deploy"


def test_missed_load_targets_stop_at_optimize_system(cli, demo_target, tmp_path):
    target = tmp_path / "strict.yaml"
    target.write_text(yaml.safe_dump({
        "base_url": demo_target.url,
        "requests": [{"name": "list", "method": "GET", "path": "/api/products"}],
        "gates": {"load": {"p95_ms": {"op": "<", "threshold": 0.01}}},  # no real system is this fast
    }))
    proc = cli("run", "pipeline", "--target", str(target), "--profile", "quick", "--json", timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["path"] == ["smoke", "load", "optimize_system"]
    assert [s["test_type"] for s in result["stages"]] == ["smoke", "load"]
    assert result["state"].endswith("failed")
    assert result["evidence"] == [{"stage": "load", "name": "p95_ms", "value": pytest.approx(
        result["stages"][1]["metrics"]["p95_ms"]), "op": "<", "threshold": 0.01, "result": "fail"}]
    assert "p95_ms" in result["explanation"]
