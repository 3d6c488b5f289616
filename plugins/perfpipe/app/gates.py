"""Gate evaluation: measured metrics vs checks -> pass / warn / fail / inconclusive, with every check's evidence.

Pure logic; no I/O. A check `{op: "<", threshold: 500, warn: 300}` passes below 300, warns from 300 to 500 and
fails at 500 or more. A relative check (`threshold: "+10%"`) compares with a baseline value; without a baseline it
is `skipped`, never passed. Like Keptn's quality gates, checks carry a weight and a key flag: a failed key check
fails the gate; the weighted score (pass 1, warn 0.5, fail 0; skipped checks left out) must reach SCORE_PASS to
pass and SCORE_WARN not to fail. Incomplete metrics never pass: the verdict is `inconclusive`.
"""

from __future__ import annotations

import operator
from typing import Any

from perfpipe.core.model.plan import PlannedCheck

PASS, WARN, FAIL, SKIPPED, INCONCLUSIVE, ABORTED = "pass", "warn", "fail", "skipped", "inconclusive", "aborted"
SCORE_PASS, SCORE_WARN = 90.0, 75.0
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_POINTS = {PASS: 1.0, WARN: 0.5, FAIL: 0.0}


def evaluate_check(name: str, check: PlannedCheck, value: float | None,
                   baseline: float | None = None) -> dict[str, Any]:
    op, threshold, warn = check.op, check.threshold, check.warn
    row: dict[str, Any] = {"name": name, "metric": check.metric or name, "op": op, "threshold": threshold,
                           "warn": warn, "weight": check.weight, "key": check.key, "value": value}
    if check.relative is not None:
        row.update(relative=f"{check.relative:+g}%", baseline=baseline)
        if baseline is None:
            return {**row, "result": SKIPPED, "reason": "no baseline yet (no earlier passing run)"}
        threshold = row["threshold"] = round(baseline * (1 + check.relative / 100), 6)
        if check.warn_relative is not None:
            warn = row["warn"] = round(baseline * (1 + check.warn_relative / 100), 6)
    if value is None:
        return {**row, "result": FAIL, "reason": "no data"}
    if not _OPS[op](value, threshold):
        return {**row, "result": FAIL}
    if warn is not None and not _OPS[op](value, warn):
        return {**row, "result": WARN}
    return {**row, "result": PASS}


def score(checks: list[dict]) -> float | None:
    """Weighted score in percent over the checks that were evaluated (None when none were)."""
    rated = [c for c in checks if c["result"] in _POINTS]
    total = sum(c["weight"] for c in rated)
    if not total:
        return None
    return round(100 * sum(c["weight"] * _POINTS[c["result"]] for c in rated) / total, 1)


def evaluate_gate(metrics: dict[str, Any], gates: dict[str, PlannedCheck], *, metrics_complete: bool,
                  k6_thresholds_ok: bool = True, aborted: bool = False,
                  baselines: dict[str, float | None] | None = None,
                  skipped: dict[str, str] | None = None) -> tuple[str, list[dict], float | None]:
    """All checks of a gate, the verdict they add up to and the gate's score. `skipped` names checks the target
    is not set up for (with the reason): shown as skipped, never passed."""
    baselines, skipped = baselines or {}, skipped or {}
    checks = [evaluate_check(name, check, metrics.get(check.metric or name), baselines.get(name))
              if name not in skipped else
              {**evaluate_check(name, check, None), "result": SKIPPED, "reason": skipped[name]}
              for name, check in gates.items()]
    if not k6_thresholds_ok:
        # The user's own k6 script declared thresholds and k6 reported them crossed (exit 99).
        checks.append({"name": "k6_thresholds", "metric": "k6_thresholds", "op": "==", "threshold": "ok",
                       "warn": None, "weight": 1.0, "key": True, "value": "crossed", "result": FAIL})
    total = score(checks)
    key_failed = any(c["result"] == FAIL and c["key"] for c in checks)
    soft_failed = any(c["result"] in (FAIL, WARN) for c in checks)
    if aborted:
        verdict = ABORTED
    elif not metrics_complete:
        verdict = INCONCLUSIVE
    elif key_failed or (total is not None and total < SCORE_WARN):
        verdict = FAIL
    elif soft_failed or (total is not None and total < SCORE_PASS):
        verdict = WARN
    else:
        verdict = PASS
    return verdict, checks, total


def failed_checks(checks: list[dict]) -> list[dict]:
    return [c for c in checks if c["result"] == FAIL]


def describe_failures(checks: list[dict]) -> str:
    """`p95_ms = 812.0 (needs < 500.0); ...` for the failed checks: the evidence in one line."""
    return "; ".join(f"{c['name']} = {c['value']} (needs {c['op']} {c['threshold']})" for c in failed_checks(checks))
