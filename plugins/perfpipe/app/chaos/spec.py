"""A target's `chaos:` block: components that can be faulted and named fault scenarios, validated before any load.

    chaos:
      components:
        cache:         {kind: process, pid_command: [...], start_command: [...]}   # optional start_timeout_s
        api_container: {kind: docker, container: perfpipe-demo-api}
        database_link: {kind: proxy, control_url: "http://127.0.0.1:8091"}
      scenarios:
        cache_failure: {component: cache, action: stop}                            # process/docker: pause | stop
        network_fault: {component: database_link, action: latency, latency_ms: 300}  # proxy: latency | partition
      default_scenario: cache_failure

Every error is an InputError naming the field, e.g. `targets.demo.chaos.scenarios.db_failure.component`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from perfpipe.core.errors import InputError

ACTIONS = {"process": ("pause", "stop"), "docker": ("pause", "stop"), "proxy": ("latency", "partition")}
MAX_LATENCY_MS = 60_000
DEFAULT_START_TIMEOUT_S = 60
MAX_START_TIMEOUT_S = 600

_COMPONENT_KEYS = {
    "process": {"kind", "pid_command", "start_command", "start_timeout_s"},
    "docker": {"kind", "container"},
    "proxy": {"kind", "control_url"},
}
_SCENARIO_KEYS = {"component", "action", "latency_ms"}
_CHAOS_KEYS = {"components", "scenarios", "default_scenario"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Docker's own rule for container names.
_CONTAINER_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    kind: str
    pid_command: tuple[str, ...] = ()
    start_command: tuple[str, ...] = ()
    start_timeout_s: float = DEFAULT_START_TIMEOUT_S
    container: str = ""
    control_url: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind == "process":
            data.update(pid_command=list(self.pid_command), start_command=list(self.start_command),
                        start_timeout_s=self.start_timeout_s)
        elif self.kind == "docker":
            data["container"] = self.container
        else:
            data["control_url"] = self.control_url
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComponentSpec:
        return cls(name=data["name"], kind=data["kind"], pid_command=tuple(data.get("pid_command") or ()),
                   start_command=tuple(data.get("start_command") or ()),
                   start_timeout_s=float(data.get("start_timeout_s") or DEFAULT_START_TIMEOUT_S),
                   container=data.get("container") or "", control_url=data.get("control_url") or "")


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    component: str
    action: str
    latency_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "component": self.component, "action": self.action}
        if self.action == "latency":
            data["latency_ms"] = self.latency_ms
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioSpec:
        return cls(name=data["name"], component=data["component"], action=data["action"],
                   latency_ms=int(data.get("latency_ms") or 0))


@dataclass(frozen=True)
class ChaosSpec:
    target: str
    components: dict[str, ComponentSpec]
    scenarios: dict[str, ScenarioSpec]
    default_scenario: str | None = None

    @property
    def field(self) -> str:
        return f"targets.{self.target}.chaos"

    def scenario(self, name: str | None = None) -> ScenarioSpec:
        """The named scenario, or the default one when name is None/empty."""
        if not name:
            if not self.default_scenario:
                raise InputError(f"{self.field}.default_scenario",
                                 f"no scenario named and no default_scenario set (scenarios: {self._known()})")
            name = self.default_scenario
        if name not in self.scenarios:
            raise InputError("scenario", f"unknown chaos scenario {name!r} for target {self.target!r} "
                                         f"(known: {self._known()})")
        return self.scenarios[name]

    def component_of(self, scenario: ScenarioSpec) -> ComponentSpec:
        return self.components[scenario.component]

    def _known(self) -> str:
        return ", ".join(sorted(self.scenarios)) or "none"

    def to_dict(self) -> dict[str, Any]:
        return {"components": {name: {k: v for k, v in c.to_dict().items() if k != "name"}
                               for name, c in self.components.items()},
                "scenarios": {name: {k: v for k, v in s.to_dict().items() if k != "name"}
                              for name, s in self.scenarios.items()},
                **({"default_scenario": self.default_scenario} if self.default_scenario else {})}


def parse_chaos(target_name: str, chaos: Any) -> ChaosSpec:
    """Validate a target's `chaos:` mapping; raises InputError(field, message) naming the offending field."""
    field = f"targets.{target_name}.chaos"
    if not isinstance(chaos, dict):
        raise InputError(field, "expected a mapping with components, scenarios and default_scenario")
    _no_unknown_keys(chaos, _CHAOS_KEYS, field)
    raw_components = chaos.get("components")
    if not isinstance(raw_components, dict) or not raw_components:
        raise InputError(f"{field}.components", "expected a non-empty mapping of component name -> "
                                                "{kind: process|docker|proxy, ...}")
    components = {name: _component(name, body, f"{field}.components.{name}") for name, body in raw_components.items()}
    raw_scenarios = chaos.get("scenarios")
    if not isinstance(raw_scenarios, dict) or not raw_scenarios:
        raise InputError(f"{field}.scenarios", "expected a non-empty mapping of scenario name -> "
                                               "{component: NAME, action: ...}")
    scenarios = {name: _scenario(name, body, components, f"{field}.scenarios.{name}")
                 for name, body in raw_scenarios.items()}
    default = chaos.get("default_scenario")
    if default is not None:
        if not isinstance(default, str) or default not in scenarios:
            raise InputError(f"{field}.default_scenario",
                             f"{default!r} is not a scenario (known: {', '.join(sorted(scenarios))})")
    return ChaosSpec(target=target_name, components=components, scenarios=scenarios, default_scenario=default)


def _no_unknown_keys(raw: dict, known: set[str], field: str) -> None:
    unknown = set(raw) - known
    if unknown:
        raise InputError(field, f"unknown keys {sorted(map(str, unknown))} (known: {', '.join(sorted(known))})")


def _check_name(name: Any, field: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(field, f"use letters, digits, '-', '_' or '.', got {name!r}")


def _component(name: Any, raw: Any, field: str) -> ComponentSpec:
    _check_name(name, field)
    if not isinstance(raw, dict):
        raise InputError(field, "expected a mapping with kind: process|docker|proxy")
    kind = raw.get("kind")
    if kind not in ACTIONS:
        raise InputError(f"{field}.kind", f"expected one of {', '.join(ACTIONS)}, got {kind!r}")
    _no_unknown_keys(raw, _COMPONENT_KEYS[kind], field)
    if kind == "process":
        timeout = raw.get("start_timeout_s", DEFAULT_START_TIMEOUT_S)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_START_TIMEOUT_S:
            raise InputError(f"{field}.start_timeout_s", f"expected seconds in (0, {MAX_START_TIMEOUT_S}], got {timeout!r}")
        return ComponentSpec(name=name, kind=kind, pid_command=_command(raw.get("pid_command"), f"{field}.pid_command"),
                             start_command=_command(raw.get("start_command"), f"{field}.start_command"),
                             start_timeout_s=float(timeout))
    if kind == "docker":
        container = raw.get("container")
        if not isinstance(container, str) or not _CONTAINER_NAME.match(container):
            raise InputError(f"{field}.container", f"expected a container name or id, got {container!r}")
        return ComponentSpec(name=name, kind=kind, container=container.lstrip("/"))
    return ComponentSpec(name=name, kind=kind, control_url=_loopback_url(raw.get("control_url"), f"{field}.control_url"))


def _scenario(name: Any, raw: Any, components: dict[str, ComponentSpec], field: str) -> ScenarioSpec:
    _check_name(name, field)
    if not isinstance(raw, dict):
        raise InputError(field, "expected a mapping with component and action")
    _no_unknown_keys(raw, _SCENARIO_KEYS, field)
    component = raw.get("component")
    if not isinstance(component, str) or component not in components:
        raise InputError(f"{field}.component", f"{component!r} is not a component "
                                               f"(known: {', '.join(sorted(components))})")
    kind = components[component].kind
    action = raw.get("action")
    if action not in ACTIONS[kind]:
        raise InputError(f"{field}.action", f"a {kind} component supports {' | '.join(ACTIONS[kind])}, "
                                            f"got {action!r}")
    latency = raw.get("latency_ms")
    if action == "latency":
        if isinstance(latency, bool) or not isinstance(latency, int) or not 0 < latency <= MAX_LATENCY_MS:
            raise InputError(f"{field}.latency_ms", f"expected an integer in 1..{MAX_LATENCY_MS}, got {latency!r}")
    elif latency is not None:
        raise InputError(f"{field}.latency_ms", f"only for action latency, not {action}")
    return ScenarioSpec(name=name, component=component, action=action, latency_ms=latency or 0)


def _command(raw: Any, field: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(arg, str) for arg in raw) or not raw[0]:
        raise InputError(field, f"expected a non-empty list of strings (argv, no shell), got {raw!r}")
    return tuple(raw)


def _loopback_url(raw: Any, field: str) -> str:
    """A chaos control call must never leave the machine: literal loopback addresses or 'localhost' only."""
    if not isinstance(raw, str) or not raw:
        raise InputError(field, "missing; e.g. http://127.0.0.1:8091")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(field, f"must be an http(s) URL with a host, got {raw!r}")
    if parts.username or parts.password:
        raise InputError(field, "must not contain credentials")
    if parts.query or parts.fragment:
        raise InputError(field, f"must not have a query or fragment, got {raw!r}")
    try:
        parts.port
    except ValueError:
        raise InputError(field, f"bad port in {raw!r}") from None
    if not is_loopback_host(parts.hostname):
        raise InputError(field, f"host {parts.hostname!r} is not loopback (127.0.0.0/8, ::1, localhost): "
                                "chaos control calls never leave this machine")
    return raw.rstrip("/")


def is_loopback_host(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False
