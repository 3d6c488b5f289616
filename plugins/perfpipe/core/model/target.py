"""A target: what may be loaded and how (config/targets.yaml entries, target files, the `inline_target` Param).

The model holds every rule that needs nothing but the document: keys, types, name charsets and lengths, the URL's
form, request fields, header references. What needs the machine or the other config files is checked by
perfpipe.app.targets after it (the script file exists, gate checks and analysis limits are known, chaos components
make sense, the allowlist admits the host), still before any load.

`inline_target_json_schema()` is the same rules as the Params form's JSON schema (a property test holds the two to
the same decisions).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Strict, TypeAdapter, ValidationError, model_validator

from perfpipe import TEST_TYPES
from perfpipe.core.model.base import (END, FiniteNumber, NAME_PATTERN, REF_TEMPLATE, StrictModel,
                                      closed_key_patterns, param_schema, problems, raise_problems)
from perfpipe.core.model.overrides import HARD_MAX_VUS

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Either case, as YAML writers do; the plan carries the upper-case form.
_METHODS = tuple(HTTP_METHODS) + tuple(m.lower() for m in HTTP_METHODS)
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# http(s), a host (name, IPv4 or [IPv6]), an optional port 1-65535, an optional path; no credentials (they would
# travel in run configs, XCom and logs: a header with {env|connection} carries them instead), no whitespace.
BASE_URL_PATTERN = rf"^https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:{_PORT})?(/[^\s@]*)?{END}"
# A request path on the target: starts with one '/' ('//host' would be another host), no control characters (a CR
# or LF would end the request line); spaces are allowed, k6 escapes them (and templates like {{ int : 1 : 9 }}).
PATH_PATTERN = rf"^/([^/\x00-\x1f\x7f][^\x00-\x1f\x7f]*)?{END}"
# Request names become k6 tags and InfluxDB tag values: printable, one line, bounded.
LABEL_PATTERN = rf"^[^\x00-\x1f\x7f]{{1,128}}{END}"
HEADER_NAME_PATTERN = rf"^[A-Za-z0-9!#$%&'*+.^_`|~-]{{1,128}}{END}"
# A header value on one line (a CR or LF would start another header).
HEADER_VALUE_PATTERN = rf"^[^\r\n\x00]{{0,8192}}{END}"
ENV_NAME_PATTERN = rf"^[A-Za-z_][A-Za-z0-9_]{{0,127}}{END}"
CONN_ID_PATTERN = rf"^[A-Za-z0-9_.-]{{1,250}}{END}"
METRICS_PATH_PATTERN = rf"^/([^/\s\x00-\x1f\x7f][^\s\x00-\x1f\x7f]*)?{END}"


def _text(pattern: str, description: str = "") -> Any:
    return Annotated[str, Strict(), Field(pattern=pattern, description=description or None)]


def _int(low: int, high: int) -> Any:
    return Annotated[int, Strict(), Field(ge=low, le=high), BeforeValidator(
        lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)]


Status = _int(100, 599)


class EnvSecret(StrictModel):
    """A header value read from the worker's environment at run time."""

    env: _text(ENV_NAME_PATTERN, "the environment variable's name")
    prefix: _text(HEADER_VALUE_PATTERN, "text before the secret, e.g. 'Bearer '") | None = None


class ConnectionSecret(StrictModel):
    """A header value: the password of an Airflow Connection, read at run time."""

    connection: _text(CONN_ID_PATTERN, "the Airflow Connection's id")
    prefix: _text(HEADER_VALUE_PATTERN, "text before the secret, e.g. 'Bearer '") | None = None


HeaderValue = Annotated[_text(HEADER_VALUE_PATTERN) | EnvSecret | ConnectionSecret,
                        Field(description="a plain one-line string, or {env: VAR} / {connection: CONN_ID} with an "
                                          "optional prefix")]


class Request(StrictModel):
    """One request of a `requests:` target (no JavaScript needed)."""

    name: _text(LABEL_PATTERN, "a one-line name of 1-128 characters (default: 'METHOD path')") | None = None
    method: Literal[_METHODS] = Field("GET", description="one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS")
    path: _text(PATH_PATTERN, "a path on the target starting with '/', e.g. "
                                   "/api/items/{{int:1:100}}")
    weight: Annotated[FiniteNumber, Field(gt=0, description="a positive number (the request's share of the "
                                                           "iterations)")] = 1
    expect_status: Annotated[Status | Annotated[list[Status], Field(min_length=1, max_length=20)],
                             Field(description="HTTP status codes (100-599): one or a list")] = 200
    body: dict[str, Any] | list[Any] | Annotated[str, Strict()] | None = Field(
        None, description="a JSON body: a mapping, a list or a string")


class Capacity(StrictModel):
    """What the stress test's breaking point must reach."""

    vus: _int(1, HARD_MAX_VUS) | None = None
    rps: Annotated[FiniteNumber, Field(gt=0)] | None = None


TestType = Literal[tuple(TEST_TYPES)]


class Target(StrictModel):
    """A target document. Exactly one of `requests` or `script`."""

    name: _text(NAME_PATTERN, "a name of letters, digits, '.', '_' or '-' (1-64)") | None = None
    base_url: _text(BASE_URL_PATTERN, "an http(s) URL with a host and no credentials, e.g. "
                                      "http://127.0.0.1:8090")
    description: Annotated[str, Strict(), Field(max_length=500)] | None = None
    headers: Annotated[dict[Annotated[str, Field(pattern=HEADER_NAME_PATTERN)], HeaderValue],
                       Field(max_length=50)] | None = None
    # Not nullable (absent is None): a `requests: null` next to a script is a mistake worth naming.
    requests: Annotated[list[Request], Field(min_length=1, max_length=200)] = Field(
        None, description="a non-empty list of requests (at most 200)")
    script: _text(rf"^[^\x00-\x1f\x7f]{{1,1024}}\.(js|ts){END}", "a path to a k6 .js script") = None
    max_vus: _int(1, HARD_MAX_VUS) | None = Field(None, description=f"a positive integer (at most {HARD_MAX_VUS})")
    max_rps: _int(1, 10_000_000) | None = Field(None, description="a positive integer (requests per second)")
    production: Annotated[bool, Strict()] | None = Field(None, description="true or false")
    gates: dict[TestType, dict[str, Any]] | None = None
    required_capacity: Capacity | None = None
    analysis: dict[str, dict[str, Any]] | None = None
    metrics_url: _text(METRICS_PATH_PATTERN, "a path on the target such as /__stats") | None = None
    chaos: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _requests_or_script(self) -> "Target":
        if (self.requests is None) == (self.script is None):
            raise ValueError("give exactly one of 'requests' (no JavaScript needed) or 'script'")
        return self


_TARGET = TypeAdapter(Target)


def validate_target_document(raw: Any, field: str) -> Target:
    """The target model of a document, or perfpipe's InputError listing every problem (one line each)."""
    if not isinstance(raw, dict):
        raise_problems([(field, "a target must be a mapping with base_url and requests or script")])
    try:
        return _TARGET.validate_python(raw)
    except ValidationError as exc:
        raise_problems(problems(exc, field, Target, value=raw))
        raise  # unreachable: problems() always finds one


def inline_target_json_schema() -> dict[str, Any]:
    """The Target model as the `inline_target` Param's JSON schema (the form, the REST API)."""
    schema = closed_key_patterns(_TARGET.json_schema(ref_template=REF_TEMPLATE))
    defs = schema.pop("$defs", {})
    schema.pop("title", None)
    # The one rule JSON schema says as its own keywords: exactly one of requests or script, neither null.
    schema["oneOf"] = [{"required": ["requests"], "not": {"required": ["script"]}},
                       {"required": ["script"], "not": {"required": ["requests"]}}]
    for key in ("requests", "script"):
        schema["properties"][key].pop("default", None)
    return param_schema({"anyOf": [{"type": "null"}, schema],
                         "description": "An inline target (same shape as an entry of config/targets.yaml); "
                                        "overrides `target`."}, defs)
