"""The store interface shared by the memory and Redis implementations."""
from dataclasses import dataclass, field
from typing import Any

from .gathering import Gathering


class Backpressure(Exception):
    """A backend's queue is past its bound: ingress must answer 429/503, not accept."""

    def __init__(self, backend: str, retry_after: int = 1):
        super().__init__(f"queue of backend {backend!r} is full")
        self.backend = backend
        self.retry_after = retry_after


@dataclass(slots=True)
class Entry:
    """One queue entry: the new events of one request for one backend."""

    id: str
    events: list[dict]
    attempts: int = 0
    size: int = 0  # the bytes the store counts the events as (their JSON, or their share of a request body)
    encoded: list[bytes] | None = None  # each event's JSON as the store holds it, where it is at hand


@dataclass(slots=True)
class DeadLetter:
    id: str
    event: dict
    reason: str
    answer: str
    attempts: int
    at: float
    extra: dict[str, Any] = field(default_factory=dict)


class Store:
    """Async store operations. Implementations: MemoryStore, RedisStore.

    ``gathering``: what this process queued per backend and has not read back, which a
    lingering forwarder waits on (`gathering.Gathering`); implementations count their
    accepts and reads into it."""

    def __init__(self):
        self.gathering = Gathering()

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool:
        return True

    # ingest: one call per request
    async def accept(self, claims: list[str], events: list[dict], routes: list[list[str]],
                     bounds: dict[str, int], ttl: int, wire_bytes: int = 0) -> list[bool]:
        """Claim each event's identity (a token without whitespace: the pipeline's are hex
        digests); queue the new ones to their backends, atomically. ``wire_bytes``: the
        size of the request body the events came in (0: not known), which a store may
        share among them instead of measuring each.

        Returns per event whether it was new. Raises Backpressure, claiming nothing,
        when a target queue would pass its bound.
        """
        raise NotImplementedError

    def full(self, backends: list[str], bounds: dict[str, int]) -> str | None:
        """One of these backends whose queue is known, without a round trip, to have no
        room at all: ingress then refuses a request before reading its body. None when
        none is, or when the store cannot tell without I/O (``accept`` decides then)."""
        return None

    # delivery
    def keep_json(self, backend: str, keep: bool) -> None:
        """Whether entries read for ``backend`` carry each event's JSON where the store has
        it at hand (`Entry.encoded`). Only a forwarder that writes events as they stand
        uses it; for any other it would be held in memory for nothing, and longest while
        its backend is down."""

    async def read(self, backend: str, consumer: str, count: int, block: float,
                   reclaim_idle: float | None) -> list[Entry]:
        """New entries, after re-claiming entries pending longer than ``reclaim_idle`` (None: skip that)."""
        raise NotImplementedError

    async def ack(self, backend: str, entries: list[Entry]) -> None:
        raise NotImplementedError

    async def depth(self, backend: str) -> int:
        raise NotImplementedError

    async def oldest_age(self, backend: str) -> float:
        raise NotImplementedError

    async def lease(self, backend: str, owner: str, ttl: float) -> bool:
        """Hold the right to forward this backend (keeps a backend's order across replicas)."""
        raise NotImplementedError

    async def release(self, backend: str, owner: str) -> None:
        raise NotImplementedError

    # dead letters
    async def dead_letter(self, backend: str, event: dict, reason: str, answer: str, attempts: int) -> None:
        raise NotImplementedError

    async def dead_letters(self, backend: str, count: int = 100) -> list[DeadLetter]:
        raise NotImplementedError

    async def drop_dead(self, backend: str, ids: list[str] | None) -> int:
        raise NotImplementedError

    async def replay_dead(self, backend: str, ids: list[str] | None) -> int:
        """Move dead letters back to the backend's queue."""
        raise NotImplementedError

    async def dead_count(self, backend: str) -> int:
        raise NotImplementedError

    # run assembly
    async def runs_get(self, backend: str, run_ids: list[str]) -> dict[str, dict]:
        raise NotImplementedError

    async def runs_put(self, backend: str, runs: dict[str, dict], deadline: float) -> None:
        raise NotImplementedError

    async def runs_delete(self, backend: str, run_ids: list[str]) -> None:
        raise NotImplementedError

    async def runs_due(self, backend: str, now: float, count: int) -> list[str]:
        raise NotImplementedError

    # entities the gateway answers for (Voker people/agents, HoneyHive sessions, fingerprints)
    async def entity_get(self, kind: str, key: str) -> dict | None:
        raise NotImplementedError

    async def entity_put(self, kind: str, key: str, value: dict) -> None:
        raise NotImplementedError

    # counters
    async def hit(self, key: str, amount: int, window: float) -> int:
        """Add to a fixed-window counter; returns the window's total (rate limits)."""
        raise NotImplementedError
