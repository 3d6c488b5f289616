"""The decision table (perfpipe.app.pipeline.TREE) and the pipeline DAG generated from it."""

from __future__ import annotations

import ast
from itertools import product
from pathlib import Path

import pytest

from perfpipe.app import pipeline
from perfpipe.app.pipeline import READY, TREE

from unit.stage_points import stage_result

REPO_ROOT = Path(__file__).resolve().parents[4]
REMEDIATIONS = {"fix_issues", "optimize_system", "scale_system", "improve_failover"}


def reachable(include_soak: bool) -> set[str]:
    """Every stage and outcome some combination of gate answers reaches from the first stage."""
    seen, todo = set(), [TREE[0].stage]
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in pipeline.GATES:
            gate = pipeline.GATES[node]
            todo += [gate.answer(passed, {pipeline.INCLUDE_SOAK: include_soak}).to for passed in (True, False)]
    return seen


def test_every_stage_and_every_remediation_is_reachable():
    assert reachable(include_soak=True) == {"smoke", "load", "stress", "spike", "chaos", "soak", READY} | REMEDIATIONS
    assert set(pipeline.OUTCOMES) == {READY} | REMEDIATIONS


def test_without_include_soak_soak_is_unreachable_and_the_rest_still_is():
    assert reachable(include_soak=False) == reachable(include_soak=True) - {"soak"}


def test_include_soak_puts_soak_between_chaos_and_ready():
    assert pipeline.happy_path(False) == ["smoke", "load", "stress", "spike", "chaos"]
    assert pipeline.happy_path(True) == ["smoke", "load", "stress", "spike", "chaos", "soak"]
    passed = stage_result(verdict="pass")
    assert pipeline.decide("chaos", passed, include_soak=False) == READY
    assert pipeline.decide("chaos", passed, include_soak=True) == "soak"
    assert pipeline.decide("soak", passed, include_soak=True) == READY
    # include_soak changes no other decision
    for gate, verdict in product(TREE, ("pass", "warn", "fail")):
        if gate.stage != "chaos" or verdict == "fail":
            result = stage_result(verdict=verdict)
            assert pipeline.decide(gate.stage, result, False) == pipeline.decide(gate.stage, result, True)


def test_a_failed_gate_always_leads_to_a_remediation_and_a_passed_one_never_does():
    for gate, include_soak in product(TREE, (False, True)):
        assert pipeline.decide(gate.stage, stage_result(verdict="fail"), include_soak) in REMEDIATIONS
        for verdict in ("pass", "warn"):
            assert pipeline.decide(gate.stage, stage_result(verdict=verdict), include_soak) not in REMEDIATIONS


def test_an_outcome_several_gates_lead_to_sits_behind_one_edge_task_per_gate():
    """Airflow does not skip a branch's child that the chosen branch also reaches: shared outcomes need edges."""
    into: dict[str, list] = {}
    for gate in TREE:
        for _, branch in gate.branches():
            into.setdefault(branch.to, []).append(branch)
    for target, branches in into.items():
        if target not in pipeline.GATES and len(branches) > 1:
            assert all(b.edge for b in branches), target
    edges = [b.edge for bs in into.values() for b in bs if b.edge]
    assert len(edges) == len(set(edges))
    assert not set(edges) & (set(pipeline.STAGES) | set(pipeline.OUTCOMES))


def test_branch_task_ids():
    assert pipeline.branch_task_id("stress", "spike") == "spike.validate"
    assert pipeline.branch_task_id("stress", "scale_system") == "scale_system"
    assert pipeline.branch_task_id("soak", "optimize_system") == "soak_degraded"
    assert pipeline.branch_task_id("load", "optimize_system") == "load_targets_missed"
    with pytest.raises(ValueError):
        pipeline.branch_task_id("smoke", "scale_system")  # not a branch of the smoke gate


def test_render_shows_every_row_and_branch():
    text = pipeline.render()
    assert len(text.splitlines()) == sum(len(g.branches()) for g in TREE)
    assert "yes if include_soak  -> soak" in text
    assert "no                   -> improve_failover  (via chaos_not_resilient)" in text


def test_the_dag_file_shows_the_table_of_the_code():
    source = (REPO_ROOT / "dags" / "perf_pipeline.py").read_text(encoding="utf-8")
    assert pipeline.render() in ast.get_docstring(ast.parse(source), clean=False)
    assert len(source.splitlines()) <= 40  # one screen


@pytest.fixture(scope="module")
def dag():
    from perfpipe.entry.dag_factory import build_pipeline_dag

    return build_pipeline_dag()


def test_every_decision_is_a_labelled_edge_of_its_gate_in_the_dag(dag):
    for gate, verdict, include_soak in product(TREE, ("pass", "fail"), (False, True)):
        choice = pipeline.decide(gate.stage, stage_result(verdict=verdict), include_soak)
        task_id = pipeline.branch_task_id(gate.stage, choice)
        gate_id = f"{gate.stage}_gate"
        assert task_id in dag.task_dict[gate_id].downstream_task_ids, (gate_id, task_id)
        label = dag.get_edge_info(gate_id, task_id).get("label")
        assert label and label.startswith("yes" if verdict == "pass" else "no"), (gate_id, task_id, label)


def test_the_dag_has_no_task_the_table_does_not_declare(dag):
    stage_tasks = {f"{s}.{t}" for s in pipeline.STAGES for t in ("validate", "run_k6", "evaluate", "record")}
    gate_tasks = {f"{s}_gate" for s in pipeline.STAGES}
    edges = {b.edge for g in TREE for _, b in g.branches() if b.edge}
    assert set(dag.task_dict) == stage_tasks | gate_tasks | edges | set(pipeline.OUTCOMES) | {"report"}
    assert pipeline.render() in dag.doc_md


def test_the_readme_shows_the_table_of_the_code():
    assert pipeline.render() in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
