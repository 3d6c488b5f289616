"""perfpipe.app.gates: one check, and the verdict a gate adds up to."""

from __future__ import annotations

import pytest

from perfpipe.app import gates
from perfpipe.app.gates import ABORTED, FAIL, INCONCLUSIVE, PASS, WARN, failed_checks
from perfpipe.core.model.plan import PlannedCheck


# Checks are written here as the mappings gates.yaml and a plan's JSON hold; the gate takes them as PlannedCheck.
def evaluate_check(name, check, *args, **kwargs):
    return gates.evaluate_check(name, PlannedCheck(**check), *args, **kwargs)


def evaluate_gate(metrics, checks, **kwargs):
    return gates.evaluate_gate(metrics, {name: PlannedCheck(**c) for name, c in checks.items()}, **kwargs)


@pytest.mark.parametrize("op, threshold, value, result", [
    # without a warn band the threshold alone decides; boundary values sit exactly on the threshold
    ("<", 500, 499.999, PASS), ("<", 500, 500, FAIL), ("<", 500, 501, FAIL),
    ("<=", 0.0, 0.0, PASS), ("<=", 0.0, 0.0001, FAIL),
    (">", 0, 1, PASS), (">", 0, 0, FAIL), (">", 0, -1, FAIL),
    (">=", 0.99, 0.99, PASS), (">=", 0.99, 1.0, PASS), (">=", 0.99, 0.9899, FAIL),
])
def test_check_without_warn(op, threshold, value, result):
    row = evaluate_check("m", {"op": op, "threshold": threshold}, value)
    assert row == {"name": "m", "metric": "m", "op": op, "threshold": threshold, "warn": None, "weight": 1.0,
                   "key": True, "value": value, "result": result}


@pytest.mark.parametrize("op, threshold, warn, value, result", [
    # "<": pass below warn, warn from warn (inclusive) up to threshold, fail at threshold
    ("<", 500, 300, 299, PASS), ("<", 500, 300, 300, WARN), ("<", 500, 300, 499, WARN), ("<", 500, 300, 500, FAIL),
    # "<=": warn and threshold themselves still satisfy their bound
    ("<=", 500, 300, 300, PASS), ("<=", 500, 300, 300.5, WARN), ("<=", 500, 300, 500, WARN),
    ("<=", 500, 300, 500.5, FAIL),
    # ">": pass above warn, warn from warn down to threshold, fail at threshold
    (">", 10, 50, 51, PASS), (">", 10, 50, 50, WARN), (">", 10, 50, 11, WARN), (">", 10, 50, 10, FAIL),
    # ">="
    (">=", 0.99, 0.995, 0.995, PASS), (">=", 0.99, 0.995, 0.994, WARN), (">=", 0.99, 0.995, 0.99, WARN),
    (">=", 0.99, 0.995, 0.98, FAIL),
])
def test_check_with_warn_band(op, threshold, warn, value, result):
    row = evaluate_check("p95_ms", {"op": op, "threshold": threshold, "warn": warn}, value)
    assert row == {"name": "p95_ms", "metric": "p95_ms", "op": op, "threshold": threshold, "warn": warn,
                   "weight": 1.0, "key": True, "value": value, "result": result}


@pytest.mark.parametrize("check", [{"op": "<", "threshold": 500}, {"op": ">=", "threshold": 0, "warn": 1}])
def test_missing_value_fails_with_reason(check):
    row = evaluate_check("rps", check, None)
    assert row["result"] == FAIL
    assert row["reason"] == "no data"
    assert row["value"] is None


def test_zero_is_a_value_not_missing_data():
    assert evaluate_check("error_rate", {"op": "<=", "threshold": 0.0}, 0)["result"] == PASS
    assert "reason" not in evaluate_check("error_rate", {"op": "<=", "threshold": 0.0}, 0)


GATES = {"p95_ms": {"op": "<", "threshold": 500, "warn": 300}, "error_rate": {"op": "<", "threshold": 0.01}}
PASSING = {"p95_ms": 100, "error_rate": 0.0}
WARNING = {"p95_ms": 400, "error_rate": 0.0}
FAILING = {"p95_ms": 400, "error_rate": 0.5}


@pytest.mark.parametrize("metrics, complete, aborted, verdict", [
    (PASSING, True, False, PASS),
    (WARNING, True, False, WARN),
    (FAILING, True, False, FAIL),
    ({"p95_ms": 100}, True, False, FAIL),  # missing metric -> no data -> fail
    (PASSING, False, False, INCONCLUSIVE),  # incomplete metrics never pass ...
    (FAILING, False, False, INCONCLUSIVE),  # ... and are not judged failed either
    (PASSING, True, True, ABORTED),
    (FAILING, False, True, ABORTED),  # aborted beats everything
])
def test_verdict_precedence(metrics, complete, aborted, verdict):
    result, checks, _score = evaluate_gate(metrics, GATES, metrics_complete=complete, aborted=aborted)
    assert result == verdict
    assert [c["name"] for c in checks] == ["p95_ms", "error_rate"]  # every check kept as evidence


def test_checks_carry_the_evidence():
    _, checks, _score = evaluate_gate(WARNING, GATES, metrics_complete=True)
    assert checks == [
        {"name": "p95_ms", "metric": "p95_ms", "op": "<", "threshold": 500, "warn": 300, "weight": 1.0,
         "key": True, "value": 400, "result": WARN},
        {"name": "error_rate", "metric": "error_rate", "op": "<", "threshold": 0.01, "warn": None, "weight": 1.0,
         "key": True, "value": 0.0, "result": PASS},
    ]


def test_crossed_k6_thresholds_add_a_failing_check():
    verdict, checks, _score = evaluate_gate(PASSING, GATES, metrics_complete=True, k6_thresholds_ok=False)
    assert verdict == FAIL
    assert checks[-1] == {"name": "k6_thresholds", "metric": "k6_thresholds", "op": "==", "threshold": "ok",
                          "warn": None, "weight": 1.0, "key": True, "value": "crossed", "result": FAIL}
    assert [c["name"] for c in failed_checks(checks)] == ["k6_thresholds"]


def test_crossed_k6_thresholds_still_lose_to_inconclusive_and_aborted():
    assert evaluate_gate(PASSING, GATES, metrics_complete=False, k6_thresholds_ok=False)[0] == INCONCLUSIVE
    assert evaluate_gate(PASSING, GATES, metrics_complete=True, k6_thresholds_ok=False, aborted=True)[0] == ABORTED


def test_empty_gate_passes_when_complete():
    assert evaluate_gate({}, {}, metrics_complete=True) == (PASS, [], None)


def test_failed_checks_filters_failures_only():
    _, checks, _score = evaluate_gate(FAILING, GATES, metrics_complete=True)
    assert failed_checks(checks) == [checks[1]]


# ------------------------------------------------------------------------------ baselines, weights, key, score

RELATIVE = {"op": "<=", "threshold": None, "relative": 10.0, "warn_relative": 5.0, "baseline_runs": 5}


@pytest.mark.parametrize("value, result", [(100.0, PASS), (105.0, PASS), (107.0, WARN), (110.0, WARN),
                                           (110.1, FAIL), (150.0, FAIL)])
def test_relative_check_against_baseline(value, result):
    row = evaluate_check("p95_vs_baseline", dict(RELATIVE, metric="p95_ms"), value, baseline=100.0)
    assert row["result"] == result
    assert row["threshold"] == pytest.approx(110.0) and row["warn"] == pytest.approx(105.0)
    assert row["baseline"] == 100.0 and row["relative"] == "+10%" and row["metric"] == "p95_ms"


def test_relative_check_without_baseline_is_skipped_not_passed():
    verdict, checks, score = evaluate_gate({"p95_ms": 999.0}, {"p95_ms": RELATIVE}, metrics_complete=True,
                                           baselines={"p95_ms": None})
    assert checks[0]["result"] == "skipped" and "baseline" in checks[0]["reason"]
    assert score is None and verdict == PASS


def test_failed_key_check_fails_the_gate_but_a_soft_one_only_warns():
    gates = {"p95_ms": {"op": "<", "threshold": 500, "weight": 3.0},
             "avg_ms": {"op": "<", "threshold": 1, "key": False}}
    verdict, checks, score = evaluate_gate({"p95_ms": 100, "avg_ms": 5}, gates, metrics_complete=True)
    assert verdict == WARN and score == 75.0  # 3 of 4 weight units passed
    verdict, _, score = evaluate_gate({"p95_ms": 600, "avg_ms": 0.5}, gates, metrics_complete=True)
    assert verdict == FAIL and score == 25.0


def test_low_score_fails_even_without_a_key_check():
    gates = {m: {"op": "<", "threshold": 1, "key": False} for m in ("p95_ms", "p99_ms", "avg_ms")}
    verdict, _, score = evaluate_gate({"p95_ms": 0.5, "p99_ms": 5, "avg_ms": 5}, gates, metrics_complete=True)
    assert score == pytest.approx(33.3) and verdict == FAIL
