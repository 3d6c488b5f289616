"""A small circuit breaker: after a failure, skip the dependency for `open_s`, then let ONE caller probe it.

Why: a paused Redis or PostgreSQL answers nothing, so every request that tries it waits for its timeout. With the
breaker only the probing request pays that timeout (once per `open_s` per worker); the others skip at once.
"""

from __future__ import annotations

import threading
import time


class Breaker:
    def __init__(self, name: str, open_s: float = 1.0, clock=time.monotonic):
        self.name = name
        self.open_s = open_s
        self.clock = clock
        self._lock = threading.Lock()
        self._open_until = 0.0  # 0 = closed
        self._probing = False
        self.failures = 0  # consecutive failures, for /health and /__stats

    def allow(self) -> bool:
        """True when the caller may use the dependency (closed, or this caller is the single probe)."""
        with self._lock:
            if self._open_until == 0.0:
                return True
            if self._probing or self.clock() < self._open_until:
                return False
            self._probing = True  # half-open: this caller probes, everyone else keeps skipping
            return True

    def success(self) -> None:
        with self._lock:
            self._open_until = 0.0
            self._probing = False
            self.failures = 0

    def failure(self) -> None:
        with self._lock:
            self._open_until = self.clock() + self.open_s
            self._probing = False
            self.failures += 1

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open_until != 0.0
