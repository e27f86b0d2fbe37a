"""How fast and how often: the rate limiter, the retry policy and the clock a run waits on."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from newsletter.settings import Settings


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a Retry-After is waited out (up to max_delay)."""

    attempts: int = 5
    backoff: float = 2.0
    max_delay: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.retry_limit, settings.retry_backoff, settings.retry_max_delay)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.backoff * 2 ** (attempt - 1))
        wait_for = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait_for = max(wait_for, min(retry_after, self.max_delay))
        return wait_for


class TokenBucket:
    """Holds the average rate at `rate` messages a second, with at most a second's burst."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.tokens = max(rate, 1.0)
        self.stamp = clock()

    def take(self, count: int = 1) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        self.tokens = min(max(self.rate, 1.0), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= count
        if self.tokens < 0:
            self.sleep(-self.tokens / self.rate)


class RunClock:
    """Wall-clock time for retry times stored in the database; waits end early on `stop`.

    A test passes its own `sleep` (which returns at once): the clock then moves on by what was
    "slept", so a backoff of minutes takes no time and the retry still comes due.
    """

    def __init__(self, stop: threading.Event, sleep: Callable[[float], None] | None = None) -> None:
        self.stop = stop
        self._sleep = sleep
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._sleep is None:
            self.stop.wait(seconds)
        else:
            self._sleep(seconds)
            self.offset += seconds
