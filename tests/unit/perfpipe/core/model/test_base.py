"""perfpipe.core.model.base: the building blocks every model shares, and how a pydantic error reaches a user."""

from __future__ import annotations

import re
from typing import Annotated, Literal

import pytest
from pydantic import Field, TypeAdapter, ValidationError

from perfpipe.core.errors import InputError
from perfpipe.core.model.base import (DURATION_PATTERN, NAME_PATTERN, Duration, FiniteNumber, StrictModel, problems,
                                      raise_problems, shown)


class Inner(StrictModel):
    depth: Annotated[int, Field(ge=0, le=3)]


class Outer(StrictModel):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    limit: FiniteNumber
    every: Duration
    inner: Inner | None = None
    mode: Literal["a", "b"] = "a"


def _problems(value, model=Outer, prefix="doc"):
    with pytest.raises(ValidationError) as exc:
        model.model_validate(value)
    return problems(exc.value, prefix, model, value=value)


GOOD = {"name": "checkout-1", "limit": 1.5, "every": "1m30s"}


@pytest.mark.parametrize("text", ["30s", "1m30s", "500ms", "2h", "1.5s", "1h2m3s4ms"])
def test_durations_perfpipe_accepts(text):
    assert re.match(DURATION_PATTERN, text)


@pytest.mark.parametrize("text", ["", "30", "5d", "10us", "100ns", "-5s", "1 m", "1m 30s", "٣s", "s"])
def test_durations_perfpipe_refuses(text):
    # k6 itself takes d, us and ns; perfpipe's one grammar does not (Python, the schema and the run config agree)
    assert not re.match(DURATION_PATTERN, text)


def test_a_model_is_frozen_and_refuses_unknown_keys_listing_the_known_ones():
    outer = Outer.model_validate(GOOD)
    with pytest.raises(ValidationError):
        outer.limit = 2.0  # type: ignore[misc]
    assert _problems({**GOOD, "limt": 1}) == [("doc.limt", "unknown key (known: name, limit, every, inner, mode)")]


def test_an_unknown_key_in_a_nested_model_lists_that_models_keys():
    assert _problems({**GOOD, "inner": {"depth": 1, "deep": 2}}) == [("doc.inner.deep", "unknown key (known: depth)")]


@pytest.mark.parametrize("limit", [float("nan"), float("inf"), True, "1"])
def test_numbers_are_finite_and_never_bools_or_text(limit):
    [(field, problem)] = _problems({**GOOD, "limit": limit})
    assert field == "doc.limit" and repr(limit) in problem


def test_every_problem_at_once_one_line_each_naming_its_field():
    found = _problems({"name": "has space", "limit": 1, "every": "5d", "inner": {"depth": 9}, "mode": "c"})
    assert [field for field, _ in found] == ["doc.name", "doc.every", "doc.inner.depth", "doc.mode"]
    messages = dict(found)
    assert messages["doc.inner.depth"] == "must be <= 3, got 9"
    assert messages["doc.mode"] == "must be one of 'a' or 'b', got 'c'"
    assert "units ms, s, m, h" in messages["doc.every"] or "duration" in messages["doc.every"]


def test_a_union_of_a_number_and_a_duration_is_one_problem_saying_what_it_takes():
    [(field, problem)] = _problems({**GOOD, "every": "soon"})
    assert field == "doc.every"
    assert problem == "expected a duration like 30s, 2m, 1h30m or 500ms, or a number of seconds, got 'soon'"


def test_union_branch_labels_never_appear_in_a_field_path():
    steps = Annotated[list[Inner], Field(max_length=2)] | Annotated[str, Field(pattern="^x$")]
    with pytest.raises(ValidationError) as exc:
        TypeAdapter(steps).validate_python([{"depth": 1}, {"depth": -1}])
    assert problems(exc.value, "steps", steps, "a list or x", [{"depth": 1}, {"depth": -1}]) == \
        [("steps[1].depth", "must be >= 0, got -1")]


def test_a_scalar_no_branch_takes_says_what_the_field_takes():
    steps = list[Inner] | Annotated[str, Field(pattern="^x$")]
    with pytest.raises(ValidationError) as exc:
        TypeAdapter(steps).validate_python(5)
    assert problems(exc.value, "steps", steps, "a list or 'x'", 5) == [("steps", "expected a list or 'x', got 5")]


class Keyed(StrictModel):
    labels: dict[str, Annotated[str, Field(pattern="^[a-z]*$")] | Inner | Outer] = {}


def test_a_users_mapping_keys_stay_in_the_path_whatever_they_look_like():
    # "Inner" and "str" are a user's label names here, not pydantic's union labels
    [(field, problem)] = _problems({"labels": {"Inner": {"depth": 1, "bogus": 2}, "str": "ok"}}, Keyed)
    assert field == "doc.labels.Inner"  # two mapping branches: what the value should be, said once
    assert problem.startswith("expected ")
    assert _problems({"labels": {"str": "UPPER"}}, Keyed) == [("doc.labels.str", "expected an allowed value, "
                                                                                     "got 'UPPER'")]


def test_raise_problems_is_one_input_error_naming_the_first_field():
    with pytest.raises(InputError) as exc:
        raise_problems([("a.b", "missing"), ("a.c", "must be >= 0, got -1")])
    assert exc.value.field == "a.b"
    assert str(exc.value) == "a.b: missing\na.c: must be >= 0, got -1"
    raise_problems([])  # nothing found: nothing raised


def test_no_pydantic_phrasing_or_links_reach_the_user():
    text = "\n".join(p for _, p in _problems({"name": "", "limit": "x", "every": [], "inner": 3, "mode": None}))
    assert "pydantic" not in text and "errors.pydantic.dev" not in text and "Input should" not in text


@pytest.mark.parametrize("value, parts, expected", [
    ("http://user:secret@127.0.0.1:8090", (), "'http://***@127.0.0.1:8090'"),
    ("Bearer abc\nX-Evil: 1", ("headers", "Authorization"), "a str (not shown)"),
    (5, (), "5"),
])
def test_a_refused_value_is_shown_without_its_secrets(value, parts, expected):
    assert shown(value, parts) == expected


def test_param_schema_names_draft_07_and_keeps_shared_pieces_where_its_refs_point():
    import jsonschema
    from perfpipe.core.model.base import REF_TEMPLATE, SCHEMA_DIALECT, param_schema

    inner = TypeAdapter(Outer).json_schema(ref_template=REF_TEMPLATE)
    schema = param_schema({"anyOf": [{"type": "null"}, {k: v for k, v in inner.items() if k != "$defs"}]},
                          inner["$defs"])
    assert schema["$schema"] == SCHEMA_DIALECT
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert isinstance(validator, jsonschema.Draft7Validator)
    # The $ref into `definitions` resolves: the nested model's rule is applied, not skipped.
    assert validator.is_valid({**GOOD, "inner": {"depth": 2}})
    assert not validator.is_valid({**GOOD, "inner": {"depth": 9}})
    assert param_schema({"type": "object"}, {}) == {"$schema": SCHEMA_DIALECT, "type": "object"}


def test_an_error_shows_a_bounded_part_of_a_value():
    from perfpipe.core.model.base import SHOWN_CHARS, shown

    assert shown("x" * 50_000_000).endswith("... (50000000 characters)")
    assert len(shown("x" * 50_000_000)) < SHOWN_CHARS + 30
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert len(shown(deep)) <= SHOWN_CHARS + 30  # repr() itself would be a RecursionError
    assert shown("http://u:pw@h/") == "'http://***@h/'"
