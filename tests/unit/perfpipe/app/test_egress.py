"""perfpipe.app.egress: perfpipe's own requests go to the address the allowlist check resolved, with the URL's name
in the Host header, and a redirect is handed back, never followed (loopback servers; names from a fake resolver)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from perfpipe.app import egress
from perfpipe.core.errors import InputError, TargetNotAllowedError


@pytest.fixture
def server():
    seen: list[tuple[str, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.command, self.path, self.headers.get("Host")))
            self.send_response(302 if self.path == "/away" else 200)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], seen
    httpd.shutdown()
    httpd.server_close()


def test_a_name_is_resolved_once_and_the_request_goes_to_that_address_with_the_name_as_host(server, monkeypatch):
    port, seen = server
    asked = []
    real = socket.getaddrinfo  # the unit conftest's guard: literal addresses and loopback names only

    def getaddrinfo(host, *args, **kwargs):
        asked.append(host)
        if host == "svc.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    dest = egress.checked_destination(f"http://svc.test:{port}/stats?x=1", "target.metrics_url",
                                      [f"127.0.0.1:{port}"])
    for _ in range(3):
        assert egress.send(dest).status == 200
    assert asked == ["svc.test"] + ["127.0.0.1"] * 3  # the name once, at the check; each send the checked address
    assert seen == [("GET", "/stats?x=1", f"svc.test:{port}")] * 3


def test_a_redirect_is_returned_not_followed(server):
    port, seen = server
    reply = egress.send(egress.checked_destination(f"http://127.0.0.1:{port}/away", "f", ["127.0.0.1"]))
    assert reply.redirect and reply.headers["location"] == "http://127.0.0.1:1/elsewhere"
    assert [path for _, path, _ in seen] == ["/away"]


@pytest.mark.parametrize("url, allowlist, message", [
    ("http://127.0.0.1:8091/faults", ["127.0.0.1:8090"], "port 8091 of host '127.0.0.1' is not in the allowlist"),
    ("http://10.0.0.1/x", ["127.0.0.0/8"], "host '10.0.0.1' (10.0.0.1) is not in the allowlist"),
])
def test_a_destination_outside_the_allowlist_is_refused_naming_the_field(url, allowlist, message):
    with pytest.raises(TargetNotAllowedError) as exc:
        egress.checked_destination(url, "chaos.components.link.control_url", allowlist)
    assert exc.value.field == "chaos.components.link.control_url" and message in str(exc.value)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/", "http://127.0.0.1:99999/"])
def test_a_malformed_url_is_refused(url):
    with pytest.raises(InputError) as exc:
        egress.checked_destination(url, "target.metrics_url", ["127.0.0.0/8"])
    assert exc.value.field == "target.metrics_url"


def test_a_failed_connection_is_an_egress_error():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(egress.EgressError, match=f"127.0.0.1:{port}/"):
        egress.send(egress.checked_destination(f"http://127.0.0.1:{port}/", "f", ["127.0.0.1"]), timeout=1)
