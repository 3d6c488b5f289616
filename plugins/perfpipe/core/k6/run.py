"""One k6 run of a plan, whatever runs k6 (the local binary or the grafana/k6 container): the core both k6
operators share.

What is perfpipe's own policy is passed in, with defaults that work for a plain operator in a user's DAG:
- `setup(plan, context, hook) -> RunSpec`: testid, report folder, header values, blocked networks, time limit and
  outputs of the run (default: `default_run_setup`; perfpipe's DAGs pass perfpipe.app.k6_setup.perfpipe_run_setup);
- `companions(plan, testid)`: a context manager with `stop()` working beside k6 for the run's length (default:
  none; perfpipe's DAGs pass perfpipe.app.companions.RunCompanions);
- `on_abort(plan, run, context)`: records a run stopped from outside (on_kill), best effort (default: logged).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from perfpipe.core.errors import InfrastructureError, InputError
from perfpipe.core.hooks.influxdb import InfluxDBHook, InfluxSettings
from perfpipe.core.k6.command import (EXIT_EXTERNAL_ABORT, EXIT_THRESHOLDS_FAILED, LOG_FILE, REPORT_FILE,
                                      SUMMARY_FILE, networks_outside, system_tags, testid_for,
                                      write_run_config)
from perfpipe.core.k6.relay import RemoteWriteRelay, WriteRelay
from perfpipe.core.model.plan import TestPlan
from perfpipe.core.paths import PROJECT_ROOT, safe_component

log = logging.getLogger(__name__)

# k6 exit codes that still leave a measurable run behind: 0 ok, 99 the script's own thresholds crossed.
MEASURABLE_EXIT_CODES = (0, EXIT_THRESHOLDS_FAILED)
# Airflow's supervisor escalates to SIGKILL 5 s after SIGTERM: on_kill stops k6 within this.
ON_KILL_GRACE_S = 2.5
# The default run's time limit on top of the plan's duration (perfpipe's own: config `run_timeout_margin_s`).
DEFAULT_TIMEOUT_MARGIN_S = 120.0


@dataclass(frozen=True)
class RunSpec:
    """What one k6 run needs besides its plan, decided before k6 starts."""

    testid: str
    report_dir: Path
    headers: dict[str, str] = field(repr=False)
    blocked_networks: list[str]
    timeout_s: float
    influx: InfluxSettings | None
    prometheus: dict[str, Any] | None = field(default=None, repr=False)


RunSetup = Callable[[TestPlan, dict[str, Any], InfluxDBHook], RunSpec]
Companions = Callable[[TestPlan, str], AbstractContextManager]
OnAbort = Callable[[TestPlan, dict[str, Any], dict[str, Any]], None]


def plan_of(value: Any) -> TestPlan:
    """The operator's `plan` as rendered: a TestPlan, its JSON data (XCom) or that JSON as a string."""
    if isinstance(value, TestPlan):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError("plan", "expected a TestPlan, its JSON data or an XComArg of them") from None
    if not value:
        raise InfrastructureError("no plan: the task that makes it returned nothing")
    return TestPlan.from_json_data(value)


def default_reports_root() -> Path:
    """PERFPIPE_REPORTS_DIR, else reports/ in the project (perfpipe's config may name another folder)."""
    return Path(os.environ.get("PERFPIPE_REPORTS_DIR") or PROJECT_ROOT / "reports")


def default_run_setup(plan: TestPlan, context: dict[str, Any], hook: InfluxDBHook) -> RunSpec:
    """A run without perfpipe's config: testid per DAG run, stage and try; reports under default_reports_root();
    plain header values only; k6 may reach the plan's checked addresses and nothing else."""
    ti = context["ti"]
    if not plan.allowed_addresses:
        raise InputError("plan", "the plan's target was not checked against an allowlist (no allowed "
                                 "addresses): make it with perfpipe.app.stage.prepare_plan")
    headers = plan.target.get("headers") or {}
    secret = sorted(k for k, v in headers.items() if not isinstance(v, str))
    if secret:
        raise InputError("headers", f"{secret} are references to secrets: the default run setup sends plain "
                                    "values only (perfpipe's DAGs resolve them)")
    report_dir = (default_reports_root() / safe_component(ti.dag_id) / safe_component(ti.run_id)
                  / plan.test_type)
    return RunSpec(testid=testid_for(ti.dag_id, ti.run_id, plan.test_type, ti.try_number), report_dir=report_dir,
                   headers=dict(headers), blocked_networks=networks_outside(list(plan.allowed_addresses)),
                   timeout_s=float(plan.expected_duration_s) * 1.2 + DEFAULT_TIMEOUT_MARGIN_S,
                   influx=hook.settings)


def prepare_report_dir(plan: TestPlan, report_dir: Path) -> None:
    """The stage's report folder with the run config, and without an earlier try's files."""
    report_dir.mkdir(parents=True, exist_ok=True)
    for stale in (SUMMARY_FILE, REPORT_FILE, LOG_FILE):  # a retry must never read an earlier try's files
        (report_dir / stale).unlink(missing_ok=True)
    write_run_config(plan, report_dir)


def run_result(*, testid: str, report_dir: Path, exit_code: int, started: datetime, aborted: bool,
               timed_out: bool, test_duration_s: float | None) -> dict[str, Any]:
    """The k6 task's XCom: where the run's files are and how it ended."""
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


def test_duration(report_dir: Path, wall_s: float) -> float:
    """k6's own test-run duration from the summary when present (excludes init), else wall time."""
    try:
        summary = json.loads((report_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    ms = (summary.get("state") or {}).get("testRunDurationMs")
    return float(ms) / 1000 if ms else wall_s


def log_abort(plan: TestPlan, run: dict[str, Any], context: dict[str, Any]) -> None:
    """The default on_abort: nothing to record the run in, so the task log says it was stopped."""
    log.warning("%s run %s stopped before the end; its files are in %s", plan.test_type, run["testid"],
                Path(run["summary"]).parent)


class K6RunCore:
    """One try of a k6 task: set up, run beside the companions, finish or record an abort.

    `start()` in execute, then `companions()` around the k6 process, then `finish()`; `abort()` from on_kill (any
    thread) stops the companions first (no fault stays injected) and then calls on_abort once.
    """

    def __init__(self, *, setup: RunSetup | None = None, companions: Companions | None = None,
                 on_abort: OnAbort | None = None):
        self.setup = setup or default_run_setup
        self.make_companions = companions
        self.on_abort = on_abort or log_abort
        self.plan: TestPlan | None = None
        self.spec: RunSpec | None = None
        self.context: dict[str, Any] = {}
        self.started: datetime | None = None
        self._companions: Any = None
        self._aborted = False
        self._relays: list[WriteRelay | RemoteWriteRelay] = []

    def start(self, plan: Any, context: dict[str, Any], hook: InfluxDBHook) -> tuple[TestPlan, RunSpec]:
        self.plan = plan_of(plan)
        self.context = context
        self.spec = self.setup(self.plan, context, hook)
        if self.spec.influx is not None:
            # k6 writes through the run's relay: the spec handed on names the relay (no credentials, nothing a
            # script can read), the real settings stay with the relay. Closed once k6 has exited.
            relay = WriteRelay(self.spec.influx, system_tags(self.plan, self.spec.testid)).start()
            self._relays.append(relay)
            self.spec = replace(self.spec, influx=relay.settings)
        prometheus = self.spec.prometheus
        if prometheus and (prometheus.get("username") or prometheus.get("password")):
            # The remote-write credentials likewise: k6 gets the relay's address, the relay adds the credentials.
            remote = RemoteWriteRelay(prometheus["remote_write_url"], prometheus.get("username"),
                                      prometheus.get("password")).start()
            self._relays.append(remote)
            self.spec = replace(self.spec, prometheus={**prometheus, "remote_write_url": remote.url,
                                                       "username": None, "password": None})
        prepare_report_dir(self.plan, self.spec.report_dir)
        self.started = datetime.now(timezone.utc)
        return self.plan, self.spec

    def companions(self) -> AbstractContextManager:
        """Entered around the k6 process; stopped by abort() too."""
        assert self.plan is not None and self.spec is not None, "start() first"
        self._companions = (self.make_companions(self.plan, self.spec.testid) if self.make_companions
                            else nullcontext())
        return self._around_k6(self._companions)

    @contextmanager
    def _around_k6(self, companions: AbstractContextManager) -> Iterator[Any]:
        try:
            with companions as entered:
                yield entered
        finally:
            self.close_relay()  # k6 has exited: its last flush was answered

    def close_relay(self) -> None:
        relays, self._relays = self._relays, []
        for relay in relays:
            relay.close()

    @property
    def log_path(self) -> Path:
        assert self.spec is not None, "start() first"
        return self.spec.report_dir / LOG_FILE

    def finish(self, *, exit_code: int, stopped: bool, timed_out: bool, wall_s: float) -> dict[str, Any]:
        """The run's result; raises InfrastructureError when k6 itself failed."""
        assert self.spec is not None and self.started is not None, "start() first"
        self.close_relay()
        aborted = stopped or exit_code == EXIT_EXTERNAL_ABORT
        log.info("k6 exited with code %s after %.1fs%s", exit_code, wall_s,
                 " (stopped before the end)" if aborted else "")
        check_exit_code(exit_code, aborted, self.log_path)
        return run_result(testid=self.spec.testid, report_dir=self.spec.report_dir, exit_code=exit_code,
                          started=self.started, aborted=aborted, timed_out=timed_out,
                          test_duration_s=test_duration(self.spec.report_dir, wall_s))

    def stop_companions(self) -> None:
        stop = getattr(self._companions, "stop", None)
        if stop is not None:
            stop()

    def abort(self) -> None:
        """Best effort, once: hand what k6 measured before it was stopped to on_abort."""
        if self._aborted or self.plan is None or self.spec is None or self.started is None:
            return
        self._aborted = True
        self.close_relay()
        try:
            run = run_result(testid=self.spec.testid, report_dir=self.spec.report_dir,
                             exit_code=EXIT_EXTERNAL_ABORT, started=self.started, aborted=True, timed_out=False,
                             test_duration_s=None)
            self.on_abort(self.plan, run, self.context)
        except Exception:  # the kill must still complete; the task log says what could not be recorded
            log.exception("could not record the aborted run")
