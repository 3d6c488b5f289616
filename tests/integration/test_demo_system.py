"""The demo system with real processes: the API (2 workers), Redis, PostgreSQL and the fault proxy, all started by
scripts/demo.sh on free loopback ports (the session's demo_system fixture). Every fault is undone in a finally."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, free_port, wait_until  # noqa: E402  (tests/ is on sys.path)

pytestmark = pytest.mark.integration


def call(url: str, method: str = "GET", body=None, timeout: float = 5) -> tuple[int, dict, dict, float]:
    """(status, JSON body, headers, seconds) of one request on a fresh connection; HTTP errors are results too."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data, headers={"Content-Type": "application/json"})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        status, raw, headers = err.code, err.read(), dict(err.headers)
    return status, json.loads(raw or b"null"), headers, time.monotonic() - start


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(round(0.95 * len(ordered))) - 1)]


def db_query(demo, sql: str, *params):
    import psycopg

    with psycopg.connect(demo.database_url(), connect_timeout=5, passfile=str(demo.pgpass_file)) as conn:
        return conn.execute(sql, params).fetchall()


# demo.breaker's default: after a failure a worker skips the database this long before one request probes it.
BREAKER_OPEN_S = 1.0


def all_succeed(url: str, method: str, body, want: int, n: int = 6) -> bool:
    """n requests in a row answer `want`."""
    return all(call(url, method, body)[0] == want for _ in range(n))


def wait_recovered(url: str, method: str, body, want: int, timeout_s: float, what: str, n: int = 6) -> None:
    """Every worker serves again. Each worker has its own breaker, and the kernel, not round-robin, picks the worker
    that accepts a request: n successes in a row may all come from one worker while the other still skips the
    database for up to BREAKER_OPEN_S after its last failure. Past that, its next request probes and recovers."""
    time.sleep(BREAKER_OPEN_S + 0.2)
    wait_until(lambda: all_succeed(url, method, body, want, n), timeout_s, what)


def checkout_body(product_id: int = 7, qty: int = 1, user_id: int = 3) -> dict:
    return {"user_id": user_id, "items": [{"product_id": product_id, "qty": qty}]}


@pytest.fixture
def demo(demo_system):
    """The session's demo system, healthy before the test and restored after it (whatever the test broke)."""
    wait_until(lambda: demo_system.health()["status"] == "ok", 30, "demo system healthy")
    try:
        yield demo_system
    finally:
        demo_system.restore()


# ------------------------------------------------------------------------------------------- plain behaviour


def test_endpoints_answer_as_before(demo):
    url = demo.url
    status, health, _, _ = call(f"{url}/health")
    assert status == 200 and health["status"] == "ok" and health["cache"] is True and health["database"] is True
    status, products, _, _ = call(f"{url}/api/products?limit=5")
    assert status == 200 and [p["id"] for p in products] == [1, 2, 3, 4, 5]
    status, products, _, _ = call(f"{url}/api/products")
    assert status == 200 and len(products) >= 100
    assert call(f"{url}/api/products?limit=x")[0] == 400
    status, product, _, _ = call(f"{url}/api/products/42")
    assert status == 200 and product["id"] == 42 and set(product) == {"id", "name", "category", "price", "stock"}
    assert call(f"{url}/api/products/100000")[0] == 404
    status, user, _, _ = call(f"{url}/api/users/50")
    assert status == 200 and user["id"] == 50
    assert call(f"{url}/api/users/99999999")[0] == 404
    assert call(f"{url}/api/broken")[0] == 500
    assert call(f"{url}/api/products/1", method="POST", body={})[0] == 405
    status, order, _, _ = call(f"{url}/api/checkout", "POST", checkout_body())
    assert status == 201 and isinstance(order["order_id"], int)
    for bad in ({"user_id": 3}, {"user_id": 999999, "items": [{"product_id": 1, "qty": 1}]},
                checkout_body(product_id=999999), checkout_body(qty=0), {"user_id": "3", "items": []}):
        status, err, _, _ = call(f"{url}/api/checkout", "POST", bad)
        assert status == 400, (bad, err)


def test_stats_sum_every_worker(demo):
    demo.reset()
    n = 60
    for i in range(n):  # a fresh connection each: the workers share the listening socket
        assert call(f"{demo.url}/api/products/{i % 100 + 1}")[0] == 200
    stats = demo.stats()
    assert stats["requests"] == n and sum(stats["by_path"].values()) == n
    assert stats["workers"] == 2 and len(stats["worker_pids"]) == 2 and stats["workers_unreachable"] == 0
    assert sum(stats["by_worker"].values()) == n
    assert all(count > 0 for count in stats["by_worker"].values()), stats["by_worker"]  # both workers served
    assert sorted(stats["worker_pids"]) == sorted(demo.pids("api")[1:])
    assert stats["rss_bytes"] > 3 * 10 * 2**20  # master + 2 workers, each a Python with psycopg and redis loaded
    assert stats["by_status"] == {"200": n}
    demo.reset()
    assert demo.requests() == 0 and demo.stats()["by_path"] == {}


def test_writes_persist_in_postgresql(demo):
    status, user, _, _ = call(f"{demo.url}/api/users", "POST", {"name": "Persisted", "email": "p@example.test"})
    assert status == 201
    assert db_query(demo, "SELECT name, email FROM users WHERE id = %s", user["id"]) == [("Persisted", "p@example.test")]
    for _ in range(4):  # every worker sees it (no per-process state)
        assert call(f"{demo.url}/api/users/{user['id']}")[1] == user

    [(stock_before,)] = db_query(demo, "SELECT stock FROM products WHERE id = 9")
    status, order, _, _ = call(f"{demo.url}/api/checkout", "POST", checkout_body(product_id=9, qty=3, user_id=user["id"]))
    assert status == 201
    assert db_query(demo, "SELECT user_id FROM orders WHERE id = %s", order["order_id"]) == [(user["id"],)]
    assert db_query(demo, "SELECT product_id, qty FROM order_items WHERE order_id = %s", order["order_id"]) == [(9, 3)]
    [(stock_after,)] = db_query(demo, "SELECT stock FROM products WHERE id = 9")
    assert stock_after == stock_before - 3 or (stock_before < 3 and stock_after == stock_before + 1000 - 3)
    assert call(f"{demo.url}/api/products/9")[1]["stock"] == stock_after  # checkout dropped the cached product


def test_stock_never_goes_below_zero_and_is_restocked(demo):
    db_query_exec = db_query(demo, "UPDATE products SET stock = 2 WHERE id = 11 RETURNING stock")
    assert db_query_exec == [(2,)]
    status, _, _, _ = call(f"{demo.url}/api/checkout", "POST", checkout_body(product_id=11, qty=5))
    assert status == 201
    assert db_query(demo, "SELECT stock, restocks > 0 FROM products WHERE id = 11") == [(2 + 1000 - 5, True)]


def test_reads_are_cached_in_redis(demo):
    import redis

    client = redis.Redis(host="127.0.0.1", port=demo.ports["cache"], socket_timeout=2)
    client.delete("demo:product:33")
    demo.reset()
    assert call(f"{demo.url}/api/products/33")[2]["X-Cache"] == "miss"
    assert client.ttl("demo:product:33") in range(1, 31)
    assert call(f"{demo.url}/api/products/33")[2]["X-Cache"] == "hit"
    stats = demo.stats()
    assert stats["cache_hits"] >= 1 and stats["cache_misses"] >= 1 and stats["cache_errors"] == 0


# ------------------------------------------------------------------------------------------------ Redis faults


def test_paused_redis_slows_nothing_much_and_fails_nothing(demo):
    demo.reset()
    try:
        demo.pause("cache")
        timings = []
        for i in range(100):
            status, _, _, seconds = call(f"{demo.url}/api/products/{i % 100 + 1}")
            assert status == 200
            timings.append(seconds)
        assert p95(timings) < 0.2, sorted(timings)[-10:]
        # The circuit breaker: only a probe now and then waits for Redis' 100 ms timeout, not every request.
        assert sorted(timings)[len(timings) // 2] < 0.05, sorted(timings)
        health = demo.health()
        assert health == {"status": "degraded", "cache": False, "database": True, "storage": "postgres"}
    finally:
        demo.resume("cache")
    assert demo.stats()["cache_errors"] >= 1


def test_killed_redis_serves_from_database_and_cache_returns_after_restart(demo):
    try:
        demo.stop("cache")
        for i in range(20):
            status, _, headers, _ = call(f"{demo.url}/api/products/{i + 1}")
            assert status == 200 and headers["X-Cache"] == "miss"
    finally:
        demo.start("cache")

    def cache_hit_again() -> bool:
        call(f"{demo.url}/api/products/77")
        return call(f"{demo.url}/api/products/77")[2]["X-Cache"] == "hit"

    wait_until(cache_hit_again, 10, "cache hits after the Redis restart")


# ------------------------------------------------------------------------------------------- PostgreSQL faults


def test_stopped_database_gives_fast_503_and_recovers(demo):
    call(f"{demo.url}/api/products/55")  # cached now
    try:
        demo.stop("database")
        for body in (checkout_body(), checkout_body(product_id=8)):
            status, err, headers, seconds = call(f"{demo.url}/api/checkout", "POST", body)
            assert status == 503 and err == {"error": "database unavailable"} and seconds < 1.5
        status, _, _, seconds = call(f"{demo.url}/api/users", "POST", {"name": "x"})
        assert status == 503 and seconds < 1.5
        assert call(f"{demo.url}/api/products/55")[0] == 200  # a cached read still works
        assert demo.health()["database"] is False
    finally:
        demo.start("database")
    wait_recovered(f"{demo.url}/api/checkout", "POST", checkout_body(), 201, 10, "checkout after the database restart")


def test_paused_database_gives_fast_503_never_a_hang(demo):
    try:
        demo.pause("database")
        timings = []
        for i in range(10):
            status, _, _, seconds = call(f"{demo.url}/api/users", "POST", {"name": f"paused-{i}"}, timeout=5)
            assert status == 503
            timings.append(seconds)
        assert max(timings) < 1.5, timings
        status, health, _, seconds = call(f"{demo.url}/health")
        assert status == 200 and health["database"] is False and seconds < 1.5  # one database deadline (1 s)
    finally:
        demo.resume("database")
    wait_recovered(f"{demo.url}/api/users", "POST", {"name": "back"}, 201, 10, "writes after resume")


# ------------------------------------------------------------------------------------------------ proxy faults


def test_proxy_latency_partition_and_restore(demo):
    def write_time() -> float:
        status, _, _, seconds = call(f"{demo.url}/api/users", "POST", {"name": "latency"})
        assert status == 201
        return seconds

    baseline = min(write_time() for _ in range(5))
    try:
        assert demo.faults("PUT", {"latency_ms": 200}) == {"latency_ms": 200, "partition": False}
        assert demo.faults() == {"latency_ms": 200, "partition": False}
        slow = [write_time() for _ in range(3)]
        assert min(slow) >= baseline + 0.18, (baseline, slow)

        assert demo.faults("PUT", {"partition": True})["partition"] is True
        for i in range(5):
            status, _, _, seconds = call(f"{demo.url}/api/users", "POST", {"name": f"cut-{i}"})
            assert status == 503 and seconds < 1.5
        assert demo.health()["database"] is False
    finally:
        assert demo.faults("DELETE") == {"latency_ms": 0, "partition": False}
    wait_recovered(f"{demo.url}/api/users", "POST", {"name": "healed"}, 201, 15, "writes after DELETE", n=12)
    assert min(write_time() for _ in range(3)) < baseline + 0.1


def test_proxy_refuses_bad_fault_input_naming_the_field(demo):
    for body, field in (({"latency_ms": -1}, "latency_ms"), ({"partition": "yes"}, "partition"), ({"lag": 1}, "lag")):
        request = urllib.request.Request(f"{demo.control_url}/faults", method="PUT", data=json.dumps(body).encode())
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=5)
        assert err.value.code == 400 and json.loads(err.value.read())["error"].startswith(f"{field}:")
    assert demo.faults() == {"latency_ms": 0, "partition": False}


# ------------------------------------------------------------------------------------- global concurrency cap


def test_concurrency_cap_is_global_across_workers(demo, tmp_path):
    cap, extra = 4, 3
    port = free_port()
    env = {**os.environ, "PGPASSFILE": str(demo.pgpass_file)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "demo" / "demo_target.py"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "2", "--max-concurrency", str(cap), "--latency-ms", "1500",
         "--database-url", demo.database_url(via_proxy=True),
         "--redis-url", f"redis://127.0.0.1:{demo.ports['cache']}/0"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "capped.log", "w"), start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: call(f"{url}/health")[1]["status"] == "ok", 20, "capped API")
        results: list[int] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            status = call(f"{url}/api/products/{i + 1}", timeout=10)[0]
            with lock:
                results.append(status)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(cap + extra)]
        for t in threads:
            t.start()
            time.sleep(0.05)  # all arrive well within the 1.5 s the first ones hold their slot
        for t in threads:
            t.join(timeout=15)
        assert sorted(results) == [200] * cap + [503] * extra
        stats = call(f"{url}/__stats")[1]
        assert stats["rejected_503"] == extra and stats["max_in_flight"] == cap
        assert all(n > 0 for n in stats["by_worker"].values()), stats["by_worker"]  # both workers took requests
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------------------------------------------ demo.sh


def test_demo_sh_component_verbs(demo):
    api_pids = demo.pids("api")
    assert api_pids[0] == demo.pid("api") and len(api_pids) == 3  # master + 2 workers
    assert len(demo.pids("database")) > 1  # postmaster + its processes
    assert demo.sh("pid", "cache").returncode == 0
    assert demo.sh("url", "cache").stdout.strip() == f"redis://127.0.0.1:{demo.ports['cache']}/0"
    assert demo.sh("url", "proxy").stdout.strip() == f"{demo.control_url}/faults"
    assert demo.sh("pid", "nosuch", check=False).returncode != 0
    demo.start("api")  # idempotent: already running
    assert demo.pid("api") == api_pids[0]
    demo.stop("proxy")
    assert demo.sh("pid", "proxy", check=False).returncode == 1
    demo.start("proxy")
    assert demo.sh("pid", "proxy").returncode == 0


def test_demo_sh_refuses_non_loopback_host(demo):
    done = subprocess.run(["bash", str(demo.script), "start"], env={**demo.env, "PERFPIPE_DEMO_HOST": "0.0.0.0"},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "not a loopback address" in done.stderr
