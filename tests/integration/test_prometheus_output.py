"""outputs: [influxdb, prometheus] for real: k6 remote-writes to a receiver on loopback while the gates still read
InfluxDB. The receiver decodes what k6 sends (snappy-compressed protobuf WriteRequest) far enough to find the
run's series and labels."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.integration


def snappy_decompress(data: bytes) -> bytes:
    """The snappy block format (what Prometheus remote write uses): a varint length, then literals and copies."""
    def varint(pos: int) -> tuple[int, int]:
        shift = result = 0
        while True:
            byte = data[pos]
            result |= (byte & 0x7F) << shift
            pos += 1
            if not byte & 0x80:
                return result, pos
            shift += 7

    length, pos = varint(0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            size = tag >> 2
            if size >= 60:
                extra = size - 59
                size = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            size += 1
            out += data[pos:pos + size]
            pos += size
            continue
        if kind == 1:
            size, offset = 4 + ((tag >> 2) & 7), ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            size, offset = (tag >> 2) + 1, int.from_bytes(data[pos:pos + 2], "little")
            pos += 2
        else:
            size, offset = (tag >> 2) + 1, int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        for _ in range(size):  # copies may overlap their own output
            out.append(out[-offset])
    assert len(out) == length, "snappy length mismatch"
    return bytes(out)


class _Receiver(BaseHTTPRequestHandler):
    writes: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).writes.append({"path": self.path, "encoding": self.headers.get("Content-Encoding"),
                                  "type": self.headers.get("Content-Type"), "body": snappy_decompress(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.writes = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/write", _Receiver.writes
    server.shutdown()
    server.server_close()


def test_snappy_decompress_literals_and_copies():
    # "abcabcabcd": literal "abc", a copy (offset 3, length 6), literal "d"
    assert snappy_decompress(bytes([10, 2 << 2, 97, 98, 99, 1 | ((6 - 4) << 2), 3, 0, 100])) == b"abcabcabcd"


def test_smoke_with_influxdb_and_prometheus_outputs(cli, receiver):
    url, writes = receiver
    result = cli("run", "smoke", "--target", "demo", "--profile", "quick", "--json",
                 env={"PERFPIPE_OUTPUTS": "influxdb,prometheus", "PERFPIPE_PROMETHEUS_RW_URL": url})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    [stage] = json.loads(result.stdout)["stages"]
    assert stage["verdict"] == "pass" and stage["metrics_complete"] is True  # InfluxDB still complete

    assert writes, "k6 sent nothing to the remote-write receiver"
    assert {(w["path"], w["encoding"], w["type"]) for w in writes} == {
        ("/api/v1/write", "snappy", "application/x-protobuf")}
    series = b"".join(w["body"] for w in writes)
    for expected in (b"k6_http_reqs_total", b"k6_http_req_duration_p95", b"testid", b"test_type", b"smoke",
                     b"target", b"demo"):
        assert expected in series, expected
    assert stage["testid"].encode() in series
