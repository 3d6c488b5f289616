"""The run's InfluxDB write relay: k6's influxdb output writes here, on loopback, without credentials.

Why: whatever k6 is given, a user's script can read. Credentials in k6's environment show in `__ENV` and
`/proc/self/environ`, on its command line in `/proc/self/cmdline`, in a config file to `open()`. So k6 gets
none: it writes to this relay (a thread of the k6 task's own process, 127.0.0.1, a free port, one run only),
which adds the credentials when it forwards the batch to InfluxDB.

It also owns the run's system tags (perfpipe.core.k6.command.system_tags): k6 lets a request's own tags override
`--tag`, so a script could file its samples under another run's testid, test type or target. Every line is given
this run's values. Lines in perfpipe's own measurements (`perf_*`: results, events, rollups) are refused: a script
may name a custom metric `perf_results`, or smuggle a line in through a newline in a tag value (k6 does not escape
newlines). Refused lines are counted and logged; what k6 counted then differs from what InfluxDB stored, and the
stage's reconciliation makes it inconclusive rather than a pass.

The relay answers k6 with InfluxDB's own status and body (a 413 or a 5xx still shows in k6.log).

The Prometheus remote-write output (config `outputs: [influxdb, prometheus]`) gets the same treatment when it has
credentials: RemoteWriteRelay holds them and k6 writes to it. Its bodies (snappy-compressed protobuf) are passed on
as they are: their labels are not rewritten (InfluxDB, which the gates read, is the record; Prometheus is a view).
"""

from __future__ import annotations

import base64
import http.client
import logging
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from perfpipe.core.hooks.influxdb_common import InfluxSettings

log = logging.getLogger(__name__)

# perfpipe's own measurements (perfpipe.app.measurements) all start with this; k6's and a script's never need to.
RESERVED_MEASUREMENT_PREFIX = "perf_"
# A k6 batch is at most K6_INFLUXDB_PAYLOAD_SIZE (1,000) points of a few hundred bytes; far above that is not k6.
MAX_BODY_BYTES = 64 * 2**20
FORWARD_TIMEOUT_S = 60.0
# Passed on to InfluxDB's /write; u and p are not (the relay's own credentials replace them).
FORWARDED_PARAMS = ("db", "rp", "precision", "consistency")

# Line protocol, as influxd scans it: a backslash escapes the next character; the key (measurement and tags)
# ends at the first unescaped space; tags are split at unescaped commas, a tag at its first unescaped `=`.
_KEY = re.compile(r"(?:\\.|[^\\ ])*")
_TAG = re.compile(r"(?:\\.|[^\\,])+")
_TAG_KV = re.compile(r"((?:\\.|[^\\=])*)=(.*)", re.S)


def escape_tag(value: str) -> str:
    return value.replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


class LineFilter:
    """Rewrites a batch of line protocol so every point carries exactly this run's system tags."""

    def __init__(self, system_tags: dict[str, str]):
        self.system_tags = {k: escape_tag(v) for k, v in system_tags.items()}
        self._suffix = "".join(f",{k}={v}" for k, v in self.system_tags.items())
        self.lines = self.rewritten = self.refused = 0
        self.first_refused = ""
        self._lock = threading.Lock()

    def filter(self, body: str) -> str:
        out, rewritten, refused, first = [], 0, 0, ""
        system = self.system_tags
        for line in body.split("\n"):
            if not line.strip():
                continue
            space = line.find(" ")
            if space < 0:
                key, rest = line, ""
            elif "\\" in line[:space]:  # escapes in the key: the slow, exact scan
                key = _KEY.match(line).group(0)
                rest = line[len(key):]
            else:
                key, rest = line[:space], line[space:]
            parts = _TAG.findall(key) if "\\" in key else key.split(",")
            measurement = parts[0] if parts else ""
            fields = rest.replace('\\"', "")
            if (not measurement or measurement.startswith(RESERVED_MEASUREMENT_PREFIX) or not rest
                    or fields.count('"') % 2):  # an odd quote: a string field cut by a newline
                refused += 1
                first = first or line[:200]
                continue
            kept, hits, foreign = [], set(), False
            for tag in parts[1:]:
                if "\\" in tag:
                    match = _TAG_KV.fullmatch(tag)
                    name, value = match.groups() if match else (tag, "")
                else:
                    name, _, value = tag.partition("=")
                if name in system:
                    foreign = foreign or name in hits or system[name] != value
                    hits.add(name)
                    continue
                kept.append(tag)
            if not foreign and len(hits) == len(system):
                out.append(line)  # k6's own line, untouched (the common case)
                continue
            rewritten += 1
            out.append(",".join([measurement, *kept]) + self._suffix + rest)
        with self._lock:
            self.lines += len(out) + refused
            self.rewritten += rewritten
            self.refused += refused
            self.first_refused = self.first_refused or first
        return "\n".join(out) + "\n" if out else ""


def _basic_auth(username: str | None, password: str | None) -> str | None:
    if not (username or password):
        return None
    return "Basic " + base64.b64encode(f"{username or ''}:{password or ''}".encode()).decode()


class _LoopbackRelay:
    """A one-run HTTP relay on 127.0.0.1 (a free port) in the k6 task's own process: k6 writes to it, it forwards
    with the credentials k6 never sees. Subclasses handle a POST in `_handle`."""

    name = "relay"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    def start(self):
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: k6 reuses its connection for every batch

            def do_POST(self):  # noqa: N802
                relay._handle(self)

            def do_GET(self):  # noqa: N802  (queries, /debug ...: k6 only writes)
                relay._answer(self, 405, b'{"error":"the run relay forwards writes only"}')

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=self.name, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """After k6 exited (its last flush is answered by then): stop serving."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        self._closed()

    def _closed(self) -> None:
        pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json"):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _body(handler: BaseHTTPRequestHandler) -> tuple[bytes | None, tuple[int, bytes] | None]:
        """The request body, or the refusal to answer (no length, too large)."""
        try:
            length = int(handler.headers.get("Content-Length", ""))
        except ValueError:
            return None, (411, b'{"error":"Content-Length required"}')
        if not 0 <= length <= MAX_BODY_BYTES:
            return None, (413, b'{"error":"batch too large for the run relay"}')
        return handler.rfile.read(length), None

    @staticmethod
    def _post(scheme: str, netloc: str, path: str, body: bytes, headers: dict[str, str],
              upstream: str) -> tuple[int, bytes, str]:
        connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        conn = connection_class(netloc, timeout=FORWARD_TIMEOUT_S)
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()  # never follows a redirect: it is passed back to k6 as it is
            return response.status, response.read(), response.getheader("Content-Type", "application/json")
        except OSError as exc:
            detail = f'{{"error":"the run relay could not reach {upstream}: {type(exc).__name__}"}}'
            return 503, detail.encode(), "application/json"
        finally:
            conn.close()


class WriteRelay(_LoopbackRelay):
    """`with WriteRelay(influx, system_tags) as relay:` k6 writes to `relay.settings` (loopback, no credentials)."""

    name = "influx-relay"

    def __init__(self, influx: InfluxSettings, system_tags: dict[str, str]):
        super().__init__()
        self.influx = influx
        self.filter = LineFilter(system_tags)
        target = urllib.parse.urlsplit(influx.url)
        self._scheme, self._netloc = target.scheme, target.netloc
        self._base_path = target.path.rstrip("/")
        self._auth = _basic_auth(influx.username, influx.password)

    @property
    def settings(self) -> InfluxSettings:
        """What k6 is given: the relay's address and the database, nothing secret."""
        return InfluxSettings(url=f"http://127.0.0.1:{self.port}", database=self.influx.database)

    def _closed(self) -> None:
        f = self.filter
        if f.rewritten or f.refused:
            log.warning("InfluxDB relay: of %d lines, %d had their system tags (%s) set to this run's and %d were "
                        "refused (perfpipe's measurements or malformed; first: %r)", f.lines, f.rewritten,
                        ", ".join(f.system_tags), f.refused, f.first_refused)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path, _, query = handler.path.partition("?")
        params = urllib.parse.parse_qs(query)
        if path != "/write" or params.get("db") != [self.influx.database]:
            return self._answer(handler, 403, b'{"error":"the run relay writes to the run\'s database only"}')
        if handler.headers.get("Content-Encoding", "identity") != "identity":
            return self._answer(handler, 415, b'{"error":"compressed writes are not relayed"}')
        raw, refusal = self._body(handler)
        if refusal:
            return self._answer(handler, *refusal)
        lines = self.filter.filter(raw.decode("utf-8", errors="surrogateescape")).encode(
            "utf-8", errors="surrogateescape")
        if not lines:
            handler.send_response(204)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return None
        forward = urllib.parse.urlencode([(k, v) for k in FORWARDED_PARAMS for v in params.get(k, [])])
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._auth:
            headers["Authorization"] = self._auth
        status, reply, content_type = self._post(self._scheme, self._netloc, f"{self._base_path}/write?{forward}",
                                                 lines, headers, "InfluxDB")
        return self._answer(handler, status, reply, content_type)


# What a remote-write request carries besides its body; passed on, nothing else (k6 sends no Authorization here).
REMOTE_WRITE_HEADERS = ("Content-Type", "Content-Encoding", "X-Prometheus-Remote-Write-Version", "User-Agent")


class RemoteWriteRelay(_LoopbackRelay):
    """`with RemoteWriteRelay(url, username, password) as relay:` k6's remote-write output writes to `relay.url`
    (loopback, no credentials); the relay adds the Basic credentials and posts to the configured URL."""

    name = "remote-write-relay"

    def __init__(self, remote_write_url: str, username: str | None, password: str | None):
        super().__init__()
        target = urllib.parse.urlsplit(remote_write_url)
        self._scheme, self._netloc = target.scheme, target.netloc
        self._path = target.path or "/"
        if target.query:
            self._path += "?" + target.query
        self._auth = _basic_auth(username, password)

    @property
    def url(self) -> str:
        """What k6 is given as K6_PROMETHEUS_RW_SERVER_URL."""
        return f"http://127.0.0.1:{self.port}/write"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path != "/write":
            return self._answer(handler, 403, b'{"error":"the run relay forwards remote writes only"}')
        body, refusal = self._body(handler)
        if refusal:
            return self._answer(handler, *refusal)
        headers = {name: handler.headers[name] for name in REMOTE_WRITE_HEADERS if handler.headers.get(name)}
        if self._auth:
            headers["Authorization"] = self._auth
        status, reply, content_type = self._post(self._scheme, self._netloc, self._path, body, headers,
                                                 "the remote-write URL")
        return self._answer(handler, status, reply, content_type)
