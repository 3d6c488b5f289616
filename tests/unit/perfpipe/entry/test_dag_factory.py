"""perfpipe.entry.dag_factory: the overrides Param schema and Airflow's outer timeout (no DAG run, no DB)."""

from __future__ import annotations

import jsonschema
import pytest

from perfpipe import TEST_TYPES
from perfpipe.app.config import apply_overrides, build_plan
from perfpipe.entry.dag_factory import OVERRIDES_SCHEMA, execution_timeout
from perfpipe.app.config import run_timeout_s


def _errors(value):
    validator = jsonschema.validators.validator_for(OVERRIDES_SCHEMA)(OVERRIDES_SCHEMA,
                                                                      format_checker=jsonschema.FormatChecker())
    return [e.message for e in validator.iter_errors(value)]


def test_schema_itself_is_valid():
    jsonschema.validators.validator_for(OVERRIDES_SCHEMA).check_schema(OVERRIDES_SCHEMA)


def test_schema_accepts_documented_overrides():
    assert _errors({"vus": 10, "load.duration": "30s", "thresholds.p95_ms": 300, "thresholds.error_rate.warn": 0.01,
                    "stages": "5s:10,10s:20"}) == []


@pytest.mark.parametrize("overrides", [
    {},
    {"executor": "constant-vus", "vus": 20_000, "duration": 90},
    {"spike.stages": [{"duration": "5s", "target": 0}, {"duration": 3, "target": 20}]},
    {"think_time_s": 0, "read_ratio": 1, "graceful_stop": "1m30s", "graceful_ramp_down": "500ms"},
    {"thresholds.p95_ms": "<= 250", "thresholds.rps.op": ">", "soak.thresholds.p99_ms.threshold": 900,
     "thresholds.avg_ms": None},
])
def test_schema_accepts(overrides):
    assert _errors(overrides) == []


@pytest.mark.parametrize("overrides, message", [
    ({"vus": 0}, "0 is less than the minimum of 1"),
    ({"vus": 20_001}, "20001 is greater than the maximum of 20000"),
    ({"vus": "ten"}, "'ten' is not of type 'integer'"),
    ({"duration": "10 minutes"}, "'10 minutes' is not valid under any of the given schemas"),
    ({"read_ratio": 1.5}, "1.5 is greater than the maximum of 1"),
    ({"think_time_s": 61}, "61 is greater than the maximum of 60"),
    ({"executor": "shared-iterations"}, "'shared-iterations' is not one of ['constant-vus', 'ramping-vus']"),
    ({"thresholds.p95_ms.op": "=="}, "'==' is not one of ['<', '<=', '>', '>=']"),
    ({"stages": "5s-10"}, "'5s-10' is not valid under any of the given schemas"),
])
def test_schema_rejects_bad_values(overrides, message):
    assert _errors(overrides) == [message]


@pytest.mark.parametrize("key", ["bogus", "thresholds.latency", "load.bogus", "endurance.vus",
                                 "thresholds.p95_ms.limit", "vus.max"])
def test_schema_rejects_unknown_keys(key):
    errors = _errors({key: 1})
    assert errors and all(e.startswith(f"{key!r} does not match ") for e in errors)


def test_schema_accepts_start_vus_zero():
    shape = {"executor": "ramping-vus", "start_vus": 5, "stages": [{"duration": "5s", "target": 5}]}
    apply_overrides("spike", shape, {}, {"spike.start_vus": 0})  # the backend takes it ...
    assert shape["start_vus"] == 0
    assert _errors({"spike.start_vus": 0}) == []  # ... and so does the Params form: a ramp may start from nothing


def test_schema_accepts_threshold_mapping_form(api_target):
    override = {"thresholds.p95_ms": {"op": "<=", "threshold": 300, "warn": 200}}
    assert build_plan("load", api_target, "quick", override)["gates"]["p95_ms"] == \
        {"op": "<=", "threshold": 300.0, "warn": 200.0}
    assert _errors(override) == []


@pytest.mark.parametrize("test_type", TEST_TYPES)
def test_execution_timeout_is_at_least_twice_the_standard_duration(test_type, api_target):
    standard = build_plan(test_type, api_target, "standard")
    timeout = execution_timeout(test_type).total_seconds()
    assert timeout >= 2 * standard["expected_duration_s"]
    # k6's own, tighter limit fires first, so a slow run ends as a k6 timeout rather than an Airflow kill
    assert run_timeout_s(standard) < timeout


def test_airflow_param_enforces_the_schema():
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    assert Param({}, **OVERRIDES_SCHEMA).resolve({"load.vus": 10}) == {"load.vus": 10}
    with pytest.raises(ParamValidationError, match="20001 is greater than the maximum of 20000"):
        Param({}, **OVERRIDES_SCHEMA).resolve({"vus": 20_001})
