"""perfpipe.app.config: durations, --set parsing, overrides, shape and gate validation."""

from __future__ import annotations

import copy

import pytest

from perfpipe.app.config import (GATE_METRICS, apply_overrides, format_duration, parse_compact_stages, parse_duration,
                             parse_set_arguments, shape_duration_s, shape_peak_vus, validate_gates, validate_shape)
from perfpipe.core.errors import InputError

# ---------------------------------------------------------------------------------------------- parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("500ms", 0.5),
    ("30s", 30.0),
    ("2m", 120.0),
    ("2h", 7200.0),
    ("1m30s", 90.0),
    ("1h30m", 5400.0),
    ("1h2m3s", 3723.0),
    ("1s500ms", 1.5),
    ("1.5m", 90.0),
    ("0s", 0.0),
    ("  45s ", 45.0),
])
def test_parse_duration_strings(text, seconds):
    assert parse_duration(text, "f") == seconds


@pytest.mark.parametrize("number, seconds", [(0, 0.0), (30, 30.0), (2.5, 2.5)])
def test_parse_duration_numbers_are_seconds(number, seconds):
    result = parse_duration(number, "f")
    assert result == seconds and isinstance(result, float)


# "1d", "10ns", "5us", "5µs": k6 durations that k6-scripts/lib/compile.js once accepted; perfpipe takes ms|s|m|h.
@pytest.mark.parametrize("bad", ["10 minutes", "30", "", "1m 30s", "s", "-5s", "1d", "10ns", "5us", "5µs", "5S",
                                 None, [1], {"s": 1}])
def test_parse_duration_refuses_bad_values_naming_the_field(bad):
    with pytest.raises(InputError) as exc:
        parse_duration(bad, "load.duration")
    assert exc.value.field == "load.duration"
    assert str(exc.value) == f"load.duration: expected a duration like '30s', '2m' or '1h30m', got {bad!r}"


def test_parse_duration_refuses_negative_numbers_and_bools():
    with pytest.raises(InputError, match=r"^d: duration must not be negative, got -1$"):
        parse_duration(-1, "d")
    with pytest.raises(InputError, match=r"^d: expected a duration") as exc:
        parse_duration(True, "d")
    assert exc.value.field == "d"


@pytest.mark.parametrize("number", [float("inf"), float("nan")])
def test_parse_duration_refuses_numbers_that_are_no_k6_duration(number):
    with pytest.raises(InputError) as exc:
        parse_duration(number, "load.duration")
    assert str(exc.value) == f"load.duration: duration must be a finite number of seconds, got {number!r}"


@pytest.mark.parametrize("seconds, text", [(30, "30s"), (90.0, "90s"), (1.5, "1500ms"), (0.25, "250ms")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text, "f") == seconds


# ---------------------------------------------------------------------------------------------- --set arguments


def test_parse_set_arguments_yaml_scalars_and_lists():
    assert parse_set_arguments([
        "vus=10", "read_ratio=0.5", "duration=1m30s", "thresholds.p95_ms=< 300", "stages=[{duration: 5s, target: 2}]",
        "thresholds.rps.warn=null", "empty=", "  spaced  = 7", "a=b=c", "broken=[1, 2",
    ]) == {
        "vus": 10, "read_ratio": 0.5, "duration": "1m30s", "thresholds.p95_ms": "< 300",
        "stages": [{"duration": "5s", "target": 2}], "thresholds.rps.warn": None, "empty": "", "spaced": 7,
        "a": "b=c", "broken": "[1, 2",
    }


def test_parse_set_arguments_types():
    parsed = parse_set_arguments(["vus=10", "think_time_s=0.5", "load.stages=5s:10,10s:20"])
    assert type(parsed["vus"]) is int
    assert type(parsed["think_time_s"]) is float
    assert parsed["load.stages"] == "5s:10,10s:20"


@pytest.mark.parametrize("pair", ["vus", "vus 10", "=10", " =10"])
def test_parse_set_arguments_needs_key_equals_value(pair):
    with pytest.raises(InputError) as exc:
        parse_set_arguments([pair])
    assert exc.value.field == "--set"
    assert str(exc.value) == f"--set: expected key=value, got {pair!r}"


# ---------------------------------------------------------------------------------------------- overrides


def _constant(vus=5, duration="10s"):
    return {"executor": "constant-vus", "vus": vus, "duration": duration, "think_time_s": 0.1}


def _ramping():
    """The standard load shape: peak 1000 VUs, 20 min."""
    return {"executor": "ramping-vus", "stages": [
        {"duration": "2m", "target": 100}, {"duration": "3m", "target": 1000},
        {"duration": "10m", "target": 1000}, {"duration": "5m", "target": 0}], "read_ratio": 0.8}


def test_unscoped_override_applies_to_every_test_type():
    for test_type in ("smoke", "chaos"):
        shape = _constant()
        apply_overrides(test_type, shape, {}, {"vus": 7, "duration": "45s", "think_time_s": 0})
        assert shape == {"executor": "constant-vus", "vus": 7, "duration": "45s", "think_time_s": 0}


def test_scoped_override_applies_only_to_its_test_type():
    smoke, chaos = _constant(), _constant()
    apply_overrides("smoke", smoke, {}, {"chaos.vus": 50, "chaos.duration": "1m"})
    apply_overrides("chaos", chaos, {}, {"chaos.vus": 50, "chaos.duration": "1m"})
    assert smoke == _constant()
    assert chaos["vus"] == 50 and chaos["duration"] == "1m"


def test_scoped_override_listed_after_unscoped_wins_for_its_type():
    load, smoke = _constant(), _constant()
    overrides = {"vus": 10, "load.vus": 50}
    apply_overrides("load", load, {}, overrides)
    apply_overrides("smoke", smoke, {}, overrides)
    assert (load["vus"], smoke["vus"]) == (50, 10)


def test_vus_override_on_ramping_scales_stage_targets_to_the_new_peak():
    shape = _ramping()
    apply_overrides("load", shape, {}, {"vus": 500})
    assert [s["target"] for s in shape["stages"]] == [50, 500, 500, 0]
    assert [s["duration"] for s in shape["stages"]] == ["2m", "3m", "10m", "5m"]  # timing untouched
    assert shape_peak_vus(shape) == 500
    assert "vus" not in shape  # ramping-vus has no `vus` key: the override became the peak


def test_vus_override_on_ramping_scales_start_vus_too():
    shape = {"executor": "ramping-vus", "start_vus": 100, "stages": [
        {"duration": "2m", "target": 100}, {"duration": "1m", "target": 1000}, {"duration": "3m", "target": 1000},
        {"duration": "1m", "target": 100}, {"duration": "3m", "target": 100}]}
    apply_overrides("spike", shape, {}, {"spike.vus": 50})
    assert shape["start_vus"] == 5
    assert [s["target"] for s in shape["stages"]] == [5, 50, 50, 5, 5]


def test_vus_override_on_ramping_refuses_out_of_range_values():
    for bad in (0, 20_001, "ten", True):
        with pytest.raises(InputError) as exc:
            apply_overrides("load", _ramping(), {}, {"load.vus": bad})
        assert exc.value.field == "overrides.load.vus"
        assert str(exc.value) == f"overrides.load.vus: expected an integer between 1 and 20000, got {bad!r}"


def test_duration_override_on_ramping_scales_stage_durations_to_the_total():
    shape = _ramping()
    apply_overrides("load", shape, {}, {"duration": "10m"})
    assert shape["stages"] == [{"duration": "60s", "target": 100}, {"duration": "90s", "target": 1000},
                               {"duration": "300s", "target": 1000}, {"duration": "150s", "target": 0}]
    assert shape_duration_s(shape) == 600


def test_duration_override_on_ramping_keeps_sub_second_proportions():
    shape = {"executor": "ramping-vus", "stages": [
        {"duration": "2s", "target": 5}, {"duration": "3s", "target": 20},
        {"duration": "10s", "target": 20}, {"duration": "5s", "target": 0}]}
    apply_overrides("load", shape, {}, {"duration": 7})
    assert [s["duration"] for s in shape["stages"]] == ["700ms", "1050ms", "3500ms", "1750ms"]
    assert shape_duration_s(shape) == pytest.approx(7.0)


def test_duration_override_on_ramping_refuses_bad_duration_naming_the_override():
    with pytest.raises(InputError) as exc:
        apply_overrides("load", _ramping(), {}, {"duration": "ten minutes"})
    assert exc.value.field == "overrides.duration"


def test_stages_override_compact_string():
    shape = _ramping()
    apply_overrides("load", shape, {}, {"stages": "5s:10, 10s:20"})
    assert shape["stages"] == [{"duration": "5s", "target": 10}, {"duration": "10s", "target": 20}]


@pytest.mark.parametrize("key", ["bogus", "load.bogus", "vus.max", "thresholds", "load.vus.x", "smok.vus"])
def test_unknown_override_is_refused_naming_it(key):
    with pytest.raises(InputError, match=r"unknown key \(known: |expected thresholds\.<check>") as exc:
        apply_overrides("load", _ramping(), {}, {key: 1})
    assert exc.value.field == f"overrides.{key}"


def test_unknown_key_scoped_to_another_type_is_refused_too():
    # One document serves every stage of a pipeline (and the Params form cannot know which stage runs): a typo is
    # refused whichever stage reads it, the same decision the form's schema makes.
    with pytest.raises(InputError, match=r"unknown key") as exc:
        apply_overrides("load", _ramping(), {}, {"smoke.bogus": 1})
    assert exc.value.field == "overrides.smoke.bogus"


def test_valid_key_scoped_to_another_type_is_ignored():
    shape = _ramping()
    apply_overrides("load", shape, {}, {"smoke.vus": 3})
    assert shape == _ramping()


# ---------------------------------------------------------------------------------------------- threshold overrides

LOAD_GATES = {"p95_ms": {"op": "<", "threshold": 500, "warn": 400}, "rps": {"op": ">=", "threshold": 1}}


def _gates_after(overrides):
    gates = copy.deepcopy(LOAD_GATES)
    apply_overrides("load", _ramping(), gates, overrides)
    return gates


def test_threshold_override_number_replaces_threshold_and_drops_stale_warn():
    assert _gates_after({"thresholds.p95_ms": 300})["p95_ms"] == {"op": "<", "threshold": 300}


def test_threshold_override_expression_string_sets_op_and_threshold():
    assert _gates_after({"thresholds.p95_ms": "<= 250.5"})["p95_ms"] == {"op": "<=", "threshold": 250.5}
    assert _gates_after({"load.thresholds.rps": ">5"})["rps"] == {"op": ">", "threshold": 5.0}


def test_threshold_override_dict_merges_into_the_check():
    assert _gates_after({"thresholds.p95_ms": {"threshold": 800, "warn": 600}})["p95_ms"] == \
        {"op": "<", "threshold": 800, "warn": 600}


def test_threshold_override_subkeys():
    assert _gates_after({"thresholds.p95_ms.warn": 350})["p95_ms"] == {"op": "<", "threshold": 500, "warn": 350}
    assert _gates_after({"thresholds.p95_ms.op": "<="})["p95_ms"] == {"op": "<=", "threshold": 500, "warn": 400}


def test_threshold_override_adds_a_new_check_with_the_metric_default_op():
    gates = _gates_after({"thresholds.error_rate": 0.02, "thresholds.checks_rate": 0.95})
    assert gates["error_rate"] == {"op": "<", "threshold": 0.02}
    assert gates["checks_rate"] == {"op": ">=", "threshold": 0.95}


def test_threshold_override_none_or_off_removes_the_check():
    assert "p95_ms" not in _gates_after({"thresholds.p95_ms": None})
    assert "rps" not in _gates_after({"thresholds.rps": "off"})


def test_threshold_override_for_another_type_is_ignored():
    assert _gates_after({"smoke.thresholds.p95_ms": 1}) == LOAD_GATES


@pytest.mark.parametrize("key", ["thresholds.latency", "thresholds.p95", "load.thresholds.P95_ms"])
def test_threshold_override_unknown_metric_is_refused(key):
    with pytest.raises(InputError) as exc:
        _gates_after({key: 300})
    assert exc.value.field == f"overrides.{key}"
    assert str(exc.value) == (f"overrides.{key}: unknown metric (known: {', '.join(GATE_METRICS)}, "
                              f"or a configured check name)")


def test_threshold_override_unknown_subkey_is_refused():
    with pytest.raises(InputError) as exc:
        _gates_after({"thresholds.p95_ms.limit": 300})
    assert str(exc.value) == ("overrides.thresholds.p95_ms.limit: "
                              "unknown key (known: op, threshold, warn, weight, key, baseline_runs)")


def test_set_threshold_off_from_the_cli_removes_the_check():
    gates = copy.deepcopy(LOAD_GATES)
    apply_overrides("load", _ramping(), gates, parse_set_arguments(["thresholds.p95_ms=off"]))
    assert "p95_ms" not in gates


# ---------------------------------------------------------------------------------------------- compact stages


def test_parse_compact_stages():
    assert parse_compact_stages("10s:5,20s:50, 1m : 0", "f") == [
        {"duration": "10s", "target": 5}, {"duration": "20s", "target": 50}, {"duration": "1m", "target": 0}]


@pytest.mark.parametrize("text, message", [
    ("10s", "f: expected stages like '10s:5,20s:50', got '10s'"),
    ("10s:5,", "f: expected stages like '10s:5,20s:50', got '10s:5,'"),
    ("10s:five", "f: stage target must be an integer, got 'five'"),
    ("10s:2.5", "f: stage target must be an integer, got '2.5'"),
])
def test_parse_compact_stages_errors(text, message):
    with pytest.raises(InputError) as exc:
        parse_compact_stages(text, "f")
    assert str(exc.value) == message and exc.value.field == "f"


# ---------------------------------------------------------------------------------------------- validate_shape


def test_validate_shape_constant_vus_normalised():
    assert validate_shape({"executor": "constant-vus", "vus": 5, "duration": 90, "think_time_s": 1,
                           "read_ratio": 1}, "p.smoke", 10) == {
        "executor": "constant-vus", "vus": 5, "duration": "90s", "graceful_stop": "5s", "think_time_s": 1.0,
        "read_ratio": 1.0}


def test_validate_shape_ramping_vus_normalised():
    clean = validate_shape({"executor": "ramping-vus", "start_vus": 2, "stages": [
        {"duration": "5s", "target": 10}, {"duration": 1.5, "target": 0}], "graceful_stop": "10s"}, "p.load", 10)
    assert clean == {"executor": "ramping-vus", "stages": [{"duration": "5s", "target": 10},
                                                          {"duration": "1500ms", "target": 0}],
                     "start_vus": 2, "graceful_ramp_down": "5s", "graceful_stop": "10s", "think_time_s": 0.0,
                     "read_ratio": None}
    assert shape_duration_s(clean) == 6.5
    assert shape_peak_vus(clean) == 10


@pytest.mark.parametrize("executor", [None, "shared-iterations", "Constant-VUs"])
def test_validate_shape_bad_executor(executor):
    with pytest.raises(InputError) as exc:
        validate_shape({"executor": executor, "vus": 1, "duration": "1s"}, "p.smoke", 10)
    assert exc.value.field == "p.smoke.executor"
    assert str(exc.value) == f"p.smoke.executor: must be one of constant-vus, ramping-vus, got {executor!r}"


@pytest.mark.parametrize("vus", [0, 11, -1, "5", 2.0, True, None])
def test_validate_shape_constant_vus_range_is_capped_by_max_vus(vus):
    with pytest.raises(InputError) as exc:
        validate_shape(_constant(vus=vus), "p.smoke", 10)
    assert str(exc.value) == f"p.smoke.vus: expected an integer between 1 and 10, got {vus!r}"


def test_validate_shape_vus_at_max_is_accepted():
    assert validate_shape(_constant(vus=10), "p.smoke", 10)["vus"] == 10


def test_validate_shape_stage_target_over_max_vus():
    shape = {"executor": "ramping-vus", "stages": [{"duration": "1s", "target": 10}, {"duration": "1s",
                                                                                    "target": 11}]}
    with pytest.raises(InputError) as exc:
        validate_shape(shape, "p.load", 10)
    assert str(exc.value) == "p.load.stages[1].target: expected an integer between 0 and 10, got 11"


def test_validate_shape_start_vus_over_max_vus():
    shape = {"executor": "ramping-vus", "start_vus": 11, "stages": [{"duration": "1s", "target": 1}]}
    with pytest.raises(InputError) as exc:
        validate_shape(shape, "p.spike", 10)
    assert exc.value.field == "p.spike.start_vus"


@pytest.mark.parametrize("duration, message", [
    ("0s", "p.smoke.duration: must be longer than 0s"),
    (0, "p.smoke.duration: must be longer than 0s"),
    (-5, "p.smoke.duration: duration must not be negative, got -5"),
    ("-5s", "p.smoke.duration: expected a duration like '30s', '2m' or '1h30m', got '-5s'"),
    (None, "p.smoke.duration: expected a duration like '30s', '2m' or '1h30m', got None"),
])
def test_validate_shape_constant_duration_must_be_positive(duration, message):
    with pytest.raises(InputError) as exc:
        validate_shape(_constant(duration=duration), "p.smoke", 10)
    assert str(exc.value) == message


@pytest.mark.parametrize("think", [60.5, 61, 3600, -0.1, float("nan"), float("inf"), True, "1"])
def test_validate_shape_think_time_is_0_to_60_seconds(think):
    with pytest.raises(InputError) as exc:
        validate_shape(dict(_constant(), think_time_s=think), "p.load", 10)
    assert str(exc.value) == f"p.load.think_time_s: expected seconds between 0 and 60, got {think!r}"


@pytest.mark.parametrize("ratio", [1.01, -0.1, float("nan"), True, "0.5"])
def test_validate_shape_read_ratio_is_a_fraction(ratio):
    with pytest.raises(InputError) as exc:
        validate_shape(dict(_constant(), read_ratio=ratio), "p.load", 10)
    assert exc.value.field == "p.load.read_ratio"


def test_validate_shape_ramping_total_duration_must_be_positive():
    shape = {"executor": "ramping-vus", "stages": [{"duration": "0s", "target": 5}, {"duration": 0, "target": 0}]}
    with pytest.raises(InputError) as exc:
        validate_shape(shape, "p.load", 10)
    assert str(exc.value) == "p.load.stages: total duration must be longer than 0s"


def test_validate_shape_ramping_negative_stage_duration():
    shape = {"executor": "ramping-vus", "stages": [{"duration": "5s", "target": 5}, {"duration": -1, "target": 0}]}
    with pytest.raises(InputError) as exc:
        validate_shape(shape, "p.load", 10)
    assert exc.value.field == "p.load.stages[1].duration"


@pytest.mark.parametrize("stages", [None, [], "5s:10", [{"duration": "5s"}], [{"duration": "5s", "target": 1,
                                                                               "vus": 2}]])
def test_validate_shape_ramping_needs_proper_stages(stages):
    with pytest.raises(InputError) as exc:
        validate_shape({"executor": "ramping-vus", "stages": stages}, "p.load", 10)
    assert exc.value.field in ("p.load.stages", "p.load.stages[0]", "p.load.stages[0].target")
    if stages in (None, [], "5s:10"):
        assert exc.value.field == "p.load.stages"


def test_validate_shape_unknown_keys():
    with pytest.raises(InputError) as exc:
        validate_shape({**_constant(), "iterations": 5, "rate": 1}, "p.smoke", 10)
    assert str(exc.value) == "p.smoke: unknown keys ['iterations', 'rate']"


@pytest.mark.parametrize("think", [0, 0.0, 60, 30.5])
def test_validate_shape_think_time_bounds_accepted(think):
    assert validate_shape({**_constant(), "think_time_s": think}, "p", 10)["think_time_s"] == float(think)


@pytest.mark.parametrize("think", [-0.1, 60.01, "1", True, None])
def test_validate_shape_think_time_bounds_refused(think):
    with pytest.raises(InputError) as exc:
        validate_shape({**_constant(), "think_time_s": think}, "p.smoke", 10)
    assert str(exc.value) == f"p.smoke.think_time_s: expected seconds between 0 and 60, got {think!r}"


@pytest.mark.parametrize("ratio", [0, 1, 0.8, None])
def test_validate_shape_read_ratio_bounds_accepted(ratio):
    clean = validate_shape({**_constant(), "read_ratio": ratio}, "p", 10)
    assert clean["read_ratio"] == (None if ratio is None else float(ratio))


@pytest.mark.parametrize("ratio", [-0.01, 1.01, "0.5", True, False])
def test_validate_shape_read_ratio_bounds_refused(ratio):
    with pytest.raises(InputError) as exc:
        validate_shape({**_constant(), "read_ratio": ratio}, "p.load", 10)
    assert str(exc.value) == f"p.load.read_ratio: expected a fraction between 0 and 1, got {ratio!r}"


@pytest.mark.parametrize("key, value", [("graceful_stop", "banana"), ("graceful_ramp_down", -3)])
def test_validate_shape_refuses_bad_graceful_durations(key, value):
    shape = {"executor": "ramping-vus", "stages": [{"duration": "5s", "target": 5}], key: value}
    with pytest.raises(InputError) as exc:
        validate_shape(shape, "p.load", 10)
    assert exc.value.field == f"p.load.{key}"


def test_validate_shape_null_graceful_stop_is_not_the_string_none():
    clean = validate_shape({**_constant(), "graceful_stop": None}, "p.smoke", 10)
    assert clean["graceful_stop"] is None or parse_duration(clean["graceful_stop"], "x") >= 0


# ---------------------------------------------------------------------------------------------- validate_gates


def test_validate_gates_normalises_string_and_mapping_forms():
    assert validate_gates({
        "p95_ms": "< 500",
        "p99_ms": ">=1000.5",
        "error_rate": {"threshold": 0.01, "warn": 0.005},
        "rps": {"threshold": 2},
        "avg_ms": {"op": "<=", "threshold": 100, "warn": None},
    }, "thresholds.load") == {
        "p95_ms": {"op": "<", "threshold": 500.0},
        "p99_ms": {"op": ">=", "threshold": 1000.5},
        "error_rate": {"op": "<", "threshold": 0.01, "warn": 0.005},
        "rps": {"op": ">=", "threshold": 2.0},
        "avg_ms": {"op": "<=", "threshold": 100.0},
    }


@pytest.mark.parametrize("gates, message", [
    ({"latency": "< 5"}, f"thresholds.load.latency: unknown metric (known: {', '.join(GATE_METRICS)})"),
    ({"p95_ms": "less than 5"}, "thresholds.load.p95_ms: cannot parse 'less than 5'; expected e.g. '< 500'"),
    ({"p95_ms": "== 5"}, "thresholds.load.p95_ms: cannot parse '== 5'; expected e.g. '< 500'"),
    ({"p95_ms": {"op": "==", "threshold": 5}}, "thresholds.load.p95_ms.op: must be one of < <= > >=, got '=='"),
    ({"p95_ms": {"threshold": 5, "limit": 3}}, "thresholds.load.p95_ms: unknown keys ['limit'] (known: baseline_runs, key, metric, op, threshold, warn, weight)"),
    ({"p95_ms": {"op": "<"}}, "thresholds.load.p95_ms.threshold: expected a finite number, got None"),
    ({"p95_ms": {"threshold": "5"}}, "thresholds.load.p95_ms.threshold: expected a number or a percentage like '+10%', got '5'"),
    ({"p95_ms": {"threshold": True}}, "thresholds.load.p95_ms.threshold: expected a finite number, got True"),
    ({"p95_ms": {"threshold": 5, "warn": "3"}}, "thresholds.load.p95_ms.warn: expected a finite number, got '3'"),
    ({"p95_ms": {"threshold": float("nan")}}, "thresholds.load.p95_ms.threshold: expected a finite number, got nan"),
    ({"p95_ms": {"threshold": 5, "warn": float("inf")}}, "thresholds.load.p95_ms.warn: expected a finite number, got inf"),
    ({"p95_ms": {"threshold": 5, "weight": float("inf")}}, "thresholds.load.p95_ms.weight: expected a positive number, got inf"),
    ({"p95_ms": 500}, "thresholds.load.p95_ms: expected {op, threshold, warn}, got 500"),
])
def test_validate_gates_errors_name_the_field(gates, message):
    with pytest.raises(InputError) as exc:
        validate_gates(gates, "thresholds.load")
    assert str(exc.value) == message


def test_validate_gates_needs_a_mapping():
    with pytest.raises(InputError, match=r"^thresholds\.load: expected a mapping of check name -> check$"):
        validate_gates(["p95_ms"], "thresholds.load")


def test_scoped_override_wins_whatever_the_order():
    from perfpipe.app.config import apply_overrides

    for overrides in ({"vus": 3, "smoke.vus": 7}, {"smoke.vus": 7, "vus": 3}):
        shape = {"executor": "constant-vus", "vus": 5, "duration": "10s"}
        apply_overrides("smoke", shape, {}, overrides)
        assert shape["vus"] == 7


def test_warn_level_on_the_failing_side_is_refused():
    with pytest.raises(InputError) as exc:
        validate_gates({"p95_ms": {"op": "<", "threshold": 300, "warn": 400}}, "thresholds.load")
    assert exc.value.field == "thresholds.load.p95_ms.warn"
    assert validate_gates({"rps": {"op": ">=", "threshold": 10, "warn": 20}}, "g")["rps"]["warn"] == 20


def test_duration_override_longer_than_the_task_limit_is_refused_before_load():
    from perfpipe.app.config import build_plan
    from perfpipe.app.targets import resolve_target

    with pytest.raises(InputError) as exc:
        build_plan("smoke", resolve_target("demo"), "quick", {"duration": "10h"})
    assert exc.value.field == "quick.smoke.duration"


# ---------------------------------------------------------------------------------------------- analysis limits
# The stress limits also reach k6 as the run config's stop_at_break, which k6-scripts/lib/compile.js does not check.


@pytest.mark.parametrize("value", [-1, -0.5, float("inf"), float("nan"), True, "8", None])
def test_target_analysis_limit_must_be_a_number_at_least_zero(value):
    from perfpipe.app.config import validate_analysis

    with pytest.raises(InputError) as exc:
        validate_analysis({"stress": {"abort_after_s": value}}, "targets.t.analysis")
    assert str(exc.value) == f"targets.t.analysis.stress.abort_after_s: expected a number >= 0, got {value!r}"


def test_target_analysis_limits_at_zero_are_accepted():
    from perfpipe.app.config import validate_analysis

    limits = {"stress": {"error_rate": 0, "p95_ms": 0.0, "sustain_s": 0, "abort_after_s": 0}}
    assert validate_analysis(limits, "targets.t.analysis") == limits


def test_gates_yaml_analysis_limit_must_be_a_number_at_least_zero(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    import yaml

    from perfpipe.app.config import load_analysis

    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[4] / "config", config)
    gates = yaml.safe_load((config / "gates.yaml").read_text())
    gates["analysis"]["stress"]["error_rate"] = -0.05
    (config / "gates.yaml").write_text(yaml.safe_dump(gates))
    monkeypatch.setenv("PERFPIPE_CONFIG_DIR", str(config))
    with pytest.raises(InputError) as exc:
        load_analysis("stress", {})
    assert str(exc.value) == "gates.yaml analysis.stress.error_rate: expected a number >= 0, got -0.05"
    assert load_analysis("chaos", {})["scenarios"]  # the other test types' limits still load


# ---------------------------------------------------------------------------------------------- the YAML reader


def test_deployment_config_may_use_anchors_but_not_a_bomb(tmp_path):
    """config/ files may share pieces with anchors (gates.yaml does); their expansion is bounded, and the check
    costs the file's size, not the expansion's (a 9^12-node bomb is refused at once)."""
    import time

    from perfpipe.app.config import read_yaml_file
    from perfpipe.core.model.base import MAX_YAML_NODES

    shared = tmp_path / "shared.yaml"
    shared.write_text("defaults: &d {p95_ms: '< 500'}\nload:\n  <<: *d\n  rps: '> 1'\n", encoding="utf-8")
    assert read_yaml_file(shared, "gates.yaml", aliases=True)["load"] == {"p95_ms": "< 500", "rps": "> 1"}
    with pytest.raises(InputError, match="anchors and aliases"):
        read_yaml_file(shared, "target", aliases=False)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("l0: &l0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 12)), encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(InputError, match=f"more than {MAX_YAML_NODES} values"):
        read_yaml_file(bomb, "gates.yaml", aliases=True)
    assert time.monotonic() - started < 2


def test_set_values_are_yaml_without_aliases():
    assert parse_set_arguments(["vus=3", "stages=[{duration: 1s, target: 2}]", "thresholds.p95_ms=< 300"]) == {
        "vus": 3, "stages": [{"duration": "1s", "target": 2}], "thresholds.p95_ms": "< 300"}
    with pytest.raises(InputError) as exc:
        parse_set_arguments(["stages=[&s {duration: 1s, target: 1}, *s]"])
    assert exc.value.field == "--set stages"
