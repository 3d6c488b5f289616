"""The plan of one k6 run and the result of one stage: what tasks hand each other (through XCom, as JSON).

A TestPlan is built once, by perfpipe.app.stage (from target, profile, overrides and scenario), before any load;
it is frozen and no key is added later. Tasks receive it as JSON and read it back with `TestPlan.from_json_data`,
which checks its shape again (an XCom is data another process wrote).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, Strict

from perfpipe import TEST_TYPES
from perfpipe.core.model.base import FiniteNumber, NonNegativeNumber, StrictModel

TestType = Literal[tuple(TEST_TYPES)]
Op = Literal["<", "<=", ">", ">="]


class PlannedCheck(StrictModel):
    """A gate check as the gate applies it: absolute (`threshold`, `warn`) or relative to a baseline (`relative`,
    `warn_relative` in percent of the median of the last `baseline_runs` passing runs)."""

    op: Op
    threshold: FiniteNumber | None = None
    warn: FiniteNumber | None = None
    relative: FiniteNumber | None = None
    warn_relative: FiniteNumber | None = None
    baseline_runs: Annotated[int, Strict(), Field(ge=1, le=100)] | None = None
    metric: str | None = None
    weight: Annotated[FiniteNumber, Field(gt=0)] = 1.0
    key: Annotated[bool, Strict()] = True


class ChaosPlan(StrictModel):
    """The fault a chaos run injects, on which component, and the gate's tolerance of it."""

    scenario: str
    component: str
    action: str
    spec: dict[str, Any]
    tolerance: dict[str, FiniteNumber]
    phases_s: dict[str, NonNegativeNumber] | None = None


class TestPlan(StrictModel):
    """One k6 run, fully resolved and checked: nothing in it is read from config again at run time."""

    __test__ = False  # not a pytest test class, whatever its name

    test_type: TestType
    profile: str
    target: dict[str, Any]  # the planned target (perfpipe.app.targets.validate_target): header values still refs
    shape: dict[str, Any]  # the load shape as k6-scripts/lib/compile.js reads it
    gates: dict[str, PlannedCheck]
    expected_duration_s: NonNegativeNumber
    peak_vus: Annotated[int, Strict(), Field(ge=0)]
    analysis: dict[str, Any]
    skipped_checks: dict[str, str] = {}
    chaos: ChaosPlan | None = None
    allowed_addresses: tuple[str, ...] = ()  # what the allowlist check resolved the target's host to

    @property
    def target_name(self) -> str:
        return self.target["name"]

    def to_json_data(self) -> dict[str, Any]:
        """The plan as XCom carries it (plain JSON)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json_data(cls, data: Any) -> "TestPlan":
        """A plan from XCom (or a file): checked against the model; lax on JSON's number and list types only."""
        if isinstance(data, TestPlan):
            return data
        return cls.model_validate_json(_json(data)) if not isinstance(data, str) else cls.model_validate_json(data)


def _json(data: Any) -> str:
    return json.dumps(data)


Verdict = Literal["pass", "warn", "fail", "skipped", "inconclusive", "aborted"]


class StageResult(StrictModel):
    """What one stage measured and decided: evaluate's result, recorded as its perf_results point
    (perfpipe.app.results.result_point) and handed to the next task through XCom as JSON."""

    test_type: TestType
    target: str
    profile: str
    dag_id: str
    run_id: str
    testid: str
    verdict: Verdict
    score: FiniteNumber | None = None  # None: no check was evaluated
    metrics: dict[str, Any]  # the gate's figures by name (perfpipe.app.measurements: METRIC/ANALYSIS/SAMPLE_FIELDS)
    checks: list[dict[str, Any]]  # every check with its evidence (perfpipe.app.gates.evaluate_check)
    analysis: dict[str, Any] = {}  # the test type's analysis details (windows, events, series)
    report: str = ""
    summary: str = ""
    k6_exit_code: int | None = None
    started_at: str | None = None
    ended_at: str | None = None

    def to_json_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json_data(cls, data: Any) -> "StageResult":
        if isinstance(data, StageResult):
            return data
        return cls.model_validate_json(_json(data))
