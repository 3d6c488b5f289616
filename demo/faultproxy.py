#!/usr/bin/env python3
"""A TCP proxy that injects network faults on one link (the demo API -> PostgreSQL). Python standard library only.

    python3 demo/faultproxy.py --listen 127.0.0.1:5443 --upstream 127.0.0.1:5442 --control 127.0.0.1:8091

Control API (HTTP on --control, JSON):
  GET    /faults   -> {"latency_ms": int, "partition": bool}
  PUT    /faults   body {"latency_ms": 0..60000, "partition": bool} (either or both) -> the new state;
                   400 naming the field on bad input
  DELETE /faults   -> clears every fault (restore) and returns the state
  GET    /stats    -> connections accepted/active/refused, bytes each way

latency_ms delays every chunk forwarded towards the upstream, so each request/response round trip over the
link takes that much longer. partition cuts every open connection at once and resets new ones as soon as they
are accepted (clients see "connection closed" at once, not a timeout), until it is cleared.

Every address (listen, upstream, control) must be loopback.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import queue
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_LATENCY_MS = 60_000
CHUNK = 65536


def parse_hostport(value: str, flag: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"faultproxy: {flag} must be HOST:PORT with a port 1..65535, got {value!r}")
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise SystemExit(f"faultproxy: {flag} host must be a loopback IP, got {host!r}") from None
    if not ip.is_loopback:
        raise SystemExit(f"faultproxy: refusing {flag} {host!r}: only loopback addresses may be used")
    return host, int(port)


def family_of(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency_ms = 0
        self.partition = False

    def state(self) -> dict:
        with self.lock:
            return {"latency_ms": self.latency_ms, "partition": self.partition}


def validate_faults(body) -> dict:
    """The fields of a PUT /faults body; ValueError naming the field when one is bad."""
    if not isinstance(body, dict):
        raise ValueError("body: expected a JSON object like {\"latency_ms\": 200, \"partition\": false}")
    unknown = sorted(set(body) - {"latency_ms", "partition"})
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (known: latency_ms, partition)")
    out = {}
    if "latency_ms" in body:
        v = body["latency_ms"]
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms: expected an integer 0..{MAX_LATENCY_MS}, got {v!r}")
        out["latency_ms"] = v
    if "partition" in body:
        v = body["partition"]
        if not isinstance(v, bool):
            raise ValueError(f"partition: expected true or false, got {v!r}")
        out["partition"] = v
    return out


class Proxy:
    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]):
        self.listen_addr = listen
        self.upstream = upstream
        self.faults = Faults()
        self.conns_lock = threading.Lock()
        self.conns: set[socket.socket] = set()
        self.stats = {"accepted": 0, "refused": 0, "cut": 0, "upstream_errors": 0, "bytes_up": 0, "bytes_down": 0}
        self.listener = socket.socket(family_of(listen[0]), socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(listen)
        self.listener.listen(256)

    # ---- faults -------------------------------------------------------------------------------------------
    def set_faults(self, changes: dict) -> dict:
        with self.faults.lock:
            self.faults.latency_ms = changes.get("latency_ms", self.faults.latency_ms)
            self.faults.partition = changes.get("partition", self.faults.partition)
            partition = self.faults.partition
        if partition:
            self.cut_all()
        return self.faults.state()

    def cut_all(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for s in conns:
            reset(s)
        with self.conns_lock:
            self.stats["cut"] += len(conns)

    # ---- forwarding ---------------------------------------------------------------------------------------
    def serve(self) -> None:
        while True:
            client, _ = self.listener.accept()
            with self.faults.lock:
                partitioned = self.faults.partition
            if partitioned:
                with self.conns_lock:
                    self.stats["refused"] += 1
                reset(client)
                client.close()
                continue
            threading.Thread(target=self.connect, args=(client,), daemon=True).start()

    def connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            with self.conns_lock:
                self.stats["upstream_errors"] += 1
            reset(client)
            client.close()
            return
        upstream.settimeout(None)
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.conns_lock:
            self.stats["accepted"] += 1
            self.conns.update((client, upstream))
        done = threading.Event()
        threading.Thread(target=self.pump, args=(client, upstream, True, done), daemon=True).start()
        self.pump(upstream, client, False, done)

    def pump(self, src: socket.socket, dst: socket.socket, towards_upstream: bool, done: threading.Event) -> None:
        key = "bytes_up" if towards_upstream else "bytes_down"
        delayed = DelayLine(src, self.faults) if towards_upstream else None
        try:
            while True:
                data = delayed.next() if delayed else src.recv(CHUNK)
                if not data:
                    break
                dst.sendall(data)
                with self.conns_lock:
                    self.stats[key] += len(data)
        except OSError:
            pass
        finally:
            if done.is_set():  # the other direction has finished too: close both
                with self.conns_lock:
                    self.conns.discard(src)
                    self.conns.discard(dst)
                src.close()
                dst.close()
            else:
                done.set()
                for s in (src, dst):  # wake the other direction
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass


class DelayLine:
    """Chunks read from a socket, each handed out `latency_ms` after it ARRIVED (a reader thread timestamps them),
    so back-to-back chunks are delayed once, like on a slow link, not one latency after another."""

    def __init__(self, src: socket.socket, faults: Faults):
        self.src = src
        self.faults = faults
        self.chunks: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                data = self.src.recv(CHUNK)
                with self.faults.lock:
                    latency_ms = self.faults.latency_ms
                self.chunks.put((time.monotonic() + latency_ms / 1000.0, data))
                if not data:
                    return
        except OSError:
            self.chunks.put((0.0, b""))

    def next(self) -> bytes:
        due, data = self.chunks.get()
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        return data


def reset(s: socket.socket) -> None:
    """Abort a connection with RST (SO_LINGER 0), so the peer sees the cut at once."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, proxy: Proxy):
        self.address_family = family_of(addr[0])
        self.proxy = proxy
        super().__init__(addr, ControlHandler)


class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ControlServer

    def log_message(self, format, *args):  # noqa: A002
        pass

    def send_json(self, status: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.rstrip("/") == "/faults":
            return self.send_json(200, self.server.proxy.faults.state())
        if self.path.rstrip("/") == "/stats":
            proxy = self.server.proxy
            with proxy.conns_lock:
                stats = dict(proxy.stats, active=len(proxy.conns) // 2)
            return self.send_json(200, stats)
        self.send_json(404, {"error": "not found (GET/PUT/DELETE /faults, GET /stats)"})

    def do_PUT(self):
        if self.path.rstrip("/") != "/faults":
            return self.send_json(404, {"error": "not found (PUT /faults)"})
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 <= length <= 65536:
                raise ValueError("body: must be at most 64 KiB")
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except (ValueError, UnicodeDecodeError):
                raise ValueError("body: not valid JSON") from None
            changes = validate_faults(body)
        except ValueError as exc:
            self.close_connection = True
            return self.send_json(400, {"error": str(exc)})
        self.send_json(200, self.server.proxy.set_faults(changes))

    def do_DELETE(self):
        if self.path.rstrip("/") != "/faults":
            return self.send_json(404, {"error": "not found (DELETE /faults)"})
        self.send_json(200, self.server.proxy.set_faults({"latency_ms": 0, "partition": False}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="TCP fault proxy (loopback only)")
    p.add_argument("--listen", required=True, help="HOST:PORT to accept connections on")
    p.add_argument("--upstream", required=True, help="HOST:PORT to forward them to")
    p.add_argument("--control", required=True, help="HOST:PORT of the HTTP control API")
    a = p.parse_args(argv)
    listen = parse_hostport(a.listen, "--listen")
    upstream = parse_hostport(a.upstream, "--upstream")
    control = parse_hostport(a.control, "--control")
    try:
        proxy = Proxy(listen, upstream)
        server = ControlServer(control, proxy)
    except OSError as exc:
        raise SystemExit(f"faultproxy: cannot bind: {exc}") from None

    def on_signal(signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=proxy.serve, name="proxy", daemon=True).start()
    print(f"faultproxy {listen[0]}:{listen[1]} -> {upstream[0]}:{upstream[1]}, control "
          f"http://{control[0]}:{control[1]}/faults", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        server.server_close()
        proxy.listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
