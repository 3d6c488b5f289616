#!/usr/bin/env python3
"""perfpipe demo target: a small JSON "shop" API to point k6 at. Python standard library only.

    python3 demo/demo_target.py --host 127.0.0.1 --port 8090 [--latency-ms 0] [--error-rate 0.0]
                                [--max-concurrency 0]

It binds loopback addresses only (127.0.0.0/8, ::1, localhost) and refuses anything else.

Endpoints (all JSON):
  GET  /health                      {"status": "ok"}
  GET  /api/products[?limit=N]      list of the 100 seeded products (first N)
  GET  /api/products/<id>           one product, 404 if unknown
  GET  /api/users/<id>              one user (50 seeded + created ones), 404 if unknown
  POST /api/users                   {"name": str, "email": str} (both optional) -> 201 with the new user
  POST /api/checkout                {"user_id": int, "items": [{"product_id": int, "qty": int}, ...]}
                                    -> 201 {"order_id": ...}; 400 on a bad body (including unknown ids)
  GET  /api/broken                  always 500 (for failure tests)
  GET  /__stats                     {"requests": N, "by_path": {...}, ...}; counts every request but /__stats*
  POST /__stats/reset               zero the counters

--latency-ms adds a sleep to every /api/* request; --error-rate answers that share of /api/* requests with
500; --max-concurrency caps the requests in progress (0 = no cap): over the cap the answer is 503 at once.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 1 << 20  # 1 MiB
MAX_CREATED_USERS = 10_000  # created users kept in memory; later ones get an id but are not stored
N_PRODUCTS = 100
N_USERS = 50

CATEGORIES = ["books", "garden", "kitchen", "music", "outdoor", "tools", "toys", "games"]
ADJECTIVES = ["Classic", "Compact", "Deluxe", "Eco", "Handy", "Mini", "Pro", "Rugged", "Smart", "Ultra"]
NOUNS = ["Blender", "Drill", "Kettle", "Lamp", "Backpack", "Puzzle", "Speaker", "Tent", "Notebook", "Mug"]
FIRST = ["Ada", "Alan", "Barbara", "Donald", "Edsger", "Frances", "Grace", "John", "Ken", "Linus"]
LAST = ["Hopper", "Knuth", "Lovelace", "Liskov", "Ritchie", "Thompson", "Turing", "Allen", "Dijkstra"]


def seed_data() -> tuple[dict[int, dict], dict[int, dict]]:
    rng = random.Random(42)
    products = {}
    for pid in range(1, N_PRODUCTS + 1):
        products[pid] = {
            "id": pid,
            "name": f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {pid}",
            "category": rng.choice(CATEGORIES),
            "price": round(rng.uniform(2, 500), 2),
            "stock": rng.randint(0, 1000),
        }
    users = {}
    for uid in range(1, N_USERS + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        users[uid] = {"id": uid, "name": f"{first} {last}", "email": f"{first.lower()}.{last.lower()}{uid}@example.test"}
    return products, users


class Shop:
    """All mutable state, behind one lock."""

    def __init__(self) -> None:
        self.products, self.users = seed_data()
        self.product_list = [self.products[i] for i in sorted(self.products)]
        self.lock = threading.Lock()
        self.next_user_id = N_USERS + 1
        self.next_order_id = 1
        self.started = time.time()
        self.reset_stats()

    def reset_stats(self) -> None:
        self.requests = 0
        self.by_path: dict[str, int] = {}
        self.by_status: dict[str, int] = {}
        self.rejected = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def stats(self) -> dict:
        with self.lock:
            return {
                "requests": self.requests,
                "by_path": dict(self.by_path),
                "by_status": dict(self.by_status),
                "rejected_503": self.rejected,
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "uptime_s": round(time.time() - self.started, 3),
            }


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr, handler, shop: Shop, opts: argparse.Namespace, family: int) -> None:
        self.address_family = family
        self.shop = shop
        self.opts = opts
        self.rng = random.Random()
        self.rng_lock = threading.Lock()
        super().__init__(addr, handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()

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


class BadRequest(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "perfpipe-demo/1.0"

    def version_string(self) -> str:
        return self.server_version

    timeout = 60  # idle keep-alive connections give their thread back after a minute
    # Buffered writes (flushed once per response by BaseHTTPRequestHandler) and TCP_NODELAY: headers and
    # body leave in one segment, without the ~40 ms Nagle/delayed-ACK stall of two small writes.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: Server

    # ---- plumbing -------------------------------------------------------------------------------------
    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def send_json(self, status: int, obj, headers: dict | None = None) -> None:
        body = json.dumps(obj, separators=(",", ":")).encode()
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

    def do_HEAD(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def do_PATCH(self):
        self.handle_any()

    def handle_any(self) -> None:
        self._body_read = False
        self.status = 0
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        shop, opts = self.server.shop, self.server.opts
        counted = not path.startswith("/__stats")
        slot = False
        try:
            with shop.lock:
                if counted:
                    shop.requests += 1
                    shop.by_path[path] = shop.by_path.get(path, 0) + 1
                    if opts.max_concurrency and shop.in_flight >= opts.max_concurrency:
                        shop.rejected += 1
                    else:
                        slot = True
                        shop.in_flight += 1
                        shop.max_in_flight = max(shop.max_in_flight, shop.in_flight)
            if counted and not slot:
                self.drain_body()
                self.send_json(503, {"error": "over capacity"}, {"Retry-After": "1"})
                return
            try:
                self.route(path, query)
            except BadRequest as e:
                self.send_json(400, {"error": str(e)})
            except (BrokenPipeError, ConnectionResetError):
                raise
            except Exception as e:  # never let a bug kill the connection silently
                self.close_connection = True
                self.send_json(500, {"error": f"internal error: {type(e).__name__}"})
            self.drain_body()
        finally:
            with shop.lock:
                if slot:
                    shop.in_flight -= 1
                if counted and self.status:
                    key = str(self.status)
                    shop.by_status[key] = shop.by_status.get(key, 0) + 1

    def route(self, path: str, query: dict) -> None:
        method = "GET" if self.command == "HEAD" else self.command
        shop, opts = self.server.shop, self.server.opts

        if path == "/health":
            return self.only(method, "GET") or self.send_json(200, {"status": "ok"})
        if path == "/__stats":
            return self.only(method, "GET") or self.send_json(200, shop.stats())
        if path == "/__stats/reset":
            if self.only(method, "POST"):
                return
            with shop.lock:
                in_flight = shop.in_flight
                shop.reset_stats()
                shop.in_flight = in_flight
            return self.send_json(200, {"reset": True})

        if not path.startswith("/api/"):
            return self.send_json(404, {"error": "not found", "path": path})

        if opts.latency_ms > 0:
            time.sleep(opts.latency_ms / 1000.0)
        if path == "/api/broken":
            return self.send_json(500, {"error": "broken on purpose"})
        if self.server.chance(opts.error_rate):
            return self.send_json(500, {"error": "injected failure"})

        segs = path.split("/")[2:]  # after "/api/"
        if segs == ["products"]:
            if self.only(method, "GET"):
                return
            items = shop.product_list
            if "limit" in query:
                try:
                    limit = int(query["limit"][-1])
                except ValueError:
                    raise BadRequest("limit must be an integer") from None
                if limit < 0:
                    raise BadRequest("limit must be >= 0")
                items = items[:limit]
            return self.send_json(200, items)
        if len(segs) == 2 and segs[0] == "products":
            if self.only(method, "GET"):
                return
            product = shop.products.get(to_id(segs[1]))
            if product is None:
                return self.send_json(404, {"error": "product not found"})
            return self.send_json(200, product)
        if segs == ["users"]:
            if self.only(method, "POST"):
                return
            return self.create_user()
        if len(segs) == 2 and segs[0] == "users":
            if self.only(method, "GET"):
                return
            uid = to_id(segs[1])
            with shop.lock:
                user = shop.users.get(uid)
            if user is None:
                return self.send_json(404, {"error": "user not found"})
            return self.send_json(200, user)
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
    def create_user(self) -> None:
        body = self.json_body()
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        name, email = body.get("name", "anonymous"), body.get("email")
        if not isinstance(name, str) or (email is not None and not isinstance(email, str)):
            raise BadRequest("name and email must be strings")
        shop = self.server.shop
        with shop.lock:
            uid = shop.next_user_id
            shop.next_user_id += 1
            user = {"id": uid, "name": name[:200], "email": (email or f"user{uid}@example.test")[:200]}
            if len(shop.users) < N_USERS + MAX_CREATED_USERS:
                shop.users[uid] = user
        self.send_json(201, user, {"Location": f"/api/users/{uid}"})

    def checkout(self) -> None:
        body = self.json_body()
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        shop = self.server.shop
        user_id = body.get("user_id")
        if not is_int(user_id):
            raise BadRequest("user_id must be an integer")
        with shop.lock:
            known_user = user_id in shop.users
        if not known_user:
            raise BadRequest(f"unknown user_id {user_id}")
        items = body.get("items")
        if not isinstance(items, list) or not items or len(items) > 100:
            raise BadRequest("items must be a list of 1..100 entries")
        total = 0.0
        lines = []
        for item in items:
            if not isinstance(item, dict):
                raise BadRequest("each item must be an object")
            pid, qty = item.get("product_id"), item.get("qty")
            if not is_int(pid) or not is_int(qty):
                raise BadRequest("product_id and qty must be integers")
            if pid not in shop.products:
                raise BadRequest(f"unknown product_id {pid}")
            if not 1 <= qty <= 1000:
                raise BadRequest("qty must be 1..1000")
            price = shop.products[pid]["price"]
            total += price * qty
            lines.append({"product_id": pid, "qty": qty, "price": price})
        with shop.lock:
            order_id = shop.next_order_id
            shop.next_order_id += 1
        self.send_json(201, {"order_id": order_id, "user_id": user_id, "items": lines,
                             "total": round(total, 2), "status": "created"})


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def to_id(s: str) -> int | None:
    return int(s) if s.isdigit() and len(s) < 10 else None


def loopback_family(host: str) -> int:
    """AF_INET/AF_INET6 for a loopback host; SystemExit for anything else (0.0.0.0, '', LAN, public)."""
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise SystemExit(f"demo_target: refusing --host {host!r}: give a loopback IP (127.0.0.1 or ::1)") from None
    if not ip.is_loopback:
        raise SystemExit(f"demo_target: refusing --host {host!r}: only loopback addresses may be bound")
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="perfpipe demo target (loopback only)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090)
    p.add_argument("--latency-ms", type=float, default=0.0, help="added to every /api/* request")
    p.add_argument("--error-rate", type=float, default=0.0, help="share (0..1) of /api/* requests answered 500")
    p.add_argument("--max-concurrency", type=int, default=0, help="requests in progress before 503 (0 = no cap)")
    a = p.parse_args(argv)
    if not 0.0 <= a.error_rate <= 1.0:
        p.error("--error-rate must be within 0..1")
    if a.latency_ms < 0 or a.max_concurrency < 0:
        p.error("--latency-ms and --max-concurrency must be >= 0")
    if not 0 <= a.port < 65536:
        p.error("--port must be 0..65535")
    return a


def main(argv=None) -> int:
    opts = parse_args(argv)
    family = loopback_family(opts.host)
    host = "127.0.0.1" if opts.host == "localhost" else opts.host.strip("[]")
    server = Server((host, opts.port), Handler, Shop(), opts, family)

    def on_signal(signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bound = server.server_address
    print(f"demo_target listening on http://{'[%s]' % bound[0] if family == socket.AF_INET6 else bound[0]}:{bound[1]} "
          f"(latency {opts.latency_ms} ms, error rate {opts.error_rate}, max concurrency {opts.max_concurrency or 'none'})",
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except SystemExit:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
