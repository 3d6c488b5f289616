"""The model's building blocks: strict frozen models, finite numbers, the one duration grammar, and the one way a
validation error reaches a user (perfpipe's InputError, one line per problem, naming the field).

Patterns use [0-9], not \\d: Python's and pydantic's \\d also match other scripts' digits, JSON schema's may not.
"""

from __future__ import annotations

import re
import reprlib
import types
from typing import Annotated, Any, Iterable, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError
from pydantic.fields import FieldInfo

from perfpipe.core.errors import InputError

# A k6 duration: one or more <number><unit> parts, e.g. 30s, 1m30s, 500ms, 2h (k6's ns/us/d are not accepted).
# Every pattern ends in END: Python's `$` (jsonschema's, pydantic's python-re) also matches before a final newline,
# and "demo\n" must not pass as a name anywhere (a newline in a tag value splits InfluxDB's line protocol).
# ECMAScript (the UI form) reads `$` as the end already; the look-ahead is a no-op there.
END = r"$(?!\n)"
DURATION_PART = r"([0-9]+(\.[0-9]+)?(ms|s|m|h))+"
DURATION_PATTERN = rf"^{DURATION_PART}{END}"
DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# A name a user gives (check, target, request, scenario): safe in tags, file names and InfluxQL.
NAME_PATTERN = rf"^[A-Za-z0-9_.-]{{1,64}}{END}"

# Size limits of untrusted input, one place (README "Configuration" lists them): each bounds what one run's
# parameters can make perfpipe store (Airflow's run conf, XCom), send (a body on every iteration) or parse.
MAX_FILE_BYTES = 1_048_576  # a target file, or any YAML file perfpipe reads, checked before it is parsed
MAX_DOCUMENT_BYTES = 1_048_576  # an inline target as JSON (the REST API / Params form has no file to measure)
MAX_BODY_BYTES = 65_536  # one request body as JSON
MAX_DESCRIPTION_CHARS = 500
MAX_REQUESTS = 200
MAX_HEADERS = 50
MAX_HEADER_VALUE_CHARS = 8192
MAX_STAGES = 100
MAX_URL_CHARS = 2048
MAX_YAML_NODES = 100_000  # a deployment config file's nodes with its aliases expanded (run-time files: no aliases)
MAX_YAML_DEPTH = 64
MAX_SET_VALUE_CHARS = 8192  # one CLI `--set key=value` value

# Numbers: no bools, no NaN or infinity (a NaN threshold would switch its check off silently).
FiniteNumber = Annotated[float, Strict(), Field(allow_inf_nan=False)]
NonNegativeNumber = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
DurationText = Annotated[str, Strict(), Field(max_length=32, pattern=DURATION_PATTERN)]  # 1e400s is inf
# A duration is k6 text or a number of seconds.
Duration = Annotated[NonNegativeNumber | DurationText, Field(description="a duration like 30s, 2m, 1h30m or 500ms, "
                                                                         "or a number of seconds")]


ADAPTER_CONFIG = ConfigDict(regex_engine="python-re")


class StrictModel(BaseModel):
    """Frozen; unknown keys are refused (with the known ones listed); no type coercion beyond int -> float."""

    # python-re: the patterns' look-ahead (END) needs it; Rust's regex has none.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, regex_engine="python-re")


def closed_key_patterns(schema: Any) -> Any:
    """pydantic writes a dict with a key pattern as `patternProperties`, which in JSON schema leaves other keys
    unchecked; the model refuses them, so the schema must too (in place, returns the schema)."""
    if isinstance(schema, dict):
        if "patternProperties" in schema and "properties" not in schema:
            schema.setdefault("additionalProperties", False)
        for value in schema.values():
            closed_key_patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            closed_key_patterns(value)
    return schema


# The dialect of every Param schema generated from the model. Airflow checks a Param's schema against its
# metaschema on each resolve (jsonschema.validate), and serializing a DAG resolves every task's Params: hundreds of
# times per `dag.test`. Draft 2020-12's metaschema ($dynamicRef) makes that check ~8x slower than draft-07's (50-68
# ms against 5-7 ms per check of these schemas, measured). The generated schemas use draft-07 keywords only, with
# their shared pieces under `definitions`; tests check both schemas against the draft-07 metaschema.
SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"
REF_TEMPLATE = "#/definitions/{model}"


def param_schema(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """A generated schema as a Param schema: the dialect named, the shared pieces under `definitions`."""
    return {"$schema": SCHEMA_DIALECT, **schema, **({"definitions": definitions} if definitions else {})}


def known_keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _unwrap(annotation: Any) -> tuple[Any, str | None]:
    """The type under Annotated[...] layers, and the description its Field(...) carries, if any."""
    description = None
    while get_origin(annotation) is Annotated:
        args = get_args(annotation)
        for meta in args[1:]:
            if isinstance(meta, FieldInfo) and meta.description:
                description = meta.description
        annotation = args[0]
    return annotation, description


def _members(annotation: Any) -> list[Any] | None:
    """A union's members other than None (None when the type is not a union)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [arg for arg in get_args(annotation) if arg is not type(None)]
    return None


def _kind(annotation: Any) -> str:
    core, _ = _unwrap(annotation)
    if isinstance(core, type) and issubclass(core, BaseModel):
        return "mapping"
    origin = get_origin(core) or core
    if origin in (dict,):
        return "mapping"
    if origin in (list, tuple):
        return "list"
    return "scalar"


def _value_kind(value: Any) -> str:
    return "mapping" if isinstance(value, dict) else "list" if isinstance(value, (list, tuple)) else "scalar"


def _branch(members: list[Any], label: Any) -> Any:
    """The union member pydantic's location label names (a model by class name, list[...]/dict[...] by kind)."""
    for member in members:
        core, _ = _unwrap(member)
        if isinstance(core, type) and issubclass(core, BaseModel) and label == core.__name__:
            return member
    for member in members:
        kind = _kind(member)
        if isinstance(label, str) and ((kind == "list" and label.startswith(("list[", "tuple[")))
                                       or (kind == "mapping" and label.startswith("dict["))):
            return member
    return None


class _Shown(str):
    """Already made safe to show: its repr is itself."""

    def __repr__(self) -> str:
        return str(self)


class _Located:
    """One pydantic error located in the type: its path parts, the unions it went through, where it ended."""

    def __init__(self, annotation: Any, loc: Iterable[Any]):
        self.parts: list[Any] = []
        self.unions: list[tuple[tuple[Any, ...], Any, Any, str | None]] = []  # (parts, members, label, description)
        self.holder: type[BaseModel] | None = None
        self.description: str | None = None
        loc = list(loc)
        annotation, self.description = _unwrap(annotation)
        index = 0
        while annotation is not None:
            members = _members(annotation)
            if members is not None:
                if len(members) == 1:  # X | None: no label in the location
                    annotation, described = _unwrap(members[0])
                    self.description = described or self.description
                    continue
                if index >= len(loc):
                    break
                label = loc[index]
                index += 1
                self.unions.append((tuple(self.parts), members, label, self.description))
                chosen = _branch(members, label)
                annotation, described = _unwrap(chosen) if chosen is not None else (None, None)
                self.description = described or self.description
                continue
            if index >= len(loc):
                break
            part = loc[index]
            index += 1
            self.parts.append(part)
            origin = get_origin(annotation)
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                self.holder = annotation
                field = annotation.model_fields.get(part) if isinstance(part, str) else None
                if field is None:
                    break  # an unknown key, or a model-level rule
                annotation, described = _unwrap(field.annotation)
                self.description = field.description or described
            elif origin in (list, tuple):
                annotation, self.description = _unwrap(get_args(annotation)[0])
            elif origin is dict:
                if index < len(loc) and loc[index] == "[key]":  # the key itself is refused
                    annotation, self.description = _unwrap(get_args(annotation)[0])
                    break
                annotation, self.description = _unwrap(get_args(annotation)[1])
            else:
                break

    def path(self, prefix: str, parts: Iterable[Any] | None = None) -> str:
        path = prefix
        for part in self.parts if parts is None else parts:
            if isinstance(part, int):
                path += f"[{part}]"
            else:
                path = f"{path}.{part}" if path else str(part)
        return path


_URL_CREDENTIALS = re.compile(r"(://)[^/@\s]*@")
# Values under these keys may be secrets (a header's text, a bearer token): an error never repeats them.
SENSITIVE_KEYS = ("headers",)


SHOWN_CHARS = 80  # an error repeats at most this much of a value (a 50 MB description stays out of the log)
# repr() of a value nested 5000 deep is a RecursionError, and of a 50 MB string a 50 MB string: bounded instead.
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxstring, _SHORT_REPR.maxother = 4, 4 * SHOWN_CHARS, 4 * SHOWN_CHARS
_SHORT_REPR.maxlist = _SHORT_REPR.maxtuple = _SHORT_REPR.maxdict = _SHORT_REPR.maxset = 8


def shown(value: Any, parts: Iterable[Any] = ()) -> str:
    """A refused value as an error may show it: never a header's value, never a URL's credentials, never more
    than SHOWN_CHARS of it."""
    if any(part in SENSITIVE_KEYS for part in parts):
        return f"a {type(value).__name__} (not shown)"
    text = _URL_CREDENTIALS.sub(r"\1***@", _SHORT_REPR.repr(value))
    if len(text) > SHOWN_CHARS:
        size = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters as text"
        return f"{text[:SHOWN_CHARS - 20]}... ({size})"
    return text


def _value_at(value: Any, parts: Iterable[Any]) -> Any:
    for part in parts:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _describe(error: dict[str, Any], where: _Located) -> str:
    """What is wrong and what is allowed, in words (never pydantic's own phrasing or links)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    got = _Shown(shown(error.get("input"), where.parts))
    if kind == "extra_forbidden":
        return f"unknown key (known: {known_keys(where.holder)})" if where.holder else "unknown key"
    if kind == "missing":
        return f"missing; expected {where.description}" if where.description else "missing"
    if where.description and kind != "value_error":
        # The field says what it takes (its description is a noun phrase): one wording for every way to miss it.
        return f"expected {where.description}, got {got!r}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        bounds = {"greater_than_equal": ">=", "less_than_equal": "<=", "greater_than": ">", "less_than": "<"}
        limit = next(iter(ctx.values()))
        return f"must be {bounds[kind]} {limit}, got {got!r}"
    if kind == "finite_number":
        return f"must be a finite number, got {got!r}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == DURATION_PATTERN:
            return f"expected a duration like 30s, 2m or 1h30m (units ms, s, m, h), got {got!r}"
        if where.description:
            return f"expected {where.description}, got {got!r}"
        return f"has characters or a form that is not allowed, got {got!r}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {got!r}"
    if kind in ("string_too_short", "string_too_long"):
        size = len(error["input"]) if isinstance(error.get("input"), str) else "?"
        return f"must have {'at least' if kind == 'string_too_short' else 'at most'} " \
               f"{ctx.get('min_length', ctx.get('max_length'))} character(s), got {size}"
    if kind in ("too_short", "too_long"):
        return f"must have {'at least' if kind == 'too_short' else 'at most'} " \
               f"{ctx.get('min_length', ctx.get('max_length'))} item(s)"
    if kind.startswith(("int_", "float_", "bool_", "string_", "dict_", "list_", "model_")):
        wanted = kind.split("_")[0]
        words = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
                 "dict": "a mapping", "list": "a list", "model": "a mapping"}
        return f"expected {words.get(wanted, wanted)}, got {got!r}"
    if kind == "value_error":
        return str(ctx.get("error") or error.get("msg"))
    return f"not allowed: {got!r}"


def problems(exc: ValidationError, prefix: str, annotation: Any = None,
             allowed: str | None = None, value: Any = None) -> list[tuple[str, str]]:
    """A pydantic ValidationError as (field path, problem) pairs, one per field, paths walked through the type.

    At a union, the errors of the one branch of the value's own kind are shown (a mapping's by its model); when
    no branch or several take values of that kind, the union is one problem saying what it takes (`allowed` at
    the top, else the union's description). An unknown key lists the keys of the model it is in."""
    located = [(error, _Located(annotation, error["loc"])) for error in exc.errors(include_url=False)]
    decisions: dict[tuple[Any, ...], Any] = {}  # union node -> the member to descend into, or None: one problem
    found: dict[str, str] = {}
    for error, where in located:
        for parts, members, label, description in where.unions:
            node = _value_at(value, parts)
            if parts not in decisions:
                fitting = [m for m in members if _kind(m) == _value_kind(node)]
                decisions[parts] = fitting[0] if len(fitting) == 1 and _kind(fitting[0]) != "scalar" else None
            chosen = decisions[parts]
            if chosen is None:
                wanted = (allowed if not parts else None) or description or allowed or "an allowed value"
                found.setdefault(where.path(prefix, parts), f"expected {wanted}, got {shown(node, parts)}")
                break
            if _branch(members, label) is not chosen:
                break  # another branch's complaint about a value that was never its kind
        else:
            found.setdefault(where.path(prefix), _describe(error, where))
    return list(found.items())


def raise_problems(found: list[tuple[str, str]]) -> None:
    """Raise perfpipe's InputError with one line per problem (its `field` is the first problem's)."""
    if found:
        field, message = found[0]
        raise InputError(field, "\n".join([message] + [f"{path}: {problem}" for path, problem in found[1:]]))
