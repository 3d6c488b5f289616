"""The demo API's circuit breaker and cache wrapper (pure logic: a fake clock, a fake Redis client)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repo root: the demo package

from demo.breaker import Breaker  # noqa: E402
from demo.cache import RedisCache  # noqa: E402


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_on_failure_and_lets_one_probe_through_after_the_open_time():
    clock = Clock()
    breaker = Breaker("x", open_s=1.0, clock=clock)
    assert breaker.allow() and not breaker.is_open
    breaker.failure()
    assert breaker.is_open and not breaker.allow()
    clock.now += 0.99
    assert not breaker.allow()
    clock.now += 0.02
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # everyone else keeps skipping while it probes
    breaker.failure()  # probe failed: open again for a full period
    assert not breaker.allow()
    clock.now += 1.01
    assert breaker.allow()
    breaker.success()
    assert not breaker.is_open and breaker.allow() and breaker.allow() and breaker.failures == 0


class FlakyRedis:
    def __init__(self):
        self.down = False
        self.calls = 0
        self.data = {}

    def get(self, key):
        self.calls += 1
        if self.down:
            raise TimeoutError("Timeout reading from socket")
        return self.data.get(key)

    def set(self, key, value, ttl):
        self.calls += 1
        if self.down:
            raise ConnectionError("refused")
        self.data[key] = value


def test_cache_failures_are_misses_and_skip_redis_while_the_breaker_is_open():
    counts = {}
    cache = RedisCache("redis://127.0.0.1:1/0", counters=lambda name: counts.update({name: counts.get(name, 0) + 1}))
    clock = Clock()
    cache.breaker = Breaker("cache", 1.0, clock=clock)
    fake = cache.client = FlakyRedis()
    cache.set("k", b"v")
    assert cache.get("k") == b"v" and counts["cache_hits"] == 1
    fake.down = True
    assert cache.get("k") is None  # an error is a miss for the caller, never an exception
    calls = fake.calls
    for _ in range(50):
        assert cache.get("k") is None
    assert fake.calls == calls  # skipped: the breaker is open
    assert counts["cache_errors"] == 1 and counts["cache_skipped"] == 50
    fake.down = False
    clock.now += 1.1
    assert cache.get("k") == b"v"  # the probe finds Redis back: cache used again
    assert not cache.breaker.is_open
