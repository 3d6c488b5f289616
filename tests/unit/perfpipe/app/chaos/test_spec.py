"""parse_chaos: the brief's example parses; every bad spec is refused with an InputError naming its field."""

from __future__ import annotations

import copy

import pytest

from perfpipe.app.chaos import parse_chaos
from perfpipe.app.chaos.spec import ChaosSpec, ComponentSpec, ScenarioSpec
from perfpipe.core.errors import InputError

EXAMPLE = {
    "components": {
        "cache": {"kind": "process", "pid_command": ["bash", "scripts/demo.sh", "pid", "cache"],
                  "start_command": ["bash", "scripts/demo.sh", "start", "cache"]},
        "database": {"kind": "process", "pid_command": ["bash", "scripts/demo.sh", "pid", "database"],
                     "start_command": ["bash", "scripts/demo.sh", "start", "database"]},
        "database_link": {"kind": "proxy", "control_url": "http://127.0.0.1:8091"},
        "api_container": {"kind": "docker", "container": "perfpipe-demo-api"},
    },
    "scenarios": {
        "cache_failure": {"component": "cache", "action": "stop"},
        "db_failure": {"component": "database", "action": "stop"},
        "network_fault": {"component": "database_link", "action": "latency", "latency_ms": 300},
    },
    "default_scenario": "cache_failure",
}
F = "targets.demo.chaos"


def test_example_parses():
    spec = parse_chaos("demo", EXAMPLE)
    assert spec.default_scenario == "cache_failure"
    assert spec.scenario() == ScenarioSpec("cache_failure", "cache", "stop")
    assert spec.scenario("network_fault").latency_ms == 300
    assert spec.components["cache"].pid_command == ("bash", "scripts/demo.sh", "pid", "cache")
    assert spec.components["cache"].start_timeout_s == 60
    assert spec.components["api_container"] == ComponentSpec("api_container", "docker",
                                                              container="perfpipe-demo-api")
    assert spec.component_of(spec.scenario("network_fault")).control_url == "http://127.0.0.1:8091"


def test_round_trip_through_to_dict():
    spec = parse_chaos("demo", EXAMPLE)
    assert parse_chaos("demo", spec.to_dict()) == spec
    for component in spec.components.values():
        assert ComponentSpec.from_dict(component.to_dict()) == component
    for scenario in spec.scenarios.values():
        assert ScenarioSpec.from_dict(scenario.to_dict()) == scenario


def test_loopback_control_urls_accepted():
    for url in ("http://127.0.0.1:8091", "http://127.10.0.3:1/", "http://[::1]:8091", "http://localhost:9",
                "https://LOCALHOST:8091/prefix"):
        chaos = {"components": {"link": {"kind": "proxy", "control_url": url}},
                 "scenarios": {"cut": {"component": "link", "action": "partition"}}}
        assert parse_chaos("demo", chaos).components["link"].control_url == url.rstrip("/")


def test_scenario_lookup_errors():
    spec = parse_chaos("demo", EXAMPLE)
    with pytest.raises(InputError) as err:
        spec.scenario("nope")
    assert err.value.field == "scenario" and "cache_failure" in str(err.value)
    no_default = ChaosSpec("demo", spec.components, spec.scenarios, None)
    with pytest.raises(InputError) as err:
        no_default.scenario()
    assert err.value.field == f"{F}.default_scenario"


def _with(path: str, value, delete: bool = False) -> dict:
    """EXAMPLE with one dotted path set (or deleted)."""
    chaos = copy.deepcopy(EXAMPLE)
    *parents, last = path.split(".")
    node = chaos
    for key in parents:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return chaos


BAD_SPECS = [
    # (description, chaos mapping, field named, message fragment)
    ("not a mapping", ["cache"], F, "expected a mapping"),
    ("unknown top-level key", _with("scenario", {}), F, "unknown keys ['scenario']"),
    ("no components", _with("components", {}), f"{F}.components", "non-empty mapping"),
    ("unknown kind", _with("components.cache.kind", "vm"), f"{F}.components.cache.kind", "process, docker, proxy"),
    ("missing kind", _with("components.cache.kind", None, delete=True), f"{F}.components.cache.kind", "None"),
    ("pid_command a string", _with("components.cache.pid_command", "bash scripts/demo.sh pid cache"),
     f"{F}.components.cache.pid_command", "non-empty list of strings"),
    ("start_command empty", _with("components.database.start_command", []),
     f"{F}.components.database.start_command", "non-empty list of strings"),
    ("start_command with a number", _with("components.cache.start_command", ["bash", 3]),
     f"{F}.components.cache.start_command", "non-empty list of strings"),
    ("pid_command missing", _with("components.cache.pid_command", None, delete=True),
     f"{F}.components.cache.pid_command", "non-empty list of strings"),
    ("docker key on a process", _with("components.cache.container", "x"), f"{F}.components.cache",
     "unknown keys ['container']"),
    ("bad start_timeout_s", _with("components.cache.start_timeout_s", 0),
     f"{F}.components.cache.start_timeout_s", "seconds"),
    ("bad container name", _with("components.api_container.container", "bad name!"),
     f"{F}.components.api_container.container", "container name"),
    ("public control_url", _with("components.database_link.control_url", "http://10.0.0.5:8091"),
     f"{F}.components.database_link.control_url", "not loopback"),
    ("DNS-name control_url", _with("components.database_link.control_url", "http://proxy.internal:8091"),
     f"{F}.components.database_link.control_url", "not loopback"),
    ("control_url not http", _with("components.database_link.control_url", "ftp://127.0.0.1/x"),
     f"{F}.components.database_link.control_url", "http(s) URL"),
    ("control_url credentials", _with("components.database_link.control_url", "http://u:p@127.0.0.1:8091"),
     f"{F}.components.database_link.control_url", "credentials"),
    ("no scenarios", _with("scenarios", None), f"{F}.scenarios", "non-empty mapping"),
    ("scenario component unknown", _with("scenarios.db_failure.component", "db"),
     f"{F}.scenarios.db_failure.component", "'db' is not a component"),
    ("proxy action on a process", _with("scenarios.cache_failure.action", "latency"),
     f"{F}.scenarios.cache_failure.action", "pause | stop"),
    ("process action on a proxy", _with("scenarios.network_fault.action", "stop"),
     f"{F}.scenarios.network_fault.action", "latency | partition"),
    ("latency_ms zero", _with("scenarios.network_fault.latency_ms", 0),
     f"{F}.scenarios.network_fault.latency_ms", "1..60000"),
    ("latency_ms too big", _with("scenarios.network_fault.latency_ms", 60001),
     f"{F}.scenarios.network_fault.latency_ms", "1..60000"),
    ("latency_ms a string", _with("scenarios.network_fault.latency_ms", "300"),
     f"{F}.scenarios.network_fault.latency_ms", "1..60000"),
    ("latency_ms a bool", _with("scenarios.network_fault.latency_ms", True),
     f"{F}.scenarios.network_fault.latency_ms", "1..60000"),
    ("latency_ms missing", _with("scenarios.network_fault.latency_ms", None, delete=True),
     f"{F}.scenarios.network_fault.latency_ms", "1..60000"),
    ("latency_ms on stop", _with("scenarios.cache_failure.latency_ms", 5),
     f"{F}.scenarios.cache_failure.latency_ms", "only for action latency"),
    ("typo in scenario key", _with("scenarios.db_failure.acton", "stop"), f"{F}.scenarios.db_failure",
     "unknown keys ['acton']"),
    ("default_scenario unknown", _with("default_scenario", "cache_fail"), f"{F}.default_scenario",
     "'cache_fail' is not a scenario"),
    ("bad scenario name", _with("scenarios.bad name", {"component": "cache", "action": "stop"}),
     f"{F}.scenarios.bad name", "letters, digits"),
]


@pytest.mark.parametrize("description, chaos, field, fragment", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_names_its_field(description, chaos, field, fragment):
    with pytest.raises(InputError) as err:
        parse_chaos("demo", chaos)
    assert err.value.field == field, description
    assert fragment in str(err.value), str(err.value)
    assert str(err.value).startswith(f"{field}: ")


def test_validation_table_is_large_enough_and_distinct():
    assert len(BAD_SPECS) >= 12
    assert len({b[2] for b in BAD_SPECS}) >= 12  # not one field tested a dozen times
