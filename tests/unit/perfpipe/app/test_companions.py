"""perfpipe.app.companions: what runs beside k6, against a fake InfluxDB hook, a loopback metrics endpoint and a
fake fault holder (no real fault, no InfluxDB)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import perfpipe.app.chaos as chaos
from perfpipe.app import companions
from perfpipe.app.config import build_plan
from perfpipe.app.targets import resolve_target


class FakeHook:
    """Records writes; answers queries from a list (an Exception entry is raised once)."""
    instances: list["FakeHook"] = []

    def __init__(self, timeout_s: float | None = None, answers: list | None = None):
        self.writes: list[dict] = []
        self.answers = list(answers or [])
        self.queries = 0
        FakeHook.instances.append(self)

    def write(self, points):
        self.writes.extend(points)

    def query(self, query, params=None):
        self.queries += 1
        answer = self.answers.pop(0) if self.answers else []
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture(autouse=True)
def fake_influx(monkeypatch):
    FakeHook.instances = []
    monkeypatch.setattr(companions, "influxdb_hook", FakeHook)


def _plan(test_type: str, **target_extra) -> dict:
    target = resolve_target({"name": "t", "base_url": "http://127.0.0.1:8090", "requests": [{"path": "/"}],
                             **target_extra})
    return build_plan(test_type, target, "quick")


# --- which companions a run gets -----------------------------------------------------------------------------

def test_every_run_gets_a_live_rollup_and_only_soak_and_chaos_sample_memory():
    kinds = lambda plan: [type(w).__name__ for w in companions.RunCompanions(plan, "t1").workers]  # noqa: E731
    assert kinds(_plan("smoke")) == ["RollupCompanion"]
    assert kinds(_plan("smoke", metrics_url="/stats")) == ["RollupCompanion"]  # memory is a soak/chaos question
    assert kinds(_plan("soak", metrics_url="/stats")) == ["RollupCompanion", "MemorySampler"]
    assert kinds(_plan("soak")) == ["RollupCompanion"]  # nothing to sample


def test_a_chaos_run_gets_its_fault_controller():
    plan = build_plan("chaos", resolve_target("demo"), "quick")
    assert "ChaosController" in [type(w).__name__ for w in companions.RunCompanions(plan, "t1").workers]


# --- load_start ----------------------------------------------------------------------------------------------

def test_load_start_is_the_first_vus_sample_in_epoch_seconds(monkeypatch):
    monkeypatch.setattr(companions, "LOAD_START_POLL_S", 0.01)
    hook = FakeHook(answers=[[], RuntimeError("influx hiccup"), [{"time": 1_700_000_000_500}]])
    assert companions.load_start(hook, "t1", threading.Event(), "test") == 1_700_000_000.5
    assert hook.queries == 3  # an empty answer and a failed query are retried, not fatal


def test_load_start_gives_up_when_stopped_or_when_k6_never_starts(monkeypatch):
    stopping = threading.Event()
    stopping.set()
    assert companions.load_start(FakeHook(), "t1", stopping, "test") is None
    monkeypatch.setattr(companions, "LOAD_START_TIMEOUT_S", 0.1)
    monkeypatch.setattr(companions, "LOAD_START_POLL_S", 0.01)
    started = time.monotonic()
    assert companions.load_start(FakeHook(), "t1", threading.Event(), "test") is None
    assert time.monotonic() - started < 5


def test_the_live_rollup_does_nothing_when_the_load_never_starts(monkeypatch):
    monkeypatch.setattr(companions, "load_start", lambda *args: None)
    worker = companions.RollupCompanion(_plan("smoke"), "t1")
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive() and worker.rolls == 0 and FakeHook.instances[0].writes == []


# --- MemorySampler -------------------------------------------------------------------------------------------

@pytest.fixture
def stats_server():
    """A loopback target whose /stats reports 64 MiB, then fails once, then 32 MiB."""
    answers = [b'{"rss_bytes": 67108864}', None, b'{"rss_bytes": 33554432}']

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = answers.pop(0) if answers else b'{"rss_bytes": 33554432}'
            self.send_response(200 if body else 500)
            self.end_headers()
            self.wfile.write(body or b"busy")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_memory_sampler_stores_rss_in_mb_and_survives_a_failed_sample(stats_server, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # a proxy from the environment is never used
    plan = _plan("soak", metrics_url="/stats")
    plan.target["base_url"] = stats_server
    sampler = companions.MemorySampler(plan, "t1")
    sampler.interval_s = 0.02
    sampler.start()
    deadline = time.monotonic() + 5
    while sampler.samples < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    sampler.join(timeout=5)
    writes = FakeHook.instances[-1].writes
    assert [w["fields"]["rss_mb"] for w in writes[:2]] == [64.0, 32.0]
    assert writes[0]["tags"] == {"testid": "t1", "test_type": "soak", "target": "t"}


# --- ChaosController -----------------------------------------------------------------------------------------

class FakeHold:
    started: list[dict] = []

    def __init__(self, on_event):
        self.on_event = on_event
        self.restores = 0

    @classmethod
    def start(cls, spec, scenario, hold_s, on_event):
        hold = cls(on_event)
        cls.started.append({"scenario": scenario, "hold_s": hold_s, "hold": hold})
        on_event({"event": "inject", "time": time.time(), "ok": True})
        return hold

    def wait(self):
        return {"event": "restore", "time": time.time(), "ok": True}

    def restore(self):
        self.restores += 1
        return {"event": "restore", "time": time.time(), "ok": True}


@pytest.fixture
def chaos_plan(monkeypatch):
    FakeHold.started = []
    monkeypatch.setattr(chaos, "FaultHold", FakeHold)
    monkeypatch.setattr(chaos, "restore_leftovers", lambda: [])
    return build_plan("chaos", resolve_target("demo"), "quick")


def _events(controller) -> list[str]:
    return [w["tags"]["event"] for w in controller.hook.writes]


def test_the_fault_is_injected_after_the_baseline_and_its_restore_recorded_once(chaos_plan, monkeypatch):
    baseline = chaos_plan.chaos.phases_s["baseline"]
    monkeypatch.setattr(companions, "load_start", lambda *args: time.time() - baseline)  # baseline already over
    controller = companions.ChaosController(chaos_plan, "t1")
    controller.run()
    [started] = FakeHold.started
    assert (started["scenario"], started["hold_s"]) == ("cache_failure", chaos_plan.chaos.phases_s["inject"])
    assert _events(controller) == ["inject", "restore"]  # the wait's restore and the final restore(): one event
    assert started["hold"].restores == 1  # ... although restore is always called again on the way out


def test_no_load_means_no_fault(chaos_plan, monkeypatch):
    monkeypatch.setattr(companions, "load_start", lambda *args: None)
    controller = companions.ChaosController(chaos_plan, "t1")
    controller.run()
    assert FakeHold.started == [] and _events(controller) == []


def test_stopping_during_the_baseline_injects_nothing(chaos_plan, monkeypatch):
    monkeypatch.setattr(companions, "load_start", lambda *args: time.time())  # the baseline has just begun
    controller = companions.ChaosController(chaos_plan, "t1")
    threading.Timer(0.1, controller.stop).start()
    started = time.monotonic()
    controller.run()
    assert time.monotonic() - started < chaos_plan.chaos.phases_s["baseline"]
    assert FakeHold.started == []


def test_a_failed_restore_is_recorded_as_not_ok(chaos_plan):
    controller = companions.ChaosController(chaos_plan, "t1")
    controller.on_holder_event({"event": "restore", "ok": False, "time": time.time(), "detail": "still stopped"})
    controller.record_restore({"event": "restore", "ok": True, "time": time.time()})  # a later report: ignored
    [point] = controller.hook.writes
    assert point["fields"]["ok"] is False and "still stopped" in point["fields"]["text"]
    assert point["tags"]["scenario"] == "cache_failure"


def test_an_error_inside_the_controller_is_recorded_and_still_restores(chaos_plan, monkeypatch):
    baseline = chaos_plan.chaos.phases_s["baseline"]
    monkeypatch.setattr(companions, "load_start", lambda *args: time.time() - baseline)
    monkeypatch.setattr(FakeHold, "wait", lambda self: (_ for _ in ()).throw(RuntimeError("holder crashed")))
    controller = companions.ChaosController(chaos_plan, "t1")
    controller.run()  # does not raise: the k6 run goes on
    assert _events(controller) == ["inject", "error", "restore"]
    assert json.dumps(controller.hook.writes)  # every point is plain data


# --- the trust boundary at fault time: a plan arrives as data (XCom); its components must be the configured ones

def _tampered(plan, **component):
    data = plan.to_json_data()
    data["chaos"]["spec"]["components"][data["chaos"]["component"]].update(component)
    return type(plan).from_json_data(data)


@pytest.mark.parametrize("component", [{"pid_command": ["touch", "/tmp/perfpipe-no"]},
                                       {"start_command": ["sh", "-c", "id"]}, {"start_timeout_s": 1}],
                         ids=["pid_command", "start_command", "start_timeout_s"])
def test_a_plan_whose_chaos_component_is_not_the_configured_one_is_refused_before_k6(chaos_plan, component):
    from perfpipe.core.errors import InputError

    with pytest.raises(InputError) as exc:
        companions.RunCompanions(_tampered(chaos_plan, **component), "t1")
    assert exc.value.field == "targets.demo.chaos.components.cache"
    assert "not the one declared in config/targets.yaml" in str(exc.value)
    assert FakeHold.started == []


def test_a_plan_with_chaos_for_a_target_that_is_not_configured_is_refused(chaos_plan):
    from perfpipe.core.errors import InputError

    renamed = chaos_plan.model_copy(update={"target": {**chaos_plan.target, "name": "inline"}})
    with pytest.raises(InputError, match=r"^targets\.inline\.chaos\.components\.cache: "):
        companions.RunCompanions(renamed, "t1")


def test_the_configured_targets_plan_passes_through_xcom_unchanged(chaos_plan):
    workers = companions.RunCompanions(type(chaos_plan).from_json_data(chaos_plan.to_json_data()), "t1").workers
    assert "ChaosController" in [type(w).__name__ for w in workers]
