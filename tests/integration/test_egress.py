"""Redirects cannot carry load past the allowlist's ports, with real parts: the real k6 started with perfpipe's own
invocation (pinned hosts, --max-redirects 0, the bundled smoke script) and perfpipe's memory sampler and chaos
control client, against counting servers on literal loopback addresses.

The allowlist names one port of 127.0.0.1 (the target's); a second counting server listens on another port of the
same address, which k6's --blacklist-ip (addresses only) would let through. It must see nothing.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from perfpipe.app import companions
from perfpipe.app.chaos.injectors import ChaosError, ProxyInjector
from perfpipe.app.chaos.spec import ComponentSpec, ScenarioSpec
from perfpipe.app.config import build_plan
from perfpipe.app.stage import local_invocation
from perfpipe.app.targets import check_target_safe, resolve_target
from perfpipe.core.k6.command import write_run_config

pytestmark = pytest.mark.integration


class Counting:
    """A loopback HTTP server counting each path; /go redirects to `elsewhere`, /same to /ok (same origin)."""

    def __init__(self, elsewhere: str = ""):
        self.paths: list[str] = []
        counting = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                counting.paths.append(self.path)
                if self.path in ("/go", "/stats") and elsewhere:
                    self.send_response(302)
                    self.send_header("Location", elsewhere)
                elif self.path == "/same":
                    self.send_response(302)
                    self.send_header("Location", "/ok")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = do_DELETE = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers(monkeypatch):
    unlisted = Counting()
    target = Counting(elsewhere=f"{unlisted.url}/x")
    # The allowlist of a deployment that lets perfpipe reach exactly one port of this address.
    monkeypatch.setenv("PERFPIPE_ALLOWLIST", f"127.0.0.1:{target.port}")
    yield target, unlisted
    target.close()
    unlisted.close()


def test_k6_redirect_to_an_unlisted_port_reaches_nothing(servers, tmp_path):
    target_server, unlisted = servers
    allowlist = [f"127.0.0.1:{target_server.port}"]
    target = resolve_target({"name": "redirecting", "base_url": target_server.url, "requests": [
        {"name": "away", "path": "/go", "expect_status": 302}, {"name": "same", "path": "/same"}]})
    plan = build_plan("smoke", target, "quick", {"vus": 1, "duration": "2s"})
    plan = plan.model_copy(update={"allowed_addresses": tuple(check_target_safe(target, allowlist))})
    write_run_config(plan, tmp_path)
    invocation = local_invocation(plan, testid="egress", report_dir=tmp_path, headers={}, with_influx=False)
    proc = subprocess.run(invocation.argv, env=invocation.env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["metrics"]["checks"]["fails"] == 0  # /go answered its 302, /same was followed to /ok: 200
    assert target_server.paths.count("/go") > 0 and target_server.paths.count("/ok") == \
        target_server.paths.count("/same") > 0
    assert unlisted.paths == []


def test_sampler_redirect_to_an_unlisted_port_reaches_nothing(servers, monkeypatch):
    target_server, unlisted = servers
    writes = []

    class Hook:  # the sampler's InfluxDB writes; nothing here is about InfluxDB
        def __init__(self, timeout_s=None):
            pass

        def write(self, points):
            writes.extend(points)

    monkeypatch.setattr(companions, "influxdb_hook", Hook)
    target = resolve_target({"name": "redirecting", "base_url": target_server.url, "requests": [{"path": "/"}],
                             "metrics_url": "/stats"})
    sampler = companions.MemorySampler(build_plan("soak", target, "quick"), "t-egress")
    sampler.interval_s = 0.2
    sampler.start()
    deadline = time.monotonic() + 10
    while target_server.paths.count("/stats") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    sampler.stop()
    sampler.join(timeout=5)
    assert target_server.paths.count("/stats") >= 3  # asked, answered with a redirect, not followed
    assert unlisted.paths == [] and writes == []


def test_chaos_control_url_on_an_unlisted_port_is_never_called(servers):
    _, unlisted = servers
    injector = ProxyInjector(ComponentSpec(name="link", kind="proxy", control_url=unlisted.url),
                             ScenarioSpec(name="slow", component="link", action="latency", latency_ms=100))
    with pytest.raises(ChaosError, match=rf"port {unlisted.port} of host '127.0.0.1' is not in the allowlist"):
        injector.plan()
    assert unlisted.paths == []


BROWSER_SCRIPT = """
// The module's name computed, so validate's reading cannot see it: k6's own start is what must stop it.
const { browser } = require(['k6', 'brow' + 'ser'].join('/'));
export const options = { scenarios: { ui: { executor: 'shared-iterations', iterations: 1,
                                            options: { browser: { type: 'chromium' } } } } };
export default async function () {
  const page = await browser.newPage();
  await page.goto(__ENV.BASE_URL + '/page');
}
"""


def test_k6_started_by_perfpipe_has_no_browser_to_launch(tmp_path):
    server = Counting()
    try:
        script = tmp_path / "ui.js"
        script.write_text(BROWSER_SCRIPT)
        target = resolve_target({"name": "ui", "base_url": server.url, "script": str(script)})
        plan = build_plan("smoke", target, "quick", allowed_addresses=tuple(check_target_safe(target,
                                                                                            ["127.0.0.0/8"])))
        write_run_config(plan, tmp_path)
        invocation = local_invocation(plan, testid="egress", report_dir=tmp_path, headers={}, with_influx=False)
        proc = subprocess.run(invocation.argv, env=invocation.env, capture_output=True, text=True, timeout=60)
        assert "/nonexistent/perfpipe-runs-no-browser" in proc.stderr, proc.stderr[-2000:]
        assert server.paths == []
    finally:
        server.close()
