"""One test stage, step by step: plan -> (k6 run) -> evaluate -> record -> verdict.

Plain functions over plain dicts so the DAG tasks, the CLI's pre-flight check and the tests share one
implementation. The k6 run itself lives in perfpipe.core.operators.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from perfpipe.app.analysis import analyse
from perfpipe.app.config import build_plan, settings
from perfpipe.core.errors import InfrastructureError, InputError
from perfpipe.app.gates import ABORTED, FAIL, INCONCLUSIVE, WARN, describe_failures, evaluate_gate
from perfpipe.core.hooks.influxdb import InfluxDBHook
from perfpipe.core.k6.command import (BREAK_METRIC, EXIT_THRESHOLDS_FAILED, K6Invocation, build_invocation, k6_binary, script_for,
                                 write_run_config)
from perfpipe.core.k6.runner import validate_script
from perfpipe.app.measurements import ANALYSIS_FIELDS
from perfpipe.app.report_paths import stage_report_dir
from perfpipe.core.paths import scripts_dir
from perfpipe.app.results import (baseline_values, collect_metrics, crossed_thresholds, read_k6_summary,
                              read_results, store_result, summary_count)
from perfpipe.app.rollup import complete_rollup
from perfpipe.app.targets import check_target_safe, k6_blocked_networks, resolve_header_values, resolve_target

log = logging.getLogger(__name__)


def target_from_params(params: dict[str, Any]) -> dict[str, Any]:
    inline = params.get("inline_target")
    return resolve_target(inline if inline else params.get("target"))


def check_params(test_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """The plan of a run's params, from the config files alone (no DNS, no InfluxDB, no k6): what the REST API's
    trigger check (perfpipe.entry.trigger_check) can refuse before a run is created."""
    target = target_from_params(params)
    return build_plan(test_type, target, params.get("profile") or "standard", params.get("overrides") or {},
                      chaos_scenario=params.get("chaos_scenario") or None)


def prepare_plan(test_type: str, params: dict[str, Any], *, check_influx: bool = True) -> dict[str, Any]:
    """Everything that can be refused is refused here, before any load: target, allowlist, shape, gates,
    header secrets, InfluxDB and the script's init context (`k6 inspect`)."""
    conf = settings()
    plan = check_params(test_type, params)
    target = plan["target"]
    plan["allowed_addresses"] = check_target_safe(target, conf["allowlist"])
    headers = resolve_header_values(target.get("headers") or {})
    if check_influx:
        InfluxDBHook().check_available()
    _inspect(plan, headers)
    return plan


def _inspect(plan: dict[str, Any], headers: dict[str, str]) -> None:
    """Run the script's init context with the real run config, in a scratch folder (no load is sent)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="perfpipe-inspect-") as scratch:
        scratch_dir = Path(scratch)
        write_run_config(plan, scratch_dir)
        invocation = local_invocation(plan, testid="inspect", report_dir=scratch_dir, headers=headers,
                                      with_influx=False)
        requirements = validate_script(invocation.argv[0], script_for(plan, str(scripts_dir())), invocation.env)
    if plan["target"].get("script"):
        apply_script_requirements(plan, requirements)


def apply_script_requirements(plan: dict[str, Any], requirements: dict[str, Any]) -> None:
    """A user's script sets its own load: hold it to the same caps, and time the run by its own duration."""
    from perfpipe.app.config import check_rate_cap, check_run_fits, parse_duration, target_vu_cap

    cap = target_vu_cap(plan["target"])
    max_vus = int(requirements.get("maxVUs") or 0)
    if max_vus > cap:
        raise InputError("script", f"the script's options reach {max_vus} VUs, above the target's cap of {cap}")
    plan["peak_vus"] = max_vus
    check_rate_cap(plan["target"], requirements.get("scenarios") or {}, "script")
    plan["expected_duration_s"] = parse_duration(requirements.get("totalDuration") or "0s", "script.duration")
    check_run_fits(plan, "script")


def local_invocation(plan: dict[str, Any], *, testid: str, report_dir: Path, headers: dict[str, str],
                     with_influx: bool = True) -> K6Invocation:
    from perfpipe.core.hooks.influxdb import influx_settings

    return build_invocation(
        plan, testid=testid, binary=k6_binary(), script=script_for(plan, str(scripts_dir())),
        report_path=str(report_dir), influx=influx_settings() if with_influx else None, headers=headers,
        blocked_networks=blocked_networks(plan))


def blocked_networks(plan: dict[str, Any]) -> list[str]:
    """Everything outside the allowlist (and the target's own addresses): k6 refuses to connect there."""
    return k6_blocked_networks(settings()["allowlist"], plan["allowed_addresses"])


def report_dir_for(dag_id: str, run_id: str, test_type: str) -> Path:
    return stage_report_dir(dag_id, run_id, test_type)


def evaluate_stage(plan: dict[str, Any], run: dict[str, Any], *, dag_id: str, run_id: str,
                   logical_date: datetime) -> dict[str, Any]:
    """Measure the run from InfluxDB, reconcile counts, fetch baselines and apply the gate."""
    hook = InfluxDBHook()
    summary = read_k6_summary(run["summary"])
    duration_s = run.get("test_duration_s") or None
    rolled = complete_rollup(hook, run["testid"], summary_count(summary, "http_reqs"), plan.get("expected_duration_s"))
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
    baselines = baseline_values(hook, plan["test_type"], plan["target"]["name"], plan["profile"], plan["gates"],
                                logical_date)
    verdict, checks, score = evaluate_gate(
        metrics, plan["gates"], metrics_complete=metrics["metrics_complete"], k6_thresholds_ok=k6_thresholds_ok,
        aborted=run.get("aborted", False), baselines=baselines, skipped=plan.get("skipped_checks"))
    stage = {
        "test_type": plan["test_type"], "target": plan["target"]["name"], "profile": plan["profile"],
        "dag_id": dag_id, "run_id": run_id, "testid": run["testid"], "verdict": verdict,
        "score": score, "metrics": metrics, "checks": checks, "report": run.get("report") or "",
        "summary": run.get("summary") or "", "k6_exit_code": run.get("exit_code"),
        "started_at": run.get("started_at"), "ended_at": run.get("ended_at"), "analysis": details or {},
    }
    log_stage(stage)
    return stage


def log_stage(stage: dict[str, Any]) -> None:
    m = stage["metrics"]
    log.info("%s on %s: verdict %s (score %s) | p95 %s ms, p99 %s ms, errors %s, %s req/s, %s requests, peak %s VUs",
             stage["test_type"], stage["target"], stage["verdict"].upper(), stage.get("score"), m.get("p95_ms"), m.get("p99_ms"),
             m.get("error_rate"), m.get("rps"), m.get("requests"), m.get("vus_max"))
    log.info("samples: k6 counted %s requests, InfluxDB stored %s -> metrics_complete=%s",
             m.get("samples_expected"), m.get("samples_stored"), m.get("metrics_complete"))
    figures = {k: m[k] for k in ANALYSIS_FIELDS if m.get(k) is not None}
    if figures:
        log.info("%s analysis: %s", stage["test_type"], ", ".join(f"{k} {v}" for k, v in figures.items()))
    for check in stage["checks"]:
        baseline = f" (baseline {check['baseline']} {check['relative']})" if "relative" in check else ""
        log.info("  check %-16s %s %-8s warn %-8s value %-10s -> %s%s", check["name"], check["op"],
                 check["threshold"], check.get("warn"), check["value"], check["result"].upper(), baseline)
    if stage.get("report"):
        log.info("k6 HTML report: %s", stage["report"])


def record_stage(stage: dict[str, Any], logical_date: datetime) -> dict[str, Any]:
    store_result(InfluxDBHook(), stage, logical_date)
    return stage


def enforce_verdict(dag_id: str, run_id: str, test_type: str) -> dict[str, Any]:
    """Read the stage's recorded result back from InfluxDB and fail unless it passed (or warned)."""
    points = [p for p in read_results(InfluxDBHook(), dag_id, run_id) if p.get("test_type") == test_type]
    if not points:
        raise InfrastructureError(f"no perf_results point for {dag_id}/{run_id}/{test_type} in InfluxDB")
    result = points[-1]
    verdict = result["verdict"]
    if verdict in (FAIL, INCONCLUSIVE, ABORTED):
        from airflow.sdk.exceptions import AirflowFailException

        evidence = describe_failures(result["checks"])
        if verdict == INCONCLUSIVE:
            evidence = (f"metrics incomplete: InfluxDB holds {result.get('samples_stored')} of "
                        f"{result.get('samples_expected')} samples k6 counted. " + evidence)
        raise AirflowFailException(f"{test_type} gate {verdict.upper()}: {evidence or 'see the checks above'}")
    if verdict == WARN:
        log.warning("%s gate WARN: %s", test_type,
                    [c["name"] for c in result["checks"] if c["result"] == WARN])
    return result


__all__ = ["prepare_plan", "evaluate_stage", "record_stage", "enforce_verdict", "report_dir_for",
           "local_invocation", "InputError"]
