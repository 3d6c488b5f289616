"""Stage results as tests write them: the fields of a perf_results point, read back the way InfluxDB's are."""

from __future__ import annotations

import json
from typing import Any

from perfpipe.app.results import stage_from_point
from perfpipe.core.model.plan import StageResult

_TAGS = {"test_type": "load", "target": "demo", "dag_id": "perf_pipeline", "run_id": "r1", "verdict": "pass",
         "testid": "perf_pipeline:r1:load:try1"}


def stage_result(**point: Any) -> StageResult:
    """A StageResult from a point's fields (`checks` and `analysis` as values, not JSON text)."""
    point = {**_TAGS, **point}
    if "checks" in point:
        point["checks_json"] = json.dumps(point.pop("checks"))
    if "analysis" in point:
        point["analysis_json"] = json.dumps(point.pop("analysis"))
    return stage_from_point(point)
