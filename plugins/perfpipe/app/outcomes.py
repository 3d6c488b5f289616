"""What a run comes to: a pipeline run's conclusion (the decision path, the outcome and its evidence, stored in
InfluxDB) and, for any run read back, its outcome and whether the system passed (the CLI's exit code).

Measurement `perf_pipeline` (perfpipe.app.measurements.PERF_PIPELINE): one point per pipeline run (tags dag_id,
run_id, target; time = logical date) with fields outcome, path, explanation and evidence_json; a rerun of the
date and target replaces it once it has recorded its own.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from perfpipe.app import pipeline
from perfpipe.app.gates import ABORTED, FAIL, PASS, WARN
from perfpipe.app.measurements import PATH_SEPARATOR, PERF_PIPELINE
from perfpipe.app.results import drop_other_runs, read_results
from perfpipe.app.influx import influxdb_hook
from perfpipe.core.model.plan import StageResult

if TYPE_CHECKING:  # an Airflow hook: importing Airflow (~4 s) waits until someone makes a hook
    from perfpipe.core.hooks.influxdb import InfluxDBHook

log = logging.getLogger(__name__)

PIPELINE_MEASUREMENT = PERF_PIPELINE.name  # kept for importers


def stage_results(hook: InfluxDBHook, dag_id: str, run_id: str) -> list[StageResult]:
    """The run's stage results in decision-tree order."""
    by_type = {s.test_type: s for s in read_results(hook, dag_id, run_id)}
    return [by_type[s] for s in pipeline.STAGES if s in by_type]


def conclude(outcome: str, dag_id: str, run_id: str, logical_date: datetime) -> dict[str, Any]:
    """Record the outcome with its evidence; a remediation outcome then fails the task (and the run)."""
    hook = influxdb_hook()
    stages = stage_results(hook, dag_id, run_id)
    failed = None
    if outcome != pipeline.READY:
        failed = next((s for s in reversed(stages) if s.verdict == FAIL), None)
    conclusion = {
        "outcome": outcome,
        "path": [s.test_type for s in stages] + [outcome],
        "target": stages[0].target if stages else "",
        "explanation": pipeline.explain(outcome, failed),
        "evidence": pipeline.evidence(failed) if failed else [],
    }
    point = {
        "measurement": PERF_PIPELINE.name,
        "tags": {"dag_id": dag_id, "run_id": run_id, "target": conclusion["target"]},
        "time": int(logical_date.timestamp() * 1000),
        "fields": {"outcome": outcome, "path": PATH_SEPARATOR.join(conclusion["path"]),
                   "explanation": conclusion["explanation"],
                   "evidence_json": json.dumps(conclusion["evidence"], sort_keys=True)},
    }
    hook.write([point], time_precision="ms")
    drop_other_runs(hook, PERF_PIPELINE.name, point, ("dag_id", "target"))  # one outcome per (dag, target, date)
    log.info("decision path: %s", PATH_SEPARATOR.join(conclusion["path"]))
    log.info("outcome %s: %s", outcome.upper(), conclusion["explanation"])
    if outcome != pipeline.READY:
        # Airflow's task-failure exception: raised only inside a task
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{outcome}: {conclusion['explanation']}")
    return conclusion


def read_conclusion(hook: InfluxDBHook, dag_id: str, run_id: str) -> dict[str, Any] | None:
    points = hook.query(f'SELECT * FROM "{PERF_PIPELINE}" WHERE "dag_id" = $dag_id AND "run_id" = $run_id',
                        {"dag_id": dag_id, "run_id": run_id})
    if not points:
        return None
    point = points[-1]
    return {"outcome": point["outcome"], "path": point["path"].split(PATH_SEPARATOR), "target": point.get("target"),
            "explanation": point.get("explanation"), "evidence": json.loads(point.get("evidence_json") or "[]")}


@dataclass(frozen=True)
class RunOutcome:
    """A finished run read back. `passed`: True every gate passed (warn counts as passed), False a gate failed,
    None no verdict on the system (an infrastructure error, metrics too incomplete to judge, a stopped run)."""

    outcome: str
    passed: bool | None


def stages_outcome(verdicts: list[str], expected_stages: int) -> RunOutcome:
    """A run of one or more test stages (no decision tree) from the verdicts of the stages that recorded one."""
    if FAIL in verdicts:
        return RunOutcome("failed", False)
    if len(verdicts) < expected_stages:
        return RunOutcome("error", None)  # a stage never produced a result: infrastructure
    if ABORTED in verdicts:
        return RunOutcome("aborted", None)  # stopped before the end: no verdict on the system
    if all(v in (PASS, WARN) for v in verdicts):
        return RunOutcome("passed_with_warnings" if WARN in verdicts else "passed", True)
    return RunOutcome("inconclusive", None)


def pipeline_outcome(conclusion: dict[str, Any] | None, verdicts: list[str]) -> RunOutcome:
    """A pipeline run from its recorded conclusion (see conclude); without one, no outcome was reached."""
    if conclusion is None:  # stopped from outside, or an infrastructure error
        return RunOutcome("aborted" if ABORTED in verdicts else "error", None)
    return RunOutcome(conclusion["outcome"], conclusion["outcome"] == pipeline.READY)
