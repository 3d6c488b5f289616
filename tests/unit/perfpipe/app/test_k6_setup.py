"""perfpipe.app.k6_setup: perfpipe's setup of a k6 run (testid, reports, secrets, allowlist, limits, outputs)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from perfpipe.app.config import build_plan, run_timeout_s
from perfpipe.app.k6_setup import perfpipe_run_setup
from perfpipe.app.stage import blocked_networks
from perfpipe.core.hooks.influxdb import InfluxDBHook

TOKEN = "tok-setup-unit-7a6b"
TI = SimpleNamespace(dag_id="perf_load", run_id="manual__2026-03-01T12:00:00+00:00", try_number=1)


@pytest.fixture
def plan(api_target, monkeypatch):
    monkeypatch.setenv("PERFPIPE_UNIT_API_TOKEN", TOKEN)
    target = dict(api_target, headers={"Authorization": {"env": "PERFPIPE_UNIT_API_TOKEN", "prefix": "Bearer "}})
    return build_plan("load", target, "quick", allowed_addresses=("127.0.0.1",))


def test_perfpipe_setup(plan, perfpipe_env, monkeypatch):
    stored = {"perf_load:manual__2026-03-01T12:00:00+00:00:load:try1": 10}
    monkeypatch.setattr(InfluxDBHook, "query",
                        lambda self, query, params=None: [{"n": stored[params["testid"]]}]
                        if params and params.get("testid") in stored else [])
    spec = perfpipe_run_setup(plan, {"ti": TI}, InfluxDBHook())
    assert spec.testid == "perf_load:manual__2026-03-01T12:00:00+00:00:load:try1.r2"  # samples carry try1
    assert spec.report_dir == perfpipe_env / "reports" / "perf_load" / "manual__2026-03-01T12_00_00+00_00" / "load"
    assert spec.headers == {"Authorization": f"Bearer {TOKEN}"}
    assert spec.blocked_networks == blocked_networks(plan)
    assert spec.timeout_s == run_timeout_s(plan)
    assert spec.influx.url == "http://127.0.0.1:8086" and spec.prometheus is None
