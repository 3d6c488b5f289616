"""The decision tree: which stage follows which, and which remediation a failed gate leads to.

TREE below is the one declaration: one row per stage with the question its gate answers, where a yes leads
(the first branch whose run param holds: chaos -> soak with include_soak, else ready_to_deploy) and the
remediation outcome a no leads to, with the edge task in between where several gates share an outcome.
decide(), next_stage(), branch_task_id() and the pipeline DAG (perfpipe.entry.dag_factory.build_pipeline_dag)
are derived from it; render() prints it (the DAG's docs and dags/perf_pipeline.py show that).

Pure logic over perf_results points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from perfpipe.app.gates import FAIL, PASS, WARN, describe_failures
from perfpipe.core.model.plan import StageResult

READY = "ready_to_deploy"
FIX_ISSUES, OPTIMIZE, SCALE, IMPROVE_FAILOVER = "fix_issues", "optimize_system", "scale_system", "improve_failover"
REMEDIATION_ADVICE = {
    FIX_ISSUES: "Fix the failing endpoints before any load test: the smoke test found errors at minimal load.",
    OPTIMIZE: "Optimize the system: it misses its performance targets at the expected load.",
    SCALE: "Scale the system: it breaks below the capacity it must carry.",
    IMPROVE_FAILOVER: "Improve failover and recovery: the system does not absorb spikes or faults.",
    READY: "All gates passed: ready to deploy.",
}
INCLUDE_SOAK = "include_soak"  # the pipeline's boolean run param that adds the (long) soak stage


@dataclass(frozen=True)
class Branch:
    """Where a gate's answer leads: a stage, ready_to_deploy or a remediation outcome.

    `edge`: the task between the gate and an outcome several gates lead to (Airflow does not skip a branch's child
    that is also reachable from the chosen branch, so a shared outcome sits behind one edge task per gate).
    `when`: a boolean run param that must be true for this branch to be taken (else the next branch is)."""

    to: str
    edge: str | None = None
    when: str | None = None


@dataclass(frozen=True)
class Gate:
    """One row of the tree: a stage, the question its gate answers, the yes branches (first that holds) and the no."""

    stage: str
    question: str
    yes: tuple[Branch, ...]
    no: Branch

    def answer(self, passed: bool, flags: Mapping[str, bool]) -> Branch:
        if not passed:
            return self.no
        return next(b for b in self.yes if b.when is None or flags.get(b.when))

    def branches(self) -> list[tuple[str, Branch]]:
        """Every branch with its edge label ("yes", "yes if include_soak", "no"), for the DAG and the docs."""
        labels, conditional = [], False
        for branch in self.yes:
            labels.append((f"yes if {branch.when}" if branch.when else "yes, otherwise" if conditional else "yes",
                           branch))
            conditional = conditional or branch.when is not None
        return labels + [("no", self.no)]


TREE: tuple[Gate, ...] = (
    #     stage     question                      yes: where a passed gate leads                  no: remediation
    Gate("smoke",  "smoke passed?",              (Branch("load"),),                              Branch(FIX_ISSUES)),
    Gate("load",   "performance targets met?",   (Branch("stress"),),
         Branch(OPTIMIZE, edge="load_targets_missed")),
    Gate("stress", "breaking point acceptable?", (Branch("spike"),),                             Branch(SCALE)),
    Gate("spike",  "recovers from a spike?",     (Branch("chaos"),),
         Branch(IMPROVE_FAILOVER, edge="spike_not_resilient")),
    Gate("chaos",  "resilience validated?",      (Branch("soak", when=INCLUDE_SOAK),
                                                  Branch(READY, edge="chaos_resilient")),
         Branch(IMPROVE_FAILOVER, edge="chaos_not_resilient")),
    Gate("soak",   "stable over time?",          (Branch(READY, edge="soak_stable"),),
         Branch(OPTIMIZE, edge="soak_degraded")),
)
GATES: dict[str, Gate] = {gate.stage: gate for gate in TREE}
STAGES = tuple(GATES)
OUTCOMES = (READY, FIX_ISSUES, OPTIMIZE, SCALE, IMPROVE_FAILOVER)


def render() -> str:
    """The tree as text, one line per branch: what the DAG's docs and dags/perf_pipeline.py show."""
    lines = []
    for gate in TREE:
        for label, branch in gate.branches():
            head = f"{gate.stage + ':':8}{gate.question:28}" if label.startswith("yes") and branch is gate.yes[0] \
                else " " * 36
            via = f"  (via {branch.edge})" if branch.edge else ""
            lines.append(f"{head}{label:20} -> {branch.to}{via}")
    return "\n".join(lines)


def happy_path(include_soak: bool) -> list[str]:
    """The stages a run goes through when every gate passes."""
    stages, stage = [], STAGES[0]
    while stage in GATES:
        stages.append(stage)
        stage = next_stage(stage, include_soak)
    return stages


class InconclusiveStage(Exception):
    """The stage produced no trustworthy verdict (incomplete metrics, aborted): not a performance result."""


def next_stage(stage: str, include_soak: bool) -> str:
    """The stage (or ready_to_deploy) that follows a passed gate."""
    return GATES[stage].answer(True, {INCLUDE_SOAK: include_soak}).to


def decide(stage: str, result: StageResult | None, include_soak: bool) -> str:
    """The branch a gate takes: the next stage, ready_to_deploy or the stage's remediation outcome."""
    if result is None:
        raise InconclusiveStage(f"{stage}: no perf_results point was recorded for this run")
    verdict = result.verdict
    if verdict in (PASS, WARN, FAIL):
        return GATES[stage].answer(verdict != FAIL, {INCLUDE_SOAK: include_soak}).to
    m = result.metrics
    raise InconclusiveStage(f"{stage}: verdict {verdict!r} (metrics_complete={m.get('metrics_complete')}, "
                            f"{m.get('samples_stored')} of {m.get('samples_expected')} samples stored)")


def task_id_of(branch: Branch) -> str:
    """The task a branch starts at: a stage's first task, the edge task or the outcome."""
    if branch.to in GATES:
        return f"{branch.to}.validate"
    return branch.edge or branch.to


def branch_task_id(stage: str, choice: str) -> str:
    """The task a gate follows for a decision (see decide)."""
    for _, branch in GATES[stage].branches():
        if branch.to == choice:
            return task_id_of(branch)
    raise ValueError(f"{stage} gate: no branch leads to {choice!r}")


def evidence(result: StageResult) -> list[dict[str, Any]]:
    """The failed checks of a stage result: name, value, operator and threshold."""
    return [{"stage": result.test_type, **{k: c.get(k) for k in ("name", "value", "op", "threshold", "result")}}
            for c in result.checks if c.get("result") == FAIL]


def explain(outcome: str, failed: StageResult | None) -> str:
    if failed is None:
        return REMEDIATION_ADVICE[outcome]
    return f"{REMEDIATION_ADVICE[outcome]} {failed.test_type} gate failed: {describe_failures(failed.checks)}"
