"""Gate evaluation: measured metrics vs checks -> pass / warn / fail / inconclusive, with every check's evidence.

Pure logic; no I/O. A check `{op: "<", threshold: 500, warn: 300}` passes below 300, warns from 300 to 500 and
fails at 500 or more. Incomplete metrics never pass: the verdict is `inconclusive`.
"""

from __future__ import annotations

import operator
from typing import Any

PASS, WARN, FAIL, INCONCLUSIVE, ABORTED = "pass", "warn", "fail", "inconclusive", "aborted"
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def evaluate_check(metric: str, check: dict, value: float | None) -> dict[str, Any]:
    op, threshold, warn = check["op"], check["threshold"], check.get("warn")
    row = {"name": metric, "op": op, "threshold": threshold, "warn": warn, "value": value}
    if value is None:
        return {**row, "result": FAIL, "reason": "no data"}
    if not _OPS[op](value, threshold):
        return {**row, "result": FAIL}
    if warn is not None and not _OPS[op](value, warn):
        return {**row, "result": WARN}
    return {**row, "result": PASS}


def evaluate_gate(metrics: dict[str, Any], gates: dict[str, dict], *, metrics_complete: bool,
                  k6_thresholds_ok: bool = True, aborted: bool = False) -> tuple[str, list[dict]]:
    """All checks of a gate and the verdict they add up to."""
    checks = [evaluate_check(metric, check, metrics.get(metric)) for metric, check in gates.items()]
    if not k6_thresholds_ok:
        # The user's own k6 script declared thresholds and k6 reported them crossed (exit 99).
        checks.append({"name": "k6_thresholds", "op": "==", "threshold": "ok", "warn": None,
                       "value": "crossed", "result": FAIL})
    results = {c["result"] for c in checks}
    if aborted:
        verdict = ABORTED
    elif not metrics_complete:
        verdict = INCONCLUSIVE
    elif FAIL in results:
        verdict = FAIL
    elif WARN in results:
        verdict = WARN
    else:
        verdict = PASS
    return verdict, checks


def failed_checks(checks: list[dict]) -> list[dict]:
    return [c for c in checks if c["result"] == FAIL]
