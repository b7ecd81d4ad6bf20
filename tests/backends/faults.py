"""Faults a simulated backend can be told to inject, shared by every dialect.

A forwarder has to survive what real vendors do: vanish, answer 5xx for a while,
throttle with ``Retry-After``, answer slowly, or reject events for good. The settings
are replaced as a whole (``set``), either in-process or through ``POST /_control``, and
``times`` limits how many requests get the fault before the backend is healthy again.
Every fault taken counts in ``faulted`` (the latest ones' times in ``faulted_at``, so a
test can check the retry pacing); every request served counts in ``requests``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FaultSettings(BaseModel):
    """One fault configuration; unknown names are refused so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    down: bool = False
    status: int | None = Field(default=None, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    delay: float = Field(default=0.0, ge=0)
    reject: bool = False
    times: int | None = Field(default=None, ge=1)

    def disrupts(self) -> bool:
        """Whether a request is disturbed before it reaches the dialect's handler."""
        return self.down or self.status is not None or self.retry_after is not None or self.delay > 0


@dataclass(frozen=True)
class Fault:
    """What one request gets: wait ``delay``, then drop the connection or answer ``status``."""

    delay: float
    down: bool
    status: int | None
    retry_after: float | None


class Faults:
    """The live fault settings of one backend, with its request counters."""

    def __init__(self, **settings: Any) -> None:
        self.settings = FaultSettings(**settings)
        self._left = self.settings.times
        self.requests = 0
        self.faulted = 0
        self.faulted_at: list[float] = []

    def set(self, **settings: Any) -> None:
        """Replace the settings, e.g. ``set(status=503, times=2)``; ``set()`` heals."""
        self.settings = FaultSettings(**settings)
        self._left = self.settings.times

    def clear(self) -> None:
        self.set()

    def reset(self) -> None:
        self.clear()
        self.requests = 0
        self.faulted = 0
        self.faulted_at.clear()

    def take(self) -> Fault | None:
        """Count one request and hand out the fault it should suffer, if any."""
        self.requests += 1
        settings = self.settings
        if not settings.disrupts():
            return None
        self._spend()
        status = settings.status
        if status is None and settings.retry_after is not None:
            status = 429
        return Fault(settings.delay, settings.down, status, settings.retry_after)

    def take_reject(self) -> bool:
        """Whether the events of this request are to be rejected permanently."""
        if not self.settings.reject:
            return False
        self._spend()
        return True

    def _spend(self) -> None:
        self.faulted += 1
        self.faulted_at.append(time.monotonic())
        del self.faulted_at[:-1000]
        if self._left is not None:
            self._left -= 1
            if self._left == 0:
                self.clear()

    def state(self) -> dict[str, Any]:
        return {
            **self.settings.model_dump(),
            "times_left": self._left,
            "requests": self.requests,
            "faulted": self.faulted,
            "faulted_at": list(self.faulted_at),
        }
