"""perfpipe.entry.dag_factory: the overrides Param schema and Airflow's outer timeout (no DAG run, no DB)."""

from __future__ import annotations

import jsonschema
import pytest

from perfpipe import TEST_TYPES
from perfpipe.app.config import apply_overrides, build_plan
from perfpipe.core.errors import InputError
from perfpipe.core.model.overrides import validate_overrides
from perfpipe.entry.dag_factory import OVERRIDES_SCHEMA, TARGET_OBJECT_SCHEMA, execution_timeout
from perfpipe.app.config import run_timeout_s


def _errors(value):
    validator = jsonschema.validators.validator_for(OVERRIDES_SCHEMA)(OVERRIDES_SCHEMA,
                                                                      format_checker=jsonschema.FormatChecker())
    return [e.message for e in validator.iter_errors(value)]


@pytest.mark.parametrize("schema", [OVERRIDES_SCHEMA, TARGET_OBJECT_SCHEMA], ids=["overrides", "inline_target"])
def test_the_big_param_schemas_are_draft_07(schema):
    # Airflow checks them against their metaschema on every resolve: draft-07's check is the cheap one.
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft7Validator
    jsonschema.Draft7Validator.check_schema(schema)


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


@pytest.mark.parametrize("overrides, field", [
    ({"vus": 0}, "overrides.vus"),
    ({"vus": 20_001}, "overrides.vus"),
    ({"vus": "ten"}, "overrides.vus"),
    ({"duration": "10 minutes"}, "overrides.duration"),
    ({"duration": "5d"}, "overrides.duration"),  # k6 takes d/us/ns; perfpipe's one grammar does not
    ({"read_ratio": 1.5}, "overrides.read_ratio"),
    ({"think_time_s": 61}, "overrides.think_time_s"),
    ({"executor": "shared-iterations"}, "overrides.executor"),
    ({"thresholds.p95_ms.op": "=="}, "overrides.thresholds.p95_ms.op"),
    ({"thresholds.p95_ms.weight": 0}, "overrides.thresholds.p95_ms.weight"),
    ({"stages": "5s-10"}, "overrides.stages"),
    ({"bogus": 1}, "overrides.bogus"),
    ({"load.bogus": 1}, "overrides.load.bogus"),
    ({"endurance.vus": 1}, "overrides.endurance.vus"),
    ({"thresholds.p95_ms.limit": 1}, "overrides.thresholds.p95_ms.limit"),
    ({"vus.max": 1}, "overrides.vus.max"),
])
def test_schema_and_model_refuse_the_same_bad_values(overrides, field):
    # The Params form/REST API schema is generated from the model: both refuse, and the model names the key.
    assert _errors(overrides)
    with pytest.raises(InputError) as exc:
        validate_overrides(overrides)
    assert exc.value.field == field


@pytest.mark.parametrize("overrides", [
    {"thresholds.p95_ms.weight": 2}, {"thresholds.p95_ms.key": True}, {"thresholds.p95_ms.baseline_runs": 5},
    {"thresholds.p95_ms": "off"}, {"thresholds.p95_ms": False}, {"thresholds.latency_ms": 300},
    {"chaos.phases": {"baseline": "10s", "inject": "10s", "recovery": "10s"}},
])
def test_schema_accepts_what_the_model_accepts(overrides):
    # Each of these was refused by the hand-written schema the backend accepted (issue 12).
    assert _errors(overrides) == []
    assert validate_overrides(overrides) == overrides


def test_an_unconfigured_check_name_passes_the_form_and_is_refused_by_the_plan(api_target):
    # Which check names exist depends on the target's gates: the plan, still before any load, names the key.
    with pytest.raises(InputError) as exc:
        build_plan("load", api_target, "quick", {"thresholds.latency_ms": 300})
    assert exc.value.field == "overrides.thresholds.latency_ms"


def test_schema_accepts_start_vus_zero():
    shape = {"executor": "ramping-vus", "start_vus": 5, "stages": [{"duration": "5s", "target": 5}]}
    apply_overrides("spike", shape, {}, {"spike.start_vus": 0})  # the backend takes it ...
    assert shape["start_vus"] == 0
    assert _errors({"spike.start_vus": 0}) == []  # ... and so does the Params form: a ramp may start from nothing


def test_schema_accepts_threshold_mapping_form(api_target):
    override = {"thresholds.p95_ms": {"op": "<=", "threshold": 300, "warn": 200}}
    assert build_plan("load", api_target, "quick", override).gates["p95_ms"].model_dump(exclude_defaults=True) == \
        {"op": "<=", "threshold": 300.0, "warn": 200.0}
    assert _errors(override) == []


@pytest.mark.parametrize("test_type", TEST_TYPES)
def test_execution_timeout_is_at_least_twice_the_standard_duration(test_type, api_target):
    standard = build_plan(test_type, api_target, "standard")
    timeout = execution_timeout(test_type).total_seconds()
    assert timeout >= 2 * standard.expected_duration_s
    # k6's own, tighter limit fires first, so a slow run ends as a k6 timeout rather than an Airflow kill
    assert run_timeout_s(standard) < timeout


def test_airflow_param_enforces_the_schema():
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    assert Param({}, **OVERRIDES_SCHEMA).resolve({"load.vus": 10}) == {"load.vus": 10}
    with pytest.raises(ParamValidationError, match="20001"):
        Param({}, **OVERRIDES_SCHEMA).resolve({"vus": 20_001})
