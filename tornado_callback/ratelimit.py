"""Per-source limit on wrong host_config_keys, so keys cannot be guessed at speed."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque


class BadKeyLimiter:
    """At most ``limit`` bad keys per ``window`` seconds from one source address.

    In memory and per process: it slows guessing down, it is not an account
    lockout. Memory is bounded by forgetting the least recently seen sources.
    """

    def __init__(self, limit: int, window: float, max_sources: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_sources = max_sources
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, source: str, now: float) -> deque[float] | None:
        failures = self._failures.get(source)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[source]
            return None
        return failures

    def retry_after(self, source: str) -> int | None:
        """Seconds until ``source`` may try again, or None if it may now."""
        now = time.monotonic()
        failures = self._recent(source, now)
        if failures is None or len(failures) < self.limit:
            return None
        return max(1, math.ceil(failures[0] + self.window - now))

    def record_failure(self, source: str) -> None:
        now = time.monotonic()
        failures = self._recent(source, now)
        if failures is None:
            failures = self._failures[source] = deque(maxlen=self.limit)
        failures.append(now)
        self._failures.move_to_end(source)
        while len(self._failures) > self.max_sources:
            self._failures.popitem(last=False)
