"""The decision tree: which stage follows which, and which remediation a failed gate leads to.

    smoke passed?             -> load    | fix_issues
    performance targets met?  -> stress  | optimize_system
    breaking point ok?        -> spike   | scale_system
    spike resilient?          -> chaos   | improve_failover
    resilience validated?     -> soak (if include_soak) or ready_to_deploy | improve_failover
    no degradation over time? -> ready_to_deploy | optimize_system

Pure logic over perf_results points; the DAG wiring lives in perfpipe.entry.dag_factory.
"""

from __future__ import annotations

from typing import Any

from perfpipe.app.gates import FAIL, PASS, WARN, describe_failures

READY = "ready_to_deploy"
FIX_ISSUES, OPTIMIZE, SCALE, IMPROVE_FAILOVER = "fix_issues", "optimize_system", "scale_system", "improve_failover"
OUTCOMES = (READY, FIX_ISSUES, OPTIMIZE, SCALE, IMPROVE_FAILOVER)
STAGES = ("smoke", "load", "stress", "spike", "chaos", "soak")

# stage -> (question its gate answers, remediation when the answer is no)
GATES: dict[str, tuple[str, str]] = {
    "smoke": ("smoke passed?", FIX_ISSUES),
    "load": ("performance targets met?", OPTIMIZE),
    "stress": ("breaking point acceptable?", SCALE),
    "spike": ("recovers from a spike?", IMPROVE_FAILOVER),
    "chaos": ("resilience validated?", IMPROVE_FAILOVER),
    "soak": ("stable over time?", OPTIMIZE),
}
REMEDIATION_ADVICE = {
    FIX_ISSUES: "Fix the failing endpoints before any load test: the smoke test found errors at minimal load.",
    OPTIMIZE: "Optimize the system: it misses its performance targets at the expected load.",
    SCALE: "Scale the system: it breaks below the capacity it must carry.",
    IMPROVE_FAILOVER: "Improve failover and recovery: the system does not absorb spikes or faults.",
    READY: "All gates passed: ready to deploy.",
}


# Named edges into outcomes that several gates lead to. Airflow does not skip a branch's child that is also
# reachable from the chosen branch, so a shared outcome sits behind one edge task per gate.
EDGES: dict[tuple[str, str], str] = {
    ("load", OPTIMIZE): "load_targets_missed",
    ("soak", OPTIMIZE): "soak_degraded",
    ("spike", IMPROVE_FAILOVER): "spike_not_resilient",
    ("chaos", IMPROVE_FAILOVER): "chaos_not_resilient",
    ("chaos", READY): "chaos_resilient",
    ("soak", READY): "soak_stable",
}


class InconclusiveStage(Exception):
    """The stage produced no trustworthy verdict (incomplete metrics, aborted): not a performance result."""


def next_stage(stage: str, include_soak: bool) -> str:
    """The stage (or ready_to_deploy) that follows a passed gate."""
    order = [s for s in STAGES if s != "soak" or include_soak]
    index = order.index(stage)
    return order[index + 1] if index + 1 < len(order) else READY


def decide(stage: str, result: dict[str, Any] | None, include_soak: bool) -> str:
    """The branch a gate takes: the next stage, ready_to_deploy or the stage's remediation outcome."""
    if result is None:
        raise InconclusiveStage(f"{stage}: no perf_results point was recorded for this run")
    verdict = result.get("verdict")
    if verdict in (PASS, WARN):
        return next_stage(stage, include_soak)
    if verdict == FAIL:
        return GATES[stage][1]
    raise InconclusiveStage(f"{stage}: verdict {verdict!r} (metrics_complete={result.get('metrics_complete')}, "
                            f"{result.get('samples_stored')} of {result.get('samples_expected')} samples stored)")


def branch_task_id(stage: str, choice: str) -> str:
    """The task a gate follows for a decision: a stage's first task, an edge task or an outcome."""
    if choice in STAGES:
        return f"{choice}.validate"
    return EDGES.get((stage, choice), choice)


def evidence(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The failed checks of a stage result: name, value, operator and threshold."""
    return [{"stage": result["test_type"], **{k: c.get(k) for k in ("name", "value", "op", "threshold", "result")}}
            for c in result.get("checks", []) if c.get("result") == FAIL]


def explain(outcome: str, failed: dict[str, Any] | None) -> str:
    if failed is None:
        return REMEDIATION_ADVICE[outcome]
    return f"{REMEDIATION_ADVICE[outcome]} {failed['test_type']} gate failed: {describe_failures(failed['checks'])}"
