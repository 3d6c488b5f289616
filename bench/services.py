"""Loopback services the bench starts and stops itself: nginx, the demo target, influxd instances.

Everything binds 127.0.0.1 on a free port; every process gets its own session so it can be ended as a group.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INFLUXD = os.environ.get("PERFPIPE_INFLUXD_BIN", "/usr/bin/influxd")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (its threads included), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process: the peak RSS of its own program. (rusage's ru_maxrss of a child also counts the
    parent's memory the child had between fork and exec, so a big bench process would inflate it.)"""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


def run_tracked(argv: list[str], env: dict[str, str], log_path: Path, limit_s: float, poll_s: float = 0.1):
    """Run a process to its end, bounded by `limit_s` (then its group is killed), sampling its peak RSS.
    -> (exit code, its rusage, peak RSS MB, wall seconds)."""
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        peak_mb = 0.0
        while True:
            peak_mb = max(peak_mb, peak_rss_mb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - started > limit_s:
                os.killpg(proc.pid, 9)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(poll_s)
    return os.waitstatus_to_exitcode(status), usage, peak_mb, time.monotonic() - started


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen, expect: int = 200) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited ({proc.returncode}) before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == expect:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer {expect} within {timeout_s}s")


@dataclass
class Service:
    name: str
    url: str
    proc: subprocess.Popen
    extra: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU of the service and its direct children (nginx workers)."""
        total = cpu_seconds(self.pid)
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        if children.exists():
            for child in children.read_text().split():
                total += cpu_seconds(int(child))
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def _spawn(argv: list[str], log: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, **kwargs)


NGINX_CONF = """\
# bench/: the fast ceiling target. Loopback only, no access log, one tiny answer.
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{ default_type text/plain; return 200 "ok\\n"; }}
  }}
}}
"""


def start_nginx(workdir: Path, workers: int = 1) -> Service:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    directory = workdir / "nginx"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(workers=workers, dir=directory, port=port))
    proc = _spawn([nginx, "-c", str(conf), "-p", str(directory)], directory / "nginx.out")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/", 15, proc)
    return Service("nginx", url, proc)


def start_demo(workdir: Path) -> Service:
    port = free_port()
    proc = _spawn([sys.executable, str(ROOT / "demo" / "demo_target.py"), "--host", "127.0.0.1", "--port",
                   str(port)], workdir / "demo.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", 20, proc)
    return Service("demo", url, proc)


def stock_influx_conf(port: int, rpc_port: int, data_dir: Path) -> str:
    """influxd 1.6.7's defaults (Debian's /etc/influxdb/influxdb.conf sets nothing else that matters here), only
    moved to loopback and a private data dir: 25 MB max-body-size, HTTP access log and query log on."""
    return (f'reporting-disabled = true\nreporting-enabled = false\nbind-address = "127.0.0.1:{rpc_port}"\n'
            f'[meta]\n  dir = "{data_dir}/meta"\n'
            f'[data]\n  dir = "{data_dir}/data"\n  wal-dir = "{data_dir}/wal"\n'
            f'[http]\n  bind-address = "127.0.0.1:{port}"\n'
            f'[monitor]\n  store-enabled = false\n')


def perfpipe_influx_conf(port: int, rpc_port: int, data_dir: Path, overrides: dict[str, str] | None = None) -> str:
    """config/influxdb.conf.template as scripts/influxd.sh renders it, with optional `section.key` -> value
    overrides (levers under test): the key's line in that section is replaced, or added under the header."""
    text = (ROOT / "config" / "influxdb.conf.template").read_text()
    text = (text.replace("@HTTP_BIND@", f"127.0.0.1:{port}").replace("@RPC_BIND@", f"127.0.0.1:{rpc_port}")
            .replace("@DATA_DIR@", str(data_dir)))
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        lines, current, done = text.splitlines(), None, False
        for i, line in enumerate(lines):
            header = re.match(r"^\s*\[+([^\]]+)\]+\s*$", line)
            if header:
                current = header.group(1)
                continue
            if current == section and re.match(rf"^\s*{re.escape(key)}\s*=", line):
                lines[i] = f"  {key} = {value}"
                done = True
                break
        if not done:
            at = next(i for i, line in enumerate(lines) if line.strip() == f"[{section}]")
            lines.insert(at + 1, f"  {key} = {value}")
        text = "\n".join(lines) + "\n"
    return text


def check_loopback_only(conf_text: str) -> None:
    """Refuse a rendered config whose listeners are not all on 127.0.0.1 (a broken override must not open a
    port on every interface)."""
    binds = re.findall(r'^\s*bind-address\s*=\s*"([^"]*)"', conf_text, re.M)
    http = re.search(r'^\[http\][^\[]*?^\s*bind-address\s*=\s*"127\.0\.0\.1:\d+"', conf_text, re.M | re.S)
    if not http or any(not b.startswith("127.0.0.1:") for b in binds):
        raise RuntimeError(f"influxd config listens beyond loopback or lacks an [http] bind: {binds}")


def start_influxd(name: str, workdir: Path, conf_for, database: str = "k6") -> Service:
    """`conf_for(port, rpc_port, data_dir)` -> config text."""
    directory = workdir / f"influxd-{name}"
    data_dir = directory / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port, rpc_port = free_port(), free_port()
    conf = directory / "influxdb.conf"
    text = conf_for(port, rpc_port, data_dir)
    check_loopback_only(text)
    conf.write_text(text)
    proc = _spawn([INFLUXD, "-config", str(conf)], directory / "influxd.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/ping", 30, proc, expect=204)
    query(url, f'CREATE DATABASE "{database}"', method="POST")
    return Service(f"influxd-{name}", url, proc, {"database": database, "conf": conf})


def query(url: str, q: str, database: str | None = None, method: str = "GET", timeout: float = 120) -> dict:
    import json
    from urllib.parse import urlencode

    params = {"q": q, "epoch": "ms"}
    if database:
        params["db"] = database
    if method == "GET":
        request = urllib.request.Request(f"{url}/query?{urlencode(params)}")
    else:
        request = urllib.request.Request(f"{url}/query", data=urlencode(params).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
