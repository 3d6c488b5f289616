"""A pipeline run's conclusion: the decision path, the outcome and its evidence, stored in InfluxDB.

Measurement `perf_pipeline`: one point per pipeline run (tags dag_id, run_id, target; time = logical date) with
fields outcome, path, explanation and evidence_json, so a rerun of the date replaces it.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from perfpipe.app import pipeline
from perfpipe.app.gates import FAIL
from perfpipe.core.hooks.influxdb import InfluxDBHook
from perfpipe.app.results import read_results

log = logging.getLogger(__name__)

PIPELINE_MEASUREMENT = "perf_pipeline"


def stage_results(hook: InfluxDBHook, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """The run's perf_results points in decision-tree order."""
    by_type = {p["test_type"]: p for p in read_results(hook, dag_id, run_id)}
    return [by_type[s] for s in pipeline.STAGES if s in by_type]


def conclude(outcome: str, dag_id: str, run_id: str, logical_date: datetime) -> dict[str, Any]:
    """Record the outcome with its evidence; a remediation outcome then fails the task (and the run)."""
    hook = InfluxDBHook()
    stages = stage_results(hook, dag_id, run_id)
    failed = None
    if outcome != pipeline.READY:
        failed = next((s for s in reversed(stages) if s["verdict"] == FAIL), None)
    conclusion = {
        "outcome": outcome,
        "path": [s["test_type"] for s in stages] + [outcome],
        "target": stages[0]["target"] if stages else "",
        "explanation": pipeline.explain(outcome, failed),
        "evidence": pipeline.evidence(failed) if failed else [],
    }
    hook.write([{
        "measurement": PIPELINE_MEASUREMENT,
        "tags": {"dag_id": dag_id, "run_id": run_id, "target": conclusion["target"]},
        "time": int(logical_date.timestamp() * 1000),
        "fields": {"outcome": outcome, "path": " -> ".join(conclusion["path"]),
                   "explanation": conclusion["explanation"],
                   "evidence_json": json.dumps(conclusion["evidence"], sort_keys=True)},
    }], time_precision="ms")
    log.info("decision path: %s", " -> ".join(conclusion["path"]))
    log.info("outcome %s: %s", outcome.upper(), conclusion["explanation"])
    if outcome != pipeline.READY:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{outcome}: {conclusion['explanation']}")
    return conclusion


def read_conclusion(hook: InfluxDBHook, dag_id: str, run_id: str) -> dict[str, Any] | None:
    points = hook.query(f'SELECT * FROM "{PIPELINE_MEASUREMENT}" WHERE "dag_id" = $dag_id AND "run_id" = $run_id',
                        {"dag_id": dag_id, "run_id": run_id})
    if not points:
        return None
    point = points[-1]
    return {"outcome": point["outcome"], "path": point["path"].split(" -> "), "target": point.get("target"),
            "explanation": point.get("explanation"), "evidence": json.loads(point.get("evidence_json") or "[]")}
