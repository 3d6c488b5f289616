"""The k6 task: runs one planned test with the local k6 binary (runtime: local)."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from perfpipe.app.companions import RunCompanions
from perfpipe.core.errors import InfrastructureError
from perfpipe.core.k6.command import (EXIT_EXTERNAL_ABORT, EXIT_THRESHOLDS_FAILED, LOG_FILE, REPORT_FILE, SUMMARY_FILE,
                                 testid_for, write_run_config)
from perfpipe.core.model.plan import TestPlan
from perfpipe.core.operators.links import GrafanaRunLink, grafana_run_url

log = logging.getLogger(__name__)

# k6 exit codes that still leave a measurable run behind: 0 ok, 99 the script's own thresholds crossed.
MEASURABLE_EXIT_CODES = (0, EXIT_THRESHOLDS_FAILED)
ON_KILL_GRACE_S = 2.5


def stage_context(context: dict[str, Any], plan_task_id: str) -> tuple[TestPlan, str, str, str, Path]:
    """(plan, dag_id, run_id, testid, report_dir) for the running task instance."""
    from perfpipe.core.hooks.influxdb import InfluxDBHook
    from perfpipe.app.results import unused_testid
    from perfpipe.app.stage import report_dir_for

    ti = context["ti"]
    data = ti.xcom_pull(task_ids=plan_task_id)
    if not data:
        raise InfrastructureError(f"no plan from task {plan_task_id!r}")
    plan = TestPlan.from_json_data(data)
    testid = unused_testid(InfluxDBHook(), testid_for(ti.dag_id, ti.run_id, plan.test_type, ti.try_number))
    report_dir = report_dir_for(ti.dag_id, ti.run_id, plan.test_type)
    report_dir.mkdir(parents=True, exist_ok=True)
    for stale in (SUMMARY_FILE, REPORT_FILE, LOG_FILE):  # a retry must never read an earlier try's files
        (report_dir / stale).unlink(missing_ok=True)
    write_run_config(plan, report_dir)
    return plan, ti.dag_id, ti.run_id, testid, report_dir


def run_result(*, testid: str, report_dir: Path, exit_code: int, started: datetime, aborted: bool,
               timed_out: bool, test_duration_s: float | None) -> dict[str, Any]:
    return {
        "testid": testid, "exit_code": exit_code, "aborted": aborted, "timed_out": timed_out,
        "summary": str(report_dir / SUMMARY_FILE), "report": str(report_dir / REPORT_FILE),
        "log": str(report_dir / LOG_FILE), "started_at": started.isoformat(),
        "ended_at": datetime.now(timezone.utc).isoformat(), "test_duration_s": test_duration_s,
    }


def check_exit_code(exit_code: int, aborted: bool, log_path: Path) -> None:
    """A k6 crash is an infrastructure error, never a performance verdict."""
    if exit_code in MEASURABLE_EXIT_CODES or aborted:
        return
    tail = ""
    if log_path.is_file():
        tail = " | ".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-5:])
    raise InfrastructureError(f"k6 exited with code {exit_code}: {tail}")


class K6Operator(BaseOperator):
    """Run the plan made by `plan_task_id` with the local k6 binary, in its own process group.

    k6's output streams into the task log; `--summary-export` JSON and the HTML report land in
    reports/<dag_id>/<run_id>/<test_type>/. On kill or timeout the whole k6 process group is ended.
    """

    ui_color = "#7d64ff"
    operator_extra_links = (GrafanaRunLink(),)

    def __init__(self, *, plan_task_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id
        self.grafana_url = ""
        self._process = None
        self._companions = None
        self._running: dict[str, Any] = {}

    def execute(self, context: dict[str, Any]) -> dict[str, Any]:
        from perfpipe.app.config import run_timeout_s
        from perfpipe.core.k6.runner import LocalK6Process
        from perfpipe.app.stage import local_invocation
        from perfpipe.app.targets import resolve_header_values

        plan, dag_id, run_id, testid, report_dir = stage_context(context, self.plan_task_id)
        headers = resolve_header_values(plan.target.get("headers") or {})
        invocation = local_invocation(plan, testid=testid, report_dir=report_dir, headers=headers)
        log.info("%s test against %s (%s), testid %s, about %.0fs", plan.test_type, plan.target_name,
                 plan.target["base_url"], testid, plan.expected_duration_s)
        started = datetime.now(timezone.utc)
        self.grafana_url = grafana_run_url(testid, started, None)
        self._process = LocalK6Process(invocation, report_dir / LOG_FILE, timeout_s=run_timeout_s(plan))
        self._running = {"plan": plan, "testid": testid, "report_dir": report_dir, "started": started,
                         "dag_id": dag_id, "run_id": run_id, "context": context}
        self._companions = RunCompanions(plan, testid)
        with self._companions:
            outcome = self._process.run()
        aborted = outcome.aborted or outcome.exit_code == EXIT_EXTERNAL_ABORT
        self.grafana_url = grafana_run_url(testid, started, datetime.now(timezone.utc))
        log.info("k6 exited with code %s after %.1fs%s", outcome.exit_code, outcome.duration_s,
                 " (stopped before the end)" if aborted else "")
        check_exit_code(outcome.exit_code, aborted, report_dir / LOG_FILE)
        return run_result(testid=testid, report_dir=report_dir, exit_code=outcome.exit_code, started=started,
                          aborted=aborted, timed_out=outcome.timed_out,
                          test_duration_s=test_duration(report_dir, outcome.duration_s))

    def on_kill(self) -> None:
        """Airflow stops the task (mark failed, timeout, SIGTERM): end k6 gracefully, record the stage aborted."""
        if self._companions is not None:
            self._companions.stop()  # first: no fault stays injected, whatever happens next
        if self._process is None:
            return
        log.warning("task killed: stopping k6 (pid %s) and its process group", self._process.pid)
        # Airflow's supervisor escalates to SIGKILL 5 s after SIGTERM: stop k6 and record the stage before that.
        self._process.stop(grace_s=ON_KILL_GRACE_S)
        record_aborted(self._running)


def record_aborted(running: dict[str, Any]) -> None:
    """Best effort: an `aborted` perf_results point with whatever k6 measured before it was stopped."""
    if not running:
        return
    from perfpipe.entry.dag_factory import logical_date_of
    from perfpipe.app.stage import evaluate_stage, record_stage

    try:
        run = run_result(testid=running["testid"], report_dir=running["report_dir"], exit_code=EXIT_EXTERNAL_ABORT,
                         started=running["started"], aborted=True, timed_out=False, test_duration_s=None)
        logical_date = logical_date_of(running["context"])
        stage = evaluate_stage(running["plan"], run, dag_id=running["dag_id"], run_id=running["run_id"],
                               logical_date=logical_date)
        record_stage(stage, logical_date)
    except Exception:  # the kill must still complete; the task log says what could not be recorded
        log.exception("could not record the aborted stage")


def test_duration(report_dir: Path, wall_s: float) -> float:
    """k6's own test-run duration from the summary when present (excludes init), else wall time."""
    from perfpipe.app.results import read_k6_summary

    state = read_k6_summary(report_dir / SUMMARY_FILE).get("state") or {}
    ms = state.get("testRunDurationMs")
    return float(ms) / 1000 if ms else wall_s
