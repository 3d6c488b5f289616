"""Settings, profiles, gates and per-run overrides, resolved into one validated test plan.

A *plan* is the JSON-serialisable description of one k6 run (test type, target, load shape, gate checks). It is
built once, before any load, so every bad value is refused with the field it came from.
"""

from __future__ import annotations

import copy
import math
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from perfpipe import TEST_TYPES
from perfpipe.core.errors import InputError
from perfpipe.core.model.base import MAX_FILE_BYTES, MAX_SET_VALUE_CHARS, MAX_YAML_DEPTH, MAX_YAML_NODES
from perfpipe.core.model.overrides import EXECUTORS, GATE_OPS, HARD_MAX_VUS, validate_overrides
from perfpipe.core.model.plan import TestPlan
from perfpipe.core.paths import config_dir

PROFILES = ("quick", "standard")
GATE_METRICS = ("p95_ms", "p99_ms", "avg_ms", "error_rate", "rps", "checks_rate", "requests",
                # from perfpipe.app.analysis, per test type
                "capacity_vus", "capacity_rps", "breaking_vus", "breaking_rps", "peak_stable_rps",
                "baseline_p95_ms", "spike_p95_ms", "spike_error_rate", "recovery_s",
                "p95_drift_pct", "p95_slope_ms_per_min", "error_rate_drift", "memory_growth_pct",
                "inject_error_rate", "inject_p95_ms", "inject_rps", "recovery_error_rate", "recovery_p95_ms",
                "recovered_s")
# Metrics a target must be set up for: without it the check is skipped (shown, never passed).
_NEEDS_METRICS_URL = ("memory_growth_pct",)
ANALYSIS_TYPES = ("stress", "spike", "soak", "chaos")

_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(ms|s|m|h))+$")
_DURATION_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_OPS_PASS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
             ">=": lambda a, b: a >= b}
_RELATIVE_RE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*%\s*$")
_CHECK_KEYS = {"metric", "op", "threshold", "warn", "weight", "key", "baseline_runs"}
_THRESHOLD_EXPR_RE = re.compile(r"^\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


# ---------------------------------------------------------------------------------------------- YAML
# The one way perfpipe reads YAML (config files, target files, --set values): bounded before it is parsed, UTF-8
# or a clear error, PyYAML's safe constructors only, and aliases refused in run-time input. An alias bomb (nested
# anchors, a few hundred bytes) expands to billions of nodes in whatever walks the data next: it ran 72 s into a
# MemoryError. A deployment's own config may use anchors (gates.yaml does); its expanded size is bounded instead.


def read_yaml_file(path: Path, field: str, *, aliases: bool = False, what: str = "file") -> Any:
    """A YAML file's document, or InputError naming `field`: missing, larger than MAX_FILE_BYTES (checked before
    reading it all), not UTF-8, not YAML, nested or (aliases=True) expanded beyond the limits, or an alias at all
    (aliases=False)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InputError(field, f"{what} {str(path)!r} not found") from None
    except IsADirectoryError:
        raise InputError(field, f"{str(path)!r} is a folder, not a file") from None
    except OSError as exc:
        raise InputError(field, f"cannot read {str(path)!r}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(field, f"{path} is larger than {MAX_FILE_BYTES} bytes, the limit of a YAML file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(field, f"{path} is not UTF-8 text (byte {exc.start}, line {line}); save it as "
                                f"UTF-8") from None
    try:
        return load_yaml(text, field, aliases=aliases)
    except yaml.YAMLError as exc:
        raise InputError(field, f"{path} is not valid YAML: {_yaml_problem(exc)}") from None


def load_yaml(text: str, field: str, *, aliases: bool = False) -> Any:
    """One YAML document from text: InputError for what exceeds the limits, yaml.YAMLError for bad YAML."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # PyYAML composes recursively: '[[[[...' a few thousand deep
            raise InputError(field, f"YAML nested deeper than {MAX_YAML_DEPTH} levels") from None
        if node is None:
            return None
        _check_nodes(node, field, aliases)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_nodes(root: yaml.Node, field: str, aliases: bool) -> None:
    """Depth, and aliases: a node reached twice is an alias (or a merge key's source); a node inside itself is a
    recursive alias. With aliases allowed, the nodes counted as they expand are bounded (counted once per node,
    memoised: the check costs the file's size, not the expansion's)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            if not aliases:
                raise InputError(field, f"YAML anchors and aliases (&name / *name, line {node.start_mark.line + 1})"
                                        f" are not accepted here: write the values out")
            return sizes[key]
        if key in open_nodes:
            raise InputError(field, f"a YAML alias refers to its own anchor (line {node.start_mark.line + 1})")
        if depth > MAX_YAML_DEPTH:
            raise InputError(field, f"YAML nested deeper than {MAX_YAML_DEPTH} levels "
                                    f"(line {node.start_mark.line + 1})")
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1 + sum(size(child, depth + 1) for child in children)
        open_nodes.discard(key)
        if total > MAX_YAML_NODES:
            raise InputError(field, f"YAML expands to more than {MAX_YAML_NODES} values (aliases included)")
        sizes[key] = total
        return total

    size(root, 0)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message on one line, without the quoted snippet of the input (it may be long)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{exc.problem or exc.context}{where}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _read_yaml(path: Path) -> Any:
    """A deployment's config file (trusted: anchors allowed, bounded)."""
    return read_yaml_file(path, str(path), aliases=True)


@lru_cache(maxsize=8)
def _cached_yaml(path: str, mtime: float) -> Any:
    return _read_yaml(Path(path))


def read_config_yaml(name: str) -> Any:
    """A YAML file under config/, re-read when it changes."""
    path = config_dir() / name
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise InputError(str(path), "file not found") from None
    return copy.deepcopy(_cached_yaml(str(path), mtime))


def settings() -> dict[str, Any]:
    """config/perfpipe.yaml with environment overrides applied."""
    data = read_config_yaml("perfpipe.yaml") or {}
    influx = data.setdefault("influxdb", {})
    influx["url"] = os.environ.get("PERFPIPE_INFLUXDB_URL", influx.get("url", "http://127.0.0.1:8086"))
    influx["database"] = os.environ.get("PERFPIPE_INFLUXDB_DB", influx.get("database", "k6"))
    data["runtime"] = os.environ.get("PERFPIPE_RUNTIME", data.get("runtime", "local"))
    if data["runtime"] not in ("local", "docker"):
        raise InputError("runtime", f"must be 'local' or 'docker', got {data['runtime']!r}")
    docker = data.setdefault("docker", {})
    docker["image"] = os.environ.get("PERFPIPE_K6_IMAGE", docker.get("image", "grafana/k6:1.1.0"))
    if os.environ.get("PERFPIPE_ALLOWLIST"):
        data["allowlist"] = [h.strip() for h in os.environ["PERFPIPE_ALLOWLIST"].split(",") if h.strip()]
    data.setdefault("allowlist", ["127.0.0.0/8", "::1/128", "localhost"])
    data.setdefault("run_timeout_margin_s", 120)
    data["outputs"] = validate_outputs(os.environ.get("PERFPIPE_OUTPUTS") or data.get("outputs"))
    if "prometheus" in data["outputs"]:
        data["prometheus"] = validate_prometheus(data.get("prometheus") or {})
    return data


# ---------------------------------------------------------------------------------------------- k6 outputs

OUTPUTS = ("influxdb", "prometheus")
_TREND_STAT_RE = re.compile(r"^(p\((\d{1,2}(\.\d+)?|100)\)|min|max|avg|med|count|sum)$")


def validate_outputs(value: Any) -> list[str]:
    """`outputs`: where k6 sends its samples. influxdb is required (the gates read it); prometheus is extra."""
    if value is None:
        return ["influxdb"]
    if isinstance(value, str):  # PERFPIPE_OUTPUTS=influxdb,prometheus
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InputError("outputs", f"expected a list like [influxdb] or [influxdb, prometheus], got {value!r}")
    unknown = [v for v in value if v not in OUTPUTS]
    if unknown:
        raise InputError("outputs", f"unknown output {unknown[0]!r} (known: {', '.join(OUTPUTS)})")
    if "influxdb" not in value:
        raise InputError("outputs", "must include influxdb: the gates read k6's samples from InfluxDB "
                                    "(use [influxdb, prometheus] to send them to Prometheus as well)")
    return list(dict.fromkeys(value))


def validate_prometheus(section: Any) -> dict[str, Any]:
    """The `prometheus:` section used when outputs include prometheus (k6's remote-write output)."""
    if not isinstance(section, dict):
        raise InputError("prometheus", f"expected a mapping, got {section!r}")
    unknown = set(section) - {"remote_write_url", "trend_stats", "push_interval"}
    if unknown:
        raise InputError("prometheus", f"unknown keys {sorted(unknown)} (known: push_interval, remote_write_url, "
                                       f"trend_stats)")
    url = os.environ.get("PERFPIPE_PROMETHEUS_RW_URL") or section.get("remote_write_url")

    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError("prometheus.remote_write_url",
                         f"expected an http(s) URL like http://127.0.0.1:9090/api/v1/write, got {url!r}")
    if parts.username or parts.password:
        raise InputError("prometheus.remote_write_url", "must not contain credentials: set "
                                                        "PERFPIPE_PROMETHEUS_RW_USERNAME/_PASSWORD")
    stats = section.get("trend_stats", ["p(95)", "p(99)", "avg", "min", "max"])
    if not isinstance(stats, list) or not stats or not all(isinstance(x, str) and _TREND_STAT_RE.match(x)
                                                           for x in stats):
        raise InputError("prometheus.trend_stats", f"expected a list of p(N), min, max, avg, med, count or sum, "
                                                   f"got {stats!r}")
    push = section.get("push_interval", "5s")
    if parse_duration(push, "prometheus.push_interval") <= 0:
        raise InputError("prometheus.push_interval", "must be longer than 0s")
    return {"remote_write_url": url, "trend_stats": stats, "push_interval": _as_k6_duration(push)}


# ---------------------------------------------------------------------------------------------- durations


def parse_duration(value: Any, field: str) -> float:
    """k6 duration ('1m30s', '500ms', '2h') or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise InputError(field, f"expected a duration like '30s' or '2m', got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise InputError(field, f"duration must not be negative, got {value!r}")
        if not math.isfinite(value):  # it goes to k6 as a duration string
            raise InputError(field, f"duration must be a finite number of seconds, got {value!r}")
        return float(value)
    if not isinstance(value, str) or not _DURATION_RE.match(value.strip()):
        raise InputError(field, f"expected a duration like '30s', '2m' or '1h30m', got {value!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART_RE.findall(value.strip()))


def format_duration(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{int(round(seconds * 1000))}ms"


# ---------------------------------------------------------------------------------------------- overrides


def parse_set_arguments(pairs: list[str]) -> dict[str, Any]:
    """CLI `--set key=value` pairs -> overrides; values are YAML scalars/lists ('10', '0.5', '[..]')."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise InputError("--set", f"expected key=value, got {pair!r}")
        if len(raw) > MAX_SET_VALUE_CHARS:
            raise InputError(f"--set {key.strip()}", f"a value may have at most {MAX_SET_VALUE_CHARS} characters")
        try:
            overrides[key.strip()] = load_yaml(raw, f"--set {key.strip()}") if raw.strip() else ""
        except yaml.YAMLError:
            overrides[key.strip()] = raw
    return overrides


_SHAPE_KEYS = {"executor", "vus", "duration", "stages", "start_vus", "think_time_s", "read_ratio",
               "graceful_stop", "graceful_ramp_down", "phases"}


def _split_override_key(key: str) -> tuple[str | None, list[str]]:
    parts = key.split(".")
    if parts[0] in TEST_TYPES:
        return parts[0], parts[1:]
    return None, parts


def apply_overrides(test_type: str, shape: dict, gates: dict, overrides: dict[str, Any]) -> None:
    """Apply overrides for this test type in place. Keys: `vus`, `load.vus`, `thresholds.p95_ms`, ...

    Unscoped keys apply first, then keys scoped to this test type, so `load.vus` beats `vus` in any order;
    `executor` applies before the shape keys that depend on it.
    """
    def order(item: tuple[str, Any]) -> tuple[int, int]:
        scope, parts = _split_override_key(str(item[0]))
        # executor, then stages, then the keys that scale a shape (vus, duration) and the rest
        rank = {"executor": 0, "stages": 1}.get(parts[0] if parts else "", 2)
        return (0 if scope is None else 1, rank)

    # The document's own rules (keys, types, ranges, grammar) are the model's, all problems at once; what needs
    # the shape and the configured checks is checked below as each key is applied.
    overrides = validate_overrides(overrides)
    for key, value in sorted(overrides.items(), key=order):
        scope, parts = _split_override_key(str(key))
        if scope is not None and scope != test_type:
            continue
        field = f"overrides.{key}"
        if not parts or not parts[0]:
            raise InputError(field, "empty override key")
        if parts[0] == "thresholds":
            _apply_threshold_override(gates, parts[1:], value, field)
        elif parts[0] in _SHAPE_KEYS and len(parts) == 1:
            if parts[0] == "stages" and isinstance(value, str):
                value = parse_compact_stages(value, field)
            if shape.get("executor") == "ramping-vus" and parts[0] in ("vus", "duration"):
                _scale_stages(shape, parts[0], value, field)
            else:
                shape[parts[0]] = value
        else:
            known = sorted(_SHAPE_KEYS | {"thresholds.<metric>"})
            raise InputError(field, f"unknown override (known: {', '.join(known)}; prefix with a test type "
                                    f"like 'load.vus' to scope it)")


def _scale_stages(shape: dict, key: str, value: Any, field: str) -> None:
    """On a ramping shape, `vus` sets the peak and `duration` the total time; the shape is kept."""
    stages = shape.get("stages") or []
    if not isinstance(stages, list) or not all(isinstance(st, dict) and "duration" in st and "target" in st
                                               and isinstance(st["target"], int) for st in stages):
        raise InputError(field, f"cannot scale stages {stages!r}: expected a list of {{duration, target}}")
    if key == "vus":
        peak = shape_peak_vus(shape) or 1
        target = _int_in(value, field, 1, HARD_MAX_VUS)
        shape["stages"] = [dict(s, target=round(int(s["target"]) * target / peak)) for s in stages]
        shape["start_vus"] = round(int(shape.get("start_vus") or 0) * target / peak)
    else:
        total = shape_duration_s(shape) or 1
        wanted = parse_duration(value, field)
        shape["stages"] = [dict(s, duration=format_duration(round(parse_duration(s["duration"], field)
                                                                  * wanted / total, 3)))
                           for s in stages]


def parse_compact_stages(text: str, field: str) -> list[dict]:
    """'10s:5,20s:50' -> [{'duration': '10s', 'target': 5}, ...]."""
    stages = []
    for item in text.split(","):
        duration, sep, target = item.strip().partition(":")
        if not sep:
            raise InputError(field, f"expected stages like '10s:5,20s:50', got {text!r}")
        try:
            stages.append({"duration": duration.strip(), "target": int(target)})
        except ValueError:
            raise InputError(field, f"stage target must be an integer, got {target!r}") from None
    return stages


def _apply_threshold_override(gates: dict, parts: list[str], value: Any, field: str) -> None:
    if not parts or (parts[0] not in GATE_METRICS and parts[0] not in gates):
        raise InputError(field, f"unknown metric (known: {', '.join(GATE_METRICS)}, or a configured check name)")
    metric = parts[0]
    existing = gates.get(metric)
    if isinstance(existing, str):  # the '< 500' form from gates.yaml
        existing = validate_gates({metric: existing}, field)[metric]
    check = dict(existing or {"op": default_op(metric)})
    if len(parts) == 1:
        if isinstance(value, dict):
            check.update(value)
        elif isinstance(value, str) and _THRESHOLD_EXPR_RE.match(value):
            op, number = _THRESHOLD_EXPR_RE.match(value).groups()
            check.update(op=op, threshold=float(number))
            check.pop("warn", None)
        elif value is None or value is False or value == "off":  # YAML reads `off` as False
            gates.pop(metric, None)
            return
        else:
            check["threshold"] = value
            check.pop("warn", None)  # a warn level tuned for the old threshold would now mislead
    elif len(parts) == 2 and parts[1] in ("op", "threshold", "warn", "weight", "key", "baseline_runs"):
        check[parts[1]] = value
    else:
        raise InputError(field, "expected thresholds.<check>[.op|.threshold|.warn|.weight|.key|.baseline_runs]")
    gates[metric] = check


def default_op(metric: str) -> str:
    return ">=" if metric in ("rps", "checks_rate", "requests", "capacity_vus", "capacity_rps", "breaking_vus",
                              "breaking_rps", "peak_stable_rps", "inject_rps") else "<"


# ---------------------------------------------------------------------------------------------- validation


def validate_gates(gates: dict, field: str) -> dict[str, dict]:
    """Normalise and validate gate checks: {name: {op, threshold, warn?, metric?, weight?, key?, baseline_runs?}}.

    `threshold`/`warn` are numbers (absolute) or percentages like "+10%" (relative to the baseline: the median
    of the last `baseline_runs` passing runs of the same test type and target). `metric` defaults to the name;
    `weight` (default 1) counts in the gate's score; a failed `key` check (the default) fails the gate.
    Defaults are left out of the normalised form.
    """
    if not isinstance(gates, dict):
        raise InputError(field, "expected a mapping of check name -> check")
    clean: dict[str, dict] = {}
    for name, spec in gates.items():
        where = f"{field}.{name}"
        if isinstance(spec, str):
            match = _THRESHOLD_EXPR_RE.match(spec)
            if not match:
                raise InputError(where, f"cannot parse {spec!r}; expected e.g. '< 500'")
            spec = {"op": match.group(1), "threshold": float(match.group(2))}
        if not isinstance(spec, dict):
            raise InputError(where, f"expected {{op, threshold, warn}}, got {spec!r}")
        unknown = set(spec) - _CHECK_KEYS
        if unknown:
            raise InputError(where, f"unknown keys {sorted(unknown)} (known: {', '.join(sorted(_CHECK_KEYS))})")
        metric = spec.get("metric", name)
        if metric not in GATE_METRICS:
            raise InputError(where if "metric" not in spec else f"{where}.metric",
                             f"unknown metric (known: {', '.join(GATE_METRICS)})")
        op = spec.get("op", default_op(metric))
        if op not in GATE_OPS:
            raise InputError(f"{where}.op", f"must be one of {' '.join(GATE_OPS)}, got {op!r}")
        check: dict[str, Any] = {"op": op}
        if metric != name:
            check["metric"] = metric
        relative = _relative(spec.get("threshold"), f"{where}.threshold")
        if relative is not None:
            check["relative"] = relative
            check["threshold"] = None
            runs = spec.get("baseline_runs", 5)
            check["baseline_runs"] = _int_in(runs, f"{where}.baseline_runs", 1, 100)
        else:
            check["threshold"] = _number(spec.get("threshold"), f"{where}.threshold")
        if spec.get("warn") is not None:
            if relative is not None:
                warn = _relative(spec["warn"], f"{where}.warn")
                if warn is None:
                    raise InputError(f"{where}.warn", "a relative threshold needs a relative warn, e.g. '+5%'")
                check["warn_relative"], limit, level = warn, relative, warn
            else:
                check["warn"] = level = _number(spec["warn"], f"{where}.warn")
                limit = check["threshold"]
            if not _OPS_PASS[op](level, limit) and level != limit:
                raise InputError(f"{where}.warn", f"{spec['warn']} must be on the passing side of "
                                                  f"{op} {spec['threshold']}, or it can never warn")
        if spec.get("weight", 1) != 1:
            weight = spec["weight"]
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < math.inf:
                raise InputError(f"{where}.weight", f"expected a positive number, got {weight!r}")
            check["weight"] = float(weight)
        if spec.get("key", True) is not True:
            if spec["key"] is not False:
                raise InputError(f"{where}.key", f"expected true or false, got {spec['key']!r}")
            check["key"] = False
        clean[name] = check
    return clean


def _relative(value: Any, field: str) -> float | None:
    """'+10%' -> 10.0; numbers -> None (absolute); anything else is refused."""
    if isinstance(value, str):
        match = _RELATIVE_RE.match(value)
        if not match:
            raise InputError(field, f"expected a number or a percentage like '+10%', got {value!r}")
        return float(match.group(1))
    return None


def _number(value: Any, field: str) -> float:
    # Finite only: a NaN threshold compares false both ways, which switched its check off silently.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(field, f"expected a finite number, got {value!r}")
    return float(value)


def _int_in(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(field, f"expected an integer between {low} and {high}, got {value!r}")
    return value


def validate_shape(shape: dict, field: str, max_vus: int) -> dict:
    """Check a load shape; returns it normalised (durations kept as k6 strings)."""
    executor = shape.get("executor")
    if executor not in EXECUTORS:
        raise InputError(f"{field}.executor", f"must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    clean = {"executor": executor}
    if shape.get("phases") is not None:
        shape = dict(shape)
        clean["phases"] = _validate_phases(shape, f"{field}.phases")
        shape["duration"] = format_duration(sum(clean["phases"].values()))
    if executor == "constant-vus":
        clean["vus"] = _int_in(shape.get("vus"), f"{field}.vus", 1, max_vus)
        parse_duration(shape.get("duration"), f"{field}.duration")
        if parse_duration(shape["duration"], f"{field}.duration") <= 0:
            raise InputError(f"{field}.duration", "must be longer than 0s")
        clean["duration"] = _as_k6_duration(shape["duration"])
    else:
        stages = shape.get("stages")
        if not isinstance(stages, list) or not stages:
            raise InputError(f"{field}.stages", "ramping-vus needs a non-empty list of {duration, target}")
        clean_stages = []
        for index, stage in enumerate(stages):
            where = f"{field}.stages[{index}]"
            if not isinstance(stage, dict) or set(stage) - {"duration", "target"}:
                raise InputError(where, f"expected {{duration, target}}, got {stage!r}")
            parse_duration(stage.get("duration"), f"{where}.duration")
            clean_stages.append({"duration": _as_k6_duration(stage["duration"]),
                                 "target": _int_in(stage.get("target"), f"{where}.target", 0, max_vus)})
        clean["stages"] = clean_stages
        clean["start_vus"] = _int_in(shape.get("start_vus", 0), f"{field}.start_vus", 0, max_vus)
        if shape_duration_s(clean) <= 0:
            raise InputError(f"{field}.stages", "total duration must be longer than 0s")
        clean["graceful_ramp_down"] = _graceful(shape, "graceful_ramp_down", field)
    clean["graceful_stop"] = _graceful(shape, "graceful_stop", field)
    think = shape.get("think_time_s", 0)
    if isinstance(think, bool) or not isinstance(think, (int, float)) or not 0 <= think <= 60:
        raise InputError(f"{field}.think_time_s", f"expected seconds between 0 and 60, got {think!r}")
    clean["think_time_s"] = float(think)
    ratio = shape.get("read_ratio")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))
                              or not 0 <= ratio <= 1):
        raise InputError(f"{field}.read_ratio", f"expected a fraction between 0 and 1, got {ratio!r}")
    clean["read_ratio"] = None if ratio is None else float(ratio)
    unknown = set(shape) - _SHAPE_KEYS
    if unknown:
        raise InputError(field, f"unknown keys {sorted(unknown)}")
    return clean


CHAOS_PHASES = ("baseline", "inject", "recovery")


def _validate_phases(shape: dict, field: str) -> dict[str, float]:
    """Chaos phases {baseline, inject, recovery} (durations) of a constant load; a `duration` scales them."""
    phases = shape["phases"]
    if shape.get("executor") != "constant-vus":
        raise InputError(field, "phases need executor constant-vus (a constant load around the fault)")
    if not isinstance(phases, dict) or set(phases) != set(CHAOS_PHASES):
        raise InputError(field, f"expected {{{', '.join(CHAOS_PHASES)}}} durations, got {phases!r}")
    seconds = {name: parse_duration(phases[name], f"{field}.{name}") for name in CHAOS_PHASES}
    if min(seconds.values()) <= 0:
        raise InputError(field, "every phase must be longer than 0s")
    if shape.get("duration") is not None:  # e.g. an unscoped `duration` override: keep the proportions
        factor = parse_duration(shape["duration"], f"{field}.duration") / sum(seconds.values())
        seconds = {name: round(value * factor, 3) for name, value in seconds.items()}
    return seconds


def _graceful(shape: dict, key: str, field: str) -> str:
    value = shape.get(key)
    if value is None:
        return "5s"
    parse_duration(value, f"{field}.{key}")
    return _as_k6_duration(value)


def _as_k6_duration(value: Any) -> str:
    return format_duration(value) if isinstance(value, (int, float)) else str(value).strip()


def shape_duration_s(shape: dict) -> float:
    if shape.get("phases") and not shape.get("duration"):  # a raw chaos shape from a profile
        return sum(parse_duration(v, "phases") for v in shape["phases"].values())
    if shape.get("executor") == "constant-vus":
        return parse_duration(shape.get("duration", 0), "duration")
    return sum(parse_duration(s.get("duration", 0), "stages.duration") for s in shape.get("stages") or [])


def shape_peak_vus(shape: dict) -> int:
    if shape.get("executor") == "constant-vus":
        return int(shape.get("vus") or 0)
    return max([int(shape.get("start_vus") or 0)] + [int(s["target"]) for s in shape.get("stages") or []])


# ---------------------------------------------------------------------------------------------- plans


def load_profile(profile: str) -> dict[str, Any]:
    if profile not in PROFILES:
        raise InputError("profile", f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
    return read_config_yaml(f"profiles/{profile}.yaml") or {}


def load_gates(test_type: str) -> dict[str, Any]:
    data = read_config_yaml("gates.yaml") or {}
    return dict((data.get("gates") or {}).get(test_type) or {})


def max_run_seconds(test_type: str) -> float:
    """The Airflow execution_timeout of a k6 task: twice the standard shape plus 15 minutes."""
    return 2 * shape_duration_s(load_profile("standard").get(test_type) or {}) + 900


def prometheus_output() -> dict[str, Any] | None:
    """The k6 Prometheus remote-write output's settings when `outputs` includes it, with the credentials of
    PERFPIPE_PROMETHEUS_RW_USERNAME / _PASSWORD (never in the config file); None otherwise."""
    conf = settings()
    if "prometheus" not in conf["outputs"]:
        return None
    return {**conf["prometheus"], "username": os.environ.get("PERFPIPE_PROMETHEUS_RW_USERNAME"),
            "password": os.environ.get("PERFPIPE_PROMETHEUS_RW_PASSWORD")}


def run_timeout_s(plan: TestPlan) -> float:
    """perfpipe's own limit on one k6 run: the shape's duration plus room for ramp-down and flushing."""
    return float(plan.expected_duration_s) * 1.2 + float(settings()["run_timeout_margin_s"])


def load_analysis(test_type: str, target: dict) -> dict[str, Any]:
    """The analysis limits of a test type (gates.yaml `analysis`), with the target's own `analysis` on top."""
    limits = dict(((read_config_yaml("gates.yaml") or {}).get("analysis") or {}).get(test_type) or {})
    for key, value in limits.items():  # gates.yaml's own; a target's are checked by validate_analysis
        if key != "scenarios":
            _limit(value, f"gates.yaml analysis.{test_type}.{key}")
    limits.update((target.get("analysis") or {}).get(test_type) or {})
    return limits


def _limit(value: Any, field: str) -> float:
    """An analysis limit: a finite number >= 0 (rates, ms, seconds, factors; the stress limits also go to k6 as
    the run config's stop_at_break)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(field, f"expected a number >= 0, got {value!r}")
    return float(value)


def validate_analysis(analysis: Any, field: str) -> dict[str, Any]:
    """A target's `analysis:` overrides: known test types and keys, numbers only (chaos scenarios aside)."""
    if not isinstance(analysis, dict):
        raise InputError(field, "expected a mapping of test type -> limits")
    defaults = (read_config_yaml("gates.yaml") or {}).get("analysis") or {}
    for test_type, limits in analysis.items():
        where = f"{field}.{test_type}"
        if test_type not in ANALYSIS_TYPES or not isinstance(limits, dict):
            raise InputError(where, f"expected one of {', '.join(ANALYSIS_TYPES)} with a mapping of limits")
        for key, value in limits.items():
            if key not in (defaults.get(test_type) or {}) or key == "scenarios":
                raise InputError(f"{where}.{key}", f"unknown limit (known: "
                                                   f"{', '.join(k for k in defaults.get(test_type) or {} if k != 'scenarios')})")
            _limit(value, f"{where}.{key}")
    return analysis


def validate_capacity(capacity: Any, field: str) -> dict[str, float]:
    """`required_capacity: {vus: 500, rps: 2000}`: what the stress test's breaking point must reach."""
    if not isinstance(capacity, dict) or not capacity or set(capacity) - {"vus", "rps"}:
        raise InputError(field, f"expected {{vus: N, rps: N}} (either or both), got {capacity!r}")
    if "vus" in capacity:
        _int_in(capacity["vus"], f"{field}.vus", 1, HARD_MAX_VUS)
    if "rps" in capacity and _number(capacity["rps"], f"{field}.rps") <= 0:
        raise InputError(f"{field}.rps", "must be positive")
    return capacity


def _analysis_checks(test_type: str, target: dict[str, Any], peak_vus: int, chaos: dict[str, Any] | None,
                     gates: dict[str, Any]) -> dict[str, str]:
    """Gate checks that come from the target and test type rather than gates.yaml; returns checks to skip."""
    if test_type == "stress":
        # The breaking point must reach the target's required capacity; without one, the ramp must not break.
        required = target.get("required_capacity") or {}
        gates.setdefault("capacity_vus", {"op": ">=", "threshold": required.get("vus", peak_vus)})
        if "rps" in required:
            gates.setdefault("capacity_rps", {"op": ">=", "threshold": required["rps"]})
    if test_type == "chaos" and chaos:
        tolerance = chaos["tolerance"]
        gates.setdefault("inject_error_rate", {"op": "<=", "threshold": tolerance["inject_error_rate"]})
        gates.setdefault("inject_p95_ms", {"op": "<", "threshold": tolerance["inject_p95_ms"]})
        gates.setdefault("recovered_s", {"op": "<=", "threshold": tolerance["recovered_within_s"]})
        for absolute in ("p95_ms", "error_rate"):  # the whole run includes the fault: judged per phase instead
            gates.pop(absolute, None)
    skipped = {}
    if not target.get("metrics_url"):
        skipped.update({name: "the target has no metrics_url" for name, check in gates.items()
                        if (check.get("metric", name) if isinstance(check, dict) else name) in _NEEDS_METRICS_URL})
    return skipped


def chaos_plan(target: dict, scenario: str | None, phases: dict[str, float] | None) -> dict[str, Any] | None:
    """The chaos scenario to run (the Param, else the target's default) with its component and gate tolerance."""
    spec = target.get("chaos")
    if not spec:
        if scenario:
            raise InputError("chaos_scenario", f"target {target['name']!r} declares no chaos scenarios")
        return None
    name = scenario or spec.get("default_scenario")
    if not name:
        return None
    scenarios = spec["scenarios"]
    if name not in scenarios:
        raise InputError("chaos_scenario", f"unknown scenario {name!r} for target {target['name']!r} "
                                           f"(known: {', '.join(sorted(scenarios))})")
    chosen = dict(scenarios[name])
    defaults = (load_analysis("chaos", {}).get("scenarios") or {})
    tolerance = {**(defaults.get("default") or {}), **(defaults.get(name) or {}), **(chosen.pop("tolerance", None) or {})}
    component = chosen["component"]
    # Just this scenario and its component: what perfpipe.app.chaos.parse_chaos needs at run time.
    run_spec = {"components": {component: spec["components"][component]}, "scenarios": {name: chosen},
                "default_scenario": name}
    return {"scenario": name, "component": component, "action": chosen["action"], "spec": run_spec,
            "tolerance": tolerance, "phases_s": phases}


def build_plan(test_type: str, target: dict, profile: str = "quick",
               overrides: dict[str, Any] | None = None, chaos_scenario: str | None = None, *,
               allowed_addresses: tuple[str, ...] = (), script_requirements: dict[str, Any] | None = None) -> TestPlan:
    """The validated plan of one k6 run, built once (frozen). Raises InputError naming the bad field.

    `allowed_addresses`: what the allowlist check resolved the target to; `script_requirements`: what `k6 inspect`
    read from a user's script (its own VUs and duration, held to the target's caps)."""
    if test_type not in TEST_TYPES:
        raise InputError("test_type", f"unknown test type {test_type!r} (known: {', '.join(TEST_TYPES)})")
    shape = dict(load_profile(profile).get(test_type) or {})
    if not shape:
        raise InputError("profile", f"profile {profile!r} has no {test_type!r} section")
    gates = load_gates(test_type)
    # Target-specific gate checks sit between the defaults and per-run overrides.
    gates.update((target.get("gates") or {}).get(test_type) or {})
    apply_overrides(test_type, shape, gates, overrides or {})
    _check_vus_override_cap(test_type, overrides or {}, target_vu_cap(target))
    clean_shape = validate_shape(shape, f"{profile}.{test_type}", target_vu_cap(target))
    expected_duration_s, peak_vus = shape_duration_s(clean_shape), shape_peak_vus(clean_shape)
    duration_field = f"{profile}.{test_type}.duration"
    if target.get("script") and script_requirements is not None:
        # A user's script sets its own load: hold it to the same caps, and time the run by its own duration.
        peak_vus = int(script_requirements.get("maxVUs") or 0)
        cap = target_vu_cap(target)
        if peak_vus > cap:
            raise InputError("script", f"the script's options reach {peak_vus} VUs, above the target's cap of {cap}")
        check_rate_cap(target, script_requirements.get("scenarios") or {}, "script")
        expected_duration_s = parse_duration(script_requirements.get("totalDuration") or "0s", "script.duration")
        duration_field = "script"
    chaos = None
    if test_type == "chaos":
        chaos = chaos_plan(target, chaos_scenario, clean_shape.get("phases"))
        if chaos and not clean_shape.get("phases"):
            raise InputError(f"{profile}.chaos.phases", "a chaos scenario needs the load shape's phases "
                                                        "{baseline, inject, recovery}")
    skipped_checks = _analysis_checks(test_type, target, peak_vus, chaos, gates)
    plan = TestPlan(test_type=test_type, profile=profile, target=target, shape=clean_shape,
                    gates=validate_gates(gates, f"thresholds.{test_type}"), expected_duration_s=expected_duration_s,
                    peak_vus=peak_vus, analysis=load_analysis(test_type, target), skipped_checks=skipped_checks,
                    chaos=chaos, allowed_addresses=tuple(allowed_addresses))
    check_run_fits(plan, duration_field)
    check_rate_cap(target, {test_type: clean_shape}, f"{profile}.{test_type}")
    return plan


def _check_vus_override_cap(test_type: str, overrides: dict[str, Any], cap: int) -> None:
    """A `vus` override above the target's cap is refused naming the user's key (the one that applies: a scoped
    key beats the plain one), not the profile field it landed on."""
    for key in (f"{test_type}.vus", "vus"):
        value = overrides.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > cap:
            raise InputError(f"overrides.{key}", f"expected an integer between 1 and {cap}, got {value}")
        if key in overrides:
            return


def target_vu_cap(target: dict) -> int:
    """The most VUs any run may put on this target: its own `max_vus`, never above HARD_MAX_VUS."""
    return min(int(target.get("max_vus") or HARD_MAX_VUS), HARD_MAX_VUS)


ARRIVAL_RATE_EXECUTORS = ("constant-arrival-rate", "ramping-arrival-rate")


def scenario_peak_rate(scenario: dict[str, Any], field: str) -> float | None:
    """Peak iterations per second an arrival-rate scenario is configured for (None for VU-based executors).

    Every iteration sends at least one request, so a peak above the target's `max_rps` can never be honoured:
    k6's --rps would silently throttle it and the run would not measure what it claims.
    """
    executor = scenario.get("executor")
    if executor not in ARRIVAL_RATE_EXECUTORS:
        return None
    time_unit = parse_duration(scenario.get("timeUnit") or scenario.get("time_unit") or "1s", f"{field}.timeUnit")
    if time_unit <= 0:
        raise InputError(f"{field}.timeUnit", "must be longer than 0s")
    if executor == "constant-arrival-rate":
        rates = [scenario.get("rate")]
    else:
        rates = [scenario.get("startRate", scenario.get("start_rate", 0))] + \
                [st.get("target") for st in scenario.get("stages") or [] if isinstance(st, dict)]
    clean = []
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate < 0:
            raise InputError(f"{field}.rate", f"expected a non-negative number, got {rate!r}")
        clean.append(float(rate))
    return max(clean) / time_unit


def check_rate_cap(target: dict, scenarios: dict[str, dict], field: str) -> None:
    """Refuse arrival-rate scenarios whose configured rate exceeds the target's `max_rps` (k6 --rps enforces the
    cap at run time; this refuses, before any request, a plan that could only be throttled)."""
    cap = target.get("max_rps")
    if not cap:
        return
    for name, scenario in (scenarios or {}).items():
        if not isinstance(scenario, dict):
            continue
        where = field if len(scenarios) == 1 and name in TEST_TYPES else f"{field}.scenarios.{name}"
        peak = scenario_peak_rate(scenario, where)
        if peak is not None and peak > cap:
            raise InputError(f"{where}.rate", f"{peak:g} iterations/s exceeds the target's max_rps of {cap} "
                                              f"(targets.{target.get('name')}.max_rps)")


def check_run_fits(plan: TestPlan, field: str) -> None:
    """Refuse a plan whose k6 run could outlast its task's Airflow execution_timeout."""
    if run_timeout_s(plan) > max_run_seconds(plan.test_type):
        raise InputError(field, f"{plan.expected_duration_s:.0f}s is longer than a {plan.test_type} run may last")
