"""perfpipe demo shop API: a JSON HTTP API served by several worker processes sharing one listening socket,
with cache-aside reads through Redis and storage in PostgreSQL (or in memory when no --database-url is given).

    python demo/demo_target.py --host 127.0.0.1 --port 8090 [--workers 2] [--redis-url redis://127.0.0.1:6390/0]
        [--database-url postgresql://demo@127.0.0.1:5443/demo] [--latency-ms 0] [--error-rate 0.0]
        [--max-concurrency 0] [--cache-ttl-s 30] [--db-pool-size 8] [--container]

It binds loopback addresses only (127.0.0.0/8, ::1, localhost) and connects to Redis/PostgreSQL on loopback
only. `--container` (accepted only inside a container, where /.dockerenv exists) lifts both rules for
docker-compose, where the services are other containers.

Endpoints (all JSON):
  GET  /health                      200 {"status": "ok"|"degraded", "cache": bool, "database": bool} while up
  GET  /api/products[?limit=N]      list of the seeded products (first N)
  GET  /api/products/<id>           one product, 404 if unknown
  GET  /api/users/<id>              one user (50 seeded + created ones), 404 if unknown
  POST /api/users                   {"name": str, "email": str} (both optional) -> 201 with the new user
  POST /api/checkout                {"user_id": int, "items": [{"product_id": int, "qty": int}, ...]}
                                    -> 201 {"order_id": ...}; 400 on a bad body (including unknown ids)
  GET  /api/broken                  always 500 (for failure tests)
  GET  /__stats                     {"requests": N, "by_path": {...}, "rss_bytes", "workers", "cache_hits", ...}
                                    summed over all workers; counts every request but /__stats*
  POST /__stats/reset               zero the counters (all workers)

--latency-ms adds a sleep to every /api/* request; --error-rate answers that share of /api/* requests with
500; --max-concurrency caps the requests in progress over ALL workers (0 = no cap): over the cap the answer
is 503 at once.

Faults: Redis down, paused or slow -> reads come from PostgreSQL (slower, not errors); PostgreSQL down, paused
or cut off -> 503 {"error": "database unavailable"} within ~1 s for requests that need it (cached reads still
succeed). Both recover on their own when the service is back.
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import json
import logging
import multiprocessing
import os
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from demo.cache import NoCache, RedisCache
from demo.storage import MAX_QTY, BadInput, DbUnavailable, MemoryStore, PostgresStore, order_lines

log = logging.getLogger("demo")

MAX_BODY = 1 << 20  # 1 MiB
MAX_LIST_LIMIT = 1000  # list sizes above this share one cache key (there are far fewer products)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
COUNTERS = ["requests", "rejected_503", "max_in_flight", "cache_hits", "cache_misses", "cache_errors",
            "cache_skipped", "db_errors", "db_skipped"]
STATUS_SLOTS = 600  # by_status indexed by HTTP status code


class BadRequest(Exception):
    pass


# ------------------------------------------------------------------------------------------ shared state


class SharedStats:
    """Counters in shared memory, created before the workers fork: every worker adds to the same numbers, so
    /__stats and the --max-concurrency cap are global. by_path (open-ended keys) stays per worker and is
    gathered from the siblings over abstract unix sockets when /__stats is asked."""

    def __init__(self, workers: int):
        self.workers = workers
        self.lock = multiprocessing.Lock()
        self.values = multiprocessing.RawArray("q", len(COUNTERS))
        self.by_status = multiprocessing.RawArray("q", STATUS_SLOTS)
        self.in_flight = multiprocessing.RawArray("q", workers)  # per worker slot: a dead worker's share is freed
        self.by_worker = multiprocessing.RawArray("q", workers)
        self.pids = multiprocessing.RawArray("q", workers)
        self.index = {name: i for i, name in enumerate(COUNTERS)}
        self.master_pid = os.getpid()
        self.started = time.time()

    def incr(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.values[self.index[name]] += n

    def enter(self, slot: int, cap: int) -> bool:
        """Count a request; take a concurrency slot unless the global cap is reached (then False)."""
        with self.lock:
            self.values[0] += 1
            self.by_worker[slot] += 1
            in_flight = sum(self.in_flight)
            if cap and in_flight >= cap:
                self.values[self.index["rejected_503"]] += 1
                return False
            self.in_flight[slot] += 1
            if in_flight + 1 > self.values[self.index["max_in_flight"]]:
                self.values[self.index["max_in_flight"]] = in_flight + 1
            return True

    def leave(self, slot: int, took_slot: bool, status: int) -> None:
        with self.lock:
            if took_slot:
                self.in_flight[slot] -= 1
            if 0 < status < STATUS_SLOTS:
                self.by_status[status] += 1

    def reset(self) -> None:
        with self.lock:
            for i in range(len(COUNTERS)):
                self.values[i] = 0
            for i in range(STATUS_SLOTS):
                self.by_status[i] = 0
            for i in range(self.workers):
                self.by_worker[i] = 0

    def snapshot(self) -> dict:
        with self.lock:
            values = {name: self.values[i] for name, i in self.index.items()}
            by_status = {str(code): n for code, n in enumerate(self.by_status) if n}
            in_flight = sum(self.in_flight)
            pids = [p for p in self.pids if p]
            by_worker = {str(self.pids[i]): self.by_worker[i] for i in range(self.workers) if self.pids[i]}
        return {**values, "by_status": by_status, "in_flight": in_flight, "worker_pids": pids,
                "by_worker": by_worker}

    def sibling_address(self, slot: int) -> str:
        return f"\0perfpipe-demo-{self.master_pid}-{slot}"


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


# ------------------------------------------------------------------------------------------------ server


class WorkerServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, sock: socket.socket, opts, slot: int, shared: SharedStats, store, cache):
        self.address_family = sock.family
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock  # the listening socket the master bound: all workers accept from it
        self.opts = opts
        self.slot = slot
        self.shared = shared
        self.store = store
        self.cache = cache
        self.rng = random.Random()
        self.rng_lock = threading.Lock()
        self.paths_lock = threading.Lock()
        self.by_path: dict[str, int] = {}

    def count_path(self, path: str) -> None:
        with self.paths_lock:
            self.by_path[path] = self.by_path.get(path, 0) + 1

    def take_paths(self, reset: bool) -> dict:
        with self.paths_lock:
            paths = dict(self.by_path)
            if reset:
                self.by_path.clear()
        return paths

    def handle_error(self, request, client_address) -> None:
        # Clients that hang up mid-request (k6 at the end of a run) are normal: stay quiet about them.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)

    def chance(self, p: float) -> bool:
        if p <= 0:
            return False
        with self.rng_lock:
            return self.rng.random() < p

    # ---- stats over all workers ---------------------------------------------------------------------------
    def serve_siblings(self) -> None:
        """Answer the other workers' by_path questions: b"S" = snapshot, b"R" = snapshot and reset."""
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.shared.sibling_address(self.slot))
        listener.listen(16)
        while True:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(1.0)
                try:
                    cmd = conn.recv(1)
                    conn.sendall(json.dumps(self.take_paths(reset=cmd == b"R")).encode())
                except OSError:
                    pass

    def ask_siblings(self, cmd: bytes) -> tuple[list[dict], int]:
        answers, unreachable = [], 0
        for slot in range(self.shared.workers):
            if slot == self.slot:
                continue
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(0.5)  # a paused sibling must not hang /__stats
                    s.connect(self.shared.sibling_address(slot))
                    s.sendall(cmd)
                    chunks = []
                    while chunk := s.recv(65536):
                        chunks.append(chunk)
                answers.append(json.loads(b"".join(chunks)))
            except (OSError, ValueError):
                unreachable += 1
        return answers, unreachable

    def stats(self) -> dict:
        own = self.take_paths(reset=False)
        others, unreachable = self.ask_siblings(b"S")
        by_path: dict[str, int] = {}
        for paths in [own, *others]:
            for path, n in paths.items():
                by_path[path] = by_path.get(path, 0) + n
        snap = self.shared.snapshot()
        api_pids = [self.shared.master_pid, *snap["worker_pids"]]
        return {
            "requests": snap["requests"],
            "by_path": by_path,
            "by_status": snap["by_status"],
            "rejected_503": snap["rejected_503"],
            "in_flight": snap["in_flight"],
            "max_in_flight": snap["max_in_flight"],
            "uptime_s": round(time.time() - self.shared.started, 3),
            "workers": self.shared.workers,
            "workers_unreachable": unreachable,
            "worker_pids": snap["worker_pids"],
            "by_worker": snap["by_worker"],
            "rss_bytes": sum(rss_bytes(pid) for pid in api_pids),  # master + workers
            "storage": self.store.kind,
            "cache_configured": self.cache.configured,
            **{name: snap[name] for name in ("cache_hits", "cache_misses", "cache_errors", "cache_skipped",
                                             "db_errors", "db_skipped")},
        }

    def reset_stats(self) -> None:
        self.shared.reset()
        self.take_paths(reset=True)
        self.ask_siblings(b"R")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "perfpipe-demo/2.0"
    timeout = 60  # idle keep-alive connections give their thread back after a minute
    # Buffered writes (flushed once per response) and TCP_NODELAY: headers and body leave in one segment,
    # without the ~40 ms Nagle/delayed-ACK stall of two small writes.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: WorkerServer

    def version_string(self) -> str:
        return self.server_version

    # ---- plumbing -------------------------------------------------------------------------------------
    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def send_body(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.status = status

    def send_json(self, status: int, obj, headers: dict | None = None) -> None:
        self.send_body(status, encode(obj), headers)

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise BadRequest("chunked bodies are not supported: send Content-Length")
        raw = self.headers.get("Content-Length")
        if not raw:
            return b""
        try:
            length = int(raw)
        except ValueError:
            self.close_connection = True
            raise BadRequest("bad Content-Length") from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise BadRequest(f"body must be 0..{MAX_BODY} bytes")
        self._body_read = True
        return self.rfile.read(length)

    def drain_body(self) -> None:
        """Keep the connection usable when a handler did not read the request body."""
        if getattr(self, "_body_read", False):
            return
        raw = self.headers.get("Content-Length")
        if not raw:
            return
        try:
            length = int(raw)
        except ValueError:
            self.close_connection = True
            return
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)
        elif length != 0:
            self.close_connection = True

    def json_body(self):
        data = self.read_body()
        try:
            return json.loads(data or b"null")
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("body is not valid JSON") from None

    # ---- dispatch -------------------------------------------------------------------------------------
    def do_GET(self):
        self.handle_any()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def handle_any(self) -> None:
        self._body_read = False
        self.status = 0
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        server, shared = self.server, self.server.shared
        counted = not path.startswith("/__stats")
        slot = False
        try:
            if counted:
                server.count_path(path)
                slot = shared.enter(server.slot, server.opts.max_concurrency)
                if not slot:
                    self.drain_body()
                    self.send_json(503, {"error": "over capacity"}, {"Retry-After": "1"})
                    return
            try:
                self.route(path, query)
            except BadRequest as e:
                self.send_json(400, {"error": str(e)})
            except BadInput as e:
                self.send_json(400, {"error": str(e)})
            except DbUnavailable:
                self.send_json(503, {"error": "database unavailable"}, {"Retry-After": "1"})
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as e:  # never let a bug kill the connection silently
                log.exception("internal error on %s %s", self.command, path)
                self.close_connection = True
                self.send_json(500, {"error": f"internal error: {type(e).__name__}"})
            self.drain_body()
        finally:
            if counted:
                shared.leave(server.slot, slot, self.status)

    def route(self, path: str, query: dict) -> None:
        method = "GET" if self.command == "HEAD" else self.command
        server, opts = self.server, self.server.opts

        if path == "/health":
            return self.only(method, "GET") or self.health()
        if path == "/__stats":
            return self.only(method, "GET") or self.send_json(200, server.stats())
        if path == "/__stats/reset":
            if self.only(method, "POST"):
                return
            server.reset_stats()
            return self.send_json(200, {"reset": True})

        if not path.startswith("/api/"):
            return self.send_json(404, {"error": "not found", "path": path})

        if opts.latency_ms > 0:
            time.sleep(opts.latency_ms / 1000.0)
        if path == "/api/broken":
            return self.send_json(500, {"error": "broken on purpose"})
        if server.chance(opts.error_rate):
            return self.send_json(500, {"error": "injected failure"})

        segs = path.split("/")[2:]  # after "/api/"
        if segs == ["products"]:
            if self.only(method, "GET"):
                return
            limit = None
            if "limit" in query:
                try:
                    limit = int(query["limit"][-1])
                except ValueError:
                    raise BadRequest("limit must be an integer") from None
                if limit < 0:
                    raise BadRequest("limit must be >= 0")
                limit = min(limit, MAX_LIST_LIMIT)
            key = f"demo:products:list:{'all' if limit is None else limit}"
            return self.cached(key, lambda: server.store.list_products(limit))
        if len(segs) == 2 and segs[0] == "products":
            if self.only(method, "GET"):
                return
            pid = to_id(segs[1])
            if pid is None:
                return self.send_json(404, {"error": "product not found"})
            return self.cached(f"demo:product:{pid}", lambda: server.store.get_product(pid), "product not found")
        if segs == ["users"]:
            if self.only(method, "POST"):
                return
            return self.create_user()
        if len(segs) == 2 and segs[0] == "users":
            if self.only(method, "GET"):
                return
            uid = to_id(segs[1])
            if uid is None:
                return self.send_json(404, {"error": "user not found"})
            return self.cached(f"demo:user:{uid}", lambda: server.store.get_user(uid), "user not found")
        if segs == ["checkout"]:
            if self.only(method, "POST"):
                return
            return self.checkout()
        return self.send_json(404, {"error": "not found", "path": path})

    def only(self, method: str, allowed: str) -> bool:
        """Answer 405 and return True when method is not the allowed one."""
        if method == allowed:
            return False
        self.send_json(405, {"error": f"method {self.command} not allowed"}, {"Allow": allowed})
        return True

    # ---- handlers -------------------------------------------------------------------------------------
    def health(self) -> None:
        cache_ok = self.server.cache.ping()
        db_ok = self.server.store.ping()
        healthy = db_ok and (cache_ok or not self.server.cache.configured)
        self.send_json(200, {"status": "ok" if healthy else "degraded", "cache": cache_ok, "database": db_ok,
                             "storage": self.server.store.kind})

    def cached(self, key: str, load, missing: str | None = None) -> None:
        """Cache-aside: the stored JSON from Redis, else from storage (then stored for the TTL)."""
        cache = self.server.cache
        body = cache.get(key)
        if body is not None:
            return self.send_body(200, body, {"X-Cache": "hit"})
        value = load()
        if value is None:
            return self.send_json(404, {"error": missing or "not found"})
        body = encode(value)
        cache.set(key, body)
        self.send_body(200, body, {"X-Cache": "miss" if cache.configured else "off"})

    def create_user(self) -> None:
        body = self.json_body()
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        name, email = body.get("name", "anonymous"), body.get("email")
        if not isinstance(name, str) or (email is not None and not isinstance(email, str)):
            raise BadRequest("name and email must be strings")
        user = self.server.store.create_user(name[:200], email[:200] if email else None)
        self.send_json(201, user, {"Location": f"/api/users/{user['id']}"})

    def checkout(self) -> None:
        body = self.json_body()
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        user_id = body.get("user_id")
        if not is_int(user_id):
            raise BadRequest("user_id must be an integer")
        items = body.get("items")
        if not isinstance(items, list) or not items or len(items) > 100:
            raise BadRequest("items must be a list of 1..100 entries")
        lines = []
        for item in items:
            if not isinstance(item, dict):
                raise BadRequest("each item must be an object")
            pid, qty = item.get("product_id"), item.get("qty")
            if not is_int(pid) or not is_int(qty):
                raise BadRequest("product_id and qty must be integers")
            if not 1 <= qty <= MAX_QTY:
                raise BadRequest(f"qty must be 1..{MAX_QTY}")
            if not 0 < pid < 2**31 or not 0 < user_id < 2**63:
                raise BadInput(f"unknown product_id {pid}" if not 0 < pid < 2**31 else f"unknown user_id {user_id}")
            lines.append((pid, qty))
        order_id, prices = self.server.store.checkout(user_id, lines)
        # Stock changed: drop the cached products (lists may stay stale for their short TTL).
        self.server.cache.delete(*{f"demo:product:{pid}" for pid, _ in lines})
        order, total = order_lines(lines, prices)
        self.send_json(201, {"order_id": order_id, "user_id": user_id, "items": order, "total": total,
                             "status": "created"})


def encode(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def to_id(s: str) -> int | None:
    return int(s) if s.isdigit() and len(s) < 10 else None


# --------------------------------------------------------------------------------------- options, checks


def in_container() -> bool:
    return os.path.exists("/.dockerenv")


def loopback_family(host: str, flag: str = "--host") -> int:
    """AF_INET/AF_INET6 for a loopback host; SystemExit for anything else (0.0.0.0, '', LAN, public)."""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise SystemExit(f"demo_target: refusing {flag} {host!r}: give a loopback IP (127.0.0.1 or ::1)") from None
    if not ip.is_loopback:
        raise SystemExit(f"demo_target: refusing {flag} {host!r}: only loopback addresses may be used")
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def check_backend_url(url: str, flag: str, schemes: tuple[str, ...], container: bool) -> None:
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise SystemExit(f"demo_target: {flag} must start with {' or '.join(s + '://' for s in schemes)}, got {url!r}")
    if parts.password:
        raise SystemExit(f"demo_target: {flag} must not carry a password (use PGPASSFILE / REDISCLI_AUTH-style "
                         f"files or the environment)")
    if not parts.hostname:
        raise SystemExit(f"demo_target: {flag} needs a host, got {url!r}")
    if not container:
        loopback_family(parts.hostname, flag)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="perfpipe demo shop API (loopback only)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every /api/* request")
    p.add_argument("--error-rate", type=float, default=0.0, help="share (0..1) of /api/* requests answered 500")
    p.add_argument("--max-concurrency", type=int, default=0,
                   help="requests in progress over all workers before 503 (0 = no cap)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default 2; 1 without --database-url, where the data is per process)")
    p.add_argument("--redis-url", default=None, help="Redis for cache-aside reads (default: no cache)")
    p.add_argument("--database-url", default=None,
                   help="PostgreSQL (password from PGPASSFILE/PGPASSWORD; default: in-memory storage)")
    p.add_argument("--cache-ttl-s", type=int, default=30, help="TTL of cached reads (default 30)")
    p.add_argument("--db-pool-size", type=int, default=8, help="PostgreSQL connections per worker (default 8)")
    p.add_argument("--container", action="store_true",
                   help="inside a container only (/.dockerenv): allow any bind address and service hosts")
    a = p.parse_args(argv)
    if not 0.0 <= a.error_rate <= 1.0:
        p.error("--error-rate must be within 0..1")
    if a.latency_ms < 0 or a.max_concurrency < 0:
        p.error("--latency-ms and --max-concurrency must be >= 0")
    if not 0 <= a.port < 65536:
        p.error("--port must be 0..65535")
    if a.workers is None:
        a.workers = 2 if a.database_url else 1
    if not 1 <= a.workers <= 64:
        p.error("--workers must be 1..64")
    if a.workers > 1 and not a.database_url:
        p.error("--workers > 1 needs --database-url (in-memory data would differ between the workers)")
    if not 1 <= a.cache_ttl_s <= 86400:
        p.error("--cache-ttl-s must be 1..86400")
    if not 1 <= a.db_pool_size <= 100:
        p.error("--db-pool-size must be 1..100")
    if a.container and not in_container():
        p.error("--container is only allowed inside a container (/.dockerenv not found)")
    if a.redis_url:
        check_backend_url(a.redis_url, "--redis-url", ("redis",), a.container)
    if a.database_url:
        check_backend_url(a.database_url, "--database-url", ("postgresql", "postgres"), a.container)
    return a


def bind_address(opts) -> tuple[int, str]:
    if opts.container:
        host = opts.host.strip("[]")
        return (socket.AF_INET6 if ":" in host else socket.AF_INET), host
    family = loopback_family(opts.host)
    return family, "127.0.0.1" if opts.host == "localhost" else opts.host.strip("[]")


# ------------------------------------------------------------------------------------- master, workers


def set_parent_death_signal() -> None:
    """Workers get SIGTERM if the master dies (even by SIGKILL): no orphaned workers holding the port."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except OSError:
        pass


def run_worker(slot: int, sock: socket.socket, shared: SharedStats, opts) -> int:
    set_parent_death_signal()
    if os.getppid() != shared.master_pid:  # the master died between fork and prctl
        return 1

    def on_signal(signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    shared.pids[slot] = os.getpid()
    store = (PostgresStore(opts.database_url, pool_size=opts.db_pool_size, counters=shared.incr)
             if opts.database_url else MemoryStore())
    cache = (RedisCache(opts.redis_url, ttl_s=opts.cache_ttl_s, counters=shared.incr)
             if opts.redis_url else NoCache())
    server = WorkerServer(sock, opts, slot, shared, store, cache)
    threading.Thread(target=server.serve_siblings, name="siblings", daemon=True).start()
    if isinstance(store, PostgresStore):
        store.ping()  # warm the pool (and seed the database) before the first request
    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        store.close()
    return 0


def main(argv=None) -> int:
    opts = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    family, host = bind_address(opts)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host, opts.port))
    except OSError as exc:
        raise SystemExit(f"demo_target: cannot bind {host}:{opts.port}: {exc}") from None
    sock.listen(1024)
    # Non-blocking accept: every worker polls the same socket; the ones that lose the race move on.
    sock.setblocking(False)
    shared = SharedStats(opts.workers)
    # Import the client libraries once, before forking: the workers share those pages and start faster.
    if opts.database_url:
        import psycopg  # noqa: F401
    if opts.redis_url:
        import redis  # noqa: F401

    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def spawn(slot: int) -> int:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = run_worker(slot, sock, shared, opts)
            except BaseException:
                log.exception("worker %d failed", slot)
            finally:
                logging.shutdown()
                os._exit(code)
        return pid

    workers = {spawn(slot): slot for slot in range(opts.workers)}
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if family == socket.AF_INET6 else bound[0]
    print(f"demo_target listening on http://{shown}:{bound[1]} ({opts.workers} workers, storage "
          f"{'postgres' if opts.database_url else 'memory'}, cache {'redis' if opts.redis_url else 'off'}, "
          f"latency {opts.latency_ms} ms, error rate {opts.error_rate}, "
          f"max concurrency {opts.max_concurrency or 'none'})", flush=True)
    restarts: list[float] = []
    gave_up = False
    while not stopping:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.2)
            continue
        slot = workers.pop(pid, None)
        if slot is None or stopping:
            continue
        with shared.lock:
            shared.in_flight[slot] = 0  # its requests are gone: free their share of the cap
            shared.pids[slot] = 0
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < 10] + [now]
        if len(restarts) > 5:
            log.error("workers keep dying (%d restarts in 10 s): giving up", len(restarts))
            gave_up = True
            break
        log.warning("worker %d (pid %d) exited with status %d: starting a new one", slot, pid, status)
        workers[spawn(slot)] = slot
    for pid in workers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while workers and time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            workers.pop(pid, None)
        else:
            time.sleep(0.05)
    for pid in workers:  # stuck (e.g. SIGSTOPped): do not leave them behind
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    sock.close()
    return 1 if gave_up else 0
