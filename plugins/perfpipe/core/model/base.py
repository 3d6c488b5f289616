"""The model's building blocks: strict frozen models, finite numbers, the one duration grammar, and the one way a
validation error reaches a user (perfpipe's InputError, one line per problem, naming the field).

Patterns use [0-9], not \\d: Python's and pydantic's \\d also match other scripts' digits, JSON schema's may not.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Iterable, get_args

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from perfpipe.core.errors import InputError

# A k6 duration: one or more <number><unit> parts, e.g. 30s, 1m30s, 500ms, 2h (k6's ns/us/d are not accepted).
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# A name a user gives (check, target, request, scenario): safe in tags, file names and InfluxQL.
NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"

# Numbers: no bools, no NaN or infinity (a NaN threshold would switch its check off silently).
FiniteNumber = Annotated[float, Strict(), Field(allow_inf_nan=False)]
NonNegativeNumber = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
DurationText = Annotated[str, Strict(), Field(pattern=DURATION_PATTERN)]
# A duration is k6 text or a number of seconds.
Duration = Annotated[NonNegativeNumber | DurationText, Field(description="a duration like 30s, 2m, 1h30m or 500ms, "
                                                                         "or a number of seconds")]


class StrictModel(BaseModel):
    """Frozen; unknown keys are refused (with the known ones listed); no type coercion beyond int -> float."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def known_keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


_FIELD_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_TYPE_LABELS = {"str", "int", "float", "bool", "none", "list", "dict"}


def _is_branch_label(part: Any) -> bool:
    """pydantic names a union's branches in an error's location ('constrained-float', 'list[Stage]', 'Check'):
    those are not fields. Every field of the model is a lower-case name."""
    return isinstance(part, str) and (not _FIELD_NAME.match(part) or part in _TYPE_LABELS)


def _path(prefix: str, loc: Iterable[Any], keep_last: bool = False) -> str:
    parts = list(loc)
    path = prefix
    for index, part in enumerate(parts):
        if isinstance(part, int):
            path += f"[{part}]"
        elif _is_branch_label(part) and not (keep_last and index == len(parts) - 1):
            continue
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def _fits(label: Any, value: Any) -> bool:
    """Does the union branch named `label` take values of `value`'s kind (so its errors are the ones to show)?"""
    if not isinstance(label, str):
        return False
    if isinstance(value, dict):
        return label[:1].isupper() or label.startswith("dict[")
    if isinstance(value, list):
        return label.startswith(("list[", "tuple["))
    return False


def _describe(error: dict[str, Any], model: type[BaseModel] | None) -> str:
    """What is wrong and what is allowed, in words (never pydantic's own phrasing or links)."""
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        return f"unknown key (known: {known_keys(model)})" if model else "unknown key"
    if kind == "missing":
        return "missing"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bounds = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit}, got {got!r}"
    if kind == "finite_number":
        return f"must be a finite number, got {got!r}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == DURATION_PATTERN:
            return f"expected a duration like 30s, 2m or 1h30m (units ms, s, m, h), got {got!r}"
        return f"has characters or a form that is not allowed, got {got!r}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {got!r}"
    if kind.startswith(("int_", "float_", "bool_", "string_", "dict_", "list_", "model_")):
        wanted = kind.split("_")[0]
        words = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
                 "dict": "a mapping", "list": "a list", "model": "a mapping"}
        return f"expected {words.get(wanted, wanted)}, got {got!r}"
    if kind == "value_error":
        return str(ctx.get("error") or error.get("msg"))
    return f"not allowed: {got!r}"


def problems(exc: ValidationError, prefix: str, model: type[BaseModel] | None = None,
             allowed: str | None = None, value: Any = None) -> list[tuple[str, str]]:
    """A pydantic ValidationError as (field path, problem) pairs, one per field.

    A union value is judged by the branch of its own kind (a mapping by the model, a list by the list type); a
    scalar that no branch takes is one problem: `allowed` (what the field takes, in words). An unknown key
    lists the keys of the model it is in."""
    errors = exc.errors(include_url=False)
    labels = {e["loc"][0] for e in errors if e["loc"] and _is_branch_label(e["loc"][0])}
    if len(labels) > 1:
        fitting = [e for e in errors if _fits(e["loc"][0], value)]
        if not fitting:
            return [(prefix, f"expected {allowed}, got {value!r}" if allowed else f"not allowed: {value!r}")]
        errors = fitting
    by_path: dict[str, list[dict[str, Any]]] = {}
    for error in errors:
        by_path.setdefault(_path(prefix, error["loc"], keep_last=error["type"] == "extra_forbidden"),
                           []).append(error)
    found = []
    for path, at_path in by_path.items():
        if len(at_path) == 1:
            found.append((path, _describe(at_path[0], _model_at(model, at_path[0]["loc"]))))
            continue
        field = _field_at(model, at_path[0]["loc"])
        wanted = (field.description if field is not None and field.description else None) or "an allowed value"
        found.append((path, f"expected {wanted}, got {at_path[0].get('input')!r}"))
    return found


def _walk(model: type[BaseModel] | None, loc: Iterable[Any]) -> tuple[type[BaseModel] | None, Any]:
    """The model that holds the last field of `loc`, and that field (None where the location leaves models)."""
    field = None
    holder = model
    for part in loc:
        if holder is None or isinstance(part, int) or _is_branch_label(part):
            continue
        field = holder.model_fields.get(part)
        if field is None:
            return holder, None
        inner = model_in(field.annotation)
        if inner is None:
            return holder, field
        holder = inner
    return holder, field


def model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None


def _model_at(model: type[BaseModel] | None, loc: Iterable[Any]) -> type[BaseModel] | None:
    """The model an unknown key was found in (for its list of known keys)."""
    parts = [p for p in loc][:-1]
    holder = model
    for part in parts:
        if holder is None or isinstance(part, int) or _is_branch_label(part):
            continue
        field = holder.model_fields.get(part)
        holder = model_in(field.annotation) if field is not None else None
    return holder


def _field_at(model: type[BaseModel] | None, loc: Iterable[Any]) -> Any:
    return _walk(model, loc)[1]


def raise_problems(found: list[tuple[str, str]]) -> None:
    """Raise perfpipe's InputError with one line per problem (its `field` is the first problem's)."""
    if found:
        field, message = found[0]
        raise InputError(field, "\n".join([message] + [f"{path}: {problem}" for path, problem in found[1:]]))
