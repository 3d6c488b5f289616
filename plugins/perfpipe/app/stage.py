"""One test stage, step by step: plan -> (k6 run) -> evaluate -> record -> verdict.

Plain functions over plain dicts so the DAG tasks, the CLI's pre-flight check and the tests share one
implementation. The k6 run itself lives in perfpipe.core.k6.run (perfpipe's setup of it: perfpipe.app.k6_setup).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfpipe.app.analysis import analyse
from perfpipe.app.config import build_plan, prometheus_output, settings
from perfpipe.app.pipeline import happy_path
from perfpipe.core.errors import InfrastructureError, InputError
from perfpipe.app.gates import ABORTED, FAIL, INCONCLUSIVE, WARN, describe_failures, evaluate_gate
from perfpipe.app.influx import influx_settings, influxdb_hook
from perfpipe.core.k6.command import (BREAK_METRIC, EXIT_THRESHOLDS_FAILED, K6Invocation, build_invocation, k6_binary, script_for,
                                 write_run_config)
from perfpipe.core.k6.runner import validate_script
from perfpipe.core.model.plan import StageResult, TestPlan
from perfpipe.app.measurements import ANALYSIS_FIELDS
from perfpipe.app.report_paths import stage_report_dir
from perfpipe.core.paths import config_dir, scripts_dir
from perfpipe.app.results import (baseline_values, collect_metrics, crossed_thresholds, read_k6_summary,
                              read_results, store_result, summary_count)
from perfpipe.app.rollup import complete_rollup
from perfpipe.app.targets import check_target_safe, k6_blocked_networks, resolve_header_values, resolve_target

if TYPE_CHECKING:  # an Airflow hook: importing Airflow (~4 s) waits until someone makes a hook
    from perfpipe.core.hooks.influxdb import InfluxDBHook

log = logging.getLogger(__name__)


def target_from_params(params: dict[str, Any]) -> dict[str, Any]:
    inline = params.get("inline_target")
    spec = inline if inline else params.get("target")
    return checked_once("target", (spec, _config_fingerprint()), lambda: _resolve_logged(spec))


def check_params(test_type: str, params: dict[str, Any]) -> TestPlan:
    """The plan of a run's params, from the config files alone (no DNS, no InfluxDB, no k6): what the REST API's
    trigger check (perfpipe.entry.trigger_check) can refuse before a run is created."""
    target = target_from_params(params)
    return build_plan(test_type, target, params.get("profile") or "standard", params.get("overrides") or {},
                      chaos_scenario=params.get("chaos_scenario") or None)


def _resolve_logged(spec: Any) -> dict[str, Any]:
    target = resolve_target(spec)
    log.info("checks: resolved target %s", target.get("name"))
    return target


# --- validate once ---------------------------------------------------------------------------------------------
# The expensive checks (target resolution, allowlist + DNS, InfluxDB ping, `k6 inspect`) are done once per run:
# * within one process (the CLI's pre-flight, then dag.test's first task), by a small cache keyed by the checked
#   input itself (a successful check only; a refusal is never cached), with a short lifetime;
# * across processes (a real scheduler runs each task in its own), the pipeline's first `validate` checks every
#   stage of the run up front and hands the result to the later stages' `validate` through XCom (`run_checks`).

CHECK_TTL_S = 300.0  # DNS and a configured target may change: a long-lived process checks again after this
INFLUX_TTL_S = 60.0
_checked: dict[str, tuple[float, Any]] = {}


def checked_once(kind: str, key: Any, compute, ttl_s: float = CHECK_TTL_S) -> Any:
    """compute() once per (kind, key) in this process for ttl_s; a copy of the result each time."""

    try:
        digest = kind + ":" + hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    except (RecursionError, ValueError):  # input nested too deeply to be a key: the check itself refuses it
        return compute()
    hit = _checked.get(digest)
    now = time.monotonic()
    if hit is not None and now - hit[0] < ttl_s:
        return copy.deepcopy(hit[1])
    value = compute()
    _checked[digest] = (now, copy.deepcopy(value))
    return value


def clear_checks() -> None:
    _checked.clear()


def _config_fingerprint() -> list[Any]:
    """Configured targets and settings are part of what was checked: an edited config/ is checked again."""

    files = []
    for path in sorted(config_dir().glob("*.yaml")):
        try:
            stat = path.stat()
        except OSError:
            continue
        files.append([path.name, stat.st_mtime_ns, stat.st_size])
    return files


def input_key(params: dict[str, Any]) -> str:
    """What a run's checks depend on, from its Params (the later stages reuse checks made for the same input)."""

    wanted = {k: params.get(k) for k in ("target", "inline_target", "profile", "overrides", "chaos_scenario")}
    return hashlib.sha256(json.dumps(wanted, sort_keys=True, default=str).encode()).hexdigest()


def run_stages(test_type: str, include_soak: bool = False) -> list[str]:
    """The stages one run of perf_<test_type> (or the pipeline) may reach."""

    return [test_type] if test_type != "pipeline" else happy_path(include_soak)


def prepare_run(stages: list[str], params: dict[str, Any], *,
                check_influx: bool = True) -> tuple[dict[str, TestPlan], dict[str, Any]]:
    """Check every stage of a run before any load: one target resolution and allowlist check, one InfluxDB
    ping, one `k6 inspect` per distinct script and config. Returns the plans by stage and the `checked` record
    the later stages reuse (`prepare_plan(..., checked=)`)."""
    prepared = {stage: _prepare(stage, params, check_influx=check_influx and i == 0, checked=None)
                for i, stage in enumerate(stages)}
    plans = {stage: plan for stage, (plan, _) in prepared.items()}
    first = plans[stages[0]]
    checked = {"input": input_key(params), "target": first.target,
               "allowed_addresses": list(first.allowed_addresses),
               "requirements": {stage: requirements for stage, (_, requirements) in prepared.items()}}
    return plans, checked


def prepare_plan(test_type: str, params: dict[str, Any], *, check_influx: bool = True,
                 checked: dict[str, Any] | None = None) -> TestPlan:
    """Everything that can be refused is refused here, before any load: target, allowlist, shape, gates,
    header secrets, InfluxDB and the script's init context (`k6 inspect`).

    `checked`: what the run's first stage already checked for the same input (see prepare_run); its target,
    allowlist result, InfluxDB check and script requirements are reused instead of checked again."""
    return _prepare(test_type, params, check_influx=check_influx, checked=checked)[0]


def _prepare(test_type: str, params: dict[str, Any], *, check_influx: bool,
             checked: dict[str, Any] | None) -> tuple[TestPlan, dict[str, Any]]:
    conf = settings()
    reuse = checked is not None and checked.get("input") == input_key(params) \
        and test_type in (checked.get("requirements") or {})
    target = checked["target"] if reuse else target_from_params(params)

    def plan_with(addresses: tuple[str, ...], requirements: dict[str, Any] | None = None) -> TestPlan:
        return build_plan(test_type, target, params.get("profile") or "standard", params.get("overrides") or {},
                          chaos_scenario=params.get("chaos_scenario") or None, allowed_addresses=addresses,
                          script_requirements=requirements)

    draft = plan_with(())  # the run's own parameters first: refused before the allowlist is asked (no DNS)
    if reuse:
        addresses = tuple(checked["allowed_addresses"])
    else:
        addresses = tuple(checked_once(
            "allowlist", (target, conf["allowlist"]), lambda: _check_safe_logged(target, conf["allowlist"])))
    plan = draft.model_copy(update={"allowed_addresses": addresses})  # the check's own result, nothing to refuse
    headers = resolve_header_values(target.get("headers") or {})
    if check_influx and not reuse:
        hook = influxdb_hook()
        checked_once("influxdb", (hook.settings.url, hook.settings.database), lambda: _ping_logged(hook),
                     ttl_s=INFLUX_TTL_S)
    requirements = checked["requirements"][test_type] if reuse else _inspect(plan, headers)
    if target.get("script"):
        # A user's script sets its own load: the plan is timed and capped by what k6 read from it.
        plan = plan_with(addresses, requirements or {})
    return plan, requirements


def _check_safe_logged(target: dict[str, Any], allowlist: list[str]) -> list[str]:
    addresses = check_target_safe(target, allowlist)
    log.info("checks: target %s allowed (%s)", target.get("name"), ", ".join(addresses))
    return addresses


def _ping_logged(hook: InfluxDBHook) -> bool:
    hook.check_available()
    log.info("checks: InfluxDB at %s answered", hook.settings.url)
    return True


def _inspect(plan: TestPlan, headers: dict[str, str]) -> dict[str, Any]:
    """Run the script's init context with the real run config, in a scratch folder (no load is sent)."""

    with tempfile.TemporaryDirectory(prefix="perfpipe-inspect-") as scratch:
        scratch_dir = Path(scratch)
        write_run_config(plan, scratch_dir)
        invocation = local_invocation(plan, testid="inspect", report_dir=scratch_dir, headers=headers,
                                      with_influx=False)
        return validate_script(invocation.argv[0], script_for(plan, str(scripts_dir())), invocation.env)


def local_invocation(plan: TestPlan, *, testid: str, report_dir: Path, headers: dict[str, str],
                     with_influx: bool = True) -> K6Invocation:
    return build_invocation(
        plan, testid=testid, binary=k6_binary(), script=script_for(plan, str(scripts_dir())),
        report_path=str(report_dir), influx=influx_settings() if with_influx else None, headers=headers,
        blocked_networks=blocked_networks(plan), prometheus=prometheus_output() if with_influx else None)


def blocked_networks(plan: TestPlan) -> list[str]:
    """Everything outside the allowlist (and the target's own addresses): k6 refuses to connect there."""
    return k6_blocked_networks(settings()["allowlist"], list(plan.allowed_addresses))


def report_dir_for(dag_id: str, run_id: str, test_type: str) -> Path:
    return stage_report_dir(dag_id, run_id, test_type)


def evaluate_stage(plan: TestPlan, run: dict[str, Any], *, dag_id: str, run_id: str,
                   logical_date: datetime) -> StageResult:
    """Measure the run from InfluxDB, reconcile counts, fetch baselines and apply the gate."""
    hook = influxdb_hook()
    summary = read_k6_summary(run["summary"])
    duration_s = run.get("test_duration_s") or None
    rolled = complete_rollup(hook, run["testid"], summary_count(summary, "http_reqs"), plan.expected_duration_s)
    metrics = collect_metrics(hook, run["testid"], summary, duration_s, rolled.stored_reqs, rolled.stored_durations)
    if not summary:
        log.error("k6 wrote no summary (%s): request count cannot be reconciled", run["summary"])
    analysis = analyse(plan, hook, run["testid"], rolled)
    details = analysis.pop("details", None)
    metrics.update(analysis)
    crossed = crossed_thresholds(summary)
    if BREAK_METRIC in crossed:  # the stress ramp stopped itself past the breaking point, as designed
        metrics["stopped_at_break"] = True
        crossed.remove(BREAK_METRIC)
    k6_thresholds_ok = not crossed if summary else run.get("exit_code") != EXIT_THRESHOLDS_FAILED
    baselines = baseline_values(hook, plan.test_type, plan.target_name, plan.profile, plan.gates, logical_date)
    verdict, checks, score = evaluate_gate(
        metrics, plan.gates, metrics_complete=metrics["metrics_complete"], k6_thresholds_ok=k6_thresholds_ok,
        aborted=run.get("aborted", False), baselines=baselines, skipped=plan.skipped_checks)
    stage = StageResult(
        test_type=plan.test_type, target=plan.target_name, profile=plan.profile, dag_id=dag_id, run_id=run_id,
        testid=run["testid"], verdict=verdict, score=score, metrics=metrics, checks=checks,
        report=run.get("report") or "", summary=run.get("summary") or "", k6_exit_code=run.get("exit_code"),
        started_at=run.get("started_at"), ended_at=run.get("ended_at"), analysis=details or {})
    log_stage(stage)
    return stage


def log_stage(stage: StageResult) -> None:
    m = stage.metrics
    log.info("%s on %s: verdict %s (score %s) | p95 %s ms, p99 %s ms, errors %s, %s req/s, %s requests, peak %s VUs",
             stage.test_type, stage.target, stage.verdict.upper(), stage.score, m.get("p95_ms"), m.get("p99_ms"),
             m.get("error_rate"), m.get("rps"), m.get("requests"), m.get("vus_max"))
    log.info("samples: k6 counted %s requests, InfluxDB stored %s -> metrics_complete=%s",
             m.get("samples_expected"), m.get("samples_stored"), m.get("metrics_complete"))
    figures = {k: m[k] for k in ANALYSIS_FIELDS if m.get(k) is not None}
    if figures:
        log.info("%s analysis: %s", stage.test_type, ", ".join(f"{k} {v}" for k, v in figures.items()))
    for check in stage.checks:
        baseline = f" (baseline {check['baseline']} {check['relative']})" if "relative" in check else ""
        log.info("  check %-16s %s %-8s warn %-8s value %-10s -> %s%s", check["name"], check["op"],
                 check["threshold"], check.get("warn"), check["value"], check["result"].upper(), baseline)
    if stage.report:
        log.info("k6 HTML report: %s", stage.report)


def record_stage(stage: StageResult, logical_date: datetime) -> StageResult:
    store_result(influxdb_hook(), stage, logical_date)
    return stage


def enforce_verdict(dag_id: str, run_id: str, test_type: str) -> StageResult:
    """Read the stage's recorded result back from InfluxDB and fail unless it passed (or warned)."""
    recorded = [s for s in read_results(influxdb_hook(), dag_id, run_id) if s.test_type == test_type]
    if not recorded:
        raise InfrastructureError(f"no perf_results point for {dag_id}/{run_id}/{test_type} in InfluxDB")
    result = recorded[-1]
    verdict = result.verdict
    if verdict in (FAIL, INCONCLUSIVE, ABORTED):
        # Airflow's task-failure exception: raised only inside a task
        from airflow.sdk.exceptions import AirflowFailException

        evidence = describe_failures(result.checks)
        if verdict == INCONCLUSIVE:
            evidence = (f"metrics incomplete: InfluxDB holds {result.metrics.get('samples_stored')} of "
                        f"{result.metrics.get('samples_expected')} samples k6 counted. " + evidence)
        raise AirflowFailException(f"{test_type} gate {verdict.upper()}: {evidence or 'see the checks above'}")
    if verdict == WARN:
        log.warning("%s gate WARN: %s", test_type,
                    [c["name"] for c in result.checks if c["result"] == WARN])
    return result


__all__ = ["prepare_plan", "prepare_run", "run_stages", "evaluate_stage", "record_stage", "enforce_verdict", "report_dir_for",
           "local_invocation", "InputError"]
