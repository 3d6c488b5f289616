"""perfpipe.app.config.build_plan against the real config/ files (profiles, gates, targets)."""

from __future__ import annotations

import pytest

from perfpipe import TEST_TYPES
from perfpipe.app.config import apply_overrides, build_plan, parse_duration
from perfpipe.core.errors import InputError
from perfpipe.app.targets import resolve_target


def _timeline(shape):
    """[(end_of_stage_s, target)] of a ramping shape."""
    elapsed, points = 0.0, []
    for stage in shape["stages"]:
        elapsed += parse_duration(stage["duration"], "t")
        points.append((elapsed, stage["target"]))
    return points


def test_plan_layout(api_target):
    plan = build_plan("smoke", api_target, "quick")
    assert set(plan.model_dump(exclude_defaults=True)) == {"test_type", "profile", "target", "shape", "gates",
                                                           "expected_duration_s", "peak_vus", "analysis"}
    assert (plan.test_type, plan.profile, plan.target) == ("smoke", "quick", api_target)


# ---------------------------------------------------------------------------------------------- standard = seed matrix


def test_standard_smoke_is_1m_at_5_vus(api_target):
    plan = build_plan("smoke", api_target, "standard")
    assert plan.shape["executor"] == "constant-vus"
    assert (plan.shape["vus"], plan.shape["duration"]) == (5, "1m")
    assert (plan.expected_duration_s, plan.peak_vus) == (60.0, 5)


def test_standard_load_is_20m_peaking_at_1000_with_80_20_reads(api_target):
    plan = build_plan("load", api_target, "standard")
    shape = plan.shape
    assert shape["executor"] == "ramping-vus"
    assert (plan.expected_duration_s, plan.peak_vus) == (1200.0, 1000)
    assert shape["read_ratio"] == 0.8
    # warm-up by 2 m, 1,000 VUs by 5 m, sustained to 15 m, down to 0 by 20 m
    assert _timeline(shape) == [(120.0, 100), (300.0, 1000), (900.0, 1000), (1200.0, 0)]


def test_standard_stress_is_30m_gradually_to_10000(api_target):
    plan = build_plan("stress", api_target, "standard")
    targets = [t for _, t in _timeline(plan.shape)]
    assert (plan.expected_duration_s, plan.peak_vus) == (1800.0, 10_000)
    assert targets[0] == 100 and targets[-1] == 0
    ramp = targets[:-1]
    assert ramp == sorted(ramp) and len(set(ramp)) == len(ramp)  # strictly increasing steps up to the peak
    assert ramp[-1] == 10_000


def test_standard_spike_is_10m_100_to_1000_to_100(api_target):
    plan = build_plan("spike", api_target, "standard")
    assert plan.shape["start_vus"] == 100
    assert (plan.expected_duration_s, plan.peak_vus) == (600.0, 1000)
    # 100 VUs, jump to 1,000 between 2 and 3 m, hold, back to 100 by 7 m, recover to 10 m
    assert _timeline(plan.shape) == [(120.0, 100), (180.0, 1000), (360.0, 1000), (420.0, 100), (600.0, 100)]


def test_standard_soak_is_2h15m_at_500(api_target):
    plan = build_plan("soak", api_target, "standard")
    assert (plan.expected_duration_s, plan.peak_vus) == (2 * 3600 + 15 * 60, 500)
    hold = [s for s in plan.shape["stages"] if s["target"] == 500 and parse_duration(s["duration"], "d") >= 7200]
    assert hold == [{"duration": "2h", "target": 500}]


def test_standard_chaos_is_a_constant_load_through_three_phases(api_target):
    plan = build_plan("chaos", api_target, "standard")
    assert plan.shape["executor"] == "constant-vus"
    assert plan.shape["phases"] == {"baseline": 30.0, "inject": 60.0, "recovery": 30.0}
    assert plan.expected_duration_s == 120.0
    assert plan.peak_vus == plan.shape["vus"] >= 1


# ---------------------------------------------------------------------------------------------- quick profile


@pytest.mark.parametrize("test_type", TEST_TYPES)
def test_quick_tests_last_10_to_40_seconds(api_target, test_type):
    quick = build_plan(test_type, api_target, "quick")
    standard = build_plan(test_type, api_target, "standard")
    assert 10 <= quick.expected_duration_s <= 40
    assert quick.peak_vus >= 1
    # the same shape kind, scaled to seconds
    assert quick.shape["executor"] == standard.shape["executor"]
    assert quick.shape["read_ratio"] == standard.shape["read_ratio"]


# ---------------------------------------------------------------------------------------------- gates in the plan


def test_smoke_gates_merge_yaml_defaults_with_type_specific_checks(api_target):
    assert {name: check.model_dump(exclude_defaults=True)
            for name, check in build_plan("smoke", api_target, "quick").gates.items()} == {
        "error_rate": {"op": "<=", "threshold": 0.0},
        "checks_rate": {"op": ">=", "threshold": 1.0},
        "p95_ms": {"op": "<", "threshold": 500.0, "warn": 300.0},
        "requests": {"op": ">", "threshold": 0.0},
    }


def test_gate_precedence_defaults_then_target_then_overrides(api_target):
    target = dict(api_target, gates={"load": {"p95_ms": {"op": "<", "threshold": 250},
                                              "avg_ms": {"op": "<=", "threshold": 100, "warn": 50}},
                                     "smoke": {"p99_ms": "< 1"}})
    plan = build_plan("load", target, "quick", {"thresholds.avg_ms": 80})
    assert plan.gates["p95_ms"].model_dump(exclude_defaults=True) == {"op": "<", "threshold": 250.0}  # target replaced the default check
    assert plan.gates["avg_ms"].model_dump(exclude_defaults=True) == {"op": "<=", "threshold": 80.0}  # override beat the target (stale warn gone)
    assert plan.gates["p99_ms"].model_dump(exclude_defaults=True) == {"op": "<", "threshold": 1000.0, "warn": 800.0}  # default kept


def test_target_gate_in_string_form_is_accepted(api_target):
    target = dict(api_target, gates={"load": {"avg_ms": "<= 100"}})
    assert build_plan("load", target, "quick").gates["avg_ms"].model_dump(exclude_defaults=True) == {"op": "<=", "threshold": 100.0}


@pytest.mark.parametrize("override", [{"thresholds.avg_ms": 80}, {"thresholds.avg_ms.warn": 50}])
def test_threshold_override_on_a_string_form_gate(api_target, override):
    target = dict(api_target, gates={"load": {"avg_ms": "< 100"}})
    plan = build_plan("load", target, "quick", override)
    assert plan.gates["avg_ms"].model_dump(exclude_defaults=True) == {"op": "<", **({"threshold": 80.0} if "thresholds.avg_ms" in override
                                                     else {"threshold": 100.0, "warn": 50.0})}


def test_bad_target_gate_is_refused_naming_the_test_type(api_target):
    target = dict(api_target, gates={"load": {"latency": "< 5"}})
    with pytest.raises(InputError) as exc:
        build_plan("load", target, "quick")
    assert exc.value.field == "thresholds.load.latency"


# ---------------------------------------------------------------------------------------------- overrides in the plan


def test_overrides_reach_the_plan(api_target):
    plan = build_plan("load", api_target, "standard", {"vus": 10, "load.duration": "2m", "smoke.vus": 3})
    assert plan.peak_vus == 10
    assert plan.expected_duration_s == 120.0
    assert [s["target"] for s in plan.shape["stages"]] == [1, 10, 10, 0]


def test_bad_override_value_is_refused_naming_the_users_key(api_target):
    with pytest.raises(InputError) as exc:
        build_plan("smoke", api_target, "quick", {"vus": 0})
    assert str(exc.value) == "overrides.vus: expected an integer between 1 and 20000, got 0"


def test_target_max_vus_caps_overrides(api_target):
    target = dict(api_target, max_vus=50)
    with pytest.raises(InputError) as exc:
        build_plan("smoke", target, "quick", {"vus": 51})
    assert str(exc.value) == "overrides.vus: expected an integer between 1 and 50, got 51"


def test_demo_target_accepts_the_standard_stress_shape_and_a_lower_cap_refuses_it():
    demo = resolve_target("demo")
    assert build_plan("stress", demo, "standard").peak_vus == 10000  # scheduled stress runs are not refused
    with pytest.raises(InputError) as exc:
        build_plan("stress", dict(demo, max_vus=2000), "standard")
    assert str(exc.value) == "standard.stress.stages[4].target: expected an integer between 0 and 2000, got 5000"


# ---------------------------------------------------------------------------------------------- refused inputs


def test_unknown_profile(api_target):
    with pytest.raises(InputError) as exc:
        build_plan("smoke", api_target, "heavy")
    assert str(exc.value) == "profile: unknown profile 'heavy' (known: quick, standard)"


def test_unknown_test_type(api_target):
    with pytest.raises(InputError) as exc:
        build_plan("endurance", api_target, "quick")
    assert str(exc.value) == ("test_type: unknown test type 'endurance' "
                              "(known: smoke, load, stress, spike, soak, chaos)")


@pytest.mark.parametrize("stages", [[{"duration": "10s"}], [{"duration": "10s", "target": "x"}], 5])
def test_malformed_stages_are_refused_naming_them_before_vus_scales_them(stages):
    with pytest.raises(InputError) as exc:
        apply_overrides("load", {"executor": "ramping-vus", "stages": [{"duration": "5s", "target": 5}]}, {},
                        {"stages": stages, "vus": 10})
    assert exc.value.field.startswith("overrides.stages")


def test_stages_apply_before_vus_whatever_the_order():
    for overrides in ({"vus": 20, "stages": "5s:10,5s:5"}, {"stages": "5s:10,5s:5", "vus": 20}):
        shape = {"executor": "ramping-vus", "stages": [{"duration": "1s", "target": 1}]}
        apply_overrides("load", shape, {}, overrides)
        assert [s["target"] for s in shape["stages"]] == [20, 10]
