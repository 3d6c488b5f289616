"""The fault proxy's input checks, and its forwarding/latency/partition against a real echo server on loopback."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from demo import faultproxy  # noqa: E402


@pytest.mark.parametrize("body,message", [
    ([], "body: expected a JSON object"),
    ({"latency_ms": -1}, "latency_ms: expected an integer 0..60000, got -1"),
    ({"latency_ms": 1.5}, "latency_ms: expected an integer 0..60000, got 1.5"),
    ({"latency_ms": True}, "latency_ms: expected an integer 0..60000, got True"),
    ({"partition": "yes"}, "partition: expected true or false, got 'yes'"),
    ({"lag": 1}, "lag: unknown field (known: latency_ms, partition)"),
])
def test_bad_fault_bodies_are_refused_naming_the_field(body, message):
    with pytest.raises(ValueError) as err:
        faultproxy.validate_faults(body)
    assert str(err.value).startswith(message)


def test_good_fault_bodies():
    assert faultproxy.validate_faults({}) == {}
    assert faultproxy.validate_faults({"latency_ms": 200, "partition": False}) == {"latency_ms": 200, "partition": False}


@pytest.mark.parametrize("value", ["0.0.0.0:5443", "10.0.0.1:5443", "example.com:80", "127.0.0.1", "127.0.0.1:0",
                                   "127.0.0.1:70000"])
def test_non_loopback_or_malformed_addresses_are_refused(value):
    with pytest.raises(SystemExit) as err:
        faultproxy.parse_hostport(value, "--upstream")
    assert "--upstream" in str(err.value)


def test_loopback_addresses_are_accepted():
    assert faultproxy.parse_hostport("127.0.0.1:5442", "--upstream") == ("127.0.0.1", 5442)
    assert faultproxy.parse_hostport("localhost:5442", "--upstream") == ("127.0.0.1", 5442)
    assert faultproxy.parse_hostport("[::1]:5442", "--upstream") == ("::1", 5442)


@pytest.fixture
def proxied_echo():
    """An echo server and a proxy in front of it (threads in this process, loopback, free ports)."""
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(16)
    stop = threading.Event()

    def serve():
        echo.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = echo.accept()
            except OSError:
                continue
            threading.Thread(target=pump, args=(conn,), daemon=True).start()

    def pump(conn):
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except OSError:
                pass

    threading.Thread(target=serve, daemon=True).start()
    proxy = faultproxy.Proxy(("127.0.0.1", 0), echo.getsockname())
    threading.Thread(target=proxy.serve, daemon=True).start()
    yield proxy
    stop.set()
    proxy.listener.close()
    echo.close()


def round_trip(proxy, payload=b"ping") -> tuple[bytes, float]:
    with socket.create_connection(proxy.listener.getsockname(), timeout=3) as s:
        start = time.monotonic()
        s.sendall(payload)
        return s.recv(4096), time.monotonic() - start


def test_forwarding_latency_and_partition(proxied_echo):
    proxy = proxied_echo
    data, fast = round_trip(proxy)
    assert data == b"ping"
    proxy.set_faults({"latency_ms": 150})
    data, slow = round_trip(proxy)
    assert data == b"ping" and slow >= 0.15 > fast

    held = socket.create_connection(proxy.listener.getsockname(), timeout=3)
    held.sendall(b"x")
    assert held.recv(10) == b"x"
    proxy.set_faults({"partition": True})
    with pytest.raises(OSError):  # the open connection is cut (RST) ...
        held.sendall(b"y")
        if held.recv(10) == b"":
            raise ConnectionResetError("closed")
    held.close()
    with pytest.raises(OSError):  # ... and new ones are reset at once
        data, _ = round_trip(proxy)
        if data == b"":
            raise ConnectionResetError("closed")
    assert proxy.set_faults({"latency_ms": 0, "partition": False}) == {"latency_ms": 0, "partition": False}
    assert round_trip(proxy)[0] == b"ping"
    assert proxy.stats["refused"] >= 1 and proxy.stats["cut"] >= 2


def test_control_api(proxied_echo):
    server = faultproxy.ControlServer(("127.0.0.1", 0), proxied_echo)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/faults"
    try:
        def req(method, body=None):
            r = urllib.request.Request(base, method=method, data=json.dumps(body).encode() if body is not None else None)
            with urllib.request.urlopen(r, timeout=3) as resp:
                return json.loads(resp.read())

        assert req("GET") == {"latency_ms": 0, "partition": False}
        assert req("PUT", {"latency_ms": 50}) == {"latency_ms": 50, "partition": False}
        assert req("DELETE") == {"latency_ms": 0, "partition": False}
    finally:
        server.shutdown()
        server.server_close()
