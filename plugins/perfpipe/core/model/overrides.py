"""Per-run overrides: the one definition of what `--set`, the `overrides` Param and the REST API's conf accept.

A document maps flat keys to values: `vus`, `duration`, `stages`, ... (the load shape), `thresholds.<check>` (a whole
check) and `thresholds.<check>.<op|threshold|warn|weight|key|baseline_runs>` (one part of it); any key may be
scoped to one test type (`load.vus`, `chaos.phases`). `validate_overrides` checks a document against these rules
and returns it normalised; `overrides_json_schema` is the same rules as the Params form's JSON schema, generated
from the same table (a property test holds the two to the same decisions).

What needs the run's context (the target's VU cap, whether a check name is configured, the shape an override lands
on) is checked when the plan is built (perfpipe.app.config.build_plan), still before any load.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Strict, TypeAdapter, ValidationError

from perfpipe import TEST_TYPES
from perfpipe.core.model.base import (ADAPTER_CONFIG, DURATION_PART, END, REF_TEMPLATE, Duration,
                                      FiniteNumber as Number, MAX_STAGES, StrictModel, param_schema, problems,
                                      raise_problems, shown)

# A ceiling no profile or override may exceed, whatever the target says.
HARD_MAX_VUS = 20_000
EXECUTORS = ("constant-vus", "ramping-vus")
GATE_OPS = ("<", "<=", ">", ">=")
CHECK_NAME = r"[A-Za-z0-9_]{1,64}"
CHECK_NAME_PATTERN = rf"^{CHECK_NAME}{END}"
RELATIVE_PATTERN = rf"^\s*[+-]?[0-9]+(\.[0-9]+)?\s*%\s*{END}"
EXPRESSION_PATTERN = rf"^\s*(<=|>=|<|>)\s*-?[0-9]+(\.[0-9]+)?\s*{END}"
# At most MAX_STAGES steps, in the pattern itself (JSON schema has no other way to count them).
COMPACT_STAGES_PATTERN = (rf"^\s*{DURATION_PART}\s*:\s*[0-9]+(\s*,\s*{DURATION_PART}\s*:\s*[0-9]+)"
                          rf"{{0,{MAX_STAGES - 1}}}\s*{END}")


def _integral(value: Any) -> Any:
    """2.0 -> 2: JSON has one number type, and JSON schema's integer admits 2.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _count(low: int, high: int, description: str) -> Any:
    # The constraints before the validator, so the JSON schema carries them as minimum/maximum.
    return Annotated[int, Strict(), Field(ge=low, le=high, description=description or None),
                     BeforeValidator(_integral)]


Relative = Annotated[str, Strict(), Field(pattern=RELATIVE_PATTERN)]
Limit = Annotated[Number | Relative, Field(description="a number, or a percentage of the baseline like '+10%'")]


class Stage(StrictModel):
    """One step of a ramping load: reach `target` VUs over `duration`."""

    duration: Duration
    target: _count(0, HARD_MAX_VUS, "VUs at the end of the step")


class Phases(StrictModel):
    """The chaos test's three phases of constant load around the fault."""

    baseline: Duration = Field(description="load before the fault")
    inject: Duration = Field(description="load while the fault holds")
    recovery: Duration = Field(description="load after the fault is restored")


Op = Literal["<", "<=", ">", ">="]
Weight = Annotated[Number, Field(gt=0)]
BaselineRuns = _count(1, 100, "")


class CheckOverride(StrictModel):
    """A gate check, or the parts of it to change."""

    op: Op | None = Field(None, description="<, <=, > or >= (how the value compares with the threshold)")
    threshold: Limit | None = Field(None, description="a number, or a percentage of the baseline like '+10%' "
                                                      "(the fail level)")
    warn: Limit | None = Field(None, description="a number, or a percentage like '+5%' (the warn level, on the "
                                                 "passing side of the threshold); null removes it")
    weight: Weight | None = Field(None, description="a number above 0 (the check's weight in the gate's score)")
    key: Annotated[bool, Strict()] | None = Field(None, description="true or false (a failed key check fails "
                                                                    "the gate)")
    baseline_runs: BaselineRuns | None = Field(None, description="an integer from 1 to 100 (the passing runs a "
                                                                 "relative threshold compares with)")
    metric: Annotated[str, Strict(), Field(pattern=CHECK_NAME_PATTERN)] | None = Field(
        None, description="a gate metric's name (when the check's name is not one)")


CHECK_PARTS = ("op", "threshold", "warn", "weight", "key", "baseline_runs")
# The load-shape keys: (type, what the form says of it).
_DURATION_ALLOWED = "a duration like 30s, 2m or 1h30m (units ms, s, m, h), or a number of seconds"
SHAPE_FIELDS: dict[str, tuple[Any, str, str]] = {
    # key: (type, what the form says of it, what an error says is allowed)
    "executor": (Literal["constant-vus", "ramping-vus"], "constant-vus (a steady load) or ramping-vus (stages)",
                 "constant-vus or ramping-vus"),
    "vus": (_count(1, HARD_MAX_VUS, ""), "virtual users; on a ramping shape, the peak (the stages keep their form)",
            f"an integer between 1 and {HARD_MAX_VUS}"),
    "duration": (Duration, "how long the load runs, e.g. 30s or 5m; on a ramping shape, the total",
                 _DURATION_ALLOWED),
    "stages": (Annotated[str, Strict(), Field(max_length=40 * MAX_STAGES, pattern=COMPACT_STAGES_PATTERN)]
               | Annotated[list[Stage], Field(min_length=1, max_length=MAX_STAGES)],
               f"ramping steps: '10s:5,20s:50' or a list of {{duration, target}} (at most {MAX_STAGES})",
               f"ramping steps like '10s:5,20s:50', or a list of 1 to {MAX_STAGES} {{duration, target}}"),
    "start_vus": (_count(0, HARD_MAX_VUS, ""), "VUs a ramping shape starts with",
                  f"an integer between 0 and {HARD_MAX_VUS}"),
    "think_time_s": (Annotated[Number, Field(ge=0, le=60)], "seconds a VU pauses between iterations (0-60)",
                     "a number of seconds from 0 to 60"),
    "read_ratio": (Annotated[Number, Field(ge=0, le=1)], "share of read requests (0-1)", "a number from 0 to 1"),
    "graceful_stop": (Duration, "time k6 gives running iterations at the end", _DURATION_ALLOWED),
    "graceful_ramp_down": (Duration, "time k6 gives iterations of VUs a ramp removes", _DURATION_ALLOWED),
    "phases": (Phases, "chaos: {baseline, inject, recovery} durations", "a mapping of baseline, inject and "
                                                                        "recovery durations"),
}
# A whole check: a threshold, '< 500', '+10%', null / false / 'off' (removes it), or a mapping.
CHECK_VALUE = Annotated[Number | Annotated[str, Strict(), Field(pattern=EXPRESSION_PATTERN)] | Relative | None
                        | Literal[False, "off"] | CheckOverride, Field(description="a threshold")]
CHECK_VALUE_ALLOWED = ("a threshold number, an expression like '< 500', a percentage like '+10%', "
                       "null/false/'off' to remove the check, or a mapping of op, threshold, warn, weight, key, "
                       "baseline_runs")

_ADAPTERS: dict[str, TypeAdapter] = {}


def _adapter(name: str, annotation: Any) -> TypeAdapter:
    if name not in _ADAPTERS:
        # A model brings its own config (StrictModel's); any other type gets the same regex engine.
        config = None if isinstance(annotation, type) and issubclass(annotation, StrictModel) else ADAPTER_CONFIG
        _ADAPTERS[name] = TypeAdapter(annotation, config=config)
    return _ADAPTERS[name]


# One part of a check set on its own: the same types, but only warn may be null (it removes the warn level).
_PART_TYPES = {"op": Op, "threshold": Limit, "warn": Limit | None, "weight": Weight,
               "key": Annotated[bool, Strict()], "baseline_runs": BaselineRuns}


def _part_annotation(part: str) -> Any:
    return _PART_TYPES[part]


def known_override_keys() -> str:
    return ", ".join(list(SHAPE_FIELDS) + ["thresholds.<check>[." + "|.".join(CHECK_PARTS) + "]"])


def _value_rule(parts: list[str]) -> tuple[str, Any, str] | str:
    """(adapter name, type, allowed) of an unscoped key's value, or why the key is unknown."""
    if len(parts) == 1 and parts[0] in SHAPE_FIELDS:
        annotation, _, allowed = SHAPE_FIELDS[parts[0]]
        return parts[0], annotation, allowed
    if parts[0] == "thresholds":
        if len(parts) < 2 or not re.fullmatch(CHECK_NAME, parts[1]):
            return "expected thresholds.<check> with a check name of letters, digits and '_'"
        if len(parts) == 2:
            return "check", CHECK_VALUE, CHECK_VALUE_ALLOWED
        if len(parts) == 3 and parts[2] in CHECK_PARTS:
            field = CheckOverride.model_fields[parts[2]]
            return f"part.{parts[2]}", _part_annotation(parts[2]), field.description or parts[2]
        return f"unknown key (known: {', '.join(CHECK_PARTS)})"
    return (f"unknown key (known: {known_override_keys()}; prefix a key with a test type, e.g. 'load.vus', "
            f"to scope it)")


def split_key(key: str) -> tuple[str | None, list[str]]:
    """'load.vus' -> ('load', ['vus']); 'thresholds.p95_ms' -> (None, ['thresholds', 'p95_ms'])."""
    parts = key.split(".")
    if parts[0] in TEST_TYPES and len(parts) > 1:
        return parts[0], parts[1:]
    return None, parts


def validate_overrides(document: Any, prefix: str = "overrides") -> dict[str, Any]:
    """Every problem of an overrides document at once, one line each naming its key; else the document with
    numbers normalised (2.0 -> 2). Raises perfpipe's InputError."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise_problems([(prefix, f"expected a mapping of key -> value, got {shown(document)}")])
    found: list[tuple[str, str]] = []
    clean: dict[str, Any] = {}
    for key, value in document.items():
        field = f"{prefix}.{key}"
        if not isinstance(key, str) or not key:
            found.append((field, "empty override key"))
            continue
        _, parts = split_key(key)
        rule = _value_rule(parts)
        if isinstance(rule, str):
            found.append((field, rule))
            continue
        name, annotation, allowed = rule
        try:
            parsed = _adapter(name, annotation).validate_python(value)
        except ValidationError as exc:
            # A problem with the value itself says what the key takes; one inside a mapping names its own field.
            found.extend((path, f"expected {allowed}, got {shown(value)}" if path == field else problem)
                         for path, problem in problems(exc, field, annotation, allowed, value))
            continue
        clean[key] = _plain(parsed, value)
    raise_problems(found)
    return clean


def _plain(parsed: Any, raw: Any) -> Any:
    """The validated value in plain JSON form (the plan stays plain data)."""
    if isinstance(parsed, StrictModel):
        return {k: v for k, v in parsed.model_dump(mode="json").items() if k in raw}
    if isinstance(parsed, list):
        return [_plain(p, r) for p, r in zip(parsed, raw)]
    return parsed


def overrides_json_schema() -> dict[str, Any]:
    """The rules of validate_overrides as JSON schema, for the `overrides` Param (UI form and REST API)."""
    scope = rf"(({'|'.join(TEST_TYPES)})\.)?"
    check = CHECK_NAME
    patterns: dict[str, Any] = {}
    defs: dict[str, Any] = {}

    def schema_of(name: str, annotation: Any, description: str) -> dict[str, Any]:
        schema = _adapter(name, annotation).json_schema(ref_template=REF_TEMPLATE)
        defs.update(schema.pop("$defs", {}))
        schema.pop("title", None)
        if description:
            schema["description"] = description
        return schema

    for name, (annotation, description, _) in SHAPE_FIELDS.items():
        patterns[rf"^{scope}{name}{END}"] = schema_of(name, annotation, description)
    patterns[rf"^{scope}thresholds\.{check}{END}"] = schema_of("check", CHECK_VALUE, CHECK_VALUE_ALLOWED)
    for part in CHECK_PARTS:
        patterns[rf"^{scope}thresholds\.{check}\.{part}{END}"] = schema_of(
            f"part.{part}", _part_annotation(part), CheckOverride.model_fields[part].description or part)
    return param_schema({
        "type": "object",
        "title": "Overrides",
        "description": ("Per-run changes to the profile's load shape and the gate's checks. Keys: "
                        f"{known_override_keys()}; prefix a key with a test type (load.vus) to scope it. "
                        "E.g. {\"vus\": 10, \"duration\": \"30s\", \"thresholds.p95_ms\": 300}."),
        "patternProperties": patterns,
        "additionalProperties": False,
    }, defs)
