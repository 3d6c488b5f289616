"""The one path for every request perfpipe itself sends toward a target: the soak/chaos memory sampler, the chaos
fault proxy's control calls and any probe. k6's own requests are confined by its run options instead
(perfpipe.core.k6.command: pinned hosts, no redirects of its own; k6-scripts/lib/perfpipe.js: same-origin redirects).

    dest = checked_destination("http://127.0.0.1:8090/__stats", "target.metrics_url")   # before any request
    reply = send(dest)                                                                      # each time

checked_destination resolves the host ONCE and checks host and port against the allowlist (perfpipe.app.targets,
the one owner of allowlist rules); send() connects to that checked address only (the Host header keeps the name),
never through a proxy from the environment, and never follows a redirect: a 3xx is handed back as it came, so a
target cannot send perfpipe's own requests anywhere the check did not see.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# The module object, not its names: perfpipe.app.targets imports perfpipe.app.chaos, whose injectors use this module,
# so targets may still be loading when this module is; its functions are looked up at call time.
from perfpipe.app import targets as allowlist
from perfpipe.app.config import settings
from perfpipe.core.errors import InputError

MAX_BODY_BYTES = 1 << 20  # a metrics or control answer is small; a bigger one is cut here, never read whole


class EgressError(Exception):
    """A checked request that could not be completed (connection, timeout, redirect refused)."""


@dataclass(frozen=True)
class Destination:
    """A URL whose host and port passed the allowlist, and the one address it was resolved to."""

    url: str
    scheme: str
    host: str  # as in the URL (the Host header and TLS name)
    port: int
    address: str  # where the connection goes: the check's own result
    target: str  # path and query

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)

    @property
    def redirect(self) -> bool:
        return 300 <= self.status < 400


def checked_destination(url: str, where: str, allowlist_entries: list[str] | None = None) -> Destination:
    """`url` -> a Destination, or InputError/TargetNotAllowedError naming `where` before any request.
    `allowlist_entries`: the deployment's allowlist (config/perfpipe.yaml) unless given."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(where, f"expected an http(s) URL with a host, got {url!r}")
    if parts.username or parts.password:
        raise InputError(where, "must not contain credentials")
    try:
        parts.port
    except ValueError:
        raise InputError(where, f"bad port in {url!r}") from None
    entries = settings()["allowlist"] if allowlist_entries is None else allowlist_entries
    addresses = allowlist.check_target_allowed(url, entries, where)
    host, port = allowlist.url_host_port(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Destination(url=url, scheme=parts.scheme, host=host, port=port, address=addresses[0], target=target)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address, whatever the name resolves to now."""

    def __init__(self, dest: Destination, timeout: float):
        super().__init__(dest.address, dest.port, timeout=timeout)
        self.dest = dest

    def connect(self) -> None:
        self.sock = socket.create_connection((self.dest.address, self.dest.port), self.timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    def connect(self) -> None:
        super().connect()
        self.sock = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self.dest.host)


def send(dest: Destination, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5.0) -> Reply:
    """One request to the checked address; a redirect is returned, not followed. EgressError when it fails."""
    kind = _PinnedHTTPSConnection if dest.scheme == "https" else _PinnedHTTPConnection
    conn = kind(dest, timeout)
    try:
        conn.putrequest(method, dest.target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", dest.host_header)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        data = response.read(MAX_BODY_BYTES)
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    except (OSError, http.client.HTTPException) as exc:
        raise EgressError(f"{method} {dest.url} failed: {exc} (address {dest.address})") from None
    finally:
        conn.close()
