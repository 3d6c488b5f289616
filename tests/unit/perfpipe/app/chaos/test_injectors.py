"""The docker injector against a fake Docker client (no engine needed): pause/unpause, stop/start, verification."""

from __future__ import annotations

import pytest

from perfpipe.app.chaos import injectors
from perfpipe.app.chaos.injectors import ChaosError, DockerInjector, injector_for
from perfpipe.app.chaos.spec import ComponentSpec, ScenarioSpec


class NotFound(Exception):
    pass


class FakeContainer:
    def __init__(self, name: str, status: str = "running", start_reloads: int = 0, ignore: tuple = ()):
        self.id = f"id-{name}"
        self.name = name
        self.status = status
        self.calls: list[str] = []
        self._start_reloads = start_reloads  # reloads until a started container reports running
        self._pending = 0
        self._ignore = ignore  # calls the fake engine accepts but does nothing about

    def reload(self):
        if self._pending:
            self._pending -= 1
            if not self._pending:
                self.status = "running"

    def _do(self, call: str, status: str):
        self.calls.append(call)
        if call not in self._ignore:
            self.status = status

    def pause(self):
        self._do("pause", "paused")

    def unpause(self):
        self._do("unpause", "running")

    def stop(self, timeout=10):
        self._do(f"stop({timeout})", "exited")

    def start(self):
        self.calls.append("start")
        if self._start_reloads:
            self.status, self._pending = "created", self._start_reloads
        else:
            self.status = "running"


class FakeClient:
    def __init__(self, *found: FakeContainer):
        self.by_ref = {ref: c for c in found for ref in (c.id, c.name)}
        self.containers = self

    def get(self, ref):
        if ref not in self.by_ref:
            raise NotFound(f"404 Client Error: No such container: {ref}")
        return self.by_ref[ref]


def make(action: str, container: FakeContainer | None, name: str = "perfpipe-demo-api") -> DockerInjector:
    client = FakeClient(container) if container else FakeClient()
    return injector_for(ComponentSpec("api", "docker", container=name), ScenarioSpec("s", "api", action),
                        docker_client_factory=lambda: client)


@pytest.fixture(autouse=True)
def quick_waits(monkeypatch):
    monkeypatch.setattr(injectors, "DOCKER_RUNNING_WAIT_S", 0.5)


def test_pause_then_unpause_and_restore_is_idempotent():
    box = FakeContainer("perfpipe-demo-api")
    injector = make("pause", box)
    state = injector.plan()
    assert state == {"kind": "docker", "action": "pause", "container": "perfpipe-demo-api",
                     "container_id": "id-perfpipe-demo-api"}
    assert injector.inject(state)["status"] == "paused"
    assert injector.restore(state)["was"] == "paused" and box.status == "running"
    assert injector.restore(state)["was"] == "running"  # second restore: nothing to do
    assert box.calls == ["pause", "unpause"]


def test_stop_then_start_waits_until_running():
    box = FakeContainer("perfpipe-demo-api", start_reloads=3)
    injector = make("stop", box)
    state = injector.plan()
    assert injector.inject(state)["status"] == "exited"
    assert injector.restore(state) == {"container_id": box.id, "was": "exited", "status": "running"}
    assert box.calls == ["stop(5)", "start"]


def test_restore_fails_when_container_never_runs():
    box = FakeContainer("perfpipe-demo-api", start_reloads=10**6)
    injector = make("stop", box)
    state = injector.plan()
    injector.inject(state)
    with pytest.raises(ChaosError, match="'created', not running"):
        injector.restore(state)


def test_plan_refuses_a_container_that_is_not_running():
    with pytest.raises(ChaosError, match="is 'paused', not running: nothing to fault"):
        make("pause", FakeContainer("perfpipe-demo-api", status="paused")).plan()


def test_missing_container_is_a_clear_error():
    with pytest.raises(ChaosError, match="container 'perfpipe-demo-api': 404 Client Error"):
        make("stop", None).plan()


def test_inject_verifies_the_engine_did_it():
    box = FakeContainer("perfpipe-demo-api", ignore=("pause",))
    injector = make("pause", box)
    with pytest.raises(ChaosError, match="container is 'running' after pause"):
        injector.inject(injector.plan())


def test_engine_unreachable_is_a_chaos_error():
    def no_engine():
        raise ConnectionError("Error while fetching server API version: Connection refused")

    injector = injector_for(ComponentSpec("api", "docker", container="x"), ScenarioSpec("s", "api", "pause"),
                            docker_client_factory=no_engine)
    with pytest.raises(ChaosError, match="no Docker engine reachable: .*Connection refused"):
        injector.plan()


def test_restore_uses_the_recorded_id_when_the_name_moved():
    original = FakeContainer("perfpipe-demo-api", status="paused")
    client = FakeClient(original)
    client.by_ref["perfpipe-demo-api"] = FakeContainer("perfpipe-demo-api")  # a new container took the name
    injector = injector_for(ComponentSpec("api", "docker", container="perfpipe-demo-api"),
                            ScenarioSpec("s", "api", "pause"), docker_client_factory=lambda: client)
    injector.restore({"container": "perfpipe-demo-api", "container_id": original.id})
    assert original.status == "running" and original.calls == ["unpause"]
