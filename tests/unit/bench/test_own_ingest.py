"""bench/own_ingest.py (the measured own-ingestion alternative): k6 CSV rows -> InfluxDB line protocol in k6's schema, no two points of a series on one ns."""

from __future__ import annotations

import gzip

import pytest

from perfpipe.core.errors import InfrastructureError
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from own_ingest import IngestStats, influx_writer, load_csv  # noqa: E402

HEADER = ("metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,method,name,proto,"
          "scenario,service,status,subproto,tls_version,url,extra_tags,metadata\n")
REQ = "http_req_duration,{t},11.047209,,,,true,,GET,/api/x,HTTP/1.1,load,,200,,,/api/x?id=1,{extra},\n"


def write_csv(path, rows: list[str], gz: bool = False):
    text = HEADER + "".join(rows)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def collect(path) -> tuple[list[str], IngestStats]:
    lines: list[str] = []
    stats = load_csv(path, lines.extend, batch_lines=2)
    return lines, stats


def test_k6_schema_tags_sorted_url_as_field_empty_tags_dropped(tmp_path):
    path = write_csv(tmp_path / "k6.csv", [REQ.format(t=1795343694042958619, extra="testid=a:b:c&target=x y")])
    [line], stats = collect(path)
    assert line == ('http_req_duration,expected_response=true,method=GET,name=/api/x,proto=HTTP/1.1,scenario=load,'
                    'status=200,target=x\\ y,testid=a:b:c value=11.047209,url="/api/x?id=1" 1795343694042958619')
    assert (stats.rows, stats.points, stats.moved) == (1, 1, 0)


def test_same_series_same_nanosecond_moves_on_by_one_ns(tmp_path):
    rows = [REQ.format(t=100, extra="testid=t")] * 3 + [REQ.format(t=101, extra="testid=t")]
    lines, stats = collect(write_csv(tmp_path / "k6.csv", rows))
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["100", "101", "102", "103"]
    assert stats.moved == 1 + 2 + 2  # 100 -> 101, 100 -> 102 (past 101), 101 -> 103
    assert stats.points == 4


def test_other_series_on_the_same_nanosecond_keep_their_time(tmp_path):
    rows = [REQ.format(t=100, extra="testid=t"), REQ.format(t=100, extra="testid=u"),
            "http_reqs,100,1.000000,,,,true,,GET,/api/x,HTTP/1.1,load,,200,,,/api/x,testid=t,\n"]
    lines, stats = collect(write_csv(tmp_path / "k6.csv", rows))
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["100", "100", "100"] and stats.moved == 0


def test_gzip_file_and_checks_with_spaces(tmp_path):
    rows = ["checks,5,1.000000,status 200,,,,,,,,load,,,,,,testid=t,\n"]
    [line], _ = collect(write_csv(tmp_path / "k6.csv.gz", rows, gz=True))
    assert line == "checks,check=status\\ 200,scenario=load,testid=t value=1.0 5"


def test_refused_batch_raises_naming_the_status(tmp_path):
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(413)
            self.end_headers()
            self.wfile.write(b'{"error":"Request Entity Too Large"}')

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        write = influx_writer(f"http://127.0.0.1:{server.server_port}", "k6")
        with pytest.raises(InfrastructureError, match="413"):
            load_csv(write_csv(tmp_path / "k6.csv", [REQ.format(t=1, extra="testid=t")]), write)
    finally:
        server.shutdown()
        server.server_close()
