"""Targets (what may be loaded) and the host allowlist that keeps load away from everything else.

A target is a name in config/targets.yaml, a path to a YAML file of the same shape, or an inline mapping (Params).
Header values that are secrets are references ({env: VAR} or {connection: CONN_ID}) resolved only at run time.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from perfpipe.config import read_config_yaml
from perfpipe.errors import InputError, TargetNotAllowedError
from perfpipe.paths import PROJECT_ROOT, scripts_dir

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_TARGET_KEYS = {"name", "base_url", "description", "headers", "requests", "script", "max_vus", "gates",
                "required_capacity", "analysis", "metrics_url", "chaos"}
_REQUEST_KEYS = {"name", "method", "path", "weight", "expect_status", "body"}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def configured_targets() -> dict[str, Any]:
    data = read_config_yaml("targets.yaml") or {}
    return data.get("targets") or {}


def resolve_target(spec: str | dict) -> dict[str, Any]:
    """A target name, YAML path or inline mapping -> a validated target (header values still references)."""
    if isinstance(spec, dict):
        return validate_target(spec, spec.get("name") or "inline", "target")
    if not isinstance(spec, str) or not spec.strip():
        raise InputError("target", "give a configured target name, a path to a target YAML file, or a mapping")
    spec = spec.strip()
    if spec.endswith((".yaml", ".yml")) or os.sep in spec:
        return _target_from_file(Path(spec))
    targets = configured_targets()
    if spec not in targets:
        known = ", ".join(sorted(targets)) or "none configured"
        raise InputError("target", f"unknown target {spec!r} (known: {known}; or pass a path to a YAML file)")
    return validate_target(targets[spec], spec, f"targets.{spec}")


def _target_from_file(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        raise InputError("target", f"target file {str(path)!r} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError("target", f"{path} is not valid YAML: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("targets"), dict):
        if len(data["targets"]) != 1:
            raise InputError("target", f"{path} must define exactly one target under 'targets:'")
        (name, body), = data["targets"].items()
        return validate_target(body, name, f"{path}:targets.{name}")
    if not isinstance(data, dict):
        raise InputError("target", f"{path} must be a mapping with base_url and requests or script")
    return validate_target(data, data.get("name") or path.stem, str(path))


def validate_target(raw: Any, name: str, field: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InputError(field, "a target must be a mapping with base_url and requests or script")
    unknown = set(raw) - _TARGET_KEYS
    if unknown:
        raise InputError(field, f"unknown keys {sorted(unknown)} (known: {', '.join(sorted(_TARGET_KEYS))})")
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InputError(f"{field}.name", f"use letters, digits, '-', '_' or '.', got {name!r}")
    base_url = raw.get("base_url")
    if not isinstance(base_url, str) or not base_url:
        raise InputError(f"{field}.base_url", "missing; e.g. http://127.0.0.1:8090")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"{field}.base_url", f"must be an http(s) URL with a host, got {base_url!r}")
    if parts.username or parts.password:
        # It would travel in run configs, XCom and logs: credentials belong in headers with {env|connection}.
        raise InputError(f"{field}.base_url", "must not contain credentials; use a header with {env: ...} or "
                                              "{connection: ...} instead")
    try:
        parts.port
    except ValueError:
        raise InputError(f"{field}.base_url", f"bad port in {base_url!r}") from None
    target: dict[str, Any] = {"name": name, "base_url": base_url.rstrip("/")}
    has_requests, has_script = raw.get("requests") is not None, raw.get("script") is not None
    if has_requests == has_script:
        raise InputError(field, "give exactly one of 'requests' (no JavaScript needed) or 'script'")
    if has_requests:
        target["requests"] = _validate_requests(raw["requests"], f"{field}.requests")
    else:
        target["script"] = str(_resolve_script(raw["script"], f"{field}.script"))
    target["headers"] = _validate_headers(raw.get("headers") or {}, f"{field}.headers")
    if raw.get("max_vus") is not None:
        value = raw["max_vus"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{field}.max_vus", f"expected a positive integer, got {value!r}")
        target["max_vus"] = value
    if raw.get("gates") is not None:
        target["gates"] = _validate_target_gates(raw["gates"], f"{field}.gates")
    if raw.get("description"):
        target["description"] = str(raw["description"])
    _validate_test_settings(raw, target, field)
    return target


def _validate_test_settings(raw: dict, target: dict, field: str) -> None:
    """What the stress, soak and chaos analyses need to know about the target."""
    from perfpipe.config import validate_analysis, validate_capacity

    if raw.get("required_capacity") is not None:
        target["required_capacity"] = validate_capacity(raw["required_capacity"], f"{field}.required_capacity")
    if raw.get("analysis") is not None:
        target["analysis"] = validate_analysis(raw["analysis"], f"{field}.analysis")
    if raw.get("metrics_url") is not None:
        path = raw["metrics_url"]
        # A path on the target itself: the allowlist that admits the target admits its metrics endpoint.
        if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
            raise InputError(f"{field}.metrics_url", f"expected a path on the target such as /__stats, got {path!r}")
        target["metrics_url"] = path
    if raw.get("chaos") is not None:
        target["chaos"] = _validate_chaos(raw["chaos"], target["name"], f"{field}.chaos")


def _validate_chaos(chaos: Any, name: str, field: str) -> dict[str, Any]:
    """Components and scenarios a chaos test may fault (perfpipe.chaos); a scenario may carry its gate tolerance."""
    from perfpipe.chaos.spec import parse_chaos

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
    from perfpipe import TEST_TYPES
    from perfpipe.config import validate_gates

    if not isinstance(gates, dict):
        raise InputError(field, "expected a mapping of test type -> checks")
    for test_type, checks in gates.items():
        if test_type not in TEST_TYPES:
            raise InputError(f"{field}.{test_type}", f"unknown test type (known: {', '.join(TEST_TYPES)})")
        validate_gates(checks, f"{field}.{test_type}")
    return gates


def _validate_requests(requests: Any, field: str) -> list[dict]:
    if not isinstance(requests, list) or not requests:
        raise InputError(field, "expected a non-empty list of requests")
    clean = []
    for index, req in enumerate(requests):
        where = f"{field}[{index}]"
        if not isinstance(req, dict):
            raise InputError(where, "expected a mapping with method and path")
        unknown = set(req) - _REQUEST_KEYS
        if unknown:
            raise InputError(where, f"unknown keys {sorted(unknown)} (known: {', '.join(sorted(_REQUEST_KEYS))})")
        method = str(req.get("method", "GET")).upper()
        if method not in HTTP_METHODS:
            raise InputError(f"{where}.method", f"must be one of {', '.join(HTTP_METHODS)}, got {req.get('method')!r}")
        path = req.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InputError(f"{where}.path", f"must start with '/', got {path!r}")
        weight = req.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise InputError(f"{where}.weight", f"must be a positive number, got {weight!r}")
        expect = req.get("expect_status", 200)
        expect_list = expect if isinstance(expect, list) else [expect]
        if not expect_list or not all(isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599
                                      for s in expect_list):
            raise InputError(f"{where}.expect_status", f"must be HTTP status codes (100-599), got {expect!r}")
        name = req.get("name") or f"{method} {path}"
        if not isinstance(name, str):
            raise InputError(f"{where}.name", f"must be a string, got {name!r}")
        body = req.get("body")
        if body is not None and not isinstance(body, (dict, list, str)):
            raise InputError(f"{where}.body", "must be a JSON object, list or string")
        clean.append({"name": name, "method": method, "path": path, "weight": float(weight),
                      "expect_status": expect_list, "body": body})
    names = [r["name"] for r in clean]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(field, f"request names must be unique, repeated: {duplicated}")
    return clean


def _resolve_script(script: Any, field: str) -> Path:
    if not isinstance(script, str) or not script.endswith((".js", ".ts")):
        raise InputError(field, f"expected a path to a k6 .js script, got {script!r}")
    candidates = [Path(script)] if os.path.isabs(script) else [PROJECT_ROOT / script, scripts_dir() / script,
                                                                 Path.cwd() / script]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise InputError(field, f"script {script!r} not found")


def _validate_headers(headers: Any, field: str) -> dict[str, Any]:
    if not isinstance(headers, dict):
        raise InputError(field, "expected a mapping of header name -> value or {env|connection: ...}")
    clean: dict[str, Any] = {}
    for key, value in headers.items():
        where = f"{field}.{key}"
        if isinstance(value, str):
            clean[str(key)] = value
        elif isinstance(value, dict) and len(set(value) & {"env", "connection"}) == 1 \
                and not set(value) - {"env", "connection", "prefix"}:
            clean[str(key)] = {k: str(v) for k, v in value.items()}
        else:
            raise InputError(where, "expected a plain string or {env: VAR} / {connection: CONN_ID} "
                                    "with optional prefix")
    return clean


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
    return values


def _connection_password(conn_id: str, field: str) -> str:
    try:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
    except Exception as exc:  # Airflow raises its own not-found types across versions
        raise InputError(field, f"Airflow connection {conn_id!r} not available: {exc}") from None
    if not conn.password:
        raise InputError(field, f"Airflow connection {conn_id!r} has no password set")
    return conn.password


def mask_secret(secret: str) -> None:
    """Register a secret with Airflow's log masker (a no-op outside Airflow)."""
    try:
        from airflow.sdk.log import mask_secret as airflow_mask_secret
    except ImportError:  # outside Airflow there is no task log to mask
        return
    airflow_mask_secret(secret)


# ---------------------------------------------------------------------------------------------- allowlist


def _parse_allowlist(allowlist: list[str]) -> tuple[list[Network], set[str]]:
    networks: list[Network] = []
    hostnames: set[str] = set()
    for entry in allowlist:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hostnames.add(entry.lower().rstrip("."))
    return networks, hostnames


def _resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise InputError("target.base_url", f"cannot resolve host {host!r}: {exc}") from None
    return sorted({ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}, key=str)


def check_target_allowed(base_url: str, allowlist: list[str]) -> list[str]:
    """Refuse a target whose host is not allowed; returns the addresses the host resolves to.

    A host is allowed when it is named in the allowlist, or when every address it resolves to lies inside an
    allowed network (so a hostname cannot smuggle load to an outside address).
    """
    host = (urlsplit(base_url).hostname or "").lower().rstrip(".")
    networks, hostnames = _parse_allowlist(allowlist)
    addresses = _resolve(host)
    if host in hostnames:
        return [str(a) for a in addresses]
    outside = [a for a in addresses if not any(a.version == n.version and a in n for n in networks)]
    if not addresses or outside:
        raise TargetNotAllowedError(
            "target.base_url",
            f"host {host!r} ({', '.join(map(str, outside or addresses))}) is not in the allowlist "
            f"({', '.join(allowlist)}); no request was sent. Add it to 'allowlist' in config/perfpipe.yaml "
            f"only if you own it.")
    return [str(a) for a in addresses]


def k6_blocked_networks(allowlist: list[str], allowed_addresses: list[str]) -> list[str]:
    """Every network outside the allowlist, for k6 --blacklist-ip: a user's script cannot escape it either."""
    networks, _ = _parse_allowlist(allowlist)
    networks += [ipaddress.ip_network(a) for a in allowed_addresses]
    blocked: list[str] = []
    for version, everything in ((4, ipaddress.ip_network("0.0.0.0/0")), (6, ipaddress.ip_network("::/0"))):
        remaining = [everything]
        for allowed in ipaddress.collapse_addresses(n for n in networks if n.version == version):
            next_remaining = []
            for net in remaining:
                if allowed.subnet_of(net):
                    next_remaining.extend(net.address_exclude(allowed))
                elif not net.subnet_of(allowed):
                    next_remaining.append(net)
            remaining = next_remaining
        blocked.extend(str(n) for n in ipaddress.collapse_addresses(remaining))
    return blocked
