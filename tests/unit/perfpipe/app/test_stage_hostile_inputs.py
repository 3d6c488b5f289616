"""Hostile and careless input, table-driven (issue 13): what a new user, or someone probing, would try. Each case is
refused by the pre-flight (`prepare_plan`, in-process) with an InputError naming the field, and the counting loopback
target of test_stage_bad_inputs (same harness, same assertion) saw no request. Findings of the issue are marked
FINDING: each once passed, crashed with a traceback, or ran load before being refused.

Files are real files in tmp_path, read by the product's own YAML reader; `--set` values go through the CLI's own
parser (parse_set_arguments), as `perfpipe run --set key=value` hands them to the pre-flight.
"""

from __future__ import annotations

import json

import pytest

from perfpipe.app.config import parse_set_arguments
from perfpipe.app.stage import prepare_plan
from perfpipe.core.model.base import (MAX_BODY_BYTES, MAX_DESCRIPTION_CHARS, MAX_FILE_BYTES, MAX_HEADER_VALUE_CHARS,
                                      MAX_HEADERS, MAX_REQUESTS, MAX_STAGES, MAX_URL_CHARS)
from tests.unit.perfpipe.app.test_stage_bad_inputs import (CASES, REQ, assert_refused_before_any_request,
                                                           counting_target, inline, write_text, write_yaml)

__all__ = ["counting_target"]  # the shared module-scoped fixture

NAN, INF = float("nan"), float("inf")


def over(u, **overrides):
    """Params with a quick profile and these overrides."""
    return {"inline_target": inline(u), "profile": "quick", "overrides": overrides}


def sets(*pairs):
    """Params with overrides as the CLI's `--set` parses them."""
    return lambda u, t: {"inline_target": inline(u), "profile": "quick", "overrides": parse_set_arguments(list(pairs))}


def req(u, **fields):
    return {"inline_target": {**inline(u), "requests": [{"path": "/", **fields}]}, "profile": "quick"}


def tgt(u, **fields):
    return {"inline_target": inline(u, **fields), "profile": "quick"}


def url(base):
    return lambda u, t: {"inline_target": inline(base.replace("PORT", u.rsplit(":", 1)[1])), "profile": "quick"}


def header(name, value):
    return lambda u, t: tgt(u, headers={name: value})


def raw_file(name, data: bytes):
    """A target file of these exact bytes."""
    def params(u, t):
        path = t / name
        path.write_bytes(data.replace(b"URL", u.encode()))
        return {"target": str(path), "profile": "quick"}
    return params


def yaml_file(name, text):
    return raw_file(name, text.encode("utf-8"))


GOOD_YAML = "base_url: URL\nrequests:\n  - {name: home, path: /}\n"


def alias_bomb(levels=12):
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return GOOD_YAML + "\n".join(lines) + "\n"


def nested_list(depth):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


H = [  # (id, test type, params builder(url, tmp_path), extra env, expected field; '*' = ends with)
    # --- NaN and infinity, in every numeric field (a NaN compares false: a NaN threshold switched its check off)
    ("FINDING --set thresholds.p95_ms=.nan", "smoke", sets("thresholds.p95_ms=.nan"), {},
     "overrides.thresholds.p95_ms"),
    ("--set thresholds.p95_ms=.inf", "smoke", sets("thresholds.p95_ms=.inf"), {}, "overrides.thresholds.p95_ms"),
    ("--set thresholds.p95_ms=-.inf", "smoke", sets("thresholds.p95_ms=-.inf"), {}, "overrides.thresholds.p95_ms"),
    ("FINDING --set duration=.inf", "smoke", sets("duration=.inf"), {}, "overrides.duration"),
    ("FINDING --set duration=.nan", "smoke", sets("duration=.nan"), {}, "overrides.duration"),
    ("--set vus=.nan", "smoke", sets("vus=.nan"), {}, "overrides.vus"),
    ("--set vus=.inf", "smoke", sets("vus=.inf"), {}, "overrides.vus"),
    ("start_vus nan", "load", lambda u, t: over(u, start_vus=NAN), {}, "overrides.start_vus"),
    ("think_time_s nan", "smoke", lambda u, t: over(u, think_time_s=NAN), {}, "overrides.think_time_s"),
    ("think_time_s inf", "smoke", lambda u, t: over(u, think_time_s=INF), {}, "overrides.think_time_s"),
    ("read_ratio nan", "load", lambda u, t: over(u, read_ratio=NAN), {}, "overrides.read_ratio"),
    ("graceful_stop inf", "smoke", lambda u, t: over(u, graceful_stop=INF), {}, "overrides.graceful_stop"),
    ("graceful_ramp_down nan", "load", lambda u, t: over(u, graceful_ramp_down=NAN), {},
     "overrides.graceful_ramp_down"),
    ("stage duration inf", "load", lambda u, t: over(u, stages=[{"duration": INF, "target": 1}]), {},
     "overrides.stages[0].duration"),
    ("stage target nan", "load", lambda u, t: over(u, stages=[{"duration": "1s", "target": NAN}]), {},
     "overrides.stages[0].target"),
    ("chaos phase inf", "chaos", lambda u, t: over(u, phases={"baseline": INF, "inject": "1s", "recovery": "1s"}),
     {}, "overrides.phases.baseline"),
    ("chaos phase nan", "chaos", lambda u, t: over(u, phases={"baseline": "1s", "inject": NAN, "recovery": "1s"}),
     {}, "overrides.phases.inject"),
    ("check threshold part nan", "smoke", lambda u, t: over(u, **{"thresholds.p95_ms.threshold": NAN}), {},
     "overrides.thresholds.p95_ms.threshold"),
    ("check warn part inf", "smoke", lambda u, t: over(u, **{"thresholds.p95_ms.warn": INF}), {},
     "overrides.thresholds.p95_ms.warn"),
    ("check weight part nan", "smoke", lambda u, t: over(u, **{"thresholds.p95_ms.weight": NAN}), {},
     "overrides.thresholds.p95_ms.weight"),
    ("check weight part inf", "smoke", lambda u, t: over(u, **{"thresholds.p95_ms.weight": INF}), {},
     "overrides.thresholds.p95_ms.weight"),
    ("check baseline_runs nan", "smoke", lambda u, t: over(u, **{"thresholds.p95_ms.baseline_runs": NAN}), {},
     "overrides.thresholds.p95_ms.baseline_runs"),
    ("whole check mapping with nan threshold", "smoke",
     lambda u, t: over(u, **{"thresholds.p95_ms": {"threshold": NAN}}), {}, "overrides.thresholds.p95_ms.threshold"),
    ("duration text of 400 digits (inf seconds)", "smoke", lambda u, t: over(u, duration="9" * 400 + "s"), {},
     "overrides.duration"),
    ("request weight inf", "smoke", lambda u, t: req(u, weight=INF), {}, "target.requests[0].weight"),
    ("max_vus nan", "smoke", lambda u, t: tgt(u, max_vus=NAN), {}, "target.max_vus"),
    ("max_rps inf", "smoke", lambda u, t: tgt(u, max_rps=INF), {}, "target.max_rps"),
    ("required_capacity.vus nan", "stress", lambda u, t: tgt(u, required_capacity={"vus": NAN}), {},
     "target.required_capacity.vus"),
    ("required_capacity.rps inf", "stress", lambda u, t: tgt(u, required_capacity={"rps": INF}), {},
     "target.required_capacity.rps"),
    ("target gate nan", "smoke", lambda u, t: tgt(u, gates={"smoke": {"p95_ms": NAN}}), {},
     "target.gates.smoke.p95_ms"),
    ("target gate threshold inf", "smoke", lambda u, t: tgt(u, gates={"smoke": {"p95_ms": {"threshold": INF}}}), {},
     "target.gates.smoke.p95_ms.threshold"),
    ("analysis limit nan", "stress", lambda u, t: tgt(u, analysis={"stress": {"abort_after_s": NAN}}), {},
     "target.analysis.stress.abort_after_s"),
    ("expect_status nan", "smoke", lambda u, t: req(u, expect_status=NAN), {}, "target.requests[0].expect_status"),
    ("body with a nan", "smoke", lambda u, t: req(u, method="POST", body={"a": NAN}), {}, "target.requests[0].body"),
    ("body with an inf deep inside", "smoke", lambda u, t: req(u, method="POST", body=[{"a": [1, INF]}]), {},
     "target.requests[0].body"),
    ("target file with .nan weight", "smoke",
     yaml_file("nanw.yaml", "base_url: URL\nrequests:\n  - {path: /, weight: .nan}\n"), {},
     "*/nanw.yaml.requests[0].weight"),
    # --- types
    ("vus true", "smoke", lambda u, t: over(u, vus=True), {}, "overrides.vus"),
    ("vus a list", "smoke", lambda u, t: over(u, vus=[1]), {}, "overrides.vus"),
    ("vus 2.5", "smoke", lambda u, t: over(u, vus=2.5), {}, "overrides.vus"),
    ("duration true", "smoke", lambda u, t: over(u, duration=True), {}, "overrides.duration"),
    ("stages a number", "load", lambda u, t: over(u, stages=5), {}, "overrides.stages"),
    ("stages a mapping", "load", lambda u, t: over(u, stages={"10s": 5}), {}, "overrides.stages"),
    ("read_ratio as text", "load", lambda u, t: over(u, read_ratio="0.5"), {}, "overrides.read_ratio"),
    ("check key as text", "smoke", lambda u, t: over(u, **{"thresholds.p95_ms.key": "yes"}), {},
     "overrides.thresholds.p95_ms.key"),
    ("overrides a list", "smoke", lambda u, t: {"inline_target": inline(u), "overrides": ["vus=3"]}, {},
     "overrides"),
    ("base_url a number", "smoke", lambda u, t: {"inline_target": {**inline(u), "base_url": 8080}}, {},
     "target.base_url"),
    ("requests a mapping", "smoke", lambda u, t: {"inline_target": {**inline(u), "requests": {"path": "/"}}}, {},
     "target.requests"),
    ("requests empty", "smoke", lambda u, t: {"inline_target": {**inline(u), "requests": []}}, {}, "target.requests"),
    ("request path a number", "smoke", lambda u, t: req(u, path=1), {}, "target.requests[0].path"),
    ("request method a list", "smoke", lambda u, t: req(u, method=["GET"]), {}, "target.requests[0].method"),
    ("request name a number", "smoke", lambda u, t: req(u, name=7), {}, "target.requests[0].name"),
    ("expect_status as text", "smoke", lambda u, t: req(u, expect_status="200"), {},
     "target.requests[0].expect_status"),
    ("expect_status empty list", "smoke", lambda u, t: req(u, expect_status=[]), {},
     "target.requests[0].expect_status"),
    ("body a number", "smoke", lambda u, t: req(u, method="POST", body=5), {}, "target.requests[0].body"),
    ("headers a list", "smoke", lambda u, t: tgt(u, headers=["X-A: 1"]), {}, "target.headers"),
    ("header value a number", "smoke", header("X-A", 1), {}, "target.headers.X-A"),
    ("description a list", "smoke", lambda u, t: tgt(u, description=["a"]), {}, "target.description"),
    ("production 1", "smoke", lambda u, t: tgt(u, production=1), {}, "target.production"),
    ("max_vus as text", "smoke", lambda u, t: tgt(u, max_vus="10"), {}, "target.max_vus"),
    ("max_vus 1.5", "smoke", lambda u, t: tgt(u, max_vus=1.5), {}, "target.max_vus"),
    ("YAML timestamp as a description", "smoke", yaml_file("ts.yaml", GOOD_YAML + "description: 2001-01-01\n"), {},
     "*/ts.yaml.description"),
    ("YAML binary as a base_url", "smoke",
     yaml_file("bin.yaml", "base_url: !!binary aHR0cDovLzEyNy4wLjAuMQ==\nrequests: [{path: /}]\n"), {},
     "*/bin.yaml.base_url"),
    # --- names: a safe charset and length (they become tags, file names, InfluxQL)
    ("FINDING request name with a newline", "smoke", lambda u, t: req(u, name="home\nevil,x=1 y=2"), {},
     "target.requests[0].name"),
    ("request name with a CR", "smoke", lambda u, t: req(u, name="home\r"), {}, "target.requests[0].name"),
    ("request name with a tab", "smoke", lambda u, t: req(u, name="a\tb"), {}, "target.requests[0].name"),
    ("request name with U+2028", "smoke", lambda u, t: req(u, name="a\u2028b"), {}, "target.requests[0].name"),
    ("request name with a C1 control", "smoke", lambda u, t: req(u, name="a\x85b"), {}, "target.requests[0].name"),
    ("request name with a NUL", "smoke", lambda u, t: req(u, name="a\x00"), {}, "target.requests[0].name"),
    ("request name ending in a backslash", "smoke", lambda u, t: req(u, name="a\\"), {}, "target.requests[0].name"),
    ("request name of 129 characters", "smoke", lambda u, t: req(u, name="n" * 129), {}, "target.requests[0].name"),
    ("request name empty", "smoke", lambda u, t: req(u, name=""), {}, "target.requests[0].name"),
    ("request names repeated", "smoke",
     lambda u, t: {"inline_target": {**inline(u), "requests": [{"name": "a", "path": "/"},
                                                               {"name": "a", "path": "/b"}]}}, {}, "target.requests"),
    ("target name with a space", "smoke", lambda u, t: tgt(u, name="my target"), {}, "target.name"),
    ("target name with a newline", "smoke", lambda u, t: tgt(u, name="demo\n"), {}, "target.name"),
    ("target name of 65 characters", "smoke", lambda u, t: tgt(u, name="t" * 65), {}, "target.name"),
    ("target name with a slash", "smoke", lambda u, t: tgt(u, name="../etc"), {}, "target.name"),
    ("target name with a quote", "smoke", lambda u, t: tgt(u, name="a'b"), {}, "target.name"),
    ("target name in Cyrillic", "smoke", lambda u, t: tgt(u, name="демо"), {}, "target.name"),
    ("file target named by an odd file name", "smoke",
     yaml_file("my target.yaml", GOOD_YAML), {}, "*/my target.yaml.name"),
    ("file's targets: key with a newline", "smoke",
     yaml_file("keyed.yaml", 'targets:\n  "a\\nb": {base_url: URL, requests: [{path: /}]}\n'), {},
     "*:targets.a\nb.name"),
    ("check name with a dash", "smoke", lambda u, t: over(u, **{"thresholds.p95-ms": 3}), {},
     "overrides.thresholds.p95-ms"),
    ("check name of 65 characters", "smoke", lambda u, t: over(u, **{f"thresholds.{'c' * 65}": 3}), {},
     f"overrides.thresholds.{'c' * 65}"),
    ("request path with a backslash", "smoke", lambda u, t: req(u, path="/a\\b"), {}, "target.requests[0].path"),
    ("request path with a CR LF", "smoke", lambda u, t: req(u, path="/a\r\nHost: evil"), {},
     "target.requests[0].path"),
    # --- headers as HTTP allows them
    ("header name with a space", "smoke", header("X Key", "1"), {}, "target.headers.X Key"),
    ("header name with a colon", "smoke", header("X-Key:", "1"), {}, "target.headers.X-Key:"),
    ("header name empty", "smoke", header("", "1"), {}, "target.headers."),
    ("header name with a newline", "smoke", header("X-A\nX-B", "1"), {}, "target.headers.X-A\nX-B"),
    ("header value with CR LF", "smoke", header("X-A", "1\r\nX-Injected: 1"), {}, "target.headers.X-A"),
    ("header value with LF", "smoke", header("X-A", "1\nX-Injected: 1"), {}, "target.headers.X-A"),
    ("header value with a NUL", "smoke", header("X-A", "1\x00"), {}, "target.headers.X-A"),
    ("header value with a control character", "smoke", header("X-A", "a\x01b"), {}, "target.headers.X-A"),
    ("header value with DEL", "smoke", header("X-A", "a\x7f"), {}, "target.headers.X-A"),
    ("header value too long", "smoke", header("X-A", "v" * (MAX_HEADER_VALUE_CHARS + 1)), {}, "target.headers.X-A"),
    ("header secret prefix with CR LF", "smoke", header("Authorization", {"env": "PERFPIPE_HOSTILE_TOKEN",
                                                                          "prefix": "Bearer\r\n"}),
     {"PERFPIPE_HOSTILE_TOKEN": "t"}, "target.headers.Authorization"),
    ("header secret env name with a dash", "smoke", header("Authorization", {"env": "MY-TOKEN"}), {},
     "target.headers.Authorization"),
    ("header secret connection id with a space", "smoke", header("Authorization", {"connection": "my api"}), {},
     "target.headers.Authorization"),
    ("header secret with an unknown key", "smoke", header("Authorization", {"env": "T", "default": "x"}), {},
     "target.headers.Authorization"),
    ("header secret whose value has CR LF", "smoke", header("Authorization", {"env": "PERFPIPE_HOSTILE_TOKEN"}),
     {"PERFPIPE_HOSTILE_TOKEN": "t\r\nX-Injected: 1"}, "headers.Authorization"),
    (f"{MAX_HEADERS + 1} headers", "smoke",
     lambda u, t: tgt(u, headers={f"X-{i}": "1" for i in range(MAX_HEADERS + 1)}), {}, "target.headers"),
    # --- sizes: bodies, descriptions, files, stage lists, URLs
    ("FINDING description of 50 MB", "smoke", lambda u, t: tgt(u, description="d" * 50_000_000), {},
     "target.description"),
    ("description one character too long", "smoke", lambda u, t: tgt(u, description="d" * (MAX_DESCRIPTION_CHARS + 1)),
     {}, "target.description"),
    ("FINDING body of 20 MB", "smoke", lambda u, t: req(u, method="POST", body="b" * 20_000_000), {},
     "target.requests[0].body"),
    ("mapping body above the limit", "smoke",
     lambda u, t: req(u, method="POST", body={"k": ["x" * 1000] * (MAX_BODY_BYTES // 1000 + 1)}), {},
     "target.requests[0].body"),
    ("body nested 5000 deep", "smoke", lambda u, t: req(u, method="POST", body=nested_list(5000)), {},
     "target.requests[0].body"),
    (f"{MAX_REQUESTS + 1} requests", "smoke",
     lambda u, t: {"inline_target": {**inline(u), "requests": [{"name": f"r{i}", "path": "/"}
                                                               for i in range(MAX_REQUESTS + 1)]}}, {},
     "target.requests"),
    ("inline target above the document limit", "smoke",
     lambda u, t: {"inline_target": {**inline(u), "requests": [
         {"name": f"r{i}", "path": "/", "method": "POST", "body": "b" * 60_000} for i in range(20)]}}, {}, "target"),
    ("target file above the file limit", "smoke",
     yaml_file("huge.yaml", GOOD_YAML + "description: '" + "d" * MAX_FILE_BYTES + "'\n"), {}, "target"),
    (f"{MAX_STAGES + 1} stages as a list", "load",
     lambda u, t: over(u, stages=[{"duration": "1s", "target": 1}] * (MAX_STAGES + 1)), {}, "overrides.stages"),
    (f"{MAX_STAGES + 1} stages in the compact form", "load", sets("stages=" + ",".join(["1s:1"] * (MAX_STAGES + 1))),
     {}, "overrides.stages"),
    ("compact stages padded to 1 MB", "load", lambda u, t: over(u, stages="1s:1" + " " * 1_000_000), {},
     "overrides.stages"),
    ("--set value of 1 MB", "smoke", lambda u, t: {"inline_target": inline(u), "overrides": parse_set_arguments(
        ["vus=" + "9" * 1_000_000])}, {}, "--set vus"),
    ("base_url longer than the URL limit", "smoke", lambda u, t: tgt(u, base_url=u + "/" + "p" * MAX_URL_CHARS), {},
     "target.base_url"),
    ("request path longer than the URL limit", "smoke", lambda u, t: req(u, path="/" + "p" * MAX_URL_CHARS), {},
     "target.requests[0].path"),
    # --- YAML: aliases, bombs, tags, encodings, broken files
    ("FINDING YAML alias bomb (9^12 nodes)", "smoke", yaml_file("bomb.yaml", alias_bomb()), {}, "target"),
    ("YAML alias of a scalar", "smoke", yaml_file("alias.yaml", GOOD_YAML + "description: &d x\nname: *d\n"), {},
     "target"),
    ("YAML merge key", "smoke",
     yaml_file("merge.yaml", "base: &b {base_url: URL}\n<<: *b\nrequests: [{path: /}]\n"), {}, "target"),
    ("YAML recursive alias", "smoke", yaml_file("rec.yaml", GOOD_YAML + "description: &r [*r]\n"), {}, "target"),
    ("YAML nested 100 deep", "smoke", yaml_file("deep.yaml", GOOD_YAML + "description: " + "[" * 100 + "]" * 100),
     {}, "target"),
    ("YAML nested 30000 deep", "smoke", yaml_file("deeper.yaml", GOOD_YAML + "description: " + "[" * 30000), {},
     "target"),
    ("YAML python tag", "smoke",
     yaml_file("py.yaml", "base_url: !!python/object/apply:os.system ['touch /tmp/x']\nrequests: [{path: /}]\n"),
     {}, "target"),
    ("YAML two documents", "smoke", yaml_file("two.yaml", GOOD_YAML + "---\n" + GOOD_YAML), {}, "target"),
    ("YAML unclosed quote", "smoke", yaml_file("quote.yaml", "base_url: 'URL\nrequests: [{path: /}]\n"), {},
     "target"),
    ("YAML tab indentation", "smoke", yaml_file("tabs.yaml", "base_url: URL\nrequests:\n\t- {path: /}\n"), {},
     "target"),
    ("FINDING target file not UTF-8 (Latin-1)", "smoke",
     raw_file("latin1.yaml", b"base_url: URL\nrequests:\n  - {name: caf\xe9, path: /}\n"), {}, "target"),
    ("target file in UTF-16", "smoke", raw_file("utf16.yaml", GOOD_YAML.encode("utf-16")), {}, "target"),
    ("target file with a NUL byte", "smoke", raw_file("nul.yaml", GOOD_YAML.encode() + b"description: a\x00b\n"),
     {}, "target"),
    ("target file empty", "smoke", raw_file("empty.yaml", b""), {}, "target"),
    ("target file a list", "smoke", yaml_file("list.yaml", "- base_url: URL\n"), {}, "target"),
    ("target file is a folder", "smoke", lambda u, t: {"target": str((t / "folder.yaml").mkdir() or t / "folder.yaml")},
     {}, "target"),
    ("--set value with an alias", "load", sets("stages=[&s {duration: 1s, target: 1}, *s]"), {}, "--set stages"),
    # --- URLs
    ("FINDING IPv4 in brackets", "smoke", url("http://[127.0.0.2]"), {}, "target.base_url"),
    ("IPv4 in brackets with a port", "smoke", url("http://[127.0.0.1]:PORT"), {}, "target.base_url"),
    ("bad IPv6 in brackets", "smoke", url("http://[1::2::3]:PORT"), {}, "target.base_url"),
    ("empty brackets", "smoke", url("http://[]:PORT"), {}, "target.base_url"),
    ("IPv6 with a zone", "smoke", url("http://[fe80::1%25eth0]:PORT"), {}, "target.base_url"),
    ("file URL", "smoke", url("file:///etc/passwd"), {}, "target.base_url"),
    ("javascript URL", "smoke", url("javascript:alert(1)"), {}, "target.base_url"),
    ("upper-case scheme", "smoke", url("HTTP://127.0.0.1:PORT"), {}, "target.base_url"),
    ("no scheme", "smoke", url("127.0.0.1:PORT"), {}, "target.base_url"),
    ("no host", "smoke", url("http:///api"), {}, "target.base_url"),
    ("port 0", "smoke", url("http://127.0.0.1:0"), {}, "target.base_url"),
    ("port 65536", "smoke", url("http://127.0.0.1:65536"), {}, "target.base_url"),
    ("port with letters", "smoke", url("http://127.0.0.1:PORTx"), {}, "target.base_url"),
    ("URL with a space", "smoke", url("http://127.0.0.1:PORT/a b"), {}, "target.base_url"),
    ("URL with a newline at the end", "smoke", url("http://127.0.0.1:PORT\n"), {}, "target.base_url"),
    ("URL with a control character", "smoke", url("http://127.0.0.1:PORT/\x01"), {}, "target.base_url"),
    ("URL with user info", "smoke", url("http://admin@127.0.0.1:PORT"), {}, "target.base_url"),
    ("URL with a non-ASCII host", "smoke", url("http://ехаmple.com:PORT"), {}, "target.base_url"),
    ("URL with a percent-encoded host", "smoke", url("http://127.0.0.1%2f:PORT"), {}, "target.base_url"),
    ("URL host of 254 characters", "smoke", url("http://" + "h" * 254 + ":PORT"), {}, "target.base_url"),
    # --- unknown keys
    ("unknown request key", "smoke", lambda u, t: req(u, headers={"X": "1"}), {}, "target.requests[0].headers"),
    ("unknown required_capacity key", "stress", lambda u, t: tgt(u, required_capacity={"users": 5}), {},
     "target.required_capacity.users"),
    ("misspelt requests key", "smoke", lambda u, t: {"inline_target": {"base_url": u, "request": REQ}}, {},
     "target.request"),
    ("unknown scoped override", "load", lambda u, t: over(u, **{"load.vu": 3}), {}, "overrides.load.vu"),
    ("unknown check part", "smoke", lambda u, t: over(u, **{"thresholds.p95_ms.limit": 3}), {},
     "overrides.thresholds.p95_ms.limit"),
    ("unknown phase", "chaos", lambda u, t: over(u, phases={"baseline": "1s", "inject": "1s", "recovery": "1s",
                                                             "cooldown": "1s"}), {}, "overrides.phases.cooldown"),
    ("unknown stage key", "load", lambda u, t: over(u, stages=[{"duration": "1s", "target": 1, "vus": 2}]), {},
     "overrides.stages[0].vus"),
    ("unknown key in a target file", "smoke", yaml_file("extra.yaml", GOOD_YAML + "retries: 3\n"), {},
     "*/extra.yaml.retries"),
    # --- templates
    ("template with one bound", "smoke", lambda u, t: req(u, path="/{{int:1}}"), {}, "target.requests[0].path"),
    ("template with words for bounds", "smoke", lambda u, t: req(u, path="/{{int:a:b}}"), {},
     "target.requests[0].path"),
    ("template reading the environment", "smoke", lambda u, t: req(u, path="/{{__ENV.INFLUXDB_PASSWORD}}"), {},
     "target.requests[0].path"),
    ("template in base_url's path", "smoke", lambda u, t: tgt(u, base_url=u + "/{{nope}}"), {}, "target.base_url"),
    ("template deep in a body list", "smoke", lambda u, t: req(u, method="POST", body={"a": [{"b": "{{vus}}"}]}), {},
     "target.requests[0].body.a[0].b"),
    # --- allowlist and production
    ("cloud metadata address", "smoke", url("http://169.254.169.254"), {}, "target.base_url"),
    ("unspecified address", "smoke", url("http://0.0.0.0:PORT"), {}, "target.base_url"),
    ("IPv4-mapped IPv6 outside the allowlist", "smoke", url("http://[::ffff:192.0.2.10]:8080"), {},
     "target.base_url"),
    ("private address outside the allowlist", "smoke", url("http://10.0.0.1:8080"), {}, "target.base_url"),
    ("allowlisted private address without production", "smoke", url("http://10.0.0.1:8080"),
     {"PERFPIPE_ALLOWLIST": "127.0.0.0/8,10.0.0.0/8"}, "target.production"),
    ("production: false on an allowlisted outside host", "smoke",
     lambda u, t: tgt("http://192.0.2.10:8080", production=False), {"PERFPIPE_ALLOWLIST": "127.0.0.0/8,192.0.2.0/24"},
     "target.production"),
    # --- scripts (through the real `k6 inspect`: init context only, no request). k6 owns its scenario names' rule
    # (letters, digits, '_', '-'; they become tags): its refusal (exit 104) is bad input, not an infrastructure error.
    ("script scenario name with a newline", "smoke",
     lambda u, t: {"inline_target": {"name": "s", "base_url": u, "script": write_text(t, "tagged.js", (
         "import http from 'k6/http';\nexport const options = { scenarios: { 'a\\nevil,x=1': {\n"
         "  executor: 'constant-vus', vus: 1, duration: '1s' } } };\n"
         "export default function () { http.get(__ENV.BASE_URL); }\n"))}}, {}, "script"),
    # --- run-time chaos: components come only from config/targets.yaml
    ("inline chaos without components", "chaos",
     lambda u, t: tgt(u, chaos={"scenarios": {"s": {"component": "c", "action": "stop"}}}), {}, "target.chaos"),
    ("inline chaos as a list", "chaos", lambda u, t: tgt(u, chaos=["stop"]), {}, "target.chaos"),
    ("chaos container in a target file", "chaos",
     lambda u, t: {"target": write_yaml(t, "docker.yaml", inline(u, chaos={"components": {"db": {
         "kind": "container", "container": "postgres"}}}))}, {}, "*/docker.yaml.chaos.components.db.container"),
]

ALL = CASES + H


def test_the_hostile_table_is_large_enough():
    """Issue 13: at least 150 hostile or careless inputs in all (this table and test_stage_bad_inputs'); README's
    Safety section gives the total."""
    assert len(ALL) >= 150 and len({c[0] for c in ALL}) == len(ALL), len(ALL)


def test_a_big_but_allowed_input_still_passes(counting_target):
    """The limits are not off by one against the user: at the limits, the pre-flight accepts."""
    body = {"k": "x" * (MAX_BODY_BYTES - 20)}
    assert len(json.dumps(body, separators=(",", ":"))) <= MAX_BODY_BYTES
    target = {**inline(counting_target.url), "description": "d" * MAX_DESCRIPTION_CHARS,
              "headers": {"X-Long": "v" * MAX_HEADER_VALUE_CHARS, "X-Tab": "a\tb"},
              "requests": [{"name": "café, a=b GET /x", "method": "POST", "path": "/", "body": body}]}
    plan = prepare_plan("load", {"inline_target": target, "profile": "quick",
                                 "overrides": {"stages": ",".join(["1s:1"] * MAX_STAGES)}}, check_influx=False)
    assert len(plan.shape["stages"]) == MAX_STAGES
    assert counting_target.requests == 0


@pytest.mark.parametrize("name, test_type, params, env, field", H, ids=[c[0] for c in H])
def test_hostile_input_is_refused_naming_the_field_before_any_request(counting_target, tmp_path, monkeypatch,
                                                                       name, test_type, params, env, field):
    assert_refused_before_any_request(counting_target, tmp_path, monkeypatch, name, test_type, params, env, field)
