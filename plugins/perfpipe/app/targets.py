"""Targets (what may be loaded) and the host allowlist that keeps load away from everything else.

A target is a name in config/targets.yaml, a path to a YAML file of the same shape, or an inline mapping (Params).
Header values that are secrets are references ({env: VAR} or {connection: CONN_ID}) resolved only at run time.

The trust boundary: a configured target (config/targets.yaml of the deployment) is trusted; a run-time target (the
`inline_target` Param, a target file named by the `target` Param or `perfpipe run --target FILE.yaml`) is not.
Only a trusted target may carry a `chaos:` block, whose components name commands perfpipe runs, the processes it
signals, containers and control URLs: a run-time target with one is refused before any load. Which is which is
the `trusted` argument of validate_target, set only by resolve_target for a name found in configured_targets().
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


from perfpipe import TEST_TYPES
from perfpipe.app.chaos.spec import parse_chaos
from perfpipe.app.config import read_config_yaml, read_yaml_file, validate_analysis, validate_gates
from perfpipe.core.errors import InputError, TargetNotAllowedError
from perfpipe.core.k6.command import networks_outside
from perfpipe.core.model.base import NAME_PATTERN
from perfpipe.core.model.target import HEADER_VALUE_PATTERN, Request, validate_target_document
from perfpipe.core.paths import PROJECT_ROOT, scripts_dir

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Templates in base_url + path and in the string values of a body (docs/k6-script-contract.md). The same patterns
# as k6-scripts/lib/compile.js, which compiles them without checking: JavaScript's `.` stops at any line
# terminator, its \d is ASCII only and its \s and trim() know these white-space characters.
_JS_SPACE = ("\t\n\v\f\r \u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200b)))
             + "\u2028\u2029\u202f\u205f\u3000\ufeff")
_JS_SPACE_CLASS = "[" + re.escape(_JS_SPACE) + "]"
_TEMPLATE_RE = re.compile(r"\{\{([^\n\r\u2028\u2029]*?)\}\}")
_INT_TOKEN_RE = re.compile(r"{s}*int{s}*:{s}*(-?[0-9]+){s}*:{s}*(-?[0-9]+){s}*".format(s=_JS_SPACE_CLASS))
_TEMPLATE_WORDS = ("uuid", "vu", "iter")


def configured_targets() -> dict[str, Any]:
    data = read_config_yaml("targets.yaml") or {}
    return data.get("targets") or {}


def resolve_target(spec: str | dict) -> dict[str, Any]:
    """A target name, YAML path or inline mapping -> a validated target (header values still references)."""
    if isinstance(spec, dict):
        return bind_runtime_target(validate_target(spec, spec.get("name") or "inline", "target", trusted=False),
                                   "target")
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("target", "give a configured target name, a path to a target YAML file, or a mapping")
    spec = spec.strip()
    if spec.endswith((".yaml", ".yml")) or os.sep in spec:
        return _target_from_file(Path(spec))
    targets = configured_targets()
    if spec not in targets:
        known = ", ".join(sorted(targets)) or "none configured"
        raise InputError("target", f"unknown target {spec!r} (known: {known}; or pass a path to a YAML file)")
    return validate_target(targets[spec], spec, f"targets.{spec}", trusted=True)


def _target_from_file(path: Path) -> dict[str, Any]:
    # Run-time input: bounded, UTF-8, no YAML aliases (perfpipe.app.config.read_yaml_file).
    data = read_yaml_file(path, "target", aliases=False, what="target file")
    if isinstance(data, dict) and isinstance(data.get("targets"), dict):
        if len(data["targets"]) != 1:
            raise InputError("target", f"{path} must define exactly one target under 'targets:'")
        (name, body), = data["targets"].items()
        field = f"{path}:targets.{name}"
        return bind_runtime_target(validate_target(body, name, field, trusted=False), field)
    if not isinstance(data, dict):
        raise InputError("target", f"{path} must be a mapping with base_url and requests or script")
    return bind_runtime_target(validate_target(data, data.get("name") or path.stem, str(path), trusted=False),
                               str(path))


# --- limits follow the host, not the name ------------------------------------------------------------------
# A target is the server at a host:port, whatever a document calls it: a run-time target at a configured
# target's host:port gets that target's caps (the tighter of both), its Airflow pool (perfpipe.app.pools) and
# the same CLI lock (perfpipe.app.target_lock); and it may not take a configured target's name, under which its
# results would join that target's history and baselines.

_CAPS = ("max_vus", "max_rps")


def endpoints(base_url: str, field: str = "target.base_url") -> list[str]:
    """The `address:port` pairs the URL's host resolves to (IPv6 in brackets), sorted: the server's identity."""
    host, port = url_host_port(base_url)
    return sorted(f"[{a}]:{port}" if a.version == 6 else f"{a}:{port}" for a in _resolve(host, field))


def same_host_targets(base_url: str) -> list[str]:
    """The configured targets (sorted names) at the URL's resolved host:port: those sharing an address and the
    port. A configured target whose host does not resolve shares nothing (it cannot be loaded either)."""
    host, port = url_host_port(base_url)
    mine: set[str] | None = None
    names = []
    for name, raw in sorted(configured_targets().items()):
        url = raw.get("base_url") if isinstance(raw, dict) else None
        if not isinstance(url, str):
            continue
        try:
            other_host, other_port = url_host_port(url)
            if other_port != port:  # no lookup for a target on another port
                continue
            if other_host != host:
                mine = set(endpoints(base_url)) if mine is None else mine
                if not mine & set(endpoints(url)):
                    continue
        except (InputError, ValueError):
            continue
        names.append(name)
    return names


def bind_runtime_target(target: dict[str, Any], field: str) -> dict[str, Any]:
    """A validated run-time target, bound to the configured targets at its host:port: their caps apply (the
    tightest of all), and a configured target's name is refused (run that target by its name instead)."""
    configured = configured_targets()
    if target["name"] in configured:
        raise InputError(f"{field}.name", f"{target['name']!r} is the name of a configured target "
                                          f"(targets.{target['name']} in config/targets.yaml): a run-time target "
                                          f"may not record under it. Run that target by name (--target "
                                          f"{target['name']}) or give this one another name; nothing was run")
    twins = same_host_targets(target["base_url"])
    for cap in _CAPS:
        values = [v for v in [target.get(cap)] + [configured[t].get(cap) for t in twins]
                  if isinstance(v, int) and not isinstance(v, bool)]
        if values:
            target[cap] = min(values)
    if twins:
        log.info("target %s is at the host:port of configured target(s) %s: their caps apply (max_vus %s, "
                 "max_rps %s)", target["name"], ", ".join(twins), target.get("max_vus"), target.get("max_rps"))
    return target


def validate_target(raw: Any, name: str, field: str, *, trusted: bool = False) -> dict[str, Any]:
    """A target document -> the plan's target (plain data). The document's own rules are the model's
    (perfpipe.core.model.target, every problem at once); what needs files and the other config is checked here.

    `trusted`: the document is a configured target (config/targets.yaml of the deployment); only then may it declare
    chaos components (commands, containers, control URLs). Untrusted (the default) is refused any `chaos:` block."""
    if not trusted:
        refuse_runtime_chaos(raw, field)
    model = validate_target_document(raw, field)
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        raise InputError(f"{field}.name", f"use letters, digits, '-', '_' or '.' (1-64), got {name!r}")
    target: dict[str, Any] = {"name": name, "base_url": model.base_url.rstrip("/")}
    if model.requests is not None:
        _check_templates(target["base_url"], f"{field}.base_url")  # the scripts template base_url + path as one
        target["requests"] = _plan_requests(model.requests, f"{field}.requests")
    else:
        target["script"] = str(_resolve_script(model.script, f"{field}.script"))
    target["headers"] = {key: value if isinstance(value, str) else value.model_dump(exclude_none=True)
                         for key, value in (model.headers or {}).items()}
    for key in ("max_vus", "max_rps", "production", "metrics_url"):
        if getattr(model, key) is not None:
            target[key] = getattr(model, key)
    if model.gates is not None:
        target["gates"] = _validate_target_gates(model.gates, f"{field}.gates")
    if model.description:
        target["description"] = model.description
    if model.required_capacity is not None:
        target["required_capacity"] = model.required_capacity.model_dump(exclude_none=True)
    if model.analysis is not None:
        target["analysis"] = validate_analysis(model.analysis, f"{field}.analysis")
    if model.chaos is not None:
        target["chaos"] = _validate_chaos(model.chaos, target["name"], f"{field}.chaos")
    return target


# What a chaos block may make perfpipe run, signal or call: never accepted from a run-time target.
_CHAOS_EFFECT_KEYS = ("pid_command", "start_command", "stop_command", "pid", "container", "control_url")


def refuse_runtime_chaos(raw: Any, field: str) -> None:
    """A run-time target with a `chaos:` block -> InputError naming the field (the first command, pid, container or
    control URL in it, else its components, else the block): chaos components are declared by the deployment only."""
    if not isinstance(raw, dict) or raw.get("chaos") is None:  # `chaos: null` says there is none
        return
    chaos = raw["chaos"]
    where = _first_effect_key(chaos, f"{field}.chaos")
    if where is None:
        where = f"{field}.chaos.components" if isinstance(chaos, dict) and "components" in chaos else f"{field}.chaos"
    raise InputError(where, "a run-time target (the inline_target Param or a target file) may not declare chaos "
                            "components, commands, pids, containers or control URLs: declare them on a target in "
                            "config/targets.yaml of the deployment and run that target by name, choosing a scenario "
                            "with chaos_scenario (CLI: --scenario); nothing was run")


def check_configured_chaos(target_name: str, spec: dict[str, Any]) -> None:
    """At fault time, before k6 starts: every component a plan would fault is, exactly, one the configured target
    `target_name` declares in config/targets.yaml. A plan reaches the run task as data (XCom), not from the config:
    whatever it was made from, it cannot bring a command, container or control URL of its own."""
    configured = configured_targets().get(target_name)
    chaos = configured.get("chaos") if isinstance(configured, dict) else None
    declared = chaos.get("components") if isinstance(chaos, dict) else None
    for name, component in (spec.get("components") or {}).items():
        if not isinstance(declared, dict) or declared.get(name) != component:
            raise InputError(f"targets.{target_name}.chaos.components.{name}",
                             "the plan's chaos component is not the one declared in config/targets.yaml of the "
                             "deployment; no fault was injected and no load sent")


def _first_effect_key(value: Any, field: str) -> str | None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _CHAOS_EFFECT_KEYS:
                return f"{field}.{key}"
            found = _first_effect_key(item, f"{field}.{key}")
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _first_effect_key(item, f"{field}[{index}]")
            if found:
                return found
    return None


def _plan_requests(requests: list[Request], field: str) -> list[dict[str, Any]]:
    clean = []
    for index, req in enumerate(requests):
        _check_templates(req.path, f"{field}[{index}].path")
        _check_body_templates(req.body, f"{field}[{index}].body")
        method = req.method.upper()
        expect = req.expect_status if isinstance(req.expect_status, list) else [req.expect_status]
        clean.append({"name": req.name or f"{method} {req.path}", "method": method, "path": req.path,
                      "weight": float(req.weight), "expect_status": expect, "body": req.body})
    names = [r["name"] for r in clean]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(field, f"request names must be unique, repeated: {duplicated}")
    return clean


def _validate_chaos(chaos: Any, name: str, field: str) -> dict[str, Any]:
    """Components and scenarios a chaos test may fault (perfpipe.app.chaos); a scenario may carry its gate tolerance."""
    if not isinstance(chaos, dict) or not isinstance(chaos.get("scenarios"), dict):
        raise InputError(field, "expected {components: ..., scenarios: ..., default_scenario: ...}")
    tolerances = {}
    scenarios = {}
    for scenario, spec in chaos["scenarios"].items():
        spec = dict(spec) if isinstance(spec, dict) else spec
        if isinstance(spec, dict) and "tolerance" in spec:
            tolerances[scenario] = _validate_tolerance(spec.pop("tolerance"), f"{field}.scenarios.{scenario}.tolerance")
        scenarios[scenario] = spec
    parse_chaos(name, {**chaos, "scenarios": scenarios})
    clean = copy.deepcopy(chaos)
    for scenario, tolerance in tolerances.items():
        clean["scenarios"][scenario]["tolerance"] = tolerance
    return clean


_TOLERANCE_KEYS = ("inject_error_rate", "inject_p95_ms", "recovered_within_s")


def _validate_tolerance(tolerance: Any, field: str) -> dict[str, float]:
    if not isinstance(tolerance, dict) or set(tolerance) - set(_TOLERANCE_KEYS):
        raise InputError(field, f"expected a mapping with any of {', '.join(_TOLERANCE_KEYS)}, got {tolerance!r}")
    for key, value in tolerance.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InputError(f"{field}.{key}", f"expected a number >= 0, got {value!r}")
    return tolerance


def _validate_target_gates(gates: Any, field: str) -> dict[str, Any]:
    """Per-test-type checks of a target, validated now so a typo is refused with its field name."""

    if not isinstance(gates, dict):
        raise InputError(field, "expected a mapping of test type -> checks")
    for test_type, checks in gates.items():
        if test_type not in TEST_TYPES:
            raise InputError(f"{field}.{test_type}", f"unknown test type (known: {', '.join(TEST_TYPES)})")
        validate_gates(checks, f"{field}.{test_type}")
    return gates


def _check_templates(text: str, field: str) -> None:
    """{{int:A:B}} (A <= B), {{uuid}}, {{vu}}, {{iter}}; anything else in {{ }} and a '{{' left open are refused."""
    last = 0
    for match in [*_TEMPLATE_RE.finditer(text), None]:
        literal = text[last:match.start() if match else len(text)]
        if "{{" in literal:
            raise InputError(field, f"unterminated template in {text!r}")
        if match is None:
            return
        last = match.end()
        token = match.group(1)
        if token.strip(_JS_SPACE) in _TEMPLATE_WORDS:
            continue
        bounds = _INT_TOKEN_RE.fullmatch(token)
        if not bounds:
            raise InputError(field, f"unknown template {{{{{token}}}}} (supported: {{{{int:A:B}}}}, {{{{uuid}}}}, "
                                    f"{{{{vu}}}}, {{{{iter}}}})")
        if int(bounds.group(1)) > int(bounds.group(2)):
            raise InputError(field, f"template {{{{{token}}}}} has A > B")


def _check_body_templates(body: Any, field: str) -> None:
    """Templates in every string value of a body, however deep (keys are never templated)."""
    if isinstance(body, str):
        _check_templates(body, field)
    elif isinstance(body, dict):
        for key, value in body.items():
            _check_body_templates(value, f"{field}.{key}")
    elif isinstance(body, list):
        for index, value in enumerate(body):
            _check_body_templates(value, f"{field}[{index}]")


def _resolve_script(script: Any, field: str) -> Path:
    if not isinstance(script, str) or not script.endswith((".js", ".ts")):
        raise InputError(field, f"expected a path to a k6 .js script, got {script!r}")
    candidates = [Path(script)] if os.path.isabs(script) else [PROJECT_ROOT / script, scripts_dir() / script,
                                                                 Path.cwd() / script]
    for candidate in candidates:
        if candidate.is_file():
            _refuse_browser(candidate, field)
            return candidate.resolve()
    raise InputError(field, f"script {script!r} not found")


# k6's browser module: a page's own requests and WebSockets are Chromium's, outside k6's --blacklist-ip.
_BROWSER_MODULE_RE = re.compile(r"""['"`]k6/(?:experimental/)?browser['"`]""")


def _refuse_browser(path: Path, field: str) -> None:
    """A script naming k6's browser module is refused. A name computed at run time passes this reading, so k6 is
    also started with no browser to launch (perfpipe.core.k6.command NO_BROWSER)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(field, f"cannot read script {str(path)!r}: {exc}") from None
    if _BROWSER_MODULE_RE.search(text):
        raise InputError(field, "the script uses k6's browser module (k6/browser): a browser's page requests and "
                                "WebSockets are not confined to the allowlist, so perfpipe does not run it; use "
                                "k6/http or k6/ws, which k6 keeps inside the allowlist")


def resolve_header_values(headers: dict[str, Any]) -> dict[str, str]:
    """Header references -> values, at run time only. Secret values are registered with Airflow's masker."""
    values: dict[str, str] = {}
    for key, value in headers.items():
        if isinstance(value, str):
            values[key] = value
            continue
        if "env" in value:
            secret = os.environ.get(value["env"])
            if secret is None:
                raise InputError(f"headers.{key}", f"environment variable {value['env']!r} is not set")
        else:
            secret = _connection_password(value["connection"], f"headers.{key}")
        mask_secret(secret)
        values[key] = value.get("prefix", "") + secret
        # The model checked the reference; the value it reads must be as HTTP allows too (a CR/LF in an
        # environment variable would start another header). Never shown: it is a secret.
        if not re.match(HEADER_VALUE_PATTERN, values[key]):
            raise InputError(f"headers.{key}", "the secret's value has a line break or another control character, "
                                               "or is too long for an HTTP header (the value is not shown)")
    return values


def _connection_password(conn_id: str, field: str) -> str:
    try:
        # Airflow's Connection only for {connection: ...} references, inside a task
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
    except Exception as exc:  # Airflow raises its own not-found types across versions
        raise InputError(field, f"Airflow connection {conn_id!r} not available: {exc}") from None
    if not conn.password:
        raise InputError(field, f"Airflow connection {conn_id!r} has no password set")
    return conn.password


# Shorter encoded forms would mask ordinary text; the literal secret is always registered.
MIN_MASKED_FORM = 8


def secret_forms(secret: str) -> set[str]:
    """The secret and the encodings a script or a library is likely to print: URL-encoding, and base64 (standard
    and URL-safe, padded or not) at each of the three alignments it can have inside a longer value (e.g.
    `user:password` in a Basic header): only the characters that depend on the secret alone, so a match anywhere
    is found. A hostile script can still encode a header secret its own way (it must have it to send it); the
    InfluxDB password it never has (perfpipe.core.k6.relay)."""
    import base64  # only masking needs these
    import urllib.parse

    forms = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    raw = secret.encode()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        core = encoded[-(-8 * offset // 6):(8 * (offset + len(raw))) // 6]
        forms |= {core, core.replace("+", "-").replace("/", "_")}
    return {f for f in forms if f == secret or len(f) >= MIN_MASKED_FORM}


def mask_secret(secret: str) -> None:
    """Register a secret and its encoded forms with Airflow's log masker (a no-op outside Airflow)."""
    try:
        # Airflow's log masker, when running inside Airflow
        from airflow.sdk.log import mask_secret as airflow_mask_secret
    except ImportError:  # outside Airflow there is no task log to mask
        return
    for form in secret_forms(secret):
        airflow_mask_secret(form)


# ---------------------------------------------------------------------------------------------- allowlist
#
# An entry is a host name or an address/CIDR, optionally with a port or port range:
#   127.0.0.0/8        any port            localhost:8090      one port of a named host
#   127.0.0.1:8090     one port            [::1]:8000-9000     IPv6 needs brackets when a port follows
#   127.0.0.0/8:8000-9000                  ::1/128             a bare IPv6 address/CIDR means any port


@dataclass(frozen=True)
class AllowEntry:
    network: Network | None  # None: a host name, matched by name
    hostname: str
    ports: tuple[int, int]  # inclusive range; (1, 65535) = any port

    def allows_port(self, port: int) -> bool:
        return self.ports[0] <= port <= self.ports[1]


ANY_PORT = (1, 65535)


def _parse_ports(text: str, entry: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        ports = (int(low), int(high) if sep else int(low))
    except ValueError:
        raise InputError("allowlist", f"bad port in {entry!r}: expected a port or a range like 8000-9000") from None
    if not 1 <= ports[0] <= ports[1] <= 65535:
        raise InputError("allowlist", f"bad port range in {entry!r}: expected 1-65535, low <= high")
    return ports


def _host_entry(host: str, ports: tuple[int, int], entry: str) -> AllowEntry:
    try:
        return AllowEntry(ipaddress.ip_network(host, strict=False), "", ports)
    except ValueError:
        pass
    name = host.lower().rstrip(".")
    if not name or not all(c.isalnum() or c in "-." for c in name):
        raise InputError("allowlist", f"{entry!r} is neither an address, a network nor a host name")
    return AllowEntry(None, name, ports)


def parse_allowlist(allowlist: list[str]) -> list[AllowEntry]:
    entries = []
    for raw in allowlist:
        entry = str(raw).strip()
        if entry.startswith("["):  # [v6 address or network]:ports
            inside, sep, rest = entry[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise InputError("allowlist", f"bad entry {entry!r}: expected [address]:port")
            entries.append(_host_entry(inside, _parse_ports(rest[1:], entry) if rest else ANY_PORT, entry))
            continue
        try:  # a bare address or network, IPv6 included: any port
            entries.append(AllowEntry(ipaddress.ip_network(entry, strict=False), "", ANY_PORT))
            continue
        except ValueError:
            pass
        host, sep, ports = entry.rpartition(":")
        if sep and ":" not in host:
            entries.append(_host_entry(host, _parse_ports(ports, entry), entry))
        else:
            entries.append(_host_entry(entry, ANY_PORT, entry))
    return entries


def _parse_allowlist(allowlist: list[str]) -> tuple[list[Network], set[str]]:
    """Networks and host names of the allowlist, ports ignored (k6 --blacklist-ip works on addresses only)."""
    entries = parse_allowlist(allowlist)
    return [e.network for e in entries if e.network is not None], {e.hostname for e in entries if e.hostname}


def _resolve(host: str, field: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise InputError(field, f"cannot resolve host {host!r}: {exc}") from None
    return sorted({ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}, key=str)


def url_host_port(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower().rstrip(".")
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def check_target_allowed(base_url: str, allowlist: list[str], field: str = "target.base_url") -> list[str]:
    """Refuse a target whose host and port are not allowed; returns the addresses the host resolves to.

    A host is allowed when it is named in the allowlist, or when every address it resolves to lies inside an
    allowed network (so a hostname cannot smuggle load to an outside address); in both cases the entry must
    allow the URL's port (80/443 when the URL names none).
    """
    host, port = url_host_port(base_url)
    entries = parse_allowlist(allowlist)
    addresses = _resolve(host, field)
    if any(e.hostname == host and e.allows_port(port) for e in entries):
        return [str(a) for a in addresses]

    def inside(address, any_port: bool) -> bool:
        return any(e.network is not None and address.version == e.network.version and address in e.network
                   and (any_port or e.allows_port(port)) for e in entries)

    outside = [a for a in addresses if not inside(a, any_port=False)]
    if not addresses or outside:
        host_known = any(e.hostname == host for e in entries) or (addresses and all(inside(a, True)
                                                                                     for a in addresses))
        what = (f"port {port} of host {host!r} is not in the allowlist" if host_known else
                f"host {host!r} ({', '.join(map(str, outside or addresses))}) is not in the allowlist")
        raise TargetNotAllowedError(
            field,
            f"{what} ({', '.join(allowlist)}); no request was sent. Add it to 'allowlist' in config/perfpipe.yaml "
            f"only if you own it.")
    return [str(a) for a in addresses]


def is_loopback_host(host: str, addresses: list[str]) -> bool:
    """localhost, or a host whose every address is a loopback address."""
    return host == "localhost" or (bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses))


def check_target_safe(target: dict[str, Any], allowlist: list[str]) -> list[str]:
    """Every target check that needs the network view, before any request: the allowlist (host and port), and
    `production: true` on any target that is not on this machine's loopback, even an allowlisted one."""
    addresses = check_target_allowed(target["base_url"], allowlist)
    # perfpipe's own calls go through perfpipe.app.egress, which checks them again when made; here so that a
    # control URL outside the allowlist is refused before any load rather than in the middle of a chaos run.
    for name, component in ((target.get("chaos") or {}).get("components") or {}).items():
        if isinstance(component, dict) and component.get("control_url"):
            check_target_allowed(component["control_url"], allowlist,
                                 f"targets.{target['name']}.chaos.components.{name}.control_url")
    host, _ = url_host_port(target["base_url"])
    if (urlsplit(target["base_url"]).hostname or "").endswith("."):
        raise TargetNotAllowedError("target.base_url", f"write the host {host!r} without its trailing '.': k6 pins "
                                                       "the target's name to its checked address and cannot pin a "
                                                       "name ending in '.' (it would ask DNS itself); no request "
                                                       "was sent")
    if target.get("script") and not _any_port_allowed(host, addresses, parse_allowlist(allowlist)):
        # k6 blocks addresses, not ports: a script of its own could reach every port of an allowed address.
        raise TargetNotAllowedError(
            "target.script", f"the allowlist names only some ports of {host!r} ({', '.join(allowlist)}): k6 can "
                             "confine a custom script to addresses but not to ports, so only the bundled scripts "
                             "(requests:) run there; allow the address on any port to run a script; no request "
                             "was sent")
    if not is_loopback_host(host, addresses) and target.get("production") is not True:
        # A configured target is fixed in targets.yaml; an inline or file target in the `target` it came from.
        field = f"targets.{target['name']}" if target["name"] in configured_targets() else "target"
        raise TargetNotAllowedError(
            f"{field}.production",
            f"host {host!r} ({', '.join(addresses)}) is not loopback: set `production: true` on the target to "
            f"confirm load may be sent there; no request was sent")
    return addresses

def _any_port_allowed(host: str, addresses: list[str], entries: list[AllowEntry]) -> bool:
    """The host is allowed on every port: named by an any-port entry, or each address in an any-port network."""
    if any(e.hostname == host and e.ports == ANY_PORT for e in entries):
        return True
    return all(any(e.network is not None and e.ports == ANY_PORT and ipaddress.ip_address(a).version
                   == e.network.version and ipaddress.ip_address(a) in e.network for e in entries)
               for a in addresses)


def k6_blocked_networks(allowlist: list[str], allowed_addresses: list[str]) -> list[str]:
    """Every network outside the allowlist, for k6 --blacklist-ip: a user's script cannot escape it either."""
    networks, _ = _parse_allowlist(allowlist)
    return networks_outside([str(n) for n in networks] + list(allowed_addresses))
