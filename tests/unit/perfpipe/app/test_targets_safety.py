"""Target safety: allowlist entries with ports, the explicit production flag for non-loopback hosts, and the
per-target request-rate cap (k6 --rps at run time, arrival-rate scenarios checked before it)."""

from __future__ import annotations

import ipaddress
import re
import socket

import pytest

from perfpipe.app.config import build_plan, check_rate_cap, scenario_peak_rate
from perfpipe.core.errors import InputError, TargetNotAllowedError
from perfpipe.core.k6.command import build_invocation
from perfpipe.app.targets import (ANY_PORT, check_target_allowed, check_target_safe, k6_blocked_networks,
                              parse_allowlist, resolve_target, validate_target)

REQ = [{"name": "home", "path": "/"}]


def target(base_url="http://127.0.0.1:8090", **fields):
    return resolve_target({"name": "t", "base_url": base_url, "requests": REQ, **fields})


# ---------------------------------------------------------------------------------------------- allowlist entries

@pytest.mark.parametrize("entry, network, hostname, ports", [
    ("127.0.0.0/8", "127.0.0.0/8", "", ANY_PORT),
    ("::1/128", "::1/128", "", ANY_PORT),
    ("::1", "::1/128", "", ANY_PORT),
    ("localhost", None, "localhost", ANY_PORT),
    ("Staging.Internal.", None, "staging.internal", ANY_PORT),
    ("127.0.0.1:8090", "127.0.0.1/32", "", (8090, 8090)),
    ("[::1]:8090", "::1/128", "", (8090, 8090)),
    ("[::1/128]:8000-9000", "::1/128", "", (8000, 9000)),
    ("127.0.0.0/8:8000-9000", "127.0.0.0/8", "", (8000, 9000)),
    ("localhost:8090", None, "localhost", (8090, 8090)),
])
def test_allowlist_entries_parse_with_optional_ports(entry, network, hostname, ports):
    [parsed] = parse_allowlist([entry])
    assert (str(parsed.network) if parsed.network else None, parsed.hostname, parsed.ports) == \
        (network, hostname, ports)


@pytest.mark.parametrize("entry, message", [
    ("127.0.0.1:99999", "bad port range"),
    ("127.0.0.1:9000-8000", "bad port range"),
    ("127.0.0.1:http", "bad port"),
    ("[::1:8090", "expected [address]:port"),
    ("[::1]8090", "expected [address]:port"),
    ("bad host!", "neither an address"),
])
def test_bad_allowlist_entries_are_refused_naming_the_field(entry, message):
    with pytest.raises(InputError, match=re.escape(message)) as exc:
        parse_allowlist([entry])
    assert exc.value.field == "allowlist" and entry in str(exc.value)


@pytest.mark.parametrize("url, allowlist", [
    ("http://127.0.0.1:8090", ["127.0.0.1:8090"]),
    ("http://127.0.0.1:8500/x", ["127.0.0.0/8:8000-9000"]),
    ("http://[::1]:8090", ["[::1]:8090"]),
    ("http://localhost:8090", ["localhost:8090"]),
    ("http://127.0.0.1", ["127.0.0.1:80"]),      # no port in the URL: 80
    ("https://127.0.0.1", ["127.0.0.1:443"]),    # https: 443
    ("http://127.0.0.1:1", ["127.0.0.0/8"]),      # plain network: any port
])
def test_allowed_host_and_port(url, allowlist):
    assert check_target_allowed(url, allowlist)


@pytest.mark.parametrize("url, allowlist", [
    ("http://127.0.0.1:8091", ["127.0.0.1:8090"]),
    ("http://127.0.0.1:9001", ["127.0.0.0/8:8000-9000"]),
    ("http://[::1]:8091", ["[::1]:8090", "127.0.0.0/8"]),
    ("http://localhost:8091", ["localhost:8090"]),
    ("http://127.0.0.1", ["127.0.0.1:8080"]),
])
def test_port_outside_the_entry_is_refused_naming_the_port(url, allowlist):
    with pytest.raises(TargetNotAllowedError, match=r"port \d+ of host .* is not in the allowlist") as exc:
        check_target_allowed(url, allowlist)
    assert exc.value.field == "target.base_url" and "no request was sent" in str(exc.value)


def test_blacklist_ignores_ports_but_keeps_the_networks():
    """k6 --blacklist-ip works on addresses only: a port-scoped entry still opens its address to k6, and the
    port itself is enforced on the target's URL before the run."""
    blocked = [ipaddress.ip_network(n) for n in k6_blocked_networks(["127.0.0.1:8090"], ["127.0.0.1"])]
    assert not any(ipaddress.ip_address("127.0.0.1") in n for n in blocked)
    assert any(ipaddress.ip_address("127.0.0.2") in n for n in blocked)


# ---------------------------------------------------------------------------------------------- production flag

def _fake_resolver(monkeypatch, addresses):
    def fake(host, *args, **kwargs):
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0))
                for a in addresses]
    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_loopback_targets_need_no_production_flag():
    for url in ("http://127.0.0.1:8090", "http://[::1]:8090", "http://localhost:8090", "http://127.0.0.9:1"):
        assert check_target_safe(target(url), ["127.0.0.0/8", "::1/128", "localhost"])


def test_allowlisted_non_loopback_address_needs_production_true():
    with pytest.raises(TargetNotAllowedError) as exc:
        check_target_safe(target("http://192.0.2.10:8080"), ["192.0.2.0/24"])
    assert exc.value.field == "target.production"
    assert "192.0.2.10" in str(exc.value) and "production: true" in str(exc.value)
    assert check_target_safe(target("http://192.0.2.10:8080", production=True), ["192.0.2.0/24"]) == ["192.0.2.10"]


def test_production_false_is_the_same_as_unset():
    with pytest.raises(TargetNotAllowedError, match="production: true"):
        check_target_safe(target("http://192.0.2.10", production=False), ["192.0.2.0/24"])


def test_hostname_allowlisted_by_name_resolving_outside_loopback_needs_production(monkeypatch):
    _fake_resolver(monkeypatch, ["10.1.2.3"])
    with pytest.raises(TargetNotAllowedError) as exc:
        check_target_safe(target("http://staging.internal:8080"), ["staging.internal"])
    assert exc.value.field == "target.production"
    assert check_target_safe(target("http://staging.internal:8080", production=True), ["staging.internal"])


def test_hostname_with_one_non_loopback_address_needs_production(monkeypatch):
    _fake_resolver(monkeypatch, ["127.0.0.1", "10.1.2.3"])
    with pytest.raises(TargetNotAllowedError, match="production"):
        check_target_safe(target("http://svc.test:8080"), ["svc.test"])


def test_production_flag_never_bypasses_the_allowlist():
    with pytest.raises(TargetNotAllowedError) as exc:
        check_target_safe(target("http://192.0.2.10", production=True), ["127.0.0.0/8"])
    assert exc.value.field == "target.base_url"


@pytest.mark.parametrize("value", ["yes", 1, "true", None.__class__])
def test_production_must_be_a_boolean(value):
    with pytest.raises(InputError) as exc:
        target(production=value)
    assert exc.value.field == "target.production"


def test_shipped_config_is_loopback_only():
    from perfpipe.app.config import settings
    from perfpipe.app.targets import configured_targets

    entries = parse_allowlist(settings()["allowlist"])
    assert all(e.hostname == "localhost" or e.network.subnet_of(ipaddress.ip_network("127.0.0.0/8"))
               if e.network is None or e.network.version == 4 else e.network == ipaddress.ip_network("::1/128")
               for e in entries)
    for name, raw in configured_targets().items():
        assert not raw.get("production"), f"shipped target {name} must not be a production target"


# ---------------------------------------------------------------------------------------------- max_rps

@pytest.mark.parametrize("value", [0, -5, 2.5, "100", True])
def test_bad_max_rps(value):
    with pytest.raises(InputError) as exc:
        target(max_rps=value)
    assert exc.value.field == "target.max_rps"


def test_max_rps_becomes_k6_rps():
    plan = build_plan("smoke", target(max_rps=50), "quick")
    argv = build_invocation(plan, testid="x", binary="k6", script="s.js", report_path="/r", influx=None,
                            headers={}, blocked_networks=[]).argv
    assert argv[argv.index("--rps") + 1] == "50"
    unlimited = build_invocation(build_plan("smoke", target(), "quick"), testid="x", binary="k6", script="s.js",
                                 report_path="/r", influx=None, headers={}, blocked_networks=[]).argv
    assert "--rps" not in unlimited


@pytest.mark.parametrize("scenario, peak", [
    ({"executor": "constant-arrival-rate", "rate": 50, "timeUnit": "1s"}, 50),
    ({"executor": "constant-arrival-rate", "rate": 600, "timeUnit": "1m0s"}, 10),
    ({"executor": "constant-arrival-rate", "rate": 30}, 30),
    ({"executor": "ramping-arrival-rate", "startRate": 5, "timeUnit": "1s",
      "stages": [{"target": 80, "duration": "5s"}, {"target": 10, "duration": "5s"}]}, 80),
    ({"executor": "ramping-arrival-rate", "startRate": 200, "timeUnit": "2s", "stages": []}, 100),
    ({"executor": "constant-vus", "vus": 10}, None),
])
def test_scenario_peak_rate(scenario, peak):
    assert scenario_peak_rate(scenario, "s") == peak


def test_arrival_rate_above_max_rps_is_refused_naming_the_scenario():
    scenarios = {"browse": {"executor": "constant-arrival-rate", "rate": 40, "timeUnit": "1s"},
                 "buy": {"executor": "ramping-arrival-rate", "startRate": 1, "stages": [{"target": 120}]}}
    with pytest.raises(InputError) as exc:
        check_rate_cap({"name": "t", "max_rps": 100}, scenarios, "script")
    assert exc.value.field == "script.scenarios.buy.rate" and "max_rps of 100" in str(exc.value)
    check_rate_cap({"name": "t", "max_rps": 120}, scenarios, "script")  # at the cap: allowed
    check_rate_cap({"name": "t"}, scenarios, "script")  # no cap: k6 gets no --rps, nothing to check


def test_bad_rate_value_names_the_field():
    with pytest.raises(InputError) as exc:
        check_rate_cap({"name": "t", "max_rps": 10}, {"a": {"executor": "constant-arrival-rate", "rate": "lots"}},
                       "script")
    assert exc.value.field == "script.scenarios.a.rate"


# ---------------------------------------------------------------------------------------------- egress (issue 13)

def test_a_custom_script_is_refused_where_the_allowlist_limits_ports(tmp_path):
    script = tmp_path / "mine.js"
    script.write_text("import http from 'k6/http';\nexport default function () { http.get(__ENV.BASE_URL); }\n")
    scripted = resolve_target({"name": "t", "base_url": "http://127.0.0.1:8090", "script": str(script)})
    with pytest.raises(TargetNotAllowedError) as exc:
        check_target_safe(scripted, ["127.0.0.1:8090"])  # k6 could confine it to the address, not the port
    assert exc.value.field == "target.script"
    assert check_target_safe(scripted, ["127.0.0.0/8"]) == ["127.0.0.1"]
    assert check_target_safe(target(), ["127.0.0.1:8090"]) == ["127.0.0.1"]  # the bundled scripts run there


@pytest.mark.parametrize("line", ["import { browser } from 'k6/browser';",
                                  'import { chromium } from "k6/experimental/browser";',
                                  "const b = require(`k6/browser`);"])
def test_a_script_using_the_browser_module_is_refused(tmp_path, line):
    script = tmp_path / "ui.js"
    script.write_text(line + "\nexport default function () {}\n")
    with pytest.raises(InputError) as exc:
        resolve_target({"name": "t", "base_url": "http://127.0.0.1:8090", "script": str(script)})
    assert exc.value.field == "target.script" and "browser module" in str(exc.value)


def test_a_trailing_dot_host_is_refused_before_k6_could_resolve_it():
    with pytest.raises(TargetNotAllowedError) as exc:
        check_target_safe(target("http://localhost.:8090"), ["127.0.0.0/8", "localhost"])
    assert exc.value.field == "target.base_url" and "trailing '.'" in str(exc.value)


def test_a_chaos_control_url_outside_the_allowlist_is_refused_before_any_load():
    chaos = {"components": {"link": {"kind": "proxy", "control_url": "http://127.0.0.1:8091"}},
             "scenarios": {"slow": {"component": "link", "action": "latency", "latency_ms": 100}}}
    configured = validate_target(
        {"base_url": "http://127.0.0.1:8090", "requests": REQ, "chaos": chaos}, "t", "targets.t", trusted=True)
    with pytest.raises(TargetNotAllowedError) as exc:
        check_target_safe(configured, ["127.0.0.1:8090"])
    assert exc.value.field == "targets.t.chaos.components.link.control_url"
    assert check_target_safe(configured, ["127.0.0.1:8090-8091"]) == ["127.0.0.1"]


# --- limits follow the host, not the name --------------------------------------------------------------------

@pytest.fixture
def capped_config(tmp_path, monkeypatch):
    """A config whose one target, 'capped', allows 5 VUs and 20 req/s at 127.0.0.1:9001."""
    import shutil
    from pathlib import Path

    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[4] / "config", config)
    (config / "targets.yaml").write_text(
        "targets:\n  capped: {base_url: 'http://127.0.0.1:9001', max_vus: 5, max_rps: 20, requests: [{path: /}]}\n")
    monkeypatch.setenv("PERFPIPE_CONFIG_DIR", str(config))
    return config


def test_a_runtime_target_at_a_configured_host_port_gets_its_caps(capped_config, tmp_path):
    """The finding: a file copying a capped target's URL ran 50 VUs against a cap of 5."""
    from perfpipe.app.targets import resolve_target

    target_file = tmp_path / "copy.yaml"
    target_file.write_text("base_url: http://127.0.0.1:9001/\nmax_vus: 50\nrequests: [{path: /}]\n")
    target = resolve_target(str(target_file))
    assert (target["max_vus"], target["max_rps"]) == (5, 20)
    with pytest.raises(InputError, match=r"overrides\.vus"):
        build_plan("load", target, "quick", {"vus": 50})
    tighter = resolve_target({"name": "own", "base_url": "http://127.0.0.1:9001", "max_vus": 3,
                              "requests": [{"path": "/"}]})
    assert (tighter["max_vus"], tighter["max_rps"]) == (3, 20)  # the tighter of both
    elsewhere = resolve_target({"name": "own", "base_url": "http://127.0.0.1:9002", "requests": [{"path": "/"}]})
    assert "max_vus" not in elsewhere and "max_rps" not in elsewhere


def test_a_named_host_matches_by_its_resolved_addresses(capped_config):
    from perfpipe.app.targets import resolve_target, same_host_targets

    assert same_host_targets("http://localhost:9001") == ["capped"]  # localhost resolves to 127.0.0.1 (and ::1)
    assert same_host_targets("http://127.0.0.2:9001") == []
    assert resolve_target({"name": "lh", "base_url": "http://localhost:9001", "requests": [{"path": "/"}]})[
        "max_vus"] == 5


def test_a_runtime_target_may_not_take_a_configured_targets_name(capped_config, tmp_path):
    from perfpipe.app.targets import resolve_target

    with pytest.raises(InputError, match=r"^target\.name: 'capped' is the name of a configured target"):
        resolve_target({"name": "capped", "base_url": "http://127.0.0.1:9001", "requests": [{"path": "/"}]})
    named_by_file = tmp_path / "capped.yaml"  # a file's name is its target's name when it has no `name:`
    named_by_file.write_text("base_url: http://127.0.0.1:9009\nrequests: [{path: /}]\n")
    with pytest.raises(InputError, match=r"capped\.yaml\.name: .*give this one another name"):
        resolve_target(str(named_by_file))
