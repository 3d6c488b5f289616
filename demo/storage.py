"""Storage for the demo shop: PostgreSQL (the demo system) or memory (a quick stand-alone target).

Both seed the same data (products 1..100, users 1..50, from a fixed random seed) and offer the same calls:
list_products, get_product, get_user, create_user, checkout, ping. Bad input raises BadInput (HTTP 400);
an unreachable database raises DbUnavailable (HTTP 503).

Stock rule: checkout decrements stock in the same transaction that writes the order and never lets it go
below 0. A product that cannot cover an order line is restocked by RESTOCK_UNITS first (counted in
products.restocks), so long load runs never run out of stock and every valid order succeeds.
"""

from __future__ import annotations

import json
import logging
import random
import select
import threading
import time

from demo.breaker import Breaker

log = logging.getLogger("demo.storage")

N_PRODUCTS = 100
N_USERS = 50
RESTOCK_UNITS = 1000  # >= the largest qty one line may order, so a restocked line always fits
MAX_QTY = 1000
MAX_CREATED_USERS = 10_000  # memory store only: later users get an id but are not kept

CATEGORIES = ["books", "garden", "kitchen", "music", "outdoor", "tools", "toys", "games"]
ADJECTIVES = ["Classic", "Compact", "Deluxe", "Eco", "Handy", "Mini", "Pro", "Rugged", "Smart", "Ultra"]
NOUNS = ["Blender", "Drill", "Kettle", "Lamp", "Backpack", "Puzzle", "Speaker", "Tent", "Notebook", "Mug"]
FIRST = ["Ada", "Alan", "Barbara", "Donald", "Edsger", "Frances", "Grace", "John", "Ken", "Linus"]
LAST = ["Hopper", "Knuth", "Lovelace", "Liskov", "Ritchie", "Thompson", "Turing", "Allen", "Dijkstra"]


class BadInput(Exception):
    pass


class DbUnavailable(Exception):
    pass


def seed_data() -> tuple[list[dict], list[dict]]:
    rng = random.Random(42)
    products = []
    for pid in range(1, N_PRODUCTS + 1):
        products.append({
            "id": pid,
            "name": f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {pid}",
            "category": rng.choice(CATEGORIES),
            "price": round(rng.uniform(2, 500), 2),
            "stock": rng.randint(0, 1000),
        })
    users = []
    for uid in range(1, N_USERS + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        users.append({"id": uid, "name": f"{first} {last}", "email": f"{first.lower()}.{last.lower()}{uid}@example.test"})
    return products, users


def order_lines(items: list[tuple[int, int]], prices: dict[int, float]) -> tuple[list[dict], float]:
    lines = [{"product_id": pid, "qty": qty, "price": prices[pid]} for pid, qty in items]
    return lines, round(sum(line["price"] * line["qty"] for line in lines), 2)


# ------------------------------------------------------------------------------------------------- memory


class MemoryStore:
    kind = "memory"

    def __init__(self):
        products, users = seed_data()
        self.products = {p["id"]: p for p in products}
        self.users = {u["id"]: u for u in users}
        self.lock = threading.Lock()
        self.next_user_id = N_USERS + 1
        self.next_order_id = 1

    def ping(self) -> bool:
        return True

    def list_products(self, limit: int | None) -> list[dict]:
        with self.lock:
            items = [dict(self.products[i]) for i in sorted(self.products)]
        return items if limit is None else items[:limit]

    def get_product(self, pid: int) -> dict | None:
        with self.lock:
            p = self.products.get(pid)
            return dict(p) if p else None

    def get_user(self, uid: int) -> dict | None:
        with self.lock:
            return self.users.get(uid)

    def create_user(self, name: str, email: str | None) -> dict:
        with self.lock:
            uid = self.next_user_id
            self.next_user_id += 1
            user = {"id": uid, "name": name, "email": email or f"user{uid}@example.test"}
            if len(self.users) < N_USERS + MAX_CREATED_USERS:
                self.users[uid] = user
        return user

    def checkout(self, user_id: int, items: list[tuple[int, int]]) -> tuple[int, dict[int, float]]:
        with self.lock:
            if user_id not in self.users:
                raise BadInput(f"unknown user_id {user_id}")
            for pid, _ in items:
                if pid not in self.products:
                    raise BadInput(f"unknown product_id {pid}")
            for pid, qty in items:
                p = self.products[pid]
                if p["stock"] < qty:
                    p["stock"] += RESTOCK_UNITS
                p["stock"] -= qty
            order_id = self.next_order_id
            self.next_order_id += 1
            return order_id, {pid: self.products[pid]["price"] for pid, _ in items}

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------------------------- PostgreSQL

SCHEMA_SQL = [
    "SELECT pg_advisory_xact_lock(724201)",  # workers seeding at the same time take turns
    """CREATE TABLE IF NOT EXISTS products (
        id integer PRIMARY KEY, name text NOT NULL, category text NOT NULL, price numeric(10, 2) NOT NULL,
        stock integer NOT NULL CHECK (stock >= 0), restocks integer NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS users (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text NOT NULL, email text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS orders (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id bigint NOT NULL REFERENCES users(id),
        total numeric(14, 2) NOT NULL, created_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS order_items (
        order_id bigint NOT NULL REFERENCES orders(id), product_id integer NOT NULL REFERENCES products(id),
        qty integer NOT NULL CHECK (qty > 0), price numeric(10, 2) NOT NULL)""",
    # One round trip per checkout (it matters with added network latency): checks the ids, restocks what
    # cannot cover its line, decrements stock (rows locked in id order: no deadlocks), writes the order.
    f"""CREATE OR REPLACE FUNCTION demo_checkout(p_user bigint, p_items jsonb) RETURNS jsonb
    LANGUAGE plpgsql AS $$
    DECLARE
        v_order bigint;
        v_prices jsonb := '{{}}';
        v_price numeric;
        r record;
    BEGIN
        PERFORM 1 FROM users WHERE id = p_user;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'unknown user_id %', p_user USING ERRCODE = 'P0002';
        END IF;
        INSERT INTO orders (user_id, total) VALUES (p_user, 0) RETURNING id INTO v_order;
        FOR r IN SELECT (e->>'product_id')::integer AS pid, (e->>'qty')::integer AS qty
                 FROM jsonb_array_elements(p_items) AS e ORDER BY 1 LOOP
            UPDATE products
               SET stock = CASE WHEN stock >= r.qty THEN stock - r.qty ELSE stock + {RESTOCK_UNITS} - r.qty END,
                   restocks = restocks + CASE WHEN stock >= r.qty THEN 0 ELSE 1 END
             WHERE id = r.pid
            RETURNING price INTO v_price;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'unknown product_id %', r.pid USING ERRCODE = 'P0002';
            END IF;
            INSERT INTO order_items (order_id, product_id, qty, price) VALUES (v_order, r.pid, r.qty, v_price);
            v_prices := v_prices || jsonb_build_object(r.pid::text, v_price);
        END LOOP;
        UPDATE orders SET total = (SELECT sum(qty * price) FROM order_items WHERE order_id = v_order)
         WHERE id = v_order;
        RETURN jsonb_build_object('order_id', v_order, 'prices', v_prices);
    END $$""",
]


def _deadline_connection_class():
    import psycopg

    class DeadlineConnection(psycopg.Connection):
        """A connection whose every wait for the server ends after `op_timeout_s`.

        Why: a paused (SIGSTOP) PostgreSQL keeps the TCP connection open and never answers, and server-side
        statement_timeout cannot fire there; without a client-side limit a request would hang."""

        op_timeout_s = 1.0

        def wait(self, gen, interval=0.05, timeout=None):
            return super().wait(gen, interval=min(interval, self.op_timeout_s),
                                timeout=self.op_timeout_s if timeout is None else timeout)

    return DeadlineConnection


class PostgresStore:
    """A per-process pool of autocommit connections with a circuit breaker.

    Request threads never connect themselves: a connector thread does (a connect to a paused server can take
    the full connect timeout), and requests wait at most `acquire_timeout_s` for a pooled connection."""

    kind = "postgres"

    def __init__(self, url: str, pool_size: int = 8, op_timeout_s: float = 1.0, acquire_timeout_s: float = 1.0,
                 open_s: float = 1.0, connect_timeout_s: int = 2, counters=None):
        self.url = url
        self.pool_size = pool_size
        self.acquire_timeout_s = acquire_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.counters = counters
        self.breaker = Breaker("database", open_s)
        self.conn_class = _deadline_connection_class()
        self.conn_class.op_timeout_s = op_timeout_s
        self._cond = threading.Condition()
        self._idle: list = []
        self._total = 0  # idle + lent out + being connected
        self._connecting = 0
        self._closed = False
        self._seeded = False
        self._errors_logged = 0

    # ---- pool --------------------------------------------------------------------------------------------
    def _count(self, name: str) -> None:
        if self.counters is not None:
            self.counters(name)

    def _fail(self, exc: BaseException, what: str) -> None:
        self.breaker.failure()
        self._count("db_errors")
        if self._errors_logged < 5 or self.breaker.failures == 1:
            self._errors_logged += 1
            log.warning("database unavailable (%s: %s: %s)", what, type(exc).__name__, str(exc).strip()[:200])

    def _connect_in_background(self) -> None:
        """Called with self._cond held: one more connection is on its way."""
        self._total += 1
        self._connecting += 1
        threading.Thread(target=self._connect, name="db-connect", daemon=True).start()

    def _connect(self) -> None:
        conn = None
        try:
            # prepare_threshold=None: no server-side prepared statements, whose first use costs a second round
            # trip (over a slow link that alone could overrun the per-request deadline).
            conn = self.conn_class.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout_s,
                                           prepare_threshold=None, options="-c statement_timeout=5000")
            if not self._seeded:
                self._seed(conn)
        except Exception as exc:
            if conn is not None:
                conn.close()
            conn = None
            self._fail(exc, "connect")
        else:
            self.breaker.success()
        with self._cond:
            self._connecting -= 1
            if conn is None or self._closed:
                self._total -= 1
                if conn is not None:
                    conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify_all()

    def _seed(self, conn) -> None:
        """Create the schema and the seed rows once (idempotent; concurrent workers serialise on a lock)."""
        products, users = seed_data()
        conn.op_timeout_s = 10.0  # seeding is not a request: it may take longer than one request's budget
        try:
            with conn.transaction():
                for sql in SCHEMA_SQL:
                    conn.execute(sql)
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO products (id, name, category, price, stock) VALUES (%s, %s, %s, %s, %s)"
                        " ON CONFLICT (id) DO NOTHING",
                        [(p["id"], p["name"], p["category"], p["price"], p["stock"]) for p in products])
                    cur.executemany("INSERT INTO users (id, name, email) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                                    [(u["id"], u["name"], u["email"]) for u in users])
                # Created users continue after the highest id (explicit seed ids do not move the identity).
                conn.execute("SELECT setval(pg_get_serial_sequence('users', 'id'),"
                             " GREATEST((SELECT max(id) FROM users), 1))")
        finally:
            conn.op_timeout_s = self.conn_class.op_timeout_s
        self._seeded = True

    def _acquire(self):
        if not self.breaker.allow():
            self._count("db_skipped")
            raise DbUnavailable("database unavailable (circuit open)")
        deadline = time.monotonic() + self.acquire_timeout_s
        with self._cond:
            while True:
                if self._closed:
                    raise DbUnavailable("store closed")
                while self._idle:
                    conn = self._idle.pop()
                    if not conn.closed and not _peer_gone(conn):
                        return conn
                    self._total -= 1
                    conn.close()
                if self._total < self.pool_size and self._connecting == 0:
                    self._connect_in_background()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Only a probe that got nothing re-opens the breaker. A connect still under way does not
                    # (over a slow link it may take several round trips: it opens the breaker itself if it
                    # fails), nor does a pool that is merely busy under load.
                    if self.breaker.is_open:
                        self.breaker.failure()
                    self._count("db_errors")
                    raise DbUnavailable("no database connection within %.1f s" % self.acquire_timeout_s)
                self._cond.wait(remaining)

    def _release(self, conn, broken: bool) -> None:
        with self._cond:
            if broken or conn.closed or self._closed:
                self._total -= 1
                try:
                    conn.close()
                except Exception:
                    pass
            else:
                self._idle.append(conn)
            self._cond.notify()

    def _run(self, fn):
        """fn(conn) with a pooled connection; DbUnavailable when the server does not answer in time."""
        import psycopg

        conn = self._acquire()
        db_failed = False
        try:
            return fn(conn)
        except psycopg.Error as exc:
            # OperationalError includes psycopg's wait timeout (the server did not answer in time); any other
            # error on a connection that is still healthy is an SQL bug: HTTP 500, not a database outage.
            if not isinstance(exc, psycopg.OperationalError) and not (conn.closed or conn.broken):
                raise
            db_failed = True
            self._fail(exc, "query")
            self._drop_idle()  # after a restart or a cut link the other idle connections are dead too
            raise DbUnavailable(f"database unavailable: {type(exc).__name__}") from None
        finally:
            self._release(conn, db_failed or conn.closed or conn.broken)
            if not db_failed:
                self.breaker.success()  # the server answered (even if with a user error)

    def _drop_idle(self) -> None:
        with self._cond:
            idle, self._idle = self._idle, []
            self._total -= len(idle)
        for conn in idle:
            try:
                conn.close()
            except Exception:
                pass

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # ---- queries -----------------------------------------------------------------------------------------
    def ping(self) -> bool:
        try:
            return self._run(lambda c: c.execute("SELECT 1").fetchone()[0] == 1)
        except DbUnavailable:
            return False

    def list_products(self, limit: int | None) -> list[dict]:
        def q(conn):
            rows = conn.execute("SELECT id, name, category, price::float8, stock FROM products ORDER BY id"
                                " LIMIT %s", (limit,)).fetchall()
            return [_product(r) for r in rows]
        return self._run(q)

    def get_product(self, pid: int) -> dict | None:
        def q(conn):
            row = conn.execute("SELECT id, name, category, price::float8, stock FROM products WHERE id = %s",
                               (pid,)).fetchone()
            return _product(row) if row else None
        return self._run(q)

    def get_user(self, uid: int) -> dict | None:
        def q(conn):
            row = conn.execute("SELECT id, name, email FROM users WHERE id = %s", (uid,)).fetchone()
            return {"id": row[0], "name": row[1], "email": row[2]} if row else None
        return self._run(q)

    def create_user(self, name: str, email: str | None) -> dict:
        def q(conn):
            # The email default needs the new id: take it from the identity first, in the same statement.
            row = conn.execute(
                "INSERT INTO users (id, name, email) SELECT n.id, %s, COALESCE(%s, 'user' || n.id || '@example.test')"
                " FROM (SELECT nextval(pg_get_serial_sequence('users', 'id')) AS id) n RETURNING id, name, email",
                (name, email)).fetchone()
            return {"id": row[0], "name": row[1], "email": row[2]}
        return self._run(q)

    def checkout(self, user_id: int, items: list[tuple[int, int]]) -> tuple[int, dict[int, float]]:
        import psycopg

        payload = json.dumps([{"product_id": pid, "qty": qty} for pid, qty in items])

        def q(conn):
            try:
                return conn.execute("SELECT demo_checkout(%s, %s::jsonb)", (user_id, payload)).fetchone()[0]
            except psycopg.errors.NoDataFound as exc:  # P0002 from demo_checkout: an unknown id
                raise BadInput(exc.diag.message_primary or "unknown id") from None
        result = self._run(q)
        return int(result["order_id"]), {int(k): float(v) for k, v in result["prices"].items()}


def _peer_gone(conn) -> bool:
    """An idle connection has nothing to read; if it has, the server said goodbye (restart, shutdown, cut link)."""
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _product(row) -> dict:
    return {"id": row[0], "name": row[1], "category": row[2], "price": row[3], "stock": row[4]}
