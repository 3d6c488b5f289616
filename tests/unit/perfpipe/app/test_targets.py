"""perfpipe.app.targets: target validation and resolution, header references, allowlist and k6 --blacklist-ip."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import pytest

from perfpipe.core.errors import InputError, TargetNotAllowedError
from perfpipe.app.targets import (check_target_allowed, k6_blocked_networks, resolve_header_values, resolve_target,
                              validate_target)

REQ = [{"name": "home", "path": "/"}]


def _target(**fields):
    return {"base_url": "http://127.0.0.1:8090", "requests": REQ, **fields}


def _refused(raw, name="t"):
    with pytest.raises(InputError) as exc:
        validate_target(raw, name, "targets.t")
    return exc.value


# ---------------------------------------------------------------------------------------------- validate_target


def test_validate_target_normalises_requests():
    target = validate_target({
        "base_url": "https://127.0.0.1:8443/api/",
        "description": "unit",
        "max_vus": 20,
        "requests": [
            {"path": "/items"},
            {"name": "create", "method": "post", "path": "/items", "weight": 2.5, "expect_status": [201, 202],
             "body": {"x": 1}},
        ],
    }, "t", "targets.t")
    assert target == {
        "name": "t", "base_url": "https://127.0.0.1:8443/api", "description": "unit", "max_vus": 20, "headers": {},
        "requests": [
            {"name": "GET /items", "method": "GET", "path": "/items", "weight": 1.0, "expect_status": [200],
             "body": None},
            {"name": "create", "method": "POST", "path": "/items", "weight": 2.5, "expect_status": [201, 202],
             "body": {"x": 1}},
        ],
    }


def test_validate_target_not_a_mapping():
    assert str(_refused(["http://127.0.0.1"])) == ("targets.t: a target must be a mapping with base_url and "
                                                   "requests or script")


@pytest.mark.parametrize("raw", [{"requests": REQ}, _target(base_url=""), _target(base_url=None),
                                 _target(base_url=8090)])
def test_missing_base_url(raw):
    err = _refused(raw)
    assert err.field == "targets.t.base_url"
    assert "an http(s) URL with a host and no credentials, e.g. http://127.0.0.1:8090" in str(err)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1", "127.0.0.1:8090", "http://", "file:///etc/passwd",
                                 "ws://127.0.0.1"])
def test_bad_scheme_or_host(url):
    assert str(_refused(_target(base_url=url))) == f"targets.t.base_url: expected an http(s) URL with a host and no credentials, e.g. http://127.0.0.1:8090, got {url!r}"


def test_bad_port():
    err = _refused(_target(base_url="http://127.0.0.1:99999"))
    assert str(err) == "targets.t.base_url: expected an http(s) URL with a host and no credentials, e.g. http://127.0.0.1:8090, got 'http://127.0.0.1:99999'"


@pytest.mark.parametrize("raw", [
    {"base_url": "http://127.0.0.1"},
    {"base_url": "http://127.0.0.1", "requests": REQ, "script": "smoke.js"},
])
def test_requests_xor_script(raw):
    err = _refused(raw)
    assert err.field == "targets.t"
    assert str(err) == "targets.t: give exactly one of 'requests' (no JavaScript needed) or 'script'"


def test_script_target_resolves_to_an_absolute_file(tmp_path):
    script = tmp_path / "mine.js"
    script.write_text("export default function () {}\n")
    target = validate_target({"base_url": "http://127.0.0.1", "script": str(script)}, "t", "targets.t")
    assert target["script"] == str(script.resolve())
    assert "requests" not in target


@pytest.mark.parametrize("script, message", [
    ("missing-file.js", "targets.t.script: script 'missing-file.js' not found"),
    ("script.py", "targets.t.script: expected a path to a k6 .js script, got 'script.py'"),
])
def test_bad_script(script, message):
    assert str(_refused({"base_url": "http://127.0.0.1", "script": script})) == message


@pytest.mark.parametrize("requests", [[], {}, "GET /"])
def test_requests_must_be_a_non_empty_list(requests):
    assert str(_refused(_target(requests=requests))) == \
        f"targets.t.requests: expected a non-empty list of requests (at most 200), got {requests!r}"


@pytest.mark.parametrize("method", ["FETCH", "", 5])
def test_bad_method(method):
    err = _refused(_target(requests=[{"path": "/", "method": method}]))
    assert err.field == "targets.t.requests[0].method"
    assert str(err) == (f"targets.t.requests[0].method: expected one of GET, POST, PUT, PATCH, DELETE, HEAD, "
                        f"OPTIONS, got {method!r}")


@pytest.mark.parametrize("weight", [0, -1, True, False, "1", None, float("nan"), float("inf")])
def test_bad_weight(weight):
    err = _refused(_target(requests=[{"path": "/a"}, {"path": "/b", "weight": weight}]))
    assert str(err) == (f"targets.t.requests[1].weight: expected a positive number (the request's share of the "
                        f"iterations), got {weight!r}")


# Templates: k6-scripts/lib/compile.js compiles them without checking, so every template it cannot compile is
# refused here, naming the field (the scripts template base_url + path as one string, and body string values).
@pytest.mark.parametrize("path", ["/a/{{int:1:100}}", "/{{ uuid }}/{{vu}}-{{iter}}", "/{{ int : -5 : -5 }}",
                                  "/{{\u3000iter\ufeff}}", "/a}}b", "/{x}"])
def test_templates_accepted(path):
    body = {"id": "{{int:1:9}}", "tags": ["t-{{uuid}}", {"n": "{{vu}}"}], "k{{x}}": 1, "free": None}
    target = validate_target(_target(requests=[{"path": path, "method": "POST", "body": body}]), "t", "targets.t")
    assert target["requests"][0]["path"] == path and target["requests"][0]["body"] == body


@pytest.mark.parametrize("path, message", [
    ("/p/{{int:9:1}}", "template {{int:9:1}} has A > B"),
    ("/p/{{uuid4}}", "unknown template {{uuid4}} (supported: {{int:A:B}}, {{uuid}}, {{vu}}, {{iter}})"),
    ("/p/{{int:1}}", "unknown template {{int:1}} (supported: {{int:A:B}}, {{uuid}}, {{vu}}, {{iter}})"),
    ("/p/{{int:1.5:3}}", "unknown template {{int:1.5:3}} (supported: {{int:A:B}}, {{uuid}}, {{vu}}, {{iter}})"),
    ("/p/{{int:\u0661:5}}", "unknown template {{int:\u0661:5}} (supported: {{int:A:B}}, {{uuid}}, {{vu}}, {{iter}})"),
    ("/p/{{}}", "unknown template {{}} (supported: {{int:A:B}}, {{uuid}}, {{vu}}, {{iter}})"),
    ("/p/{{vu", "unterminated template in '/p/{{vu'"),
    ("/p/{{vu}}/{{", "unterminated template in '/p/{{vu}}/{{'"),
])
def test_bad_template_in_path_is_refused_naming_the_path(path, message):
    # (a CR or LF anywhere in a path is refused by the target model before templates are read)
    err = _refused(_target(requests=[{"path": "/ok"}, {"path": path}]))
    assert str(err) == f"targets.t.requests[1].path: {message}"


@pytest.mark.parametrize("body, field", [
    ("a={{nope}}", "targets.t.requests[0].body"),
    ({"user": "{{int:5:1}}"}, "targets.t.requests[0].body.user"),
    ({"items": [{"id": 1}, {"id": "{{iter"}]}, "targets.t.requests[0].body.items[1].id"),
    (["{{vu}}", "{{VU}}"], "targets.t.requests[0].body[1]"),
])
def test_bad_template_in_body_is_refused_naming_the_value(body, field):
    assert _refused(_target(requests=[{"path": "/", "method": "POST", "body": body}])).field == field


def test_bad_template_in_base_url_is_refused():
    err = _refused(_target(base_url="http://127.0.0.1:8090/{{tenant}}"))
    assert str(err) == ("targets.t.base_url: unknown template {{tenant}} (supported: {{int:A:B}}, {{uuid}}, {{vu}}, "
                        "{{iter}})")


@pytest.mark.parametrize("path", ["items", "", None, 1])
def test_bad_path(path):
    assert _refused(_target(requests=[{"path": path}])).field == "targets.t.requests[0].path"


@pytest.mark.parametrize("expect, normalised", [(200, [200]), ([200, 204], [200, 204]), (599, [599]), (100, [100]),
                                               (200.0, [200])])  # JSON has one number type
def test_expect_status_accepted(expect, normalised):
    target = validate_target(_target(requests=[{"path": "/", "expect_status": expect}]), "t", "targets.t")
    assert target["requests"][0]["expect_status"] == normalised


@pytest.mark.parametrize("expect", [99, 600, [], "200", True, None])
def test_expect_status_refused(expect):
    err = _refused(_target(requests=[{"path": "/", "expect_status": expect}]))
    assert str(err) == (f"targets.t.requests[0].expect_status: expected HTTP status codes (100-599): one or a list, "
                        f"got {expect!r}")


@pytest.mark.parametrize("expect, message", [([200, 600], "[1]: must be <= 599, got 600"),
                                             ([True], "[0]: expected an integer, got True")])
def test_expect_status_list_names_the_bad_item(expect, message):
    err = _refused(_target(requests=[{"path": "/", "expect_status": expect}]))
    assert str(err) == f"targets.t.requests[0].expect_status{message}"


def test_duplicate_request_names():
    err = _refused(_target(requests=[{"name": "a", "path": "/1"}, {"name": "a", "path": "/2"},
                                     {"path": "/x"}, {"path": "/x", "method": "get"}]))
    assert str(err) == "targets.t.requests: request names must be unique, repeated: ['GET /x', 'a']"


def test_unknown_keys():
    assert str(_refused(_target(timeout=5))) == (
        "targets.t.timeout: unknown key (known: name, base_url, description, headers, requests, script, max_vus, "
        "max_rps, production, gates, required_capacity, analysis, metrics_url, chaos)")
    assert str(_refused(_target(requests=[{"path": "/", "params": {}}]))) == (
        "targets.t.requests[0].params: unknown key (known: name, method, path, weight, expect_status, body)")


@pytest.mark.parametrize("name", ["has space", "", "slash/name", None])
def test_bad_target_name(name):
    assert _refused(_target(), name=name).field == "targets.t.name"


@pytest.mark.parametrize("max_vus", [0, -5, True, "10", 1.5])
def test_bad_max_vus(max_vus):
    assert str(_refused(_target(max_vus=max_vus))) == \
        f"targets.t.max_vus: expected a positive integer (at most 20000), got {max_vus!r}"


def test_header_forms():
    target = validate_target(_target(headers={
        "X-Plain": "value",
        "Authorization": {"env": "API_TOKEN", "prefix": "Bearer "},
        "X-Api-Key": {"connection": "my_api"},
    }), "t", "targets.t")
    assert target["headers"] == {"X-Plain": "value", "Authorization": {"env": "API_TOKEN", "prefix": "Bearer "},
                                 "X-Api-Key": {"connection": "my_api"}}


@pytest.mark.parametrize("value", [
    {"env": "A", "connection": "b"},
    {"prefix": "Bearer "},
    {"env": "A", "default": "x"},
    {},
    123,
    ["a"],
    None,
])
def test_bad_header_value(value):
    err = _refused(_target(headers={"Authorization": value}))
    assert err.field == "targets.t.headers.Authorization"
    assert str(err) == ("targets.t.headers.Authorization: expected a plain one-line string, or {env: VAR} / "
                        f"{{connection: CONN_ID}} with an optional prefix, got a {type(value).__name__} (not shown)")


def test_headers_must_be_a_mapping():
    assert _refused(_target(headers=["Authorization: x"])).field == "targets.t.headers"


# ---------------------------------------------------------------------------------------------- resolve_target


def test_resolve_configured_target_by_name():
    demo = resolve_target("demo")
    assert demo["name"] == "demo"
    assert demo["base_url"] == "http://127.0.0.1:8090"
    assert [r["name"] for r in demo["requests"]] == ["list_products", "get_product", "get_user", "checkout"]


def test_resolve_unknown_name_lists_known_names():
    with pytest.raises(InputError) as exc:
        resolve_target("prod")
    assert str(exc.value) == ("target: unknown target 'prod' (known: demo; or pass a path to a YAML file)")


def test_resolve_inline_mapping():
    assert resolve_target(_target(name="inline-x"))["name"] == "inline-x"
    assert resolve_target(_target())["name"] == "inline"


@pytest.mark.parametrize("spec", ["", "   ", None, 5])
def test_resolve_empty_spec(spec):
    with pytest.raises(InputError) as exc:
        resolve_target(spec)
    assert exc.value.field == "target"


def test_resolve_bare_mapping_file_named_after_the_file(tmp_path):
    path = tmp_path / "my-api.yaml"
    path.write_text("base_url: http://127.0.0.1:9000\nrequests:\n  - {path: /health}\n")
    target = resolve_target(str(path))
    assert (target["name"], target["base_url"]) == ("my-api", "http://127.0.0.1:9000")
    assert target["requests"][0]["name"] == "GET /health"


def test_resolve_bare_mapping_file_with_its_own_name(tmp_path):
    path = tmp_path / "t.yml"
    path.write_text("name: named\nbase_url: http://127.0.0.1:9000\nrequests: [{path: /}]\n")
    assert resolve_target(str(path))["name"] == "named"


def test_resolve_targets_file_with_one_entry(tmp_path):
    path = tmp_path / "targets.yaml"
    path.write_text("targets:\n  staging:\n    base_url: http://127.0.0.1:9001\n    requests: [{path: /}]\n")
    target = resolve_target(str(path))
    assert (target["name"], target["base_url"]) == ("staging", "http://127.0.0.1:9001")


def test_resolve_targets_file_errors_name_the_entry(tmp_path):
    path = tmp_path / "targets.yaml"
    path.write_text("targets:\n  staging:\n    base_url: ftp://127.0.0.1\n    requests: [{path: /}]\n")
    with pytest.raises(InputError) as exc:
        resolve_target(str(path))
    assert exc.value.field == f"{path}:targets.staging.base_url"


def test_resolve_targets_file_with_two_entries_is_refused(tmp_path):
    path = tmp_path / "targets.yaml"
    path.write_text("targets:\n  a: {base_url: 'http://127.0.0.1', requests: [{path: /}]}\n"
                    "  b: {base_url: 'http://127.0.0.1', requests: [{path: /}]}\n")
    with pytest.raises(InputError) as exc:
        resolve_target(str(path))
    assert str(exc.value) == f"target: {path} must define exactly one target under 'targets:'"


def test_resolve_missing_or_bad_files(tmp_path):
    with pytest.raises(InputError, match=r"^target: target file '.*nope\.yaml' not found$"):
        resolve_target(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("base_url: [unclosed\n")
    with pytest.raises(InputError, match=r"^target: .*bad\.yaml is not valid YAML"):
        resolve_target(str(bad))
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(InputError, match=r"must be a mapping with base_url and requests or script$"):
        resolve_target(str(scalar))


# ---------------------------------------------------------------------------------------------- header values


def test_resolve_header_values_from_env(monkeypatch):
    monkeypatch.setenv("PERFPIPE_UNIT_TOKEN", "tok-123456")
    assert resolve_header_values({
        "X-Plain": "v",
        "Authorization": {"env": "PERFPIPE_UNIT_TOKEN", "prefix": "Bearer "},
        "X-Raw": {"env": "PERFPIPE_UNIT_TOKEN"},
    }) == {"X-Plain": "v", "Authorization": "Bearer tok-123456", "X-Raw": "tok-123456"}


def test_resolve_header_values_missing_env_var(monkeypatch):
    monkeypatch.delenv("PERFPIPE_UNIT_MISSING", raising=False)
    with pytest.raises(InputError) as exc:
        resolve_header_values({"Authorization": {"env": "PERFPIPE_UNIT_MISSING"}})
    assert str(exc.value) == "headers.Authorization: environment variable 'PERFPIPE_UNIT_MISSING' is not set"


def test_resolve_header_values_empty():
    assert resolve_header_values({}) == {}


# ---------------------------------------------------------------------------------------------- allowlist

DEFAULT_ALLOWLIST = ["127.0.0.0/8", "::1/128", "localhost"]


@pytest.mark.parametrize("url, addresses", [
    ("http://127.0.0.1:8090", ["127.0.0.1"]),
    ("http://127.5.5.5/x", ["127.5.5.5"]),
    ("https://[::1]:8443", ["::1"]),
])
def test_loopback_addresses_allowed(url, addresses):
    assert check_target_allowed(url, DEFAULT_ALLOWLIST) == addresses


@pytest.mark.parametrize("url", ["http://localhost:8090", "http://LocalHost.:8090"])
def test_localhost_allowed_by_name(url):
    addresses = check_target_allowed(url, DEFAULT_ALLOWLIST)
    assert addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses)


@pytest.mark.parametrize("url, shown", [
    ("http://10.0.0.1", "10.0.0.1"),
    ("http://192.168.1.1:8080", "192.168.1.1"),
    ("https://8.8.8.8", "8.8.8.8"),
    ("http://[::ffff:10.0.0.1]", "::ffff:a00:1"),
    ("http://[2001:db8::1]", "2001:db8::1"),
])
def test_outside_addresses_refused(url, shown):
    with pytest.raises(TargetNotAllowedError) as exc:
        check_target_allowed(url, DEFAULT_ALLOWLIST)
    assert exc.value.field == "target.base_url"
    host = urlsplit(url).hostname
    assert str(exc.value).startswith(f"target.base_url: host {host!r} ({shown}) is not in the allowlist "
                                     f"(127.0.0.0/8, ::1/128, localhost); no request was sent.")


def test_empty_allowlist_refuses_loopback():
    with pytest.raises(TargetNotAllowedError):
        check_target_allowed("http://127.0.0.1", [])


def _fake_resolver(monkeypatch, table):
    def getaddrinfo(host, *args, **kwargs):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0))
                for a in table[host]]
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_hostname_in_allowlist_is_allowed_whatever_it_resolves_to(monkeypatch):
    _fake_resolver(monkeypatch, {"staging.internal": ["10.1.2.3"]})
    assert check_target_allowed("http://Staging.Internal.:80", ["127.0.0.0/8", "staging.internal."]) == \
        ["10.1.2.3"]


def test_hostname_resolving_inside_allowed_networks_is_allowed(monkeypatch):
    _fake_resolver(monkeypatch, {"svc.test": ["127.0.0.7", "::1"]})
    assert check_target_allowed("http://svc.test", DEFAULT_ALLOWLIST) == ["127.0.0.7", "::1"]


def test_hostname_with_any_outside_address_is_refused(monkeypatch):
    _fake_resolver(monkeypatch, {"svc.test": ["127.0.0.7", "10.0.0.9"]})
    with pytest.raises(TargetNotAllowedError, match=r"host 'svc\.test' \(10\.0\.0\.9\) is not in the allowlist"):
        check_target_allowed("http://svc.test", DEFAULT_ALLOWLIST)


def test_unresolvable_hostname_is_an_input_error(monkeypatch):
    _fake_resolver(monkeypatch, {})
    with pytest.raises(InputError) as exc:
        check_target_allowed("http://nowhere.test", DEFAULT_ALLOWLIST)
    assert not isinstance(exc.value, TargetNotAllowedError)
    assert str(exc.value).startswith("target.base_url: cannot resolve host 'nowhere.test'")


# ---------------------------------------------------------------------------------------------- k6 --blacklist-ip


def _allowed_networks(allowlist, addresses):
    nets = []
    for entry in allowlist + addresses:
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            pass
    return nets


@pytest.mark.parametrize("allowlist, addresses", [
    (DEFAULT_ALLOWLIST, ["127.0.0.1"]),
    (DEFAULT_ALLOWLIST, ["::1", "127.0.0.1"]),
    (["127.0.0.0/8", "::1/128", "staging.internal"], ["10.1.2.3"]),
    (["127.0.0.1/32", "10.0.0.0/8", "10.1.0.0/16", "fd00::/8"], []),
    ([], []),
])
def test_blocked_plus_allowed_networks_exactly_cover_both_address_spaces(allowlist, addresses):
    blocked = [ipaddress.ip_network(n) for n in k6_blocked_networks(allowlist, addresses)]
    assert all(str(n) == n.with_prefixlen for n in blocked)  # canonical CIDRs k6 can parse
    allowed = list(ipaddress.collapse_addresses([n for n in _allowed_networks(allowlist, addresses)
                                                 if n.version == 4]))
    allowed += list(ipaddress.collapse_addresses([n for n in _allowed_networks(allowlist, addresses)
                                                  if n.version == 6]))
    for version, space in ((4, 2 ** 32), (6, 2 ** 128)):
        nets = sorted((n for n in blocked + allowed if n.version == version), key=lambda n: n.network_address)
        assert sum(n.num_addresses for n in nets) == space  # nothing missing ...
        for before, after in zip(nets, nets[1:]):  # ... and nothing counted twice
            assert before.broadcast_address < after.network_address, (before, after)
    for net in blocked:
        assert not any(net.overlaps(a) for a in allowed if a.version == net.version)


def test_default_blocklist_spares_loopback_and_blocks_the_rest():
    blocked = [ipaddress.ip_network(n) for n in k6_blocked_networks(DEFAULT_ALLOWLIST, ["127.0.0.1"])]
    for allowed in ("127.0.0.1", "127.255.255.254", "::1"):
        assert not any(ipaddress.ip_address(allowed) in n for n in blocked if n.version == (6 if ":" in allowed
                                                                                          else 4)), allowed
    for outside in ("10.0.0.1", "8.8.8.8", "2001:db8::1", "::ffff:127.0.0.1", "0.0.0.0", "::"):
        address = ipaddress.ip_address(outside)
        assert any(address in n for n in blocked if n.version == address.version), outside


def test_hostname_addresses_are_not_blocked():
    blocked = [ipaddress.ip_network(n) for n in k6_blocked_networks(["127.0.0.0/8", "staging.internal"],
                                                                    ["10.1.2.3"])]
    assert not any(ipaddress.ip_address("10.1.2.3") in n for n in blocked if n.version == 4)
    assert any(ipaddress.ip_address("10.1.2.4") in n for n in blocked if n.version == 4)


# ---------------------------------------------------------------------------------------------- the trust boundary
# Chaos components (commands perfpipe runs, pids it signals, containers, control URLs) come only from the
# deployment's config/targets.yaml: a run-time target (inline mapping or target file) carrying any is refused.

TOUCH = ["touch", "/tmp/perfpipe-must-not-exist"]
RUNTIME_CHAOS = [  # (id, chaos block, field after '<target>.chaos.')
    ("pid_command", {"components": {"cache": {"kind": "process", "pid_command": TOUCH}},
                     "scenarios": {"s": {"component": "cache", "action": "stop"}}}, "components.cache.pid_command"),
    ("start_command", {"components": {"cache": {"kind": "process", "start_command": TOUCH}}},
     "components.cache.start_command"),
    ("stop_command", {"components": {"cache": {"kind": "process", "stop_command": TOUCH}}},
     "components.cache.stop_command"),
    ("pid", {"components": {"cache": {"kind": "process", "pid": 1}}}, "components.cache.pid"),
    ("container", {"components": {"api": {"kind": "docker", "container": "perfpipe-demo-api"}}},
     "components.api.container"),
    ("control_url", {"components": {"link": {"kind": "proxy", "control_url": "http://127.0.0.1:8091"}}},
     "components.link.control_url"),
    ("nested in a mapping", {"components": {"cache": {"kind": "process", "extra": {"deep": {"pid_command": TOUCH}}}}},
     "components.cache.extra.deep.pid_command"),
    ("nested in a list", {"components": [{"name": "cache", "start_command": TOUCH}]}, "components[0].start_command"),
    ("outside components", {"scenarios": {"s": {"component": "cache", "action": "stop", "pid_command": TOUCH}}},
     "scenarios.s.pid_command"),
    ("components without a command", {"components": {"cache": {"kind": "process"}}}, "components"),
    ("empty components", {"components": {}}, "components"),
    ("scenarios only", {"scenarios": {"s": {"component": "cache", "action": "stop"}}, "default_scenario": "s"}, ""),
    ("not a mapping", "pid_command", ""),
]


def _assert_runtime_chaos_refused(exc, field):
    assert exc.field == field, str(exc)
    assert str(exc).startswith(f"{field}: a run-time target (the inline_target Param or a target file) may not "
                               "declare chaos components")
    assert "config/targets.yaml of the deployment" in str(exc) and "\n" not in str(exc)


@pytest.mark.parametrize("chaos, where", [c[1:] for c in RUNTIME_CHAOS], ids=[c[0] for c in RUNTIME_CHAOS])
def test_an_inline_target_with_chaos_is_refused_naming_the_field(chaos, where):
    with pytest.raises(InputError) as exc:
        resolve_target(_target(chaos=chaos))
    _assert_runtime_chaos_refused(exc.value, "target.chaos" + (f".{where}" if where else ""))


@pytest.mark.parametrize("chaos, where", [c[1:] for c in RUNTIME_CHAOS], ids=[c[0] for c in RUNTIME_CHAOS])
def test_a_target_file_with_chaos_is_refused_naming_the_field(tmp_path, chaos, where):
    import yaml

    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(_target(chaos=chaos)))
    wrapped = tmp_path / "wrapped.yaml"
    wrapped.write_text(yaml.safe_dump({"targets": {"demo": _target(chaos=chaos)}}))  # a configured name, still a file
    suffix = "chaos" + (f".{where}" if where else "")
    for path, field in ((bare, f"{bare}.{suffix}"), (wrapped, f"{wrapped}:targets.demo.{suffix}")):
        with pytest.raises(InputError) as exc:
            resolve_target(str(path))
        _assert_runtime_chaos_refused(exc.value, field)


def test_the_refusal_comes_before_the_documents_other_problems():
    with pytest.raises(InputError) as exc:
        resolve_target({"base_url": "ftp://nowhere", "chaos": RUNTIME_CHAOS[0][1]})
    assert exc.value.field == "target.chaos.components.cache.pid_command"


def test_a_run_time_target_without_chaos_or_with_chaos_null_is_accepted():
    assert "chaos" not in resolve_target(_target())
    assert "chaos" not in resolve_target(_target(chaos=None))


def test_validate_target_is_untrusted_unless_told_and_only_a_configured_target_keeps_its_chaos():
    chaos = {"components": {"cache": {"kind": "process", "pid_command": ["true"], "start_command": ["true"]}},
             "scenarios": {"s": {"component": "cache", "action": "stop"}}}
    with pytest.raises(InputError, match=r"^targets\.t\.chaos\.components\.cache\.pid_command: a run-time target"):
        validate_target(_target(chaos=chaos), "t", "targets.t")
    assert validate_target(_target(chaos=chaos), "t", "targets.t", trusted=True)["chaos"]["components"] == \
        chaos["components"]
    demo = resolve_target("demo")  # config/targets.yaml of the deployment: its components are kept
    assert demo["chaos"]["components"]["cache"]["kind"] == "process"
    assert demo["chaos"]["components"]["cache"]["pid_command"]
