"""Cache-aside store for the demo API: Redis with short timeouts behind a circuit breaker, or no cache at all.

Every cache failure is swallowed (counted in `errors`): the caller then reads PostgreSQL, so a down, paused or
slow Redis makes requests slower, never failing.
"""

from __future__ import annotations

import logging

from demo.breaker import Breaker

log = logging.getLogger("demo.cache")


class NoCache:
    configured = False

    def __init__(self, counters=None):
        self.counters = counters

    def get(self, key: str) -> bytes | None:
        return None

    def set(self, key: str, value: bytes) -> None:
        pass

    def delete(self, *keys: str) -> None:
        pass

    def ping(self) -> bool:
        return False


class RedisCache:
    configured = True

    def __init__(self, url: str, ttl_s: int = 30, timeout_s: float = 0.1, open_s: float = 1.0, counters=None):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.ttl_s = ttl_s
        self.counters = counters  # callable(name) adding 1 to a shared counter, or None
        self.breaker = Breaker("cache", open_s)
        # No retries (redis-py retries 3 times by default): one short attempt, then the breaker decides.
        self.client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False, health_check_interval=0, socket_keepalive=False)
        self._errors_logged = 0

    def _count(self, name: str) -> None:
        if self.counters is not None:
            self.counters(name)

    def _call(self, op, *args):
        """Run one Redis command; None (and an open breaker) on any failure."""
        if not self.breaker.allow():
            self._count("cache_skipped")
            raise _Skipped
        try:
            result = op(*args)
        except Exception as exc:  # redis errors, socket errors, timeouts: all mean "no cache now"
            self.breaker.failure()
            self._count("cache_errors")
            if self._errors_logged < 5 or self.breaker.failures == 1:
                self._errors_logged += 1
                log.warning("cache unavailable (%s: %s): serving from the database", type(exc).__name__, exc)
            raise _Skipped from None
        self.breaker.success()
        return result

    def get(self, key: str) -> bytes | None:
        try:
            value = self._call(self.client.get, key)
        except _Skipped:
            return None
        self._count("cache_hits" if value is not None else "cache_misses")
        return value

    def set(self, key: str, value: bytes) -> None:
        try:
            self._call(self.client.set, key, value, self.ttl_s)
        except _Skipped:
            pass

    def delete(self, *keys: str) -> None:
        if keys:
            try:
                self._call(self.client.delete, *keys)
            except _Skipped:
                pass

    def ping(self) -> bool:
        try:
            return bool(self._call(self.client.ping))
        except _Skipped:
            return False


class _Skipped(Exception):
    pass
