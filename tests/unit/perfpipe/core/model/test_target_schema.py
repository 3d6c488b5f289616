"""Property: the `inline_target` Params schema generated from the target model (the UI form, the REST API) and the
model itself (the pre-flight, the tasks) make the same accept/refuse decision on any target document (JSON only)."""

from __future__ import annotations

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from perfpipe.core.errors import InputError
from perfpipe.core.model.target import inline_target_json_schema, validate_target_document

SCHEMA = inline_target_json_schema()
VALIDATOR = jsonschema.validators.validator_for(SCHEMA)(SCHEMA, format_checker=jsonschema.FormatChecker())

junk = st.one_of(st.none(), st.booleans(), st.integers(-2, 3), st.text(max_size=4), st.just([]), st.just({}))
urls = st.sampled_from(["http://127.0.0.1:8090", "https://[::1]:8443/api/", "http://localhost", "ftp://127.0.0.1",
                        "http://u:p@127.0.0.1", "http://127.0.0.1:65536", "http://127.0.0.1:0", "127.0.0.1:80",
                        "http://", "http://127.0.0.1/a b", "http://h:1/x", "http://127.0.0.1:8090\n",
                        "http://[127.0.0.2]", "http://[::ffff:127.0.0.1]:80", "http://[1::2::3]", "http://[fe80::1]",
                        "http://127.0.0.1/a\x01", "http://" + "h" * 254, "http://127.0.0.1/" + "a" * 2100])
paths = st.sampled_from(["/", "/api/{{int:1:9}}", "/a?b=1", "api", "", "//evil/x", "/a b", "/a\nb", "/a\n",
                         "/a\\b", "/a\u2028", "/\x85", "/" + "a" * 2047, "/" + "a" * 2048])
statuses = st.one_of(st.sampled_from([99, 100, 200, 200.0, 201.5, 599, 600, True, "200"]),
                     st.lists(st.sampled_from([100, 200, 600, True]), max_size=3))
REQUEST_NEAR = {"name": st.sampled_from(["home", "GET /", "", "a\nb", "x" * 129, "x" * 128, "a\\", "a\u2029b",
                                         "a\x9fb", "café, a=b"]),
                "method": st.sampled_from(["GET", "post", "Get", "FETCH", "", 5]),
                "weight": st.sampled_from([1, 2.5, 0, -1, 1e-9, True, "1", None]),
                "expect_status": statuses,
                "body": st.one_of(st.none(), st.just({"a": 1}), st.just([1]), st.just("x"), st.just(5),
                                  st.just("x" * 65_536), st.just("x" * 65_537)),
                "bogus": st.just(1)}
requests = st.fixed_dictionaries({"path": paths}, optional=REQUEST_NEAR)
# One field of an otherwise good request, spread evenly over the fields.
one_field_requests = st.sampled_from(sorted(REQUEST_NEAR) + ["path"]).flatmap(
    lambda key: (paths if key == "path" else REQUEST_NEAR[key]).map(lambda value: {"path": "/", key: value}))
header_values = st.one_of(st.sampled_from(["plain", "Bearer x", "a\r\nb", "", "x\n", "a\tb", "a\x01b", "a\x7f",
                                           "x" * 8192, "x" * 8193]),
                          st.fixed_dictionaries({}, optional={"env": st.sampled_from(["API_TOKEN", "1BAD", ""]),
                                                              "connection": st.sampled_from(["my_api", "bad id"]),
                                                              "prefix": st.sampled_from(["Bearer ", "a\nb"]),
                                                              "default": st.just("x")}),
                          junk)
NEAR = {  # per key: values around its rules, most of them allowed
    "name": st.sampled_from(["demo", "my.target-1", "x" * 64, "has space", "", "x" * 65, "demo\n", None]),
    "requests": st.lists(requests, min_size=1, max_size=2),
    "headers": st.dictionaries(st.sampled_from(["Authorization", "X-Key", "Bad Name", ""]), header_values,
                               max_size=2),
    "max_vus": st.sampled_from([1, 50, 20_000, 20_001, 0, -1, 1.5, 2.0, True, "10", None]),
    "max_rps": st.sampled_from([1, 100, 10_000_000, 10_000_001, 0, 2.5, None]),
    "production": st.sampled_from([True, False, "yes", None]),
    "description": st.sampled_from(["demo", "", "x" * 500, "x" * 501, 5, None]),
    "required_capacity": st.fixed_dictionaries({}, optional={
        "vus": st.sampled_from([1, 0, 50, 1.5, 20_001]), "rps": st.sampled_from([1, 0, 2.5, -1]),
        "bogus": st.just(1)}),
    "metrics_url": st.sampled_from(["/__stats", "/", "__stats", "//x", "/a b", None]),
    "gates": st.dictionaries(st.sampled_from(["load", "smoke", "lod"]), st.one_of(st.just({}), junk), max_size=2),
    "analysis": st.one_of(st.dictionaries(st.sampled_from(["stress", "soak"]), st.one_of(st.just({}), junk),
                                          max_size=1), junk),
    "chaos": st.one_of(st.just({}), junk),
    "script": st.sampled_from(["smoke.js", "mine.ts", "script.py", "", "a.js\n"]),
    "timeout": st.just(5),
}
# A good target with one or two keys set near their rules (each rule's edges met mostly on their own) ...
GOOD = {"base_url": "http://127.0.0.1:8090", "requests": [{"path": "/"}]}
near_targets = st.tuples(st.sampled_from(sorted(NEAR)), st.sampled_from(sorted(NEAR)), urls).flatmap(
    lambda keys: st.fixed_dictionaries({keys[0]: NEAR[keys[0]], keys[1]: NEAR[keys[1]]}).map(
        lambda changed: {**GOOD, "base_url": keys[2], **changed}))
single_key_targets = st.sampled_from(sorted(NEAR)).flatmap(
    lambda key: NEAR[key].map(lambda value: {**GOOD, key: value}))
# ... and anything at all made of the same parts.
any_targets = st.fixed_dictionaries({"base_url": urls}, optional=NEAR)
targets = st.one_of(single_key_targets, near_targets, any_targets)


def schema_accepts(document) -> bool:
    return next(VALIDATOR.iter_errors(document), None) is None


def model_accepts(document) -> bool:
    try:
        validate_target_document(document, "target")
    except InputError:
        return False
    return True


@settings(max_examples=600, deadline=None)
@given(targets)
def test_schema_and_model_decide_alike(document):
    assert schema_accepts(document) == model_accepts(document), document


@settings(max_examples=300, deadline=None)
@given(one_field_requests)
def test_schema_and_model_decide_alike_request_field_by_field(request_document):
    document = {**GOOD, "requests": [request_document]}
    assert schema_accepts(document) == model_accepts(document), document


@settings(max_examples=100, deadline=None)
@given(st.one_of(junk, st.lists(junk, max_size=2)))
def test_anything_but_a_mapping_or_null_is_refused_by_both(document):
    assert schema_accepts(document) is (document is None)
    if document is not None:
        assert not model_accepts(document)
