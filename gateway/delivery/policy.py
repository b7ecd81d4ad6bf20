"""Retry timing and the circuit breaker, per backend.

Transient failures back off exponentially with full jitter, never sooner than a
Retry-After the backend asked for; after `breaker_failures` failed attempts in a row
the circuit opens and the backend is paused for `breaker_cooldown`, then one attempt
probes it (half-open). Only this backend's forwarder waits: others are unaffected.
"""
import random
import time
from email.utils import parsedate_to_datetime

from ..config import Retry

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Breaker:
    def __init__(self, policy: Retry):
        self.policy = policy
        self.failures = 0
        self.state = CLOSED
        self.opened_at = 0.0

    def success(self) -> None:
        self.failures = 0
        self.state = CLOSED

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.policy.breaker_failures:
            self.state = OPEN
            self.opened_at = time.monotonic()

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt number ``attempt`` (1 = first retry)."""
        p = self.policy
        backoff = random.uniform(0, min(p.max_backoff, p.initial_backoff * p.multiplier ** (attempt - 1)))
        if self.state == OPEN:
            backoff = max(backoff, p.breaker_cooldown)
            self.state = HALF_OPEN
        return max(backoff, retry_after or 0.0)
