"""A target: what may be loaded and how (config/targets.yaml entries, target files, the `inline_target` Param).

The model holds every rule that needs nothing but the document: keys, types, name charsets and lengths, the URL's
form, request fields, header references. What needs the machine or the other config files is checked by
perfpipe.app.targets after it (the script file exists, gate checks and analysis limits are known, chaos components
make sense, the allowlist admits the host), still before any load.

`inline_target_json_schema()` is the same rules as the Params form's JSON schema (a property test holds the two to
the same decisions).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, Strict, TypeAdapter, ValidationError, model_validator

from perfpipe import TEST_TYPES
from perfpipe.core.model.base import (END, FiniteNumber, MAX_BODY_BYTES, MAX_DESCRIPTION_CHARS,
                                      MAX_DOCUMENT_BYTES, MAX_HEADER_VALUE_CHARS, MAX_HEADERS, MAX_REQUESTS,
                                      MAX_URL_CHARS, NAME_PATTERN, REF_TEMPLATE, StrictModel, closed_key_patterns,
                                      param_schema, problems, raise_problems)
from perfpipe.core.model.overrides import HARD_MAX_VUS

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
# Either case, as YAML writers do; the plan carries the upper-case form.
_METHODS = tuple(HTTP_METHODS) + tuple(m.lower() for m in HTTP_METHODS)
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
# http(s), a host (name, IPv4 or [IPv6]), an optional port 1-65535, an optional path; no credentials (they would
# travel in run configs, XCom and logs: a header with {env|connection} carries them instead), no whitespace.
# A bracketed host is an IPv6 address in RFC 3986's grammar (Python's URL parser refuses anything else in brackets,
# e.g. [127.0.0.2], with a ValueError), spelled out so the JSON schema decides the same.
_H16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = rf"({_H16}:{_H16}|{_OCTET}(\.{_OCTET}){{3}})"
IPV6_PATTERN = "(" + "|".join([
    rf"({_H16}:){{6}}{_LS32}", rf"::({_H16}:){{5}}{_LS32}", rf"({_H16})?::({_H16}:){{4}}{_LS32}",
    rf"(({_H16}:){{0,1}}{_H16})?::({_H16}:){{3}}{_LS32}", rf"(({_H16}:){{0,2}}{_H16})?::({_H16}:){{2}}{_LS32}",
    rf"(({_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}", rf"(({_H16}:){{0,4}}{_H16})?::{_LS32}",
    rf"(({_H16}:){{0,5}}{_H16})?::{_H16}", rf"(({_H16}:){{0,6}}{_H16})?::"]) + ")"
BASE_URL_PATTERN = (rf"^https?://(\[{IPV6_PATTERN}\]|[A-Za-z0-9._-]{{1,253}})(:{_PORT})?"
                    rf"(/[^\s@\x00-\x1f\x7f]*)?{END}")
# A request path on the target: starts with one '/' ('//host' would be another host), no control characters (a CR
# or LF would end the request line); spaces are allowed, k6 escapes them (and templates like {{ int : 1 : 9 }}).
# A backslash is refused too: the default request name is 'METHOD path', and a tag value ending in '\' escapes the
# separator after it in InfluxDB's line protocol (write %5C).
_UNSAFE_IN_LINE = r"\x00-\x1f\x7f-\x9f\u2028\u2029\\"
PATH_PATTERN = rf"^/([^/{_UNSAFE_IN_LINE}][^{_UNSAFE_IN_LINE}]{{0,{MAX_URL_CHARS - 2}}})?{END}"
# Request names become k6 tags and InfluxDB tag values: printable, one line, bounded. k6 does not escape a newline
# in a tag value (a name with one wrote 680 extra points, measured), nor a backslash; C1 controls and U+2028/9 are
# line breaks to other readers of the same text.
LABEL_PATTERN = rf"^[^{_UNSAFE_IN_LINE}]{{1,128}}{END}"
HEADER_NAME_PATTERN = rf"^[A-Za-z0-9!#$%&'*+.^_`|~-]{{1,128}}{END}"
# A header value as HTTP allows it (RFC 9110 field-value: visible characters, space and tab): no CR or LF (they would
# start another header), no other control character.
HEADER_VALUE_PATTERN = rf"^[^\x00-\x08\x0a-\x1f\x7f]{{0,{MAX_HEADER_VALUE_CHARS}}}{END}"
ENV_NAME_PATTERN = rf"^[A-Za-z_][A-Za-z0-9_]{{0,127}}{END}"
CONN_ID_PATTERN = rf"^[A-Za-z0-9_.-]{{1,250}}{END}"
METRICS_PATH_PATTERN = rf"^/([^/\s\x00-\x1f\x7f][^\s\x00-\x1f\x7f]*)?{END}"


def _text(pattern: str, description: str = "") -> Any:
    return Annotated[str, Strict(), Field(pattern=pattern, description=description or None)]


def _int(low: int, high: int) -> Any:
    return Annotated[int, Strict(), Field(ge=low, le=high), BeforeValidator(
        lambda v: int(v) if isinstance(v, float) and v.is_integer() else v)]


Status = _int(100, 599)


def _json_body(body: Any) -> Any:
    """A body k6 can send as JSON, and small: it goes out on every iteration (a 20 MB one was sent 283 times)."""
    if body is None or isinstance(body, str):
        return body  # a string's bound is its length (max_length: the JSON schema says the same)
    try:
        size = len(json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8"))
    except ValueError:
        raise ValueError("a body must be JSON: no NaN or infinity") from None
    except RecursionError:
        raise ValueError("a body must be JSON nested less deeply") from None
    if size > MAX_BODY_BYTES:
        raise ValueError(f"a body may have at most {MAX_BODY_BYTES} bytes as JSON, got {size}")
    return body


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
    body: Annotated[dict[str, Any] | list[Any] | Annotated[str, Strict(), Field(max_length=MAX_BODY_BYTES)] | None,
                    AfterValidator(_json_body)] = Field(
        None, description=f"a JSON body: a mapping or a list (at most {MAX_BODY_BYTES} bytes as JSON), or a "
                                f"string (at most {MAX_BODY_BYTES} characters)")


class Capacity(StrictModel):
    """What the stress test's breaking point must reach."""

    vus: _int(1, HARD_MAX_VUS) | None = None
    rps: Annotated[FiniteNumber, Field(gt=0)] | None = None


TestType = Literal[tuple(TEST_TYPES)]


class Target(StrictModel):
    """A target document. Exactly one of `requests` or `script`."""

    name: _text(NAME_PATTERN, "a name of letters, digits, '.', '_' or '-' (1-64)") | None = None
    base_url: Annotated[str, Strict(), Field(max_length=MAX_URL_CHARS, pattern=BASE_URL_PATTERN, description= "an http(s) URL with a host and no credentials, e.g. "
                                      "http://127.0.0.1:8090")]
    description: Annotated[str, Strict(), Field(max_length=MAX_DESCRIPTION_CHARS)] | None = Field(
        None, description=f"a text of at most {MAX_DESCRIPTION_CHARS} characters")
    headers: Annotated[dict[Annotated[str, Field(pattern=HEADER_NAME_PATTERN, description=(
        "a header name of letters, digits and !#$%&'*+.^_`|~- (1-128)"))], HeaderValue],
                       Field(max_length=MAX_HEADERS)] | None = None
    # Not nullable (absent is None): a `requests: null` next to a script is a mistake worth naming.
    requests: Annotated[list[Request], Field(min_length=1, max_length=MAX_REQUESTS)] = Field(
        None, description=f"a non-empty list of requests (at most {MAX_REQUESTS})")
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
        target = _TARGET.validate_python(raw)
    except ValidationError as exc:
        raise_problems(problems(exc, field, Target, value=raw))
        raise  # unreachable: problems() always finds one
    # After the fields' own bounds, which name the field (a 50 MB description is refused as the description).
    _check_document_size(raw, field)
    return target


def _check_document_size(raw: dict[str, Any], field: str) -> None:
    """The whole document is bounded too (a file is measured before it is parsed; an inline target has no file):
    Airflow stores a run's Params and XComs in its database."""
    try:
        size = len(json.dumps(raw, default=str, separators=(",", ":")).encode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return  # not JSON-shaped: the model names the field that is not
    if size > MAX_DOCUMENT_BYTES:
        raise_problems([(field, f"a target may have at most {MAX_DOCUMENT_BYTES} bytes as JSON, got {size}")])


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
