"""Work beside a k6 run, for its length: the live rollup of its samples, the target's memory sampler and the
chaos fault.

Both k6 operators (local and Docker) wrap the k6 process in `RunCompanions`; leaving the block — normally, by an
exception, or through `stop()` from on_kill — stops the sampler and restores the fault. The fault itself is held
by a separate holder process (perfpipe.app.chaos) that restores it on its own if this process dies.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from perfpipe.app import egress, rollup
from perfpipe.app.measurements import PERF_EVENTS, PERF_TARGET_STATS, TARGET, TEST_TYPE, TESTID, VUS
from perfpipe.app.influx import influxdb_hook
from perfpipe.app.targets import check_configured_chaos
from perfpipe.core.model.plan import TestPlan

if TYPE_CHECKING:  # an Airflow hook: importing Airflow (~4 s) waits until someone makes a hook
    from perfpipe.core.hooks.influxdb import InfluxDBHook

log = logging.getLogger(__name__)

LOAD_START_TIMEOUT_S = 60.0
# k6 pushes samples to InfluxDB every second: the first `vus` sample shows the load has started.
LOAD_START_POLL_S = 0.5


class RunCompanions:
    def __init__(self, plan: TestPlan, testid: str):
        self.plan, self.testid = plan, testid
        self.workers: list[_Companion] = [RollupCompanion(plan, testid)]
        if plan.target.get("metrics_url") and plan.test_type in ("soak", "chaos"):
            self.workers.append(MemorySampler(plan, testid))
        if plan.chaos is not None:
            self.workers.append(ChaosController(plan, testid))

    def __enter__(self) -> "RunCompanions":
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Idempotent; restores an injected fault before it returns."""
        for worker in self.workers:
            worker.stop()
        for worker in self.workers:
            worker.join(timeout=10)


class _Companion(threading.Thread):
    def __init__(self, plan: TestPlan, testid: str, name: str):
        super().__init__(name=name, daemon=True)
        self.plan, self.testid = plan, testid
        self.stopping = threading.Event()
        self.tags = {TESTID: testid, TEST_TYPE: plan.test_type, TARGET: plan.target_name}

    def stop(self) -> None:
        self.stopping.set()


class MemorySampler(_Companion):
    """GET <base_url><metrics_url> every few seconds and store its `rss_bytes` as perf_target_stats.rss_mb."""

    def __init__(self, plan: TestPlan, testid: str):
        super().__init__(plan, testid, "perfpipe-memory-sampler")
        self.url = plan.target["base_url"] + plan.target["metrics_url"]
        self.interval_s = min(10.0, max(1.0, plan.expected_duration_s / 60))
        # Checked (and resolved) once, before k6 starts; every sample goes to that address and no redirect is
        # followed: an answer can never send the sampler to a host or port the allowlist does not name.
        self.destination = egress.checked_destination(self.url, "target.metrics_url")
        self.samples = 0

    def run(self) -> None:
        hook = influxdb_hook(timeout_s=5)
        failures = 0
        while not self.stopping.is_set():
            try:
                reply = egress.send(self.destination, timeout=2)
                if reply.status != 200:
                    raise egress.EgressError(f"HTTP {reply.status}" + (
                        f" redirect to {reply.headers.get('location')!r}, not followed" if reply.redirect else ""))
                rss = float(json.loads(reply.body)["rss_bytes"])
                hook.write([{"measurement": PERF_TARGET_STATS.name, "tags": self.tags,
                             "time": int(time.time() * 1000), "fields": {"rss_mb": rss / 2**20}}])
                self.samples += 1
            except Exception as exc:  # a busy or faulted target may not answer: a gap, not a failed run
                failures += 1
                if failures in (1, 10, 100):
                    log.warning("memory sample from %s failed (%d so far): %s", self.url, failures, exc)
            self.stopping.wait(self.interval_s)
        log.info("memory sampler: %d samples of %s", self.samples, self.url)


class RollupCompanion(_Companion):
    """Keeps the run's perf_rollup buckets (perfpipe.app.rollup) up to date while k6 runs, so that the gate only rolls
    the tail. Best effort: if it falls behind or fails, complete_rollup rolls whatever is left after the run."""

    def __init__(self, plan: TestPlan, testid: str):
        super().__init__(plan, testid, "perfpipe-rollup")
        self.rolls = 0

    def run(self) -> None:
        hook = influxdb_hook(timeout_s=30)
        bucket_s = rollup.bucket_seconds(self.plan.expected_duration_s)
        start = load_start(hook, self.testid, self.stopping, "rollup")
        if start is None:
            return
        start_ms = int(start * 1000)
        rolled_to = rollup.roll_start_ms(start_ms, bucket_s)
        failures = 0
        while not self.stopping.wait(rollup.LIVE_EVERY_S):
            try:
                newest = rollup.newest_sample_ms(hook, self.testid, rolled_to)
                if newest is None:
                    continue
                cutoff = rollup.live_cutoff_ms(newest, time.time() * 1000, bucket_s, rollup.LIVE_LAG_S)
                if cutoff > rolled_to:
                    rollup.roll(hook, self.testid, rolled_to, cutoff, bucket_s)
                    rollup.write_state(hook, self.testid, start_ms, bucket_s, cutoff)
                    rolled_to = cutoff
                    self.rolls += 1
            except Exception as exc:  # the gate rolls what is left: a slower gate, not a wrong one
                failures += 1
                if failures in (1, 10, 100):
                    log.warning("live rollup of %s failed (%d so far): %s", self.testid, failures, exc)
        log.info("live rollup: %d steps, rolled up to %s s into the run", self.rolls, (rolled_to - start_ms) / 1000)


def load_start(hook: InfluxDBHook, testid: str, stopping: threading.Event, who: str) -> float | None:
    """Epoch seconds of the run's first sample, or None when stopped or k6 never started."""
    deadline = time.monotonic() + LOAD_START_TIMEOUT_S
    while not stopping.is_set() and time.monotonic() < deadline:
        try:
            first = hook.query(f'SELECT first("value") FROM "{VUS}" WHERE "testid" = $testid', {"testid": testid})
        except Exception as exc:
            log.warning("%s: cannot read the load start from InfluxDB: %s", who, exc)
            first = []
        if first:
            return first[0]["time"] / 1000
        stopping.wait(LOAD_START_POLL_S)
    if not stopping.is_set():
        log.error("%s: no load seen within %.0fs", who, LOAD_START_TIMEOUT_S)
    return None


class ChaosController(_Companion):
    """baseline -> inject (held by a perfpipe.app.chaos holder for the inject phase) -> restore -> recovery."""

    def __init__(self, plan: TestPlan, testid: str):
        super().__init__(plan, testid, "perfpipe-chaos")
        # Made before k6 starts: a plan whose components are not the configured target's own is refused here.
        check_configured_chaos(plan.target_name, plan.chaos.spec)
        self.chaos = plan.chaos
        self.hold = None
        self.restore_recorded = False
        self.lock = threading.Lock()  # inject vs. restore from on_kill
        self.event_lock = threading.Lock()
        self.hook = influxdb_hook(timeout_s=5)

    def run(self) -> None:
        # only a chaos run loads the fault injectors
        from perfpipe.app.chaos import FaultHold, parse_chaos, restore_leftovers

        phases = self.chaos.phases_s
        spec = parse_chaos(self.plan.target_name, self.chaos.spec)
        try:
            restored = restore_leftovers()
            if restored:
                log.warning("restored faults left behind by an earlier run: %s", restored)
            start = load_start(self.hook, self.testid, self.stopping, "chaos")
            if start is None:  # no load: no fault injected
                return
            if self.stopping.wait(max(0.0, start + phases["baseline"] - time.time())):
                return
            with self.lock:
                if self.stopping.is_set():
                    return
                log.info("chaos %s: injecting %s on %s for %.0fs", self.chaos.scenario, self.chaos.action,
                         self.chaos.component, phases["inject"])
                self.hold = FaultHold.start(spec, self.chaos.scenario, hold_s=phases["inject"],
                                            on_event=self.on_holder_event)
            self.record_restore(self.hold.wait())
        except Exception:
            log.exception("chaos %s failed; the fault is restored", self.chaos.scenario)
            self.record_event({"event": "error", "time": time.time(), "detail": "see the task log"})
        finally:
            self.restore()

    def restore(self) -> None:
        with self.lock:
            if self.hold is not None:
                self.record_restore(self.hold.restore())

    def on_holder_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "restore":
            self.record_restore(event)
        else:
            self.record_event(event)

    def record_restore(self, event: dict[str, Any]) -> None:
        """Once per fault, whichever path saw the restore first (the holder's report or our own restore call)."""
        with self.event_lock:
            if self.restore_recorded:
                return
            self.restore_recorded = True
        if not event.get("ok"):
            log.error("chaos %s: the fault was NOT restored: %s", self.chaos.scenario, event)
        self.record_event(event)

    def stop(self) -> None:
        super().stop()
        self.restore()

    def record_event(self, event: dict[str, Any]) -> None:
        """An injection/restore event as a perf_events point (Grafana annotations, phase boundaries)."""
        kind = str(event.get("event"))
        log.info("chaos event %s: %s", kind, json.dumps(event, default=str))
        fields = {"text": f"{self.chaos.scenario}: {kind} {self.chaos.action} on {self.chaos.component}"
                          + (f" ({json.dumps(event['detail'], default=str)[:300]})" if event.get("detail") else ""),
                  "component": self.chaos.component, "action": self.chaos.action,
                  "ok": bool(event.get("ok", True))}
        try:
            self.hook.write([{"measurement": PERF_EVENTS.name, "tags": {**self.tags, "scenario":
                                                                          self.chaos.scenario, "event": kind},
                              "time": int(float(event.get("time") or time.time()) * 1000), "fields": fields}])
        except Exception:
            log.exception("could not record the chaos %s event", kind)
