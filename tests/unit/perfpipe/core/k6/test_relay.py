"""The run relay's line filter: every line leaves with exactly this run's system tags; perfpipe's measurements and
lines cut by a newline never pass. The relay's forwarding (credentials added, nothing readable by k6) is shown
with real k6 and influxd in tests/integration/test_exposure.py."""

from __future__ import annotations

import pytest

from perfpipe.core.k6.relay import LineFilter

TAGS = {"testid": "perf_smoke:run1:smoke:try1", "test_type": "smoke", "target": "demo"}
OURS = "testid=perf_smoke:run1:smoke:try1,test_type=smoke,target=demo"


def one(line: str) -> tuple[str, LineFilter]:
    f = LineFilter(TAGS)
    return f.filter(line), f


def test_k6s_own_line_passes_unchanged():
    line = f"http_reqs,name=home,status=200,{OURS} value=1,url=\"http://127.0.0.1/a b\" 1700000000000000000"
    out, f = one(line)
    assert out == line + "\n" and (f.rewritten, f.refused) == (0, 0)


@pytest.mark.parametrize("tags", [
    "name=x,testid=other-run:x:smoke:try1,test_type=smoke,target=demo",   # another run's testid
    "name=x,testid=perf_smoke:run1:smoke:try1,test_type=load,target=demo",  # test_type overridden
    "name=x,testid=perf_smoke:run1:smoke:try1,test_type=smoke,target=prod",  # target overridden
    "name=x,test_type=smoke,target=demo",  # testid missing
    f"name=x,{OURS},testid=other",  # a duplicate
    "name=a\\,testid\\=z,testid=other,test_type=smoke,target=demo",  # escapes in the key
])
def test_system_tags_are_set_to_the_runs_own(tags):
    out, f = one(f"http_reqs,{tags} value=1 1700000000000000000")
    assert f.rewritten == 1
    key = out.split(" ")[0] if "\\ " not in out else out
    tags_out = [t for t in key.replace("\\,", "\0").split(",")[1:]]
    system = sorted(t for t in tags_out if t.split("=", 1)[0] in TAGS)
    assert system == sorted(OURS.split(","))
    assert out.endswith(" value=1 1700000000000000000\n")


@pytest.mark.parametrize("line", [
    f"perf_results,{OURS} verdict=\"pass\" 1",  # a custom metric named like perfpipe's own
    "perf_events,test_type=chaos,target=demo event=\"restore\" 1",
    f"http_reqs,{OURS} url=\"http://x/a",  # a string field cut by a newline
    "just-a-key",
    f",{OURS} value=1 1",
])
def test_perfpipe_measurements_and_broken_lines_are_refused(line):
    out, f = one(line)
    assert out == "" and f.refused == 1


def test_a_newline_smuggled_into_a_tag_value_cannot_write_perf_results():
    body = (f"http_reqs,name=x\nperf_results,target=demo,test_type=smoke verdict=\"pass\" 1,{OURS} value=1 2\n"
            f"http_reqs,{OURS} value=1 3\n")
    out, f = one(body)
    assert "perf_results" not in out
    assert out.count("\n") == 1 and f.refused == 2  # the cut-off head has no fields: refused too
    assert all(line.count("testid=perf_smoke:run1:smoke:try1") == 1 for line in out.splitlines())


# --- the remote-write relay: credentials added on the way, nothing else changed -------------------------------

class _Upstream:
    """A loopback remote-write receiver that keeps what reached it."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        got = self.got = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                got.append((self.path, dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/write?tenant=a"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_remote_write_relay_adds_the_credentials_and_passes_the_write_on_unchanged():
    import base64

    from perfpipe.core.k6.relay import RemoteWriteRelay

    upstream = _Upstream()
    try:
        with RemoteWriteRelay(upstream.url, "writer", "rw-secret") as relay:
            assert relay.url.startswith("http://127.0.0.1:") and "rw-secret" not in relay.url
            body = bytes(range(256)) * 4  # binary, as snappy-compressed protobuf is
            status = _post(relay.url, body, {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                                             "X-Prometheus-Remote-Write-Version": "0.1.0", "X-Other": "dropped"})
            refused = _post(relay.url.replace("/write", "/elsewhere"), b"x", {})
    finally:
        upstream.close()
    assert (status, refused) == (204, 403)
    [(path, headers, received)] = upstream.got
    assert path == "/api/v1/write?tenant=a" and received == body
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"writer:rw-secret").decode()
    assert (headers["Content-Encoding"], headers["X-Prometheus-Remote-Write-Version"]) == ("snappy", "0.1.0")
    assert "X-Other" not in headers


def test_the_remote_write_relay_answers_503_when_the_receiver_is_gone():
    from perfpipe.core.k6.relay import RemoteWriteRelay

    upstream = _Upstream()
    upstream.close()
    with RemoteWriteRelay(upstream.url, "writer", "rw-secret") as relay:
        assert _post(relay.url, b"x", {"Content-Type": "application/x-protobuf"}) == 503
