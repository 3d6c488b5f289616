"""Silent metrics loss is caught: InfluxDB refuses k6's larger write batches (413 Request Entity Too Large, as a
stock influxd does at high request rates), k6 carries on and exits 0, and perfpipe's reconciliation of k6's own
request count with what InfluxDB stored makes the stage inconclusive: never a pass."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, free_port, wait_until  # noqa: E402  (tests/ is on sys.path; not tests.conftest: a second import)

pytestmark = pytest.mark.integration

# Small enough that k6's one-second batches at the quick load profile's peak (20 VUs, hundreds of requests/s,
# 14 samples each) are refused, large enough for perfpipe's own perf_results point.
MAX_BODY_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def lossy_influxdb(session_dir):
    """perfpipe's influxd config with a small max-body-size, on free loopback ports."""
    data_dir = session_dir / "influxdb-lossy"
    data_dir.mkdir(parents=True, exist_ok=True)
    port, rpc_port = free_port(), free_port()
    template = (ROOT / "config" / "influxdb.conf.template").read_text()
    assert "max-body-size = 0" in template
    conf = (template.replace("max-body-size = 0", f"max-body-size = {MAX_BODY_BYTES}")
            .replace("@HTTP_BIND@", f"127.0.0.1:{port}").replace("@RPC_BIND@", f"127.0.0.1:{rpc_port}")
            .replace("@DATA_DIR@", str(data_dir)))
    conf_file = data_dir / "influxdb.conf"
    conf_file.write_text(conf)
    proc = subprocess.Popen(["/usr/bin/influxd", "-config", str(conf_file)], stdout=subprocess.DEVNULL,
                            stderr=open(data_dir / "influxd.log", "w"), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ping(url), 30, "lossy influxd")
        from perfpipe.core.hooks.influxdb import InfluxDBHook, InfluxSettings

        hook = InfluxDBHook(settings=InfluxSettings(url=url, database="k6"))
        hook.check_available()  # creates the database
        yield url, hook
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _ping(url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
        return response.status == 204


def test_refused_batches_make_the_stage_inconclusive(cli, lossy_influxdb, demo_target):
    url, hook = lossy_influxdb
    demo_target.reset()
    proc = cli("run", "load", "--target", "demo", "--profile", "quick", "--json",
               env={"PERFPIPE_INFLUXDB_URL": url})
    assert proc.returncode == 2, proc.stderr[-3000:]  # an infrastructure error, not a performance verdict
    [stage] = json.loads(proc.stdout)["stages"]
    metrics = stage["metrics"]
    assert stage["verdict"] == "inconclusive"
    assert stage["metrics_complete"] is False

    # The loss is real and k6 did not stop for it: k6 logged the refused writes and exited 0.
    k6_log = (Path(stage["report"]).parent / "k6.log").read_text()
    assert "Request Entity Too Large" in k6_log  # influxd answered 413
    [point] = hook.query('SELECT "k6_exit_code" FROM "perf_results" WHERE "testid" = $t', {"t": stage["testid"]})
    assert point["k6_exit_code"] == 0

    # k6's count is the truth (the target saw exactly those requests); InfluxDB holds fewer samples.
    assert metrics["samples_expected"] == demo_target.requests() > 0
    [stored] = hook.query('SELECT count("value") AS n FROM "http_reqs" WHERE "testid" = $t', {"t": stage["testid"]})
    assert stored["n"] == metrics["samples_stored"]
    from perfpipe.app.results import collision_allowance

    assert metrics["samples_stored"] < metrics["samples_expected"] - collision_allowance(metrics["samples_expected"])
