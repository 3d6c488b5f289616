"""Property: the Params schema generated from the overrides model (what the UI form and the REST API check) and the
model itself (what the CLI's pre-flight and the tasks check) make the same accept/refuse decision on any document.

Documents are JSON (what a form or a REST body can carry): no NaN or infinity, which JSON cannot say and which the
model refuses on its own (tests/unit/perfpipe/core/model/test_overrides.py).
"""

from __future__ import annotations

import jsonschema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfpipe import TEST_TYPES
from perfpipe.core.errors import InputError
from perfpipe.core.model.overrides import CHECK_PARTS, SHAPE_FIELDS, overrides_json_schema, validate_overrides

SCHEMA = overrides_json_schema()
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(SCHEMA, format_checker=jsonschema.FormatChecker())

# Mostly well-formed names (so a document is often a close call on its values), some not.
CHECKS = ["p95_ms"] * 4 + ["error_rate", "rps", "latency_ms", "a", "x" * 64, "p95-ms", "p95 ms", "", "x" * 65,
                            "p95_ms\n"]
SCOPES = [""] * 6 + [f"{t}." for t in TEST_TYPES] + ["endurance.", "Load."]
key_body = st.one_of(
    st.sampled_from(list(SHAPE_FIELDS) * 2 + ["vu", "bogus", "vus.max", "thresholds", "stage", "vus\n"]),
    st.builds(lambda c: f"thresholds.{c}", st.sampled_from(CHECKS)),
    st.builds(lambda c, p: f"thresholds.{c}.{p}", st.sampled_from(CHECKS),
              st.sampled_from(list(CHECK_PARTS) + ["limit", "metric", "bogus", "op.x"])),
)
keys = st.builds(lambda scope, body: scope + body, st.sampled_from(SCOPES), key_body)

numbers = st.one_of(st.integers(-5, 25_000), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
                    st.sampled_from([0, 1, 0.5, 2.0, 60, 60.5, 20_000, 20_001, -1, 100, 101]))
texts = st.one_of(
    st.sampled_from(["30s", "1m30s", "500ms", "2h", "5d", "10us", "1 m", "", "fast", "< 500", "<= 2.5", "== 3",
                     "+10%", "-5 %", "10%", "off", "on", "<", ">=", "=>", "constant-vus", "ramping-vus",
                     "shared-iterations", "10s:5,20s:50", "10s:abc", "5s-10", " 5s : 3 "]),
    st.text(max_size=8))
stage_items = st.fixed_dictionaries({"duration": st.one_of(texts, numbers), "target": numbers},
                                    optional={"bogus": st.just(1)})
leaves = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.one_of(
    leaves,
    st.lists(st.one_of(stage_items, leaves), max_size=3),
    st.dictionaries(st.sampled_from(list(CHECK_PARTS) + ["metric", "bogus", "baseline", "inject", "recovery"]),
                    st.one_of(leaves, st.sampled_from(["p95_ms", "bad name"])), max_size=4),
)
durations = st.one_of(st.sampled_from(["30s", "1m30s", "500ms", "2h", "0s", "1.5m", "5d", "10us", "1 m", "-1s",
                                       "30s\n", "1" * 31 + "s", "1" * 32 + "s"]),
                      st.integers(-1, 100), st.floats(-1, 100, allow_nan=False))
# Values near each key's rules (edges included: 0/1, 60/61, 20000/20001), so most documents are close calls.
NEAR: dict[str, st.SearchStrategy] = {
    "executor": st.sampled_from(["constant-vus", "ramping-vus", "shared-iterations", "Constant-VUs"]),
    "vus": st.sampled_from([-1, 0, 1, 2, 19_999, 20_000, 20_001, 2.0, 2.5, True, "10"]),
    "start_vus": st.sampled_from([-1, 0, 1, 20_000, 20_001, 0.0, 0.5, False, "0"]),
    "duration": durations, "graceful_stop": durations, "graceful_ramp_down": durations,
    "think_time_s": st.one_of(st.floats(-0.5, 61, allow_nan=False),
                              st.sampled_from([0, 0.5, 60, 60.0001, 61, -0.0001, "1", None])),
    "read_ratio": st.one_of(st.floats(-0.1, 1.1, allow_nan=False), st.sampled_from([0, 1, 1.0001, 2, False])),
    "stages": st.one_of(st.sampled_from(["10s:5,20s:50", "10s:abc", "5s-10", " 5s : 3 ", "1m:20001", "",
                                          ",".join(["1s:1"] * 100), ",".join(["1s:1"] * 101),
                                          "1s:1" + " " * 4000]),
                        st.lists(st.fixed_dictionaries({"duration": durations, "target": st.integers(-1, 20_001)},
                                                       optional={"bogus": st.just(1)}), max_size=3)),
    "phases": st.fixed_dictionaries({"baseline": durations, "inject": durations},
                                    optional={"recovery": durations, "bogus": durations}),
}
limits = st.one_of(st.integers(-10, 1000), st.floats(-10, 1000, allow_nan=False),
                   st.sampled_from(["+10%", "-5 %", "10%", "ten%", "+10", None]))
PARTS: dict[str, st.SearchStrategy] = {
    "op": st.sampled_from(["<", "<=", ">", ">=", "==", "=>", None]), "threshold": limits, "warn": limits,
    "weight": st.sampled_from([-1, 0, 0.0, 1e-9, 1, 2, 2.5, "2", True]),
    "key": st.sampled_from([True, False, None, 1, "true"]),
    "baseline_runs": st.sampled_from([-1, 0, 1, 5, 5.0, 5.5, 100, 101, True]),
}
whole_check = st.one_of(limits, st.sampled_from(["< 500", "<= 2.5", "== 3", "off", "on", False, True]),
                        st.fixed_dictionaries({}, optional={**PARTS, "metric": st.sampled_from(["p95_ms", "bad name"]),
                                                            "bogus": st.just(1)}))


@st.composite
def entry(draw):
    key = draw(keys)
    body = key.split(".", 1)[1] if key.split(".")[0] in TEST_TYPES and "." in key else key
    parts = body.split(".")
    if draw(st.integers(0, 9)) == 0:
        return key, draw(values)  # anything at all
    if body in NEAR:
        return key, draw(NEAR[body])
    if parts[0] == "thresholds" and len(parts) == 3 and parts[2] in PARTS:
        return key, draw(PARTS[parts[2]])
    return key, draw(whole_check)


documents = st.lists(entry(), max_size=3).map(dict)
# One key at a time, spread evenly over every key the model knows: each rule's edges are met on their own.
EVERY_KEY = [*NEAR, *(f"thresholds.p95_ms.{part}" for part in PARTS), "thresholds.p95_ms"]


def near_values(key: str) -> st.SearchStrategy:
    if key in NEAR:
        return NEAR[key]
    part = key.rsplit(".", 1)[1]
    return PARTS[part] if part in PARTS else whole_check


single_entries = st.sampled_from(EVERY_KEY).flatmap(
    lambda key: st.tuples(st.sampled_from(["", "load.", "chaos."]).map(lambda scope: scope + key),
                          near_values(key))).map(lambda kv: dict([kv]))


def schema_accepts(document) -> bool:
    return next(VALIDATOR.iter_errors(document), None) is None


def model_accepts(document) -> bool:
    try:
        validate_overrides(document)
    except InputError:
        return False
    return True


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_schema_and_model_decide_alike(document):
    assert schema_accepts(document) == model_accepts(document), document


@settings(max_examples=600, deadline=None)
@given(single_entries)
def test_schema_and_model_decide_alike_key_by_key(document):
    assert schema_accepts(document) == model_accepts(document), document


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=4))
def test_a_refused_document_names_one_of_its_keys(document):
    try:
        validate_overrides(document)
    except InputError as exc:
        assert any(exc.field.startswith(f"overrides.{key}") for key in document), (exc.field, document)
