"""perfpipe.core.model.target: the rules of a target document (what needs files or other config is app.targets')."""

from __future__ import annotations

import re

import pytest

from perfpipe.core.errors import InputError
from perfpipe.core.model.target import (BASE_URL_PATTERN, PATH_PATTERN, inline_target_json_schema,
                                        validate_target_document)

GOOD = {"base_url": "http://127.0.0.1:8090", "requests": [{"path": "/"}]}


def _refusal(document) -> InputError:
    with pytest.raises(InputError) as exc:
        validate_target_document(document, "target")
    return exc.value


@pytest.mark.parametrize("url", ["http://127.0.0.1", "https://127.0.0.1:8443/api/", "http://[::1]:8090",
                                 "http://localhost:1", "http://demo.internal:65535/x?y=1"])
def test_base_urls_accepted(url):
    assert re.match(BASE_URL_PATTERN, url)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1", "127.0.0.1:8090", "http://", "http://u:p@127.0.0.1",
                                 "http://127.0.0.1:0", "http://127.0.0.1:65536", "http://127.0.0.1:8090/a b",
                                 "http://127.0.0.1\n", "http://a@b"])
def test_base_urls_refused(url):
    assert not re.match(BASE_URL_PATTERN, url)  # re.match as jsonschema and pydantic (python-re) use it


@pytest.mark.parametrize("path, ok", [("/", True), ("/api/products/{{int:1:100}}", True), ("/a?b=1&c=2", True),
                                      ("api", False), ("", False), ("//evil.example/x", False), ("/a b", True),
                                      ("/a\r\nHost: x", False)])
def test_request_paths(path, ok):
    # '//host/x' would be a network-path reference: a request to another host than the target's
    assert bool(re.match(PATH_PATTERN, path)) is ok


def test_every_problem_at_once_naming_each_field():
    error = _refusal({"base_url": "ftp://x", "requests": [{"path": "api", "weight": 0, "bogus": 1}], "timeout": 5})
    assert [line.split(":")[0] for line in str(error).splitlines()] == [
        "target.base_url", "target.requests[0].path", "target.requests[0].weight", "target.requests[0].bogus",
        "target.timeout"]


def test_requests_or_script_exactly_one():
    assert str(_refusal({"base_url": "http://127.0.0.1"})) == \
        "target: give exactly one of 'requests' (no JavaScript needed) or 'script'"
    assert _refusal({**GOOD, "script": "a.js"}).field == "target"
    assert _refusal({**GOOD, "requests": None, "script": "a.js"}).field == "target.requests"


def test_a_header_value_cannot_start_another_header_and_is_never_repeated():
    error = _refusal({**GOOD, "headers": {"X-Token": "abc\r\nX-Admin: 1"}})
    assert error.field == "target.headers.X-Token"
    assert "abc" not in str(error)


def test_credentials_in_the_url_are_not_repeated():
    assert "secret" not in str(_refusal({**GOOD, "base_url": "http://user:secret@127.0.0.1"}))


def test_the_model_is_frozen():
    target = validate_target_document(GOOD, "target")
    with pytest.raises(Exception):
        target.base_url = "http://10.0.0.1"  # type: ignore[misc]


def test_the_params_schema_allows_null_and_the_same_keys():
    schema = inline_target_json_schema()
    null, body = schema["anyOf"]
    assert null == {"type": "null"}
    assert body["additionalProperties"] is False
    assert set(body["properties"]) >= {"base_url", "requests", "script", "headers", "max_vus", "chaos"}
